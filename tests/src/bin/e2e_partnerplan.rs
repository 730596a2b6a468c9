//! The `partnerplan` program, for the end-to-end tests.

fn main() -> std::process::ExitCode {
    partnerplan_client::cli::main()
}
