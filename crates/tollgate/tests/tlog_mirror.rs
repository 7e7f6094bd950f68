//! `tollgate audit mirror` against a running server: a first sync, an incremental one,
//! then one entry rewritten in the server's SQLite store — the next sync reports it,
//! exits non-zero and keeps the mirror's last verified state. Also the access and
//! cache rules of `/tlog/{tenant}/…`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::{Server, text};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};
use tollgate_ledger::tiles::width_at;

const TENANT: &str = "default";

fn crypto() {
    // reqwest may be compiled with rustls and no default crypto provider.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

fn decide(server: &Server, n: usize) {
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let url = server.url.clone();
            let key = server.test_key.clone();
            std::thread::spawn(move || {
                let http = reqwest::blocking::Client::builder()
                    .timeout(Duration::from_secs(30))
                    .build()
                    .unwrap();
                for i in (t..n).step_by(4) {
                    let body = json!({
                        "actor": {"id": format!("agent-{t}")},
                        "action": {"type": "OPEN_POSITION", "n": i},
                        "signals": {"volatility": 0.05, "confidence": 0.95},
                    });
                    let r = http
                        .post(format!("{url}/v1/decisions"))
                        .bearer_auth(&key)
                        .json(&body)
                        .send()
                        .unwrap();
                    assert!(r.status().is_success(), "{}", r.text().unwrap());
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}

/// Issues a checkpoint covering every entry now; its size.
fn checkpoint(server: &Server) -> u64 {
    let r = reqwest::blocking::Client::new()
        .get(format!("{}/v1/audit/checkpoint", server.url))
        .bearer_auth(&server.admin)
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    let text = r.text().unwrap();
    text.lines().nth(1).unwrap().parse().unwrap()
}

fn mirror(server: &Server, dir: &std::path::Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec![
        "audit",
        "mirror",
        &server.url,
        dir.to_str().unwrap(),
        "--tenant",
        TENANT,
        "--json",
    ];
    args.extend_from_slice(extra);
    server.run(&server.admin, &args)
}

fn summary(o: &std::process::Output) -> Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|_| panic!("{}", text(o)))
}

/// Tiles whose width differs between the trees of `old` and `new` leaves.
fn changed_tiles(old: u64, new: u64) -> usize {
    let mut n = 0;
    for level in 0..8u8 {
        for index in 0..=(new >> (8 * u32::from(level))) / 256 {
            let w = width_at(level, index, new);
            if w > 0 && w != width_at(level, index, old) {
                n += 1;
            }
        }
    }
    n
}

#[test]
fn mirror_syncs_incrementally_and_reports_a_rewritten_entry() {
    crypto();
    let server = Server::start();
    let http = reqwest::blocking::Client::new();
    decide(&server, 1000);
    let s1 = checkpoint(&server);
    assert!(s1 >= 1000, "{s1}");

    // Access and caching of the tile endpoints.
    let get = |path: &str, key: Option<&str>| {
        let mut r = http.get(format!("{}/tlog/{TENANT}/{path}", server.url));
        if let Some(k) = key {
            r = r.bearer_auth(k);
        }
        r.send().unwrap()
    };
    assert_eq!(get("checkpoint", None).status(), 401);
    assert_eq!(get("tile/0/000", Some(&server.test_key)).status(), 403);
    assert_eq!(get("tile/0/0", Some(&server.admin)).status(), 400);
    assert_eq!(get("tile/0/999", Some(&server.admin)).status(), 404);
    let full = get("tile/0/000", Some(&server.admin));
    assert_eq!(full.status(), 200);
    assert_eq!(
        full.headers()["cache-control"],
        "private, max-age=31536000, immutable"
    );
    assert_eq!(full.bytes().unwrap().len(), 256 * 32);
    let bundle = get("tile/entries/000", Some(&server.admin))
        .bytes()
        .unwrap();
    assert_eq!(bundle.len(), 256 * 34);

    // First sync.
    let dir = tempfile::tempdir().unwrap();
    let o = mirror(&server, dir.path(), &[]);
    assert!(o.status.success(), "{}", text(&o));
    let first = summary(&o);
    assert_eq!(first["ok"], true);
    assert_eq!(first["old_size"], 0);
    let m1 = first["size"].as_u64().unwrap();
    assert!(m1 >= s1, "{first}");
    assert_eq!(first["tiles_fetched"], changed_tiles(0, m1));
    assert!(dir.path().join("tile/0/000").is_file());
    assert!(dir.path().join("tile/entries/000").is_file());

    // Incremental sync: only the new and widened tiles.
    decide(&server, 300);
    let mut s2 = checkpoint(&server);
    while s2.is_multiple_of(256) {
        decide(&server, 1);
        s2 = checkpoint(&server);
    }
    let o = mirror(&server, dir.path(), &[]);
    assert!(o.status.success(), "{}", text(&o));
    let second = summary(&o);
    assert_eq!(second["old_size"], m1);
    let m2 = second["size"].as_u64().unwrap();
    assert!(m2 >= s2 && m2 > m1, "{second}");
    assert_eq!(second["tiles_fetched"], changed_tiles(m1, m2));
    assert!(second["tiles_fetched"].as_u64().unwrap() < first["tiles_fetched"].as_u64().unwrap());

    // A checkpoint signed by another key is refused, in a fresh mirror.
    let other = tollgate_ledger::NoteSigner::new(
        "tollgate",
        tollgate_ledger::SigningKey::from_bytes(&[7; 32]),
    )
    .unwrap()
    .verifier()
    .to_vkey();
    let fresh = tempfile::tempdir().unwrap();
    let o = mirror(&server, fresh.path(), &["--key", &other]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        summary(&o)["problem"]
            .as_str()
            .unwrap()
            .contains("signature"),
        "{}",
        text(&o)
    );
    assert!(!fresh.path().join("checkpoint").exists());

    // Rewrite one mirrored entry (the last one of the last, partial, tile) in the
    // server's store while it is stopped: new body bytes and their hash, as someone
    // editing the database would leave them.
    let stored_checkpoint = std::fs::read(dir.path().join("checkpoint")).unwrap();
    let target = m2 - 1;
    assert!(!m2.is_multiple_of(256));
    let data = server.into_dir();
    {
        let db = rusqlite::Connection::open(data.path().join("data/tollgate.db")).unwrap();
        let canonical: Vec<u8> = db
            .query_row(
                "SELECT canonical FROM ledger WHERE tenant = ?1 AND seq = ?2",
                rusqlite::params![TENANT, target as i64],
                |r| r.get(0),
            )
            .unwrap();
        let rewritten =
            String::from_utf8(canonical)
                .unwrap()
                .replacen("OPEN_POSITION", "WIRE_TRANSFER", 1);
        assert!(rewritten.contains("WIRE_TRANSFER"));
        let hash = Sha256::digest(rewritten.as_bytes()).to_vec();
        let n = db
            .execute(
                "UPDATE ledger SET canonical = ?3, entry_hash = ?4 WHERE tenant = ?1 AND seq = ?2",
                rusqlite::params![TENANT, target as i64, rewritten.as_bytes(), hash],
            )
            .unwrap();
        assert_eq!(n, 1);
    }
    let server = Server::start_in(data, &[]);
    decide(&server, 20);
    checkpoint(&server);
    let o = mirror(&server, dir.path(), &[]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let third = summary(&o);
    assert_eq!(third["ok"], false);
    let problem = third["problem"].as_str().unwrap();
    assert!(
        problem.contains(&format!("entry bundle {}", m2 / 256)) && problem.contains("changed"),
        "{problem}"
    );
    // The mirror kept its last verified state.
    assert_eq!(
        std::fs::read(dir.path().join("checkpoint")).unwrap(),
        stored_checkpoint
    );
    // The same without --json: the message on standard error.
    let o = server.run(
        &server.admin,
        &[
            "audit",
            "mirror",
            &format!("{}/tlog/{TENANT}", server.url),
            dir.path().to_str().unwrap(),
        ],
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("INCONSISTENT"),
        "{}",
        text(&o)
    );
}

#[test]
fn a_public_tenant_is_readable_without_a_key() {
    crypto();
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_in(dir, &[("TOLLGATE_TLOG_PUBLIC_TENANTS", TENANT)]);
    decide(&server, 10);
    checkpoint(&server);
    let r = reqwest::blocking::get(format!("{}/tlog/{TENANT}/tile/0/000.p/1", server.url)).unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], "public, max-age=5");
    let r = reqwest::blocking::get(format!("{}/tlog/{TENANT}/checkpoint", server.url)).unwrap();
    assert_eq!(r.status(), 200);
    // Another tenant stays closed.
    let r = reqwest::blocking::get(format!("{}/tlog/other/checkpoint", server.url)).unwrap();
    assert_eq!(r.status(), 401);
    let out = tempfile::tempdir().unwrap();
    let o = common::tollgate(&[
        "audit",
        "mirror",
        &server.url,
        out.path().to_str().unwrap(),
        "--tenant",
        TENANT,
    ]);
    assert!(o.status.success(), "{}", text(&o));
}
