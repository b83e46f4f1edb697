//! The worker loop: one thread owning its AF_XDP ports (one UMEM shared by
//! them, so forwarding copies nothing), running [`process_batch`] over each
//! batch received and moving every frame where its verdict says.
//!
//! Per round, for each port in turn: reclaim its completions, refill its
//! fill ring, receive up to [`MAX_BATCH`] frames, load the FIB snapshot and
//! the adjacency table once for the batch, run the stages, then queue each
//! frame: [`Verdict::Forward`] on its egress port's TX buffer,
//! [`Verdict::IcmpError`] (the frame now holds the error) on the ingress
//! port's, [`Verdict::Drop`] and [`Verdict::Punt`] back to the pool. At the
//! end of the round every port's TX buffer is flushed once ([`Port::send`]
//! kicks the kernel when the ring asks: need-wakeup).
//!
//! Nothing is allocated, locked or logged per packet: the RX and TX
//! buffers are allocated once in [`Worker::new`]; the FIB and the
//! adjacency table are `ArcSwap` loads (no lock) once per batch.
//!
//! Receive coalescing ([`Coalesce`], the config's `rx-usecs` and
//! `rx-frames`, named after `ethtool -C`): while a port's frames arrive
//! fast enough to fill half a batch of `rx-frames` within `rx-usecs`, they
//! wait in its rx ring until that many are there or the first seen has
//! waited `rx-usecs` (plus the round in progress), so that a round's fixed
//! costs (ring indexes the kernel writes on another core, the `sendto`
//! kick, the snapshot loads) are shared by a whole batch instead of the
//! two or three frames that arrive between two rounds of a fast poll loop.
//! The rate is decided again every millisecond of traffic; a frame that
//! comes after a millisecond without any is taken at once, and frames stop
//! waiting until the next window's rate says otherwise. Hysteresis: a
//! waiting port stops waiting only below a quarter of a batch per
//! `rx-usecs`, so between a quarter and a half, a port that was waiting
//! keeps waiting (each batch then waits the whole `rx-usecs`); a port that
//! was not waiting starts only at half a batch. Below that, frames are
//! taken as they come.
//!
//! While frames wait, the headers of those whose rx descriptors the kernel
//! has finished writing (whole cache lines of them) are prefetched
//! ([`Port::prefetch_pending`]): the kernel's copy wrote them on another
//! core, and the batch then finds them in this one's cache (in `bench
//! forward`, `ip6_input` 10 -> 6.5 ns and the loop 42 -> 35 ns per packet,
//! for 4 ns of prefetching, which counts as busy time).
//!
//! Idle policy: busy-poll, then block. After [`IDLE_SPINS`] rounds that
//! moved nothing (and with nothing left to transmit but frames waiting for
//! a down link; tens of milliseconds without traffic), the worker blocks in `poll()` on its ports' sockets
//! for at most [`IDLE_WAIT`]; the first frame to arrive wakes it. A plain sleep instead held every packet that
//! arrived meanwhile for the whole sleep (timer slack included), which
//! under a paced stream meant milliseconds of queueing and a full ring.

use std::net::Ipv6Addr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::SyncSender;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::{ArcSwap, ArcSwapOption};
use fib::{FibReader, Kept, SnapshotCache};

use crate::cpu::{rdtsc, tsc_ns_between, tsc_ticks, TscClock};
use crate::dataplane::ip6_input::OFF_DST;
use crate::dataplane::{
    process_batch, Adjacency, Counters, DropReason, Ingress, Packet, PortIndex, Verdict,
    WorkerState, MAX_BATCH,
};
use crate::xdp::{Frame, FramePool, Port, PortStats};

/// How often a running worker publishes its counters ([`WorkerReport`]).
pub const REPORT_INTERVAL: Duration = Duration::from_millis(100);

/// Rounds without work before the worker blocks: tens of milliseconds of
/// spinning (a dataplane core is dedicated, as with DPDK), so traffic with
/// gaps never waits for a wakeup; blocking after 4,096 rounds (a few
/// hundred microseconds) put wakeups into the latency tail (p99 1.2 ms
/// instead of 73 us at 100 kpps in `bench forward`).
pub const IDLE_SPINS: u32 = 1 << 20;
/// The longest idle wait (the stop flag is checked after each).
pub const IDLE_WAIT: Duration = Duration::from_millis(10);

/// Receive coalescing, the polled-ring counterpart of a NIC's
/// `rx-usecs`/`rx-frames` (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Coalesce {
    /// The longest a frame waits for its batch to fill, in microseconds
    /// (`rx-usecs`); 0 turns coalescing off.
    pub usecs: u32,
    /// The batch a port waits for (`rx-frames`), 1..=[`MAX_BATCH`].
    pub frames: u32,
}

impl Coalesce {
    /// Frames taken as they come.
    pub const OFF: Coalesce = Coalesce {
        usecs: 0,
        frames: 1,
    };
}

/// The window over which a port's arrival rate is measured.
const RATE_WINDOW: Duration = Duration::from_millis(1);

/// One port's coalescing state.
#[derive(Debug, Clone, Copy, Default)]
struct PortCoalesce {
    /// The arrival rate fills half a batch within the wait: frames wait.
    on: bool,
    /// When a partial batch was first seen waiting (TSC).
    since: Option<u64>,
    /// Start of the rate window (TSC) and frames received in it.
    window_start: u64,
    window_frames: u64,
    /// When frames were last received (TSC).
    last_rx: u64,
}

/// Decides, per port, whether to receive now or let the frames wait for
/// a fuller batch (TSC ticks throughout; no clock call of its own). The
/// bench's bare AF_XDP forwarder takes frames through one too, so that
/// the two forwarders' I/O is compared like for like.
#[derive(Debug, Clone)]
pub struct Coalescer {
    frames: u32,
    wait: u64,
    window: u64,
    ports: Vec<PortCoalesce>,
}

impl Coalescer {
    /// Coalescing `c` for `ports` ports, on a TSC of `ns_per_tick`.
    pub fn new(c: Coalesce, ports: usize, ns_per_tick: f64) -> Self {
        let frames = c.frames.clamp(1, MAX_BATCH as u32);
        Coalescer {
            frames,
            // Waiting for a batch of one is not waiting.
            wait: if c.usecs == 0 || frames == 1 {
                0
            } else {
                tsc_ticks(Duration::from_micros(c.usecs.into()), ns_per_tick)
            },
            window: tsc_ticks(RATE_WINDOW, ns_per_tick),
            ports: vec![PortCoalesce::default(); ports],
        }
    }

    /// Whether port `p`'s frames may be made to wait (coalescing is
    /// configured and its arrival rate is high enough).
    #[inline]
    pub fn waits(&self, p: usize) -> bool {
        self.wait > 0 && self.ports[p].on
    }

    /// Whether port `p`, with `pending` frames in its rx ring at `now`,
    /// receives now: a full batch is there, or the first partial one seen
    /// has waited long enough. `None`: let them wait; `Some(waited)`:
    /// receive, `waited` telling whether the frames were left waiting in
    /// an earlier round.
    pub fn ready(&mut self, p: usize, pending: u32, now: u64) -> Option<bool> {
        if pending == 0 {
            return None;
        }
        let s = &mut self.ports[p];
        if s.on && s.since.is_none() && now.wrapping_sub(s.last_rx) >= self.window {
            // Nothing came for a whole rate window: the traffic paused, and
            // a batch would not fill. Take these frames now and stop
            // waiting until a window's rate says otherwise. (Shorter gaps
            // are common in a loaded stream: a bursty sender, softirqs.)
            s.on = false;
        }
        if !s.on || pending >= self.frames {
            return Some(s.since.take().is_some());
        }
        match s.since {
            None => {
                s.since = Some(now);
                None
            }
            Some(t) if now.wrapping_sub(t) >= self.wait => {
                s.since = None;
                Some(true)
            }
            Some(_) => None,
        }
    }

    /// `n` frames were received from port `p` at `now`: once a window has
    /// passed, whether frames wait is decided again from the rate seen.
    pub fn received(&mut self, p: usize, n: usize, now: u64) {
        if self.wait == 0 {
            return;
        }
        let mut s = self.ports[p];
        s.last_rx = now;
        s.window_frames += n as u64;
        let elapsed = now.wrapping_sub(s.window_start);
        if elapsed >= self.window {
            s.on = self.waiting_pays(s.on, s.window_frames, elapsed);
            s.window_start = now;
            s.window_frames = 0;
        }
        self.ports[p] = s;
    }

    /// Whether frames should wait, given that `frames` arrived over
    /// `elapsed` ticks and whether they waited so far: from half a batch
    /// per wait on, and until below a quarter (hysteresis).
    fn waiting_pays(&self, on: bool, frames: u64, elapsed: u64) -> bool {
        let per_wait = u128::from(frames) * u128::from(self.wait) / u128::from(elapsed.max(1));
        let need = u128::from(self.frames);
        if on {
            per_wait * 4 >= need
        } else {
            per_wait * 2 >= need
        }
    }
}

/// The adjacency table shared with the control side, indexed by next-hop
/// id: the control side stores a whole new table
/// (`table.store(Arc::new(v))`), the worker loads it once per batch.
pub type AdjacencyTable = Arc<ArcSwap<Vec<Adjacency>>>;

/// A new shared adjacency table holding `adjacencies`.
pub fn adjacency_table(adjacencies: Vec<Adjacency>) -> AdjacencyTable {
    Arc::new(ArcSwap::from_pointee(adjacencies))
}

/// Each port's own MAC as `ip6_input` compares it
/// ([`crate::dataplane::ip6_input::mac_key`]; 0: not known, no check),
/// indexed like the worker's ports: the control side stores a port's MAC
/// when it learns it or the link's address changes, the worker reads it
/// once per batch.
pub type PortMacs = Arc<[AtomicU64]>;

/// Each port's source address for ICMPv6 errors, which the control side
/// keeps current as addresses come and go (read once per batch).
pub type PortAddrs = Arc<[ArcSwapOption<Ipv6Addr>]>;

/// Counters of the worker loop itself (the stages count in
/// [`WorkerState::counters`], the ports in [`Port::stats`]).
#[derive(Debug, Default, Clone, Copy)]
pub struct LoopStats {
    /// Rounds over all ports.
    pub rounds: u64,
    /// Batches processed (non-empty receives).
    pub batches: u64,
    /// Idle waits (blocking `poll()`s).
    pub idle_sleeps: u64,
    /// Batches whose frames receive coalescing left waiting in the rx
    /// ring for at least one round ([`Coalesce`]).
    pub waited_batches: u64,
    /// TSC ticks spent in rounds that moved frames (syscalls included),
    /// and prefetching the headers of frames left waiting.
    pub busy_ticks: u64,
    /// Of those, the ticks spent prefetching the headers of frames
    /// receive coalescing left waiting ([`Port::prefetch_pending`]).
    pub prefetch_ticks: u64,
    /// Destinations on a connected subnet handed to the control side for
    /// resolution ([`DropReason::NeighborMiss`]).
    pub glean_sent: u64,
    /// Such destinations not handed over because its queue was full.
    pub glean_overflow: u64,
}

/// A worker's counters as the control side reads them: a copy published
/// every [`REPORT_INTERVAL`] while the worker runs, and when it stops.
#[derive(Debug, Clone, Default)]
pub struct WorkerReport {
    /// Stage counters and drops.
    pub counters: Counters,
    /// Each port's counters, in port order.
    pub ports: Vec<PortStats>,
    /// The loop's own counters.
    pub stats: LoopStats,
    /// Converts the ticks of [`StageStats`](crate::dataplane::StageStats)
    /// and [`LoopStats::busy_ticks`] to nanoseconds.
    pub ns_per_tick: f64,
}

impl WorkerReport {
    /// Frames received on all ports.
    pub fn rx_packets(&self) -> u64 {
        self.ports.iter().map(|p| p.rx).sum()
    }

    /// Nanoseconds in syscalls (kicks and wakeups) on all ports, at this
    /// report's rate: the ports time them at the rate calibrated once
    /// over 5 ms (`cpu::tsc_ns_per_tick`), busy time and the stages at
    /// the worker's whole-life rate (`ns_per_tick`); busy time minus
    /// syscalls must subtract like from like (a 1% difference is 5 ns of
    /// the 60 outside syscalls).
    pub fn syscall_ns(&self) -> u64 {
        let ns: u64 = self.ports.iter().map(|p| p.syscall_ns).sum();
        let calibrated = crate::cpu::tsc_ns_per_tick();
        // `ns_per_tick` is 1.0 until the worker's clock has run 1 ms, 0
        // in a report the worker has not written yet.
        if self.ns_per_tick <= 0.0 || self.ns_per_tick == 1.0 || calibrated <= 0.0 {
            return ns;
        }
        (ns as f64 * self.ns_per_tick / calibrated) as u64
    }

    /// Nanoseconds of busy rounds.
    pub fn busy_ns(&self) -> f64 {
        self.stats.busy_ticks as f64 * self.ns_per_tick
    }
}

/// The handle the control side reads a worker's report through. The
/// worker only `try_lock`s it (a reader holding it delays a publication
/// to the next interval, never the worker).
pub type ReportHandle = Arc<Mutex<WorkerReport>>;

/// A destination the dataplane could not reach on a connected subnet
/// (its neighbour is unresolved). The control side finds its subnet, asks
/// the kernel to resolve it and installs a host route.
pub type GleanRequest = Ipv6Addr;

/// One worker: its ports, their shared pool, and its view of the FIB and
/// the adjacencies.
#[derive(Debug)]
pub struct Worker {
    pool: FramePool,
    ports: Vec<Port>,
    /// The FIB snapshot and the adjacency table, kept between batches
    /// (one pointer compare per batch while nothing changed), let go
    /// before the worker blocks.
    fib: SnapshotCache,
    adjacencies: Kept<Vec<Adjacency>>,
    macs: PortMacs,
    /// Each port's source of ICMPv6 errors (`Ingress::addr`).
    icmp_srcs: PortAddrs,
    /// Counters and the ICMPv6 error rate limiter.
    pub state: WorkerState,
    /// The loop's own counters.
    pub stats: LoopStats,
    rx: Vec<Frame>,
    tx: Vec<Vec<Frame>>,
    verdicts: [Verdict; MAX_BATCH],
    /// TSC reading when the worker was built, and the calibrated rate:
    /// the rate limiter's clock without a `clock_gettime` per batch.
    epoch: u64,
    ns_per_tick: f64,
    clock: TscClock,
    report: ReportHandle,
    glean: Option<Gleaner>,
    /// Per port, the port an ICMPv6 error in reply to its traffic leaves
    /// on: the first of the worker's ports on the same interface.
    reply_port: Vec<usize>,
    coalesce: Coalescer,
    /// TSC ticks spent prefetching in the round in progress.
    round_prefetch: u64,
}

/// Why a worker cannot be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WorkerError {
    /// `ports` and `addrs` differ in length.
    #[error("{ports} ports but {addrs} ingress addresses")]
    Mismatch {
        /// Number of ports.
        ports: usize,
        /// Number of addresses.
        addrs: usize,
    },
    /// More ports than a [`PortIndex`] names.
    #[error("too many ports ({0})")]
    TooManyPorts(usize),
}

impl Worker {
    /// A worker over `ports` (all opened on `pool`); `addrs[i]` is the
    /// source of ICMPv6 errors sent out of `ports[i]` (see
    /// [`Ingress::addr`]). `tx_buffer` frames may wait per port for room
    /// in its TX ring (the ring size is a good value).
    pub fn new(
        pool: FramePool,
        ports: Vec<Port>,
        addrs: Vec<Option<Ipv6Addr>>,
        fib: FibReader,
        adjacencies: AdjacencyTable,
        state: WorkerState,
        tx_buffer: usize,
    ) -> Result<Worker, WorkerError> {
        if ports.len() != addrs.len() {
            return Err(WorkerError::Mismatch {
                ports: ports.len(),
                addrs: addrs.len(),
            });
        }
        if ports.len() > usize::from(PortIndex::MAX) {
            return Err(WorkerError::TooManyPorts(ports.len()));
        }
        let icmp_srcs = addrs
            .into_iter()
            .map(|a| ArcSwapOption::new(a.map(Arc::new)))
            .collect();
        let macs = (0..ports.len()).map(|_| AtomicU64::new(0)).collect();
        let reply_port = ports
            .iter()
            .enumerate()
            .map(|(i, p)| {
                ports
                    .iter()
                    .position(|q| q.ifname() == p.ifname())
                    .unwrap_or(i)
            })
            .collect();
        let ns_per_tick = crate::cpu::tsc_ns_per_tick();
        let coalesce = Coalescer::new(Coalesce::OFF, ports.len(), ns_per_tick);
        // Room for one more batch than the buffer so a full buffer still
        // takes a whole batch without growing.
        let tx = (0..ports.len())
            .map(|_| Vec::with_capacity(tx_buffer.max(MAX_BATCH) + MAX_BATCH))
            .collect();
        Ok(Worker {
            pool,
            ports,
            fib: fib.cache(),
            adjacencies: Kept::new(adjacencies),
            macs,
            icmp_srcs,
            state,
            stats: LoopStats::default(),
            rx: Vec::with_capacity(MAX_BATCH),
            tx,
            verdicts: [Verdict::Continue; MAX_BATCH],
            epoch: rdtsc(),
            ns_per_tick,
            clock: TscClock::new(),
            report: Arc::new(Mutex::new(WorkerReport::default())),
            glean: None,
            reply_port,
            coalesce,
            round_prefetch: 0,
        })
    }

    /// Sets receive coalescing (off by default; see [`Coalesce`]).
    pub fn set_coalesce(&mut self, c: Coalesce) {
        self.coalesce = Coalescer::new(c, self.ports.len(), self.ns_per_tick);
    }

    /// Sends destinations that hit an unresolved connected subnet to
    /// `tx` (bounded; `try_send` only, a full queue is counted).
    pub fn set_glean(&mut self, tx: SyncSender<GleanRequest>) {
        self.glean = Some(Gleaner::new(tx));
    }

    /// The handle the control side reads this worker's counters from.
    pub fn report_handle(&self) -> ReportHandle {
        self.report.clone()
    }

    /// The counters now.
    pub fn report(&self) -> WorkerReport {
        WorkerReport {
            counters: self.state.counters.clone(),
            ports: self.ports.iter().map(|p| p.stats).collect(),
            stats: self.stats,
            ns_per_tick: self.clock.ns_per_tick(),
        }
    }

    /// Publishes the counters into the report handle; with `wait` false
    /// it gives up when a reader holds the handle.
    fn publish_report(&mut self, wait: bool) {
        for p in &mut self.ports {
            p.read_kernel_stats();
        }
        let guard = if wait {
            self.report.lock().ok()
        } else {
            self.report.try_lock().ok()
        };
        if let Some(mut g) = guard {
            // Overwrite in place: the port vector keeps its allocation.
            g.counters.clone_from(&self.state.counters);
            g.ports.clear();
            g.ports.extend(self.ports.iter().map(|p| p.stats));
            g.stats = self.stats;
            g.ns_per_tick = self.clock.ns_per_tick();
        }
    }

    /// The ports (their counters).
    pub fn ports(&self) -> &[Port] {
        &self.ports
    }

    /// Frames free in the pool.
    pub fn free_frames(&self) -> usize {
        self.pool.free_frames()
    }

    /// The shared adjacency table (a handle for the control side).
    pub fn adjacency_table(&self) -> AdjacencyTable {
        Arc::clone(self.adjacencies.shared())
    }

    /// The ports' MACs (a handle for the control side, which keeps them
    /// current; until it stores one, that port accepts every unicast MAC).
    pub fn port_macs(&self) -> PortMacs {
        self.macs.clone()
    }

    /// The handle the control side updates each port's source of ICMPv6
    /// errors through.
    pub fn port_icmp_sources(&self) -> PortAddrs {
        self.icmp_srcs.clone()
    }

    /// Runs until `stop` is set (checked once per round), publishing its
    /// report every [`REPORT_INTERVAL`] and once more when it stops.
    pub fn run(&mut self, stop: &AtomicBool) {
        let mut idle = 0u32;
        let mut next_report = Instant::now();
        while !stop.load(Ordering::Relaxed) {
            if self.poll_once() == 0 {
                idle = idle.saturating_add(1);
                // Frames waiting for a down link do not keep the worker
                // spinning: it blocks, and kicks again after each wait.
                if idle >= IDLE_SPINS
                    && self
                        .ports
                        .iter()
                        .all(|p| p.in_flight() == 0 || p.link_down())
                {
                    self.stats.idle_sleeps += 1;
                    // A kept snapshot would hold up every publish meanwhile
                    // for the grace period.
                    self.fib.release();
                    self.adjacencies.release();
                    crate::xdp::wait_readable(&self.ports, IDLE_WAIT);
                }
            } else {
                idle = 0;
            }
            // Reading the clock every 64 rounds keeps it off the hot path.
            if self.stats.rounds % 64 == 0 || idle >= IDLE_SPINS {
                let now = Instant::now();
                if now >= next_report {
                    self.publish_report(false);
                    next_report = now + REPORT_INTERVAL;
                }
            }
        }
        self.publish_report(true);
    }

    /// One round over every port; returns the frames it moved (received,
    /// sent or reclaimed).
    pub fn poll_once(&mut self) -> usize {
        let t0 = rdtsc();
        self.round_prefetch = 0;
        let work = self.round();
        if work > 0 {
            // The whole round, its prefetching included.
            self.stats.busy_ticks += rdtsc().wrapping_sub(t0);
        } else {
            self.stats.busy_ticks += self.round_prefetch;
            // Idle rounds follow publishes too, so that the writer never
            // waits on an idle worker's kept snapshot.
            if self.fib.holds() {
                self.fib.load();
            }
        }
        work
    }

    fn round(&mut self) -> usize {
        self.stats.rounds += 1;
        let mut work = 0;
        for p in 0..self.ports.len() {
            work += self.ports[p].reclaim(&mut self.pool);
            work += self.batch(p);
            // After the batch, which is what makes a refill due: in the
            // same busy round rather than in a waiting one of its own.
            work += self.ports[p].refill(&mut self.pool);
        }
        for (port, tx) in self.ports.iter_mut().zip(self.tx.iter_mut()) {
            if !tx.is_empty() {
                work += port.send(&mut self.pool, tx);
                // Copy mode transmits inside the kick: take the frames
                // back now rather than in a round of their own.
                work += port.reclaim(&mut self.pool);
                if port.link_down() && !tx.is_empty() {
                    // Found down by this kick: what its ring had no room
                    // for is dropped, not held (see `egress_down`).
                    for frame in tx.drain(..) {
                        drop_egress_down(
                            &mut self.state.counters,
                            &mut port.stats,
                            &mut self.pool,
                            frame,
                        );
                    }
                }
            } else if port.flush() {
                // The tail of an earlier burst sat in the ring (one kick
                // transmits at most 32 frames); the kick is work.
                work += 1 + port.reclaim(&mut self.pool);
            }
        }
        work
    }

    /// Receives and processes one batch of port `p`.
    fn batch(&mut self, p: usize) -> usize {
        if self.coalesce.waits(p) {
            let pending = self.ports[p].rx_pending();
            match self.coalesce.ready(p, pending, rdtsc()) {
                None => {
                    // The frames' headers, while they wait: work, so in
                    // the busy time even when the round moved no frame.
                    // (Timing one call in eight instead measured the same:
                    // the time is the descriptor loads, not the TSC reads.)
                    if self.ports[p].prefetch_due() {
                        let t = rdtsc();
                        self.ports[p].prefetch_pending(&self.pool);
                        let ticks = rdtsc().wrapping_sub(t);
                        self.round_prefetch += ticks;
                        self.stats.prefetch_ticks += ticks;
                    }
                    return 0;
                }
                Some(waited) => self.stats.waited_batches += u64::from(waited),
            }
        }
        self.rx.clear();
        let n = self.ports[p].recv(&mut self.pool, &mut self.rx, MAX_BATCH);
        if n == 0 {
            return 0;
        }
        self.stats.batches += 1;
        let tsc = rdtsc();
        self.coalesce.received(p, n, tsc);
        // The rate limiter's clock: nanoseconds since the worker started.
        let now = tsc_ns_between(self.epoch, tsc, self.ns_per_tick);
        let mut lens = [0usize; MAX_BATCH];
        {
            let snap = self.fib.load();
            let adj = self.adjacencies.load();
            // `new` checked that every port index fits a PortIndex.
            let ingress = Ingress {
                port: p as PortIndex,
                mac: self.macs[p].load(Ordering::Relaxed),
                addr: self.icmp_srcs[p].load().as_deref().copied(),
            };
            let pool = &self.pool;
            let mut pkts: [Packet<'_>; MAX_BATCH] = std::array::from_fn(|_| Packet {
                buf: &mut [],
                len: 0,
            });
            for (pkt, frame) in pkts.iter_mut().zip(self.rx.iter_mut()) {
                let len = frame.len();
                *pkt = Packet {
                    buf: pool.buffer_mut(frame),
                    len,
                };
            }
            process_batch(
                &mut pkts[..n],
                &mut self.verdicts[..n],
                &ingress,
                snap,
                adj,
                &mut self.state,
                now,
                &mut self.clock,
            );
            let mut dropped = 0;
            // This batch's packets only: the verdicts past n are an
            // earlier batch's.
            for (i, (len, pkt)) in lens.iter_mut().zip(&pkts[..n]).enumerate() {
                *len = pkt.len;
                if let Verdict::Drop(r) = self.verdicts[i] {
                    dropped += 1;
                    if r == DropReason::NeighborMiss {
                        if let Some(g) = &mut self.glean {
                            g.glean(&mut self.stats, pkt, now);
                        }
                    }
                }
            }
            self.ports[p].stats.dropped += dropped;
        }
        let ports = self.tx.len();
        for (i, mut frame) in self.rx.drain(..).enumerate() {
            let out = match self.verdicts[i] {
                Verdict::Forward { egress, .. } => Some(usize::from(egress)),
                // From the port of the ingress interface the worker
                // sends on (an extra receive queue's own may have no
                // transmit queue behind it).
                Verdict::IcmpError(_) => Some(self.reply_port[p]),
                Verdict::Drop(_) | Verdict::Punt | Verdict::Continue => None,
            };
            match out {
                Some(q) if q >= ports => {
                    self.state.counters.drop(DropReason::NoEgressPort);
                    self.pool.free(frame);
                }
                Some(q) if self.ports[q].link_down() => drop_egress_down(
                    &mut self.state.counters,
                    &mut self.ports[q].stats,
                    &mut self.pool,
                    frame,
                ),
                Some(q) if self.tx[q].len() < self.tx[q].capacity() => {
                    if frame.len() != lens[i] {
                        self.pool.set_len(&mut frame, lens[i]);
                    }
                    self.tx[q].push(frame);
                }
                Some(q) => {
                    self.ports[q].stats.tx_dropped += 1;
                    self.pool.free(frame);
                }
                None => self.pool.free(frame),
            }
        }
        n
    }
}

/// Drops a frame routed to a port whose link is down (or whose interface
/// is gone), counted in the worker's `egress_down` and the port's
/// `tx_down_dropped`.
fn drop_egress_down(
    counters: &mut Counters,
    port: &mut PortStats,
    pool: &mut FramePool,
    frame: Frame,
) {
    counters.drop(DropReason::EgressDown);
    port.tx_down_dropped += 1;
    pool.free(frame);
}

/// Destinations a worker remembers having gleaned (a direct-mapped
/// table: a collision only sends a repeat).
const GLEAN_RECENT: usize = 256;
/// How long a worker sends a destination to glean only once.
const GLEAN_REPEAT_NS: u64 = 100_000_000;

/// The worker's side of gleaning: the queue to the control side, and the
/// destinations sent lately, so that a stream to an unresolved host
/// costs one message per 100 ms, not a wake-up of the glean thread (a
/// lock and a syscall) per packet.
#[derive(Debug)]
struct Gleaner {
    tx: SyncSender<GleanRequest>,
    /// (destination, when sent in ns since the worker started) per slot.
    recent: Box<[(u128, u64); GLEAN_RECENT]>,
}

impl Gleaner {
    fn new(tx: SyncSender<GleanRequest>) -> Gleaner {
        Gleaner {
            tx,
            recent: Box::new([(0, 0); GLEAN_RECENT]),
        }
    }

    /// Hands the destination of a packet that hit an unresolved connected
    /// subnet to the control side, unless this worker sent it in the last
    /// [`GLEAN_REPEAT_NS`] (the Ethernet destination is not rewritten for
    /// such a packet, so the IPv6 header is intact).
    #[cold]
    fn glean(&mut self, stats: &mut LoopStats, pkt: &Packet<'_>, now: u64) {
        let Some(dst) = pkt.buf.get(OFF_DST..OFF_DST + 16) else {
            return;
        };
        let mut a = [0u8; 16];
        a.copy_from_slice(dst);
        let addr = u128::from_be_bytes(a);
        let h = fib::splitmix64(addr as u64 ^ (addr >> 64) as u64);
        let slot = &mut self.recent[h as usize % GLEAN_RECENT];
        // `now` 0 (the worker's first nanosecond) never matches a slot.
        if slot.0 == addr && slot.1 != 0 && now.wrapping_sub(slot.1) < GLEAN_REPEAT_NS {
            return;
        }
        *slot = (addr, now.max(1));
        match self.tx.try_send(Ipv6Addr::from(a)) {
            Ok(()) => stats.glean_sent += 1,
            Err(_) => stats.glean_overflow += 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Coalesce, Coalescer};

    /// A stream of packets to one unresolved host sends it to glean once
    /// per 100 ms, not once per packet (each send woke the glean thread:
    /// a lock and a syscall on the dataplane core); another host is sent
    /// at once.
    #[test]
    fn a_worker_gleans_a_destination_once_per_interval() {
        use super::{Gleaner, LoopStats, Packet, GLEAN_REPEAT_NS, OFF_DST};
        let (tx, rx) = std::sync::mpsc::sync_channel(1024);
        let mut g = Gleaner::new(tx);
        let mut stats = LoopStats::default();
        let mut frame = [0u8; 64];
        let host: std::net::Ipv6Addr = "2001:db8:1::7".parse().unwrap();
        frame[OFF_DST..OFF_DST + 16].copy_from_slice(&host.octets());
        for now in 0..1000u64 {
            let pkt = Packet {
                buf: &mut frame[..],
                len: 64,
            };
            g.glean(&mut stats, &pkt, now * 1000);
        }
        assert_eq!(rx.try_iter().collect::<Vec<_>>(), [host]);
        let pkt = Packet {
            buf: &mut frame[..],
            len: 64,
        };
        g.glean(&mut stats, &pkt, 1_000_000 + GLEAN_REPEAT_NS);
        assert_eq!(rx.try_iter().collect::<Vec<_>>(), [host]);
        let other: std::net::Ipv6Addr = "2001:db8:1::8".parse().unwrap();
        frame[OFF_DST..OFF_DST + 16].copy_from_slice(&other.octets());
        let pkt = Packet {
            buf: &mut frame[..],
            len: 64,
        };
        g.glean(&mut stats, &pkt, 1_000_001 + GLEAN_REPEAT_NS);
        assert_eq!(rx.try_iter().collect::<Vec<_>>(), [other]);
        assert_eq!(stats.glean_sent, 3);
    }

    /// One tick per nanosecond: rx-usecs 30 is 30,000 ticks, the rate
    /// window 1,000,000.
    fn coalescer(usecs: u32, frames: u32) -> Coalescer {
        Coalescer::new(Coalesce { usecs, frames }, 2, 1.0)
    }

    /// Port `p` receives `n` frames every `every` ticks, `times` times,
    /// from `t`; returns the time reached.
    fn feed(c: &mut Coalescer, p: usize, n: usize, every: u64, times: usize, t: u64) -> u64 {
        let mut t = t;
        for _ in 0..times {
            t += every;
            c.received(p, n, t);
        }
        t
    }

    #[test]
    fn off_takes_every_frame_at_once() {
        let mut c = coalescer(0, 32);
        let t = feed(&mut c, 0, 10, 1000, 5000, 1);
        assert!(!c.waits(0));
        assert_eq!(c.ready(0, 1, t), Some(false));
    }

    #[test]
    fn a_slow_port_waits_for_nothing() {
        let mut c = coalescer(30, 32);
        // 100 kpps: 3 frames per 30 us, below half a batch.
        let t = feed(&mut c, 0, 1, 10_000, 5000, 1);
        assert!(!c.waits(0));
        assert_eq!(c.ready(0, 1, t), Some(false));
    }

    #[test]
    fn a_busy_port_waits_for_a_batch_or_the_timeout() {
        let mut c = coalescer(30, 32);
        // 1 Mpps: 30 frames per 30 us.
        let t = feed(&mut c, 0, 1, 1000, 3000, 1);
        assert!(c.waits(0));
        assert!(!c.waits(1), "the other port has its own rate");
        assert_eq!(c.ready(0, 0, t), None, "nothing to take");
        assert_eq!(c.ready(0, 5, t), None, "a partial batch starts waiting");
        assert_eq!(c.ready(0, 20, t + 29_999), None);
        assert_eq!(c.ready(0, 20, t + 30_000), Some(true), "the timeout");
        // The worker takes the batch (as after every ready).
        c.received(0, 20, t + 30_000);
        assert_eq!(c.ready(0, 3, t + 30_001), None, "a new wait starts");
        assert_eq!(c.ready(0, 32, t + 30_002), Some(true), "a full batch");
        c.received(0, 32, t + 30_002);
        assert_eq!(c.ready(0, 40, t + 30_003), Some(false), "no wait at all");
    }

    #[test]
    fn the_rate_turns_waiting_on_and_off_with_hysteresis() {
        let mut c = coalescer(30, 32);
        // 0.6 frames per us: 18 per wait, over half a batch: on.
        let t = feed(&mut c, 0, 3, 5000, 3000, 1);
        assert!(c.waits(0));
        // 0.3 per us: 9 per wait, above a quarter: stays on.
        let t = feed(&mut c, 0, 3, 10_000, 3000, t);
        assert!(c.waits(0));
        // 0.2 per us: 6 per wait, under a quarter: off.
        feed(&mut c, 0, 3, 15_000, 3000, t);
        assert!(!c.waits(0));
    }

    #[test]
    fn a_pause_turns_waiting_off_before_the_first_wait() {
        for pause in [1_000_000, 1_500_000, 1_000_000_000] {
            let mut c = coalescer(30, 32);
            let t = feed(&mut c, 0, 1, 1000, 3000, 1);
            assert!(c.waits(0));
            // Nothing for a millisecond or more, then one frame: a batch
            // would not fill, so it is taken at once.
            assert_eq!(c.ready(0, 1, t + pause), Some(false), "pause {pause}");
            assert!(!c.waits(0), "pause {pause}");
        }
        // Shorter gaps change nothing (the frame waits as usual).
        let mut c = coalescer(30, 32);
        let t = feed(&mut c, 0, 1, 1000, 3000, 1);
        assert_eq!(c.ready(0, 1, t + 999_999), None);
        assert!(c.waits(0));
    }

    #[test]
    fn waits_are_measured_in_ticks_of_the_real_rate() {
        // 0.25 ns per tick (a 4 GHz counter): 30 us are 120,000 ticks.
        let mut c = Coalescer::new(
            Coalesce {
                usecs: 30,
                frames: 32,
            },
            1,
            0.25,
        );
        // 1 Mpps: a frame every 4,000 ticks (1 us).
        let t = feed(&mut c, 0, 1, 4000, 3000, 1);
        assert!(c.waits(0), "1 Mpps fills half a batch in 30 us");
        assert_eq!(c.ready(0, 5, t), None);
        assert_eq!(c.ready(0, 5, t + 119_999), None);
        assert_eq!(c.ready(0, 5, t + 120_000), Some(true));
    }

    #[test]
    fn a_batch_of_one_never_waits() {
        let mut c = coalescer(30, 1);
        let t = feed(&mut c, 0, 10, 1000, 3000, 1);
        assert!(!c.waits(0));
        assert_eq!(c.ready(0, 1, t), Some(false));
    }
}
