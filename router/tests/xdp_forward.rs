//! The worker loop ([`router::worker::Worker`]) forwarding in network
//! namespaces (run as root):
//!
//! ```text
//!                                        ┌ rs1 2001:db8:1::1 ── s10 2001:db8:1::2  s1 ┐
//!  c: c0 2001:db8:c::2 ── rc 2001:db8:c::1 ┤ r ── rs2 2001:db8:2::1 ── s20 2001:db8:2::2  s2 ├ 2001:db8:ff::1 (lo)
//!                                        └ rs3 2001:db8:3::1 ── s30 2001:db8:3::2  s3 ┘
//! ```
//!
//! In `r` (kernel forwarding off), flatedge's XDP program is on the four
//! r-side veths and a [`Worker`] runs four ports over one UMEM, with a FIB
//! holding `2001:db8:c::/64` via next hop 0 (the client) and the service
//! address `2001:db8:ff::1/128` via next hops 1..3 (the sinks, all three of
//! which have it on their loopback), and a static adjacency table. Checked:
//! ping through the worker, 60 UDP flows spread over all three sinks with
//! each flow on one sink, a Time Exceeded for hop limit 1 reaching the
//! client (ping only reports it when the kernel accepted its checksum),
//! and malformed frames injected from the client counted as drops.
//! A second test sends a burst with receive coalescing on: the worker
//! lets frames wait for fuller batches and still forwards every one, the
//! last partial batch included. A third takes a sink's link down with
//! frames queued for it: the worker still goes idle, and the frames reach
//! the sink once the link is back.
//!
//! Fails (never skips) when not root or when `ip`, `ping` or `ethtool` is
//! missing: install them with scripts/setup.sh.

use std::collections::HashMap;
use std::net::{Ipv6Addr, SocketAddrV6};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

mod common;

use common::{enter, inject, mac_str, ns, ns_try, run, spawn_ready, udp_frame, udp_sink, Netns};
use fib::{Fib, NextHop, Prefix};
use router::dataplane::ip6_input::mac_key;
use router::dataplane::{Adjacency, Counters, DropReason, IcmpKind, WorkerState};
use router::worker::{adjacency_table, Coalesce, LoopStats, ReportHandle, Worker};
use router::xdp::{self, FramePool, PoolConfig, Port, PortStats, XdpProgram};

const MAC_C0: [u8; 6] = [0x02, 0, 0, 0, 0x0c, 0x02];
const MAC_RC: [u8; 6] = [0x02, 0, 0, 0, 0x0c, 0x01];
/// A host on the client's segment other than the router.
const MAC_OTHER: [u8; 6] = [0x02, 0, 0, 0, 0x0c, 0x99];
const SERVICE: &str = "2001:db8:ff::1";
const CLIENT: &str = "2001:db8:c::2";
const UDP_PORT: u16 = 9999;

fn mac_rs(i: u8) -> [u8; 6] {
    [0x02, 0, 0, 0, i, 0x01]
}

fn mac_s(i: u8) -> [u8; 6] {
    [0x02, 0, 0, 0, i, 0x02]
}

/// The namespaces of one run, deleted (with their veths) on drop.
struct Lab {
    c: String,
    r: String,
    s: [String; 3],
    _ns: Netns,
}

impl Lab {
    fn new() -> Lab {
        let ns = Netns::new(&["fwc", "fwr", "fws1", "fws2", "fws3"]);
        let n = |i: usize| ns.names()[i].clone();
        let lab = Lab {
            c: n(0),
            r: n(1),
            s: [n(2), n(3), n(4)],
            _ns: ns,
        };
        lab.setup();
        lab
    }

    fn setup(&self) {
        let (c, r) = (self.c.as_str(), self.r.as_str());
        run(&[
            "ip", "link", "add", "c0", "netns", c, "type", "veth", "peer", "name", "rc", "netns", r,
        ]);
        let mut links = vec![
            (
                c.to_owned(),
                "c0".to_owned(),
                MAC_C0,
                format!("{CLIENT}/64"),
            ),
            (
                r.to_owned(),
                "rc".to_owned(),
                MAC_RC,
                "2001:db8:c::1/64".to_owned(),
            ),
        ];
        for (k, s) in self.s.iter().enumerate() {
            let i = k as u8 + 1;
            let (sink_if, r_if) = (format!("s{i}0"), format!("rs{i}"));
            run(&[
                "ip", "link", "add", &sink_if, "netns", s, "type", "veth", "peer", "name", &r_if,
                "netns", r,
            ]);
            links.push((r.to_owned(), r_if, mac_rs(i), format!("2001:db8:{i}::1/64")));
            links.push((s.clone(), sink_if, mac_s(i), format!("2001:db8:{i}::2/64")));
        }
        for (n, dev, mac, addr) in &links {
            ns(n, &["ip", "link", "set", dev, "address", &mac_str(*mac)]);
            ns(n, &["ip", "addr", "add", addr, "dev", dev, "nodad"]);
            ns(n, &["ip", "link", "set", dev, "up"]);
            ns(n, &["ip", "link", "set", "lo", "up"]);
        }
        // Kernel forwarding off in r: transit packets can only cross via AF_XDP.
        ns(r, &["sysctl", "-qw", "net.ipv6.conf.all.forwarding=0"]);
        // Senders hand veth unfinished checksums otherwise (DESIGN.md section 3).
        ns(c, &["ethtool", "-K", "c0", "tx", "off"]);
        ns(
            c,
            &[
                "ip",
                "-6",
                "route",
                "add",
                "2001:db8:ff::/64",
                "via",
                "2001:db8:c::1",
            ],
        );
        ns(
            c,
            &[
                "ip",
                "-6",
                "neigh",
                "replace",
                "2001:db8:c::1",
                "lladdr",
                &mac_str(MAC_RC),
                "dev",
                "c0",
                "nud",
                "permanent",
            ],
        );
        for (k, s) in self.s.iter().enumerate() {
            let i = k as u8 + 1;
            let dev = format!("s{i}0");
            let gw = format!("2001:db8:{i}::1");
            ns(s, &["ethtool", "-K", &dev, "tx", "off"]);
            ns(
                s,
                &["ip", "addr", "add", &format!("{SERVICE}/128"), "dev", "lo"],
            );
            ns(
                s,
                &["ip", "-6", "route", "add", "2001:db8:c::/64", "via", &gw],
            );
            ns(
                s,
                &[
                    "ip",
                    "-6",
                    "neigh",
                    "replace",
                    &gw,
                    "lladdr",
                    &mac_str(mac_rs(i)),
                    "dev",
                    &dev,
                    "nud",
                    "permanent",
                ],
            );
        }
    }
}

/// What the worker thread reports when it stops.
#[derive(Debug)]
struct Report {
    counters: Counters,
    stats: LoopStats,
    ports: Vec<PortStats>,
    free_frames: usize,
}

/// The daemon's default receive coalescing.
const DAEMON_COALESCE: Coalesce = Coalesce {
    usecs: router::config::DEFAULT_RX_USECS,
    frames: router::config::DEFAULT_RX_FRAMES,
};

const R_IFS: [&str; 4] = ["rc", "rs1", "rs2", "rs3"];

/// Sets up XDP, the ports and the worker in r, reports readiness on
/// `ready`, runs until `stop`.
fn worker_thread(
    r_ns: String,
    coalesce: Coalesce,
    report_to: mpsc::Sender<ReportHandle>,
    stop: Arc<AtomicBool>,
    ready: mpsc::Sender<Result<(), String>>,
) -> Option<Report> {
    let setup = || -> Result<(XdpProgram, Worker, Fib), String> {
        enter(&r_ns)?;
        let mut prog = XdpProgram::load().map_err(|e| e.to_string())?;
        let mut pool = FramePool::new(PoolConfig::default()).map_err(|e| e.to_string())?;
        let mut ports = Vec::new();
        for (slot, name) in R_IFS.into_iter().enumerate() {
            let slot = slot as u32;
            let ifindex = xdp::ifindex(name).map_err(|e| e.to_string())?;
            prog.attach(ifindex).map_err(|e| format!("{name}: {e}"))?;
            prog.set_port_slot(ifindex, slot)
                .map_err(|e| e.to_string())?;
            let port = Port::open(&mut pool, name, 0).map_err(|e| format!("{name}: {e}"))?;
            prog.insert_xsk(slot, 0, port.fd())
                .map_err(|e| e.to_string())?;
            ports.push(port);
        }
        let addrs: Vec<Ipv6Addr> = [
            "2001:db8:c::1",
            "2001:db8:1::1",
            "2001:db8:2::1",
            "2001:db8:3::1",
        ]
        .iter()
        .map(|a| a.parse().unwrap())
        .collect();
        for a in &addrs {
            prog.add_own_addr(*a).map_err(|e| e.to_string())?;
        }
        let mut fib = Fib::new();
        fib.insert(
            "2001:db8:c::/64".parse::<Prefix>().unwrap(),
            &[NextHop::new(0)],
        )
        .map_err(|e| e.to_string())?;
        fib.insert(
            format!("{SERVICE}/128").parse::<Prefix>().unwrap(),
            &[NextHop::new(1), NextHop::new(2), NextHop::new(3)],
        )
        .map_err(|e| e.to_string())?;
        fib.publish();
        let mut adj = vec![Adjacency {
            port: 0,
            src_mac: MAC_RC,
            dst_mac: MAC_C0,
            mtu: 1500,
            resolved: true,
            glean: false,
            unreachable: false,
        }];
        for i in 1..=3u8 {
            adj.push(Adjacency {
                port: u16::from(i),
                src_mac: mac_rs(i),
                dst_mac: mac_s(i),
                mtu: 1500,
                resolved: true,
                glean: false,
                unreachable: false,
            });
        }
        let state = WorkerState::new(1000, 100, 0x5eed, 0);
        let mut worker = Worker::new(
            pool,
            ports,
            addrs.into_iter().map(Some).collect(),
            fib.reader(),
            adjacency_table(adj),
            state,
            1024,
        )
        .map_err(|e| e.to_string())?;
        worker.set_coalesce(coalesce);
        // As the daemon does: frames to another unicast MAC are dropped.
        let macs = [MAC_RC, mac_rs(1), mac_rs(2), mac_rs(3)];
        for (m, mac) in worker.port_macs().iter().zip(macs) {
            m.store(mac_key(mac), Ordering::Relaxed);
        }
        let _ = report_to.send(worker.report_handle());
        Ok((prog, worker, fib))
    };
    let (prog, mut worker, fib) = match setup() {
        Ok(v) => {
            ready.send(Ok(())).unwrap();
            v
        }
        Err(e) => {
            ready.send(Err(e)).unwrap();
            return None;
        }
    };
    worker.run(&stop);
    let report = Report {
        counters: worker.state.counters.clone(),
        stats: worker.stats,
        ports: worker.ports().iter().map(|p| p.stats).collect(),
        free_frames: worker.free_frames(),
    };
    drop(worker);
    drop(prog); // detaches, in r
    drop(fib);
    Some(report)
}

/// A worker running in r (see [`start_worker`]).
struct Running {
    stop: Arc<AtomicBool>,
    /// Its thread, which returns the final report.
    thread: thread::JoinHandle<Option<Report>>,
    /// The counters it publishes while it runs.
    handle: ReportHandle,
}

impl Running {
    /// One figure of the counters it published last.
    fn read(&self, f: fn(&router::worker::WorkerReport) -> u64) -> u64 {
        f(&self.handle.lock().unwrap())
    }

    /// Stops the worker and returns its final report.
    fn stop(self) -> Report {
        self.stop.store(true, Ordering::Relaxed);
        self.thread
            .join()
            .expect("worker thread panicked")
            .expect("no report")
    }
}

/// A worker running in r with `coalesce`.
fn start_worker(lab: &Lab, coalesce: Coalesce) -> Running {
    let stop = Arc::new(AtomicBool::new(false));
    let (handle_tx, handle_rx) = mpsc::channel();
    let thread = {
        let (r, stop2) = (lab.r.clone(), stop.clone());
        spawn_ready("worker in r", &stop, move |ready| {
            worker_thread(r, coalesce, handle_tx, stop2, ready)
        })
    };
    let handle = handle_rx
        .recv_timeout(Duration::from_secs(5))
        .expect("no report handle from the worker");
    Running {
        stop,
        thread,
        handle,
    }
}

#[test]
fn worker_forwards_spreads_flows_and_answers_errors() {
    common::require_root_and_tools("tests/xdp_forward.rs");
    let started = Instant::now();
    let lab = Lab::new();

    // Control: r's kernel does not forward.
    let (control, _) = ns_try(&lab.c, &["ping", "-6", "-c", "1", "-W", "1", SERVICE]);
    assert!(
        !control,
        "the client reaches the service through r's kernel: the test would prove nothing"
    );

    let worker = start_worker(&lab, DAEMON_COALESCE);

    // Sinks' UDP receivers.
    let sink_stop = Arc::new(AtomicBool::new(false));
    let (sready_tx, sready_rx) = mpsc::channel();
    let sinks: Vec<_> = lab
        .s
        .iter()
        .map(|s| {
            let at = SocketAddrV6::new(SERVICE.parse().unwrap(), UDP_PORT, 0, 0);
            udp_sink(s, at, sink_stop.clone(), sready_tx.clone())
        })
        .collect();
    for _ in 0..3 {
        sready_rx
            .recv_timeout(Duration::from_secs(5))
            .expect("a sink receiver did not start");
    }

    // 1. ping through the worker (request to one sink, reply back to c).
    let ping = ns_try(
        &lab.c,
        &["ping", "-6", "-c", "3", "-i", "0.2", "-w", "5", SERVICE],
    );

    // 2. 60 UDP flows, 5 datagrams each, from distinct source ports.
    let to = SocketAddrV6::new(SERVICE.parse().unwrap(), UDP_PORT, 0, 0);
    let udp = common::send_udp_flows(&lab.c, CLIENT.parse().unwrap(), to, 60, 5);

    // 3. hop limit 1: the worker answers Time Exceeded from 2001:db8:c::1;
    // ping prints it only if the kernel accepted it (checksum included).
    let ttl = ns_try(
        &lab.c,
        &["ping", "-6", "-c", "1", "-t", "1", "-W", "2", SERVICE],
    );

    // 4. malformed frames: 3 with a payload length that lies, 2 with IP
    // version 4; and a valid one sent to another host's MAC (flooded).
    let (src, dst) = (CLIENT.parse().unwrap(), SERVICE.parse().unwrap());
    let frame = |version, len| udp_frame(MAC_RC, MAC_C0, src, dst, version, len);
    let mut bad = vec![frame(0x60, 1000); 3];
    bad.extend(vec![frame(0x40, 8); 2]);
    bad.push(udp_frame(MAC_OTHER, MAC_C0, src, dst, 0x60, 8));
    let injected = inject(&lab.c, "c0", bad);

    // 5. still forwarding after them.
    let ping_after = ns_try(
        &lab.c,
        &["ping", "-6", "-c", "2", "-i", "0.2", "-w", "5", SERVICE],
    );

    thread::sleep(Duration::from_millis(300));
    sink_stop.store(true, Ordering::Relaxed);
    let flows: Vec<HashMap<u16, u32>> = sinks
        .into_iter()
        .map(|h| h.join().expect("sink panicked").expect("sink failed"))
        .collect();
    let report = worker.stop();
    let elapsed = started.elapsed();
    eprintln!("worker: {:?}", report.stats);
    eprintln!("ports: {:?}", report.ports);
    eprintln!(
        "forwarded {} icmp_sent {:?} drops {:?} free frames {}",
        report.counters.forwarded,
        report.counters.icmp_sent,
        report
            .counters
            .drops
            .iter()
            .enumerate()
            .filter(|(_, n)| **n > 0)
            .map(|(i, n)| (DropReason::ALL[i].name(), *n))
            .collect::<Vec<_>>(),
        report.free_frames
    );
    eprintln!(
        "flows per sink: {:?}; elapsed {elapsed:?}",
        flows.iter().map(HashMap::len).collect::<Vec<_>>()
    );

    assert!(
        ping.0,
        "ping through the worker failed: {}\n{report:?}",
        ping.1
    );
    udp.expect("udp sender failed");
    // Every flow on exactly one sink, with all of its datagrams; all sinks used.
    let mut seen: HashMap<u16, usize> = HashMap::new();
    for (k, f) in flows.iter().enumerate() {
        for (&port, &n) in f {
            assert!(
                seen.insert(port, k).is_none(),
                "flow from port {port} reached two sinks: {flows:?}"
            );
            assert_eq!(
                n,
                5,
                "flow {port} lost datagrams on sink {}: {flows:?}",
                k + 1
            );
        }
    }
    assert_eq!(seen.len(), 60, "not every flow arrived: {flows:?}");
    for (k, f) in flows.iter().enumerate() {
        assert!(!f.is_empty(), "sink {} got no flow: {flows:?}", k + 1);
    }
    assert!(
        ttl.1.contains("Time exceeded") && ttl.1.contains("2001:db8:c::1"),
        "no Time Exceeded from 2001:db8:c::1 reached the client: {}",
        ttl.1
    );
    assert!(
        report.counters.icmp_sent[IcmpKind::TimeExceeded.index()] >= 1,
        "the worker counted no Time Exceeded"
    );
    assert_eq!(injected, Ok(6), "injecting the malformed frames failed");
    assert_eq!(
        report.counters.drops_of(DropReason::OtherHost),
        1,
        "the frame to another host's MAC not counted: {report:?}"
    );
    assert!(
        report
            .counters
            .drops_of(DropReason::PayloadLengthExceedsFrame)
            >= 3,
        "lying payload lengths not counted: {report:?}"
    );
    assert!(
        report.counters.drops_of(DropReason::BadVersion) >= 2,
        "wrong versions not counted: {report:?}"
    );
    // Each drop counted once on the port it arrived on, and nowhere else.
    let port_drops: u64 = report.ports.iter().map(|p| p.dropped).sum();
    let stage_drops: u64 = report.counters.drops.iter().sum();
    assert_eq!(
        port_drops, stage_drops,
        "ports and stages disagree on the drops: {report:?}"
    );
    assert!(
        ping_after.0,
        "ping after the malformed frames failed: {}",
        ping_after.1
    );
    assert!(
        report.counters.forwarded >= 2 * 3 + 300 + 2 * 2,
        "the worker forwarded too little: {report:?}"
    );
    drop(lab);
}

/// 60 UDP flows x 200 datagrams at about 180 kpps (bursts of 200 and
/// 1 ms pauses: over five times the 32 kpps at which 1 ms fills half a
/// batch of 64, and within what an unoptimised test build of the worker
/// keeps up with) with coalescing at 1 ms / 64 frames: the worker makes
/// frames wait (counted) and forwards every datagram it takes in, the tail
/// that never fills a batch included (it leaves when its wait runs out:
/// the worker stops 50 ms after the last datagram left); any it could not
/// take in is counted at its socket.
#[test]
fn worker_coalescing_waits_under_a_burst_and_forwards_every_frame() {
    common::require_root_and_tools("tests/xdp_forward.rs");
    let lab = Lab::new();
    let coalesce = Coalesce {
        usecs: 1000,
        frames: 64,
    };
    let worker = start_worker(&lab, coalesce);
    const FLOWS: u16 = 60;
    const ROUNDS: u32 = 200;
    let to = SocketAddrV6::new(SERVICE.parse().unwrap(), UDP_PORT, 0, 0);
    let started = Instant::now();
    let sent = common::send_udp_paced(&lab.c, CLIENT.parse().unwrap(), to, FLOWS, ROUNDS, 200);
    let send_time = started.elapsed();
    // The tail, which never fills a batch, leaves when its wait runs out:
    // wait (at most 3 s) until the worker's published counters show every
    // datagram in and out.
    let total = u64::from(FLOWS) * u64::from(ROUNDS);
    let deadline = Instant::now() + Duration::from_secs(3);
    while Instant::now() < deadline {
        let done = worker.handle.lock().is_ok_and(|r| {
            r.ports.len() == 4
                && r.ports[0].rx + r.ports[0].rx_ring_full + r.ports[0].rx_no_frame == total
                && r.ports[1..].iter().map(|p| p.tx).sum::<u64>() == r.ports[0].rx
        });
        if done {
            break;
        }
        thread::sleep(Duration::from_millis(10));
    }
    let report = worker.stop();
    eprintln!("burst sent in {send_time:?}; worker: {:?}", report.stats);
    sent.expect("udp sender failed");
    // Every datagram of the burst was taken in by the client's port or
    // dropped at its socket and counted there (a worker descheduled for
    // the few ms the rx ring holds at this rate: not what this tests);
    // the sinks' ports sent out every one taken in (what comes back, the
    // sinks' Port Unreachables, is on top).
    let rx = report.ports[0].rx;
    let at_socket = report.ports[0].rx_ring_full + report.ports[0].rx_no_frame;
    let to_sinks: u64 = report.ports[1..].iter().map(|p| p.tx).sum();
    assert_eq!(
        (rx + at_socket, to_sinks),
        (total, rx),
        "datagrams of the burst neither forwarded nor counted: {report:?}"
    );
    assert!(
        report.stats.waited_batches > 0,
        "coalescing never made frames wait ({total} datagrams in {send_time:?}): {report:?}"
    );
    assert!(
        report.stats.batches < rx / 4,
        "{} batches for {rx} frames: coalescing did not fill them: {report:?}",
        report.stats.batches
    );
    drop(lab);
}

/// The worker's idle waits (blocking `poll()`s) at the start and the end
/// of half a second, once they have started. It blocks after 2^20 empty
/// rounds (longer in a debug build): wait up to 5 s for the idle waits to
/// start (they never do if it keeps spinning). The worker publishes its
/// report every 100 ms.
fn idle_waits(handle: &ReportHandle) -> (u64, u64) {
    let read = || handle.lock().unwrap().stats.idle_sleeps;
    thread::sleep(Duration::from_millis(300));
    let start = read();
    let deadline = Instant::now() + Duration::from_secs(5);
    while read() == start && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(50));
    }
    let before = read();
    thread::sleep(Duration::from_millis(500));
    (before, read())
}

/// Frames forwarded to a port whose link is down wait in its tx ring
/// (the kernel refuses the kicks with `ENETDOWN`); once the traffic stops,
/// the worker must still go idle (block in `poll()`) rather than spin
/// for as long as the link stays down, and the frames must leave once
/// it is back up.
#[test]
fn worker_goes_idle_with_frames_waiting_for_a_down_link() {
    common::require_root_and_tools("tests/xdp_forward.rs");
    let lab = Lab::new();
    let worker = start_worker(&lab, Coalesce::OFF);
    let to = SocketAddrV6::new(SERVICE.parse().unwrap(), UDP_PORT, 0, 0);
    let sink_stop = Arc::new(AtomicBool::new(false));
    let (sready_tx, sready_rx) = mpsc::channel();
    let sink = udp_sink(&lab.s[0], to, sink_stop.clone(), sready_tx);
    sready_rx
        .recv_timeout(Duration::from_secs(5))
        .expect("the sink in s1 did not bind");
    ns(&lab.r, &["ip", "link", "set", "rs1", "down"]);
    // 60 flows over the three sinks: about 20 of them go to rs1 and wait
    // in its ring.
    common::send_udp_flows(&lab.c, CLIENT.parse().unwrap(), to, 60, 1).expect("udp sender");
    let (idle_before, idle_after) = idle_waits(&worker.handle);
    // The first frames may all have come in one batch, before any kick
    // found rs1 down: 60 more, now that it is known down.
    common::send_udp_flows(&lab.c, CLIENT.parse().unwrap(), to, 60, 1).expect("udp sender");
    thread::sleep(Duration::from_millis(300));
    let refused = worker.read(|r| r.ports[1].tx_link_down);
    let queued = worker.read(|r| r.ports[1].tx);
    // Back up: the next kick after an idle wait sends the frames.
    ns(&lab.r, &["ip", "link", "set", "rs1", "up"]);
    thread::sleep(Duration::from_secs(1));
    sink_stop.store(true, Ordering::Relaxed);
    let delivered: u32 = sink
        .join()
        .expect("sink panicked")
        .expect("sink failed")
        .values()
        .sum();
    let report = worker.stop();
    eprintln!(
        "rs1: {queued} frames queued, {refused} kicks refused; idle waits {idle_before} -> \
         {idle_after}; s1 received {delivered}; {:?}",
        report.stats
    );
    assert!(queued > 0, "no flow went to rs1: {report:?}");
    assert!(refused > 0, "no kick found rs1 down: {report:?}");
    // Once a kick has found rs1 down, what is routed there is dropped and
    // counted rather than held (the UMEM is shared with the other ports).
    let down = report.ports[1].tx_down_dropped;
    assert!(
        down > 0,
        "nothing routed to rs1 was dropped while it was down: {report:?}"
    );
    assert_eq!(
        report.counters.drops_of(DropReason::EgressDown),
        down,
        "egress_down disagrees with the port's count: {report:?}"
    );
    assert!(
        idle_after >= idle_before + 10,
        "the worker kept spinning with frames waiting for a down link: \
         {idle_before} -> {idle_after} idle waits in 500 ms: {report:?}"
    );
    assert_eq!(
        u64::from(delivered),
        queued,
        "s1 did not receive the datagrams that waited for rs1: {report:?}"
    );
    drop(lab);
}

/// An egress interface deleted while frames wait in its tx ring: the
/// kernel unbinds the socket, and kicks fail with `ENXIO`. The worker
/// writes those frames off, drops what is routed there afterwards, and
/// still goes idle, instead of kicking a dead socket every round.
#[test]
fn worker_writes_off_a_deleted_egress_interface_and_goes_idle() {
    common::require_root_and_tools("tests/xdp_forward.rs");
    let lab = Lab::new();
    let worker = start_worker(&lab, Coalesce::OFF);
    let to = SocketAddrV6::new(SERVICE.parse().unwrap(), UDP_PORT, 0, 0);
    ns(&lab.r, &["ip", "link", "set", "rs1", "down"]);
    common::send_udp_flows(&lab.c, CLIENT.parse().unwrap(), to, 60, 1).expect("udp sender");
    thread::sleep(Duration::from_millis(300));
    let queued = worker.read(|r| r.ports[1].tx);
    ns(&lab.r, &["ip", "link", "del", "rs1"]);
    // The worker kicks rs1 at least every idle wait (10 ms) while frames
    // are in flight: the next kick finds the socket unbound.
    thread::sleep(Duration::from_millis(200));
    common::send_udp_flows(&lab.c, CLIENT.parse().unwrap(), to, 60, 1).expect("udp sender");
    let (idle_before, idle_after) = idle_waits(&worker.handle);
    let report = worker.stop();
    eprintln!(
        "rs1: {queued} frames queued before it was deleted; idle waits {idle_before} -> \
         {idle_after}; {:?}",
        report.ports[1]
    );
    assert!(queued > 0, "no flow went to rs1: {report:?}");
    assert_eq!(
        report.ports[1].tx_lost, queued,
        "the frames waiting in rs1's ring were not written off: {report:?}"
    );
    assert!(
        report.ports[1].tx_down_dropped > 0,
        "nothing routed to the deleted rs1 was dropped: {report:?}"
    );
    assert!(
        idle_after >= idle_before + 10,
        "the worker kept kicking a deleted interface's socket: \
         {idle_before} -> {idle_after} idle waits in 500 ms: {report:?}"
    );
    // The other sinks are still served.
    assert!(
        report.ports[2].tx + report.ports[3].tx > 0,
        "nothing went to rs2 and rs3: {report:?}"
    );
    drop(lab);
}
