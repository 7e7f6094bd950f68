//! OpenTelemetry: decision traces and metrics over OTLP (HTTP/protobuf). Off unless
//! configured (`[otel] endpoint`, or the standard `OTEL_EXPORTER_OTLP_*` variables);
//! when off, no span is created at all, so the decision path pays one relaxed atomic
//! load per span site (docs/operations.md, "OpenTelemetry").
//!
//! Spans carry the target [`TARGET`]; the binary's subscriber gives them (and only
//! them) to the OpenTelemetry layer. One span per decision (`tollgate.decision`), with
//! the gate, status, reason codes, policy versions and decision id as attributes, and
//! child spans for the engine, the throttle and the ledger append. The HTTP layer
//! ([`propagate`]) opens a server span per request whose parent is the caller's W3C
//! `traceparent`, so the decision joins the caller's trace.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use opentelemetry::propagation::{Extractor, TextMapPropagator as _};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry::{KeyValue, global};
use opentelemetry_otlp::WithExportConfig as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use serde::{Deserialize, Serialize};
use tracing::Span;
use tracing::field::Empty;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

/// The `tracing` target of every span exported to OpenTelemetry.
pub const TARGET: &str = "tollgate::otel";

static ENABLED: AtomicBool = AtomicBool::new(false);

/// Whether spans are being created (telemetry was started in this process).
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// `[otel]` in the configuration file (`TOLLGATE_OTEL_*`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct OtelConfig {
    /// The collector's OTLP/HTTP base URL, e.g. `http://127.0.0.1:4318`; traces go to
    /// `{endpoint}/v1/traces`, metrics to `{endpoint}/v1/metrics`
    /// (`TOLLGATE_OTEL_ENDPOINT`). Unset: telemetry is on only if
    /// `OTEL_EXPORTER_OTLP_ENDPOINT` or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` is set.
    pub endpoint: Option<String>,
    /// `service.name` of the resource (`TOLLGATE_OTEL_SERVICE_NAME`).
    pub service_name: String,
    /// How often metrics are exported, in ms (`TOLLGATE_OTEL_METRICS_INTERVAL_MS`).
    pub metrics_interval_ms: u64,
    /// Timeout of one export request, in ms (`TOLLGATE_OTEL_TIMEOUT_MS`).
    pub timeout_ms: u64,
}

impl Default for OtelConfig {
    fn default() -> Self {
        OtelConfig {
            endpoint: None,
            service_name: "tollgate".to_owned(),
            metrics_interval_ms: 60_000,
            timeout_ms: 10_000,
        }
    }
}

impl OtelConfig {
    /// Applies one `TOLLGATE_OTEL_*` variable.
    pub(crate) fn apply_env(&mut self, name: &str, value: &str) -> Result<(), String> {
        let int = |v: &str| v.parse::<u64>().map_err(|e| e.to_string());
        match name {
            "TOLLGATE_OTEL_ENDPOINT" => self.endpoint = Some(value.to_owned()),
            "TOLLGATE_OTEL_SERVICE_NAME" => self.service_name = value.to_owned(),
            "TOLLGATE_OTEL_METRICS_INTERVAL_MS" => self.metrics_interval_ms = int(value)?,
            "TOLLGATE_OTEL_TIMEOUT_MS" => self.timeout_ms = int(value)?,
            _ => return Err(format!("unknown variable {name}")),
        }
        Ok(())
    }

    /// Whether telemetry is on, given the process environment `env` (the standard
    /// variables, and `OTEL_SDK_DISABLED=true` which turns it off).
    pub fn is_on(&self, env: impl Fn(&str) -> Option<String>) -> bool {
        if env("OTEL_SDK_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
            return false;
        }
        self.endpoint.as_deref().is_some_and(|e| !e.is_empty())
            || [
                "OTEL_EXPORTER_OTLP_ENDPOINT",
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            ]
            .iter()
            .any(|v| env(v).is_some_and(|e| !e.is_empty()))
    }
}

/// Why telemetry could not start.
#[derive(Debug, thiserror::Error)]
#[error("OpenTelemetry: {0}")]
pub struct OtelError(String);

/// The running exporters. [`Telemetry::shutdown`] flushes what is buffered.
#[derive(Debug)]
pub struct Telemetry {
    tracer: SdkTracerProvider,
    meter: SdkMeterProvider,
}

impl Telemetry {
    /// Starts the exporters if `config` (or the environment) turns telemetry on.
    /// Exports run on the SDK's own threads; nothing here blocks a request.
    pub fn start(config: &OtelConfig) -> Result<Option<Telemetry>, OtelError> {
        if !config.is_on(|v| std::env::var(v).ok()) {
            return Ok(None);
        }
        // reqwest (the exporters' HTTP client) is built without a crypto provider.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let timeout = Duration::from_millis(config.timeout_ms);
        let endpoint = config
            .endpoint
            .as_deref()
            .filter(|e| !e.is_empty())
            .map(|e| e.trim_end_matches('/').to_owned());
        let resource = Resource::builder()
            .with_service_name(config.service_name.clone())
            .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
            .build();

        let mut spans = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_timeout(timeout);
        if let Some(e) = &endpoint {
            spans = spans.with_endpoint(format!("{e}/v1/traces"));
        }
        let spans = spans.build().map_err(|e| OtelError(e.to_string()))?;
        let tracer = SdkTracerProvider::builder()
            .with_batch_exporter(spans)
            .with_resource(resource.clone())
            .build();

        let mut metrics = opentelemetry_otlp::MetricExporter::builder()
            .with_http()
            .with_timeout(timeout);
        if let Some(e) = &endpoint {
            metrics = metrics.with_endpoint(format!("{e}/v1/metrics"));
        }
        let metrics = metrics.build().map_err(|e| OtelError(e.to_string()))?;
        let reader = PeriodicReader::builder(metrics)
            .with_interval(Duration::from_millis(config.metrics_interval_ms.max(100)))
            .build();
        let meter = SdkMeterProvider::builder()
            .with_reader(reader)
            .with_resource(resource)
            .build();

        global::set_text_map_propagator(TraceContextPropagator::new());
        global::set_meter_provider(meter.clone());
        ENABLED.store(true, Ordering::Relaxed);
        Ok(Some(Telemetry { tracer, meter }))
    }

    /// The `tracing` layer that turns spans of [`TARGET`] into OpenTelemetry spans.
    /// Give it a filter that passes only [`TARGET`] (see [`Telemetry::filter`]).
    pub fn layer<S>(&self) -> impl tracing_subscriber::Layer<S> + use<S>
    where
        S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    {
        tracing_opentelemetry::layer()
            .with_tracer(self.tracer.tracer("tollgate"))
            .with_tracked_inactivity(false)
    }

    /// The filter for [`Telemetry::layer`]: only Tollgate's own spans, at any level.
    pub fn filter() -> tracing_subscriber::filter::Targets {
        tracing_subscriber::filter::Targets::new().with_target(TARGET, tracing::Level::TRACE)
    }

    /// Flushes and stops the exporters (at shutdown).
    pub fn shutdown(self) {
        ENABLED.store(false, Ordering::Relaxed);
        if let Err(e) = self.tracer.shutdown() {
            tracing::warn!(error = %e, "OpenTelemetry traces not flushed");
        }
        if let Err(e) = self.meter.shutdown() {
            tracing::warn!(error = %e, "OpenTelemetry metrics not flushed");
        }
    }
}

/// Middleware: one server span per request, child of the caller's `traceparent`
/// (W3C Trace Context) when it sends one. Installed only when telemetry is on.
pub async fn propagate(request: Request, next: Next) -> Response {
    if !enabled() {
        return next.run(request).await;
    }
    let route = request.extensions().get::<MatchedPath>().map_or_else(
        || request.uri().path().to_owned(),
        |m| m.as_str().to_owned(),
    );
    let method = request.method().as_str().to_owned();
    let span = tracing::info_span!(
        target: TARGET,
        "http.request",
        otel.name = format!("{method} {route}"),
        otel.kind = "server",
        http.request.method = %method,
        http.route = %route,
        http.response.status_code = Empty,
        otel.status_code = Empty,
    );
    let parent = TraceContextPropagator::new().extract(&Headers(request.headers()));
    // A malformed or absent traceparent gives an empty context: the span is a root.
    let _ = span.set_parent(parent);
    let response = tracing::Instrument::instrument(next.run(request), span.clone()).await;
    let status = response.status();
    span.record("http.response.status_code", i64::from(status.as_u16()));
    if status.is_server_error() {
        span.record("otel.status_code", "ERROR");
    }
    response
}

struct Headers<'a>(&'a axum::http::HeaderMap);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(axum::http::HeaderName::as_str).collect()
    }
}

/// The span of one decision; [`record_decision`] fills in its outcome.
pub(crate) fn decision_span(tenant: &str, family: &str) -> Span {
    if !enabled() {
        return Span::none();
    }
    tracing::info_span!(
        target: TARGET,
        "tollgate.decision",
        otel.kind = "internal",
        tollgate.tenant = tenant,
        tollgate.family = family,
        tollgate.decision_id = Empty,
        tollgate.status = Empty,
        tollgate.gate = Empty,
        tollgate.reason_codes = Empty,
        tollgate.policy_versions = Empty,
        tollgate.ledger.seq = Empty,
        tollgate.error = Empty,
        otel.status_code = Empty,
    )
}

/// Records a decision's outcome on its span.
pub(crate) fn record_decision(span: &Span, decided: &crate::service::Decided) {
    if span.is_none() {
        return;
    }
    let v = &decided.verdict;
    span.record("tollgate.decision_id", decided.decision_id.as_str());
    span.record("tollgate.status", v.status.as_str());
    span.record("tollgate.gate", v.gate.as_str());
    span.record("tollgate.reason_codes", v.reason_codes.join(",").as_str());
    let versions = v
        .policies
        .iter()
        .map(|p| format!("{}@{}", p.id, p.version))
        .collect::<Vec<_>>()
        .join(",");
    span.record("tollgate.policy_versions", versions.as_str());
    // An i64, so that it is an integer attribute (tracing-opentelemetry sends u64 as
    // a string).
    if let Some(seq) = decided.seq.and_then(|s| i64::try_from(s).ok()) {
        span.record("tollgate.ledger.seq", seq);
    }
}

/// Records that no verdict was given.
pub(crate) fn record_error(span: &Span, error: &crate::service::Error) {
    if span.is_none() {
        return;
    }
    span.record("tollgate.error", error.to_string().as_str());
    span.record("otel.status_code", "ERROR");
}

/// The engine's child span of a decision.
pub(crate) fn engine_span() -> Span {
    if !enabled() {
        return Span::none();
    }
    tracing::info_span!(target: TARGET, "tollgate.engine")
}

/// The throttle's child span of a decision.
pub(crate) fn throttle_span() -> Span {
    if !enabled() {
        return Span::none();
    }
    tracing::info_span!(target: TARGET, "tollgate.throttle")
}

/// The ledger append's child span of a decision (until the entry is durable).
pub(crate) fn append_span() -> Span {
    if !enabled() {
        return Span::none();
    }
    tracing::info_span!(target: TARGET, "tollgate.ledger.append")
}

/// The OTLP metrics beside the Prometheus endpoint.
struct Instruments {
    decisions: opentelemetry::metrics::Counter<u64>,
    duration: opentelemetry::metrics::Histogram<f64>,
}

static INSTRUMENTS: std::sync::OnceLock<Instruments> = std::sync::OnceLock::new();

/// Counts a recorded decision and its latency (`tollgate.decisions`,
/// `tollgate.decision.duration`), when telemetry is on.
pub(crate) fn record_metrics(decided: &crate::service::Decided, elapsed: Duration) {
    if !enabled() {
        return;
    }
    let m = INSTRUMENTS.get_or_init(|| {
        let meter = global::meter("tollgate");
        Instruments {
            decisions: meter
                .u64_counter("tollgate.decisions")
                .with_description("Decisions recorded, by status, gate and environment")
                .build(),
            duration: meter
                .f64_histogram("tollgate.decision.duration")
                .with_unit("s")
                .with_description("Time from request to durable verdict")
                .build(),
        }
    });
    let attrs = [
        KeyValue::new("status", decided.verdict.status.as_str()),
        KeyValue::new("gate", decided.verdict.gate.as_str()),
        KeyValue::new("environment", decided.environment.clone()),
    ];
    m.decisions.add(1, &attrs);
    m.duration.record(elapsed.as_secs_f64(), &attrs);
}
