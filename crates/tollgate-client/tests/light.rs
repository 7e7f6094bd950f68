//! The SDK stays light: without `embedded`, no engine, no CEL, no SQLite; among our
//! crates only `tollgate-api` (the wire types) and `tollgate-ledger` (verification).

use std::process::Command;

#[test]
fn default_features_pull_no_engine_cel_or_sqlite() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let tree = |offline: bool| {
        let mut cmd = Command::new(&cargo);
        cmd.args([
            "tree",
            "-p",
            "tollgate-client",
            "-e",
            "normal",
            "--prefix",
            "none",
        ]);
        if offline {
            cmd.arg("--offline");
        }
        cmd.current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .unwrap()
    };
    // Offline first (everything is there after the build); online if the cache
    // lacks something.
    let mut out = tree(true);
    if !out.status.success() {
        out = tree(false);
    }
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tree = String::from_utf8(out.stdout).unwrap();
    assert!(tree.contains("tollgate-ledger"), "{tree}");
    assert!(tree.contains("tollgate-api"), "{tree}");
    // Among our crates, only the wire types and the ledger format.
    let ours: Vec<&str> = tree
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|name| name.starts_with("tollgate-") && *name != "tollgate-client")
        .collect();
    assert!(
        ours.iter()
            .all(|n| ["tollgate-api", "tollgate-ledger"].contains(n)),
        "our crates in the default tree: {ours:?}"
    );
    for banned in [
        "tollgate-core ",
        "tollgate-store ",
        "cel ",
        "rusqlite ",
        "libsqlite3-sys ",
        "aws-lc",
    ] {
        assert!(
            !tree.lines().any(|l| l.starts_with(banned)),
            "`{}` is in the default dependency tree:\n{tree}",
            banned.trim()
        );
    }
}
