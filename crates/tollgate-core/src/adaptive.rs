//! The adaptive bias (DeAlgo "v2"): accepted outcome reports nudge the survival score,
//! within a cap, decaying with both time and traffic.

use serde::{Deserialize, Serialize};

use crate::policy::AdaptiveSettings;
use crate::time::UnixMillis;

/// An accepted outcome report of one (tenant, source), as the bias reads it.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct OutcomeRecord {
    /// In [-1, 1]: negative = harmful, positive = beneficial.
    pub magnitude: f64,
    /// In [0, 1].
    pub confidence: f64,
    /// When the outcome was observed.
    pub observed_at: UnixMillis,
    /// Decisions of the same source since the outcome was accepted.
    pub decisions_since: u64,
}

/// `bias = clamp(Σ w·c, -cap, +cap)` with `c = learning_rate * magnitude * confidence`
/// and `w = 0.5^(age / half_life) * 0.5^(n / half_life_decisions)`.
///
/// Non-finite inputs contribute nothing; the result is always finite and within the cap.
pub fn bias(settings: &AdaptiveSettings, outcomes: &[OutcomeRecord], now: UnixMillis) -> f64 {
    let mut sum = 0.0_f64;
    for o in outcomes {
        let c = settings.learning_rate * o.magnitude * o.confidence;
        let age_ms = (now.as_millis() - o.observed_at.as_millis()).max(0) as f64;
        let time_decay = 0.5_f64.powf(age_ms / settings.half_life_ms.max(1) as f64);
        let traffic_decay =
            0.5_f64.powf(o.decisions_since as f64 / f64::from(settings.half_life_decisions.max(1)));
        let term = time_decay * traffic_decay * c;
        if term.is_finite() {
            sum += term;
        }
    }
    let cap = settings.cap.abs();
    if sum.is_finite() {
        sum.clamp(-cap, cap)
    } else {
        0.0
    }
}

/// Applies the tighten-never-loosen rule to a survival comparison.
///
/// A request that fails without the bias fails with it. A request that passes without
/// the bias fails with it only when the biased score is below the threshold and the
/// policy says `may_tighten`.
pub fn survival_passes(score: f64, bias: f64, threshold: f64, may_tighten: bool) -> bool {
    let unbiased = score >= threshold;
    let biased = score + bias >= threshold;
    unbiased && (biased || !may_tighten)
}
