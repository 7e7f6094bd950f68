//! An LLM-style agent loop where every tool call is gated by Tollgate.
//!
//! A scripted "model" proposes tool calls; each one is decided before it runs. A
//! blocked call is not executed: its reason is handed back to the model as the tool
//! result, the way agent frameworks report tool errors.
//!
//! Run against a server: `cargo run -p tollgate-client --example tool_loop -- URL KEY`
//! (or set `TOLLGATE_URL` and `TOLLGATE_API_KEY`).
#![allow(clippy::print_stdout, reason = "an example prints what it does")]

use serde_json::{Value, json};
use tollgate_client::{Client, DecisionPoint, DecisionRequest};

/// One tool call the model proposes: the tool, its arguments, the model's own risk
/// estimate and confidence.
struct ToolCall {
    tool: &'static str,
    args: Value,
    risk: f64,
    confidence: f64,
}

/// What the model "decides" to do, step by step.
fn model_plan() -> Vec<ToolCall> {
    vec![
        ToolCall {
            tool: "search_docs",
            args: json!({"query": "refund policy"}),
            risk: 0.05,
            confidence: 0.97,
        },
        ToolCall {
            tool: "send_email",
            args: json!({"to": "customer@example.com", "template": "refund"}),
            risk: 0.3,
            confidence: 0.95,
        },
        ToolCall {
            tool: "drop_table",
            args: json!({"table": "customers"}),
            risk: 0.95,
            confidence: 0.92,
        },
        ToolCall {
            tool: "issue_refund",
            args: json!({"amount": 40}),
            risk: 0.2,
            confidence: 0.96,
        },
    ]
}

/// The tools themselves (stand-ins).
async fn execute(call: &ToolCall) -> String {
    format!("{} ran with {}", call.tool, call.args)
}

/// One line per step: what ran and what was refused.
pub async fn run(point: &impl DecisionPoint) -> Vec<String> {
    let mut transcript = Vec::new();
    for call in model_plan() {
        let request = DecisionRequest::new(call.tool.to_ascii_uppercase())
            .actor_id("support-bot-7", "AI_AGENT")
            .action_field("args", call.args.clone())
            .signal("risk_score", call.risk)
            .signal("confidence", call.confidence)
            .intent(format!("tool call `{}`", call.tool))
            .source("support-bot-7");
        let line = match point.gate(&request, execute(&call)).await {
            Ok(result) => format!("ALLOWED {}: {result}", call.tool),
            Err(e) => match e.blocked() {
                // Fed back to the model as the tool's result.
                Some(b) => format!(
                    "BLOCKED {} at {}: {}",
                    call.tool,
                    b.gate.as_str(),
                    b.explanation
                ),
                None => format!("ERROR {}: {e}", call.tool),
            },
        };
        transcript.push(line);
    }
    transcript
}

/// `URL KEY` from the arguments, else `TOLLGATE_URL` / `TOLLGATE_API_KEY`.
fn client_from_args() -> Result<Client, tollgate_client::Error> {
    let mut args = std::env::args().skip(1);
    let url = args
        .next()
        .or_else(|| std::env::var("TOLLGATE_URL").ok())
        .unwrap_or_else(|| "http://127.0.0.1:8765".to_owned());
    let key = args
        .next()
        .or_else(|| std::env::var("TOLLGATE_API_KEY").ok())
        .unwrap_or_default();
    Client::builder().base_url(url).api_key(key).build()
}

#[tokio::main]
async fn main() -> Result<(), tollgate_client::Error> {
    let client = client_from_args()?;
    for line in run(&client).await {
        println!("{line}");
    }
    Ok(())
}
