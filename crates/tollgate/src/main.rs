//! The `tollgate` command.

#![allow(clippy::print_stdout, reason = "a CLI prints its results")]

mod audit;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Tollgate: a self-hosted decision firewall for AI agents.
#[derive(Debug, Parser)]
#[command(name = "tollgate", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Verify, export and prove the audit ledger.
    #[command(subcommand)]
    Audit(audit::AuditCommand),
    /// Show the server's public signing keys.
    #[command(subcommand)]
    Keys(audit::KeysCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Audit(cmd) => audit::run(cmd),
        Command::Keys(cmd) => audit::run_keys(cmd),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
