//! Size-class allocation of blocks inside the trie's arrays.
//!
//! A node's children and a node's leaves are contiguous blocks of an array
//! of at most 256 elements. Block sizes come in classes four to a doubling
//! (1-8, then 10, 12, 14, 16, 20, 24, ...), so rounding wastes at most a
//! fifth, a block that grows or shrinks within its class stays put, and a
//! freed block is reused by the next request of its class (exact sizes
//! fragment under churn: the arrays keep growing).
//!
//! The arrays are shared by every snapshot (`arena.rs`), so a block a
//! published snapshot reaches is never written: the builder writes a fresh
//! block instead and *retires* the old one. A retired block is reused only
//! after the publish that stops reaching it and the grace period after
//! that (`reclaim`: no reader holds the snapshot before).

pub(crate) const NIL: u32 = u32::MAX;

/// The block size that holds `n` (>= 1) elements.
#[inline]
pub(crate) fn class_of(n: u32) -> u32 {
    let n = n.max(1);
    if n <= 8 {
        return n;
    }
    let step = 1 << (31 - n.leading_zeros() - 2);
    n.div_ceil(step) * step
}

/// A replaced block and the epoch it was allocated in.
#[derive(Debug, Clone, Copy)]
struct Retired {
    off: u32,
    n: u32,
    born: u32,
}

#[derive(Debug, Default, Clone)]
pub(crate) struct BlockAlloc {
    free: Vec<Vec<u32>>,
    /// Elements handed out so far (the array's length).
    pub top: u32,
    /// Elements currently in use (for statistics).
    pub used: u32,
    /// Blocks replaced since the last publish: the published snapshot
    /// still reaches them.
    retired: Vec<Retired>,
    /// Blocks only the snapshot before the published one reaches.
    waiting: Vec<Retired>,
    /// Blocks held back while a snapshot abandoned to a slow reader lives.
    deferred: Vec<Retired>,
    /// Debug builds: the epoch (publish count) each element's block was
    /// allocated in, `NIL` while free: `check_fresh` catches a write into
    /// a block a snapshot may reach.
    #[cfg(debug_assertions)]
    born: Vec<u32>,
}

impl BlockAlloc {
    /// A block for `n` elements, allocated in `epoch`; returns its offset
    /// and size (the class).
    pub fn alloc(&mut self, n: u32, epoch: u32) -> (u32, u32) {
        let n = class_of(n);
        self.used += n;
        let off = match self.free.get_mut(n as usize).and_then(Vec::pop) {
            Some(off) => off,
            None => {
                self.top += n;
                self.top - n
            }
        };
        self.mark(off, n, epoch);
        (off, n)
    }

    #[cfg(debug_assertions)]
    fn mark(&mut self, off: u32, n: u32, epoch: u32) {
        let end = (off + n) as usize;
        if self.born.len() < end {
            self.born.resize(end, NIL);
        }
        self.born[off as usize..end].fill(epoch);
    }

    #[cfg(not(debug_assertions))]
    #[inline(always)]
    fn mark(&mut self, _off: u32, _n: u32, _epoch: u32) {}

    /// Debug builds: panics unless elements `off .. off + n` belong to a
    /// block allocated in `epoch` (since the last publish).
    #[inline(always)]
    pub fn check_fresh(&self, off: u32, n: u32, epoch: u32) {
        #[cfg(debug_assertions)]
        for i in off..off + n {
            assert_eq!(
                self.born.get(i as usize).copied(),
                Some(epoch),
                "write at {i} into a block a snapshot may reach"
            );
        }
        #[cfg(not(debug_assertions))]
        let _ = (off, n, epoch);
    }

    /// The epoch count starts again (see `TrieBuilder::published`): every
    /// block counts as born in epoch 0, which keeps a retired one waiting
    /// for any abandoned snapshot (the safe side).
    pub fn rebase(&mut self) {
        for r in self
            .retired
            .iter_mut()
            .chain(&mut self.waiting)
            .chain(&mut self.deferred)
        {
            r.born = 0;
        }
        #[cfg(debug_assertions)]
        for b in &mut self.born {
            if *b != NIL {
                *b = 0;
            }
        }
    }

    /// Returns a block allocated in epoch `born`: at once if no snapshot
    /// reaches it (`fresh`: allocated since the last publish), after the
    /// grace period otherwise.
    pub fn release(&mut self, off: u32, n: u32, fresh: bool, born: u32) {
        if off == NIL || n == 0 {
            return;
        }
        if fresh {
            self.free(off, n);
        } else {
            self.retired.push(Retired { off, n, born });
        }
    }

    fn free(&mut self, off: u32, n: u32) {
        if self.free.len() <= n as usize {
            self.free.resize_with(n as usize + 1, Vec::new);
        }
        self.used -= n;
        self.free[n as usize].push(off);
        self.mark(off, n, NIL);
    }

    /// A publish: the blocks retired since the last one are reached only
    /// by the snapshot it replaced.
    pub fn published(&mut self) {
        self.waiting.append(&mut self.retired);
    }

    /// The grace period after a publish is over: no reader holds the
    /// snapshot it replaced. Its blocks are reused, except those a snapshot
    /// abandoned to a slow reader may still reach (`abandoned`: the
    /// generations of those alive). Generation `g` was built in epoch
    /// `g - 1`: it may reach a block born before epoch `g` (it does if the
    /// block was replaced after it was published; a block held back for
    /// an older snapshot may wait for a younger one that never reached it,
    /// the safe side).
    pub fn reclaim(&mut self, abandoned: &[u64]) {
        let mut blocks = std::mem::take(&mut self.waiting);
        blocks.append(&mut self.deferred);
        for &r in &blocks {
            let reached = abandoned.iter().any(|&g| u64::from(r.born) < g);
            if reached {
                self.deferred.push(r);
            } else {
                self.free(r.off, r.n);
            }
        }
        blocks.clear();
        self.waiting = blocks;
    }
}

/// Grows `v` to `len` elements, reserving an eighth more rather than
/// doubling, so the arrays stay close to their used size.
pub(crate) fn grow_to<T: Clone + Default>(v: &mut Vec<T>, len: usize) {
    if v.len() >= len {
        return;
    }
    if v.capacity() < len {
        v.reserve_exact(len + len / 8 - v.len());
    }
    v.resize(len, T::default());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reuses_freed_blocks_of_the_same_class() {
        let mut a = BlockAlloc::default();
        let (x, cx) = a.alloc(9, 0);
        assert_eq!((x, cx), (0, 10));
        let (y, cy) = a.alloc(1, 0);
        assert_eq!((y, cy), (10, 1));
        a.release(x, cx, true, 0);
        assert_eq!(a.alloc(3, 0), (11, 3));
        assert_eq!(a.alloc(10, 0), (0, 10));
        assert_eq!(a.top, 14);
        assert_eq!(a.used, 14);
    }

    #[test]
    fn retired_blocks_wait_for_the_grace_period() {
        let mut a = BlockAlloc::default();
        let (x, cx) = a.alloc(4, 0);
        a.published();
        // Replaced after publish 1: the published snapshot reaches it.
        a.release(x, cx, false, 0);
        assert_eq!(a.alloc(4, 1), (4, 4));
        a.reclaim(&[]);
        assert_eq!(a.alloc(4, 1), (8, 4), "not before the next publish");
        a.published();
        // Publish 2 is out, but snapshot 1 was abandoned to a reader.
        a.reclaim(&[1]);
        assert_eq!(a.alloc(4, 2), (12, 4), "not while an older snapshot lives");
        a.published();
        a.reclaim(&[]);
        assert_eq!(a.alloc(4, 3), (0, 4), "reused once no snapshot reaches it");
    }

    #[test]
    fn abandoned_snapshots_hold_back_only_what_they_can_reach() {
        let mut a = BlockAlloc::default();
        let (old, _) = a.alloc(1, 0); // in snapshots 1 and 2
        a.published();
        let (mid, _) = a.alloc(2, 1); // in snapshot 2 only
        let (early, _) = a.alloc(3, 1);
        a.release(early, 3, true, 1); // replaced before snapshot 2: fresh
        a.published();
        let (new, _) = a.alloc(4, 2); // in neither
        a.published();
        a.release(old, 1, false, 0);
        a.release(mid, 2, false, 1);
        a.release(new, 4, false, 2);
        a.published();
        // Snapshots 1 and 2 are both held by slow readers.
        a.reclaim(&[1, 2]);
        assert_eq!(a.alloc(4, 4), (new, 4), "no held snapshot reaches it");
        assert_ne!(a.alloc(2, 4).0, mid, "snapshot 2 reaches it");
        assert_ne!(a.alloc(1, 4).0, old, "snapshots 1 and 2 reach it");
        a.published();
        // Snapshot 2 is dropped; snapshot 1 does not reach `mid`.
        a.reclaim(&[1]);
        assert_eq!(a.alloc(2, 5), (mid, 2));
        assert_ne!(a.alloc(1, 5).0, old, "snapshot 1 reaches it");
        a.published();
        a.reclaim(&[]);
        assert_eq!(a.alloc(1, 6), (old, 1), "free once no snapshot is held");
    }

    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "a snapshot may reach")]
    fn writes_into_published_blocks_are_caught() {
        let mut a = BlockAlloc::default();
        let (x, cx) = a.alloc(2, 0);
        a.check_fresh(x, cx, 0);
        a.check_fresh(x, cx, 1);
    }

    #[test]
    fn classes_waste_at_most_a_fifth() {
        let mut last = 0;
        for n in 1..=256 {
            let c = class_of(n);
            assert!(c >= n && c >= last && c <= 256, "{n} -> {c}");
            assert!(c * 4 <= n * 5 || n <= 8, "{n} -> {c}");
            last = c;
        }
        assert_eq!(class_of(17), 20);
        assert_eq!(class_of(256), 256);
    }
}
