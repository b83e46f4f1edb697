//! The tokio driver end to end on loopback: two `Speaker`s peer with each
//! other (no root needed). The netns tests (`tests/`) cover real GoBGP
//! peers, MD5 and graceful restart.
#![cfg(feature = "driver")]

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use bgp::driver::{
    AdminAction, AdminError, Event, ListenRange, Neighbor, PeerSettings, PeerSummary,
    ReconfigureError, Speaker, SpeakerConfig,
};
use bgp::fsm::{DownReason, State};
use bgp::policy::{PrefixList, RejectReason};
use bgp::wire::{Asn, CeaseSubcode, NotificationRepr};
use tokio::sync::mpsc::Receiver;

const LOOPBACK: Ipv6Addr = Ipv6Addr::LOCALHOST;

fn free_port() -> u16 {
    std::net::TcpListener::bind("[::1]:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn config(asn: u32, id: u8, port: u16, remote_port: u16) -> SpeakerConfig {
    let mut c = SpeakerConfig::new(Asn(asn), Ipv4Addr::new(192, 0, 2, id));
    c.listen = SocketAddr::new(LOOPBACK.into(), port);
    c.remote_port = remote_port;
    c
}

/// Waits (at most 20 s) for an event `f` accepts.
async fn wait<T>(
    events: &mut Receiver<Event>,
    what: &str,
    mut f: impl FnMut(&Event) -> Option<T>,
) -> T {
    let found = tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(e) = events.recv().await {
            if let Some(t) = f(&e) {
                return Some(t);
            }
        }
        None
    })
    .await;
    match found {
        Ok(Some(t)) => t,
        Ok(None) => panic!("event channel closed waiting for {what}"),
        Err(_) => panic!("timed out waiting for {what}"),
    }
}

/// A speaker and its events, with the configuration it started with.
type Started = (Speaker, Receiver<Event>, SpeakerConfig);

/// Speaker B (AS 65000) with a listen range for `::1`, and speaker A (AS
/// 65001) dialling it as a neighbour with `settings`; `extra` completes
/// A's config. Returns (A, B).
async fn dialling_pair(
    settings: PeerSettings,
    extra: impl FnOnce(&mut SpeakerConfig),
) -> (Started, Started) {
    let (pa, pb) = (free_port(), free_port());
    let mut b = config(65000, 1, pb, pa);
    b.ranges.push(ListenRange::new(
        "::1/128".parse().unwrap(),
        PeerSettings::new(Asn(65001)),
    ));
    let (speaker_b, events_b) = Speaker::start(b.clone()).await.unwrap();
    let mut a = config(65001, 2, pa, pb);
    a.neighbors.push(Neighbor::new(LOOPBACK, settings));
    extra(&mut a);
    let (speaker_a, events_a) = Speaker::start(a.clone()).await.unwrap();
    ((speaker_a, events_a, a), (speaker_b, events_b, b))
}

/// A dials B (a listen range on B's side) and exports its aggregate; B
/// receives it and, the next hop being A's loopback address, rejects and
/// counts it (the only address two speakers share without root). A's
/// shutdown sends a Cease as a Hard Reset (the N bit is negotiated), and
/// B drops the peer's routes rather than keeping them stale.
#[tokio::test]
async fn updates_flow_and_a_shutdown_is_a_hard_reset() {
    let mut settings = PeerSettings::new(Asn(65000));
    settings.export = PrefixList::parse(&["2001:db8:100::/40"]).unwrap();
    let ((speaker_a, mut events_a, _), (speaker_b, mut events_b, _)) =
        dialling_pair(settings, |a| {
            a.originated.push("2001:db8:100::/40".parse().unwrap())
        })
        .await;

    wait(&mut events_a, "A established", |e| {
        matches!(e, Event::Established { .. }).then_some(())
    })
    .await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let peers = speaker_b.peers().await;
        let rejected = peers.first().map_or(0, |p| {
            p.stats
                .rejected
                .iter()
                .find(|(r, _)| *r == RejectReason::NextHopInvalid)
                .map_or(0, |(_, n)| *n)
        });
        if rejected == 1 {
            assert_eq!(peers.len(), 1);
            assert!(peers[0].dynamic);
            assert_eq!(peers[0].state, State::Established);
            assert_eq!(peers[0].stats.accepted, 0);
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "B never received A's UPDATE: {peers:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    speaker_a.shutdown().await;
    let (reason, graceful) = wait(&mut events_b, "B sees the session down", |e| match e {
        Event::Down {
            reason, graceful, ..
        } => Some((reason.clone(), *graceful)),
        _ => None,
    })
    .await;
    match reason {
        DownReason::NotificationReceived(n) => assert!(n.is_hard_reset(), "{n:?}"),
        other => panic!("expected a NOTIFICATION, got {other:?}"),
    }
    assert!(!graceful, "a Hard Reset drops the routes");
    speaker_b.shutdown().await;
}

/// Both speakers dial each other at once: RFC 4271 section 6.8 keeps
/// exactly one connection, and both ends agree on it and stay up.
#[tokio::test]
async fn simultaneous_connects_resolve_to_one_session() {
    let (pa, pb) = (free_port(), free_port());
    let mut settings = PeerSettings::new(Asn(65000));
    settings.graceful_restart = None;
    settings.connect_retry = Duration::from_secs(2);
    let mut a = config(65000, 1, pa, pb);
    a.neighbors.push(Neighbor::new(LOOPBACK, settings.clone()));
    let mut b = config(65000, 2, pb, pa);
    b.neighbors.push(Neighbor::new(LOOPBACK, settings));
    let (speaker_a, mut events_a) = Speaker::start(a).await.unwrap();
    let (speaker_b, mut events_b) = Speaker::start(b).await.unwrap();
    for events in [&mut events_a, &mut events_b] {
        wait(events, "established", |e| {
            matches!(e, Event::Established { .. }).then_some(())
        })
        .await;
    }
    // Longer than a connect retry: no flapping, no second session.
    tokio::time::sleep(Duration::from_secs(3)).await;
    for (s, events) in [(&speaker_a, &mut events_a), (&speaker_b, &mut events_b)] {
        let peers = s.peers().await;
        assert_eq!(peers.len(), 1);
        assert_eq!(peers[0].state, State::Established);
        while let Ok(e) = events.try_recv() {
            assert!(!matches!(e, Event::Down { .. }), "flapped: {e:?}");
        }
        // Up/Down while up: the session's uptime.
        let p = &peers[0];
        let up = p.uptime.expect("an established peer has an uptime");
        assert!(
            p.up_down >= Duration::from_secs(3) && up.abs_diff(p.up_down) < Duration::from_secs(1),
            "{p:?}"
        );
    }
    speaker_a.shutdown().await;
    wait(&mut events_b, "B sees the session down", |e| {
        matches!(e, Event::Down { .. }).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    // Up/Down while down: since it went down, not 0 and not since it came up.
    let p = &speaker_b.peers().await[0];
    assert!(
        p.uptime.is_none()
            && p.up_down >= Duration::from_secs(1)
            && p.up_down < Duration::from_secs(3),
        "{p:?}"
    );
    speaker_b.shutdown().await;
}

/// Waits for a session to go down (`what`) and returns the Cease
/// subcode it received.
async fn cease_down(events: &mut Receiver<Event>, what: &str) -> CeaseSubcode {
    let reason = wait(events, what, |e| match e {
        Event::Down { reason, .. } => Some(reason.clone()),
        _ => None,
    })
    .await;
    cease_received(&reason)
}

/// Panics with `why` if a session comes up within 3 s.
async fn stays_down(events: &mut Receiver<Event>, why: &str) {
    let up = tokio::time::timeout(Duration::from_secs(3), async {
        while let Some(e) = events.recv().await {
            if matches!(e, Event::Established { .. }) {
                return;
            }
        }
    })
    .await;
    assert!(up.is_err(), "{why}");
}

/// The Cease subcode a session went down with (inside a Hard Reset, when
/// it was wrapped in one); panics on another reason.
fn cease_received(reason: &DownReason) -> CeaseSubcode {
    match reason {
        DownReason::NotificationReceived(n) => {
            let inner: NotificationRepr = n.inner().unwrap_or_else(|| n.clone());
            inner
                .cease_subcode()
                .unwrap_or_else(|| panic!("not a Cease: {n:?}"))
        }
        other => panic!("expected a NOTIFICATION, got {other:?}"),
    }
}

/// `neighbor ADDR disable|enable|reset`. B (the listen range's side)
/// disables A: A is told Administrative Shutdown and B refuses A's
/// connections (A dials every second) until B enables A again. Then A
/// resets the session: B is told Administrative Reset, and the session
/// comes back by itself.
#[tokio::test]
async fn disable_refuses_the_peer_until_enable_and_reset_reconnects() {
    let mut settings = PeerSettings::new(Asn(65000));
    settings.connect_retry = Duration::from_secs(1);
    let ((speaker_a, mut events_a, _), (speaker_b, mut events_b, mut b)) =
        dialling_pair(settings, |_| {}).await;
    let established = |e: &Event| matches!(e, Event::Established { .. }).then_some(());
    wait(&mut events_a, "A established", established).await;

    let stranger: Ipv6Addr = "2001:db8::1".parse().unwrap();
    assert_eq!(
        speaker_b.admin(stranger, AdminAction::Disable).await,
        Err(AdminError::UnknownPeer(stranger))
    );

    let done = speaker_b.admin(LOOPBACK, AdminAction::Disable).await;
    assert_eq!(done, Ok("neighbor ::1 disabled".to_string()));
    assert_eq!(
        cease_down(&mut events_a, "A sees the session down").await,
        CeaseSubcode::AdministrativeShutdown
    );
    assert_eq!(
        speaker_b.admin(LOOPBACK, AdminAction::Disable).await,
        Ok("neighbor ::1 is already disabled".to_string())
    );
    assert_eq!(
        speaker_b.admin(LOOPBACK, AdminAction::Reset).await,
        Err(AdminError::Disabled(LOOPBACK))
    );
    // A reload that changes the range forgets the dynamic peer; the
    // address stays disabled.
    b.ranges[0].settings.hold_time = bgp::wire::HoldTime::new(30).unwrap();
    speaker_b.reconfigure(b).await.unwrap();
    // A dials every second; B refuses it for as long as it is disabled.
    stays_down(&mut events_a, "A re-established with a disabled B peer").await;
    let peers = speaker_b.peers().await;
    assert!(peers[0].disabled, "{peers:?}");
    assert_ne!(peers[0].state, State::Established, "{peers:?}");

    let done = speaker_b.admin(LOOPBACK, AdminAction::Enable).await;
    assert_eq!(done, Ok("neighbor ::1 enabled".to_string()));
    wait(&mut events_a, "A established again", established).await;
    assert!(!speaker_b.peers().await[0].disabled);

    // Drain B's events so far, then A resets its side.
    while events_b.try_recv().is_ok() {}
    let done = speaker_a.admin(LOOPBACK, AdminAction::Reset).await;
    assert_eq!(done, Ok("neighbor ::1 reset".to_string()));
    assert_eq!(
        cease_down(&mut events_b, "B sees the reset").await,
        CeaseSubcode::AdministrativeReset
    );
    wait(&mut events_b, "B established after the reset", established).await;
    speaker_a.shutdown().await;
    speaker_b.shutdown().await;
}

/// A reload that changes only a neighbour's connect-retry time keeps its
/// established session (the time matters once it is down), as FRR does;
/// it used to restart it and flush its routes.
#[tokio::test]
async fn a_new_connect_retry_keeps_the_session_up() {
    let mut settings = PeerSettings::new(Asn(65000));
    settings.connect_retry = Duration::from_secs(1);
    let ((speaker_a, mut events_a, mut a), (speaker_b, mut events_b, _)) =
        dialling_pair(settings, |_| {}).await;
    let established = |e: &Event| matches!(e, Event::Established { .. }).then_some(());
    wait(&mut events_a, "A established", established).await;
    wait(&mut events_b, "B established", established).await;
    a.neighbors[0].settings.connect_retry = Duration::from_secs(7);
    let done = speaker_a.reconfigure(a).await.unwrap();
    assert!(done.contains("1 sessions took new"), "{done}");
    let quiet = tokio::time::timeout(Duration::from_millis(1500), async {
        loop {
            match events_b.recv().await {
                Some(e @ Event::Down { .. }) => return e,
                Some(_) => {}
                None => std::future::pending::<()>().await,
            }
        }
    })
    .await;
    assert!(quiet.is_err(), "the session went down: {quiet:?}");
    assert_eq!(speaker_a.peers().await[0].state, State::Established);
    speaker_a.shutdown().await;
    speaker_b.shutdown().await;
}

/// A neighbour that is down and waiting out a long ConnectRetry timer,
/// given a short one by a reload, is restarted: it dials at once (kept in
/// place, it would have waited out the old hour).
#[tokio::test]
async fn a_new_connect_retry_on_a_down_peer_dials_at_once() {
    let (pa, pb) = (free_port(), free_port());
    let mut settings = PeerSettings::new(Asn(65000));
    settings.connect_retry = Duration::from_secs(3600);
    let mut a = config(65001, 2, pa, pb);
    a.neighbors.push(Neighbor::new(LOOPBACK, settings));
    let (speaker_a, mut events_a) = Speaker::start(a.clone()).await.unwrap();
    // Nobody listens on B's port yet: A's first dial fails, and it waits.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut b = config(65000, 1, pb, pa);
    b.ranges.push(ListenRange::new(
        "::1/128".parse().unwrap(),
        PeerSettings::new(Asn(65001)),
    ));
    let (speaker_b, _events_b) = Speaker::start(b).await.unwrap();
    a.neighbors[0].settings.connect_retry = Duration::from_secs(1);
    speaker_a.reconfigure(a).await.unwrap();
    let established = |e: &Event| matches!(e, Event::Established { .. }).then_some(());
    wait(&mut events_a, "A established after the reload", established).await;
    speaker_a.shutdown().await;
    speaker_b.shutdown().await;
}

/// B's count of A's routes rejected for their (loopback) next hop.
async fn next_hop_rejections(b: &Speaker) -> u64 {
    b.peers().await.first().map_or(0, |p| {
        p.stats
            .rejected
            .iter()
            .find(|(r, _)| *r == RejectReason::NextHopInvalid)
            .map_or(0, |(_, n)| *n)
    })
}

/// Waits (at most 20 s) until `f` holds.
async fn until<F: std::future::Future<Output = bool>>(what: &str, mut f: impl FnMut() -> F) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !f().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `reload` at the speaker's level: B's listen range goes (A's session
/// is stopped, the dynamic peer forgotten, A refused) and comes back; A
/// originates one more prefix (B receives it on the running session);
/// A's neighbour settings change (the session restarts); a change of
/// our AS is refused.
#[tokio::test]
async fn reconfigure_applies_ranges_neighbours_and_originated_prefixes() {
    let mut settings = PeerSettings::new(Asn(65000));
    settings.connect_retry = Duration::from_secs(1);
    settings.export = PrefixList::parse(&["2001:db8::/32 le 48"]).unwrap();
    let ((speaker_a, mut events_a, mut a_config), (speaker_b, mut events_b, mut b)) =
        dialling_pair(settings, |a| {
            a.originated.push("2001:db8:100::/40".parse().unwrap());
        })
        .await;
    let established = |e: &Event| matches!(e, Event::Established { .. }).then_some(());
    wait(&mut events_a, "A established", established).await;
    until("B rejects A's first prefix", || async {
        next_hop_rejections(&speaker_b).await == 1
    })
    .await;

    // A originates one more prefix: B gets it on the running session.
    a_config
        .originated
        .push("2001:db8:200::/40".parse().unwrap());
    let done = speaker_a.reconfigure(a_config.clone()).await.unwrap();
    assert!(done.contains("1 prefixes originated"), "{done}");
    until("B gets A's second prefix", || async {
        next_hop_rejections(&speaker_b).await == 2
    })
    .await;

    // B's listen range goes: A is stopped and refused, then let back in.
    let peers = speaker_b.peers().await;
    assert_eq!(peers.len(), 1);
    let range = b.ranges.remove(0);
    let done = speaker_b.reconfigure(b.clone()).await.unwrap();
    assert!(done.contains("1 dynamic peers dropped"), "{done}");
    assert_eq!(
        cease_down(&mut events_a, "A sees the session down").await,
        CeaseSubcode::PeerDeconfigured
    );
    assert!(speaker_b.peers().await.is_empty());
    stays_down(
        &mut events_a,
        "A re-established without a listen range on B",
    )
    .await;
    b.ranges.push(range);
    speaker_b.reconfigure(b.clone()).await.unwrap();
    wait(&mut events_a, "A established again", established).await;

    // A's neighbour settings change: its session restarts.
    while events_b.try_recv().is_ok() {}
    a_config.neighbors[0].settings.hold_time = bgp::wire::HoldTime::new(30).unwrap();
    let done = speaker_a.reconfigure(a_config.clone()).await.unwrap();
    assert!(done.contains("1 changed"), "{done}");
    wait(&mut events_b, "B sees A's session go", |e| {
        matches!(e, Event::Down { .. }).then_some(())
    })
    .await;
    wait(&mut events_b, "B established with the new A", established).await;

    let mut other = a_config.clone();
    other.local_asn = Asn(65009);
    assert_eq!(
        speaker_a.reconfigure(other).await,
        Err(ReconfigureError::NeedsRestart("the local AS".into()))
    );
    speaker_a.shutdown().await;
    speaker_b.shutdown().await;
}

/// A reload that stops originating P and widens the export list to cover
/// it announces nothing of P: the export change applied in place was
/// diffed against the old originated prefixes, so P went out and was
/// withdrawn right after.
#[tokio::test]
async fn a_reload_never_announces_a_prefix_it_stops_originating() {
    let mut settings = PeerSettings::new(Asn(65000));
    settings.connect_retry = Duration::from_secs(1);
    settings.export = PrefixList::parse(&["2001:db8:200::/40"]).unwrap();
    let ((speaker_a, mut events_a, mut a_config), (speaker_b, _events_b, _b)) =
        dialling_pair(settings, |a| {
            a.originated.push("2001:db8:100::/40".parse().unwrap());
            a.originated.push("2001:db8:200::/40".parse().unwrap());
        })
        .await;
    wait(&mut events_a, "A established", |e| {
        matches!(e, Event::Established { .. }).then_some(())
    })
    .await;
    // B counts each prefix it receives (A's next hop is its loopback).
    until("B gets A's exported prefix", || async {
        next_hop_rejections(&speaker_b).await == 1
    })
    .await;
    a_config.originated.remove(0);
    a_config.neighbors[0].settings.export = PrefixList::parse(&["2001:db8::/32 le 48"]).unwrap();
    let done = speaker_a.reconfigure(a_config.clone()).await.unwrap();
    assert!(done.contains("in place"), "{done}");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        next_hop_rejections(&speaker_b).await,
        1,
        "B was sent 2001:db8:100::/40, no longer originated"
    );
    speaker_a.shutdown().await;
    speaker_b.shutdown().await;
}

/// A reload whose keys the kernel refuses part way (here an 81-byte key,
/// after the range's key was already taken off) fails and leaves the
/// listener's keys as they were: an unsigned SYN from the range is still
/// dropped.
#[tokio::test]
async fn a_failed_reconfigure_leaves_the_listeners_keys_as_they_were() {
    let mut settings = PeerSettings::new(Asn(65000));
    settings.connect_retry = Duration::from_secs(1);
    settings.password = Some(b"flatedge-secret".to_vec());
    let ((speaker_a, mut events_a, _), (speaker_b, _events_b, mut b)) =
        dialling_pair(settings, |_| {}).await;
    b.ranges[0].settings.password = Some(b"flatedge-secret".to_vec());
    speaker_b.reconfigure(b.clone()).await.unwrap();
    wait(&mut events_a, "A established with the key", |e| {
        matches!(e, Event::Established { .. }).then_some(())
    })
    .await;
    let listen = b.listen;
    let mut bad = b.clone();
    bad.ranges[0].settings.password = None;
    let mut other = PeerSettings::new(Asn(65002));
    other.password = Some(vec![b'k'; 81]);
    bad.neighbors
        .push(Neighbor::new("2001:db8::9".parse().unwrap(), other));
    match speaker_b.reconfigure(bad).await {
        Err(ReconfigureError::Listener(e)) => assert!(e.contains("80 bytes"), "{e}"),
        other => panic!("reconfigure with an 81-byte key: {other:?}"),
    }
    // The range's key is still on the listener: B's kernel drops an
    // unsigned SYN from ::1 (without the key the handshake completes).
    let plain = tokio::time::timeout(
        Duration::from_secs(2),
        tokio::net::TcpStream::connect(listen),
    )
    .await;
    assert!(
        !matches!(plain, Ok(Ok(_))),
        "an unsigned connection got in after the failed reconfigure"
    );
    speaker_a.shutdown().await;
    speaker_b.shutdown().await;
}

/// A reload that gives a listen range an MD5 key puts it on the listening
/// socket: A signs its SYNs, which B's kernel drops until then.
#[tokio::test]
async fn reconfigure_installs_md5_keys_on_the_listener() {
    let mut settings = PeerSettings::new(Asn(65000));
    settings.connect_retry = Duration::from_secs(1);
    settings.password = Some(b"flatedge-secret".to_vec());
    let ((speaker_a, mut events_a, _), (speaker_b, _events_b, mut b)) =
        dialling_pair(settings, |_| {}).await;
    stays_down(&mut events_a, "established although B has no key").await;
    b.ranges[0].settings.password = Some(b"flatedge-secret".to_vec());
    speaker_b.reconfigure(b).await.unwrap();
    wait(&mut events_a, "A established with the key", |e| {
        matches!(e, Event::Established { .. }).then_some(())
    })
    .await;
    speaker_a.shutdown().await;
    speaker_b.shutdown().await;
}

/// Polls the speaker's peers (at most 10 s) until `ok` holds for them;
/// fails with `what` and the peers otherwise.
async fn wait_peers(speaker: &Speaker, what: &str, ok: impl Fn(&[PeerSummary]) -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let peers = speaker.peers().await;
        if ok(&peers) {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "{what}: {peers:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Connects from 127.0.0.`last` (as ::ffff:127.0.0.`last` on a dual-stack
/// listener) to `port`.
async fn connect_from(last: u8, port: u16) -> tokio::net::TcpStream {
    let s = tokio::net::TcpSocket::new_v4().unwrap();
    s.bind(SocketAddr::new(Ipv4Addr::new(127, 0, 0, last).into(), 0))
        .unwrap();
    s.connect(SocketAddr::new(Ipv4Addr::LOCALHOST.into(), port))
        .await
        .unwrap()
}

/// An IPv4 connection on the dual-stack listener is not taken by an IPv6
/// range that covers ::ffff:0:0/96, such as ::/0: it would escape the
/// range's MD5 key and GTSM, which the kernel applies to IPv6 only. From
/// ::1 the same range does take a peer.
#[tokio::test]
async fn a_broad_ipv6_range_takes_no_ipv4_connection() {
    let port = free_port();
    let mut c = config(65000, 1, port, 179);
    c.listen = SocketAddr::new(Ipv6Addr::UNSPECIFIED.into(), port);
    c.ranges.push(ListenRange::new(
        "::/0".parse().unwrap(),
        PeerSettings::new(Asn(65001)),
    ));
    let (speaker, _events) = Speaker::start(c).await.unwrap();
    let mut v4 = connect_from(7, port).await;
    let mut buf = [0u8; 1];
    let n = tokio::time::timeout(
        Duration::from_secs(5),
        tokio::io::AsyncReadExt::read(&mut v4, &mut buf),
    )
    .await
    .expect("the IPv4 connection stayed open");
    assert!(matches!(n, Ok(0) | Err(_)), "{n:?}");
    assert!(speaker.peers().await.is_empty());
    let _v6 = tokio::net::TcpStream::connect(SocketAddr::new(LOOPBACK.into(), port))
        .await
        .unwrap();
    wait_peers(&speaker, "the IPv6 connection made no peer", |p| {
        p.iter().any(|p| p.address == LOOPBACK)
    })
    .await;
    speaker.shutdown().await;
}

/// Peers from a listen range are bounded: a connection that closes
/// without its session ever coming up leaves no peer behind (a scan from
/// 40 addresses), and past the listen limit a new address is refused and
/// reported once.
#[tokio::test]
async fn listen_range_peers_are_bounded() {
    let port = free_port();
    let mut c = config(65000, 1, port, 179);
    c.listen = SocketAddr::new(Ipv6Addr::UNSPECIFIED.into(), port);
    c.ranges.push(ListenRange::new(
        "::ffff:127.0.0.0/104".parse().unwrap(),
        PeerSettings::new(Asn(65001)),
    ));
    c.listen_limit = 2;
    let (speaker, mut all) = Speaker::start(c).await.unwrap();
    // Keep the speaker's (bounded) event channel drained; pass on the
    // listen-limit reports.
    let (tx, mut events) = tokio::sync::mpsc::channel(16);
    tokio::spawn(async move {
        while let Some(e) = all.recv().await {
            if matches!(e, Event::ListenLimit { .. }) {
                let _ = tx.send(e).await;
            }
        }
    });
    for i in 2..42u8 {
        drop(connect_from(i, port).await);
    }
    wait_peers(
        &speaker,
        "peers kept for connections that never sent an OPEN",
        |p| p.is_empty(),
    )
    .await;
    // Two connections held open are two peers; a third address is refused.
    let _a = connect_from(50, port).await;
    let _b = connect_from(51, port).await;
    wait_peers(&speaker, "the two peers never came", |p| p.len() >= 2).await;
    let mut third = connect_from(52, port).await;
    let refused: Ipv6Addr = "::ffff:127.0.0.52".parse().unwrap();
    // (A scan connection may have met the limit too, while earlier ones
    // were still open: wait for this address's report.)
    wait(&mut events, "the listen limit reported", |e| match e {
        Event::ListenLimit { address } if *address == refused => Some(()),
        _ => None,
    })
    .await;
    let mut buf = [0u8; 1];
    let n = tokio::time::timeout(
        Duration::from_secs(5),
        tokio::io::AsyncReadExt::read(&mut third, &mut buf),
    )
    .await
    .expect("the refused connection stayed open");
    assert!(matches!(n, Ok(0) | Err(_)), "{n:?}");
    assert_eq!(speaker.peers().await.len(), 2);
    speaker.shutdown().await;
}

/// A peer that reads nothing while it streams ROUTE-REFRESH messages
/// (each answered with the whole export) does not grow the speaker's
/// write queue without bound: past its limit the session is taken down,
/// long before the 240 s write timeout, and its connection closed.
#[tokio::test]
async fn a_peer_that_reads_nothing_cannot_grow_the_write_queue() {
    use bgp::wire::{Afi, Context, Message, RouteRefreshRepr, RouteRefreshSubtype, Safi};
    use tokio::io::AsyncWriteExt;
    let port = free_port();
    let mut c = config(65000, 1, port, 179);
    let mut settings = PeerSettings::new(Asn(65001));
    settings.export = PrefixList::parse(&["2001:db8::/32 le 64"]).unwrap();
    c.ranges
        .push(ListenRange::new("::1/128".parse().unwrap(), settings));
    c.originated = (0..5000u32)
        .map(|i| {
            format!("2001:db8:{:x}:{:x}::/64", i >> 8, i & 0xff)
                .parse()
                .unwrap()
        })
        .collect();
    let (speaker, mut events) = Speaker::start(c).await.unwrap();
    let mut s = raw_peer(port, &mut events).await;
    let ctx = Context::default();
    let rr = Message::RouteRefresh(RouteRefreshRepr {
        afi: Afi::Ipv6,
        safi: Safi::Unicast,
        subtype: RouteRefreshSubtype::Normal,
    })
    .to_bytes(&ctx)
    .unwrap();
    let burst: Vec<u8> = rr.iter().copied().cycle().take(rr.len() * 100).collect();
    let flood = tokio::spawn(async move {
        // Until the speaker closes the connection.
        while s.write_all(&burst).await.is_ok() {}
    });
    wait(&mut events, "the session taken down", |e| {
        matches!(e, Event::Down { .. }).then_some(())
    })
    .await;
    // The connection is closed within a few seconds of the session going
    // down (flush and FIN within LINGER each), not left to the blocked
    // write's 240 s timeout with its reader and queue alive.
    let closed = tokio::time::timeout(Duration::from_secs(20), flood).await;
    assert!(
        closed.is_ok(),
        "the connection outlived its session by 20 s"
    );
    speaker.shutdown().await;
}

/// A speaker (AS 65000) listening on `port` with a range for `::1` (peer
/// AS 65001).
fn ranged(port: u16) -> SpeakerConfig {
    let mut c = config(65000, 1, port, 179);
    c.ranges.push(ListenRange::new(
        "::1/128".parse().unwrap(),
        PeerSettings::new(Asn(65001)),
    ));
    c
}

/// A BGP peer from ::1, by hand: connects to `port`, sends an OPEN (AS
/// 65001) and a KEEPALIVE, and waits for the speaker's Established.
async fn raw_peer(port: u16, events: &mut Receiver<Event>) -> tokio::net::TcpStream {
    use bgp::wire::{Context, Message};
    use tokio::io::AsyncWriteExt;
    let mut s = tokio::net::TcpStream::connect(SocketAddr::new(LOOPBACK.into(), port))
        .await
        .unwrap();
    let ctx = Context::default();
    let open =
        bgp::fsm::SessionConfig::new(Asn(65001), Ipv4Addr::new(192, 0, 2, 9), Asn(65000)).open();
    s.write_all(&Message::Open(open).to_bytes(&ctx).unwrap())
        .await
        .unwrap();
    s.write_all(&Message::Keepalive.to_bytes(&ctx).unwrap())
        .await
        .unwrap();
    wait(events, "the raw peer established", |e| {
        matches!(e, Event::Established { .. }).then_some(())
    })
    .await;
    s
}

/// A peer from a listen range that was up and went away (without
/// graceful restart, so with nothing left in the RIB) is forgotten, as
/// FRR deletes dynamic neighbours: nodes replaced over time do not fill
/// the listen limit.
#[tokio::test]
async fn a_dynamic_peer_that_goes_away_is_forgotten() {
    let port = free_port();
    let (speaker, mut events) = Speaker::start(ranged(port)).await.unwrap();
    let s = raw_peer(port, &mut events).await;
    assert_eq!(speaker.peers().await.len(), 1);
    drop(s);
    wait(&mut events, "the session down", |e| {
        matches!(e, Event::Down { .. }).then_some(())
    })
    .await;
    wait_peers(&speaker, "kept", |p| p.is_empty()).await;
    // Forgotten, its address can still be disabled: a connection from it
    // is refused until it is enabled again.
    assert_eq!(
        speaker.admin(LOOPBACK, AdminAction::Disable).await,
        Ok("neighbor ::1 disabled".to_string())
    );
    let mut refused = tokio::net::TcpStream::connect(SocketAddr::new(LOOPBACK.into(), port))
        .await
        .unwrap();
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(
        Duration::from_secs(5),
        tokio::io::AsyncReadExt::read(&mut refused, &mut buf),
    )
    .await
    .expect("a disabled address's connection stayed open");
    assert!(matches!(n, Ok(0) | Err(_)), "{n:?}");
    assert_eq!(
        speaker.admin(LOOPBACK, AdminAction::Enable).await,
        Ok("neighbor ::1 enabled".to_string())
    );
    let _s = raw_peer(port, &mut events).await;
    speaker.shutdown().await;
}

/// `resend` of a prefix the RIB has no selected path for emits nothing
/// (an empty change would read as a withdrawal). Its paths' case is
/// `Rib::selected`'s unit test; the netns test of a subnet giving way to
/// BGP runs the whole way.
#[tokio::test]
async fn resend_of_a_prefix_without_paths_emits_nothing() {
    let port = free_port();
    let (speaker, mut events) = Speaker::start(config(65000, 1, port, 179)).await.unwrap();
    let p: ipnet::Ipv6Net = "2001:db8:100::/64".parse().unwrap();
    speaker.resend(vec![p]).await;
    // Answered in order: the peers' summary comes after the resend.
    assert!(speaker.peers().await.is_empty());
    let got = tokio::time::timeout(Duration::from_millis(300), events.recv()).await;
    assert!(
        !matches!(got, Ok(Some(Event::Changes(_)))),
        "a change for a prefix without paths: {got:?}"
    );
    speaker.shutdown().await;
}

/// A second connection from an established peer that closes before its
/// OPEN (as GoBGP closes the one it does not keep when both sides dial)
/// leaves no dead secondary behind: the peer's next connection is still
/// taken (it gets our OPEN), where it used to be refused until the
/// primary went down.
#[tokio::test]
async fn a_second_connection_that_fails_early_does_not_block_the_next() {
    use tokio::io::AsyncReadExt;
    let port = free_port();
    let (speaker, mut events) = Speaker::start(ranged(port)).await.unwrap();
    let _primary = raw_peer(port, &mut events).await;
    let at = SocketAddr::new(LOOPBACK.into(), port);
    let early = tokio::net::TcpStream::connect(at).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    drop(early);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut next = tokio::net::TcpStream::connect(at).await.unwrap();
    let mut head = [0u8; 19];
    let read = tokio::time::timeout(Duration::from_secs(5), next.read_exact(&mut head)).await;
    assert!(
        matches!(read, Ok(Ok(_))),
        "the next connection got no OPEN: {read:?}"
    );
    assert_eq!(head[18], 1, "not an OPEN: {head:?}");
    speaker.shutdown().await;
}

/// A connection that loses a collision against an established session
/// gets our OPEN and then the Cease (6/7), no KEEPALIVE in between: on it
/// the peer would go Established only to be torn down at once.
#[tokio::test]
async fn the_loser_of_a_collision_gets_no_keepalive() {
    use bgp::wire::{Context, Message};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let port = free_port();
    let (speaker, mut events) = Speaker::start(ranged(port)).await.unwrap();
    let _primary = raw_peer(port, &mut events).await;
    let mut second = tokio::net::TcpStream::connect(SocketAddr::new(LOOPBACK.into(), port))
        .await
        .unwrap();
    // Without graceful restart: not a restarted peer, so the established
    // session wins (RFC 4271 section 6.8).
    let mut cfg = bgp::fsm::SessionConfig::new(Asn(65001), Ipv4Addr::new(192, 0, 2, 9), Asn(65000));
    cfg.graceful_restart = None;
    second
        .write_all(
            &Message::Open(cfg.open())
                .to_bytes(&Context::default())
                .unwrap(),
        )
        .await
        .unwrap();
    let mut got = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), second.read_to_end(&mut got)).await;
    let mut types = Vec::new();
    let mut rest = &got[..];
    while rest.len() >= 19 {
        let len = usize::from(u16::from_be_bytes([rest[16], rest[17]]));
        types.push(rest[18]);
        if len < 19 || len > rest.len() {
            break;
        }
        if rest[18] == 3 {
            assert_eq!(&rest[19..21], &[6, 7], "not a collision Cease");
        }
        rest = &rest[len..];
    }
    assert_eq!(types, [1, 3], "message types on the losing connection");
    speaker.shutdown().await;
}
