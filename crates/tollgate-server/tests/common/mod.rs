//! Test harness: a server on a temporary data directory with a hand-moved clock,
//! driven through the router without a socket.

#![allow(dead_code)]

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::BodyExt as _;
use serde_json::{Value, json};
use tollgate_server::clock::ManualClock;
use tollgate_server::{App, AppState, BOOTSTRAP_FILE, Config};
use tower::ServiceExt as _;

/// 2026-03-10T12:00:00Z.
pub(crate) const T0: i64 = 1_773_144_000_000;

pub(crate) struct Harness {
    pub dir: tempfile::TempDir,
    pub state: AppState,
    pub router: Router,
    pub clock: Arc<ManualClock>,
    pub admin: String,
    pub test_key: String,
}

pub(crate) struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
    pub text: String,
}

impl Harness {
    pub(crate) fn new() -> Self {
        Self::with_config(|_| {})
    }

    pub(crate) fn with_config(edit: impl FnOnce(&mut Config)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config {
            data_dir: dir.path().to_owned(),
            ..Config::default()
        };
        edit(&mut config);
        let clock = Arc::new(ManualClock::new(T0));
        let app = App::open_with_clock(config, clock.clone()).unwrap();
        let keys: Value = serde_json::from_str(
            &std::fs::read_to_string(dir.path().join(BOOTSTRAP_FILE)).unwrap(),
        )
        .unwrap();
        let router = tollgate_server::router(app.state.clone());
        Harness {
            admin: keys["admin_key"]["secret"].as_str().unwrap().to_owned(),
            test_key: keys["test_key"]["secret"].as_str().unwrap().to_owned(),
            dir,
            state: app.state,
            router,
            clock,
        }
    }

    /// A second node on this harness's store object (its own caches, meter, review
    /// lock and throttle; the same store, signing key, clock and bootstrap keys),
    /// configured like `base` after `edit`.
    pub(crate) fn node(&self, base: &Config, edit: impl FnOnce(&mut Config)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config {
            data_dir: dir.path().to_owned(),
            ..base.clone()
        };
        edit(&mut config);
        let (key, _) = tollgate_store::keyfile::load_or_create(
            &self.dir.path().join(tollgate_server::KEY_FILE),
        )
        .unwrap();
        let app = App::on_store(
            config,
            self.state.store().clone(),
            key,
            false,
            self.clock.clone(),
        )
        .unwrap();
        assert!(
            app.bootstrap_file.is_none(),
            "the store was bootstrapped once"
        );
        let router = tollgate_server::router(app.state.clone());
        Harness {
            admin: self.admin.clone(),
            test_key: self.test_key.clone(),
            dir,
            state: app.state,
            router,
            clock: self.clock.clone(),
        }
    }

    pub(crate) async fn call(
        &self,
        method: Method,
        path: &str,
        key: Option<&str>,
        body: Option<Value>,
    ) -> Reply {
        self.call_raw(method, path, key, body.map(|b| b.to_string()), &[])
            .await
    }

    pub(crate) async fn call_raw(
        &self,
        method: Method,
        path: &str,
        key: Option<&str>,
        body: Option<String>,
        headers: &[(&str, &str)],
    ) -> Reply {
        let mut req = Request::builder().method(method).uri(path);
        if let Some(k) = key {
            req = req.header("authorization", format!("Bearer {k}"));
        }
        for (h, v) in headers {
            req = req.header(*h, *v);
        }
        let req = match body {
            Some(b) => req
                .header("content-type", "application/json")
                .body(Body::from(b)),
            None => req.body(Body::empty()),
        }
        .unwrap();
        let res = self.router.clone().oneshot(req).await.unwrap();
        let status = res.status();
        let headers = res.headers().clone();
        let bytes = res.into_body().collect().await.unwrap().to_bytes();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Reply {
            status,
            headers,
            body,
            text,
        }
    }

    pub(crate) async fn get(&self, path: &str, key: &str) -> Reply {
        self.call(Method::GET, path, Some(key), None).await
    }

    pub(crate) async fn post(&self, path: &str, key: &str, body: Value) -> Reply {
        self.call(Method::POST, path, Some(key), Some(body)).await
    }

    pub(crate) async fn decide(&self, key: &str, body: Value) -> Reply {
        self.post("/v1/decisions", key, body).await
    }

    /// Creates a tenant and returns (admin secret, live decide secret, test decide secret).
    pub(crate) async fn tenant(&self, id: &str) -> (String, String, String) {
        let r = self
            .post("/v1/admin/tenants", &self.admin, json!({"id": id}))
            .await;
        assert!(r.status.is_success(), "{}", r.text);
        let mut out = Vec::new();
        for (env, scopes) in [
            ("live", json!(["admin", "decide", "outcomes", "review"])),
            ("live", json!(["decide", "outcomes"])),
            ("test", json!(["decide", "outcomes"])),
        ] {
            let r = self
                .post(
                    "/v1/admin/keys",
                    &self.admin,
                    json!({"tenant": id, "environment": env, "scopes": scopes}),
                )
                .await;
            assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
            out.push(r.body["secret"].as_str().unwrap().to_owned());
        }
        (out[0].clone(), out[1].clone(), out[2].clone())
    }
}

/// An in-band csc-default request.
pub(crate) fn in_band() -> Value {
    json!({
        "actor": {"id": "agent-1", "type": "AI_AGENT"},
        "action": {"type": "OPEN_POSITION", "symbol": "BTC"},
        "signals": {"volatility": 0.05, "confidence": 0.95},
        "source": "agent-1"
    })
}
