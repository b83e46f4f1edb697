//! The four rings of an AF_XDP socket, operated on our own mapping of
//! them. xsk-rs creates, binds and closes the socket and the UMEM; the
//! per-packet work (reading and writing descriptors, moving the indexes)
//! is done here, inline in the worker's loop, on compact descriptors.
//!
//! Through xsk-rs (libxdp) every descriptor was a call into C that Rust
//! cannot inline, and every frame was copied through a 32-byte `FrameDesc`
//! several times per round. The protocol is the kernel's (and libxdp's):
//! a producer writes descriptors, then publishes its index with release
//! ordering; a consumer reads the producer index with acquire ordering,
//! reads the descriptors, then publishes its own index with release
//! ordering. Each side caches the other's index and reads it again only
//! when the cached value says the ring is empty (or full), since that
//! index lives on a cache line the other core writes.
//!
//! A socket's rings are mapped a second time here (the kernel allows any
//! number of mappings); xsk-rs's own ring handles are kept alive, unused,
//! so that its mappings and the socket stay as it made them.
#![allow(unsafe_code)]

use std::marker::PhantomData;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicU32, Ordering};

/// An rx or tx descriptor (`struct xdp_desc`).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct XdpDesc {
    /// Offset of the packet's first byte in the UMEM.
    pub addr: u64,
    /// Packet length.
    pub len: u32,
    /// Options (multi-buffer continuation; 0 here).
    pub options: u32,
}

/// Which of a socket's rings.
#[derive(Debug, Clone, Copy)]
pub(super) enum Which {
    Rx,
    Tx,
    Fill,
    Completion,
}

/// The ring offsets of a socket (`XDP_MMAP_OFFSETS`).
pub(super) fn mmap_offsets(fd: RawFd) -> std::io::Result<libc::xdp_mmap_offsets> {
    // SAFETY: all-zero is a valid xdp_mmap_offsets.
    let mut off: libc::xdp_mmap_offsets = unsafe { std::mem::zeroed() };
    let mut optlen = std::mem::size_of::<libc::xdp_mmap_offsets>() as libc::socklen_t;
    // SAFETY: `off` and `optlen` are valid for writes of their size.
    let r = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_XDP,
            libc::XDP_MMAP_OFFSETS,
            (&mut off as *mut libc::xdp_mmap_offsets).cast(),
            &mut optlen,
        )
    };
    if r != 0 {
        return Err(std::io::Error::last_os_error());
    }
    if optlen as usize != std::mem::size_of::<libc::xdp_mmap_offsets>() {
        return Err(std::io::Error::other("old XDP_MMAP_OFFSETS layout"));
    }
    Ok(off)
}

/// One mapping of one ring, and pointers into it.
#[derive(Debug)]
struct Mapped<D> {
    map: *mut libc::c_void,
    len: usize,
    producer: *const AtomicU32,
    consumer: *const AtomicU32,
    flags: *const AtomicU32,
    descs: *mut D,
    mask: u32,
    _desc: PhantomData<D>,
}

// SAFETY: a shared mapping owned by one port; the pointers are only
// dereferenced by the thread that owns the port.
unsafe impl<D: Send> Send for Mapped<D> {}

impl<D: Copy> Mapped<D> {
    /// Maps `which` ring, of `entries` descriptors (a power of two), of
    /// socket `fd` (whose ring offsets are `off`), read-write.
    fn map(
        fd: RawFd,
        off: &libc::xdp_mmap_offsets,
        which: Which,
        entries: u32,
    ) -> std::io::Result<Self> {
        let (o, pgoff) = match which {
            Which::Rx => (off.rx, libc::XDP_PGOFF_RX_RING as u64),
            Which::Tx => (off.tx, libc::XDP_PGOFF_TX_RING as u64),
            Which::Fill => (off.fr, libc::XDP_UMEM_PGOFF_FILL_RING),
            Which::Completion => (off.cr, libc::XDP_UMEM_PGOFF_COMPLETION_RING),
        };
        Self::map_at(fd, pgoff, o, entries)
    }

    /// Maps the ring laid out as `o` says at page offset `pgoff` of `fd`.
    fn map_at(
        fd: RawFd,
        pgoff: u64,
        o: libc::xdp_ring_offset,
        entries: u32,
    ) -> std::io::Result<Self> {
        if !entries.is_power_of_two() {
            return Err(std::io::Error::other("ring size not a power of two"));
        }
        let len = o.desc as usize + entries as usize * std::mem::size_of::<D>();
        // SAFETY: a new shared mapping of one of the socket's rings; the
        // kernel checks the offset and the length against the ring.
        let map = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_POPULATE,
                fd,
                pgoff as libc::off_t,
            )
        };
        if map == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        let at = |o: u64| map.cast::<u8>().wrapping_add(o as usize);
        Ok(Mapped {
            map,
            len,
            producer: at(o.producer).cast(),
            consumer: at(o.consumer).cast(),
            flags: at(o.flags).cast(),
            descs: at(o.desc).cast(),
            mask: entries - 1,
            _desc: PhantomData,
        })
    }

    fn producer(&self) -> &AtomicU32 {
        // SAFETY: inside the mapping, aligned (the kernel's layout), and
        // only ever accessed atomically.
        unsafe { &*self.producer }
    }

    fn consumer(&self) -> &AtomicU32 {
        // SAFETY: as in `producer`.
        unsafe { &*self.consumer }
    }

    fn needs_wakeup(&self) -> bool {
        // SAFETY: as in `producer`.
        unsafe { &*self.flags }.load(Ordering::Relaxed) & libc::XDP_RING_NEED_WAKEUP != 0
    }

    /// Descriptor slot of ring index `i`.
    #[inline]
    fn slot(&self, i: u32) -> *mut D {
        // In bounds: masked.
        self.descs.wrapping_add((i & self.mask) as usize)
    }
}

impl<D> Drop for Mapped<D> {
    fn drop(&mut self) {
        // SAFETY: our own mapping, unmapped once.
        unsafe { libc::munmap(self.map, self.len) };
    }
}

/// A ring this side produces into (fill, tx).
#[derive(Debug)]
pub(super) struct Producer<D> {
    ring: Mapped<D>,
    size: u32,
    /// Our index (what we published, plus what is reserved).
    prod: u32,
    /// The consumer's index as last read, plus the ring size: `cons -
    /// prod` slots are known free.
    cons: u32,
}

impl<D: Copy> Producer<D> {
    /// Maps `which` (fill or tx) ring of `fd`, whose ring offsets are
    /// `off` ([`mmap_offsets`]).
    pub(super) fn map(
        fd: RawFd,
        off: &libc::xdp_mmap_offsets,
        which: Which,
        entries: u32,
    ) -> std::io::Result<Self> {
        Ok(Self::new(Mapped::map(fd, off, which, entries)?, entries))
    }

    fn new(ring: Mapped<D>, entries: u32) -> Self {
        let prod = ring.producer().load(Ordering::Relaxed);
        let cons = ring
            .consumer()
            .load(Ordering::Acquire)
            .wrapping_add(entries);
        Producer {
            ring,
            size: entries,
            prod,
            cons,
        }
    }

    /// Free slots, at least `want` if there are that many: the consumer's
    /// index is read again only when the cached count falls short.
    #[inline]
    pub(super) fn free(&mut self, want: u32) -> u32 {
        let free = self.cons.wrapping_sub(self.prod);
        if free >= want {
            return free;
        }
        self.cons = self
            .ring
            .consumer()
            .load(Ordering::Acquire)
            .wrapping_add(self.size);
        self.cons.wrapping_sub(self.prod)
    }

    /// Writes the `i`-th descriptor after the last one submitted; `i`
    /// must be below what [`Producer::free`] returned.
    #[inline]
    pub(super) fn write(&mut self, i: u32, d: D) {
        debug_assert!(i < self.cons.wrapping_sub(self.prod));
        // SAFETY: a slot of our mapping, masked into the ring; free slots
        // belong to the producer (us) until we publish them.
        unsafe { self.ring.slot(self.prod.wrapping_add(i)).write(d) };
    }

    /// Publishes the first `n` descriptors written.
    #[inline]
    pub(super) fn submit(&mut self, n: u32) {
        self.prod = self.prod.wrapping_add(n);
        self.ring.producer().store(self.prod, Ordering::Release);
    }

    /// Whether the kernel asks to be woken for this ring.
    #[inline]
    pub(super) fn needs_wakeup(&self) -> bool {
        self.ring.needs_wakeup()
    }
}

/// A ring this side consumes from (rx, completion).
#[derive(Debug)]
pub(super) struct Consumer<D> {
    ring: Mapped<D>,
    /// The producer's index as last read.
    prod: u32,
    /// Our index.
    cons: u32,
}

impl<D: Copy> Consumer<D> {
    /// Maps `which` (rx or completion) ring of `fd`, whose ring offsets
    /// are `off` ([`mmap_offsets`]).
    pub(super) fn map(
        fd: RawFd,
        off: &libc::xdp_mmap_offsets,
        which: Which,
        entries: u32,
    ) -> std::io::Result<Self> {
        Ok(Self::new(Mapped::map(fd, off, which, entries)?))
    }

    fn new(ring: Mapped<D>) -> Self {
        let cons = ring.consumer().load(Ordering::Relaxed);
        let prod = ring.producer().load(Ordering::Acquire);
        Consumer { ring, prod, cons }
    }

    /// Descriptors available, at most `max`: the producer's index is read
    /// again only when none are known.
    #[inline]
    pub(super) fn available(&mut self, max: u32) -> u32 {
        let mut n = self.prod.wrapping_sub(self.cons);
        if n == 0 {
            self.prod = self.ring.producer().load(Ordering::Acquire);
            n = self.prod.wrapping_sub(self.cons);
        }
        n.min(max)
    }

    /// Descriptors available, reading the producer's index now.
    #[inline]
    pub(super) fn available_exact(&mut self) -> u32 {
        self.prod = self.ring.producer().load(Ordering::Acquire);
        self.prod.wrapping_sub(self.cons)
    }

    /// The `i`-th available descriptor; `i` must be below what
    /// [`Consumer::available`] returned.
    #[inline]
    pub(super) fn read(&self, i: u32) -> D {
        self.read_at(self.cons.wrapping_add(i))
    }

    /// Our index: the ring index of the first available descriptor.
    #[inline]
    pub(super) fn index(&self) -> u32 {
        self.cons
    }

    /// The descriptor at ring index `i`, which must lie between
    /// [`Consumer::index`] and the producer's index as last read.
    #[inline]
    pub(super) fn read_at(&self, i: u32) -> D {
        debug_assert!(i.wrapping_sub(self.cons) < self.prod.wrapping_sub(self.cons));
        // SAFETY: a published slot of our mapping, masked into the ring;
        // the producer leaves it alone until we release it.
        unsafe { self.ring.slot(i).read() }
    }

    /// Gives the first `n` available descriptors back to the producer.
    #[inline]
    pub(super) fn release(&mut self, n: u32) {
        self.cons = self.cons.wrapping_add(n);
        self.ring.consumer().store(self.cons, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::{Consumer, Mapped, Producer, XdpDesc};
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    use std::sync::atomic::Ordering;

    /// The kernel's layout, as a test lays it out: indexes and flags on
    /// lines of their own, then the descriptors.
    const LAYOUT: libc::xdp_ring_offset = libc::xdp_ring_offset {
        producer: 0,
        consumer: 64,
        flags: 128,
        desc: 192,
    };

    /// A producer and a consumer over two mappings of the same memory
    /// (a memfd), as userspace and the kernel share a ring, with both
    /// indexes starting at `start`.
    fn pair<D: Copy>(entries: u32, start: u32) -> (OwnedFd, Producer<D>, Consumer<D>) {
        // SAFETY: a plain memfd_create call with a valid name.
        let raw = unsafe { libc::memfd_create(c"ring-test".as_ptr(), 0) };
        assert!(
            raw >= 0,
            "memfd_create: {}",
            std::io::Error::last_os_error()
        );
        // SAFETY: a new fd that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        // SAFETY: resizing our own memfd.
        assert_eq!(unsafe { libc::ftruncate(fd.as_raw_fd(), 1 << 16) }, 0);
        let a = Mapped::<D>::map_at(fd.as_raw_fd(), 0, LAYOUT, entries).expect("map");
        let b = Mapped::<D>::map_at(fd.as_raw_fd(), 0, LAYOUT, entries).expect("map");
        a.producer().store(start, Ordering::Relaxed);
        a.consumer().store(start, Ordering::Relaxed);
        (fd, Producer::new(a, entries), Consumer::new(b))
    }

    #[test]
    fn descriptors_pass_in_order_across_the_index_wrap() {
        for start in [0, u32::MAX - 5, u32::MAX] {
            let (_fd, mut p, mut c) = pair::<XdpDesc>(8, start);
            assert_eq!(c.available(64), 0, "start {start}");
            assert_eq!(p.free(1), 8, "an empty ring is all free");
            let mut next = 0u64;
            let mut expect = 0u64;
            let mut held = false;
            for _ in 0..20 {
                // Produce what fits, up to 5; consume up to 3.
                let n = p.free(5).min(5);
                for i in 0..n {
                    let d = XdpDesc {
                        addr: next,
                        len: next as u32 + 1,
                        options: 0,
                    };
                    p.write(i, d);
                    next += 1;
                }
                p.submit(n);
                let m = c.available(3);
                for i in 0..m {
                    let d = c.read(i);
                    assert_eq!((d.addr, d.len), (expect, expect as u32 + 1));
                    expect += 1;
                }
                c.release(m);
                // The consumer takes at most 3 a round while 5 are
                // offered: the ring fills, and the producer is held to it
                // (an overwritten slot fails the order check above).
                held |= n < 5;
            }
            assert!(held, "start {start}: the ring never filled");
            // Drain: everything produced comes out, once.
            loop {
                let m = c.available(8);
                if m == 0 {
                    break;
                }
                for i in 0..m {
                    assert_eq!(c.read(i).addr, expect);
                    expect += 1;
                }
                c.release(m);
            }
            assert_eq!(expect, next, "start {start}");
            assert!(next > 40, "the ring was used ({next})");
        }
    }

    #[test]
    fn a_ring_picked_up_with_entries_in_it() {
        // The other side published 3 entries (indexes 5, 6, 7) before the
        // ring was mapped: they are pending, not free.
        let (_fd, mut p, c) = pair::<u64>(4, 5);
        for i in 0..3 {
            p.write(i, 100 + u64::from(i));
        }
        p.submit(3);
        let (p2, c2) = (
            Producer::<u64>::new(p.ring, 4),
            Consumer::<u64>::new(c.ring),
        );
        let (mut p, mut c) = (p2, c2);
        assert_eq!(p.free(4), 1, "one slot left");
        assert_eq!(c.available(8), 3);
        assert_eq!((c.read(0), c.read(2)), (100, 102));
        c.release(1);
        assert_eq!(p.free(2), 2);
    }

    #[test]
    fn a_full_ring_refuses_until_the_consumer_releases() {
        let (_fd, mut p, mut c) = pair::<u64>(4, u32::MAX - 1);
        for i in 0..4 {
            p.write(i, u64::from(i));
        }
        p.submit(4);
        assert_eq!(p.free(1), 0, "full");
        assert_eq!(c.available_exact(), 4);
        c.release(2);
        assert_eq!(p.free(1), 2, "the producer sees what was released");
        p.write(0, 10);
        p.submit(1);
        assert_eq!(c.available(16), 2, "the cached count first");
        assert_eq!(c.read(0), 2);
        assert_eq!(c.read(1), 3);
        c.release(2);
        assert_eq!(c.available(16), 1, "then the producer's index");
        assert_eq!(c.read(0), 10);
    }
}
