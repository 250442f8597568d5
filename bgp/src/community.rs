//! BGP communities as operators write them: `65000:100`, a well-known name such as
//! `no-export`, or a large community `large:65000:1:2`.

use std::fmt;
use std::str::FromStr;

/// Well-known community values (RFC 1997, 3765, 7611, 7999, 8326, draft-ietf-idr-long-lived-gr).
pub mod well_known {
    /// `graceful-shutdown` (RFC 8326).
    pub const GRACEFUL_SHUTDOWN: u32 = 0xFFFF_0000;
    /// `accept-own` (RFC 7611).
    pub const ACCEPT_OWN: u32 = 0xFFFF_0001;
    /// `llgr-stale` (long-lived graceful restart).
    pub const LLGR_STALE: u32 = 0xFFFF_0006;
    /// `no-llgr` (long-lived graceful restart).
    pub const NO_LLGR: u32 = 0xFFFF_0007;
    /// `blackhole` (RFC 7999).
    pub const BLACKHOLE: u32 = 0xFFFF_029A;
    /// `no-export` (RFC 1997).
    pub const NO_EXPORT: u32 = 0xFFFF_FF01;
    /// `no-advertise` (RFC 1997).
    pub const NO_ADVERTISE: u32 = 0xFFFF_FF02;
    /// `no-export-subconfed`, also called `local-as` (RFC 1997).
    pub const NO_EXPORT_SUBCONFED: u32 = 0xFFFF_FF03;
    /// `no-peer` (RFC 3765).
    pub const NO_PEER: u32 = 0xFFFF_FF04;

    /// Names accepted in `communities`, with their values. The first name of a value is the
    /// one printed.
    pub const NAMES: &[(&str, u32)] = &[
        ("graceful-shutdown", GRACEFUL_SHUTDOWN),
        ("accept-own", ACCEPT_OWN),
        ("llgr-stale", LLGR_STALE),
        ("no-llgr", NO_LLGR),
        ("blackhole", BLACKHOLE),
        ("no-export", NO_EXPORT),
        ("no-advertise", NO_ADVERTISE),
        ("no-export-subconfed", NO_EXPORT_SUBCONFED),
        ("local-as", NO_EXPORT_SUBCONFED),
        ("no-peer", NO_PEER),
    ];
}

/// A BGP community to attach to announcements.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Community {
    /// A COMMUNITIES attribute value (RFC 1997): `high:low`, or a well-known name.
    Standard(u32),
    /// A LARGE_COMMUNITY attribute value (RFC 8092): `large:global:local1:local2`.
    Large {
        /// Global administrator (usually an ASN).
        global_admin: u32,
        /// First local data part.
        local_data1: u32,
        /// Second local data part.
        local_data2: u32,
    },
}

/// Why a community string was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommunityError {
    /// Not `a:b`, `large:a:b:c`, or a known name.
    #[error(
        "{value:?} is not a community: use \"65000:100\", \"large:65000:1:2\" or a well-known \
         name (no-export, no-advertise, no-export-subconfed, no-peer, blackhole, graceful-shutdown, ...)"
    )]
    Malformed {
        /// The value as written.
        value: String,
    },
    /// A part of a standard community above 65535.
    #[error("{value:?}: each half of a standard community must be 0..=65535")]
    StandardPartOutOfRange {
        /// The value as written.
        value: String,
    },
    /// A part of a large community above 4294967295.
    #[error("{value:?}: each part of a large community must be 0..=4294967295")]
    LargePartOutOfRange {
        /// The value as written.
        value: String,
    },
}

impl Community {
    /// Parses `65000:100`, a well-known name (case-insensitive), or `large:1:2:3`.
    pub fn parse(value: &str) -> Result<Self, CommunityError> {
        let s = value.trim();
        let malformed = || CommunityError::Malformed {
            value: value.to_owned(),
        };
        if let Some((_, v)) = well_known::NAMES
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(s))
        {
            return Ok(Self::Standard(*v));
        }
        let parts: Vec<&str> = s.split(':').collect();
        let numeric = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
        match parts.as_slice() {
            [tag, a, b, c] if tag.eq_ignore_ascii_case("large") => {
                if ![a, b, c].iter().all(|p| numeric(p)) {
                    return Err(malformed());
                }
                let part = |p: &str| {
                    p.parse::<u32>()
                        .map_err(|_| CommunityError::LargePartOutOfRange {
                            value: value.to_owned(),
                        })
                };
                Ok(Self::Large {
                    global_admin: part(a)?,
                    local_data1: part(b)?,
                    local_data2: part(c)?,
                })
            }
            [a, b] if numeric(a) && numeric(b) => {
                let part = |p: &str| {
                    p.parse::<u16>()
                        .map_err(|_| CommunityError::StandardPartOutOfRange {
                            value: value.to_owned(),
                        })
                };
                Ok(Self::Standard(
                    (u32::from(part(a)?) << 16) | u32::from(part(b)?),
                ))
            }
            _ => Err(malformed()),
        }
    }

    /// The 32-bit COMMUNITIES value, for standard communities.
    pub fn to_u32(&self) -> Option<u32> {
        match self {
            Self::Standard(v) => Some(*v),
            Self::Large { .. } => None,
        }
    }

    /// The three 32-bit parts of a LARGE_COMMUNITY, for large communities.
    pub fn large(&self) -> Option<[u32; 3]> {
        match self {
            Self::Standard(_) => None,
            Self::Large {
                global_admin,
                local_data1,
                local_data2,
            } => Some([*global_admin, *local_data1, *local_data2]),
        }
    }

    /// Whether this is a LARGE_COMMUNITY.
    pub fn is_large(&self) -> bool {
        matches!(self, Self::Large { .. })
    }
}

impl FromStr for Community {
    type Err = CommunityError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Display for Community {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Standard(v) => match well_known::NAMES.iter().find(|(_, w)| w == v) {
                Some((name, _)) => f.write_str(name),
                None => write!(f, "{}:{}", v >> 16, v & 0xFFFF),
            },
            Self::Large {
                global_admin,
                local_data1,
                local_data2,
            } => write!(f, "large:{global_admin}:{local_data1}:{local_data2}"),
        }
    }
}
