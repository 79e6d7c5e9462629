fn main() -> std::process::ExitCode {
    cerd::cli::main()
}
