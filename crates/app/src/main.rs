//! The `careline` binary.

fn main() -> std::process::ExitCode {
    careline::cli::main()
}
