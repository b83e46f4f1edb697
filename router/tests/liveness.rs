//! Next-hop liveness against a real kernel: `h` - `b` - `p`, where `b`
//! holds a bridge joining the veths of `h` and `p`. When `p` takes its
//! interface down (a silent node), `h`'s link keeps its carrier, and only
//! the prober's echo requests can tell. Needs root (fails, never skips).

use std::fs::File;
use std::net::Ipv6Addr;
use std::sync::mpsc::Receiver;
use std::thread;
use std::time::{Duration, Instant};

mod common;

use common::{run, wait_dad, Netns};
use router::neigh::{Liveness, LivenessEvent, ProbeConfig, Prober};

const H_ADDR: &str = "2001:db8:4f::1/64";
const P_ADDR: &str = "2001:db8:4f::2";

/// Namespaces `h`, `b` (bridge `br0`), `p`; `h0` - `bh` and `p0` - `bp`
/// veths, `bh`/`bp` bridge ports. Deleted on drop.
struct Lab {
    h: String,
    b: String,
    p: String,
    _ns: Netns,
}

impl Lab {
    fn new() -> Lab {
        let ns = Netns::new(&["fxlH", "fxlB", "fxlP"]);
        let [h, b, p] = [0, 1, 2].map(|i| ns.names()[i].clone());
        let lab = Lab { h, b, p, _ns: ns };
        for ns in [&lab.h, &lab.b, &lab.p] {
            run(&["ip", "-n", ns, "link", "set", "lo", "up"]);
        }
        run(&[
            "ip", "link", "add", "h0", "netns", &lab.h, "type", "veth", "peer", "name", "bh",
            "netns", &lab.b,
        ]);
        run(&[
            "ip", "link", "add", "p0", "netns", &lab.p, "type", "veth", "peer", "name", "bp",
            "netns", &lab.b,
        ]);
        run(&[
            "ip",
            "-n",
            &lab.b,
            "link",
            "add",
            "br0",
            "type",
            "bridge",
            "stp_state",
            "0",
            "forward_delay",
            "0",
            "mcast_snooping",
            "0",
        ]);
        for port in ["bh", "bp"] {
            run(&["ip", "-n", &lab.b, "link", "set", port, "master", "br0"]);
            run(&["ip", "-n", &lab.b, "link", "set", port, "up"]);
        }
        run(&["ip", "-n", &lab.b, "link", "set", "br0", "up"]);
        // Keep the global addresses across link down (the default
        // removes them, and `p` would no longer answer after up).
        for (ns, dev) in [(&lab.h, "h0"), (&lab.p, "p0")] {
            let key = format!("net.ipv6.conf.{dev}.keep_addr_on_down=1");
            run(&["ip", "netns", "exec", ns, "sysctl", "-qw", &key]);
        }
        run(&[
            "ip", "-n", &lab.h, "addr", "add", H_ADDR, "dev", "h0", "nodad",
        ]);
        let p = format!("{P_ADDR}/64");
        run(&["ip", "-n", &lab.p, "addr", "add", &p, "dev", "p0", "nodad"]);
        for (ns, dev) in [(&lab.h, "h0"), (&lab.p, "p0")] {
            run(&["ip", "-n", ns, "link", "set", dev, "up"]);
        }
        wait_dad(&[(&lab.h, "h0"), (&lab.p, "p0")]);
        lab
    }

    fn h0_has_carrier(&self) -> bool {
        run(&[
            "ip",
            "netns",
            "exec",
            &self.h,
            "cat",
            "/sys/class/net/h0/carrier",
        ])
        .trim()
            == "1"
    }
}

/// Waits for `want` on `key`, or panics after `within`; returns the time.
fn wait_for(
    events: &Receiver<LivenessEvent>,
    key: (Ipv6Addr, u32),
    want: Liveness,
    within: Duration,
) -> Duration {
    let t0 = Instant::now();
    let mut seen = Vec::new();
    loop {
        let left = within.saturating_sub(t0.elapsed());
        match events.recv_timeout(left) {
            Ok((k, l)) if k == key && l == want => return t0.elapsed(),
            Ok(e) => seen.push(e),
            Err(_) => panic!("no {want:?} for {key:?} within {within:?}; saw {seen:?}"),
        }
    }
}

#[test]
fn silent_node_behind_a_bridge_goes_down_within_a_second() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "tests/liveness.rs needs root (network namespaces, veth, bridge)"
    );
    let started = Instant::now();
    let lab = Lab::new();
    // sysfs shows the mount namespace's view: read it through `ip netns exec`.
    let ifindex: u32 = run(&[
        "ip",
        "netns",
        "exec",
        &lab.h,
        "cat",
        "/sys/class/net/h0/ifindex",
    ])
    .trim()
    .parse()
    .expect("h0 ifindex");
    let h = lab.h.clone();
    let (prober, events, key) = thread::spawn(move || {
        let file = File::open(format!("/run/netns/{h}")).expect("open netns");
        nix::sched::setns(file, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
        let key = (P_ADDR.parse::<Ipv6Addr>().unwrap(), ifindex);
        // Sockets open in this thread's namespace; the prober's own
        // thread keeps them, so this thread may end.
        let (prober, events) = Prober::start(ProbeConfig::default(), &[key]).expect("start");
        (prober, events, key)
    })
    .join()
    .expect("setup thread");

    let t = wait_for(&events, key, Liveness::Up, Duration::from_secs(2));
    eprintln!("up after {t:?}");

    run(&["ip", "-n", &lab.p, "link", "set", "dev", "p0", "down"]);
    let t = wait_for(&events, key, Liveness::Down, Duration::from_secs(1));
    eprintln!("down {t:?} after p0 went down");
    assert!(lab.h0_has_carrier(), "h0 must keep its carrier");

    run(&["ip", "-n", &lab.p, "link", "set", "dev", "p0", "up"]);
    let t = wait_for(&events, key, Liveness::Up, Duration::from_secs(3));
    eprintln!("up again {t:?} after p0 came back");

    drop(prober);
    drop(lab);
    eprintln!("the whole test took {:?}", started.elapsed());
}

/// A next hop added to the prober before its interface exists (its
/// socket cannot open yet) is probed once the interface appears, and
/// not called down meanwhile. The prober used to log once and drop the
/// hop for good: never probed, never down, whatever it did.
#[test]
fn a_hop_whose_socket_cannot_open_yet_is_probed_once_it_can() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "tests/liveness.rs needs root (network namespaces, veth)"
    );
    let ns = Netns::new(&["fxlQ", "fxlR"]);
    let [h, p] = [0, 1].map(|i| ns.names()[i].clone());
    const IFINDEX: u32 = 4242;
    let hh = h.clone();
    let (prober, events, key) = thread::spawn(move || {
        let file = File::open(format!("/run/netns/{hh}")).expect("open netns");
        nix::sched::setns(file, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
        let key = (P_ADDR.parse::<Ipv6Addr>().unwrap(), IFINDEX);
        let (prober, events) = Prober::start(ProbeConfig::default(), &[]).expect("start");
        prober.add(key);
        (prober, events, key)
    })
    .join()
    .expect("setup thread");
    // Half a second without an interface: no verdict at all.
    assert!(
        events.recv_timeout(Duration::from_millis(500)).is_err(),
        "a verdict on a hop that cannot be probed"
    );
    let index = IFINDEX.to_string();
    run(&[
        "ip", "-n", &h, "link", "add", "h0", "index", &index, "type", "veth", "peer", "name", "p0",
        "netns", &p,
    ]);
    for ns in [&h, &p] {
        run(&["ip", "-n", ns, "link", "set", "lo", "up"]);
    }
    run(&["ip", "-n", &h, "addr", "add", H_ADDR, "dev", "h0", "nodad"]);
    let pa = format!("{P_ADDR}/64");
    run(&["ip", "-n", &p, "addr", "add", &pa, "dev", "p0", "nodad"]);
    for (ns, dev) in [(&h, "h0"), (&p, "p0")] {
        run(&["ip", "-n", ns, "link", "set", dev, "up"]);
    }
    wait_dad(&[(&h, "h0"), (&p, "p0")]);
    let t = wait_for(&events, key, Liveness::Up, Duration::from_secs(3));
    eprintln!("up {t:?} after the interface appeared");
    drop(prober);
}
