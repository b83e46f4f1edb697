//! The daemon: `flatedge --config FILE` joins the configuration, the
//! AF_XDP workers, the FIB, the neighbour table, the liveness prober and
//! the ctl socket.
//!
//! # Threads
//!
//! - **workers** (one per CPU of `router.worker-cores`, pinned): each owns
//!   one AF_XDP socket per interface on its queue, over one UMEM; they
//!   read the FIB snapshot and the adjacency table once per batch and
//!   publish their counters every 100 ms ([`crate::worker`]).
//! - **control** (the thread that calls [`Daemon::run`]): owns the FIB
//!   builder, the next-hop registry and the routes. Everything that
//!   changes them arrives as a [`Msg`] on one channel: neighbour and link
//!   events (netlink thread), liveness verdicts (prober thread),
//!   destinations to resolve (workers, glean), ctl requests (ctl thread).
//!   Every second it also re-reads the interfaces' addresses.
//! - **neighbour client** and **prober** ([`crate::neigh`]), and the
//!   **ctl server** ([`ctl`]), which hands each request to the control
//!   thread and writes its answer back.
//!
//! # Routes
//!
//! - *connected*: each global address's subnet on a configured interface,
//!   via that interface's glean next hop: a packet to a host there whose
//!   neighbour is not known is dropped (`neighbor_miss`) and its
//!   destination handed to the control thread, which asks the kernel to
//!   resolve it (a managed neighbour entry) and installs a `/128` *host*
//!   route via it; the host route goes when the kernel calls the neighbour
//!   failed (VPP's glean, with the kernel doing the neighbour discovery).
//! - *static*: `[[route]]` via its next hops, each on a connected subnet
//!   of a configured interface, kept resolved by the kernel and probed.
//!
//! A next hop is up in the FIB (the fib's liveness flag, so ECMP groups
//! skip it) only while it is resolved, its link has carrier and the
//! prober has not called it down; every change republishes the adjacency
//! table and the FIB at once.

pub mod bgp;
mod ctl;
pub use ctl::SHOW_ROUTE_MAX;
pub mod ifaddr;
mod metrics;
pub mod nexthops;
mod reload;
mod softirq;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::Ipv6Addr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ::bgp::rib::NextHopReach;
use fib::{Fib, NextHop as FibNextHop, NextHopId, Prefix};
use ipnet::Ipv6Net;

use crate::config::Config;
use crate::dataplane::ip6_input::mac_key;
use crate::dataplane::{PortIndex, WorkerState};
use crate::neigh::{
    Liveness, LivenessEvent, NeighClient, NeighEvent, NeighborTable, ProbeConfig, Prober,
};
use crate::worker::{
    adjacency_table, AdjacencyTable, GleanRequest, PortAddrs, PortMacs, ReportHandle, Worker,
};
use crate::xdp::{self, FramePool, PoolConfig, Port, VlanOffload, XdpProgram};
use ifaddr::IfAddr;
use nexthops::{NextHops, PortInfo};

/// Logs one line on stderr (journald or the service manager adds the
/// date): `flatedge: [seconds.millis since the epoch] message`.
macro_rules! log {
    ($($arg:tt)*) => {{
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        eprintln!("flatedge: [{}.{:03}] {}", t.as_secs(), t.subsec_millis(), format_args!($($arg)*));
    }};
}
pub(crate) use log;

/// How often the interfaces' addresses are re-read besides on netlink's
/// address events (`NeighEvent::Addresses`): a backstop for an event lost
/// to an overrun.
const ADDR_SYNC: Duration = Duration::from_secs(1);
/// Quiet time (no FIB change) after which the FIB is compacted if a burst
/// of changes left its store fragmented ([`FRAGMENTED`]).
const COMPACT_AFTER: Duration = Duration::from_secs(5);
/// How much larger than its live blocks the FIB's store may span before
/// a quiet time compacts it.
const FRAGMENTED: f64 = 1.25;
/// Destinations waiting for the control thread (glean), per worker.
const GLEAN_QUEUE: usize = 1024;
/// Most host routes glean may create: a scan of a connected /64 must
/// not fill the FIB and the kernel's neighbour table (RFC 6583).
const MAX_HOSTS: usize = 16384;
/// The longest the control loop spends resolving gleaned hosts before it
/// looks at its other messages again (each waits for the neighbour
/// client): a scan of a connected subnet must not hold back a liveness
/// verdict or a carrier change.
const GLEAN_BUDGET: Duration = Duration::from_millis(20);

/// Longest the control thread takes queued messages before it applies
/// what they changed (`refresh`: liveness and adjacencies to the FIB and
/// the workers): under a full table's stream of BGP changes the queue
/// never empties, and a liveness verdict taken at its start would wait
/// for the whole load.
const DRAIN_BUDGET: Duration = Duration::from_millis(20);
/// Ring sizes of every port.
const RING: u32 = 1024;

/// Why the daemon cannot start or run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DaemonError {
    /// A configured interface does not exist.
    #[error("interface {0:?} (from [[interface]]) does not exist")]
    NoInterface(String),
    /// A static route's next hop is on no connected subnet.
    #[error("[[route]] {prefix}: next hop {via} is not on a subnet of any [[interface]] (their addresses: {known})")]
    NextHopNotConnected {
        /// The route.
        prefix: Prefix,
        /// The next hop.
        via: Ipv6Addr,
        /// The subnets we have.
        known: String,
    },
    /// The XDP program or a socket could not be set up.
    #[error("{what}: {source}")]
    Xdp {
        /// What was being done.
        what: String,
        /// Why it failed.
        source: xdp::XdpError,
    },
    /// Netlink (neighbour table) failed.
    #[error("neighbour table: {0}")]
    Neigh(#[from] crate::neigh::NeighError),
    /// Some other system call failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// Why it failed.
        source: std::io::Error,
    },
    /// The FIB could not be set up.
    #[error("FIB: {0}")]
    FibSetup(fib::FibError),
    /// `router.worker-cores` names a CPU this process cannot run on.
    #[error("router.worker-cores: CPU {core} is not one flatedge may run on (it may use CPUs {allowed})")]
    WorkerCore {
        /// The CPU.
        core: usize,
        /// The CPUs it may use, as a list.
        allowed: String,
    },
    /// An interface has more receive queues than the XDP program serves.
    #[error("interface {name} has {queues} receive queues; flatedge serves at most {max} per interface: lower them, e.g. `ethtool -L {name} combined {max}`")]
    TooManyQueues {
        /// The interface.
        name: String,
        /// Its receive queues.
        queues: u32,
        /// The most the program serves.
        max: u32,
    },
    /// The FIB refused a route.
    #[error("route {prefix}: {source}")]
    Fib {
        /// The route.
        prefix: Prefix,
        /// Why.
        source: fib::FibError,
    },
}

fn io_err(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> DaemonError {
    let what = what.into();
    move |source| DaemonError::Io { what, source }
}

/// Where a route came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// An interface's subnet.
    Connected,
    /// A `[[route]]`.
    Static,
    /// A host on a connected subnet, found by glean.
    Host,
    /// Learned over BGP.
    Bgp,
    /// A `bgp.aggregates` prefix: announced, and unreachable here (more
    /// specific routes inside it forward).
    Aggregate,
}

impl Source {
    /// Whether a route of ours from this source hides BGP's route for
    /// the same prefix (`apply_bgp` leaves the prefix alone), named as
    /// `show route` says so; `None` for one that gives way to BGP (a
    /// gleaned host).
    pub fn hides_bgp(self) -> Option<&'static str> {
        match self {
            Source::Static => Some("a static route"),
            Source::Connected => Some("a connected route"),
            Source::Aggregate => Some("an aggregate of ours"),
            Source::Host | Source::Bgp => None,
        }
    }
}

/// An installed connected, static or host route (BGP routes are only in
/// the FIB).
#[derive(Debug, Clone)]
pub struct Route {
    /// Its origin.
    pub source: Source,
    /// Its next hops.
    pub nexthops: Vec<NextHopId>,
}

/// A message to the control thread.
enum Msg {
    Neigh(NeighEvent),
    Liveness(LivenessEvent),
    Glean(GleanRequest),
    Ctl(::ctl::Request, Sender<ctl::Answer>),
    Metrics(Sender<String>),
    Bgp(::bgp::driver::Event),
    /// BGP's answer to a reload's configuration (`None`: none in time).
    ReloadBgp(Option<Result<String, ::bgp::driver::ReconfigureError>>),
}

/// One running worker thread.
struct WorkerHandle {
    report: ReportHandle,
    /// The interface (index in `ports`) of each of the worker's ports.
    port_iface: Vec<usize>,
    /// Those ports' MACs, which `refresh` keeps current.
    macs: PortMacs,
    /// Those ports' sources of ICMPv6 errors, which `sync_addrs` keeps
    /// current.
    icmp_srcs: PortAddrs,
    thread: JoinHandle<()>,
}

/// The running daemon (see the module docs).
pub struct Daemon {
    config: Config,
    /// The file `config` came from, which `reload` reads again.
    config_file: Option<PathBuf>,
    carrier: Vec<bool>,
    ports: Vec<PortInfo>,
    fib: Fib,
    adjacencies: AdjacencyTable,
    nexthops: NextHops,
    routes: BTreeMap<Prefix, Route>,
    addrs: BTreeMap<String, Vec<IfAddr>>,
    own_addrs: BTreeSet<Ipv6Addr>,
    /// Addresses gone from the box that the XDP map failed to delete.
    own_stuck: BTreeSet<Ipv6Addr>,
    /// The XDP program's no-socket count as last read (`Totals`).
    no_socket_last: std::cell::Cell<u64>,
    /// Own addresses the XDP map refused (full), logged once each.
    own_refused: BTreeSet<Ipv6Addr>,
    neigh: NeighClient,
    prober: Option<Prober>,
    /// The next hops the prober follows (static and BGP ones).
    bgp: Option<bgp::Bgp>,
    /// What BGP was last told next hops resolve on.
    bgp_reach: NextHopReach,
    /// BGP next hops on no connected subnet, already logged.
    unreachable_logged: BTreeSet<Ipv6Addr>,
    prog: XdpProgram,
    workers: Vec<WorkerHandle>,
    worker_stop: Arc<AtomicBool>,
    msgs: Receiver<Msg>,
    /// A sender into `msgs`, for answers that come back later.
    to_self: Sender<Msg>,
    /// A reload waiting for BGP's answer.
    reloading: Option<reload::PendingReload>,
    /// Ifindexes of re-created interfaces already logged.
    recreated_logged: BTreeSet<u32>,
    _ctl: ctl::Server,
    _metrics: Option<metrics::Server>,
    pending_glean: BTreeSet<Ipv6Addr>,
    /// An address was added or removed since the last read of them
    /// (netlink): read them again in this round.
    addrs_changed: bool,
    /// Prefixes whose BGP paths the speaker is to send again, waiting for
    /// room in its command queue (`restore_bgp`).
    pending_resend: Vec<ipnet::Ipv6Net>,
    /// Host routes installed by glean.
    hosts: BTreeSet<Prefix>,
    /// Glean requests refused because of [`MAX_HOSTS`].
    hosts_refused: u64,
    /// BGP routes the FIB refused (logged at powers of two: a full FIB
    /// refuses every new route of a table).
    bgp_refused: u64,
}

impl std::fmt::Debug for Daemon {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Daemon")
            .field("ports", &self.ports)
            .field("routes", &self.routes.len())
            .finish_non_exhaustive()
    }
}

/// A helper thread that runs until told to stop (a flag it checks), then
/// is joined: the ctl and metrics servers.
pub(crate) struct StoppableThread {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl StoppableThread {
    /// Spawns `f`, which must return soon after its flag is set.
    pub(crate) fn spawn(
        name: &str,
        f: impl FnOnce(&AtomicBool) + Send + 'static,
    ) -> Result<StoppableThread, DaemonError> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || f(&flag))
            .map_err(io_err(format!("spawn {name}")))?;
        Ok(StoppableThread {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for StoppableThread {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A cap on the connections a server (ctl, metrics) serves at once, each
/// on a thread of its own: a slow or stalled client holds one slot for at
/// most its deadline, never the server.
#[derive(Clone)]
pub(crate) struct ClientSlots {
    busy: Arc<AtomicUsize>,
    max: usize,
}

impl ClientSlots {
    pub(crate) fn new(max: usize) -> ClientSlots {
        ClientSlots {
            busy: Arc::new(AtomicUsize::new(0)),
            max,
        }
    }

    /// Runs `f` on a thread named `name` if a slot is free; `false` (and
    /// nothing run) when all are taken or no thread could be made.
    pub(crate) fn spawn(&self, name: &str, f: impl FnOnce() + Send + 'static) -> bool {
        if self.busy.fetch_add(1, Ordering::AcqRel) >= self.max {
            self.busy.fetch_sub(1, Ordering::AcqRel);
            return false;
        }
        // Gives the slot back when the thread ends (or, if it cannot be
        // spawned, when the closure holding it is dropped).
        struct Slot(Arc<AtomicUsize>);
        impl Drop for Slot {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::AcqRel);
            }
        }
        let slot = Slot(self.busy.clone());
        std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                let _slot = slot;
                f();
            })
            .is_ok()
    }
}

/// Forwards every item of `rx` into the control channel until either side
/// goes away.
fn forward<T: Send + 'static>(
    name: &str,
    rx: Receiver<T>,
    tx: Sender<Msg>,
    wrap: fn(T) -> Msg,
) -> Result<(), DaemonError> {
    std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            for item in rx {
                if tx.send(wrap(item)).is_err() {
                    break;
                }
            }
        })
        .map(|_| ())
        .map_err(io_err(format!("spawn {name}")))
}

/// The CPUs for the workers: the configured ones, or every CPU but CPU 0
/// (CPU 0 alone on a one-CPU machine).
fn worker_cores(config: &Config) -> Vec<usize> {
    if let Some(c) = &config.router.worker_cores {
        return c.clone();
    }
    let n = std::thread::available_parallelism().map_or(1, |n| n.get());
    if n <= 1 {
        vec![0]
    } else {
        (1..n).collect()
    }
}

/// The first configured worker CPU not in `allowed` (the CPUs this
/// process may run on), with `allowed` as text for the error.
fn missing_core(cores: &[usize], allowed: &[usize]) -> Option<(usize, String)> {
    let core = *cores.iter().find(|c| !allowed.contains(c))?;
    let list: Vec<String> = allowed.iter().map(usize::to_string).collect();
    Some((core, list.join(", ")))
}

/// Queues of an interface whose names start with `prefix` (`rx-` or
/// `tx-` in `/sys/class/net/IF/queues`), at least 1.
fn queue_count(name: &str, prefix: &str) -> u32 {
    let dir = format!("/sys/class/net/{name}/queues");
    (queue_names(Path::new(&dir), prefix).len() as u32).max(1)
}

/// The receive queues (`rx-0`, `rx-1`, ...) under an interface's `queues`
/// directory `dir`, in name order; none if it cannot be read.
fn rx_queue_names(dir: &Path) -> Vec<String> {
    queue_names(dir, "rx-")
}

fn queue_names(dir: &Path, prefix: &str) -> Vec<String> {
    let mut q: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|q| q.starts_with(prefix))
        .collect();
    q.sort();
    q
}

/// How many workers run: one per core, but no more than every interface
/// has receive queues (worker w takes queue w of each) or transmit queues
/// (worker w sends on its queue w: in copy mode the kernel takes a send on
/// a queue the device has no transmit queue for and sends nothing).
fn worker_count(cores: usize, rx: &[u32], tx: &[u32]) -> usize {
    let rx = rx.iter().copied().min().unwrap_or(1);
    let tx = tx.iter().copied().min().unwrap_or(1);
    cores.min(rx.min(tx) as usize).max(1)
}

impl Daemon {
    /// Sets everything up: the neighbour client, the XDP program on every
    /// interface, the workers, the routes, the prober and the ctl socket.
    /// Returns once the dataplane forwards.
    pub fn start(config: Config) -> Result<Daemon, DaemonError> {
        // A worker that cannot be pinned would share a CPU: refuse, as
        // VPP does, before touching any interface.
        // (When the CPUs cannot be read, pinning says so per worker.)
        let allowed = core_affinity::get_core_ids();
        if let (Some(cores), Some(allowed)) = (&config.router.worker_cores, allowed) {
            let allowed: Vec<usize> = allowed.iter().map(|c| c.id).collect();
            if let Some((core, allowed)) = missing_core(cores, &allowed) {
                return Err(DaemonError::WorkerCore { core, allowed });
            }
        }
        let fib = Fib::try_new().map_err(DaemonError::FibSetup)?;
        let (nodes, _) = fib.capacity();
        if nodes < fib::MAX_NODES {
            log!("FIB store reduced to room for {nodes} trie nodes (address space refused)");
        }
        let neigh = NeighClient::start()?;
        let table = neigh.table();
        let mut ports = Vec::new();
        for i in &config.interfaces {
            let link = table
                .link_by_name(&i.name)
                .ok_or_else(|| DaemonError::NoInterface(i.name.clone()))?;
            ports.push(PortInfo {
                name: i.name.clone(),
                ifindex: link.ifindex,
                mtu: i.mtu.map(u32::from),
            });
        }
        let addrs = ifaddr::global_addrs().map_err(io_err("read interface addresses"))?;

        let (tx, msgs) = mpsc::channel();
        forward(
            "flatedge-neigh-ev",
            neigh.subscribe()?,
            tx.clone(),
            Msg::Neigh,
        )?;

        let mut prog = XdpProgram::load().map_err(|source| DaemonError::Xdp {
            what: "load the XDP program".into(),
            source,
        })?;
        for (slot, p) in ports.iter().enumerate() {
            let vlan = prog
                .attach(p.ifindex)
                .and_then(|v| prog.set_port_slot(p.ifindex, slot as u32).map(|()| v))
                .map_err(|source| DaemonError::Xdp {
                    what: format!("attach the XDP program to {}", p.name),
                    source,
                })?;
            match vlan {
                VlanOffload::WasOff => {}
                VlanOffload::TurnedOff => log!(
                    "{}: VLAN receive offload turned off (tagged frames must reach \
                     the kernel tagged); turned on again at exit",
                    p.name
                ),
                VlanOffload::StaysOn(e) | VlanOffload::Unknown(e) => log!(
                    "{}: warning: cannot turn the VLAN receive offload off ({e}): \
                     frames of any VLAN on this port reach flatedge untagged and \
                     are routed as the port's own",
                    p.name
                ),
            }
        }

        for p in &ports {
            if let Some(l) = table.link(p.ifindex).filter(|l| l.mtu > xdp::MAX_MTU) {
                log!(
                    "{}: warning: link MTU {} is above the {} bytes flatedge carries \
                     ({}-byte AF_XDP frames): longer frames arriving on it are dropped \
                     by the kernel before flatedge sees them (ip link set dev {} mtu {})",
                    p.name,
                    l.mtu,
                    xdp::MAX_MTU,
                    xdp::FRAME_SIZE,
                    p.name,
                    xdp::MAX_MTU
                );
            }
        }
        let carrier = ports
            .iter()
            .map(|p| table.link(p.ifindex).is_some_and(|l| l.is_up()))
            .collect();
        let mut d = Daemon {
            carrier,
            fib,
            adjacencies: adjacency_table(Vec::new()),
            nexthops: NextHops::default(),
            routes: BTreeMap::new(),
            addrs: BTreeMap::new(),
            own_addrs: BTreeSet::new(),
            own_stuck: BTreeSet::new(),
            no_socket_last: std::cell::Cell::new(0),
            own_refused: BTreeSet::new(),
            prober: None,
            bgp: None,
            bgp_reach: NextHopReach::default(),
            unreachable_logged: BTreeSet::new(),
            workers: Vec::new(),
            worker_stop: Arc::new(AtomicBool::new(false)),
            _ctl: ctl::Server::start(&config.ctl.socket, tx.clone())?,
            _metrics: match config.metrics.listen {
                Some(a) => Some(metrics::Server::start(a, tx.clone())?),
                None => None,
            },
            pending_glean: BTreeSet::new(),
            addrs_changed: false,
            pending_resend: Vec::new(),
            to_self: tx.clone(),
            reloading: None,
            recreated_logged: BTreeSet::new(),
            config_file: None,
            hosts: BTreeSet::new(),
            hosts_refused: 0,
            bgp_refused: 0,
            msgs,
            neigh,
            prog,
            ports,
            config,
        };
        d.sync_addrs(addrs);
        d.install_static()?;
        d.install_aggregates()?;
        d.refresh();
        d.start_prober(tx.clone())?;
        d.start_workers(tx.clone())?;
        let ifnames: Vec<String> = d.ports.iter().map(|p| p.name.clone()).collect();
        for note in softirq::notes(&ifnames, &worker_cores(&d.config)) {
            log!("warning: {note}");
        }
        d.store_macs(&d.neigh.table());
        for note in bgp::policy_notes(&d.config) {
            log!("{note}");
        }
        if bgp::wanted(&d.config) {
            let mut s = bgp::speaker_config(&d.config);
            d.bgp_reach = d.next_hop_reach();
            s.next_hop_reach = d.bgp_reach.clone();
            d.bgp = Some(bgp::Bgp::start(s, tx)?);
        }
        Ok(d)
    }

    /// Names the file the configuration came from: `flatedgectl reload`
    /// reads it again (without one, `reload` is refused).
    pub fn with_config_file(mut self, path: PathBuf) -> Daemon {
        self.config_file = Some(path);
        self
    }

    /// The ctl socket's path.
    pub fn ctl_socket(&self) -> PathBuf {
        self.config.ctl.socket.clone()
    }

    /// Static routes: each `via` on a connected subnet, resolved through
    /// the kernel and probed.
    fn install_static(&mut self) -> Result<(), DaemonError> {
        for r in self.config.routes.clone() {
            self.install_own(r.prefix, &r.via)?;
        }
        Ok(())
    }

    /// Aggregates: routes to nowhere (ICMPv6 Destination Unreachable), so
    /// that a packet to an unused address inside one does not follow the
    /// default route back upstream.
    fn install_aggregates(&mut self) -> Result<(), DaemonError> {
        for prefix in self.config.bgp.aggregates.clone() {
            // A connected subnet wins over an aggregate (here, at reload
            // and when addresses change); the aggregate takes the prefix
            // when the subnet goes.
            if self.connected_port(prefix).is_none() {
                self.install_own(prefix, &[])?;
            }
        }
        Ok(())
    }

    /// Installs the connected route of a subnet of `port`: its hosts are
    /// gleaned.
    fn install_connected(&mut self, prefix: Prefix, port: PortIndex) -> Result<(), DaemonError> {
        let g = self.nexthops.glean(port);
        self.install(prefix, Source::Connected, vec![g])
    }

    /// Installs a static route to `prefix` via `via` (each on a connected
    /// subnet, resolved through the kernel and probed), or an aggregate
    /// when `via` is empty.
    fn install_own(&mut self, prefix: Prefix, via: &[Ipv6Addr]) -> Result<(), DaemonError> {
        if via.is_empty() {
            let id = self.nexthops.unreachable();
            return self.install(prefix, Source::Aggregate, vec![id]);
        }
        let mut ids = Vec::new();
        for &v in via {
            let tracked = match self.port_of(v) {
                Some(port) => self.track(v, port, true),
                None => Err(self.not_connected(prefix, v)),
            };
            match tracked {
                Ok(id) => ids.push(id),
                Err(e) => {
                    self.release_unused(&ids);
                    return Err(e);
                }
            }
        }
        let installed = self.install(prefix, Source::Static, ids.clone());
        if installed.is_err() {
            // Not installed: next hops no route uses stop being resolved
            // and probed.
            self.release_unused(&ids);
        }
        installed
    }

    /// The error for a static route whose next hop is on no subnet.
    fn not_connected(&self, prefix: Prefix, via: Ipv6Addr) -> DaemonError {
        let known: Vec<String> = self
            .addrs
            .iter()
            .flat_map(|(n, v)| v.iter().map(move |a| format!("{} on {n}", a.subnet)))
            .collect();
        DaemonError::NextHopNotConnected {
            prefix,
            via,
            known: if known.is_empty() {
                "none".into()
            } else {
                known.join(", ")
            },
        }
    }

    /// The id of neighbour `addr` behind `port`, asking the kernel to keep
    /// it resolved when it is new. `probe`: a static or BGP next hop, whose
    /// liveness the prober follows (ECMP takes a silent one out within a
    /// second). Gleaned hosts are not probed: up to [`MAX_HOSTS`] of them
    /// at one echo each per probe interval would flood their subnets, and
    /// the kernel's neighbour state already releases a host that is gone.
    fn track(
        &mut self,
        addr: Ipv6Addr,
        port: PortIndex,
        probe: bool,
    ) -> Result<NextHopId, DaemonError> {
        let (id, new) = self.nexthops.neighbor(addr, port);
        let ifindex = self.ports[usize::from(port)].ifindex;
        if new {
            if let Err(e) = self.neigh.resolve(addr, ifindex) {
                // Untracked: forget the id, so that the next route through
                // this neighbour asks again instead of finding it known
                // and never resolved.
                self.nexthops.release(id);
                return Err(e.into());
            }
        }
        if probe && self.nexthops.set_probed(id) {
            if let Some(p) = &self.prober {
                p.add((addr, ifindex));
            }
        }
        Ok(id)
    }

    /// Installs a connected, static or host route (kept in `routes`).
    /// A BGP route for the same prefix is replaced.
    fn install(
        &mut self,
        prefix: Prefix,
        source: Source,
        nexthops: Vec<NextHopId>,
    ) -> Result<(), DaemonError> {
        debug_assert!(source != Source::Bgp, "BGP routes live only in the FIB");
        let replaced_bgp = if self.routes.contains_key(&prefix) {
            None
        } else {
            self.fib.nexthops(prefix)
        };
        let nhs: Vec<FibNextHop> = nexthops.iter().map(|id| FibNextHop::new(id.0)).collect();
        self.fib
            .insert(prefix, &nhs)
            .map_err(|source| DaemonError::Fib { prefix, source })?;
        for &id in &nexthops {
            self.nexthops.retain(id);
        }
        if let Some(old) = self.routes.insert(prefix, Route { source, nexthops }) {
            self.unref(prefix, &old);
        }
        for id in replaced_bgp.into_iter().flatten() {
            self.unref_nexthop(id);
        }
        if source == Source::Host {
            self.hosts.insert(prefix);
        }
        Ok(())
    }

    /// Removes a connected, static or host route.
    fn uninstall(&mut self, prefix: Prefix) {
        if let Some(old) = self.routes.remove(&prefix) {
            self.fib.remove(prefix);
            self.unref(prefix, &old);
        }
    }

    /// Installs, replaces (`nexthops` not empty) or removes a BGP route.
    /// BGP routes are kept only in the FIB: a million of them would cost
    /// more in a map of our own than the RIB and the FIB together; the
    /// FIB says which next hops a route it replaces was using.
    fn set_bgp(&mut self, prefix: Prefix, nexthops: &[NextHopId]) -> Result<(), DaemonError> {
        let old = self.fib.nexthops(prefix);
        if nexthops.is_empty() {
            self.fib.remove(prefix);
        } else {
            let nhs: Vec<FibNextHop> = nexthops.iter().map(|id| FibNextHop::new(id.0)).collect();
            self.fib
                .insert(prefix, &nhs)
                .map_err(|source| DaemonError::Fib { prefix, source })?;
            for &id in nexthops {
                self.nexthops.retain(id);
            }
        }
        for id in old.into_iter().flatten() {
            self.unref_nexthop(id);
        }
        Ok(())
    }

    /// Drops a removed route's references; a gleaned neighbour nobody uses
    /// any more is released (its kernel entry deleted).
    fn unref(&mut self, prefix: Prefix, r: &Route) {
        if r.source == Source::Host {
            self.hosts.remove(&prefix);
        }
        for &id in &r.nexthops {
            self.unref_nexthop(id);
        }
    }

    /// One route less uses `id`; the last one releases it: no longer
    /// resolved or probed, its kernel entry deleted.
    fn unref_nexthop(&mut self, id: NextHopId) {
        if self.nexthops.unref(id) > 0 {
            return;
        }
        self.release_nexthop(id);
    }

    /// Releases the next hops tracked for a route that was not installed,
    /// those no other route uses.
    fn release_unused(&mut self, ids: &[NextHopId]) {
        for &id in ids {
            self.release_nexthop(id);
        }
    }

    /// Releases `id` if no route uses it: no longer resolved or probed,
    /// its kernel entry deleted.
    fn release_nexthop(&mut self, id: NextHopId) {
        let probed = self.nexthops.probed(id);
        if let Some((addr, port)) = self.nexthops.release(id) {
            let ifindex = self.ports[usize::from(port)].ifindex;
            if probed {
                if let Some(p) = &self.prober {
                    p.remove((addr, ifindex));
                }
            }
            if let Err(e) = self.neigh.release(addr, ifindex) {
                log!("cannot release neighbour {addr}: {e}");
            }
        }
    }

    /// Where a BGP next hop can be reached, as `apply_bgp` finds its
    /// port: a global one on a port's subnet (`port_of`), a link-local
    /// one on a port.
    fn next_hop_reach(&self) -> NextHopReach {
        let subnets = self
            .port_subnets()
            .filter_map(|(_, s)| Ipv6Net::new(s.addr(), s.len()).ok())
            .collect();
        NextHopReach::on(subnets, self.ports.iter().map(|p| p.ifindex).collect())
    }

    /// Tells BGP where next hops resolve when that changed since it was
    /// last told (or its command queue was full then): a path whose next
    /// hop no port reaches takes no part in its decision.
    fn sync_bgp_reach(&mut self) {
        let Some(bgp) = &self.bgp else { return };
        let now = self.next_hop_reach();
        if now != self.bgp_reach && bgp.set_next_hop_reach(now.clone()) {
            self.bgp_reach = now;
        }
    }

    /// The subnets of the ports' addresses, each with its port, in port
    /// order.
    fn port_subnets(&self) -> impl Iterator<Item = (PortIndex, &Prefix)> {
        self.ports.iter().enumerate().flat_map(|(i, p)| {
            self.addrs
                .get(&p.name)
                .into_iter()
                .flatten()
                .map(move |a| (i as PortIndex, &a.subnet))
        })
    }

    /// The port whose connected subnets hold `addr`.
    fn port_of(&self, addr: Ipv6Addr) -> Option<PortIndex> {
        let a = u128::from(addr);
        self.port_subnets()
            .find_map(|(i, s)| s.contains(a).then_some(i))
    }

    /// Brings the XDP program's own-address map to `own`. An address the
    /// map refuses (it is full) is left out of `own_addrs`, and one it
    /// fails to delete waits in `own_stuck`, so that the next sync tries
    /// again; each is logged once.
    fn sync_own_addrs(&mut self, own: BTreeSet<Ipv6Addr>) {
        let mut kept = BTreeSet::new();
        for &a in &own {
            if self.own_addrs.contains(&a) {
                kept.insert(a);
                continue;
            }
            match self.prog.add_own_addr(a) {
                Ok(()) => {
                    kept.insert(a);
                    self.own_refused.remove(&a);
                }
                Err(e) => {
                    if self.own_refused.len() < MAX_HOSTS && self.own_refused.insert(a) {
                        log!(
                            "cannot add own address {a} to the XDP map: {e}; retrying every second"
                        );
                    }
                }
            }
        }
        // One the map keeps (the delete failed) would take its traffic
        // from the workers for good: it waits in `own_stuck` for the next
        // sync to try again (not in `own_addrs`, which are the box's).
        let gone: Vec<Ipv6Addr> = self
            .own_addrs
            .difference(&own)
            .chain(self.own_stuck.iter().filter(|a| !own.contains(a)))
            .copied()
            .collect();
        self.own_stuck.clear();
        for a in gone {
            if let Err(e) = self.prog.remove_own_addr(a) {
                if self.own_refused.len() < MAX_HOSTS && self.own_refused.insert(a) {
                    log!("cannot remove own address {a} from the XDP map: {e}; retrying every second");
                }
                self.own_stuck.insert(a);
            }
        }
        let stuck = &self.own_stuck;
        self.own_refused
            .retain(|a| own.contains(a) || stuck.contains(a));
        self.own_addrs = kept;
    }

    /// Applies a fresh read of the interfaces' addresses: the XDP
    /// program's own-address map and the connected routes.
    fn sync_addrs(&mut self, all: BTreeMap<String, Vec<IfAddr>>) {
        // Own addresses: every global address of the box, so that traffic
        // to any of them (even one on an interface flatedge does not
        // manage, such as a loopback) goes to the kernel. Before the
        // ports' own check below: a change elsewhere counts too.
        // (An address that failed duplicate address detection is another
        // node's: its traffic is forwarded, not the kernel's.)
        let own: BTreeSet<Ipv6Addr> = all
            .values()
            .flatten()
            .filter(|a| !a.dad_failed)
            .map(|a| a.addr)
            .collect();
        let own_changed = own != self.own_addrs || !self.own_stuck.is_empty();
        if own_changed {
            self.sync_own_addrs(own);
        }
        let addrs: BTreeMap<String, Vec<IfAddr>> = self
            .ports
            .iter()
            .filter_map(|p| all.get(&p.name).map(|v| (p.name.clone(), v.clone())))
            .collect();
        if addrs == self.addrs {
            if own_changed {
                // The fallback source of errors may have changed.
                self.store_icmp_sources();
            }
            return;
        }
        // Connected routes: the subnets now, via each port's glean.
        let mut want: BTreeMap<Prefix, PortIndex> = BTreeMap::new();
        for (i, p) in self.ports.iter().enumerate() {
            for a in addrs.get(&p.name).into_iter().flatten() {
                if a.subnet.len() < 128 {
                    want.entry(a.subnet).or_insert(i as PortIndex);
                }
            }
        }
        let old: Vec<Prefix> = self
            .routes
            .iter()
            .filter(|(p, r)| r.source == Source::Connected && !want.contains_key(p))
            .map(|(p, _)| *p)
            .collect();
        let mut to_bgp = Vec::new();
        for p in old {
            self.uninstall(p);
            if self.config.bgp.aggregates.contains(&p) {
                // The aggregate the connected route hid.
                if let Err(e) = self.install_own(p, &[]) {
                    log!("aggregate {p}: {e}");
                }
            } else {
                // A BGP path the connected route hid takes over.
                to_bgp.push(p);
            }
        }
        self.restore_bgp(to_bgp);
        for (prefix, port) in want {
            // A static route for the same prefix wins.
            if self
                .routes
                .get(&prefix)
                .is_some_and(|r| r.source == Source::Static)
            {
                continue;
            }
            if let Err(e) = self.install_connected(prefix, port) {
                log!("connected route {prefix}: {e}");
            }
        }
        self.addrs = addrs;
        self.rebind_static();
        self.store_icmp_sources();
        self.refresh();
    }

    /// Static routes whose next hop's subnet is now on another port (an
    /// address moved between interfaces) follow it: a next hop is bound to
    /// its port when the route is installed, and stayed on the old one,
    /// unresolvable, even across reloads of the same file.
    fn rebind_static(&mut self) {
        let moved: Vec<(Prefix, Vec<Ipv6Addr>)> = self
            .routes
            .iter()
            .filter(|(_, r)| r.source == Source::Static)
            .filter_map(|(p, r)| {
                let mut via = Vec::new();
                let mut moved = false;
                for &id in &r.nexthops {
                    let e = self.nexthops.get(id)?;
                    let nexthops::Kind::Neighbor { addr } = e.kind else {
                        return None;
                    };
                    moved |= self.port_of(addr).is_some_and(|port| port != e.port);
                    via.push(addr);
                }
                moved.then_some((*p, via))
            })
            .collect();
        for (prefix, via) in moved {
            match self.install_own(prefix, &via) {
                Ok(()) => log!(
                    "static route {prefix}: its next hops' subnet moved; now via {}",
                    self.port_names(&via)
                ),
                Err(e) => log!("static route {prefix}: its next hops' subnet moved: {e}"),
            }
        }
    }

    /// "addr on port, ..." for next hops on connected subnets.
    fn port_names(&self, via: &[Ipv6Addr]) -> String {
        via.iter()
            .map(|&a| match self.port_of(a) {
                Some(p) => format!("{a} on {}", self.ports[usize::from(p)].name),
                None => a.to_string(),
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Rebuilds the adjacency table from the kernel's view and the
    /// probing verdicts, sets each next hop's liveness in the FIB and
    /// publishes both.
    fn refresh(&mut self) {
        let table = self.neigh.table();
        let adj = self.nexthops.adjacencies(&self.ports, &table);
        for (i, a) in adj.iter().enumerate() {
            let up = a.resolved || a.glean || a.unreachable;
            let id = NextHopId(i as u32);
            if self.fib.nexthop_is_up(id) != up {
                self.fib.set_nexthop_up(id, up);
            }
        }
        // Host routes whose neighbour the kernel gave up on go, so that
        // the next packet gleans again.
        // (Only the host routes are looked at: this runs on every batch of
        // BGP changes, next to a million BGP routes.)
        let failed: Vec<Prefix> = self
            .hosts
            .iter()
            .filter(|p| {
                self.routes.get(p).is_some_and(|r| {
                    r.nexthops
                        .iter()
                        .all(|&id| self.nexthops.failed(id, &self.ports, &table))
                })
            })
            .copied()
            .collect();
        for p in failed {
            self.uninstall(p);
        }
        self.store_macs(&table);
        // Adjacencies first: a group that a new FIB snapshot makes use of a
        // next hop must find it in the table.
        self.adjacencies.store(Arc::new(adj));
        self.fib.publish();
    }

    /// Each interface's source of ICMPv6 errors (RFC 4443 section 2.2: an
    /// address of the router): its first global address, or any global
    /// address of the box when it has none (`None`: no errors are sent).
    fn icmp_sources(&self) -> Vec<Option<Ipv6Addr>> {
        let any = self.own_addrs.iter().next().copied();
        self.ports
            .iter()
            .map(|p| {
                self.addrs
                    .get(&p.name)
                    .and_then(|v| v.iter().find(|a| !a.dad_failed))
                    .map(|a| a.addr)
                    .or(any)
            })
            .collect()
    }

    /// Gives each worker port its interface's source of ICMPv6 errors
    /// after the addresses changed: one added later (SLAAC, DHCPv6, an
    /// operator) is used from then on, one removed no longer.
    fn store_icmp_sources(&self) {
        let srcs = self.icmp_sources();
        for w in &self.workers {
            for (src, &i) in w.icmp_srcs.iter().zip(&w.port_iface) {
                let want = srcs.get(i).copied().flatten();
                if src.load().as_deref().copied() != want {
                    src.store(want.map(Arc::new));
                }
            }
        }
    }

    /// Gives each worker port its interface's MAC (which may have
    /// changed): frames sent to another unicast MAC are dropped.
    fn store_macs(&self, table: &NeighborTable) {
        for w in &self.workers {
            for (mac, &i) in w.macs.iter().zip(&w.port_iface) {
                let link = self.ports.get(i).and_then(|p| table.link(p.ifindex));
                let key = link.and_then(|l| l.mac).map_or(0, mac_key);
                mac.store(key, Ordering::Relaxed);
            }
        }
    }

    /// A destination on a connected subnet without a host route: have the
    /// kernel resolve it and route it as a host. Returns whether it
    /// installed one (the adjacencies need a refresh).
    fn glean(&mut self, dst: Ipv6Addr) -> bool {
        let Some(port) = self.port_of(dst) else {
            return false;
        };
        let Ok(host) = Prefix::new(dst, 128) else {
            return false;
        };
        // Our own route, or a BGP one (BGP routes live only in the FIB),
        // that came in after the packet was sent to glean: a gleaned host
        // route gives way to BGP, so it must not replace one either.
        if self.routes.contains_key(&host) || self.fib.get(host).is_some() {
            return false;
        }
        if self.hosts.len() >= MAX_HOSTS {
            if (self.hosts_refused + 1).is_power_of_two() {
                log!("{} host routes (the most glean installs): not resolving {dst} ({} refused so far)", self.hosts.len(), self.hosts_refused + 1);
            }
            self.hosts_refused += 1;
            return false;
        }
        match self.track(dst, port, false) {
            Ok(id) => match self.install(host, Source::Host, vec![id]) {
                Ok(()) => true,
                Err(e) => {
                    log!("host route {host}: {e}");
                    // Not kept resolved for a route that is not there (a
                    // scan of the subnet would leave one behind per address).
                    self.release_unused(&[id]);
                    false
                }
            },
            Err(e) => {
                log!("cannot resolve {dst}: {e}");
                false
            }
        }
    }

    /// A BGP best path / ECMP set change: installed via the next hops on
    /// a connected subnet (or the interface of a link-local one). Static
    /// and connected routes win over BGP for the same prefix.
    fn apply_bgp(&mut self, c: ::bgp::rib::RibChange) {
        let Ok(prefix) = Prefix::new(c.prefix.addr(), c.prefix.prefix_len()) else {
            return;
        };
        match self.routes.get(&prefix).map(|r| r.source) {
            Some(source) if source.hides_bgp().is_some() => return,
            // A gleaned host route gives way to BGP.
            Some(_) => self.uninstall(prefix),
            None => {}
        }
        let mut ids = Vec::new();
        for nh in &c.nexthops {
            let port = match nh.ifindex {
                Some(ifindex) => self
                    .ports
                    .iter()
                    .position(|p| p.ifindex == ifindex)
                    .map(|i| i as PortIndex),
                None => self.port_of(nh.addr),
            };
            let Some(port) = port else {
                // Each address once, and at most MAX_HOSTS of them: a peer
                // churning next hops must not grow the set for ever.
                if self.unreachable_logged.len() < MAX_HOSTS
                    && self.unreachable_logged.insert(nh.addr)
                {
                    log!(
                        "BGP next hop {} ({prefix}) is on no subnet of an [[interface]]: not used{}",
                        nh.addr,
                        if self.unreachable_logged.len() == MAX_HOSTS {
                            " (no more such next hops are logged)"
                        } else {
                            ""
                        }
                    );
                }
                continue;
            };
            match self.track(nh.addr, port, true) {
                Ok(id) if !ids.contains(&id) => ids.push(id),
                Ok(_) => {}
                Err(e) => log!("cannot resolve BGP next hop {}: {e}", nh.addr),
            }
        }
        if let Err(e) = self.set_bgp(prefix, &ids) {
            self.release_unused(&ids);
            self.bgp_refused += 1;
            if self.bgp_refused.is_power_of_two() {
                log!(
                    "BGP route {prefix}: {e} ({} refused so far)",
                    self.bgp_refused
                );
            }
        }
    }

    fn start_prober(&mut self, tx: Sender<Msg>) -> Result<(), DaemonError> {
        let hops: Vec<(Ipv6Addr, u32)> = self
            .nexthops
            .neighbors()
            .filter(|&(id, _, _)| self.nexthops.probed(id))
            .map(|(_, addr, port)| (addr, self.ports[usize::from(port)].ifindex))
            .collect();
        let (prober, rx) =
            Prober::start(ProbeConfig::default(), &hops).map_err(io_err("start the prober"))?;
        forward("flatedge-probe-ev", rx, tx, Msg::Liveness)?;
        self.prober = Some(prober);
        Ok(())
    }

    fn start_workers(&mut self, tx: Sender<Msg>) -> Result<(), DaemonError> {
        let cores = worker_cores(&self.config);
        let queues: Vec<u32> = self
            .ports
            .iter()
            .map(|p| queue_count(&p.name, "rx-"))
            .collect();
        if let Some((p, &nq)) = self
            .ports
            .iter()
            .zip(&queues)
            .find(|(_, &nq)| nq > xdp::MAX_QUEUES)
        {
            return Err(DaemonError::TooManyQueues {
                name: p.name.clone(),
                queues: nq,
                max: xdp::MAX_QUEUES,
            });
        }
        let txq: Vec<u32> = self
            .ports
            .iter()
            .map(|p| queue_count(&p.name, "tx-"))
            .collect();
        let n = worker_count(cores.len(), &queues, &txq);
        let icmp_src = self.icmp_sources();
        let (gtx, grx) = mpsc::sync_channel(GLEAN_QUEUE);
        forward("flatedge-glean", grx, tx, Msg::Glean)?;
        for (w, &core) in cores.iter().take(n).enumerate() {
            // Worker w takes queue w and every n-th queue after it, on
            // every interface (n <= every interface's queue count); its
            // first ports are queue w of each interface in config order,
            // which is what adjacencies name (port index = interface).
            let mut owned: Vec<(usize, u32)> =
                (0..self.ports.len()).map(|i| (i, w as u32)).collect();
            for (i, &nq) in queues.iter().enumerate() {
                owned.extend((w as u32 + n as u32..nq).step_by(n).map(|q| (i, q)));
            }
            let frames = (owned.len() as u32 * 2 * RING).next_power_of_two();
            let mut pool = FramePool::new(PoolConfig {
                frames,
                frame_size: xdp::FRAME_SIZE,
                fill_ring: RING,
                rx_tx_ring: RING,
            })
            .map_err(|source| DaemonError::Xdp {
                what: "allocate the UMEM".into(),
                source,
            })?;
            let mut ports = Vec::new();
            let mut srcs = Vec::new();
            for &(i, q) in &owned {
                let p = &self.ports[i];
                let port =
                    Port::open(&mut pool, &p.name, q).map_err(|source| DaemonError::Xdp {
                        what: format!("open the AF_XDP socket of {} queue {q}", p.name),
                        source,
                    })?;
                self.prog
                    .insert_xsk(i as u32, q, port.fd())
                    .map_err(|source| DaemonError::Xdp {
                        what: format!("register the socket of {} queue {q}", p.name),
                        source,
                    })?;
                if !port.own_rings() {
                    log!(
                        "{} queue {q}: the kernel refused to map the socket's rings \
                         (Linux before 6.4); they run through xsk-rs's calls \
                         (a call into libxdp per descriptor), without header prefetch",
                        p.name
                    );
                }
                ports.push(port);
                srcs.push(icmp_src[i]);
            }
            let now = 0;
            let state = WorkerState::new(
                u64::from(self.config.icmp.rate),
                u64::from(self.config.icmp.burst),
                // The same for every worker: a flow picks the same member
                // whichever port (and worker) it comes in on.
                crate::dataplane::ip6_lookup::flow_hash_seed(u32::from(
                    self.config.router.router_id,
                )),
                now,
            );
            let mut worker = Worker::new(
                pool,
                ports,
                srcs,
                self.fib.reader(),
                self.adjacencies.clone(),
                state,
                RING as usize,
            )
            .map_err(|e| DaemonError::Io {
                what: "build a worker".into(),
                source: std::io::Error::other(e.to_string()),
            })?;
            worker.set_glean(gtx.clone());
            worker.set_coalesce(self.config.router.coalesce);
            let report = worker.report_handle();
            let macs = worker.port_macs();
            let icmp_srcs = worker.port_icmp_sources();
            let stop = self.worker_stop.clone();
            let thread = std::thread::Builder::new()
                .name(format!("flatedge-w{w}"))
                .spawn(move || {
                    if !core_affinity::set_for_current(core_affinity::CoreId { id: core }) {
                        log!("worker {w}: cannot pin to CPU {core}; running unpinned");
                    }
                    worker.run(&stop);
                })
                .map_err(io_err("spawn a worker"))?;
            let port_iface = owned.iter().map(|&(i, _)| i).collect();
            self.workers.push(WorkerHandle {
                report,
                port_iface,
                macs,
                icmp_srcs,
                thread,
            });
        }
        Ok(())
    }

    /// Runs the control loop until `stop` is set, then stops the workers
    /// and detaches the XDP program.
    pub fn run(mut self, stop: &AtomicBool) {
        let mut next_sync = Instant::now() + ADDR_SYNC;
        let mut compact_at = None;
        let mut changes = self.fib.changes();
        // Destinations to glean, each once until the next address sync;
        // taken after every other message, GLEAN_BUDGET at a time.
        let mut gleans: VecDeque<Ipv6Addr> = VecDeque::new();
        while !stop.load(Ordering::Relaxed) {
            let mut dirty = false;
            let wait = if gleans.is_empty() {
                Duration::from_millis(100)
            } else {
                Duration::ZERO
            };
            match self.msgs.recv_timeout(wait) {
                Ok(m) => dirty |= self.handle(m, &mut gleans),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            // Take whatever else is queued (for a while) before
            // republishing once.
            let t0 = Instant::now();
            while t0.elapsed() < DRAIN_BUDGET {
                let Ok(m) = self.msgs.try_recv() else { break };
                dirty |= self.handle(m, &mut gleans);
            }
            let t0 = Instant::now();
            while t0.elapsed() < GLEAN_BUDGET {
                let Some(dst) = gleans.pop_front() else { break };
                dirty |= self.glean(dst);
            }
            if dirty {
                self.refresh();
            }
            // Any route change (BGP, reload, glean, addresses) restarts
            // the quiet time.
            if self.fib.changes() != changes {
                changes = self.fib.changes();
                compact_at = Some(Instant::now() + COMPACT_AFTER);
            } else if compact_at.is_some_and(|t| Instant::now() >= t) {
                // Once per quiet time, whether or not it reaches the mark.
                compact_at = None;
                if self.fib.fragmented(FRAGMENTED) {
                    let c = self.fib.compact();
                    log!(
                        "FIB compacted after {} s without changes: {} blocks moved, store {} -> {} KiB",
                        COMPACT_AFTER.as_secs(),
                        c.moved,
                        c.store_before / 1024,
                        c.store_after / 1024
                    );
                }
            }
            if !self.pending_resend.is_empty() {
                self.flush_resend();
            }
            if std::mem::take(&mut self.addrs_changed) || Instant::now() >= next_sync {
                next_sync = Instant::now() + ADDR_SYNC;
                match ifaddr::global_addrs() {
                    Ok(a) => self.sync_addrs(a),
                    Err(e) => log!("cannot read interface addresses: {e}"),
                }
                self.sync_bgp_reach();
                // A host that failed may be gleaned again (those still
                // queued stay queued once).
                self.pending_glean.clear();
                self.pending_glean.extend(gleans.iter().copied());
            }
        }
        self.shutdown();
    }

    /// Handles one message (a glean is queued on `gleans`, once per
    /// destination); `true` when the adjacencies need a refresh.
    fn handle(&mut self, m: Msg, gleans: &mut VecDeque<Ipv6Addr>) -> bool {
        match m {
            // A kernel entry no next hop uses changes no adjacency (a
            // tracked one's change comes as a NextHop event).
            Msg::Neigh(NeighEvent::Neighbor(..)) => false,
            // Read the addresses now, not at the next periodic read: BGP's
            // next hops, the own-address map and the connected routes
            // follow within the round.
            Msg::Neigh(NeighEvent::Addresses) => {
                self.addrs_changed = true;
                false
            }
            // Any other link or next-hop change may change an adjacency.
            Msg::Neigh(ev) => {
                match &ev {
                    NeighEvent::Link(l) => {
                        self.log_carrier(l);
                        self.log_recreated(l);
                    }
                    NeighEvent::LinkDeleted(ifindex) => {
                        if let Some(p) = self.ports.iter().find(|p| p.ifindex == *ifindex) {
                            log!(
                                "{}: the interface was deleted; flatedge forwards on it again \
                                 only after a restart, once it exists",
                                p.name
                            );
                        }
                    }
                    _ => {}
                }
                true
            }
            Msg::Liveness(((addr, ifindex), l)) => {
                if let Some(port) = self.ports.iter().position(|p| p.ifindex == ifindex) {
                    // A verdict for a next hop released meanwhile is ignored.
                    if self.nexthops.set_liveness(addr, port as PortIndex, l) {
                        log!(
                            "next hop {addr} on {}: {} (probes)",
                            self.ports[port].name,
                            if l == Liveness::Down { "down" } else { "up" }
                        );
                        // Its MAC may have changed: have the kernel ask
                        // again rather than keep the old one for 20-50 s.
                        if l == Liveness::Down {
                            if let Err(e) = self.neigh.recheck(addr, ifindex) {
                                log!("next hop {addr}: cannot recheck its neighbour entry: {e}");
                            }
                        }
                    }
                }
                true
            }
            Msg::Glean(dst) => {
                if gleans.len() < MAX_HOSTS && self.pending_glean.insert(dst) {
                    gleans.push_back(dst);
                }
                false
            }
            Msg::Ctl(::ctl::Request::Reload, reply) => {
                // reload publishes its changes before it answers.
                self.reload(reply);
                false
            }
            Msg::ReloadBgp(answer) => {
                self.reload_bgp_answer(answer);
                false
            }
            Msg::Ctl(req, reply) => {
                let _ = reply.send(self.answer(req));
                false
            }
            Msg::Metrics(reply) => {
                let _ = reply.send(self.metrics());
                false
            }
            Msg::Bgp(ev) => {
                if let Some(line) = bgp::describe(&ev) {
                    log!("{line}");
                }
                match ev {
                    ::bgp::driver::Event::Changes(changes) => {
                        for c in changes {
                            self.apply_bgp(c);
                        }
                        true
                    }
                    _ => false,
                }
            }
        }
    }

    fn shutdown(mut self) {
        // BGP first: the peers get a Cease while we still forward.
        drop(self.bgp.take());
        self.worker_stop.store(true, Ordering::Relaxed);
        for w in self.workers.drain(..) {
            let _ = w.thread.join();
        }
        for p in &self.ports {
            let _ = self.prog.detach(p.ifindex);
        }
    }

    /// Says so when a configured interface exists again under a new
    /// ifindex (deleted and re-created: its ports and XDP program were on
    /// the old one), once per new ifindex.
    fn log_recreated(&mut self, l: &crate::neigh::Link) {
        let Some(p) = self.ports.iter().find(|p| p.name == l.name) else {
            return;
        };
        if p.ifindex != l.ifindex && self.recreated_logged.insert(l.ifindex) {
            log!(
                "{}: re-created as ifindex {} (flatedge attached to ifindex {}); \
                 restart flatedge to forward on it",
                p.name,
                l.ifindex,
                p.ifindex
            );
        }
    }

    /// Logs a carrier change of one of our ports.
    fn log_carrier(&mut self, l: &crate::neigh::Link) {
        let Some(p) = self.ports.iter().position(|p| p.ifindex == l.ifindex) else {
            return;
        };
        let up = l.is_up();
        if self.carrier.get(p).copied() != Some(up) {
            log!(
                "{}: {}",
                self.ports[p].name,
                if up { "link up" } else { "link down" }
            );
            if let Some(c) = self.carrier.get_mut(p) {
                *c = up;
            }
        }
    }

    /// A handle for questions to the BGP speaker (`None` without BGP).
    fn bgp_query(&self) -> Option<bgp::BgpQuery> {
        self.bgp.as_ref().and_then(|b| b.query())
    }

    /// The neighbour table now.
    fn table(&self) -> Arc<NeighborTable> {
        self.neigh.table()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Workers are capped by the fewest receive queues and the fewest
    /// transmit queues of any interface: with 4 receive queues but 2
    /// transmit queues, workers 2 and 3 sent on queues the device has no
    /// transmit queue for, and the kernel sent nothing.
    #[test]
    fn workers_fit_the_receive_and_the_transmit_queues() {
        assert_eq!(worker_count(4, &[4, 4], &[4, 4]), 4);
        assert_eq!(worker_count(4, &[4, 4], &[4, 2]), 2);
        assert_eq!(worker_count(4, &[1, 4], &[4, 4]), 1);
        assert_eq!(worker_count(2, &[8], &[8]), 2);
        assert_eq!(worker_count(0, &[], &[]), 1);
    }

    #[test]
    fn a_worker_core_the_process_cannot_use_is_named() {
        assert_eq!(missing_core(&[1, 2], &[0, 1, 2, 3]), None);
        assert_eq!(
            missing_core(&[1, 4096, 5], &[0, 1]),
            Some((4096, "0, 1".to_string()))
        );
    }
}
