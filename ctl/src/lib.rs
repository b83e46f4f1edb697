//! The ctl protocol: the request and response documents exchanged over
//! flatedge's UNIX socket (`[ctl] socket`), the daemon's only serialised
//! boundary; the exchange itself ([`request`] for clients, [`serve_one`]
//! for the daemon); the text tables of `flatedgectl` ([`human::render`]);
//! and, with the default feature `cli`, the `flatedgectl` command line
//! (`cli`).
//!
//! One exchange per connection: the client writes one JSON [`Request`]
//! document and shuts down its writing half; the daemon reads to the end
//! (or to the end of the document, for a client that keeps its half
//! open), writes one JSON [`Response`] document and closes the
//! connection.
//! `flatedgectl --json` prints the response document as received.
//!
//! # `flatedgectl`
//!
//! `flatedgectl [--socket PATH] [--json] [--timeout SECONDS] <command>`;
//! the socket defaults to `$FLATEDGE_CTL_SOCKET`, else
//! `/run/flatedge/ctl.sock`. Unique prefixes of command words work
//! (`flatedgectl sh bgp sum`).
//!
//! | command | request | prints |
//! |---|---|---|
//! | `show bgp summary` | [`Request::ShowBgpSummary`] | one line per peer: AS, state, up/down time, prefixes received and accepted |
//! | `show route [PREFIX]` | [`Request::ShowRoute`] | every path per prefix: status, source, peer, next hop, AS path, why it lost |
//! | `show fib ADDRESS` | [`Request::ShowFib`] | the matching prefix, then one line per next hop (address, interface, MAC, state) |
//! | `show fib summary` | [`Request::ShowFibSummary`] | routes, next-hop groups, memory |
//! | `show neighbors` | [`Request::ShowNeighbors`] | the next hops the dataplane resolves |
//! | `show interfaces` | [`Request::ShowInterfaces`] | per port: carrier, MTU, RX/TX packets and bytes, drops |
//! | `show drops` | [`Request::ShowDrops`] | the non-zero drop reasons (`--json`: all) |
//! | `show runtime` | [`Request::ShowRuntime`] | per stage: calls, packets, ns/packet; then packets, batches, busy and syscall ns/packet, receive coalescing |
//! | `neighbor ADDR reset\|disable\|enable` | [`Request::Neighbor`] | the daemon's confirmation |
//! | `reload` | [`Request::Reload`] | the daemon's confirmation |
//!
//! Exit status: 0 on an answer, 1 when the daemon answers with an error
//! (`flatedgectl: <message>` on standard error; with `--json` the error
//! document is printed too) or cannot be reached, 2 for a bad command
//! line.
//!
//! Both are JSON objects tagged by one field, so a document says what it
//! is and the rest of its fields are the ones DESIGN.md section 6 fixes:
//!
//! ```json
//! {"command": "show_fib", "address": "2001:db8:100::1"}
//! {"type": "fib", "address": "2001:db8:100::1", "prefix": "2001:db8:100::/56",
//!  "nexthops": [{"address": "2001:db8:1::11", "interface": "k8s0",
//!                "mac": "02:00:00:00:00:11", "state": "up"}]}
//! {"type": "error", "code": "unknown_neighbor", "message": "..."}
//! ```
//!
//! Addresses and prefixes are strings in their usual text form, MACs are
//! lower-case colon-separated hex, enums are snake_case strings, counters
//! are integers and durations carry their unit in the name (`uptime_s`).
//! An absent value is `null`; the only fields ever omitted are the few
//! added after the first release (`show interfaces`' `tx_drops` and
//! `tx_link_down`, `show runtime`'s `batches` and `coalescing`), which an
//! older daemon does not send.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use ipnet::Ipv6Net;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

#[cfg(feature = "cli")]
pub mod cli;
pub mod human;
mod socket;

pub use socket::{
    answer_unread, exchange, request, serve_one, write_within, ClientError, Reply, TimedWrite,
    MAX_REQUEST_BYTES, SERVE_TIMEOUT,
};

/// A command, as `flatedgectl` sends it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "snake_case", deny_unknown_fields)]
#[non_exhaustive]
pub enum Request {
    /// `show bgp summary`: every BGP peer with its state and counters.
    /// Answered by [`Response::BgpSummary`].
    ShowBgpSummary,
    /// `show route [PREFIX]`: the RIB's paths, best and ECMP set, and why
    /// the others lost; all prefixes without one, else the exact prefix.
    /// Answered by [`Response::Routes`].
    ShowRoute {
        /// Only this prefix.
        prefix: Option<Ipv6Net>,
    },
    /// `show fib ADDRESS`: the FIB entry a packet to `address` would use.
    /// Answered by [`Response::Fib`].
    ShowFib {
        /// The destination to look up.
        address: Ipv6Addr,
    },
    /// `show fib summary`: FIB size. Answered by [`Response::FibSummary`].
    ShowFibSummary,
    /// `show neighbors`: the next hops the dataplane resolves (the
    /// neighbour table, NDP side), not the BGP peers. Answered by
    /// [`Response::Neighbors`].
    ShowNeighbors,
    /// `show interfaces`: per-port counters. Answered by
    /// [`Response::Interfaces`].
    ShowInterfaces,
    /// `show drops`: a counter per drop reason. Answered by
    /// [`Response::Drops`].
    ShowDrops,
    /// `show runtime`: per dataplane stage, calls, packets and cost.
    /// Answered by [`Response::Runtime`].
    ShowRuntime,
    /// `neighbor ADDR reset|disable|enable`: act on a BGP peer. Answered
    /// by [`Response::Done`].
    Neighbor {
        /// The peer's address.
        address: Ipv6Addr,
        /// What to do.
        action: NeighborAction,
    },
    /// `reload`: re-read the config file and apply the differences.
    /// Answered by [`Response::Done`] or, when the new file is invalid, by
    /// an error with code [`ErrorCode::InvalidConfig`] (the running
    /// configuration stays).
    Reload,
}

impl Request {
    /// Parses a request document, refusing fields the command does not
    /// take. (serde's `deny_unknown_fields` does not reach the commands
    /// without arguments: `{"command":"show_drops","prefix":"::/0"}` would
    /// pass.)
    pub fn from_json(doc: &[u8]) -> Result<Request, String> {
        let value: serde_json::Value =
            serde_json::from_slice(doc).map_err(|e| format!("not a ctl request: {e}"))?;
        let req = Request::deserialize(&value).map_err(|e| format!("not a ctl request: {e}"))?;
        // Every field the request has, as it would be written: a field of
        // the document beyond those is unknown.
        let known = serde_json::to_value(&req).map_err(|e| e.to_string())?;
        if let (Some(doc), Some(known)) = (value.as_object(), known.as_object()) {
            if let Some(extra) = doc.keys().find(|k| !known.contains_key(*k)) {
                return Err(format!(
                    "not a ctl request: unknown field `{extra}` for command `{}`",
                    known.get("command").and_then(|c| c.as_str()).unwrap_or("?")
                ));
            }
        }
        Ok(req)
    }
}

/// What `neighbor ADDR ...` does to a BGP peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum NeighborAction {
    /// Close the session with a Cease/Administrative Reset NOTIFICATION
    /// and let it re-establish.
    Reset,
    /// Close the session (Cease/Administrative Shutdown) and refuse the
    /// peer until `enable`.
    Disable,
    /// Accept (and, for an active neighbour, dial) the peer again.
    Enable,
}

/// The daemon's answer: exactly one per request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Response {
    /// For [`Request::ShowBgpSummary`].
    BgpSummary(BgpSummary),
    /// For [`Request::ShowRoute`].
    Routes(Routes),
    /// For [`Request::ShowFib`].
    Fib(FibEntry),
    /// For [`Request::ShowFibSummary`].
    FibSummary(FibSummary),
    /// For [`Request::ShowNeighbors`].
    Neighbors(Neighbors),
    /// For [`Request::ShowInterfaces`].
    Interfaces(Interfaces),
    /// For [`Request::ShowDrops`].
    Drops(Drops),
    /// For [`Request::ShowRuntime`].
    Runtime(Runtime),
    /// For commands that act ([`Request::Neighbor`], [`Request::Reload`]).
    Done(Done),
    /// The request failed: nothing was changed, unless the message says
    /// otherwise (an `internal` error of a command that acts, whose
    /// outcome the daemon could not confirm, or a reload applied in part).
    Error(ErrorResponse),
}

/// `show bgp summary`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BgpSummary {
    /// Our AS.
    pub asn: u32,
    /// Our BGP identifier.
    pub router_id: Ipv4Addr,
    /// Every peer: configured neighbours, and one per address that
    /// connected from a listen range.
    pub peers: Vec<BgpPeer>,
}

/// One BGP peer of [`BgpSummary`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BgpPeer {
    /// The peer's address.
    pub address: Ipv6Addr,
    /// The peer's AS.
    pub asn: u32,
    /// The session's state.
    pub state: PeerState,
    /// Seconds since the session last came up or went down (for
    /// `established`, its uptime; otherwise how long it has been down, or
    /// since the peer was added if it never came up), as FRR's Up/Down.
    pub uptime_s: u64,
    /// Prefixes the peer announced and has not withdrawn, accepted or not.
    pub prefixes_received: u64,
    /// Of those, prefixes that passed the import policy (stale ones
    /// included).
    pub prefixes_accepted: u64,
}

/// A BGP session's state: the RFC 4271 FSM states, and `disabled` for a
/// peer turned off with `neighbor ADDR disable`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum PeerState {
    /// Not running, or refusing the peer for a while (max-prefix idle).
    Idle,
    /// Dialling the peer.
    Connect,
    /// Waiting for the peer to connect.
    Active,
    /// OPEN sent.
    OpenSent,
    /// OPENs exchanged, waiting for a KEEPALIVE.
    OpenConfirm,
    /// Up.
    Established,
    /// Administratively disabled.
    Disabled,
}

/// `show route [PREFIX]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Routes {
    /// Matching prefixes in prefix order; empty when none matches.
    pub routes: Vec<Route>,
    /// When the listing stopped early: the most BGP prefixes it lists
    /// (the RIB has more; `show route PREFIX` shows any one). `null` for a
    /// complete listing.
    #[serde(default)]
    pub truncated_at: Option<usize>,
}

/// One prefix of [`Routes`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Route {
    /// The prefix.
    pub prefix: Ipv6Net,
    /// Every path, in decision order: the best path first, then the other
    /// ECMP members, then the losers.
    pub paths: Vec<Path>,
}

/// One path of a [`Route`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Path {
    /// Where it comes from.
    pub source: RouteSource,
    /// The BGP peer that announced it; `null` for static and aggregate
    /// routes.
    pub peer: Option<Ipv6Addr>,
    /// The next hop; `null` for an aggregate (unreachable).
    pub next_hop: Option<Ipv6Addr>,
    /// AS_PATH, flattened (AS_SETs included in order); `[]` if not BGP.
    pub as_path: Vec<u32>,
    /// ORIGIN; `null` if not BGP.
    pub origin: Option<Origin>,
    /// LOCAL_PREF used by the decision; `null` if not BGP.
    pub local_pref: Option<u32>,
    /// MULTI_EXIT_DISC, if the path carries one.
    pub med: Option<u32>,
    /// Kept from a gracefully restarting peer.
    pub stale: bool,
    /// Best path, ECMP member, or neither.
    pub status: PathStatus,
    /// For `lost`: why, as a sentence ("longer AS path"); else `null`.
    pub reason: Option<String>,
}

/// Where a [`Path`] comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum RouteSource {
    /// Learned over BGP.
    Bgp,
    /// A `[[route]]` of the config.
    Static,
    /// A `bgp.aggregates` prefix.
    Aggregate,
    /// An interface's own subnet.
    Connected,
}

/// BGP ORIGIN (RFC 4271 section 5.1.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    /// IGP.
    Igp,
    /// EGP.
    Egp,
    /// INCOMPLETE.
    Incomplete,
}

/// A path's part in its prefix's forwarding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PathStatus {
    /// The best path (also in the ECMP set).
    Best,
    /// In the ECMP set with the best path.
    Multipath,
    /// Not used; [`Path::reason`] says why.
    Lost,
}

/// `show fib ADDRESS`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FibEntry {
    /// The address looked up.
    pub address: Ipv6Addr,
    /// The longest matching prefix; `null` when no route matches (such a
    /// packet gets Destination Unreachable).
    pub prefix: Option<Ipv6Net>,
    /// The prefix's next-hop group; `[]` when no route matches or the
    /// route is unreachable.
    pub nexthops: Vec<FibNextHop>,
}

/// One member of a FIB next-hop group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FibNextHop {
    /// The next hop's address.
    pub address: Ipv6Addr,
    /// The egress interface.
    pub interface: String,
    /// The destination MAC; `null` while unresolved.
    pub mac: Option<MacAddr>,
    /// Whether traffic is sent to it.
    pub state: NextHopState,
}

/// A next hop's liveness, as the dataplane sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum NextHopState {
    /// Resolved and answering: its ECMP buckets carry traffic.
    Up,
    /// Its link lost carrier or it stopped answering probes: its buckets
    /// moved to the other members.
    Down,
    /// No MAC address yet.
    Unresolved,
}

/// `show fib summary`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FibSummary {
    /// Prefixes in the FIB.
    pub routes: u64,
    /// Next-hop groups in use.
    pub groups: u64,
    /// Memory of the lookup structure and groups, bytes.
    pub memory_bytes: u64,
}

/// `show neighbors`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Neighbors {
    /// Every next hop the dataplane keeps resolved.
    pub neighbors: Vec<Neighbor>,
}

/// One entry of [`Neighbors`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Neighbor {
    /// The neighbour's address.
    pub address: Ipv6Addr,
    /// The interface it is reached through.
    pub interface: String,
    /// Its MAC; `null` while unresolved.
    pub mac: Option<MacAddr>,
    /// Liveness.
    pub state: NextHopState,
}

/// `show interfaces`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Interfaces {
    /// Every `[[interface]]`, in config order.
    pub interfaces: Vec<Interface>,
}

/// One port of [`Interfaces`]: the dataplane's counters, summed over its
/// queues and workers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Interface {
    /// The Linux name.
    pub name: String,
    /// Carrier is up.
    pub carrier: bool,
    /// Egress MTU enforced, bytes.
    pub mtu: u32,
    /// Frames received into the dataplane.
    pub rx_packets: u64,
    /// Bytes received into the dataplane.
    pub rx_bytes: u64,
    /// Frames sent.
    pub tx_packets: u64,
    /// Bytes sent.
    pub tx_bytes: u64,
    /// Frames received on this port and dropped (any reason, the
    /// kernel's at the AF_XDP socket included: rx ring full, no frame).
    pub drops: u64,
    /// Frames to be sent on this port and dropped: the worker's buffer of
    /// frames waiting for room in its tx ring was full (`show drops`'
    /// `tx_overflow`), the link was down (`egress_down`), or the
    /// interface was deleted with frames in its tx ring (absent from an
    /// older daemon).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tx_drops: Option<u64>,
    /// Transmit kicks the kernel refused because the link was down
    /// (`ENETDOWN`; the frames already in the tx ring wait, later ones
    /// are dropped, and kicks are held back 1 ms; absent from an older
    /// daemon).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tx_link_down: Option<u64>,
}

/// `show drops`: packets dropped, per named reason (the reasons are the
/// dataplane's, e.g. `no_route`, `hop_limit_exceeded`, and the ports':
/// `tx_overflow`, `interface_gone`, `rx_ring_full`, `rx_no_frame`,
/// `no_socket`); every
/// reason is present, zeros included.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Drops {
    /// Reason → packets.
    pub drops: BTreeMap<String, u64>,
}

/// `show runtime`: what the dataplane costs, summed over workers.
///
/// The per-packet figures are 0 while no packet has been handled (never
/// NaN: JSON has no NaN).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Runtime {
    /// Packets the workers handled.
    pub packets: u64,
    /// Worker loop time outside idle sleeps, per packet, nanoseconds:
    /// the stages, the ring work and the syscalls.
    pub busy_ns_per_packet: f64,
    /// Of that, time in the kicks to the kernel (`poll`, `sendto`,
    /// `recvfrom`), per packet, nanoseconds.
    pub syscall_ns_per_packet: f64,
    /// One entry per stage, in pipeline order.
    pub stages: Vec<StageRuntime>,
    /// Batches the workers received (VPP's vectors per call is
    /// `packets / batches`); absent from daemons older than the field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batches: Option<u64>,
    /// Receive coalescing; absent from daemons older than the field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub coalescing: Option<Coalescing>,
}

/// Receive coalescing as [`Runtime`] reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Coalescing {
    /// The longest a frame waits for a fuller batch, microseconds
    /// (`router.rx-usecs`); 0: off.
    pub rx_usecs: u32,
    /// The batch waited for (`router.rx-frames`); 1: off.
    pub rx_frames: u32,
    /// Batches whose frames were left waiting in the rx ring.
    pub waited_batches: u64,
}

/// One stage of [`Runtime`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StageRuntime {
    /// The stage (`ip6_input`, `ip6_lookup`, ...).
    pub name: String,
    /// Batches it processed.
    pub calls: u64,
    /// Packets it processed.
    pub packets: u64,
    /// Busy time per packet, nanoseconds.
    pub ns_per_packet: f64,
}

/// The answer to a command that acts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Done {
    /// What was done, for humans ("neighbor 2001:db8::1 reset").
    pub message: String,
}

/// A failed request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorResponse {
    /// What kind of failure, for scripts.
    pub code: ErrorCode,
    /// What went wrong, for humans.
    pub message: String,
}

/// Kinds of [`ErrorResponse`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorCode {
    /// The request document is not a valid [`Request`].
    BadRequest,
    /// This daemon does not serve the command (yet).
    Unsupported,
    /// `neighbor ADDR ...` names no known BGP peer.
    UnknownNeighbor,
    /// `reload` found problems in the config file; the running
    /// configuration is unchanged.
    InvalidConfig,
    /// The request does not apply in the current state (resetting a
    /// disabled BGP neighbour); nothing was changed.
    InvalidState,
    /// The daemon failed to carry out a valid request.
    Internal,
    /// Written by `flatedgectl --json` itself, never by the daemon: the
    /// daemon could not be reached, did not answer in time, or answered
    /// with something that is not a response (the message says which).
    Unavailable,
    /// The daemon is serving as many ctl clients as it takes: nothing
    /// was done; try again.
    Busy,
    /// A part of the daemon (its control thread, the BGP speaker) did not
    /// answer within its limit: a change asked for may still take effect
    /// (the message says what to check).
    Timeout,
    /// Written by `flatedgectl --json` itself, never by the daemon: the
    /// command line is wrong (the message is the usage error); nothing
    /// was sent.
    Usage,
}

impl Response {
    /// An error response.
    pub fn error(code: ErrorCode, message: impl Into<String>) -> Response {
        Response::Error(ErrorResponse {
            code,
            message: message.into(),
        })
    }
}

/// An Ethernet address, written `02:00:5e:10:00:01`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MacAddr(pub [u8; 6]);

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

/// A string that is not six colon-separated hex octets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MacAddrError(String);

impl fmt::Display for MacAddrError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:?} is not a MAC address (expected e.g. 02:00:5e:10:00:01)",
            self.0
        )
    }
}

impl std::error::Error for MacAddrError {}

impl FromStr for MacAddr {
    type Err = MacAddrError;

    fn from_str(s: &str) -> Result<MacAddr, MacAddrError> {
        let err = || MacAddrError(s.to_string());
        let mut out = [0u8; 6];
        let mut parts = s.split(':');
        for byte in &mut out {
            let part = parts.next().ok_or_else(err)?;
            if part.len() != 2 || !part.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(err());
            }
            *byte = u8::from_str_radix(part, 16).map_err(|_| err())?;
        }
        match parts.next() {
            None => Ok(MacAddr(out)),
            Some(_) => Err(err()),
        }
    }
}

impl Serialize for MacAddr {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for MacAddr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<MacAddr, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests;
