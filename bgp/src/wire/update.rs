//! UPDATE message (RFC 4271 section 4.3) and the RFC 7606 error handling.
//!
//! ```text
//! +-----------------------------------------------------+
//! |   Withdrawn Routes Length (2 octets)                |
//! +-----------------------------------------------------+
//! |   Withdrawn Routes (variable)                       |
//! +-----------------------------------------------------+
//! |   Total Path Attribute Length (2 octets)            |
//! +-----------------------------------------------------+
//! |   Path Attributes (variable)                        |
//! +-----------------------------------------------------+
//! |   Network Layer Reachability Information (variable) |
//! +-----------------------------------------------------+
//! ```
//!
//! # Outcomes of malformed UPDATEs
//!
//! [`UpdateRepr::parse`] returns `Err` for a session reset; otherwise a
//! [`ParsedUpdate`] whose `treat_as_withdraw` says whether its NLRI must be
//! handled as withdrawals and whose `discarded` lists dropped attributes.
//!
//! | condition | outcome | NOTIFICATION / reason |
//! |---|---|---|
//! | withdrawn or attribute length beyond the message (RFC 4271 6.3) | session reset | 3/1 |
//! | withdrawn routes or NLRI field does not parse (RFC 7606 5.3) | session reset | 3/10 |
//! | MP_REACH / MP_UNREACH malformed: bad next hop length, NLRI that does not parse, flags (RFC 7606 7.11, RFC 4760 7) | session reset | 3/9 (3/4 for flags) |
//! | MP_REACH or MP_UNREACH twice (RFC 7606 3 g) | session reset | 3/1 |
//! | unknown type with the optional bit clear (RFC 4271 6.3) | session reset | 3/2 |
//! | attribute overruns the attribute field, or fewer octets than a header remain (RFC 7606 4) | treat-as-withdraw, rest of the list unseen; session reset if the UPDATE then has no NLRI to withdraw (see below) | 3/5 |
//! | any error but attribute discard in an UPDATE without reachable NLRI (IPv4 NLRI or MP_REACH_NLRI prefixes; RFC 7606 5.2) | session reset | the error's |
//! | ORIGIN length or value, AS_PATH, NEXT_HOP, MED, LOCAL_PREF length (RFC 7606 7.1-7.5) | treat-as-withdraw | 3/5, 3/6, 3/11 |
//! | COMMUNITIES not a non-zero multiple of 4, LARGE_COMMUNITY of 12 (RFC 7606 7.8, RFC 8092 6) | treat-as-withdraw | 3/5 |
//! | optional/transitive flags wrong for a known type (RFC 7606 3 c) | the type's malformed outcome | 3/4 |
//! | well-known mandatory attribute missing while NLRI are present (RFC 7606 3 d) | treat-as-withdraw | 3/3 |
//! | ATOMIC_AGGREGATE, AGGREGATOR length (RFC 7606 7.6, 7.7) | attribute discard | 3/5 |
//! | LOCAL_PREF, ORIGINATOR_ID, CLUSTER_LIST from an external peer, malformed or not (RFC 7606 7.5, 7.9, 7.10) | attribute discard | - |
//! | any other attribute repeated (RFC 7606 3 g) | later copies discarded | 3/1 |
//! | unknown optional non-transitive attribute (RFC 4271 9) | quietly ignored | - |
//!
//! When an attribute is cut short (RFC 7606 section 4) the attributes after
//! it cannot be located. RFC 7606 section 5.1 asks senders to put
//! MP_REACH_NLRI first for this reason (our encoder does), but GoBGP sends
//! attributes in type order. So if, at that point, neither an MP_REACH_NLRI nor IPv4 NLRI has
//! been found, treat-as-withdraw would withdraw nothing and could leave
//! stale routes installed: that case is a session reset (3/1) instead.
//!
//! Mandatory attributes: ORIGIN and AS_PATH when there is any NLRI, and
//! NEXT_HOP when the IPv4 NLRI field is not empty (RFC 4760 section 3 makes
//! NEXT_HOP unnecessary for MP_REACH_NLRI-only UPDATEs). LOCAL_PREF on iBGP
//! is the session's check, as are the semantic checks of RFC 4271 section
//! 6.3 (first AS is the peer's, next hop is not our address).
//!
//! # End-of-RIB (RFC 4724 section 2)
//!
//! IPv4 unicast: an UPDATE with no withdrawn routes, no attributes and no
//! NLRI. Other families: only an MP_UNREACH_NLRI with no withdrawn routes.
//! Both are recognised whatever was negotiated (GoBGP may send an IPv4
//! End-of-RIB on an IPv6-only session; the session ignores it).

use ipnet::{Ipv4Net, Ipv6Net};

use super::attribute::{self, MpReach, MpUnreach, PathAttributes};
use super::error::Error;
use super::prefix;
use super::types::{Afi, Safi};
use super::{Context, Writer};

mod field {
    pub const WITHDRAWN_LEN: core::ops::Range<usize> = 0..2;
    pub const WITHDRAWN: usize = 2;
}

/// A view of an UPDATE body (after the header).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UpdatePacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> UpdatePacket<T> {
    /// Wraps a body without checking it.
    pub const fn new_unchecked(buffer: T) -> UpdatePacket<T> {
        UpdatePacket { buffer }
    }

    /// Wraps a body after [`UpdatePacket::check_len`].
    pub fn new_checked(buffer: T) -> Result<UpdatePacket<T>, Error> {
        let p = UpdatePacket::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// Both length fields fit in the body (RFC 4271 section 6.3, else
    /// Malformed Attribute List). After this succeeds no accessor panics.
    pub fn check_len(&self) -> Result<(), Error> {
        let len = self.buffer.as_ref().len();
        if len < 4 {
            return Err(Error::MalformedAttributeList);
        }
        let wl = usize::from(self.withdrawn_len());
        if 4 + wl > len {
            return Err(Error::MalformedAttributeList);
        }
        if 4 + wl + usize::from(self.attributes_len()) > len {
            return Err(Error::MalformedAttributeList);
        }
        Ok(())
    }

    /// Withdrawn Routes Length.
    #[inline]
    pub fn withdrawn_len(&self) -> u16 {
        let b = &self.buffer.as_ref()[field::WITHDRAWN_LEN];
        u16::from_be_bytes([b[0], b[1]])
    }

    fn attributes_len_at(&self) -> usize {
        field::WITHDRAWN + usize::from(self.withdrawn_len())
    }

    /// Withdrawn Routes.
    #[inline]
    pub fn withdrawn(&self) -> &[u8] {
        &self.buffer.as_ref()[field::WITHDRAWN..self.attributes_len_at()]
    }

    /// Total Path Attribute Length.
    #[inline]
    pub fn attributes_len(&self) -> u16 {
        let at = self.attributes_len_at();
        let b = &self.buffer.as_ref()[at..at + 2];
        u16::from_be_bytes([b[0], b[1]])
    }

    /// Path Attributes.
    #[inline]
    pub fn attributes(&self) -> &[u8] {
        let start = self.attributes_len_at() + 2;
        &self.buffer.as_ref()[start..start + usize::from(self.attributes_len())]
    }

    /// Network Layer Reachability Information.
    #[inline]
    pub fn nlri(&self) -> &[u8] {
        let start = self.attributes_len_at() + 2 + usize::from(self.attributes_len());
        &self.buffer.as_ref()[start..]
    }
}

/// An UPDATE message.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct UpdateRepr {
    /// IPv4 withdrawn routes.
    pub withdrawn: Vec<Ipv4Net>,
    /// Path attributes, MP_REACH_NLRI and MP_UNREACH_NLRI included.
    pub attributes: PathAttributes,
    /// IPv4 NLRI.
    pub nlri: Vec<Ipv4Net>,
}

/// A decoded UPDATE with its RFC 7606 outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedUpdate {
    /// What was decoded.
    pub update: UpdateRepr,
    /// `Some` for treat-as-withdraw (RFC 7606 section 2): every prefix of
    /// `update.nlri` and of MP_REACH_NLRI must be handled as withdrawn; the
    /// error says why (for the log, not sent).
    pub treat_as_withdraw: Option<Error>,
    /// Attributes that were discarded and why (not sent).
    pub discarded: Vec<Error>,
}

impl ParsedUpdate {
    /// IPv6 unicast prefixes to install (none under treat-as-withdraw).
    pub fn ipv6_announced(&self) -> &[Ipv6Net] {
        match (&self.treat_as_withdraw, &self.update.attributes.mp_reach) {
            (None, Some(MpReach::Ipv6Unicast { nlri, .. })) => nlri,
            _ => &[],
        }
    }

    /// IPv6 unicast prefixes to withdraw: MP_UNREACH_NLRI, plus the
    /// MP_REACH_NLRI under treat-as-withdraw.
    pub fn ipv6_withdrawn(&self) -> impl Iterator<Item = &Ipv6Net> {
        let unreach = match &self.update.attributes.mp_unreach {
            Some(MpUnreach::Ipv6Unicast { withdrawn }) => withdrawn.as_slice(),
            _ => &[],
        };
        let reach = match (&self.treat_as_withdraw, &self.update.attributes.mp_reach) {
            (Some(_), Some(MpReach::Ipv6Unicast { nlri, .. })) => nlri.as_slice(),
            _ => &[],
        };
        unreach.iter().chain(reach)
    }

    /// IPv4 unicast prefixes to install (none under treat-as-withdraw).
    pub fn ipv4_announced(&self) -> &[Ipv4Net] {
        match self.treat_as_withdraw {
            None => &self.update.nlri,
            Some(_) => &[],
        }
    }

    /// IPv4 unicast prefixes to withdraw: the withdrawn routes, plus the
    /// NLRI under treat-as-withdraw.
    pub fn ipv4_withdrawn(&self) -> impl Iterator<Item = &Ipv4Net> {
        let nlri = match self.treat_as_withdraw {
            Some(_) => self.update.nlri.as_slice(),
            None => &[],
        };
        self.update.withdrawn.iter().chain(nlri)
    }
}

impl UpdateRepr {
    /// The End-of-RIB marker for a family (RFC 4724 section 2).
    pub fn end_of_rib(afi: Afi, safi: Safi) -> UpdateRepr {
        if (afi, safi) == (Afi::Ipv4, Safi::Unicast) {
            return UpdateRepr::default();
        }
        let mp_unreach = if (afi, safi) == (Afi::Ipv6, Safi::Unicast) {
            MpUnreach::Ipv6Unicast {
                withdrawn: Vec::new(),
            }
        } else {
            MpUnreach::Other {
                afi,
                safi,
                withdrawn: Vec::new(),
            }
        };
        UpdateRepr {
            attributes: PathAttributes {
                mp_unreach: Some(mp_unreach),
                ..PathAttributes::default()
            },
            ..UpdateRepr::default()
        }
    }

    /// The family this UPDATE is the End-of-RIB of, if it is one.
    pub fn end_of_rib_family(&self) -> Option<(Afi, Safi)> {
        if !self.withdrawn.is_empty() || !self.nlri.is_empty() {
            return None;
        }
        let a = &self.attributes;
        if a.is_empty() {
            return Some((Afi::Ipv4, Safi::Unicast));
        }
        let unreach = a.mp_unreach.as_ref()?;
        let only_unreach = PathAttributes {
            mp_unreach: Some(unreach.clone()),
            ..PathAttributes::default()
        };
        (unreach.is_empty() && *a == only_unreach).then(|| unreach.family())
    }

    /// Parses an UPDATE body. `Err` means session reset; see the module
    /// docs for every outcome.
    pub fn parse<T: AsRef<[u8]>>(
        packet: &UpdatePacket<T>,
        ctx: &Context,
    ) -> Result<ParsedUpdate, Error> {
        packet.check_len()?;
        let withdrawn =
            prefix::parse_ipv4_list(packet.withdrawn()).ok_or(Error::InvalidNetworkField)?;
        let parsed = attribute::parse(packet.attributes(), ctx)?;
        let nlri = prefix::parse_ipv4_list(packet.nlri()).ok_or(Error::InvalidNetworkField)?;
        if parsed.truncated && nlri.is_empty() && parsed.attrs.mp_reach.is_none() {
            return Err(Error::MalformedAttributeList);
        }
        let attrs = &parsed.attrs;
        let mut treat_as_withdraw = parsed.treat_as_withdraw;
        let mp_nlri = attrs.mp_reach.as_ref().is_some_and(|m| !m.is_empty());
        if !mp_nlri && nlri.is_empty() {
            // RFC 7606 section 5.2: with no reachable NLRI, an error whose
            // approach is not attribute discard resets the session (there
            // is nothing to withdraw, and what it hid may have been the
            // announcement).
            if let Some(e) = treat_as_withdraw {
                return Err(e);
            }
        }
        if treat_as_withdraw.is_none() && (mp_nlri || !nlri.is_empty()) {
            let missing = if attrs.origin.is_none() {
                Some(attribute::AttributeType::Origin)
            } else if attrs.as_path.is_none() {
                Some(attribute::AttributeType::AsPath)
            } else if !nlri.is_empty() && attrs.next_hop.is_none() {
                Some(attribute::AttributeType::NextHop)
            } else {
                None
            };
            treat_as_withdraw = missing.map(|t| Error::MissingWellKnownAttribute(t.into()));
        }
        Ok(ParsedUpdate {
            update: UpdateRepr {
                withdrawn,
                attributes: parsed.attrs,
                nlri,
            },
            treat_as_withdraw,
            discarded: parsed.discarded,
        })
    }

    /// Length of the body.
    pub fn buffer_len(&self, ctx: &Context) -> usize {
        4 + self.withdrawn.iter().map(prefix::ipv4_len).sum::<usize>()
            + self.attributes.buffer_len(ctx)
            + self.nlri.iter().map(prefix::ipv4_len).sum::<usize>()
    }

    /// Emits the body. Panics if `buf` is shorter than `buffer_len()`.
    pub fn emit(&self, buf: &mut [u8], ctx: &Context) {
        let withdrawn_len: usize = self.withdrawn.iter().map(prefix::ipv4_len).sum();
        let attrs_len = self.attributes.buffer_len(ctx);
        let mut w = Writer::new(buf);
        w.u16(withdrawn_len as u16);
        self.withdrawn
            .iter()
            .for_each(|p| prefix::emit_ipv4(&mut w, p));
        w.u16(attrs_len as u16);
        let at = w.pos();
        self.attributes.emit(&mut buf[at..at + attrs_len], ctx);
        let mut w = Writer::new(&mut buf[at + attrs_len..]);
        self.nlri.iter().for_each(|p| prefix::emit_ipv4(&mut w, p));
    }
}

#[cfg(test)]
mod tests;
