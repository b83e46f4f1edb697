//! The daemon's configuration: the TOML file of DESIGN.md section 6,
//! checked and turned into typed values.
//!
//! ```toml
//! [router]
//! asn = 65000
//! router-id = "192.0.2.1"
//! [ctl]
//! socket = "/run/flatedge/ctl.sock"
//! [[interface]]
//! name = "up0"
//! [[bgp.listen]]                 # Cilium nodes dial in from this range
//! range = "2001:db8:1::/64"
//! peer-asn = 65001
//! import = ["2001:db8:100::/40 le 64", "2001:db8:96::/112 le 128"]
//! max-prefixes = 1000
//! [[bgp.neighbor]]               # a fixed peer, e.g. the upstream router
//! address = "2001:db8:ffff::1"
//! peer-asn = 65100
//! export = ["2001:db8:100::/40"]
//! [[route]]                      # static routes
//! prefix = "::/0"
//! via = ["2001:db8:ffff::1"]
//! ```
//!
//! `configs/edge.toml` documents every key with its default and unit.
//! Beyond the example above: `router.worker-cores`, `router.rx-usecs` and
//! `router.rx-frames` (receive coalescing), `interface.mtu`,
//! `bgp.port`, `bgp.aggregates` (originated prefixes, installed as
//! unreachable), `[bgp.multipath]` (`max-paths`, `as-path-relax`), per
//! listen range and neighbour `export`/`import`, `max-prefixes-idle-time`,
//! `graceful-restart`, `hold-time`, `connect-retry`, `password` (TCP MD5), `ttl-security`
//! (GTSM), and `passive` (neighbours only), `[icmp]` (`rate`, `burst`) and
//! `[metrics]` (`listen`).
//!
//! Reading happens in two passes:
//!
//! 1. TOML syntax and shape (serde, `deny_unknown_fields` everywhere): a
//!    misspelt key, a missing required key or a value of the wrong type
//!    stops here with one [`ConfigError::Syntax`] naming the key (a path
//!    as in pass 2, found from the parser's position: `key_path`) and
//!    line, a number's range in words rather than Rust's type name.
//! 2. Meaning: every address, prefix, list entry and number is checked,
//!    and the sections against each other (duplicate interfaces, a
//!    neighbour inside a listen range, overlapping listen ranges, ...).
//!    This pass does not stop at the first problem: [`ConfigErrors`]
//!    carries all of them, each with its [`Location`], a key path such as
//!    `bgp.listen[1].range` (array indices count from 0, in file order)
//!    and the line of the value.
//!
//! A [`Config`] exists only if both passes found nothing, so the daemon
//! never starts half-configured.
//!
//! Import and export lists use the `bgp` crate's prefix-list syntax
//! ([`bgp::policy::PrefixRule`]): `"P"` (exactly P), `"P le N"`,
//! `"P ge N"` (up to /128), `"P ge N le M"`, with `len(P) <= ge <= le
//! <= 128` and no host bits set.

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::num::NonZeroU32;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use bgp::policy::{PrefixList, PrefixRule, PrefixRuleError};
use bgp::wire::{Asn, HoldTime};
use fib::Prefix;
use serde::Deserialize;
use toml::Spanned;

/// Default `ctl.socket`.
pub const DEFAULT_CTL_SOCKET: &str = "/run/flatedge/ctl.sock";
/// Default `bgp.port`: the BGP port (RFC 4271 section 8.2.1).
pub const DEFAULT_BGP_PORT: u16 = 179;
/// Default `hold-time`, seconds: what GoBGP (and so Cilium) proposes.
pub const DEFAULT_HOLD_TIME: u16 = 90;
/// Default `max-prefixes-idle-time`, seconds.
pub const DEFAULT_MAX_PREFIXES_IDLE_TIME: u64 = 30;
/// Default `connect-retry`, seconds: shorter than RFC 4271's suggested
/// 120 (BIRD's, FRR's and GoBGP's default), so that an uplink that comes
/// back is dialled within half a minute.
pub const DEFAULT_CONNECT_RETRY: u16 = 30;
/// Default `bgp.multipath.max-paths`.
pub const DEFAULT_MAX_PATHS: usize = 16;
/// Default `icmp.rate`: ICMPv6 errors per second, per worker (Linux's
/// `icmp_msgs_per_sec`).
pub const DEFAULT_ICMP_RATE: u32 = 1000;
/// Default `icmp.burst`: token bucket depth, per worker (Linux's
/// `icmp_msgs_burst`).
pub const DEFAULT_ICMP_BURST: u32 = 50;
/// Default `router.rx-usecs`: the longest a frame waits in its rx ring
/// for a fuller batch, under load (see [`crate::worker::Coalesce`]).
pub const DEFAULT_RX_USECS: u32 = 30;
/// Default `router.rx-frames`: the batch a loaded port waits for.
pub const DEFAULT_RX_FRAMES: u32 = 32;
/// Largest `router.rx-usecs`.
pub const MAX_RX_USECS: u32 = 1000;
/// The IPv6 minimum link MTU (RFC 8200 section 5).
pub const MIN_MTU: u32 = 1280;
/// Longest TCP MD5 key Linux takes (`TCP_MD5SIG_MAXKEYLEN`).
pub const MAX_PASSWORD_LEN: usize = 80;
/// Longest interface name Linux takes (`IFNAMSIZ` - 1).
pub const MAX_INTERFACE_NAME_LEN: usize = 15;

/// A checked configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Config {
    /// `[router]`.
    pub router: Router,
    /// `[ctl]`.
    pub ctl: Ctl,
    /// `[[interface]]`, in file order (at least one).
    pub interfaces: Vec<Interface>,
    /// `[bgp]`, `[bgp.multipath]`, `[[bgp.listen]]`, `[[bgp.neighbor]]`.
    pub bgp: Bgp,
    /// `[[route]]`: static routes, in file order.
    pub routes: Vec<StaticRoute>,
    /// `[icmp]`: the ICMPv6 error rate limit.
    pub icmp: Icmp,
    /// `[metrics]`.
    pub metrics: Metrics,
}

/// `[router]`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Router {
    /// Our AS (`asn`): not 0, not AS_TRANS.
    pub asn: Asn,
    /// Our BGP identifier (`router-id`): an IPv4 dotted quad, not 0.0.0.0.
    pub router_id: Ipv4Addr,
    /// CPUs to pin one dataplane worker each on (`worker-cores`); `None`
    /// lets the daemon choose: every CPU but CPU 0, which is left to the
    /// control thread (CPU 0 alone on a one-CPU machine).
    pub worker_cores: Option<Vec<usize>>,
    /// Receive coalescing (`rx-usecs`, `rx-frames`): while a port's frames
    /// arrive fast enough to fill half a batch of `rx-frames` within
    /// `rx-usecs`, they wait until that many are there or the first has
    /// waited `rx-usecs`; `rx-usecs = 0` takes every frame as it comes.
    pub coalesce: crate::worker::Coalesce,
}

/// `[ctl]`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Ctl {
    /// The UNIX socket `flatedgectl` talks to (`socket`), an absolute path.
    pub socket: PathBuf,
}

impl Default for Ctl {
    fn default() -> Self {
        Ctl {
            socket: PathBuf::from(DEFAULT_CTL_SOCKET),
        }
    }
}

/// `[[interface]]`: a port the dataplane forwards on.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Interface {
    /// The Linux interface name (`name`), unique.
    pub name: String,
    /// The egress MTU the dataplane enforces (`mtu`), bytes of IPv6
    /// packet, 1280 to [`crate::xdp::MAX_MTU`]; `None` takes the
    /// interface's own MTU from the kernel.
    pub mtu: Option<u16>,
}

/// `[bgp]` and the tables below it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Bgp {
    /// The TCP port to listen on and connect to (`port`).
    pub port: u16,
    /// Prefixes we originate (`aggregates`): announced to the peers whose
    /// export list matches, installed in the FIB as unreachable so that
    /// an address inside one that no more specific route covers gets
    /// ICMPv6 Destination Unreachable rather than the default route.
    pub aggregates: Vec<Prefix>,
    /// `[bgp.multipath]`.
    pub multipath: Multipath,
    /// `[[bgp.listen]]`: ranges peers may connect from.
    pub listen: Vec<Listen>,
    /// `[[bgp.neighbor]]`: fixed peers.
    pub neighbors: Vec<Neighbor>,
}

/// `[bgp.multipath]`: how the decision process builds ECMP sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Multipath {
    /// The most paths in an ECMP set (`max-paths`); 1 disables multipath.
    pub max_paths: usize,
    /// Paths whose AS_PATHs differ but have the same length may share an
    /// ECMP set (`as-path-relax`).
    pub as_path_relax: bool,
}

impl Default for Multipath {
    fn default() -> Self {
        Multipath {
            max_paths: DEFAULT_MAX_PATHS,
            as_path_relax: false,
        }
    }
}

/// `[[bgp.listen]]`: any peer connecting from `range` is accepted with
/// these session settings (one session per peer address).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Listen {
    /// The source addresses accepted (`range`).
    pub range: Prefix,
    /// The settings every session from the range gets.
    pub session: Session,
}

/// `[[bgp.neighbor]]`: one fixed peer.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Neighbor {
    /// The peer's address (`address`): global unicast IPv6.
    pub address: Ipv6Addr,
    /// Only accept the peer's connections, never dial it (`passive`).
    pub passive: bool,
    /// The session's settings.
    pub session: Session,
}

/// The settings shared by `[[bgp.listen]]` and `[[bgp.neighbor]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Session {
    /// The AS the peer must open with (`peer-asn`); our own AS makes the
    /// session internal.
    pub peer_asn: Asn,
    /// Import allow-list (`import`); `None` accepts every non-martian
    /// prefix, `Some` of an empty list accepts none. Without `import`, an
    /// internal session (`peer-asn` ours) accepts every non-martian
    /// prefix and an external one none (RFC 8212; see
    /// [`Session::import_default_deny`]).
    pub import: Option<PrefixList>,
    /// An external session without `import`: it accepts no route (RFC
    /// 8212), which the daemon says in its log.
    pub import_default_deny: bool,
    /// Which of our originated prefixes (aggregates and static routes)
    /// are announced to the peer (`export`); empty announces nothing.
    pub export: PrefixList,
    /// Most prefixes accepted from one peer (`max-prefixes`); `None` is
    /// no limit.
    pub max_prefixes: Option<NonZeroU32>,
    /// How long a peer that exceeded `max-prefixes` is refused
    /// (`max-prefixes-idle-time`).
    pub max_prefixes_idle_time: Duration,
    /// Act as graceful restart helper (`graceful-restart`, RFC 4724 and
    /// RFC 8538).
    pub graceful_restart: bool,
    /// The hold time we propose (`hold-time`).
    pub hold_time: HoldTime,
    /// Time between two attempts to dial the peer (`connect-retry`,
    /// RFC 4271's ConnectRetryTimer), for neighbours flatedge dials;
    /// listen ranges and passive neighbours only accept connections.
    pub connect_retry: Duration,
    /// TCP MD5 signature key (`password`, RFC 2385).
    pub password: Option<Password>,
    /// GTSM (`ttl-security`, RFC 5082): the peer is at most this many
    /// hops away, so its packets must arrive with a hop limit of at least
    /// `256 - hops`; `None` disables the check.
    pub ttl_security: Option<u8>,
}

/// A TCP MD5 key: 1 to 80 bytes. `Debug` does not print it.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    /// The key, for `setsockopt(TCP_MD5SIG)`.
    pub fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

/// `[[route]]`: a static route, installed in the FIB and exportable.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct StaticRoute {
    /// The destination (`prefix`), unique among static routes.
    pub prefix: Prefix,
    /// The next hops (`via`): global unicast IPv6 addresses resolved
    /// through the neighbour table, an ECMP set when there are several.
    pub via: Vec<Ipv6Addr>,
}

/// `[icmp]`: each worker's token bucket for the ICMPv6 errors it sends
/// (Time Exceeded, Packet Too Big, Destination Unreachable).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Icmp {
    /// Tokens added per second (`rate`); 0 sends no ICMPv6 errors at all.
    pub rate: u32,
    /// Bucket depth (`burst`): errors that may leave back to back.
    pub burst: u32,
}

impl Default for Icmp {
    fn default() -> Self {
        Icmp {
            rate: DEFAULT_ICMP_RATE,
            burst: DEFAULT_ICMP_BURST,
        }
    }
}

/// `[metrics]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct Metrics {
    /// Address and port of the Prometheus endpoint (`listen`); `None`
    /// serves no metrics.
    pub listen: Option<SocketAddr>,
}

/// Where a problem is: the key path and the line of the value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// The key, e.g. `bgp.listen[1].range` (indices count from 0).
    pub path: String,
    /// 1-based line of the value in the file, when known.
    pub line: Option<usize>,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.path)
    }
}

/// One problem in a configuration.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file cannot be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Not TOML, an unknown or missing key, or a value of the wrong type.
    #[error("{message}")]
    Syntax {
        /// 1-based line, when the parser knows it.
        line: Option<usize>,
        /// The parser's message (names the key).
        message: String,
    },
    /// Not `ADDRESS/LENGTH` with an IPv6 address and a length up to 128.
    #[error("{at}: {value} is not an IPv6 prefix ({why})")]
    NotIpv6Prefix {
        /// Where.
        at: Location,
        /// As written.
        value: String,
        /// What is wrong.
        why: &'static str,
    },
    /// A prefix with bits set past its length.
    #[error("{at}: {value} has host bits set; did you mean {canonical}?")]
    HostBits {
        /// Where.
        at: Location,
        /// As written.
        value: String,
        /// With the host bits cleared.
        canonical: Prefix,
    },
    /// Not an IPv6 address.
    #[error("{at}: {value} is not an IPv6 address")]
    NotIpv6Address {
        /// Where.
        at: Location,
        /// As written.
        value: String,
    },
    /// An IPv4 address where IPv6 is needed.
    #[error("{at}: {value} is an IPv4 address; flatedge routes IPv6 only, give an IPv6 address")]
    Ipv4Address {
        /// Where.
        at: Location,
        /// As written.
        value: String,
    },
    /// An IPv6 address of a kind that cannot be a peer or a next hop.
    #[error("{at}: {address} cannot be used here: {why}")]
    UnusableAddress {
        /// Where.
        at: Location,
        /// The address.
        address: Ipv6Addr,
        /// Which kind it is.
        why: &'static str,
    },
    /// `router-id` is not an IPv4 dotted quad.
    #[error("{at}: {value:?} is not an IPv4 address in dotted-quad form such as \"192.0.2.1\" (the BGP identifier is 4 octets, RFC 6286)")]
    RouterId {
        /// Where.
        at: Location,
        /// As written.
        value: String,
    },
    /// `router-id` is 0.0.0.0.
    #[error("{at}: 0.0.0.0 is not a valid BGP identifier (RFC 6286); use a non-zero address, e.g. the router's IPv4 loopback")]
    RouterIdZero {
        /// Where.
        at: Location,
    },
    /// AS 0.
    #[error("{at}: AS 0 is reserved and cannot be used (RFC 7607)")]
    AsnZero {
        /// Where.
        at: Location,
    },
    /// AS 23456.
    #[error("{at}: AS 23456 is AS_TRANS, a placeholder no BGP speaker may be configured with (RFC 6793)")]
    AsTrans {
        /// Where.
        at: Location,
    },
    /// AS 65535 or 4294967295, the last of the 2- and 4-octet spaces.
    #[error("{at}: AS {asn} is reserved and cannot be used (RFC 7300)")]
    AsnReserved {
        /// Where.
        at: Location,
        /// The AS.
        asn: u32,
    },
    /// Hold time 1 or 2.
    #[error("{at}: a hold time of {seconds} s is not allowed; use 0 (no keepalives) or 3 s or more (RFC 4271 section 4.2)")]
    HoldTime {
        /// Where.
        at: Location,
        /// The value.
        seconds: u16,
    },
    /// `connect-retry = 0`.
    #[error("{at}: a connect-retry time of 0 s would dial the peer in a loop; use 1 s or more")]
    ConnectRetryZero {
        /// Where.
        at: Location,
    },
    /// `max-prefixes-idle-time = 0`.
    #[error(
        "{at}: 0 s would take a peer that exceeded max-prefixes back at once, in a loop \
         (full table, teardown, reconnect); use 1 s or more"
    )]
    MaxPrefixesIdleZero {
        /// Where.
        at: Location,
    },
    /// `max-prefixes = 0`.
    #[error("{at}: 0 would refuse every route; omit max-prefixes for no limit")]
    MaxPrefixesZero {
        /// Where.
        at: Location,
    },
    /// An import or export entry that does not parse (ge > le among them).
    #[error("{at}: {error}")]
    PrefixRule {
        /// Where.
        at: Location,
        /// What is wrong.
        error: PrefixRuleError,
    },
    /// A TCP MD5 password that is empty or too long.
    #[error("{at}: a TCP MD5 password must be 1 to {MAX_PASSWORD_LEN} bytes, this one is {len}")]
    PasswordLength {
        /// Where.
        at: Location,
        /// Its length in bytes.
        len: usize,
    },
    /// `ttl-security` out of range.
    #[error("{at}: ttl-security is the number of hops to the peer, 1 (directly connected) to 254, not {hops}; omit it to disable GTSM")]
    TtlSecurity {
        /// Where.
        at: Location,
        /// The value.
        hops: u32,
    },
    /// A neighbour address also configured earlier.
    #[error("{at}: neighbor {address} is already configured at {first}")]
    DuplicateNeighbor {
        /// Where.
        at: Location,
        /// The address.
        address: Ipv6Addr,
        /// The earlier one.
        first: Location,
    },
    /// A neighbour inside a listen range: which settings apply would be
    /// ambiguous.
    #[error("{at}: neighbor {address} is inside {range_at} {range}; a peer is either a neighbor or comes from a listen range, not both")]
    NeighborInListenRange {
        /// Where.
        at: Location,
        /// The neighbour.
        address: Ipv6Addr,
        /// The range's location.
        range_at: Location,
        /// The range.
        range: Prefix,
    },
    /// Two listen ranges overlap: a peer could match both.
    #[error("{at}: {range} overlaps {other_at} {other}; a peer connecting from the overlap would match both")]
    ListenOverlap {
        /// Where.
        at: Location,
        /// This range.
        range: Prefix,
        /// The earlier range's location.
        other_at: Location,
        /// The earlier range.
        other: Prefix,
    },
    /// `max-paths` out of range.
    #[error("{at}: max-paths must be 1 (no multipath) to {max} (the most members a FIB next-hop group holds), not {value}")]
    MaxPaths {
        /// Where.
        at: Location,
        /// The value.
        value: u32,
        /// The upper bound.
        max: usize,
    },
    /// `bgp.port = 0`, or port 0 in `metrics.listen`.
    #[error("{at}: port 0 is not a TCP port to listen on or connect to")]
    PortZero {
        /// Where.
        at: Location,
    },
    /// No `[[interface]]`.
    #[error(
        "no [[interface]] is configured; flatedge forwards only between the interfaces it is given"
    )]
    NoInterfaces,
    /// An interface name Linux would refuse.
    #[error("{at}: {name:?} is not a valid interface name: {why}")]
    InterfaceName {
        /// Where.
        at: Location,
        /// As written.
        name: String,
        /// What is wrong.
        why: &'static str,
    },
    /// An interface listed twice.
    #[error("{at}: interface {name} is already configured at {first}")]
    DuplicateInterface {
        /// Where.
        at: Location,
        /// The name.
        name: String,
        /// The earlier one.
        first: Location,
    },
    /// An MTU outside what IPv6 allows, or above what flatedge carries.
    #[error(
        "{at}: MTU {mtu} is outside 1280 (the IPv6 minimum, RFC 8200 section 5) to {max} \
         (the largest packet a {frame}-byte AF_XDP frame holds)",
        max = crate::xdp::MAX_MTU,
        frame = crate::xdp::FRAME_SIZE
    )]
    Mtu {
        /// Where.
        at: Location,
        /// The value.
        mtu: u32,
    },
    /// A static route without next hops.
    #[error("{at}: a static route needs at least one next hop")]
    NoNextHops {
        /// Where.
        at: Location,
    },
    /// A next hop listed twice in one route.
    #[error("{at}: next hop {address} is listed twice")]
    DuplicateNextHop {
        /// Where.
        at: Location,
        /// The address.
        address: Ipv6Addr,
    },
    /// More next hops than a FIB group holds.
    #[error("{at}: {count} next hops, more than the {max} a FIB next-hop group holds")]
    TooManyNextHops {
        /// Where.
        at: Location,
        /// How many were given.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// More interfaces than the XDP program has port slots for.
    #[error("{at}: interface number {count}; flatedge runs at most {max} interfaces")]
    TooManyInterfaces {
        /// Where (the first interface beyond the limit).
        at: Location,
        /// Its number, counting from 1.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// The same aggregate twice, or an aggregate that is also a static
    /// route.
    #[error("{at}: {prefix} is already configured at {first}; originate each prefix once")]
    DuplicateAggregate {
        /// Where.
        at: Location,
        /// The prefix.
        prefix: Prefix,
        /// The earlier one.
        first: Location,
    },
    /// `::/0` as an aggregate: it would discard every packet without a
    /// more specific route and hide a default route learned over BGP.
    #[error("{at}: ::/0 cannot be an aggregate: it would discard every packet without a more specific route and hide the default route learned over BGP; to announce a default, add a [[route]] for ::/0 via the upstream and export it")]
    DefaultAggregate {
        /// Where.
        at: Location,
    },
    /// The same static prefix twice.
    #[error("{at}: a static route for {prefix} is already configured at {first}; list all its next hops in one via")]
    DuplicateRoute {
        /// Where.
        at: Location,
        /// The prefix.
        prefix: Prefix,
        /// The earlier one.
        first: Location,
    },
    /// `worker-cores = []`.
    #[error(
        "{at}: an empty list would start no worker; omit worker-cores to use every CPU but CPU 0"
    )]
    NoWorkerCores {
        /// Where.
        at: Location,
    },
    /// A CPU listed twice in `worker-cores`.
    #[error("{at}: CPU {core} is listed twice; each worker needs a CPU of its own")]
    DuplicateWorkerCore {
        /// Where.
        at: Location,
        /// The CPU.
        core: usize,
    },
    /// A number outside the range its key allows.
    #[error("{at}: {value} is out of range; use {min} to {max}")]
    OutOfRange {
        /// Where.
        at: Location,
        /// The value given.
        value: u32,
        /// The smallest allowed.
        min: u32,
        /// The largest allowed.
        max: u32,
    },
    /// `burst = 0` with a non-zero rate.
    #[error("{at}: a burst of 0 lets no ICMPv6 error through; use 1 or more, or set rate = 0 to send none")]
    IcmpBurstZero {
        /// Where.
        at: Location,
    },
    /// The ctl socket path is not absolute.
    #[error("{at}: {path:?} is not an absolute path")]
    RelativeSocket {
        /// Where.
        at: Location,
        /// As written.
        path: String,
    },
    /// The ctl socket path is longer than a UNIX socket address holds.
    #[error("{at}: {path:?} is {len} bytes; a UNIX socket path holds at most {max}")]
    SocketPathLength {
        /// Where.
        at: Location,
        /// As written.
        path: String,
        /// Its length in bytes.
        len: usize,
        /// The most there is room for.
        max: usize,
    },
    /// `metrics.listen` is not ADDRESS:PORT.
    #[error(
        "{at}: {value:?} is not an address and port such as \"[::1]:9100\" or \"127.0.0.1:9100\""
    )]
    SocketAddr {
        /// Where.
        at: Location,
        /// As written.
        value: String,
    },
    /// A route, aggregate or listen range inside a range that is never
    /// routed: multicast, link-local, loopback, unspecified, IPv4-mapped.
    #[error("{at}: {prefix} is {why}; it is never routed")]
    NotRoutable {
        /// Where.
        at: Location,
        /// The prefix.
        prefix: Prefix,
        /// Which range it lies in.
        why: &'static str,
    },
}

impl ConfigError {
    /// The key the problem is at, if it is at one.
    pub fn location(&self) -> Option<&Location> {
        use ConfigError::*;
        match self {
            Read { .. } | Syntax { .. } | NoInterfaces => None,
            NotIpv6Prefix { at, .. }
            | HostBits { at, .. }
            | NotIpv6Address { at, .. }
            | Ipv4Address { at, .. }
            | UnusableAddress { at, .. }
            | RouterId { at, .. }
            | RouterIdZero { at }
            | AsnReserved { at, .. }
            | AsnZero { at }
            | AsTrans { at }
            | HoldTime { at, .. }
            | ConnectRetryZero { at }
            | MaxPrefixesZero { at }
            | MaxPrefixesIdleZero { at }
            | PrefixRule { at, .. }
            | PasswordLength { at, .. }
            | TtlSecurity { at, .. }
            | DuplicateNeighbor { at, .. }
            | NeighborInListenRange { at, .. }
            | ListenOverlap { at, .. }
            | MaxPaths { at, .. }
            | PortZero { at }
            | InterfaceName { at, .. }
            | DuplicateInterface { at, .. }
            | Mtu { at, .. }
            | NoNextHops { at }
            | DuplicateNextHop { at, .. }
            | TooManyNextHops { at, .. }
            | TooManyInterfaces { at, .. }
            | DuplicateAggregate { at, .. }
            | DefaultAggregate { at }
            | DuplicateRoute { at, .. }
            | NoWorkerCores { at }
            | DuplicateWorkerCore { at, .. }
            | OutOfRange { at, .. }
            | IcmpBurstZero { at }
            | RelativeSocket { at, .. }
            | SocketPathLength { at, .. }
            | SocketAddr { at, .. }
            | NotRoutable { at, .. } => Some(at),
        }
    }

    /// The 1-based line of the problem, when known.
    pub fn line(&self) -> Option<usize> {
        match self {
            ConfigError::Syntax { line, .. } => *line,
            other => other.location().and_then(|at| at.line),
        }
    }
}

/// Every problem found in a configuration (at least one), in file order
/// of the checks, with the file they came from.
#[derive(Debug)]
pub struct ConfigErrors {
    file: Option<PathBuf>,
    errors: Vec<ConfigError>,
}

impl ConfigErrors {
    /// The problems.
    pub fn errors(&self) -> &[ConfigError] {
        &self.errors
    }

    /// The file, when read with [`Config::from_file`].
    pub fn file(&self) -> Option<&Path> {
        self.file.as_deref()
    }

    fn one(error: ConfigError) -> ConfigErrors {
        ConfigErrors {
            file: None,
            errors: vec![error],
        }
    }
}

impl fmt::Display for ConfigErrors {
    /// One problem per line, compiler style: `FILE:LINE: KEY: message`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.errors.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            let read = matches!(e, ConfigError::Read { .. });
            match (&self.file, e.line()) {
                (Some(file), Some(line)) => write!(f, "{}:{line}: ", file.display())?,
                (Some(file), None) if !read => write!(f, "{}: ", file.display())?,
                (None, Some(line)) => write!(f, "line {line}: ")?,
                _ => {}
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self.errors.as_slice() {
            [one] => Some(one),
            _ => None,
        }
    }
}

impl IntoIterator for ConfigErrors {
    type Item = ConfigError;
    type IntoIter = std::vec::IntoIter<ConfigError>;

    fn into_iter(self) -> Self::IntoIter {
        self.errors.into_iter()
    }
}

impl Config {
    /// Reads and checks the file at `path`.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Config, ConfigErrors> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| {
            ConfigErrors::one(ConfigError::Read {
                path: path.to_path_buf(),
                source,
            })
        })?;
        text.parse().map_err(|mut e: ConfigErrors| {
            e.file = Some(path.to_path_buf());
            e
        })
    }
}

impl FromStr for Config {
    type Err = ConfigErrors;

    /// Parses and checks a configuration held in a string.
    fn from_str(text: &str) -> Result<Config, ConfigErrors> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| {
            let mut message = plain_message(e.message().trim_end());
            let at = e.span().and_then(|span| {
                // An unknown key is named by the message: give its table.
                let unknown = message
                    .strip_prefix("unknown field `")
                    .and_then(|m| m.split('`').next());
                key_path(text, span.start, unknown)
            });
            // `[interface]` where `[[interface]]` is meant: the parser sees
            // one table where a list of them belongs.
            let tables = ["interface", "route", "bgp.listen", "bgp.neighbor"];
            if e.message()
                .contains("invalid type: map, expected a sequence")
                && at.as_deref().is_some_and(|a| tables.contains(&a))
            {
                message = "a single table where a list of tables belongs: write each entry \
                           with two brackets, [[...]]"
                    .into();
            }
            ConfigErrors::one(ConfigError::Syntax {
                line: e.span().map(|s| line_of(text, s.start)),
                message: match at {
                    Some(at) if !at.is_empty() => format!("{at}: {message}"),
                    _ => message,
                },
            })
        })?;
        let mut check = Check {
            text,
            errors: Vec::new(),
            aggregates: Vec::new(),
        };
        let config = check.config(&raw);
        match config {
            Some(config) if check.errors.is_empty() => Ok(config),
            _ => Err(ConfigErrors {
                file: None,
                errors: check.errors,
            }),
        }
    }
}

// ---------------------------------------------------------------------------
// Pass 1: the TOML's shape. Values that need checking keep their span.

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    router: RawRouter,
    #[serde(default)]
    ctl: RawCtl,
    #[serde(default, rename = "interface")]
    interfaces: Vec<Spanned<RawInterface>>,
    #[serde(default)]
    bgp: RawBgp,
    #[serde(default, rename = "route")]
    routes: Vec<Spanned<RawRoute>>,
    #[serde(default)]
    icmp: RawIcmp,
    #[serde(default)]
    metrics: RawMetrics,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawRouter {
    asn: Spanned<u32>,
    router_id: Spanned<String>,
    worker_cores: Option<Spanned<Vec<Spanned<usize>>>>,
    rx_usecs: Option<Spanned<u32>>,
    rx_frames: Option<Spanned<u32>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCtl {
    socket: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawInterface {
    name: Spanned<String>,
    mtu: Option<Spanned<u32>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBgp {
    port: Option<Spanned<u16>>,
    #[serde(default)]
    aggregates: Vec<Spanned<String>>,
    #[serde(default)]
    multipath: RawMultipath,
    #[serde(default)]
    listen: Vec<Spanned<RawListen>>,
    #[serde(default)]
    neighbor: Vec<Spanned<RawNeighbor>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawMultipath {
    max_paths: Option<Spanned<u32>>,
    as_path_relax: Option<bool>,
}

/// The session keys shared by both peer tables; `serde(flatten)` cannot
/// be combined with `deny_unknown_fields`, so the macro writes them into
/// each table.
macro_rules! raw_peer {
    ($(#[$m:meta])* struct $name:ident { $($field:ident: $ty:ty,)* }) => {
        $(#[$m])*
        #[derive(Debug, Deserialize)]
        #[serde(deny_unknown_fields, rename_all = "kebab-case")]
        struct $name {
            $($field: $ty,)*
            peer_asn: Spanned<u32>,
            import: Option<Vec<Spanned<String>>>,
            export: Option<Vec<Spanned<String>>>,
            max_prefixes: Option<Spanned<u32>>,
            max_prefixes_idle_time: Option<Spanned<u64>>,
            graceful_restart: Option<bool>,
            hold_time: Option<Spanned<u16>>,
            connect_retry: Option<Spanned<u16>>,
            password: Option<Spanned<String>>,
            ttl_security: Option<Spanned<u32>>,
        }

        impl $name {
            fn session(&self) -> RawSession<'_> {
                RawSession {
                    peer_asn: &self.peer_asn,
                    import: self.import.as_deref(),
                    export: self.export.as_deref(),
                    max_prefixes: self.max_prefixes.as_ref(),
                    max_prefixes_idle_time: self.max_prefixes_idle_time.as_ref(),
                    graceful_restart: self.graceful_restart,
                    hold_time: self.hold_time.as_ref(),
                    connect_retry: self.connect_retry.as_ref(),
                    password: self.password.as_ref(),
                    ttl_security: self.ttl_security.as_ref(),
                }
            }
        }
    };
}

raw_peer! {
    struct RawListen {
        range: Spanned<String>,
    }
}

raw_peer! {
    struct RawNeighbor {
        address: Spanned<String>,
        passive: Option<bool>,
    }
}

struct RawSession<'a> {
    peer_asn: &'a Spanned<u32>,
    import: Option<&'a [Spanned<String>]>,
    export: Option<&'a [Spanned<String>]>,
    max_prefixes: Option<&'a Spanned<u32>>,
    max_prefixes_idle_time: Option<&'a Spanned<u64>>,
    graceful_restart: Option<bool>,
    hold_time: Option<&'a Spanned<u16>>,
    connect_retry: Option<&'a Spanned<u16>>,
    password: Option<&'a Spanned<String>>,
    ttl_security: Option<&'a Spanned<u32>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRoute {
    prefix: Spanned<String>,
    via: Spanned<Vec<Spanned<String>>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawIcmp {
    rate: Option<u32>,
    burst: Option<Spanned<u32>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMetrics {
    listen: Option<Spanned<String>>,
}

// ---------------------------------------------------------------------------
// Pass 2: meaning. Every helper that returns `None` has recorded why.

/// The key a parser error at byte `offset` is about, in the form of
/// [`Location`] (`bgp.neighbor[1].hold-time`): the table from the last
/// header before it (`[[...]]` headers counted per array), and the key of
/// its line, or of the nearest line above with one (a multi-line value);
/// with `unknown` (an unknown field's name), the table alone. `None` when nothing names it.
fn key_path(text: &str, offset: usize, unknown: Option<&str>) -> Option<String> {
    let table_only = unknown.is_some();
    let offset = offset.min(text.len());
    let mut table = String::new();
    // The last header's name as written (`bgp.neighbor`, no index).
    let mut header = String::new();
    let mut arrays: HashMap<String, usize> = HashMap::new();
    let mut key = None;
    let line_start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
    let line_end = text[offset..].find('\n').map_or(text.len(), |i| offset + i);
    for line in text[..line_end].lines() {
        let t = line.trim();
        if let Some(name) = t.strip_prefix("[[").and_then(|r| r.split("]]").next()) {
            let name = name.trim().to_string();
            let n = arrays.entry(name.clone()).or_insert(0);
            table = format!("{name}[{n}]");
            *n += 1;
            header = name;
            key = None;
        } else if let Some(name) = t.strip_prefix('[').and_then(|r| r.split(']').next()) {
            table = name.trim().to_string();
            header = table.clone();
            key = None;
        } else if let Some((k, _)) = t.split_once('=') {
            let k = k.trim();
            let bare = |c: char| c.is_ascii_alphanumeric() || "-_.\"".contains(c);
            if !k.is_empty() && !k.starts_with('#') && k.chars().all(bare) {
                key = Some(k.trim_matches('"').to_string());
            }
        }
    }
    // The header itself is the problem (a missing key of that table).
    let on_header = text[line_start..line_end].trim_start().starts_with('[');
    if let (Some(field), true) = (unknown, on_header) {
        // An unknown table: the unknown field is one of the header's
        // names (the last one so named: `[icmp.icmp]`), in the table the
        // names before it make (none at the top).
        let names: Vec<&str> = header
            .split('.')
            .map(|n| n.trim().trim_matches('"'))
            .collect();
        let at = names
            .iter()
            .rposition(|n| *n == field)
            .unwrap_or(names.len().saturating_sub(1));
        let parent = names[..at].join(".");
        return (!parent.is_empty()).then_some(parent);
    }
    let path = match key {
        Some(k) if !table_only && !on_header => {
            if table.is_empty() {
                k
            } else {
                format!("{table}.{k}")
            }
        }
        _ => table,
    };
    (!path.is_empty()).then_some(path)
}

/// The TOML parser's message in words for the reader of a config rather
/// than of Rust: "expected u16" says its range.
fn plain_message(message: &str) -> String {
    let mut m = message.to_string();
    for (rust, words) in [
        ("expected u8", "expected a whole number from 0 to 255"),
        ("expected u16", "expected a whole number from 0 to 65535"),
        (
            "expected u32",
            "expected a whole number from 0 to 4294967295",
        ),
        (
            "expected u64",
            "expected a whole number from 0 to 18446744073709551615",
        ),
        ("expected usize", "expected a whole number from 0 up"),
        ("expected a sequence", "expected a list such as [\"...\"]"),
    ] {
        m = m.replace(rust, words);
    }
    m
}

fn line_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    1 + text.as_bytes()[..end]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
}

struct Check<'a> {
    text: &'a str,
    errors: Vec<ConfigError>,
    /// `bgp.aggregates`, for the static routes to be checked against.
    aggregates: Vec<(Location, Prefix)>,
}

impl Check<'_> {
    fn at(&self, path: impl Into<String>, span: Range<usize>) -> Location {
        Location {
            path: path.into(),
            line: Some(line_of(self.text, span.start)),
        }
    }

    fn push(&mut self, e: ConfigError) {
        self.errors.push(e);
    }

    fn config(&mut self, raw: &RawConfig) -> Option<Config> {
        let router = self.router(&raw.router);
        let ctl = self.ctl(&raw.ctl);
        let interfaces = self.interfaces(&raw.interfaces);
        let bgp = self.bgp(&raw.bgp, router.as_ref().map(|r| r.asn));
        let routes = self.routes(&raw.routes);
        let icmp = self.icmp(&raw.icmp);
        let metrics = self.metrics(&raw.metrics);
        Some(Config {
            router: router?,
            ctl: ctl?,
            interfaces: interfaces?,
            bgp: bgp?,
            routes: routes?,
            icmp: icmp?,
            metrics: metrics?,
        })
    }

    fn router(&mut self, raw: &RawRouter) -> Option<Router> {
        let asn = self.asn("router.asn", &raw.asn);
        let at = self.at("router.router-id", raw.router_id.span());
        let router_id = match raw.router_id.get_ref().parse::<Ipv4Addr>() {
            Ok(id) if id.is_unspecified() => {
                self.push(ConfigError::RouterIdZero { at });
                None
            }
            Ok(id) => Some(id),
            Err(_) => {
                self.push(ConfigError::RouterId {
                    at,
                    value: raw.router_id.get_ref().clone(),
                });
                None
            }
        };
        let worker_cores = match &raw.worker_cores {
            None => Some(None),
            Some(list) => {
                let before = self.errors.len();
                if list.get_ref().is_empty() {
                    let at = self.at("router.worker-cores", list.span());
                    self.push(ConfigError::NoWorkerCores { at });
                }
                let mut cores = Vec::new();
                for (i, core) in list.get_ref().iter().enumerate() {
                    if cores.contains(core.get_ref()) {
                        let at = self.at(format!("router.worker-cores[{i}]"), core.span());
                        self.push(ConfigError::DuplicateWorkerCore {
                            at,
                            core: *core.get_ref(),
                        });
                    }
                    cores.push(*core.get_ref());
                }
                (self.errors.len() == before).then_some(Some(cores))
            }
        };
        let rx_usecs = self.bounded(
            "router.rx-usecs",
            raw.rx_usecs.as_ref(),
            DEFAULT_RX_USECS,
            0..=MAX_RX_USECS,
        );
        let rx_frames = self.bounded(
            "router.rx-frames",
            raw.rx_frames.as_ref(),
            DEFAULT_RX_FRAMES,
            1..=crate::dataplane::MAX_BATCH as u32,
        );
        Some(Router {
            asn: asn?,
            router_id: router_id?,
            worker_cores: worker_cores?,
            coalesce: crate::worker::Coalesce {
                usecs: rx_usecs?,
                frames: rx_frames?,
            },
        })
    }

    /// A number that must lie in `range` (`default` when absent).
    fn bounded(
        &mut self,
        path: &str,
        raw: Option<&Spanned<u32>>,
        default: u32,
        range: std::ops::RangeInclusive<u32>,
    ) -> Option<u32> {
        let Some(v) = raw else {
            return Some(default);
        };
        if range.contains(v.get_ref()) {
            return Some(*v.get_ref());
        }
        let at = self.at(path, v.span());
        self.push(ConfigError::OutOfRange {
            at,
            value: *v.get_ref(),
            min: *range.start(),
            max: *range.end(),
        });
        None
    }

    fn asn(&mut self, path: &str, raw: &Spanned<u32>) -> Option<Asn> {
        let at = self.at(path, raw.span());
        match Asn(*raw.get_ref()) {
            Asn(0) => self.push(ConfigError::AsnZero { at }),
            Asn::TRANS => self.push(ConfigError::AsTrans { at }),
            Asn(asn @ (65535 | u32::MAX)) => self.push(ConfigError::AsnReserved { at, asn }),
            asn => return Some(asn),
        }
        None
    }

    fn ctl(&mut self, raw: &RawCtl) -> Option<Ctl> {
        let Some(socket) = &raw.socket else {
            return Some(Ctl::default());
        };
        let path = PathBuf::from(socket.get_ref());
        if !path.is_absolute() {
            let at = self.at("ctl.socket", socket.span());
            self.push(ConfigError::RelativeSocket {
                at,
                path: socket.get_ref().clone(),
            });
            return None;
        }
        // sun_path: 108 bytes with the terminating NUL.
        const MAX: usize = 107;
        let len = socket.get_ref().len();
        if len > MAX {
            let at = self.at("ctl.socket", socket.span());
            self.push(ConfigError::SocketPathLength {
                at,
                path: socket.get_ref().clone(),
                len,
                max: MAX,
            });
            return None;
        }
        Some(Ctl { socket: path })
    }

    fn interfaces(&mut self, raw: &[Spanned<RawInterface>]) -> Option<Vec<Interface>> {
        let before = self.errors.len();
        if raw.is_empty() {
            self.push(ConfigError::NoInterfaces);
        }
        let mut seen: HashMap<&str, Location> = HashMap::new();
        let mut out = Vec::new();
        for (i, iface) in raw.iter().enumerate() {
            let iface = iface.get_ref();
            let name = iface.name.get_ref();
            let at = self.at(format!("interface[{i}].name"), iface.name.span());
            let max = crate::xdp::bpf::MAX_PORTS as usize;
            if i == max {
                self.push(ConfigError::TooManyInterfaces {
                    at: at.clone(),
                    count: i + 1,
                    max,
                });
            }
            if let Some(why) = interface_name_problem(name) {
                self.push(ConfigError::InterfaceName {
                    at: at.clone(),
                    name: name.clone(),
                    why,
                });
            }
            match seen.get(name.as_str()) {
                Some(first) => self.push(ConfigError::DuplicateInterface {
                    at,
                    name: name.clone(),
                    first: first.clone(),
                }),
                None => {
                    seen.insert(name, at);
                }
            }
            let mtu = match &iface.mtu {
                None => None,
                Some(m) => match u16::try_from(*m.get_ref()) {
                    Ok(mtu) if (MIN_MTU..=crate::xdp::MAX_MTU).contains(&u32::from(mtu)) => {
                        Some(mtu)
                    }
                    _ => {
                        let at = self.at(format!("interface[{i}].mtu"), m.span());
                        self.push(ConfigError::Mtu {
                            at,
                            mtu: *m.get_ref(),
                        });
                        None
                    }
                },
            };
            out.push(Interface {
                name: name.clone(),
                mtu,
            });
        }
        (self.errors.len() == before).then_some(out)
    }

    fn bgp(&mut self, raw: &RawBgp, local_asn: Option<Asn>) -> Option<Bgp> {
        let before = self.errors.len();
        let port = match &raw.port {
            None => DEFAULT_BGP_PORT,
            Some(p) if *p.get_ref() == 0 => {
                let at = self.at("bgp.port", p.span());
                self.push(ConfigError::PortZero { at });
                0
            }
            Some(p) => *p.get_ref(),
        };
        let max_paths = match &raw.multipath.max_paths {
            None => DEFAULT_MAX_PATHS,
            Some(m) => {
                let value = *m.get_ref();
                match usize::try_from(value) {
                    Ok(n) if (1..=fib::MAX_MEMBERS).contains(&n) => n,
                    _ => {
                        let at = self.at("bgp.multipath.max-paths", m.span());
                        self.push(ConfigError::MaxPaths {
                            at,
                            value,
                            max: fib::MAX_MEMBERS,
                        });
                        DEFAULT_MAX_PATHS
                    }
                }
            }
        };
        let mut aggregates = Vec::new();
        for (i, a) in raw.aggregates.iter().enumerate() {
            let at = self.at(format!("bgp.aggregates[{i}]"), a.span());
            let Some(prefix) = self.routable(at.clone(), a.get_ref()) else {
                continue;
            };
            if prefix.len() == 0 {
                self.push(ConfigError::DefaultAggregate { at });
            } else if let Some((first, _)) = aggregates.iter().find(|(_, p)| *p == prefix) {
                let first = Location::clone(first);
                self.push(ConfigError::DuplicateAggregate { at, prefix, first });
            } else {
                aggregates.push((at, prefix));
            }
        }
        self.aggregates = aggregates.clone();
        let multipath = Multipath {
            max_paths,
            as_path_relax: raw.multipath.as_path_relax.unwrap_or(false),
        };

        let mut listen = Vec::new();
        let mut ranges: Vec<(Location, Prefix)> = Vec::new();
        for (i, l) in raw.listen.iter().enumerate() {
            let base = format!("bgp.listen[{i}]");
            let l = l.get_ref();
            let at = self.at(format!("{base}.range"), l.range.span());
            let range = self.routable(at.clone(), l.range.get_ref());
            let session = self.session(&base, l.session(), local_asn);
            if let Some(range) = range {
                for (other_at, other) in &ranges {
                    if other.covers(&range) || range.covers(other) {
                        self.push(ConfigError::ListenOverlap {
                            at: at.clone(),
                            range,
                            other_at: other_at.clone(),
                            other: *other,
                        });
                    }
                }
                ranges.push((at, range));
            }
            if let (Some(range), Some(session)) = (range, session) {
                listen.push(Listen { range, session });
            }
        }

        let mut neighbors = Vec::new();
        let mut seen: HashMap<Ipv6Addr, Location> = HashMap::new();
        for (i, n) in raw.neighbor.iter().enumerate() {
            let base = format!("bgp.neighbor[{i}]");
            let n = n.get_ref();
            let at = self.at(format!("{base}.address"), n.address.span());
            let address = self.peer_address(at.clone(), n.address.get_ref());
            let session = self.session(&base, n.session(), local_asn);
            if let Some(address) = address {
                for (range_at, range) in &ranges {
                    if range.contains(u128::from(address)) {
                        self.push(ConfigError::NeighborInListenRange {
                            at: at.clone(),
                            address,
                            range_at: range_at.clone(),
                            range: *range,
                        });
                    }
                }
                match seen.get(&address) {
                    Some(first) => self.push(ConfigError::DuplicateNeighbor {
                        at,
                        address,
                        first: first.clone(),
                    }),
                    None => {
                        seen.insert(address, at);
                    }
                }
            }
            if let (Some(address), Some(session)) = (address, session) {
                neighbors.push(Neighbor {
                    address,
                    passive: n.passive.unwrap_or(false),
                    session,
                });
            }
        }
        (self.errors.len() == before).then_some(Bgp {
            port,
            aggregates: aggregates.into_iter().map(|(_, p)| p).collect(),
            multipath,
            listen,
            neighbors,
        })
    }

    fn session(
        &mut self,
        base: &str,
        raw: RawSession<'_>,
        local_asn: Option<Asn>,
    ) -> Option<Session> {
        let before = self.errors.len();
        let peer_asn = self.asn(&format!("{base}.peer-asn"), raw.peer_asn);
        // RFC 8212: an external session without a policy said out loud
        // accepts nothing (FRR's ebgp-requires-policy); accepting all let
        // any node of a listen range announce ::/0 or an upstream's
        // prefixes.
        let import_default_deny =
            raw.import.is_none() && matches!((peer_asn, local_asn), (Some(p), Some(l)) if p != l);
        let import = raw
            .import
            .map(|list| self.prefix_list(&format!("{base}.import"), list));
        let export = self.prefix_list(&format!("{base}.export"), raw.export.unwrap_or(&[]));
        let max_prefixes = match raw.max_prefixes {
            None => None,
            Some(m) => {
                let n = NonZeroU32::new(*m.get_ref());
                if n.is_none() {
                    let at = self.at(format!("{base}.max-prefixes"), m.span());
                    self.push(ConfigError::MaxPrefixesZero { at });
                }
                n
            }
        };
        if let Some(t) = raw.max_prefixes_idle_time.filter(|t| *t.get_ref() == 0) {
            let at = self.at(format!("{base}.max-prefixes-idle-time"), t.span());
            self.push(ConfigError::MaxPrefixesIdleZero { at });
        }
        let hold_time = match raw.hold_time {
            None => HoldTime::new(DEFAULT_HOLD_TIME),
            Some(h) => {
                let t = HoldTime::new(*h.get_ref());
                if t.is_none() {
                    let at = self.at(format!("{base}.hold-time"), h.span());
                    self.push(ConfigError::HoldTime {
                        at,
                        seconds: *h.get_ref(),
                    });
                }
                t
            }
        };
        let connect_retry = match raw.connect_retry {
            None => DEFAULT_CONNECT_RETRY,
            Some(c) => {
                if *c.get_ref() == 0 {
                    let at = self.at(format!("{base}.connect-retry"), c.span());
                    self.push(ConfigError::ConnectRetryZero { at });
                }
                *c.get_ref()
            }
        };
        let password = raw.password.and_then(|p| {
            let len = p.get_ref().len();
            if (1..=MAX_PASSWORD_LEN).contains(&len) {
                Some(Password(p.get_ref().clone()))
            } else {
                let at = self.at(format!("{base}.password"), p.span());
                self.push(ConfigError::PasswordLength { at, len });
                None
            }
        });
        let ttl_security = raw.ttl_security.and_then(|t| {
            let hops = *t.get_ref();
            match u8::try_from(hops) {
                Ok(h) if (1..=254).contains(&h) => Some(h),
                _ => {
                    let at = self.at(format!("{base}.ttl-security"), t.span());
                    self.push(ConfigError::TtlSecurity { at, hops });
                    None
                }
            }
        });
        if self.errors.len() != before {
            return None;
        }
        Some(Session {
            peer_asn: peer_asn?,
            import: match import {
                Some(list) => Some(list?),
                None if import_default_deny => Some(PrefixList::new(Vec::new())),
                None => None,
            },
            import_default_deny,
            export: export?,
            max_prefixes,
            max_prefixes_idle_time: Duration::from_secs(
                raw.max_prefixes_idle_time
                    .map_or(DEFAULT_MAX_PREFIXES_IDLE_TIME, |t| *t.get_ref()),
            ),
            graceful_restart: raw.graceful_restart.unwrap_or(true),
            hold_time: hold_time?,
            connect_retry: Duration::from_secs(u64::from(connect_retry)),
            password,
            ttl_security,
        })
    }

    fn prefix_list(&mut self, path: &str, raw: &[Spanned<String>]) -> Option<PrefixList> {
        let before = self.errors.len();
        let mut rules = Vec::new();
        for (i, entry) in raw.iter().enumerate() {
            match entry.get_ref().parse::<PrefixRule>() {
                Ok(rule) => rules.push(rule),
                Err(error) => {
                    let at = self.at(format!("{path}[{i}]"), entry.span());
                    self.push(ConfigError::PrefixRule { at, error });
                }
            }
        }
        (self.errors.len() == before).then(|| PrefixList::new(rules))
    }

    /// [`Self::prefix`], and one that may be routed: not inside the
    /// multicast, link-local, loopback or unspecified ranges.
    fn routable(&mut self, at: Location, value: &str) -> Option<Prefix> {
        let prefix = self.prefix(at.clone(), value)?;
        let never: [(&str, &'static str); 5] = [
            ("ff00::/8", "multicast (ff00::/8)"),
            // IPv4 (a BGP peer would connect over IPv4, which the MD5
            // keys and GTSM of IPv6 ranges do not cover).
            (
                "::ffff:0:0/96",
                "IPv4-mapped (::ffff:0:0/96; flatedge routes IPv6 only)",
            ),
            ("fe80::/10", "link-local (fe80::/10)"),
            ("::1/128", "the loopback address"),
            ("::/128", "the unspecified address"),
        ];
        for (range, why) in never {
            let range: Prefix = range.parse().expect("a valid prefix");
            if range.covers(&prefix) {
                self.push(ConfigError::NotRoutable { at, prefix, why });
                return None;
            }
        }
        Some(prefix)
    }

    /// An IPv6 prefix without host bits.
    fn prefix(&mut self, at: Location, value: &str) -> Option<Prefix> {
        let bad = |why| ConfigError::NotIpv6Prefix {
            at: at.clone(),
            value: value.to_string(),
            why,
        };
        let Some((addr, len)) = value.split_once('/') else {
            self.push(bad("expected ADDRESS/LENGTH, e.g. 2001:db8::/64"));
            return None;
        };
        let Ok(addr) = addr.parse::<Ipv6Addr>() else {
            let why = if addr.parse::<Ipv4Addr>().is_ok() {
                "that is IPv4; flatedge routes IPv6 only"
            } else {
                "the address part is not an IPv6 address"
            };
            self.push(bad(why));
            return None;
        };
        let Some(len) = len.parse::<u8>().ok().filter(|l| *l <= 128) else {
            self.push(bad("the length must be 0 to 128"));
            return None;
        };
        let Ok(prefix) = Prefix::new(addr, len) else {
            self.push(bad("the length must be 0 to 128"));
            return None;
        };
        if prefix.addr() != addr {
            self.push(ConfigError::HostBits {
                at,
                value: value.to_string(),
                canonical: prefix,
            });
            return None;
        }
        Some(prefix)
    }

    /// An IPv6 address usable as a BGP peer or a next hop: global
    /// unicast, not IPv4.
    fn unicast(&mut self, at: Location, value: &str, link_local: &'static str) -> Option<Ipv6Addr> {
        let address = match value.parse::<IpAddr>() {
            Ok(IpAddr::V6(a)) => a,
            Ok(IpAddr::V4(_)) => {
                self.push(ConfigError::Ipv4Address {
                    at,
                    value: value.to_string(),
                });
                return None;
            }
            Err(_) => {
                self.push(ConfigError::NotIpv6Address {
                    at,
                    value: value.to_string(),
                });
                return None;
            }
        };
        let why = if address.is_unspecified() {
            "it is the unspecified address"
        } else if address.is_loopback() {
            "it is the loopback address"
        } else if address.is_multicast() {
            "it is a multicast address"
        } else if address.to_ipv4_mapped().is_some() {
            "it is an IPv4-mapped address; flatedge routes IPv6 only"
        } else if address.segments()[0] & 0xffc0 == 0xfe80 {
            link_local
        } else {
            return Some(address);
        };
        self.push(ConfigError::UnusableAddress { at, address, why });
        None
    }

    fn peer_address(&mut self, at: Location, value: &str) -> Option<Ipv6Addr> {
        self.unicast(
            at,
            value,
            "it is link-local; peer with the node's global address",
        )
    }

    fn routes(&mut self, raw: &[Spanned<RawRoute>]) -> Option<Vec<StaticRoute>> {
        let before = self.errors.len();
        let mut seen: HashMap<Prefix, Location> = HashMap::new();
        let mut out = Vec::new();
        for (i, r) in raw.iter().enumerate() {
            let r = r.get_ref();
            let at = self.at(format!("route[{i}].prefix"), r.prefix.span());
            let prefix = self.routable(at.clone(), r.prefix.get_ref());
            if let Some(prefix) = prefix {
                if let Some((first, _)) = self.aggregates.iter().find(|(_, p)| *p == prefix) {
                    let first = first.clone();
                    self.push(ConfigError::DuplicateAggregate {
                        at: at.clone(),
                        prefix,
                        first,
                    });
                }
                match seen.get(&prefix) {
                    Some(first) => self.push(ConfigError::DuplicateRoute {
                        at,
                        prefix,
                        first: first.clone(),
                    }),
                    None => {
                        seen.insert(prefix, at);
                    }
                }
            }
            let via_at = self.at(format!("route[{i}].via"), r.via.span());
            let list = r.via.get_ref();
            if list.is_empty() {
                self.push(ConfigError::NoNextHops { at: via_at.clone() });
            }
            if list.len() > fib::MAX_MEMBERS {
                self.push(ConfigError::TooManyNextHops {
                    at: via_at,
                    count: list.len(),
                    max: fib::MAX_MEMBERS,
                });
            }
            let mut via = Vec::new();
            for (j, v) in list.iter().enumerate() {
                let at = self.at(format!("route[{i}].via[{j}]"), v.span());
                let Some(address) = self.unicast(
                    at.clone(),
                    v.get_ref(),
                    "a link-local next hop needs an interface, which static routes do not \
                     take; use the neighbour's global address",
                ) else {
                    continue;
                };
                if via.contains(&address) {
                    self.push(ConfigError::DuplicateNextHop { at, address });
                }
                via.push(address);
            }
            if let Some(prefix) = prefix {
                out.push(StaticRoute { prefix, via });
            }
        }
        (self.errors.len() == before).then_some(out)
    }

    fn icmp(&mut self, raw: &RawIcmp) -> Option<Icmp> {
        let rate = raw.rate.unwrap_or(DEFAULT_ICMP_RATE);
        let burst = match &raw.burst {
            None => DEFAULT_ICMP_BURST,
            Some(b) => {
                if *b.get_ref() == 0 && rate > 0 {
                    let at = self.at("icmp.burst", b.span());
                    self.push(ConfigError::IcmpBurstZero { at });
                    return None;
                }
                *b.get_ref()
            }
        };
        Some(Icmp { rate, burst })
    }

    fn metrics(&mut self, raw: &RawMetrics) -> Option<Metrics> {
        let Some(listen) = &raw.listen else {
            return Some(Metrics::default());
        };
        match listen.get_ref().parse::<SocketAddr>() {
            Ok(addr) if addr.port() == 0 => {
                let at = self.at("metrics.listen", listen.span());
                self.push(ConfigError::PortZero { at });
                None
            }
            Ok(addr) => Some(Metrics { listen: Some(addr) }),
            Err(_) => {
                let at = self.at("metrics.listen", listen.span());
                self.push(ConfigError::SocketAddr {
                    at,
                    value: listen.get_ref().clone(),
                });
                None
            }
        }
    }
}

/// Why Linux would refuse `name` as an interface name (`dev_valid_name`).
fn interface_name_problem(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        Some("it is empty")
    } else if name.len() > MAX_INTERFACE_NAME_LEN {
        Some("Linux interface names are at most 15 bytes")
    } else if name == "." || name == ".." {
        Some("\".\" and \"..\" are not interface names")
    } else if name
        .chars()
        .any(|c| c == '/' || c == ':' || c.is_whitespace())
    {
        Some("it contains '/', ':' or whitespace")
    } else if name.chars().any(char::is_control) {
        Some("it contains a control character")
    } else {
        None
    }
}

#[cfg(test)]
mod tests;
