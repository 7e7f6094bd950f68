//! `tollgate policy …`: validate and test policy files locally (no server), and
//! publish, activate, roll back, list, diff, run candidates, replay and apply a
//! directory against a running server.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context as _, bail};
use clap::Subcommand;
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};
use tollgate_core::policy::testing::{parse_test_file, run_tests};
use tollgate_core::{CompiledPolicy, PolicyFormat, compile_policy};

use crate::remote::Remote;

/// Exit status of a failing check (an invalid policy, a failing test).
const FAILED: u8 = 1;

#[derive(Debug, Subcommand)]
pub(crate) enum PolicyCommand {
    /// Compile policy files locally and report every problem (no server needed).
    #[command(after_help = "Example:
  tollgate policy validate policies/*.yaml
Exit status: 0 all valid, 1 a policy is invalid, 2 error.")]
    Validate {
        /// Policy files (YAML, TOML or JSON).
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Run policy test files (`NAME.test.yaml` next to `NAME.yaml`), like `opa test`.
    #[command(after_help = "Examples:
  tollgate policy test examples/policies/treasury.test.yaml
  tollgate policy test examples/policies          # every *.test.yaml in the folder
Exit status: 0 all cases pass, 1 a case fails, 2 error.")]
    Test {
        /// Test files, or folders to search for `*.test.yaml`.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// Publish a policy file as a new version (nothing if the newest has the same text).
    #[command(after_help = "Example:
  tollgate policy publish treasury.yaml --activate")]
    Publish {
        /// The policy file.
        file: PathBuf,
        /// Also make the version active.
        #[arg(long)]
        activate: bool,
        /// live or test.
        #[arg(long, default_value = "live")]
        environment: String,
        #[command(flatten)]
        remote: Remote,
    },
    /// Make a version active (an older version = a roll back).
    #[command(after_help = "Example:
  tollgate policy activate treasury 3")]
    Activate {
        /// Policy id.
        id: String,
        /// Version.
        version: u64,
        /// live or test.
        #[arg(long, default_value = "live")]
        environment: String,
        #[command(flatten)]
        remote: Remote,
    },
    /// Activate the version before the active one (or `--to N`).
    #[command(after_help = "Example:
  tollgate policy rollback treasury")]
    Rollback {
        /// Policy id.
        id: String,
        /// The version to return to.
        #[arg(long)]
        to: Option<u64>,
        /// live or test.
        #[arg(long, default_value = "live")]
        environment: String,
        #[command(flatten)]
        remote: Remote,
    },
    /// List policies, their versions and what is active.
    List {
        #[command(flatten)]
        remote: Remote,
    },
    /// Show a policy's versions, or one version's text.
    Show {
        /// Policy id.
        id: String,
        /// Print this version's text.
        #[arg(long)]
        version: Option<u64>,
        #[command(flatten)]
        remote: Remote,
    },
    /// Diff two versions: rules added, removed, changed, and the text.
    #[command(after_help = "Example:
  tollgate policy diff treasury 1 2")]
    Diff {
        /// Policy id.
        id: String,
        /// From version.
        from: u64,
        /// To version.
        to: u64,
        #[command(flatten)]
        remote: Remote,
    },
    /// Run a version as a candidate beside the active one on live traffic (`--stop` ends it).
    #[command(after_help = "Examples:
  tollgate policy candidate treasury 2
  tollgate policy candidate treasury --stop")]
    Candidate {
        /// Policy id.
        id: String,
        /// The candidate version.
        #[arg(required_unless_present = "stop")]
        version: Option<u64>,
        /// Stop the running candidate.
        #[arg(long)]
        stop: bool,
        /// live or test.
        #[arg(long, default_value = "live")]
        environment: String,
        #[command(flatten)]
        remote: Remote,
    },
    /// How many verdicts the running candidate would have changed, and which.
    Report {
        /// Policy id.
        id: String,
        /// live or test.
        #[arg(long, default_value = "live")]
        environment: String,
        #[command(flatten)]
        remote: Remote,
    },
    /// Evaluate a version over the tenant's recorded decisions and report the flips.
    #[command(after_help = "Example:
  tollgate policy replay treasury 2 --since 2026-11-01T00:00:00Z")]
    Replay {
        /// Policy id.
        id: String,
        /// The version to replay.
        version: u64,
        /// Only decisions at or after this RFC 3339 time.
        #[arg(long)]
        since: Option<String>,
        /// Only decisions before this RFC 3339 time.
        #[arg(long)]
        until: Option<String>,
        #[command(flatten)]
        remote: Remote,
    },
    /// Publish and activate what changed in a folder of policy files (for CI).
    #[command(after_help = "Example:
  tollgate policy apply policies/ --environment live
Every file is validated first; if one is invalid nothing is published.
Unchanged files (same content hash as the active version) publish nothing.
Exit status: 0 applied (or nothing to do), 1 a policy is invalid, 2 error.")]
    Apply {
        /// The folder (`*.yaml`, `*.yml`, `*.toml`, `*.json`; `*.test.yaml` are tests).
        dir: PathBuf,
        /// live or test.
        #[arg(long, default_value = "live")]
        environment: String,
        /// Publish only; do not activate.
        #[arg(long)]
        no_activate: bool,
        /// Print what would change; change nothing.
        #[arg(long)]
        dry_run: bool,
        #[command(flatten)]
        remote: Remote,
    },
}

pub(crate) fn run(cmd: PolicyCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        PolicyCommand::Validate { files } => validate(&files),
        PolicyCommand::Test { paths } => test(&paths),
        PolicyCommand::Publish {
            file,
            activate,
            environment,
            remote,
        } => {
            let text = read(&file)?;
            let v = remote.call(
                reqwest::Method::POST,
                "/v1/admin/policies",
                Some(json!({"text": text, "activate": activate, "environment": environment})),
            )?;
            remote.print(&v, publish_line);
            Ok(ExitCode::SUCCESS)
        }
        PolicyCommand::Activate {
            id,
            version,
            environment,
            remote,
        } => activate(&remote, &id, version, &environment),
        PolicyCommand::Rollback {
            id,
            to,
            environment,
            remote,
        } => {
            let version = match to {
                Some(v) => v,
                None => {
                    let show = remote.call(
                        reqwest::Method::GET,
                        &format!("/v1/admin/policies/{id}"),
                        None,
                    )?;
                    let active = show["active"][&environment].as_u64().with_context(|| {
                        format!("`{id}` has no active version in {environment}")
                    })?;
                    if active <= 1 {
                        bail!("`{id}` is at version {active}: there is nothing to roll back to");
                    }
                    active - 1
                }
            };
            activate(&remote, &id, version, &environment)
        }
        PolicyCommand::List { remote } => {
            let v = remote.call(reqwest::Method::GET, "/v1/admin/policies", None)?;
            remote.print(&v, |v| {
                let mut out = vec!["ID\tVERSIONS\tLIVE\tTEST\tCANDIDATE(live)".to_owned()];
                for p in v["policies"].as_array().into_iter().flatten() {
                    out.push(format!(
                        "{}\t{}\t{}\t{}\t{}",
                        p["policy_id"].as_str().unwrap_or("?"),
                        p["versions"],
                        p["active"]["live"],
                        p["active"]["test"],
                        p["candidate"]["live"],
                    ));
                }
                out.join("\n")
            });
            Ok(ExitCode::SUCCESS)
        }
        PolicyCommand::Show {
            id,
            version,
            remote,
        } => {
            let path = match version {
                Some(n) => format!("/v1/admin/policies/{id}/versions/{n}"),
                None => format!("/v1/admin/policies/{id}"),
            };
            let v = remote.call(reqwest::Method::GET, &path, None)?;
            remote.print(&v, |v| match version {
                Some(_) => v["text"].as_str().unwrap_or("").to_owned(),
                None => serde_json::to_string_pretty(v).unwrap_or_default(),
            });
            Ok(ExitCode::SUCCESS)
        }
        PolicyCommand::Diff {
            id,
            from,
            to,
            remote,
        } => {
            let v = remote.call(
                reqwest::Method::GET,
                &format!("/v1/admin/policies/{id}/diff?from={from}&to={to}"),
                None,
            )?;
            remote.print(&v, |v| {
                format!(
                    "rules added: {}\nrules removed: {}\nrules changed: {}\n\n{}",
                    v["rules"]["added"],
                    v["rules"]["removed"],
                    v["rules"]["changed"],
                    v["text_diff"].as_str().unwrap_or("")
                )
            });
            Ok(ExitCode::SUCCESS)
        }
        PolicyCommand::Candidate {
            id,
            version,
            stop,
            environment,
            remote,
        } => {
            let path = format!("/v1/admin/policies/{id}/candidate");
            if stop {
                remote.call(
                    reqwest::Method::DELETE,
                    &format!("{path}?environment={environment}"),
                    None,
                )?;
                remote.print(&json!({"policy_id": id, "stopped": true}), |_| {
                    format!("candidate of {id} stopped")
                });
            } else {
                let v = remote.call(
                    reqwest::Method::POST,
                    &path,
                    Some(json!({"version": version, "environment": environment})),
                )?;
                remote.print(&v, |v| {
                    format!(
                        "{id}@{} runs as a candidate in {environment}",
                        v["candidate"]
                    )
                });
            }
            Ok(ExitCode::SUCCESS)
        }
        PolicyCommand::Report {
            id,
            environment,
            remote,
        } => {
            let v = remote.call(
                reqwest::Method::GET,
                &format!("/v1/admin/policies/{id}/candidate/report?environment={environment}"),
                None,
            )?;
            remote.print(&v, |v| {
                flips_text(
                    &format!(
                        "{id}@{} beside @{} since {}: {} evaluated, {} would change",
                        v["candidate_version"],
                        v["active_version"],
                        v["since"].as_str().unwrap_or("?"),
                        v["evaluated"],
                        v["changed"]
                    ),
                    &v["changes"],
                    &v["decisions"],
                    "active",
                    "candidate",
                )
            });
            Ok(ExitCode::SUCCESS)
        }
        PolicyCommand::Replay {
            id,
            version,
            since,
            until,
            remote,
        } => {
            let v = remote.call(
                reqwest::Method::POST,
                &format!("/v1/admin/policies/{id}/replay"),
                Some(json!({"version": version, "since": since, "until": until})),
            )?;
            remote.print(&v, |v| {
                flips_text(
                    &format!(
                        "{id}@{version} over {} recorded decisions ({} reproduced as recorded): {} flips",
                        v["replayed"], v["reproduced"], v["flipped"]
                    ),
                    &v["changes"],
                    &v["flips"],
                    "before",
                    "after",
                )
            });
            Ok(ExitCode::SUCCESS)
        }
        PolicyCommand::Apply {
            dir,
            environment,
            no_activate,
            dry_run,
            remote,
        } => apply(&remote, &dir, &environment, !no_activate, dry_run),
    }
}

fn read(path: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))
}

fn format_of(path: &Path, text: &str) -> PolicyFormat {
    path.extension()
        .and_then(|e| e.to_str())
        .and_then(PolicyFormat::from_extension)
        .unwrap_or_else(|| PolicyFormat::detect(text))
}

fn compile_file(path: &Path) -> anyhow::Result<Result<CompiledPolicy, String>> {
    let text = read(path)?;
    Ok(compile_policy(&text, format_of(path, &text)).map_err(|e| {
        e.issues
            .iter()
            .map(|i| format!("  {}: {i}", path.display()))
            .collect::<Vec<_>>()
            .join("\n")
    }))
}

fn validate(files: &[PathBuf]) -> anyhow::Result<ExitCode> {
    let mut bad = 0;
    for f in files {
        match compile_file(f)? {
            Ok(p) => println!(
                "ok    {} ({} rules, id {})",
                f.display(),
                p.document().rules.len(),
                p.id()
            ),
            Err(issues) => {
                bad += 1;
                println!("FAIL  {}\n{issues}", f.display());
            }
        }
    }
    Ok(if bad == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(FAILED)
    })
}

fn is_test_file(p: &Path) -> bool {
    p.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.ends_with(".test.yaml") || n.ends_with(".test.yml"))
}

fn is_policy_file(p: &Path) -> bool {
    !is_test_file(p)
        && p.extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| matches!(e, "yaml" | "yml" | "toml" | "json"))
}

fn files_in(dir: &Path, keep: fn(&Path) -> bool) -> anyhow::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))? {
        let p = e?.path();
        if p.is_file() && keep(&p) {
            out.push(p);
        }
    }
    out.sort();
    Ok(out)
}

/// The policy files a test file names, or `NAME.{yaml,yml,toml,json}` for `NAME.test.yaml`.
fn policies_for(test: &Path, named: &[String]) -> anyhow::Result<Vec<PathBuf>> {
    let dir = test.parent().unwrap_or(Path::new("."));
    if !named.is_empty() {
        return Ok(named.iter().map(|n| dir.join(n)).collect());
    }
    let name = test
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    let stem = name
        .strip_suffix(".test.yaml")
        .or_else(|| name.strip_suffix(".test.yml"))
        .unwrap_or(name);
    for ext in ["yaml", "yml", "toml", "json"] {
        let p = dir.join(format!("{stem}.{ext}"));
        if p.is_file() {
            return Ok(vec![p]);
        }
    }
    bail!(
        "{}: no `policies:` list and no {stem}.yaml beside it",
        test.display()
    )
}

fn test(paths: &[PathBuf]) -> anyhow::Result<ExitCode> {
    let mut files = Vec::new();
    for p in paths {
        if p.is_dir() {
            files.extend(files_in(p, is_test_file)?);
        } else {
            files.push(p.clone());
        }
    }
    if files.is_empty() {
        bail!("no test files found (they are named NAME.test.yaml)");
    }
    let (mut passed, mut failed) = (0, 0);
    for f in &files {
        let spec =
            parse_test_file(&read(f)?).map_err(|e| anyhow::anyhow!("{}: {e}", f.display()))?;
        let mut policies: Vec<Arc<CompiledPolicy>> = Vec::new();
        for p in policies_for(f, &spec.policies)? {
            match compile_file(&p)? {
                Ok(c) => policies.push(Arc::new(c)),
                Err(issues) => bail!("{} does not compile:\n{issues}", p.display()),
            }
        }
        println!("{}", f.display());
        for case in run_tests(&spec, &policies) {
            if case.failures.is_empty() {
                passed += 1;
                let plural = if case.steps == 1 { "" } else { "s" };
                println!("  ok    {} ({} step{plural})", case.name, case.steps);
            } else {
                failed += 1;
                println!("  FAIL  {}", case.name);
                for fail in &case.failures {
                    println!("        step {}: expected {}", fail.step, fail.expected);
                    println!(
                        "        {:>w$}   actual {}",
                        "",
                        fail.actual,
                        w = digits(fail.step)
                    );
                }
            }
        }
    }
    println!("{passed} passed, {failed} failed");
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(FAILED)
    })
}

fn digits(n: usize) -> usize {
    n.to_string().len()
}

fn publish_line(v: &Value) -> String {
    let id = v["policy_id"].as_str().unwrap_or("?");
    let version = &v["version"];
    match (v["published"].as_bool(), v["activated"].as_bool()) {
        (Some(true), Some(true)) => format!("{id}: published and activated version {version}"),
        (Some(true), _) => format!("{id}: published version {version}"),
        (_, Some(true)) => format!("{id}: activated version {version} (text unchanged)"),
        _ => format!("{id}: unchanged (version {version})"),
    }
}

fn activate(remote: &Remote, id: &str, version: u64, env: &str) -> anyhow::Result<ExitCode> {
    let v = remote.call(
        reqwest::Method::POST,
        &format!("/v1/admin/policies/{id}/activate"),
        Some(json!({"version": version, "environment": env})),
    )?;
    remote.print(&v, |v| {
        if v["changed"] == json!(true) {
            format!("{id}@{version} is active in {env}")
        } else {
            format!("{id}@{version} was already active in {env}")
        }
    });
    Ok(ExitCode::SUCCESS)
}

fn flips_text(head: &str, changes: &Value, list: &Value, a: &str, b: &str) -> String {
    let mut out = vec![head.to_owned()];
    if let Some(m) = changes.as_object() {
        for (k, n) in m {
            out.push(format!("  {k}: {n}"));
        }
    }
    for d in list.as_array().into_iter().flatten() {
        out.push(format!(
            "  {} #{}  {} {:?} -> {} {:?}",
            d["decision_id"].as_str().unwrap_or("?"),
            d["seq"],
            d[a]["status"].as_str().unwrap_or("?"),
            d[a]["reason_codes"],
            d[b]["status"].as_str().unwrap_or("?"),
            d[b]["reason_codes"],
        ));
    }
    out.join("\n")
}

fn apply(
    remote: &Remote,
    dir: &Path,
    env: &str,
    activate: bool,
    dry_run: bool,
) -> anyhow::Result<ExitCode> {
    let files = files_in(dir, is_policy_file)?;
    if files.is_empty() {
        bail!("no policy files in {}", dir.display());
    }
    // Validate everything first: an invalid file publishes nothing.
    let mut compiled = Vec::new();
    let mut bad = 0;
    for f in &files {
        match compile_file(f)? {
            Ok(p) => compiled.push((f, p.id().to_owned(), read(f)?)),
            Err(issues) => {
                bad += 1;
                println!("FAIL  {}\n{issues}", f.display());
            }
        }
    }
    if bad > 0 {
        println!("{bad} invalid policy file(s): nothing applied");
        return Ok(ExitCode::from(FAILED));
    }
    let mut ids = std::collections::BTreeSet::new();
    for (f, id, _) in &compiled {
        if !ids.insert(id.clone()) {
            bail!("{}: policy id `{id}` appears in two files", f.display());
        }
    }
    let (mut changed, mut unchanged) = (0, 0);
    for (f, id, text) in &compiled {
        if dry_run {
            let sha = hex::encode(Sha256::digest(text.as_bytes()));
            let plan = match remote.call(
                reqwest::Method::GET,
                &format!("/v1/admin/policies/{id}"),
                None,
            ) {
                Ok(show) => {
                    let versions = show["versions"].as_array().cloned().unwrap_or_default();
                    let same = versions
                        .last()
                        .is_some_and(|v| v["text_sha256"].as_str() == Some(sha.as_str()));
                    let newest = versions.last().map(|v| v["version"].clone());
                    match (
                        same,
                        activate && show["active"][env] != newest.unwrap_or(Value::Null),
                    ) {
                        (true, false) => "unchanged",
                        (true, true) => "would activate the newest version",
                        (false, _) => "would publish a new version",
                    }
                }
                Err(e) if e.to_string().starts_with("404") => "would publish version 1",
                Err(e) => return Err(e),
            };
            println!("{}: {id}: {plan}", f.display());
            continue;
        }
        let v = remote.call(
            reqwest::Method::POST,
            "/v1/admin/policies",
            Some(json!({"text": text, "activate": activate, "environment": env})),
        )?;
        let did = v["published"] == json!(true) || v["activated"] == json!(true);
        if did {
            changed += 1;
        } else {
            unchanged += 1;
        }
        println!("{}: {}", f.display(), publish_line(&v));
    }
    if !dry_run {
        println!("{changed} changed, {unchanged} unchanged");
    }
    Ok(ExitCode::SUCCESS)
}
