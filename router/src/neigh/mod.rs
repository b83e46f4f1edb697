//! The neighbour table: flatedge's view of the kernel's IPv6 neighbours
//! and links over rtnetlink, keeping configured next hops resolved.
//!
//! # Design
//!
//! A small **blocking** netlink client on one dedicated thread (no async
//! runtime: the daemon's control side has no tokio yet, the traffic is a
//! few messages a second, and raw `NETLINK_ROUTE` sockets keep the wire
//! handling in `msg` short and dependency free). [`NeighClient::start`]
//! opens its two sockets **in the calling thread's network namespace**
//! (call it after `setns` to watch another namespace), then:
//!
//! 1. subscribes the event socket to `RTMGRP_LINK | RTMGRP_NEIGH` first,
//!    then dumps the link table (ifindex → name, MAC, MTU, admin/carrier
//!    state) and the IPv6 neighbour table on the request socket, so no
//!    change falls between dump and subscription (an event overrun,
//!    `ENOBUFS`, triggers a full re-dump);
//! 2. applies every `RTM_NEWLINK`/`RTM_DELLINK`/`RTM_NEWNEIGH`/
//!    `RTM_DELNEIGH` event, publishing a fresh immutable
//!    [`NeighborTable`] through an `ArcSwap` (lock-free loads, like the
//!    dataplane's adjacency table) and sending [`NeighEvent`]s to every
//!    [`NeighClient::subscribe`]r; IPv6 address changes
//!    (`RTM_NEWADDR`/`RTM_DELADDR`) are passed on as
//!    [`NeighEvent::Addresses`] only, for the daemon to read its
//!    addresses again;
//! 3. keeps next hops resolved: [`NeighClient::resolve`] adds a kernel
//!    neighbour entry for `(address, ifindex)`. It first asks for a
//!    *managed* entry (`NDA_FLAGS_EXT` = `NTF_EXT_MANAGED`, Linux 5.16+:
//!    the kernel itself keeps it resolved and re-probes it); if netlink
//!    refuses, it falls back to `NUD_NONE` + `NTF_USE` (which only kicks
//!    one resolution), and the client re-kicks such entries every second
//!    while they are missing, failed or incomplete. Which one was
//!    accepted is returned ([`ResolveMode`]) and kept on the next hop.
//!
//! [`NeighborTable::adjacency`] turns a next hop into the dataplane's
//! [`Adjacency`].
//!
//! # Liveness
//!
//! Kernel timers call a silent neighbour failed after 20 s or more, so
//! flatedge probes its next hops itself ([`probe`]: echo requests from a
//! raw ICMPv6 socket bound to the port, a few misses in a row = down, up
//! again on the first answer). The daemon keeps those verdicts in its
//! next-hop table and ANDs them with carrier; the [`NextHop::liveness`]
//! field of this table stays [`Liveness::Unknown`], and
//! [`NextHop::is_usable`] relies on carrier and the kernel's state.

mod msg;
pub mod probe;
mod sock;

use std::collections::BTreeMap;
use std::io;
use std::net::Ipv6Addr;
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;

use crate::dataplane::ip6_rewrite::Adjacency;
use crate::dataplane::verdict::PortIndex;
use msg::Msg;
use sock::{NlSocket, Wake};

pub use probe::{LivenessEvent, ProbeConfig, Prober};

/// A next hop: its address and the interface (ifindex) it sits behind.
pub type NextHopKey = (Ipv6Addr, u32);

/// The kernel's neighbour state (`NUD_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NeighState {
    /// `NUD_NONE`: created, nothing done yet.
    None,
    /// Resolution under way.
    Incomplete,
    /// Confirmed recently.
    Reachable,
    /// Known MAC, not confirmed recently (still usable).
    Stale,
    /// Stale and used, confirmation pending.
    Delay,
    /// Being re-probed.
    Probe,
    /// Resolution failed.
    Failed,
    /// No resolution needed on this link.
    Noarp,
    /// Static entry.
    Permanent,
}

impl NeighState {
    fn from_nud(s: u16) -> NeighState {
        // The kernel sets exactly one bit.
        match s {
            0x01 => NeighState::Incomplete,
            0x02 => NeighState::Reachable,
            0x04 => NeighState::Stale,
            0x08 => NeighState::Delay,
            0x10 => NeighState::Probe,
            0x20 => NeighState::Failed,
            0x40 => NeighState::Noarp,
            0x80 => NeighState::Permanent,
            _ => NeighState::None,
        }
    }

    /// The MAC may be used to forward (`NUD_VALID`).
    pub fn is_valid(self) -> bool {
        matches!(
            self,
            NeighState::Reachable
                | NeighState::Stale
                | NeighState::Delay
                | NeighState::Probe
                | NeighState::Noarp
                | NeighState::Permanent
        )
    }

    /// An operator's permanent entry, or one on a link without
    /// resolution: flatedge leaves it as it is.
    pub fn is_fixed(self) -> bool {
        matches!(self, NeighState::Permanent | NeighState::Noarp)
    }
}

/// One link (interface) of the namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// Interface index.
    pub ifindex: u32,
    /// Interface name.
    pub name: String,
    /// Its MAC (none for links without one, like `lo`... which has zeros).
    pub mac: Option<[u8; 6]>,
    /// MTU (IPv6 packet bytes).
    pub mtu: u32,
    /// `IFF_UP`: administratively up.
    pub admin_up: bool,
    /// `IFF_LOWER_UP` and `IFLA_CARRIER`: the link has carrier.
    pub carrier: bool,
    /// `IFLA_OPERSTATE` (RFC 2863: 6 = up, 2 = down, 7 = dormant...).
    pub oper_state: u8,
}

impl Link {
    /// Up and with carrier.
    pub fn is_up(&self) -> bool {
        self.admin_up && self.carrier
    }
}

/// One kernel IPv6 neighbour entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Neighbor {
    /// Its MAC, when the kernel has one.
    pub mac: Option<[u8; 6]>,
    /// The kernel's state.
    pub state: NeighState,
    /// A managed entry (`NTF_EXT_MANAGED`).
    pub managed: bool,
    /// The kernel called it `FAILED` since it was last resolved: stays
    /// set while a new attempt runs (`INCOMPLETE`), which a re-kick starts
    /// within milliseconds of the failure, so that the daemon, looking
    /// later, still sees that it failed.
    pub gave_up: bool,
}

/// How the kernel was asked to keep a next hop resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResolveMode {
    /// A managed entry (`NTF_EXT_MANAGED`): the kernel keeps it resolved.
    Managed,
    /// `NUD_NONE` + `NTF_USE`, re-kicked by the client while unresolved.
    Use,
}

/// A liveness verdict on a next hop (the prober's, `probe.rs`; the
/// daemon keeps the verdicts in its next-hop table).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Liveness {
    /// Not probed.
    Unknown,
    /// Answering probes.
    Up,
    /// Missed too many probes.
    Down,
}

/// A tracked next hop, as the dataplane needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NextHop {
    /// The neighbour's MAC: `Some` only while the state is valid.
    pub mac: Option<[u8; 6]>,
    /// The kernel's state (`None` while the kernel has no entry).
    pub state: NeighState,
    /// The egress link is up with carrier.
    pub link_up: bool,
    /// How it is kept resolved.
    pub mode: ResolveMode,
    /// flatedge's probing verdict.
    pub liveness: Liveness,
    /// The kernel called it `FAILED` since it was last resolved
    /// ([`Neighbor::gave_up`]).
    pub gave_up: bool,
}

impl NextHop {
    /// Forwarding to it can work: resolved, link up, not probed down.
    pub fn is_usable(&self) -> bool {
        self.mac.is_some() && self.link_up && self.liveness != Liveness::Down
    }
}

/// One immutable snapshot of links, neighbours and tracked next hops.
#[derive(Debug, Clone, Default)]
pub struct NeighborTable {
    /// Bumped on each published change.
    pub generation: u64,
    /// Links by ifindex.
    pub links: BTreeMap<u32, Link>,
    /// Every kernel IPv6 neighbour entry.
    pub neighbors: BTreeMap<NextHopKey, Neighbor>,
    /// The next hops given to [`NeighClient::resolve`].
    pub nexthops: BTreeMap<NextHopKey, NextHop>,
}

impl NeighborTable {
    /// The link with this ifindex.
    pub fn link(&self, ifindex: u32) -> Option<&Link> {
        self.links.get(&ifindex)
    }

    /// The link with this name.
    pub fn link_by_name(&self, name: &str) -> Option<&Link> {
        self.links.values().find(|l| l.name == name)
    }

    /// A tracked next hop.
    pub fn nexthop(&self, addr: Ipv6Addr, ifindex: u32) -> Option<&NextHop> {
        self.nexthops.get(&(addr, ifindex))
    }

    /// The dataplane adjacency for a next hop on `port` (the AF_XDP port
    /// of `ifindex`): resolved only when [`NextHop::is_usable`].
    pub fn adjacency(&self, addr: Ipv6Addr, ifindex: u32, port: PortIndex) -> Adjacency {
        let link = self.link(ifindex);
        let nh = self.nexthop(addr, ifindex);
        let usable = nh.map(NextHop::is_usable).unwrap_or(false);
        Adjacency {
            port,
            src_mac: link.and_then(|l| l.mac).unwrap_or_default(),
            dst_mac: nh.and_then(|n| n.mac).unwrap_or_default(),
            mtu: link.map(|l| l.mtu).unwrap_or(0),
            resolved: usable && link.is_some_and(|l| l.mac.is_some()),
            glean: false,
            unreachable: false,
        }
    }

    fn nexthop_view(&self, key: NextHopKey, mode: ResolveMode) -> NextHop {
        let n = self.neighbors.get(&key);
        let state = n.map(|n| n.state).unwrap_or(NeighState::None);
        NextHop {
            mac: n.filter(|n| n.state.is_valid()).and_then(|n| n.mac),
            state,
            link_up: self.links.get(&key.1).is_some_and(Link::is_up),
            mode,
            liveness: Liveness::Unknown,
            gave_up: n.is_some_and(|n| n.gave_up),
        }
    }
}

/// A change, sent to subscribers after it is in the published table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NeighEvent {
    /// A link appeared or changed (carrier, admin state, MTU, MAC...).
    Link(Link),
    /// A link went away.
    LinkDeleted(u32),
    /// A kernel neighbour entry changed (`None`: deleted).
    Neighbor(NextHopKey, Option<Neighbor>),
    /// A tracked next hop's view changed.
    NextHop(NextHopKey, NextHop),
    /// The table was re-dumped (after an event overrun).
    Resync,
    /// An IPv6 address was added or removed on some interface: the
    /// router's own addresses and connected subnets are to be read again
    /// (the event says only that).
    Addresses,
}

/// Errors of the neighbour client.
#[derive(Debug, thiserror::Error)]
pub enum NeighError {
    /// A socket call failed.
    #[error("netlink {op}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The error.
        source: io::Error,
    },
    /// The kernel refused a request.
    #[error("netlink {op}: {} (errno {errno}){}", io::Error::from_raw_os_error(*errno), message.as_deref().map(|m| format!(": {m}")).unwrap_or_default())]
    Kernel {
        /// What was being done.
        op: &'static str,
        /// The errno.
        errno: i32,
        /// The kernel's extack message.
        message: Option<String>,
    },
    /// The client's thread is gone.
    #[error("neighbour client stopped")]
    Stopped,
}

enum Cmd {
    Resolve(NextHopKey, Sender<Result<ResolveMode, NeighError>>),
    Forget(NextHopKey),
    Release(NextHopKey),
    Recheck(NextHopKey),
    Subscribe(Sender<NeighEvent>),
}

/// The running client: a handle on its thread (stopped on drop).
#[derive(Debug)]
pub struct NeighClient {
    table: Arc<ArcSwap<NeighborTable>>,
    cmd: Option<Sender<Cmd>>,
    /// Wakes the thread for a command (it also wakes every 20 ms).
    wake: Arc<Wake>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Cmd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Cmd")
    }
}

impl NeighClient {
    /// Opens the sockets in the caller's network namespace, dumps links
    /// and neighbours, and starts the client thread.
    pub fn start() -> Result<NeighClient, NeighError> {
        let ev = NlSocket::open(msg::GROUPS).map_err(|source| NeighError::Io {
            op: "open event socket",
            source,
        })?;
        let req = NlSocket::open(0).map_err(|source| NeighError::Io {
            op: "open request socket",
            source,
        })?;
        for (s, t) in [(&ev, EVENT_WAIT), (&req, Duration::from_secs(2))] {
            s.set_recv_timeout(t).map_err(|source| NeighError::Io {
                op: "SO_RCVTIMEO",
                source,
            })?;
        }
        let table = Arc::new(ArcSwap::from_pointee(NeighborTable::default()));
        let mut w = Worker::new(ev, req, table.clone());
        // A dump interrupted by a change (interfaces coming and going, as
        // on a busy node) is taken again, as the thread does later.
        let mut tries = 0;
        loop {
            match w.resync() {
                Ok(()) => break,
                Err(NeighError::Kernel {
                    errno: libc::EINTR, ..
                }) if tries < START_DUMP_TRIES => {
                    tries += 1;
                    std::thread::sleep(RESYNC_RETRY);
                }
                Err(e) => return Err(e),
            }
        }
        w.publish();
        let (tx, rx) = mpsc::channel();
        let wake = Arc::new(Wake::new().map_err(|source| NeighError::Io {
            op: "eventfd",
            source,
        })?);
        let waker = wake.clone();
        let thread = std::thread::Builder::new()
            .name("flatedge-neigh".into())
            .spawn(move || w.run(rx, &waker))
            .map_err(|source| NeighError::Io {
                op: "spawn",
                source,
            })?;
        Ok(NeighClient {
            table,
            cmd: Some(tx),
            wake,
            thread: Some(thread),
        })
    }

    /// The current snapshot.
    pub fn table(&self) -> Arc<NeighborTable> {
        self.table.load_full()
    }

    /// The shared snapshot handle (for other threads).
    pub fn shared_table(&self) -> Arc<ArcSwap<NeighborTable>> {
        self.table.clone()
    }

    /// A stream of changes from now on.
    pub fn subscribe(&self) -> Result<Receiver<NeighEvent>, NeighError> {
        let (tx, rx) = mpsc::channel();
        self.send(Cmd::Subscribe(tx))?;
        Ok(rx)
    }

    /// Tracks `addr` on `ifindex` as a next hop and asks the kernel to
    /// resolve it and keep it resolved; returns what netlink accepted.
    pub fn resolve(&self, addr: Ipv6Addr, ifindex: u32) -> Result<ResolveMode, NeighError> {
        let (tx, rx) = mpsc::channel();
        self.send(Cmd::Resolve((addr, ifindex), tx))?;
        rx.recv().map_err(|_| NeighError::Stopped)?
    }

    /// Stops tracking a next hop (the kernel entry stays and ages out).
    pub fn forget(&self, addr: Ipv6Addr, ifindex: u32) -> Result<(), NeighError> {
        self.send(Cmd::Forget((addr, ifindex)))
    }

    /// Stops tracking a next hop and deletes its kernel entry when it is
    /// the managed one resolving made (the kernel never garbage-collects
    /// those); a permanent entry, or an ordinary one, stays.
    pub fn release(&self, addr: Ipv6Addr, ifindex: u32) -> Result<(), NeighError> {
        self.send(Cmd::Release((addr, ifindex)))
    }

    /// The prober says a tracked next hop stopped answering: if the
    /// kernel still holds a MAC for it (an ordinary or managed entry),
    /// that entry is deleted and resolved afresh. A node replaced by one
    /// with another MAC (which Linux does not announce by default)
    /// answers only at its new MAC: without this the kernel kept the old
    /// one until its own timers ran out, 20 to 50 s. An operator's
    /// permanent entry stays; an unresolved one is kicked anyway.
    pub fn recheck(&self, addr: Ipv6Addr, ifindex: u32) -> Result<(), NeighError> {
        self.send(Cmd::Recheck((addr, ifindex)))
    }

    fn send(&self, c: Cmd) -> Result<(), NeighError> {
        self.cmd
            .as_ref()
            .ok_or(NeighError::Stopped)?
            .send(c)
            .map_err(|_| NeighError::Stopped)?;
        self.wake.wake();
        Ok(())
    }
}

impl Drop for NeighClient {
    fn drop(&mut self) {
        // Closing the channel stops the thread once woken.
        drop(self.cmd.take());
        self.wake.wake();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The neighbour thread's longest wait for an event or a command.
const EVENT_WAIT: Duration = Duration::from_millis(20);

/// Event datagrams the neighbour thread takes before it publishes.
const MAX_DATAGRAMS: usize = 256;

/// Interrupted dumps the client takes again at start before it gives up.
const START_DUMP_TRIES: u32 = 50;

/// Event datagrams thrown away at most after an overrun, before the
/// re-dump.
const MAX_DRAINED: usize = 1 << 16;

/// How long after a failed re-dump the client tries again.
const RESYNC_RETRY: Duration = Duration::from_millis(100);

/// A tracked next hop's resolution bookkeeping.
#[derive(Debug)]
struct Tracked {
    mode: ResolveMode,
    last_kick: Instant,
}

/// How often unresolved next hops are re-kicked.
const KICK_INTERVAL: Duration = Duration::from_secs(1);

struct Worker {
    ev: NlSocket,
    req: NlSocket,
    seq: u32,
    buf: Vec<u8>,
    state: NeighborTable,
    tracked: BTreeMap<NextHopKey, Tracked>,
    subscribers: Vec<Sender<NeighEvent>>,
    shared: Arc<ArcSwap<NeighborTable>>,
    /// The kernel refused a managed entry once: use `NTF_USE` only.
    managed_refused: bool,
}

impl Worker {
    fn new(ev: NlSocket, req: NlSocket, shared: Arc<ArcSwap<NeighborTable>>) -> Worker {
        Worker {
            ev,
            req,
            seq: 1,
            buf: vec![0; 1 << 16],
            state: NeighborTable::default(),
            tracked: BTreeMap::new(),
            subscribers: Vec::new(),
            shared,
            managed_refused: false,
        }
    }

    /// Applies the event datagrams queued (at most [`MAX_DATAGRAMS`]).
    /// Returns true if the socket overran (events were lost): then it has
    /// also thrown away every datagram queued before the overrun, since
    /// the re-dump that must follow is newer than all of them (applied
    /// after it, an old "link down" would overwrite the dump's "up").
    fn read_events(&mut self, ebuf: &mut [u8], events: &mut Vec<NeighEvent>) -> bool {
        for _ in 0..MAX_DATAGRAMS {
            match self.ev.recv_nowait(ebuf) {
                Ok(n) => {
                    for m in msg::messages(&ebuf[..n]) {
                        self.apply(&m, events);
                    }
                }
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                    self.drain_events(ebuf);
                    return true;
                }
                Err(e) => {
                    if e.kind() != std::io::ErrorKind::WouldBlock {
                        eprintln!("flatedge: neighbour events: {e}");
                    }
                    break;
                }
            }
        }
        false
    }

    /// Throws away the event datagrams queued, up to a bound (under a
    /// flood that outruns it, the re-dump still comes after the oldest).
    fn drain_events(&mut self, ebuf: &mut [u8]) {
        for _ in 0..MAX_DRAINED {
            match self.ev.recv_nowait(ebuf) {
                Ok(_) => {}
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {}
                Err(_) => break,
            }
        }
    }

    fn run(mut self, rx: Receiver<Cmd>, wake: &Wake) {
        let mut ebuf = vec![0u8; 1 << 16];
        // When to re-dump the tables (events were lost; retried until a
        // dump works).
        let mut resync_due: Option<Instant> = None;
        loop {
            loop {
                match rx.try_recv() {
                    Ok(c) => self.command(c),
                    Err(mpsc::TryRecvError::Empty) => break,
                    Err(mpsc::TryRecvError::Disconnected) => {
                        // The daemon is stopping: the kernel would keep
                        // (and keep probing) our managed entries forever.
                        let keys: Vec<NextHopKey> = self.tracked.keys().copied().collect();
                        for key in keys {
                            self.release(key);
                        }
                        return;
                    }
                }
            }
            let mut events = Vec::new();
            // Kernel events, or a command (the loop's top takes it), or
            // 20 ms (unresolved next hops are kicked, a re-dump retried).
            let ready = match self.ev.wait(wake, EVENT_WAIT) {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("flatedge: neighbour thread poll: {e}");
                    std::thread::sleep(EVENT_WAIT);
                    false
                }
            };
            // Every datagram queued, up to a bound, published once: a
            // publish copies the whole table, so one per datagram made a
            // burst of events quadratic (and the socket overran).
            if ready && self.read_events(&mut ebuf, &mut events) {
                // Events were lost: re-dump, now and until it works.
                resync_due = Some(Instant::now());
            }
            if resync_due.is_some_and(|t| Instant::now() >= t) {
                match self.resync() {
                    Ok(()) => {
                        resync_due = None;
                        events.push(NeighEvent::Resync);
                    }
                    Err(e) => {
                        eprintln!("flatedge: neighbour table re-dump: {e}; retrying");
                        resync_due = Some(Instant::now() + RESYNC_RETRY);
                    }
                }
            }
            self.kick_unresolved();
            if !events.is_empty() {
                self.publish_with(events);
            }
        }
    }

    fn command(&mut self, c: Cmd) {
        match c {
            Cmd::Subscribe(tx) => self.subscribers.push(tx),
            Cmd::Forget(key) => {
                self.tracked.remove(&key);
                self.publish();
            }
            Cmd::Release(key) => {
                self.release(key);
                self.publish();
            }
            Cmd::Recheck(key) => self.recheck(key),
            Cmd::Resolve(key, reply) => {
                let r = self.request_resolve(key);
                if let Ok(mode) = r {
                    self.track(key, mode);
                    let view = self.state.nexthop_view(key, mode);
                    self.publish_with(vec![NeighEvent::NextHop(key, view)]);
                }
                let _ = reply.send(r);
            }
        }
    }

    /// Managed first (unless refused before), then `NTF_USE`.
    /// Stops tracking `key` and deletes the managed entry resolving made
    /// (the kernel never ages those out); an operator's permanent entry,
    /// or an ordinary one (aged out by the kernel), stays. Managed by the
    /// resolve's own account as well as by what the table shows: the
    /// kernel may not have told of the new entry yet.
    fn release(&mut self, key: NextHopKey) {
        let mode = self.tracked.remove(&key).map(|t| t.mode);
        let seen = self.state.neighbors.get(&key);
        let fixed = seen.is_some_and(|n| n.state.is_fixed());
        let managed = mode == Some(ResolveMode::Managed) || seen.is_some_and(|n| n.managed);
        if !managed || fixed {
            return;
        }
        if let Err(e) = self.delete_entry(key, "RTM_DELNEIGH") {
            eprintln!("flatedge: neighbour {}: {e}", key.0);
        }
    }

    /// Deletes the kernel's entry for `key`; one already gone is fine.
    fn delete_entry(&mut self, key: NextHopKey, what: &'static str) -> Result<(), NeighError> {
        let seq = self.next_seq();
        let m = msg::delete_neigh(seq, key.0, key.1);
        match self.transact(what, &m, |_| {}) {
            Ok(())
            | Err(NeighError::Kernel {
                errno: libc::ENOENT,
                ..
            }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Tracks `key`, resolved in `mode` just now.
    fn track(&mut self, key: NextHopKey, mode: ResolveMode) {
        self.tracked.insert(
            key,
            Tracked {
                mode,
                last_kick: Instant::now(),
            },
        );
    }

    /// See [`NeighClient::recheck`]. The kernel's events (the entry gone,
    /// then resolving) reach the subscribers as any others do.
    fn recheck(&mut self, key: NextHopKey) {
        if !self.tracked.contains_key(&key) {
            return;
        }
        let Some(n) = self.state.neighbors.get(&key) else {
            return;
        };
        if !n.state.is_valid() || n.state.is_fixed() {
            return;
        }
        if let Err(e) = self.delete_entry(key, "RTM_DELNEIGH recheck") {
            eprintln!("flatedge: neighbour {}: {e}", key.0);
            return;
        }
        match self.request_resolve(key) {
            Ok(mode) => self.track(key, mode),
            // Kicked again within KICK_INTERVAL.
            Err(e) => eprintln!("flatedge: neighbour {}: resolve again: {e}", key.0),
        }
    }

    fn request_resolve(&mut self, (addr, ifindex): NextHopKey) -> Result<ResolveMode, NeighError> {
        // An operator's permanent entry (or one on a link without
        // resolution) is left as it is: asking for a managed entry
        // replaced it with an unresolved one, MAC gone.
        let fixed = self
            .state
            .neighbors
            .get(&(addr, ifindex))
            .is_some_and(|n| n.state.is_fixed());
        if fixed {
            return Ok(ResolveMode::Use);
        }
        let mut refused = false;
        if !self.managed_refused {
            let seq = self.next_seq();
            let m = msg::resolve_neigh(seq, addr, ifindex, true);
            match self.transact("RTM_NEWNEIGH managed", &m, |_| {}) {
                Ok(()) => return Ok(ResolveMode::Managed),
                Err(NeighError::Kernel { errno, .. })
                    if errno == libc::EINVAL || errno == libc::EOPNOTSUPP =>
                {
                    refused = true;
                }
                Err(e) => return Err(e),
            }
        }
        let seq = self.next_seq();
        let m = msg::resolve_neigh(seq, addr, ifindex, false);
        self.transact("RTM_NEWNEIGH use", &m, |_| {})?;
        // The kernel has no managed entries, if it takes the plain request
        // on the same device: one that refuses both (no IPv6 on it, as
        // below an MTU of 1280) says nothing about the others.
        self.managed_refused |= refused;
        Ok(ResolveMode::Use)
    }

    /// Re-kicks `NTF_USE` next hops (and managed ones whose entry the
    /// kernel dropped, e.g. a flush on carrier loss) that are unresolved.
    fn kick_unresolved(&mut self) {
        let now = Instant::now();
        let due: Vec<(NextHopKey, ResolveMode)> = self
            .tracked
            .iter()
            .filter(|(_, t)| now.duration_since(t.last_kick) >= KICK_INTERVAL)
            .filter(|(k, t)| {
                let n = self.state.neighbors.get(k);
                let link_up = self.state.links.get(&k.1).is_some_and(Link::is_up);
                let resolved = n.is_some_and(|n| n.state.is_valid());
                let _ = t;
                link_up && !resolved
            })
            .map(|(k, t)| (*k, t.mode))
            .collect();
        for (key, mode) in due {
            let seq = self.next_seq();
            // Re-creates the entry if a carrier loss flushed it; NTF_USE
            // restarts resolution of a NONE or FAILED entry.
            let m = msg::resolve_neigh(seq, key.0, key.1, mode == ResolveMode::Managed);
            let _ = self.transact("RTM_NEWNEIGH kick", &m, |_| {});
            if let Some(t) = self.tracked.get_mut(&key) {
                t.last_kick = now;
            }
        }
    }

    /// Makes the matching tracked next hops due for a kick.
    fn kick_now(&mut self, which: impl Fn(&NextHopKey) -> bool) {
        let now = Instant::now();
        let due = now.checked_sub(KICK_INTERVAL).unwrap_or(now);
        for (k, t) in self.tracked.iter_mut() {
            if which(k) {
                t.last_kick = due;
            }
        }
    }

    fn next_seq(&mut self) -> u32 {
        self.seq = self.seq.wrapping_add(1);
        self.seq
    }

    /// Sends a request and reads replies up to its `NLMSG_DONE` or ack.
    fn transact(
        &mut self,
        op: &'static str,
        req: &[u8],
        mut each: impl FnMut(&Msg<'_>),
    ) -> Result<(), NeighError> {
        let seq = u32::from_ne_bytes([req[8], req[9], req[10], req[11]]);
        self.req
            .send(req)
            .map_err(|source| NeighError::Io { op, source })?;
        let mut interrupted = false;
        loop {
            let n = self
                .req
                .recv(&mut self.buf)
                .map_err(|source| NeighError::Io { op, source })?;
            for m in msg::messages(&self.buf[..n]) {
                if m.seq != seq {
                    continue;
                }
                interrupted |= m.flags & msg::NLM_F_DUMP_INTR != 0;
                match m.ty {
                    // A dump that failed part way, or changed while it
                    // ran: the caller must not take it for the whole.
                    msg::NLMSG_DONE => {
                        let errno = match msg::done_errno(&m) {
                            0 if interrupted => libc::EINTR,
                            e => e,
                        };
                        return if errno == 0 {
                            Ok(())
                        } else {
                            Err(NeighError::Kernel {
                                op,
                                errno,
                                message: interrupted.then(|| "dump interrupted".to_string()),
                            })
                        };
                    }
                    msg::NLMSG_ERROR => {
                        let (err, message) = msg::error(&m);
                        return if err == 0 {
                            Ok(())
                        } else {
                            Err(NeighError::Kernel {
                                op,
                                errno: -err,
                                message,
                            })
                        };
                    }
                    _ => each(&m),
                }
            }
        }
    }

    /// Replaces links and neighbours by fresh dumps.
    fn resync(&mut self) -> Result<(), NeighError> {
        let mut links = BTreeMap::new();
        let seq = self.next_seq();
        self.transact("dump links", &msg::dump_link(seq), |m| {
            if m.ty == msg::RTM_NEWLINK {
                if let Some(l) = msg::parse_link(m.payload) {
                    links.insert(l.ifindex, link_of(l));
                }
            }
        })?;
        let mut neighbors = BTreeMap::new();
        let prev = self.state.neighbors.clone();
        let seq = self.next_seq();
        self.transact("dump neighbours", &msg::dump_neigh(seq), |m| {
            if m.ty == msg::RTM_NEWNEIGH {
                if let Some(n) = msg::parse_neigh(m.payload) {
                    let key = (n.addr, n.ifindex);
                    neighbors.insert(key, neighbor_of(&n, prev.get(&key)));
                }
            }
        })?;
        self.state.links = links;
        self.state.neighbors = neighbors;
        Ok(())
    }

    /// Applies one event message, noting what changed.
    fn apply(&mut self, m: &Msg<'_>, events: &mut Vec<NeighEvent>) {
        match m.ty {
            msg::RTM_NEWLINK => {
                if let Some(l) = msg::parse_link(m.payload) {
                    let l = link_of(l);
                    let was_up = self.state.links.get(&l.ifindex).is_some_and(Link::is_up);
                    if l.is_up() && !was_up {
                        // Carrier back: re-resolve its next hops now (the
                        // kernel flushed their entries on carrier loss).
                        self.kick_now(|k| k.1 == l.ifindex);
                    }
                    if self.state.links.get(&l.ifindex) != Some(&l) {
                        self.state.links.insert(l.ifindex, l.clone());
                        events.push(NeighEvent::Link(l));
                    }
                }
            }
            msg::RTM_DELLINK => {
                if let Some(l) = msg::parse_link(m.payload) {
                    if self.state.links.remove(&l.ifindex).is_some() {
                        events.push(NeighEvent::LinkDeleted(l.ifindex));
                    }
                }
            }
            msg::RTM_NEWNEIGH => {
                if let Some(n) = msg::parse_neigh(m.payload) {
                    let key = (n.addr, n.ifindex);
                    let v = neighbor_of(&n, self.state.neighbors.get(&key));
                    if self.state.neighbors.get(&key) != Some(&v) {
                        self.state.neighbors.insert(key, v);
                        events.push(NeighEvent::Neighbor(key, Some(v)));
                    }
                }
            }
            msg::RTM_DELNEIGH => {
                if let Some(n) = msg::parse_neigh(m.payload) {
                    let key = (n.addr, n.ifindex);
                    self.kick_now(|k| *k == key);
                    if self.state.neighbors.remove(&key).is_some() {
                        events.push(NeighEvent::Neighbor(key, None));
                    }
                }
            }
            // Only IPv6 addresses are subscribed to (RTMGRP_IPV6_IFADDR).
            msg::RTM_NEWADDR | msg::RTM_DELADDR if !events.contains(&NeighEvent::Addresses) => {
                events.push(NeighEvent::Addresses);
            }
            _ => {}
        }
    }

    fn publish(&mut self) {
        self.publish_with(Vec::new());
    }

    /// Recomputes the next hops, publishes the snapshot, then tells the
    /// subscribers (`events`, plus every next hop whose view changed).
    fn publish_with(&mut self, mut events: Vec<NeighEvent>) {
        let old = std::mem::take(&mut self.state.nexthops);
        let mut nexthops = BTreeMap::new();
        let named: std::collections::BTreeSet<NextHopKey> = events
            .iter()
            .filter_map(|e| match e {
                NeighEvent::NextHop(k, _) => Some(*k),
                _ => None,
            })
            .collect();
        for (key, t) in &self.tracked {
            let v = self.state.nexthop_view(*key, t.mode);
            if old.get(key) != Some(&v) && !named.contains(key) {
                events.push(NeighEvent::NextHop(*key, v));
            }
            nexthops.insert(*key, v);
        }
        self.state.nexthops = nexthops;
        self.state.generation += 1;
        self.shared.store(Arc::new(self.state.clone()));
        self.subscribers
            .retain(|s| events.iter().all(|e| s.send(e.clone()).is_ok()));
    }
}

fn link_of(l: msg::LinkMsg) -> Link {
    Link {
        ifindex: l.ifindex,
        name: l.name,
        mac: l.mac,
        mtu: l.mtu,
        admin_up: l.admin_up,
        carrier: l.carrier,
        oper_state: l.oper_state,
    }
}

/// The entry `n` reports, `prev` the one it replaces (for `gave_up`).
fn neighbor_of(n: &msg::NeighMsg, prev: Option<&Neighbor>) -> Neighbor {
    let state = NeighState::from_nud(n.state);
    let gave_up = match state {
        NeighState::Failed => true,
        s if s.is_valid() => false,
        _ => prev.is_some_and(|p| p.gave_up),
    };
    Neighbor {
        mac: n.mac,
        state,
        managed: n.managed,
        gave_up,
    }
}

#[cfg(test)]
mod tests;
