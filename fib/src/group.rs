//! Next-hop groups: interned sets of weighted next hops, each with a
//! power-of-two bucket table for resilient ECMP.
//!
//! Two tables per group:
//! - the *owner* table says which member owns each bucket. It changes only
//!   when membership or a non-zero weight changes, and then minimally:
//!   a removed member's buckets are spread evenly over the others (no other
//!   bucket moves), except that a member removed while inactive (and no
//!   member joining or growing in the same change) leaves its buckets with
//!   the members the effective table gave them to, even if that is only
//!   even on average; an added member takes its share evenly from the
//!   others (only those buckets move).
//! - the *effective* table (what the dataplane reads) is the owner table with
//!   the buckets of inactive members (marked down, or weight 0 = drained)
//!   dealt evenly to the active ones. It is a pure function of the owner
//!   table and the active set, so a member that comes back gets exactly its
//!   own buckets back and nothing else moves.
//!
//! A route whose next-hop set changes moves to a group *derived* from its
//! current one, so its surviving flows stay put. Groups are interned by
//! (members, owner table): routes that share a history share a group.

use std::collections::{HashMap, HashSet};
use std::num::NonZeroU32;
use std::sync::Arc;

use crate::trie::VALUE_MASK;
use crate::FibError;

/// A next hop as the control plane names it (an adjacency index).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NextHopId(pub u32);

/// A next-hop group, the value every route resolves to. Valid within the
/// snapshot it came from: the id of a group no route uses any more is
/// reused for a later group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(transparent)]
pub struct GroupId(NonZeroU32);

impl GroupId {
    #[inline(always)]
    pub(crate) fn from_leaf(v: u32) -> Option<GroupId> {
        NonZeroU32::new(v).map(GroupId)
    }

    /// The number of the group (1-based).
    pub fn get(self) -> u32 {
        self.0.get()
    }
}

/// A member of a group: a next hop and its weight (0 drains it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NextHop {
    pub id: NextHopId,
    pub weight: u32,
}

impl NextHop {
    /// A member of weight 1.
    pub fn new(id: u32) -> Self {
        NextHop {
            id: NextHopId(id),
            weight: 1,
        }
    }

    pub fn weighted(id: u32, weight: u32) -> Self {
        NextHop {
            id: NextHopId(id),
            weight,
        }
    }
}

/// Largest weight accepted (keeps the arithmetic in u64 exact).
pub const MAX_WEIGHT: u32 = 1 << 16;
/// Largest number of members in one group.
pub const MAX_MEMBERS: usize = 1024;
/// Buckets of a group with up to 32 members; larger groups get 8 per member.
pub const MIN_BUCKETS: usize = 256;

const NONE: u16 = u16::MAX;

/// What the dataplane reads of a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupView {
    /// Members with their configured weights.
    pub members: Box<[NextHop]>,
    /// Whether each member (same order) is active: up and weight > 0.
    pub active: Box<[bool]>,
    /// Next-hop id per bucket; empty when no member is active.
    pub buckets: Box<[u32]>,
}

impl GroupView {
    /// The member for a flow hash, or `None` when no member is active.
    #[inline]
    pub fn select(&self, hash: u32) -> Option<NextHopId> {
        let n = self.buckets.len();
        if n == 0 {
            return None;
        }
        Some(NextHopId(self.buckets[hash as usize & (n - 1)]))
    }
}

#[derive(Debug, Clone)]
struct Member {
    id: u32,
    weight: u32,
    /// The weight the owner table was dealt with (kept while drained).
    owner_weight: u32,
}

#[derive(Debug)]
struct Group {
    members: Vec<Member>,
    owner: Vec<u16>,
    /// Per bucket, who owned it before its owner took it (when that member
    /// is still in the group): an inactive owner's bucket goes back there
    /// while that member is below its share of the active weight (else to
    /// the active member that ranks it highest), so adding a member that
    /// is down, or draining one just added, moves no flow, and a member
    /// that took all its buckets from one other does not hand them all
    /// back to it when down.
    fallback: Vec<u16>,
    refs: u32,
    key: Vec<u32>,
}

/// The control side of the groups.
#[derive(Debug, Default)]
pub(crate) struct Groups {
    groups: Vec<Option<Group>>,
    free: Vec<u32>,
    by_key: HashMap<Vec<u32>, u32>,
    /// Fresh groups by member list (the common case of a new route).
    fresh: HashMap<Vec<NextHop>, u32>,
    down: HashSet<u32>,
    by_nh: HashMap<u32, Vec<u32>>,
    /// Groups whose view changed since the last publish.
    pub dirty: Vec<u32>,
}

fn bucket_count(members: usize) -> usize {
    (members * 8).next_power_of_two().max(MIN_BUCKETS)
}

fn normalize(nhs: &[NextHop]) -> Result<Vec<NextHop>, FibError> {
    if nhs.is_empty() {
        return Err(FibError::NoNextHops);
    }
    if nhs.len() > MAX_MEMBERS {
        return Err(FibError::TooManyNextHops(nhs.len()));
    }
    let mut v = nhs.to_vec();
    v.sort_unstable();
    for w in v.windows(2) {
        if w[0].id == w[1].id {
            return Err(FibError::DuplicateNextHop(w[0].id.0));
        }
    }
    if let Some(nh) = v.iter().find(|nh| nh.weight > MAX_WEIGHT) {
        return Err(FibError::Weight(nh.weight));
    }
    Ok(v)
}

/// One splitmix64 step: `x` mixed so that every input bit reaches every
/// output bit (the ranks of rendezvous hashing; the dataplane's flow-hash
/// seed from the router id).
pub fn splitmix64(x: u64) -> u64 {
    let mut x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// Weighted rendezvous hashing: the member (among those `eligible`) that
/// ranks bucket `b` highest. A bucket's choice depends only on the eligible
/// set, so when a member leaves it only its own buckets change hands, and
/// when one joins only buckets it ranks first move to it; shares follow
/// the weights statistically (the owner table is what is exactly even).
fn rendezvous(b: usize, members: &[Member], eligible: impl Fn(usize) -> bool) -> Option<usize> {
    let mut best: Option<(f64, usize)> = None;
    for (j, m) in members.iter().enumerate().filter(|&(j, _)| eligible(j)) {
        let x = splitmix64((b as u64) << 32 | u64::from(m.id));
        // u in (0, 1]; a larger weight gives a larger score.
        let u = ((x >> 11) as f64 + 1.0) / (1u64 << 53) as f64;
        let w = f64::from(m.weight.max(m.owner_weight).max(1));
        let score = -w / u.ln().min(-f64::MIN_POSITIVE);
        if best.is_none_or(|(s, _)| score > s) {
            best = Some((score, j));
        }
    }
    best.map(|(_, j)| j)
}

/// What a group is derived from: members, owner and fallback tables.
type Prev<'a> = (&'a [Member], &'a [u16], &'a [u16]);

/// Deals `n` buckets to members by owner weight, keeping every bucket of
/// `prev` whose owner stays and is within its new share, and giving a freed
/// bucket back to its fallback owner when that one is below its share.
/// Returns the owner and fallback tables.
fn deal(
    n: usize,
    members: &[Member],
    prev: Option<Prev>,
    effective: Option<&[u16]>,
) -> (Vec<u16>, Vec<u16>) {
    let total: u64 = members.iter().map(|m| u64::from(m.owner_weight)).sum();
    let mut owner = vec![NONE; n];
    let mut fallback = vec![NONE; n];
    if total == 0 {
        return (owner, fallback);
    }
    // Previous member index -> new index (NONE if gone or owning nothing).
    let mut map = Vec::new();
    let mut held = vec![0usize; members.len()];
    let at = |t: &[u16], b: usize| t[b & (t.len() - 1)];
    if let Some((pm, po, _)) = prev {
        map = pm
            .iter()
            .map(|m| {
                members
                    .iter()
                    .position(|x| x.id == m.id && x.owner_weight > 0)
                    .map_or(NONE, |i| i as u16)
            })
            .collect();
        for b in 0..n {
            let o = at(po, b);
            if o != NONE && map[o as usize] != NONE {
                held[map[o as usize] as usize] += 1;
            }
        }
    }
    let remap = |o: u16| if o == NONE { NONE } else { map[o as usize] };
    // Shares: each member's floor, and the buckets left over one each,
    // first to members that already hold more than their floor (so that a
    // change elsewhere does not pass a rounding bucket from one member
    // that stays to another: removing or adding a member that owns no
    // bucket would move a flow), then by largest remainder, then to
    // whoever holds more already. Every share stays within one bucket of
    // the exact one, but for the buckets of a member removed while
    // inactive (`effective`), which stay where they are served.
    let mut target: Vec<usize> = members
        .iter()
        .map(|m| (n as u64 * u64::from(m.owner_weight) / total) as usize)
        .collect();
    let mut left = n - target.iter().sum::<usize>();
    let mut order: Vec<usize> = (0..members.len()).collect();
    order.sort_by_key(|&j| {
        let rem = (n as u64 * u64::from(members[j].owner_weight)) % total;
        (
            std::cmp::Reverse(held[j] > target[j]),
            std::cmp::Reverse(rem),
            std::cmp::Reverse(held[j]),
            j,
        )
    });
    for &j in &order {
        if left == 0 {
            break;
        }
        if members[j].owner_weight > 0 {
            target[j] += 1;
            left -= 1;
        }
    }
    let mut count = vec![0usize; members.len()];
    if let Some((_, po, _)) = prev {
        for (b, slot) in owner.iter_mut().enumerate() {
            let j = remap(at(po, b));
            if j != NONE && count[j as usize] < target[j as usize] {
                *slot = j;
                count[j as usize] += 1;
            }
        }
        // The buckets of a member removed while inactive (down, or
        // drained) stay with the member that serves them now, over its
        // share if need be: dealt afresh, some would move between members
        // that stay (its buckets were spread by rendezvous, which is even
        // only on average).
        if let Some(eff) = effective {
            for (b, slot) in owner.iter_mut().enumerate() {
                let (was, now) = (at(po, b), at(eff, b));
                if *slot != NONE || was == NONE || map[was as usize] != NONE || now == was {
                    continue;
                }
                let j = remap(now);
                if j != NONE {
                    *slot = j;
                    count[j as usize] += 1;
                }
            }
        }
        // Freed buckets go back to their fallback owner while it has room.
        let (_, _, pf) = prev.unwrap_or_default();
        for (b, slot) in owner.iter_mut().enumerate() {
            let f = remap(at(pf, b));
            if *slot == NONE && f != NONE && count[f as usize] < target[f as usize] {
                *slot = f;
                count[f as usize] += 1;
            }
        }
    }
    for (b, slot) in owner.iter_mut().enumerate() {
        if *slot != NONE {
            continue;
        }
        // The member that ranks the bucket highest among those still below
        // their share: the same choice the effective table made while the
        // bucket's owner was inactive, so a member removed while down moves
        // (almost) no flow.
        let Some(j) = rendezvous(b, members, |j| count[j] < target[j]) else {
            break;
        };
        *slot = j as u16;
        count[j] += 1;
    }
    if let Some((_, po, pf)) = prev {
        for b in 0..n {
            let was = remap(at(po, b));
            fallback[b] = if was != owner[b] {
                was
            } else {
                remap(at(pf, b))
            };
            if fallback[b] == owner[b] {
                fallback[b] = NONE;
            }
        }
    }
    (owner, fallback)
}

impl Groups {
    /// The member ids of group `g`, in member order.
    pub fn member_ids(&self, g: u32) -> Option<Vec<NextHopId>> {
        let group = self.groups.get(g as usize)?.as_ref()?;
        Some(group.members.iter().map(|m| NextHopId(m.id)).collect())
    }

    pub fn view(&self, g: u32) -> Option<Arc<GroupView>> {
        let group = self.groups.get(g as usize)?.as_ref()?;
        let (active, chosen) = self.effective(group);
        let buckets = chosen
            .iter()
            .map(|&j| group.members[j as usize].id)
            .collect::<Vec<_>>();
        Some(Arc::new(GroupView {
            members: group
                .members
                .iter()
                .map(|m| NextHop::weighted(m.id, m.weight))
                .collect(),
            active: active.into_boxed_slice(),
            buckets: buckets.into_boxed_slice(),
        }))
    }

    /// Which members of `group` are active (not down, weight above 0),
    /// and the member index each bucket goes to (empty when none is
    /// active): its owner while active, else its fallback while that one
    /// is below its share, else the active member that ranks it highest.
    fn effective(&self, group: &Group) -> (Vec<bool>, Vec<u16>) {
        let active: Vec<bool> = group
            .members
            .iter()
            .map(|m| m.weight > 0 && !self.down.contains(&m.id))
            .collect();
        if !active.iter().any(|&a| a) {
            return (active, Vec::new());
        }
        let n = group.owner.len();
        let live = |o: u16| o != NONE && active[o as usize];
        // Each active member's share of the buckets by weight, rounded
        // up: an inactive owner's buckets go to its fallback only while
        // that one is below its share, so a member that took its buckets
        // from one other (a group grown from one member at once) does not
        // hand them all back to it when down.
        let total: u64 = (0..group.members.len())
            .filter(|&j| active[j])
            .map(|j| u64::from(group.members[j].weight))
            .sum::<u64>()
            .max(1);
        let cap: Vec<usize> = (0..group.members.len())
            .map(|j| {
                let w = if active[j] {
                    u64::from(group.members[j].weight)
                } else {
                    0
                };
                (n as u64 * w).div_ceil(total) as usize
            })
            .collect();
        let mut count = vec![0usize; group.members.len()];
        // Active owners keep every bucket they own.
        let mut chosen: Vec<u16> = group
            .owner
            .iter()
            .map(|&o| {
                if live(o) {
                    count[o as usize] += 1;
                    o
                } else {
                    NONE
                }
            })
            .collect();
        for (b, slot) in chosen.iter_mut().enumerate() {
            if *slot != NONE {
                continue;
            }
            let f = group.fallback[b];
            let j = if live(f) && count[f as usize] < cap[f as usize] {
                f as usize
            } else {
                // The active member that ranks the bucket highest: a
                // choice that depends on nothing but the active set.
                rendezvous(b, &group.members, |j| active[j]).unwrap_or_default()
            };
            count[j] += 1;
            *slot = j as u16;
        }
        (active, chosen)
    }

    fn key(members: &[Member], owner: &[u16], fallback: &[u16]) -> Vec<u32> {
        let mut key = Vec::with_capacity(2 + members.len() * 3 + owner.len() * 2);
        key.push(owner.len() as u32);
        key.push(members.len() as u32);
        for m in members {
            key.extend([m.id, m.weight, m.owner_weight]);
        }
        key.extend(owner.iter().map(|&o| u32::from(o)));
        key.extend(fallback.iter().map(|&o| u32::from(o)));
        key
    }

    fn intern(
        &mut self,
        members: Vec<Member>,
        (owner, fallback): (Vec<u16>, Vec<u16>),
    ) -> Result<u32, FibError> {
        let key = Self::key(&members, &owner, &fallback);
        if let Some(&g) = self.by_key.get(&key) {
            return Ok(g);
        }
        let g = match self.free.pop() {
            Some(g) => g,
            None => {
                if self.groups.is_empty() {
                    self.groups.push(None); // id 0 means "no route"
                }
                let g = self.groups.len() as u32;
                if g > VALUE_MASK {
                    return Err(FibError::TooManyGroups);
                }
                self.groups.push(None);
                g
            }
        };
        for m in &members {
            self.by_nh.entry(m.id).or_default().push(g);
        }
        self.by_key.insert(key.clone(), g);
        self.groups[g as usize] = Some(Group {
            members,
            owner,
            fallback,
            refs: 0,
            key,
        });
        self.dirty.push(g);
        Ok(g)
    }

    /// The group a new route with these next hops gets.
    pub fn fresh(&mut self, nhs: &[NextHop]) -> Result<u32, FibError> {
        if let Some(&g) = self.fresh.get(nhs) {
            return Ok(g);
        }
        let nhs = normalize(nhs)?;
        if let Some(&g) = self.fresh.get(&nhs) {
            return Ok(g);
        }
        let members: Vec<Member> = nhs
            .iter()
            .map(|nh| Member {
                id: nh.id.0,
                weight: nh.weight,
                owner_weight: nh.weight,
            })
            .collect();
        let tables = deal(bucket_count(members.len()), &members, None, None);
        let g = self.intern(members, tables)?;
        self.fresh.insert(nhs, g);
        Ok(g)
    }

    /// Whether `g` has exactly these members and weights.
    pub fn same(&self, g: u32, nhs: &[NextHop]) -> bool {
        let Some(Some(group)) = self.groups.get(g as usize) else {
            return false;
        };
        // A set with a duplicate (or otherwise refused) is no group's.
        if normalize(nhs).is_err() {
            return false;
        }
        group.members.len() == nhs.len()
            && nhs.iter().all(|nh| {
                group
                    .members
                    .iter()
                    .any(|m| m.id == nh.id.0 && m.weight == nh.weight)
            })
    }

    /// The group a route on `g` moves to when its next hops become `nhs`.
    pub fn derive(&mut self, g: u32, nhs: &[NextHop]) -> Result<u32, FibError> {
        let nhs = normalize(nhs)?;
        let Some(Some(old)) = self.groups.get(g as usize) else {
            return self.fresh(&nhs);
        };
        let members: Vec<Member> = nhs
            .iter()
            .map(|nh| {
                let prev = old.members.iter().find(|m| m.id == nh.id.0);
                let owner_weight = match (nh.weight, prev) {
                    (0, Some(p)) => p.owner_weight,
                    (w, _) => w,
                };
                Member {
                    id: nh.id.0,
                    weight: nh.weight,
                    owner_weight,
                }
            })
            .collect();
        let same_owners = members.len() == old.members.len()
            && members
                .iter()
                .zip(&old.members)
                .all(|(a, b)| a.id == b.id && a.owner_weight == b.owner_weight);
        let tables = if same_owners {
            (old.owner.clone(), old.fallback.clone())
        } else {
            let n = bucket_count(members.len()).max(old.owner.len());
            // Where the buckets of inactive members go now: a member
            // removed while down or drained leaves its buckets there, when
            // members only leave (one joining, or whose share grows, needs
            // buckets the others give up, which are dealt as usual).
            let only_leaving = members.iter().all(|m| {
                old.members
                    .iter()
                    .any(|o| o.id == m.id && o.owner_weight == m.owner_weight)
            });
            let effective = if only_leaving {
                self.effective(old).1
            } else {
                Vec::new()
            };
            let effective = (!effective.is_empty()).then_some(&effective[..]);
            let prev = (&old.members[..], &old.owner[..], &old.fallback[..]);
            deal(n, &members, Some(prev), effective)
        };
        self.intern(members, tables)
    }

    pub fn retain(&mut self, g: u32) {
        if let Some(Some(group)) = self.groups.get_mut(g as usize) {
            group.refs += 1;
        }
    }

    pub fn release(&mut self, g: u32) {
        let Some(Some(group)) = self.groups.get_mut(g as usize) else {
            return;
        };
        group.refs -= 1;
        if group.refs > 0 {
            return;
        }
        let Some(group) = self.groups[g as usize].take() else {
            return;
        };
        self.by_key.remove(&group.key);
        self.fresh.retain(|_, v| *v != g);
        for m in &group.members {
            if let Some(gs) = self.by_nh.get_mut(&m.id) {
                gs.retain(|&x| x != g);
                if gs.is_empty() {
                    self.by_nh.remove(&m.id);
                }
            }
        }
        self.free.push(g);
        self.dirty.push(g);
    }

    /// Marks a next hop down or up in every group at once.
    pub fn set_state(&mut self, nh: NextHopId, up: bool) -> bool {
        let changed = if up {
            self.down.remove(&nh.0)
        } else {
            self.down.insert(nh.0)
        };
        if changed {
            if let Some(gs) = self.by_nh.get(&nh.0) {
                self.dirty.extend(gs.iter().copied());
            }
        }
        changed
    }

    pub fn is_up(&self, nh: NextHopId) -> bool {
        !self.down.contains(&nh.0)
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.groups.iter().filter(|g| g.is_some()).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nhs(ids: &[u32]) -> Vec<NextHop> {
        ids.iter().map(|&i| NextHop::new(i)).collect()
    }

    fn buckets(g: &Groups, id: u32) -> Vec<u32> {
        g.view(id).unwrap().buckets.to_vec()
    }

    fn counts(b: &[u32]) -> HashMap<u32, usize> {
        let mut c = HashMap::new();
        for &x in b {
            *c.entry(x).or_default() += 1;
        }
        c
    }

    #[test]
    fn fresh_groups_are_balanced_and_interned() {
        let mut g = Groups::default();
        let a = g.fresh(&nhs(&[3, 1, 2])).unwrap();
        assert_eq!(g.fresh(&nhs(&[1, 2, 3])).unwrap(), a);
        let c = counts(&buckets(&g, a));
        assert_eq!(c.len(), 3);
        assert!(c.values().all(|&n| n == 85 || n == 86), "{c:?}");
        assert_eq!(buckets(&g, a).len(), MIN_BUCKETS);
    }

    #[test]
    fn removing_a_member_moves_only_its_buckets_evenly() {
        let mut g = Groups::default();
        let a = g.fresh(&nhs(&[1, 2, 3, 4])).unwrap();
        let before = buckets(&g, a);
        let b = g.derive(a, &nhs(&[1, 2, 4])).unwrap();
        let after = buckets(&g, b);
        for (x, y) in before.iter().zip(&after) {
            if *x != 3 {
                assert_eq!(x, y, "a surviving member's bucket moved");
            }
        }
        let c = counts(&after);
        assert!(c.values().all(|&n| n == 85 || n == 86), "{c:?}");
    }

    #[test]
    fn adding_a_member_takes_an_even_share_from_each() {
        let mut g = Groups::default();
        let a = g.fresh(&nhs(&[1, 2, 3])).unwrap();
        let before = buckets(&g, a);
        let b = g.derive(a, &nhs(&[1, 2, 3, 4])).unwrap();
        let after = buckets(&g, b);
        let moved: Vec<_> = before.iter().zip(&after).filter(|(x, y)| x != y).collect();
        assert!(
            moved.iter().all(|(_, y)| **y == 4),
            "only buckets to the new member move"
        );
        assert_eq!(counts(&after).get(&4), Some(&64));
        let given = counts(&moved.iter().map(|(x, _)| **x).collect::<Vec<_>>());
        assert!(given.values().all(|&n| (21..=22).contains(&n)), "{given:?}");
    }

    #[test]
    fn down_then_up_restores_exactly_and_moves_nothing_else() {
        let mut g = Groups::default();
        let a = g.fresh(&nhs(&[1, 2, 3])).unwrap();
        let before = buckets(&g, a);
        assert!(g.set_state(NextHopId(2), false));
        let down = buckets(&g, a);
        for (x, y) in before.iter().zip(&down) {
            if *x != 2 {
                assert_eq!(x, y);
            } else {
                assert_ne!(*y, 2);
            }
        }
        // Rendezvous hashing spreads them: evenly in expectation, not
        // exactly (85 buckets each way, within a few).
        let c = counts(&down);
        assert!(c[&1].abs_diff(c[&3]) <= 16, "{c:?}");
        assert!(g.view(a).unwrap().active == vec![true, false, true].into());
        g.set_state(NextHopId(2), true);
        assert_eq!(buckets(&g, a), before);
    }

    #[test]
    fn weight_zero_drains_and_undrains_to_the_same_buckets() {
        let mut g = Groups::default();
        let a = g.fresh(&nhs(&[1, 2, 3])).unwrap();
        let before = buckets(&g, a);
        let drained = g
            .derive(
                a,
                &[NextHop::new(1), NextHop::weighted(2, 0), NextHop::new(3)],
            )
            .unwrap();
        let d = buckets(&g, drained);
        assert!(!d.contains(&2));
        for (x, y) in before.iter().zip(&d) {
            if *x != 2 {
                assert_eq!(x, y);
            }
        }
        let back = g.derive(drained, &nhs(&[1, 2, 3])).unwrap();
        assert_eq!(buckets(&g, back), before);
    }

    #[test]
    fn weights_give_proportional_shares() {
        let mut g = Groups::default();
        let a = g
            .fresh(&[NextHop::weighted(1, 3), NextHop::weighted(2, 1)])
            .unwrap();
        let c = counts(&buckets(&g, a));
        assert_eq!((c[&1], c[&2]), (192, 64));
    }

    #[test]
    fn no_live_member_says_so() {
        let mut g = Groups::default();
        let a = g.fresh(&nhs(&[7])).unwrap();
        g.set_state(NextHopId(7), false);
        let v = g.view(a).unwrap();
        assert_eq!(v.select(12345), None);
        assert!(v.buckets.is_empty());
        g.set_state(NextHopId(7), true);
        assert_eq!(g.view(a).unwrap().select(12345), Some(NextHopId(7)));
    }

    #[test]
    fn bad_sets_are_refused() {
        let mut g = Groups::default();
        assert_eq!(g.fresh(&[]), Err(FibError::NoNextHops));
        assert_eq!(g.fresh(&nhs(&[1, 1])), Err(FibError::DuplicateNextHop(1)));
        assert_eq!(
            g.fresh(&[NextHop::weighted(1, MAX_WEIGHT + 1)]),
            Err(FibError::Weight(MAX_WEIGHT + 1))
        );
    }

    #[test]
    fn released_groups_are_freed_and_reused() {
        let mut g = Groups::default();
        let a = g.fresh(&nhs(&[1])).unwrap();
        g.retain(a);
        g.release(a);
        assert_eq!(g.len(), 0);
        assert!(g.view(a).is_none());
        let b = g.fresh(&nhs(&[2])).unwrap();
        assert_eq!(a, b);
    }
}
