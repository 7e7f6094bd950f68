//! `tollgate-core`: Tollgate's pure, deterministic decision engine.
//!
//! It turns (neutral request, compiled policies, engine state, now) into a verdict with
//! a full trace. It performs no I/O, has no async, reads no clock and draws no random
//! numbers: time, throttle state, overrides and outcome history are inputs, and the
//! state changes it wants applied (the throttle token it took) are outputs. A test
//! (`tests/purity.rs`) fails if the crate gains a dependency or a call that would break
//! this.
//!
//! ```
//! use tollgate_core::{DecideInput, DecisionRequest, MemoryBuckets, PolicyBinding, Status, UnixMillis, decide, csc_default};
//!
//! let policy = csc_default().expect("the built-in policy compiles");
//! let mut request = DecisionRequest { tenant: "default".into(), ..Default::default() };
//! request.action.insert("type".into(), "OPEN_POSITION".into());
//! request.signals.insert("volatility".into(), 0.05);
//! request.signals.insert("confidence".into(), 0.95);
//! let policies = [PolicyBinding::Found(policy)];
//! let input = DecideInput {
//!     request: &request, policies: &policies, now: UnixMillis(1_700_000_000_000),
//!     overrides: &[], outcomes: &[], approval: None, tenant_shadow: false,
//! };
//! let mut buckets = MemoryBuckets::new();
//! let verdict = decide(&input, &mut buckets).expect("valid request");
//! assert_eq!(verdict.status, Status::Allow);
//! ```
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

pub mod adaptive;
pub mod canonical;
pub mod digest;
pub mod engine;
mod expr;
mod fast;
pub mod history;
pub mod policy;
pub mod request;
pub mod throttle;
pub mod time;
mod trace;
mod vars;
pub mod verdict;

pub use adaptive::OutcomeRecord;
pub use engine::{
    Approval, DecideInput, Decision, Evaluation, Override, OverrideScope, PolicyBinding, decide,
    decide_with_history, evaluate, evaluate_with_history,
};
pub use history::{HistoryEvent, Scope};
pub use policy::{
    CompiledPolicy, PolicyDocument, PolicyError, PolicyFormat, PolicyIssue, compile_policy,
    csc_default, parse_policy,
};
pub use request::{DecisionRequest, FieldError, InvalidRequest, Mode};
pub use throttle::{BucketDemand, Gcra, GcraCheck, MemoryBuckets, TatUpdate};
pub use time::UnixMillis;
pub use verdict::{
    Gate, GateResult, GateTrace, Outcome, PolicyStamp, ReviewRequest, Status, Trace, TraceStep,
    Verdict,
};
