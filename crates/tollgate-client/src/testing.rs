//! Test agents without a server: [`FakeClient`] replays canned verdicts.
//!
//! It mirrors the Python SDK's `FakeCSC`: with no verdicts it always permits; with
//! verdicts it answers them in order and then repeats the last one; it records every
//! request it was asked about. It implements [`DecisionPoint`], so `enforce`,
//! `decide_with_retry` and `gate` behave exactly as with the real client, and it
//! never opens a socket. Waits of `decide_with_retry` are recorded, not slept.
//!
//! ```
//! use tollgate_client::testing::{FakeClient, blocked, permitted, throttled};
//! use tollgate_client::{DecisionPoint, DecisionRequest, Gate};
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! let fake = FakeClient::with_verdicts([
//!     permitted("first-call"),
//!     blocked(Gate::Reality, "volatility above 0.15"),
//!     throttled(5_000),
//! ]);
//! let req = DecisionRequest::new("OPEN_POSITION").context_field("feed", "trading");
//! assert!(fake.decide(&req).await?.is_allowed());
//! assert_eq!(fake.enforce(&req).await.unwrap_err().blocked().unwrap().gate, Gate::Reality);
//! assert!(fake.decide(&req).await?.is_throttled());
//! assert!(fake.decide(&req).await?.is_throttled(), "the last verdict repeats");
//! assert_eq!(fake.calls()[0].context["feed"], "trading");
//! # Ok::<(), tollgate_client::Error>(())
//! # }).unwrap();
//! ```

use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use crate::decision::{Decision, Gate, Status};
use crate::error::{Blocked, Error, Failure};
use crate::point::DecisionPoint;
use crate::request::DecisionRequest;

/// A canned answer.
#[derive(Clone, Debug)]
enum Canned {
    Verdict(Box<Decision>),
    /// No verdict: the fake answers as a fail-closed client does.
    Unavailable(Failure),
}

#[derive(Debug, Default)]
struct State {
    calls: Vec<DecisionRequest>,
    pauses: Vec<Duration>,
}

/// A [`DecisionPoint`] that answers canned verdicts. Clones share the script and
/// the record.
#[derive(Clone, Debug, Default)]
pub struct FakeClient {
    script: Arc<Vec<Canned>>,
    state: Arc<Mutex<State>>,
}

impl FakeClient {
    /// Always permits.
    pub fn new() -> Self {
        FakeClient::default()
    }

    /// Answers `verdicts` in order, then repeats the last one (always permits when
    /// empty).
    pub fn with_verdicts(verdicts: impl IntoIterator<Item = Decision>) -> Self {
        FakeClient {
            script: Arc::new(
                verdicts
                    .into_iter()
                    .map(|d| Canned::Verdict(Box::new(d)))
                    .collect(),
            ),
            state: Arc::default(),
        }
    }

    /// Never gets a verdict: every call fails closed, as the real client does when
    /// the server is down.
    pub fn unreachable() -> Self {
        FakeClient {
            script: Arc::new(vec![Canned::Unavailable(Failure::Transport(
                "fake: connection refused".to_owned(),
            ))]),
            state: Arc::default(),
        }
    }

    /// Every request asked about, in order.
    pub fn calls(&self) -> Vec<DecisionRequest> {
        self.state().calls.clone()
    }

    /// How many requests were asked about.
    pub fn call_count(&self) -> usize {
        self.state().calls.len()
    }

    /// The waits `decide_with_retry` asked for (not slept).
    pub fn pauses(&self) -> Vec<Duration> {
        self.state().pauses.clone()
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // A test that panicked while holding the lock must not hide the record.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn answer(&self, request: &DecisionRequest) -> Result<Decision, Error> {
        let n = {
            let mut state = self.state();
            state.calls.push(request.clone());
            state.calls.len()
        };
        let canned = match self.script.get(n - 1).or(self.script.last()) {
            None => return Ok(permitted("fake: always permits").with_id(format!("dec_fake_{n}"))),
            Some(c) => c.clone(),
        };
        match canned {
            Canned::Verdict(d) => {
                let mut d = *d;
                if d.decision_id.is_empty() {
                    d.decision_id = format!("dec_fake_{n}");
                }
                Ok(d)
            }
            Canned::Unavailable(f) => Err(Blocked::fail_closed(f).into()),
        }
    }
}

impl DecisionPoint for FakeClient {
    fn decide(
        &self,
        request: &DecisionRequest,
    ) -> impl Future<Output = Result<Decision, Error>> + Send {
        std::future::ready(self.answer(request))
    }

    fn pause(&self, wait: Duration) -> impl Future<Output = ()> + Send {
        self.state().pauses.push(wait);
        std::future::ready(())
    }
}

/// An ALLOW at the permit gate.
pub fn permitted(reason: impl Into<String>) -> Decision {
    Decision::new(Status::Allow, Gate::Permit).with_explanation(reason)
}

/// A BLOCK at `gate`, with a reason code derived from the gate.
pub fn blocked(gate: Gate, reason: impl Into<String>) -> Decision {
    let code = format!("{}_BLOCK", gate.as_str().to_ascii_uppercase());
    Decision::new(Status::Block, gate)
        .with_reasons([code])
        .with_explanation(reason)
}

/// A throttle BLOCK that can be retried after `retry_after_ms`.
pub fn throttled(retry_after_ms: u64) -> Decision {
    blocked(Gate::Throttle, "no tokens").with_retry_after_ms(retry_after_ms)
}

/// An ESCALATE at the policy gate with a review id.
pub fn escalated(review_id: impl Into<String>, reason: impl Into<String>) -> Decision {
    Decision::new(Status::Escalate, Gate::Policy)
        .with_reasons(["ESCALATED"])
        .with_explanation(reason)
        .with_review_id(review_id)
}
