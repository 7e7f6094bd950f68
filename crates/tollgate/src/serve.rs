//! `tollgate serve`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Args;
use tollgate_server::Config;

#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// A TOML configuration file (every key also has a `TOLLGATE_*` variable).
    #[arg(long, env = "TOLLGATE_CONFIG")]
    config: Option<PathBuf>,
    /// Listen address (overrides the file and `TOLLGATE_LISTEN`).
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Data directory (overrides the file and `TOLLGATE_DATA_DIR`).
    #[arg(long)]
    data_dir: Option<PathBuf>,
}

pub(crate) fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let env = std::env::vars().filter(|(k, _)| k.starts_with("TOLLGATE_"));
    let mut config = Config::load(args.config.as_deref(), env)?;
    if let Some(l) = args.listen {
        config.listen = l;
    }
    if let Some(d) = args.data_dir {
        config.data_dir = d;
    }
    init_logging(&config.log_format);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(tollgate_server::serve(config))?;
    Ok(ExitCode::SUCCESS)
}

fn init_logging(format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("TOLLGATE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if format == "text" {
        builder.init();
    } else {
        builder.json().flatten_event(true).init();
    }
}
