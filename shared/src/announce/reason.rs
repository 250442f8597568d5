//! Why a Service IP is not announced to a peer, as stable strings.

use std::fmt;

/// Why this node does not announce a Service IP to a peer.
///
/// [`Reason::as_str`] is stable API: it appears in `ferrolb explain`, metrics labels, events
/// and the per-node status, and scripts may match on it. Add variants; never rename one.
///
/// When several reasons hold at once, [`decide`](super::decide) reports the first in the
/// order below (the declaration order, also [`Reason::ALL`]): what concerns the whole node,
/// then the address, then the peer, then which advertisement applies, and last the
/// endpoints. Configuration problems are shown before health, so `explain` points at what
/// will not fix itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Reason {
    /// `nodeExcluded`: the node carries the label
    /// `node.kubernetes.io/exclude-from-external-load-balancers` (any value), so it
    /// announces nothing.
    NodeExcluded,
    /// `nodeNotReady`: the node's `Ready` condition is not `True`.
    NodeNotReady,
    /// `nodeNetworkUnavailable`: the node's `NetworkUnavailable` condition is `True`.
    NodeNetworkUnavailable,
    /// `ipNotInPool`: no `IPAddressPool` contains the address (the pool was deleted or
    /// shrunk, or the address was set by someone else).
    IpNotInPool,
    /// `peerNodeMismatch`: the `BGPPeer`'s `nodeSelectors` do not select this node, so this
    /// node has no session with that peer.
    PeerNodeMismatch,
    /// `addressFamilyMismatch`: the address is IPv4 and the peer's address IPv6, or the
    /// other way round. A session's own local address is the next hop, which cannot be an
    /// address of the other family, so a session only carries prefixes of its own family.
    AddressFamilyMismatch,
    /// `noAdvertisement`: no `BGPAdvertisement` covers the address's pool (neither by
    /// `ipAddressPools`, nor by `ipAddressPoolSelectors`, nor by leaving both empty).
    NoAdvertisement,
    /// `advertisementNodeMismatch`: advertisements cover the pool, but none of them selects
    /// this node with its `nodeSelectors`.
    AdvertisementNodeMismatch,
    /// `advertisementServiceMismatch`: advertisements cover the pool and select this node,
    /// but none of those selects the Service with its `serviceSelectors`.
    AdvertisementServiceMismatch,
    /// `advertisementPeerMismatch`: advertisements cover the pool and select this node and
    /// the Service, but none of those lists this peer in `peers` (empty means every peer).
    AdvertisementPeerMismatch,
    /// `noEndpoints`: the Service has no ready endpoint on any node, and no serving
    /// (terminating) one either. This is the health-based withdrawal.
    NoEndpoints,
    /// `noLocalEndpoints`: `externalTrafficPolicy: Local` and this node has no ready or
    /// serving endpoint of the Service, while some other node has one.
    NoLocalEndpoints,
    /// `localEndpointsTerminating`: `externalTrafficPolicy: Local`, this node's endpoints
    /// are all terminating (serving but not ready), and another node has a ready one: the
    /// route is withdrawn so traffic drains to the healthy nodes.
    LocalEndpointsTerminating,
    /// `noIPAssigned`: the Service has no address in its status yet. Only in
    /// [`Explanation`](super::Explanation)s: without an address there is nothing to decide.
    NoIpAssigned,
    /// `noPeers`: no `BGPPeer` exists. Only in [`Explanation`](super::Explanation)s.
    NoPeers,
}

impl Reason {
    /// Every reason, in precedence order (the first that holds is reported).
    pub const ALL: [Reason; 15] = [
        Self::NodeExcluded,
        Self::NodeNotReady,
        Self::NodeNetworkUnavailable,
        Self::IpNotInPool,
        Self::PeerNodeMismatch,
        Self::AddressFamilyMismatch,
        Self::NoAdvertisement,
        Self::AdvertisementNodeMismatch,
        Self::AdvertisementServiceMismatch,
        Self::AdvertisementPeerMismatch,
        Self::NoEndpoints,
        Self::NoLocalEndpoints,
        Self::LocalEndpointsTerminating,
        Self::NoIpAssigned,
        Self::NoPeers,
    ];

    /// The stable lowerCamelCase name, e.g. `noLocalEndpoints`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NodeExcluded => "nodeExcluded",
            Self::NodeNotReady => "nodeNotReady",
            Self::NodeNetworkUnavailable => "nodeNetworkUnavailable",
            Self::IpNotInPool => "ipNotInPool",
            Self::PeerNodeMismatch => "peerNodeMismatch",
            Self::AddressFamilyMismatch => "addressFamilyMismatch",
            Self::NoAdvertisement => "noAdvertisement",
            Self::AdvertisementNodeMismatch => "advertisementNodeMismatch",
            Self::AdvertisementServiceMismatch => "advertisementServiceMismatch",
            Self::AdvertisementPeerMismatch => "advertisementPeerMismatch",
            Self::NoEndpoints => "noEndpoints",
            Self::NoLocalEndpoints => "noLocalEndpoints",
            Self::LocalEndpointsTerminating => "localEndpointsTerminating",
            Self::NoIpAssigned => "noIPAssigned",
            Self::NoPeers => "noPeers",
        }
    }

    /// The reason spelled out for people, e.g. in `ferrolb explain`.
    pub fn description(self) -> &'static str {
        match self {
            Self::NodeExcluded => {
                "the node has the label node.kubernetes.io/exclude-from-external-load-balancers"
            }
            Self::NodeNotReady => "the node is not Ready",
            Self::NodeNetworkUnavailable => "the node's NetworkUnavailable condition is True",
            Self::IpNotInPool => "the address is in no IPAddressPool",
            Self::PeerNodeMismatch => "the BGPPeer's nodeSelectors do not select this node",
            Self::AddressFamilyMismatch => {
                "the address and the BGPPeer's address are of different IP families"
            }
            Self::NoAdvertisement => "no BGPAdvertisement covers the address's pool",
            Self::AdvertisementNodeMismatch => {
                "no BGPAdvertisement covering the pool selects this node"
            }
            Self::AdvertisementServiceMismatch => {
                "no BGPAdvertisement covering the pool and this node selects the Service"
            }
            Self::AdvertisementPeerMismatch => {
                "no BGPAdvertisement covering the pool, this node and the Service names this peer"
            }
            Self::NoEndpoints => "the Service has no ready or serving endpoint on any node",
            Self::NoLocalEndpoints => {
                "externalTrafficPolicy is Local and this node has no ready or serving endpoint"
            }
            Self::LocalEndpointsTerminating => {
                "externalTrafficPolicy is Local, this node's endpoints are terminating and another node has ready ones"
            }
            Self::NoIpAssigned => "the Service has no address in its status",
            Self::NoPeers => "no BGPPeer is configured",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
