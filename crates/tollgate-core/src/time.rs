//! Time as the engine sees it: a value the caller passes in, never read from a clock.

use serde::{Deserialize, Serialize};

/// Milliseconds since the Unix epoch (UTC), supplied by the caller.
///
/// The engine has no clock of its own: every decision takes `now` as an argument, so
/// replaying the same inputs at any later time gives the same verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct UnixMillis(pub i64);

impl UnixMillis {
    /// The number of milliseconds since the epoch.
    pub fn as_millis(self) -> i64 {
        self.0
    }

    /// This instant moved forward by `ms` milliseconds, saturating at the ends of `i64`.
    pub fn plus_millis(self, ms: i64) -> Self {
        Self(self.0.saturating_add(ms))
    }
}
