//! `POST /v1/decisions`: body parsing (depth limit), typed decoding, the idempotency
//! fingerprint, and the engine on the result.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tollgate_core::DecisionRequest;
use tollgate_fuzz::{MAX_JSON_DEPTH, decide_once};
use tollgate_server::service::body::{decode, fingerprint, parse_object};
use tollgate_server::routes::native::NativeRequest;

fuzz_target!(|data: &[u8]| {
    let Ok(received) = parse_object(data, MAX_JSON_DEPTH) else {
        return;
    };
    let _ = fingerprint(&received);
    let Ok(req) = decode::<NativeRequest>(received) else {
        return;
    };
    let request = DecisionRequest {
        tenant: "fuzz".to_owned(),
        actor: req.actor,
        action: req.action,
        context: req.context,
        signals: req.signals,
        intent: req.intent,
        source: req.source,
        mode: req.mode,
        adaptive: req.adaptive,
    };
    decide_once(&request, None);
});
