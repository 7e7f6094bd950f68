//! The drawdown experiment: `cargo run --release -p tollgate-lab --example drawdown`
//! prints the Markdown tables (see `docs/lab.md`).
//!
//! Options: `--json` prints the report as JSON instead; `--bars N` shortens the run
//! (the default is a trading year of 1-second bars); `--cost-bps X` changes the
//! round-trip cost; `--ablation` also runs csc-default without its throttle and without
//! its reality band, and prints the means of all three.

#![allow(clippy::print_stdout, reason = "an example prints its report")]

use anyhow::{Context, bail};
use tollgate_core::policy::CSC_DEFAULT_TEXT;
use tollgate_lab::{DrawdownConfig, DrawdownReport, run_drawdown};

fn main() -> anyhow::Result<()> {
    let mut config = DrawdownConfig::default();
    let (mut json, mut ablation) = (false, false);
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--json" => json = true,
            "--ablation" => ablation = true,
            "--bars" => {
                let n = args.next().context("--bars needs a number")?;
                config.bars = n.parse().with_context(|| format!("--bars `{n}`"))?;
            }
            "--cost-bps" => {
                let x = args.next().context("--cost-bps needs a number")?;
                config.strategy.cost_bps =
                    x.parse().with_context(|| format!("--cost-bps `{x}`"))?;
            }
            other => bail!(
                "unknown argument `{other}` (expected --json, --ablation, --bars N, --cost-bps X)"
            ),
        }
    }
    let report = run_drawdown(&config)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{report}");
    }
    if ablation {
        let variants = [
            ("csc-default without its throttle", without_throttle()?),
            ("csc-default without its reality band", without_reality()?),
        ];
        let mut rows = vec![("csc-default".to_owned(), report)];
        for (name, text) in variants {
            let c = DrawdownConfig {
                policy: Some(text),
                ..config.clone()
            };
            rows.push((name.to_owned(), run_drawdown(&c)?));
        }
        print_ablation(&rows);
    }
    Ok(())
}

fn without_throttle() -> anyhow::Result<String> {
    replace(
        "throttle:\n  - {key: [tenant], capacity: 4, refill_every: 5s}\n",
        "throttle: []\n",
    )
}

fn without_reality() -> anyhow::Result<String> {
    replace(
        "reality:\n  - {signal: volatility, lt: 0.15}\n  - {signal: confidence, gte: 0.90}\n",
        "reality: []\n",
    )
}

fn replace(part: &str, with: &str) -> anyhow::Result<String> {
    if !CSC_DEFAULT_TEXT.contains(part) {
        bail!("csc-default no longer contains {part:?}; update the ablation");
    }
    Ok(CSC_DEFAULT_TEXT.replace(part, with))
}

fn print_ablation(rows: &[(String, DrawdownReport)]) {
    println!();
    println!(
        "| policy in front of the order function | mean max DD without | mean max DD with | mean reduction (pp) | seeds reduced | expectancy without / with (bp) | return / max DD without / with | mean trades with |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    for (name, r) in rows {
        let m = &r.mean;
        println!(
            "| {name} | {:.2}% | {:.2}% | {:+.2} | {}/{} | {:+.2} / {:+.2} | {:+.2} / {:+.2} | {:.0} |",
            m.max_drawdown_without_pct,
            m.max_drawdown_with_pct,
            m.drawdown_reduction_pp,
            m.seeds_reduced,
            m.seeds,
            m.expectancy_without_bps,
            m.expectancy_with_bps,
            m.return_over_max_drawdown_without,
            m.return_over_max_drawdown_with,
            m.trades_with,
        );
    }
}
