//! Message header (RFC 4271 section 4.1).
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                                                               |
//! +                                                               +
//! |                                                               |
//! +                                                               +
//! |                           Marker                              |
//! +                                                               +
//! |                                                               |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |          Length               |      Type     |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//!
//! [`Header::check`] applies every RFC 4271 section 6.1 check: marker all
//! ones, length within 19..=max and consistent with the type (OPEN >= 29,
//! UPDATE >= 23, NOTIFICATION >= 21, KEEPALIVE == 19, ROUTE-REFRESH >= 23;
//! the exact ROUTE-REFRESH length is an RFC 7313 error of its own), known
//! type. [`Header::frame_len`] is the stream framer for the session driver.

use super::enum_with_unknown;
use super::error::Error;
use super::{Context, HEADER_LEN};

mod field {
    use core::ops::Range;
    pub const MARKER: Range<usize> = 0..16;
    pub const LENGTH: Range<usize> = 16..18;
    pub const TYPE: usize = 18;
}

enum_with_unknown! {
    /// Message types (IANA "BGP Message Types").
    pub enum MessageType(u8) {
        /// OPEN (RFC 4271).
        Open = 1,
        /// UPDATE (RFC 4271).
        Update = 2,
        /// NOTIFICATION (RFC 4271).
        Notification = 3,
        /// KEEPALIVE (RFC 4271).
        Keepalive = 4,
        /// ROUTE-REFRESH (RFC 2918).
        RouteRefresh = 5,
    }
}

impl MessageType {
    /// Smallest valid message length for this type, header included.
    pub fn min_len(self) -> usize {
        match self {
            MessageType::Open => 29,
            MessageType::Update => 23,
            MessageType::Notification => 21,
            MessageType::Keepalive => 19,
            // Shorter is Bad Message Length, as FRR has it; longer is the
            // message's own error (7/1) or, for an unknown subtype,
            // ignored (RFC 7313 sections 5 and 3.2).
            MessageType::RouteRefresh => 23,
            MessageType::Unknown(_) => HEADER_LEN,
        }
    }
}

/// A read/write view of a message header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Header<T> {
    /// Wraps a buffer without checking it.
    pub const fn new_unchecked(buffer: T) -> Header<T> {
        Header { buffer }
    }

    /// Wraps a buffer after [`Header::check_len`].
    pub fn new_checked(buffer: T) -> Option<Header<T>> {
        let header = Header::new_unchecked(buffer);
        header.check_len().then_some(header)
    }

    /// Whether the buffer holds the 19 header octets; after this returns
    /// true no accessor panics.
    pub fn check_len(&self) -> bool {
        self.buffer.as_ref().len() >= HEADER_LEN
    }

    /// Consumes the view, returning the buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// The marker: 16 octets, all ones.
    #[inline]
    pub fn marker(&self) -> &[u8] {
        &self.buffer.as_ref()[field::MARKER]
    }

    /// Total message length, header included.
    #[inline]
    pub fn length(&self) -> u16 {
        let b = &self.buffer.as_ref()[field::LENGTH];
        u16::from_be_bytes([b[0], b[1]])
    }

    /// Message type.
    #[inline]
    pub fn message_type(&self) -> MessageType {
        MessageType::from(self.buffer.as_ref()[field::TYPE])
    }

    /// RFC 4271 section 6.1 checks (see the module docs). Call only after
    /// `check_len`.
    pub fn check(&self, ctx: &Context) -> Result<(), Error> {
        if self.marker().iter().any(|&b| b != 0xff) {
            return Err(Error::ConnectionNotSynchronized);
        }
        let len = self.length();
        let kind = self.message_type();
        if let MessageType::Unknown(t) = kind {
            // The length is checked first: a length outside 19..=max is
            // the more basic error.
            if usize::from(len) < HEADER_LEN || usize::from(len) > ctx.max_message_len(kind) {
                return Err(Error::BadMessageLength(len));
            }
            return Err(Error::BadMessageType(t));
        }
        let len_ok = usize::from(len) >= kind.min_len()
            && usize::from(len) <= ctx.max_message_len(kind)
            && (kind != MessageType::Keepalive || usize::from(len) == HEADER_LEN);
        if !len_ok {
            return Err(Error::BadMessageLength(len));
        }
        Ok(())
    }

    /// The stream framer: for bytes at the start of a receive buffer,
    /// `Ok(None)` if a whole message is not there yet, `Ok(Some(len))` when
    /// the first `len` bytes are one message whose header passed
    /// [`Header::check`], or the header error.
    pub fn frame_len(buffer: T, ctx: &Context) -> Result<Option<usize>, Error> {
        let Some(header) = Header::new_checked(buffer) else {
            return Ok(None);
        };
        header.check(ctx)?;
        let len = usize::from(header.length());
        Ok((header.buffer.as_ref().len() >= len).then_some(len))
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Header<T> {
    /// Sets the marker to all ones.
    #[inline]
    pub fn set_marker(&mut self) {
        self.buffer.as_mut()[field::MARKER].fill(0xff);
    }

    /// Sets the total length.
    #[inline]
    pub fn set_length(&mut self, len: u16) {
        self.buffer.as_mut()[field::LENGTH].copy_from_slice(&len.to_be_bytes());
    }

    /// Sets the type.
    #[inline]
    pub fn set_message_type(&mut self, kind: MessageType) {
        self.buffer.as_mut()[field::TYPE] = kind.into();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hdr(len: u16, kind: u8) -> [u8; 19] {
        let mut b = [0xff; 19];
        b[16..18].copy_from_slice(&len.to_be_bytes());
        b[18] = kind;
        b
    }

    fn check(b: &[u8]) -> Result<(), Error> {
        Header::new_checked(b).unwrap().check(&Context::default())
    }

    #[test]
    fn short_buffer() {
        assert!(Header::new_checked(&[0xff; 18][..]).is_none());
        assert_eq!(
            Header::frame_len(&[0xff; 18][..], &Context::default()),
            Ok(None)
        );
    }

    #[test]
    fn reject_marker() {
        let mut b = hdr(19, 4);
        b[3] = 0;
        assert_eq!(check(&b), Err(Error::ConnectionNotSynchronized));
    }

    #[test]
    fn reject_length_below_19() {
        assert_eq!(check(&hdr(18, 4)), Err(Error::BadMessageLength(18)));
    }

    #[test]
    fn reject_length_above_4096() {
        assert_eq!(check(&hdr(4097, 2)), Err(Error::BadMessageLength(4097)));
        let ctx = Context {
            extended_messages: true,
            external: false,
            ..Context::default()
        };
        assert_eq!(Header::new_unchecked(&hdr(4097, 2)[..]).check(&ctx), Ok(()));
        // OPEN stays at 4096 even with extended messages.
        assert_eq!(
            Header::new_unchecked(&hdr(4097, 1)[..]).check(&ctx),
            Err(Error::BadMessageLength(4097))
        );
    }

    #[test]
    fn reject_length_for_type() {
        assert_eq!(check(&hdr(28, 1)), Err(Error::BadMessageLength(28)));
        assert_eq!(check(&hdr(22, 2)), Err(Error::BadMessageLength(22)));
        assert_eq!(check(&hdr(20, 3)), Err(Error::BadMessageLength(20)));
        assert_eq!(check(&hdr(20, 4)), Err(Error::BadMessageLength(20)));
        assert_eq!(check(&hdr(22, 5)), Err(Error::BadMessageLength(22)));
    }

    #[test]
    fn reject_type() {
        assert_eq!(check(&hdr(19, 0)), Err(Error::BadMessageType(0)));
        assert_eq!(check(&hdr(19, 6)), Err(Error::BadMessageType(6)));
    }

    #[test]
    fn frame_len() {
        let ctx = Context::default();
        let mut stream = hdr(23, 2).to_vec();
        assert_eq!(Header::frame_len(&stream[..], &ctx), Ok(None));
        stream.extend_from_slice(&[0, 0, 0, 0, 0xff]);
        assert_eq!(Header::frame_len(&stream[..], &ctx), Ok(Some(23)));
    }

    #[test]
    fn emit_header() {
        let mut b = [0u8; 19];
        let mut h = Header::new_unchecked(&mut b[..]);
        h.set_marker();
        h.set_length(19);
        h.set_message_type(MessageType::Keepalive);
        assert_eq!(b, hdr(19, 4));
    }
}
