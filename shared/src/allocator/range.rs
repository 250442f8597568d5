//! Address families and inclusive address ranges, the unit pools are made of.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// An IP address family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum IpFamily {
    /// IPv4.
    V4,
    /// IPv6.
    V6,
}

impl IpFamily {
    /// The family of an address.
    pub fn of(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(_) => IpFamily::V4,
            IpAddr::V6(_) => IpFamily::V6,
        }
    }

    /// The other family (dual-stack's second address).
    pub fn other(self) -> Self {
        match self {
            IpFamily::V4 => IpFamily::V6,
            IpFamily::V6 => IpFamily::V4,
        }
    }

    /// Both families, IPv4 first.
    pub const ALL: [IpFamily; 2] = [IpFamily::V4, IpFamily::V6];
}

impl fmt::Display for IpFamily {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Spelled as in a Service's `spec.ipFamilies`, so messages read like the user's YAML.
        f.write_str(match self {
            IpFamily::V4 => "IPv4",
            IpFamily::V6 => "IPv6",
        })
    }
}

/// Why a range could not be built or parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RangeError {
    /// Start and end belong to different families.
    #[error("range {start}-{end} mixes IPv4 and IPv6")]
    MixedFamilies {
        /// First address.
        start: IpAddr,
        /// Last address.
        end: IpAddr,
    },
    /// The end lies before the start.
    #[error("range {start}-{end} ends before it starts")]
    Reversed {
        /// First address.
        start: IpAddr,
        /// Last address.
        end: IpAddr,
    },
    /// A CIDR prefix length longer than the address.
    #[error("prefix length /{prefix} is too long for {addr}")]
    PrefixTooLong {
        /// The network address.
        addr: IpAddr,
        /// The prefix length given.
        prefix: u8,
    },
    /// Text that is neither a CIDR, an `a-b` range nor an address.
    #[error("{text:?} is not a CIDR, an address range (a-b) or an address")]
    Syntax {
        /// The text as given.
        text: String,
    },
}

/// An inclusive range of addresses of one family (`start..=end`).
///
/// Invariant: both ends are of the same family and `start <= end`; the constructors check it,
/// so every range the allocator sees is well formed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct IpRange {
    start: IpAddr,
    end: IpAddr,
}

impl IpRange {
    /// The range `start..=end`.
    pub fn new(start: IpAddr, end: IpAddr) -> Result<Self, RangeError> {
        if IpFamily::of(start) != IpFamily::of(end) {
            return Err(RangeError::MixedFamilies { start, end });
        }
        if start > end {
            return Err(RangeError::Reversed { start, end });
        }
        Ok(IpRange { start, end })
    }

    /// A single address.
    pub fn single(ip: IpAddr) -> Self {
        IpRange { start: ip, end: ip }
    }

    /// The addresses of a CIDR block; host bits set in `addr` are ignored.
    pub fn from_cidr(addr: IpAddr, prefix: u8) -> Result<Self, RangeError> {
        let bits = bits_of(IpFamily::of(addr));
        if u32::from(prefix) > bits {
            return Err(RangeError::PrefixTooLong { addr, prefix });
        }
        let host_bits = bits - u32::from(prefix);
        let host_mask: u128 = if host_bits == 128 {
            u128::MAX
        } else {
            (1u128 << host_bits) - 1
        };
        let value = to_u128(addr);
        let start = value & !host_mask;
        let end = start | host_mask;
        let family = IpFamily::of(addr);
        Ok(IpRange {
            start: from_u128(family, start),
            end: from_u128(family, end),
        })
    }

    /// First address.
    pub fn start(&self) -> IpAddr {
        self.start
    }

    /// Last address (inclusive).
    pub fn end(&self) -> IpAddr {
        self.end
    }

    /// The family of both ends.
    pub fn family(&self) -> IpFamily {
        IpFamily::of(self.start)
    }

    /// Whether `ip` lies in the range.
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.start <= ip && ip <= self.end
    }

    /// Number of addresses, saturating at `u128::MAX` for `::/0`.
    pub fn size(&self) -> u128 {
        (to_u128(self.end) - to_u128(self.start)).saturating_add(1)
    }

    /// Both ends as numbers (`u128` for either family).
    pub(crate) fn bounds(&self) -> (u128, u128) {
        (to_u128(self.start), to_u128(self.end))
    }
}

impl fmt::Display for IpRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.start == self.end {
            write!(f, "{}", self.start)
        } else {
            write!(f, "{}-{}", self.start, self.end)
        }
    }
}

impl FromStr for IpRange {
    type Err = RangeError;

    /// Parses `10.0.0.0/24`, `10.0.0.5-10.0.0.9` (spaces around `-` allowed) or `10.0.0.7`.
    /// Deliberately small: the CRD validation owns the full syntax rules and messages.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let syntax = || RangeError::Syntax {
            text: text.to_owned(),
        };
        let text_trim = text.trim();
        if let Some((addr, prefix)) = text_trim.split_once('/') {
            let addr: IpAddr = addr.trim().parse().map_err(|_| syntax())?;
            let prefix: u8 = prefix.trim().parse().map_err(|_| syntax())?;
            return IpRange::from_cidr(addr, prefix);
        }
        if let Some((a, b)) = text_trim.split_once('-') {
            let a: IpAddr = a.trim().parse().map_err(|_| syntax())?;
            let b: IpAddr = b.trim().parse().map_err(|_| syntax())?;
            return IpRange::new(a, b);
        }
        let ip: IpAddr = text_trim.parse().map_err(|_| syntax())?;
        Ok(IpRange::single(ip))
    }
}

/// Address width in bits.
pub(crate) fn bits_of(family: IpFamily) -> u32 {
    match family {
        IpFamily::V4 => 32,
        IpFamily::V6 => 128,
    }
}

/// An address as a number; IPv4 occupies the low 32 bits.
pub(crate) fn to_u128(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

/// The inverse of [`to_u128`]; for IPv4 only the low 32 bits count.
pub(crate) fn from_u128(family: IpFamily, value: u128) -> IpAddr {
    match family {
        // Truncation is the intent: IPv4 values never exceed 32 bits here.
        IpFamily::V4 => IpAddr::V4(Ipv4Addr::from(value as u32)),
        IpFamily::V6 => IpAddr::V6(Ipv6Addr::from(value)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn parses_cidrs_ranges_and_singles() {
        let cases: &[(&str, &str, &str, u128)] = &[
            ("10.0.0.0/24", "10.0.0.0", "10.0.0.255", 256),
            ("10.0.0.7/24", "10.0.0.0", "10.0.0.255", 256),
            ("10.0.0.5-10.0.0.9", "10.0.0.5", "10.0.0.9", 5),
            ("10.0.0.5 - 10.0.0.9", "10.0.0.5", "10.0.0.9", 5),
            ("10.1.2.3", "10.1.2.3", "10.1.2.3", 1),
            ("10.1.2.3/32", "10.1.2.3", "10.1.2.3", 1),
            ("0.0.0.0/0", "0.0.0.0", "255.255.255.255", 1 << 32),
            ("fd00::/64", "fd00::", "fd00::ffff:ffff:ffff:ffff", 1 << 64),
            ("fd00::1-fd00::3", "fd00::1", "fd00::3", 3),
            (
                "::/0",
                "::",
                "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
                u128::MAX,
            ),
        ];
        for (text, start, end, size) in cases {
            let r: IpRange = text.parse().unwrap();
            assert_eq!(
                (r.start(), r.end(), r.size()),
                (ip(start), ip(end), *size),
                "{text}"
            );
        }
    }

    #[test]
    fn rejects_malformed_ranges() {
        for text in [
            "10.0.0.9-10.0.0.5",
            "10.0.0.1-fd00::1",
            "10.0.0.0/33",
            "fd00::/129",
            "nonsense",
            "10.0.0.0/x",
        ] {
            assert!(text.parse::<IpRange>().is_err(), "{text} must be rejected");
        }
    }
}
