//! Path attributes (RFC 4271 §4.3, §5) and their encodings.
//!
//! Every attribute is a triple `<type, length, value>`:
//!
//! ```text
//!  0                   1
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |  Attr. Flags  |Attr. Type Code|  then Attr. Length: 1 octet, or 2 octets
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+  when the Extended Length flag is set
//!
//! Flags: O(ptional)=0x80  T(ransitive)=0x40  P(artial)=0x20  E(xtended length)=0x10
//! ```

use std::net::Ipv4Addr;

use ipnet::IpNet;

use super::error::EncodeError;
use super::nlri::{Family, NextHop, encode_prefix};
use super::open::AS_TRANS;

/// Attribute flag: optional (else well-known).
pub const FLAG_OPTIONAL: u8 = 0x80;
/// Attribute flag: transitive.
pub const FLAG_TRANSITIVE: u8 = 0x40;
/// Attribute flag: partial.
pub const FLAG_PARTIAL: u8 = 0x20;
/// Attribute flag: the length field is 2 octets.
pub const FLAG_EXTENDED_LENGTH: u8 = 0x10;

/// Attribute type codes.
pub mod type_code {
    /// ORIGIN, well-known mandatory.
    pub const ORIGIN: u8 = 1;
    /// AS_PATH, well-known mandatory.
    pub const AS_PATH: u8 = 2;
    /// NEXT_HOP, well-known mandatory for IPv4 NLRI.
    pub const NEXT_HOP: u8 = 3;
    /// MULTI_EXIT_DISC, optional non-transitive.
    pub const MED: u8 = 4;
    /// LOCAL_PREF, well-known (iBGP).
    pub const LOCAL_PREF: u8 = 5;
    /// ATOMIC_AGGREGATE, well-known discretionary.
    pub const ATOMIC_AGGREGATE: u8 = 6;
    /// AGGREGATOR, optional transitive.
    pub const AGGREGATOR: u8 = 7;
    /// COMMUNITIES (RFC 1997), optional transitive.
    pub const COMMUNITIES: u8 = 8;
    /// MP_REACH_NLRI (RFC 4760), optional non-transitive.
    pub const MP_REACH_NLRI: u8 = 14;
    /// MP_UNREACH_NLRI (RFC 4760), optional non-transitive.
    pub const MP_UNREACH_NLRI: u8 = 15;
    /// LARGE_COMMUNITY (RFC 8092), optional transitive.
    pub const LARGE_COMMUNITIES: u8 = 32;
}

/// ORIGIN values (RFC 4271 §5.1.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Origin {
    /// 0: learned from an IGP (what a load balancer announces).
    Igp,
    /// 1: learned from EGP.
    Egp,
    /// 2: learned some other way.
    Incomplete,
}

impl Origin {
    pub(crate) fn from_u8(v: u8) -> Option<Self> {
        match v {
            0 => Some(Origin::Igp),
            1 => Some(Origin::Egp),
            2 => Some(Origin::Incomplete),
            _ => None,
        }
    }

    fn to_u8(self) -> u8 {
        match self {
            Origin::Igp => 0,
            Origin::Egp => 1,
            Origin::Incomplete => 2,
        }
    }
}

/// AS_PATH segment types (RFC 4271 §4.3, RFC 5065 for confederations).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SegmentType {
    /// 1: unordered set.
    AsSet,
    /// 2: ordered sequence.
    AsSequence,
    /// 3: confederation sequence.
    ConfedSequence,
    /// 4: confederation set.
    ConfedSet,
}

impl SegmentType {
    pub(crate) fn from_u8(v: u8) -> Option<Self> {
        match v {
            1 => Some(SegmentType::AsSet),
            2 => Some(SegmentType::AsSequence),
            3 => Some(SegmentType::ConfedSequence),
            4 => Some(SegmentType::ConfedSet),
            _ => None,
        }
    }

    fn to_u8(self) -> u8 {
        match self {
            SegmentType::AsSet => 1,
            SegmentType::AsSequence => 2,
            SegmentType::ConfedSequence => 3,
            SegmentType::ConfedSet => 4,
        }
    }
}

/// One AS_PATH segment: `type (1) | count (1) | ASNs (2 or 4 octets each)`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AsSegment {
    /// Segment type.
    pub kind: SegmentType,
    /// ASNs; never empty once decoded (an empty segment is malformed, RFC 7606 §7.2).
    pub asns: Vec<u32>,
}

/// The AS_PATH attribute. Empty for routes we originate over iBGP; our own
/// ASN as a one-element sequence over eBGP.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct AsPath {
    /// Segments in order.
    pub segments: Vec<AsSegment>,
}

impl AsPath {
    /// An AS_SEQUENCE of the given ASNs (empty path if none).
    pub fn sequence(asns: impl IntoIterator<Item = u32>) -> Self {
        let asns: Vec<u32> = asns.into_iter().collect();
        if asns.is_empty() {
            return Self::default();
        }
        Self {
            segments: vec![AsSegment {
                kind: SegmentType::AsSequence,
                asns,
            }],
        }
    }

    /// Encodes with 2- or 4-octet ASNs; segments longer than 255 ASNs are
    /// split, and empty segments are skipped (they would be malformed). In
    /// 2-octet mode, ASNs above 65535 become AS_TRANS (RFC 6793 §4.2.2).
    fn encode_value(&self, four_octet: bool, out: &mut Vec<u8>) {
        for seg in &self.segments {
            for chunk in seg.asns.chunks(255) {
                out.push(seg.kind.to_u8());
                out.push(chunk.len() as u8);
                for asn in chunk {
                    if four_octet {
                        out.extend_from_slice(&asn.to_be_bytes());
                    } else {
                        let a = u16::try_from(*asn).unwrap_or(AS_TRANS);
                        out.extend_from_slice(&a.to_be_bytes());
                    }
                }
            }
        }
    }
}

/// A large community (RFC 8092): three 4-octet values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LargeCommunity {
    /// Global Administrator (normally an ASN).
    pub global_admin: u32,
    /// Local Data Part 1.
    pub local_data1: u32,
    /// Local Data Part 2.
    pub local_data2: u32,
}

/// AGGREGATOR (RFC 4271 §5.1.7): the ASN (2 or 4 octets per session) and
/// address of the aggregating speaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Aggregator {
    /// Aggregating ASN.
    pub asn: u32,
    /// Aggregating speaker's BGP address.
    pub address: Ipv4Addr,
}

/// MP_REACH_NLRI (RFC 4760 §3).
///
/// ```text
/// +---------------------------------------------------------+
/// | Address Family Identifier (2 octets)                    |
/// +---------------------------------------------------------+
/// | Subsequent Address Family Identifier (1 octet)          |
/// +---------------------------------------------------------+
/// | Length of Next Hop Network Address (1 octet)            |
/// +---------------------------------------------------------+
/// | Network Address of Next Hop (variable)                  |
/// +---------------------------------------------------------+
/// | Reserved (1 octet)                                      |
/// +---------------------------------------------------------+
/// | Network Layer Reachability Information (variable)       |
/// +---------------------------------------------------------+
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MpReach {
    /// Family of the next hop and prefixes.
    pub family: Family,
    /// Next hop (16 or 32 octets for IPv6).
    pub next_hop: NextHop,
    /// Reachable prefixes.
    pub prefixes: Vec<IpNet>,
}

/// MP_UNREACH_NLRI (RFC 4760 §4): `AFI (2) | SAFI (1) | Withdrawn Routes`.
/// With no prefixes it is the End-of-RIB marker for its family (RFC 4724 §2).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MpUnreach {
    /// Family of the prefixes.
    pub family: Family,
    /// Withdrawn prefixes.
    pub prefixes: Vec<IpNet>,
}

/// An attribute we do not interpret, kept as received.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RawAttribute {
    /// Flags as received, without the Extended Length bit (recomputed on encode).
    pub flags: u8,
    /// Type code.
    pub type_code: u8,
    /// Value.
    pub value: Vec<u8>,
}

/// A path attribute.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PathAttribute {
    /// ORIGIN.
    Origin(Origin),
    /// AS_PATH.
    AsPath(AsPath),
    /// NEXT_HOP (IPv4 NLRI only).
    NextHop(Ipv4Addr),
    /// MULTI_EXIT_DISC.
    Med(u32),
    /// LOCAL_PREF.
    LocalPref(u32),
    /// ATOMIC_AGGREGATE.
    AtomicAggregate,
    /// AGGREGATOR.
    Aggregator(Aggregator),
    /// COMMUNITIES (RFC 1997), each `ASN:value` packed in 4 octets.
    Communities(Vec<u32>),
    /// LARGE_COMMUNITY (RFC 8092).
    LargeCommunities(Vec<LargeCommunity>),
    /// MP_REACH_NLRI.
    MpReach(MpReach),
    /// MP_UNREACH_NLRI.
    MpUnreach(MpUnreach),
    /// An optional transitive attribute we do not interpret (RFC 4271 §5:
    /// kept so it could be passed on; unknown non-transitive ones are dropped).
    Raw(RawAttribute),
}

impl PathAttribute {
    /// The type code.
    pub fn type_code(&self) -> u8 {
        match self {
            PathAttribute::Origin(_) => type_code::ORIGIN,
            PathAttribute::AsPath(_) => type_code::AS_PATH,
            PathAttribute::NextHop(_) => type_code::NEXT_HOP,
            PathAttribute::Med(_) => type_code::MED,
            PathAttribute::LocalPref(_) => type_code::LOCAL_PREF,
            PathAttribute::AtomicAggregate => type_code::ATOMIC_AGGREGATE,
            PathAttribute::Aggregator(_) => type_code::AGGREGATOR,
            PathAttribute::Communities(_) => type_code::COMMUNITIES,
            PathAttribute::LargeCommunities(_) => type_code::LARGE_COMMUNITIES,
            PathAttribute::MpReach(_) => type_code::MP_REACH_NLRI,
            PathAttribute::MpUnreach(_) => type_code::MP_UNREACH_NLRI,
            PathAttribute::Raw(r) => r.type_code,
        }
    }

    /// The flags this attribute is sent with (before the Extended Length bit).
    pub fn flags(&self) -> u8 {
        match self {
            PathAttribute::Raw(r) => r.flags & !FLAG_EXTENDED_LENGTH & 0xf0,
            other => expected_flags(other.type_code()).unwrap_or(FLAG_OPTIONAL | FLAG_TRANSITIVE),
        }
    }

    /// Appends flags, type, length and value.
    pub(crate) fn encode(&self, four_octet_as: bool, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        let mut value = Vec::new();
        match self {
            PathAttribute::Origin(o) => value.push(o.to_u8()),
            PathAttribute::AsPath(p) => p.encode_value(four_octet_as, &mut value),
            PathAttribute::NextHop(a) => value.extend_from_slice(&a.octets()),
            PathAttribute::Med(v) | PathAttribute::LocalPref(v) => {
                value.extend_from_slice(&v.to_be_bytes())
            }
            PathAttribute::AtomicAggregate => {}
            PathAttribute::Aggregator(a) => {
                if four_octet_as {
                    value.extend_from_slice(&a.asn.to_be_bytes());
                } else {
                    let asn = u16::try_from(a.asn).unwrap_or(AS_TRANS);
                    value.extend_from_slice(&asn.to_be_bytes());
                }
                value.extend_from_slice(&a.address.octets());
            }
            PathAttribute::Communities(cs) => {
                for c in cs {
                    value.extend_from_slice(&c.to_be_bytes());
                }
            }
            PathAttribute::LargeCommunities(cs) => {
                for c in cs {
                    value.extend_from_slice(&c.global_admin.to_be_bytes());
                    value.extend_from_slice(&c.local_data1.to_be_bytes());
                    value.extend_from_slice(&c.local_data2.to_be_bytes());
                }
            }
            PathAttribute::MpReach(m) => {
                if !m.next_hop.suits(m.family) {
                    return Err(EncodeError::NextHopFamilyMismatch {
                        next_hop: m.next_hop,
                        family: m.family,
                    });
                }
                value.extend_from_slice(&m.family.afi().to_be_bytes());
                value.push(m.family.safi());
                value.push(m.next_hop.encoded_len() as u8);
                m.next_hop.encode(&mut value);
                value.push(0);
                encode_family_prefixes(m.family, &m.prefixes, &mut value)?;
            }
            PathAttribute::MpUnreach(m) => {
                value.extend_from_slice(&m.family.afi().to_be_bytes());
                value.push(m.family.safi());
                encode_family_prefixes(m.family, &m.prefixes, &mut value)?;
            }
            PathAttribute::Raw(r) => value.extend_from_slice(&r.value),
        }
        encode_header_and_value(self.flags(), self.type_code(), &value, out)
    }
}

fn encode_family_prefixes(
    family: Family,
    prefixes: &[IpNet],
    out: &mut Vec<u8>,
) -> Result<(), EncodeError> {
    for p in prefixes {
        if Family::of(p) != family {
            return Err(EncodeError::PrefixFamilyMismatch { prefix: *p, family });
        }
        encode_prefix(p, out);
    }
    Ok(())
}

pub(crate) fn encode_header_and_value(
    flags: u8,
    type_code: u8,
    value: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), EncodeError> {
    let flags = flags & 0xf0 & !FLAG_EXTENDED_LENGTH;
    if let Ok(len) = u8::try_from(value.len()) {
        out.extend_from_slice(&[flags, type_code, len]);
    } else {
        let len = u16::try_from(value.len()).map_err(|_| EncodeError::AttributeTooLong {
            type_code,
            len: value.len(),
        })?;
        out.extend_from_slice(&[flags | FLAG_EXTENDED_LENGTH, type_code]);
        out.extend_from_slice(&len.to_be_bytes());
    }
    out.extend_from_slice(value);
    Ok(())
}

/// Optional and Transitive bits each known attribute must carry
/// (RFC 4271 §5, RFC 4760, RFC 1997, RFC 8092); `None` for unknown types.
pub(crate) fn expected_flags(type_code: u8) -> Option<u8> {
    use type_code::*;
    match type_code {
        ORIGIN | AS_PATH | NEXT_HOP | LOCAL_PREF | ATOMIC_AGGREGATE => Some(FLAG_TRANSITIVE),
        MED | MP_REACH_NLRI | MP_UNREACH_NLRI => Some(FLAG_OPTIONAL),
        AGGREGATOR | COMMUNITIES | LARGE_COMMUNITIES => Some(FLAG_OPTIONAL | FLAG_TRANSITIVE),
        _ => None,
    }
}
