//! The ledger segment: the file that makes an append durable.
//!
//! `tollgate.db.segment` beside the database is a fixed-size ring of frames. The writer
//! writes each batch as one frame (the canonical bytes and hash of every entry, its
//! decision id, and every checkpoint note of the batch) and `fdatasync`s it before it
//! acknowledges anyone; that is the only fsync on the commit path. SQLite is the index
//! of the segment: the indexer thread inserts the same batch into the database with
//! `synchronous=NORMAL` (no fsync of its own), and the checkpointer makes the database
//! durable later. A frame may be overwritten only once the database holds its batch
//! durably (`Durable`); on open, `recover` re-indexes the frames the database lacks.
//!
//! The file is zero-filled once, ahead of the writer, by a background thread, so that in
//! the steady state a frame overwrites allocated blocks: `fdatasync` then writes data
//! and flushes the disk cache, with no file-system journal commit (the WAL's `fsync`
//! had one per commit, and waited behind every other file's metadata in that journal).
//!
//! Frame: a 64-byte header (magic, generation, payload length, record count, and a
//! SHA-256 over the header and the payload's digest), then the payload, padded to
//! [`ALIGN`] bytes so that no frame shares a disk block with an acknowledged one.
//! Generations count frames from 1 and never repeat; recovery reads frames in
//! generation order and stops at the first one that is missing, torn or stale.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tollgate_ledger::Hash;

use crate::StoreError;

/// Default size of the segment file.
pub(super) const SEGMENT_BYTES: usize = 64 << 20;

/// Frames start and end on this boundary.
const ALIGN: u64 = 4096;

const HEADER: usize = 64;
const MAGIC: [u8; 8] = *b"TGLSEG01";

/// Zero-fill chunk of the background filler (held under the writer's lock while it is
/// written into the page cache, so kept small).
const FILL_CHUNK: u64 = 256 << 10;

/// How far ahead of the writer the filler allocates.
const FILL_AHEAD: u64 = 4 << 20;

/// The filler syncs after this many bytes of zeros.
const FILL_SYNC: u64 = 2 << 20;

/// One record of a frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Record {
    /// An appended entry, exactly as hashed.
    Entry {
        tenant: String,
        decision_id: Option<String>,
        entry_hash: Hash,
        canonical: Vec<u8>,
    },
    /// A signed checkpoint of `tenant` at `size`.
    Checkpoint {
        tenant: String,
        size: u64,
        issued: String,
        note: String,
    },
}

/// The segment path of the database at `db`: `<db file name>.segment` beside it.
pub(super) fn segment_path(db: &Path) -> PathBuf {
    let mut name = db.file_name().unwrap_or_default().to_os_string();
    name.push(".segment");
    db.with_file_name(name)
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    // Tenants, ids and times are short; entries and notes are checked by the callers.
    out.extend_from_slice(&(b.len() as u32).to_le_bytes());
    out.extend_from_slice(b);
}

/// Appends an entry record to a frame payload.
pub(super) fn encode_entry(
    out: &mut Vec<u8>,
    tenant: &str,
    decision_id: Option<&str>,
    entry_hash: &Hash,
    canonical: &[u8],
) -> Result<(), StoreError> {
    if u32::try_from(canonical.len()).is_err() {
        return Err(StoreError::OutOfRange("entry longer than 4 GiB".into()));
    }
    out.push(1);
    put_bytes(out, tenant.as_bytes());
    match decision_id {
        Some(id) => {
            out.push(1);
            put_bytes(out, id.as_bytes());
        }
        None => out.push(0),
    }
    out.extend_from_slice(&entry_hash.0);
    put_bytes(out, canonical);
    Ok(())
}

/// Appends a checkpoint record to a frame payload.
pub(super) fn encode_checkpoint(
    out: &mut Vec<u8>,
    tenant: &str,
    size: u64,
    issued: &str,
    note: &str,
) -> Result<(), StoreError> {
    if u32::try_from(note.len()).is_err() || u32::try_from(issued.len()).is_err() {
        return Err(StoreError::OutOfRange(
            "checkpoint longer than 4 GiB".into(),
        ));
    }
    out.push(2);
    put_bytes(out, tenant.as_bytes());
    out.extend_from_slice(&size.to_le_bytes());
    put_bytes(out, issued.as_bytes());
    put_bytes(out, note.as_bytes());
    Ok(())
}

#[cfg(test)]
fn encode(out: &mut Vec<u8>, rec: &Record) -> Result<(), StoreError> {
    match rec {
        Record::Entry {
            tenant,
            decision_id,
            entry_hash,
            canonical,
        } => encode_entry(out, tenant, decision_id.as_deref(), entry_hash, canonical),
        Record::Checkpoint {
            tenant,
            size,
            issued,
            note,
        } => encode_checkpoint(out, tenant, *size, issued, note),
    }
}

struct Cursor<'a>(&'a [u8]);

impl Cursor<'_> {
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        if self.0.len() < n {
            return None;
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Some(a)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    fn u32(&mut self) -> Option<u32> {
        self.take(4)?.try_into().ok().map(u32::from_le_bytes)
    }
    fn u64(&mut self) -> Option<u64> {
        self.take(8)?.try_into().ok().map(u64::from_le_bytes)
    }
    fn bytes(&mut self) -> Option<Vec<u8>> {
        let n = usize::try_from(self.u32()?).ok()?;
        self.take(n).map(<[u8]>::to_vec)
    }
    fn string(&mut self) -> Option<String> {
        String::from_utf8(self.bytes()?).ok()
    }
}

/// Decodes a frame payload of `count` records (its checksum already matched).
pub(super) fn decode(payload: &[u8], count: u32) -> Result<Vec<Record>, StoreError> {
    let bad = || StoreError::Corrupt("ledger segment: malformed record in a whole frame".into());
    let mut c = Cursor(payload);
    let mut out = Vec::new();
    for _ in 0..count {
        let rec = match c.u8().ok_or_else(bad)? {
            1 => {
                let tenant = c.string().ok_or_else(bad)?;
                let decision_id = match c.u8().ok_or_else(bad)? {
                    0 => None,
                    1 => Some(c.string().ok_or_else(bad)?),
                    _ => return Err(bad()),
                };
                let entry_hash = c.take(32).and_then(Hash::from_slice).ok_or_else(bad)?;
                let canonical = c.bytes().ok_or_else(bad)?;
                Record::Entry {
                    tenant,
                    decision_id,
                    entry_hash,
                    canonical,
                }
            }
            2 => Record::Checkpoint {
                tenant: c.string().ok_or_else(bad)?,
                size: c.u64().ok_or_else(bad)?,
                issued: c.string().ok_or_else(bad)?,
                note: c.string().ok_or_else(bad)?,
            },
            _ => return Err(bad()),
        };
        out.push(rec);
    }
    if !c.0.is_empty() {
        return Err(bad());
    }
    Ok(out)
}

fn checksum(header32: &[u8], payload: &[u8]) -> Hash {
    let mut buf = [0u8; 64];
    buf[..32].copy_from_slice(header32);
    buf[32..].copy_from_slice(&Hash::digest(payload).0);
    Hash::digest(&buf)
}

/// The frame of `payload` as written: header, payload, zero padding to [`ALIGN`].
fn frame(out: &mut Vec<u8>, generation: u64, count: u32, payload: &[u8]) -> Result<(), StoreError> {
    let len = u32::try_from(payload.len())
        .map_err(|_| StoreError::OutOfRange("ledger batch longer than 4 GiB".into()))?;
    out.clear();
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&generation.to_le_bytes());
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&count.to_le_bytes());
    out.extend_from_slice(&[0u8; 8]);
    let sum = checksum(&out[..32], payload);
    out.extend_from_slice(&sum.0);
    out.extend_from_slice(payload);
    let padded = out.len().next_multiple_of(ALIGN as usize);
    out.resize(padded, 0);
    Ok(())
}

/// The length on disk of a frame with `payload` bytes.
pub(super) fn frame_len(payload: usize) -> u64 {
    ((HEADER + payload) as u64).next_multiple_of(ALIGN)
}

/// The largest payload one frame may hold in a segment of `size` bytes: a quarter of it,
/// so that a full batch never waits for most of the ring.
pub(super) fn max_payload(size: u64) -> usize {
    usize::try_from(size / 4).unwrap_or(usize::MAX) - HEADER
}

/// Reads the frame at `pos` if it is whole, of generation `generation`, and fits: its record
/// count, payload and end.
fn read_frame(file: &File, size: u64, pos: u64, generation: u64) -> Option<(u32, Vec<u8>, u64)> {
    if pos + HEADER as u64 > size {
        return None;
    }
    let mut h = [0u8; HEADER];
    file.read_exact_at(&mut h, pos).ok()?;
    if h[..8] != MAGIC || u64::from_le_bytes(h[8..16].try_into().ok()?) != generation {
        return None;
    }
    let len = u32::from_le_bytes(h[16..20].try_into().ok()?);
    let count = u32::from_le_bytes(h[20..24].try_into().ok()?);
    let end = pos + frame_len(usize::try_from(len).ok()?);
    if end > size {
        return None;
    }
    let mut payload = vec![0u8; usize::try_from(len).ok()?];
    file.read_exact_at(&mut payload, pos + HEADER as u64).ok()?;
    // A torn frame was never acknowledged: the log ends before it.
    (checksum(&h[..32], &payload).0 == h[32..64]).then_some((count, payload, end))
}

/// The frames after `(generation, pos)` (the last frame the database holds), in order, each
/// with its generation and end position; stops at the first frame that is not there.
/// (Frames are looked for anywhere in the file, whatever ring size wrote them.)
pub(super) fn scan(
    path: &Path,
    generation: u64,
    pos: u64,
) -> Result<Vec<(u64, u64, Vec<Record>)>, StoreError> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    };
    let size = file.metadata()?.len();
    let mut out = Vec::new();
    let (mut generation, mut pos) = (generation + 1, pos);
    loop {
        // A frame starts where the last one ended or, if the writer wrapped, at 0.
        let found = read_frame(&file, size, pos, generation).or_else(|| {
            (pos != 0)
                .then(|| read_frame(&file, size, 0, generation))
                .flatten()
        });
        let Some((count, payload, end)) = found else {
            return Ok(out);
        };
        // A whole frame (its checksum matched) that does not decode is corruption, not
        // a torn write: an error, never a silent end of the log.
        out.push((generation, end, decode(&payload, count)?));
        generation += 1;
        pos = end;
    }
}

/// What the database holds durably: the newest frame generation that is in the
/// database and synced to disk (set by the checkpointer), with a condition variable
/// the writer waits on when the ring is full of frames not yet durable elsewhere.
#[derive(Debug, Default)]
pub(super) struct Durable {
    generation: AtomicU64,
    lock: Mutex<()>,
    cond: Condvar,
}

impl Durable {
    pub(super) fn new(generation: u64) -> Durable {
        Durable {
            generation: AtomicU64::new(generation),
            ..Durable::default()
        }
    }

    pub(super) fn get(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    pub(super) fn advance(&self, generation: u64) {
        let _g = self.lock.lock().unwrap_or_else(PoisonError::into_inner);
        self.generation.fetch_max(generation, Ordering::AcqRel);
        self.cond.notify_all();
    }

    /// Waits up to `timeout` for the durable generation to reach `generation`.
    fn wait(&self, generation: u64, timeout: Duration) -> bool {
        let g = self.lock.lock().unwrap_or_else(PoisonError::into_inner);
        let (_g, _) = self
            .cond
            .wait_timeout_while(g, timeout, |_| self.get() < generation)
            .unwrap_or_else(PoisonError::into_inner);
        self.get() >= generation
    }
}

/// How far the file is allocated, shared by the writer and the zero-filler.
#[derive(Debug, Default)]
struct Fill {
    /// The highest byte the writer has written or is writing.
    writer_high: u64,
    /// Bytes from 0 that are allocated (zeros or frames).
    filled: u64,
    /// The store is closing.
    stop: bool,
}

/// The writer's end of the segment.
#[derive(Debug)]
pub(super) struct SegmentWriter {
    file: Arc<File>,
    size: u64,
    /// Generation of the last frame written.
    generation: u64,
    /// Where the next frame goes.
    pos: u64,
    /// Frames not yet known durable in the database: (generation, start, end).
    live: VecDeque<(u64, u64, u64)>,
    fill: Arc<Mutex<Fill>>,
    buf: Vec<u8>,
}

impl SegmentWriter {
    /// Opens (creating) the segment at `path`, continuing after frame `generation` ending at
    /// `pos`, and starts the zero-filler if the file is not fully allocated yet.
    pub(super) fn open(
        path: &Path,
        size: u64,
        generation: u64,
        pos: u64,
    ) -> Result<SegmentWriter, StoreError> {
        let created = !path.exists();
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        if created {
            // The new file's name must survive a crash before any frame in it counts.
            file.sync_all()?;
            if let Some(dir) = path.parent() {
                let dir = if dir.as_os_str().is_empty() {
                    Path::new(".")
                } else {
                    dir
                };
                File::open(dir)?.sync_all()?;
            }
        }
        let len = file.metadata()?.len();
        // A ring once larger keeps its size (its frames may lie past a smaller one).
        let size = size.max(len);
        let pos = if pos >= size { 0 } else { pos };
        let file = Arc::new(file);
        let fill = Arc::new(Mutex::new(Fill {
            writer_high: pos,
            filled: len.min(size),
            stop: false,
        }));
        if len < size {
            let (file, fill) = (Arc::clone(&file), Arc::clone(&fill));
            std::thread::Builder::new()
                .name("tollgate-segment-fill".into())
                .spawn(move || zero_fill(&file, &fill, size))?;
        }
        Ok(SegmentWriter {
            file,
            size,
            generation,
            pos,
            live: VecDeque::new(),
            fill,
            buf: Vec::new(),
        })
    }

    /// The largest payload a frame may carry.
    pub(super) fn max_payload(&self) -> usize {
        max_payload(self.size)
    }

    /// Writes `payload` (`count` records) as the next frame and syncs it; returns its
    /// generation. Before overwriting older frames it waits (up to `patience`) until the
    /// database holds them durably, asking `nudge` to make it so.
    pub(super) fn append(
        &mut self,
        payload: &[u8],
        count: u32,
        durable: &Durable,
        nudge: &dyn Fn(),
        patience: Duration,
    ) -> Result<(u64, u64), StoreError> {
        let len = frame_len(payload.len());
        if payload.len() > self.max_payload() {
            return Err(StoreError::OutOfRange(format!(
                "a ledger batch of {} bytes does not fit the segment",
                payload.len()
            )));
        }
        let start = if self.pos + len > self.size {
            0
        } else {
            self.pos
        };
        let end = start + len;
        // INVARIANT: a frame is overwritten only once the database holds it durably,
        // so a crash never loses an acknowledged entry from both places.
        let deadline = Instant::now() + patience;
        loop {
            let d = durable.get();
            while self.live.front().is_some_and(|&(g, _, _)| g <= d) {
                self.live.pop_front();
            }
            let blocking = self
                .live
                .iter()
                .filter(|&&(_, s, e)| s < end && start < e)
                .map(|&(g, _, _)| g)
                .max();
            let Some(needed) = blocking else { break };
            nudge();
            let now = Instant::now();
            if now >= deadline {
                return Err(StoreError::BatchFailed(
                    "the ledger index is too far behind the segment".into(),
                ));
            }
            durable.wait(needed, (deadline - now).min(Duration::from_millis(5)));
        }
        let generation = self.generation + 1;
        let mut buf = std::mem::take(&mut self.buf);
        let written = frame(&mut buf, generation, count, payload).and_then(|()| {
            {
                let mut f = self.fill.lock().unwrap_or_else(PoisonError::into_inner);
                f.writer_high = f.writer_high.max(end);
            }
            self.file.write_all_at(&buf, start)?;
            self.file.sync_data()?;
            Ok(())
        });
        self.buf = buf;
        // On an error nothing moves: the next batch takes this generation and place,
        // and overwrites whatever part of this frame reached the disk.
        written?;
        self.generation = generation;
        self.pos = end;
        self.live.push_back((generation, start, end));
        Ok((generation, end))
    }
}

/// Writes zeros from the allocated end of the file towards `size`, a chunk at a time,
/// staying up to [`FILL_AHEAD`] ahead of the writer (so a store that writes little
/// allocates little), and never where the writer has written: every byte below the
/// writer's highest frame end is the writer's. Stops when the store closes.
fn zero_fill(file: &File, fill: &Mutex<Fill>, size: u64) {
    let zeros = vec![0u8; FILL_CHUNK as usize];
    let mut unsynced = 0u64;
    loop {
        let wrote = {
            let mut f = fill.lock().unwrap_or_else(PoisonError::into_inner);
            // Below `writer_high` the writer has written (or is writing) its frames.
            let at = f.filled.max(f.writer_high);
            if f.stop || at >= size {
                return;
            }
            if at >= f.writer_high + FILL_AHEAD {
                false
            } else {
                let n = FILL_CHUNK.min(size - at);
                // Under the lock: the writer cannot write past `at` meanwhile, so no
                // frame is ever overwritten with zeros.
                if file.write_all_at(&zeros[..n as usize], at).is_err() {
                    return;
                }
                f.filled = at + n;
                unsynced += n;
                true
            }
        };
        if unsynced >= FILL_SYNC || (!wrote && unsynced > 0) {
            if file.sync_data().is_err() {
                return;
            }
            unsynced = 0;
        }
        if !wrote {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for SegmentWriter {
    fn drop(&mut self) {
        self.fill
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .stop = true;
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "a test fails on any error")]
mod tests {
    use super::*;

    fn entry(i: u8) -> Record {
        Record::Entry {
            tenant: "acme".into(),
            decision_id: i.is_multiple_of(2).then(|| format!("dec_{i}")),
            entry_hash: Hash([i; 32]),
            canonical: vec![i; 100 + usize::from(i)],
        }
    }

    #[test]
    fn records_round_trip() {
        let recs = vec![
            entry(1),
            entry(2),
            Record::Checkpoint {
                tenant: "acme".into(),
                size: 3,
                issued: "2026-01-01T00:00:00Z".into(),
                note: "note\n".into(),
            },
        ];
        let mut payload = Vec::new();
        for r in &recs {
            encode(&mut payload, r).unwrap();
        }
        assert_eq!(decode(&payload, 3).unwrap(), recs);
        assert!(decode(&payload, 4).is_err());
        assert!(decode(&payload[..payload.len() - 1], 3).is_err());
    }

    #[test]
    fn frames_are_read_back_in_order_across_a_wrap_and_stop_at_a_torn_frame() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.segment");
        let size = 64 << 10;
        let durable = Durable::new(0);
        let mut w = SegmentWriter::open(&path, size, 0, 0).unwrap();
        let mut ends = Vec::new();
        for i in 0..40u8 {
            let mut payload = Vec::new();
            encode(&mut payload, &entry(i)).unwrap();
            // Everything before this frame is "in the database".
            durable.advance(u64::from(i));
            let (generation, end) = w
                .append(&payload, 1, &durable, &|| {}, Duration::from_secs(1))
                .unwrap();
            assert_eq!(generation, u64::from(i) + 1);
            ends.push(end);
        }
        // 40 frames of 4 KiB in 64 KiB: the writer wrapped twice.
        let got = scan(&path, 30, ends[29]).unwrap();
        assert_eq!(got.len(), 10);
        for (k, (generation, _, recs)) in got.iter().enumerate() {
            assert_eq!(*generation, 31 + k as u64);
            assert_eq!(recs, &vec![entry(30 + k as u8)]);
        }
        // A stale starting point finds nothing (its next generation was overwritten).
        assert!(scan(&path, 2, ends[1]).unwrap().is_empty());
        // Tear the frame of generation 35: the scan stops before it.
        let f = OpenOptions::new().write(true).open(&path).unwrap();
        let start = ends[33];
        f.write_all_at(&[0xff; 8], start + 100).unwrap();
        let got = scan(&path, 30, ends[29]).unwrap();
        assert_eq!(got.len(), 4);
    }

    #[test]
    fn a_frame_not_durable_elsewhere_is_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.segment");
        let size = 16 << 10;
        let durable = Durable::new(0);
        let mut w = SegmentWriter::open(&path, size, 0, 0).unwrap();
        let mut payload = Vec::new();
        encode(&mut payload, &entry(7)).unwrap();
        for _ in 0..4 {
            w.append(&payload, 1, &durable, &|| {}, Duration::from_millis(50))
                .unwrap();
        }
        // The ring is full of frames the database does not hold: the fifth must wait,
        // and fails when nothing makes them durable.
        let err = w
            .append(&payload, 1, &durable, &|| {}, Duration::from_millis(50))
            .unwrap_err();
        assert!(matches!(err, StoreError::BatchFailed(_)), "{err:?}");
        durable.advance(1);
        let (generation, end) = w
            .append(&payload, 1, &durable, &|| {}, Duration::from_millis(50))
            .unwrap();
        assert_eq!((generation, end), (5, 4096));
        let got = scan(&path, 4, 16 << 10).unwrap();
        assert_eq!(got.len(), 1);
    }
}
