//! The server's clock, behind a trait so tests can move time by hand.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A source of the current time in Unix milliseconds.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> i64;
}

/// The system's wall clock.
#[derive(Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
    }
}

/// A clock that moves only when told to (tests).
#[derive(Debug)]
pub struct ManualClock(AtomicI64);

impl ManualClock {
    /// A clock showing `ms`.
    pub fn new(ms: i64) -> Self {
        Self(AtomicI64::new(ms))
    }

    /// Moves the clock forward by `ms`.
    pub fn advance(&self, ms: i64) {
        self.0.fetch_add(ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// RFC 3339 UTC with milliseconds, for ledger entry times.
pub fn rfc3339(ms: i64) -> String {
    let t = UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap_or(0));
    humantime::format_rfc3339_millis(t).to_string()
}

/// `YYYY-MM` of a Unix-milliseconds instant (UTC): the quota period.
pub fn month(ms: i64) -> String {
    rfc3339(ms).chars().take(7).collect()
}

/// The first instant of the month after the one containing `ms`, RFC 3339.
pub fn next_month_start(ms: i64) -> String {
    let m = month(ms);
    let (y, mo) = m.split_once('-').unwrap_or(("1970", "01"));
    let (y, mo): (i64, i64) = (y.parse().unwrap_or(1970), mo.parse().unwrap_or(1));
    let (y, mo) = if mo == 12 { (y + 1, 1) } else { (y, mo + 1) };
    format!("{y:04}-{mo:02}-01T00:00:00Z")
}
