//! What the speaker's `/metrics` and `/readyz` report; the server itself is
//! [`ferrolb_ops::serve`]. `/readyz` waits until every watch cache holds a complete list.

use std::sync::atomic::{AtomicBool, Ordering};

use crate::metrics::Metrics;

/// What `/readyz` looks at.
#[derive(Debug, Default)]
pub struct Readiness {
    caches_synced: AtomicBool,
}

impl Readiness {
    /// Not ready until [`Readiness::set_caches_synced`].
    pub fn new() -> Self {
        Self::default()
    }

    /// Every watch cache holds a complete list.
    pub fn set_caches_synced(&self) {
        self.caches_synced.store(true, Ordering::Release);
    }

    /// Whether the caches are synced.
    pub fn is_ready(&self) -> bool {
        self.caches_synced.load(Ordering::Acquire)
    }
}

impl ferrolb_ops::Readiness for Readiness {
    fn check(&self) -> Result<String, String> {
        if self.is_ready() {
            Ok("ok".into())
        } else {
            Err("caches not synced".into())
        }
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
    fn ready_once_caches_synced() {
        let r = Readiness::new();
        assert_eq!(r.check(), Err("caches not synced".into()));
        r.set_caches_synced();
        assert_eq!(r.check(), Ok("ok".into()));
    }

    #[test]
    fn metrics_text_is_the_speaker_registry() {
        let text = ferrolb_ops::MetricsText::encode(&Metrics::new());
        assert!(
            text.contains("ferrolb_speaker_announced_service_ips"),
            "{text}"
        );
    }
}
