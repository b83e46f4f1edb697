//! The decision process (RFC 4271 section 9.1) and multipath.
//!
//! Paths are ranked by [`compare`], an `Ord` chain with one `then_with`
//! per RFC step:
//!
//! 1. highest degree of preference (LOCAL_PREF, section 9.1.1);
//! 2. shortest AS_PATH (9.1.2.2 a; a set counts 1);
//! 3. lowest ORIGIN (b);
//! 4. lowest MULTI_EXIT_DISC among routes from the same neighbouring AS
//!    (c; a missing MED is 0), or among all routes with
//!    `always_compare_med`;
//! 5. external over internal (d);
//! 6. (IGP cost to the next hop, e: every next hop is on a connected
//!    link, so this step never decides);
//! 7. lowest BGP identifier of the peer (f);
//! 8. lowest peer address (g).
//!
//! Step 4 is not a total order as such (MEDs of different neighbouring
//! ASes are not comparable), so it compares a *rank* computed over the
//! candidates first, as RFC 4271 section 9.1.2.2 (c) describes: a path
//! ranks 1 if another path from its neighbouring AS that ties it on
//! steps 1-3 has a lower MED, else 0. That keeps the chain a total order
//! (safe to sort) and the result independent of arrival order.
//!
//! Paths whose next hop does not resolve ([`NextHopReach`]: not on one of
//! the router's connected subnets) take no part (RFC 4271 section 9.1.2):
//! they go last, and a prefix whose paths all have one has no best path.
//!
//! Multipath: the best path and the paths from other peers that tie it on
//! steps 1-5 form the ECMP set, in rank order, up to `max_paths`; unless
//! `as_path_relax` is set, their AS_PATHs must also be identical (the
//! relax option keeps only the length, which step 2 already compares).

use core::cmp::Ordering;

use ipnet::Ipv6Net;

use super::{Path, RouteAttrs};
use crate::policy::ResolvedNextHop;
use crate::wire::Asn;

/// Which next hops resolve: global ones on one of the router's connected
/// subnets, link-local ones on one of its interfaces (the ones it
/// forwards on); by default (a speaker with no dataplane), every one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NextHopReach {
    /// `None`: every next hop resolves.
    links: Option<(Vec<Ipv6Net>, Vec<u32>)>,
}

impl NextHopReach {
    /// Global next hops must be on one of `subnets`, link-local ones on
    /// one of the interfaces `ifindexes`.
    pub fn on(subnets: Vec<Ipv6Net>, ifindexes: Vec<u32>) -> NextHopReach {
        NextHopReach {
            links: Some((subnets, ifindexes)),
        }
    }

    /// Whether `nh` resolves.
    pub fn usable(&self, nh: &ResolvedNextHop) -> bool {
        match (&self.links, nh.ifindex) {
            (None, _) => true,
            (Some((_, ifindexes)), Some(i)) => ifindexes.contains(&i),
            (Some((subnets, _)), None) => subnets.iter().any(|n| n.contains(&nh.addr)),
        }
    }
}

/// Multipath and MED options.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecisionConfig {
    /// The most paths in an ECMP set (1 disables multipath).
    pub max_paths: usize,
    /// Paths with different AS_PATHs of the same length may share an ECMP
    /// set.
    pub as_path_relax: bool,
    /// Compare MED between paths from different neighbouring ASes.
    pub always_compare_med: bool,
}

impl Default for DecisionConfig {
    fn default() -> Self {
        DecisionConfig {
            max_paths: 16,
            as_path_relax: false,
            always_compare_med: false,
        }
    }
}

/// Why a path is not the best path, or not in the ECMP set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LossReason {
    /// Lower LOCAL_PREF.
    LocalPref,
    /// Longer AS_PATH.
    AsPathLength,
    /// Higher ORIGIN.
    Origin,
    /// Higher MED than a path from the same neighbouring AS.
    Med,
    /// Internal, and an external path exists.
    EbgpOverIbgp,
    /// Higher peer BGP identifier.
    RouterId,
    /// Higher peer address.
    PeerAddress,
    /// Ties the best path but its AS_PATH differs (multipath without
    /// AS-path relax).
    MultipathAsPathDiffers,
    /// Ties the best path but the ECMP set is full.
    MultipathLimit,
    /// Its next hop is on none of the router's connected subnets: it
    /// takes no part in the decision (RFC 4271 section 9.1.2).
    NextHopUnreachable,
}

impl LossReason {
    /// The decision steps, in order.
    pub const STEPS: [LossReason; 7] = [
        LossReason::LocalPref,
        LossReason::AsPathLength,
        LossReason::Origin,
        LossReason::Med,
        LossReason::EbgpOverIbgp,
        LossReason::RouterId,
        LossReason::PeerAddress,
    ];

    /// The steps a multipath member must tie the best path on.
    pub const MULTIPATH_STEPS: [LossReason; 5] = [
        LossReason::LocalPref,
        LossReason::AsPathLength,
        LossReason::Origin,
        LossReason::Med,
        LossReason::EbgpOverIbgp,
    ];
}

impl core::fmt::Display for LossReason {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            LossReason::LocalPref => "lower local preference",
            LossReason::AsPathLength => "longer AS path",
            LossReason::Origin => "higher origin",
            LossReason::Med => "higher MED from the same neighbouring AS",
            LossReason::EbgpOverIbgp => "internal path, an external one exists",
            LossReason::RouterId => "higher router id",
            LossReason::PeerAddress => "higher peer address",
            LossReason::MultipathAsPathDiffers => "equal cost but a different AS path",
            LossReason::MultipathLimit => "equal cost but the ECMP set is full",
            LossReason::NextHopUnreachable => "next hop on no connected subnet",
        })
    }
}

/// Where a path stands for its prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PathStatus {
    /// The best path (first next hop of the RibChange).
    Best,
    /// In the ECMP set, not the best.
    Multipath,
    /// Neither, and why.
    NotSelected(LossReason),
}

/// The per-prefix context of the MED step.
#[derive(Debug, Default)]
pub(crate) struct MedContext {
    always: bool,
    /// The lowest MED per neighbouring AS among the paths that tie the
    /// best on steps 1-3.
    mins: Vec<(Option<Asn>, u32)>,
}

impl MedContext {
    pub(crate) fn new(paths: &[Path], cfg: &DecisionConfig) -> MedContext {
        let mut ctx = MedContext {
            always: cfg.always_compare_med,
            mins: Vec::new(),
        };
        if ctx.always || paths.len() < 2 {
            return ctx;
        }
        let key = |a: &RouteAttrs| (core::cmp::Reverse(a.local_pref), a.as_path_len, a.origin);
        let Some(top) = paths.iter().map(|p| key(&p.attrs)).min() else {
            return ctx;
        };
        for p in paths.iter().filter(|p| key(&p.attrs) == top) {
            let med = p.attrs.med.unwrap_or(0);
            match ctx
                .mins
                .iter_mut()
                .find(|(asn, _)| *asn == p.attrs.neighbor_as)
            {
                Some((_, m)) => *m = (*m).min(med),
                None => ctx.mins.push((p.attrs.neighbor_as, med)),
            }
        }
        ctx
    }

    fn rank(&self, a: &RouteAttrs) -> u32 {
        let med = a.med.unwrap_or(0);
        if self.always {
            return med;
        }
        let min = self
            .mins
            .iter()
            .find(|(asn, _)| *asn == a.neighbor_as)
            .map_or(med, |(_, m)| *m);
        u32::from(med > min)
    }
}

/// One decision step: `Less` if `a` is better.
pub(crate) fn step(s: LossReason, a: &RouteAttrs, b: &RouteAttrs, med: &MedContext) -> Ordering {
    match s {
        LossReason::LocalPref => b.local_pref.cmp(&a.local_pref),
        LossReason::AsPathLength => a.as_path_len.cmp(&b.as_path_len),
        LossReason::Origin => a.origin.cmp(&b.origin),
        LossReason::Med => med.rank(a).cmp(&med.rank(b)),
        LossReason::EbgpOverIbgp => a.ibgp.cmp(&b.ibgp),
        LossReason::RouterId => a.peer_router_id.cmp(&b.peer_router_id),
        LossReason::PeerAddress => a.peer_address.cmp(&b.peer_address),
        LossReason::MultipathAsPathDiffers
        | LossReason::MultipathLimit
        | LossReason::NextHopUnreachable => Ordering::Equal,
    }
}

/// The decision process as an `Ord` chain, one `then_with` per step:
/// `Less` if `a` is the better path.
pub(crate) fn compare(a: &RouteAttrs, b: &RouteAttrs, med: &MedContext) -> Ordering {
    use LossReason::*;
    step(LocalPref, a, b, med)
        .then_with(|| step(AsPathLength, a, b, med))
        .then_with(|| step(Origin, a, b, med))
        .then_with(|| step(Med, a, b, med))
        .then_with(|| step(EbgpOverIbgp, a, b, med))
        .then_with(|| step(RouterId, a, b, med))
        .then_with(|| step(PeerAddress, a, b, med))
}

/// Whether `p` may join `best` in an ECMP set.
fn multipath_equal(
    best: &RouteAttrs,
    p: &RouteAttrs,
    med: &MedContext,
    cfg: &DecisionConfig,
) -> bool {
    LossReason::MULTIPATH_STEPS
        .iter()
        .all(|&s| step(s, best, p, med) == Ordering::Equal)
        && (cfg.as_path_relax || best.as_path == p.as_path)
}

/// Sorts `paths` best first and returns the size of the ECMP set (its
/// leading paths; 0 when no next hop resolves). Paths whose next hop does
/// not resolve go last, ranked among themselves (for `show route`).
/// Paths come from distinct peers (no ADD-PATH).
pub(crate) fn select(paths: &mut [Path], cfg: &DecisionConfig, reach: &NextHopReach) -> usize {
    let usable = partition(paths, |p| reach.usable(&p.attrs.next_hop));
    rank(&mut paths[usable..], cfg);
    rank(&mut paths[..usable], cfg)
}

/// Moves the paths for which `keep` holds to the front (in any order);
/// returns how many.
fn partition(paths: &mut [Path], keep: impl Fn(&Path) -> bool) -> usize {
    let mut n = 0;
    for i in 0..paths.len() {
        if keep(&paths[i]) {
            paths.swap(n, i);
            n += 1;
        }
    }
    n
}

/// [`select`] among paths that all resolve.
fn rank(paths: &mut [Path], cfg: &DecisionConfig) -> usize {
    if paths.len() < 2 {
        return paths.len();
    }
    let med = MedContext::new(paths, cfg);
    paths.sort_unstable_by(|a, b| compare(&a.attrs, &b.attrs, &med).then(a.peer.cmp(&b.peer)));
    let best = paths[0].attrs.clone();
    // Every path the best may share traffic with, moved up behind it in
    // order: a path that ties on the earlier steps but not for multipath
    // (another AS path) may sort between two members (by router id), and
    // must not end the set there.
    let mut n = 1;
    for i in 1..paths.len() {
        if n >= cfg.max_paths {
            break;
        }
        if multipath_equal(&best, &paths[i].attrs, &med, cfg) {
            paths[n..=i].rotate_right(1);
            n += 1;
        }
    }
    n
}

/// The status of every path of `paths`, which `select` has sorted and
/// whose ECMP set is the first `n`.
pub(crate) fn statuses(
    paths: &[Path],
    n: usize,
    cfg: &DecisionConfig,
    reach: &NextHopReach,
) -> Vec<PathStatus> {
    let usable = paths
        .iter()
        .take_while(|p| reach.usable(&p.attrs.next_hop))
        .count();
    let med = MedContext::new(&paths[..usable], cfg);
    paths
        .iter()
        .enumerate()
        .map(|(i, p)| match i {
            i if i >= usable => PathStatus::NotSelected(LossReason::NextHopUnreachable),
            0 => PathStatus::Best,
            i if i < n => PathStatus::Multipath,
            _ => PathStatus::NotSelected(why_lost(&paths[0].attrs, &p.attrs, &med, cfg)),
        })
        .collect()
}

fn why_lost(
    best: &RouteAttrs,
    p: &RouteAttrs,
    med: &MedContext,
    cfg: &DecisionConfig,
) -> LossReason {
    let first_difference = |steps: &[LossReason]| {
        steps
            .iter()
            .copied()
            .find(|&s| step(s, best, p, med) != Ordering::Equal)
    };
    if let Some(s) = first_difference(&LossReason::MULTIPATH_STEPS) {
        return s;
    }
    if cfg.max_paths > 1 {
        if !cfg.as_path_relax && best.as_path != p.as_path {
            return LossReason::MultipathAsPathDiffers;
        }
        return LossReason::MultipathLimit;
    }
    first_difference(&LossReason::STEPS).unwrap_or(LossReason::PeerAddress)
}
