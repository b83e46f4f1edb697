//! `ip6_rewrite`: from next hop to frame on the wire.
//!
//! For each packet still in [`Verdict::Continue`] with the next hop
//! `ip6_lookup` chose: find its [`Adjacency`] (missing or unresolved: drop
//! `nexthop_unresolved`), check the egress MTU (an IPv6 packet longer than
//! it owes a Packet Too Big carrying that MTU), decrement the hop limit
//! (IPv6 has no header checksum to fix) and write the Ethernet header.

use fib::NextHopId;

use super::ip6_input::{ETHERTYPE_IPV6, ETH_HLEN, IP6_HLEN, OFF_HOP_LIMIT};
use super::verdict::{DropReason, IcmpKind, PortIndex, Verdict};
use super::Packet;

/// How to reach one next hop: indexed by [`NextHopId`] in the table given
/// to [`run`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Adjacency {
    /// The egress port.
    pub port: PortIndex,
    /// The egress port's MAC.
    pub src_mac: [u8; 6],
    /// The next hop's MAC.
    pub dst_mac: [u8; 6],
    /// The egress link's MTU (IPv6 packet bytes, no Ethernet header).
    pub mtu: u32,
    /// The neighbour is resolved: `dst_mac` is valid.
    pub resolved: bool,
    /// A connected subnet rather than a neighbour (never resolved): a
    /// packet sent to it is dropped as [`DropReason::NeighborMiss`] and its
    /// destination handed to the control side for resolution.
    pub glean: bool,
    /// A route we own but do not forward (an aggregate we announce):
    /// the packet gets an ICMPv6 Destination Unreachable, as if there were
    /// no route, instead of following a less specific route (the default
    /// route back upstream, in a loop until its hop limit runs out).
    pub unreachable: bool,
}

/// Rewrites one packet for its next hop.
#[inline]
pub fn rewrite(pkt: &mut Packet<'_>, nh: NextHopId, adjacencies: &[Adjacency]) -> Verdict {
    let adj = match adjacencies.get(nh.0 as usize) {
        Some(a) if a.resolved => a,
        Some(a) if a.glean => return Verdict::Drop(DropReason::NeighborMiss),
        Some(a) if a.unreachable => return Verdict::IcmpError(IcmpKind::NoRoute),
        _ => return Verdict::Drop(DropReason::NexthopUnresolved),
    };
    let len = pkt.len.min(pkt.buf.len());
    if len < ETH_HLEN + IP6_HLEN {
        // Only when called without ip6_input first.
        return Verdict::Drop(DropReason::TruncatedIpv6);
    }
    if (len - ETH_HLEN) as u64 > u64::from(adj.mtu) {
        return Verdict::IcmpError(IcmpKind::PacketTooBig { mtu: adj.mtu });
    }
    let b = &mut pkt.buf[..len];
    b[OFF_HOP_LIMIT] = b[OFF_HOP_LIMIT].saturating_sub(1);
    b[0..6].copy_from_slice(&adj.dst_mac);
    b[6..12].copy_from_slice(&adj.src_mac);
    b[12..14].copy_from_slice(&ETHERTYPE_IPV6.to_be_bytes());
    Verdict::Forward {
        adjacency: nh,
        egress: adj.port,
    }
}

/// Runs [`rewrite`] over the packets still in [`Verdict::Continue`];
/// returns how many it looked at.
pub fn run(
    pkts: &mut [Packet<'_>],
    verdicts: &mut [Verdict],
    nexthops: &[NextHopId],
    adjacencies: &[Adjacency],
) -> usize {
    let mut n = 0;
    for ((p, v), nh) in pkts.iter_mut().zip(verdicts.iter_mut()).zip(nexthops) {
        if *v == Verdict::Continue {
            *v = rewrite(p, *nh, adjacencies);
            n += 1;
        }
    }
    n
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;

    fn table() -> Vec<Adjacency> {
        vec![
            Adjacency::default(),
            Adjacency {
                port: 2,
                src_mac: [2, 0, 0, 0, 0, 0xaa],
                dst_mac: [2, 0, 0, 0, 0, 0xbb],
                mtu: 1500,
                resolved: true,
                glean: false,
                unreachable: false,
            },
            Adjacency {
                port: 3,
                mtu: 1500,
                resolved: false,
                glean: false,
                unreachable: false,
                ..Adjacency::default()
            },
        ]
    }

    #[test]
    fn rewrites_macs_and_hop_limit() {
        let mut f = FrameSpec {
            hop_limit: 9,
            ..FrameSpec::udp()
        }
        .build();
        let orig = f.clone();
        let len = f.len();
        let mut p = Packet { buf: &mut f, len };
        let v = rewrite(&mut p, NextHopId(1), &table());
        assert_eq!(
            v,
            Verdict::Forward {
                adjacency: NextHopId(1),
                egress: 2
            }
        );
        assert_eq!(&f[0..6], &[2, 0, 0, 0, 0, 0xbb]);
        assert_eq!(&f[6..12], &[2, 0, 0, 0, 0, 0xaa]);
        assert_eq!(f[OFF_HOP_LIMIT], 8);
        assert_eq!(f[12..OFF_HOP_LIMIT], orig[12..OFF_HOP_LIMIT]);
        assert_eq!(f[OFF_HOP_LIMIT + 1..], orig[OFF_HOP_LIMIT + 1..]);
    }

    #[test]
    fn unresolved_or_unknown_next_hop() {
        let mut f = FrameSpec::udp().build();
        let len = f.len();
        let mut p = Packet { buf: &mut f, len };
        for nh in [0, 2, 99] {
            assert_eq!(
                rewrite(&mut p, NextHopId(nh), &table()),
                Verdict::Drop(DropReason::NexthopUnresolved)
            );
        }
    }

    #[test]
    fn an_unreachable_route_answers_no_route() {
        let mut f = FrameSpec::udp().build();
        let len = f.len();
        let mut p = Packet { buf: &mut f, len };
        let t = vec![Adjacency {
            unreachable: true,
            ..Adjacency::default()
        }];
        assert_eq!(
            rewrite(&mut p, NextHopId(0), &t),
            Verdict::IcmpError(IcmpKind::NoRoute)
        );
    }

    #[test]
    fn connected_subnet_without_neighbor_is_a_neighbor_miss() {
        let mut f = FrameSpec::udp().build();
        let before = f.clone();
        let len = f.len();
        let mut p = Packet { buf: &mut f, len };
        let mut t = table();
        t.push(Adjacency {
            port: 1,
            mtu: 1500,
            glean: true,
            unreachable: false,
            ..Adjacency::default()
        });
        assert_eq!(
            rewrite(&mut p, NextHopId(3), &t),
            Verdict::Drop(DropReason::NeighborMiss)
        );
        // Untouched: the worker reads the destination back out of it.
        assert_eq!(f, before);
    }

    #[test]
    fn mtu_boundary() {
        for (ip_len, fits) in [(1500usize, true), (1501, false)] {
            let mut f = FrameSpec {
                l4: L4Spec::Udp {
                    sport: 1,
                    dport: 2,
                    payload: ip_len - 48,
                },
                ..FrameSpec::udp()
            }
            .build();
            assert_eq!(f.len(), ETH_HLEN + ip_len);
            let len = f.len();
            let mut p = Packet { buf: &mut f, len };
            let v = rewrite(&mut p, NextHopId(1), &table());
            if fits {
                assert!(matches!(v, Verdict::Forward { .. }));
            } else {
                assert_eq!(v, Verdict::IcmpError(IcmpKind::PacketTooBig { mtu: 1500 }));
            }
        }
    }
}
