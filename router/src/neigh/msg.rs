//! rtnetlink messages: building requests and parsing the link and
//! neighbour messages flatedge needs (safe, by hand: a few fixed headers
//! and TLV attributes).

use std::net::Ipv6Addr;

pub(crate) const NLMSG_ERROR: u16 = 2;
pub(crate) const NLMSG_DONE: u16 = 3;
pub(crate) const RTM_NEWLINK: u16 = 16;
pub(crate) const RTM_DELLINK: u16 = 17;
pub(crate) const RTM_GETLINK: u16 = 18;
pub(crate) const RTM_NEWNEIGH: u16 = 28;
pub(crate) const RTM_DELNEIGH: u16 = 29;
pub(crate) const RTM_GETNEIGH: u16 = 30;
pub(crate) const RTM_NEWADDR: u16 = 20;
pub(crate) const RTM_DELADDR: u16 = 21;

pub(crate) const NLM_F_REQUEST: u16 = 0x1;
pub(crate) const NLM_F_ACK: u16 = 0x4;
pub(crate) const NLM_F_DUMP: u16 = 0x300;
/// The dump was interrupted by a change: its content may be inconsistent.
pub(crate) const NLM_F_DUMP_INTR: u16 = 0x10;
pub(crate) const NLM_F_REPLACE: u16 = 0x100;
pub(crate) const NLM_F_CREATE: u16 = 0x400;
const NLM_F_CAPPED: u16 = 0x100;
const NLM_F_ACK_TLVS: u16 = 0x200;
const NLMSGERR_ATTR_MSG: u16 = 1;

/// `RTMGRP_LINK | RTMGRP_NEIGH | RTMGRP_IPV6_IFADDR`.
pub(crate) const GROUPS: u32 = 0x1 | 0x4 | 0x100;

const IFLA_ADDRESS: u16 = 1;
const IFLA_IFNAME: u16 = 3;
const IFLA_MTU: u16 = 4;
const IFLA_OPERSTATE: u16 = 16;
const IFLA_CARRIER: u16 = 33;
const IFF_UP: u32 = 0x1;
const IFF_LOWER_UP: u32 = 0x1_0000;

const NDA_DST: u16 = 1;
const NDA_LLADDR: u16 = 2;
const NDA_FLAGS_EXT: u16 = 15;
/// `ndm_flags`: kick resolution now.
pub(crate) const NTF_USE: u8 = 0x01;
/// `ndm_flags`: a proxy entry (answered for another host), not a
/// neighbour.
pub(crate) const NTF_PROXY: u8 = 0x08;
/// `NDA_FLAGS_EXT`: the kernel keeps the entry resolved (Linux 5.16+).
pub(crate) const NTF_EXT_MANAGED: u32 = 0x1;

const NLMSG_HDRLEN: usize = 16;
const AF_INET6: u8 = 10;

fn align4(n: usize) -> usize {
    (n + 3) & !3
}

fn u16_at(b: &[u8], off: usize) -> u16 {
    u16::from_ne_bytes([b[off], b[off + 1]])
}

fn u32_at(b: &[u8], off: usize) -> u32 {
    u32::from_ne_bytes([b[off], b[off + 1], b[off + 2], b[off + 3]])
}

/// A request under construction (header length fixed up by `finish`).
pub(crate) struct Builder {
    buf: Vec<u8>,
}

impl Builder {
    pub(crate) fn new(ty: u16, flags: u16, seq: u32) -> Builder {
        let mut buf = Vec::with_capacity(64);
        buf.extend_from_slice(&0u32.to_ne_bytes());
        buf.extend_from_slice(&ty.to_ne_bytes());
        buf.extend_from_slice(&flags.to_ne_bytes());
        buf.extend_from_slice(&seq.to_ne_bytes());
        buf.extend_from_slice(&0u32.to_ne_bytes());
        Builder { buf }
    }

    pub(crate) fn bytes(mut self, b: &[u8]) -> Builder {
        self.buf.extend_from_slice(b);
        while self.buf.len() % 4 != 0 {
            self.buf.push(0);
        }
        self
    }

    pub(crate) fn attr(mut self, ty: u16, payload: &[u8]) -> Builder {
        let len = (4 + payload.len()) as u16;
        self.buf.extend_from_slice(&len.to_ne_bytes());
        self.buf.extend_from_slice(&ty.to_ne_bytes());
        self.bytes(payload)
    }

    pub(crate) fn finish(mut self) -> Vec<u8> {
        let len = self.buf.len() as u32;
        self.buf[0..4].copy_from_slice(&len.to_ne_bytes());
        self.buf
    }
}

/// `struct ndmsg` (12 bytes).
pub(crate) fn ndmsg(ifindex: u32, state: u16, flags: u8) -> [u8; 12] {
    let mut m = [0u8; 12];
    m[0] = AF_INET6;
    m[4..8].copy_from_slice(&ifindex.to_ne_bytes());
    m[8..10].copy_from_slice(&state.to_ne_bytes());
    m[10] = flags;
    m
}

/// A dump request for all IPv6 neighbours.
pub(crate) fn dump_neigh(seq: u32) -> Vec<u8> {
    Builder::new(RTM_GETNEIGH, NLM_F_REQUEST | NLM_F_DUMP, seq)
        .bytes(&ndmsg(0, 0, 0))
        .finish()
}

/// A dump request for all links (`struct ifinfomsg`, 16 bytes, AF_UNSPEC).
pub(crate) fn dump_link(seq: u32) -> Vec<u8> {
    Builder::new(RTM_GETLINK, NLM_F_REQUEST | NLM_F_DUMP, seq)
        .bytes(&[0u8; 16])
        .finish()
}

/// `RTM_NEWNEIGH` asking the kernel to resolve `addr` on `ifindex`:
/// managed (`NDA_FLAGS_EXT` = `NTF_EXT_MANAGED`, with `NTF_USE` too) or
/// `NUD_NONE` + `NTF_USE`.
pub(crate) fn resolve_neigh(seq: u32, addr: Ipv6Addr, ifindex: u32, managed: bool) -> Vec<u8> {
    let flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE;
    let b = Builder::new(RTM_NEWNEIGH, flags, seq);
    if managed {
        b.bytes(&ndmsg(ifindex, 0, NTF_USE))
            .attr(NDA_DST, &addr.octets())
            .attr(NDA_FLAGS_EXT, &NTF_EXT_MANAGED.to_ne_bytes())
            .finish()
    } else {
        b.bytes(&ndmsg(ifindex, 0, NTF_USE))
            .attr(NDA_DST, &addr.octets())
            .finish()
    }
}

/// `RTM_DELNEIGH` removing the entry of `addr` on `ifindex`.
pub(crate) fn delete_neigh(seq: u32, addr: Ipv6Addr, ifindex: u32) -> Vec<u8> {
    Builder::new(RTM_DELNEIGH, NLM_F_REQUEST | NLM_F_ACK, seq)
        .bytes(&ndmsg(ifindex, 0, 0))
        .attr(NDA_DST, &addr.octets())
        .finish()
}

/// One netlink message of a datagram.
#[derive(Debug)]
pub(crate) struct Msg<'a> {
    pub(crate) ty: u16,
    pub(crate) flags: u16,
    pub(crate) seq: u32,
    pub(crate) payload: &'a [u8],
}

/// The messages of one datagram (stops at the first malformed one).
pub(crate) fn messages(mut b: &[u8]) -> Vec<Msg<'_>> {
    let mut out = Vec::new();
    while b.len() >= NLMSG_HDRLEN {
        let len = u32_at(b, 0) as usize;
        if len < NLMSG_HDRLEN || len > b.len() {
            break;
        }
        out.push(Msg {
            ty: u16_at(b, 4),
            flags: u16_at(b, 6),
            seq: u32_at(b, 8),
            payload: &b[NLMSG_HDRLEN..len],
        });
        b = &b[align4(len).min(b.len())..];
    }
    out
}

/// Attributes (type with the nested/byte-order bits masked, payload).
fn attrs(mut b: &[u8]) -> Vec<(u16, &[u8])> {
    let mut out = Vec::new();
    while b.len() >= 4 {
        let len = u16_at(b, 0) as usize;
        if len < 4 || len > b.len() {
            break;
        }
        out.push((u16_at(b, 2) & 0x3fff, &b[4..len]));
        b = &b[align4(len).min(b.len())..];
    }
    out
}

/// An `NLMSG_ERROR` payload: errno (0 = ack) and the extack message.
/// The errno an `NLMSG_DONE` carries (0: the dump is complete). A dump
/// that failed part way ends with a DONE whose payload is the negative
/// errno.
pub(crate) fn done_errno(m: &Msg<'_>) -> i32 {
    match m.payload.get(..4) {
        Some(p) => -i32::from_ne_bytes([p[0], p[1], p[2], p[3]]).min(0),
        None => 0,
    }
}

pub(crate) fn error(m: &Msg<'_>) -> (i32, Option<String>) {
    let p = m.payload;
    if p.len() < 4 {
        // Not an ack: an ack carries its 0.
        return (
            -libc::EPROTO,
            Some("truncated netlink error message".to_string()),
        );
    }
    let err = i32::from_ne_bytes([p[0], p[1], p[2], p[3]]);
    let mut text = None;
    if m.flags & NLM_F_ACK_TLVS != 0 && p.len() >= 4 + NLMSG_HDRLEN {
        let orig_len = u32_at(p, 4) as usize;
        let skip = if m.flags & NLM_F_CAPPED != 0 {
            4 + NLMSG_HDRLEN
        } else {
            4 + align4(orig_len)
        };
        if skip <= p.len() {
            for (ty, v) in attrs(&p[skip..]) {
                if ty == NLMSGERR_ATTR_MSG {
                    let s = v.split(|&c| c == 0).next().unwrap_or_default();
                    text = Some(String::from_utf8_lossy(s).into_owned());
                }
            }
        }
    }
    (err, text)
}

/// What an `RTM_NEWLINK` says about one link.
#[derive(Debug, Clone)]
pub(crate) struct LinkMsg {
    pub(crate) ifindex: u32,
    pub(crate) name: String,
    pub(crate) mac: Option<[u8; 6]>,
    pub(crate) mtu: u32,
    pub(crate) admin_up: bool,
    pub(crate) carrier: bool,
    pub(crate) oper_state: u8,
}

pub(crate) fn parse_link(p: &[u8]) -> Option<LinkMsg> {
    // `ifi_family`: AF_UNSPEC for the link itself. The bridge sends
    // AF_BRIDGE messages about its ports (an RTM_DELLINK when a port
    // leaves it) that are not about the link existing.
    if p.len() < 16 || p[0] != libc::AF_UNSPEC as u8 {
        return None;
    }
    let ifindex = u32_at(p, 4);
    let flags = u32_at(p, 8);
    let mut l = LinkMsg {
        ifindex,
        name: String::new(),
        mac: None,
        mtu: 0,
        admin_up: flags & IFF_UP != 0,
        carrier: flags & IFF_LOWER_UP != 0,
        oper_state: 0,
    };
    for (ty, v) in attrs(&p[16..]) {
        match ty {
            IFLA_IFNAME => {
                let s = v.split(|&c| c == 0).next().unwrap_or_default();
                l.name = String::from_utf8_lossy(s).into_owned();
            }
            IFLA_ADDRESS if v.len() == 6 => l.mac = v.try_into().ok(),
            IFLA_MTU if v.len() >= 4 => l.mtu = u32_at(v, 0),
            IFLA_OPERSTATE if !v.is_empty() => l.oper_state = v[0],
            IFLA_CARRIER if !v.is_empty() => l.carrier = l.carrier && v[0] != 0,
            _ => {}
        }
    }
    Some(l)
}

/// What an `RTM_NEWNEIGH`/`RTM_DELNEIGH` says about one IPv6 neighbour.
#[derive(Debug, Clone)]
pub(crate) struct NeighMsg {
    pub(crate) addr: Ipv6Addr,
    pub(crate) ifindex: u32,
    pub(crate) state: u16,
    pub(crate) mac: Option<[u8; 6]>,
    pub(crate) managed: bool,
}

/// `None` for other families, proxies and malformed messages.
pub(crate) fn parse_neigh(p: &[u8]) -> Option<NeighMsg> {
    // ndmsg: family, pad, pad, ifindex, state, flags (byte 10), type.
    if p.len() < 12 || p[0] != AF_INET6 || p[10] & NTF_PROXY != 0 {
        return None;
    }
    let mut addr = None;
    let mut mac = None;
    let mut managed = false;
    for (ty, v) in attrs(&p[12..]) {
        match ty {
            NDA_DST if v.len() == 16 => {
                let o: [u8; 16] = v.try_into().ok()?;
                addr = Some(Ipv6Addr::from(o));
            }
            NDA_LLADDR if v.len() == 6 => mac = v.try_into().ok(),
            NDA_FLAGS_EXT if v.len() >= 4 => managed = u32_at(v, 0) & NTF_EXT_MANAGED != 0,
            _ => {}
        }
    }
    Some(NeighMsg {
        addr: addr?,
        ifindex: u32_at(p, 4),
        state: u16_at(p, 8),
        mac,
        managed,
    })
}

#[cfg(test)]
mod tests {
    use super::parse_link;

    /// An `ifinfomsg` of `family` for ifindex 7, up with carrier.
    fn ifinfomsg(family: u8) -> Vec<u8> {
        let mut p = vec![0u8; 16];
        p[0] = family;
        p[4..8].copy_from_slice(&7u32.to_ne_bytes());
        let flags = (libc::IFF_UP | libc::IFF_LOWER_UP) as u32;
        p[8..12].copy_from_slice(&flags.to_ne_bytes());
        p
    }

    #[test]
    fn a_done_carries_the_dump_errno() {
        let zero = 0i32.to_ne_bytes();
        let nobufs = (-libc::ENOBUFS).to_ne_bytes();
        for (payload, want) in [(&[][..], 0), (&zero[..], 0), (&nobufs[..], libc::ENOBUFS)] {
            let done = super::Msg {
                ty: super::NLMSG_DONE,
                flags: 0,
                seq: 1,
                payload,
            };
            assert_eq!(super::done_errno(&done), want, "{payload:?}");
        }
    }

    #[test]
    fn a_truncated_error_is_not_an_ack() {
        let ack = 0i32.to_ne_bytes();
        let msg = |payload| super::Msg {
            ty: super::NLMSG_ERROR,
            flags: 0,
            seq: 1,
            payload,
        };
        assert_eq!(super::error(&msg(&ack[..])).0, 0);
        assert_eq!(super::error(&msg(&ack[..2])).0, -libc::EPROTO);
        assert_eq!(super::error(&msg(&[])).0, -libc::EPROTO);
    }

    #[test]
    fn proxy_entries_are_not_neighbours() {
        // ndmsg for 2001:db8::5 on ifindex 3, REACHABLE, and its NDA_DST.
        let mut p = vec![0u8; 12];
        p[0] = libc::AF_INET6 as u8;
        p[4..8].copy_from_slice(&3u32.to_ne_bytes());
        p[8..10].copy_from_slice(&0x02u16.to_ne_bytes());
        p.extend_from_slice(&20u16.to_ne_bytes());
        p.extend_from_slice(&super::NDA_DST.to_ne_bytes());
        p.extend_from_slice(
            &"2001:db8::5"
                .parse::<std::net::Ipv6Addr>()
                .unwrap()
                .octets(),
        );
        let n = super::parse_neigh(&p).expect("a neighbour");
        assert_eq!((n.ifindex, n.state), (3, 0x02));
        p[10] = super::NTF_PROXY;
        assert!(super::parse_neigh(&p).is_none(), "a proxy entry");
    }

    #[test]
    fn bridge_family_link_messages_are_not_about_the_link() {
        let l = parse_link(&ifinfomsg(libc::AF_UNSPEC as u8)).expect("a link message");
        assert_eq!(l.ifindex, 7);
        assert!(l.admin_up && l.carrier);
        // What the bridge sends when a port leaves it (RTM_DELLINK).
        assert!(parse_link(&ifinfomsg(libc::AF_BRIDGE as u8)).is_none());
    }
}
