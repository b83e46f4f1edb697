//! (bytes, message) pairs both ways for every message type, and one test
//! per OPEN/header/ROUTE-REFRESH rejection path. Emission goes into buffers
//! pre-filled with 0xff so that a byte never written shows up.

use std::net::Ipv4Addr;

use bgp::wire::{
    Afi, Asn, Capability, CeaseSubcode, Context, EmitError, Error, ErrorCode, GracefulRestart,
    GracefulRestartFamily, HoldTime, Message, NotificationRepr, OpenRepr, RouteRefreshRepr,
    RouteRefreshSubtype, Safi, UpdateRepr,
};

const CTX4: Context = Context {
    four_octet_as: true,
    extended_messages: false,
    external: false,
};

fn msg(kind: u8, body: &[u8]) -> Vec<u8> {
    let mut m = vec![0xff; 16];
    m.extend(((19 + body.len()) as u16).to_be_bytes());
    m.push(kind);
    m.extend(body);
    m
}

/// Emits into a 0xff-filled buffer one byte longer than needed and checks
/// the extra byte is untouched.
fn emit(m: &Message, ctx: &Context) -> Vec<u8> {
    let len = m.buffer_len(ctx);
    let mut buf = vec![0xff; len + 1];
    m.emit(&mut buf, ctx);
    assert_eq!(buf[len], 0xff, "wrote past buffer_len");
    buf.truncate(len);
    assert_eq!(m.to_bytes(ctx).unwrap(), buf);
    buf
}

fn both_ways(bytes: &[u8], m: &Message, ctx: &Context) {
    assert_eq!(Message::parse(bytes, ctx).as_ref(), Ok(m));
    assert_eq!(emit(m, ctx), bytes);
}

fn open_body(version: u8, asn: u16, hold: u16, id: [u8; 4], params: &[u8]) -> Vec<u8> {
    let mut b = vec![version];
    b.extend(asn.to_be_bytes());
    b.extend(hold.to_be_bytes());
    b.extend(id);
    b.push(params.len() as u8);
    b.extend(params);
    b
}

fn sample_open() -> OpenRepr {
    OpenRepr::new(
        Asn(65000),
        HoldTime::new(90).unwrap(),
        Ipv4Addr::new(192, 0, 2, 1),
        vec![
            Capability::Multiprotocol {
                afi: Afi::Ipv6,
                safi: Safi::Unicast,
            },
            Capability::RouteRefresh,
            Capability::GracefulRestart(GracefulRestart {
                restart_state: false,
                notification: true,
                restart_time: 120,
                families: vec![GracefulRestartFamily {
                    afi: Afi::Ipv6,
                    safi: Safi::Unicast,
                    forwarding_state: true,
                }],
            }),
        ],
    )
}

#[test]
fn keepalive() {
    both_ways(&msg(4, &[]), &Message::Keepalive, &Context::default());
}

#[test]
fn open() {
    let caps = [
        2, 22, // capabilities parameter
        65, 4, 0, 0, 0xfd, 0xe8, // 4-octet AS 65000
        1, 4, 0, 2, 0, 1, // MP IPv6 unicast
        2, 0, // route refresh
        64, 6, 0x40, 120, 0, 2, 1, 0x80, // GR: N, 120 s, IPv6 unicast F
    ];
    let bytes = msg(1, &open_body(4, 65000, 90, [192, 0, 2, 1], &caps));
    let open = sample_open();
    both_ways(&bytes, &Message::Open(open.clone()), &Context::default());
    assert_eq!(open.asn(), Asn(65000));
    assert_eq!(open.graceful_restart().unwrap().restart_time, 120);
    assert_eq!(
        open.multiprotocol().collect::<Vec<_>>(),
        [(Afi::Ipv6, Safi::Unicast)]
    );
}

#[test]
fn open_four_octet_asn_uses_as_trans() {
    let open = OpenRepr::new(
        Asn(4_200_000_000),
        HoldTime::DISABLED,
        Ipv4Addr::new(10, 0, 0, 1),
        vec![],
    );
    let bytes = emit(&Message::Open(open.clone()), &Context::default());
    assert_eq!(&bytes[20..22], &23456u16.to_be_bytes());
    let Ok(Message::Open(back)) = Message::parse(&bytes, &Context::default()) else {
        panic!()
    };
    assert_eq!(back.asn(), Asn(4_200_000_000));
    assert_eq!(back.hold_time, HoldTime::DISABLED);
}

#[test]
fn open_without_parameters() {
    let bytes = msg(1, &open_body(4, 65001, 0, [10, 0, 0, 2], &[]));
    let open = OpenRepr {
        my_as: 65001,
        hold_time: HoldTime::DISABLED,
        bgp_id: Ipv4Addr::new(10, 0, 0, 2),
        capabilities: vec![],
    };
    both_ways(&bytes, &Message::Open(open), &Context::default());
}

#[test]
fn open_capabilities_over_several_parameters() {
    let params = [2, 2, 2, 0, 2, 6, 65, 4, 0, 0, 0xfd, 0xe9];
    let bytes = msg(1, &open_body(4, 65001, 90, [10, 0, 0, 2], &params));
    let Ok(Message::Open(open)) = Message::parse(&bytes, &Context::default()) else {
        panic!()
    };
    assert_eq!(
        open.capabilities,
        [
            Capability::RouteRefresh,
            Capability::FourOctetAs(Asn(65001))
        ]
    );
}

#[test]
fn open_extended_optional_parameters() {
    // Enough unknown capabilities to overflow 255 octets: RFC 9072 form.
    let mut open = sample_open();
    for code in 200..203 {
        open.capabilities.push(Capability::Unknown {
            code,
            value: vec![code; 100],
        });
    }
    let bytes = emit(&Message::Open(open.clone()), &Context::default());
    assert_eq!(&bytes[28..30], &[255, 255]);
    let caps_len: usize = open.capabilities.iter().map(|c| c.buffer_len()).sum();
    assert_eq!(&bytes[30..32], &((3 + caps_len) as u16).to_be_bytes());
    assert_eq!(bytes[32], 2);
    assert_eq!(
        Message::parse(&bytes, &Context::default()),
        Ok(Message::Open(open))
    );
}

#[test]
fn open_extended_form_parsed_even_when_short() {
    // A peer may use RFC 9072 encoding for a short list too.
    let params = [255, 0, 5, 2, 0, 2, 2, 0];
    let body = open_body(4, 65001, 90, [10, 0, 0, 2], &[]);
    let mut body = body[..9].to_vec();
    body.push(255);
    body.extend(params);
    let Ok(Message::Open(open)) = Message::parse(&msg(1, &body), &Context::default()) else {
        panic!()
    };
    assert_eq!(open.capabilities, [Capability::RouteRefresh]);
}

fn open_err(body: &[u8]) -> Error {
    Message::parse(&msg(1, body), &Context::default()).unwrap_err()
}

#[test]
fn reject_open_version() {
    let e = open_err(&open_body(3, 65001, 90, [10, 0, 0, 2], &[]));
    assert_eq!(e, Error::UnsupportedVersionNumber(3));
    let n = e.notification();
    assert_eq!(
        (n.code, n.subcode, n.data),
        (ErrorCode::Open, 1, vec![0, 4])
    );
}

#[test]
fn reject_open_as_zero() {
    assert_eq!(
        open_err(&open_body(4, 0, 90, [10, 0, 0, 2], &[])),
        Error::BadPeerAs(Asn(0))
    );
    let four_octet_zero = [2, 6, 65, 4, 0, 0, 0, 0];
    assert_eq!(
        open_err(&open_body(4, 23456, 90, [10, 0, 0, 2], &four_octet_zero)),
        Error::BadPeerAs(Asn(0))
    );
}

#[test]
fn reject_open_hold_time() {
    for hold in [1, 2] {
        let e = open_err(&open_body(4, 65001, hold, [10, 0, 0, 2], &[]));
        assert_eq!(e, Error::UnacceptableHoldTime(hold));
        assert_eq!(e.subcode(), 6);
    }
}

#[test]
fn reject_open_bgp_identifier() {
    let e = open_err(&open_body(4, 65001, 90, [0, 0, 0, 0], &[]));
    assert_eq!(e, Error::BadBgpIdentifier(Ipv4Addr::UNSPECIFIED));
    assert_eq!(e.subcode(), 3);
}

#[test]
fn reject_open_unsupported_parameter() {
    let e = open_err(&open_body(4, 65001, 90, [10, 0, 0, 2], &[1, 1, 0]));
    assert_eq!(e, Error::UnsupportedOptionalParameter(1));
    assert_eq!(e.subcode(), 4);
}

#[test]
fn reject_open_parameter_length() {
    // Opt Parm Len says 3, the parameter says 2 octets of value.
    let mut body = open_body(4, 65001, 90, [10, 0, 0, 2], &[2, 2, 2, 0]);
    body[9] = 3;
    assert_eq!(open_err(&body), Error::MalformedOptionalParameters);
    // Opt Parm Len beyond the message.
    let mut body = open_body(4, 65001, 90, [10, 0, 0, 2], &[2, 0]);
    body[9] = 9;
    assert_eq!(open_err(&body), Error::MalformedOptionalParameters);
    // A capability that overruns its parameter.
    let body = open_body(4, 65001, 90, [10, 0, 0, 2], &[2, 2, 65, 4]);
    assert_eq!(open_err(&body), Error::MalformedOptionalParameters);
    // Extended form cut short.
    let mut body = open_body(4, 65001, 90, [10, 0, 0, 2], &[]);
    body[9] = 255;
    body.extend([255, 0]);
    assert_eq!(open_err(&body), Error::MalformedOptionalParameters);
}

#[test]
fn reject_open_too_short() {
    // 28 octets: below the OPEN minimum, caught by the header check.
    let bytes = msg(1, &[4, 0xfd, 0xe9, 0, 90, 10, 0, 0, 2]);
    assert_eq!(
        Message::parse(&bytes, &Context::default()),
        Err(Error::BadMessageLength(28))
    );
}

#[test]
fn notification() {
    let n = NotificationRepr {
        code: ErrorCode::Cease,
        subcode: CeaseSubcode::AdministrativeShutdown.into(),
        data: b"\x04bye!".to_vec(),
    };
    let bytes = msg(3, &[6, 2, 4, b'b', b'y', b'e', b'!']);
    both_ways(
        &bytes,
        &Message::Notification(n.clone()),
        &Context::default(),
    );
    assert_eq!(n.shutdown_communication(), Some("bye!"));
}

#[test]
fn notification_hard_reset() {
    let inner = NotificationRepr::cease(CeaseSubcode::MaxPrefixes);
    let hr = NotificationRepr::hard_reset(&inner);
    both_ways(
        &msg(3, &[6, 9, 6, 1]),
        &Message::Notification(hr),
        &Context::default(),
    );
}

#[test]
fn notification_from_error() {
    let n = Error::BadMessageType(9).notification();
    both_ways(
        &msg(3, &[1, 3, 9]),
        &Message::Notification(n),
        &Context::default(),
    );
}

#[test]
fn route_refresh() {
    let rr = RouteRefreshRepr {
        afi: Afi::Ipv6,
        safi: Safi::Unicast,
        subtype: RouteRefreshSubtype::Normal,
    };
    both_ways(
        &msg(5, &[0, 2, 0, 1]),
        &Message::RouteRefresh(rr),
        &Context::default(),
    );
    let borr = RouteRefreshRepr {
        subtype: RouteRefreshSubtype::BeginningOfRouteRefresh,
        ..rr
    };
    both_ways(
        &msg(5, &[0, 2, 1, 1]),
        &Message::RouteRefresh(borr),
        &Context::default(),
    );
    let Ok(Message::RouteRefresh(odd)) = Message::parse(&msg(5, &[0, 2, 7, 1]), &CTX4) else {
        panic!()
    };
    assert_eq!(odd.subtype, RouteRefreshSubtype::Unknown(7));
}

#[test]
fn reject_route_refresh_length() {
    // RFC 7313 section 5: 7/1 with the whole message for a longer body
    // (a shorter one is a header error: the header's test).
    for body in [&[0, 2, 0, 1, 0][..], &[0, 2, 1, 1, 0, 0]] {
        let bytes = msg(5, body);
        let e = Message::parse(&bytes, &Context::default()).unwrap_err();
        assert_eq!(e, Error::RouteRefreshLength(bytes.clone()), "{body:?}");
        let n = e.notification();
        assert_eq!(
            (n.code, n.subcode, n.data),
            (ErrorCode::RouteRefresh, 1, bytes)
        );
    }
    // Section 3.2: an unknown subtype is ignored whatever the length.
    for body in [&[0, 2, 7, 1, 0][..], &[0, 2, 9, 1, 0, 0, 0]] {
        let Ok(Message::RouteRefresh(odd)) = Message::parse(&msg(5, body), &CTX4) else {
            panic!("{body:?}")
        };
        assert!(
            matches!(odd.subtype, RouteRefreshSubtype::Unknown(_)),
            "{body:?}"
        );
    }
}

#[test]
fn reject_keepalive_with_body() {
    assert_eq!(
        Message::parse(&msg(4, &[0]), &Context::default()),
        Err(Error::BadMessageLength(20))
    );
}

#[test]
fn reject_truncated_buffer() {
    let mut bytes = msg(4, &[]);
    bytes[17] = 23;
    bytes[18] = 2;
    assert_eq!(
        Message::parse(&bytes, &Context::default()),
        Err(Error::BadMessageLength(23))
    );
    assert_eq!(
        Message::parse(&bytes[..10], &Context::default()),
        Err(Error::BadMessageLength(10))
    );
}

#[test]
fn reject_bad_marker_and_type() {
    let mut bytes = msg(4, &[]);
    bytes[0] = 0;
    assert_eq!(
        Message::parse(&bytes, &Context::default()),
        Err(Error::ConnectionNotSynchronized)
    );
    assert_eq!(
        Message::parse(&msg(7, &[]), &Context::default()),
        Err(Error::BadMessageType(7))
    );
}

#[test]
fn update_end_of_rib() {
    let eor = UpdateRepr::end_of_rib(Afi::Ipv6, Safi::Unicast);
    both_ways(
        &msg(2, &[0, 0, 0, 6, 0x80, 15, 3, 0, 2, 1]),
        &Message::Update(eor.into()),
        &CTX4,
    );
    let eor4 = UpdateRepr::end_of_rib(Afi::Ipv4, Safi::Unicast);
    both_ways(&msg(2, &[0, 0, 0, 0]), &Message::Update(eor4.into()), &CTX4);
}

#[test]
fn emit_refuses_oversized() {
    let n = NotificationRepr {
        code: ErrorCode::Cease,
        subcode: 2,
        data: vec![0; 4096],
    };
    // A NOTIFICATION too long is cut to fit (its data is a quote).
    let cut = Message::Notification(n.clone())
        .to_bytes(&Context::default())
        .unwrap();
    assert_eq!(cut.len(), 4096);
    // Anything else too long is refused.
    let mut open = sample_open();
    open.capabilities
        .extend((0..20).map(|_| Capability::Unknown {
            code: 200,
            value: vec![0; 250],
        }));
    assert!(matches!(
        Message::Open(open).to_bytes(&Context::default()),
        Err(EmitError::TooLong { max: 4096, .. })
    ));
    let ext = Context {
        extended_messages: true,
        ..Context::default()
    };
    let bytes = Message::Notification(n.clone()).to_bytes(&ext).unwrap();
    assert_eq!(Message::parse(&bytes, &ext), Ok(Message::Notification(n)));
}

#[test]
fn context_negotiation() {
    let ours = sample_open();
    let mut theirs = sample_open();
    assert!(Context::negotiated(&ours, &theirs).four_octet_as);
    theirs
        .capabilities
        .retain(|c| !matches!(c, Capability::FourOctetAs(_)));
    assert_eq!(Context::negotiated(&ours, &theirs), Context::default());
}

/// A peer's 4-octet AS capability with a 2-octet value is malformed and
/// negotiates nothing: its AS_PATHs stay 2-octet (they were decoded as
/// 4-octet ones, so every UPDATE it sent was treated as withdrawn).
#[test]
fn a_malformed_four_octet_as_capability_is_not_negotiated() {
    // OPEN: AS 65001, hold 90, id 10.0.0.2, capabilities: multiprotocol
    // IPv6 unicast, and 65 with a 2-octet value.
    let caps = [2u8, 10, 1, 4, 0, 2, 0, 1, 65, 2, 0xfd, 0xe9];
    let mut body = vec![4, 0xfd, 0xe9, 0, 90, 10, 0, 0, 2, caps.len() as u8];
    body.extend_from_slice(&caps);
    let mut m = vec![0xff; 16];
    m.extend_from_slice(&((19 + body.len()) as u16).to_be_bytes());
    m.push(1);
    m.extend_from_slice(&body);
    let Ok(bgp::wire::Message::Open(remote)) =
        bgp::wire::Message::parse(&m, &bgp::wire::Context::default())
    else {
        panic!("not an OPEN");
    };
    assert_eq!(remote.asn(), bgp::wire::Asn(65001));
    let local = bgp::fsm::SessionConfig::new(
        bgp::wire::Asn(65000),
        std::net::Ipv4Addr::new(192, 0, 2, 1),
        bgp::wire::Asn(65001),
    )
    .open();
    let ctx = bgp::wire::Context::negotiated(&local, &remote);
    assert!(!ctx.four_octet_as, "{ctx:?}");
}

/// The NOTIFICATION owed to a ROUTE-REFRESH of 4,096 bytes quotes it
/// (RFC 7313 section 5), which does not fit in 4,096: its data is cut to
/// fit, rather than the NOTIFICATION not being sent at all.
#[test]
fn the_notification_for_a_long_route_refresh_fits() {
    let ctx = bgp::wire::Context::default();
    let mut rr = vec![0xff; 16];
    rr.extend_from_slice(&4096u16.to_be_bytes());
    rr.push(5);
    rr.extend_from_slice(&[0; 4096 - 19]);
    let err = bgp::wire::Message::parse(&rr, &ctx).unwrap_err();
    let n = err.notification();
    assert_eq!(n.data.len(), 4096);
    let bytes = bgp::wire::Message::Notification(n.clone())
        .to_bytes(&ctx)
        .expect("the NOTIFICATION is sent");
    assert_eq!(bytes.len(), 4096);
    assert_eq!(&bytes[21..], &n.data[..4096 - 21]);
}
