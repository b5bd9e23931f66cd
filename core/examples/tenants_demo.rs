//! Runs the tenants section of the demo on its own: `cargo run -p surgewall --example tenants_demo`.

#[path = "demo/tenants.rs"]
mod tenants;

fn main() -> std::io::Result<()> {
    tenants::run(&mut std::io::stdout().lock())
}
