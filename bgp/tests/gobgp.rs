//! Messages captured from a real gobgpd 3.10.0 (Debian 12) configured like
//! Cilium: see `tests/fixtures/README.md` for how they were captured. The
//! tests only read the fixture files.

use std::net::{Ipv4Addr, Ipv6Addr};

use bgp::wire::{
    Afi, AsPath, Asn, Capability, CapabilityCode, CeaseSubcode, Community, Context, Header,
    HoldTime, Ipv6NextHop, LargeCommunity, Message, MpReach, MpUnreach, Origin, ParsedUpdate, Safi,
};
use ipnet::Ipv6Net;

const OPEN: &[u8] = include_bytes!("fixtures/gobgp-open.bin");
const KEEPALIVE: &[u8] = include_bytes!("fixtures/gobgp-keepalive.bin");
const EOR_IPV6: &[u8] = include_bytes!("fixtures/gobgp-eor-ipv6.bin");
const UPDATE_POD: &[u8] = include_bytes!("fixtures/gobgp-update-pod.bin");
const UPDATE_SVC: &[u8] = include_bytes!("fixtures/gobgp-update-svc.bin");
const UPDATE_POD2: &[u8] = include_bytes!("fixtures/gobgp-update-pod2.bin");
const WITHDRAW: &[u8] = include_bytes!("fixtures/gobgp-withdraw.bin");
const NOTIFICATION_RESET: &[u8] = include_bytes!("fixtures/gobgp-notification-reset.bin");
const NOTIFICATION_SHUTDOWN: &[u8] = include_bytes!("fixtures/gobgp-notification-shutdown.bin");

/// Both sides sent the 4-octet AS capability.
const CTX: Context = Context {
    four_octet_as: true,
    extended_messages: false,
    external: true,
};

/// gobgpd's session address, the next hop of everything it announces.
const GOBGP_ADDR: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xf, 0, 0, 0, 0, 2);

fn reencode(m: &Message) -> Vec<u8> {
    let mut buf = vec![0xff; m.buffer_len(&CTX)];
    m.emit(&mut buf, &CTX);
    buf
}

/// GoBGP's UPDATE with its path attributes in the order we send them:
/// MP_REACH_NLRI and MP_UNREACH_NLRI first (RFC 7606 section 5.1; GoBGP
/// sends type order), every attribute's bytes unchanged.
fn mp_first(msg: &[u8]) -> Vec<u8> {
    let body = &msg[19..];
    let wlen = usize::from(u16::from_be_bytes([body[0], body[1]]));
    let at = 2 + wlen;
    let alen = usize::from(u16::from_be_bytes([body[at], body[at + 1]]));
    let mut attrs = &body[at + 2..at + 2 + alen];
    let (mut mp, mut rest) = (Vec::new(), Vec::new());
    while !attrs.is_empty() {
        let (hlen, len) = if attrs[0] & 0x10 != 0 {
            (4, usize::from(u16::from_be_bytes([attrs[2], attrs[3]])))
        } else {
            (3, usize::from(attrs[2]))
        };
        let (a, tail) = attrs.split_at(hlen + len);
        if matches!(a[1], 14 | 15) {
            mp.extend_from_slice(a);
        } else {
            rest.extend_from_slice(a);
        }
        attrs = tail;
    }
    [&msg[..19 + at + 2], &mp, &rest, &body[at + 2 + alen..]].concat()
}

fn update(bytes: &[u8]) -> ParsedUpdate {
    match Message::parse(bytes, &CTX) {
        Ok(Message::Update(u)) => {
            assert_eq!(u.treat_as_withdraw, None);
            assert!(u.discarded.is_empty());
            u
        }
        other => panic!("not an UPDATE: {other:?}"),
    }
}

fn net(s: &str) -> Ipv6Net {
    s.parse().unwrap()
}

#[test]
fn open() {
    let Ok(Message::Open(open)) = Message::parse(OPEN, &Context::default()) else {
        panic!("OPEN did not parse");
    };
    assert_eq!(open.asn(), Asn(65001));
    assert_eq!(open.my_as, 65001);
    assert_eq!(open.hold_time, HoldTime::new(90).unwrap());
    assert_eq!(open.bgp_id, Ipv4Addr::new(10, 0, 0, 2));
    assert_eq!(
        open.multiprotocol().collect::<Vec<_>>(),
        [(Afi::Ipv6, Safi::Unicast), (Afi::Ipv4, Safi::Unicast)]
    );
    assert!(open.has_capability(CapabilityCode::RouteRefresh));
    // Graceful restart: N bit set, R bit clear on a first start, 120 s, no
    // F bits.
    let gr = open.graceful_restart().expect("graceful restart");
    assert!(gr.notification);
    assert!(!gr.restart_state);
    assert_eq!(gr.restart_time, 120);
    assert_eq!(gr.families.len(), 2);
    assert!(gr.families.iter().all(|f| !f.forwarding_state));
    // FQDN (hostname "vm", empty domain) and extended next hop for IPv4
    // over IPv6 are kept as unknown.
    assert!(open.capabilities.contains(&Capability::Unknown {
        code: 73,
        value: vec![2, b'v', b'm', 0],
    }));
    assert!(open.capabilities.contains(&Capability::Unknown {
        code: 5,
        value: vec![0, 1, 0, 1, 0, 2],
    }));
    assert_eq!(open.capabilities.len(), 7);
    // GoBGP puts every capability in one parameter, as we do.
    assert_eq!(reencode(&Message::Open(open.clone())), OPEN);
    // Negotiation with an OPEN that also has 4-octet AS.
    assert!(Context::negotiated(&open, &open).four_octet_as);
}

#[test]
fn keepalive() {
    assert_eq!(Message::parse(KEEPALIVE, &CTX), Ok(Message::Keepalive));
    assert_eq!(reencode(&Message::Keepalive), KEEPALIVE);
}

#[test]
fn end_of_rib_ipv6() {
    let u = update(EOR_IPV6);
    assert_eq!(
        u.update.end_of_rib_family(),
        Some((Afi::Ipv6, Safi::Unicast))
    );
    assert_eq!(reencode(&Message::Update(u)), EOR_IPV6);
}

#[test]
fn update_pod_prefix() {
    let u = update(UPDATE_POD);
    let a = &u.update.attributes;
    assert_eq!(a.origin, Some(Origin::Igp));
    assert_eq!(a.as_path, Some(AsPath::sequence([Asn(65001)])));
    assert_eq!(a.next_hop, None);
    assert_eq!(
        a.mp_reach,
        Some(MpReach::Ipv6Unicast {
            next_hop: Ipv6NextHop {
                global: GOBGP_ADDR,
                link_local: None,
            },
            nlri: vec![net("2001:db8:100::/64")],
        })
    );
    assert_eq!(u.ipv6_announced(), [net("2001:db8:100::/64")]);
    assert_eq!(u.update.end_of_rib_family(), None);
    assert_eq!(reencode(&Message::Update(u)), mp_first(UPDATE_POD));
}

#[test]
fn update_service_prefix_with_communities() {
    let u = update(UPDATE_SVC);
    let a = &u.update.attributes;
    assert_eq!(a.origin, Some(Origin::Incomplete));
    assert_eq!(a.as_path, Some(AsPath::sequence([Asn(65001)])));
    assert_eq!(a.med, Some(10));
    assert_eq!(a.communities, [Community::new(65001, 100)]);
    assert_eq!(
        a.large_communities,
        [LargeCommunity {
            global: 65001,
            local1: 1,
            local2: 2
        }]
    );
    assert_eq!(u.ipv6_announced(), [net("2001:db8:96::10/128")]);
    assert_eq!(reencode(&Message::Update(u)), mp_first(UPDATE_SVC));
}

#[test]
fn update_second_pod_prefix() {
    let u = update(UPDATE_POD2);
    assert_eq!(u.ipv6_announced(), [net("2001:db8:100:1::/64")]);
    assert_eq!(u.update.attributes.origin, Some(Origin::Incomplete));
    assert_eq!(reencode(&Message::Update(u)), mp_first(UPDATE_POD2));
}

#[test]
fn withdrawal() {
    let u = update(WITHDRAW);
    assert_eq!(
        u.update.attributes.mp_unreach,
        Some(MpUnreach::Ipv6Unicast {
            withdrawn: vec![net("2001:db8:100::/64")]
        })
    );
    assert_eq!(
        u.ipv6_withdrawn().collect::<Vec<_>>(),
        [&net("2001:db8:100::/64")]
    );
    assert!(u.ipv6_announced().is_empty());
    assert_eq!(u.update.end_of_rib_family(), None);
    assert_eq!(reencode(&Message::Update(u)), WITHDRAW);
}

#[test]
fn notifications() {
    let Ok(Message::Notification(reset)) = Message::parse(NOTIFICATION_RESET, &CTX) else {
        panic!()
    };
    assert_eq!(
        reset.cease_subcode(),
        Some(CeaseSubcode::AdministrativeReset)
    );
    assert!(reset.data.is_empty());
    assert!(!reset.is_hard_reset());
    assert_eq!(reencode(&Message::Notification(reset)), NOTIFICATION_RESET);

    let Ok(Message::Notification(shut)) = Message::parse(NOTIFICATION_SHUTDOWN, &CTX) else {
        panic!()
    };
    assert_eq!(
        shut.cease_subcode(),
        Some(CeaseSubcode::AdministrativeShutdown)
    );
    assert_eq!(
        reencode(&Message::Notification(shut)),
        NOTIFICATION_SHUTDOWN
    );
}

#[test]
fn stream_framing() {
    // The session as a byte stream, split back with the framer.
    let parts = [
        OPEN,
        KEEPALIVE,
        EOR_IPV6,
        UPDATE_POD,
        UPDATE_SVC,
        UPDATE_POD2,
        WITHDRAW,
        NOTIFICATION_RESET,
    ];
    let stream = parts.concat();
    let mut rest = &stream[..];
    let mut got = Vec::new();
    while let Some(len) = Header::frame_len(rest, &CTX).unwrap() {
        got.push(&rest[..len]);
        Message::parse(&rest[..len], &CTX).unwrap();
        rest = &rest[len..];
    }
    assert!(rest.is_empty());
    assert_eq!(got, parts);
    // A partial message is not a frame yet.
    assert_eq!(Header::frame_len(&UPDATE_SVC[..50], &CTX), Ok(None));
}
