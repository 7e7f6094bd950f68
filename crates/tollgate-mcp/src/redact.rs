//! `redact`: JSON paths in a call's `arguments` whose values the decision (and so the
//! ledger) sees only as their SHA-256. The upstream still gets the real value.
//!
//! Path syntax: field names joined by `.`, `[N]` for an array index, `[*]` for every
//! element, `*` for every field: `path`, `options.token`, `items[*].secret`.

use serde_json::{Map, Value};
use sha2::{Digest as _, Sha256};

/// One step of a path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// A named field.
    Field(String),
    /// Every field of an object.
    AnyField,
    /// One array element.
    Index(usize),
    /// Every array element.
    AnyIndex,
}

/// Parses `a.b[0].c[*]`.
pub fn parse_path(path: &str) -> anyhow::Result<Vec<Step>> {
    let mut steps = Vec::new();
    for part in path.split('.') {
        let (name, mut rest) = match part.find('[') {
            Some(i) => (&part[..i], &part[i..]),
            None => (part, ""),
        };
        match name {
            "" if steps.is_empty() || rest.is_empty() => {
                anyhow::bail!("empty field name in `{path}`")
            }
            "" => {}
            "*" => steps.push(Step::AnyField),
            n => steps.push(Step::Field(n.to_owned())),
        }
        while !rest.is_empty() {
            let end = rest
                .find(']')
                .ok_or_else(|| anyhow::anyhow!("unclosed `[` in `{path}`"))?;
            let inner = &rest[1..end];
            steps.push(if inner == "*" {
                Step::AnyIndex
            } else {
                Step::Index(
                    inner
                        .parse()
                        .map_err(|_| anyhow::anyhow!("bad index `[{inner}]` in `{path}`"))?,
                )
            });
            rest = &rest[end + 1..];
            if !rest.is_empty() && !rest.starts_with('[') {
                anyhow::bail!("unexpected `{rest}` in `{path}`");
            }
        }
    }
    if steps.is_empty() {
        anyhow::bail!("empty path");
    }
    Ok(steps)
}

/// SHA-256 hex of a value: of the UTF-8 bytes for a string, of the canonical JSON
/// (RFC 8785) otherwise.
pub fn digest(value: &Value) -> String {
    let bytes = match value {
        Value::String(s) => s.as_bytes().to_vec(),
        // A JSON value always has canonical bytes; an empty digest input never
        // happens for a value parsed from a request.
        other => tollgate_ledger::canonical_json(other).unwrap_or_default(),
    };
    hex::encode(Sha256::digest(&bytes))
}

/// Replaces every value at `paths` in `args` by its digest.
pub fn redact(args: &mut Map<String, Value>, paths: &[Vec<Step>]) {
    for path in paths {
        if let Some((first, rest)) = path.split_first() {
            match first {
                Step::Field(name) => {
                    if let Some(v) = args.get_mut(name) {
                        apply(v, rest);
                    }
                }
                Step::AnyField => {
                    for v in args.values_mut() {
                        apply(v, rest);
                    }
                }
                Step::Index(_) | Step::AnyIndex => {}
            }
        }
    }
}

fn apply(value: &mut Value, path: &[Step]) {
    let Some((first, rest)) = path.split_first() else {
        *value = Value::String(digest(value));
        return;
    };
    match (first, value) {
        (Step::Field(name), Value::Object(m)) => {
            if let Some(v) = m.get_mut(name) {
                apply(v, rest);
            }
        }
        (Step::AnyField, Value::Object(m)) => {
            for v in m.values_mut() {
                apply(v, rest);
            }
        }
        (Step::Index(i), Value::Array(a)) => {
            if let Some(v) = a.get_mut(*i) {
                apply(v, rest);
            }
        }
        (Step::AnyIndex, Value::Array(a)) => {
            for v in a {
                apply(v, rest);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn paths_parse_and_bad_ones_fail() {
        assert_eq!(
            parse_path("items[*].secret").unwrap(),
            vec![
                Step::Field("items".into()),
                Step::AnyIndex,
                Step::Field("secret".into())
            ]
        );
        assert_eq!(
            parse_path("a[2][0]").unwrap(),
            vec![Step::Field("a".into()), Step::Index(2), Step::Index(0)]
        );
        for bad in ["", "a..b", "a[x]", "a[1", "a[1]b"] {
            assert!(parse_path(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn values_are_replaced_by_their_digest() {
        let mut args = json!({
            "path": "/etc/shadow",
            "options": {"token": "s3cret", "keep": 1},
            "items": [{"secret": "a"}, {"secret": {"x": 1}}],
        })
        .as_object()
        .cloned()
        .unwrap();
        let paths: Vec<_> = ["options.token", "items[*].secret", "missing.x"]
            .iter()
            .map(|p| parse_path(p).unwrap())
            .collect();
        redact(&mut args, &paths);
        assert_eq!(args["path"], "/etc/shadow");
        assert_eq!(args["options"]["keep"], 1);
        assert_eq!(
            args["options"]["token"],
            hex::encode(Sha256::digest(b"s3cret"))
        );
        assert_eq!(
            args["items"][0]["secret"],
            hex::encode(Sha256::digest(b"a"))
        );
        assert_eq!(
            args["items"][1]["secret"],
            hex::encode(Sha256::digest(br#"{"x":1}"#))
        );
    }
}
