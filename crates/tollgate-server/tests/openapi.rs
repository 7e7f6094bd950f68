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
            let concrete = path
                .replace("{id}", "nothing_here")
                .replace("{tenant}", "nothing_here")
                .replace("{path}", "0/000")
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

/// The component a request body points to, if any.
fn body_schema<'a>(doc: &'a Value, op: &Value) -> Option<&'a Value> {
    let content = &op["requestBody"]["content"]["application/json"]["schema"];
    let reference = content["$ref"]
        .as_str()
        .or_else(|| content["oneOf"][0]["$ref"].as_str())?;
    let name = reference.strip_prefix("#/components/schemas/")?;
    doc["components"]["schemas"].get(name)
}

#[tokio::test]
async fn documented_closed_request_bodies_are_closed_in_the_handlers_too() {
    // A schema with `additionalProperties: false` comes from `deny_unknown_fields` on
    // the type the handler decodes: an unknown field must be refused with a 422 that
    // names it. Operations without path parameters, so no lookup answers first.
    let h = Harness::new();
    let doc = tollgate_server::openapi::document();
    let mut checked = Vec::new();
    for (path, ops) in doc["paths"].as_object().unwrap() {
        let Some(op) = ops.get("post") else { continue };
        if path.contains('{') {
            continue;
        }
        let Some(schema) = body_schema(&doc, op) else {
            continue;
        };
        if schema["additionalProperties"] != json!(false) {
            continue;
        }
        let r = h
            .call(
                Method::POST,
                path,
                Some(&h.admin),
                Some(json!({"not_a_documented_field": 1})),
            )
            .await;
        assert_eq!(r.status.as_u16(), 422, "POST {path}: {}", r.text);
        assert!(
            r.text.contains("not_a_documented_field"),
            "POST {path}: {}",
            r.text
        );
        checked.push(path.clone());
    }
    assert!(checked.len() >= 6, "closed bodies checked: {checked:?}");
}

#[test]
fn the_decision_request_schema_is_the_wire_type_the_sdk_sends() {
    let doc = tollgate_server::openapi::document();
    let decide = &doc["paths"]["/v1/decisions"]["post"];
    let schema = body_schema(&doc, decide).expect("POST /v1/decisions has a body schema");
    let request = tollgate_api::DecisionRequest::new("X")
        .actor_id("agent-1", "AI_AGENT")
        .signal("risk_score", 0.1)
        .intent("i")
        .source("s")
        .policy("p")
        .idempotency_key("k")
        .correlation_id("c");
    let mut sent = serde_json::to_value(&request).unwrap();
    sent["tenant_id"] = json!("t");
    let properties = schema["properties"].as_object().unwrap();
    for field in sent.as_object().unwrap().keys() {
        assert!(
            properties.contains_key(field),
            "the SDK sends `{field}`, the schema does not document it"
        );
    }
    assert_eq!(schema["required"], json!(["action"]));
    assert_eq!(schema["properties"]["action"]["required"], json!(["type"]));
    // Unknown fields are accepted (kept in the record), so the schema stays open.
    assert_ne!(schema["additionalProperties"], json!(false));
    // The verdict vocabulary is documented from the types verdicts are built from.
    let statuses = &doc["components"]["schemas"]["Status"]["enum"];
    let served: Vec<&str> = tollgate_api::Status::SERVED
        .iter()
        .map(|s| s.as_str())
        .collect();
    assert_eq!(statuses, &json!(served));
}
