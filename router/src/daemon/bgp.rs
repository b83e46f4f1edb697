//! BGP in the daemon: the `bgp` crate's tokio [`Speaker`] on its own
//! thread (a current-thread runtime), its events forwarded to the control
//! thread as [`Msg::Bgp`], and queries (`show bgp summary`), operator
//! actions (`neighbor ADDR reset|disable|enable`) and `reload` answered
//! through a command channel.
//!
//! [`speaker_config`] maps the router configuration (DESIGN.md section 6)
//! onto the speaker's.

use std::net::{Ipv6Addr, SocketAddr};
use std::sync::mpsc::{self, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bgp::driver::{
    AdminAction, AdminError, Event, ListenRange, Neighbor, PeerSettings, PeerSummary,
    ReconfigureError, Speaker, SpeakerConfig,
};
use bgp::fsm::GracefulRestartConfig;
use bgp::policy::ImportPolicy;
use bgp::rib::{NextHopReach, RouteView};
use ipnet::Ipv6Net;
use tokio::sync::mpsc as tmpsc;
use tokio::task::JoinSet;

use super::{io_err, log, DaemonError, Msg};
use crate::config::Session;
use crate::Config;

/// One line per external session without an import list, which accepts
/// no route (RFC 8212): the daemon logs them at start and at reload.
pub fn policy_notes(c: &Config) -> Vec<String> {
    let ranges = c
        .bgp
        .listen
        .iter()
        .enumerate()
        .map(|(i, l)| (format!("bgp.listen[{i}] ({})", l.range), &l.session));
    let neighbors = c
        .bgp
        .neighbors
        .iter()
        .enumerate()
        .map(|(i, n)| (format!("bgp.neighbor[{i}] ({})", n.address), &n.session));
    ranges
        .chain(neighbors)
        .filter(|(_, s)| s.import_default_deny)
        .map(|(what, s)| {
            format!(
                "{what}: external session (AS {}) without an import list accepts no \
                 route (RFC 8212); write the prefixes it may announce in `import`",
                s.peer_asn
            )
        })
        .collect()
}

/// Whether the configuration asks for BGP at all.
pub fn wanted(c: &Config) -> bool {
    !c.bgp.listen.is_empty() || !c.bgp.neighbors.is_empty()
}

fn net(p: &fib::Prefix) -> Ipv6Net {
    // A fib::Prefix is always a valid prefix.
    Ipv6Net::new(p.addr(), p.len()).unwrap_or_default()
}

fn settings(s: &Session) -> PeerSettings {
    let mut out = PeerSettings::new(s.peer_asn);
    out.hold_time = s.hold_time;
    out.connect_retry = s.connect_retry;
    out.graceful_restart = s.graceful_restart.then(GracefulRestartConfig::default);
    let mut import = ImportPolicy::default();
    import.allow = s.import.clone();
    import.max_prefixes = s.max_prefixes.map(|n| n.get());
    out.import = import;
    out.export = s.export.clone();
    out.max_prefix_idle = s.max_prefixes_idle_time;
    out.password = s.password.as_ref().map(|p| p.as_bytes().to_vec());
    out.ttl_security = s.ttl_security;
    out
}

/// The speaker's configuration for a router configuration: our AS and
/// router id, the port, multipath, listen ranges and neighbours with their
/// sessions' settings, and what we originate (aggregates and static
/// routes, announced where export lists allow).
pub fn speaker_config(c: &Config) -> SpeakerConfig {
    let mut s = SpeakerConfig::new(c.router.asn, c.router.router_id);
    s.listen = SocketAddr::new(Ipv6Addr::UNSPECIFIED.into(), c.bgp.port);
    s.remote_port = c.bgp.port;
    s.rib.decision.max_paths = c.bgp.multipath.max_paths;
    s.rib.decision.as_path_relax = c.bgp.multipath.as_path_relax;
    s.ranges = c
        .bgp
        .listen
        .iter()
        .map(|l| ListenRange::new(net(&l.range), settings(&l.session)))
        .collect();
    s.neighbors = c
        .bgp
        .neighbors
        .iter()
        .map(|n| {
            let mut out = Neighbor::new(n.address, settings(&n.session));
            out.passive = n.passive;
            out
        })
        .collect();
    s.originated = c
        .bgp
        .aggregates
        .iter()
        .chain(c.routes.iter().map(|r| &r.prefix))
        .map(net)
        .collect();
    s
}

enum Cmd {
    Peers(Sender<Vec<PeerSummary>>),
    Routes(Option<Ipv6Net>, usize, Sender<Vec<RouteView>>),
    Admin(Ipv6Addr, AdminAction, Sender<Result<String, AdminError>>),
    Reconfigure(Box<SpeakerConfig>, Sender<Result<String, ReconfigureError>>),
    NextHopReach(NextHopReach),
    Resend(Vec<Ipv6Net>),
}

/// Runs one command against the speaker and sends the answer.
async fn command(speaker: Arc<Speaker>, cmd: Cmd) {
    match cmd {
        Cmd::Peers(reply) => {
            let _ = reply.send(speaker.peers().await);
        }
        Cmd::Routes(prefix, max, reply) => {
            let _ = reply.send(speaker.routes(prefix, max).await);
        }
        Cmd::Admin(address, action, reply) => {
            let _ = reply.send(speaker.admin(address, action).await);
        }
        Cmd::Reconfigure(config, reply) => {
            let _ = reply.send(speaker.reconfigure(*config).await);
        }
        Cmd::NextHopReach(reach) => speaker.set_next_hop_reach(reach).await,
        Cmd::Resend(prefixes) => speaker.resend(prefixes).await,
    }
}

/// The BGP thread; the speaker shuts its sessions down (Cease) when this
/// drops.
pub(super) struct Bgp {
    cmds: Option<tmpsc::Sender<Cmd>>,
    thread: Option<JoinHandle<()>>,
}

impl Bgp {
    /// Starts the speaker; returns once it listens (or failed to).
    pub(super) fn start(config: SpeakerConfig, tx: Sender<Msg>) -> Result<Bgp, DaemonError> {
        let (cmds, mut cmd_rx) = tmpsc::channel::<Cmd>(16);
        let (ready_tx, ready_rx) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("flatedge-bgp".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                rt.block_on(async move {
                    let (speaker, mut events) = match Speaker::start(config).await {
                        Ok(v) => v,
                        Err(e) => {
                            let _ = ready_tx.send(Err(e));
                            return;
                        }
                    };
                    let _ = ready_tx.send(Ok(speaker.local_addr()));
                    // Commands run as tasks of their own, so that this
                    // loop keeps forwarding events while one waits for the
                    // speaker: the speaker may itself be waiting for room
                    // in the event channel (a peer's routes going away)
                    // before it reads the command.
                    let speaker = Arc::new(speaker);
                    let mut tasks = JoinSet::new();
                    loop {
                        tokio::select! {
                            ev = events.recv() => match ev {
                                Some(ev) => {
                                    if tx.send(Msg::Bgp(ev)).is_err() {
                                        break;
                                    }
                                }
                                None => break,
                            },
                            cmd = cmd_rx.recv() => match cmd {
                                Some(cmd) => {
                                    tasks.spawn(command(Arc::clone(&speaker), cmd));
                                }
                                None => break,
                            },
                            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
                        }
                    }
                    tasks.shutdown().await;
                    if let Ok(speaker) = Arc::try_unwrap(speaker) {
                        speaker.shutdown().await;
                    }
                });
            })
            .map_err(io_err("spawn the BGP thread"))?;
        match ready_rx.recv() {
            Ok(Ok(addr)) => log!("BGP listening on {addr}"),
            Ok(Err(e)) => {
                let _ = thread.join();
                return Err(DaemonError::Io {
                    what: "start BGP".into(),
                    source: e,
                });
            }
            Err(_) => {
                let _ = thread.join();
                return Err(DaemonError::Io {
                    what: "start BGP".into(),
                    source: std::io::Error::other("the BGP thread died"),
                });
            }
        }
        Ok(Bgp {
            cmds: Some(cmds),
            thread: Some(thread),
        })
    }

    /// A handle for questions to the speaker from another thread (the
    /// ctl connections' threads, so that a speaker slow to answer never
    /// holds up the control thread); `None` once BGP is stopping.
    pub(super) fn query(&self) -> Option<BgpQuery> {
        Some(BgpQuery {
            cmds: self.cmds.clone()?,
        })
    }

    /// Tells the speaker which next hops resolve (on the connected
    /// subnets and interfaces, which changed); false if its command queue
    /// is full or it is stopping (try again later). Never blocks.
    pub(super) fn set_next_hop_reach(&self, reach: NextHopReach) -> bool {
        self.cmds
            .as_ref()
            .is_some_and(|c| c.try_send(Cmd::NextHopReach(reach)).is_ok())
    }

    /// Asks the speaker to send the RIB's paths of `prefixes` again, as
    /// BGP changes in the order of the others (a route of ours that hid
    /// them went away). Never blocks: false if its command queue is full
    /// or it is stopping (the caller keeps them and tries again).
    pub(super) fn resend(&self, prefixes: Vec<Ipv6Net>) -> bool {
        self.cmds
            .as_ref()
            .is_some_and(|c| c.try_send(Cmd::Resend(prefixes)).is_ok())
    }

    /// Hands the speaker a new configuration's peers and originated
    /// prefixes from a thread of its own, which sends its answer to `to`
    /// as [`Msg::ReloadBgp`] (`None` when none came within `wait`).
    pub(super) fn reconfigure(&self, config: SpeakerConfig, to: Sender<Msg>, wait: Duration) {
        let Some(cmds) = self.cmds.clone() else {
            let _ = to.send(stopped());
            return;
        };
        let fallback = to.clone();
        // The command is sent from the waiting thread: if that thread
        // cannot be made, BGP is not given the configuration at all.
        let send_and_wait = move || {
            let (tx, rx) = mpsc::channel();
            if cmds
                .blocking_send(Cmd::Reconfigure(Box::new(config), tx))
                .is_err()
            {
                let _ = to.send(stopped());
                return;
            }
            match rx.recv_timeout(wait) {
                Ok(answer) => {
                    let _ = to.send(Msg::ReloadBgp(Some(answer)));
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let _ = to.send(stopped());
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    let _ = to.send(Msg::ReloadBgp(None));
                    // The reload has put the old routes back by now.
                    match rx.recv() {
                        Ok(Ok(m)) => log!(
                            "BGP took a reload's configuration after {} s ({m}), after the \
                             routes were put back: BGP and the FIB differ; reload again",
                            wait.as_secs()
                        ),
                        Ok(Err(e)) => log!("BGP refused a reload's configuration late: {e}"),
                        Err(_) => {}
                    }
                }
            }
        };
        let spawned = std::thread::Builder::new()
            .name("flatedge-reload".into())
            .spawn(send_and_wait);
        if let Err(e) = spawned {
            log!("reload: cannot start the thread that hands BGP the configuration: {e}");
            let _ = fallback.send(stopped());
        }
    }
}

/// A reload's answer when the speaker is gone (or cannot be reached).
fn stopped() -> Msg {
    Msg::ReloadBgp(Some(Err(ReconfigureError::Stopped)))
}

/// Questions to the speaker, from any thread; each waits up to 5 s.
#[derive(Clone)]
pub(super) struct BgpQuery {
    cmds: tmpsc::Sender<Cmd>,
}

impl BgpQuery {
    /// The RIB's paths of `prefix`, or of up to `max` prefixes (`None` if
    /// the speaker does not answer).
    pub(super) fn routes(
        &self,
        prefix: Option<Ipv6Net>,
        max: usize,
    ) -> Result<Vec<RouteView>, NoAnswer> {
        self.ask(|tx| Cmd::Routes(prefix, max, tx), Duration::from_secs(5))
    }

    /// `neighbor ADDR reset|disable|enable` (`None` if the speaker does
    /// not answer).
    pub(super) fn admin(
        &self,
        address: Ipv6Addr,
        action: AdminAction,
    ) -> Result<Result<String, AdminError>, NoAnswer> {
        self.ask(|tx| Cmd::Admin(address, action, tx), Duration::from_secs(5))
    }

    /// Every peer's summary.
    pub(super) fn peers(&self) -> Result<Vec<PeerSummary>, NoAnswer> {
        self.ask(Cmd::Peers, Duration::from_secs(5))
    }

    /// Hands the BGP thread the command `cmd` makes of a reply channel and
    /// waits for the answer, `wait` at most in all: a speaker too busy to
    /// take commands (its queue full) counts against the same time, so a
    /// ctl connection's thread is never held longer.
    fn ask<T>(&self, cmd: impl FnOnce(Sender<T>) -> Cmd, wait: Duration) -> Result<T, NoAnswer> {
        let deadline = Instant::now() + wait;
        let (tx, rx) = mpsc::channel();
        let mut cmd = cmd(tx);
        loop {
            match self.cmds.try_send(cmd) {
                Ok(()) => break,
                Err(tmpsc::error::TrySendError::Closed(_)) => return Err(NoAnswer::Gone),
                Err(tmpsc::error::TrySendError::Full(c)) => {
                    if Instant::now() >= deadline {
                        return Err(NoAnswer::Late(wait));
                    }
                    cmd = c;
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
        }
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(t) => Ok(t),
            Err(mpsc::RecvTimeoutError::Timeout) => Err(NoAnswer::Late(wait)),
            Err(mpsc::RecvTimeoutError::Disconnected) => Err(NoAnswer::Gone),
        }
    }
}

/// Why the BGP speaker gave no answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum NoAnswer {
    /// Its thread has stopped (it dropped the question).
    Gone,
    /// Not within this time (busy): a change asked for may still be made.
    Late(Duration),
}

impl NoAnswer {
    /// The ctl's error answer; `pending` says what may still happen after
    /// a late answer ("" for a question that changes nothing).
    pub(super) fn response(self, pending: &str) -> ::ctl::Response {
        use ::ctl::{ErrorCode, Response};
        match self {
            NoAnswer::Gone => Response::error(
                ErrorCode::Internal,
                "the BGP speaker has stopped (see the log)",
            ),
            NoAnswer::Late(wait) => Response::error(
                ErrorCode::Timeout,
                format!(
                    "the BGP speaker did not answer within {} s{pending}",
                    wait.as_secs()
                ),
            ),
        }
    }
}

impl Drop for Bgp {
    fn drop(&mut self) {
        // Closing the command channel makes the thread shut the speaker
        // down (NOTIFICATION Cease to every peer) and exit, once the
        // BgpQuery clones of ctl requests in flight are gone too (5 s at
        // most each).
        drop(self.cmds.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A log line for a session event (changes are not logged).
pub(super) fn describe(ev: &Event) -> Option<String> {
    match ev {
        Event::Established { address, .. } => Some(format!("BGP peer {address}: established")),
        Event::Down {
            address,
            reason,
            graceful,
            ..
        } => Some(format!(
            "BGP peer {address}: down ({reason:?}){}",
            if *graceful {
                "; its routes are kept, stale, for its restart time"
            } else {
                ""
            }
        )),
        Event::ListenLimit { address } => Some(format!(
            "BGP: connection from {address} refused: {} peers from listen ranges exist \
             already (this is logged once until there are fewer)",
            ::bgp::driver::MAX_DYNAMIC_PEERS
        )),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A speaker whose command queue is full (it takes none) holds a
    /// question no longer than its wait, the time to hand it over
    /// included.
    #[test]
    fn a_question_to_a_stalled_speaker_gives_up_in_time() {
        let (cmds, _rx) = tmpsc::channel::<Cmd>(1);
        let (tx, _) = mpsc::channel();
        cmds.try_send(Cmd::Peers(tx)).unwrap();
        let q = BgpQuery { cmds };
        // On a thread of its own, so that a question that hangs fails the
        // test instead of hanging it.
        let (done, result) = mpsc::channel();
        std::thread::spawn(move || {
            let t = Instant::now();
            let answer = q.ask(Cmd::Peers, Duration::from_millis(300));
            let _ = done.send((answer.map(|_| ()), t.elapsed()));
        });
        let (answer, took) = result
            .recv_timeout(Duration::from_secs(5))
            .expect("the question was still waiting after 5 s");
        assert_eq!(answer, Err(NoAnswer::Late(Duration::from_millis(300))));
        assert!(took >= Duration::from_millis(300), "gave up after {took:?}");
    }

    /// A speaker that has stopped is told apart from a slow one: an
    /// internal error at once, not a timeout that says a change may still
    /// be made.
    #[test]
    fn a_question_to_a_stopped_speaker_says_so() {
        let (cmds, rx) = tmpsc::channel::<Cmd>(1);
        drop(rx);
        let q = BgpQuery { cmds };
        assert_eq!(q.peers().map(|_| ()), Err(NoAnswer::Gone));
        let r = NoAnswer::Gone.response("; it may still take effect");
        let ::ctl::Response::Error(e) = r else {
            panic!("{r:?}")
        };
        assert_eq!(e.code, ::ctl::ErrorCode::Internal);
        assert!(!e.message.contains("may still"), "{}", e.message);
    }

    #[test]
    fn sessions_settings_reach_the_speaker() {
        let c: Config = r#"
[router]
asn = 65000
router-id = "192.0.2.1"
[[interface]]
name = "k8s0"
[bgp]
aggregates = ["2001:db8:100::/40"]
[[bgp.listen]]
range = "2001:db8:1::/64"
peer-asn = 65001
hold-time = 9
[[bgp.neighbor]]
address = "2001:db8:ffff::1"
peer-asn = 65100
connect-retry = 7
ttl-security = 1
[[route]]
prefix = "::/0"
via = ["2001:db8:ffff::1"]
"#
        .parse()
        .unwrap();
        let s = speaker_config(&c);
        assert_eq!(s.ranges[0].settings.hold_time.seconds(), 9);
        assert_eq!(s.ranges[0].settings.connect_retry, Duration::from_secs(30));
        let n = &s.neighbors[0].settings;
        assert_eq!(n.connect_retry, Duration::from_secs(7));
        assert_eq!(n.ttl_security, Some(1));
        let originated: Vec<String> = s.originated.iter().map(|p| p.to_string()).collect();
        assert_eq!(originated, ["2001:db8:100::/40", "::/0"]);
        // Both sessions are external and have no import list: the
        // speaker gets empty allow-lists (RFC 8212), and the log says so.
        for settings in [&s.ranges[0].settings, n] {
            let allow = settings.import.allow.as_ref().expect("a list");
            assert!(allow.rules().is_empty());
        }
        let notes = policy_notes(&c);
        assert_eq!(notes.len(), 2, "{notes:?}");
        assert!(
            notes[0].starts_with("bgp.listen[0] (2001:db8:1::/64): external session (AS 65001)")
        );
        assert!(notes[1].starts_with("bgp.neighbor[0] (2001:db8:ffff::1)"));
        assert!(notes[1].contains("accepts no route (RFC 8212)"));
    }
}
