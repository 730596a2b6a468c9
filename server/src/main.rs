//! `partnerplan-relay`: the relay a lead school runs for its partnership.

fn main() -> std::process::ExitCode {
    partnerplan_relay::cli::main()
}
