//! What the operator console (`crate::console`) reads that the API had no method for:
//! pages of the decision stream by ledger position, the proof material of one
//! decision, per-minute counts for the overview, and a session's key looked up by its
//! hash. Typed; no HTTP here.
//!
//! INVARIANT: no read here loads the whole ledger. A page walks back from a ledger
//! position in chunks and stops after [`MAX_SCAN`] entries, answering where to go on.

use std::collections::BTreeMap;

use subtle::ConstantTimeEq;
use tollgate_ledger::{Dossier, Entry, EntryKind, NoteVerifier};

use crate::clock::rfc3339;
use crate::service::records::DecisionEntryBody;
use crate::service::{Caller, DecisionService, Error};

/// Entries read back per store call while walking the ledger backwards.
const CHUNK: u64 = 256;

/// Most entries one page of the stream looks at before it answers (with a link to go
/// on from where it stopped).
pub const MAX_SCAN: u64 = 4096;

/// What the decision stream shows: each `None` matches everything.
#[derive(Clone, Debug, Default)]
pub struct DecisionFilter {
    /// `ALLOW`, `BLOCK`, … (as the verdict spells it).
    pub status: Option<String>,
    /// The gate that decided (`policy`, `throttle`, …).
    pub gate: Option<String>,
    /// `actor.id`, exactly.
    pub actor: Option<String>,
    /// `action.type`, exactly.
    pub action_type: Option<String>,
    /// Entries at or after this RFC 3339 time (a prefix such as `2026-12-04T18:00`
    /// compares as that minute).
    pub since: Option<String>,
    /// Entries before this RFC 3339 time.
    pub until: Option<String>,
}

impl DecisionFilter {
    fn matches(&self, entry: &Entry, row: &DecisionRow) -> bool {
        let eq = |want: &Option<String>, have: &str| want.as_deref().is_none_or(|w| w == have);
        eq(&self.status, &row.status)
            && eq(&self.gate, &row.gate)
            && eq(&self.actor, &row.actor)
            && eq(&self.action_type, &row.action_type)
            && self
                .since
                .as_deref()
                .is_none_or(|s| entry.time.as_str() >= s)
            && self
                .until
                .as_deref()
                .is_none_or(|u| entry.time.as_str() < u)
    }
}

/// One decision as a row of the stream. Every string but `status`, `gate`, `mode`
/// and `time` came from the agent.
#[derive(Clone, Debug)]
pub struct DecisionRow {
    /// Ledger position.
    pub seq: u64,
    /// Entry time (RFC 3339).
    pub time: String,
    /// `dec_…`.
    pub decision_id: String,
    /// Verdict status.
    pub status: String,
    /// The gate that decided.
    pub gate: String,
    /// `actor.id` (empty when absent).
    pub actor: String,
    /// `action.type` (empty when absent).
    pub action_type: String,
    /// `enforce`, `shadow`, `dry_run`.
    pub mode: String,
    /// `live` or `test`.
    pub environment: String,
}

/// A page of the stream, newest first.
#[derive(Clone, Debug)]
pub struct DecisionPage {
    /// The rows.
    pub rows: Vec<DecisionRow>,
    /// Where the next older page starts (exclusive upper ledger position), if any.
    pub older: Option<u64>,
    /// The ledger size when the page was read: the live stream continues after it.
    pub head: u64,
    /// Entries looked at.
    pub scanned: u64,
}

/// Decisions of one minute, by status.
#[derive(Clone, Debug, Default)]
pub struct MinuteCounts {
    /// `YYYY-MM-DDTHH:MM` (UTC).
    pub minute: String,
    /// Status → count.
    pub by_status: BTreeMap<String, u64>,
}

/// A decision with the proof material the console checks in the browser.
#[derive(Clone, Debug)]
pub struct DecisionProof {
    /// The ledger part of the dossier (entry, inclusion proof, checkpoint, keys).
    pub dossier: Dossier,
    /// The entry's RFC 8785 canonical bytes (what `entry_hash` is the SHA-256 of).
    pub canonical: Vec<u8>,
}

/// The row of a decision entry, read from its stored body without decoding the whole
/// `DecisionEntryBody` (a row needs seven of its fields; the stream reads thousands).
fn row_of(entry: &Entry) -> Option<DecisionRow> {
    if entry.kind != EntryKind::Decision {
        return None;
    }
    let b = &entry.body;
    let s = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_owned();
    Some(DecisionRow {
        seq: entry.seq,
        time: entry.time.clone(),
        decision_id: b["decision_id"].as_str()?.to_owned(),
        status: s(&b["verdict"]["status"]),
        gate: s(&b["verdict"]["gate"]),
        actor: s(&b["request"]["actor"]["id"]),
        action_type: s(&b["request"]["action"]["type"]),
        mode: s(&b["verdict"]["mode"]),
        environment: s(&b["environment"]),
    })
}

impl DecisionService {
    /// The caller whose key has this SHA-256 hash (a console session keeps the hash,
    /// never the secret): exists, not revoked, not expired — checked on every request,
    /// so revoking a key ends its sessions.
    pub fn authenticate_hash(&self, hash: &str) -> Result<Caller, Error> {
        let record = self.key_by_hash(hash)?.ok_or(Error::Unauthorized)?;
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

    /// Decisions of the caller's tenant before ledger position `before` (the head when
    /// `None`), newest first, at most `limit` matching `filter`, looking at no more
    /// than [`MAX_SCAN`] entries.
    pub fn decision_page(
        &self,
        caller: &Caller,
        filter: &DecisionFilter,
        before: Option<u64>,
        limit: usize,
    ) -> Result<DecisionPage, Error> {
        let tenant = caller.tenant();
        let head = self.ledger_size(tenant)?;
        let mut end = before.unwrap_or(head).min(head);
        let mut rows = Vec::new();
        let mut scanned = 0u64;
        'walk: while end > 0 && scanned < MAX_SCAN {
            let from = end.saturating_sub(CHUNK);
            let chunk = self.store().range(tenant, from, end)?;
            for entry in chunk.iter().rev() {
                scanned += 1;
                end = entry.seq;
                if filter
                    .since
                    .as_deref()
                    .is_some_and(|s| entry.time.as_str() < s)
                {
                    // Older entries are older still: nothing further can match.
                    end = 0;
                    break 'walk;
                }
                if let Some(row) = row_of(entry)
                    && filter.matches(entry, &row)
                {
                    rows.push(row);
                    if rows.len() >= limit {
                        break 'walk;
                    }
                }
            }
            if chunk.is_empty() {
                end = from;
            }
        }
        Ok(DecisionPage {
            rows,
            older: (end > 0).then_some(end),
            head,
            scanned,
        })
    }

    /// Decisions at ledger positions `after..` (at most `limit`, oldest first) matching
    /// `filter`, and the position to continue from.
    pub fn decisions_after(
        &self,
        caller: &Caller,
        filter: &DecisionFilter,
        after: u64,
        limit: u64,
    ) -> Result<(Vec<DecisionRow>, u64), Error> {
        let tenant = caller.tenant();
        let head = self.ledger_size(tenant)?;
        if after >= head {
            return Ok((Vec::new(), after));
        }
        let to = head.min(after.saturating_add(limit));
        let rows = self
            .store()
            .range(tenant, after, to)?
            .iter()
            .filter_map(|e| row_of(e).filter(|r| filter.matches(e, r)))
            .collect();
        Ok((rows, to))
    }

    /// Decisions per minute by status over the last `minutes` minutes (oldest first),
    /// reading back at most `max_entries` entries; `true` when that bound cut the
    /// walk short (older minutes are then undercounted).
    pub fn decisions_per_minute(
        &self,
        caller: &Caller,
        minutes: u32,
        max_entries: u64,
    ) -> Result<(Vec<MinuteCounts>, bool), Error> {
        let now = self.now_ms();
        let mut out: Vec<MinuteCounts> = (0..i64::from(minutes))
            .rev()
            .map(|i| MinuteCounts {
                minute: minute_of(&rfc3339(now - i * 60_000)),
                by_status: BTreeMap::new(),
            })
            .collect();
        let first = out.first().map(|m| m.minute.clone()).unwrap_or_default();
        let tenant = caller.tenant();
        let mut end = self.ledger_size(tenant)?;
        let mut scanned = 0u64;
        'walk: while end > 0 && scanned < max_entries {
            let from = end.saturating_sub(CHUNK);
            for entry in self.store().range(tenant, from, end)?.iter().rev() {
                scanned += 1;
                let minute = minute_of(&entry.time);
                if minute < first {
                    break 'walk;
                }
                if let Some(row) = row_of(entry)
                    && let Some(slot) = out.iter_mut().find(|m| m.minute == minute)
                {
                    *slot.by_status.entry(row.status).or_default() += 1;
                }
            }
            end = from;
        }
        Ok((out, end > 0 && scanned >= max_entries))
    }

    /// The ledger part of a decision's dossier and its typed body: the entry with its
    /// inclusion proof against the latest checkpoint (issued now if none covers it).
    pub async fn decision_dossier(
        &self,
        caller: &Caller,
        id: &str,
    ) -> Result<(Dossier, DecisionEntryBody), Error> {
        let tenant = caller.tenant().to_owned();
        let (entry, body) = self.decision(&tenant, id)?;
        let store = self.store();
        let checkpoint = match store.latest_checkpoint(&tenant)? {
            Some(c) if c.checkpoint.size > entry.seq => c,
            _ => self.checkpoint_now(&tenant).await?,
        };
        let size = checkpoint.checkpoint.size;
        let proof = store.inclusion_proof(&tenant, entry.seq, size)?;
        let dossier = Dossier {
            inclusion_proof: proof,
            checkpoint: checkpoint.to_text().map_err(Error::internal)?,
            verifier_keys: self
                .note_verifiers()
                .iter()
                .map(NoteVerifier::to_vkey)
                .collect(),
            jwks: Some(self.jwks()),
            entry,
        };
        Ok((dossier, body))
    }

    /// A decision's proof material with the entry's canonical bytes.
    pub async fn decision_proof(&self, caller: &Caller, id: &str) -> Result<DecisionProof, Error> {
        let (dossier, _) = self.decision_dossier(caller, id).await?;
        let canonical = dossier.entry.canonical_bytes().map_err(Error::internal)?;
        Ok(DecisionProof { dossier, canonical })
    }

    /// The tenant's ledger head (size) and its latest checkpoint, if any.
    pub fn ledger_head(
        &self,
        caller: &Caller,
    ) -> Result<(u64, Option<tollgate_ledger::SignedCheckpoint>), Error> {
        let tenant = caller.tenant();
        Ok((
            self.ledger_size(tenant)?,
            self.store().latest_checkpoint(tenant)?,
        ))
    }

    /// The tenant's most recent checkpoints, newest first (at most `limit`).
    pub fn recent_checkpoints(
        &self,
        caller: &Caller,
        limit: usize,
    ) -> Result<Vec<tollgate_ledger::SignedCheckpoint>, Error> {
        let mut all = self.store().checkpoints(caller.tenant())?;
        all.reverse();
        all.truncate(limit);
        Ok(all)
    }
}

/// `YYYY-MM-DDTHH:MM` of an RFC 3339 time.
fn minute_of(time: &str) -> String {
    time.chars().take(16).collect()
}
