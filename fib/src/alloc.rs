//! Size-class allocation of blocks inside the trie's arrays.
//!
//! A node's children and a node's leaves are contiguous blocks of an array;
//! blocks come in power-of-two sizes with a free list per size, so an update
//! that grows or shrinks a block moves only that block. Both copies of the
//! double-buffered trie share one allocator, so their layouts are identical.

pub(crate) const NIL: u32 = u32::MAX;

#[derive(Debug, Default, Clone)]
pub(crate) struct BlockAlloc {
    free: Vec<Vec<u32>>,
    /// Elements handed out so far (the array's length).
    pub top: u32,
    /// Elements currently in use (for statistics).
    pub used: u32,
}

/// The size class (log2 of the block size) that holds `n` elements.
#[inline]
pub(crate) fn class_of(n: u32) -> u32 {
    n.max(1).next_power_of_two().trailing_zeros()
}

impl BlockAlloc {
    /// A block that holds `n` elements; returns its offset and capacity.
    pub fn alloc(&mut self, n: u32) -> (u32, u32) {
        let class = class_of(n) as usize;
        let cap = 1u32 << class;
        self.used += cap;
        if let Some(off) = self.free.get_mut(class).and_then(Vec::pop) {
            return (off, cap);
        }
        let off = self.top;
        self.top += cap;
        (off, cap)
    }

    pub fn free(&mut self, off: u32, cap: u32) {
        if off == NIL || cap == 0 {
            return;
        }
        let class = class_of(cap) as usize;
        if self.free.len() <= class {
            self.free.resize_with(class + 1, Vec::new);
        }
        self.used -= cap;
        self.free[class].push(off);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reuses_freed_blocks_of_the_same_class() {
        let mut a = BlockAlloc::default();
        let (x, cx) = a.alloc(3);
        assert_eq!((x, cx), (0, 4));
        let (y, cy) = a.alloc(1);
        assert_eq!((y, cy), (4, 1));
        a.free(x, cx);
        assert_eq!(a.alloc(4), (0, 4));
        assert_eq!(a.alloc(2), (5, 2));
        assert_eq!(a.top, 7);
        assert_eq!(a.used, 7);
    }
}
