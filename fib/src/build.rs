//! The control side of the trie: a mirror of its nodes with the routes each
//! holds, and the incremental updates that rewrite only what changed.
//!
//! An update touches the node its route lives in (and creates or deletes
//! nodes on the path when the set of children changes); the node is queued,
//! and `flush` recomputes every queued node once, parents before children,
//! so a batch of updates costs one recomputation per touched node. A
//! recomputation repaints the node's 256 slots, re-compresses its leaves and
//! pushes changed inherited values to the children, which are queued in turn.
//!
//! Nodes and leaves are one copy shared by every snapshot, written
//! copy-on-write: a node whose content changes is written in place only if
//! its block was allocated since the last publish (`epoch`); otherwise its
//! whole block (the node and its siblings) moves to a new one first, which
//! changes the parent's child base, so the parent's block moves too if
//! needed, up to a /24's node (`make_writable`). A /16 root is a page of
//! 256 entries, not a node: each of its /24 children has a block of its
//! own, so one moves alone and its new place goes into the page. Leaf runs
//! go to a new block unless theirs is fresh. Replaced blocks are retired
//! until no reader can reach them (`alloc.rs`). The root pages, the direct
//! table and the exact-match tables are per snapshot copy: their writes go
//! to the standby copy and are logged, so the other copy catches up by
//! copying just those entries.

use crate::alloc::{class_of, grow_to, BlockAlloc, MAX_CLASS, NIL};
use crate::prefix::{mask, Prefix};
use crate::trie::{Chunk, DirtyLog, Node, Trie, EXACT_FLAGS, EXACT_LENS, HAS128, NODE, PAGE};
use std::collections::{BTreeMap, HashMap};

/// Depth of the deepest node level (120 = 16 + 8 * 13).
const DEPTHS: usize = 14;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Local {
    /// Length relative to the node's level, 1..=8.
    rel: u8,
    /// The route's `rel` bits below the node's level.
    bits: u8,
    value: u32,
}

impl Local {
    fn slots(&self) -> std::ops::Range<usize> {
        let first = usize::from(self.bits) << (8 - self.rel);
        first..first + (1 << (8 - self.rel))
    }
}

#[derive(Debug)]
struct BNode {
    alive: bool,
    queued: bool,
    level: u8,
    /// The /16 this node lies under (index of `direct`).
    x: u32,
    parent: u32,
    inherited: u32,
    /// Routes of length level+1 ..= level+8, sorted by (rel, bits);
    /// exactly sized (most nodes hold one to three).
    routes: Box<[Local]>,
    childmap: [u64; 4],
    /// A root's page in `Trie::top`; a root's child's own one-node block
    /// in the store (other nodes' places follow from their parent's
    /// child block: `pos_of`).
    pos: u32,
    /// The epoch a root's child's own block was allocated in.
    home_epoch: u32,
    /// The slot of this node in its parent.
    slot: u8,
    /// The epoch the child block was allocated in.
    child_epoch: u32,
    /// The epoch the leaf block was allocated in.
    leaf_epoch: u32,
    leaf_off: u32,
    leaf_cap: u32,
    child_off: u32,
    child_cap: u32,
}

#[inline]
fn has_bit(map: &[u64; 4], slot: usize) -> bool {
    map[slot >> 6] & (1 << (slot & 63)) != 0
}

/// Inserts into an exactly sized route list.
fn insert_route(routes: &mut Box<[Local]>, i: usize, l: Local) {
    let mut v = std::mem::take(routes).into_vec();
    v.reserve_exact(1);
    v.insert(i, l);
    *routes = v.into_boxed_slice();
}

/// Removes from an exactly sized route list.
fn remove_route(routes: &mut Box<[Local]>, i: usize) -> Local {
    let mut v = std::mem::take(routes).into_vec();
    let l = v.remove(i);
    *routes = v.into_boxed_slice();
    l
}

/// Children in a child map.
#[inline]
fn child_count(map: &[u64; 4]) -> u32 {
    map.iter().map(|m| m.count_ones()).sum()
}

#[inline]
fn rank(map: &[u64; 4], slot: usize) -> usize {
    let w = slot >> 6;
    let below: u32 = map[..w].iter().map(|m| m.count_ones()).sum();
    (below + (map[w] & ((1u64 << (slot & 63)) - 1)).count_ones()) as usize
}

/// How a child block maps onto its replacement (`move_children`).
#[derive(Debug, Clone, Copy)]
enum Gap {
    None,
    Insert(u32),
    Remove(u32),
}

/// The trie's control-side state; one per FIB.
#[derive(Debug)]
pub(crate) struct TrieBuilder {
    bnodes: Vec<BNode>,
    free_bnodes: Vec<u32>,
    roots: Vec<u32>,
    /// Routes of length 0..=16, painted into `direct_leaf`.
    short: BTreeMap<(u128, u8), u32>,
    /// Routes of length 128 (kept out of the trie, see `set_host`).
    host: HashMap<u128, u32>,
    /// /64 routes with nothing longer below (kept out of the trie, see
    /// `set_leaf64`), by their upper 64 bits.
    leaf64: HashMap<u64, u32>,
    direct_leaf: Vec<u32>,
    /// Per /16 with host routes: how many (sparse: few /16s have any).
    n128: HashMap<usize, u32>,
    /// Per /16: entries in each exact-match table.
    n_exact: [HashMap<usize, u32>; EXACT_LENS.len()],
    /// Root pages in each copy's `Trie::top` (one unit per page).
    top_alloc: BlockAlloc,
    /// The builder id of the child in each slot of each root page (`NIL`
    /// where there is none).
    root_kids: Vec<u32>,
    /// Blocks of deeper nodes in the store.
    node_alloc: BlockAlloc,
    /// The builder id of the node at each position of the store (a
    /// node's children are found through these).
    store_ids: Vec<u32>,
    leaf_alloc: BlockAlloc,
    queue: [Vec<u32>; DEPTHS],
    routes: usize,
    /// Publishes so far: blocks allocated in the current epoch are fresh
    /// (no snapshot reaches them) and may be written in place.
    epoch: u32,
    /// What the builder wrote into the shared store, for statistics.
    writes: std::cell::Cell<StoreWrites>,
}

/// Elements the builder wrote into the shared store since the FIB was
/// made: what readers find moved or rewritten after publishes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoreWrites {
    /// Nodes copied to a new block (moved with their siblings).
    pub nodes_copied: u64,
    /// Nodes written with new content.
    pub nodes_written: u64,
    /// Leaf runs written (a changed node's runs go to a new block).
    pub leaf_runs_written: u64,
}

/// Where writes go: the standby copy (its direct and exact-match tables,
/// and the shared store) and the log of what changed in it.
pub(crate) struct Out<'a> {
    pub t: &'a mut Trie,
    pub log: &'a mut DirtyLog,
}

impl Default for TrieBuilder {
    fn default() -> Self {
        TrieBuilder {
            bnodes: Vec::new(),
            free_bnodes: Vec::new(),
            roots: vec![NIL; 1 << 16],
            short: BTreeMap::new(),
            host: HashMap::new(),
            leaf64: HashMap::new(),
            direct_leaf: vec![0; 1 << 16],
            n128: HashMap::new(),
            n_exact: [HashMap::new()],
            top_alloc: BlockAlloc::default(),
            node_alloc: BlockAlloc::default(),
            root_kids: Vec::new(),
            store_ids: Vec::new(),
            leaf_alloc: BlockAlloc::default(),
            queue: Default::default(),
            routes: 0,
            epoch: 0,
            writes: std::cell::Cell::default(),
        }
    }
}

fn exact_key(k: usize, addr: u128) -> u64 {
    (addr >> (128 - u32::from(EXACT_LENS[k]))) as u64
}

/// Decrements a per-/16 count, forgetting it at zero.
fn count_down(counts: &mut HashMap<usize, u32>, x: usize) {
    if let Some(c) = counts.get_mut(&x) {
        *c -= 1;
        if *c == 0 {
            counts.remove(&x);
        }
    }
}

/// The node level a route of `len` (> 16) lives in.
fn level_of(len: u8) -> u8 {
    16 + 8 * ((len - 17) / 8)
}

/// The 8 address bits a node at `level` indexes by.
fn slot_of(addr: u128, level: u8) -> usize {
    ((addr >> (120 - u32::from(level))) & 0xff) as usize
}

impl TrieBuilder {
    pub fn routes(&self) -> usize {
        self.routes
    }

    /// Nodes and leaf runs in use in the store (blocks waiting for
    /// readers included).
    pub fn in_use(&self) -> (usize, usize) {
        (self.node_alloc.used as usize, self.leaf_alloc.used as usize)
    }

    /// The room of the store, which allocations keep within (see
    /// `BlockAlloc::set_limit`).
    pub fn set_limits(&mut self, nodes: usize, leaves: usize) {
        self.node_alloc.set_limit(nodes);
        self.leaf_alloc.set_limit(leaves);
    }

    /// Leaf runs the nodes queued for recomputation may take at the next
    /// `flush`, at most (a node has at most 256 runs): leaf blocks are
    /// allocated only then, so `in_use` does not count them yet.
    pub fn pending_leaves(&self) -> usize {
        self.queue.iter().map(Vec::len).sum::<usize>() * MAX_CLASS as usize
    }

    fn count(&self, f: impl FnOnce(&mut StoreWrites)) {
        let mut w = self.writes.get();
        f(&mut w);
        self.writes.set(w);
    }

    /// What the builder wrote into the shared store so far.
    pub fn writes(&self) -> StoreWrites {
        self.writes.get()
    }

    /// Nodes and leaf runs the store spans (free blocks included).
    pub fn tops(&self) -> (usize, usize) {
        (self.node_alloc.top as usize, self.leaf_alloc.top as usize)
    }

    pub fn nodes(&self) -> usize {
        self.bnodes.len() - self.free_bnodes.len()
    }

    /// Heap bytes of the control-side mirror (not part of a snapshot).
    pub fn memory_bytes(&self) -> usize {
        let per_node: usize = self.bnodes.iter().map(|n| n.routes.len() * 8).sum();
        self.bnodes.capacity() * std::mem::size_of::<BNode>()
            + per_node
            + (self.roots.len()
                + self.direct_leaf.len()
                + 4 * self.n128.len()
                + 4 * self.n_exact[0].len())
                * 4
            + self.short.len() * 48
            + self.host.capacity() * 24
            + self.leaf64.capacity() * 16
            + (self.root_kids.capacity() + self.store_ids.capacity()) * 4
    }

    /// The value stored for exactly `p`.
    pub fn get(&self, p: Prefix) -> Option<u32> {
        if p.len() == 128 {
            return self.host.get(&p.bits()).copied();
        }
        if p.len() == 64 {
            if let Some(&v) = self.leaf64.get(&((p.bits() >> 64) as u64)) {
                return Some(v);
            }
        }
        if p.len() <= 16 {
            return self.short.get(&(p.bits(), p.len())).copied();
        }
        let n = self.find(p.bits(), level_of(p.len()))?;
        let (rel, bits) = self.rel_bits(p);
        let node = &self.bnodes[n as usize];
        node.routes
            .binary_search_by_key(&(rel, bits), |l| (l.rel, l.bits))
            .ok()
            .map(|i| node.routes[i].value)
    }

    fn rel_bits(&self, p: Prefix) -> (u8, u8) {
        let level = level_of(p.len());
        let rel = p.len() - level;
        let bits = ((p.bits() >> (128 - u32::from(p.len()))) & ((1 << rel) - 1)) as u8;
        (rel, bits)
    }

    /// The node at `level` on the path of `addr`, if it exists.
    fn find(&self, addr: u128, level: u8) -> Option<u32> {
        let mut n = self.roots[(addr >> 112) as usize];
        while n != NIL {
            let node = &self.bnodes[n as usize];
            if node.level == level {
                return Some(n);
            }
            let slot = slot_of(addr, node.level);
            if !has_bit(&node.childmap, slot) {
                return None;
            }
            n = self.child_at(n, slot);
        }
        None
    }

    /// Sets the value of `p` (a non-zero leaf value); returns the old one.
    pub fn set(&mut self, out: &mut Out, p: Prefix, value: u32) -> Option<u32> {
        debug_assert!(value != 0 && value & !crate::trie::VALUE_MASK == 0);
        if p.len() == 128 {
            return self.set_host(out, p.bits(), value);
        }
        if p.len() == 64 {
            if let Some(old) = self.set_leaf64(out, p, value) {
                return old;
            }
        }
        if p.len() <= 16 {
            let old = self.short.insert((p.bits(), p.len()), value);
            if old.is_none() {
                self.routes += 1;
            }
            if old != Some(value) {
                self.repaint_direct(out, p);
            }
            return old;
        }
        let n = self.ensure_path(out, p.bits(), level_of(p.len()));
        let (rel, bits) = self.rel_bits(p);
        let node = &mut self.bnodes[n as usize];
        let old = match node
            .routes
            .binary_search_by_key(&(rel, bits), |l| (l.rel, l.bits))
        {
            Ok(i) => {
                let old = node.routes[i].value;
                if old == value {
                    return Some(old);
                }
                node.routes[i].value = value;
                Some(old)
            }
            Err(i) => {
                insert_route(&mut node.routes, i, Local { rel, bits, value });
                self.routes += 1;
                None
            }
        };
        self.enqueue(n);
        old
    }

    /// Removes `p`; returns its value.
    pub fn remove(&mut self, out: &mut Out, p: Prefix) -> Option<u32> {
        if p.len() == 128 {
            let old = self.host.remove(&p.bits())?;
            let x = (p.bits() >> 112) as usize;
            out.t.h128.remove(p.bits(), &mut out.log.h128);
            out.log.h128_full |= out.t.h128.shrink_if_sparse();
            shrink_if_sparse(&mut self.host);
            self.routes -= 1;
            count_down(&mut self.n128, x);
            self.write_direct(out, x);
            return Some(old);
        }
        if p.len() <= 16 {
            let old = self.short.remove(&(p.bits(), p.len()))?;
            self.routes -= 1;
            self.repaint_direct(out, p);
            return Some(old);
        }
        if p.len() == 64 {
            if let Some(old) = self.leaf64.remove(&((p.bits() >> 64) as u64)) {
                shrink_if_sparse(&mut self.leaf64);
                self.routes -= 1;
                self.exact_remove(out, 0, (p.bits() >> 112) as usize, p.bits());
                return Some(old);
            }
        }
        let n = self.find(p.bits(), level_of(p.len()))?;
        let (rel, bits) = self.rel_bits(p);
        let node = &mut self.bnodes[n as usize];
        let i = node
            .routes
            .binary_search_by_key(&(rel, bits), |l| (l.rel, l.bits))
            .ok()?;
        let old = remove_route(&mut node.routes, i).value;
        self.routes -= 1;
        self.enqueue(n);
        self.prune(out, n);
        Some(old)
    }

    /// A /128 lives only in the exact-match table: it matches one address,
    /// which every lookup under a /16 with host routes probes first, so the
    /// trie needs no nodes for it.
    fn set_host(&mut self, out: &mut Out, addr: u128, value: u32) -> Option<u32> {
        let old = self.host.insert(addr, value);
        if old == Some(value) {
            return old;
        }
        out.log.h128_full |= out.t.h128.insert(addr, value, &mut out.log.h128);
        if old.is_none() {
            let x = (addr >> 112) as usize;
            self.routes += 1;
            *self.n128.entry(x).or_default() += 1;
            self.write_direct(out, x);
        }
        old
    }

    /// A /64 with no longer route below it (a pod CIDR) lives only in the
    /// exact-match table, like a /128: it answers for its own addresses and
    /// nothing else. It moves into the trie when a longer route appears
    /// below it (`ensure_path`) and back out when the last one goes
    /// (`prune`). Returns `None` when the route belongs in the trie.
    fn set_leaf64(&mut self, out: &mut Out, p: Prefix, value: u32) -> Option<Option<u32>> {
        let key = (p.bits() >> 64) as u64;
        let x = (p.bits() >> 112) as usize;
        if let Some(v) = self.leaf64.get_mut(&key) {
            let old = *v;
            if old != value {
                *v = value;
                self.exact_insert(out, 0, x, p.bits(), value);
            }
            return Some(Some(old));
        }
        if let Some(n) = self.find(p.bits(), 56) {
            if has_bit(&self.bnodes[n as usize].childmap, slot_of(p.bits(), 56)) {
                return None;
            }
        }
        self.leaf64.insert(key, value);
        self.routes += 1;
        self.exact_insert(out, 0, x, p.bits(), value);
        Some(None)
    }

    fn exact_insert(&mut self, out: &mut Out, k: usize, x: usize, addr: u128, value: u32) {
        let key = exact_key(k, addr);
        let existed = out.t.exact[k].get(key) != 0;
        out.log.exact_full[k] |= out.t.exact[k].insert(key, value, &mut out.log.exact[k]);
        if !existed {
            *self.n_exact[k].entry(x).or_default() += 1;
            self.write_direct(out, x);
        }
    }

    fn exact_remove(&mut self, out: &mut Out, k: usize, x: usize, addr: u128) {
        if out.t.exact[k].remove(exact_key(k, addr), &mut out.log.exact[k]) {
            out.log.exact_full[k] |= out.t.exact[k].shrink_if_sparse();
            count_down(&mut self.n_exact[k], x);
            self.write_direct(out, x);
        }
    }

    fn write_direct(&mut self, out: &mut Out, x: usize) {
        let root = self.roots[x];
        let mut d = if root != NIL {
            NODE | self.bnodes[root as usize].pos
        } else {
            self.direct_leaf[x]
        };
        if self.n128.contains_key(&x) {
            d |= HAS128;
        }
        for (counts, flag) in self.n_exact.iter().zip(EXACT_FLAGS) {
            if counts.contains_key(&x) {
                d |= flag;
            }
        }
        if out.t.direct[x] != d {
            out.t.direct[x] = d;
            out.log.direct.push(x as u32);
        }
    }

    /// Recomputes the direct entries under a route of length <= 16.
    fn repaint_direct(&mut self, out: &mut Out, p: Prefix) {
        let len = p.len();
        let first = (p.bits() >> 112) as usize;
        let count = 1usize << (16 - len);
        let base = (0..len)
            .rev()
            .find_map(|l| self.short.get(&(p.bits() & mask(l), l)).copied())
            .unwrap_or(0);
        let mut paint = vec![base; count];
        let last = p.bits() | !mask(len);
        let mut inner: Vec<(u8, u128, u32)> = self
            .short
            .range((p.bits(), len)..=(last, 16))
            .filter(|((_, l), _)| *l >= len)
            .map(|(&(a, l), &v)| (l, a, v))
            .collect();
        inner.sort_unstable();
        for (l, a, v) in inner {
            let off = (a >> 112) as usize - first;
            paint[off..off + (1 << (16 - l))].fill(v);
        }
        for (i, v) in paint.into_iter().enumerate() {
            let x = first + i;
            if self.direct_leaf[x] == v {
                continue;
            }
            self.direct_leaf[x] = v;
            let root = self.roots[x];
            if root == NIL {
                self.write_direct(out, x);
            } else {
                self.bnodes[root as usize].inherited = v;
                self.enqueue(root);
            }
        }
    }

    fn enqueue(&mut self, n: u32) {
        let node = &mut self.bnodes[n as usize];
        if !node.queued {
            node.queued = true;
            let depth = usize::from((node.level - 16) / 8);
            self.queue[depth].push(n);
        }
    }

    fn new_bnode(&mut self, level: u8, x: u32, parent: u32) -> u32 {
        let node = BNode {
            alive: true,
            queued: false,
            level,
            x,
            parent,
            inherited: 0,
            routes: Box::default(),
            childmap: [0; 4],
            pos: NIL,
            home_epoch: self.epoch,
            slot: 0,
            child_epoch: self.epoch,
            leaf_epoch: self.epoch,
            leaf_off: NIL,
            leaf_cap: 0,
            child_off: NIL,
            child_cap: 0,
        };
        if let Some(id) = self.free_bnodes.pop() {
            self.bnodes[id as usize] = node;
            id
        } else {
            if self.bnodes.len() == self.bnodes.capacity() {
                // Grow by an eighth, not by doubling: the mirror stays close
                // to its used size.
                self.bnodes.reserve_exact(self.bnodes.len() / 8 + 16);
            }
            self.bnodes.push(node);
            (self.bnodes.len() - 1) as u32
        }
    }

    /// The builder id of `n`'s child in `slot`.
    fn child_at(&self, n: u32, slot: usize) -> u32 {
        let node = &self.bnodes[n as usize];
        if node.parent == NIL {
            return self.root_kids[node.pos as usize * PAGE + slot];
        }
        self.store_ids[node.child_off as usize + rank(&node.childmap, slot)]
    }

    /// A block for `n` nodes in the store.
    fn alloc_nodes(&mut self, out: &mut Out, n: u32) -> (u32, u32) {
        let (off, cap) = self.node_alloc.alloc(n, self.epoch);
        out.t.store.nodes.grow_to(self.node_alloc.top);
        grow_to(&mut self.store_ids, self.node_alloc.top as usize);
        (off, cap)
    }

    /// A block for `n` leaf runs in the store.
    fn alloc_leaves(&mut self, out: &mut Out, n: u32) -> (u32, u32) {
        let (off, cap) = self.leaf_alloc.alloc(n, self.epoch);
        out.t.store.leaves.grow_to(self.leaf_alloc.top);
        (off, cap)
    }

    /// Node `pos`, as last written.
    fn get_node(out: &Out, pos: u32) -> Node {
        *out.t.store.nodes.get(pos)
    }

    /// Writes node `pos`, which lies in a block allocated this epoch.
    #[allow(unsafe_code)]
    fn put_node(&self, out: &mut Out, pos: u32, node: Node) {
        self.node_alloc.check_fresh(pos, 1, self.epoch);
        // SAFETY: `pos` lies in a block allocated since the last publish
        // (checked in debug builds): no snapshot reaches it.
        unsafe { out.t.store.nodes.write(pos, &[node]) };
        self.count(|w| w.nodes_written += 1);
    }

    /// Writes entry `slot` of root `n`'s page (in the standby copy, logged).
    fn put_page(&self, out: &mut Out, n: u32, slot: usize, v: u32) {
        let i = self.bnodes[n as usize].pos as usize * PAGE + slot;
        if out.t.top[i] != v {
            out.t.top[i] = v;
            out.log.top.push(i as u32);
        }
    }

    /// Copies `count` nodes and their ids from `from` to `to` (the ranges
    /// may overlap: shifts within a block); `to` lies in a block allocated
    /// this epoch.
    #[allow(unsafe_code)]
    fn copy_nodes(&mut self, out: &mut Out, from: u32, to: u32, count: u32) {
        if count == 0 {
            return;
        }
        self.node_alloc.check_fresh(to, count, self.epoch);
        // SAFETY: as in `put_node`: `to..to + count` lies in a block
        // allocated since the last publish.
        unsafe { out.t.store.nodes.copy(from, to, count as usize) };
        self.count(|w| w.nodes_copied += u64::from(count));
        let (f, t, c) = (from as usize, to as usize, count as usize);
        self.store_ids.copy_within(f..f + c, t);
    }

    /// Writes leaf runs at `off`, in a block allocated this epoch.
    #[allow(unsafe_code)]
    fn put_leaves(&self, out: &Out, off: u32, runs: &[u32]) {
        self.leaf_alloc
            .check_fresh(off, runs.len() as u32, self.epoch);
        // SAFETY: as in `put_node`.
        unsafe { out.t.store.leaves.write(off, runs) };
        self.count(|w| w.leaf_runs_written += runs.len() as u64);
    }

    /// Copies `count` leaf runs from `from` to `to`, a block allocated
    /// this epoch.
    #[allow(unsafe_code)]
    fn copy_leaves(&self, out: &Out, from: u32, to: u32, count: u32) {
        self.leaf_alloc.check_fresh(to, count, self.epoch);
        // SAFETY: as in `put_node`.
        unsafe { out.t.store.leaves.copy(from, to, count as usize) };
        self.count(|w| w.leaf_runs_written += u64::from(count));
    }

    /// Whether `n`'s own slot may be written in place: a root's page
    /// always (the standby copy is ours), a root's child if its own block,
    /// any other node if its parent's child block, was allocated this
    /// epoch.
    fn is_fresh(&self, n: u32) -> bool {
        let node = &self.bnodes[n as usize];
        if node.parent == NIL {
            return true;
        }
        if self.bnodes[node.parent as usize].parent == NIL {
            return node.home_epoch == self.epoch;
        }
        self.children_fresh(node.parent)
    }

    /// Whether `n`'s child block (not a root's) may be written in place.
    fn children_fresh(&self, n: u32) -> bool {
        self.bnodes[n as usize].child_epoch == self.epoch
    }

    /// The child base of each of `n`'s chunks: where its first child is
    /// (what a lookup adds the rank to).
    fn child_bases(&self, n: u32) -> [u32; 4] {
        let node = &self.bnodes[n as usize];
        let mut base = if node.child_off == NIL {
            0
        } else {
            node.child_off
        };
        node.childmap.map(|m| {
            let b = base;
            base += m.count_ones();
            b
        })
    }

    /// Where node `n` is: a root's page, a root's child's own block, any
    /// other node at its rank in its parent's child block.
    fn pos_of(&self, n: u32) -> u32 {
        let node = &self.bnodes[n as usize];
        if node.parent == NIL {
            return node.pos;
        }
        let p = &self.bnodes[node.parent as usize];
        if p.parent == NIL {
            return node.pos;
        }
        p.child_off + rank(&p.childmap, usize::from(node.slot)) as u32
    }

    /// Moves `n`'s children into a new block and releases the old one.
    /// `gap` tells how the old block maps to the new one: unchanged, with
    /// a child inserted at a rank (left unwritten), or with the child at a
    /// rank removed. `n`'s child list and map are already the new ones.
    fn move_children(&mut self, out: &mut Out, n: u32, gap: Gap) {
        let node = &self.bnodes[n as usize];
        let (old_off, old_cap) = (node.child_off, node.child_cap);
        let (old_fresh, old_born) = (self.children_fresh(n), node.child_epoch);
        let len = child_count(&node.childmap);
        let (off, cap) = if len == 0 {
            (NIL, 0)
        } else {
            self.alloc_nodes(out, len)
        };
        // Whole runs at a time: a block is contiguous in both places.
        match gap {
            Gap::None => self.copy_nodes(out, old_off, off, len),
            Gap::Insert(r) => {
                self.copy_nodes(out, old_off, off, r);
                self.copy_nodes(out, old_off + r, off + r + 1, len - r - 1);
            }
            Gap::Remove(r) => {
                self.copy_nodes(out, old_off, off, r);
                self.copy_nodes(out, old_off + r + 1, off + r, len - r);
            }
        }
        let node = &mut self.bnodes[n as usize];
        node.child_off = off;
        node.child_cap = cap;
        node.child_epoch = self.epoch;
        self.node_alloc
            .release(old_off, old_cap, old_fresh, old_born);
    }

    /// Makes `n`'s own slot writable. If a snapshot may reach its block,
    /// the block moves to a new one: a root's child alone (its own block),
    /// whose new place goes into the root's page; any deeper node with its
    /// siblings (its parent's child block), which changes the parent's
    /// child base, so the parent is made writable and patched in turn.
    fn make_writable(&mut self, out: &mut Out, n: u32) {
        if self.is_fresh(n) {
            return;
        }
        let parent = self.bnodes[n as usize].parent;
        if self.bnodes[parent as usize].parent == NIL {
            self.relocate_home(out, n);
            return;
        }
        self.relocate_children(out, parent);
    }

    /// Moves `n`'s child block to a new one (`n` is not a root) and
    /// points `n` at it, making `n` writable first.
    fn relocate_children(&mut self, out: &mut Out, n: u32) {
        self.move_children(out, n, Gap::None);
        self.make_writable(out, n);
        let pos = self.pos_of(n);
        let mut node = Self::get_node(out, pos);
        for (chunk, base) in node.chunks.iter_mut().zip(self.child_bases(n)) {
            chunk.base1 = base;
        }
        self.put_node(out, pos, node);
    }

    /// Moves a root's child `n` to a new block of its own and points the
    /// root's page at it.
    fn relocate_home(&mut self, out: &mut Out, n: u32) {
        let node = &self.bnodes[n as usize];
        let (parent, old, born, slot) = (node.parent, node.pos, node.home_epoch, node.slot);
        let fresh = born == self.epoch;
        let (pos, _) = self.alloc_nodes(out, 1);
        self.copy_nodes(out, old, pos, 1);
        self.node_alloc.release(old, 1, fresh, born);
        let node = &mut self.bnodes[n as usize];
        node.pos = pos;
        node.home_epoch = self.epoch;
        self.put_page(out, parent, usize::from(slot), NODE | pos);
    }

    /// Moves `n`'s leaf runs to a new block and points `n` at it.
    fn relocate_leaves(&mut self, out: &mut Out, n: u32) {
        let node = &self.bnodes[n as usize];
        let (old, cap, born) = (node.leaf_off, node.leaf_cap, node.leaf_epoch);
        let (off, _) = self.alloc_leaves(out, cap);
        self.copy_leaves(out, old, off, cap);
        self.leaf_alloc.release(old, cap, born == self.epoch, born);
        let node = &mut self.bnodes[n as usize];
        node.leaf_off = off;
        node.leaf_epoch = self.epoch;
        self.make_writable(out, n);
        let pos = self.pos_of(n);
        let mut v = Self::get_node(out, pos);
        for chunk in &mut v.chunks {
            chunk.base0 = chunk.base0.wrapping_sub(old).wrapping_add(off);
        }
        self.put_node(out, pos, v);
    }

    /// Moves blocks that lie above the store's live size into the lowest
    /// free places that hold them (copy-on-write, like any change: readers
    /// see the moves at the next publish), so that once the old places are
    /// reclaimed the end of the store is free and `trim` can give it back.
    /// A block moves only if such a place lies lower than it. Returns the
    /// blocks moved.
    pub fn compact(&mut self, out: &mut Out) -> usize {
        self.flush(out);
        self.node_alloc.set_compacting(true);
        self.leaf_alloc.set_compacting(true);
        let (node_live, leaf_live) = (self.node_alloc.used, self.leaf_alloc.used);
        let high = |alloc: &BlockAlloc, off: u32, n: u32, live: u32| {
            off != NIL && n > 0 && off + n > live && alloc.has_lower(n, off)
        };
        let mut moved = 0;
        for n in 0..self.bnodes.len() as u32 {
            let b = &self.bnodes[n as usize];
            if !b.alive || b.parent == NIL {
                continue;
            }
            let root_child = self.bnodes[b.parent as usize].parent == NIL;
            if root_child && high(&self.node_alloc, b.pos, 1, node_live) {
                self.relocate_home(out, n);
                moved += 1;
            }
            let b = &self.bnodes[n as usize];
            if high(&self.node_alloc, b.child_off, b.child_cap, node_live) {
                self.relocate_children(out, n);
                moved += 1;
            }
            let b = &self.bnodes[n as usize];
            if high(&self.leaf_alloc, b.leaf_off, b.leaf_cap, leaf_live) {
                self.relocate_leaves(out, n);
                moved += 1;
            }
        }
        self.node_alloc.set_compacting(false);
        self.leaf_alloc.set_compacting(false);
        moved
    }

    /// Gives the free end of the store back (after `compact`, a publish
    /// and the reclaim of the blocks it replaced). Returns the nodes and
    /// leaf runs the store now spans.
    #[allow(unsafe_code)]
    pub fn trim(&mut self, store: &crate::arena::Store) -> (u32, u32) {
        let nodes = self.node_alloc.trim();
        let leaves = self.leaf_alloc.trim();
        // SAFETY: the allocators hold no block at or above their new tops
        // (free ones were reclaimed: no snapshot reaches them).
        unsafe {
            store.nodes.shrink_to(nodes);
            store.leaves.shrink_to(leaves);
        }
        self.store_ids.truncate(nodes as usize);
        self.store_ids.shrink_to_fit();
        (nodes, leaves)
    }

    /// The node at `level` on the path of `addr`, created with its ancestors.
    fn ensure_path(&mut self, out: &mut Out, addr: u128, level: u8) -> u32 {
        let x = (addr >> 112) as usize;
        let mut n = self.roots[x];
        if n == NIL {
            n = self.new_bnode(16, x as u32, NIL);
            let (pos, _) = self.top_alloc.alloc(1, self.epoch);
            let end = (pos as usize + 1) * PAGE;
            grow_to(&mut out.t.top, end);
            if self.root_kids.len() < end {
                self.root_kids.resize(end, NIL);
            }
            let node = &mut self.bnodes[n as usize];
            node.pos = pos;
            node.inherited = self.direct_leaf[x];
            self.roots[x] = n;
            self.write_direct(out, x);
            self.enqueue(n);
        }
        loop {
            let node = &self.bnodes[n as usize];
            if node.level >= level {
                return n;
            }
            let slot = slot_of(addr, node.level);
            if has_bit(&node.childmap, slot) {
                n = self.child_at(n, slot);
                continue;
            }
            let (plevel, x) = (node.level, node.x);
            let c = self.new_bnode(plevel + 8, x, n);
            self.insert_child(out, n, slot, c);
            self.enqueue(n);
            self.enqueue(c);
            if plevel == 56 {
                // The /64 of this slot now has longer routes below it: its
                // route, if any, moves into the trie.
                if let Some(value) = self.leaf64.remove(&((addr >> 64) as u64)) {
                    self.exact_remove(out, 0, x as usize, addr);
                    let local = Local {
                        rel: 8,
                        bits: slot as u8,
                        value,
                    };
                    let routes = &mut self.bnodes[n as usize].routes;
                    let i = routes.partition_point(|l| (l.rel, l.bits) < (8, slot as u8));
                    insert_route(routes, i, local);
                }
            }
            n = c;
        }
    }

    fn insert_child(&mut self, out: &mut Out, n: u32, slot: usize, c: u32) {
        self.bnodes[c as usize].slot = slot as u8;
        let node = &mut self.bnodes[n as usize];
        let r = rank(&node.childmap, slot) as u32;
        node.childmap[slot >> 6] |= 1 << (slot & 63);
        if node.parent == NIL {
            // A root's child has a block of its own; the root's page gets
            // its place when the root is recomputed.
            let page = node.pos as usize;
            let (pos, _) = self.alloc_nodes(out, 1);
            self.store_ids[pos as usize] = c;
            self.root_kids[page * PAGE + slot] = c;
            let child = &mut self.bnodes[c as usize];
            child.pos = pos;
            child.home_epoch = self.epoch;
            return;
        }
        let (count, cap) = (child_count(&node.childmap), node.child_cap);
        // The block may be shifted in place only if no snapshot reaches it.
        if count > cap || !self.children_fresh(n) {
            self.move_children(out, n, Gap::Insert(r));
        } else {
            let off = self.bnodes[n as usize].child_off;
            self.copy_nodes(out, off + r, off + r + 1, count - r - 1);
        }
        let off = self.bnodes[n as usize].child_off;
        self.store_ids[(off + r) as usize] = c;
    }

    /// Deletes `n` and its empty ancestors once they hold nothing.
    fn prune(&mut self, out: &mut Out, mut n: u32) {
        loop {
            let node = &self.bnodes[n as usize];
            if !node.routes.is_empty() || node.childmap != [0; 4] {
                return;
            }
            let (parent, x) = (node.parent, node.x as usize);
            let (pos, home_born) = (self.pos_of(n), node.home_epoch);
            let (leaf_off, leaf_cap) = (node.leaf_off, node.leaf_cap);
            let leaf_born = node.leaf_epoch;
            let home_fresh = self.is_fresh(n);
            self.leaf_alloc
                .release(leaf_off, leaf_cap, leaf_born == self.epoch, leaf_born);
            let node = &mut self.bnodes[n as usize];
            node.alive = false;
            node.queued = false;
            self.free_bnodes.push(n);
            if parent == NIL {
                // A root is in the standby copy's top: never reached.
                self.top_alloc.release(pos, 1, true, 0);
                self.roots[x] = NIL;
                self.write_direct(out, x);
                return;
            }
            let slot = usize::from(self.bnodes[n as usize].slot);
            let p = &mut self.bnodes[parent as usize];
            let r = rank(&p.childmap, slot);
            p.childmap[slot >> 6] &= !(1 << (slot & 63));
            if p.parent == NIL {
                // A root's child: its own block goes; the page entry is
                // rewritten when the root is recomputed.
                let page = p.pos as usize;
                self.root_kids[page * PAGE + slot] = NIL;
                self.node_alloc.release(pos, 1, home_fresh, home_born);
            } else if p.childmap == [0; 4] {
                let (off, cap) = (p.child_off, p.child_cap);
                p.child_off = NIL;
                p.child_cap = 0;
                let born = p.child_epoch;
                self.node_alloc.release(off, cap, home_fresh, born);
            } else if !home_fresh {
                // A snapshot may reach the siblings' block: the rest move.
                self.move_children(out, parent, Gap::Remove(r as u32));
            } else {
                let (off, len) = (p.child_off, child_count(&p.childmap));
                let r = r as u32;
                self.copy_nodes(out, off + r + 1, off + r, len - r);
            }
            let plevel = self.bnodes[parent as usize].level;
            self.enqueue(parent);
            if plevel == 56 {
                // The /64 of this slot has no longer routes any more: its
                // route, if any, leaves the trie for the exact-match table.
                let p = &self.bnodes[parent as usize];
                if let Ok(i) = p
                    .routes
                    .binary_search_by_key(&(8, slot as u8), |l| (l.rel, l.bits))
                {
                    let addr = self.node_prefix(parent) | ((slot as u128) << 64);
                    let value = remove_route(&mut self.bnodes[parent as usize].routes, i).value;
                    self.leaf64.insert((addr >> 64) as u64, value);
                    self.exact_insert(out, 0, x, addr, value);
                }
            }
            n = parent;
        }
    }

    /// The network address of a node (from its path).
    fn node_prefix(&self, mut n: u32) -> u128 {
        let mut addr = 0u128;
        loop {
            let node = &self.bnodes[n as usize];
            if node.parent == NIL {
                return addr | (u128::from(node.x) << 112);
            }
            let p = &self.bnodes[node.parent as usize];
            addr |= u128::from(node.slot) << (120 - u32::from(p.level));
            n = node.parent;
        }
    }

    /// A publish: every block allocated so far may now be reached by a
    /// reader, and the blocks retired since the last publish are reached
    /// only by the snapshot it replaced.
    pub fn published(&mut self) {
        self.node_alloc.published();
        self.leaf_alloc.published();
        if self.epoch + 1 == NIL {
            // Four billion publishes: start the count again with no block
            // taken for fresh.
            for b in &mut self.bnodes {
                b.child_epoch = 0;
                b.home_epoch = 0;
                b.leaf_epoch = 0;
            }
            self.node_alloc.rebase();
            self.leaf_alloc.rebase();
            self.epoch = 0;
        }
        self.epoch += 1;
    }

    /// No reader holds the snapshot before the published one: the blocks
    /// only it reached are reused, but those a snapshot abandoned to a slow
    /// reader may reach wait for it (`BlockAlloc::reclaim`).
    pub fn reclaim(&mut self, abandoned: &[u64]) {
        self.node_alloc.reclaim(abandoned);
        self.leaf_alloc.reclaim(abandoned);
    }

    /// Recomputes every queued node, parents first.
    pub fn flush(&mut self, out: &mut Out) {
        for depth in 0..DEPTHS {
            let queue = std::mem::take(&mut self.queue[depth]);
            for &n in &queue {
                let node = &mut self.bnodes[n as usize];
                if node.alive && node.queued {
                    node.queued = false;
                    self.recompute(out, n);
                }
            }
            let mut queue = queue;
            queue.clear();
            if self.queue[depth].is_empty() {
                self.queue[depth] = queue;
            }
        }
    }

    fn recompute(&mut self, out: &mut Out, n: u32) {
        let node = &self.bnodes[n as usize];
        let mut paint = [node.inherited; 256];
        // The slots where a route's range starts or ends, for the leaf
        // runs below (one pass over the routes).
        let mut ends = [0u64; 4];
        for r in &node.routes {
            let range = r.slots();
            ends[range.start >> 6] |= 1 << (range.start & 63);
            if range.end < 256 {
                ends[range.end >> 6] |= 1 << (range.end & 63);
            }
            paint[range].fill(r.value);
        }
        let childmap = node.childmap;
        // Push inherited values down.
        for (w, &m) in childmap.iter().enumerate() {
            let mut m = m;
            while m != 0 {
                let slot = w * 64 + m.trailing_zeros() as usize;
                m &= m - 1;
                let c = self.child_at(n, slot);
                let child = &mut self.bnodes[c as usize];
                if child.inherited != paint[slot] {
                    child.inherited = paint[slot];
                    self.enqueue(c);
                }
            }
        }
        if self.bnodes[n as usize].parent == NIL {
            // A root is a page: each slot its child's place or its value.
            for (slot, &v) in paint.iter().enumerate() {
                let v = if has_bit(&childmap, slot) {
                    NODE | self.bnodes[self.child_at(n, slot) as usize].pos
                } else {
                    v
                };
                self.put_page(out, n, slot, v);
            }
            return;
        }
        // Compress leaves into runs.
        let mut runs = [0u32; 256];
        let mut nruns = 0usize;
        let mut chunks = [Chunk::default(); 4];
        let mut run_base = [0u32; 4];
        let node = &self.bnodes[n as usize];
        for ((chunk, vec), base) in chunks.iter_mut().zip(childmap).zip(self.child_bases(n)) {
            chunk.vec = vec;
            chunk.base1 = base;
        }
        // The painted value is constant between boundaries: slot 0, the
        // ends of every route's range and both sides of every child slot.
        // Walk those segments instead of all 256 slots.
        let mut bnd = childmap;
        bnd[0] |= 1;
        for w in 0..4 {
            // The slot after each child.
            let carry = if w > 0 { childmap[w - 1] >> 63 } else { 0 };
            bnd[w] |= (childmap[w] << 1) | carry;
        }
        for (b, e) in bnd.iter_mut().zip(ends) {
            *b |= e;
        }
        for w in 0..4 {
            run_base[w] = nruns as u32;
            let mut m = bnd[w] & !childmap[w];
            let mut lv = 0u64;
            while m != 0 {
                let j = m.trailing_zeros() as usize;
                m &= m - 1;
                let v = paint[w * 64 + j];
                if nruns == 0 || runs[nruns - 1] != v {
                    lv |= 1 << j;
                    runs[nruns] = v;
                    nruns += 1;
                }
            }
            chunks[w].leafvec = lv;
        }
        let (mut leaf_off, mut leaf_cap) = (node.leaf_off, node.leaf_cap);
        let leaf_born = node.leaf_epoch;
        let leaf_fresh = leaf_born == self.epoch;
        let pos = self.pos_of(n);
        let nruns32 = nruns as u32;
        let want = if nruns == 0 { 0 } else { class_of(nruns32) };
        let runs = &runs[..nruns];
        let same =
            want == leaf_cap && (nruns == 0 || out.t.store.leaves.slice(leaf_off, nruns) == runs);
        if !same {
            if want != leaf_cap || !leaf_fresh {
                self.leaf_alloc
                    .release(leaf_off, leaf_cap, leaf_fresh, leaf_born);
                (leaf_off, leaf_cap) = (NIL, 0);
                if want > 0 {
                    (leaf_off, leaf_cap) = self.alloc_leaves(out, nruns32);
                }
                let node = &mut self.bnodes[n as usize];
                node.leaf_off = leaf_off;
                node.leaf_cap = leaf_cap;
                node.leaf_epoch = self.epoch;
            }
            if nruns > 0 {
                self.put_leaves(out, leaf_off, runs);
            }
        }
        let base = if leaf_off == NIL { 0 } else { leaf_off };
        for (w, chunk) in chunks.iter_mut().enumerate() {
            chunk.base0 = (base + run_base[w]).wrapping_sub(1);
        }
        let node = Node { chunks };
        if Self::get_node(out, pos) != node {
            self.make_writable(out, n);
            self.put_node(out, self.pos_of(n), node);
        }
    }
}

/// Gives back most of a map's memory once it holds under a quarter of
/// what it has room for (a burst of host routes gone again).
fn shrink_if_sparse<K: std::hash::Hash + Eq, V>(m: &mut HashMap<K, V>) {
    if m.capacity() > 1024 && m.len() * 4 < m.capacity() {
        m.shrink_to(m.len() * 2);
    }
}
