//! Wall-clock time in unix seconds, for token claims, session records and metrics: one
//! definition, so every part agrees on what a clock before 1970 means (0: every token looks
//! expired rather than anything panicking).

use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds since the epoch (0 if the clock is before 1970).
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
