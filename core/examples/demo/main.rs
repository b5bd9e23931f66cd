//! `make demo`: surgewall's policies driven through simulated failures, on embedded defaults.
//!
//! Every section runs on a mock clock, so the timeline is deterministic and the whole demo
//! takes well under a second. Run it with `make demo` or
//! `cargo run --release -p surgewall --example demo`.

mod breakers;
mod endpoints;
mod retry_storm;
mod slo_burn;
mod tenants;

fn main() -> std::io::Result<()> {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    breakers::run(&mut out)?;
    retry_storm::run(&mut out)?;
    slo_burn::run(&mut out)?;
    tenants::run(&mut out)?;
    endpoints::run(&mut out)?;
    Ok(())
}
