//! Address families and NLRI prefix encoding (RFC 4271 §4.3, RFC 4760 §5).
//!
//! Each prefix is a length in bits followed by the fewest octets that hold it:
//!
//! ```text
//! +---------------------------+
//! |   Length (1 octet)        |
//! +---------------------------+
//! |   Prefix (variable)       |
//! +---------------------------+
//! ```

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use super::reader::Reader;

/// Address Family Identifier for IPv4.
pub const AFI_IPV4: u16 = 1;
/// Address Family Identifier for IPv6.
pub const AFI_IPV6: u16 = 2;
/// Subsequent Address Family Identifier for unicast.
pub const SAFI_UNICAST: u8 = 1;

/// The address families this speaker understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Family {
    /// AFI 1 / SAFI 1.
    Ipv4Unicast,
    /// AFI 2 / SAFI 1.
    Ipv6Unicast,
}

impl Family {
    /// Both families, in a stable order.
    pub const ALL: [Family; 2] = [Family::Ipv4Unicast, Family::Ipv6Unicast];

    /// The AFI number.
    pub fn afi(self) -> u16 {
        match self {
            Family::Ipv4Unicast => AFI_IPV4,
            Family::Ipv6Unicast => AFI_IPV6,
        }
    }

    /// The SAFI number.
    pub fn safi(self) -> u8 {
        SAFI_UNICAST
    }

    /// The family for an AFI/SAFI pair, if we support it.
    pub fn from_afi_safi(afi: u16, safi: u8) -> Option<Self> {
        match (afi, safi) {
            (AFI_IPV4, SAFI_UNICAST) => Some(Family::Ipv4Unicast),
            (AFI_IPV6, SAFI_UNICAST) => Some(Family::Ipv6Unicast),
            _ => None,
        }
    }

    /// The family a prefix belongs to.
    pub fn of(prefix: &IpNet) -> Self {
        match prefix {
            IpNet::V4(_) => Family::Ipv4Unicast,
            IpNet::V6(_) => Family::Ipv6Unicast,
        }
    }

    fn max_prefix_len(self) -> u8 {
        match self {
            Family::Ipv4Unicast => 32,
            Family::Ipv6Unicast => 128,
        }
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Family::Ipv4Unicast => "ipv4-unicast",
            Family::Ipv6Unicast => "ipv6-unicast",
        })
    }
}

/// The next hop carried in NEXT_HOP or MP_REACH_NLRI.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NextHop {
    /// An IPv4 next hop (4 octets).
    V4(Ipv4Addr),
    /// An IPv6 next hop: the global address (16 octets), optionally followed
    /// by a link-local address (32 octets in all, RFC 2545 §3).
    V6 {
        /// Global unicast address.
        global: Ipv6Addr,
        /// Link-local address, if sent.
        link_local: Option<Ipv6Addr>,
    },
}

impl NextHop {
    /// An IPv6 next hop with only a global address.
    pub fn v6(global: Ipv6Addr) -> Self {
        NextHop::V6 {
            global,
            link_local: None,
        }
    }

    pub(crate) fn encoded_len(&self) -> usize {
        match self {
            NextHop::V4(_) => 4,
            NextHop::V6 {
                link_local: None, ..
            } => 16,
            NextHop::V6 {
                link_local: Some(_),
                ..
            } => 32,
        }
    }

    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        match self {
            NextHop::V4(a) => out.extend_from_slice(&a.octets()),
            NextHop::V6 { global, link_local } => {
                out.extend_from_slice(&global.octets());
                if let Some(ll) = link_local {
                    out.extend_from_slice(&ll.octets());
                }
            }
        }
    }

    /// Decodes a next hop of the given length for a family; `None` if the
    /// length does not suit the family.
    pub(crate) fn decode(family: Family, bytes: &[u8]) -> Option<Self> {
        match (family, bytes.len()) {
            (Family::Ipv4Unicast, 4) => {
                let o: [u8; 4] = bytes.try_into().ok()?;
                Some(NextHop::V4(Ipv4Addr::from(o)))
            }
            (Family::Ipv6Unicast, 16) => {
                let g: [u8; 16] = bytes.try_into().ok()?;
                Some(NextHop::v6(Ipv6Addr::from(g)))
            }
            (Family::Ipv6Unicast, 32) => {
                let g: [u8; 16] = bytes.get(..16)?.try_into().ok()?;
                let l: [u8; 16] = bytes.get(16..)?.try_into().ok()?;
                Some(NextHop::V6 {
                    global: Ipv6Addr::from(g),
                    link_local: Some(Ipv6Addr::from(l)),
                })
            }
            _ => None,
        }
    }

    /// Whether this next hop can be carried for `family`.
    pub fn suits(&self, family: Family) -> bool {
        matches!(
            (self, family),
            (NextHop::V4(_), Family::Ipv4Unicast) | (NextHop::V6 { .. }, Family::Ipv6Unicast)
        )
    }
}

/// Octets one prefix occupies on the wire.
pub fn prefix_encoded_len(prefix: &IpNet) -> usize {
    1 + usize::from(prefix.prefix_len()).div_ceil(8)
}

/// Appends one prefix; host bits beyond the prefix length are cleared.
pub(crate) fn encode_prefix(prefix: &IpNet, out: &mut Vec<u8>) {
    let len = prefix.prefix_len();
    let n = usize::from(len).div_ceil(8);
    out.push(len);
    match prefix.trunc() {
        IpNet::V4(p) => out.extend_from_slice(&p.addr().octets()[..n]),
        IpNet::V6(p) => out.extend_from_slice(&p.addr().octets()[..n]),
    }
}

/// Decodes a run of prefixes filling `bytes`. `None` on a prefix length too
/// long for the family or a prefix running past the end (RFC 4271 §6.3
/// "Invalid Network Field"). Host bits are cleared, as RFC 4271 §4.3 says
/// trailing bits are irrelevant.
pub(crate) fn decode_prefixes(family: Family, bytes: &[u8]) -> Option<Vec<IpNet>> {
    let mut r = Reader::new(bytes);
    // Every prefix takes at least one octet, so this bounds the allocation by the input.
    let mut out = Vec::with_capacity(bytes.len().min(1024));
    while !r.is_empty() {
        let len = r.u8()?;
        if len > family.max_prefix_len() {
            return None;
        }
        let raw = r.take(usize::from(len).div_ceil(8))?;
        let net = match family {
            Family::Ipv4Unicast => {
                let mut o = [0u8; 4];
                o[..raw.len()].copy_from_slice(raw);
                IpNet::V4(Ipv4Net::new(Ipv4Addr::from(o), len).ok()?.trunc())
            }
            Family::Ipv6Unicast => {
                let mut o = [0u8; 16];
                o[..raw.len()].copy_from_slice(raw);
                IpNet::V6(Ipv6Net::new(Ipv6Addr::from(o), len).ok()?.trunc())
            }
        };
        out.push(net);
    }
    Some(out)
}

pub(crate) fn decode_ipv4_prefixes(bytes: &[u8]) -> Option<Vec<Ipv4Net>> {
    Some(
        decode_prefixes(Family::Ipv4Unicast, bytes)?
            .into_iter()
            .filter_map(|p| match p {
                IpNet::V4(p) => Some(p),
                IpNet::V6(_) => None,
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    #[test]
    fn prefixes_use_the_fewest_octets() {
        let mut out = Vec::new();
        for s in ["10.0.0.0/8", "192.168.1.128/25", "0.0.0.0/0", "1.2.3.4/32"] {
            encode_prefix(&p(s), &mut out);
        }
        assert_eq!(out, [8, 10, 25, 192, 168, 1, 128, 0, 32, 1, 2, 3, 4]);
        let back = decode_prefixes(Family::Ipv4Unicast, &out).unwrap();
        assert_eq!(
            back,
            ["10.0.0.0/8", "192.168.1.128/25", "0.0.0.0/0", "1.2.3.4/32"].map(p)
        );
    }

    #[test]
    fn host_bits_are_cleared_both_ways() {
        let mut out = Vec::new();
        encode_prefix(&p("10.1.2.3/8"), &mut out);
        assert_eq!(out, [8, 10]);
        assert_eq!(
            decode_prefixes(Family::Ipv4Unicast, &[7, 0xff]).unwrap(),
            [p("254.0.0.0/7")]
        );
    }

    #[test]
    fn invalid_lengths_and_truncation_are_rejected() {
        assert!(decode_prefixes(Family::Ipv4Unicast, &[33, 1, 2, 3, 4, 5]).is_none());
        assert!(decode_prefixes(Family::Ipv4Unicast, &[24, 10, 0]).is_none());
        assert!(decode_prefixes(Family::Ipv6Unicast, &[129]).is_none());
        let v6 =
            decode_prefixes(Family::Ipv6Unicast, &[64, 0x20, 1, 0xd, 0xb8, 0, 0, 0, 1]).unwrap();
        assert_eq!(v6, [p("2001:db8:0:1::/64")]);
    }
}
