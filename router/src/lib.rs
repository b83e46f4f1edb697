//! flatedge, the IPv6 edge router daemon (`flatedge --config FILE`).
//!
//! The daemon is the composition root of the workspace: it reads its
//! [`config`], runs the AF_XDP dataplane over the [`fib`] crate's FIB,
//! and (in the daemon work) joins the [`bgp`] speaker's route changes to
//! that FIB, serving the `ctl` protocol on a UNIX socket.
//!
//! What exists so far:
//!
//! - [`config`]: the TOML configuration of DESIGN.md section 6, parsed
//!   into checked types ([`Config::from_file`], or `str::parse`), with
//!   every problem reported at its key and line.
//!
//! - [`xdp`]: the AF_XDP port layer: flatedge's XDP program and its
//!   loader, and AF_XDP ports over a shared UMEM (copy mode, need-wakeup).
//!
//! - [`dataplane`]: the packet stages (`ip6_input`, `ip6_lookup` with
//!   ECMP, `ip6_rewrite`, ICMPv6 errors) as pure functions over a batch,
//!   every drop a named, counted reason.
//!
//! - [`worker`]: the worker loop joining the ports and the stages, with
//!   the FIB and adjacency snapshots loaded once per batch.
//!
//! - [`neigh`]: the kernel's links and IPv6 neighbours over netlink,
//!   keeping next hops resolved (managed neighbour entries) and reporting
//!   carrier changes; the source of the adjacencies.
//!
//! - [`daemon`]: `flatedge --config FILE`: the control loop joining all
//!   of the above, the routes (connected, static, gleaned hosts), next-hop
//!   liveness into the FIB, and the ctl socket.
//!
//! BGP joins the daemon in a later step.

pub mod config;
pub mod cpu;
pub mod daemon;
pub mod dataplane;
pub mod neigh;
pub mod worker;
pub mod xdp;

pub use config::{Config, ConfigError, ConfigErrors, Location};
