//! Demo section: per-user bulkheads. Many tenants share a service; one misbehaving tenant
//! holds many slots at once and is refused at its own limit while the others pass, and the
//! global limit caps the total. Deterministic (one thread, permits held in a Vec) and instant.

use std::io::Write;

use surgewall::bulkhead::keyed::{KeyedBulkhead, KeyedRejected};

/// Runs the tenants demo, writing a short table to `out`.
pub fn run(out: &mut impl Write) -> std::io::Result<()> {
    const PER_TENANT: u32 = 3;
    const GLOBAL: u32 = 12;
    let tenants = KeyedBulkhead::<String>::builder(PER_TENANT)
        .global_max(GLOBAL)
        .max_keys(1000)
        .build()
        .expect("valid limits");

    // (tenant, concurrent calls it tries to have in flight)
    let load = [
        ("acme", 2),
        ("globex", 3),
        ("initech", 1),
        ("hooli", 20), // the misbehaving one: opens 20 calls at once
        ("umbrella", 2),
        ("stark", 3),
    ];

    writeln!(
        out,
        "== per-user bulkheads: {PER_TENANT} concurrent calls per tenant, {GLOBAL} across all =="
    )?;
    writeln!(
        out,
        "{:<10} {:>6} {:>9} {:>15} {:>17}",
        "tenant", "tried", "admitted", "refused: tenant", "refused: global"
    )?;
    let mut held = Vec::new();
    for (name, calls) in load {
        let key = name.to_string();
        let (mut admitted, mut by_key, mut by_global) = (0, 0, 0);
        for _ in 0..calls {
            match tenants.try_acquire(&key) {
                Ok(permit) => {
                    admitted += 1;
                    held.push(permit);
                }
                Err(KeyedRejected::KeyFull { .. }) => by_key += 1,
                Err(KeyedRejected::GlobalFull { .. }) => by_global += 1,
                Err(KeyedRejected::TooManyKeys(_)) => unreachable!("1000 keys are allowed"),
            }
        }
        writeln!(
            out,
            "{name:<10} {calls:>6} {admitted:>9} {by_key:>15} {by_global:>17}"
        )?;
    }
    let m = tenants.metrics();
    writeln!(
        out,
        "in flight: {} of {GLOBAL}; refused: {} at a tenant's limit, {} at the global limit",
        m.global_active.unwrap_or(0),
        m.rejected_key,
        m.rejected_global
    )?;
    drop(held);
    writeln!(
        out,
        "all calls done: in flight {} (every permit came back)",
        tenants.metrics().global_active.unwrap_or(0)
    )?;
    Ok(())
}
