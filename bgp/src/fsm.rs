//! The BGP session finite state machine (RFC 4271 section 8), sans-IO.
//!
//! A [`Session`] is one peer's FSM. It owns no socket and no clock: the
//! driver feeds it [`Input`]s (operator events, TCP events, decoded
//! messages, decode errors, timer expiries) and carries out the
//! [`Output`]s it returns (connect, send, close, arm and cancel timers,
//! hand UPDATEs to the RIB). Every transition is therefore a plain
//! synchronous function call, and every RFC 4271 table row a unit test.
//!
//! # Timers
//!
//! `ArmTimer(t, d)` (re)starts timer `t` to fire after `d`, replacing a
//! running one; `CancelTimer(t)` stops it. When a timer fires the driver
//! feeds `Input::TimerExpired(t)`. An expiry of a timer the FSM no longer
//! has armed (a race with a cancel) is ignored, so the driver need not be
//! exact about cancellation.
//!
//! # Deviations from the RFC 4271 table, on purpose
//!
//! - Automatic restart. After any failure that is not a `ManualStop`, the
//!   session restarts itself in the mode it was started in (RFC 4271
//!   events 3/5, AutomaticStart): a passive session waits in Active for the
//!   peer's next connection; an active one waits in Active for
//!   ConnectRetry and then connects. A [`Teardown`] (max-prefix) instead
//!   holds the session in Idle and refuses connections for
//!   `refuse_for` (timer [`Timer::IdleHold`]), then restarts it.
//! - Passive sessions never connect: Cilium's GoBGP does not listen.
//! - One `Session` handles one TCP connection at a time. A second
//!   connection for the same peer gets a second `Session`;
//!   [`resolve_collision`] decides which one survives (RFC 4271 section
//!   6.8, RFC 4724 section 4.2).
//! - BGP identifier equal to ours is refused only from an internal peer,
//!   as RFC 6286 section 2.2 says; collisions between equal identifiers
//!   are resolved by AS number (RFC 6286 section 2.3).
//!
//! # Graceful restart (RFC 4724, RFC 8538)
//!
//! [`Output::Down`] says whether the RIB must keep the peer's routes as
//! stale (`graceful`). That is the case when we enabled graceful restart,
//! the peer advertised it for IPv6 unicast, and the session ended with a
//! TCP close without NOTIFICATION, a hold timer expiry, or, if both sides
//! set the N bit (RFC 8538), any NOTIFICATION sent or received other than
//! Cease/Hard Reset. With the N bit negotiated, a Cease we send for
//! `ManualStop` or a [`Teardown`] goes out as a Hard Reset (RFC 8538
//! section 5 says Administrative Shutdown and Maximum Number of Prefixes
//! Reached force one), so neither side keeps stale routes.
//!
//! # Panics
//!
//! `handle` never panics, whatever the input sequence.

use std::net::Ipv4Addr;
use std::time::Duration;

use crate::wire::{
    Afi, Asn, Capability, CeaseSubcode, Context, Error, ErrorCode, FsmSubcode, GracefulRestart,
    GracefulRestartFamily, HoldTime, Message, NotificationRepr, OpenRepr, ParsedUpdate,
    RouteRefreshRepr, RouteRefreshSubtype, Safi, UpdateRepr,
};

/// The address families this speaker negotiates.
pub const FAMILIES: [(Afi, Safi); 1] = [(Afi::Ipv6, Safi::Unicast)];

/// The hold time used between sending our OPEN and receiving the peer's
/// (RFC 4271 section 8.2.2 suggests 4 minutes).
pub const OPEN_HOLD_TIME: Duration = Duration::from_secs(240);

/// The FSM states (RFC 4271 section 8.2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    /// Not started, stopped, or refusing the peer for a while.
    Idle,
    /// Waiting for our outgoing TCP connection.
    Connect,
    /// Waiting for an incoming connection (or for ConnectRetry).
    Active,
    /// OPEN sent, waiting for the peer's.
    OpenSent,
    /// OPENs exchanged, waiting for a KEEPALIVE.
    OpenConfirm,
    /// Up: UPDATEs flow.
    Established,
}

/// The FSM's timers; the driver owns the sleeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Timer {
    /// Time between outgoing connection attempts.
    ConnectRetry,
    /// The peer must send something within this time.
    Hold,
    /// When to send our next KEEPALIVE.
    Keepalive,
    /// Idle hold after a [`Teardown`]: connections from the peer are
    /// refused until it fires.
    IdleHold,
}

impl Timer {
    const ALL: [Timer; 4] = [
        Timer::ConnectRetry,
        Timer::Hold,
        Timer::Keepalive,
        Timer::IdleHold,
    ];

    fn index(self) -> usize {
        self as usize
    }
}

/// Which side opened the TCP connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// We connected to the peer.
    Outbound,
    /// The peer connected to us.
    Inbound,
}

/// How a session was started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StartMode {
    /// Connect to the peer (and also accept its connections).
    Active,
    /// Only accept the peer's connections (Cilium nodes).
    Passive,
}

/// Our graceful restart capability. We are a helper (receiving speaker):
/// we advertise IPv6 unicast without the F bit, since our forwarding
/// state does not survive our own restart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GracefulRestartConfig {
    /// The restart time we advertise, seconds (at most 4095).
    pub restart_time: u16,
    /// Advertise the N bit (RFC 8538).
    pub notification: bool,
}

impl Default for GracefulRestartConfig {
    fn default() -> Self {
        GracefulRestartConfig {
            restart_time: 120,
            notification: true,
        }
    }
}

/// Per-session configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SessionConfig {
    /// Our AS.
    pub local_asn: Asn,
    /// Our BGP identifier.
    pub router_id: Ipv4Addr,
    /// The AS the peer must have; for a listen range, its `peer-asn`.
    pub peer_asn: Asn,
    /// The hold time we propose.
    pub hold_time: HoldTime,
    /// Time between outgoing connection attempts.
    pub connect_retry: Duration,
    /// Graceful restart (helper side), `None` to disable it.
    pub graceful_restart: Option<GracefulRestartConfig>,
}

impl SessionConfig {
    /// A configuration with the defaults: hold time 90 s, connect retry
    /// 30 s, graceful restart helper on with the N bit, restart time 120 s.
    pub fn new(local_asn: Asn, router_id: Ipv4Addr, peer_asn: Asn) -> SessionConfig {
        SessionConfig {
            local_asn,
            router_id,
            peer_asn,
            hold_time: HoldTime::new(90).unwrap_or(HoldTime::DISABLED),
            connect_retry: Duration::from_secs(30),
            graceful_restart: Some(GracefulRestartConfig::default()),
        }
    }

    /// Whether the peer is internal (same AS).
    pub fn ibgp(&self) -> bool {
        self.local_asn == self.peer_asn
    }

    /// The OPEN we send.
    pub fn open(&self) -> OpenRepr {
        let mut caps: Vec<Capability> = FAMILIES
            .iter()
            .map(|&(afi, safi)| Capability::Multiprotocol { afi, safi })
            .collect();
        caps.push(Capability::RouteRefresh);
        if let Some(gr) = self.graceful_restart {
            caps.push(Capability::GracefulRestart(GracefulRestart {
                restart_state: false,
                notification: gr.notification,
                restart_time: gr.restart_time.min(0x0fff),
                families: FAMILIES
                    .iter()
                    .map(|&(afi, safi)| GracefulRestartFamily {
                        afi,
                        safi,
                        forwarding_state: false,
                    })
                    .collect(),
            }));
        }
        OpenRepr::new(self.local_asn, self.hold_time, self.router_id, caps)
    }
}

/// What the OPEN exchange settled, handed out with [`Output::Established`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Negotiated {
    /// The peer's AS.
    pub remote_asn: Asn,
    /// The peer's BGP identifier.
    pub remote_id: Ipv4Addr,
    /// Internal peer.
    pub ibgp: bool,
    /// The smaller of both hold times; 0 means no keepalives.
    pub hold_time: HoldTime,
    /// Interval between our KEEPALIVEs (a third of the hold time), zero
    /// when the hold time is 0.
    pub keepalive: Duration,
    /// The codec context for this session's messages.
    pub context: Context,
    /// Families both sides advertised.
    pub families: Vec<(Afi, Safi)>,
    /// Both sides advertised route refresh.
    pub route_refresh: bool,
    /// The peer's graceful restart capability, if it sent one and we run
    /// the helper; the RIB reads the restart time and F bits from it.
    pub peer_graceful_restart: Option<GracefulRestart>,
    /// Both sides set the N bit (RFC 8538).
    pub notification_bit: bool,
    /// The peer's OPEN, as received.
    pub remote_open: OpenRepr,
}

impl Negotiated {
    /// Whether graceful restart helper mode applies to this session: we
    /// enabled it and the peer listed IPv6 unicast in its capability.
    pub fn graceful_restart_helper(&self) -> bool {
        self.peer_graceful_restart.as_ref().is_some_and(|gr| {
            gr.families
                .iter()
                .any(|f| (f.afi, f.safi) == (Afi::Ipv6, Safi::Unicast))
        })
    }

    /// The peer's restart time, if helper mode applies.
    pub fn restart_time(&self) -> Option<Duration> {
        let gr = self.peer_graceful_restart.as_ref()?;
        self.graceful_restart_helper()
            .then(|| Duration::from_secs(u64::from(gr.restart_time)))
    }

    /// Whether the peer says it kept forwarding state for IPv6 unicast (F
    /// bit, RFC 4724 section 4.2); if not, stale routes go at once.
    pub fn ipv6_forwarding_preserved(&self) -> bool {
        self.peer_graceful_restart.as_ref().is_some_and(|gr| {
            gr.families
                .iter()
                .any(|f| (f.afi, f.safi) == (Afi::Ipv6, Safi::Unicast) && f.forwarding_state)
        })
    }
}

/// A teardown the session did not decide itself: the RIB's max-prefix
/// limit (RFC 4486 subcode 1), or an operator reset. The driver feeds it
/// as [`Input::Teardown`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Teardown {
    /// The NOTIFICATION to send (e.g. Cease / Maximum Number of Prefixes
    /// Reached).
    pub notification: NotificationRepr,
    /// Send it wrapped in a Hard Reset (RFC 8538) when the N bit was
    /// negotiated, so that no side keeps the routes stale.
    pub hard_reset: bool,
    /// Refuse the peer for this long before restarting the session.
    pub refuse_for: Duration,
}

impl Teardown {
    /// The FSM input for this teardown.
    pub fn into_input(self) -> Input {
        Input::Teardown(self)
    }
}

/// Events fed to [`Session::handle`].
// Message is large; inputs are transient.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// Start, connecting to the peer (RFC 4271 event 1).
    ManualStart,
    /// Start, waiting for the peer to connect (event 4).
    ManualStartPassive,
    /// Stop: Cease / Administrative Shutdown if a connection is up (event 2).
    ManualStop,
    /// Stop with a NOTIFICATION and refuse the peer for a while (the RIB's
    /// max-prefix limit).
    Teardown(Teardown),
    /// A TCP connection is up, ours or the peer's (events 16/17).
    TcpConnected(Direction),
    /// Our connection attempt failed (event 18).
    TcpConnectionFails,
    /// The peer closed the connection (FIN or RST) without a NOTIFICATION
    /// (event 18 once connected).
    TcpClosed,
    /// A decoded message (events 19-28).
    Message(Message),
    /// A message that did not decode: the NOTIFICATION to send (events
    /// 21, 22, 25, 28).
    DecodeError(Error),
    /// A timer fired (events 9-13).
    TimerExpired(Timer),
    /// This connection lost a collision (event 23, OpenCollisionDump).
    CollisionDump,
}

/// Why an Established session ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DownReason {
    /// `ManualStop`.
    ManualStop,
    /// We sent this NOTIFICATION (a [`Teardown`], a decode or FSM error,
    /// a collision); as sent, Hard Reset wrapping included.
    NotificationSent(NotificationRepr),
    /// The peer sent this NOTIFICATION.
    NotificationReceived(NotificationRepr),
    /// The peer was silent for the hold time.
    HoldTimerExpired,
    /// The connection closed without a NOTIFICATION.
    TcpClosed,
}

/// What the driver must do, in order.
// Update and Established are large; outputs are transient.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Open a TCP connection to the peer; report `TcpConnected(Outbound)`
    /// or `TcpConnectionFails`.
    Connect,
    /// Send a message on the connection.
    SendMessage(Message),
    /// Close (or refuse) the connection, after sending what came before.
    CloseTcp,
    /// (Re)start a timer.
    ArmTimer(Timer, Duration),
    /// Stop a timer.
    CancelTimer(Timer),
    /// The peer's OPEN was accepted; the driver checks for a collision
    /// with another connection of the same peer ([`resolve_collision`]).
    OpenReceived {
        /// The peer's BGP identifier.
        remote_id: Ipv4Addr,
    },
    /// The session is up. End-of-RIB for every negotiated family follows
    /// as `SendMessage`s; the RIB decides what else to send.
    Established(Negotiated),
    /// The Established session ended.
    Down {
        /// Why.
        reason: DownReason,
        /// Graceful restart helper mode applies: keep the routes stale.
        graceful: bool,
    },
    /// An UPDATE for the RIB.
    Update(ParsedUpdate),
    /// The peer asked for our routes again (RFC 2918).
    RouteRefresh(RouteRefreshRepr),
}

/// One BGP session (see the module docs).
#[derive(Debug, Clone)]
pub struct Session {
    config: SessionConfig,
    state: State,
    mode: Option<StartMode>,
    direction: Option<Direction>,
    remote_open: Option<OpenRepr>,
    negotiated: Option<Negotiated>,
    armed: [bool; 4],
}

impl Session {
    /// A session in Idle.
    pub fn new(config: SessionConfig) -> Session {
        Session {
            config,
            state: State::Idle,
            mode: None,
            direction: None,
            remote_open: None,
            negotiated: None,
            armed: [false; 4],
        }
    }

    /// Sets the ConnectRetry time, from the next time the timer is armed
    /// (a running session is not affected: it has no such timer).
    pub fn set_connect_retry(&mut self, d: Duration) {
        self.config.connect_retry = d;
    }

    /// The configuration.
    pub fn config(&self) -> &SessionConfig {
        &self.config
    }

    /// The current state.
    pub fn state(&self) -> State {
        self.state
    }

    /// How the session was started; `None` once stopped.
    pub fn start_mode(&self) -> Option<StartMode> {
        self.mode
    }

    /// Who opened the current connection.
    pub fn direction(&self) -> Option<Direction> {
        self.direction
    }

    /// The peer's OPEN on the current connection, once received.
    pub fn remote_open(&self) -> Option<&OpenRepr> {
        self.remote_open.as_ref()
    }

    /// What was negotiated, while Established.
    pub fn negotiated(&self) -> Option<&Negotiated> {
        self.negotiated.as_ref()
    }

    /// Whether connections from the peer are refused (idle hold after a
    /// [`Teardown`]).
    pub fn refusing(&self) -> bool {
        self.armed[Timer::IdleHold.index()]
    }

    /// The codec context to decode the next message with: the default
    /// until both OPENs are known.
    pub fn codec_context(&self) -> Context {
        match &self.remote_open {
            Some(remote) => Context::negotiated(&self.config.open(), remote),
            None => Context::default(),
        }
    }

    /// Feeds one event; returns what to do, in order.
    pub fn handle(&mut self, input: Input) -> Vec<Output> {
        let mut out = Vec::new();
        self.step(input, &mut out);
        out
    }

    fn arm(&mut self, timer: Timer, d: Duration, out: &mut Vec<Output>) {
        self.armed[timer.index()] = true;
        out.push(Output::ArmTimer(timer, d));
    }

    fn cancel(&mut self, timer: Timer, out: &mut Vec<Output>) {
        if std::mem::take(&mut self.armed[timer.index()]) {
            out.push(Output::CancelTimer(timer));
        }
    }

    fn cancel_all(&mut self, out: &mut Vec<Output>) {
        for t in Timer::ALL {
            self.cancel(t, out);
        }
    }

    fn connected(&self) -> bool {
        matches!(
            self.state,
            State::OpenSent | State::OpenConfirm | State::Established
        )
    }

    fn step(&mut self, input: Input, out: &mut Vec<Output>) {
        if let Input::TimerExpired(t) = input {
            if !self.armed[t.index()] {
                return;
            }
            self.armed[t.index()] = false;
        }
        match input {
            Input::ManualStart => self.start(StartMode::Active, out),
            Input::ManualStartPassive => self.start(StartMode::Passive, out),
            Input::ManualStop => self.stop(out),
            Input::Teardown(t) => self.teardown(t, out),
            Input::TcpConnected(direction) => self.tcp_connected(direction, out),
            Input::TcpConnectionFails | Input::TcpClosed => self.tcp_down(out),
            Input::Message(m) => self.message(m, out),
            Input::DecodeError(e) => {
                let n = e.notification();
                // An UPDATE before Established is an FSM error however it
                // is malformed (RFC 4271 8.2.2 event 28, RFC 6608).
                match (self.state, n.code) {
                    (State::OpenSent, ErrorCode::Update) => {
                        self.fsm_error(FsmSubcode::UnexpectedInOpenSent, out);
                    }
                    (State::OpenConfirm, ErrorCode::Update) => {
                        self.fsm_error(FsmSubcode::UnexpectedInOpenConfirm, out);
                    }
                    _ if self.connected() => self.fail_with(n, out),
                    _ => {}
                }
            }
            Input::TimerExpired(t) => self.timer(t, out),
            Input::CollisionDump => {
                if self.connected() {
                    let n = NotificationRepr::cease(CeaseSubcode::ConnectionCollisionResolution);
                    self.fail_with(n, out);
                }
            }
        }
    }

    fn start(&mut self, mode: StartMode, out: &mut Vec<Output>) {
        if self.state != State::Idle {
            // Already running: a start only changes the mode.
            self.mode = Some(mode);
            return;
        }
        self.cancel(Timer::IdleHold, out);
        self.mode = Some(mode);
        self.begin(out);
    }

    /// Leaves Idle in the current mode.
    fn begin(&mut self, out: &mut Vec<Output>) {
        match self.mode {
            Some(StartMode::Active) => {
                self.state = State::Connect;
                self.arm(Timer::ConnectRetry, self.config.connect_retry, out);
                out.push(Output::Connect);
            }
            Some(StartMode::Passive) => self.state = State::Active,
            None => self.state = State::Idle,
        }
    }

    /// After a failure: restart in the same mode (see the module docs).
    fn restart(&mut self, out: &mut Vec<Output>) {
        self.clear_connection();
        match self.mode {
            Some(StartMode::Active) => {
                self.state = State::Active;
                self.arm(Timer::ConnectRetry, self.config.connect_retry, out);
            }
            Some(StartMode::Passive) => self.state = State::Active,
            None => self.state = State::Idle,
        }
    }

    fn clear_connection(&mut self) {
        self.direction = None;
        self.remote_open = None;
        self.negotiated = None;
    }

    fn stop(&mut self, out: &mut Vec<Output>) {
        if self.connected() {
            let n = self.outgoing_cease(
                NotificationRepr::cease(CeaseSubcode::AdministrativeShutdown),
                true,
            );
            out.push(Output::SendMessage(Message::Notification(n)));
            out.push(Output::CloseTcp);
            self.down(DownReason::ManualStop, false, out);
        } else if self.state == State::Connect {
            out.push(Output::CloseTcp);
        }
        self.cancel_all(out);
        self.clear_connection();
        self.mode = None;
        self.state = State::Idle;
    }

    /// Wraps a Cease in a Hard Reset when asked and the N bit was
    /// negotiated both ways.
    fn outgoing_cease(&self, n: NotificationRepr, hard_reset: bool) -> NotificationRepr {
        let n_bit = self.negotiated.as_ref().is_some_and(|n| n.notification_bit);
        if hard_reset && n_bit && !n.is_hard_reset() {
            NotificationRepr::hard_reset(&n)
        } else {
            n
        }
    }

    fn teardown(&mut self, t: Teardown, out: &mut Vec<Output>) {
        if self.connected() {
            let n = self.outgoing_cease(t.notification, t.hard_reset);
            out.push(Output::SendMessage(Message::Notification(n.clone())));
            out.push(Output::CloseTcp);
            let graceful = self.graceful(&DownReason::NotificationSent(n.clone()));
            self.down(DownReason::NotificationSent(n), graceful, out);
        } else if self.state == State::Connect {
            out.push(Output::CloseTcp);
        }
        self.cancel_all(out);
        self.clear_connection();
        self.state = State::Idle;
        self.arm(Timer::IdleHold, t.refuse_for, out);
    }

    fn tcp_connected(&mut self, direction: Direction, out: &mut Vec<Output>) {
        match self.state {
            State::Connect | State::Active => {
                self.cancel(Timer::ConnectRetry, out);
                self.direction = Some(direction);
                out.push(Output::SendMessage(Message::Open(self.config.open())));
                self.arm(Timer::Hold, OPEN_HOLD_TIME, out);
                self.state = State::OpenSent;
            }
            // Stopped or refusing: turn the connection away.
            State::Idle => out.push(Output::CloseTcp),
            // A second connection belongs to a second Session.
            State::OpenSent | State::OpenConfirm | State::Established => {}
        }
    }

    fn tcp_down(&mut self, out: &mut Vec<Output>) {
        match self.state {
            State::Idle | State::Active => {}
            State::Connect => {
                // Retry when ConnectRetry fires; accept meanwhile.
                self.state = State::Active;
            }
            State::OpenSent | State::OpenConfirm | State::Established => {
                out.push(Output::CloseTcp);
                let graceful = self.graceful(&DownReason::TcpClosed);
                self.down(DownReason::TcpClosed, graceful, out);
                self.cancel_all(out);
                self.restart(out);
            }
        }
    }

    fn timer(&mut self, t: Timer, out: &mut Vec<Output>) {
        match (t, self.state) {
            (Timer::ConnectRetry, State::Connect | State::Active)
                if self.mode == Some(StartMode::Active) =>
            {
                if self.state == State::Connect {
                    out.push(Output::CloseTcp);
                }
                self.state = State::Connect;
                self.arm(Timer::ConnectRetry, self.config.connect_retry, out);
                out.push(Output::Connect);
            }
            (Timer::Hold, State::OpenSent | State::OpenConfirm | State::Established) => {
                let n = NotificationRepr::new(ErrorCode::HoldTimerExpired, 0);
                out.push(Output::SendMessage(Message::Notification(n)));
                out.push(Output::CloseTcp);
                let graceful = self.graceful(&DownReason::HoldTimerExpired);
                self.down(DownReason::HoldTimerExpired, graceful, out);
                self.cancel_all(out);
                self.restart(out);
            }
            (Timer::Keepalive, State::OpenConfirm | State::Established) => {
                out.push(Output::SendMessage(Message::Keepalive));
                self.arm_keepalive(out);
            }
            (Timer::IdleHold, State::Idle) => self.begin(out),
            _ => {}
        }
    }

    fn arm_keepalive(&mut self, out: &mut Vec<Output>) {
        let ka = self.hold().keepalive_interval();
        if ka > 0 {
            self.arm(Timer::Keepalive, Duration::from_secs(u64::from(ka)), out);
        }
    }

    fn arm_hold(&mut self, out: &mut Vec<Output>) {
        let hold = self.hold().seconds();
        if hold > 0 {
            self.arm(Timer::Hold, Duration::from_secs(u64::from(hold)), out);
        } else {
            self.cancel(Timer::Hold, out);
        }
    }

    fn hold(&self) -> HoldTime {
        match &self.remote_open {
            Some(r) => self.config.hold_time.negotiate(r.hold_time),
            None => self.config.hold_time,
        }
    }

    fn message(&mut self, m: Message, out: &mut Vec<Output>) {
        match self.state {
            State::Idle | State::Connect | State::Active => {}
            State::OpenSent => match m {
                Message::Open(open) => self.open_received(open, out),
                Message::Notification(n) => self.notification_received(n, out),
                _ => self.fsm_error(FsmSubcode::UnexpectedInOpenSent, out),
            },
            State::OpenConfirm => match m {
                Message::Keepalive => self.established(out),
                Message::Notification(n) => self.notification_received(n, out),
                _ => self.fsm_error(FsmSubcode::UnexpectedInOpenConfirm, out),
            },
            State::Established => match m {
                Message::Keepalive => self.arm_hold(out),
                Message::Update(u) => {
                    self.arm_hold(out);
                    out.push(Output::Update(u));
                }
                Message::RouteRefresh(rr) => {
                    self.arm_hold(out);
                    // RFC 2918 section 4: only for a negotiated family.
                    // RFC 7313: only subtype 0 asks for the routes; 1 and
                    // 2 mark the bounds of a refresh we would send (we do
                    // not advertise enhanced route refresh) and others
                    // are to be ignored (section 3.2).
                    let known = self
                        .negotiated
                        .as_ref()
                        .is_some_and(|n| n.families.contains(&(rr.afi, rr.safi)));
                    if known && rr.subtype == RouteRefreshSubtype::Normal {
                        out.push(Output::RouteRefresh(rr));
                    }
                }
                Message::Notification(n) => self.notification_received(n, out),
                Message::Open(_) => self.fsm_error(FsmSubcode::UnexpectedInEstablished, out),
            },
        }
    }

    fn fsm_error(&mut self, subcode: FsmSubcode, out: &mut Vec<Output>) {
        self.fail_with(NotificationRepr::new(ErrorCode::Fsm, subcode.into()), out);
    }

    /// Sends `n`, closes, reports Down if Established, restarts.
    fn fail_with(&mut self, n: NotificationRepr, out: &mut Vec<Output>) {
        out.push(Output::SendMessage(Message::Notification(n.clone())));
        out.push(Output::CloseTcp);
        let reason = DownReason::NotificationSent(n);
        let graceful = self.graceful(&reason);
        self.down(reason, graceful, out);
        self.cancel_all(out);
        self.restart(out);
    }

    fn notification_received(&mut self, n: NotificationRepr, out: &mut Vec<Output>) {
        out.push(Output::CloseTcp);
        let reason = DownReason::NotificationReceived(n);
        let graceful = self.graceful(&reason);
        self.down(reason, graceful, out);
        self.cancel_all(out);
        self.restart(out);
    }

    /// Emits `Down` if the session was Established.
    fn down(&mut self, reason: DownReason, graceful: bool, out: &mut Vec<Output>) {
        if self.state == State::Established {
            out.push(Output::Down { reason, graceful });
        }
    }

    /// Whether an Established session ending for `reason` keeps its
    /// routes stale (module docs, "Graceful restart").
    fn graceful(&self, reason: &DownReason) -> bool {
        let Some(n) = self.negotiated.as_ref() else {
            return false;
        };
        if self.state != State::Established || !n.graceful_restart_helper() {
            return false;
        }
        match reason {
            DownReason::TcpClosed | DownReason::HoldTimerExpired => true,
            DownReason::NotificationSent(m) | DownReason::NotificationReceived(m) => {
                n.notification_bit && !m.is_hard_reset()
            }
            DownReason::ManualStop => false,
        }
    }

    /// Checks the peer's OPEN against the configuration (RFC 4271 section
    /// 6.2; the codec already checked the syntax).
    pub fn check_open(&self, open: &OpenRepr) -> Result<(), Error> {
        if open.asn() != self.config.peer_asn {
            return Err(Error::BadPeerAs(open.asn()));
        }
        if self.config.ibgp() && open.bgp_id == self.config.router_id {
            return Err(Error::BadBgpIdentifier(open.bgp_id));
        }
        for (afi, safi) in FAMILIES {
            if !open.multiprotocol().any(|f| f == (afi, safi)) {
                let mut data = vec![1, 4];
                data.extend_from_slice(&u16::from(afi).to_be_bytes());
                data.extend_from_slice(&[0, safi.into()]);
                return Err(Error::UnsupportedCapability(data));
            }
        }
        Ok(())
    }

    fn open_received(&mut self, open: OpenRepr, out: &mut Vec<Output>) {
        if let Err(e) = self.check_open(&open) {
            self.fail_with(e.notification(), out);
            return;
        }
        let remote_id = open.bgp_id;
        self.remote_open = Some(open);
        out.push(Output::SendMessage(Message::Keepalive));
        self.arm_hold(out);
        self.arm_keepalive(out);
        self.state = State::OpenConfirm;
        out.push(Output::OpenReceived { remote_id });
    }

    fn established(&mut self, out: &mut Vec<Output>) {
        let Some(remote) = self.remote_open.clone() else {
            return;
        };
        let local = self.config.open();
        let hold_time = self.hold();
        let peer_gr = remote.graceful_restart().cloned();
        let local_gr = self.config.graceful_restart;
        let families: Vec<(Afi, Safi)> = FAMILIES
            .iter()
            .copied()
            .filter(|f| remote.multiprotocol().any(|r| r == *f))
            .collect();
        let negotiated = Negotiated {
            remote_asn: remote.asn(),
            remote_id: remote.bgp_id,
            ibgp: self.config.ibgp(),
            hold_time,
            keepalive: Duration::from_secs(u64::from(hold_time.keepalive_interval())),
            context: Context::negotiated(&local, &remote),
            route_refresh: local.has_capability(crate::wire::CapabilityCode::RouteRefresh)
                && remote.has_capability(crate::wire::CapabilityCode::RouteRefresh),
            notification_bit: local_gr.is_some_and(|g| g.notification)
                && peer_gr.as_ref().is_some_and(|g| g.notification),
            peer_graceful_restart: if local_gr.is_some() { peer_gr } else { None },
            families,
            remote_open: remote,
        };
        self.arm_hold(out);
        self.state = State::Established;
        let eors: Vec<Output> = negotiated
            .families
            .iter()
            .map(|&(afi, safi)| {
                Output::SendMessage(Message::Update(UpdateRepr::end_of_rib(afi, safi).into()))
            })
            .collect();
        self.negotiated = Some(negotiated.clone());
        out.push(Output::Established(negotiated));
        out.extend(eors);
    }
}

/// Which of two connections to the same peer survives a collision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Survivor {
    /// Keep the existing session; feed `loser_input` to the new one.
    Existing,
    /// Keep the new session; feed `loser_input` to the existing one.
    New,
}

/// The outcome of [`resolve_collision`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CollisionDecision {
    /// The connection that stays.
    pub survivor: Survivor,
    /// What to feed the other session.
    pub loser_input: Input,
}

/// Collision detection (RFC 4271 section 6.8) between `existing`, a
/// session of the peer, and `new`, another connection of the same peer
/// that just received the peer's OPEN (`Output::OpenReceived`).
///
/// - `existing` has no connection (Idle, Connect, Active): no collision,
///   `new` survives (and `existing`, having nothing to close, ignores
///   `CollisionDump`).
/// - `existing` is Established: if the peer advertised graceful restart
///   on it and does again in the new OPEN, this is a restarted peer whose
///   FIN we missed (RFC 4724 section 4.2): `new` survives and `existing`
///   ends as if its TCP connection had closed (routes kept stale).
///   Otherwise `existing` survives.
/// - `existing` is in OpenSent or OpenConfirm: the connection opened by
///   the speaker with the higher BGP identifier survives (equal
///   identifiers: the higher AS, RFC 6286 section 2.3); if both were
///   opened by the same side, the newer one survives.
pub fn resolve_collision(existing: &Session, new: &Session) -> CollisionDecision {
    let new_wins = CollisionDecision {
        survivor: Survivor::New,
        loser_input: Input::CollisionDump,
    };
    let existing_wins = CollisionDecision {
        survivor: Survivor::Existing,
        loser_input: Input::CollisionDump,
    };
    let new_open = new.remote_open();
    match existing.state() {
        State::Idle | State::Connect | State::Active => new_wins,
        State::Established => {
            let restarted = existing
                .negotiated()
                .is_some_and(Negotiated::graceful_restart_helper)
                && new_open.is_some_and(|o| o.graceful_restart().is_some());
            if restarted {
                CollisionDecision {
                    survivor: Survivor::New,
                    loser_input: Input::TcpClosed,
                }
            } else {
                existing_wins
            }
        }
        State::OpenSent | State::OpenConfirm => {
            let (Some(e), Some(n)) = (existing.direction(), new.direction()) else {
                return new_wins;
            };
            if e == n {
                return new_wins;
            }
            let cfg = existing.config();
            let remote_id = new_open.map(|o| o.bgp_id).unwrap_or(Ipv4Addr::UNSPECIFIED);
            let local_higher = match cfg.router_id.cmp(&remote_id) {
                std::cmp::Ordering::Equal => cfg.local_asn > cfg.peer_asn,
                ord => ord == std::cmp::Ordering::Greater,
            };
            // The higher speaker's own (outbound, from our view when we
            // are higher) connection survives.
            let keep = if local_higher {
                Direction::Outbound
            } else {
                Direction::Inbound
            };
            if n == keep {
                new_wins
            } else {
                existing_wins
            }
        }
    }
}

#[cfg(test)]
mod tests;
