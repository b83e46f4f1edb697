//! Constrained fields as newtypes, and the address family numbers.

use core::fmt;

use super::enum_with_unknown;

/// An autonomous system number, always 4 octets (RFC 6793).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Asn(pub u32);

impl Asn {
    /// AS_TRANS, the 2-octet stand-in for a 4-octet AS (RFC 6793 section 9).
    pub const TRANS: Asn = Asn(23456);

    /// The value for a 2-octet field: the AS itself if it fits, else AS_TRANS.
    pub fn to_two_octet(self) -> u16 {
        u16::try_from(self.0).unwrap_or(Asn::TRANS.0 as u16)
    }
}

impl fmt::Display for Asn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl From<u32> for Asn {
    fn from(v: u32) -> Asn {
        Asn(v)
    }
}

/// The OPEN Hold Time: 0 (no keepalives) or at least 3 seconds (RFC 4271
/// section 4.2). The constructor is the only way in, so a `HoldTime` is
/// always acceptable on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HoldTime(u16);

impl HoldTime {
    /// Hold time 0: the session runs without keepalives or hold timer.
    pub const DISABLED: HoldTime = HoldTime(0);

    /// `None` for 1 and 2 seconds, which RFC 4271 forbids.
    pub const fn new(seconds: u16) -> Option<HoldTime> {
        match seconds {
            1 | 2 => None,
            s => Some(HoldTime(s)),
        }
    }

    /// The hold time in seconds.
    pub const fn seconds(self) -> u16 {
        self.0
    }

    /// The negotiated hold time: the smaller of both (RFC 4271 section 4.2).
    pub fn negotiate(self, other: HoldTime) -> HoldTime {
        HoldTime(self.0.min(other.0))
    }

    /// The keepalive interval RFC 4271 suggests: a third of the hold time,
    /// or 0 (no keepalives) when the hold time is 0.
    pub const fn keepalive_interval(self) -> u16 {
        self.0 / 3
    }
}

enum_with_unknown! {
    /// Address Family Identifier (IANA "Address Family Numbers").
    pub enum Afi(u16) {
        /// IPv4.
        Ipv4 = 1,
        /// IPv6.
        Ipv6 = 2,
    }
}

enum_with_unknown! {
    /// Subsequent Address Family Identifier (RFC 4760 section 6).
    pub enum Safi(u8) {
        /// Unicast forwarding.
        Unicast = 1,
        /// Multicast forwarding.
        Multicast = 2,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hold_time_rejects_one_and_two() {
        assert_eq!(HoldTime::new(0), Some(HoldTime::DISABLED));
        assert_eq!(HoldTime::new(1), None);
        assert_eq!(HoldTime::new(2), None);
        assert_eq!(HoldTime::new(3).map(HoldTime::seconds), Some(3));
        let h = HoldTime::new(90).unwrap();
        assert_eq!(h.negotiate(HoldTime::new(9).unwrap()).seconds(), 9);
        assert_eq!(h.keepalive_interval(), 30);
    }

    #[test]
    fn asn_two_octet() {
        assert_eq!(Asn(65001).to_two_octet(), 65001);
        assert_eq!(Asn(4_200_000_000).to_two_octet(), 23456);
    }

    #[test]
    fn afi_safi_unknown() {
        assert_eq!(Afi::from(2), Afi::Ipv6);
        assert_eq!(Afi::from(25), Afi::Unknown(25));
        assert_eq!(u16::from(Afi::Unknown(25)), 25);
        assert_eq!(Safi::from(128), Safi::Unknown(128));
    }
}
