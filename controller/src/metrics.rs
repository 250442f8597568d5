//! The controller's Prometheus metrics, all prefixed `ferrolb_`.

use std::sync::atomic::AtomicU64;
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Label set `{pool, family}`.
pub type PoolLabels = Vec<(String, String)>;
/// Label set `{reason}`.
pub type ReasonLabels = Vec<(String, String)>;

/// Every metric the controller exports, and the registry that encodes them.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// Addresses a pool may hand out, by pool and family.
    pub addresses_total: Family<PoolLabels, Gauge<f64, AtomicU64>>,
    /// Addresses in use, by pool and family.
    pub addresses_in_use: Family<PoolLabels, Gauge<f64, AtomicU64>>,
    /// Addresses assigned to Services (one per Service whose addresses changed).
    pub allocations: Counter,
    /// Services refused an address, by stable reason.
    pub allocation_failures: Family<ReasonLabels, Counter>,
    /// Time spent in one reconcile pass.
    pub reconcile_duration: Histogram,
    /// From a Service's creation to the status write that gave it an address.
    pub service_ip_latency: Histogram,
    /// 1 while this replica leads, else 0.
    pub leader: Gauge,
    /// 1 once the Service, pool and namespace caches are synced.
    pub caches_synced: Gauge,
}

/// `{pool, family}` labels.
pub fn pool_labels(pool: &str, family: &str) -> PoolLabels {
    vec![
        ("pool".to_owned(), pool.to_owned()),
        ("family".to_owned(), family.to_owned()),
    ]
}

/// `{reason}` labels.
pub fn reason_labels(reason: &str) -> ReasonLabels {
    vec![("reason".to_owned(), reason.to_owned())]
}

impl Metrics {
    /// Registers every metric under the `ferrolb` prefix.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("ferrolb");
        let addresses_total = Family::<PoolLabels, Gauge<f64, AtomicU64>>::default();
        registry.register(
            "pool_addresses",
            "Addresses a pool may hand out, by pool and family",
            addresses_total.clone(),
        );
        let addresses_in_use = Family::<PoolLabels, Gauge<f64, AtomicU64>>::default();
        registry.register(
            "pool_addresses_in_use",
            "Addresses of a pool assigned to Services, by pool and family",
            addresses_in_use.clone(),
        );
        let allocations = Counter::default();
        registry.register(
            "allocations",
            "Services given new addresses",
            allocations.clone(),
        );
        let allocation_failures = Family::<ReasonLabels, Counter>::default();
        registry.register(
            "allocation_failures",
            "Services refused an address, by reason",
            allocation_failures.clone(),
        );
        let reconcile_duration = Histogram::new(exponential_buckets(0.0001, 2.0, 16));
        registry.register(
            "reconcile_duration_seconds",
            "Time spent reconciling one Service or pool change",
            reconcile_duration.clone(),
        );
        let service_ip_latency = Histogram::new(exponential_buckets(0.001, 2.0, 16));
        registry.register(
            "service_ip_latency_seconds",
            "Time from a Service's creation to the status write that gave it an address",
            service_ip_latency.clone(),
        );
        let leader = Gauge::default();
        registry.register(
            "controller_leader",
            "1 while this controller replica is the leader",
            leader.clone(),
        );
        let caches_synced = Gauge::default();
        registry.register(
            "controller_caches_synced",
            "1 once the controller's watch caches are synced",
            caches_synced.clone(),
        );
        Metrics {
            registry,
            addresses_total,
            addresses_in_use,
            allocations,
            allocation_failures,
            reconcile_duration,
            service_ip_latency,
            leader,
            caches_synced,
        }
    }

    /// Prometheus text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    /// Counts one refusal.
    pub fn failure(&self, reason: &str) {
        self.allocation_failures
            .get_or_create(&reason_labels(reason))
            .inc();
    }

    /// Records how long a reconcile pass took.
    pub fn observe_reconcile(&self, d: Duration) {
        self.reconcile_duration.observe(d.as_secs_f64());
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_exposition_has_prefixed_names() {
        let m = Metrics::new();
        m.addresses_total
            .get_or_create(&pool_labels("default", "IPv4"))
            .set(256.0);
        m.failure("PoolExhausted");
        m.allocations.inc();
        m.leader.set(1);
        let text = m.encode();
        for want in [
            "ferrolb_pool_addresses{pool=\"default\",family=\"IPv4\"} 256",
            "ferrolb_allocation_failures_total{reason=\"PoolExhausted\"} 1",
            "ferrolb_allocations_total 1",
            "ferrolb_controller_leader 1",
            "ferrolb_service_ip_latency_seconds_bucket",
            "ferrolb_reconcile_duration_seconds_count 0",
        ] {
            assert!(text.contains(want), "missing {want:?} in\n{text}");
        }
    }
}
