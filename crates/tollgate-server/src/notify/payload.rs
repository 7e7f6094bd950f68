//! What a delivery carries: the Standard Webhooks body and headers, the Slack Block
//! Kit message, CloudEvents 1.0 (JSON format) and Splunk HEC events. Pure functions of
//! a ledger entry (and, for Slack, the decision a review is about).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{KeyInit as _, Mac as _};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};
use tollgate_ledger::Entry;

use crate::service::records::DecisionEntryBody;

/// The Standard Webhooks secret prefix.
pub const SECRET_PREFIX: &str = "whsec_";

/// A fresh webhook signing secret: `whsec_` and the base64 of 24 random bytes.
pub fn new_webhook_secret() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 24];
    getrandom::fill(&mut bytes)?;
    Ok(format!("{SECRET_PREFIX}{}", B64.encode(bytes)))
}

/// The idempotent id of one entry's delivery to one sink (`webhook-id`): the same on
/// every attempt and after a restart, different per sink.
pub fn message_id(sink_id: &str, entry_hash_hex: &str) -> String {
    let digest = Sha256::digest(format!("{sink_id}:{entry_hash_hex}").as_bytes());
    format!("msg_{}", hex::encode(&digest[..16]))
}

/// The `webhook-signature` header value: `v1,` and the base64 HMAC-SHA256, keyed by
/// the secret's decoded bytes, of `{id}.{timestamp}.{body}`. `None` if the secret is
/// not `whsec_` + base64.
pub fn sign(secret: &str, id: &str, timestamp: i64, body: &[u8]) -> Option<String> {
    let key = B64.decode(secret.strip_prefix(SECRET_PREFIX)?).ok()?;
    let mut mac = hmac::Hmac::<Sha256>::new_from_slice(&key).ok()?;
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    Some(format!("v1,{}", B64.encode(mac.finalize().into_bytes())))
}

/// The body of a webhook delivery (the Standard Webhooks payload shape: `type`,
/// `timestamp`, `data`).
pub fn webhook_body(entry: &Entry, review_url: &str) -> Value {
    json!({
        "type": entry.kind.as_str(),
        "timestamp": entry.time,
        "data": {
            "tenant": entry.tenant,
            "seq": entry.seq,
            "entry_hash": entry.entry_hash.to_hex(),
            "body": entry.body,
            "review_url": review_url,
        },
    })
}

/// The CloudEvents `source` of a tenant's events.
pub fn source(public_url: Option<&str>, tenant: &str) -> String {
    match public_url {
        Some(base) => format!("{}/tenants/{tenant}", base.trim_end_matches('/')),
        None => format!("tollgate/{tenant}"),
    }
}

/// One ledger entry as a CloudEvents 1.0 event in the JSON format: `id` = the entry
/// hash (hex), `type` = `dev.tollgate.<kind>`, `data` = the entry body, extensions
/// `tollgateseq` (ledger position) and `tollgatetenant`.
pub fn cloudevent(entry: &Entry, source: &str) -> Value {
    json!({
        "specversion": "1.0",
        "id": entry.entry_hash.to_hex(),
        "source": source,
        "type": format!("dev.tollgate.{}", entry.kind.as_str()),
        "time": entry.time,
        "datacontenttype": "application/json",
        "data": entry.body,
        "tollgateseq": entry.seq,
        "tollgatetenant": entry.tenant,
    })
}

/// One ledger entry as a Splunk HEC event (the CloudEvent as `event`, the entry time
/// as epoch seconds).
pub fn splunk_event(entry: &Entry, source: &str) -> Value {
    let time = humantime::parse_rfc3339(&entry.time)
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_secs_f64());
    json!({
        "time": time,
        "source": source,
        "sourcetype": "tollgate:ledger",
        "event": cloudevent(entry, source),
    })
}

/// What a Slack message says about an entry: built from the entry and, for a review,
/// the decision it is about.
fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_owned();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

fn plain(text: &str, max: usize) -> Value {
    json!({"type": "plain_text", "text": truncate(text, max), "emoji": false})
}

/// The Slack Block Kit message of an entry. Every text that comes from a request or a
/// person (actor, action, reasons, comments) is `plain_text`, so Slack renders it as
/// typed: no mentions, links or formatting can be injected.
pub fn slack_message(entry: &Entry, decision: Option<&DecisionEntryBody>, console: &str) -> Value {
    let review = &entry.body["review"];
    let status = review["status"].as_str().unwrap_or("");
    let title = match (entry.kind.as_str(), status) {
        ("review_opened", _) => "Review needed".to_owned(),
        ("review_resolved", s) => format!("Review {s}"),
        ("override_set", _) => "Override set".to_owned(),
        ("override_cleared", _) => "Override cleared".to_owned(),
        (k, _) => format!("Tollgate: {k}"),
    };
    let mut fields: Vec<Value> = Vec::new();
    let mut field = |label: &str, value: &str| {
        if !value.is_empty() {
            fields.push(plain(&format!("{label}: {value}"), 1900));
        }
    };
    if let Some(d) = decision {
        let actor = d
            .request
            .actor
            .get("id")
            .and_then(Value::as_str)
            .unwrap_or("");
        let action = d
            .request
            .action
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("");
        field("Actor", actor);
        field("Action", action);
        field("Verdict", d.verdict.status.as_str());
        field("Reasons", &d.verdict.reason_codes.join(", "));
    }
    if !review.is_null() {
        field("Rule", review["rule"].as_str().unwrap_or(""));
        field("Review", review["review_id"].as_str().unwrap_or(""));
        field("Expires", review["expires_at"].as_str().unwrap_or(""));
        if let Some(c) = review["rejection"]["comment"].as_str() {
            field("Comment", c);
        }
    }
    let ov = &entry.body["override"];
    if !ov.is_null() {
        field("Override", ov["id"].as_str().unwrap_or(""));
        field("Reason", ov["reason"].as_str().unwrap_or(""));
        field("Scope", &ov["scope"].to_string());
    }
    if let Some(id) = entry.body["override_id"].as_str() {
        field("Override", id);
    }
    fields.truncate(10);
    let summary = match decision {
        Some(d) => format!(
            "{title}: {} wants {}",
            d.request
                .actor
                .get("id")
                .and_then(Value::as_str)
                .unwrap_or("an agent"),
            d.request
                .action
                .get("type")
                .and_then(Value::as_str)
                .unwrap_or("an action")
        ),
        None => title.clone(),
    };
    let mut blocks = vec![
        json!({"type": "header", "text": plain(&title, 150)}),
        json!({"type": "section", "text": plain(&summary, 2900)}),
    ];
    if !fields.is_empty() {
        blocks.push(json!({"type": "section", "fields": fields}));
    }
    blocks.push(json!({
        "type": "context",
        "elements": [plain(&format!("{} · {} · ledger #{}", entry.tenant, entry.time, entry.seq), 2000)],
    }));
    blocks.push(json!({
        "type": "actions",
        "elements": [{
            "type": "button",
            "text": plain("Open the review queue", 75),
            "url": console,
            "action_id": "tollgate_open_reviews",
        }],
    }));
    json!({"text": truncate(&summary, 2900), "blocks": blocks})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_matches_the_standard_webhooks_example() {
        // The example of the Standard Webhooks specification's reference libraries.
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let body = br#"{"test": 2432232314}"#;
        assert_eq!(
            sign(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body).as_deref(),
            Some("v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=")
        );
        assert_eq!(sign("not-a-secret", "m", 1, body), None);
    }

    #[test]
    fn message_ids_are_stable_per_sink_and_entry() {
        let a = message_id("snk_1", "ab");
        assert_eq!(a, message_id("snk_1", "ab"));
        assert_ne!(a, message_id("snk_2", "ab"));
        assert_ne!(a, message_id("snk_1", "ac"));
        assert!(a.starts_with("msg_") && a.len() == 36);
    }

    #[test]
    fn new_secrets_are_24_random_bytes() {
        let s = new_webhook_secret().unwrap();
        let raw = B64.decode(s.strip_prefix(SECRET_PREFIX).unwrap()).unwrap();
        assert_eq!(raw.len(), 24);
        assert_ne!(s, new_webhook_secret().unwrap());
    }
}
