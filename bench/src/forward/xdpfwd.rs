//! The two AF_XDP forwarders of `bench forward`, each on its own thread in
//! the router namespace, pinned to the forwarding core:
//!
//! - [`Bare`]: receive a batch on the ingress port, rewrite the MACs,
//!   decrement the hop limit, transmit on the egress port. No lookup, no
//!   validation: the I/O limit of AF_XDP copy mode on this machine.
//! - [`Flatedge`]: router's real pipeline, a [`Worker`] over both ports
//!   with the FIB (the table plus the ECMP /128) and an adjacency table.
//!
//! Both use router's XDP program (transit IPv6 into the sockets) and
//! [`FramePool`]/[`Port`]; dropping the program detaches it.

use std::net::Ipv6Addr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use fib::{Fib, NextHop, Prefix};
use router::cpu::{rdtsc, TscClock};
use router::dataplane::ip6_input::mac_key;
use router::dataplane::{Adjacency, WorkerState, MAX_BATCH};
use router::worker::{adjacency_table, Coalesce, Coalescer, ReportHandle, Worker};
use router::xdp::{self, Frame, FramePool, PoolConfig, Port, XdpProgram};

use super::lab::{
    enter, GEN_ADDR, MAC_G0, MAC_RG, MAC_RS, MAC_S0, RG_ADDR, RS_ADDR, SERVICE, SINK_NEXTHOPS,
};
use crate::table::Route;

/// How long a forwarder may take to set up (the FIB build included).
const SETUP_TIMEOUT: Duration = Duration::from_secs(120);

fn pin(core: usize) -> Result<()> {
    if core_affinity::set_for_current(core_affinity::CoreId { id: core }) {
        Ok(())
    } else {
        Err(anyhow!("cannot pin the forwarder to CPU {core}"))
    }
}

/// Loads router's XDP program, attaches it to both router veths and opens
/// one port on each (slot 0: ingress `rg`, slot 1: egress `rs`).
fn open_ports(rg: &str, rs: &str) -> Result<(XdpProgram, FramePool, Vec<Port>)> {
    let mut prog = XdpProgram::load().context("loading router's XDP program")?;
    let mut pool = FramePool::new(PoolConfig::default()).context("creating the UMEM")?;
    let mut ports = Vec::new();
    for (slot, name) in [rg, rs].into_iter().enumerate() {
        let slot = slot as u32;
        let ifindex = xdp::ifindex(name).with_context(|| format!("ifindex of {name}"))?;
        prog.attach(ifindex)
            .with_context(|| format!("attaching XDP to {name}"))?;
        prog.set_port_slot(ifindex, slot)
            .with_context(|| format!("port slot of {name}"))?;
        // The kernel releases the sockets of the previous forwarder in
        // deferred work: the queue stays busy (EBUSY) for a while, up to
        // 15-20 s on this VM under load.
        let mut tries = 0;
        let port = loop {
            match Port::open(&mut pool, name, 0) {
                Ok(p) => break p,
                Err(e) if tries < 600 => {
                    let _ = e;
                    tries += 1;
                    thread::sleep(Duration::from_millis(100));
                }
                Err(e) => return Err(e).with_context(|| format!("AF_XDP on {name}")),
            }
        };
        prog.insert_xsk(slot, 0, port.fd())
            .with_context(|| format!("XSKMAP entry of {name}"))?;
        ports.push(port);
    }
    for a in [RG_ADDR, RS_ADDR] {
        prog.add_own_addr(a).context("own address")?;
    }
    Ok((prog, pool, ports))
}

/// Spawns `body` on a thread in namespace `ns` pinned to `core`; `setup`
/// runs first and its result (or error) is waited for.
fn spawn_in<S, T>(
    ns: &str,
    core: usize,
    setup: impl FnOnce() -> Result<S> + Send + 'static,
    body: impl FnOnce(S) -> T + Send + 'static,
) -> Result<JoinHandle<Option<T>>>
where
    T: Send + 'static,
{
    let (tx, rx) = mpsc::channel::<Result<()>>();
    let ns = ns.to_owned();
    let handle = thread::spawn(move || {
        let ready = enter(&ns).and_then(|()| pin(core)).and_then(|()| setup());
        match ready {
            Ok(state) => {
                let _ = tx.send(Ok(()));
                Some(body(state))
            }
            Err(e) => {
                let _ = tx.send(Err(e));
                None
            }
        }
    });
    match rx.recv_timeout(SETUP_TIMEOUT) {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            let _ = handle.join();
            return Err(e);
        }
        Err(_) => return Err(anyhow!("the forwarder's setup did not finish in time")),
    }
    Ok(handle)
}

/// Counters the bare forwarder publishes while it runs.
#[derive(Debug, Default)]
pub struct BareCounters {
    pub rx: AtomicU64,
    pub tx: AtomicU64,
    pub busy_ns: AtomicU64,
    pub syscall_ns: AtomicU64,
}

/// The bare forwarder: a running thread.
#[derive(Debug)]
pub struct Bare {
    stop: Arc<AtomicBool>,
    pub counters: Arc<BareCounters>,
    thread: Option<JoinHandle<Option<()>>>,
}

impl Bare {
    /// Starts the bare forwarder on `core`, taking frames with receive
    /// coalescing `coalesce` (flatedge's, for a like-for-like I/O limit).
    pub fn start(rtr: &str, rg: &str, rs: &str, core: usize, coalesce: Coalesce) -> Result<Bare> {
        let (rg, rs) = (rg.to_owned(), rs.to_owned());
        let stop = Arc::new(AtomicBool::new(false));
        let counters = Arc::new(BareCounters::default());
        let (stop2, c2) = (stop.clone(), counters.clone());
        let setup = move || open_ports(&rg, &rs);
        let thread = spawn_in(rtr, core, setup, move |(prog, mut pool, mut ports)| {
            bare_loop(&mut pool, &mut ports, &stop2, &c2, coalesce);
            drop(ports);
            drop(pool);
            drop(prog); // detaches
        })?;
        Ok(Bare {
            stop,
            counters,
            thread: Some(thread),
        })
    }
}

impl Drop for Bare {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn bare_loop(
    pool: &mut FramePool,
    ports: &mut [Port],
    stop: &AtomicBool,
    c: &BareCounters,
    coalesce: Coalesce,
) {
    let clock = TscClock::new();
    let mut co = Coalescer::new(coalesce, 1, router::cpu::tsc_ns_per_tick());
    let mut rx: Vec<Frame> = Vec::with_capacity(MAX_BATCH);
    let mut tx: Vec<Frame> = Vec::with_capacity(2048 + MAX_BATCH);
    let (mut busy_ticks, mut forwarded, mut rounds) = (0u64, 0u64, 0u64);
    let [ingress, egress] = ports else {
        return;
    };
    while !stop.load(Ordering::Relaxed) {
        let t0 = rdtsc();
        let mut work = egress.reclaim(pool);
        ingress.refill(pool);
        // Frames taken as flatedge's worker takes them (receive
        // coalescing: a port whose rate fills half a batch within the
        // wait lets its frames wait for a fuller one).
        let take = !co.waits(0) || co.ready(0, ingress.rx_pending(), rdtsc()).is_some();
        let n = if take {
            ingress.recv(pool, &mut rx, MAX_BATCH)
        } else {
            0
        };
        if n > 0 {
            co.received(0, n, rdtsc());
        }
        work += n;
        for mut f in rx.drain(..) {
            {
                let d = pool.data_mut(&mut f);
                if d.len() >= 22 {
                    d[0..6].copy_from_slice(&MAC_S0);
                    d[6..12].copy_from_slice(&MAC_RS);
                    d[21] = d[21].wrapping_sub(1);
                }
            }
            tx.push(f);
        }
        if !tx.is_empty() {
            let sent = egress.send(pool, &mut tx);
            forwarded += sent as u64;
            work += sent;
            // The ring stayed full for a long time: drop the excess.
            while tx.len() > 2048 {
                if let Some(f) = tx.pop() {
                    pool.free(f);
                }
            }
        }
        if work > 0 {
            busy_ticks += rdtsc().wrapping_sub(t0);
        } else {
            std::hint::spin_loop();
        }
        rounds += 1;
        if rounds % 256 == 0 {
            publish_bare(c, ingress, egress, busy_ticks, forwarded, &clock);
        }
    }
    publish_bare(c, ingress, egress, busy_ticks, forwarded, &clock);
}

fn publish_bare(
    c: &BareCounters,
    ingress: &Port,
    egress: &Port,
    busy_ticks: u64,
    forwarded: u64,
    clock: &TscClock,
) {
    c.rx.store(ingress.stats.rx, Ordering::Relaxed);
    c.tx.store(forwarded, Ordering::Relaxed);
    c.busy_ns.store(
        (busy_ticks as f64 * clock.ns_per_tick()) as u64,
        Ordering::Relaxed,
    );
    c.syscall_ns.store(
        ingress.stats.syscall_ns + egress.stats.syscall_ns,
        Ordering::Relaxed,
    );
}

/// flatedge's worker: a running thread.
#[derive(Debug)]
pub struct Flatedge {
    stop: Arc<AtomicBool>,
    /// The worker's published counters.
    pub report: ReportHandle,
    thread: Option<JoinHandle<Option<()>>>,
}

/// The FIB of the benchmark: the table (next-hop ids mapped onto the
/// sink's three next hops, ids 1..=3), the ECMP /128 over all three, and
/// the generator's subnet via next hop 0.
/// The router's adjacencies in the lab: next hop 0 is the generator
/// (port 0), next hops 1..=3 the sink's three addresses (port 1), as
/// [`build_fib`] numbers them.
pub fn adjacencies() -> Vec<Adjacency> {
    let adj = |port, src_mac, dst_mac| Adjacency {
        port,
        src_mac,
        dst_mac,
        mtu: 1500,
        resolved: true,
        glean: false,
        unreachable: false,
    };
    let mut v = vec![adj(0, MAC_RG, MAC_G0)];
    v.extend(SINK_NEXTHOPS.iter().map(|_| adj(1, MAC_RS, MAC_S0)));
    v
}

pub fn build_fib(routes: &[Route]) -> Result<Fib> {
    let mut fib = Fib::new();
    for r in routes {
        let p = Prefix::new(r.addr, r.len).context("table prefix")?;
        let nh = 1 + r.nexthop % SINK_NEXTHOPS.len() as u32;
        fib.insert(p, &[NextHop::new(nh)])
            .map_err(|e| anyhow!("inserting a table route: {e}"))?;
    }
    let gen_net = Prefix::new(u128::from(GEN_ADDR), 64).context("generator prefix")?;
    fib.insert(gen_net, &[NextHop::new(0)])
        .map_err(|e| anyhow!("inserting the generator's subnet: {e}"))?;
    let service = Prefix::new(u128::from(SERVICE), 128).context("service prefix")?;
    fib.insert(
        service,
        &[NextHop::new(1), NextHop::new(2), NextHop::new(3)],
    )
    .map_err(|e| anyhow!("inserting the ECMP /128: {e}"))?;
    fib.publish();
    Ok(fib)
}

impl Flatedge {
    pub fn start(
        rtr: &str,
        rg: &str,
        rs: &str,
        core: usize,
        routes: Arc<Vec<Route>>,
        coalesce: router::worker::Coalesce,
    ) -> Result<Flatedge> {
        let (rg, rs) = (rg.to_owned(), rs.to_owned());
        let stop = Arc::new(AtomicBool::new(false));
        let (rtx, rrx) = mpsc::channel();
        let stop2 = stop.clone();
        let setup = move || -> Result<(XdpProgram, Worker, Fib)> {
            let fib = build_fib(&routes)?;
            let (prog, pool, ports) = open_ports(&rg, &rs)?;
            let adj = adjacencies();
            let addrs: Vec<Option<Ipv6Addr>> = vec![Some(RG_ADDR), Some(RS_ADDR)];
            let state = WorkerState::new(1000, 100, 0x5eed, 0);
            let mut worker = Worker::new(
                pool,
                ports,
                addrs,
                fib.reader(),
                adjacency_table(adj),
                state,
                1024,
            )
            .context("building the worker")?;
            worker.set_coalesce(coalesce);
            // As the daemon does: frames to another unicast MAC are dropped.
            for (m, mac) in worker.port_macs().iter().zip([MAC_RG, MAC_RS]) {
                m.store(mac_key(mac), Ordering::Relaxed);
            }
            let _ = rtx.send(worker.report_handle());
            Ok((prog, worker, fib))
        };
        let thread = spawn_in(rtr, core, setup, move |(prog, mut worker, fib)| {
            worker.run(&stop2);
            drop(worker);
            drop(prog); // detaches
            drop(fib);
        })?;
        let report = rrx
            .recv()
            .context("the worker did not hand over its report")?;
        Ok(Flatedge {
            stop,
            report,
            thread: Some(thread),
        })
    }
}

impl Drop for Flatedge {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
