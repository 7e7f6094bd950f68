//! Records of notification and SIEM delivery (docs/notifications.md): the sinks of a
//! tenant, each sink's cursor over the tenant's ledger, and the delivery rows of the
//! entries in retry or dead-lettered.
//!
//! The ledger is the outbox: an event to deliver *is* a ledger entry, durable exactly
//! when the event is. A sink's cursor is the first ledger position it has not finished
//! with; an entry is finished when it was delivered or dead-lettered. Rows exist only
//! for entries that are not finished at the cursor's pace (in retry, delivered past a
//! pending one, dead).

use serde::{Deserialize, Serialize};

use crate::StoreError;

/// A secret of a sink (a webhook signing secret, a Splunk HEC token): stored, because
/// delivery needs it, but never printed: `Debug` shows `***`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SinkSecret(String);

impl SinkSecret {
    /// Wraps a secret.
    pub fn new(secret: impl Into<String>) -> SinkSecret {
        SinkSecret(secret.into())
    }

    /// The secret itself, for signing or an `Authorization` header only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for SinkSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SinkSecret(***)")
    }
}

/// What a sink is and how deliveries to it are shaped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SinkKind {
    /// A generic webhook, signed per the Standard Webhooks specification.
    Webhook,
    /// A Slack incoming webhook (Block Kit message).
    Slack,
    /// A generic HTTP endpoint taking batches of CloudEvents 1.0 (SIEM stream).
    Cloudevents,
    /// A Splunk HTTP Event Collector event endpoint (SIEM stream).
    SplunkHec,
}

impl SinkKind {
    /// Every kind.
    pub const ALL: [SinkKind; 4] = [
        SinkKind::Webhook,
        SinkKind::Slack,
        SinkKind::Cloudevents,
        SinkKind::SplunkHec,
    ];

    /// The stored (and wire) name.
    pub fn as_str(self) -> &'static str {
        match self {
            SinkKind::Webhook => "webhook",
            SinkKind::Slack => "slack",
            SinkKind::Cloudevents => "cloudevents",
            SinkKind::SplunkHec => "splunk_hec",
        }
    }

    /// Parses a stored or requested name.
    pub fn parse(s: &str) -> Option<SinkKind> {
        SinkKind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// Whether this is a SIEM sink (every ledger entry, batched) rather than a
    /// notification sink (review and override events, one a request).
    pub fn is_siem(self) -> bool {
        matches!(self, SinkKind::Cloudevents | SinkKind::SplunkHec)
    }
}

impl std::fmt::Display for SinkKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A tenant's delivery sink.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct SinkRecord {
    /// Tenant.
    pub tenant: String,
    /// `snk_…`.
    pub id: String,
    /// What it is.
    pub kind: SinkKind,
    /// A label for people.
    #[serde(default)]
    pub name: String,
    /// Where deliveries go. A Slack incoming-webhook URL is itself a credential: it is
    /// never printed whole (see [`redact_url`]).
    pub url: String,
    /// The signing secret (`webhook`), the HEC token (`splunk_hec`) or a bearer token
    /// (`cloudevents`, optional).
    #[serde(default)]
    pub secret: Option<SinkSecret>,
    /// The ledger entry kinds delivered (`decision`, `review_opened`, …).
    pub events: Vec<String>,
    /// Creation time, Unix milliseconds.
    pub created_ms: i64,
}

impl std::fmt::Debug for SinkRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SinkRecord")
            .field("tenant", &self.tenant)
            .field("id", &self.id)
            .field("kind", &self.kind)
            .field("name", &self.name)
            .field("url", &redact_url(&self.url))
            .field("secret", &self.secret)
            .field("events", &self.events)
            .field("created_ms", &self.created_ms)
            .finish()
    }
}

/// A URL with everything after its origin replaced by `/…` (a Slack webhook URL's path
/// is its credential).
pub fn redact_url(url: &str) -> String {
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    match url[after_scheme..].find('/') {
        Some(i) if after_scheme + i + 1 < url.len() => {
            format!("{}/…", &url[..after_scheme + i])
        }
        _ => url.to_owned(),
    }
}

/// Where a sink stands in its tenant's ledger.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SinkCursor {
    /// Tenant.
    pub tenant: String,
    /// The sink.
    pub sink_id: String,
    /// The first ledger position the sink has not finished with (every earlier entry
    /// was delivered, dead-lettered or is not one the sink takes).
    pub next_seq: u64,
    /// When it last moved, Unix milliseconds.
    pub updated_ms: i64,
}

/// Where one entry's delivery to one sink stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryState {
    /// Failed at least once; tried again at `next_attempt_ms`.
    Pending,
    /// Accepted by the sink (kept only while the cursor has not passed it).
    Delivered,
    /// Gave up after the retry budget (redeliverable by hand).
    Dead,
}

impl DeliveryState {
    /// The stored (and wire) name.
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Pending => "pending",
            DeliveryState::Delivered => "delivered",
            DeliveryState::Dead => "dead",
        }
    }

    /// Parses a stored or requested name.
    pub fn parse(s: &str) -> Option<DeliveryState> {
        [
            DeliveryState::Pending,
            DeliveryState::Delivered,
            DeliveryState::Dead,
        ]
        .into_iter()
        .find(|d| d.as_str() == s)
    }
}

impl std::fmt::Display for DeliveryState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One ledger entry's delivery to one sink, while it is in retry or dead.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryRecord {
    /// Tenant.
    pub tenant: String,
    /// The sink.
    pub sink_id: String,
    /// The entry's ledger position.
    pub seq: u64,
    /// The entry's hash (hex): with the sink id, the delivery's idempotent id.
    pub entry_hash: String,
    /// The entry's kind.
    pub kind: String,
    /// Where it stands.
    pub state: DeliveryState,
    /// Attempts made so far.
    pub attempts: u32,
    /// The first attempt, Unix milliseconds (the retry budget counts from it).
    pub first_attempt_ms: i64,
    /// The next attempt (pending), Unix milliseconds.
    pub next_attempt_ms: i64,
    /// What the last failed attempt got (status or error), never a secret.
    #[serde(default)]
    pub last_error: Option<String>,
    /// Last change, Unix milliseconds.
    pub updated_ms: i64,
}

/// The delivery records: sinks, cursors, deliveries in retry or dead.
pub trait NotifyStore: Send + Sync + std::fmt::Debug {
    /// Creates a sink with its cursor at `start_seq` (one transaction).
    fn put_sink(&self, sink: &SinkRecord, start_seq: u64) -> Result<(), StoreError>;
    /// One sink.
    fn sink(&self, tenant: &str, id: &str) -> Result<Option<SinkRecord>, StoreError>;
    /// The sinks of a tenant, or of every tenant (`None`), by tenant and id.
    fn sinks(&self, tenant: Option<&str>) -> Result<Vec<SinkRecord>, StoreError>;
    /// Removes a sink with its cursor and delivery rows; `true` if there was one.
    fn delete_sink(&self, tenant: &str, id: &str) -> Result<bool, StoreError>;
    /// A sink's cursor.
    fn sink_cursor(&self, tenant: &str, sink_id: &str) -> Result<Option<SinkCursor>, StoreError>;
    /// Moves a sink's cursor (only forward: a smaller `next_seq` is ignored) and drops
    /// the sink's `delivered` rows below it.
    fn advance_sink_cursor(&self, cursor: &SinkCursor) -> Result<(), StoreError>;
    /// Creates or replaces a delivery row (ignored when the sink is gone).
    fn put_delivery(&self, delivery: &DeliveryRecord) -> Result<(), StoreError>;
    /// [`NotifyStore::put_delivery`] for several rows in one transaction: a failed
    /// batch of a SIEM sink is one write, not one per entry.
    fn put_deliveries(&self, deliveries: &[DeliveryRecord]) -> Result<(), StoreError>;
    /// The rows a delivery round needs: every `pending` row of the sink, and every row
    /// at or past `from_seq` (the cursor). Dead and delivered rows behind the cursor
    /// are not read, so a round costs the same however many dead letters there are.
    fn open_deliveries(
        &self,
        tenant: &str,
        sink_id: &str,
        from_seq: u64,
    ) -> Result<Vec<DeliveryRecord>, StoreError>;
    /// One delivery row.
    fn delivery(
        &self,
        tenant: &str,
        sink_id: &str,
        seq: u64,
    ) -> Result<Option<DeliveryRecord>, StoreError>;
    /// A tenant's delivery rows, optionally of one sink and in one state, by sink and
    /// seq.
    fn deliveries(
        &self,
        tenant: &str,
        sink_id: Option<&str>,
        state: Option<DeliveryState>,
    ) -> Result<Vec<DeliveryRecord>, StoreError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_and_webhook_paths_are_not_in_debug_output() {
        let s = SinkRecord {
            tenant: "t".into(),
            id: "snk_1".into(),
            kind: SinkKind::Slack,
            name: String::new(),
            url: "https://hooks.slack.com/services/T000/B000/XXXXSECRET".into(),
            secret: Some(SinkSecret::new("whsec_c2VjcmV0")),
            events: vec![],
            created_ms: 0,
        };
        let text = format!("{s:?}");
        assert!(!text.contains("XXXXSECRET"), "{text}");
        assert!(!text.contains("whsec_c2VjcmV0"), "{text}");
        assert!(text.contains("https://hooks.slack.com/…"), "{text}");
        assert_eq!(redact_url("http://127.0.0.1:9/"), "http://127.0.0.1:9/");
    }
}
