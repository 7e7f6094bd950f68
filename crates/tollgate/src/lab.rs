//! `tollgate lab …`: the experiments of quality.md.

use std::process::ExitCode;

use clap::Subcommand;
use tollgate_lab::{DrawdownConfig, run_drawdown};

#[derive(Debug, Subcommand)]
pub(crate) enum LabCommand {
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
