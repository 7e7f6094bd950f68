//! The mean-reversion strategy: z-score of the log price against its moving average,
//! one unit per bar while the deviation is large, each unit held a fixed time.

use serde::{Deserialize, Serialize};

use crate::LabError;
use crate::metrics::{Window, two_sided_normal_mass};
use crate::process::Bar;

/// Parameters of the strategy and of the signals it sends with each order.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StrategyConfig {
    /// Bars in the moving average and standard deviation of the log price.
    pub lookback_bars: usize,
    /// Open a unit when `|z| >= entry_z`: short above the average, long below.
    pub entry_z: f64,
    /// Each unit is closed this many bars after it opened.
    pub hold_bars: u64,
    /// Notional of a unit as a fraction of equity when it opens.
    pub unit_fraction: f64,
    /// No new unit while this many are open (caps gross exposure at
    /// `max_open_units * unit_fraction` of equity).
    pub max_open_units: usize,
    /// Round-trip cost of a unit, in basis points of its notional.
    pub cost_bps: f64,
    /// Bars of one-bar log returns in the realised volatility sent as `volatility`.
    pub vol_window_bars: usize,
}

impl Default for StrategyConfig {
    fn default() -> Self {
        StrategyConfig {
            lookback_bars: 300,
            entry_z: 2.0,
            hold_bars: 300,
            unit_fraction: 0.02,
            max_open_units: 100,
            cost_bps: 1.0,
            vol_window_bars: 300,
        }
    }
}

impl StrategyConfig {
    pub(crate) fn validate(&self) -> Result<(), LabError> {
        for (field, v) in [
            ("strategy.lookback_bars", self.lookback_bars),
            ("strategy.max_open_units", self.max_open_units),
            ("strategy.vol_window_bars", self.vol_window_bars),
        ] {
            if v < 2 {
                return Err(LabError::config(field, format!("must be >= 2, got {v}")));
            }
        }
        if self.hold_bars == 0 {
            return Err(LabError::config(
                "strategy.hold_bars",
                "must be >= 1, got 0",
            ));
        }
        if !(self.entry_z.is_finite() && self.entry_z > 0.0) {
            return Err(LabError::config(
                "strategy.entry_z",
                format!("must be > 0, got {}", self.entry_z),
            ));
        }
        if !(self.unit_fraction.is_finite()
            && self.unit_fraction > 0.0
            && self.unit_fraction <= 1.0)
        {
            return Err(LabError::config(
                "strategy.unit_fraction",
                format!("must be in (0, 1], got {}", self.unit_fraction),
            ));
        }
        if !(self.cost_bps.is_finite() && self.cost_bps >= 0.0) {
            return Err(LabError::config(
                "strategy.cost_bps",
                format!("must be >= 0, got {}", self.cost_bps),
            ));
        }
        Ok(())
    }
}

/// What the strategy wants to do at a bar.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Signal {
    /// +1 for long, -1 for short.
    pub(crate) direction: f64,
    /// The z-score that triggered it.
    pub(crate) z: f64,
    /// Realised volatility, annualised, clamped to [0, 1]: the `volatility` signal.
    pub(crate) volatility: f64,
    /// `P(|Z| < |z|)` for a standard normal: the `confidence` signal.
    pub(crate) confidence: f64,
}

/// The strategy's state: rolling windows over the bars seen so far.
#[derive(Clone, Debug)]
pub(crate) struct Strategy {
    entry_z: f64,
    bars_per_year: f64,
    prices: Window,
    returns: Window,
    last_log: Option<f64>,
}

impl Strategy {
    pub(crate) fn new(config: &StrategyConfig, bars_per_year: f64) -> Self {
        Strategy {
            entry_z: config.entry_z,
            bars_per_year,
            prices: Window::new(config.lookback_bars),
            returns: Window::new(config.vol_window_bars),
            last_log: None,
        }
    }

    /// Feeds the bar; returns an entry signal once both windows are full and
    /// `|z| >= entry_z`. The z-score compares the bar to the window that includes it.
    pub(crate) fn on_bar(&mut self, bar: &Bar) -> Option<Signal> {
        if let Some(last) = self.last_log {
            self.returns.push(bar.log_price - last);
        }
        self.last_log = Some(bar.log_price);
        self.prices.push(bar.log_price);
        if !(self.prices.is_full() && self.returns.is_full()) {
            return None;
        }
        let sd = self.prices.std_dev();
        if sd <= 0.0 {
            return None;
        }
        let z = (bar.log_price - self.prices.mean()) / sd;
        if z.abs() < self.entry_z {
            return None;
        }
        // The window pushes one-bar returns, so its mean square is the realised
        // variance per bar (about zero mean).
        let volatility = (self.returns.mean_square() * self.bars_per_year)
            .sqrt()
            .clamp(0.0, 1.0);
        Some(Signal {
            direction: -z.signum(),
            z,
            volatility,
            confidence: two_sided_normal_mass(z),
        })
    }
}
