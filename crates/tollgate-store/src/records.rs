//! Record types of the store: simple, local, with JSON bodies where the server's
//! types are still moving.

use serde::{Deserialize, Serialize};

/// A tenant.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TenantRecord {
    /// Tenant id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Creation time, Unix milliseconds.
    pub created_ms: i64,
    /// Settings (quotas, environments, …).
    pub body: serde_json::Value,
}

/// An API key; the secret itself is never stored, only its hash.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ApiKeyRecord {
    /// Key id (public).
    pub id: String,
    /// Owning tenant.
    pub tenant: String,
    /// Hash of the secret (hex).
    pub hash: String,
    /// Scopes.
    pub scopes: Vec<String>,
    /// `live` or `test`.
    pub environment: String,
    /// Creation time, Unix milliseconds.
    pub created_ms: i64,
    /// Revocation time, if revoked.
    pub revoked_ms: Option<i64>,
    /// Expiry time, if the key expires.
    #[serde(default)]
    pub expires_ms: Option<i64>,
    /// A label for people.
    #[serde(default)]
    pub name: String,
    /// Approver groups of a reviewer key (a review names the groups that may approve it).
    #[serde(default)]
    pub groups: Vec<String>,
}

/// The public half of a checkpoint / verdict signing key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SigningKeyRecord {
    /// Note key name.
    pub name: String,
    /// Ed25519 public key.
    pub public_key: [u8; 32],
    /// When it started signing, Unix milliseconds.
    pub created_ms: i64,
    /// When it stopped signing, if rotated out.
    pub retired_ms: Option<i64>,
}

/// One version of a policy document.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PolicyRecord {
    /// Tenant.
    pub tenant: String,
    /// Policy id.
    pub policy_id: String,
    /// Version, from 1.
    pub version: u64,
    /// The document text as published.
    pub text: String,
    /// SHA-256 of the text (hex).
    pub text_hash: String,
    /// Publication time, Unix milliseconds.
    pub created_ms: i64,
}

/// A generic tenant-scoped record (sources, overrides).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// Tenant.
    pub tenant: String,
    /// Id within the tenant.
    pub id: String,
    /// Content.
    pub body: serde_json::Value,
}

/// Where a review stands. Stored as its lowercase name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReviewStatus {
    /// Waiting for reviewers.
    Pending,
    /// Approved: one matching request may take the approval.
    Approved,
    /// Its approval was taken by a decision (final).
    Consumed,
    /// Rejected by a reviewer (final).
    Rejected,
    /// Its time ran out before it was resolved or used (final).
    Expired,
}

impl ReviewStatus {
    /// The stored (and wire) name.
    pub fn as_str(self) -> &'static str {
        match self {
            ReviewStatus::Pending => "pending",
            ReviewStatus::Approved => "approved",
            ReviewStatus::Consumed => "consumed",
            ReviewStatus::Rejected => "rejected",
            ReviewStatus::Expired => "expired",
        }
    }

    /// Parses a stored or requested name.
    pub fn parse(s: &str) -> Option<ReviewStatus> {
        [
            ReviewStatus::Pending,
            ReviewStatus::Approved,
            ReviewStatus::Consumed,
            ReviewStatus::Rejected,
            ReviewStatus::Expired,
        ]
        .into_iter()
        .find(|r| r.as_str() == s)
    }
}

impl std::fmt::Display for ReviewStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A human review of a decision.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReviewRecord {
    /// Tenant.
    pub tenant: String,
    /// Review id.
    pub id: String,
    /// Where the review stands.
    pub status: ReviewStatus,
    /// Content (decision id, reviewer, notes, …).
    pub body: serde_json::Value,
}

/// The outcome of claiming an idempotency key.
#[derive(Clone, Debug, PartialEq)]
pub enum IdempotencyClaim {
    /// The key was free and is now claimed by this request.
    New,
    /// Another request holds the key and has not finished.
    InProgress,
    /// The key was used with a different request body.
    Mismatch,
    /// The key was used and answered; here is the answer.
    Done(serde_json::Value),
}

/// Which version of a policy is active in an environment, and the candidate run beside it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyActivation {
    /// Policy id.
    pub policy_id: String,
    /// The active version: what `id` in `policy_refs` means.
    pub version: u64,
    /// A version evaluated beside the active one on live traffic, recorded, never enforced.
    pub candidate: Option<u64>,
    /// When the candidate started (Unix milliseconds).
    pub candidate_since_ms: Option<i64>,
}

/// A permitted enforce-mode action, as velocity conditions (`history.count`,
/// `history.sum`) read it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HistoryRecord {
    /// Row id, assigned by the store (ignored on insert).
    #[serde(default)]
    pub id: u64,
    /// Tenant.
    pub tenant: String,
    /// When it was permitted, Unix milliseconds.
    pub at_ms: i64,
    /// The request's `actor.id`.
    pub actor: Option<String>,
    /// The request's `source`.
    pub source: Option<String>,
    /// The numeric request fields that `history.sum` calls read.
    #[serde(default)]
    pub values: std::collections::BTreeMap<String, f64>,
}
