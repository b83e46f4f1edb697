//! IPv6 prefixes as the FIB sees them: a 128-bit network address and a length.

use std::fmt;
use std::net::Ipv6Addr;
use std::str::FromStr;

/// An IPv6 prefix. The constructor clears host bits, so two equal prefixes
/// always compare equal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Prefix {
    addr: u128,
    len: u8,
}

/// Why a prefix was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PrefixError {
    #[error("prefix length {0} is longer than 128")]
    Length(u32),
    #[error("{0:?} is not an IPv6 prefix (expected ADDRESS/LENGTH)")]
    Syntax(String),
}

/// The mask of the first `len` bits of a 128-bit address.
#[inline]
pub(crate) fn mask(len: u8) -> u128 {
    if len == 0 {
        0
    } else {
        u128::MAX << (128 - u32::from(len))
    }
}

impl Prefix {
    /// The default route `::/0`.
    pub const DEFAULT: Prefix = Prefix { addr: 0, len: 0 };

    /// A prefix of `len` bits of `addr`; host bits are cleared.
    pub fn new(addr: impl Into<u128>, len: u8) -> Result<Self, PrefixError> {
        if len > 128 {
            return Err(PrefixError::Length(len.into()));
        }
        Ok(Prefix {
            addr: addr.into() & mask(len),
            len,
        })
    }

    /// The network address as a 128-bit integer (host bits zero).
    #[inline]
    pub fn bits(&self) -> u128 {
        self.addr
    }

    #[inline]
    #[allow(clippy::len_without_is_empty)] // a prefix length, not a collection size
    pub fn len(&self) -> u8 {
        self.len
    }

    /// True for `::/0` (a prefix is never "empty" otherwise).
    #[inline]
    pub fn is_default(&self) -> bool {
        self.len == 0
    }

    /// The network address.
    pub fn addr(&self) -> Ipv6Addr {
        Ipv6Addr::from(self.addr)
    }

    /// Whether `addr` lies inside this prefix.
    #[inline]
    pub fn contains(&self, addr: u128) -> bool {
        addr & mask(self.len) == self.addr
    }

    /// Whether `other` is equal to or more specific than this prefix.
    pub fn covers(&self, other: &Prefix) -> bool {
        other.len >= self.len && self.contains(other.addr)
    }
}

impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr(), self.len)
    }
}

impl FromStr for Prefix {
    type Err = PrefixError;

    /// Parses `ADDRESS/LENGTH`; host bits are cleared.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let syntax = || PrefixError::Syntax(s.to_string());
        let (addr, len) = s.split_once('/').ok_or_else(syntax)?;
        let addr: Ipv6Addr = addr.parse().map_err(|_| syntax())?;
        let len: u32 = len.parse().map_err(|_| syntax())?;
        let len = u8::try_from(len).map_err(|_| PrefixError::Length(len))?;
        Prefix::new(addr, len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_display_and_host_bits() {
        let p: Prefix = "2001:db8::1/32".parse().unwrap();
        assert_eq!(p.to_string(), "2001:db8::/32");
        assert_eq!(p.len(), 32);
        assert!(p.contains(0x2001_0db8_ffff_0000_0000_0000_0000_0001));
        assert!(!p.contains(0x2001_0db9_0000_0000_0000_0000_0000_0000));
        let d: Prefix = "::/0".parse().unwrap();
        assert!(d.is_default() && d.contains(u128::MAX) && d.covers(&p));
        let h: Prefix = "2001:db8::1/128".parse().unwrap();
        assert_eq!(h.bits(), 0x2001_0db8_0000_0000_0000_0000_0000_0001);
        assert!(p.covers(&h) && !h.covers(&p));
    }

    #[test]
    fn rejects_bad_prefixes() {
        assert_eq!("::/129".parse::<Prefix>(), Err(PrefixError::Length(129)));
        assert_eq!("::/999".parse::<Prefix>(), Err(PrefixError::Length(999)));
        assert!(matches!(
            "::".parse::<Prefix>(),
            Err(PrefixError::Syntax(_))
        ));
        assert!(matches!(
            "1.2.3.0/24".parse::<Prefix>(),
            Err(PrefixError::Syntax(_))
        ));
        assert!(matches!(
            "::/x".parse::<Prefix>(),
            Err(PrefixError::Syntax(_))
        ));
        assert_eq!(Prefix::new(0u128, 200), Err(PrefixError::Length(200)));
    }
}
