//! `tollgate policy …`: validate and test policy files locally (no server), and
//! publish, activate, roll back, list, diff, run candidates, replay and apply a
//! directory against a running server.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context as _, bail};
use clap::Subcommand;
use serde::Serialize;
use serde_json::json;
use sha2::{Digest as _, Sha256};
use tollgate_client::Error;
use tollgate_client::admin::{Outcome, PublishPolicy, Published, ReplayPolicy};
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
        /// Print JSON: `{"ok", "files": [{"file", "ok", "policy_id", "rules", "issues"}]}`.
        #[arg(long)]
        json: bool,
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
        /// Print JSON: `{"passed", "failed", "files": [{"file", "cases"}]}`.
        #[arg(long)]
        json: bool,
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
        PolicyCommand::Validate { files, json } => validate(&files, json),
        PolicyCommand::Test { paths, json } => test(&paths, json),
        PolicyCommand::Publish {
            file,
            activate,
            environment,
            remote,
        } => {
            let publish = PublishPolicy {
                text: read(&file)?,
                activate,
                environment: Some(environment),
                ..PublishPolicy::default()
            };
            let v = remote.run(|c| async move { c.publish_policy(&publish).await })?;
            remote.print(&v, publish_line)?;
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
                    let show = remote.run(|c| {
                        let id = id.clone();
                        async move { c.policy(&id).await }
                    })?;
                    let active = *show.active.get(&environment).with_context(|| {
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
            let v = remote.run(|c| async move { c.policies().await })?;
            remote.print(&v, |v| {
                let mut out = vec!["ID\tVERSIONS\tLIVE\tTEST\tCANDIDATE(live)".to_owned()];
                let n = |x: Option<u64>| x.map_or("-".to_owned(), |x| x.to_string());
                for p in &v.policies {
                    out.push(format!(
                        "{}\t{}\t{}\t{}\t{}",
                        p.policy_id,
                        p.versions,
                        n(p.active.live),
                        n(p.active.test),
                        n(p.candidate.live),
                    ));
                }
                out.join("\n")
            })?;
            Ok(ExitCode::SUCCESS)
        }
        PolicyCommand::Show {
            id,
            version,
            remote,
        } => {
            match version {
                Some(n) => {
                    let v = remote.run(|c| async move { c.policy_version(&id, n).await })?;
                    remote.print(&v, |v| v.text.clone())?;
                }
                None => {
                    let v = remote.run(|c| async move { c.policy(&id).await })?;
                    remote.print(&v, |v| {
                        let n = |x: Option<u64>| x.map_or("-".to_owned(), |x| x.to_string());
                        let mut out = vec![format!(
                            "{}: active live {}, test {}; candidate live {}, test {}",
                            v.policy_id,
                            n(v.active.live),
                            n(v.active.test),
                            n(v.candidate.live),
                            n(v.candidate.test)
                        )];
                        for ver in &v.versions {
                            out.push(format!(
                                "  {}\t{}\t{}",
                                ver.version,
                                ver.created_at.as_deref().unwrap_or("?"),
                                ver.text_sha256
                            ));
                        }
                        out.join("\n")
                    })?;
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        PolicyCommand::Diff {
            id,
            from,
            to,
            remote,
        } => {
            let v = remote.run(|c| async move { c.policy_diff(&id, from, to).await })?;
            remote.print(&v, |v| {
                format!(
                    "rules added: {:?}\nrules removed: {:?}\nrules changed: {:?}\n\n{}",
                    v.rules.added, v.rules.removed, v.rules.changed, v.text_diff
                )
            })?;
            Ok(ExitCode::SUCCESS)
        }
        PolicyCommand::Candidate {
            id,
            version,
            stop,
            environment,
            remote,
        } => {
            if stop {
                remote.run(|c| {
                    let (id, env) = (id.clone(), environment.clone());
                    async move { c.stop_candidate(&id, &env).await }
                })?;
                remote.print(
                    &json!({"policy_id": id, "environment": environment, "stopped": true}),
                    |_| format!("candidate of {id} stopped"),
                )?;
            } else {
                let version = version.context("give the candidate version, or --stop")?;
                let v = remote.run(|c| {
                    let (id, env) = (id.clone(), environment.clone());
                    async move { c.start_candidate(&id, version, &env).await }
                })?;
                remote.print(&v, |v| {
                    format!("{id}@{} runs as a candidate in {environment}", v.candidate)
                })?;
            }
            Ok(ExitCode::SUCCESS)
        }
        PolicyCommand::Report {
            id,
            environment,
            remote,
        } => {
            let v = remote.run(|c| {
                let id = id.clone();
                async move { c.candidate_report(&id, &environment).await }
            })?;
            remote.print(&v, |v| {
                let mut out = vec![format!(
                    "{id}@{} beside @{} since {}: {} evaluated, {} would change",
                    v.candidate_version, v.active_version, v.since, v.evaluated, v.changed
                )];
                changes_text(&mut out, &v.changes);
                for d in &v.decisions {
                    out.push(flip_line(
                        d.decision_id.as_deref(),
                        d.seq,
                        &d.active,
                        &d.candidate,
                    ));
                }
                out.join("\n")
            })?;
            Ok(ExitCode::SUCCESS)
        }
        PolicyCommand::Replay {
            id,
            version,
            since,
            until,
            remote,
        } => {
            let replay = ReplayPolicy {
                version,
                since,
                until,
                ..ReplayPolicy::default()
            };
            let v = remote.run(|c| {
                let id = id.clone();
                async move { c.replay_policy(&id, &replay).await }
            })?;
            remote.print(&v, |v| {
                let mut out = vec![format!(
                    "{id}@{version} over {} recorded decisions ({} reproduced as recorded): {} flips",
                    v.replayed, v.reproduced, v.flipped
                )];
                changes_text(&mut out, &v.changes);
                for d in &v.flips {
                    out.push(flip_line(d.decision_id.as_deref(), d.seq, &d.before, &d.after));
                }
                out.join("\n")
            })?;
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

/// A compiled policy, or its problems (each with the path inside the document).
fn compile_file(path: &Path) -> anyhow::Result<Result<CompiledPolicy, Vec<String>>> {
    let text = read(path)?;
    Ok(compile_policy(&text, format_of(path, &text))
        .map_err(|e| e.issues.iter().map(ToString::to_string).collect()))
}

fn issues_text(path: &Path, issues: &[String]) -> String {
    issues
        .iter()
        .map(|i| format!("  {}: {i}", path.display()))
        .collect::<Vec<_>>()
        .join("\n")
}

/// One file of `validate` (and the invalid files of `apply`).
#[derive(Debug, Serialize)]
struct FileCheck {
    file: PathBuf,
    ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    policy_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    rules: Option<usize>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    issues: Vec<String>,
}

fn check(f: &Path) -> anyhow::Result<(FileCheck, Option<CompiledPolicy>)> {
    Ok(match compile_file(f)? {
        Ok(p) => (
            FileCheck {
                file: f.to_owned(),
                ok: true,
                policy_id: Some(p.id().to_owned()),
                rules: Some(p.document().rules.len()),
                issues: Vec::new(),
            },
            Some(p),
        ),
        Err(issues) => (
            FileCheck {
                file: f.to_owned(),
                ok: false,
                policy_id: None,
                rules: None,
                issues,
            },
            None,
        ),
    })
}

fn check_text(c: &FileCheck) -> String {
    if c.ok {
        format!(
            "ok    {} ({} rules, id {})",
            c.file.display(),
            c.rules.unwrap_or(0),
            c.policy_id.as_deref().unwrap_or("?")
        )
    } else {
        format!(
            "FAIL  {}\n{}",
            c.file.display(),
            issues_text(&c.file, &c.issues)
        )
    }
}

fn print_json<T: Serialize>(value: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

fn validate(files: &[PathBuf], json: bool) -> anyhow::Result<ExitCode> {
    let mut checks = Vec::new();
    for f in files {
        let (c, _) = check(f)?;
        if !json {
            println!("{}", check_text(&c));
        }
        checks.push(c);
    }
    let ok = checks.iter().all(|c| c.ok);
    if json {
        print_json(&json!({"ok": ok, "files": checks}))?;
    }
    Ok(if ok {
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

#[derive(Debug, Serialize)]
struct StepFailureJson {
    step: usize,
    expected: String,
    actual: String,
}

#[derive(Debug, Serialize)]
struct CaseJson {
    name: String,
    steps: usize,
    ok: bool,
    failures: Vec<StepFailureJson>,
}

#[derive(Debug, Serialize)]
struct TestFileJson {
    file: PathBuf,
    cases: Vec<CaseJson>,
}

fn test(paths: &[PathBuf], json: bool) -> anyhow::Result<ExitCode> {
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
    let mut report = Vec::new();
    for f in &files {
        let spec =
            parse_test_file(&read(f)?).map_err(|e| anyhow::anyhow!("{}: {e}", f.display()))?;
        let mut policies: Vec<Arc<CompiledPolicy>> = Vec::new();
        for p in policies_for(f, &spec.policies)? {
            match compile_file(&p)? {
                Ok(c) => policies.push(Arc::new(c)),
                Err(issues) => bail!(
                    "{} does not compile:\n{}",
                    p.display(),
                    issues_text(&p, &issues)
                ),
            }
        }
        if !json {
            println!("{}", f.display());
        }
        let mut cases = Vec::new();
        for case in run_tests(&spec, &policies) {
            let ok = case.failures.is_empty();
            if ok {
                passed += 1;
            } else {
                failed += 1;
            }
            if !json {
                if ok {
                    let plural = if case.steps == 1 { "" } else { "s" };
                    println!("  ok    {} ({} step{plural})", case.name, case.steps);
                } else {
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
            cases.push(CaseJson {
                name: case.name,
                steps: case.steps,
                ok,
                failures: case
                    .failures
                    .into_iter()
                    .map(|f| StepFailureJson {
                        step: f.step,
                        expected: f.expected,
                        actual: f.actual,
                    })
                    .collect(),
            });
        }
        report.push(TestFileJson {
            file: f.clone(),
            cases,
        });
    }
    if json {
        print_json(&json!({"passed": passed, "failed": failed, "files": report}))?;
    } else {
        println!("{passed} passed, {failed} failed");
    }
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(FAILED)
    })
}

fn digits(n: usize) -> usize {
    n.to_string().len()
}

fn publish_line(v: &Published) -> String {
    let (id, version) = (&v.policy_id, v.version);
    match (v.published, v.activated) {
        (true, true) => format!("{id}: published and activated version {version}"),
        (true, false) => format!("{id}: published version {version}"),
        (false, true) => format!("{id}: activated version {version} (text unchanged)"),
        (false, false) => format!("{id}: unchanged (version {version})"),
    }
}

fn activate(remote: &Remote, id: &str, version: u64, env: &str) -> anyhow::Result<ExitCode> {
    let v = remote.run(|c| async move { c.activate_policy(id, version, env).await })?;
    remote.print(&v, |v| {
        if v.changed {
            format!("{id}@{version} is active in {env}")
        } else {
            format!("{id}@{version} was already active in {env}")
        }
    })?;
    Ok(ExitCode::SUCCESS)
}

fn changes_text(out: &mut Vec<String>, changes: &std::collections::BTreeMap<String, u64>) {
    for (k, n) in changes {
        out.push(format!("  {k}: {n}"));
    }
}

fn flip_line(decision_id: Option<&str>, seq: u64, a: &Outcome, b: &Outcome) -> String {
    format!(
        "  {} #{seq}  {} {:?} -> {} {:?}",
        decision_id.unwrap_or("?"),
        a.status.as_str(),
        a.reason_codes,
        b.status.as_str(),
        b.reason_codes,
    )
}

/// One file of `apply`: what was (or, in a dry run, would be) done.
#[derive(Debug, Serialize)]
struct Applied {
    file: PathBuf,
    policy_id: String,
    /// Dry run: `unchanged`, `activate`, `publish`.
    #[serde(skip_serializing_if = "Option::is_none")]
    plan: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    result: Option<Published>,
}

#[derive(Debug, Serialize)]
struct ApplyReport {
    environment: String,
    dry_run: bool,
    ok: bool,
    invalid: Vec<FileCheck>,
    files: Vec<Applied>,
    changed: usize,
    unchanged: usize,
}

fn apply(
    remote: &Remote,
    dir: &Path,
    env: &str,
    activate: bool,
    dry_run: bool,
) -> anyhow::Result<ExitCode> {
    let json = remote.json();
    let files = files_in(dir, is_policy_file)?;
    if files.is_empty() {
        bail!("no policy files in {}", dir.display());
    }
    let mut report = ApplyReport {
        environment: env.to_owned(),
        dry_run,
        ok: true,
        invalid: Vec::new(),
        files: Vec::new(),
        changed: 0,
        unchanged: 0,
    };
    // Validate everything first: an invalid file publishes nothing.
    let mut compiled = Vec::new();
    for f in &files {
        match check(f)? {
            (_, Some(p)) => compiled.push((f, p.id().to_owned(), read(f)?)),
            (c, None) => {
                if !json {
                    println!("{}", check_text(&c));
                }
                report.invalid.push(c);
            }
        }
    }
    if !report.invalid.is_empty() {
        report.ok = false;
        if json {
            print_json(&report)?;
        } else {
            println!(
                "{} invalid policy file(s): nothing applied",
                report.invalid.len()
            );
        }
        return Ok(ExitCode::from(FAILED));
    }
    let mut ids = std::collections::BTreeSet::new();
    for (f, id, _) in &compiled {
        if !ids.insert(id.clone()) {
            bail!("{}: policy id `{id}` appears in two files", f.display());
        }
    }
    for (f, id, text) in compiled {
        if dry_run {
            let sha = hex::encode(Sha256::digest(text.as_bytes()));
            let shown = remote.try_run(|c| {
                let id = id.clone();
                async move { c.policy(&id).await }
            })?;
            let (plan, line) = match shown {
                Ok(show) => {
                    let newest = show.versions.last();
                    let same = newest.is_some_and(|v| v.text_sha256 == sha);
                    let active = show.active.get(env).copied();
                    match (same, activate && active != newest.map(|v| v.version)) {
                        (true, false) => ("unchanged", "unchanged"),
                        (true, true) => ("activate", "would activate the newest version"),
                        (false, _) => ("publish", "would publish a new version"),
                    }
                }
                Err(Error::NotFound) => ("publish", "would publish version 1"),
                Err(e) => return Err(remote.error(e)),
            };
            if !json {
                println!("{}: {id}: {line}", f.display());
            }
            report.files.push(Applied {
                file: f.clone(),
                policy_id: id,
                plan: Some(plan),
                result: None,
            });
            continue;
        }
        let publish = PublishPolicy {
            text,
            activate,
            environment: Some(env.to_owned()),
            ..PublishPolicy::default()
        };
        let v = remote.run(|c| async move { c.publish_policy(&publish).await })?;
        if v.published || v.activated {
            report.changed += 1;
        } else {
            report.unchanged += 1;
        }
        if !json {
            println!("{}: {}", f.display(), publish_line(&v));
        }
        report.files.push(Applied {
            file: f.clone(),
            policy_id: id,
            plan: None,
            result: Some(v),
        });
    }
    if json {
        print_json(&report)?;
    } else if !dry_run {
        println!("{} changed, {} unchanged", report.changed, report.unchanged);
    }
    Ok(ExitCode::SUCCESS)
}
