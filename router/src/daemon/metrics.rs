//! The Prometheus endpoint (`[metrics] listen`): `GET /metrics` answers
//! the text exposition format (version 0.0.4) with the dataplane's
//! counters, computed on the control thread like the ctl's answers.
//!
//! The accept thread reads every request head itself, non-blocking (at
//! most [`MAX_PENDING`] connections at once, the oldest dropped for a new
//! one), so a client that connects and sends nothing costs a descriptor,
//! not a thread: a scrape beside any number of them is still served. A
//! complete head is served on a thread of its own (at most
//! [`MAX_CLIENTS`] at once; more get 503), one request per connection
//! (`Connection: close`). The head is at most [`MAX_HEAD`] bytes (else
//! 431) and sent within [`CLIENT_TIMEOUT`]; `GET` or `HEAD` of anything
//! but `/metrics` gets 404, another method 405, a malformed request 400.
//! `HEAD /metrics` gets the headers alone; a query string is ignored.

use std::collections::VecDeque;
use std::io::Read;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::Ordering;
use std::sync::mpsc::{self, Sender};
use std::time::{Duration, Instant};

use std::fmt::Write as _;

use ctl::NextHopState;

use super::{io_err, log, ClientSlots, Daemon, DaemonError, Msg, StoppableThread};
use crate::dataplane::IcmpKind;

/// The running endpoint; stopped when dropped.
pub(super) struct Server {
    #[cfg_attr(not(test), allow(dead_code))]
    addr: SocketAddr,
    _thread: StoppableThread,
}

/// Scrapes served at once (each on its own thread).
const MAX_CLIENTS: usize = 8;
/// Connections whose request head is still coming in, read by the accept
/// thread; a new one beyond these drops the oldest.
const MAX_PENDING: usize = 64;
/// The longest request head (request line and headers) read, bytes.
const MAX_HEAD: usize = 8 * 1024;
/// How long a client may take to send its whole request head, and again
/// to read the whole answer.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long an error answer waits for the client to stop sending, so that
/// closing with its bytes unread does not reset the connection (and the
/// answer with it).
const LINGER: Duration = Duration::from_millis(500);
/// The most an error answer reads and discards while it waits.
const LINGER_BYTES: usize = 64 * 1024;

/// A connection whose request head is still coming in.
struct Pending {
    stream: TcpStream,
    peer: SocketAddr,
    head: Vec<u8>,
    deadline: Instant,
}

/// What a non-blocking read of a pending head found.
#[derive(Debug, PartialEq, Eq)]
enum HeadState {
    /// Not all there yet.
    Open,
    /// Ends with its empty line (or the client closed its side).
    Complete,
    /// Longer than [`MAX_HEAD`] without an end.
    TooLong,
    /// The connection failed.
    Failed,
}

impl Pending {
    /// Takes what the client has sent so far, without blocking.
    fn read_some(&mut self) -> HeadState {
        let mut chunk = [0u8; 1024];
        loop {
            if head_ends(&self.head) {
                return HeadState::Complete;
            }
            if self.head.len() > MAX_HEAD {
                return HeadState::TooLong;
            }
            match self.stream.read(&mut chunk) {
                // A client may close its side after the request line alone.
                Ok(0) => return HeadState::Complete,
                Ok(n) => self.head.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return HeadState::Open,
                Err(_) => return HeadState::Failed,
            }
        }
    }
}

fn head_ends(h: &[u8]) -> bool {
    h.windows(4).any(|w| w == b"\r\n\r\n") || h.windows(2).any(|w| w == b"\n\n")
}

impl Server {
    pub(super) fn start(addr: SocketAddr, tx: Sender<Msg>) -> Result<Server, DaemonError> {
        let listener =
            TcpListener::bind(addr).map_err(io_err(format!("bind the metrics endpoint {addr}")))?;
        listener
            .set_nonblocking(true)
            .map_err(io_err("metrics socket non-blocking"))?;
        let addr = listener
            .local_addr()
            .map_err(io_err("read the metrics endpoint's address"))?;
        let slots = ClientSlots::new(MAX_CLIENTS);
        let thread = StoppableThread::spawn("flatedge-metrics", move |stop| {
            let mut pending = VecDeque::new();
            let mut dropped = 0;
            while !stop.load(Ordering::Relaxed) {
                wait_readable(&listener, &pending);
                accept_all(&listener, &mut pending, &mut dropped);
                let now = Instant::now();
                pending.retain_mut(|p: &mut Pending| match p.read_some() {
                    HeadState::Open if now < p.deadline => true,
                    HeadState::Open => {
                        log!(
                            "metrics client {}: no whole request within {} s",
                            p.peer,
                            CLIENT_TIMEOUT.as_secs()
                        );
                        false
                    }
                    HeadState::Failed => false,
                    state => {
                        dispatch(p, state == HeadState::TooLong, &slots, &tx);
                        false
                    }
                });
            }
        })?;
        Ok(Server {
            addr,
            _thread: thread,
        })
    }
}

/// Blocks until the listener or a pending connection has something to
/// read, the next pending deadline passes, or 100 ms (to see the stop
/// flag).
fn wait_readable(listener: &TcpListener, pending: &VecDeque<Pending>) {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    use std::os::fd::AsFd;
    let now = Instant::now();
    let wait = pending
        .iter()
        .map(|p| p.deadline.saturating_duration_since(now))
        .fold(Duration::from_millis(100), Duration::min);
    let mut fds: Vec<PollFd<'_>> = std::iter::once(listener.as_fd())
        .chain(pending.iter().map(|p| p.stream.as_fd()))
        .map(|fd| PollFd::new(fd, PollFlags::POLLIN))
        .collect();
    // Rounded up, so that a deadline is past when the poll returns.
    let ms = u16::try_from(wait.as_millis() + 1).unwrap_or(u16::MAX);
    let _ = poll(&mut fds, PollTimeout::from(ms));
}

/// Accepts every waiting connection onto `pending`, dropping the oldest
/// pending one for each beyond [`MAX_PENDING`] (counted in `dropped`).
fn accept_all(listener: &TcpListener, pending: &mut VecDeque<Pending>, dropped: &mut u64) {
    loop {
        let (stream, peer) = match listener.accept() {
            Ok(c) => c,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
            Err(_) => {
                // Out of descriptors, say: the listener stays readable, so
                // the poll would return at once; try again a little later.
                std::thread::sleep(Duration::from_millis(20));
                return;
            }
        };
        if stream.set_nonblocking(true).is_err() {
            continue;
        }
        if pending.len() >= MAX_PENDING {
            if let Some(old) = pending.pop_front() {
                *dropped += 1;
                // At powers of two: a flood of connections logs a handful
                // of lines, not one each.
                if dropped.is_power_of_two() {
                    log!(
                        "metrics: {MAX_PENDING} connections without a whole request; the oldest dropped ({dropped} so far, the last from {})",
                        old.peer
                    );
                }
            }
        }
        pending.push_back(Pending {
            stream,
            peer,
            head: Vec::new(),
            deadline: Instant::now() + CLIENT_TIMEOUT,
        });
    }
}

/// Serves a whole request head (or refuses a too long one) on a thread of
/// its own; 503 when every slot is busy.
fn dispatch(p: &mut Pending, too_long: bool, slots: &ClientSlots, tx: &Sender<Msg>) {
    let Ok(stream) = p.stream.try_clone() else {
        return;
    };
    let head = std::mem::take(&mut p.head);
    let (peer, tx) = (p.peer, tx.clone());
    let served = slots.spawn("flatedge-metrics-client", move || {
        let r = if too_long {
            refuse(
                stream,
                "431 Request Header Fields Too Large",
                &[],
                "request head too long\n",
            )
        } else {
            serve(stream, &head, &tx)
        };
        if let Err(e) = r {
            log!("metrics client {peer}: {e}");
        }
    });
    if !served {
        // Never blocks: the socket's buffer is empty, and the client's
        // whole head has been read, so closing sends no reset.
        let _ = respond(
            &mut p.stream,
            "503 Service Unavailable",
            &[],
            "busy\n",
            false,
        );
    }
}

fn serve(mut stream: TcpStream, head: &[u8], tx: &Sender<Msg>) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    let line = String::from_utf8_lossy(head.split(|&b| b == b'\n').next().unwrap_or_default());
    let mut parts = line.split_whitespace();
    let (method, target) = (parts.next(), parts.next());
    // A query string (Prometheus may add one) does not change the answer.
    let path = target.map(|t| t.split('?').next().unwrap_or(t));
    let head_only = method == Some("HEAD");
    let method = if head_only { Some("GET") } else { method };
    let (status, body) = match (method, path) {
        (Some("GET"), Some("/metrics")) => {
            let (rtx, rrx) = mpsc::channel();
            match tx
                .send(Msg::Metrics(rtx))
                .ok()
                .and_then(|()| rrx.recv_timeout(Duration::from_secs(5)).ok())
            {
                Some(body) => ("200 OK", body),
                None => (
                    "503 Service Unavailable",
                    "flatedge is not answering\n".into(),
                ),
            }
        }
        (Some("GET"), Some(_)) => ("404 Not Found", "only /metrics is served\n".into()),
        // A POST's body, say, is still unread: refused with a drain.
        (Some(m), Some(_)) if is_token(m) => {
            let headers = ["Allow: GET, HEAD"];
            return refuse(
                stream,
                "405 Method Not Allowed",
                &headers,
                "only GET and HEAD\n",
            );
        }
        _ => return refuse(stream, "400 Bad Request", &[], "bad request\n"),
    };
    respond(&mut stream, status, &[], &body, head_only)
}

/// Whether `m` is an HTTP method token (RFC 9110 5.6.2's tchar).
fn is_token(m: &str) -> bool {
    !m.is_empty()
        && m.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Answers an error, then lets the client finish sending for a while
/// before closing: a close with the client's bytes unread would reset the
/// connection, and the client might never see the answer.
fn refuse(
    mut stream: TcpStream,
    status: &str,
    headers: &[&str],
    body: &str,
) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    respond(&mut stream, status, headers, body, false)?;
    stream.shutdown(Shutdown::Write)?;
    let deadline = Instant::now() + LINGER;
    let mut sink = [0u8; 4096];
    let mut left_bytes = LINGER_BYTES;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || left_bytes == 0 {
            return Ok(());
        }
        stream.set_read_timeout(Some(left))?;
        match stream.read(&mut sink) {
            Ok(0) => return Ok(()),
            Ok(n) => left_bytes = left_bytes.saturating_sub(n),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return Ok(()),
        }
    }
}

/// Writes the whole answer (without the body for HEAD) within
/// [`CLIENT_TIMEOUT`], with `headers` besides the usual ones.
fn respond(
    out: &mut TcpStream,
    status: &str,
    headers: &[&str],
    body: &str,
    head_only: bool,
) -> std::io::Result<()> {
    let mut answer = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for h in headers {
        answer.push_str(h);
        answer.push_str("\r\n");
    }
    answer.push_str("\r\n");
    if !head_only {
        answer.push_str(body);
    }
    ::ctl::write_within(out, answer.as_bytes(), Instant::now() + CLIENT_TIMEOUT)
}

/// One metric family: its HELP, TYPE and samples.
struct Family<'a> {
    out: &'a mut String,
    name: &'a str,
}

impl<'a> Family<'a> {
    fn new(out: &'a mut String, name: &'a str, kind: &str, help: &str) -> Self {
        let _ = writeln!(out, "# HELP flatedge_{name} {help}");
        let _ = writeln!(out, "# TYPE flatedge_{name} {kind}");
        Family { out, name }
    }

    /// A family of one sample without labels.
    fn single(out: &mut String, name: &str, kind: &str, help: &str, value: impl std::fmt::Display) {
        Family::new(out, name, kind, help).sample(&[], value);
    }

    fn sample(&mut self, labels: &[(&str, &str)], value: impl std::fmt::Display) {
        let name = self.name;
        let _ = write!(self.out, "flatedge_{name}");
        if !labels.is_empty() {
            let l: Vec<String> = labels
                .iter()
                .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
                .collect();
            let _ = write!(self.out, "{{{}}}", l.join(","));
        }
        let _ = writeln!(self.out, " {value}");
    }
}

/// Label value escaping of the text format.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

impl Daemon {
    /// The metrics document.
    pub(super) fn metrics(&self) -> String {
        let mut out = String::new();
        let ifs = self.interfaces().interfaces;
        type Field = fn(&ctl::Interface) -> u64;
        let per_if: [(&str, &str, Field); 7] = [
            (
                "interface_rx_packets_total",
                "Frames the dataplane received on the interface.",
                |i| i.rx_packets,
            ),
            (
                "interface_rx_bytes_total",
                "Bytes the dataplane received on the interface.",
                |i| i.rx_bytes,
            ),
            (
                "interface_tx_packets_total",
                "Frames the dataplane sent on the interface.",
                |i| i.tx_packets,
            ),
            (
                "interface_tx_bytes_total",
                "Bytes the dataplane sent on the interface.",
                |i| i.tx_bytes,
            ),
            (
                "interface_drops_total",
                "Frames received on the interface that the dataplane dropped.",
                |i| i.drops,
            ),
            (
                "interface_tx_drops_total",
                "Frames to be sent on the interface that were dropped: the worker's buffer of frames waiting for its tx ring was full, the link was down, or the interface was deleted with frames in its tx ring.",
                |i| i.tx_drops.unwrap_or(0),
            ),
            (
                "interface_tx_link_down_total",
                "Transmit kicks the kernel refused because the interface's link was down.",
                |i| i.tx_link_down.unwrap_or(0),
            ),
        ];
        for (name, help, f) in per_if {
            let mut fam = Family::new(&mut out, name, "counter", help);
            for i in &ifs {
                fam.sample(&[("interface", &i.name)], f(i));
            }
        }
        let mut fam = Family::new(
            &mut out,
            "interface_up",
            "gauge",
            "1 when the interface is up with carrier.",
        );
        for i in &ifs {
            fam.sample(&[("interface", &i.name)], u8::from(i.carrier));
        }

        let t = self.totals();
        let c = &t.counters.0;
        let mut fam = Family::new(
            &mut out,
            "drops_total",
            "counter",
            "Packets dropped by the dataplane, per reason (flatedgectl show drops).",
        );
        for (reason, n) in t.counters.drops() {
            fam.sample(&[("reason", reason)], n);
        }
        for (reason, n) in t.port_drops() {
            fam.sample(&[("reason", reason)], n);
        }
        Family::single(
            &mut out,
            "forwarded_packets_total",
            "counter",
            "Packets forwarded by the dataplane.",
            c.forwarded,
        );
        let mut fam = Family::new(
            &mut out,
            "icmp_errors_sent_total",
            "counter",
            "ICMPv6 errors sent by the dataplane, per type.",
        );
        for (k, n) in c.icmp_sent.iter().enumerate() {
            fam.sample(&[("type", IcmpKind::name_of_index(k))], n);
        }
        let mut fam = Family::new(
            &mut out,
            "stage_packets_total",
            "counter",
            "Packets each dataplane stage handled.",
        );
        for (stage, st) in t.counters.stages() {
            fam.sample(&[("stage", stage)], st.packets);
        }
        let mut fam = Family::new(
            &mut out,
            "stage_seconds_total",
            "counter",
            "Worker time spent in each dataplane stage.",
        );
        for ((stage, _), ns) in t.counters.stages().zip(t.stage_ns) {
            fam.sample(&[("stage", stage)], ns / 1e9);
        }
        Family::single(
            &mut out,
            "rx_batches_total",
            "counter",
            "Batches the workers received (packets per batch: rx packets / batches).",
            t.batches,
        );
        Family::single(
            &mut out,
            "rx_batches_waited_total",
            "counter",
            "Batches whose frames receive coalescing (router.rx-usecs) left waiting for a fuller batch.",
            t.waited_batches,
        );

        let snap = self.fib.reader().load_full();
        Family::single(
            &mut out,
            "fib_routes",
            "gauge",
            "Routes in the FIB.",
            snap.routes(),
        );
        Family::single(
            &mut out,
            "fib_groups",
            "gauge",
            "Next-hop groups in the FIB.",
            snap.groups(),
        );
        Family::single(
            &mut out,
            "fib_memory_bytes",
            "gauge",
            "Memory of the FIB (shared nodes and leaves, both copies of the top, control state).",
            self.fib.memory().total,
        );
        let mut fam = Family::new(
            &mut out,
            "nexthop_up",
            "gauge",
            "1 when the next hop is resolved, its link up and it answers probes.",
        );
        for n in self.neighbors().neighbors {
            let addr = n.address.to_string();
            let up = u8::from(n.state == NextHopState::Up);
            fam.sample(&[("address", &addr), ("interface", &n.interface)], up);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    /// A fake control thread answering every metrics request.
    fn server() -> Server {
        let (tx, rx) = mpsc::channel::<Msg>();
        std::thread::spawn(move || {
            for m in rx {
                if let Msg::Metrics(reply) = m {
                    let _ = reply.send("flatedge_up 1\n".to_string());
                }
            }
        });
        Server::start("127.0.0.1:0".parse().unwrap(), tx).unwrap()
    }

    fn get(addr: SocketAddr, req: &[u8]) -> String {
        let mut c = TcpStream::connect(addr).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        c.write_all(req).unwrap();
        let mut out = String::new();
        c.read_to_string(&mut out).unwrap();
        out
    }

    #[test]
    fn a_scrape_is_answered() {
        let s = server();
        let out = get(s.addr, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
        assert!(out.starts_with("HTTP/1.1 200 OK\r\n"), "{out}");
        assert!(out.ends_with("\r\n\r\nflatedge_up 1\n"), "{out}");
        let out = get(s.addr, b"GET / HTTP/1.1\r\n\r\n");
        assert!(out.starts_with("HTTP/1.1 404"), "{out}");
        let out = get(s.addr, b"GET /metrics?name[]=up HTTP/1.1\r\n\r\n");
        assert!(out.ends_with("\r\n\r\nflatedge_up 1\n"), "{out}");
        let out = get(s.addr, b"HEAD /metrics HTTP/1.1\r\n\r\n");
        assert!(
            out.starts_with("HTTP/1.1 200 OK\r\n")
                && out.contains("Content-Length: 14\r\n")
                && out.ends_with("\r\n\r\n"),
            "{out}"
        );
    }

    /// A request head without an end is cut off at 8 KiB with 431, not
    /// buffered for as long as the client sends.
    #[test]
    fn an_endless_request_head_is_refused() {
        let s = server();
        let mut c = TcpStream::connect(s.addr).unwrap();
        c.set_write_timeout(Some(Duration::from_secs(5))).unwrap();
        let chunk = vec![b'A'; 1 << 20];
        let mut sent = 0usize;
        for _ in 0..64 {
            if c.write_all(&chunk).is_err() {
                break;
            }
            sent += chunk.len();
        }
        assert!(sent < 64 << 20, "took {} MiB of request head", sent >> 20);
    }

    /// A client that sends nothing holds its own slot only: a scrape
    /// beside it is answered at once.
    #[test]
    fn a_silent_client_does_not_hold_up_a_scrape() {
        let s = server();
        let _silent = TcpStream::connect(s.addr).unwrap();
        std::thread::sleep(Duration::from_millis(100));
        let t0 = Instant::now();
        let out = get(s.addr, b"GET /metrics HTTP/1.1\r\n\r\n");
        assert!(out.starts_with("HTTP/1.1 200 OK"), "{out}");
        // The silent client's deadline is 5 s.
        assert!(t0.elapsed() < Duration::from_secs(3), "{:?}", t0.elapsed());
    }

    /// Silent clients beyond the served ones, and beyond the pending
    /// ones, neither take the scrapes' slots nor make them wait.
    #[test]
    fn silent_clients_do_not_starve_scrapes() {
        let s = server();
        let silent: Vec<TcpStream> = (0..MAX_PENDING + 6)
            .map(|_| TcpStream::connect(s.addr).unwrap())
            .collect();
        std::thread::sleep(Duration::from_millis(200));
        let t0 = Instant::now();
        for _ in 0..3 {
            let out = get(s.addr, b"GET /metrics HTTP/1.1\r\n\r\n");
            assert!(out.starts_with("HTTP/1.1 200 OK"), "{out}");
        }
        assert!(t0.elapsed() < Duration::from_secs(3), "{:?}", t0.elapsed());
        drop(silent);
    }

    #[test]
    fn other_methods_get_405() {
        let s = server();
        // With a body the server never reads: drained, not reset.
        let mut post = b"POST /metrics HTTP/1.1\r\nContent-Length: 20000\r\n\r\n".to_vec();
        post.extend([b'x'; 20000]);
        let out = get(s.addr, &post);
        assert!(
            out.starts_with("HTTP/1.1 405 Method Not Allowed\r\n")
                && out.contains("\r\nAllow: GET, HEAD\r\n"),
            "{out}"
        );
        let out = get(s.addr, b"\x01\x02 /metrics\r\n\r\n");
        assert!(out.starts_with("HTTP/1.1 400 "), "{out}");
    }

    /// A head too long is answered with 431 that the client can read: the
    /// server takes the rest of what it sent before closing, instead of
    /// resetting the connection with it unread.
    #[test]
    fn a_too_long_head_gets_a_readable_431() {
        let s = server();
        let mut c = TcpStream::connect(s.addr).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        c.write_all(b"GET /metrics HTTP/1.1\r\nX: ").unwrap();
        c.write_all(&[b'a'; 3 * MAX_HEAD]).unwrap();
        let mut out = String::new();
        let r = c.read_to_string(&mut out);
        assert!(r.is_ok(), "{r:?} after {out:?}");
        assert!(out.starts_with("HTTP/1.1 431 "), "{out}");
    }

    #[test]
    fn families_and_escaping() {
        let mut out = String::new();
        let mut f = Family::new(&mut out, "x_total", "counter", "An x.");
        f.sample(&[("interface", "a\"b")], 3);
        f.sample(&[], 4);
        assert_eq!(
            out,
            "# HELP flatedge_x_total An x.\n# TYPE flatedge_x_total counter\n\
             flatedge_x_total{interface=\"a\\\"b\"} 3\nflatedge_x_total 4\n"
        );
    }
}
