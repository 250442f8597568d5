//! Why a Service gets no address (or not the one it asked for): one variant per cause, each
//! with a stable reason string (for events and metric labels) and a message for humans.

use std::net::IpAddr;

use super::range::IpFamily;
use super::types::{Protocol, ServiceKey};

/// Why two Services may not share an address.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SharingConflict {
    /// This Service has no sharing key.
    #[error("this Service has no sharing key")]
    NotSharing,
    /// The holder has no sharing key.
    #[error("the Service holding it has no sharing key")]
    HolderNotSharing,
    /// The keys differ.
    #[error("sharing key {ours:?} differs from the holder's {theirs:?}")]
    KeyMismatch {
        /// This Service's key.
        ours: String,
        /// The holder's key.
        theirs: String,
    },
    /// Both use the same protocol and port.
    #[error("both Services use port {port}/{protocol}")]
    PortClash {
        /// Protocol.
        protocol: Protocol,
        /// Port.
        port: u16,
    },
    /// With `externalTrafficPolicy: Local`, both must be `Local` and select the same pods.
    #[error(
        "with externalTrafficPolicy Local, both Services must use Local and select the same pods"
    )]
    DifferentPods,
}

impl SharingConflict {
    /// Stable short reason.
    pub fn reason(&self) -> &'static str {
        match self {
            SharingConflict::NotSharing => "NotSharing",
            SharingConflict::HolderNotSharing => "HolderNotSharing",
            SharingConflict::KeyMismatch { .. } => "KeyMismatch",
            SharingConflict::PortClash { .. } => "PortClash",
            SharingConflict::DifferentPods => "DifferentPods",
        }
    }
}

/// Why the allocator refused a Service an address.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// No pool admits the Service automatically (none exists, all are `autoAssign: false`, or
    /// their `serviceAllocation` excludes it).
    #[error("no address pool may assign an address to this Service automatically")]
    NoPoolForService,
    /// The pool asked for by name does not exist.
    #[error("address pool {pool:?} does not exist")]
    PoolNotFound {
        /// The name asked for.
        pool: String,
    },
    /// The pool asked for by name excludes this Service (`serviceAllocation`).
    #[error("address pool {pool:?} does not admit this Service (serviceAllocation)")]
    PoolNotAllowed {
        /// The name asked for.
        pool: String,
    },
    /// Every pool the Service may use that has the family is full.
    #[error("no free {family} address left in pool(s) {}", .pools.join(", "))]
    PoolExhausted {
        /// The family that ran out.
        family: IpFamily,
        /// The pools tried.
        pools: Vec<String>,
    },
    /// No pool the Service may use has addresses of a family it requires.
    #[error("no address pool this Service may use has {family} addresses")]
    FamilyUnavailable {
        /// The family missing.
        family: IpFamily,
    },
    /// The address is in no pool the Service may use (or not in the pool it named).
    #[error("{ip} is not in {}", match .pool { Some(p) => format!("pool {p:?}"), None => "any address pool this Service may use".to_owned() })]
    RequestedIpNotInAllowedPool {
        /// The address.
        ip: IpAddr,
        /// The pool the Service named, if it did.
        pool: Option<String>,
    },
    /// The address ends in `.0` or `.255` and its pool sets `avoidBuggyIPs`.
    #[error("{ip} is skipped by pool {pool:?} (avoidBuggyIPs)")]
    RequestedIpAvoided {
        /// The address.
        ip: IpAddr,
        /// The pool.
        pool: String,
    },
    /// The address lies where pools overlap; overlapping parts are never handed out.
    #[error("{ip} lies in overlapping pools {}; overlapping addresses are not assigned", .pools.join(", "))]
    RequestedIpInOverlap {
        /// The address.
        ip: IpAddr,
        /// The pools that overlap there.
        pools: Vec<String>,
    },
    /// Another Service holds the address and this one does not ask to share.
    #[error("{ip} is already assigned to {holder}")]
    RequestedIpInUse {
        /// The address.
        ip: IpAddr,
        /// A Service holding it.
        holder: ServiceKey,
    },
    /// The address is still in another Service's status, waiting to be released.
    #[error("{ip} is still held by {holder} until its status is updated")]
    RequestedIpReleasing {
        /// The address.
        ip: IpAddr,
        /// The Service that still shows it.
        holder: ServiceKey,
    },
    /// Another Service holds the address and sharing rules forbid sharing it.
    #[error("{ip} is assigned to {holder} and cannot be shared: {conflict}")]
    SharingRefused {
        /// The address.
        ip: IpAddr,
        /// The Service holding it.
        holder: ServiceKey,
        /// Which rule failed.
        conflict: SharingConflict,
    },
    /// The Service holds an address it no longer asks for (its requested addresses changed).
    #[error("{ip} is no longer among the addresses this Service requests")]
    IpNotRequested {
        /// The address.
        ip: IpAddr,
    },
    /// The requested addresses do not fit `ipFamilyPolicy`/`ipFamilies` (two of one family,
    /// a second one for a single-stack Service, a missing one for `RequireDualStack`, …).
    #[error("requested addresses do not fit the Service's IP families: {detail}")]
    InvalidRequestedIps {
        /// What is wrong.
        detail: String,
    },
}

impl Refusal {
    /// Stable reason, for event reasons and metric labels. Never changes once released.
    pub fn reason(&self) -> &'static str {
        match self {
            Refusal::NoPoolForService => "NoPoolForService",
            Refusal::PoolNotFound { .. } => "PoolNotFound",
            Refusal::PoolNotAllowed { .. } => "PoolNotAllowed",
            Refusal::PoolExhausted { .. } => "PoolExhausted",
            Refusal::FamilyUnavailable { .. } => "FamilyUnavailable",
            Refusal::RequestedIpNotInAllowedPool { .. } => "RequestedIPNotInAllowedPool",
            Refusal::RequestedIpAvoided { .. } => "RequestedIPAvoided",
            Refusal::RequestedIpInOverlap { .. } => "RequestedIPInOverlap",
            Refusal::RequestedIpInUse { .. } => "RequestedIPInUse",
            Refusal::RequestedIpReleasing { .. } => "RequestedIPReleasing",
            Refusal::SharingRefused { .. } => "SharingRefused",
            Refusal::IpNotRequested { .. } => "IPNotRequested",
            Refusal::InvalidRequestedIps { .. } => "InvalidRequestedIPs",
        }
    }

    /// Human-readable message for a Warning event.
    pub fn message(&self) -> String {
        self.to_string()
    }
}
