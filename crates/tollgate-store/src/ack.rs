//! A one-shot acknowledgement that a blocking caller can wait for and an async
//! caller can await, without tying the store to an async runtime.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::task::{Context, Poll, Waker};

use crate::StoreError;

#[derive(Debug)]
struct Slot<T> {
    value: Option<Result<T, StoreError>>,
    waker: Option<Waker>,
    /// A thread is blocked in `wait` (so the sender must notify the condvar; a
    /// notification with no waiter would still cost a system call).
    blocked: bool,
    // INVARIANT: set once the sender is gone, whether or not it sent a value.
    closed: bool,
}

#[derive(Debug)]
struct Shared<T> {
    slot: Mutex<Slot<T>>,
    ready: Condvar,
}

/// The receiving half: `wait()` blocks, `.await` does not.
#[derive(Debug)]
#[must_use = "an append is acknowledged only when the ack resolves"]
pub struct Ack<T> {
    shared: Arc<Shared<T>>,
}

/// The sending half, held by the writer (sequencer, committer).
#[derive(Debug)]
pub struct AckSender<T> {
    shared: Arc<Shared<T>>,
}

/// A new acknowledgement: the backend keeps the sender, the caller gets the [`Ack`].
/// Dropping the sender without sending resolves the ack with [`StoreError::Closed`].
pub fn ack_channel<T>() -> (AckSender<T>, Ack<T>) {
    channel()
}

pub(crate) fn channel<T>() -> (AckSender<T>, Ack<T>) {
    let shared = Arc::new(Shared {
        slot: Mutex::new(Slot {
            value: None,
            waker: None,
            blocked: false,
            closed: false,
        }),
        ready: Condvar::new(),
    });
    (
        AckSender {
            shared: shared.clone(),
        },
        Ack { shared },
    )
}

impl<T> Ack<T> {
    /// An ack that is already resolved.
    pub fn ready(value: Result<T, StoreError>) -> Ack<T> {
        let (tx, rx) = channel();
        tx.send(value);
        rx
    }

    /// Blocks the calling thread until the writer answers.
    pub fn wait(self) -> Result<T, StoreError> {
        let mut slot = self
            .shared
            .slot
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        loop {
            if let Some(v) = slot.value.take() {
                return v;
            }
            if slot.closed {
                return Err(StoreError::Closed);
            }
            slot.blocked = true;
            slot = self
                .shared
                .ready
                .wait(slot)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }
}

impl<T> Future for Ack<T> {
    type Output = Result<T, StoreError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut slot = self
            .shared
            .slot
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(v) = slot.value.take() {
            return Poll::Ready(v);
        }
        if slot.closed {
            return Poll::Ready(Err(StoreError::Closed));
        }
        slot.waker = Some(cx.waker().clone());
        Poll::Pending
    }
}

impl<T> AckSender<T> {
    /// Resolves the ack.
    pub fn send(self, value: Result<T, StoreError>) {
        let mut slot = self
            .shared
            .slot
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        slot.value = Some(value);
        // Drop runs next and wakes the receiver.
        drop(slot);
    }
}

impl<T> Drop for AckSender<T> {
    fn drop(&mut self) {
        let mut slot = self
            .shared
            .slot
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        slot.closed = true;
        let waker = slot.waker.take();
        let blocked = slot.blocked;
        drop(slot);
        if blocked {
            self.shared.ready.notify_all();
        }
        if let Some(w) = waker {
            w.wake();
        }
    }
}
