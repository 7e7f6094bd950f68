//! Every subcommand of `tollgate` prints one JSON document on standard output with
//! `--json`, run as a user runs it (a real `tollgate serve` process for the commands
//! that talk to a server).
//!
//! The subcommands are read from the CLI's own help, recursively: a subcommand added
//! without a case here (or in [`NO_JSON`], with the reason) fails the test.

mod common;

use std::collections::BTreeSet;
use std::process::Output;

use base64::Engine as _;
use common::{Server, examples, text, tollgate};
use serde_json::Value;

/// Leaf subcommands that have no `--json`, and why.
const NO_JSON: &[(&str, &str)] = &[
    (
        "serve",
        "runs the server until it is stopped; it prints logs, not a result",
    ),
    (
        "gateway",
        "runs the MCP gateway until it is stopped; it speaks MCP (or logs), not a result",
    ),
];

/// The subcommand names of a `--help` page (its `Commands:` section, without `help`).
fn commands(help: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut inside = false;
    for line in help.lines() {
        if line.trim_end() == "Commands:" {
            inside = true;
            continue;
        }
        if !inside {
            continue;
        }
        // A command line is indented by two spaces; wrapped descriptions by more.
        if !line.starts_with("  ") {
            break;
        }
        if line.starts_with("   ") {
            continue;
        }
        let name = line.split_whitespace().next().unwrap_or_default();
        if name != "help" {
            out.push(name.to_owned());
        }
    }
    out
}

/// Every leaf subcommand path (`policy apply`, `serve`, …), from the CLI's help.
fn leaves(path: &mut Vec<String>, out: &mut BTreeSet<String>) {
    let mut args: Vec<&str> = path.iter().map(String::as_str).collect();
    args.push("--help");
    let o = tollgate(&args);
    assert!(o.status.success(), "{args:?}: {}", text(&o));
    let subs = commands(&String::from_utf8_lossy(&o.stdout));
    if subs.is_empty() {
        out.insert(path.join(" "));
    }
    for s in subs {
        path.push(s);
        leaves(path, out);
        path.pop();
    }
}

/// Runs the cases and remembers which subcommands they covered.
struct Cases<'a> {
    server: &'a Server,
    covered: BTreeSet<String>,
}

impl Cases<'_> {
    /// `tollgate PATH ARGS… --json` (against the server with `key`, or local when
    /// `None`): exits with one of `codes` and prints exactly one JSON document.
    fn json(&mut self, key: Option<&str>, path: &str, rest: &[&str], codes: &[i32]) -> Value {
        let mut args: Vec<&str> = path.split(' ').collect();
        args.extend_from_slice(rest);
        args.push("--json");
        let o = match key {
            Some(k) => self.server.run(k, &args),
            None => tollgate(&args),
        };
        self.covered.insert(path.to_owned());
        parse(path, &o, codes)
    }
}

fn parse(path: &str, o: &Output, codes: &[i32]) -> Value {
    let code = o.status.code().unwrap_or(-1);
    assert!(
        codes.contains(&code),
        "`{path} --json` exited {code}, expected one of {codes:?}: {}",
        text(o)
    );
    // `from_slice` refuses anything after the document but whitespace.
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        panic!(
            "`{path} --json` did not print one JSON document ({e}): {}",
            text(o)
        )
    })
}

fn s<'v>(v: &'v Value, key: &str) -> &'v str {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("no string `{key}` in {v}"))
}

#[test]
fn every_subcommand_prints_json_with_json() {
    let mut server = Server::start();
    let admin = server.admin.clone();
    let admin = Some(admin.as_str());
    let mut c = Cases {
        server: &server,
        covered: BTreeSet::new(),
    };

    // Tenants, keys, sources, kill switches.
    let t = c.json(
        admin,
        "tenants create",
        &["acme", "--monthly-quota", "1000"],
        &[0],
    );
    assert_eq!(t["id"], "acme");
    let t = c.json(admin, "tenants list", &[], &[0]);
    assert!(t["tenants"].as_array().unwrap().len() >= 2, "{t}");
    let bot = c.json(
        admin,
        "keys create",
        &["--env", "live", "--scope", "decide", "--name", "bot"],
        &[0],
    );
    let bot = s(&bot, "secret").to_owned();
    let reviewer = c.json(
        admin,
        "keys create",
        &[
            "--env",
            "live",
            "--scope",
            "review",
            "--group",
            "treasury-approvers",
            "--name",
            "alice",
        ],
        &[0],
    );
    assert_eq!(
        reviewer["groups"],
        serde_json::json!(["treasury-approvers"])
    );
    let reviewer = s(&reviewer, "secret").to_owned();
    let lab_key = c.json(
        admin,
        "keys create",
        &["--tenant", "acme", "--env", "test", "--scope", "decide"],
        &[0],
    );
    let lab_key = s(&lab_key, "secret").to_owned();
    let spare = c.json(admin, "keys create", &[], &[0]);
    let spare = s(&spare, "id").to_owned();
    let k = c.json(admin, "keys list", &[], &[0]);
    assert!(k["keys"].as_array().unwrap().len() >= 5, "{k}");
    let k = c.json(admin, "keys revoke", &[&spare], &[0]);
    assert!(k["revoked_at"].is_string(), "{k}");

    let public = tollgate_ledger::SigningKey::from_bytes(&[7; 32]).verifying_key();
    let public = base64::engine::general_purpose::STANDARD.encode(public.to_bytes());
    c.json(
        admin,
        "sources add",
        &["desk-1", "--public-key", &public],
        &[0],
    );
    let l = c.json(admin, "sources list", &[], &[0]);
    assert_eq!(l["sources"][0]["id"], "desk-1", "{l}");
    let o = c.json(
        admin,
        "override set",
        &["--scope", "actor", "--value", "rogue", "--reason", "test"],
        &[0],
    );
    let ovr = s(&o, "id").to_owned();
    let l = c.json(admin, "override list", &[], &[0]);
    assert_eq!(l["overrides"][0]["id"], ovr.as_str(), "{l}");
    let o = c.json(admin, "override clear", &[&ovr], &[0]);
    assert_eq!(o["cleared"], true);

    // Notification sinks (nothing listens on port 9: the test delivery fails, exit 1).
    let a = c.json(
        admin,
        "notify add",
        &["webhook", "http://127.0.0.1:9/hook", "--name", "ops"],
        &[0],
    );
    let sink = a["sink"]["id"].as_str().unwrap().to_owned();
    assert!(s(&a, "secret").starts_with("whsec_"), "{a}");
    let l = c.json(admin, "notify list", &[], &[0]);
    assert_eq!(l["sinks"][0]["id"], sink.as_str(), "{l}");
    assert!(l["sinks"][0].get("secret").is_none(), "{l}");
    let t = c.json(admin, "notify test", &[&sink], &[1]);
    assert_eq!(t["delivered"], false, "{t}");
    let d = c.json(admin, "notify dead", &[], &[0]);
    assert!(d["deliveries"].is_array(), "{d}");
    let r = c.json(admin, "notify remove", &[&sink], &[0]);
    assert_eq!(r["removed"], true, "{r}");

    // Policies: local checks, then the lifecycle on the server.
    let tmp = tempfile::tempdir().unwrap();
    for f in [
        "treasury.yaml",
        "trading.yaml",
        "agent-tools.yaml",
        "treasury.test.yaml",
    ] {
        std::fs::copy(examples().join(f), tmp.path().join(f)).unwrap();
    }
    let dir = tmp.path().to_str().unwrap().to_owned();
    let treasury = tmp.path().join("treasury.yaml");
    let v = c.json(None, "policy validate", &[treasury.to_str().unwrap()], &[0]);
    assert_eq!(v["ok"], true, "{v}");
    let v = c.json(None, "policy test", &[&dir], &[0]);
    assert_eq!(v["failed"], 0, "{v}");
    let plan = c.json(admin, "policy apply", &[&dir, "--dry-run"], &[0]);
    assert_eq!(plan["files"].as_array().unwrap().len(), 3, "{plan}");
    let applied = c.json(admin, "policy apply", &[&dir], &[0]);
    assert_eq!(applied["changed"], 3, "{applied}");
    // Version 2 of `trading` lets orders up to 400,000 through.
    let v2 = tmp.path().join("trading-v2.yaml");
    std::fs::write(
        &v2,
        std::fs::read_to_string(tmp.path().join("trading.yaml"))
            .unwrap()
            .replace("notional > 250000", "notional > 400000"),
    )
    .unwrap();
    let p = c.json(admin, "policy publish", &[v2.to_str().unwrap()], &[0]);
    assert_eq!(
        (p["version"].as_u64(), &p["published"]),
        (Some(2), &Value::Bool(true))
    );
    let l = c.json(admin, "policy list", &[], &[0]);
    assert_eq!(l["policies"].as_array().unwrap().len(), 3, "{l}");
    let sh = c.json(admin, "policy show", &["trading"], &[0]);
    assert_eq!(sh["versions"].as_array().unwrap().len(), 2, "{sh}");
    let sh = c.json(admin, "policy show", &["trading", "--version", "2"], &[0]);
    assert!(s(&sh, "text").contains("400000"));
    let d = c.json(admin, "policy diff", &["trading", "1", "2"], &[0]);
    assert!(s(&d, "text_diff").contains("400000"), "{d}");
    let a = c.json(admin, "policy activate", &["trading", "2"], &[0]);
    assert_eq!(a["changed"], true);
    let a = c.json(admin, "policy rollback", &["trading"], &[0]);
    assert_eq!(a["version"], 1);
    let cand = c.json(admin, "policy candidate", &["trading", "2"], &[0]);
    assert_eq!(cand["candidate"], 2);

    // Decisions: an order v1 blocks and the candidate would allow; a transfer that
    // needs a treasury approver.
    let order = [
        "--action-type",
        "PLACE_ORDER",
        "--field",
        "notional=300000",
        "--field",
        "order_type=limit",
        "--signal",
        "volatility=0.05",
        "--signal",
        "confidence=0.95",
        "--actor",
        "trader-1",
        "--policy",
        "trading",
    ];
    let d = c.json(Some(&bot), "decide", &order, &[1]);
    assert_eq!(
        (&d["status"], &d["gate"]),
        (&Value::from("BLOCK"), &Value::from("policy")),
        "{d}"
    );
    // Kept for `audit verify-verdict` below: the answer as the server signed it.
    let verdict = d.clone();
    let r = c.json(admin, "policy report", &["trading"], &[0]);
    assert_eq!(r["changed"], 1, "{r}");
    let stop = c.json(admin, "policy candidate", &["trading", "--stop"], &[0]);
    assert_eq!(stop["stopped"], true);
    let rp = c.json(admin, "policy replay", &["trading", "2"], &[0]);
    assert_eq!(rp["flipped"], 1, "{rp}");

    let transfer = |amount: &str| -> Vec<String> {
        [
            "--action-type",
            "TRANSFER_FUNDS",
            "--field",
            &format!("amount={amount}"),
            "--field",
            "beneficiary_verified=true",
            "--actor",
            "pay-bot",
            "--policy",
            "treasury",
        ]
        .map(str::to_owned)
        .to_vec()
    };
    let mut reviews = Vec::new();
    for amount in ["25000", "26000"] {
        let args = transfer(amount);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let d = c.json(Some(&bot), "decide", &args, &[1]);
        assert_eq!(d["status"], "REVIEW_REQUIRED", "{d}");
        reviews.push(s(&d, "review_id").to_owned());
    }
    let l = c.json(Some(&reviewer), "review list", &[], &[0]);
    assert_eq!(l["reviews"].as_array().unwrap().len(), 2, "{l}");
    let r = c.json(
        Some(&reviewer),
        "review approve",
        &[&reviews[0], "--comment", "invoice checked"],
        &[0],
    );
    assert_eq!(r["status"], "approved", "{r}");
    let r = c.json(
        Some(&reviewer),
        "review reject",
        &[&reviews[1], "--comment", "unknown payee"],
        &[0],
    );
    assert_eq!(r["status"], "rejected", "{r}");

    // The lab: a short characterisation of tenant `acme` (its figures need minutes,
    // so whether they match is not the point here: exit 0 or 1), and the drawdown.
    let url = server.url.clone();
    let ch = c.json(
        None,
        "lab characterize",
        &[
            "--url",
            &url,
            "--key",
            &lab_key,
            "--quiet",
            "0",
            "--ceiling",
            "1",
            "--refill-max",
            "1",
            "--no-wait",
        ],
        &[0, 1],
    );
    assert!(ch["rows"].is_array(), "{ch}");
    let dd = c.json(None, "lab drawdown", &["--bars", "2000"], &[0]);
    assert!(dd.is_object(), "{dd}");

    // A mirror of the log over HTTP (the key comes from TOLLGATE_API_KEY).
    let url = server.url.clone();
    let mirror = tmp.path().join("mirror");
    let m = c.json(
        admin,
        "audit mirror",
        &[&url, mirror.to_str().unwrap(), "--tenant", "default"],
        &[0],
    );
    assert_eq!(m["ok"], true, "{m}");
    assert!(m["size"].as_u64().unwrap() > 0, "{m}");

    // The audit commands read the stopped server's data directory.
    let covered = std::mem::take(&mut c.covered);
    drop(c);
    server.stop();
    let mut c = Cases {
        server: &server,
        covered,
    };
    let data = server.data_dir();
    let data = data.to_str().unwrap();
    let k = c.json(None, "keys show", &["--data-dir", data], &[0]);
    let vkey = k["verifier_keys"][0].as_str().unwrap().to_owned();
    let cp = c.json(
        None,
        "audit checkpoint",
        &["--data-dir", data, "--tenant", "default"],
        &[0],
    );
    let size = cp["size"].as_u64().unwrap();
    assert!(size > 10, "{cp}");
    let v = c.json(
        None,
        "audit verify",
        &["--data-dir", data, "--tenant", "default"],
        &[0],
    );
    assert_eq!(v["ok"], true, "{v}");
    let out = tmp.path().join("default.jsonl");
    let e = c.json(
        None,
        "audit export",
        &[
            "--data-dir",
            data,
            "--tenant",
            "default",
            "-o",
            out.to_str().unwrap(),
        ],
        &[0],
    );
    assert_eq!(e["entries"].as_u64(), Some(size), "{e}");
    let dossier = tmp.path().join("d.json");
    let seq = (size - 1).to_string();
    let d = c.json(
        None,
        "audit dossier",
        &[
            "--data-dir",
            data,
            "--tenant",
            "default",
            "--seq",
            &seq,
            "-o",
            dossier.to_str().unwrap(),
        ],
        &[0],
    );
    assert_eq!(d["tree_size"].as_u64(), Some(size), "{d}");
    let v = c.json(
        None,
        "audit verify-dossier",
        &[dossier.to_str().unwrap(), "--key", &vkey],
        &[0],
    );
    assert_eq!(v["ok"], true, "{v}");

    // A verdict checked alone, offline, with the server's published keys; a changed
    // one is refused (exit 1).
    assert_eq!(verdict["signature"]["algorithm"], "Ed25519-Merkle-batch");
    let jwks = tmp.path().join("jwks.json");
    std::fs::write(&jwks, k["jwks"].to_string()).unwrap();
    let file = tmp.path().join("verdict.json");
    std::fs::write(&file, verdict.to_string()).unwrap();
    let args = [file.to_str().unwrap(), "--jwks", jwks.to_str().unwrap()];
    let v = c.json(None, "audit verify-verdict", &args, &[0]);
    assert_eq!(v["ok"], true, "{v}");
    let mut changed = verdict.clone();
    changed["status"] = Value::from("ALLOW");
    std::fs::write(&file, changed.to_string()).unwrap();
    let v = c.json(None, "audit verify-verdict", &args, &[1]);
    assert_eq!(v["ok"], false, "{v}");

    // Every subcommand of the CLI is covered, or listed with its reason.
    let mut all = BTreeSet::new();
    leaves(&mut Vec::new(), &mut all);
    let excluded: BTreeSet<String> = NO_JSON.iter().map(|(p, _)| (*p).to_owned()).collect();
    let missing: Vec<&String> = all
        .iter()
        .filter(|p| !c.covered.contains(*p) && !excluded.contains(*p))
        .collect();
    assert!(
        missing.is_empty(),
        "subcommands without a --json case in this test: {missing:?}"
    );
    let unknown: Vec<&String> = c
        .covered
        .iter()
        .chain(&excluded)
        .filter(|p| !all.contains(*p))
        .collect();
    assert!(unknown.is_empty(), "cases for no subcommand: {unknown:?}");
    eprintln!(
        "{} subcommands print JSON with --json: {:?}; without: {:?}",
        c.covered.len(),
        c.covered,
        excluded
    );
}
