//! Ledger entries and their canonical encoding.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::{Hash, LedgerError};

/// The largest sequence number an entry may carry: JSON numbers are exact only up to
/// 2^53, and RFC 8785 serialises numbers as IEEE 754 doubles.
pub const MAX_SEQ: u64 = (1 << 53) - 1;

/// What an entry records.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryKind {
    /// A verdict (also shadow and candidate verdicts).
    Decision,
    /// A decision was sent to human review.
    ReviewOpened,
    /// A reviewer resolved a review.
    ReviewResolved,
    /// A signed outcome report was accepted.
    OutcomeAccepted,
    /// A policy version was published.
    PolicyPublished,
    /// A policy version became active.
    PolicyActivated,
    /// An override was set.
    OverrideSet,
    /// An override was cleared.
    OverrideCleared,
    /// An API key was created.
    KeyCreated,
    /// An API key was revoked.
    KeyRevoked,
    /// A signal source was registered.
    SourceRegistered,
}

impl EntryKind {
    /// Every kind, in declaration order.
    pub const ALL: [EntryKind; 11] = [
        EntryKind::Decision,
        EntryKind::ReviewOpened,
        EntryKind::ReviewResolved,
        EntryKind::OutcomeAccepted,
        EntryKind::PolicyPublished,
        EntryKind::PolicyActivated,
        EntryKind::OverrideSet,
        EntryKind::OverrideCleared,
        EntryKind::KeyCreated,
        EntryKind::KeyRevoked,
        EntryKind::SourceRegistered,
    ];

    /// The wire name (`decision`, `review_opened`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            EntryKind::Decision => "decision",
            EntryKind::ReviewOpened => "review_opened",
            EntryKind::ReviewResolved => "review_resolved",
            EntryKind::OutcomeAccepted => "outcome_accepted",
            EntryKind::PolicyPublished => "policy_published",
            EntryKind::PolicyActivated => "policy_activated",
            EntryKind::OverrideSet => "override_set",
            EntryKind::OverrideCleared => "override_cleared",
            EntryKind::KeyCreated => "key_created",
            EntryKind::KeyRevoked => "key_revoked",
            EntryKind::SourceRegistered => "source_registered",
        }
    }
}

impl fmt::Display for EntryKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for EntryKind {
    type Err = LedgerError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        EntryKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| LedgerError::UnknownKind(s.to_owned()))
    }
}

/// One entry of a tenant's ledger, as stored and exported (one JSON object a line).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    /// The tenant whose ledger this is.
    pub tenant: String,
    /// Position in the tenant's ledger: 0, 1, 2… without gaps.
    pub seq: u64,
    /// Entry time, RFC 3339 in UTC, as given by the appender.
    pub time: String,
    /// What the entry records.
    pub kind: EntryKind,
    /// The recorded data (for a decision: request, verdict, trace, policy, …).
    pub body: serde_json::Value,
    /// `entry_hash` of the previous entry; zero for entry 0.
    pub prev_hash: Hash,
    /// SHA-256 of [`Entry::canonical_bytes`].
    pub entry_hash: Hash,
}

impl Entry {
    /// Seals a draft at position `seq` after `prev_hash`, computing its hash.
    pub fn seal(draft: &EntryDraft, seq: u64, prev_hash: Hash) -> Result<Entry, LedgerError> {
        let prepared = PreparedDraft::new(draft)?;
        let (_, entry_hash) = prepared.seal(seq, prev_hash)?;
        Ok(Entry {
            tenant: draft.tenant.clone(),
            seq,
            time: draft.time.clone(),
            kind: draft.kind,
            body: draft.body.clone(),
            prev_hash,
            entry_hash,
        })
    }

    /// RFC 8785 (JCS) bytes of the entry without `entry_hash`.
    pub fn canonical_bytes(&self) -> Result<Vec<u8>, LedgerError> {
        let prepared = PreparedDraft::from_parts(&self.tenant, &self.time, self.kind, &self.body)?;
        prepared.canonical(self.seq, self.prev_hash)
    }

    /// SHA-256 of the canonical bytes: what `entry_hash` must be.
    pub fn compute_hash(&self) -> Result<Hash, LedgerError> {
        Ok(Hash::digest(&self.canonical_bytes()?))
    }

    /// Parses the canonical bytes of an entry (as stored) and attaches its hash.
    ///
    /// This does not check that `entry_hash` matches; [`crate::Verifier`] does.
    pub fn from_canonical(bytes: &[u8], entry_hash: Hash) -> Result<Entry, LedgerError> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Unhashed {
            tenant: String,
            seq: u64,
            time: String,
            kind: EntryKind,
            body: serde_json::Value,
            prev_hash: Hash,
        }
        let u: Unhashed =
            serde_json::from_slice(bytes).map_err(|e| LedgerError::Decode(e.to_string()))?;
        Ok(Entry {
            tenant: u.tenant,
            seq: u.seq,
            time: u.time,
            kind: u.kind,
            body: u.body,
            prev_hash: u.prev_hash,
            entry_hash,
        })
    }

    /// The entry as one JSON line (the export format), without the newline: the
    /// RFC 8785 form of the whole entry, `entry_hash` included.
    pub fn to_json_line(&self) -> Result<String, LedgerError> {
        line_from_canonical(&self.canonical_bytes()?, &self.entry_hash)
    }

    /// Parses one export line.
    pub fn from_json_line(line: &str) -> Result<Entry, LedgerError> {
        serde_json::from_str(line).map_err(|e| LedgerError::Decode(e.to_string()))
    }
}

/// The fields of a stored entry other than its body, parsed without building the
/// body (the body must still be valid JSON).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EntryHeader {
    /// Tenant.
    pub tenant: String,
    /// Sequence number.
    pub seq: u64,
    /// Entry time.
    pub time: String,
    /// Kind.
    pub kind: EntryKind,
    /// Previous entry's hash.
    pub prev_hash: Hash,
}

impl EntryHeader {
    /// Parses the canonical bytes of an entry, skipping over the body.
    pub fn from_canonical(bytes: &[u8]) -> Result<EntryHeader, LedgerError> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Raw {
            tenant: String,
            seq: u64,
            time: String,
            kind: EntryKind,
            #[allow(dead_code)]
            body: serde::de::IgnoredAny,
            prev_hash: Hash,
        }
        let r: Raw =
            serde_json::from_slice(bytes).map_err(|e| LedgerError::Decode(e.to_string()))?;
        Ok(EntryHeader {
            tenant: r.tenant,
            seq: r.seq,
            time: r.time,
            kind: r.kind,
            prev_hash: r.prev_hash,
        })
    }
}

/// The member that [`line_from_canonical`] inserts and `Verifier::push_line` strips.
pub(crate) const HASH_MEMBER: &str = ",\"entry_hash\":\"";

/// Turns the canonical bytes of an entry (without `entry_hash`) into its export line
/// (the canonical form of the whole entry) by inserting the `entry_hash` member in
/// its sorted place, before `kind`.
pub fn line_from_canonical(canonical: &[u8], entry_hash: &Hash) -> Result<String, LedgerError> {
    let text = std::str::from_utf8(canonical).map_err(|e| LedgerError::Decode(e.to_string()))?;
    // The top-level `kind` member is the last occurrence of this text: the members
    // after it (prev_hash, seq, tenant, time) cannot contain an unescaped quote.
    let at = text
        .rfind(",\"kind\":\"")
        .ok_or_else(|| LedgerError::Decode("no `kind` member".into()))?;
    let (head, tail) = text.split_at(at);
    Ok(format!(
        "{head}{HASH_MEMBER}{}\"{tail}",
        entry_hash.to_hex()
    ))
}

/// What an appender supplies; the sequencer adds `seq` and `prev_hash`.
#[derive(Clone, Debug, PartialEq)]
pub struct EntryDraft {
    /// The tenant whose ledger receives the entry.
    pub tenant: String,
    /// Entry time, RFC 3339 in UTC.
    pub time: String,
    /// What the entry records.
    pub kind: EntryKind,
    /// The recorded data.
    pub body: serde_json::Value,
}

/// A draft whose body the appender has already written as RFC 8785 bytes, from its
/// typed record (no `serde_json::Value` on the way): the decision path's form.
///
/// INVARIANT: `body` is the RFC 8785 form of a JSON object, and `decision_id` is the
/// body's `decision_id` member for a decision entry (else `None`). The appender
/// vouches for both; [`CanonicalDraft::to_draft`] is the checked way back.
#[derive(Clone, Debug, PartialEq)]
pub struct CanonicalDraft {
    /// The tenant whose ledger receives the entry.
    pub tenant: String,
    /// Entry time, RFC 3339 in UTC.
    pub time: String,
    /// What the entry records.
    pub kind: EntryKind,
    /// The RFC 8785 bytes of the recorded data.
    pub body: Vec<u8>,
    /// The decision id of a decision entry (unique per tenant).
    pub decision_id: Option<String>,
}

impl CanonicalDraft {
    /// The same draft with its body parsed back (for stores that take values).
    pub fn to_draft(&self) -> Result<EntryDraft, LedgerError> {
        let body: serde_json::Value =
            serde_json::from_slice(&self.body).map_err(|e| LedgerError::Decode(e.to_string()))?;
        Ok(EntryDraft {
            tenant: self.tenant.clone(),
            time: self.time.clone(),
            kind: self.kind,
            body,
        })
    }
}

/// A draft whose variable-free parts are already canonicalised, so that a sequencer
/// can seal it with a few byte copies and one hash.
///
/// Appenders prepare drafts on their own threads; the single writer only seals them.
#[derive(Clone, Debug)]
pub struct PreparedDraft {
    /// JCS of the body.
    body: Vec<u8>,
    kind: EntryKind,
    /// JCS of the tenant string (with quotes).
    tenant: Vec<u8>,
    /// JCS of the time string (with quotes).
    time: Vec<u8>,
}

impl PreparedDraft {
    /// Canonicalises a draft.
    pub fn new(draft: &EntryDraft) -> Result<PreparedDraft, LedgerError> {
        PreparedDraft::from_parts(&draft.tenant, &draft.time, draft.kind, &draft.body)
    }

    /// Takes a draft whose body is canonical already (see [`CanonicalDraft`]'s
    /// invariant): only the tenant and time are encoded here.
    pub fn from_canonical(draft: CanonicalDraft) -> Result<PreparedDraft, LedgerError> {
        debug_assert!(
            serde_json::from_slice::<serde_json::Value>(&draft.body)
                .ok()
                .and_then(|v| canonical_json(&v).ok())
                .is_some_and(|c| c == draft.body),
            "a CanonicalDraft's body is not canonical"
        );
        Ok(PreparedDraft {
            tenant: jcs(&draft.tenant)?,
            time: jcs(&draft.time)?,
            kind: draft.kind,
            body: draft.body,
        })
    }

    fn from_parts(
        tenant: &str,
        time: &str,
        kind: EntryKind,
        body: &serde_json::Value,
    ) -> Result<PreparedDraft, LedgerError> {
        Ok(PreparedDraft {
            body: canonical_json(body)?,
            kind,
            tenant: jcs(&tenant)?,
            time: jcs(&time)?,
        })
    }

    /// The canonical bytes of the entry this draft becomes at `seq` after `prev_hash`.
    ///
    /// The top-level object is assembled by hand; its members are JCS output. The
    /// member names are ASCII and written in RFC 8785 order (sorted by UTF-16 code
    /// units): body, kind, prev_hash, seq, tenant, time. A property test checks the
    /// result against `serde_json_canonicalizer` over the whole entry.
    pub fn canonical(&self, seq: u64, prev_hash: Hash) -> Result<Vec<u8>, LedgerError> {
        if seq > MAX_SEQ {
            return Err(LedgerError::SeqTooLarge(seq));
        }
        let mut out =
            Vec::with_capacity(self.body.len() + self.tenant.len() + self.time.len() + 140);
        out.extend_from_slice(b"{\"body\":");
        out.extend_from_slice(&self.body);
        out.extend_from_slice(b",\"kind\":\"");
        out.extend_from_slice(self.kind.as_str().as_bytes());
        out.extend_from_slice(b"\",\"prev_hash\":\"");
        out.extend_from_slice(prev_hash.to_hex().as_bytes());
        out.extend_from_slice(b"\",\"seq\":");
        // INVARIANT: seq <= 2^53 - 1, so its decimal form is exactly what RFC 8785
        // (ECMAScript number serialisation) produces for it.
        out.extend_from_slice(seq.to_string().as_bytes());
        out.extend_from_slice(b",\"tenant\":");
        out.extend_from_slice(&self.tenant);
        out.extend_from_slice(b",\"time\":");
        out.extend_from_slice(&self.time);
        out.push(b'}');
        Ok(out)
    }

    /// Canonical bytes and entry hash at `seq` after `prev_hash`.
    pub fn seal(&self, seq: u64, prev_hash: Hash) -> Result<(Vec<u8>, Hash), LedgerError> {
        let bytes = self.canonical(seq, prev_hash)?;
        let hash = Hash::digest(&bytes);
        Ok((bytes, hash))
    }

    /// About how long the entry's canonical bytes are (within the length of `seq`'s
    /// decimal digits), without writing them.
    pub fn approx_len(&self) -> usize {
        self.body.len() + self.tenant.len() + self.time.len() + 140
    }

    /// The kind of the entry.
    pub fn kind(&self) -> EntryKind {
        self.kind
    }
}

fn jcs<T: Serialize>(value: &T) -> Result<Vec<u8>, LedgerError> {
    serde_json_canonicalizer::to_vec(value).map_err(|e| LedgerError::Encode(e.to_string()))
}

/// RFC 8785 of a JSON value, written by walking the value: object members sorted by
/// UTF-16 code units, strings escaped as serde_json does (which is what RFC 8785
/// requires: `\b \f \n \r \t \" \\` short forms, other controls as `\u00xx`,
/// everything else literal), and every number formatted by
/// `serde_json_canonicalizer` (ECMAScript number serialisation is not hand-rolled).
/// It exists because the crate's generic serializer costs several times more on
/// decision-sized bodies; a property test checks both agree.
pub fn canonical_json(value: &serde_json::Value) -> Result<Vec<u8>, LedgerError> {
    let mut out = Vec::with_capacity(256);
    write_canonical(value, &mut out)?;
    Ok(out)
}

fn write_canonical(value: &serde_json::Value, out: &mut Vec<u8>) -> Result<(), LedgerError> {
    use serde_json::Value;
    let enc = |e: serde_json::Error| LedgerError::Encode(e.to_string());
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(n) => serde_json_canonicalizer::to_writer(n, out).map_err(enc)?,
        Value::String(s) => serde_json::to_writer(&mut *out, s).map_err(enc)?,
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(item, out)?;
            }
            out.push(b']');
        }
        Value::Object(map) => {
            let mut members: Vec<(&String, &Value)> = map.iter().collect();
            // UTF-8 byte order (the map's) equals UTF-16 code unit order unless a
            // key holds a character outside the Basic Multilingual Plane.
            if members
                .iter()
                .any(|(k, _)| k.chars().any(|c| u32::from(c) > 0xFFFF))
            {
                members.sort_by(|a, b| a.0.encode_utf16().cmp(b.0.encode_utf16()));
            } else {
                members.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            }
            out.push(b'{');
            for (i, (k, v)) in members.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                serde_json::to_writer(&mut *out, k).map_err(enc)?;
                out.push(b':');
                write_canonical(v, out)?;
            }
            out.push(b'}');
        }
    }
    Ok(())
}
