//! AF_XDP ports: one socket per (interface, queue), over a [`FramePool`]
//! (a UMEM) that a worker shares between all its ports, so that a frame
//! received on one port is transmitted on another without a copy.
//!
//! Frames are linear: a [`Frame`] is not `Clone`, so a frame is either in
//! the pool (free), in one of a port's rings (owned by the kernel), or held
//! by exactly one owner in userspace. That is what makes [`FramePool::data`]
//! and [`FramePool::data_mut`] safe.
//!
//! Rings (copy mode on veth, need-wakeup):
//! - fill: [`Port::refill`] moves free frames from the pool into it, in
//!   batches (counted from the frames received, so most rounds leave the
//!   kernel-written consumer index alone); what the
//!   ring refuses stays in the pool (the stash) for the next batch;
//! - rx: [`Port::recv`] takes a batch;
//! - tx: [`Port::send`] queues what fits and leaves the rest to the caller
//!   (retry next batch, never assert); in copy mode the kernel only
//!   transmits inside `sendto()`, so it kicks whenever the ring asks;
//! - completion: [`Port::reclaim`] gives transmitted frames back to the pool.
#![allow(unsafe_code)]

use std::num::NonZeroU32;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicU32, Ordering};

use xsk_rs::config::{
    BindFlags, FrameSize, Interface, LibxdpFlags, QueueSize, SocketConfig, UmemConfig,
};
use xsk_rs::{CompQueue, FillQueue, FrameDesc, RxQueue, Socket, TxQueue, Umem};

use super::prefetch::RxPrefetch;
use super::ring::{mmap_offsets, Consumer, Producer, Which, XdpDesc};
use super::XdpError;

static NEXT_POOL_ID: AtomicU32 = AtomicU32::new(0);

/// One UMEM frame, owned by whoever holds this value: 16 bytes, moved
/// between the rings, the pool and the worker's buffers as they are.
#[derive(Debug)]
pub struct Frame {
    /// Offset of the packet's first byte in the UMEM.
    addr: u64,
    /// Packet length.
    len: u32,
    pool: u32,
}

impl Frame {
    /// Length of the packet in the frame.
    #[inline]
    pub fn len(&self) -> usize {
        self.len as usize
    }

    /// True when the frame holds no packet bytes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Sizes of a pool and its ports' rings (powers of two).
#[derive(Debug, Clone, Copy)]
pub struct PoolConfig {
    /// Frames in the UMEM.
    pub frames: u32,
    /// Bytes per frame (2048 or 4096).
    pub frame_size: u32,
    /// Entries of each fill and completion ring.
    pub fill_ring: u32,
    /// Entries of each rx and tx ring.
    pub rx_tx_ring: u32,
}

impl Default for PoolConfig {
    fn default() -> Self {
        PoolConfig {
            frames: 4096,
            frame_size: 2048,
            fill_ring: 1024,
            rx_tx_ring: 1024,
        }
    }
}

/// A UMEM and its free frames (the stash the fill rings are refilled from).
#[derive(Debug)]
pub struct FramePool {
    umem: Umem,
    free: Vec<Frame>,
    id: u32,
    config: PoolConfig,
    /// The UMEM's first byte: a frame's data is at `base + addr`.
    base: *mut u8,
    /// `frame_size - 1` (a power of two): the offset of an address in
    /// its chunk, without a division per packet.
    chunk_mask: u64,
    /// For ports that run their rings through xsk-rs (kernels before 6.4,
    /// see [`Port::own_rings`]): each chunk's descriptor as xsk-rs made
    /// it (a frame's address is always its chunk's: the kernel receives
    /// at the same offset), and scratch descriptors for its ring calls.
    descs: Vec<FrameDesc>,
    scratch: Vec<FrameDesc>,
}

// SAFETY: `base` points into the UMEM this pool owns (through `umem`),
// and a frame's bytes are only reached through the pool by whoever holds
// the frame, so moving the pool to another thread moves that access too.
unsafe impl Send for FramePool {}

fn ring_size(size: u32) -> Result<QueueSize, XdpError> {
    QueueSize::new(size).map_err(|_| XdpError::Config("ring sizes must be powers of two"))
}

impl FramePool {
    /// Allocates the UMEM (anonymous mmap, no huge pages).
    pub fn new(config: PoolConfig) -> Result<Self, XdpError> {
        if !config.frame_size.is_power_of_two() {
            return Err(XdpError::Config("the frame size must be a power of two"));
        }
        let umem_config = UmemConfig::builder()
            .frame_size(
                FrameSize::new(config.frame_size)
                    .map_err(|_| XdpError::Config("bad frame size"))?,
            )
            .fill_queue_size(ring_size(config.fill_ring)?)
            .comp_queue_size(ring_size(config.fill_ring)?)
            .build()
            .map_err(|_| XdpError::Config("bad UMEM configuration"))?;
        let frames =
            NonZeroU32::new(config.frames).ok_or(XdpError::Config("a pool needs frames"))?;
        let (umem, descs) = Umem::new(umem_config, frames, false).map_err(|e| XdpError::Xsk {
            what: "create the UMEM",
            detail: e.to_string(),
        })?;
        let id = NEXT_POOL_ID.fetch_add(1, Ordering::Relaxed);
        let base = descs.first().map_or(std::ptr::null_mut(), |d| {
            // SAFETY: the descriptor is one of this UMEM's; only the
            // address of its data is taken, nothing is read.
            let data = unsafe { umem.data(d) };
            data.contents().as_ptr().cast_mut().wrapping_sub(d.addr())
        });
        let free = descs
            .iter()
            .map(|d| Frame {
                addr: d.addr() as u64,
                len: 0,
                pool: id,
            })
            .collect();
        Ok(FramePool {
            umem,
            free,
            id,
            config,
            base,
            chunk_mask: u64::from(config.frame_size) - 1,
            descs,
            scratch: vec![FrameDesc::default(); config.fill_ring.max(config.rx_tx_ring) as usize],
        })
    }

    /// Bytes from `frame`'s first packet byte to the end of its chunk of
    /// the UMEM (chunks are `frame_size` long and aligned to it).
    #[inline]
    fn room(&self, frame: &Frame) -> usize {
        (self.chunk_mask + 1 - (frame.addr & self.chunk_mask)) as usize
    }

    /// xsk-rs's descriptor of the chunk holding UMEM offset `addr` (for
    /// a port without its own rings).
    fn chunk_desc(&self, addr: u64) -> FrameDesc {
        self.descs[(addr / (self.chunk_mask + 1)) as usize]
    }

    /// xsk-rs's descriptor of `frame`, its length set (for a port without
    /// its own rings).
    fn xsk_desc(&self, frame: &Frame) -> FrameDesc {
        assert_eq!(frame.pool, self.id, "frame of another pool");
        let mut d = self.chunk_desc(frame.addr);
        assert_eq!(
            d.addr() as u64,
            frame.addr,
            "a frame not at its chunk's offset"
        );
        // SAFETY: one of this UMEM's descriptors; only its length is set.
        unsafe { self.umem.data_mut(&mut d) }
            .cursor()
            .set_pos(frame.len());
        d
    }

    /// The address of `frame`'s first packet byte; slices made from it
    /// must stay within [`FramePool::room`].
    #[inline]
    fn ptr(&self, frame: &Frame) -> *mut u8 {
        debug_assert!(
            (frame.addr as usize) < self.config.frames as usize * self.config.frame_size as usize
        );
        self.base.wrapping_add(frame.addr as usize)
    }

    /// Frames waiting in the pool.
    pub fn free_frames(&self) -> usize {
        self.free.len()
    }

    /// Takes a free frame (to build a packet in, e.g. an ICMPv6 error).
    pub fn alloc(&mut self) -> Option<Frame> {
        self.free.pop()
    }

    /// Gives a frame back (a dropped packet).
    pub fn free(&mut self, frame: Frame) {
        assert_eq!(frame.pool, self.id, "frame of another pool");
        self.free.push(frame);
    }

    /// The packet bytes of `frame`.
    pub fn data<'a>(&'a self, frame: &'a Frame) -> &'a [u8] {
        assert_eq!(frame.pool, self.id, "frame of another pool");
        // SAFETY: the frame is one of this pool's UMEM (checked above), its
        // length within its room (every length set is capped by it, and
        // the kernel's are), and holding the `Frame` means neither the
        // kernel (it is in no ring) nor other userspace code (Frame is not
        // Clone) writes it.
        unsafe { std::slice::from_raw_parts(self.ptr(frame), frame.len()) }
    }

    /// The packet bytes of `frame`, writable (length unchanged).
    pub fn data_mut<'a>(&'a self, frame: &'a mut Frame) -> &'a mut [u8] {
        assert_eq!(frame.pool, self.id, "frame of another pool");
        // SAFETY: as in `data`; `&mut Frame` makes this the only access.
        unsafe { std::slice::from_raw_parts_mut(self.ptr(frame), frame.len()) }
    }

    /// The whole buffer of `frame` from the packet's first byte to the end
    /// of the frame (longer than the packet: room to build an ICMPv6 error
    /// in place). The packet length is unchanged; see [`FramePool::set_len`].
    pub fn buffer_mut<'a>(&'a self, frame: &'a mut Frame) -> &'a mut [u8] {
        assert_eq!(frame.pool, self.id, "frame of another pool");
        let room = self.room(frame);
        // SAFETY: as in `data_mut`, over the frame's whole room.
        unsafe { std::slice::from_raw_parts_mut(self.ptr(frame), room) }
    }

    /// Sets the packet length of `frame` (capped at the frame's room), e.g.
    /// after a stage trimmed it or wrote a longer packet over it.
    pub fn set_len(&self, frame: &mut Frame, len: usize) {
        assert_eq!(frame.pool, self.id, "frame of another pool");
        frame.len = len.min(self.room(frame)) as u32;
    }

    /// Replaces the packet in `frame` with `bytes` (to build a packet, e.g.
    /// an ICMPv6 error); false, frame unchanged, when it does not fit.
    pub fn write(&self, frame: &mut Frame, bytes: &[u8]) -> bool {
        if bytes.len() > self.room(frame) {
            return false;
        }
        self.buffer_mut(frame)[..bytes.len()].copy_from_slice(bytes);
        frame.len = bytes.len() as u32;
        true
    }
}

/// Counters of one port.
#[derive(Debug, Default, Clone, Copy)]
pub struct PortStats {
    /// Frames received.
    pub rx: u64,
    /// Frames handed to the tx ring.
    pub tx: u64,
    /// Frames the tx ring had no room for, left to the caller (counted
    /// again at each retry).
    pub tx_ring_full: u64,
    /// `sendto()` kicks.
    pub tx_kicks: u64,
    /// Fill-ring wakeups.
    pub fill_wakeups: u64,
    /// Bytes received (frame bytes, Ethernet header included).
    pub rx_bytes: u64,
    /// Bytes handed to the tx ring.
    pub tx_bytes: u64,
    /// Nanoseconds spent in the kicks and wakeups (`sendto`, `poll`).
    pub syscall_ns: u64,
    /// Frames received here that the pipeline dropped (set by the worker).
    pub dropped: u64,
    /// Frames to be sent here that were dropped before the tx ring: the
    /// worker's tx buffer for this port was full, its ring having been
    /// full for a whole buffer's worth of frames (set by the worker;
    /// `show drops` sums them as `tx_overflow`).
    pub tx_dropped: u64,
    /// Kicks the kernel refused because the link was down (`ENETDOWN`);
    /// each holds the next kick back for [`DOWN_BACKOFF`].
    pub tx_link_down: u64,
    /// Frames to be sent here that were dropped because the link was
    /// down or the interface gone (set by the worker; `show drops` counts
    /// them as `egress_down`).
    pub tx_down_dropped: u64,
    /// Frames written off because the interface is gone: those in the tx
    /// ring when a kick found the socket unbound (`ENXIO`).
    pub tx_lost: u64,
    /// Frames the kernel dropped because this socket's rx ring was full
    /// (the worker fell behind; the socket's `rx_ring_full` statistic,
    /// read by [`Port::read_kernel_stats`]).
    pub rx_ring_full: u64,
    /// Frames the kernel dropped at this socket for want of a frame on
    /// the fill ring to copy them into (the pool ran dry), or longer than
    /// a UMEM frame (its `rx_dropped` statistic).
    pub rx_no_frame: u64,
}

/// How long a port whose kick found its link down (`ENETDOWN`) waits
/// before it kicks again: the frames in its tx ring wait for the link, and
/// a failed `sendto` per round would slow every other port of the worker.
pub const DOWN_BACKOFF: std::time::Duration = std::time::Duration::from_millis(1);

/// Free fill-ring slots a port waits for before it refills (a batch;
/// a quarter of the ring when that is smaller).
pub const REFILL_BATCH: usize = 64;

/// The fill-ring slots a port may refill without reading the ring's
/// consumer index (which the kernel writes on another core): the frames
/// received since the last refill, minus what refills put in beyond that.
///
/// Signed: a refill takes every free slot the ring reports, which can be
/// more than were counted (the kernel took frames that still wait in the
/// rx ring); those frames are counted when they are received, so the
/// excess must be owed back. Clamping at zero counted them twice, and the
/// count drifted up at every such refill until it stood near the ring
/// size while the ring was full: every round then read the consumer index
/// and refilled one or two slots (35 ns per packet in `bench forward`).
#[derive(Debug, Clone, Copy)]
struct FillDeficit {
    slots: isize,
    /// Refill once this many slots are free: [`REFILL_BATCH`], or a
    /// quarter of a smaller ring.
    at: isize,
}

impl FillDeficit {
    /// A port whose fill ring of `ring` slots is empty.
    fn new(ring: usize) -> Self {
        FillDeficit {
            slots: ring as isize,
            at: (ring / 4).clamp(1, REFILL_BATCH) as isize,
        }
    }

    /// `n` frames came back through the rx ring.
    fn received(&mut self, n: usize) {
        self.slots += n as isize;
    }

    /// A refill put `n` frames into the fill ring.
    fn refilled(&mut self, n: usize) {
        self.slots -= n as isize;
    }

    /// The slots to ask the ring for, once a refill is due.
    fn due(&self) -> Option<u32> {
        (self.slots >= self.at).then_some(self.slots as u32)
    }
}

/// A socket's rings as xsk-rs made them.
#[derive(Debug)]
struct XskRings {
    rx: RxQueue,
    tx: TxQueue,
    fill: FillQueue,
    comp: CompQueue,
}

/// A socket's rings on our own mapping ([`super::ring`]).
#[derive(Debug)]
struct OwnRings {
    rx: Consumer<XdpDesc>,
    tx: Producer<XdpDesc>,
    fill: Producer<u64>,
    comp: Consumer<u64>,
}

impl OwnRings {
    fn map(fd: RawFd, config: &PoolConfig) -> std::io::Result<Self> {
        let (fr, rtr) = (config.fill_ring, config.rx_tx_ring);
        let off = mmap_offsets(fd)?;
        Ok(OwnRings {
            rx: Consumer::map(fd, &off, Which::Rx, rtr)?,
            tx: Producer::map(fd, &off, Which::Tx, rtr)?,
            fill: Producer::map(fd, &off, Which::Fill, fr)?,
            comp: Consumer::map(fd, &off, Which::Completion, fr)?,
        })
    }
}

/// One AF_XDP socket bound to (interface, queue), copy mode, need-wakeup.
#[derive(Debug)]
pub struct Port {
    ifname: String,
    queue: u32,
    /// xsk-rs's handles: they own the socket (and the rings' first
    /// mapping).
    xsk: XskRings,
    /// The rings on our own mapping; `None` where the kernel refused to
    /// map a bound socket's rings (before 6.4): xsk-rs's calls run them.
    own: Option<OwnRings>,
    /// The id of the pool the port was opened on: its rings carry that
    /// pool's frames only, so every ring call checks the pool it is given.
    pool: u32,
    /// Frames in the tx ring not yet back through the completion ring.
    in_flight: usize,
    /// Fill-ring slots known to be free, counted from the frames received.
    fill: FillDeficit,
    /// How far the headers of frames waiting in the rx ring were
    /// prefetched.
    rx_prefetch: RxPrefetch,
    /// Frames the last [`Port::rx_pending`] counted, since the last
    /// receive (0 after it): published descriptors prefetching may read.
    pending: u32,
    /// See [`crate::cpu::tsc_ns_per_tick`].
    ns_per_tick: f64,
    /// TSC reading before which no kick is made (the link was down at the
    /// last one); 0: none pending.
    kick_after: u64,
    /// The socket is unbound (its interface was deleted): nothing is
    /// kicked, refilled or counted in flight any more.
    gone: bool,
    /// Counters.
    pub stats: PortStats,
}

impl Port {
    /// Opens the socket of (`ifname`, `queue`) on `pool`'s UMEM, in copy mode
    /// with need-wakeup, without letting libxdp load its own XDP program
    /// (ours is attached by [`super::XdpProgram`]; put [`Port::fd`] in its
    /// XSKMAP), and fills the fill ring from the pool.
    pub fn open(pool: &mut FramePool, ifname: &str, queue: u32) -> Result<Self, XdpError> {
        Self::open_with(pool, ifname, queue, true)
    }

    /// [`Port::open`], with `own_rings` false running the rings through
    /// xsk-rs as on a kernel that refuses our mapping (for tests).
    #[doc(hidden)]
    pub fn open_with(
        pool: &mut FramePool,
        ifname: &str,
        queue: u32,
        own_rings: bool,
    ) -> Result<Self, XdpError> {
        let config = SocketConfig::builder()
            .rx_queue_size(ring_size(pool.config.rx_tx_ring)?)
            .tx_queue_size(ring_size(pool.config.rx_tx_ring)?)
            .libxdp_flags(LibxdpFlags::XSK_LIBXDP_FLAGS_INHIBIT_PROG_LOAD)
            .bind_flags(BindFlags::XDP_COPY | BindFlags::XDP_USE_NEED_WAKEUP)
            .build();
        let iface: Interface = ifname
            .parse()
            .map_err(|_| XdpError::Config("interface name with a NUL byte"))?;
        // SAFETY: INHIBIT_PROG_LOAD is set, which is what xsk-rs requires
        // when a UMEM is shared between sockets.
        let (tx, rx, rings) =
            unsafe { Socket::new(config, &pool.umem, &iface, queue) }.map_err(|e| {
                XdpError::Xsk {
                    what: "create the AF_XDP socket",
                    detail: e.to_string(),
                }
            })?;
        let (fill, comp) = rings.ok_or(XdpError::Xsk {
            what: "create the AF_XDP socket",
            detail: format!("({ifname}, {queue}) is already bound on this UMEM"),
        })?;
        let fd = rx.fd().as_raw_fd();
        // Kernels before 6.4 refuse to map a bound socket's rings (EBUSY),
        // and xsk-rs binds as it creates: xsk-rs's calls run them there.
        let own = if own_rings {
            OwnRings::map(fd, &pool.config).ok()
        } else {
            None
        };
        let mut port = Port {
            ifname: ifname.to_owned(),
            queue,
            xsk: XskRings { rx, tx, fill, comp },
            own,
            pool: pool.id,
            in_flight: 0,
            fill: FillDeficit::new(pool.config.fill_ring as usize),
            rx_prefetch: RxPrefetch::default(),
            pending: 0,
            ns_per_tick: crate::cpu::tsc_ns_per_tick(),
            kick_after: 0,
            gone: false,
            stats: PortStats::default(),
        };
        port.refill(pool);
        Ok(port)
    }

    /// The interface name.
    pub fn ifname(&self) -> &str {
        &self.ifname
    }

    /// The queue id.
    pub fn queue(&self) -> u32 {
        self.queue
    }

    /// The socket's fd, for the XSKMAP and for poll().
    pub fn fd(&self) -> RawFd {
        self.xsk.rx.fd().as_raw_fd()
    }

    /// Reads the drops the kernel counts at this socket into the port's
    /// `rx_ring_full` and `rx_no_frame`: a syscall (`getsockopt`), for the
    /// worker's periodic report, not the packet path. A failed read
    /// (unlikely: the socket is ours) keeps the last values.
    pub fn read_kernel_stats(&mut self) {
        if let Ok(s) = self.xsk.rx.fd().xdp_statistics() {
            self.stats.rx_ring_full = s.rx_ring_full();
            self.stats.rx_no_frame = s.rx_dropped();
        }
    }

    /// Whether the port runs its rings on its own mapping (inline, and
    /// prefetching the headers of waiting frames), rather than through
    /// xsk-rs's calls into libxdp (one per descriptor, which cost 9 ns per
    /// packet in `bench forward` before the rings were mapped, and no
    /// prefetch): the kernel allows the mapping from Linux 6.4 on.
    pub fn own_rings(&self) -> bool {
        self.own.is_some()
    }

    /// Moves free frames from the pool into the fill ring once at least
    /// [`REFILL_BATCH`] of its slots (a quarter of a smaller ring) are free,
    /// counted from the frames received; as many as it takes; the rest stay in the pool. Wakes
    /// the kernel if the ring asks. Refilling in batches spares most rounds
    /// the read of the ring's consumer index, which the kernel writes on
    /// another core (a cache miss each time).
    pub fn refill(&mut self, pool: &mut FramePool) -> usize {
        assert_eq!(pool.id, self.pool, "a pool the port was not opened on");
        let Some(owed) = self.fill.due() else {
            return 0;
        };
        if self.gone {
            return 0;
        }
        if pool.free.is_empty() {
            return 0;
        }
        let done = match &mut self.own {
            Some(own) => {
                let n = (own.fill.free(owed) as usize).min(pool.free.len());
                let start = pool.free.len() - n;
                // The frames leave the pool for the ring: free frames of
                // this pool's UMEM, which this port's socket is bound to.
                for (i, f) in pool.free.drain(start..).enumerate() {
                    own.fill.write(i as u32, f.addr);
                }
                own.fill.submit(n as u32);
                n
            }
            None => {
                let want = self.xsk.fill.nb_free(owed) as usize;
                let n = want.min(pool.free.len()).min(pool.scratch.len());
                let start = pool.free.len() - n;
                for i in 0..n {
                    let f = &pool.free[start + i];
                    pool.scratch[i] = pool.chunk_desc(f.addr);
                }
                // SAFETY: the descriptors are free frames of this pool's
                // UMEM, which this port's socket is bound to.
                let done = unsafe { self.xsk.fill.produce(&pool.scratch[..n]) };
                // produce() is all or nothing.
                pool.free.truncate(pool.free.len() - done);
                done
            }
        };
        if done == 0 {
            return 0;
        }
        // What the pool could not give stays owed to the next refill.
        self.fill.refilled(done);
        let wakeup = match &self.own {
            Some(own) => own.fill.needs_wakeup(),
            None => self.xsk.fill.needs_wakeup(),
        };
        if wakeup {
            self.stats.fill_wakeups += 1;
            let t = crate::cpu::rdtsc();
            // A failed poll only delays the wakeup to the next batch.
            let _ = self.xsk.fill.wakeup(self.xsk.rx.fd_mut(), 0);
            self.stats.syscall_ns += crate::cpu::tsc_ns_since(t, self.ns_per_tick);
        }
        done
    }

    /// Frames waiting in the rx ring (the count [`Port::prefetch_pending`]
    /// works from until the next receive).
    pub fn rx_pending(&mut self) -> u32 {
        self.pending = match &mut self.own {
            Some(own) => own.rx.available_exact(),
            None => self.xsk.rx.nb_avail_exact(),
        };
        self.pending
    }

    /// While frames wait in the rx ring (receive coalescing): prefetches
    /// the headers of those [`Port::rx_pending`] last counted whose whole
    /// line of descriptors the kernel has finished and that were not
    /// prefetched yet (see `RxPrefetch`). Returns whether there was
    /// anything to do ([`Port::prefetch_due`]).
    pub fn prefetch_pending(&mut self, pool: &FramePool) -> bool {
        self.prefetch_with(pool, |_| {})
    }

    /// Whether [`Port::prefetch_pending`] has anything to do:
    /// a whole new line of descriptors among those last counted.
    #[inline]
    pub fn prefetch_due(&self) -> bool {
        self.own
            .as_ref()
            .is_some_and(|own| self.rx_prefetch.due(&own.rx, self.pending))
    }

    /// [`Port::prefetch_pending`], returning the addresses of the headers
    /// it prefetched (for tests: they must be those of the frames
    /// received next).
    #[doc(hidden)]
    pub fn prefetch_pending_addrs(&mut self, pool: &FramePool) -> Vec<usize> {
        let mut out = Vec::new();
        self.prefetch_with(pool, |a| out.push(a));
        out
    }

    fn prefetch_with(&mut self, pool: &FramePool, seen: impl FnMut(usize)) -> bool {
        let pending = self.pending;
        let Some(own) = &self.own else {
            return false;
        };
        self.rx_prefetch
            .prefetch(&own.rx, pool.base as usize, pending, seen)
    }

    /// Receives up to `max` frames, appended to `out`.
    pub fn recv(&mut self, pool: &mut FramePool, out: &mut Vec<Frame>, max: usize) -> usize {
        assert_eq!(pool.id, self.pool, "a pool the port was not opened on");
        self.pending = 0;
        let mut bytes = 0;
        let id = pool.id;
        // The rx ring only carries frames of this pool's UMEM (the fill
        // ring was filled from it); they become ours here.
        let n = match &mut self.own {
            Some(own) => {
                let n = own.rx.available(max.min(u32::MAX as usize) as u32);
                let rx = &own.rx;
                out.extend((0..n).map(|i| {
                    let d = rx.read(i);
                    bytes += u64::from(d.len);
                    Frame {
                        addr: d.addr,
                        len: d.len,
                        pool: id,
                    }
                }));
                own.rx.release(n);
                n as usize
            }
            None => {
                let m = max.min(pool.scratch.len());
                // SAFETY: as above.
                let n = unsafe { self.xsk.rx.consume(&mut pool.scratch[..m]) };
                out.extend(pool.scratch[..n].iter().map(|d| {
                    let len = d.lengths().data() as u32;
                    bytes += u64::from(len);
                    Frame {
                        addr: d.addr() as u64,
                        len,
                        pool: id,
                    }
                }));
                n
            }
        };
        self.fill.received(n);
        self.stats.rx += n as u64;
        self.stats.rx_bytes += bytes;
        n
    }

    /// Queues as many of `frames` (from the front) as the tx ring takes,
    /// removing them from the vector; the rest stay for the caller to retry.
    /// Kicks the kernel (sendto) when the ring asks, which in copy mode is
    /// when transmission happens.
    pub fn send(&mut self, pool: &mut FramePool, frames: &mut Vec<Frame>) -> usize {
        assert_eq!(pool.id, self.pool, "a pool the port was not opened on");
        // Checked before any frame leaves the vector, so that a frame of
        // another pool stops the send with the ring and the frames intact.
        assert!(
            frames.iter().all(|f| f.pool == pool.id),
            "frame of another pool"
        );
        let want = frames.len().min(u32::MAX as usize) as u32;
        let mut bytes = 0;
        // The frames belong to this pool's UMEM (checked), which this
        // socket is bound to; their ownership goes to the ring.
        let done = match &mut self.own {
            Some(own) => {
                let done = (own.tx.free(want) as usize).min(frames.len());
                for (i, f) in frames.drain(..done).enumerate() {
                    bytes += u64::from(f.len);
                    let d = XdpDesc {
                        addr: f.addr,
                        len: f.len,
                        options: 0,
                    };
                    own.tx.write(i as u32, d);
                }
                own.tx.submit(done as u32);
                done
            }
            None => {
                let n = (self.xsk.tx.nb_free(want) as usize)
                    .min(frames.len())
                    .min(pool.scratch.len());
                // Taken out for the loop (a move, no allocation).
                let mut scratch = std::mem::take(&mut pool.scratch);
                for (d, f) in scratch.iter_mut().zip(&frames[..n]) {
                    *d = pool.xsk_desc(f);
                }
                // SAFETY: as above.
                let done = unsafe { self.xsk.tx.produce(&scratch[..n]) };
                pool.scratch = scratch;
                bytes = frames.drain(..done).map(|f| u64::from(f.len)).sum();
                done
            }
        };
        self.in_flight += done;
        self.stats.tx_bytes += bytes;
        self.stats.tx += done as u64;
        self.stats.tx_ring_full += (frames.len()) as u64;
        if self.tx_needs_wakeup() {
            self.kick();
        }
        done
    }

    /// Frames handed to the tx ring that have not come back through the
    /// completion ring yet.
    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// Kicks the kernel again while frames it has not completed are out
    /// and it asks for a wakeup. In copy mode one `sendto()` transmits at
    /// most 32 frames (the kernel's TX_BATCH_SIZE), so without this the
    /// tail of a burst would wait in the ring until the next packet for
    /// this port. Returns whether it kicked (see [`Port::kick`]).
    ///
    /// It also kicks when the ring is empty but completions are still
    /// due. Kicking only while the ring held frames the kernel had not
    /// taken (tried) moved the p99 latency of `bench forward` at 100 kpps
    /// from 20-40 us to 0.1-5 ms on veth: those kicks are how the worker's
    /// core gets into the kernel, where the transmit's pending work on
    /// that core runs.
    pub fn flush(&mut self) -> bool {
        self.in_flight > 0 && self.tx_needs_wakeup() && self.kick()
    }

    fn tx_needs_wakeup(&self) -> bool {
        match &self.own {
            Some(own) => own.tx.needs_wakeup(),
            None => self.xsk.tx.needs_wakeup(),
        }
    }

    /// Wakes the kernel to transmit (sendto with MSG_DONTWAIT). After a
    /// kick that found the link down, kicks are skipped for
    /// [`DOWN_BACKOFF`]. Returns whether it kicked and the kernel did not
    /// refuse for a down link: a refused kick moved nothing, so the worker
    /// does not count it as work (and may go idle with the frames waiting
    /// for the link).
    ///
    /// A kick that finds the socket unbound (`ENXIO`: its interface was
    /// deleted) marks the port gone for good: its frames in flight are
    /// written off (`tx_lost`), and it counts as down from then on, so
    /// the worker drops what is routed to it and can go idle.
    pub fn kick(&mut self) -> bool {
        if self.gone {
            return false;
        }
        let t = crate::cpu::rdtsc();
        if self.kick_after != 0 {
            if t < self.kick_after {
                return false;
            }
            self.kick_after = 0;
        }
        self.stats.tx_kicks += 1;
        // Our own sendto rather than xsk-rs's wakeup, which hides ENETDOWN.
        // SAFETY: a zero-length send on our own socket with no buffers.
        let ret = unsafe {
            libc::sendto(
                self.fd(),
                std::ptr::null(),
                0,
                libc::MSG_DONTWAIT,
                std::ptr::null(),
                0,
            )
        };
        // EAGAIN, EBUSY and ENOBUFS only delay the transmission: the next
        // kick retries.
        let errno = if ret < 0 {
            std::io::Error::last_os_error().raw_os_error()
        } else {
            None
        };
        match errno {
            Some(libc::ENXIO) => {
                self.gone = true;
                self.stats.tx_lost += self.in_flight as u64;
                self.in_flight = 0;
            }
            Some(libc::ENETDOWN) => {
                self.stats.tx_link_down += 1;
                let backoff = crate::cpu::tsc_ticks(DOWN_BACKOFF, self.ns_per_tick);
                self.kick_after = t.wrapping_add(backoff).max(1);
            }
            _ => {}
        }
        self.stats.syscall_ns += crate::cpu::tsc_ns_since(t, self.ns_per_tick);
        !self.link_down()
    }

    /// Whether this port's kicks are held back because the link was down
    /// at the last one: the frames in flight wait for the link, not for
    /// the worker.
    pub fn link_down(&self) -> bool {
        self.kick_after != 0 || self.gone
    }

    /// Gives transmitted frames back to the pool.
    pub fn reclaim(&mut self, pool: &mut FramePool) -> usize {
        assert_eq!(pool.id, self.pool, "a pool the port was not opened on");
        // The completion ring only returns frames this port put in its tx
        // ring, all from this pool's UMEM.
        let id = pool.id;
        let n = match &mut self.own {
            Some(own) => {
                let n = own.comp.available(u32::MAX);
                let comp = &own.comp;
                pool.free.extend((0..n).map(|i| Frame {
                    addr: comp.read(i),
                    len: 0,
                    pool: id,
                }));
                own.comp.release(n);
                n as usize
            }
            None => {
                // SAFETY: as above.
                let n = unsafe { self.xsk.comp.consume(&mut pool.scratch) };
                let FramePool { free, scratch, .. } = pool;
                free.extend(scratch[..n].iter().map(|d| Frame {
                    addr: d.addr() as u64,
                    len: 0,
                    pool: id,
                }));
                n
            }
        };
        self.in_flight = self.in_flight.saturating_sub(n);
        n
    }
}

/// Blocks until one of `ports` has frames to receive or `timeout` passes
/// (`poll(2)` on their sockets; copy-mode AF_XDP wakes it when a frame
/// lands in an RX ring). The worker's idle wait: it costs no CPU and
/// adds only the wakeup to the first packet after a pause, where a sleep
/// would hold packets for the whole sleep (and overflow the ring).
pub fn wait_readable(ports: &[Port], timeout: std::time::Duration) {
    // Once per idle wait, not per packet: an allocation is fine here.
    let mut fds: Vec<libc::pollfd> = ports
        .iter()
        .map(|port| libc::pollfd {
            fd: port.fd(),
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    let ms = timeout.as_millis().min(i32::MAX as u128) as libc::c_int;
    // SAFETY: `fds` is a valid array of initialised pollfds that lives
    // across the call; poll only writes their `revents`.
    unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, ms) };
}

#[cfg(test)]
mod tests {
    use super::FillDeficit;

    /// A fill ring as the kernel runs it: it takes frames for packets as
    /// they arrive; they reach the rx ring, where the worker receives
    /// them later; a refill gets every free slot.
    #[test]
    fn fill_deficit_does_not_drift_when_refills_outrun_receives() {
        let ring = 1024usize;
        let mut d = FillDeficit::new(ring);
        let mut in_ring = 0usize; // frames the kernel may take
        let mut waiting = 0usize; // taken, not yet received
        let mut consumer_reads = 0;
        let refill = |d: &mut FillDeficit, in_ring: &mut usize, reads: &mut usize| {
            if d.due().is_some() {
                *reads += 1;
                let free = ring - *in_ring;
                *in_ring += free;
                d.refilled(free);
            }
        };
        refill(&mut d, &mut in_ring, &mut consumer_reads);
        assert_eq!(in_ring, ring);
        for round in 0..10_000 {
            // 40 or 20 packets arrive; the worker receives at most 32, so
            // some wait in the rx ring across a refill.
            let arrived = (if round % 2 == 0 { 40 } else { 20 }).min(in_ring);
            in_ring -= arrived;
            waiting += arrived;
            let got = waiting.min(32);
            waiting -= got;
            d.received(got);
            refill(&mut d, &mut in_ring, &mut consumer_reads);
            // The count never claims more free slots than there are.
            assert!(
                d.slots <= (ring - in_ring) as isize,
                "round {round}: {} counted, {} free",
                d.slots,
                ring - in_ring
            );
        }
        // One consumer read per 64 frames or so, not one per round.
        assert!(consumer_reads < 10_000 * 32 / 60, "{consumer_reads} reads");
        assert!(in_ring > ring - 128, "the ring ran low: {in_ring}");
    }
}
