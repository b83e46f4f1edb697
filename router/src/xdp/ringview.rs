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

    /// Whether [`RxView::prefetch`] has anything to do with `pending`
    /// frames waiting.
    #[inline]
    pub(super) fn due(&self, pending: u32) -> bool {
        let (from, end) = span(self.seen, self.consumer(), pending);
        from != end
    }

    /// With `pending` frames waiting in the rx ring (a count read from
    /// the ring since the last receive, so the kernel has published their
    /// descriptors): prefetches the headers of those not prefetched yet,
    /// `base` being the address of the UMEM's first byte, and passes each
    /// header's address to `seen`. Returns whether there were any
    /// ([`RxView::due`]).
    pub(super) fn prefetch(
        &mut self,
        base: usize,
        pending: u32,
        mut seen: impl FnMut(usize),
    ) -> bool {
        let (from, end) = span(self.seen, self.consumer(), pending);
        let mut i = from;
        while i != end {
            let desc = self
                .desc
                .wrapping_add((i & self.mask) as usize * RX_DESC)
                .cast::<u64>();
            // SAFETY: inside the mapping (the index is masked); the
            // descriptors in [consumer, consumer + pending) are published
            // and stay unchanged until we consume them; `addr` is their
            // first field.
            let addr = unsafe { std::ptr::read_unaligned(desc) };
            let at = base.wrapping_add(addr as usize);
            crate::cpu::prefetch_addr(at);
            seen(at);
            i = i.wrapping_add(1);
        }
        self.seen = end;
        from != end
    }
}

/// The ring indexes `[from, end)` to prefetch, given the index up to which
/// headers were prefetched (`seen`), the consumer index and the frames
/// pending. `end` stops at a whole line: the kernel may still be writing
/// the line of the last descriptors, and reading it would take the line
/// from under it (which slowed the kernel's receive measurably). `seen`
/// counts only while it lies in `[cons, cons + pending]`: one left behind
/// (2^31 frames received without a prefetch, indexes wrapping at 2^32)
/// must not look ahead.
fn span(seen: u32, cons: u32, pending: u32) -> (u32, u32) {
    let end = cons.wrapping_add(pending) & !(LINE_RX_DESCS - 1);
    let end = if end.wrapping_sub(cons) <= pending {
        end
    } else {
        // Fewer than a line past a consumer in mid-line: nothing.
        cons
    };
    let from = if seen.wrapping_sub(cons) <= end.wrapping_sub(cons) {
        seen
    } else {
        cons
    };
    (from, end)
}

impl Drop for RxView {
    fn drop(&mut self) {
        // SAFETY: our own mapping, unmapped once.
        unsafe { libc::munmap(self.map, self.len) };
    }
}

#[cfg(test)]
mod tests {
    use super::span;

    #[test]
    fn whole_lines_from_where_the_last_prefetch_stopped() {
        assert_eq!(span(0, 0, 10), (0, 8));
        assert_eq!(span(8, 0, 10), (8, 8), "nothing new");
        assert_eq!(span(8, 0, 12), (8, 12));
        // The consumer moved past what was prefetched.
        assert_eq!(span(8, 12, 9), (12, 20));
        // A consumer in mid-line (a batch of 6 taken): whole lines of the
        // ring, not of the pending frames.
        assert_eq!(span(6, 6, 5), (6, 8));
        assert_eq!(span(6, 6, 1), (6, 6));
    }

    #[test]
    fn indexes_wrap_and_a_stale_mark_does_not_look_ahead() {
        assert_eq!(span(u32::MAX - 3, u32::MAX - 3, 8), (u32::MAX - 3, 4));
        assert_eq!(
            span((u32::MAX - 3).wrapping_add(4), u32::MAX - 3, 12),
            (0, 8)
        );
        // `seen` left 2^31 + 5 frames behind the consumer (no prefetch in
        // that time): wrapping, it looks ahead, but lies outside the
        // pending frames, so prefetching starts at the consumer.
        let cons = 1u32 << 31;
        let seen = cons.wrapping_add(cons).wrapping_add(5);
        assert_eq!(span(seen, cons, 16), (cons, cons + 16));
        // Nothing pending: nothing, whatever `seen`.
        assert_eq!(span(7, 100, 0), (100, 100));
    }
}
