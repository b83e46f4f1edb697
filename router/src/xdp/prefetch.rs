//! Prefetching the headers of frames that wait in the rx ring. While
//! receive coalescing lets frames wait, the worker reads the descriptors
//! the kernel has published there and prefetches their packets' headers
//! (which the kernel's copy wrote on another core), so that the batch
//! finds them in this core's cache instead of waiting for them in
//! `ip6_input`.
//!
//! It reads only what the ring protocol has made ours: descriptors
//! between our consumer index and the producer index the caller has read.

use super::ring::{Consumer, XdpDesc};

/// Rx descriptors per 64-byte cache line.
const LINE_RX_DESCS: u32 = 4;

/// How far prefetching got in one port's rx ring.
#[derive(Debug, Default)]
pub(super) struct RxPrefetch {
    /// The ring index up to which headers were prefetched.
    seen: u32,
}

impl RxPrefetch {
    /// Whether [`RxPrefetch::prefetch`] has anything to do with `pending`
    /// frames waiting in `rx`.
    #[inline]
    pub(super) fn due(&self, rx: &Consumer<XdpDesc>, pending: u32) -> bool {
        let (from, end) = span(self.seen, rx.index(), pending);
        from != end
    }

    /// With `pending` frames waiting in `rx` (a count read from the ring
    /// since the last receive, so the kernel has published their
    /// descriptors): prefetches the headers of those not prefetched yet,
    /// `base` being the address of the UMEM's first byte, and passes each
    /// header's address to `seen`. Returns whether there were any
    /// ([`RxPrefetch::due`]).
    pub(super) fn prefetch(
        &mut self,
        rx: &Consumer<XdpDesc>,
        base: usize,
        pending: u32,
        mut seen: impl FnMut(usize),
    ) -> bool {
        let (from, end) = span(self.seen, rx.index(), pending);
        let mut i = from;
        while i != end {
            let at = base.wrapping_add(rx.read_at(i).addr as usize);
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
