//! Next hops: the ids the FIB's groups hold, and the adjacency table the
//! workers index with them.
//!
//! Two kinds share one id space: a *neighbour* (an address on a connected
//! subnet behind one interface: a static route's `via`, or a host found by
//! glean) and a *glean* entry per interface (a connected subnet: packets
//! to it are dropped as `neighbor_miss` and their destinations handed back
//! here to be resolved). Each id counts the routes using it; a neighbour
//! nobody uses may be released, and its id is reused only after
//! [`REUSE_AFTER`], long after any worker dropped the adjacency table and
//! FIB snapshot it loaded for a batch, so no packet can take a reused id
//! for the old neighbour.

use std::collections::{BTreeMap, VecDeque};
use std::net::Ipv6Addr;
use std::time::{Duration, Instant};

use fib::NextHopId;

use crate::dataplane::{Adjacency, PortIndex};
use crate::neigh::{Liveness, NeighState, NeighborTable};

/// How long a released id rests before it is reused.
pub const REUSE_AFTER: Duration = Duration::from_secs(1);

/// A dataplane port: its interface and where the config put it.
#[derive(Debug, Clone)]
pub struct PortInfo {
    /// Interface name.
    pub name: String,
    /// Kernel ifindex.
    pub ifindex: u32,
    /// The MTU the config imposes (`None`: the link's own).
    pub mtu: Option<u32>,
}

impl PortInfo {
    /// The MTU the dataplane enforces on this port given the link's own
    /// (`None`: the link is unknown): a configured MTU lowers the link's,
    /// never raises it, as the link would drop what is longer. 0 when
    /// neither is known.
    pub fn effective_mtu(&self, link: Option<u32>) -> u32 {
        match (self.mtu, link) {
            (Some(c), Some(l)) => c.min(l),
            (c, l) => c.or(l).unwrap_or(0),
        }
    }
}

/// What an id stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A neighbour `addr` behind port `port`.
    Neighbor {
        /// Its address.
        addr: Ipv6Addr,
    },
    /// The connected subnets of port `port`.
    Glean,
    /// Routes we own but do not forward (aggregates): ICMPv6 unreachable.
    Unreachable,
}

/// One next hop.
#[derive(Debug, Clone, Copy)]
pub struct Entry {
    /// What it is.
    pub kind: Kind,
    /// The egress port (index into the workers' port list and `ports`).
    pub port: PortIndex,
    /// Probing verdict (probed next hops only; others stay `Unknown`).
    pub liveness: Liveness,
    /// The prober watches it (static and BGP next hops; gleaned hosts
    /// are not probed).
    pub probed: bool,
    /// Routes using it.
    pub refs: u32,
}

/// The registry of next hops.
#[derive(Debug, Default)]
pub struct NextHops {
    entries: Vec<Entry>,
    by_neighbor: BTreeMap<(Ipv6Addr, PortIndex), NextHopId>,
    glean: BTreeMap<PortIndex, NextHopId>,
    /// Released ids and when, oldest first.
    free: VecDeque<(NextHopId, Instant)>,
    unreachable: Option<NextHopId>,
}

/// The state `show neighbors` and `show fib` report for a next hop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HopState {
    /// Resolved, link up, not probed down.
    Up,
    /// Link down or probed down.
    Down,
    /// No MAC yet.
    Unresolved,
}

impl NextHops {
    /// The id of neighbour `addr` behind `port`, allocated on first use;
    /// `true` when it is new.
    pub fn neighbor(&mut self, addr: Ipv6Addr, port: PortIndex) -> (NextHopId, bool) {
        if let Some(&id) = self.by_neighbor.get(&(addr, port)) {
            return (id, false);
        }
        let id = self.push(Kind::Neighbor { addr }, port);
        self.by_neighbor.insert((addr, port), id);
        (id, true)
    }

    /// The one unreachable id, allocated on first use.
    pub fn unreachable(&mut self) -> NextHopId {
        if let Some(id) = self.unreachable {
            return id;
        }
        let id = self.push(Kind::Unreachable, 0);
        self.unreachable = Some(id);
        id
    }

    /// The glean id of `port`, allocated on first use.
    pub fn glean(&mut self, port: PortIndex) -> NextHopId {
        if let Some(&id) = self.glean.get(&port) {
            return id;
        }
        let id = self.push(Kind::Glean, port);
        self.glean.insert(port, id);
        id
    }

    fn push(&mut self, kind: Kind, port: PortIndex) -> NextHopId {
        let e = Entry {
            kind,
            port,
            liveness: Liveness::Unknown,
            probed: false,
            refs: 0,
        };
        if let Some(&(id, at)) = self.free.front() {
            if at.elapsed() >= REUSE_AFTER {
                self.free.pop_front();
                self.entries[id.0 as usize] = e;
                return id;
            }
        }
        self.entries.push(e);
        NextHopId((self.entries.len() - 1) as u32)
    }

    /// One more route uses `id`.
    pub fn retain(&mut self, id: NextHopId) {
        if let Some(e) = self.entries.get_mut(id.0 as usize) {
            e.refs += 1;
        }
    }

    /// One route less uses `id`; returns the references left.
    pub fn unref(&mut self, id: NextHopId) -> u32 {
        match self.entries.get_mut(id.0 as usize) {
            Some(e) => {
                e.refs = e.refs.saturating_sub(1);
                e.refs
            }
            None => 0,
        }
    }

    /// Forgets an unused neighbour: its id is reused after
    /// [`REUSE_AFTER`]. Returns its address and port, or `None` (and does
    /// nothing) when it is used, a glean entry or unknown.
    pub fn release(&mut self, id: NextHopId) -> Option<(Ipv6Addr, PortIndex)> {
        let e = *self.entries.get(id.0 as usize)?;
        let Kind::Neighbor { addr } = e.kind else {
            return None;
        };
        if e.refs > 0 || self.by_neighbor.get(&(addr, e.port)) != Some(&id) {
            return None;
        }
        self.by_neighbor.remove(&(addr, e.port));
        // Unreachable until reused: an unknown kind on no port.
        self.entries[id.0 as usize] = Entry {
            kind: Kind::Glean,
            port: PortIndex::MAX,
            ..e
        };
        self.free.push_back((id, Instant::now()));
        Some((addr, e.port))
    }

    /// An entry.
    pub fn get(&self, id: NextHopId) -> Option<&Entry> {
        self.entries.get(id.0 as usize)
    }

    /// The id of a known neighbour.
    pub fn find(&self, addr: Ipv6Addr, port: PortIndex) -> Option<NextHopId> {
        self.by_neighbor.get(&(addr, port)).copied()
    }

    /// Whether `id` is a neighbour the prober watches.
    pub fn probed(&self, id: NextHopId) -> bool {
        self.get(id).is_some_and(|e| e.probed)
    }

    /// Marks a neighbour as watched by the prober; `true` if it was not.
    pub fn set_probed(&mut self, id: NextHopId) -> bool {
        match self.entries.get_mut(id.0 as usize) {
            Some(e) if matches!(e.kind, Kind::Neighbor { .. }) && !e.probed => {
                e.probed = true;
                true
            }
            _ => false,
        }
    }

    /// Sets a probed neighbour's verdict; `false` (and nothing changes)
    /// if it is unknown or not probed: a verdict the prober sent before
    /// the neighbour was released must not reach a new, unprobed entry
    /// for the same address (no later verdict would undo it).
    pub fn set_liveness(&mut self, addr: Ipv6Addr, port: PortIndex, l: Liveness) -> bool {
        match self.by_neighbor.get(&(addr, port)) {
            Some(id) if self.entries[id.0 as usize].probed => {
                self.entries[id.0 as usize].liveness = l;
                true
            }
            _ => false,
        }
    }

    /// Every neighbour: id, address, port.
    pub fn neighbors(&self) -> impl Iterator<Item = (NextHopId, Ipv6Addr, PortIndex)> + '_ {
        self.by_neighbor
            .iter()
            .map(|(&(addr, port), &id)| (id, addr, port))
    }

    /// The adjacency of one entry given the kernel's view.
    pub fn adjacency(&self, id: NextHopId, ports: &[PortInfo], t: &NeighborTable) -> Adjacency {
        let Some(e) = self.get(id) else {
            return Adjacency::default();
        };
        let Some(p) = ports.get(usize::from(e.port)) else {
            return Adjacency::default();
        };
        let link = t.link(p.ifindex);
        let mtu = p.effective_mtu(link.map(|l| l.mtu));
        match e.kind {
            Kind::Unreachable => Adjacency {
                unreachable: true,
                ..Adjacency::default()
            },
            Kind::Glean => Adjacency {
                port: e.port,
                src_mac: link.and_then(|l| l.mac).unwrap_or_default(),
                mtu,
                glean: true,
                unreachable: false,
                ..Adjacency::default()
            },
            Kind::Neighbor { addr } => {
                let mut a = t.adjacency(addr, p.ifindex, e.port);
                a.mtu = mtu;
                a.resolved &= e.liveness != Liveness::Down;
                a
            }
        }
    }

    /// The whole adjacency table, indexed by id.
    pub fn adjacencies(&self, ports: &[PortInfo], t: &NeighborTable) -> Vec<Adjacency> {
        (0..self.entries.len())
            .map(|i| self.adjacency(NextHopId(i as u32), ports, t))
            .collect()
    }

    /// The state of a neighbour for the CLI.
    pub fn state(&self, id: NextHopId, ports: &[PortInfo], t: &NeighborTable) -> HopState {
        let Some(e) = self.get(id) else {
            return HopState::Unresolved;
        };
        let Some(p) = ports.get(usize::from(e.port)) else {
            return HopState::Unresolved;
        };
        let Kind::Neighbor { addr } = e.kind else {
            return HopState::Unresolved;
        };
        let link_up = t.link(p.ifindex).is_some_and(|l| l.is_up());
        let nh = t.nexthop(addr, p.ifindex);
        let resolved = nh.is_some_and(|n| n.mac.is_some());
        if !link_up || e.liveness == Liveness::Down {
            HopState::Down
        } else if resolved {
            HopState::Up
        } else {
            HopState::Unresolved
        }
    }

    /// Whether the kernel gave up on a neighbour (`FAILED`, or a new
    /// attempt since that has not succeeded yet).
    pub fn failed(&self, id: NextHopId, ports: &[PortInfo], t: &NeighborTable) -> bool {
        let Some(e) = self.get(id) else { return false };
        let (Kind::Neighbor { addr }, Some(p)) = (e.kind, ports.get(usize::from(e.port))) else {
            return false;
        };
        t.nexthop(addr, p.ifindex)
            .is_some_and(|n| n.state == NeighState::Failed || n.gave_up)
    }

    /// Number of ids.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// No ids yet.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_configured_mtu_lowers_the_links_never_raises_it() {
        let port = |mtu| PortInfo {
            name: "e0".into(),
            ifindex: 2,
            mtu,
        };
        // What `show interfaces` and the adjacencies (Packet Too Big) use.
        assert_eq!(port(Some(1500)).effective_mtu(Some(1400)), 1400);
        assert_eq!(port(Some(1280)).effective_mtu(Some(9000)), 1280);
        assert_eq!(port(None).effective_mtu(Some(9000)), 9000);
        assert_eq!(port(Some(1500)).effective_mtu(None), 1500);
        assert_eq!(port(None).effective_mtu(None), 0);
    }

    #[test]
    fn ids_are_stable_and_kinds_separate() {
        let mut n = NextHops::default();
        let a: Ipv6Addr = "2001:db8:1::2".parse().unwrap();
        let (x, new) = n.neighbor(a, 1);
        assert!(new);
        assert_eq!(n.neighbor(a, 1), (x, false));
        let (y, _) = n.neighbor(a, 2);
        assert_ne!(x, y);
        let g = n.glean(1);
        assert_eq!(n.glean(1), g);
        assert_ne!(g, x);
        assert_eq!(n.get(g).unwrap().kind, Kind::Glean);
        assert_eq!(n.find(a, 2), Some(y));
        assert!(n.set_probed(x));
        assert!(!n.set_probed(x), "already probed");
        assert!(!n.set_probed(g), "only neighbours are probed");
        assert!(n.set_liveness(a, 1, Liveness::Down));
        assert!(!n.set_liveness("2001:db8::9".parse().unwrap(), 1, Liveness::Down));
        assert_eq!(n.len(), 3);
    }

    #[test]
    fn only_unused_neighbors_are_released_and_ids_rest_before_reuse() {
        let mut n = NextHops::default();
        let a: Ipv6Addr = "2001:db8:1::2".parse().unwrap();
        let (x, _) = n.neighbor(a, 1);
        n.retain(x);
        assert_eq!(n.release(x), None, "in use");
        assert_eq!(n.unref(x), 0);
        assert_eq!(n.release(x), Some((a, 1)));
        assert_eq!(n.find(a, 1), None);
        assert_eq!(n.release(x), None, "already released");
        let g = n.glean(0);
        assert_eq!(n.release(g), None, "glean entries stay");
        // Too early to reuse x: a new neighbour gets a new id.
        let (y, new) = n.neighbor("2001:db8:1::3".parse().unwrap(), 1);
        assert!(new);
        assert_ne!(y, x);
        std::thread::sleep(REUSE_AFTER);
        let (z, _) = n.neighbor("2001:db8:1::4".parse().unwrap(), 1);
        assert_eq!(z, x, "rested long enough");
        assert_eq!(
            n.get(z).unwrap().kind,
            Kind::Neighbor {
                addr: "2001:db8:1::4".parse().unwrap()
            }
        );
    }

    #[test]
    fn adjacencies_follow_the_kernel_and_liveness() {
        use crate::neigh::{Link, NeighState, Neighbor};
        let mut n = NextHops::default();
        let a: Ipv6Addr = "2001:db8:1::2".parse().unwrap();
        let (id, _) = n.neighbor(a, 0);
        let g = n.glean(0);
        let ports = vec![PortInfo {
            name: "k8s0".into(),
            ifindex: 7,
            mtu: Some(1400),
        }];
        let mut t = NeighborTable::default();
        t.links.insert(
            7,
            Link {
                ifindex: 7,
                name: "k8s0".into(),
                mac: Some([2, 0, 0, 0, 0, 1]),
                mtu: 1500,
                admin_up: true,
                carrier: true,
                oper_state: 6,
            },
        );
        // Not tracked yet: unresolved.
        assert!(!n.adjacency(id, &ports, &t).resolved);
        assert_eq!(n.state(id, &ports, &t), HopState::Unresolved);
        t.neighbors.insert(
            (a, 7),
            Neighbor {
                mac: Some([2, 0, 0, 0, 0, 2]),
                state: NeighState::Reachable,
                managed: true,
                gave_up: false,
            },
        );
        t.nexthops.insert(
            (a, 7),
            crate::neigh::NextHop {
                mac: Some([2, 0, 0, 0, 0, 2]),
                state: NeighState::Reachable,
                link_up: true,
                mode: crate::neigh::ResolveMode::Managed,
                liveness: Liveness::Unknown,
                gave_up: false,
            },
        );
        assert!(!n.failed(id, &ports, &t));
        let adj = n.adjacency(id, &ports, &t);
        assert!(adj.resolved);
        assert_eq!(adj.mtu, 1400);
        // Configured above the link's 1500: the link's.
        let mut above = ports.clone();
        above[0].mtu = Some(1700);
        assert_eq!(n.adjacency(id, &above, &t).mtu, 1500);
        assert_eq!(adj.dst_mac, [2, 0, 0, 0, 0, 2]);
        assert_eq!(n.state(id, &ports, &t), HopState::Up);
        assert!(n.set_probed(id));
        assert!(n.set_liveness(a, 0, Liveness::Down));
        assert!(!n.adjacency(id, &ports, &t).resolved);
        assert_eq!(n.state(id, &ports, &t), HopState::Down);
        let ga = n.adjacency(g, &ports, &t);
        assert!(ga.glean && !ga.resolved);
        assert_eq!(ga.src_mac, [2, 0, 0, 0, 0, 1]);
        assert_eq!(n.adjacencies(&ports, &t).len(), 2);
        // The kernel gave up and a re-kick started a new attempt: still
        // failed until it resolves.
        let hop = t.nexthops.get_mut(&(a, 7)).unwrap();
        (hop.state, hop.mac, hop.gave_up) = (NeighState::Incomplete, None, true);
        assert!(n.failed(id, &ports, &t));
        t.nexthops.get_mut(&(a, 7)).unwrap().gave_up = false;
        assert!(!n.failed(id, &ports, &t));
    }

    /// A Down verdict the prober sent before its neighbour was released
    /// arrives after the same address came back unprobed (a gleaned
    /// host): it must not pin the new entry down.
    #[test]
    fn a_late_verdict_does_not_reach_an_unprobed_entry() {
        let mut n = NextHops::default();
        let a: Ipv6Addr = "2001:db8:1::2".parse().unwrap();
        let (x, _) = n.neighbor(a, 1);
        assert!(n.set_probed(x));
        assert_eq!(n.release(x), Some((a, 1)));
        let (y, new) = n.neighbor(a, 1);
        assert!(new);
        assert!(!n.set_liveness(a, 1, Liveness::Down));
        assert_eq!(n.get(y).unwrap().liveness, Liveness::Unknown);
        // Unprobed from the start: the same.
        let (z, _) = n.neighbor("2001:db8:1::3".parse().unwrap(), 1);
        assert!(!n.set_liveness("2001:db8:1::3".parse().unwrap(), 1, Liveness::Down));
        assert_eq!(n.get(z).unwrap().liveness, Liveness::Unknown);
    }
}
