//! The tokio session driver: sockets, sleeps and one control task around
//! the sans-IO pieces ([`Session`](crate::fsm::Session), [`Rib`](crate::rib::Rib)).
//!
//! A [`Speaker`] owns one control task. The task owns the RIB and every
//! peer's sessions; small helper tasks do the I/O and report back to it
//! over one channel, so all protocol state is touched from one place,
//! in order:
//!
//! - the listener (default `[::]:179`) accepts connections from the
//!   configured neighbours and from the listen ranges: the first
//!   connection from an address inside a range creates a dynamic
//!   neighbour (a new [`PeerId`] with the range's settings), kept after
//!   its session goes down for as long as graceful restart (its stale
//!   routes) or the max-prefix idle time needs it, or the operator
//!   disabled it, then forgotten (as FRR's dynamic neighbours; at most
//!   [`SpeakerConfig::listen_limit`] at once);
//! - one connect task per attempt for neighbours that are not passive
//!   (`Output::Connect`), bounded by the connect-retry time;
//! - per connection, a reader task that frames the byte stream with
//!   [`Header::frame_len`](crate::wire::Header::frame_len) (decoding
//!   happens in the control task, with the session's codec context) and a
//!   writer task that sends, and on `CloseTcp` flushes (a NOTIFICATION
//!   reaches the peer before the FIN) and closes;
//! - one sleep task per armed timer, session timers keyed by (peer,
//!   session, timer) and RIB timers by [`RibTimer`](crate::rib::RibTimer);
//!   re-arming or cancelling aborts the sleep, and a generation number
//!   makes a late expiry harmless.
//!
//! A peer has a primary session and, while a second connection is being
//! opened (a collision, RFC 4271 section 6.8, or a restarted peer whose
//! FIN we missed), a secondary one; when the secondary receives the
//! peer's OPEN, [`resolve_collision`](crate::fsm::resolve_collision)
//! decides which survives and the loser gets its input (a Cease, or a TCP
//! close for the restarted-peer case).
//!
//! What the caller sees comes out of the [`Event`] channel: session state
//! changes, sessions established and down, and the RIB's coalesced
//! [`RibChange`]s (one batch per burst of input, in events of at most
//! 1024 changes: a peer's million routes going down are decided a batch
//! at a time, as the caller reads them). The channel is bounded: a
//! caller that stops reading stops the speaker, so read it promptly.
//!
//! Socket options (TCP MD5, GTSM) are in [`sockopt`], the crate's only
//! `unsafe` module.

mod control;
mod io;
pub mod sockopt;

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use ipnet::Ipv6Net;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::fsm::{DownReason, GracefulRestartConfig, Negotiated, State};
use crate::policy::{ImportPolicy, PrefixList};
use crate::rib::{NextHopReach, PeerId, PeerStats, RibChange, RibConfig, RouteView};
use crate::wire::{Asn, HoldTime};

/// The BGP port (RFC 4271 section 8.2.1).
pub const BGP_PORT: u16 = 179;

/// Settings shared by a listen range's dynamic neighbours and by a fixed
/// neighbour.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PeerSettings {
    /// The AS the peer must open with.
    pub peer_asn: Asn,
    /// The hold time we propose.
    pub hold_time: HoldTime,
    /// Time between our connection attempts (active neighbours), and the
    /// bound on one attempt.
    pub connect_retry: Duration,
    /// Graceful restart helper, `None` to disable it.
    pub graceful_restart: Option<GracefulRestartConfig>,
    /// Import allow-list, max-prefixes and local preference.
    pub import: ImportPolicy,
    /// Which originated prefixes the peer gets.
    pub export: PrefixList,
    /// How long the peer is refused after a max-prefix teardown.
    pub max_prefix_idle: Duration,
    /// TCP MD5 key (RFC 2385), at most 80 bytes.
    pub password: Option<Vec<u8>>,
    /// GTSM (RFC 5082): the peer is at most this many hops away.
    pub ttl_security: Option<u8>,
}

impl PeerSettings {
    /// Defaults: hold time 90 s, connect retry 30 s, graceful restart
    /// helper with the N bit, accept every non-martian prefix, export
    /// nothing, 30 s max-prefix idle time, no MD5, no GTSM.
    pub fn new(peer_asn: Asn) -> PeerSettings {
        PeerSettings {
            peer_asn,
            hold_time: HoldTime::new(90).unwrap_or(HoldTime::DISABLED),
            connect_retry: Duration::from_secs(30),
            graceful_restart: Some(GracefulRestartConfig::default()),
            import: ImportPolicy::default(),
            export: PrefixList::default(),
            max_prefix_idle: Duration::from_secs(30),
            password: None,
            ttl_security: None,
        }
    }
}

impl std::fmt::Debug for PeerSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerSettings")
            .field("peer_asn", &self.peer_asn)
            .field("hold_time", &self.hold_time)
            .field("connect_retry", &self.connect_retry)
            .field("graceful_restart", &self.graceful_restart)
            .field("import", &self.import)
            .field("export", &self.export)
            .field("max_prefix_idle", &self.max_prefix_idle)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("ttl_security", &self.ttl_security)
            .finish()
    }
}

/// A listen range: peers connecting from inside `range` get a dynamic
/// neighbour with `settings`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ListenRange {
    /// Accepted source addresses.
    pub range: Ipv6Net,
    /// Their settings.
    pub settings: PeerSettings,
}

impl ListenRange {
    /// A range with its settings.
    pub fn new(range: Ipv6Net, settings: PeerSettings) -> ListenRange {
        ListenRange { range, settings }
    }
}

/// A fixed neighbour.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Neighbor {
    /// Its address.
    pub address: Ipv6Addr,
    /// Only accept its connections, never dial it.
    pub passive: bool,
    /// Its settings.
    pub settings: PeerSettings,
}

impl Neighbor {
    /// An active neighbour (we dial it and accept its connections).
    pub fn new(address: Ipv6Addr, settings: PeerSettings) -> Neighbor {
        Neighbor {
            address,
            passive: false,
            settings,
        }
    }
}

/// The speaker's configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SpeakerConfig {
    /// Our AS.
    pub local_asn: Asn,
    /// Our BGP identifier.
    pub router_id: Ipv4Addr,
    /// Where to accept connections; default `[::]:179`.
    pub listen: SocketAddr,
    /// The port to dial neighbours at; default 179.
    pub remote_port: u16,
    /// Decision process and stale-path settings.
    pub rib: RibConfig,
    /// Listen ranges (dynamic neighbours); they should not overlap (the
    /// first match wins).
    pub ranges: Vec<ListenRange>,
    /// Fixed neighbours; one outside every range is still accepted.
    pub neighbors: Vec<Neighbor>,
    /// Prefixes we originate (aggregates and static routes), announced
    /// to the peers whose export list matches.
    pub originated: Vec<Ipv6Net>,
    /// Peers from listen ranges at most; default [`MAX_DYNAMIC_PEERS`].
    pub listen_limit: usize,
    /// Which next hops take part in the decision (a router's connected
    /// subnets and interfaces); by default every one. Changed at run time
    /// with [`Speaker::set_next_hop_reach`]; [`Speaker::reconfigure`]
    /// leaves it as it is.
    pub next_hop_reach: NextHopReach,
}

impl SpeakerConfig {
    /// A speaker with no peers, listening on `[::]:179`.
    pub fn new(local_asn: Asn, router_id: Ipv4Addr) -> SpeakerConfig {
        SpeakerConfig {
            local_asn,
            router_id,
            listen: SocketAddr::new(Ipv6Addr::UNSPECIFIED.into(), BGP_PORT),
            remote_port: BGP_PORT,
            rib: RibConfig::new(local_asn),
            ranges: Vec::new(),
            neighbors: Vec::new(),
            originated: Vec::new(),
            listen_limit: MAX_DYNAMIC_PEERS,
            next_hop_reach: NextHopReach::default(),
        }
    }
}

/// What the speaker reports.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// A peer's session changed state (intermediate states within one
    /// burst of input are not reported).
    State {
        /// The peer.
        peer: PeerId,
        /// Its address.
        address: Ipv6Addr,
        /// The new state.
        state: State,
    },
    /// A session came up.
    Established {
        /// The peer.
        peer: PeerId,
        /// Its address.
        address: Ipv6Addr,
        /// What the OPENs settled.
        negotiated: Box<Negotiated>,
    },
    /// An Established session ended.
    Down {
        /// The peer.
        peer: PeerId,
        /// Its address.
        address: Ipv6Addr,
        /// Why.
        reason: DownReason,
        /// The peer's routes are kept, stale (graceful restart).
        graceful: bool,
    },
    /// The best path or ECMP set of these prefixes changed (empty next
    /// hops: withdrawn).
    Changes(Vec<RibChange>),
    /// A connection from a listen range was refused: the listen limit
    /// ([`SpeakerConfig::listen_limit`]) of peers from ranges exist already (reported once until the number
    /// falls below the limit again).
    ListenLimit {
        /// The address refused.
        address: Ipv6Addr,
    },
}

/// Peers accepted from listen ranges at most by default (FRR's `bgp
/// listen limit`):
/// a host inside a range cannot make the speaker keep one peer per
/// address it connects from. A peer from a range that never reached
/// Established is forgotten as soon as its connection closes.
pub const MAX_DYNAMIC_PEERS: usize = 1024;

/// One peer, for `show bgp summary`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PeerSummary {
    /// Its RIB handle.
    pub id: PeerId,
    /// Its address.
    pub address: Ipv6Addr,
    /// Its configured AS.
    pub asn: Asn,
    /// Accepted from a listen range.
    pub dynamic: bool,
    /// Disabled by the operator ([`AdminAction::Disable`]).
    pub disabled: bool,
    /// Its (primary) session's state.
    pub state: State,
    /// Time since Established, while it is.
    pub uptime: Option<Duration>,
    /// Time since the session last came up or went down, or since the
    /// peer was added if it never came up (FRR's Up/Down).
    pub up_down: Duration,
    /// RIB counters (accepted, stale, rejected per reason).
    pub stats: PeerStats,
}

/// What [`Speaker::admin`] does to a peer (`neighbor ADDR ...`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdminAction {
    /// Close the session with Cease / Administrative Reset (a Hard Reset
    /// where the N bit was negotiated: the routes go, the peer sends them
    /// again) and let it establish again at once.
    Reset,
    /// Close the session with Cease / Administrative Shutdown, drop the
    /// peer's routes, stop dialling it and refuse its connections until
    /// [`AdminAction::Enable`].
    Disable,
    /// Start the session again (dial an active neighbour, accept the
    /// peer's connections).
    Enable,
}

/// Why [`Speaker::admin`] did nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AdminError {
    /// The address is no peer: neither a configured neighbour nor a
    /// listen-range peer that has connected.
    #[error("{0} is not a BGP peer (configured neighbours, and listen-range peers once they have connected)")]
    UnknownPeer(Ipv6Addr),
    /// A disabled peer cannot be reset.
    #[error("BGP peer {0} is disabled: enable it instead of resetting it")]
    Disabled(Ipv6Addr),
    /// The speaker has stopped.
    #[error("the BGP speaker has stopped")]
    Stopped,
}

/// Why [`Speaker::reconfigure`] changed nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReconfigureError {
    /// Settings a running speaker cannot change: our AS, router id,
    /// listening socket, remote port or RIB configuration.
    #[error("{0} changed: a running speaker cannot change it")]
    NeedsRestart(String),
    /// The listening socket refused the new MD5 keys or GTSM settings.
    #[error("cannot set the listening socket's MD5 keys or GTSM: {0}")]
    Listener(String),
    /// The speaker has stopped.
    #[error("the BGP speaker has stopped")]
    Stopped,
}

#[derive(Debug)]
enum Command {
    Peers(oneshot::Sender<Vec<PeerSummary>>),
    Routes(Option<Ipv6Net>, usize, oneshot::Sender<Vec<RouteView>>),
    Admin(
        Ipv6Addr,
        AdminAction,
        oneshot::Sender<Result<String, AdminError>>,
    ),
    Reconfigure(
        Box<SpeakerConfig>,
        oneshot::Sender<Result<String, ReconfigureError>>,
    ),
    NextHopReach(NextHopReach),
    Resend(Vec<Ipv6Net>),
    Shutdown(oneshot::Sender<()>),
}

/// A running BGP speaker (see the module docs).
#[derive(Debug)]
pub struct Speaker {
    commands: mpsc::Sender<Command>,
    task: JoinHandle<()>,
    local_addr: SocketAddr,
}

/// Capacity of the event channel, in events. With at most 1024 changes
/// an event, at most 64K changes (about 5 MiB) wait for the caller.
const EVENT_CAPACITY: usize = 64;

impl Speaker {
    /// Binds the listener, applies the socket options, starts the
    /// control task and the sessions. Must run inside a tokio runtime.
    /// Fails if the listener cannot be set up (address in use, a bad MD5
    /// key, no permission for port 179).
    pub async fn start(config: SpeakerConfig) -> std::io::Result<(Speaker, mpsc::Receiver<Event>)> {
        let listener = io::listener(&config)?;
        let local_addr = listener.local_addr()?;
        let (events_tx, events_rx) = mpsc::channel(EVENT_CAPACITY);
        let (commands_tx, commands_rx) = mpsc::channel(16);
        let task = tokio::spawn(control::run(config, listener, events_tx, commands_rx));
        Ok((
            Speaker {
                commands: commands_tx,
                task,
                local_addr,
            },
            events_rx,
        ))
    }

    /// The address the listener is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Every peer with its state and counters, in [`PeerId`] order. Empty
    /// if the speaker has stopped.
    pub async fn peers(&self) -> Vec<PeerSummary> {
        self.ask(Command::Peers).await.unwrap_or_default()
    }

    /// Every path of `prefix` (exactly), best first, with why the others
    /// lost; without a prefix, those of up to `max` prefixes.
    pub async fn routes(&self, prefix: Option<Ipv6Net>, max: usize) -> Vec<RouteView> {
        self.ask(|tx| Command::Routes(prefix, max, tx))
            .await
            .unwrap_or_default()
    }

    /// Resets, disables or enables the peer at `address`; returns what
    /// was done, for humans ("already disabled" when there was nothing to
    /// do).
    pub async fn admin(
        &self,
        address: Ipv6Addr,
        action: AdminAction,
    ) -> Result<String, AdminError> {
        self.ask(|tx| Command::Admin(address, action, tx))
            .await
            .unwrap_or(Err(AdminError::Stopped))
    }

    /// Applies a new configuration's neighbours, listen ranges and
    /// originated prefixes: a peer whose import or export lists (or
    /// max-prefixes' idle time) alone changed keeps its session, as in
    /// BIRD and FRR: a new import policy applies to the routes it sends
    /// again after a ROUTE-REFRESH (a session without that capability is
    /// restarted instead), a new export list is applied by withdrawing and
    /// announcing the difference; a neighbour that is gone, or whose other
    /// settings changed, is stopped (Cease / Peer De-configured or Other
    /// Configuration Change, RFC 4486; its routes withdrawn) and
    /// forgotten, then a changed or new one starts; a dynamic peer whose
    /// listen range is gone or changed otherwise is stopped and forgotten
    /// (it may connect again, under the new range's settings); the listening
    /// socket gets the new MD5 keys and GTSM;
    /// established sessions are sent the originated prefixes added and
    /// withdrawn. Returns what changed, for humans. The other settings
    /// cannot change: [`ReconfigureError::NeedsRestart`], nothing applied.
    pub async fn reconfigure(&self, config: SpeakerConfig) -> Result<String, ReconfigureError> {
        self.ask(|tx| Command::Reconfigure(Box::new(config), tx))
            .await
            .unwrap_or(Err(ReconfigureError::Stopped))
    }

    /// Which next hops resolve from now on: a path whose next hop does
    /// not takes no part in the decision (RFC 4271 section 9.1.2), and
    /// every prefix is decided again (the changes come as events). For
    /// the router's connected subnets and interfaces, as its addresses
    /// come and go.
    pub async fn set_next_hop_reach(&self, reach: NextHopReach) {
        let _ = self.commands.send(Command::NextHopReach(reach)).await;
    }

    /// Emits, as an [`Event::Changes`] in the order of every other
    /// change, the RIB's selected paths of `prefixes` as it last emitted
    /// them ([`Rib::selected`](crate::rib::Rib::selected); nothing for a
    /// prefix without one), for a caller
    /// whose own route for them went away: unlike asking
    /// [`Speaker::routes`] and applying the answer later, a withdrawal
    /// made meanwhile cannot be overtaken.
    pub async fn resend(&self, prefixes: Vec<Ipv6Net>) {
        let _ = self.commands.send(Command::Resend(prefixes)).await;
    }

    /// Sends the control task the command `cmd` makes of a reply channel
    /// and waits for the answer; `None` if the task has stopped.
    async fn ask<T>(&self, cmd: impl FnOnce(oneshot::Sender<T>) -> Command) -> Option<T> {
        let (tx, rx) = oneshot::channel();
        self.commands.send(cmd(tx)).await.ok()?;
        rx.await.ok()
    }

    /// Stops every session (Cease / Administrative Shutdown, as a Hard
    /// Reset where the N bit was negotiated), waits briefly for the
    /// NOTIFICATIONs to leave, and ends the control task.
    pub async fn shutdown(self) {
        let (tx, rx) = oneshot::channel();
        if self.commands.send(Command::Shutdown(tx)).await.is_ok() {
            let _ = rx.await;
        }
        let _ = self.task.await;
    }
}
