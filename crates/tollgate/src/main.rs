//! The `tollgate` command.

#![allow(clippy::print_stdout, reason = "a CLI prints its results")]

mod audit;
mod gateway;
mod lab;
mod mirror;
mod notify;
mod policy;
mod remote;
mod serve;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

// glibc's malloc and free were a fifth of the server's CPU under load (perf, see the
// README's Figures); mimalloc's thread-local free lists avoid the arena locks.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Tollgate: a self-hosted decision firewall for AI agents.
#[derive(Debug, Parser)]
#[command(name = "tollgate", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server (embedded SQLite by default; no other process needed).
    #[command(after_help = "Examples:
  tollgate serve                                   # 127.0.0.1:8765, data in ./tollgate-data
  tollgate serve --listen 0.0.0.0:8765 --data-dir /var/lib/tollgate
  TOLLGATE_CONFIG=/etc/tollgate.toml tollgate serve
On first start the log names a 0600 file with a bootstrap admin key and a test decide key.")]
    Serve(serve::ServeArgs),
    /// Ask for a decision from the shell.
    Decide(remote::DecideArgs),
    /// API keys (create, list, revoke) and the server's public signing keys (show).
    #[command(subcommand)]
    Keys(remote::ApiKeysCommand),
    /// Tenants (operator key).
    #[command(subcommand)]
    Tenants(remote::TenantsCommand),
    /// Sources: Ed25519 keys that sign outcome reports.
    #[command(subcommand)]
    Sources(remote::SourcesCommand),
    /// Kill switches.
    #[command(subcommand)]
    Override(remote::OverrideCommand),
    /// Human review of escalations.
    #[command(subcommand)]
    Review(remote::ReviewCommand),
    /// Notification and SIEM sinks: add, list, test, remove, dead letters.
    #[command(subcommand)]
    Notify(notify::NotifyCommand),
    /// Policies: validate, test, publish, activate, roll back, diff, candidates, replay, apply.
    #[command(subcommand)]
    Policy(policy::PolicyCommand),
    /// Verify, export and prove the audit ledger.
    #[command(subcommand)]
    Audit(audit::AuditCommand),
    /// The lab: reproduce the published figures.
    #[command(subcommand)]
    Lab(lab::LabCommand),
    /// The MCP gateway: agents' tool calls pass Tollgate before any tool server.
    #[command(after_help = "Examples:
  tollgate gateway --config gateway.toml            # streamable HTTP at http://<listen>/mcp
  tollgate gateway --config gateway.toml --stdio    # for Claude Desktop / VS Code (mcp.json)")]
    Gateway(gateway::GatewayArgs),
}

fn main() -> ExitCode {
    // reqwest may be compiled with rustls and no default crypto provider.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => serve::run(args),
        Command::Decide(args) => remote::decide(args),
        Command::Keys(cmd) => remote::api_keys(cmd),
        Command::Tenants(cmd) => remote::tenants(cmd),
        Command::Sources(cmd) => remote::sources(cmd),
        Command::Override(cmd) => remote::overrides(cmd),
        Command::Review(cmd) => remote::reviews(cmd),
        Command::Notify(cmd) => notify::run(cmd),
        Command::Policy(cmd) => policy::run(cmd),
        Command::Audit(cmd) => audit::run(cmd),
        Command::Lab(cmd) => lab::run(cmd),
        Command::Gateway(args) => gateway::run(args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
