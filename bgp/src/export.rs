//! What we announce: only prefixes the router originates (configured
//! aggregates and static routes), only to peers whose `export` list
//! names them.
//!
//! Routes learned over BGP are never exported: [`advertisements`] does
//! not take the RIB, so a node's routes cannot be reflected to other
//! nodes or back to it. flatedge is a stub edge, not a transit.
//!
//! Order on a new session: the driver handles `Output::Established` (and
//! sends these UPDATEs) before the `SendMessage` End-of-RIB outputs that
//! follow it, so the End-of-RIB closes the initial announcements (RFC
//! 4724 section 2). A route refresh re-sends the same UPDATEs.

use std::net::Ipv6Addr;

use ipnet::Ipv6Net;

use crate::policy::PrefixList;
use crate::wire::{
    AsPath, Asn, Context, Ipv6NextHop, Message, MessageType, MpReach, MpUnreach, Origin,
    PathAttributes, UpdateRepr,
};

/// The session a peer's announcements are built for.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ExportSession {
    /// Our AS, prepended for external peers.
    pub local_asn: Asn,
    /// The peer is internal: empty AS_PATH, LOCAL_PREF 100.
    pub ibgp: bool,
    /// Our address on the session (the socket's local address), the next
    /// hop we announce; with our link-local address if the link has one.
    pub next_hop: Ipv6NextHop,
    /// The session's codec context (message size limit).
    pub context: Context,
}

impl ExportSession {
    /// An external session from `local_asn`, next hop `local_addr`.
    pub fn new(local_asn: Asn, local_addr: Ipv6Addr, context: Context) -> ExportSession {
        ExportSession {
            local_asn,
            ibgp: false,
            next_hop: Ipv6NextHop {
                global: local_addr,
                link_local: None,
            },
            context,
        }
    }

    fn attributes(&self) -> PathAttributes {
        // A peer without 4-octet AS numbers reads our AS as AS_TRANS in
        // AS_PATH; the real one goes in AS4_PATH (RFC 6793 section 4.2.2).
        let as4_path = (!self.ibgp && !self.context.four_octet_as && self.local_asn.0 > 0xffff)
            .then(|| AsPath::sequence([self.local_asn]).as4_path_attribute());
        PathAttributes {
            origin: Some(Origin::Igp),
            as_path: Some(if self.ibgp {
                AsPath::default()
            } else {
                AsPath::sequence([self.local_asn])
            }),
            local_pref: self.ibgp.then_some(100),
            mp_reach: Some(MpReach::Ipv6Unicast {
                next_hop: self.next_hop,
                nlri: Vec::new(),
            }),
            unknown: as4_path.into_iter().collect(),
            ..PathAttributes::default()
        }
    }
}

/// The UPDATEs announcing to a peer the `originated` prefixes its
/// `export` list matches, sorted, packed into as few messages as the
/// session's maximum message size allows. Empty when nothing matches.
pub fn advertisements(
    originated: &[Ipv6Net],
    export: &PrefixList,
    session: &ExportSession,
) -> Vec<UpdateRepr> {
    let base = UpdateRepr {
        attributes: session.attributes(),
        ..UpdateRepr::default()
    };
    pack(originated, export, &session.context, base, |u, prefixes| {
        if let Some(MpReach::Ipv6Unicast { nlri, .. }) = &mut u.attributes.mp_reach {
            *nlri = prefixes;
        }
    })
}

/// The UPDATEs withdrawing from a peer the `prefixes` (no longer
/// originated) its `export` list matches, packed like
/// [`advertisements`]. Empty when nothing matches.
pub fn withdrawals(
    prefixes: &[Ipv6Net],
    export: &PrefixList,
    context: &Context,
) -> Vec<UpdateRepr> {
    let mut base = UpdateRepr::default();
    base.attributes.mp_unreach = Some(MpUnreach::Ipv6Unicast {
        withdrawn: Vec::new(),
    });
    pack(prefixes, export, context, base, |u, prefixes| {
        if let Some(MpUnreach::Ipv6Unicast { withdrawn }) = &mut u.attributes.mp_unreach {
            *withdrawn = prefixes;
        }
    })
}

/// The prefixes of `prefixes` that `export` matches, sorted, put into
/// copies of `base` by `put`, as few as the maximum message size allows.
fn pack(
    prefixes: &[Ipv6Net],
    export: &PrefixList,
    context: &Context,
    base: UpdateRepr,
    put: impl Fn(&mut UpdateRepr, Vec<Ipv6Net>),
) -> Vec<UpdateRepr> {
    let mut prefixes: Vec<Ipv6Net> = prefixes
        .iter()
        .copied()
        .filter(|p| export.matches(p))
        .collect();
    prefixes.sort();
    prefixes.dedup();
    // The header, the attributes without prefixes, and one octet of slack
    // for the MP attribute switching to an extended length.
    let max = context.max_message_len(MessageType::Update);
    let empty_len = Message::Update(base.clone().into()).buffer_len(context) + 1;
    let mut out = Vec::new();
    let mut current: Vec<Ipv6Net> = Vec::new();
    let mut len = empty_len;
    let emit = |current: Vec<Ipv6Net>| {
        let mut u = base.clone();
        put(&mut u, current);
        u
    };
    for p in prefixes {
        let plen = 1 + usize::from(p.prefix_len()).div_ceil(8);
        if len + plen > max && !current.is_empty() {
            out.push(emit(std::mem::take(&mut current)));
            len = empty_len;
        }
        current.push(p);
        len += plen;
    }
    if !current.is_empty() {
        out.push(emit(current));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> Ipv6Net {
        s.parse().unwrap()
    }

    const CTX: Context = Context {
        four_octet_as: true,
        extended_messages: false,
        external: false,
    };

    fn session() -> ExportSession {
        ExportSession::new(Asn(65000), "2001:db8:ffff::2".parse().unwrap(), CTX)
    }

    fn nlri(u: &UpdateRepr) -> &[Ipv6Net] {
        match &u.attributes.mp_reach {
            Some(MpReach::Ipv6Unicast { nlri, .. }) => nlri,
            _ => &[],
        }
    }

    #[test]
    fn only_exported_originated_prefixes() {
        let originated = [
            net("2001:db8:100::/40"),
            net("::/0"),
            net("2001:db8:96::/112"),
        ];
        let export = PrefixList::parse(&["2001:db8:100::/40", "2001:db8:200::/40"]).unwrap();
        let ups = advertisements(&originated, &export, &session());
        assert_eq!(ups.len(), 1);
        assert_eq!(nlri(&ups[0]), [net("2001:db8:100::/40")]);
        let a = &ups[0].attributes;
        assert_eq!(a.origin, Some(Origin::Igp));
        assert_eq!(a.as_path, Some(AsPath::sequence([Asn(65000)])));
        assert_eq!(a.local_pref, None);
        // A peer without an export list gets nothing (nodes).
        assert!(advertisements(&originated, &PrefixList::default(), &session()).is_empty());
    }

    /// Our AS above 65535 towards a peer without 4-octet AS numbers:
    /// AS_TRANS in AS_PATH and our AS in AS4_PATH (RFC 6793 4.2.2), which
    /// the peer's decoder reads back; none between 4-octet speakers.
    #[test]
    fn a_two_octet_peer_gets_our_as_in_as4_path() {
        let two = Context {
            four_octet_as: false,
            ..CTX
        };
        let s = ExportSession::new(Asn(4_200_000_000), "2001:db8:ffff::2".parse().unwrap(), two);
        let export = PrefixList::parse(&["::/0 le 128"]).unwrap();
        let ups = advertisements(&[net("2001:db8:100::/40")], &export, &s);
        let bytes = Message::Update(ups[0].clone().into())
            .to_bytes(&two)
            .unwrap();
        let Ok(Message::Update(u)) = Message::parse(&bytes, &two) else {
            panic!("does not parse")
        };
        assert_eq!(u.treat_as_withdraw, None);
        let a = &u.update.attributes;
        assert_eq!(a.as_path, Some(AsPath::sequence([Asn(23456)])));
        let as4 = a
            .unknown
            .iter()
            .find(|x| x.type_code == 17)
            .expect("an AS4_PATH");
        assert_eq!(as4.value, [2, 1, 0xfa, 0x56, 0xea, 0x00]);
        // Between 4-octet speakers, or with a 2-octet AS: none.
        for s in [
            ExportSession::new(Asn(4_200_000_000), "2001:db8:ffff::2".parse().unwrap(), CTX),
            ExportSession::new(Asn(65000), "2001:db8:ffff::2".parse().unwrap(), two),
        ] {
            let ups = advertisements(&[net("2001:db8:100::/40")], &export, &s);
            assert!(ups[0].attributes.unknown.is_empty());
        }
    }

    #[test]
    fn internal_peer_gets_empty_as_path_and_local_pref() {
        let mut s = session();
        s.ibgp = true;
        let export = PrefixList::parse(&["::/0"]).unwrap();
        let ups = advertisements(&[net("::/0")], &export, &s);
        assert_eq!(ups[0].attributes.as_path, Some(AsPath::default()));
        assert_eq!(ups[0].attributes.local_pref, Some(100));
    }

    #[test]
    fn withdrawals_are_exported_prefixes_only_and_fit() {
        let gone: Vec<Ipv6Net> = (0..2000u32)
            .map(|i| net(&format!("2001:db8:{:x}:{:x}::/64", i >> 8, i & 0xff)))
            .chain([net("2001:db9::/32")])
            .collect();
        let export = PrefixList::parse(&["2001:db8::/32 le 64"]).unwrap();
        let ups = withdrawals(&gone, &export, &CTX);
        assert!(ups.len() > 1);
        let mut seen = Vec::new();
        for u in &ups {
            assert!(u.attributes.mp_reach.is_none() && u.attributes.as_path.is_none());
            let bytes = Message::Update(u.clone().into())
                .to_bytes(&CTX)
                .expect("fits in 4096");
            let Ok(Message::Update(back)) = Message::parse(&bytes, &CTX) else {
                panic!()
            };
            assert!(back.ipv6_announced().is_empty());
            seen.extend(back.ipv6_withdrawn());
        }
        assert_eq!(seen.len(), 2000);
        assert!(!seen.contains(&net("2001:db9::/32")));
        assert!(withdrawals(&[net("2001:db9::/32")], &export, &CTX).is_empty());
    }

    #[test]
    fn packs_into_messages_that_fit() {
        let originated: Vec<Ipv6Net> = (0..2000u32)
            .map(|i| net(&format!("2001:db8:{:x}:{:x}::/64", i >> 8, i & 0xff)))
            .collect();
        let export = PrefixList::parse(&["2001:db8::/32 le 64"]).unwrap();
        let ups = advertisements(&originated, &export, &session());
        assert!(ups.len() > 1);
        let mut seen = 0;
        for (i, u) in ups.iter().enumerate() {
            let m = Message::Update(u.clone().into());
            let bytes = m.to_bytes(&CTX).expect("fits in 4096");
            if i + 1 < ups.len() {
                assert!(bytes.len() > 4000, "well packed: {}", bytes.len());
            }
            let Ok(Message::Update(back)) = Message::parse(&bytes, &CTX) else {
                panic!()
            };
            seen += back.ipv6_announced().len();
        }
        assert_eq!(seen, 2000);
    }
}
