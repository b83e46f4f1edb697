//! The I/O tasks: listener, connect attempts, per-connection reader and
//! writer, timer sleeps. They only move bytes and report to the control
//! task; no protocol state lives here.

use std::io;
use std::net::{Ipv6Addr, SocketAddr, SocketAddrV6};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::sockopt;
use super::{PeerSettings, SpeakerConfig};
use crate::rib::PeerId;
use crate::wire::{self, Context, Header};

/// Identifies one TCP connection for the control task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) struct ConnId(pub(super) u64);

/// What the I/O tasks report.
#[derive(Debug)]
pub(super) enum Internal {
    /// The listener accepted a connection.
    Accepted(TcpStream, SocketAddr),
    /// A connect attempt ended.
    Connected {
        peer: PeerId,
        attempt: u64,
        result: io::Result<TcpStream>,
    },
    /// Whole messages (one or more) read from a connection.
    Data { conn: ConnId, bytes: Bytes },
    /// A header that fails RFC 4271 section 6.1; the reader stopped.
    FrameError { conn: ConnId, error: wire::Error },
    /// The peer closed the connection, or it failed.
    Closed { conn: ConnId },
    /// A timer's sleep ended.
    Timer {
        key: super::control::TimerKey,
        gen: u64,
    },
}

/// What the control task tells a writer.
#[derive(Debug)]
pub(super) enum WriteCmd {
    /// Send these bytes.
    Data(Vec<u8>),
    /// Send what is queued, then close.
    Close,
}

/// Framing only checks the marker, the type and the length against the
/// largest message anyone may send; the control task parses each message
/// with the session's own context, which checks the length again.
const FRAMING: Context = Context {
    four_octet_as: true,
    extended_messages: true,
    external: false,
};

/// Longest we wait for one write before giving the connection up (a peer
/// that reads nothing for this long is past any hold time).
const WRITE_TIMEOUT: Duration = Duration::from_secs(240);

/// The listening socket, with the MD5 keys and GTSM of the peers of
/// `config` ([`configure_listener`]).
pub(super) fn listener(config: &SpeakerConfig) -> io::Result<TcpListener> {
    let socket = match config.listen {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    socket.bind(config.listen)?;
    configure_listener(&socket, None, config)?;
    socket.listen(1024)
}

/// Every (address, prefix length) with an MD5 key in `config`, and the key.
fn md5_keys(config: &SpeakerConfig) -> Vec<((Ipv6Addr, u8), Vec<u8>)> {
    let neighbors = config
        .neighbors
        .iter()
        .filter_map(|n| Some(((n.address, 128), n.settings.password.clone()?)));
    let ranges = config.ranges.iter().filter_map(|r| {
        Some((
            (r.range.network(), r.range.prefix_len()),
            r.settings.password.clone()?,
        ))
    });
    neighbors.chain(ranges).collect()
}

/// The listener's GTSM: `None` when no peer uses it; else `Some(hops)`
/// with the largest hop count of any peer when every peer uses it (the
/// listener enforces it), `Some(None)` when some do and some do not.
fn listener_gtsm(config: &SpeakerConfig) -> Option<Option<u8>> {
    let hops = config
        .neighbors
        .iter()
        .map(|n| n.settings.ttl_security)
        .chain(config.ranges.iter().map(|r| r.settings.ttl_security));
    let mut any = false;
    let mut all: Option<u8> = Some(1);
    for t in hops {
        any |= t.is_some();
        all = match (all, t) {
            (Some(a), Some(b)) => Some(a.max(b)),
            _ => None,
        };
    }
    any.then_some(all)
}

/// Gives the listening socket the MD5 keys of every neighbour and range
/// of `new` that has one (removing the keys of `old` that `new` lacks)
/// and hop limit 255 if any peer uses GTSM (so that our SYN-ACKs pass its
/// check). When every neighbour and range uses GTSM, the listener itself
/// enforces it (`IPV6_MINHOPCOUNT` for the most distant one): a SYN from
/// too far never completes a handshake, where the option set on the
/// accepted socket alone would let the peer's OPEN in before it applies.
/// With peers that do not use GTSM next to ones that do, only the
/// accepted sockets check.
pub(super) fn configure_listener(
    socket: &impl AsRawFd,
    old: Option<&SpeakerConfig>,
    new: &SpeakerConfig,
) -> io::Result<()> {
    sync_listener(socket, old, new, false)
}

/// Takes the listener from `old`'s keys and GTSM to `new`'s. The first
/// failure ends it, unless `keep_going`: then every step is tried and
/// failures are ignored.
fn sync_listener(
    socket: &impl AsRawFd,
    old: Option<&SpeakerConfig>,
    new: &SpeakerConfig,
    keep_going: bool,
) -> io::Result<()> {
    let step = |r: io::Result<()>| if keep_going { Ok(()) } else { r };
    let keys = md5_keys(new);
    for (at, _) in old.map(md5_keys).unwrap_or_default() {
        if !keys.iter().any(|(a, _)| *a == at) {
            step(sockopt::set_md5_key(socket, at.0, at.1, &[]))?;
        }
    }
    for ((addr, len), key) in &keys {
        step(sockopt::set_md5_key(socket, *addr, *len, key))?;
    }
    let gtsm = listener_gtsm(new);
    if old.map(listener_gtsm) == Some(gtsm) {
        return Ok(());
    }
    step(apply_gtsm(socket, gtsm))
}

fn apply_gtsm(socket: &impl AsRawFd, gtsm: Option<Option<u8>>) -> io::Result<()> {
    match gtsm {
        Some(Some(hops)) => sockopt::set_gtsm(socket, hops),
        Some(None) => {
            sockopt::set_min_hops(socket, 0)?;
            sockopt::set_unicast_hops(socket, 255)
        }
        None => {
            sockopt::set_min_hops(socket, 0)?;
            // -1: the route's default hop limit again.
            sockopt::set_unicast_hops_default(socket)
        }
    }
}

/// After `configure_listener(socket, Some(old), failed)` failed part way:
/// puts the listener back as `old` had it, every step tried whatever the
/// others do (a key `failed` never got cannot be removed, which is fine;
/// GTSM was touched only if the two differ).
pub(super) fn restore_listener(socket: &impl AsRawFd, failed: &SpeakerConfig, old: &SpeakerConfig) {
    let _ = sync_listener(socket, Some(failed), old, true);
}

/// Accepts forever, handing each connection to the control task.
pub(super) async fn accept_loop(listener: TcpListener, tx: mpsc::Sender<Internal>) {
    loop {
        match listener.accept().await {
            Ok((stream, remote)) => {
                if tx.send(Internal::Accepted(stream, remote)).await.is_err() {
                    return;
                }
            }
            // Out of descriptors or similar: back off instead of spinning.
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// One outgoing connection attempt, with the peer's MD5 key and GTSM,
/// bounded by its connect-retry time.
pub(super) async fn connect(
    addr: SocketAddrV6,
    settings: Arc<PeerSettings>,
) -> io::Result<TcpStream> {
    let socket = TcpSocket::new_v6()?;
    if let Some(key) = &settings.password {
        sockopt::set_md5_key(&socket, *addr.ip(), 128, key)?;
    }
    if let Some(hops) = settings.ttl_security {
        sockopt::set_gtsm(&socket, hops)?;
    }
    let limit = settings.connect_retry.max(Duration::from_secs(1));
    match tokio::time::timeout(limit, socket.connect(addr.into())).await {
        Ok(r) => r,
        Err(_) => Err(io::Error::new(io::ErrorKind::TimedOut, "connect timed out")),
    }
}

/// Reads, and hands whole messages to the control task, several per
/// read when they are there.
pub(super) async fn reader(conn: ConnId, mut rd: OwnedReadHalf, tx: mpsc::Sender<Internal>) {
    let mut buf = BytesMut::with_capacity(64 * 1024);
    loop {
        let mut end = 0;
        let mut error = None;
        loop {
            match Header::frame_len(&buf[end..], &FRAMING) {
                Ok(Some(len)) => end += len,
                Ok(None) => break,
                Err(e) => {
                    error = Some(e);
                    break;
                }
            }
        }
        if end > 0 {
            let bytes = buf.split_to(end).freeze();
            if tx.send(Internal::Data { conn, bytes }).await.is_err() {
                return;
            }
        }
        if let Some(error) = error {
            let _ = tx.send(Internal::FrameError { conn, error }).await;
            return;
        }
        if buf.capacity() - buf.len() < 4096 {
            buf.reserve(64 * 1024);
        }
        match rd.read_buf(&mut buf).await {
            Ok(0) | Err(_) => {
                let _ = tx.send(Internal::Closed { conn }).await;
                return;
            }
            Ok(_) => {}
        }
    }
}

/// How long a closing connection waits for the peer's FIN before it
/// drops the socket (dropping it with unread data sends an RST, which can
/// overtake the NOTIFICATION we just sent).
const LINGER: Duration = Duration::from_secs(2);

/// Writes what the control task queues, coalescing what is already
/// queued into one write. On `Close` (or when the control task drops the
/// channel) it flushes what it holds within [`LINGER`] (a `Close` that
/// comes during a write blocked on a peer that reads nothing shortens
/// that write's deadline to the same, instead of [`WRITE_TIMEOUT`]), sends
/// a FIN, waits up to [`LINGER`] for the reader to see the peer's FIN,
/// and stops the reader, which closes the socket. A failed write is
/// reported as `Closed`. `queued` counts the bytes handed over and not
/// written yet (the control task bounds it).
pub(super) async fn writer(
    conn: ConnId,
    mut wr: OwnedWriteHalf,
    mut rx: mpsc::UnboundedReceiver<WriteCmd>,
    queued: Arc<AtomicUsize>,
    mut reader: JoinHandle<()>,
    tx: mpsc::Sender<Internal>,
) {
    let mut buf: Vec<u8> = Vec::new();
    let mut close = false;
    loop {
        if buf.is_empty() {
            if close {
                break;
            }
            match rx.recv().await {
                Some(WriteCmd::Data(b)) => buf.extend_from_slice(&b),
                Some(WriteCmd::Close) | None => close = true,
            }
        }
        while !close && buf.len() < 256 * 1024 {
            match rx.try_recv() {
                Ok(WriteCmd::Data(b)) => buf.extend_from_slice(&b),
                Ok(WriteCmd::Close) => close = true,
                Err(mpsc::error::TryRecvError::Empty) => break,
                Err(mpsc::error::TryRecvError::Disconnected) => close = true,
            }
        }
        if buf.is_empty() {
            continue;
        }
        let now = tokio::time::Instant::now();
        let mut deadline = now + if close { LINGER } else { WRITE_TIMEOUT };
        // What the control task queues while this write is blocked.
        let mut more = Vec::new();
        let written = {
            let write = wr.write_all(&buf);
            tokio::pin!(write);
            loop {
                tokio::select! {
                    r = &mut write => break r.is_ok(),
                    () = tokio::time::sleep_until(deadline) => break false,
                    cmd = rx.recv(), if !close => match cmd {
                        Some(WriteCmd::Data(b)) => more.extend_from_slice(&b),
                        Some(WriteCmd::Close) | None => {
                            close = true;
                            deadline = deadline.min(tokio::time::Instant::now() + LINGER);
                        }
                    },
                }
            }
        };
        if !written {
            let _ = tx.send(Internal::Closed { conn }).await;
            break;
        }
        queued.fetch_sub(buf.len(), Ordering::Relaxed);
        buf = more;
    }
    let _ = tokio::time::timeout(Duration::from_secs(1), wr.shutdown()).await;
    if tokio::time::timeout(LINGER, &mut reader).await.is_err() {
        reader.abort();
    }
}
