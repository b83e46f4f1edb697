//! The ctl socket: a thread accepting `flatedgectl` connections, each
//! served on a thread of its own (at most [`MAX_CLIENTS`] at once, each
//! within its deadlines: a slow client never holds the others up), one
//! request each ([`::ctl::serve_one`]), and the control thread's answers.
//! Requests are answered on the control thread, which owns the state, so
//! an answer is one consistent view of it (the BGP speaker's part, asked
//! from the connection's thread, is read a moment later); a connection's thread waits at
//! most [`ANSWER_TIMEOUT`] for it (a reload, which answers once BGP has
//! taken the new configuration, that plus the reload's own 60 s).

use std::collections::{BTreeMap, HashMap};
use std::io::ErrorKind;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::UnixListener;
use std::path::{Path as FsPath, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Sender};
use std::time::Duration;

use ::bgp::driver::{AdminAction, AdminError};
use ::bgp::rib::PathStatus as BgpStatus;
use ::ctl::{
    BgpPeer, BgpSummary, Coalescing, Done, Drops, ErrorCode, FibEntry, FibNextHop, FibSummary,
    Interface, Interfaces, MacAddr, Neighbor, NeighborAction, Neighbors, NextHopState, Origin,
    Path, PathStatus, PeerState, Request, Response, Route, RouteSource, Routes, Runtime,
    StageRuntime,
};
use fib::{NextHopId, Prefix};

use super::bgp::BgpQuery;
use super::nexthops::{HopState, Kind};
use super::{io_err, log, ClientSlots, Daemon, DaemonError, Msg, StoppableThread};
use crate::dataplane::{CountersSnapshot, Stage};
use crate::worker::WorkerReport;

/// The workers' counters added up.
#[derive(Debug, Default)]
pub(super) struct Totals {
    /// Drops, ICMPv6 errors, forwarded packets, stage calls and packets.
    pub counters: CountersSnapshot,
    /// Nanoseconds per stage (the workers' ticks at the process's rate).
    pub stage_ns: [f64; Stage::COUNT],
    /// Frames dropped because a TX buffer was full.
    pub tx_overflow: u64,
    /// Frames written off in the tx ring of a deleted interface.
    pub tx_lost: u64,
    /// Frames the kernel dropped at a socket whose rx ring was full.
    pub rx_ring_full: u64,
    /// Frames the kernel dropped at a socket with no fill-ring frame.
    pub rx_no_frame: u64,
    /// Transit packets the XDP program handed to the kernel for want of a
    /// socket at their queue.
    pub no_socket: u64,
    /// Frames received.
    pub rx_packets: u64,
    /// Time in rounds that moved frames, syscalls included.
    pub busy_ns: f64,
    /// Time in kicks and wakeups.
    pub syscall_ns: u64,
    /// Batches received, and those coalescing made wait.
    pub batches: u64,
    /// See `batches`.
    pub waited_batches: u64,
}

impl Totals {
    /// Adds a worker's report, its ticks at `ns_per_tick`: the rate
    /// calibrated once for the process, not the report's own, which the
    /// worker measures again over its whole life for each report. These
    /// are counters (Prometheus reads a decrease as a reset): ticks that
    /// stand still must not give fewer nanoseconds because the rate moved
    /// (the system clock slewed, or read at another instant).
    fn add(&mut self, r: &WorkerReport, ns_per_tick: f64) {
        self.counters += &r.counters.snapshot();
        for (ns, st) in self.stage_ns.iter_mut().zip(r.counters.stages.iter()) {
            *ns += st.ticks as f64 * ns_per_tick;
        }
        self.tx_overflow += r.ports.iter().map(|p| p.tx_dropped).sum::<u64>();
        self.tx_lost += r.ports.iter().map(|p| p.tx_lost).sum::<u64>();
        self.rx_ring_full += r.ports.iter().map(|p| p.rx_ring_full).sum::<u64>();
        self.rx_no_frame += r.ports.iter().map(|p| p.rx_no_frame).sum::<u64>();
        self.rx_packets += r.rx_packets();
        self.busy_ns += r.stats.busy_ticks as f64 * ns_per_tick;
        // The ports time their syscalls at that same rate.
        self.syscall_ns += r.ports.iter().map(|p| p.syscall_ns).sum::<u64>();
        self.batches += r.stats.batches;
        self.waited_batches += r.stats.waited_batches;
    }

    /// The drops the ports count beside the pipeline's reasons, by the
    /// names `show drops` and the metrics give them.
    pub fn port_drops(&self) -> [(&'static str, u64); 5] {
        [
            ("tx_overflow", self.tx_overflow),
            ("interface_gone", self.tx_lost),
            ("rx_ring_full", self.rx_ring_full),
            ("rx_no_frame", self.rx_no_frame),
            ("no_socket", self.no_socket),
        ]
    }
}

/// The control thread's answer to a ctl request: the response, or what
/// the connection's thread completes it with (questions to the BGP
/// speaker, which may be slow to answer: they must not hold up the
/// control thread, which handles liveness and the FIB).
pub(super) enum Answer {
    /// Complete.
    Now(Response),
    /// To run on the connection's thread.
    Later(Box<dyn FnOnce() -> Response + Send>),
}

/// How long the ctl thread waits for the control thread's answer.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a client may take to send its whole request, and again to
/// read its whole answer.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(5);

/// The running ctl server; removes its socket when dropped.
pub(super) struct Server {
    path: PathBuf,
    _thread: StoppableThread,
}

impl Server {
    /// Binds the socket (its directory is created; a stale socket file
    /// that nobody answers on is replaced, a live one is an error) and
    /// starts the accept thread.
    pub(super) fn start(path: &FsPath, tx: Sender<Msg>) -> Result<Server, DaemonError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io_err(format!(
                "create the ctl directory {}",
                dir.display()
            )))?;
        }
        if let Ok(meta) = std::fs::symlink_metadata(path) {
            // A path that names anything but a socket (a typo naming the
            // config file) is not ours to remove.
            if !meta.file_type().is_socket() {
                return Err(DaemonError::Io {
                    what: format!("ctl socket {}", path.display()),
                    source: std::io::Error::new(
                        ErrorKind::AlreadyExists,
                        "the path exists and is not a socket; not removing it",
                    ),
                });
            }
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                return Err(DaemonError::Io {
                    what: format!("ctl socket {}", path.display()),
                    source: std::io::Error::new(
                        ErrorKind::AddrInUse,
                        "another flatedge is answering on it",
                    ),
                });
            }
            std::fs::remove_file(path).map_err(io_err(format!(
                "remove the stale ctl socket {}",
                path.display()
            )))?;
        }
        let listener = UnixListener::bind(path)
            .map_err(io_err(format!("bind the ctl socket {}", path.display())))?;
        // Owner and group (the admins' group) only.
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))
            .map_err(io_err(format!("chmod the ctl socket {}", path.display())))?;
        listener
            .set_nonblocking(true)
            .map_err(io_err("ctl socket non-blocking"))?;
        let thread =
            StoppableThread::spawn("flatedge-ctl", move |stop| accept_loop(listener, tx, stop))?;
        Ok(Server {
            path: path.to_owned(),
            _thread: thread,
        })
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // The thread stops when `_thread` drops, right after this.
        let _ = std::fs::remove_file(&self.path);
    }
}

/// ctl clients served at once (each on its own thread).
const MAX_CLIENTS: usize = 16;

/// How long the accept loop waits for a connection before it looks at
/// its stop flag again (a connection wakes it at once).
const ACCEPT_WAIT_MS: u16 = 100;

fn accept_loop(listener: UnixListener, tx: Sender<Msg>, stop: &AtomicBool) {
    let slots = ClientSlots::new(MAX_CLIENTS);
    while !stop.load(Ordering::Relaxed) {
        let stream = match listener.accept() {
            Ok((s, _)) => s,
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                wait_readable(&listener, ACCEPT_WAIT_MS);
                continue;
            }
            Err(e) => {
                log!("ctl accept: {e}");
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
        };
        let tx = tx.clone();
        let refused = stream.try_clone().ok();
        let served = slots.spawn("flatedge-ctl-client", move || serve(stream, tx));
        if !served {
            log!("ctl: {MAX_CLIENTS} clients already being served; one refused");
            if let Some(s) = refused {
                refuse_busy(s);
            }
        }
    }
}

/// Blocks until `listener` has a connection to accept, or `ms` pass.
fn wait_readable(listener: &UnixListener, ms: u16) {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    use std::os::fd::AsFd;
    let mut fds = [PollFd::new(listener.as_fd(), PollFlags::POLLIN)];
    let _ = poll(&mut fds, PollTimeout::from(ms));
}

/// Tells a client no slot was free, instead of closing on it (which it
/// saw as "connection reset"), within a few milliseconds so that the
/// accept loop never waits on it.
fn refuse_busy(stream: std::os::unix::net::UnixStream) {
    let answer = Response::error(
        ErrorCode::Busy,
        format!("flatedge is serving {MAX_CLIENTS} ctl clients already; try again"),
    );
    let _ = ::ctl::answer_unread(stream, &answer, Duration::from_millis(50));
}

/// One ctl connection: the request within [`CLIENT_TIMEOUT`], the answer
/// from the control thread, written within [`CLIENT_TIMEOUT`] again.
fn serve(stream: std::os::unix::net::UnixStream, tx: Sender<Msg>) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(CLIENT_TIMEOUT));
    let _ = stream.set_write_timeout(Some(CLIENT_TIMEOUT));
    let r = ::ctl::serve_one(stream, move |req| match req {
        Err(msg) => Response::error(ErrorCode::BadRequest, msg),
        Ok(req) => {
            // A reload answers once BGP has taken the new configuration.
            let wait = match req {
                Request::Reload => super::reload::BGP_ANSWER + ANSWER_TIMEOUT,
                _ => ANSWER_TIMEOUT,
            };
            let (rtx, rrx) = mpsc::channel();
            if tx.send(Msg::Ctl(req, rtx)).is_err() {
                return Response::error(ErrorCode::Internal, "flatedge is shutting down");
            }
            match rrx.recv_timeout(wait) {
                Ok(Answer::Now(r)) => r,
                Ok(Answer::Later(finish)) => finish(),
                // The request was dropped unanswered: the control loop
                // has stopped.
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    Response::error(ErrorCode::Internal, "flatedge is shutting down")
                }
                Err(mpsc::RecvTimeoutError::Timeout) => Response::error(
                    ErrorCode::Timeout,
                    format!(
                        "the control thread did not answer within {} s; a change asked for \
                         may still take effect (see the log)",
                        wait.as_secs()
                    ),
                ),
            }
        }
    });
    if let Err(e) = r {
        log!("ctl client: {e}");
    }
}

/// Most BGP prefixes `show route` lists without a prefix.
pub const SHOW_ROUTE_MAX: usize = 10_000;

/// Why a path lost, in words.
fn loss_reason(r: ::bgp::rib::LossReason) -> &'static str {
    use ::bgp::rib::LossReason as L;
    match r {
        L::LocalPref => "lower local preference",
        L::AsPathLength => "longer AS path",
        L::Origin => "higher origin",
        L::Med => "higher MED",
        L::EbgpOverIbgp => "internal path, an external one exists",
        L::RouterId => "higher router id",
        L::PeerAddress => "higher peer address",
        L::MultipathAsPathDiffers => "ties the best but its AS path differs (no as-path-relax)",
        L::MultipathLimit => "ties the best but the ECMP set is full (max-paths)",
        L::NextHopUnreachable => "next hop on no connected subnet",
    }
}

fn peer_state(s: ::bgp::fsm::State) -> PeerState {
    use ::bgp::fsm::State;
    match s {
        State::Idle => PeerState::Idle,
        State::Connect => PeerState::Connect,
        State::Active => PeerState::Active,
        State::OpenSent => PeerState::OpenSent,
        State::OpenConfirm => PeerState::OpenConfirm,
        State::Established => PeerState::Established,
    }
}

fn hop_state(s: HopState) -> NextHopState {
    match s {
        HopState::Up => NextHopState::Up,
        HopState::Down => NextHopState::Down,
        HopState::Unresolved => NextHopState::Unresolved,
    }
}

impl Daemon {
    /// Every worker's last published report.
    pub(super) fn reports(&self) -> Vec<WorkerReport> {
        self.workers
            .iter()
            .filter_map(|w| w.report.lock().ok().map(|r| r.clone()))
            .collect()
    }

    /// Answers one ctl request; the parts that ask the BGP speaker are
    /// left to the connection's thread.
    pub(super) fn answer(&self, req: Request) -> Answer {
        Answer::Now(match req {
            Request::ShowInterfaces => Response::Interfaces(self.interfaces()),
            Request::ShowDrops => Response::Drops(self.drops()),
            Request::ShowRuntime => Response::Runtime(self.runtime()),
            Request::ShowNeighbors => Response::Neighbors(self.neighbors()),
            Request::ShowFib { address } => Response::Fib(self.fib_entry(address)),
            Request::ShowFibSummary => {
                let snap = self.fib.reader().load_full();
                Response::FibSummary(FibSummary {
                    routes: snap.routes() as u64,
                    groups: snap.groups() as u64,
                    memory_bytes: self.fib.memory().total as u64,
                })
            }
            Request::ShowBgpSummary => return self.bgp_summary(),
            Request::ShowRoute { prefix } => return self.show_route(prefix),
            Request::Neighbor { address, action } => return self.neighbor(address, action),
            // The control loop answers it: it changes the daemon.
            Request::Reload => {
                Response::error(ErrorCode::Internal, "reload reached the wrong handler")
            }
            _ => Response::error(ErrorCode::Unsupported, "unknown command"),
        })
    }

    /// `show route [PREFIX]`: our own routes (connected, static, hosts)
    /// and the RIB's paths, best first, with why the others lost. Without
    /// a prefix, at most [`SHOW_ROUTE_MAX`] BGP prefixes.
    fn show_route(&self, prefix: Option<ipnet::Ipv6Net>) -> Answer {
        let mut routes = Vec::new();
        // The prefixes where ours win over BGP (see `apply_bgp`), and why.
        let mut ours_win = HashMap::new();
        let own = self.routes.iter().filter(|(p, _)| {
            prefix.is_none_or(|q| p.addr() == q.network() && p.len() == q.prefix_len())
        });
        for (p, r) in own {
            let source = match r.source {
                super::Source::Connected => RouteSource::Connected,
                super::Source::Static => RouteSource::Static,
                super::Source::Aggregate => RouteSource::Aggregate,
                // A gleaned host is a connected neighbour.
                super::Source::Host | super::Source::Bgp => RouteSource::Connected,
            };
            let paths = r
                .nexthops
                .iter()
                .enumerate()
                .map(|(i, &id)| Path {
                    source,
                    peer: None,
                    next_hop: match self.nexthops.get(id).map(|e| e.kind) {
                        Some(Kind::Neighbor { addr }) => Some(addr),
                        _ => None,
                    },
                    as_path: Vec::new(),
                    origin: None,
                    local_pref: None,
                    med: None,
                    stale: false,
                    status: if i == 0 {
                        PathStatus::Best
                    } else {
                        PathStatus::Multipath
                    },
                    reason: None,
                })
                .collect();
            if let Ok(net) = ipnet::Ipv6Net::new(p.addr(), p.len()) {
                if let Some(why) = r.source.hides_bgp() {
                    ours_win.insert(net, why);
                }
                routes.push(Route { prefix: net, paths });
            }
        }
        let Some(bgp) = self.bgp_query() else {
            routes.sort_by_key(|r| r.prefix);
            return Answer::Now(Response::Routes(Routes {
                routes,
                truncated_at: None,
            }));
        };
        Answer::Later(Box::new(move || {
            with_bgp_routes(routes, &ours_win, &bgp, prefix)
        }))
    }

    /// `neighbor ADDR reset|disable|enable`.
    fn neighbor(&self, address: std::net::Ipv6Addr, action: NeighborAction) -> Answer {
        let Some(bgp) = self.bgp_query() else {
            return no_bgp();
        };
        let action = match action {
            NeighborAction::Reset => AdminAction::Reset,
            NeighborAction::Disable => AdminAction::Disable,
            NeighborAction::Enable => AdminAction::Enable,
            _ => {
                return Answer::Now(Response::error(
                    ErrorCode::Unsupported,
                    "unknown neighbor action",
                ))
            }
        };
        Answer::Later(Box::new(move || admin(&bgp, address, action)))
    }

    fn bgp_summary(&self) -> Answer {
        let Some(bgp) = self.bgp_query() else {
            return no_bgp();
        };
        let (asn, router_id) = (self.config.router.asn.0, self.config.router.router_id);
        Answer::Later(Box::new(move || bgp_summary(&bgp, asn, router_id)))
    }

    pub(super) fn interfaces(&self) -> Interfaces {
        let table = self.table();
        let mut interfaces: Vec<Interface> = self
            .ports
            .iter()
            .map(|p| {
                let link = table.link(p.ifindex);
                Interface {
                    name: p.name.clone(),
                    carrier: link.is_some_and(|l| l.is_up()),
                    mtu: p.effective_mtu(link.map(|l| l.mtu)),
                    rx_packets: 0,
                    rx_bytes: 0,
                    tx_packets: 0,
                    tx_bytes: 0,
                    drops: 0,
                    tx_drops: Some(0),
                    tx_link_down: Some(0),
                }
            })
            .collect();
        for w in &self.workers {
            let Ok(r) = w.report.lock().map(|r| r.ports.clone()) else {
                continue;
            };
            for (s, &i) in r.iter().zip(&w.port_iface) {
                let out = &mut interfaces[i];
                out.rx_packets += s.rx;
                out.rx_bytes += s.rx_bytes;
                out.tx_packets += s.tx;
                out.tx_bytes += s.tx_bytes;
                out.drops += s.dropped + s.rx_ring_full + s.rx_no_frame;
                *out.tx_drops.get_or_insert(0) += s.tx_dropped + s.tx_down_dropped + s.tx_lost;
                *out.tx_link_down.get_or_insert(0) += s.tx_link_down;
            }
        }
        Interfaces { interfaces }
    }

    /// Every worker's last report, added up: what `show drops`, `show
    /// runtime` and the metrics read.
    pub(super) fn totals(&self) -> Totals {
        let mut t = Totals::default();
        for r in self.reports() {
            t.add(&r, crate::cpu::tsc_ns_per_tick());
        }
        // A map read (a syscall) per question, never per packet; a failed
        // read gives the last value (a counter must not fall).
        if let Ok(n) = self.prog.no_socket_packets() {
            self.no_socket_last.set(n);
        }
        t.no_socket = self.no_socket_last.get();
        t
    }

    fn drops(&self) -> Drops {
        let t = self.totals();
        let mut drops: BTreeMap<String, u64> = t
            .counters
            .drops()
            .map(|(name, n)| (name.to_string(), n))
            .collect();
        for (name, n) in t.port_drops() {
            drops.insert(name.into(), n);
        }
        Drops { drops }
    }

    fn runtime(&self) -> Runtime {
        let t = self.totals();
        let per = |x: f64, n: u64| if n == 0 { 0.0 } else { x / n as f64 };
        let stages = t
            .counters
            .stages()
            .zip(t.stage_ns)
            .map(|((name, st), ns)| StageRuntime {
                name: name.into(),
                calls: st.calls,
                packets: st.packets,
                ns_per_packet: per(ns, st.packets),
            })
            .collect();
        Runtime {
            stages,
            packets: t.rx_packets,
            busy_ns_per_packet: per(t.busy_ns, t.rx_packets),
            syscall_ns_per_packet: per(t.syscall_ns as f64, t.rx_packets),
            batches: Some(t.batches),
            coalescing: Some(Coalescing {
                rx_usecs: self.config.router.coalesce.usecs,
                rx_frames: self.config.router.coalesce.frames,
                waited_batches: t.waited_batches,
            }),
        }
    }

    pub(super) fn neighbors(&self) -> Neighbors {
        let table = self.table();
        let neighbors = self
            .nexthops
            .neighbors()
            .map(|(id, addr, port)| {
                let p = &self.ports[usize::from(port)];
                let (mac, state) = self.mac_state(id, addr, p.ifindex, &table);
                Neighbor {
                    address: addr,
                    interface: p.name.clone(),
                    mac,
                    state,
                }
            })
            .collect();
        Neighbors { neighbors }
    }

    /// The route `address` matches (longest prefix) and its next hops.
    fn fib_entry(&self, address: std::net::Ipv6Addr) -> FibEntry {
        let a = u128::from(address);
        // Our own routes, else the FIB's (BGP routes live only there).
        let hit = (0..=128u8).rev().find_map(|len| {
            let p = Prefix::new(a, len).ok()?;
            match self.routes.get(&p) {
                Some(r) => Some((p, r.nexthops.clone())),
                None => self.fib.nexthops(p).map(|n| (p, n)),
            }
        });
        let Some((prefix, ids)) = hit else {
            return FibEntry {
                address,
                prefix: None,
                nexthops: Vec::new(),
            };
        };
        let table = self.table();
        let nexthops = ids
            .iter()
            .filter_map(|&id| self.fib_nexthop(id, address, &table))
            .collect();
        FibEntry {
            address,
            prefix: ipnet::Ipv6Net::new(prefix.addr(), prefix.len()).ok(),
            nexthops,
        }
    }

    fn fib_nexthop(
        &self,
        id: NextHopId,
        dst: std::net::Ipv6Addr,
        table: &crate::neigh::NeighborTable,
    ) -> Option<FibNextHop> {
        let e = self.nexthops.get(id)?;
        let p = self.ports.get(usize::from(e.port))?;
        Some(match e.kind {
            // A connected subnet: the destination is its own next hop, not
            // resolved yet (a resolved one has a host route).
            // An aggregate: no next hop, the packet is answered unreachable.
            Kind::Unreachable => return None,
            Kind::Glean => FibNextHop {
                address: dst,
                interface: p.name.clone(),
                mac: None,
                state: NextHopState::Unresolved,
            },
            Kind::Neighbor { addr } => {
                let (mac, state) = self.mac_state(id, addr, p.ifindex, table);
                FibNextHop {
                    address: addr,
                    interface: p.name.clone(),
                    mac,
                    state,
                }
            }
        })
    }

    /// A neighbour's MAC (when resolved) and state.
    fn mac_state(
        &self,
        id: NextHopId,
        addr: std::net::Ipv6Addr,
        ifindex: u32,
        table: &crate::neigh::NeighborTable,
    ) -> (Option<MacAddr>, NextHopState) {
        let mac = table
            .nexthop(addr, ifindex)
            .and_then(|n| n.mac)
            .map(MacAddr);
        (mac, hop_state(self.nexthops.state(id, &self.ports, table)))
    }
}

/// `show route`'s answer: `routes` (ours) with the RIB's paths added.
fn with_bgp_routes(
    routes: Vec<Route>,
    ours_win: &HashMap<ipnet::Ipv6Net, &'static str>,
    bgp: &BgpQuery,
    prefix: Option<ipnet::Ipv6Net>,
) -> Response {
    let mut truncated_at = None;
    // One more than listed, to tell whether the listing is whole.
    let mut views = match bgp.routes(prefix, SHOW_ROUTE_MAX + 1) {
        Ok(v) => v,
        Err(e) => return e.response(""),
    };
    if views.len() > SHOW_ROUTE_MAX {
        views.truncate(SHOW_ROUTE_MAX);
        truncated_at = Some(SHOW_ROUTE_MAX);
    }
    let views = views.into_iter().map(|v| {
        let paths = v
            .paths
            .iter()
            .map(|p| {
                let (status, reason) = match p.status {
                    BgpStatus::Best => (PathStatus::Best, None),
                    BgpStatus::Multipath => (PathStatus::Multipath, None),
                    BgpStatus::NotSelected(why) => {
                        (PathStatus::Lost, Some(loss_reason(why).to_string()))
                    }
                };
                Path {
                    source: RouteSource::Bgp,
                    peer: Some(p.attrs.peer_address),
                    next_hop: Some(p.attrs.next_hop.addr),
                    as_path: p
                        .attrs
                        .as_path
                        .segments
                        .iter()
                        .flat_map(|s| s.asns.iter().map(|a| a.0))
                        .collect(),
                    origin: Some(match p.attrs.origin {
                        ::bgp::wire::Origin::Igp => Origin::Igp,
                        ::bgp::wire::Origin::Egp => Origin::Egp,
                        ::bgp::wire::Origin::Incomplete => Origin::Incomplete,
                    }),
                    local_pref: Some(p.attrs.local_pref),
                    med: p.attrs.med,
                    stale: p.stale,
                    status,
                    reason,
                }
            })
            .collect();
        (v.prefix, paths)
    });
    let routes = merge_bgp_paths(routes, ours_win, views);
    Response::Routes(Routes {
        routes,
        truncated_at,
    })
}

/// Our own routes (`routes`) with the RIB's paths added, in prefix order.
/// Where one of ours wins over BGP (`ours_win`: static, connected and
/// aggregate routes, which `apply_bgp` never replaces), the RIB's best and
/// multipath paths are listed as lost, with why: one best per prefix.
fn merge_bgp_paths(
    mut routes: Vec<Route>,
    ours_win: &HashMap<ipnet::Ipv6Net, &'static str>,
    bgp: impl IntoIterator<Item = (ipnet::Ipv6Net, Vec<Path>)>,
) -> Vec<Route> {
    let mut index: HashMap<ipnet::Ipv6Net, usize> = routes
        .iter()
        .enumerate()
        .map(|(i, r)| (r.prefix, i))
        .collect();
    for (prefix, mut paths) in bgp {
        match index.get(&prefix) {
            Some(&i) => {
                if let Some(ours) = ours_win.get(&prefix) {
                    for p in &mut paths {
                        if matches!(p.status, PathStatus::Best | PathStatus::Multipath) {
                            p.status = PathStatus::Lost;
                            p.reason = Some(format!("{ours} for the prefix is used instead"));
                        }
                    }
                }
                routes[i].paths.extend(paths);
            }
            None => {
                index.insert(prefix, routes.len());
                routes.push(Route { prefix, paths });
            }
        }
    }
    routes.sort_by_key(|r| r.prefix);
    routes
}

/// BGP's own error when it is not configured.
fn no_bgp() -> Answer {
    Answer::Now(Response::error(
        ErrorCode::Unsupported,
        "BGP is not configured (no [[bgp.listen]] or [[bgp.neighbor]])",
    ))
}

/// Does `action` to the peer at `address`.
fn admin(bgp: &BgpQuery, address: std::net::Ipv6Addr, action: AdminAction) -> Response {
    match bgp.admin(address, action) {
        Ok(Ok(message)) => {
            log!("ctl: {message}");
            Response::Done(Done { message })
        }
        Ok(Err(e @ AdminError::UnknownPeer(_))) => {
            Response::error(ErrorCode::UnknownNeighbor, e.to_string())
        }
        Ok(Err(e @ AdminError::Disabled(_))) => {
            Response::error(ErrorCode::InvalidState, e.to_string())
        }
        Ok(Err(e)) => Response::error(ErrorCode::Internal, e.to_string()),
        // The command may be in the speaker's queue still.
        Err(e) => e.response("; the action may still take effect (see show bgp summary)"),
    }
}

/// `show bgp summary`'s answer.
fn bgp_summary(bgp: &BgpQuery, asn: u32, router_id: std::net::Ipv4Addr) -> Response {
    let peers = match bgp.peers() {
        Ok(p) => p,
        Err(e) => return e.response(""),
    };
    let peers = peers
        .into_iter()
        .map(|p| BgpPeer {
            address: p.address,
            asn: p.asn.0,
            state: if p.disabled {
                PeerState::Disabled
            } else {
                peer_state(p.state)
            },
            uptime_s: p.up_down.as_secs(),
            prefixes_received: (p.stats.accepted + p.stats.filtered) as u64,
            prefixes_accepted: p.stats.accepted as u64,
        })
        .collect::<Vec<_>>();
    // By address, as FRR lists them (a peer from a listen range that is
    // forgotten and comes back keeps its place).
    let mut peers = peers;
    peers.sort_by_key(|p| p.address);
    Response::BgpSummary(BgpSummary {
        asn,
        router_id,
        peers,
    })
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::os::unix::net::UnixStream;
    use std::time::Instant;

    use super::*;

    /// A directory of its own, removed on drop.
    struct Dir(PathBuf);

    impl Dir {
        fn new(name: &str) -> Dir {
            let d = std::env::temp_dir().join(format!("ctl-server-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&d);
            std::fs::create_dir_all(&d).unwrap();
            Dir(d)
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// A control thread that answers each ctl request with `answer`.
    fn control(answer: impl Fn(Request) -> Answer + Send + 'static) -> Sender<Msg> {
        let (tx, rx) = mpsc::channel::<Msg>();
        std::thread::spawn(move || {
            for m in rx {
                if let Msg::Ctl(req, reply) = m {
                    let _ = reply.send(answer(req));
                }
            }
        });
        tx
    }

    fn path(source: RouteSource, status: PathStatus) -> Path {
        Path {
            source,
            peer: None,
            next_hop: None,
            as_path: Vec::new(),
            origin: None,
            local_pref: None,
            med: None,
            stale: false,
            status,
            reason: None,
        }
    }

    #[test]
    fn a_bgp_path_hidden_by_a_route_of_ours_is_listed_as_lost() {
        let default: ipnet::Ipv6Net = "::/0".parse().unwrap();
        let host: ipnet::Ipv6Net = "2001:db8::5/128".parse().unwrap();
        let pods: ipnet::Ipv6Net = "2001:db8:100::/64".parse().unwrap();
        let ours = vec![
            Route {
                prefix: default,
                paths: vec![path(RouteSource::Static, PathStatus::Best)],
            },
            // A gleaned host, listed as connected: BGP replaces it.
            Route {
                prefix: host,
                paths: vec![path(RouteSource::Connected, PathStatus::Best)],
            },
        ];
        let ours_win = HashMap::from([(default, "a static route")]);
        let bgp = vec![
            (
                pods,
                vec![
                    path(RouteSource::Bgp, PathStatus::Best),
                    path(RouteSource::Bgp, PathStatus::Multipath),
                ],
            ),
            (
                default,
                vec![
                    path(RouteSource::Bgp, PathStatus::Best),
                    path(RouteSource::Bgp, PathStatus::Multipath),
                ],
            ),
            (host, vec![path(RouteSource::Bgp, PathStatus::Best)]),
        ];
        let routes = merge_bgp_paths(ours, &ours_win, bgp);
        let prefixes: Vec<_> = routes.iter().map(|r| r.prefix).collect();
        assert_eq!(prefixes, [default, host, pods], "in prefix order");
        let statuses = |r: &Route| {
            r.paths
                .iter()
                .map(|p| (p.source, p.status))
                .collect::<Vec<_>>()
        };
        // The static default forwards: BGP's default paths lost, and why.
        assert_eq!(
            statuses(&routes[0]),
            [
                (RouteSource::Static, PathStatus::Best),
                (RouteSource::Bgp, PathStatus::Lost),
                (RouteSource::Bgp, PathStatus::Lost),
            ]
        );
        assert_eq!(
            routes[0].paths[1].reason.as_deref(),
            Some("a static route for the prefix is used instead")
        );
        // Where nothing of ours wins, BGP's statuses stand.
        assert_eq!(routes[1].paths[1].status, PathStatus::Best);
        assert_eq!(
            statuses(&routes[2]),
            [
                (RouteSource::Bgp, PathStatus::Best),
                (RouteSource::Bgp, PathStatus::Multipath)
            ]
        );
    }

    #[test]
    fn stage_and_busy_time_never_go_down_when_a_reports_rate_moves() {
        // The same ticks in two reports whose whole-life rates differ (the
        // second lower, as after a clock slew): the totals, exported as
        // Prometheus counters, must not fall.
        let mut r = WorkerReport::default();
        r.counters.stage(Stage::Lookup, 32, 3_000_000);
        r.stats.busy_ticks = 9_000_000;
        let totals = |ns_per_tick: f64| {
            let mut t = Totals::default();
            t.add(
                &WorkerReport {
                    ns_per_tick,
                    ..r.clone()
                },
                crate::cpu::tsc_ns_per_tick(),
            );
            t
        };
        let (a, b) = (totals(0.3333334), totals(0.3333333));
        assert!(b.stage_ns[Stage::Lookup as usize] >= a.stage_ns[Stage::Lookup as usize]);
        assert!(b.busy_ns >= a.busy_ns);
        assert!(a.stage_ns[Stage::Lookup as usize] > 0.0);
    }

    fn done(message: &str) -> Response {
        Response::Done(Done {
            message: message.into(),
        })
    }

    /// `ctl.socket` naming a file that is not a socket (a typo naming the
    /// config) is refused, and the file stays.
    #[test]
    fn a_path_that_is_not_a_socket_is_left_alone() {
        let dir = Dir::new("regular");
        let path = dir.0.join("edge.toml");
        std::fs::write(&path, "precious").unwrap();
        let (tx, _rx) = mpsc::channel();
        let e = Server::start(&path, tx)
            .err()
            .expect("started on a regular file");
        assert!(e.to_string().contains("not a socket"), "{e}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "precious");
    }

    /// What the control thread leaves to the connection's thread (a BGP
    /// question) runs there: the control thread answers the next request
    /// at once meanwhile.
    #[test]
    fn a_slow_bgp_answer_runs_on_the_connections_thread() {
        let dir = Dir::new("later");
        let path = dir.0.join("ctl.sock");
        let tx = control(|req| match req {
            Request::ShowBgpSummary => Answer::Later(Box::new(|| {
                std::thread::sleep(Duration::from_secs(2));
                done("bgp")
            })),
            _ => Answer::Now(done("now")),
        });
        let server = Server::start(&path, tx).unwrap();
        let p2 = path.clone();
        let slow = std::thread::spawn(move || {
            ::ctl::request(&p2, &Request::ShowBgpSummary, Duration::from_secs(8))
        });
        std::thread::sleep(Duration::from_millis(200));
        let t0 = Instant::now();
        let r = ::ctl::request(&path, &Request::ShowDrops, Duration::from_secs(8));
        assert!(
            matches!(&r, Ok(Response::Done(d)) if d.message == "now"),
            "{r:?}"
        );
        assert!(t0.elapsed() < Duration::from_secs(1), "{:?}", t0.elapsed());
        let r = slow.join().unwrap();
        assert!(
            matches!(&r, Ok(Response::Done(d)) if d.message == "bgp"),
            "{r:?}"
        );
        drop(server);
    }

    /// A client trickling its request holds its own thread only: another
    /// client is answered at once.
    #[test]
    fn a_slow_client_does_not_hold_up_the_others() {
        let dir = Dir::new("slow");
        let path = dir.0.join("ctl.sock");
        let tx = control(|_| Answer::Now(done("ok")));
        let server = Server::start(&path, tx).unwrap();
        let mut slow = UnixStream::connect(&path).unwrap();
        slow.write_all(b"{").unwrap();
        std::thread::sleep(Duration::from_millis(100));
        let t0 = Instant::now();
        let r = ::ctl::request(&path, &Request::ShowDrops, Duration::from_secs(8));
        assert!(r.is_ok(), "no answer beside a slow client: {r:?}");
        // The slow client's deadline is CLIENT_TIMEOUT (5 s).
        assert!(t0.elapsed() < Duration::from_secs(3), "{:?}", t0.elapsed());
        drop(server);
    }

    /// With every slot held by a silent client, the next one is told so
    /// (it saw "connection reset by peer"), and served once one goes.
    #[test]
    fn a_client_beyond_the_limit_is_told_why() {
        let dir = Dir::new("busy");
        let path = dir.0.join("ctl.sock");
        let tx = control(|_| Answer::Now(done("ok")));
        let server = Server::start(&path, tx).unwrap();
        let mut silent: Vec<UnixStream> = (0..MAX_CLIENTS)
            .map(|_| UnixStream::connect(&path).unwrap())
            .collect();
        // Let the accept loop hand every one a slot.
        std::thread::sleep(Duration::from_millis(300));
        for _ in 0..3 {
            let r = ::ctl::request(&path, &Request::ShowDrops, Duration::from_secs(3));
            match &r {
                Ok(Response::Error(e)) => {
                    assert_eq!(e.code, ErrorCode::Busy, "{r:?}");
                    assert!(e.message.contains("ctl clients already"), "{r:?}");
                }
                other => panic!("beyond the limit: {other:?}"),
            }
        }
        silent.pop();
        std::thread::sleep(Duration::from_millis(300));
        let r = ::ctl::request(&path, &Request::ShowDrops, Duration::from_secs(3));
        assert!(
            matches!(&r, Ok(Response::Done(d)) if d.message == "ok"),
            "once a slot is free: {r:?}"
        );
        drop(silent);
        drop(server);
    }
}
