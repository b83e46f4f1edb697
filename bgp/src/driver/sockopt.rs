//! The socket options BGP needs that std and tokio do not offer: TCP MD5
//! signatures (RFC 2385) and GTSM (RFC 5082). Linux only.
//!
//! This is the only module of the crate with `unsafe`: each block is one
//! `setsockopt(2)` call on a descriptor the caller owns, with a value
//! built here.
//!
//! - [`set_md5_key`]: `TCP_MD5SIG` for one peer address, or
//!   `TCP_MD5SIG_EXT` with `TCP_MD5SIG_FLAG_PREFIX` for a whole listen
//!   range (Linux 4.13+). Keys set on a listening socket apply to the
//!   SYNs it receives and are inherited by the sockets it accepts; keys
//!   set on a socket before `connect` sign that connection. A segment
//!   without a valid signature from an address with a key is dropped by
//!   the kernel (counted in `TcpExtTCPMD5Failure`/`TCPMD5NotFound`), so a
//!   wrong password shows as a peer that never connects.
//! - [`set_gtsm`]: our packets leave with hop limit 255
//!   (`IPV6_UNICAST_HOPS`), and the kernel drops the peer's packets that
//!   arrive with a hop limit below `256 - hops` (`IPV6_MINHOPCOUNT`,
//!   Linux 4.5+). [`set_unicast_hops`] sets only the first half, for a
//!   listener whose SYN-ACKs must reach GTSM peers.

#![allow(unsafe_code)]

use std::io;
use std::mem;
use std::net::Ipv6Addr;
use std::os::fd::AsRawFd;

/// Longest key Linux takes (`TCP_MD5SIG_MAXKEYLEN`).
pub const MAX_KEY_LEN: usize = 80;

/// `TCP_MD5SIG_FLAG_PREFIX` from `linux/tcp.h`.
const TCP_MD5SIG_FLAG_PREFIX: u8 = 1;

/// `struct tcp_md5sig` from `linux/tcp.h` (the libc crate does not have it).
#[repr(C)]
struct TcpMd5Sig {
    tcpm_addr: libc::sockaddr_storage,
    tcpm_flags: u8,
    tcpm_prefixlen: u8,
    tcpm_keylen: u16,
    tcpm_ifindex: libc::c_int,
    tcpm_key: [u8; MAX_KEY_LEN],
}

fn sockaddr_in6(addr: Ipv6Addr) -> libc::sockaddr_storage {
    // SAFETY: sockaddr_storage is plain old data; all zeroes is a valid
    // (AF_UNSPEC) value.
    let mut storage: libc::sockaddr_storage = unsafe { mem::zeroed() };
    // SAFETY: sockaddr_storage is larger than and aligned at least like
    // sockaddr_in6 (that is its purpose), and we write a whole
    // sockaddr_in6 into it.
    let sin6 =
        unsafe { &mut *(&mut storage as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in6>() };
    sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
    sin6.sin6_addr = libc::in6_addr {
        s6_addr: addr.octets(),
    };
    storage
}

fn setsockopt<T>(
    fd: &impl AsRawFd,
    level: libc::c_int,
    name: libc::c_int,
    value: &T,
) -> io::Result<()> {
    // SAFETY: `fd` is an open socket borrowed for the call; `value` points
    // to a live, initialised `T` of exactly the length we pass, which the
    // kernel only reads.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (value as *const T).cast::<libc::c_void>(),
            mem::size_of::<T>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Installs (or, with an empty `key`, removes) the TCP MD5 key for the
/// peers in `addr/prefix_len` on `socket`. A `prefix_len` of 128 is one
/// address (`TCP_MD5SIG`); shorter ones use `TCP_MD5SIG_EXT` with a
/// prefix. Fails with `InvalidInput` for a key longer than 80 bytes.
pub fn set_md5_key(
    socket: &impl AsRawFd,
    addr: Ipv6Addr,
    prefix_len: u8,
    key: &[u8],
) -> io::Result<()> {
    if key.len() > MAX_KEY_LEN || prefix_len > 128 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "TCP MD5 keys are at most 80 bytes, prefixes at most /128",
        ));
    }
    let mut sig = TcpMd5Sig {
        tcpm_addr: sockaddr_in6(addr),
        tcpm_flags: 0,
        tcpm_prefixlen: 0,
        tcpm_keylen: key.len() as u16,
        tcpm_ifindex: 0,
        tcpm_key: [0; MAX_KEY_LEN],
    };
    sig.tcpm_key[..key.len()].copy_from_slice(key);
    let name = if prefix_len == 128 {
        libc::TCP_MD5SIG
    } else {
        sig.tcpm_flags = TCP_MD5SIG_FLAG_PREFIX;
        sig.tcpm_prefixlen = prefix_len;
        libc::TCP_MD5SIG_EXT
    };
    setsockopt(socket, libc::IPPROTO_TCP, name, &sig)
}

/// Our packets leave with hop limit 255.
pub fn set_unicast_hops(socket: &impl AsRawFd, hops: u8) -> io::Result<()> {
    let v: libc::c_int = hops.into();
    setsockopt(socket, libc::IPPROTO_IPV6, libc::IPV6_UNICAST_HOPS, &v)
}

/// Our packets leave with the route's default hop limit again.
pub fn set_unicast_hops_default(socket: &impl AsRawFd) -> io::Result<()> {
    let v: libc::c_int = -1;
    setsockopt(socket, libc::IPPROTO_IPV6, libc::IPV6_UNICAST_HOPS, &v)
}

/// Drops what arrives with a hop limit below `min` (0: accept all).
pub fn set_min_hops(socket: &impl AsRawFd, min: u8) -> io::Result<()> {
    let v: libc::c_int = min.into();
    setsockopt(socket, libc::IPPROTO_IPV6, libc::IPV6_MINHOPCOUNT, &v)
}

/// GTSM for a peer at most `hops` hops away (1 = directly connected):
/// send with hop limit 255 and drop what arrives below `256 - hops`.
pub fn set_gtsm(socket: &impl AsRawFd, hops: u8) -> io::Result<()> {
    set_unicast_hops(socket, 255)?;
    set_min_hops(socket, (256 - u16::from(hops.max(1))) as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn struct_matches_the_kernel_layout() {
        // linux/tcp.h: 128 + 1 + 1 + 2 + 4 + 80.
        assert_eq!(mem::size_of::<TcpMd5Sig>(), 216);
    }

    #[test]
    fn options_are_accepted_by_the_kernel() {
        let s = std::net::TcpListener::bind("[::1]:0").unwrap();
        set_md5_key(&s, "2001:db8::1".parse().unwrap(), 128, b"secret").unwrap();
        set_md5_key(&s, "2001:db8:1::".parse().unwrap(), 64, b"secret").unwrap();
        set_gtsm(&s, 1).unwrap();
        set_min_hops(&s, 0).unwrap();
        set_unicast_hops_default(&s).unwrap();
        // Removing a key that is there, and one that is not.
        set_md5_key(&s, "2001:db8::1".parse().unwrap(), 128, b"").unwrap();
        assert!(set_md5_key(&s, Ipv6Addr::LOCALHOST, 128, &[0; 81]).is_err());
    }
}
