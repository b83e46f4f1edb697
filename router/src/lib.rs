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
//! The workers, stages, neighbour table and the binary come with the rest
//! of the dataplane issue.

pub mod config;
pub mod dataplane;
pub mod worker;
pub mod xdp;

pub use config::{Config, ConfigError, ConfigErrors, Location};
