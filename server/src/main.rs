//! `partnerplan-relay`: the relay a lead school runs for its partnership.

/// glibc's allocator kept freed memory from Automerge's large temporary
/// buffers (saving and loading documents): seeding 10,000 documents grew
/// the relay to 2.3 GiB where mimalloc stays near 360 MiB (BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    partnerplan_relay::configure_allocator();
    partnerplan_relay::cli::main()
}
