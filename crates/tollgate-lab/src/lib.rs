//! `tollgate-lab`: experiments that check the published DeAlgo figures against
//! Tollgate.
//!
//! It holds the **characterisation probes** ([`characterize`]): black-box HTTP probes
//! of the published DeAlgo characterisation table against a running server, using only
//! its public API; and the **drawdown experiment**: a synthetic mean-reversion strategy on a
//! seeded, regime-switching price process, run twice per seed — once with every order
//! executed, once with each order first decided by `tollgate-core` under the built-in
//! `csc-default` policy (in-process, simulated clock, throttle state in
//! [`tollgate_core::MemoryBuckets`]) — reporting max drawdown, expectancy, trades and
//! blocks by gate. The method is documented in `docs/lab.md`.
//!
//! ```
//! use tollgate_lab::{DrawdownConfig, run_drawdown};
//!
//! // A short run (the default is a trading year of 1-second bars per seed).
//! let config = DrawdownConfig { seeds: vec![1, 2], bars: 20_000, ..DrawdownConfig::default() };
//! let report = run_drawdown(&config).expect("the experiment runs");
//! assert_eq!(report.seeds.len(), 2);
//! println!("{report}"); // Markdown tables; `serde_json::to_string(&report)` for JSON.
//! ```
//!
//! The engine-vs-peer benchmark lives in `benches/peer.rs` and is built by the
//! stand-alone package in `peer-bench/` (the peer crate pins exact versions of serde,
//! serde_json and thiserror that conflict with this workspace's lockfile).
#![deny(missing_docs)]
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

mod characterize;
mod drawdown;
mod error;
pub mod metrics;
pub mod process;
pub mod strategy;

pub use characterize::{CharacterizeConfig, CharacterizeReport, FalsePermits, Row, characterize};
pub use drawdown::{
    Blocks, DrawdownConfig, DrawdownReport, MeanRow, RunStats, SeedResult, run_drawdown,
};
pub use error::LabError;
pub use process::{Bar, PriceProcess, ProcessConfig, Regime};
pub use strategy::StrategyConfig;
