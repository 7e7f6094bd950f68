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
