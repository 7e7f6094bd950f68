//! `tollgate lab …`: the experiments of docs/quality.md.

use std::process::ExitCode;

use std::time::Duration;

use clap::Subcommand;
use tollgate_lab::{CharacterizeConfig, DrawdownConfig, characterize, run_drawdown};

#[derive(Debug, Subcommand)]
pub(crate) enum LabCommand {
    /// Black-box probes of the published DeAlgo characterisation table against a
    /// running server (csc-default, public HTTP API only): prints the table with the
    /// published and measured values. Takes about 6 minutes (the bucket refills one
    /// token per 5 s). Exit code 1 when a value differs or a false permit is seen.
    /// Method: docs/lab.md.
    #[command(after_help = "Examples:
  tollgate lab characterize --url http://127.0.0.1:8765 --key tg_test_…
  tollgate lab characterize --url http://127.0.0.1:8765 --key tg_test_… --json")]
    Characterize {
        /// Base URL of the server.
        #[arg(long, env = "TOLLGATE_URL", default_value = "http://127.0.0.1:8765")]
        url: String,
        /// API key with scope `decide`; its tenant's bucket is probed, so use a tenant
        /// nothing else is using.
        #[arg(long, env = "TOLLGATE_API_KEY", hide_env_values = true)]
        key: String,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
        /// Quiet seconds before the capacity and multi-agent probes.
        #[arg(long, default_value_t = 25)]
        quiet: u64,
        /// Seconds of continuous in-band traffic in the steady-state probe.
        #[arg(long, default_value_t = 60)]
        ceiling: u64,
        /// The refill probe waits 1…N seconds.
        #[arg(long, default_value_t = 10)]
        refill_max: u32,
        /// Sweeps: count a throttle refusal as "passed the band" instead of waiting
        /// for a token and asking again (faster, same window).
        #[arg(long)]
        no_wait: bool,
        /// Seed of the chaos probe.
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// The synthetic mean-reversion experiment, 5 seeds, with and without the
    /// firewall in front of the order function (engine in-process, simulated clock).
    /// Method: docs/lab.md.
    #[command(after_help = "Examples:
  tollgate lab drawdown
  tollgate lab drawdown --bars 100000 --json")]
    Drawdown {
        /// Number of 1-second bars per seed (default: a trading year).
        #[arg(long)]
        bars: Option<u64>,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
}

pub(crate) fn run(cmd: LabCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        LabCommand::Characterize {
            url,
            key,
            json,
            quiet,
            ceiling,
            refill_max,
            no_wait,
            seed,
        } => {
            let mut config = CharacterizeConfig::new(url, key);
            config.quiet = Duration::from_secs(quiet);
            config.ceiling = Duration::from_secs(ceiling);
            config.refill_max_s = refill_max;
            config.wait_for_tokens = !no_wait;
            config.seed = seed;
            let report = characterize(&config)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                println!("{report}");
            }
            if !report.all_match() {
                return Ok(ExitCode::from(1));
            }
        }
        LabCommand::Drawdown { bars, json } => {
            let mut config = DrawdownConfig::default();
            if let Some(b) = bars {
                config.bars = b;
            }
            let report = run_drawdown(&config)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                println!("{report}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
