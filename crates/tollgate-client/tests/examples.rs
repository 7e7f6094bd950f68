//! Runs each example's main logic against a live in-process server, so CI exercises
//! the examples.

mod common;

#[path = "../examples/tool_loop.rs"]
#[allow(dead_code, unreachable_pub)]
mod tool_loop;

#[path = "../examples/trading_bot.rs"]
#[allow(dead_code, unreachable_pub)]
mod trading_bot;

#[path = "../examples/axum_service.rs"]
#[allow(dead_code, unreachable_pub)]
mod axum_service;

use common::{Server, stub};
use tollgate_client::Gate;

#[tokio::test]
async fn tool_loop_runs_allowed_tools_and_refuses_the_dangerous_one() {
    let server = Server::start().await;
    let transcript = tool_loop::run(&server.client()).await;
    assert_eq!(transcript.len(), 4, "{transcript:#?}");
    assert!(
        transcript[0].starts_with("ALLOWED search_docs"),
        "{transcript:#?}"
    );
    assert!(
        transcript[1].starts_with("ALLOWED send_email"),
        "{transcript:#?}"
    );
    assert!(
        transcript[2].starts_with("BLOCKED drop_table at policy"),
        "{transcript:#?}"
    );
    assert!(
        transcript[3].starts_with("ALLOWED issue_refund"),
        "{transcript:#?}"
    );
}

#[tokio::test]
async fn trading_bot_retries_throttle_blocks_and_never_turbulent_ones() {
    let server = Server::start().await;
    let report = trading_bot::run(&server.client(), &trading_bot::signals()).await;
    // Five calm orders against a bucket of four: the fifth waits for a token.
    assert_eq!(report.placed, ["BTC", "ETH", "SOL", "ADA", "XRP"]);
    assert_eq!(report.refused, [("DOGE", Gate::Reality)]);
}

#[tokio::test]
async fn axum_service_gates_orders_and_not_quotes() {
    let server = Server::start().await;
    let url = stub(axum_service::app(server.client())).await;
    let http = common::http();
    let quote = http.get(format!("{url}/quotes/BTC")).send().await.unwrap();
    assert_eq!(quote.status(), 200);
    let order = http.post(format!("{url}/orders/BTC")).send().await.unwrap();
    assert_eq!(order.status(), 200);
    let body: serde_json::Value = order.json().await.unwrap();
    assert_eq!(body["status"], "placed");
    assert!(body["decision_id"].as_str().unwrap().starts_with("dec_"));
    let bulk = http
        .post(format!("{url}/orders/BTC/bulk"))
        .send()
        .await
        .unwrap();
    assert_eq!(bulk.status(), 403);
    let body: serde_json::Value = bulk.json().await.unwrap();
    assert_eq!(body["error"], "tollgate_blocked");
    assert_eq!(body["gate"], "reality");
}
