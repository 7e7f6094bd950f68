//! Prometheus metrics of the gateway, served at `/metrics` on its HTTP listener.

use std::sync::Mutex;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Labels of a tool call.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CallLabels {
    /// The upstream's name.
    pub upstream: String,
    /// The tool's name on the upstream.
    pub tool: String,
    /// ALLOW, BLOCK, REVIEW_APPROVED, REVIEW_DENIED, TOLLGATE_UNAVAILABLE, INVALID.
    pub verdict: String,
}

/// Labels naming an upstream.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct UpstreamLabels {
    /// The upstream's name.
    pub upstream: String,
}

/// Every metric.
#[derive(Debug)]
pub struct Metrics {
    registry: Mutex<Registry>,
    /// Tool calls by upstream, tool and verdict.
    pub tool_calls: Family<CallLabels, Counter>,
    /// Failed upstream calls (transport errors, timeouts, upstream down).
    pub upstream_errors: Family<UpstreamLabels, Counter>,
    /// Restarts of crashed upstream children.
    pub upstream_restarts: Family<UpstreamLabels, Counter>,
    /// Time the gateway adds to a tool call (everything but the upstream call), seconds.
    pub added_latency: Histogram,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Registers every metric.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("tollgate_mcp");
        let tool_calls = Family::<CallLabels, Counter>::default();
        registry.register(
            "tool_calls",
            "Tool calls by upstream, tool and verdict",
            tool_calls.clone(),
        );
        let upstream_errors = Family::<UpstreamLabels, Counter>::default();
        registry.register(
            "upstream_errors",
            "Failed upstream calls (transport error, timeout, upstream down)",
            upstream_errors.clone(),
        );
        let upstream_restarts = Family::<UpstreamLabels, Counter>::default();
        registry.register(
            "upstream_restarts",
            "Restarts of upstream child processes",
            upstream_restarts.clone(),
        );
        // 50 µs … ~100 s.
        let added_latency = Histogram::new([
            0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
            0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 100.0,
        ]);
        registry.register(
            "added_latency_seconds",
            "Time the gateway adds to a tool call: decision, review wait, outcome excluded",
            added_latency.clone(),
        );
        Metrics {
            registry: Mutex::new(registry),
            tool_calls,
            upstream_errors,
            upstream_restarts,
            added_latency,
        }
    }

    /// Counts one call.
    pub fn call(&self, upstream: &str, tool: &str, verdict: &str) {
        self.tool_calls
            .get_or_create(&CallLabels {
                upstream: upstream.to_owned(),
                tool: tool.to_owned(),
                verdict: verdict.to_owned(),
            })
            .inc();
    }

    /// Counts one upstream error.
    pub fn upstream_error(&self, upstream: &str) {
        self.upstream_errors
            .get_or_create(&UpstreamLabels {
                upstream: upstream.to_owned(),
            })
            .inc();
    }

    /// Counts one restart.
    pub fn restart(&self, upstream: &str) {
        self.upstream_restarts
            .get_or_create(&UpstreamLabels {
                upstream: upstream.to_owned(),
            })
            .inc();
    }

    /// The text exposition format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if let Ok(registry) = self.registry.lock() {
            let _ = prometheus_client::encoding::text::encode(&mut out, &registry);
        }
        out
    }
}
