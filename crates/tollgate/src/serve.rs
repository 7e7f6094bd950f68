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
    // Before the runtime: the exporters' threads and the trace layer must exist
    // before the first request (and the router's trace layer is added only if on).
    let telemetry = tollgate_server::otel::Telemetry::start(&config.otel)?;
    init_logging(&config.log_format, telemetry.as_ref());
    if telemetry.is_some() {
        tracing::info!("OpenTelemetry export on");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let served = runtime.block_on(tollgate_server::serve(config));
    if let Some(t) = telemetry {
        t.shutdown();
    }
    served?;
    Ok(ExitCode::SUCCESS)
}

fn init_logging(format: &str, telemetry: Option<&tollgate_server::otel::Telemetry>) {
    use tracing_subscriber::Layer as _;
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    let filter = tracing_subscriber::EnvFilter::try_from_env("TOLLGATE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let fmt = if format == "text" {
        fmt.boxed()
    } else {
        fmt.json().flatten_event(true).boxed()
    };
    let otel = telemetry.map(|t| {
        t.layer()
            .with_filter(tollgate_server::otel::Telemetry::filter())
    });
    tracing_subscriber::registry()
        .with(otel)
        .with(fmt.with_filter(filter))
        .init();
}
