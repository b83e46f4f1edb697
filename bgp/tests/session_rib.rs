//! A miniature driver joining a Session to the RIB, fed with the messages
//! gobgpd sent (tests/fixtures): the path the tokio driver will take, with
//! the bytes decoded by the session's codec context.

use std::net::{Ipv4Addr, Ipv6Addr};

use bgp::fsm::{Direction, Input, Output, Session, SessionConfig, State};
use bgp::policy::PrefixList;
use bgp::rib::{NextHop, PeerConfig, PeerId, Rib, RibChange, RibConfig, RibOutput, RibTimer};
use bgp::wire::{Asn, Message};
use ipnet::Ipv6Net;

const OPEN: &[u8] = include_bytes!("fixtures/gobgp-open.bin");
const KEEPALIVE: &[u8] = include_bytes!("fixtures/gobgp-keepalive.bin");
const EOR_IPV6: &[u8] = include_bytes!("fixtures/gobgp-eor-ipv6.bin");
const UPDATE_POD: &[u8] = include_bytes!("fixtures/gobgp-update-pod.bin");
const UPDATE_SVC: &[u8] = include_bytes!("fixtures/gobgp-update-svc.bin");
const UPDATE_POD2: &[u8] = include_bytes!("fixtures/gobgp-update-pod2.bin");
const WITHDRAW: &[u8] = include_bytes!("fixtures/gobgp-withdraw.bin");
const NOTIFICATION_RESET: &[u8] = include_bytes!("fixtures/gobgp-notification-reset.bin");

const GOBGP_ADDR: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xf, 0, 0, 0, 0, 2);

fn net(s: &str) -> Ipv6Net {
    s.parse().unwrap()
}

/// What a driver does with a session's and the RIB's outputs, minus the
/// sockets and sleeps: records what it sent and which timers run.
struct Driver {
    session: Session,
    rib: Rib,
    peer: PeerId,
    sent: Vec<Message>,
    closed: bool,
    rib_timers: Vec<RibTimer>,
    changes: Vec<RibChange>,
}

impl Driver {
    fn new() -> Driver {
        let mut rib = Rib::new(RibConfig::new(Asn(65000)));
        let mut cfg = PeerConfig::new(GOBGP_ADDR, Asn(65001));
        cfg.import.allow = Some(
            PrefixList::parse(&["2001:db8:100::/40 le 64", "2001:db8:96::/112 le 128"]).unwrap(),
        );
        let peer = rib.add_peer(cfg);
        let session = Session::new(SessionConfig::new(
            Asn(65000),
            Ipv4Addr::new(10, 0, 0, 1),
            Asn(65001),
        ));
        Driver {
            session,
            rib,
            peer,
            sent: Vec::new(),
            closed: false,
            rib_timers: Vec::new(),
            changes: Vec::new(),
        }
    }

    fn input(&mut self, input: Input) {
        for o in self.session.handle(input) {
            match o {
                Output::SendMessage(m) => self.sent.push(m),
                Output::CloseTcp => self.closed = true,
                Output::Established(n) => {
                    let out = self.rib.peer_up(self.peer, &n);
                    self.rib_outputs(out);
                }
                Output::Down { graceful, .. } => {
                    let out = self.rib.peer_down(self.peer, graceful);
                    self.rib_outputs(out);
                }
                Output::Update(u) => {
                    let out = self.rib.apply_update(self.peer, &u);
                    self.rib_outputs(out);
                }
                Output::Connect
                | Output::ArmTimer(..)
                | Output::CancelTimer(_)
                | Output::OpenReceived { .. }
                | Output::RouteRefresh(_) => {}
            }
        }
        self.changes.extend(self.rib.drain_changes());
    }

    fn rib_outputs(&mut self, out: Vec<RibOutput>) {
        for o in out {
            match o {
                RibOutput::ArmTimer(t, _) => self.rib_timers.push(t),
                RibOutput::CancelTimer(t) => self.rib_timers.retain(|x| *x != t),
                RibOutput::Teardown(_, t) => self.input(t.into_input()),
            }
        }
    }

    /// Decodes bytes with the session's context, as the driver will.
    fn receive(&mut self, bytes: &[u8]) {
        match Message::parse(bytes, &self.session.codec_context()) {
            Ok(m) => self.input(Input::Message(m)),
            Err(e) => self.input(Input::DecodeError(e)),
        }
    }

    fn connect(&mut self) {
        self.closed = false;
        self.input(Input::TcpConnected(Direction::Inbound));
        self.receive(OPEN);
        self.receive(KEEPALIVE);
        assert_eq!(self.session.state(), State::Established);
    }

    fn take_changes(&mut self) -> Vec<RibChange> {
        std::mem::take(&mut self.changes)
    }
}

fn learned(prefix: &str, d: &Driver) -> RibChange {
    RibChange {
        prefix: net(prefix),
        nexthops: vec![NextHop {
            addr: GOBGP_ADDR,
            ifindex: None,
            peer: d.peer,
        }],
    }
}

#[test]
fn gobgp_session_learns_withdraws_and_survives_agent_restart() {
    let mut d = Driver::new();
    d.input(Input::ManualStartPassive);
    d.connect();
    // We sent OPEN, KEEPALIVE and End-of-RIB for IPv6 unicast.
    assert!(matches!(d.sent[0], Message::Open(_)));
    assert_eq!(d.sent[1], Message::Keepalive);
    let Message::Update(eor) = &d.sent[2] else {
        panic!("{:?}", d.sent)
    };
    assert!(eor.update.end_of_rib_family().is_some());

    d.receive(UPDATE_POD);
    d.receive(UPDATE_SVC);
    d.receive(UPDATE_POD2);
    d.receive(EOR_IPV6);
    assert_eq!(
        d.take_changes(),
        [
            learned("2001:db8:100::/64", &d),
            learned("2001:db8:96::10/128", &d),
            learned("2001:db8:100:1::/64", &d),
        ]
    );
    let svc = d.rib.route(&net("2001:db8:96::10/128")).unwrap();
    assert_eq!(svc.paths[0].attrs.med, Some(10));
    d.receive(WITHDRAW);
    assert_eq!(
        d.take_changes(),
        [RibChange {
            prefix: net("2001:db8:100::/64"),
            nexthops: vec![]
        }]
    );

    // The Cilium agent restarts: FIN, no NOTIFICATION. Routes stay.
    d.input(Input::TcpClosed);
    assert!(d.closed);
    assert_eq!(d.take_changes(), []);
    assert_eq!(d.rib_timers, [RibTimer::Restart(d.peer)]);
    assert_eq!(d.rib.peer_stats(d.peer).unwrap().stale, 2);
    assert_eq!(d.session.state(), State::Active);

    // It comes back. This captured OPEN is from a first start: GR without
    // the F bit, so the stale routes go at once (RFC 4724 section 4.2).
    d.connect();
    assert_eq!(d.rib_timers, []);
    assert_eq!(d.take_changes().len(), 2);
    d.receive(UPDATE_SVC);
    assert_eq!(d.take_changes(), [learned("2001:db8:96::10/128", &d)]);

    // gobgp neighbor reset: Cease / Administrative Reset with the N bit
    // negotiated keeps the routes stale.
    d.receive(NOTIFICATION_RESET);
    assert_eq!(d.take_changes(), []);
    assert_eq!(d.rib.peer_stats(d.peer).unwrap().stale, 1);
    // The restart time passes without the peer: purged.
    d.rib_timers.clear();
    let out = d.rib.timer_expired(RibTimer::Restart(d.peer));
    assert!(out.is_empty());
    assert_eq!(
        d.rib.drain_changes(),
        [RibChange {
            prefix: net("2001:db8:96::10/128"),
            nexthops: vec![]
        }]
    );
}

#[test]
fn gobgp_session_max_prefix_breach() {
    let mut d = Driver::new();
    let import = bgp::policy::ImportPolicy {
        max_prefixes: Some(1),
        ..bgp::policy::ImportPolicy::default()
    };
    d.rib.set_import_policy(d.peer, import);
    d.input(Input::ManualStartPassive);
    d.connect();
    d.receive(UPDATE_POD);
    d.receive(UPDATE_SVC);
    // Torn down with a Hard Reset, routes gone, the peer refused.
    let Some(Message::Notification(n)) = d.sent.last() else {
        panic!("{:?}", d.sent)
    };
    assert!(n.is_hard_reset());
    assert!(d.closed);
    assert!(d.rib.is_empty());
    assert_eq!(d.session.state(), State::Idle);
    assert!(d.session.refusing());
    d.closed = false;
    d.input(Input::TcpConnected(Direction::Inbound));
    assert!(d.closed, "refused during the idle time");
    d.input(Input::TimerExpired(bgp::fsm::Timer::IdleHold));
    assert_eq!(d.session.state(), State::Active);
}
