//! The native decision request (`POST /v1/decisions`) and its [`Mode`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// How the server applies the verdict.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// The verdict is binding: a throttle token is taken on ALLOW (the default).
    #[default]
    Enforce,
    /// Every gate runs and the would-be verdict is reported in `shadow` and
    /// recorded; the answer is ALLOW.
    Shadow,
    /// Like shadow, requested per call by a caller testing its integration; no
    /// throttle token is taken.
    DryRun,
}

impl Mode {
    /// Whether this mode enforces its verdict (and so may consume throttle tokens).
    pub fn is_enforce(self) -> bool {
        matches!(self, Mode::Enforce)
    }
}

/// One proposed action, as sent to `POST /v1/decisions`.
///
/// Unknown fields are accepted and kept in [`DecisionRequest::extra`] (the server
/// records the body as received). Build it with [`DecisionRequest::new`] and the
/// setters:
///
/// ```
/// use tollgate_api::DecisionRequest;
/// use serde_json::json;
///
/// let request = DecisionRequest::new("TRANSFER_FUNDS")
///     .actor(json!({"id": "treasury-agent", "type": "AI_AGENT"}))
///     .action_field("amount", 25_000)
///     .context_field("workflow", "treasury_ops")
///     .signal("risk_score", 0.3)
///     .signal("confidence", 0.95)
///     .source("agent-1")
///     .policy("csc-default");
/// assert_eq!(request.action_type(), Some("TRANSFER_FUNDS"));
/// ```
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(
    feature = "utoipa",
    derive(utoipa::ToSchema),
    schema(
        description = "One proposed action. Unknown fields are accepted and kept in the recorded request."
    )
)]
pub struct DecisionRequest {
    /// Must equal the API key's tenant when given (the SDK fills in its own).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_id: Option<String>,
    /// Who acts (`id`, `type`, anything else).
    #[serde(default)]
    #[cfg_attr(feature = "utoipa", schema(value_type = Object))]
    pub actor: Map<String, Value>,
    /// What is proposed; `type` (1 to 256 bytes) is required, other fields are kept
    /// and can be read by policy conditions (`action.amount`).
    #[cfg_attr(feature = "utoipa", schema(schema_with = action_schema))]
    pub action: Map<String, Value>,
    /// Free-form context of the action.
    #[serde(default)]
    #[cfg_attr(feature = "utoipa", schema(value_type = Object))]
    pub context: Map<String, Value>,
    /// Numeric signals (`risk_score`, `confidence`, `volatility`...), in [0, 1]
    /// unless the policy declares another range.
    #[serde(default)]
    pub signals: BTreeMap<String, f64>,
    /// Free text, recorded, never interpreted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intent: Option<String>,
    /// Who is asking: keys the adaptive bias and per-source throttles.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Policies: `id` (active version) or `id@N`; empty means the tenant default.
    #[serde(default)]
    pub policy_refs: Vec<String>,
    /// `enforce` (default), `shadow` or `dry_run`.
    #[serde(default)]
    pub mode: Mode,
    /// Opt in to the adaptive-bias layer.
    #[serde(default)]
    pub adaptive: bool,
    /// Makes a retry of this exact request safe for 24 h (the `Idempotency-Key`
    /// header wins; the SDK sends both).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
    /// Correlates the decision with the caller's own traces (the body wins over the
    /// `X-Correlation-Id` header).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<String>,
    /// Ask for an execution grant with an ALLOW in enforce mode (docs/protocol.md §3).
    /// Without it an ALLOW carries none, unless a policy it ran against says
    /// `grants: true`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub grant: bool,
    /// Fields this version does not know: accepted, sent and kept as they are.
    #[serde(flatten)]
    #[cfg_attr(feature = "utoipa", schema(ignore))]
    pub extra: Map<String, Value>,
}

/// `action`: an object with a required string `type`, other fields free.
#[cfg(feature = "utoipa")]
fn action_schema() -> utoipa::openapi::schema::Object {
    use utoipa::openapi::schema::{AdditionalProperties, ObjectBuilder, Type};
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .description(Some(
            "What is proposed; `type` is required, other fields are kept for policy conditions.",
        ))
        .property(
            "type",
            ObjectBuilder::new()
                .schema_type(Type::String)
                .description(Some("The action type, 1 to 256 bytes.")),
        )
        .required("type")
        .additional_properties(Some(AdditionalProperties::FreeForm(true)))
        .build()
}

impl DecisionRequest {
    /// A request for an action of type `action_type`.
    pub fn new(action_type: impl Into<String>) -> Self {
        let mut action = Map::new();
        action.insert("type".into(), Value::String(action_type.into()));
        DecisionRequest {
            action,
            ..DecisionRequest::default()
        }
    }

    /// Asks for an execution grant with an ALLOW (enforce mode).
    #[must_use]
    pub fn with_grant(mut self) -> Self {
        self.grant = true;
        self
    }

    /// The action's `type`, if present and a string.
    pub fn action_type(&self) -> Option<&str> {
        self.action.get("type").and_then(Value::as_str)
    }

    /// Sets the actor; a JSON value that is not an object is ignored.
    #[must_use]
    pub fn actor(mut self, actor: Value) -> Self {
        if let Value::Object(map) = actor {
            self.actor = map;
        }
        self
    }

    /// Sets the actor to `{"id": id, "type": kind}`.
    #[must_use]
    pub fn actor_id(mut self, id: impl Into<String>, kind: impl Into<String>) -> Self {
        self.actor.insert("id".into(), Value::String(id.into()));
        self.actor.insert("type".into(), Value::String(kind.into()));
        self
    }

    /// Adds one field to the action.
    #[must_use]
    pub fn action_field(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.action.insert(key.into(), value.into());
        self
    }

    /// Adds one field to the context.
    #[must_use]
    pub fn context_field(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.context.insert(key.into(), value.into());
        self
    }

    /// Sets one numeric signal.
    #[must_use]
    pub fn signal(mut self, name: impl Into<String>, value: f64) -> Self {
        self.signals.insert(name.into(), value);
        self
    }

    /// Sets the free-text intent.
    #[must_use]
    pub fn intent(mut self, intent: impl Into<String>) -> Self {
        self.intent = Some(intent.into());
        self
    }

    /// Sets who is asking.
    #[must_use]
    pub fn source(mut self, source: impl Into<String>) -> Self {
        self.source = Some(source.into());
        self
    }

    /// Adds a policy reference (`id` or `id@N`).
    #[must_use]
    pub fn policy(mut self, policy_ref: impl Into<String>) -> Self {
        self.policy_refs.push(policy_ref.into());
        self
    }

    /// Sets the mode.
    #[must_use]
    pub fn mode(mut self, mode: Mode) -> Self {
        self.mode = mode;
        self
    }

    /// Opts in to the adaptive bias.
    #[must_use]
    pub fn adaptive(mut self, on: bool) -> Self {
        self.adaptive = on;
        self
    }

    /// Sets the idempotency key.
    #[must_use]
    pub fn idempotency_key(mut self, key: impl Into<String>) -> Self {
        self.idempotency_key = Some(key.into());
        self
    }

    /// Sets the correlation id.
    #[must_use]
    pub fn correlation_id(mut self, id: impl Into<String>) -> Self {
        self.correlation_id = Some(id.into());
        self
    }

    /// Sets a field this version does not model (sent as a top-level field).
    #[must_use]
    pub fn extra_field(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.extra.insert(key.into(), value.into());
        self
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn defaults_and_unknown_fields_as_the_server_accepted_them() {
        let r: DecisionRequest =
            serde_json::from_value(json!({"action": {"type": "X"}, "future": [1, 2]})).unwrap();
        assert_eq!(r.action_type(), Some("X"));
        assert_eq!(r.mode, Mode::Enforce);
        assert!(!r.adaptive && r.actor.is_empty() && r.policy_refs.is_empty());
        assert_eq!(r.extra.get("future"), Some(&json!([1, 2])));
        // Kept on the way out, too.
        assert_eq!(serde_json::to_value(&r).unwrap()["future"], json!([1, 2]));
        let missing = serde_json::from_value::<DecisionRequest>(json!({"actor": {}}));
        assert!(
            missing
                .unwrap_err()
                .to_string()
                .contains("missing field `action`")
        );
        let bad = serde_json::from_value::<DecisionRequest>(
            json!({"action": {"type": "X"}, "mode": "sometimes"}),
        );
        assert!(bad.is_err(), "an unknown mode is refused");
    }

    #[test]
    fn the_sdk_sends_only_what_was_set() {
        let wire =
            serde_json::to_value(DecisionRequest::new("X").signal("risk_score", 0.5)).unwrap();
        assert_eq!(
            wire,
            json!({
                "actor": {}, "action": {"type": "X"}, "context": {},
                "signals": {"risk_score": 0.5}, "policy_refs": [], "mode": "enforce",
                "adaptive": false,
            })
        );
    }
}
