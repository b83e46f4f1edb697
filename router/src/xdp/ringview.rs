//! A second, read-only mapping of a socket's rx ring, for prefetching
//! only. While receive coalescing lets frames wait in the rx ring, the
//! worker reads the descriptors the kernel has published there and
//! prefetches their packets' headers (which the kernel's copy wrote on
//! another core), so that the batch finds them in this core's cache
//! instead of waiting for them in `ip6_input`.
//!
//! The view never writes, and reads only what the ring protocol has made
//! ours: the consumer index (which this thread writes, through xsk-rs) and
//! descriptors between it and the producer index the caller has read. The
//! ring itself is still operated through xsk-rs.
#![allow(unsafe_code)]

use std::os::fd::RawFd;
use std::sync::atomic::{AtomicU32, Ordering};

/// Bytes of an rx descriptor (`struct xdp_desc`).
const RX_DESC: usize = 16;
/// Rx descriptors per 64-byte cache line.
const LINE_RX_DESCS: u32 = 4;

/// A socket's rx ring mapped read-only, and how far prefetching got.
#[derive(Debug)]
pub(super) struct RxView {
    map: *mut libc::c_void,
    len: usize,
    consumer: *const AtomicU32,
    desc: *const u8,
    mask: u32,
    /// The ring index up to which headers were prefetched.
    seen: u32,
}

// SAFETY: a plain read-only mapping owned by one port; the pointers are
// only dereferenced by the thread that owns the port.
unsafe impl Send for RxView {}

impl RxView {
    /// Maps the rx ring (`entries` descriptors, a power of two) of socket
    /// `fd`.
    pub(super) fn map(fd: RawFd, entries: u32) -> std::io::Result<Self> {
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
        let len = off.rx.desc as usize + entries as usize * RX_DESC;
        // SAFETY: a new shared read-only mapping of the socket's rx ring;
        // the kernel checks the offset and the length.
        let map = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_SHARED | libc::MAP_POPULATE,
                fd,
                libc::XDP_PGOFF_RX_RING,
            )
        };
        if map == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        let at = |o: u64| map.cast::<u8>().wrapping_add(o as usize);
        let mut view = RxView {
            map,
            len,
            consumer: at(off.rx.consumer).cast(),
            desc: at(off.rx.desc),
            mask: entries - 1,
            seen: 0,
        };
        view.seen = view.consumer();
        Ok(view)
    }

    fn consumer(&self) -> u32 {
        // SAFETY: inside the mapping, aligned (the kernel's layout).
        unsafe { &*self.consumer }.load(Ordering::Relaxed)
    }

    /// Where the descriptors [`RxView::prefetch`] may read with `pending`
    /// frames waiting end: whole lines only, as the kernel may still be
    /// writing the line of the last ones, and reading it would take the
    /// line from under it (which slowed the kernel's receive measurably).
    fn end(&self, pending: u32) -> u32 {
        self.consumer().wrapping_add(pending) & !(LINE_RX_DESCS - 1)
    }

    /// Whether [`RxView::prefetch`] has anything to do with `pending`
    /// frames waiting.
    #[inline]
    pub(super) fn due(&self, pending: u32) -> bool {
        ahead(self.end(pending), self.seen)
    }

    /// With `pending` frames waiting in the rx ring (a count the caller
    /// read from the ring, so the kernel has published their
    /// descriptors): prefetches the headers of those not prefetched yet,
    /// `base` being the address of the UMEM's first byte, and passes each
    /// header's address to `seen`.
    pub(super) fn prefetch(&mut self, base: usize, pending: u32, mut seen: impl FnMut(usize)) {
        let cons = self.consumer();
        let end = self.end(pending);
        let mut i = if ahead(self.seen, cons) {
            self.seen
        } else {
            cons
        };
        while ahead(end, i) {
            let desc = self
                .desc
                .wrapping_add((i & self.mask) as usize * RX_DESC)
                .cast::<u64>();
            // SAFETY: descriptors in [consumer, consumer + pending) are
            // published, inside the mapping, and stay unchanged until we
            // consume them; `addr` is their first field.
            let addr = unsafe { std::ptr::read_unaligned(desc) };
            let at = base.wrapping_add(addr as usize);
            crate::cpu::prefetch_addr(at);
            seen(at);
            i = i.wrapping_add(1);
        }
        if ahead(end, self.seen) {
            self.seen = end;
        }
    }
}

impl Drop for RxView {
    fn drop(&mut self) {
        // SAFETY: our own mapping, unmapped once.
        unsafe { libc::munmap(self.map, self.len) };
    }
}

/// Whether ring index `a` is past `b` (indexes wrap at 2^32).
fn ahead(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) > 0
}
