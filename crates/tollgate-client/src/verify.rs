//! Offline verification from the server's JWKS: decision signatures and dossier
//! inclusion proofs. Nothing here touches the network.
//!
//! Execution grants (docs/protocol.md §1) are compact JWS tokens (EdDSA) that bind the
//! tenant, the decision, the SHA-256 of the canonical action and an expiry; the
//! service that finally acts checks them with [`grant_for`] before it acts.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD as B64, URL_SAFE_NO_PAD};
use ed25519_dalek::{Signature, VerifyingKey};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest as _, Sha256};
use tollgate_ledger::{Dossier, DossierFailure, Jwks, NoteVerifier, Verified};

use crate::decision::Decision;
use crate::request::DecisionRequest;

/// Why a check failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// The decision carries no signature.
    #[error("the decision is not signed")]
    Unsigned,
    /// An algorithm other than Ed25519.
    #[error("unsupported signature algorithm `{0}`")]
    Algorithm(String),
    /// No key of the JWKS has the signature's key id.
    #[error("no key `{0}` in the JWKS")]
    UnknownKey(String),
    /// A key of the JWKS is not a valid Ed25519 key.
    #[error("bad key in the JWKS: {0}")]
    BadKey(String),
    /// A batch signature without a well-formed `batch` (index, size, hex path).
    #[error("the batch signature's `batch` is malformed")]
    MalformedBatch,
    /// The signature is not base64 of 64 bytes.
    #[error("the signature is not base64 of 64 bytes")]
    Encoding,
    /// The signature does not match the bytes.
    #[error("the signature does not match the decision")]
    Mismatch,
    /// The body cannot be canonicalised.
    #[error("cannot canonicalise: {0}")]
    Canonical(String),
    /// None of the dossier's checkpoint keys is in the JWKS.
    #[error("none of the dossier's checkpoint keys is in the JWKS")]
    UntrustedCheckpoint,
    /// The dossier's proof does not verify.
    #[error("dossier: {0}")]
    Dossier(#[from] DossierFailure),
    /// A whole ledger does not verify.
    #[error("ledger: {0}")]
    Ledger(String),
    /// A grant that is not a compact JWS signed with EdDSA by a key of the JWKS.
    #[error("malformed grant: {0}")]
    MalformedGrant(String),
    /// The grant has expired.
    #[error("the grant expired at {exp} (now {now})")]
    GrantExpired {
        /// Its expiry, Unix seconds.
        exp: i64,
        /// The time it was checked at, Unix seconds.
        now: i64,
    },
    /// The grant authorises another action than the one about to run.
    #[error("the grant authorises another action")]
    ActionMismatch,
    /// The dossier is valid but is not the record of this decision.
    #[error("the dossier is not this decision's record: {0}")]
    NotThisDecision(String),
}

/// A dossier as served by `GET /v1/dossiers/{id}`: the proof material plus the
/// decision's request, verdict and trace (in `raw`).
#[derive(Clone, Debug, PartialEq)]
pub struct DossierDocument {
    /// Entry, inclusion proof, checkpoint, verifier keys.
    pub proof: Dossier,
    /// The whole body.
    pub raw: Value,
}

impl DossierDocument {
    /// Parses a dossier body.
    pub fn from_json(raw: Value) -> Result<DossierDocument, serde_json::Error> {
        let proof = Dossier::deserialize(&raw)?;
        Ok(DossierDocument { proof, raw })
    }

    /// The recorded decision id.
    pub fn decision_id(&self) -> Option<&str> {
        self.proof
            .entry
            .body
            .get("decision_id")
            .and_then(Value::as_str)
    }
}

fn key_of(jwks: &Jwks, kid: &str) -> Result<Vec<VerifyingKey>, VerifyError> {
    let keys: Vec<_> = jwks
        .keys
        .iter()
        .filter(|k| kid.is_empty() || k.kid == kid)
        .map(|k| k.to_key().map_err(|e| VerifyError::BadKey(e.to_string())))
        .collect::<Result<_, _>>()?;
    if keys.is_empty() {
        return Err(VerifyError::UnknownKey(kid.to_owned()));
    }
    Ok(keys)
}

/// Checks a response body's `signature`, by the JWKS key named by `signature.key_id`,
/// over the RFC 8785 bytes of the body without `signature`: either an Ed25519
/// signature of those bytes (`"algorithm": "Ed25519"`), or a batch signature
/// (`"Ed25519-Merkle-batch"`: an Ed25519 signature of the Merkle root of a batch of
/// responses, with this response's leaf index, the batch size and its audit path in
/// `signature.batch`; `tollgate_ledger::batch`).
pub fn body_signature(body: &Value, jwks: &Jwks) -> Result<(), VerifyError> {
    let Value::Object(obj) = body else {
        return Err(VerifyError::Unsigned);
    };
    let Some(sig) = obj.get("signature") else {
        return Err(VerifyError::Unsigned);
    };
    let algorithm = sig["algorithm"].as_str().unwrap_or_default();
    let batch = match algorithm {
        "Ed25519" => None,
        tollgate_ledger::batch::BATCH_ALGORITHM => Some(batch_position(&sig["batch"])?),
        _ => return Err(VerifyError::Algorithm(algorithm.to_owned())),
    };
    let raw = B64
        .decode(sig["value"].as_str().unwrap_or_default())
        .map_err(|_| VerifyError::Encoding)?;
    let raw = <[u8; 64]>::try_from(raw.as_slice()).map_err(|_| VerifyError::Encoding)?;
    let signature = Signature::from_bytes(&raw);
    let mut unsigned = obj.clone();
    unsigned.remove("signature");
    let bytes = tollgate_ledger::canonical_json(&Value::Object(unsigned))
        .map_err(|e| VerifyError::Canonical(e.to_string()))?;
    let keys = key_of(jwks, sig["key_id"].as_str().unwrap_or_default())?;
    let verifies = |k: &VerifyingKey| match &batch {
        None => k.verify_strict(&bytes, &signature).is_ok(),
        Some((index, size, path)) => {
            tollgate_ledger::batch::verify_batch(&bytes, *index, *size, path, &signature, k).is_ok()
        }
    };
    if keys.iter().any(verifies) {
        Ok(())
    } else {
        Err(VerifyError::Mismatch)
    }
}

/// `signature.batch`: `index`, `size` and `path` (hex hashes).
fn batch_position(batch: &Value) -> Result<(u64, u64, Vec<tollgate_ledger::Hash>), VerifyError> {
    let bad = || VerifyError::MalformedBatch;
    let index = batch["index"].as_u64().ok_or_else(bad)?;
    let size = batch["size"].as_u64().ok_or_else(bad)?;
    let path = batch["path"]
        .as_array()
        .ok_or_else(bad)?
        .iter()
        .map(|h| {
            h.as_str()
                .and_then(tollgate_ledger::Hash::from_hex)
                .ok_or_else(bad)
        })
        .collect::<Result<_, _>>()?;
    Ok((index, size, path))
}

/// Checks a decision's signature (over [`Decision::raw`], the body as received).
pub fn decision_signature(decision: &Decision, jwks: &Jwks) -> Result<(), VerifyError> {
    body_signature(&decision.raw, jwks)
}

/// Checks a dossier: the entry hashes to its `entry_hash`, the checkpoint is signed by
/// a key of `jwks` (not merely by a key the dossier names), and the inclusion proof
/// leads from the entry to the checkpoint's root.
pub fn dossier(dossier: &DossierDocument, jwks: &Jwks) -> Result<Verified, VerifyError> {
    let trusted_keys: Vec<VerifyingKey> =
        jwks.keys.iter().filter_map(|k| k.to_key().ok()).collect();
    let trusted: Vec<NoteVerifier> = dossier
        .proof
        .verifier_keys
        .iter()
        .filter_map(|v| NoteVerifier::from_vkey(v).ok())
        .filter(|v| trusted_keys.contains(&v.key))
        .collect();
    if trusted.is_empty() {
        return Err(VerifyError::UntrustedCheckpoint);
    }
    Ok(tollgate_ledger::verify_dossier(
        &dossier.proof,
        Some(&trusted),
    )?)
}

/// [`dossier`], and the dossier's entry is this decision's record: same decision id,
/// same ledger position and hash as the (signed) verdict says.
pub fn dossier_of(
    decision: &Decision,
    doc: &DossierDocument,
    jwks: &Jwks,
) -> Result<Verified, VerifyError> {
    let verified = dossier(doc, jwks)?;
    if doc.decision_id() != Some(decision.decision_id.as_str()) {
        return Err(VerifyError::NotThisDecision(format!(
            "the entry records `{}`",
            doc.decision_id().unwrap_or_default()
        )));
    }
    // A verdict answered while its entry was pending names no position: the
    // decision id above ties the dossier to it.
    if let Some(ledger) = &decision.ledger
        && let (Some(seq), Some(hash)) = (ledger.seq, &ledger.entry_hash)
    {
        let entry = &doc.proof.entry;
        if entry.seq != seq || entry.entry_hash.to_hex() != *hash {
            return Err(VerifyError::NotThisDecision(format!(
                "the verdict names seq {seq} but the entry is seq {}",
                entry.seq
            )));
        }
    }
    Ok(verified)
}

/// The claims of an execution grant.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrantClaims {
    /// `tollgate`.
    pub iss: String,
    /// The tenant.
    pub sub: String,
    /// Unique grant id (`grt_…`), what `POST /v1/grants/consume` marks used.
    pub jti: String,
    /// The decision that allowed the action.
    pub decision_id: String,
    /// Hex SHA-256 of the RFC 8785 bytes of `{actor, action, context}`.
    pub action_digest: String,
    /// Issued at, Unix seconds.
    pub iat: i64,
    /// Expires at, Unix seconds.
    pub exp: i64,
}

/// Hex SHA-256 of the RFC 8785 bytes of the request's `{actor, action, context}`:
/// what a grant binds.
pub fn action_digest(request: &DecisionRequest) -> Result<String, VerifyError> {
    let value = serde_json::json!({
        "actor": request.actor,
        "action": request.action,
        "context": request.context,
    });
    let bytes = tollgate_ledger::canonical_json(&value)
        .map_err(|e| VerifyError::Canonical(e.to_string()))?;
    Ok(Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

fn b64url_json(part: &str) -> Result<Value, VerifyError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| VerifyError::MalformedGrant("a part is not base64url".into()))?;
    serde_json::from_slice(&bytes)
        .map_err(|_| VerifyError::MalformedGrant("a part is not JSON".into()))
}

/// Checks a grant: an EdDSA compact JWS signed by the key of `jwks` its header names,
/// issued by `tollgate`, not expired at `now_s` (Unix seconds). Returns its claims.
/// It does not check which action it authorises: see [`grant_for`].
pub fn grant(token: &str, jwks: &Jwks, now_s: i64) -> Result<GrantClaims, VerifyError> {
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(VerifyError::MalformedGrant("not a compact JWS".into()));
    };
    let header = b64url_json(h)?;
    if header["alg"] != "EdDSA" {
        return Err(VerifyError::Algorithm(
            header["alg"].as_str().unwrap_or_default().to_owned(),
        ));
    }
    let kid = header["kid"]
        .as_str()
        .ok_or_else(|| VerifyError::MalformedGrant("no `kid`".into()))?;
    let raw = URL_SAFE_NO_PAD
        .decode(s)
        .map_err(|_| VerifyError::Encoding)?;
    let raw = <[u8; 64]>::try_from(raw.as_slice()).map_err(|_| VerifyError::Encoding)?;
    let signature = Signature::from_bytes(&raw);
    let signed = format!("{h}.{p}");
    if !key_of(jwks, kid)?
        .iter()
        .any(|k| k.verify_strict(signed.as_bytes(), &signature).is_ok())
    {
        return Err(VerifyError::Mismatch);
    }
    let claims: GrantClaims = serde_json::from_value(b64url_json(p)?)
        .map_err(|e| VerifyError::MalformedGrant(e.to_string()))?;
    if claims.iss != "tollgate" {
        return Err(VerifyError::MalformedGrant(format!(
            "issuer `{}` is not tollgate",
            claims.iss
        )));
    }
    if claims.exp <= now_s {
        return Err(VerifyError::GrantExpired {
            exp: claims.exp,
            now: now_s,
        });
    }
    Ok(claims)
}

/// [`grant`], and the grant authorises exactly this action (`actor`, `action`,
/// `context` of `request`). The executing service calls it before it acts; it then
/// consumes the grant (`Client::consume_grant`) so that it works once.
pub fn grant_for(
    token: &str,
    jwks: &Jwks,
    request: &DecisionRequest,
    now_s: i64,
) -> Result<GrantClaims, VerifyError> {
    let claims = grant(token, jwks, now_s)?;
    if claims.action_digest != action_digest(request)? {
        return Err(VerifyError::ActionMismatch);
    }
    Ok(claims)
}

/// The current time in Unix seconds (for [`grant`] and [`grant_for`]).
pub fn now_s() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
