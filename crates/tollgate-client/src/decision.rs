//! The verdict: a signed, recorded answer to "may this action run now?".

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use tollgate_api::{Gate, Status};

/// The policy version that decided.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyRef {
    /// Policy id.
    pub id: String,
    /// Immutable version number.
    pub version: u64,
}

/// Where the decision sits in the tenant's ledger.
///
/// In cluster mode a verdict is answered once its entry is durable, before the
/// sequencer gives it a place in the chain: then `status` is `pending` and `seq` /
/// `entry_hash` are `None` (the dossier follows within about a second).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerRef {
    /// Sequence number (`None` while pending).
    #[serde(default)]
    pub seq: Option<u64>,
    /// Hex SHA-256 of the entry (`None` while pending).
    #[serde(default)]
    pub entry_hash: Option<String>,
    /// `sequenced` or `pending` (servers before cluster mode sent no status: every
    /// entry they answered was sequenced).
    #[serde(default = "sequenced")]
    pub status: String,
}

fn sequenced() -> String {
    "sequenced".to_owned()
}

impl LedgerRef {
    /// Whether the entry has its place in the chain yet.
    pub fn is_sequenced(&self) -> bool {
        self.seq.is_some()
    }
}

/// In shadow and dry-run modes: what enforce mode would have answered.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shadow {
    /// Would-be status.
    pub would_be: Status,
    /// Would-be gate.
    pub gate: Gate,
    /// Would-be reason codes.
    #[serde(default)]
    pub reason_codes: Vec<String>,
    /// Would-be explanation.
    #[serde(default)]
    pub explanation: String,
}

/// The server's signature over the response.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignatureInfo {
    /// `Ed25519` (this answer signed alone) or `Ed25519-Merkle-batch` (a batch's
    /// Merkle root signed; see [`BatchInfo`]).
    pub algorithm: String,
    /// The `kid` of the key in `/.well-known/jwks.json`.
    #[serde(default)]
    pub key_id: String,
    /// base64 of the 64-byte signature.
    pub value: String,
    /// Batch signatures: where this answer sits in its batch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch: Option<BatchInfo>,
}

/// A batch-signed answer's leaf index, the batch size and the leaf's audit path
/// (lowercase hex, from the sibling up). [`crate::verify::body_signature`] checks it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct BatchInfo {
    /// The leaf's index.
    pub index: u64,
    /// How many answers the batch signed.
    pub size: u64,
    /// The audit path.
    pub path: Vec<String>,
}

/// A verdict.
///
/// `raw` keeps the whole response body (the signature covers it, and fields this
/// version of the SDK does not model are there).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Decision {
    /// `dec_…`; empty only for a fail-open stand-in (see [`Decision::is_fail_open`]).
    pub decision_id: String,
    /// The answer.
    pub status: Status,
    /// The gate that decided.
    pub gate: Gate,
    /// Machine-readable reasons.
    #[serde(default)]
    pub reason_codes: Vec<String>,
    /// A sentence for a person.
    #[serde(default)]
    pub explanation: String,
    /// Throttle blocks: milliseconds until a token is available.
    #[serde(default)]
    pub retry_after_ms: Option<u64>,
    /// The policy that decided.
    #[serde(default)]
    pub policy: Option<PolicyRef>,
    /// The adaptive bias, when the adaptive layer ran.
    #[serde(default)]
    pub adaptive_bias: Option<f64>,
    /// ESCALATE / REVIEW_REQUIRED: the review to follow.
    #[serde(default)]
    pub review_id: Option<String>,
    /// Shadow and dry-run modes: the would-be verdict.
    #[serde(default)]
    pub shadow: Option<Shadow>,
    /// The ledger entry.
    #[serde(default)]
    pub ledger: Option<LedgerRef>,
    /// Where the decision's dossier (record and proof) is served.
    #[serde(default)]
    pub dossier_url: Option<String>,
    /// Server-side latency.
    #[serde(default)]
    pub latency_ms: Option<u64>,
    /// `live` or `test`.
    #[serde(default)]
    pub environment: Option<String>,
    /// Whether this answer is the replay of an earlier request with the same key.
    #[serde(default)]
    pub idempotency_replayed: bool,
    /// RFC 3339 time of the decision.
    #[serde(default)]
    pub decided_at: Option<String>,
    /// The server's signature.
    #[serde(default)]
    pub signature: Option<SignatureInfo>,
    /// An execution grant (protocols.md §1): on an ALLOW in enforce mode, a token the
    /// executing service checks with [`crate::verify::grant_for`].
    #[serde(default)]
    pub grant: Option<String>,
    /// `Some(why)` when no verdict was obtained and the client's fail-open mode let
    /// the action through; `None` for every real verdict.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fail_open: Option<String>,
    /// The response body as received.
    #[serde(skip)]
    pub raw: Value,
}

impl Decision {
    /// Parses a response body, keeping it in `raw`.
    pub fn from_json(raw: Value) -> Result<Decision, serde_json::Error> {
        let mut d = Decision::deserialize(&raw)?;
        d.fail_open = None;
        d.raw = raw;
        Ok(d)
    }

    /// `true` only for ALLOW.
    pub fn is_allowed(&self) -> bool {
        self.status == Status::Allow
    }

    /// Whether this is a throttle block (transient: retrying after
    /// [`Decision::retry_after`] can succeed).
    pub fn is_throttled(&self) -> bool {
        self.status == Status::Block && self.gate == Gate::Throttle
    }

    /// `retry_after_ms` as a duration.
    pub fn retry_after(&self) -> Option<Duration> {
        self.retry_after_ms.map(Duration::from_millis)
    }

    /// Whether this is a fail-open stand-in rather than a verdict.
    pub fn is_fail_open(&self) -> bool {
        self.fail_open.is_some()
    }

    /// A verdict built by hand (tests, fakes, the embedded engine).
    pub fn new(status: Status, gate: Gate) -> Decision {
        Decision {
            decision_id: String::new(),
            status,
            gate,
            reason_codes: Vec::new(),
            explanation: String::new(),
            retry_after_ms: None,
            policy: None,
            adaptive_bias: None,
            review_id: None,
            shadow: None,
            ledger: None,
            dossier_url: None,
            latency_ms: None,
            environment: None,
            idempotency_replayed: false,
            decided_at: None,
            signature: None,
            grant: None,
            fail_open: None,
            raw: Value::Null,
        }
    }

    /// An ALLOW stand-in for when no verdict could be had and the client fails open.
    pub(crate) fn fail_open_stand_in(why: String) -> Decision {
        let mut d = Decision::new(Status::Allow, Gate::Unavailable)
            .with_reasons(["FAIL_OPEN"])
            .with_explanation(format!(
                "no verdict ({why}); the client is in fail-open mode"
            ));
        d.fail_open = Some(why);
        d
    }

    /// Sets the reason codes.
    #[must_use]
    pub fn with_reasons<I, S>(mut self, codes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.reason_codes = codes.into_iter().map(Into::into).collect();
        self
    }

    /// Sets the explanation.
    #[must_use]
    pub fn with_explanation(mut self, explanation: impl Into<String>) -> Self {
        self.explanation = explanation.into();
        self
    }

    /// Sets the decision id.
    #[must_use]
    pub fn with_id(mut self, id: impl Into<String>) -> Self {
        self.decision_id = id.into();
        self
    }

    /// Sets `retry_after_ms`.
    #[must_use]
    pub fn with_retry_after_ms(mut self, ms: u64) -> Self {
        self.retry_after_ms = Some(ms);
        self
    }

    /// Sets the review id.
    #[must_use]
    pub fn with_review_id(mut self, id: impl Into<String>) -> Self {
        self.review_id = Some(id.into());
        self
    }
}
