//! The gen - router - sink namespaces of `bench forward`, the commands run
//! in them, and the interface counters read from them.
//!
//! ```text
//!  gen: g0 2001:db8:a::2 ── rg 2001:db8:a::1  rtr  rs 2001:db8:b::1 ── s0 2001:db8:b::2,3,4  sink
//!                                                                       lo 2001:db8:ff::1 (SERVICE)
//! ```
//!
//! The three sink addresses are the next hops of the 3-way ECMP /128
//! `SERVICE` and of the table's routes (static neighbour entries in the
//! router, so nothing depends on NDP). The sink's veth carries the
//! `xdp_sink` program: it counts every frame and drops all but the
//! latency probes. Names carry the process id; [`Lab`] deletes the
//! namespaces (and with them the veths) on drop.

use std::fs::File;
use std::io::Write;
use std::net::Ipv6Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::table::Route;

/// Set by the Ctrl-C/SIGTERM handler; long waits check it.
pub static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// The XDP programs object built by build.rs.
pub const XDP_OBJ: &str = env!("BENCH_FWD_XDP_OBJ");

pub const MAC_G0: [u8; 6] = [0x02, 0, 0, 0, 0x0a, 0x02];
pub const MAC_RG: [u8; 6] = [0x02, 0, 0, 0, 0x0a, 0x01];
pub const MAC_RS: [u8; 6] = [0x02, 0, 0, 0, 0x0b, 0x01];
pub const MAC_S0: [u8; 6] = [0x02, 0, 0, 0, 0x0b, 0x02];

pub const GEN_ADDR: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xa, 0, 0, 0, 0, 2);
pub const RG_ADDR: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xa, 0, 0, 0, 0, 1);
pub const RS_ADDR: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xb, 0, 0, 0, 0, 1);
/// The sink-side next hops (all on s0).
pub const SINK_NEXTHOPS: [Ipv6Addr; 3] = [
    Ipv6Addr::new(0x2001, 0xdb8, 0xb, 0, 0, 0, 0, 2),
    Ipv6Addr::new(0x2001, 0xdb8, 0xb, 0, 0, 0, 0, 3),
    Ipv6Addr::new(0x2001, 0xdb8, 0xb, 0, 0, 0, 0, 4),
];
/// The destination of all traffic: a 3-way ECMP /128.
pub const SERVICE: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xff, 0, 0, 0, 0, 1);
/// UDP port of the generated traffic (dropped by the sink's XDP program).
pub const TRAFFIC_PORT: u16 = 9;
/// UDP port of the latency probes (`BENCH_LATENCY_PORT` in bpf/fwd_xdp.c).
pub const LATENCY_PORT: u16 = 9999;

/// The current veths: generator side, router ingress, router egress, sink.
///
/// An AF_XDP queue stays busy (EBUSY) long after its sockets are closed
/// (the kernel releases them in deferred work: up to a minute on this VM
/// under load), so each AF_XDP forwarder gets fresh veths ([`Lab::rewire`]):
/// the old ones are set down (which flushes their IPv6 addresses and
/// routes) and go away with the namespaces.
#[derive(Debug, Clone, Default)]
pub struct Ifs {
    pub g0: String,
    pub rg: String,
    pub rs: String,
    pub s0: String,
}

pub fn mac_str(mac: [u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Runs a command; fails with its output when it fails; returns stdout.
pub fn run(args: &[&str]) -> Result<String> {
    let out = Command::new(args[0])
        .args(&args[1..])
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot run {args:?} (scripts/setup.sh installs the tools)"))?;
    if !out.status.success() {
        bail!(
            "{args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout).trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Runs a command inside namespace `ns`.
pub fn ns_run(ns: &str, args: &[&str]) -> Result<String> {
    let mut v = vec!["ip", "netns", "exec", ns];
    v.extend_from_slice(args);
    run(&v)
}

/// Enters namespace `name` (this thread only).
pub fn enter(name: &str) -> Result<()> {
    let file =
        File::open(format!("/run/netns/{name}")).with_context(|| format!("open netns {name}"))?;
    nix::sched::setns(file, nix::sched::CloneFlags::CLONE_NEWNET)
        .with_context(|| format!("setns {name}"))
}

/// Sleeps `d`, failing early when interrupted (Ctrl-C).
pub fn sleep_checked(d: Duration) -> Result<()> {
    let end = Instant::now() + d;
    loop {
        if INTERRUPTED.load(Ordering::Relaxed) {
            bail!("interrupted");
        }
        let now = Instant::now();
        if now >= end {
            return Ok(());
        }
        std::thread::sleep((end - now).min(Duration::from_millis(50)));
    }
}

/// The namespaces of one run, deleted on drop.
#[derive(Debug)]
pub struct Lab {
    pub gen: String,
    pub rtr: String,
    pub sink: String,
    /// The veths in use.
    pub ifs: Ifs,
    /// Table routes the kernel refused at the last load.
    pub kernel_refused: usize,
    generation: u32,
    created: Vec<String>,
    files: Vec<PathBuf>,
}

impl Lab {
    /// Creates and wires the namespaces (without routes of the table).
    pub fn new() -> Result<Lab> {
        let tag = std::process::id();
        let mut lab = Lab {
            gen: format!("fwdg{tag}"),
            rtr: format!("fwdr{tag}"),
            sink: format!("fwds{tag}"),
            ifs: Ifs::default(),
            kernel_refused: 0,
            generation: 0,
            created: Vec::new(),
            files: Vec::new(),
        };
        for name in [lab.gen.clone(), lab.rtr.clone(), lab.sink.clone()] {
            run(&["ip", "netns", "add", &name])?;
            lab.created.push(name);
        }
        lab.setup().context("setting up the namespaces")?;
        Ok(lab)
    }

    /// A temporary file removed with the lab.
    pub fn temp_file(&mut self, name: &str, contents: &str) -> Result<PathBuf> {
        let path = std::env::temp_dir().join(format!("flatedge-fwd-{}-{name}", std::process::id()));
        let mut f = File::create(&path).with_context(|| format!("create {}", path.display()))?;
        f.write_all(contents.as_bytes())
            .with_context(|| format!("write {}", path.display()))?;
        self.files.push(path.clone());
        Ok(path)
    }

    fn setup(&mut self) -> Result<()> {
        let (r, s) = (self.rtr.as_str(), self.sink.as_str());
        for n in [self.gen.as_str(), r, s] {
            ns_run(n, &["ip", "link", "set", "lo", "up"])?;
        }
        ns_run(r, &["sysctl", "-qw", "net.ipv6.conf.all.forwarding=0"])?;
        // Spread the flows of the ECMP /128 by ports, as flatedge does.
        ns_run(
            r,
            &["sysctl", "-qw", "net.ipv6.fib_multipath_hash_policy=1"],
        )?;
        ns_run(
            s,
            &["ip", "addr", "add", &format!("{SERVICE}/128"), "dev", "lo"],
        )?;
        self.rewire()
    }

    /// Replaces the veths with fresh ones (see [`Ifs`]).
    pub fn rewire(&mut self) -> Result<()> {
        let (g, r, s) = (self.gen.as_str(), self.rtr.as_str(), self.sink.as_str());
        if self.generation > 0 {
            let old = self.ifs.clone();
            let _ = ns_run(g, &["ip", "link", "set", &old.g0, "down"]);
            let _ = ns_run(r, &["ip", "link", "set", &old.rg, "down"]);
            let _ = ns_run(r, &["ip", "link", "set", &old.rs, "down"]);
            let _ = ns_run(s, &["ip", "link", "set", &old.s0, "down"]);
        }
        self.generation += 1;
        let k = self.generation;
        self.ifs = Ifs {
            g0: format!("g{k}"),
            rg: format!("rg{k}"),
            rs: format!("rs{k}"),
            s0: format!("s{k}"),
        };
        let i = self.ifs.clone();
        run(&[
            "ip", "link", "add", "name", &i.g0, "netns", g, "type", "veth", "peer", "name", &i.rg,
            "netns", r,
        ])?;
        run(&[
            "ip", "link", "add", "name", &i.rs, "netns", r, "type", "veth", "peer", "name", &i.s0,
            "netns", s,
        ])?;
        let links = [
            (g, i.g0.as_str(), MAC_G0, vec![GEN_ADDR]),
            (r, i.rg.as_str(), MAC_RG, vec![RG_ADDR]),
            (r, i.rs.as_str(), MAC_RS, vec![RS_ADDR]),
            (s, i.s0.as_str(), MAC_S0, SINK_NEXTHOPS.to_vec()),
        ];
        for (n, dev, mac, addrs) in &links {
            ns_run(n, &["ip", "link", "set", dev, "address", &mac_str(*mac)])?;
            for a in addrs {
                ns_run(
                    n,
                    &["ip", "addr", "add", &format!("{a}/64"), "dev", dev, "nodad"],
                )?;
            }
            ns_run(n, &["ip", "link", "set", dev, "up"])?;
            // Senders hand veth unfinished checksums otherwise (DESIGN.md 3).
            ns_run(n, &["ethtool", "-K", dev, "tx", "off"])?;
        }
        ns_run(r, &["sysctl", "-qw", "net.ipv6.conf.all.forwarding=0"])?;
        // Spread the flows of the ECMP /128 by ports, as flatedge does.
        ns_run(
            r,
            &["sysctl", "-qw", "net.ipv6.fib_multipath_hash_policy=1"],
        )?;
        let neigh = |n: &str, addr: &str, mac: [u8; 6], dev: &str| {
            ns_run(
                n,
                &[
                    "ip",
                    "-6",
                    "neigh",
                    "replace",
                    addr,
                    "lladdr",
                    &mac_str(mac),
                    "dev",
                    dev,
                    "nud",
                    "permanent",
                ],
            )
        };
        neigh(g, &RG_ADDR.to_string(), MAC_RG, &i.g0)?;
        ns_run(
            g,
            &[
                "ip",
                "-6",
                "route",
                "add",
                "2001:db8:ff::/64",
                "via",
                &RG_ADDR.to_string(),
            ],
        )?;
        neigh(r, &GEN_ADDR.to_string(), MAC_G0, &i.rg)?;
        for nh in SINK_NEXTHOPS {
            neigh(r, &nh.to_string(), MAC_S0, &i.rs)?;
        }
        neigh(s, &RS_ADDR.to_string(), MAC_RS, &i.s0)?;
        ns_run(
            s,
            &[
                "ip",
                "-6",
                "route",
                "add",
                "2001:db8:a::/64",
                "via",
                &RS_ADDR.to_string(),
            ],
        )?;
        xdp_attach(s, &i.s0, "xdp_sink")?;
        // The sink stands for another machine: its network stack (the
        // latency probes it receives) must not run on the forwarder's
        // core, where an AF_XDP transmit would otherwise queue it (RPS
        // moves the receive processing to the generator's core).
        set_rps(s, &i.s0, 1 << super::GEN_CORE)
    }

    /// Loads the table and the ECMP /128 into the router's kernel (`ip
    /// -batch`), the table's next-hop ids mapped onto the sink's three
    /// addresses. Returns the routes the kernel refused.
    pub fn load_kernel_routes(&mut self, routes: &[Route]) -> Result<usize> {
        let rs = self.ifs.rs.clone();
        let mut batch = String::with_capacity(routes.len() * 64);
        for r in routes {
            let net = ipnet::Ipv6Net::new(r.addr.into(), r.len).context("table prefix")?;
            let nh = SINK_NEXTHOPS[r.nexthop as usize % SINK_NEXTHOPS.len()];
            batch.push_str(&format!("route replace {net} via {nh} dev {rs}\n"));
        }
        batch.push_str(&format!("route replace {SERVICE}/128"));
        for nh in SINK_NEXTHOPS {
            batch.push_str(&format!(" nexthop via {nh} dev {rs}"));
        }
        batch.push('\n');
        let path = self.temp_file(&format!("routes-{rs}.batch"), &batch)?;
        let path = path.to_string_lossy().into_owned();
        let out = Command::new("ip")
            .args(["-6", "-n", &self.rtr, "-force", "-batch", &path])
            .output()
            .context("cannot run ip -batch")?;
        let refused = String::from_utf8_lossy(&out.stderr)
            .lines()
            .filter(|l| l.contains("Command failed"))
            .count();
        let check = ns_run(
            &self.rtr,
            &["ip", "-6", "route", "show", &format!("{SERVICE}/128")],
        )?;
        if !check.contains("nexthop") {
            bail!("the ECMP route {SERVICE}/128 is not in the router's kernel: {check}");
        }
        Ok(refused)
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for name in &self.created {
            let _ = Command::new("ip")
                .args(["netns", "del", name])
                .stderr(Stdio::null())
                .status();
        }
        for f in &self.files {
            let _ = std::fs::remove_file(f);
        }
    }
}

/// Attaches section `sec` of the bench's XDP object to `dev` in native mode.
pub fn xdp_attach(ns: &str, dev: &str, sec: &str) -> Result<()> {
    ns_run(
        ns,
        &[
            "ip", "link", "set", "dev", dev, "xdpdrv", "obj", XDP_OBJ, "sec", sec,
        ],
    )
    .with_context(|| format!("attaching {sec} to {dev}"))
    .map(|_| ())
}

/// Detaches whatever native XDP program `dev` has.
pub fn xdp_detach(ns: &str, dev: &str) -> Result<()> {
    ns_run(ns, &["ip", "link", "set", "dev", dev, "xdpdrv", "off"]).map(|_| ())
}

/// Packet counters of one interface.
#[derive(Debug, Clone, Copy, Default)]
pub struct LinkStats {
    pub rx_packets: u64,
    pub tx_packets: u64,
    pub tx_dropped: u64,
}

/// Reads `dev`'s counters in `ns` (`/proc/thread-self/net/dev` from a
/// thread inside it: /sys would be the caller's namespace's).
pub fn link_stats(ns: &str, dev: &str) -> Result<LinkStats> {
    // A thread of its own enters the namespace and reads the kernel's
    // counters from /proc/thread-self/net/dev (the reading thread's
    // namespace): well under a millisecond, where launching `ip` took
    // milliseconds, and as long again on a busy machine.
    let (ns, dev) = (ns.to_owned(), dev.to_owned());
    std::thread::spawn(move || -> Result<LinkStats> {
        enter(&ns)?;
        let text = std::fs::read_to_string("/proc/thread-self/net/dev")
            .context("reading /proc/thread-self/net/dev")?;
        parse_net_dev(&text, &dev)
    })
    .join()
    .map_err(|_| anyhow::anyhow!("the counter reader panicked"))?
}

/// `dev`'s counters in a /proc/net/dev listing.
fn parse_net_dev(text: &str, dev: &str) -> Result<LinkStats> {
    let line = text
        .lines()
        .find_map(|l| l.trim_start().strip_prefix(dev)?.strip_prefix(':'))
        .with_context(|| format!("{dev} not in /proc/net/dev"))?;
    let f: Vec<u64> = line
        .split_whitespace()
        .map(|x| x.parse().with_context(|| format!("{dev}: counter {x:?}")))
        .collect::<Result<_>>()?;
    // rx: bytes packets errs drop fifo frame compressed multicast;
    // tx: bytes packets errs drop ...
    anyhow::ensure!(
        f.len() >= 12,
        "{dev}: {} counters in /proc/net/dev",
        f.len()
    );
    Ok(LinkStats {
        rx_packets: f[1],
        tx_packets: f[9],
        tx_dropped: f[11],
    })
}

/// A file's path as a `&str` for a command line.
pub fn path_str(p: &Path) -> Result<&str> {
    p.to_str().context("non-UTF-8 temporary path")
}

/// Sets the CPUs (a mask) that receive processing of `dev`'s queue 0 is
/// steered to (RPS; 0: off, the receiving CPU itself).
pub(crate) fn set_rps(ns: &str, dev: &str, cpus: u32) -> Result<()> {
    let rps = format!("/sys/class/net/{dev}/queues/rx-0/rps_cpus");
    ns_run(ns, &["sh", "-c", &format!("echo {cpus:x} > {rps}")]).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn net_dev_lines_parse() {
        let text = "Inter-|   Receive                                                |  Transmit\n \
             face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n    \
             lo:       0       0    0    0    0     0          0         0        0       0    0    0    0     0       0          0\n  \
             g0: 1280000   20000    0    0    0     0          0         0 64000000 1000000    0   17    0     0       0          0\n";
        let s = parse_net_dev(text, "g0").unwrap();
        assert_eq!(
            (s.rx_packets, s.tx_packets, s.tx_dropped),
            (20000, 1000000, 17)
        );
        assert!(
            parse_net_dev(text, "g").is_err(),
            "a prefix of a name is not the name"
        );
    }
}
