//! Candidates and replay: how many verdicts a candidate version running beside the
//! active one would have changed, and a version evaluated over recorded decisions.

use super::lifecycle::activation;
use super::*;

/// Each decision entry of the tenant, in order, up to [`MAX_SCAN`] from the newest.
fn decision_entries(
    state: &DecisionService,
    tenant: &str,
    mut visit: impl FnMut(&Entry) -> Result<(), Error>,
) -> Result<(), Error> {
    let store = state.store();
    let Some(head) = store.head(tenant)? else {
        return Ok(());
    };
    let mut from = head.size.saturating_sub(MAX_SCAN as u64 * 4);
    while from < head.size {
        let to = (from + 1000).min(head.size);
        for e in store.range(tenant, from, to)? {
            if e.kind == EntryKind::Decision {
                visit(&e)?;
            }
        }
        from = to;
    }
    Ok(())
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Replay {
    version: u64,
    /// RFC 3339; entries at or after.
    #[serde(default)]
    since: Option<String>,
    /// RFC 3339; entries before.
    #[serde(default)]
    until: Option<String>,
    #[serde(default)]
    limit: Option<usize>,
    #[serde(default)]
    tenant: Option<String>,
}

/// One replay run's engine state: buckets and history, both starting empty.
#[derive(Default)]
struct Sim {
    buckets: MemoryBuckets,
    history: Vec<tollgate_core::HistoryEvent>,
}

impl Sim {
    fn run(
        &mut self,
        request: &DecisionRequest,
        policies: &[PolicyBinding],
        now: tollgate_core::UnixMillis,
        tenant_shadow: bool,
    ) -> Option<Verdict> {
        let input = DecideInput {
            request,
            policies,
            now,
            overrides: &[],
            outcomes: &[],
            approval: None,
            tenant_shadow,
        };
        let ev = evaluate_with_history(&input, &self.history).ok()?;
        let tats = self.buckets.read(ev.demands());
        let d = ev.finish(&tats);
        self.buckets.apply(&d.bucket_updates);
        self.history.extend(d.history_event);
        Some(d.verdict)
    }
}

/// An RFC 3339 time in Unix milliseconds.
fn time_ms(t: &str) -> Option<i64> {
    humantime::parse_rfc3339_weak(t)
        .ok()
        .and_then(|st| st.duration_since(std::time::UNIX_EPOCH).ok())
        .and_then(|d| i64::try_from(d.as_millis()).ok())
}

impl DecisionService {
    /// since the candidate started would it have changed, and which.
    pub async fn candidate_report(
        &self,
        caller: &Caller,
        id: String,
        q: ReportQuery,
    ) -> Result<Value, Error> {
        let tenant = target_tenant_view(caller, q.tenant.as_deref())?;
        let env = environment(q.environment.as_deref())?;
        let a = activation(self, &tenant, &env, &id)?.ok_or(Error::NotFound)?;
        let (Some(version), Some(since)) = (a.candidate, a.candidate_since_ms) else {
            return Err(Error::NotFound);
        };
        let limit = q.limit.unwrap_or(100);
        let since_time = rfc3339(since);
        let mut evaluated = 0u64;
        let mut changes: BTreeMap<String, u64> = BTreeMap::new();
        let mut changed = Vec::new();
        decision_entries(self, &tenant, |e| {
            if e.time < since_time {
                return Ok(());
            }
            let Some(cands) = e.body.get("candidates").and_then(Value::as_array) else {
                return Ok(());
            };
            for c in cands {
                if c.get("policy_id").and_then(Value::as_str) != Some(id.as_str())
                    || c.get("version").and_then(Value::as_u64) != Some(version)
                {
                    continue;
                }
                evaluated += 1;
                if c.get("changed").and_then(Value::as_bool) == Some(true) {
                    let from = c["active"]["status"].as_str().unwrap_or("?");
                    let to = c["candidate"]["status"].as_str().unwrap_or("?");
                    *changes.entry(format!("{from}->{to}")).or_default() += 1;
                    if changed.len() < limit {
                        changed.push(json!({
                            "decision_id": e.body.get("decision_id"),
                            "seq": e.seq,
                            "time": e.time,
                            "active": c.get("active"),
                            "candidate": c.get("candidate"),
                        }));
                    }
                }
            }
            Ok(())
        })?;
        let total_changed: u64 = changes.values().sum();
        Ok(json!({
            "policy_id": id,
            "active_version": a.version,
            "candidate_version": version,
            "environment": env,
            "since": since_time,
            "evaluated": evaluated,
            "changed": total_changed,
            "changes": changes,
            "decisions": changed,
        }))
    }

    /// the ledger only; touches no live state.
    pub(crate) async fn replay(
        &self,
        caller: &Caller,
        id: String,
        req: Replay,
    ) -> Result<Value, Error> {
        let tenant = target_tenant(caller, req.tenant.as_deref())?;
        let parse_time = |t: &Option<String>, field: &str| -> Result<Option<i64>, Error> {
            t.as_deref()
                .map(|t| {
                    time_ms(t).ok_or_else(|| {
                        Error::field(&["body", field], "must be an RFC 3339 time", "value_error")
                    })
                })
                .transpose()
        };
        let since = parse_time(&req.since, "since")?;
        let until = parse_time(&req.until, "until")?;
        let candidate = self
            .stored_policy_version(&tenant, &id, req.version)?
            .ok_or(Error::NotFound)?;
        let limit = req.limit.unwrap_or(100);
        let mut base = Sim::default();
        let mut new = Sim::default();
        let mut replayed = 0u64;
        let mut reproduced = 0u64;
        let mut changes: BTreeMap<String, u64> = BTreeMap::new();
        let mut flips = Vec::new();
        decision_entries(self, &tenant, |e| {
            let at = time_ms(&e.time).unwrap_or(0);
            if since.is_some_and(|s| at < s) || until.is_some_and(|u| at >= u) {
                return Ok(());
            }
            let (Some(request), Some(recorded)) = (
                e.body
                    .get("request")
                    .and_then(|r| serde_json::from_value::<DecisionRequest>(r.clone()).ok()),
                e.body
                    .get("verdict")
                    .and_then(|v| serde_json::from_value::<Verdict>(v.clone()).ok()),
            ) else {
                return Ok(());
            };
            if !recorded.policies.iter().any(|p| &*p.id == id.as_str()) {
                return Ok(());
            }
            // The policies the decision was taken with, and the same with `id` replaced.
            let mut was = Vec::new();
            let mut will = Vec::new();
            for stamp in &recorded.policies {
                let p = self
                    .stored_policy_version(&tenant, &stamp.id, u64::from(stamp.version))?
                    .map(PolicyBinding::Found)
                    .unwrap_or_else(|| {
                        PolicyBinding::NotFound(format!("{}@{}", stamp.id, stamp.version))
                    });
                if *stamp.id == *id {
                    will.push(PolicyBinding::Found(Arc::clone(&candidate)));
                } else {
                    will.push(p.clone());
                }
                was.push(p);
            }
            let tenant_shadow = recorded.mode != request.mode && request.mode == Mode::Enforce;
            let now = tollgate_core::UnixMillis(at);
            let (Some(b), Some(n)) = (
                base.run(&request, &was, now, tenant_shadow),
                new.run(&request, &will, now, tenant_shadow),
            ) else {
                return Ok(());
            };
            replayed += 1;
            let (rec, b, n) = (effective(&recorded), effective(&b), effective(&n));
            if rec["status"] == b["status"] && rec["reason_codes"] == b["reason_codes"] {
                reproduced += 1;
            }
            if b["status"] != n["status"] {
                let from = b["status"].as_str().unwrap_or("?");
                let to = n["status"].as_str().unwrap_or("?");
                *changes.entry(format!("{from}->{to}")).or_default() += 1;
                if flips.len() < limit {
                    flips.push(json!({
                        "decision_id": e.body.get("decision_id"),
                        "seq": e.seq,
                        "time": e.time,
                        "recorded": rec,
                        "before": b,
                        "after": n,
                    }));
                }
            }
            Ok(())
        })?;
        let flipped: u64 = changes.values().sum();
        Ok(json!({
            "policy_id": id,
            "version": req.version,
            "replayed": replayed,
            "reproduced": reproduced,
            "flipped": flipped,
            "changes": changes,
            "flips": flips,
        }))
    }
}
