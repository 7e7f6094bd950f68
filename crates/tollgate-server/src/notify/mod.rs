//! Delivery of ledger entries to a tenant's sinks: review and override notifications
//! (Standard Webhooks, Slack) and the SIEM stream (CloudEvents, Splunk HEC).
//! docs/notifications.md is the reference.
//!
//! INVARIANT (the ledger is the outbox): what is delivered is ledger entries, read
//! back from the store after they are durable. A review opened, resolved or expired,
//! an override set or cleared, is a ledger entry appended before the change is
//! answered, so the "outbox row" is written in the same transaction as the event by
//! construction, and nothing durable can be missed. Each sink has a durable cursor
//! (the first ledger position it has not finished with) and delivery rows only for
//! entries in retry, delivered out of order, or dead. The cursor moves only past
//! entries that were delivered, dead-lettered or are not the sink's, and only after
//! the rows that must outlive the move are written: a crash or restart repeats at
//! most the deliveries of the round it interrupted, with the same ids
//! (at-least-once, never lost).
//!
//! The worker is one tokio task per process, started by `serve`; it never runs on the
//! decision path (decisions only append to the ledger, as before). In a cluster only
//! the node that is the sequencer delivers (`LedgerStore::is_sequencer`); during a
//! hand-over two nodes may both deliver a round: duplicates, with the same ids.

pub mod payload;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tollgate_ledger::{Entry, EntryKind};
use tollgate_store::{DeliveryRecord, DeliveryState, SinkKind, SinkRecord};

use crate::service::DecisionService;
use crate::service::records::DecisionEntryBody;

/// Settings of delivery (`[notify]` in the configuration file).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NotifyConfig {
    /// Whether `serve` runs the delivery worker (`TOLLGATE_NOTIFY_ENABLED`).
    pub enabled: bool,
    /// How often the worker looks for new entries, in ms (`TOLLGATE_NOTIFY_POLL_MS`).
    pub poll_ms: u64,
    /// Timeout of one delivery request, in ms (`TOLLGATE_NOTIFY_TIMEOUT_MS`).
    pub timeout_ms: u64,
    /// Attempts before an entry is dead-lettered (`TOLLGATE_NOTIFY_MAX_ATTEMPTS`).
    pub max_attempts: u32,
    /// Time from the first failed attempt after which an entry is dead-lettered at its
    /// next failure, in ms (`TOLLGATE_NOTIFY_MAX_AGE_MS`).
    pub max_age_ms: u64,
    /// The first retry's delay, doubled at each failure, in ms
    /// (`TOLLGATE_NOTIFY_BACKOFF_BASE_MS`).
    pub backoff_base_ms: u64,
    /// The longest retry delay, in ms (`TOLLGATE_NOTIFY_BACKOFF_MAX_MS`).
    pub backoff_max_ms: u64,
    /// Most events in one SIEM request (`TOLLGATE_NOTIFY_BATCH`).
    pub batch: usize,
    /// Most ledger entries past a sink's cursor looked at in one round
    /// (`TOLLGATE_NOTIFY_WINDOW`).
    pub window: u64,
}

impl Default for NotifyConfig {
    fn default() -> Self {
        NotifyConfig {
            enabled: true,
            poll_ms: 500,
            timeout_ms: 10_000,
            max_attempts: 10,
            max_age_ms: 24 * 3600 * 1000,
            backoff_base_ms: 1000,
            backoff_max_ms: 300_000,
            batch: 100,
            window: 1000,
        }
    }
}

impl NotifyConfig {
    /// Applies a `TOLLGATE_NOTIFY_*` variable; `Ok(false)` if `name` is not one.
    pub(crate) fn apply_env(&mut self, name: &str, value: &str) -> Result<bool, String> {
        fn p<T: std::str::FromStr>(v: &str) -> Result<T, String>
        where
            T::Err: std::fmt::Display,
        {
            v.parse().map_err(|e: T::Err| e.to_string())
        }
        match name {
            "TOLLGATE_NOTIFY_ENABLED" => self.enabled = p(value)?,
            "TOLLGATE_NOTIFY_POLL_MS" => self.poll_ms = p(value)?,
            "TOLLGATE_NOTIFY_TIMEOUT_MS" => self.timeout_ms = p(value)?,
            "TOLLGATE_NOTIFY_MAX_ATTEMPTS" => self.max_attempts = p(value)?,
            "TOLLGATE_NOTIFY_MAX_AGE_MS" => self.max_age_ms = p(value)?,
            "TOLLGATE_NOTIFY_BACKOFF_BASE_MS" => self.backoff_base_ms = p(value)?,
            "TOLLGATE_NOTIFY_BACKOFF_MAX_MS" => self.backoff_max_ms = p(value)?,
            "TOLLGATE_NOTIFY_BATCH" => self.batch = p(value)?,
            "TOLLGATE_NOTIFY_WINDOW" => self.window = p(value)?,
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// The delay before attempt `attempts + 1`: base × 2^(attempts − 1), at most the
    /// maximum, times a jitter factor in [0.5, 1].
    pub fn backoff_ms(&self, attempts: u32, jitter: f64) -> u64 {
        let exp = attempts.saturating_sub(1).min(40);
        let raw = self
            .backoff_base_ms
            .max(1)
            .saturating_mul(1u64 << exp)
            .min(self.backoff_max_ms.max(1));
        let factor = 0.5 + 0.5 * jitter.clamp(0.0, 1.0);
        ((raw as f64) * factor).round() as u64
    }
}

/// The entry kinds a notification sink takes unless told otherwise.
pub const NOTIFICATION_EVENTS: [EntryKind; 4] = [
    EntryKind::ReviewOpened,
    EntryKind::ReviewResolved,
    EntryKind::OverrideSet,
    EntryKind::OverrideCleared,
];

/// Why one delivery request failed (no URL and no secret in it).
#[derive(Debug, Clone)]
pub struct SendError(pub String);

/// The HTTP side of delivery: one client, the request shapes of each sink kind.
#[derive(Debug)]
pub struct Deliverer {
    client: Option<reqwest::Client>,
}

impl Deliverer {
    /// A client with the configured timeout (connect timeout: the same, at most 5 s).
    pub fn new(config: &NotifyConfig) -> Deliverer {
        // reqwest is built with rustls and no default provider: choose ring once.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let timeout = Duration::from_millis(config.timeout_ms.max(1));
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .user_agent(concat!("tollgate/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| tracing::error!(error = %e.without_url(), "no HTTP client for deliveries"))
            .ok();
        Deliverer { client }
    }

    /// Sends `entries` (one, or a batch for a SIEM sink) to `sink`.
    pub async fn send(
        &self,
        service: &DecisionService,
        sink: &SinkRecord,
        entries: &[Entry],
    ) -> Result<u16, SendError> {
        let client = self
            .client
            .as_ref()
            .ok_or_else(|| SendError("no HTTP client".into()))?;
        let config = service.config();
        let source = payload::source(config.public_url.as_deref(), &sink.tenant);
        let console = format!("{}/console/reviews", config.base_url());
        let mut req = client.post(&sink.url);
        let body: Vec<u8> = match sink.kind {
            SinkKind::Webhook => {
                let [entry] = entries else {
                    return Err(SendError("a webhook takes one entry".into()));
                };
                let body = json_bytes(&payload::webhook_body(entry, &console))?;
                let id = payload::message_id(&sink.id, &entry.entry_hash.to_hex());
                let ts = service.now_ms().div_euclid(1000);
                let secret = sink
                    .secret
                    .as_ref()
                    .ok_or_else(|| SendError("the sink has no secret".into()))?;
                let sig = payload::sign(secret.expose(), &id, ts, &body)
                    .ok_or_else(|| SendError("the sink's secret is not whsec_ base64".into()))?;
                req = req
                    .header("content-type", "application/json")
                    .header("webhook-id", id)
                    .header("webhook-timestamp", ts.to_string())
                    .header("webhook-signature", sig);
                body
            }
            SinkKind::Slack => {
                let [entry] = entries else {
                    return Err(SendError("a Slack message takes one entry".into()));
                };
                let decision = review_decision(service, entry);
                req = req.header("content-type", "application/json");
                json_bytes(&payload::slack_message(entry, decision.as_ref(), &console))?
            }
            SinkKind::Cloudevents => {
                let events: Vec<_> = entries
                    .iter()
                    .map(|e| payload::cloudevent(e, &source))
                    .collect();
                req = req.header("content-type", "application/cloudevents-batch+json");
                if let Some(token) = &sink.secret {
                    req = req.bearer_auth(token.expose());
                }
                json_bytes(&events)?
            }
            SinkKind::SplunkHec => {
                let token = sink
                    .secret
                    .as_ref()
                    .ok_or_else(|| SendError("the sink has no HEC token".into()))?;
                let mut body = Vec::new();
                for e in entries {
                    body.extend(json_bytes(&payload::splunk_event(e, &source))?);
                    body.push(b'\n');
                }
                req = req
                    .header("content-type", "application/json")
                    .header("authorization", format!("Splunk {}", token.expose()));
                body
            }
        };
        let res = req
            .body(body)
            .send()
            .await
            .map_err(|e| SendError(e.without_url().to_string()))?;
        let status = res.status();
        if status.is_success() {
            Ok(status.as_u16())
        } else {
            Err(SendError(format!("HTTP {}", status.as_u16())))
        }
    }
}

fn json_bytes<T: Serialize>(v: &T) -> Result<Vec<u8>, SendError> {
    serde_json::to_vec(v).map_err(|e| SendError(e.to_string()))
}

/// The decision a review entry is about (for the Slack message), if it can be read.
fn review_decision(service: &DecisionService, entry: &Entry) -> Option<DecisionEntryBody> {
    let id = entry.body["review"]["decision_id"].as_str()?;
    service
        .decision(&entry.tenant, id)
        .ok()
        .map(|(_, body)| body)
}

fn jitter() -> f64 {
    let mut b = [0u8; 4];
    match getrandom::fill(&mut b) {
        Ok(()) => f64::from(u32::from_le_bytes(b)) / f64::from(u32::MAX),
        Err(_) => 1.0,
    }
}

fn takes(sink: &SinkRecord, entry: &Entry) -> bool {
    sink.events.iter().any(|k| k == entry.kind.as_str())
}

/// The delivery worker. It runs on a thread and runtime of its own: its store calls
/// (blocking SQLite reads and writes) and payload building never hold up a thread
/// that answers decisions (measured: `bench/integrations.sh`, "dead sinks").
#[derive(Debug)]
pub struct Worker {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Worker {
    /// Stops the worker: the round in progress is dropped (what it had not recorded
    /// is sent again by the next start: at-least-once).
    pub fn abort(mut self) {
        drop(self.stop.take());
    }
}

/// Starts the delivery worker; it runs until [`Worker::abort`] or the process ends.
pub fn spawn(service: Arc<DecisionService>) -> std::io::Result<Worker> {
    let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    std::thread::Builder::new()
        .name("tollgate-notify".into())
        .spawn(move || {
            lower_priority();
            runtime.block_on(async move {
                let every = Duration::from_millis(service.config().notify.poll_ms.max(10));
                let mut interval = tokio::time::interval(every);
                interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    let round = async {
                        interval.tick().await;
                        if service.store().is_sequencer() {
                            run_round(&service).await;
                        }
                    };
                    tokio::select! {
                        _ = &mut stopped => break,
                        () = round => {}
                    }
                }
            });
        })?;
    Ok(Worker { stop: Some(stop) })
}

/// The niceness of the delivery thread: the lowest priority short of `SCHED_IDLE`.
/// The thread still gets a share of a busy machine (it never starves while holding a
/// database lock the indexer waits for) and every idle cycle.
pub const DELIVERY_NICE: i32 = 19;

/// Delivery is background work: on Linux its thread runs at [`DELIVERY_NICE`], so that
/// when the cores are contended the scheduler runs the threads that answer decisions
/// first (measured: `bench/integrations.sh`, "dead sinks"). Elsewhere, or if the
/// system refuses, it runs at normal priority and says so.
fn lower_priority() {
    #[cfg(target_os = "linux")]
    {
        // On Linux a thread id names one thread for setpriority(2).
        let tid = rustix::thread::gettid();
        if let Err(e) = rustix::process::setpriority_process(Some(tid), DELIVERY_NICE) {
            tracing::warn!(error = %e, "notify: the delivery thread keeps normal priority");
        }
    }
}

/// One round over every sink of every tenant.
pub async fn run_round(service: &DecisionService) {
    let sinks = match service.store().sinks(None) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "notify: sinks not read; will retry");
            return;
        }
    };
    for sink in sinks {
        if let Err(e) = sink_round(service, &sink).await {
            tracing::warn!(sink = %sink.id, tenant = %sink.tenant, error = %e, "notify: round failed; will retry");
        }
    }
}

async fn sink_round(
    service: &DecisionService,
    sink: &SinkRecord,
) -> Result<(), tollgate_store::StoreError> {
    let store = service.store();
    let config = &service.config().notify;
    let now = service.now_ms();
    let Some(cursor) = store.sink_cursor(&sink.tenant, &sink.id)? else {
        return Ok(());
    };
    let head = store.head(&sink.tenant)?.map_or(0, |h| h.size);
    let end = head.min(cursor.next_seq.saturating_add(config.window.max(1)));
    let rows: BTreeMap<u64, DeliveryRecord> = store
        .open_deliveries(&sink.tenant, &sink.id, cursor.next_seq)?
        .into_iter()
        .map(|d| (d.seq, d))
        .collect();
    // Due: pending rows behind the cursor (redelivered by hand), then the window's
    // entries the sink takes that are neither finished nor waiting for their retry.
    let mut due: VecDeque<Entry> = VecDeque::new();
    for row in rows.values() {
        if row.seq < cursor.next_seq
            && row.state == DeliveryState::Pending
            && row.next_attempt_ms <= now
            && let Some(e) = store.entry(&sink.tenant, row.seq)?
        {
            due.push_back(e);
        }
    }
    let group = if sink.kind.is_siem() {
        config.batch.max(1)
    } else {
        1
    };
    // The window is read a page at a time, only as far as sending gets: a sink that
    // fails costs one page a round, not the whole window.
    let page = u64::try_from(group.max(64)).unwrap_or(64);
    let mut window: Vec<Entry> = Vec::new();
    let mut read_to = cursor.next_seq;
    let mut sent: Vec<Entry> = Vec::new();
    let metrics = service.metrics();
    let labels = crate::metrics::SinkLabels {
        tenant: sink.tenant.clone(),
        sink: sink.id.clone(),
        kind: sink.kind.as_str().to_owned(),
    };
    let notifier = service.deliverer();
    let mut finished: BTreeMap<u64, DeliveryState> = BTreeMap::new();
    loop {
        while due.len() < group && read_to < end {
            let to = end.min(read_to.saturating_add(page));
            let entries = store.range(&sink.tenant, read_to, to)?;
            read_to = to;
            for e in &entries {
                if !takes(sink, e) {
                    continue;
                }
                match rows.get(&e.seq) {
                    Some(r) if r.state != DeliveryState::Pending => {}
                    Some(r) if r.next_attempt_ms > now => {}
                    _ => due.push_back(e.clone()),
                }
            }
            window.extend(entries);
        }
        if due.is_empty() {
            break;
        }
        let chunk: Vec<Entry> = due.drain(..due.len().min(group)).collect();
        let chunk = chunk.as_slice();
        match notifier.send(service, sink, chunk).await {
            Ok(_) => {
                for e in chunk {
                    finished.insert(e.seq, DeliveryState::Delivered);
                }
                sent.extend_from_slice(chunk);
                metrics
                    .notify_delivered
                    .get_or_create(&labels)
                    .inc_by(chunk.len() as u64);
            }
            Err(SendError(msg)) => {
                metrics.notify_failed.get_or_create(&labels).inc();
                let now = service.now_ms();
                // One jitter for the chunk: entries that failed together retry together.
                let jitter = jitter();
                let mut failed = Vec::with_capacity(chunk.len());
                for e in chunk {
                    let mut row = rows.get(&e.seq).cloned().unwrap_or(DeliveryRecord {
                        tenant: sink.tenant.clone(),
                        sink_id: sink.id.clone(),
                        seq: e.seq,
                        entry_hash: e.entry_hash.to_hex(),
                        kind: e.kind.as_str().to_owned(),
                        state: DeliveryState::Pending,
                        attempts: 0,
                        first_attempt_ms: now,
                        next_attempt_ms: now,
                        last_error: None,
                        updated_ms: now,
                    });
                    row.attempts = row.attempts.saturating_add(1);
                    let age = u64::try_from(now.saturating_sub(row.first_attempt_ms)).unwrap_or(0);
                    let exhausted =
                        row.attempts >= config.max_attempts.max(1) || age >= config.max_age_ms;
                    row.state = if exhausted {
                        DeliveryState::Dead
                    } else {
                        DeliveryState::Pending
                    };
                    let delay = config.backoff_ms(row.attempts, jitter);
                    row.next_attempt_ms =
                        now.saturating_add(i64::try_from(delay).unwrap_or(i64::MAX));
                    row.last_error = Some(msg.clone());
                    row.updated_ms = now;
                    if exhausted {
                        finished.insert(e.seq, DeliveryState::Dead);
                    }
                    failed.push(row);
                }
                // One line and one count per chunk: a SIEM sink that is down would
                // otherwise log a line per ledger entry.
                let dead: Vec<u64> = failed
                    .iter()
                    .filter(|r| r.state == DeliveryState::Dead)
                    .map(|r| r.seq)
                    .collect();
                if let (Some(first), Some(last)) = (dead.first(), dead.last()) {
                    metrics
                        .notify_dead
                        .get_or_create(&labels)
                        .inc_by(dead.len() as u64);
                    tracing::warn!(sink = %sink.id, tenant = %sink.tenant, entries = dead.len(), first_seq = first, last_seq = last, error = %msg, "notify: dead-lettered");
                }
                // One transaction for the chunk (a SIEM batch is up to `batch` rows).
                store.put_deliveries(&failed)?;
                // The sink is failing: the rest waits for the next round.
                break;
            }
        }
    }
    // The cursor moves over the finished prefix of the window.
    let mut next = cursor.next_seq;
    for e in &window {
        let done = !takes(sink, e)
            || finished.contains_key(&e.seq)
            || rows
                .get(&e.seq)
                .is_some_and(|r| r.state != DeliveryState::Pending);
        if !done {
            break;
        }
        next = e.seq + 1;
    }
    // Rows that must outlive the move: entries delivered past the new cursor, and
    // delivered entries that had a pending row (the move drops the delivered ones
    // behind it).
    let mut kept = Vec::new();
    let delivered: BTreeSet<u64> = finished
        .iter()
        .filter(|(_, s)| **s == DeliveryState::Delivered)
        .map(|(seq, _)| *seq)
        .collect();
    for seq in &delivered {
        if *seq >= next || rows.contains_key(seq) {
            let e = sent.iter().find(|e| e.seq == *seq);
            let mut row = rows.get(seq).cloned().or_else(|| {
                e.map(|e| DeliveryRecord {
                    tenant: sink.tenant.clone(),
                    sink_id: sink.id.clone(),
                    seq: e.seq,
                    entry_hash: e.entry_hash.to_hex(),
                    kind: e.kind.as_str().to_owned(),
                    state: DeliveryState::Delivered,
                    attempts: 0,
                    first_attempt_ms: now,
                    next_attempt_ms: now,
                    last_error: None,
                    updated_ms: now,
                })
            });
            if let Some(row) = row.as_mut() {
                row.state = DeliveryState::Delivered;
                row.attempts = row.attempts.saturating_add(1);
                row.updated_ms = service.now_ms();
                kept.push(row.clone());
            }
        }
    }
    store.put_deliveries(&kept)?;
    if next > cursor.next_seq || !kept.is_empty() {
        store.advance_sink_cursor(&tollgate_store::SinkCursor {
            tenant: sink.tenant.clone(),
            sink_id: sink.id.clone(),
            next_seq: next,
            updated_ms: service.now_ms(),
        })?;
    }
    metrics
        .notify_lag
        .get_or_create(&labels)
        .set(i64::try_from(head.saturating_sub(next)).unwrap_or(i64::MAX));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_the_cap_with_jitter_in_the_upper_half() {
        let c = NotifyConfig::default();
        assert_eq!(c.backoff_ms(1, 1.0), 1000);
        assert_eq!(c.backoff_ms(2, 1.0), 2000);
        assert_eq!(c.backoff_ms(5, 1.0), 16_000);
        assert_eq!(c.backoff_ms(30, 1.0), 300_000);
        assert_eq!(c.backoff_ms(1, 0.0), 500);
        assert_eq!(c.backoff_ms(u32::MAX, 0.5), 225_000);
    }
}
