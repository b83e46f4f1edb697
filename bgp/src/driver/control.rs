//! The control task: every peer's sessions, the RIB, the timers. It runs
//! the driver loop of the crate docs; the I/O tasks only report to it.
//!
//! Inputs are queued and handled one at a time ([`Control::run_queue`]),
//! so that an output that produces an input for another session (a
//! collision's loser, a RIB teardown) never re-enters a session that is
//! still being handled.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::{Ipv6Addr, SocketAddr, SocketAddrV6};
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ipnet::Ipv6Net;

use bytes::Bytes;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::{AbortHandle, JoinSet};

use super::io::{self, ConnId, Internal, WriteCmd};
use super::sockopt;
use super::{
    AdminAction, AdminError, Command, Event, PeerSettings, PeerSummary, ReconfigureError,
    SpeakerConfig,
};
use crate::export::{advertisements, withdrawals, ExportSession};
use crate::fsm::{
    resolve_collision, Direction, Input, Output, Session, SessionConfig, State, Survivor, Teardown,
    Timer,
};
use crate::policy::PrefixList;
use crate::rib::{PeerConfig, PeerId, Rib, RibChange, RibOutput, RibTimer};
use crate::wire::{
    Afi, CeaseSubcode, Header, Message, NotificationRepr, RouteRefreshRepr, RouteRefreshSubtype,
    Safi,
};

/// Identifies one `Session` (a peer has one or two).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) struct SlotKey(u64);

/// A timer the control task armed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum TimerKey {
    Session(PeerId, SlotKey, Timer),
    Rib(RibTimer),
}

const SESSION_TIMERS: [Timer; 4] = [
    Timer::ConnectRetry,
    Timer::Hold,
    Timer::Keepalive,
    Timer::IdleHold,
];

/// Most changes in one [`Event::Changes`].
const CHANGES_PER_EVENT: usize = 1024;

/// Capacity of the channel from the I/O tasks.
const INTERNAL_CAPACITY: usize = 4096;

#[derive(Debug)]
struct Slot {
    key: SlotKey,
    session: Session,
    conn: Option<ConnId>,
}

#[derive(Debug)]
struct Peer {
    id: PeerId,
    address: Ipv6Addr,
    settings: Arc<PeerSettings>,
    dynamic: bool,
    passive: bool,
    primary: Slot,
    /// A second connection (collision, or a restarted peer).
    secondary: Option<Slot>,
    /// The connect attempt in flight: (attempt, its slot, its task).
    connecting: Option<(u64, SlotKey, AbortHandle)>,
    /// The primary's state as last reported.
    reported: State,
    established_at: Option<Instant>,
    /// When the session last came up or went down (or the peer was
    /// added): FRR's Up/Down.
    changed_at: Instant,
}

impl Peer {
    fn slot_mut(&mut self, key: SlotKey) -> Option<&mut Slot> {
        if self.primary.key == key {
            Some(&mut self.primary)
        } else {
            self.secondary.as_mut().filter(|s| s.key == key)
        }
    }

    fn slot(&self, key: SlotKey) -> Option<&Slot> {
        if self.primary.key == key {
            Some(&self.primary)
        } else {
            self.secondary.as_ref().filter(|s| s.key == key)
        }
    }
}

/// Bytes queued for one connection's socket at most (see `send`).
const MAX_QUEUED: usize = 8 << 20;

#[derive(Debug)]
struct Conn {
    peer: PeerId,
    slot: SlotKey,
    writer: mpsc::UnboundedSender<WriteCmd>,
    /// Bytes handed to the writer and not yet written.
    queued: Arc<AtomicUsize>,
    local: Ipv6Addr,
}

struct Control {
    config: SpeakerConfig,
    /// The listening socket (a duplicate descriptor), for its MD5 keys
    /// and GTSM when the configuration changes.
    listener: Option<OwnedFd>,
    /// Addresses the operator disabled (not dialled, connections
    /// refused): by address, so it outlives the peer's re-creation (a
    /// reload that changes its settings, a dynamic peer forgotten with
    /// its range).
    disabled: HashSet<Ipv6Addr>,
    /// [`Event::ListenLimit`] was reported and the limit still holds.
    listen_limit_reported: bool,
    rib: Rib,
    peers: HashMap<PeerId, Peer>,
    by_addr: HashMap<Ipv6Addr, PeerId>,
    conns: HashMap<ConnId, Conn>,
    timers: HashMap<TimerKey, (u64, AbortHandle)>,
    next_id: u64,
    internal: mpsc::Sender<Internal>,
    events: mpsc::Sender<Event>,
    queue: VecDeque<(PeerId, SlotKey, Input)>,
    /// Slots to drop once their queued input is handled.
    doomed: HashSet<SlotKey>,
    touched: Vec<PeerId>,
    pending: Vec<Event>,
    changes: Vec<RibChange>,
    writers: JoinSet<()>,
}

pub(super) async fn run(
    config: SpeakerConfig,
    listener: TcpListener,
    events: mpsc::Sender<Event>,
    mut commands: mpsc::Receiver<Command>,
) {
    let (internal, mut internal_rx) = mpsc::channel(INTERNAL_CAPACITY);
    let listener_fd = listener.as_fd().try_clone_to_owned().ok();
    let accept = tokio::spawn(io::accept_loop(listener, internal.clone()));
    let mut c = Control {
        listener: listener_fd,
        disabled: HashSet::new(),
        listen_limit_reported: false,
        rib: Rib::new(config.rib.clone()),
        config,
        peers: HashMap::new(),
        by_addr: HashMap::new(),
        conns: HashMap::new(),
        timers: HashMap::new(),
        next_id: 0,
        internal,
        events,
        queue: VecDeque::new(),
        doomed: HashSet::new(),
        touched: Vec::new(),
        pending: Vec::new(),
        changes: Vec::new(),
        writers: JoinSet::new(),
    };
    c.rib.set_next_hop_reach(c.config.next_hop_reach.clone());
    let neighbors = c.config.neighbors.clone();
    for n in neighbors {
        c.add_peer(n.address, Arc::new(n.settings), false, n.passive);
    }
    c.run_queue();
    c.flush().await;
    loop {
        tokio::select! {
            cmd = commands.recv() => match cmd {
                Some(Command::Peers(tx)) => {
                    let _ = tx.send(c.summaries());
                }
                Some(Command::Routes(prefix, max, tx)) => {
                    let views = match prefix {
                        Some(p) => c.rib.route(&p).into_iter().collect(),
                        None => c.rib.route_views(max),
                    };
                    let _ = tx.send(views);
                }
                Some(Command::Admin(address, action, tx)) => {
                    let _ = tx.send(c.admin(address, action));
                }
                Some(Command::Reconfigure(config, tx)) => {
                    let _ = tx.send(c.reconfigure(*config));
                }
                Some(Command::NextHopReach(reach)) => {
                    c.rib.set_next_hop_reach(reach);
                }
                Some(Command::Resend(prefixes)) => {
                    // A prefix without a selected path has nothing to send:
                    // an empty change would read as a withdrawal and take
                    // out whatever the caller installed meanwhile.
                    for chunk in prefixes.chunks(CHANGES_PER_EVENT) {
                        let batch: Vec<RibChange> = chunk
                            .iter()
                            .map(|p| c.rib.selected(p))
                            .filter(|ch| !ch.nexthops.is_empty())
                            .collect();
                        if !batch.is_empty() {
                            let _ = c.events.send(Event::Changes(batch)).await;
                        }
                    }
                }
                Some(Command::Shutdown(done)) => {
                    accept.abort();
                    c.shutdown().await;
                    let _ = done.send(());
                    return;
                }
                None => {
                    accept.abort();
                    c.shutdown().await;
                    return;
                }
            },
            Some(msg) = internal_rx.recv() => c.internal(msg),
            Some(_) = c.writers.join_next(), if !c.writers.is_empty() => {}
        }
        c.flush().await;
    }
}

impl Control {
    fn next(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    fn session_config(&self, s: &PeerSettings) -> SessionConfig {
        let mut c = SessionConfig::new(self.config.local_asn, self.config.router_id, s.peer_asn);
        c.hold_time = s.hold_time;
        c.connect_retry = s.connect_retry;
        c.graceful_restart = s.graceful_restart;
        c
    }

    fn add_peer(
        &mut self,
        address: Ipv6Addr,
        settings: Arc<PeerSettings>,
        dynamic: bool,
        passive: bool,
    ) -> PeerId {
        let mut pc = PeerConfig::new(address, settings.peer_asn);
        pc.import = settings.import.clone();
        pc.max_prefix_idle = settings.max_prefix_idle;
        let id = self.rib.add_peer(pc);
        let key = SlotKey(self.next());
        let session = Session::new(self.session_config(&settings));
        let disabled = self.disabled.contains(&address);
        self.peers.insert(
            id,
            Peer {
                id,
                address,
                settings,
                dynamic,
                passive,
                primary: Slot {
                    key,
                    session,
                    conn: None,
                },
                secondary: None,
                connecting: None,
                reported: State::Idle,
                established_at: None,
                changed_at: Instant::now(),
            },
        );
        self.by_addr.insert(address, id);
        if !disabled {
            let start = if passive {
                Input::ManualStartPassive
            } else {
                Input::ManualStart
            };
            self.queue.push_back((id, key, start));
        }
        id
    }

    fn internal(&mut self, msg: Internal) {
        match msg {
            Internal::Accepted(stream, remote) => self.accepted(stream, remote),
            Internal::Connected {
                peer,
                attempt,
                result,
            } => self.connected(peer, attempt, result),
            Internal::Data { conn, bytes } => self.data(conn, bytes),
            Internal::FrameError { conn, error } => {
                if let Some(c) = self.conns.get(&conn) {
                    self.queue
                        .push_back((c.peer, c.slot, Input::DecodeError(error)));
                    self.run_queue();
                }
            }
            Internal::Closed { conn } => {
                if let Some(c) = self.conns.get(&conn) {
                    self.queue.push_back((c.peer, c.slot, Input::TcpClosed));
                    self.run_queue();
                }
                // Whatever the FSM made of it, the connection is gone.
                if let Some(c) = self.conns.remove(&conn) {
                    let _ = c.writer.send(WriteCmd::Close);
                    if let Some(slot) = self.peers.get_mut(&c.peer).and_then(|p| p.slot_mut(c.slot))
                    {
                        if slot.conn == Some(conn) {
                            slot.conn = None;
                        }
                    }
                    self.touch(c.peer);
                }
            }
            Internal::Timer { key, gen } => {
                if self.timers.get(&key).map(|t| t.0) != Some(gen) {
                    return;
                }
                self.timers.remove(&key);
                match key {
                    TimerKey::Session(peer, slot, t) => {
                        self.queue.push_back((peer, slot, Input::TimerExpired(t)));
                    }
                    TimerKey::Rib(t) => {
                        let out = self.rib.timer_expired(t);
                        self.rib_outputs(out);
                        // Its stale routes may have been its last.
                        let (RibTimer::Restart(id) | RibTimer::StalePath(id)) = t;
                        self.touch(id);
                    }
                }
                self.run_queue();
            }
        }
    }

    /// The peer a connection from `addr` belongs to: a neighbour, a known
    /// dynamic neighbour, or a new one if `addr` is in a listen range
    /// (while fewer than the listen limit exist).
    fn peer_for(&mut self, addr: Ipv6Addr) -> Option<PeerId> {
        if let Some(&id) = self.by_addr.get(&addr) {
            return Some(id);
        }
        // An IPv4 connection (on a dual-stack listener, as
        // ::ffff:a.b.c.d) comes only from a range inside ::ffff:0:0/96:
        // under a broader IPv6 range such as ::/0 it would escape the
        // range's MD5 key (Linux looks an IPv4 connection's key up among
        // IPv4 keys) and its GTSM (IPV6_MINHOPCOUNT does not apply to
        // it). A v4-mapped range gets neither yet either (its MD5 prefix
        // length would have to be counted in IPv4 bits, its GTSM set with
        // IP_TTL and IP_MINTTL): the daemon's config refuses such ranges.
        let v4 = addr.to_ipv4_mapped().is_some();
        let range = self.config.ranges.iter().find(|r| {
            // Inside ::ffff:0:0/96: a v4-mapped network, /96 or longer.
            let v4_range =
                r.range.prefix_len() >= 96 && r.range.network().to_ipv4_mapped().is_some();
            r.range.contains(&addr) && (!v4 || v4_range)
        })?;
        let settings = Arc::new(range.settings.clone());
        let dynamic = self.peers.values().filter(|p| p.dynamic).count();
        if dynamic >= self.config.listen_limit {
            if !std::mem::replace(&mut self.listen_limit_reported, true) {
                self.pending.push(Event::ListenLimit { address: addr });
            }
            return None;
        }
        self.listen_limit_reported = false;
        Some(self.add_peer(addr, settings, true, true))
    }

    /// Forgets a peer from a listen range that holds nothing any more, as
    /// FRR deletes a dynamic neighbour that goes down: no connection, no
    /// session timer (the idle hold after a teardown, such as
    /// max-prefixes', still refuses it), no routes (stale ones wait for its restart), not
    /// disabled by the operator (`enable` must find it). A port scan, a
    /// refused OPEN, or a node gone for good leaves nothing behind, so the
    /// listen limit counts live nodes only.
    fn forget_if_idle(&mut self, id: PeerId) {
        let Some(p) = self.peers.get(&id) else {
            return;
        };
        let idle = p.dynamic
            && p.primary.session.state() != State::Established
            && p.primary.conn.is_none()
            && p.secondary.is_none()
            && p.connecting.is_none()
            && !self.disabled.contains(&p.address)
            && !self
                .timers
                .keys()
                .any(|k| matches!(k, TimerKey::Session(i, _, _) if *i == id))
            && self.rib.peer_stats(id).is_some_and(|s| s.accepted == 0);
        if idle {
            self.forget_peer(id, CeaseSubcode::PeerDeconfigured);
        }
    }

    fn accepted(&mut self, stream: TcpStream, remote: SocketAddr) {
        let addr = match remote {
            SocketAddr::V6(a) => *a.ip(),
            SocketAddr::V4(a) => a.ip().to_ipv6_mapped(),
        };
        // Unknown sources are dropped, which closes the connection.
        let Some(id) = self.peer_for(addr) else {
            return;
        };
        let Some(peer) = self.peers.get(&id) else {
            return;
        };
        if self.disabled.contains(&addr) {
            return;
        }
        if let Some(hops) = peer.settings.ttl_security {
            if sockopt::set_gtsm(&stream, hops).is_err() {
                return;
            }
        }
        let Some(key) = self.slot_for_new_connection(id) else {
            return;
        };
        self.attach(id, key, stream);
        self.queue
            .push_back((id, key, Input::TcpConnected(Direction::Inbound)));
        self.run_queue();
    }

    /// The session a new connection of peer `id` goes to: the primary if
    /// it has no connection (an attempt of ours in flight is abandoned),
    /// else a new secondary; `None` if both are busy.
    fn slot_for_new_connection(&mut self, id: PeerId) -> Option<SlotKey> {
        let settings = Arc::clone(&self.peers.get(&id)?.settings);
        let config = self.session_config(&settings);
        let key = SlotKey(self.next());
        let peer = self.peers.get_mut(&id)?;
        let busy = matches!(
            peer.primary.session.state(),
            State::OpenSent | State::OpenConfirm | State::Established
        );
        if peer.primary.conn.is_none() && !busy {
            if let Some((_, _, h)) = peer.connecting.take() {
                h.abort();
            }
            return Some(peer.primary.key);
        }
        if peer.secondary.is_some() {
            return None;
        }
        let mut session = Session::new(config);
        // Passive start leaves Idle for Active without any output.
        let _ = session.handle(Input::ManualStartPassive);
        peer.secondary = Some(Slot {
            key,
            session,
            conn: None,
        });
        Some(key)
    }

    fn attach(&mut self, id: PeerId, key: SlotKey, stream: TcpStream) {
        let local = match stream.local_addr() {
            Ok(SocketAddr::V6(a)) => *a.ip(),
            Ok(SocketAddr::V4(a)) => a.ip().to_ipv6_mapped(),
            Err(_) => Ipv6Addr::UNSPECIFIED,
        };
        let _ = stream.set_nodelay(true);
        let (rd, wr) = stream.into_split();
        let conn = ConnId(self.next());
        let reader = tokio::spawn(io::reader(conn, rd, self.internal.clone()));
        let (wtx, wrx) = mpsc::unbounded_channel();
        let queued = Arc::new(AtomicUsize::new(0));
        self.writers.spawn(io::writer(
            conn,
            wr,
            wrx,
            queued.clone(),
            reader,
            self.internal.clone(),
        ));
        self.conns.insert(
            conn,
            Conn {
                peer: id,
                slot: key,
                writer: wtx,
                queued,
                local,
            },
        );
        if let Some(slot) = self.peers.get_mut(&id).and_then(|p| p.slot_mut(key)) {
            slot.conn = Some(conn);
        }
    }

    fn connected(&mut self, id: PeerId, attempt: u64, result: std::io::Result<TcpStream>) {
        let Some(peer) = self.peers.get_mut(&id) else {
            return;
        };
        let key = match &peer.connecting {
            Some((a, key, _)) if *a == attempt => *key,
            _ => return,
        };
        peer.connecting = None;
        let in_connect = peer
            .slot(key)
            .is_some_and(|s| s.conn.is_none() && s.session.state() == State::Connect);
        match result {
            Ok(stream) if in_connect => {
                self.attach(id, key, stream);
                self.queue
                    .push_back((id, key, Input::TcpConnected(Direction::Outbound)));
            }
            Ok(stream) => {
                // The peer's connection got there first: a collision.
                if let Some(key) = self.slot_for_new_connection(id) {
                    self.attach(id, key, stream);
                    self.queue
                        .push_back((id, key, Input::TcpConnected(Direction::Outbound)));
                }
            }
            Err(_) if in_connect => {
                self.queue.push_back((id, key, Input::TcpConnectionFails));
            }
            Err(_) => {}
        }
        self.run_queue();
    }

    /// Decodes and feeds whole messages one at a time: each is decoded
    /// with the context the previous one left (the OPEN changes it).
    fn data(&mut self, conn: ConnId, bytes: Bytes) {
        let mut at = 0;
        while at < bytes.len() {
            let Some(c) = self.conns.get(&conn) else {
                break;
            };
            let (id, key) = (c.peer, c.slot);
            let Some(slot) = self.peers.get(&id).and_then(|p| p.slot(key)) else {
                break;
            };
            let rest = &bytes[at..];
            let len = match Header::frame_len(rest, &FRAMING_CHECKED) {
                Ok(Some(len)) => len,
                _ => rest.len(),
            };
            let ctx = slot
                .session
                .negotiated()
                .map(|n| n.context)
                .unwrap_or_else(|| slot.session.codec_context());
            let input = match Message::parse(&rest[..len], &ctx) {
                Ok(m) => Input::Message(m),
                Err(e) => Input::DecodeError(e),
            };
            at += len;
            self.queue.push_back((id, key, input));
            self.run_queue();
        }
    }

    /// Handles queued inputs until none is left.
    /// Marks `id` for `flush` (its state reported, its forgetting
    /// considered), once.
    fn touch(&mut self, id: PeerId) {
        if !self.touched.contains(&id) {
            self.touched.push(id);
        }
    }

    fn run_queue(&mut self) {
        while let Some((id, key, input)) = self.queue.pop_front() {
            let doom = self.doomed.remove(&key);
            let Some(slot) = self.peers.get_mut(&id).and_then(|p| p.slot_mut(key)) else {
                continue;
            };
            let mut outputs = slot.session.handle(input);
            // An OPEN received: the collision, if any, is resolved before
            // anything is sent, and the losing connection gets its Cease
            // without the KEEPALIVE the FSM sent first (on it the peer
            // would go Established only to be torn down).
            if let Some(i) = outputs
                .iter()
                .position(|o| matches!(o, Output::OpenReceived { .. }))
            {
                let o = outputs.remove(i);
                self.output(id, key, o);
            }
            let lost = self.doomed.contains(&key);
            for o in outputs {
                if lost && matches!(o, Output::SendMessage(Message::Keepalive)) {
                    continue;
                }
                self.output(id, key, o);
            }
            // A secondary lives only as long as its connection: one that
            // failed before winning a collision (closed, a bad OPEN, its
            // OPEN timer) goes, or it would refuse the peer's every new
            // connection while the primary stays up.
            let failed = self
                .peers
                .get(&id)
                .and_then(|p| p.secondary.as_ref())
                .is_some_and(|s| {
                    s.key == key
                        && !matches!(
                            s.session.state(),
                            State::OpenSent | State::OpenConfirm | State::Established
                        )
                });
            if doom || failed {
                self.drop_secondary(id, key);
            }
            self.touch(id);
        }
    }

    fn output(&mut self, id: PeerId, key: SlotKey, o: Output) {
        match o {
            Output::Connect => self.connect(id, key),
            Output::SendMessage(m) => self.send(id, key, &m),
            Output::CloseTcp => self.close(id, key),
            Output::ArmTimer(t, d) => self.arm(TimerKey::Session(id, key, t), d),
            Output::CancelTimer(t) => self.cancel(TimerKey::Session(id, key, t)),
            Output::OpenReceived { .. } => self.collision(id, key),
            Output::Established(negotiated) => {
                let local = self
                    .peers
                    .get(&id)
                    .and_then(|p| p.slot(key))
                    .and_then(|s| s.conn)
                    .and_then(|c| self.conns.get(&c))
                    .map(|c| c.local);
                self.rib.set_local_address(id, local);
                let out = self.rib.peer_up(id, &negotiated);
                self.rib_outputs(out);
                self.send_exports(id, key);
                if let Some(peer) = self.peers.get_mut(&id) {
                    peer.established_at = Some(Instant::now());
                    peer.changed_at = Instant::now();
                    self.pending.push(Event::Established {
                        peer: id,
                        address: peer.address,
                        negotiated: Box::new(negotiated),
                    });
                }
            }
            Output::Down { reason, graceful } => {
                let out = self.rib.peer_down(id, graceful);
                self.rib_outputs(out);
                if let Some(peer) = self.peers.get_mut(&id) {
                    peer.established_at = None;
                    peer.changed_at = Instant::now();
                    self.pending.push(Event::Down {
                        peer: id,
                        address: peer.address,
                        reason,
                        graceful,
                    });
                }
            }
            Output::Update(u) => {
                let out = self.rib.apply_update(id, &u);
                self.rib_outputs(out);
            }
            // RFC 2918: send our routes again.
            Output::RouteRefresh(_) => self.send_exports(id, key),
        }
    }

    fn rib_outputs(&mut self, out: Vec<RibOutput>) {
        for o in out {
            match o {
                RibOutput::ArmTimer(t, d) => self.arm(TimerKey::Rib(t), d),
                RibOutput::CancelTimer(t) => self.cancel(TimerKey::Rib(t)),
                RibOutput::Teardown(id, t) => {
                    let Some(peer) = self.peers.get(&id) else {
                        continue;
                    };
                    let primary = peer.primary.key;
                    // A connection being opened must not slip past the
                    // idle time the teardown starts.
                    if let Some(sec) = peer.secondary.as_ref().map(|s| s.key) {
                        self.drop_secondary(id, sec);
                    }
                    self.queue.push_back((id, primary, t.into_input()));
                }
            }
        }
    }

    /// Announces every originated prefix the peer's export list names.
    fn send_exports(&mut self, id: PeerId, key: SlotKey) {
        let all = self.config.originated.clone();
        self.send_originated(id, key, &all, &[]);
    }

    fn send(&mut self, id: PeerId, key: SlotKey, m: &Message) {
        let Some(slot) = self.peers.get(&id).and_then(|p| p.slot(key)) else {
            return;
        };
        let Some(conn) = slot.conn.and_then(|c| self.conns.get(&c)) else {
            return;
        };
        let ctx = slot
            .session
            .negotiated()
            .map(|n| n.context)
            .unwrap_or_else(|| slot.session.codec_context());
        // A message too long for the session cannot be sent; the export
        // module packs UPDATEs so that this does not happen.
        let Ok(bytes) = m.to_bytes(&ctx) else {
            return;
        };
        // A peer that reads nothing while it makes us write (a stream of
        // ROUTE-REFRESH, each answered with the whole export) would grow
        // the queue until the write timeout: past MAX_QUEUED the session
        // is taken as closed.
        if conn.queued.load(Ordering::Relaxed) + bytes.len() > MAX_QUEUED {
            self.queue.push_back((id, key, Input::TcpClosed));
            return;
        }
        conn.queued.fetch_add(bytes.len(), Ordering::Relaxed);
        let _ = conn.writer.send(WriteCmd::Data(bytes));
    }

    fn close(&mut self, id: PeerId, key: SlotKey) {
        let Some(peer) = self.peers.get_mut(&id) else {
            return;
        };
        if peer.connecting.as_ref().is_some_and(|c| c.1 == key) {
            if let Some((_, _, h)) = peer.connecting.take() {
                h.abort();
            }
        }
        let Some(slot) = peer.slot_mut(key) else {
            return;
        };
        if let Some(conn) = slot.conn.take() {
            if let Some(c) = self.conns.remove(&conn) {
                let _ = c.writer.send(WriteCmd::Close);
            }
        }
    }

    fn connect(&mut self, id: PeerId, key: SlotKey) {
        let attempt = self.next();
        let port = self.config.remote_port;
        let internal = self.internal.clone();
        let Some(peer) = self.peers.get_mut(&id) else {
            return;
        };
        if let Some((_, _, h)) = peer.connecting.take() {
            h.abort();
        }
        let addr = SocketAddrV6::new(peer.address, port, 0, 0);
        let settings = Arc::clone(&peer.settings);
        let task = tokio::spawn(async move {
            let result = io::connect(addr, settings).await;
            let _ = internal
                .send(Internal::Connected {
                    peer: id,
                    attempt,
                    result,
                })
                .await;
        });
        peer.connecting = Some((attempt, key, task.abort_handle()));
    }

    /// The session `key` received the peer's OPEN: if the peer has
    /// another session, one of them must go (RFC 4271 section 6.8).
    fn collision(&mut self, id: PeerId, key: SlotKey) {
        let Some(peer) = self.peers.get_mut(&id) else {
            return;
        };
        let Some(secondary) = peer.secondary.as_ref() else {
            return;
        };
        let new_is_secondary = secondary.key == key;
        let (existing, new) = if new_is_secondary {
            (&peer.primary.session, &secondary.session)
        } else {
            (&secondary.session, &peer.primary.session)
        };
        let decision = resolve_collision(existing, new);
        let secondary_wins = match decision.survivor {
            Survivor::New => new_is_secondary,
            Survivor::Existing => !new_is_secondary,
        };
        if secondary_wins {
            if let Some(s) = peer.secondary.as_mut() {
                std::mem::swap(&mut peer.primary, s);
            }
            if !peer.passive {
                // The new primary was started passive; give it the
                // peer's mode for its automatic restarts.
                self.queue
                    .push_back((id, peer.primary.key, Input::ManualStart));
            }
        }
        // The loser is the secondary now.
        if let Some(loser) = peer.secondary.as_ref().map(|s| s.key) {
            self.doomed.insert(loser);
            self.queue.push_front((id, loser, decision.loser_input));
        }
    }

    fn drop_secondary(&mut self, id: PeerId, key: SlotKey) {
        let Some(peer) = self.peers.get_mut(&id) else {
            return;
        };
        if peer.secondary.as_ref().map(|s| s.key) != Some(key) {
            return;
        }
        let Some(slot) = peer.secondary.take() else {
            return;
        };
        if peer.connecting.as_ref().is_some_and(|c| c.1 == key) {
            if let Some((_, _, h)) = peer.connecting.take() {
                h.abort();
            }
        }
        if let Some(conn) = slot.conn {
            if let Some(c) = self.conns.remove(&conn) {
                let _ = c.writer.send(WriteCmd::Close);
            }
        }
        for t in SESSION_TIMERS {
            self.cancel(TimerKey::Session(id, key, t));
        }
    }

    fn arm(&mut self, key: TimerKey, d: Duration) {
        let gen = self.next();
        let tx = self.internal.clone();
        let task = tokio::spawn(async move {
            tokio::time::sleep(d).await;
            let _ = tx.send(Internal::Timer { key, gen }).await;
        });
        if let Some((_, old)) = self.timers.insert(key, (gen, task.abort_handle())) {
            old.abort();
        }
    }

    fn cancel(&mut self, key: TimerKey) {
        if let Some((_, h)) = self.timers.remove(&key) {
            h.abort();
        }
    }

    /// Sends what happened since the last flush: sessions up and down,
    /// state changes, RIB changes.
    async fn flush(&mut self) {
        let touched = std::mem::take(&mut self.touched);
        for &id in &touched {
            if let Some(peer) = self.peers.get_mut(&id) {
                let state = peer.primary.session.state();
                if state != peer.reported {
                    peer.reported = state;
                    self.pending.push(Event::State {
                        peer: id,
                        address: peer.address,
                        state,
                    });
                }
            }
        }
        // Outside the FSM's outputs: a session's connection may close in
        // them (the peer is forgotten here, once they are all handled).
        for id in touched {
            self.forget_if_idle(id);
        }
        for e in std::mem::take(&mut self.pending) {
            // A caller that dropped the receiver wants no events.
            let _ = self.events.send(e).await;
        }
        // A big change (a peer's million routes going down) leaves in
        // batches, each decided just before it is sent: the bounded
        // channel, not the RIB's churn, bounds what is queued.
        loop {
            let more = self
                .rib
                .drain_changes_upto(&mut self.changes, CHANGES_PER_EVENT);
            if !self.changes.is_empty() {
                // Exactly sized: the batch may wait in the channel.
                let batch: Vec<RibChange> = self.changes.drain(..).collect();
                let _ = self.events.send(Event::Changes(batch)).await;
            }
            if !more {
                break;
            }
        }
    }

    /// `neighbor ADDR reset|disable|enable`.
    fn admin(&mut self, address: Ipv6Addr, action: AdminAction) -> Result<String, AdminError> {
        let Some(&id) = self.by_addr.get(&address) else {
            // A peer from a listen range may be forgotten between its
            // sessions (forget_if_idle): its address can still be disabled
            // (its connections are then refused) and enabled again.
            let in_range = self
                .config
                .ranges
                .iter()
                .any(|r| r.range.contains(&address));
            return match action {
                AdminAction::Disable if in_range => {
                    if self.disabled.insert(address) {
                        Ok(format!("neighbor {address} disabled"))
                    } else {
                        Ok(format!("neighbor {address} is already disabled"))
                    }
                }
                AdminAction::Enable if self.disabled.remove(&address) => {
                    Ok(format!("neighbor {address} enabled"))
                }
                _ => Err(AdminError::UnknownPeer(address)),
            };
        };
        let peer = self
            .peers
            .get_mut(&id)
            .ok_or(AdminError::UnknownPeer(address))?;
        let (primary, secondary) = (peer.primary.key, peer.secondary.as_ref().map(|s| s.key));
        let disabled = self.disabled.contains(&address);
        let input = match action {
            AdminAction::Disable if disabled => {
                return Ok(format!("neighbor {address} is already disabled"));
            }
            AdminAction::Enable if !disabled => {
                return Ok(format!("neighbor {address} is already enabled"));
            }
            AdminAction::Reset if disabled => return Err(AdminError::Disabled(address)),
            AdminAction::Disable => {
                self.disabled.insert(address);
                Input::ManualStop
            }
            AdminAction::Enable => {
                self.disabled.remove(&address);
                if peer.passive {
                    Input::ManualStartPassive
                } else {
                    Input::ManualStart
                }
            }
            AdminAction::Reset => Teardown {
                notification: NotificationRepr::cease(CeaseSubcode::AdministrativeReset),
                hard_reset: true,
                refuse_for: Duration::ZERO,
            }
            .into_input(),
        };
        // A connection being opened goes with the session it would join.
        if let Some(s) = secondary.filter(|_| action != AdminAction::Enable) {
            self.drop_secondary(id, s);
        }
        self.queue.push_back((id, primary, input));
        self.run_queue();
        if action == AdminAction::Disable {
            // A session that was not up (a peer in graceful restart) sent
            // no Down: its stale routes go now, not at its restart time.
            let out = self.rib.peer_down(id, false);
            self.rib_outputs(out);
        }
        let done = match action {
            AdminAction::Reset => "reset",
            AdminAction::Disable => "disabled",
            AdminAction::Enable => "enabled",
        };
        Ok(format!("neighbor {address} {done}"))
    }

    /// See [`Speaker::reconfigure`](super::Speaker::reconfigure).
    fn reconfigure(&mut self, new: SpeakerConfig) -> Result<String, ReconfigureError> {
        let old = &self.config;
        let fixed = [
            ("the local AS", old.local_asn != new.local_asn),
            ("the router id", old.router_id != new.router_id),
            ("the listening socket", old.listen != new.listen),
            ("the remote port", old.remote_port != new.remote_port),
            ("the RIB configuration", old.rib != new.rib),
        ];
        let changed: Vec<&str> = fixed.iter().filter(|f| f.1).map(|f| f.0).collect();
        if !changed.is_empty() {
            return Err(ReconfigureError::NeedsRestart(changed.join(", ")));
        }
        // The listener first: new peers' MD5 keys must be there before
        // they connect, and a failure leaves everything else as it was.
        let Some(fd) = &self.listener else {
            return Err(ReconfigureError::Listener(
                "no descriptor of the listening socket".into(),
            ));
        };
        if let Err(e) = io::configure_listener(fd, Some(&self.config), &new) {
            // Some keys may be gone and others set: put the old ones back,
            // so that a failed reload changes nothing, as it says.
            io::restore_listener(fd, &new, &self.config);
            return Err(ReconfigureError::Listener(e.to_string()));
        }
        let (mut added, mut removed, mut changed, mut in_place) = (0, 0, 0, 0);
        // What a peer changed in place starts announcing: only prefixes
        // still originated (the ones leaving are withdrawn below).
        let still_originated = new.originated.clone();
        // Neighbours, by address.
        let mut old_neighbors = std::mem::take(&mut self.config.neighbors);
        let new_neighbors = new.neighbors;
        // A neighbour whose import or export lists alone changed takes
        // them in its running session (route refresh, re-export); it then
        // counts as unchanged below.
        for n in old_neighbors.iter_mut() {
            let Some(m) = new_neighbors.iter().find(|m| m.address == n.address) else {
                continue;
            };
            if n == m || n.passive != m.passive {
                continue;
            }
            let configured = self.by_addr.get(&n.address).copied();
            let configured = configured.filter(|id| self.peers.get(id).is_some_and(|p| !p.dynamic));
            if let Some(id) = configured {
                if self.change_in_place(id, &Arc::new(m.settings.clone()), &still_originated) {
                    in_place += 1;
                    n.settings = m.settings.clone();
                }
            }
        }
        for n in &old_neighbors {
            let keep = new_neighbors.iter().any(|m| m == n);
            if !keep {
                let why = if new_neighbors.iter().any(|m| m.address == n.address) {
                    changed += 1;
                    CeaseSubcode::OtherConfigurationChange
                } else {
                    removed += 1;
                    CeaseSubcode::PeerDeconfigured
                };
                if let Some(&id) = self.by_addr.get(&n.address) {
                    self.forget_peer(id, why);
                }
            }
        }
        for n in &new_neighbors {
            if !old_neighbors.iter().any(|m| m == n) {
                if !old_neighbors.iter().any(|m| m.address == n.address) {
                    added += 1;
                }
                if let Some(&id) = self.by_addr.get(&n.address) {
                    // A dynamic peer that is now a configured neighbour.
                    self.forget_peer(id, CeaseSubcode::OtherConfigurationChange);
                }
                self.add_peer(n.address, Arc::new(n.settings.clone()), false, n.passive);
            }
        }
        self.config.neighbors = new_neighbors;
        // Dynamic peers follow their range.
        self.config.ranges = new.ranges;
        // A dynamic peer whose range is gone is de-configured; one whose
        // range changed restarts under the new settings.
        let stale: Vec<(PeerId, CeaseSubcode)> = self
            .peers
            .values()
            .filter(|p| p.dynamic)
            .filter_map(|p| {
                let range = self
                    .config
                    .ranges
                    .iter()
                    .find(|r| r.range.contains(&p.address));
                match range {
                    None => Some((p.id, CeaseSubcode::PeerDeconfigured)),
                    Some(r) if r.settings != *p.settings => {
                        Some((p.id, CeaseSubcode::OtherConfigurationChange))
                    }
                    Some(_) => None,
                }
            })
            .collect();
        // A range whose import or export lists alone changed: its peers'
        // sessions take them in place.
        let mut stale = stale;
        let ranges = self.config.ranges.clone();
        stale.retain(|&(id, why)| {
            if why != CeaseSubcode::OtherConfigurationChange {
                return true;
            }
            let Some(address) = self.peers.get(&id).map(|p| p.address) else {
                return true;
            };
            let Some(r) = ranges.iter().find(|r| r.range.contains(&address)) else {
                return true;
            };
            let done = self.change_in_place(id, &Arc::new(r.settings.clone()), &still_originated);
            in_place += usize::from(done);
            !done
        });
        let dynamic_gone = stale.len();
        for (id, why) in stale {
            self.forget_peer(id, why);
        }
        // Originated prefixes: tell the established sessions.
        let gone: Vec<Ipv6Net> = self
            .config
            .originated
            .iter()
            .filter(|p| !new.originated.contains(p))
            .copied()
            .collect();
        let fresh: Vec<Ipv6Net> = new
            .originated
            .iter()
            .filter(|p| !self.config.originated.contains(p))
            .copied()
            .collect();
        self.config.originated = new.originated;
        if !gone.is_empty() || !fresh.is_empty() {
            let established: Vec<(PeerId, SlotKey)> = self
                .peers
                .values()
                .filter(|p| p.primary.session.state() == State::Established)
                .map(|p| (p.id, p.primary.key))
                .collect();
            for (id, key) in established {
                self.send_originated(id, key, &fresh, &gone);
            }
        }
        self.run_queue();
        Ok(format!(
            "BGP: {added} neighbours added, {removed} removed, {changed} changed; \
             {dynamic_gone} dynamic peers dropped; {in_place} sessions took new import or \
             export lists in place; {} prefixes originated, {} withdrawn",
            fresh.len(),
            gone.len()
        ))
    }

    /// Gives peer `id` the settings `new` without restarting its session,
    /// if they differ from its own in the import policy, the export list,
    /// max-prefixes' idle time or the connect-retry time only (the last
    /// one matters only once the session is down), as BIRD and FRR apply filter
    /// changes: a new import policy is applied to the routes the peer sends
    /// again after a ROUTE-REFRESH (RFC 2918; a session without the
    /// capability is restarted instead), a new export list by withdrawing
    /// and announcing the difference. Returns whether it did.
    fn change_in_place(
        &mut self,
        id: PeerId,
        new: &Arc<PeerSettings>,
        still_originated: &[Ipv6Net],
    ) -> bool {
        let Some(peer) = self.peers.get(&id) else {
            return false;
        };
        let old = peer.settings.clone();
        let mut same_rest = (*old).clone();
        same_rest.import = new.import.clone();
        same_rest.export = new.export.clone();
        same_rest.max_prefix_idle = new.max_prefix_idle;
        same_rest.connect_retry = new.connect_retry;
        if same_rest != **new {
            return false;
        }
        let key = peer.primary.key;
        let negotiated = peer.primary.session.negotiated();
        let established = peer.primary.session.state() == State::Established;
        let refresh = negotiated.is_some_and(|n| n.route_refresh);
        let import_changed = old.import != new.import;
        if established && import_changed && !refresh {
            return false;
        }
        // A session that is down may be waiting out the old ConnectRetry
        // timer: restarted, it dials at once and then keeps the new time.
        if !established && old.connect_retry != new.connect_retry {
            return false;
        }
        if let Some(p) = self.peers.get_mut(&id) {
            p.settings = new.clone();
            p.primary.session.set_connect_retry(new.connect_retry);
            if let Some(s) = p.secondary.as_mut() {
                s.session.set_connect_retry(new.connect_retry);
            }
        }
        self.rib.set_max_prefix_idle(id, new.max_prefix_idle);
        let out = self.rib.set_import_policy(id, new.import.clone());
        let torn_down = !out.is_empty();
        self.rib_outputs(out);
        if !established || torn_down {
            return true;
        }
        if old.export != new.export {
            let originated = self.config.originated.clone();
            let (gone, fresh): (Vec<Ipv6Net>, Vec<Ipv6Net>) = (
                originated
                    .iter()
                    .filter(|p| old.export.matches(p) && !new.export.matches(p))
                    .copied()
                    .collect(),
                originated
                    .iter()
                    .filter(|p| new.export.matches(p) && !old.export.matches(p))
                    .filter(|p| still_originated.contains(p))
                    .copied()
                    .collect(),
            );
            self.send_export_change(id, key, &old.export, &gone, &fresh);
        }
        if import_changed {
            let rr = RouteRefreshRepr {
                afi: Afi::Ipv6,
                safi: Safi::Unicast,
                subtype: RouteRefreshSubtype::Normal,
            };
            self.send(id, key, &Message::RouteRefresh(rr));
        }
        true
    }

    /// Stops a peer's sessions with this Cease (RFC 4486: Peer
    /// De-configured, or Other Configuration Change; as a Hard Reset where
    /// the N bit was negotiated), drops its routes and forgets it.
    fn forget_peer(&mut self, id: PeerId, why: CeaseSubcode) {
        let Some(peer) = self.peers.get(&id) else {
            return;
        };
        let primary = peer.primary.key;
        if let Some(s) = peer.secondary.as_ref().map(|s| s.key) {
            self.drop_secondary(id, s);
        }
        let stop = Teardown {
            notification: NotificationRepr::cease(why),
            hard_reset: true,
            // Never restarted: the peer is forgotten below.
            refuse_for: Duration::from_secs(3600),
        };
        self.queue.push_back((id, primary, stop.into_input()));
        self.run_queue();
        for t in SESSION_TIMERS {
            self.cancel(TimerKey::Session(id, primary, t));
        }
        if let Some(peer) = self.peers.remove(&id) {
            if let Some((_, _, h)) = peer.connecting {
                h.abort();
            }
            if let Some(c) = peer.primary.conn.and_then(|c| self.conns.remove(&c)) {
                let _ = c.writer.send(WriteCmd::Close);
            }
            if self.by_addr.get(&peer.address) == Some(&id) {
                self.by_addr.remove(&peer.address);
            }
        }
        let out = self.rib.remove_peer(id);
        self.rib_outputs(out);
    }

    /// Announces `fresh` and withdraws `gone` (both filtered by the peer's
    /// export list) on an established session.
    fn send_originated(&mut self, id: PeerId, key: SlotKey, fresh: &[Ipv6Net], gone: &[Ipv6Net]) {
        let Some(export) = self.peers.get(&id).map(|p| p.settings.export.clone()) else {
            return;
        };
        self.send_export_change(id, key, &export, gone, fresh);
    }

    /// Withdraws `gone` (those `exported` let out) from the session and
    /// announces `fresh` (those its export list lets out).
    fn send_export_change(
        &mut self,
        id: PeerId,
        key: SlotKey,
        exported: &PrefixList,
        gone: &[Ipv6Net],
        fresh: &[Ipv6Net],
    ) {
        let Some(peer) = self.peers.get(&id) else {
            return;
        };
        let Some(slot) = peer.slot(key) else {
            return;
        };
        let (Some(conn), Some(neg)) = (slot.conn, slot.session.negotiated()) else {
            return;
        };
        let Some(local) = self.conns.get(&conn).map(|c| c.local) else {
            return;
        };
        let mut session = ExportSession::new(self.config.local_asn, local, neg.context);
        session.ibgp = neg.ibgp;
        let mut updates = withdrawals(gone, exported, &neg.context);
        updates.extend(advertisements(fresh, &peer.settings.export, &session));
        for u in updates {
            self.send(id, key, &Message::Update(u.into()));
        }
    }

    fn summaries(&self) -> Vec<PeerSummary> {
        let mut out: Vec<PeerSummary> = self
            .peers
            .values()
            .map(|p| PeerSummary {
                id: p.id,
                address: p.address,
                asn: p.settings.peer_asn,
                dynamic: p.dynamic,
                disabled: self.disabled.contains(&p.address),
                state: p.primary.session.state(),
                uptime: p.established_at.map(|t| t.elapsed()),
                up_down: p.changed_at.elapsed(),
                stats: self.rib.peer_stats(p.id).unwrap_or_default(),
            })
            .collect();
        out.sort_by_key(|p| p.id);
        out
    }

    async fn shutdown(&mut self) {
        let ids: Vec<(PeerId, SlotKey, Option<SlotKey>)> = self
            .peers
            .values()
            .map(|p| (p.id, p.primary.key, p.secondary.as_ref().map(|s| s.key)))
            .collect();
        for (id, primary, secondary) in ids {
            if let Some(s) = secondary {
                self.drop_secondary(id, s);
            }
            self.queue.push_back((id, primary, Input::ManualStop));
        }
        self.run_queue();
        self.flush().await;
        for (_, (_, h)) in self.timers.drain() {
            h.abort();
        }
        for (_, c) in self.conns.drain() {
            let _ = c.writer.send(WriteCmd::Close);
        }
        for p in self.peers.values_mut() {
            if let Some((_, _, h)) = p.connecting.take() {
                h.abort();
            }
        }
        let writers = &mut self.writers;
        let _ = tokio::time::timeout(Duration::from_secs(3), async {
            while writers.join_next().await.is_some() {}
        })
        .await;
    }
}

/// Framing limits for slicing a chunk the reader already framed.
const FRAMING_CHECKED: crate::wire::Context = crate::wire::Context {
    four_octet_as: true,
    extended_messages: true,
    external: false,
};
