//! Compatibility adapters for the two Python SDK families (protocols.md §2, §3).
//!
//! Each adapter translates an SDK-shaped request into the neutral [`DecideCall`],
//! calls the one decision service ([`AppState::decide`]), and translates the
//! recorded verdict back into the SDK's shape. Adapters never decide.
//!
//! [`DecideCall`]: crate::decide::DecideCall
//! [`AppState::decide`]: crate::state::AppState

pub mod dealgo;
pub mod decionis;
pub mod pyjson;

use std::collections::BTreeMap;

use serde_json::{Map, Value};
use tollgate_core::{Gate, Status, Verdict};

/// The numeric signals the adapters lift out of SDK-shaped bodies. Other numbers stay
/// where they were sent and remain readable by policy conditions (`action.amount`).
pub const SIGNALS: [&str; 3] = ["risk_score", "confidence", "volatility"];

/// Puts `name` into `signals` from `map[key]` when it is a JSON number and the signal
/// is not set yet. Non-numbers are left alone (they stay in the recorded request).
pub(crate) fn lift_signal(
    signals: &mut BTreeMap<String, f64>,
    name: &str,
    map: &Map<String, Value>,
    key: &str,
) {
    if signals.contains_key(name) {
        return;
    }
    if let Some(n) = map
        .get(key)
        .filter(|v| v.is_number())
        .and_then(Value::as_f64)
    {
        signals.insert(name.to_owned(), n);
    }
}

/// A string member of `map`, if present and non-empty.
pub(crate) fn str_field(map: &Map<String, Value>, key: &str) -> Option<String> {
    map.get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

/// What a family reports: for a request that asked for shadow or dry run, the
/// would-be outcome; otherwise the verdict that applies (under a tenant-wide shadow
/// switch that is ALLOW, with the would-be outcome under `shadow`).
#[derive(Debug)]
pub struct Reported<'a> {
    /// Status reported.
    pub status: Status,
    /// Gate reported.
    pub gate: Gate,
    /// Reason codes reported.
    pub reason_codes: &'a [String],
    /// Explanation reported.
    pub explanation: &'a str,
    /// Throttle delay, when the outcome is a throttle block.
    pub retry_after_ms: Option<u64>,
}

impl<'a> Reported<'a> {
    /// The outcome that applies to the caller.
    pub fn applied(v: &'a Verdict) -> Self {
        Self {
            status: v.status,
            gate: v.gate,
            reason_codes: &v.reason_codes,
            explanation: &v.explanation,
            retry_after_ms: v.retry_after_ms,
        }
    }

    /// The would-be outcome when there is one, else the applied one.
    pub fn would_be(v: &'a Verdict) -> Self {
        match &v.would_be {
            Some(w) => Self {
                status: w.status,
                gate: w.gate,
                reason_codes: &w.reason_codes,
                explanation: &w.explanation,
                retry_after_ms: w.retry_after_ms,
            },
            None => Self::applied(v),
        }
    }
}
