//! `tollgate audit mirror URL DIR`: keeps a verified copy of a tenant's log in the C2SP
//! `tlog-tiles` layout, downloaded from a server's `/tlog/{tenant}/…` endpoints.
//!
//! Each sync fetches the signed checkpoint, checks its signature against the keys
//! pinned in DIR (the server's published keys, pinned on the first sync, or `--key`),
//! downloads only the tiles and entry bundles that are new or wider than the stored
//! ones, and checks, before anything is written: every downloaded partial tile starts
//! with the stored narrower one; every level-0 hash is the leaf hash of its entry;
//! every higher hash is the root of the full tile below it; the root computed from the
//! tiles is the checkpoint's root; and the stored checkpoint's tree is a prefix of the
//! new one (a consistency proof built from the tiles, checked against both roots). A
//! failed check leaves DIR as it was (the last verified state).

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use clap::Args;
use tollgate_ledger::tiles::{self, HASH_BYTES, TileId, TileSource, WIDTH, width_at};
use tollgate_ledger::{Jwks, NoteVerifier, SignedCheckpoint, merkle};

/// The note key name of the server's signing key.
const KEY_NAME: &str = "tollgate";
/// The file in DIR holding the pinned verifier keys, one a line.
const KEYS_FILE: &str = "verifier-keys";

#[derive(Debug, Args)]
pub(crate) struct MirrorArgs {
    /// The server's base URL (`http://host:8765`), or the log's own URL
    /// (`http://host:8765/tlog/acme`) when `--tenant` is not given.
    url: String,
    /// The mirror directory (created on first sync).
    dir: PathBuf,
    /// The tenant whose log to mirror.
    #[arg(long)]
    tenant: Option<String>,
    /// A trusted checkpoint key, `name+keyid+base64` (repeatable). Default: the keys
    /// pinned in DIR, or on the first sync the server's published JWKS.
    #[arg(long = "key")]
    keys: Vec<String>,
    /// An API key of the tenant with the `read` or `admin` scope (not needed for a
    /// public log).
    #[arg(long = "api-key", env = "TOLLGATE_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
    /// Print a JSON summary.
    #[arg(long)]
    json: bool,
}

/// What a sync found, for the report.
#[derive(Debug, serde::Serialize)]
struct Summary {
    ok: bool,
    tenant: String,
    old_size: u64,
    size: u64,
    root: String,
    tiles_fetched: usize,
    bundles_fetched: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    problem: Option<String>,
}

/// A check the server's data failed: reported, exit status 1, DIR untouched.
#[derive(Debug)]
struct Inconsistent(String);

pub(crate) fn run(a: MirrorArgs) -> anyhow::Result<ExitCode> {
    let (server, tenant) = log_url(&a.url, a.tenant.as_deref())?;
    let base = format!("{server}/tlog/{tenant}");
    let http = Http::new(a.api_key.clone())?;
    fs::create_dir_all(&a.dir).with_context(|| format!("creating `{}`", a.dir.display()))?;
    let outcome = sync(&http, &base, &server, &tenant, &a.dir, &a.keys)?;
    let (summary, ok) = match outcome {
        Ok(s) => (s, true),
        Err((Inconsistent(problem), old_size)) => (
            Summary {
                ok: false,
                tenant: tenant.clone(),
                old_size,
                size: old_size,
                root: String::new(),
                tiles_fetched: 0,
                bundles_fetched: 0,
                problem: Some(problem),
            },
            false,
        ),
    };
    if a.json {
        println!("{}", serde_json::to_string(&summary)?);
    } else if let Some(p) = &summary.problem {
        eprintln!(
            "INCONSISTENT: tenant {tenant}: {p}\nthe mirror in `{}` keeps its last verified state (size {})",
            a.dir.display(),
            summary.old_size
        );
    } else {
        println!(
            "OK: tenant {tenant}: {} → {} entries, root {}, {} tiles and {} entry bundles fetched",
            summary.old_size,
            summary.size,
            summary.root,
            summary.tiles_fetched,
            summary.bundles_fetched
        );
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// The server's base URL and the tenant.
fn log_url(url: &str, tenant: Option<&str>) -> anyhow::Result<(String, String)> {
    let url = url.trim_end_matches('/');
    if let Some(t) = tenant {
        return Ok((url.to_owned(), t.to_owned()));
    }
    match url.rsplit_once("/tlog/") {
        Some((root, t)) if !t.is_empty() && !t.contains('/') => Ok((root.to_owned(), t.to_owned())),
        _ => bail!("pass --tenant, or a URL ending in /tlog/<tenant>"),
    }
}

struct Http {
    client: reqwest::blocking::Client,
    api_key: Option<String>,
}

impl Http {
    fn new(api_key: Option<String>) -> anyhow::Result<Http> {
        let client = reqwest::blocking::Client::builder()
            .timeout(std::time::Duration::from_secs(60))
            .build()
            .context("building the HTTP client")?;
        Ok(Http { client, api_key })
    }

    /// GET `url`: the body of a 200, `None` for a 404, an error otherwise.
    fn get(&self, url: &str) -> anyhow::Result<Option<Vec<u8>>> {
        let mut req = self.client.get(url);
        if let Some(k) = &self.api_key {
            req = req.bearer_auth(k);
        }
        let resp = req.send().with_context(|| format!("GET {url}"))?;
        let status = resp.status();
        if status == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !status.is_success() {
            let text = resp.text().unwrap_or_default();
            bail!("GET {url}: {status}: {text}");
        }
        Ok(Some(
            resp.bytes().with_context(|| format!("GET {url}"))?.to_vec(),
        ))
    }

    fn need(&self, url: &str) -> anyhow::Result<Vec<u8>> {
        self.get(url)?
            .with_context(|| format!("GET {url}: 404 not found"))
    }
}

type Failed = (Inconsistent, u64);

/// One sync. The outer error: could not run (network, disk); the inner one: the
/// server's log does not verify against the mirror.
fn sync(
    http: &Http,
    base: &str,
    server: &str,
    tenant: &str,
    dir: &Path,
    extra_keys: &[String],
) -> anyhow::Result<Result<Summary, Failed>> {
    let fail = |why: String, old: u64| Ok(Err((Inconsistent(why), old)));
    // Trusted keys: pinned ones, --key ones, or (first sync, none given) the JWKS.
    let mut keys = read_keys(dir)?;
    for k in extra_keys {
        let v = NoteVerifier::from_vkey(k).with_context(|| format!("--key `{k}`"))?;
        if !keys.contains(&v) {
            keys.push(v);
        }
    }
    if keys.is_empty() {
        keys = published_keys(http, server)?;
    }
    // The stored (verified) state.
    let old = match fs::read_to_string(dir.join("checkpoint")) {
        Ok(text) => {
            Some(SignedCheckpoint::parse(&text).context("the stored checkpoint does not parse")?)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(e).context("reading the stored checkpoint"),
    };
    let (old_size, old_root) = old.as_ref().map_or((0, merkle::empty_root()), |c| {
        (c.checkpoint.size, c.checkpoint.root)
    });

    // The new checkpoint.
    let text = http.need(&format!("{base}/checkpoint"))?;
    let text = String::from_utf8(text).context("the checkpoint is not UTF-8")?;
    let new = match SignedCheckpoint::parse(&text) {
        Ok(c) => c,
        Err(e) => {
            return fail(
                format!("the server's checkpoint does not parse: {e}"),
                old_size,
            );
        }
    };
    if let Err(e) = new.verify(&keys) {
        return fail(
            format!("the checkpoint's signature does not verify with the pinned keys: {e}"),
            old_size,
        );
    }
    if !new.checkpoint.origin.ends_with(&format!("/{tenant}")) {
        return fail(
            format!(
                "the checkpoint is for origin `{}`, not tenant `{tenant}`",
                new.checkpoint.origin
            ),
            old_size,
        );
    }
    if let Some(o) = &old
        && o.checkpoint.origin != new.checkpoint.origin
    {
        return fail(
            format!(
                "origin changed from `{}` to `{}`",
                o.checkpoint.origin, new.checkpoint.origin
            ),
            old_size,
        );
    }
    let size = new.checkpoint.size;
    if size < old_size {
        return fail(
            format!(
                "the log shrank: the stored checkpoint has {old_size} entries, the server's {size}"
            ),
            old_size,
        );
    }

    // Download what is new or wider, checking prefixes against the stored tiles.
    let mut fetched: BTreeMap<(u8, u64), (u32, Vec<u8>)> = BTreeMap::new();
    let mut bundles: BTreeMap<u64, (u32, Vec<u8>)> = BTreeMap::new();
    let mut level: u8 = 0;
    while u32::from(level) * 8 < 64 && (size >> (8 * u32::from(level))) > 0 {
        let count = size >> (8 * u32::from(level));
        for index in 0..count.div_ceil(WIDTH) {
            let w_new = width_at(level, index, size);
            let w_old = width_at(level, index, old_size);
            if w_new == w_old {
                continue;
            }
            let id = TileId {
                level,
                index,
                width: w_new,
            };
            let data = http.need(&format!("{base}/{}", id.path()))?;
            if data.len() != w_new as usize * HASH_BYTES {
                return fail(
                    format!(
                        "tile {} has {} bytes, not {}",
                        id.path(),
                        data.len(),
                        w_new as usize * HASH_BYTES
                    ),
                    old_size,
                );
            }
            if w_old > 0 {
                let stored = read_tile(dir, level, index, w_old)?;
                if data.get(..stored.len()) != Some(stored.as_slice()) {
                    return fail(
                        format!(
                            "tile {level}/{index} changed: the server's first {w_old} hashes differ from the stored (verified) tile; history was rewritten"
                        ),
                        old_size,
                    );
                }
            }
            if level == 0 {
                let bundle = http.need(&format!("{base}/{}", id.entries_path()))?;
                let entries = match parse_bundle(&bundle) {
                    Some(e) => e,
                    None => {
                        return fail(
                            format!("entry bundle {} is malformed", id.entries_path()),
                            old_size,
                        );
                    }
                };
                if entries.len() != w_new as usize {
                    return fail(
                        format!(
                            "entry bundle {} holds {} entries, not {w_new}",
                            id.entries_path(),
                            entries.len()
                        ),
                        old_size,
                    );
                }
                if w_old > 0 {
                    let stored = read_bundle(dir, index, w_old)?;
                    if bundle.get(..stored.len()) != Some(stored.as_slice()) {
                        return fail(
                            format!(
                                "entry bundle {index} changed: its first {w_old} entries differ from the stored (verified) ones; history was rewritten"
                            ),
                            old_size,
                        );
                    }
                }
                for (i, entry) in entries.iter().enumerate() {
                    let leaf = merkle::leaf_hash(entry);
                    let at = i * HASH_BYTES;
                    if data.get(at..at + HASH_BYTES) != Some(&leaf.0[..]) {
                        return fail(
                            format!(
                                "entry {} (bundle {index}) does not hash to tile 0/{index}'s hash {i}",
                                index * WIDTH + i as u64
                            ),
                            old_size,
                        );
                    }
                }
                bundles.insert(index, (w_new, bundle));
            }
            fetched.insert((level, index), (w_new, data));
        }
        level += 1;
    }
    let overlay = Overlay {
        dir,
        fetched: &fetched,
        old_size,
    };
    // Every new hash above level 0 is the root of the full tile below it.
    for (&(level, index), (w_new, data)) in &fetched {
        if level == 0 {
            continue;
        }
        let w_old = width_at(level, index, old_size);
        for i in w_old..*w_new {
            let child_index = index * WIDTH + u64::from(i);
            let child = match overlay.tile(level - 1, child_index) {
                Ok(Some(c)) if c.len() == WIDTH as usize * HASH_BYTES => c,
                Ok(_) => {
                    return fail(
                        format!("tile {}/{child_index} is missing", level - 1),
                        old_size,
                    );
                }
                Err(e) => bail!(e),
            };
            let at = i as usize * HASH_BYTES;
            if data.get(at..at + HASH_BYTES) != Some(&tiles::subtree_root(&child).0[..]) {
                return fail(
                    format!(
                        "tile {level}/{index} hash {i} is not the root of tile {}/{child_index}",
                        level - 1
                    ),
                    old_size,
                );
            }
        }
    }
    // The root from tiles is the signed root.
    let root = match tiles::root(&overlay, size) {
        Ok(r) => r,
        Err(e) => return fail(format!("cannot compute the root from tiles: {e}"), old_size),
    };
    if root != new.checkpoint.root {
        return fail(
            format!(
                "the root computed from the tiles ({root}) is not the checkpoint's root ({})",
                new.checkpoint.root
            ),
            old_size,
        );
    }
    // The stored checkpoint's tree is a prefix of the new one.
    if old_size > 0 {
        if old_size == size {
            if old_root != root {
                return fail(
                    format!(
                        "same size {size}, different root: the stored checkpoint has {old_root}, the server's {root}"
                    ),
                    old_size,
                );
            }
        } else {
            let proof = match tiles::consistency_proof(&overlay, old_size, size) {
                Ok(p) => p,
                Err(e) => return fail(format!("no consistency proof from tiles: {e}"), old_size),
            };
            if let Err(e) = merkle::verify_consistency(old_size, size, &old_root, &root, &proof) {
                return fail(
                    format!(
                        "the stored checkpoint (size {old_size}, root {old_root}) is not a prefix of the server's (size {size}, root {root}): {e}"
                    ),
                    old_size,
                );
            }
        }
    }

    // Verified: write the new files, drop superseded partial ones, then the checkpoint.
    for (&(level, index), (w_new, data)) in &fetched {
        let id = TileId {
            level,
            index,
            width: *w_new,
        };
        write_file(&dir.join(id.path()), data)?;
        let w_old = width_at(level, index, old_size);
        if w_old > 0 && u64::from(w_old) < WIDTH {
            let old_id = TileId {
                level,
                index,
                width: w_old,
            };
            let _ = fs::remove_file(dir.join(old_id.path()));
        }
    }
    for (&index, (w_new, data)) in &bundles {
        let id = TileId {
            level: 0,
            index,
            width: *w_new,
        };
        write_file(&dir.join(id.entries_path()), data)?;
        let w_old = width_at(0, index, old_size);
        if w_old > 0 && u64::from(w_old) < WIDTH {
            let old_id = TileId {
                level: 0,
                index,
                width: w_old,
            };
            let _ = fs::remove_file(dir.join(old_id.entries_path()));
        }
    }
    let pinned: String = keys.iter().map(|k| k.to_vkey() + "\n").collect();
    write_file(&dir.join(KEYS_FILE), pinned.as_bytes())?;
    write_file(&dir.join("checkpoint"), text.as_bytes())?;
    Ok(Ok(Summary {
        ok: true,
        tenant: tenant.to_owned(),
        old_size,
        size,
        root: root.to_hex(),
        tiles_fetched: fetched.len(),
        bundles_fetched: bundles.len(),
        problem: None,
    }))
}

/// The server's published keys (its JWKS), pinned on the first sync.
fn published_keys(http: &Http, server: &str) -> anyhow::Result<Vec<NoteVerifier>> {
    let url = format!("{server}/.well-known/jwks.json");
    let jwks: Jwks =
        serde_json::from_slice(&http.need(&url)?).with_context(|| format!("{url}: not a JWKS"))?;
    let mut keys = Vec::new();
    for jwk in &jwks.keys {
        let key = jwk
            .to_key()
            .with_context(|| format!("{url}: key `{}`", jwk.kid))?;
        keys.push(NoteVerifier::new(KEY_NAME, key)?);
    }
    if keys.is_empty() {
        bail!("{url} lists no keys");
    }
    Ok(keys)
}

fn read_keys(dir: &Path) -> anyhow::Result<Vec<NoteVerifier>> {
    let text = match fs::read_to_string(dir.join(KEYS_FILE)) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).context("reading the pinned keys"),
    };
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| NoteVerifier::from_vkey(l.trim()).with_context(|| format!("pinned key `{l}`")))
        .collect()
}

/// An entry bundle's entries (each a big-endian uint16 length and the bytes); `None`
/// if it is cut short.
fn parse_bundle(mut data: &[u8]) -> Option<Vec<Vec<u8>>> {
    let mut out = Vec::new();
    while !data.is_empty() {
        let len = u16::from_be_bytes([*data.first()?, *data.get(1)?]) as usize;
        out.push(data.get(2..2 + len)?.to_vec());
        data = data.get(2 + len..)?;
    }
    Some(out)
}

fn read_tile(dir: &Path, level: u8, index: u64, width: u32) -> anyhow::Result<Vec<u8>> {
    let id = TileId {
        level,
        index,
        width,
    };
    let path = dir.join(id.path());
    fs::read(&path).with_context(|| format!("the mirror's tile `{}` is missing", path.display()))
}

fn read_bundle(dir: &Path, index: u64, width: u32) -> anyhow::Result<Vec<u8>> {
    let id = TileId {
        level: 0,
        index,
        width,
    };
    let path = dir.join(id.entries_path());
    fs::read(&path)
        .with_context(|| format!("the mirror's entry bundle `{}` is missing", path.display()))
}

/// Writes through a temporary file and a rename, so a file is whole or absent.
fn write_file(path: &Path, data: &[u8]) -> anyhow::Result<()> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).with_context(|| format!("creating `{}`", parent.display()))?;
    }
    let tmp = path.with_extension("tmp");
    fs::write(&tmp, data).with_context(|| format!("writing `{}`", tmp.display()))?;
    fs::rename(&tmp, path).with_context(|| format!("writing `{}`", path.display()))?;
    Ok(())
}

/// The stored tiles with the downloaded ones over them.
struct Overlay<'a> {
    dir: &'a Path,
    fetched: &'a BTreeMap<(u8, u64), (u32, Vec<u8>)>,
    old_size: u64,
}

impl TileSource for Overlay<'_> {
    fn tile(&self, level: u8, index: u64) -> Result<Option<Vec<u8>>, String> {
        if let Some((_, data)) = self.fetched.get(&(level, index)) {
            return Ok(Some(data.clone()));
        }
        let w = width_at(level, index, self.old_size);
        if w == 0 {
            return Ok(None);
        }
        read_tile(self.dir, level, index, w)
            .map(Some)
            .map_err(|e| format!("{e:#}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundles_parse_and_refuse_cut_ones() {
        assert_eq!(parse_bundle(&[0, 1, 7, 0, 0]), Some(vec![vec![7], vec![]]));
        assert_eq!(parse_bundle(&[0, 2, 7]), None);
        assert_eq!(parse_bundle(&[0]), None);
    }

    #[test]
    fn log_urls() {
        assert_eq!(
            log_url("http://h:1/", Some("acme")).unwrap(),
            ("http://h:1".to_owned(), "acme".to_owned())
        );
        assert_eq!(
            log_url("http://h:1/tlog/acme", None).unwrap(),
            ("http://h:1".to_owned(), "acme".to_owned())
        );
        assert!(log_url("http://h:1", None).is_err());
    }
}
