//! Pool address entries: CIDRs, single addresses and `a-b` ranges, as inclusive [`IpRange`]s.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use ipnet::IpNet;

/// The address family of an address or range.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum IpFamily {
    /// IPv4.
    V4,
    /// IPv6.
    V6,
}

impl IpFamily {
    /// The family of `addr`.
    pub fn of(addr: IpAddr) -> Self {
        match addr {
            IpAddr::V4(_) => Self::V4,
            IpAddr::V6(_) => Self::V6,
        }
    }

    /// The other family (dual-stack's second address).
    pub fn other(self) -> Self {
        match self {
            Self::V4 => Self::V6,
            Self::V6 => Self::V4,
        }
    }

    /// Both families, IPv4 first.
    pub const ALL: [IpFamily; 2] = [IpFamily::V4, IpFamily::V6];

    /// Address width in bits: 32 or 128.
    pub fn bits(self) -> u8 {
        match self {
            Self::V4 => 32,
            Self::V6 => 128,
        }
    }
}

impl fmt::Display for IpFamily {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::V4 => "IPv4",
            Self::V6 => "IPv6",
        })
    }
}

/// Why a pool address entry was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    /// The entry is empty.
    #[error("empty address entry")]
    Empty,
    /// Neither a CIDR, an address, nor a range.
    #[error("{entry:?} is not a CIDR, an IP address or an address range (a-b)")]
    Unparsable {
        /// The entry as written.
        entry: String,
    },
    /// A CIDR whose address has bits set beyond the prefix, e.g. `10.0.0.5/24`.
    #[error("{entry:?} has host bits set; did you mean {network}?")]
    HostBitsSet {
        /// The entry as written.
        entry: String,
        /// The network the user probably meant.
        network: IpNet,
    },
    /// A range whose end is below its start.
    #[error("range start {start} is after range end {end}")]
    Reversed {
        /// First address.
        start: IpAddr,
        /// Last address.
        end: IpAddr,
    },
    /// A range whose ends are of different families.
    #[error("range {start}-{end} mixes IPv4 and IPv6")]
    MixedFamilies {
        /// First address.
        start: IpAddr,
        /// Last address.
        end: IpAddr,
    },
}

/// An inclusive range of addresses of one family, `start <= end`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct IpRange {
    start: IpAddr,
    end: IpAddr,
}

impl IpRange {
    /// The range `start..=end`; both ends of one family, `start <= end`.
    pub fn new(start: IpAddr, end: IpAddr) -> Result<Self, AddressError> {
        if IpFamily::of(start) != IpFamily::of(end) {
            return Err(AddressError::MixedFamilies { start, end });
        }
        if start > end {
            return Err(AddressError::Reversed { start, end });
        }
        Ok(Self { start, end })
    }

    /// The addresses of a network, including its network and broadcast addresses.
    pub fn from_net(net: IpNet) -> Self {
        Self {
            start: net.network(),
            end: net.broadcast(),
        }
    }

    /// The addresses of the CIDR block `addr/prefix`; host bits set in `addr` are ignored
    /// (unlike [`parse_address_entry`], which rejects them as a likely typo).
    pub fn from_cidr(addr: IpAddr, prefix: u8) -> Result<Self, AddressError> {
        let net = IpNet::new(addr, prefix).map_err(|_| AddressError::Unparsable {
            entry: format!("{addr}/{prefix}"),
        })?;
        Ok(Self::from_net(net))
    }

    /// A range of one address.
    pub fn single(addr: IpAddr) -> Self {
        Self {
            start: addr,
            end: addr,
        }
    }

    /// First address.
    pub fn start(&self) -> IpAddr {
        self.start
    }

    /// Last address.
    pub fn end(&self) -> IpAddr {
        self.end
    }

    /// Family of the range.
    pub fn family(&self) -> IpFamily {
        IpFamily::of(self.start)
    }

    /// Whether `addr` lies in the range.
    pub fn contains(&self, addr: IpAddr) -> bool {
        IpFamily::of(addr) == self.family() && self.start <= addr && addr <= self.end
    }

    /// The addresses both ranges share, if any.
    pub fn intersection(&self, other: &IpRange) -> Option<IpRange> {
        if self.family() != other.family() {
            return None;
        }
        let start = self.start.max(other.start);
        let end = self.end.min(other.end);
        (start <= end).then_some(IpRange { start, end })
    }

    /// Whether the ranges share an address.
    pub fn overlaps(&self, other: &IpRange) -> bool {
        self.intersection(other).is_some()
    }

    /// Number of addresses, saturating at `u128::MAX` (only `::/0` saturates).
    pub fn len(&self) -> u128 {
        (to_u128(self.end) - to_u128(self.start)).saturating_add(1)
    }

    /// Number of addresses; the same as [`IpRange::len`], named as the allocator counts.
    pub fn size(&self) -> u128 {
        self.len()
    }

    /// Both ends as numbers (`u128` for either family).
    pub(crate) fn bounds(&self) -> (u128, u128) {
        (to_u128(self.start), to_u128(self.end))
    }

    /// Always false: a range holds at least one address. Present for API symmetry with `len`.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Number of IPv4 addresses ending in `.0` or `.255` (what `avoidBuggyIPs` skips);
    /// 0 for IPv6.
    pub fn buggy_len(&self) -> u128 {
        if self.family() != IpFamily::V4 {
            return 0;
        }
        let (s, e) = (to_u128(self.start), to_u128(self.end));
        // Addresses x in [s, e] with x % 256 == k, counted as prefix counts over [0, n].
        let upto = |n: u128, k: u128| if n < k { 0 } else { (n - k) / 256 + 1 };
        let count = |k: u128| upto(e, k) - if s == 0 { 0 } else { upto(s - 1, k) };
        count(0) + count(255)
    }

    /// The smallest list of CIDRs that covers exactly this range, in address order.
    pub fn to_cidrs(&self) -> Vec<IpNet> {
        let width = u32::from(self.family().bits());
        let mut out = Vec::new();
        let mut start = to_u128(self.start);
        let end = to_u128(self.end);
        loop {
            let remaining = end - start;
            // Largest block aligned at `start` and not reaching past `end`.
            let align = if start == 0 {
                width
            } else {
                start.trailing_zeros().min(width)
            };
            let fit = match remaining.checked_add(1) {
                Some(count) => 127 - count.leading_zeros(),
                None => 128,
            };
            let block = align.min(fit);
            let prefix = u8::try_from(width - block).unwrap_or(0);
            out.push(make_net(self.family(), start, prefix));
            if block == 128 {
                break;
            }
            let last = start + ((1u128 << block) - 1);
            if last >= end {
                break;
            }
            start = last + 1;
        }
        out
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
    type Err = AddressError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_address_entry(s)
    }
}

/// Parses one `addresses` entry of an `IPAddressPool`: a CIDR (`10.0.0.0/24`), a single
/// address (`10.0.0.7`, `fd00::7`) or an inclusive range (`10.0.0.1-10.0.0.9`, spaces around
/// the dash allowed).
///
/// Unlike MetalLB, a CIDR with host bits set (`10.0.0.5/24`) is rejected with a hint rather
/// than silently widened: the user may have meant a single address.
pub fn parse_address_entry(entry: &str) -> Result<IpRange, AddressError> {
    let trimmed = entry.trim();
    if trimmed.is_empty() {
        return Err(AddressError::Empty);
    }
    let unparsable = || AddressError::Unparsable {
        entry: entry.to_owned(),
    };
    if trimmed.contains('/') {
        let net = IpNet::from_str(trimmed).map_err(|_| unparsable())?;
        if net.addr() != net.network() {
            return Err(AddressError::HostBitsSet {
                entry: entry.to_owned(),
                network: net.trunc(),
            });
        }
        return Ok(IpRange::from_net(net));
    }
    if let Some((a, b)) = trimmed.split_once('-') {
        let start = IpAddr::from_str(a.trim()).map_err(|_| unparsable())?;
        let end = IpAddr::from_str(b.trim()).map_err(|_| unparsable())?;
        return IpRange::new(start, end);
    }
    IpAddr::from_str(trimmed)
        .map(IpRange::single)
        .map_err(|_| unparsable())
}

/// The address as an integer (IPv4 in the low 32 bits), for index structures that work on
/// numbers. Families must be kept apart by the caller.
pub fn ip_to_u128(addr: IpAddr) -> u128 {
    to_u128(addr)
}

/// The address of `family` whose integer value is `value`; `None` if it does not fit the
/// family (above `u32::MAX` for IPv4).
pub fn ip_from_u128(family: IpFamily, value: u128) -> Option<IpAddr> {
    match family {
        IpFamily::V4 => u32::try_from(value)
            .ok()
            .map(|v| IpAddr::V4(Ipv4Addr::from(v))),
        IpFamily::V6 => Some(IpAddr::V6(Ipv6Addr::from(value))),
    }
}

/// The address as a number; IPv4 occupies the low 32 bits.
pub(crate) fn to_u128(addr: IpAddr) -> u128 {
    match addr {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a),
    }
}

/// The inverse of [`to_u128`] for values known to fit the family (index and pool code only
/// produce such values); for IPv4 only the low 32 bits count.
pub(crate) fn from_u128(family: IpFamily, value: u128) -> IpAddr {
    match family {
        // Truncation is the intent: IPv4 values never exceed 32 bits here.
        IpFamily::V4 => IpAddr::V4(Ipv4Addr::from(value as u32)),
        IpFamily::V6 => IpAddr::V6(Ipv6Addr::from(value)),
    }
}

fn make_net(family: IpFamily, value: u128, prefix: u8) -> IpNet {
    let addr = match family {
        IpFamily::V4 => IpAddr::V4(Ipv4Addr::from(u32::try_from(value).unwrap_or(u32::MAX))),
        IpFamily::V6 => IpAddr::V6(Ipv6Addr::from(value)),
    };
    // The prefix never exceeds the family's width by construction.
    IpNet::new(addr, prefix).unwrap_or_else(|_| IpNet::from(addr))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn parses_every_entry_form() {
        let cases: &[(&str, &str, &str)] = &[
            ("192.168.10.0/24", "192.168.10.0", "192.168.10.255"),
            ("192.168.10.7", "192.168.10.7", "192.168.10.7"),
            ("192.168.10.7/32", "192.168.10.7", "192.168.10.7"),
            ("192.168.9.1-192.168.9.5", "192.168.9.1", "192.168.9.5"),
            (" 192.168.9.1 - 192.168.9.5 ", "192.168.9.1", "192.168.9.5"),
            ("10.0.0.9-10.0.0.9", "10.0.0.9", "10.0.0.9"),
            ("0.0.0.0/0", "0.0.0.0", "255.255.255.255"),
            (
                "fc00:f853:ccd:e799::/124",
                "fc00:f853:ccd:e799::",
                "fc00:f853:ccd:e799::f",
            ),
            ("fd00::1-fd00::ff", "fd00::1", "fd00::ff"),
            ("2001:db8::7", "2001:db8::7", "2001:db8::7"),
            ("::/0", "::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"),
        ];
        for (entry, start, end) in cases {
            let r = parse_address_entry(entry).unwrap_or_else(|e| panic!("{entry}: {e}"));
            assert_eq!((r.start(), r.end()), (ip(start), ip(end)), "{entry}");
        }
    }

    #[test]
    fn rejects_bad_entries_with_the_right_reason() {
        use AddressError as E;
        type Check = fn(&AddressError) -> bool;
        let cases: &[(&str, Check)] = &[
            ("", |e| *e == E::Empty),
            ("   ", |e| *e == E::Empty),
            ("banana", |e| matches!(e, E::Unparsable { .. })),
            ("10.0.0.0/33", |e| matches!(e, E::Unparsable { .. })),
            ("10.0.0/24", |e| matches!(e, E::Unparsable { .. })),
            ("10.0.0.256", |e| matches!(e, E::Unparsable { .. })),
            ("fd00::/129", |e| matches!(e, E::Unparsable { .. })),
            ("10.0.0.1-", |e| matches!(e, E::Unparsable { .. })),
            ("10.0.0.1-10.0.0.2-10.0.0.3", |e| {
                matches!(e, E::Unparsable { .. })
            }),
            ("10.0.0.0/24-10.0.1.0/24", |e| {
                matches!(e, E::Unparsable { .. })
            }),
            ("fe80::1%eth0", |e| matches!(e, E::Unparsable { .. })),
            (
                "10.0.0.5/24",
                |e| matches!(e, E::HostBitsSet { network, .. } if network.to_string() == "10.0.0.0/24"),
            ),
            ("10.0.0.9-10.0.0.1", |e| matches!(e, E::Reversed { .. })),
            ("10.0.0.1-fd00::1", |e| matches!(e, E::MixedFamilies { .. })),
        ];
        for (entry, check) in cases {
            let err = parse_address_entry(entry).expect_err(entry);
            assert!(check(&err), "{entry:?} gave {err:?}");
        }
    }

    #[test]
    fn lengths_and_buggy_counts() {
        let r = parse_address_entry("10.0.0.0/24").unwrap();
        assert_eq!(r.len(), 256);
        assert_eq!(r.buggy_len(), 2);
        let r = parse_address_entry("10.0.0.255-10.0.1.0").unwrap();
        assert_eq!((r.len(), r.buggy_len()), (2, 2));
        let r = parse_address_entry("10.0.0.1-10.0.0.254").unwrap();
        assert_eq!((r.len(), r.buggy_len()), (254, 0));
        let r = parse_address_entry("0.0.0.0/0").unwrap();
        assert_eq!((r.len(), r.buggy_len()), (1 << 32, 2 << 24));
        let r = parse_address_entry("fd00::/120").unwrap();
        assert_eq!((r.len(), r.buggy_len()), (256, 0));
        assert_eq!(parse_address_entry("::/0").unwrap().len(), u128::MAX);
    }

    #[test]
    fn ranges_decompose_into_minimal_cidrs() {
        let cases: &[(&str, &[&str])] = &[
            ("10.0.0.0/24", &["10.0.0.0/24"]),
            ("10.0.0.7", &["10.0.0.7/32"]),
            (
                "10.0.0.1-10.0.0.10",
                &[
                    "10.0.0.1/32",
                    "10.0.0.2/31",
                    "10.0.0.4/30",
                    "10.0.0.8/31",
                    "10.0.0.10/32",
                ],
            ),
            ("10.0.0.0-10.0.1.255", &["10.0.0.0/23"]),
            ("0.0.0.0/0", &["0.0.0.0/0"]),
            ("255.255.255.254-255.255.255.255", &["255.255.255.254/31"]),
            ("::/0", &["::/0"]),
            ("fd00::-fd00::2", &["fd00::/127", "fd00::2/128"]),
            ("::1-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", &[]),
        ];
        for (entry, want) in cases {
            let got: Vec<String> = parse_address_entry(entry)
                .unwrap()
                .to_cidrs()
                .iter()
                .map(ToString::to_string)
                .collect();
            if want.is_empty() {
                // ::1 to the top needs one block per bit: 128 CIDRs, all inside the range.
                assert_eq!(got.len(), 128, "{entry}");
            } else {
                assert_eq!(got, *want, "{entry}");
            }
        }
    }

    #[test]
    fn integer_conversions_round_trip_per_family() {
        for a in [
            "0.0.0.0",
            "10.1.2.3",
            "255.255.255.255",
            "::",
            "fd00::1",
            "::ffff:10.1.2.3",
        ] {
            let addr = ip(a);
            assert_eq!(
                ip_from_u128(IpFamily::of(addr), ip_to_u128(addr)),
                Some(addr),
                "{a}"
            );
        }
        assert_eq!(ip_to_u128(ip("0.0.1.2")), 258);
        assert_eq!(ip_from_u128(IpFamily::V4, 1 << 32), None);
        assert_eq!(ip_from_u128(IpFamily::V6, 1 << 32), Some(ip("::1:0:0")));
    }

    #[test]
    fn intersection_and_containment() {
        let a = parse_address_entry("10.0.0.0/24").unwrap();
        let b = parse_address_entry("10.0.0.200-10.0.1.5").unwrap();
        let c = parse_address_entry("10.0.1.0/24").unwrap();
        assert_eq!(
            a.intersection(&b).unwrap().to_string(),
            "10.0.0.200-10.0.0.255"
        );
        assert!(!a.overlaps(&c));
        assert!(a.contains(ip("10.0.0.1")));
        assert!(!a.contains(ip("::ffff:10.0.0.1")));
        let v6 = parse_address_entry("::/0").unwrap();
        assert!(!v6.overlaps(&a));
    }

    #[test]
    fn parses_cidrs_ranges_and_singles_with_sizes() {
        let cases: &[(&str, &str, &str, u128)] = &[
            ("10.0.0.0/24", "10.0.0.0", "10.0.0.255", 256),
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
    fn from_cidr_ignores_host_bits_and_checks_the_prefix() {
        let r = IpRange::from_cidr(ip("10.0.0.7"), 24).unwrap();
        assert_eq!((r.start(), r.end()), (ip("10.0.0.0"), ip("10.0.0.255")));
        assert!(IpRange::from_cidr(ip("10.0.0.0"), 33).is_err());
        assert!(IpRange::from_cidr(ip("fd00::"), 129).is_err());
        let all = IpRange::from_cidr(ip("::"), 0).unwrap();
        assert_eq!(all.size(), u128::MAX);
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

    #[test]
    fn families_pair_up() {
        assert_eq!(IpFamily::V4.other(), IpFamily::V6);
        assert_eq!(IpFamily::V6.other(), IpFamily::V4);
        assert_eq!(IpFamily::ALL, [IpFamily::V4, IpFamily::V6]);
    }
}
