//! Seeded randomised churn: Services created, deleted and edited, pools edited, replicas
//! killed and restarted, with two replicas contending for the Lease. After every step:
//! no address is shown by two Services unless they share it legally, and no Service's
//! address changed unless someone changed that Service or the pools. At checkpoints, once
//! the system settles: every Service that can get an address has one, from a pool it may use.
//!
//! `CHURN_SEED` picks the seed (the default is fixed so failures reproduce).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::time::Duration;

use common::*;
use ferrolb_controller::app::Running;
use ferrolb_controller::translate::status_ips;
use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use kube_emulator::Emulator;
use serde_json::json;

/// xorshift64*: small, seedable, good enough to pick operations.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn pick<'a, T>(&mut self, v: &'a [T]) -> &'a T {
        &v[self.below(v.len() as u64) as usize]
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Kind {
    /// Auto-assigned from any auto pool.
    Plain,
    /// Asks for this address.
    Requested(IpAddr),
    /// Asks for pool `p2` (autoAssign false).
    InPool2,
    /// Sharing key and one port.
    Shared(String),
}

#[derive(Clone, Debug)]
struct Model {
    kind: Kind,
    port: u16,
    /// Bumped whenever the test changes this Service.
    epoch: u64,
    /// Once asked for `p2`: it may keep a `p2` address after the annotation goes (no churn).
    was_in_pool2: bool,
    /// Step of the last edit.
    edited_at: Option<usize>,
}

struct Seen {
    ips: Vec<IpAddr>,
    epoch: u64,
    pool_epoch: u64,
}

const P1: &str = "10.1.0.0/26";
const P2: &str = "10.2.0.0/28";
const P3_BIG: &str = "10.3.0.0/29";
const P3_SMALL: &str = "10.3.0.0/30";

fn in_cidr(ip: IpAddr, cidr: &str) -> bool {
    let (base, len) = cidr.split_once('/').unwrap();
    let base: std::net::Ipv4Addr = base.parse().unwrap();
    let len: u32 = len.parse().unwrap();
    let IpAddr::V4(ip) = ip else { return false };
    let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
    u32::from(ip) & mask == u32::from(base) & mask
}

fn service(name: &str, m: &Model) -> Service {
    let mut annotations = BTreeMap::new();
    match &m.kind {
        Kind::Plain => {}
        Kind::Requested(ip) => {
            annotations.insert("ferrolb.io/loadBalancerIPs".to_owned(), ip.to_string());
        }
        Kind::InPool2 => {
            annotations.insert("metallb.io/address-pool".to_owned(), "p2".to_owned());
        }
        Kind::Shared(key) => {
            annotations.insert("ferrolb.io/allow-shared-ip".to_owned(), key.clone());
        }
    }
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "annotations": annotations},
        "spec": {"type": "LoadBalancer", "ports": [{"port": m.port}], "selector": {"app": name}}
    }))
    .unwrap()
}

struct World {
    emu: Emulator,
    api: Api<Service>,
    rng: Rng,
    model: BTreeMap<String, Model>,
    seen: BTreeMap<String, Seen>,
    replicas: Vec<Running>,
    next_name: u64,
    next_identity: u64,
    pool_epoch: u64,
    pool_edited_at: Option<usize>,
    p3: &'static str,
}

impl World {
    async fn spawn_replica(&mut self) {
        self.next_identity += 1;
        let r = replica(&self.emu, &format!("r{}", self.next_identity), true).await;
        self.replicas.push(r);
    }

    /// Safety checks that must hold at every instant.
    async fn check_now(&mut self, step: usize) {
        let items = self.api.list(&ListParams::default()).await.unwrap().items;
        let mut holders: BTreeMap<IpAddr, Vec<String>> = BTreeMap::new();
        let watched = std::env::var("CHURN_WATCH").ok();
        for s in &items {
            let name = s.metadata.name.clone().unwrap();
            let ips = status_ips(s);
            if watched.as_deref() == Some(name.as_str()) {
                eprintln!(
                    "step {step}: {name} rv {:?} shows {ips:?} model {:?}",
                    s.metadata.resource_version,
                    self.model.get(&name)
                );
            }
            for ip in &ips {
                holders.entry(*ip).or_default().push(name.clone());
            }
            let Some(m) = self.model.get(&name) else {
                continue;
            };
            if let Some(prev) = self.seen.get(&name)
                && !prev.ips.is_empty()
                && !ips.is_empty()
                && prev.ips != ips
            {
                assert!(
                    prev.epoch != m.epoch || prev.pool_epoch != self.pool_epoch,
                    "step {step}: {name} ({m:?}) moved {:?} -> {ips:?} though nobody changed it or the pools",
                    prev.ips
                );
            }
            // Remember when an address set was *first* seen: an edit made while the old
            // status still shows must count as the reason for the change that follows.
            // An address first seen right after an edit may have been written just before
            // it: attribute it to the earlier epoch (weaker check, never a false alarm).
            if !ips.is_empty() && self.seen.get(&name).is_none_or(|p| p.ips != ips) {
                let epoch = if m.edited_at == Some(step) {
                    m.epoch.saturating_sub(1)
                } else {
                    m.epoch
                };
                let pool_epoch = if self.pool_edited_at == Some(step) {
                    self.pool_epoch.saturating_sub(1)
                } else {
                    self.pool_epoch
                };
                self.seen.insert(
                    name,
                    Seen {
                        ips,
                        epoch,
                        pool_epoch,
                    },
                );
            }
        }
        for (ip, names) in holders {
            if names.len() < 2 {
                continue;
            }
            let models: Vec<&Model> = names.iter().filter_map(|n| self.model.get(n)).collect();
            let keys: BTreeSet<Option<&String>> = models
                .iter()
                .map(|m| match &m.kind {
                    Kind::Shared(k) => Some(k),
                    _ => None,
                })
                .collect();
            let ports: BTreeSet<u16> = models.iter().map(|m| m.port).collect();
            let legal = keys.len() == 1
                && keys.iter().next().is_some_and(Option::is_some)
                && ports.len() == models.len()
                && models.len() == names.len();
            assert!(legal, "step {step}: {ip} shown by {names:?} ({models:?})");
        }
    }

    /// Waits until the status of every Service stops changing and a leader exists, then
    /// checks liveness: everything that can be served is, from an allowed pool.
    async fn settle_and_check(&mut self, step: usize) {
        wait_until("a leader", || async {
            self.replicas.iter().any(|r| r.leadership.is_leader())
        })
        .await;
        let snapshot = || async {
            self.api
                .list(&ListParams::default())
                .await
                .unwrap()
                .items
                .iter()
                .map(|s| (s.metadata.name.clone().unwrap(), status_ips(s)))
                .collect::<BTreeMap<_, _>>()
        };
        let model = self.model.clone();
        let p3 = self.p3;
        // Plain Services fit in p1 alone and p2 users fit in p2: all of them must be served.
        let p2_users = model.values().filter(|m| m.kind == Kind::InPool2).count();
        let servable = |name: &str, ips: &[IpAddr]| -> bool {
            match model.get(name).map(|m| &m.kind) {
                Some(Kind::Plain) => ips.len() == 1,
                Some(Kind::InPool2) if p2_users <= 16 => ips.len() == 1,
                _ => true,
            }
        };
        let mut last = BTreeMap::new();
        let settled = tokio::time::timeout(DEADLINE, async {
            loop {
                let a = snapshot().await;
                let all_served = a.iter().all(|(n, ips)| servable(n, ips));
                if all_served && a == last {
                    return a;
                }
                last = a;
                tokio::time::sleep(Duration::from_millis(150)).await;
            }
        })
        .await;
        let state = settled.unwrap_or_else(|_| {
            let unserved: Vec<_> = last.iter().filter(|(n, ips)| !servable(n, ips)).collect();
            panic!("step {step}: did not settle; unserved {unserved:?}")
        });
        for (name, ips) in &state {
            let Some(m) = model.get(name) else { continue };
            for ip in ips {
                let ok = match &m.kind {
                    Kind::Plain | Kind::Shared(_) => {
                        in_cidr(*ip, P1) || in_cidr(*ip, p3) || (m.was_in_pool2 && in_cidr(*ip, P2))
                    }
                    Kind::InPool2 => in_cidr(*ip, P2),
                    Kind::Requested(want) => ip == want,
                };
                assert!(
                    ok,
                    "step {step}: {name} ({:?}) shows {ip}, outside its pools",
                    m.kind
                );
            }
        }
        self.check_now(step).await;
    }

    async fn op(&mut self, step: usize) {
        let roll = self.rng.below(100);
        if std::env::var_os("CHURN_TRACE").is_some() {
            eprintln!(
                "step {step}: roll {roll}, {} live, leaders {:?}",
                self.model.len(),
                self.replicas
                    .iter()
                    .map(|r| r.leadership.is_leader())
                    .collect::<Vec<_>>()
            );
        }
        let names: Vec<String> = self.model.keys().cloned().collect();
        match roll {
            0..=34 if self.model.len() < 40 => {
                self.next_name += 1;
                let name = format!("s{}", self.next_name);
                let kind = match self.rng.below(100) {
                    0..=59 => Kind::Plain,
                    60..=74 => {
                        Kind::Requested(format!("10.1.0.{}", self.rng.below(64)).parse().unwrap())
                    }
                    75..=84 => Kind::InPool2,
                    _ => Kind::Shared((*self.rng.pick(&["k1", "k2"])).to_owned()),
                };
                let port = *self.rng.pick(&[80, 443, 53, 8080]);
                let was_in_pool2 = kind == Kind::InPool2;
                let m = Model {
                    kind,
                    port,
                    epoch: 0,
                    was_in_pool2,
                    edited_at: None,
                };
                self.api
                    .create(&Default::default(), &service(&name, &m))
                    .await
                    .unwrap();
                self.model.insert(name, m);
            }
            0..=59 if !names.is_empty() => {
                let name = self.rng.pick(&names).clone();
                self.api
                    .delete(&name, &DeleteParams::default())
                    .await
                    .unwrap();
                self.model.remove(&name);
                self.seen.remove(&name);
            }
            60..=79 if !names.is_empty() => {
                // Edit a Service that does not share: new requested address, none, or a port.
                let name = self.rng.pick(&names).clone();
                let mut m = self.model[&name].clone();
                if matches!(m.kind, Kind::Shared(_)) {
                    return;
                }
                match self.rng.below(3) {
                    0 => {
                        m.kind = Kind::Requested(
                            format!("10.1.0.{}", self.rng.below(64)).parse().unwrap(),
                        )
                    }
                    1 => m.kind = Kind::Plain,
                    _ => m.port = *self.rng.pick(&[80, 443, 53, 8080]),
                }
                m.epoch += 1;
                m.edited_at = Some(step);
                let desired = service(&name, &m);
                let patch = json!({
                    "metadata": {"annotations": {
                        "ferrolb.io/loadBalancerIPs": desired.metadata.annotations.as_ref().and_then(|a| a.get("ferrolb.io/loadBalancerIPs")),
                        "metallb.io/address-pool": desired.metadata.annotations.as_ref().and_then(|a| a.get("metallb.io/address-pool")),
                    }},
                    "spec": {"ports": [{"port": m.port}]},
                });
                // The epoch moves before the write lands, so a fast controller is not blamed.
                self.model.insert(name.clone(), m);
                self.api
                    .patch(&name, &PatchParams::default(), &Patch::Merge(patch))
                    .await
                    .unwrap();
            }
            80..=84 => {
                self.pool_epoch += 1;
                self.pool_edited_at = Some(step);
                self.p3 = if self.p3 == P3_BIG { P3_SMALL } else { P3_BIG };
                pool(&self.emu, "p3", &[self.p3], json!({}));
            }
            85..=86 => {
                // Crash the leader (no Lease release) and bring up a fresh replica.
                if let Some(i) = self.replicas.iter().position(|r| r.leadership.is_leader()) {
                    self.replicas.remove(i).abort();
                    self.spawn_replica().await;
                }
            }
            87 => {
                // Graceful restart of a random replica.
                let i = self.rng.below(self.replicas.len() as u64) as usize;
                let r = self.replicas.remove(i);
                r.shutdown().await.unwrap();
                self.spawn_replica().await;
            }
            _ if !names.is_empty() => {
                // A write that changes nothing the controller reads: must change no address.
                let name = self.rng.pick(&names).clone();
                let _ = self.emu.faults().touch("", "services", "default", &name);
            }
            _ => {}
        }
        let _ = step;
    }
}

async fn churn(ops: usize) {
    let seed: u64 = std::env::var("CHURN_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_f00d);
    eprintln!("churn seed {seed} ({ops} operations)");
    let emu = emulator().await;
    pool(&emu, "p1", &[P1], json!({}));
    pool(&emu, "p2", &[P2], json!({"autoAssign": false}));
    pool(&emu, "p3", &[P3_BIG], json!({}));
    let api: Api<Service> = Api::namespaced(emu.client().await.unwrap(), "default");
    let mut w = World {
        emu,
        api,
        rng: Rng(seed | 1),
        model: BTreeMap::new(),
        seen: BTreeMap::new(),
        replicas: Vec::new(),
        next_name: 0,
        next_identity: 0,
        pool_epoch: 0,
        pool_edited_at: None,
        p3: P3_BIG,
    };
    w.spawn_replica().await;
    w.spawn_replica().await;
    for step in 0..ops {
        w.op(step).await;
        w.check_now(step).await;
        if step % 250 == 249 {
            w.settle_and_check(step).await;
        }
    }
    w.settle_and_check(ops).await;
    for r in w.replicas.drain(..) {
        r.shutdown().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seeded_churn_2000_operations() {
    churn(2000).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "long: 10k operations"]
async fn seeded_churn_10000_operations() {
    churn(10_000).await;
}
