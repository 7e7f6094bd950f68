//! Notification and SIEM sinks (`/v1/admin/notify/…`, scope `admin`): add, list,
//! test, remove, and the deliveries in retry or dead.

use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{decode, encode};
use crate::client::{Client, path_segment};
use crate::error::Error;

const SINKS: &str = "/v1/admin/notify/sinks";
const DELIVERIES: &str = "/v1/admin/notify/deliveries";

/// `POST /v1/admin/notify/sinks`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewSink {
    /// `webhook`, `slack`, `cloudevents` or `splunk_hec`.
    pub kind: String,
    /// Where deliveries go.
    pub url: String,
    /// A label for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Ledger entry kinds to deliver (default: by kind; see docs/notifications.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events: Option<Vec<String>>,
    /// The Splunk HEC token, or a bearer token for `cloudevents`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// `now` (default) or `start` (the whole ledger first).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
}

/// A sink as listed (never its secret; a Slack URL without its path).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Sink {
    /// `snk_…`.
    pub id: String,
    /// `webhook`, `slack`, `cloudevents` or `splunk_hec`.
    pub kind: String,
    /// A label for people.
    #[serde(default)]
    pub name: String,
    /// Where deliveries go.
    pub url: String,
    /// The ledger entry kinds delivered.
    pub events: Vec<String>,
    /// Whether a secret or token is stored.
    #[serde(default)]
    pub has_secret: bool,
    /// RFC 3339.
    #[serde(default)]
    pub created_at: Option<String>,
    /// The first ledger position not finished with (listings).
    #[serde(default)]
    pub cursor: Option<u64>,
    /// Ledger entries past the cursor (listings).
    #[serde(default)]
    pub lag: Option<u64>,
    /// Entries in retry (listings).
    #[serde(default)]
    pub pending: Option<u64>,
    /// Entries dead-lettered (listings).
    #[serde(default)]
    pub dead: Option<u64>,
}

/// A sink just added: a webhook's signing secret is here, once.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct AddedSink {
    /// The sink.
    pub sink: Sink,
    /// Where its cursor starts.
    pub cursor: u64,
    /// `whsec_…` (webhook sinks only): shown once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

/// What a test delivery got.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct SinkTest {
    /// The sink.
    pub sink_id: String,
    /// Whether the sink accepted it (2xx).
    pub delivered: bool,
    /// The sink's HTTP status, when it answered 2xx.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// What went wrong.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A sink removed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct RemovedSink {
    /// The sink.
    pub id: String,
    /// Always `true`.
    pub removed: bool,
}

/// One entry's delivery to one sink, in retry or dead.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Delivery {
    /// The sink.
    pub sink_id: String,
    /// The entry's ledger position.
    pub seq: u64,
    /// The entry's hash (hex).
    pub entry_hash: String,
    /// The entry's kind.
    pub kind: String,
    /// `pending`, `delivered` or `dead`.
    pub state: String,
    /// Attempts made.
    pub attempts: u32,
    /// RFC 3339.
    #[serde(default)]
    pub first_attempt_at: Option<String>,
    /// RFC 3339 (pending only).
    #[serde(default)]
    pub next_attempt_at: Option<String>,
    /// What the last attempt got.
    #[serde(default)]
    pub last_error: Option<String>,
    /// The `webhook-id` it is sent with.
    #[serde(default)]
    pub webhook_id: Option<String>,
}

#[derive(Deserialize)]
struct Sinks {
    sinks: Vec<Sink>,
}

#[derive(Deserialize)]
struct Deliveries {
    deliveries: Vec<Delivery>,
}

#[derive(Deserialize)]
struct Redelivered {
    delivery: Delivery,
}

fn sink_path(id: &str) -> Result<String, Error> {
    Ok(format!("{SINKS}/{}", path_segment(id)?))
}

impl Client {
    /// Adds a notification or SIEM sink.
    pub async fn add_sink(&self, sink: &NewSink) -> Result<AddedSink, Error> {
        let answer = self
            .send(Method::POST, SINKS, Some(&encode(sink)?), None)
            .await?;
        decode(answer.body)
    }

    /// The tenant's sinks, with cursors and lag.
    pub async fn sinks(&self) -> Result<Vec<Sink>, Error> {
        let answer = self.send(Method::GET, SINKS, None, None).await?;
        let list: Sinks = decode(answer.body)?;
        Ok(list.sinks)
    }

    /// Removes a sink.
    pub async fn remove_sink(&self, id: &str) -> Result<RemovedSink, Error> {
        let answer = self
            .send(Method::DELETE, &sink_path(id)?, None, None)
            .await?;
        decode(answer.body)
    }

    /// Sends a synthetic event to a sink now.
    pub async fn test_sink(&self, id: &str) -> Result<SinkTest, Error> {
        let path = format!("{}/test", sink_path(id)?);
        let answer = self
            .send(
                Method::POST,
                &path,
                Some(&Value::Object(Default::default())),
                None,
            )
            .await?;
        decode(answer.body)
    }

    /// Deliveries in retry or dead, optionally in one `state` and of one sink.
    pub async fn deliveries(
        &self,
        state: Option<&str>,
        sink: Option<&str>,
    ) -> Result<Vec<Delivery>, Error> {
        let mut query = Vec::new();
        if let Some(s) = state {
            query.push(format!("state={}", path_segment(s)?));
        }
        if let Some(s) = sink {
            query.push(format!("sink={}", path_segment(s)?));
        }
        let path = if query.is_empty() {
            DELIVERIES.to_owned()
        } else {
            format!("{DELIVERIES}?{}", query.join("&"))
        };
        let answer = self.send(Method::GET, &path, None, None).await?;
        let list: Deliveries = decode(answer.body)?;
        Ok(list.deliveries)
    }

    /// Puts a dead delivery back in retry.
    pub async fn redeliver(&self, sink: &str, seq: u64) -> Result<Delivery, Error> {
        let path = format!("{DELIVERIES}/{}/{seq}/redeliver", path_segment(sink)?);
        let answer = self
            .send(
                Method::POST,
                &path,
                Some(&Value::Object(Default::default())),
                None,
            )
            .await?;
        let r: Redelivered = decode(answer.body)?;
        Ok(r.delivery)
    }
}
