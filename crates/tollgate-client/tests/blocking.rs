//! The blocking client, from a plain thread, against a real server.
#![cfg(feature = "blocking")]

mod common;

use std::sync::atomic::{AtomicBool, Ordering};

use tollgate_client::{Gate, RetryPolicy, Status};

#[test]
fn blocking_client_decides_enforces_gates_and_verifies() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let server = runtime.block_on(common::Server::start());
    let client = tollgate_client::blocking::Client::from_builder(server.builder()).unwrap();
    let d = client.decide(&common::in_band("OPEN_POSITION")).unwrap();
    assert_eq!(d.status, Status::Allow);
    client.verify(&d).unwrap();
    assert_eq!(
        client.get_decision(&d.decision_id).unwrap().decision_id,
        d.decision_id
    );
    let risky = common::in_band("OPEN_POSITION").signal("volatility", 0.5);
    let err = client.enforce(&risky).unwrap_err();
    assert_eq!(err.blocked().unwrap().gate, Gate::Reality);
    let ran = AtomicBool::new(false);
    assert!(
        client
            .gate(&risky, || ran.store(true, Ordering::SeqCst))
            .is_err()
    );
    assert!(!ran.load(Ordering::SeqCst));
    let d = client
        .decide_with_retry(&risky, RetryPolicy::attempts(3))
        .unwrap();
    assert_eq!(d.gate, Gate::Reality);
    assert!(!client.jwks().unwrap().keys.is_empty());
    let allowed = common::in_band("OPEN_POSITION").with_grant();
    let d = client.enforce(&allowed).unwrap();
    let grant = d.grant.unwrap();
    assert_eq!(
        client.consume_grant(&grant, Some(&allowed)).unwrap()["valid"],
        true
    );
    let state = client
        .wait_for_review(&d.decision_id, std::time::Duration::from_secs(1))
        .unwrap();
    assert!(state.review_status.is_none(), "no review for an ALLOW");
    drop(server);
}
