//! OpenTelemetry against a real OTLP receiver: `tollgate serve` exports to a local
//! HTTP server, which decodes every request with the official OpenTelemetry protobufs
//! (`opentelemetry-proto`). Shown: one span per decision with its attributes, child
//! spans for the engine, the throttle and the ledger append, the caller's W3C
//! `traceparent` as the parent (sent by hand, and by our Rust SDK from its `tracing`
//! span), a malformed `traceparent` ignored, and the OTLP metrics.

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::free_port;
use opentelemetry::trace::{TraceContextExt as _, TracerProvider as _};
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message as _;
use serde_json::{Value, json};
use tollgate_client::DecisionPoint as _;
use tracing::Instrument as _;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;
use tracing_subscriber::layer::SubscriberExt as _;

// ---------------------------------------------------------------- the OTLP receiver

#[derive(Clone, Default)]
struct Received {
    spans: Arc<Mutex<Vec<Span>>>,
    metric_names: Arc<Mutex<BTreeMap<String, u64>>>,
}

/// An OTLP/HTTP receiver on `port` that decodes what it is sent.
fn receiver(port: u16, got: Received) -> std::thread::JoinHandle<()> {
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let thread = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let traces = got.clone();
            let metrics = got.clone();
            let app = axum::Router::new()
                .route(
                    "/v1/traces",
                    axum::routing::post(move |body: axum::body::Bytes| {
                        let got = traces.clone();
                        async move {
                            let req = ExportTraceServiceRequest::decode(body).unwrap();
                            let mut spans = got.spans.lock().unwrap();
                            for rs in req.resource_spans {
                                let service = rs
                                    .resource
                                    .iter()
                                    .flat_map(|r| &r.attributes)
                                    .find(|a| a.key == "service.name")
                                    .and_then(|a| text(a.value.as_ref()?.value.as_ref()?));
                                assert_eq!(service.as_deref(), Some("tollgate-under-test"));
                                for ss in rs.scope_spans {
                                    spans.extend(ss.spans);
                                }
                            }
                            (
                                [("content-type", "application/x-protobuf")],
                                Vec::<u8>::new(),
                            )
                        }
                    }),
                )
                .route(
                    "/v1/metrics",
                    axum::routing::post(move |body: axum::body::Bytes| {
                        let got = metrics.clone();
                        async move {
                            let req = ExportMetricsServiceRequest::decode(body).unwrap();
                            let mut names = got.metric_names.lock().unwrap();
                            for rm in req.resource_metrics {
                                for sm in rm.scope_metrics {
                                    for m in sm.metrics {
                                        *names.entry(m.name.clone()).or_default() += sum_of(&m);
                                    }
                                }
                            }
                            (
                                [("content-type", "application/x-protobuf")],
                                Vec::<u8>::new(),
                            )
                        }
                    }),
                );
            let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], port)))
                .await
                .unwrap();
            ready_tx.send(()).unwrap();
            axum::serve(listener, app).await.unwrap();
        });
    });
    ready_rx.recv_timeout(Duration::from_secs(10)).unwrap();
    thread
}

/// The latest cumulative count of a counter, or of a histogram's observations.
fn sum_of(m: &opentelemetry_proto::tonic::metrics::v1::Metric) -> u64 {
    use opentelemetry_proto::tonic::metrics::v1::metric::Data;
    use opentelemetry_proto::tonic::metrics::v1::number_data_point::Value as N;
    match &m.data {
        Some(Data::Sum(s)) => s
            .data_points
            .iter()
            .map(|p| match p.value {
                Some(N::AsInt(i)) => u64::try_from(i).unwrap(),
                Some(N::AsDouble(d)) => d as u64,
                None => 0,
            })
            .sum(),
        Some(Data::Histogram(h)) => h.data_points.iter().map(|p| p.count).sum(),
        _ => 0,
    }
}

fn text(v: &Any) -> Option<String> {
    match v {
        Any::StringValue(s) => Some(s.clone()),
        _ => None,
    }
}

fn attr(span: &Span, key: &str) -> Option<Any> {
    span.attributes
        .iter()
        .find(|a| a.key == key)
        .and_then(|a| a.value.as_ref()?.value.clone())
}

fn attr_text(span: &Span, key: &str) -> String {
    match attr(span, key) {
        Some(Any::StringValue(s)) => s,
        other => panic!("span {} attribute {key}: {other:?}", span.name),
    }
}

// ---------------------------------------------------------------- the server

struct Node {
    child: Child,
    url: String,
    test_key: String,
    _dir: tempfile::TempDir,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

fn start(otel_port: u16) -> Node {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .arg("serve")
        .env("TOLLGATE_LISTEN", format!("127.0.0.1:{port}"))
        .env("TOLLGATE_DATA_DIR", dir.path().join("data"))
        .env(
            "TOLLGATE_OTEL_ENDPOINT",
            format!("http://127.0.0.1:{otel_port}"),
        )
        .env("TOLLGATE_OTEL_SERVICE_NAME", "tollgate-under-test")
        .env("TOLLGATE_OTEL_METRICS_INTERVAL_MS", "300")
        // The batch span processor's delay (standard variable), short for the test.
        .env("OTEL_BSP_SCHEDULE_DELAY", "100")
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .env_remove("OTEL_SDK_DISABLED")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let boot = dir.path().join("data/bootstrap-keys.json");
    let deadline = Instant::now() + Duration::from_secs(30);
    let keys = loop {
        if let Ok(text) = std::fs::read_to_string(&boot)
            && let Ok(v) = serde_json::from_str::<Value>(&text)
            && std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        {
            break v;
        }
        assert!(Instant::now() < deadline, "server did not start");
        std::thread::sleep(Duration::from_millis(50));
    };
    Node {
        child,
        url: format!("http://127.0.0.1:{port}"),
        test_key: keys["test_key"]["secret"].as_str().unwrap().to_owned(),
        _dir: dir,
    }
}

/// Waits until `check` holds on the received spans.
fn wait_for(got: &Received, what: &str, check: impl Fn(&[Span]) -> bool) -> Vec<Span> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let spans = got.spans.lock().unwrap().clone();
        if check(&spans) {
            return spans;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: not received; spans: {:#?}",
            spans
                .iter()
                .map(|s| (
                    &s.name,
                    hex::encode(&s.span_id),
                    hex::encode(&s.parent_span_id),
                    s.attributes.iter().map(|a| &a.key).collect::<Vec<_>>()
                ))
                .collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT_ID: &str = "00f067aa0ba902b7";

fn decision_span_of<'a>(spans: &'a [Span], decision_id: &str) -> Option<&'a Span> {
    spans.iter().find(|s| {
        s.name == "tollgate.decision"
            && matches!(attr(s, "tollgate.decision_id"), Some(Any::StringValue(d)) if d == decision_id)
    })
}

#[test]
fn a_decision_is_a_span_in_the_callers_trace_with_its_verdict_and_steps() {
    let otel_port = free_port();
    let got = Received::default();
    let _receiver = receiver(otel_port, got.clone());
    let node = start(otel_port);
    // reqwest is built without a default crypto provider (as the binary installs one).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = reqwest::blocking::Client::new();
    let decide = |traceparent: Option<&str>, action: &str| -> Value {
        let mut req = http
            .post(format!("{}/v1/decisions", node.url))
            .bearer_auth(&node.test_key)
            .json(&json!({"action": {"type": action}, "actor": {"id": "agent-1"}}));
        if let Some(t) = traceparent {
            req = req.header("traceparent", t);
        }
        let r = req.send().unwrap();
        assert_eq!(r.status().as_u16(), 200);
        r.json().unwrap()
    };
    let joined = decide(Some(&format!("00-{TRACE_ID}-{PARENT_ID}-01")), "READ");
    let malformed = decide(Some("00-not-a-trace-context-01"), "READ");
    let absent = decide(None, "DELETE_PRODUCTION_DATABASE");

    let ids = [&joined, &malformed, &absent].map(|v| v["decision_id"].as_str().unwrap().to_owned());
    let spans = wait_for(&got, "three decision spans and their steps", |spans| {
        ids.iter().all(|id| {
            decision_span_of(spans, id).is_some_and(|d| {
                spans
                    .iter()
                    .filter(|s| s.parent_span_id == d.span_id)
                    .count()
                    >= 3
                    && spans.iter().any(|s| s.span_id == d.parent_span_id)
            })
        })
    });

    for (v, id) in [&joined, &malformed, &absent].iter().zip(&ids) {
        let d = decision_span_of(&spans, id).unwrap();
        // The verdict's attributes are the answered verdict.
        assert_eq!(
            attr_text(d, "tollgate.status"),
            v["status"].as_str().unwrap()
        );
        assert_eq!(attr_text(d, "tollgate.gate"), v["gate"].as_str().unwrap());
        let codes: Vec<&str> = v["reason_codes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_str().unwrap())
            .collect();
        assert_eq!(attr_text(d, "tollgate.reason_codes"), codes.join(","));
        let policy = &v["policy"];
        assert_eq!(
            attr_text(d, "tollgate.policy_versions"),
            format!("{}@{}", policy["id"].as_str().unwrap(), policy["version"])
        );
        assert_eq!(attr_text(d, "tollgate.tenant"), "default");
        assert_eq!(attr_text(d, "tollgate.family"), "native");
        assert_eq!(
            attr(d, "tollgate.ledger.seq"),
            Some(Any::IntValue(v["ledger"]["seq"].as_i64().unwrap()))
        );
        // Its steps are its children, in its trace.
        let mut steps: Vec<&str> = spans
            .iter()
            .filter(|s| s.parent_span_id == d.span_id)
            .map(|s| {
                assert_eq!(s.trace_id, d.trace_id);
                s.name.as_str()
            })
            .collect();
        steps.sort_unstable();
        assert_eq!(
            steps,
            [
                "tollgate.engine",
                "tollgate.ledger.append",
                "tollgate.throttle"
            ]
        );
        // Its parent is the request's server span.
        let server = spans
            .iter()
            .find(|s| s.span_id == d.parent_span_id)
            .unwrap();
        assert_eq!(server.name, "POST /v1/decisions");
        assert_eq!(server.kind, 2, "SPAN_KIND_SERVER");
        assert_eq!(server.trace_id, d.trace_id);
        assert_eq!(
            attr(server, "http.response.status_code"),
            Some(Any::IntValue(200))
        );
    }
    let server_of = |id: &str| {
        let d = decision_span_of(&spans, id).unwrap();
        spans
            .iter()
            .find(|s| s.span_id == d.parent_span_id)
            .unwrap()
            .clone()
    };
    // The caller's traceparent is the server span's parent.
    let s = server_of(&ids[0]);
    assert_eq!(hex::encode(&s.trace_id), TRACE_ID);
    assert_eq!(hex::encode(&s.parent_span_id), PARENT_ID);
    // A malformed one, or none: a new trace, no parent.
    for id in &ids[1..] {
        let s = server_of(id);
        assert!(s.parent_span_id.is_empty(), "{s:?}");
        assert_ne!(hex::encode(&s.trace_id), TRACE_ID);
    }
    assert_ne!(server_of(&ids[1]).trace_id, server_of(&ids[2]).trace_id);

    // The OTLP metrics count the decisions.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let names = got.metric_names.lock().unwrap().clone();
        if names.get("tollgate.decisions").is_some_and(|n| *n >= 3)
            && names
                .get("tollgate.decision.duration")
                .is_some_and(|n| *n >= 3)
        {
            break;
        }
        assert!(Instant::now() < deadline, "metrics not received: {names:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn the_rust_sdk_sends_its_current_span_as_traceparent() {
    let otel_port = free_port();
    let got = Received::default();
    let _receiver = receiver(otel_port, got.clone());
    let node = start(otel_port);

    // The agent's side: its own tracer provider and `tracing` subscriber, the W3C
    // propagator installed globally, as an application using tracing-opentelemetry has.
    opentelemetry::global::set_text_map_propagator(
        opentelemetry_sdk::propagation::TraceContextPropagator::new(),
    );
    let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("agent")));
    let _guard = tracing::subscriber::set_default(subscriber);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let client = tollgate_client::Client::builder()
        .base_url(&node.url)
        .api_key(&node.test_key)
        .build()
        .unwrap();
    let span = tracing::info_span!("agent.step");
    let (trace_id, span_id) = {
        let cx = span.context();
        let sc = cx.span().span_context().clone();
        assert!(sc.is_valid());
        (sc.trace_id().to_string(), sc.span_id().to_string())
    };
    let request = tollgate_client::DecisionRequest::new("READ").actor_id("agent-1", "AI_AGENT");
    let d = rt
        .block_on(client.decide(&request).instrument(span))
        .unwrap();

    let spans = wait_for(&got, "the SDK's decision span", |spans| {
        decision_span_of(spans, &d.decision_id)
            .is_some_and(|ds| spans.iter().any(|s| s.span_id == ds.parent_span_id))
    });
    let ds = decision_span_of(&spans, &d.decision_id).unwrap();
    let server = spans
        .iter()
        .find(|s| s.span_id == ds.parent_span_id)
        .unwrap();
    assert_eq!(hex::encode(&server.trace_id), trace_id);
    assert_eq!(hex::encode(&server.parent_span_id), span_id);
    assert_eq!(hex::encode(&ds.trace_id), trace_id);
}
