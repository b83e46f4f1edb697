//! The Prometheus endpoint (`[metrics] listen`): `GET /metrics` answers
//! the text exposition format (version 0.0.4) with the dataplane's
//! counters, computed on the control thread like the ctl's answers. One
//! thread, one request per connection (`Connection: close`); anything but
//! `GET /metrics` gets 404, a malformed request 400.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::Ordering;
use std::sync::mpsc::{self, Sender};
use std::time::Duration;

use std::fmt::Write as _;

use ctl::NextHopState;

use super::{io_err, log, Daemon, DaemonError, Msg, StoppableThread};
use crate::dataplane::IcmpKind;

/// The running endpoint; stopped when dropped.
pub(super) struct Server {
    _thread: StoppableThread,
}

impl Server {
    pub(super) fn start(addr: SocketAddr, tx: Sender<Msg>) -> Result<Server, DaemonError> {
        let listener =
            TcpListener::bind(addr).map_err(io_err(format!("bind the metrics endpoint {addr}")))?;
        listener
            .set_nonblocking(true)
            .map_err(io_err("metrics socket non-blocking"))?;
        let thread = StoppableThread::spawn("flatedge-metrics", move |stop| {
            while !stop.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((s, _)) => {
                        if let Err(e) = serve(s, &tx) {
                            log!("metrics client: {e}");
                        }
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        })?;
        Ok(Server { _thread: thread })
    }
}

fn serve(stream: TcpStream, tx: &Sender<Msg>) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.set_write_timeout(Some(Duration::from_secs(5)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    // Skip the headers up to the empty line.
    let mut h = String::new();
    while reader.read_line(&mut h)? > 2 {
        h.clear();
    }
    let mut parts = line.split_whitespace();
    let (status, body) = match (parts.next(), parts.next()) {
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
    let mut out = stream;
    write!(
        out,
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    out.flush()
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
                "Frames to be sent on the interface that were dropped because the worker's buffer of frames waiting for its tx ring was full.",
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
        fam.sample(&[("reason", "tx_overflow")], t.tx_overflow);
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
    use super::*;

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
