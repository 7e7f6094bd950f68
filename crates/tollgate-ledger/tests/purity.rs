//! The ledger crate stays pure and light: the Rust SDK depends on it to verify
//! dossiers offline. This test fails if it gains I/O, a clock, randomness, a database
//! or the engine.

use std::fs;
use std::path::Path;

#[test]
fn ledger_has_no_io_clock_randomness_or_heavy_dependencies() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let manifest = fs::read_to_string(root.join("Cargo.toml")).unwrap();
    let deps = manifest
        .split("[dependencies]")
        .nth(1)
        .unwrap()
        .split("\n[")
        .next()
        .unwrap();
    for banned in [
        "rusqlite",
        "sqlx",
        "cel",
        "tokio",
        "rand",
        "getrandom",
        "tollgate-core",
        "tollgate-store",
        "reqwest",
        "axum",
    ] {
        assert!(
            !deps
                .lines()
                .any(|l| l.trim_start().starts_with(&format!("{banned} "))
                    || l.trim_start().starts_with(&format!("{banned}."))),
            "tollgate-ledger must not depend on `{banned}`"
        );
    }
    for entry in fs::read_dir(root.join("src")).unwrap() {
        let path = entry.unwrap().path();
        let text = fs::read_to_string(&path).unwrap();
        for banned in [
            "std::fs",
            "std::net",
            "SystemTime",
            "Instant::now",
            "std::env",
            "std::process",
            "OsRng",
            "thread_rng",
        ] {
            assert!(!text.contains(banned), "{} uses `{banned}`", path.display());
        }
    }
}
