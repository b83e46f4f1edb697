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

use super::ringview::RxView;
use super::XdpError;

static NEXT_POOL_ID: AtomicU32 = AtomicU32::new(0);

/// One UMEM frame, owned by whoever holds this value.
#[derive(Debug)]
pub struct Frame {
    desc: FrameDesc,
    pool: u32,
}

impl Frame {
    /// Length of the packet in the frame.
    pub fn len(&self) -> usize {
        self.desc.lengths().data()
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
    /// Scratch descriptors for ring operations, at full length from the
    /// start: ring calls take slices of it (no allocation, and no
    /// re-initialisation of the whole buffer per call).
    scratch: Vec<FrameDesc>,
    /// Address of the UMEM's first byte (a frame's data is at `base +
    /// addr`), for prefetching.
    base: usize,
}

fn ring_size(size: u32) -> Result<QueueSize, XdpError> {
    QueueSize::new(size).map_err(|_| XdpError::Config("ring sizes must be powers of two"))
}

impl FramePool {
    /// Allocates the UMEM (anonymous mmap, no huge pages).
    pub fn new(config: PoolConfig) -> Result<Self, XdpError> {
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
        let base = descs.first().map_or(0, |d| {
            // SAFETY: the descriptor is one of this UMEM's; only the
            // address of its data is taken, nothing is read.
            let data = unsafe { umem.data(d) };
            (data.contents().as_ptr() as usize).wrapping_sub(d.addr())
        });
        let free = descs
            .into_iter()
            .map(|desc| Frame { desc, pool: id })
            .collect();
        let batch = config.fill_ring.max(config.rx_tx_ring) as usize;
        Ok(FramePool {
            umem,
            free,
            id,
            config,
            scratch: vec![FrameDesc::default(); batch],
            base,
        })
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
        // SAFETY: the frame's descriptor comes from this pool's UMEM (checked
        // above), and holding the `Frame` means neither the kernel (it is in
        // no ring) nor other userspace code (Frame is not Clone) writes it.
        unsafe { self.umem.data(&frame.desc) }.contents()
    }

    /// The packet bytes of `frame`, writable (length unchanged).
    pub fn data_mut<'a>(
        &'a self,
        frame: &'a mut Frame,
    ) -> impl std::ops::DerefMut<Target = [u8]> + 'a {
        assert_eq!(frame.pool, self.id, "frame of another pool");
        // SAFETY: as in `data`; `&mut Frame` makes this the only access.
        unsafe { self.umem.data_mut(&mut frame.desc) }
    }

    /// The whole buffer of `frame` from the packet's first byte to the end
    /// of the frame (longer than the packet: room to build an ICMPv6 error
    /// in place). The packet length is unchanged; see [`FramePool::set_len`].
    pub fn buffer_mut<'a>(&'a self, frame: &'a mut Frame) -> &'a mut [u8] {
        assert_eq!(frame.pool, self.id, "frame of another pool");
        // SAFETY: as in `data_mut`.
        let mut data = unsafe { self.umem.data_mut(&mut frame.desc) };
        let len = data.contents().len();
        let (ptr, cap) = {
            let mut cursor = data.cursor();
            let cap = cursor.buf_len();
            cursor.set_pos(cap);
            let whole = data.contents_mut();
            (whole.as_mut_ptr(), whole.len())
        };
        data.cursor().set_pos(len);
        // SAFETY: `ptr..ptr + cap` is this frame's data segment in the UMEM
        // (what `DataMut` itself exposed), borrowed exclusively through
        // `&'a mut Frame` for as long as the slice lives.
        unsafe { std::slice::from_raw_parts_mut(ptr, cap) }
    }

    /// Sets the packet length of `frame` (capped at the frame's room), e.g.
    /// after a stage trimmed it or wrote a longer packet over it.
    pub fn set_len(&self, frame: &mut Frame, len: usize) {
        assert_eq!(frame.pool, self.id, "frame of another pool");
        // SAFETY: as in `data_mut`.
        let mut data = unsafe { self.umem.data_mut(&mut frame.desc) };
        data.cursor().set_pos(len);
    }

    /// Replaces the packet in `frame` with `bytes` (to build a packet, e.g.
    /// an ICMPv6 error); false, frame unchanged, when it does not fit.
    pub fn write(&self, frame: &mut Frame, bytes: &[u8]) -> bool {
        use std::io::Write;
        assert_eq!(frame.pool, self.id, "frame of another pool");
        // SAFETY: as in `data_mut`.
        let mut data = unsafe { self.umem.data_mut(&mut frame.desc) };
        let mut cursor = data.cursor();
        if bytes.len() > cursor.buf_len() {
            return false;
        }
        cursor.set_pos(0);
        cursor.write_all(bytes).is_ok()
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

/// One AF_XDP socket bound to (interface, queue), copy mode, need-wakeup.
#[derive(Debug)]
pub struct Port {
    ifname: String,
    queue: u32,
    tx: TxQueue,
    rx: RxQueue,
    fillq: FillQueue,
    comp: CompQueue,
    /// Frames in the tx ring not yet back through the completion ring.
    in_flight: usize,
    /// Fill-ring slots known to be free, counted from the frames received.
    fill: FillDeficit,
    /// A read-only view of the rx ring, for prefetching (`None` where the
    /// second mapping was refused).
    rx_view: Option<RxView>,
    /// Frames the last [`Port::rx_pending`] counted, since the last
    /// receive (0 after it): published descriptors the view may read.
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
        let mut port = Port {
            ifname: ifname.to_owned(),
            queue,
            tx,
            rx,
            fillq: fill,
            comp,
            in_flight: 0,
            fill: FillDeficit::new(pool.config.fill_ring as usize),
            rx_view: None,
            pending: 0,
            ns_per_tick: crate::cpu::tsc_ns_per_tick(),
            kick_after: 0,
            gone: false,
            stats: PortStats::default(),
        };
        port.refill(pool);
        port.rx_view = RxView::map(port.fd(), pool.config.rx_tx_ring).ok();
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
        self.rx.fd().as_raw_fd()
    }

    /// Moves free frames from the pool into the fill ring once at least
    /// [`REFILL_BATCH`] of its slots (a quarter of a smaller ring) are free,
    /// counted from the frames received; as many as it takes; the rest stay in the pool. Wakes
    /// the kernel if the ring asks. Refilling in batches spares most rounds
    /// the read of the ring's consumer index, which the kernel writes on
    /// another core (a cache miss each time).
    pub fn refill(&mut self, pool: &mut FramePool) -> usize {
        let Some(owed) = self.fill.due() else {
            return 0;
        };
        if self.gone {
            return 0;
        }
        if pool.free.is_empty() {
            return 0;
        }
        let want = self.fillq.nb_free(owed) as usize;
        let n = want.min(pool.free.len()).min(pool.scratch.len());
        if n == 0 {
            return 0;
        }
        let start = pool.free.len() - n;
        for (d, f) in pool.scratch.iter_mut().zip(&pool.free[start..]) {
            *d = f.desc;
        }
        // SAFETY: the descriptors are free frames of this pool's UMEM, which
        // this port's socket is bound to; nobody else accesses them.
        let done = unsafe { self.fillq.produce(&pool.scratch[..n]) };
        // produce() is all or nothing; whatever it took leaves the pool.
        pool.free.truncate(pool.free.len() - done);
        // What the pool could not give stays owed to the next refill.
        self.fill.refilled(done);
        if done > 0 && self.fillq.needs_wakeup() {
            self.stats.fill_wakeups += 1;
            let t = crate::cpu::rdtsc();
            // A failed poll only delays the wakeup to the next batch.
            let _ = self.fillq.wakeup(self.rx.fd_mut(), 0);
            self.stats.syscall_ns += crate::cpu::tsc_ns_since(t, self.ns_per_tick);
        }
        done
    }

    /// Frames waiting in the rx ring (the count [`Port::prefetch_pending`]
    /// works from until the next receive).
    pub fn rx_pending(&mut self) -> u32 {
        self.pending = self.rx.nb_avail_exact();
        self.pending
    }

    /// While frames wait in the rx ring (receive coalescing): prefetches
    /// the headers of those [`Port::rx_pending`] last counted whose whole
    /// line of descriptors the kernel has finished and that were not
    /// prefetched yet (see `RxView`). Returns whether there was
    /// anything to do ([`Port::prefetch_due`]).
    pub fn prefetch_pending(&mut self, pool: &FramePool) -> bool {
        self.prefetch_with(pool, |_| {})
    }

    /// Whether [`Port::prefetch_pending`] has anything to do: a view, and
    /// a whole new line of descriptors among those last counted.
    #[inline]
    pub fn prefetch_due(&self) -> bool {
        self.rx_view.as_ref().is_some_and(|v| v.due(self.pending))
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

    /// Whether frames' headers are prefetched while they wait: false where
    /// the kernel refused the second mapping of the rx ring.
    pub fn prefetches(&self) -> bool {
        self.rx_view.is_some()
    }

    fn prefetch_with(&mut self, pool: &FramePool, seen: impl FnMut(usize)) -> bool {
        let pending = self.pending;
        self.rx_view
            .as_mut()
            .is_some_and(|v| v.prefetch(pool.base, pending, seen))
    }

    /// Receives up to `max` frames, appended to `out`.
    pub fn recv(&mut self, pool: &mut FramePool, out: &mut Vec<Frame>, max: usize) -> usize {
        let m = max.min(pool.scratch.len());
        // SAFETY: the rx ring only carries frames of this pool's UMEM (the
        // fill ring was filled from it); they become ours here.
        let n = unsafe { self.rx.consume(&mut pool.scratch[..m]) };
        self.pending = 0;
        let mut bytes = 0;
        out.extend(pool.scratch[..n].iter().map(|&desc| {
            bytes += desc.lengths().data() as u64;
            Frame {
                desc,
                pool: pool.id,
            }
        }));
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
        let n = (self.tx.nb_free(frames.len() as u32) as usize)
            .min(frames.len())
            .min(pool.scratch.len());
        let mut done = 0;
        if n > 0 {
            for (d, f) in pool.scratch.iter_mut().zip(&frames[..n]) {
                assert_eq!(f.pool, pool.id, "frame of another pool");
                *d = f.desc;
            }
            // SAFETY: the frames belong to this pool's UMEM (checked), which
            // this socket is bound to, and we give up their ownership below.
            done = unsafe { self.tx.produce(&pool.scratch[..n]) };
            self.in_flight += done;
            self.stats.tx_bytes += frames[..done].iter().map(|f| f.len() as u64).sum::<u64>();
            frames.drain(..done);
        }
        self.stats.tx += done as u64;
        self.stats.tx_ring_full += (frames.len()) as u64;
        if self.tx.needs_wakeup() {
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
        self.in_flight > 0 && self.tx.needs_wakeup() && self.kick()
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
        // SAFETY: the completion ring only returns frames this port put in
        // its tx ring, all from this pool's UMEM.
        let n = unsafe { self.comp.consume(&mut pool.scratch) };
        self.in_flight = self.in_flight.saturating_sub(n);
        let id = pool.id;
        for i in 0..n {
            let desc = pool.scratch[i];
            pool.free.push(Frame { desc, pool: id });
        }
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
