//! The typed ledger entry bodies and review records: each written once, through its
//! type, and read back through the same type.
//!
//! These bodies are part of Tollgate's documented ledger format (`docs/ledger.md`).
//! The entry hash covers their RFC 8785 bytes, so a field is never renamed or
//! re-typed: new fields are optional and absent when unset. The golden test
//! `tests/golden.rs` holds ledgers written before this module existed to the same
//! bytes.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tollgate_core::{DecisionRequest, Verdict};

use crate::service::Error;

/// The body of a `decision` ledger entry.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DecisionEntryBody {
    /// `dec_…`, time-ordered.
    pub decision_id: String,
    /// Which API family asked: `native`, `decionis`, `dealgo`, `dealgo-runtime`,
    /// `dealgo-mcp`.
    pub family: String,
    /// The request body exactly as received.
    pub received: Value,
    /// The neutral request the engine decided.
    pub request: DecisionRequest,
    /// `policy_refs` as given (`id`, `id@N`); empty = the tenant default.
    pub policy_refs: Vec<String>,
    /// The verdict with its full gate trace.
    pub verdict: Verdict,
    /// Candidate versions run beside the active ones (absent when none ran).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub candidates: Vec<CandidateResult>,
    /// `live` or `test`.
    pub environment: String,
    /// The id (never the secret) of the key that asked.
    pub api_key_id: String,
    /// Hex SHA-256 of the canonical request (what a review approves).
    pub request_digest: String,
    /// The review this decision opened (enforce-mode ESCALATE / REVIEW_REQUIRED).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub review_id: Option<String>,
    /// The execution grant's `jti` (enforce-mode ALLOW).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grant_id: Option<String>,
    /// Hex SHA-256 of the canonical `{actor, action, context}` (what a grant binds).
    pub action_digest: String,
    /// The caller's idempotency key, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
    /// The caller's correlation id, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<String>,
}

impl DecisionEntryBody {
    /// The body as the ledger stores it.
    pub fn to_value(&self) -> Result<Value, Error> {
        serde_json::to_value(self).map_err(Error::internal)
    }

    /// The body's RFC 8785 bytes, written from the typed record: the same bytes as
    /// canonicalising [`DecisionEntryBody::to_value`] (a test holds them equal).
    pub fn canonical(&self) -> Result<Vec<u8>, Error> {
        tollgate_core::canonical::to_vec(self).map_err(Error::internal)
    }

    /// Reads a stored body back.
    pub fn from_value(body: &Value) -> Result<Self, Error> {
        Self::deserialize(body)
            .map_err(|e| Error::internal(format!("a decision entry does not read back: {e}")))
    }
}

/// One candidate version's result beside the active version, in a decision entry.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CandidateResult {
    /// The policy.
    pub policy_id: String,
    /// The candidate version.
    pub version: u64,
    /// Always `true`: a candidate never enforces.
    pub shadow: bool,
    /// Whether the candidate's status differs from the active one's.
    pub changed: bool,
    /// What the active versions decided (`status`, `gate`, `reason_codes`, `explanation`).
    pub active: Value,
    /// What the candidate would have decided, in the same shape.
    pub candidate: Value,
}

/// The body of a `policy_published` entry: a new immutable version.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PolicyPublishedBody {
    /// The policy.
    pub policy_id: String,
    /// The version published.
    pub version: u64,
    /// Hex SHA-256 of the policy text.
    pub text_sha256: String,
    /// The key that published it.
    pub api_key_id: String,
}

/// The body of a `policy_activated` entry: a change of what is enforced, by `role`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(tag = "role", rename_all = "snake_case")]
pub enum PolicyActivatedBody {
    /// A version became the active one in an environment (`rollback` when older).
    Active {
        /// The policy.
        policy_id: String,
        /// The version now active.
        version: u64,
        /// The version active before (`null` when none was).
        previous_version: Option<u64>,
        /// Whether the new version is older than the previous one.
        rollback: bool,
        /// `live` or `test`.
        environment: String,
        /// The key that activated it.
        api_key_id: String,
    },
    /// The policy became the environment's default (requests without `policy_refs`).
    Default {
        /// The policy.
        policy_id: String,
        /// `live` or `test`.
        environment: String,
        /// The key that set it.
        api_key_id: String,
    },
    /// A version started running as a candidate beside the active one.
    Candidate {
        /// The policy.
        policy_id: String,
        /// The candidate version.
        version: u64,
        /// `live` or `test`.
        environment: String,
        /// The key that started it.
        api_key_id: String,
    },
    /// The candidate stopped.
    CandidateStopped {
        /// The policy.
        policy_id: String,
        /// The candidate version that stopped.
        version: u64,
        /// `live` or `test`.
        environment: String,
        /// The key that stopped it.
        api_key_id: String,
    },
    /// The tenant-wide shadow switch changed.
    TenantShadow {
        /// Whether shadow mode is now on.
        enabled: bool,
        /// The key that switched it.
        api_key_id: String,
    },
}

impl PolicyPublishedBody {
    /// The body as the ledger stores it.
    pub fn to_value(&self) -> Result<Value, Error> {
        serde_json::to_value(self).map_err(Error::internal)
    }
}

impl PolicyActivatedBody {
    /// The body as the ledger stores it.
    pub fn to_value(&self) -> Result<Value, Error> {
        serde_json::to_value(self).map_err(Error::internal)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use tollgate_core::{
        DecideInput, MemoryBuckets, PolicyBinding, UnixMillis, csc_default, decide,
    };

    use super::*;

    /// The decision path writes the entry body from the typed record; the bytes must
    /// be those of the value form that readers and verifiers canonicalise.
    #[test]
    fn typed_canonical_bytes_equal_the_value_form() {
        let policy = csc_default().expect("the built-in policy compiles");
        for (volatility, text) in [(0.05, "plain"), (0.9, "é \u{1f600} \"q\" \n"), (0.0, "")] {
            let mut request = DecisionRequest {
                tenant: "default".into(),
                ..Default::default()
            };
            request.action.insert("type".into(), "OPEN_POSITION".into());
            request.action.insert("note".into(), json!(text));
            request.action.insert(
                "nested".into(),
                json!({"z": [1, 2.5, 1e21], "\u{e000}": null, "a": {"b": true}}),
            );
            request.context.insert("\u{ff61}".into(), json!(-0.0));
            request.signals.insert("volatility".into(), volatility);
            request.signals.insert("confidence".into(), 0.95);
            let policies = [PolicyBinding::Found(policy.clone())];
            let input = DecideInput {
                request: &request,
                policies: &policies,
                now: UnixMillis(1_700_000_000_000),
                overrides: &[],
                outcomes: &[],
                approval: None,
                tenant_shadow: false,
            };
            let verdict = decide(&input, &mut MemoryBuckets::new()).expect("decides");
            let body = DecisionEntryBody {
                decision_id: "dec_1".into(),
                family: "native".into(),
                received: json!({"raw": text, "n": 3, "f": 0.1}),
                request,
                policy_refs: vec!["csc-default".into()],
                verdict,
                candidates: Vec::new(),
                environment: "test".into(),
                api_key_id: "key_1".into(),
                request_digest: "ab".repeat(32),
                review_id: None,
                grant_id: Some("g".into()),
                action_digest: "cd".repeat(32),
                idempotency_key: Some(text.into()),
                correlation_id: None,
            };
            let value = body.to_value().expect("a value");
            let from_value = tollgate_ledger::canonical_json(&value).expect("canonical");
            assert_eq!(body.canonical().expect("canonical"), from_value);
        }
    }
}
