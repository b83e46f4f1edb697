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

/// The largest block: a node's 256 children or leaf runs.
pub(crate) const MAX_CLASS: u32 = 256;

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
    /// Compaction mode (`set_compacting`): the free extents (offset,
    /// length), merged and in order.
    compacting: Option<Vec<(u32, u32)>>,
    /// The elements the array has room for (`None`: no limit): an
    /// allocation that finds no free block of its class and would pass
    /// it takes free space of other classes instead (`alloc_merged`).
    limit: Option<u32>,
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
        let off = if self.compacting.is_some() {
            self.alloc_low(n)
        } else {
            let own = self.free.get_mut(n as usize).and_then(Vec::pop);
            let full = self
                .limit
                .is_some_and(|cap| self.top.saturating_add(n) > cap);
            if own.is_none() && full {
                self.alloc_merged(n)
            } else {
                own
            }
        };
        let off = off.unwrap_or_else(|| {
            self.top += n;
            self.top - n
        });
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
        self.used -= n;
        if let Some(extents) = self.compacting.as_mut() {
            Self::free_extent(extents, off, n);
        } else {
            self.push_free(off, n);
        }
        self.mark(off, n, NIL);
    }

    /// Compaction mode on or off. While on, the free blocks are merged
    /// into extents and an allocation takes the lowest extent it fits in
    /// (first fit), so live blocks move down; when it ends, the extents
    /// go back to the free lists in class-sized pieces.
    pub fn set_compacting(&mut self, on: bool) {
        if on == self.compacting.is_some() {
            return;
        }
        if on {
            let blocks = self.sorted_free();
            self.free.iter_mut().for_each(Vec::clear);
            let mut extents: Vec<(u32, u32)> = Vec::with_capacity(blocks.len());
            for (off, n) in blocks {
                match extents.last_mut() {
                    Some((o, len)) if *o + *len == off => *len += n,
                    _ => extents.push((off, n)),
                }
            }
            self.compacting = Some(extents);
        } else if let Some(extents) = self.compacting.take() {
            for (mut off, mut len) in extents {
                while len > 0 {
                    let piece = (1..=len.min(MAX_CLASS))
                        .rev()
                        .find(|&k| class_of(k) == k)
                        .unwrap_or(1);
                    self.push_free(off, piece);
                    (off, len) = (off + piece, len - piece);
                }
            }
        }
    }

    /// Every free block (offset, size), by offset.
    fn sorted_free(&self) -> Vec<(u32, u32)> {
        let mut blocks: Vec<(u32, u32)> = self
            .free
            .iter()
            .enumerate()
            .flat_map(|(n, l)| l.iter().map(move |&off| (off, n as u32)))
            .collect();
        blocks.sort_unstable();
        blocks
    }

    fn push_free(&mut self, off: u32, n: u32) {
        if self.free.len() <= n as usize {
            self.free.resize_with(n as usize + 1, Vec::new);
        }
        self.free[n as usize].push(off);
    }

    /// In compaction mode, the lowest free extent that holds `n` elements:
    /// its index in the extent list.
    fn first_fit(&self, n: u32) -> Option<usize> {
        self.compacting
            .as_ref()?
            .iter()
            .position(|&(_, len)| len >= n)
    }

    /// Whether a free place lower than `off` could take a block of class
    /// `n` (in compaction mode).
    pub fn has_lower(&self, n: u32, off: u32) -> bool {
        let extents = self.compacting.as_deref().unwrap_or_default();
        self.first_fit(n).is_some_and(|i| extents[i].0 < off)
    }

    /// Sets the elements the array has room for.
    pub fn set_limit(&mut self, cap: usize) {
        self.limit = Some(u32::try_from(cap).unwrap_or(u32::MAX));
    }

    /// No free block of class `n` and no room above the top: the free
    /// blocks of every class are merged, as compaction does, and the
    /// lowest extent that holds `n` is taken; the rest go back to the free
    /// lists in class-sized pieces. Blocks freed as one class would
    /// otherwise never serve another, and churn that moves leaf runs
    /// between classes grew the array past its room while a quarter of it
    /// was in use. Rare (only at the limit); a sort of the free blocks.
    fn alloc_merged(&mut self, n: u32) -> Option<u32> {
        self.set_compacting(true);
        let off = self.alloc_low(n);
        self.set_compacting(false);
        off
    }

    /// Takes the lowest place that fits class `n` (compaction mode).
    fn alloc_low(&mut self, n: u32) -> Option<u32> {
        let i = self.first_fit(n)?;
        let extents = self.compacting.as_mut()?;
        let (off, len) = extents[i];
        if len == n {
            extents.remove(i);
        } else {
            extents[i] = (off + n, len - n);
        }
        Some(off)
    }

    /// Returns a block to the extents, merged with its neighbours
    /// (compaction mode).
    fn free_extent(extents: &mut Vec<(u32, u32)>, off: u32, n: u32) {
        let i = extents.partition_point(|&(o, _)| o < off);
        let merge_prev = i > 0 && extents[i - 1].0 + extents[i - 1].1 == off;
        let merge_next = i < extents.len() && off + n == extents[i].0;
        match (merge_prev, merge_next) {
            (true, true) => {
                extents[i - 1].1 += n + extents[i].1;
                extents.remove(i);
            }
            (true, false) => extents[i - 1].1 += n,
            (false, true) => extents[i] = (off, n + extents[i].1),
            (false, false) => extents.insert(i, (off, n)),
        }
    }

    /// Gives up the free blocks at the end of the array: lowers `top` to
    /// the end of the last block in use (allocated, retired or waiting)
    /// and returns it. Shrinks the bookkeeping to match.
    pub fn trim(&mut self) -> u32 {
        let mut blocks = self.sorted_free();
        while let Some(&(off, n)) = blocks.last() {
            if off + n != self.top {
                break;
            }
            self.top = off;
            blocks.pop();
        }
        let top = self.top;
        for list in &mut self.free {
            list.retain(|&off| off < top);
            list.shrink_to_fit();
        }
        while self.free.last().is_some_and(Vec::is_empty) {
            self.free.pop();
        }
        self.free.shrink_to_fit();
        for v in [&mut self.retired, &mut self.waiting, &mut self.deferred] {
            v.shrink_to_fit();
        }
        #[cfg(debug_assertions)]
        {
            self.born.truncate(top as usize);
            self.born.shrink_to_fit();
        }
        top
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
    fn compaction_fills_the_lowest_holes_and_trim_gives_back_the_end() {
        let mut a = BlockAlloc::default();
        // 0..4 4..8 8..12 12..22 22..23 23..33
        let blocks: Vec<(u32, u32)> = [4, 4, 4, 10, 1, 10]
            .iter()
            .map(|&n| a.alloc(n, 0))
            .collect();
        assert_eq!(a.top, 33);
        // Holes of 4 at 4 and of 10 at 12.
        for &(off, n) in &[blocks[1], blocks[3]] {
            a.release(off, n, true, 0);
        }
        a.set_compacting(true);
        assert!(a.has_lower(4, 23), "the hole at 4 holds 4");
        assert!(a.has_lower(10, 23), "the hole at 12 holds 10");
        assert!(!a.has_lower(12, 23), "no hole holds 12");
        assert!(!a.has_lower(1, 4), "nothing free below 4");
        // A 3 takes the lowest place it fits in, splitting the hole.
        assert_eq!(a.alloc(3, 1), (4, 3));
        // The last 10 moves down (its old place frees at once: fresh).
        assert_eq!(a.alloc(10, 1), (12, 10));
        a.release(23, 10, true, 0);
        // A freed neighbour merges: 22..33 is one hole now.
        a.release(22, 1, true, 0);
        assert!(a.has_lower(11, 34), "22..33 merged");
        a.set_compacting(false);
        // Back in class lists (7..8, then 22..33 as 10 and 1); the free
        // end goes.
        assert_eq!(a.trim(), 22);
        assert_eq!(a.used, 21);
        // What stays free below the end is still handed out.
        assert_eq!(a.alloc(1, 2), (7, 1));
        assert_eq!(a.alloc(2, 2), (22, 2), "nothing free: from the end");
    }

    #[test]
    fn freed_blocks_merge_with_both_neighbours() {
        let mut e = vec![(0, 4), (10, 2)];
        BlockAlloc::free_extent(&mut e, 4, 3); // after 0..4 only
        assert_eq!(e, [(0, 7), (10, 2)]);
        BlockAlloc::free_extent(&mut e, 7, 3); // between: all one
        assert_eq!(e, [(0, 12)]);
        BlockAlloc::free_extent(&mut e, 20, 2); // alone, at the end
        BlockAlloc::free_extent(&mut e, 14, 1); // alone, in the middle
        assert_eq!(e, [(0, 12), (14, 1), (20, 2)]);
        BlockAlloc::free_extent(&mut e, 18, 2); // before 20..22 only
        assert_eq!(e, [(0, 12), (14, 1), (18, 4)]);
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
