//! The ledger side of the service: durable appends, decisions read back, dossiers,
//! checkpoints, verification and proofs.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tollgate_ledger::{EntryDraft, EntryKind, NoteVerifier, SignedCheckpoint};

use crate::clock::rfc3339;
use crate::service::records::DecisionEntryBody;
use crate::service::{Caller, DecisionService, Error};

/// How an append that was not acknowledged ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AppendFailure {
    /// The store answered that it failed.
    Failed,
    /// No answer within `ledger_timeout_ms`: the entry may still become durable.
    TimedOut,
}

impl DecisionService {
    /// Appends an entry and waits until it is durable; 503 if it is not.
    pub(crate) async fn append(
        &self,
        draft: EntryDraft,
    ) -> Result<tollgate_store::Appended, Error> {
        self.try_append(draft)
            .await
            .map_err(|_| Error::LedgerUnavailable)
    }

    /// Appends an entry and waits until it is durable, saying how it failed if it
    /// did not acknowledge.
    pub(crate) async fn try_append(
        &self,
        draft: EntryDraft,
    ) -> Result<tollgate_store::Appended, AppendFailure> {
        let tenant = draft.tenant.clone();
        let ack = self.store().submit(draft);
        self.await_append(&tenant, ack).await
    }

    /// [`DecisionService::try_append`] for a body written as RFC 8785 bytes from its
    /// typed record (the decision path).
    pub(crate) async fn try_append_canonical(
        &self,
        draft: tollgate_ledger::CanonicalDraft,
    ) -> Result<tollgate_store::Appended, AppendFailure> {
        let tenant = draft.tenant.clone();
        let ack = self.store().submit_canonical(draft);
        self.await_append(&tenant, ack).await
    }

    async fn await_append(
        &self,
        tenant: &str,
        ack: tollgate_store::Ack<tollgate_store::Appended>,
    ) -> Result<tollgate_store::Appended, AppendFailure> {
        let started = Instant::now();
        let timeout = Duration::from_millis(self.config().ledger_timeout_ms);
        let ack = tracing::Instrument::instrument(ack, crate::otel::append_span());
        let appended = match tokio::time::timeout(timeout, ack).await {
            Ok(Ok(a)) => a,
            Ok(Err(e)) => {
                tracing::error!(error = %e, "ledger append failed");
                return Err(AppendFailure::Failed);
            }
            Err(_) => {
                tracing::error!("ledger append timed out");
                return Err(AppendFailure::TimedOut);
            }
        };
        self.metrics
            .ledger_append_seconds
            .observe(started.elapsed().as_secs_f64());
        // A pending entry (cluster mode) is checkpointed by the sequencer that
        // integrates it; a sequenced one by this node's ticker.
        if appended.is_sequenced() {
            self.mark_dirty(tenant);
        }
        Ok(appended)
    }

    /// After an append reported a failure: whether the decision is in the ledger all
    /// the same (its acknowledgement was lost), and where. `Err` when the store cannot
    /// tell.
    pub(crate) fn find_decision(
        &self,
        tenant: &str,
        decision_id: &str,
    ) -> Result<Option<tollgate_store::Appended>, Error> {
        if let Some(seq) = self.store().decision_seq(tenant, decision_id)? {
            let entry = self.store().entry(tenant, seq)?.ok_or(Error::NotFound)?;
            self.mark_dirty(tenant);
            return Ok(Some(tollgate_store::Appended {
                tenant: tenant.to_owned(),
                seq: Some(seq),
                entry_hash: Some(entry.entry_hash),
                prev_hash: Some(entry.prev_hash),
            }));
        }
        if self.store().decision_pending(tenant, decision_id)? {
            return Ok(Some(tollgate_store::Appended {
                tenant: tenant.to_owned(),
                seq: None,
                entry_hash: None,
                prev_hash: None,
            }));
        }
        Ok(None)
    }

    /// Records an administrative event in the tenant's ledger.
    pub(crate) async fn record(
        &self,
        tenant: &str,
        kind: EntryKind,
        body: Value,
    ) -> Result<tollgate_store::Appended, Error> {
        self.append(EntryDraft {
            tenant: tenant.to_owned(),
            time: rfc3339(self.now_ms()),
            kind,
            body,
        })
        .await
    }

    /// Issues a checkpoint for `tenant` now and waits for it.
    pub async fn checkpoint_now(&self, tenant: &str) -> Result<SignedCheckpoint, Error> {
        let ack = self
            .store()
            .issue_checkpoint(tenant, &rfc3339(self.now_ms()));
        match tokio::time::timeout(Duration::from_millis(self.config().ledger_timeout_ms), ack)
            .await
        {
            Ok(Ok(c)) => Ok(c),
            Ok(Err(e)) => {
                tracing::error!(error = %e, tenant, "checkpoint failed");
                Err(Error::LedgerUnavailable)
            }
            Err(_) => Err(Error::LedgerUnavailable),
        }
    }

    /// Background work of one tick: checkpoints for tenants with new entries,
    /// metering flush, expired idempotency records.
    pub async fn tick(&self) {
        let dirty: Vec<String> = match self.dirty.lock() {
            Ok(mut d) => d.drain().collect(),
            Err(_) => Vec::new(),
        };
        for tenant in dirty {
            if let Err(e) = self.checkpoint_now(&tenant).await {
                tracing::warn!(tenant, error = %e, "checkpoint not issued; will retry");
                self.mark_dirty(&tenant);
            }
        }
        if let Err(e) = self.expire_due_reviews().await {
            tracing::warn!(error = %e, "review expiry sweep failed; will retry");
        }
        if let Err(e) = self.meter.flush(self.store().as_ref()) {
            tracing::warn!(error = %e, "usage counters not flushed; will retry");
        }
        let cutoff = self.now_ms() - self.config().idempotency_ttl_ms;
        if let Err(e) = self.store().purge_idempotency(cutoff) {
            tracing::warn!(error = %e, "idempotency purge failed");
        }
    }
}

impl DecisionService {
    /// A recorded decision entry of the caller's tenant.
    pub fn decision_entry(
        &self,
        tenant: &str,
        decision_id: &str,
    ) -> Result<tollgate_ledger::Entry, Error> {
        let Some(seq) = self.store().decision_seq(tenant, decision_id)? else {
            if self.store().decision_pending(tenant, decision_id)? {
                return Err(Error::PendingIntegration);
            }
            return Err(Error::NotFound);
        };
        let entry = self.store().entry(tenant, seq)?.ok_or(Error::NotFound)?;
        if entry.kind != EntryKind::Decision || entry.tenant != tenant {
            return Err(Error::NotFound);
        }
        Ok(entry)
    }

    /// A recorded decision of the caller's tenant: its entry and its typed body.
    pub fn decision(
        &self,
        tenant: &str,
        decision_id: &str,
    ) -> Result<(tollgate_ledger::Entry, DecisionEntryBody), Error> {
        let entry = self.decision_entry(tenant, decision_id)?;
        let body = DecisionEntryBody::from_value(&entry.body)?;
        Ok((entry, body))
    }
}

impl DecisionService {
    /// The dossier of one decision: the entry with its inclusion proof against the
    /// latest checkpoint (issued now if none covers the entry), the checkpoint, the
    /// verifier keys, and the decision's reviews and outcomes.
    pub async fn dossier(&self, caller: &Caller, id: &str) -> Result<Value, Error> {
        let tenant = caller.tenant().to_owned();
        let (ledger, body) = self.decision_dossier(caller, id).await?;
        let mut out = serde_json::to_value(&ledger).map_err(Error::internal)?;
        if let Some(obj) = out.as_object_mut() {
            obj.insert("decision_id".into(), json!(id));
            obj.insert("request".into(), to_json(&body.request)?);
            obj.insert("verdict".into(), to_json(&body.verdict)?);
            obj.insert("trace".into(), to_json(&body.verdict.trace)?);
            obj.insert("policies".into(), to_json(&body.verdict.policies)?);
            obj.insert("reviews".into(), self.reviews_of(&tenant, id)?);
            obj.insert("outcomes".into(), self.outcomes_of(&tenant, id)?);
        }
        Ok(out)
    }

    /// Verifies the caller's tenant ledger now, on a blocking thread.
    pub async fn verify_ledger(
        self: &std::sync::Arc<Self>,
        caller: &Caller,
    ) -> Result<Value, Error> {
        caller.require_view("admin")?;
        let keys: Vec<NoteVerifier> = self.note_verifiers();
        let st = std::sync::Arc::clone(self);
        let tenant = caller.tenant().to_owned();
        let result = tokio::task::spawn_blocking(move || st.store().verify(&tenant, &keys))
            .await
            .map_err(Error::internal)??;
        Ok(match result {
            Ok(v) => {
                json!({"ok": true, "entries": v.entries, "root": v.root.to_hex(), "checkpoints": v.checkpoints})
            }
            Err(f) => json!({"ok": false, "first_bad_seq": f.seq, "problem": f.to_string()}),
        })
    }

    /// The number of entries in the tenant's ledger.
    pub fn ledger_size(&self, tenant: &str) -> Result<u64, Error> {
        Ok(self.store().head(tenant)?.map_or(0, |h| h.size))
    }

    /// Entries `from..to` of the tenant's ledger as JSON Lines.
    pub fn export_page(&self, tenant: &str, from: u64, to: u64) -> Result<String, Error> {
        let mut out = String::new();
        for e in self.store().range(tenant, from, to)? {
            out.push_str(&e.to_json_line().map_err(Error::internal)?);
            out.push('\n');
        }
        Ok(out)
    }

    /// An RFC 6962 consistency proof between tree sizes `from` and `to`.
    pub fn consistency(&self, caller: &Caller, from: u64, to: u64) -> Result<Value, Error> {
        let tenant = caller.tenant();
        let size = self.ledger_size(tenant)?;
        if from > to || to > size {
            return Err(Error::field(
                &["query", "to"],
                format!("need from <= to <= {size}"),
                "value_error",
            ));
        }
        // Growing from nothing, or not growing, needs no proof (RFC 9162 defines proofs
        // for 0 < from < to only).
        let proof = if from == 0 || from == to {
            Vec::new()
        } else {
            self.store().consistency_proof(tenant, from, to)?
        };
        Ok(
            json!({"from": from, "to": to, "proof": proof.iter().map(|h| h.to_hex()).collect::<Vec<_>>()}),
        )
    }

    /// The latest checkpoint's signed-note text (issued now if none covers the head).
    pub async fn checkpoint_text(&self, caller: &Caller) -> Result<String, Error> {
        let tenant = caller.tenant().to_owned();
        let size = self.ledger_size(&tenant)?;
        let cp = match self.store().latest_checkpoint(&tenant)? {
            Some(c) if c.checkpoint.size >= size => c,
            _ => self.checkpoint_now(&tenant).await?,
        };
        cp.to_text().map_err(Error::internal)
    }
}

fn to_json(v: &impl serde::Serialize) -> Result<Value, Error> {
    serde_json::to_value(v).map_err(Error::internal)
}
