//! The command line of `flatedgectl` (feature `cli`): clap definitions and
//! their mapping onto [`Request`]s.
//!
//! Commands read like birdc's or vtysh's, and unique prefixes of command
//! words are accepted as they are there (`flatedgectl sh bgp sum`).

use std::ffi::OsString;
use std::fmt;
use std::net::Ipv6Addr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use clap::builder::StyledStr;
use clap::error::{ContextKind, ContextValue};
use clap::{CommandFactory, Parser, Subcommand, ValueEnum};
use ipnet::Ipv6Net;

use crate::{NeighborAction, Request};

/// Where `flatedgectl` looks for the daemon without `--socket` or
/// `FLATEDGE_CTL_SOCKET`: the `[ctl] socket` default.
pub const DEFAULT_SOCKET: &str = "/run/flatedge/ctl.sock";

/// `flatedgectl [--socket PATH] [--json] <command>`.
#[derive(Debug, Clone, PartialEq, Parser)]
#[command(
    name = "flatedgectl",
    version,
    about = "Query and control a running flatedge router over its ctl socket",
    infer_subcommands = true
)]
pub struct Cli {
    /// The daemon's ctl socket (`[ctl] socket` in its config).
    #[arg(
        long,
        global = true,
        value_name = "PATH",
        env = "FLATEDGE_CTL_SOCKET",
        default_value = DEFAULT_SOCKET
    )]
    pub socket: PathBuf,
    /// Print the daemon's JSON response document as received instead of
    /// a table.
    #[arg(long, global = true)]
    pub json: bool,
    /// Give up when the daemon has not answered within this many seconds
    /// (default 10; 70 for `reload`, which answers once BGP has taken the
    /// new configuration).
    #[arg(long, global = true, value_name = "SECONDS", value_parser = parse_timeout)]
    pub timeout: Option<f64>,
    /// What to ask.
    #[command(subcommand)]
    pub command: Command,
}

/// The top-level commands.
#[derive(Debug, Clone, PartialEq, Subcommand)]
#[command(infer_subcommands = true)]
pub enum Command {
    /// Show state.
    #[command(subcommand)]
    Show(Show),
    /// Act on a BGP peer: reset its session, disable or enable it.
    #[command(alias = "neighbour")]
    Neighbor {
        /// The peer's address.
        address: Ipv6Addr,
        /// What to do (or a unique prefix of it: `dis`).
        #[arg(value_parser = ActionParser)]
        action: Action,
    },
    /// Re-read the config file and apply the differences.
    Reload,
}

/// `show ...`.
#[derive(Debug, Clone, PartialEq, Subcommand)]
#[command(infer_subcommands = true)]
pub enum Show {
    /// BGP sessions.
    #[command(subcommand)]
    Bgp(ShowBgp),
    /// RIB paths of every prefix, or of one: best, ECMP set, why the
    /// others lost.
    Route {
        /// Only this prefix (exact match).
        #[arg(value_parser = parse_route_prefix)]
        prefix: Option<Ipv6Net>,
    },
    /// The FIB entry a packet to ADDRESS would use, or the FIB's size.
    Fib {
        /// An IPv6 address, or `summary`.
        #[arg(value_name = "ADDRESS|summary")]
        target: FibTarget,
    },
    /// The next hops the dataplane keeps resolved (NDP side).
    #[command(alias = "neighbours")]
    Neighbors,
    /// Per-port packet, byte and drop counters.
    Interfaces,
    /// Packets dropped, per reason (non-zero ones; --json has all).
    Drops,
    /// Per-stage calls, packets and ns/packet, then the workers' totals.
    Runtime,
}

/// `show bgp ...`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Subcommand)]
#[command(infer_subcommands = true)]
pub enum ShowBgp {
    /// Every peer: AS, state, uptime, prefixes received and accepted.
    Summary,
}

/// The argument of `show fib`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FibTarget {
    /// `show fib ADDRESS`.
    Address(Ipv6Addr),
    /// `show fib summary` (or a prefix of the word, `show fib sum`).
    Summary,
}

/// Neither an IPv6 address nor `summary`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FibTargetError(String);

impl fmt::Display for FibTargetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?} is neither an IPv6 address nor \"summary\"", self.0)
    }
}

impl std::error::Error for FibTargetError {}

impl FromStr for FibTarget {
    type Err = FibTargetError;

    fn from_str(s: &str) -> Result<FibTarget, FibTargetError> {
        if !s.is_empty() && "summary".starts_with(s) {
            return Ok(FibTarget::Summary);
        }
        s.parse()
            .map(FibTarget::Address)
            .map_err(|_| FibTargetError(s.to_string()))
    }
}

/// What `neighbor ADDR ...` does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Action {
    /// Close the session (Cease/Administrative Reset) and let it come
    /// back.
    Reset,
    /// Close the session and refuse the peer until `enable`.
    Disable,
    /// Accept (and dial) the peer again.
    Enable,
}

/// Parses an [`Action`] from its name or a unique prefix of it, as the
/// command words are (clap matches a value's whole name only), and
/// offers the names in help and errors.
#[derive(Debug, Clone, Copy)]
struct ActionParser;

impl clap::builder::TypedValueParser for ActionParser {
    type Value = Action;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<Action, clap::Error> {
        let s = value.to_string_lossy();
        let mut found = Action::value_variants().iter().filter(|a| {
            !s.is_empty()
                && a.to_possible_value()
                    .is_some_and(|v| v.get_name().starts_with(s.as_ref()))
        });
        match (found.next(), found.next()) {
            (Some(a), None) => Ok(*a),
            _ => clap::builder::EnumValueParser::<Action>::new().parse_ref(cmd, arg, value),
        }
    }

    fn possible_values(
        &self,
    ) -> Option<Box<dyn Iterator<Item = clap::builder::PossibleValue> + '_>> {
        Some(Box::new(
            Action::value_variants()
                .iter()
                .filter_map(ValueEnum::to_possible_value),
        ))
    }
}

impl Cli {
    /// Parses `args` (the program name first) like `Cli::try_parse_from`
    /// and adds to every error the usage of the command it concerns,
    /// which clap leaves out of errors about a bad value
    /// (`show fib 192.0.2.1`).
    pub fn try_parse_with_usage<I, T>(args: I) -> Result<Cli, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString>,
    {
        let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
        Cli::try_parse_from(&args).map_err(|mut e| {
            if e.use_stderr() && e.get(ContextKind::Usage).is_none() {
                e.insert(ContextKind::Usage, ContextValue::StyledStr(usage_of(&args)));
            }
            e
        })
    }

    /// The request this command line asks the daemon.
    pub fn request(&self) -> Request {
        match &self.command {
            Command::Show(show) => match show {
                Show::Bgp(ShowBgp::Summary) => Request::ShowBgpSummary,
                Show::Route { prefix } => Request::ShowRoute {
                    prefix: prefix.map(|p| p.trunc()),
                },
                Show::Fib {
                    target: FibTarget::Address(address),
                } => Request::ShowFib { address: *address },
                Show::Fib {
                    target: FibTarget::Summary,
                } => Request::ShowFibSummary,
                Show::Neighbors => Request::ShowNeighbors,
                Show::Interfaces => Request::ShowInterfaces,
                Show::Drops => Request::ShowDrops,
                Show::Runtime => Request::ShowRuntime,
            },
            Command::Neighbor { address, action } => Request::Neighbor {
                address: *address,
                action: match action {
                    Action::Reset => NeighborAction::Reset,
                    Action::Disable => NeighborAction::Disable,
                    Action::Enable => NeighborAction::Enable,
                },
            },
            Command::Reload => Request::Reload,
        }
    }

    /// `--timeout` as a duration, or the command's default.
    pub fn timeout(&self) -> Duration {
        let default = match self.command {
            Command::Reload => 70.0,
            _ => 10.0,
        };
        Duration::from_secs_f64(self.timeout.unwrap_or(default))
    }
}

/// The usage of the deepest (sub)command `args` name, with the unique
/// prefixes clap accepts; words that name none (option values, addresses)
/// are passed over.
fn usage_of(args: &[OsString]) -> StyledStr {
    let mut root = Cli::command();
    root.build();
    let mut cmd = &mut root;
    for word in args.iter().skip(1).filter_map(|a| a.to_str()) {
        if word.starts_with('-') {
            continue;
        }
        let matches: Vec<String> = cmd
            .get_subcommands()
            .filter(|sub| {
                std::iter::once(sub.get_name())
                    .chain(sub.get_all_aliases())
                    .any(|name| name.starts_with(word))
            })
            .map(|sub| sub.get_name().to_string())
            .collect();
        if let [name] = matches.as_slice() {
            cmd = cmd
                .find_subcommand_mut(name)
                .expect("a subcommand that was just listed");
        }
    }
    cmd.render_usage()
}

fn parse_timeout(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v > 0.0 && v <= 86_400.0 => Ok(v),
        _ => Err(format!(
            "{s:?} is not a positive number of seconds (at most 86400)"
        )),
    }
}

/// `show route`'s PREFIX; a bare address is pointed at `show fib`.
fn parse_route_prefix(s: &str) -> Result<Ipv6Net, String> {
    if let Ok(p) = s.parse::<Ipv6Net>() {
        return Ok(p);
    }
    if s.parse::<std::net::Ipv6Addr>().is_ok() {
        return Err(format!(
            "{s} is an address, not a prefix: give ADDRESS/LENGTH (e.g. {s}/128), \
             or see the route a packet to it takes with `show fib {s}`"
        ));
    }
    Err(format!("{s:?} is not an IPv6 prefix such as 2001:db8::/32"))
}

#[cfg(test)]
mod tests;
