//! BGP-specific values: AS numbers, timers, durations and communities.

use std::time::Duration;

/// `AS_TRANS` (RFC 6793 §9): the placeholder a 4-octet-AS speaker puts in 2-octet fields.
pub const AS_TRANS: u32 = 23456;

/// Why an AS number cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AsnError {
    /// Outside 32 bits.
    #[error("AS number {value} is outside 1..=4294967295")]
    OutOfRange {
        /// The value as written.
        value: i64,
    },
    /// AS 0 is reserved (RFC 7607) and must not appear in OPEN messages.
    #[error("AS number 0 is reserved (RFC 7607)")]
    Zero,
    /// AS 23456 is `AS_TRANS`.
    #[error("AS number 23456 is AS_TRANS (RFC 6793), a placeholder that no real AS may use")]
    AsTrans,
}

/// Checks an AS number for `myASN`/`peerASN`.
///
/// Any 32-bit value except 0 is a real AS number. `AS_TRANS` (23456) is rejected rather
/// than warned about: an AS_TRANS peer is indistinguishable from a 2-octet-only peer in the
/// OPEN message, so sessions with it fail in confusing ways; no operator configures it on
/// purpose.
pub fn validate_asn(asn: i64) -> Result<u32, AsnError> {
    let asn = u32::try_from(asn).map_err(|_| AsnError::OutOfRange { value: asn })?;
    match asn {
        0 => Err(AsnError::Zero),
        AS_TRANS => Err(AsnError::AsTrans),
        _ => Ok(asn),
    }
}

/// Why a duration string was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// Empty string.
    #[error("empty duration")]
    Empty,
    /// Negative durations make no sense for timers.
    #[error("duration {value:?} is negative")]
    Negative {
        /// The value as written.
        value: String,
    },
    /// Not in the `1h2m3.5s` form.
    #[error("{value:?} is not a duration like \"90s\" or \"1m30s\"")]
    Malformed {
        /// The value as written.
        value: String,
    },
    /// A unit other than ns, us, µs, ms, s, m, h.
    #[error("unknown unit {unit:?} in duration {value:?} (use ns, us, ms, s, m or h)")]
    UnknownUnit {
        /// The value as written.
        value: String,
        /// The unit found.
        unit: String,
    },
    /// Larger than anything representable.
    #[error("duration {value:?} is too large")]
    Overflow {
        /// The value as written.
        value: String,
    },
}

/// Parses a Kubernetes (Go `time.ParseDuration`) style duration: `90s`, `1m30s`, `1.5h`,
/// `500ms`. A bare `0` is allowed, as in Go; other numbers need a unit.
pub fn parse_duration(value: &str) -> Result<Duration, DurationError> {
    let malformed = || DurationError::Malformed {
        value: value.to_owned(),
    };
    let overflow = || DurationError::Overflow {
        value: value.to_owned(),
    };
    let mut rest = value.trim();
    if rest.is_empty() {
        return Err(DurationError::Empty);
    }
    if let Some(r) = rest.strip_prefix('-') {
        if r.trim_start_matches(['0', '.'])
            .chars()
            .any(|c| c.is_ascii_digit())
        {
            return Err(DurationError::Negative {
                value: value.to_owned(),
            });
        }
        rest = r;
    } else if let Some(r) = rest.strip_prefix('+') {
        rest = r;
    }
    if rest.is_empty() {
        return Err(malformed());
    }
    if rest == "0" {
        return Ok(Duration::ZERO);
    }
    let mut total_nanos: u128 = 0;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (number, tail) = rest.split_at(num_len);
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_len);
        let (int_part, frac_part) = number.split_once('.').unwrap_or((number, ""));
        if (int_part.is_empty() && frac_part.is_empty()) || frac_part.contains('.') {
            return Err(malformed());
        }
        let unit_nanos: u128 = match unit {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            "" => return Err(malformed()),
            other => {
                return Err(DurationError::UnknownUnit {
                    value: value.to_owned(),
                    unit: other.to_owned(),
                });
            }
        };
        let int: u128 = if int_part.is_empty() {
            0
        } else {
            int_part.parse().map_err(|_| overflow())?
        };
        let mut nanos = int.checked_mul(unit_nanos).ok_or_else(overflow)?;
        // Fractions finer than a nanosecond are dropped, as Go does.
        let mut scale = unit_nanos;
        for digit in frac_part.chars().take(30) {
            scale /= 10;
            let d = u128::from(digit.to_digit(10).ok_or_else(malformed)?);
            nanos = nanos.checked_add(d * scale).ok_or_else(overflow)?;
        }
        total_nanos = total_nanos.checked_add(nanos).ok_or_else(overflow)?;
        rest = tail;
    }
    let secs = u64::try_from(total_nanos / 1_000_000_000).map_err(|_| overflow())?;
    let sub = u32::try_from(total_nanos % 1_000_000_000).map_err(|_| overflow())?;
    Ok(Duration::new(secs, sub))
}

/// Default BGP hold time when `holdTime` is not set (RFC 4271 §10 suggests 90 s).
pub const DEFAULT_HOLD_TIME: Duration = Duration::from_secs(90);
/// Default time between connection attempts when `connectTime` is not set.
pub const DEFAULT_CONNECT_TIME: Duration = Duration::from_secs(10);

/// Why a set of BGP timers is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimerError {
    /// BGP carries hold time in whole seconds.
    #[error("{value:?} is not a whole number of seconds; BGP timers have 1 s resolution")]
    NotWholeSeconds {
        /// The value as written.
        value: String,
    },
    /// RFC 4271 §4.2: the hold time is 0 or at least 3 seconds.
    #[error("hold time {secs}s must be 0s or at least 3s (RFC 4271 §4.2)")]
    HoldTooShort {
        /// The hold time in seconds.
        secs: u64,
    },
    /// The OPEN message's hold time field is 16 bits.
    #[error("hold time {secs}s exceeds the 65535 s the OPEN message can carry")]
    HoldTooLong {
        /// The hold time in seconds.
        secs: u64,
    },
    /// Keepalives slower than the hold time cannot keep the session up.
    #[error("keepalive time {keepalive}s is longer than the hold time {hold}s")]
    KeepaliveAboveHold {
        /// Keepalive, seconds.
        keepalive: u64,
        /// Hold time, seconds.
        hold: u64,
    },
    /// Hold 0 means "no keepalives"; any keepalive with it (or none without it) contradicts.
    #[error(
        "keepalive time must be 0s exactly when the hold time is 0s (hold {hold}s, keepalive {keepalive}s)"
    )]
    KeepaliveZeroMismatch {
        /// Keepalive, seconds.
        keepalive: u64,
        /// Hold time, seconds.
        hold: u64,
    },
    /// A zero connect time would retry in a tight loop.
    #[error("connect time must be greater than 0")]
    ZeroConnectTime,
}

/// Validated BGP timers of a peer, in whole seconds where BGP needs them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BgpTimers {
    /// Hold time proposed in OPEN: 0, or 3..=65535 seconds.
    pub hold_time: u16,
    /// Keepalive interval in seconds: 0 iff `hold_time` is 0, else ≤ `hold_time`.
    pub keepalive_time: u16,
    /// Time between connection attempts (and TCP connect timeout), > 0.
    pub connect_time: Duration,
}

/// Checks a hold time / keepalive pair in seconds.
pub fn check_hold_keepalive(hold: u64, keepalive: u64) -> Result<(), TimerError> {
    if hold != 0 && hold < 3 {
        return Err(TimerError::HoldTooShort { secs: hold });
    }
    if hold > u64::from(u16::MAX) {
        return Err(TimerError::HoldTooLong { secs: hold });
    }
    if (hold == 0) != (keepalive == 0) {
        return Err(TimerError::KeepaliveZeroMismatch { keepalive, hold });
    }
    if keepalive > hold {
        return Err(TimerError::KeepaliveAboveHold { keepalive, hold });
    }
    Ok(())
}

/// Whole seconds of a timer duration, or the reason it has a sub-second part.
pub(crate) fn whole_seconds(value: &str, d: Duration) -> Result<u64, TimerError> {
    if d.subsec_nanos() != 0 {
        return Err(TimerError::NotWholeSeconds {
            value: value.to_owned(),
        });
    }
    Ok(d.as_secs())
}

// Communities are protocol values: one implementation, in the BGP crate, serves the CLI
// of `ferrolb-bgp` and the CRD validation here.
pub use ferrolb_bgp::community::{Community, CommunityError, well_known};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn asn_table() {
        let cases: &[(i64, Result<u32, AsnError>)] = &[
            (-1, Err(AsnError::OutOfRange { value: -1 })),
            (
                4_294_967_296,
                Err(AsnError::OutOfRange {
                    value: 4_294_967_296,
                }),
            ),
            (0, Err(AsnError::Zero)),
            (1, Ok(1)),
            (64512, Ok(64512)),
            (65535, Ok(65535)),
            (i64::from(AS_TRANS), Err(AsnError::AsTrans)),
            (4_200_000_000, Ok(4_200_000_000)),
            (i64::from(u32::MAX), Ok(u32::MAX)),
        ];
        for (asn, want) in cases {
            assert_eq!(validate_asn(*asn), *want, "{asn}");
        }
    }

    #[test]
    fn duration_table() {
        let ok: &[(&str, Duration)] = &[
            ("90s", Duration::from_secs(90)),
            ("1m30s", Duration::from_secs(90)),
            ("1h", Duration::from_secs(3600)),
            ("0", Duration::ZERO),
            ("0s", Duration::ZERO),
            ("-0s", Duration::ZERO),
            ("1.5s", Duration::from_millis(1500)),
            (".5m", Duration::from_secs(30)),
            ("500ms", Duration::from_millis(500)),
            ("3s500ms", Duration::from_millis(3500)),
            ("10us", Duration::from_micros(10)),
            ("10µs", Duration::from_micros(10)),
            ("7ns", Duration::from_nanos(7)),
            ("2h45m", Duration::from_secs(2 * 3600 + 45 * 60)),
        ];
        for (s, want) in ok {
            assert_eq!(parse_duration(s), Ok(*want), "{s}");
        }
        type Check = fn(&DurationError) -> bool;
        let bad: &[(&str, Check)] = &[
            ("", |e| *e == DurationError::Empty),
            ("90", |e| matches!(e, DurationError::Malformed { .. })),
            ("s", |e| matches!(e, DurationError::Malformed { .. })),
            ("-", |e| matches!(e, DurationError::Malformed { .. })),
            ("1..5s", |e| matches!(e, DurationError::Malformed { .. })),
            ("1.2.3s", |e| matches!(e, DurationError::Malformed { .. })),
            ("ninety", |e| matches!(e, DurationError::Malformed { .. })),
            ("-5s", |e| matches!(e, DurationError::Negative { .. })),
            (
                "5d",
                |e| matches!(e, DurationError::UnknownUnit { unit, .. } if unit == "d"),
            ),
            ("5 s", |e| matches!(e, DurationError::UnknownUnit { .. })),
            ("99999999999999999999999999999999999999999h", |e| {
                matches!(e, DurationError::Overflow { .. })
            }),
        ];
        for (s, check) in bad {
            let err = parse_duration(s).expect_err(s);
            assert!(check(&err), "{s:?} gave {err:?}");
        }
    }

    #[test]
    fn hold_keepalive_table() {
        use TimerError as T;
        let cases: &[(u64, u64, Result<(), TimerError>)] = &[
            (90, 30, Ok(())),
            (0, 0, Ok(())),
            (3, 1, Ok(())),
            (3, 3, Ok(())),
            (65535, 21845, Ok(())),
            (1, 1, Err(T::HoldTooShort { secs: 1 })),
            (2, 0, Err(T::HoldTooShort { secs: 2 })),
            (65536, 30, Err(T::HoldTooLong { secs: 65536 })),
            (
                90,
                91,
                Err(T::KeepaliveAboveHold {
                    keepalive: 91,
                    hold: 90,
                }),
            ),
            (
                0,
                30,
                Err(T::KeepaliveZeroMismatch {
                    keepalive: 30,
                    hold: 0,
                }),
            ),
            (
                90,
                0,
                Err(T::KeepaliveZeroMismatch {
                    keepalive: 0,
                    hold: 90,
                }),
            ),
        ];
        for (hold, keepalive, want) in cases {
            assert_eq!(
                check_hold_keepalive(*hold, *keepalive),
                *want,
                "{hold}/{keepalive}"
            );
        }
    }

    #[test]
    fn community_table() {
        let ok: &[(&str, Community, &str)] = &[
            (
                "65000:100",
                Community::Standard(65000 << 16 | 100),
                "65000:100",
            ),
            ("0:0", Community::Standard(0), "0:0"),
            ("65535:65535", Community::Standard(u32::MAX), "65535:65535"),
            ("no-export", Community::Standard(0xFFFF_FF01), "no-export"),
            ("NO-EXPORT", Community::Standard(0xFFFF_FF01), "no-export"),
            ("65535:65281", Community::Standard(0xFFFF_FF01), "no-export"),
            (
                "no-advertise",
                Community::Standard(0xFFFF_FF02),
                "no-advertise",
            ),
            (
                "no-export-subconfed",
                Community::Standard(0xFFFF_FF03),
                "no-export-subconfed",
            ),
            (
                "local-as",
                Community::Standard(0xFFFF_FF03),
                "no-export-subconfed",
            ),
            ("no-peer", Community::Standard(0xFFFF_FF04), "no-peer"),
            ("blackhole", Community::Standard(0xFFFF_029A), "blackhole"),
            (
                "graceful-shutdown",
                Community::Standard(0xFFFF_0000),
                "graceful-shutdown",
            ),
            ("accept-own", Community::Standard(0xFFFF_0001), "accept-own"),
            (
                "large:65000:1:2",
                Community::Large {
                    global_admin: 65000,
                    local_data1: 1,
                    local_data2: 2,
                },
                "large:65000:1:2",
            ),
            (
                "large:4294967295:4294967295:0",
                Community::Large {
                    global_admin: u32::MAX,
                    local_data1: u32::MAX,
                    local_data2: 0,
                },
                "large:4294967295:4294967295:0",
            ),
        ];
        for (s, want, shown) in ok {
            let c = Community::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"));
            assert_eq!(c, *want, "{s}");
            assert_eq!(c.to_string(), *shown, "{s}");
            assert_eq!(
                Community::parse(shown).unwrap(),
                c,
                "display of {s} parses back"
            );
        }
        assert_eq!(
            Community::parse("65000:100").unwrap().to_u32(),
            Some(0xFDE8_0064)
        );
        assert_eq!(
            Community::parse("large:1:2:3").unwrap().large(),
            Some([1, 2, 3])
        );
        assert_eq!(Community::parse("large:1:2:3").unwrap().to_u32(), None);

        type Check = fn(&CommunityError) -> bool;
        let bad: &[(&str, Check)] = &[
            ("65536:1", |e| {
                matches!(e, CommunityError::StandardPartOutOfRange { .. })
            }),
            ("1:65536", |e| {
                matches!(e, CommunityError::StandardPartOutOfRange { .. })
            }),
            ("large:4294967296:1:1", |e| {
                matches!(e, CommunityError::LargePartOutOfRange { .. })
            }),
            ("65000", |e| matches!(e, CommunityError::Malformed { .. })),
            ("65000:", |e| matches!(e, CommunityError::Malformed { .. })),
            ("a:b", |e| matches!(e, CommunityError::Malformed { .. })),
            ("-1:5", |e| matches!(e, CommunityError::Malformed { .. })),
            ("1:2:3", |e| matches!(e, CommunityError::Malformed { .. })),
            ("large:1:2", |e| {
                matches!(e, CommunityError::Malformed { .. })
            }),
            ("large:1:2:x", |e| {
                matches!(e, CommunityError::Malformed { .. })
            }),
            ("no-such-name", |e| {
                matches!(e, CommunityError::Malformed { .. })
            }),
            ("", |e| matches!(e, CommunityError::Malformed { .. })),
        ];
        for (s, check) in bad {
            let err = Community::parse(s).expect_err(s);
            assert!(check(&err), "{s:?} gave {err:?}");
        }
    }
}
