//! `ip6_lookup`: route the batch and pick the ECMP member.
//!
//! The destinations of the packets still in [`Verdict::Continue`] are
//! looked up together with [`Snapshot::lookup_batch`] (its interleaved
//! walk hides the memory latency); then each packet's member is
//! [`Snapshot::select`]ed by [`flow_hash`]. No route owes a Destination
//! Unreachable (no route); a group with no live member is dropped as
//! `no_live_nexthop`. The chosen next hop goes into `nexthops[i]` for
//! `ip6_rewrite`; the verdict stays `Continue`.

use fib::{GroupId, NextHopId, Snapshot};

use super::ip6_input::{addr_at, ETH_HLEN, IP6_HLEN, OFF_DST, OFF_NEXT_HEADER, OFF_SRC};
use super::verdict::{DropReason, IcmpKind, Verdict};
use super::{Packet, MAX_BATCH};

/// Extension headers walked before giving up on finding the L4 header.
pub const MAX_EXT_HEADERS: usize = 6;
// `l4_tail`'s fast path reads what the walk's first step would.
const _: () = assert!(MAX_EXT_HEADERS >= 1);

const NH_HOP_BY_HOP: u8 = 0;
const NH_TCP: u8 = 6;
const NH_UDP: u8 = 17;
const NH_ROUTING: u8 = 43;
const NH_AUTH: u8 = 51;
const NH_FRAGMENT: u8 = 44;
const NH_DEST_OPTS: u8 = 60;
/// The other extension headers of IANA's registry (RFC 7045) with the
/// uniform format of RFC 6564 (next header, length in 8-byte units less
/// one): Mobility (RFC 6275), HIP (RFC 7401), Shim6 (RFC 5533) and the
/// two experimental numbers (RFC 3692). ESP (50) cannot be looked past.
const NH_MOBILITY: u8 = 135;
const NH_HIP: u8 = 139;
const NH_SHIM6: u8 = 140;
const NH_EXPERIMENT1: u8 = 253;
const NH_EXPERIMENT2: u8 = 254;

/// Where the upper-layer header of a packet is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct L4 {
    /// The protocol after the extension headers walked (the last next
    /// header seen when the walk stopped early).
    pub proto: u8,
    /// Offset of the upper-layer header in the frame; `None` when the
    /// walk stopped early (truncated, too many extension headers) or the
    /// packet is a non-first fragment.
    pub off: Option<usize>,
    /// A Fragment header was seen.
    pub fragment: bool,
    /// The packet is a non-first fragment (fragment offset not 0): its
    /// upper-layer header is in another packet.
    pub nonfirst: bool,
}

/// Walks at most [`MAX_EXT_HEADERS`] extension headers (hop-by-hop,
/// routing, destination options, authentication, fragment, and the other
/// registered ones of the uniform format) of the IPv6 packet in
/// `frame[..len]` (already checked by `ip6_input`: `len >= 54`).
#[inline]
pub fn find_l4(frame: &[u8], len: usize) -> L4 {
    let b = &frame[..len.min(frame.len())];
    let stop = |proto, fragment, nonfirst| L4 {
        proto,
        off: None,
        fragment,
        nonfirst,
    };
    if b.len() < ETH_HLEN + IP6_HLEN {
        return stop(0, false, false);
    }
    let mut proto = b[OFF_NEXT_HEADER];
    let mut off = ETH_HLEN + IP6_HLEN;
    let mut fragment = false;
    // One step more than extension headers: the last one allowed may be
    // followed by the upper-layer header.
    for _ in 0..=MAX_EXT_HEADERS {
        match proto {
            NH_HOP_BY_HOP | NH_ROUTING | NH_DEST_OPTS | NH_AUTH | NH_MOBILITY | NH_HIP
            | NH_SHIM6 | NH_EXPERIMENT1 | NH_EXPERIMENT2 => {
                if off + 2 > b.len() {
                    return stop(proto, fragment, false);
                }
                let units = b[off + 1] as usize;
                // AH counts 4-byte units minus 2 (RFC 4302), the others
                // 8-byte units minus 1 (RFC 8200).
                let skip = if proto == NH_AUTH {
                    (units + 2) * 4
                } else {
                    (units + 1) * 8
                };
                proto = b[off];
                off += skip;
            }
            NH_FRAGMENT => {
                if off + 8 > b.len() {
                    return stop(proto, true, false);
                }
                fragment = true;
                let offset = u16::from_be_bytes([b[off + 2], b[off + 3]]) >> 3;
                proto = b[off];
                off += 8;
                if offset != 0 {
                    return stop(proto, fragment, true);
                }
            }
            _ => {
                return L4 {
                    proto,
                    off: (off <= b.len()).then_some(off),
                    fragment,
                    nonfirst: false,
                };
            }
        }
    }
    stop(proto, fragment, false)
}

/// The flow hash that picks an ECMP member.
///
/// Keyed on source, destination, upper-layer protocol and TCP/UDP ports;
/// the flow label is left out (Linux changes a socket's flow label after a
/// retransmission timeout, which would move the connection to another
/// member). A packet with a Fragment header (first fragment included)
/// hashes on source and destination only, so all fragments of a datagram
/// take the same member; so does a packet whose L4 header could not be
/// found (protocol and ports taken as 0).
///
/// The function is three rounds of the wyhash "mum" mixer (a 64x64->128
/// multiply, folding the high half into the low one by xor): each round
/// takes 128 bits of key, every input bit reaches every output bit, and it
/// costs three multiplies per packet. `seed` varies it per router so that
/// two routers in a row do not polarise (pick the same member for the same
/// flows). The low bits are well mixed, which matters as the FIB indexes
/// its power-of-two bucket table with them.
#[inline]
pub fn flow_hash(frame: &[u8], len: usize, seed: u64) -> u32 {
    const K0: u64 = 0xa076_1d64_78bd_642f;
    const K1: u64 = 0xe703_7ed1_a0b4_28db;
    const K2: u64 = 0x8ebc_6af0_9c88_c6e3;
    const K3: u64 = 0x5899_65cc_7537_4cc3;
    #[inline(always)]
    fn mum(a: u64, b: u64) -> u64 {
        let m = (a as u128).wrapping_mul(b as u128);
        (m as u64) ^ ((m >> 64) as u64)
    }
    let b = &frame[..len.min(frame.len())];
    if b.len() < ETH_HLEN + IP6_HLEN {
        return 0;
    }
    let src = addr_at(b, OFF_SRC);
    let dst = addr_at(b, OFF_DST);
    let tail = l4_tail(b);
    let h = mum((src >> 64) as u64 ^ K0 ^ seed, src as u64 ^ K1);
    let h = mum((dst >> 64) as u64 ^ h, dst as u64 ^ K2);
    let h = mum(h ^ K3, tail ^ K0 ^ seed.rotate_left(32));
    (h ^ (h >> 32)) as u32
}

/// The [`flow_hash`] seed of the router whose BGP identifier is
/// `router_id`: stable across restarts (a flow keeps its member when the
/// daemon comes back with the same routes) and different between routers
/// (two in a row do not polarise). A splitmix64 step of the identifier.
pub fn flow_hash_seed(router_id: u32) -> u64 {
    fib::splitmix64(u64::from(router_id))
}

/// The protocol and ports word of [`flow_hash`] for the IPv6 frame `b`
/// (at least 54 bytes): TCP or UDP right after the IPv6 header (the
/// common case) read in place, anything else through [`flow_tail`].
#[inline(always)]
fn l4_tail(b: &[u8]) -> u64 {
    const L4_OFF: usize = ETH_HLEN + IP6_HLEN;
    let nh = b[OFF_NEXT_HEADER];
    if (nh == NH_TCP || nh == NH_UDP) && b.len() >= L4_OFF + 4 {
        let ports = u32::from_be_bytes([b[L4_OFF], b[L4_OFF + 1], b[L4_OFF + 2], b[L4_OFF + 3]]);
        (u64::from(nh) << 32) | u64::from(ports)
    } else {
        flow_tail(b)
    }
}

/// The protocol and ports word of [`flow_hash`] through extension
/// headers: 0 for fragments and when the L4 header is not found.
#[inline(never)]
fn flow_tail(b: &[u8]) -> u64 {
    let l4 = find_l4(b, b.len());
    if l4.fragment {
        0
    } else {
        let ports = match (l4.proto, l4.off) {
            (NH_TCP | NH_UDP, Some(o)) if o + 4 <= b.len() => {
                u32::from_be_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]])
            }
            _ => 0,
        };
        let proto = if l4.off.is_some() { l4.proto } else { 0 };
        (u64::from(proto) << 32) | u64::from(ports)
    }
}

/// Looks up the packets still in [`Verdict::Continue`] and selects their
/// next hop into `nexthops` (same indexes). Returns how many it looked at.
pub fn run(
    pkts: &[Packet<'_>],
    verdicts: &mut [Verdict],
    nexthops: &mut [NextHopId],
    snap: &Snapshot,
    seed: u64,
) -> usize {
    let n = pkts.len().min(verdicts.len()).min(nexthops.len());
    let mut total = 0;
    let mut start = 0;
    while start < n {
        let end = (start + MAX_BATCH).min(n);
        let mut addrs = [0u128; MAX_BATCH];
        // The packets looked at, and the lookup each one takes its group
        // from: a packet to the same destination as the one before shares
        // that one's lookup (a burst to one host is the common case).
        let mut which = [0u8; MAX_BATCH];
        let mut slot = [0u8; MAX_BATCH];
        let mut groups: [Option<GroupId>; MAX_BATCH] = [None; MAX_BATCH];
        let (mut n_pkts, mut k) = (0, 0);
        for i in start..end {
            if verdicts[i] == Verdict::Continue {
                let p = &pkts[i];
                if p.len.min(p.buf.len()) < ETH_HLEN + IP6_HLEN {
                    // Only when called without ip6_input first.
                    verdicts[i] = Verdict::Drop(DropReason::TruncatedIpv6);
                    continue;
                }
                let a = addr_at(&p.buf[..p.len.min(p.buf.len())], OFF_DST);
                if k == 0 || addrs[k - 1] != a {
                    addrs[k] = a;
                    k += 1;
                }
                which[n_pkts] = (i - start) as u8;
                slot[n_pkts] = (k - 1) as u8;
                n_pkts += 1;
            }
        }
        snap.lookup_batch(&addrs[..k], &mut groups[..k]);
        for j in 0..n_pkts {
            let i = start + which[j] as usize;
            verdicts[i] = match groups[slot[j] as usize] {
                None => Verdict::IcmpError(IcmpKind::NoRoute),
                Some(g) => {
                    let p = &pkts[i];
                    match snap.select(g, flow_hash(p.buf, p.len, seed)) {
                        Some(nh) => {
                            nexthops[i] = nh;
                            Verdict::Continue
                        }
                        None => Verdict::Drop(DropReason::NoLiveNexthop),
                    }
                }
            };
        }
        total += n_pkts;
        start = end;
    }
    total
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;
    use fib::{Fib, NextHop, Prefix};

    fn hash(spec: &FrameSpec) -> u32 {
        let f = spec.build();
        flow_hash(&f, f.len(), 7)
    }

    #[test]
    fn the_tcp_udp_fast_path_agrees_with_the_header_walk() {
        // Every next header, lengths from the bare IPv6 header to past the
        // ports, over pseudo-random bytes: the fast path and the walk give
        // the same word (so the same flow hash).
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut fast = 0;
        for nh in 0..=255u8 {
            for len in ETH_HLEN + IP6_HLEN..=ETH_HLEN + IP6_HLEN + 48 {
                let mut f = vec![0u8; len];
                for b in f.iter_mut() {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    *b = x as u8;
                }
                f[OFF_NEXT_HEADER] = nh;
                assert_eq!(l4_tail(&f), flow_tail(&f), "next header {nh}, {len} bytes");
                fast += usize::from((nh == NH_TCP || nh == NH_UDP) && len >= 58);
            }
        }
        assert!(fast > 0, "the fast path was never taken");
        // UDP cut right after the IPv6 header and 2 bytes: the protocol
        // counts, the ports (not there) are 0.
        let f = FrameSpec::udp().build();
        let short = &f[..ETH_HLEN + IP6_HLEN + 2];
        assert_eq!(l4_tail(short), u64::from(NH_UDP) << 32);
        assert_eq!(l4_tail(short), flow_tail(short));
        // And the plain frames: protocol and ports.
        let f = FrameSpec::tcp(1000, 80).build();
        assert_eq!(l4_tail(&f), (u64::from(NH_TCP) << 32) | (1000 << 16) | 80);
    }

    #[test]
    fn finds_l4_through_an_authentication_header() {
        // TCP behind a 16-byte AH (payload length 2: (2 + 2) * 4 bytes).
        let plain = FrameSpec::tcp(1000, 80).build();
        let at = ETH_HLEN + IP6_HLEN;
        let mut f = plain[..at].to_vec();
        f.extend_from_slice(&[
            NH_TCP, 2, 0, 0, 0, 0, 0, 1, 0, 0, 0, 7, 0xaa, 0xbb, 0xcc, 0xdd,
        ]);
        f.extend_from_slice(&plain[at..]);
        f[OFF_NEXT_HEADER] = NH_AUTH;
        let payload = (f.len() - at) as u16;
        f[ETH_HLEN + 4..ETH_HLEN + 6].copy_from_slice(&payload.to_be_bytes());
        let l4 = find_l4(&f, f.len());
        assert_eq!((l4.proto, l4.off), (NH_TCP, Some(at + 16)));
        // The flow hash sees the ports behind it.
        assert_eq!(flow_tail(&f), (u64::from(NH_TCP) << 32) | (1000 << 16) | 80);
    }

    /// Shim6, HIP, Mobility and the experimental numbers are extension
    /// headers too (RFC 7045): the walk goes past them, so an ICMPv6 error
    /// behind one is seen as one (and never answered with an error), and
    /// ports behind one are hashed.
    #[test]
    fn finds_l4_through_the_other_registered_extension_headers() {
        let plain = FrameSpec::tcp(1000, 80).build();
        let at = ETH_HLEN + IP6_HLEN;
        for nh in [
            NH_MOBILITY,
            NH_HIP,
            NH_SHIM6,
            NH_EXPERIMENT1,
            NH_EXPERIMENT2,
        ] {
            let mut f = plain[..at].to_vec();
            f.extend_from_slice(&[NH_TCP, 0, 0, 0, 0, 0, 0, 0]);
            f.extend_from_slice(&plain[at..]);
            f[OFF_NEXT_HEADER] = nh;
            let payload = (f.len() - at) as u16;
            f[ETH_HLEN + 4..ETH_HLEN + 6].copy_from_slice(&payload.to_be_bytes());
            let l4 = find_l4(&f, f.len());
            assert_eq!((l4.proto, l4.off), (NH_TCP, Some(at + 8)), "{nh}");
            assert_eq!(flow_tail(&f), (u64::from(NH_TCP) << 32) | (1000 << 16) | 80);
        }
    }

    #[test]
    fn finds_l4_through_extension_headers() {
        let spec = FrameSpec {
            ext: vec![Ext::HopByHop, Ext::Routing, Ext::DestOpts],
            ..FrameSpec::tcp(1000, 80)
        };
        let f = spec.build();
        let l4 = find_l4(&f, f.len());
        assert_eq!(l4.proto, NH_TCP);
        assert_eq!(l4.off, Some(f.len() - spec.l4_len()));
        // Too many extension headers: stop.
        let spec = FrameSpec {
            ext: vec![Ext::DestOpts; MAX_EXT_HEADERS + 1],
            ..FrameSpec::udp()
        };
        let f = spec.build();
        assert_eq!(find_l4(&f, f.len()).off, None);
    }

    #[test]
    fn hash_ignores_flow_label_and_uses_ports() {
        let a = FrameSpec::udp_ports(1234, 53);
        let b = FrameSpec {
            flow_label: 0xabcde,
            traffic_class: 0x20,
            hop_limit: 9,
            ..FrameSpec::udp_ports(1234, 53)
        };
        assert_eq!(hash(&a), hash(&b));
        assert_ne!(hash(&a), hash(&FrameSpec::udp_ports(1235, 53)));
        assert_ne!(
            hash(&FrameSpec::udp_ports(1234, 53)),
            hash(&FrameSpec::tcp(1234, 53))
        );
    }

    #[test]
    fn fragments_hash_on_addresses_only() {
        let first = FrameSpec {
            ext: vec![Ext::Fragment {
                offset: 0,
                more: true,
                id: 9,
            }],
            ..FrameSpec::udp_ports(1111, 2222)
        };
        let later = FrameSpec {
            ext: vec![Ext::Fragment {
                offset: 1448 / 8,
                more: false,
                id: 9,
            }],
            l4: L4Spec::Raw(vec![0xee; 100]),
            ..FrameSpec::udp()
        };
        let other_ports = FrameSpec {
            ext: vec![Ext::Fragment {
                offset: 0,
                more: true,
                id: 10,
            }],
            ..FrameSpec::udp_ports(3333, 4444)
        };
        assert_eq!(hash(&first), hash(&later));
        assert_eq!(hash(&first), hash(&other_ports));
    }

    fn ecmp_fib() -> Fib {
        let mut fib = Fib::new();
        let p: Prefix = "2001:db8:100::/48".parse().unwrap();
        fib.insert(p, &[NextHop::new(1), NextHop::new(2), NextHop::new(3)])
            .unwrap();
        fib.publish();
        fib
    }

    /// Two routers (router ids) pick different members for the same flows;
    /// the same router after a restart picks the same ones.
    #[test]
    fn the_seed_is_per_router_and_stable() {
        let fib = ecmp_fib();
        let snap = fib.reader().load_full();
        let member = |seed: u64, port: u16| {
            let mut f = FrameSpec {
                dst: "2001:db8:100::1".parse().unwrap(),
                ..FrameSpec::udp_ports(port, 80)
            }
            .build();
            let len = f.len();
            let pkts = [Packet { buf: &mut f, len }];
            let (mut v, mut nh) = ([Verdict::Continue], [NextHopId(0)]);
            run(&pkts, &mut v, &mut nh, &snap, seed);
            nh[0]
        };
        let (a, b) = (flow_hash_seed(0xc000_0201), flow_hash_seed(0xc000_0202));
        assert_eq!(a, flow_hash_seed(0xc000_0201));
        let differ = (0..300u16)
            .filter(|&p| member(a, 40000 + p) != member(b, 40000 + p))
            .count();
        // Independent choices among 3 members differ for about 2/3 of them.
        assert!((150..250).contains(&differ), "{differ} of 300 flows differ");
    }

    /// Called without `ip6_input` first, on a packet whose length says
    /// more than its buffer holds: looked up on the bytes there are, no
    /// panic.
    #[test]
    fn a_length_past_the_buffer_does_not_panic() {
        let fib = ecmp_fib();
        let snap = fib.reader().load_full();
        let mut f = FrameSpec {
            dst: "2001:db8:100::1".parse().unwrap(),
            ..FrameSpec::udp()
        }
        .build();
        let len = f.len() + 100;
        let pkts = [Packet { buf: &mut f, len }];
        let mut v = [Verdict::Continue];
        let mut nh = [NextHopId(0)];
        assert_eq!(run(&pkts, &mut v, &mut nh, &snap, 42), 1);
        assert_eq!(v[0], Verdict::Continue);
    }

    fn select(snap: &Snapshot, spec: &FrameSpec) -> Verdict {
        let mut f = spec.build();
        let len = f.len();
        let pkts = [Packet { buf: &mut f, len }];
        let mut v = [Verdict::Continue];
        let mut nh = [NextHopId(0)];
        run(&pkts, &mut v, &mut nh, snap, 42);
        match v[0] {
            Verdict::Continue => Verdict::Forward {
                adjacency: nh[0],
                egress: 0,
            },
            v => v,
        }
    }

    #[test]
    fn ecmp_spreads_and_is_sticky() {
        let fib = ecmp_fib();
        let snap = fib.reader().load_full();
        let mut rng = XorShift(0x1234_5678);
        let mut seen = [0usize; 4];
        for _ in 0..10_000 {
            let r = rng.next();
            let spec = FrameSpec {
                src: std::net::Ipv6Addr::from(
                    0x2001_0db8_0001_0000_0000_0000_0000_0000u128 | (r as u128 & 0xffff_ffff),
                ),
                dst: "2001:db8:100::9".parse().unwrap(),
                ..if r & (1 << 40) == 0 {
                    FrameSpec::udp_ports((r >> 16) as u16, (r >> 32) as u16)
                } else {
                    FrameSpec::tcp((r >> 16) as u16, (r >> 32) as u16)
                }
            };
            let Verdict::Forward { adjacency, .. } = select(&snap, &spec) else {
                panic!("not forwarded");
            };
            seen[adjacency.0 as usize] += 1;
            // Same 5-tuple, another flow label: same member.
            let again = FrameSpec {
                flow_label: (r >> 44) as u32 & 0xfffff,
                ..spec.clone()
            };
            assert_eq!(
                select(&snap, &again),
                Verdict::Forward {
                    adjacency,
                    egress: 0
                }
            );
        }
        for m in 1..=3 {
            assert!(
                seen[m] > 2_800,
                "member {m} got {} of 10000: {seen:?}",
                seen[m]
            );
        }
    }

    #[test]
    fn no_route_and_no_live_member() {
        let mut fib = ecmp_fib();
        let snap = fib.reader().load_full();
        let spec = FrameSpec {
            dst: "2001:db8:200::1".parse().unwrap(),
            ..FrameSpec::udp()
        };
        assert_eq!(select(&snap, &spec), Verdict::IcmpError(IcmpKind::NoRoute));
        for id in 1..=3 {
            fib.set_nexthop_up(NextHopId(id), false);
        }
        fib.publish();
        let snap = fib.reader().load_full();
        let spec = FrameSpec {
            dst: "2001:db8:100::1".parse().unwrap(),
            ..FrameSpec::udp()
        };
        assert_eq!(
            select(&snap, &spec),
            Verdict::Drop(DropReason::NoLiveNexthop)
        );
    }

    /// A batch where runs of packets share a destination (and so one
    /// lookup), broken by other destinations, a packet already dropped
    /// and one with no route, gets for every packet what it gets alone.
    #[test]
    fn packets_sharing_a_lookup_get_what_they_get_alone() {
        let mut fib = ecmp_fib();
        let other: Prefix = "2001:db8:300::/48".parse().unwrap();
        fib.insert(other, &[NextHop::new(7)]).unwrap();
        fib.publish();
        let snap = fib.reader().load_full();
        let dsts = [
            "2001:db8:100::1",
            "2001:db8:100::1",
            "2001:db8:100::1",
            "2001:db8:300::5",
            "2001:db8:100::1",
            "2001:db8:200::1",
            "2001:db8:200::1",
            "2001:db8:100::1",
            "2001:db8:300::5",
            "2001:db8:300::5",
        ];
        let specs: Vec<FrameSpec> = dsts
            .iter()
            .enumerate()
            .map(|(i, d)| FrameSpec {
                dst: d.parse().unwrap(),
                ..FrameSpec::udp_ports(40_000 + i as u16, 80)
            })
            .collect();
        let mut frames: Vec<Vec<u8>> = specs.iter().map(FrameSpec::build).collect();
        let pkts: Vec<Packet<'_>> = frames
            .iter_mut()
            .map(|f| {
                let len = f.len();
                Packet { buf: f, len }
            })
            .collect();
        let mut v = vec![Verdict::Continue; pkts.len()];
        // Already dropped by an earlier stage: not looked at, unchanged.
        v[2] = Verdict::Drop(DropReason::BadVersion);
        let mut nh = vec![NextHopId(0); pkts.len()];
        assert_eq!(run(&pkts, &mut v, &mut nh, &snap, 42), pkts.len() - 1);
        for (i, spec) in specs.iter().enumerate() {
            let got = match v[i] {
                Verdict::Continue => Verdict::Forward {
                    adjacency: nh[i],
                    egress: 0,
                },
                other => other,
            };
            let want = if i == 2 {
                Verdict::Drop(DropReason::BadVersion)
            } else {
                select(&snap, spec)
            };
            assert_eq!(got, want, "packet {i} to {}", dsts[i]);
        }
    }
}
