//! Human review of ESCALATE / REVIEW_REQUIRED decisions (docs/operations.md "Reviews").
//!
//! A review is opened with the decision that asked for it: pending, with the request
//! digest, the rule, the approver groups, the approvals needed and an expiry. Keys with
//! scope `review` (in one of the approver groups, when the rule names groups) approve
//! or reject it; the same key cannot approve twice, and the key that asked for the
//! decision cannot approve it. An approved review grants exactly one later ALLOW (gate
//! `review`) to a request with the same request digest before the review expires.
//! Rejection and expiry are final. Opening and every resolution are ledger entries.

use std::time::Duration;

use serde::Deserialize;
use serde_json::{Value, json};
use tollgate_core::{Approval, ReviewRequest};
use tollgate_ledger::EntryKind;
use tollgate_store::{ReviewRecord, ReviewStatus};

use crate::clock::rfc3339;
use crate::service::Error;
use crate::service::auth::{Caller, random_id};
use crate::service::{DecisionService, lock_error};

/// Longest `/wait` long-poll, in seconds.
pub const MAX_WAIT_S: u64 = 60;

fn view(r: &ReviewRecord) -> Value {
    let b = &r.body;
    json!({
        "review_id": r.id,
        "status": r.status,
        "decision_id": b["decision_id"],
        "rule": b["rule"],
        "policy_id": b["policy_id"],
        "approver_groups": b["approver_groups"],
        "min_approvals": b["min_approvals"],
        "approvals": b["approvals"],
        "rejection": b.get("rejection").cloned().unwrap_or(Value::Null),
        "created_at": b["created_ms"].as_i64().map(rfc3339),
        "expires_at": b["expires_ms"].as_i64().map(rfc3339),
        "consumed_by": b.get("consumed_by").cloned().unwrap_or(Value::Null),
    })
}

impl DecisionService {
    /// The pending review a decision asks for, not stored yet: it is stored only once
    /// the decision that opened it is durable (`decide.rs`, apply step).
    pub(crate) fn new_review(
        &self,
        tenant: &str,
        decision_id: &str,
        request_digest: &str,
        requested_by: &str,
        req: &ReviewRequest,
    ) -> Result<ReviewRecord, Error> {
        let now = self.now_ms();
        let record = ReviewRecord {
            tenant: tenant.to_owned(),
            id: random_id("rev")?,
            status: ReviewStatus::Pending,
            body: json!({
                "decision_id": decision_id,
                "request_digest": request_digest,
                "requested_by_key_id": requested_by,
                "rule": req.rule,
                "policy_id": req.policy_id,
                "approver_groups": req.approvers,
                "min_approvals": req.min_approvals,
                "created_ms": now,
                "expires_ms": now.saturating_add(req.expires_in_ms),
                "approvals": [],
            }),
        };
        Ok(record)
    }

    /// Stores a review opened by a durable decision and records `review_opened`.
    pub(crate) async fn open_review(&self, r: &ReviewRecord) -> Result<(), Error> {
        self.store().put_review(r)?;
        self.record_review_opened(r).await
    }

    /// Records `review_opened` once the decision that opened it is durable.
    pub(crate) async fn record_review_opened(&self, r: &ReviewRecord) -> Result<(), Error> {
        self.record(
            &r.tenant,
            EntryKind::ReviewOpened,
            json!({"review": view(r)}),
        )
        .await?;
        Ok(())
    }

    /// Expires a pending review whose time is up (recording it); returns the record as
    /// it now is. The expiry is a conditional replacement: if a vote or the approval's
    /// use landed first (on any node), the review is read again, and exactly one
    /// writer records the expiry.
    async fn refresh(&self, mut r: ReviewRecord) -> Result<ReviewRecord, Error> {
        for _ in 0..MAX_ATTEMPTS {
            let expired = r.body["expires_ms"]
                .as_i64()
                .is_some_and(|t| t <= self.now_ms());
            if !expired || !matches!(r.status, ReviewStatus::Pending | ReviewStatus::Approved) {
                return Ok(r);
            }
            let mut next = r.clone();
            next.status = ReviewStatus::Expired;
            next.body["resolved_ms"] = json!(self.now_ms());
            if self.store().replace_review(&r, &next)? {
                self.record(
                    &next.tenant,
                    EntryKind::ReviewResolved,
                    json!({"review": view(&next)}),
                )
                .await?;
                return Ok(next);
            }
            r = self
                .store()
                .review(&r.tenant, &r.id)?
                .ok_or(Error::NotFound)?;
        }
        Err(contended())
    }

    /// Resolves every pending or approved review whose time is up as expired (a
    /// `review_resolved` entry each, so the expiry is notified), instead of waiting
    /// for someone to read it. Run by the ticker; in a cluster only by the sequencer
    /// node, so two nodes do not both record one expiry.
    pub(crate) async fn expire_due_reviews(&self) -> Result<usize, Error> {
        if !self.store().is_sequencer() {
            return Ok(0);
        }
        let now = self.now_ms();
        let mut expired = 0;
        for tenant in self.store().tenants()? {
            for status in [ReviewStatus::Pending, ReviewStatus::Approved] {
                for r in self.store().reviews(&tenant.id, Some(status))? {
                    if r.body["expires_ms"].as_i64().is_some_and(|t| t <= now) {
                        // Re-read under the votes' lock: a vote may have just landed.
                        let current = {
                            let _guard = self.reviews_lock.lock().map_err(lock_error)?;
                            self.store().review(&tenant.id, &r.id)?
                        };
                        if let Some(current) = current
                            && self.refresh(current).await?.status == ReviewStatus::Expired
                        {
                            expired += 1;
                        }
                    }
                }
            }
        }
        Ok(expired)
    }

    /// Takes the approval of an approved, unexpired, unused review for this request
    /// digest, if there is one: it is used up now (one use).
    ///
    /// INVARIANT: one approval, one use, across every node on the store. The lock
    /// below only serialises this node; what makes the take single-use is the store's
    /// atomic idempotency claim on `review-approval:<id>` (as grants use
    /// `grant:<jti>`): exactly one claimant wins, and every other request (here or on
    /// another node) passes over the review. The claim is released when the approval
    /// is put back, and completed when a decision used it. The status change to
    /// `consumed` is a conditional replacement of the approved record as read, so an
    /// expiry that landed in between is never overwritten.
    pub(crate) fn take_approval(
        &self,
        tenant: &str,
        request_digest: &str,
    ) -> Result<Option<(ReviewRecord, Approval)>, Error> {
        let _guard = self.reviews_lock.lock().map_err(lock_error)?;
        let now = self.now_ms();
        for mut r in self.store().reviews(tenant, Some(ReviewStatus::Approved))? {
            let live = r.body["expires_ms"].as_i64().is_some_and(|t| t > now);
            if !live || r.body["request_digest"] != json!(request_digest) {
                continue;
            }
            match self
                .store()
                .claim(tenant, &approval_claim(&r.id), &r.id, now)?
            {
                tollgate_store::IdempotencyClaim::New => {}
                // Another request holds or has used it.
                _ => continue,
            }
            let approvers = r.body["approvals"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|a| a["key_id"].as_str().map(str::to_owned))
                .collect();
            let approved = r.clone();
            r.status = ReviewStatus::Consumed;
            match self.store().replace_review(&approved, &r) {
                Ok(true) => {}
                // Changed since it was read (it expired): not taken after all.
                Ok(false) => {
                    self.store().release(tenant, &approval_claim(&r.id))?;
                    continue;
                }
                Err(e) => {
                    // Not taken after all: give the claim back so the approval stays
                    // usable.
                    self.store().release(tenant, &approval_claim(&r.id))?;
                    return Err(e.into());
                }
            }
            let approval = Approval {
                review_id: r.id.clone(),
                approvers,
            };
            return Ok(Some((r, approval)));
        }
        Ok(None)
    }

    /// Puts back an approval that the decision did not use (an override blocked first,
    /// or the decision was not recorded).
    pub(crate) fn restore_approval(&self, mut r: ReviewRecord) -> Result<(), Error> {
        let _guard = self.reviews_lock.lock().map_err(lock_error)?;
        r.status = ReviewStatus::Approved;
        self.store().put_review(&r)?;
        self.store().release(&r.tenant, &approval_claim(&r.id))?;
        Ok(())
    }

    /// Marks a taken approval as used by `decision_id`.
    pub(crate) fn consumed_by(&self, mut r: ReviewRecord, decision_id: &str) -> Result<(), Error> {
        r.body["consumed_by"] = json!(decision_id);
        self.store().put_review(&r)?;
        self.store().complete(
            &r.tenant,
            &approval_claim(&r.id),
            &json!({"consumed_by": decision_id}),
        )?;
        Ok(())
    }

    /// The reviews of a decision, for its dossier.
    pub(crate) fn reviews_of(&self, tenant: &str, decision_id: &str) -> Result<Value, Error> {
        let list: Vec<Value> = self
            .store()
            .reviews(tenant, None)?
            .iter()
            .filter(|r| r.body["decision_id"] == json!(decision_id))
            .map(view)
            .collect();
        Ok(Value::Array(list))
    }
}

/// The idempotency-store key that makes taking review `id`'s approval single-use.
fn approval_claim(id: &str) -> String {
    format!("review-approval:{id}")
}

impl DecisionService {
    /// The tenant's reviews (expired ones marked so first), optionally by status.
    pub async fn list_reviews(
        &self,
        caller: &Caller,
        status: Option<&str>,
    ) -> Result<Vec<Value>, Error> {
        caller.require_view("review")?;
        let mut out = Vec::new();
        for r in self.store().reviews(caller.tenant(), None)? {
            let r = self.refresh(r).await?;
            if status.is_none_or(|s| s == r.status.as_str()) {
                out.push(view(&r));
            }
        }
        Ok(out)
    }

    /// One review of the caller's tenant.
    pub async fn review(&self, caller: &Caller, id: &str) -> Result<Value, Error> {
        caller.require_view("review")?;
        Ok(view(&load(self, caller, id).await?))
    }

    /// Approves (`approve`) or rejects a pending review, with an optional comment.
    pub async fn resolve_review(
        &self,
        caller: &Caller,
        id: &str,
        resolution: Resolution,
        approve: bool,
    ) -> Result<Value, Error> {
        resolve(self, caller, id, resolution, approve).await
    }
}

async fn load(state: &DecisionService, caller: &Caller, id: &str) -> Result<ReviewRecord, Error> {
    let r = state
        .store()
        .review(caller.tenant(), id)?
        .ok_or(Error::NotFound)?;
    state.refresh(r).await
}

/// A reviewer's vote: an optional comment.
#[derive(Debug, Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Resolution {
    #[serde(default)]
    comment: Option<String>,
}

fn closed(status: ReviewStatus) -> Error {
    Error::Conflict(format!("the review is {status}; it cannot change any more"))
}

/// How often a conditional replacement of a review is tried before giving up.
const MAX_ATTEMPTS: usize = 64;

fn contended() -> Error {
    Error::Conflict("the review kept changing under this request; try again".into())
}

/// The review `r` with the caller's vote: approved once it has `min_approvals`,
/// rejected by one rejection.
fn vote(
    state: &DecisionService,
    caller: &Caller,
    r: &ReviewRecord,
    resolution: &Resolution,
    approve: bool,
) -> Result<ReviewRecord, Error> {
    let mut r = r.clone();
    if r.status != ReviewStatus::Pending {
        return Err(closed(r.status));
    }
    let groups: Vec<String> =
        serde_json::from_value(r.body["approver_groups"].clone()).unwrap_or_default();
    if !groups.is_empty() && !caller.key.groups.iter().any(|g| groups.contains(g)) {
        return Err(Error::Forbidden("review"));
    }
    if r.body["requested_by_key_id"] == json!(caller.key.id) {
        return Err(Error::Unprocessable {
            code: "self_review",
            message: "the key that asked for the decision cannot review it".into(),
        });
    }
    let vote = json!({
        "key_id": caller.key.id,
        "name": caller.key.name,
        "comment": resolution.comment,
        "at": rfc3339(state.now_ms()),
    });
    if approve {
        let mut approvals = r.body["approvals"].as_array().cloned().unwrap_or_default();
        if approvals
            .iter()
            .any(|a| a["key_id"] == json!(caller.key.id))
        {
            return Err(Error::Conflict(
                "this key has already approved this review".into(),
            ));
        }
        approvals.push(vote);
        let needed = r.body["min_approvals"].as_u64().unwrap_or(1);
        if approvals.len() as u64 >= needed {
            r.status = ReviewStatus::Approved;
            r.body["resolved_ms"] = json!(state.now_ms());
        }
        r.body["approvals"] = Value::Array(approvals);
    } else {
        r.status = ReviewStatus::Rejected;
        r.body["rejection"] = vote;
        r.body["resolved_ms"] = json!(state.now_ms());
    }
    Ok(r)
}

async fn resolve(
    state: &DecisionService,
    caller: &Caller,
    id: &str,
    resolution: Resolution,
    approve: bool,
) -> Result<Value, Error> {
    caller.require("review")?;
    // Expires the review first if its time is up.
    load(state, caller, id).await?;
    // A vote is a conditional replacement of the review as read: of two votes at
    // once on any nodes one lands, the other reads the review again (now with the
    // first vote) and lands next, so no vote is lost and `min_approvals` counts
    // every one. The lock only spares this node's votes the retry.
    let r = {
        let _guard = state.reviews_lock.lock().map_err(lock_error)?;
        let mut landed = None;
        for _ in 0..MAX_ATTEMPTS {
            let current = state
                .store()
                .review(caller.tenant(), id)?
                .ok_or(Error::NotFound)?;
            let next = vote(state, caller, &current, &resolution, approve)?;
            if state.store().replace_review(&current, &next)? {
                landed = Some(next);
                break;
            }
        }
        landed.ok_or_else(contended)?
    };
    if r.status != ReviewStatus::Pending {
        state
            .record(
                caller.tenant(),
                EntryKind::ReviewResolved,
                json!({"review": view(&r), "by_key_id": caller.key.id}),
            )
            .await?;
    }
    Ok(view(&r))
}

impl DecisionService {
    /// Long-polls until the decision's review is resolved (or `timeout_s`, at most
    /// [`MAX_WAIT_S`], passes), then answers its state.
    pub async fn wait_for_review(
        &self,
        caller: &Caller,
        id: &str,
        timeout_s: Option<u64>,
    ) -> Result<Value, Error> {
        let (_, decision) = self.decision(caller.tenant(), id)?;
        let status = decision.verdict.status.as_str();
        let Some(review_id) = decision.review_id else {
            return Ok(json!({
                "decision_id": id,
                "status": status,
                "review": null,
            }));
        };
        let timeout = Duration::from_secs(timeout_s.unwrap_or(30).min(MAX_WAIT_S));
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let r = self
                .store()
                .review(caller.tenant(), &review_id)?
                .ok_or(Error::NotFound)?;
            let r = self.refresh(r).await?;
            if r.status != ReviewStatus::Pending || tokio::time::Instant::now() >= deadline {
                return Ok(json!({
                    "decision_id": id,
                    "status": status,
                    "review": view(&r),
                    "resolved": r.status != ReviewStatus::Pending,
                }));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}
