//! The decision request: what an agent proposes to do, built fluently.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// How the server applies the verdict.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// The verdict applies (the default).
    #[default]
    Enforce,
    /// Always ALLOW; the would-be verdict is reported in `shadow` and recorded.
    Shadow,
    /// Like shadow, and no throttle token is taken.
    DryRun,
}

/// One proposed action, in Tollgate's neutral shape (protocols.md §1).
///
/// ```
/// use tollgate_client::DecisionRequest;
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
pub struct DecisionRequest {
    /// Must equal the API key's tenant when given (the client fills in its own).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_id: Option<String>,
    /// Who acts (`id`, `type`, anything else).
    #[serde(default)]
    pub actor: Map<String, Value>,
    /// What is proposed; `type` is required.
    pub action: Map<String, Value>,
    /// Where it happens.
    #[serde(default)]
    pub context: Map<String, Value>,
    /// Numeric signals (`risk_score`, `confidence`, `volatility`...).
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
    /// enforce, shadow or dry run.
    #[serde(default)]
    pub mode: Mode,
    /// Opt in to the adaptive-bias layer.
    #[serde(default)]
    pub adaptive: bool,
    /// Makes a retry of this exact request safe (sent as the `Idempotency-Key` header).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
    /// Correlates the decision with the caller's own traces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<String>,
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

    /// The action's `type`.
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
}
