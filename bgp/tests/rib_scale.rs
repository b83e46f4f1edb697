//! The RIB with many prefixes: learn and withdraw N /48s from one peer and
//! from three (a 3-way ECMP set each), printing the times. A benchmark
//! that runs as a test, never a timed assertion.
//!
//! N is 1,000,000 in release builds and 100,000 in debug builds (where
//! it is ~10x slower); `FLATEDGE_RIB_PREFIXES=N` overrides it:
//!
//! ```sh
//! cargo test --release -p bgp --test rib_scale -- --nocapture
//! ```

use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::Instant;

use bgp::fsm::{Direction, Input, Negotiated, Output, Session, SessionConfig};
use bgp::rib::{PeerConfig, PeerId, Rib, RibConfig};
use bgp::wire::{
    Afi, AsPath, Asn, Capability, HoldTime, Ipv6NextHop, Message, MpReach, MpUnreach, OpenRepr,
    Origin, ParsedUpdate, PathAttributes, Safi, UpdateRepr,
};
use ipnet::Ipv6Net;

const LOCAL: Asn = Asn(65000);
const NODE_AS: Asn = Asn(65001);
/// Prefixes per UPDATE, about what fits in 4096 bytes for /48s.
const PER_UPDATE: usize = 500;

fn prefix_count() -> usize {
    std::env::var("FLATEDGE_RIB_PREFIXES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if cfg!(debug_assertions) {
            100_000
        } else {
            1_000_000
        })
}

/// The i-th /48 under 2a00::/12.
fn prefix(i: usize) -> Ipv6Net {
    let addr = (0x2a00u128 << 112) | ((i as u128) << 80);
    Ipv6Net::new(Ipv6Addr::from(addr), 48).unwrap()
}

fn negotiated(id: u8) -> Negotiated {
    let open = OpenRepr::new(
        NODE_AS,
        HoldTime::new(90).unwrap(),
        Ipv4Addr::new(10, 0, 0, id),
        vec![Capability::Multiprotocol {
            afi: Afi::Ipv6,
            safi: Safi::Unicast,
        }],
    );
    let mut s = Session::new(SessionConfig::new(
        LOCAL,
        Ipv4Addr::new(192, 0, 2, 1),
        NODE_AS,
    ));
    s.handle(Input::ManualStartPassive);
    s.handle(Input::TcpConnected(Direction::Inbound));
    s.handle(Input::Message(Message::Open(open)));
    s.handle(Input::Message(Message::Keepalive))
        .into_iter()
        .find_map(|o| match o {
            Output::Established(n) => Some(n),
            _ => None,
        })
        .unwrap()
}

fn updates(n: usize, next_hop: Ipv6Addr) -> Vec<ParsedUpdate> {
    let all: Vec<Ipv6Net> = (0..n).map(prefix).collect();
    all.chunks(PER_UPDATE)
        .map(|chunk| {
            UpdateRepr {
                attributes: PathAttributes {
                    origin: Some(Origin::Igp),
                    as_path: Some(AsPath::sequence([NODE_AS])),
                    mp_reach: Some(MpReach::Ipv6Unicast {
                        next_hop: Ipv6NextHop {
                            global: next_hop,
                            link_local: None,
                        },
                        nlri: chunk.to_vec(),
                    }),
                    ..PathAttributes::default()
                },
                ..UpdateRepr::default()
            }
            .into()
        })
        .collect()
}

fn withdrawals(n: usize) -> Vec<ParsedUpdate> {
    let all: Vec<Ipv6Net> = (0..n).map(prefix).collect();
    all.chunks(PER_UPDATE)
        .map(|chunk| {
            UpdateRepr {
                attributes: PathAttributes {
                    mp_unreach: Some(MpUnreach::Ipv6Unicast {
                        withdrawn: chunk.to_vec(),
                    }),
                    ..PathAttributes::default()
                },
                ..UpdateRepr::default()
            }
            .into()
        })
        .collect()
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn learn(rib: &mut Rib, peers: &[(PeerId, Vec<ParsedUpdate>)]) -> usize {
    let mut changes = Vec::new();
    let mut total = 0;
    for (peer, ups) in peers {
        for u in ups {
            assert!(rib.apply_update(*peer, u).is_empty());
            rib.drain_changes_into(&mut changes);
            total += changes.len();
            changes.clear();
        }
    }
    total
}

fn run(n: usize, peer_count: u8) {
    let rss0 = rss_kib();
    let mut rib = Rib::new(RibConfig::new(LOCAL));
    let peers: Vec<(PeerId, Vec<ParsedUpdate>)> = (1..=peer_count)
        .map(|i| {
            let addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, u16::from(i));
            let id = rib.add_peer(PeerConfig::new(addr, NODE_AS));
            rib.apply_update(id, &UpdateRepr::default().into());
            rib.peer_up(id, &negotiated(i));
            (id, updates(n, addr))
        })
        .collect();
    let rss_updates = rss_kib();

    let t = Instant::now();
    let changes = learn(&mut rib, &peers);
    let learn_s = t.elapsed().as_secs_f64();
    assert_eq!(rib.len(), n);
    // Every peer's arrival widens every prefix's ECMP set.
    assert_eq!(changes, n * usize::from(peer_count));
    let rss_learned = rss_kib();

    // The last peer withdraws everything by UPDATE, the others go down.
    let t = Instant::now();
    let (last, _) = &peers[peers.len() - 1];
    let mut changes = 0;
    for u in withdrawals(n) {
        rib.apply_update(*last, &u);
        changes += rib.drain_changes().len();
    }
    for (peer, _) in &peers[..peers.len() - 1] {
        rib.peer_down(*peer, false);
        changes += rib.drain_changes().len();
    }
    let withdraw_s = t.elapsed().as_secs_f64();
    assert!(rib.is_empty());
    assert_eq!(changes, n * usize::from(peer_count));

    println!(
        "rib_scale: {n} /48s x {peer_count} peer(s): learn {learn_s:.3} s ({:.0} ns/path), \
         withdraw {withdraw_s:.3} s, RIB ~{} MiB (updates held: {} MiB)",
        learn_s * 1e9 / (n as f64 * f64::from(peer_count)),
        rss_learned.saturating_sub(rss_updates) / 1024,
        rss_updates.saturating_sub(rss0) / 1024,
    );
}

/// One test, so that the two runs do not share the machine (and RSS).
#[test]
fn many_prefixes_from_one_and_three_peers() {
    run(prefix_count(), 1);
    run(prefix_count(), 3);
}
