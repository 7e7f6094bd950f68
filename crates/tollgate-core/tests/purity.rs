//! The core stays pure: no I/O, no async runtime, no clock, no randomness, no
//! database or network crate — checked on the dependency graph (from `cargo tree`)
//! and on the source (like tessera's `TestForbiddenFunction`).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Crates whose presence would mean I/O, async, a clock or randomness in the engine.
const FORBIDDEN_CRATES: &[&str] = &[
    "tokio",
    "mio",
    "async-std",
    "smol",
    "futures",
    "futures-util",
    "futures-executor",
    "hyper",
    "reqwest",
    "axum",
    "tower",
    "sqlx",
    "rusqlite",
    "libsqlite3-sys",
    "postgres",
    "tokio-postgres",
    "redis",
    "socket2",
    "rand",
    "rand_core",
    "getrandom",
    "chrono",
    "time",
    "iana-time-zone",
    "ring",
    "openssl",
];

/// Calls and paths that would read the outside world.
const FORBIDDEN_SOURCE: &[&str] = &[
    "SystemTime",
    "Instant::now",
    "Utc::now",
    "Local::now",
    "std::fs",
    "std::net",
    "std::thread",
    "std::env",
    "std::process",
    "std::io::stdin",
    "File::",
    "tokio",
    "async fn",
    ".await",
    "rand::",
    "getrandom",
    "thread_rng",
    "println!",
    "eprintln!",
    "unsafe ",
];

fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Normal (non-dev) dependencies of tollgate-core on the host, transitively, as
/// `cargo tree` reports them (feature unification with the rest of the workspace
/// included).
fn runtime_closure() -> BTreeSet<String> {
    let out = std::process::Command::new(env!("CARGO"))
        .current_dir(crate_dir())
        .args([
            "tree",
            "-p",
            "tollgate-core",
            "-e",
            "normal",
            "--prefix",
            "none",
            "--format",
            "{p}",
            "--offline",
        ])
        .output()
        .expect("cargo runs");
    assert!(
        out.status.success(),
        "cargo tree failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

#[test]
fn core_depends_on_no_io_async_clock_or_randomness_crate() {
    let closure = runtime_closure();
    assert!(
        closure.contains("cel"),
        "closure from cargo tree: {closure:?}"
    );
    let bad: Vec<&str> = FORBIDDEN_CRATES
        .iter()
        .copied()
        .filter(|c| closure.contains(*c))
        .collect();
    assert!(
        bad.is_empty(),
        "tollgate-core must stay pure, but depends on {bad:?}"
    );
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn core_source_calls_no_clock_io_or_randomness() {
    let mut files = Vec::new();
    rust_files(&crate_dir().join("src"), &mut files);
    assert!(files.len() >= 8, "found the sources: {files:?}");
    let mut hits = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        for (n, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            for pattern in FORBIDDEN_SOURCE {
                if code.contains(pattern) {
                    hits.push(format!("{}:{}: {pattern}", file.display(), n + 1));
                }
            }
        }
    }
    assert!(
        hits.is_empty(),
        "forbidden in tollgate-core:\n{}",
        hits.join("\n")
    );
}
