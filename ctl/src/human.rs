//! What `flatedgectl` prints without `--json`: aligned tables with a
//! header line, in the manner of birdc's `show protocols`, `ip -br` and
//! VPP's `show runtime`.
//!
//! Addresses are in their text form, counters integers, absent values
//! `-`. Every line ends with a newline and has no trailing blanks.

use std::fmt::Write as _;
use std::time::Duration;

use crate::{
    BgpSummary, Drops, ErrorCode, ErrorResponse, FibEntry, FibSummary, Interfaces, Neighbors,
    NextHopState, Path, PathStatus, PeerState, Response, RouteSource, Routes, Runtime,
};

/// The text `flatedgectl` prints for `resp` on standard output.
///
/// An error response renders as `error (code): message`; `flatedgectl`
/// itself prints `flatedgectl: message` on standard error instead.
pub fn render(resp: &Response) -> String {
    match resp {
        Response::BgpSummary(s) => bgp_summary(s),
        Response::Routes(r) => routes(r),
        Response::Fib(f) => fib(f),
        Response::FibSummary(s) => fib_summary(s),
        Response::Neighbors(n) => neighbors(n),
        Response::Interfaces(i) => interfaces(i),
        Response::Drops(d) => drops(d),
        Response::Runtime(r) => runtime(r),
        Response::Done(d) => format!("{}\n", d.message),
        Response::Error(ErrorResponse { code, message }) => {
            format!("error ({}): {message}\n", error_code(*code))
        }
    }
}

fn bgp_summary(s: &BgpSummary) -> String {
    let mut out = format!(
        "BGP router identifier {}, local AS {}\n",
        s.router_id, s.asn
    );
    if s.peers.is_empty() {
        out.push_str("no BGP peers\n");
        return out;
    }
    let mut t = Table::new(&[
        ("Neighbor", Left),
        ("AS", Right),
        ("State", Left),
        ("Up/Down", Right),
        ("Received", Right),
        ("Accepted", Right),
    ]);
    for p in &s.peers {
        t.row(vec![
            p.address.to_string(),
            p.asn.to_string(),
            peer_state(p.state).to_string(),
            uptime(Duration::from_secs(p.uptime_s)),
            p.prefixes_received.to_string(),
            p.prefixes_accepted.to_string(),
        ]);
    }
    t.render_into(&mut out, "");
    out
}

fn routes(r: &Routes) -> String {
    let more = r.truncated_at.map_or(String::new(), |n| {
        format!(
            "only the first {n} BGP prefixes (in prefix order) are listed; \
             `show route PREFIX` shows any other\n"
        )
    });
    if r.routes.is_empty() {
        return format!("no routes\n{more}");
    }
    let mut t = Table::new(&[
        ("Prefix", Left),
        ("Status", Left),
        ("Source", Left),
        ("Peer", Left),
        ("Next hop", Left),
        ("AS path", Left),
        ("Origin", Left),
        ("LocPref", Right),
        ("MED", Right),
        ("Note", Left),
    ]);
    for route in &r.routes {
        for (i, path) in route.paths.iter().enumerate() {
            let prefix = if i == 0 {
                route.prefix.to_string()
            } else {
                String::new()
            };
            t.row(path_row(prefix, path));
        }
        if route.paths.is_empty() {
            t.row(vec![route.prefix.to_string(), "no paths".to_string()]);
        }
    }
    t.render() + &more
}

fn path_row(prefix: String, p: &Path) -> Vec<String> {
    let as_path = if p.as_path.is_empty() {
        "-".to_string()
    } else {
        p.as_path
            .iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(" ")
    };
    let mut note = Vec::new();
    if p.stale {
        note.push("stale");
    }
    if let Some(reason) = &p.reason {
        note.push(reason);
    }
    vec![
        prefix,
        match p.status {
            PathStatus::Best => "best",
            PathStatus::Multipath => "multipath",
            PathStatus::Lost => "lost",
        }
        .to_string(),
        match p.source {
            RouteSource::Bgp => "bgp",
            RouteSource::Static => "static",
            RouteSource::Aggregate => "aggregate",
            RouteSource::Connected => "connected",
        }
        .to_string(),
        or_dash(p.peer),
        or_dash(p.next_hop),
        as_path,
        or_dash(p.origin.map(|o| match o {
            crate::Origin::Igp => "igp",
            crate::Origin::Egp => "egp",
            crate::Origin::Incomplete => "incomplete",
        })),
        or_dash(p.local_pref),
        or_dash(p.med),
        note.join("; "),
    ]
}

fn fib(f: &FibEntry) -> String {
    let Some(prefix) = f.prefix else {
        return format!("no route to {}\n", f.address);
    };
    let mut out = format!("{} via prefix {prefix}\n", f.address);
    if f.nexthops.is_empty() {
        out.push_str("  unreachable: no next hops\n");
        return out;
    }
    let mut t = Table::headless(4);
    for nh in &f.nexthops {
        t.row(vec![
            nh.address.to_string(),
            nh.interface.clone(),
            or_dash(nh.mac),
            next_hop_state(nh.state).to_string(),
        ]);
    }
    t.render_into(&mut out, "  ");
    out
}

fn fib_summary(s: &FibSummary) -> String {
    let mut t = Table::headless(2);
    t.row(vec!["Routes".into(), s.routes.to_string()]);
    t.row(vec!["Next-hop groups".into(), s.groups.to_string()]);
    t.row(vec!["Memory".into(), format!("{} bytes", s.memory_bytes)]);
    t.render()
}

fn neighbors(n: &Neighbors) -> String {
    if n.neighbors.is_empty() {
        return "no neighbors\n".to_string();
    }
    let mut t = Table::new(&[
        ("Address", Left),
        ("Interface", Left),
        ("MAC", Left),
        ("State", Left),
    ]);
    for nb in &n.neighbors {
        t.row(vec![
            nb.address.to_string(),
            nb.interface.clone(),
            or_dash(nb.mac),
            next_hop_state(nb.state).to_string(),
        ]);
    }
    t.render()
}

fn interfaces(i: &Interfaces) -> String {
    if i.interfaces.is_empty() {
        return "no interfaces\n".to_string();
    }
    let mut t = Table::new(&[
        ("Name", Left),
        ("Carrier", Left),
        ("MTU", Right),
        ("RX packets", Right),
        ("RX bytes", Right),
        ("TX packets", Right),
        ("TX bytes", Right),
        ("Drops", Right),
        ("TX drops", Right),
        ("TX link down", Right),
    ]);
    for itf in &i.interfaces {
        t.row(vec![
            itf.name.clone(),
            if itf.carrier { "up" } else { "down" }.to_string(),
            itf.mtu.to_string(),
            itf.rx_packets.to_string(),
            itf.rx_bytes.to_string(),
            itf.tx_packets.to_string(),
            itf.tx_bytes.to_string(),
            itf.drops.to_string(),
            itf.tx_drops.map_or("-".into(), |n| n.to_string()),
            itf.tx_link_down.map_or("-".into(), |n| n.to_string()),
        ]);
    }
    t.render()
}

/// Non-zero reasons only, like VPP's `show errors`; `--json` has them all.
fn drops(d: &Drops) -> String {
    let mut t = Table::new(&[("Reason", Left), ("Packets", Right)]);
    for (reason, &packets) in &d.drops {
        if packets != 0 {
            t.row(vec![reason.clone(), packets.to_string()]);
        }
    }
    if t.rows.is_empty() {
        return "no drops\n".to_string();
    }
    t.render()
}

fn runtime(r: &Runtime) -> String {
    let mut t = Table::new(&[
        ("Name", Left),
        ("Calls", Right),
        ("Packets", Right),
        ("ns/pkt", Right),
    ]);
    for s in &r.stages {
        t.row(vec![
            s.name.clone(),
            s.calls.to_string(),
            s.packets.to_string(),
            ns(s.ns_per_packet),
        ]);
    }
    let mut out = if r.stages.is_empty() {
        "no stages\n".to_string()
    } else {
        t.render()
    };
    let mut totals = Table::headless(2);
    totals.row(vec!["Packets".into(), r.packets.to_string()]);
    totals.row(vec![
        "Busy".into(),
        format!("{} ns/packet (syscalls included)", ns(r.busy_ns_per_packet)),
    ]);
    totals.row(vec![
        "Syscalls".into(),
        format!("{} ns/packet", ns(r.syscall_ns_per_packet)),
    ]);
    if let Some(batches) = r.batches {
        let per_batch = if batches == 0 {
            0.0
        } else {
            r.packets as f64 / batches as f64
        };
        totals.row(vec![
            "Batches".into(),
            format!("{batches} ({per_batch:.1} packets/batch)"),
        ]);
    }
    if let Some(c) = &r.coalescing {
        totals.row(vec![
            "Coalescing".into(),
            if c.rx_usecs == 0 {
                "off (rx-usecs 0)".into()
            } else if c.rx_frames <= 1 {
                format!("off (rx-frames {})", c.rx_frames)
            } else {
                format!(
                    "rx-usecs {} rx-frames {}: {} batches waited",
                    c.rx_usecs, c.rx_frames, c.waited_batches
                )
            },
        ]);
    }
    totals.render_into(&mut out, "");
    out
}

fn peer_state(s: PeerState) -> &'static str {
    match s {
        PeerState::Idle => "idle",
        PeerState::Connect => "connect",
        PeerState::Active => "active",
        PeerState::OpenSent => "open_sent",
        PeerState::OpenConfirm => "open_confirm",
        PeerState::Established => "established",
        PeerState::Disabled => "disabled",
    }
}

fn next_hop_state(s: NextHopState) -> &'static str {
    match s {
        NextHopState::Up => "up",
        NextHopState::Down => "down",
        NextHopState::Unresolved => "unresolved",
    }
}

fn error_code(c: ErrorCode) -> &'static str {
    match c {
        ErrorCode::BadRequest => "bad_request",
        ErrorCode::Unsupported => "unsupported",
        ErrorCode::UnknownNeighbor => "unknown_neighbor",
        ErrorCode::InvalidConfig => "invalid_config",
        ErrorCode::InvalidState => "invalid_state",
        ErrorCode::Internal => "internal",
        ErrorCode::Unavailable => "unavailable",
        ErrorCode::Busy => "busy",
        ErrorCode::Timeout => "timeout",
        ErrorCode::Usage => "usage",
    }
}

/// A duration the way routing CLIs show session uptimes: `hh:mm:ss` under
/// a day, `1d02h03m` beyond.
fn uptime(d: Duration) -> String {
    let s = d.as_secs();
    let (days, h, m, sec) = (s / 86_400, s / 3600 % 24, s / 60 % 60, s % 60);
    if days == 0 {
        format!("{h:02}:{m:02}:{sec:02}")
    } else {
        format!("{days}d{h:02}h{m:02}m")
    }
}

/// Nanoseconds with one decimal; `-` for a value that is not a number
/// (no packets to divide by).
fn ns(v: f64) -> String {
    if v.is_finite() {
        format!("{v:.1}")
    } else {
        "-".to_string()
    }
}

fn or_dash<T: ToString>(v: Option<T>) -> String {
    v.map_or_else(|| "-".to_string(), |v| v.to_string())
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Align {
    Left,
    Right,
}
use Align::{Left, Right};

/// Columns padded to their widest cell, two blanks apart.
struct Table {
    header: Option<Vec<String>>,
    align: Vec<Align>,
    rows: Vec<Vec<String>>,
}

impl Table {
    fn new(columns: &[(&str, Align)]) -> Table {
        Table {
            header: Some(columns.iter().map(|(h, _)| h.to_string()).collect()),
            align: columns.iter().map(|&(_, a)| a).collect(),
            rows: Vec::new(),
        }
    }

    /// Left-aligned columns without a header line.
    fn headless(columns: usize) -> Table {
        Table {
            header: None,
            align: vec![Left; columns],
            rows: Vec::new(),
        }
    }

    /// A row; missing trailing cells are blank.
    fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    fn render(&self) -> String {
        let mut out = String::new();
        self.render_into(&mut out, "");
        out
    }

    fn render_into(&self, out: &mut String, indent: &str) {
        let lines: Vec<&Vec<String>> = self.header.iter().chain(&self.rows).collect();
        let mut width = vec![0; self.align.len()];
        for line in &lines {
            for (w, cell) in width.iter_mut().zip(line.iter()) {
                *w = (*w).max(cell.chars().count());
            }
        }
        for line in lines {
            let mut text = indent.to_string();
            for (i, (&align, &w)) in self.align.iter().zip(&width).enumerate() {
                let cell = line.get(i).map_or("", String::as_str);
                if i > 0 {
                    text.push_str("  ");
                }
                // Infallible: writing to a String.
                let _ = match align {
                    Left => write!(text, "{cell:<w$}"),
                    Right => write!(text, "{cell:>w$}"),
                };
            }
            out.push_str(text.trim_end());
            out.push('\n');
        }
    }
}

#[cfg(test)]
mod tests;
