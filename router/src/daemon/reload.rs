//! `flatedgectl reload`: re-read the configuration file and apply what a
//! running daemon can change without dropping traffic.
//!
//! Applied: static routes (`[[route]]`), aggregates, and BGP's
//! neighbours, listen ranges (with their import and export lists,
//! max-prefixes, timers, keys) and originated prefixes, through
//! [`Speaker::reconfigure`](::bgp::driver::Speaker::reconfigure). A
//! route that goes gives its prefix back to its connected subnet, or to
//! BGP when the RIB has a path for it (the speaker sends it again as a
//! change, in order with the others). Make before break: new and changed
//! routes are in the FIB before BGP is reconfigured (and announces them),
//! removed ones leave it after BGP withdrew them; if BGP refuses the new
//! configuration (which leaves it unchanged), the routes it replaced are
//! put back, so a refused file changes nothing (a route that cannot be put
//! back, its next hop's subnet gone meanwhile, stays as the file has it,
//! and the answer and the running configuration say so). The control thread does
//! not block on BGP: the reload waits in [`PendingReload`] for BGP's
//! answer (another reload meanwhile is refused), so the FIB and BGP run
//! the same configuration however long BGP takes, up to [`BGP_ANSWER`];
//! past that the routes are put back and a later answer from BGP is
//! logged (a speaker that slow is stuck). Everything else
//! (`[router]`, `[ctl]`, the interfaces, `[icmp]`, `[metrics]`, BGP's port
//! and multipath, turning BGP on or off) needs a restart: such a file is refused as a whole, as is an
//! invalid one, and the running configuration stays.

use std::collections::BTreeMap;
use std::net::Ipv6Addr;
use std::path::PathBuf;
use std::sync::mpsc::Sender;
use std::time::Duration;

use ::bgp::driver::ReconfigureError;
use ::ctl::{Done, ErrorCode, Response};
use fib::Prefix;

use super::ctl::Answer;
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

/// Makes `config` say that `prefix` is routed via `via` (an aggregate when
/// empty), or not at all (`None`), as the FIB has it.
fn keep_as(config: &mut Config, prefix: Prefix, via: Option<&[Ipv6Addr]>) {
    config.routes.retain(|r| r.prefix != prefix);
    config.bgp.aggregates.retain(|a| *a != prefix);
    match via {
        None => {}
        Some([]) => config.bgp.aggregates.push(prefix),
        Some(via) => config.routes.push(crate::config::StaticRoute {
            prefix,
            via: via.to_vec(),
        }),
    }
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

/// A static route's next hop on no connected subnet, in a new
/// configuration.
#[derive(Debug, PartialEq, Eq)]
struct OffSubnet {
    /// Where: `route[i].via[j]`.
    at: String,
    prefix: Prefix,
    via: Ipv6Addr,
    /// Whether the route is new or changed by the file (else it runs as
    /// it is, and a renumbering took its subnet).
    changed: bool,
}

/// The next hops of `new`'s static routes that `on_subnet` says are on no
/// connected subnet.
fn offsubnet_nexthops(
    old: &BTreeMap<Prefix, Vec<Ipv6Addr>>,
    new: &Config,
    on_subnet: impl Fn(Ipv6Addr) -> bool,
) -> Vec<OffSubnet> {
    let mut out = Vec::new();
    for (i, r) in new.routes.iter().enumerate() {
        let changed = old.get(&r.prefix) != Some(&r.via);
        for (j, &via) in r.via.iter().enumerate() {
            if !on_subnet(via) {
                out.push(OffSubnet {
                    at: format!("route[{i}].via[{j}]"),
                    prefix: r.prefix,
                    via,
                    changed,
                });
            }
        }
    }
    out
}

/// A reload whose routes are in the FIB, waiting for BGP's answer to the
/// new configuration (the control thread goes on meanwhile).
pub(super) struct PendingReload {
    reply: Sender<Answer>,
    path: PathBuf,
    new: Config,
    old: BTreeMap<Prefix, Vec<Ipv6Addr>>,
    wanted: BTreeMap<Prefix, Vec<Ipv6Addr>>,
    installed: Vec<Prefix>,
    /// Static routes the new file makes aggregates of a connected
    /// subnet: the subnet wins over the aggregate (not installed), so the
    /// static route goes once BGP took the file.
    yielded: Vec<Prefix>,
    added: usize,
    changed: usize,
    failed: Vec<String>,
}

/// How long a reload waits for BGP's answer before it puts the old routes
/// back (a speaker that does not answer in that time is stuck).
pub(super) const BGP_ANSWER: Duration = Duration::from_secs(60);

impl Daemon {
    /// Re-reads the configuration file and applies it (see the module
    /// docs); the answer goes to `reply`, at once or, when BGP must take
    /// the new configuration, once it has answered ([`Msg::ReloadBgp`]).
    pub(super) fn reload(&mut self, reply: Sender<Answer>) {
        if self.reloading.is_some() {
            let _ = reply.send(Answer::Now(Response::error(
                ErrorCode::InvalidState,
                "a reload is in progress (BGP has not answered it yet); nothing was changed",
            )));
            return;
        }
        let Some(path) = self.config_file.clone() else {
            let _ = reply.send(Answer::Now(Response::error(
                ErrorCode::Unsupported,
                "this daemon was not started from a configuration file",
            )));
            return;
        };
        let new = match Config::from_file(&path) {
            Ok(c) => c,
            Err(e) => {
                let _ = reply.send(Answer::Now(Response::error(
                    ErrorCode::InvalidConfig,
                    format!("{e}\nnothing was changed"),
                )));
                return;
            }
        };
        let fixed = needs_restart(&self.config, &new);
        if !fixed.is_empty() {
            let _ = reply.send(Answer::Now(Response::error(
                ErrorCode::InvalidState,
                format!(
                    "{} changed in {}: restart flatedge to apply; nothing was changed",
                    fixed.join(", "),
                    path.display()
                ),
            )));
            return;
        }
        let old_routes = own_routes(&self.config);
        let offsubnet = offsubnet_nexthops(&old_routes, &new, |v| self.port_of(v).is_some());
        if let Some(e) = offsubnet.iter().find(|e| e.changed) {
            let _ = reply.send(Answer::Now(Response::error(
                ErrorCode::InvalidConfig,
                format!(
                    "{}: route {}: next hop {} is on no subnet of an [[interface]]; nothing was changed",
                    e.at, e.prefix, e.via
                ),
            )));
            return;
        }
        for e in &offsubnet {
            // As the running configuration has it: not the file's doing.
            log!(
                "reload: {}: route {} (unchanged): next hop {} is on no subnet of an [[interface]] any more",
                e.at,
                e.prefix,
                e.via
            );
        }
        let (old, wanted) = (old_routes, own_routes(&new));
        let (mut added, mut changed) = (0, 0);
        let mut failed = Vec::new();
        let mut not_installed = Vec::new();
        // Make before break: new and changed routes go into the FIB before
        // BGP announces them, removed ones leave it after BGP withdrew
        // them.
        let mut installed = Vec::new();
        let mut yielded = Vec::new();
        for (prefix, via) in &wanted {
            match old.get(prefix) {
                Some(v) if v == via => continue,
                Some(_) => changed += 1,
                None => added += 1,
            }
            // A connected subnet wins over an aggregate, as at start.
            if via.is_empty() && self.connected_port(*prefix).is_some() {
                if old.get(prefix).is_some_and(|v| !v.is_empty()) {
                    yielded.push(*prefix);
                }
                continue;
            }
            match self.install_own(*prefix, via) {
                Ok(()) => installed.push(*prefix),
                Err(e) => {
                    failed.push(format!("route {prefix}: {e}"));
                    not_installed.push(*prefix);
                }
            }
        }
        if !installed.is_empty() {
            self.refresh();
        }
        // A route the FIB refused stays as the running configuration had
        // it (or absent): BGP does not announce it, and reloading the same
        // file tries it again.
        let mut new = new;
        for prefix in &not_installed {
            keep_as(&mut new, *prefix, old.get(prefix).map(Vec::as_slice));
        }
        let pending = PendingReload {
            reply,
            path,
            new,
            old,
            wanted,
            installed,
            yielded,
            added,
            changed,
            failed,
        };
        for note in bgp::policy_notes(&pending.new) {
            log!("reload: {note}");
        }
        match &self.bgp {
            Some(b) => {
                let config = bgp::speaker_config(&pending.new);
                b.reconfigure(config, self.to_self.clone(), BGP_ANSWER);
                self.reloading = Some(pending);
            }
            None => self.finish_reload(pending, None),
        }
    }

    /// BGP's answer to a reload's configuration (`None`: it did not
    /// answer within [`BGP_ANSWER`]).
    pub(super) fn reload_bgp_answer(&mut self, answer: Option<Result<String, ReconfigureError>>) {
        let Some(pending) = self.reloading.take() else {
            return;
        };
        let error = match answer {
            Some(Ok(m)) => return self.finish_reload(pending, Some(m)),
            Some(Err(e)) => (ErrorCode::InvalidState, format!("{e}; nothing was changed")),
            None => (
                ErrorCode::Timeout,
                format!(
                    "the BGP speaker did not answer within {} s; the routes were put back \
                     (BGP may still take the new configuration: see the log)",
                    BGP_ANSWER.as_secs()
                ),
            ),
        };
        let mut to_bgp = Vec::new();
        // Put back what the new routes replaced.
        let mut lost = Vec::new();
        for prefix in pending.installed {
            match pending.old.get(&prefix) {
                // An aggregate yields to its connected subnet, as at start.
                Some(via) if via.is_empty() && self.connected_port(prefix).is_some() => {
                    to_bgp.extend(self.give_back(prefix, &mut lost));
                }
                Some(via) => {
                    if let Err(e) = self.install_own(prefix, via) {
                        lost.push(format!("route {prefix}: {e}"));
                        // The new route stays in the FIB: the running
                        // configuration says so, so that it tells the
                        // truth and reloading either file acts on it.
                        if let Some(new) = pending.wanted.get(&prefix) {
                            keep_as(&mut self.config, prefix, Some(new));
                        }
                    }
                }
                None => to_bgp.extend(self.give_back(prefix, &mut lost)),
            }
        }
        self.restore_bgp(to_bgp);
        self.refresh();
        let (mut code, mut message) = error;
        if !lost.is_empty() {
            log!("reload: cannot put back {}", lost.join("; "));
            code = ErrorCode::Internal;
            message = format!(
                "{message}; except what could not be put back (a route stays as the file has it, a prefix given back to no route has none): {}",
                lost.join("; ")
            );
        }
        log!("reload of {} refused: {message}", pending.path.display());
        let _ = pending
            .reply
            .send(Answer::Now(Response::error(code, message)));
    }

    /// Completes a reload BGP took (or one without BGP): the routes the
    /// file no longer has go, the new configuration is the running one.
    fn finish_reload(&mut self, p: PendingReload, bgp_note: Option<String>) {
        let mut failed = p.failed;
        let mut removed = 0;
        let mut to_bgp = Vec::new();
        for prefix in p.old.keys().filter(|k| !p.wanted.contains_key(k)) {
            removed += 1;
            to_bgp.extend(self.give_back(*prefix, &mut failed));
        }
        for prefix in p.yielded {
            to_bgp.extend(self.give_back(prefix, &mut failed));
        }
        let mut notes: Vec<String> = bgp_note.into_iter().collect();
        notes.push(format!(
            "static routes and aggregates: {} added, {removed} removed, {} changed",
            p.added, p.changed
        ));
        self.config = p.new;
        // An aggregate the new file has and no route covers now (its
        // connected subnet went away while BGP was taking the file, which
        // the address sync judged by the old file): installed.
        self.install_missing_aggregates(&mut failed);
        to_bgp.retain(|p| !self.routes.contains_key(p));
        self.restore_bgp(to_bgp);
        self.refresh();
        let mut message = format!("reloaded {}: {}", p.path.display(), notes.join("; "));
        log!("{message}");
        let response = if failed.is_empty() {
            Response::Done(Done { message })
        } else {
            message = format!("{message}; not installed: {}", failed.join("; "));
            log!("reload: not installed: {}", failed.join("; "));
            Response::error(ErrorCode::Internal, message)
        };
        let _ = p.reply.send(Answer::Now(response));
    }

    /// Installs every aggregate of the running configuration that has no
    /// route of ours and no connected subnet to yield to.
    fn install_missing_aggregates(&mut self, failed: &mut Vec<String>) {
        let missing: Vec<Prefix> = self
            .config
            .bgp
            .aggregates
            .iter()
            .copied()
            .filter(|a| !self.routes.contains_key(a) && self.connected_port(*a).is_none())
            .collect();
        for a in missing {
            if let Err(e) = self.install_own(a, &[]) {
                failed.push(format!("aggregate {a}: {e}"));
            }
        }
    }

    /// Removes our own route for `prefix` (only a static route or an
    /// aggregate: a connected subnet may have taken an aggregate's place)
    /// and hands the prefix back to its connected subnet; returns it when
    /// no subnet took it, for the RIB's path ([`Self::restore_bgp`]).
    fn give_back(&mut self, prefix: Prefix, failed: &mut Vec<String>) -> Option<Prefix> {
        let source = self.routes.get(&prefix).map(|r| r.source);
        if !matches!(source, Some(Source::Static | Source::Aggregate)) {
            return None;
        }
        self.uninstall(prefix);
        match self.connected_port(prefix) {
            Some(port) => {
                if let Err(e) = self.install_connected(prefix, port) {
                    failed.push(format!("connected route {prefix}: {e}"));
                }
                None
            }
            None => Some(prefix),
        }
    }

    /// The port whose connected subnet is exactly `prefix`.
    pub(super) fn connected_port(&self, prefix: Prefix) -> Option<super::PortIndex> {
        self.ports.iter().enumerate().find_map(|(i, p)| {
            self.addrs
                .get(&p.name)?
                .iter()
                .any(|a| a.subnet == prefix)
                .then_some(i as super::PortIndex)
        })
    }

    /// Puts the RIB's best path and ECMP set for `prefix` back into the
    /// FIB (after a route of our own that hid it went away): the speaker
    /// sends them as BGP changes, in order with the others, so neither
    /// the control thread waits nor a withdrawal meanwhile is overtaken.
    /// With the speaker's command queue full, the prefixes wait in
    /// `pending_resend` and each round of the control loop tries again.
    pub(super) fn restore_bgp(&mut self, prefixes: Vec<Prefix>) {
        if self.bgp.is_none() {
            return;
        }
        self.pending_resend.extend(
            prefixes
                .into_iter()
                .filter_map(|p| ipnet::Ipv6Net::new(p.addr(), p.len()).ok()),
        );
        self.flush_resend();
    }

    /// Hands the speaker the prefixes waiting for [`Self::restore_bgp`]
    /// (in batches it sends as one change event each).
    pub(super) fn flush_resend(&mut self) {
        const BATCH: usize = 1024;
        let Some(b) = &self.bgp else {
            self.pending_resend.clear();
            return;
        };
        while !self.pending_resend.is_empty() {
            let n = self.pending_resend.len().min(BATCH);
            let batch: Vec<ipnet::Ipv6Net> = self.pending_resend[..n].to_vec();
            if !b.resend(batch) {
                return;
            }
            self.pending_resend.drain(..n);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{needs_restart, offsubnet_nexthops, own_routes};
    use crate::Config;
    use std::net::Ipv6Addr;

    const BASE: &str = r#"
[router]
asn = 65000
router-id = "192.0.2.1"
[[interface]]
name = "k8s0"
[[bgp.listen]]
range = "2001:db8:1::/64"
peer-asn = 65001
import = ["2001:db8:100::/40 le 64"]
"#;

    fn parse(text: &str) -> Config {
        text.parse().unwrap_or_else(|e| panic!("{e}\n{text}"))
    }

    /// Each section a running daemon cannot take is named, alone; what it
    /// applies in place names nothing.
    #[test]
    fn the_sections_that_need_a_restart_are_named() {
        let old = parse(BASE);
        let listen = "[[bgp.listen]]";
        let cases: Vec<(&str, String, &[&str])> = vec![
            (
                "rx-usecs",
                BASE.replace("\n[[interface]]", "\nrx-usecs = 10\n[[interface]]"),
                &["[router]"],
            ),
            (
                "ctl",
                format!("{BASE}[ctl]\nsocket = \"/run/other.sock\"\n"),
                &["[ctl]"],
            ),
            (
                "mtu",
                BASE.replace("name = \"k8s0\"", "name = \"k8s0\"\nmtu = 1400"),
                &["[[interface]]"],
            ),
            (
                "port",
                BASE.replace(listen, &format!("[bgp]\nport = 1179\n{listen}")),
                &["[bgp] port"],
            ),
            (
                "multipath",
                BASE.replace(listen, &format!("[bgp.multipath]\nmax-paths = 4\n{listen}")),
                &["[bgp.multipath]"],
            ),
            ("icmp", format!("{BASE}[icmp]\nrate = 10\n"), &["[icmp]"]),
            (
                "metrics",
                format!("{BASE}[metrics]\nlisten = \"[::1]:9100\"\n"),
                &["[metrics]"],
            ),
            (
                "import",
                BASE.replace("le 64\"]", "le 64\", \"2001:db8:96::/112 le 128\"]"),
                &[],
            ),
            (
                "route",
                format!(
                    "{BASE}[[route]]\nprefix = \"2001:db8:200::/48\"\nvia = [\"2001:db8:1::9\"]\n"
                ),
                &[],
            ),
            (
                "no bgp",
                BASE.split(listen).next().unwrap_or_default().to_string(),
                &["BGP turned on or off"],
            ),
        ];
        for (what, text, expected) in cases {
            let new = parse(&text);
            assert_eq!(needs_restart(&old, &new), expected, "{what}");
            assert!(needs_restart(&new, &new).is_empty(), "{what}: itself");
        }
    }

    /// Only a route the file adds or changes is refused for a next hop on
    /// no subnet, with where it is; an unchanged one (its subnet gone with
    /// a renumbering) does not block the reload.
    #[test]
    fn offsubnet_next_hops_of_new_and_changed_routes_are_found_with_where() {
        let route = |prefix: &str, via: &str| {
            format!("[[route]]\nprefix = \"{prefix}\"\nvia = [\"2001:db8:1::2\", \"{via}\"]\n")
        };
        let old = parse(&format!(
            "{BASE}{}",
            route("2001:db8:77::/48", "2001:db8:9::1")
        ));
        let new = parse(&format!(
            "{BASE}{}{}",
            route("2001:db8:77::/48", "2001:db8:9::1"),
            route("2001:db8:78::/48", "2001:db8:9::2")
        ));
        // Only 2001:db8:1::/64 is connected.
        let on_subnet = |a: Ipv6Addr| a.segments()[..4] == [0x2001, 0xdb8, 1, 0];
        let found = offsubnet_nexthops(&own_routes(&old), &new, on_subnet);
        let summary: Vec<(&str, bool)> = found.iter().map(|e| (e.at.as_str(), e.changed)).collect();
        assert_eq!(
            summary,
            [("route[0].via[1]", false), ("route[1].via[1]", true)]
        );
        assert_eq!(found[1].via, "2001:db8:9::2".parse::<Ipv6Addr>().unwrap());
    }
}
