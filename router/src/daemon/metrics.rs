//! The Prometheus endpoint (`[metrics] listen`): `GET /metrics` answers
//! the text exposition format (version 0.0.4) with the dataplane's
//! counters, computed on the control thread like the ctl's answers. Each
//! connection on a thread of its own (at most [`MAX_CLIENTS`] at once;
//! more get 503), one request per connection (`Connection: close`), its
//! head at most [`MAX_HEAD`] bytes (else 431) and sent within
//! [`CLIENT_TIMEOUT`]; anything but `GET /metrics` gets 404, a malformed
//! request 400. `HEAD /metrics` gets the headers alone; a query string is
//! ignored.

use std::io::Read;
use std::net::{SocketAddr, TcpListener, TcpStream};
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
/// The longest request head (request line and headers) read, bytes.
const MAX_HEAD: usize = 8 * 1024;
/// How long a client may take to send its whole request head, and again
/// to read the whole answer.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(5);

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
            while !stop.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((s, peer)) => {
                        let tx = tx.clone();
                        let Ok(spare) = s.try_clone() else { continue };
                        let served = slots.spawn("flatedge-metrics-client", move || {
                            if let Err(e) = serve(s, &tx) {
                                log!("metrics client {peer}: {e}");
                            }
                        });
                        if !served {
                            // Never blocks: the socket's buffer is empty.
                            let _ = spare.set_nonblocking(true);
                            let _ = respond(spare, "503 Service Unavailable", "busy\n", false);
                        }
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        })?;
        Ok(Server {
            addr,
            _thread: thread,
        })
    }
}

/// Reads the request head: up to the empty line, at most [`MAX_HEAD`]
/// bytes, within [`CLIENT_TIMEOUT`]. `None`: longer than that.
fn read_head(stream: &mut TcpStream) -> std::io::Result<Option<Vec<u8>>> {
    let deadline = Instant::now() + CLIENT_TIMEOUT;
    let mut head = Vec::new();
    let mut chunk = [0u8; 1024];
    loop {
        let ends =
            |h: &[u8]| h.windows(4).any(|w| w == b"\r\n\r\n") || h.windows(2).any(|w| w == b"\n\n");
        if ends(&head) {
            return Ok(Some(head));
        }
        if head.len() > MAX_HEAD {
            return Ok(None);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the request took too long",
            ));
        }
        stream.set_read_timeout(Some(left))?;
        match stream.read(&mut chunk) {
            // A client may close its side after the request line alone.
            Ok(0) => return Ok(Some(head)),
            Ok(n) => head.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

fn serve(mut stream: TcpStream, tx: &Sender<Msg>) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    let Some(head) = read_head(&mut stream)? else {
        return respond(
            stream,
            "431 Request Header Fields Too Large",
            "request head too long\n",
            false,
        );
    };
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
        (Some(_), Some(_)) => ("404 Not Found", "only /metrics is served\n".into()),
        _ => ("400 Bad Request", "bad request\n".into()),
    };
    respond(stream, status, &body, head_only)
}

/// Writes the whole answer (without the body for HEAD) within
/// [`CLIENT_TIMEOUT`] and closes.
fn respond(mut out: TcpStream, status: &str, body: &str, head_only: bool) -> std::io::Result<()> {
    let mut answer = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    if !head_only {
        answer.push_str(body);
    }
    ::ctl::write_within(&mut out, answer.as_bytes(), Instant::now() + CLIENT_TIMEOUT)
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
