//! `tollgate keys create --group G`: a review whose rule names approver group G
//! accepts the vote of a key created with `--group G` and refuses one without it.

mod common;

use common::{Server, examples, text};
use serde_json::Value;

fn json(o: &std::process::Output) -> Value {
    assert_eq!(o.status.code(), Some(0), "{}", text(o));
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(o)))
}

fn reviewer(server: &Server, groups: &[&str]) -> String {
    let mut args = vec!["keys", "create", "--env", "live", "--scope", "review"];
    for g in groups {
        args.extend(["--group", g]);
    }
    args.push("--json");
    let k = json(&server.run(&server.admin, &args));
    assert_eq!(
        k["groups"],
        serde_json::json!(groups),
        "the key's groups as created"
    );
    k["secret"].as_str().unwrap().to_owned()
}

#[test]
fn a_review_counts_only_the_votes_of_its_approver_groups() {
    let server = Server::start();
    let policy = examples().join("treasury.yaml");
    let p = json(&server.run(
        &server.admin,
        &[
            "policy",
            "publish",
            policy.to_str().unwrap(),
            "--activate",
            "--json",
        ],
    ));
    assert_eq!(p["activated"], true);
    let bot = json(&server.run(
        &server.admin,
        &[
            "keys", "create", "--env", "live", "--scope", "decide", "--json",
        ],
    ))["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    let outsider = reviewer(&server, &["desk-heads"]);
    let ungrouped = reviewer(&server, &[]);
    let approver = reviewer(&server, &["desk-heads", "treasury-approvers"]);

    // treasury.yaml: transfers of 10,000 to 100,000 need one of `treasury-approvers`.
    let d = server.run(
        &bot,
        &[
            "decide",
            "--action-type",
            "TRANSFER_FUNDS",
            "--field",
            "amount=25000",
            "--field",
            "beneficiary_verified=true",
            "--actor",
            "pay-bot",
            "--policy",
            "treasury",
            "--json",
        ],
    );
    assert_eq!(d.status.code(), Some(1), "{}", text(&d));
    let d: Value = serde_json::from_slice(&d.stdout).unwrap();
    assert_eq!(d["status"], "REVIEW_REQUIRED", "{d}");
    let review = d["review_id"].as_str().unwrap();

    for key in [&outsider, &ungrouped] {
        let o = server.run(key, &["review", "approve", review, "--json"]);
        assert_eq!(o.status.code(), Some(2), "{}", text(&o));
        assert!(
            String::from_utf8_lossy(&o.stderr).contains("forbidden"),
            "{}",
            text(&o)
        );
    }
    let r = json(&server.run(&approver, &["review", "list", "--json"]));
    assert_eq!(r["reviews"][0]["status"], "pending", "{r}");
    assert_eq!(r["reviews"][0]["approvals"], serde_json::json!([]), "{r}");

    let r = json(&server.run(
        &approver,
        &["review", "approve", review, "--comment", "ok", "--json"],
    ));
    assert_eq!(r["status"], "approved", "{r}");
    assert_eq!(r["approvals"].as_array().unwrap().len(), 1, "{r}");
}
