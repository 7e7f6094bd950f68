//! Trace context propagation (feature `otel`): the W3C `traceparent` (and
//! `tracestate`) of the current `tracing` span, so that Tollgate's decision span joins
//! the caller's trace. Uses the globally installed text-map propagator
//! (`opentelemetry::global::set_text_map_propagator`); with none installed, or outside
//! any sampled span, nothing is sent.

use std::collections::HashMap;

use tracing_opentelemetry::OpenTelemetrySpanExt as _;

/// The propagation headers for the current span's context (empty when there is none).
pub(crate) fn context_headers() -> HashMap<String, String> {
    let cx = tracing::Span::current().context();
    let mut headers = HashMap::new();
    opentelemetry::global::get_text_map_propagator(|p| p.inject_context(&cx, &mut headers));
    headers
}
