//! `flatedgectl reload`: re-read the configuration file and apply what a
//! running daemon can change without dropping traffic.
//!
//! Applied: static routes (`[[route]]`), aggregates, and BGP's
//! neighbours, listen ranges (with their import and export lists,
//! max-prefixes, timers, keys) and originated prefixes, through
//! [`Speaker::reconfigure`](::bgp::driver::Speaker::reconfigure). A
//! route that goes gives its prefix back to its connected subnet, or to
//! BGP when the RIB has a path for it. Make before break: new and changed
//! routes are in the FIB before BGP is reconfigured (and announces them),
//! removed ones leave it after BGP withdrew them; if BGP refuses the new
//! configuration (which leaves it unchanged), the routes it replaced are
//! put back, so a refused file changes nothing. Everything else
//! (`[router]`, `[ctl]`, the interfaces, `[icmp]`, `[metrics]`, BGP's port
//! and multipath, turning BGP on or off) needs a restart: such a file is refused as a whole, as is an
//! invalid one, and the running configuration stays.

use std::collections::BTreeMap;
use std::net::Ipv6Addr;

use ::bgp::rib::{NextHop as RibNextHop, PathStatus as BgpStatus, RibChange};
use ::ctl::{Done, ErrorCode, Response};
use fib::Prefix;

use super::{bgp, log, Daemon, Source};
use crate::Config;

/// The sections of `new` that differ from `old` and need a restart.
pub(super) fn needs_restart(old: &Config, new: &Config) -> Vec<&'static str> {
    [
        ("[router]", old.router != new.router),
        ("[ctl]", old.ctl != new.ctl),
        ("[[interface]]", old.interfaces != new.interfaces),
        ("[icmp]", old.icmp != new.icmp),
        ("[metrics]", old.metrics != new.metrics),
        ("[bgp] port", old.bgp.port != new.bgp.port),
        ("[bgp.multipath]", old.bgp.multipath != new.bgp.multipath),
        ("BGP turned on or off", bgp::wanted(old) != bgp::wanted(new)),
    ]
    .into_iter()
    .filter(|(_, changed)| *changed)
    .map(|(what, _)| what)
    .collect()
}

/// Prefix -> next hops of a configuration's static routes; aggregates
/// map to no next hop.
fn own_routes(c: &Config) -> BTreeMap<Prefix, Vec<Ipv6Addr>> {
    let mut out: BTreeMap<Prefix, Vec<Ipv6Addr>> =
        c.bgp.aggregates.iter().map(|&p| (p, Vec::new())).collect();
    for r in &c.routes {
        out.insert(r.prefix, r.via.clone());
    }
    out
}

impl Daemon {
    /// Re-reads the configuration file and applies it (see the module
    /// docs).
    pub(super) fn reload(&mut self) -> Response {
        let Some(path) = self.config_file.clone() else {
            return Response::error(
                ErrorCode::Unsupported,
                "this daemon was not started from a configuration file",
            );
        };
        let new = match Config::from_file(&path) {
            Ok(c) => c,
            Err(e) => {
                return Response::error(
                    ErrorCode::InvalidConfig,
                    format!("{e}\nnothing was changed"),
                )
            }
        };
        let fixed = needs_restart(&self.config, &new);
        if !fixed.is_empty() {
            return Response::error(
                ErrorCode::InvalidState,
                format!(
                    "{} changed in {}: restart flatedge to apply; nothing was changed",
                    fixed.join(", "),
                    path.display()
                ),
            );
        }
        for r in &new.routes {
            if let Some(via) = r.via.iter().find(|v| self.port_of(**v).is_none()) {
                return Response::error(
                    ErrorCode::InvalidConfig,
                    format!(
                        "route {}: next hop {via} is on no subnet of an [[interface]]; nothing was changed",
                        r.prefix
                    ),
                );
            }
        }
        let (old, wanted) = (own_routes(&self.config), own_routes(&new));
        let (mut added, mut removed, mut changed) = (0, 0, 0);
        let mut failed = Vec::new();
        // Make before break: new and changed routes go into the FIB before
        // BGP announces them, removed ones leave it after BGP withdrew
        // them.
        let mut installed = Vec::new();
        for (prefix, via) in &wanted {
            match old.get(prefix) {
                Some(v) if v == via => continue,
                Some(_) => changed += 1,
                None => added += 1,
            }
            // A connected subnet wins over an aggregate, as at start.
            if via.is_empty() && self.connected_port(*prefix).is_some() {
                continue;
            }
            match self.install_own(*prefix, via) {
                Ok(()) => installed.push(*prefix),
                Err(e) => failed.push(format!("route {prefix}: {e}")),
            }
        }
        if !installed.is_empty() {
            self.refresh();
        }
        let mut notes = Vec::new();
        if let Some(b) = &self.bgp {
            let answer = b.reconfigure(bgp::speaker_config(&new));
            let error = match answer {
                Some(Ok(m)) => {
                    notes.push(m);
                    None
                }
                Some(Err(e)) => {
                    Some((ErrorCode::InvalidState, format!("{e}; nothing was changed")))
                }
                None => Some((
                    ErrorCode::Internal,
                    "the BGP speaker did not answer".to_string(),
                )),
            };
            if let Some((code, message)) = error {
                // Put back what the new routes replaced.
                let mut lost = Vec::new();
                for prefix in installed {
                    match old.get(&prefix) {
                        Some(via) => {
                            if let Err(e) = self.install_own(prefix, via) {
                                lost.push(format!("route {prefix}: {e}"));
                            }
                        }
                        None => self.give_back(prefix, &mut lost),
                    }
                }
                if !lost.is_empty() {
                    log!("reload: cannot put back {}", lost.join("; "));
                }
                self.refresh();
                return Response::error(code, message);
            }
        }
        for prefix in old.keys().filter(|p| !wanted.contains_key(p)) {
            removed += 1;
            self.give_back(*prefix, &mut failed);
        }
        notes.push(format!(
            "static routes and aggregates: {added} added, {removed} removed, {changed} changed"
        ));
        self.config = new;
        self.refresh();
        let mut message = format!("reloaded {}: {}", path.display(), notes.join("; "));
        log!("{message}");
        if !failed.is_empty() {
            message = format!("{message}; not installed: {}", failed.join("; "));
            log!("reload: not installed: {}", failed.join("; "));
            return Response::error(ErrorCode::Internal, message);
        }
        Response::Done(Done { message })
    }

    /// Removes our own route for `prefix` (only a static route or an
    /// aggregate: a connected subnet may have taken an aggregate's place)
    /// and hands the prefix back to its connected subnet or to BGP.
    fn give_back(&mut self, prefix: Prefix, failed: &mut Vec<String>) {
        let source = self.routes.get(&prefix).map(|r| r.source);
        if !matches!(source, Some(Source::Static | Source::Aggregate)) {
            return;
        }
        self.uninstall(prefix);
        match self.connected_port(prefix) {
            Some(port) => {
                if let Err(e) = self.install_connected(prefix, port) {
                    failed.push(format!("connected route {prefix}: {e}"));
                }
            }
            None => self.restore_bgp(prefix),
        }
    }

    /// The port whose connected subnet is exactly `prefix`.
    fn connected_port(&self, prefix: Prefix) -> Option<super::PortIndex> {
        self.ports.iter().enumerate().find_map(|(i, p)| {
            self.addrs
                .get(&p.name)?
                .iter()
                .any(|a| a.subnet == prefix)
                .then_some(i as super::PortIndex)
        })
    }

    /// Puts the RIB's best path and ECMP set for `prefix` back into the
    /// FIB (after a route of our own that hid it went away).
    pub(super) fn restore_bgp(&mut self, prefix: Prefix) {
        let Some(b) = &self.bgp else { return };
        let Ok(net) = ipnet::Ipv6Net::new(prefix.addr(), prefix.len()) else {
            return;
        };
        let Some(views) = b.routes(Some(net), 1) else {
            return;
        };
        for v in views {
            let nexthops: Vec<RibNextHop> = v
                .paths
                .iter()
                .filter(|p| matches!(p.status, BgpStatus::Best | BgpStatus::Multipath))
                .map(|p| RibNextHop {
                    addr: p.attrs.next_hop.addr,
                    ifindex: p.attrs.next_hop.ifindex,
                    peer: p.attrs.peer,
                })
                .collect();
            if !nexthops.is_empty() {
                self.apply_bgp(RibChange {
                    prefix: v.prefix,
                    nexthops,
                });
            }
        }
    }
}
