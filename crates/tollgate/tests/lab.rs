//! `tollgate lab characterize` against a real `tollgate serve` process over a socket:
//! the measured window, capacity, refill and ceiling equal the published values and
//! there is no false permit. Shortened where the method allows it (sweeps without
//! waiting for tokens, 6 s of refill probes, 20 s of steady state, 21 s of quiet);
//! about two and a half minutes.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn characterize_reproduces_the_published_table_against_a_real_server() {
    // reqwest may be compiled with rustls and no default crypto provider.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let _server = Server(
        Command::new(env!("CARGO_BIN_EXE_tollgate"))
            .arg("serve")
            .env("TOLLGATE_LISTEN", format!("127.0.0.1:{port}"))
            .env("TOLLGATE_DATA_DIR", dir.path().join("data"))
            .env("TOLLGATE_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let url = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !reqwest::blocking::get(format!("{url}/v1/health")).is_ok_and(|r| r.status().is_success())
    {
        assert!(Instant::now() < deadline, "server did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    let boot: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("data/bootstrap-keys.json")).unwrap(),
    )
    .unwrap();
    let key = boot["test_key"]["secret"].as_str().unwrap();

    let out = Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .args(["lab", "characterize", "--url", &url, "--key", key, "--json"])
        .args([
            "--no-wait",
            "--refill-max",
            "6",
            "--ceiling",
            "20",
            "--quiet",
            "21",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "exit {:?}\nstdout: {stdout}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let r: Value = serde_json::from_str(&stdout).unwrap();

    // The measured values, not just the verdict of the comparison.
    let vol: Vec<u64> = (0..=14).collect();
    let conf: Vec<u64> = (90..=100).collect();
    let as_u64s = |v: &Value| -> Vec<u64> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap())
            .collect()
    };
    assert_eq!(as_u64s(&r["volatility_passed"]), vol);
    assert_eq!(as_u64s(&r["confidence_passed"]), conf);
    assert_eq!(r["capacity"], 4);
    assert_eq!(r["refill_seconds"], 5);
    let curve: Vec<u64> = r["refill_curve"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p[1].as_u64().unwrap())
        .collect();
    assert_eq!(curve, [0, 0, 0, 0, 1, 1]);
    let per_min = r["ceiling_per_min"].as_f64().unwrap();
    assert!((per_min - 12.0).abs() < 1.0, "ceiling {per_min}/min");
    for (probe, dangerous) in [("chaos", 100), ("spike", 18), ("multi_agent", 8)] {
        let fp = &r[probe];
        let total = fp["dangerous"].as_u64().unwrap() + fp["in_band"].as_u64().unwrap();
        assert_eq!(fp["dangerous_allowed"], 0, "{probe}: {fp}");
        if probe == "chaos" {
            assert_eq!(total, 100, "{probe}: {fp}");
        } else {
            assert_eq!(fp["dangerous"], dangerous, "{probe}: {fp}");
        }
    }
    // Six calm requests, each made with a token: all permitted.
    assert_eq!(r["spike"]["in_band_allowed"], 6);
    // Eight benign agents at one instant after quiet: exactly the bucket.
    assert_eq!(r["multi_agent"]["in_band_allowed"], 4);
    assert_eq!(r["sweep_false_permits"], 0);
    assert_eq!(r["bucket_false_permits"], 0);
    assert_eq!(r["throughput_errors"], 0);
    let rows = r["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 10);
    assert!(
        rows.iter().all(|row| row["matches"] != false),
        "{:#}",
        r["rows"]
    );
}
