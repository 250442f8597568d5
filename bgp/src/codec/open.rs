//! OPEN messages (RFC 4271 §4.2) and capabilities (RFC 5492).
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+
//! |    Version    |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |     My Autonomous System      |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |           Hold Time           |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                         BGP Identifier                        |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! | Opt Parm Len  |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |             Optional Parameters (variable)                    |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//!
//! Each optional parameter is `Parm. Type (1) | Parm. Length (1) | Value`;
//! type 2 holds capabilities, each `Code (1) | Length (1) | Value`. RFC 9072
//! extended parameters (Opt Parm Len 255, then type 255 and a 2-octet length,
//! and 2-octet parameter lengths) are decoded, and used when encoding only if
//! the capabilities do not fit in 255 octets.

use std::net::Ipv4Addr;

use super::error::{DecodeError, EncodeError};
use super::nlri::Family;
use super::notification::{code, open as sub};
use super::reader::Reader;

/// BGP version 4, the only one we speak.
pub const BGP_VERSION: u8 = 4;
/// AS_TRANS (RFC 6793 §9): put in "My AS" when our ASN does not fit 2 octets.
pub const AS_TRANS: u16 = 23456;

const PARAM_CAPABILITIES: u8 = 2;
const PARAM_EXTENDED: u8 = 255;

/// Capability codes (IANA "Capability Codes").
pub mod capability_code {
    /// Multiprotocol Extensions (RFC 4760).
    pub const MULTIPROTOCOL: u8 = 1;
    /// Route Refresh (RFC 2918).
    pub const ROUTE_REFRESH: u8 = 2;
    /// Graceful Restart (RFC 4724).
    pub const GRACEFUL_RESTART: u8 = 64;
    /// Support for 4-octet AS number (RFC 6793).
    pub const FOUR_OCTET_AS: u8 = 65;
}

/// One graceful-restart family entry (RFC 4724 §3).
///
/// ```text
/// +--------------------------------------------------+
/// | Address Family Identifier (16 bits)              |
/// +--------------------------------------------------+
/// | Subsequent Address Family Identifier (8 bits)    |
/// +--------------------------------------------------+
/// | Flags for Address Family (8 bits)                |
/// +--------------------------------------------------+
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct GracefulRestartFamily {
    /// AFI.
    pub afi: u16,
    /// SAFI.
    pub safi: u8,
    /// Flags; bit 0x80 is F ("forwarding state preserved").
    pub flags: u8,
}

impl GracefulRestartFamily {
    /// The F bit.
    pub const FORWARDING: u8 = 0x80;

    /// An entry for one of our families.
    pub fn new(family: Family, forwarding_preserved: bool) -> Self {
        Self {
            afi: family.afi(),
            safi: family.safi(),
            flags: if forwarding_preserved {
                Self::FORWARDING
            } else {
                0
            },
        }
    }

    /// Whether the peer kept forwarding state for this family.
    pub fn forwarding_preserved(&self) -> bool {
        self.flags & Self::FORWARDING != 0
    }

    /// The family, if it is one we support.
    pub fn family(&self) -> Option<Family> {
        Family::from_afi_safi(self.afi, self.safi)
    }
}

/// The Graceful Restart capability (RFC 4724 §3).
///
/// ```text
/// +--------------------------------------------------+
/// | Restart Flags (4 bits) | Restart Time (12 bits)  |
/// +--------------------------------------------------+
/// | per-AFI/SAFI entries (4 octets each)             |
/// +--------------------------------------------------+
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct GracefulRestart {
    /// The 4 restart flag bits (R = 0x8, N = 0x4 per RFC 8538).
    pub restart_flags: u8,
    /// Restart time in seconds (12 bits).
    pub restart_time: u16,
    /// Families whose routes the peer may retain.
    pub families: Vec<GracefulRestartFamily>,
}

impl GracefulRestart {
    /// The R (Restart State) flag.
    pub const RESTART_STATE: u8 = 0x8;
    /// The N (graceful Notification) flag, RFC 8538.
    pub const NOTIFICATION: u8 = 0x4;

    /// Whether the sender has just restarted.
    pub fn restarting(&self) -> bool {
        self.restart_flags & Self::RESTART_STATE != 0
    }
}

/// A capability advertised in OPEN (RFC 5492 §4).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Capability {
    /// Multiprotocol Extensions for one AFI/SAFI (RFC 4760 §8): `AFI (2) | Res. (1) | SAFI (1)`.
    Multiprotocol {
        /// AFI.
        afi: u16,
        /// SAFI.
        safi: u8,
    },
    /// Route Refresh (RFC 2918 §2), empty value.
    RouteRefresh,
    /// Graceful Restart (RFC 4724).
    GracefulRestart(GracefulRestart),
    /// 4-octet AS number (RFC 6793 §3): the sender's full ASN.
    FourOctetAs(u32),
    /// A capability we do not interpret, kept as received (RFC 5492 §3:
    /// unknown capabilities are ignored, not an error).
    Unknown {
        /// Capability code.
        code: u8,
        /// Raw value.
        value: Vec<u8>,
    },
}

impl Capability {
    /// Multiprotocol capability for one of our families.
    pub fn multiprotocol(family: Family) -> Self {
        Capability::Multiprotocol {
            afi: family.afi(),
            safi: family.safi(),
        }
    }

    /// The capability code.
    pub fn code(&self) -> u8 {
        match self {
            Capability::Multiprotocol { .. } => capability_code::MULTIPROTOCOL,
            Capability::RouteRefresh => capability_code::ROUTE_REFRESH,
            Capability::GracefulRestart(_) => capability_code::GRACEFUL_RESTART,
            Capability::FourOctetAs(_) => capability_code::FOUR_OCTET_AS,
            Capability::Unknown { code, .. } => *code,
        }
    }

    fn value(&self) -> Vec<u8> {
        match self {
            Capability::Multiprotocol { afi, safi } => {
                let a = afi.to_be_bytes();
                vec![a[0], a[1], 0, *safi]
            }
            Capability::RouteRefresh => Vec::new(),
            Capability::GracefulRestart(gr) => {
                let head = (u16::from(gr.restart_flags & 0xf) << 12) | (gr.restart_time & 0x0fff);
                let mut v = head.to_be_bytes().to_vec();
                for f in &gr.families {
                    v.extend_from_slice(&f.afi.to_be_bytes());
                    v.push(f.safi);
                    v.push(f.flags);
                }
                v
            }
            Capability::FourOctetAs(asn) => asn.to_be_bytes().to_vec(),
            Capability::Unknown { value, .. } => value.clone(),
        }
    }

    /// Encodes `Code | Length | Value`.
    pub(crate) fn encode(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        let value = self.value();
        let len = u8::try_from(value.len()).map_err(|_| EncodeError::CapabilityTooLong {
            code: self.code(),
            len: value.len(),
        })?;
        out.push(self.code());
        out.push(len);
        out.extend_from_slice(&value);
        Ok(())
    }

    fn decode(code: u8, value: &[u8]) -> Result<Self, DecodeError> {
        let malformed = |reason| DecodeError::new(reason, code::OPEN, sub::UNSPECIFIC, Vec::new());
        Ok(match code {
            capability_code::MULTIPROTOCOL => match value {
                [a0, a1, _reserved, safi] => Capability::Multiprotocol {
                    afi: u16::from_be_bytes([*a0, *a1]),
                    safi: *safi,
                },
                _ => return Err(malformed("multiprotocol capability length is not 4")),
            },
            capability_code::ROUTE_REFRESH => {
                if !value.is_empty() {
                    return Err(malformed("route refresh capability is not empty"));
                }
                Capability::RouteRefresh
            }
            capability_code::FOUR_OCTET_AS => match value {
                [a, b, c, d] => Capability::FourOctetAs(u32::from_be_bytes([*a, *b, *c, *d])),
                _ => return Err(malformed("4-octet AS capability length is not 4")),
            },
            capability_code::GRACEFUL_RESTART => {
                let mut r = Reader::new(value);
                let head = r
                    .u16()
                    .ok_or_else(|| malformed("graceful restart capability too short"))?;
                if !r.remaining().is_multiple_of(4) {
                    return Err(malformed("graceful restart capability length"));
                }
                let mut families = Vec::with_capacity(r.remaining() / 4);
                while let (Some(afi), Some(safi), Some(flags)) = (r.u16(), r.u8(), r.u8()) {
                    families.push(GracefulRestartFamily { afi, safi, flags });
                }
                Capability::GracefulRestart(GracefulRestart {
                    restart_flags: (head >> 12) as u8,
                    restart_time: head & 0x0fff,
                    families,
                })
            }
            _ => Capability::Unknown {
                code,
                value: value.to_vec(),
            },
        })
    }
}

/// An OPEN message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Open {
    /// "My Autonomous System": the sender's ASN, or [`AS_TRANS`] if it does
    /// not fit 2 octets (then the real one is in [`Capability::FourOctetAs`]).
    pub my_as: u16,
    /// Proposed hold time in seconds (0, or at least 3).
    pub hold_time: u16,
    /// BGP Identifier.
    pub bgp_id: Ipv4Addr,
    /// Capabilities, in the order sent.
    pub capabilities: Vec<Capability>,
}

impl Open {
    /// An OPEN for `asn`, setting My AS to AS_TRANS when needed and always
    /// advertising the 4-octet AS capability (RFC 6793 §3), followed by
    /// `capabilities`.
    pub fn new(asn: u32, hold_time: u16, bgp_id: Ipv4Addr, capabilities: Vec<Capability>) -> Self {
        let my_as = u16::try_from(asn).unwrap_or(AS_TRANS);
        let mut caps = Vec::with_capacity(capabilities.len() + 1);
        caps.extend(
            capabilities
                .into_iter()
                .filter(|c| !matches!(c, Capability::FourOctetAs(_))),
        );
        caps.push(Capability::FourOctetAs(asn));
        Self {
            my_as,
            hold_time,
            bgp_id,
            capabilities: caps,
        }
    }

    /// The sender's ASN: from the 4-octet AS capability if present, else My AS
    /// (RFC 6793 §4.1).
    pub fn asn(&self) -> u32 {
        self.four_octet_as().unwrap_or(u32::from(self.my_as))
    }

    /// The 4-octet AS capability value, if advertised.
    pub fn four_octet_as(&self) -> Option<u32> {
        self.capabilities.iter().find_map(|c| match c {
            Capability::FourOctetAs(a) => Some(*a),
            _ => None,
        })
    }

    /// Families advertised with the multiprotocol capability. Per RFC 4760 §8
    /// a peer that sends no multiprotocol capability at all speaks IPv4
    /// unicast only.
    pub fn families(&self) -> Vec<Family> {
        let mut any_mp = false;
        let mut out = Vec::new();
        for c in &self.capabilities {
            if let Capability::Multiprotocol { afi, safi } = c {
                any_mp = true;
                if let Some(f) = Family::from_afi_safi(*afi, *safi)
                    && !out.contains(&f)
                {
                    out.push(f);
                }
            }
        }
        if !any_mp {
            out.push(Family::Ipv4Unicast);
        }
        out
    }

    /// Whether route refresh (RFC 2918) was advertised.
    pub fn route_refresh(&self) -> bool {
        self.capabilities.contains(&Capability::RouteRefresh)
    }

    /// The graceful restart capability, if advertised.
    pub fn graceful_restart(&self) -> Option<&GracefulRestart> {
        self.capabilities.iter().find_map(|c| match c {
            Capability::GracefulRestart(g) => Some(g),
            _ => None,
        })
    }

    pub(crate) fn encode_body(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        out.push(BGP_VERSION);
        out.extend_from_slice(&self.my_as.to_be_bytes());
        out.extend_from_slice(&self.hold_time.to_be_bytes());
        out.extend_from_slice(&self.bgp_id.octets());
        let mut caps = Vec::new();
        for c in &self.capabilities {
            c.encode(&mut caps)?;
        }
        if caps.is_empty() {
            out.push(0);
        } else if caps.len() + 2 <= 255 {
            // One type-2 parameter holding every capability (RFC 5492 §4).
            out.push((caps.len() + 2) as u8);
            out.push(PARAM_CAPABILITIES);
            out.push(caps.len() as u8);
            out.extend_from_slice(&caps);
        } else {
            // RFC 9072 extended optional parameters.
            let param_len = u16::try_from(caps.len())
                .ok()
                .filter(|l| usize::from(*l) + 3 <= usize::from(u16::MAX))
                .ok_or(EncodeError::OptionalParametersTooLong { len: caps.len() })?;
            out.push(255);
            out.push(PARAM_EXTENDED);
            out.extend_from_slice(&(param_len + 3).to_be_bytes());
            out.push(PARAM_CAPABILITIES);
            out.extend_from_slice(&param_len.to_be_bytes());
            out.extend_from_slice(&caps);
        }
        Ok(())
    }

    /// Decodes the OPEN body. Checks the syntax and the version; semantic
    /// checks (peer AS, identifier, hold time) are in [`Open::validate`].
    pub(crate) fn decode_body(body: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(body);
        let short = || DecodeError::new("OPEN too short", code::OPEN, sub::UNSPECIFIC, Vec::new());
        let version = r.u8().ok_or_else(short)?;
        if version != BGP_VERSION {
            // RFC 4271 §6.2: data is the largest locally supported version, 2 octets.
            return Err(DecodeError::new(
                "unsupported BGP version",
                code::OPEN,
                sub::UNSUPPORTED_VERSION,
                u16::from(BGP_VERSION).to_be_bytes(),
            ));
        }
        let my_as = r.u16().ok_or_else(short)?;
        let hold_time = r.u16().ok_or_else(short)?;
        let bgp_id = Ipv4Addr::from(r.u32().ok_or_else(short)?);
        let opt_len = r.u8().ok_or_else(short)?;
        let bad_params = || {
            DecodeError::new(
                "optional parameters length inconsistent",
                code::OPEN,
                sub::UNSPECIFIC,
                Vec::new(),
            )
        };
        let rest = r.rest();
        let extended = opt_len == 255 && rest.first() == Some(&PARAM_EXTENDED);
        let (params, wide) = if extended {
            let mut er = Reader::new(rest);
            let _ = er.u8();
            let len = er.u16().ok_or_else(bad_params)?;
            let params = er.take(usize::from(len)).ok_or_else(bad_params)?;
            if !er.is_empty() {
                return Err(bad_params());
            }
            (params, true)
        } else {
            if rest.len() != usize::from(opt_len) {
                return Err(bad_params());
            }
            (rest, false)
        };
        let mut capabilities = Vec::new();
        let mut pr = Reader::new(params);
        while !pr.is_empty() {
            let ptype = pr.u8().ok_or_else(bad_params)?;
            let plen = if wide {
                pr.u16().map(usize::from)
            } else {
                pr.u8().map(usize::from)
            }
            .ok_or_else(bad_params)?;
            let value = pr.take(plen).ok_or_else(bad_params)?;
            if ptype != PARAM_CAPABILITIES {
                return Err(DecodeError::new(
                    "unsupported optional parameter",
                    code::OPEN,
                    sub::UNSUPPORTED_OPTIONAL_PARAMETER,
                    Vec::new(),
                ));
            }
            let mut cr = Reader::new(value);
            while !cr.is_empty() {
                let bad_cap = || {
                    DecodeError::new(
                        "capability overruns its parameter",
                        code::OPEN,
                        sub::UNSPECIFIC,
                        Vec::new(),
                    )
                };
                let ccode = cr.u8().ok_or_else(bad_cap)?;
                let clen = cr.u8().ok_or_else(bad_cap)?;
                let cval = cr.take(usize::from(clen)).ok_or_else(bad_cap)?;
                capabilities.push(Capability::decode(ccode, cval)?);
            }
        }
        Ok(Open {
            my_as,
            hold_time,
            bgp_id,
            capabilities,
        })
    }

    /// Semantic checks of a received OPEN (RFC 4271 §6.2, RFC 6286 §2.2):
    /// hold time 1 or 2 s is unacceptable; a zero BGP Identifier, or (for
    /// iBGP) one equal to ours, is bad.
    pub fn validate(&self, local_id: Ipv4Addr, ibgp: bool) -> Result<(), DecodeError> {
        if self.hold_time == 1 || self.hold_time == 2 {
            return Err(DecodeError::new(
                "unacceptable hold time",
                code::OPEN,
                sub::UNACCEPTABLE_HOLD_TIME,
                Vec::new(),
            ));
        }
        if self.bgp_id.is_unspecified() || (ibgp && self.bgp_id == local_id) {
            return Err(DecodeError::new(
                "bad BGP identifier",
                code::OPEN,
                sub::BAD_BGP_IDENTIFIER,
                Vec::new(),
            ));
        }
        Ok(())
    }
}
