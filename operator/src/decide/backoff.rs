//! The retry backoff: exponential, capped, with a deterministic jitter.

use std::time::Duration;

/// The wait after the first failed attempt.
pub const BASE_BACKOFF: Duration = Duration::from_secs(10);
/// The longest wait between two attempts, jitter included.
pub const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// The wait after attempt `attempt` (1 for the first) failed: 10 s, 20 s,
/// 40 s, ... up to [`MAX_BACKOFF`], plus up to 10 % of jitter derived from
/// `seed` (stable per restore, so that the wait does not change from one
/// reconcile to the next).
pub fn backoff(attempt: i32, seed: u64) -> Duration {
    let exponent = u32::try_from(attempt.saturating_sub(1)).unwrap_or(0).min(16);
    let base = BASE_BACKOFF.saturating_mul(1 << exponent).min(MAX_BACKOFF);
    let base_ms = u64::try_from(base.as_millis()).unwrap_or(u64::MAX);
    let jitter_ms = mix(seed, attempt) % (base_ms / 10 + 1);
    (base + Duration::from_millis(jitter_ms)).min(MAX_BACKOFF)
}

/// SplitMix64 of the seed and the attempt.
fn mix(seed: u64, attempt: i32) -> u64 {
    let mut z = seed ^ u64::from(attempt.unsigned_abs()).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}
