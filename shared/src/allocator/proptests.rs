//! Random sequences of pool edits, allocations, releases, failed and late status writes and
//! controller restarts, against a model of the Services' statuses. After every step:
//! - the allocator's own invariants hold (no illegal co-holders, nothing outside the
//!   Service's allowed pools, index counts exact);
//! - no address newly given to a Service is in another Service's status, unless that other
//!   Service legally shares it;
//! - allocating twice in a row changes nothing, and a restart keeps every valid address.

use std::collections::BTreeMap;
use std::net::IpAddr;

use proptest::prelude::*;

use super::*;

const SERVICES: usize = 6;

#[derive(Clone, Debug)]
enum Op {
    SetPools(Vec<PoolConfig>),
    Allocate {
        service: usize,
        request: Box<ServiceRequest>,
        write_ok: bool,
    },
    /// A status write that was pending goes through.
    Write(usize),
    Release(usize),
    Restart,
}

fn key(i: usize) -> ServiceKey {
    ServiceKey::new(
        if i.is_multiple_of(2) { "n1" } else { "n2" },
        format!("s{i}"),
    )
}

fn range_strategy() -> impl Strategy<Value = IpRange> {
    prop::sample::select(vec![
        "10.0.0.0/29",
        "10.0.0.4-10.0.0.11",
        "10.0.0.254-10.0.1.2",
        "10.0.2.0/30",
        "10.0.0.6",
        "fd00::/126",
        "fd00::2-fd00::5",
        "fd00:1::/127",
    ])
    .prop_map(|s| s.parse().unwrap())
}

fn pool_strategy(name: &'static str) -> impl Strategy<Value = PoolConfig> {
    (
        prop::collection::vec(range_strategy(), 1..3),
        prop::bool::weighted(0.8),
        any::<bool>(),
        prop::option::weighted(
            0.3,
            (
                prop::option::of(0i32..3),
                prop::sample::subsequence(vec!["n1".to_string(), "n2".to_string()], 0..=2),
            ),
        ),
    )
        .prop_map(move |(ranges, auto_assign, avoid, alloc)| {
            let mut p = PoolConfig::new(name, ranges)
                .auto_assign(auto_assign)
                .avoid_buggy_ips(avoid);
            if let Some((priority, namespaces)) = alloc {
                p = p.allocation(ServiceAllocation {
                    priority,
                    namespaces,
                    ..Default::default()
                });
            }
            p
        })
}

fn pools_strategy() -> impl Strategy<Value = Vec<PoolConfig>> {
    (
        prop::option::weighted(0.9, pool_strategy("a")),
        prop::option::weighted(0.6, pool_strategy("b")),
        prop::option::weighted(0.4, pool_strategy("c")),
    )
        .prop_map(|(a, b, c)| [a, b, c].into_iter().flatten().collect())
}

fn request_strategy(service: usize) -> impl Strategy<Value = ServiceRequest> {
    let ip = prop::sample::select(vec![
        "10.0.0.1",
        "10.0.0.5",
        "10.0.0.6",
        "10.0.0.255",
        "10.0.1.0",
        "10.0.1.1",
        "10.0.2.3",
        "10.9.9.9",
        "fd00::1",
        "fd00::3",
        "fd00:1::1",
    ])
    .prop_map(|s| s.parse::<IpAddr>().unwrap());
    (
        prop::option::weighted(0.25, prop::collection::vec(ip, 1..=2)),
        prop::option::weighted(0.2, prop::sample::select(vec!["a", "b", "c", "zz"])),
        prop::option::weighted(0.7, prop::sample::select(vec!["k1", "k1", "k2", ""])),
        prop::sample::subsequence(
            vec![
                (Protocol::Tcp, 80),
                (Protocol::Tcp, 443),
                (Protocol::Udp, 53),
            ],
            0..=2,
        ),
        prop::sample::select(vec![
            IpFamilyPolicy::SingleStack,
            IpFamilyPolicy::SingleStack,
            IpFamilyPolicy::PreferDualStack,
            IpFamilyPolicy::RequireDualStack,
        ]),
        any::<bool>(),
        prop::option::weighted(0.15, prop::sample::select(vec!["x", "y"])),
    )
        .prop_map(
            move |(ips, pool, sharing, ports, policy, v6_first, local)| {
                let k = key(service);
                let mut r = ServiceRequest::new(k.namespace, k.name).created(service as i64 % 3);
                if let Some(ips) = ips {
                    r = r.requesting_ips(ips);
                }
                if let Some(pool) = pool {
                    r = r.in_pool(pool);
                }
                if let Some(sharing) = sharing {
                    r = r.sharing(sharing);
                }
                r.ports = ports;
                let families = if v6_first {
                    [IpFamily::V6, IpFamily::V4]
                } else {
                    [IpFamily::V4, IpFamily::V6]
                };
                r = r.families(policy, &families);
                if let Some(app) = local {
                    r = r.local([("app".to_string(), app.to_string())]);
                }
                r
            },
        )
}

fn op_strategy() -> impl Strategy<Value = Op> {
    prop_oneof![
        1 => pools_strategy().prop_map(Op::SetPools),
        6 => (0..SERVICES, prop::bool::weighted(0.8)).prop_flat_map(|(service, write_ok)| {
            request_strategy(service).prop_map(move |request| Op::Allocate { service, request: Box::new(request), write_ok })
        }),
        1 => (0..SERVICES).prop_map(Op::Write),
        1 => (0..SERVICES).prop_map(Op::Release),
        1 => Just(Op::Restart),
    ]
}

/// What the cluster holds: each Service's last known spec and its status.
#[derive(Default)]
struct Cluster {
    pools: Vec<PoolConfig>,
    requests: BTreeMap<ServiceKey, ServiceRequest>,
    status: BTreeMap<ServiceKey, Vec<IpAddr>>,
}

impl Cluster {
    fn write(&mut self, a: &mut Allocator, k: &ServiceKey) {
        let ips = a.assigned(k).to_vec();
        a.commit(k, &ips);
        self.status.insert(k.clone(), ips);
    }
}

/// Independent oracle: may `req` hold `ip` under `pools`?
fn allowed(pools: &[PoolConfig], req: &ServiceRequest, ip: IpAddr) -> bool {
    let buggy = matches!(ip, IpAddr::V4(v4) if matches!(v4.octets()[3], 0 | 255));
    (req.requested_ips.is_empty() || req.requested_ips.contains(&ip))
        && pools.iter().any(|p| {
            p.ranges.iter().any(|r| r.contains(ip))
                && !(p.avoid_buggy_ips && buggy)
                && req.requested_pool.as_ref().is_none_or(|n| *n == p.name)
                && p.allocation.as_ref().is_none_or(|al| {
                    al.namespaces.is_empty() || al.namespaces.contains(&req.key.namespace)
                })
        })
}

fn check_allowed(a: &Allocator, c: &Cluster, step: usize) -> Result<(), TestCaseError> {
    for (k, req) in &c.requests {
        for ip in a.assigned(k) {
            prop_assert!(
                allowed(&c.pools, req, *ip),
                "step {step}: {k} holds {ip} outside its allowed pools"
            );
        }
    }
    Ok(())
}

fn run(initial: Vec<PoolConfig>, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let mut a = Allocator::new();
    let mut c = Cluster {
        pools: initial.clone(),
        ..Default::default()
    };
    a.set_pools(initial);
    for (step, op) in ops.into_iter().enumerate() {
        match op {
            Op::SetPools(pools) => {
                c.pools = pools.clone();
                let before: BTreeMap<ServiceKey, Vec<IpAddr>> = c
                    .requests
                    .keys()
                    .map(|k| (k.clone(), a.assigned(k).to_vec()))
                    .collect();
                let report = a.set_pools(pools);
                // Nobody's address changes except the displaced ones, which are dropped.
                for (k, ips) in before {
                    let lost: Vec<IpAddr> = report
                        .displaced
                        .iter()
                        .filter(|d| d.service == k)
                        .map(|d| d.ip)
                        .collect();
                    let expect: Vec<IpAddr> =
                        ips.into_iter().filter(|ip| !lost.contains(ip)).collect();
                    prop_assert_eq!(a.assigned(&k), expect.as_slice(), "step {}", step);
                }
            }
            Op::Allocate {
                service,
                request,
                write_ok,
            } => {
                let k = key(service);
                // "Newly given" = neither in its status nor already held (a Service may
                // hold an address whose status write is still pending).
                let mut before = c.status.get(&k).cloned().unwrap_or_default();
                before.extend_from_slice(a.assigned(&k));
                c.requests.insert(k.clone(), (*request).clone());
                let result = a.allocate(&request);
                let now = a.assigned(&k).to_vec();
                for ip in now.iter().filter(|ip| !before.contains(ip)) {
                    for (other, shown) in &c.status {
                        if *other == k || !shown.contains(ip) {
                            continue;
                        }
                        prop_assert!(
                            a.holders(*ip).contains(other)
                                && sharing_conflict(&request, &c.requests[other]).is_none(),
                            "step {step}: {ip} given to {k} but still in {other}'s status"
                        );
                    }
                }
                if let Ok(first) = &result {
                    let again = a.allocate(&request);
                    prop_assert_eq!(
                        again.as_ref().map(|x| (&x.ips, x.changed)),
                        Ok((&first.ips, false))
                    );
                }
                if write_ok {
                    c.write(&mut a, &k);
                }
            }
            Op::Write(service) => {
                let k = key(service);
                if c.requests.contains_key(&k) {
                    c.write(&mut a, &k);
                }
            }
            Op::Release(service) => {
                let k = key(service);
                a.release(&k);
                c.requests.remove(&k);
                c.status.remove(&k);
            }
            Op::Restart => {
                a = Allocator::new();
                a.set_pools(c.pools.clone());
                let items = c
                    .status
                    .iter()
                    .map(|(k, ips)| (c.requests[k].clone(), ips.clone()))
                    .collect();
                let outcome = a.reclaim_all(items);
                a.check_invariants().map_err(TestCaseError::fail)?;
                for (k, reclaim) in outcome {
                    prop_assert!(reclaim.kept.iter().all(|ip| c.status[&k].contains(ip)));
                    // Serving the Service after the restart keeps every reclaimed address.
                    let _ = a.allocate(&c.requests[&k]);
                    let now = a.assigned(&k);
                    prop_assert!(
                        reclaim.kept.iter().all(|ip| now.contains(ip)),
                        "step {step}: restart changed {k}: kept {:?}, now {:?}",
                        reclaim.kept,
                        now
                    );
                }
            }
        }
        a.check_invariants()
            .map_err(|e| TestCaseError::fail(format!("step {step}: {e}")))?;
        check_allowed(&a, &c, step)?;
    }
    // Settle: reconcile every Service and write every status. No reservation may leak: all
    // retiring addresses are released once the statuses no longer show them.
    for _ in 0..2 {
        let keys: Vec<ServiceKey> = c.requests.keys().cloned().collect();
        for k in keys {
            let _ = a.allocate(&c.requests[&k]);
            c.write(&mut a, &k);
        }
    }
    for k in c.requests.keys() {
        prop_assert!(
            a.retiring(k).is_empty(),
            "{} still reserves {:?}",
            k,
            a.retiring(k)
        );
    }
    // A Service told "exhausted" really has no free address of that family in its pools.
    for k in a.pending() {
        if let Err(Refusal::PoolExhausted { family, pools }) = a.allocate(&c.requests[&k]) {
            for p in pools {
                let stats = a.pool_stats(&p).map(|s| match family {
                    IpFamily::V4 => s.ipv4,
                    IpFamily::V6 => s.ipv6,
                });
                prop_assert_eq!(
                    stats.map(|s| s.available),
                    Some(0),
                    "{} refused from {}",
                    k,
                    p
                );
            }
        }
    }
    a.check_invariants().map_err(TestCaseError::fail)?;
    check_allowed(&a, &c, usize::MAX)?;
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        // PROPTEST_CASES raises it for a long soak.
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(512),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn churn_never_double_allocates_nor_leaves_the_allowed_pools(
        initial in pools_strategy(),
        ops in prop::collection::vec(op_strategy(), 1..60),
    ) {
        run(initial, ops)?;
    }
}
