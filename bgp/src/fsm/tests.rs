//! One test per RFC 4271 section 8 transition that matters, plus OPEN
//! negotiation, graceful restart classification and collisions.

use std::net::Ipv4Addr;
use std::time::Duration;

use super::*;
use crate::wire::{
    CapabilityCode, HoldTime, MessageType, OpenSubcode, RouteRefreshSubtype, UpdateRepr,
};

const LOCAL_ID: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const PEER_ID: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
const GOBGP_OPEN: &[u8] = include_bytes!("../../tests/fixtures/gobgp-open.bin");

fn config() -> SessionConfig {
    SessionConfig::new(Asn(65000), LOCAL_ID, Asn(65001))
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn hold(s: u16) -> HoldTime {
    HoldTime::new(s).unwrap()
}

/// A peer OPEN; `gr` is (N bit, restart time, F bit for IPv6 unicast).
fn peer_open(asn: u32, hold_s: u16, id: Ipv4Addr, gr: Option<(bool, u16, bool)>) -> OpenRepr {
    let mut caps = vec![
        Capability::Multiprotocol {
            afi: Afi::Ipv6,
            safi: Safi::Unicast,
        },
        Capability::RouteRefresh,
    ];
    if let Some((n, time, f)) = gr {
        caps.push(Capability::GracefulRestart(GracefulRestart {
            restart_state: false,
            notification: n,
            restart_time: time,
            families: vec![GracefulRestartFamily {
                afi: Afi::Ipv6,
                safi: Safi::Unicast,
                forwarding_state: f,
            }],
        }));
    }
    OpenRepr::new(Asn(asn), hold(hold_s), id, caps)
}

fn gr_open() -> OpenRepr {
    peer_open(65001, 90, PEER_ID, Some((true, 120, false)))
}

/// A passive session taken to OpenSent by an inbound connection.
fn open_sent(config: SessionConfig) -> Session {
    let mut s = Session::new(config);
    assert!(s.handle(Input::ManualStartPassive).is_empty());
    s.handle(Input::TcpConnected(Direction::Inbound));
    assert_eq!(s.state(), State::OpenSent);
    s
}

fn established_with(config: SessionConfig, open: OpenRepr) -> Session {
    let mut s = open_sent(config);
    s.handle(Input::Message(Message::Open(open)));
    assert_eq!(s.state(), State::OpenConfirm);
    s.handle(Input::Message(Message::Keepalive));
    assert_eq!(s.state(), State::Established);
    s
}

fn established() -> Session {
    established_with(config(), gr_open())
}

fn sent_notification(out: &[Output]) -> Option<&NotificationRepr> {
    out.iter().find_map(|o| match o {
        Output::SendMessage(Message::Notification(n)) => Some(n),
        _ => None,
    })
}

fn down(out: &[Output]) -> Option<(&DownReason, bool)> {
    out.iter().find_map(|o| match o {
        Output::Down { reason, graceful } => Some((reason, *graceful)),
        _ => None,
    })
}

fn code(n: &NotificationRepr) -> (u8, u8) {
    (n.code.into(), n.subcode)
}

// --- Idle, Connect, Active ---------------------------------------------

#[test]
fn idle_manual_start_connects() {
    let mut s = Session::new(config());
    let out = s.handle(Input::ManualStart);
    assert_eq!(
        out,
        [
            Output::ArmTimer(Timer::ConnectRetry, secs(30)),
            Output::Connect
        ]
    );
    assert_eq!(s.state(), State::Connect);
}

#[test]
fn idle_passive_start_waits_in_active() {
    let mut s = Session::new(config());
    assert!(s.handle(Input::ManualStartPassive).is_empty());
    assert_eq!(s.state(), State::Active);
    // Passive sessions never connect, even when a stray ConnectRetry fires.
    assert!(s
        .handle(Input::TimerExpired(Timer::ConnectRetry))
        .is_empty());
    assert_eq!(s.state(), State::Active);
}

#[test]
fn idle_refuses_connections_and_ignores_messages() {
    let mut s = Session::new(config());
    assert_eq!(
        s.handle(Input::TcpConnected(Direction::Inbound)),
        [Output::CloseTcp]
    );
    assert!(s.handle(Input::Message(Message::Keepalive)).is_empty());
    assert!(s.handle(Input::TcpClosed).is_empty());
    assert_eq!(s.state(), State::Idle);
}

#[test]
fn connect_retry_expiry_reconnects() {
    let mut s = Session::new(config());
    s.handle(Input::ManualStart);
    let out = s.handle(Input::TimerExpired(Timer::ConnectRetry));
    assert_eq!(
        out,
        [
            Output::CloseTcp,
            Output::ArmTimer(Timer::ConnectRetry, secs(30)),
            Output::Connect
        ]
    );
    assert_eq!(s.state(), State::Connect);
}

#[test]
fn connect_failure_goes_active_then_retries() {
    let mut s = Session::new(config());
    s.handle(Input::ManualStart);
    assert!(s.handle(Input::TcpConnectionFails).is_empty());
    assert_eq!(s.state(), State::Active);
    let out = s.handle(Input::TimerExpired(Timer::ConnectRetry));
    assert_eq!(
        out,
        [
            Output::ArmTimer(Timer::ConnectRetry, secs(30)),
            Output::Connect
        ]
    );
    assert_eq!(s.state(), State::Connect);
}

#[test]
fn connected_sends_open_and_arms_large_hold() {
    let mut s = Session::new(config());
    s.handle(Input::ManualStart);
    let out = s.handle(Input::TcpConnected(Direction::Outbound));
    assert_eq!(
        out,
        [
            Output::CancelTimer(Timer::ConnectRetry),
            Output::SendMessage(Message::Open(config().open())),
            Output::ArmTimer(Timer::Hold, OPEN_HOLD_TIME),
        ]
    );
    assert_eq!(s.state(), State::OpenSent);
    assert_eq!(s.direction(), Some(Direction::Outbound));
}

#[test]
fn active_accepts_inbound_connection() {
    let mut s = Session::new(config());
    s.handle(Input::ManualStartPassive);
    let out = s.handle(Input::TcpConnected(Direction::Inbound));
    assert_eq!(
        out,
        [
            Output::SendMessage(Message::Open(config().open())),
            Output::ArmTimer(Timer::Hold, OPEN_HOLD_TIME),
        ]
    );
}

#[test]
fn our_open_advertises_what_we_negotiate() {
    let open = config().open();
    assert_eq!(open.asn(), Asn(65000));
    assert_eq!(open.hold_time.seconds(), 90);
    assert_eq!(
        open.multiprotocol().collect::<Vec<_>>(),
        [(Afi::Ipv6, Safi::Unicast)]
    );
    assert!(open.has_capability(CapabilityCode::RouteRefresh));
    assert!(open.has_capability(CapabilityCode::FourOctetAs));
    let gr = open.graceful_restart().unwrap();
    assert!(gr.notification && !gr.restart_state);
    assert_eq!(gr.restart_time, 120);
    assert!(!gr.families[0].forwarding_state);
    let mut no_gr = config();
    no_gr.graceful_restart = None;
    assert!(no_gr.open().graceful_restart().is_none());
}

// --- OpenSent: OPEN validation and negotiation ----------------------------

#[test]
fn open_accepted_negotiates_smaller_hold_time() {
    let mut s = open_sent(config());
    let out = s.handle(Input::Message(Message::Open(peer_open(
        65001, 30, PEER_ID, None,
    ))));
    assert_eq!(
        out,
        [
            Output::SendMessage(Message::Keepalive),
            Output::ArmTimer(Timer::Hold, secs(30)),
            Output::ArmTimer(Timer::Keepalive, secs(10)),
            Output::OpenReceived { remote_id: PEER_ID },
        ]
    );
    assert_eq!(s.state(), State::OpenConfirm);
}

#[test]
fn hold_time_zero_disables_keepalives() {
    let mut s = open_sent(config());
    let mut open = peer_open(65001, 90, PEER_ID, None);
    open.hold_time = HoldTime::DISABLED;
    let out = s.handle(Input::Message(Message::Open(open)));
    assert_eq!(
        out,
        [
            Output::SendMessage(Message::Keepalive),
            Output::CancelTimer(Timer::Hold),
            Output::OpenReceived { remote_id: PEER_ID },
        ]
    );
    let out = s.handle(Input::Message(Message::Keepalive));
    let Some(Output::Established(n)) = out.first() else {
        panic!("{out:?}")
    };
    assert_eq!(n.hold_time, HoldTime::DISABLED);
    assert_eq!(n.keepalive, Duration::ZERO);
    assert!(!out.iter().any(|o| matches!(o, Output::ArmTimer(..))));
}

#[test]
fn hold_time_one_or_two_rejected_with_2_6() {
    for bad in [1u16, 2] {
        let mut bytes = Message::Open(peer_open(65001, 90, PEER_ID, None))
            .to_bytes(&Context::default())
            .unwrap();
        bytes[19 + 3..19 + 5].copy_from_slice(&bad.to_be_bytes());
        let err = Message::parse(&bytes, &Context::default()).unwrap_err();
        let mut s = open_sent(config());
        let out = s.handle(Input::DecodeError(err));
        let n = sent_notification(&out).unwrap();
        assert_eq!(
            code(n),
            (2, u8::from(OpenSubcode::UnacceptableHoldTime)),
            "hold {bad}"
        );
        assert!(out.contains(&Output::CloseTcp));
        assert_eq!(s.state(), State::Active, "passive session restarts");
    }
}

#[test]
fn open_with_wrong_peer_as_rejected_with_2_2() {
    let mut s = open_sent(config());
    let out = s.handle(Input::Message(Message::Open(peer_open(
        65099, 90, PEER_ID, None,
    ))));
    assert_eq!(code(sent_notification(&out).unwrap()), (2, 2));
    assert_eq!(out.last(), Some(&Output::CancelTimer(Timer::Hold)));
    assert_eq!(s.state(), State::Active);
    assert!(s.remote_open().is_none());
}

#[test]
fn internal_peer_with_our_router_id_rejected_with_2_3() {
    let ibgp = SessionConfig::new(Asn(65000), LOCAL_ID, Asn(65000));
    let mut s = open_sent(ibgp.clone());
    let out = s.handle(Input::Message(Message::Open(peer_open(
        65000, 90, LOCAL_ID, None,
    ))));
    assert_eq!(code(sent_notification(&out).unwrap()), (2, 3));
    // An external peer may share our identifier (RFC 6286 section 2.2).
    let mut s = open_sent(config());
    let out = s.handle(Input::Message(Message::Open(peer_open(
        65001, 90, LOCAL_ID, None,
    ))));
    assert!(sent_notification(&out).is_none());
    assert_eq!(s.state(), State::OpenConfirm);
}

#[test]
fn open_without_ipv6_unicast_rejected_with_2_7() {
    let mut s = open_sent(config());
    let open = OpenRepr::new(
        Asn(65001),
        hold(90),
        PEER_ID,
        vec![Capability::Multiprotocol {
            afi: Afi::Ipv4,
            safi: Safi::Unicast,
        }],
    );
    let out = s.handle(Input::Message(Message::Open(open)));
    let n = sent_notification(&out).unwrap();
    assert_eq!(code(n), (2, 7));
    // The data names the capability we require (RFC 5492 section 5).
    assert_eq!(n.data, [1, 4, 0, 2, 0, 1]);
}

#[test]
fn gobgp_open_negotiation() {
    let Ok(Message::Open(open)) = Message::parse(GOBGP_OPEN, &Context::default()) else {
        panic!("fixture does not parse");
    };
    let mut s = open_sent(config());
    s.handle(Input::Message(Message::Open(open)));
    assert!(s.codec_context().four_octet_as);
    let out = s.handle(Input::Message(Message::Keepalive));
    let Some(Output::Established(n)) = out.iter().find(|o| matches!(o, Output::Established(_)))
    else {
        panic!("{out:?}")
    };
    assert_eq!(n.remote_asn, Asn(65001));
    assert_eq!(n.remote_id, PEER_ID);
    assert!(!n.ibgp);
    assert_eq!(n.hold_time.seconds(), 90);
    assert_eq!(n.keepalive, secs(30));
    assert!(n.context.four_octet_as);
    assert!(!n.context.extended_messages);
    // GoBGP also offers IPv4 unicast; we only negotiate IPv6.
    assert_eq!(n.families, [(Afi::Ipv6, Safi::Unicast)]);
    assert!(n.route_refresh);
    assert!(n.notification_bit);
    assert!(n.graceful_restart_helper());
    assert_eq!(n.restart_time(), Some(secs(120)));
    assert!(!n.ipv6_forwarding_preserved());
}

#[test]
fn unexpected_message_in_open_sent_is_fsm_error_5_1() {
    let mut s = open_sent(config());
    let out = s.handle(Input::Message(Message::Keepalive));
    assert_eq!(code(sent_notification(&out).unwrap()), (5, 1));
    assert_eq!(s.state(), State::Active);
}

#[test]
fn notification_in_open_sent_closes() {
    let mut s = open_sent(config());
    let n = NotificationRepr::cease(CeaseSubcode::ConnectionRejected);
    let out = s.handle(Input::Message(Message::Notification(n)));
    assert_eq!(out, [Output::CloseTcp, Output::CancelTimer(Timer::Hold)]);
    assert_eq!(s.state(), State::Active);
}

#[test]
fn open_sent_tcp_closed_restarts_active_session() {
    let mut s = Session::new(config());
    s.handle(Input::ManualStart);
    s.handle(Input::TcpConnected(Direction::Outbound));
    let out = s.handle(Input::TcpClosed);
    assert_eq!(
        out,
        [
            Output::CloseTcp,
            Output::CancelTimer(Timer::Hold),
            Output::ArmTimer(Timer::ConnectRetry, secs(30)),
        ]
    );
    assert_eq!(s.state(), State::Active);
    assert!(down(&out).is_none(), "never Established, no Down");
}

#[test]
fn open_sent_hold_expiry_sends_4_0() {
    let mut s = open_sent(config());
    let out = s.handle(Input::TimerExpired(Timer::Hold));
    assert_eq!(code(sent_notification(&out).unwrap()), (4, 0));
    assert_eq!(s.state(), State::Active);
}

// --- OpenConfirm ---------------------------------------------------------

#[test]
fn keepalive_in_open_confirm_establishes_and_sends_end_of_rib() {
    let mut s = open_sent(config());
    s.handle(Input::Message(Message::Open(gr_open())));
    let out = s.handle(Input::Message(Message::Keepalive));
    assert_eq!(out.len(), 3, "{out:?}");
    assert_eq!(out[0], Output::ArmTimer(Timer::Hold, secs(90)));
    assert!(matches!(out[1], Output::Established(_)));
    assert_eq!(
        out[2],
        Output::SendMessage(Message::Update(
            UpdateRepr::end_of_rib(Afi::Ipv6, Safi::Unicast).into()
        ))
    );
    assert!(s.negotiated().is_some());
}

#[test]
fn open_confirm_keepalive_timer_sends_keepalive() {
    let mut s = open_sent(config());
    s.handle(Input::Message(Message::Open(gr_open())));
    let out = s.handle(Input::TimerExpired(Timer::Keepalive));
    assert_eq!(
        out,
        [
            Output::SendMessage(Message::Keepalive),
            Output::ArmTimer(Timer::Keepalive, secs(30))
        ]
    );
}

#[test]
fn update_in_open_confirm_is_fsm_error_5_2() {
    let mut s = open_sent(config());
    s.handle(Input::Message(Message::Open(gr_open())));
    let out = s.handle(Input::Message(Message::Update(
        UpdateRepr::default().into(),
    )));
    assert_eq!(code(sent_notification(&out).unwrap()), (5, 2));
    assert!(down(&out).is_none());
    assert_eq!(s.state(), State::Active);
}

#[test]
fn open_confirm_hold_expiry_and_stop() {
    let mut s = open_sent(config());
    s.handle(Input::Message(Message::Open(gr_open())));
    let out = s.handle(Input::TimerExpired(Timer::Hold));
    assert_eq!(code(sent_notification(&out).unwrap()), (4, 0));
    assert!(out.contains(&Output::CancelTimer(Timer::Keepalive)));

    let mut s = open_sent(config());
    s.handle(Input::Message(Message::Open(gr_open())));
    let out = s.handle(Input::ManualStop);
    // Not Established: the N bit is not negotiated yet, a plain Cease.
    assert_eq!(code(sent_notification(&out).unwrap()), (6, 2));
    assert_eq!(s.state(), State::Idle);
}

// --- Established -----------------------------------------------------------

#[test]
fn established_keepalive_and_update_restart_hold_timer() {
    let mut s = established();
    assert_eq!(
        s.handle(Input::Message(Message::Keepalive)),
        [Output::ArmTimer(Timer::Hold, secs(90))]
    );
    let u: ParsedUpdate = UpdateRepr::end_of_rib(Afi::Ipv6, Safi::Unicast).into();
    assert_eq!(
        s.handle(Input::Message(Message::Update(u.clone()))),
        [Output::ArmTimer(Timer::Hold, secs(90)), Output::Update(u)]
    );
    assert_eq!(
        s.handle(Input::TimerExpired(Timer::Keepalive)),
        [
            Output::SendMessage(Message::Keepalive),
            Output::ArmTimer(Timer::Keepalive, secs(30))
        ]
    );
}

#[test]
fn established_route_refresh_for_negotiated_family_only() {
    let mut s = established();
    let rr = RouteRefreshRepr {
        afi: Afi::Ipv6,
        safi: Safi::Unicast,
        subtype: RouteRefreshSubtype::Normal,
    };
    let out = s.handle(Input::Message(Message::RouteRefresh(rr)));
    assert_eq!(out.last(), Some(&Output::RouteRefresh(rr)));
    let v4 = RouteRefreshRepr {
        afi: Afi::Ipv4,
        ..rr
    };
    let out = s.handle(Input::Message(Message::RouteRefresh(v4)));
    assert_eq!(out, [Output::ArmTimer(Timer::Hold, secs(90))]);
    // RFC 7313: the markers of an enhanced refresh and unknown subtypes
    // ask for nothing.
    for subtype in [
        RouteRefreshSubtype::BeginningOfRouteRefresh,
        RouteRefreshSubtype::EndOfRouteRefresh,
        RouteRefreshSubtype::from(3),
    ] {
        let out = s.handle(Input::Message(Message::RouteRefresh(RouteRefreshRepr {
            subtype,
            ..rr
        })));
        assert_eq!(
            out,
            [Output::ArmTimer(Timer::Hold, secs(90))],
            "{subtype:?}"
        );
    }
}

#[test]
fn established_tcp_close_is_graceful_with_gr_peer() {
    let mut s = established();
    let out = s.handle(Input::TcpClosed);
    assert_eq!(out[0], Output::CloseTcp);
    assert_eq!(down(&out), Some((&DownReason::TcpClosed, true)));
    assert!(out.contains(&Output::CancelTimer(Timer::Hold)));
    assert!(out.contains(&Output::CancelTimer(Timer::Keepalive)));
    assert_eq!(s.state(), State::Active);
    assert!(s.negotiated().is_none());
}

#[test]
fn established_tcp_close_without_gr_is_not_graceful() {
    let mut s = established_with(config(), peer_open(65001, 90, PEER_ID, None));
    let out = s.handle(Input::TcpClosed);
    assert_eq!(down(&out), Some((&DownReason::TcpClosed, false)));
    // Our helper disabled: not graceful either.
    let mut cfg = config();
    cfg.graceful_restart = None;
    let mut s = established_with(cfg, gr_open());
    assert!(s.negotiated().unwrap().peer_graceful_restart.is_none());
    let out = s.handle(Input::TcpClosed);
    assert_eq!(down(&out), Some((&DownReason::TcpClosed, false)));
}

#[test]
fn established_hold_expiry_is_graceful_with_gr_peer() {
    let mut s = established_with(
        config(),
        peer_open(65001, 90, PEER_ID, Some((false, 120, false))),
    );
    let out = s.handle(Input::TimerExpired(Timer::Hold));
    assert_eq!(code(sent_notification(&out).unwrap()), (4, 0));
    assert_eq!(down(&out), Some((&DownReason::HoldTimerExpired, true)));
}

#[test]
fn received_notification_graceful_only_with_n_bit_and_not_hard_reset() {
    let reset = NotificationRepr::cease(CeaseSubcode::AdministrativeReset);
    // N bit both ways: graceful.
    let mut s = established();
    let out = s.handle(Input::Message(Message::Notification(reset.clone())));
    assert_eq!(
        down(&out),
        Some((&DownReason::NotificationReceived(reset.clone()), true))
    );
    assert!(sent_notification(&out).is_none());
    // Hard Reset: not graceful.
    let mut s = established();
    let hr = NotificationRepr::hard_reset(&reset);
    let out = s.handle(Input::Message(Message::Notification(hr)));
    assert_eq!(down(&out).map(|d| d.1), Some(false));
    // Peer without the N bit: any NOTIFICATION ends GR (RFC 4724).
    let mut s = established_with(
        config(),
        peer_open(65001, 90, PEER_ID, Some((false, 120, false))),
    );
    let out = s.handle(Input::Message(Message::Notification(reset.clone())));
    assert_eq!(down(&out).map(|d| d.1), Some(false));
    // We did not set the N bit: same.
    let mut cfg = config();
    cfg.graceful_restart = Some(GracefulRestartConfig {
        notification: false,
        ..GracefulRestartConfig::default()
    });
    let mut s = established_with(cfg, gr_open());
    let out = s.handle(Input::Message(Message::Notification(reset)));
    assert_eq!(down(&out).map(|d| d.1), Some(false));
}

#[test]
fn decode_error_in_established_sends_notification_graceful_with_n_bit() {
    let mut s = established();
    let out = s.handle(Input::DecodeError(Error::MalformedAttributeList));
    let n = sent_notification(&out).unwrap().clone();
    assert_eq!(code(&n), (3, 1));
    assert_eq!(down(&out), Some((&DownReason::NotificationSent(n), true)));
    assert_eq!(s.state(), State::Active);
}

#[test]
fn malformed_update_before_established_is_fsm_error() {
    // RFC 4271 8.2.2 (event 28) and RFC 6608: 5/1 in OpenSent, 5/2 in
    // OpenConfirm, not the UPDATE error itself; other decode errors keep
    // their own code.
    let mut s = open_sent(config());
    let out = s.handle(Input::DecodeError(Error::MalformedAttributeList));
    assert_eq!(code(sent_notification(&out).unwrap()), (5, 1));
    let mut s = open_sent(config());
    s.handle(Input::Message(Message::Open(gr_open())));
    assert_eq!(s.state(), State::OpenConfirm);
    let out = s.handle(Input::DecodeError(Error::InvalidNetworkField));
    assert_eq!(code(sent_notification(&out).unwrap()), (5, 2));
    let mut s = open_sent(config());
    let out = s.handle(Input::DecodeError(Error::BadMessageLength(18)));
    assert_eq!(code(sent_notification(&out).unwrap()), (1, 2));
}

#[test]
fn open_in_established_is_fsm_error_5_3() {
    let mut s = established();
    let out = s.handle(Input::Message(Message::Open(gr_open())));
    assert_eq!(code(sent_notification(&out).unwrap()), (5, 3));
}

#[test]
fn manual_stop_in_established_sends_hard_reset_with_n_bit() {
    let mut s = established();
    let out = s.handle(Input::ManualStop);
    let n = sent_notification(&out).unwrap();
    assert!(n.is_hard_reset());
    assert_eq!(
        n.inner().map(|i| code(&i)),
        Some((6, u8::from(CeaseSubcode::AdministrativeShutdown)))
    );
    assert_eq!(down(&out), Some((&DownReason::ManualStop, false)));
    assert!(out.contains(&Output::CancelTimer(Timer::Hold)));
    assert!(out.contains(&Output::CancelTimer(Timer::Keepalive)));
    assert_eq!(s.state(), State::Idle);
    assert_eq!(s.start_mode(), None);
    // Stopped: connections are refused, no timer runs.
    assert_eq!(
        s.handle(Input::TcpConnected(Direction::Inbound)),
        [Output::CloseTcp]
    );
}

#[test]
fn manual_stop_without_n_bit_sends_plain_cease() {
    let mut s = established_with(config(), peer_open(65001, 90, PEER_ID, None));
    let out = s.handle(Input::ManualStop);
    assert_eq!(code(sent_notification(&out).unwrap()), (6, 2));
}

fn max_prefix_teardown() -> Teardown {
    Teardown {
        notification: NotificationRepr::cease(CeaseSubcode::MaxPrefixes),
        hard_reset: true,
        refuse_for: secs(30),
    }
}

#[test]
fn max_prefix_teardown_sends_hard_reset_and_refuses_peer() {
    let mut s = established();
    let out = s.handle(max_prefix_teardown().into_input());
    let n = sent_notification(&out).unwrap().clone();
    assert!(n.is_hard_reset());
    assert_eq!(n.inner().map(|i| code(&i)), Some((6, 1)));
    assert_eq!(down(&out), Some((&DownReason::NotificationSent(n), false)));
    assert_eq!(
        out.last(),
        Some(&Output::ArmTimer(Timer::IdleHold, secs(30)))
    );
    assert_eq!(s.state(), State::Idle);
    assert!(s.refusing());
    // The peer reconnects at once: refused.
    assert_eq!(
        s.handle(Input::TcpConnected(Direction::Inbound)),
        [Output::CloseTcp]
    );
    // After the idle hold the passive session accepts again.
    assert!(s.handle(Input::TimerExpired(Timer::IdleHold)).is_empty());
    assert_eq!(s.state(), State::Active);
    assert!(!s.refusing());
    s.handle(Input::TcpConnected(Direction::Inbound));
    assert_eq!(s.state(), State::OpenSent);
}

#[test]
fn max_prefix_teardown_of_active_session_reconnects_after_idle_hold() {
    let mut s = Session::new(config());
    s.handle(Input::ManualStart);
    s.handle(Input::TcpConnected(Direction::Outbound));
    s.handle(Input::Message(Message::Open(gr_open())));
    s.handle(Input::Message(Message::Keepalive));
    s.handle(max_prefix_teardown().into_input());
    let out = s.handle(Input::TimerExpired(Timer::IdleHold));
    assert_eq!(
        out,
        [
            Output::ArmTimer(Timer::ConnectRetry, secs(30)),
            Output::Connect
        ]
    );
}

#[test]
fn manual_start_overrides_idle_hold() {
    let mut s = established();
    s.handle(max_prefix_teardown().into_input());
    let out = s.handle(Input::ManualStartPassive);
    assert_eq!(out, [Output::CancelTimer(Timer::IdleHold)]);
    assert_eq!(s.state(), State::Active);
}

#[test]
fn stale_timer_expiry_is_ignored() {
    let mut s = established();
    s.handle(Input::ManualStop);
    for t in Timer::ALL {
        assert!(s.handle(Input::TimerExpired(t)).is_empty(), "{t:?}");
    }
    assert_eq!(s.state(), State::Idle);
}

#[test]
fn active_session_restarts_after_failure() {
    let mut s = Session::new(config());
    s.handle(Input::ManualStart);
    s.handle(Input::TcpConnected(Direction::Outbound));
    s.handle(Input::Message(Message::Open(gr_open())));
    s.handle(Input::Message(Message::Keepalive));
    let out = s.handle(Input::TcpClosed);
    assert_eq!(
        out.last(),
        Some(&Output::ArmTimer(Timer::ConnectRetry, secs(30)))
    );
    assert_eq!(s.state(), State::Active);
    // The peer may connect in meanwhile.
    s.handle(Input::TcpConnected(Direction::Inbound));
    assert_eq!(s.state(), State::OpenSent);
}

#[test]
fn codec_context_follows_open_exchange() {
    let mut s = open_sent(config());
    assert_eq!(s.codec_context(), Context::default());
    s.handle(Input::Message(Message::Open(gr_open())));
    assert!(s.codec_context().four_octet_as);
    assert_eq!(s.codec_context().max_message_len(MessageType::Update), 4096);
}

// --- Collisions ---------------------------------------------------------------

/// A session of `config` on a connection in `direction`, in OpenConfirm
/// with a peer whose identifier is `peer_id`.
fn confirm(config: SessionConfig, direction: Direction, peer_id: Ipv4Addr) -> Session {
    let mut s = Session::new(config);
    s.handle(Input::ManualStart);
    s.handle(Input::TcpConnected(direction));
    s.handle(Input::Message(Message::Open(peer_open(
        65001,
        90,
        peer_id,
        Some((true, 120, false)),
    ))));
    assert_eq!(s.state(), State::OpenConfirm);
    s
}

#[test]
fn collision_higher_identifier_keeps_its_connection() {
    let low = Ipv4Addr::new(10, 0, 0, 1);
    let high = Ipv4Addr::new(203, 0, 113, 9);
    // We (192.0.2.1) are higher than 10.0.0.1: our outbound survives.
    let ours = confirm(config(), Direction::Outbound, low);
    let theirs = confirm(config(), Direction::Inbound, low);
    let d = resolve_collision(&ours, &theirs);
    assert_eq!(d.survivor, Survivor::Existing);
    assert_eq!(d.loser_input, Input::CollisionDump);
    assert_eq!(resolve_collision(&theirs, &ours).survivor, Survivor::New);
    // The peer is higher: its inbound connection survives.
    let ours = confirm(config(), Direction::Outbound, high);
    let theirs = confirm(config(), Direction::Inbound, high);
    assert_eq!(resolve_collision(&ours, &theirs).survivor, Survivor::New);
}

#[test]
fn collision_equal_identifiers_decided_by_as() {
    // Same identifier (allowed for eBGP): the higher AS (the peer's 65001)
    // keeps its connection.
    let ours = confirm(config(), Direction::Outbound, LOCAL_ID);
    let theirs = confirm(config(), Direction::Inbound, LOCAL_ID);
    assert_eq!(resolve_collision(&ours, &theirs).survivor, Survivor::New);
}

#[test]
fn collision_loser_sends_cease_7() {
    let mut loser = confirm(config(), Direction::Inbound, PEER_ID);
    let out = loser.handle(Input::CollisionDump);
    assert_eq!(
        code(sent_notification(&out).unwrap()),
        (6, u8::from(CeaseSubcode::ConnectionCollisionResolution))
    );
    assert!(out.contains(&Output::CloseTcp));
}

#[test]
fn collision_with_established_session() {
    let new = confirm(config(), Direction::Inbound, PEER_ID);
    // The established peer advertised GR and does again: it restarted and
    // we missed its FIN. The old session ends gracefully.
    let mut old = established();
    let d = resolve_collision(&old, &new);
    assert_eq!(d.survivor, Survivor::New);
    let out = old.handle(d.loser_input);
    assert_eq!(down(&out), Some((&DownReason::TcpClosed, true)));
    // Without GR the established session stays (RFC 4271 section 6.8).
    let old = established_with(config(), peer_open(65001, 90, PEER_ID, None));
    assert_eq!(resolve_collision(&old, &new).survivor, Survivor::Existing);
    // An existing session without a connection is no collision.
    let idle = Session::new(config());
    assert_eq!(resolve_collision(&idle, &new).survivor, Survivor::New);
}

#[test]
fn handle_never_panics_on_any_event_sequence() {
    let inputs = [
        Input::ManualStart,
        Input::ManualStartPassive,
        Input::ManualStop,
        max_prefix_teardown().into_input(),
        Input::TcpConnected(Direction::Inbound),
        Input::TcpConnected(Direction::Outbound),
        Input::TcpConnectionFails,
        Input::TcpClosed,
        Input::Message(Message::Open(gr_open())),
        Input::Message(Message::Keepalive),
        Input::Message(Message::Update(UpdateRepr::default().into())),
        Input::Message(Message::Notification(NotificationRepr::cease(
            CeaseSubcode::AdministrativeReset,
        ))),
        Input::DecodeError(Error::InvalidNetworkField),
        Input::TimerExpired(Timer::ConnectRetry),
        Input::TimerExpired(Timer::Hold),
        Input::TimerExpired(Timer::Keepalive),
        Input::TimerExpired(Timer::IdleHold),
        Input::CollisionDump,
    ];
    // Every sequence of three events from every reachable start.
    let n = inputs.len();
    for a in 0..n {
        for b in 0..n {
            for c in 0..n {
                let mut s = Session::new(config());
                let mut armed = std::collections::HashSet::new();
                for i in [a, b, c] {
                    for o in s.handle(inputs[i].clone()) {
                        match o {
                            Output::ArmTimer(t, _) => {
                                armed.insert(t);
                            }
                            Output::CancelTimer(t) => {
                                assert!(armed.remove(&t), "cancel of unarmed {t:?}");
                            }
                            _ => {}
                        }
                    }
                }
            }
        }
    }
}
