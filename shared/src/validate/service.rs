//! Values users put on Services: the requested-addresses annotation.

use std::net::IpAddr;

use super::address::IpFamily;

/// Why a `loadBalancerIPs` annotation value was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LoadBalancerIpsError {
    /// No address in the value.
    #[error("no address given")]
    Empty,
    /// An entry that is not an IP address.
    #[error("{entry:?} is not an IP address")]
    InvalidIp {
        /// The entry as written.
        entry: String,
    },
    /// Two addresses of one family: a Service gets at most one address per family.
    #[error("two {family} addresses given ({first}, {second}); at most one per family")]
    DuplicateFamily {
        /// The family given twice.
        family: IpFamily,
        /// The first address of that family.
        first: IpAddr,
        /// The second one.
        second: IpAddr,
    },
}

/// Parses the value of `ferrolb.io/loadBalancerIPs` (or its MetalLB spellings): a comma
/// separated list of at most one IPv4 and one IPv6 address, e.g. `192.0.2.10, 2001:db8::10`.
/// The order written is kept (it does not decide the family order; `ipFamilies` does).
pub fn parse_load_balancer_ips(value: &str) -> Result<Vec<IpAddr>, LoadBalancerIpsError> {
    let mut out: Vec<IpAddr> = Vec::new();
    for entry in value.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let ip: IpAddr = entry.parse().map_err(|_| LoadBalancerIpsError::InvalidIp {
            entry: entry.to_owned(),
        })?;
        if let Some(first) = out.iter().find(|o| IpFamily::of(**o) == IpFamily::of(ip)) {
            return Err(LoadBalancerIpsError::DuplicateFamily {
                family: IpFamily::of(ip),
                first: *first,
                second: ip,
            });
        }
        out.push(ip);
    }
    if out.is_empty() {
        return Err(LoadBalancerIpsError::Empty);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn load_balancer_ips_table() {
        let ok: &[(&str, &[&str])] = &[
            ("192.0.2.10", &["192.0.2.10"]),
            ("2001:db8::10", &["2001:db8::10"]),
            ("192.0.2.10,2001:db8::10", &["192.0.2.10", "2001:db8::10"]),
            (
                " 2001:db8::10 , 192.0.2.10 ",
                &["2001:db8::10", "192.0.2.10"],
            ),
            ("192.0.2.10,", &["192.0.2.10"]),
        ];
        for (value, want) in ok {
            let got: Vec<String> = parse_load_balancer_ips(value)
                .unwrap_or_else(|e| panic!("{value}: {e}"))
                .iter()
                .map(ToString::to_string)
                .collect();
            assert_eq!(got, *want, "{value}");
        }
        let bad: &[(&str, &str)] = &[
            ("", "no address given"),
            (" , ", "no address given"),
            ("192.0.2.10/32", "\"192.0.2.10/32\" is not an IP address"),
            ("lb.example", "\"lb.example\" is not an IP address"),
            (
                "192.0.2.10,192.0.2.11",
                "two IPv4 addresses given (192.0.2.10, 192.0.2.11); at most one per family",
            ),
            (
                "fd00::1,10.0.0.1,fd00::2",
                "two IPv6 addresses given (fd00::1, fd00::2); at most one per family",
            ),
        ];
        for (value, want) in bad {
            let err = parse_load_balancer_ips(value).expect_err(value);
            assert_eq!(err.to_string(), *want, "{value}");
        }
    }
}
