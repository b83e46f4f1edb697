//! The `flatedge` daemon with BGP, end to end (DESIGN.md section 7): three
//! gobgpd nodes configured like Cilium announce their pod /64 and a shared
//! service /128; flatedge learns them through its listen range, installs
//! them in its FIB and forwards the client's traffic to the pods, the
//! service spread over the three nodes by ECMP.

use std::collections::HashMap;
use std::fs::File;
use std::net::{SocketAddrV6, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use ctl::{NextHopState, PathStatus, PeerState, Request, Response, RouteSource};

use crate::lab::{node_addr, run, Lab, NodeOptions, PeerOptions, CLIENT, RANGE, SESSION_TIMEOUT};

const SERVICE: &str = "2001:db8:96::10";
const UDP_PORT: u16 = 9999;

fn pod_prefix(i: usize) -> String {
    format!("2001:db8:100:{i}::/64")
}

fn pod_addr(i: usize) -> String {
    format!("2001:db8:100:{i}::1")
}

/// The daemon's `[router]` and interfaces.
const ROUTER: &str = r#"[router]
asn = 65000
router-id = "192.0.2.1"

[[interface]]
name = "up0"
[[interface]]
name = "k8s0"
"#;

fn config() -> String {
    format!(
        r#"{ROUTER}
[[bgp.listen]]
range = "{RANGE}"
peer-asn = 65001
import = ["2001:db8:100::/40 le 64", "2001:db8:96::/112 le 128"]
graceful-restart = true
"#
    )
}

/// Runs `f` on a thread inside namespace `ns`.
fn in_ns<T: Send + 'static>(
    ns: &str,
    f: impl FnOnce() -> Result<T, String> + Send + 'static,
) -> JoinHandle<Result<T, String>> {
    let ns = ns.to_owned();
    thread::spawn(move || {
        let file = File::open(format!("/run/netns/{ns}")).map_err(|e| format!("{ns}: {e}"))?;
        nix::sched::setns(file, nix::sched::CloneFlags::CLONE_NEWNET)
            .map_err(|e| format!("setns {ns}: {e}"))?;
        f()
    })
}

/// 60 UDP flows (3 datagrams each) from the client to the service, with
/// receivers on every node; returns flow (source port) -> node.
fn flows(lab: &Lab, nodes: &[usize]) -> HashMap<u16, usize> {
    let stop = Arc::new(AtomicBool::new(false));
    let (ready_tx, ready_rx) = mpsc::channel();
    let sinks: Vec<_> = nodes
        .iter()
        .map(|&i| {
            let (stop, ready) = (stop.clone(), ready_tx.clone());
            let h = in_ns(lab.node_ns(i), move || {
                let at = SocketAddrV6::new(SERVICE.parse().unwrap(), UDP_PORT, 0, 0);
                let s = UdpSocket::bind(at).map_err(|e| format!("bind {at}: {e}"))?;
                s.set_read_timeout(Some(Duration::from_millis(100)))
                    .map_err(|e| e.to_string())?;
                let _ = ready.send(());
                let mut seen: HashMap<u16, u32> = HashMap::new();
                let mut buf = [0u8; 512];
                while !stop.load(Ordering::Relaxed) {
                    if let Ok((_, from)) = s.recv_from(&mut buf) {
                        *seen.entry(from.port()).or_default() += 1;
                    }
                }
                // What waits in the socket at the stop counts too.
                s.set_nonblocking(true).map_err(|e| e.to_string())?;
                while let Ok((_, from)) = s.recv_from(&mut buf) {
                    *seen.entry(from.port()).or_default() += 1;
                }
                Ok(seen)
            });
            (i, h)
        })
        .collect();
    for _ in nodes {
        ready_rx
            .recv_timeout(Duration::from_secs(5))
            .expect("a node's receiver did not start");
    }
    // The kernels' count of UDP datagrams delivered on the nodes.
    let delivered = || -> u64 {
        nodes
            .iter()
            .map(|&i| {
                let snmp = run(&[
                    "ip",
                    "netns",
                    "exec",
                    lab.node_ns(i),
                    "cat",
                    "/proc/net/snmp6",
                ]);
                snmp.lines()
                    .find_map(|l| l.strip_prefix("Udp6InDatagrams"))
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .expect("Udp6InDatagrams")
            })
            .sum()
    };
    let before = delivered();
    in_ns(lab.client(), || {
        let socks: Vec<UdpSocket> = (0..60u16)
            .map(|k| {
                let at = SocketAddrV6::new(CLIENT.parse().unwrap(), 40000 + k, 0, 0);
                UdpSocket::bind(at).map_err(|e| format!("bind {at}: {e}"))
            })
            .collect::<Result<_, _>>()?;
        let to = SocketAddrV6::new(SERVICE.parse().unwrap(), UDP_PORT, 0, 0);
        for round in 0..3u8 {
            for s in &socks {
                s.send_to(&[round; 64], to).map_err(|e| e.to_string())?;
            }
            thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    })
    .join()
    .expect("sender panicked")
    .expect("sending failed");
    // Until the nodes' kernels delivered all 180 (a lost one shows in the
    // checks below, after 3 s).
    let t0 = Instant::now();
    while delivered() < before + 180 && t0.elapsed() < Duration::from_secs(3) {
        thread::sleep(Duration::from_millis(20));
    }
    stop.store(true, Ordering::Relaxed);
    let mut at = HashMap::new();
    for (i, h) in sinks {
        let seen = h
            .join()
            .expect("receiver panicked")
            .expect("receiver failed");
        for (port, n) in seen {
            assert_eq!(n, 3, "flow {port} lost datagrams on node {i}");
            assert!(
                at.insert(port, i).is_none(),
                "flow {port} reached two nodes"
            );
        }
    }
    assert_eq!(at.len(), 60, "not every flow arrived: {at:?}");
    at
}

fn ping(lab: &Lab, to: &str) -> (bool, String) {
    let out = std::process::Command::new("ip")
        .args([
            "netns",
            "exec",
            lab.client(),
            "ping",
            "-6",
            "-c",
            "5",
            "-i",
            "0.2",
            "-w",
            "8",
            to,
        ])
        .output()
        .expect("run ping");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

fn fib(lab: &Lab, addr: &str) -> ctl::FibEntry {
    match lab.ctl(Request::ShowFib {
        address: addr.parse().unwrap(),
    }) {
        Response::Fib(f) => f,
        other => panic!("show fib {addr}: {other:?}"),
    }
}

/// Every node established, and each node's two prefixes accepted.
fn all_established(lab: &Lab, nodes: usize) -> bool {
    match lab.ctl(Request::ShowBgpSummary) {
        Response::BgpSummary(s) => {
            s.peers
                .iter()
                .filter(|p| p.state == PeerState::Established && p.prefixes_accepted == 2)
                .count()
                == nodes
        }
        other => panic!("show bgp summary: {other:?}"),
    }
}

/// Pods and the service are reached through routes learned over BGP; the
/// service's flows spread over the three nodes. Then node 2 dies
/// silently (its link goes down inside its namespace, then gobgpd is
/// SIGKILLed: no FIN, no NOTIFICATION reaches flatedge): its BGP session
/// stays up until its hold timer and its routes stay (graceful restart),
/// yet within 1 s flatedge's prober takes it out of every ECMP group, so
/// the service's flows avoid it and only its own flows move.
#[test]
fn daemon_forwards_to_pods_and_services_learned_over_bgp() {
    let mut lab = Lab::new_routed(3);
    lab.start_daemon(&config());
    for i in 1..=3 {
        lab.start_gobgpd(i, &NodeOptions::default(), false);
        lab.announce(i, &pod_prefix(i));
        lab.announce(i, &format!("{SERVICE}/128"));
        let ns = lab.node_ns(i).to_string();
        run(&[
            "ip",
            "-n",
            &ns,
            "addr",
            "add",
            &format!("{}/128", pod_addr(i)),
            "dev",
            "lo",
        ]);
        run(&[
            "ip",
            "-n",
            &ns,
            "addr",
            "add",
            &format!("{SERVICE}/128"),
            "dev",
            "lo",
        ]);
    }
    lab.poll(
        "three nodes established with their routes",
        SESSION_TIMEOUT,
        || all_established(&lab, 3),
    );
    lab.poll(
        "the service's three next hops up",
        Duration::from_secs(10),
        || {
            let f = fib(&lab, SERVICE);
            f.nexthops.len() == 3 && f.nexthops.iter().all(|n| n.state == NextHopState::Up)
        },
    );
    // The RIB explains the service: three paths, one best, two multipath.
    match lab.ctl(Request::ShowRoute {
        prefix: Some(format!("{SERVICE}/128").parse().unwrap()),
    }) {
        Response::Routes(r) => {
            assert_eq!(r.routes.len(), 1, "{r:?}");
            let paths = &r.routes[0].paths;
            let mut peers: Vec<_> = paths.iter().filter_map(|p| p.peer).collect();
            peers.sort();
            assert_eq!(peers, crate::lab::nodes(&[1, 2, 3]), "{r:?}");
            let best = paths
                .iter()
                .filter(|p| p.status == PathStatus::Best)
                .count();
            let multi = paths
                .iter()
                .filter(|p| p.status == PathStatus::Multipath)
                .count();
            assert_eq!((best, multi), (1, 2), "{r:?}");
            assert!(paths.iter().all(|p| p.as_path == [65001]), "{r:?}");
        }
        other => panic!("show route: {other:?}"),
    }
    for i in 1..=3 {
        let f = fib(&lab, &pod_addr(i));
        assert_eq!(f.prefix.map(|p| p.to_string()), Some(pod_prefix(i)));
        assert_eq!(f.nexthops.len(), 1);
        assert_eq!(f.nexthops[0].address, node_addr(i));
        let (ok, out) = ping(&lab, &pod_addr(i));
        assert!(
            ok,
            "ping to pod {i} through flatedge failed: {out}\n{}",
            lab.daemon_log()
        );
    }
    let first = flows(&lab, &[1, 2, 3]);
    for i in 1..=3 {
        assert!(
            first.values().any(|&n| n == i),
            "node {i} got no flow: {first:?}"
        );
    }

    // Node 2 dies silently.
    let ns2 = lab.node_ns(2).to_string();
    run(&["ip", "-n", &ns2, "link", "set", "eth0", "down"]);
    lab.kill_gobgpd(2);
    let died = Instant::now();
    thread::sleep(Duration::from_secs(1));
    let after = flows(&lab, &[1, 2, 3]);
    for (port, &n) in &after {
        assert_ne!(
            n, 2,
            "flow {port} still reached the dead node 1 s after it died"
        );
        if first[port] != 2 {
            assert_eq!(n, first[port], "flow {port} moved though its node is alive");
        }
    }
    // BGP still believes in node 2 (hold timer, then graceful restart):
    // its pod route stays, with its next hop down.
    let f = fib(&lab, &pod_addr(2));
    assert_eq!(
        f.prefix.map(|p| p.to_string()),
        Some(pod_prefix(2)),
        "{f:?}"
    );
    assert_eq!(f.nexthops[0].state, NextHopState::Down, "{f:?}");
    assert!(
        died.elapsed() < Duration::from_secs(60),
        "the checks took so long that BGP may have caught up"
    );
    let (ok, out) = ping(&lab, &pod_addr(1));
    assert!(ok, "pod 1 unreachable after node 2 died: {out}");
    let summary = lab.ctl(Request::ShowBgpSummary);
    let Response::BgpSummary(s) = summary else {
        panic!("show bgp summary: {summary:?}");
    };
    let p2 = s
        .peers
        .iter()
        .find(|p| p.address == node_addr(2))
        .expect("peer 2");
    assert!(
        p2.prefixes_accepted == 2,
        "node 2's routes were not kept: {p2:?}"
    );

    // Node 1 withdraws its pod /64: the route leaves the FIB; the service
    // keeps node 1 (and node 3).
    lab.withdraw(1, &pod_prefix(1));
    lab.poll(
        "node 1's pod route withdrawn",
        Duration::from_secs(10),
        || fib(&lab, &pod_addr(1)).prefix.is_none(),
    );
    let f = fib(&lab, SERVICE);
    assert!(
        f.nexthops.iter().any(|n| n.address == node_addr(1)),
        "{f:?}"
    );
}

/// `flatedgectl neighbor ADDR ...` and what it prints; panics when it
/// does not exit with `code`.
fn flatedgectl(lab: &Lab, args: &[&str], code: i32) -> String {
    let out = std::process::Command::new(crate::lab::workspace_bin("flatedgectl"))
        .arg("--socket")
        .arg(lab.ctl_socket())
        .args(args)
        .output()
        .expect("run flatedgectl");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        out.status.code(),
        Some(code),
        "flatedgectl {args:?}: {text}\n{}",
        lab.daemon_log()
    );
    text
}

/// Node `i`'s entry in `show bgp summary`, if it has one.
fn try_peer(lab: &Lab, i: usize) -> Option<ctl::BgpPeer> {
    match lab.ctl(Request::ShowBgpSummary) {
        Response::BgpSummary(s) => s
            .peers
            .into_iter()
            .find(|p| p.address == crate::lab::node_addr(i)),
        other => panic!("show bgp summary: {other:?}"),
    }
}

/// Node `i`'s entry in `show bgp summary`.
fn peer(lab: &Lab, i: usize) -> ctl::BgpPeer {
    try_peer(lab, i).unwrap_or_else(|| panic!("no peer {i}"))
}

/// The daemon with `config()` and two gobgpd nodes established, each
/// announcing its pod and the service.
fn two_nodes() -> Lab {
    let mut lab = Lab::new_routed(2);
    lab.start_daemon(&config());
    for i in 1..=2 {
        lab.start_gobgpd(i, &NodeOptions::default(), false);
        lab.announce(i, &pod_prefix(i));
        lab.announce(i, &format!("{SERVICE}/128"));
    }
    lab.poll("two nodes established", SESSION_TIMEOUT, || {
        all_established(&lab, 2)
    });
    lab
}

/// The operator's `neighbor ADDR disable|enable|reset` against a real
/// gobgpd node: disabling node 1 closes its session, withdraws its pod
/// route and refuses the node's reconnects until `enable`; a reset
/// re-establishes the session by itself. Node 2 is never touched.
#[test]
fn daemon_neighbor_disable_enable_and_reset() {
    let lab = two_nodes();
    let node1 = node_addr(1).to_string();

    let out = flatedgectl(&lab, &["neighbor", &node1, "disable"], 0);
    assert!(out.contains("disabled"), "{out}");
    lab.poll(
        "node 1's pod route withdrawn",
        Duration::from_secs(10),
        || fib(&lab, &pod_addr(1)).prefix.is_none(),
    );
    let f = fib(&lab, SERVICE);
    assert_eq!(f.nexthops.len(), 1, "{f:?}");
    assert_eq!(f.nexthops[0].address, node_addr(2), "{f:?}");
    let out = flatedgectl(&lab, &["neighbor", &node1, "reset"], 1);
    assert!(out.contains("disabled"), "{out}");
    // gobgpd dials again 10-15 s after the Cease (its idle hold, then its
    // connect retry); flatedge refuses it: 20 s on, node 1's session is
    // still down on both sides and its pod route still out.
    thread::sleep(Duration::from_secs(20));
    let p1 = peer(&lab, 1);
    assert_eq!(p1.state, PeerState::Disabled, "{p1:?}");
    let node_view = lab.gobgp(1, "neighbor");
    assert!(
        !node_view.contains("Establ"),
        "node 1's gobgpd is established again: {node_view}"
    );
    assert!(fib(&lab, &pod_addr(1)).prefix.is_none());
    assert_eq!(peer(&lab, 2).state, PeerState::Established);
    let summary = flatedgectl(&lab, &["show", "bgp", "summary"], 0);
    assert!(summary.contains("disabled"), "{summary}");

    let out = flatedgectl(&lab, &["neighbor", &node1, "enable"], 0);
    assert!(out.contains("enabled"), "{out}");
    lab.poll("node 1 back after enable", SESSION_TIMEOUT, || {
        all_established(&lab, 2)
    });
    assert_eq!(fib(&lab, SERVICE).nexthops.len(), 2);

    thread::sleep(Duration::from_secs(3));
    let before = peer(&lab, 1).uptime_s;
    assert!(before >= 3, "uptime {before}");
    let out = flatedgectl(&lab, &["neighbor", &node1, "reset"], 0);
    assert!(out.contains("reset"), "{out}");
    // (A peer from a listen range whose session went down with nothing
    // left is forgotten until it dials again, as FRR's dynamic neighbours.)
    lab.poll("node 1 back after the reset", SESSION_TIMEOUT, || {
        try_peer(&lab, 1).is_some_and(|p| {
            p.state == PeerState::Established && p.uptime_s < before && p.prefixes_accepted == 2
        })
    });
    assert_eq!(peer(&lab, 2).state, PeerState::Established);
    // Listed by address, as FRR does: node 1, back as a new peer, first.
    match lab.ctl(Request::ShowBgpSummary) {
        Response::BgpSummary(s) => {
            let order: Vec<_> = s.peers.iter().map(|p| p.address).collect();
            assert_eq!(order, vec![node_addr(1), node_addr(2)], "{s:?}");
        }
        other => panic!("show bgp summary: {other:?}"),
    }

    // An address of the listen range without a session can be disabled
    // (a node between sessions is forgotten); one outside is no peer.
    let out = flatedgectl(&lab, &["neighbor", "2001:db8:1::99", "disable"], 0);
    assert!(out.contains("disabled"), "{out}");
    let out = flatedgectl(&lab, &["neighbor", "2001:db8:1::99", "enable"], 0);
    assert!(out.contains("enabled"), "{out}");
    let out = flatedgectl(&lab, &["neighbor", "2001:db8:99::1", "disable"], 1);
    assert!(out.contains("not a BGP peer"), "{out}");
}

/// `config()` with a static route, aggregates exported to the nodes, and
/// the listen range's import list reduced to `import`.
fn reloaded_config(import: &str, aggregates: &[&str], static_route: bool) -> String {
    let aggregates: Vec<String> = aggregates.iter().map(|a| format!("\"{a}\"")).collect();
    let route = if static_route {
        format!(
            "[[route]]\nprefix = \"2001:db8:77::/48\"\nvia = [\"{}\"]\n",
            node_addr(1)
        )
    } else {
        String::new()
    };
    format!(
        r#"{ROUTER}
[bgp]
aggregates = [{aggregates}]

[[bgp.listen]]
range = "{RANGE}"
peer-asn = 65001
import = [{import}, "2001:db8:96::/112 le 128"]
export = ["2001:db8::/32 le 48"]
graceful-restart = true

{route}"#,
        aggregates = aggregates.join(", ")
    )
}

/// Whether node `i`'s gobgpd has `prefix` from flatedge.
fn node_has(lab: &Lab, i: usize, prefix: &str) -> bool {
    lab.gobgp(i, "global rib -a ipv6").contains(prefix)
}

/// `flatedgectl reload` against gobgpd nodes: a new static route and
/// aggregates are installed, the listen range's new import list applies
/// to the running sessions (route refresh: node 2's pod is refused), an aggregate
/// added or removed later is announced or withdrawn on the running
/// sessions, and a removed static route goes. A file that changes an
/// interface, or an invalid one, is refused and changes nothing.
#[test]
fn daemon_reload_applies_routes_and_bgp_changes() {
    let lab = two_nodes();
    assert!(fib(&lab, &pod_addr(2)).prefix.is_some());

    // An interface more: needs a restart, nothing changes.
    let mut bad = reloaded_config("\"2001:db8:100:1::/64\"", &[], true);
    bad = bad.replace(
        "name = \"k8s0\"",
        "name = \"k8s0\"\n[[interface]]\nname = \"lo\"",
    );
    lab.write_daemon_config(&bad);
    let out = flatedgectl(&lab, &["reload"], 1);
    assert!(
        out.contains("[[interface]]") && out.contains("restart"),
        "{out}"
    );
    lab.write_daemon_config("[router]\nasn = 0\n");
    let out = flatedgectl(&lab, &["reload"], 1);
    assert!(
        out.contains("flatedge.toml:") && out.contains("nothing was changed"),
        "{out}"
    );
    assert!(fib(&lab, "2001:db8:77::1").prefix.is_none());

    let before = [peer(&lab, 1).uptime_s, peer(&lab, 2).uptime_s];
    lab.write_daemon_config(&reloaded_config(
        "\"2001:db8:100:1::/64\"",
        &["2001:db8:dead::/48"],
        true,
    ));
    let out = flatedgectl(&lab, &["reload"], 0);
    assert!(out.contains("reloaded"), "{out}");
    assert!(
        out.contains("2 sessions took new import or export lists in place"),
        "{out}"
    );
    let f = fib(&lab, "2001:db8:77::1");
    assert_eq!(
        f.prefix.map(|p| p.to_string()).as_deref(),
        Some("2001:db8:77::/48"),
        "{f:?}"
    );
    assert_eq!(f.nexthops[0].address, node_addr(1), "{f:?}");
    // Only the range's import and export lists changed: its sessions stay
    // up, and a route refresh has the nodes send their routes again
    // through the new import list (node 2's pod is refused).
    lab.poll(
        "the nodes' routes through the new import list",
        SESSION_TIMEOUT,
        || {
            let (Some(p1), Some(p2)) = (try_peer(&lab, 1), try_peer(&lab, 2)) else {
                return false;
            };
            p1.state == PeerState::Established
                && p2.state == PeerState::Established
                && p1.prefixes_accepted == 2
                && p2.prefixes_accepted == 1
        },
    );
    for (i, up) in before.into_iter().enumerate() {
        let p = peer(&lab, i + 1);
        assert!(
            p.uptime_s >= up,
            "node {}'s session restarted: {p:?}",
            i + 1
        );
    }
    assert!(fib(&lab, &pod_addr(1)).prefix.is_some());
    assert!(fib(&lab, &pod_addr(2)).prefix.is_none());
    lab.poll(
        "node 1 learns the aggregate",
        Duration::from_secs(10),
        || node_has(&lab, 1, "2001:db8:dead::/48"),
    );

    // One aggregate more, then the static route and that aggregate go:
    // the running sessions get the UPDATEs (no session restarts).
    let up = peer(&lab, 1).uptime_s;
    lab.write_daemon_config(&reloaded_config(
        "\"2001:db8:100:1::/64\"",
        &["2001:db8:dead::/48", "2001:db8:beef::/48"],
        true,
    ));
    flatedgectl(&lab, &["reload"], 0);
    lab.poll(
        "node 1 learns the new aggregate",
        Duration::from_secs(10),
        || node_has(&lab, 1, "2001:db8:beef::/48"),
    );
    lab.write_daemon_config(&reloaded_config(
        "\"2001:db8:100:1::/64\"",
        &["2001:db8:dead::/48"],
        false,
    ));
    flatedgectl(&lab, &["reload"], 0);
    lab.poll(
        "node 1 loses the aggregate",
        Duration::from_secs(10),
        || !node_has(&lab, 1, "2001:db8:beef::/48"),
    );
    assert!(node_has(&lab, 1, "2001:db8:dead::/48"));
    assert!(fib(&lab, "2001:db8:77::1").prefix.is_none());
    let p1 = peer(&lab, 1);
    assert!(
        p1.state == PeerState::Established && p1.uptime_s >= up,
        "node 1's session restarted: {p1:?}"
    );
}

/// A connected subnet hides a BGP route for the same prefix; when the
/// subnet's address goes, the RIB's path takes over in the FIB.
#[test]
fn bgp_route_returns_when_a_connected_subnet_goes() {
    const SUBNET: &str = "2001:db8:5::/64";
    let mut lab = Lab::new_routed(1);
    lab.start_daemon(&config().replace("import = [", &format!("import = [\"{SUBNET}\", ")));
    lab.start_gobgpd(1, &NodeOptions::default(), false);
    lab.announce(1, SUBNET);
    lab.poll("node 1 established with its route", SESSION_TIMEOUT, || {
        try_peer(&lab, 1).is_some_and(|p| p.prefixes_accepted == 1)
    });
    let edge = lab.edge().to_string();
    run(&[
        "ip",
        "-n",
        &edge,
        "addr",
        "add",
        "2001:db8:5::1/64",
        "dev",
        "k8s0",
        "nodad",
    ]);
    let via = |lab: &Lab| {
        fib(lab, "2001:db8:5::9")
            .nexthops
            .first()
            .map(|n| n.address)
    };
    lab.poll("the connected route wins", Duration::from_secs(10), || {
        via(&lab) == Some("2001:db8:5::9".parse().unwrap())
    });
    run(&[
        "ip",
        "-n",
        &edge,
        "addr",
        "del",
        "2001:db8:5::1/64",
        "dev",
        "k8s0",
    ]);
    lab.poll("the BGP route is back", Duration::from_secs(10), || {
        via(&lab) == Some(node_addr(1))
    });
}

/// An aggregate that is also an interface's subnet: the connected route
/// wins (at start as at reload), and the aggregate takes the prefix when
/// the subnet's address goes, and gives it back when it returns.
#[test]
fn an_aggregate_yields_to_a_connected_subnet_and_returns() {
    const SUBNET: &str = "2001:db8:5::/64";
    let mut lab = Lab::new_routed(1);
    let edge = lab.edge().to_string();
    let addr = |verb: &str| {
        run(&[
            "ip",
            "-n",
            &edge,
            "addr",
            verb,
            "2001:db8:5::1/64",
            "dev",
            "k8s0",
            "nodad",
        ]);
    };
    addr("add");
    lab.start_daemon(&config().replace(
        "[[bgp.listen]]",
        &format!("[bgp]\naggregates = [\"{SUBNET}\"]\n\n[[bgp.listen]]"),
    ));
    let source = |lab: &Lab| match lab.ctl(Request::ShowRoute {
        prefix: Some(SUBNET.parse().unwrap()),
    }) {
        Response::Routes(r) => r
            .routes
            .first()
            .and_then(|r| r.paths.first())
            .map(|p| p.source),
        other => panic!("show route {SUBNET}: {other:?}"),
    };
    assert_eq!(source(&lab), Some(RouteSource::Connected));
    addr("del");
    lab.poll(
        "the aggregate takes the prefix",
        Duration::from_secs(10),
        || source(&lab) == Some(RouteSource::Aggregate),
    );
    addr("add");
    lab.poll("the subnet takes it back", Duration::from_secs(10), || {
        source(&lab) == Some(RouteSource::Connected)
    });
    // A static route for the subnet wins over it; made an aggregate again
    // by a reload, it goes and the subnet takes the prefix back (the
    // static route stayed in the FIB).
    let aggregate = config().replace(
        "[[bgp.listen]]",
        &format!("[bgp]\naggregates = [\"{SUBNET}\"]\n\n[[bgp.listen]]"),
    );
    let with_static = format!(
        "{}\n[[route]]\nprefix = \"{SUBNET}\"\nvia = [\"{}\"]\n",
        config(),
        node_addr(1)
    );
    lab.write_daemon_config(&with_static);
    flatedgectl(&lab, &["reload"], 0);
    assert_eq!(source(&lab), Some(RouteSource::Static));
    lab.write_daemon_config(&aggregate);
    flatedgectl(&lab, &["reload"], 0);
    assert_eq!(
        source(&lab),
        Some(RouteSource::Connected),
        "{}",
        lab.daemon_log()
    );
}

/// `show route` without a prefix lists at most 10,000 BGP prefixes and
/// says when it stops there (JSON and human output); one prefix past the
/// cut is still shown when asked for.
#[test]
fn show_route_says_when_it_stops() {
    const N: usize = router::daemon::SHOW_ROUTE_MAX + 1;
    let mut lab = Lab::new_routed(1);
    lab.start_daemon(&config());
    let routes: Vec<String> = (0..N).map(|i| format!("2001:db8:100:{i:x}::/64")).collect();
    let last = routes[N - 1].clone();
    lab.start_bird(
        1,
        &PeerOptions {
            routes,
            ..PeerOptions::default()
        },
    );
    lab.poll("BIRD's routes accepted", Duration::from_secs(60), || {
        try_peer(&lab, 1).is_some_and(|p| p.prefixes_accepted == N as u64)
    });
    let Response::Routes(r) = lab.ctl(Request::ShowRoute { prefix: None }) else {
        panic!("show route");
    };
    assert_eq!(
        r.truncated_at,
        Some(router::daemon::SHOW_ROUTE_MAX),
        "a cut listing must say so"
    );
    let bgp = r
        .routes
        .iter()
        .filter(|r| r.paths.iter().any(|p| p.source == ctl::RouteSource::Bgp))
        .count();
    assert_eq!(bgp, router::daemon::SHOW_ROUTE_MAX, "BGP prefixes listed");
    let human = flatedgectl(&lab, &["show", "route"], 0);
    assert!(
        human.ends_with(&format!(
            "only the first {} BGP prefixes (in prefix order) are listed; `show route PREFIX` shows any other\n",
            router::daemon::SHOW_ROUTE_MAX
        )),
        "{}",
        &human[human.len().saturating_sub(300)..]
    );
    let Response::Routes(one) = lab.ctl(Request::ShowRoute {
        prefix: Some(last.parse().unwrap()),
    }) else {
        panic!("show route {last}");
    };
    assert_eq!(one.truncated_at, None);
    assert_eq!(one.routes.len(), 1, "{last}: {one:?}");
}
