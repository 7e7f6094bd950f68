//! The `jsonwebtoken` crypto provider: EdDSA (Ed25519, via `ed25519-dalek`) and
//! nothing else. Grants are the only JWTs Tollgate signs or verifies, and they are
//! EdDSA only. `jsonwebtoken`'s own `rust_crypto` provider would compile in RSA, ECDSA
//! and HMAC as well (and with them the `rsa` crate, RUSTSEC-2023-0071, no fixed
//! version); with this one, another algorithm is an error, never a code path.

use ed25519_dalek::pkcs8::DecodePrivateKey as _;
use ed25519_dalek::{Signature, SigningKey, VerifyingKey};
use jsonwebtoken::crypto::{CryptoProvider, JwtSigner, JwtVerifier, KeyUtils};
use jsonwebtoken::errors::{Error, ErrorKind, Result};
use jsonwebtoken::signature::{self, Signer, Verifier};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey, EncodingKey};

/// Installs the provider for the process; later calls do nothing. Called before every
/// use of `jsonwebtoken`, so no path can reach the crate without it.
pub(crate) fn install() {
    // `Err` means a provider is installed already: this one, as nothing else installs
    // one.
    let _ = PROVIDER.install_default();
}

static PROVIDER: CryptoProvider = CryptoProvider {
    signer_factory,
    verifier_factory,
    key_utils: KeyUtils {
        rsa_pub_components_from_private_key: |_| Err(unsupported()),
        rsa_pub_components_from_public_key: |_| Err(unsupported()),
        ec_pub_components_from_private_key: |_, _| Err(unsupported()),
        ed_pub_components_from_private_key: |_, _| Err(unsupported()),
        compute_digest: |_, _| Err(unsupported()),
    },
};

fn unsupported() -> Error {
    ErrorKind::InvalidAlgorithm.into()
}

fn signer_factory(algorithm: &Algorithm, key: &EncodingKey) -> Result<Box<dyn JwtSigner>> {
    if *algorithm != Algorithm::EdDSA || key.family() != AlgorithmFamily::Ed {
        return Err(unsupported());
    }
    let key = SigningKey::from_pkcs8_der(key.as_bytes()).map_err(|_| ErrorKind::InvalidEddsaKey)?;
    Ok(Box::new(EdDsaSigner(key)))
}

fn verifier_factory(algorithm: &Algorithm, key: &DecodingKey) -> Result<Box<dyn JwtVerifier>> {
    if *algorithm != Algorithm::EdDSA || key.family() != AlgorithmFamily::Ed {
        return Err(unsupported());
    }
    let bytes: &[u8; 32] = key
        .try_get_as_bytes()?
        .try_into()
        .map_err(|_| ErrorKind::InvalidEddsaKey)?;
    let key = VerifyingKey::from_bytes(bytes).map_err(|_| ErrorKind::InvalidEddsaKey)?;
    Ok(Box::new(EdDsaVerifier(key)))
}

struct EdDsaSigner(SigningKey);

impl Signer<Vec<u8>> for EdDsaSigner {
    fn try_sign(&self, msg: &[u8]) -> std::result::Result<Vec<u8>, signature::Error> {
        Ok(ed25519_dalek::Signer::sign(&self.0, msg)
            .to_bytes()
            .to_vec())
    }
}

impl JwtSigner for EdDsaSigner {
    fn algorithm(&self) -> Algorithm {
        Algorithm::EdDSA
    }
}

struct EdDsaVerifier(VerifyingKey);

impl Verifier<Vec<u8>> for EdDsaVerifier {
    fn verify(&self, msg: &[u8], sig: &Vec<u8>) -> std::result::Result<(), signature::Error> {
        // (`ed25519-dalek` speaks another major version of `signature`: its errors are
        // mapped, not converted.) Strict: rejects non-canonical and small-order
        // encodings.
        let sig = Signature::from_slice(sig).map_err(|_| signature::Error::new())?;
        self.0
            .verify_strict(msg, &sig)
            .map_err(|_| signature::Error::new())
    }
}

impl JwtVerifier for EdDsaVerifier {
    fn algorithm(&self) -> Algorithm {
        Algorithm::EdDSA
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{Header, Validation};

    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Claims {
        sub: String,
    }

    fn keys() -> (EncodingKey, DecodingKey, SigningKey) {
        use ed25519_dalek::pkcs8::EncodePrivateKey as _;
        let sk = SigningKey::from_bytes(&[7u8; 32]);
        let der = sk.to_pkcs8_der().unwrap();
        let x = base64::Engine::encode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            sk.verifying_key().to_bytes(),
        );
        (
            EncodingKey::from_ed_der(der.as_bytes()),
            DecodingKey::from_ed_components(&x).unwrap(),
            sk,
        )
    }

    #[test]
    fn eddsa_round_trips_and_a_changed_token_fails() {
        install();
        let (enc, dec, _) = keys();
        let claims = Claims { sub: "t".into() };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::EdDSA), &claims, &enc).unwrap();
        let mut v = Validation::new(Algorithm::EdDSA);
        v.required_spec_claims.clear();
        v.validate_exp = false;
        let back = jsonwebtoken::decode::<Claims>(&token, &dec, &v).unwrap();
        assert_eq!(back.claims, claims);
        // Another payload under the same signature does not verify.
        let mut parts: Vec<&str> = token.split('.').collect();
        let other = base64::Engine::encode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            br#"{"sub":"u"}"#,
        );
        parts[1] = &other;
        assert!(jsonwebtoken::decode::<Claims>(&parts.join("."), &dec, &v).is_err());
    }

    #[test]
    fn every_other_algorithm_is_an_error_not_a_panic() {
        install();
        let (enc, _, _) = keys();
        let hmac = EncodingKey::from_secret(b"secret");
        for alg in [
            Algorithm::HS256,
            Algorithm::RS256,
            Algorithm::ES256,
            Algorithm::PS256,
        ] {
            assert!(
                jsonwebtoken::encode(&Header::new(alg), &Claims { sub: "t".into() }, &hmac)
                    .is_err()
            );
            assert!(
                jsonwebtoken::encode(&Header::new(alg), &Claims { sub: "t".into() }, &enc).is_err()
            );
        }
        // An HS256 token is refused by an EdDSA-only validation and by this provider.
        let mut v = Validation::new(Algorithm::HS256);
        v.required_spec_claims.clear();
        let token = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ0In0.c2ln";
        assert!(
            jsonwebtoken::decode::<Claims>(token, &DecodingKey::from_secret(b"secret"), &v)
                .is_err()
        );
    }
}
