//! The `flatedge` daemon end to end, in network namespaces (run as root):
//!
//! ```text
//!                                          ┌ rs1 2001:db8:1::1 ── s10 2001:db8:1::2          s1 ┐
//!  c: c0 2001:db8:c::2 ── rc 2001:db8:c::1 ┤ r ── rs2 2001:db8:2::1 ── s20 2001:db8:2::2       s2 ├ 2001:db8:ff::1 (lo)
//!                                          └ rb  2001:db8:3::1 ── [bridge in br] ── s30 2001:db8:3::2 s3 ┘
//! ```
//!
//! `flatedge --config` runs in `r` (kernel forwarding off) with the four
//! r-side veths as its interfaces and one static route: the service
//! `2001:db8:ff::1/128` via the three sinks. Everything else it learns by
//! itself: connected routes from the interfaces' addresses, the
//! neighbours' MACs from the kernel, hosts on connected subnets by glean.
//! Counters are read through the ctl socket (the `ctl` client, and once
//! the real `flatedgectl` binary). Checked:
//!
//! - `daemon_forwards_and_answers`: ping, UDP and TCP through the router;
//!   Time Exceeded, Packet Too Big (with the egress MTU) and Destination
//!   Unreachable reach the client (ping prints them only when the kernel
//!   accepted their checksums); ping and a TCP connection to the BGP port
//!   of the router's own address reach r's kernel while the dataplane
//!   runs; malformed frames are counted drops; the ctl answers.
//! - `daemon_ecmp_failover`: 60 UDP flows spread over the three sinks,
//!   each on one; s2's link losing carrier moves only its flows, within
//!   1 s; s3 going silent behind the bridge (its interface down in its
//!   namespace: carrier never drops on r's side) does the same through
//!   the prober; when both come back, every flow returns to its first sink.
//!
//! Fails (never skips) when not root or when a tool is missing: install
//! them with scripts/setup.sh.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{Ipv6Addr, SocketAddrV6, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

mod common;

use common::{in_ns, inject, ns, ns_try, run, udp_frame, udp_sink, wait_dad, Netns};
use ctl::{NextHopState, Request, Response};

const SERVICE: &str = "2001:db8:ff::1";
const CLIENT: &str = "2001:db8:c::2";
const R_CLIENT_SIDE: &str = "2001:db8:c::1";
const UDP_PORT: u16 = 9999;
const TCP_PORT: u16 = 8080;
/// The egress MTU flatedge enforces towards s1 (its link's is 1500).
const S1_MTU: u32 = 1400;
/// The Prometheus endpoint, on the router's address facing the client.
const METRICS_PORT: u16 = 9100;

/// The namespaces of one run, deleted (with their veths) on drop, and the
/// daemon, stopped on drop.
struct Lab {
    c: String,
    r: String,
    br: String,
    s: [String; 3],
    dir: PathBuf,
    daemon: Option<Child>,
    /// Dropped after the daemon is stopped (`Drop` below).
    _ns: Netns,
}

impl Lab {
    fn new(tag: &str) -> Lab {
        let p = |x: &str| format!("{x}{tag}");
        let ns = Netns::new(&[
            &p("dc"),
            &p("dr"),
            &p("db"),
            &p("ds1"),
            &p("ds2"),
            &p("ds3"),
        ]);
        let n = |i: usize| ns.names()[i].clone();
        let lab = Lab {
            c: n(0),
            r: n(1),
            br: n(2),
            s: [n(3), n(4), n(5)],
            dir: std::env::temp_dir().join(format!("flatedge-test-{}", n(1))),
            daemon: None,
            _ns: ns,
        };
        std::fs::create_dir_all(&lab.dir).unwrap();
        lab.setup();
        lab
    }

    fn veth(&self, a_ns: &str, a: &str, b_ns: &str, b: &str) {
        run(&[
            "ip", "link", "add", a, "netns", a_ns, "type", "veth", "peer", "name", b, "netns", b_ns,
        ]);
    }

    fn setup(&self) {
        let (c, r, br) = (self.c.as_str(), self.r.as_str(), self.br.as_str());
        // Two queues between client and router: the client spreads its
        // flows over both TX queues, which pick the RX queue on rc, so
        // the daemon must serve every queue of an interface.
        let two = ["numtxqueues", "2", "numrxqueues", "2"];
        let mut cmd = vec!["ip", "link", "add", "c0", "netns", c];
        cmd.extend(two);
        cmd.extend(["type", "veth", "peer", "name", "rc", "netns", r]);
        cmd.extend(two);
        run(&cmd);
        self.veth(&self.s[0], "s10", r, "rs1");
        self.veth(&self.s[1], "s20", r, "rs2");
        self.veth(r, "rb", br, "b0");
        self.veth(&self.s[2], "s30", br, "b3");
        ns(br, &["ip", "link", "add", "br0", "type", "bridge"]);
        for dev in ["b0", "b3"] {
            ns(br, &["ip", "link", "set", dev, "master", "br0"]);
            ns(br, &["ip", "link", "set", dev, "up"]);
        }
        ns(br, &["ip", "link", "set", "br0", "up"]);
        let addrs = [
            (c, "c0", format!("{CLIENT}/64")),
            (r, "rc", format!("{R_CLIENT_SIDE}/64")),
            (r, "rs1", "2001:db8:1::1/64".into()),
            (r, "rs2", "2001:db8:2::1/64".into()),
            (r, "rb", "2001:db8:3::1/64".into()),
            (&self.s[0], "s10", "2001:db8:1::2/64".into()),
            (&self.s[1], "s20", "2001:db8:2::2/64".into()),
            (&self.s[2], "s30", "2001:db8:3::2/64".into()),
        ];
        for (n, dev, addr) in &addrs {
            ns(n, &["ip", "addr", "add", addr, "dev", dev]);
            ns(n, &["ip", "link", "set", dev, "up"]);
            ns(n, &["ip", "link", "set", "lo", "up"]);
        }
        // Kernel forwarding off in r: transit packets can only cross via AF_XDP.
        ns(r, &["sysctl", "-qw", "net.ipv6.conf.all.forwarding=0"]);
        // Senders hand veth unfinished checksums otherwise (DESIGN.md section 3).
        ns(c, &["ethtool", "-K", "c0", "tx", "off"]);
        ns(
            c,
            &["ip", "-6", "route", "add", "default", "via", R_CLIENT_SIDE],
        );
        for (k, s) in self.s.iter().enumerate() {
            let i = k + 1;
            let dev = format!("s{i}0");
            ns(s, &["ethtool", "-K", &dev, "tx", "off"]);
            // The failover test sets the sinks' links down and up again:
            // keep their addresses (and so their routes) meanwhile.
            let keep = format!("net.ipv6.conf.{dev}.keep_addr_on_down=1");
            ns(s, &["sysctl", "-qw", &keep]);
            ns(
                s,
                &["ip", "addr", "add", &format!("{SERVICE}/128"), "dev", "lo"],
            );
            let gw = format!("2001:db8:{i}::1");
            ns(s, &["ip", "-6", "route", "add", "default", "via", &gw]);
        }
        wait_dad(&[
            (c, "c0"),
            (r, "rc"),
            (r, "rs1"),
            (r, "rs2"),
            (r, "rb"),
            (&self.s[0], "s10"),
            (&self.s[1], "s20"),
            (&self.s[2], "s30"),
        ]);
    }

    fn socket(&self) -> PathBuf {
        self.dir.join("ctl.sock")
    }

    /// Writes the config and starts `flatedge` in r; returns once its ctl
    /// socket answers.
    fn start_daemon(&mut self) {
        let config = format!(
            r#"
[router]
asn = 65000
router-id = "192.0.2.1"
[ctl]
socket = "{socket}"
[[interface]]
name = "rc"
[[interface]]
name = "rs1"
mtu = {S1_MTU}
[[interface]]
name = "rs2"
[[interface]]
name = "rb"
[[route]]
prefix = "{SERVICE}/128"
via = ["2001:db8:1::2", "2001:db8:2::2", "2001:db8:3::2"]
[[route]]
prefix = "::/0"
via = ["2001:db8:1::2"]
[bgp]
aggregates = ["2001:db8:dead::/48"]
[icmp]
rate = 1000
burst = 100
[metrics]
listen = "[{R_CLIENT_SIDE}]:{METRICS_PORT}"
"#,
            socket = self.socket().display()
        );
        let path = self.dir.join("flatedge.toml");
        std::fs::write(&path, config).unwrap();
        let log = std::fs::File::create(self.dir.join("flatedge.log")).unwrap();
        let child = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.r,
                env!("CARGO_BIN_EXE_flatedge"),
                "--config",
            ])
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("cannot start flatedge");
        self.daemon = Some(child);
        let t0 = Instant::now();
        loop {
            if ctl::request(
                &self.socket(),
                &Request::ShowInterfaces,
                Duration::from_secs(2),
            )
            .is_ok()
            {
                break;
            }
            if let Some(status) = self.daemon.as_mut().unwrap().try_wait().unwrap() {
                panic!("flatedge exited ({status}) at start:\n{}", self.log());
            }
            assert!(
                t0.elapsed() < Duration::from_secs(20),
                "flatedge's ctl socket never answered:\n{}",
                self.log()
            );
            thread::sleep(Duration::from_millis(50));
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("flatedge.log")).unwrap_or_default()
    }

    fn ctl(&self, req: Request) -> Response {
        match ctl::request(&self.socket(), &req, Duration::from_secs(5)) {
            Ok(r) => r,
            Err(e) => panic!("ctl {req:?}: {e}\n{}", self.log()),
        }
    }

    fn drops(&self) -> HashMap<String, u64> {
        match self.ctl(Request::ShowDrops) {
            Response::Drops(d) => d.drops.into_iter().collect(),
            other => panic!("show drops: {other:?}"),
        }
    }

    fn neighbor_states(&self) -> HashMap<Ipv6Addr, NextHopState> {
        match self.ctl(Request::ShowNeighbors) {
            Response::Neighbors(n) => n.neighbors.iter().map(|n| (n.address, n.state)).collect(),
            other => panic!("show neighbors: {other:?}"),
        }
    }

    /// Waits (up to 10 s) until the three sinks are up as next hops.
    fn wait_sinks_up(&self) {
        self.poll_until(Duration::from_secs(10), || {
            let st = self.neighbor_states();
            let up = (1..=3).all(|i| {
                st.get(&format!("2001:db8:{i}::2").parse().unwrap()) == Some(&NextHopState::Up)
            });
            if up {
                Ok(())
            } else {
                Err(format!("the sinks never came up as next hops: {st:?}"))
            }
        });
    }

    /// Runs `check` every 100 ms until it is done (`Ok`), for at most
    /// `within`; else panics with its last word and the daemon's log.
    /// Returns the time it took.
    fn poll_until(
        &self,
        within: Duration,
        mut check: impl FnMut() -> Result<(), String>,
    ) -> Duration {
        let t0 = Instant::now();
        loop {
            match check() {
                Ok(()) => return t0.elapsed(),
                Err(why) => assert!(t0.elapsed() < within, "{why}\n{}", self.log()),
            }
            thread::sleep(Duration::from_millis(100));
        }
    }

    /// Stops the daemon with SIGTERM; returns its exit status and log.
    fn stop_daemon(&mut self) -> (bool, String) {
        let Some(mut child) = self.daemon.take() else {
            return (false, String::new());
        };
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let t0 = Instant::now();
        let ok = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s.success();
            }
            if t0.elapsed() > Duration::from_secs(10) {
                let _ = child.kill();
                let _ = child.wait();
                break false;
            }
            thread::sleep(Duration::from_millis(50));
        };
        (ok, self.log())
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if let Some(mut child) = self.daemon.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Runs the sinks' receivers while `send_flows` runs; returns flow (source
/// port) -> sink index (0..3), checking that each flow reached one sink
/// with all its datagrams and that all 60 arrived.
fn flows_once(lab: &Lab, phase: &str) -> HashMap<u16, usize> {
    let stop = Arc::new(AtomicBool::new(false));
    let (ready_tx, ready_rx) = mpsc::channel();
    let at = SocketAddrV6::new(SERVICE.parse().unwrap(), UDP_PORT, 0, 0);
    let sinks: Vec<_> = lab
        .s
        .iter()
        .map(|s| udp_sink(s, at, stop.clone(), ready_tx.clone()))
        .collect();
    for _ in 0..3 {
        ready_rx
            .recv_timeout(Duration::from_secs(5))
            .expect("a sink receiver did not start");
    }
    let to = SocketAddrV6::new(SERVICE.parse().unwrap(), UDP_PORT, 0, 0);
    let delivered = || -> u64 {
        lab.s
            .iter()
            .map(|s| common::snmp6(s, "Udp6InDatagrams"))
            .sum()
    };
    let before = delivered();
    common::send_udp_flows(&lab.c, CLIENT.parse().unwrap(), to, 60, 3)
        .expect("sending the flows failed");
    // Until the sinks' kernels delivered all 180 (a lost one shows in
    // the checks below, after 3 s).
    let t0 = Instant::now();
    while delivered() < before + 180 && t0.elapsed() < Duration::from_secs(3) {
        thread::sleep(Duration::from_millis(20));
    }
    stop.store(true, Ordering::Relaxed);
    let per_sink: Vec<HashMap<u16, u32>> = sinks
        .into_iter()
        .map(|h| h.join().expect("sink panicked").expect("sink failed"))
        .collect();
    let mut at = HashMap::new();
    for (k, f) in per_sink.iter().enumerate() {
        for (&port, &n) in f {
            assert!(
                at.insert(port, k).is_none(),
                "{phase}: flow {port} reached two sinks: {per_sink:?}"
            );
            assert_eq!(
                n,
                3,
                "{phase}: flow {port} lost datagrams on sink {}\n{}{:?}\n{:?}",
                k + 1,
                lab.log(),
                lab.drops()
                    .into_iter()
                    .filter(|d| d.1 > 0)
                    .collect::<Vec<_>>(),
                lab.ctl(Request::ShowInterfaces)
            );
        }
    }
    assert_eq!(
        at.len(),
        60,
        "{phase}: not every flow arrived: {per_sink:?}"
    );
    at
}

/// TCP echo servers on the service address in every sink, until `stop`.
fn tcp_echo(lab: &Lab, stop: &Arc<AtomicBool>) -> Vec<JoinHandle<Result<u32, String>>> {
    let (ready_tx, ready_rx) = mpsc::channel();
    let v = lab
        .s
        .iter()
        .map(|s| {
            let (stop, ready) = (stop.clone(), ready_tx.clone());
            in_ns(s, move || {
                let l =
                    TcpListener::bind(SocketAddrV6::new(SERVICE.parse().unwrap(), TCP_PORT, 0, 0))
                        .map_err(|e| format!("bind: {e}"))?;
                l.set_nonblocking(true).map_err(|e| e.to_string())?;
                let _ = ready.send(());
                let mut served = 0;
                while !stop.load(Ordering::Relaxed) {
                    match l.accept() {
                        Ok((mut conn, _)) => {
                            conn.set_nonblocking(false).map_err(|e| e.to_string())?;
                            conn.set_read_timeout(Some(Duration::from_secs(5)))
                                .map_err(|e| e.to_string())?;
                            let mut buf = vec![0u8; 64 * 1024];
                            loop {
                                match conn.read(&mut buf) {
                                    Ok(0) | Err(_) => break,
                                    Ok(n) => {
                                        if conn.write_all(&buf[..n]).is_err() {
                                            break;
                                        }
                                    }
                                }
                            }
                            served += 1;
                        }
                        Err(_) => thread::sleep(Duration::from_millis(10)),
                    }
                }
                Ok(served)
            })
        })
        .collect();
    for _ in 0..3 {
        ready_rx
            .recv_timeout(Duration::from_secs(5))
            .expect("a TCP server did not start");
    }
    v
}

/// Connects from the client to `addr`:`port`, sends `len` bytes and reads
/// them back.
fn tcp_roundtrip(c_ns: &str, addr: &str, port: u16, len: usize) -> Result<(), String> {
    let to = SocketAddrV6::new(addr.parse().unwrap(), port, 0, 0);
    in_ns(c_ns, move || {
        let mut s = TcpStream::connect_timeout(&to.into(), Duration::from_secs(5))
            .map_err(|e| format!("connect {to}: {e}"))?;
        s.set_read_timeout(Some(Duration::from_secs(5)))
            .map_err(|e| e.to_string())?;
        let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        s.write_all(&data).map_err(|e| format!("write: {e}"))?;
        let mut back = vec![0u8; len];
        s.read_exact(&mut back).map_err(|e| format!("read: {e}"))?;
        if back != data {
            return Err("echoed bytes differ".into());
        }
        Ok(())
    })
    .join()
    .expect("tcp client panicked")
}

/// A ping from the client: (succeeded, output).
fn ping(lab: &Lab, args: &[&str]) -> (bool, String) {
    let mut v = vec!["ping", "-6"];
    v.extend_from_slice(args);
    ns_try(&lab.c, &v)
}

/// The `flatedgectl` binary next to this test's (cargo builds every
/// workspace binary before running tests).
fn flatedgectl() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(Path::parent).unwrap();
    let p = dir.join("flatedgectl");
    assert!(
        p.exists(),
        "{} is missing: build the workspace (cargo build --workspace)",
        p.display()
    );
    p
}

#[test]
fn daemon_forwards_and_answers() {
    common::require_root_and_tools("tests/daemon.rs");
    let mut lab = Lab::new("f");
    // Control: r's kernel does not forward.
    assert!(
        !ping(&lab, &["-c", "1", "-W", "1", SERVICE]).0,
        "the client reaches the service through r's kernel: the test would prove nothing"
    );
    // RPS on rc towards every CPU (the workers' among them): the daemon
    // says so at start. Cleared right after, so the test runs as before.
    let cpus = thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(32);
    let all = format!("{:x}", (1u64 << cpus) - 1);
    let rps = "/sys/class/net/rc/queues/rx-0/rps_cpus";
    ns(&lab.r, &["sh", "-c", &format!("echo {all} > {rps}")]);
    lab.start_daemon();
    ns(&lab.r, &["sh", "-c", &format!("echo 0 > {rps}")]);
    assert!(
        lab.log()
            .contains("rc rx-0: RPS steers receive work to CPU"),
        "no warning about RPS on a worker core:\n{}",
        lab.log()
    );
    lab.wait_sinks_up();

    // Ping through the router: the reply to the client needs its host
    // route, which the first packets glean (a few may be lost).
    let p = ping(&lab, &["-c", "5", "-i", "0.2", "-w", "8", SERVICE]);
    assert!(p.0, "ping through flatedge failed: {}\n{}", p.1, lab.log());

    // UDP: 60 flows, each on one sink, all sinks used.
    let flows = flows_once(&lab, "udp");
    for k in 0..3 {
        assert!(
            flows.values().any(|&s| s == k),
            "sink {} got no flow: {flows:?}",
            k + 1
        );
    }

    // TCP: a few connections (different source ports) with 200 kB each.
    let stop = Arc::new(AtomicBool::new(false));
    let servers = tcp_echo(&lab, &stop);
    for _ in 0..4 {
        tcp_roundtrip(&lab.c, SERVICE, TCP_PORT, 200_000).expect("TCP through flatedge failed");
    }
    stop.store(true, Ordering::Relaxed);
    let served: u32 = servers
        .into_iter()
        .map(|h| {
            h.join()
                .expect("tcp server panicked")
                .expect("tcp server failed")
        })
        .sum();
    assert_eq!(served, 4, "the sinks served {served} of 4 connections");

    // Time Exceeded from the router's address facing the client.
    let te = ping(&lab, &["-c", "1", "-t", "1", "-W", "2", SERVICE]);
    assert!(
        te.1.contains("Time exceeded") && te.1.contains(R_CLIENT_SIDE),
        "no Time Exceeded from {R_CLIENT_SIDE}: {}",
        te.1
    );
    // Packet Too Big with the configured egress MTU towards s1: s1's own
    // address is a host on a connected subnet (gleaned by the first ping).
    let warm = ping(&lab, &["-c", "5", "-i", "0.2", "-w", "8", "2001:db8:1::2"]);
    assert!(warm.0, "ping to s1's address failed: {}", warm.1);
    let big = ping(
        &lab,
        &[
            "-c",
            "1",
            "-W",
            "2",
            "-M",
            "do",
            "-s",
            "1420",
            "2001:db8:1::2",
        ],
    );
    assert!(
        big.1.contains(&format!("mtu={S1_MTU}")),
        "no Packet Too Big with mtu={S1_MTU}: {}",
        big.1
    );
    // Destination Unreachable: 2001:db8:dead::/48 is an aggregate (routed
    // nowhere here), which wins over the default route via s1.
    let unreach = ping(&lab, &["-c", "1", "-W", "2", "2001:db8:dead::1"]);
    assert!(
        unreach.1.contains("Destination unreachable") && unreach.1.contains(R_CLIENT_SIDE),
        "no Destination Unreachable: {}",
        unreach.1
    );

    // A host on a connected subnet that does not exist: glean installs a
    // host route, the kernel fails to resolve it, and the route and the
    // kernel's neighbour entry go again (a scan must not pile them up).
    let ghost = "2001:db8:1::99";
    let _ = ping(&lab, &["-c", "1", "-W", "1", ghost]);
    let mut saw_host = false;
    lab.poll_until(Duration::from_secs(15), || {
        let f = match lab.ctl(Request::ShowFib {
            address: ghost.parse().unwrap(),
        }) {
            Response::Fib(f) => f,
            other => panic!("show fib: {other:?}"),
        };
        let prefix = f.prefix.map(|p| p.to_string());
        let entry = run(&["ip", "-n", &lab.r, "-6", "neigh", "show", ghost]);
        if prefix.as_deref() == Some(&format!("{ghost}/128")) {
            saw_host = true;
        } else if saw_host && entry.trim().is_empty() {
            assert_eq!(prefix.as_deref(), Some("2001:db8:1::/64"));
            return Ok(());
        }
        Err(format!(
            "the unresolvable host's route or neighbour entry stayed (host route seen: {saw_host}): {prefix:?} {entry}"
        ))
    });

    // The router's own address: ping and the BGP port reach r's kernel.
    let own = ping(&lab, &["-c", "2", "-i", "0.2", "-w", "4", R_CLIENT_SIDE]);
    assert!(own.0, "ping to the router itself failed: {}", own.1);
    // So is an address added at run time on an interface flatedge does
    // not manage (a loopback for BGP, a management address), once the
    // next address sync (every second) has seen it.
    run(&[
        "ip",
        "-n",
        &lab.r,
        "addr",
        "add",
        "2001:db8:ee::1/128",
        "dev",
        "lo",
    ]);
    let lo = ping(&lab, &["-c", "4", "-i", "0.5", "-w", "6", "2001:db8:ee::1"]);
    assert!(
        lo.0,
        "ping to an address added to r's lo at run time failed: {}\n{}",
        lo.1,
        lab.log()
    );
    let (bound_tx, bound) = std::sync::mpsc::channel();
    let bgp = in_ns(&lab.r, move || {
        let l = TcpListener::bind(SocketAddrV6::new(R_CLIENT_SIDE.parse().unwrap(), 179, 0, 0))
            .map_err(|e| format!("bind 179: {e}"))?;
        let _ = bound_tx.send(());
        l.set_nonblocking(true).map_err(|e| e.to_string())?;
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(5) {
            if let Ok((mut c, _)) = l.accept() {
                c.set_nonblocking(false).map_err(|e| e.to_string())?;
                let mut b = [0u8; 5];
                c.read_exact(&mut b).map_err(|e| e.to_string())?;
                c.write_all(&b).map_err(|e| e.to_string())?;
                return Ok(());
            }
            thread::sleep(Duration::from_millis(10));
        }
        Err("nobody connected to port 179".into())
    });
    // Connect once it listens (a failed bind shows in the join below).
    let _ = bound.recv_timeout(Duration::from_secs(5));
    let bgp_client = tcp_roundtrip(&lab.c, R_CLIENT_SIDE, 179, 5);
    assert_eq!(bgp.join().expect("listener panicked"), Ok(()));
    assert_eq!(bgp_client, Ok(()), "TCP to the router's port 179 failed");

    // Malformed frames: 3 with a payload length that lies, 2 with version 4,
    // each counted once under its reason; and one cut inside its IPv6
    // header, which never reaches the workers (the XDP program passes what
    // it cannot parse to the kernel, which counts it: Ip6InHdrErrors).
    let hdr_errors = common::snmp6(&lab.r, "Ip6InHdrErrors");
    let before = lab.drops();
    let r_mac = mac_of(&lab.r, "rc");
    let c_mac = mac_of(&lab.c, "c0");
    let frame = |version, len| {
        udp_frame(
            r_mac,
            c_mac,
            CLIENT.parse().unwrap(),
            SERVICE.parse().unwrap(),
            version,
            len,
        )
    };
    let mut bad = vec![frame(0x60, 1000); 3];
    bad.extend(vec![frame(0x40, 8); 2]);
    let mut cut = frame(0x60, 8);
    cut.truncate(14 + 26);
    bad.push(cut);
    assert_eq!(
        inject(&lab.c, "c0", bad),
        Ok(6),
        "injecting the malformed frames failed"
    );
    let after = poll_drops(&lab, |d| {
        grew(&before, d, "payload_length_exceeds_frame") >= 3
            && grew(&before, d, "bad_version") >= 2
    })
    .unwrap_or_else(|| {
        panic!(
            "the malformed frames were not all counted: {:?}",
            lab.drops()
        )
    });
    assert_eq!(
        (
            grew(&before, &after, "payload_length_exceeds_frame"),
            grew(&before, &after, "bad_version"),
            grew(&before, &after, "truncated_ipv6"),
        ),
        (3, 2, 0),
        "each malformed frame counted once, under its reason"
    );
    assert_eq!(
        common::snmp6(&lab.r, "Ip6InHdrErrors") - hdr_errors,
        1,
        "the kernel did not count the frame cut inside its IPv6 header"
    );
    // Still forwarding.
    let p = ping(&lab, &["-c", "2", "-i", "0.2", "-w", "4", SERVICE]);
    assert!(p.0, "ping after the malformed frames failed: {}", p.1);

    // The ctl: what the router knows.
    match lab.ctl(Request::ShowFib {
        address: SERVICE.parse().unwrap(),
    }) {
        Response::Fib(f) => {
            assert_eq!(
                f.prefix.map(|p| p.to_string()),
                Some(format!("{SERVICE}/128"))
            );
            assert_eq!(f.nexthops.len(), 3, "{f:?}");
            assert!(f
                .nexthops
                .iter()
                .all(|n| n.state == NextHopState::Up && n.mac.is_some()));
        }
        other => panic!("show fib: {other:?}"),
    }
    match lab.ctl(Request::ShowFib {
        address: "2001:db8:dead::1".parse().unwrap(),
    }) {
        Response::Fib(f) => {
            assert_eq!(
                f.prefix.map(|p| p.to_string()).as_deref(),
                Some("2001:db8:dead::/48")
            );
            assert!(f.nexthops.is_empty(), "{f:?}");
        }
        other => panic!("show fib: {other:?}"),
    }
    match lab.ctl(Request::ShowFib {
        address: "2001:db8:beef::1".parse().unwrap(),
    }) {
        Response::Fib(f) => assert_eq!(f.prefix.map(|p| p.to_string()).as_deref(), Some("::/0")),
        other => panic!("show fib: {other:?}"),
    }
    match lab.ctl(Request::ShowInterfaces) {
        Response::Interfaces(i) => {
            let names: Vec<&str> = i.interfaces.iter().map(|i| i.name.as_str()).collect();
            assert_eq!(names, ["rc", "rs1", "rs2", "rb"]);
            let rc = &i.interfaces[0];
            assert!(
                rc.carrier && rc.rx_packets >= 180 && rc.rx_bytes > rc.rx_packets * 60,
                "{rc:?}"
            );
            assert!(rc.drops >= 5, "{rc:?}");
            // The transmit side's counters are reported (nothing dropped
            // on a link that stayed up).
            assert_eq!((rc.tx_drops, rc.tx_link_down), (Some(0), Some(0)), "{rc:?}");
            assert_eq!(i.interfaces[1].mtu, S1_MTU);
        }
        other => panic!("show interfaces: {other:?}"),
    }
    match lab.ctl(Request::ShowRuntime) {
        Response::Runtime(r) => {
            assert!(r.packets > 0 && r.busy_ns_per_packet > 0.0, "{r:?}");
            let lookup = r.stages.iter().find(|s| s.name == "ip6_lookup").unwrap();
            assert!(lookup.packets > 0 && lookup.ns_per_packet > 0.0, "{r:?}");
            let batches = r.batches.unwrap_or(0);
            assert!(batches > 0 && batches <= r.packets, "{r:?}");
            let c = r.coalescing.as_ref().expect("coalescing in show runtime");
            assert_eq!(
                (c.rx_usecs, c.rx_frames),
                (
                    router::config::DEFAULT_RX_USECS,
                    router::config::DEFAULT_RX_FRAMES
                ),
                "the configured coalescing: {r:?}"
            );
        }
        other => panic!("show runtime: {other:?}"),
    }
    match lab.ctl(Request::ShowFibSummary) {
        // Two static routes, an aggregate, 4 connected subnets, and the
        // gleaned hosts.
        Response::FibSummary(s) => assert!(s.routes >= 7 && s.memory_bytes > 0, "{s:?}"),
        other => panic!("show fib summary: {other:?}"),
    }
    // The Prometheus endpoint, fetched from the client.
    let metrics = http_get(&lab.c, "/metrics");
    assert!(metrics.starts_with("HTTP/1.1 200 OK"), "{metrics}");
    let bad_version = metrics
        .lines()
        .find_map(|l| l.strip_prefix("flatedge_drops_total{reason=\"bad_version\"} "))
        .and_then(|v| v.parse::<u64>().ok());
    assert!(
        bad_version >= Some(2),
        "bad_version drops not in the metrics:\n{metrics}"
    );
    assert!(
        metrics.contains("flatedge_nexthop_up{address=\"2001:db8:1::2\",interface=\"rs1\"} 1"),
        "{metrics}"
    );
    for family in ["tx_drops", "tx_link_down"] {
        let sample = format!("\nflatedge_interface_{family}_total{{interface=\"rc\"}} 0\n");
        assert!(
            metrics.contains(&sample),
            "no {sample:?} in the metrics:\n{metrics}"
        );
    }
    let batches = metrics
        .lines()
        .find_map(|l| l.strip_prefix("flatedge_rx_batches_total "))
        .and_then(|v| v.parse::<u64>().ok());
    assert!(
        batches > Some(0),
        "no rx batches in the metrics:\n{metrics}"
    );
    assert!(
        metrics.contains("\nflatedge_rx_batches_waited_total "),
        "{metrics}"
    );
    assert!(http_get(&lab.c, "/").starts_with("HTTP/1.1 404"));

    // The client is a gleaned host (a route of its own, on a connected
    // subnet): the prober leaves it alone, unlike the static next hops.
    match lab.ctl(Request::ShowFib {
        address: CLIENT.parse().unwrap(),
    }) {
        Response::Fib(f) => assert_eq!(
            f.prefix.map(|p| p.to_string()),
            Some(format!("{CLIENT}/128")),
            "{f:?}"
        ),
        other => panic!("show fib {CLIENT}: {other:?}"),
    }
    let echos = |ns: &str| common::snmp6(ns, "Icmp6InEchos");
    let (c0, s0) = (echos(&lab.c), echos(&lab.s[0]));
    thread::sleep(Duration::from_secs(2));
    let (c1, s1) = (echos(&lab.c), echos(&lab.s[0]));
    assert!(s1 - s0 >= 5, "the prober stopped probing s1: {s0} -> {s1}");
    assert_eq!(c1, c0, "the gleaned client got echo requests (probes)");

    // A frame sent to another host's MAC (as a switch floods it) is
    // dropped, not forwarded: the client's entry for the router names a
    // MAC the router does not have...
    let moved = "02:00:00:00:0c:99";
    let to_router = [
        "ip",
        "-6",
        "neigh",
        "replace",
        R_CLIENT_SIDE,
        "lladdr",
        moved,
    ];
    ns(
        &lab.c,
        &[&to_router[..], &["dev", "c0", "nud", "permanent"]].concat(),
    );
    let before = lab.drops();
    let lost = ping(&lab, &["-c", "2", "-i", "0.2", "-W", "1", SERVICE]);
    assert!(!lost.0, "forwarded frames sent to another MAC: {}", lost.1);
    poll_drops(&lab, |d| grew(&before, d, "other_host") >= 2)
        .unwrap_or_else(|| panic!("other_host not counted: {:?}", lab.drops()));
    // ... until the router's interface takes that MAC, which the daemon
    // follows.
    ns(
        &lab.r,
        &["ip", "link", "set", "dev", "rc", "address", moved],
    );
    let back = ping(&lab, &["-c", "3", "-i", "0.2", "-w", "8", SERVICE]);
    assert!(back.0, "no forwarding after rc's MAC changed: {}", back.1);

    // The source of ICMPv6 errors follows the interface's addresses (the
    // workers kept the one of the start): rc renumbered, Time Exceeded
    // comes from its new address. (The client's entry for the router is
    // permanent, above, so it still reaches rc.)
    let renumbered = "2001:db8:c::99";
    let add = format!("{renumbered}/64");
    ns(&lab.r, &["ip", "addr", "add", &add, "dev", "rc", "nodad"]);
    let del = format!("{R_CLIENT_SIDE}/64");
    ns(&lab.r, &["ip", "addr", "del", &del, "dev", "rc"]);
    // The daemon reads the addresses every second.
    let mut te = (false, String::new());
    for _ in 0..10 {
        te = ping(&lab, &["-c", "1", "-t", "1", "-W", "1", SERVICE]);
        if te.1.contains("Time exceeded") && te.1.contains(renumbered) {
            break;
        }
        thread::sleep(Duration::from_millis(300));
    }
    assert!(
        te.1.contains("Time exceeded") && te.1.contains(renumbered),
        "no Time Exceeded from rc's new address {renumbered}: {}",
        te.1
    );

    // The real CLI, human output.
    let out = Command::new(flatedgectl())
        .arg("--socket")
        .arg(lab.socket())
        .args(["show", "fib", SERVICE])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "flatedgectl failed: {out:?}");
    assert!(
        text.contains(&format!("{SERVICE}/128")) && text.contains("2001:db8:2::2"),
        "flatedgectl show fib: {text}"
    );

    let (clean, log) = lab.stop_daemon();
    assert!(clean, "flatedge did not stop cleanly on SIGTERM:\n{log}");
    // Detached: no XDP program left on r's interfaces.
    let links = run(&["ip", "-n", &lab.r, "link", "show"]);
    assert!(
        !links.contains("xdp"),
        "XDP program left attached:\n{links}"
    );
}

#[test]
fn daemon_ecmp_failover() {
    common::require_root_and_tools("tests/daemon.rs");
    let mut lab = Lab::new("e");
    lab.start_daemon();
    lab.wait_sinks_up();
    // Glean the client's host route first (the sinks' answers need it).
    let p = ping(&lab, &["-c", "5", "-i", "0.2", "-w", "8", SERVICE]);
    assert!(p.0, "ping through flatedge failed: {}\n{}", p.1, lab.log());

    let first = flows_once(&lab, "all up");
    for k in 0..3 {
        assert!(
            first.values().any(|&s| s == k),
            "sink {} got no flow: {first:?}",
            k + 1
        );
    }

    // s2's link goes down: r's rs2 loses carrier.
    ns(&lab.s[1], &["ip", "link", "set", "s20", "down"]);
    thread::sleep(Duration::from_secs(1));
    let after_link = flows_once(&lab, "s2 link down");
    for (port, &k) in &after_link {
        assert_ne!(
            k, 1,
            "flow {port} still reached s2 1 s after its link went down"
        );
        if first[port] != 1 {
            assert_eq!(k, first[port], "flow {port} moved though its sink is alive");
        }
    }

    // s2 comes back: its flows return to it.
    ns(&lab.s[1], &["ip", "link", "set", "s20", "up"]);
    wait_dad(&[(&lab.s[1], "s20")]);
    lab.wait_sinks_up();
    let base = flows_once(&lab, "s2 back");
    assert_eq!(base, first, "flows did not return to s2");

    // s3 goes silent behind the bridge, with s1 and s2 up: no carrier
    // change on r's side, only the prober can tell. Only s3's flows move.
    ns(&lab.s[2], &["ip", "link", "set", "s30", "down"]);
    thread::sleep(Duration::from_secs(1));
    let rb = run(&["ip", "-n", &lab.r, "link", "show", "rb"]);
    assert!(
        !rb.contains("NO-CARRIER"),
        "rb lost carrier: the test would prove nothing: {rb}"
    );
    let after_silent = flows_once(&lab, "s3 silent");
    for (port, &k) in &after_silent {
        assert_ne!(
            k, 2,
            "flow {port} still reached s3 1 s after it went silent"
        );
        if base[port] != 2 {
            assert_eq!(k, base[port], "flow {port} moved though its sink is alive");
        }
    }
    let st = lab.neighbor_states();
    let s3: Ipv6Addr = "2001:db8:3::2".parse().unwrap();
    assert_eq!(st.get(&s3), Some(&NextHopState::Down), "{st:?}");

    // s3 comes back: every flow returns to its first sink.
    ns(&lab.s[2], &["ip", "link", "set", "s30", "up"]);
    wait_dad(&[(&lab.s[2], "s30")]);
    lab.wait_sinks_up();
    let back = flows_once(&lab, "all back");
    assert_eq!(back, first, "flows did not return to their first sinks");
    let (clean, log) = lab.stop_daemon();
    assert!(clean, "flatedge did not stop cleanly on SIGTERM:\n{log}");
}

/// A sink replaced by one with another MAC (the same address; Linux
/// announces nothing by default): the prober finds it silent at its old
/// MAC and the daemon has the kernel resolve it afresh, so it is up again
/// at its new MAC within seconds, not when the kernel's reachable time
/// and probes run out (20-50 s), and its flows go back to it.
#[test]
fn a_next_hop_that_changes_its_mac_is_relearned() {
    common::require_root_and_tools("tests/daemon.rs");
    let mut lab = Lab::new("m");
    lab.start_daemon();
    lab.wait_sinks_up();
    let p = ping(&lab, &["-c", "5", "-i", "0.2", "-w", "8", SERVICE]);
    assert!(p.0, "ping through flatedge failed: {}\n{}", p.1, lab.log());
    let first = flows_once(&lab, "all up");
    let s3: Ipv6Addr = "2001:db8:3::2".parse().unwrap();
    let new_mac = "02:00:00:00:33:33";
    ns(&lab.s[2], &["ip", "link", "set", "s30", "address", new_mac]);
    let mut went_down = false;
    let took = lab.poll_until(Duration::from_secs(8), || {
        let n = match lab.ctl(Request::ShowNeighbors) {
            Response::Neighbors(n) => n.neighbors.into_iter().find(|n| n.address == s3),
            other => panic!("show neighbors: {other:?}"),
        };
        let n = n.expect("s3 is no longer a next hop");
        went_down |= n.state == NextHopState::Down;
        if went_down
            && n.state == NextHopState::Up
            && n.mac.map(|m| m.to_string()).as_deref() == Some(new_mac)
        {
            Ok(())
        } else {
            Err(format!(
                "s3 not up at its new MAC 8 s after the change (down seen: {went_down}): {n:?}"
            ))
        }
    });
    eprintln!("up at the new MAC after {took:?}");
    let back = flows_once(&lab, "s3 at its new MAC");
    assert_eq!(back, first, "flows did not return to their first sinks");
    let (clean, log) = lab.stop_daemon();
    assert!(clean, "flatedge did not stop cleanly on SIGTERM:\n{log}");
}

/// A static route's next hop whose subnet moves to another interface (the
/// router's address and the node move from rs1's link to rs2's) follows
/// it: the next hop was bound to its port at install and stayed on rs1,
/// unresolvable, even across reloads of the same file.
#[test]
fn a_static_next_hop_follows_its_subnet_to_another_interface() {
    common::require_root_and_tools("tests/daemon.rs");
    let mut lab = Lab::new("v");
    lab.start_daemon();
    lab.wait_sinks_up();
    let s1: Ipv6Addr = "2001:db8:1::2".parse().unwrap();
    ns(
        &lab.r,
        &["ip", "addr", "del", "2001:db8:1::1/64", "dev", "rs1"],
    );
    ns(
        &lab.s[0],
        &["ip", "addr", "del", "2001:db8:1::2/64", "dev", "s10"],
    );
    ns(
        &lab.r,
        &[
            "ip",
            "addr",
            "add",
            "2001:db8:1::1/64",
            "dev",
            "rs2",
            "nodad",
        ],
    );
    ns(
        &lab.s[1],
        &[
            "ip",
            "addr",
            "add",
            "2001:db8:1::2/64",
            "dev",
            "s20",
            "nodad",
        ],
    );
    let took = lab.poll_until(Duration::from_secs(8), || {
        let hop = match lab.ctl(Request::ShowFib {
            address: SERVICE.parse().unwrap(),
        }) {
            Response::Fib(f) => f.nexthops.into_iter().find(|n| n.address == s1),
            other => panic!("show fib: {other:?}"),
        };
        let hop = hop.expect("2001:db8:1::2 is no longer a member of the service's group");
        if hop.interface == "rs2" && hop.state == NextHopState::Up {
            Ok(())
        } else {
            Err(format!(
                "the next hop did not follow its subnet to rs2 within 8 s: {hop:?}"
            ))
        }
    });
    eprintln!("on rs2 and up after {took:?}");
    assert!(
        lab.log().contains("static route") && lab.log().contains("subnet moved"),
        "{}",
        lab.log()
    );
    let (clean, log) = lab.stop_daemon();
    assert!(clean, "flatedge did not stop cleanly on SIGTERM:\n{log}");
}

/// `GET path` on the metrics endpoint from namespace `ns`: the whole
/// response.
fn http_get(ns: &str, path: &str) -> String {
    let req = format!("GET {path} HTTP/1.1\r\nHost: router\r\n\r\n");
    in_ns(ns, move || {
        let at = SocketAddrV6::new(R_CLIENT_SIDE.parse().unwrap(), METRICS_PORT, 0, 0);
        let mut s = TcpStream::connect_timeout(&at.into(), Duration::from_secs(5))
            .map_err(|e| format!("connect {at}: {e}"))?;
        s.set_read_timeout(Some(Duration::from_secs(5)))
            .map_err(|e| e.to_string())?;
        s.write_all(req.as_bytes()).map_err(|e| e.to_string())?;
        let mut out = String::new();
        s.read_to_string(&mut out).map_err(|e| e.to_string())?;
        Ok(out)
    })
    .join()
    .expect("http client panicked")
    .expect("metrics request failed")
}

fn mac_of(ns: &str, dev: &str) -> [u8; 6] {
    let text = run(&["ip", "-n", ns, "-br", "link", "show", dev]);
    let mac = text
        .split_whitespace()
        .nth(2)
        .unwrap_or_else(|| panic!("no MAC in {text:?}"));
    let mut out = [0u8; 6];
    for (o, p) in out.iter_mut().zip(mac.split(':')) {
        *o = u8::from_str_radix(p, 16).unwrap();
    }
    out
}

fn grew(before: &HashMap<String, u64>, now: &HashMap<String, u64>, k: &str) -> u64 {
    now.get(k).copied().unwrap_or(0) - before.get(k).copied().unwrap_or(0)
}

/// Polls `show drops` (the workers publish every 100 ms) for up to 2 s
/// until `ok` holds.
fn poll_drops(
    lab: &Lab,
    ok: impl Fn(&HashMap<String, u64>) -> bool,
) -> Option<HashMap<String, u64>> {
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(2) {
        let d = lab.drops();
        if ok(&d) {
            return Some(d);
        }
        thread::sleep(Duration::from_millis(100));
    }
    None
}

/// A restarted daemon (SIGTERM, then started again at once, as a service
/// manager does) takes its interfaces back and forwards again.
#[test]
fn daemon_restarts_on_its_interfaces() {
    common::require_root_and_tools("tests/daemon.rs");
    let mut lab = Lab::new("x");
    lab.start_daemon();
    lab.wait_sinks_up();
    let p = ping(&lab, &["-c", "3", "-i", "0.2", "-w", "8", SERVICE]);
    assert!(p.0, "ping through flatedge failed: {}\n{}", p.1, lab.log());
    let first = flows_once(&lab, "first run");
    // A second flatedge on the same config (started by hand beside the
    // service) fails and leaves the running one's interfaces alone.
    let second = Command::new("ip")
        .args(["netns", "exec", &lab.r, env!("CARGO_BIN_EXE_flatedge")])
        .arg("--config")
        .arg(lab.dir.join("flatedge.toml"))
        .output()
        .expect("cannot start a second flatedge");
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(
        !second.status.success() && err.contains("in use by another flatedge"),
        "the second flatedge: {second:?}"
    );
    let p = ping(&lab, &["-c", "3", "-i", "0.2", "-w", "8", SERVICE]);
    assert!(p.0, "no forwarding after the second flatedge: {}", p.1);
    // Under load: a flood through the router while it stops and restarts.
    let mut flood = Command::new("ip")
        .args([
            "netns", "exec", &lab.c, "ping", "-6", "-f", "-q", "-w", "6", SERVICE,
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("cannot start the flood ping");
    thread::sleep(Duration::from_secs(1));
    let (clean, log) = lab.stop_daemon();
    assert!(clean, "flatedge did not stop cleanly on SIGTERM:\n{log}");

    let t0 = Instant::now();
    lab.start_daemon();
    eprintln!("restarted in {:?}", t0.elapsed());
    let _ = flood.wait();
    lab.wait_sinks_up();
    let p = ping(&lab, &["-c", "3", "-i", "0.2", "-w", "8", SERVICE]);
    assert!(p.0, "ping after the restart failed: {}\n{}", p.1, lab.log());
    let again = flows_once(&lab, "after the restart");
    assert_eq!(again, first, "flows changed sinks across the restart");
    // An interface deleted and re-created under the same name: the
    // daemon says so (it is attached to the old ifindex), and still stops
    // cleanly.
    run(&["ip", "-n", &lab.r, "link", "del", "rs2"]);
    lab.veth(&lab.s[1], "s20", &lab.r, "rs2");
    lab.poll_until(Duration::from_secs(5), || {
        if lab.log().contains("rs2: re-created as ifindex") {
            Ok(())
        } else {
            Err("no word of rs2's re-creation".into())
        }
    });
    assert!(
        lab.log().contains("rs2: the interface was deleted"),
        "{}",
        lab.log()
    );
    // The managed neighbour entries it made (the kernel never ages them
    // out) go with it.
    let r = lab.r.clone();
    let managed = |when: &str| {
        let t = run(&["ip", "-n", &r, "-6", "neigh", "show"]);
        eprintln!("r's neighbours {when}:\n{t}");
        t.lines().filter(|l| l.contains("managed")).count()
    };
    assert!(
        managed("before the stop") > 0,
        "no managed entry to check: the test would prove nothing"
    );
    let (clean, log) = lab.stop_daemon();
    assert!(clean, "flatedge did not stop cleanly on SIGTERM:\n{log}");
    assert_eq!(
        managed("after the stop"),
        0,
        "flatedge left managed neighbour entries behind"
    );
}

/// An interface with more receive queues than the XDP program serves (64)
/// stops the daemon at start with what to do, rather than a bare range
/// error from the map.
#[test]
fn too_many_receive_queues_are_refused_with_a_hint() {
    common::require_root_and_tools("tests/daemon.rs");
    let netns = common::Netns::new(&["fq"]);
    let n = &netns.names()[0];
    ns(
        n,
        &[
            "ip",
            "link",
            "add",
            "mq0",
            "numrxqueues",
            "65",
            "numtxqueues",
            "65",
            "type",
            "veth",
            "peer",
            "name",
            "mq1",
        ],
    );
    ns(n, &["ip", "link", "set", "mq0", "up"]);
    let dir = std::env::temp_dir().join(format!("flatedge-mq-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("flatedge.toml");
    std::fs::write(
        &config,
        format!(
            "[router]\nasn = 65000\nrouter-id = \"192.0.2.1\"\n[ctl]\nsocket = \"{}\"\n\
             [[interface]]\nname = \"mq0\"\n",
            dir.join("ctl.sock").display()
        ),
    )
    .unwrap();
    let bin = flatedgectl().with_file_name("flatedge");
    let out = Command::new("timeout")
        .args(["30", "ip", "netns", "exec", n])
        .arg(&bin)
        .arg("--config")
        .arg(&config)
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "the daemon started: {stderr}");
    assert!(
        stderr.contains("mq0 has 65 receive queues")
            && stderr.contains("ethtool -L mq0 combined 64"),
        "{stderr}"
    );
}
