//! The synthetic price process: a seeded, two-regime (calm / turbulent) Markov-switching
//! process whose log price is a random walk plus a mean-reverting (AR(1)) deviation.
//!
//! Volatility clusters because the regime persists: each bar the calm regime turns
//! turbulent with probability `1 / mean_calm_bars` and the turbulent regime calms with
//! probability `1 / mean_turbulent_bars`. Both components scale with the regime's
//! volatility; the strength of mean reversion is the same in both regimes, so the
//! process does not build in that the strategy loses in turbulent regimes — only that
//! its trades are riskier there.

use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::LabError;

/// Parameters of the price process. Volatilities are annualised over
/// `bars_per_year` bars.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProcessConfig {
    /// Price at bar 0.
    pub start_price: f64,
    /// Annualised volatility of one-bar log returns in the calm regime.
    pub calm_vol: f64,
    /// Annualised volatility of one-bar log returns in the turbulent regime.
    pub turbulent_vol: f64,
    /// Mean length of a calm spell, in bars.
    pub mean_calm_bars: f64,
    /// Mean length of a turbulent spell, in bars.
    pub mean_turbulent_bars: f64,
    /// Share of the one-bar return variance that comes from the mean-reverting
    /// component, in [0, 1).
    pub reversion_share: f64,
    /// Half-life of the mean-reverting deviation, in bars.
    pub reversion_half_life_bars: f64,
    /// Bars in a year, for annualisation.
    pub bars_per_year: f64,
}

/// One trading year of 1-second bars: 252 days of 6.5 hours.
pub const BARS_PER_YEAR_1S: u64 = 252 * 23_400;

impl Default for ProcessConfig {
    fn default() -> Self {
        ProcessConfig {
            start_price: 100.0,
            // Roughly an equity index in quiet and in stressed markets.
            calm_vol: 0.12,
            turbulent_vol: 0.36,
            // Two trading days of 1-second bars calm, two hours turbulent, on average:
            // about 13% of the time is turbulent.
            mean_calm_bars: 2.0 * 23_400.0,
            mean_turbulent_bars: 7_200.0,
            reversion_share: 0.3,
            // Five minutes of 1-second bars.
            reversion_half_life_bars: 300.0,
            bars_per_year: BARS_PER_YEAR_1S as f64,
        }
    }
}

impl ProcessConfig {
    pub(crate) fn validate(&self) -> Result<(), LabError> {
        let positive = [
            ("process.start_price", self.start_price),
            ("process.calm_vol", self.calm_vol),
            ("process.turbulent_vol", self.turbulent_vol),
            (
                "process.reversion_half_life_bars",
                self.reversion_half_life_bars,
            ),
            ("process.bars_per_year", self.bars_per_year),
        ];
        for (field, v) in positive {
            if !(v.is_finite() && v > 0.0) {
                return Err(LabError::config(field, format!("must be > 0, got {v}")));
            }
        }
        for (field, v) in [
            ("process.mean_calm_bars", self.mean_calm_bars),
            ("process.mean_turbulent_bars", self.mean_turbulent_bars),
        ] {
            if !(v.is_finite() && v >= 1.0) {
                return Err(LabError::config(field, format!("must be >= 1, got {v}")));
            }
        }
        if !(0.0..1.0).contains(&self.reversion_share) {
            return Err(LabError::config(
                "process.reversion_share",
                format!("must be in [0, 1), got {}", self.reversion_share),
            ));
        }
        Ok(())
    }
}

/// The volatility regime of a bar.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Regime {
    /// Low volatility.
    Calm,
    /// High volatility.
    Turbulent,
}

/// One bar of the process.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Bar {
    /// The price at the close of the bar.
    pub price: f64,
    /// Its natural logarithm (what the strategy works on).
    pub log_price: f64,
    /// The regime the bar was drawn in.
    pub regime: Regime,
}

/// A deterministic price path: the same config and seed give the same bars, bit for
/// bit, on every machine (ChaCha8 and IEEE arithmetic only).
#[derive(Clone, Debug)]
pub struct PriceProcess {
    rng: ChaCha8Rng,
    start_log: f64,
    regime: Regime,
    /// Random-walk part of the log price.
    walk: f64,
    /// Mean-reverting deviation of the log price.
    deviation: f64,
    phi: f64,
    calm: Scales,
    turbulent: Scales,
    p_calm_to_turbulent: f64,
    p_turbulent_to_calm: f64,
    spare_normal: Option<f64>,
}

/// Per-bar standard deviations of the two components in one regime.
#[derive(Clone, Copy, Debug)]
struct Scales {
    walk: f64,
    deviation: f64,
}

impl PriceProcess {
    /// A process for `seed`; it starts calm, at `start_price`.
    pub fn new(config: &ProcessConfig, seed: u64) -> Result<Self, LabError> {
        config.validate()?;
        let phi = 0.5f64.powf(1.0 / config.reversion_half_life_bars);
        let scales = |annual: f64| {
            let bar = annual / config.bars_per_year.sqrt();
            // The increment of an AR(1) with innovation sd s has stationary variance
            // 2 s² / (1 + phi); choose s so that it is `reversion_share` of the bar's.
            Scales {
                walk: bar * (1.0 - config.reversion_share).sqrt(),
                deviation: bar * (config.reversion_share * (1.0 + phi) / 2.0).sqrt(),
            }
        };
        Ok(PriceProcess {
            rng: ChaCha8Rng::seed_from_u64(seed),
            start_log: config.start_price.ln(),
            regime: Regime::Calm,
            walk: 0.0,
            deviation: 0.0,
            phi,
            calm: scales(config.calm_vol),
            turbulent: scales(config.turbulent_vol),
            p_calm_to_turbulent: 1.0 / config.mean_calm_bars,
            p_turbulent_to_calm: 1.0 / config.mean_turbulent_bars,
            spare_normal: None,
        })
    }

    /// The next bar.
    pub fn next_bar(&mut self) -> Bar {
        let switch = self.uniform();
        self.regime = match self.regime {
            Regime::Calm if switch < self.p_calm_to_turbulent => Regime::Turbulent,
            Regime::Turbulent if switch < self.p_turbulent_to_calm => Regime::Calm,
            r => r,
        };
        let s = match self.regime {
            Regime::Calm => self.calm,
            Regime::Turbulent => self.turbulent,
        };
        let (e1, e2) = (self.normal(), self.normal());
        self.walk += s.walk * e1;
        self.deviation = self.phi * self.deviation + s.deviation * e2;
        let log_price = self.start_log + self.walk + self.deviation;
        Bar {
            price: log_price.exp(),
            log_price,
            regime: self.regime,
        }
    }

    /// Uniform in (0, 1): 53 random bits, centred in their cell so 0 never occurs.
    fn uniform(&mut self) -> f64 {
        ((self.rng.next_u64() >> 11) as f64 + 0.5) * (1.0 / (1u64 << 53) as f64)
    }

    /// Standard normal by Box–Muller, using both values of each pair.
    fn normal(&mut self) -> f64 {
        if let Some(z) = self.spare_normal.take() {
            return z;
        }
        let (u1, u2) = (self.uniform(), self.uniform());
        let r = (-2.0 * u1.ln()).sqrt();
        let theta = std::f64::consts::TAU * u2;
        self.spare_normal = Some(r * theta.sin());
        r * theta.cos()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(seed: u64, n: usize) -> Vec<Bar> {
        let mut p = PriceProcess::new(&ProcessConfig::default(), seed).unwrap();
        (0..n).map(|_| p.next_bar()).collect()
    }

    #[test]
    fn the_same_seed_gives_the_same_path() {
        let a = path(3, 5_000);
        let b = path(3, 5_000);
        assert_eq!(a, b);
        let bits = |v: &[Bar]| v.iter().map(|b| b.price.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&a), bits(&b));
    }

    #[test]
    fn different_seeds_give_different_paths() {
        let a = path(1, 1_000);
        let b = path(2, 1_000);
        assert_ne!(a, b);
    }

    #[test]
    fn regimes_cluster_and_turbulence_is_more_volatile() {
        let config = ProcessConfig::default();
        let mut p = PriceProcess::new(&config, 7).unwrap();
        let n = 2_000_000;
        let (mut prev, mut switches) = (p.next_bar(), 0u64);
        let (mut sq, mut count) = ([0.0f64; 2], [0u64; 2]);
        for _ in 0..n {
            let bar = p.next_bar();
            if bar.regime != prev.regime {
                switches += 1;
            } else {
                let i = usize::from(bar.regime == Regime::Turbulent);
                sq[i] += (bar.log_price - prev.log_price).powi(2);
                count[i] += 1;
            }
            prev = bar;
        }
        // Persistent regimes: far fewer switches than an i.i.d. draw would give.
        assert!(switches > 10 && switches < 500, "{switches} switches");
        let ann = |i: usize| (sq[i] / count[i] as f64 * config.bars_per_year).sqrt();
        let (calm, turb) = (ann(0), ann(1));
        assert!((calm - 0.12).abs() < 0.01, "calm vol {calm}");
        assert!((turb - 0.36).abs() < 0.04, "turbulent vol {turb}");
    }

    #[test]
    fn bad_config_is_an_error() {
        let config = ProcessConfig {
            reversion_share: 1.0,
            ..ProcessConfig::default()
        };
        assert!(PriceProcess::new(&config, 1).is_err());
    }
}
