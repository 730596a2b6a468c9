//! The `partnerplan-relay` program, for the end-to-end tests.

fn main() -> std::process::ExitCode {
    partnerplan_relay::cli::main()
}
