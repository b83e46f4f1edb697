//! Capabilities (RFC 5492), carried in OPEN optional parameter type 2.
//!
//! ```text
//! +------------------------------+
//! | Capability Code (1 octet)    |
//! +------------------------------+
//! | Capability Length (1 octet)  |
//! +------------------------------+
//! | Capability Value (variable)  |
//! ~                              ~
//! +------------------------------+
//! ```
//!
//! Decoded: multiprotocol (RFC 4760 section 8), route refresh (RFC 2918),
//! extended message (RFC 8654), graceful restart (RFC 4724 section 3, N bit
//! from RFC 8538) and 4-octet AS (RFC 6793). Every other capability (FQDN
//! 73, extended next hop 5, enhanced route refresh 70, ADD-PATH 69, ...) is
//! kept as [`Capability::Unknown`] and never fatal; so is a known capability
//! whose value does not parse, which then simply is not negotiated.
//!
//! Graceful restart value:
//!
//! ```text
//! +--------------------------------------------------+
//! | Restart Flags (4 bits: R N . .)                  |
//! +--------------------------------------------------+
//! | Restart Time in seconds (12 bits)                |
//! +--------------------------------------------------+
//! | Address Family Identifier (16 bits)              |  repeated per
//! +--------------------------------------------------+  AFI/SAFI
//! | Subsequent Address Family Identifier (8 bits)    |
//! +--------------------------------------------------+
//! | Flags for Address Family (8 bits: F . . . . . . .)|
//! +--------------------------------------------------+
//! ```

use super::enum_with_unknown;
use super::types::{Afi, Asn, Safi};
use super::{Reader, Writer};

enum_with_unknown! {
    /// Capability codes (IANA "Capability Codes").
    pub enum CapabilityCode(u8) {
        /// Multiprotocol Extensions (RFC 4760).
        Multiprotocol = 1,
        /// Route Refresh (RFC 2918).
        RouteRefresh = 2,
        /// Extended Next Hop Encoding (RFC 8950).
        ExtendedNextHop = 5,
        /// BGP Extended Message (RFC 8654).
        ExtendedMessage = 6,
        /// Graceful Restart (RFC 4724).
        GracefulRestart = 64,
        /// 4-octet AS number (RFC 6793).
        FourOctetAs = 65,
        /// ADD-PATH (RFC 7911).
        AddPath = 69,
        /// Enhanced Route Refresh (RFC 7313).
        EnhancedRouteRefresh = 70,
        /// Long-Lived Graceful Restart (RFC 9494).
        LongLivedGracefulRestart = 71,
        /// FQDN (draft-walton-bgp-hostname-capability).
        Fqdn = 73,
    }
}

/// One capability.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Capability {
    /// Multiprotocol extensions for one AFI/SAFI (RFC 4760 section 8).
    Multiprotocol {
        /// Address family.
        afi: Afi,
        /// Subsequent address family.
        safi: Safi,
    },
    /// Route refresh (RFC 2918).
    RouteRefresh,
    /// Extended messages up to 65535 bytes (RFC 8654).
    ExtendedMessage,
    /// Graceful restart (RFC 4724, RFC 8538).
    GracefulRestart(GracefulRestart),
    /// The speaker's 4-octet AS (RFC 6793).
    FourOctetAs(Asn),
    /// Anything else, or a known capability whose value did not parse.
    Unknown {
        /// Capability code.
        code: u8,
        /// Capability value.
        value: Vec<u8>,
    },
}

/// The graceful restart capability value (RFC 4724 section 3).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct GracefulRestart {
    /// R bit: the speaker has restarted.
    pub restart_state: bool,
    /// N bit (RFC 8538): NOTIFICATIONs other than Hard Reset also keep
    /// routes stale.
    pub notification: bool,
    /// Restart time in seconds, 0..=4095 (12 bits; larger values are
    /// truncated to 12 bits when emitted).
    pub restart_time: u16,
    /// The families whose routes are preserved, with their F bits.
    pub families: Vec<GracefulRestartFamily>,
}

/// One AFI/SAFI of the graceful restart capability.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct GracefulRestartFamily {
    /// Address family.
    pub afi: Afi,
    /// Subsequent address family.
    pub safi: Safi,
    /// F bit: forwarding state was preserved across the restart.
    pub forwarding_state: bool,
}

const GR_R: u16 = 0x8000;
const GR_N: u16 = 0x4000;
const GR_TIME: u16 = 0x0fff;
const GR_F: u8 = 0x80;

impl Capability {
    /// The capability code.
    pub fn code(&self) -> CapabilityCode {
        match self {
            Capability::Multiprotocol { .. } => CapabilityCode::Multiprotocol,
            Capability::RouteRefresh => CapabilityCode::RouteRefresh,
            Capability::ExtendedMessage => CapabilityCode::ExtendedMessage,
            Capability::GracefulRestart(_) => CapabilityCode::GracefulRestart,
            Capability::FourOctetAs(_) => CapabilityCode::FourOctetAs,
            Capability::Unknown { code, .. } => CapabilityCode::from(*code),
        }
    }

    /// Whether this is capability `code`, parsed: a known code whose value
    /// did not parse is kept as `Unknown` and negotiates nothing.
    pub fn is(&self, code: CapabilityCode) -> bool {
        !matches!(self, Capability::Unknown { .. }) && self.code() == code
    }

    /// Decodes one capability value. Never fails: what does not parse is
    /// kept as `Unknown`.
    pub fn parse(code: u8, value: &[u8]) -> Capability {
        Capability::parse_known(code, value).unwrap_or_else(|| Capability::Unknown {
            code,
            value: value.to_vec(),
        })
    }

    fn parse_known(code: u8, value: &[u8]) -> Option<Capability> {
        let mut r = Reader::new(value);
        let cap = match CapabilityCode::from(code) {
            CapabilityCode::Multiprotocol => {
                let afi = Afi::from(r.u16()?);
                let _reserved = r.u8()?;
                let safi = Safi::from(r.u8()?);
                Capability::Multiprotocol { afi, safi }
            }
            CapabilityCode::RouteRefresh => Capability::RouteRefresh,
            CapabilityCode::ExtendedMessage => Capability::ExtendedMessage,
            CapabilityCode::FourOctetAs => Capability::FourOctetAs(Asn(r.u32()?)),
            CapabilityCode::GracefulRestart => {
                let flags_time = r.u16()?;
                let mut families = Vec::new();
                while !r.is_empty() {
                    families.push(GracefulRestartFamily {
                        afi: Afi::from(r.u16()?),
                        safi: Safi::from(r.u8()?),
                        forwarding_state: r.u8()? & GR_F != 0,
                    });
                }
                Capability::GracefulRestart(GracefulRestart {
                    restart_state: flags_time & GR_R != 0,
                    notification: flags_time & GR_N != 0,
                    restart_time: flags_time & GR_TIME,
                    families,
                })
            }
            _ => return None,
        };
        // Trailing bytes make the value malformed.
        r.is_empty().then_some(cap)
    }

    /// Length of the value.
    pub fn value_len(&self) -> usize {
        match self {
            Capability::Multiprotocol { .. } | Capability::FourOctetAs(_) => 4,
            Capability::RouteRefresh | Capability::ExtendedMessage => 0,
            Capability::GracefulRestart(gr) => 2 + 4 * gr.families.len(),
            Capability::Unknown { value, .. } => value.len(),
        }
    }

    /// Length of code, length and value.
    pub fn buffer_len(&self) -> usize {
        2 + self.value_len()
    }

    /// Emits code, length and value. The value must be at most 255 octets
    /// (a graceful restart capability with at most 63 families).
    pub(crate) fn emit(&self, w: &mut Writer<'_>) {
        w.u8(self.code().into());
        w.u8(self.value_len() as u8);
        match self {
            Capability::Multiprotocol { afi, safi } => {
                w.u16((*afi).into());
                w.u8(0);
                w.u8((*safi).into());
            }
            Capability::RouteRefresh | Capability::ExtendedMessage => {}
            Capability::FourOctetAs(asn) => w.u32(asn.0),
            Capability::GracefulRestart(gr) => {
                let mut flags_time = gr.restart_time & GR_TIME;
                if gr.restart_state {
                    flags_time |= GR_R;
                }
                if gr.notification {
                    flags_time |= GR_N;
                }
                w.u16(flags_time);
                for f in &gr.families {
                    w.u16(f.afi.into());
                    w.u8(f.safi.into());
                    w.u8(if f.forwarding_state { GR_F } else { 0 });
                }
            }
            Capability::Unknown { value, .. } => w.put(value),
        }
    }
}

/// Parses the value of a capabilities optional parameter: a sequence of
/// capabilities. `None` if a capability overruns the parameter.
pub(crate) fn parse_list(value: &[u8]) -> Option<Vec<Capability>> {
    let mut r = Reader::new(value);
    let mut caps = Vec::new();
    while !r.is_empty() {
        let code = r.u8()?;
        let len = r.u8()?;
        caps.push(Capability::parse(code, r.take(usize::from(len))?));
    }
    Some(caps)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn emit(cap: &Capability) -> Vec<u8> {
        let mut buf = vec![0xff; cap.buffer_len()];
        cap.emit(&mut Writer::new(&mut buf));
        buf
    }

    #[test]
    fn multiprotocol() {
        let bytes = [1, 4, 0, 2, 0, 1];
        let cap = Capability::Multiprotocol {
            afi: Afi::Ipv6,
            safi: Safi::Unicast,
        };
        assert_eq!(parse_list(&bytes), Some(vec![cap.clone()]));
        assert_eq!(emit(&cap), bytes);
    }

    #[test]
    fn graceful_restart_bits() {
        // R and N set, restart time 120, IPv6 unicast with F, IPv4 without.
        let bytes = [64, 10, 0xc0, 120, 0, 2, 1, 0x80, 0, 1, 1, 0];
        let cap = Capability::GracefulRestart(GracefulRestart {
            restart_state: true,
            notification: true,
            restart_time: 120,
            families: vec![
                GracefulRestartFamily {
                    afi: Afi::Ipv6,
                    safi: Safi::Unicast,
                    forwarding_state: true,
                },
                GracefulRestartFamily {
                    afi: Afi::Ipv4,
                    safi: Safi::Unicast,
                    forwarding_state: false,
                },
            ],
        });
        assert_eq!(parse_list(&bytes), Some(vec![cap.clone()]));
        assert_eq!(emit(&cap), bytes);
    }

    /// A known code whose value does not parse is not that capability: a
    /// 4-octet AS capability with 2 octets, an extended message one with a
    /// value, a route refresh one with a value.
    #[test]
    fn a_malformed_known_capability_negotiates_nothing() {
        for (bytes, code) in [
            (&[65u8, 2, 0xfd, 0xe9][..], CapabilityCode::FourOctetAs),
            (&[6, 1, 0][..], CapabilityCode::ExtendedMessage),
            (&[2, 1, 0][..], CapabilityCode::RouteRefresh),
        ] {
            let caps = parse_list(bytes).unwrap();
            assert!(matches!(caps[0], Capability::Unknown { .. }), "{caps:?}");
            assert_eq!(caps[0].code(), code);
            assert!(!caps[0].is(code), "{caps:?}");
        }
        assert!(Capability::FourOctetAs(Asn(65001)).is(CapabilityCode::FourOctetAs));
    }

    #[test]
    fn four_octet_as() {
        let bytes = [65, 4, 0xfa, 0x56, 0xea, 0x00];
        let cap = Capability::FourOctetAs(Asn(4_200_000_000));
        assert_eq!(parse_list(&bytes), Some(vec![cap.clone()]));
        assert_eq!(emit(&cap), bytes);
    }

    #[test]
    fn unknown_kept() {
        // FQDN "vm", extended next hop, ADD-PATH.
        let bytes = [
            73, 4, 2, b'v', b'm', 0, 5, 6, 0, 1, 0, 1, 0, 2, 69, 4, 0, 2, 1, 1,
        ];
        let caps = parse_list(&bytes).unwrap();
        assert_eq!(
            caps[0],
            Capability::Unknown {
                code: 73,
                value: vec![2, b'v', b'm', 0]
            }
        );
        assert_eq!(caps[1].code(), CapabilityCode::ExtendedNextHop);
        assert_eq!(caps[2].code(), CapabilityCode::AddPath);
        let mut out = Vec::new();
        for c in &caps {
            out.extend(emit(c));
        }
        assert_eq!(out, bytes);
    }

    #[test]
    fn malformed_known_kept_as_unknown() {
        // Multiprotocol with 3 octets, 4-octet AS with 2, GR with a partial family.
        for bytes in [
            &[1u8, 3, 0, 2, 0][..],
            &[65, 2, 0, 1],
            &[64, 4, 0, 120, 0, 2],
        ] {
            let caps = parse_list(bytes).unwrap();
            assert!(matches!(caps[0], Capability::Unknown { .. }), "{caps:?}");
        }
    }

    #[test]
    fn reject_overrun() {
        assert_eq!(parse_list(&[2, 1]), None);
        assert_eq!(parse_list(&[2]), None);
    }
}
