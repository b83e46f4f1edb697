//! The router's own IPv6 addresses, per interface (`getifaddrs(3)`, which
//! glibc answers from an `RTM_GETADDR` netlink dump; `if_inet6` in `/proc`
//! tells which failed duplicate address detection). The daemon re-reads
//! them every second: they feed the XDP program's own-address map (so
//! traffic for the box reaches the kernel) and the connected routes.

use std::collections::BTreeMap;
use std::net::Ipv6Addr;

use fib::Prefix;

/// One global (non-link-local) IPv6 address and its subnet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct IfAddr {
    /// The address.
    pub addr: Ipv6Addr,
    /// Its subnet (the prefix length of the address).
    pub subnet: Prefix,
    /// It failed duplicate address detection: another node on the link
    /// owns it. Not the router's (no own-address entry, no ICMPv6 source);
    /// its subnet is still the link's, as the kernel keeps the prefix
    /// route of a permanent address that failed.
    pub dad_failed: bool,
}

/// Global unicast IPv6 addresses by interface name (link-local, loopback
/// and multicast left out; addresses that failed duplicate address
/// detection marked), each interface's sorted.
pub fn global_addrs() -> std::io::Result<BTreeMap<String, Vec<IfAddr>>> {
    let mut out: BTreeMap<String, Vec<IfAddr>> = BTreeMap::new();
    // getifaddrs does not give the address flags; /proc does. Without it
    // (no /proc), nothing is marked.
    // The calling thread's namespace (`/proc/net` is the process's).
    let dad_failed: Vec<(Ipv6Addr, String)> =
        std::fs::read_to_string("/proc/thread-self/net/if_inet6")
            .map(|t| {
                parse_if_inet6(&t)
                    .filter(|&(_, _, flags)| flags & IFA_F_DADFAILED != 0)
                    .map(|(a, name, _)| (a, name))
                    .collect()
            })
            .unwrap_or_default();
    for ifa in nix::ifaddrs::getifaddrs().map_err(std::io::Error::from)? {
        let Some(addr) = ifa.address.as_ref().and_then(|a| a.as_sockaddr_in6()) else {
            continue;
        };
        let addr = addr.ip();
        if !is_global(addr) {
            continue;
        }
        let failed = dad_failed.contains(&(addr, ifa.interface_name.clone()));
        let len = ifa
            .netmask
            .as_ref()
            .and_then(|m| m.as_sockaddr_in6())
            .map(|m| u128::from(m.ip()).count_ones() as u8)
            .unwrap_or(128);
        // Prefix::new clears the host bits.
        let Ok(subnet) = Prefix::new(addr, len) else {
            continue;
        };
        out.entry(ifa.interface_name).or_default().push(IfAddr {
            addr,
            subnet,
            dad_failed: failed,
        });
    }
    for v in out.values_mut() {
        v.sort();
        v.dedup();
    }
    Ok(out)
}

/// `IFA_F_DADFAILED` in `/proc/net/if_inet6`'s flags column.
const IFA_F_DADFAILED: u8 = 0x08;

/// The lines of `/proc/net/if_inet6`: address (32 hex digits), ifindex,
/// prefix length, scope, flags (hex), interface name.
fn parse_if_inet6(text: &str) -> impl Iterator<Item = (Ipv6Addr, String, u8)> + '_ {
    text.lines().filter_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        let [hex, _, _, _, flags, name] = f[..] else {
            return None;
        };
        let addr = Ipv6Addr::from(u128::from_str_radix(hex, 16).ok()?);
        Some((addr, name.to_string(), u8::from_str_radix(flags, 16).ok()?))
    })
}

/// Whether an address is one the dataplane can use as a router address
/// or a next hop: not unspecified, loopback, multicast, link-local or
/// IPv4-mapped.
pub fn is_global(a: Ipv6Addr) -> bool {
    !(a.is_unspecified()
        || a.is_loopback()
        || a.is_multicast()
        || a.is_unicast_link_local()
        || a.to_ipv4_mapped().is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_has_no_global_address_and_subnets_clear_host_bits() {
        // `lo` carries ::1 only, which is not global.
        let addrs = global_addrs().unwrap();
        assert!(addrs
            .get("lo")
            .is_none_or(|v| v.iter().all(|a| a.addr != Ipv6Addr::LOCALHOST)));
        // The subnet of an address is its prefix with host bits cleared.
        let a: Ipv6Addr = "2001:db8:1::42".parse().unwrap();
        assert_eq!(Prefix::new(a, 64).unwrap().to_string(), "2001:db8:1::/64");
        assert_eq!(Prefix::new(a, 0).unwrap().to_string(), "::/0");
        assert_eq!(
            Prefix::new(a, 128).unwrap().to_string(),
            "2001:db8:1::42/128"
        );
        assert!(is_global("2001:db8::1".parse().unwrap()));
        for a in ["fe80::1", "::1", "::", "ff02::1", "::ffff:192.0.2.1"] {
            assert!(!is_global(a.parse().unwrap()), "{a}");
        }
    }

    /// An address another node on the link already has fails duplicate
    /// address detection, and is marked so: not the router's (its traffic
    /// is the other node's, not the kernel's), its subnet still the link's.
    #[test]
    fn an_address_that_failed_dad_is_marked() {
        let found = std::thread::spawn(|| {
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET)
                .expect("unshare(CLONE_NEWNET): the tests run as root");
            let ip = |args: &[&str]| {
                let out = std::process::Command::new("ip")
                    .args(args)
                    .output()
                    .unwrap();
                assert!(out.status.success(), "ip {args:?}: {out:?}");
            };
            ip(&["link", "add", "da", "type", "veth", "peer", "name", "db"]);
            ip(&["addr", "add", "2001:db8:9::1/64", "dev", "da", "nodad"]);
            ip(&["link", "set", "da", "up"]);
            ip(&["link", "set", "db", "up"]);
            ip(&["addr", "add", "2001:db8:9::1/64", "dev", "db"]);
            let t0 = std::time::Instant::now();
            loop {
                let text = std::fs::read_to_string("/proc/thread-self/net/if_inet6").unwrap();
                let failed = parse_if_inet6(&text)
                    .any(|(_, name, f)| name == "db" && f & IFA_F_DADFAILED != 0);
                if failed || t0.elapsed() > std::time::Duration::from_secs(10) {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            global_addrs().unwrap()
        })
        .join()
        .unwrap();
        let a: Ipv6Addr = "2001:db8:9::1".parse().unwrap();
        let on = |dev: &str| {
            found
                .get(dev)
                .and_then(|v| v.iter().find(|x| x.addr == a))
                .copied()
        };
        assert_eq!(on("da").map(|x| x.dad_failed), Some(false), "{found:?}");
        // Marked, its subnet still the link's.
        let db = on("db").expect("db's address is listed");
        assert!(db.dad_failed && db.subnet.len() == 64, "{found:?}");
    }

    #[test]
    fn if_inet6_lines_and_their_flags() {
        let text = "00000000000000000000000000000001 01 80 10 80       lo\n\
                    20010db8000100000000000000000001 04 40 00 88     k8s0\n\
                    short line\n";
        let v: Vec<_> = parse_if_inet6(text).collect();
        assert_eq!(
            v,
            [
                (Ipv6Addr::LOCALHOST, "lo".to_string(), 0x80),
                ("2001:db8:1::1".parse().unwrap(), "k8s0".to_string(), 0x88),
            ]
        );
        assert_ne!(v[1].2 & IFA_F_DADFAILED, 0);
    }
}
