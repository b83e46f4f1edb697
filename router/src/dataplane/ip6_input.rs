//! `ip6_input`: is this frame an IPv6 packet we may forward?
//!
//! Checks, in order, each failure its own [`DropReason`]: Ethernet header
//! present, not VLAN-tagged, ethertype IPv6; IPv6 header present; sent to
//! the ingress port's own unicast MAC (not a link-layer group, not another
//! host's MAC); version 6,
//! payload length within the frame (a longer frame is Ethernet padding: the
//! packet is trimmed to `40 + payload length`); source not multicast,
//! unspecified, loopback or link-local; destination not link-local,
//! multicast, unspecified or loopback. Then a hop limit <= 1 owes a Time
//! Exceeded (the packet would expire on the way out).
//!
//! Fixed offsets over the bytes (the checks above make every later read in
//! bounds); no allocation, no panic on any input.

use super::verdict::{DropReason, IcmpKind, Verdict};
use super::Packet;

/// Ethernet header length (no VLAN tag).
pub const ETH_HLEN: usize = 14;
/// IPv6 fixed header length.
pub const IP6_HLEN: usize = 40;
/// Offset of the IPv6 header in a frame.
pub const IP6_OFF: usize = ETH_HLEN;
/// Ethertype IPv6.
pub const ETHERTYPE_IPV6: u16 = 0x86dd;
const ETHERTYPE_VLAN: u16 = 0x8100;
const ETHERTYPE_QINQ: u16 = 0x88a8;

pub(crate) const OFF_PAYLOAD_LEN: usize = IP6_OFF + 4;
pub(crate) const OFF_NEXT_HEADER: usize = IP6_OFF + 6;
pub const OFF_HOP_LIMIT: usize = IP6_OFF + 7;
pub(crate) const OFF_SRC: usize = IP6_OFF + 8;
pub const OFF_DST: usize = IP6_OFF + 24;

/// Reads a 16-byte address at `off` (caller checked the length).
#[inline]
pub(crate) fn addr_at(b: &[u8], off: usize) -> u128 {
    let mut a = [0u8; 16];
    a.copy_from_slice(&b[off..off + 16]);
    u128::from_be_bytes(a)
}

#[inline]
fn is_multicast(a: u128) -> bool {
    a >> 120 == 0xff
}

#[inline]
fn is_link_local(a: u128) -> bool {
    a >> 118 == 0xfe80 >> 6
}

/// 2000::/3, where every address forwarded normally lies.
#[inline]
fn is_global_unicast(a: u128) -> bool {
    a >> 125 == 1
}

/// IPv4-mapped (::ffff:0:0/96, RFC 4291 section 2.5.5.2).
#[inline]
fn is_mapped(a: u128) -> bool {
    a >> 32 == 0xffff
}

/// A port's MAC as [`check`] compares it: the six bytes in the low 48
/// bits. 0 (the all-zero MAC, which no interface has) means not known:
/// every unicast destination MAC is then accepted.
#[inline]
pub fn mac_key(mac: [u8; 6]) -> u64 {
    let mut k = [0u8; 8];
    k[..6].copy_from_slice(&mac);
    u64::from_le_bytes(k)
}

/// Validates one frame received on the port whose MAC is `mac` (see
/// [`mac_key`]); on success trims `pkt.len` to the IPv6 packet.
#[inline]
pub fn check(pkt: &mut Packet<'_>, mac: u64) -> Verdict {
    let len = pkt.len.min(pkt.buf.len());
    let b = &pkt.buf[..len];
    if len < ETH_HLEN {
        return Verdict::Drop(DropReason::TruncatedEthernet);
    }
    match u16::from_be_bytes([b[12], b[13]]) {
        ETHERTYPE_IPV6 => {}
        ETHERTYPE_VLAN | ETHERTYPE_QINQ => return Verdict::Drop(DropReason::VlanUnsupported),
        _ => return Verdict::Drop(DropReason::NotIpv6),
    }
    if len < ETH_HLEN + IP6_HLEN {
        return Verdict::Drop(DropReason::TruncatedIpv6);
    }
    // The group bit of the destination MAC: broadcast or multicast.
    if b[0] & 1 == 1 {
        return Verdict::Drop(DropReason::LinkLayerMulticast);
    }
    if mac != 0 && mac_key([b[0], b[1], b[2], b[3], b[4], b[5]]) != mac {
        return Verdict::Drop(DropReason::OtherHost);
    }
    if b[6] & 1 == 1 {
        return Verdict::Drop(DropReason::GroupSourceMac);
    }
    if b[IP6_OFF] >> 4 != 6 {
        return Verdict::Drop(DropReason::BadVersion);
    }
    let payload = u16::from_be_bytes([b[OFF_PAYLOAD_LEN], b[OFF_PAYLOAD_LEN + 1]]) as usize;
    let ip_end = ETH_HLEN + IP6_HLEN + payload;
    if ip_end > len {
        return Verdict::Drop(DropReason::PayloadLengthExceedsFrame);
    }
    if payload == 0 && b[OFF_NEXT_HEADER] == 0 {
        return Verdict::Drop(DropReason::JumboUnsupported);
    }
    let src = addr_at(b, OFF_SRC);
    let dst = addr_at(b, OFF_DST);
    // Global unicast (2000::/3) holds none of the addresses below: one
    // test for the common packet instead of nine.
    if !(is_global_unicast(src) && is_global_unicast(dst)) {
        if let Some(r) = martian(src, dst) {
            // A link-local source to an address that would be forwarded
            // is told (RFC 4443 3.1, code 2), after the hop limit's
            // Time Exceeded, as Linux does; to a destination that would
            // not, dropped.
            if r == DropReason::LinkLocalSource && bad_destination(dst).is_none() {
                pkt.len = ip_end;
                return Verdict::IcmpError(if b[OFF_HOP_LIMIT] <= 1 {
                    IcmpKind::TimeExceeded
                } else {
                    IcmpKind::BeyondScope
                });
            }
            return Verdict::Drop(r);
        }
    }
    // Ethernet padding (or trailing garbage) is not part of the packet.
    pkt.len = ip_end;
    if b[OFF_HOP_LIMIT] <= 1 {
        return Verdict::IcmpError(IcmpKind::TimeExceeded);
    }
    Verdict::Continue
}

/// Why a packet with these addresses is never forwarded, if it is not.
#[inline(never)]
fn martian(src: u128, dst: u128) -> Option<DropReason> {
    Some(if is_multicast(src) {
        DropReason::MulticastSource
    } else if src == 0 {
        DropReason::UnspecifiedSource
    } else if src == 1 {
        DropReason::LoopbackSource
    } else if is_mapped(src) {
        DropReason::MappedSource
    } else if is_link_local(src) {
        DropReason::LinkLocalSource
    } else {
        return bad_destination(dst);
    })
}

/// Why a packet to this destination is never forwarded, if it is not.
fn bad_destination(dst: u128) -> Option<DropReason> {
    Some(if is_link_local(dst) {
        DropReason::LinkLocalDestination
    } else if is_multicast(dst) {
        DropReason::MulticastDestination
    } else if dst <= 1 || is_mapped(dst) {
        DropReason::BadDestination
    } else {
        return None;
    })
}

/// Runs [`check`] over every packet still in [`Verdict::Continue`];
/// returns how many it looked at.
pub fn run(pkts: &mut [Packet<'_>], verdicts: &mut [Verdict], mac: u64) -> usize {
    let mut n = 0;
    for (p, v) in pkts.iter_mut().zip(verdicts.iter_mut()) {
        if *v == Verdict::Continue {
            *v = check(p, mac);
            n += 1;
        }
    }
    n
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;

    fn verdict_of(mut f: Vec<u8>) -> Verdict {
        let len = f.len();
        let mut p = Packet { buf: &mut f, len };
        check(&mut p, mac_key(ROUTER_MAC))
    }

    fn with_src(src: &str) -> Vec<u8> {
        FrameSpec {
            src: src.parse().unwrap(),
            ..FrameSpec::udp()
        }
        .build()
    }

    fn with_dst(dst: &str) -> Vec<u8> {
        FrameSpec {
            dst: dst.parse().unwrap(),
            ..FrameSpec::udp()
        }
        .build()
    }

    #[test]
    fn valid_udp_continues() {
        assert_eq!(verdict_of(FrameSpec::udp().build()), Verdict::Continue);
    }

    #[test]
    fn padding_is_trimmed() {
        let mut f = FrameSpec::udp().build();
        let ip_len = f.len();
        f.extend_from_slice(&[0; 20]);
        let len = f.len();
        let mut p = Packet { buf: &mut f, len };
        assert_eq!(check(&mut p, mac_key(ROUTER_MAC)), Verdict::Continue);
        assert_eq!(p.len, ip_len);
    }

    #[test]
    fn truncated_ethernet() {
        assert_eq!(
            verdict_of(vec![0; 13]),
            Verdict::Drop(DropReason::TruncatedEthernet)
        );
        assert_eq!(
            verdict_of(vec![]),
            Verdict::Drop(DropReason::TruncatedEthernet)
        );
    }

    #[test]
    fn vlan_and_not_ipv6() {
        let mut f = FrameSpec::udp().build();
        f[12..14].copy_from_slice(&[0x81, 0x00]);
        assert_eq!(
            verdict_of(f.clone()),
            Verdict::Drop(DropReason::VlanUnsupported)
        );
        f[12..14].copy_from_slice(&[0x08, 0x00]);
        assert_eq!(verdict_of(f), Verdict::Drop(DropReason::NotIpv6));
    }

    #[test]
    fn truncated_ipv6() {
        let mut f = FrameSpec::udp().build();
        f.truncate(ETH_HLEN + 39);
        assert_eq!(verdict_of(f), Verdict::Drop(DropReason::TruncatedIpv6));
    }

    #[test]
    fn another_hosts_mac_is_dropped() {
        let other = FrameSpec {
            dst_mac: [2, 0, 0, 0, 0, 0xfd],
            ..FrameSpec::udp()
        }
        .build();
        assert_eq!(
            verdict_of(other.clone()),
            Verdict::Drop(DropReason::OtherHost)
        );
        // Not known yet: accepted, as before the port's MAC is learnt.
        let len = other.len();
        let mut f = other;
        let mut p = Packet { buf: &mut f, len };
        assert_eq!(check(&mut p, 0), Verdict::Continue);
        // Every byte of the MAC counts, the first as much as the last.
        for i in 0..6 {
            let mut mac = ROUTER_MAC;
            mac[i] ^= 0x40;
            assert_ne!(mac_key(mac), mac_key(ROUTER_MAC), "byte {i}");
        }
    }

    #[test]
    fn wrong_version() {
        let mut f = FrameSpec::udp().build();
        f[IP6_OFF] = 0x45;
        assert_eq!(verdict_of(f), Verdict::Drop(DropReason::BadVersion));
    }

    #[test]
    fn payload_length_that_lies() {
        let mut f = FrameSpec::udp().build();
        let claimed = (f.len() - ETH_HLEN - IP6_HLEN + 1) as u16;
        f[OFF_PAYLOAD_LEN..OFF_PAYLOAD_LEN + 2].copy_from_slice(&claimed.to_be_bytes());
        assert_eq!(
            verdict_of(f),
            Verdict::Drop(DropReason::PayloadLengthExceedsFrame)
        );
        // A truncated frame whose header is intact lies the same way.
        let mut f = FrameSpec::udp().build();
        f.pop();
        assert_eq!(
            verdict_of(f),
            Verdict::Drop(DropReason::PayloadLengthExceedsFrame)
        );
    }

    #[test]
    fn bad_sources() {
        use DropReason::*;
        assert_eq!(
            verdict_of(with_src("ff02::1")),
            Verdict::Drop(MulticastSource)
        );
        assert_eq!(verdict_of(with_src("::")), Verdict::Drop(UnspecifiedSource));
        assert_eq!(verdict_of(with_src("::1")), Verdict::Drop(LoopbackSource));
        for src in ["fe80::1", "febf::1"] {
            assert_eq!(
                verdict_of(with_src(src)),
                Verdict::IcmpError(IcmpKind::BeyondScope),
                "{src}"
            );
        }
        // To a destination never forwarded either: dropped; with hop
        // limit 1: Time Exceeded first.
        for dst in ["::1", "fe80::2", "::ffff:192.0.2.1"] {
            let f = FrameSpec {
                src: "fe80::1".parse().unwrap(),
                dst: dst.parse().unwrap(),
                ..FrameSpec::udp()
            };
            assert_eq!(
                verdict_of(f.build()),
                Verdict::Drop(LinkLocalSource),
                "{dst}"
            );
        }
        let f = FrameSpec {
            src: "fe80::1".parse().unwrap(),
            hop_limit: 1,
            ..FrameSpec::udp()
        };
        assert_eq!(
            verdict_of(f.build()),
            Verdict::IcmpError(IcmpKind::TimeExceeded)
        );
        assert_eq!(verdict_of(with_src("fec0::1")), Verdict::Continue);
        assert_eq!(
            verdict_of(with_src("::ffff:192.0.2.1")),
            Verdict::Drop(MappedSource)
        );
        // IPv4-compatible and NAT64 sources are not the mapped block.
        assert_eq!(verdict_of(with_src("::1:ffff:c000:201")), Verdict::Continue);
        assert_eq!(verdict_of(with_src("64:ff9b::c000:201")), Verdict::Continue);
    }

    #[test]
    fn a_group_source_mac_is_dropped() {
        // Broadcast, or multicast: an error in reply would be broadcast.
        for src_mac in [[0xff; 6], [0x33, 0x33, 0, 0, 0, 1]] {
            let f = FrameSpec {
                src_mac,
                hop_limit: 1,
                ..FrameSpec::udp()
            }
            .build();
            assert_eq!(verdict_of(f), Verdict::Drop(DropReason::GroupSourceMac));
        }
    }

    #[test]
    fn a_jumbogram_header_is_dropped_not_cut() {
        // Payload length 0 and a hop-by-hop header (RFC 2675): it was
        // forwarded cut to the 40-byte IPv6 header.
        let mut f = FrameSpec {
            ext: vec![Ext::HopByHop],
            ..FrameSpec::udp()
        }
        .build();
        f[OFF_PAYLOAD_LEN..OFF_PAYLOAD_LEN + 2].copy_from_slice(&[0, 0]);
        assert_eq!(verdict_of(f), Verdict::Drop(DropReason::JumboUnsupported));
        // Payload length 0 with nothing after the header is a valid packet.
        let mut f = FrameSpec::udp().build();
        f[OFF_PAYLOAD_LEN..OFF_PAYLOAD_LEN + 2].copy_from_slice(&[0, 0]);
        f[OFF_NEXT_HEADER] = 59;
        assert_eq!(verdict_of(f), Verdict::Continue);
    }

    #[test]
    fn bad_destinations() {
        use DropReason::*;
        assert_eq!(
            verdict_of(with_dst("fe80::2")),
            Verdict::Drop(LinkLocalDestination)
        );
        assert_eq!(
            verdict_of(with_dst("ff0e::1")),
            Verdict::Drop(MulticastDestination)
        );
        assert_eq!(verdict_of(with_dst("::")), Verdict::Drop(BadDestination));
        assert_eq!(verdict_of(with_dst("::1")), Verdict::Drop(BadDestination));
        assert_eq!(
            verdict_of(with_dst("::ffff:10.0.0.1")),
            Verdict::Drop(BadDestination)
        );
    }

    #[test]
    fn hop_limit_one_or_zero_is_time_exceeded() {
        for hl in [0, 1] {
            let f = FrameSpec {
                hop_limit: hl,
                ..FrameSpec::udp()
            }
            .build();
            assert_eq!(verdict_of(f), Verdict::IcmpError(IcmpKind::TimeExceeded));
        }
        let f = FrameSpec {
            hop_limit: 2,
            ..FrameSpec::udp()
        }
        .build();
        assert_eq!(verdict_of(f), Verdict::Continue);
    }
}
