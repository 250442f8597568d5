//! UPDATE messages (RFC 4271 §4.3) with RFC 7606 revised error handling.
//!
//! ```text
//! +-----------------------------------------------------+
//! |   Withdrawn Routes Length (2 octets)                |
//! +-----------------------------------------------------+
//! |   Withdrawn Routes (variable)                       |
//! +-----------------------------------------------------+
//! |   Total Path Attribute Length (2 octets)            |
//! +-----------------------------------------------------+
//! |   Path Attributes (variable)                        |
//! +-----------------------------------------------------+
//! |   Network Layer Reachability Information (variable) |
//! +-----------------------------------------------------+
//! ```
//!
//! Decoding never fails for an error confined to one attribute: RFC 7606 §2
//! lets us either *treat as withdraw* (drop every route the UPDATE carries)
//! or *discard the attribute*. Only errors that leave the NLRI unlocatable
//! (lengths inconsistent with the message, broken MP_REACH/MP_UNREACH, a
//! malformed NLRI field) reset the session.

use std::net::Ipv4Addr;

use ipnet::{IpNet, Ipv4Net};

use super::CodecOptions;
use super::attribute::{
    Aggregator, AsPath, AsSegment, FLAG_EXTENDED_LENGTH, FLAG_OPTIONAL, FLAG_TRANSITIVE,
    LargeCommunity, MpReach, MpUnreach, Origin, PathAttribute, RawAttribute, SegmentType,
    expected_flags, type_code as tc,
};
use super::error::{DecodeError, EncodeError};
use super::nlri::{Family, NextHop, decode_ipv4_prefixes, decode_prefixes, encode_prefix};
use super::notification::{Notification, code, update as sub};
use super::reader::Reader;

/// An UPDATE message as sent or as accepted.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Update {
    /// IPv4 prefixes withdrawn.
    pub withdrawn: Vec<Ipv4Net>,
    /// Path attributes, in wire order. IPv6 routes travel in
    /// [`PathAttribute::MpReach`] / [`PathAttribute::MpUnreach`].
    pub attributes: Vec<PathAttribute>,
    /// IPv4 prefixes announced with these attributes.
    pub nlri: Vec<Ipv4Net>,
}

impl Update {
    /// The End-of-RIB marker for a family (RFC 4724 §2): an empty UPDATE for
    /// IPv4 unicast, an MP_UNREACH_NLRI with no prefixes otherwise.
    pub fn end_of_rib(family: Family) -> Self {
        match family {
            Family::Ipv4Unicast => Self::default(),
            Family::Ipv6Unicast => Self {
                attributes: vec![PathAttribute::MpUnreach(MpUnreach {
                    family,
                    prefixes: Vec::new(),
                })],
                ..Self::default()
            },
        }
    }

    /// The family whose End-of-RIB this is, if it is one.
    pub fn is_end_of_rib(&self) -> Option<Family> {
        if !self.withdrawn.is_empty() || !self.nlri.is_empty() {
            return None;
        }
        match self.attributes.as_slice() {
            [] => Some(Family::Ipv4Unicast),
            [PathAttribute::MpUnreach(m)] if m.prefixes.is_empty() => Some(m.family),
            _ => None,
        }
    }

    /// All prefixes announced, IPv4 NLRI and MP_REACH_NLRI.
    pub fn announced(&self) -> Vec<IpNet> {
        let mut out: Vec<IpNet> = self.nlri.iter().copied().map(IpNet::V4).collect();
        for a in &self.attributes {
            if let PathAttribute::MpReach(m) = a {
                out.extend_from_slice(&m.prefixes);
            }
        }
        out
    }

    /// All prefixes withdrawn, IPv4 withdrawn routes and MP_UNREACH_NLRI.
    pub fn withdrawn_prefixes(&self) -> Vec<IpNet> {
        let mut out: Vec<IpNet> = self.withdrawn.iter().copied().map(IpNet::V4).collect();
        for a in &self.attributes {
            if let PathAttribute::MpUnreach(m) = a {
                out.extend_from_slice(&m.prefixes);
            }
        }
        out
    }

    /// The attribute with this type code, if present.
    pub fn attribute(&self, type_code: u8) -> Option<&PathAttribute> {
        self.attributes.iter().find(|a| a.type_code() == type_code)
    }

    pub(crate) fn encode_body(
        &self,
        opts: CodecOptions,
        out: &mut Vec<u8>,
    ) -> Result<(), EncodeError> {
        let too_long = |len| EncodeError::MessageTooLong {
            len,
            max: super::MAX_MESSAGE_LEN,
        };
        let mut withdrawn = Vec::new();
        for p in &self.withdrawn {
            encode_prefix(&IpNet::V4(*p), &mut withdrawn);
        }
        let wlen = u16::try_from(withdrawn.len()).map_err(|_| too_long(withdrawn.len()))?;
        out.extend_from_slice(&wlen.to_be_bytes());
        out.extend_from_slice(&withdrawn);
        let mut attrs = Vec::new();
        for a in &self.attributes {
            a.encode(opts.four_octet_as, &mut attrs)?;
        }
        let alen = u16::try_from(attrs.len()).map_err(|_| too_long(attrs.len()))?;
        out.extend_from_slice(&alen.to_be_bytes());
        out.extend_from_slice(&attrs);
        for p in &self.nlri {
            encode_prefix(&IpNet::V4(*p), out);
        }
        Ok(())
    }

    /// Decodes an UPDATE body (after the header), applying RFC 7606.
    pub(crate) fn decode_body(
        body: &[u8],
        opts: CodecOptions,
    ) -> Result<UpdateOutcome, DecodeError> {
        let mut r = Reader::new(body);
        let list = |reason| {
            DecodeError::new(
                reason,
                code::UPDATE,
                sub::MALFORMED_ATTRIBUTE_LIST,
                Vec::new(),
            )
        };
        // RFC 7606 §4: lengths inconsistent with the message leave the NLRI
        // unlocatable, so the session is reset.
        let wlen = r
            .u16()
            .ok_or_else(|| list("withdrawn routes length missing"))?;
        let wbytes = r
            .take(usize::from(wlen))
            .ok_or_else(|| list("withdrawn routes length exceeds the message"))?;
        let alen = r
            .u16()
            .ok_or_else(|| list("total path attribute length missing"))?;
        let abytes = r
            .take(usize::from(alen))
            .ok_or_else(|| list("total path attribute length exceeds the message"))?;
        let nlri_bytes = r.rest();
        let network =
            |reason| DecodeError::new(reason, code::UPDATE, sub::INVALID_NETWORK_FIELD, Vec::new());
        let withdrawn =
            decode_ipv4_prefixes(wbytes).ok_or_else(|| network("invalid withdrawn routes"))?;
        let nlri = decode_ipv4_prefixes(nlri_bytes).ok_or_else(|| network("invalid NLRI"))?;

        let mut attributes: Vec<PathAttribute> = Vec::new();
        let mut seen = [false; 256];
        let mut discarded = Vec::new();
        let mut withdraw_reason: Option<AttributeError> = None;
        let mut ar = Reader::new(abytes);
        while !ar.is_empty() {
            let start = abytes.len() - ar.remaining();
            let header = (|| {
                let flags = ar.u8()?;
                let code = ar.u8()?;
                let len = if flags & FLAG_EXTENDED_LENGTH != 0 {
                    usize::from(ar.u16()?)
                } else {
                    usize::from(ar.u8()?)
                };
                let value = ar.take(len)?;
                Some((flags, code, value))
            })();
            let Some((flags, type_code, value)) = header else {
                // RFC 7606 §4: an attribute running past the attribute list;
                // the NLRI is still located by the total length.
                withdraw_reason.get_or_insert(AttributeError {
                    type_code: abytes.get(start + 1).copied().unwrap_or(0),
                    reason: "attribute overruns the path attribute list",
                    notification: Notification::new(
                        code::UPDATE,
                        sub::MALFORMED_ATTRIBUTE_LIST,
                        Vec::new(),
                    ),
                });
                break;
            };
            let whole = abytes
                .get(start..abytes.len() - ar.remaining())
                .unwrap_or_default();
            let index = usize::from(type_code);
            if seen[index] {
                // RFC 7606 §3 g: repeated MP attributes reset the session,
                // other repeats are discarded.
                if matches!(type_code, tc::MP_REACH_NLRI | tc::MP_UNREACH_NLRI) {
                    return Err(list("MP_REACH_NLRI or MP_UNREACH_NLRI repeated"));
                }
                discarded.push(AttributeError::new(
                    type_code,
                    "repeated attribute",
                    sub::MALFORMED_ATTRIBUTE_LIST,
                    Vec::new(),
                ));
                continue;
            }
            seen[index] = true;
            match decode_attribute(flags, type_code, value, whole, opts) {
                Ok(Some(a)) => attributes.push(a),
                Ok(None) => {}
                Err((Action::SessionReset, e)) => {
                    return Err(DecodeError {
                        reason: e.reason,
                        notification: e.notification,
                    });
                }
                Err((Action::TreatAsWithdraw, e)) => {
                    withdraw_reason.get_or_insert(e);
                }
                Err((Action::AttributeDiscard, e)) => discarded.push(e),
            }
        }

        let update = Update {
            withdrawn,
            attributes,
            nlri,
        };
        if withdraw_reason.is_none() {
            withdraw_reason = missing_mandatory(&update);
        }
        Ok(match withdraw_reason {
            Some(reason) => {
                let mut prefixes = update.withdrawn_prefixes();
                prefixes.extend(update.announced());
                UpdateOutcome::TreatAsWithdraw { prefixes, reason }
            }
            None => UpdateOutcome::Accepted { update, discarded },
        })
    }
}

/// RFC 7606 §3 d: ORIGIN and AS_PATH (and NEXT_HOP for IPv4 NLRI) must be
/// present when the UPDATE announces anything.
fn missing_mandatory(update: &Update) -> Option<AttributeError> {
    let reaches = !update.nlri.is_empty()
        || update
            .attributes
            .iter()
            .any(|a| matches!(a, PathAttribute::MpReach(m) if !m.prefixes.is_empty()));
    if !reaches {
        return None;
    }
    let mut required = vec![tc::ORIGIN, tc::AS_PATH];
    if !update.nlri.is_empty() {
        required.push(tc::NEXT_HOP);
    }
    required
        .into_iter()
        .find(|t| update.attribute(*t).is_none())
        .map(|t| {
            AttributeError::new(
                t,
                "missing well-known mandatory attribute",
                sub::MISSING_WELL_KNOWN_ATTRIBUTE,
                vec![t],
            )
        })
}

/// How RFC 7606 says to handle a malformed attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    SessionReset,
    TreatAsWithdraw,
    AttributeDiscard,
}

/// A problem with one attribute that did not reset the session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttributeError {
    /// Type code of the attribute at fault.
    pub type_code: u8,
    /// What was wrong, for humans.
    pub reason: &'static str,
    /// The NOTIFICATION RFC 4271 would have sent (kept for logs; RFC 7606
    /// handling means it is not sent).
    pub notification: Notification,
}

impl AttributeError {
    fn new(type_code: u8, reason: &'static str, subcode: u8, data: Vec<u8>) -> Self {
        Self {
            type_code,
            reason,
            notification: Notification::new(code::UPDATE, subcode, data),
        }
    }
}

/// The result of decoding a well-framed UPDATE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpdateOutcome {
    /// The UPDATE is usable, possibly after dropping malformed attributes
    /// that do not affect route selection (RFC 7606 §2 "attribute discard").
    Accepted {
        /// The message, without the discarded attributes.
        update: Update,
        /// Attributes dropped, with reasons.
        discarded: Vec<AttributeError>,
    },
    /// An attribute error means every route in the UPDATE must be handled as
    /// withdrawn (RFC 7606 §2 "treat-as-withdraw").
    TreatAsWithdraw {
        /// Every prefix the UPDATE announced or withdrew.
        prefixes: Vec<IpNet>,
        /// The first error found.
        reason: AttributeError,
    },
}

type AttrResult = Result<Option<PathAttribute>, (Action, AttributeError)>;

/// Decodes one attribute value, deciding the RFC 7606 action on error.
fn decode_attribute(
    flags: u8,
    type_code: u8,
    value: &[u8],
    whole: &[u8],
    opts: CodecOptions,
) -> AttrResult {
    let err = |action, reason, subcode: u8, data: &[u8]| {
        Err((
            action,
            AttributeError::new(type_code, reason, subcode, data.to_vec()),
        ))
    };
    // Action for a malformed instance of each known attribute (RFC 7606 §7).
    let on_malformed = match type_code {
        tc::MP_REACH_NLRI | tc::MP_UNREACH_NLRI => Action::SessionReset,
        tc::ATOMIC_AGGREGATE | tc::AGGREGATOR => Action::AttributeDiscard,
        _ => Action::TreatAsWithdraw,
    };
    let Some(expected) = expected_flags(type_code) else {
        if flags & FLAG_OPTIONAL == 0 {
            return err(
                Action::SessionReset,
                "unrecognized well-known attribute",
                sub::UNRECOGNIZED_WELL_KNOWN_ATTRIBUTE,
                whole,
            );
        }
        if flags & FLAG_TRANSITIVE == 0 {
            // RFC 4271 §5: unrecognized optional non-transitive attributes are
            // quietly ignored.
            return Ok(None);
        }
        return Ok(Some(PathAttribute::Raw(RawAttribute {
            flags: flags & 0xe0,
            type_code,
            value: value.to_vec(),
        })));
    };
    // RFC 7606 §3 c: only the Optional and Transitive bits are checked.
    if flags & (FLAG_OPTIONAL | FLAG_TRANSITIVE) != expected {
        return err(
            on_malformed,
            "attribute flags conflict with the type",
            sub::ATTRIBUTE_FLAGS_ERROR,
            whole,
        );
    }
    let length_error = |reason| err(on_malformed, reason, sub::ATTRIBUTE_LENGTH_ERROR, whole);
    let attr = match type_code {
        tc::ORIGIN => match value {
            [v] => match Origin::from_u8(*v) {
                Some(o) => PathAttribute::Origin(o),
                None => return err(on_malformed, "invalid ORIGIN", sub::INVALID_ORIGIN, whole),
            },
            _ => return length_error("ORIGIN length is not 1"),
        },
        tc::AS_PATH => match decode_as_path(value, opts.four_octet_as) {
            Some(p) => PathAttribute::AsPath(p),
            None => {
                return err(
                    on_malformed,
                    "malformed AS_PATH",
                    sub::MALFORMED_AS_PATH,
                    &[],
                );
            }
        },
        tc::NEXT_HOP => match value {
            [a, b, c, d] => {
                let addr = Ipv4Addr::new(*a, *b, *c, *d);
                // RFC 4271 §6.3: a semantically invalid next hop makes the
                // routes unusable, not the session.
                if addr.is_unspecified() || addr.is_multicast() || addr.is_broadcast() {
                    return err(
                        on_malformed,
                        "invalid NEXT_HOP",
                        sub::INVALID_NEXT_HOP,
                        whole,
                    );
                }
                PathAttribute::NextHop(addr)
            }
            _ => return length_error("NEXT_HOP length is not 4"),
        },
        tc::MED | tc::LOCAL_PREF => match value {
            [a, b, c, d] => {
                let v = u32::from_be_bytes([*a, *b, *c, *d]);
                if type_code == tc::MED {
                    PathAttribute::Med(v)
                } else {
                    PathAttribute::LocalPref(v)
                }
            }
            _ => return length_error("MED/LOCAL_PREF length is not 4"),
        },
        tc::ATOMIC_AGGREGATE => {
            if !value.is_empty() {
                return length_error("ATOMIC_AGGREGATE is not empty");
            }
            PathAttribute::AtomicAggregate
        }
        tc::AGGREGATOR => {
            let mut r = Reader::new(value);
            let asn = if opts.four_octet_as {
                r.u32()
            } else {
                r.u16().map(u32::from)
            };
            match (asn, r.u32(), r.is_empty()) {
                (Some(asn), Some(addr), true) => PathAttribute::Aggregator(Aggregator {
                    asn,
                    address: Ipv4Addr::from(addr),
                }),
                _ => return length_error("AGGREGATOR length"),
            }
        }
        tc::COMMUNITIES => {
            if value.is_empty() || !value.len().is_multiple_of(4) {
                return err(
                    on_malformed,
                    "COMMUNITIES length is not a multiple of 4",
                    sub::OPTIONAL_ATTRIBUTE_ERROR,
                    whole,
                );
            }
            PathAttribute::Communities(
                value
                    .chunks_exact(4)
                    .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
                    .collect(),
            )
        }
        tc::LARGE_COMMUNITIES => {
            if value.is_empty() || !value.len().is_multiple_of(12) {
                return err(
                    on_malformed,
                    "LARGE_COMMUNITY length is not a multiple of 12",
                    sub::OPTIONAL_ATTRIBUTE_ERROR,
                    whole,
                );
            }
            PathAttribute::LargeCommunities(
                value
                    .chunks_exact(12)
                    .map(|c| LargeCommunity {
                        global_admin: u32::from_be_bytes([c[0], c[1], c[2], c[3]]),
                        local_data1: u32::from_be_bytes([c[4], c[5], c[6], c[7]]),
                        local_data2: u32::from_be_bytes([c[8], c[9], c[10], c[11]]),
                    })
                    .collect(),
            )
        }
        tc::MP_REACH_NLRI => return decode_mp_reach(value, whole),
        tc::MP_UNREACH_NLRI => {
            let mut r = Reader::new(value);
            let (Some(afi), Some(safi)) = (r.u16(), r.u8()) else {
                return err(
                    Action::SessionReset,
                    "MP_UNREACH_NLRI too short",
                    sub::OPTIONAL_ATTRIBUTE_ERROR,
                    whole,
                );
            };
            let Some(family) = Family::from_afi_safi(afi, safi) else {
                // A family we never negotiated: nothing of ours to withdraw.
                return Ok(None);
            };
            match decode_prefixes(family, r.rest()) {
                Some(prefixes) => PathAttribute::MpUnreach(MpUnreach { family, prefixes }),
                None => {
                    return err(
                        Action::SessionReset,
                        "invalid MP_UNREACH_NLRI prefixes",
                        sub::INVALID_NETWORK_FIELD,
                        &[],
                    );
                }
            }
        }
        _ => return Ok(None),
    };
    Ok(Some(attr))
}

fn decode_mp_reach(value: &[u8], whole: &[u8]) -> AttrResult {
    let reset = |reason, subcode: u8, data: &[u8]| {
        Err((
            Action::SessionReset,
            AttributeError::new(tc::MP_REACH_NLRI, reason, subcode, data.to_vec()),
        ))
    };
    let mut r = Reader::new(value);
    let (Some(afi), Some(safi), Some(nh_len)) = (r.u16(), r.u8(), r.u8()) else {
        return reset(
            "MP_REACH_NLRI too short",
            sub::OPTIONAL_ATTRIBUTE_ERROR,
            whole,
        );
    };
    let Some(nh) = r.take(usize::from(nh_len)) else {
        return reset(
            "MP_REACH_NLRI next hop overruns",
            sub::OPTIONAL_ATTRIBUTE_ERROR,
            whole,
        );
    };
    if r.u8().is_none() {
        return reset(
            "MP_REACH_NLRI reserved octet missing",
            sub::OPTIONAL_ATTRIBUTE_ERROR,
            whole,
        );
    }
    let Some(family) = Family::from_afi_safi(afi, safi) else {
        return Ok(None);
    };
    let Some(prefixes) = decode_prefixes(family, r.rest()) else {
        return reset(
            "invalid MP_REACH_NLRI prefixes",
            sub::INVALID_NETWORK_FIELD,
            &[],
        );
    };
    let Some(next_hop) = NextHop::decode(family, nh) else {
        // The prefixes are located, so RFC 7606 §7.11 treat-as-withdraw is
        // possible; report them through an outcome carrying the attribute.
        return Err((
            Action::TreatAsWithdraw,
            AttributeError::new(
                tc::MP_REACH_NLRI,
                "MP_REACH_NLRI next hop length does not suit the family",
                sub::OPTIONAL_ATTRIBUTE_ERROR,
                whole.to_vec(),
            ),
        ));
    };
    Ok(Some(PathAttribute::MpReach(MpReach {
        family,
        next_hop,
        prefixes,
    })))
}

/// AS_PATH segments (RFC 4271 §4.3); `None` if malformed (RFC 7606 §7.2:
/// unknown segment type, empty segment, or a segment overrunning the value).
fn decode_as_path(value: &[u8], four_octet: bool) -> Option<AsPath> {
    let mut r = Reader::new(value);
    let mut segments = Vec::new();
    while !r.is_empty() {
        let kind = SegmentType::from_u8(r.u8()?)?;
        let count = usize::from(r.u8()?);
        if count == 0 {
            return None;
        }
        let mut asns = Vec::with_capacity(count);
        for _ in 0..count {
            asns.push(if four_octet {
                r.u32()?
            } else {
                u32::from(r.u16()?)
            });
        }
        segments.push(AsSegment { kind, asns });
    }
    Some(AsPath { segments })
}

/// Re-encodes an attribute's flags/type/value; used by tests that hand-build
/// malformed attributes.
#[cfg(test)]
pub(crate) fn raw_attribute(flags: u8, type_code: u8, value: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let _ = super::attribute::encode_header_and_value(flags, type_code, value, &mut out);
    out
}
