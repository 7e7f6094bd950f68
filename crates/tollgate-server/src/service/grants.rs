//! Execution grants (docs/protocol.md): an ALLOW in enforce mode carries a compact JWS
//! (EdDSA, signed with the server key) binding tenant, decision id, the SHA-256 of the
//! canonical action (`actor`, `action`, `context`), an expiry and a unique id. The
//! service that finally acts verifies it offline against `/.well-known/jwks.json` and
//! may consume it once through `POST /v1/grants/consume`.

use ed25519_dalek::pkcs8::EncodePrivateKey as _;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tollgate_store::IdempotencyClaim;

use crate::service::auth::{Caller, random_id};
use crate::service::{DecisionService, Error};

/// Lifetime of a grant, in seconds.
pub const GRANT_TTL_S: i64 = 60;

/// The claims of a grant.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GrantClaims {
    /// `tollgate`.
    pub iss: String,
    /// The tenant.
    pub sub: String,
    /// Unique grant id (`grt_…`).
    pub jti: String,
    /// The decision that allowed the action.
    pub decision_id: String,
    /// Hex SHA-256 of RFC 8785 `{actor, action, context}`.
    pub action_digest: String,
    /// Issued at, Unix seconds.
    pub iat: i64,
    /// Expires at, Unix seconds.
    pub exp: i64,
}

fn invalid(message: impl Into<String>) -> Error {
    Error::Unprocessable {
        code: "invalid_grant",
        message: message.into(),
    }
}

impl DecisionService {
    /// Signs a grant for an allowed decision.
    pub(crate) fn issue_grant(
        &self,
        tenant: &str,
        decision_id: &str,
        action_digest: &str,
    ) -> Result<(String, String), Error> {
        let now_s = self.now_ms().div_euclid(1000);
        let claims = GrantClaims {
            iss: "tollgate".into(),
            sub: tenant.to_owned(),
            jti: random_id("grt")?,
            decision_id: decision_id.to_owned(),
            action_digest: action_digest.to_owned(),
            iat: now_s,
            exp: now_s + GRANT_TTL_S,
        };
        let key = self.server_key();
        let der = key.signing_key().to_pkcs8_der().map_err(Error::internal)?;
        crate::jwt::install();
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(key.kid.clone());
        header.typ = Some("JWT".into());
        let token =
            jsonwebtoken::encode(&header, &claims, &EncodingKey::from_ed_der(der.as_bytes()))
                .map_err(Error::internal)?;
        Ok((token, claims.jti))
    }

    /// Verifies a grant's signature (against every published key), expiry and tenant.
    pub fn verify_grant(&self, token: &str, tenant: &str) -> Result<GrantClaims, Error> {
        crate::jwt::install();
        let header = jsonwebtoken::decode_header(token)
            .map_err(|e| invalid(format!("malformed grant: {e}")))?;
        if header.alg != Algorithm::EdDSA {
            return Err(invalid("a grant must be signed with EdDSA"));
        }
        let jwks = self.jwks();
        let jwk = jwks
            .keys
            .iter()
            .find(|k| Some(k.kid.as_str()) == header.kid.as_deref())
            .ok_or_else(|| invalid("the grant names no key of this server"))?;
        let key = DecodingKey::from_ed_components(&jwk.x).map_err(Error::internal)?;
        let mut validation = Validation::new(Algorithm::EdDSA);
        // Expiry is checked below against the server's clock.
        validation.validate_exp = false;
        validation.required_spec_claims.clear();
        validation.set_issuer(&["tollgate"]);
        let claims = jsonwebtoken::decode::<GrantClaims>(token, &key, &validation)
            .map_err(|e| invalid(format!("the grant does not verify: {e}")))?
            .claims;
        if claims.exp * 1000 <= self.now_ms() {
            return Err(invalid("the grant has expired"));
        }
        if claims.sub != tenant {
            // Another tenant's grant is unknown here.
            return Err(invalid("the grant does not verify: unknown grant"));
        }
        Ok(claims)
    }
}

/// `POST /v1/grants/consume`: a grant, and optionally the action about to run.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConsumeGrant {
    grant: String,
    /// The action about to run (`actor`, `action`, `context`); when given, it must be
    /// the authorised one.
    #[serde(default)]
    actor: Option<serde_json::Map<String, Value>>,
    #[serde(default)]
    action: Option<serde_json::Map<String, Value>>,
    #[serde(default)]
    context: Option<serde_json::Map<String, Value>>,
}

impl DecisionService {
    /// Verifies a grant and marks it used (single use).
    pub fn consume_grant(&self, caller: &Caller, req: ConsumeGrant) -> Result<Value, Error> {
        caller.require("decide")?;
        let tenant = caller.tenant().to_owned();
        let claims = self.verify_grant(&req.grant, &tenant)?;
        if req.action.is_some() {
            let request = tollgate_core::DecisionRequest {
                tenant: tenant.clone(),
                actor: req.actor.unwrap_or_default(),
                action: req.action.unwrap_or_default(),
                context: req.context.unwrap_or_default(),
                ..Default::default()
            };
            let digest = tollgate_core::digest::action_digest(&request).map_err(Error::internal)?;
            if hex::encode(digest) != claims.action_digest {
                return Err(invalid(
                    "the action differs from the one the grant authorises",
                ));
            }
        }
        let key = format!("grant:{}", claims.jti);
        let answer = json!({
            "valid": true,
            "decision_id": claims.decision_id,
            "action_digest": claims.action_digest,
            "jti": claims.jti,
            "expires_at": crate::clock::rfc3339(claims.exp * 1000),
        });
        match self
            .store()
            .claim(&tenant, &key, &claims.jti, self.now_ms())?
        {
            IdempotencyClaim::New => {
                self.store().complete(&tenant, &key, &answer)?;
                Ok(answer)
            }
            _ => Err(Error::Conflict("this grant has already been used".into())),
        }
    }
}
