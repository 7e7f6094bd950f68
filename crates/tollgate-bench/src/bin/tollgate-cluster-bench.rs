//! Cluster rows of the benchmark: three `tollgate serve` nodes on one PostgreSQL
//! database (`store = "postgres"`), load on all three at once, decisions per second
//! per node and in total. `bench/cluster.sh` creates the database, runs this, then
//! reads the sequencing lag (commit of the pending row → sequenced) from the ledger.
//!
//! Usage: tollgate-cluster-bench --tollgate PATH --database-url URL
//!        [--seconds N] [--connections C (per node)]
#![allow(clippy::print_stdout)] // a benchmark prints its table

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use serde_json::{Value, json};

struct Node {
    child: Child,
    url: String,
    dir: PathBuf,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn health(url: &str) -> Option<Value> {
    reqwest::blocking::get(format!("{url}/v1/health"))
        .ok()?
        .json()
        .ok()
}

fn start(tollgate: &PathBuf, database_url: &str, n: usize) -> anyhow::Result<Node> {
    let port = free_port()?;
    let dir =
        std::env::temp_dir().join(format!("tollgate-cluster-bench-{}-{n}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let child = Command::new(tollgate)
        .arg("serve")
        .env("TOLLGATE_LISTEN", format!("127.0.0.1:{port}"))
        .env("TOLLGATE_DATA_DIR", dir.join("data"))
        .env("TOLLGATE_STORE", "postgres")
        .env("TOLLGATE_DATABASE_URL", database_url)
        .env("TOLLGATE_KEY_RATE_BURST", "1000000")
        .env("TOLLGATE_KEY_RATE_PER_SECOND", "1000000")
        .env("TOLLGATE_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting tollgate")?;
    let url = format!("http://127.0.0.1:{port}");
    let node = Node { child, url, dir };
    let deadline = Instant::now() + Duration::from_secs(30);
    while health(&node.url).is_none() {
        if Instant::now() > deadline {
            bail!("node {n} did not start");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(node)
}

#[derive(Default)]
struct Count {
    ok: u64,
    errors: u64,
}

fn main() -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut tollgate = None;
    let mut database_url = None;
    let mut seconds = 10u64;
    let mut connections = 16usize;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--tollgate" => tollgate = Some(PathBuf::from(args.next().context("--tollgate PATH")?)),
            "--database-url" => database_url = Some(args.next().context("--database-url URL")?),
            "--seconds" => seconds = args.next().context("--seconds N")?.parse()?,
            "--connections" => connections = args.next().context("--connections C")?.parse()?,
            other => bail!("unknown argument `{other}`"),
        }
    }
    let tollgate = tollgate.context("--tollgate PATH is required")?;
    let database_url = database_url.context("--database-url URL is required")?;

    let first = start(&tollgate, &database_url, 0)?;
    let deadline = Instant::now() + Duration::from_secs(20);
    while !health(&first.url).is_some_and(|h| h["sequencer"] == json!(true)) {
        if Instant::now() > deadline {
            bail!("node 0 did not become the sequencer");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let boot: Value = serde_json::from_str(&std::fs::read_to_string(
        first.dir.join("data/bootstrap-keys.json"),
    )?)?;
    let key = boot["test_key"]["secret"]
        .as_str()
        .context("bootstrap test key")?
        .to_owned();
    let nodes = [
        first,
        start(&tollgate, &database_url, 1)?,
        start(&tollgate, &database_url, 2)?,
    ];
    let body = json!({"action": {"type": "OPEN_POSITION"}, "signals": {"volatility": 0.05, "confidence": 0.95}}).to_string();

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let (counts, elapsed) = rt.block_on(async {
        let stop = Arc::new(AtomicBool::new(false));
        let measuring = Arc::new(AtomicBool::new(false));
        let mut tasks = Vec::new();
        for (n, node) in nodes.iter().enumerate() {
            for _ in 0..connections {
                let client = reqwest::Client::builder()
                    .pool_max_idle_per_host(1)
                    .build()?;
                let url = format!("{}/v1/decisions", node.url);
                let (key, body) = (key.clone(), body.clone());
                let (stop, measuring) = (Arc::clone(&stop), Arc::clone(&measuring));
                tasks.push(tokio::spawn(async move {
                    let mut c = Count::default();
                    while !stop.load(Ordering::Relaxed) {
                        let res = client
                            .post(&url)
                            .bearer_auth(&key)
                            .header("content-type", "application/json")
                            .body(body.clone())
                            .send()
                            .await;
                        let ok = match res {
                            Ok(r) => {
                                let s = r.status();
                                r.bytes().await.is_ok() && s.is_success()
                            }
                            Err(_) => false,
                        };
                        if measuring.load(Ordering::Relaxed) {
                            if ok {
                                c.ok += 1;
                            } else {
                                c.errors += 1;
                            }
                        }
                    }
                    (n, c)
                }));
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        measuring.store(true, Ordering::Relaxed);
        let started = Instant::now();
        tokio::time::sleep(Duration::from_secs(seconds)).await;
        measuring.store(false, Ordering::Relaxed);
        let elapsed = started.elapsed().as_secs_f64();
        stop.store(true, Ordering::Relaxed);
        let mut counts: Vec<Count> = (0..3).map(|_| Count::default()).collect();
        for t in tasks {
            let (n, c) = t.await?;
            counts[n].ok += c.ok;
            counts[n].errors += c.errors;
        }
        Ok::<_, anyhow::Error>((counts, elapsed))
    })?;
    // Let the sequencer integrate everything before the lag is read.
    let deadline = Instant::now() + Duration::from_secs(60);
    while !health(&nodes[0].url).is_some_and(|h| h["pending_entries"] == json!(0)) {
        if Instant::now() > deadline {
            bail!("entries still pending after 60 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    println!(
        "| cluster (3 nodes, {connections} connections each, {seconds} s) | decisions/s | errors |"
    );
    println!("|---|---:|---:|");
    let mut total = 0u64;
    let mut errors = 0u64;
    for (n, c) in counts.iter().enumerate() {
        let role = if n == 0 { " (sequencer)" } else { "" };
        println!(
            "| node {n}{role} | {:.0} | {} |",
            c.ok as f64 / elapsed,
            c.errors
        );
        total += c.ok;
        errors += c.errors;
    }
    println!("| total | {:.0} | {errors} |", total as f64 / elapsed);
    Ok(())
}
