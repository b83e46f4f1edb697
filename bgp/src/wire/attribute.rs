//! Path attributes (RFC 4271 sections 4.3 and 5, RFC 4760, RFC 1997,
//! RFC 8092), decoded with the RFC 7606 outcomes.
//!
//! ```text
//!  0                   1
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |  Attr. Flags  |Attr. Type Code|    flags: O T P E . . . .
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+    (optional, transitive, partial,
//! | Attr. Length (1 or 2 octets)  |     extended length)
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! | Attribute Value (variable)    |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//!
//! MP_REACH_NLRI (RFC 4760 section 3) and MP_UNREACH_NLRI (section 4):
//!
//! ```text
//! +---------------------------------------------------------+
//! | Address Family Identifier (2 octets)                    |
//! +---------------------------------------------------------+
//! | Subsequent Address Family Identifier (1 octet)          |
//! +---------------------------------------------------------+
//! | Length of Next Hop Network Address (1 octet)            |  MP_REACH
//! +---------------------------------------------------------+  only
//! | Network Address of Next Hop (variable)                  |
//! +---------------------------------------------------------+
//! | Reserved (1 octet)                                      |
//! +---------------------------------------------------------+
//! | NLRI / Withdrawn Routes (variable)                      |
//! +---------------------------------------------------------+
//! ```
//!
//! For IPv6 unicast the next hop is 16 octets (global) or 32 (global then
//! link-local), RFC 2545 section 3. Other families are kept undecoded.
//!
//! AS_PATH segments (RFC 4271 section 4.3, RFC 6793 for 4-octet ASNs):
//! `type (1) | count of ASes (1) | ASes (2 or 4 octets each)`.
//!
//! Unknown attributes: optional transitive ones are kept with their flags
//! (whoever re-advertises them sets the Partial bit, RFC 4271 section 5);
//! optional non-transitive ones are quietly ignored (RFC 4271 section 9);
//! an unknown well-known one is a session reset (3/2). AS4_PATH and
//! AS4_AGGREGATOR are kept as unknown optional transitive attributes: the
//! RFC 6793 reconstruction for old 2-octet peers is not implemented.
//!
//! Emission writes attributes in ascending type code (RFC 4271 section 5
//! SHOULD), with the extended length bit only for values over 255 octets,
//! which reproduces GoBGP's encoding byte for byte.

use std::net::{Ipv4Addr, Ipv6Addr};

use ipnet::Ipv6Net;

use super::enum_with_unknown;
use super::error::{Action, Error};
use super::prefix;
use super::types::{Afi, Asn, Safi};
use super::{Context, Reader, Writer};

/// Attribute flags octet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct AttributeFlags(pub u8);

impl AttributeFlags {
    /// Optional (1) or well-known (0).
    pub const OPTIONAL: u8 = 0x80;
    /// Transitive.
    pub const TRANSITIVE: u8 = 0x40;
    /// Partial: an optional transitive attribute some speaker did not know.
    pub const PARTIAL: u8 = 0x20;
    /// Two-octet length.
    pub const EXTENDED_LENGTH: u8 = 0x10;

    /// The optional bit.
    pub fn optional(self) -> bool {
        self.0 & Self::OPTIONAL != 0
    }
    /// The transitive bit.
    pub fn transitive(self) -> bool {
        self.0 & Self::TRANSITIVE != 0
    }
    /// The partial bit.
    pub fn partial(self) -> bool {
        self.0 & Self::PARTIAL != 0
    }
    /// The extended length bit.
    pub fn extended_length(self) -> bool {
        self.0 & Self::EXTENDED_LENGTH != 0
    }
}

enum_with_unknown! {
    /// Path attribute type codes (IANA "BGP Path Attributes").
    pub enum AttributeType(u8) {
        /// ORIGIN, well-known mandatory.
        Origin = 1,
        /// AS_PATH, well-known mandatory.
        AsPath = 2,
        /// NEXT_HOP, well-known mandatory for IPv4 NLRI.
        NextHop = 3,
        /// MULTI_EXIT_DISC, optional non-transitive.
        MultiExitDisc = 4,
        /// LOCAL_PREF, well-known (iBGP).
        LocalPref = 5,
        /// ATOMIC_AGGREGATE, well-known discretionary.
        AtomicAggregate = 6,
        /// AGGREGATOR, optional transitive.
        Aggregator = 7,
        /// COMMUNITIES (RFC 1997), optional transitive.
        Communities = 8,
        /// ORIGINATOR_ID (RFC 4456).
        OriginatorId = 9,
        /// CLUSTER_LIST (RFC 4456).
        ClusterList = 10,
        /// MP_REACH_NLRI (RFC 4760), optional non-transitive.
        MpReachNlri = 14,
        /// MP_UNREACH_NLRI (RFC 4760), optional non-transitive.
        MpUnreachNlri = 15,
        /// Extended communities (RFC 4360).
        ExtendedCommunities = 16,
        /// AS4_PATH (RFC 6793).
        As4Path = 17,
        /// AS4_AGGREGATOR (RFC 6793).
        As4Aggregator = 18,
        /// LARGE_COMMUNITY (RFC 8092), optional transitive.
        LargeCommunities = 32,
    }
}

mod field {
    pub const FLAGS: usize = 0;
    pub const TYPE: usize = 1;
    pub const LENGTH: usize = 2;
}

/// A view of one path attribute at the start of a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttributePacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> AttributePacket<T> {
    /// Wraps a buffer without checking it.
    pub const fn new_unchecked(buffer: T) -> AttributePacket<T> {
        AttributePacket { buffer }
    }

    /// Wraps a buffer after [`AttributePacket::check_len`].
    pub fn new_checked(buffer: T) -> Option<AttributePacket<T>> {
        let p = AttributePacket::new_unchecked(buffer);
        p.check_len().then_some(p)
    }

    /// Whether the header (3 octets, 4 with the extended length bit) and
    /// the whole value are in the buffer: the two RFC 7606 section 4
    /// conditions. After this returns true no accessor panics.
    pub fn check_len(&self) -> bool {
        let b = self.buffer.as_ref();
        b.len() >= 3 && b.len() >= self.header_len() && b.len() >= self.total_len()
    }

    /// Flags.
    #[inline]
    pub fn flags(&self) -> AttributeFlags {
        AttributeFlags(self.buffer.as_ref()[field::FLAGS])
    }

    /// Type code.
    #[inline]
    pub fn type_code(&self) -> u8 {
        self.buffer.as_ref()[field::TYPE]
    }

    /// 3 or 4 (extended length).
    #[inline]
    pub fn header_len(&self) -> usize {
        if self.flags().extended_length() {
            4
        } else {
            3
        }
    }

    /// Attribute Length.
    #[inline]
    pub fn value_len(&self) -> usize {
        let b = self.buffer.as_ref();
        if self.flags().extended_length() {
            usize::from(u16::from_be_bytes([b[field::LENGTH], b[field::LENGTH + 1]]))
        } else {
            usize::from(b[field::LENGTH])
        }
    }

    /// Header plus value.
    #[inline]
    pub fn total_len(&self) -> usize {
        self.header_len() + self.value_len()
    }

    /// The value.
    #[inline]
    pub fn value(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..self.total_len()]
    }

    /// The whole attribute (NOTIFICATION data for attribute errors).
    #[inline]
    pub fn raw(&self) -> &[u8] {
        &self.buffer.as_ref()[..self.total_len()]
    }
}

/// ORIGIN values (RFC 4271 section 5.1.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Origin {
    /// Learned from an IGP.
    Igp = 0,
    /// Learned from EGP.
    Egp = 1,
    /// Learned some other way.
    Incomplete = 2,
}

/// AS_PATH segment types (RFC 4271 section 4.3, RFC 5065).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SegmentType {
    /// Unordered set.
    Set = 1,
    /// Ordered sequence.
    Sequence = 2,
    /// Confederation sequence (RFC 5065).
    ConfedSequence = 3,
    /// Confederation set (RFC 5065).
    ConfedSet = 4,
}

/// One AS_PATH segment.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AsSegment {
    /// Segment type.
    pub kind: SegmentType,
    /// The ASes; never empty when decoded. More than 255 are split into
    /// several segments when emitted.
    pub asns: Vec<Asn>,
}

/// AS_PATH.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct AsPath {
    /// Segments in order; empty for a route originated inside the AS.
    pub segments: Vec<AsSegment>,
}

impl AsPath {
    /// A path of one AS_SEQUENCE.
    pub fn sequence(asns: impl IntoIterator<Item = Asn>) -> AsPath {
        let asns: Vec<Asn> = asns.into_iter().collect();
        if asns.is_empty() {
            return AsPath::default();
        }
        AsPath {
            segments: vec![AsSegment {
                kind: SegmentType::Sequence,
                asns,
            }],
        }
    }

    /// Path length for the decision process (RFC 4271 section 9.1.2.2 a):
    /// a set counts 1, confederation segments 0.
    pub fn path_len(&self) -> usize {
        self.segments
            .iter()
            .map(|s| match s.kind {
                SegmentType::Sequence => s.asns.len(),
                SegmentType::Set => 1,
                SegmentType::ConfedSequence | SegmentType::ConfedSet => 0,
            })
            .sum()
    }

    /// The first AS of the path, if it starts with a sequence (the
    /// neighbouring AS for eBGP, RFC 4271 section 6.3).
    pub fn first_asn(&self) -> Option<Asn> {
        let s = self.segments.first()?;
        (s.kind == SegmentType::Sequence)
            .then(|| s.asns.first().copied())
            .flatten()
    }

    /// Whether `asn` appears anywhere in the path.
    pub fn contains(&self, asn: Asn) -> bool {
        self.segments.iter().any(|s| s.asns.contains(&asn))
    }

    /// The AS4_PATH (RFC 6793) among `unknown`, the optional transitive
    /// attributes passed on: a peer without the 4-octet AS capability
    /// carries there the AS numbers its AS_PATH shows as AS_TRANS.
    pub fn as4_path(unknown: &[UnknownAttribute]) -> Option<AsPath> {
        let a = unknown
            .iter()
            .find(|u| u.type_code == u8::from(AttributeType::As4Path))?;
        AsPath::parse(&a.value, true)
    }

    /// This path as an AS4_PATH to pass on (4-octet AS numbers), the
    /// attribute [`AsPath::as4_path`] reads.
    pub fn as4_path_attribute(&self) -> UnknownAttribute {
        let mut value = vec![0; self.value_len(true)];
        self.emit(&mut Writer::new(&mut value), true);
        UnknownAttribute {
            flags: AttributeFlags(AttributeFlags::OPTIONAL | AttributeFlags::TRANSITIVE),
            type_code: AttributeType::As4Path.into(),
            value,
        }
    }

    fn parse(value: &[u8], four_octet: bool) -> Option<AsPath> {
        let mut r = Reader::new(value);
        let mut segments = Vec::new();
        while !r.is_empty() {
            let kind = match r.u8()? {
                1 => SegmentType::Set,
                2 => SegmentType::Sequence,
                3 => SegmentType::ConfedSequence,
                4 => SegmentType::ConfedSet,
                _ => return None,
            };
            let count = r.u8()?;
            if count == 0 {
                // RFC 7606 section 7.2: a zero-length segment is malformed.
                return None;
            }
            let mut asns = Vec::with_capacity(usize::from(count));
            for _ in 0..count {
                asns.push(Asn(if four_octet {
                    r.u32()?
                } else {
                    u32::from(r.u16()?)
                }));
            }
            segments.push(AsSegment { kind, asns });
        }
        Some(AsPath { segments })
    }

    fn value_len(&self, four_octet: bool) -> usize {
        let width = if four_octet { 4 } else { 2 };
        self.segments
            .iter()
            .filter(|s| !s.asns.is_empty())
            .map(|s| 2 * s.asns.len().div_ceil(255) + width * s.asns.len())
            .sum()
    }

    fn emit(&self, w: &mut Writer<'_>, four_octet: bool) {
        for s in &self.segments {
            for chunk in s.asns.chunks(255) {
                w.u8(s.kind as u8);
                w.u8(chunk.len() as u8);
                for asn in chunk {
                    if four_octet {
                        w.u32(asn.0);
                    } else {
                        w.u16(asn.to_two_octet());
                    }
                }
            }
        }
    }
}

/// AGGREGATOR (RFC 4271 section 5.1.7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Aggregator {
    /// The AS that aggregated.
    pub asn: Asn,
    /// Its BGP identifier.
    pub address: Ipv4Addr,
}

/// A standard community (RFC 1997).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Community(pub u32);

impl Community {
    /// NO_EXPORT.
    pub const NO_EXPORT: Community = Community(0xffff_ff01);
    /// NO_ADVERTISE.
    pub const NO_ADVERTISE: Community = Community(0xffff_ff02);
    /// NO_EXPORT_SUBCONFED.
    pub const NO_EXPORT_SUBCONFED: Community = Community(0xffff_ff03);

    /// `asn:value`.
    pub fn new(asn: u16, value: u16) -> Community {
        Community((u32::from(asn) << 16) | u32::from(value))
    }
}

/// A large community (RFC 8092).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LargeCommunity {
    /// Global administrator (an ASN).
    pub global: u32,
    /// Local data part 1.
    pub local1: u32,
    /// Local data part 2.
    pub local2: u32,
}

/// The next hop of IPv6 routes (RFC 2545 section 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ipv6NextHop {
    /// Global address.
    pub global: Ipv6Addr,
    /// Link-local address, when the next hop field is 32 octets.
    pub link_local: Option<Ipv6Addr>,
}

/// MP_REACH_NLRI (RFC 4760 section 3).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum MpReach {
    /// IPv6 unicast (AFI 2, SAFI 1).
    Ipv6Unicast {
        /// Next hop.
        next_hop: Ipv6NextHop,
        /// Announced prefixes.
        nlri: Vec<Ipv6Net>,
    },
    /// Any other family, undecoded.
    Other {
        /// Address family.
        afi: Afi,
        /// Subsequent address family.
        safi: Safi,
        /// Next hop field.
        next_hop: Vec<u8>,
        /// NLRI field.
        nlri: Vec<u8>,
    },
}

/// MP_UNREACH_NLRI (RFC 4760 section 4).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum MpUnreach {
    /// IPv6 unicast (AFI 2, SAFI 1); empty in an End-of-RIB.
    Ipv6Unicast {
        /// Withdrawn prefixes.
        withdrawn: Vec<Ipv6Net>,
    },
    /// Any other family, undecoded.
    Other {
        /// Address family.
        afi: Afi,
        /// Subsequent address family.
        safi: Safi,
        /// Withdrawn routes field.
        withdrawn: Vec<u8>,
    },
}

impl MpUnreach {
    /// The AFI/SAFI.
    pub fn family(&self) -> (Afi, Safi) {
        match self {
            MpUnreach::Ipv6Unicast { .. } => (Afi::Ipv6, Safi::Unicast),
            MpUnreach::Other { afi, safi, .. } => (*afi, *safi),
        }
    }

    /// Whether the withdrawn routes field is empty (End-of-RIB shape).
    pub fn is_empty(&self) -> bool {
        match self {
            MpUnreach::Ipv6Unicast { withdrawn } => withdrawn.is_empty(),
            MpUnreach::Other { withdrawn, .. } => withdrawn.is_empty(),
        }
    }
}

impl MpReach {
    /// The AFI/SAFI.
    pub fn family(&self) -> (Afi, Safi) {
        match self {
            MpReach::Ipv6Unicast { .. } => (Afi::Ipv6, Safi::Unicast),
            MpReach::Other { afi, safi, .. } => (*afi, *safi),
        }
    }

    /// Whether the NLRI field is empty.
    pub fn is_empty(&self) -> bool {
        match self {
            MpReach::Ipv6Unicast { nlri, .. } => nlri.is_empty(),
            MpReach::Other { nlri, .. } => nlri.is_empty(),
        }
    }
}

/// An attribute this codec does not decode.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UnknownAttribute {
    /// Flags as received, without the extended length bit (emission
    /// chooses the length encoding).
    pub flags: AttributeFlags,
    /// Type code.
    pub type_code: u8,
    /// Value.
    pub value: Vec<u8>,
}

/// The path attributes of an UPDATE. Absent attributes are `None`, `false`
/// or empty: an empty COMMUNITIES or LARGE_COMMUNITY is malformed (RFC 7606
/// section 7.8, RFC 8092 section 6) and is never emitted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct PathAttributes {
    /// ORIGIN.
    pub origin: Option<Origin>,
    /// AS_PATH.
    pub as_path: Option<AsPath>,
    /// NEXT_HOP (IPv4 NLRI only).
    pub next_hop: Option<Ipv4Addr>,
    /// MULTI_EXIT_DISC.
    pub med: Option<u32>,
    /// LOCAL_PREF. Kept whatever the session type; ignoring it on eBGP
    /// (RFC 7606 section 7.5) is the session's job.
    pub local_pref: Option<u32>,
    /// ATOMIC_AGGREGATE.
    pub atomic_aggregate: bool,
    /// AGGREGATOR.
    pub aggregator: Option<Aggregator>,
    /// COMMUNITIES.
    pub communities: Vec<Community>,
    /// LARGE_COMMUNITY.
    pub large_communities: Vec<LargeCommunity>,
    /// MP_REACH_NLRI.
    pub mp_reach: Option<MpReach>,
    /// MP_UNREACH_NLRI.
    pub mp_unreach: Option<MpUnreach>,
    /// Unknown optional transitive attributes, in the order received.
    pub unknown: Vec<UnknownAttribute>,
}

/// Result of parsing the path attributes field short of a session reset.
#[derive(Debug, Default)]
pub(crate) struct ParsedAttributes {
    pub attrs: PathAttributes,
    pub discarded: Vec<Error>,
    pub treat_as_withdraw: Option<Error>,
    /// The list was cut short (RFC 7606 section 4): attributes after the
    /// error point were not seen.
    pub truncated: bool,
}

impl ParsedAttributes {
    fn record(&mut self, action: Action, error: Error) {
        match action {
            Action::AttributeDiscard => self.discarded.push(error),
            _ => {
                if self.treat_as_withdraw.is_none() {
                    self.treat_as_withdraw = Some(error);
                }
            }
        }
    }
}

/// Expected (optional, transitive) bits of a decoded attribute type, and
/// the RFC 7606 action when it is malformed.
fn profile(kind: AttributeType) -> Option<(u8, Action)> {
    const WELL_KNOWN: u8 = AttributeFlags::TRANSITIVE;
    const OPT_TRANS: u8 = AttributeFlags::OPTIONAL | AttributeFlags::TRANSITIVE;
    const OPT: u8 = AttributeFlags::OPTIONAL;
    use Action::*;
    Some(match kind {
        // RFC 7606 sections 7.1 to 7.5.
        AttributeType::Origin
        | AttributeType::AsPath
        | AttributeType::NextHop
        | AttributeType::LocalPref => (WELL_KNOWN, TreatAsWithdraw),
        AttributeType::MultiExitDisc => (OPT, TreatAsWithdraw),
        // Sections 7.6 and 7.7.
        AttributeType::AtomicAggregate => (WELL_KNOWN, AttributeDiscard),
        AttributeType::Aggregator => (OPT_TRANS, AttributeDiscard),
        // Section 7.8; RFC 8092 section 6.
        AttributeType::Communities | AttributeType::LargeCommunities => {
            (OPT_TRANS, TreatAsWithdraw)
        }
        // Sections 7.9 and 7.10 (RFC 4456), and 7.14 (RFC 4360).
        AttributeType::OriginatorId | AttributeType::ClusterList => (OPT, TreatAsWithdraw),
        AttributeType::ExtendedCommunities => (OPT_TRANS, TreatAsWithdraw),
        // RFC 6793 section 6.
        AttributeType::As4Path | AttributeType::As4Aggregator => (OPT_TRANS, AttributeDiscard),
        // Section 7.11 / RFC 4760 section 7: the NLRI cannot be trusted.
        AttributeType::MpReachNlri | AttributeType::MpUnreachNlri => (OPT, SessionReset),
        _ => return None,
    })
}

/// Parses the path attributes field. `Err` is a session reset.
pub(crate) fn parse(buf: &[u8], ctx: &Context) -> Result<ParsedAttributes, Error> {
    let mut out = ParsedAttributes::default();
    let mut seen = [false; 256];
    let mut rest = buf;
    while !rest.is_empty() {
        let Some(attr) = AttributePacket::new_checked(rest) else {
            // RFC 7606 section 3, last paragraph: treat-as-withdraw needs
            // MP_REACH_NLRI and MP_UNREACH_NLRI parsed whole. An attribute
            // that does not fit and is one of them, or whose type is cut
            // off, may hide prefixes to withdraw: a session reset.
            let mp = [
                u8::from(AttributeType::MpReachNlri),
                u8::from(AttributeType::MpUnreachNlri),
            ];
            if rest.get(1).is_none_or(|code| mp.contains(code)) {
                return Err(Error::MalformedAttributeList);
            }
            // RFC 7606 section 4: an attribute that does not fit.
            out.record(
                Action::TreatAsWithdraw,
                Error::AttributeLength(rest.to_vec()),
            );
            out.truncated = true;
            break;
        };
        rest = &rest[attr.total_len()..];
        let code = attr.type_code();
        let kind = AttributeType::from(code);
        if std::mem::replace(&mut seen[usize::from(code)], true) {
            // RFC 7606 section 3 (g).
            if matches!(
                kind,
                AttributeType::MpReachNlri | AttributeType::MpUnreachNlri
            ) {
                return Err(Error::MalformedAttributeList);
            }
            out.discarded.push(Error::MalformedAttributeList);
            continue;
        }
        let Some((expected, mut action)) = profile(kind) else {
            parse_unknown(&attr, &mut out)?;
            continue;
        };
        // From an external peer LOCAL_PREF (RFC 7606 7.5), ORIGINATOR_ID and
        // CLUSTER_LIST (7.9, 7.10) are discarded, malformed or not.
        let ignored = ctx.external
            && matches!(
                kind,
                AttributeType::LocalPref | AttributeType::OriginatorId | AttributeType::ClusterList
            );
        if ignored {
            action = Action::AttributeDiscard;
        }
        let flags = attr.flags().0 & (AttributeFlags::OPTIONAL | AttributeFlags::TRANSITIVE);
        let result = if flags != expected {
            // RFC 7606 section 3 (c): handled as the attribute's malformed case.
            Err(Error::AttributeFlags(attr.raw().to_vec()))
        } else {
            parse_known(kind, &attr, ctx, &mut out.attrs)
        };
        if let Err(error) = result {
            if action == Action::SessionReset {
                return Err(error);
            }
            out.record(action, error);
        }
        if ignored && kind == AttributeType::LocalPref {
            out.attrs.local_pref = None;
        }
    }
    Ok(out)
}

fn parse_unknown(attr: &AttributePacket<&[u8]>, out: &mut ParsedAttributes) -> Result<(), Error> {
    let flags = attr.flags();
    if !flags.optional() {
        return Err(Error::UnrecognizedWellKnownAttribute(attr.raw().to_vec()));
    }
    if flags.transitive() {
        pass_on(attr, &mut out.attrs);
    }
    Ok(())
}

/// Keeps an optional transitive attribute this speaker does not use, to
/// pass on with the route.
fn pass_on(attr: &AttributePacket<&[u8]>, attrs: &mut PathAttributes) {
    attrs.unknown.push(UnknownAttribute {
        flags: AttributeFlags(attr.flags().0 & !AttributeFlags::EXTENDED_LENGTH & 0xf0),
        type_code: attr.type_code(),
        value: attr.value().to_vec(),
    });
}

fn parse_known(
    kind: AttributeType,
    attr: &AttributePacket<&[u8]>,
    ctx: &Context,
    attrs: &mut PathAttributes,
) -> Result<(), Error> {
    let value = attr.value();
    let raw = || attr.raw().to_vec();
    let fixed = |n: usize| {
        if value.len() == n {
            Ok(())
        } else {
            Err(Error::AttributeLength(raw()))
        }
    };
    let mut r = Reader::new(value);
    match kind {
        AttributeType::Origin => {
            fixed(1)?;
            attrs.origin = Some(match value[0] {
                0 => Origin::Igp,
                1 => Origin::Egp,
                2 => Origin::Incomplete,
                _ => return Err(Error::InvalidOrigin(raw())),
            });
        }
        AttributeType::AsPath => {
            attrs.as_path =
                Some(AsPath::parse(value, ctx.four_octet_as).ok_or(Error::MalformedAsPath)?);
        }
        AttributeType::NextHop => {
            fixed(4)?;
            attrs.next_hop = r.ipv4();
        }
        AttributeType::MultiExitDisc => {
            fixed(4)?;
            attrs.med = r.u32();
        }
        AttributeType::LocalPref => {
            fixed(4)?;
            attrs.local_pref = r.u32();
        }
        AttributeType::AtomicAggregate => {
            fixed(0)?;
            attrs.atomic_aggregate = true;
        }
        AttributeType::Aggregator => {
            fixed(if ctx.four_octet_as { 8 } else { 6 })?;
            let asn = if ctx.four_octet_as {
                r.u32()
            } else {
                r.u16().map(u32::from)
            };
            attrs.aggregator = asn.zip(r.ipv4()).map(|(asn, address)| Aggregator {
                asn: Asn(asn),
                address,
            });
        }
        AttributeType::Communities => {
            if value.is_empty() || value.len() % 4 != 0 {
                return Err(Error::AttributeLength(raw()));
            }
            attrs.communities = value
                .chunks_exact(4)
                .map(|c| Community(u32::from_be_bytes([c[0], c[1], c[2], c[3]])))
                .collect();
        }
        AttributeType::LargeCommunities => {
            if value.is_empty() || value.len() % 12 != 0 {
                return Err(Error::AttributeLength(raw()));
            }
            attrs.large_communities = value
                .chunks_exact(12)
                .map(|c| LargeCommunity {
                    global: u32::from_be_bytes([c[0], c[1], c[2], c[3]]),
                    local1: u32::from_be_bytes([c[4], c[5], c[6], c[7]]),
                    local2: u32::from_be_bytes([c[8], c[9], c[10], c[11]]),
                })
                .collect();
        }
        AttributeType::MpReachNlri => {
            attrs.mp_reach =
                Some(parse_mp_reach(&mut r).ok_or_else(|| Error::OptionalAttribute(raw()))?);
        }
        AttributeType::MpUnreachNlri => {
            attrs.mp_unreach =
                Some(parse_mp_unreach(&mut r).ok_or_else(|| Error::OptionalAttribute(raw()))?);
        }
        // Checked, then handled as unknown: ORIGINATOR_ID and CLUSTER_LIST
        // (optional non-transitive) are not kept, the others passed on.
        AttributeType::OriginatorId => fixed(4)?,
        AttributeType::ClusterList if value.is_empty() || value.len() % 4 != 0 => {
            return Err(Error::AttributeLength(raw()));
        }
        AttributeType::ExtendedCommunities => {
            if value.is_empty() || value.len() % 8 != 0 {
                return Err(Error::AttributeLength(raw()));
            }
            pass_on(attr, attrs);
        }
        // RFC 6793 section 3: between two 4-octet speakers (who never
        // send them to each other) they are discarded.
        AttributeType::As4Path | AttributeType::As4Aggregator if ctx.four_octet_as => {}
        AttributeType::As4Path => {
            AsPath::parse(value, true).ok_or(Error::MalformedAsPath)?;
            pass_on(attr, attrs);
        }
        AttributeType::As4Aggregator => {
            fixed(8)?;
            pass_on(attr, attrs);
        }
        // profile() admits only the types above.
        _ => {}
    }
    Ok(())
}

fn parse_mp_reach(r: &mut Reader<'_>) -> Option<MpReach> {
    let afi = Afi::from(r.u16()?);
    let safi = Safi::from(r.u8()?);
    let nh_len = r.u8()?;
    let next_hop = r.take(usize::from(nh_len))?;
    let _reserved = r.u8()?;
    if (afi, safi) != (Afi::Ipv6, Safi::Unicast) {
        return Some(MpReach::Other {
            afi,
            safi,
            next_hop: next_hop.to_vec(),
            nlri: r.remaining().to_vec(),
        });
    }
    let mut nh = Reader::new(next_hop);
    let next_hop = match nh_len {
        16 => Ipv6NextHop {
            global: nh.ipv6()?,
            link_local: None,
        },
        32 => Ipv6NextHop {
            global: nh.ipv6()?,
            link_local: Some(nh.ipv6()?),
        },
        _ => return None,
    };
    let nlri = prefix::parse_ipv6_list(r.remaining())?;
    Some(MpReach::Ipv6Unicast { next_hop, nlri })
}

fn parse_mp_unreach(r: &mut Reader<'_>) -> Option<MpUnreach> {
    let afi = Afi::from(r.u16()?);
    let safi = Safi::from(r.u8()?);
    if (afi, safi) != (Afi::Ipv6, Safi::Unicast) {
        return Some(MpUnreach::Other {
            afi,
            safi,
            withdrawn: r.remaining().to_vec(),
        });
    }
    let withdrawn = prefix::parse_ipv6_list(r.remaining())?;
    Some(MpUnreach::Ipv6Unicast { withdrawn })
}

/// One attribute to emit, borrowed from [`PathAttributes`].
enum Item<'a> {
    Origin(Origin),
    AsPath(&'a AsPath),
    NextHop(Ipv4Addr),
    Med(u32),
    LocalPref(u32),
    AtomicAggregate,
    Aggregator(Aggregator),
    Communities(&'a [Community]),
    LargeCommunities(&'a [LargeCommunity]),
    MpReach(&'a MpReach),
    MpUnreach(&'a MpUnreach),
    Unknown(&'a UnknownAttribute),
}

impl Item<'_> {
    fn code(&self) -> u8 {
        let kind = match self {
            Item::Origin(_) => AttributeType::Origin,
            Item::AsPath(_) => AttributeType::AsPath,
            Item::NextHop(_) => AttributeType::NextHop,
            Item::Med(_) => AttributeType::MultiExitDisc,
            Item::LocalPref(_) => AttributeType::LocalPref,
            Item::AtomicAggregate => AttributeType::AtomicAggregate,
            Item::Aggregator(_) => AttributeType::Aggregator,
            Item::Communities(_) => AttributeType::Communities,
            Item::LargeCommunities(_) => AttributeType::LargeCommunities,
            Item::MpReach(_) => AttributeType::MpReachNlri,
            Item::MpUnreach(_) => AttributeType::MpUnreachNlri,
            Item::Unknown(u) => return u.type_code,
        };
        kind.into()
    }

    fn flags(&self) -> u8 {
        match self {
            Item::Unknown(u) => u.flags.0 & 0xe0,
            _ => profile(AttributeType::from(self.code())).map_or(0, |(f, _)| f),
        }
    }

    fn value_len(&self, ctx: &Context) -> usize {
        match self {
            Item::Origin(_) => 1,
            Item::AsPath(p) => p.value_len(ctx.four_octet_as),
            Item::NextHop(_) | Item::Med(_) | Item::LocalPref(_) => 4,
            Item::AtomicAggregate => 0,
            Item::Aggregator(_) => {
                if ctx.four_octet_as {
                    8
                } else {
                    6
                }
            }
            Item::Communities(c) => 4 * c.len(),
            Item::LargeCommunities(c) => 12 * c.len(),
            Item::MpReach(MpReach::Ipv6Unicast { next_hop, nlri }) => {
                let nh = if next_hop.link_local.is_some() {
                    32
                } else {
                    16
                };
                5 + nh + nlri.iter().map(prefix::ipv6_len).sum::<usize>()
            }
            Item::MpReach(MpReach::Other { next_hop, nlri, .. }) => 5 + next_hop.len() + nlri.len(),
            Item::MpUnreach(MpUnreach::Ipv6Unicast { withdrawn }) => {
                3 + withdrawn.iter().map(prefix::ipv6_len).sum::<usize>()
            }
            Item::MpUnreach(MpUnreach::Other { withdrawn, .. }) => 3 + withdrawn.len(),
            Item::Unknown(u) => u.value.len(),
        }
    }

    fn emit_value(&self, w: &mut Writer<'_>, ctx: &Context) {
        match self {
            Item::Origin(o) => w.u8(*o as u8),
            Item::AsPath(p) => p.emit(w, ctx.four_octet_as),
            Item::NextHop(a) => w.put(&a.octets()),
            Item::Med(v) | Item::LocalPref(v) => w.u32(*v),
            Item::AtomicAggregate => {}
            Item::Aggregator(a) => {
                if ctx.four_octet_as {
                    w.u32(a.asn.0);
                } else {
                    w.u16(a.asn.to_two_octet());
                }
                w.put(&a.address.octets());
            }
            Item::Communities(c) => c.iter().for_each(|c| w.u32(c.0)),
            Item::LargeCommunities(c) => c.iter().for_each(|c| {
                w.u32(c.global);
                w.u32(c.local1);
                w.u32(c.local2);
            }),
            Item::MpReach(MpReach::Ipv6Unicast { next_hop, nlri }) => {
                w.u16(Afi::Ipv6.into());
                w.u8(Safi::Unicast.into());
                match next_hop.link_local {
                    None => {
                        w.u8(16);
                        w.put(&next_hop.global.octets());
                    }
                    Some(ll) => {
                        w.u8(32);
                        w.put(&next_hop.global.octets());
                        w.put(&ll.octets());
                    }
                }
                w.u8(0);
                nlri.iter().for_each(|p| prefix::emit_ipv6(w, p));
            }
            Item::MpReach(MpReach::Other {
                afi,
                safi,
                next_hop,
                nlri,
            }) => {
                w.u16((*afi).into());
                w.u8((*safi).into());
                w.u8(next_hop.len() as u8);
                w.put(next_hop);
                w.u8(0);
                w.put(nlri);
            }
            Item::MpUnreach(MpUnreach::Ipv6Unicast { withdrawn }) => {
                w.u16(Afi::Ipv6.into());
                w.u8(Safi::Unicast.into());
                withdrawn.iter().for_each(|p| prefix::emit_ipv6(w, p));
            }
            Item::MpUnreach(MpUnreach::Other {
                afi,
                safi,
                withdrawn,
            }) => {
                w.u16((*afi).into());
                w.u8((*safi).into());
                w.put(withdrawn);
            }
            Item::Unknown(u) => w.put(&u.value),
        }
    }
}

impl PathAttributes {
    fn items(&self) -> Vec<Item<'_>> {
        let mut items = Vec::with_capacity(8 + self.unknown.len());
        items.extend(self.origin.map(Item::Origin));
        items.extend(self.as_path.as_ref().map(Item::AsPath));
        items.extend(self.next_hop.map(Item::NextHop));
        items.extend(self.med.map(Item::Med));
        items.extend(self.local_pref.map(Item::LocalPref));
        if self.atomic_aggregate {
            items.push(Item::AtomicAggregate);
        }
        items.extend(self.aggregator.map(Item::Aggregator));
        if !self.communities.is_empty() {
            items.push(Item::Communities(&self.communities));
        }
        if !self.large_communities.is_empty() {
            items.push(Item::LargeCommunities(&self.large_communities));
        }
        items.extend(self.mp_reach.as_ref().map(Item::MpReach));
        items.extend(self.mp_unreach.as_ref().map(Item::MpUnreach));
        items.extend(self.unknown.iter().map(Item::Unknown));
        // RFC 7606 section 5.1: MP_REACH_NLRI and MP_UNREACH_NLRI first,
        // so that a receiver finds the prefixes even if a later attribute
        // is malformed; the rest in type order.
        items.sort_by_key(|i| {
            (
                !matches!(i, Item::MpReach(_) | Item::MpUnreach(_)),
                i.code(),
            )
        });
        items
    }

    /// Whether no attribute is present.
    pub fn is_empty(&self) -> bool {
        *self == PathAttributes::default()
    }

    /// Length of the encoded attributes.
    pub fn buffer_len(&self, ctx: &Context) -> usize {
        self.items()
            .iter()
            .map(|i| {
                let len = i.value_len(ctx);
                len + if len > 255 { 4 } else { 3 }
            })
            .sum()
    }

    /// Emits the attributes, MP_REACH_NLRI and MP_UNREACH_NLRI first, then
    /// in ascending type code. Panics if `buf` is
    /// shorter than `buffer_len()`. Values longer than 65535 octets are not
    /// representable; `Message::to_bytes` refuses them by message length.
    pub fn emit(&self, buf: &mut [u8], ctx: &Context) {
        let mut w = Writer::new(buf);
        for item in self.items() {
            let len = item.value_len(ctx);
            if len > 255 {
                w.u8(item.flags() | AttributeFlags::EXTENDED_LENGTH);
                w.u8(item.code());
                w.u16(len as u16);
            } else {
                w.u8(item.flags());
                w.u8(item.code());
                w.u8(len as u8);
            }
            item.emit_value(&mut w, ctx);
        }
    }
}

#[cfg(test)]
mod tests;
