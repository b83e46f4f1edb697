//! The lookup structure readers walk: a poptrie-family multibit trie.
//!
//! Layout (all plain arrays, so a snapshot is a handful of allocations that
//! stay in the CPU caches: about 5 MiB for a 100k-prefix Internet table).
//! `nodes` and `leaves` live in the FIB's `Store` (`arena.rs`), one copy
//! shared by every snapshot and changed copy-on-write; `direct`, the root
//! pages (`top`) and the exact-match tables belong to each of the two
//! snapshot copies:
//!
//! ```text
//! direct[addr >> 112]            65,536 entries (the first 16 bits), u32 each:
//!   bit 31 NODE   low 29 bits = index of the /16's root page in `top`
//!   bit 30 HAS128 some /128 route lies under this /16: probe `h128` first
//!   bit 29 HAS64  some leaf /64 route lies under this /16: probe `exact[0]`
//!   otherwise     low 29 bits = leaf value (next-hop group id, 0 = no route)
//!
//! top[page * 256 + (addr >> 104 & 0xff)]  a /16's root page: 256 entries,
//!   one per /24, u32 each: NODE and the index of the /24's node in
//!   `nodes`, or a leaf value. A root's children need not be contiguous,
//!   so a change below a /24 moves that /24's node alone.
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
//! Node levels are 16 (the root pages), 24, ..., 120; a route of length `l`
//! lives in the node whose level `L` satisfies `L < l <= L + 8`, with leaf
//! pushing (every slot holds the longest match for it). Every length 0..=128 works through the
//! trie for lengths 17..=127. Exact-match tables are shortcuts for the long
//! prefixes a Kubernetes edge carries, so those do not walk seven to
//! fourteen levels: `h128` holds every /128 route (and the trie none: a /128
//! matches only itself, so it cannot change any other address's answer),
//! `exact[0]` every /64 route that has no longer route (other than /128s)
//! below it. They are exact answers when they hit, because nothing longer
//! can match; a miss costs one probe. (An exact table for /48, half of an
//! Internet table, was measured and lost: the probe of every lookup cost
//! more than the walks it saved.)
//!
//! Panics: lookups index arrays the builder wrote consistently; they never
//! panic for any address.

use std::sync::Arc;

use crate::alloc::grow_to;
use crate::arena::{Region, Store, View};
use crate::group::GroupId;

pub(crate) const NODE: u32 = 1 << 31;
pub(crate) const HAS128: u32 = 1 << 30;
pub(crate) const HAS64: u32 = 1 << 29;
pub(crate) const VALUE_MASK: u32 = (1 << 29) - 1;
/// Entries in a root page: the 256 /24s of a /16.
pub(crate) const PAGE: usize = 256;
/// The lengths with an exact-match shortcut besides /128, and their flags.
pub(crate) const EXACT_LENS: [u8; 1] = [64];
pub(crate) const EXACT_FLAGS: [u32; 1] = [HAS64];

/// Lookups processed together in lock-step by the batch lookup: enough
/// independent loads in flight to hide cache latency.
pub const LOOKUP_GROUP: usize = 32;

/// 64 slots of a node: 24 bytes, padded to 32 so that no chunk straddles
/// two cache lines (packing them into 96-byte nodes saved 8% of memory and
/// cost 7% of in-table lookups).
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
#[repr(C, align(32))]
pub(crate) struct Chunk {
    pub vec: u64,
    pub leafvec: u64,
    pub base1: u32,
    pub base0: u32,
}

/// 256 slots: one 8-bit stride, 128 bytes.
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
#[repr(C, align(64))]
pub(crate) struct Node {
    pub chunks: [Chunk; 4],
}

/// Asks the CPU to start loading the cache line at `p`, which may be any
/// address: a prefetch never faults and reads nothing the program sees.
#[inline(always)]
#[allow(unsafe_code)]
fn prefetch_ptr<T>(p: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is a hint that never faults, whatever the address.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p.cast::<i8>());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// One step of a walk: the child node index, or the leaf value.
#[inline(always)]
fn step(nodes: &Region<Node>, leaves: &Region<u32>, node: u32, slot: u32) -> Result<u32, u32> {
    let c = &nodes.get(node).chunks[(slot >> 6) as usize];
    let bit = 1u64 << (slot & 63);
    if c.vec & bit != 0 {
        Ok(c.base1 + (c.vec & (bit - 1)).count_ones())
    } else {
        let i = c
            .base0
            .wrapping_add((c.leafvec & (bit | (bit - 1))).count_ones());
        Err(*leaves.get(i))
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

/// One bucket of `W` entries, one cache line: 4 entries of 64-bit keys or
/// 3 of 128-bit ones.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C, align(64))]
pub(crate) struct Bucket<K, const W: usize> {
    pub keys: [K; W],
    /// Leaf values; 0 marks an empty entry (0 is never a stored value).
    pub vals: [u32; W],
    /// Keys whose home is this bucket but which live in a later one.
    pub spill: u32,
}

impl<K: Key, const W: usize> Default for Bucket<K, W> {
    fn default() -> Self {
        Bucket {
            keys: [K::default(); W],
            vals: [0; W],
            spill: 0,
        }
    }
}

/// A bucketised hash table read without data-dependent branches: a lookup
/// hashes to one bucket and compares all its entries with selects, so a
/// batch of lookups keeps many cache misses in flight. A key goes to the
/// first bucket from its home with a free entry; its home counts it in
/// `spill`, and only then does a lookup look further. At most half full.
#[derive(Clone, Debug)]
pub(crate) struct ExactTable<K, const W: usize> {
    pub buckets: Vec<Bucket<K, W>>,
    pub len: usize,
    shift: u32,
}

impl<K: Key, const W: usize> ExactTable<K, W> {
    pub fn new() -> Self {
        ExactTable {
            buckets: vec![Bucket::default(); 4],
            len: 0,
            shift: 64 - 2,
        }
    }

    #[inline(always)]
    fn home(&self, key: K) -> usize {
        (key.hash() >> self.shift) as usize
    }

    /// The value for `key`, 0 if absent.
    #[inline(always)]
    pub fn get(&self, key: K) -> u32 {
        let h = self.home(key);
        let b = &self.buckets[h];
        let mut v = 0;
        for j in 0..W {
            // A mask, not a branch: the compiler turns `if` into jumps,
            // which mispredict and wait for the cache miss.
            v |= b.vals[j] & u32::from(b.keys[j] == key).wrapping_neg();
        }
        // `spill` first: it is almost always 0, so this branch predicts
        // well; branching on `v` first (a hit or not: a coin toss in a
        // mixed batch) mispredicts and stalls on the bucket's cache miss.
        if b.spill != 0 && v == 0 {
            return self.get_spilled(key, h);
        }
        v
    }

    #[cold]
    fn get_spilled(&self, key: K, home: usize) -> u32 {
        self.find(key, home)
            .map_or(0, |(b, j)| self.buckets[b].vals[j])
    }

    /// Where `key` lives: (bucket, entry).
    fn find(&self, key: K, home: usize) -> Option<(usize, usize)> {
        let mask = self.buckets.len() - 1;
        let hb = &self.buckets[home];
        for j in 0..W {
            if hb.vals[j] != 0 && hb.keys[j] == key {
                return Some((home, j));
            }
        }
        let mut left = hb.spill;
        let mut b = home;
        while left > 0 {
            b = (b + 1) & mask;
            if b == home {
                break;
            }
            let bucket = &self.buckets[b];
            for j in 0..W {
                if bucket.vals[j] != 0 && self.home(bucket.keys[j]) == home {
                    if bucket.keys[j] == key {
                        return Some((b, j));
                    }
                    left -= 1;
                }
            }
        }
        None
    }

    /// Inserts or replaces; returns whether the table was rebuilt (grown).
    /// Logs every bucket written.
    pub fn insert(&mut self, key: K, value: u32, dirty: &mut Vec<u32>) -> bool {
        debug_assert!(value != 0);
        let home = self.home(key);
        if let Some((b, j)) = self.find(key, home) {
            self.buckets[b].vals[j] = value;
            dirty.push(b as u32);
            return false;
        }
        let mut grown = false;
        if (self.len + 1) * 2 > self.buckets.len() * W {
            self.grow();
            grown = true;
        }
        self.place(key, value, dirty);
        grown
    }

    fn place(&mut self, key: K, value: u32, dirty: &mut Vec<u32>) {
        let mask = self.buckets.len() - 1;
        let home = self.home(key);
        let mut b = home;
        loop {
            if let Some(j) = self.buckets[b].vals.iter().position(|&v| v == 0) {
                self.buckets[b].keys[j] = key;
                self.buckets[b].vals[j] = value;
                dirty.push(b as u32);
                if b != home {
                    self.buckets[home].spill += 1;
                    dirty.push(home as u32);
                }
                self.len += 1;
                return;
            }
            b = (b + 1) & mask;
        }
    }

    /// Removes `key`; returns whether it was there. Logs every bucket written.
    pub fn remove(&mut self, key: K, dirty: &mut Vec<u32>) -> bool {
        let home = self.home(key);
        let Some((b, j)) = self.find(key, home) else {
            return false;
        };
        self.buckets[b].keys[j] = K::default();
        self.buckets[b].vals[j] = 0;
        dirty.push(b as u32);
        if b != home {
            self.buckets[home].spill -= 1;
            dirty.push(home as u32);
        }
        self.len -= 1;
        true
    }

    fn grow(&mut self) {
        self.rebuild(self.buckets.len() * 2);
    }

    /// After removals: rebuilds the table at half its size or less, as
    /// long as the smaller table would be at most an eighth full (it grows
    /// again at half full), so the memory of a burst of keys gone again is
    /// given back. Returns whether
    /// it was rebuilt (a copy of it must then be copied whole).
    pub fn shrink_if_sparse(&mut self) -> bool {
        let mut n = self.buckets.len();
        while n > 4 && self.len * 8 <= (n / 2) * W {
            n /= 2;
        }
        if n == self.buckets.len() {
            return false;
        }
        self.rebuild(n);
        true
    }

    fn rebuild(&mut self, n: usize) {
        let fresh = vec![Bucket::default(); n];
        let old = std::mem::replace(&mut self.buckets, fresh);
        self.shift = 64 - n.trailing_zeros();
        self.len = 0;
        let mut sink = Vec::new();
        for b in old {
            for j in 0..W {
                if b.vals[j] != 0 {
                    self.place(b.keys[j], b.vals[j], &mut sink);
                }
            }
        }
    }

    pub fn memory_bytes(&self) -> usize {
        self.buckets.capacity() * std::mem::size_of::<Bucket<K, W>>()
    }
}

/// The arrays of one snapshot.
#[derive(Clone, Debug)]
pub(crate) struct Trie {
    pub direct: Vec<u32>,
    /// This copy's /16 root pages, `PAGE` entries each, in the format of
    /// `direct` (a node in the store, or a leaf value): a root's children
    /// need not be contiguous, so a change below one of its /24s moves
    /// only that /24's node, never its siblings.
    pub top: Vec<u32>,
    /// Deeper nodes and all leaves, shared with the other copy.
    pub store: Arc<Store>,
    pub h128: ExactTable<u128, 3>,
    /// Leaf /48 and /64 routes, keyed by their upper 48 or 64 bits.
    pub exact: [ExactTable<u64, 4>; 1],
}

impl Trie {
    pub fn new(store: Arc<Store>) -> Self {
        Trie {
            direct: vec![0; 1 << 16],
            top: Vec::new(),
            store,
            h128: ExactTable::new(),
            exact: [ExactTable::new()],
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
            let v = self.exact[0].get((a >> 64) as u64);
            if v != 0 {
                return v;
            }
        }
        if d & NODE == 0 {
            return d & VALUE_MASK;
        }
        let e = self.top[(d & VALUE_MASK) as usize * PAGE + ((a >> 104) as usize & 0xff)];
        if e & NODE == 0 {
            return e & VALUE_MASK;
        }
        let mut node = e & VALUE_MASK;
        let mut shift = 96u32;
        let (nodes, leaves) = (&self.store.nodes, &self.store.leaves);
        loop {
            match step(nodes, leaves, node, (a >> shift) as u32 & 0xff) {
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
        // Whether the last group ended in the direct table alone: if so,
        // try the next one that way first (a random mix mostly does; a mix
        // of routed destinations never does and skips the extra pass).
        let mut direct_only = false;
        for (a, o) in addrs.chunks(LOOKUP_GROUP).zip(out.chunks_mut(LOOKUP_GROUP)) {
            direct_only = (direct_only && self.lookup_direct_only(a, o)) || self.lookup_group(a, o);
        }
    }

    /// Resolves the group if every address ends in the direct table; returns
    /// false (and writes nothing) otherwise.
    #[inline(always)]
    fn lookup_direct_only(&self, a: &[u128], out: &mut [Option<GroupId>]) -> bool {
        let n = a.len().min(out.len()).min(LOOKUP_GROUP);
        let mut direct = [0u32; LOOKUP_GROUP];
        let mut any = 0;
        for i in 0..n {
            direct[i] = self.direct[(a[i] >> 112) as usize];
            any |= direct[i];
        }
        if any & (NODE | HAS64 | HAS128) != 0 {
            return false;
        }
        for i in 0..n {
            out[i] = GroupId::from_leaf(direct[i]);
        }
        true
    }

    /// One group of lookups: first the direct table and the exact-match
    /// probes for all (without branching on their results, so the probes'
    /// cache misses overlap), then the trie walks still pending, level by
    /// level in lock-step.
    #[inline(always)]
    fn lookup_group(&self, a: &[u128], out: &mut [Option<GroupId>]) -> bool {
        let n = a.len().min(out.len()).min(LOOKUP_GROUP);
        let mut node = [0u32; LOOKUP_GROUP];
        let mut pending = [0u8; LOOKUP_GROUP];
        let mut np = 0;
        let mut flags = 0;
        // The addresses as two words each, so that a level's slot is one
        // shift of a 64-bit word.
        let mut words = [[0u64; LOOKUP_GROUP]; 2];
        for i in 0..n {
            let hi = (a[i] >> 64) as u64;
            words[0][i] = a[i] as u64;
            words[1][i] = hi;
            let d = self.direct[(hi >> 48) as usize];
            let mut v = 0u32;
            if d & HAS64 != 0 {
                v = self.exact[0].get(hi);
            }
            if d & HAS128 != 0 {
                let w = self.h128.get(a[i]);
                v = if w != 0 { w } else { v };
            }
            let walk = (v == 0) & (d & NODE != 0);
            out[i] = GroupId::from_leaf(if v != 0 { v } else { d & VALUE_MASK });
            node[i] = d & VALUE_MASK;
            pending[np] = i as u8;
            np += usize::from(walk);
            flags |= d;
        }
        let direct_only = flags & (NODE | HAS64 | HAS128) == 0;
        let (nodes, leaves) = (self.store.nodes.view(), self.store.leaves.view());
        // The root pages: one direct load each, in the copy's top.
        let mut next = 0;
        for k in 0..np {
            let i = pending[k] as usize & (LOOKUP_GROUP - 1);
            let hi = words[1][i];
            let e = self.top[node[i] as usize * PAGE + ((hi >> 40) as usize & 0xff)];
            if e & NODE != 0 {
                node[i] = e & VALUE_MASK;
                pending[next] = i as u8;
                next += 1;
                let chunk = (hi >> 32) as usize & 0xc0;
                prefetch_ptr(nodes.addr_of(node[i]).cast::<u8>().wrapping_add(chunk / 2));
            } else if let Some(o) = out.get_mut(i) {
                *o = GroupId::from_leaf(e & VALUE_MASK);
            }
        }
        np = next;
        let mut shift = 96u32;
        while np > 0 {
            np = level(
                nodes,
                leaves,
                &words,
                &mut node,
                &mut pending[..np],
                shift,
                out,
            );
            shift = shift.saturating_sub(8);
        }
        direct_only
    }

    /// Bytes of this copy's own arrays (not the shared store).
    pub fn memory_bytes(&self) -> usize {
        self.direct.capacity() * 4
            + self.top.capacity() * 4
            + self.h128.memory_bytes()
            + self.exact[0].memory_bytes()
    }

    /// Brings `self` (the standby copy) to the state of `src` (the copy
    /// published last) by copying what `log` says changed there.
    pub fn catch_up(&mut self, src: &Trie, log: &DirtyLog) {
        for &i in &log.direct {
            self.direct[i as usize] = src.direct[i as usize];
        }
        grow_to(&mut self.top, src.top.len());
        for &i in &log.top {
            self.top[i as usize] = src.top[i as usize];
        }
        catch_up_table(&mut self.h128, &src.h128, log.h128_full, &log.h128);
        for k in 0..EXACT_LENS.len() {
            catch_up_table(
                &mut self.exact[k],
                &src.exact[k],
                log.exact_full[k],
                &log.exact[k],
            );
        }
    }
}

/// One level of the lock-step walks: every pending walk takes a step;
/// those that continue prefetch their child. Returns how many continue
/// (compacted in `pending`).
#[inline(always)]
fn level(
    nodes: View<'_, Node>,
    leaves: View<'_, u32>,
    words: &[[u64; LOOKUP_GROUP]; 2],
    node: &mut [u32; LOOKUP_GROUP],
    pending: &mut [u8],
    shift: u32,
    out: &mut [Option<GroupId>],
) -> usize {
    let mut n = 0;
    let next_shift = shift.saturating_sub(8);
    let (w, s) = (&words[(shift >> 6) as usize & 1], shift & 63);
    let (nw, ns) = (&words[(next_shift >> 6) as usize & 1], next_shift & 63);
    for k in 0..pending.len() {
        let i = pending[k] as usize & (LOOKUP_GROUP - 1);
        let slot = (w[i] >> s) as u32 & 0xff;
        let c = &nodes.get(node[i]).chunks[(slot >> 6) as usize];
        let bit = 1u64 << (slot & 63);
        if c.vec & bit != 0 {
            let child = c.base1 + (c.vec & (bit - 1)).count_ones();
            node[i] = child;
            pending[n & (LOOKUP_GROUP - 1)] = i as u8;
            n += 1;
            let next = (nw[i] >> ns) as usize & 0xc0;
            prefetch_ptr(nodes.addr_of(child).cast::<u8>().wrapping_add(next / 2));
        } else {
            let l = c
                .base0
                .wrapping_add((c.leafvec & (bit | (bit - 1))).count_ones());
            if let Some(o) = out.get_mut(i) {
                *o = GroupId::from_leaf(*leaves.get(l));
            }
        }
    }
    n
}

fn catch_up_table<K: Key, const W: usize>(
    dst: &mut ExactTable<K, W>,
    src: &ExactTable<K, W>,
    full: bool,
    slots: &[u32],
) {
    if full {
        dst.clone_from(src);
        return;
    }
    for &i in slots {
        dst.buckets[i as usize] = src.buckets[i as usize];
    }
    dst.len = src.len;
}

/// What a round of updates wrote, so the other copy can catch up.
#[derive(Debug, Default)]
pub(crate) struct DirtyLog {
    pub direct: Vec<u32>,
    /// Entries of the root pages (`Trie::top`).
    pub top: Vec<u32>,
    pub h128: Vec<u32>,
    pub h128_full: bool,
    pub exact: [Vec<u32>; EXACT_LENS.len()],
    pub exact_full: [bool; EXACT_LENS.len()],
    pub groups: Vec<u32>,
}

impl DirtyLog {
    pub fn clear(&mut self) {
        self.direct.clear();
        self.top.clear();
        self.h128.clear();
        self.h128_full = false;
        for k in 0..EXACT_LENS.len() {
            self.exact[k].clear();
            self.exact_full[k] = false;
        }
        self.groups.clear();
    }
}
