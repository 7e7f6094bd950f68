//! Decionis `POST /v1/decisions/evaluate` and `POST /v1/policies/validate`: body
//! parsing, decoding, translation to the neutral request, the engine, and the
//! validate endpoint's policy text extraction and compilation.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tollgate_core::compile_policy;
use tollgate_fuzz::{MAX_JSON_DEPTH, decide_once};
use tollgate_server::service::body::{decode, fingerprint, parse_object};
use tollgate_server::compat::decionis::{EvaluateRequest, policy_text, translate};
use tollgate_server::compat::pyjson::{dumps_sorted, strip_nulls};

fuzz_target!(|data: &[u8]| {
    if let Ok((text, format)) = policy_text(data) {
        let _ = compile_policy(&text, format);
    }
    let Ok(mut received) = parse_object(data, MAX_JSON_DEPTH) else {
        return;
    };
    let _ = fingerprint(&received);
    if let Ok(req) = decode::<EvaluateRequest>(received.clone()) {
        let (request, _mode) = translate(req, "fuzz");
        decide_once(&request, None);
    }
    // The Decionis signature covers Python's json.dumps of the body without nulls.
    strip_nulls(&mut received);
    let _ = dumps_sorted(&received);
});
