//! The randomness behind jitter. Jitter needs spread, not unpredictability, so a splitmix64
//! step over a shared counter seeded from the clock is enough, and it spares the crate a
//! random-number dependency.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// A number in [-1, 1).
pub(crate) fn signed_unit() -> f64 {
    2.0 * unit() - 1.0
}

/// A number in [0, 1): each call advances the counter by the golden-ratio increment, so
/// calls within one clock tick still differ.
fn unit() -> f64 {
    static STATE: AtomicU64 = AtomicU64::new(0);
    let seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let mut z = STATE
        .fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed)
        .wrapping_add(seed);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    // The top 53 bits, the precision of an f64 in [0, 1).
    (z >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_in_range_and_spread() {
        let values: Vec<f64> = (0..1000).map(|_| signed_unit()).collect();
        assert!(values.iter().all(|v| (-1.0..1.0).contains(v)));
        assert!(values.iter().any(|v| *v < -0.5), "some well below zero");
        assert!(values.iter().any(|v| *v > 0.5), "some well above zero");
    }
}
