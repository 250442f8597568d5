//! How long a watch waits before it retries after an error.
//!
//! kube's default (client-go's: 0.8 s doubling to 30 s) is kind to a struggling API server
//! but slow to recover from an outage: after a minute without an API server, each of a
//! speaker's watches sits in a 30 s wait, so an endpoint that goes not ready right after the
//! API server returns may keep its route for half a minute. Ours doubles from 0.5 s to 8 s:
//! recovery within seconds, while thousands of nodes still retry no more often than every
//! 4–8 s each (the jitter spreads them out).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use kube::runtime::utils::{Backoff, ResetTimerBackoff};

/// First retry delay.
const INITIAL: Duration = Duration::from_millis(500);
/// Longest delay between two retries.
const MAX: Duration = Duration::from_secs(8);
/// A watch healthy for this long starts again from [`INITIAL`] at its next error.
const RESET_AFTER: Duration = Duration::from_secs(60);

/// Exponential watch retry delays, 50–100 % of the nominal value (jittered).
#[derive(Debug, Clone)]
pub struct WatchBackoff {
    nominal: Duration,
    seed: u64,
}

impl Default for WatchBackoff {
    fn default() -> Self {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        WatchBackoff {
            nominal: INITIAL,
            // Different processes (and watches) start at different points of the sequence.
            seed: u64::from(nanos) | 1,
        }
    }
}

impl WatchBackoff {
    /// The backoff for every ferrolb watch: [`WatchBackoff`], reset after a healthy minute.
    pub fn for_watches() -> ResetTimerBackoff<WatchBackoff> {
        ResetTimerBackoff::new(WatchBackoff::default(), RESET_AFTER)
    }

    /// xorshift64: jitter needs no cryptographic quality, only spread.
    fn next_random(&mut self) -> u64 {
        let mut x = self.seed;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.seed = x;
        x
    }
}

impl Iterator for WatchBackoff {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        let nominal = self.nominal;
        self.nominal = (nominal * 2).min(MAX);
        let fraction = 0.5 + (self.next_random() % 1000) as f64 / 2000.0;
        Some(nominal.mul_f64(fraction))
    }
}

impl Backoff for WatchBackoff {
    fn reset(&mut self) {
        self.nominal = INITIAL;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_to_the_cap_with_jitter_and_resets() {
        let mut b = WatchBackoff::default();
        let delays: Vec<Duration> = (&mut b).take(8).collect();
        let nominal = [0.5, 1.0, 2.0, 4.0, 8.0, 8.0, 8.0, 8.0];
        for (d, n) in delays.iter().zip(nominal) {
            let n = Duration::from_secs_f64(n);
            assert!(*d >= n / 2 && *d <= n, "{d:?} not within 50-100 % of {n:?}");
        }
        b.reset();
        let first = b.next().unwrap();
        assert!(first <= INITIAL, "{first:?}");
    }

    #[test]
    fn jitter_spreads_the_retries() {
        let mut b = WatchBackoff {
            nominal: MAX,
            seed: 42,
        };
        let delays: std::collections::BTreeSet<Duration> =
            (0..20).filter_map(|_| b.next()).collect();
        assert!(delays.len() > 10, "{delays:?}");
    }
}
