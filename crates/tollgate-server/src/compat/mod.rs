//! Compatibility adapters for the two Python SDK families (`docs/protocol.md`).
//!
//! Each adapter translates an SDK-shaped request into the neutral [`DecideCall`],
//! calls the one decision service ([`DecisionService::decide`]), and translates the
//! recorded verdict back into the SDK's shape. Adapters never decide.
//!
//! [`DecideCall`]: crate::service::decide::DecideCall
//! [`DecisionService::decide`]: crate::service::DecisionService

pub mod dealgo;
pub mod decionis;
pub mod pyjson;

use std::collections::BTreeMap;

use serde_json::{Map, Value};

pub use crate::service::policies::Reported;

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
