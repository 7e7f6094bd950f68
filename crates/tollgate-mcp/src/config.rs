//! The gateway's configuration file (`gateway.toml`). Unknown keys are errors; every
//! key is documented in `docs/mcp-gateway.md`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, bail};
use serde::Deserialize;
use serde_json::{Map, Value};

/// The whole file.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayConfig {
    /// Streamable HTTP toward the agent (and `/metrics`); ignored with `--stdio`.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Embedded decisions on this data directory (the default).
    #[serde(default)]
    pub data_dir: Option<PathBuf>,
    /// A `tollgate serve` configuration file for the embedded server (its `data_dir`
    /// is replaced by the gateway's).
    #[serde(default)]
    pub server_config: Option<PathBuf>,
    /// Embedded mode: also serve Tollgate's HTTP API on this address (reviewers,
    /// `tollgate review approve`, curl).
    #[serde(default)]
    pub api_listen: Option<SocketAddr>,
    /// Remote decisions: a running Tollgate.
    #[serde(default)]
    pub tollgate_url: Option<String>,
    /// Remote mode: the environment variable holding the API key.
    #[serde(default = "default_api_key_env")]
    pub api_key_env: String,
    /// Remote mode: how long one HTTP call to Tollgate may take.
    #[serde(default = "default_tollgate_timeout", with = "duration")]
    pub tollgate_timeout: Duration,
    /// The tenant (must be the API key's tenant).
    #[serde(default = "default_tenant")]
    pub tenant: String,
    /// The policy reference sent with every call (`id` or `id@N`).
    #[serde(default)]
    pub policy: Option<String>,
    /// Policy files published and activated at start (idempotent: an unchanged text
    /// publishes nothing). Needs a key with scope `admin` in remote mode.
    #[serde(default)]
    pub policy_files: Vec<PathBuf>,
    /// The actor when no client token names one (stdio, or a token-less config).
    #[serde(default)]
    pub actor: Option<Map<String, Value>>,
    /// How long a REVIEW_REQUIRED / ESCALATE call waits for reviewers.
    #[serde(default = "default_review_wait", with = "duration")]
    pub review_wait: Duration,
    /// `tools/list` leaves out tools the active policy blocks whatever the arguments.
    #[serde(default)]
    pub hide_blocked_tools: bool,
    /// `prefixed` (always `<upstream>.<tool>`) or `auto` (prefixed only on collision).
    #[serde(default)]
    pub tool_names: ToolNames,
    /// How often the active policy is polled for `notifications/tools/list_changed`.
    #[serde(default = "default_policy_poll", with = "duration")]
    pub policy_poll: Duration,
    /// Report each forwarded call's outcome to Tollgate.
    #[serde(default = "yes")]
    pub report_outcomes: bool,
    /// Remote mode: the registered outcome source (an Ed25519 key registered with
    /// `tollgate sources add`).
    #[serde(default)]
    pub outcome_source: Option<String>,
    /// Remote mode: that source's private key (PKCS#8 PEM).
    #[serde(default)]
    pub outcome_key_file: Option<PathBuf>,
    /// Largest `arguments` object (canonical JSON bytes) a call may carry.
    #[serde(default = "default_max_argument_bytes")]
    pub max_argument_bytes: usize,
    /// How long one upstream call may take.
    #[serde(default = "default_upstream_timeout", with = "duration")]
    pub upstream_timeout: Duration,
    /// Streamable HTTP: bearer token → actor.
    #[serde(default)]
    pub clients: Vec<ClientConfig>,
    /// The tool servers.
    #[serde(default)]
    pub upstreams: Vec<UpstreamConfig>,
}

/// How tools are named toward the agent.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ToolNames {
    /// Always `<upstream>.<tool>`.
    #[default]
    Prefixed,
    /// The bare tool name unless two upstreams have a tool of that name.
    Auto,
}

/// One `[[clients]]` entry.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientConfig {
    /// The environment variable holding the bearer token.
    pub token_env: String,
    /// The actor its calls are decided for.
    pub actor: Map<String, Value>,
}

/// One `[[upstreams]]` entry.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamConfig {
    /// `[A-Za-z0-9_-]`, unique: the prefix of its tools and the decision's `source`.
    pub name: String,
    /// A child process speaking MCP over stdio: program and arguments.
    #[serde(default)]
    pub command: Option<Vec<String>>,
    /// Extra environment of the child process.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Working directory of the child process.
    #[serde(default)]
    pub cwd: Option<PathBuf>,
    /// A streamable HTTP MCP server.
    #[serde(default)]
    pub url: Option<String>,
    /// HTTP headers whose values come from environment variables.
    #[serde(default)]
    pub headers_env: BTreeMap<String, String>,
    /// JSON paths in `arguments` whose values are replaced by their SHA-256 (hex)
    /// before the decision: `path`, `options.token`, `items[*].secret`.
    #[serde(default)]
    pub redact: Vec<String>,
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8766))
}
fn default_api_key_env() -> String {
    "TOLLGATE_API_KEY".to_owned()
}
fn default_tenant() -> String {
    "default".to_owned()
}
fn default_review_wait() -> Duration {
    Duration::from_secs(30)
}
fn default_policy_poll() -> Duration {
    Duration::from_secs(2)
}
fn default_tollgate_timeout() -> Duration {
    Duration::from_secs(5)
}
fn default_upstream_timeout() -> Duration {
    Duration::from_secs(120)
}
fn default_max_argument_bytes() -> usize {
    64 * 1024
}
fn yes() -> bool {
    true
}

mod duration {
    use std::time::Duration;

    use serde::{Deserialize as _, Deserializer};

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_duration(&text)
            .map_err(|e| serde::de::Error::custom(format!("bad duration `{text}`: {e}")))
    }
}

/// Which decision service the gateway asks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mode {
    /// In-process on a data directory.
    Embedded(PathBuf),
    /// A running Tollgate.
    Remote(String),
}

impl GatewayConfig {
    /// Reads and checks `path`.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read gateway config `{}`", path.display()))?;
        let mut config = Self::parse(&text)
            .with_context(|| format!("invalid gateway config `{}`", path.display()))?;
        // Relative paths are relative to the file.
        if let Some(base) = path.parent() {
            let paths = [
                &mut config.data_dir,
                &mut config.server_config,
                &mut config.outcome_key_file,
            ]
            .into_iter()
            .flatten()
            .chain(config.policy_files.iter_mut())
            .chain(config.upstreams.iter_mut().filter_map(|u| u.cwd.as_mut()));
            for p in paths {
                if p.is_relative() {
                    *p = base.join(&*p);
                }
            }
        }
        Ok(config)
    }

    /// Parses and checks a config text.
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let config: GatewayConfig = toml::from_str(text).map_err(|e| anyhow::anyhow!("{e}"))?;
        config.check()?;
        Ok(config)
    }

    /// Embedded or remote.
    pub fn mode(&self) -> Mode {
        match (&self.tollgate_url, &self.data_dir) {
            (Some(url), _) => Mode::Remote(url.trim_end_matches('/').to_owned()),
            (None, Some(dir)) => Mode::Embedded(dir.clone()),
            (None, None) => Mode::Embedded(PathBuf::from("tollgate-data")),
        }
    }

    fn check(&self) -> anyhow::Result<()> {
        if self.tollgate_url.is_some() && self.data_dir.is_some() {
            bail!(
                "set either `data_dir` (embedded decisions) or `tollgate_url` (remote), not both"
            );
        }
        if self.tollgate_url.is_some()
            && (self.api_listen.is_some() || self.server_config.is_some())
        {
            bail!(
                "`api_listen` and `server_config` belong to embedded mode (`data_dir`), not to `tollgate_url`"
            );
        }
        if let Some(url) = &self.tollgate_url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            bail!("`tollgate_url` must start with http:// or https://, got `{url}`");
        }
        if self.upstreams.is_empty() {
            bail!("no `[[upstreams]]`: the gateway needs at least one tool server");
        }
        let mut names = std::collections::BTreeSet::new();
        for (i, u) in self.upstreams.iter().enumerate() {
            let valid = !u.name.is_empty()
                && u.name.len() <= 64
                && u.name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
            if !valid {
                bail!(
                    "upstreams[{i}].name `{}`: use 1 to 64 of [A-Za-z0-9_-]",
                    u.name
                );
            }
            if !names.insert(u.name.clone()) {
                bail!("upstreams[{i}].name `{}` is used twice", u.name);
            }
            match (&u.command, &u.url) {
                (Some(c), None) if c.is_empty() => {
                    bail!("upstreams[{i}] (`{}`): `command` is empty", u.name)
                }
                (Some(_), None) => {
                    if !u.headers_env.is_empty() {
                        bail!("upstreams[{i}] (`{}`): `headers_env` needs `url`", u.name);
                    }
                }
                (None, Some(url)) => {
                    if !(url.starts_with("http://") || url.starts_with("https://")) {
                        bail!("upstreams[{i}] (`{}`): `url` must be http(s)", u.name);
                    }
                    if !u.env.is_empty() || u.cwd.is_some() {
                        bail!(
                            "upstreams[{i}] (`{}`): `env` and `cwd` need `command`",
                            u.name
                        );
                    }
                }
                _ => bail!(
                    "upstreams[{i}] (`{}`): set exactly one of `command` and `url`",
                    u.name
                ),
            }
            for p in &u.redact {
                crate::redact::parse_path(p)
                    .with_context(|| format!("upstreams[{i}].redact: bad path `{p}`"))?;
            }
        }
        for (i, c) in self.clients.iter().enumerate() {
            if c.token_env.is_empty() {
                bail!("clients[{i}].token_env is empty");
            }
            check_actor(&c.actor).with_context(|| format!("clients[{i}].actor"))?;
        }
        if let Some(a) = &self.actor {
            check_actor(a).context("actor")?;
        }
        if self.review_wait > Duration::from_secs(3600) {
            bail!("review_wait is at most 1h");
        }
        if self.policy_poll < Duration::from_millis(100) {
            bail!("policy_poll is at least 100ms");
        }
        if self.tollgate_url.is_some()
            && self.outcome_source.is_some() != self.outcome_key_file.is_some()
        {
            bail!("`outcome_source` and `outcome_key_file` go together");
        }
        Ok(())
    }
}

fn check_actor(a: &Map<String, Value>) -> anyhow::Result<()> {
    match a.get("id") {
        Some(Value::String(s)) if !s.is_empty() => Ok(()),
        _ => bail!("an actor needs a non-empty string `id`"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: &str = "[[upstreams]]\nname = \"fs\"\ncommand = [\"echo\"]\n";

    #[test]
    fn the_spec_example_parses() {
        let text = r#"
listen = "127.0.0.1:8766"
data_dir = "tollgate-data"
tenant = "default"
policy = "agent-tools"
actor = { id = "claude-desktop", type = "AI_AGENT" }
review_wait = "30s"
hide_blocked_tools = true

[[clients]]
token_env = "AGENT_A_TOKEN"
actor = { id = "agent-a", type = "AI_AGENT" }

[[upstreams]]
name = "fs"
command = ["npx", "-y", "@modelcontextprotocol/server-filesystem", "/srv/work"]

[[upstreams]]
name = "git"
command = ["python", "-m", "mcp_server_git", "--repository", "/srv/repo"]

[[upstreams]]
name = "crm"
url = "http://127.0.0.1:9000/mcp"
headers_env = { Authorization = "CRM_TOKEN" }
"#;
        let c = GatewayConfig::parse(text).unwrap();
        assert_eq!(c.upstreams.len(), 3);
        assert_eq!(c.review_wait, Duration::from_secs(30));
        assert!(c.hide_blocked_tools);
        assert_eq!(c.mode(), Mode::Embedded(PathBuf::from("tollgate-data")));
    }

    #[test]
    fn unknown_keys_and_bad_values_are_errors() {
        let e = GatewayConfig::parse(&format!("lisen = \"x\"\n{MIN}")).unwrap_err();
        assert!(format!("{e:#}").contains("unknown field `lisen`"), "{e:#}");
        let e = GatewayConfig::parse(&format!("review_wait = \"soon\"\n{MIN}")).unwrap_err();
        assert!(format!("{e:#}").contains("bad duration"), "{e:#}");
        let e = GatewayConfig::parse("").unwrap_err();
        assert!(format!("{e:#}").contains("no `[[upstreams]]`"), "{e:#}");
        let e =
            GatewayConfig::parse("[[upstreams]]\nname = \"a.b\"\ncommand = [\"x\"]\n").unwrap_err();
        assert!(format!("{e:#}").contains("[A-Za-z0-9_-]"), "{e:#}");
        let e = GatewayConfig::parse(&format!(
            "data_dir = \"d\"\ntollgate_url = \"http://x\"\n{MIN}"
        ))
        .unwrap_err();
        assert!(format!("{e:#}").contains("not both"), "{e:#}");
        let e = GatewayConfig::parse(
            "[[upstreams]]\nname = \"a\"\ncommand = [\"x\"]\nurl = \"http://x\"\n",
        )
        .unwrap_err();
        assert!(format!("{e:#}").contains("exactly one"), "{e:#}");
        let e =
            GatewayConfig::parse(&format!("actor = {{ type = \"AI_AGENT\" }}\n{MIN}")).unwrap_err();
        assert!(format!("{e:#}").contains("`id`"), "{e:#}");
    }
}
