//! Decode errors: one variant per NOTIFICATION code/subcode the codec can
//! produce, and the RFC 7606 actions.

use std::net::Ipv4Addr;

use super::notification::{
    ErrorCode, HeaderSubcode, NotificationRepr, OpenSubcode, RouteRefreshSubcode, UpdateSubcode,
};
use super::types::Asn;

/// A protocol error found while decoding. Each variant is one
/// NOTIFICATION code/subcode; [`Error::notification`] builds the message to
/// send, with the data the RFC asks for.
///
/// As the `Err` of a parse, it means *session reset*. Inside a
/// [`ParsedUpdate`](super::ParsedUpdate) it explains a treat-as-withdraw or
/// an attribute discard and is not sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// 1/1: the marker is not all ones (RFC 4271 section 6.1).
    #[error("message header: connection not synchronized (marker not all ones)")]
    ConnectionNotSynchronized,
    /// 1/2: length below 19, above the maximum, or wrong for the type.
    #[error("message header: bad message length {0}")]
    BadMessageLength(u16),
    /// 1/3: unknown message type.
    #[error("message header: bad message type {0}")]
    BadMessageType(u8),

    /// 2/0: the optional parameters do not add up (RFC 9072 section 3).
    #[error("OPEN: malformed optional parameters")]
    MalformedOptionalParameters,
    /// 2/1: version other than 4.
    #[error("OPEN: unsupported version number {0}")]
    UnsupportedVersionNumber(u8),
    /// 2/2: AS 0 (RFC 7607), or not the AS configured for the peer.
    #[error("OPEN: bad peer AS {0}")]
    BadPeerAs(Asn),
    /// 2/3: BGP identifier 0.0.0.0 (RFC 6286), or equal to ours.
    #[error("OPEN: bad BGP identifier {0}")]
    BadBgpIdentifier(Ipv4Addr),
    /// 2/4: an optional parameter other than capabilities.
    #[error("OPEN: unsupported optional parameter {0}")]
    UnsupportedOptionalParameter(u8),
    /// 2/6: hold time 1 or 2 (or refused by local policy).
    #[error("OPEN: unacceptable hold time {0}")]
    UnacceptableHoldTime(u16),
    /// 2/7: a capability we require is missing; the data lists it
    /// (RFC 5492 section 5). Raised by the session, not the codec.
    #[error("OPEN: unsupported capability")]
    UnsupportedCapability(Vec<u8>),

    /// 3/1: the UPDATE's length fields do not add up, or MP_REACH_NLRI or
    /// MP_UNREACH_NLRI appears twice (RFC 7606 section 3 (g)).
    #[error("UPDATE: malformed attribute list")]
    MalformedAttributeList,
    /// 3/2: an attribute with the optional bit clear and an unknown type;
    /// the data is the attribute.
    #[error("UPDATE: unrecognized well-known attribute")]
    UnrecognizedWellKnownAttribute(Vec<u8>),
    /// 3/3: a well-known mandatory attribute is missing; the data is its
    /// type code.
    #[error("UPDATE: missing well-known attribute {0}")]
    MissingWellKnownAttribute(u8),
    /// 3/4: optional or transitive bit in conflict with the attribute type;
    /// the data is the attribute.
    #[error("UPDATE: attribute flags error")]
    AttributeFlags(Vec<u8>),
    /// 3/5: attribute length wrong for its type; the data is the attribute.
    #[error("UPDATE: attribute length error")]
    AttributeLength(Vec<u8>),
    /// 3/6: ORIGIN value undefined; the data is the attribute.
    #[error("UPDATE: invalid ORIGIN")]
    InvalidOrigin(Vec<u8>),
    /// 3/8: NEXT_HOP syntactically wrong; the data is the attribute.
    #[error("UPDATE: invalid NEXT_HOP")]
    InvalidNextHop(Vec<u8>),
    /// 3/9: a recognized optional attribute's value is wrong; the data is
    /// the attribute.
    #[error("UPDATE: optional attribute error")]
    OptionalAttribute(Vec<u8>),
    /// 3/10: a prefix in the withdrawn routes or NLRI field does not parse.
    #[error("UPDATE: invalid network field")]
    InvalidNetworkField,
    /// 3/11: AS_PATH malformed.
    #[error("UPDATE: malformed AS_PATH")]
    MalformedAsPath,

    /// 7/1: ROUTE-REFRESH of a length other than 23 (RFC 7313 section 5);
    /// the data is the whole message.
    #[error("ROUTE-REFRESH: invalid message length")]
    RouteRefreshLength(Vec<u8>),
}

impl Error {
    /// The NOTIFICATION error code.
    pub fn code(&self) -> ErrorCode {
        use Error::*;
        match self {
            ConnectionNotSynchronized | BadMessageLength(_) | BadMessageType(_) => {
                ErrorCode::MessageHeader
            }
            MalformedOptionalParameters
            | UnsupportedVersionNumber(_)
            | BadPeerAs(_)
            | BadBgpIdentifier(_)
            | UnsupportedOptionalParameter(_)
            | UnacceptableHoldTime(_)
            | UnsupportedCapability(_) => ErrorCode::Open,
            MalformedAttributeList
            | UnrecognizedWellKnownAttribute(_)
            | MissingWellKnownAttribute(_)
            | AttributeFlags(_)
            | AttributeLength(_)
            | InvalidOrigin(_)
            | InvalidNextHop(_)
            | OptionalAttribute(_)
            | InvalidNetworkField
            | MalformedAsPath => ErrorCode::Update,
            RouteRefreshLength(_) => ErrorCode::RouteRefresh,
        }
    }

    /// The NOTIFICATION error subcode.
    pub fn subcode(&self) -> u8 {
        use Error::*;
        match self {
            ConnectionNotSynchronized => HeaderSubcode::ConnectionNotSynchronized.into(),
            BadMessageLength(_) => HeaderSubcode::BadMessageLength.into(),
            BadMessageType(_) => HeaderSubcode::BadMessageType.into(),
            MalformedOptionalParameters => OpenSubcode::Unspecific.into(),
            UnsupportedVersionNumber(_) => OpenSubcode::UnsupportedVersionNumber.into(),
            BadPeerAs(_) => OpenSubcode::BadPeerAs.into(),
            BadBgpIdentifier(_) => OpenSubcode::BadBgpIdentifier.into(),
            UnsupportedOptionalParameter(_) => OpenSubcode::UnsupportedOptionalParameter.into(),
            UnacceptableHoldTime(_) => OpenSubcode::UnacceptableHoldTime.into(),
            UnsupportedCapability(_) => OpenSubcode::UnsupportedCapability.into(),
            MalformedAttributeList => UpdateSubcode::MalformedAttributeList.into(),
            UnrecognizedWellKnownAttribute(_) => {
                UpdateSubcode::UnrecognizedWellKnownAttribute.into()
            }
            MissingWellKnownAttribute(_) => UpdateSubcode::MissingWellKnownAttribute.into(),
            AttributeFlags(_) => UpdateSubcode::AttributeFlagsError.into(),
            AttributeLength(_) => UpdateSubcode::AttributeLengthError.into(),
            InvalidOrigin(_) => UpdateSubcode::InvalidOriginAttribute.into(),
            InvalidNextHop(_) => UpdateSubcode::InvalidNextHopAttribute.into(),
            OptionalAttribute(_) => UpdateSubcode::OptionalAttributeError.into(),
            InvalidNetworkField => UpdateSubcode::InvalidNetworkField.into(),
            MalformedAsPath => UpdateSubcode::MalformedAsPath.into(),
            RouteRefreshLength(_) => RouteRefreshSubcode::InvalidMessageLength.into(),
        }
    }

    /// The NOTIFICATION data the RFCs ask for.
    pub fn data(&self) -> Vec<u8> {
        use Error::*;
        match self {
            BadMessageLength(len) => len.to_be_bytes().to_vec(),
            BadMessageType(kind) => vec![*kind],
            // RFC 4271 6.2: the largest locally supported version.
            UnsupportedVersionNumber(_) => u16::from(super::BGP_VERSION).to_be_bytes().to_vec(),
            MissingWellKnownAttribute(code) => vec![*code],
            UnsupportedCapability(data)
            | UnrecognizedWellKnownAttribute(data)
            | AttributeFlags(data)
            | AttributeLength(data)
            | InvalidOrigin(data)
            | InvalidNextHop(data)
            | OptionalAttribute(data)
            | RouteRefreshLength(data) => data.clone(),
            ConnectionNotSynchronized
            | MalformedOptionalParameters
            | BadPeerAs(_)
            | BadBgpIdentifier(_)
            | UnsupportedOptionalParameter(_)
            | UnacceptableHoldTime(_)
            | MalformedAttributeList
            | InvalidNetworkField
            | MalformedAsPath => Vec::new(),
        }
    }

    /// The NOTIFICATION to send for this error.
    pub fn notification(&self) -> NotificationRepr {
        NotificationRepr {
            code: self.code(),
            subcode: self.subcode(),
            data: self.data(),
        }
    }
}

/// The RFC 7606 section 2 approaches to a malformed UPDATE, weakest first;
/// when an UPDATE has several errors the strongest wins (section 3 (h)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Action {
    /// The attribute is dropped, the rest of the UPDATE is used.
    AttributeDiscard,
    /// Every NLRI in the UPDATE is handled as a withdrawal.
    TreatAsWithdraw,
    /// NOTIFICATION and close.
    SessionReset,
}

/// Why a message cannot be emitted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EmitError {
    /// The encoded message would exceed the negotiated maximum.
    #[error("message of {len} bytes exceeds the maximum of {max}")]
    TooLong {
        /// Encoded length.
        len: usize,
        /// The maximum for this message type and context.
        max: usize,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notification_data() {
        let n = Error::BadMessageLength(5000).notification();
        assert_eq!(
            (u8::from(n.code), n.subcode, n.data),
            (1, 2, vec![0x13, 0x88])
        );
        let n = Error::UnsupportedVersionNumber(3).notification();
        assert_eq!((u8::from(n.code), n.subcode, n.data), (2, 1, vec![0, 4]));
        let n = Error::MissingWellKnownAttribute(1).notification();
        assert_eq!((u8::from(n.code), n.subcode, n.data), (3, 3, vec![1]));
        let n = Error::RouteRefreshLength(vec![1]).notification();
        assert_eq!((u8::from(n.code), n.subcode), (7, 1));
    }
}
