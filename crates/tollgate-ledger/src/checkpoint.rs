//! Checkpoints (signed tree heads) in the C2SP `tlog-checkpoint` / `signed-note` text
//! format, signed with Ed25519.
//!
//! ```text
//! tollgate/acme
//! 42
//! qINS1GRFhWHwdkUeqLEoP4yEMkTBBzxBkGwGQlVlVcs=
//! time 2026-11-21T12:00:00Z
//!
//! — tollgate 3fYwHJ0JZJSJ0rvW6kF1Bz0sNnqX9ytbgGgRJE4Ql7nEbG3c5sZxKw==
//! ```
//!
//! Lines: origin, tree size in decimal, standard base64 of the root hash, optional
//! extension lines (Tollgate writes `time <RFC 3339>`), a blank line, then one or more
//! signature lines `— <key name> <base64(key id || signature)>`. The signature covers
//! the note text up to and including the newline before the blank line. The key id of
//! an Ed25519 key is the first four bytes of `SHA-256(name || "\n" || 0x01 || public key)`.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};

use crate::{Hash, LedgerError};

/// The signed-note signature type byte for Ed25519.
const ALG_ED25519: u8 = 0x01;

/// The unsigned part of a checkpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    /// The log's origin line, unique per log (Tollgate: `<log name>/<tenant>`).
    pub origin: String,
    /// Number of entries covered.
    pub size: u64,
    /// Merkle root of the first `size` entries.
    pub root: Hash,
    /// Extension lines (each non-empty, without newline).
    pub extensions: Vec<String>,
}

impl Checkpoint {
    /// The note text that signatures cover (ends with a newline).
    pub fn body_text(&self) -> Result<String, LedgerError> {
        if self.origin.is_empty() || self.origin.contains('\n') {
            return Err(LedgerError::Checkpoint(
                "the origin must be one non-empty line".into(),
            ));
        }
        let mut out = format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            STANDARD.encode(self.root.0)
        );
        for ext in &self.extensions {
            if ext.is_empty() || ext.contains('\n') {
                return Err(LedgerError::Checkpoint(
                    "an extension must be one non-empty line".into(),
                ));
            }
            out.push_str(ext);
            out.push('\n');
        }
        Ok(out)
    }

    /// The value of the `time` extension line, if any.
    pub fn time(&self) -> Option<&str> {
        self.extensions.iter().find_map(|e| e.strip_prefix("time "))
    }

    /// Signs the checkpoint with one key.
    pub fn sign(self, signer: &NoteSigner) -> Result<SignedCheckpoint, LedgerError> {
        let text = self.body_text()?;
        Ok(SignedCheckpoint {
            checkpoint: self,
            signatures: vec![signer.sign_text(&text)],
        })
    }
}

/// One signature line of a note.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NoteSignature {
    /// Key name.
    pub name: String,
    /// Key id (see the module docs).
    pub key_id: [u8; 4],
    /// Signature bytes (64 for Ed25519; other algorithms' may differ).
    pub signature: Vec<u8>,
}

impl NoteSignature {
    /// The signature line `— <name> <base64(key id || signature)>` with its newline.
    pub fn to_line(&self) -> String {
        let mut blob = Vec::with_capacity(4 + self.signature.len());
        blob.extend_from_slice(&self.key_id);
        blob.extend_from_slice(&self.signature);
        format!("\u{2014} {} {}\n", self.name, STANDARD.encode(blob))
    }
}

/// A checkpoint with its signature lines.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedCheckpoint {
    /// The signed content.
    pub checkpoint: Checkpoint,
    /// Signature lines in order.
    pub signatures: Vec<NoteSignature>,
}

impl SignedCheckpoint {
    /// The full note text.
    pub fn to_text(&self) -> Result<String, LedgerError> {
        let mut out = self.checkpoint.body_text()?;
        out.push('\n');
        for s in &self.signatures {
            out.push_str(&s.to_line());
        }
        Ok(out)
    }

    /// Parses a note text. Checks the format only; see [`SignedCheckpoint::verify`].
    pub fn parse(text: &str) -> Result<SignedCheckpoint, LedgerError> {
        let bad = |why: &str| LedgerError::Checkpoint(why.to_owned());
        let (body, sigs) = text
            .split_once("\n\n")
            .ok_or_else(|| bad("no blank line before the signatures"))?;
        let mut lines = body.split('\n');
        let origin = lines
            .next()
            .filter(|l| !l.is_empty())
            .ok_or_else(|| bad("no origin line"))?;
        let size_line = lines.next().ok_or_else(|| bad("no tree size line"))?;
        if size_line.is_empty()
            || !size_line.bytes().all(|b| b.is_ascii_digit())
            || (size_line.len() > 1 && size_line.starts_with('0'))
        {
            return Err(bad("the tree size is not a decimal number"));
        }
        let size: u64 = size_line
            .parse()
            .map_err(|_| bad("the tree size is out of range"))?;
        let root_line = lines.next().ok_or_else(|| bad("no root hash line"))?;
        let root_bytes = STANDARD
            .decode(root_line)
            .map_err(|_| bad("the root hash is not base64"))?;
        let root =
            Hash::from_slice(&root_bytes).ok_or_else(|| bad("the root hash is not 32 bytes"))?;
        let mut extensions = Vec::new();
        for l in lines {
            if l.is_empty() {
                return Err(bad("empty extension line"));
            }
            extensions.push(l.to_owned());
        }
        let sigs = sigs
            .strip_suffix('\n')
            .ok_or_else(|| bad("the note does not end with a newline"))?;
        let mut signatures = Vec::new();
        for line in sigs.split('\n') {
            let rest = line
                .strip_prefix("\u{2014} ")
                .ok_or_else(|| bad("a signature line does not start with an em dash"))?;
            let (name, b64) = rest
                .split_once(' ')
                .ok_or_else(|| bad("malformed signature line"))?;
            if name.is_empty() || name.contains('+') {
                return Err(bad("malformed key name"));
            }
            let blob = STANDARD
                .decode(b64)
                .map_err(|_| bad("the signature is not base64"))?;
            if blob.len() < 5 {
                return Err(bad("the signature is too short"));
            }
            let (id, sig) = blob.split_at(4);
            let key_id = <[u8; 4]>::try_from(id).map_err(|_| bad("the signature is too short"))?;
            signatures.push(NoteSignature {
                name: name.to_owned(),
                key_id,
                signature: sig.to_vec(),
            });
        }
        if signatures.is_empty() {
            return Err(bad("no signature line"));
        }
        Ok(SignedCheckpoint {
            checkpoint: Checkpoint {
                origin: origin.to_owned(),
                size,
                root,
                extensions,
            },
            signatures,
        })
    }

    /// Checks that at least one signature is a valid signature by one of `keys`
    /// (matched by name and key id), and that no signature by a known key is invalid.
    pub fn verify<'k>(&self, keys: &'k [NoteVerifier]) -> Result<&'k NoteVerifier, LedgerError> {
        let text = self.checkpoint.body_text()?;
        let mut good = None;
        for s in &self.signatures {
            let Some(key) = keys
                .iter()
                .find(|k| k.name == s.name && k.key_id() == s.key_id)
            else {
                continue;
            };
            let sig = Signature::from_slice(&s.signature)
                .map_err(|_| LedgerError::Checkpoint("malformed ed25519 signature".into()))?;
            key.key.verify_strict(text.as_bytes(), &sig).map_err(|_| {
                LedgerError::Checkpoint(format!("bad signature by key `{}`", s.name))
            })?;
            good.get_or_insert(key);
        }
        good.ok_or_else(|| LedgerError::Checkpoint("no signature by a trusted key".into()))
    }
}

/// An Ed25519 note signer: a key name and the private key (supplied by the caller;
/// this crate never generates keys).
#[derive(Clone)]
pub struct NoteSigner {
    name: String,
    key: SigningKey,
}

impl std::fmt::Debug for NoteSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NoteSigner")
            .field("name", &self.name)
            .field("key_id", &hex::encode(self.key_id()))
            .finish_non_exhaustive()
    }
}

impl NoteSigner {
    /// A signer named `name` (non-empty, no whitespace, no `+`).
    pub fn new(name: &str, key: SigningKey) -> Result<NoteSigner, LedgerError> {
        check_name(name)?;
        Ok(NoteSigner {
            name: name.to_owned(),
            key,
        })
    }

    /// The key name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The note key id.
    pub fn key_id(&self) -> [u8; 4] {
        key_id(&self.name, &self.key.verifying_key())
    }

    /// Signs a note text (which must end with a newline), giving its signature line.
    pub fn sign_text(&self, text: &str) -> NoteSignature {
        NoteSignature {
            name: self.name.clone(),
            key_id: self.key_id(),
            signature: self.key.sign(text.as_bytes()).to_bytes().to_vec(),
        }
    }

    /// A whole signed note: `text`, a blank line and this key's signature line.
    pub fn sign_note(&self, text: &str) -> Result<String, LedgerError> {
        if text.is_empty() || !text.ends_with('\n') {
            return Err(LedgerError::Checkpoint(
                "a note text must end with a newline".into(),
            ));
        }
        let line = self.sign_text(text).to_line();
        Ok(format!("{text}\n{line}"))
    }

    /// The public half.
    pub fn verifier(&self) -> NoteVerifier {
        NoteVerifier {
            name: self.name.clone(),
            key: self.key.verifying_key(),
        }
    }
}

/// An Ed25519 note verifier: key name and public key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NoteVerifier {
    /// Key name.
    pub name: String,
    /// Public key.
    pub key: VerifyingKey,
}

impl NoteVerifier {
    /// A verifier named `name` (non-empty, no whitespace, no `+`).
    pub fn new(name: &str, key: VerifyingKey) -> Result<NoteVerifier, LedgerError> {
        check_name(name)?;
        Ok(NoteVerifier {
            name: name.to_owned(),
            key,
        })
    }

    /// The note key id.
    pub fn key_id(&self) -> [u8; 4] {
        key_id(&self.name, &self.key)
    }

    /// The verifier key in the signed-note text form `name+hex(key id)+base64(0x01 || key)`.
    pub fn to_vkey(&self) -> String {
        let mut blob = vec![ALG_ED25519];
        blob.extend_from_slice(self.key.as_bytes());
        format!(
            "{}+{}+{}",
            self.name,
            hex::encode(self.key_id()),
            STANDARD.encode(blob)
        )
    }

    /// Parses the `name+hex(key id)+base64(0x01 || key)` form.
    pub fn from_vkey(text: &str) -> Result<NoteVerifier, LedgerError> {
        let bad = |why: &str| LedgerError::Key(why.to_owned());
        let mut parts = text.splitn(3, '+');
        let (Some(name), Some(id), Some(b64)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(bad("a verifier key has three `+`-separated parts"));
        };
        let blob = STANDARD
            .decode(b64)
            .map_err(|_| bad("the key is not base64"))?;
        let Some((&ALG_ED25519, raw)) = blob.split_first() else {
            return Err(bad("not an ed25519 verifier key"));
        };
        let raw = <[u8; 32]>::try_from(raw).map_err(|_| bad("an ed25519 key is 32 bytes"))?;
        let key = VerifyingKey::from_bytes(&raw).map_err(|_| bad("invalid ed25519 public key"))?;
        let v = NoteVerifier::new(name, key)?;
        if hex::encode(v.key_id()) != id {
            return Err(bad("the key id does not match the key"));
        }
        Ok(v)
    }
}

fn check_name(name: &str) -> Result<(), LedgerError> {
    if name.is_empty() || name.contains('+') || name.chars().any(char::is_whitespace) {
        return Err(LedgerError::Key(format!(
            "key name `{name}` must be non-empty without whitespace or `+`"
        )));
    }
    Ok(())
}

/// The signed-note key id of an Ed25519 key.
pub fn key_id(name: &str, key: &VerifyingKey) -> [u8; 4] {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update(b"\n");
    h.update([ALG_ED25519]);
    h.update(key.as_bytes());
    let d: [u8; 32] = h.finalize().into();
    [d[0], d[1], d[2], d[3]]
}
