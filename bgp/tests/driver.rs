//! The tokio driver end to end on loopback: two `Speaker`s peer with each
//! other (no root needed). The netns tests (`tests/`) cover real GoBGP
//! peers, MD5 and graceful restart.
#![cfg(feature = "driver")]

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use bgp::driver::{Event, ListenRange, Neighbor, PeerSettings, Speaker, SpeakerConfig};
use bgp::fsm::{DownReason, State};
use bgp::policy::{PrefixList, RejectReason};
use bgp::wire::Asn;
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

/// A dials B (a listen range on B's side) and exports its aggregate; B
/// receives it and, the next hop being A's loopback address, rejects and
/// counts it (the only address two speakers share without root). A's
/// shutdown sends a Cease as a Hard Reset (the N bit is negotiated), and
/// B drops the peer's routes rather than keeping them stale.
#[tokio::test]
async fn updates_flow_and_a_shutdown_is_a_hard_reset() {
    let (pa, pb) = (free_port(), free_port());
    let mut b = config(65000, 1, pb, pa);
    b.ranges.push(ListenRange::new(
        "::1/128".parse().unwrap(),
        PeerSettings::new(Asn(65001)),
    ));
    let (speaker_b, mut events_b) = Speaker::start(b).await.unwrap();

    let mut a = config(65001, 2, pa, pb);
    let mut settings = PeerSettings::new(Asn(65000));
    settings.export = PrefixList::parse(&["2001:db8:100::/40"]).unwrap();
    a.neighbors.push(Neighbor::new(LOOPBACK, settings));
    a.originated.push("2001:db8:100::/40".parse().unwrap());
    let (speaker_a, mut events_a) = Speaker::start(a).await.unwrap();

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
    }
    speaker_a.shutdown().await;
    speaker_b.shutdown().await;
}
