//! Canonical encodings and digests: RFC 8785 (JSON Canonicalization Scheme) + SHA-256.

use serde::Serialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::request::DecisionRequest;

/// Hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// RFC 8785 canonical bytes of any serialisable value.
pub fn canonical_bytes<T: Serialize>(value: &T) -> Result<Vec<u8>, CanonicalError> {
    serde_json_canonicalizer::to_vec(value).map_err(|e| CanonicalError(e.to_string()))
}

/// A value that cannot be canonicalised (for example a non-finite number).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("cannot canonicalise value: {0}")]
pub struct CanonicalError(String);

/// The request digest: SHA-256 of the canonical `{tenant, actor, action, context}`.
///
/// It identifies "the same request" for idempotency and reviews: idempotency keys,
/// correlation ids, mode and signals do not change it.
pub fn request_digest(request: &DecisionRequest) -> Result<[u8; 32], CanonicalError> {
    let value = json!({
        "tenant": request.tenant,
        "actor": request.actor,
        "action": request.action,
        "context": request.context,
    });
    Ok(sha256(&canonical_bytes(&value)?))
}

/// The action digest bound into execution grants: SHA-256 of the canonical
/// `{actor, action, context}`.
pub fn action_digest(request: &DecisionRequest) -> Result<[u8; 32], CanonicalError> {
    let value = json!({
        "actor": request.actor,
        "action": request.action,
        "context": request.context,
    });
    Ok(sha256(&canonical_bytes(&value)?))
}

/// SHA-256 of the canonical bytes of `value`.
pub fn value_digest(value: &Value) -> Result<[u8; 32], CanonicalError> {
    Ok(sha256(&canonical_bytes(value)?))
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}
