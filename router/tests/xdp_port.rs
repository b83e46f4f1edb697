//! The AF_XDP port layer in network namespaces (run as root):
//!
//! ```text
//!   a: a0 2001:db8:a::2 ──veth── ra 2001:db8:a::1 ┐ r ┌ rb 2001:db8:b::1 ──veth── b0 2001:db8:b::2 :b
//! ```
//!
//! In `r`, flatedge's XDP program is attached to `ra` and `rb`, a port is
//! opened on each (one shared UMEM), and a minimal forwarder thread sends
//! every frame received on one port out of the other, with the Ethernet
//! addresses rewritten (static MACs) and the hop limit decremented. Kernel
//! forwarding stays off in `r`, so `ping -6` from `a` to `b` succeeds only
//! through AF_XDP; `r`'s own addresses are in the own-address map, so pings
//! to them must be answered by r's kernel (passed by the XDP program), and
//! NDP between r's kernel and a must keep working. A flatedge program left
//! attached by a "killed" instance is replaced, and dropping the loader
//! detaches it.
//!
//! Fails (never skips) when not root or when `ip`, `ping` or `ethtool` is
//! missing: install them with scripts/setup.sh.

use std::fs::File;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

mod common;

use common::{mac_str, ns, ns_try, run, spawn_ready, Netns};
use router::xdp::{self, Frame, FramePool, Port, XdpProgram};

const MAC_A0: [u8; 6] = [0x02, 0, 0, 0, 0x0a, 0x02];
const MAC_RA: [u8; 6] = [0x02, 0, 0, 0, 0x0a, 0x01];
const MAC_RB: [u8; 6] = [0x02, 0, 0, 0, 0x0b, 0x01];
const MAC_B0: [u8; 6] = [0x02, 0, 0, 0, 0x0b, 0x02];

/// The namespaces of one run, deleted (with their veths) on drop.
struct Lab {
    a: String,
    r: String,
    b: String,
    _ns: Netns,
}

impl Lab {
    fn new() -> Lab {
        let netns = Netns::new(&["fxa", "fxr", "fxb"]);
        let [a, r, b] = [0, 1, 2].map(|i| netns.names()[i].clone());
        let lab = Lab {
            a,
            r,
            b,
            _ns: netns,
        };
        let (a, r, b) = (lab.a.as_str(), lab.r.as_str(), lab.b.as_str());
        run(&[
            "ip", "link", "add", "a0", "netns", a, "type", "veth", "peer", "name", "ra", "netns", r,
        ]);
        run(&[
            "ip", "link", "add", "b0", "netns", b, "type", "veth", "peer", "name", "rb", "netns", r,
        ]);
        for (n, dev, mac, addr) in [
            (a, "a0", MAC_A0, "2001:db8:a::2/64"),
            (r, "ra", MAC_RA, "2001:db8:a::1/64"),
            (r, "rb", MAC_RB, "2001:db8:b::1/64"),
            (b, "b0", MAC_B0, "2001:db8:b::2/64"),
        ] {
            ns(n, &["ip", "link", "set", dev, "address", &mac_str(mac)]);
            ns(n, &["ip", "addr", "add", addr, "dev", dev, "nodad"]);
            ns(n, &["ip", "link", "set", dev, "up"]);
            ns(n, &["ip", "link", "set", "lo", "up"]);
        }
        // Kernel forwarding off in r: transit packets can only cross via AF_XDP.
        ns(r, &["sysctl", "-qw", "net.ipv6.conf.all.forwarding=0"]);
        // Senders hand veth unfinished checksums otherwise (DESIGN.md section 3).
        ns(a, &["ethtool", "-K", "a0", "tx", "off"]);
        ns(b, &["ethtool", "-K", "b0", "tx", "off"]);
        ns(
            a,
            &[
                "ip",
                "-6",
                "route",
                "add",
                "2001:db8:b::/64",
                "via",
                "2001:db8:a::1",
            ],
        );
        ns(
            b,
            &[
                "ip",
                "-6",
                "route",
                "add",
                "2001:db8:a::/64",
                "via",
                "2001:db8:b::1",
            ],
        );
        ns(
            a,
            &[
                "ip",
                "-6",
                "neigh",
                "replace",
                "2001:db8:a::1",
                "lladdr",
                &mac_str(MAC_RA),
                "dev",
                "a0",
                "nud",
                "permanent",
            ],
        );
        ns(
            b,
            &[
                "ip",
                "-6",
                "neigh",
                "replace",
                "2001:db8:b::1",
                "lladdr",
                &mac_str(MAC_RB),
                "dev",
                "b0",
                "nud",
                "permanent",
            ],
        );
        lab
    }
}

/// What the forwarder thread reports when it stops.
#[derive(Debug, Default)]
struct Forwarded {
    frames: u64,
    dropped_hop_limit: u64,
    /// Whether the ports ran their rings on their own mapping.
    own_rings: [bool; 2],
}

/// Rewrites a frame for the egress side; false when it must be dropped.
fn rewrite(data: &mut [u8], src: [u8; 6], dst: [u8; 6]) -> bool {
    if data.len() < 14 + 40 || data[12..14] != [0x86, 0xdd] || data[14 + 7] <= 1 {
        return false;
    }
    data[0..6].copy_from_slice(&dst);
    data[6..12].copy_from_slice(&src);
    data[14 + 7] -= 1;
    true
}

/// The test's forwarder: runs in r until `stop`, and sends the setup result
/// (or error) on `ready` first.
fn forwarder(
    r_ns: String,
    own_rings: bool,
    stop: Arc<AtomicBool>,
    ready: mpsc::Sender<Result<(), String>>,
) -> Forwarded {
    let setup = || -> Result<(XdpProgram, FramePool, [Port; 2]), String> {
        let file = File::open(format!("/run/netns/{r_ns}"))
            .map_err(|e| format!("open netns {r_ns}: {e}"))?;
        nix::sched::setns(file, nix::sched::CloneFlags::CLONE_NEWNET)
            .map_err(|e| format!("setns {r_ns}: {e}"))?;
        // A program left attached to ra by a "killed" flatedge: its fds stay
        // open (leaked), so the kernel keeps it; the real one must replace it.
        let mut stale = XdpProgram::load().map_err(|e| e.to_string())?;
        stale
            .attach(xdp::ifindex("ra").map_err(|e| e.to_string())?)
            .map_err(|e| format!("stale: {e}"))?;
        stale.abandon();
        let mut prog = XdpProgram::load().map_err(|e| e.to_string())?;
        // Rings far smaller than the 1,000-packet flood: the fill rings
        // must be refilled again and again.
        let mut pool = common::small_pool(512, 64)?;
        let mut ports = Vec::new();
        for (slot, name) in ["ra", "rb"].into_iter().enumerate() {
            let slot = slot as u32;
            let ifindex = xdp::ifindex(name).map_err(|e| e.to_string())?;
            prog.attach(ifindex).map_err(|e| format!("{name}: {e}"))?;
            prog.set_port_slot(ifindex, slot)
                .map_err(|e| e.to_string())?;
            let port = Port::open_with(&mut pool, name, 0, own_rings)
                .map_err(|e| format!("{name}: {e}"))?;
            prog.insert_xsk(slot, 0, port.fd())
                .map_err(|e| e.to_string())?;
            ports.push(port);
        }
        for addr in ["2001:db8:a::1", "2001:db8:b::1"] {
            prog.add_own_addr(addr.parse().unwrap())
                .map_err(|e| e.to_string())?;
        }
        let ports: [Port; 2] = ports.try_into().map_err(|_| "two ports".to_owned())?;
        Ok((prog, pool, ports))
    };
    let (prog, mut pool, mut ports) = match setup() {
        Ok(v) => {
            ready.send(Ok(())).unwrap();
            v
        }
        Err(e) => {
            ready.send(Err(e)).unwrap();
            return Forwarded::default();
        }
    };
    // Egress rewrite per ingress port: (our MAC on the egress side, next hop's MAC).
    let egress = [(MAC_RB, MAC_B0), (MAC_RA, MAC_A0)];
    let mut stats = Forwarded {
        own_rings: [ports[0].own_rings(), ports[1].own_rings()],
        ..Forwarded::default()
    };
    let mut batch: Vec<Frame> = Vec::with_capacity(64);
    let mut pending: [Vec<Frame>; 2] = [Vec::with_capacity(1024), Vec::with_capacity(1024)];
    while !stop.load(Ordering::Relaxed) {
        let mut work = 0;
        for i in 0..2 {
            let out = 1 - i;
            for port in ports.iter_mut() {
                work += port.reclaim(&mut pool);
                port.refill(&mut pool);
            }
            work += ports[i].recv(&mut pool, &mut batch, 64);
            for mut frame in batch.drain(..) {
                let ok = rewrite(pool.data_mut(&mut frame), egress[i].0, egress[i].1);
                if ok {
                    stats.frames += 1;
                    pending[out].push(frame);
                } else {
                    stats.dropped_hop_limit += 1;
                    pool.free(frame);
                }
            }
            if !pending[out].is_empty() {
                ports[out].send(&mut pool, &mut pending[out]);
            }
        }
        if work == 0 {
            thread::sleep(Duration::from_micros(200));
        }
    }
    drop(ports);
    drop(prog); // detaches from ra and rb, in r
    stats
}

#[test]
fn xdp_ports_forward_transit_and_pass_own_traffic() {
    forward_transit_and_pass_own_traffic(true);
}

/// The same through xsk-rs's ring calls, which run the rings where the
/// kernel refuses to map a bound socket's rings (before Linux 6.4).
#[test]
fn xdp_ports_forward_through_xsk_rs_rings() {
    forward_transit_and_pass_own_traffic(false);
}

fn forward_transit_and_pass_own_traffic(own_rings: bool) {
    common::require_root_and_tools("tests/xdp_port.rs");
    let lab = Lab::new();

    // Control: r's kernel does not forward, so without flatedge a -> b fails.
    let (control, _) = ns_try(
        &lab.a,
        &["ping", "-6", "-c", "1", "-W", "1", "2001:db8:b::2"],
    );
    assert!(
        !control,
        "a reaches b through r's kernel: the test would prove nothing"
    );

    let stop = Arc::new(AtomicBool::new(false));
    let fwd = {
        let (r, stop2) = (lab.r.clone(), stop.clone());
        spawn_ready("forwarder in r", &stop, move |ready| {
            forwarder(r, own_rings, stop2, ready)
        })
    };

    let (attached_ok, links) = ns_try(&lab.r, &["ip", "link", "show", "ra"]);
    assert!(
        attached_ok && links.contains("xdp"),
        "no XDP program on ra: {links}"
    );

    // Transit: a -> b and back, through the AF_XDP forwarder only.
    let transit = ns_try(
        &lab.a,
        &[
            "ping",
            "-6",
            "-c",
            "5",
            "-i",
            "0.2",
            "-w",
            "10",
            "2001:db8:b::2",
        ],
    );
    // A flood of 1000 full-size echoes (one in flight at a time): every
    // one must come back, through refills, kicks and completions.
    let flood = ns_try(
        &lab.a,
        &[
            "ping",
            "-6",
            "-f",
            "-c",
            "1000",
            "-s",
            "1400",
            "-w",
            "30",
            "2001:db8:b::2",
        ],
    );
    // Own addresses (both of r's): answered by r's kernel, passed by XDP;
    // r resolves a's address with NDP, which XDP must pass too.
    let own_a = ns_try(
        &lab.a,
        &[
            "ping",
            "-6",
            "-c",
            "3",
            "-i",
            "0.2",
            "-w",
            "10",
            "2001:db8:a::1",
        ],
    );
    let own_b = ns_try(
        &lab.a,
        &[
            "ping",
            "-6",
            "-c",
            "3",
            "-i",
            "0.2",
            "-w",
            "10",
            "2001:db8:b::1",
        ],
    );

    stop.store(true, Ordering::Relaxed);
    let stats = fwd.join().expect("forwarder thread panicked");
    let (_, after) = ns_try(&lab.r, &["ip", "link", "show", "ra"]);
    eprintln!("forwarder: {stats:?}");

    assert!(
        transit.0,
        "ping a -> b through r failed: {}\nforwarder: {stats:?}",
        transit.1
    );
    assert!(
        flood.0,
        "flood ping a -> b lost packets: {}\nforwarder: {stats:?}",
        flood.1
    );
    // This kernel maps a bound socket's rings, so a port opened to run
    // its own does (the test would not cover them otherwise).
    assert_eq!(stats.own_rings, [own_rings; 2], "{stats:?}");
    assert!(own_a.0, "ping a -> r (2001:db8:a::1) failed: {}", own_a.1);
    assert!(own_b.0, "ping a -> r (2001:db8:b::1) failed: {}", own_b.1);
    // Every request and reply of both transit pings went through userspace.
    assert!(
        stats.frames >= 2 * (5 + 1000),
        "the forwarder saw too few frames: {stats:?}"
    );
    assert!(
        !after.contains("xdp"),
        "XDP program still attached after drop: {after}"
    );
    drop(lab);
}

/// One namespace with a veth pair t0 - t1, deleted on drop.
struct Pair {
    ns: String,
}

impl Pair {
    /// Runs `f` on a thread inside the pair's namespace.
    fn spawn<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> Result<T, String> + Send + 'static,
    ) -> thread::JoinHandle<Result<T, String>> {
        let ns = self.ns.clone();
        thread::spawn(move || {
            enter_ns(&ns)?;
            f()
        })
    }

    fn new() -> Pair {
        // A pair per test, also when tests share a process (cargo test).
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let pair = Pair {
            ns: format!(
                "fxt{}-{}",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            ),
        };
        run(&["ip", "netns", "add", &pair.ns]);
        run(&[
            "ip", "link", "add", "t0", "netns", &pair.ns, "type", "veth", "peer", "name", "t1",
            "netns", &pair.ns,
        ]);
        for dev in ["t0", "t1"] {
            ns(&pair.ns, &["ip", "link", "set", dev, "up"]);
        }
        pair
    }

    fn rx_packets(&self, dev: &str) -> u64 {
        let (ok, text) = ns_try(
            &self.ns,
            &[
                "cat",
                &format!("/sys/class/net/{dev}/statistics/rx_packets"),
            ],
        );
        assert!(ok, "cannot read {dev}'s counters: {text}");
        text.trim()
            .parse()
            .unwrap_or_else(|_| panic!("bad rx_packets {text:?}"))
    }
}

impl Drop for Pair {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.ns]).status();
    }
}

/// Moves the calling thread into network namespace `ns`.
fn enter_ns(ns: &str) -> Result<(), String> {
    let file = File::open(format!("/run/netns/{ns}")).map_err(|e| e.to_string())?;
    nix::sched::setns(file, nix::sched::CloneFlags::CLONE_NEWNET).map_err(|e| e.to_string())
}

/// A broadcast frame with the local experimental EtherType: t1's kernel
/// counts it and drops it.
fn broadcast_frame() -> Vec<u8> {
    let mut packet = vec![0u8; 60];
    packet[0..6].copy_from_slice(&[0xff; 6]);
    packet[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0, 0x01]);
    packet[12..14].copy_from_slice(&[0x88, 0xb5]);
    packet
}

/// `n` frames of [`broadcast_frame`] from `pool`.
fn broadcast_burst(pool: &mut FramePool, n: usize) -> Result<Vec<Frame>, String> {
    frame_burst(pool, &broadcast_frame(), n)
}

/// `n` frames of the pool holding `packet`.
fn frame_burst(pool: &mut FramePool, packet: &[u8], n: usize) -> Result<Vec<Frame>, String> {
    (0..n)
        .map(|_| {
            let mut frame = pool.alloc().ok_or("the pool ran out")?;
            assert!(pool.write(&mut frame, packet));
            Ok(frame)
        })
        .collect()
}

/// A UDP frame from t0's side to a transit destination (2001:db8:1::1).
fn transit_frame() -> Vec<u8> {
    common::udp_frame(
        [0x02, 0, 0, 0, 0, 0x01],
        [0x02, 0, 0, 0, 0, 0x02],
        "2001:db8::2".parse().unwrap(),
        "2001:db8:1::1".parse().unwrap(),
        0x60,
        8,
    )
}

/// What the sender thread of `tx_retries_when_the_ring_is_full` saw.
#[derive(Debug)]
struct Sent {
    sent: u64,
    tx_ring_full: u64,
    free_before: usize,
    free_after: usize,
}

#[test]
fn tx_retries_when_the_ring_is_full() {
    const TOTAL: u64 = 5000;
    common::require_root_and_tools("tests/xdp_port.rs");
    let pair = Pair::new();
    let before = pair.rx_packets("t1");
    let sender = pair.spawn(move || -> Result<Sent, String> {
        // Small rings: bursts of 128 against a tx ring of 64.
        let mut pool = common::small_pool(512, 64)?;
        let mut port = Port::open(&mut pool, "t0", 0).map_err(|e| e.to_string())?;
        let free_before = pool.free_frames();
        let packet = broadcast_frame();
        let mut pending: Vec<Frame> = Vec::with_capacity(128);
        let mut sent = 0u64;
        let deadline = Instant::now() + Duration::from_secs(20);
        while (sent < TOTAL || pool.free_frames() < free_before) && Instant::now() < deadline {
            port.reclaim(&mut pool);
            while pending.len() < 128 && sent + (pending.len() as u64) < TOTAL {
                let Some(mut frame) = pool.alloc() else { break };
                assert!(pool.write(&mut frame, &packet));
                pending.push(frame);
            }
            if pending.is_empty() {
                port.kick(); // let the kernel finish, then reclaim
            } else {
                sent += port.send(&mut pool, &mut pending) as u64;
            }
        }
        Ok(Sent {
            sent,
            tx_ring_full: port.stats.tx_ring_full,
            free_before,
            free_after: pool.free_frames(),
        })
    });
    let result = sender
        .join()
        .expect("sender thread panicked")
        .expect("sender setup failed");
    eprintln!("sender: {result:?}");
    assert_eq!(result.sent, TOTAL, "not every frame was queued: {result:?}");
    assert!(
        result.tx_ring_full > 0,
        "the tx ring never filled up, the retry path was not exercised: {result:?}"
    );
    assert_eq!(
        result.free_after, result.free_before,
        "completions did not return every frame: {result:?}"
    );
    let received = pair.rx_packets("t1") - before;
    assert!(
        received >= TOTAL,
        "t1 received {received} of {TOTAL} frames"
    );
}

/// A burst larger than one kick moves (copy mode: 32 frames a `sendto`):
/// `flush` kicks until every frame went out and came back, without a new
/// frame to send.
#[test]
fn flush_sends_the_tail_of_a_burst_larger_than_a_kick() {
    const BURST: usize = 100;
    common::require_root_and_tools("tests/xdp_port.rs");
    let pair = Pair::new();
    let before = pair.rx_packets("t1");
    let sender = pair.spawn(move || -> Result<(u64, usize, usize, usize), String> {
        let mut pool = common::small_pool(512, 128)?;
        let mut port = Port::open(&mut pool, "t0", 0).map_err(|e| e.to_string())?;
        let free_before = pool.free_frames();
        let mut burst = broadcast_burst(&mut pool, BURST)?;
        let queued = port.send(&mut pool, &mut burst);
        // The worker's rounds with nothing new to send: reclaim and flush.
        let deadline = Instant::now() + Duration::from_secs(5);
        while port.in_flight() > 0 && Instant::now() < deadline {
            port.reclaim(&mut pool);
            port.flush();
        }
        Ok((
            port.stats.tx_kicks,
            queued,
            port.in_flight(),
            free_before - pool.free_frames(),
        ))
    });
    let (kicks, queued, in_flight, missing) = sender
        .join()
        .expect("sender thread panicked")
        .expect("sender setup failed");
    eprintln!("kicks {kicks}, queued {queued}");
    assert_eq!(queued, BURST, "the tx ring took only {queued} frames");
    assert_eq!(in_flight, 0, "frames never completed after {kicks} kicks");
    assert!(
        kicks >= 4,
        "{kicks} kicks for {BURST} frames at 32 a kick at most"
    );
    assert_eq!(
        missing, 0,
        "frames did not come back from the completion ring"
    );
    let received = pair.rx_packets("t1") - before;
    assert!(
        received >= BURST as u64,
        "t1 received {received} of {BURST}"
    );
}

/// What the sender thread of `a_down_link_holds_kicks_back` saw.
#[derive(Debug)]
struct DownLink {
    kicks_while_down: u64,
    link_down: u64,
    flushes_while_down: u64,
    in_flight_after: usize,
    missing: usize,
}

/// Frames queued on a port whose link is down (`ENETDOWN`): the port
/// kicks once, then holds kicks back for 1 ms at a time instead of a
/// failed `sendto` per round, and the frames leave once the link is up.
/// A second flatedge started beside a running one (the same interface)
/// fails and leaves the first one's program attached, also once it has
/// given up; when the first one goes, the interface is free again.
#[test]
fn a_second_loader_does_not_take_a_held_interface() {
    common::require_root_and_tools("tests/xdp_port.rs");
    let pair = Pair::new();
    let t = pair.spawn(|| -> Result<(), String> {
        let t0 = xdp::ifindex("t0").map_err(|e| e.to_string())?;
        let mut first = XdpProgram::load().map_err(|e| e.to_string())?;
        first.attach(t0).map_err(|e| format!("first: {e}"))?;
        let id = attached_id("t0")?;
        assert!(id.is_some(), "nothing attached to t0");
        let mut second = XdpProgram::load().map_err(|e| e.to_string())?;
        match second.attach(t0) {
            Err(e @ xdp::XdpError::Busy { .. }) => {
                eprintln!("second loader: {e}");
                assert!(e.to_string().contains("another flatedge"), "{e}");
            }
            other => return Err(format!("the second loader attached: {other:?}")),
        }
        drop(second);
        assert_eq!(
            attached_id("t0")?,
            id,
            "the first program was replaced or detached"
        );
        drop(first);
        assert_eq!(attached_id("t0")?, None, "detached when the first one went");
        let mut third = XdpProgram::load().map_err(|e| e.to_string())?;
        third
            .attach(t0)
            .map_err(|e| format!("after the first: {e}"))?;
        Ok(())
    });
    t.join().expect("loader thread panicked").unwrap();
}

/// Another tool's program on the interface, natively or in generic mode,
/// is refused by name and mode (in generic mode the kernel's own answer
/// was a bare "File exists"), and left attached.
#[test]
fn a_foreign_program_is_refused_in_either_mode() {
    common::require_root_and_tools("tests/xdp_port.rs");
    let dir = std::env::temp_dir().join(format!("fe-foreign-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (src, obj) = (dir.join("other.c"), dir.join("other.o"));
    std::fs::write(
        &src,
        "__attribute__((section(\"xdp\"), used)) int other_prog(void *ctx) { return 2; }\n\
         char _license[] __attribute__((section(\"license\"), used)) = \"GPL\";\n",
    )
    .unwrap();
    let cc = Command::new("clang")
        .args(["-O2", "-target", "bpf", "-c"])
        .arg(&src)
        .arg("-o")
        .arg(&obj)
        .output()
        .expect("clang (scripts/setup.sh installs it; the build needs it too)");
    assert!(
        cc.status.success(),
        "{}",
        String::from_utf8_lossy(&cc.stderr)
    );
    let pair = Pair::new();
    let obj = obj.to_str().unwrap().to_owned();
    let t = pair.spawn(move || -> Result<(), String> {
        let t0 = xdp::ifindex("t0").map_err(|e| e.to_string())?;
        for (mode, flag) in [("generic", "xdpgeneric"), ("native", "xdpdrv")] {
            let out = Command::new("ip")
                .args(["link", "set", "dev", "t0", flag, "obj", &obj, "sec", "xdp"])
                .output()
                .map_err(|e| e.to_string())?;
            if !out.status.success() {
                return Err(format!(
                    "ip link set {flag}: {}",
                    String::from_utf8_lossy(&out.stderr)
                ));
            }
            let mut ours = XdpProgram::load().map_err(|e| e.to_string())?;
            match ours.attach(t0) {
                Err(e @ xdp::XdpError::Foreign { .. }) => {
                    let msg = e.to_string();
                    eprintln!("{mode}: {msg}");
                    assert!(msg.contains(&format!("in {mode} mode")), "{msg}");
                    assert!(msg.contains("other_prog"), "{msg}");
                    assert!(msg.contains(&format!("dev t0 {flag} off")), "{msg}");
                }
                other => return Err(format!("{mode}: attached over it: {other:?}")),
            }
            drop(ours);
            let shown = link_details("t0")?;
            assert!(
                shown.contains("other_prog"),
                "{mode}: the foreign program went: {shown}"
            );
            let off = Command::new("ip")
                .args(["link", "set", "dev", "t0", flag, "off"])
                .status()
                .map_err(|e| e.to_string())?;
            assert!(off.success());
        }
        // Once it is gone, ours attaches.
        let mut ours = XdpProgram::load().map_err(|e| e.to_string())?;
        ours.attach(t0)
            .map_err(|e| format!("on a free interface: {e}"))?;
        Ok(())
    });
    let r = t.join().expect("loader thread panicked");
    let _ = std::fs::remove_dir_all(&dir);
    r.unwrap();
}

/// With VLAN receive offload on (veth's default, and most NICs') a tagged
/// frame reaches XDP untagged and would be routed past its VLAN: attach
/// turns it off and detach turns it back on; one that was off stays off.
#[test]
fn attach_turns_the_vlan_receive_offload_off_until_detach() {
    common::require_root_and_tools("tests/xdp_port.rs");
    let pair = Pair::new();
    let t = pair.spawn(|| -> Result<(), String> {
        let rxvlan = |dev: &str| -> Result<bool, String> {
            let out = Command::new("ethtool")
                .args(["-k", dev])
                .output()
                .map_err(|e| e.to_string())?;
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            let line = text
                .lines()
                .find(|l| l.starts_with("rx-vlan-offload:"))
                .ok_or(format!("no rx-vlan-offload in: {text}"))?;
            Ok(line.contains(": on"))
        };
        let (t0, t1) = (
            xdp::ifindex("t0").map_err(|e| e.to_string())?,
            xdp::ifindex("t1").map_err(|e| e.to_string())?,
        );
        assert!(rxvlan("t0")?, "veth starts with the offload on");
        let off = Command::new("ethtool")
            .args(["-K", "t1", "rxvlan", "off"])
            .status()
            .map_err(|e| e.to_string())?;
        assert!(off.success());
        let mut prog = XdpProgram::load().map_err(|e| e.to_string())?;
        let v0 = prog.attach(t0).map_err(|e| e.to_string())?;
        let v1 = prog.attach(t1).map_err(|e| e.to_string())?;
        assert!(matches!(v0, xdp::VlanOffload::TurnedOff), "{v0:?}");
        assert!(matches!(v1, xdp::VlanOffload::WasOff), "{v1:?}");
        assert!(!rxvlan("t0")?, "still on while attached");
        // Attaching again (a replace) keeps the original state to restore.
        let again = prog.attach(t0).map_err(|e| e.to_string())?;
        assert!(matches!(again, xdp::VlanOffload::TurnedOff), "{again:?}");
        prog.detach(t0).map_err(|e| e.to_string())?;
        assert!(rxvlan("t0")?, "not restored at detach");
        prog.attach(t0).map_err(|e| e.to_string())?;
        assert!(!rxvlan("t0")?);
        drop(prog);
        assert!(rxvlan("t0")?, "not restored when the program went");
        assert!(!rxvlan("t1")?, "turned on though it was off");
        // A flatedge killed while attached leaves the offload off; the
        // one that replaces its program restores it at its own detach.
        let mut killed = XdpProgram::load().map_err(|e| e.to_string())?;
        killed.attach(t0).map_err(|e| e.to_string())?;
        killed.abandon();
        assert!(!rxvlan("t0")?);
        let mut next = XdpProgram::load().map_err(|e| e.to_string())?;
        let v = next.attach(t0).map_err(|e| e.to_string())?;
        assert!(matches!(v, xdp::VlanOffload::TurnedOff), "{v:?}");
        drop(next);
        assert!(rxvlan("t0")?, "left off after a killed flatedge");
        // And the note went with the restore: turned off by hand, the
        // offload stays off through another attach and detach.
        let off = Command::new("ethtool")
            .args(["-K", "t0", "rxvlan", "off"])
            .status()
            .map_err(|e| e.to_string())?;
        assert!(off.success());
        let mut last = XdpProgram::load().map_err(|e| e.to_string())?;
        let v = last.attach(t0).map_err(|e| e.to_string())?;
        assert!(matches!(v, xdp::VlanOffload::WasOff), "{v:?}");
        drop(last);
        assert!(!rxvlan("t0")?, "turned on though it was off");
        Ok(())
    });
    t.join().expect("loader thread panicked").unwrap();
}

/// `ip -d link show dev` of `dev` in the calling thread's namespace.
fn link_details(dev: &str) -> Result<String, String> {
    let out = Command::new("ip")
        .args(["-d", "link", "show", "dev", dev])
        .output()
        .map_err(|e| e.to_string())?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The id of the XDP program attached to `dev` (`ip link`'s "prog/xdp
/// id N"), in the calling thread's namespace (which `ip` inherits).
fn attached_id(dev: &str) -> Result<Option<u32>, String> {
    let text = link_details(dev)?;
    Ok(text
        .split("prog/xdp id ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok()))
}

#[test]
fn a_down_link_holds_kicks_back() {
    const BURST: usize = 10;
    const DOWN_FOR: Duration = Duration::from_millis(200);
    common::require_root_and_tools("tests/xdp_port.rs");
    let pair = Pair::new();
    let (opened_tx, opened_rx) = mpsc::channel();
    let (down_tx, down_rx) = mpsc::channel();
    let (up_tx, up_rx) = mpsc::channel();
    let (went_up_tx, went_up_rx) = mpsc::channel();
    let sender = pair.spawn(move || -> Result<DownLink, String> {
        let mut pool = common::small_pool(512, 128)?;
        let mut port = Port::open(&mut pool, "t0", 0).map_err(|e| e.to_string())?;
        let free_before = pool.free_frames();
        let _ = opened_tx.send(());
        down_rx
            .recv_timeout(Duration::from_secs(10))
            .map_err(|_| "t0 never went down")?;
        let mut burst = broadcast_burst(&mut pool, BURST)?;
        port.send(&mut pool, &mut burst);
        // The worker's rounds while the link is down.
        let start = Instant::now();
        let mut flushes_while_down = 0;
        while start.elapsed() < DOWN_FOR {
            port.reclaim(&mut pool);
            port.flush();
            flushes_while_down += 1;
        }
        let kicks_while_down = port.stats.tx_kicks;
        let _ = up_tx.send(());
        went_up_rx
            .recv_timeout(Duration::from_secs(10))
            .map_err(|_| "t0 never came back up")?;
        let deadline = Instant::now() + Duration::from_secs(5);
        while port.in_flight() > 0 && Instant::now() < deadline {
            port.reclaim(&mut pool);
            port.flush();
        }
        Ok(DownLink {
            kicks_while_down,
            link_down: port.stats.tx_link_down,
            flushes_while_down,
            in_flight_after: port.in_flight(),
            missing: free_before - pool.free_frames(),
        })
    });
    opened_rx
        .recv_timeout(Duration::from_secs(10))
        .expect("the port did not open");
    ns(&pair.ns, &["ip", "link", "set", "t0", "down"]);
    let _ = down_tx.send(());
    up_rx
        .recv_timeout(Duration::from_secs(10))
        .expect("the sender did not finish its rounds");
    let before = pair.rx_packets("t1");
    ns(&pair.ns, &["ip", "link", "set", "t0", "up"]);
    // Carrier comes back on both ends before the frames can leave.
    thread::sleep(Duration::from_millis(200));
    let _ = went_up_tx.send(());
    let r = sender
        .join()
        .expect("sender thread panicked")
        .expect("sender setup failed");
    eprintln!("{r:?}");
    assert!(r.link_down >= 1, "no kick saw the link down: {r:?}");
    assert!(
        r.flushes_while_down > 10 * r.kicks_while_down,
        "a kick per round while the link was down: {r:?}"
    );
    assert!(
        r.kicks_while_down <= 2 * DOWN_FOR.as_millis() as u64,
        "kicks were not held back 1 ms at a time: {r:?}"
    );
    assert_eq!(r.in_flight_after, 0, "the frames never left: {r:?}");
    assert_eq!(r.missing, 0, "frames did not come back: {r:?}");
    let received = pair.rx_packets("t1") - before;
    assert!(
        received >= BURST as u64,
        "t1 received {received} of {BURST} once the link was up"
    );
}

/// Per call, the headers prefetched; all their addresses; the addresses
/// of the frames then received.
type Prefetched = (Vec<usize>, Vec<usize>, Vec<usize>);

/// While frames wait in the rx ring, `prefetch_pending` reads their
/// descriptors through its own mapping of the ring: whole lines of four
/// descriptors only (the kernel may still be writing the last line), each
/// frame once, and the addresses it prefetches are those of the frames
/// `recv` then returns, in order.
#[test]
fn prefetching_waiting_frames_reads_their_descriptors() {
    common::require_root_and_tools("tests/xdp_port.rs");
    let pair = Pair::new();
    let frame = transit_frame();
    let receiver = pair.spawn(move || -> Result<Prefetched, String> {
        let mut prog = XdpProgram::load().map_err(|e| e.to_string())?;
        let ifindex = xdp::ifindex("t1").map_err(|e| e.to_string())?;
        prog.attach(ifindex).map_err(|e| e.to_string())?;
        prog.set_port_slot(ifindex, 0).map_err(|e| e.to_string())?;
        let mut pool = common::small_pool(512, 64)?;
        let mut rx = Port::open(&mut pool, "t1", 0).map_err(|e| e.to_string())?;
        prog.insert_xsk(0, 0, rx.fd()).map_err(|e| e.to_string())?;
        let mut tx = Port::open(&mut pool, "t0", 0).map_err(|e| e.to_string())?;
        let mut prefetched = Vec::new();
        let mut counts = Vec::new();
        for (n, total) in [(10, 10), (2, 12)] {
            let mut burst = frame_burst(&mut pool, &frame, n)?;
            let deadline = Instant::now() + Duration::from_secs(5);
            while rx.rx_pending() < total {
                if Instant::now() > deadline {
                    return Err(format!("{} of {total} frames arrived", rx.rx_pending()));
                }
                tx.send(&mut pool, &mut burst);
                tx.flush();
                tx.reclaim(&mut pool);
                thread::sleep(Duration::from_millis(1));
            }
            // The count prefetching works from.
            assert_eq!(rx.rx_pending(), total);
            let got = rx.prefetch_pending_addrs(&pool);
            counts.push(got.len());
            prefetched.extend(got);
            // Asked again with nothing new: nothing more, and the timed
            // call the worker makes says so.
            counts.push(rx.prefetch_pending_addrs(&pool).len());
            if rx.prefetch_due() || rx.prefetch_pending(&pool) {
                return Err("prefetch_pending found work after everything was prefetched".into());
            }
        }
        let mut frames = Vec::new();
        rx.recv(&mut pool, &mut frames, 64);
        let received = frames
            .iter()
            .map(|f| pool.data(f).as_ptr() as usize)
            .collect();
        for f in frames {
            pool.free(f);
        }
        Ok((counts, prefetched, received))
    });
    let (counts, prefetched, received) = receiver
        .join()
        .expect("receiver panicked")
        .expect("receiver failed");
    // 10 waiting: the two whole lines (8); then none; 12 waiting: the
    // third line (4); then none.
    assert_eq!(counts, vec![8, 0, 4, 0], "headers prefetched per call");
    assert_eq!(received.len(), 12, "frames received");
    assert_eq!(
        prefetched, received,
        "the prefetched headers are not the frames received, in order"
    );
}

/// Frames the kernel drops at an AF_XDP socket are counted: with nothing
/// received, a socket's rx ring (32) fills and the rest of a burst is
/// dropped in the kernel; `read_kernel_stats` brings those drops into the
/// port's counters (`show drops`' `rx_ring_full` and `rx_no_frame`), so
/// that every frame sent is either waiting or counted.
#[test]
fn the_kernels_drops_at_a_socket_are_counted() {
    const SENT: usize = 100;
    common::require_root_and_tools("tests/xdp_port.rs");
    let pair = Pair::new();
    let frame = transit_frame();
    let receiver = pair.spawn(move || -> Result<(u32, u64, u64), String> {
        let mut prog = XdpProgram::load().map_err(|e| e.to_string())?;
        let ifindex = xdp::ifindex("t1").map_err(|e| e.to_string())?;
        prog.attach(ifindex).map_err(|e| e.to_string())?;
        prog.set_port_slot(ifindex, 0).map_err(|e| e.to_string())?;
        // More fill-ring frames (128) than rx ring entries (32).
        let mut pool = FramePool::new(xdp::PoolConfig {
            frames: 512,
            frame_size: 2048,
            fill_ring: 128,
            rx_tx_ring: 32,
        })
        .map_err(|e| e.to_string())?;
        let mut rx = Port::open(&mut pool, "t1", 0).map_err(|e| e.to_string())?;
        prog.insert_xsk(0, 0, rx.fd()).map_err(|e| e.to_string())?;
        let mut tx = Port::open(&mut pool, "t0", 0).map_err(|e| e.to_string())?;
        rx.read_kernel_stats();
        if (rx.stats.rx_ring_full, rx.stats.rx_no_frame) != (0, 0) {
            return Err(format!("drops before anything was sent: {:?}", rx.stats));
        }
        let mut sent = 0;
        let deadline = Instant::now() + Duration::from_secs(5);
        while sent < SENT {
            if Instant::now() > deadline {
                return Err(format!("only {sent} of {SENT} frames left t0"));
            }
            let mut burst = frame_burst(&mut pool, &frame, (SENT - sent).min(16))?;
            let n = burst.len();
            tx.send(&mut pool, &mut burst);
            sent += n - burst.len();
            for f in burst {
                pool.free(f);
            }
            tx.flush();
            thread::sleep(Duration::from_millis(1));
            tx.reclaim(&mut pool);
        }
        // The kernel counts as it delivers: wait until every frame is
        // accounted for (or time out with what was seen).
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            rx.read_kernel_stats();
            let seen = rx.rx_pending() as u64 + rx.stats.rx_ring_full + rx.stats.rx_no_frame;
            if seen >= SENT as u64 || Instant::now() > deadline {
                return Ok((rx.rx_pending(), rx.stats.rx_ring_full, rx.stats.rx_no_frame));
            }
            thread::sleep(Duration::from_millis(10));
        }
    });
    let (waiting, ring_full, no_frame) = receiver
        .join()
        .expect("receiver panicked")
        .expect("receiver failed");
    assert_eq!(waiting, 32, "frames waiting in the full rx ring");
    assert_eq!(
        (ring_full, no_frame),
        (SENT as u64 - 32, 0),
        "the kernel's drops at the socket, as the port counts them"
    );
}

/// Transit frames on a port whose queue has no socket go to the kernel
/// (the port behaves as a plain interface) and are counted: the counter
/// `show drops` reports as `no_socket`.
#[test]
fn transit_for_a_queue_without_a_socket_is_counted() {
    const SENT: usize = 20;
    common::require_root_and_tools("tests/xdp_port.rs");
    let pair = Pair::new();
    let frame = transit_frame();
    let sender = pair.spawn(move || -> Result<(u64, u64), String> {
        let mut prog = XdpProgram::load().map_err(|e| e.to_string())?;
        let ifindex = xdp::ifindex("t1").map_err(|e| e.to_string())?;
        prog.attach(ifindex).map_err(|e| e.to_string())?;
        prog.set_port_slot(ifindex, 0).map_err(|e| e.to_string())?;
        // No socket in the XSKMAP for t1.
        let before = prog.no_socket_packets().map_err(|e| e.to_string())?;
        let mut pool = common::small_pool(256, 64)?;
        let mut tx = Port::open(&mut pool, "t0", 0).map_err(|e| e.to_string())?;
        let mut burst = frame_burst(&mut pool, &frame, SENT)?;
        let deadline = Instant::now() + Duration::from_secs(5);
        while !burst.is_empty() || tx.in_flight() > 0 {
            if Instant::now() > deadline {
                return Err("the burst did not leave t0".into());
            }
            tx.send(&mut pool, &mut burst);
            tx.flush();
            thread::sleep(Duration::from_millis(1));
            tx.reclaim(&mut pool);
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let n = prog.no_socket_packets().map_err(|e| e.to_string())? - before;
            if n >= SENT as u64 || Instant::now() > deadline {
                return Ok((before, n));
            }
            thread::sleep(Duration::from_millis(10));
        }
    });
    let (before, counted) = sender
        .join()
        .expect("sender panicked")
        .expect("sender failed");
    assert_eq!(before, 0, "a fresh program's counter");
    assert_eq!(counted, SENT as u64, "transit frames counted as no_socket");
}
