//! The forwarding benchmark (`bench forward`): a generator, a router and a
//! sink in network namespaces of their own ([`lab`]), and four ways of
//! getting the generator's frames to the sink, measured one after the
//! other in the same run:
//!
//! - `ceiling`: the router drops every frame in XDP at its ingress: what
//!   the generator can offer on this machine, the reference of the ratios;
//! - `linux`: the router namespace's kernel forwards (the table and the
//!   ECMP /128 loaded with `ip -batch`);
//! - `bare-xdp`: a bare AF_XDP forwarder ([`xdpfwd::Bare`]): MAC and hop
//!   limit rewrite only, the I/O limit of AF_XDP copy mode;
//! - `flatedge`: router's [`Worker`](router::worker::Worker) with the FIB.
//!
//! The generator is trafgen (Debian netsniff-ng: AF_PACKET TX ring, qdisc
//! bypass) pinned to CPU 0, sending IPv6/UDP frames to the ECMP /128 with
//! random source ports (many flows); the AF_XDP forwarders run pinned to
//! CPU 1. Offered = the generator veth's transmitted plus dropped frames,
//! delivered = the sink veth's received frames (the router's ingress for
//! `ceiling`), both per second over the measured window (after a warm-up).
//!
//! Latency ([`latency`]): one-way, 128-byte UDP probes at half the
//! ceiling of the smallest frame size measured, for linux, bare-xdp and
//! flatedge.

pub mod lab;
pub mod latency;
pub mod xdpfwd;

use std::collections::BTreeMap;
use std::net::Ipv6Addr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use router::dataplane::Stage;
use router::worker::WorkerReport;
use serde::Serialize;

use lab::{
    link_stats, ns_run, path_str, set_rps, sleep_checked, xdp_attach, xdp_detach, Lab, LinkStats,
    GEN_ADDR, INTERRUPTED, MAC_G0, MAC_RG, SERVICE, TRAFFIC_PORT,
};
use latency::Latency;

/// The core of the generator (trafgen, the latency sender).
pub const GEN_CORE: usize = 0;
/// The core of the AF_XDP forwarders.
pub const FWD_CORE: usize = 1;
/// Traffic before the measured window.
const WARMUP: Duration = Duration::from_secs(1);

/// The bundled table.
pub fn default_table() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("data/ipv6-bgp-2021-as199524.tsv")
}

/// One way of forwarding (or not).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Impl {
    Ceiling,
    Linux,
    /// Linux with the router's receive processing on the forwarder's core
    /// (RPS), fed by trafgen in its paced mode (see `Trafgen::start`).
    LinuxRps,
    BareXdp,
    Flatedge,
}

impl Impl {
    pub const ALL: [Impl; 5] = [
        Impl::Ceiling,
        Impl::Linux,
        Impl::LinuxRps,
        Impl::BareXdp,
        Impl::Flatedge,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Impl::Ceiling => "ceiling",
            Impl::Linux => "linux",
            Impl::LinuxRps => "linux-rps",
            Impl::BareXdp => "bare-xdp",
            Impl::Flatedge => "flatedge",
        }
    }

    pub fn parse(s: &str) -> Result<Impl> {
        Impl::ALL
            .into_iter()
            .find(|i| i.name() == s)
            .with_context(|| {
                format!(
                    "unknown implementation {s:?} (ceiling, linux, linux-rps, bare-xdp, flatedge)"
                )
            })
    }
}

/// What to run.
#[derive(Debug, Clone)]
pub struct Options {
    pub seconds: f64,
    pub frame_sizes: Vec<usize>,
    pub impls: Vec<Impl>,
    pub table: PathBuf,
    /// Destinations inside random table prefixes (0: the ECMP /128 only).
    pub table_destinations: usize,
    pub latency: bool,
    /// The latency probes' rate (default: half the ceiling).
    pub latency_pps: Option<f64>,
    /// flatedge's receive coalescing.
    pub coalesce: router::worker::Coalesce,
}

/// One (implementation, frame size) result; one JSON line.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    #[serde(rename = "impl")]
    pub implementation: &'static str,
    pub frame_bytes: usize,
    pub seconds: f64,
    pub offered_pps: f64,
    pub delivered_pps: f64,
    /// Delivered / the ceiling's delivered at this frame size.
    pub delivered_ratio: Option<f64>,
    /// Frames the generator's veth dropped (the router's ring was full).
    pub gen_dropped_pps: f64,
    /// Forwarder busy time per received packet: the AF_XDP forwarders'
    /// own account; for linux-rps the forwarder core's non-idle time in
    /// `/proc/stat` (its softirqs: forwarding, the transmit, the sink's
    /// receive, as the AF_XDP forwarders' syscalls do) per delivered
    /// packet.
    pub fwd_ns_per_pkt: Option<f64>,
    /// The same without the time in syscalls (kicks, wakeups).
    pub fwd_ns_per_pkt_no_syscalls: Option<f64>,
    pub syscall_ns_per_pkt: Option<f64>,
    /// flatedge: ns per packet through each stage (VPP `show runtime`),
    /// plus `loop` (the rest of the busy time outside syscalls: rings,
    /// refill, reclaim, TX queueing) per received packet.
    pub stage_ns_per_pkt: Option<BTreeMap<String, f64>>,
    /// flatedge: packets per batch (the vector size).
    pub pkts_per_batch: Option<f64>,
    pub latency_frame_bytes: Option<usize>,
    pub latency_target_pps: Option<f64>,
    pub latency_sent_pps: Option<f64>,
    pub latency_sent: Option<u64>,
    pub latency_received: Option<u64>,
    pub latency_p50_us: Option<f64>,
    pub latency_p90_us: Option<f64>,
    pub latency_p99_us: Option<f64>,
    pub latency_p999_us: Option<f64>,
    pub latency_max_us: Option<f64>,
}

impl Row {
    fn new(i: Impl, frame_bytes: usize) -> Row {
        Row {
            implementation: i.name(),
            frame_bytes,
            seconds: 0.0,
            offered_pps: 0.0,
            delivered_pps: 0.0,
            delivered_ratio: None,
            gen_dropped_pps: 0.0,
            fwd_ns_per_pkt: None,
            fwd_ns_per_pkt_no_syscalls: None,
            syscall_ns_per_pkt: None,
            stage_ns_per_pkt: None,
            pkts_per_batch: None,
            latency_frame_bytes: None,
            latency_target_pps: None,
            latency_sent_pps: None,
            latency_sent: None,
            latency_received: None,
            latency_p50_us: None,
            latency_p90_us: None,
            latency_p99_us: None,
            latency_p999_us: None,
            latency_max_us: None,
        }
    }

    fn set_latency(&mut self, l: &Latency) {
        self.latency_frame_bytes = Some(latency::PROBE_FRAME_BYTES);
        self.latency_target_pps = Some(l.target_pps);
        self.latency_sent_pps = Some(l.sent_pps);
        self.latency_sent = Some(l.sent);
        self.latency_received = Some(l.received);
        self.latency_p50_us = Some(l.p50_us);
        self.latency_p90_us = Some(l.p90_us);
        self.latency_p99_us = Some(l.p99_us);
        self.latency_p999_us = Some(l.p999_us);
        self.latency_max_us = Some(l.max_us);
    }
}

/// Results plus what the run was.
#[derive(Debug)]
pub struct Report {
    pub rows: Vec<Row>,
    pub table: String,
    pub prefixes: usize,
    pub kernel_refused: usize,
}

/// A trafgen process in the generator namespace, stopped on drop.
#[derive(Debug)]
struct Trafgen {
    child: Option<Child>,
    err_path: PathBuf,
}

/// trafgen's packet configuration: Ethernet + IPv6 + UDP to each of
/// `dsts` in turn (one packet each), random source port, `frame` bytes
/// (no FCS).
fn trafgen_config(frame: usize, dsts: &[Ipv6Addr]) -> String {
    dsts.iter().map(|d| trafgen_packet(frame, *d)).collect()
}

fn trafgen_packet(frame: usize, dst: Ipv6Addr) -> String {
    let udp_len = frame - 54;
    let bytes = |b: &[u8]| {
        b.iter()
            .map(|x| format!("0x{x:02x}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut c = String::from("{\n");
    c.push_str(&format!("  {},\n", bytes(&MAC_RG)));
    c.push_str(&format!("  {},\n", bytes(&MAC_G0)));
    c.push_str("  0x86, 0xdd,\n");
    c.push_str(&format!(
        "  0x60, 0x00, 0x00, 0x00, c16({udp_len}), 17, 64,\n"
    ));
    c.push_str(&format!("  {},\n", bytes(&GEN_ADDR.octets())));
    c.push_str(&format!("  {},\n", bytes(&dst.octets())));
    c.push_str(&format!(
        "  drnd(2), c16({TRAFFIC_PORT}), c16({udp_len}), csumudp6(14, 54)"
    ));
    if frame > 62 {
        c.push_str(&format!(",\n  fill(0x00, {})", frame - 62));
    }
    c.push_str("\n}\n");
    c
}

impl Trafgen {
    /// `paced`: trafgen's paced mode (one `sendto` per frame, at a rate
    /// above what it reaches, so as fast as that mode goes): the ring
    /// mode stops at the first frame the receiver refuses, which a
    /// receiver on another core (RPS) does as soon as its backlog is full.
    fn start(lab: &mut Lab, frame: usize, dsts: &[Ipv6Addr], paced: bool) -> Result<Trafgen> {
        let cfg = lab.temp_file(
            &format!("trafgen-{frame}.cfg"),
            &trafgen_config(frame, dsts),
        )?;
        let err_path = lab.temp_file(&format!("trafgen-{frame}.err"), "")?;
        let err = std::fs::File::create(&err_path).context("trafgen's stderr file")?;
        let cpu = GEN_CORE.to_string();
        let child = Command::new("ip")
            .args(["netns", "exec", &lab.gen, "taskset", "-c", &cpu, "trafgen"])
            .args([
                "-i",
                path_str(&cfg)?,
                "-o",
                &lab.ifs.g0,
                "-P",
                "1",
                "--no-sock-mem",
            ])
            .args(if paced {
                &["-b", "100000000pps"][..]
            } else {
                &[]
            })
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(err)
            // Its own process group: trafgen forks its sender processes,
            // which must all go when it is stopped.
            .process_group(0)
            .spawn()
            .context("cannot start trafgen (apt-get install netsniff-ng)")?;
        Ok(Trafgen {
            child: Some(child),
            err_path,
        })
    }

    /// Fails when trafgen has exited.
    fn check(&mut self) -> Result<()> {
        if let Some(c) = self.child.as_mut() {
            if let Ok(Some(status)) = c.try_wait() {
                self.child = None;
                let err = std::fs::read_to_string(&self.err_path).unwrap_or_default();
                bail!("trafgen exited ({status}): {}", err.trim());
            }
        }
        Ok(())
    }

    fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        // `ip netns exec` and taskset exec: the child is trafgen itself,
        // leader of a process group holding its forked senders too.
        let pgid = nix::unistd::Pid::from_raw(child.id() as i32);
        let _ = nix::sys::signal::killpg(pgid, nix::sys::signal::Signal::SIGINT);
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        // Whatever is left of the group (a sender that outlived its
        // parent) goes now.
        let _ = nix::sys::signal::killpg(pgid, nix::sys::signal::Signal::SIGKILL);
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for Trafgen {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The generator's and the destination's counters, each dated by its own
/// read.
#[derive(Debug, Clone, Copy)]
struct Snap {
    gen_t: Instant,
    gen: LinkStats,
    dst_t: Instant,
    dst: LinkStats,
}

fn snap(lab: &Lab, dst_ns: &str, dst_dev: &str) -> Result<Snap> {
    // Each read dated in its middle, and each rate over its own interval.
    let dated = |ns: &str, dev: &str| -> Result<(Instant, LinkStats)> {
        let t = Instant::now();
        let s = link_stats(ns, dev)?;
        Ok((t + t.elapsed() / 2, s))
    };
    let (gen_t, gen) = dated(&lab.gen, &lab.ifs.g0)?;
    let (dst_t, dst) = dated(dst_ns, dst_dev)?;
    Ok(Snap {
        gen_t,
        gen,
        dst_t,
        dst,
    })
}

/// The implementation being measured, set up.
#[derive(Debug)]
enum Running {
    Ceiling,
    Linux,
    Bare(xdpfwd::Bare),
    Flatedge(xdpfwd::Flatedge),
}

fn start_impl(
    lab: &mut Lab,
    i: Impl,
    routes: &Arc<Vec<table::Route>>,
    coalesce: router::worker::Coalesce,
) -> Result<Running> {
    if matches!(i, Impl::BareXdp | Impl::Flatedge) {
        lab.rewire().context("fresh veths")?;
    }
    Ok(match i {
        Impl::Ceiling => {
            xdp_attach(&lab.rtr, &lab.ifs.rg, "xdp_drop")?;
            Running::Ceiling
        }
        Impl::Linux | Impl::LinuxRps => {
            let refused = lab
                .load_kernel_routes(routes)
                .context("loading the table into the router's kernel")?;
            lab.kernel_refused = refused;
            ns_run(
                &lab.rtr,
                &["sysctl", "-qw", "net.ipv6.conf.all.forwarding=1"],
            )?;
            // linux-rps: the router's receive processing (and so its
            // forwarding) on the forwarder's core; without it the veth
            // hands the frames to the backlog of the generator's core,
            // and Linux forwards there, beside trafgen.
            let cpus = if i == Impl::LinuxRps {
                1u32 << FWD_CORE
            } else {
                0
            };
            set_rps(&lab.rtr, &lab.ifs.rg, cpus)?;
            Running::Linux
        }
        Impl::BareXdp => Running::Bare(xdpfwd::Bare::start(
            &lab.rtr,
            &lab.ifs.rg,
            &lab.ifs.rs,
            FWD_CORE,
            coalesce,
        )?),
        Impl::Flatedge => Running::Flatedge(xdpfwd::Flatedge::start(
            &lab.rtr,
            &lab.ifs.rg,
            &lab.ifs.rs,
            FWD_CORE,
            routes.clone(),
            coalesce,
        )?),
    })
}

fn stop_impl(lab: &Lab, r: Running) -> Result<()> {
    match r {
        Running::Ceiling => xdp_detach(&lab.rtr, &lab.ifs.rg),
        Running::Linux => {
            set_rps(&lab.rtr, &lab.ifs.rg, 0)?;
            ns_run(
                &lab.rtr,
                &["sysctl", "-qw", "net.ipv6.conf.all.forwarding=0"],
            )
            .map(|_| ())
        }
        Running::Bare(b) => {
            drop(b);
            Ok(())
        }
        Running::Flatedge(f) => {
            drop(f);
            Ok(())
        }
    }
}

/// Forwarder-side counters at one instant.
#[derive(Debug, Clone)]
enum FwdSnap {
    None,
    Bare {
        rx: u64,
        busy_ns: u64,
        syscall_ns: u64,
    },
    Worker(Box<WorkerReport>),
}

fn fwd_snap(r: &Running) -> Result<FwdSnap> {
    Ok(match r {
        Running::Bare(b) => FwdSnap::Bare {
            rx: b.counters.rx.load(Ordering::Relaxed),
            busy_ns: b.counters.busy_ns.load(Ordering::Relaxed),
            syscall_ns: b.counters.syscall_ns.load(Ordering::Relaxed),
        },
        Running::Flatedge(f) => {
            let g = f
                .report
                .lock()
                .map_err(|_| anyhow::anyhow!("the worker's report lock is poisoned"))?;
            FwdSnap::Worker(Box::new(g.clone()))
        }
        _ => FwdSnap::None,
    })
}

/// Fills the forwarder columns of `row` from two snapshots.
fn fwd_columns(row: &mut Row, a: &FwdSnap, b: &FwdSnap) {
    match (a, b) {
        (
            FwdSnap::Bare {
                rx: r0,
                busy_ns: b0,
                syscall_ns: s0,
            },
            FwdSnap::Bare {
                rx: r1,
                busy_ns: b1,
                syscall_ns: s1,
            },
        ) => {
            let rx = r1.saturating_sub(*r0).max(1) as f64;
            let busy = b1.saturating_sub(*b0) as f64;
            let sys = s1.saturating_sub(*s0) as f64;
            row.fwd_ns_per_pkt = Some(busy / rx);
            row.fwd_ns_per_pkt_no_syscalls = Some((busy - sys).max(0.0) / rx);
            row.syscall_ns_per_pkt = Some(sys / rx);
        }
        (FwdSnap::Worker(a), FwdSnap::Worker(b)) => {
            let rx = b.rx_packets().saturating_sub(a.rx_packets()).max(1) as f64;
            let busy = b.busy_ns() - a.busy_ns();
            let sys = b.syscall_ns().saturating_sub(a.syscall_ns()) as f64;
            row.fwd_ns_per_pkt = Some(busy / rx);
            row.fwd_ns_per_pkt_no_syscalls = Some((busy - sys).max(0.0) / rx);
            row.syscall_ns_per_pkt = Some(sys / rx);
            let mut stages = BTreeMap::new();
            let mut stage_ns_total = 0.0;
            for (k, s) in Stage::ALL.iter().enumerate() {
                let (sa, sb) = (a.counters.stages[k], b.counters.stages[k]);
                let pkts = sb.packets.saturating_sub(sa.packets);
                let ns = sb.ticks.saturating_sub(sa.ticks) as f64 * b.ns_per_tick;
                stage_ns_total += ns;
                if pkts > 0 {
                    stages.insert(s.name().to_string(), ns / pkts as f64);
                }
            }
            let prefetch = b
                .stats
                .prefetch_ticks
                .saturating_sub(a.stats.prefetch_ticks) as f64
                * b.ns_per_tick;
            stages.insert("prefetch".to_string(), prefetch / rx);
            stages.insert(
                "loop".to_string(),
                (busy - sys - stage_ns_total - prefetch).max(0.0) / rx,
            );
            row.stage_ns_per_pkt = Some(stages);
            let batches = b.stats.batches.saturating_sub(a.stats.batches).max(1) as f64;
            row.pkts_per_batch = Some(rx / batches);
        }
        _ => {}
    }
}

/// Nanoseconds CPU `cpu` has spent not idle (`/proc/stat`, in ticks of
/// 10 ms: about 0.2% of a 5 s run).
fn cpu_busy_ns(cpu: usize) -> Result<f64> {
    let stat = std::fs::read_to_string("/proc/stat").context("/proc/stat")?;
    let name = format!("cpu{cpu}");
    let line = stat
        .lines()
        .find(|l| l.split_whitespace().next() == Some(name.as_str()))
        .with_context(|| format!("no {name} in /proc/stat"))?;
    let v: Vec<f64> = line
        .split_whitespace()
        .skip(1)
        .map(|x| x.parse().unwrap_or(0.0))
        .collect();
    // user nice system idle iowait irq softirq steal ...
    let busy: f64 = v.iter().take(8).sum::<f64>()
        - v.get(3).unwrap_or(&0.0)
        - v.get(4).unwrap_or(&0.0)
        - v.get(7).unwrap_or(&0.0);
    // USER_HZ, which /proc/stat counts in: 100 on every Linux ABI.
    Ok(busy * 1e9 / 100.0)
}

/// Times a measurement is tried when trafgen stops on its own.
const TRAFGEN_TRIES: usize = 3;

/// Runs `measure`, again (at most [`TRAFGEN_TRIES`] times in all) when it
/// failed because trafgen stopped on its own: on a busy host trafgen
/// sometimes quits with "Flushing TX_RING failed: Resource temporarily
/// unavailable", which says nothing of the forwarder. Says so on stderr.
fn measured(mut measure: impl FnMut() -> Result<Row>) -> Result<Row> {
    let mut tries = 1;
    loop {
        match measure() {
            Err(e) if tries < TRAFGEN_TRIES && format!("{e:#}").contains("trafgen exited") => {
                eprintln!("note: {e:#}; measuring again");
                tries += 1;
            }
            other => return other,
        }
    }
}

/// Measures one implementation at one frame size.
fn throughput(
    lab: &mut Lab,
    i: Impl,
    frame: usize,
    dsts: &[Ipv6Addr],
    seconds: f64,
    routes: &Arc<Vec<table::Route>>,
    coalesce: router::worker::Coalesce,
) -> Result<Row> {
    let running =
        start_impl(lab, i, routes, coalesce).with_context(|| format!("starting {}", i.name()))?;
    let result = (|| -> Result<Row> {
        let (dst_ns, dst_dev) = match i {
            Impl::Ceiling => (lab.rtr.clone(), lab.ifs.rg.clone()),
            _ => (lab.sink.clone(), lab.ifs.s0.clone()),
        };
        let mut gen = Trafgen::start(lab, frame, dsts, i == Impl::LinuxRps)?;
        sleep_checked(WARMUP)?;
        gen.check()?;
        let (s0, f0) = (snap(lab, &dst_ns, &dst_dev)?, fwd_snap(&running)?);
        let c0 = cpu_busy_ns(FWD_CORE)?;
        sleep_checked(Duration::from_secs_f64(seconds))?;
        let c1 = cpu_busy_ns(FWD_CORE)?;
        let (s1, f1) = (snap(lab, &dst_ns, &dst_dev)?, fwd_snap(&running)?);
        gen.check()?;
        gen.stop();
        let gen_dt = (s1.gen_t - s0.gen_t).as_secs_f64();
        let dt = (s1.dst_t - s0.dst_t).as_secs_f64();
        let mut row = Row::new(i, frame);
        row.seconds = dt;
        let tx = s1.gen.tx_packets.saturating_sub(s0.gen.tx_packets);
        let dropped = s1.gen.tx_dropped.saturating_sub(s0.gen.tx_dropped);
        row.offered_pps = (tx + dropped) as f64 / gen_dt;
        row.gen_dropped_pps = dropped as f64 / gen_dt;
        row.delivered_pps = s1.dst.rx_packets.saturating_sub(s0.dst.rx_packets) as f64 / dt;
        fwd_columns(&mut row, &f0, &f1);
        if i == Impl::LinuxRps && row.delivered_pps > 0.0 {
            row.fwd_ns_per_pkt = Some((c1 - c0) / dt / row.delivered_pps);
        }
        Ok(row)
    })();
    let stopped = stop_impl(lab, running);
    let row = result.with_context(|| format!("{} at {frame} bytes", i.name()))?;
    stopped.with_context(|| format!("stopping {}", i.name()))?;
    Ok(row)
}

/// Measures latency through one implementation.
fn latency_of(
    lab: &mut Lab,
    i: Impl,
    rate: f64,
    seconds: f64,
    routes: &Arc<Vec<table::Route>>,
    coalesce: router::worker::Coalesce,
) -> Result<Latency> {
    let running =
        start_impl(lab, i, routes, coalesce).with_context(|| format!("starting {}", i.name()))?;
    let l = latency::measure(
        &lab.gen,
        &lab.sink,
        GEN_CORE,
        rate,
        Duration::from_secs_f64(seconds),
    );
    let stopped = stop_impl(lab, running);
    let l = l.with_context(|| format!("latency through {}", i.name()))?;
    stopped?;
    Ok(l)
}

use crate::table;

/// Sets INTERRUPTED on Ctrl-C or SIGTERM, so that the run stops and the
/// namespaces are deleted.
fn watch_signals() -> Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("signal runtime")?;
    std::thread::spawn(move || {
        rt.block_on(async {
            let Ok(mut term) =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            else {
                return;
            };
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            INTERRUPTED.store(true, Ordering::Relaxed);
        });
    });
    Ok(())
}

/// Runs the benchmark.
pub fn run(o: &Options) -> Result<Report> {
    if o.frame_sizes.iter().any(|&f| !(62..=1514).contains(&f)) {
        bail!("frame sizes must be within 62..=1514 bytes (Ethernet + IPv6 + UDP, MTU 1500)");
    }
    // The roles are pinned to CPUs 0 and 1 (the lab's RPS masks and the
    // CPU-time reads name them too): both must be this process's.
    let allowed: Vec<usize> = core_affinity::get_core_ids()
        .unwrap_or_default()
        .iter()
        .map(|c| c.id)
        .collect();
    if !(allowed.contains(&GEN_CORE) && allowed.contains(&FWD_CORE)) {
        bail!(
            "needs CPUs {GEN_CORE} (generator) and {FWD_CORE} (forwarder); this process may use CPUs {allowed:?}"
        );
    }
    // trafgen -v exits with 1: only whether it runs matters.
    Command::new("trafgen")
        .arg("-v")
        .output()
        .context("trafgen is missing: apt-get install netsniff-ng (scripts/setup.sh)")?;
    let routes = Arc::new(table::load(&o.table)?);
    let dsts: Vec<Ipv6Addr> = if o.table_destinations == 0 {
        vec![SERVICE]
    } else {
        crate::addrs::in_table(&routes, o.table_destinations, 7)
            .into_iter()
            .map(Ipv6Addr::from)
            .collect()
    };
    watch_signals()?;
    let mut lab = Lab::new()?;
    // The ceiling is always measured: the ratios need it.
    let mut impls = o.impls.clone();
    impls.push(Impl::Ceiling);
    impls.sort();
    impls.dedup();
    let mut rows = Vec::new();
    for &frame in &o.frame_sizes {
        let mut ceiling = None;
        for &i in &impls {
            let mut row =
                measured(|| throughput(&mut lab, i, frame, &dsts, o.seconds, &routes, o.coalesce))?;
            if i == Impl::Ceiling {
                ceiling = Some(row.delivered_pps);
            }
            row.delivered_ratio = ceiling.filter(|&c| c > 0.0).map(|c| row.delivered_pps / c);
            rows.push(row);
        }
    }
    if o.latency {
        let smallest = o.frame_sizes.iter().min().copied().unwrap_or(64);
        let ceiling = rows
            .iter()
            .find(|r| r.implementation == Impl::Ceiling.name() && r.frame_bytes == smallest)
            .map_or(0.0, |r| r.delivered_pps);
        let rate = o.latency_pps.unwrap_or(ceiling / 2.0);
        for &i in &impls {
            if i == Impl::Ceiling {
                continue;
            }
            let l = latency_of(&mut lab, i, rate, o.seconds, &routes, o.coalesce)?;
            for r in rows.iter_mut().filter(|r| r.implementation == i.name()) {
                r.set_latency(&l);
            }
        }
    }
    rows.retain(|r| o.impls.iter().any(|i| i.name() == r.implementation));
    Ok(Report {
        rows,
        table: o.table.display().to_string(),
        prefixes: routes.len(),
        kernel_refused: lab.kernel_refused,
    })
}

/// The human table.
pub fn print_table(rep: &Report, o: &Options) {
    println!(
        "table {}: {} prefixes (kernel refused {}) + a 3-way ECMP /128; {:.1} s per run after {} s of warm-up; trafgen on CPU {GEN_CORE}, AF_XDP forwarders on CPU {FWD_CORE}",
        rep.table,
        rep.prefixes,
        rep.kernel_refused,
        o.seconds,
        WARMUP.as_secs()
    );
    if o.table_destinations == 0 {
        println!("traffic: to the ECMP /128, random source ports");
    } else {
        println!(
            "traffic: to {} addresses inside random table prefixes in turn, random source ports",
            o.table_destinations
        );
    }
    if o.coalesce.usecs == 0 {
        println!("flatedge and bare-xdp: receive coalescing off (rx-usecs 0)");
    } else {
        println!(
            "flatedge and bare-xdp: receive coalescing rx-usecs {} rx-frames {} (frames wait while a port's rate fills half a batch within rx-usecs)",
            o.coalesce.usecs, o.coalesce.frames
        );
    }
    println!(
        "{:<10} {:>6} {:>9} {:>10} {:>9} {:>9} {:>11} {:>9} {:>9}",
        "impl",
        "frame",
        "offered",
        "delivered",
        "delivered",
        "gen drop",
        "fwd busy",
        "excl.",
        "syscalls"
    );
    println!(
        "{:<10} {:>6} {:>9} {:>10} {:>9} {:>9} {:>11} {:>9} {:>9}",
        "", "bytes", "kpps", "kpps", "/ceiling", "kpps", "ns/pkt", "syscalls", "ns/pkt"
    );
    let opt = |x: Option<f64>, prec: usize| x.map_or("-".to_string(), |v| format!("{v:.prec$}"));
    for r in &rep.rows {
        println!(
            "{:<10} {:>6} {:>9.1} {:>10.1} {:>9} {:>9.1} {:>11} {:>9} {:>9}",
            r.implementation,
            r.frame_bytes,
            r.offered_pps / 1e3,
            r.delivered_pps / 1e3,
            r.delivered_ratio
                .map_or("-".to_string(), |v| format!("{:.1}%", v * 100.0)),
            r.gen_dropped_pps / 1e3,
            opt(r.fwd_ns_per_pkt, 1),
            opt(r.fwd_ns_per_pkt_no_syscalls, 1),
            opt(r.syscall_ns_per_pkt, 1),
        );
    }
    for r in rep.rows.iter().filter(|r| r.stage_ns_per_pkt.is_some()) {
        let stages = r.stage_ns_per_pkt.as_ref().map_or(String::new(), |m| {
            let mut v: Vec<String> = Stage::ALL
                .iter()
                .filter_map(|s| m.get(s.name()).map(|ns| format!("{} {ns:.1}", s.name())))
                .collect();
            for k in ["prefetch", "loop"] {
                if let Some(ns) = m.get(k) {
                    v.push(format!("{k} {ns:.1}"));
                }
            }
            v.join(", ")
        });
        println!(
            "  {} {} B: ns/packet by stage: {stages}; {:.1} packets per batch",
            r.implementation,
            r.frame_bytes,
            r.pkts_per_batch.unwrap_or(0.0)
        );
    }
    let by = |name: &str, f: usize| {
        rep.rows
            .iter()
            .find(|r| r.implementation == name && r.frame_bytes == f)
    };
    for &f in &o.frame_sizes {
        if let Some(fe) = by("flatedge", f) {
            let mut parts = Vec::new();
            if let Some(b) = by("bare-xdp", f).filter(|b| b.delivered_pps > 0.0) {
                parts.push(format!(
                    "{:.1}% of bare-xdp",
                    100.0 * fe.delivered_pps / b.delivered_pps
                ));
            }
            for linux in ["linux", "linux-rps"] {
                if let Some(l) = by(linux, f).filter(|l| l.delivered_pps > 0.0) {
                    parts.push(format!(
                        "{:.2}x {linux}",
                        fe.delivered_pps / l.delivered_pps
                    ));
                }
            }
            if !parts.is_empty() {
                println!("flatedge at {f} B: {}", parts.join(", "));
            }
        }
    }
    let lat: Vec<&Row> = {
        let mut seen = Vec::new();
        rep.rows
            .iter()
            .filter(|r| r.latency_p50_us.is_some())
            .filter(|r| {
                let new = !seen.contains(&r.implementation);
                seen.push(r.implementation);
                new
            })
            .collect()
    };
    if let Some(first) = lat.first() {
        println!(
            "latency: one-way, {}-byte frames, asked for {:.1} kpps, missed slots skipped \
             (sent kpps: the rate reached), send to the sink's kernel receive timestamp",
            latency::PROBE_FRAME_BYTES,
            first.latency_target_pps.unwrap_or(0.0) / 1e3,
        );
        println!(
            "{:<10} {:>9} {:>9} {:>9} {:>8} {:>8} {:>8} {:>8} {:>8}",
            "impl",
            "sent kpps",
            "sent",
            "received",
            "p50 µs",
            "p90 µs",
            "p99 µs",
            "p99.9 µs",
            "max µs"
        );
        for r in lat {
            println!(
                "{:<10} {:>9.1} {:>9} {:>9} {:>8} {:>8} {:>8} {:>8} {:>8}",
                r.implementation,
                r.latency_sent_pps.unwrap_or(0.0) / 1e3,
                r.latency_sent.unwrap_or(0),
                r.latency_received.unwrap_or(0),
                opt(r.latency_p50_us, 1),
                opt(r.latency_p90_us, 1),
                opt(r.latency_p99_us, 1),
                opt(r.latency_p999_us, 1),
                opt(r.latency_max_us, 1),
            );
        }
    }
}

/// One JSON object per line.
pub fn print_json(rep: &Report) -> Result<()> {
    for r in &rep.rows {
        println!(
            "{}",
            serde_json::to_string(r).context("serialising a result")?
        );
    }
    Ok(())
}
