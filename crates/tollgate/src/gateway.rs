//! `tollgate gateway`: the MCP gateway (crate `tollgate-mcp`).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Args;

#[derive(Debug, Args)]
pub(crate) struct GatewayArgs {
    /// The gateway's TOML configuration (keys: docs/mcp-gateway.md).
    #[arg(long)]
    config: PathBuf,
    /// Talk MCP to the agent on stdin/stdout instead of streamable HTTP on `listen`.
    #[arg(long)]
    stdio: bool,
}

pub(crate) fn run(args: GatewayArgs) -> anyhow::Result<ExitCode> {
    let config = tollgate_mcp::GatewayConfig::load(&args.config)?;
    // Logs go to stderr: with --stdio, stdout carries the MCP messages.
    let filter = tracing_subscriber::EnvFilter::try_from_env("TOLLGATE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    if args.stdio {
        runtime.block_on(tollgate_mcp::run_stdio(config))?;
    } else {
        runtime.block_on(tollgate_mcp::run_http(config))?;
    }
    Ok(ExitCode::SUCCESS)
}
