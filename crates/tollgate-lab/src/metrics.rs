//! Metrics: maximum drawdown of an equity curve, and rolling-window statistics.

/// Maximum drawdown of an equity curve as a fraction of the running peak:
/// `max over t of (peak(t) - equity(t)) / peak(t)`, where `peak(t)` is the highest
/// equity at or before `t`. An empty or never-falling curve has drawdown 0.
///
/// ```
/// // Peak 120, trough 60 after it: 50%.
/// let dd = tollgate_lab::metrics::max_drawdown(&[100.0, 120.0, 90.0, 110.0, 60.0, 130.0]);
/// assert!((dd - 0.5).abs() < 1e-12);
/// ```
pub fn max_drawdown(equity: &[f64]) -> f64 {
    let mut tracker = DrawdownTracker::default();
    for &e in equity {
        tracker.observe(e);
    }
    tracker.max_drawdown()
}

/// Streaming form of [`max_drawdown`], for curves too long to keep.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct DrawdownTracker {
    peak: Option<f64>,
    max: f64,
}

impl DrawdownTracker {
    /// Adds the next equity value.
    pub fn observe(&mut self, equity: f64) {
        let peak = match self.peak {
            Some(p) if p >= equity => p,
            _ => {
                self.peak = Some(equity);
                equity
            }
        };
        if peak > 0.0 {
            let dd = (peak - equity) / peak;
            if dd > self.max {
                self.max = dd;
            }
        }
    }

    /// The maximum drawdown so far, as a fraction of the peak.
    pub fn max_drawdown(&self) -> f64 {
        self.max
    }
}

/// The mean and standard deviation of the last `capacity` values pushed.
///
/// Running sums, recomputed from the buffer each time it wraps so that rounding does
/// not accumulate over millions of bars.
#[derive(Clone, Debug)]
pub(crate) struct Window {
    buf: Vec<f64>,
    capacity: usize,
    next: usize,
    sum: f64,
    sum_sq: f64,
}

impl Window {
    /// A window of `capacity` values (at least 1).
    pub(crate) fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        Window {
            buf: Vec::with_capacity(capacity),
            capacity,
            next: 0,
            sum: 0.0,
            sum_sq: 0.0,
        }
    }

    pub(crate) fn push(&mut self, x: f64) {
        if self.buf.len() < self.capacity {
            self.buf.push(x);
        } else if let Some(slot) = self.buf.get_mut(self.next) {
            let old = std::mem::replace(slot, x);
            self.sum -= old;
            self.sum_sq -= old * old;
        }
        self.sum += x;
        self.sum_sq += x * x;
        self.next += 1;
        if self.next == self.capacity {
            self.next = 0;
            self.sum = self.buf.iter().sum();
            self.sum_sq = self.buf.iter().map(|v| v * v).sum();
        }
    }

    /// Whether `capacity` values have been pushed.
    pub(crate) fn is_full(&self) -> bool {
        self.buf.len() == self.capacity
    }

    pub(crate) fn mean(&self) -> f64 {
        if self.buf.is_empty() {
            return 0.0;
        }
        self.sum / self.buf.len() as f64
    }

    /// Mean of the squares (the realised variance of returns about zero).
    pub(crate) fn mean_square(&self) -> f64 {
        if self.buf.is_empty() {
            return 0.0;
        }
        self.sum_sq / self.buf.len() as f64
    }

    /// Population standard deviation.
    pub(crate) fn std_dev(&self) -> f64 {
        let m = self.mean();
        (self.mean_square() - m * m).max(0.0).sqrt()
    }
}

/// `P(|Z| < z)` for a standard normal `Z`: `erf(z / √2)`, by Abramowitz & Stegun
/// 7.1.26 (absolute error below 1.5e-7).
pub fn two_sided_normal_mass(z: f64) -> f64 {
    let x = z.abs() / std::f64::consts::SQRT_2;
    let t = 1.0 / (1.0 + 0.327_591_1 * x);
    let poly = t
        * (0.254_829_592
            + t * (-0.284_496_736
                + t * (1.421_413_741 + t * (-1.453_152_027 + t * 1.061_405_429))));
    (1.0 - poly * (-x * x).exp()).clamp(0.0, 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_drawdown_of_a_known_curve() {
        // Peak 120 → 90 is 25%; the later trough 60 under the same peak is 50%;
        // the new peak 130 → 117 is only 10%.
        let curve = [100.0, 120.0, 90.0, 110.0, 60.0, 130.0, 117.0];
        assert!((max_drawdown(&curve) - 0.5).abs() < 1e-12);
    }

    #[test]
    fn max_drawdown_of_rising_and_empty_curves_is_zero() {
        assert_eq!(max_drawdown(&[]), 0.0);
        assert_eq!(max_drawdown(&[1.0, 2.0, 2.0, 3.0]), 0.0);
    }

    #[test]
    fn drawdown_counts_from_the_first_value() {
        assert!((max_drawdown(&[100.0, 80.0, 90.0]) - 0.2).abs() < 1e-12);
    }

    #[test]
    fn window_matches_a_direct_computation() {
        let mut w = Window::new(4);
        let xs = [1.0, 2.0, 4.0, 8.0, 16.0, 3.0, 5.0, 7.0, 9.0, 11.0];
        for (i, &x) in xs.iter().enumerate() {
            w.push(x);
            let tail = &xs[i.saturating_sub(3)..=i];
            let mean = tail.iter().sum::<f64>() / tail.len() as f64;
            let var = tail.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / tail.len() as f64;
            assert!((w.mean() - mean).abs() < 1e-9, "mean at {i}");
            assert!((w.std_dev() - var.sqrt()).abs() < 1e-9, "sd at {i}");
            assert_eq!(w.is_full(), i >= 3);
        }
    }

    #[test]
    fn normal_mass_at_known_points() {
        assert!(two_sided_normal_mass(0.0).abs() < 1e-6);
        assert!((two_sided_normal_mass(1.0) - 0.682_689_5).abs() < 1e-6);
        assert!((two_sided_normal_mass(-1.644_853_6) - 0.9).abs() < 1e-6);
        assert!((two_sided_normal_mass(2.0) - 0.954_499_7).abs() < 1e-6);
    }
}
