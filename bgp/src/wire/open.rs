//! OPEN message (RFC 4271 section 4.2), with RFC 9072 extended optional
//! parameters.
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+
//! |    Version    |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |     My Autonomous System      |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |           Hold Time           |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                         BGP Identifier                        |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! | Opt Parm Len  |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |             Optional Parameters (variable)                    |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//!
//! Optional parameter:              RFC 9072 extended form (Opt Parm
//! +------------------+             Len 255, then 255 as the first type):
//! | Parm. Type (1)   |             +------------------------------+
//! +------------------+             | Non-Ext OP Type = 255 (1)    |
//! | Parm. Length (1) |             +------------------------------+
//! +------------------+             | Extended Opt. Parm. Len. (2) |
//! | Parm. Value      |             +------------------------------+
//! +------------------+             | params: type (1), len (2), v |
//!                                  +------------------------------+
//! ```
//!
//! Parsing checks, in RFC 4271 section 6.2 order: version 4 (else 2/1),
//! AS not 0 (RFC 7607, 2/2; also for the 4-octet AS capability), hold
//! time not 1 or 2 (2/6), BGP identifier not 0.0.0.0 (RFC 6286, 2/3),
//! optional parameters that add up exactly to the message (2/0) and are
//! all capabilities (else 2/4). Whether the AS is the one configured and
//! the identifier differs from ours is the session's check.
//!
//! All capabilities are emitted in a single capabilities parameter, as
//! GoBGP does; the extended form is used only when that parameter would
//! not fit in 255 octets. Peers that split capabilities over several
//! parameters therefore do not round-trip byte for byte.

use std::net::Ipv4Addr;

use super::capability::{self, Capability, CapabilityCode, GracefulRestart};
use super::error::Error;
use super::types::{Afi, Asn, HoldTime, Safi};
use super::{Reader, Writer, BGP_VERSION};

mod field {
    use core::ops::Range;
    pub const VERSION: usize = 0;
    pub const MY_AS: Range<usize> = 1..3;
    pub const HOLD_TIME: Range<usize> = 3..5;
    pub const BGP_ID: Range<usize> = 5..9;
    pub const OPT_PARM_LEN: usize = 9;
    pub const OPT_PARMS: usize = 10;
}

const PARAM_CAPABILITIES: u8 = 2;
const PARAM_EXTENDED: u8 = 255;

/// A view of an OPEN message body (the bytes after the header).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> OpenPacket<T> {
    /// Wraps a body without checking it.
    pub const fn new_unchecked(buffer: T) -> OpenPacket<T> {
        OpenPacket { buffer }
    }

    /// Wraps a body after [`OpenPacket::check_len`].
    pub fn new_checked(buffer: T) -> Option<OpenPacket<T>> {
        let p = OpenPacket::new_unchecked(buffer);
        p.check_len().then_some(p)
    }

    /// Whether the 10 fixed octets are there; after this returns true no
    /// accessor panics.
    pub fn check_len(&self) -> bool {
        self.buffer.as_ref().len() >= field::OPT_PARMS
    }

    /// Version.
    #[inline]
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VERSION]
    }

    /// My Autonomous System (2 octets; AS_TRANS for a 4-octet AS).
    #[inline]
    pub fn my_as(&self) -> u16 {
        let b = &self.buffer.as_ref()[field::MY_AS];
        u16::from_be_bytes([b[0], b[1]])
    }

    /// Hold Time, unchecked.
    #[inline]
    pub fn hold_time(&self) -> u16 {
        let b = &self.buffer.as_ref()[field::HOLD_TIME];
        u16::from_be_bytes([b[0], b[1]])
    }

    /// BGP Identifier.
    #[inline]
    pub fn bgp_id(&self) -> Ipv4Addr {
        let b = &self.buffer.as_ref()[field::BGP_ID];
        Ipv4Addr::new(b[0], b[1], b[2], b[3])
    }

    /// Optional Parameters Length (255 announces the RFC 9072 form).
    #[inline]
    pub fn opt_parm_len(&self) -> u8 {
        self.buffer.as_ref()[field::OPT_PARM_LEN]
    }

    /// Everything after Opt Parm Len.
    #[inline]
    pub fn opt_parms(&self) -> &[u8] {
        &self.buffer.as_ref()[field::OPT_PARMS..]
    }
}

/// An OPEN message.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct OpenRepr {
    /// The 2-octet My Autonomous System field: the AS, or AS_TRANS when
    /// the AS needs 4 octets. See [`OpenRepr::asn`].
    pub my_as: u16,
    /// Proposed hold time.
    pub hold_time: HoldTime,
    /// BGP Identifier.
    pub bgp_id: Ipv4Addr,
    /// Capabilities, in the order received.
    pub capabilities: Vec<Capability>,
}

impl OpenRepr {
    /// An OPEN for `asn`: sets My AS (AS_TRANS if needed) and prepends the
    /// 4-octet AS capability to `capabilities`.
    pub fn new(
        asn: Asn,
        hold_time: HoldTime,
        bgp_id: Ipv4Addr,
        mut capabilities: Vec<Capability>,
    ) -> OpenRepr {
        capabilities.retain(|c| c.code() != CapabilityCode::FourOctetAs);
        capabilities.insert(0, Capability::FourOctetAs(asn));
        OpenRepr {
            my_as: asn.to_two_octet(),
            hold_time,
            bgp_id,
            capabilities,
        }
    }

    /// The speaker's AS: from the 4-octet AS capability if present (RFC
    /// 6793 section 4.1), else My AS.
    pub fn asn(&self) -> Asn {
        self.capabilities
            .iter()
            .find_map(|c| match c {
                Capability::FourOctetAs(asn) => Some(*asn),
                _ => None,
            })
            .unwrap_or(Asn(u32::from(self.my_as)))
    }

    /// Whether capability `code` is present, with a value that parsed (a
    /// malformed one negotiates nothing).
    pub fn has_capability(&self, code: CapabilityCode) -> bool {
        self.capabilities.iter().any(|c| c.is(code))
    }

    /// The graceful restart capability, if present (the first one).
    pub fn graceful_restart(&self) -> Option<&GracefulRestart> {
        self.capabilities.iter().find_map(|c| match c {
            Capability::GracefulRestart(gr) => Some(gr),
            _ => None,
        })
    }

    /// The AFI/SAFIs of the multiprotocol capabilities.
    pub fn multiprotocol(&self) -> impl Iterator<Item = (Afi, Safi)> + '_ {
        self.capabilities.iter().filter_map(|c| match c {
            Capability::Multiprotocol { afi, safi } => Some((*afi, *safi)),
            _ => None,
        })
    }

    /// Parses and checks an OPEN body (see the module docs for the checks).
    pub fn parse<T: AsRef<[u8]>>(packet: &OpenPacket<T>) -> Result<OpenRepr, Error> {
        if !packet.check_len() {
            // The header check guarantees 10 octets; this is for direct callers.
            return Err(Error::MalformedOptionalParameters);
        }
        if packet.version() != BGP_VERSION {
            return Err(Error::UnsupportedVersionNumber(packet.version()));
        }
        if packet.my_as() == 0 {
            return Err(Error::BadPeerAs(Asn(0)));
        }
        let hold_time = HoldTime::new(packet.hold_time())
            .ok_or(Error::UnacceptableHoldTime(packet.hold_time()))?;
        let bgp_id = packet.bgp_id();
        if bgp_id.is_unspecified() {
            return Err(Error::BadBgpIdentifier(bgp_id));
        }
        let capabilities = parse_parameters(packet.opt_parm_len(), packet.opt_parms())?;
        let open = OpenRepr {
            my_as: packet.my_as(),
            hold_time,
            bgp_id,
            capabilities,
        };
        if open.asn() == Asn(0) {
            return Err(Error::BadPeerAs(Asn(0)));
        }
        Ok(open)
    }

    fn caps_len(&self) -> usize {
        self.capabilities.iter().map(Capability::buffer_len).sum()
    }

    fn extended(&self) -> bool {
        2 + self.caps_len() > 255 || self.capabilities.iter().any(|c| c.value_len() > 255)
    }

    /// Length of the body.
    pub fn buffer_len(&self) -> usize {
        let caps = self.caps_len();
        field::OPT_PARMS
            + match (caps, self.extended()) {
                (0, _) => 0,
                (_, false) => 2 + caps,
                (_, true) => 3 + 3 + caps,
            }
    }

    /// Emits the body. Panics if `buf` is shorter than `buffer_len()`.
    /// Capability values longer than 255 octets are not representable
    /// (RFC 5492) and are truncated in their length octet.
    pub fn emit(&self, buf: &mut [u8]) {
        let mut w = Writer::new(buf);
        w.u8(BGP_VERSION);
        w.u16(self.my_as);
        w.u16(self.hold_time.seconds());
        w.put(&self.bgp_id.octets());
        let caps = self.caps_len();
        if caps == 0 {
            w.u8(0);
        } else if !self.extended() {
            w.u8((2 + caps) as u8);
            w.u8(PARAM_CAPABILITIES);
            w.u8(caps as u8);
        } else {
            w.u8(PARAM_EXTENDED);
            w.u8(PARAM_EXTENDED);
            w.u16((3 + caps) as u16);
            w.u8(PARAM_CAPABILITIES);
            w.u16(caps as u16);
        }
        for c in &self.capabilities {
            c.emit(&mut w);
        }
    }
}

/// Parses the optional parameters; `len` is the Opt Parm Len octet and
/// `rest` everything after it.
fn parse_parameters(len: u8, rest: &[u8]) -> Result<Vec<Capability>, Error> {
    let malformed = Error::MalformedOptionalParameters;
    // RFC 9072 section 2: a non-zero length followed by type 255.
    let extended = len != 0 && rest.first() == Some(&PARAM_EXTENDED);
    let (params, expected) = if extended {
        let mut r = Reader::new(&rest[1..]);
        let ext_len = r.u16().ok_or(malformed.clone())?;
        (r.remaining(), usize::from(ext_len))
    } else {
        (rest, usize::from(len))
    };
    if params.len() != expected {
        return Err(malformed);
    }
    let mut r = Reader::new(params);
    let mut caps = Vec::new();
    while !r.is_empty() {
        let kind = r.u8().ok_or(malformed.clone())?;
        let plen = if extended {
            r.u16()
        } else {
            r.u8().map(u16::from)
        };
        let value = plen
            .and_then(|l| r.take(usize::from(l)))
            .ok_or(malformed.clone())?;
        if kind != PARAM_CAPABILITIES {
            return Err(Error::UnsupportedOptionalParameter(kind));
        }
        caps.extend(capability::parse_list(value).ok_or(malformed.clone())?);
    }
    Ok(caps)
}
