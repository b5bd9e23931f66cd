//! Runs the retry and SLO sections of the demo on their own:
//! `cargo run -p surgewall --example retry_demo`.

#[path = "demo/retry_storm.rs"]
mod retry_storm;
#[path = "demo/slo_burn.rs"]
mod slo_burn;

fn main() -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    retry_storm::run(&mut out)?;
    std::io::Write::write_all(&mut out, b"\n")?;
    slo_burn::run(&mut out)
}
