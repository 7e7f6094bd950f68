//! Request bodies: JSON parsing with a depth limit, typed decoding with field-level
//! 422 errors, and the request fingerprint used by idempotency.

use serde::de::DeserializeOwned;
use serde_json::Value;
use tollgate_core::FieldError;

use crate::service::Error as ApiError;

/// Parses a JSON object body, refusing nesting deeper than `max_depth`.
pub fn parse_object(bytes: &[u8], max_depth: usize) -> Result<Value, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::field(
            &["body"],
            "a JSON object body is required",
            "missing",
        ));
    }
    let value: Value = serde_json::from_slice(bytes)
        .map_err(|e| ApiError::field(&["body"], format!("invalid JSON: {e}"), "json_invalid"))?;
    if depth(&value) > max_depth {
        return Err(ApiError::field(
            &["body"],
            format!("JSON nests deeper than {max_depth} levels"),
            "json_too_deep",
        ));
    }
    if !value.is_object() {
        return Err(ApiError::field(
            &["body"],
            "the body must be a JSON object",
            "dict_type",
        ));
    }
    Ok(value)
}

fn depth(v: &Value) -> usize {
    // Iterative, so hostile input cannot overflow the stack here.
    let mut max = 0;
    let mut stack = vec![(v, 1usize)];
    while let Some((v, d)) = stack.pop() {
        max = max.max(d);
        match v {
            Value::Array(items) => stack.extend(items.iter().map(|i| (i, d + 1))),
            Value::Object(map) => stack.extend(map.values().map(|i| (i, d + 1))),
            _ => {}
        }
    }
    max
}

/// Decodes `value` into `T`, reporting the path of the first problem as a 422.
pub fn decode<T: DeserializeOwned>(value: Value) -> Result<T, ApiError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let mut loc = vec!["body".to_owned()];
        for seg in e.path().iter() {
            match seg {
                serde_path_to_error::Segment::Seq { index } => loc.push(index.to_string()),
                serde_path_to_error::Segment::Map { key } => loc.push(key.clone()),
                serde_path_to_error::Segment::Enum { variant } => loc.push(variant.clone()),
                serde_path_to_error::Segment::Unknown => {}
            }
        }
        let msg = e.inner().to_string();
        // serde reports a missing field at its parent: name the field itself.
        let missing = msg
            .strip_prefix("missing field `")
            .and_then(|rest| rest.split('`').next())
            .map(str::to_owned);
        let kind = match missing {
            Some(field) => {
                loc.push(field);
                "missing"
            }
            None => "value_error",
        };
        ApiError::Validation(vec![FieldError {
            loc,
            msg,
            kind: kind.to_owned(),
        }])
    })
}

/// SHA-256 (hex) of the canonical body without `idempotency_key`: two requests are
/// "the same" for idempotency iff their fingerprints are equal.
pub fn fingerprint(body: &Value) -> Result<String, ApiError> {
    let mut body = body.clone();
    if let Some(obj) = body.as_object_mut() {
        obj.remove("idempotency_key");
        obj.remove("idempotencyKey");
    }
    let bytes = tollgate_core::digest::canonical_bytes(&body).map_err(ApiError::internal)?;
    Ok(tollgate_core::digest::sha256_hex(&bytes))
}
