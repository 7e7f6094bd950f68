//! The operator API: tenants, API keys, sources, kill switches, the policy lifecycle,
//! human reviews and the audit endpoints. Each path of the HTTP API is written once,
//! here; requests and answers are typed.
//!
//! These calls need a key with the right scope: `admin` for everything but reviews
//! (scope `review`); an admin key of the operator tenant (`default`) may name any
//! tenant where a `tenant` field or argument exists.

use std::collections::BTreeMap;

use reqwest::Method;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

mod notify;
pub use notify::{AddedSink, Delivery, NewSink, RemovedSink, Sink, SinkTest};

use crate::client::{Body, Client, path_segment};
use crate::decision::{Gate, Status};
use crate::error::{Error, Failure};

const TENANTS: &str = "/v1/admin/tenants";
const KEYS: &str = "/v1/admin/keys";
const SOURCES: &str = "/v1/admin/sources";
const OVERRIDES: &str = "/v1/admin/overrides";
const POLICIES: &str = "/v1/admin/policies";
const SHADOW: &str = "/v1/admin/shadow";
const REVIEWS: &str = "/v1/reviews";
const AUDIT_VERIFY: &str = "/v1/audit/verify";
const AUDIT_EXPORT: &str = "/v1/audit/export";
const AUDIT_CONSISTENCY: &str = "/v1/audit/consistency";
const AUDIT_CHECKPOINT: &str = "/v1/audit/checkpoint";

/// A tenant, with its usage this calendar month.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Tenant {
    /// Tenant id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// RFC 3339 creation time.
    #[serde(default)]
    pub created_at: Option<String>,
    /// Decisions per calendar month for live keys (`None`: the server's default).
    #[serde(default)]
    pub monthly_quota: Option<u64>,
    /// Tenant-wide shadow mode.
    #[serde(default)]
    pub shadow: bool,
    /// Decisions metered this calendar month.
    #[serde(default)]
    pub usage_this_month: u64,
}

/// `POST /v1/admin/tenants`: creates a tenant or updates the fields given.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewTenant {
    /// Tenant id (`[A-Za-z0-9_.-]`, at most 64).
    pub id: String,
    /// Display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Decisions per calendar month for live keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monthly_quota: Option<u64>,
    /// Tenant-wide shadow mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shadow: Option<bool>,
}

/// An API key as listed (never its secret).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ApiKey {
    /// Key id (`key_…`).
    pub id: String,
    /// The key's tenant.
    pub tenant: String,
    /// A label.
    #[serde(default)]
    pub name: String,
    /// `live` or `test`.
    pub environment: String,
    /// Scopes: `decide`, `outcomes`, `review`, `admin`.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// Reviewer groups (a review whose rule names approver groups accepts the votes
    /// of keys in one of them).
    #[serde(default)]
    pub groups: Vec<String>,
    /// RFC 3339 creation time.
    #[serde(default)]
    pub created_at: Option<String>,
    /// RFC 3339 expiry, if any.
    #[serde(default)]
    pub expires_at: Option<String>,
    /// RFC 3339 revocation time, if revoked.
    #[serde(default)]
    pub revoked_at: Option<String>,
}

/// A key just created: the only answer that holds its secret.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct CreatedKey {
    /// The key.
    #[serde(flatten)]
    pub key: ApiKey,
    /// The secret, shown this once.
    pub secret: String,
}

/// `POST /v1/admin/keys`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewKey {
    /// Tenant (operator key only; default: the caller's own).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// `live` or `test`.
    pub environment: String,
    /// Scopes: `decide`, `outcomes`, `review`, `admin`.
    pub scopes: Vec<String>,
    /// A label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Seconds until the key expires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_in_s: Option<u64>,
    /// Register this existing secret instead of generating one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    /// Reviewer groups.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
}

impl NewKey {
    /// A key of `environment` with these scopes, for the caller's tenant.
    pub fn new<S: Into<String>>(
        environment: impl Into<String>,
        scopes: impl IntoIterator<Item = S>,
    ) -> NewKey {
        NewKey {
            tenant: None,
            environment: environment.into(),
            scopes: scopes.into_iter().map(Into::into).collect(),
            name: None,
            expires_in_s: None,
            secret: None,
            groups: Vec::new(),
        }
    }
}

/// A source: an Ed25519 key that signs outcome reports.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Source {
    /// Source id.
    pub id: String,
    /// Base64 of the 32-byte public key.
    pub public_key: String,
    /// Outcomes reported so far (in listings).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcomes: Option<u64>,
}

/// `POST /v1/admin/sources`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewSource {
    /// Source id.
    pub id: String,
    /// Base64 of the 32-byte Ed25519 public key, or PEM.
    pub public_key: String,
}

/// What a kill switch covers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OverrideScope {
    /// `tenant`, `actor`, `action_type` or `source`.
    pub scope: String,
    /// The actor id, action type or source (none for `tenant`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

/// An engaged kill switch.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Override {
    /// Override id (`ovr_…`).
    pub id: String,
    /// What it covers.
    pub scope: OverrideScope,
    /// Why (recorded in the ledger and shown in verdicts).
    pub reason: String,
}

/// `POST /v1/admin/overrides`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewOverride {
    /// `tenant`, `actor`, `action_type` or `source`.
    pub scope: String,
    /// The actor id, action type or source (not for `tenant`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// Why.
    pub reason: String,
}

/// A kill switch cleared.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ClearedOverride {
    /// Override id.
    pub id: String,
    /// Always `true`.
    pub cleared: bool,
}

/// `POST /v1/admin/policies`: publishes a policy text as a new version.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublishPolicy {
    /// The policy document.
    pub text: String,
    /// `yaml`, `toml` or `json` (default: detected).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    /// Also make the version active.
    #[serde(default)]
    pub activate: bool,
    /// `live` (default) or `test`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    /// Tenant (operator key only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
}

/// What a publish did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Published {
    /// Policy id (from the document).
    pub policy_id: String,
    /// The version published, or the newest one when the text was unchanged.
    pub version: u64,
    /// Hex SHA-256 of the text.
    pub text_sha256: String,
    /// Whether a new version was published.
    pub published: bool,
    /// Whether the version was made active.
    pub activated: bool,
    /// The environment.
    pub environment: String,
}

/// What an activation did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Activated {
    /// Policy id.
    pub policy_id: String,
    /// The version now active.
    pub version: u64,
    /// The environment.
    pub environment: String,
    /// `false` when the version already was active.
    pub changed: bool,
}

/// A version per environment.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PerEnvironment<T> {
    /// In `live`.
    #[serde(default)]
    pub live: Option<T>,
    /// In `test`.
    #[serde(default)]
    pub test: Option<T>,
}

impl<T> PerEnvironment<T> {
    /// The value in `environment` (`live` or `test`).
    pub fn get(&self, environment: &str) -> Option<&T> {
        match environment {
            "live" => self.live.as_ref(),
            "test" => self.test.as_ref(),
            _ => None,
        }
    }
}

/// A policy in a listing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct PolicySummary {
    /// Policy id.
    pub policy_id: String,
    /// The newest version.
    #[serde(default)]
    pub latest_version: Option<u64>,
    /// How many versions exist.
    pub versions: u64,
    /// The active version per environment.
    #[serde(default)]
    pub active: PerEnvironment<u64>,
    /// The candidate version per environment.
    #[serde(default)]
    pub candidate: PerEnvironment<u64>,
}

/// `GET /v1/admin/policies`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct PolicyList {
    /// Every policy of the tenant.
    pub policies: Vec<PolicySummary>,
    /// The policy requests without `policy_refs` use, per environment.
    #[serde(default)]
    pub default_policy: PerEnvironment<String>,
}

/// One stored version, without its text.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct VersionInfo {
    /// Version number.
    pub version: u64,
    /// Hex SHA-256 of the text.
    pub text_sha256: String,
    /// RFC 3339 publication time.
    #[serde(default)]
    pub created_at: Option<String>,
}

/// `GET /v1/admin/policies/{id}`: a policy's versions and activations.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct PolicyDetail {
    /// Policy id.
    pub policy_id: String,
    /// The newest version.
    #[serde(default)]
    pub latest_version: Option<u64>,
    /// Every version, oldest first.
    pub versions: Vec<VersionInfo>,
    /// The active version per environment.
    #[serde(default)]
    pub active: PerEnvironment<u64>,
    /// The candidate version per environment.
    #[serde(default)]
    pub candidate: PerEnvironment<u64>,
}

/// `GET /v1/admin/policies/{id}/versions/{n}`: one version with its text.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct PolicyVersion {
    /// Policy id.
    pub policy_id: String,
    /// Version number.
    pub version: u64,
    /// Hex SHA-256 of the text.
    pub text_sha256: String,
    /// RFC 3339 publication time.
    #[serde(default)]
    pub created_at: Option<String>,
    /// The policy document.
    pub text: String,
}

/// Rule names that differ between two versions.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct RuleChanges {
    /// Rules only in the newer version.
    #[serde(default)]
    pub added: Vec<String>,
    /// Rules only in the older version.
    #[serde(default)]
    pub removed: Vec<String>,
    /// Rules in both whose definition differs.
    #[serde(default)]
    pub changed: Vec<String>,
}

/// `GET /v1/admin/policies/{id}/diff`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct PolicyDiff {
    /// Policy id.
    pub policy_id: String,
    /// From version.
    pub from: u64,
    /// To version.
    pub to: u64,
    /// Rules added, removed and changed.
    pub rules: RuleChanges,
    /// A unified diff of the texts.
    pub text_diff: String,
}

/// A candidate started.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct CandidateStarted {
    /// Policy id.
    pub policy_id: String,
    /// The candidate version.
    pub candidate: u64,
    /// The environment.
    pub environment: String,
    /// RFC 3339 time the candidate started.
    pub since: String,
}

/// What a verdict amounts to (the would-be outcome in shadow modes).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Outcome {
    /// The status.
    pub status: Status,
    /// The gate.
    pub gate: Gate,
    /// Reason codes.
    #[serde(default)]
    pub reason_codes: Vec<String>,
    /// For a person.
    #[serde(default)]
    pub explanation: String,
}

/// A recorded decision the candidate would have answered differently.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct CandidateChange {
    /// The decision.
    #[serde(default)]
    pub decision_id: Option<String>,
    /// Its ledger sequence number.
    pub seq: u64,
    /// RFC 3339 time of the decision.
    pub time: String,
    /// What the active version answered.
    pub active: Outcome,
    /// What the candidate would have answered.
    pub candidate: Outcome,
}

/// `GET /v1/admin/policies/{id}/candidate/report`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct CandidateReport {
    /// Policy id.
    pub policy_id: String,
    /// The active version.
    pub active_version: u64,
    /// The candidate version.
    pub candidate_version: u64,
    /// The environment.
    pub environment: String,
    /// RFC 3339 time the candidate started.
    pub since: String,
    /// Decisions the candidate was evaluated on.
    pub evaluated: u64,
    /// How many it would have changed.
    pub changed: u64,
    /// Changes by `FROM->TO` status.
    #[serde(default)]
    pub changes: BTreeMap<String, u64>,
    /// The changed decisions (at most the server's limit).
    #[serde(default)]
    pub decisions: Vec<CandidateChange>,
}

/// `POST /v1/admin/policies/{id}/replay`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplayPolicy {
    /// The version to replay.
    pub version: u64,
    /// Only decisions at or after this RFC 3339 time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
    /// Only decisions before this RFC 3339 time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<String>,
    /// Most flips listed (default 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
    /// Tenant (operator key only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
}

/// A recorded decision whose status the replayed version flips.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Flip {
    /// The decision.
    #[serde(default)]
    pub decision_id: Option<String>,
    /// Its ledger sequence number.
    pub seq: u64,
    /// RFC 3339 time of the decision.
    pub time: String,
    /// What was recorded.
    pub recorded: Outcome,
    /// The replay with the versions it was decided with.
    pub before: Outcome,
    /// The replay with the version under test.
    pub after: Outcome,
}

/// What a replay found.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ReplayReport {
    /// Policy id.
    pub policy_id: String,
    /// The version replayed.
    pub version: u64,
    /// Recorded decisions replayed.
    pub replayed: u64,
    /// Of those, how many the replay reproduced as recorded.
    pub reproduced: u64,
    /// How many the version flips.
    pub flipped: u64,
    /// Flips by `FROM->TO` status.
    #[serde(default)]
    pub changes: BTreeMap<String, u64>,
    /// The flips (at most the limit).
    #[serde(default)]
    pub flips: Vec<Flip>,
}

/// Where a review stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReviewStatus {
    /// Waiting for reviewers.
    Pending,
    /// Approved: one matching request may run.
    Approved,
    /// Rejected (final).
    Rejected,
    /// Expired before enough approvals (final).
    Expired,
    /// Approved and used by a request (final).
    Consumed,
    /// A status this SDK does not know.
    #[serde(other)]
    Unknown,
}

impl ReviewStatus {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            ReviewStatus::Pending => "pending",
            ReviewStatus::Approved => "approved",
            ReviewStatus::Rejected => "rejected",
            ReviewStatus::Expired => "expired",
            ReviewStatus::Consumed => "consumed",
            ReviewStatus::Unknown => "unknown",
        }
    }
}

impl std::str::FromStr for ReviewStatus {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        match s {
            "pending" => Ok(ReviewStatus::Pending),
            "approved" => Ok(ReviewStatus::Approved),
            "rejected" => Ok(ReviewStatus::Rejected),
            "expired" => Ok(ReviewStatus::Expired),
            "consumed" => Ok(ReviewStatus::Consumed),
            _ => Err(Error::Config(format!(
                "`{s}` is not a review status (pending, approved, rejected, expired, consumed)"
            ))),
        }
    }
}

/// A reviewer's vote.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Vote {
    /// The reviewer's key id.
    pub key_id: String,
    /// The key's label.
    #[serde(default)]
    pub name: Option<String>,
    /// The comment given.
    #[serde(default)]
    pub comment: Option<String>,
    /// RFC 3339 time of the vote.
    pub at: String,
}

/// A review of an ESCALATE / REVIEW_REQUIRED decision.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Review {
    /// Review id (`rev_…`).
    pub review_id: String,
    /// Where it stands.
    pub status: ReviewStatus,
    /// The decision that opened it.
    #[serde(default)]
    pub decision_id: Option<String>,
    /// The rule that asked for it.
    #[serde(default)]
    pub rule: Option<String>,
    /// The rule's policy.
    #[serde(default)]
    pub policy_id: Option<String>,
    /// Reviewer groups whose keys may vote (none: any key with scope `review`).
    #[serde(default)]
    pub approver_groups: Option<Vec<String>>,
    /// Approvals needed.
    #[serde(default)]
    pub min_approvals: Option<u64>,
    /// Approvals so far.
    #[serde(default)]
    pub approvals: Option<Vec<Vote>>,
    /// The rejection, if rejected.
    #[serde(default)]
    pub rejection: Option<Vote>,
    /// RFC 3339 opening time.
    #[serde(default)]
    pub created_at: Option<String>,
    /// RFC 3339 expiry.
    #[serde(default)]
    pub expires_at: Option<String>,
    /// The decision that used the approval.
    #[serde(default)]
    pub consumed_by: Option<String>,
}

/// The server's check of the caller's tenant ledger (`GET /v1/audit/verify`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct LedgerCheck {
    /// Whether every hash, the chain and every checkpoint verify.
    pub ok: bool,
    /// Entries verified.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entries: Option<u64>,
    /// Hex Merkle root.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root: Option<String>,
    /// Checkpoints verified.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoints: Option<u64>,
    /// When not ok: the first bad sequence number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_bad_seq: Option<u64>,
    /// When not ok: what is wrong there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

/// An RFC 6962 consistency proof between two tree sizes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ConsistencyProof {
    /// Older tree size.
    pub from: u64,
    /// Newer tree size.
    pub to: u64,
    /// Hex hashes.
    pub proof: Vec<String>,
}

#[derive(Deserialize)]
struct Tenants {
    tenants: Vec<Tenant>,
}

#[derive(Deserialize)]
struct Keys {
    keys: Vec<ApiKey>,
}

#[derive(Deserialize)]
struct Sources {
    sources: Vec<Source>,
}

#[derive(Deserialize)]
struct Overrides {
    overrides: Vec<Override>,
}

#[derive(Deserialize)]
struct Reviews {
    reviews: Vec<Review>,
}

#[derive(Serialize)]
struct VersionRef<'a> {
    version: u64,
    environment: &'a str,
}

#[derive(Serialize)]
struct Comment<'a> {
    comment: Option<&'a str>,
}

#[derive(Serialize)]
struct ShadowSwitch {
    enabled: bool,
}

/// A typed answer from a JSON body.
fn decode<T: DeserializeOwned>(body: Value) -> Result<T, Error> {
    serde_json::from_value(body)
        .map_err(|e| Error::Unavailable(Failure::InvalidResponse(e.to_string())))
}

fn encode<T: Serialize>(request: &T) -> Result<Value, Error> {
    serde_json::to_value(request)
        .map_err(|e| Error::Config(format!("the request cannot be encoded: {e}")))
}

/// `?environment=live` or `test`; anything else is refused before it is sent.
fn environment(env: &str) -> Result<&str, Error> {
    match env {
        "live" | "test" => Ok(env),
        _ => Err(Error::Config(format!(
            "`{env}` is not an environment (live or test)"
        ))),
    }
}

fn policy_path(id: &str) -> Result<String, Error> {
    Ok(format!("{POLICIES}/{}", path_segment(id)?))
}

fn review_path(id: &str) -> Result<String, Error> {
    Ok(format!("{REVIEWS}/{}", path_segment(id)?))
}

impl Client {
    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<T, Error> {
        let answer = self.send(method, path, body.as_ref(), None).await?;
        decode(answer.body)
    }

    async fn text(&self, path: &str) -> Result<String, Error> {
        let answer = self
            .send_timed(Method::GET, path, None, None, None, Body::Text)
            .await?;
        match answer.body {
            Value::String(s) => Ok(s),
            Value::Null => Ok(String::new()),
            _ => Err(Error::Unavailable(Failure::InvalidResponse(
                "expected a text body".to_owned(),
            ))),
        }
    }

    /// Creates a tenant or updates the fields given (operator admin key).
    pub async fn put_tenant(&self, tenant: &NewTenant) -> Result<Tenant, Error> {
        self.call(Method::POST, TENANTS, Some(encode(tenant)?))
            .await
    }

    /// Every tenant (operator), else the caller's own.
    pub async fn tenants(&self) -> Result<Vec<Tenant>, Error> {
        let list: Tenants = self.call(Method::GET, TENANTS, None).await?;
        Ok(list.tenants)
    }

    /// Creates an API key; the answer holds its secret, once.
    pub async fn create_key(&self, key: &NewKey) -> Result<CreatedKey, Error> {
        self.call(Method::POST, KEYS, Some(encode(key)?)).await
    }

    /// The keys of the caller's tenant, or of `tenant` (operator).
    pub async fn keys(&self, tenant: Option<&str>) -> Result<Vec<ApiKey>, Error> {
        let path = match tenant {
            Some(t) => format!("{KEYS}?tenant={}", path_segment(t)?),
            None => KEYS.to_owned(),
        };
        let list: Keys = self.call(Method::GET, &path, None).await?;
        Ok(list.keys)
    }

    /// Revokes a key, effective at once (revoking a revoked key changes nothing).
    pub async fn revoke_key(&self, key_id: &str) -> Result<ApiKey, Error> {
        let path = format!("{KEYS}/{}/revoke", path_segment(key_id)?);
        self.call(Method::POST, &path, Some(Value::Object(Default::default())))
            .await
    }

    /// Registers (or replaces) a source's Ed25519 key for outcome reports.
    pub async fn add_source(&self, source: &NewSource) -> Result<Source, Error> {
        self.call(Method::POST, SOURCES, Some(encode(source)?))
            .await
    }

    /// The tenant's sources.
    pub async fn sources(&self) -> Result<Vec<Source>, Error> {
        let list: Sources = self.call(Method::GET, SOURCES, None).await?;
        Ok(list.sources)
    }

    /// Engages a kill switch.
    pub async fn set_override(&self, o: &NewOverride) -> Result<Override, Error> {
        self.call(Method::POST, OVERRIDES, Some(encode(o)?)).await
    }

    /// Clears a kill switch.
    pub async fn clear_override(&self, id: &str) -> Result<ClearedOverride, Error> {
        let path = format!("{OVERRIDES}/{}", path_segment(id)?);
        self.call(Method::DELETE, &path, None).await
    }

    /// The engaged kill switches.
    pub async fn overrides(&self) -> Result<Vec<Override>, Error> {
        let list: Overrides = self.call(Method::GET, OVERRIDES, None).await?;
        Ok(list.overrides)
    }

    /// Publishes a policy text as a new immutable version (nothing when the newest
    /// version has the same text), and optionally activates it.
    pub async fn publish_policy(&self, publish: &PublishPolicy) -> Result<Published, Error> {
        self.call(Method::POST, POLICIES, Some(encode(publish)?))
            .await
    }

    /// Makes a version active in `environment` (an older one = a roll back).
    pub async fn activate_policy(
        &self,
        id: &str,
        version: u64,
        environment_name: &str,
    ) -> Result<Activated, Error> {
        let body = encode(&VersionRef {
            version,
            environment: environment(environment_name)?,
        })?;
        self.call(
            Method::POST,
            &format!("{}/activate", policy_path(id)?),
            Some(body),
        )
        .await
    }

    /// Makes `id` the policy of requests without `policy_refs` in `environment`.
    pub async fn set_default_policy(&self, id: &str, environment_name: &str) -> Result<(), Error> {
        let path = format!(
            "{}/default?environment={}",
            policy_path(id)?,
            environment(environment_name)?
        );
        self.send(Method::POST, &path, None, None).await?;
        Ok(())
    }

    /// Every policy with its versions and what is active.
    pub async fn policies(&self) -> Result<PolicyList, Error> {
        self.call(Method::GET, POLICIES, None).await
    }

    /// One policy's versions and activations.
    pub async fn policy(&self, id: &str) -> Result<PolicyDetail, Error> {
        self.call(Method::GET, &policy_path(id)?, None).await
    }

    /// One version with its text.
    pub async fn policy_version(&self, id: &str, version: u64) -> Result<PolicyVersion, Error> {
        let path = format!("{}/versions/{version}", policy_path(id)?);
        self.call(Method::GET, &path, None).await
    }

    /// Rules added, removed and changed from one version to another, and the text diff.
    pub async fn policy_diff(&self, id: &str, from: u64, to: u64) -> Result<PolicyDiff, Error> {
        let path = format!("{}/diff?from={from}&to={to}", policy_path(id)?);
        self.call(Method::GET, &path, None).await
    }

    /// Runs a version as a candidate beside the active one on live traffic.
    pub async fn start_candidate(
        &self,
        id: &str,
        version: u64,
        environment_name: &str,
    ) -> Result<CandidateStarted, Error> {
        let body = encode(&VersionRef {
            version,
            environment: environment(environment_name)?,
        })?;
        let path = format!("{}/candidate", policy_path(id)?);
        self.call(Method::POST, &path, Some(body)).await
    }

    /// Stops the running candidate (`Err(Error::NotFound)` when none runs).
    pub async fn stop_candidate(&self, id: &str, environment_name: &str) -> Result<(), Error> {
        let path = format!(
            "{}/candidate?environment={}",
            policy_path(id)?,
            environment(environment_name)?
        );
        self.send(Method::DELETE, &path, None, None).await?;
        Ok(())
    }

    /// How many verdicts the running candidate would have changed, and which.
    pub async fn candidate_report(
        &self,
        id: &str,
        environment_name: &str,
    ) -> Result<CandidateReport, Error> {
        let path = format!(
            "{}/candidate/report?environment={}",
            policy_path(id)?,
            environment(environment_name)?
        );
        self.call(Method::GET, &path, None).await
    }

    /// Evaluates a version over the tenant's recorded decisions and reports the flips.
    pub async fn replay_policy(
        &self,
        id: &str,
        replay: &ReplayPolicy,
    ) -> Result<ReplayReport, Error> {
        let path = format!("{}/replay", policy_path(id)?);
        self.call(Method::POST, &path, Some(encode(replay)?)).await
    }

    /// Switches the tenant-wide shadow mode (every gate runs, nothing is blocked).
    pub async fn set_tenant_shadow(&self, enabled: bool) -> Result<(), Error> {
        let body = encode(&ShadowSwitch { enabled })?;
        self.send(Method::POST, SHADOW, Some(&body), None).await?;
        Ok(())
    }

    /// The tenant's reviews, all or those with `status` (key with scope `review`).
    pub async fn reviews(&self, status: Option<ReviewStatus>) -> Result<Vec<Review>, Error> {
        let path = match status {
            Some(s) => format!("{REVIEWS}?status={}", s.as_str()),
            None => REVIEWS.to_owned(),
        };
        let list: Reviews = self.call(Method::GET, &path, None).await?;
        Ok(list.reviews)
    }

    /// One review.
    pub async fn review(&self, id: &str) -> Result<Review, Error> {
        self.call(Method::GET, &review_path(id)?, None).await
    }

    /// Approves a review (a key with scope `review`, in one of its approver groups,
    /// not the key that asked for the decision).
    pub async fn approve_review(&self, id: &str, comment: Option<&str>) -> Result<Review, Error> {
        let path = format!("{}/approve", review_path(id)?);
        self.call(Method::POST, &path, Some(encode(&Comment { comment })?))
            .await
    }

    /// Rejects a review (final).
    pub async fn reject_review(&self, id: &str, comment: Option<&str>) -> Result<Review, Error> {
        let path = format!("{}/reject", review_path(id)?);
        self.call(Method::POST, &path, Some(encode(&Comment { comment })?))
            .await
    }

    /// The server verifies the caller's tenant ledger now.
    pub async fn audit_verify(&self) -> Result<LedgerCheck, Error> {
        self.call(Method::GET, AUDIT_VERIFY, None).await
    }

    /// The caller's tenant ledger as JSON Lines, one entry a line.
    pub async fn audit_export(&self) -> Result<String, Error> {
        self.text(AUDIT_EXPORT).await
    }

    /// A consistency proof from tree size `from` to `to`.
    pub async fn audit_consistency(&self, from: u64, to: u64) -> Result<ConsistencyProof, Error> {
        let path = format!("{AUDIT_CONSISTENCY}?from={from}&to={to}");
        self.call(Method::GET, &path, None).await
    }

    /// The latest signed checkpoint (a signed note), issued now if none covers the head.
    pub async fn audit_checkpoint(&self) -> Result<String, Error> {
        self.text(AUDIT_CHECKPOINT).await
    }
}
