//! Helpers shared by the router's netns tests (run as root).

#![allow(dead_code)] // each test binary uses its own subset

use std::fs::File;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

pub fn mac_str(mac: [u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Runs a command, panicking with its output when it fails; returns its
/// standard output.
pub fn run(args: &[&str]) -> String {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {args:?}: {e}"));
    assert!(
        out.status.success(),
        "{args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs a command in a namespace; returns whether it succeeded, and its output.
pub fn ns_try(ns: &str, args: &[&str]) -> (bool, String) {
    let out = Command::new("ip")
        .args(["netns", "exec", ns])
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {args:?} in {ns}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

pub fn ns(ns: &str, args: &[&str]) {
    let (ok, text) = ns_try(ns, args);
    assert!(ok, "{args:?} in {ns} failed: {text}");
}

/// Fails (never skips) when not root or when a tool the tests drive is
/// missing.
pub fn require_root_and_tools(test: &str) {
    assert!(
        nix::unistd::geteuid().is_root(),
        "{test} needs root (network namespaces, XDP, AF_XDP): run it as root"
    );
    for (tool, arg) in [("ip", "-V"), ("ping", "-V"), ("ethtool", "--version")] {
        let ok = Command::new(tool)
            .arg(arg)
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
        assert!(ok, "`{tool}` is missing: install it (scripts/setup.sh)");
    }
}

/// Enters namespace `name` (this thread only).
pub fn enter(name: &str) -> Result<(), String> {
    let file =
        File::open(format!("/run/netns/{name}")).map_err(|e| format!("open netns {name}: {e}"))?;
    nix::sched::setns(file, nix::sched::CloneFlags::CLONE_NEWNET)
        .map_err(|e| format!("setns {name}: {e}"))
}

/// Waits until no address of each (namespace, device) is tentative (DAD
/// done): neighbour solicitations sent before that are lost.
pub fn wait_dad(links: &[(&str, &str)]) {
    let t0 = Instant::now();
    for &(ns, dev) in links {
        while !run(&[
            "ip",
            "-n",
            ns,
            "-6",
            "addr",
            "show",
            "dev",
            dev,
            "tentative",
        ])
        .trim()
        .is_empty()
        {
            assert!(
                t0.elapsed() < Duration::from_secs(4),
                "{dev}: DAD never ends"
            );
            thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Starts `f` on its own thread and waits (up to 10 s) for it to report
/// its set-up through the channel it is given; if set-up failed, stops it
/// (`stop`), joins it and panics with the reason.
pub fn spawn_ready<T: Send + 'static>(
    what: &str,
    stop: &Arc<AtomicBool>,
    f: impl FnOnce(mpsc::Sender<Result<(), String>>) -> T + Send + 'static,
) -> JoinHandle<T> {
    let (ready_tx, ready_rx) = mpsc::channel();
    let handle = thread::spawn(move || f(ready_tx));
    let setup = ready_rx
        .recv_timeout(Duration::from_secs(10))
        .unwrap_or_else(|_| panic!("{what} setup timed out"));
    if let Err(e) = setup {
        stop.store(true, Ordering::Relaxed);
        let _ = handle.join();
        panic!("{what} setup failed: {e}");
    }
    handle
}

/// Network namespaces, one per prefix, named `PREFIX<pid>-<n>` (unique
/// across the tests of a process), created now and deleted with their
/// veths when dropped, also when a test panics half-way through a set-up.
pub struct Netns(Vec<String>);

impl Netns {
    pub fn new(prefixes: &[&str]) -> Netns {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let id = format!(
            "{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        // Named before they exist: a failure below still deletes what was
        // made (deleting a missing one is ignored).
        let ns = Netns(prefixes.iter().map(|p| format!("{p}{id}")).collect());
        for name in &ns.0 {
            run(&["ip", "netns", "add", name]);
        }
        ns
    }

    /// The namespaces' names, in the order of the prefixes.
    pub fn names(&self) -> &[String] {
        &self.0
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        for name in &self.0 {
            let _ = Command::new("ip").args(["netns", "del", name]).status();
        }
    }
}

/// Runs `f` on a thread inside namespace `name`.
pub fn in_ns<T: Send + 'static>(
    name: &str,
    f: impl FnOnce() -> Result<T, String> + Send + 'static,
) -> JoinHandle<Result<T, String>> {
    let name = name.to_owned();
    thread::spawn(move || {
        enter(&name)?;
        f()
    })
}

/// A UDP receiver on `addr` (bound in namespace `ns`) counting datagrams
/// per source port, until `stop` (and what its socket holds then);
/// reports on `ready` once bound.
pub fn udp_sink(
    ns: &str,
    addr: std::net::SocketAddrV6,
    stop: Arc<AtomicBool>,
    ready: mpsc::Sender<()>,
) -> JoinHandle<Result<std::collections::HashMap<u16, u32>, String>> {
    in_ns(ns, move || {
        let sock = std::net::UdpSocket::bind(addr).map_err(|e| format!("bind {addr}: {e}"))?;
        sock.set_read_timeout(Some(Duration::from_millis(100)))
            .map_err(|e| e.to_string())?;
        let _ = ready.send(());
        let mut flows = std::collections::HashMap::new();
        let mut buf = [0u8; 2048];
        while !stop.load(Ordering::Relaxed) {
            if let Ok((_, from)) = sock.recv_from(&mut buf) {
                *flows.entry(from.port()).or_insert(0) += 1;
            }
        }
        // What arrived before the stop and waits in the socket counts too.
        sock.set_nonblocking(true).map_err(|e| e.to_string())?;
        while let Ok((_, from)) = sock.recv_from(&mut buf) {
            *flows.entry(from.port()).or_insert(0) += 1;
        }
        Ok(flows)
    })
}

/// `flows` UDP sockets bound to `src`, source ports 40000 and up.
fn flow_sockets(src: std::net::Ipv6Addr, flows: u16) -> Result<Vec<std::net::UdpSocket>, String> {
    (0..flows)
        .map(|i| {
            let at = std::net::SocketAddrV6::new(src, 40000 + i, 0, 0);
            std::net::UdpSocket::bind(at).map_err(|e| format!("bind {at}: {e}"))
        })
        .collect()
}

/// Sends `rounds` datagrams on each of `flows` UDP sockets (source ports
/// 40000 and up) to `to` from namespace `ns`, round-robin, pausing 1 ms
/// after every `per_pause` datagrams (bursts of `per_pause`, a little
/// under `per_pause` per millisecond on average).
pub fn send_udp_paced(
    ns: &str,
    src: std::net::Ipv6Addr,
    to: std::net::SocketAddrV6,
    flows: u16,
    rounds: u32,
    per_pause: u32,
) -> Result<(), String> {
    in_ns(ns, move || {
        let socks = flow_sockets(src, flows)?;
        let mut sent = 0u32;
        for round in 0..rounds {
            for s in &socks {
                s.send_to(&round.to_be_bytes(), to)
                    .map_err(|e| format!("send: {e}"))?;
                sent += 1;
                if sent % per_pause.max(1) == 0 {
                    thread::sleep(Duration::from_millis(1));
                }
            }
        }
        Ok(())
    })
    .join()
    .expect("udp sender panicked")
}

/// A pool of `frames` 2048-byte frames whose ports get rings of `ring`
/// entries (far smaller than the defaults, so tests exercise refills and
/// full rings).
pub fn small_pool(frames: u32, ring: u32) -> Result<router::xdp::FramePool, String> {
    use router::xdp::{FramePool, PoolConfig};
    let config = PoolConfig {
        frames,
        frame_size: 2048,
        fill_ring: ring,
        rx_tx_ring: ring,
    };
    FramePool::new(config).map_err(|e| e.to_string())
}

/// Sends raw Ethernet `frames` out of `ifname` in namespace `ns` through
/// an AF_XDP socket (no XDP program needed for TX); returns how many left.
pub fn inject(ns: &str, ifname: &str, frames: Vec<Vec<u8>>) -> Result<usize, String> {
    use router::xdp::Port;
    let ifname = ifname.to_owned();
    in_ns(ns, move || {
        let mut pool = small_pool(64, 32)?;
        let mut port = Port::open(&mut pool, &ifname, 0).map_err(|e| e.to_string())?;
        let free = pool.free_frames();
        let mut pending = Vec::with_capacity(frames.len());
        for bytes in &frames {
            let mut f = pool.alloc().ok_or("no frame")?;
            if !pool.write(&mut f, bytes) {
                return Err("frame too long".into());
            }
            pending.push(f);
        }
        let deadline = Instant::now() + Duration::from_secs(2);
        let mut sent = 0;
        while (!pending.is_empty() || pool.free_frames() < free) && Instant::now() < deadline {
            sent += port.send(&mut pool, &mut pending);
            port.kick();
            port.reclaim(&mut pool);
            thread::sleep(Duration::from_millis(1));
        }
        Ok(sent)
    })
    .join()
    .expect("injector panicked")
}

/// An Ethernet + IPv6 + 8-byte UDP frame: `version_byte` is the first
/// byte of the IPv6 header (0x60 is right), `payload_len` its payload
/// length field (8 is right).
pub fn udp_frame(
    dst_mac: [u8; 6],
    src_mac: [u8; 6],
    src: std::net::Ipv6Addr,
    dst: std::net::Ipv6Addr,
    version_byte: u8,
    payload_len: u16,
) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&dst_mac);
    f.extend_from_slice(&src_mac);
    f.extend_from_slice(&[0x86, 0xdd]);
    f.extend_from_slice(&[version_byte, 0, 0, 0]);
    f.extend_from_slice(&payload_len.to_be_bytes());
    f.extend_from_slice(&[17, 64]);
    f.extend_from_slice(&src.octets());
    f.extend_from_slice(&dst.octets());
    f.extend_from_slice(&[0x9c, 0x40, 0x27, 0x0f, 0, 8, 0, 0]);
    f
}

/// Sends `rounds` datagrams of 100 bytes on each of `flows` UDP flows
/// (source ports 40000.., one socket each) from `src` to `to`, from
/// namespace `ns`, 20 ms between rounds.
pub fn send_udp_flows(
    ns: &str,
    src: std::net::Ipv6Addr,
    to: std::net::SocketAddrV6,
    flows: u16,
    rounds: u8,
) -> Result<(), String> {
    in_ns(ns, move || {
        let socks = flow_sockets(src, flows)?;
        for round in 0..rounds {
            for s in &socks {
                s.send_to(&[round; 100], to)
                    .map_err(|e| format!("send: {e}"))?;
            }
            thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    })
    .join()
    .expect("udp sender panicked")
}

/// The IPv6 counter `key` (`Udp6InDatagrams`, `Icmp6InEchos`, ...) of
/// namespace `ns`'s `/proc/net/snmp6`.
pub fn snmp6(ns: &str, key: &str) -> u64 {
    run(&["ip", "netns", "exec", ns, "cat", "/proc/net/snmp6"])
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {key} in {ns}'s /proc/net/snmp6"))
}
