//! The AF_XDP port layer: the XDP program that splits each port's traffic
//! between the kernel and flatedge ([`bpf`]), and the AF_XDP sockets with
//! their UMEM ([`port`]).
//!
//! Typical setup, per worker: one [`FramePool`]; per (interface, queue) a
//! [`Port`] opened on it; the [`XdpProgram`] attached to each interface, the
//! interface mapped to its port slot, each port's fd put in the XSKMAP at
//! (slot, queue), and the router's own addresses in the own-address map.

pub mod bpf;
pub mod offload;
pub mod port;
mod prefetch;
mod ring;

pub use bpf::{VlanOffload, XdpProgram, MAX_PORTS, MAX_QUEUES, PROG_NAME};
pub use port::{wait_readable, Frame, FramePool, PoolConfig, Port, PortStats};

/// Bytes of each UMEM frame the daemon uses.
pub const FRAME_SIZE: u32 = 2048;
/// The largest Ethernet frame (FCS excluded) that fits a UMEM frame: the
/// kernel keeps 256 bytes of headroom (`XDP_PACKET_HEADROOM`) before the
/// packet. A longer frame cannot enter the AF_XDP socket: the kernel
/// drops it at the redirect.
pub const MAX_FRAME: u32 = FRAME_SIZE - 256;
/// The largest IPv6 MTU flatedge carries: [`MAX_FRAME`] less the 14-byte
/// Ethernet header.
pub const MAX_MTU: u32 = MAX_FRAME - 14;

use std::ffi::CString;
use std::io;

/// What went wrong in the port layer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum XdpError {
    /// A libbpf call or BPF syscall failed.
    #[error("cannot {what}: {source}")]
    Bpf {
        /// What we were doing.
        what: &'static str,
        /// The kernel's answer.
        source: io::Error,
    },
    /// An xsk-rs (libxdp) call failed.
    #[error("cannot {what}: {detail}")]
    Xsk {
        /// What we were doing.
        what: &'static str,
        /// xsk-rs's description.
        detail: String,
    },
    /// Another tool's XDP program is attached to the interface, natively
    /// or in generic mode (the kernel runs native and generic XDP one at
    /// a time, so a generic-mode program rules out ours as well).
    #[error(
        "interface {ifname} has a foreign XDP program attached in {mode} mode ({name:?}); \
         not replacing it (detach it with: ip link set dev {ifname} {cmd} off)",
        cmd = match *mode { "generic" => "xdpgeneric", "offload" => "xdpoffload", _ => "xdpdrv" }
    )]
    Foreign {
        /// The interface's name.
        ifname: String,
        /// The attached program's name.
        name: String,
        /// Its attach mode: `native` or `generic`.
        mode: &'static str,
    },
    /// Another flatedge (a running daemon, or a second one started by
    /// hand) holds the interface: its program stays attached.
    #[error(
        "interface {ifindex} is in use by another flatedge (it holds {}); not replacing its XDP program",
        path.display()
    )]
    Busy {
        /// The interface.
        ifindex: u32,
        /// The lock file the other process holds.
        path: std::path::PathBuf,
    },
    /// A slot or queue beyond what the maps hold.
    #[error("{what} {value} out of range (max {max})")]
    Range {
        /// Which number.
        what: &'static str,
        /// Its value.
        value: u32,
        /// The limit (exclusive).
        max: u32,
    },
    /// A bad size or name.
    #[error("invalid configuration: {0}")]
    Config(&'static str),
    /// No such interface.
    #[error("no interface named {0:?}")]
    NoInterface(String),
}

/// The ifindex of an interface name.
pub fn ifindex(name: &str) -> Result<u32, XdpError> {
    let c = CString::new(name).map_err(|_| XdpError::NoInterface(name.to_owned()))?;
    bpf::if_nametoindex(&c).ok_or_else(|| XdpError::NoInterface(name.to_owned()))
}
