//! Services (spec E34): defaulting with clusterIP and nodePort allocation, validation
//! of spec and status.

use std::collections::BTreeSet;
use std::net::IpAddr;

use serde_json::{Map, Value, json};

use crate::status::Cause;
use crate::validation::{
    NameRule, dns1123_label_errors, dns1123_subdomain_errors, qualified_name_errors,
    validate_labels, validate_name,
};

/// Why a [`ServiceAllocator`] could not be built.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum AllocatorError {
    /// The CIDR does not parse or has the wrong family.
    #[error("invalid service CIDR {0:?}")]
    InvalidCidr(String),
    /// The node port range is empty or reversed.
    #[error("invalid node port range {0}-{1}")]
    InvalidPortRange(u16, u16),
}

/// An IP range from which cluster IPs are handed out, lowest free first.
#[derive(Debug, Clone)]
struct IpPool {
    cidr: String,
    base: u128,
    /// Number of addresses in the CIDR.
    size: u128,
    v6: bool,
    /// Offsets from `base` in use.
    used: BTreeSet<u128>,
    /// Every offset below this one is in use, so searches for a free one start here;
    /// this keeps bulk creation linear instead of quadratic.
    hint: u128,
}

fn ip_to_u128(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a),
    }
}

fn u128_to_ip(v: u128, v6: bool) -> IpAddr {
    if v6 {
        IpAddr::V6(v.into())
    } else {
        // Offsets inside an IPv4 pool always fit in 32 bits.
        IpAddr::V4(u32::try_from(v).unwrap_or(u32::MAX).into())
    }
}

impl IpPool {
    fn parse(cidr: &str, want_v6: bool) -> Result<Self, AllocatorError> {
        let err = || AllocatorError::InvalidCidr(cidr.to_string());
        let (addr, len) = cidr.split_once('/').ok_or_else(err)?;
        let ip: IpAddr = addr.parse().map_err(|_| err())?;
        let len: u32 = len.parse().map_err(|_| err())?;
        let bits = if ip.is_ipv6() { 128 } else { 32 };
        if ip.is_ipv6() != want_v6 || len > bits || bits - len < 2 || bits - len > 64 {
            return Err(err());
        }
        let host_bits = bits - len;
        let size = 1u128 << host_bits;
        let base = ip_to_u128(ip) & !(size - 1);
        Ok(Self {
            cidr: cidr.to_string(),
            base,
            size,
            v6: want_v6,
            used: BTreeSet::new(),
            hint: 1,
        })
    }

    /// Offset of `ip` if it is an allocatable address of this pool.
    fn offset(&self, ip: IpAddr) -> Option<u128> {
        if ip.is_ipv6() != self.v6 {
            return None;
        }
        let v = ip_to_u128(ip);
        if v < self.base || v >= self.base + self.size {
            return None;
        }
        let off = v - self.base;
        // The network address is never handed out, nor the IPv4 broadcast address.
        let last = if self.v6 { self.size } else { self.size - 1 };
        (off >= 1 && off < last).then_some(off)
    }

    fn mark(&mut self, off: u128) {
        self.used.insert(off);
        while self.used.contains(&self.hint) {
            self.hint += 1;
        }
    }

    fn unmark(&mut self, off: u128) {
        self.used.remove(&off);
        self.hint = self.hint.min(off);
    }

    fn lowest_free(&self, reserved: &BTreeSet<u128>) -> Option<u128> {
        let last = if self.v6 { self.size } else { self.size - 1 };
        let mut candidate = self.hint.max(1);
        let mut used = self.used.range(candidate..).peekable();
        let mut res = reserved.range(candidate..).peekable();
        loop {
            while used.peek().is_some_and(|&&u| u < candidate) {
                used.next();
            }
            while res.peek().is_some_and(|&&u| u < candidate) {
                res.next();
            }
            let taken = used.peek() == Some(&&candidate) || res.peek() == Some(&&candidate);
            if !taken {
                return (candidate < last).then_some(candidate);
            }
            candidate += 1;
            if candidate >= last {
                return None;
            }
        }
    }
}

/// Hands out cluster IPs (IPv4 and optionally IPv6) and node ports, deterministically
/// lowest-free first, like a freshly started apiserver.
#[derive(Debug, Clone)]
pub struct ServiceAllocator {
    v4: IpPool,
    v6: Option<IpPool>,
    port_min: u16,
    port_max: u16,
    ports: BTreeSet<u16>,
    /// Every node port in `port_min..port_hint` is in use.
    port_hint: u16,
}

/// Default IPv4 service CIDR (kubeadm's).
pub const DEFAULT_V4_CIDR: &str = "10.96.0.0/12";
/// Default IPv6 service CIDR.
pub const DEFAULT_V6_CIDR: &str = "fd00:10:96::/108";

impl ServiceAllocator {
    /// An allocator for these CIDRs, with node ports 30000-32767. Pass a v6 CIDR to make
    /// the "cluster" dual-stack.
    pub fn new(v4_cidr: &str, v6_cidr: Option<&str>) -> Result<Self, AllocatorError> {
        Ok(Self {
            v4: IpPool::parse(v4_cidr, false)?,
            v6: v6_cidr.map(|c| IpPool::parse(c, true)).transpose()?,
            port_min: 30000,
            port_max: 32767,
            ports: BTreeSet::new(),
            port_hint: 30000,
        })
    }

    /// Replaces the node port range (inclusive), e.g. to fit more NodePort Services.
    pub fn with_node_port_range(mut self, min: u16, max: u16) -> Result<Self, AllocatorError> {
        if min == 0 || min > max {
            return Err(AllocatorError::InvalidPortRange(min, max));
        }
        self.port_min = min;
        self.port_max = max;
        self.port_hint = min;
        Ok(self)
    }

    fn mark_port(&mut self, port: u16) {
        self.ports.insert(port);
        while self.port_hint < self.port_max && self.ports.contains(&self.port_hint) {
            self.port_hint += 1;
        }
    }

    fn unmark_port(&mut self, port: u16) {
        self.ports.remove(&port);
        self.port_hint = self.port_hint.min(port).max(self.port_min);
    }

    /// Whether an IPv6 range is configured.
    pub fn dual_stack(&self) -> bool {
        self.v6.is_some()
    }

    fn pool(&self, v6: bool) -> Option<&IpPool> {
        if v6 { self.v6.as_ref() } else { Some(&self.v4) }
    }

    fn pool_mut(&mut self, v6: bool) -> Option<&mut IpPool> {
        if v6 {
            self.v6.as_mut()
        } else {
            Some(&mut self.v4)
        }
    }

    /// Whether this cluster IP is currently allocated.
    pub fn ip_in_use(&self, ip: IpAddr) -> bool {
        self.pool(ip.is_ipv6())
            .and_then(|p| p.offset(ip).map(|o| p.used.contains(&o)))
            == Some(true)
    }

    /// Whether this node port is currently allocated.
    pub fn port_in_use(&self, port: u16) -> bool {
        self.ports.contains(&port)
    }

    /// Marks the IPs and ports of an already stored Service as used (after a restart
    /// or when loading fixtures). Values outside the ranges are ignored.
    pub fn observe(&mut self, svc: &Value) {
        let a = Allocations::of(svc);
        for ip in a.ips {
            if let Some(p) = self.pool_mut(ip.is_ipv6())
                && let Some(o) = p.offset(ip)
            {
                p.mark(o);
            }
        }
        for port in a.ports {
            self.mark_port(port);
        }
    }

    /// Frees the IPs and ports of a deleted Service.
    pub fn release(&mut self, svc: &Value) {
        let a = Allocations::of(svc);
        for ip in a.ips {
            self.release_ip(ip);
        }
        for port in a.ports {
            self.unmark_port(port);
        }
    }

    fn release_ip(&mut self, ip: IpAddr) {
        if let Some(p) = self.pool_mut(ip.is_ipv6())
            && let Some(o) = p.offset(ip)
        {
            p.unmark(o);
        }
    }

    /// Undoes a successful [`default_service`] whose write was then rejected: frees what
    /// `new` holds and re-marks what `old` held.
    pub fn undo(&mut self, new: &Value, old: Option<&Value>) {
        self.release(new);
        if let Some(o) = old {
            self.observe(o);
        }
    }
}

/// The cluster IPs and node ports a Service holds.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Allocations {
    ips: Vec<IpAddr>,
    ports: Vec<u16>,
}

impl Allocations {
    fn of(svc: &Value) -> Self {
        let spec = &svc["spec"];
        let mut a = Allocations::default();
        let mut ips: Vec<&str> = str_list(&spec["clusterIPs"]);
        if let Some(ip) = spec["clusterIP"].as_str() {
            ips.push(ip);
        }
        for ip in ips {
            if let Ok(ip) = ip.parse::<IpAddr>()
                && !a.ips.contains(&ip)
            {
                a.ips.push(ip);
            }
        }
        if let Some(ports) = spec["ports"].as_array() {
            for p in ports {
                if let Some(n) = p["nodePort"].as_u64().and_then(|n| u16::try_from(n).ok())
                    && n != 0
                    && !a.ports.contains(&n)
                {
                    a.ports.push(n);
                }
            }
        }
        if let Some(n) = spec["healthCheckNodePort"]
            .as_u64()
            .and_then(|n| u16::try_from(n).ok())
            && n != 0
            && !a.ports.contains(&n)
        {
            a.ports.push(n);
        }
        a
    }
}

fn str_list(v: &Value) -> Vec<&str> {
    v.as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

fn svc_type(svc: &Value) -> &str {
    svc["spec"]["type"].as_str().unwrap_or("ClusterIP")
}

fn is_lb(svc: &Value) -> bool {
    svc_type(svc) == "LoadBalancer"
}

fn needs_cluster_ip(svc: &Value) -> bool {
    svc_type(svc) != "ExternalName"
}

fn needs_node_port(svc: &Value) -> bool {
    match svc_type(svc) {
        "NodePort" => true,
        "LoadBalancer" => svc["spec"]["allocateLoadBalancerNodePorts"].as_bool() != Some(false),
        _ => false,
    }
}

fn externally_accessible(svc: &Value) -> bool {
    matches!(svc_type(svc), "NodePort" | "LoadBalancer")
        || svc["spec"]["externalIPs"]
            .as_array()
            .is_some_and(|a| !a.is_empty())
}

fn needs_hc_node_port(svc: &Value) -> bool {
    is_lb(svc) && svc["spec"]["externalTrafficPolicy"].as_str() == Some("Local")
}

fn family_of(ip: &str) -> Option<&'static str> {
    match ip.parse::<IpAddr>() {
        Ok(IpAddr::V4(_)) => Some("IPv4"),
        Ok(IpAddr::V6(_)) => Some("IPv6"),
        Err(_) => None,
    }
}

fn port_key(p: &Value) -> (Value, String) {
    (
        p["port"].clone(),
        p["protocol"].as_str().unwrap_or("TCP").to_string(),
    )
}

/// Upstream's `dropTypeDependentFields`: when the type changes, fields the old type
/// needed and the client left untouched are cleared instead of rejected.
fn drop_type_dependent_fields(spec: &mut Map<String, Value>, old: &Value) {
    let new_svc = json!({ "spec": Value::Object(spec.clone()) });
    let old_spec = &old["spec"];
    if needs_cluster_ip(old) && !needs_cluster_ip(&new_svc) {
        for k in ["clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy"] {
            if spec.get(k) == old_spec.get(k) {
                spec.remove(k);
            }
        }
    }
    if needs_node_port(old) && !needs_node_port(&new_svc) {
        let old_ports = old_spec["ports"].as_array().cloned().unwrap_or_default();
        if let Some(Value::Array(ports)) = spec.get_mut("ports") {
            for p in ports.iter_mut() {
                let key = port_key(p);
                let old_np = old_ports
                    .iter()
                    .find(|op| port_key(op) == key)
                    .map(|op| op["nodePort"].clone());
                if let (Some(obj), Some(onp)) = (p.as_object_mut(), old_np)
                    && obj.get("nodePort") == Some(&onp)
                {
                    obj.remove("nodePort");
                }
            }
        }
    }
    if needs_hc_node_port(old)
        && !needs_hc_node_port(&new_svc)
        && spec.get("healthCheckNodePort") == old_spec.get("healthCheckNodePort")
    {
        spec.remove("healthCheckNodePort");
    }
    if is_lb(old) && !is_lb(&new_svc) {
        for k in ["allocateLoadBalancerNodePorts", "loadBalancerClass"] {
            if spec.get(k) == old_spec.get(k) {
                spec.remove(k);
            }
        }
    }
    if externally_accessible(old)
        && !externally_accessible(&new_svc)
        && spec.get("externalTrafficPolicy") == old_spec.get("externalTrafficPolicy")
    {
        spec.remove("externalTrafficPolicy");
    }
    if svc_type(&new_svc) == "ExternalName"
        && spec.get("internalTrafficPolicy") == old_spec.get("internalTrafficPolicy")
    {
        spec.remove("internalTrafficPolicy");
    }
}

/// Upstream's `patchAllocatedValues`: an update that omits allocated values keeps them.
fn patch_allocated_values(spec: &mut Map<String, Value>, old: &Value) {
    let new_svc = json!({ "spec": Value::Object(spec.clone()) });
    let old_spec = &old["spec"];
    if needs_cluster_ip(old) && needs_cluster_ip(&new_svc) {
        let empty = |v: Option<&Value>| match v {
            None | Some(Value::Null) => true,
            Some(Value::String(s)) => s.is_empty(),
            Some(Value::Array(a)) => a.is_empty(),
            _ => false,
        };
        if empty(spec.get("clusterIP")) && !empty(old_spec.get("clusterIP")) {
            spec.insert("clusterIP".into(), old_spec["clusterIP"].clone());
        }
        if empty(spec.get("clusterIPs")) && !empty(old_spec.get("clusterIPs")) {
            // Only when the primary agrees, or the client sent no primary at all.
            if spec.get("clusterIP") == old_spec.get("clusterIP") {
                spec.insert("clusterIPs".into(), old_spec["clusterIPs"].clone());
            }
        }
        if spec.get("clusterIPs") == old_spec.get("clusterIPs") {
            for k in ["ipFamilies", "ipFamilyPolicy"] {
                if empty(spec.get(k)) && !empty(old_spec.get(k)) {
                    spec.insert(k.into(), old_spec[k].clone());
                }
            }
        }
    }
    if needs_node_port(old) && needs_node_port(&new_svc) {
        let old_ports = old_spec["ports"].as_array().cloned().unwrap_or_default();
        let used: BTreeSet<u64> = spec
            .get("ports")
            .and_then(Value::as_array)
            .map(|ps| {
                ps.iter()
                    .filter_map(|p| p["nodePort"].as_u64())
                    .filter(|&n| n != 0)
                    .collect()
            })
            .unwrap_or_default();
        if let Some(Value::Array(ports)) = spec.get_mut("ports") {
            for p in ports.iter_mut() {
                if p["nodePort"].as_u64().unwrap_or(0) != 0 {
                    continue;
                }
                let name = p["name"].as_str().unwrap_or("").to_string();
                let old_np = old_ports
                    .iter()
                    .find(|op| op["name"].as_str().unwrap_or("") == name)
                    .and_then(|op| op["nodePort"].as_u64())
                    .filter(|&n| n != 0 && !used.contains(&n));
                if let (Some(n), Some(obj)) = (old_np, p.as_object_mut()) {
                    obj.insert("nodePort".into(), json!(n));
                }
            }
        }
    }
    if needs_hc_node_port(old)
        && needs_hc_node_port(&new_svc)
        && spec
            .get("healthCheckNodePort")
            .and_then(Value::as_u64)
            .unwrap_or(0)
            == 0
        && let Some(v) = old_spec.get("healthCheckNodePort")
    {
        spec.insert("healthCheckNodePort".into(), v.clone());
    }
}

/// Applies exactly the E34 defaults to a Service being created (`old` = None) or
/// updated, allocating cluster IPs and node ports from `alloc`. On update, allocations
/// the client omitted are kept and those no longer needed are released. On error
/// nothing is allocated or released. If the write is rejected later (validation,
/// conflict), call [`ServiceAllocator::undo`]; [`admit_service`] does both steps.
pub fn default_service(
    new: &mut Value,
    old: Option<&Value>,
    alloc: &mut ServiceAllocator,
) -> Result<(), Vec<Cause>> {
    let Some(obj) = new.as_object_mut() else {
        return Err(vec![Cause::invalid("", "object must be a JSON object")]);
    };
    let spec_v = obj.entry("spec").or_insert_with(|| json!({}));
    if spec_v.is_null() {
        *spec_v = json!({});
    }
    let Some(spec) = spec_v.as_object_mut() else {
        return Err(vec![Cause::invalid("spec", "must be an object")]);
    };
    if let Some(o) = old {
        drop_type_dependent_fields(spec, o);
        patch_allocated_values(spec, o);
    }
    let set_default = |spec: &mut Map<String, Value>, k: &str, v: Value| {
        if spec
            .get(k)
            .is_none_or(|x| x.is_null() || x.as_str() == Some(""))
        {
            spec.insert(k.to_string(), v);
        }
    };
    set_default(spec, "type", json!("ClusterIP"));
    set_default(spec, "sessionAffinity", json!("None"));
    if let Some(Value::Array(ports)) = spec.get_mut("ports") {
        for p in ports.iter_mut() {
            if let Some(po) = p.as_object_mut() {
                if po
                    .get("protocol")
                    .is_none_or(|x| x.is_null() || x.as_str() == Some(""))
                {
                    po.insert("protocol".into(), json!("TCP"));
                }
                let tp_missing = match po.get("targetPort") {
                    None | Some(Value::Null) => true,
                    Some(Value::Number(n)) => n.as_u64() == Some(0),
                    Some(Value::String(s)) => s.is_empty(),
                    _ => false,
                };
                if tp_missing && let Some(port) = po.get("port").cloned() {
                    po.insert("targetPort".into(), port);
                }
            }
        }
    }
    let ty = spec
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("ClusterIP")
        .to_string();
    if ty != "ExternalName" {
        set_default(spec, "internalTrafficPolicy", json!("Cluster"));
    }
    if ty == "NodePort" || ty == "LoadBalancer" {
        set_default(spec, "externalTrafficPolicy", json!("Cluster"));
    }
    if ty == "LoadBalancer"
        && spec
            .get("allocateLoadBalancerNodePorts")
            .is_none_or(Value::is_null)
    {
        spec.insert("allocateLoadBalancerNodePorts".into(), json!(true));
    }

    let mut tx = Tx::new(alloc, old);
    let mut causes = Vec::new();
    if ty != "ExternalName"
        && let Err(mut c) = default_cluster_ips(spec, &mut tx)
    {
        causes.append(&mut c);
    }
    let view = json!({ "spec": Value::Object(spec.clone()) });
    // Requested node ports are reserved even when a LoadBalancer opts out of
    // allocation, as upstream does.
    let allocate_node_ports = needs_node_port(&view);
    if matches!(ty.as_str(), "NodePort" | "LoadBalancer")
        && let Some(Value::Array(ports)) = spec.get_mut("ports")
    {
        let mut in_svc: Vec<(u16, String)> = Vec::new();
        for (i, p) in ports.iter_mut().enumerate() {
            let proto = p["protocol"].as_str().unwrap_or("TCP").to_string();
            let field = format!("spec.ports[{i}].nodePort");
            match p["nodePort"].as_u64() {
                Some(n) if n != 0 => {
                    let Ok(n16) = u16::try_from(n) else {
                        continue; // validation reports the bad number
                    };
                    // The same node port may serve TCP and UDP of one Service.
                    if !in_svc.iter().any(|(pp, _)| *pp == n16)
                        && let Err(c) = tx.claim_port(n16, &field)
                    {
                        causes.push(c);
                    }
                    in_svc.push((n16, proto));
                }
                _ if !allocate_node_ports => {}
                _ => match tx.next_port() {
                    Some(n16) => {
                        if let Some(po) = p.as_object_mut() {
                            po.insert("nodePort".into(), json!(n16));
                        }
                        in_svc.push((n16, proto));
                    }
                    None => causes.push(Cause::internal(
                        &field,
                        "failed to allocate a nodePort: range is full",
                    )),
                },
            }
        }
    }
    if needs_hc_node_port(&view) {
        let field = "spec.healthCheckNodePort";
        match spec.get("healthCheckNodePort").and_then(Value::as_u64) {
            Some(n) if n != 0 => {
                if let Ok(n16) = u16::try_from(n)
                    && let Err(c) = tx.claim_port(n16, field)
                {
                    causes.push(c);
                }
            }
            _ => match tx.next_port() {
                Some(n16) => {
                    spec.insert("healthCheckNodePort".into(), json!(n16));
                }
                None => causes.push(Cause::internal(
                    field,
                    "failed to allocate a nodePort: range is full",
                )),
            },
        }
    }
    if !causes.is_empty() {
        return Err(causes);
    }
    tx.commit(new);
    Ok(())
}

/// Allocation decisions of one defaulting call, applied only on success.
struct Tx<'a> {
    alloc: &'a mut ServiceAllocator,
    old: Allocations,
    new_ips_v4: BTreeSet<u128>,
    new_ips_v6: BTreeSet<u128>,
    new_ports: BTreeSet<u16>,
}

impl<'a> Tx<'a> {
    fn new(alloc: &'a mut ServiceAllocator, old: Option<&Value>) -> Self {
        Self {
            alloc,
            old: old.map(Allocations::of).unwrap_or_default(),
            new_ips_v4: BTreeSet::new(),
            new_ips_v6: BTreeSet::new(),
            new_ports: BTreeSet::new(),
        }
    }

    fn reserved(&mut self, v6: bool) -> &mut BTreeSet<u128> {
        if v6 {
            &mut self.new_ips_v6
        } else {
            &mut self.new_ips_v4
        }
    }

    fn claim_ip(&mut self, ip: IpAddr, field: &str) -> Result<(), Cause> {
        let Some(pool) = self.alloc.pool(ip.is_ipv6()) else {
            return Err(Cause::invalid_value(
                field,
                &json!(ip.to_string()),
                "not configured on this cluster",
            ));
        };
        let Some(off) = pool.offset(ip) else {
            return Err(Cause::invalid_value(
                field,
                &json!(ip.to_string()),
                &format!(
                    "failed to allocate IP {ip}: provided IP ({ip}) is not in the valid range. The range of valid IPs is {}",
                    pool.cidr
                ),
            ));
        };
        let mine = self.old.ips.contains(&ip);
        if !mine && pool.used.contains(&off) || self.reserved(ip.is_ipv6()).contains(&off) {
            return Err(Cause::invalid_value(
                field,
                &json!(ip.to_string()),
                &format!("failed to allocate IP {ip}: provided IP is already allocated"),
            ));
        }
        self.reserved(ip.is_ipv6()).insert(off);
        Ok(())
    }

    fn next_ip(&mut self, v6: bool) -> Option<IpAddr> {
        let pool = self.alloc.pool(v6)?;
        let reserved = if v6 {
            &self.new_ips_v6
        } else {
            &self.new_ips_v4
        };
        let off = pool.lowest_free(reserved)?;
        let ip = u128_to_ip(pool.base + off, v6);
        self.reserved(v6).insert(off);
        Some(ip)
    }

    fn claim_port(&mut self, port: u16, field: &str) -> Result<(), Cause> {
        let (min, max) = (self.alloc.port_min, self.alloc.port_max);
        if port < min || port > max {
            return Err(Cause::invalid_value(
                field,
                &json!(port),
                &format!(
                    "provided port is not in the valid range. The range of valid ports is {min}-{max}"
                ),
            ));
        }
        let mine = self.old.ports.contains(&port);
        if (!mine && self.alloc.ports.contains(&port)) || self.new_ports.contains(&port) {
            return Err(Cause::invalid_value(
                field,
                &json!(port),
                "provided port is already allocated",
            ));
        }
        self.new_ports.insert(port);
        Ok(())
    }

    fn next_port(&mut self) -> Option<u16> {
        let (min, max) = (self.alloc.port_min, self.alloc.port_max);
        (self.alloc.port_hint.max(min)..=max)
            .find(|p| !self.alloc.ports.contains(p) && !self.new_ports.contains(p))
            .inspect(|p| {
                self.new_ports.insert(*p);
            })
    }

    fn commit(self, new: &Value) {
        let now = Allocations::of(new);
        for ip in &self.old.ips {
            if !now.ips.contains(ip) {
                self.alloc.release_ip(*ip);
            }
        }
        for p in &self.old.ports {
            if !now.ports.contains(p) {
                self.alloc.unmark_port(*p);
            }
        }
        for off in &self.new_ips_v4 {
            self.alloc.v4.mark(*off);
        }
        if let Some(v6) = self.alloc.v6.as_mut() {
            for off in &self.new_ips_v6 {
                v6.mark(*off);
            }
        }
        for p in &self.new_ports {
            self.alloc.mark_port(*p);
        }
    }
}

fn default_cluster_ips(spec: &mut Map<String, Value>, tx: &mut Tx<'_>) -> Result<(), Vec<Cause>> {
    let mut causes = Vec::new();
    let mut ips: Vec<String> = str_list(spec.get("clusterIPs").unwrap_or(&Value::Null))
        .into_iter()
        .map(String::from)
        .collect();
    let primary = spec
        .get("clusterIP")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    if ips.is_empty() && !primary.is_empty() {
        ips.push(primary.clone());
    }
    let headless = ips.first().map(String::as_str) == Some("None");
    let mut families: Vec<String> = str_list(spec.get("ipFamilies").unwrap_or(&Value::Null))
        .into_iter()
        .map(String::from)
        .collect();
    if spec.get("ipFamilyPolicy").is_none_or(Value::is_null) {
        let policy = if families.len() >= 2 || ips.len() >= 2 {
            "RequireDualStack"
        } else {
            "SingleStack"
        };
        spec.insert("ipFamilyPolicy".into(), json!(policy));
    }
    let policy = spec
        .get("ipFamilyPolicy")
        .and_then(Value::as_str)
        .unwrap_or("SingleStack")
        .to_string();
    // Families implied by explicitly requested IPs come after requested families.
    if !headless {
        for (i, ip) in ips.iter().enumerate() {
            if i >= families.len()
                && let Some(f) = family_of(ip)
            {
                families.push(f.to_string());
            }
        }
    }
    if families.is_empty() {
        families.push("IPv4".into());
    }
    let dual = tx.alloc.dual_stack();
    let wants_dual = policy == "RequireDualStack" || policy == "PreferDualStack";
    if wants_dual && dual && families.len() == 1 {
        let other = if families[0] == "IPv6" {
            "IPv4"
        } else {
            "IPv6"
        };
        families.push(other.into());
    } else if policy == "RequireDualStack" && !dual {
        causes.push(Cause::invalid_value(
            "spec.ipFamilyPolicy",
            &json!(policy),
            "this cluster is not configured for dual-stack services",
        ));
    }
    for (i, f) in families.iter().enumerate() {
        if f == "IPv6" && !dual {
            causes.push(Cause::invalid_value(
                &format!("spec.ipFamilies[{i}]"),
                &json!(f),
                "not configured on this cluster",
            ));
        }
    }
    if !causes.is_empty() {
        return Err(causes);
    }
    if headless {
        spec.insert("clusterIP".into(), json!("None"));
        spec.insert("clusterIPs".into(), json!(["None"]));
        spec.insert("ipFamilies".into(), json!(families));
        return Ok(());
    }
    if policy == "SingleStack" && (families.len() > 1 || ips.len() > 1) {
        return Err(vec![Cause::invalid_value(
            "spec.ipFamilies",
            &json!(families),
            SINGLE_STACK_MSG,
        )]);
    }
    let mut out_ips = Vec::new();
    for (i, fam) in families.iter().enumerate() {
        let field = format!("spec.clusterIPs[{i}]");
        let v6 = fam == "IPv6";
        match ips.get(i).filter(|s| !s.is_empty()) {
            Some(s) => match s.parse::<IpAddr>() {
                Ok(ip) if ip.is_ipv6() == v6 => match tx.claim_ip(ip, &field) {
                    Ok(()) => out_ips.push(s.clone()),
                    Err(c) => causes.push(c),
                },
                // Validation reports unparsable or mismatched IPs with upstream wording.
                _ => out_ips.push(s.clone()),
            },
            None => match tx.next_ip(v6) {
                Some(ip) => out_ips.push(ip.to_string()),
                None => causes.push(Cause::internal(
                    &field,
                    &format!("failed to allocate a serviceIP: range is full ({fam})"),
                )),
            },
        }
    }
    if !causes.is_empty() {
        return Err(causes);
    }
    if let Some(first) = out_ips.first() {
        spec.insert("clusterIP".into(), json!(first));
    }
    spec.insert("clusterIPs".into(), json!(out_ips));
    spec.insert("ipFamilies".into(), json!(families));
    Ok(())
}

/// Defaults and validates a Service write in one step, undoing the allocations when
/// validation fails. Returns the causes for a 422.
pub fn admit_service(
    new: &mut Value,
    old: Option<&Value>,
    alloc: &mut ServiceAllocator,
) -> Result<(), Vec<Cause>> {
    default_service(new, old, alloc)?;
    let causes = validate_service(new, old);
    if causes.is_empty() {
        Ok(())
    } else {
        alloc.undo(new, old);
        Err(causes)
    }
}

const SINGLE_STACK_MSG: &str = "when spec.ipFamilyPolicy is SingleStack, spec.ipFamilies and spec.clusterIPs may contain only one value";

const PROTOCOLS: &[&str] = &["TCP", "UDP", "SCTP"];

fn is_iana_svc_name(s: &str) -> bool {
    s.len() <= 15
        && s.bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
        && s.bytes().any(|c| c.is_ascii_lowercase())
        && !s.starts_with('-')
        && !s.ends_with('-')
        && !s.contains("--")
}

fn valid_port_number(v: &Value) -> bool {
    v.as_u64().is_some_and(|n| (1..=65535).contains(&n))
}

fn is_cidr(s: &str) -> bool {
    let Some((a, l)) = s.split_once('/') else {
        return false;
    };
    match (a.parse::<IpAddr>(), l.parse::<u8>()) {
        (Ok(IpAddr::V4(_)), Ok(l)) => l <= 32,
        (Ok(IpAddr::V6(_)), Ok(l)) => l <= 128,
        _ => false,
    }
}

/// Validates a (defaulted) Service for create (`old` = None) or update (E34).
pub fn validate_service(new: &Value, old: Option<&Value>) -> Vec<Cause> {
    let mut c = Vec::new();
    let name = new["metadata"]["name"].as_str().unwrap_or("");
    c.extend(validate_name(name, NameRule::Dns1035Label));
    let spec = &new["spec"];
    let ty = svc_type(new);
    if !["ClusterIP", "NodePort", "LoadBalancer", "ExternalName"].contains(&ty) {
        c.push(Cause::not_supported(
            "spec.type",
            &json!(ty),
            &["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"],
        ));
    }
    let ips = str_list(&spec["clusterIPs"]);
    let headless = spec["clusterIP"].as_str() == Some("None");
    validate_ports(spec, ty, headless, &mut c);

    if let Some(sa) = spec["sessionAffinity"].as_str()
        && sa != "None"
        && sa != "ClientIP"
    {
        c.push(Cause::not_supported(
            "spec.sessionAffinity",
            &json!(sa),
            &["ClientIP", "None"],
        ));
    }
    if ty == "ExternalName" {
        let en = spec["externalName"].as_str().unwrap_or("");
        if en.is_empty() {
            c.push(Cause::required("spec.externalName", ""));
        } else {
            for m in dns1123_subdomain_errors(en.strip_suffix('.').unwrap_or(en)) {
                c.push(Cause::invalid_value("spec.externalName", &json!(en), &m));
            }
        }
        if spec["clusterIP"].as_str().is_some_and(|s| !s.is_empty()) || !ips.is_empty() {
            c.push(Cause::forbidden(
                "spec.clusterIPs",
                "may not be set for ExternalName services",
            ));
        }
        if spec["ipFamilies"].as_array().is_some_and(|a| !a.is_empty()) {
            c.push(Cause::forbidden(
                "spec.ipFamilies",
                "may not be set for ExternalName services",
            ));
        }
        if !spec["ipFamilyPolicy"].is_null() {
            c.push(Cause::forbidden(
                "spec.ipFamilyPolicy",
                "may not be set for ExternalName services",
            ));
        }
    } else {
        validate_cluster_ips(spec, ty, &ips, &mut c);
    }

    match spec["externalTrafficPolicy"].as_str() {
        None => {
            if matches!(ty, "NodePort" | "LoadBalancer") {
                c.push(Cause::required("spec.externalTrafficPolicy", ""));
            }
        }
        Some(p) => {
            if !externally_accessible(new) {
                c.push(Cause::invalid_value(
                    "spec.externalTrafficPolicy",
                    &json!(p),
                    "may only be set for externally-accessible services",
                ));
            } else if p != "Cluster" && p != "Local" {
                c.push(Cause::not_supported(
                    "spec.externalTrafficPolicy",
                    &json!(p),
                    &["Cluster", "Local"],
                ));
            }
        }
    }
    if let Some(p) = spec["internalTrafficPolicy"].as_str() {
        if p != "Cluster" && p != "Local" {
            c.push(Cause::not_supported(
                "spec.internalTrafficPolicy",
                &json!(p),
                &["Cluster", "Local"],
            ));
        }
    } else if ty != "ExternalName" {
        c.push(Cause::required("spec.internalTrafficPolicy", ""));
    }
    let hc = &spec["healthCheckNodePort"];
    if hc.as_u64().unwrap_or(0) != 0 || !(hc.is_null() || hc.is_number()) {
        if !needs_hc_node_port(new) {
            c.push(Cause::invalid_value(
                "spec.healthCheckNodePort",
                hc,
                "may only be set when `type` is 'LoadBalancer' and `externalTrafficPolicy` is 'Local'",
            ));
        } else if !valid_port_number(hc) {
            c.push(Cause::invalid_value(
                "spec.healthCheckNodePort",
                hc,
                "must be between 1 and 65535, inclusive",
            ));
        }
    } else if needs_hc_node_port(new) {
        c.push(Cause::required("spec.healthCheckNodePort", ""));
    }
    let alloc_np = &spec["allocateLoadBalancerNodePorts"];
    if ty == "LoadBalancer" {
        if alloc_np.is_null() {
            c.push(Cause::required("spec.allocateLoadBalancerNodePorts", ""));
        }
    } else if !alloc_np.is_null() {
        c.push(Cause::forbidden(
            "spec.allocateLoadBalancerNodePorts",
            "may only be used when `type` is 'LoadBalancer'",
        ));
    }
    validate_lb_class(new, old, &mut c);
    if let Some(ranges) = spec["loadBalancerSourceRanges"]
        .as_array()
        .filter(|a| !a.is_empty())
    {
        if ty != "LoadBalancer" {
            c.push(Cause::forbidden(
                "spec.loadBalancerSourceRanges",
                "may only be used when `type` is 'LoadBalancer'",
            ));
        }
        for (i, r) in ranges.iter().enumerate() {
            if !r.as_str().is_some_and(|s| is_cidr(s.trim())) {
                c.push(Cause::invalid_value(
                    &format!("spec.loadBalancerSourceRanges[{i}]"),
                    r,
                    "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff) or a valid CIDR",
                ));
            }
        }
    }
    if let Some(lbip) = spec["loadBalancerIP"].as_str().filter(|s| !s.is_empty())
        && lbip.parse::<IpAddr>().is_err()
    {
        c.push(Cause::invalid_value(
            "spec.loadBalancerIP",
            &json!(lbip),
            "must be a valid IP address",
        ));
    }
    if let Some(eips) = spec["externalIPs"].as_array() {
        for (i, ip) in eips.iter().enumerate() {
            if ip.as_str().is_none_or(|s| s.parse::<IpAddr>().is_err()) {
                c.push(Cause::invalid_value(
                    &format!("spec.externalIPs[{i}]"),
                    ip,
                    "must be a valid IP address",
                ));
            }
        }
    }
    if let Some(sel) = spec["selector"].as_object() {
        c.extend(validate_labels(sel, "spec.selector"));
    }
    if let Some(o) = old {
        validate_service_update(new, o, &mut c);
    }
    c
}

fn validate_ports(spec: &Value, ty: &str, headless: bool, c: &mut Vec<Cause>) {
    let ports = spec["ports"].as_array().cloned().unwrap_or_default();
    if ports.is_empty() && ty != "ExternalName" && !headless {
        c.push(Cause::required("spec.ports", ""));
    }
    let require_name = ports.len() > 1;
    let mut names: Vec<&str> = Vec::new();
    let mut keys: Vec<(Value, String)> = Vec::new();
    let mut node_ports: Vec<(u64, String)> = Vec::new();
    for (i, p) in ports.iter().enumerate() {
        let f = |s: &str| format!("spec.ports[{i}].{s}");
        let name = p["name"].as_str().unwrap_or("");
        if name.is_empty() {
            if require_name {
                c.push(Cause::required(&f("name"), ""));
            }
        } else {
            for m in dns1123_label_errors(name) {
                c.push(Cause::invalid_value(&f("name"), &json!(name), &m));
            }
            if names.contains(&name) {
                c.push(Cause::duplicate(&f("name"), &json!(name)));
            }
            names.push(name);
        }
        if !valid_port_number(&p["port"]) {
            c.push(Cause::invalid_value(
                &f("port"),
                &p["port"],
                "must be between 1 and 65535, inclusive",
            ));
        }
        let proto = p["protocol"].as_str().unwrap_or("");
        if proto.is_empty() {
            c.push(Cause::required(&f("protocol"), ""));
        } else if !PROTOCOLS.contains(&proto) {
            c.push(Cause::not_supported(
                &f("protocol"),
                &json!(proto),
                PROTOCOLS,
            ));
        }
        match &p["targetPort"] {
            Value::Null => {}
            Value::Number(_) => {
                if !valid_port_number(&p["targetPort"]) {
                    c.push(Cause::invalid_value(
                        &f("targetPort"),
                        &p["targetPort"],
                        "must be between 1 and 65535, inclusive",
                    ));
                }
            }
            Value::String(s) => {
                if !is_iana_svc_name(s) {
                    c.push(Cause::invalid_value(
                        &f("targetPort"),
                        &p["targetPort"],
                        "must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-), at most 15 characters, at least one letter, and no leading, trailing or double hyphens",
                    ));
                }
            }
            other => c.push(Cause::invalid_value(
                &f("targetPort"),
                other,
                "must be a number or a name",
            )),
        }
        let key = port_key(p);
        if keys.contains(&key) {
            c.push(Cause::duplicate(&format!("spec.ports[{i}]"), p));
        }
        keys.push(key);
        let np = &p["nodePort"];
        if np.as_u64().unwrap_or(0) != 0 || !(np.is_null() || np.is_number()) {
            if ty == "ClusterIP" || ty == "ExternalName" {
                c.push(Cause::forbidden(
                    &f("nodePort"),
                    &format!("may not be used when `type` is '{ty}'"),
                ));
            } else if !valid_port_number(np) {
                c.push(Cause::invalid_value(
                    &f("nodePort"),
                    np,
                    "must be between 1 and 65535, inclusive",
                ));
            } else if let Some(n) = np.as_u64() {
                let k = (n, proto.to_string());
                if node_ports.contains(&k) {
                    c.push(Cause::duplicate(&f("nodePort"), np));
                }
                node_ports.push(k);
            }
        }
    }
}

fn validate_cluster_ips(spec: &Value, ty: &str, ips: &[&str], c: &mut Vec<Cause>) {
    let primary = spec["clusterIP"].as_str().unwrap_or("");
    if ips.first().copied().unwrap_or("") != primary {
        c.push(Cause::invalid_value(
            "spec.clusterIPs",
            &json!(ips),
            "first value must match `clusterIP`",
        ));
    }
    let headless = primary == "None";
    if headless {
        if ips.len() > 1 {
            c.push(Cause::invalid_value(
                "spec.clusterIPs",
                &json!(ips),
                "'None' must be the first and only value",
            ));
        }
        if ty == "NodePort" || ty == "LoadBalancer" {
            c.push(Cause::invalid_value(
                "spec.clusterIPs[0]",
                &json!("None"),
                &format!("may not be set to 'None' for {ty} services"),
            ));
        }
    } else {
        for (i, ip) in ips.iter().enumerate() {
            if ip.parse::<IpAddr>().is_err() {
                c.push(Cause::invalid_value(
                    &format!("spec.clusterIPs[{i}]"),
                    &json!(ip),
                    "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
                ));
            }
        }
    }
    let families = str_list(&spec["ipFamilies"]);
    for (i, f) in families.iter().enumerate() {
        if *f != "IPv4" && *f != "IPv6" {
            c.push(Cause::not_supported(
                &format!("spec.ipFamilies[{i}]"),
                &json!(f),
                &["IPv4", "IPv6"],
            ));
        }
        if families[..i].contains(f) {
            c.push(Cause::duplicate(
                &format!("spec.ipFamilies[{i}]"),
                &json!(f),
            ));
        }
    }
    if families.len() > 2 {
        c.push(Cause::too_many("spec.ipFamilies", families.len(), 2));
    }
    if ips.len() > 2 {
        c.push(Cause::too_many("spec.clusterIPs", ips.len(), 2));
    }
    if !headless {
        for (i, ip) in ips.iter().enumerate() {
            if let (Some(got), Some(want)) = (family_of(ip), families.get(i))
                && got != *want
            {
                c.push(Cause::invalid_value(
                    &format!("spec.clusterIPs[{i}]"),
                    &json!(ip),
                    &format!("expected an {want} value as indicated by `ipFamilies[{i}]`"),
                ));
            }
        }
        if ips.len() == 2 && family_of(ips[0]).is_some() && family_of(ips[0]) == family_of(ips[1]) {
            c.push(Cause::invalid_value(
                "spec.clusterIPs[1]",
                &json!(ips[1]),
                "may not have the same family as clusterIPs[0]",
            ));
        }
    }
    match spec["ipFamilyPolicy"].as_str() {
        None => c.push(Cause::required("spec.ipFamilyPolicy", "")),
        Some(p @ ("SingleStack" | "PreferDualStack" | "RequireDualStack")) => {
            if p == "SingleStack" && (families.len() > 1 || ips.len() > 1) {
                c.push(Cause::invalid_value(
                    "spec.ipFamilies",
                    &json!(families),
                    SINGLE_STACK_MSG,
                ));
            }
        }
        Some(p) => c.push(Cause::not_supported(
            "spec.ipFamilyPolicy",
            &json!(p),
            &["PreferDualStack", "RequireDualStack", "SingleStack"],
        )),
    }
}

fn validate_lb_class(new: &Value, old: Option<&Value>, c: &mut Vec<Cause>) {
    let f = "spec.loadBalancerClass";
    let class = &new["spec"]["loadBalancerClass"];
    if let Some(o) = old
        && is_lb(o)
        && is_lb(new)
        && o["spec"]["loadBalancerClass"] != *class
    {
        c.push(Cause::invalid_value(f, class, "may not change once set"));
    }
    if class.is_null() {
        return;
    }
    if is_lb(new) {
        match class.as_str() {
            Some(s) => {
                for m in qualified_name_errors(s) {
                    c.push(Cause::invalid_value(f, class, &m));
                }
            }
            None => c.push(Cause::invalid_value(f, class, "must be a string")),
        }
    } else {
        c.push(Cause::forbidden(
            f,
            "may only be used when `type` is 'LoadBalancer'",
        ));
    }
}

fn validate_service_update(new: &Value, old: &Value, c: &mut Vec<Cause>) {
    if !needs_cluster_ip(new) || !needs_cluster_ip(old) {
        return;
    }
    let old_ips = str_list(&old["spec"]["clusterIPs"]);
    let new_ips = str_list(&new["spec"]["clusterIPs"]);
    for i in 0..old_ips
        .len()
        .min(new_ips.len())
        .max(usize::from(!old_ips.is_empty()))
    {
        if old_ips.get(i) != new_ips.get(i) {
            c.push(Cause::invalid_value(
                &format!("spec.clusterIPs[{i}]"),
                &json!(new_ips),
                "may not change once set",
            ));
        }
    }
    let old_f = str_list(&old["spec"]["ipFamilies"]);
    let new_f = str_list(&new["spec"]["ipFamilies"]);
    for i in 0..old_f.len().min(new_f.len()) {
        if old_f[i] != new_f[i] {
            c.push(Cause::invalid_value(
                &format!("spec.ipFamilies[{i}]"),
                &json!(new_f),
                "may not change once set",
            ));
        }
    }
}

/// Defaults the Service status: `ingress[].ipMode` becomes `VIP` where `ip` is set.
pub fn default_service_status(new: &mut Value) {
    let Some(ingress) = new
        .get_mut("status")
        .and_then(|s| s.get_mut("loadBalancer"))
        .and_then(|l| l.get_mut("ingress"))
        .and_then(Value::as_array_mut)
    else {
        return;
    };
    for ing in ingress {
        let has_ip = ing
            .get("ip")
            .and_then(Value::as_str)
            .is_some_and(|s| !s.is_empty());
        if let Some(o) = ing.as_object_mut()
            && has_ip
            && o.get("ipMode").is_none_or(Value::is_null)
        {
            o.insert("ipMode".into(), json!("VIP"));
        }
    }
}

/// Validates `status.loadBalancer` of a Service (E34).
pub fn validate_service_status(new: &Value) -> Vec<Cause> {
    let mut c = Vec::new();
    let Some(ingress) = new["status"]["loadBalancer"]["ingress"].as_array() else {
        return c;
    };
    for (i, ing) in ingress.iter().enumerate() {
        let f = |s: &str| format!("status.loadBalancer.ingress[{i}].{s}");
        let ip = ing["ip"].as_str().unwrap_or("");
        if !ip.is_empty() && ip.parse::<IpAddr>().is_err() {
            c.push(Cause::invalid_value(
                &f("ip"),
                &ing["ip"],
                "must be a valid IP address",
            ));
        }
        match &ing["ipMode"] {
            Value::Null => {
                if !ip.is_empty() {
                    c.push(Cause::required(
                        &f("ipMode"),
                        "must be specified when `ip` is set",
                    ));
                }
            }
            m => {
                if ip.is_empty() {
                    c.push(Cause::forbidden(
                        &f("ipMode"),
                        "may not be specified when `ip` is not set",
                    ));
                } else if m.as_str() != Some("VIP") && m.as_str() != Some("Proxy") {
                    c.push(Cause::not_supported(&f("ipMode"), m, &["Proxy", "VIP"]));
                }
            }
        }
        let host = ing["hostname"].as_str().unwrap_or("");
        if !host.is_empty() {
            for m in dns1123_subdomain_errors(host) {
                c.push(Cause::invalid_value(&f("hostname"), &ing["hostname"], &m));
            }
            if host.parse::<IpAddr>().is_ok() {
                c.push(Cause::invalid_value(
                    &f("hostname"),
                    &ing["hostname"],
                    "must be a DNS name, not an IP address",
                ));
            }
        }
        if let Some(ports) = ing["ports"].as_array() {
            for (j, p) in ports.iter().enumerate() {
                let pf = |s: &str| format!("status.loadBalancer.ingress[{i}].ports[{j}].{s}");
                if !valid_port_number(&p["port"]) {
                    c.push(Cause::invalid_value(
                        &pf("port"),
                        &p["port"],
                        "must be between 1 and 65535, inclusive",
                    ));
                }
                match p["protocol"].as_str() {
                    None | Some("") => c.push(Cause::required(&pf("protocol"), "")),
                    Some(pr) if !PROTOCOLS.contains(&pr) => c.push(Cause::not_supported(
                        &pf("protocol"),
                        &p["protocol"],
                        PROTOCOLS,
                    )),
                    _ => {}
                }
                if let Some(e) = p["error"].as_str() {
                    for m in qualified_name_errors(e) {
                        c.push(Cause::invalid_value(&pf("error"), &p["error"], &m));
                    }
                }
            }
        }
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alloc() -> ServiceAllocator {
        ServiceAllocator::new(DEFAULT_V4_CIDR, None).unwrap()
    }

    fn dual() -> ServiceAllocator {
        ServiceAllocator::new(DEFAULT_V4_CIDR, Some(DEFAULT_V6_CIDR)).unwrap()
    }

    fn svc(name: &str, spec: Value) -> Value {
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": "default"}, "spec": spec})
    }

    fn lb(name: &str) -> Value {
        svc(
            name,
            json!({"type": "LoadBalancer", "ports": [{"port": 80}]}),
        )
    }

    fn fields(c: &[Cause]) -> Vec<&str> {
        c.iter().map(|c| c.field.as_str()).collect()
    }

    #[test]
    fn load_balancer_defaults() {
        let mut a = alloc();
        let mut s = lb("web");
        admit_service(&mut s, None, &mut a).unwrap();
        assert_eq!(
            s["spec"],
            json!({
                "type": "LoadBalancer",
                "ports": [{"port": 80, "protocol": "TCP", "targetPort": 80, "nodePort": 30000}],
                "sessionAffinity": "None",
                "internalTrafficPolicy": "Cluster",
                "externalTrafficPolicy": "Cluster",
                "allocateLoadBalancerNodePorts": true,
                "ipFamilyPolicy": "SingleStack",
                "ipFamilies": ["IPv4"],
                "clusterIP": "10.96.0.1",
                "clusterIPs": ["10.96.0.1"],
            })
        );
        let mut s2 = lb("web2");
        admit_service(&mut s2, None, &mut a).unwrap();
        assert_eq!(s2["spec"]["clusterIP"], "10.96.0.2");
        assert_eq!(s2["spec"]["ports"][0]["nodePort"], 30001);
        // Lowest free is reused after a delete.
        a.release(&s);
        let mut s3 = lb("web3");
        admit_service(&mut s3, None, &mut a).unwrap();
        assert_eq!(s3["spec"]["clusterIP"], "10.96.0.1");
        assert_eq!(s3["spec"]["ports"][0]["nodePort"], 30000);
    }

    #[test]
    fn cluster_ip_defaults_have_no_node_ports_or_external_policy() {
        let mut a = alloc();
        let mut s = svc(
            "c",
            json!({"ports": [{"port": 53, "protocol": "UDP", "targetPort": "dns"}]}),
        );
        admit_service(&mut s, None, &mut a).unwrap();
        assert_eq!(s["spec"]["type"], "ClusterIP");
        assert_eq!(
            s["spec"]["ports"][0],
            json!({"port": 53, "protocol": "UDP", "targetPort": "dns"})
        );
        assert!(s["spec"].get("externalTrafficPolicy").is_none());
        assert!(s["spec"].get("allocateLoadBalancerNodePorts").is_none());
        assert_eq!(s["spec"]["internalTrafficPolicy"], "Cluster");
    }

    #[test]
    fn local_policy_gets_health_check_port_and_no_alloc_skips_node_ports() {
        let mut a = alloc();
        let mut s = svc(
            "l",
            json!({"type": "LoadBalancer", "externalTrafficPolicy": "Local", "ports": [{"port": 80}]}),
        );
        admit_service(&mut s, None, &mut a).unwrap();
        assert_eq!(s["spec"]["ports"][0]["nodePort"], 30000);
        assert_eq!(s["spec"]["healthCheckNodePort"], 30001);
        let mut s = svc(
            "n",
            json!({"type": "LoadBalancer", "allocateLoadBalancerNodePorts": false, "ports": [{"port": 80}]}),
        );
        admit_service(&mut s, None, &mut a).unwrap();
        assert!(s["spec"]["ports"][0].get("nodePort").is_none());
        let mut s = svc(
            "m",
            json!({"type": "LoadBalancer", "allocateLoadBalancerNodePorts": false, "ports": [{"port": 80, "nodePort": 32000}]}),
        );
        admit_service(&mut s, None, &mut a).unwrap();
        assert!(a.port_in_use(32000));
    }

    #[test]
    fn headless_and_external_name() {
        let mut a = alloc();
        let mut s = svc("h", json!({"clusterIP": "None", "selector": {"app": "x"}}));
        admit_service(&mut s, None, &mut a).unwrap();
        assert_eq!(s["spec"]["clusterIPs"], json!(["None"]));
        assert_eq!(s["spec"]["ipFamilies"], json!(["IPv4"]));
        let mut s = svc(
            "e",
            json!({"type": "ExternalName", "externalName": "example.com"}),
        );
        admit_service(&mut s, None, &mut a).unwrap();
        assert!(s["spec"].get("clusterIP").is_none());
        assert!(s["spec"].get("ipFamilies").is_none());
        assert!(s["spec"].get("internalTrafficPolicy").is_none());
        let mut s = svc("e2", json!({"type": "ExternalName"}));
        assert_eq!(
            fields(&admit_service(&mut s, None, &mut a).unwrap_err()),
            ["spec.externalName"]
        );
        let mut s = svc(
            "h2",
            json!({"type": "LoadBalancer", "clusterIP": "None", "ports": [{"port": 1}]}),
        );
        assert!(admit_service(&mut s, None, &mut a).is_err());
    }

    #[test]
    fn requested_cluster_ips_and_ports() {
        let mut a = alloc();
        let mut s = svc(
            "a",
            json!({"clusterIP": "10.96.0.10", "type": "NodePort", "ports": [{"port": 80, "nodePort": 31000}]}),
        );
        admit_service(&mut s, None, &mut a).unwrap();
        assert_eq!(s["spec"]["clusterIPs"], json!(["10.96.0.10"]));
        assert!(a.ip_in_use("10.96.0.10".parse().unwrap()));
        assert!(a.port_in_use(31000));
        let rows = [
            (
                json!({"clusterIP": "10.96.0.10", "ports": [{"port": 80}]}),
                "spec.clusterIPs[0]",
                "already allocated",
            ),
            (
                json!({"clusterIP": "192.168.0.1", "ports": [{"port": 80}]}),
                "spec.clusterIPs[0]",
                "not in the valid range",
            ),
            (
                json!({"clusterIP": "10.96.0.0", "ports": [{"port": 80}]}),
                "spec.clusterIPs[0]",
                "not in the valid range",
            ),
            (
                json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 31000}]}),
                "spec.ports[0].nodePort",
                "already allocated",
            ),
            (
                json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 80}]}),
                "spec.ports[0].nodePort",
                "valid range",
            ),
            (
                json!({"ipFamilies": ["IPv6"], "ports": [{"port": 80}]}),
                "spec.ipFamilies[0]",
                "not configured",
            ),
            (
                json!({"ipFamilyPolicy": "RequireDualStack", "ports": [{"port": 80}]}),
                "spec.ipFamilyPolicy",
                "dual-stack",
            ),
            (
                json!({"ipFamilyPolicy": "SingleStack", "ipFamilies": ["IPv4", "IPv6"], "ports": [{"port": 80}]}),
                "spec.ipFamilies[1]",
                "not configured",
            ),
        ];
        for (spec, field, msg) in rows {
            let before = a.clone();
            let mut s = svc("b", spec.clone());
            let c = admit_service(&mut s, None, &mut a).unwrap_err();
            assert_eq!(fields(&c), [field], "{spec}");
            assert!(c[0].message.contains(msg), "{spec}: {}", c[0].message);
            // A rejected write allocates nothing.
            assert_eq!(format!("{:?}", a), format!("{:?}", before), "{spec}");
        }
        // Prefer dual-stack on a single-stack cluster degrades quietly.
        let mut s = svc(
            "p",
            json!({"ipFamilyPolicy": "PreferDualStack", "ports": [{"port": 80}]}),
        );
        admit_service(&mut s, None, &mut a).unwrap();
        assert_eq!(s["spec"]["ipFamilies"], json!(["IPv4"]));
    }

    #[test]
    fn same_node_port_for_tcp_and_udp_of_one_service() {
        let mut a = alloc();
        let mut s = svc(
            "dns",
            json!({"type": "NodePort", "ports": [
                {"name": "tcp", "port": 53, "protocol": "TCP", "nodePort": 30053},
                {"name": "udp", "port": 53, "protocol": "UDP", "nodePort": 30053}
            ]}),
        );
        admit_service(&mut s, None, &mut a).unwrap();
        a.release(&s);
        assert!(!a.port_in_use(30053));
    }

    #[test]
    fn dual_stack_allocation() {
        let mut a = dual();
        let mut s = svc(
            "d",
            json!({"ipFamilyPolicy": "PreferDualStack", "ports": [{"port": 80}]}),
        );
        admit_service(&mut s, None, &mut a).unwrap();
        assert_eq!(s["spec"]["ipFamilies"], json!(["IPv4", "IPv6"]));
        assert_eq!(
            s["spec"]["clusterIPs"],
            json!(["10.96.0.1", "fd00:10:96::1"])
        );
        let mut s = svc(
            "d6",
            json!({"ipFamilies": ["IPv6", "IPv4"], "ports": [{"port": 80}]}),
        );
        admit_service(&mut s, None, &mut a).unwrap();
        assert_eq!(s["spec"]["ipFamilyPolicy"], "RequireDualStack");
        assert_eq!(
            s["spec"]["clusterIPs"],
            json!(["fd00:10:96::2", "10.96.0.2"])
        );
        assert_eq!(s["spec"]["clusterIP"], "fd00:10:96::2");
        let mut s = svc(
            "ss",
            json!({"ipFamilyPolicy": "SingleStack", "ipFamilies": ["IPv4", "IPv6"], "ports": [{"port": 80}]}),
        );
        let c = admit_service(&mut s, None, &mut a).unwrap_err();
        assert_eq!(fields(&c), ["spec.ipFamilies"]);
        assert!(c[0].message.contains("SingleStack"));
        let mut s = svc(
            "v6",
            json!({"ipFamilies": ["IPv6"], "ports": [{"port": 80}]}),
        );
        admit_service(&mut s, None, &mut a).unwrap();
        assert_eq!(s["spec"]["clusterIPs"], json!(["fd00:10:96::3"]));
        assert_eq!(s["spec"]["ipFamilyPolicy"], "SingleStack");
    }

    #[test]
    fn update_keeps_allocations_and_rejects_changes() {
        let mut a = alloc();
        let mut old = lb("web");
        admit_service(&mut old, None, &mut a).unwrap();
        // A PUT/apply that omits allocated values keeps them.
        let mut new = lb("web");
        admit_service(&mut new, Some(&old), &mut a).unwrap();
        assert_eq!(new["spec"], old["spec"]);
        // Changing the cluster IP is rejected and leaves allocations as they were.
        let mut new = old.clone();
        new["spec"]["clusterIP"] = json!("10.96.0.9");
        new["spec"]["clusterIPs"] = json!(["10.96.0.9"]);
        let c = admit_service(&mut new, Some(&old), &mut a).unwrap_err();
        assert_eq!(fields(&c), ["spec.clusterIPs[0]"]);
        assert!(c[0].message.contains("may not change once set"));
        assert!(!a.ip_in_use("10.96.0.9".parse().unwrap()));
        assert!(a.ip_in_use("10.96.0.1".parse().unwrap()));
        assert!(a.port_in_use(30000));
    }

    #[test]
    fn type_change_away_from_lb_releases_node_ports() {
        let mut a = alloc();
        let mut old = svc(
            "web",
            json!({"type": "LoadBalancer", "externalTrafficPolicy": "Local", "loadBalancerClass": "ferrolb.io/lb", "ports": [{"port": 80}]}),
        );
        admit_service(&mut old, None, &mut a).unwrap();
        assert!(a.port_in_use(30000) && a.port_in_use(30001));
        let mut new = old.clone();
        new["spec"]["type"] = json!("ClusterIP");
        admit_service(&mut new, Some(&old), &mut a).unwrap();
        for k in [
            "healthCheckNodePort",
            "loadBalancerClass",
            "allocateLoadBalancerNodePorts",
            "externalTrafficPolicy",
        ] {
            assert!(new["spec"].get(k).is_none(), "{k}");
        }
        assert!(new["spec"]["ports"][0].get("nodePort").is_none());
        assert_eq!(new["spec"]["clusterIP"], "10.96.0.1");
        assert!(!a.port_in_use(30000) && !a.port_in_use(30001));
        // ... and to ExternalName releases the cluster IP too.
        let mut en = new.clone();
        en["spec"]["type"] = json!("ExternalName");
        en["spec"]["externalName"] = json!("example.com");
        admit_service(&mut en, Some(&new), &mut a).unwrap();
        assert!(en["spec"].get("clusterIP").is_none());
        assert!(!a.ip_in_use("10.96.0.1".parse().unwrap()));
    }

    #[test]
    fn observe_and_undo() {
        let mut a = alloc();
        let stored = svc(
            "s",
            json!({"type": "NodePort", "clusterIP": "10.96.0.1", "clusterIPs": ["10.96.0.1"], "ports": [{"port": 1, "nodePort": 30000}]}),
        );
        a.observe(&stored);
        let mut s = lb("t");
        default_service(&mut s, None, &mut a).unwrap();
        assert_eq!(s["spec"]["clusterIP"], "10.96.0.2");
        assert_eq!(s["spec"]["ports"][0]["nodePort"], 30001);
        a.undo(&s, None);
        assert!(!a.ip_in_use("10.96.0.2".parse().unwrap()));
        assert!(a.ip_in_use("10.96.0.1".parse().unwrap()));
    }

    #[test]
    fn validation_table() {
        let base = || {
            let mut s = lb("web");
            default_service(&mut s, None, &mut alloc()).unwrap();
            s
        };
        assert!(validate_service(&base(), None).is_empty());
        let rows: Vec<(Value, Vec<&str>)> = vec![
            (json!({"metadata": {"name": "1web"}}), vec!["metadata.name"]),
            (json!({"metadata": {"name": "a.b"}}), vec!["metadata.name"]),
            (
                json!({"spec": {"type": "Bogus"}}),
                vec![
                    "spec.type",
                    "spec.externalTrafficPolicy",
                    "spec.allocateLoadBalancerNodePorts",
                ],
            ),
            (
                json!({"spec": {"ports": [{"port": 80, "protocol": "TCP"}, {"port": 81, "protocol": "TCP"}]}}),
                vec!["spec.ports[0].name", "spec.ports[1].name"],
            ),
            (
                json!({"spec": {"ports": [{"port": 80, "protocol": "TCP", "name": "a"}, {"port": 80, "protocol": "TCP", "name": "b"}]}}),
                vec!["spec.ports[1]"],
            ),
            (
                json!({"spec": {"ports": [{"port": 80, "protocol": "TCP", "name": "a"}, {"port": 81, "protocol": "TCP", "name": "a"}]}}),
                vec!["spec.ports[1].name"],
            ),
            (
                json!({"spec": {"ports": [{"port": 0, "protocol": "TCP"}]}}),
                vec!["spec.ports[0].port"],
            ),
            (
                json!({"spec": {"ports": [{"port": 80, "protocol": "HTTP"}]}}),
                vec!["spec.ports[0].protocol"],
            ),
            (
                json!({"spec": {"ports": [{"port": 80, "protocol": "TCP", "targetPort": "Not_Valid"}]}}),
                vec!["spec.ports[0].targetPort"],
            ),
            (
                json!({"spec": {"ports": [{"port": 80, "protocol": "TCP", "name": "Web"}]}}),
                vec!["spec.ports[0].name"],
            ),
            (json!({"spec": {"ports": []}}), vec!["spec.ports"]),
            (
                json!({"spec": {"loadBalancerClass": "not a class"}}),
                vec!["spec.loadBalancerClass"],
            ),
            (
                json!({"spec": {"loadBalancerClass": "ferrolb.io/lb"}}),
                vec![],
            ),
            (
                json!({"spec": {"externalTrafficPolicy": "Sometimes"}}),
                vec!["spec.externalTrafficPolicy"],
            ),
            (
                json!({"spec": {"healthCheckNodePort": 31000}}),
                vec!["spec.healthCheckNodePort"],
            ),
            (
                json!({"spec": {"sessionAffinity": "Sticky"}}),
                vec!["spec.sessionAffinity"],
            ),
            (
                json!({"spec": {"loadBalancerSourceRanges": ["10.0.0.0/8", "nope"]}}),
                vec!["spec.loadBalancerSourceRanges[1]"],
            ),
            (
                json!({"spec": {"clusterIPs": ["10.96.0.1", "10.96.0.2"], "ipFamilies": ["IPv4", "IPv4"]}}),
                vec![
                    "spec.ipFamilies[1]",
                    "spec.clusterIPs[1]",
                    "spec.ipFamilies",
                ],
            ),
            (
                json!({"spec": {"clusterIP": "10.96.0.3"}}),
                vec!["spec.clusterIPs"],
            ),
            (
                json!({"spec": {"selector": {"app": "fd00::1"}}}),
                vec!["spec.selector"],
            ),
        ];
        for (patch, want) in rows {
            let mut s = base();
            crate::patch::merge_patch(&mut s, &patch);
            let c = validate_service(&s, None);
            assert_eq!(fields(&c), want, "{patch}: {c:?}");
        }
        // Type-dependent fields on a ClusterIP Service.
        let mut s = svc(
            "c",
            json!({"ports": [{"port": 80, "nodePort": 30000}], "loadBalancerClass": "ferrolb.io/lb", "allocateLoadBalancerNodePorts": true, "externalTrafficPolicy": "Cluster"}),
        );
        let c = admit_service(&mut s, None, &mut alloc()).unwrap_err();
        assert_eq!(
            fields(&c),
            [
                "spec.ports[0].nodePort",
                "spec.externalTrafficPolicy",
                "spec.allocateLoadBalancerNodePorts",
                "spec.loadBalancerClass"
            ]
        );
    }

    #[test]
    fn load_balancer_class_is_immutable_while_lb() {
        let mut a = alloc();
        let mut old = svc(
            "web",
            json!({"type": "LoadBalancer", "loadBalancerClass": "ferrolb.io/lb", "ports": [{"port": 80}]}),
        );
        admit_service(&mut old, None, &mut a).unwrap();
        for class in [json!("other.io/lb"), Value::Null] {
            let mut new = old.clone();
            new["spec"]["loadBalancerClass"] = class.clone();
            let c = admit_service(&mut new, Some(&old), &mut a).unwrap_err();
            assert_eq!(fields(&c), ["spec.loadBalancerClass"], "{class}");
            assert!(c[0].message.contains("may not change once set"));
        }
        // Setting a class while changing to LoadBalancer is fine.
        let mut cip = svc("c", json!({"ports": [{"port": 80}]}));
        admit_service(&mut cip, None, &mut a).unwrap();
        let mut new = cip.clone();
        new["spec"]["type"] = json!("LoadBalancer");
        new["spec"]["loadBalancerClass"] = json!("ferrolb.io/lb");
        admit_service(&mut new, Some(&cip), &mut a).unwrap();
        assert!(new["spec"]["ports"][0]["nodePort"].is_u64());
    }

    #[test]
    fn status_defaults_and_validation() {
        let mut s = json!({"status": {"loadBalancer": {"ingress": [{"ip": "10.0.0.1"}, {"hostname": "lb.example.com"}]}}});
        default_service_status(&mut s);
        assert_eq!(
            s["status"]["loadBalancer"]["ingress"],
            json!([{"ip": "10.0.0.1", "ipMode": "VIP"}, {"hostname": "lb.example.com"}])
        );
        assert!(validate_service_status(&s).is_empty());
        let rows: Vec<(Value, Vec<&str>)> = vec![
            (
                json!({"ip": "10.0.0.300", "ipMode": "VIP"}),
                vec!["status.loadBalancer.ingress[0].ip"],
            ),
            (json!({"ip": "fd00::1", "ipMode": "Proxy"}), vec![]),
            (
                json!({"ip": "10.0.0.1", "ipMode": "Magic"}),
                vec!["status.loadBalancer.ingress[0].ipMode"],
            ),
            (
                json!({"hostname": "h.example", "ipMode": "VIP"}),
                vec!["status.loadBalancer.ingress[0].ipMode"],
            ),
            (
                json!({"hostname": "10.0.0.1"}),
                vec!["status.loadBalancer.ingress[0].hostname"],
            ),
            (
                json!({"hostname": "Not_DNS"}),
                vec!["status.loadBalancer.ingress[0].hostname"],
            ),
            (
                json!({"ip": "10.0.0.1"}),
                vec!["status.loadBalancer.ingress[0].ipMode"],
            ),
            (
                json!({"ip": "10.0.0.1", "ipMode": "VIP", "ports": [{"port": 80, "protocol": "TCP"}]}),
                vec![],
            ),
            (
                json!({"ip": "10.0.0.1", "ipMode": "VIP", "ports": [{"port": 80, "protocol": "ICMP"}]}),
                vec!["status.loadBalancer.ingress[0].ports[0].protocol"],
            ),
            (
                json!({"ip": "10.0.0.1", "ipMode": "VIP", "ports": [{"port": 80}]}),
                vec!["status.loadBalancer.ingress[0].ports[0].protocol"],
            ),
        ];
        for (ing, want) in rows {
            let s = json!({"status": {"loadBalancer": {"ingress": [ing]}}});
            assert_eq!(fields(&validate_service_status(&s)), want, "{ing}");
        }
    }

    #[test]
    fn bulk_allocation_is_dense_and_reuses_holes() {
        let mut a = alloc().with_node_port_range(30000, 32767).unwrap();
        let start = std::time::Instant::now();
        let mut svcs = Vec::new();
        for i in 0..10_000 {
            let mut s = svc(&format!("s{i}"), json!({"ports": [{"port": 80}]}));
            admit_service(&mut s, None, &mut a).unwrap();
            svcs.push(s);
        }
        let elapsed = start.elapsed();
        // 10.96.0.1 .. 10.96.39.16: dense, no gaps, no duplicates.
        assert_eq!(svcs[9_999]["spec"]["clusterIP"], "10.96.39.16");
        let ips: BTreeSet<String> = svcs
            .iter()
            .map(|s| s["spec"]["clusterIP"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(ips.len(), 10_000);
        a.release(&svcs[500]);
        let mut s = svc("again", json!({"ports": [{"port": 80}]}));
        admit_service(&mut s, None, &mut a).unwrap();
        assert_eq!(s["spec"]["clusterIP"], svcs[500]["spec"]["clusterIP"]);
        // Generous bound (debug build, loaded machine); quadratic search took far longer.
        assert!(elapsed < std::time::Duration::from_secs(20), "{elapsed:?}");
        let mut ports = Vec::new();
        for i in 0..2768 {
            let mut s = svc(
                &format!("n{i}"),
                json!({"type": "NodePort", "ports": [{"port": 80}]}),
            );
            admit_service(&mut s, None, &mut a).unwrap();
            ports.push(s);
        }
        assert_eq!(ports[2767]["spec"]["ports"][0]["nodePort"], 32767);
        let mut s = svc("full", json!({"type": "NodePort", "ports": [{"port": 80}]}));
        assert!(admit_service(&mut s, None, &mut a).is_err());
        a.release(&ports[7]);
        admit_service(&mut s, None, &mut a).unwrap();
        assert_eq!(s["spec"]["ports"][0]["nodePort"], 30007);
    }

    #[test]
    fn allocator_config_errors() {
        assert!(ServiceAllocator::new("10.96.0.0", None).is_err());
        assert!(ServiceAllocator::new("fd00::/108", None).is_err());
        assert!(ServiceAllocator::new("10.96.0.0/12", Some("10.0.0.0/8")).is_err());
        assert!(ServiceAllocator::new("10.96.0.0/33", None).is_err());
        assert!(alloc().with_node_port_range(32000, 31000).is_err());
        // A tiny range fills up and says so.
        let mut a = ServiceAllocator::new("10.0.0.0/30", None)
            .unwrap()
            .with_node_port_range(30000, 30000)
            .unwrap();
        let mut s = lb("a");
        admit_service(&mut s, None, &mut a).unwrap();
        assert_eq!(s["spec"]["clusterIP"], "10.0.0.1");
        let mut s = svc("b", json!({"ports": [{"port": 80}]}));
        admit_service(&mut s, None, &mut a).unwrap();
        assert_eq!(s["spec"]["clusterIP"], "10.0.0.2");
        let mut s = lb("c");
        let c = admit_service(&mut s, None, &mut a).unwrap_err();
        assert_eq!(fields(&c), ["spec.clusterIPs[0]", "spec.ports[0].nodePort"]);
    }
}
