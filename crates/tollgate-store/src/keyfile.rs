//! The server's Ed25519 signing key on disk: PKCS#8 PEM, mode 0600.

use std::fs;
use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::Path;

use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{DecodePrivateKey as _, EncodePrivateKey as _};

use crate::StoreError;

/// Loads the key at `path`, or generates one from the OS's randomness and writes it
/// there with mode 0600 (never overwriting an existing file). Returns the key and
/// whether it was created.
pub fn load_or_create(path: &Path) -> Result<(SigningKey, bool), StoreError> {
    match fs::read_to_string(path) {
        Ok(text) => Ok((parse(&text)?, false)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut seed = [0u8; 32];
            getrandom::fill(&mut seed)
                .map_err(|e| StoreError::Io(std::io::Error::other(e.to_string())))?;
            let key = SigningKey::from_bytes(&seed);
            let pem = key
                .to_pkcs8_pem(LineEnding::LF)
                .map_err(|e| StoreError::Corrupt(format!("cannot encode the key: {e}")))?;
            if let Some(dir) = path.parent() {
                fs::create_dir_all(dir)?;
            }
            let mut file = fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)?;
            file.write_all(pem.as_bytes())?;
            file.sync_all()?;
            // The umask cannot widen 0600, but make the mode explicit anyway.
            fs::set_permissions(path, fs::Permissions::from_mode(0o600))?;
            Ok((key, true))
        }
        Err(e) => Err(e.into()),
    }
}

/// Loads an existing key.
pub fn load(path: &Path) -> Result<SigningKey, StoreError> {
    parse(&fs::read_to_string(path)?)
}

fn parse(text: &str) -> Result<SigningKey, StoreError> {
    SigningKey::from_pkcs8_pem(text).map_err(|e| {
        StoreError::Corrupt(format!(
            "the signing key file is not an ed25519 PKCS#8 PEM: {e}"
        ))
    })
}
