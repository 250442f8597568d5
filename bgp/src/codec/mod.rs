//! BGP-4 message codec: pure functions between bytes and typed messages,
//! no I/O.
//!
//! Every message starts with the common header (RFC 4271 §4.1):
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                                                               |
//! +                                                               +
//! |                           Marker (16 octets of 0xff)          |
//! +                                                               +
//! |                                                               |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |          Length               |      Type     |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//!
//! A stream reader calls [`peek_header`] until a whole message is buffered,
//! then [`decode`] on exactly that message. Every decoding error carries the
//! NOTIFICATION to send ([`DecodeError::notification`]).

mod attribute;
mod builder;
mod error;
mod nlri;
pub mod notification;
mod open;
mod reader;
mod route_refresh;
mod update;

#[cfg(test)]
mod interop_tests;
#[cfg(test)]
mod tests;

pub use attribute::{
    Aggregator, AsPath, AsSegment, FLAG_EXTENDED_LENGTH, FLAG_OPTIONAL, FLAG_PARTIAL,
    FLAG_TRANSITIVE, LargeCommunity, MpReach, MpUnreach, Origin, PathAttribute, RawAttribute,
    SegmentType, type_code,
};
pub use builder::UpdateBuilder;
pub use error::{DecodeError, EncodeError};
pub use nlri::{AFI_IPV4, AFI_IPV6, Family, NextHop, SAFI_UNICAST, prefix_encoded_len};
pub use notification::Notification;
pub use open::{
    AS_TRANS, BGP_VERSION, Capability, GracefulRestart, GracefulRestartFamily, Open,
    capability_code,
};
pub use route_refresh::RouteRefresh;
pub use update::{AttributeError, Update, UpdateOutcome};

use notification::{code, header};

/// Length of the common header.
pub const HEADER_LEN: usize = 19;
/// Largest message without RFC 8654 extended messages (RFC 4271 §4.1).
pub const MAX_MESSAGE_LEN: usize = 4096;

/// Message type codes (RFC 4271 §4.1, RFC 2918 §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageType {
    /// 1.
    Open,
    /// 2.
    Update,
    /// 3.
    Notification,
    /// 4.
    Keepalive,
    /// 5.
    RouteRefresh,
}

impl MessageType {
    fn from_u8(v: u8) -> Option<Self> {
        Some(match v {
            1 => MessageType::Open,
            2 => MessageType::Update,
            3 => MessageType::Notification,
            4 => MessageType::Keepalive,
            5 => MessageType::RouteRefresh,
            _ => return None,
        })
    }

    fn to_u8(self) -> u8 {
        match self {
            MessageType::Open => 1,
            MessageType::Update => 2,
            MessageType::Notification => 3,
            MessageType::Keepalive => 4,
            MessageType::RouteRefresh => 5,
        }
    }

    /// Allowed total lengths (RFC 4271 §6.1, RFC 2918 §3).
    fn length_ok(self, len: usize) -> bool {
        match self {
            MessageType::Open => len >= 29,
            MessageType::Update => len >= 23,
            MessageType::Notification => len >= 21,
            MessageType::Keepalive => len == HEADER_LEN,
            MessageType::RouteRefresh => len == 23,
        }
    }
}

/// What the session negotiated that changes the wire format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct CodecOptions {
    /// Both sides advertised the 4-octet AS capability (RFC 6793): AS_PATH
    /// and AGGREGATOR carry 4-octet ASNs.
    pub four_octet_as: bool,
}

impl CodecOptions {
    /// Options for a session that negotiated 4-octet ASNs.
    pub const FOUR_OCTET_AS: CodecOptions = CodecOptions {
        four_octet_as: true,
    };
}

/// A message to send (and, except for UPDATE, what is received).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// OPEN.
    Open(Open),
    /// UPDATE.
    Update(Update),
    /// NOTIFICATION.
    Notification(Notification),
    /// KEEPALIVE: the header alone.
    Keepalive,
    /// ROUTE-REFRESH.
    RouteRefresh(RouteRefresh),
}

impl Message {
    /// The message type.
    pub fn message_type(&self) -> MessageType {
        match self {
            Message::Open(_) => MessageType::Open,
            Message::Update(_) => MessageType::Update,
            Message::Notification(_) => MessageType::Notification,
            Message::Keepalive => MessageType::Keepalive,
            Message::RouteRefresh(_) => MessageType::RouteRefresh,
        }
    }

    /// Appends the encoded message (header included) to `out`. On error
    /// `out` is left as it was.
    pub fn encode_into(&self, opts: CodecOptions, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        let start = out.len();
        out.extend_from_slice(&[0xff; 16]);
        out.extend_from_slice(&[0, 0, self.message_type().to_u8()]);
        let body = match self {
            Message::Open(o) => o.encode_body(out),
            Message::Update(u) => u.encode_body(opts, out),
            Message::Notification(n) => {
                n.encode_body(out);
                Ok(())
            }
            Message::Keepalive => Ok(()),
            Message::RouteRefresh(r) => {
                r.encode_body(out);
                Ok(())
            }
        };
        let len = out.len() - start;
        let result = match body {
            Ok(()) if len > MAX_MESSAGE_LEN => Err(EncodeError::MessageTooLong {
                len,
                max: MAX_MESSAGE_LEN,
            }),
            other => other,
        };
        match result {
            Ok(()) => {
                // len <= 4096 was checked above.
                let l = (len as u16).to_be_bytes();
                out[start + 16] = l[0];
                out[start + 17] = l[1];
                Ok(())
            }
            Err(e) => {
                out.truncate(start);
                Err(e)
            }
        }
    }

    /// The encoded message.
    pub fn encode(&self, opts: CodecOptions) -> Result<Vec<u8>, EncodeError> {
        let mut out = Vec::new();
        self.encode_into(opts, &mut out)?;
        Ok(out)
    }
}

/// A decoded message. UPDATEs come with their RFC 7606 outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Received {
    /// OPEN (syntax checked; see [`Open::validate`] for the semantic checks).
    Open(Open),
    /// UPDATE, after RFC 7606 error handling.
    Update(UpdateOutcome),
    /// NOTIFICATION.
    Notification(Notification),
    /// KEEPALIVE.
    Keepalive,
    /// ROUTE-REFRESH.
    RouteRefresh(RouteRefresh),
}

impl Received {
    /// The message as it would be re-sent: `None` for an UPDATE that was
    /// treated as withdraw.
    pub fn into_message(self) -> Option<Message> {
        Some(match self {
            Received::Open(o) => Message::Open(o),
            Received::Update(UpdateOutcome::Accepted { update, .. }) => Message::Update(update),
            Received::Update(UpdateOutcome::TreatAsWithdraw { .. }) => return None,
            Received::Notification(n) => Message::Notification(n),
            Received::Keepalive => Message::Keepalive,
            Received::RouteRefresh(r) => Message::RouteRefresh(r),
        })
    }
}

/// A checked message header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Total message length, header included.
    pub length: usize,
    /// Message type.
    pub message_type: MessageType,
}

/// Checks the header at the start of `buf` (RFC 4271 §6.1). `Ok(None)` if
/// fewer than 19 octets are buffered; then read more.
pub fn peek_header(buf: &[u8]) -> Result<Option<Header>, DecodeError> {
    let Some(head) = buf.get(..HEADER_LEN) else {
        return Ok(None);
    };
    if head[..16].iter().any(|b| *b != 0xff) {
        return Err(DecodeError::new(
            "marker is not all ones",
            code::MESSAGE_HEADER,
            header::CONNECTION_NOT_SYNCHRONIZED,
            Vec::new(),
        ));
    }
    let len_field = [head[16], head[17]];
    let length = usize::from(u16::from_be_bytes(len_field));
    let type_octet = head[18];
    if !(HEADER_LEN..=MAX_MESSAGE_LEN).contains(&length) {
        return Err(DecodeError::new(
            "message length out of range",
            code::MESSAGE_HEADER,
            header::BAD_MESSAGE_LENGTH,
            len_field,
        ));
    }
    let Some(message_type) = MessageType::from_u8(type_octet) else {
        return Err(DecodeError::new(
            "unknown message type",
            code::MESSAGE_HEADER,
            header::BAD_MESSAGE_TYPE,
            [type_octet],
        ));
    };
    if !message_type.length_ok(length) {
        return Err(DecodeError::new(
            "message length wrong for its type",
            code::MESSAGE_HEADER,
            header::BAD_MESSAGE_LENGTH,
            len_field,
        ));
    }
    Ok(Some(Header {
        length,
        message_type,
    }))
}

/// Decodes exactly one message; `buf` must hold the whole message and
/// nothing else (a length field disagreeing with `buf` is "Bad Message
/// Length").
pub fn decode(buf: &[u8], opts: CodecOptions) -> Result<Received, DecodeError> {
    let bad_length = |reason| {
        let field = buf.get(16..18).unwrap_or_default().to_vec();
        DecodeError::new(
            reason,
            code::MESSAGE_HEADER,
            header::BAD_MESSAGE_LENGTH,
            field,
        )
    };
    let Some(h) = peek_header(buf)? else {
        return Err(bad_length("message shorter than its header"));
    };
    if h.length != buf.len() {
        return Err(bad_length("length field disagrees with the message"));
    }
    let body = &buf[HEADER_LEN..];
    Ok(match h.message_type {
        MessageType::Open => Received::Open(Open::decode_body(body)?),
        MessageType::Update => Received::Update(Update::decode_body(body, opts)?),
        MessageType::Notification => Received::Notification(
            Notification::decode_body(body).ok_or_else(|| bad_length("NOTIFICATION too short"))?,
        ),
        MessageType::Keepalive => Received::Keepalive,
        MessageType::RouteRefresh => Received::RouteRefresh(
            RouteRefresh::decode_body(body).ok_or_else(|| bad_length("ROUTE-REFRESH length"))?,
        ),
    })
}
