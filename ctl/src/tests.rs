use super::*;
use serde_json::{json, Value};

fn a(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

fn p(s: &str) -> Ipv6Net {
    s.parse().unwrap()
}

fn mac(s: &str) -> MacAddr {
    s.parse().unwrap()
}

/// `value` serialises to exactly `golden`, and `golden` (as text)
/// deserialises back to `value`.
#[track_caller]
fn golden<T>(value: &T, golden: Value)
where
    T: Serialize + serde::de::DeserializeOwned + PartialEq + fmt::Debug,
{
    assert_eq!(serde_json::to_value(value).unwrap(), golden);
    let text = serde_json::to_string(&golden).unwrap();
    assert_eq!(&serde_json::from_str::<T>(&text).unwrap(), value);
    let pretty = serde_json::to_string_pretty(value).unwrap();
    assert_eq!(&serde_json::from_str::<T>(&pretty).unwrap(), value);
}

#[test]
fn requests() {
    let cases = [
        (
            Request::ShowBgpSummary,
            json!({"command": "show_bgp_summary"}),
        ),
        (
            Request::ShowRoute { prefix: None },
            json!({"command": "show_route", "prefix": null}),
        ),
        (
            Request::ShowRoute {
                prefix: Some(p("2001:db8:100::/56")),
            },
            json!({"command": "show_route", "prefix": "2001:db8:100::/56"}),
        ),
        (
            Request::ShowFib {
                address: a("2001:db8:100::1"),
            },
            json!({"command": "show_fib", "address": "2001:db8:100::1"}),
        ),
        (
            Request::ShowFibSummary,
            json!({"command": "show_fib_summary"}),
        ),
        (Request::ShowNeighbors, json!({"command": "show_neighbors"})),
        (
            Request::ShowInterfaces,
            json!({"command": "show_interfaces"}),
        ),
        (Request::ShowDrops, json!({"command": "show_drops"})),
        (Request::ShowRuntime, json!({"command": "show_runtime"})),
        (
            Request::Neighbor {
                address: a("2001:db8:1::11"),
                action: NeighborAction::Reset,
            },
            json!({"command": "neighbor", "address": "2001:db8:1::11", "action": "reset"}),
        ),
        (
            Request::Neighbor {
                address: a("2001:db8:1::11"),
                action: NeighborAction::Disable,
            },
            json!({"command": "neighbor", "address": "2001:db8:1::11", "action": "disable"}),
        ),
        (
            Request::Neighbor {
                address: a("2001:db8:1::11"),
                action: NeighborAction::Enable,
            },
            json!({"command": "neighbor", "address": "2001:db8:1::11", "action": "enable"}),
        ),
        (Request::Reload, json!({"command": "reload"})),
    ];
    for (request, json) in cases {
        golden(&request, json);
    }
}

#[test]
fn show_route_prefix_may_be_left_out() {
    let r: Request = serde_json::from_str(r#"{"command":"show_route"}"#).unwrap();
    assert_eq!(r, Request::ShowRoute { prefix: None });
}

#[test]
fn bad_requests_are_refused() {
    for bad in [
        r#"{"command":"show_everything"}"#,
        r#"{"command":"show_fib"}"#,
        r#"{"command":"show_fib","address":"192.0.2.1"}"#,
        r#"{"command":"show_fib","address":"2001:db8::1","extra":1}"#,
        r#"{"command":"show_bgp_summary","prefix":"::/0"}"#,
        r#"{"command":"reload","force":true}"#,
        r#"{"command":"neighbor","address":"2001:db8::1","action":"bounce"}"#,
        r#"{"address":"2001:db8::1"}"#,
        r#"show bgp summary"#,
    ] {
        assert!(Request::from_json(bad.as_bytes()).is_err(), "{bad}");
    }
    let e = Request::from_json(br#"{"command":"show_drops","verbose":1}"#).unwrap_err();
    assert!(e.contains("unknown field `verbose`"), "{e}");
    // What the commands do take passes, an optional field left out too.
    for good in [
        r#"{"command":"show_drops"}"#,
        r#"{"command":"show_route"}"#,
        r#"{"command":"show_route","prefix":"2001:db8::/32"}"#,
        r#"{"command":"neighbor","address":"2001:db8::1","action":"reset"}"#,
    ] {
        assert!(Request::from_json(good.as_bytes()).is_ok(), "{good}");
    }
}

#[test]
fn bgp_summary() {
    golden(
        &Response::BgpSummary(BgpSummary {
            asn: 65000,
            router_id: "192.0.2.1".parse().unwrap(),
            peers: vec![
                BgpPeer {
                    address: a("2001:db8:1::11"),
                    asn: 65001,
                    state: PeerState::Established,
                    uptime_s: 3600,
                    prefixes_received: 3,
                    prefixes_accepted: 2,
                },
                BgpPeer {
                    address: a("2001:db8:ffff::1"),
                    asn: 65100,
                    state: PeerState::OpenConfirm,
                    uptime_s: 1,
                    prefixes_received: 0,
                    prefixes_accepted: 0,
                },
            ],
        }),
        json!({
            "type": "bgp_summary",
            "asn": 65000,
            "router_id": "192.0.2.1",
            "peers": [
                {"address": "2001:db8:1::11", "asn": 65001, "state": "established",
                 "uptime_s": 3600, "prefixes_received": 3, "prefixes_accepted": 2},
                {"address": "2001:db8:ffff::1", "asn": 65100, "state": "open_confirm",
                 "uptime_s": 1, "prefixes_received": 0, "prefixes_accepted": 0}
            ]
        }),
    );
}

#[test]
fn peer_states() {
    for (state, name) in [
        (PeerState::Idle, "idle"),
        (PeerState::Connect, "connect"),
        (PeerState::Active, "active"),
        (PeerState::OpenSent, "open_sent"),
        (PeerState::OpenConfirm, "open_confirm"),
        (PeerState::Established, "established"),
        (PeerState::Disabled, "disabled"),
    ] {
        golden(&state, json!(name));
    }
}

#[test]
fn routes() {
    golden(
        &Response::Routes(Routes {
            routes: vec![
                Route {
                    prefix: p("2001:db8:96::10/128"),
                    paths: vec![
                        Path {
                            source: RouteSource::Bgp,
                            peer: Some(a("2001:db8:1::11")),
                            next_hop: Some(a("2001:db8:1::11")),
                            as_path: vec![65001],
                            origin: Some(Origin::Igp),
                            local_pref: Some(100),
                            med: None,
                            stale: false,
                            status: PathStatus::Best,
                            reason: None,
                        },
                        Path {
                            source: RouteSource::Bgp,
                            peer: Some(a("2001:db8:1::12")),
                            next_hop: Some(a("2001:db8:1::12")),
                            as_path: vec![65001],
                            origin: Some(Origin::Igp),
                            local_pref: Some(100),
                            med: Some(0),
                            stale: true,
                            status: PathStatus::Multipath,
                            reason: None,
                        },
                        Path {
                            source: RouteSource::Bgp,
                            peer: Some(a("2001:db8:1::13")),
                            next_hop: Some(a("2001:db8:1::13")),
                            as_path: vec![65001, 65001],
                            origin: Some(Origin::Incomplete),
                            local_pref: Some(100),
                            med: None,
                            stale: false,
                            status: PathStatus::Lost,
                            reason: Some("longer AS path".into()),
                        },
                    ],
                },
                Route {
                    prefix: p("2001:db8:100::/40"),
                    paths: vec![Path {
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
                    }],
                },
            ],
            truncated_at: None,
        }),
        json!({
            "type": "routes",
            "routes": [
                {"prefix": "2001:db8:96::10/128", "paths": [
                    {"source": "bgp", "peer": "2001:db8:1::11", "next_hop": "2001:db8:1::11",
                     "as_path": [65001], "origin": "igp", "local_pref": 100, "med": null,
                     "stale": false, "status": "best", "reason": null},
                    {"source": "bgp", "peer": "2001:db8:1::12", "next_hop": "2001:db8:1::12",
                     "as_path": [65001], "origin": "igp", "local_pref": 100, "med": 0,
                     "stale": true, "status": "multipath", "reason": null},
                    {"source": "bgp", "peer": "2001:db8:1::13", "next_hop": "2001:db8:1::13",
                     "as_path": [65001, 65001], "origin": "incomplete", "local_pref": 100,
                     "med": null, "stale": false, "status": "lost", "reason": "longer AS path"}
                ]},
                {"prefix": "2001:db8:100::/40", "paths": [
                    {"source": "aggregate", "peer": null, "next_hop": null, "as_path": [],
                     "origin": null, "local_pref": null, "med": null, "stale": false,
                     "status": "best", "reason": null}
                ]}
            ],
            "truncated_at": null
        }),
    );
    golden(
        &Response::Routes(Routes {
            routes: vec![],
            truncated_at: Some(10_000),
        }),
        json!({"type": "routes", "routes": [], "truncated_at": 10000}),
    );
}

#[test]
fn fib() {
    golden(
        &Response::Fib(FibEntry {
            address: a("2001:db8:100::1"),
            prefix: Some(p("2001:db8:100::/56")),
            nexthops: vec![
                FibNextHop {
                    address: a("2001:db8:1::11"),
                    interface: "k8s0".into(),
                    mac: Some(mac("02:00:00:00:00:11")),
                    state: NextHopState::Up,
                },
                FibNextHop {
                    address: a("2001:db8:1::12"),
                    interface: "k8s0".into(),
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
        json!({
            "type": "fib",
            "address": "2001:db8:100::1",
            "prefix": "2001:db8:100::/56",
            "nexthops": [
                {"address": "2001:db8:1::11", "interface": "k8s0",
                 "mac": "02:00:00:00:00:11", "state": "up"},
                {"address": "2001:db8:1::12", "interface": "k8s0",
                 "mac": null, "state": "unresolved"},
                {"address": "2001:db8:1::13", "interface": "k8s0",
                 "mac": "02:00:00:00:00:13", "state": "down"}
            ]
        }),
    );
    golden(
        &Response::Fib(FibEntry {
            address: a("3fff::1"),
            prefix: None,
            nexthops: vec![],
        }),
        json!({"type": "fib", "address": "3fff::1", "prefix": null, "nexthops": []}),
    );
}

#[test]
fn fib_summary() {
    golden(
        &Response::FibSummary(FibSummary {
            routes: 100_899,
            groups: 12,
            memory_bytes: 2_516_582,
        }),
        json!({"type": "fib_summary", "routes": 100899, "groups": 12, "memory_bytes": 2516582}),
    );
}

#[test]
fn neighbors() {
    golden(
        &Response::Neighbors(Neighbors {
            neighbors: vec![Neighbor {
                address: a("2001:db8:ffff::1"),
                interface: "up0".into(),
                mac: Some(mac("52:54:00:ab:cd:ef")),
                state: NextHopState::Up,
            }],
        }),
        json!({
            "type": "neighbors",
            "neighbors": [
                {"address": "2001:db8:ffff::1", "interface": "up0",
                 "mac": "52:54:00:ab:cd:ef", "state": "up"}
            ]
        }),
    );
}

#[test]
fn interfaces() {
    golden(
        &Response::Interfaces(Interfaces {
            interfaces: vec![Interface {
                name: "up0".into(),
                carrier: true,
                mtu: 1500,
                rx_packets: 10,
                rx_bytes: 640,
                tx_packets: 9,
                tx_bytes: 576,
                drops: 1,
                tx_drops: Some(2),
                tx_link_down: Some(3),
            }],
        }),
        json!({
            "type": "interfaces",
            "interfaces": [
                {"name": "up0", "carrier": true, "mtu": 1500, "rx_packets": 10,
                 "rx_bytes": 640, "tx_packets": 9, "tx_bytes": 576, "drops": 1,
                 "tx_drops": 2, "tx_link_down": 3}
            ]
        }),
    );
}

#[test]
fn drops() {
    golden(
        &Response::Drops(Drops {
            drops: BTreeMap::from([
                ("hop_limit_exceeded".to_string(), 3),
                ("no_route".to_string(), 0),
            ]),
        }),
        json!({"type": "drops", "drops": {"hop_limit_exceeded": 3, "no_route": 0}}),
    );
}

#[test]
fn runtime() {
    golden(
        &Response::Runtime(Runtime {
            packets: 32_000,
            busy_ns_per_packet: 41.25,
            syscall_ns_per_packet: 12.0,
            stages: vec![
                StageRuntime {
                    name: "ip6_input".into(),
                    calls: 1000,
                    packets: 32_000,
                    ns_per_packet: 2.5,
                },
                StageRuntime {
                    name: "ip6_lookup".into(),
                    calls: 1000,
                    packets: 32_000,
                    ns_per_packet: 7.0,
                },
            ],
            batches: Some(1000),
            coalescing: Some(Coalescing {
                rx_usecs: 30,
                rx_frames: 32,
                waited_batches: 900,
            }),
        }),
        json!({
            "type": "runtime",
            "packets": 32000,
            "busy_ns_per_packet": 41.25,
            "syscall_ns_per_packet": 12.0,
            "stages": [
                {"name": "ip6_input", "calls": 1000, "packets": 32000, "ns_per_packet": 2.5},
                {"name": "ip6_lookup", "calls": 1000, "packets": 32000, "ns_per_packet": 7.0}
            ],
            "batches": 1000,
            "coalescing": {"rx_usecs": 30, "rx_frames": 32, "waited_batches": 900}
        }),
    );
}

/// A daemon from before `tx_drops` and `tx_link_down`: the document
/// still reads, with both absent (not zero), and is written back the same.
#[test]
fn interfaces_from_an_older_daemon() {
    let old = json!({
        "type": "interfaces",
        "interfaces": [
            {"name": "up0", "carrier": true, "mtu": 1500, "rx_packets": 10,
             "rx_bytes": 640, "tx_packets": 9, "tx_bytes": 576, "drops": 1}
        ]
    });
    let r: Response = serde_json::from_value(old.clone()).unwrap();
    match &r {
        Response::Interfaces(i) => {
            assert_eq!(i.interfaces[0].tx_drops, None);
            assert_eq!(i.interfaces[0].tx_link_down, None);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(serde_json::to_value(&r).unwrap(), old);
}

/// A daemon from before `batches` and `coalescing`: the document still
/// reads, with both absent (not zero), and is written back the same.
#[test]
fn runtime_from_an_older_daemon() {
    let old = json!({
        "type": "runtime",
        "packets": 32000,
        "busy_ns_per_packet": 41.25,
        "syscall_ns_per_packet": 12.0,
        "stages": []
    });
    let r: Response = serde_json::from_value(old.clone()).unwrap();
    match &r {
        Response::Runtime(rt) => {
            assert_eq!(rt.batches, None);
            assert_eq!(rt.coalescing, None);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(serde_json::to_value(&r).unwrap(), old);
}

#[test]
fn done() {
    golden(
        &Response::Done(Done {
            message: "neighbor 2001:db8:1::11 reset".into(),
        }),
        json!({"type": "done", "message": "neighbor 2001:db8:1::11 reset"}),
    );
}

#[test]
fn errors() {
    golden(
        &Response::error(
            ErrorCode::InvalidConfig,
            "edge.toml:9: bgp.port: port 0 is not a TCP port to listen on or connect to",
        ),
        json!({
            "type": "error",
            "code": "invalid_config",
            "message": "edge.toml:9: bgp.port: port 0 is not a TCP port to listen on or connect to"
        }),
    );
    for (code, name) in [
        (ErrorCode::BadRequest, "bad_request"),
        (ErrorCode::Unsupported, "unsupported"),
        (ErrorCode::UnknownNeighbor, "unknown_neighbor"),
        (ErrorCode::InvalidConfig, "invalid_config"),
        (ErrorCode::InvalidState, "invalid_state"),
        (ErrorCode::Internal, "internal"),
        (ErrorCode::Unavailable, "unavailable"),
        (ErrorCode::Busy, "busy"),
        (ErrorCode::Timeout, "timeout"),
        (ErrorCode::Usage, "usage"),
    ] {
        golden(&code, json!(name));
    }
}

#[test]
fn responses_say_what_they_are() {
    let r: Response =
        serde_json::from_str(r#"{"type":"fib_summary","routes":1,"groups":1,"memory_bytes":64}"#)
            .unwrap();
    assert!(matches!(
        r,
        Response::FibSummary(FibSummary { routes: 1, .. })
    ));
    assert!(
        serde_json::from_str::<Response>(r#"{"routes":1,"groups":1,"memory_bytes":64}"#).is_err()
    );
    assert!(serde_json::from_str::<Response>(r#"{"type":"fib_summary","routes":1}"#).is_err());
}

#[test]
fn mac_addresses() {
    let m = mac("02:00:5E:10:00:01");
    assert_eq!(m, MacAddr([0x02, 0x00, 0x5e, 0x10, 0x00, 0x01]));
    assert_eq!(m.to_string(), "02:00:5e:10:00:01");
    for bad in [
        "",
        "02:00:5e:10:00",
        "02:00:5e:10:00:01:02",
        "2:00:5e:10:00:01",
        "02:00:5e:10:00:0g",
        "+2:00:5e:10:00:01",
        "02-00-5e-10-00-01",
    ] {
        assert!(bad.parse::<MacAddr>().is_err(), "{bad}");
    }
    assert!(serde_json::from_str::<MacAddr>(r#""02:00:5e:10:00""#).is_err());
}
