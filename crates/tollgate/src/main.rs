//! The `tollgate` command.

use clap::Parser;

/// Tollgate: a self-hosted decision firewall for AI agents.
#[derive(Debug, Parser)]
#[command(name = "tollgate", version, about)]
struct Cli {}

fn main() -> anyhow::Result<()> {
    let _cli = Cli::parse();
    anyhow::bail!("no command is implemented yet; see README.md")
}
