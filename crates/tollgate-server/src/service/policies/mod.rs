//! Policies: which compiled versions a request runs against (resolution, compiled
//! once per text and version), what a verdict amounts to (`Reported`), and the
//! lifecycle (`lifecycle.rs`: publish, activate, roll back, default, diff, shadow
//! switch; `candidates.rs`: candidate reports and replay).

mod candidates;
mod lifecycle;

pub(crate) use candidates::Replay;
pub use lifecycle::ReportQuery;
pub use lifecycle::{DiffQuery, TenantQuery};
pub(crate) use lifecycle::{Publish, ShadowSwitch, VersionRef};

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};
use tollgate_core::{
    CompiledPolicy, DecideInput, DecisionRequest, Gate, MemoryBuckets, Mode, PolicyBinding,
    PolicyError, PolicyFormat, Status, Verdict, compile_policy, csc_default, evaluate_with_history,
};
use tollgate_ledger::{Entry, EntryKind};
use tollgate_store::{PolicyActivation, PolicyRecord};

use crate::clock::rfc3339;
use crate::service::Error;
use crate::service::admin::{target_tenant, target_tenant_view};
use crate::service::auth::Caller;
use crate::service::{DecisionService, Written, lock_error};

/// Environments a policy can be active in (an API key's environment).
const ENVIRONMENTS: [&str; 2] = ["live", "test"];

/// Most decisions a replay or a report reads.
const MAX_SCAN: usize = 100_000;

fn environment(e: Option<&str>) -> Result<String, Error> {
    match e.unwrap_or("live") {
        env @ ("live" | "test") => Ok(env.to_owned()),
        _ => Err(Error::field(
            &["body", "environment"],
            "must be live or test",
            "value_error",
        )),
    }
}

fn format_of(text: &str, format: Option<&str>) -> Result<PolicyFormat, Error> {
    match format {
        None => Ok(PolicyFormat::detect(text)),
        Some(f) => PolicyFormat::from_extension(f).ok_or_else(|| {
            Error::field(
                &["body", "format"],
                "must be yaml, toml or json",
                "value_error",
            )
        }),
    }
}

/// A stored version, `None` when it does not exist (including numbers beyond what the
/// store can hold, which cannot name a version).
fn stored_version(
    state: &DecisionService,
    tenant: &str,
    id: &str,
    version: u64,
) -> Result<Option<PolicyRecord>, Error> {
    if i64::try_from(version).is_err() {
        return Ok(None);
    }
    Ok(state.store().policy_version(tenant, id, version)?)
}

fn text_sha256(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

fn invalid_policy(e: &PolicyError) -> Error {
    Error::Unprocessable {
        code: "invalid_policy",
        message: format!("the policy does not compile: {e}"),
    }
}

/// What a family reports: for a request that asked for shadow or dry run, the
/// would-be outcome; otherwise the verdict that applies (under a tenant-wide shadow
/// switch that is ALLOW, with the would-be outcome under `shadow`).
#[derive(Debug)]
pub struct Reported<'a> {
    /// Status reported.
    pub status: Status,
    /// Gate reported.
    pub gate: Gate,
    /// Reason codes reported.
    pub reason_codes: &'a [String],
    /// Explanation reported.
    pub explanation: &'a str,
    /// Throttle delay, when the outcome is a throttle block.
    pub retry_after_ms: Option<u64>,
}

impl<'a> Reported<'a> {
    /// The outcome that applies to the caller.
    pub fn applied(v: &'a Verdict) -> Self {
        Self {
            status: v.status,
            gate: v.gate,
            reason_codes: &v.reason_codes,
            explanation: &v.explanation,
            retry_after_ms: v.retry_after_ms,
        }
    }

    /// The would-be outcome when there is one, else the applied one.
    pub fn would_be(v: &'a Verdict) -> Self {
        match &v.would_be {
            Some(w) => Self {
                status: w.status,
                gate: w.gate,
                reason_codes: &w.reason_codes,
                explanation: &w.explanation,
                retry_after_ms: w.retry_after_ms,
            },
            None => Self::applied(v),
        }
    }
}

/// What a verdict amounts to: the would-be outcome in shadow modes, as JSON (the
/// candidate reports and replays compare these).
pub(crate) fn effective(v: &Verdict) -> Value {
    let r = Reported::would_be(v);
    json!({
        "status": r.status.as_str(),
        "gate": r.gate.as_str(),
        "reason_codes": r.reason_codes,
        "explanation": r.explanation,
    })
}

/// Compiles a stored version (for replays and candidates).
pub(crate) fn compile_record(record: &PolicyRecord) -> Result<Arc<CompiledPolicy>, PolicyError> {
    let compiled = compile_policy(&record.text, PolicyFormat::detect(&record.text))?;
    let version = u32::try_from(record.version).unwrap_or(u32::MAX);
    Ok(Arc::new(compiled.with_version(version)))
}

/// Stored policy versions compiled so far, by (text SHA-256, version). Compiling is
/// pure, so one cache serves every server in the process.
type CompiledCache =
    std::sync::Mutex<std::collections::HashMap<(String, u64), Arc<tollgate_core::CompiledPolicy>>>;

/// The policies of one decision.
#[derive(Debug, Default)]
pub(crate) struct Resolved {
    pub(crate) bindings: Vec<PolicyBinding>,
    /// (index into `bindings`, the candidate version run beside it).
    pub(crate) candidates: Vec<(usize, Arc<tollgate_core::CompiledPolicy>)>,
}

impl Resolved {
    /// Whether a policy the request runs against asks for execution grants on every
    /// enforce-mode ALLOW (`grants: true`).
    pub(crate) fn grants(&self) -> bool {
        self.bindings.iter().any(|b| match b {
            tollgate_core::PolicyBinding::Found(p) => p.document().grants,
            _ => false,
        })
    }
}

impl DecisionService {
    /// The policies a request names, resolved to compiled versions: the built-in
    /// `csc-default`, or versions stored for the tenant (`id` = the version active for
    /// the caller's environment; `id@N` = version N). No refs = the environment's
    /// default policy, else `csc-default`. Anything else fails closed (not found).
    /// Also the candidates running beside the active versions.
    pub(crate) fn resolve_policies(
        &self,
        tenant: &str,
        environment: &str,
        refs: &[String],
    ) -> Result<Resolved, Error> {
        let builtin = csc_default().map_err(Error::internal)?;
        // Read only when a stored policy is named: the common built-in path asks the
        // store nothing more than the default-policy lookup.
        let mut activations: Option<Vec<tollgate_store::PolicyActivation>> = None;
        let mut out = Resolved::default();
        let mut active = |id: &str, out: &mut Resolved| -> Result<(), Error> {
            let activations = match &mut activations {
                Some(a) => a,
                None => activations.insert(self.store().policy_activations(tenant, environment)?),
            };
            let Some(a) = activations.iter().find(|a| a.policy_id == id) else {
                out.bindings.push(PolicyBinding::NotFound(id.to_owned()));
                return Ok(());
            };
            out.bindings
                .push(self.stored_policy(tenant, id, a.version)?);
            if let Some(c) = a.candidate
                && let Some(p) = self.stored_policy_version(tenant, id, c)?
            {
                out.candidates.push((out.bindings.len() - 1, p));
            }
            Ok(())
        };
        if refs.is_empty() {
            match self.store().active_policy(tenant, environment)? {
                Some((id, _)) => active(&id, &mut out)?,
                None => out.bindings.push(PolicyBinding::Found(builtin)),
            }
            return Ok(out);
        }
        for r in refs {
            match r.split_once('@') {
                None if r == builtin.id() => {
                    out.bindings
                        .push(PolicyBinding::Found(Arc::clone(&builtin)));
                }
                None => active(r, &mut out)?,
                Some((id, v)) => match v.parse::<u64>() {
                    Ok(v) => {
                        let b = self.stored_policy(tenant, id, v)?;
                        let b = match b {
                            PolicyBinding::NotFound(_) => PolicyBinding::NotFound(r.clone()),
                            found => found,
                        };
                        out.bindings.push(b);
                    }
                    Err(_) => out.bindings.push(PolicyBinding::NotFound(r.clone())),
                },
            }
        }
        Ok(out)
    }

    /// A stored policy version as a binding: not found when missing or not compilable.
    fn stored_policy(&self, tenant: &str, id: &str, version: u64) -> Result<PolicyBinding, Error> {
        Ok(match self.stored_policy_version(tenant, id, version)? {
            Some(p) => PolicyBinding::Found(p),
            None => PolicyBinding::NotFound(format!("{id}@{version}")),
        })
    }

    /// A stored policy version (or the built-in `csc-default`), compiled once per text
    /// and version and cached; `None` when missing or not compilable.
    pub(crate) fn stored_policy_version(
        &self,
        tenant: &str,
        id: &str,
        version: u64,
    ) -> Result<Option<Arc<tollgate_core::CompiledPolicy>>, Error> {
        let builtin = csc_default().map_err(Error::internal)?;
        if id == builtin.id() && version == u64::from(builtin.version()) {
            return Ok(Some(builtin));
        }
        // A number the store cannot hold names no version (and must not be a 500).
        if i64::try_from(version).is_err() {
            return Ok(None);
        }
        let Some(record) = self.store().policy_version(tenant, id, version)? else {
            return Ok(None);
        };
        static COMPILED: std::sync::LazyLock<CompiledCache> =
            std::sync::LazyLock::new(Default::default);
        let slot = (record.text_hash.clone(), record.version);
        if let Some(p) = COMPILED.lock().map_err(lock_error)?.get(&slot) {
            return Ok(Some(Arc::clone(p)));
        }
        let Ok(compiled) = compile_record(&record) else {
            tracing::error!(tenant, policy = %id, version, "a stored policy does not compile");
            return Ok(None);
        };
        COMPILED
            .lock()
            .map_err(lock_error)?
            .insert(slot, Arc::clone(&compiled));
        Ok(Some(compiled))
    }
}
