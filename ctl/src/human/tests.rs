use std::collections::BTreeMap;
use std::net::Ipv6Addr;

use super::*;
use crate::{
    BgpPeer, Coalescing, Done, FibNextHop, Interface, MacAddr, Neighbor, Origin, Route,
    StageRuntime,
};

fn a(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

fn mac(s: &str) -> MacAddr {
    s.parse().unwrap()
}

fn bgp_path(peer: &str, status: PathStatus) -> Path {
    Path {
        source: RouteSource::Bgp,
        peer: Some(a(peer)),
        next_hop: Some(a(peer)),
        as_path: vec![65001],
        origin: Some(Origin::Igp),
        local_pref: Some(100),
        med: None,
        stale: false,
        status,
        reason: None,
    }
}

#[track_caller]
fn check(resp: Response, expected: &str) {
    let got = render(&resp);
    assert_eq!(got, expected, "\ngot:\n{got}\nexpected:\n{expected}");
}

#[test]
fn bgp_summary() {
    check(
        Response::BgpSummary(BgpSummary {
            asn: 65000,
            router_id: "192.0.2.1".parse().unwrap(),
            peers: vec![
                BgpPeer {
                    address: a("2001:db8:1::11"),
                    asn: 65001,
                    state: PeerState::Established,
                    uptime_s: 3723,
                    prefixes_received: 3,
                    prefixes_accepted: 2,
                },
                BgpPeer {
                    address: a("2001:db8:ffff::1"),
                    asn: 4_200_000_000,
                    state: PeerState::OpenConfirm,
                    uptime_s: 2 * 86_400 + 3 * 3600 + 4 * 60 + 5,
                    prefixes_received: 100_000,
                    prefixes_accepted: 0,
                },
            ],
        }),
        "\
BGP router identifier 192.0.2.1, local AS 65000
Neighbor                  AS  State          Up/Down  Received  Accepted
2001:db8:1::11         65001  established   01:02:03         3         2
2001:db8:ffff::1  4200000000  open_confirm  2d03h04m    100000         0
",
    );
}

#[test]
fn bgp_summary_without_peers() {
    check(
        Response::BgpSummary(BgpSummary {
            asn: 65000,
            router_id: "192.0.2.1".parse().unwrap(),
            peers: vec![],
        }),
        "BGP router identifier 192.0.2.1, local AS 65000\nno BGP peers\n",
    );
}

#[test]
fn routes() {
    let mut stale = bgp_path("2001:db8:1::12", PathStatus::Multipath);
    stale.stale = true;
    stale.med = Some(0);
    let mut lost = bgp_path("2001:db8:1::13", PathStatus::Lost);
    lost.as_path = vec![65001, 65002];
    lost.origin = Some(Origin::Incomplete);
    lost.reason = Some("longer AS path".into());
    let aggregate = Path {
        source: RouteSource::Aggregate,
        peer: None,
        next_hop: None,
        as_path: vec![],
        origin: None,
        local_pref: None,
        med: None,
        stale: false,
        status: PathStatus::Best,
        reason: None,
    };
    check(
        Response::Routes(Routes {
            routes: vec![
                Route {
                    prefix: "2001:db8:96::10/128".parse().unwrap(),
                    paths: vec![
                        bgp_path("2001:db8:1::11", PathStatus::Best),
                        stale,
                        lost,
                    ],
                },
                Route {
                    prefix: "2001:db8:100::/40".parse().unwrap(),
                    paths: vec![aggregate],
                },
            ],
            truncated_at: None,
        }),
        "\
Prefix               Status     Source     Peer            Next hop        AS path      Origin      LocPref  MED  Note
2001:db8:96::10/128  best       bgp        2001:db8:1::11  2001:db8:1::11  65001        igp             100    -
                     multipath  bgp        2001:db8:1::12  2001:db8:1::12  65001        igp             100    0  stale
                     lost       bgp        2001:db8:1::13  2001:db8:1::13  65001 65002  incomplete      100    -  longer AS path
2001:db8:100::/40    best       aggregate  -               -               -            -                 -    -
",
    );
}

#[test]
fn no_routes() {
    check(
        Response::Routes(Routes {
            routes: vec![],
            truncated_at: None,
        }),
        "no routes\n",
    );
}

#[test]
fn a_cut_listing_says_so() {
    check(
        Response::Routes(Routes {
            routes: vec![Route {
                prefix: "2001:db8:96::10/128".parse().unwrap(),
                paths: vec![bgp_path("2001:db8:1::11", PathStatus::Best)],
            }],
            truncated_at: Some(10_000),
        }),
        "\
Prefix               Status  Source  Peer            Next hop        AS path  Origin  LocPref  MED  Note
2001:db8:96::10/128  best    bgp     2001:db8:1::11  2001:db8:1::11  65001    igp         100    -
only the first 10000 BGP prefixes (in prefix order) are listed; `show route PREFIX` shows any other
",
    );
}

#[test]
fn fib() {
    check(
        Response::Fib(FibEntry {
            address: a("2001:db8:100::1"),
            prefix: Some("2001:db8:100::/56".parse().unwrap()),
            nexthops: vec![
                FibNextHop {
                    address: a("2001:db8:1::11"),
                    interface: "k8s0".into(),
                    mac: Some(mac("02:00:00:00:00:11")),
                    state: NextHopState::Up,
                },
                FibNextHop {
                    address: a("2001:db8:1::112"),
                    interface: "k8s10".into(),
                    mac: None,
                    state: NextHopState::Unresolved,
                },
                FibNextHop {
                    address: a("2001:db8:1::13"),
                    interface: "k8s0".into(),
                    mac: Some(mac("02:00:00:00:00:13")),
                    state: NextHopState::Down,
                },
            ],
        }),
        "\
2001:db8:100::1 via prefix 2001:db8:100::/56
  2001:db8:1::11   k8s0   02:00:00:00:00:11  up
  2001:db8:1::112  k8s10  -                  unresolved
  2001:db8:1::13   k8s0   02:00:00:00:00:13  down
",
    );
}

#[test]
fn fib_unreachable_prefix() {
    check(
        Response::Fib(FibEntry {
            address: a("2001:db8:100::1"),
            prefix: Some("2001:db8:100::/40".parse().unwrap()),
            nexthops: vec![],
        }),
        "2001:db8:100::1 via prefix 2001:db8:100::/40\n  unreachable: no next hops\n",
    );
}

#[test]
fn fib_no_route() {
    check(
        Response::Fib(FibEntry {
            address: a("3fff::1"),
            prefix: None,
            nexthops: vec![],
        }),
        "no route to 3fff::1\n",
    );
}

#[test]
fn fib_summary() {
    check(
        Response::FibSummary(FibSummary {
            routes: 100_899,
            groups: 12,
            memory_bytes: 2_516_582,
        }),
        "\
Routes           100899
Next-hop groups  12
Memory           2516582 bytes
",
    );
}

#[test]
fn neighbors() {
    check(
        Response::Neighbors(Neighbors {
            neighbors: vec![
                Neighbor {
                    address: a("2001:db8:ffff::1"),
                    interface: "up0".into(),
                    mac: Some(mac("52:54:00:ab:cd:ef")),
                    state: NextHopState::Up,
                },
                Neighbor {
                    address: a("2001:db8:1::11"),
                    interface: "k8s0".into(),
                    mac: None,
                    state: NextHopState::Unresolved,
                },
            ],
        }),
        "\
Address           Interface  MAC                State
2001:db8:ffff::1  up0        52:54:00:ab:cd:ef  up
2001:db8:1::11    k8s0       -                  unresolved
",
    );
    check(
        Response::Neighbors(Neighbors { neighbors: vec![] }),
        "no neighbors\n",
    );
}

#[test]
fn interfaces() {
    check(
        Response::Interfaces(Interfaces {
            interfaces: vec![
                Interface {
                    name: "up0".into(),
                    carrier: true,
                    mtu: 1500,
                    rx_packets: 10,
                    rx_bytes: 640,
                    tx_packets: 9,
                    tx_bytes: 576,
                    drops: 1,
                    tx_drops: Some(4),
                    tx_link_down: Some(250),
                },
                Interface {
                    name: "k8s0".into(),
                    carrier: false,
                    mtu: 9000,
                    rx_packets: 123_456_789,
                    rx_bytes: 98_765_432_100,
                    tx_packets: 0,
                    tx_bytes: 0,
                    drops: 0,
                    tx_drops: None,
                    tx_link_down: None,
                },
            ],
        }),
        "\
Name  Carrier   MTU  RX packets     RX bytes  TX packets  TX bytes  Drops  TX drops  TX link down
up0   up       1500          10          640           9       576      1         4           250
k8s0  down     9000   123456789  98765432100           0         0      0         -             -
",
    );
    check(
        Response::Interfaces(Interfaces { interfaces: vec![] }),
        "no interfaces\n",
    );
}

#[test]
fn drops_lists_the_non_zero_reasons() {
    check(
        Response::Drops(Drops {
            drops: BTreeMap::from([
                ("hop_limit_exceeded".to_string(), 3),
                ("no_route".to_string(), 0),
                ("bad_checksum".to_string(), 1_000_000),
            ]),
        }),
        "\
Reason              Packets
bad_checksum        1000000
hop_limit_exceeded        3
",
    );
}

#[test]
fn no_drops() {
    check(
        Response::Drops(Drops {
            drops: BTreeMap::from([("no_route".to_string(), 0)]),
        }),
        "no drops\n",
    );
    check(
        Response::Drops(Drops {
            drops: BTreeMap::new(),
        }),
        "no drops\n",
    );
}

#[test]
fn runtime() {
    let stage = |name: &str, calls, packets, ns_per_packet| StageRuntime {
        name: name.into(),
        calls,
        packets,
        ns_per_packet,
    };
    check(
        Response::Runtime(Runtime {
            packets: 32_000,
            busy_ns_per_packet: 41.25,
            syscall_ns_per_packet: 12.0,
            stages: vec![
                stage("ip6_input", 1000, 32_000, 2.5),
                stage("ip6_lookup", 1000, 32_000, 17.04),
                stage("icmp6_error", 0, 0, 0.0),
            ],
            batches: Some(1000),
            coalescing: Some(Coalescing {
                rx_usecs: 30,
                rx_frames: 32,
                waited_batches: 900,
            }),
        }),
        "\
Name         Calls  Packets  ns/pkt
ip6_input     1000    32000     2.5
ip6_lookup    1000    32000    17.0
icmp6_error      0        0     0.0
Packets     32000
Busy        41.2 ns/packet (syscalls included)
Syscalls    12.0 ns/packet
Batches     1000 (32.0 packets/batch)
Coalescing  rx-usecs 30 rx-frames 32: 900 batches waited
",
    );
}

#[test]
fn runtime_before_any_packet() {
    check(
        Response::Runtime(Runtime {
            packets: 0,
            busy_ns_per_packet: f64::NAN,
            syscall_ns_per_packet: 0.0,
            stages: vec![],
            batches: Some(0),
            coalescing: Some(Coalescing {
                rx_usecs: 0,
                rx_frames: 32,
                waited_batches: 0,
            }),
        }),
        "\
no stages
Packets     0
Busy        - ns/packet (syscalls included)
Syscalls    0.0 ns/packet
Batches     0 (0.0 packets/batch)
Coalescing  off (rx-usecs 0)
",
    );
}

#[test]
fn runtime_of_an_older_daemon_and_a_batch_of_one() {
    let runtime = |batches, coalescing| {
        Response::Runtime(Runtime {
            packets: 10,
            busy_ns_per_packet: 50.0,
            syscall_ns_per_packet: 20.0,
            stages: vec![],
            batches,
            coalescing,
        })
    };
    // An older daemon: no batch or coalescing rows, rather than zeros.
    check(
        runtime(None, None),
        "\
no stages
Packets   10
Busy      50.0 ns/packet (syscalls included)
Syscalls  20.0 ns/packet
",
    );
    // rx-frames 1: the worker never waits.
    let one = Coalescing {
        rx_usecs: 30,
        rx_frames: 1,
        waited_batches: 0,
    };
    check(
        runtime(Some(10), Some(one)),
        "\
no stages
Packets     10
Busy        50.0 ns/packet (syscalls included)
Syscalls    20.0 ns/packet
Batches     10 (1.0 packets/batch)
Coalescing  off (rx-frames 1)
",
    );
}

#[test]
fn done() {
    check(
        Response::Done(Done {
            message: "neighbor 2001:db8:1::11 reset".into(),
        }),
        "neighbor 2001:db8:1::11 reset\n",
    );
}

#[test]
fn error() {
    check(
        Response::error(ErrorCode::UnknownNeighbor, "no BGP peer 2001:db8::9"),
        "error (unknown_neighbor): no BGP peer 2001:db8::9\n",
    );
}
