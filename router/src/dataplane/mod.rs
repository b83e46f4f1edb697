//! The packet stages of the dataplane: pure functions over a batch of
//! frames, each deciding a [`Verdict`] per packet, every drop a named
//! [`DropReason`] with its own counter. No I/O here: the worker loop that
//! joins them to the AF_XDP ports hands [`process_batch`] the frames it
//! received and sends them where the verdicts say.
//!
//! ```text
//! frames ──> ip6_input ──> ip6_lookup ──> ip6_rewrite ──> Forward { adjacency, egress }
//!               │              │               │
//!               └─ hop limit   └─ no route     └─ too big ──> icmp6_error ──> IcmpError (frame holds it:
//!                  <= 1                                           │            send out of the ingress port)
//!  any stage ──> Drop(reason)                                     └─ suppressed / rate-limited: Drop(reason)
//! ```
//!
//! Frames are modified in place: `ip6_rewrite` writes the Ethernet header
//! and the hop limit, `icmp6_error` writes the whole error over the frame
//! (so [`Packet::buf`] is the frame's whole buffer, not only the packet).

use std::net::Ipv6Addr;

use fib::{NextHopId, Snapshot};

pub mod counters;
pub mod icmp6_error;
pub mod ip6_input;
pub mod ip6_lookup;
pub mod ip6_rewrite;
#[cfg(test)]
mod testutil;
pub mod verdict;

pub use counters::{Counters, CountersSnapshot, Stage, StageStats};
pub use icmp6_error::TokenBucket;
pub use ip6_rewrite::Adjacency;
pub use verdict::{DropReason, IcmpKind, PortIndex, Verdict};

/// Frames per batch (the stages' stack arrays are this long; longer
/// slices are processed in chunks).
pub const MAX_BATCH: usize = 64;

/// One frame in a batch.
#[derive(Debug)]
pub struct Packet<'a> {
    /// The frame's whole buffer (an ICMPv6 error may be longer than the
    /// packet it answers: 2048-byte UMEM frames always have room).
    pub buf: &'a mut [u8],
    /// Bytes of `buf` holding the frame. Stages update it: `ip6_input`
    /// trims Ethernet padding, `icmp6_error` sets the error's length.
    pub len: usize,
}

/// A clock for `show runtime`: ticks (TSC cycles or nanoseconds, the
/// worker's choice) read before and after each stage.
pub trait StageClock {
    /// The current tick count.
    fn now(&mut self) -> u64;
}

/// No timing: every stage costs 0 ticks.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoClock;

impl StageClock for NoClock {
    #[inline]
    fn now(&mut self) -> u64 {
        0
    }
}

/// Where a batch came from (one port's RX ring).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ingress {
    /// The port the frames arrived on; ICMPv6 errors leave through it.
    pub port: PortIndex,
    /// Its MAC ([`ip6_input::mac_key`]; 0: not known, no check): frames
    /// sent to another unicast MAC are dropped.
    pub mac: u64,
    /// The source of ICMPv6 errors: the router's global address on that
    /// interface, or another global address of the router when the
    /// interface has only a link-local one; `None`: no errors are sent.
    pub addr: Option<Ipv6Addr>,
}

/// What a worker keeps across batches.
#[derive(Debug, Clone)]
pub struct WorkerState {
    /// Its counters.
    pub counters: Counters,
    /// Its ICMPv6 error rate limiter.
    pub limiter: TokenBucket,
    /// The ECMP flow hash seed (see [`ip6_lookup::flow_hash`]).
    pub hash_seed: u64,
}

impl WorkerState {
    /// Zeroed counters, a full bucket of `burst` errors refilled at
    /// `rate` a second.
    pub fn new(rate: u64, burst: u64, hash_seed: u64, now_ns: u64) -> Self {
        WorkerState {
            counters: Counters::new(),
            limiter: TokenBucket::new(rate, burst, now_ns),
            hash_seed,
        }
    }
}

/// Runs input, lookup, rewrite and the ICMPv6 errors over a batch of
/// frames received on `ingress`, with one FIB snapshot (loaded once per
/// batch by the worker) and the adjacency table (indexed by next-hop id).
/// `verdicts[i]` gets the fate of `pkts[i]` (extra entries of the longer
/// slice are ignored); no packet is left in [`Verdict::Continue`]. Every
/// verdict and stage run is counted in `state.counters`, stage time with
/// `clock`. Never panics, allocates or blocks.
#[allow(clippy::too_many_arguments)]
pub fn process_batch<C: StageClock>(
    pkts: &mut [Packet<'_>],
    verdicts: &mut [Verdict],
    ingress: &Ingress,
    snap: &Snapshot,
    adjacencies: &[Adjacency],
    state: &mut WorkerState,
    now_ns: u64,
    clock: &mut C,
) {
    let n = pkts.len().min(verdicts.len());
    let mut start = 0;
    while start < n {
        let end = (start + MAX_BATCH).min(n);
        let (p, v) = (&mut pkts[start..end], &mut verdicts[start..end]);
        v.fill(Verdict::Continue);
        // The frames were written by the kernel on another core: start
        // loading every header of the batch before validating the first.
        // The headers the stages read end before byte 128: the line of
        // byte 0 and the line of byte min(len, 128) - 1 (the same line
        // for a small frame at an aligned start, which then costs one
        // prefetch, not a fetch of a line the kernel never wrote).
        for pkt in p.iter() {
            crate::cpu::prefetch(pkt.buf);
            let last = pkt.len.clamp(1, 128) - 1;
            crate::cpu::prefetch(pkt.buf.get(last..).unwrap_or_default());
        }
        let mut nexthops = [NextHopId(0); MAX_BATCH];
        let c = &mut state.counters;

        let t0 = clock.now();
        let k = ip6_input::run(p, v, ingress.mac);
        let t1 = clock.now();
        c.stage(Stage::Input, k, t1.wrapping_sub(t0));

        let k = ip6_lookup::run(p, v, &mut nexthops, snap, state.hash_seed);
        let t2 = clock.now();
        if k > 0 {
            c.stage(Stage::Lookup, k, t2.wrapping_sub(t1));
        }

        let k = ip6_rewrite::run(p, v, &nexthops, adjacencies);
        let t3 = clock.now();
        if k > 0 {
            c.stage(Stage::Rewrite, k, t3.wrapping_sub(t2));
        }

        if v.iter().any(|v| matches!(v, Verdict::IcmpError(_))) {
            let k = icmp6_error::run(p, v, ingress.addr, &mut state.limiter, now_ns);
            let t4 = clock.now();
            c.stage(Stage::IcmpError, k, t4.wrapping_sub(t3));
        }

        for v in v.iter() {
            c.count_verdict(*v);
        }
        start = end;
    }
}

#[cfg(test)]
mod tests;
