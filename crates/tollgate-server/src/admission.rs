//! Admission: at most `max_concurrency` requests are processed at once. A request that
//! finds every slot taken waits, in arrival order, up to `admission_wait_ms` for one
//! and is then answered 503 `overloaded` with `Retry-After`.
//!
//! The wait absorbs a short stall (a ledger fsync that takes tens of ms holds every
//! slot for that long) without turning the requests that arrive meanwhile into 503s;
//! under sustained overload the excess is still refused, after at most the wait. How
//! many requests can wait is bounded by the connection limit: an HTTP/1 connection
//! carries one request at a time.

use std::sync::Arc;
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
}

impl Admission {
    /// `max_concurrency` slots (at least one); `wait` is capped at
    /// [`MAX_ADMISSION_WAIT`].
    pub fn new(max_concurrency: usize, wait: Duration) -> Self {
        Self {
            slots: Arc::new(Semaphore::new(
                max_concurrency.clamp(1, Semaphore::MAX_PERMITS),
            )),
            wait: wait.min(MAX_ADMISSION_WAIT),
        }
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
            let slot = Arc::clone(&admission.slots).acquire_owned();
            match tokio::time::timeout(admission.wait, slot).await {
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
