//! Outcome reports: what happened after an allowed action, signed by its source.
//!
//! The signature covers the RFC 8785 (JCS) bytes of exactly eight fields:
//! `confidence, context_type, is_correction, is_final, magnitude,
//! outcome_observed_at, source, stimulus_id` (docs/engine.md "Outcome reports").

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::{Signer as _, SigningKey};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::verify::VerifyError;

/// An outcome, before signing.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OutcomeReport {
    /// The decision the outcome follows (`decision_id`).
    pub stimulus_id: String,
    /// How good the outcome was, in [-1, 1].
    pub magnitude: f64,
    /// How sure the source is, in [0, 1].
    pub confidence: f64,
    /// The registered source that reports.
    pub source: String,
    /// The decision's action type.
    pub context_type: String,
    /// When the outcome was observed, RFC 3339.
    pub outcome_observed_at: String,
    /// Whether this is the final outcome of the decision.
    pub is_final: bool,
    /// Whether it supersedes an earlier final outcome.
    pub is_correction: bool,
}

/// A signed outcome, as `POST /v1/outcomes` takes it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SignedOutcome {
    /// The report.
    #[serde(flatten)]
    pub report: OutcomeReport,
    /// base64 of the Ed25519 signature over [`OutcomeReport::signed_bytes`].
    pub signature: String,
    /// base64 of the source's public key (optional: the server uses the registered one
    /// and checks that this matches it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_key: Option<String>,
}

/// The server's acknowledgement.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutcomeReceipt {
    /// `accepted`.
    pub status: String,
    /// `out_…`.
    pub outcome_id: String,
    /// `live` or `test`.
    #[serde(default)]
    pub environment: String,
    /// Whether the outcome counts.
    #[serde(default)]
    pub accepted: bool,
}

impl OutcomeReport {
    /// A final, non-correcting report.
    pub fn new(
        stimulus_id: impl Into<String>,
        source: impl Into<String>,
        context_type: impl Into<String>,
        magnitude: f64,
        confidence: f64,
        outcome_observed_at: impl Into<String>,
    ) -> Self {
        OutcomeReport {
            stimulus_id: stimulus_id.into(),
            magnitude,
            confidence,
            source: source.into(),
            context_type: context_type.into(),
            outcome_observed_at: outcome_observed_at.into(),
            is_final: true,
            is_correction: false,
        }
    }

    /// The canonical bytes the signature covers.
    pub fn signed_bytes(&self) -> Result<Vec<u8>, VerifyError> {
        let value = json!({
            "confidence": self.confidence,
            "context_type": self.context_type,
            "is_correction": self.is_correction,
            "is_final": self.is_final,
            "magnitude": self.magnitude,
            "outcome_observed_at": self.outcome_observed_at,
            "source": self.source,
            "stimulus_id": self.stimulus_id,
        });
        tollgate_ledger::canonical_json(&value).map_err(|e| VerifyError::Canonical(e.to_string()))
    }

    /// Signs with the source's key (and includes its public key).
    pub fn sign(self, key: &SigningKey) -> Result<SignedOutcome, VerifyError> {
        let bytes = self.signed_bytes()?;
        Ok(SignedOutcome {
            signature: B64.encode(key.sign(&bytes).to_bytes()),
            public_key: Some(B64.encode(key.verifying_key().to_bytes())),
            report: self,
        })
    }
}
