//! What the controller's `/metrics` and `/readyz` report; the server itself is
//! [`ferrolb_ops::serve`]. `/readyz` waits for synced caches and an answer from leader
//! election (leading or standing by).

use std::sync::atomic::{AtomicBool, Ordering};

use crate::leader::Leadership;
use crate::metrics::Metrics;

/// What `/readyz` looks at.
#[derive(Debug)]
pub struct Readiness {
    caches_synced: AtomicBool,
    election_settled: AtomicBool,
    leadership: Leadership,
}

impl Readiness {
    /// Not ready until [`Readiness::set_caches_synced`] and [`Readiness::set_election_settled`].
    pub fn new(leadership: Leadership) -> Self {
        Readiness {
            caches_synced: AtomicBool::new(false),
            election_settled: AtomicBool::new(false),
            leadership,
        }
    }

    /// The watch caches hold a complete list.
    pub fn set_caches_synced(&self) {
        self.caches_synced.store(true, Ordering::Release);
    }

    /// The elector has talked to the API server at least once (or election is off).
    pub fn set_election_settled(&self) {
        self.election_settled.store(true, Ordering::Release);
    }
}

impl ferrolb_ops::Readiness for Readiness {
    fn check(&self) -> Result<String, String> {
        if !self.caches_synced.load(Ordering::Acquire) {
            return Err("caches not synced".into());
        }
        if !self.election_settled.load(Ordering::Acquire) {
            return Err("leader election has not settled".into());
        }
        let role = if self.leadership.is_leader() {
            "leading"
        } else {
            "standby"
        };
        Ok(format!("ok: {role}"))
    }
}

impl ferrolb_ops::MetricsText for Metrics {
    fn encode(&self) -> String {
        Metrics::encode(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferrolb_ops::Readiness as _;

    #[test]
    fn ready_once_caches_synced_and_election_settled() {
        let r = Readiness::new(Leadership::always());
        assert_eq!(r.check(), Err("caches not synced".into()));
        r.set_caches_synced();
        assert_eq!(r.check(), Err("leader election has not settled".into()));
        r.set_election_settled();
        assert_eq!(r.check(), Ok("ok: leading".into()));
    }

    #[test]
    fn metrics_text_is_the_controller_registry() {
        let m = Metrics::new();
        m.allocations.inc();
        let text = ferrolb_ops::MetricsText::encode(&m);
        assert!(text.contains("ferrolb_allocations_total 1"), "{text}");
    }
}
