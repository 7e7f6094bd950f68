//! The drawdown experiment: the same strategy on the same price path, with and without
//! the firewall in front of the order function.

use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tollgate_core::{
    CompiledPolicy, DecideInput, DecisionRequest, Gate, MemoryBuckets, PolicyBinding, PolicyFormat,
    Status, UnixMillis, compile_policy, csc_default, decide,
};

use crate::LabError;
use crate::metrics::DrawdownTracker;
use crate::process::{BARS_PER_YEAR_1S, PriceProcess, ProcessConfig, Regime};
use crate::strategy::{Strategy, StrategyConfig};

/// Everything the experiment depends on. Same config, same report, bit for bit.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DrawdownConfig {
    /// The seeds of the price paths; each gets a run without and a run with the firewall.
    pub seeds: Vec<u64>,
    /// Bars per run.
    pub bars: u64,
    /// Simulated time between bars, in milliseconds: bar `k` is decided at
    /// `start_ms + k * bar_interval_ms`.
    pub bar_interval_ms: i64,
    /// Simulated time of bar 0, Unix milliseconds.
    pub start_ms: i64,
    /// Equity at the start of each run.
    pub start_equity: f64,
    /// The price process.
    pub process: ProcessConfig,
    /// The strategy.
    pub strategy: StrategyConfig,
    /// A policy document (YAML) to put in front of the order function instead of the
    /// built-in `csc-default`, e.g. for an ablation. `None`: `csc-default`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
}

impl Default for DrawdownConfig {
    fn default() -> Self {
        DrawdownConfig {
            seeds: (1..=5).collect(),
            bars: BARS_PER_YEAR_1S,
            bar_interval_ms: 1_000,
            // 2026-01-01T00:00:00Z.
            start_ms: 1_767_225_600_000,
            start_equity: 1_000_000.0,
            process: ProcessConfig::default(),
            strategy: StrategyConfig::default(),
            policy: None,
        }
    }
}

impl DrawdownConfig {
    fn validate(&self) -> Result<(), LabError> {
        if self.seeds.is_empty() {
            return Err(LabError::config("seeds", "must name at least one seed"));
        }
        if self.bars == 0 {
            return Err(LabError::config("bars", "must be >= 1, got 0"));
        }
        if self.bar_interval_ms <= 0 {
            return Err(LabError::config(
                "bar_interval_ms",
                format!("must be > 0, got {}", self.bar_interval_ms),
            ));
        }
        let end = i64::try_from(self.bars)
            .ok()
            .and_then(|b| b.checked_mul(self.bar_interval_ms))
            .and_then(|d| d.checked_add(self.start_ms));
        if end.is_none() {
            return Err(LabError::config(
                "bars",
                "the simulated clock would overflow",
            ));
        }
        if !(self.start_equity.is_finite() && self.start_equity > 0.0) {
            return Err(LabError::config(
                "start_equity",
                format!("must be > 0, got {}", self.start_equity),
            ));
        }
        self.process.validate()?;
        self.strategy.validate()
    }
}

/// Orders blocked, by the gate that blocked them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Blocks {
    /// Policy rules and the survival score.
    pub policy: u64,
    /// The reality bands (volatility, confidence).
    pub reality: u64,
    /// The token bucket.
    pub throttle: u64,
    /// Any other gate, or a non-ALLOW status at the permit gate (never expected).
    pub other: u64,
}

impl Blocks {
    /// All blocked orders.
    pub fn total(&self) -> u64 {
        self.policy + self.reality + self.throttle + self.other
    }

    fn count(&mut self, gate: Gate) {
        match gate {
            Gate::Policy => self.policy += 1,
            Gate::Reality => self.reality += 1,
            Gate::Throttle => self.throttle += 1,
            _ => self.other += 1,
        }
    }
}

/// The outcome of one run (one seed, with or without the firewall).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunStats {
    /// Maximum drawdown of the equity curve (marked to market every bar), in percent.
    pub max_drawdown_pct: f64,
    /// Equity after the last bar, every unit closed.
    pub final_equity: f64,
    /// `final_equity / start_equity - 1`, in percent.
    pub return_pct: f64,
    /// Orders the strategy sent to the order function.
    pub orders: u64,
    /// Orders executed (each is one trade: a unit opened and later closed).
    pub trades: u64,
    /// Trades opened in the turbulent regime.
    pub trades_turbulent: u64,
    /// Expectancy: mean P&L per trade, after costs, in currency.
    pub expectancy: f64,
    /// Mean P&L per trade, after costs, in basis points of the trade's notional.
    pub expectancy_bps: f64,
    /// Share of trades with a positive P&L, in percent.
    pub win_rate_pct: f64,
    /// Units open, averaged over the bars (gross exposure is about this times
    /// `unit_fraction` of equity).
    pub mean_open_units: f64,
    /// `return_pct / max_drawdown_pct` (a Calmar-like ratio; 0 when there was no
    /// drawdown): comparable between runs whose exposure differs.
    pub return_over_max_drawdown: f64,
    /// Orders the firewall blocked, by gate (all zero without the firewall).
    pub blocked: Blocks,
}

/// One seed: the two runs and the difference in max drawdown.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SeedResult {
    /// The seed.
    pub seed: u64,
    /// Share of bars in the turbulent regime, in percent.
    pub turbulent_bars_pct: f64,
    /// Every order executed.
    pub without: RunStats,
    /// Only the orders the engine permitted executed.
    pub with: RunStats,
    /// `without.max_drawdown_pct - with.max_drawdown_pct`: positive when the firewall
    /// reduced the drawdown.
    pub drawdown_reduction_pp: f64,
}

/// Means over the seeds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MeanRow {
    /// Mean max drawdown without the firewall, percent.
    pub max_drawdown_without_pct: f64,
    /// Mean max drawdown with the firewall, percent.
    pub max_drawdown_with_pct: f64,
    /// Mean reduction, percentage points.
    pub drawdown_reduction_pp: f64,
    /// Seeds on which the firewall reduced the max drawdown.
    pub seeds_reduced: usize,
    /// Seeds run.
    pub seeds: usize,
    /// Mean expectancy without the firewall, currency per trade.
    pub expectancy_without: f64,
    /// Mean expectancy with the firewall, currency per trade.
    pub expectancy_with: f64,
    /// Mean expectancy without the firewall, basis points of notional per trade.
    pub expectancy_without_bps: f64,
    /// Mean expectancy with the firewall, basis points of notional per trade.
    pub expectancy_with_bps: f64,
    /// Mean return without the firewall, percent.
    pub return_without_pct: f64,
    /// Mean return with the firewall, percent.
    pub return_with_pct: f64,
    /// Mean of `return_over_max_drawdown` without the firewall.
    pub return_over_max_drawdown_without: f64,
    /// Mean of `return_over_max_drawdown` with the firewall.
    pub return_over_max_drawdown_with: f64,
    /// Mean of `mean_open_units` without the firewall.
    pub mean_open_units_without: f64,
    /// Mean of `mean_open_units` with the firewall.
    pub mean_open_units_with: f64,
    /// Mean trades without the firewall.
    pub trades_without: f64,
    /// Mean trades with the firewall.
    pub trades_with: f64,
}

/// The experiment's result: the config it ran, one row per seed, and the means.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DrawdownReport {
    /// What ran.
    pub config: DrawdownConfig,
    /// One row per seed, in config order.
    pub seeds: Vec<SeedResult>,
    /// Means over the seeds.
    pub mean: MeanRow,
}

/// Runs the experiment: for each seed, the strategy without and with the firewall on the
/// same price path.
pub fn run_drawdown(config: &DrawdownConfig) -> Result<DrawdownReport, LabError> {
    config.validate()?;
    let policy = match &config.policy {
        None => csc_default()?,
        Some(text) => Arc::new(compile_policy(text, PolicyFormat::Yaml)?),
    };
    let mut seeds = Vec::with_capacity(config.seeds.len());
    for &seed in &config.seeds {
        let (without, turbulent_bars) = simulate(config, seed, &mut NoFirewall, None)?;
        let mut firewall = Firewall::new(config, Arc::clone(&policy));
        let (with, _) = simulate(config, seed, &mut firewall, None)?;
        seeds.push(SeedResult {
            seed,
            turbulent_bars_pct: 100.0 * turbulent_bars as f64 / config.bars as f64,
            drawdown_reduction_pp: without.max_drawdown_pct - with.max_drawdown_pct,
            without,
            with,
        });
    }
    let mean = mean_row(&seeds);
    Ok(DrawdownReport {
        config: config.clone(),
        seeds,
        mean,
    })
}

fn mean_row(seeds: &[SeedResult]) -> MeanRow {
    let n = seeds.len().max(1) as f64;
    let mean = |f: &dyn Fn(&SeedResult) -> f64| seeds.iter().map(f).sum::<f64>() / n;
    MeanRow {
        max_drawdown_without_pct: mean(&|s| s.without.max_drawdown_pct),
        max_drawdown_with_pct: mean(&|s| s.with.max_drawdown_pct),
        drawdown_reduction_pp: mean(&|s| s.drawdown_reduction_pp),
        seeds_reduced: seeds
            .iter()
            .filter(|s| s.drawdown_reduction_pp > 0.0)
            .count(),
        seeds: seeds.len(),
        expectancy_without: mean(&|s| s.without.expectancy),
        expectancy_with: mean(&|s| s.with.expectancy),
        expectancy_without_bps: mean(&|s| s.without.expectancy_bps),
        expectancy_with_bps: mean(&|s| s.with.expectancy_bps),
        return_without_pct: mean(&|s| s.without.return_pct),
        return_with_pct: mean(&|s| s.with.return_pct),
        return_over_max_drawdown_without: mean(&|s| s.without.return_over_max_drawdown),
        return_over_max_drawdown_with: mean(&|s| s.with.return_over_max_drawdown),
        mean_open_units_without: mean(&|s| s.without.mean_open_units),
        mean_open_units_with: mean(&|s| s.with.mean_open_units),
        trades_without: mean(&|s| s.without.trades as f64),
        trades_with: mean(&|s| s.with.trades as f64),
    }
}

/// An order the strategy sends to the order function.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Order {
    pub(crate) bar: u64,
    pub(crate) direction: f64,
    pub(crate) notional: f64,
    pub(crate) volatility: f64,
    pub(crate) confidence: f64,
}

/// What the order function's guard answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum GateOutcome {
    Execute,
    Blocked(Gate),
}

/// What stands in front of the order function.
pub(crate) trait OrderGate {
    fn check(&mut self, order: &Order) -> Result<GateOutcome, LabError>;
}

/// Every order executes.
#[derive(Debug)]
pub(crate) struct NoFirewall;

impl OrderGate for NoFirewall {
    fn check(&mut self, _order: &Order) -> Result<GateOutcome, LabError> {
        Ok(GateOutcome::Execute)
    }
}

/// Each order is decided by `tollgate-core` under `csc-default`, in-process, at the
/// bar's simulated time; throttle state lives in `MemoryBuckets`.
#[derive(Debug)]
pub(crate) struct Firewall {
    policies: [PolicyBinding; 1],
    buckets: MemoryBuckets,
    request: DecisionRequest,
    start_ms: i64,
    bar_interval_ms: i64,
}

impl Firewall {
    pub(crate) fn new(config: &DrawdownConfig, policy: Arc<CompiledPolicy>) -> Self {
        let mut request = DecisionRequest {
            tenant: "lab".into(),
            source: Some("mean-reversion".into()),
            ..Default::default()
        };
        request.actor.insert("id".into(), "mean-reversion".into());
        request.action.insert("type".into(), "OPEN_POSITION".into());
        Firewall {
            policies: [PolicyBinding::Found(policy)],
            buckets: MemoryBuckets::new(),
            request,
            start_ms: config.start_ms,
            bar_interval_ms: config.bar_interval_ms,
        }
    }
}

impl OrderGate for Firewall {
    fn check(&mut self, order: &Order) -> Result<GateOutcome, LabError> {
        let side = if order.direction > 0.0 { "buy" } else { "sell" };
        self.request.action.insert("side".into(), side.into());
        self.request
            .action
            .insert("notional".into(), Value::from(order.notional));
        self.request
            .signals
            .insert("volatility".into(), order.volatility);
        self.request
            .signals
            .insert("confidence".into(), order.confidence);
        // `validate` checked that this cannot overflow.
        let bar = i64::try_from(order.bar).unwrap_or(i64::MAX);
        let now = self
            .start_ms
            .saturating_add(bar.saturating_mul(self.bar_interval_ms));
        let input = DecideInput {
            request: &self.request,
            policies: &self.policies,
            now: UnixMillis(now),
            overrides: &[],
            outcomes: &[],
            approval: None,
            tenant_shadow: false,
        };
        let verdict = decide(&input, &mut self.buckets)
            .map_err(|e| LabError::invalid_order(order.bar, &e))?;
        Ok(match verdict.status {
            Status::Allow => GateOutcome::Execute,
            _ => GateOutcome::Blocked(verdict.gate),
        })
    }
}

/// An open unit.
#[derive(Clone, Copy, Debug)]
struct Unit {
    close_bar: u64,
    direction: f64,
    shares: f64,
    entry_price: f64,
    notional: f64,
}

/// Runs the strategy on one seed's path behind `gate`. Returns the run's statistics
/// and the number of turbulent bars. When `executed` is given, the bar of every
/// executed order is appended to it.
pub(crate) fn simulate(
    config: &DrawdownConfig,
    seed: u64,
    gate: &mut dyn OrderGate,
    mut executed: Option<&mut Vec<u64>>,
) -> Result<(RunStats, u64), LabError> {
    let s = &config.strategy;
    let mut process = PriceProcess::new(&config.process, seed)?;
    let mut strategy = Strategy::new(s, config.process.bars_per_year);
    let mut open: VecDeque<Unit> = VecDeque::with_capacity(s.max_open_units);
    // Cash holds realised P&L (positions are margined, not paid for), so
    // equity = cash + Σ direction·shares·(price − entry) = cash + price·net_shares − net_cost.
    let mut cash = config.start_equity;
    let (mut net_shares, mut net_cost) = (0.0f64, 0.0f64);
    let mut tracker = DrawdownTracker::default();
    tracker.observe(cash);
    let mut blocked = Blocks::default();
    let (mut orders, mut trades, mut trades_turbulent, mut wins) = (0u64, 0u64, 0u64, 0u64);
    let (mut pnl_sum, mut bps_sum) = (0.0f64, 0.0f64);
    let mut turbulent_bars = 0u64;
    let mut open_unit_bars = 0u64;
    let mut last_price = config.process.start_price;

    let mut close = |unit: Unit, price: f64, cash: &mut f64, ns: &mut f64, nc: &mut f64| {
        let pnl = unit.direction * unit.shares * (price - unit.entry_price)
            - unit.notional * s.cost_bps * 1e-4;
        *cash += pnl;
        *ns -= unit.direction * unit.shares;
        *nc -= unit.direction * unit.shares * unit.entry_price;
        pnl_sum += pnl;
        bps_sum += pnl / unit.notional * 1e4;
        if pnl > 0.0 {
            wins += 1;
        }
    };

    for k in 0..config.bars {
        let bar = process.next_bar();
        last_price = bar.price;
        if bar.regime == Regime::Turbulent {
            turbulent_bars += 1;
        }
        while let Some(unit) = open.front().copied().filter(|u| u.close_bar <= k) {
            open.pop_front();
            close(unit, bar.price, &mut cash, &mut net_shares, &mut net_cost);
        }
        if open.is_empty() {
            // Nothing open: drop the rounding the running sums picked up.
            (net_shares, net_cost) = (0.0, 0.0);
        }
        let equity = cash + bar.price * net_shares - net_cost;
        tracker.observe(equity);
        open_unit_bars += open.len() as u64;

        let Some(signal) = strategy.on_bar(&bar) else {
            continue;
        };
        if open.len() >= s.max_open_units || equity <= 0.0 {
            continue;
        }
        let order = Order {
            bar: k,
            direction: signal.direction,
            notional: s.unit_fraction * equity,
            volatility: signal.volatility,
            confidence: signal.confidence,
        };
        orders += 1;
        match gate.check(&order)? {
            GateOutcome::Blocked(g) => blocked.count(g),
            GateOutcome::Execute => {
                let shares = order.notional / bar.price;
                open.push_back(Unit {
                    close_bar: k + s.hold_bars,
                    direction: order.direction,
                    shares,
                    entry_price: bar.price,
                    notional: order.notional,
                });
                net_shares += order.direction * shares;
                net_cost += order.direction * shares * bar.price;
                trades += 1;
                if bar.regime == Regime::Turbulent {
                    trades_turbulent += 1;
                }
                if let Some(log) = executed.as_deref_mut() {
                    log.push(k);
                }
            }
        }
    }
    while let Some(unit) = open.pop_front() {
        close(unit, last_price, &mut cash, &mut net_shares, &mut net_cost);
    }
    tracker.observe(cash);

    let per_trade = |sum: f64| {
        if trades == 0 {
            0.0
        } else {
            sum / trades as f64
        }
    };
    let max_drawdown_pct = 100.0 * tracker.max_drawdown();
    let return_pct = 100.0 * (cash / config.start_equity - 1.0);
    let stats = RunStats {
        max_drawdown_pct,
        final_equity: cash,
        return_pct,
        orders,
        trades,
        trades_turbulent,
        expectancy: per_trade(pnl_sum),
        expectancy_bps: per_trade(bps_sum),
        win_rate_pct: 100.0 * per_trade(wins as f64),
        mean_open_units: open_unit_bars as f64 / config.bars as f64,
        return_over_max_drawdown: if max_drawdown_pct > 0.0 {
            return_pct / max_drawdown_pct
        } else {
            0.0
        },
        blocked,
    };
    Ok((stats, turbulent_bars))
}

impl fmt::Display for DrawdownReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.config;
        writeln!(
            f,
            "Drawdown experiment: {} bars of {} ms per seed, {} in-process, simulated clock \
             (csc-default's refill of 5 s = {:.1} bars), cost {} bp a round trip.",
            c.bars,
            c.bar_interval_ms,
            if c.policy.is_some() {
                "a custom policy"
            } else {
                "csc-default"
            },
            5_000.0 / c.bar_interval_ms as f64,
            c.strategy.cost_bps,
        )?;
        writeln!(f)?;
        writeln!(
            f,
            "| seed | turbulent bars | max DD without | max DD with | reduction (pp) | trades without (in turbulence) | trades with (in turbulence) |"
        )?;
        writeln!(f, "|---:|---:|---:|---:|---:|---:|---:|")?;
        for s in &self.seeds {
            writeln!(
                f,
                "| {} | {:.1}% | {:.2}% | {:.2}% | {:+.2} | {} ({}) | {} ({}) |",
                s.seed,
                s.turbulent_bars_pct,
                s.without.max_drawdown_pct,
                s.with.max_drawdown_pct,
                s.drawdown_reduction_pp,
                s.without.trades,
                s.without.trades_turbulent,
                s.with.trades,
                s.with.trades_turbulent,
            )?;
        }
        let m = &self.mean;
        writeln!(
            f,
            "| **mean** | | {:.2}% | {:.2}% | {:+.2} | {:.0} | {:.0} |",
            m.max_drawdown_without_pct,
            m.max_drawdown_with_pct,
            m.drawdown_reduction_pp,
            m.trades_without,
            m.trades_with,
        )?;
        writeln!(f)?;
        writeln!(
            f,
            "| seed | expectancy without | expectancy with | return without | return with | return / max DD without / with | mean open units without / with | win rate without / with | orders with | blocked: reality | throttle | policy | other |"
        )?;
        writeln!(
            f,
            "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
        )?;
        for s in &self.seeds {
            let (a, b) = (&s.without, &s.with);
            writeln!(
                f,
                "| {} | {:.2} ({:+.2} bp) | {:.2} ({:+.2} bp) | {:+.2}% | {:+.2}% | {:+.2} / {:+.2} | {:.1} / {:.1} | {:.1}% / {:.1}% | {} | {} | {} | {} | {} |",
                s.seed,
                a.expectancy,
                a.expectancy_bps,
                b.expectancy,
                b.expectancy_bps,
                a.return_pct,
                b.return_pct,
                a.return_over_max_drawdown,
                b.return_over_max_drawdown,
                a.mean_open_units,
                b.mean_open_units,
                a.win_rate_pct,
                b.win_rate_pct,
                b.orders,
                b.blocked.reality,
                b.blocked.throttle,
                b.blocked.policy,
                b.blocked.other,
            )?;
        }
        writeln!(
            f,
            "| **mean** | {:.2} ({:+.2} bp) | {:.2} ({:+.2} bp) | {:+.2}% | {:+.2}% | {:+.2} / {:+.2} | {:.1} / {:.1} | | | | | | |",
            m.expectancy_without,
            m.expectancy_without_bps,
            m.expectancy_with,
            m.expectancy_with_bps,
            m.return_without_pct,
            m.return_with_pct,
            m.return_over_max_drawdown_without,
            m.return_over_max_drawdown_with,
            m.mean_open_units_without,
            m.mean_open_units_with,
        )?;
        writeln!(f)?;
        writeln!(
            f,
            "Max drawdown lower with the firewall on {}/{} seeds; mean change {:+.2} pp \
             (published: ~8.5 pp reduction, 5/5 seeds, no expectancy gain).",
            m.seeds_reduced, m.seeds, m.drawdown_reduction_pp
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> DrawdownConfig {
        DrawdownConfig {
            seeds: vec![1, 2],
            bars: 40_000,
            ..DrawdownConfig::default()
        }
    }

    /// Wraps the firewall and records what it answered for every order.
    struct Recording {
        inner: Firewall,
        answers: Vec<(u64, GateOutcome)>,
    }

    impl OrderGate for Recording {
        fn check(&mut self, order: &Order) -> Result<GateOutcome, LabError> {
            let outcome = self.inner.check(order)?;
            self.answers.push((order.bar, outcome));
            Ok(outcome)
        }
    }

    #[test]
    fn the_firewall_run_executes_exactly_the_permitted_orders() {
        let config = small();
        let mut gate = Recording {
            inner: Firewall::new(&config, csc_default().unwrap()),
            answers: Vec::new(),
        };
        let mut executed = Vec::new();
        let (stats, _) = simulate(&config, 1, &mut gate, Some(&mut executed)).unwrap();
        let permitted: Vec<u64> = gate
            .answers
            .iter()
            .filter(|(_, o)| *o == GateOutcome::Execute)
            .map(|(bar, _)| *bar)
            .collect();
        // The test is only meaningful when the engine both permitted and blocked.
        assert!(!permitted.is_empty(), "no order was permitted");
        assert!(stats.blocked.total() > 0, "no order was blocked");
        assert_eq!(executed, permitted);
        assert_eq!(stats.trades as usize, executed.len());
        assert_eq!(stats.orders, stats.trades + stats.blocked.total());
        assert_eq!(stats.blocked.other, 0);
    }

    #[test]
    fn without_the_firewall_every_order_executes() {
        let config = small();
        let mut executed = Vec::new();
        let (stats, _) = simulate(&config, 1, &mut NoFirewall, Some(&mut executed)).unwrap();
        assert!(stats.orders > 0);
        assert_eq!(stats.orders, stats.trades);
        assert_eq!(stats.blocked, Blocks::default());
    }

    #[test]
    fn the_throttle_caps_bursts_at_four_then_one_per_five_seconds() {
        // Orders on every bar, 1 s apart, all inside the reality band.
        let config = small();
        let mut fw = Firewall::new(&config, csc_default().unwrap());
        let outcomes: Vec<GateOutcome> = (0..20)
            .map(|bar| {
                let order = Order {
                    bar,
                    direction: 1.0,
                    notional: 1_000.0,
                    volatility: 0.05,
                    confidence: 0.95,
                };
                fw.check(&order).unwrap()
            })
            .collect();
        let permitted: Vec<usize> = outcomes
            .iter()
            .enumerate()
            .filter(|(_, o)| **o == GateOutcome::Execute)
            .map(|(i, _)| i)
            .collect();
        assert_eq!(permitted, vec![0, 1, 2, 3, 5, 10, 15]);
        assert!(outcomes.iter().all(|o| matches!(
            o,
            GateOutcome::Execute | GateOutcome::Blocked(Gate::Throttle)
        )));
    }

    #[test]
    fn the_reality_band_blocks_high_volatility_and_low_confidence() {
        let config = small();
        let mut fw = Firewall::new(&config, csc_default().unwrap());
        let mut order = Order {
            bar: 0,
            direction: -1.0,
            notional: 1_000.0,
            volatility: 0.15,
            confidence: 0.99,
        };
        assert_eq!(
            fw.check(&order).unwrap(),
            GateOutcome::Blocked(Gate::Reality)
        );
        order.volatility = 0.149;
        order.confidence = 0.89;
        assert_eq!(
            fw.check(&order).unwrap(),
            GateOutcome::Blocked(Gate::Reality)
        );
        order.confidence = 0.9;
        assert_eq!(fw.check(&order).unwrap(), GateOutcome::Execute);
    }

    #[test]
    fn the_report_is_deterministic_and_serialises() {
        let config = DrawdownConfig {
            seeds: vec![4],
            bars: 20_000,
            ..DrawdownConfig::default()
        };
        let a = run_drawdown(&config).unwrap();
        let b = run_drawdown(&config).unwrap();
        assert_eq!(a, b);
        let json = serde_json::to_string(&a).unwrap();
        let back: DrawdownReport = serde_json::from_str(&json).unwrap();
        assert_eq!(back.seeds.len(), 1);
        assert_eq!(back.config, config);
        let table = a.to_string();
        assert!(table.contains("| 4 |"), "{table}");
        assert!(table.contains("**mean**"), "{table}");
    }

    #[test]
    fn a_custom_policy_replaces_csc_default() {
        let text = tollgate_core::policy::CSC_DEFAULT_TEXT.replace(
            "throttle:\n  - {key: [tenant], capacity: 4, refill_every: 5s}\n",
            "throttle: []\n",
        );
        assert_ne!(text, tollgate_core::policy::CSC_DEFAULT_TEXT);
        let config = DrawdownConfig {
            seeds: vec![1],
            bars: 20_000,
            policy: Some(text),
            ..DrawdownConfig::default()
        };
        let report = run_drawdown(&config).unwrap();
        let with = &report.seeds[0].with;
        assert_eq!(with.blocked.throttle, 0);
        assert!(with.trades > 0);
        let broken = DrawdownConfig {
            policy: Some("id: x\nrules: [".into()),
            ..config
        };
        assert!(matches!(run_drawdown(&broken), Err(LabError::Policy(_))));
    }

    #[test]
    fn a_bad_config_is_an_error_not_a_panic() {
        let config = DrawdownConfig {
            seeds: vec![],
            ..DrawdownConfig::default()
        };
        assert!(matches!(
            run_drawdown(&config),
            Err(LabError::InvalidConfig { field: "seeds", .. })
        ));
        let config = DrawdownConfig {
            bar_interval_ms: 0,
            ..DrawdownConfig::default()
        };
        assert!(run_drawdown(&config).is_err());
    }
}
