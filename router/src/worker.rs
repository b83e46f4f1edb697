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
//! Idle policy: busy-poll with a short backoff. After
//! [`IDLE_SPINS`] rounds that moved nothing, the worker sleeps
//! [`IDLE_SLEEP`] per round until traffic comes back. This costs up to
//! that much latency on the first packet after a pause and a little CPU
//! while idle; `poll()` on the ports' fds (need-wakeup makes it cheap)
//! would remove both and is the planned replacement once the stage timing
//! (`show runtime`) separates syscall time.

use std::net::Ipv6Addr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use fib::FibReader;

use crate::dataplane::{
    process_batch, Adjacency, Ingress, NoClock, Packet, PortIndex, Verdict, WorkerState, MAX_BATCH,
};
use crate::xdp::{Frame, FramePool, Port};

/// Rounds without work before the worker starts sleeping.
pub const IDLE_SPINS: u32 = 64;
/// The sleep of an idle round.
pub const IDLE_SLEEP: Duration = Duration::from_micros(50);

/// The adjacency table shared with the control side, indexed by next-hop
/// id: the control side stores a whole new table
/// (`table.store(Arc::new(v))`), the worker loads it once per batch.
pub type AdjacencyTable = Arc<ArcSwap<Vec<Adjacency>>>;

/// A new shared adjacency table holding `adjacencies`.
pub fn adjacency_table(adjacencies: Vec<Adjacency>) -> AdjacencyTable {
    Arc::new(ArcSwap::from_pointee(adjacencies))
}

/// Counters of the worker loop itself (the stages count in
/// [`WorkerState::counters`], the ports in [`Port::stats`]).
#[derive(Debug, Default, Clone, Copy)]
pub struct LoopStats {
    /// Rounds over all ports.
    pub rounds: u64,
    /// Batches processed (non-empty receives).
    pub batches: u64,
    /// Forward verdicts naming a port this worker does not have.
    pub bad_egress: u64,
    /// Frames dropped because a port's TX buffer was full (its ring had
    /// been full for a whole buffer's worth of frames).
    pub tx_overflow: u64,
    /// Idle sleeps.
    pub idle_sleeps: u64,
}

/// One worker: its ports, their shared pool, and its view of the FIB and
/// the adjacencies.
#[derive(Debug)]
pub struct Worker {
    pool: FramePool,
    ports: Vec<Port>,
    ingress: Vec<Ingress>,
    fib: FibReader,
    adjacencies: AdjacencyTable,
    /// Counters and the ICMPv6 error rate limiter.
    pub state: WorkerState,
    /// The loop's own counters.
    pub stats: LoopStats,
    rx: Vec<Frame>,
    tx: Vec<Vec<Frame>>,
    verdicts: [Verdict; MAX_BATCH],
    epoch: Instant,
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
        let ingress = addrs
            .into_iter()
            .enumerate()
            .map(|(i, addr)| Ingress {
                port: i as PortIndex,
                addr,
            })
            .collect();
        // Room for one more batch than the buffer so a full buffer still
        // takes a whole batch without growing.
        let tx = (0..ports.len())
            .map(|_| Vec::with_capacity(tx_buffer.max(MAX_BATCH) + MAX_BATCH))
            .collect();
        Ok(Worker {
            pool,
            ports,
            ingress,
            fib,
            adjacencies,
            state,
            stats: LoopStats::default(),
            rx: Vec::with_capacity(MAX_BATCH),
            tx,
            verdicts: [Verdict::Continue; MAX_BATCH],
            epoch: Instant::now(),
        })
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
        self.adjacencies.clone()
    }

    /// Nanoseconds since the worker was built (the rate limiter's clock).
    fn now_ns(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }

    /// Runs until `stop` is set (checked once per round).
    pub fn run(&mut self, stop: &AtomicBool) {
        let mut idle = 0u32;
        while !stop.load(Ordering::Relaxed) {
            if self.poll_once() == 0 {
                idle = idle.saturating_add(1);
                if idle >= IDLE_SPINS {
                    self.stats.idle_sleeps += 1;
                    std::thread::sleep(IDLE_SLEEP);
                }
            } else {
                idle = 0;
            }
        }
    }

    /// One round over every port; returns the frames it moved (received,
    /// sent or reclaimed).
    pub fn poll_once(&mut self) -> usize {
        self.stats.rounds += 1;
        let mut work = 0;
        for p in 0..self.ports.len() {
            work += self.ports[p].reclaim(&mut self.pool);
            self.ports[p].refill(&mut self.pool);
            work += self.batch(p);
        }
        for (port, tx) in self.ports.iter_mut().zip(self.tx.iter_mut()) {
            if !tx.is_empty() {
                work += port.send(&mut self.pool, tx);
            }
        }
        work
    }

    /// Receives and processes one batch of port `p`.
    fn batch(&mut self, p: usize) -> usize {
        self.rx.clear();
        let n = self.ports[p].recv(&mut self.pool, &mut self.rx, MAX_BATCH);
        if n == 0 {
            return 0;
        }
        self.stats.batches += 1;
        let now = self.now_ns();
        let mut lens = [0usize; MAX_BATCH];
        {
            let snap = self.fib.load();
            let adj = self.adjacencies.load();
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
                &self.ingress[p],
                &snap,
                &adj,
                &mut self.state,
                now,
                &mut NoClock,
            );
            for (len, pkt) in lens.iter_mut().zip(pkts.iter()) {
                *len = pkt.len;
            }
        }
        let ports = self.tx.len();
        for (i, mut frame) in self.rx.drain(..).enumerate() {
            let out = match self.verdicts[i] {
                Verdict::Forward { egress, .. } if usize::from(egress) < ports => {
                    Some(usize::from(egress))
                }
                Verdict::Forward { .. } => {
                    self.stats.bad_egress += 1;
                    None
                }
                Verdict::IcmpError(_) => Some(p),
                Verdict::Drop(_) | Verdict::Punt | Verdict::Continue => None,
            };
            match out {
                Some(q) if self.tx[q].len() < self.tx[q].capacity() => {
                    if frame.len() != lens[i] {
                        self.pool.set_len(&mut frame, lens[i]);
                    }
                    self.tx[q].push(frame);
                }
                Some(_) => {
                    self.stats.tx_overflow += 1;
                    self.pool.free(frame);
                }
                None => self.pool.free(frame),
            }
        }
        n
    }
}
