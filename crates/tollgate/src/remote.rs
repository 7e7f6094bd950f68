//! Commands that talk to a running server with an API key: keys, tenants, sources,
//! overrides, decide.

use std::process::ExitCode;

use anyhow::{Context as _, bail};
use clap::{Args, Subcommand};
use serde_json::{Map, Value, json};

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
    pub(crate) fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        let key = self
            .api_key
            .as_deref()
            .context("no API key: pass --api-key or set TOLLGATE_API_KEY")?;
        let client = reqwest::blocking::Client::new();
        let url = format!("{}{path}", self.url.trim_end_matches('/'));
        let mut req = client.request(method, &url).bearer_auth(key);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req
            .send()
            .with_context(|| format!("cannot reach {url}: is `tollgate serve` running?"))?;
        let status = res.status();
        let text = res.text().unwrap_or_default();
        let value: Value = serde_json::from_str(&text).unwrap_or(Value::String(text.clone()));
        if !status.is_success() {
            let message = value["message"].as_str().unwrap_or(&text);
            let detail = value
                .get("detail")
                .map(|d| format!(" {d}"))
                .unwrap_or_default();
            bail!("{status}: {message}{detail}");
        }
        Ok(value)
    }

    pub(crate) fn print(&self, value: &Value, text: impl FnOnce(&Value) -> String) {
        if self.json {
            println!(
                "{}",
                serde_json::to_string_pretty(value).unwrap_or_default()
            );
        } else {
            println!("{}", text(value));
        }
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
            let mut body = json!({"id": id});
            if let Some(n) = name {
                body["name"] = json!(n);
            }
            if let Some(q) = monthly_quota {
                body["monthly_quota"] = json!(q);
            }
            if let Some(s) = shadow {
                body["shadow"] = json!(s);
            }
            let v = remote.call(reqwest::Method::POST, "/v1/admin/tenants", Some(body))?;
            remote.print(&v, |v| {
                format!("tenant {} ready", v["id"].as_str().unwrap_or("?"))
            });
        }
        TenantsCommand::List { remote } => {
            let v = remote.call(reqwest::Method::GET, "/v1/admin/tenants", None)?;
            remote.print(&v, |v| {
                lines(&v["tenants"], |t| {
                    format!(
                        "{}\t{} decisions this month\tshadow={}",
                        t["id"].as_str().unwrap_or("?"),
                        t["usage_this_month"],
                        t["shadow"]
                    )
                })
            });
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn lines(list: &Value, f: impl Fn(&Value) -> String) -> String {
    let items: Vec<String> = list.as_array().into_iter().flatten().map(f).collect();
    if items.is_empty() {
        "(none)".to_owned()
    } else {
        items.join("\n")
    }
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
    },
    /// Create an API key; its secret is printed once.
    #[command(after_help = "Examples:
  tollgate keys create --env live --scope decide --scope outcomes --name trading-bot
  tollgate keys create --tenant acme --env test --expires-in-days 30
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
        ApiKeysCommand::Show { data_dir } => {
            return crate::audit::run_keys(crate::audit::KeysCommand::Show { data_dir });
        }
        ApiKeysCommand::Create {
            tenant,
            environment,
            scopes,
            name,
            expires_in_days,
            secret,
            remote,
        } => {
            let mut body = json!({"environment": environment, "scopes": scopes});
            if let Some(t) = tenant {
                body["tenant"] = json!(t);
            }
            if let Some(n) = name {
                body["name"] = json!(n);
            }
            if let Some(d) = expires_in_days {
                body["expires_in_s"] = json!(d.saturating_mul(86_400));
            }
            if let Some(s) = secret {
                body["secret"] = json!(s);
            }
            let v = remote.call(reqwest::Method::POST, "/v1/admin/keys", Some(body))?;
            remote.print(&v, |v| {
                format!(
                    "created {} ({} {}, scopes {})\nsecret (shown once): {}",
                    v["id"].as_str().unwrap_or("?"),
                    v["tenant"].as_str().unwrap_or("?"),
                    v["environment"].as_str().unwrap_or("?"),
                    v["scopes"],
                    v["secret"].as_str().unwrap_or("?")
                )
            });
        }
        ApiKeysCommand::List { tenant, remote } => {
            let path = match tenant {
                Some(t) => format!("/v1/admin/keys?tenant={t}"),
                None => "/v1/admin/keys".to_owned(),
            };
            let v = remote.call(reqwest::Method::GET, &path, None)?;
            remote.print(&v, |v| {
                lines(&v["keys"], |k| {
                    format!(
                        "{}\t{}\t{}\t{}\t{}",
                        k["id"].as_str().unwrap_or("?"),
                        k["environment"].as_str().unwrap_or("?"),
                        k["scopes"],
                        k["name"].as_str().unwrap_or(""),
                        if k["revoked_at"].is_null() {
                            "active"
                        } else {
                            "revoked"
                        }
                    )
                })
            });
        }
        ApiKeysCommand::Revoke { id, remote } => {
            let v = remote.call(
                reqwest::Method::POST,
                &format!("/v1/admin/keys/{id}/revoke"),
                Some(json!({})),
            )?;
            remote.print(&v, |v| {
                format!("revoked {}", v["id"].as_str().unwrap_or("?"))
            });
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
            let key = match public_key.strip_prefix('@') {
                Some(path) => {
                    std::fs::read_to_string(path).with_context(|| format!("reading {path}"))?
                }
                None => public_key,
            };
            let v = remote.call(
                reqwest::Method::POST,
                "/v1/admin/sources",
                Some(json!({"id": id, "public_key": key})),
            )?;
            remote.print(&v, |v| {
                format!("source {} registered", v["id"].as_str().unwrap_or("?"))
            });
        }
        SourcesCommand::List { remote } => {
            let v = remote.call(reqwest::Method::GET, "/v1/admin/sources", None)?;
            remote.print(&v, |v| {
                lines(&v["sources"], |s| {
                    format!(
                        "{}\t{}\t{} outcomes",
                        s["id"].as_str().unwrap_or("?"),
                        s["public_key"].as_str().unwrap_or("?"),
                        s["outcomes"]
                    )
                })
            });
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
            let mut body = json!({"scope": scope, "reason": reason});
            if let Some(v) = value {
                body["value"] = json!(v);
            }
            let v = remote.call(reqwest::Method::POST, "/v1/admin/overrides", Some(body))?;
            remote.print(&v, |v| {
                format!("override {} engaged", v["id"].as_str().unwrap_or("?"))
            });
        }
        OverrideCommand::Clear { id, remote } => {
            let v = remote.call(
                reqwest::Method::DELETE,
                &format!("/v1/admin/overrides/{id}"),
                None,
            )?;
            remote.print(&v, |v| {
                format!("override {} cleared", v["id"].as_str().unwrap_or("?"))
            });
        }
        OverrideCommand::List { remote } => {
            let v = remote.call(reqwest::Method::GET, "/v1/admin/overrides", None)?;
            remote.print(&v, |v| {
                lines(&v["overrides"], |o| {
                    format!(
                        "{}\t{}\t{}",
                        o["id"].as_str().unwrap_or("?"),
                        o["scope"],
                        o["reason"].as_str().unwrap_or("")
                    )
                })
            });
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
        .unwrap_or_else(|| json!(v))
}

pub(crate) fn decide(a: DecideArgs) -> anyhow::Result<ExitCode> {
    let mut action = Map::new();
    action.insert("type".into(), json!(a.action_type));
    for (k, v) in a.fields {
        action.insert(k, typed(&v));
    }
    let mut signals = Map::new();
    for (k, v) in a.signals {
        let n: f64 = v
            .parse()
            .with_context(|| format!("signal `{k}` is not a number"))?;
        signals.insert(k, json!(n));
    }
    let mut body =
        json!({"action": action, "signals": signals, "mode": a.mode, "policy_refs": a.policies});
    if let Some(actor) = a.actor {
        body["actor"] = json!({"id": actor});
    }
    if let Some(s) = a.source {
        body["source"] = json!(s);
    }
    let v = a
        .remote
        .call(reqwest::Method::POST, "/v1/decisions", Some(body))?;
    a.remote.print(&v, |v| {
        let mut s = format!(
            "{} at gate {} {}\n{}",
            v["status"].as_str().unwrap_or("?"),
            v["gate"].as_str().unwrap_or("?"),
            v["reason_codes"],
            v["explanation"].as_str().unwrap_or("")
        );
        if let Some(ms) = v["retry_after_ms"].as_u64() {
            s.push_str(&format!("\nretry after {ms} ms"));
        }
        s.push_str(&format!(
            "\ndecision {}\ndossier {}",
            v["decision_id"].as_str().unwrap_or("?"),
            v["dossier_url"].as_str().unwrap_or("?")
        ));
        s
    });
    Ok(if v["status"] == "ALLOW" {
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

fn review_line(r: &Value) -> String {
    format!(
        "{}\t{}\t{}\trule {}\t{} approval(s)\texpires {}",
        r["review_id"].as_str().unwrap_or("?"),
        r["status"].as_str().unwrap_or("?"),
        r["decision_id"].as_str().unwrap_or("?"),
        r["rule"].as_str().unwrap_or("?"),
        r["approvals"].as_array().map_or(0, Vec::len),
        r["expires_at"].as_str().unwrap_or("?")
    )
}

pub(crate) fn reviews(cmd: ReviewCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        ReviewCommand::List { status, remote } => {
            let v = remote.call(
                reqwest::Method::GET,
                &format!("/v1/reviews?status={status}"),
                None,
            )?;
            remote.print(&v, |v| lines(&v["reviews"], review_line));
        }
        ReviewCommand::Approve {
            id,
            comment,
            remote,
        } => {
            let v = remote.call(
                reqwest::Method::POST,
                &format!("/v1/reviews/{id}/approve"),
                Some(json!({"comment": comment})),
            )?;
            remote.print(&v, review_line);
        }
        ReviewCommand::Reject {
            id,
            comment,
            remote,
        } => {
            let v = remote.call(
                reqwest::Method::POST,
                &format!("/v1/reviews/{id}/reject"),
                Some(json!({"comment": comment})),
            )?;
            remote.print(&v, review_line);
        }
    }
    Ok(ExitCode::SUCCESS)
}
