//! The BGP-4 wire codec: pure, synchronous, no I/O.
//!
//! Shape (after smoltcp's `wire` module): for each structure there is
//!
//! - a *view* over borrowed bytes (e.g. [`Header`], [`OpenPacket`],
//!   [`UpdatePacket`], [`AttributePacket`]) with a private `field` module of
//!   byte ranges under the RFC diagram, `#[inline]` accessors and a
//!   documented `check_len`; after `check_len` succeeds no accessor panics;
//! - an owned, validated *representation* (`*Repr`, [`Message`]) with
//!   `parse` (from a checked view or bytes) and `emit` (into a buffer of at
//!   least `buffer_len()` bytes).
//!
//! Decoding depends on what the OPEN exchange negotiated (2- or 4-octet AS
//! numbers in AS_PATH and AGGREGATOR, the maximum message size): that lives
//! in a [`Context`], passed to every parse and emit, as in holo-bgp's
//! `DecodeCxt`.
//!
//! # Errors
//!
//! Every decode error is an [`Error`] that maps one to one onto a
//! NOTIFICATION code and subcode ([`Error::notification`] builds the message,
//! data included). UPDATE messages follow RFC 7606: a malformed UPDATE is
//! either a session reset (`Err(Error)`), or is returned with
//! [`ParsedUpdate::treat_as_withdraw`] set (all its NLRI become
//! withdrawals), and attributes that were discarded are listed in
//! [`ParsedUpdate::discarded`]. The table of outcomes is in [`update`].
//!
//! # Panics
//!
//! No `parse`, `new_checked`, `check_len` or accessor used after a
//! successful `check_len` panics, whatever the input: this is tested with
//! random, truncated and mutated messages (`tests/robustness.rs`). `emit`
//! panics only if the caller passes a buffer shorter than `buffer_len()`, a
//! programming error; [`Message::to_bytes`] sizes the buffer itself and
//! refuses messages longer than the negotiated maximum.
//!
//! # References
//!
//! RFC 4271 (BGP-4), RFC 2918 (route refresh), RFC 4724 (graceful restart),
//! RFC 4760 (multiprotocol), RFC 2545 (IPv6 next hops), RFC 5492
//! (capabilities), RFC 6793 (4-octet AS), RFC 7606 (revised UPDATE error
//! handling), RFC 8092 (large communities), RFC 8538 (notification
//! support for graceful restart), RFC 9072 (extended optional parameters
//! length), RFC 1997 (communities), RFC 4486 (cease subcodes).

mod attribute;
mod capability;
mod error;
mod header;
mod message;
mod notification;
mod open;
mod prefix;
mod route_refresh;
mod types;
pub mod update;

pub use attribute::{
    Aggregator, AsPath, AsSegment, AttributeFlags, AttributePacket, AttributeType, Community,
    Ipv6NextHop, LargeCommunity, MpReach, MpUnreach, Origin, PathAttributes, SegmentType,
    UnknownAttribute,
};
pub use capability::{Capability, CapabilityCode, GracefulRestart, GracefulRestartFamily};
pub use error::{Action, EmitError, Error};
pub use header::{Header, MessageType};
pub use message::Message;
pub use notification::{
    CeaseSubcode, ErrorCode, FsmSubcode, HeaderSubcode, NotificationRepr, OpenSubcode,
    RouteRefreshSubcode, UpdateSubcode,
};
pub use open::{OpenPacket, OpenRepr};
pub use route_refresh::{RouteRefreshRepr, RouteRefreshSubtype};
pub use types::{Afi, Asn, HoldTime, Safi};
pub use update::{ParsedUpdate, UpdatePacket, UpdateRepr};

/// Length of the fixed message header (RFC 4271 section 4.1).
pub const HEADER_LEN: usize = 19;
/// Largest message without RFC 8654 extended messages (RFC 4271 section 4.1).
pub const MAX_MESSAGE_LEN: usize = 4096;
/// Largest message with RFC 8654 extended messages.
pub const MAX_EXTENDED_MESSAGE_LEN: usize = 65535;
/// The BGP version this codec speaks.
pub const BGP_VERSION: u8 = 4;

/// What the OPEN exchange negotiated, as far as the encoding depends on it.
///
/// `Context::default()` is the state before OPENs are exchanged: 2-octet AS
/// numbers and 4096-byte messages.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Context {
    /// Both sides sent the 4-octet AS capability (RFC 6793): AS_PATH and
    /// AGGREGATOR carry 4-octet AS numbers.
    pub four_octet_as: bool,
    /// Both sides sent the extended message capability (RFC 8654): UPDATE,
    /// NOTIFICATION and ROUTE-REFRESH may be up to 65535 bytes.
    pub extended_messages: bool,
    /// The peer is in another AS (an external session): a LOCAL_PREF it
    /// sends is ignored, and discarded when malformed (RFC 4271 section
    /// 5.1.5, RFC 7606 section 7.5).
    pub external: bool,
}

impl Context {
    /// The context for a session where `local` and `remote` are the OPENs
    /// that were sent and received.
    pub fn negotiated(local: &OpenRepr, remote: &OpenRepr) -> Context {
        let has =
            |open: &OpenRepr, code: CapabilityCode| open.capabilities.iter().any(|c| c.is(code));
        Context {
            four_octet_as: has(local, CapabilityCode::FourOctetAs)
                && has(remote, CapabilityCode::FourOctetAs),
            extended_messages: has(local, CapabilityCode::ExtendedMessage)
                && has(remote, CapabilityCode::ExtendedMessage),
            external: local.asn() != remote.asn(),
        }
    }

    /// The largest message accepted and emitted for messages of `kind`
    /// (OPEN and KEEPALIVE stay at 4096 even with extended messages, RFC
    /// 8654 section 3).
    pub fn max_message_len(&self, kind: MessageType) -> usize {
        match kind {
            MessageType::Open | MessageType::Keepalive => MAX_MESSAGE_LEN,
            _ if self.extended_messages => MAX_EXTENDED_MESSAGE_LEN,
            _ => MAX_MESSAGE_LEN,
        }
    }
}

/// Declares a protocol-number enum with an `Unknown` arm and the `From`
/// conversions both ways, like smoltcp's `enum_with_unknown!`: views never
/// reject a number, the code that acts on it decides.
macro_rules! enum_with_unknown {
    (
        $(#[$enum_attr:meta])*
        pub enum $name:ident($ty:ty) {
            $( $(#[$variant_attr:meta])* $variant:ident = $value:expr ),+ $(,)?
        }
    ) => {
        $(#[$enum_attr])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $( $(#[$variant_attr])* $variant ),*,
            /// A value this codec does not know.
            Unknown($ty),
        }

        impl ::core::convert::From<$ty> for $name {
            fn from(value: $ty) -> Self {
                match value {
                    $( $value => $name::$variant ),*,
                    other => $name::Unknown(other),
                }
            }
        }

        impl ::core::convert::From<$name> for $ty {
            fn from(value: $name) -> Self {
                match value {
                    $( $name::$variant => $value ),*,
                    $name::Unknown(other) => other,
                }
            }
        }
    };
}
pub(crate) use enum_with_unknown;

/// A cursor over bytes whose reads return `None` past the end instead of
/// panicking: every variable-length structure is parsed through it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Reader<'a> {
        Reader { buf }
    }

    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    pub fn remaining(&self) -> &'a [u8] {
        self.buf
    }

    pub fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if n > self.buf.len() {
            return None;
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Some(head)
    }

    pub fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }

    pub fn u16(&mut self) -> Option<u16> {
        self.take(2).map(|b| u16::from_be_bytes([b[0], b[1]]))
    }

    pub fn u32(&mut self) -> Option<u32> {
        self.take(4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub fn ipv4(&mut self) -> Option<std::net::Ipv4Addr> {
        self.u32().map(std::net::Ipv4Addr::from)
    }

    pub fn ipv6(&mut self) -> Option<std::net::Ipv6Addr> {
        let b: [u8; 16] = self.take(16)?.try_into().ok()?;
        Some(std::net::Ipv6Addr::from(b))
    }
}

/// A cursor for `emit`: writes panic past the end, which `buffer_len()`
/// rules out for callers that size their buffer with it.
#[derive(Debug)]
pub(crate) struct Writer<'a> {
    buf: &'a mut [u8],
    pos: usize,
}

impl<'a> Writer<'a> {
    pub fn new(buf: &'a mut [u8]) -> Writer<'a> {
        Writer { buf, pos: 0 }
    }

    pub fn pos(&self) -> usize {
        self.pos
    }

    pub fn put(&mut self, bytes: &[u8]) {
        self.buf[self.pos..self.pos + bytes.len()].copy_from_slice(bytes);
        self.pos += bytes.len();
    }

    pub fn u8(&mut self, v: u8) {
        self.put(&[v]);
    }

    pub fn u16(&mut self, v: u16) {
        self.put(&v.to_be_bytes());
    }

    pub fn u32(&mut self, v: u32) {
        self.put(&v.to_be_bytes());
    }
}
