//! Outcome reports (docs/engine.md "Outcome reports"): signed by a registered source,
//! integrity-checked, recorded in the ledger, feeding the adaptive bias.
//!
//! Signed bytes: the UTF-8 bytes of the JSON object with exactly the keys
//! `confidence, context_type, is_correction, is_final, magnitude,
//! outcome_observed_at, source, stimulus_id`, keys sorted, no whitespace, numbers
//! parsed and re-emitted in shortest round-trip form — that is, RFC 8785 (JCS) of
//! those eight fields as sent.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::{Signature, Verifier as _, VerifyingKey};
use serde::Deserialize;
use serde_json::{Value, json};
use tollgate_ledger::{EntryDraft, EntryKind};
use tollgate_store::Record;

use crate::clock::rfc3339;
use crate::service::DecisionService;
use crate::service::Error;
use crate::service::auth::{Caller, random_id};
use crate::service::body::decode;

/// Clock skew tolerated for `outcome_observed_at`.
pub const MAX_SKEW_MS: i64 = 60_000;

/// The fields covered by an outcome signature, in signed order.
pub const SIGNED_FIELDS: [&str; 8] = [
    "confidence",
    "context_type",
    "is_correction",
    "is_final",
    "magnitude",
    "outcome_observed_at",
    "source",
    "stimulus_id",
];

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub(crate) struct OutcomeReport {
    /// The decision.
    stimulus_id: String,
    /// In [-1, 1].
    magnitude: f64,
    /// In [0, 1].
    confidence: f64,
    /// Base64 Ed25519 signature over RFC 8785 of the eight signed fields.
    signature: String,
    /// The registered source.
    source: String,
    /// The decision's action type.
    context_type: String,
    /// RFC 3339.
    outcome_observed_at: String,
    /// Default true.
    #[serde(default = "yes")]
    is_final: bool,
    /// Default false.
    #[serde(default)]
    is_correction: bool,
    /// Must match the registered key when given.
    #[serde(default)]
    public_key: Option<String>,
}

fn yes() -> bool {
    true
}

/// The canonical bytes an outcome signature covers, from the body as sent.
pub fn signed_bytes(body: &Value) -> Result<Vec<u8>, Error> {
    let mut obj = serde_json::Map::new();
    for f in SIGNED_FIELDS {
        let v = match (f, body.get(f)) {
            (_, Some(v)) => v.clone(),
            ("is_final", None) => json!(true),
            ("is_correction", None) => json!(false),
            (_, None) => return Err(Error::field(&["body", f], "field required", "missing")),
        };
        obj.insert(f.to_owned(), v);
    }
    tollgate_core::digest::canonical_bytes(&Value::Object(obj)).map_err(Error::internal)
}

/// Parses a public key given as base64 of the 32 raw bytes or as PEM.
pub fn parse_public_key(text: &str) -> Option<VerifyingKey> {
    if text.contains("BEGIN") {
        return tollgate_ledger::public_key_from_pem(text).ok();
    }
    let raw = B64.decode(text.trim()).ok()?;
    let bytes: [u8; 32] = raw.try_into().ok()?;
    VerifyingKey::from_bytes(&bytes).ok()
}

fn reject(message: impl Into<String>) -> Error {
    Error::Unprocessable {
        code: "outcome_rejected",
        message: message.into(),
    }
}

/// Unix milliseconds of an RFC 3339 UTC time (`Z` or `+00:00`).
pub(crate) fn parse_time_ms(text: &str) -> Option<i64> {
    let text = match text.strip_suffix("+00:00") {
        Some(t) => format!("{t}Z"),
        None => text.to_owned(),
    };
    let t = humantime::parse_rfc3339(&text).ok()?;
    let d = t.duration_since(std::time::UNIX_EPOCH).ok()?;
    i64::try_from(d.as_millis()).ok()
}

impl DecisionService {
    /// Verifies and accepts a signed outcome report (`body` as received: the
    /// signature covers its fields). Recorded in the ledger before it is stored.
    pub async fn report_outcome(&self, caller: &Caller, body: Value) -> Result<Value, Error> {
        caller.require("outcomes")?;
        let tenant = caller.tenant().to_owned();
        let report: OutcomeReport = decode(body.clone())?;
        if !(-1.0..=1.0).contains(&report.magnitude) {
            return Err(Error::field(
                &["body", "magnitude"],
                "magnitude must be in [-1, 1]",
                "value_error",
            ));
        }
        if !(0.0..=1.0).contains(&report.confidence) {
            return Err(Error::field(
                &["body", "confidence"],
                "confidence must be in [0, 1]",
                "value_error",
            ));
        }
        // 1. The source is registered for this tenant and the signature verifies.
        let mut source = self
            .store()
            .source(&tenant, &report.source)?
            .ok_or_else(|| {
                reject(format!(
                    "source `{}` is not registered for this tenant",
                    report.source
                ))
            })?;
        let registered = source.body["public_key"]
            .as_str()
            .and_then(parse_public_key)
            .ok_or_else(|| Error::internal("a registered source has no valid key"))?;
        if let Some(given) = &report.public_key
            && parse_public_key(given) != Some(registered)
        {
            return Err(reject(
                "public_key does not match the key registered for the source",
            ));
        }
        let sig = B64
            .decode(report.signature.trim())
            .ok()
            .and_then(|b| <[u8; 64]>::try_from(b).ok())
            .map(|b| Signature::from_bytes(&b))
            .ok_or_else(|| reject("signature is not base64 of 64 bytes"))?;
        let message = signed_bytes(&body)?;
        registered
            .verify(&message, &sig)
            .map_err(|_| reject("signature does not verify against the source's registered key"))?;
        // 2. The stimulus exists, is this tenant's, and was decided before the outcome,
        //    which is not in the future.
        let (entry, decision) = self
            .decision(&tenant, &report.stimulus_id)
            .map_err(|_| reject(format!("stimulus `{}` not found", report.stimulus_id)))?;
        let observed_ms = parse_time_ms(&report.outcome_observed_at)
            .ok_or_else(|| reject("outcome_observed_at must be an RFC 3339 time"))?;
        let decided_ms = parse_time_ms(&entry.time).unwrap_or(i64::MAX);
        if observed_ms < decided_ms {
            return Err(reject(
                "the outcome was observed before the decision was made",
            ));
        }
        if observed_ms > self.now_ms() + MAX_SKEW_MS {
            return Err(reject("outcome_observed_at is in the future"));
        }
        // 3. The context type is the decision's action type.
        let action_type = decision.request.action_type().unwrap_or_default();
        if report.context_type != action_type {
            return Err(reject(format!(
                "context_type `{}` does not match the decision's action type `{action_type}`",
                report.context_type
            )));
        }
        // 4. At most one final outcome per stimulus; a later one only as a correction.
        let mut outcomes: Vec<Value> = source.body["outcomes"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let has_final = outcomes.iter().any(|o| {
            o["stimulus_id"] == json!(report.stimulus_id)
                && o["is_final"] == json!(true)
                && o["superseded"] != json!(true)
        });
        if has_final && !report.is_correction {
            return Err(reject(
                "a final outcome was already accepted for this stimulus; send is_correction: true to supersede it",
            ));
        }
        // Accepted: record in the ledger first, then make it count.
        let outcome_id = random_id("out")?;
        let now = self.now_ms();
        let draft = EntryDraft {
            tenant: tenant.clone(),
            time: rfc3339(now),
            kind: EntryKind::OutcomeAccepted,
            body: json!({
                "outcome_id": outcome_id,
                "report": body,
                "source": report.source,
                "stimulus_id": report.stimulus_id,
                "api_key_id": caller.key.id,
            }),
        };
        self.append(draft).await?;
        if report.is_correction {
            for o in outcomes
                .iter_mut()
                .filter(|o| o["stimulus_id"] == json!(report.stimulus_id))
            {
                o["superseded"] = json!(true);
            }
        }
        outcomes.push(json!({
            "outcome_id": outcome_id,
            "stimulus_id": report.stimulus_id,
            "magnitude": report.magnitude,
            "confidence": report.confidence,
            "observed_ms": observed_ms,
            "decisions_at_accept": self.source_decisions(&tenant, &report.source)?,
            "is_final": report.is_final,
            "is_correction": report.is_correction,
        }));
        // Keep the newest; older outcomes have decayed to nothing long before.
        let keep = outcomes.len().saturating_sub(1000);
        outcomes.drain(..keep);
        source.body["outcomes"] = Value::Array(outcomes);
        self.store().put_source(&Record { ..source })?;
        Ok(json!({
            "status": "accepted",
            "outcome_id": outcome_id,
            "environment": caller.environment(),
            "accepted": true,
        }))
    }

    /// Accepted outcomes of a decision (for its dossier), superseded ones marked.
    pub(crate) fn outcomes_of(&self, tenant: &str, decision_id: &str) -> Result<Value, Error> {
        let mut out = Vec::new();
        for s in self.store().sources(tenant)? {
            for o in s.body["outcomes"].as_array().into_iter().flatten() {
                if o["stimulus_id"] == json!(decision_id) {
                    let mut o = o.clone();
                    o["source"] = json!(s.id);
                    out.push(o);
                }
            }
        }
        Ok(Value::Array(out))
    }

    /// The adaptive-bias outcomes that count: not superseded.
    pub(crate) fn live_outcomes(body: &Value) -> impl Iterator<Item = &Value> {
        body["outcomes"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|o| o["superseded"] != json!(true))
    }
}
