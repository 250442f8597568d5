//! `validate()` for each CRD spec, producing the parsed forms the controller, speaker and
//! BGP engine work with.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use ipnet::IpNet;

use super::address::{IpFamily, IpRange, parse_address_entry};
use super::bgp::{
    BgpTimers, Community, DEFAULT_CONNECT_TIME, DEFAULT_HOLD_TIME, TimerError,
    check_hold_keepalive, parse_duration, validate_asn, whole_seconds,
};
use super::error::{ConfigError, ConfigWarning, Problem};
use super::selector::{ParsedSelector, is_dns_label, is_dns_subdomain, parse_selectors};
use crate::crd::{
    BGPAdvertisement, BGPAdvertisementSpec, BGPPeer, BGPPeerSpec, IPAddressPool, IPAddressPoolSpec,
    SecretKeyReference,
};

/// A validated `IPAddressPool` spec.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParsedPool {
    /// The address entries in the order written; never empty, never overlapping each other.
    pub ranges: Vec<IpRange>,
    /// `autoAssign`.
    pub auto_assign: bool,
    /// `avoidBuggyIPs`.
    pub avoid_buggy_ips: bool,
    /// `serviceAllocation`, if set.
    pub allocation: Option<ParsedServiceAllocation>,
}

impl ParsedPool {
    /// The ranges of one family.
    pub fn ranges_of(&self, family: IpFamily) -> impl Iterator<Item = &IpRange> {
        self.ranges.iter().filter(move |r| r.family() == family)
    }

    /// Whether `addr` belongs to the pool (ignoring `avoidBuggyIPs`).
    pub fn contains(&self, addr: IpAddr) -> bool {
        self.ranges.iter().any(|r| r.contains(addr))
    }

    /// Whether `addr` may be handed out: in the pool and, with `avoidBuggyIPs`, not an IPv4
    /// address ending in `.0` or `.255`.
    pub fn is_assignable(&self, addr: IpAddr) -> bool {
        self.contains(addr) && !(self.avoid_buggy_ips && is_buggy(addr))
    }

    /// Number of assignable addresses of `family` (saturating at `u128::MAX`).
    pub fn capacity(&self, family: IpFamily) -> u128 {
        self.ranges_of(family).fold(0u128, |acc, r| {
            let n = if self.avoid_buggy_ips {
                r.len() - r.buggy_len()
            } else {
                r.len()
            };
            acc.saturating_add(n)
        })
    }

    /// Every range as minimal CIDRs.
    pub fn cidrs(&self) -> Vec<IpNet> {
        self.ranges.iter().flat_map(IpRange::to_cidrs).collect()
    }

    /// The longest prefix length among the pool's CIDRs of `family`: the shortest
    /// aggregation length an advertisement may use for this pool. `None` if the pool has no
    /// address of that family.
    pub fn max_prefix_len(&self, family: IpFamily) -> Option<u8> {
        self.ranges_of(family)
            .flat_map(IpRange::to_cidrs)
            .map(|n| n.prefix_len())
            .max()
    }
}

/// Whether an address is one `avoidBuggyIPs` skips: IPv4 ending in `.0` or `.255`.
pub fn is_buggy(addr: IpAddr) -> bool {
    match addr {
        IpAddr::V4(a) => matches!(a.octets()[3], 0 | 255),
        IpAddr::V6(_) => false,
    }
}

/// A validated `serviceAllocation`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ParsedServiceAllocation {
    /// Lower is tried first; `None` after every pool with a priority.
    pub priority: Option<i32>,
    /// Namespaces allowed by name.
    pub namespaces: BTreeSet<String>,
    /// Namespaces allowed by label.
    pub namespace_selectors: Vec<ParsedSelector>,
    /// Services allowed by label.
    pub service_selectors: Vec<ParsedSelector>,
}

impl IPAddressPoolSpec {
    /// Checks the spec; returns the parsed pool or every problem found.
    pub fn validate(&self) -> Result<ParsedPool, Vec<ConfigError>> {
        let mut errors = Vec::new();
        if self.addresses.is_empty() {
            errors.push(ConfigError::new("spec.addresses", Problem::Empty));
        }
        let mut ranges: Vec<(usize, IpRange)> = Vec::new();
        for (i, entry) in self.addresses.iter().enumerate() {
            let path = format!("spec.addresses[{i}]");
            match parse_address_entry(entry) {
                Ok(range) => {
                    for (j, earlier) in &ranges {
                        if let Some(shared) = earlier.intersection(&range) {
                            errors.push(ConfigError::new(
                                &path,
                                Problem::OverlapWithinPool {
                                    range: shared.to_string(),
                                    other_index: *j,
                                    other: self.addresses[*j].clone(),
                                },
                            ));
                        }
                    }
                    ranges.push((i, range));
                }
                Err(e) => errors.push(ConfigError::new(path, e)),
            }
        }
        let allocation = self.service_allocation.as_ref().map(|a| {
            let mut namespaces = BTreeSet::new();
            for (i, ns) in a.namespaces.iter().enumerate() {
                let path = format!("spec.serviceAllocation.namespaces[{i}]");
                if !is_dns_label(ns) {
                    errors.push(ConfigError::new(
                        path,
                        Problem::InvalidName {
                            value: ns.clone(),
                            what: "namespace name",
                            reason: "must be a DNS label (1-63 lowercase alphanumerics or '-')",
                        },
                    ));
                } else if !namespaces.insert(ns.clone()) {
                    errors.push(ConfigError::new(
                        path,
                        Problem::Duplicate { value: ns.clone() },
                    ));
                }
            }
            ParsedServiceAllocation {
                priority: a.priority,
                namespaces,
                namespace_selectors: parse_selectors(
                    &a.namespace_selectors,
                    "spec.serviceAllocation.namespaceSelectors",
                    &mut errors,
                ),
                service_selectors: parse_selectors(
                    &a.service_selectors,
                    "spec.serviceAllocation.serviceSelectors",
                    &mut errors,
                ),
            }
        });
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(ParsedPool {
            ranges: ranges.into_iter().map(|(_, r)| r).collect(),
            auto_assign: self.auto_assign,
            avoid_buggy_ips: self.avoid_buggy_ips,
            allocation,
        })
    }
}

impl IPAddressPool {
    /// Checks the spec; see [`IPAddressPoolSpec::validate`].
    pub fn validate(&self) -> Result<ParsedPool, Vec<ConfigError>> {
        self.spec.validate()
    }
}

/// A validated `BGPPeer` spec.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParsedPeer {
    /// Our AS.
    pub my_asn: u32,
    /// The peer's AS.
    pub peer_asn: u32,
    /// The peer's address.
    pub peer_address: IpAddr,
    /// The peer's TCP port (non-zero).
    pub peer_port: u16,
    /// Local address to bind, same family as `peer_address`.
    pub source_address: Option<IpAddr>,
    /// Hold, keepalive and connect times with defaults applied.
    pub timers: BgpTimers,
    /// BGP identifier override.
    pub router_id: Option<Ipv4Addr>,
    /// Nodes that peer (empty: all).
    pub node_selectors: Vec<ParsedSelector>,
    /// Where the MD5 password is; the password itself is never held here.
    pub password_secret: Option<SecretKeyReference>,
    /// `ebgpMultiHop`.
    pub ebgp_multi_hop: bool,
    /// `enableGracefulRestart`.
    pub graceful_restart: bool,
}

impl ParsedPeer {
    /// Whether the session is internal BGP (same AS on both sides).
    pub fn is_ibgp(&self) -> bool {
        self.my_asn == self.peer_asn
    }
}

impl BGPPeerSpec {
    /// Checks the spec; returns the parsed peer or every problem found.
    ///
    /// Timer defaults: hold 90 s; keepalive a third of the hold time (rounded down, so 0 for
    /// hold 0); connect 10 s.
    pub fn validate(&self) -> Result<ParsedPeer, Vec<ConfigError>> {
        let mut errors = Vec::new();
        let my_asn = validate_asn(self.my_asn)
            .map_err(|e| errors.push(ConfigError::new("spec.myASN", e)))
            .ok();
        let peer_asn = validate_asn(self.peer_asn)
            .map_err(|e| errors.push(ConfigError::new("spec.peerASN", e)))
            .ok();
        let peer_address = parse_endpoint_ip(&self.peer_address, "spec.peerAddress", &mut errors);
        let peer_port = match u16::try_from(self.peer_port) {
            Ok(p) if p != 0 => Some(p),
            _ => {
                errors.push(ConfigError::new(
                    "spec.peerPort",
                    Problem::PortOutOfRange {
                        value: self.peer_port,
                    },
                ));
                None
            }
        };
        let source_address = self.source_address.as_deref().and_then(|s| {
            let src = parse_endpoint_ip(s, "spec.sourceAddress", &mut errors)?;
            if let Some(peer) = peer_address
                && IpFamily::of(peer) != IpFamily::of(src)
            {
                errors.push(ConfigError::new(
                    "spec.sourceAddress",
                    Problem::FamilyMismatch {
                        source_address: src.to_string(),
                        peer: peer.to_string(),
                    },
                ));
            }
            Some(src)
        });
        let timers = self.validate_timers(&mut errors);
        let router_id = self
            .router_id
            .as_deref()
            .and_then(|s| match s.parse::<Ipv4Addr>() {
                Ok(id) if !id.is_unspecified() => Some(id),
                _ => {
                    errors.push(ConfigError::new(
                        "spec.routerID",
                        Problem::InvalidRouterId {
                            value: s.to_owned(),
                        },
                    ));
                    None
                }
            });
        let node_selectors =
            parse_selectors(&self.node_selectors, "spec.nodeSelectors", &mut errors);
        if let Some(secret) = &self.password_secret {
            check_secret_ref(secret, "spec.passwordSecret", &mut errors);
        }
        match (my_asn, peer_asn, peer_address, peer_port, timers) {
            (Some(my_asn), Some(peer_asn), Some(peer_address), Some(peer_port), Some(timers))
                if errors.is_empty() =>
            {
                Ok(ParsedPeer {
                    my_asn,
                    peer_asn,
                    peer_address,
                    peer_port,
                    source_address,
                    timers,
                    router_id,
                    node_selectors,
                    password_secret: self.password_secret.clone(),
                    ebgp_multi_hop: self.ebgp_multi_hop,
                    graceful_restart: self.enable_graceful_restart,
                })
            }
            _ => Err(errors),
        }
    }

    fn validate_timers(&self, errors: &mut Vec<ConfigError>) -> Option<BgpTimers> {
        let before = errors.len();
        let mut seconds = |value: Option<&str>, path: &str| -> Option<Option<u64>> {
            let Some(value) = value else {
                return Some(None);
            };
            let parsed = parse_duration(value)
                .map_err(Problem::from)
                .and_then(|d| whole_seconds(value, d).map_err(Problem::from));
            match parsed {
                Ok(s) => Some(Some(s)),
                Err(p) => {
                    errors.push(ConfigError::new(path, p));
                    None
                }
            }
        };
        let hold = seconds(self.hold_time.as_deref(), "spec.holdTime");
        let keepalive = seconds(self.keepalive_time.as_deref(), "spec.keepaliveTime");
        let connect = match self.connect_time.as_deref() {
            None => Some(DEFAULT_CONNECT_TIME),
            Some(value) => match parse_duration(value) {
                Ok(Duration::ZERO) => {
                    errors.push(ConfigError::new(
                        "spec.connectTime",
                        TimerError::ZeroConnectTime,
                    ));
                    None
                }
                Ok(d) => Some(d),
                Err(e) => {
                    errors.push(ConfigError::new("spec.connectTime", e));
                    None
                }
            },
        };
        let (Some(hold), Some(keepalive)) = (hold, keepalive) else {
            return None;
        };
        let hold = hold.unwrap_or(DEFAULT_HOLD_TIME.as_secs());
        let keepalive = keepalive.unwrap_or(hold / 3);
        if let Err(e) = check_hold_keepalive(hold, keepalive) {
            // Blame the field the user wrote; a defaulted keepalive can only clash because
            // of the hold time.
            let path = match e {
                TimerError::HoldTooShort { .. } | TimerError::HoldTooLong { .. } => "spec.holdTime",
                _ if self.keepalive_time.is_some() => "spec.keepaliveTime",
                _ => "spec.holdTime",
            };
            errors.push(ConfigError::new(path, e));
        }
        if errors.len() != before {
            return None;
        }
        let connect = connect?;
        Some(BgpTimers {
            hold_time: u16::try_from(hold).ok()?,
            keepalive_time: u16::try_from(keepalive).ok()?,
            connect_time: connect,
        })
    }
}

impl BGPPeer {
    /// Checks the spec; see [`BGPPeerSpec::validate`].
    pub fn validate(&self) -> Result<ParsedPeer, Vec<ConfigError>> {
        self.spec.validate()
    }
}

fn parse_endpoint_ip(value: &str, path: &str, errors: &mut Vec<ConfigError>) -> Option<IpAddr> {
    match value.parse::<IpAddr>() {
        Ok(ip)
            if ip.is_unspecified()
                || ip.is_multicast()
                || ip == IpAddr::V4(Ipv4Addr::BROADCAST) =>
        {
            errors.push(ConfigError::new(
                path,
                Problem::UnusableIp {
                    value: ip.to_string(),
                },
            ));
            None
        }
        Ok(ip) => Some(ip),
        Err(_) => {
            errors.push(ConfigError::new(
                path,
                Problem::InvalidIp {
                    value: value.to_owned(),
                },
            ));
            None
        }
    }
}

fn check_secret_ref(secret: &SecretKeyReference, path: &str, errors: &mut Vec<ConfigError>) {
    if !is_dns_subdomain(&secret.name) {
        errors.push(ConfigError::new(
            format!("{path}.name"),
            Problem::InvalidName {
                value: secret.name.clone(),
                what: "Secret name",
                reason: "must be a DNS subdomain",
            },
        ));
    }
    if let Some(ns) = &secret.namespace
        && !is_dns_label(ns)
    {
        errors.push(ConfigError::new(
            format!("{path}.namespace"),
            Problem::InvalidName {
                value: ns.clone(),
                what: "namespace name",
                reason: "must be a DNS label",
            },
        ));
    }
    let key_ok = !secret.key.is_empty()
        && secret.key.len() <= 253
        && secret
            .key
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'));
    if !key_ok {
        errors.push(ConfigError::new(
            format!("{path}.key"),
            Problem::InvalidName {
                value: secret.key.clone(),
                what: "Secret key",
                reason: "must be 1-253 alphanumerics, '-', '_' or '.'",
            },
        ));
    }
}

/// A validated `BGPAdvertisement` spec.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParsedAdvertisement {
    /// Pools by name.
    pub ip_address_pools: BTreeSet<String>,
    /// Pools by label.
    pub ip_address_pool_selectors: Vec<ParsedSelector>,
    /// Services by label (empty: all).
    pub service_selectors: Vec<ParsedSelector>,
    /// Announcing nodes by label (empty: all).
    pub node_selectors: Vec<ParsedSelector>,
    /// Peers by name (empty: all).
    pub peers: BTreeSet<String>,
    /// IPv4 announcement prefix length, 0..=32.
    pub aggregation_length: u8,
    /// IPv6 announcement prefix length, 0..=128.
    pub aggregation_length_v6: u8,
    /// LOCAL_PREF for iBGP peers.
    pub local_pref: Option<u32>,
    /// Communities, standard and large, deduplicated in the order written.
    pub communities: Vec<Community>,
}

impl ParsedAdvertisement {
    /// Whether the advertisement covers every pool (no names and no selectors given).
    pub fn selects_all_pools(&self) -> bool {
        self.ip_address_pools.is_empty() && self.ip_address_pool_selectors.is_empty()
    }

    /// The announcement prefix length for addresses of `family`.
    pub fn aggregation_length_for(&self, family: IpFamily) -> u8 {
        match family {
            IpFamily::V4 => self.aggregation_length,
            IpFamily::V6 => self.aggregation_length_v6,
        }
    }

    /// The prefix to announce for a Service address: the address masked to the aggregation
    /// length of its family.
    pub fn announced_prefix(&self, addr: IpAddr) -> IpNet {
        let len = self.aggregation_length_for(IpFamily::of(addr));
        IpNet::new(addr, len)
            .map(|n| n.trunc())
            .unwrap_or_else(|_| IpNet::from(addr))
    }

    /// Checks the aggregation lengths against one pool this advertisement announces: an
    /// aggregate shorter than a pool CIDR's prefix would cover addresses outside the pool
    /// (MetalLB applies the same rule).
    pub fn check_pool(&self, pool_name: &str, pool: &ParsedPool) -> Vec<ConfigError> {
        let mut errors = Vec::new();
        for (family, length, path) in [
            (
                IpFamily::V4,
                self.aggregation_length,
                "spec.aggregationLength",
            ),
            (
                IpFamily::V6,
                self.aggregation_length_v6,
                "spec.aggregationLengthV6",
            ),
        ] {
            let worst = pool
                .ranges_of(family)
                .flat_map(IpRange::to_cidrs)
                .max_by_key(|n| n.prefix_len());
            if let Some(cidr) = worst
                && length < cidr.prefix_len()
            {
                errors.push(ConfigError::new(
                    path,
                    Problem::AggregationTooShort {
                        length,
                        pool: pool_name.to_owned(),
                        cidr: cidr.to_string(),
                        prefix: cidr.prefix_len(),
                    },
                ));
            }
        }
        errors
    }

    /// Warnings about the peers this advertisement announces to: `localPref` is only sent
    /// on iBGP sessions (RFC 4271 §5.1.5), so setting it for eBGP-only targets does nothing.
    pub fn peer_warnings<'a>(
        &self,
        peers: impl IntoIterator<Item = (&'a str, &'a ParsedPeer)>,
    ) -> Vec<ConfigWarning> {
        let Some(pref) = self.local_pref else {
            return Vec::new();
        };
        peers
            .into_iter()
            .filter(|(_, p)| !p.is_ibgp())
            .map(|(name, _)| ConfigWarning {
                path: "spec.localPref".to_owned(),
                message: format!(
                    "localPref {pref} is not sent to peer {name:?}: LOCAL_PREF is only used on iBGP sessions"
                ),
            })
            .collect()
    }
}

impl BGPAdvertisementSpec {
    /// Checks the spec on its own; returns the parsed advertisement or every problem found.
    /// Checks that need the pools or peers are [`ParsedAdvertisement::check_pool`] and
    /// [`ParsedAdvertisement::peer_warnings`].
    pub fn validate(&self) -> Result<ParsedAdvertisement, Vec<ConfigError>> {
        let mut errors = Vec::new();
        let names = |list: &[String], path: &str, errors: &mut Vec<ConfigError>| {
            let mut set = BTreeSet::new();
            for (i, name) in list.iter().enumerate() {
                let at = format!("{path}[{i}]");
                if !is_dns_subdomain(name) {
                    errors.push(ConfigError::new(
                        at,
                        Problem::InvalidName {
                            value: name.clone(),
                            what: "object name",
                            reason: "must be a DNS subdomain",
                        },
                    ));
                } else if !set.insert(name.clone()) {
                    errors.push(ConfigError::new(
                        at,
                        Problem::Duplicate {
                            value: name.clone(),
                        },
                    ));
                }
            }
            set
        };
        let ip_address_pools = names(&self.ip_address_pools, "spec.ipAddressPools", &mut errors);
        let peers = names(&self.peers, "spec.peers", &mut errors);
        let ip_address_pool_selectors = parse_selectors(
            &self.ip_address_pool_selectors,
            "spec.ipAddressPoolSelectors",
            &mut errors,
        );
        let service_selectors = parse_selectors(
            &self.service_selectors,
            "spec.serviceSelectors",
            &mut errors,
        );
        let node_selectors =
            parse_selectors(&self.node_selectors, "spec.nodeSelectors", &mut errors);
        let mut length = |value: i32, max: u8, path: &str| match u8::try_from(value) {
            Ok(v) if v <= max => v,
            _ => {
                errors.push(ConfigError::new(
                    path,
                    Problem::AggregationOutOfRange { value, max },
                ));
                max
            }
        };
        let aggregation_length = length(self.aggregation_length, 32, "spec.aggregationLength");
        let aggregation_length_v6 =
            length(self.aggregation_length_v6, 128, "spec.aggregationLengthV6");
        let local_pref = self.local_pref.and_then(|v| match u32::try_from(v) {
            Ok(v) => Some(v),
            Err(_) => {
                errors.push(ConfigError::new(
                    "spec.localPref",
                    Problem::LocalPrefOutOfRange { value: v },
                ));
                None
            }
        });
        let mut communities = Vec::new();
        for (i, c) in self.communities.iter().enumerate() {
            let at = format!("spec.communities[{i}]");
            match Community::parse(c) {
                Ok(parsed) if communities.contains(&parsed) => {
                    errors.push(ConfigError::new(
                        at,
                        Problem::Duplicate { value: c.clone() },
                    ));
                }
                Ok(parsed) => communities.push(parsed),
                Err(e) => errors.push(ConfigError::new(at, e)),
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(ParsedAdvertisement {
            ip_address_pools,
            ip_address_pool_selectors,
            service_selectors,
            node_selectors,
            peers,
            aggregation_length,
            aggregation_length_v6,
            local_pref,
            communities,
        })
    }
}

impl BGPAdvertisement {
    /// Checks the spec; see [`BGPAdvertisementSpec::validate`].
    pub fn validate(&self) -> Result<ParsedAdvertisement, Vec<ConfigError>> {
        self.spec.validate()
    }
}
