//! `partnerplan`: a school's command line.

fn main() -> std::process::ExitCode {
    partnerplan_client::cli::main()
}
