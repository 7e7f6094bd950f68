//! API keys: generation, hashing, lookup, constant-time comparison, scopes.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tollgate_store::ApiKeyRecord;

use crate::service::DecisionService;
use crate::service::Error;

/// Scopes a key may hold.
///
/// `read` sees everything of its tenant that `review` and `admin` keys can read (the
/// GET endpoints, the console's pages) and changes nothing.
pub const SCOPES: [&str; 5] = ["decide", "outcomes", "review", "admin", "read"];

/// A freshly generated key: the secret is shown once and never stored.
#[derive(Debug)]
pub struct NewKey {
    /// The full secret (`tg_test_…`).
    pub secret: String,
    /// The record to store (hash only).
    pub record: ApiKeyRecord,
}

/// Hex SHA-256 of a key secret: what is stored and looked up.
pub fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// `n` random bytes from the operating system.
pub fn random_bytes<const N: usize>() -> Result<[u8; N], Error> {
    let mut buf = [0u8; N];
    getrandom::fill(&mut buf).map_err(Error::internal)?;
    Ok(buf)
}

/// A random id with a prefix (`dec_…`, `key_…`): 128 bits, hex.
pub fn random_id(prefix: &str) -> Result<String, Error> {
    Ok(format!("{prefix}_{}", hex::encode(random_bytes::<16>()?)))
}

/// A time-ordered id with a prefix, shaped like `random_id`'s (32 hex digits): 48 bits
/// of milliseconds since the epoch, then 80 random bits (the layout of UUIDv7). Ids
/// made later sort later, so the decision index grows at its end: with random ids each
/// decision dirtied a random index page, and the WAL carried about 4 KiB per decision
/// for it (and the checkpoint wrote those pages back).
pub fn time_ordered_id(prefix: &str, now_ms: i64) -> Result<String, Error> {
    let ms = u64::try_from(now_ms).unwrap_or(0) & 0xffff_ffff_ffff;
    Ok(format!(
        "{prefix}_{ms:012x}{}",
        hex::encode(random_bytes::<10>()?)
    ))
}

/// Generates a key for `tenant`: 192 random bits, `tg_<environment>_` prefix.
pub fn generate(
    tenant: &str,
    environment: &str,
    scopes: Vec<String>,
    name: &str,
    expires_ms: Option<i64>,
    now_ms: i64,
) -> Result<NewKey, Error> {
    let secret = format!("tg_{environment}_{}", hex::encode(random_bytes::<24>()?));
    let record = record_for(
        &secret,
        tenant,
        environment,
        scopes,
        name,
        expires_ms,
        now_ms,
    )?;
    Ok(NewKey { secret, record })
}

/// The record of a key whose secret the operator supplies (`dealgo_sk_test_…`).
pub fn record_for(
    secret: &str,
    tenant: &str,
    environment: &str,
    scopes: Vec<String>,
    name: &str,
    expires_ms: Option<i64>,
    now_ms: i64,
) -> Result<ApiKeyRecord, Error> {
    if !matches!(environment, "live" | "test") {
        return Err(Error::field(
            &["environment"],
            "environment must be `live` or `test`",
            "enum",
        ));
    }
    if let Some(bad) = scopes.iter().find(|s| !SCOPES.contains(&s.as_str())) {
        return Err(Error::field(
            &["scopes"],
            format!("unknown scope `{bad}` (known: {})", SCOPES.join(", ")),
            "enum",
        ));
    }
    if secret.len() < 20 || secret.len() > 256 || secret.chars().any(char::is_whitespace) {
        return Err(Error::field(
            &["secret"],
            "a key must be 20 to 256 characters without spaces",
            "value_error",
        ));
    }
    Ok(ApiKeyRecord {
        id: random_id("key")?,
        tenant: tenant.to_owned(),
        hash: hash_secret(secret),
        scopes,
        environment: environment.to_owned(),
        created_ms: now_ms,
        revoked_ms: None,
        expires_ms,
        name: name.to_owned(),
        groups: Vec::new(),
    })
}

/// The caller's key, authenticated.
#[derive(Clone, Debug)]
pub struct Caller {
    /// The key's record.
    pub key: ApiKeyRecord,
}

impl Caller {
    /// The key's tenant.
    pub fn tenant(&self) -> &str {
        &self.key.tenant
    }

    /// `live` or `test`.
    pub fn environment(&self) -> &str {
        &self.key.environment
    }

    /// Fails with 403 unless the key has `scope` (`admin` implies every scope).
    pub fn require(&self, scope: &'static str) -> Result<(), Error> {
        if self.key.scopes.iter().any(|s| s == scope || s == "admin") {
            Ok(())
        } else {
            Err(Error::Forbidden(scope))
        }
    }

    /// Whether the key may change what `scope` governs (`admin` implies every scope;
    /// `read` implies none).
    pub fn can(&self, scope: &str) -> bool {
        self.key.scopes.iter().any(|s| s == scope || s == "admin")
    }

    /// Fails with 403 unless the key may *read* what `scope` governs: it has `scope`,
    /// `admin` or `read`. For GET endpoints only; anything that changes state uses
    /// [`Caller::require`].
    pub fn require_view(&self, scope: &'static str) -> Result<(), Error> {
        if self.can(scope) || self.key.scopes.iter().any(|s| s == "read") {
            Ok(())
        } else {
            Err(Error::Forbidden(scope))
        }
    }
}

impl DecisionService {
    /// Looks up and checks a key secret: exists, not revoked, not expired.
    pub fn authenticate(&self, secret: &str) -> Result<Caller, Error> {
        let hash = hash_secret(secret);
        let record = self.key_by_hash(&hash)?.ok_or(Error::Unauthorized)?;
        // The lookup is by hash; compare once more in constant time so no code path
        // compares key material with an early exit.
        if !bool::from(record.hash.as_bytes().ct_eq(hash.as_bytes())) {
            return Err(Error::Unauthorized);
        }
        let now = self.now_ms();
        if record.revoked_ms.is_some_and(|t| t <= now)
            || record.expires_ms.is_some_and(|t| t <= now)
        {
            return Err(Error::Unauthorized);
        }
        Ok(Caller { key: record })
    }
}
