//! Prometheus metrics (`/metrics`): decisions by status and gate, decision latency,
//! ledger append latency, HTTP responses by status.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct DecisionLabels {
    pub(crate) status: String,
    pub(crate) gate: String,
    pub(crate) environment: String,
}

/// Labels of the per-sink delivery metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct SinkLabels {
    pub(crate) tenant: String,
    pub(crate) sink: String,
    pub(crate) kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct StatusLabels {
    pub(crate) code: u16,
}

/// The server's metrics.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    pub(crate) decisions: Family<DecisionLabels, Counter>,
    pub(crate) decision_seconds: Histogram,
    pub(crate) ledger_append_seconds: Histogram,
    pub(crate) responses: Family<StatusLabels, Counter>,
    pub(crate) idempotent_replays: Counter,
    /// Follow-ups of a recorded decision that failed (logged; the verdict stands).
    pub(crate) apply_failures: Counter,
    /// Ledger entries delivered to a sink.
    pub(crate) notify_delivered: Family<SinkLabels, Counter>,
    /// Delivery requests to a sink that failed.
    pub(crate) notify_failed: Family<SinkLabels, Counter>,
    /// Entries dead-lettered for a sink.
    pub(crate) notify_dead: Family<SinkLabels, Counter>,
    /// Ledger entries past a sink's cursor.
    pub(crate) notify_lag: Family<SinkLabels, Gauge>,
}

impl Metrics {
    /// Registers every metric.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("tollgate");
        let decisions = Family::<DecisionLabels, Counter>::default();
        let decision_seconds = Histogram::new(exponential_buckets(0.000_05, 2.0, 16));
        let ledger_append_seconds = Histogram::new(exponential_buckets(0.000_05, 2.0, 16));
        let responses = Family::<StatusLabels, Counter>::default();
        let idempotent_replays = Counter::default();
        let apply_failures = Counter::default();
        registry.register(
            "decisions",
            "Decisions by status, gate and environment",
            decisions.clone(),
        );
        registry.register(
            "decision_seconds",
            "Time from request to durable verdict",
            decision_seconds.clone(),
        );
        registry.register(
            "ledger_append_seconds",
            "Time to a durable ledger append",
            ledger_append_seconds.clone(),
        );
        registry.register(
            "http_responses",
            "HTTP responses by status code",
            responses.clone(),
        );
        registry.register(
            "idempotent_replays",
            "Responses replayed for a repeated idempotency key",
            idempotent_replays.clone(),
        );
        registry.register(
            "decision_apply_failures",
            "Follow-ups of a recorded decision that failed (approval use, review opening, source count); the verdict was answered",
            apply_failures.clone(),
        );
        let notify_delivered = Family::<SinkLabels, Counter>::default();
        let notify_failed = Family::<SinkLabels, Counter>::default();
        let notify_dead = Family::<SinkLabels, Counter>::default();
        let notify_lag = Family::<SinkLabels, Gauge>::default();
        registry.register(
            "notify_delivered",
            "Ledger entries delivered to a notification or SIEM sink",
            notify_delivered.clone(),
        );
        registry.register(
            "notify_failed_attempts",
            "Delivery requests to a sink that failed (each is retried with backoff)",
            notify_failed.clone(),
        );
        registry.register(
            "notify_dead",
            "Ledger entries dead-lettered for a sink after its retry budget",
            notify_dead.clone(),
        );
        registry.register(
            "notify_lag_entries",
            "Ledger entries past a sink's cursor (not yet finished)",
            notify_lag.clone(),
        );
        Self {
            registry,
            notify_delivered,
            notify_failed,
            notify_dead,
            notify_lag,
            decisions,
            decision_seconds,
            ledger_append_seconds,
            responses,
            idempotent_replays,
            apply_failures,
        }
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
