//! Admission: at most `max_concurrency` requests are processed at once. A request that
//! finds every slot taken waits, in arrival order, up to `admission_wait_ms` for one
//! and is then answered 503 `overloaded` with `Retry-After`. At most `max_connections`
//! requests wait at once (an HTTP/1 connection carries one request at a time, so the
//! listener bounds the line already; the router bounds it itself for embedders that
//! serve it another way); past that a request is refused at once.
//!
//! The wait absorbs a short stall (a ledger fsync that takes tens of ms holds every
//! slot for that long) without turning the requests that arrive meanwhile into 503s.
//! Measured with `tollgate-bench overload --client-connections 1024` (README): with
//! the wait, no 503 once the load drops from 4x saturation to 0.5x; refusing at once,
//! or letting only `max_concurrency` wait, leaves bursts of 503 at every stall.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio::sync::Semaphore;

use crate::service::Error as ApiError;

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
    /// `max_concurrency` slots (at least one) and a line of at most `max_waiting`;
    /// `wait` is capped at [`MAX_ADMISSION_WAIT`].
    pub fn new(max_concurrency: usize, max_waiting: usize, wait: Duration) -> Self {
        Self {
            slots: Arc::new(Semaphore::new(
                max_concurrency.clamp(1, Semaphore::MAX_PERMITS),
            )),
            wait: wait.min(MAX_ADMISSION_WAIT),
            waiting: AtomicUsize::new(0),
            max_waiting,
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
