//! Admission: at most `max_concurrency` requests are processed at once. A request that
//! finds every slot taken waits, in arrival order, up to `admission_wait_ms` for one
//! and is then answered 503 `overloaded` with `Retry-After`. At most `max_concurrency`
//! requests wait at once; past that a request is refused at once.
//!
//! The wait absorbs a short stall (a ledger fsync that takes tens of ms holds every
//! slot for that long) without turning the requests that arrive meanwhile into 503s.
//! Under sustained overload the waiting line stays full and the excess is refused at
//! once, so a refusal does not hold its connection for the wait: held connections
//! would otherwise pile up past `max_connections` and be closed unanswered.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio::sync::Semaphore;

use crate::ApiError;

/// The longest admission wait that may be configured.
pub const MAX_ADMISSION_WAIT: Duration = Duration::from_secs(10);

/// The processing slots and how long a request may wait for one.
#[derive(Debug)]
pub struct Admission {
    slots: Arc<Semaphore>,
    wait: Duration,
    /// Requests waiting for a slot now, and the most that may.
    waiting: AtomicUsize,
    max_waiting: usize,
}

impl Admission {
    /// `max_concurrency` slots (at least one); `wait` is capped at
    /// [`MAX_ADMISSION_WAIT`].
    pub fn new(max_concurrency: usize, wait: Duration) -> Self {
        let slots = max_concurrency.clamp(1, Semaphore::MAX_PERMITS);
        Self {
            slots: Arc::new(Semaphore::new(slots)),
            wait: wait.min(MAX_ADMISSION_WAIT),
            waiting: AtomicUsize::new(0),
            max_waiting: slots,
        }
    }

    /// A place in the waiting line, if there is one.
    fn join_line(&self) -> Option<InLine<'_>> {
        let before = self.waiting.fetch_add(1, Ordering::AcqRel);
        let place = InLine(&self.waiting);
        (before < self.max_waiting).then_some(place)
    }
}

/// A place in the waiting line; given back when dropped (also when the client goes
/// away while waiting and the request's future is dropped).
struct InLine<'a>(&'a AtomicUsize);

impl Drop for InLine<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The middleware: holds a slot while the inner service produces the response.
pub async fn layer(State(admission): State<Arc<Admission>>, req: Request, next: Next) -> Response {
    // The semaphore is fair: while requests wait, a newcomer cannot take a freed slot
    // ahead of them.
    let permit = match Arc::clone(&admission.slots).try_acquire_owned() {
        Ok(permit) => permit,
        Err(_) if admission.wait.is_zero() => return ApiError::Overloaded.into_response(),
        Err(_) => {
            let Some(place) = admission.join_line() else {
                return ApiError::Overloaded.into_response();
            };
            let slot = Arc::clone(&admission.slots).acquire_owned();
            let waited = tokio::time::timeout(admission.wait, slot).await;
            drop(place);
            match waited {
                Ok(Ok(permit)) => permit,
                // Timed out, or the semaphore was closed (it never is).
                _ => return ApiError::Overloaded.into_response(),
            }
        }
    };
    let response = next.run(req).await;
    drop(permit);
    response
}
