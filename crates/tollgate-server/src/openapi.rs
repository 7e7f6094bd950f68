//! The OpenAPI document of the native and admin API, generated with `utoipa` from the
//! schema types and path declarations below, served at `/openapi.json` and checked in
//! as `crates/tollgate-server/openapi.json` (a test fails when they differ; regenerate
//! with `UPDATE_OPENAPI=1 cargo test -p tollgate-server --test openapi`).
//!
//! The handlers build their JSON by hand; these types describe it. A test drives every
//! documented route through the router, and schema fuzzing checks responses against
//! this document.

#![allow(
    dead_code,
    reason = "schema and path declarations are read by the macros"
)]

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

/// A decision request.
#[derive(Debug, Serialize, ToSchema)]
pub struct DecisionRequestDoc {
    /// Must be the key's tenant when given.
    tenant_id: Option<String>,
    /// Who acts (`id`, `type`, anything else).
    #[schema(value_type = Option<Object>)]
    actor: Option<Value>,
    /// What is proposed; `type` is required.
    action: ActionDoc,
    /// Free-form context.
    #[schema(value_type = Option<Object>)]
    context: Option<Value>,
    /// Numeric signals, in [0, 1] unless the policy declares another range.
    signals: Option<BTreeMap<String, f64>>,
    /// Free text, recorded, never interpreted.
    intent: Option<String>,
    /// Who is asking.
    source: Option<String>,
    /// `id` (active version) or `id@N`; empty = the tenant default.
    policy_refs: Option<Vec<String>>,
    /// `enforce` (default), `shadow` or `dry_run`.
    mode: Option<ModeDoc>,
    /// Opt in to the adaptive bias.
    adaptive: Option<bool>,
    /// Idempotency key (the `Idempotency-Key` header wins).
    idempotency_key: Option<String>,
    /// Correlation id.
    correlation_id: Option<String>,
}

/// The proposed action.
#[derive(Debug, Serialize, ToSchema)]
pub struct ActionDoc {
    /// The action type, 1 to 256 bytes.
    #[serde(rename = "type")]
    kind: String,
}

/// Decision mode.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ModeDoc {
    /// Binding.
    Enforce,
    /// Recorded, not enforced.
    Shadow,
    /// Recorded, not enforced (caller testing).
    DryRun,
}

/// A verdict status.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum StatusDoc {
    /// May run.
    Allow,
    /// Must not run.
    Block,
    /// Escalated to a person.
    Escalate,
    /// A person must review it.
    ReviewRequired,
}

/// A gate.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum GateDoc {
    /// Every gate passed.
    Permit,
    /// Rules or survival score.
    Policy,
    /// Signal bands.
    Reality,
    /// Token buckets.
    Throttle,
    /// Kill switch.
    Override,
    /// Human approval.
    Review,
}

/// A signed verdict.
#[derive(Debug, Serialize, ToSchema)]
pub struct VerdictDoc {
    /// `dec_…`.
    decision_id: String,
    /// The verdict that applies (ALLOW in shadow modes).
    status: StatusDoc,
    /// The gate that decided.
    gate: GateDoc,
    /// Reason codes.
    reason_codes: Vec<String>,
    /// For a person.
    explanation: String,
    /// Throttle blocks: milliseconds until a token is available.
    retry_after_ms: Option<u64>,
    /// The policy evaluated first.
    #[schema(value_type = Option<Object>)]
    policy: Option<Value>,
    /// Every policy evaluated, when more than one.
    #[schema(value_type = Option<Vec<Object>>)]
    policies: Option<Vec<Value>>,
    /// The adaptive bias, when the layer ran.
    adaptive_bias: Option<f64>,
    /// Shadow modes: the would-be verdict.
    #[schema(value_type = Option<Object>)]
    shadow: Option<Value>,
    /// ESCALATE / REVIEW_REQUIRED: the review asked for.
    #[schema(value_type = Option<Object>)]
    review: Option<Value>,
    /// Ledger position.
    ledger: LedgerRefDoc,
    /// Where the dossier is.
    dossier_url: String,
    /// Time to a durable verdict (absent when read back).
    latency_ms: Option<u64>,
    /// `live` or `test`.
    environment: String,
    /// RFC 3339.
    decided_at: String,
    /// The mode applied.
    mode: ModeDoc,
    /// Whether this is a replayed answer.
    idempotency_replayed: bool,
    /// Read back: the recorded request.
    #[schema(value_type = Option<Object>)]
    request: Option<Value>,
    /// ESCALATE / REVIEW_REQUIRED in enforce mode: the review opened.
    review_id: Option<String>,
    /// ALLOW in enforce mode: a compact JWS (EdDSA) execution grant, valid 60 s.
    grant: Option<String>,
    /// Ed25519 over RFC 8785 of the body without `signature`.
    signature: SignatureDoc,
}

/// Ledger position. In cluster mode a verdict is answered once its entry is durable,
/// before the sequencer places it: then `status` is `pending` and both are `null`.
#[derive(Debug, Serialize, ToSchema)]
pub struct LedgerRefDoc {
    /// Sequence number in the tenant's ledger; `null` while pending.
    seq: Option<u64>,
    /// Entry hash, hex; `null` while pending.
    entry_hash: Option<String>,
    /// `sequenced` or `pending`.
    status: String,
}

/// A signature.
#[derive(Debug, Serialize, ToSchema)]
pub struct SignatureDoc {
    /// `Ed25519`.
    algorithm: String,
    /// The JWKS `kid`.
    key_id: String,
    /// Base64.
    value: String,
}

/// An error.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDoc {
    /// Stable code.
    error: String,
    /// For a person.
    message: String,
    /// The request id.
    request_id: String,
    /// Field-level problems (422).
    detail: Option<Vec<FieldErrorDoc>>,
    /// Quota errors: when the quota resets.
    resets_at: Option<String>,
    /// Rate limits: seconds to wait.
    retry_after_s: Option<u64>,
}

/// One field-level problem.
#[derive(Debug, Serialize, ToSchema)]
pub struct FieldErrorDoc {
    /// Where.
    loc: Vec<String>,
    /// What.
    msg: String,
    /// Kind.
    #[serde(rename = "type")]
    kind: String,
}

/// An outcome report (signed bytes: RFC 8785 of the eight signed fields).
#[derive(Debug, Serialize, ToSchema)]
pub struct OutcomeReportDoc {
    /// The decision.
    stimulus_id: String,
    /// In [-1, 1].
    magnitude: f64,
    /// In [0, 1].
    confidence: f64,
    /// Base64 Ed25519 signature.
    signature: String,
    /// The registered source.
    source: String,
    /// The decision's action type.
    context_type: String,
    /// RFC 3339.
    outcome_observed_at: String,
    /// Default true.
    is_final: Option<bool>,
    /// Default false.
    is_correction: Option<bool>,
    /// Must match the registered key when given.
    public_key: Option<String>,
}

/// An accepted outcome.
#[derive(Debug, Serialize, ToSchema)]
pub struct OutcomeAcceptedDoc {
    /// `accepted`.
    status: String,
    /// `out_…`.
    outcome_id: String,
    /// `live` or `test`.
    environment: String,
    /// True.
    accepted: bool,
}

/// Free-form JSON object.
#[derive(Debug, Serialize, ToSchema)]
#[schema(value_type = Object)]
pub struct ObjectDoc(Value);

#[derive(Debug, OpenApi)]
#[openapi(
    info(title = "Tollgate", description = "Decision firewall for AI agents: native and admin API."),
    paths(
        decide, get_decision, dossier, outcomes, health, jwks, signing_keys, metrics,
        put_tenant, list_tenants, create_key, list_keys, revoke_key, add_source,
        list_sources, set_override, list_overrides, clear_override, audit_verify,
        audit_export, audit_consistency, audit_checkpoint, openapi_json,
        wait_decision, list_reviews, get_review, approve_review, reject_review, consume_grant,
        publish_policy, list_policies, show_policy, policy_version, diff_policy, activate_policy,
        default_policy, set_candidate, clear_candidate, candidate_report, replay_policy,
        tenant_shadow,
    ),
    components(schemas(
        DecisionRequestDoc, VerdictDoc, ErrorDoc, OutcomeReportDoc, OutcomeAcceptedDoc,
        ObjectDoc,
    )),
    modifiers(&Bearer),
)]
struct ApiDoc;

#[derive(Debug)]
struct Bearer;

impl Modify for Bearer {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        if let Some(components) = openapi.components.as_mut() {
            components.add_security_scheme(
                "bearer",
                SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
            );
        }
    }
}

/// The OpenAPI document as JSON.
pub fn document() -> Value {
    serde_json::to_value(ApiDoc::openapi()).unwrap_or(Value::Null)
}

/// `GET /openapi.json`.
pub async fn serve() -> axum::Json<Value> {
    axum::Json(document())
}

#[utoipa::path(post, path = "/v1/decisions", tag = "decisions", request_body = DecisionRequestDoc,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe for 24 h")),
    responses(
        (status = 200, description = "A signed verdict, recorded before it was sent", body = VerdictDoc),
        (status = 401, body = ErrorDoc), (status = 403, body = ErrorDoc), (status = 413, body = ErrorDoc),
        (status = 422, description = "Validation failure or idempotency_key_reuse", body = ErrorDoc),
        (status = 429, description = "Quota or rate limit", body = ErrorDoc),
        (status = 503, description = "Ledger unavailable, overloaded or timed out: no verdict", body = ErrorDoc),
    ), security(("bearer" = [])))]
fn decide() {}

#[utoipa::path(get, path = "/v1/decisions/{id}", tag = "decisions", params(("id" = String, Path)),
    responses((status = 200, body = VerdictDoc),
        (status = 202, description = "Recorded (durable) but pending integration into the ledger (cluster mode); retry after `Retry-After`", body = ErrorDoc),
        (status = 401, body = ErrorDoc), (status = 404, body = ErrorDoc)),
    security(("bearer" = [])))]
fn get_decision() {}

#[utoipa::path(get, path = "/v1/dossiers/{id}", tag = "decisions", params(("id" = String, Path)),
    responses((status = 200, description = "Request, verdict, trace, ledger entry, inclusion proof, checkpoint", body = ObjectDoc),
        (status = 202, description = "Recorded (durable) but pending integration into the ledger (cluster mode); retry after `Retry-After`", body = ErrorDoc),
        (status = 401, body = ErrorDoc), (status = 404, body = ErrorDoc)),
    security(("bearer" = [])))]
fn dossier() {}

#[utoipa::path(post, path = "/v1/outcomes", tag = "outcomes", request_body = OutcomeReportDoc,
    responses((status = 201, body = OutcomeAcceptedDoc), (status = 401, body = ErrorDoc), (status = 403, body = ErrorDoc),
        (status = 422, description = "Rejected: the reason says which integrity rule failed", body = ErrorDoc)),
    security(("bearer" = [])))]
fn outcomes() {}

#[utoipa::path(get, path = "/v1/health", tag = "public", responses((status = 200, body = ObjectDoc)))]
fn health() {}

#[utoipa::path(get, path = "/.well-known/jwks.json", tag = "public", responses((status = 200, body = ObjectDoc)))]
fn jwks() {}

#[utoipa::path(get, path = "/v1/signing-keys", tag = "public", responses((status = 200, body = ObjectDoc)))]
fn signing_keys() {}

#[utoipa::path(get, path = "/metrics", tag = "public", responses((status = 200, description = "Prometheus text", body = String, content_type = "text/plain")))]
fn metrics() {}

#[utoipa::path(get, path = "/openapi.json", tag = "public", responses((status = 200, body = ObjectDoc)))]
fn openapi_json() {}

#[utoipa::path(post, path = "/v1/admin/tenants", tag = "admin", request_body = ObjectDoc,
    responses((status = 200, body = ObjectDoc), (status = 201, body = ObjectDoc), (status = 401, body = ErrorDoc), (status = 403, body = ErrorDoc), (status = 422, body = ErrorDoc)),
    security(("bearer" = [])))]
fn put_tenant() {}

#[utoipa::path(get, path = "/v1/admin/tenants", tag = "admin",
    responses((status = 200, body = ObjectDoc), (status = 401, body = ErrorDoc), (status = 403, body = ErrorDoc)),
    security(("bearer" = [])))]
fn list_tenants() {}

#[utoipa::path(post, path = "/v1/admin/keys", tag = "admin", request_body = ObjectDoc,
    responses((status = 201, description = "The secret is in this response only", body = ObjectDoc), (status = 401, body = ErrorDoc),
        (status = 403, body = ErrorDoc), (status = 404, body = ErrorDoc), (status = 409, body = ErrorDoc), (status = 422, body = ErrorDoc)),
    security(("bearer" = [])))]
fn create_key() {}

#[utoipa::path(get, path = "/v1/admin/keys", tag = "admin", params(("tenant" = Option<String>, Query)),
    responses((status = 200, body = ObjectDoc), (status = 401, body = ErrorDoc), (status = 403, body = ErrorDoc), (status = 404, body = ErrorDoc)),
    security(("bearer" = [])))]
fn list_keys() {}

#[utoipa::path(post, path = "/v1/admin/keys/{id}/revoke", tag = "admin", params(("id" = String, Path)),
    responses((status = 200, body = ObjectDoc), (status = 401, body = ErrorDoc), (status = 403, body = ErrorDoc), (status = 404, body = ErrorDoc)),
    security(("bearer" = [])))]
fn revoke_key() {}

#[utoipa::path(post, path = "/v1/admin/sources", tag = "admin", request_body = ObjectDoc,
    responses((status = 201, body = ObjectDoc), (status = 401, body = ErrorDoc), (status = 403, body = ErrorDoc), (status = 422, body = ErrorDoc)),
    security(("bearer" = [])))]
fn add_source() {}

#[utoipa::path(get, path = "/v1/admin/sources", tag = "admin",
    responses((status = 200, body = ObjectDoc), (status = 401, body = ErrorDoc), (status = 403, body = ErrorDoc)),
    security(("bearer" = [])))]
fn list_sources() {}

#[utoipa::path(post, path = "/v1/admin/overrides", tag = "admin", request_body = ObjectDoc,
    responses((status = 201, body = ObjectDoc), (status = 401, body = ErrorDoc), (status = 403, body = ErrorDoc), (status = 422, body = ErrorDoc)),
    security(("bearer" = [])))]
fn set_override() {}

#[utoipa::path(get, path = "/v1/admin/overrides", tag = "admin",
    responses((status = 200, body = ObjectDoc), (status = 401, body = ErrorDoc), (status = 403, body = ErrorDoc)),
    security(("bearer" = [])))]
fn list_overrides() {}

#[utoipa::path(delete, path = "/v1/admin/overrides/{id}", tag = "admin", params(("id" = String, Path)),
    responses((status = 200, body = ObjectDoc), (status = 401, body = ErrorDoc), (status = 403, body = ErrorDoc), (status = 404, body = ErrorDoc)),
    security(("bearer" = [])))]
fn clear_override() {}

#[utoipa::path(get, path = "/v1/audit/verify", tag = "audit",
    responses((status = 200, body = ObjectDoc), (status = 401, body = ErrorDoc), (status = 403, body = ErrorDoc)),
    security(("bearer" = [])))]
fn audit_verify() {}

#[utoipa::path(get, path = "/v1/audit/export", tag = "audit",
    responses((status = 200, description = "JSON Lines", body = String, content_type = "application/jsonl"), (status = 401, body = ErrorDoc), (status = 403, body = ErrorDoc)),
    security(("bearer" = [])))]
fn audit_export() {}

#[utoipa::path(get, path = "/v1/audit/consistency", tag = "audit", params(("from" = u64, Query), ("to" = u64, Query)),
    responses((status = 200, body = ObjectDoc), (status = 400, body = ErrorDoc), (status = 401, body = ErrorDoc), (status = 422, body = ErrorDoc)),
    security(("bearer" = [])))]
fn audit_consistency() {}

#[utoipa::path(get, path = "/v1/audit/checkpoint", tag = "audit",
    responses((status = 200, description = "C2SP signed-note checkpoint", body = String, content_type = "text/plain"), (status = 401, body = ErrorDoc)),
    security(("bearer" = [])))]
fn audit_checkpoint() {}

#[utoipa::path(get, path = "/v1/decisions/{id}/wait", tag = "reviews",
    params(("id" = String, Path), ("timeout" = Option<u64>, Query, description = "Seconds, at most 60")),
    responses((status = 200, description = "The decision's review once resolved, or as it is at the timeout", body = ObjectDoc),
        (status = 400, description = "Malformed query", body = ErrorDoc), (status = 401, body = ErrorDoc), (status = 404, body = ErrorDoc)),
    security(("bearer" = [])))]
fn wait_decision() {}

#[utoipa::path(get, path = "/v1/reviews", tag = "reviews", params(("status" = Option<String>, Query)),
    responses((status = 200, body = ObjectDoc), (status = 400, description = "Malformed query", body = ErrorDoc), (status = 401, body = ErrorDoc), (status = 403, body = ErrorDoc)),
    security(("bearer" = [])))]
fn list_reviews() {}

#[utoipa::path(get, path = "/v1/reviews/{id}", tag = "reviews", params(("id" = String, Path)),
    responses((status = 200, body = ObjectDoc), (status = 401, body = ErrorDoc), (status = 403, body = ErrorDoc), (status = 404, body = ErrorDoc)),
    security(("bearer" = [])))]
fn get_review() {}

#[utoipa::path(post, path = "/v1/reviews/{id}/approve", tag = "reviews", params(("id" = String, Path)), request_body = ObjectDoc,
    responses((status = 200, body = ObjectDoc), (status = 401, body = ErrorDoc), (status = 403, body = ErrorDoc), (status = 404, body = ErrorDoc),
        (status = 409, description = "Already approved by this key, or no longer pending", body = ErrorDoc), (status = 422, body = ErrorDoc)),
    security(("bearer" = [])))]
fn approve_review() {}

#[utoipa::path(post, path = "/v1/reviews/{id}/reject", tag = "reviews", params(("id" = String, Path)), request_body = ObjectDoc,
    responses((status = 200, body = ObjectDoc), (status = 401, body = ErrorDoc), (status = 403, body = ErrorDoc), (status = 404, body = ErrorDoc),
        (status = 409, body = ErrorDoc), (status = 422, body = ErrorDoc)),
    security(("bearer" = [])))]
fn reject_review() {}

#[utoipa::path(post, path = "/v1/grants/consume", tag = "grants", request_body = ObjectDoc,
    responses((status = 200, description = "Valid, now used", body = ObjectDoc), (status = 401, body = ErrorDoc), (status = 403, body = ErrorDoc),
        (status = 409, description = "Already used", body = ErrorDoc), (status = 422, description = "Invalid, expired, or another action", body = ErrorDoc)),
    security(("bearer" = [])))]
fn consume_grant() {}

#[utoipa::path(post, path = "/v1/admin/policies", tag = "policies", request_body = ObjectDoc,
    description = "Publishes `{text, format?, activate?, environment?}` as a new immutable version (`policy_published`); the newest version's text again publishes nothing (200).",
    responses((status = 201, body = ObjectDoc), (status = 200, description = "Unchanged text: nothing published", body = ObjectDoc),
        (status = 401, body = ErrorDoc), (status = 403, body = ErrorDoc), (status = 409, body = ErrorDoc), (status = 422, body = ErrorDoc)),
    security(("bearer" = [])))]
fn publish_policy() {}

#[utoipa::path(get, path = "/v1/admin/policies", tag = "policies", params(("tenant" = Option<String>, Query)),
    responses((status = 200, body = ObjectDoc), (status = 401, body = ErrorDoc), (status = 403, body = ErrorDoc), (status = 404, body = ErrorDoc)),
    security(("bearer" = [])))]
fn list_policies() {}

#[utoipa::path(get, path = "/v1/admin/policies/{id}", tag = "policies", params(("id" = String, Path), ("tenant" = Option<String>, Query)),
    responses((status = 200, body = ObjectDoc), (status = 401, body = ErrorDoc), (status = 403, body = ErrorDoc), (status = 404, body = ErrorDoc)),
    security(("bearer" = [])))]
fn show_policy() {}

#[utoipa::path(get, path = "/v1/admin/policies/{id}/versions/{version}", tag = "policies",
    params(("id" = String, Path), ("version" = u64, Path), ("tenant" = Option<String>, Query)),
    responses((status = 200, body = ObjectDoc), (status = 400, body = ErrorDoc), (status = 401, body = ErrorDoc), (status = 403, body = ErrorDoc), (status = 404, body = ErrorDoc)),
    security(("bearer" = [])))]
fn policy_version() {}

#[utoipa::path(get, path = "/v1/admin/policies/{id}/diff", tag = "policies",
    params(("id" = String, Path), ("from" = u64, Query), ("to" = u64, Query), ("tenant" = Option<String>, Query)),
    responses((status = 200, body = ObjectDoc), (status = 400, body = ErrorDoc), (status = 401, body = ErrorDoc), (status = 403, body = ErrorDoc), (status = 404, body = ErrorDoc)),
    security(("bearer" = [])))]
fn diff_policy() {}

#[utoipa::path(post, path = "/v1/admin/policies/{id}/activate", tag = "policies", params(("id" = String, Path)), request_body = ObjectDoc,
    description = "`{version, environment?}`: makes the version active (`policy_activated`); an older version is a roll back.",
    responses((status = 200, body = ObjectDoc), (status = 401, body = ErrorDoc), (status = 403, body = ErrorDoc), (status = 404, body = ErrorDoc), (status = 422, body = ErrorDoc)),
    security(("bearer" = [])))]
fn activate_policy() {}

#[utoipa::path(post, path = "/v1/admin/policies/{id}/default", tag = "policies",
    params(("id" = String, Path), ("environment" = Option<String>, Query), ("tenant" = Option<String>, Query)),
    responses((status = 200, body = ObjectDoc), (status = 401, body = ErrorDoc), (status = 403, body = ErrorDoc), (status = 404, body = ErrorDoc), (status = 422, body = ErrorDoc)),
    security(("bearer" = [])))]
fn default_policy() {}

#[utoipa::path(post, path = "/v1/admin/policies/{id}/candidate", tag = "policies", params(("id" = String, Path)), request_body = ObjectDoc,
    description = "`{version, environment?}`: evaluates the version beside the active one on live traffic; its verdicts are recorded, never enforced.",
    responses((status = 200, body = ObjectDoc), (status = 401, body = ErrorDoc), (status = 403, body = ErrorDoc), (status = 404, body = ErrorDoc), (status = 422, body = ErrorDoc)),
    security(("bearer" = [])))]
fn set_candidate() {}

#[utoipa::path(delete, path = "/v1/admin/policies/{id}/candidate", tag = "policies",
    params(("id" = String, Path), ("environment" = Option<String>, Query), ("tenant" = Option<String>, Query)),
    responses((status = 204, description = "Stopped"), (status = 401, body = ErrorDoc), (status = 403, body = ErrorDoc), (status = 404, body = ErrorDoc), (status = 422, body = ErrorDoc)),
    security(("bearer" = [])))]
fn clear_candidate() {}

#[utoipa::path(get, path = "/v1/admin/policies/{id}/candidate/report", tag = "policies",
    params(("id" = String, Path), ("environment" = Option<String>, Query), ("limit" = Option<usize>, Query), ("tenant" = Option<String>, Query)),
    responses((status = 200, description = "How many verdicts the candidate would have changed, and which", body = ObjectDoc),
        (status = 400, body = ErrorDoc), (status = 401, body = ErrorDoc), (status = 403, body = ErrorDoc), (status = 404, body = ErrorDoc), (status = 422, body = ErrorDoc)),
    security(("bearer" = [])))]
fn candidate_report() {}

#[utoipa::path(post, path = "/v1/admin/policies/{id}/replay", tag = "policies", params(("id" = String, Path)), request_body = ObjectDoc,
    description = "`{version, since?, until?, limit?}`: evaluates the version over recorded decisions and reports the flips; touches no live state.",
    responses((status = 200, body = ObjectDoc), (status = 401, body = ErrorDoc), (status = 403, body = ErrorDoc), (status = 404, body = ErrorDoc), (status = 422, body = ErrorDoc)),
    security(("bearer" = [])))]
fn replay_policy() {}

#[utoipa::path(post, path = "/v1/admin/shadow", tag = "policies", request_body = ObjectDoc,
    description = "`{enabled}`: the tenant-wide shadow switch (recorded in the ledger).",
    responses((status = 200, body = ObjectDoc), (status = 401, body = ErrorDoc), (status = 403, body = ErrorDoc), (status = 404, body = ErrorDoc), (status = 422, body = ErrorDoc)),
    security(("bearer" = [])))]
fn tenant_shadow() {}
