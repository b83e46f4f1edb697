//! `icmp6_error`: turn an exception into an RFC 4443 error, in place.
//!
//! The error is written over the frame that caused it: the original IPv6
//! packet is moved 48 bytes up (cut so the whole error is at most 1280
//! bytes, the IPv6 minimum MTU) and a new IPv6 header and ICMPv6 header
//! go in front, with the Ethernet addresses swapped so it goes back to the
//! neighbour it came from. The ICMPv6 message is a
//! `smoltcp::wire::Icmpv6Packet` over those bytes with `fill_checksum`:
//! the quoted packet stays byte for byte what arrived (an `Icmpv6Repr`
//! would re-emit it and lose its traffic class and flow label).
//!
//! Never sent (a counted drop instead), RFC 4443 section 2.4 (e): in reply
//! to an ICMPv6 error or a Redirect (or to a packet whose upper-layer
//! header cannot be found behind its extension headers), to a multicast or
//! unspecified source, or to a packet sent to a multicast address or as a
//! link-layer multicast (except Packet Too Big, which path MTU discovery
//! for multicast needs; `ip6_input` drops link-layer multicast anyway); when the
//! ingress port has no router address to send from; when the per-worker
//! [`TokenBucket`] is empty.

use std::net::Ipv6Addr;

use smoltcp::wire::{Icmpv6Message, Icmpv6Packet, IpProtocol, Ipv6Packet};

use super::ip6_input::{addr_at, ETHERTYPE_IPV6, ETH_HLEN, IP6_HLEN, OFF_DST, OFF_SRC};
use super::ip6_lookup::find_l4;
use super::verdict::{DropReason, IcmpKind, Verdict};
use super::Packet;

/// The IPv6 minimum MTU: an error never exceeds it.
pub const MAX_ERROR_LEN: usize = 1280;
/// ICMPv6 header length (type, code, checksum, 4 bytes of message body).
const ICMP_HLEN: usize = 8;
/// Hop limit of the errors we send.
pub const ERROR_HOP_LIMIT: u8 = 64;
const NH_ICMPV6: u8 = 58;
/// ICMPv6 Redirect (RFC 4861): informational, but never answered (RFC 4443 2.4 e.2).
const ICMP_REDIRECT: u8 = 137;

/// A token bucket: `rate` tokens a second, at most `burst` saved. The
/// caller passes the time (any monotonic nanosecond clock); there is no
/// clock inside. One per worker, so no sharing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenBucket {
    rate: u64,
    burst: u64,
    /// Tokens times 10^9 (a token is 10^9 nanotokens: elapsed ns * rate).
    nanotokens: u64,
    last_ns: u64,
}

const NANO: u64 = 1_000_000_000;

impl TokenBucket {
    /// A full bucket at time `now_ns`.
    pub fn new(rate_per_sec: u64, burst: u64, now_ns: u64) -> Self {
        TokenBucket {
            rate: rate_per_sec,
            burst,
            nanotokens: burst.saturating_mul(NANO),
            last_ns: now_ns,
        }
    }

    /// Takes one token if there is one.
    #[inline]
    pub fn allow(&mut self, now_ns: u64) -> bool {
        let elapsed = now_ns.saturating_sub(self.last_ns);
        self.last_ns = self.last_ns.max(now_ns);
        self.nanotokens = self
            .nanotokens
            .saturating_add(elapsed.saturating_mul(self.rate))
            .min(self.burst.saturating_mul(NANO));
        if self.nanotokens >= NANO {
            self.nanotokens -= NANO;
            true
        } else {
            false
        }
    }
}

/// Why no error may be sent for this packet, if any (RFC 4443 2.4 e).
#[inline]
fn suppressed(b: &[u8], kind: IcmpKind) -> Option<DropReason> {
    let src = addr_at(b, OFF_SRC);
    let dst = addr_at(b, OFF_DST);
    if src >> 120 == 0xff || src == 0 {
        return Some(DropReason::IcmpErrorForMulticast);
    }
    let ptb = matches!(kind, IcmpKind::PacketTooBig { .. });
    if !ptb && (dst >> 120 == 0xff || b[0] & 1 == 1) {
        return Some(DropReason::IcmpErrorForMulticast);
    }
    let l4 = find_l4(b, b.len());
    match (l4.proto, l4.off) {
        // Informational messages are types 128-255, but a Redirect (e.2).
        (NH_ICMPV6, Some(o)) if o < b.len() && b[o] >= 128 && b[o] != ICMP_REDIRECT => None,
        // An error or a Redirect, or an ICMPv6 header we cannot see.
        (NH_ICMPV6, Some(_)) => Some(DropReason::IcmpErrorForIcmpError),
        // A non-first fragment: unknown type, answer.
        (_, None) if l4.nonfirst => None,
        // The walk gave up (truncated, too many extension headers): the
        // upper layer may be an ICMPv6 error, so stay quiet.
        (_, None) => Some(DropReason::IcmpErrorForIcmpError),
        _ => None,
    }
}

/// Replaces the packet in `pkt` (checked by `ip6_input`) with the ICMPv6
/// error `kind` from `router_addr` to its source, if allowed; returns
/// `IcmpError(kind)` (the frame now holds the error, `pkt.len` its length,
/// to send out of the ingress port) or the drop.
pub fn build(
    pkt: &mut Packet<'_>,
    kind: IcmpKind,
    router_addr: Option<Ipv6Addr>,
    limiter: &mut TokenBucket,
    now_ns: u64,
) -> Verdict {
    let len = pkt.len.min(pkt.buf.len());
    if len < ETH_HLEN + IP6_HLEN {
        // Only when called without ip6_input first.
        return Verdict::Drop(DropReason::TruncatedIpv6);
    }
    if let Some(r) = suppressed(&pkt.buf[..len], kind) {
        return Verdict::Drop(r);
    }
    let Some(router_addr) = router_addr else {
        return Verdict::Drop(DropReason::IcmpNoSourceAddress);
    };
    const HDRS: usize = ETH_HLEN + IP6_HLEN + ICMP_HLEN;
    let quote = (len - ETH_HLEN)
        .min(MAX_ERROR_LEN - IP6_HLEN - ICMP_HLEN)
        .min(pkt.buf.len().saturating_sub(HDRS));
    if quote < IP6_HLEN {
        return Verdict::Drop(DropReason::IcmpNoRoom);
    }
    if !limiter.allow(now_ns) {
        return Verdict::Drop(kind.rate_limited_reason());
    }
    let total = HDRS + quote;
    let b = &mut pkt.buf[..];
    let to = Ipv6Addr::from(addr_at(b, OFF_SRC));
    let mut macs = [0u8; 12];
    macs.copy_from_slice(&b[..12]);
    b.copy_within(ETH_HLEN..ETH_HLEN + quote, HDRS);
    b[0..6].copy_from_slice(&macs[6..12]);
    b[6..12].copy_from_slice(&macs[0..6]);
    b[12..14].copy_from_slice(&ETHERTYPE_IPV6.to_be_bytes());

    let mut ip = Ipv6Packet::new_unchecked(&mut b[ETH_HLEN..total]);
    ip.set_version(6);
    ip.set_traffic_class(0);
    ip.set_flow_label(0);
    ip.set_payload_len((ICMP_HLEN + quote) as u16);
    ip.set_next_header(IpProtocol::Icmpv6);
    ip.set_hop_limit(ERROR_HOP_LIMIT);
    ip.set_src_addr(router_addr);
    ip.set_dst_addr(to);

    let icmp_bytes = &mut b[ETH_HLEN + IP6_HLEN..total];
    icmp_bytes[4..8].fill(0);
    let mut icmp = Icmpv6Packet::new_unchecked(icmp_bytes);
    match kind {
        IcmpKind::TimeExceeded => icmp.set_msg_type(Icmpv6Message::TimeExceeded),
        IcmpKind::PacketTooBig { mtu } => {
            icmp.set_msg_type(Icmpv6Message::PktTooBig);
            icmp.set_pkt_too_big_mtu(mtu);
        }
        IcmpKind::NoRoute | IcmpKind::BeyondScope => {
            icmp.set_msg_type(Icmpv6Message::DstUnreachable)
        }
    }
    icmp.set_msg_code(if kind == IcmpKind::BeyondScope { 2 } else { 0 });
    icmp.fill_checksum(&router_addr, &to);
    pkt.len = total;
    Verdict::IcmpError(kind)
}

/// Builds the errors of every packet in [`Verdict::IcmpError`]; returns
/// how many it looked at.
pub fn run(
    pkts: &mut [Packet<'_>],
    verdicts: &mut [Verdict],
    router_addr: Option<Ipv6Addr>,
    limiter: &mut TokenBucket,
    now_ns: u64,
) -> usize {
    let mut n = 0;
    for (p, v) in pkts.iter_mut().zip(verdicts.iter_mut()) {
        if let Verdict::IcmpError(kind) = *v {
            *v = build(p, kind, router_addr, limiter, now_ns);
            n += 1;
        }
    }
    n
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;

    #[test]
    fn token_bucket() {
        let mut tb = TokenBucket::new(10, 3, 1_000);
        assert!(tb.allow(1_000));
        assert!(tb.allow(1_000));
        assert!(tb.allow(1_000));
        assert!(!tb.allow(1_000));
        // 100 ms later: one token at 10/s.
        assert!(tb.allow(1_000 + 100_000_000));
        assert!(!tb.allow(1_000 + 100_000_000));
        // Long idle: back to the burst, not more.
        let t = 1_000_000_000_000;
        assert!((0..3).all(|_| tb.allow(t)));
        assert!(!tb.allow(t));
        // Time going backwards is harmless.
        assert!(!tb.allow(5));
        let mut none = TokenBucket::new(0, 0, 0);
        assert!(!none.allow(u64::MAX));
    }

    fn err_of(spec: &FrameSpec, kind: IcmpKind) -> (Verdict, Vec<u8>, Vec<u8>) {
        let orig = spec.build();
        let mut buf = orig.clone();
        buf.resize(2048, 0);
        let mut p = Packet {
            buf: &mut buf,
            len: orig.len(),
        };
        let mut tb = TokenBucket::new(1, 10, 0);
        let v = build(&mut p, kind, Some(router()), &mut tb, 0);
        let len = p.len;
        buf.truncate(len);
        (v, buf, orig)
    }

    #[test]
    fn time_exceeded_quotes_the_original() {
        let spec = FrameSpec {
            flow_label: 0x12345,
            traffic_class: 0xb8,
            ..FrameSpec::udp()
        };
        let (v, e, orig) = err_of(&spec, IcmpKind::TimeExceeded);
        assert_eq!(v, Verdict::IcmpError(IcmpKind::TimeExceeded));
        let icmp = check_error(&e, &orig, Icmpv6Message::TimeExceeded);
        assert_eq!(icmp.payload(), &orig[ETH_HLEN..]);
    }

    #[test]
    fn packet_too_big_carries_mtu_and_is_cut_to_1280() {
        let spec = FrameSpec {
            l4: L4Spec::Udp {
                sport: 5,
                dport: 6,
                payload: 1452,
            },
            ..FrameSpec::udp()
        };
        let (v, e, orig) = err_of(&spec, IcmpKind::PacketTooBig { mtu: 1400 });
        assert_eq!(v, Verdict::IcmpError(IcmpKind::PacketTooBig { mtu: 1400 }));
        assert_eq!(e.len() - ETH_HLEN, MAX_ERROR_LEN);
        let icmp = check_error(&e, &orig, Icmpv6Message::PktTooBig);
        assert_eq!(icmp.pkt_too_big_mtu(), 1400);
        assert_eq!(icmp.payload(), &orig[ETH_HLEN..ETH_HLEN + 1280 - 48]);
    }

    #[test]
    fn unreachable_no_route() {
        let (v, e, orig) = err_of(&FrameSpec::tcp(1, 2), IcmpKind::NoRoute);
        assert_eq!(v, Verdict::IcmpError(IcmpKind::NoRoute));
        let icmp = check_error(&e, &orig, Icmpv6Message::DstUnreachable);
        assert_eq!(icmp.msg_code(), 0);
    }

    /// A link-local source gets Destination Unreachable, code 2 (beyond
    /// scope of source address), as Linux answers it.
    #[test]
    fn unreachable_beyond_scope() {
        let from_link_local = FrameSpec {
            src: "fe80::7".parse().unwrap(),
            ..FrameSpec::tcp(1, 2)
        };
        let (v, e, orig) = err_of(&from_link_local, IcmpKind::BeyondScope);
        assert_eq!(v, Verdict::IcmpError(IcmpKind::BeyondScope));
        let icmp = check_error(&e, &orig, Icmpv6Message::DstUnreachable);
        assert_eq!(icmp.msg_code(), 2);
    }

    #[test]
    fn never_to_an_icmp_error_but_to_an_echo() {
        let err = FrameSpec {
            l4: L4Spec::Icmp { ty: 1, code: 4 },
            ..FrameSpec::udp()
        };
        let (v, ..) = err_of(&err, IcmpKind::TimeExceeded);
        assert_eq!(v, Verdict::Drop(DropReason::IcmpErrorForIcmpError));
        let behind_ext = FrameSpec {
            ext: vec![Ext::HopByHop, Ext::DestOpts],
            l4: L4Spec::Icmp { ty: 3, code: 0 },
            ..FrameSpec::udp()
        };
        let (v, ..) = err_of(&behind_ext, IcmpKind::NoRoute);
        assert_eq!(v, Verdict::Drop(DropReason::IcmpErrorForIcmpError));
        // Behind an extension header of the others of RFC 7045's registry.
        let behind_shim6 = FrameSpec {
            ext: vec![Ext::Shim6],
            l4: L4Spec::Icmp { ty: 1, code: 0 },
            ..FrameSpec::udp()
        };
        let (v, ..) = err_of(&behind_shim6, IcmpKind::TimeExceeded);
        assert_eq!(v, Verdict::Drop(DropReason::IcmpErrorForIcmpError));
        let echo = FrameSpec {
            l4: L4Spec::Icmp { ty: 128, code: 0 },
            ..FrameSpec::udp()
        };
        let (v, ..) = err_of(&echo, IcmpKind::TimeExceeded);
        assert_eq!(v, Verdict::IcmpError(IcmpKind::TimeExceeded));
    }

    #[test]
    fn never_to_multicast() {
        let to_group = FrameSpec {
            dst: "ff0e::1".parse().unwrap(),
            ..FrameSpec::udp()
        };
        let (v, ..) = err_of(&to_group, IcmpKind::TimeExceeded);
        assert_eq!(v, Verdict::Drop(DropReason::IcmpErrorForMulticast));
        // Packet Too Big is allowed to a multicast destination.
        let (v, ..) = err_of(&to_group, IcmpKind::PacketTooBig { mtu: 1280 });
        assert!(matches!(v, Verdict::IcmpError(_)));
        let l2_multicast = FrameSpec {
            dst_mac: [0x33, 0x33, 0, 0, 0, 1],
            ..FrameSpec::udp()
        };
        let (v, ..) = err_of(&l2_multicast, IcmpKind::NoRoute);
        assert_eq!(v, Verdict::Drop(DropReason::IcmpErrorForMulticast));
        for src in ["ff02::1", "::"] {
            let s = FrameSpec {
                src: src.parse().unwrap(),
                ..FrameSpec::udp()
            };
            let (v, ..) = err_of(&s, IcmpKind::PacketTooBig { mtu: 1280 });
            assert_eq!(v, Verdict::Drop(DropReason::IcmpErrorForMulticast));
        }
    }

    #[test]
    fn rate_limited_no_source_no_room() {
        let f = FrameSpec::udp().build();
        let mut tb = TokenBucket::new(0, 1, 0);
        let mut buf = f.clone();
        buf.resize(2048, 0);
        let mut p = Packet {
            buf: &mut buf,
            len: f.len(),
        };
        assert!(matches!(
            build(&mut p, IcmpKind::NoRoute, Some(router()), &mut tb, 0),
            Verdict::IcmpError(_)
        ));
        for (kind, reason) in [
            (IcmpKind::NoRoute, DropReason::NoRoute),
            (IcmpKind::TimeExceeded, DropReason::HopLimitExceeded),
            (
                IcmpKind::PacketTooBig { mtu: 1280 },
                DropReason::MtuExceeded,
            ),
        ] {
            let mut buf = f.clone();
            buf.resize(2048, 0);
            let mut p = Packet {
                buf: &mut buf,
                len: f.len(),
            };
            assert_eq!(
                build(&mut p, kind, Some(router()), &mut tb, 0),
                Verdict::Drop(reason)
            );
        }
        let mut buf = f.clone();
        buf.resize(2048, 0);
        let mut p = Packet {
            buf: &mut buf,
            len: f.len(),
        };
        let mut tb = TokenBucket::new(0, 1, 0);
        assert_eq!(
            build(&mut p, IcmpKind::NoRoute, None, &mut tb, 0),
            Verdict::Drop(DropReason::IcmpNoSourceAddress)
        );
        // A 62-byte buffer: no room for the headers and a quoted IPv6 header.
        let mut buf = f.clone();
        buf.truncate(ETH_HLEN + IP6_HLEN + 8);
        let len = buf.len();
        buf[ETH_HLEN + 4..ETH_HLEN + 6].copy_from_slice(&8u16.to_be_bytes());
        let mut p = Packet { buf: &mut buf, len };
        assert_eq!(
            build(&mut p, IcmpKind::NoRoute, Some(router()), &mut tb, 0),
            Verdict::Drop(DropReason::IcmpNoRoom)
        );
    }
}
