//! Import policy: prefix allow-lists, martians, next-hop sanity, and the
//! reasons a route is rejected.
//!
//! An allow-list entry is written like a prefix-list line:
//!
//! | entry | matches |
//! |---|---|
//! | `2001:db8:100::/40` | exactly that prefix |
//! | `2001:db8:100::/40 le 64` | inside it, length 40 to 64 |
//! | `2001:db8:100::/40 ge 48` | inside it, length 48 to 128 |
//! | `2001:db8:100::/40 ge 48 le 56` | inside it, length 48 to 56 |
//!
//! with `len <= ge <= le <= 128`, and no host bits set in the prefix.
//! Once a list is given, a route no entry matches is rejected (default
//! deny); without a list every route passes this step.
//!
//! Next hops (our policy beyond the RFCs, see GoBGP issue 3214): an
//! unspecified global next hop means the peer's address; a link-local
//! next hop without a global one is used with the session's interface
//! (rejected if the session has none); IPv4-mapped, multicast and loopback
//! next hops are rejected. Every rejection is a [`RejectReason`], counted
//! per peer by the RIB.

use core::fmt;
use core::str::FromStr;
use std::net::Ipv6Addr;

use ipnet::Ipv6Net;

use crate::wire::Ipv6NextHop;

/// One allow-list entry (see the module docs for the syntax).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PrefixRule {
    /// The covering prefix.
    pub prefix: Ipv6Net,
    /// Shortest matching length.
    pub ge: u8,
    /// Longest matching length.
    pub le: u8,
}

impl PrefixRule {
    /// Whether `p` lies inside the rule's prefix with a length in range.
    pub fn matches(&self, p: &Ipv6Net) -> bool {
        (self.ge..=self.le).contains(&p.prefix_len()) && self.prefix.contains(p)
    }
}

impl fmt::Display for PrefixRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.prefix)?;
        let len = self.prefix.prefix_len();
        if self.ge != len {
            write!(f, " ge {}", self.ge)?;
        }
        if self.le != len && !(self.ge != len && self.le == 128) {
            write!(f, " le {}", self.le)?;
        }
        Ok(())
    }
}

/// Why an allow-list entry does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PrefixRuleError {
    /// The prefix part is not an IPv6 prefix.
    #[error("{0:?} is not an IPv6 prefix (expected e.g. 2001:db8:100::/40)")]
    BadPrefix(String),
    /// Bits are set past the prefix length.
    #[error("{given} has host bits set; did you mean {canonical}?")]
    HostBits {
        /// As written.
        given: Ipv6Net,
        /// With the host bits cleared.
        canonical: Ipv6Net,
    },
    /// A word other than `ge`/`le`, or one of them twice or out of order.
    #[error("unexpected {0:?}: expected \"ge N\" and/or \"le N\", in that order")]
    UnexpectedWord(String),
    /// `ge` or `le` without a number from 0 to 128.
    #[error("{0} needs a length from 0 to 128")]
    BadLength(&'static str),
    /// The lengths are not `prefix length <= ge <= le`.
    #[error("lengths must satisfy {len} <= ge <= le <= 128, got ge {ge} le {le}")]
    BadRange {
        /// The prefix length.
        len: u8,
        /// `ge`.
        ge: u8,
        /// `le`.
        le: u8,
    },
}

impl FromStr for PrefixRule {
    type Err = PrefixRuleError;

    fn from_str(s: &str) -> Result<PrefixRule, PrefixRuleError> {
        let mut words = s.split_whitespace();
        let first = words.next().unwrap_or("");
        let prefix: Ipv6Net = first
            .parse()
            .map_err(|_| PrefixRuleError::BadPrefix(first.to_string()))?;
        if prefix.trunc() != prefix {
            return Err(PrefixRuleError::HostBits {
                given: prefix,
                canonical: prefix.trunc(),
            });
        }
        let len = prefix.prefix_len();
        let (mut ge, mut le) = (None, None);
        while let Some(word) = words.next() {
            let slot = match word {
                "ge" if ge.is_none() && le.is_none() => &mut ge,
                "le" if le.is_none() => &mut le,
                other => return Err(PrefixRuleError::UnexpectedWord(other.to_string())),
            };
            let name = if word == "ge" { "ge" } else { "le" };
            let n: u8 = words
                .next()
                .and_then(|n| n.parse().ok())
                .filter(|n| *n <= 128)
                .ok_or(PrefixRuleError::BadLength(name))?;
            *slot = Some(n);
        }
        let (ge, le) = match (ge, le) {
            (None, None) => (len, len),
            (Some(ge), None) => (ge, 128),
            (None, Some(le)) => (len, le),
            (Some(ge), Some(le)) => (ge, le),
        };
        if !(len <= ge && ge <= le) {
            return Err(PrefixRuleError::BadRange { len, ge, le });
        }
        Ok(PrefixRule { prefix, ge, le })
    }
}

/// An allow-list: a route passes if any entry matches.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PrefixList {
    rules: Vec<PrefixRule>,
}

/// An allow-list entry that does not parse, with its position.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("entry {index} ({entry:?}): {error}")]
pub struct PrefixListError {
    /// 0-based index in the list.
    pub index: usize,
    /// The entry as written.
    pub entry: String,
    /// What is wrong with it.
    pub error: PrefixRuleError,
}

impl PrefixList {
    /// Parses every entry; the first bad one is the error.
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<PrefixList, PrefixListError> {
        let rules = entries
            .iter()
            .enumerate()
            .map(|(index, e)| {
                e.as_ref().parse().map_err(|error| PrefixListError {
                    index,
                    entry: e.as_ref().to_string(),
                    error,
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(PrefixList { rules })
    }

    /// A list of these rules.
    pub fn new(rules: Vec<PrefixRule>) -> PrefixList {
        PrefixList { rules }
    }

    /// The entries.
    pub fn rules(&self) -> &[PrefixRule] {
        &self.rules
    }

    /// The first entry that matches `p`.
    pub fn matching(&self, p: &Ipv6Net) -> Option<&PrefixRule> {
        self.rules.iter().find(|r| r.matches(p))
    }

    /// Whether an entry matches `p`.
    pub fn matches(&self, p: &Ipv6Net) -> bool {
        self.matching(p).is_some()
    }
}

/// Why a route was not accepted into the Adj-RIB-In. Every variant is
/// counted per peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum RejectReason {
    /// An import list is configured and no entry matches.
    NotInImportList,
    /// Accepting it would exceed the peer's max-prefixes.
    MaxPrefixes,
    /// A martian prefix (unspecified, loopback, IPv4-mapped, link-local,
    /// multicast).
    Martian,
    /// The next hop is an IPv4-mapped address.
    NextHopIpv4Mapped,
    /// The next hop is link-local only and the session has no interface.
    NextHopLinkLocalWithoutInterface,
    /// The next hop is multicast or loopback.
    NextHopInvalid,
    /// Our own AS is in the AS_PATH (RFC 4271 section 9.1.2).
    AsPathLoop,
    /// An external peer's AS_PATH does not start with its AS (RFC 4271
    /// section 6.3).
    FirstAsNotPeer,
    /// A family that is not negotiated (GoBGP's IPv4 routes).
    FamilyNotNegotiated,
}

impl RejectReason {
    /// Every reason, in counter order.
    pub const ALL: [RejectReason; 9] = [
        RejectReason::NotInImportList,
        RejectReason::MaxPrefixes,
        RejectReason::Martian,
        RejectReason::NextHopIpv4Mapped,
        RejectReason::NextHopLinkLocalWithoutInterface,
        RejectReason::NextHopInvalid,
        RejectReason::AsPathLoop,
        RejectReason::FirstAsNotPeer,
        RejectReason::FamilyNotNegotiated,
    ];

    /// Index into per-reason counters.
    pub fn index(self) -> usize {
        self as usize
    }

    /// A stable name for counters and JSON.
    pub fn name(self) -> &'static str {
        match self {
            RejectReason::NotInImportList => "not_in_import_list",
            RejectReason::MaxPrefixes => "max_prefixes",
            RejectReason::Martian => "martian",
            RejectReason::NextHopIpv4Mapped => "next_hop_ipv4_mapped",
            RejectReason::NextHopLinkLocalWithoutInterface => "next_hop_link_local_no_interface",
            RejectReason::NextHopInvalid => "next_hop_invalid",
            RejectReason::AsPathLoop => "as_path_loop",
            RejectReason::FirstAsNotPeer => "first_as_not_peer",
            RejectReason::FamilyNotNegotiated => "family_not_negotiated",
        }
    }
}

impl fmt::Display for RejectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RejectReason::NotInImportList => "no entry of the import list matches",
            RejectReason::MaxPrefixes => "the peer's max-prefixes would be exceeded",
            RejectReason::Martian => "martian prefix",
            RejectReason::NextHopIpv4Mapped => "next hop is an IPv4-mapped address",
            RejectReason::NextHopLinkLocalWithoutInterface => {
                "next hop is link-local and the session has no interface"
            }
            RejectReason::NextHopInvalid => "next hop is multicast or loopback",
            RejectReason::AsPathLoop => "our AS is in the AS_PATH",
            RejectReason::FirstAsNotPeer => "AS_PATH does not start with the peer's AS",
            RejectReason::FamilyNotNegotiated => "address family not negotiated",
        })
    }
}

/// Martian prefixes: nothing inside these is routable.
const MARTIANS: [(Ipv6Addr, u8); 5] = [
    (Ipv6Addr::UNSPECIFIED, 128),
    (Ipv6Addr::LOCALHOST, 128),
    (Ipv6Addr::new(0, 0, 0, 0, 0, 0xffff, 0, 0), 96),
    (Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0), 10),
    (Ipv6Addr::new(0xff00, 0, 0, 0, 0, 0, 0, 0), 8),
];

/// Whether `p` is a martian (inside one of the blocks above; `::/0` and
/// other covering prefixes are not).
pub fn is_martian(p: &Ipv6Net) -> bool {
    MARTIANS
        .iter()
        .any(|&(addr, len)| Ipv6Net::new(addr, len).is_ok_and(|m| m.contains(p)))
}

fn is_link_local(a: &Ipv6Addr) -> bool {
    a.segments()[0] & 0xffc0 == 0xfe80
}

/// The next hop a route is installed with: an address, and the
/// interface for a link-local one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ResolvedNextHop {
    /// The address.
    pub addr: Ipv6Addr,
    /// The interface (index) a link-local address is reached through.
    pub ifindex: Option<u32>,
}

/// Applies the next-hop rules of the module docs to a received MP_REACH
/// next hop; `peer` is the session's remote address and `ifindex` its
/// interface, if known.
pub fn resolve_next_hop(
    nh: &Ipv6NextHop,
    peer: Ipv6Addr,
    ifindex: Option<u32>,
) -> Result<ResolvedNextHop, RejectReason> {
    let link_local = |addr: Ipv6Addr| match ifindex {
        Some(i) => Ok(ResolvedNextHop {
            addr,
            ifindex: Some(i),
        }),
        None => Err(RejectReason::NextHopLinkLocalWithoutInterface),
    };
    let global = nh.global;
    if global.is_unspecified() {
        return match nh.link_local {
            Some(ll) if is_link_local(&ll) => link_local(ll),
            _ if is_link_local(&peer) => link_local(peer),
            _ => Ok(ResolvedNextHop {
                addr: peer,
                ifindex: None,
            }),
        };
    }
    if global.to_ipv4_mapped().is_some() {
        return Err(RejectReason::NextHopIpv4Mapped);
    }
    if global.is_multicast() || global.is_loopback() {
        return Err(RejectReason::NextHopInvalid);
    }
    if is_link_local(&global) {
        return link_local(global);
    }
    Ok(ResolvedNextHop {
        addr: global,
        ifindex: None,
    })
}

/// A peer's import policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportPolicy {
    /// The allow-list; `None` accepts every (non-martian) prefix.
    pub allow: Option<PrefixList>,
    /// At most this many accepted prefixes; exceeding it tears the session
    /// down.
    pub max_prefixes: Option<u32>,
    /// The degree of preference (RFC 4271 section 9.1.1) of the peer's
    /// routes: LOCAL_PREF for external peers, and for internal ones whose
    /// UPDATE has none.
    pub local_pref: u32,
}

impl Default for ImportPolicy {
    fn default() -> Self {
        ImportPolicy {
            allow: None,
            max_prefixes: None,
            local_pref: 100,
        }
    }
}

impl ImportPolicy {
    /// The per-prefix checks: martians, then the allow-list.
    pub fn check_prefix(&self, p: &Ipv6Net) -> Result<(), RejectReason> {
        if is_martian(p) {
            return Err(RejectReason::Martian);
        }
        match &self.allow {
            Some(list) if !list.matches(p) => Err(RejectReason::NotInImportList),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> Ipv6Net {
        s.parse().unwrap()
    }

    fn rule(s: &str) -> PrefixRule {
        s.parse().unwrap()
    }

    #[test]
    fn parse_forms() {
        let r = rule("2001:db8:100::/40");
        assert_eq!((r.ge, r.le), (40, 40));
        let r = rule("2001:db8:100::/40 le 64");
        assert_eq!((r.prefix, r.ge, r.le), (net("2001:db8:100::/40"), 40, 64));
        let r = rule("2001:db8:100::/40 ge 48");
        assert_eq!((r.ge, r.le), (48, 128));
        let r = rule("  2001:db8:100::/40   ge 48  le 56 ");
        assert_eq!((r.ge, r.le), (48, 56));
        for s in [
            "2001:db8:100::/40",
            "2001:db8:100::/40 le 64",
            "2001:db8:100::/40 ge 48",
            "2001:db8:100::/40 ge 48 le 56",
        ] {
            assert_eq!(rule(s).to_string(), s.trim());
        }
    }

    #[test]
    fn parse_errors() {
        use PrefixRuleError::*;
        let err = |s: &str| s.parse::<PrefixRule>().unwrap_err();
        assert_eq!(err(""), BadPrefix(String::new()));
        assert_eq!(err("10.0.0.0/8"), BadPrefix("10.0.0.0/8".into()));
        assert_eq!(err("2001:db8::/129"), BadPrefix("2001:db8::/129".into()));
        assert_eq!(err("2001:db8::"), BadPrefix("2001:db8::".into()));
        assert_eq!(
            err("2001:db8:100::1/40"),
            HostBits {
                given: net("2001:db8:100::1/40"),
                canonical: net("2001:db8:100::/40")
            }
        );
        assert_eq!(err("2001:db8::/32 lt 64"), UnexpectedWord("lt".into()));
        assert_eq!(
            err("2001:db8::/32 le 64 ge 48"),
            UnexpectedWord("ge".into())
        );
        assert_eq!(
            err("2001:db8::/32 le 64 le 64"),
            UnexpectedWord("le".into())
        );
        assert_eq!(err("2001:db8::/32 le"), BadLength("le"));
        assert_eq!(err("2001:db8::/32 ge x"), BadLength("ge"));
        assert_eq!(err("2001:db8::/32 le 129"), BadLength("le"));
        assert_eq!(
            err("2001:db8::/32 le 24"),
            BadRange {
                len: 32,
                ge: 32,
                le: 24
            }
        );
        assert_eq!(
            err("2001:db8::/32 ge 16"),
            BadRange {
                len: 32,
                ge: 16,
                le: 128
            }
        );
        assert_eq!(
            err("2001:db8::/32 ge 64 le 48"),
            BadRange {
                len: 32,
                ge: 64,
                le: 48
            }
        );
        // Messages are sentences a user can act on.
        assert_eq!(
            err("2001:db8:100::1/40").to_string(),
            "2001:db8:100::1/40 has host bits set; did you mean 2001:db8:100::/40?"
        );
        let list = PrefixList::parse(&["2001:db8::/32", "2001:db8::/32 le x"]).unwrap_err();
        assert_eq!(list.index, 1);
        assert_eq!(
            list.to_string(),
            "entry 1 (\"2001:db8::/32 le x\"): le needs a length from 0 to 128"
        );
    }

    #[test]
    fn matching() {
        let list = PrefixList::parse(&[
            "2001:db8:100::/40 le 64",
            "2001:db8:96::/112 le 128",
            "2001:db8:ffff::/48",
            "2001:db8:200::/40 ge 48 le 56",
        ])
        .unwrap();
        for yes in [
            "2001:db8:100::/40",
            "2001:db8:100::/64",
            "2001:db8:1ff:ffff::/64",
            "2001:db8:96::10/128",
            "2001:db8:ffff::/48",
            "2001:db8:200::/48",
            "2001:db8:2ff:ff00::/56",
        ] {
            assert!(list.matches(&net(yes)), "{yes}");
        }
        for no in [
            "2001:db8:100::/39",
            "2001:db8:100::/65",
            "2001:db8:300::/48",
            "2001:db8:97::/112",
            "2001:db8:ffff::/49",
            "2001:db8:200::/40",
            "2001:db8:200::/57",
            "::/0",
        ] {
            assert!(!list.matches(&net(no)), "{no}");
        }
    }

    #[test]
    fn import_policy_default_deny_once_a_list_is_given() {
        let open = ImportPolicy::default();
        assert_eq!(open.check_prefix(&net("2001:db8:1::/64")), Ok(()));
        assert_eq!(open.check_prefix(&net("::/0")), Ok(()));
        let listed = ImportPolicy {
            allow: Some(PrefixList::parse(&["2001:db8:100::/40 le 64"]).unwrap()),
            ..ImportPolicy::default()
        };
        assert_eq!(listed.check_prefix(&net("2001:db8:100::/64")), Ok(()));
        assert_eq!(
            listed.check_prefix(&net("2001:db8:1::/64")),
            Err(RejectReason::NotInImportList)
        );
        let empty = ImportPolicy {
            allow: Some(PrefixList::default()),
            ..ImportPolicy::default()
        };
        assert_eq!(
            empty.check_prefix(&net("2001:db8:100::/64")),
            Err(RejectReason::NotInImportList)
        );
    }

    #[test]
    fn martians() {
        for m in [
            "::/128",
            "::1/128",
            "::ffff:0:0/96",
            "::ffff:10.0.0.0/104",
            "fe80::/10",
            "fe80::/64",
            "ff02::1/128",
            "ff00::/8",
        ] {
            assert!(is_martian(&net(m)), "{m}");
            assert_eq!(
                ImportPolicy::default().check_prefix(&net(m)),
                Err(RejectReason::Martian)
            );
        }
        for ok in ["::/0", "::/1", "2001:db8::/32", "fc00::/7", "::2/128"] {
            assert!(!is_martian(&net(ok)), "{ok}");
        }
    }

    fn nh(global: &str, link_local: Option<&str>) -> Ipv6NextHop {
        Ipv6NextHop {
            global: global.parse().unwrap(),
            link_local: link_local.map(|l| l.parse().unwrap()),
        }
    }

    #[test]
    fn next_hop_rules() {
        let peer: Ipv6Addr = "2001:db8:1::2".parse().unwrap();
        let ll_peer: Ipv6Addr = "fe80::2".parse().unwrap();
        let ok = |addr: &str, ifindex| {
            Ok(ResolvedNextHop {
                addr: addr.parse().unwrap(),
                ifindex,
            })
        };
        // Global: used as is, also with a link-local beside it.
        assert_eq!(
            resolve_next_hop(&nh("2001:db8:1::3", None), peer, Some(4)),
            ok("2001:db8:1::3", None)
        );
        assert_eq!(
            resolve_next_hop(&nh("2001:db8:1::3", Some("fe80::3")), peer, Some(4)),
            ok("2001:db8:1::3", None)
        );
        // Unspecified: the peer's address (with the interface if it is
        // link-local), or the link-local beside it.
        assert_eq!(
            resolve_next_hop(&nh("::", None), peer, None),
            ok("2001:db8:1::2", None)
        );
        assert_eq!(
            resolve_next_hop(&nh("::", None), ll_peer, Some(7)),
            ok("fe80::2", Some(7))
        );
        assert_eq!(
            resolve_next_hop(&nh("::", Some("fe80::9")), peer, Some(7)),
            ok("fe80::9", Some(7))
        );
        // Link-local only: with the session's interface, or rejected.
        assert_eq!(
            resolve_next_hop(&nh("fe80::3", None), peer, Some(4)),
            ok("fe80::3", Some(4))
        );
        assert_eq!(
            resolve_next_hop(&nh("fe80::3", None), peer, None),
            Err(RejectReason::NextHopLinkLocalWithoutInterface)
        );
        // Rejected outright.
        assert_eq!(
            resolve_next_hop(&nh("::ffff:10.0.0.1", None), peer, Some(4)),
            Err(RejectReason::NextHopIpv4Mapped)
        );
        assert_eq!(
            resolve_next_hop(&nh("ff02::1", None), peer, Some(4)),
            Err(RejectReason::NextHopInvalid)
        );
        assert_eq!(
            resolve_next_hop(&nh("::1", None), peer, Some(4)),
            Err(RejectReason::NextHopInvalid)
        );
    }

    #[test]
    fn reason_names_are_distinct() {
        let mut names: Vec<_> = RejectReason::ALL.iter().map(|r| r.name()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), RejectReason::ALL.len());
        for (i, r) in RejectReason::ALL.iter().enumerate() {
            assert_eq!(r.index(), i);
        }
    }
}
