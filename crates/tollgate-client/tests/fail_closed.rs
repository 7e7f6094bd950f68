//! No verdict is a block: connection refused, timeouts, 5xx, unexpected statuses
//! and bodies. Retries of what can be retried, with one idempotency key.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use common::{Hits, in_band, refused_url, stub};
use serde_json::{Value, json};
use tollgate_client::{Client, DecisionPoint, Error, FailMode, Failure, Gate, Status};

fn client(url: &str) -> Client {
    Client::builder()
        .base_url(url)
        .api_key("tg_test_x")
        .backoff(Duration::from_millis(5))
        .build()
        .unwrap()
}

fn failure(e: &Error) -> &Failure {
    let b = e.blocked().expect("a block");
    assert_eq!(b.gate, Gate::Unavailable);
    assert_eq!(b.status, Status::Block);
    assert!(b.is_fail_closed());
    assert!(b.decision_id.is_none());
    b.failure.as_ref().unwrap()
}

/// A verdict body as a stub server would send it.
fn verdict(status: &str) -> Value {
    json!({
        "decision_id": "dec_stub",
        "status": status,
        "gate": "permit",
        "reason_codes": [],
        "explanation": "stub",
    })
}

#[tokio::test]
async fn connection_refused_is_a_block() {
    let url = refused_url().await;
    let c = client(&url);
    let err = c.decide(&in_band("X")).await.unwrap_err();
    assert!(matches!(failure(&err), Failure::Transport(_)), "{err}");
    let err = c.enforce(&in_band("X")).await.unwrap_err();
    assert!(matches!(failure(&err), Failure::Transport(_)));
    let ran = AtomicBool::new(false);
    let err = c
        .gate(&in_band("X"), async { ran.store(true, Ordering::SeqCst) })
        .await
        .unwrap_err();
    assert!(err.blocked().unwrap().is_fail_closed());
    assert!(!ran.load(Ordering::SeqCst));
    assert_eq!(
        err.blocked().unwrap().reason_codes,
        vec!["TOLLGATE_UNREACHABLE".to_owned()]
    );
}

#[tokio::test]
async fn fail_open_lets_the_action_through_and_says_so() {
    let url = refused_url().await;
    let c = Client::builder()
        .base_url(&url)
        .api_key("k")
        .max_retries(0)
        .fail_mode(FailMode::Open)
        .build()
        .unwrap();
    assert_eq!(c.fail_mode(), FailMode::Open);
    let d = c.enforce(&in_band("X")).await.unwrap();
    assert!(d.is_allowed());
    assert!(d.is_fail_open());
    assert_eq!(d.gate, Gate::Unavailable);
    assert!(d.decision_id.is_empty());
}

#[tokio::test]
async fn timeout_is_a_block() {
    let hits = Hits::default();
    let h = hits.clone();
    let url = stub(Router::new().route(
        "/v1/decisions",
        post(move || {
            let h = h.clone();
            async move {
                h.bump();
                tokio::time::sleep(Duration::from_secs(30)).await;
                axum::Json(verdict("ALLOW"))
            }
        }),
    ))
    .await;
    let c = Client::builder()
        .base_url(&url)
        .api_key("k")
        .timeout(Duration::from_millis(500))
        .max_retries(1)
        .backoff(Duration::from_millis(5))
        .build()
        .unwrap();
    let err = c.enforce(&in_band("X")).await.unwrap_err();
    assert_eq!(failure(&err), &Failure::Timeout);
    assert_eq!(hits.get(), 2, "one try and one retry");
}

#[tokio::test]
async fn server_errors_are_retried_then_a_block() {
    let hits = Hits::default();
    let h = hits.clone();
    let url = stub(Router::new().route(
        "/v1/decisions",
        post(move || {
            let h = h.clone();
            async move {
                h.bump();
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    axum::Json(json!({"error": "internal_error", "message": "boom"})),
                )
            }
        }),
    ))
    .await;
    let err = client(&url).decide(&in_band("X")).await.unwrap_err();
    assert_eq!(
        failure(&err),
        &Failure::Server {
            status: 500,
            message: "boom".into()
        }
    );
    assert_eq!(hits.get(), 3, "default: one try and two retries");
}

#[tokio::test]
async fn unexpected_statuses_are_a_block() {
    for status in [
        StatusCode::IM_A_TEAPOT,
        StatusCode::FOUND,
        StatusCode::NO_CONTENT,
    ] {
        let url = stub(Router::new().route(
            "/v1/decisions",
            post(move || async move { (status, axum::Json(verdict("ALLOW"))) }),
        ))
        .await;
        let err = client(&url).enforce(&in_band("X")).await.unwrap_err();
        match failure(&err) {
            Failure::UnexpectedStatus { status: s } => assert_eq!(*s, status.as_u16()),
            // A 204 has no body at all: not a verdict.
            Failure::InvalidResponse(_) => assert_eq!(status, StatusCode::NO_CONTENT),
            other => panic!("{status}: {other:?}"),
        }
    }
}

#[tokio::test]
async fn bodies_that_are_not_verdicts_are_a_block() {
    for body in [
        "not json".to_owned(),
        json!({"status": "ALLOW"}).to_string(),
        json!([1, 2]).to_string(),
    ] {
        let url = stub(Router::new().route(
            "/v1/decisions",
            post(move || {
                let body = body.clone();
                async move { ([("content-type", "application/json")], body) }
            }),
        ))
        .await;
        let err = client(&url).enforce(&in_band("X")).await.unwrap_err();
        assert!(
            matches!(failure(&err), Failure::InvalidResponse(_)),
            "{err}"
        );
    }
}

#[tokio::test]
async fn unknown_verdict_statuses_and_gates_are_blocks() {
    let url = stub(Router::new().route(
        "/v1/decisions",
        post(|| async {
            axum::Json(json!({
                "decision_id": "dec_1", "status": "MAYBE", "gate": "oracle",
                "reason_codes": ["NEW"], "explanation": "from the future"
            }))
        }),
    ))
    .await;
    let c = client(&url);
    let d = c.decide(&in_band("X")).await.unwrap();
    assert_eq!((d.status, d.gate), (Status::Unknown, Gate::Unknown));
    let err = c.enforce(&in_band("X")).await.unwrap_err();
    let b = err.blocked().unwrap();
    assert_eq!(b.status, Status::Unknown);
    assert!(
        !b.is_fail_closed(),
        "a verdict, just not one this SDK knows"
    );
}

#[tokio::test]
async fn transient_failures_are_retried_with_one_idempotency_key() {
    let keys = Arc::new(Mutex::new(Vec::<String>::new()));
    let k = keys.clone();
    let url = stub(Router::new().route(
        "/v1/decisions",
        post(move |headers: HeaderMap| {
            let k = k.clone();
            async move {
                let mut keys = k.lock().unwrap();
                keys.push(
                    headers
                        .get("idempotency-key")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_owned(),
                );
                if keys.len() == 1 {
                    (
                        StatusCode::SERVICE_UNAVAILABLE,
                        axum::Json(json!({"error": "overloaded", "message": "busy"})),
                    )
                } else if keys.len() == 2 {
                    (
                        StatusCode::CONFLICT,
                        axum::Json(json!({"error": "conflict", "message": "still in progress"})),
                    )
                } else {
                    (StatusCode::OK, axum::Json(verdict("ALLOW")))
                }
            }
        }),
    ))
    .await;
    let d = client(&url).enforce(&in_band("X")).await.unwrap();
    assert_eq!(d.decision_id, "dec_stub");
    let keys = keys.lock().unwrap().clone();
    assert_eq!(keys.len(), 3);
    assert!(!keys[0].is_empty());
    assert!(keys.iter().all(|k| k == &keys[0]), "{keys:?}");
}

#[tokio::test]
async fn rate_limits_are_errors_even_when_failing_open() {
    let hits = Hits::default();
    let h = hits.clone();
    let url = stub(Router::new().route(
        "/v1/decisions",
        post(move || {
            let h = h.clone();
            async move {
                h.bump();
                (
                    StatusCode::TOO_MANY_REQUESTS,
                    axum::Json(json!({"error": "quota_exceeded", "message": "monthly quota"})),
                )
            }
        }),
    ))
    .await;
    let c = Client::builder()
        .base_url(&url)
        .api_key("k")
        .max_retries(1)
        .backoff(Duration::from_millis(5))
        .fail_mode(FailMode::Open)
        .build()
        .unwrap();
    match c.enforce(&in_band("X")).await {
        Err(Error::RateLimited { message, .. }) => assert_eq!(message, "monthly quota"),
        other => panic!("expected a rate limit, got {other:?}"),
    }
    assert_eq!(hits.get(), 2);
}

#[tokio::test]
async fn a_bad_base_url_is_a_configuration_error() {
    assert!(matches!(
        Client::builder().base_url("ftp://x").build(),
        Err(Error::Config(_))
    ));
}

#[tokio::test]
async fn redirects_are_not_followed() {
    let target = stub(Router::new().route(
        "/v1/decisions",
        post(|| async { axum::Json(verdict("ALLOW")) }),
    ))
    .await;
    let url = stub(Router::new().route(
        "/v1/decisions",
        post(move || {
            let location = format!("{target}/v1/decisions");
            async move {
                (
                    StatusCode::TEMPORARY_REDIRECT,
                    [("location", location)],
                    "elsewhere",
                )
            }
        }),
    ))
    .await;
    let err = client(&url).enforce(&in_band("X")).await.unwrap_err();
    assert_eq!(failure(&err), &Failure::UnexpectedStatus { status: 307 });
}

#[tokio::test]
async fn oversized_bodies_are_not_verdicts() {
    let url = stub(Router::new().route(
        "/v1/decisions",
        post(|| async {
            let mut v = verdict("ALLOW");
            v["padding"] = json!("x".repeat(17 * 1024 * 1024));
            axum::Json(v)
        }),
    ))
    .await;
    let err = client(&url).enforce(&in_band("X")).await.unwrap_err();
    assert!(
        matches!(failure(&err), Failure::InvalidResponse(_)),
        "{err}"
    );
}

#[tokio::test]
async fn writes_that_may_have_happened_are_not_repeated() {
    let hits = Hits::default();
    let h = hits.clone();
    let url = stub(Router::new().route(
        "/v1/grants/consume",
        post(move || {
            let h = h.clone();
            async move {
                h.bump();
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    axum::Json(json!({"error": "internal_error", "message": "boom"})),
                )
            }
        }),
    ))
    .await;
    let err = client(&url).consume_grant("g", None).await.unwrap_err();
    assert!(matches!(
        err,
        Error::Unavailable(Failure::Server { status: 500, .. })
    ));
    assert_eq!(
        hits.get(),
        1,
        "a grant consumption is not retried after a 500"
    );
}
