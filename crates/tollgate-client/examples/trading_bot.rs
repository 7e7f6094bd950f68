//! A trading bot behind Tollgate, with throttle-aware retry.
//!
//! Each signal becomes an order proposal. Orders in a turbulent regime are refused
//! for good (reality gate: retrying will not help); orders refused only because the
//! token bucket is empty are retried after the `retry_after_ms` the server gives.
//!
//! Run against a server: `cargo run -p tollgate-client --example trading_bot -- URL KEY`
//! (or set `TOLLGATE_URL` and `TOLLGATE_API_KEY`).
#![allow(clippy::print_stdout, reason = "an example prints what it does")]

use std::time::Duration;

use tollgate_client::{Client, DecisionPoint, DecisionRequest, Gate, RetryPolicy};

/// What the strategy wants to do.
#[derive(Clone, Copy, Debug)]
pub struct Signal {
    /// Instrument.
    pub symbol: &'static str,
    /// Current volatility.
    pub volatility: f64,
    /// The strategy's confidence.
    pub confidence: f64,
}

/// What happened to the orders.
#[derive(Debug, Default)]
pub struct Report {
    /// Orders sent to the broker.
    pub placed: Vec<&'static str>,
    /// Orders refused, with the gate.
    pub refused: Vec<(&'static str, Gate)>,
}

/// A burst of signals, one of them in a turbulent regime.
pub fn signals() -> Vec<Signal> {
    let calm = |symbol| Signal {
        symbol,
        volatility: 0.05,
        confidence: 0.95,
    };
    vec![
        calm("BTC"),
        calm("ETH"),
        Signal {
            symbol: "DOGE",
            volatility: 0.4,
            confidence: 0.91,
        },
        calm("SOL"),
        calm("ADA"),
        calm("XRP"),
    ]
}

/// Runs the strategy: every order is decided first, throttle blocks are retried.
pub async fn run(point: &impl DecisionPoint, signals: &[Signal]) -> Report {
    let retry = RetryPolicy {
        max_attempts: 4,
        base_backoff: Duration::from_secs(5),
        max_wait: Duration::from_secs(15),
    };
    let mut report = Report::default();
    for (i, s) in signals.iter().enumerate() {
        let request = DecisionRequest::new("OPEN_POSITION")
            .actor_id("cfd_bot_7", "TRADING_BOT")
            .action_field("symbol", s.symbol)
            .action_field("side", "buy")
            .signal("volatility", s.volatility)
            .signal("confidence", s.confidence)
            .source("cfd_bot_7")
            .idempotency_key(format!("order-{i}-{}", s.symbol));
        match point.decide_with_retry(&request, retry).await {
            Ok(d) if d.is_allowed() => report.placed.push(s.symbol),
            Ok(d) => report.refused.push((s.symbol, d.gate)),
            // No verdict: the client failed closed, so no order.
            Err(e) => report
                .refused
                .push((s.symbol, e.blocked().map_or(Gate::Unavailable, |b| b.gate))),
        }
    }
    report
}

#[tokio::main]
async fn main() -> Result<(), tollgate_client::Error> {
    let mut args = std::env::args().skip(1);
    let url = args
        .next()
        .or_else(|| std::env::var("TOLLGATE_URL").ok())
        .unwrap_or_else(|| "http://127.0.0.1:8765".to_owned());
    let key = args
        .next()
        .or_else(|| std::env::var("TOLLGATE_API_KEY").ok())
        .unwrap_or_default();
    let client = Client::builder().base_url(url).api_key(key).build()?;
    let report = run(&client, &signals()).await;
    println!("placed:  {:?}", report.placed);
    println!("refused: {:?}", report.refused);
    Ok(())
}
