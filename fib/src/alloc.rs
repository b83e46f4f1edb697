//! Size-class allocation of blocks inside the trie's arrays.
//!
//! A node's children and a node's leaves are contiguous blocks of an array
//! of at most 256 elements. Block sizes come in classes four to a doubling
//! (1-8, then 10, 12, 14, 16, 20, 24, ...), so rounding wastes at most a
//! fifth, a block that grows or shrinks within its class stays put, and a
//! freed block is reused by the next request of its class (exact sizes
//! fragment under churn: the arrays keep growing). Both copies of the
//! double-buffered trie share one allocator, so their layouts are identical.

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

#[derive(Debug, Default, Clone)]
pub(crate) struct BlockAlloc {
    free: Vec<Vec<u32>>,
    /// Elements handed out so far (the array's length).
    pub top: u32,
    /// Elements currently in use (for statistics).
    pub used: u32,
}

impl BlockAlloc {
    /// A block for `n` elements; returns its offset and size (the class).
    pub fn alloc(&mut self, n: u32) -> (u32, u32) {
        let n = class_of(n);
        self.used += n;
        if let Some(off) = self.free.get_mut(n as usize).and_then(Vec::pop) {
            return (off, n);
        }
        let off = self.top;
        self.top += n;
        (off, n)
    }

    pub fn free(&mut self, off: u32, n: u32) {
        if off == NIL || n == 0 {
            return;
        }
        if self.free.len() <= n as usize {
            self.free.resize_with(n as usize + 1, Vec::new);
        }
        self.used -= n;
        self.free[n as usize].push(off);
    }
}

/// Grows `v` to `len` elements, reserving an eighth more rather than
/// doubling, so the arrays of a snapshot stay close to their used size.
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
        let (x, cx) = a.alloc(9);
        assert_eq!((x, cx), (0, 10));
        let (y, cy) = a.alloc(1);
        assert_eq!((y, cy), (10, 1));
        a.free(x, cx);
        assert_eq!(a.alloc(3), (11, 3));
        assert_eq!(a.alloc(10), (0, 10));
        assert_eq!(a.top, 14);
        assert_eq!(a.used, 14);
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
