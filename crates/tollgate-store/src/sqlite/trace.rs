//! TEMPORARY instrumentation (measurement of the commit tail): per-batch and
//! per-checkpoint timings, dumped to `$TOLLGATE_STORE_TRACE` when the store drops.

use std::sync::{Mutex, OnceLock};
use std::time::Instant;

#[allow(clippy::type_complexity)]
static EVENTS: Mutex<Vec<(&'static str, u64, u64, i64, i64)>> = Mutex::new(Vec::new());
static BASE: OnceLock<Instant> = OnceLock::new();

pub(crate) fn now() -> Instant {
    Instant::now()
}

/// Records an event that started at `t0`: (name, start µs, duration µs, a, b).
pub(crate) fn event(name: &'static str, t0: Instant, a: i64, b: i64) {
    let base = *BASE.get_or_init(Instant::now);
    let start = t0.saturating_duration_since(base).as_micros() as u64;
    let dur = t0.elapsed().as_micros() as u64;
    if let Ok(mut v) = EVENTS.lock() {
        v.push((name, start, dur, a, b));
    }
}

pub(crate) fn dump() {
    let Ok(path) = std::env::var("TOLLGATE_STORE_TRACE") else {
        return;
    };
    let Ok(mut v) = EVENTS.lock() else { return };
    let mut out = String::new();
    for (n, s, d, a, b) in v.drain(..) {
        out.push_str(&format!("{n} {s} {d} {a} {b}\n"));
    }
    let _ = std::fs::write(path, out);
}
