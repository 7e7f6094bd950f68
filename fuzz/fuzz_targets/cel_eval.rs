//! CEL with hostile expressions: the first line of the input is a rule condition and
//! a survival score, the rest a JSON object used as the request's action and
//! context. Compilation enforces the size, nesting and cost limits; whatever
//! compiles is evaluated (the fuzzer's timeout catches evaluations that run away).
#![no_main]

use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use serde_json::{Value, json};
use tollgate_core::{DecisionRequest, PolicyBinding, PolicyFormat, compile_policy};
use tollgate_fuzz::decide_once;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (expr, rest) = text.split_once('\n').unwrap_or((text, ""));
    let mut request = DecisionRequest {
        tenant: "fuzz".to_owned(),
        ..Default::default()
    };
    if let Ok(Value::Object(map)) = serde_json::from_str::<Value>(rest) {
        request.context = map.clone();
        request.action = map;
    }
    request
        .action
        .entry("type")
        .or_insert_with(|| "OPEN_POSITION".into());
    request.signals.insert("risk_score".into(), 0.1);
    request.signals.insert("confidence".into(), 0.95);
    request.signals.insert("volatility".into(), 0.05);
    let documents = [
        json!({
            "id": "fuzz-rule",
            "rules": [{"name": "r", "when": expr, "effect": "block", "reason_code": "R"}],
        }),
        json!({
            "id": "fuzz-score",
            "survival": {"score": expr, "threshold": 0.5},
        }),
    ];
    for doc in documents {
        if let Ok(policy) = compile_policy(&doc.to_string(), PolicyFormat::Json) {
            decide_once(&request, Some(PolicyBinding::Found(Arc::new(policy))));
        }
    }
});
