//! The engine and the SQLite ledger in-process (feature `embedded`), behind the same
//! [`DecisionPoint`] trait as the HTTP client: for agents that want no server.
//!
//! Verdicts are the engine's (`tollgate-core`, policy `csc-default` unless others are
//! added), recorded durably in a hash-chained SQLite ledger (`tollgate-store`) before
//! they are answered, signed with a key kept in the data directory, and provable
//! with the same dossiers and checks as the server's; an ALLOW in enforce mode
//! carries an execution grant like the server's. What the server adds around the
//! engine — API keys, quotas, idempotency records, reviews, grant consumption, the
//! adaptive bias's outcome history — is not here.
//!
//! ```
//! use tollgate_client::embedded::Embedded;
//! use tollgate_client::{DecisionPoint, DecisionRequest, verify};
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! let dir = tempfile::tempdir().unwrap();
//! let tollgate = Embedded::open(dir.path()).unwrap();
//! let request = DecisionRequest::new("OPEN_POSITION")
//!     .signal("volatility", 0.05)
//!     .signal("confidence", 0.95);
//! let decision = tollgate.enforce(&request).await.unwrap();
//! let jwks = tollgate.jwks();
//! verify::decision_signature(&decision, &jwks).unwrap();
//! let dossier = tollgate.dossier(&decision.decision_id).await.unwrap();
//! verify::dossier_of(&decision, &dossier, &jwks).unwrap();
//! # });
//! ```

use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::{Signer as _, SigningKey};
use serde_json::{Map, Value, json};
use tollgate_core::{
    CompiledPolicy, DecideInput, MemoryBuckets, Override, OverrideScope, PolicyBinding,
    PolicyFormat, UnixMillis, compile_policy, csc_default, evaluate,
};
use tollgate_ledger::{EntryDraft, EntryKind, Jwk, Jwks, NoteSigner, NoteVerifier, Verified};
use tollgate_store::{LedgerStore, SqliteConfig, SqliteStore, keyfile};

use crate::decision::Decision;
use crate::error::{Blocked, Error, Failure};
use crate::point::DecisionPoint;
use crate::request::DecisionRequest;
use crate::verify::DossierDocument;

/// The signing key file in the data directory.
pub const KEY_FILE: &str = "signing-key.pem";
/// The signed-note name of the key.
pub const KEY_NAME: &str = "tollgate";
/// Lifetime of an execution grant, in seconds.
pub const GRANT_TTL_S: i64 = 60;

/// How to open an [`Embedded`] decision point.
#[derive(Clone, Debug)]
pub struct EmbeddedConfig {
    /// Data directory: `tollgate.db` and `signing-key.pem`.
    pub data_dir: PathBuf,
    /// The tenant every decision is recorded under (default `default`).
    pub tenant: String,
    /// The environment reported in verdicts (default `live`).
    pub environment: String,
}

impl EmbeddedConfig {
    /// Defaults for `dir`.
    pub fn in_dir(dir: impl AsRef<Path>) -> Self {
        EmbeddedConfig {
            data_dir: dir.as_ref().to_owned(),
            tenant: "default".to_owned(),
            environment: "live".to_owned(),
        }
    }
}

#[derive(Debug)]
struct Inner {
    config: EmbeddedConfig,
    store: SqliteStore,
    key: SigningKey,
    kid: String,
    verifier: NoteVerifier,
    policies: Mutex<BTreeMap<String, Arc<CompiledPolicy>>>,
    overrides: Mutex<Vec<Override>>,
    // INVARIANT: reading the buckets, deciding and applying the new TATs happen under
    // this one lock, so two decisions cannot take the same token.
    buckets: Mutex<MemoryBuckets>,
}

/// The engine and ledger in-process. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Embedded {
    inner: Arc<Inner>,
}

fn ledger_down(e: impl std::fmt::Display) -> Error {
    Blocked::fail_closed(Failure::Ledger(e.to_string())).into()
}

fn config_error(e: impl std::fmt::Display) -> Error {
    Error::Config(e.to_string())
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

fn rfc3339(ms: i64) -> String {
    let t = UNIX_EPOCH + std::time::Duration::from_millis(u64::try_from(ms).unwrap_or(0));
    humantime::format_rfc3339_millis(t).to_string()
}

fn random_id(prefix: &str) -> Result<String, Error> {
    let mut bytes = [0u8; 12];
    getrandom::fill(&mut bytes).map_err(|e| Error::Config(format!("no randomness: {e}")))?;
    Ok(format!(
        "{prefix}_{}",
        bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
    ))
}

impl Embedded {
    /// Opens (or creates) `dir` with the defaults.
    pub fn open(dir: impl AsRef<Path>) -> Result<Embedded, Error> {
        Embedded::open_with(EmbeddedConfig::in_dir(dir))
    }

    /// Opens (or creates) a data directory.
    pub fn open_with(config: EmbeddedConfig) -> Result<Embedded, Error> {
        std::fs::create_dir_all(&config.data_dir).map_err(config_error)?;
        let (key, _) =
            keyfile::load_or_create(&config.data_dir.join(KEY_FILE)).map_err(config_error)?;
        let signer = NoteSigner::new(KEY_NAME, key.clone()).map_err(config_error)?;
        let verifier = signer.verifier();
        let mut sqlite = SqliteConfig::in_dir(&config.data_dir);
        sqlite.signer = Some(signer);
        let store = SqliteStore::open(sqlite).map_err(config_error)?;
        let builtin = csc_default().map_err(config_error)?;
        let mut policies = BTreeMap::new();
        policies.insert(builtin.id().to_owned(), builtin);
        Ok(Embedded {
            inner: Arc::new(Inner {
                kid: tollgate_ledger::thumbprint(&key.verifying_key()),
                config,
                store,
                key,
                verifier,
                policies: Mutex::new(policies),
                overrides: Mutex::new(Vec::new()),
                buckets: Mutex::new(MemoryBuckets::new()),
            }),
        })
    }

    /// Adds (or replaces) a policy, written as YAML, referable by its id.
    pub fn add_policy_yaml(&self, text: &str) -> Result<String, Error> {
        let policy = compile_policy(text, PolicyFormat::Yaml).map_err(config_error)?;
        let id = policy.id().to_owned();
        lock(&self.inner.policies).insert(id.clone(), Arc::new(policy));
        Ok(id)
    }

    /// Engages a kill switch on every action of `action_type` (recorded in the
    /// ledger); returns its id.
    pub async fn block_action_type(
        &self,
        action_type: &str,
        reason: &str,
    ) -> Result<String, Error> {
        let o = Override {
            id: random_id("ovr")?,
            scope: OverrideScope::ActionType(action_type.to_owned()),
            reason: reason.to_owned(),
        };
        let body = json!({"override": serde_json::to_value(&o).map_err(config_error)?});
        self.append(EntryKind::OverrideSet, body).await?;
        let id = o.id.clone();
        lock(&self.inner.overrides).push(o);
        Ok(id)
    }

    /// Clears a kill switch (recorded in the ledger).
    pub async fn clear_override(&self, id: &str) -> Result<(), Error> {
        self.append(EntryKind::OverrideCleared, json!({"override_id": id}))
            .await?;
        lock(&self.inner.overrides).retain(|o| o.id != id);
        Ok(())
    }

    /// The public key as a JWKS.
    pub fn jwks(&self) -> Jwks {
        Jwks {
            keys: vec![Jwk::from_key(&self.inner.key.verifying_key())],
        }
    }

    /// Verifies the whole ledger offline: every entry's hash and chain link, and
    /// every checkpoint's signature and Merkle root (what `tollgate audit verify`
    /// checks).
    pub fn verify_ledger(&self) -> Result<Verified, Error> {
        let trusted = [self.inner.verifier.clone()];
        self.inner
            .store
            .verify(&self.inner.config.tenant, &trusted)
            .map_err(ledger_down)?
            .map_err(|e| Error::Verify(crate::verify::VerifyError::Ledger(e.to_string())))
    }

    /// A decision's dossier, with a checkpoint issued now.
    pub async fn dossier(&self, decision_id: &str) -> Result<DossierDocument, Error> {
        let store = &self.inner.store;
        let tenant = &self.inner.config.tenant;
        let seq = store
            .decision_seq(tenant, decision_id)
            .map_err(ledger_down)?
            .ok_or(Error::NotFound)?;
        let entry = store
            .entry(tenant, seq)
            .map_err(ledger_down)?
            .ok_or(Error::NotFound)?;
        let checkpoint = store
            .issue_checkpoint(tenant, &rfc3339(now_ms()))
            .await
            .map_err(ledger_down)?;
        let proof = store
            .inclusion_proof(tenant, seq, checkpoint.checkpoint.size)
            .map_err(ledger_down)?;
        let dossier = tollgate_ledger::Dossier {
            entry,
            inclusion_proof: proof,
            checkpoint: checkpoint.to_text().map_err(ledger_down)?,
            verifier_keys: vec![self.inner.verifier.to_vkey()],
            jwks: Some(self.jwks()),
        };
        let raw = serde_json::to_value(&dossier).map_err(config_error)?;
        Ok(DossierDocument {
            proof: dossier,
            raw,
        })
    }

    async fn append(
        &self,
        kind: EntryKind,
        body: Value,
    ) -> Result<tollgate_store::Appended, Error> {
        let draft = EntryDraft {
            tenant: self.inner.config.tenant.clone(),
            time: rfc3339(now_ms()),
            kind,
            body,
        };
        self.inner.store.submit(draft).await.map_err(ledger_down)
    }

    fn resolve(&self, refs: &[String]) -> Vec<PolicyBinding> {
        let policies = lock(&self.inner.policies);
        if refs.is_empty() {
            return policies
                .get(tollgate_core::policy::CSC_DEFAULT_ID)
                .map(|p| vec![PolicyBinding::Found(Arc::clone(p))])
                .unwrap_or_else(|| vec![PolicyBinding::NotFound("csc-default".to_owned())]);
        }
        refs.iter()
            .map(|r| {
                let (id, version) = match r.split_once('@') {
                    Some((id, v)) => (id, Some(v)),
                    None => (r.as_str(), None),
                };
                match policies.get(id) {
                    Some(p) if version.is_none_or(|v| v == p.version().to_string()) => {
                        PolicyBinding::Found(Arc::clone(p))
                    }
                    _ => PolicyBinding::NotFound(r.clone()),
                }
            })
            .collect()
    }

    /// An execution grant for an allowed action, as the server issues them: an
    /// EdDSA compact JWS valid for 60 s.
    fn grant(
        &self,
        decision_id: &str,
        request: &DecisionRequest,
        now: i64,
    ) -> Result<String, Error> {
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let iat = now.div_euclid(1000);
        let header = json!({"alg": "EdDSA", "kid": self.inner.kid, "typ": "JWT"});
        let claims = crate::verify::GrantClaims {
            iss: "tollgate".to_owned(),
            sub: self.inner.config.tenant.clone(),
            jti: random_id("grt")?,
            decision_id: decision_id.to_owned(),
            action_digest: crate::verify::action_digest(request)?,
            iat,
            exp: iat + GRANT_TTL_S,
        };
        let signing_input = format!(
            "{}.{}",
            b64.encode(serde_json::to_vec(&header).map_err(config_error)?),
            b64.encode(serde_json::to_vec(&claims).map_err(config_error)?)
        );
        let signature = self.inner.key.sign(signing_input.as_bytes());
        Ok(format!(
            "{signing_input}.{}",
            b64.encode(signature.to_bytes())
        ))
    }

    async fn decide_now(&self, request: &DecisionRequest) -> Result<Decision, Error> {
        let started = std::time::Instant::now();
        let now = now_ms();
        let core_request = tollgate_core::DecisionRequest {
            tenant: self.inner.config.tenant.clone(),
            actor: request.actor.clone(),
            action: request.action.clone(),
            context: request.context.clone(),
            signals: request.signals.clone(),
            intent: request.intent.clone(),
            source: request.source.clone(),
            mode: request.mode,
            adaptive: request.adaptive,
        };
        let policies = self.resolve(&request.policy_refs);
        let overrides = lock(&self.inner.overrides).clone();
        let input = DecideInput {
            request: &core_request,
            policies: &policies,
            now: UnixMillis(now),
            overrides: &overrides,
            outcomes: &[],
            approval: None,
            tenant_shadow: false,
        };
        let evaluation = evaluate(&input).map_err(|e| Error::Invalid {
            code: "validation_error".to_owned(),
            message: "validation failed".to_owned(),
            detail: serde_json::to_value(&e.errors).unwrap_or(Value::Null),
        })?;
        let decision = {
            let mut buckets = lock(&self.inner.buckets);
            let tats = buckets.read(evaluation.demands());
            let decision = evaluation.finish(&tats);
            buckets.apply(&decision.bucket_updates);
            decision
        };
        let verdict = decision.verdict;
        let decision_id = random_id("dec")?;
        let decided_at = rfc3339(now);
        let received = serde_json::to_value(request).map_err(config_error)?;
        let mut body = Map::new();
        body.insert("decision_id".into(), json!(decision_id));
        body.insert("family".into(), json!("embedded"));
        body.insert("received".into(), received);
        body.insert(
            "request".into(),
            serde_json::to_value(&core_request).map_err(config_error)?,
        );
        body.insert("policy_refs".into(), json!(request.policy_refs));
        body.insert(
            "verdict".into(),
            serde_json::to_value(&verdict).map_err(config_error)?,
        );
        body.insert("environment".into(), json!(self.inner.config.environment));
        let appended = self
            .append(EntryKind::Decision, Value::Object(body))
            .await?;
        // The same response shape as the server's native API.
        let mut out = json!({
            "decision_id": decision_id,
            "status": verdict.status.as_str(),
            "gate": verdict.gate.as_str(),
            "reason_codes": verdict.reason_codes,
            "explanation": verdict.explanation,
            "ledger": {
                "seq": appended.seq,
                "entry_hash": appended.entry_hash.map(|h| h.to_hex()),
                "status": if appended.is_sequenced() { "sequenced" } else { "pending" },
            },
            "latency_ms": u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            "environment": self.inner.config.environment,
            "decided_at": decided_at,
            "mode": verdict.mode,
            "idempotency_replayed": false,
        });
        if let Some(p) = verdict.policies.first() {
            out["policy"] = json!({"id": p.id, "version": p.version, "text_sha256": p.text_sha256});
        }
        if let Some(ms) = verdict.retry_after_ms {
            out["retry_after_ms"] = json!(ms);
        }
        if let Some(b) = verdict.adaptive_bias {
            out["adaptive_bias"] = json!(b);
        }
        if let Some(w) = &verdict.would_be {
            out["shadow"] = json!({
                "would_be": w.status.as_str(),
                "gate": w.gate.as_str(),
                "reason_codes": w.reason_codes,
                "explanation": w.explanation,
            });
        }
        if verdict.status == tollgate_core::verdict::Status::Allow
            && verdict.mode == tollgate_core::Mode::Enforce
        {
            out["grant"] = json!(self.grant(&decision_id, request, now)?);
        }
        let bytes = tollgate_ledger::canonical_json(&out).map_err(config_error)?;
        out["signature"] = json!({
            "algorithm": "Ed25519",
            "key_id": self.inner.kid,
            "value": B64.encode(self.inner.key.sign(&bytes).to_bytes()),
        });
        Decision::from_json(out).map_err(config_error)
    }
}

impl DecisionPoint for Embedded {
    fn decide(
        &self,
        request: &DecisionRequest,
    ) -> impl Future<Output = Result<Decision, Error>> + Send {
        self.decide_now(request)
    }
}
