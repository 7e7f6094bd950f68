//! [`DecisionPoint`]: what agent code is generic over (the HTTP [`crate::Client`],
//! [`crate::testing::FakeClient`], and the embedded engine).

use std::future::Future;
use std::time::Duration;

use crate::decision::{Decision, Status};
use crate::error::{Blocked, Error};
use crate::request::DecisionRequest;

/// How [`DecisionPoint::decide_with_retry`] retries throttle blocks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included (at least 1).
    pub max_attempts: u32,
    /// Wait after attempt `n` when the server gives no `retry_after_ms`:
    /// `base_backoff * n` (linear, as the DeAlgo SDK does).
    pub base_backoff: Duration,
    /// The longest single wait, whatever the server says.
    pub max_wait: Duration,
}

impl Default for RetryPolicy {
    /// Four attempts, 5 s linear backoff, waits of at most 30 s.
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 4,
            base_backoff: Duration::from_secs(5),
            max_wait: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    /// `max_attempts` attempts with the default backoff.
    pub fn attempts(max_attempts: u32) -> Self {
        RetryPolicy {
            max_attempts,
            ..RetryPolicy::default()
        }
    }

    fn wait_after(&self, attempt: u32, decision: &Decision) -> Duration {
        decision
            .retry_after()
            .unwrap_or(self.base_backoff.saturating_mul(attempt))
            .min(self.max_wait)
    }
}

/// Something that answers "may this action run now?".
///
/// Only [`DecisionPoint::decide`] must be written; `enforce`, `decide_with_retry`
/// and `gate` are built on it, so they behave the same for the HTTP client, the
/// fake and the embedded engine.
pub trait DecisionPoint: Send + Sync {
    /// Asks for a verdict. `Ok` carries every verdict, ALLOW or not; a client that
    /// fails closed answers `Err(Error::Blocked)` when it gets no verdict.
    fn decide(
        &self,
        request: &DecisionRequest,
    ) -> impl Future<Output = Result<Decision, Error>> + Send;

    /// How `decide_with_retry` waits. The default sleeps on the tokio timer; the fake
    /// client records the wait and returns at once.
    fn pause(&self, wait: Duration) -> impl Future<Output = ()> + Send {
        tokio::time::sleep(wait)
    }

    /// `Ok` only for ALLOW; BLOCK, ESCALATE, REVIEW_REQUIRED and unknown statuses
    /// are `Err(Error::Blocked)` with the gate, reasons, explanation, dossier URL and
    /// review id.
    fn enforce(
        &self,
        request: &DecisionRequest,
    ) -> impl Future<Output = Result<Decision, Error>> + Send {
        async move {
            let decision = self.decide(request).await?;
            if decision.status == Status::Allow {
                Ok(decision)
            } else {
                Err(Blocked::from_decision(decision).into())
            }
        }
    }

    /// Like `decide`, retrying throttle blocks only (policy, reality, override and
    /// review blocks are final), waiting `retry_after_ms` when the server gives it.
    /// Returns the last verdict, whatever it is.
    ///
    /// Each retry is a new decision: a caller's idempotency key gets a `-retry-N`
    /// suffix, or the retry would replay the throttle block.
    fn decide_with_retry(
        &self,
        request: &DecisionRequest,
        retry: RetryPolicy,
    ) -> impl Future<Output = Result<Decision, Error>> + Send {
        async move {
            let attempts = retry.max_attempts.max(1);
            let mut decision = self.decide(request).await?;
            for attempt in 1..attempts {
                if !decision.is_throttled() {
                    break;
                }
                self.pause(retry.wait_after(attempt, &decision)).await;
                let mut again = request.clone();
                if let Some(key) = &request.idempotency_key {
                    again.idempotency_key = Some(format!("{key}-retry-{attempt}"));
                }
                decision = self.decide(&again).await?;
            }
            Ok(decision)
        }
    }

    /// Runs `action` only when the verdict is ALLOW and returns its output;
    /// otherwise `action` is dropped without being polled and the block is returned.
    ///
    /// ```
    /// # use tollgate_client::{DecisionPoint, DecisionRequest, testing::FakeClient};
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let client = FakeClient::new();
    /// let sent = client
    ///     .gate(&DecisionRequest::new("SEND_EMAIL"), async { "sent" })
    ///     .await?;
    /// assert_eq!(sent, "sent");
    /// # Ok::<(), tollgate_client::Error>(())
    /// # }).unwrap();
    /// ```
    fn gate<F>(
        &self,
        request: &DecisionRequest,
        action: F,
    ) -> impl Future<Output = Result<F::Output, Error>> + Send
    where
        F: Future + Send,
    {
        async move {
            self.enforce(request).await?;
            Ok(action.await)
        }
    }
}

impl<T: DecisionPoint> DecisionPoint for std::sync::Arc<T> {
    fn decide(
        &self,
        request: &DecisionRequest,
    ) -> impl Future<Output = Result<Decision, Error>> + Send {
        (**self).decide(request)
    }

    fn pause(&self, wait: Duration) -> impl Future<Output = ()> + Send {
        (**self).pause(wait)
    }
}

impl<T: DecisionPoint> DecisionPoint for &T {
    fn decide(
        &self,
        request: &DecisionRequest,
    ) -> impl Future<Output = Result<Decision, Error>> + Send {
        (**self).decide(request)
    }

    fn pause(&self, wait: Duration) -> impl Future<Output = ()> + Send {
        (**self).pause(wait)
    }
}
