//! Packs announcements and withdrawals into as few UPDATEs as fit in
//! 4096-octet messages (RFC 4271 §4.3: one attribute set per UPDATE, any
//! number of prefixes sharing it).

use std::net::Ipv4Addr;

use ipnet::{IpNet, Ipv4Net};

use super::attribute::{MpReach, MpUnreach, PathAttribute, type_code};
use super::error::EncodeError;
use super::nlri::{Family, NextHop, prefix_encoded_len};
use super::update::Update;
use super::{CodecOptions, HEADER_LEN, MAX_MESSAGE_LEN, Message};

/// Withdrawn Routes Length + Total Path Attribute Length.
const UPDATE_FIXED: usize = HEADER_LEN + 4;
/// Largest single prefix on the wire (IPv6 /128).
const LARGEST_PREFIX: usize = 17;

/// Builds the UPDATEs that announce a set of prefixes with one set of
/// attributes and withdraw others.
///
/// IPv4 prefixes go in the NLRI and Withdrawn Routes fields, IPv6 in
/// MP_REACH_NLRI / MP_UNREACH_NLRI (RFC 4760). The builder adds NEXT_HOP and
/// the MP attributes itself; MP_REACH_NLRI is put first, as RFC 7606 §5.1
/// asks, and the other attributes in ascending type order (RFC 4271 §5).
/// Each message is filled with as many prefixes as fit, so the count is the
/// minimum for a greedy fill in the given order (each message wastes less
/// than one prefix's worth of octets). IPv4 withdrawals first fill the space
/// left in the last IPv4 announcement.
///
/// ```
/// use ferrolb_bgp::codec::{AsPath, CodecOptions, Origin, PathAttribute, UpdateBuilder};
/// let updates = UpdateBuilder::new(CodecOptions::FOUR_OCTET_AS)
///     .attributes([PathAttribute::Origin(Origin::Igp), PathAttribute::AsPath(AsPath::sequence([64512]))])
///     .next_hop_v4("192.0.2.1".parse().unwrap())
///     .announce(["198.51.100.7/32".parse().unwrap()])
///     .withdraw(["203.0.113.9/32".parse().unwrap()])
///     .build()
///     .unwrap();
/// assert_eq!(updates.len(), 1);
/// ```
#[derive(Debug, Clone)]
pub struct UpdateBuilder {
    opts: CodecOptions,
    max_len: usize,
    attributes: Vec<PathAttribute>,
    next_hop_v4: Option<Ipv4Addr>,
    next_hop_v6: Option<NextHop>,
    announce: Vec<IpNet>,
    withdraw: Vec<IpNet>,
}

impl UpdateBuilder {
    /// A builder for a session with these codec options.
    pub fn new(opts: CodecOptions) -> Self {
        Self {
            opts,
            max_len: MAX_MESSAGE_LEN,
            attributes: Vec::new(),
            next_hop_v4: None,
            next_hop_v6: None,
            announce: Vec::new(),
            withdraw: Vec::new(),
        }
    }

    /// The attributes every announced prefix shares (ORIGIN, AS_PATH, MED,
    /// LOCAL_PREF, communities…), without NEXT_HOP or MP attributes.
    pub fn attributes(mut self, attributes: impl IntoIterator<Item = PathAttribute>) -> Self {
        self.attributes.extend(attributes);
        self
    }

    /// The IPv4 next hop for IPv4 announcements.
    pub fn next_hop_v4(mut self, next_hop: Ipv4Addr) -> Self {
        self.next_hop_v4 = Some(next_hop);
        self
    }

    /// The IPv6 next hop for IPv6 announcements.
    pub fn next_hop_v6(mut self, next_hop: NextHop) -> Self {
        self.next_hop_v6 = Some(next_hop);
        self
    }

    /// Prefixes to announce.
    pub fn announce(mut self, prefixes: impl IntoIterator<Item = IpNet>) -> Self {
        self.announce.extend(prefixes);
        self
    }

    /// Prefixes to withdraw.
    pub fn withdraw(mut self, prefixes: impl IntoIterator<Item = IpNet>) -> Self {
        self.withdraw.extend(prefixes);
        self
    }

    /// A smaller message size limit (for tests and peers with small buffers);
    /// values above 4096 are capped.
    pub fn max_message_len(mut self, max: usize) -> Self {
        self.max_len = max.min(MAX_MESSAGE_LEN);
        self
    }

    /// The UPDATEs, each guaranteed to encode in at most the size limit.
    pub fn build(&self) -> Result<Vec<Update>, EncodeError> {
        if let Some(a) = self.attributes.iter().find(|a| {
            matches!(
                a.type_code(),
                type_code::NEXT_HOP | type_code::MP_REACH_NLRI | type_code::MP_UNREACH_NLRI
            )
        }) {
            return Err(EncodeError::ManagedAttribute(a.type_code()));
        }
        let mut base = self.attributes.clone();
        base.sort_by_key(PathAttribute::type_code);

        let v4 = |list: &[IpNet]| -> Vec<Ipv4Net> {
            list.iter()
                .filter_map(|p| match p {
                    IpNet::V4(p) => Some(*p),
                    IpNet::V6(_) => None,
                })
                .collect()
        };
        let v6 = |list: &[IpNet]| -> Vec<IpNet> {
            list.iter()
                .filter(|p| matches!(p, IpNet::V6(_)))
                .copied()
                .collect()
        };
        let mut out = Vec::new();

        // IPv4 announcements; remember the free octets of the last one.
        let mut last_free = 0;
        let announce4 = v4(&self.announce);
        if !announce4.is_empty() {
            let nh = self
                .next_hop_v4
                .ok_or(EncodeError::MissingNextHop(Family::Ipv4Unicast))?;
            let mut attrs = base.clone();
            let pos = attrs.partition_point(|a| a.type_code() < type_code::NEXT_HOP);
            attrs.insert(pos, PathAttribute::NextHop(nh));
            let room = self.room_after(&attrs)?;
            let (chunks, free) = chunk(&announce4, room, |p| prefix_encoded_len(&IpNet::V4(*p)));
            last_free = free;
            out.extend(chunks.into_iter().map(|nlri| Update {
                withdrawn: Vec::new(),
                attributes: attrs.clone(),
                nlri,
            }));
        }

        // IPv4 withdrawals: top up the last announcement, then their own messages.
        let withdraw4 = v4(&self.withdraw);
        let mut rest = withdraw4.as_slice();
        if let Some(last) = out.last_mut() {
            let mut used = 0;
            let taken = rest
                .iter()
                .take_while(|p| {
                    used += prefix_encoded_len(&IpNet::V4(**p));
                    used <= last_free
                })
                .count();
            last.withdrawn.extend_from_slice(&rest[..taken]);
            rest = &rest[taken..];
        }
        if !rest.is_empty() {
            let room = self.max_len.saturating_sub(UPDATE_FIXED);
            let (chunks, _) = chunk(rest, room, |p| prefix_encoded_len(&IpNet::V4(*p)));
            out.extend(chunks.into_iter().map(|withdrawn| Update {
                withdrawn,
                ..Update::default()
            }));
        }

        // IPv6 announcements in MP_REACH_NLRI.
        let announce6 = v6(&self.announce);
        if !announce6.is_empty() {
            let nh = self
                .next_hop_v6
                .ok_or(EncodeError::MissingNextHop(Family::Ipv6Unicast))?;
            if !nh.suits(Family::Ipv6Unicast) {
                return Err(EncodeError::NextHopFamilyMismatch {
                    next_hop: nh,
                    family: Family::Ipv6Unicast,
                });
            }
            let base_len = self.attributes_len(&base)?;
            // AFI, SAFI, next hop length, next hop, reserved.
            let mp_fixed = 2 + 1 + 1 + nh.encoded_len() + 1;
            let room = self.mp_room(base_len, mp_fixed)?;
            let (chunks, _) = chunk(&announce6, room, prefix_encoded_len);
            for prefixes in chunks {
                let mut attributes = Vec::with_capacity(base.len() + 1);
                attributes.push(PathAttribute::MpReach(MpReach {
                    family: Family::Ipv6Unicast,
                    next_hop: nh,
                    prefixes,
                }));
                attributes.extend(base.iter().cloned());
                out.push(Update {
                    attributes,
                    ..Update::default()
                });
            }
        }

        // IPv6 withdrawals in MP_UNREACH_NLRI.
        let withdraw6 = v6(&self.withdraw);
        if !withdraw6.is_empty() {
            let room = self.mp_room(0, 3)?;
            let (chunks, _) = chunk(&withdraw6, room, prefix_encoded_len);
            out.extend(chunks.into_iter().map(|prefixes| Update {
                attributes: vec![PathAttribute::MpUnreach(MpUnreach {
                    family: Family::Ipv6Unicast,
                    prefixes,
                })],
                ..Update::default()
            }));
        }
        Ok(out)
    }

    /// The UPDATEs, encoded.
    pub fn build_encoded(&self) -> Result<Vec<Vec<u8>>, EncodeError> {
        self.build()?
            .into_iter()
            .map(|u| Message::Update(u).encode(self.opts))
            .collect()
    }

    fn attributes_len(&self, attrs: &[PathAttribute]) -> Result<usize, EncodeError> {
        let mut buf = Vec::new();
        for a in attrs {
            a.encode(self.opts.four_octet_as, &mut buf)?;
        }
        Ok(buf.len())
    }

    /// Octets left for NLRI after the fixed parts and these attributes.
    fn room_after(&self, attrs: &[PathAttribute]) -> Result<usize, EncodeError> {
        let len = self.attributes_len(attrs)?;
        let room = self.max_len.saturating_sub(UPDATE_FIXED + len);
        if room < LARGEST_PREFIX {
            return Err(EncodeError::AttributesTooLong {
                len,
                max: self.max_len,
            });
        }
        Ok(room)
    }

    /// Octets left for NLRI inside an MP attribute whose value starts with
    /// `mp_fixed` octets, next to `other_len` octets of other attributes.
    /// The MP attribute header is taken as 4 octets (extended length) unless
    /// the whole value fits in 255, which only ever gives away 1 octet.
    fn mp_room(&self, other_len: usize, mp_fixed: usize) -> Result<usize, EncodeError> {
        let budget = self.max_len.saturating_sub(UPDATE_FIXED + other_len);
        let room = if budget <= 3 + 255 {
            budget.saturating_sub(3 + mp_fixed)
        } else {
            budget.saturating_sub(4 + mp_fixed)
        };
        if room < LARGEST_PREFIX {
            return Err(EncodeError::AttributesTooLong {
                len: other_len,
                max: self.max_len,
            });
        }
        Ok(room)
    }
}

/// Splits `items` greedily into runs of at most `room` octets; also returns
/// the octets left free in the last run.
fn chunk<T: Clone>(items: &[T], room: usize, size: impl Fn(&T) -> usize) -> (Vec<Vec<T>>, usize) {
    let mut out = Vec::new();
    let mut cur = Vec::new();
    let mut used = 0;
    for item in items {
        let s = size(item);
        if used + s > room && !cur.is_empty() {
            out.push(std::mem::take(&mut cur));
            used = 0;
        }
        used += s;
        cur.push(item.clone());
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    (out, room.saturating_sub(used))
}
