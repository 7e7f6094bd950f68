//! The neutral decision request: the union of what the native API and both SDK
//! families send, after the server's adapters have translated it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// How a decision is applied: defined once, with the wire types, in `tollgate-api`.
pub use tollgate_api::Mode;

/// A decision request in Tollgate's neutral shape.
///
/// `actor`, `action` and `context` are open JSON objects: unknown fields are kept and
/// can be read by policy conditions (`action.amount`, `context.hour`, ...).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DecisionRequest {
    /// The tenant the request is decided for (the server takes it from the API key).
    pub tenant: String,
    /// Who acts: `{"id": "agent_42", "type": "AI_AGENT", ...}`.
    #[serde(default)]
    pub actor: Map<String, Value>,
    /// What is proposed: `{"type": "TRANSFER_FUNDS", "amount": 25000, ...}`. `type` is required.
    #[serde(default)]
    pub action: Map<String, Value>,
    /// Free-form context of the action.
    #[serde(default)]
    pub context: Map<String, Value>,
    /// Numeric signals such as `risk_score`, `confidence`, `volatility`.
    #[serde(default)]
    pub signals: BTreeMap<String, f64>,
    /// Free text, recorded, never interpreted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intent: Option<String>,
    /// Who is asking; keys the adaptive bias and per-source throttles.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Enforce, shadow or dry run.
    #[serde(default)]
    pub mode: Mode,
    /// Opt in to the adaptive-bias layer (DeAlgo `v2_aware`).
    #[serde(default)]
    pub adaptive: bool,
}

impl DecisionRequest {
    /// `action.type`, if present and a string.
    pub fn action_type(&self) -> Option<&str> {
        self.action.get("type").and_then(Value::as_str)
    }

    /// `actor.id`, if present and a string.
    pub fn actor_id(&self) -> Option<&str> {
        self.actor.get("id").and_then(Value::as_str)
    }
}

/// A field-level validation problem, in the shape pydantic and FastAPI clients parse.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldError {
    /// Where the problem is, outermost first (`["signals", "volatility"]`).
    pub loc: Vec<String>,
    /// What is wrong, for a person.
    pub msg: String,
    /// A stable machine-readable kind (`value_error.missing`, ...).
    #[serde(rename = "type")]
    pub kind: String,
}

/// A request that failed validation. This is not a verdict: the server answers 422,
/// records nothing and meters nothing.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid request: {}", .errors.iter().map(|e| format!("{}: {}", e.loc.join("."), e.msg)).collect::<Vec<_>>().join("; "))]
pub struct InvalidRequest {
    /// Every problem found, not only the first.
    pub errors: Vec<FieldError>,
}
