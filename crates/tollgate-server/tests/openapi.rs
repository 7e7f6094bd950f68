//! The OpenAPI document: served, checked in, and true to the router.

mod common;

use axum::http::Method;
use common::Harness;
use serde_json::{Value, json};

fn checked_in() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("openapi.json")
}

#[tokio::test]
async fn the_served_document_is_the_checked_in_one() {
    let h = Harness::new();
    let r = h.call(Method::GET, "/openapi.json", None, None).await;
    assert_eq!(r.status.as_u16(), 200);
    let served = serde_json::to_string_pretty(&r.body).unwrap() + "\n";
    if std::env::var_os("UPDATE_OPENAPI").is_some() {
        std::fs::write(checked_in(), &served).unwrap();
    }
    let file = std::fs::read_to_string(checked_in()).unwrap_or_default();
    assert!(
        file == served,
        "crates/tollgate-server/openapi.json is stale: run `UPDATE_OPENAPI=1 cargo test -p tollgate-server --test openapi` and commit it"
    );
}

#[tokio::test]
async fn every_documented_operation_exists_and_answers_a_documented_status() {
    let h = Harness::new();
    let doc = tollgate_server::openapi::document();
    let paths = doc["paths"].as_object().unwrap();
    assert!(paths.len() >= 25, "documented paths: {}", paths.len());
    let mut checked = 0;
    for (path, ops) in paths {
        for (method, op) in ops.as_object().unwrap() {
            let concrete = path.replace("{id}", "nothing_here")
                + if path == "/v1/audit/consistency" {
                    "?from=0&to=0"
                } else {
                    ""
                };
            let method: Method = method.to_uppercase().parse().unwrap();
            let body = matches!(method, Method::POST).then(|| json!({}));
            let r = h
                .call(method.clone(), &concrete, Some(&h.admin), body)
                .await;
            let status = r.status.as_u16().to_string();
            assert_ne!(
                r.status.as_u16(),
                405,
                "{method} {path} is documented but not routed"
            );
            let documented: Vec<&String> = op["responses"].as_object().unwrap().keys().collect();
            assert!(
                documented.iter().any(|s| **s == status),
                "{method} {concrete} answered {status}, documented {documented:?}: {}",
                r.text
            );
            if r.status.as_u16() >= 400 {
                assert!(
                    r.body["error"].is_string() && r.body["request_id"].is_string(),
                    "{}",
                    r.text
                );
            }
            checked += 1;
        }
    }
    assert!(checked >= 22);
    let _: Value = doc;
}
