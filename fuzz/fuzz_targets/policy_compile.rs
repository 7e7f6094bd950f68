//! Policy parsing and compilation in each format (YAML, TOML, JSON) and by
//! detection; a policy that compiles is then used for a decision.
#![no_main]

use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use tollgate_core::{DecisionRequest, PolicyBinding, PolicyFormat, compile_policy};
use tollgate_fuzz::decide_once;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for format in [
        PolicyFormat::Yaml,
        PolicyFormat::Toml,
        PolicyFormat::Json,
        PolicyFormat::detect(text),
    ] {
        if let Ok(policy) = compile_policy(text, format) {
            let mut request = DecisionRequest {
                tenant: "fuzz".to_owned(),
                ..Default::default()
            };
            request.action.insert("type".into(), "OPEN_POSITION".into());
            request.signals.insert("volatility".into(), 0.05);
            request.signals.insert("confidence".into(), 0.95);
            decide_once(&request, Some(PolicyBinding::Found(Arc::new(policy))));
        }
    }
});
