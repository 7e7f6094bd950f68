//! The SDK stays light: without `embedded`, no engine, no CEL, no SQLite.

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
