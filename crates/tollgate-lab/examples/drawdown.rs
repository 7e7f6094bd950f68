//! The drawdown experiment: `cargo run --release -p tollgate-lab --example drawdown`
//! prints the Markdown tables; `-- --json` prints the report as JSON instead.
//! `-- --bars N` shortens the run (the default is a trading year of 1-second bars).

#![allow(clippy::print_stdout, reason = "an example prints its report")]

use anyhow::{Context, bail};
use tollgate_lab::{DrawdownConfig, run_drawdown};

fn main() -> anyhow::Result<()> {
    let mut config = DrawdownConfig::default();
    let mut json = false;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--json" => json = true,
            "--bars" => {
                let n = args.next().context("--bars needs a number")?;
                config.bars = n.parse().with_context(|| format!("--bars `{n}`"))?;
            }
            other => bail!("unknown argument `{other}` (expected --json, --bars N)"),
        }
    }
    let report = run_drawdown(&config)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{report}");
    }
    Ok(())
}
