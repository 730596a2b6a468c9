//! Runs `relay_core` inputs through the harness without libFuzzer, in a
//! debug build: `cargo run --example replay -- FILE...` in fuzz/ (with
//! `CARGO_TARGET_DIR=../target` to reuse the workspace's build). With
//! `PARTNERPLAN_FUZZ_TRACE=1` every event and effect is logged, so a
//! crash's story can be read.

fn main() {
    let mut relay = partnerplan_fuzz::Relay::new();
    for path in std::env::args().skip(1) {
        let data = std::fs::read(&path).expect("the input reads");
        let seen = partnerplan_fuzz::Session::new(&mut relay).run(&data);
        println!("{path}: {seen:?}");
    }
}
