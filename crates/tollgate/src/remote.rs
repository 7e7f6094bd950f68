//! Commands that talk to a running server with an API key: keys, tenants, sources,
//! overrides, decide.

use std::process::ExitCode;

use anyhow::{Context as _, anyhow};
use clap::{Args, Subcommand};
use serde::Serialize;
use serde_json::{Value, json};
use tollgate_client::admin::{NewKey, NewOverride, NewSource, NewTenant, Review, ReviewStatus};
use tollgate_client::{Client, DecisionPoint as _, DecisionRequest, Error, Failure, Mode};

/// Where the server is and which key to use.
#[derive(Debug, Args, Clone)]
pub(crate) struct Remote {
    /// The server's base URL.
    #[arg(
        long,
        env = "TOLLGATE_URL",
        default_value = "http://127.0.0.1:8765",
        global = true
    )]
    url: String,
    /// The API key (the bootstrap admin key is in `<data dir>/bootstrap-keys.json`).
    #[arg(
        long = "api-key",
        env = "TOLLGATE_API_KEY",
        global = true,
        hide_env_values = true
    )]
    api_key: Option<String>,
    /// Print JSON instead of text.
    #[arg(long, global = true)]
    json: bool,
}

impl Remote {
    /// Runs one call of the SDK's client (`tollgate-client`) to completion.
    pub(crate) fn run<T, F, Fut>(&self, call: F) -> anyhow::Result<T>
    where
        F: FnOnce(Client) -> Fut,
        Fut: Future<Output = Result<T, Error>>,
    {
        self.try_run(call)?.map_err(|e| self.error(e))
    }

    /// Like [`Remote::run`], but hands back the SDK's error for the caller to match.
    pub(crate) fn try_run<T, F, Fut>(&self, call: F) -> anyhow::Result<Result<T, Error>>
    where
        F: FnOnce(Client) -> Fut,
        Fut: Future<Output = Result<T, Error>>,
    {
        let key = self
            .api_key
            .as_deref()
            .context("no API key: pass --api-key or set TOLLGATE_API_KEY")?;
        let client = Client::builder()
            .base_url(&self.url)
            .api_key(key)
            .build()
            .map_err(|e| anyhow!("{e}"))?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("starting the async runtime")?;
        Ok(runtime.block_on(call(client)))
    }

    /// An SDK error as the CLI reports it.
    pub(crate) fn error(&self, e: Error) -> anyhow::Error {
        match e {
            Error::Unavailable(f @ (Failure::Transport(_) | Failure::Timeout)) => {
                anyhow!(
                    "cannot reach {}: is `tollgate serve` running? ({f})",
                    self.url
                )
            }
            Error::Blocked(b) if b.is_fail_closed() => match &b.failure {
                Some(Failure::Transport(_) | Failure::Timeout) => anyhow!(
                    "cannot reach {}: is `tollgate serve` running? ({})",
                    self.url,
                    b.explanation
                ),
                _ => anyhow!("no verdict: {}", b.explanation),
            },
            Error::Invalid {
                message, detail, ..
            } if !detail.is_null() => anyhow!("invalid request: {message} {detail}"),
            e => anyhow!("{e}"),
        }
    }

    /// Prints `value` as one JSON document with `--json`, else as `text` makes it.
    pub(crate) fn print<T: Serialize>(
        &self,
        value: &T,
        text: impl FnOnce(&T) -> String,
    ) -> anyhow::Result<()> {
        if self.json {
            println!("{}", serde_json::to_string_pretty(value)?);
        } else {
            println!("{}", text(value));
        }
        Ok(())
    }

    /// Whether `--json` was given.
    pub(crate) fn json(&self) -> bool {
        self.json
    }
}

fn lines<T>(list: &[T], f: impl Fn(&T) -> String) -> String {
    if list.is_empty() {
        "(none)".to_owned()
    } else {
        list.iter().map(f).collect::<Vec<_>>().join("\n")
    }
}

#[derive(Debug, Subcommand)]
pub(crate) enum TenantsCommand {
    /// Create or update a tenant (operator key).
    #[command(after_help = "Example:
  tollgate tenants create acme --monthly-quota 100000")]
    Create {
        /// Tenant id.
        id: String,
        /// Display name.
        #[arg(long)]
        name: Option<String>,
        /// Decisions per calendar month for live keys.
        #[arg(long)]
        monthly_quota: Option<u64>,
        /// Tenant-wide shadow mode (`true` or `false`).
        #[arg(long)]
        shadow: Option<bool>,
        #[command(flatten)]
        remote: Remote,
    },
    /// List tenants.
    #[command(after_help = "Example:
  tollgate tenants list --json")]
    List {
        #[command(flatten)]
        remote: Remote,
    },
}

pub(crate) fn tenants(cmd: TenantsCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        TenantsCommand::Create {
            id,
            name,
            monthly_quota,
            shadow,
            remote,
        } => {
            let new = NewTenant {
                id,
                name,
                monthly_quota,
                shadow,
            };
            let t = remote.run(|c| async move { c.put_tenant(&new).await })?;
            remote.print(&t, |t| format!("tenant {} ready", t.id))?;
        }
        TenantsCommand::List { remote } => {
            let tenants = remote.run(|c| async move { c.tenants().await })?;
            remote.print(&json!({ "tenants": tenants }), |_| {
                lines(&tenants, |t| {
                    format!(
                        "{}\t{} decisions this month\tshadow={}",
                        t.id, t.usage_this_month, t.shadow
                    )
                })
            })?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, Subcommand)]
pub(crate) enum ApiKeysCommand {
    /// Print the server's public signing keys (signed-note, JWKS, PEM) from a data directory.
    #[command(after_help = "Example:
  tollgate keys show --data-dir /var/lib/tollgate")]
    Show {
        /// The data directory.
        #[arg(long, env = "TOLLGATE_DATA_DIR")]
        data_dir: std::path::PathBuf,
        /// Print JSON: `{"verifier_keys", "jwks", "pem"}`.
        #[arg(long)]
        json: bool,
    },
    /// Create an API key; its secret is printed once.
    #[command(after_help = "Examples:
  tollgate keys create --env live --scope decide --scope outcomes --name trading-bot
  tollgate keys create --tenant acme --env test --expires-in-days 30
  tollgate keys create --env live --scope review --group treasury --name alice
  tollgate keys create --import dealgo_sk_test_abc123... --env test   # keep an existing key")]
    Create {
        /// Tenant (operator key only; default: the key's own).
        #[arg(long)]
        tenant: Option<String>,
        /// `live` or `test`.
        #[arg(long = "env", default_value = "test")]
        environment: String,
        /// Scope (repeatable): decide, outcomes, review, admin.
        #[arg(long = "scope", default_value = "decide")]
        scopes: Vec<String>,
        /// Reviewer group (repeatable): the key's votes count on reviews whose rule
        /// names this group among its approvers.
        #[arg(long = "group")]
        groups: Vec<String>,
        /// A label.
        #[arg(long)]
        name: Option<String>,
        /// Expire after this many days.
        #[arg(long)]
        expires_in_days: Option<u64>,
        /// Register this existing secret instead of generating one.
        #[arg(long = "import")]
        secret: Option<String>,
        #[command(flatten)]
        remote: Remote,
    },
    /// List API keys (never their secrets).
    #[command(after_help = "Example:
  tollgate keys list --json")]
    List {
        /// Tenant (operator key only).
        #[arg(long)]
        tenant: Option<String>,
        #[command(flatten)]
        remote: Remote,
    },
    /// Revoke an API key, effective at once.
    #[command(after_help = "Example:
  tollgate keys revoke key_0123456789abcdef0123456789abcdef")]
    Revoke {
        /// Key id.
        id: String,
        #[command(flatten)]
        remote: Remote,
    },
}

pub(crate) fn api_keys(cmd: ApiKeysCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        ApiKeysCommand::Show { data_dir, json } => {
            return crate::audit::run_keys(crate::audit::KeysCommand::Show { data_dir, json });
        }
        ApiKeysCommand::Create {
            tenant,
            environment,
            scopes,
            groups,
            name,
            expires_in_days,
            secret,
            remote,
        } => {
            let mut new = NewKey::new(environment, scopes);
            new.tenant = tenant;
            new.name = name;
            new.expires_in_s = expires_in_days.map(|d| d.saturating_mul(86_400));
            new.secret = secret;
            new.groups = groups;
            let k = remote.run(|c| async move { c.create_key(&new).await })?;
            remote.print(&k, |k| {
                let groups = if k.key.groups.is_empty() {
                    String::new()
                } else {
                    format!(", groups {:?}", k.key.groups)
                };
                format!(
                    "created {} ({} {}, scopes {:?}{groups})\nsecret (shown once): {}",
                    k.key.id, k.key.tenant, k.key.environment, k.key.scopes, k.secret
                )
            })?;
        }
        ApiKeysCommand::List { tenant, remote } => {
            let keys = remote.run(|c| async move { c.keys(tenant.as_deref()).await })?;
            remote.print(&json!({ "keys": keys }), |_| {
                lines(&keys, |k| {
                    format!(
                        "{}\t{}\t{:?}\t{:?}\t{}\t{}",
                        k.id,
                        k.environment,
                        k.scopes,
                        k.groups,
                        k.name,
                        if k.revoked_at.is_none() {
                            "active"
                        } else {
                            "revoked"
                        }
                    )
                })
            })?;
        }
        ApiKeysCommand::Revoke { id, remote } => {
            let k = remote.run(|c| async move { c.revoke_key(&id).await })?;
            remote.print(&k, |k| format!("revoked {}", k.id))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, Subcommand)]
pub(crate) enum SourcesCommand {
    /// Register a source's Ed25519 public key for outcome reports.
    #[command(after_help = "Example:
  tollgate sources add desk-1 --public-key MCowBQYDK2VwAyEA...   # base64 of 32 bytes, or a PEM file with @path")]
    Add {
        /// Source id.
        id: String,
        /// Base64 of the 32-byte key, a PEM string, or `@FILE`.
        #[arg(long)]
        public_key: String,
        #[command(flatten)]
        remote: Remote,
    },
    /// List sources.
    List {
        #[command(flatten)]
        remote: Remote,
    },
}

pub(crate) fn sources(cmd: SourcesCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        SourcesCommand::Add {
            id,
            public_key,
            remote,
        } => {
            let public_key = match public_key.strip_prefix('@') {
                Some(path) => {
                    std::fs::read_to_string(path).with_context(|| format!("reading {path}"))?
                }
                None => public_key,
            };
            let new = NewSource { id, public_key };
            let s = remote.run(|c| async move { c.add_source(&new).await })?;
            remote.print(&s, |s| format!("source {} registered", s.id))?;
        }
        SourcesCommand::List { remote } => {
            let sources = remote.run(|c| async move { c.sources().await })?;
            remote.print(&json!({ "sources": sources }), |_| {
                lines(&sources, |s| {
                    format!(
                        "{}\t{}\t{} outcomes",
                        s.id,
                        s.public_key,
                        s.outcomes.unwrap_or(0)
                    )
                })
            })?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, Subcommand)]
pub(crate) enum OverrideCommand {
    /// Engage a kill switch: matching requests are blocked at gate `override`.
    #[command(after_help = "Examples:
  tollgate override set --scope actor --value rogue-bot --reason 'compromised credentials'
  tollgate override set --scope tenant --reason 'emergency stop'")]
    Set {
        /// tenant, actor, action_type or source.
        #[arg(long)]
        scope: String,
        /// The actor id, action type or source (not for `tenant`).
        #[arg(long)]
        value: Option<String>,
        /// Why (recorded in the ledger and shown in verdicts).
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        remote: Remote,
    },
    /// Clear a kill switch.
    #[command(after_help = "Example:
  tollgate override clear ovr_0123456789abcdef0123456789abcdef")]
    Clear {
        /// Override id.
        id: String,
        #[command(flatten)]
        remote: Remote,
    },
    /// List engaged kill switches.
    List {
        #[command(flatten)]
        remote: Remote,
    },
}

pub(crate) fn overrides(cmd: OverrideCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        OverrideCommand::Set {
            scope,
            value,
            reason,
            remote,
        } => {
            let new = NewOverride {
                scope,
                value,
                reason,
            };
            let o = remote.run(|c| async move { c.set_override(&new).await })?;
            remote.print(&o, |o| format!("override {} engaged", o.id))?;
        }
        OverrideCommand::Clear { id, remote } => {
            let o = remote.run(|c| async move { c.clear_override(&id).await })?;
            remote.print(&o, |o| format!("override {} cleared", o.id))?;
        }
        OverrideCommand::List { remote } => {
            let list = remote.run(|c| async move { c.overrides().await })?;
            remote.print(&json!({ "overrides": list }), |_| {
                lines(&list, |o| {
                    format!(
                        "{}\t{} {}\t{}",
                        o.id,
                        o.scope.scope,
                        o.scope.value.as_deref().unwrap_or(""),
                        o.reason
                    )
                })
            })?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, Args)]
#[command(after_help = "Examples:
  tollgate decide --action-type OPEN_POSITION --signal volatility=0.05 --signal confidence=0.95
  tollgate decide --action-type TRANSFER_FUNDS --field amount=25000 --actor agent-7 --json
Exit status: 0 ALLOW, 1 any other verdict, 2 error.")]
pub(crate) struct DecideArgs {
    /// action.type
    #[arg(long)]
    action_type: String,
    /// A numeric signal, `name=value` (repeatable).
    #[arg(long = "signal", value_parser = parse_pair)]
    signals: Vec<(String, String)>,
    /// An extra action field, `name=value`; numbers and booleans are typed (repeatable).
    #[arg(long = "field", value_parser = parse_pair)]
    fields: Vec<(String, String)>,
    /// actor.id
    #[arg(long)]
    actor: Option<String>,
    /// source
    #[arg(long)]
    source: Option<String>,
    /// A policy reference, `id` or `id@N` (repeatable).
    #[arg(long = "policy")]
    policies: Vec<String>,
    /// enforce, shadow or dry_run.
    #[arg(long, default_value = "enforce")]
    mode: String,
    #[command(flatten)]
    remote: Remote,
}

fn parse_pair(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("expected name=value, got `{s}`"))
}

fn typed(v: &str) -> Value {
    serde_json::from_str::<Value>(v)
        .ok()
        .filter(|x| x.is_number() || x.is_boolean())
        .unwrap_or_else(|| Value::String(v.to_owned()))
}

pub(crate) fn decide(a: DecideArgs) -> anyhow::Result<ExitCode> {
    let mode: Mode = serde_json::from_value(Value::String(a.mode.clone()))
        .map_err(|_| anyhow!("--mode `{}`: use enforce, shadow or dry_run", a.mode))?;
    let mut request = DecisionRequest::new(a.action_type).mode(mode);
    for (k, v) in a.fields {
        request = request.action_field(k, typed(&v));
    }
    for (k, v) in a.signals {
        let n: f64 = v
            .parse()
            .with_context(|| format!("signal `{k}` is not a number"))?;
        request = request.signal(k, n);
    }
    for p in a.policies {
        request = request.policy(p);
    }
    if let Some(actor) = a.actor {
        request = request.actor(json!({ "id": actor }));
    }
    if let Some(s) = a.source {
        request = request.source(s);
    }
    let d = a.remote.run(|c| async move { c.decide(&request).await })?;
    // The response as the server sent (and signed) it.
    a.remote.print(&d.raw, |_| {
        let mut s = format!(
            "{} at gate {} {:?}\n{}",
            d.status.as_str(),
            d.gate.as_str(),
            d.reason_codes,
            d.explanation
        );
        if let Some(ms) = d.retry_after_ms {
            s.push_str(&format!("\nretry after {ms} ms"));
        }
        if let Some(r) = &d.review_id {
            s.push_str(&format!("\nreview {r}"));
        }
        s.push_str(&format!(
            "\ndecision {}\ndossier {}",
            d.decision_id,
            d.dossier_url.as_deref().unwrap_or("?")
        ));
        s
    })?;
    Ok(if d.is_allowed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

#[derive(Debug, Subcommand)]
pub(crate) enum ReviewCommand {
    /// List reviews (default: pending ones).
    #[command(after_help = "Examples:
  tollgate review list
  tollgate review list --status approved --json")]
    List {
        /// pending, approved, rejected, expired or consumed.
        #[arg(long, default_value = "pending")]
        status: String,
        #[command(flatten)]
        remote: Remote,
    },
    /// Approve a review (a key with scope `review`, in one of its approver groups).
    #[command(after_help = "Example:
  tollgate review approve rev_0123456789abcdef0123456789abcdef --comment 'invoice checked'")]
    Approve {
        /// Review id.
        id: String,
        /// A comment, recorded with the approval.
        #[arg(long)]
        comment: Option<String>,
        #[command(flatten)]
        remote: Remote,
    },
    /// Reject a review (final).
    #[command(after_help = "Example:
  tollgate review reject rev_0123456789abcdef0123456789abcdef --comment 'unknown payee'")]
    Reject {
        /// Review id.
        id: String,
        /// A comment, recorded with the rejection.
        #[arg(long)]
        comment: Option<String>,
        #[command(flatten)]
        remote: Remote,
    },
}

fn review_line(r: &Review) -> String {
    format!(
        "{}\t{}\t{}\trule {}\t{} approval(s)\texpires {}",
        r.review_id,
        r.status.as_str(),
        r.decision_id.as_deref().unwrap_or("?"),
        r.rule.as_deref().unwrap_or("?"),
        r.approvals.as_ref().map_or(0, Vec::len),
        r.expires_at.as_deref().unwrap_or("?")
    )
}

pub(crate) fn reviews(cmd: ReviewCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        ReviewCommand::List { status, remote } => {
            let status: ReviewStatus = status.parse().map_err(|e| remote.error(e))?;
            let list = remote.run(|c| async move { c.reviews(Some(status)).await })?;
            remote.print(&json!({ "reviews": list }), |_| lines(&list, review_line))?;
        }
        ReviewCommand::Approve {
            id,
            comment,
            remote,
        } => {
            let r =
                remote.run(|c| async move { c.approve_review(&id, comment.as_deref()).await })?;
            remote.print(&r, review_line)?;
        }
        ReviewCommand::Reject {
            id,
            comment,
            remote,
        } => {
            let r =
                remote.run(|c| async move { c.reject_review(&id, comment.as_deref()).await })?;
            remote.print(&r, review_line)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
