//! ROUTE-REFRESH message (RFC 2918 section 3, subtypes RFC 7313 section 3.2).
//!
//! ```text
//!  0       7      15      23      31
//! +-------+-------+-------+-------+
//! |      AFI      | Subt. | SAFI  |
//! +-------+-------+-------+-------+
//! ```
//!
//! The body is exactly 4 octets. A shorter one is a header error (Bad
//! Message Length, 1/2, as FRR has it); a longer one is ROUTE-REFRESH
//! Message Error / Invalid Message Length (7/1, RFC 7313 section 5) with
//! the whole message as data, unless its subtype is not 0..=2. Such
//! subtypes are decoded as `Unknown` whatever the length: RFC 7313 section
//! 3.2 says to ignore such messages, which is the session's decision.

use super::enum_with_unknown;
use super::types::{Afi, Safi};
use super::Reader;

enum_with_unknown! {
    /// ROUTE-REFRESH subtypes (RFC 7313 section 3.2).
    pub enum RouteRefreshSubtype(u8) {
        /// A plain route refresh request (RFC 2918).
        Normal = 0,
        /// Beginning of Route Refresh.
        BeginningOfRouteRefresh = 1,
        /// End of Route Refresh.
        EndOfRouteRefresh = 2,
    }
}

/// A ROUTE-REFRESH message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RouteRefreshRepr {
    /// Address family.
    pub afi: Afi,
    /// Subsequent address family.
    pub safi: Safi,
    /// Subtype (the Reserved octet of RFC 2918).
    pub subtype: RouteRefreshSubtype,
}

impl RouteRefreshRepr {
    /// Length of the body.
    pub const BUFFER_LEN: usize = 4;

    /// Parses a 4-octet body; `None` for any other length, unless the
    /// subtype is an unknown one (see the module docs).
    pub fn parse(body: &[u8]) -> Option<RouteRefreshRepr> {
        if body.len() != Self::BUFFER_LEN {
            let subtype = RouteRefreshSubtype::from(*body.get(2)?);
            if !matches!(subtype, RouteRefreshSubtype::Unknown(_)) {
                return None;
            }
            return Some(RouteRefreshRepr {
                afi: Afi::from(u16::from_be_bytes([body[0], body[1]])),
                subtype,
                safi: Safi::from(body.get(3).copied().unwrap_or(0)),
            });
        }
        let mut r = Reader::new(body);
        Some(RouteRefreshRepr {
            afi: Afi::from(r.u16()?),
            subtype: RouteRefreshSubtype::from(r.u8()?),
            safi: Safi::from(r.u8()?),
        })
    }

    /// Emits the body. Panics if `buf` is shorter than 4 octets.
    pub fn emit(&self, buf: &mut [u8]) {
        buf[..2].copy_from_slice(&u16::from(self.afi).to_be_bytes());
        buf[2] = self.subtype.into();
        buf[3] = self.safi.into();
    }
}
