//! Velocity-history read-decide-record on PostgreSQL, measured: what a decision with a
//! `history.sum` condition costs in the store, and whether a limit holds across nodes.
//!
//! ```sh
//! TOLLGATE_TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/postgres \
//!   cargo run -p tollgate-store-pg --example history_lock_bench
//! ```
//!
//! Creates a database of its own and drops it. Each row runs `threads` threads, each
//! doing `per_thread` decisions: read the actor's events since the window start, add
//! one when the sum stays within `limit`. "nodes" are separate `PgStore`s (separate
//! pools) on the one database. Modes:
//!
//! - `node mutex`: what a cluster node did before — an in-process mutex per node
//!   around read and insert, nothing across nodes;
//! - `advisory guard`: `HistoryStore::lock_history` (a transaction holding
//!   `pg_advisory_xact_lock`s on the tenant (shared) and the actor and source).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

use tokio_postgres::NoTls;
use tollgate_store::{HistoryRecord, HistoryScope, HistoryStore as _};
use tollgate_store_pg::{PgConfig, PgStore};

fn with_database(url: &str, db: &str) -> String {
    let (main, query) = match url.split_once('?') {
        Some((m, q)) => (m, format!("?{q}")),
        None => (url, String::new()),
    };
    let scheme_end = main.find("://").map_or(0, |i| i + 3);
    let base = match main[scheme_end..].find('/') {
        Some(i) => &main[..scheme_end + i],
        None => main,
    };
    format!("{base}/{db}{query}")
}

fn admin(url: &str, sql: &str) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let (client, conn) = tokio_postgres::connect(url, NoTls).await.unwrap();
        let h = tokio::spawn(conn);
        client.batch_execute(sql).await.unwrap();
        drop(client);
        let _ = h.await;
    });
}

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    NodeMutex,
    Guard,
}

struct Row {
    mode: &'static str,
    nodes: usize,
    threads: usize,
    actors: usize,
    limit: u64,
    allowed: u64,
    decisions: u64,
    elapsed: Duration,
    p50: Duration,
    p99: Duration,
}

#[allow(clippy::too_many_arguments)]
fn run(
    url: &str,
    tenant: &str,
    mode: Mode,
    nodes: usize,
    threads: usize,
    actors: usize,
    per_thread: u64,
    limit: u64,
) -> Row {
    let stores: Vec<Arc<PgStore>> = (0..nodes)
        .map(|_| {
            let mut cfg = PgConfig::new(url);
            cfg.sequencer = false;
            Arc::new(PgStore::open(cfg).unwrap())
        })
        .collect();
    let node_locks: Vec<Arc<Mutex<()>>> = (0..nodes).map(|_| Arc::new(Mutex::new(()))).collect();
    let barrier = Arc::new(Barrier::new(threads));
    let started = Instant::now();
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let store = Arc::clone(&stores[t % nodes]);
            let node_lock = Arc::clone(&node_locks[t % nodes]);
            let barrier = Arc::clone(&barrier);
            let tenant = tenant.to_owned();
            let actor = format!("actor-{}", t % actors);
            std::thread::spawn(move || {
                barrier.wait();
                let mut lat = Vec::new();
                let mut allowed = 0u64;
                for i in 0..per_thread {
                    let t0 = Instant::now();
                    let event = HistoryRecord {
                        id: 0,
                        tenant: tenant.clone(),
                        at_ms: 1_000 + i as i64,
                        actor: Some(actor.clone()),
                        source: None,
                        values: [("action.amount".to_owned(), 1.0)].into_iter().collect(),
                    };
                    let added = match mode {
                        Mode::NodeMutex => {
                            let _g = node_lock.lock().unwrap();
                            let seen = store.history(&tenant, 0, Some(&actor), None).unwrap();
                            if (seen.len() as u64) < limit {
                                store.add_history(&event).unwrap();
                                true
                            } else {
                                false
                            }
                        }
                        Mode::Guard => {
                            let scope = HistoryScope {
                                whole_tenant: false,
                                actor: Some(actor.clone()),
                                source: None,
                            };
                            let mut g = store.lock_history(&tenant, &scope).unwrap();
                            let seen = g.history(0, Some(&actor), None).unwrap();
                            let add = (seen.len() as u64) < limit;
                            if add {
                                g.add_history(&event).unwrap();
                            }
                            g.commit().unwrap();
                            add
                        }
                    };
                    allowed += u64::from(added);
                    lat.push(t0.elapsed());
                }
                (lat, allowed)
            })
        })
        .collect();
    let mut lat = Vec::new();
    let mut allowed = 0;
    for h in handles {
        let (l, a) = h.join().unwrap();
        lat.extend(l);
        allowed += a;
    }
    let elapsed = started.elapsed();
    lat.sort();
    let pick = |q: f64| lat[((lat.len() as f64 - 1.0) * q).round() as usize];
    Row {
        mode: match mode {
            Mode::NodeMutex => "node mutex",
            Mode::Guard => "advisory guard",
        },
        nodes,
        threads,
        actors,
        limit,
        allowed,
        decisions: lat.len() as u64,
        elapsed,
        p50: pick(0.5),
        p99: pick(0.99),
    }
}

fn main() {
    let base = std::env::var("TOLLGATE_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let name = format!("tollgate_history_bench_{}", std::process::id());
    admin(&base, &format!("CREATE DATABASE {name}"));
    let url = with_database(&base, &name);
    let mut rows = Vec::new();
    // Throughput: limits far above the demand, so every decision inserts.
    let big = u64::MAX;
    rows.push(run(&url, "t1", Mode::NodeMutex, 1, 8, 1, 250, big));
    rows.push(run(&url, "t2", Mode::Guard, 1, 8, 1, 250, big));
    rows.push(run(&url, "t3", Mode::Guard, 3, 9, 1, 250, big));
    rows.push(run(&url, "t4", Mode::NodeMutex, 3, 9, 9, 250, big));
    rows.push(run(&url, "t5", Mode::Guard, 3, 9, 9, 250, big));
    // Exactness: demand 3 × 3 × 100 = 900 against a limit of 300 on one actor.
    rows.push(run(&url, "t6", Mode::NodeMutex, 3, 9, 1, 100, 300));
    rows.push(run(&url, "t7", Mode::Guard, 3, 9, 1, 100, 300));
    admin(
        &base,
        &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
    );
    println!(
        "| mode | nodes | threads | actors | decisions | decisions/s | p50 ms | p99 ms | limit | allowed |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for r in rows {
        println!(
            "| {} | {} | {} | {} | {} | {:.0} | {:.2} | {:.2} | {} | {} |",
            r.mode,
            r.nodes,
            r.threads,
            r.actors,
            r.decisions,
            r.decisions as f64 / r.elapsed.as_secs_f64(),
            r.p50.as_secs_f64() * 1e3,
            r.p99.as_secs_f64() * 1e3,
            if r.limit == u64::MAX {
                "-".to_owned()
            } else {
                r.limit.to_string()
            },
            r.allowed
        );
    }
}
