//! DeAlgo `POST /v1/decide` (portal shape) and `/api/csc/check`,
//! `/csc/live-stimulus` (flat shape): translation to the neutral request and the
//! engine.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use tollgate_fuzz::{MAX_JSON_DEPTH, decide_once};
use tollgate_server::service::body::{fingerprint, parse_object};
use tollgate_server::compat::dealgo::{translate_flat, translate_portal};

fuzz_target!(|data: &[u8]| {
    let Ok(received) = parse_object(data, MAX_JSON_DEPTH) else {
        return;
    };
    let _ = fingerprint(&received);
    let Value::Object(map) = received else {
        return;
    };
    if let Ok(request) = translate_portal(&map, "fuzz") {
        decide_once(&request, None);
    }
    if let Ok(request) = translate_flat(&map, "fuzz") {
        decide_once(&request, None);
    }
});
