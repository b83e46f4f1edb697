//! Adj-RIB-In, the decision process, multipath and the graceful restart
//! helper, sans-IO.
//!
//! # Shape
//!
//! One table maps each IPv6 prefix to its paths, at most one per peer (no
//! ADD-PATH): the union of every peer's Adj-RIB-In, stored prefix-major
//! so that the decision process reads one entry. A peer's own view is a
//! filter on it ([`Rib::routes_from`]); tearing a peer down scans the table
//! once. Paths of one UPDATE share one `Arc<RouteAttrs>`.
//!
//! Memory per prefix, for the common case of one path: a 24-byte slot
//! (the prefix packed in a `u64` key, the path inline) in a hash table
//! at most 7/8 full, and no allocation of its own; a second path moves
//! the paths to the heap (see `Entry`). The table is 256 shards that
//! grow one at a time, so that growing never holds an old and a new copy
//! of the whole table (1M prefixes: about 50 MiB, with no 75 MiB peak
//! while it doubles), and that shrink as prefixes go.
//!
//! # Batches and changes
//!
//! [`Rib::apply_update`], [`Rib::peer_down`], [`Rib::peer_up`] and
//! [`Rib::timer_expired`] only mark the prefixes they touch;
//! [`Rib::drain_changes`] runs the decision process on each marked prefix
//! once and yields a [`RibChange`] only where the best path or the ECMP
//! set changed since the last drain. So a prefix announced and withdrawn
//! in one batch yields nothing, and a peer's million routes going down
//! yield one change per prefix. Drain after each UPDATE or peer event (or
//! after several: the result is the same, with fewer changes).
//! [`Rib::drain_changes_upto`] drains in bounded batches (the same
//! changes in the same order), so that a million withdrawals need not be
//! held at once; the queue itself costs 8 bytes a marked prefix.
//!
//! A change lists the ECMP set's next hops, best path first; an empty
//! list is a withdrawal. The best path's identity counts: a new best path
//! within the same set is a change (the list's order changes). One
//! imprecision, on the safe side: a member whose next hop changes and
//! changes back within one batch yields one (redundant) change, since the
//! table keeps no copy of the next hops last reported.
//!
//! # Import
//!
//! An UPDATE's routes go through, in order: the family (IPv6 unicast
//! only), the AS_PATH (our AS not in it; an external peer's AS first),
//! next-hop sanity ([`policy::resolve_next_hop`]; not our own address on
//! the session), martians, the peer's
//! allow-list, and max-prefixes. A rejected route also withdraws what the
//! peer announced before for that prefix. Every rejection is counted per
//! reason ([`PeerStats`]) and the last few are kept with their prefix
//! ([`Rib::rejections`]).
//!
//! Max-prefixes: the first route beyond the limit makes `apply_update`
//! return a [`RibOutput::Teardown`]: Cease / Maximum Number of Prefixes
//! Reached (RFC 4486, data AFI, SAFI and the limit) as a Hard Reset (RFC
//! 8538), and an idle time during which the session refuses the peer. The
//! driver feeds it to the peer's [`Session`](crate::fsm::Session) with
//! [`Teardown::into_input`]; the Session then reports a non-graceful
//! `Down`, which purges the routes.
//!
//! # Graceful restart helper (RFC 4724 section 4.2, RFC 8538)
//!
//! - Graceful `Down` ([`Rib::peer_down`] with `graceful`): routes still
//!   stale from an earlier restart are deleted, the rest are marked stale
//!   and stay usable (in the decision process and in RibChanges), and the
//!   restart timer ([`RibTimer::Restart`], the peer's restart time) is
//!   armed. A restart time of 0 purges at once.
//! - The peer comes back ([`Rib::peer_up`]): the restart timer is
//!   cancelled. If its new OPEN lacks graceful restart or the F bit for
//!   IPv6 unicast, stale routes are purged at once; otherwise
//!   re-announced routes lose their stale mark, and its End-of-RIB purges
//!   the rest, bounded by the stale-path timer ([`RibTimer::StalePath`],
//!   `stale_path_time`).
//! - Restart or stale-path timer expiry purges the stale routes.
//! - Non-graceful `Down` (a Hard Reset, no GR) purges at once.

mod decision;

use std::collections::hash_map::RandomState;
use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::{BuildHasher, Hasher};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::time::Duration;

use ipnet::Ipv6Net;

pub use decision::{DecisionConfig, LossReason, NextHopReach, PathStatus};

use crate::fsm::{Negotiated, Teardown};
use crate::policy::{self, ImportPolicy, RejectReason, ResolvedNextHop};
use crate::wire::{
    Afi, AsPath, Asn, CeaseSubcode, Community, LargeCommunity, MpReach, NotificationRepr, Origin,
    ParsedUpdate, Safi,
};

/// A peer's handle in the RIB, given by [`Rib::add_peer`]; never reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PeerId(u32);

impl PeerId {
    /// The number, for logs and ctl.
    pub fn get(self) -> u32 {
        self.0
    }
}

impl core::fmt::Display for PeerId {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "peer#{}", self.0)
    }
}

/// RIB-wide configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RibConfig {
    /// Our AS: internal peers share it; AS_PATHs containing it loop.
    pub local_asn: Asn,
    /// Multipath and MED options.
    pub decision: DecisionConfig,
    /// Upper bound on keeping stale routes after a restarted peer is back
    /// (RFC 4724 section 4.2, "stale routes timer").
    pub stale_path_time: Duration,
}

impl RibConfig {
    /// Defaults: 16-way multipath, no relax, MED per neighbouring AS,
    /// stale-path time 360 s.
    pub fn new(local_asn: Asn) -> RibConfig {
        RibConfig {
            local_asn,
            decision: DecisionConfig::default(),
            stale_path_time: Duration::from_secs(360),
        }
    }
}

/// A peer as the RIB sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PeerConfig {
    /// The session's remote address.
    pub address: Ipv6Addr,
    /// The peer's AS (internal if it equals ours).
    pub asn: Asn,
    /// The session's interface, for link-local next hops.
    pub ifindex: Option<u32>,
    /// Import policy.
    pub import: ImportPolicy,
    /// How long the session refuses the peer after a max-prefix teardown.
    pub max_prefix_idle: Duration,
}

impl PeerConfig {
    /// A peer with the default import policy (accept all, no limit) and a
    /// 30 s max-prefix idle time.
    pub fn new(address: Ipv6Addr, asn: Asn) -> PeerConfig {
        PeerConfig {
            address,
            asn,
            ifindex: None,
            import: ImportPolicy::default(),
            max_prefix_idle: Duration::from_secs(30),
        }
    }
}

/// The attributes of a path that the decision process and `show route`
/// use; shared by all prefixes of one UPDATE.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RouteAttrs {
    /// Where the path came from.
    pub peer: PeerId,
    /// The sanitised next hop.
    pub next_hop: ResolvedNextHop,
    /// Degree of preference.
    pub local_pref: u32,
    /// AS_PATH as received.
    pub as_path: AsPath,
    /// Its length for the decision process.
    pub as_path_len: u32,
    /// ORIGIN.
    pub origin: Origin,
    /// MULTI_EXIT_DISC.
    pub med: Option<u32>,
    /// The neighbouring AS (first of the AS_PATH), `None` for a route
    /// from inside our AS.
    pub neighbor_as: Option<Asn>,
    /// Learned from an internal peer.
    pub ibgp: bool,
    /// The peer's BGP identifier.
    pub peer_router_id: Ipv4Addr,
    /// The peer's address.
    pub peer_address: Ipv6Addr,
    /// COMMUNITIES.
    pub communities: Vec<Community>,
    /// LARGE_COMMUNITY.
    pub large_communities: Vec<LargeCommunity>,
}

/// One member of an ECMP set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NextHop {
    /// The next hop address.
    pub addr: Ipv6Addr,
    /// Its interface, for a link-local address.
    pub ifindex: Option<u32>,
    /// The peer that announced it.
    pub peer: PeerId,
}

/// The best path or the ECMP set of a prefix changed.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RibChange {
    /// The prefix.
    pub prefix: Ipv6Net,
    /// The ECMP set, best path first; empty when the prefix is gone.
    pub nexthops: Vec<NextHop>,
}

/// The RIB's timers, armed and cancelled through [`RibOutput`]s and fed
/// back to [`Rib::timer_expired`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RibTimer {
    /// A gracefully restarting peer must be back before this fires.
    Restart(PeerId),
    /// A peer that came back must send End-of-RIB before this fires.
    StalePath(PeerId),
}

/// What the driver must do after a RIB call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RibOutput {
    /// (Re)start a timer.
    ArmTimer(RibTimer, Duration),
    /// Stop a timer.
    CancelTimer(RibTimer),
    /// Tear the peer's session down: feed `Teardown::into_input()` to it.
    Teardown(PeerId, Teardown),
}

/// A peer's counters.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct PeerStats {
    /// The session is Established.
    pub up: bool,
    /// Prefixes in the Adj-RIB-In (stale ones included).
    pub accepted: usize,
    /// Of which stale.
    pub stale: usize,
    /// Routes rejected since the peer was added, per reason (events: a
    /// prefix announced twice and rejected twice counts 2).
    pub rejected: Vec<(RejectReason, u64)>,
    /// IPv6 prefixes the session announced that were rejected and not
    /// withdrawn since (BIRD's "filtered", GoBGP's rejected paths), counted
    /// up to the peer's max-prefixes if it has one, else [`MAX_FILTERED`]:
    /// `accepted + filtered` is what the peer announces.
    pub filtered: usize,
}

/// How many rejected prefixes a peer's [`PeerStats::filtered`] counts (a
/// set of them is kept; this bounds its memory, about 40 MB, whatever a
/// peer sends).
pub const MAX_FILTERED: usize = 1 << 20;

/// A path of [`RouteView`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathView {
    /// Attributes (peer included).
    pub attrs: Arc<RouteAttrs>,
    /// Kept from a gracefully restarting peer.
    pub stale: bool,
    /// Best, multipath, or why not.
    pub status: PathStatus,
}

/// Every path of a prefix, best first, for `show route`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteView {
    /// The prefix.
    pub prefix: Ipv6Net,
    /// Paths in decision order.
    pub paths: Vec<PathView>,
}

const STALE: u8 = 1;
const SELECTED: u8 = 2;
const BEST: u8 = 4;
/// An [`Entry::One`]'s path was removed: the entry is empty (until the
/// next drain deletes it or a path replaces it).
const GONE: u8 = 8;

const DIRTY: u8 = 1;
const CHANGED: u8 = 2;

/// How many rejected routes each peer remembers for `show`.
const RECENT_REJECTIONS: usize = 32;

#[derive(Debug, Clone)]
struct Path {
    attrs: Arc<RouteAttrs>,
    peer: PeerId,
    /// STALE, and SELECTED/BEST as of the last drain.
    flags: u8,
    /// The entry's flags (DIRTY, CHANGED) while the path is the entry's
    /// only one ([`Entry::One`]); 0 otherwise.
    entry_flags: u8,
}

impl Path {
    /// The member of an ECMP set this path gives.
    fn next_hop(&self) -> NextHop {
        NextHop {
            addr: self.attrs.next_hop.addr,
            ifindex: self.attrs.next_hop.ifindex,
            peer: self.peer,
        }
    }
}

/// A prefix's paths. The common case, one path, is stored inline: an
/// `Entry` is 16 bytes and costs no allocation of its own.
#[derive(Debug)]
enum Entry {
    /// One path, or none if it has GONE; the entry's flags are its
    /// `entry_flags`.
    One(Path),
    /// Two or more paths, or none or one until the next drain.
    Many(Box<ManyPaths>),
}

#[derive(Debug)]
struct ManyPaths {
    /// DIRTY: queued for the next drain; CHANGED: a path of the last
    /// drained ECMP set went away or changed next hop.
    flags: u8,
    paths: Vec<Path>,
}

impl Entry {
    fn new(path: Path) -> Entry {
        Entry::One(path)
    }

    fn flags_mut(&mut self) -> &mut u8 {
        match self {
            Entry::One(p) => &mut p.entry_flags,
            Entry::Many(m) => &mut m.flags,
        }
    }

    fn paths(&self) -> &[Path] {
        match self {
            Entry::One(p) if p.flags & GONE != 0 => &[],
            Entry::One(p) => core::slice::from_ref(p),
            Entry::Many(m) => &m.paths,
        }
    }

    fn paths_mut(&mut self) -> &mut [Path] {
        match self {
            Entry::One(p) if p.flags & GONE != 0 => &mut [],
            Entry::One(p) => core::slice::from_mut(p),
            Entry::Many(m) => &mut m.paths,
        }
    }

    fn push(&mut self, mut path: Path) {
        path.entry_flags = 0;
        match self {
            Entry::Many(m) => m.paths.push(path),
            Entry::One(p) if p.flags & GONE != 0 => {
                path.entry_flags = p.entry_flags;
                *p = path;
            }
            Entry::One(p) => {
                let mut first = p.clone();
                let flags = std::mem::take(&mut first.entry_flags);
                // Room for a few peers at once: growing 2 -> 4 would
                // leave the freed 2-path buffers behind as fragmentation.
                let mut paths = Vec::with_capacity(4);
                paths.extend([first, path]);
                *self = Entry::Many(Box::new(ManyPaths { flags, paths }));
            }
        }
    }

    /// Keeps the paths for which `keep` holds; returns the removed ones'
    /// count and whether one of them was SELECTED.
    fn retain(&mut self, mut keep: impl FnMut(&Path) -> bool) -> (usize, bool) {
        match self {
            Entry::One(p) => {
                if p.flags & GONE != 0 || keep(p) {
                    return (0, false);
                }
                p.flags |= GONE;
                (1, p.flags & SELECTED != 0)
            }
            Entry::Many(m) => {
                let before = m.paths.len();
                let mut lost_selected = false;
                m.paths.retain(|p| {
                    let gone = !keep(p);
                    lost_selected |= gone && p.flags & SELECTED != 0;
                    !gone
                });
                let removed = before - m.paths.len();
                if m.paths.len() == 1 {
                    let mut p = m.paths.pop().expect("one path");
                    p.entry_flags = m.flags;
                    *self = Entry::One(p);
                }
                (removed, lost_selected)
            }
        }
    }
}

/// A keyed folded-multiply hasher: fast on 17-byte prefixes, seeded per
/// RIB so that peers cannot aim for collisions.
#[derive(Debug, Clone, Copy)]
struct PrefixHasher(u64);

impl PrefixHasher {
    #[inline]
    fn mix(&mut self, w: u64) {
        let r = u128::from(self.0 ^ w) * 0x9e37_79b9_7f4a_7c15_u128;
        self.0 = (r as u64) ^ ((r >> 64) as u64);
    }
}

impl Hasher for PrefixHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut b = [0u8; 8];
            b[..chunk.len()].copy_from_slice(chunk);
            self.mix(u64::from_le_bytes(b));
        }
    }

    #[inline]
    fn write_u8(&mut self, n: u8) {
        self.mix(u64::from(n) | 0x100);
    }

    #[inline]
    fn write_u64(&mut self, n: u64) {
        self.mix(n);
    }

    #[inline]
    fn write_usize(&mut self, n: usize) {
        self.mix(n as u64);
    }

    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }
}

#[derive(Debug, Clone, Copy)]
struct PrefixHashBuilder(u64);

impl PrefixHashBuilder {
    fn new() -> PrefixHashBuilder {
        PrefixHashBuilder(RandomState::new().build_hasher().finish() | 1)
    }
}

impl BuildHasher for PrefixHashBuilder {
    type Hasher = PrefixHasher;
    fn build_hasher(&self) -> PrefixHasher {
        PrefixHasher(self.0)
    }
}

/// A prefix of at most 63 bits whose host bits are zero (every routed
/// prefix in practice) as one `u64`: its upper 64 address bits, with
/// the bit just past the prefix set as a length marker.
fn short_key(prefix: &Ipv6Net) -> Option<u64> {
    let len = prefix.prefix_len();
    if len >= 64 {
        return None;
    }
    let bits = u128::from(prefix.addr());
    let hi = (bits >> 64) as u64;
    if bits as u64 != 0 || hi & (u64::MAX >> len) != 0 {
        return None;
    }
    Some(hi | (1u64 << (63 - len)))
}

fn short_prefix(key: u64) -> Ipv6Net {
    let tz = key.trailing_zeros();
    let hi = key ^ (1u64 << tz);
    Ipv6Net::new(Ipv6Addr::from(u128::from(hi) << 64), (63 - tz) as u8).expect("length < 64")
}

/// Shards of the short-prefix table: a power of two. Each shard grows on
/// its own, so growing never holds an old and a new copy of the whole
/// table at once (1M prefixes: a 200 KiB shard instead of a 25 MiB table
/// next to its 50 MiB successor).
const SHARDS: usize = 256;

/// A drained queue keeps at most this many entries' worth of buffer.
const DIRTY_KEEP: usize = 4096;

/// A shard at most this full (and bigger than [`SHRINK_MIN`] slots) after
/// a deletion is shrunk to twice its length: a peer's routes going away
/// give their memory back.
const SHRINK_BELOW: usize = 4;
const SHRINK_MIN: usize = 128;

/// The prefix table and its queue of prefixes to re-decide.
///
/// Prefixes that [`short_key`] packs live in `short` (24 bytes a slot,
/// sharded by hash), the others in `long`. The queue holds short keys;
/// a 0 (never a short key) stands for the next prefix of `dirty_long`.
#[derive(Debug)]
struct Table {
    hasher: PrefixHashBuilder,
    short: Vec<HashMap<u64, Entry, PrefixHashBuilder>>,
    long: HashMap<Ipv6Net, Entry, PrefixHashBuilder>,
    /// Queued prefixes, drained from `dirty_at` on.
    dirty: Vec<u64>,
    dirty_at: usize,
    dirty_long: Vec<Ipv6Net>,
    dirty_long_at: usize,
}

/// A queued prefix: a short key, or (0) the next long one.
#[derive(Debug, Clone, Copy)]
enum Key {
    Short(u64),
    Long(Ipv6Net),
}

impl Key {
    fn of(prefix: &Ipv6Net) -> Key {
        match short_key(prefix) {
            Some(k) => Key::Short(k),
            None => Key::Long(*prefix),
        }
    }

    fn prefix(self) -> Ipv6Net {
        match self {
            Key::Short(k) => short_prefix(k),
            Key::Long(p) => p,
        }
    }
}

/// What [`Table::mark`] needs to queue a prefix.
#[derive(Debug)]
struct Queue<'a> {
    dirty: &'a mut Vec<u64>,
    dirty_long: &'a mut Vec<Ipv6Net>,
}

impl Queue<'_> {
    fn push(&mut self, key: Key) {
        match key {
            Key::Short(k) => self.dirty.push(k),
            Key::Long(p) => {
                self.dirty.push(0);
                self.dirty_long.push(p);
            }
        }
    }
}

impl Table {
    fn new() -> Table {
        let hasher = PrefixHashBuilder::new();
        Table {
            hasher,
            short: (0..SHARDS).map(|_| HashMap::with_hasher(hasher)).collect(),
            long: HashMap::with_hasher(hasher),
            dirty: Vec::new(),
            dirty_at: 0,
            dirty_long: Vec::new(),
            dirty_long_at: 0,
        }
    }

    /// The shard of a short key: hash bits 32..40, which neither the
    /// shard's bucket index (the low bits) nor its control bytes (the top
    /// 7 bits) use.
    #[inline]
    fn shard(&self, k: u64) -> usize {
        (self.hasher.hash_one(k) >> 32) as usize & (SHARDS - 1)
    }

    /// The shard of a key (long keys have their own map: 0, unused).
    fn shard_of(&self, key: Key) -> usize {
        match key {
            Key::Short(k) => self.shard(k),
            Key::Long(_) => 0,
        }
    }

    fn len(&self) -> usize {
        self.short.iter().map(HashMap::len).sum::<usize>() + self.long.len()
    }

    fn get(&self, prefix: &Ipv6Net) -> Option<&Entry> {
        match short_key(prefix) {
            Some(k) => self.short[self.shard(k)].get(&k),
            None => self.long.get(prefix),
        }
    }

    fn get_key_mut(&mut self, key: Key) -> Option<&mut Entry> {
        match key {
            Key::Short(k) => {
                let i = self.shard(k);
                self.short[i].get_mut(&k)
            }
            Key::Long(p) => self.long.get_mut(&p),
        }
    }

    /// Deletes the entry, shrinking its map once it is mostly empty.
    fn delete_key(&mut self, key: Key) {
        fn shrink<K: Eq + std::hash::Hash>(m: &mut HashMap<K, Entry, PrefixHashBuilder>) {
            let cap = m.capacity();
            if cap > SHRINK_MIN && m.len() * SHRINK_BELOW < cap {
                m.shrink_to(m.len() * 2);
            }
        }
        match key {
            Key::Short(k) => {
                let i = self.shard(k);
                let m = &mut self.short[i];
                m.remove(&k);
                shrink(m);
            }
            Key::Long(p) => {
                self.long.remove(&p);
                shrink(&mut self.long);
            }
        }
    }

    fn entries(&self) -> impl Iterator<Item = (Ipv6Net, &Entry)> {
        self.short
            .iter()
            .flat_map(|m| m.iter())
            .map(|(&k, e)| (short_prefix(k), e))
            .chain(self.long.iter().map(|(&p, e)| (p, e)))
    }

    fn for_each_mut(&mut self, mut f: impl FnMut(Key, &mut Entry, &mut Queue<'_>)) {
        let Table {
            short,
            long,
            dirty,
            dirty_long,
            ..
        } = self;
        let mut q = Queue { dirty, dirty_long };
        for m in short.iter_mut() {
            for (&k, e) in m.iter_mut() {
                f(Key::Short(k), e, &mut q);
            }
        }
        for (&p, e) in long.iter_mut() {
            f(Key::Long(p), e, &mut q);
        }
    }

    /// The entry of `key` and the queue, borrowed together.
    fn entry_and_queue(&mut self, key: Key) -> Option<(&mut Entry, Queue<'_>)> {
        let shard = self.shard_of(key);
        let Table {
            short,
            long,
            dirty,
            dirty_long,
            ..
        } = self;
        let entry = match key {
            Key::Short(k) => short[shard].get_mut(&k)?,
            Key::Long(p) => long.get_mut(&p)?,
        };
        Some((entry, Queue { dirty, dirty_long }))
    }

    fn mark(q: &mut Queue<'_>, key: Key, entry: &mut Entry) {
        let flags = entry.flags_mut();
        if *flags & DIRTY == 0 {
            *flags |= DIRTY;
            q.push(key);
        }
    }

    /// Whether `peer` has a path for `prefix` that is not stale.
    fn holds_fresh(&self, prefix: &Ipv6Net, peer: PeerId) -> bool {
        self.get(prefix).is_some_and(|e| {
            e.paths()
                .iter()
                .any(|p| p.peer == peer && p.flags & STALE == 0)
        })
    }

    /// Adds or replaces `peer`'s path; returns the replaced path's flags.
    fn upsert(&mut self, prefix: Ipv6Net, peer: PeerId, attrs: &Arc<RouteAttrs>) -> Option<u8> {
        let path = || Path {
            attrs: Arc::clone(attrs),
            peer,
            flags: 0,
            entry_flags: DIRTY,
        };
        let key = Key::of(&prefix);
        let shard = self.shard_of(key);
        let Table {
            short,
            long,
            dirty,
            dirty_long,
            ..
        } = self;
        let mut q = Queue { dirty, dirty_long };
        let entry = match key {
            Key::Short(k) => match short[shard].entry(k) {
                std::collections::hash_map::Entry::Occupied(o) => o.into_mut(),
                std::collections::hash_map::Entry::Vacant(v) => {
                    v.insert(Entry::new(path()));
                    q.push(key);
                    return None;
                }
            },
            Key::Long(p) => match long.entry(p) {
                std::collections::hash_map::Entry::Occupied(o) => o.into_mut(),
                std::collections::hash_map::Entry::Vacant(v) => {
                    v.insert(Entry::new(path()));
                    q.push(key);
                    return None;
                }
            },
        };
        Table::mark(&mut q, key, entry);
        match entry.paths_mut().iter_mut().find(|p| p.peer == peer) {
            Some(p) => {
                let old = p.flags;
                let changed = old & SELECTED != 0 && p.attrs.next_hop != attrs.next_hop;
                p.attrs = Arc::clone(attrs);
                p.flags &= !STALE;
                if changed {
                    *entry.flags_mut() |= CHANGED;
                }
                Some(old)
            }
            None => {
                entry.push(path());
                None
            }
        }
    }

    /// Removes `peer`'s path; returns its flags.
    fn remove(&mut self, prefix: &Ipv6Net, peer: PeerId) -> Option<u8> {
        let key = Key::of(prefix);
        let (entry, mut q) = self.entry_and_queue(key)?;
        let flags = entry.paths().iter().find(|p| p.peer == peer)?.flags;
        entry.retain(|p| p.peer != peer);
        if flags & SELECTED != 0 {
            *entry.flags_mut() |= CHANGED;
        }
        Table::mark(&mut q, key, entry);
        Some(flags)
    }

    /// Removes `peer`'s paths that have all bits of `flags`; returns how
    /// many.
    fn purge(&mut self, peer: PeerId, flags: u8) -> usize {
        let mut removed = 0;
        self.for_each_mut(|key, entry, q| {
            let (n, lost_selected) =
                entry.retain(|p| !(p.peer == peer && p.flags & flags == flags));
            if n > 0 {
                removed += n;
                if lost_selected {
                    *entry.flags_mut() |= CHANGED;
                }
                Table::mark(q, key, entry);
            }
        });
        removed
    }

    /// Marks all of `peer`'s paths stale; returns how many.
    fn mark_stale(&mut self, peer: PeerId) -> usize {
        let mut n = 0;
        self.for_each_mut(|_, entry, _| {
            for p in entry.paths_mut().iter_mut().filter(|p| p.peer == peer) {
                p.flags |= STALE;
                n += 1;
            }
        });
        n
    }

    /// Decides queued prefixes until the queue is empty or `max` changes
    /// were added to `out`; returns whether prefixes are still queued.
    fn drain(
        &mut self,
        cfg: &DecisionConfig,
        reach: &NextHopReach,
        out: &mut Vec<RibChange>,
        max: usize,
    ) -> bool {
        let start = out.len();
        while self.dirty_at < self.dirty.len() && out.len() - start < max {
            let key = match self.dirty[self.dirty_at] {
                0 => {
                    let p = self.dirty_long[self.dirty_long_at];
                    self.dirty_long_at += 1;
                    Key::Long(p)
                }
                k => Key::Short(k),
            };
            self.dirty_at += 1;
            if let Some(change) = self.decide(key, cfg, reach) {
                out.push(change);
            }
        }
        if self.dirty_at < self.dirty.len() {
            return true;
        }
        // Keep a small queue's buffer; give a big one back.
        self.dirty.clear();
        self.dirty.shrink_to(DIRTY_KEEP);
        self.dirty_at = 0;
        self.dirty_long.clear();
        self.dirty_long.shrink_to(DIRTY_KEEP);
        self.dirty_long_at = 0;
        false
    }

    /// Runs the decision process on a queued prefix; the change, if the
    /// best path or the ECMP set changed.
    fn decide(
        &mut self,
        key: Key,
        cfg: &DecisionConfig,
        reach: &NextHopReach,
    ) -> Option<RibChange> {
        let entry = self.get_key_mut(key)?;
        let mut changed = std::mem::take(entry.flags_mut()) & CHANGED != 0;
        if entry.paths().is_empty() {
            self.delete_key(key);
            return changed.then(|| RibChange {
                prefix: key.prefix(),
                nexthops: Vec::new(),
            });
        }
        let paths = entry.paths_mut();
        let n = decision::select(paths, cfg, reach);
        for (i, p) in paths.iter_mut().enumerate() {
            // n is 0 when no next hop resolves: then no path is selected.
            let want = match i {
                i if i >= n => 0,
                0 => SELECTED | BEST,
                _ => SELECTED,
            };
            if p.flags & (SELECTED | BEST) != want {
                changed = true;
                p.flags = (p.flags & STALE) | want;
            }
        }
        changed.then(|| RibChange {
            prefix: key.prefix(),
            nexthops: paths[..n].iter().map(Path::next_hop).collect(),
        })
    }
}

#[derive(Debug)]
struct PeerState {
    config: PeerConfig,
    router_id: Ipv4Addr,
    /// Our address on the session ([`Rib::set_local_address`]).
    local: Option<Ipv6Addr>,
    ibgp: bool,
    up: bool,
    accepted: usize,
    stale: usize,
    rejected: [u64; RejectReason::ALL.len()],
    /// IPv6 prefixes of the session rejected and not withdrawn since.
    filtered: HashSet<Ipv6Net>,
    recent: VecDeque<(Ipv6Net, RejectReason)>,
    restart_time: Option<Duration>,
    restart_armed: bool,
    stale_armed: bool,
    teardown_sent: bool,
}

impl PeerState {
    fn reject(&mut self, prefix: Ipv6Net, reason: RejectReason) {
        self.rejected[reason.index()] += 1;
        if self.recent.len() == RECENT_REJECTIONS {
            self.recent.pop_front();
        }
        self.recent.push_back((prefix, reason));
    }
}

/// The RIB (see the module docs).
#[derive(Debug)]
pub struct Rib {
    config: RibConfig,
    peers: HashMap<PeerId, PeerState>,
    next_peer: u32,
    table: Table,
    /// Which next hops resolve ([`Rib::set_next_hop_reach`]).
    reach: NextHopReach,
}

impl Rib {
    /// An empty RIB.
    pub fn new(config: RibConfig) -> Rib {
        Rib {
            config,
            peers: HashMap::new(),
            next_peer: 0,
            table: Table::new(),
            reach: NextHopReach::default(),
        }
    }

    /// Which next hops resolve from now on ([`NextHopReach`]: the
    /// router's connected subnets and interfaces); every one before the
    /// first call. A path whose next hop does not resolve takes no part in
    /// the decision (RFC 4271 section 9.1.2), and comes back when it
    /// resolves again. Every prefix is decided again when the reach
    /// changes (`drain_changes` gives what moved).
    pub fn set_next_hop_reach(&mut self, reach: NextHopReach) {
        if reach == self.reach {
            return;
        }
        self.reach = reach;
        self.table
            .for_each_mut(|key, entry, q| Table::mark(q, key, entry));
    }

    /// The configuration.
    pub fn config(&self) -> &RibConfig {
        &self.config
    }

    /// Registers a peer (a configured neighbour, or a dynamic one accepted
    /// from a listen range).
    pub fn add_peer(&mut self, config: PeerConfig) -> PeerId {
        let id = PeerId(self.next_peer);
        self.next_peer += 1;
        let ibgp = config.asn == self.config.local_asn;
        self.peers.insert(
            id,
            PeerState {
                config,
                router_id: Ipv4Addr::UNSPECIFIED,
                local: None,
                ibgp,
                up: false,
                accepted: 0,
                stale: 0,
                rejected: [0; RejectReason::ALL.len()],
                filtered: HashSet::new(),
                recent: VecDeque::new(),
                restart_time: None,
                restart_armed: false,
                stale_armed: false,
                teardown_sent: false,
            },
        );
        id
    }

    /// Forgets a peer and its routes (de-configured).
    pub fn remove_peer(&mut self, id: PeerId) -> Vec<RibOutput> {
        let out = self.peer_down(id, false);
        self.peers.remove(&id);
        out
    }

    /// Our address on the peer's session (the driver knows it once the
    /// connection is up): a route whose next hop is that address points
    /// back at us and is rejected (RFC 4271 section 5.1.3).
    pub fn set_local_address(&mut self, id: PeerId, local: Option<Ipv6Addr>) {
        if let Some(peer) = self.peers.get_mut(&id) {
            peer.local = local;
        }
    }

    /// Replaces how long a peer torn down for max-prefixes is refused.
    pub fn set_max_prefix_idle(&mut self, id: PeerId, idle: Duration) {
        if let Some(peer) = self.peers.get_mut(&id) {
            peer.config.max_prefix_idle = idle;
        }
    }

    /// Replaces a peer's import policy; takes effect for routes received
    /// from now on (ask the peer for a route refresh to re-filter).
    pub fn set_import_policy(&mut self, id: PeerId, import: ImportPolicy) -> Vec<RibOutput> {
        let Some(peer) = self.peers.get_mut(&id) else {
            return Vec::new();
        };
        peer.config.import = import;
        // A limit lowered below what the peer holds tears the session down
        // at once (as FRR does), rather than never: the routes the peer
        // sends again are all held already, and only a new one is checked.
        let over = peer
            .config
            .import
            .max_prefixes
            .is_some_and(|max| peer.accepted - peer.stale > max as usize);
        if peer.up && over && !std::mem::replace(&mut peer.teardown_sent, true) {
            return vec![RibOutput::Teardown(id, max_prefix_teardown(peer))];
        }
        Vec::new()
    }

    /// The peer's session is Established.
    pub fn peer_up(&mut self, id: PeerId, negotiated: &Negotiated) -> Vec<RibOutput> {
        let mut out = Vec::new();
        let Some(peer) = self.peers.get_mut(&id) else {
            return out;
        };
        peer.up = true;
        peer.teardown_sent = false;
        peer.router_id = negotiated.remote_id;
        peer.ibgp = negotiated.ibgp;
        peer.restart_time = negotiated.restart_time();
        if std::mem::take(&mut peer.restart_armed) {
            out.push(RibOutput::CancelTimer(RibTimer::Restart(id)));
        }
        if peer.stale > 0 {
            if negotiated.ipv6_forwarding_preserved() {
                peer.stale_armed = true;
                out.push(RibOutput::ArmTimer(
                    RibTimer::StalePath(id),
                    self.config.stale_path_time,
                ));
            } else {
                self.purge_stale(id, &mut out);
            }
        }
        out
    }

    /// The peer's session went down; `graceful` is `Output::Down`'s.
    pub fn peer_down(&mut self, id: PeerId, graceful: bool) -> Vec<RibOutput> {
        let mut out = Vec::new();
        let Some(peer) = self.peers.get_mut(&id) else {
            return out;
        };
        peer.up = false;
        peer.teardown_sent = false;
        // Whatever the session announced and we rejected is gone with it
        // (a restarting peer announces it again).
        peer.filtered = HashSet::new();
        let restart = peer.restart_time.filter(|t| !t.is_zero());
        if std::mem::take(&mut peer.stale_armed) {
            out.push(RibOutput::CancelTimer(RibTimer::StalePath(id)));
        }
        match restart {
            Some(restart) if graceful => {
                // RFC 4724 4.2: routes still stale from the last restart go.
                if peer.stale > 0 {
                    let n = self.table.purge(id, STALE);
                    let peer = self.peer_mut(id);
                    peer.accepted -= n;
                    peer.stale = 0;
                }
                let n = self.table.mark_stale(id);
                let peer = self.peer_mut(id);
                peer.stale = n;
                if n > 0 {
                    peer.restart_armed = true;
                    out.push(RibOutput::ArmTimer(RibTimer::Restart(id), restart));
                }
            }
            _ => {
                if std::mem::take(&mut peer.restart_armed) {
                    out.push(RibOutput::CancelTimer(RibTimer::Restart(id)));
                }
                if peer.accepted > 0 {
                    self.table.purge(id, 0);
                }
                let peer = self.peer_mut(id);
                peer.accepted = 0;
                peer.stale = 0;
            }
        }
        out
    }

    /// A RIB timer fired.
    pub fn timer_expired(&mut self, timer: RibTimer) -> Vec<RibOutput> {
        let mut out = Vec::new();
        let (id, armed) = match timer {
            RibTimer::Restart(id) => (id, self.peers.get_mut(&id).map(|p| &mut p.restart_armed)),
            RibTimer::StalePath(id) => (id, self.peers.get_mut(&id).map(|p| &mut p.stale_armed)),
        };
        if armed.is_some_and(std::mem::take) {
            self.purge_stale(id, &mut out);
        }
        out
    }

    fn peer_mut(&mut self, id: PeerId) -> &mut PeerState {
        self.peers.get_mut(&id).expect("peer exists")
    }

    fn purge_stale(&mut self, id: PeerId, out: &mut Vec<RibOutput>) {
        let Some(peer) = self.peers.get_mut(&id) else {
            return;
        };
        if std::mem::take(&mut peer.stale_armed) {
            out.push(RibOutput::CancelTimer(RibTimer::StalePath(id)));
        }
        if peer.stale == 0 {
            return;
        }
        let n = self.table.purge(id, STALE);
        let peer = self.peer_mut(id);
        peer.accepted -= n;
        peer.stale = 0;
    }

    /// Applies one UPDATE from `id` (see the module docs for the import
    /// steps). May ask for a teardown (max-prefixes).
    pub fn apply_update(&mut self, id: PeerId, update: &ParsedUpdate) -> Vec<RibOutput> {
        let mut out = Vec::new();
        let Some(peer) = self.peers.get_mut(&id) else {
            return out;
        };
        for prefix in update.ipv6_withdrawn() {
            if !peer.filtered.is_empty() {
                peer.filtered.remove(prefix);
            }
            if let Some(flags) = self.table.remove(prefix, id) {
                peer.accepted -= 1;
                if flags & STALE != 0 {
                    peer.stale -= 1;
                }
            }
        }
        // IPv4 is never negotiated; count what GoBGP sends anyway.
        peer.rejected[RejectReason::FamilyNotNegotiated.index()] +=
            update.ipv4_announced().len() as u64;
        let announced = update.ipv6_announced();
        if !announced.is_empty() {
            match route_attrs(&self.config, id, peer, update) {
                Ok(attrs) => {
                    let attrs = Arc::new(attrs);
                    for &prefix in announced {
                        if let Err(reason) = peer.config.import.check_prefix(&prefix) {
                            reject(&mut self.table, peer, id, prefix, reason);
                            continue;
                        }
                        // Stale routes (graceful restart) are what the peer
                        // announced before, which its End-of-RIB purges:
                        // not counted, so a restarted peer may announce
                        // its limit anew (at most twice the limit held).
                        let announced = peer.accepted - peer.stale;
                        let at_limit = peer
                            .config
                            .import
                            .max_prefixes
                            .is_some_and(|max| announced >= max as usize);
                        // A fresh path replaced is no new prefix; a
                        // stale one re-announced counts anew.
                        if at_limit && !self.table.holds_fresh(&prefix, id) {
                            reject(&mut self.table, peer, id, prefix, RejectReason::MaxPrefixes);
                            if !std::mem::replace(&mut peer.teardown_sent, true) {
                                out.push(RibOutput::Teardown(id, max_prefix_teardown(peer)));
                            }
                            continue;
                        }
                        if !peer.filtered.is_empty() {
                            peer.filtered.remove(&prefix);
                        }
                        match self.table.upsert(prefix, id, &attrs) {
                            None => peer.accepted += 1,
                            Some(flags) if flags & STALE != 0 => peer.stale -= 1,
                            Some(_) => {}
                        }
                    }
                }
                Err(reason) => {
                    for &prefix in announced {
                        reject(&mut self.table, peer, id, prefix, reason);
                    }
                }
            }
        }
        if update.update.end_of_rib_family() == Some((Afi::Ipv6, Safi::Unicast)) {
            self.purge_stale(id, &mut out);
        }
        out
    }

    /// Runs the decision process on every prefix touched since the last
    /// drain and returns the changes.
    pub fn drain_changes(&mut self) -> Vec<RibChange> {
        let mut out = Vec::new();
        self.drain_changes_into(&mut out);
        out
    }

    /// [`Rib::drain_changes`] into a caller's buffer.
    pub fn drain_changes_into(&mut self, out: &mut Vec<RibChange>) {
        self.table
            .drain(&self.config.decision, &self.reach, out, usize::MAX);
    }

    /// [`Rib::drain_changes_into`], stopping once `max` changes were
    /// added; returns whether prefixes are left to decide (call again).
    /// Bounds the memory of a big event, such as a peer with a million
    /// routes going down, to `max` changes at a time.
    pub fn drain_changes_upto(&mut self, out: &mut Vec<RibChange>, max: usize) -> bool {
        self.table
            .drain(&self.config.decision, &self.reach, out, max)
    }

    /// Number of prefixes with at least one path.
    pub fn len(&self) -> usize {
        self.table.len()
    }

    /// Whether the RIB holds no prefix.
    pub fn is_empty(&self) -> bool {
        self.table.len() == 0
    }

    /// What the RIB last emitted for `prefix` (in a [`RibChange`] drained
    /// before): its selected paths' next hops, best first, less the paths
    /// withdrawn since; none when no selected path is left. For a caller
    /// that must install it again, such as a router whose own route for
    /// the prefix went away; a change not drained yet follows in the next
    /// drain.
    pub fn selected(&self, prefix: &Ipv6Net) -> RibChange {
        let nexthops = self
            .table
            .get(prefix)
            .map(|e| {
                // The paths are in decision order since the last drain.
                e.paths()
                    .iter()
                    .filter(|p| p.flags & SELECTED != 0)
                    .map(Path::next_hop)
                    .collect()
            })
            .unwrap_or_default();
        RibChange {
            prefix: *prefix,
            nexthops,
        }
    }

    /// Every path of `prefix`, in decision order, with why each lost.
    pub fn route(&self, prefix: &Ipv6Net) -> Option<RouteView> {
        let entry = self.table.get(prefix)?;
        if entry.paths().is_empty() {
            return None;
        }
        let mut paths = entry.paths().to_vec();
        let n = decision::select(&mut paths, &self.config.decision, &self.reach);
        let statuses = decision::statuses(&paths, n, &self.config.decision, &self.reach);
        Some(RouteView {
            prefix: *prefix,
            paths: paths
                .into_iter()
                .zip(statuses)
                .map(|(p, status)| PathView {
                    stale: p.flags & STALE != 0,
                    attrs: p.attrs,
                    status,
                })
                .collect(),
        })
    }

    /// Every path of the `max` lowest prefixes, in prefix order, for
    /// `show route` without a prefix (a listing cut at `max` shows the
    /// start of the table, as its "first N" says, not whichever prefixes
    /// the hash shards hold first).
    pub fn route_views(&self, max: usize) -> Vec<RouteView> {
        // A max-heap of the lowest seen: its top is the one to drop.
        let mut lowest = std::collections::BinaryHeap::with_capacity(max.min(1 << 16) + 1);
        for (p, e) in self.table.entries() {
            if e.paths().is_empty() {
                continue;
            }
            if lowest.len() < max {
                lowest.push(p);
            } else if lowest.peek().is_some_and(|top| p < *top) {
                lowest.pop();
                lowest.push(p);
            }
        }
        lowest
            .into_sorted_vec()
            .iter()
            .filter_map(|p| self.route(p))
            .collect()
    }

    /// The peer's Adj-RIB-In: its prefixes and paths, unordered.
    pub fn routes_from(&self, id: PeerId) -> impl Iterator<Item = (Ipv6Net, &Arc<RouteAttrs>)> {
        self.table.entries().filter_map(move |(prefix, e)| {
            e.paths()
                .iter()
                .find(|p| p.peer == id)
                .map(|p| (prefix, &p.attrs))
        })
    }

    /// The peer's counters.
    pub fn peer_stats(&self, id: PeerId) -> Option<PeerStats> {
        let p = self.peers.get(&id)?;
        Some(PeerStats {
            up: p.up,
            accepted: p.accepted,
            stale: p.stale,
            rejected: RejectReason::ALL
                .iter()
                .map(|&r| (r, p.rejected[r.index()]))
                .collect(),
            filtered: p.filtered.len(),
        })
    }

    /// The last routes rejected from the peer, oldest first.
    pub fn rejections(&self, id: PeerId) -> impl Iterator<Item = &(Ipv6Net, RejectReason)> {
        self.peers
            .get(&id)
            .into_iter()
            .flat_map(|p| p.recent.iter())
    }
}

fn reject(
    table: &mut Table,
    peer: &mut PeerState,
    id: PeerId,
    prefix: Ipv6Net,
    reason: RejectReason,
) {
    peer.reject(prefix, reason);
    // At most what the peer may have accepted (its max-prefixes), or
    // MAX_FILTERED: many peers from a listen range cannot make the RIB
    // hold more than they could have had accepted.
    let cap = peer
        .config
        .import
        .max_prefixes
        .map_or(MAX_FILTERED, |m| (m as usize).min(MAX_FILTERED));
    if peer.filtered.len() < cap {
        peer.filtered.insert(prefix);
    }
    // A rejected announcement replaces (withdraws) the earlier one.
    if let Some(flags) = table.remove(&prefix, id) {
        peer.accepted -= 1;
        if flags & STALE != 0 {
            peer.stale -= 1;
        }
    }
}

fn max_prefix_teardown(peer: &PeerState) -> Teardown {
    let max = peer.config.import.max_prefixes.unwrap_or(0);
    // RFC 4486 section 4: AFI, SAFI and the upper bound.
    let mut n = NotificationRepr::cease(CeaseSubcode::MaxPrefixes);
    n.data
        .extend_from_slice(&u16::from(Afi::Ipv6).to_be_bytes());
    n.data.push(Safi::Unicast.into());
    n.data.extend_from_slice(&max.to_be_bytes());
    Teardown {
        notification: n,
        hard_reset: true,
        refuse_for: peer.config.max_prefix_idle,
    }
}

/// The per-UPDATE import checks, and the attributes for its routes.
fn route_attrs(
    config: &RibConfig,
    id: PeerId,
    peer: &PeerState,
    update: &ParsedUpdate,
) -> Result<RouteAttrs, RejectReason> {
    let attrs = &update.update.attributes;
    let Some(MpReach::Ipv6Unicast { next_hop, .. }) = &attrs.mp_reach else {
        return Err(RejectReason::FamilyNotNegotiated);
    };
    let as_path = attrs.as_path.clone().unwrap_or_default();
    // Our AS in the path is a loop (RFC 4271 9.1.2); from a peer without
    // 4-octet AS numbers, a 4-octet one of ours shows only in AS4_PATH
    // (AS_TRANS in AS_PATH, RFC 6793 4.2.3).
    if as_path.contains(config.local_asn)
        || AsPath::as4_path(&attrs.unknown).is_some_and(|p| p.contains(config.local_asn))
    {
        return Err(RejectReason::AsPathLoop);
    }
    if !peer.ibgp && as_path.first_asn() != Some(peer.config.asn) {
        return Err(RejectReason::FirstAsNotPeer);
    }
    let next_hop = policy::resolve_next_hop(next_hop, peer.config.address, peer.config.ifindex)?;
    if peer.local == Some(next_hop.addr) {
        return Err(RejectReason::NextHopInvalid);
    }
    let local_pref = match peer.ibgp {
        true => attrs.local_pref.unwrap_or(peer.config.import.local_pref),
        false => peer.config.import.local_pref,
    };
    Ok(RouteAttrs {
        peer: id,
        next_hop,
        local_pref,
        as_path_len: u32::try_from(as_path.path_len()).unwrap_or(u32::MAX),
        neighbor_as: as_path.first_asn(),
        as_path,
        origin: attrs.origin.unwrap_or(Origin::Incomplete),
        med: attrs.med,
        ibgp: peer.ibgp,
        peer_router_id: peer.router_id,
        peer_address: peer.config.address,
        communities: attrs.communities.clone(),
        large_communities: attrs.large_communities.clone(),
    })
}

#[cfg(test)]
mod tests;
