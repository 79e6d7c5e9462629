//! The `cerctl` binary: everything but the process boundary is in the library.
use std::io;

fn main() {
    std::process::exit(cerctl::main_with(
        std::env::args_os(),
        &mut io::stdin(),
        &mut io::stdout(),
        &mut io::stderr(),
    ))
}
