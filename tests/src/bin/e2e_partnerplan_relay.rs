//! The `partnerplan-relay` program, for the end-to-end tests.

/// The same allocator as the shipped relay.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    partnerplan_relay::cli::main()
}
