//! Canonical encodings and digests: RFC 8785 (JSON Canonicalization Scheme) + SHA-256.

use serde::Serialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::request::DecisionRequest;

/// Hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// RFC 8785 canonical bytes of any serialisable value (written by
/// [`crate::canonical`], held to `serde_json_canonicalizer` by property tests).
pub fn canonical_bytes<T: Serialize>(value: &T) -> Result<Vec<u8>, CanonicalError> {
    crate::canonical::to_vec(value).map_err(|e| CanonicalError(e.to_string()))
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

/// The request digest and the action digest of `request` (as [`request_digest`] and
/// [`action_digest`]), from one canonicalisation: the canonical
/// `{actor, action, context}` object, read off typed fields without building a
/// `Value`. RFC 8785 sorts members by name and `tenant` sorts after `action`, `actor`
/// and `context`, so the request digest's bytes are the action digest's with
/// `,"tenant":…` put before the closing brace.
pub fn request_and_action_digests(
    request: &DecisionRequest,
) -> Result<([u8; 32], [u8; 32]), CanonicalError> {
    #[derive(Serialize)]
    struct Action<'a> {
        action: &'a serde_json::Map<String, Value>,
        actor: &'a serde_json::Map<String, Value>,
        context: &'a serde_json::Map<String, Value>,
    }
    let mut bytes = canonical_bytes(&Action {
        action: &request.action,
        actor: &request.actor,
        context: &request.context,
    })?;
    let action = sha256(&bytes);
    if bytes.pop() != Some(b'}') {
        return Err(CanonicalError("not an object".into()));
    }
    bytes.extend_from_slice(b",\"tenant\":");
    bytes.extend_from_slice(&canonical_bytes(&request.tenant)?);
    bytes.push(b'}');
    Ok((sha256(&bytes), action))
}

/// SHA-256 of the canonical bytes of `value`.
pub fn value_digest(value: &Value) -> Result<[u8; 32], CanonicalError> {
    Ok(sha256(&canonical_bytes(value)?))
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn object() -> impl Strategy<Value = serde_json::Map<String, Value>> {
        let leaf = prop_oneof![
            any::<i64>().prop_map(Value::from),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(Value::from),
            "\\PC{0,8}".prop_map(Value::from),
            any::<bool>().prop_map(Value::from),
        ];
        let value = leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
                prop::collection::btree_map("\\PC{0,6}", inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        });
        prop::collection::btree_map("\\PC{0,6}", value, 0..5).prop_map(|m| m.into_iter().collect())
    }

    proptest! {
        #[test]
        fn one_canonicalisation_gives_both_digests(
            tenant in "\\PC{0,12}", actor in object(), action in object(), context in object()
        ) {
            let request = DecisionRequest { tenant, actor, action, context, ..Default::default() };
            let (r, a) = request_and_action_digests(&request).unwrap();
            prop_assert_eq!(r, request_digest(&request).unwrap());
            prop_assert_eq!(a, action_digest(&request).unwrap());
        }
    }
}
