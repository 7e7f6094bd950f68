//! The `tollgate audit` commands, run as a user would.

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::{Command, Output};

use serde_json::{Value, json};
use tollgate_ledger::{EntryDraft, EntryKind, NoteSigner};
use tollgate_store::{LedgerStore as _, SqliteConfig, SqliteStore, keyfile};

fn tollgate(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .args(args)
        .output()
        .unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A data dir with 50 entries of `acme` and a checkpoint, signed with the data
/// dir's own key (created by `tollgate audit checkpoint`).
fn data_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = SqliteStore::open(SqliteConfig::in_dir(dir.path())).unwrap();
        for i in 0..50 {
            store
                .append(EntryDraft {
                    tenant: "acme".into(),
                    time: "2026-11-21T12:00:00Z".into(),
                    kind: EntryKind::Decision,
                    body: json!({ "i": i, "verdict": "ALLOW" }),
                })
                .unwrap();
        }
    }
    let o = tollgate(&[
        "audit",
        "checkpoint",
        "--data-dir",
        dir.path().to_str().unwrap(),
        "--tenant",
        "acme",
    ]);
    assert!(o.status.success(), "{o:?}");
    assert!(
        stdout(&o).starts_with("tollgate/acme\n50\n"),
        "{}",
        stdout(&o)
    );
    dir
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

#[test]
fn key_file_is_created_with_mode_0600() {
    let dir = data_dir();
    let mode = std::fs::metadata(dir.path().join("signing-key.pem"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let o = tollgate(&["keys", "show", "--data-dir", p(dir.path())]);
    assert!(o.status.success());
    let out = stdout(&o);
    assert!(out.starts_with("tollgate+"), "{out}");
    assert!(out.contains("\"crv\": \"Ed25519\""));
    assert!(out.contains("-----BEGIN PUBLIC KEY-----"));
}

#[test]
fn verify_live_store_and_detect_tampering() {
    let dir = data_dir();
    let o = tollgate(&["audit", "verify", "--data-dir", p(dir.path())]);
    assert!(o.status.success(), "{o:?}");
    assert!(
        stdout(&o).starts_with("OK: 50 entries, root "),
        "{}",
        stdout(&o)
    );

    tamper_entry_17(dir.path());
    let o = tollgate(&[
        "audit",
        "verify",
        "--data-dir",
        p(dir.path()),
        "--tenant",
        "acme",
        "--json",
    ]);
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    let v: Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(v["ok"], false);
    assert_eq!(v["failure"]["seq"], 17);
    assert_eq!(v["failure"]["problem"]["kind"], "hash_mismatch");
}

/// Changes entry 17's stored bytes through the store's raw connection.
fn tamper_entry_17(dir: &Path) {
    let store = SqliteStore::open(SqliteConfig::in_dir(dir)).unwrap();
    let c = store.raw_connection().unwrap();
    c.execute(
        "UPDATE ledger SET canonical = replace(canonical, '\"verdict\":\"ALLOW\"', '\"verdict\":\"BLOCK\"') WHERE tenant = 'acme' AND seq = 17",
        [],
    )
    .unwrap();
}

#[test]
fn export_then_verify_file() {
    let dir = data_dir();
    let file = dir.path().join("acme.jsonl");
    let o = tollgate(&[
        "audit",
        "export",
        "--data-dir",
        p(dir.path()),
        "--tenant",
        "acme",
        "-o",
        p(&file),
    ]);
    assert!(o.status.success(), "{o:?}");
    let text = std::fs::read_to_string(&file).unwrap();
    assert_eq!(text.lines().count(), 50);
    let o = tollgate(&["audit", "verify", "--file", p(&file)]);
    assert!(o.status.success(), "{o:?}");
    assert!(stdout(&o).starts_with("OK: 50 entries"), "{}", stdout(&o));

    // One changed byte in line 31 (seq 30).
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    lines[30] = lines[30].replace("\"i\":30", "\"i\":31");
    std::fs::write(&file, lines.join("\n") + "\n").unwrap();
    let o = tollgate(&["audit", "verify", "--file", p(&file)]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stdout(&o).contains("first bad seq 30"), "{}", stdout(&o));

    // A cut tail is caught by the checkpoint in the metadata.
    std::fs::write(
        &file,
        text.lines().take(45).collect::<Vec<_>>().join("\n") + "\n",
    )
    .unwrap();
    let o = tollgate(&["audit", "verify", "--file", p(&file)]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stdout(&o).contains("first bad seq 45"), "{}", stdout(&o));
}

#[test]
fn dossier_round_trip() {
    let dir = data_dir();
    let file = dir.path().join("d.json");
    let o = tollgate(&[
        "audit",
        "dossier",
        "--data-dir",
        p(dir.path()),
        "--tenant",
        "acme",
        "--seq",
        "41",
        "-o",
        p(&file),
    ]);
    assert!(o.status.success(), "{o:?}");
    let key = NoteSigner::new(
        "tollgate",
        keyfile::load(&dir.path().join("signing-key.pem")).unwrap(),
    )
    .unwrap()
    .verifier()
    .to_vkey();
    let o = tollgate(&["audit", "verify-dossier", p(&file), "--key", &key]);
    assert!(o.status.success(), "{o:?}");
    assert!(
        stdout(&o).starts_with("OK: entry 41 of tenant acme"),
        "{}",
        stdout(&o)
    );

    let mut d: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    d["entry"]["body"]["verdict"] = json!("BLOCK");
    std::fs::write(&file, d.to_string()).unwrap();
    let o = tollgate(&["audit", "verify-dossier", p(&file), "--json"]);
    assert_eq!(o.status.code(), Some(1));
    let v: Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(v["ok"], false);
}

#[test]
fn help_shows_examples() {
    let o = tollgate(&["audit", "verify", "--help"]);
    assert!(stdout(&o).contains("Examples:"));
    let o = tollgate(&["audit", "verify"]);
    assert_eq!(o.status.code(), Some(2));
}

/// While another process writes a data directory (a running server holds its lock),
/// the read-only commands work on it, and `audit checkpoint`, which writes, fails
/// naming the directory; once the writer is gone it works.
#[test]
fn audit_reads_a_data_dir_another_process_is_writing() {
    let dir = data_dir();
    let writer = SqliteStore::open(SqliteConfig::in_dir(dir.path())).unwrap();
    writer
        .append(EntryDraft {
            tenant: "acme".into(),
            time: "2026-11-21T12:00:01Z".into(),
            kind: EntryKind::Decision,
            body: json!({ "i": 50, "verdict": "ALLOW" }),
        })
        .unwrap();
    let o = tollgate(&["audit", "verify", "--data-dir", p(dir.path())]);
    assert!(o.status.success(), "{o:?}");
    assert!(stdout(&o).starts_with("OK: 51 entries"), "{}", stdout(&o));
    let o = tollgate(&["keys", "show", "--data-dir", p(dir.path())]);
    assert!(o.status.success(), "{o:?}");

    let checkpoint = || {
        tollgate(&[
            "audit",
            "checkpoint",
            "--data-dir",
            p(dir.path()),
            "--tenant",
            "acme",
        ])
    };
    let o = checkpoint();
    assert!(!o.status.success(), "{o:?}");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("in use by another Tollgate process") && err.contains(p(dir.path())),
        "{err}"
    );
    drop(writer);
    let o = checkpoint();
    assert!(o.status.success(), "{o:?}");
    assert!(
        stdout(&o).starts_with("tollgate/acme\n51\n"),
        "{}",
        stdout(&o)
    );
}
