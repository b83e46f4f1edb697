//! The lookup structure readers walk: a poptrie-family multibit trie.
//!
//! Layout (all plain arrays, so a snapshot is a handful of allocations that
//! stay in the CPU caches: about 3 MiB for a 100k-prefix Internet table):
//!
//! ```text
//! direct[addr >> 112]            65,536 entries (the first 16 bits), u32 each:
//!   bit 31 NODE   low 29 bits = index of the /16's root node in `nodes`
//!   bit 30 HAS128 some /128 route lies under this /16: probe `h128` first
//!   bit 29 HAS64  some leaf /64 route lies under this /16: probe `h64` first
//!   otherwise     low 29 bits = leaf value (next-hop group id, 0 = no route)
//!
//! nodes[i]: 8-bit stride (256 slots) = 4 chunks of 64 slots, 128 bytes,
//! cache-line aligned so that one step of a lookup reads one 32-byte chunk:
//!   vec     bit s set: slot s continues in a child node
//!   leafvec bit s set: leaf slot s starts a new run of equal leaf values
//!   base1   index of the chunk's first child node (children are contiguous)
//!   base0   index in `leaves` of the run before the chunk's first (minus one)
//! child  = base1 + popcount(vec & below(s))
//! leaf   = leaves[base0 + popcount(leafvec & through(s))]
//! ```
//!
//! Node levels are 16, 24, ..., 120; a route of length `l` lives in the node
//! whose level `L` satisfies `L < l <= L + 8`, with leaf pushing (every slot
//! holds the longest match for it). Every length 0..=128 works through the
//! trie alone. Two exact-match tables are shortcuts for the long prefixes a
//! Kubernetes edge carries (service /128s and pod /64s), so those do not walk
//! seven to fourteen levels: `h128` holds every /128 route, `h64` every /64
//! route that has no longer route below it. Both are exact answers when they
//! hit, because nothing longer can match.
//!
//! Panics: lookups index arrays the builder wrote consistently; they never
//! panic for any address.

use crate::group::GroupId;

pub(crate) const NODE: u32 = 1 << 31;
pub(crate) const HAS128: u32 = 1 << 30;
pub(crate) const HAS64: u32 = 1 << 29;
pub(crate) const VALUE_MASK: u32 = (1 << 29) - 1;

/// Lookups processed together in lock-step by the batch lookup: enough
/// independent loads in flight to hide cache latency.
pub const LOOKUP_GROUP: usize = 32;

/// 64 slots of a node.
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
#[repr(C, align(32))]
pub(crate) struct Chunk {
    pub vec: u64,
    pub leafvec: u64,
    pub base1: u32,
    pub base0: u32,
}

/// 256 slots: one 8-bit stride.
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
#[repr(C, align(64))]
pub(crate) struct Node {
    pub chunks: [Chunk; 4],
}

/// One step of a walk: the child node index, or the leaf value.
#[inline(always)]
fn step(nodes: &[Node], leaves: &[u32], node: u32, slot: u32) -> Result<u32, u32> {
    let c = &nodes[node as usize].chunks[(slot >> 6) as usize];
    let bit = 1u64 << (slot & 63);
    if c.vec & bit != 0 {
        Ok(c.base1 + (c.vec & (bit - 1)).count_ones())
    } else {
        let i = c
            .base0
            .wrapping_add((c.leafvec & (bit | (bit - 1))).count_ones());
        Err(leaves[i as usize])
    }
}

/// Keys of the exact-match tables.
pub(crate) trait Key: Copy + Eq + Default + std::fmt::Debug {
    fn hash(self) -> u64;
}

impl Key for u128 {
    #[inline(always)]
    fn hash(self) -> u64 {
        let x = (self as u64) ^ ((self >> 64) as u64).rotate_left(29);
        x.wrapping_mul(0x9E37_79B9_7F4A_7C15)
    }
}

impl Key for u64 {
    #[inline(always)]
    fn hash(self) -> u64 {
        (self ^ (self >> 29)).wrapping_mul(0x9E37_79B9_7F4A_7C15)
    }
}

#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
pub(crate) struct Slot<K> {
    pub key: K,
    /// Leaf value; 0 marks an empty slot (0 is never a stored value).
    pub value: u32,
}

/// Open addressing with linear probing and backward-shift deletion; load
/// factor at most 1/2, so a hit or a miss reads one or two slots.
#[derive(Clone, Debug)]
pub(crate) struct ExactTable<K> {
    pub slots: Vec<Slot<K>>,
    pub len: usize,
    shift: u32,
}

impl<K: Key> ExactTable<K> {
    pub fn new() -> Self {
        ExactTable {
            slots: vec![Slot::default(); 16],
            len: 0,
            shift: 64 - 4,
        }
    }

    #[inline(always)]
    fn home(&self, key: K) -> usize {
        (key.hash() >> self.shift) as usize
    }

    #[inline(always)]
    pub fn get(&self, key: K) -> u32 {
        let mask = self.slots.len() - 1;
        let mut i = self.home(key);
        loop {
            let s = &self.slots[i];
            if s.value == 0 || s.key == key {
                return s.value;
            }
            i = (i + 1) & mask;
        }
    }

    /// Inserts or replaces; returns whether the table was rebuilt (grown),
    /// and logs every slot written.
    pub fn insert(&mut self, key: K, value: u32, dirty: &mut Vec<u32>) -> bool {
        debug_assert!(value != 0);
        let mut grown = false;
        if (self.len + 1) * 2 > self.slots.len() {
            self.grow();
            grown = true;
        }
        let mask = self.slots.len() - 1;
        let mut i = self.home(key);
        loop {
            let s = &mut self.slots[i];
            if s.value == 0 || s.key == key {
                if s.value == 0 {
                    self.len += 1;
                }
                *s = Slot { key, value };
                dirty.push(i as u32);
                return grown;
            }
            i = (i + 1) & mask;
        }
    }

    /// Removes `key`; returns whether it was there. Logs every slot written.
    pub fn remove(&mut self, key: K, dirty: &mut Vec<u32>) -> bool {
        let mask = self.slots.len() - 1;
        let mut i = self.home(key);
        loop {
            let s = self.slots[i];
            if s.value == 0 {
                return false;
            }
            if s.key == key {
                break;
            }
            i = (i + 1) & mask;
        }
        // Backward-shift deletion: pull later members of the probe run into
        // the hole when their home position allows it.
        let mut hole = i;
        let mut j = (i + 1) & mask;
        loop {
            let s = self.slots[j];
            if s.value == 0 {
                break;
            }
            let home = self.home(s.key);
            // Can s move to `hole`? Only if `home` is not cyclically in (hole, j].
            let in_range = if hole <= j {
                home > hole && home <= j
            } else {
                home > hole || home <= j
            };
            if !in_range {
                self.slots[hole] = s;
                dirty.push(hole as u32);
                hole = j;
            }
            j = (j + 1) & mask;
        }
        self.slots[hole] = Slot::default();
        dirty.push(hole as u32);
        self.len -= 1;
        true
    }

    fn grow(&mut self) {
        let bigger = vec![Slot::default(); self.slots.len() * 2];
        let old = std::mem::replace(&mut self.slots, bigger);
        self.shift -= 1;
        self.len = 0;
        let mut sink = Vec::new();
        for s in old.into_iter().filter(|s| s.value != 0) {
            self.insert(s.key, s.value, &mut sink);
        }
    }

    pub fn memory_bytes(&self) -> usize {
        self.slots.capacity() * std::mem::size_of::<Slot<K>>()
    }
}

/// The arrays of one snapshot.
#[derive(Clone, Debug)]
pub(crate) struct Trie {
    pub direct: Vec<u32>,
    pub nodes: Vec<Node>,
    pub leaves: Vec<u32>,
    pub h128: ExactTable<u128>,
    pub h64: ExactTable<u64>,
}

impl Trie {
    pub fn new() -> Self {
        Trie {
            direct: vec![0; 1 << 16],
            nodes: Vec::new(),
            leaves: Vec::new(),
            h128: ExactTable::new(),
            h64: ExactTable::new(),
        }
    }

    /// Longest-prefix match; returns the leaf value (0: no route).
    #[inline]
    pub fn lookup(&self, a: u128) -> u32 {
        let d = self.direct[(a >> 112) as usize];
        if d & HAS128 != 0 {
            let v = self.h128.get(a);
            if v != 0 {
                return v;
            }
        }
        if d & HAS64 != 0 {
            let v = self.h64.get((a >> 64) as u64);
            if v != 0 {
                return v;
            }
        }
        if d & NODE == 0 {
            return d & VALUE_MASK;
        }
        let mut node = d & VALUE_MASK;
        let mut shift = 104u32;
        loop {
            match step(&self.nodes, &self.leaves, node, (a >> shift) as u32 & 0xff) {
                Ok(child) => {
                    node = child;
                    // A level-120 node never has children (shift would be 0).
                    shift = shift.saturating_sub(8);
                }
                Err(leaf) => return leaf,
            }
        }
    }

    /// Looks up `addrs` in groups of [`LOOKUP_GROUP`] walked in lock-step,
    /// so the loads of different addresses overlap.
    pub fn lookup_batch(&self, addrs: &[u128], out: &mut [Option<GroupId>]) {
        for (a, o) in addrs.chunks(LOOKUP_GROUP).zip(out.chunks_mut(LOOKUP_GROUP)) {
            self.lookup_group(a, o);
        }
    }

    #[inline(always)]
    fn lookup_group(&self, a: &[u128], out: &mut [Option<GroupId>]) {
        let n = a.len().min(out.len()).min(LOOKUP_GROUP);
        let mut node = [0u32; LOOKUP_GROUP];
        let mut pending = [0u8; LOOKUP_GROUP];
        let mut np = 0;
        for i in 0..n {
            let d = self.direct[(a[i] >> 112) as usize];
            let mut v = 0;
            if d & HAS128 != 0 {
                v = self.h128.get(a[i]);
            }
            if v == 0 && d & HAS64 != 0 {
                v = self.h64.get((a[i] >> 64) as u64);
            }
            if v != 0 {
                out[i] = GroupId::from_leaf(v);
            } else if d & NODE == 0 {
                out[i] = GroupId::from_leaf(d & VALUE_MASK);
            } else {
                node[i] = d & VALUE_MASK;
                pending[np] = i as u8;
                np += 1;
            }
        }
        let mut shift = 104u32;
        while np > 0 {
            let mut next = 0;
            for k in 0..np {
                let i = pending[k] as usize;
                match step(
                    &self.nodes,
                    &self.leaves,
                    node[i],
                    (a[i] >> shift) as u32 & 0xff,
                ) {
                    Ok(child) => {
                        node[i] = child;
                        pending[next] = i as u8;
                        next += 1;
                    }
                    Err(leaf) => out[i] = GroupId::from_leaf(leaf),
                }
            }
            np = next;
            shift = shift.saturating_sub(8);
        }
    }

    pub fn memory_bytes(&self) -> usize {
        self.direct.capacity() * 4
            + self.nodes.capacity() * std::mem::size_of::<Node>()
            + self.leaves.capacity() * 4
            + self.h128.memory_bytes()
            + self.h64.memory_bytes()
    }

    /// Brings `self` (the standby copy) to the state of `src` (the copy
    /// published last) by copying what `log` says changed there.
    pub fn catch_up(&mut self, src: &Trie, log: &DirtyLog) {
        if log.full {
            self.clone_from(src);
            return;
        }
        for &i in &log.direct {
            self.direct[i as usize] = src.direct[i as usize];
        }
        self.nodes.resize(src.nodes.len(), Node::default());
        for &i in &log.nodes {
            self.nodes[i as usize] = src.nodes[i as usize];
        }
        self.leaves.resize(src.leaves.len(), 0);
        for &(off, len) in &log.leaves {
            let r = off as usize..(off + len) as usize;
            self.leaves[r.clone()].copy_from_slice(&src.leaves[r]);
        }
        catch_up_table(&mut self.h128, &src.h128, log.h128_full, &log.h128);
        catch_up_table(&mut self.h64, &src.h64, log.h64_full, &log.h64);
    }
}

fn catch_up_table<K: Key>(dst: &mut ExactTable<K>, src: &ExactTable<K>, full: bool, slots: &[u32]) {
    if full {
        dst.clone_from(src);
        return;
    }
    for &i in slots {
        dst.slots[i as usize] = src.slots[i as usize];
    }
    dst.len = src.len;
}

/// What a round of updates wrote, so the other copy can catch up.
#[derive(Debug, Default)]
pub(crate) struct DirtyLog {
    pub full: bool,
    pub direct: Vec<u32>,
    pub nodes: Vec<u32>,
    pub leaves: Vec<(u32, u32)>,
    pub h128: Vec<u32>,
    pub h128_full: bool,
    pub h64: Vec<u32>,
    pub h64_full: bool,
    pub groups: Vec<u32>,
}

impl DirtyLog {
    pub fn clear(&mut self) {
        self.full = false;
        self.direct.clear();
        self.nodes.clear();
        self.leaves.clear();
        self.h128.clear();
        self.h128_full = false;
        self.h64.clear();
        self.h64_full = false;
        self.groups.clear();
    }
}
