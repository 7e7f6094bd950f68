//! Publication forms of Ed25519 public keys: JWK / JWKS (RFC 8037) and PEM (RFC 8410).

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ed25519_dalek::VerifyingKey;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::LedgerError;

/// DER prefix of an Ed25519 SubjectPublicKeyInfo (RFC 8410): SEQUENCE { SEQUENCE {
/// OID 1.3.101.112 }, BIT STRING (0 unused bits) }, followed by the 32 key bytes.
const SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];

/// One JSON Web Key for an Ed25519 public key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwk {
    /// Always `OKP`.
    pub kty: String,
    /// Always `Ed25519`.
    pub crv: String,
    /// Key id: the RFC 7638 thumbprint of the key.
    pub kid: String,
    /// base64url (no padding) of the public key.
    pub x: String,
    /// Always `EdDSA`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alg: Option<String>,
    /// Always `sig`.
    #[serde(rename = "use", default, skip_serializing_if = "Option::is_none")]
    pub use_: Option<String>,
}

/// A JWK set.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwks {
    /// The keys.
    pub keys: Vec<Jwk>,
}

impl Jwk {
    /// The JWK of `key`.
    pub fn from_key(key: &VerifyingKey) -> Jwk {
        Jwk {
            kty: "OKP".into(),
            crv: "Ed25519".into(),
            kid: thumbprint(key),
            x: URL_SAFE_NO_PAD.encode(key.as_bytes()),
            alg: Some("EdDSA".into()),
            use_: Some("sig".into()),
        }
    }

    /// The public key, checking `kty`, `crv` and that `kid` is the key's thumbprint.
    pub fn to_key(&self) -> Result<VerifyingKey, LedgerError> {
        let bad = |why: &str| LedgerError::Key(why.to_owned());
        if self.kty != "OKP" || self.crv != "Ed25519" {
            return Err(bad("only OKP / Ed25519 keys are supported"));
        }
        let raw = URL_SAFE_NO_PAD
            .decode(&self.x)
            .map_err(|_| bad("`x` is not base64url"))?;
        let raw = <[u8; 32]>::try_from(raw.as_slice()).map_err(|_| bad("`x` is not 32 bytes"))?;
        let key = VerifyingKey::from_bytes(&raw).map_err(|_| bad("invalid ed25519 public key"))?;
        if self.kid != thumbprint(&key) {
            return Err(bad("`kid` is not the key's thumbprint"));
        }
        Ok(key)
    }
}

/// RFC 7638 JWK thumbprint (base64url SHA-256 of the required members in
/// lexicographic order), used as the key id everywhere outside signed notes.
pub fn thumbprint(key: &VerifyingKey) -> String {
    let members = format!(
        r#"{{"crv":"Ed25519","kty":"OKP","x":"{}"}}"#,
        URL_SAFE_NO_PAD.encode(key.as_bytes())
    );
    URL_SAFE_NO_PAD.encode(Sha256::digest(members.as_bytes()))
}

/// The public key as a PEM `PUBLIC KEY` block (SubjectPublicKeyInfo, RFC 8410).
pub fn public_key_pem(key: &VerifyingKey) -> String {
    let mut der = SPKI_PREFIX.to_vec();
    der.extend_from_slice(key.as_bytes());
    format!(
        "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
        STANDARD.encode(der)
    )
}

/// Parses a PEM `PUBLIC KEY` block holding an Ed25519 key.
pub fn public_key_from_pem(pem: &str) -> Result<VerifyingKey, LedgerError> {
    let bad = |why: &str| LedgerError::Key(why.to_owned());
    let inner = pem
        .trim()
        .strip_prefix("-----BEGIN PUBLIC KEY-----")
        .and_then(|s| s.strip_suffix("-----END PUBLIC KEY-----"))
        .ok_or_else(|| bad("not a PEM public key"))?;
    let b64: String = inner.chars().filter(|c| !c.is_whitespace()).collect();
    let der = STANDARD
        .decode(b64)
        .map_err(|_| bad("the PEM body is not base64"))?;
    let raw = der
        .strip_prefix(&SPKI_PREFIX[..])
        .ok_or_else(|| bad("not an ed25519 public key"))?;
    let raw = <[u8; 32]>::try_from(raw).map_err(|_| bad("not an ed25519 public key"))?;
    VerifyingKey::from_bytes(&raw).map_err(|_| bad("invalid ed25519 public key"))
}
