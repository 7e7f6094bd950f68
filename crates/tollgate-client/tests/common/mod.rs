//! A real Tollgate on a real socket (in-process), and small stubs for the answers a
//! real one never gives.

#![allow(dead_code, unreachable_pub)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use serde_json::Value;
use tollgate_client::admin::NewOverride;
use tollgate_client::{Client, ClientBuilder, DecisionRequest};
use tollgate_server::{App, AppState, BOOTSTRAP_FILE, Config};

pub struct Server {
    pub url: String,
    pub admin: String,
    pub test_key: String,
    pub dir: tempfile::TempDir,
    pub state: AppState,
    task: tokio::task::JoinHandle<()>,
}

impl Server {
    pub async fn start() -> Server {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let dir = tempfile::tempdir().unwrap();
        let config = Config {
            data_dir: dir.path().to_owned(),
            public_url: Some(url.clone()),
            ..Config::default()
        };
        let app = App::open(config).unwrap();
        let keys: Value = serde_json::from_str(
            &std::fs::read_to_string(dir.path().join(BOOTSTRAP_FILE)).unwrap(),
        )
        .unwrap();
        let router = tollgate_server::router(app.state.clone());
        let task = tokio::spawn(async move {
            axum::serve(listener, router).await.unwrap();
        });
        Server {
            url,
            admin: keys["admin_key"]["secret"].as_str().unwrap().to_owned(),
            test_key: keys["test_key"]["secret"].as_str().unwrap().to_owned(),
            dir,
            state: app.state,
            task,
        }
    }

    /// A builder for this server with the test key and quick retries.
    pub fn builder(&self) -> ClientBuilder {
        Client::builder()
            .base_url(&self.url)
            .api_key(&self.test_key)
            .backoff(Duration::from_millis(10))
    }

    pub fn client(&self) -> Client {
        self.builder().build().unwrap()
    }

    /// A client of this server with the admin key (the SDK's operator API).
    pub fn admin_client(&self) -> Client {
        self.builder().api_key(&self.admin).build().unwrap()
    }

    /// Stores a policy version for tenant `default` (publishing through the API is
    /// the policy-lifecycle issue's).
    pub fn put_policy(&self, id: &str, version: u64, text: &str) {
        use sha2::{Digest as _, Sha256};
        let hash: String = Sha256::digest(text.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        self.state
            .store()
            .put_policy_version(&tollgate_store::PolicyRecord {
                tenant: "default".into(),
                policy_id: id.into(),
                version,
                text: text.into(),
                text_hash: hash,
                created_ms: 0,
            })
            .unwrap();
    }

    /// Engages a kill switch on an action type; returns its id.
    pub async fn kill_switch(&self, action_type: &str, reason: &str) -> String {
        let o = self
            .admin_client()
            .set_override(&NewOverride {
                scope: "action_type".into(),
                value: Some(action_type.into()),
                reason: reason.into(),
            })
            .await
            .unwrap();
        o.id
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Inside csc-default's safe band.
pub fn in_band(action: &str) -> DecisionRequest {
    DecisionRequest::new(action)
        .actor_id("agent-1", "AI_AGENT")
        .signal("volatility", 0.05)
        .signal("confidence", 0.95)
        .source("agent-1")
}

/// A bare reqwest client for calls that are not the SDK's (stubs, proxies). The SDK
/// chooses rustls with no provider of its own and installs *ring* when a `Client` is
/// built; a bare reqwest client built before that would find none, so install it here
/// too: each test must pass alone, whatever ran before it.
pub fn http() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

/// An address nothing listens on.
pub async fn refused_url() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{addr}")
}

/// Serves `router` on a fresh port.
pub async fn stub(router: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        axum::serve(listener, router).await.unwrap();
    });
    url
}

/// A counter shared with a stub.
#[derive(Clone, Default)]
pub struct Hits(pub Arc<AtomicUsize>);

impl Hits {
    pub fn bump(&self) -> usize {
        self.0.fetch_add(1, Ordering::SeqCst) + 1
    }
    pub fn get(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}
