//! flatedge's FIB: IPv6 longest-prefix match with lock-free publication and
//! resilient ECMP next-hop groups.
//!
//! - [`Fib`] is the control side: owned by one thread, it applies adds,
//!   deletes and next-hop state changes, then [`Fib::publish`]es them as one
//!   snapshot.
//! - [`FibReader`] is the dataplane side: any number of threads load the
//!   current [`Snapshot`] once per batch of packets, never block, and never
//!   see half a batch of updates.
//!
//! Publication is RCU style. The trie's nodes and leaves (most of its
//! memory) are one copy shared by every snapshot and changed copy-on-write:
//! a changed node is written into a block no published snapshot reaches,
//! and so are its ancestors up to its /24's node, whose place goes into its
//! /16's root page; replaced blocks are reused once no reader can hold a
//! snapshot that reaches them. The small top of the structure (the direct
//! table, the /16 root pages, the exact-match tables, the group table) is
//! double-buffered: updates are written into the standby copy, which is
//! then swapped in with one atomic pointer store (`arc-swap`); the copy it
//! replaced catches up, by copying only the entries the round wrote, once
//! the last reader has dropped it (the grace period: readers hold a
//! snapshot for one batch), and is swapped back in at once, with the same
//! generation: a reader spends about one batch per publish in the new
//! copy and the rest in the one its caches hold, instead of switching
//! copies every publish.
//! Updates are incremental: a route change recomputes the one trie
//! node it lives in (and its descendants when leaf values pushed into them
//! change).
//!
//! The lookup structure is described in the `trie` module: a 16-bit direct
//! table, 8-bit-stride popcount-compressed nodes with leaf compression, and
//! exact-match shortcuts for /128 and /64 routes.

use std::sync::Arc;

use arc_swap::{ArcSwap, Guard};

mod alloc;
mod arena;
mod build;
mod group;
mod prefix;
mod trie;

pub use group::{
    splitmix64, GroupId, GroupView, NextHop, NextHopId, MAX_MEMBERS, MAX_WEIGHT, MIN_BUCKETS,
};
pub use prefix::{Prefix, PrefixError};
pub use trie::LOOKUP_GROUP;

use arena::Store;
pub use build::StoreWrites;
use build::{Out, TrieBuilder};
use group::Groups;
use trie::{DirtyLog, Trie};

/// Why the FIB refused an update.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FibError {
    #[error("a route needs at least one next hop")]
    NoNextHops,
    #[error("next hop {0} is listed twice")]
    DuplicateNextHop(u32),
    #[error("{0} next hops in one group (at most {MAX_MEMBERS})")]
    TooManyNextHops(usize),
    #[error("weight {0} is larger than {MAX_WEIGHT}")]
    Weight(u32),
    #[error("too many next-hop groups")]
    TooManyGroups,
    #[error(
        "the FIB is full: {nodes} trie nodes and {leaves} leaf runs in use, \
         a quarter of its store (the rest is kept for copy-on-write)"
    )]
    Full { nodes: usize, leaves: usize },
    #[error("cannot reserve {bytes} bytes of address space for the FIB's store: {reason}")]
    Reserve { bytes: usize, reason: String },
}

/// One published, immutable state of the FIB. Not `Clone`: a copy would
/// reach the shared store without the writer knowing it is alive (see
/// [`FibReader::load_full`] for a snapshot kept longer).
#[derive(Debug)]
pub struct Snapshot {
    trie: Trie,
    groups: Vec<Option<Arc<GroupView>>>,
    routes: usize,
    generation: u64,
}

impl Snapshot {
    fn new(store: Arc<Store>) -> Self {
        Snapshot {
            trie: Trie::new(store),
            groups: Vec::new(),
            routes: 0,
            generation: 0,
        }
    }

    /// The group of the longest prefix matching `addr`.
    #[inline]
    pub fn lookup(&self, addr: impl Into<u128>) -> Option<GroupId> {
        GroupId::from_leaf(self.trie.lookup(addr.into()))
    }

    /// Looks up every address of `addrs` into `out` (same length; extra
    /// entries of the longer one are ignored). Addresses are processed in
    /// interleaved groups of [`LOOKUP_GROUP`]: use batches of 32-256.
    #[inline]
    pub fn lookup_batch(&self, addrs: &[u128], out: &mut [Option<GroupId>]) {
        self.trie.lookup_batch(addrs, out);
    }

    /// A group's members and bucket table.
    #[inline]
    pub fn group(&self, g: GroupId) -> Option<&GroupView> {
        self.groups.get(g.get() as usize)?.as_deref()
    }

    /// The next hop for a flow hash in group `g`; `None` when the group has
    /// no active member (or does not exist).
    #[inline]
    pub fn select(&self, g: GroupId, hash: u32) -> Option<NextHopId> {
        self.group(g)?.select(hash)
    }

    /// Routes in this snapshot.
    pub fn routes(&self) -> usize {
        self.routes
    }

    /// Next-hop groups in this snapshot.
    pub fn groups(&self) -> usize {
        self.groups.iter().filter(|g| g.is_some()).count()
    }

    /// Counts publications: the snapshot a publish makes has the next
    /// number, and so has the copy `publish` swaps back in after it (same
    /// state). Never goes back.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Bytes of the lookup structure and group tables of this one snapshot
    /// (what lookups touch), the shared nodes and leaves included. The FIB
    /// keeps a second copy of the top of the structure plus its control
    /// state: see [`Fib::memory`].
    pub fn memory_bytes(&self) -> usize {
        self.own_bytes() + self.trie.store.bytes()
    }

    /// A copy of the top (the shared store is shared, not copied): the
    /// writer's new standby when a reader keeps the old one too long.
    fn copy_top(&self) -> Snapshot {
        Snapshot {
            trie: self.trie.clone(),
            groups: self.groups.clone(),
            routes: self.routes,
            generation: self.generation,
        }
    }

    /// Bytes of this copy's own arrays (without the shared store).
    fn own_bytes(&self) -> usize {
        let groups: usize = self
            .groups
            .iter()
            .flatten()
            .map(|g| g.buckets.len() * 4 + g.members.len() * 9 + 64)
            .sum();
        self.trie.memory_bytes() + groups + self.groups.capacity() * 8
    }
}

/// The dataplane's handle: cheap to clone, `Send + Sync`.
#[derive(Debug, Clone)]
pub struct FibReader {
    shared: Arc<ArcSwap<Snapshot>>,
}

impl FibReader {
    /// The current snapshot. Hold it for one batch of lookups and drop it:
    /// the writer reuses a snapshot's memory once no reader holds it; when
    /// one is held past [`GRACE`], it copies the top of the structure
    /// instead, and reuses no replaced node or leaf block until the holder
    /// lets go.
    #[inline]
    pub fn load(&self) -> SnapshotGuard {
        SnapshotGuard(self.shared.load())
    }

    /// The current snapshot as an `Arc`, for holders outside the dataplane
    /// (the ctl server, tests). Holding a snapshot across a publish makes
    /// the writer wait [`GRACE`], then copy the top of the structure
    /// instead of reusing this one's, and keep every node and leaf block
    /// replaced meanwhile; drop it promptly.
    pub fn load_full(&self) -> Arc<Snapshot> {
        self.shared.load_full()
    }

    /// A handle that keeps the current snapshot between batches, for a
    /// reader that loads one every batch (a dataplane worker).
    pub fn cache(&self) -> SnapshotCache {
        Kept::new(Arc::clone(&self.shared))
    }
}

/// A reader's snapshot kept between batches: see [`Kept`].
pub type SnapshotCache = Kept<Snapshot>;

/// A value published through an `ArcSwap`, kept by one reader between
/// batches (the FIB snapshot, and the dataplane's adjacency table, which
/// is published the same way). [`Kept::load`] is one relaxed pointer
/// load and a compare while nothing was published, where an `ArcSwap`
/// load takes a slot and gives it back with two locked instructions every
/// batch. The value is held until the next `load` after a publish, or
/// until [`Kept::release`]: for the FIB, a writer publishing meanwhile
/// waits for it (for at most [`GRACE`], then copies instead), so a reader
/// must `load` at least every few microseconds while it runs and
/// `release` before it goes idle.
pub struct Kept<T> {
    shared: Arc<ArcSwap<T>>,
    cache: Option<arc_swap::Cache<Arc<ArcSwap<T>>, Arc<T>>>,
}

impl<T> Kept<T> {
    /// A handle on `shared` that holds nothing yet.
    pub fn new(shared: Arc<ArcSwap<T>>) -> Self {
        Kept {
            shared,
            cache: None,
        }
    }

    /// The current value (the one kept, when nothing was published since).
    #[inline]
    pub fn load(&mut self) -> &T {
        let shared = &self.shared;
        self.cache
            .get_or_insert_with(|| arc_swap::Cache::new(Arc::clone(shared)))
            .load()
    }

    /// Lets go of the kept value (the next `load` takes the current one
    /// again).
    pub fn release(&mut self) {
        self.cache = None;
    }

    /// Whether a value is kept.
    pub fn holds(&self) -> bool {
        self.cache.is_some()
    }

    /// The shared handle it loads from.
    pub fn shared(&self) -> &Arc<ArcSwap<T>> {
        &self.shared
    }
}

impl<T> std::fmt::Debug for Kept<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kept")
            .field("holds", &self.holds())
            .finish_non_exhaustive()
    }
}

/// A loaded snapshot (dereferences to [`Snapshot`]); cheap to take, meant
/// to be held for one batch.
#[derive(Debug)]
pub struct SnapshotGuard(Guard<Arc<Snapshot>>);

impl std::ops::Deref for SnapshotGuard {
    type Target = Snapshot;

    #[inline]
    fn deref(&self) -> &Snapshot {
        &self.0
    }
}

/// Memory used by a FIB, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Memory {
    /// One snapshot: what lookups touch.
    pub snapshot: usize,
    /// Everything: the shared store, both copies of the top of the
    /// structure, the control-side mirror and group tables.
    pub total: usize,
    /// Of `total`, the shared nodes and leaves: mapped memory (written
    /// pages), not heap allocations.
    pub store: usize,
}

/// What [`Fib::compact`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Compaction {
    /// Blocks (of nodes or leaf runs) moved down.
    pub moved: usize,
    /// Bytes of the shared store before and after.
    pub store_before: usize,
    pub store_after: usize,
}

/// The control side: applies updates and publishes snapshots.
#[derive(Debug)]
pub struct Fib {
    shared: Arc<ArcSwap<Snapshot>>,
    standby: Arc<Snapshot>,
    /// Entries the published copy has that the standby lacks.
    log: DirtyLog,
    /// The standby is caught up and exclusively ours.
    ready: bool,
    builder: TrieBuilder,
    groups: Groups,
    generation: u64,
    copies: u64,
    /// Standby copies given up to readers that held them past [`GRACE`],
    /// with their generations, while they live: they may reach retired
    /// blocks of the store.
    abandoned: Vec<(std::sync::Weak<Snapshot>, u64)>,
    /// Their generations (kept to avoid an allocation per publish).
    held: Vec<u64>,
    /// Inserts and removals so far.
    changes: u64,
}

/// How long the writer waits for readers to leave the standby snapshot
/// before it copies the published one instead.
pub const GRACE: std::time::Duration = std::time::Duration::from_millis(2);

/// Trie nodes the store of [`Fib::new`] has room for, when the address
/// space is not refused.
pub const MAX_NODES: usize = arena::MAX_NODES;

/// Free room at the end of the store below which [`Fib::fragmented`] says
/// no: compaction would give back a few pages at most.
pub const MIN_SLACK_BYTES: usize = 256 << 10;

/// [`Fib::try_new`] halves its store at most this many times.
const MIN_STORE_SHIFT: usize = 6;

/// The most passes [`Fib::compact`] makes (each a publish).
const COMPACT_PASSES: usize = 8;

impl Default for Fib {
    fn default() -> Self {
        Self::new()
    }
}

/// Most trie nodes one route adds: one per level from 24 to 120.
const MAX_ROUTE_NODES: usize = 13;

impl Fib {
    /// A FIB with room for millions of routes: [`Fib::try_new`], which
    /// panics if even its smallest store's address space is refused.
    pub fn new() -> Self {
        Self::try_new().unwrap_or_else(|e| panic!("{e}"))
    }

    /// A FIB with room for millions of routes. Reserves (does not use)
    /// 1.25 GiB of address space; if the kernel refuses that (a limit on
    /// address space, or strict overcommit accounting, where a reservation
    /// counts in full), halves it until it fits, down to a 64th (20 MiB,
    /// room for a few Internet tables). See [`Fib::capacity`].
    pub fn try_new() -> Result<Self, FibError> {
        let mut shift = 0;
        loop {
            match Self::try_with_capacity(arena::MAX_NODES >> shift, arena::MAX_LEAVES >> shift) {
                Err(_) if shift < MIN_STORE_SHIFT => shift += 1,
                done => return done,
            }
        }
    }

    /// A FIB whose store has room for `nodes` trie nodes and `leaf_runs`
    /// leaf runs; it refuses new and changed routes ([`FibError::Full`])
    /// once a quarter of either is in use. Panics if the address space is refused
    /// ([`Fib::try_with_capacity`] does not).
    pub fn with_capacity(nodes: usize, leaf_runs: usize) -> Self {
        Self::try_with_capacity(nodes, leaf_runs).unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`Fib::with_capacity`], or [`FibError::Reserve`] if the kernel
    /// refuses the address space.
    pub fn try_with_capacity(nodes: usize, leaf_runs: usize) -> Result<Self, FibError> {
        let store = Store::with_capacity(nodes, leaf_runs).map_err(|e| FibError::Reserve {
            bytes: nodes
                .saturating_mul(std::mem::size_of::<trie::Node>())
                .saturating_add(leaf_runs.saturating_mul(4)),
            reason: e.to_string(),
        })?;
        let store = Arc::new(store);
        let mut builder = TrieBuilder::default();
        builder.set_limits(nodes, leaf_runs);
        Ok(Fib {
            shared: Arc::new(ArcSwap::from_pointee(Snapshot::new(Arc::clone(&store)))),
            standby: Arc::new(Snapshot::new(store)),
            log: DirtyLog::default(),
            ready: true,
            builder,
            groups: Groups::default(),
            generation: 0,
            copies: 0,
            abandoned: Vec::new(),
            held: Vec::new(),
            changes: 0,
        })
    }

    /// The trie nodes and leaf runs the store has room for (it takes new
    /// and changed routes until a quarter of either is in use).
    pub fn capacity(&self) -> (usize, usize) {
        self.standby.trie.store.capacity()
    }

    /// A handle for lookups.
    pub fn reader(&self) -> FibReader {
        FibReader {
            shared: Arc::clone(&self.shared),
        }
    }

    /// The standby copy, caught up and exclusively ours. Waits for readers
    /// still holding it from before the last publish (the grace period:
    /// one batch of packets); if one holds it longer than [`GRACE`] (a
    /// thread keeping a snapshot, or a preempted reader), the writer stops
    /// waiting and copies the published snapshot instead, so it never
    /// blocks on a reader. Once no older snapshot can be read, the node
    /// and leaf blocks replaced before the last publish are reused.
    fn standby(&mut self) -> &mut Snapshot {
        if !self.ready {
            let start = std::time::Instant::now();
            let mut spins = 0u32;
            while Arc::get_mut(&mut self.standby).is_none() {
                spins += 1;
                if spins < 64 {
                    std::hint::spin_loop();
                } else if start.elapsed() < GRACE {
                    std::thread::yield_now();
                } else {
                    break;
                }
            }
            let src = self.shared.load_full();
            match Arc::get_mut(&mut self.standby) {
                Some(dst) => {
                    dst.trie.catch_up(&src.trie, &self.log);
                    for &g in &self.log.groups {
                        let g = g as usize;
                        if dst.groups.len() <= g {
                            dst.groups.resize(g + 1, None);
                        }
                        dst.groups[g] = src.groups.get(g).cloned().flatten();
                    }
                    dst.routes = src.routes;
                }
                None => {
                    // The old copy is freed when its last holder drops it;
                    // until then, blocks it reaches are not reused.
                    let generation = self.standby.generation;
                    self.abandoned
                        .push((Arc::downgrade(&self.standby), generation));
                    self.standby = Arc::new(src.copy_top());
                    self.copies += 1;
                }
            }
            self.reclaim();
            self.log.clear();
            self.ready = true;
        }
        match Arc::get_mut(&mut self.standby) {
            Some(s) => s,
            None => unreachable!("the standby snapshot is never shared once caught up"),
        }
    }

    /// Reuses the blocks no snapshot reaches any more: those replaced
    /// before the last publish (once the standby is ours) and those held
    /// back for abandoned snapshots that are gone now.
    fn reclaim(&mut self) {
        self.abandoned.retain(|(w, _)| w.strong_count() > 0);
        // `strong_count` reads relaxed: order the reuse of what a dropped
        // snapshot reached after its holder's last reads (the release of
        // its drop).
        std::sync::atomic::fence(std::sync::atomic::Ordering::Acquire);
        self.held.clear();
        self.held.extend(self.abandoned.iter().map(|&(_, g)| g));
        self.builder.reclaim(&self.held);
    }

    /// How often the writer copied the top of a snapshot because a reader
    /// held the standby past the grace period.
    pub fn standby_copies(&self) -> u64 {
        self.copies
    }

    fn out(&mut self) -> (&mut TrieBuilder, Out<'_>) {
        self.standby();
        let standby = match Arc::get_mut(&mut self.standby) {
            Some(s) => s,
            None => unreachable!("checked by standby()"),
        };
        (
            &mut self.builder,
            Out {
                t: &mut standby.trie,
                log: &mut self.log,
            },
        )
    }

    /// Recomputes the queued nodes now (the work `publish` would do) to
    /// count their leaf runs, which are allocated only then, so that one
    /// large batch cannot take more than the store holds; returns the
    /// leaf runs in use.
    #[cold]
    #[inline(never)]
    fn flush_early(&mut self) -> usize {
        let (builder, mut out) = self.out();
        builder.flush(&mut out);
        self.builder.in_use().1
    }

    /// Adds or replaces the route for `prefix`. A route whose next hops
    /// change keeps its surviving flows on their members (see `group`).
    pub fn insert(&mut self, prefix: Prefix, nexthops: &[NextHop]) -> Result<(), FibError> {
        // The same next hops again: nothing changes.
        let existing = self.builder.get(prefix);
        if existing.is_some_and(|old| self.groups.same(old, nexthops)) {
            return Ok(());
        }
        // One walk for the common case (a new route): store the fresh
        // group, then fix up if the route existed.
        let (nodes, mut leaves) = self.builder.in_use();
        let pending = self.builder.pending_leaves();
        if !self.standby.trie.store.has_room(nodes, leaves + pending) {
            leaves = self.flush_early();
        }
        // A new route may need a node at each level below its /24 (13 for
        // a /121): room for those too, or a later copy-on-write of its
        // path could find no block.
        // A replaced route needs no new node, but its new value can split
        // the leaf runs of every node below it: refused as well once the
        // store is past its mark, so that changes to existing routes cannot
        // fill the store's headroom and overflow it.
        let new_nodes = if existing.is_none() {
            MAX_ROUTE_NODES
        } else {
            0
        };
        if !self.standby.trie.store.has_room(nodes + new_nodes, leaves) {
            return Err(FibError::Full { nodes, leaves });
        }
        let fresh = self.groups.fresh(nexthops)?;
        self.changes += 1;
        self.groups.retain(fresh);
        let (builder, mut out) = self.out();
        let Some(old) = builder.set(&mut out, prefix, fresh) else {
            return Ok(());
        };
        if old == fresh {
            self.groups.release(fresh);
            return Ok(());
        }
        // The route existed with another group: keep its history, so that
        // its surviving flows stay on their members.
        let g = if self.groups.same(old, nexthops) {
            Ok(old)
        } else {
            self.groups.derive(old, nexthops)
        };
        let keep = *g.as_ref().unwrap_or(&old);
        if keep != fresh {
            self.groups.retain(keep);
            let (builder, mut out) = self.out();
            builder.set(&mut out, prefix, keep);
            self.groups.release(fresh);
        }
        self.groups.release(old);
        g.map(|_| ())
    }

    /// Removes the route for `prefix`; returns whether there was one.
    pub fn remove(&mut self, prefix: Prefix) -> bool {
        let (builder, mut out) = self.out();
        match builder.remove(&mut out, prefix) {
            Some(g) => {
                self.groups.release(g);
                self.changes += 1;
                true
            }
            None => false,
        }
    }

    /// The group of exactly `prefix` (including unpublished changes).
    pub fn get(&self, prefix: Prefix) -> Option<GroupId> {
        self.builder.get(prefix).and_then(GroupId::from_leaf)
    }

    /// The next hops of exactly `prefix`'s route (including unpublished
    /// changes), in member order: what the control side needs to know
    /// which next hops a route it replaces or removes was using, without
    /// keeping its own copy of every route.
    pub fn nexthops(&self, prefix: Prefix) -> Option<Vec<NextHopId>> {
        self.groups.member_ids(self.get(prefix)?.get())
    }

    /// Marks a next hop down (it gives its buckets to the other members of
    /// every group) or up again (it gets exactly those buckets back).
    pub fn set_nexthop_up(&mut self, nh: NextHopId, up: bool) {
        self.groups.set_state(nh, up);
    }

    pub fn nexthop_is_up(&self, nh: NextHopId) -> bool {
        self.groups.is_up(nh)
    }

    /// Routes, including unpublished changes.
    pub fn routes(&self) -> usize {
        self.builder.routes()
    }

    /// Makes every change so far visible to readers at once. Returns once
    /// the copy readers read before is caught up and published again
    /// (after the grace period, at most [`GRACE`] of waiting).
    pub fn publish(&mut self) {
        let (builder, mut out) = self.out();
        builder.flush(&mut out);
        let mut dirty = std::mem::take(&mut self.groups.dirty);
        // A group several of whose next hops changed state is in the list
        // once per change: its view is built once.
        dirty.sort_unstable();
        dirty.dedup();
        let routes = self.builder.routes();
        self.generation += 1;
        let generation = self.generation;
        let views: Vec<(u32, Option<Arc<GroupView>>)> =
            dirty.iter().map(|&g| (g, self.groups.view(g))).collect();
        let standby = self.standby();
        for (g, view) in views {
            let g = g as usize;
            if standby.groups.len() <= g {
                standby.groups.resize(g + 1, None);
            }
            standby.groups[g] = view;
        }
        standby.routes = routes;
        standby.generation = generation;
        self.log.groups = dirty;
        self.swap_in_standby();
        self.builder.published();
        // Readers go back to the copy they were reading, caught up: a
        // reader spends about one batch in the new copy per publish and
        // the rest in the one its caches hold, instead of switching
        // copies every publish (which kept both in its caches, half as
        // well).
        self.standby().generation = generation;
        self.swap_in_standby();
    }

    /// Publishes the standby copy; the copy it replaces becomes the
    /// standby, not ours until its readers leave.
    fn swap_in_standby(&mut self) {
        let old = self.shared.swap(Arc::clone(&self.standby));
        self.standby = old;
        self.ready = false;
    }

    /// Whether the store spans more than `slack` times the nodes or leaf
    /// runs in use, by at least [`MIN_SLACK_BYTES`]: after a burst of
    /// changes, the blocks that carried the copies it made lie free above
    /// the live ones (see [`Fib::compact`]).
    pub fn fragmented(&self, slack: f64) -> bool {
        let (nodes, leaves) = self.builder.in_use();
        let (top_nodes, top_leaves) = self.builder.tops();
        let node_bytes = std::mem::size_of::<trie::Node>();
        let over = |top: usize, used: usize, size: usize| {
            top as f64 > used as f64 * slack && (top - used) * size >= MIN_SLACK_BYTES
        };
        over(top_nodes, nodes, node_bytes) || over(top_leaves, leaves, 4)
    }

    /// Route changes (inserts and removals) since the FIB was made: a
    /// caller that compacts after quiet times watches it.
    pub fn changes(&self) -> u64 {
        self.changes
    }

    /// Gives back the memory a burst of changes left behind: moves the
    /// trie's blocks that lie above its live size into free ones lower
    /// down, publishes (with any pending changes), waits for the grace
    /// period as any change does, then returns the free end of the store
    /// to the kernel. Lookups go on meanwhile, as for any publish. Meant
    /// for quiet times (the daemon calls it once changes have stopped);
    /// costs about as much as a batch of updates of the same size.
    pub fn compact(&mut self) -> Compaction {
        let before = self.shared.load().trie.store.bytes();
        // Once the standby is ours no block waits for it (`publish` already
        // reclaimed what the last batch replaced): this frees only what
        // abandoned snapshots that are gone since held.
        self.standby();
        self.reclaim();
        let mut moved = 0;
        // A pass moves blocks into the lowest free places, which may still
        // lie above the live size until the places the pass freed come
        // back: a few passes settle it.
        for _ in 0..COMPACT_PASSES {
            let n = {
                let (builder, mut out) = self.out();
                builder.compact(&mut out)
            };
            // `publish` reclaims the blocks the moves replaced once no
            // reader holds the snapshot before; then the free end of the
            // store goes back.
            self.publish();
            let store = Arc::clone(&self.standby.trie.store);
            self.builder.trim(&store);
            moved += n;
            if n == 0 {
                break;
            }
        }
        Compaction {
            moved,
            store_before: before,
            store_after: self.shared.load().trie.store.bytes(),
        }
    }

    /// Memory of one snapshot and of everything the FIB holds.
    pub fn memory(&self) -> Memory {
        let published = self.shared.load();
        let snapshot = published.memory_bytes();
        Memory {
            snapshot,
            total: snapshot + self.standby.own_bytes() + self.builder.memory_bytes(),
            store: published.trie.store.bytes(),
        }
    }

    /// What the writer wrote into the shared node and leaf store so far
    /// (cumulative): the nodes it moved or rewrote and the leaf runs it
    /// wrote are what readers find outside their caches after a publish.
    pub fn store_writes(&self) -> StoreWrites {
        self.builder.writes()
    }

    /// Trie nodes (for statistics).
    pub fn nodes(&self) -> usize {
        self.builder.nodes()
    }
}
