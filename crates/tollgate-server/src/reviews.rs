//! Human review of ESCALATE / REVIEW_REQUIRED decisions (operations.md "Reviews").
//!
//! A review is opened with the decision that asked for it: pending, with the request
//! digest, the rule, the approver groups, the approvals needed and an expiry. Keys with
//! scope `review` (in one of the approver groups, when the rule names groups) approve
//! or reject it; the same key cannot approve twice, and the key that asked for the
//! decision cannot approve it. An approved review grants exactly one later ALLOW (gate
//! `review`) to a request with the same request digest before the review expires.
//! Rejection and expiry are final. Opening and every resolution are ledger entries.

use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use serde::Deserialize;
use serde_json::{Value, json};
use tollgate_core::{Approval, ReviewRequest};
use tollgate_ledger::EntryKind;
use tollgate_store::ReviewRecord;

use crate::auth::{Caller, random_id};
use crate::body::{decode, parse_object};
use crate::clock::rfc3339;
use crate::error::ApiError;
use crate::state::{AppState, lock_error};

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

impl AppState {
    /// Stores a pending review for a decision about to be recorded; returns its id.
    pub(crate) fn open_review(
        &self,
        tenant: &str,
        decision_id: &str,
        request_digest: &str,
        requested_by: &str,
        req: &ReviewRequest,
    ) -> Result<ReviewRecord, ApiError> {
        let now = self.now_ms();
        let record = ReviewRecord {
            tenant: tenant.to_owned(),
            id: random_id("rev")?,
            status: "pending".into(),
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
        self.store().put_review(&record)?;
        Ok(record)
    }

    /// Records `review_opened` once the decision that opened it is durable.
    pub(crate) async fn record_review_opened(&self, r: &ReviewRecord) -> Result<(), ApiError> {
        self.record(
            &r.tenant,
            EntryKind::ReviewOpened,
            json!({"review": view(r)}),
        )
        .await?;
        Ok(())
    }

    /// Expires a pending review whose time is up (recording it); returns the record as
    /// it now is.
    async fn refresh(&self, mut r: ReviewRecord) -> Result<ReviewRecord, ApiError> {
        let expired = r.body["expires_ms"]
            .as_i64()
            .is_some_and(|t| t <= self.now_ms());
        if expired && matches!(r.status.as_str(), "pending" | "approved") {
            r.status = "expired".into();
            r.body["resolved_ms"] = json!(self.now_ms());
            self.store().put_review(&r)?;
            self.record(
                &r.tenant,
                EntryKind::ReviewResolved,
                json!({"review": view(&r)}),
            )
            .await?;
        }
        Ok(r)
    }

    /// Takes the approval of an approved, unexpired, unused review for this request
    /// digest, if there is one: it is used up now (one use).
    ///
    /// INVARIANT: one approval, one use, across every node on the store. The status
    /// change is a read-modify-write of the review record, so the lock below only
    /// serialises this node; what makes the take single-use is the store's atomic
    /// idempotency claim on `review-approval:<id>` (as grants use `grant:<jti>`):
    /// exactly one claimant wins, and every other request (here or on another node)
    /// passes over the review. The claim is released when the approval is put back,
    /// and completed when a decision used it.
    pub(crate) fn take_approval(
        &self,
        tenant: &str,
        request_digest: &str,
    ) -> Result<Option<(ReviewRecord, Approval)>, ApiError> {
        let _guard = self.0.reviews_lock.lock().map_err(lock_error)?;
        let now = self.now_ms();
        for mut r in self.store().reviews(tenant, Some("approved"))? {
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
            r.status = "consumed".into();
            self.store().put_review(&r)?;
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
    pub(crate) fn restore_approval(&self, mut r: ReviewRecord) -> Result<(), ApiError> {
        let _guard = self.0.reviews_lock.lock().map_err(lock_error)?;
        r.status = "approved".into();
        self.store().put_review(&r)?;
        self.store().release(&r.tenant, &approval_claim(&r.id))?;
        Ok(())
    }

    /// Marks a taken approval as used by `decision_id`.
    pub(crate) fn consumed_by(
        &self,
        mut r: ReviewRecord,
        decision_id: &str,
    ) -> Result<(), ApiError> {
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
    pub(crate) fn reviews_of(&self, tenant: &str, decision_id: &str) -> Result<Value, ApiError> {
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

/// `?status=pending`.
#[derive(Debug, Deserialize)]
pub struct ListQuery {
    /// Only reviews with this status.
    #[serde(default)]
    pub status: Option<String>,
}

/// `GET /v1/reviews`.
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    caller.require("review")?;
    let mut out = Vec::new();
    for r in state.store().reviews(caller.tenant(), None)? {
        let r = state.refresh(r).await?;
        if q.status.as_deref().is_none_or(|s| s == r.status) {
            out.push(view(&r));
        }
    }
    Ok(Json(json!({"reviews": out})))
}

async fn load(state: &AppState, caller: &Caller, id: &str) -> Result<ReviewRecord, ApiError> {
    let r = state
        .store()
        .review(caller.tenant(), id)?
        .ok_or(ApiError::NotFound)?;
    state.refresh(r).await
}

/// `GET /v1/reviews/{id}`.
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    caller.require("review")?;
    Ok(Json(view(&load(&state, &caller, &id).await?)))
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Resolution {
    #[serde(default)]
    comment: Option<String>,
}

fn closed(status: &str) -> ApiError {
    ApiError::Conflict(format!("the review is {status}; it cannot change any more"))
}

async fn resolve(
    state: AppState,
    caller: Caller,
    id: String,
    bytes: Bytes,
    approve: bool,
) -> Result<Json<Value>, ApiError> {
    caller.require("review")?;
    let resolution: Resolution = if bytes.iter().all(u8::is_ascii_whitespace) {
        Resolution::default()
    } else {
        decode(parse_object(&bytes, state.config().max_json_depth)?)?
    };
    // Expires the review first if its time is up.
    load(&state, &caller, &id).await?;
    let r = {
        let _guard = state.0.reviews_lock.lock().map_err(lock_error)?;
        // Re-read under the lock: two reviewers at once see each other's vote.
        let mut r = state
            .store()
            .review(caller.tenant(), &id)?
            .ok_or(ApiError::NotFound)?;
        if r.status != "pending" {
            return Err(closed(&r.status));
        }
        let groups: Vec<String> =
            serde_json::from_value(r.body["approver_groups"].clone()).unwrap_or_default();
        if !groups.is_empty() && !caller.key.groups.iter().any(|g| groups.contains(g)) {
            return Err(ApiError::Forbidden("review"));
        }
        if r.body["requested_by_key_id"] == json!(caller.key.id) {
            return Err(ApiError::Unprocessable {
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
            let approvals = r.body["approvals"].as_array().cloned().unwrap_or_default();
            if approvals
                .iter()
                .any(|a| a["key_id"] == json!(caller.key.id))
            {
                return Err(ApiError::Conflict(
                    "this key has already approved this review".into(),
                ));
            }
            let mut approvals = approvals;
            approvals.push(vote);
            let needed = r.body["min_approvals"].as_u64().unwrap_or(1);
            if approvals.len() as u64 >= needed {
                r.status = "approved".into();
                r.body["resolved_ms"] = json!(state.now_ms());
            }
            r.body["approvals"] = Value::Array(approvals);
        } else {
            r.status = "rejected".into();
            r.body["rejection"] = vote;
            r.body["resolved_ms"] = json!(state.now_ms());
        }
        state.store().put_review(&r)?;
        r
    };
    if r.status != "pending" {
        state
            .record(
                caller.tenant(),
                EntryKind::ReviewResolved,
                json!({"review": view(&r), "by_key_id": caller.key.id}),
            )
            .await?;
    }
    Ok(Json(view(&r)))
}

/// `POST /v1/reviews/{id}/approve` with `{"comment": …}`.
pub async fn approve(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    bytes: Bytes,
) -> Result<Json<Value>, ApiError> {
    resolve(state, caller, id, bytes, true).await
}

/// `POST /v1/reviews/{id}/reject` with `{"comment": …}`.
pub async fn reject(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    bytes: Bytes,
) -> Result<Json<Value>, ApiError> {
    resolve(state, caller, id, bytes, false).await
}

/// `?timeout=SECONDS`.
#[derive(Debug, Deserialize)]
pub struct WaitQuery {
    /// Seconds to wait at most (default 30, at most 60).
    #[serde(default)]
    pub timeout: Option<u64>,
}

/// `GET /v1/decisions/{id}/wait?timeout=30`: long-polls until the decision's review is
/// resolved (or the timeout passes), then answers its state.
pub async fn wait(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(q): Query<WaitQuery>,
) -> Result<Json<Value>, ApiError> {
    let entry = crate::native::decision_entry(&state, caller.tenant(), &id)?;
    let Some(review_id) = entry.body["review_id"].as_str().map(str::to_owned) else {
        return Ok(Json(json!({
            "decision_id": id,
            "status": entry.body["verdict"]["status"],
            "review": null,
        })));
    };
    let timeout = Duration::from_secs(q.timeout.unwrap_or(30).min(MAX_WAIT_S));
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let r = state
            .store()
            .review(caller.tenant(), &review_id)?
            .ok_or(ApiError::NotFound)?;
        let r = state.refresh(r).await?;
        if r.status != "pending" || tokio::time::Instant::now() >= deadline {
            return Ok(Json(json!({
                "decision_id": id,
                "status": entry.body["verdict"]["status"],
                "review": view(&r),
                "resolved": r.status != "pending",
            })));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
