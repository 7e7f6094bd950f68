//! A synchronous client: the async [`crate::Client`] driven by a runtime of its own.
//!
//! Use it from plain threads only: calling it from inside an async runtime panics
//! (tokio refuses to block a runtime thread). Async code uses [`crate::Client`].

use tollgate_ledger::Jwks;

use crate::client::ClientBuilder;
use crate::decision::Decision;
use crate::error::Error;
use crate::outcome::{OutcomeReceipt, SignedOutcome};
use crate::point::{DecisionPoint, RetryPolicy};
use crate::request::DecisionRequest;
use crate::verify::DossierDocument;

/// The blocking client.
#[derive(Debug)]
pub struct Client {
    inner: crate::Client,
    runtime: tokio::runtime::Runtime,
}

impl Client {
    /// Builds from an async client's builder.
    pub fn from_builder(builder: ClientBuilder) -> Result<Client, Error> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::Config(format!("cannot start a runtime: {e}")))?;
        Ok(Client {
            inner: builder.build()?,
            runtime,
        })
    }

    /// See [`DecisionPoint::decide`].
    pub fn decide(&self, request: &DecisionRequest) -> Result<Decision, Error> {
        self.runtime.block_on(self.inner.decide(request))
    }

    /// See [`DecisionPoint::enforce`].
    pub fn enforce(&self, request: &DecisionRequest) -> Result<Decision, Error> {
        self.runtime.block_on(self.inner.enforce(request))
    }

    /// See [`DecisionPoint::decide_with_retry`].
    pub fn decide_with_retry(
        &self,
        request: &DecisionRequest,
        retry: RetryPolicy,
    ) -> Result<Decision, Error> {
        self.runtime
            .block_on(self.inner.decide_with_retry(request, retry))
    }

    /// Runs `action` only when the verdict is ALLOW.
    pub fn gate<T>(
        &self,
        request: &DecisionRequest,
        action: impl FnOnce() -> T,
    ) -> Result<T, Error> {
        self.enforce(request)?;
        Ok(action())
    }

    /// See [`crate::Client::get_decision`].
    pub fn get_decision(&self, decision_id: &str) -> Result<Decision, Error> {
        self.runtime.block_on(self.inner.get_decision(decision_id))
    }

    /// See [`crate::Client::dossier`].
    pub fn dossier(&self, decision_id: &str) -> Result<DossierDocument, Error> {
        self.runtime.block_on(self.inner.dossier(decision_id))
    }

    /// See [`crate::Client::jwks`].
    pub fn jwks(&self) -> Result<Jwks, Error> {
        self.runtime.block_on(self.inner.jwks())
    }

    /// See [`crate::Client::verify`].
    pub fn verify(&self, decision: &Decision) -> Result<(), Error> {
        self.runtime.block_on(self.inner.verify(decision))
    }

    /// See [`crate::Client::consume_grant`].
    pub fn consume_grant(
        &self,
        grant: &str,
        request: Option<&DecisionRequest>,
    ) -> Result<serde_json::Value, Error> {
        self.runtime
            .block_on(self.inner.consume_grant(grant, request))
    }

    /// See [`crate::Client::wait_for_review`].
    pub fn wait_for_review(
        &self,
        decision_id: &str,
        wait: std::time::Duration,
    ) -> Result<crate::ReviewState, Error> {
        self.runtime
            .block_on(self.inner.wait_for_review(decision_id, wait))
    }

    /// See [`crate::Client::report_outcome`].
    pub fn report_outcome(&self, outcome: &SignedOutcome) -> Result<OutcomeReceipt, Error> {
        self.runtime.block_on(self.inner.report_outcome(outcome))
    }
}
