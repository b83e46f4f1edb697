//! The router's own IPv6 addresses, per interface (`getifaddrs(3)`, which
//! glibc answers from an `RTM_GETADDR` netlink dump). The daemon re-reads
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
}

/// Global unicast IPv6 addresses by interface name (link-local, loopback
/// and multicast left out), each interface's sorted.
pub fn global_addrs() -> std::io::Result<BTreeMap<String, Vec<IfAddr>>> {
    let mut out: BTreeMap<String, Vec<IfAddr>> = BTreeMap::new();
    for ifa in nix::ifaddrs::getifaddrs().map_err(std::io::Error::from)? {
        let Some(addr) = ifa.address.as_ref().and_then(|a| a.as_sockaddr_in6()) else {
            continue;
        };
        let addr = addr.ip();
        if !is_global(addr) {
            continue;
        }
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
        out.entry(ifa.interface_name)
            .or_default()
            .push(IfAddr { addr, subnet });
    }
    for v in out.values_mut() {
        v.sort();
        v.dedup();
    }
    Ok(out)
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
}
