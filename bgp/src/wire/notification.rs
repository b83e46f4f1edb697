//! NOTIFICATION message (RFC 4271 section 4.5) and its error codes.
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! | Error code    | Error subcode |   Data (variable)             |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//!
//! Codes and subcodes are enums with an `Unknown` arm; the message keeps the
//! raw subcode so that any NOTIFICATION round-trips. RFC 8538 Hard Reset
//! (Cease subcode 9) carries another code, subcode and data in its data:
//! [`NotificationRepr::hard_reset`] builds one, [`NotificationRepr::inner`]
//! reads it back.
//!
//! Parsing never fails: the message header check already guarantees the two
//! fixed octets.

use super::enum_with_unknown;

enum_with_unknown! {
    /// NOTIFICATION error codes (IANA "BGP Error (Notification) Codes").
    pub enum ErrorCode(u8) {
        /// Message Header Error (RFC 4271).
        MessageHeader = 1,
        /// OPEN Message Error (RFC 4271).
        Open = 2,
        /// UPDATE Message Error (RFC 4271).
        Update = 3,
        /// Hold Timer Expired (RFC 4271).
        HoldTimerExpired = 4,
        /// Finite State Machine Error (RFC 4271, subcodes RFC 6608).
        Fsm = 5,
        /// Cease (RFC 4271, subcodes RFC 4486, RFC 8538).
        Cease = 6,
        /// ROUTE-REFRESH Message Error (RFC 7313).
        RouteRefresh = 7,
        /// Send Hold Timer Expired (RFC 9687).
        SendHoldTimerExpired = 8,
    }
}

enum_with_unknown! {
    /// Message Header Error subcodes (RFC 4271 section 6.1).
    pub enum HeaderSubcode(u8) {
        /// Unspecific.
        Unspecific = 0,
        /// Connection Not Synchronized: the marker is not all ones.
        ConnectionNotSynchronized = 1,
        /// Bad Message Length.
        BadMessageLength = 2,
        /// Bad Message Type.
        BadMessageType = 3,
    }
}

enum_with_unknown! {
    /// OPEN Message Error subcodes (RFC 4271 section 6.2, RFC 5492).
    pub enum OpenSubcode(u8) {
        /// Unspecific.
        Unspecific = 0,
        /// Unsupported Version Number.
        UnsupportedVersionNumber = 1,
        /// Bad Peer AS.
        BadPeerAs = 2,
        /// Bad BGP Identifier.
        BadBgpIdentifier = 3,
        /// Unsupported Optional Parameter.
        UnsupportedOptionalParameter = 4,
        /// Unacceptable Hold Time.
        UnacceptableHoldTime = 6,
        /// Unsupported Capability (RFC 5492).
        UnsupportedCapability = 7,
        /// Role Mismatch (RFC 9234).
        RoleMismatch = 11,
    }
}

enum_with_unknown! {
    /// UPDATE Message Error subcodes (RFC 4271 section 6.3).
    pub enum UpdateSubcode(u8) {
        /// Unspecific.
        Unspecific = 0,
        /// Malformed Attribute List.
        MalformedAttributeList = 1,
        /// Unrecognized Well-known Attribute.
        UnrecognizedWellKnownAttribute = 2,
        /// Missing Well-known Attribute.
        MissingWellKnownAttribute = 3,
        /// Attribute Flags Error.
        AttributeFlagsError = 4,
        /// Attribute Length Error.
        AttributeLengthError = 5,
        /// Invalid ORIGIN Attribute.
        InvalidOriginAttribute = 6,
        /// Invalid NEXT_HOP Attribute.
        InvalidNextHopAttribute = 8,
        /// Optional Attribute Error.
        OptionalAttributeError = 9,
        /// Invalid Network Field.
        InvalidNetworkField = 10,
        /// Malformed AS_PATH.
        MalformedAsPath = 11,
    }
}

enum_with_unknown! {
    /// Finite State Machine Error subcodes (RFC 6608).
    pub enum FsmSubcode(u8) {
        /// Unspecified.
        Unspecified = 0,
        /// Received an unexpected message in OpenSent.
        UnexpectedInOpenSent = 1,
        /// Received an unexpected message in OpenConfirm.
        UnexpectedInOpenConfirm = 2,
        /// Received an unexpected message in Established.
        UnexpectedInEstablished = 3,
    }
}

enum_with_unknown! {
    /// Cease subcodes (RFC 4486, RFC 8538, RFC 9384).
    pub enum CeaseSubcode(u8) {
        /// Maximum Number of Prefixes Reached.
        MaxPrefixes = 1,
        /// Administrative Shutdown.
        AdministrativeShutdown = 2,
        /// Peer De-configured.
        PeerDeconfigured = 3,
        /// Administrative Reset.
        AdministrativeReset = 4,
        /// Connection Rejected.
        ConnectionRejected = 5,
        /// Other Configuration Change.
        OtherConfigurationChange = 6,
        /// Connection Collision Resolution.
        ConnectionCollisionResolution = 7,
        /// Out of Resources.
        OutOfResources = 8,
        /// Hard Reset (RFC 8538): routes are dropped even with graceful restart.
        HardReset = 9,
        /// BFD Down (RFC 9384).
        BfdDown = 10,
    }
}

enum_with_unknown! {
    /// ROUTE-REFRESH Message Error subcodes (RFC 7313).
    pub enum RouteRefreshSubcode(u8) {
        /// Invalid Message Length.
        InvalidMessageLength = 1,
    }
}

/// A NOTIFICATION message.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NotificationRepr {
    /// Error code.
    pub code: ErrorCode,
    /// Error subcode, raw; see the typed accessors.
    pub subcode: u8,
    /// Diagnostic data.
    pub data: Vec<u8>,
}

impl NotificationRepr {
    /// A NOTIFICATION without data.
    pub fn new(code: ErrorCode, subcode: u8) -> NotificationRepr {
        NotificationRepr {
            code,
            subcode,
            data: Vec::new(),
        }
    }

    /// A Cease NOTIFICATION.
    pub fn cease(subcode: CeaseSubcode) -> NotificationRepr {
        NotificationRepr::new(ErrorCode::Cease, subcode.into())
    }

    /// RFC 8538 section 3: Cease/Hard Reset wrapping `inner`.
    pub fn hard_reset(inner: &NotificationRepr) -> NotificationRepr {
        let mut data = Vec::with_capacity(2 + inner.data.len());
        data.push(inner.code.into());
        data.push(inner.subcode);
        data.extend_from_slice(&inner.data);
        NotificationRepr {
            code: ErrorCode::Cease,
            subcode: CeaseSubcode::HardReset.into(),
            data,
        }
    }

    /// The Cease subcode, if this is a Cease.
    pub fn cease_subcode(&self) -> Option<CeaseSubcode> {
        (self.code == ErrorCode::Cease).then(|| CeaseSubcode::from(self.subcode))
    }

    /// Whether this is an RFC 8538 Hard Reset.
    pub fn is_hard_reset(&self) -> bool {
        self.cease_subcode() == Some(CeaseSubcode::HardReset)
    }

    /// The NOTIFICATION a Hard Reset carries, if this is one with at least
    /// the two octets of code and subcode in its data.
    pub fn inner(&self) -> Option<NotificationRepr> {
        if !self.is_hard_reset() {
            return None;
        }
        match self.data.as_slice() {
            [code, subcode, data @ ..] => Some(NotificationRepr {
                code: ErrorCode::from(*code),
                subcode: *subcode,
                data: data.to_vec(),
            }),
            _ => None,
        }
    }

    /// The RFC 9003 shutdown communication of an Administrative Shutdown or
    /// Reset, if its data holds a valid one.
    pub fn shutdown_communication(&self) -> Option<&str> {
        match self.cease_subcode()? {
            CeaseSubcode::AdministrativeShutdown | CeaseSubcode::AdministrativeReset => {}
            _ => return None,
        }
        let (len, rest) = self.data.split_first()?;
        core::str::from_utf8(rest.get(..usize::from(*len))?).ok()
    }

    /// Parses the message body (after the header). Never fails for a body of
    /// at least 2 octets; shorter bodies are refused by the header check.
    pub fn parse(body: &[u8]) -> Option<NotificationRepr> {
        match body {
            [code, subcode, data @ ..] => Some(NotificationRepr {
                code: ErrorCode::from(*code),
                subcode: *subcode,
                data: data.to_vec(),
            }),
            _ => None,
        }
    }

    /// Length of the body.
    pub fn buffer_len(&self) -> usize {
        2 + self.data.len()
    }

    /// Emits the body. Panics if `buf` is shorter than `buffer_len()`.
    pub fn emit(&self, buf: &mut [u8]) {
        buf[0] = self.code.into();
        buf[1] = self.subcode;
        buf[2..2 + self.data.len()].copy_from_slice(&self.data);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hard_reset_round_trip() {
        let inner = NotificationRepr::cease(CeaseSubcode::MaxPrefixes);
        let hr = NotificationRepr::hard_reset(&inner);
        assert_eq!(hr.data, [6, 1]);
        assert!(hr.is_hard_reset());
        assert_eq!(hr.inner(), Some(inner));
        assert_eq!(
            NotificationRepr::cease(CeaseSubcode::HardReset).inner(),
            None
        );
    }

    #[test]
    fn shutdown_communication() {
        let mut n = NotificationRepr::cease(CeaseSubcode::AdministrativeShutdown);
        n.data = b"\x05maint".to_vec();
        assert_eq!(n.shutdown_communication(), Some("maint"));
        n.data = b"\x09maint".to_vec();
        assert_eq!(n.shutdown_communication(), None);
    }

    #[test]
    fn unknown_codes_round_trip() {
        let body = [42, 7, 1, 2];
        let n = NotificationRepr::parse(&body).unwrap();
        assert_eq!(n.code, ErrorCode::Unknown(42));
        let mut buf = [0xff; 4];
        n.emit(&mut buf);
        assert_eq!(buf, body);
    }
}
