//! The tower layer in an axum app, deciding with a real Tollgate.

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode, request::Parts};
use axum::routing::get;
use axum::{Extension, Router};
use common::{Server, refused_url};
use serde_json::Value;
use tollgate_client::middleware::Rejection;
use tollgate_client::testing::{FakeClient, blocked};
use tollgate_client::{Client, Decision, DecisionLayer, DecisionPoint, DecisionRequest, Gate};
use tower::{Layer, Service, ServiceExt as _};

/// Routes under `/risky` carry a volatility outside csc-default's band; `/health`
/// is not gated.
fn build(parts: &Parts) -> Option<DecisionRequest> {
    let path = parts.uri.path();
    if path == "/health" {
        return None;
    }
    let volatility = if path.starts_with("/risky") {
        0.6
    } else {
        0.05
    };
    Some(
        DecisionRequest::new("HTTP_REQUEST")
            .actor_id("api", "SERVICE")
            .context_field("path", path)
            .context_field("method", parts.method.as_str())
            .signal("volatility", volatility)
            .signal("confidence", 0.95),
    )
}

fn app<D: DecisionPoint + 'static>(point: D) -> Router {
    Router::new()
        .route(
            "/orders",
            get(|Extension(d): Extension<Decision>| async move { d.decision_id }),
        )
        .route("/risky/wire", get(|| async { "wired" }))
        .route("/health", get(|| async { "ok" }))
        .layer(DecisionLayer::new(point, build))
}

async fn call(app: &Router, path: &str) -> (StatusCode, String) {
    let res = app
        .clone()
        .oneshot(Request::get(path).body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = res.status();
    let bytes = axum::body::to_bytes(res.into_body(), 1 << 20)
        .await
        .unwrap();
    (status, String::from_utf8(bytes.to_vec()).unwrap())
}

#[tokio::test]
async fn allowed_routes_pass_and_blocked_routes_get_403_json() {
    let server = Server::start().await;
    let app = app(server.client());
    let (status, body) = call(&app, "/orders").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(
        body.starts_with("dec_"),
        "the handler sees the verdict: {body}"
    );
    let (status, body) = call(&app, "/risky/wire").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let json: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["error"], "tollgate_blocked");
    assert_eq!(json["status"], "BLOCK");
    assert_eq!(json["gate"], "reality");
    assert!(json["decision_id"].as_str().unwrap().starts_with("dec_"));
    assert!(
        json["dossier_url"]
            .as_str()
            .unwrap()
            .contains("/v1/dossiers/")
    );
    assert!(
        json["reason_codes"]
            .as_array()
            .is_some_and(|r| !r.is_empty())
    );
    assert!(json["explanation"].is_string());
    let (status, body) = call(&app, "/health").await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "ok"));
}

#[tokio::test]
async fn server_down_is_403_when_failing_closed() {
    let client = Client::builder()
        .base_url(refused_url().await)
        .api_key("k")
        .max_retries(0)
        .build()
        .unwrap();
    let app = app(client);
    let (status, body) = call(&app, "/orders").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let json: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["gate"], "unavailable");
    assert_eq!(json["reason_codes"][0], "TOLLGATE_UNREACHABLE");
    assert!(json["decision_id"].is_null());
    // Ungated routes still answer.
    assert_eq!(call(&app, "/health").await.0, StatusCode::OK);
}

#[tokio::test]
async fn the_service_has_towers_shape() {
    // Layer → service over a plain tower service; the inner service runs only when
    // allowed, and the decision point sees every gated request.
    let fake = FakeClient::with_verdicts([
        tollgate_client::testing::permitted("ok"),
        blocked(Gate::Throttle, "no tokens").with_retry_after_ms(900),
    ]);
    let calls = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let c = calls.clone();
    let inner = tower::service_fn(move |_req: Request<Body>| {
        c.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        async { Ok::<_, std::convert::Infallible>(axum::http::Response::new(Body::from("inner"))) }
    });
    let mut svc = DecisionLayer::new(fake.clone(), build).layer(inner);
    let _: &_ = svc.get_ref();
    let res = svc
        .ready()
        .await
        .unwrap()
        .call(Request::get("/a").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let res = svc
        .ready()
        .await
        .unwrap()
        .call(Request::get("/b").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        res.headers()["content-type"].to_str().unwrap(),
        "application/json"
    );
    assert_eq!(res.headers()["retry-after"].to_str().unwrap(), "1");
    let bytes = axum::body::to_bytes(res.into_body(), 1 << 20)
        .await
        .unwrap();
    let json: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(json["gate"], "throttle");
    assert_eq!(json["retry_after_ms"], 900);
    assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 1);
    assert_eq!(fake.call_count(), 2);
    assert_eq!(fake.calls()[1].context["path"], "/b");
    let _inner = svc.into_inner();
}

#[test]
fn rejections_of_non_block_errors_are_tollgate_error() {
    let r = Rejection::from_error(&tollgate_client::Error::NotFound);
    assert_eq!(r.error, "tollgate_error");
    let res: axum::http::Response<String> = r.into_response();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
}
