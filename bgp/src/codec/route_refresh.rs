//! ROUTE-REFRESH messages (RFC 2918 §3; the reserved octet became a message
//! subtype in RFC 7313).
//!
//! ```text
//!  0       7      15      23      31
//! +-------+-------+-------+-------+
//! |      AFI      | Res.  | SAFI  |
//! +-------+-------+-------+-------+
//! ```

use super::nlri::Family;

/// A request that the peer re-advertise its Adj-RIB-Out for one AFI/SAFI.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RouteRefresh {
    /// AFI.
    pub afi: u16,
    /// Reserved octet / RFC 7313 subtype (0 = normal request).
    pub subtype: u8,
    /// SAFI.
    pub safi: u8,
}

impl RouteRefresh {
    /// A normal request for one of our families.
    pub fn new(family: Family) -> Self {
        Self {
            afi: family.afi(),
            subtype: 0,
            safi: family.safi(),
        }
    }

    /// The family asked for, if we support it.
    pub fn family(&self) -> Option<Family> {
        Family::from_afi_safi(self.afi, self.safi)
    }

    pub(crate) fn encode_body(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.afi.to_be_bytes());
        out.push(self.subtype);
        out.push(self.safi);
    }

    pub(crate) fn decode_body(body: &[u8]) -> Option<Self> {
        match body {
            [a0, a1, subtype, safi] => Some(Self {
                afi: u16::from_be_bytes([*a0, *a1]),
                subtype: *subtype,
                safi: *safi,
            }),
            _ => None,
        }
    }
}
