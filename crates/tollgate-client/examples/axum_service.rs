//! An axum service behind the Tollgate layer: every order request is decided before
//! its handler runs; refused requests get a 403 JSON body; quotes are not gated.
//!
//! Run: `cargo run -p tollgate-client --example axum_service -- URL KEY [LISTEN]`
//! (or set `TOLLGATE_URL`, `TOLLGATE_API_KEY`, `LISTEN`), then
//! `curl -X POST localhost:3000/orders/BTC`.
#![allow(clippy::print_stdout, reason = "an example prints what it does")]

use axum::extract::Path;
use axum::http::request::Parts;
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use serde_json::{Value, json};
use tollgate_client::{Client, Decision, DecisionLayer, DecisionPoint, DecisionRequest};

/// Turns a request head into a decision request; quotes are not gated.
fn decision_for(parts: &Parts) -> Option<DecisionRequest> {
    let path = parts.uri.path();
    if path.starts_with("/quotes") {
        return None;
    }
    // A bulk order is the strategy's least confident action.
    let confidence = if path.ends_with("/bulk") { 0.5 } else { 0.95 };
    Some(
        DecisionRequest::new("HTTP_ORDER")
            .actor_id("orders-api", "SERVICE")
            .context_field("method", parts.method.as_str())
            .context_field("path", path)
            .signal("volatility", 0.05)
            .signal("confidence", confidence)
            .source("orders-api"),
    )
}

async fn quote(Path(symbol): Path<String>) -> Json<Value> {
    Json(json!({"symbol": symbol, "price": 101.5}))
}

async fn order(Path(symbol): Path<String>, Extension(d): Extension<Decision>) -> Json<Value> {
    Json(json!({"symbol": symbol, "status": "placed", "decision_id": d.decision_id}))
}

/// The service, gated by `point`.
pub fn app<D: DecisionPoint + 'static>(point: D) -> Router {
    Router::new()
        .route("/quotes/{symbol}", get(quote))
        .route("/orders/{symbol}", post(order))
        .route("/orders/{symbol}/bulk", post(order))
        .layer(DecisionLayer::new(point, decision_for))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let url = args
        .next()
        .or_else(|| std::env::var("TOLLGATE_URL").ok())
        .unwrap_or_else(|| "http://127.0.0.1:8765".to_owned());
    let key = args
        .next()
        .or_else(|| std::env::var("TOLLGATE_API_KEY").ok())
        .unwrap_or_default();
    let listen = args
        .next()
        .or_else(|| std::env::var("LISTEN").ok())
        .unwrap_or_else(|| "127.0.0.1:3000".to_owned());
    let client = Client::builder().base_url(url).api_key(key).build()?;
    let listener = tokio::net::TcpListener::bind(&listen).await?;
    println!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app(client)).await?;
    Ok(())
}
