/// The store's writer allocates and frees many small buffers per batch
/// (sled copies tree nodes on write): glibc's malloc took a fifth to a
/// third of its time in profiles; mimalloc is the daemon's allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    cerd::cli::main()
}
