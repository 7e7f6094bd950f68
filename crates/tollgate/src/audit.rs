//! `tollgate audit …` and `tollgate keys …`.

use std::fs;
use std::io::{BufRead as _, BufReader, BufWriter, Write as _};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use clap::{Args, Subcommand};
use serde::{Deserialize, Serialize};

use tollgate_ledger::{
    Dossier, Jwk, Jwks, NoteSigner, NoteVerifier, SignedCheckpoint, Verified, VerifyFailure,
    public_key_pem, verify_dossier,
};
use tollgate_store::{
    KeyStore as _, LedgerStore as _, SigningKeyRecord, SqliteConfig, SqliteStore, keyfile,
};

/// The signing key file inside a data directory (PKCS#8 PEM, mode 0600).
const KEY_FILE: &str = "signing-key.pem";
/// The note key name of the server's signing key.
const KEY_NAME: &str = "tollgate";

#[derive(Debug, Subcommand)]
pub(crate) enum AuditCommand {
    /// Verify every hash, the chain, and every checkpoint's signature and root.
    #[command(after_help = "Examples:
  tollgate audit verify --data-dir /var/lib/tollgate
  tollgate audit verify --data-dir /var/lib/tollgate --tenant acme --json
  tollgate audit verify --file acme.jsonl --key 'tollgate+1a2b3c4d+AV8…'

Prints `OK: N entries, root …` per tenant, or the first bad sequence number and what
is wrong there. Exit status: 0 verified, 1 not verified, 2 could not run.")]
    Verify(VerifyArgs),
    /// Write a tenant's ledger as JSON Lines (one entry a line), with a
    /// `<FILE>.meta.json` beside it holding the checkpoints and public keys.
    #[command(after_help = "Examples:
  tollgate audit export --data-dir /var/lib/tollgate --tenant acme -o acme.jsonl
  tollgate audit export --data-dir /var/lib/tollgate --tenant acme | head")]
    Export(ExportArgs),
    /// Check a dossier alone, offline: entry hash, inclusion proof, checkpoint signature.
    #[command(after_help = "Examples:
  tollgate audit verify-dossier dossier.json
  tollgate audit verify-dossier dossier.json --key 'tollgate+1a2b3c4d+AV8…' --json

Without --key the dossier's own keys are used: that proves integrity, not origin.")]
    VerifyDossier(VerifyDossierArgs),
    /// Check a verdict's signature alone, offline: a response of `POST /v1/decisions`
    /// or `GET /v1/decisions/{id}` as received, signed alone (`Ed25519`) or in a batch
    /// (`Ed25519-Merkle-batch`: the batch root's signature and the audit path).
    #[command(after_help = "Examples:
  curl -s http://127.0.0.1:8765/.well-known/jwks.json > jwks.json
  tollgate audit verify-verdict verdict.json --jwks jwks.json
  tollgate audit verify-verdict verdict.json --jwks jwks.json --json

Exit status: 0 verified, 1 not verified, 2 could not run.")]
    VerifyVerdict(VerifyVerdictArgs),
    /// Build the dossier (proof part) of one entry against the latest checkpoint.
    #[command(after_help = "Example:
  tollgate audit dossier --data-dir /var/lib/tollgate --tenant acme --seq 41 -o d.json")]
    Dossier(DossierArgs),
    /// Sign and store a checkpoint of a tenant's ledger now (creates the signing
    /// key in the data directory on first use).
    #[command(after_help = "Example:
  tollgate audit checkpoint --data-dir /var/lib/tollgate --tenant acme")]
    Checkpoint(CheckpointArgs),
    /// Keep a verified copy of a tenant's log (C2SP tlog-tiles) from a running server;
    /// each later sync fetches only new tiles and proves the stored checkpoint's tree
    /// is a prefix of the new one.
    #[command(after_help = "Examples:
  tollgate audit mirror http://127.0.0.1:8765 ./acme-log --tenant acme --api-key $KEY
  tollgate audit mirror https://tollgate.example/tlog/acme ./acme-log --key 'tollgate+1a2b3c4d+AV8…'

On the first sync the server's published keys (JWKS) are pinned in DIR unless --key is
given. Exit status: 0 verified and stored, 1 the server's log is inconsistent with the
mirror or its checkpoint is not validly signed (DIR keeps its last verified state),
2 could not run.")]
    Mirror(crate::mirror::MirrorArgs),
}

#[derive(Debug, Subcommand)]
pub(crate) enum KeysCommand {
    /// Print the public signing keys as signed-note verifier keys, JWKS and PEM.
    #[command(after_help = "Example:
  tollgate keys show --data-dir /var/lib/tollgate")]
    Show {
        /// The data directory.
        #[arg(long, env = "TOLLGATE_DATA_DIR")]
        data_dir: PathBuf,
        /// Print JSON: `{"verifier_keys", "jwks", "pem"}`.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Args)]
pub(crate) struct VerifyArgs {
    /// Verify the live store in this data directory.
    #[arg(
        long,
        env = "TOLLGATE_DATA_DIR",
        conflicts_with = "file",
        required_unless_present = "file"
    )]
    data_dir: Option<PathBuf>,
    /// Only this tenant (default: every tenant).
    #[arg(long)]
    tenant: Option<String>,
    /// Verify an export file (JSON Lines) instead.
    #[arg(long)]
    file: Option<PathBuf>,
    /// The export's metadata (default: `<FILE>.meta.json` if it exists).
    #[arg(long, requires = "file")]
    meta: Option<PathBuf>,
    /// A trusted checkpoint key, `name+keyid+base64` (repeatable). Default: the keys
    /// of the data directory, or of the export's metadata.
    #[arg(long = "key")]
    keys: Vec<String>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct ExportArgs {
    /// The data directory.
    #[arg(long, env = "TOLLGATE_DATA_DIR")]
    data_dir: PathBuf,
    /// The tenant.
    #[arg(long)]
    tenant: String,
    /// Output file (default: standard output, without metadata).
    #[arg(short, long)]
    output: Option<PathBuf>,
    /// Print a JSON summary `{"tenant", "entries", "output", "meta"}` (needs
    /// `--output`: without it standard output is the ledger itself).
    #[arg(long, requires = "output")]
    json: bool,
    /// `ledger` (the verifiable export lines, with a `.meta.json` beside a file) or
    /// `cloudevents` (one CloudEvents 1.0 JSON event a line, as the SIEM stream sends
    /// them; docs/notifications.md).
    #[arg(long, default_value = "ledger", value_parser = ["ledger", "cloudevents"])]
    format: String,
}

#[derive(Debug, Args)]
pub(crate) struct VerifyDossierArgs {
    /// The dossier JSON file.
    file: PathBuf,
    /// A trusted checkpoint key, `name+keyid+base64` (repeatable).
    #[arg(long = "key")]
    keys: Vec<String>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct VerifyVerdictArgs {
    /// The response body (JSON), exactly as received.
    file: PathBuf,
    /// The trusted keys: the server's `/.well-known/jwks.json`, saved to a file.
    #[arg(long)]
    jwks: PathBuf,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct DossierArgs {
    /// The data directory.
    #[arg(long, env = "TOLLGATE_DATA_DIR")]
    data_dir: PathBuf,
    /// The tenant.
    #[arg(long)]
    tenant: String,
    /// The entry's sequence number.
    #[arg(long)]
    seq: u64,
    /// Output file (default: standard output).
    #[arg(short, long)]
    output: Option<PathBuf>,
    /// Print JSON: the dossier itself, or with `--output` a summary
    /// `{"tenant", "seq", "tree_size", "output"}`.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct CheckpointArgs {
    /// The data directory.
    #[arg(long, env = "TOLLGATE_DATA_DIR")]
    data_dir: PathBuf,
    /// The tenant.
    #[arg(long)]
    tenant: String,
    /// Print JSON: `{"tenant", "size", "root", "checkpoint"}` (the signed note as text).
    #[arg(long)]
    json: bool,
}

/// What `export` writes beside the entries.
#[derive(Debug, Serialize, Deserialize)]
struct ExportMeta {
    tenant: String,
    entries: u64,
    checkpoints: Vec<String>,
    verifier_keys: Vec<String>,
    jwks: Jwks,
}

pub(crate) fn run(cmd: AuditCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        AuditCommand::Verify(a) => verify(a),
        AuditCommand::Export(a) => export(a),
        AuditCommand::VerifyDossier(a) => verify_dossier_cmd(a),
        AuditCommand::VerifyVerdict(a) => verify_verdict_cmd(a),
        AuditCommand::Dossier(a) => dossier(a),
        AuditCommand::Checkpoint(a) => checkpoint(a),
        AuditCommand::Mirror(a) => crate::mirror::run(a),
    }
}

pub(crate) fn run_keys(cmd: KeysCommand) -> anyhow::Result<ExitCode> {
    let KeysCommand::Show { data_dir, json } = cmd;
    let keys = data_dir_keys(&data_dir)?;
    if keys.is_empty() {
        bail!("no signing key in `{}`", data_dir.display());
    }
    let jwks = Jwks {
        keys: keys.iter().map(|k| Jwk::from_key(&k.key)).collect(),
    };
    if json {
        let v = serde_json::json!({
            "verifier_keys": keys.iter().map(NoteVerifier::to_vkey).collect::<Vec<_>>(),
            "jwks": jwks,
            "pem": keys.iter().map(|k| public_key_pem(&k.key)).collect::<Vec<_>>(),
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(ExitCode::SUCCESS);
    }
    for k in &keys {
        println!("{}", k.to_vkey());
    }
    println!("{}", serde_json::to_string_pretty(&jwks)?);
    for k in &keys {
        print!("{}", public_key_pem(&k.key));
    }
    Ok(ExitCode::SUCCESS)
}

fn open_store(data_dir: &Path, signer: Option<NoteSigner>) -> anyhow::Result<SqliteStore> {
    let db = data_dir.join("tollgate.db");
    if signer.is_none() && !db.exists() {
        bail!("no ledger database at `{}`", db.display());
    }
    let mut cfg = SqliteConfig::in_dir(data_dir);
    // Without a signer nothing is written: read-only, so it works beside a running
    // server (which holds the data directory's write lock).
    let opened = match signer {
        None => SqliteStore::open_read_only(cfg),
        Some(signer) => {
            cfg.signer = Some(signer);
            SqliteStore::open(cfg)
        }
    };
    opened.with_context(|| format!("opening `{}`", db.display()))
}

/// The signer of a data directory, creating its key (mode 0600) on first use.
fn data_dir_signer(data_dir: &Path, store: Option<&SqliteStore>) -> anyhow::Result<NoteSigner> {
    let (key, created) = keyfile::load_or_create(&data_dir.join(KEY_FILE))?;
    let signer = NoteSigner::new(KEY_NAME, key)?;
    if let Some(store) = store
        && created
    {
        store.put_signing_key(&SigningKeyRecord {
            name: KEY_NAME.into(),
            public_key: signer.verifier().key.to_bytes(),
            created_ms: now_ms(),
            retired_ms: None,
        })?;
    }
    Ok(signer)
}

/// Trusted keys of a data directory: the key file's public half and every key the
/// store recorded (rotated keys stay, so old checkpoints stay verifiable).
fn data_dir_keys(data_dir: &Path) -> anyhow::Result<Vec<NoteVerifier>> {
    let mut keys = Vec::new();
    let path = data_dir.join(KEY_FILE);
    if path.exists() {
        keys.push(NoteVerifier::new(
            KEY_NAME,
            keyfile::load(&path)?.verifying_key(),
        )?);
    }
    if data_dir.join("tollgate.db").exists() {
        let store = open_store(data_dir, None)?;
        for r in store.signing_keys()? {
            let key = tollgate_ledger::VerifyingKey::from_bytes(&r.public_key).map_err(|_| {
                anyhow::anyhow!("stored signing key `{}` is not a valid key", r.name)
            })?;
            let v = NoteVerifier::new(&r.name, key)?;
            if !keys.contains(&v) {
                keys.push(v);
            }
        }
    }
    Ok(keys)
}

fn parse_keys(keys: &[String]) -> anyhow::Result<Vec<NoteVerifier>> {
    keys.iter()
        .map(|k| NoteVerifier::from_vkey(k).with_context(|| format!("--key `{k}`")))
        .collect()
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// RFC 3339 UTC with seconds, from the system clock (civil-from-days, Howard Hinnant).
fn now_rfc3339() -> String {
    let secs = now_ms().div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[derive(Debug, Serialize)]
struct Report {
    ok: bool,
    tenant: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    verified: Option<Verified>,
    #[serde(skip_serializing_if = "Option::is_none")]
    failure: Option<VerifyFailure>,
}

fn report(
    tenant: &str,
    result: Result<Verified, VerifyFailure>,
    json: bool,
) -> anyhow::Result<bool> {
    let ok = result.is_ok();
    if json {
        let (verified, failure) = match result {
            Ok(v) => (Some(v), None),
            Err(f) => (None, Some(f)),
        };
        println!(
            "{}",
            serde_json::to_string(&Report {
                ok,
                tenant: tenant.into(),
                verified,
                failure
            })?
        );
    } else {
        match result {
            Ok(v) => println!(
                "OK: {} entries, root {} (tenant {tenant}, {} checkpoints)",
                v.entries, v.root, v.checkpoints
            ),
            Err(f) => println!(
                "FAILED: tenant {tenant}: first bad seq {}: {}",
                f.seq, f.problem
            ),
        }
    }
    Ok(ok)
}

fn verify(a: VerifyArgs) -> anyhow::Result<ExitCode> {
    let mut all_ok = true;
    if let Some(file) = &a.file {
        let meta_path = a.meta.clone().unwrap_or_else(|| sidecar(file));
        let meta: Option<ExportMeta> = if meta_path.exists() {
            Some(
                serde_json::from_slice(&fs::read(&meta_path)?)
                    .with_context(|| format!("reading `{}`", meta_path.display()))?,
            )
        } else {
            None
        };
        let keys = if a.keys.is_empty() {
            let vkeys = meta
                .as_ref()
                .map(|m| m.verifier_keys.clone())
                .unwrap_or_default();
            if !vkeys.is_empty() && !a.json {
                eprintln!(
                    "note: trusting the keys in `{}`; pass --key to pin them",
                    meta_path.display()
                );
            }
            parse_keys(&vkeys)?
        } else {
            parse_keys(&a.keys)?
        };
        let checkpoints = meta
            .as_ref()
            .map(|m| {
                m.checkpoints
                    .iter()
                    .map(|c| SignedCheckpoint::parse(c))
                    .collect::<Result<Vec<_>, _>>()
            })
            .transpose()?
            .unwrap_or_default();
        let reader = BufReader::with_capacity(
            1 << 20,
            fs::File::open(file).with_context(|| format!("opening `{}`", file.display()))?,
        );
        let mut v = tollgate_ledger::Verifier::new(
            a.tenant
                .clone()
                .or_else(|| meta.as_ref().map(|m| m.tenant.clone())),
            &checkpoints,
            &keys,
        );
        let mut failure = None;
        for line in reader.lines() {
            if let Err(f) = v.push_line(&line?) {
                failure = Some(f);
                break;
            }
        }
        let tenant = a
            .tenant
            .clone()
            .or_else(|| meta.as_ref().map(|m| m.tenant.clone()))
            .unwrap_or_default();
        let result = match failure {
            Some(f) => Err(f),
            None => v.finish(meta.as_ref().map(|m| m.entries)),
        };
        all_ok &= report(&tenant, result, a.json)?;
    } else if let Some(dir) = &a.data_dir {
        let keys = if a.keys.is_empty() {
            data_dir_keys(dir)?
        } else {
            parse_keys(&a.keys)?
        };
        let store = open_store(dir, None)?;
        let tenants = match &a.tenant {
            Some(t) => vec![t.clone()],
            None => store.ledger_tenants()?,
        };
        if tenants.is_empty() && !a.json {
            println!("OK: no ledger in `{}`", dir.display());
        }
        for t in tenants {
            let result = store.verify(&t, &keys)?;
            all_ok &= report(&t, result, a.json)?;
        }
    }
    Ok(if all_ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn sidecar(file: &Path) -> PathBuf {
    let mut s = file.as_os_str().to_owned();
    s.push(".meta.json");
    PathBuf::from(s)
}

fn export(a: ExportArgs) -> anyhow::Result<ExitCode> {
    let store = open_store(&a.data_dir, None)?;
    let out: Box<dyn std::io::Write> = match &a.output {
        Some(p) => {
            Box::new(fs::File::create(p).with_context(|| format!("creating `{}`", p.display()))?)
        }
        None => Box::new(std::io::stdout().lock()),
    };
    let mut out = BufWriter::with_capacity(1 << 20, out);
    let mut n = 0u64;
    if a.format == "cloudevents" {
        let source = tollgate_server::notify::payload::source(None, &a.tenant);
        store.scan(&a.tenant, &mut |row| {
            let event = tollgate_server::notify::payload::cloudevent(&row.to_entry()?, &source);
            writeln!(out, "{}", serde_json::to_string(&event)?)?;
            n += 1;
            Ok(())
        })?;
        out.flush()?;
        drop(out);
        if let Some(path) = &a.output {
            if a.json {
                let v = serde_json::json!({
                    "tenant": a.tenant,
                    "entries": n,
                    "output": path,
                    "format": "cloudevents",
                });
                println!("{v}");
            } else {
                eprintln!(
                    "exported {n} entries of `{}` to `{}` as CloudEvents",
                    a.tenant,
                    path.display()
                );
            }
        }
        return Ok(ExitCode::SUCCESS);
    }
    store.scan(&a.tenant, &mut |row| {
        let hash = tollgate_ledger::Hash::from_slice(&row.entry_hash).ok_or_else(|| {
            tollgate_store::StoreError::Corrupt(format!("entry hash of seq {}", row.seq))
        })?;
        writeln!(
            out,
            "{}",
            tollgate_ledger::line_from_canonical(&row.canonical, &hash)?
        )?;
        n += 1;
        Ok(())
    })?;
    out.flush()?;
    drop(out);
    if let Some(path) = &a.output {
        let keys = data_dir_keys(&a.data_dir)?;
        let meta = ExportMeta {
            tenant: a.tenant.clone(),
            entries: n,
            checkpoints: store
                .checkpoints(&a.tenant)?
                .iter()
                .map(SignedCheckpoint::to_text)
                .collect::<Result<_, _>>()?,
            verifier_keys: keys.iter().map(NoteVerifier::to_vkey).collect(),
            jwks: Jwks {
                keys: keys.iter().map(|k| Jwk::from_key(&k.key)).collect(),
            },
        };
        fs::write(sidecar(path), serde_json::to_vec_pretty(&meta)?)?;
        if a.json {
            let v = serde_json::json!({
                "tenant": a.tenant,
                "entries": n,
                "output": path,
                "meta": sidecar(path),
            });
            println!("{v}");
        } else {
            eprintln!(
                "exported {n} entries of `{}` to `{}` (+ .meta.json)",
                a.tenant,
                path.display()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn checkpoint(a: CheckpointArgs) -> anyhow::Result<ExitCode> {
    let signer = data_dir_signer(&a.data_dir, None)?;
    let store = open_store(&a.data_dir, Some(signer.clone()))?;
    // Record the public key (idempotent) so rotation keeps it verifiable.
    if !store
        .signing_keys()?
        .iter()
        .any(|k| k.public_key == signer.verifier().key.to_bytes())
    {
        store.put_signing_key(&SigningKeyRecord {
            name: KEY_NAME.into(),
            public_key: signer.verifier().key.to_bytes(),
            created_ms: now_ms(),
            retired_ms: None,
        })?;
    }
    let cp = store.issue_checkpoint(&a.tenant, &now_rfc3339()).wait()?;
    if a.json {
        let v = serde_json::json!({
            "tenant": a.tenant,
            "size": cp.checkpoint.size,
            "root": cp.checkpoint.root.to_hex(),
            "checkpoint": cp.to_text()?,
        });
        println!("{v}");
    } else {
        print!("{}", cp.to_text()?);
    }
    Ok(ExitCode::SUCCESS)
}

fn dossier(a: DossierArgs) -> anyhow::Result<ExitCode> {
    let store = open_store(&a.data_dir, None)?;
    let entry = store
        .entry(&a.tenant, a.seq)?
        .with_context(|| format!("tenant `{}` has no entry {}", a.tenant, a.seq))?;
    let cp = match store.latest_checkpoint(&a.tenant)? {
        Some(cp) if cp.checkpoint.size > a.seq => cp,
        _ => bail!(
            "no checkpoint covers seq {} yet; run `tollgate audit checkpoint` first",
            a.seq
        ),
    };
    let proof = store.inclusion_proof(&a.tenant, a.seq, cp.checkpoint.size)?;
    let keys = data_dir_keys(&a.data_dir)?;
    let d = Dossier {
        entry,
        inclusion_proof: proof,
        checkpoint: cp.to_text()?,
        verifier_keys: keys.iter().map(NoteVerifier::to_vkey).collect(),
        jwks: Some(Jwks {
            keys: keys.iter().map(|k| Jwk::from_key(&k.key)).collect(),
        }),
    };
    let text = serde_json::to_string_pretty(&d)?;
    match &a.output {
        Some(p) => {
            fs::write(p, text + "\n")?;
            if a.json {
                let v = serde_json::json!({
                    "tenant": a.tenant,
                    "seq": a.seq,
                    "tree_size": cp.checkpoint.size,
                    "output": p,
                });
                println!("{v}");
            }
        }
        None => println!("{text}"),
    }
    Ok(ExitCode::SUCCESS)
}

fn verify_verdict_cmd(a: VerifyVerdictArgs) -> anyhow::Result<ExitCode> {
    let body: serde_json::Value = serde_json::from_slice(
        &fs::read(&a.file).with_context(|| format!("reading `{}`", a.file.display()))?,
    )
    .with_context(|| format!("`{}` is not JSON", a.file.display()))?;
    let jwks: Jwks = serde_json::from_slice(
        &fs::read(&a.jwks).with_context(|| format!("reading `{}`", a.jwks.display()))?,
    )
    .with_context(|| format!("`{}` is not a JWKS", a.jwks.display()))?;
    let result = tollgate_client::verify::body_signature(&body, &jwks);
    let algorithm = body["signature"]["algorithm"].as_str().unwrap_or("none");
    let id = body["decision_id"].as_str().unwrap_or("?");
    if a.json {
        let v = match &result {
            Ok(()) => serde_json::json!({"ok": true, "decision_id": id, "algorithm": algorithm,
                "batch_size": body["signature"]["batch"]["size"]}),
            Err(e) => serde_json::json!({"ok": false, "decision_id": id, "algorithm": algorithm,
                "error": e.to_string()}),
        };
        println!("{v}");
    } else {
        match &result {
            Ok(()) => match body["signature"]["batch"]["size"].as_u64() {
                Some(n) => {
                    println!("OK: verdict {id} is signed ({algorithm}, one of a batch of {n})")
                }
                None => println!("OK: verdict {id} is signed ({algorithm})"),
            },
            Err(e) => println!("FAILED: verdict {id}: {e}"),
        }
    }
    Ok(if result.is_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn verify_dossier_cmd(a: VerifyDossierArgs) -> anyhow::Result<ExitCode> {
    let d: Dossier = serde_json::from_slice(
        &fs::read(&a.file).with_context(|| format!("reading `{}`", a.file.display()))?,
    )
    .with_context(|| format!("`{}` is not a dossier", a.file.display()))?;
    let pinned = parse_keys(&a.keys)?;
    let result = verify_dossier(&d, (!pinned.is_empty()).then_some(pinned.as_slice()));
    let ok = result.is_ok();
    if a.json {
        let v = match &result {
            Ok(v) => {
                serde_json::json!({"ok": true, "tenant": v.tenant, "seq": d.entry.seq, "tree_size": v.entries, "root": v.root, "keys_pinned": !pinned.is_empty()})
            }
            Err(e) => {
                serde_json::json!({"ok": false, "tenant": d.entry.tenant, "seq": d.entry.seq, "error": e.to_string()})
            }
        };
        println!("{v}");
    } else {
        match result {
            Ok(v) => {
                println!(
                    "OK: entry {} of tenant {} is in the checkpoint of {} entries, root {}",
                    d.entry.seq, v.tenant, v.entries, v.root
                );
                if pinned.is_empty() {
                    eprintln!(
                        "note: checked with the dossier's own keys; pass --key to pin the server's key"
                    );
                }
            }
            Err(e) => println!("FAILED: seq {}: {e}", d.entry.seq),
        }
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
