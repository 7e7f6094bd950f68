//! Idempotency (docs/operations.md): the first completed response for a key is stored
//! with the request's fingerprint; a retry with the same key and request gets it
//! back marked replayed; the same key with another request is 422
//! `idempotency_key_reuse`; concurrent duplicates produce one decision.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tollgate_store::IdempotencyClaim;

use crate::service::Error;
use crate::service::{DecisionService, lock_error};

/// Longest idempotency key accepted.
pub const MAX_KEY_LEN: usize = 256;

/// Prefix of every client idempotency key in the store.
const CLIENT_KEY_PREFIX: &str = "request:";

/// A response and whether it is a replay.
#[derive(Debug)]
pub struct Answer {
    /// The (unsigned) response body.
    pub body: Value,
    /// Whether it was replayed from an earlier request.
    pub replayed: bool,
}

impl DecisionService {
    /// Runs `produce` at most once per (tenant, key); without a key, just runs it.
    pub async fn idempotent<F, Fut>(
        &self,
        tenant: &str,
        key: Option<&str>,
        fingerprint: &str,
        produce: F,
    ) -> Result<Answer, Error>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Value, Error>>,
    {
        let Some(key) = key else {
            return produce().await.map(|body| Answer {
                body,
                replayed: false,
            });
        };
        if key.is_empty() || key.len() > MAX_KEY_LEN {
            return Err(Error::field(
                &["idempotency_key"],
                format!("an idempotency key must be 1 to {MAX_KEY_LEN} characters"),
                "string_too_long",
            ));
        }
        // Clients' keys live in their own namespace of the idempotency store, apart
        // from the server's single-use claims (`grant:…`, `review-approval:…`), so a
        // client cannot pre-claim one of those by sending it as its key.
        let key = &format!("{CLIENT_KEY_PREFIX}{key}");
        // Duplicates on this node queue behind one lock; duplicates on other nodes
        // are serialised by the store's claim.
        let slot = (tenant.to_owned(), key.to_owned());
        let lock = {
            let mut inflight = self.inflight.lock().map_err(lock_error)?;
            Arc::clone(inflight.entry(slot.clone()).or_default())
        };
        let result = {
            let _guard = lock.lock().await;
            self.claim_and_run(tenant, key, fingerprint, produce).await
        };
        {
            let mut inflight = self.inflight.lock().map_err(lock_error)?;
            if inflight
                .get(&slot)
                .is_some_and(|l| Arc::strong_count(l) <= 2)
            {
                inflight.remove(&slot);
            }
        }
        result
    }

    async fn claim_and_run<F, Fut>(
        &self,
        tenant: &str,
        key: &str,
        fingerprint: &str,
        produce: F,
    ) -> Result<Answer, Error>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Value, Error>>,
    {
        let store = self.store();
        // Another node may hold the key: wait for its answer a little while.
        for _ in 0..100 {
            match store.claim(tenant, key, fingerprint, self.now_ms())? {
                IdempotencyClaim::New => {
                    return match produce().await {
                        Ok(body) => {
                            // The verdict is recorded: a failure to store the answer
                            // for replay is logged, never answered as an error. The
                            // key stays claimed, so a retry is refused (409), never
                            // decided twice.
                            let completed = store
                                .complete(tenant, key, &body)
                                .or_else(|_| store.complete(tenant, key, &body));
                            if let Err(e) = completed {
                                tracing::error!(tenant, error = %e, "the answer of an idempotency key was not stored; the key stays in progress");
                                self.metrics.apply_failures.inc();
                            }
                            Ok(Answer {
                                body,
                                replayed: false,
                            })
                        }
                        Err(e) => {
                            // Nothing was recorded: the key is free for a retry.
                            store.release(tenant, key)?;
                            Err(e)
                        }
                    };
                }
                IdempotencyClaim::Done(body) => {
                    self.metrics.idempotent_replays.inc();
                    return Ok(Answer {
                        body,
                        replayed: true,
                    });
                }
                IdempotencyClaim::Mismatch => {
                    return Err(Error::Unprocessable {
                        code: "idempotency_key_reuse",
                        message: "this idempotency key was used with a different request"
                            .to_owned(),
                    });
                }
                IdempotencyClaim::InProgress => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
        Err(Error::Conflict(
            "a request with this idempotency key is still in progress".to_owned(),
        ))
    }
}
