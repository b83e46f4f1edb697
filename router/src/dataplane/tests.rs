//! The stages joined by `process_batch`.

use fib::{Fib, NextHop, NextHopId, Prefix};
use smoltcp::wire::Icmpv6Message;

use super::ip6_input::{ETH_HLEN, OFF_HOP_LIMIT, OFF_NEXT_HEADER, OFF_PAYLOAD_LEN};
use super::ip6_lookup::MAX_EXT_HEADERS;
use super::testutil::*;
use super::*;

const NH_MAC: [u8; 6] = [2, 0, 0, 0, 1, 1];
const OUT_MAC: [u8; 6] = [2, 0, 0, 0, 2, 2];

struct Lab {
    fib: Fib,
    adj: Vec<Adjacency>,
    state: WorkerState,
    ingress: Ingress,
}

impl Lab {
    fn new() -> Self {
        let mut fib = Fib::new();
        let p: Prefix = "2001:db8:100::/48".parse().unwrap();
        fib.insert(p, &[NextHop::new(1), NextHop::new(2), NextHop::new(3)])
            .unwrap();
        // A next hop never resolved, and one whose group is all down.
        fib.insert("2001:db8:300::/48".parse().unwrap(), &[NextHop::new(4)])
            .unwrap();
        fib.insert("2001:db8:400::/48".parse().unwrap(), &[NextHop::new(5)])
            .unwrap();
        fib.set_nexthop_up(NextHopId(5), false);
        // A connected subnet (glean adjacency).
        fib.insert("2001:db8:600::/64".parse().unwrap(), &[NextHop::new(6)])
            .unwrap();
        fib.publish();
        let a = Adjacency {
            port: 1,
            src_mac: OUT_MAC,
            dst_mac: NH_MAC,
            mtu: 1500,
            resolved: true,
            glean: false,
            unreachable: false,
        };
        let adj = vec![
            Adjacency::default(),
            a,
            Adjacency { port: 2, ..a },
            Adjacency { port: 3, ..a },
            Adjacency {
                resolved: false,
                glean: false,
                unreachable: false,
                ..a
            },
            a,
            Adjacency {
                resolved: false,
                glean: true,
                unreachable: false,
                ..a
            },
        ];
        Lab {
            fib,
            adj,
            state: WorkerState::new(1000, 1000, 0xfeed, 0),
            ingress: Ingress {
                port: 0,
                addr: Some(router()),
                mac: ip6_input::mac_key(ROUTER_MAC),
            },
        }
    }

    /// Runs frames through the pipeline: (verdict, frame after) each.
    fn run(&mut self, frames: &[Vec<u8>]) -> Vec<(Verdict, Vec<u8>)> {
        let mut bufs: Vec<Vec<u8>> = frames
            .iter()
            .map(|f| {
                let mut b = f.clone();
                b.resize(f.len().max(2048), 0);
                b
            })
            .collect();
        let mut pkts: Vec<Packet<'_>> = bufs
            .iter_mut()
            .zip(frames)
            .map(|(b, f)| Packet {
                buf: b,
                len: f.len(),
            })
            .collect();
        let mut verdicts = vec![Verdict::Continue; pkts.len()];
        let snap = self.fib.reader().load_full();
        process_batch(
            &mut pkts,
            &mut verdicts,
            &self.ingress,
            &snap,
            &self.adj,
            &mut self.state,
            0,
            &mut NoClock,
        );
        let lens: Vec<usize> = pkts.iter().map(|p| p.len).collect();
        verdicts
            .into_iter()
            .zip(bufs)
            .zip(lens)
            .map(|((v, mut b), l)| {
                b.truncate(l);
                (v, b)
            })
            .collect()
    }

    fn one(&mut self, frame: Vec<u8>) -> (Verdict, Vec<u8>) {
        self.run(&[frame]).pop().unwrap()
    }

    fn drops(&self, r: DropReason) -> u64 {
        self.state.counters.drops_of(r)
    }
}

#[test]
fn forwards_with_new_macs_and_hop_limit() {
    let mut lab = Lab::new();
    let orig = FrameSpec::udp().build();
    let (v, f) = lab.one(orig.clone());
    let Verdict::Forward { adjacency, egress } = v else {
        panic!("{v:?}");
    };
    assert!((1..=3).contains(&adjacency.0));
    assert_eq!(egress, lab.adj[adjacency.0 as usize].port);
    assert_eq!(&f[0..6], &NH_MAC);
    assert_eq!(&f[6..12], &OUT_MAC);
    assert_eq!(f[OFF_HOP_LIMIT], 63);
    assert_eq!(f[14..OFF_HOP_LIMIT], orig[14..OFF_HOP_LIMIT]);
    assert_eq!(f[OFF_HOP_LIMIT + 1..], orig[OFF_HOP_LIMIT + 1..]);
    assert_eq!(lab.state.counters.forwarded, 1);
    let s = lab.state.counters.snapshot();
    let runtime: Vec<_> = s.stages().collect();
    assert_eq!(
        runtime[0],
        (
            "ip6_input",
            StageStats {
                calls: 1,
                packets: 1,
                ticks: 0
            }
        )
    );
    assert_eq!(runtime[1].1.packets, 1);
    assert_eq!(runtime[2].1.packets, 1);
    assert_eq!(runtime[3].1.calls, 0);
}

#[test]
fn hop_limit_one_gets_time_exceeded() {
    let mut lab = Lab::new();
    let orig = FrameSpec {
        hop_limit: 1,
        flow_label: 77,
        ..FrameSpec::tcp(5000, 443)
    }
    .build();
    let (v, e) = lab.one(orig.clone());
    assert_eq!(v, Verdict::IcmpError(IcmpKind::TimeExceeded));
    let icmp = check_error(&e, &orig, Icmpv6Message::TimeExceeded);
    assert_eq!(icmp.payload(), &orig[ETH_HLEN..]);
    assert_eq!(
        lab.state.counters.icmp_sent[IcmpKind::TimeExceeded.index()],
        1
    );
}

#[test]
fn too_big_gets_packet_too_big_with_mtu() {
    let mut lab = Lab::new();
    lab.adj[1].mtu = 1400;
    lab.adj[2].mtu = 1400;
    lab.adj[3].mtu = 1400;
    let orig = FrameSpec {
        l4: L4Spec::Udp {
            sport: 9,
            dport: 9,
            payload: 1401 - 48,
        },
        ..FrameSpec::udp()
    }
    .build();
    let (v, e) = lab.one(orig.clone());
    assert_eq!(v, Verdict::IcmpError(IcmpKind::PacketTooBig { mtu: 1400 }));
    let icmp = check_error(&e, &orig, Icmpv6Message::PktTooBig);
    assert_eq!(icmp.pkt_too_big_mtu(), 1400);
    // The quote is the packet as it arrived (hop limit not decremented).
    assert_eq!(icmp.payload(), &orig[ETH_HLEN..ETH_HLEN + 1232]);
}

#[test]
fn no_route_gets_unreachable_then_rate_limited() {
    let mut lab = Lab::new();
    lab.state.limiter = TokenBucket::new(0, 2, 0);
    let orig = FrameSpec {
        dst: "2001:db8:999::1".parse().unwrap(),
        ..FrameSpec::udp()
    }
    .build();
    let out = lab.run(&[orig.clone(), orig.clone(), orig.clone()]);
    assert_eq!(out[0].0, Verdict::IcmpError(IcmpKind::NoRoute));
    check_error(&out[0].1, &orig, Icmpv6Message::DstUnreachable);
    assert_eq!(out[1].0, Verdict::IcmpError(IcmpKind::NoRoute));
    assert_eq!(out[2].0, Verdict::Drop(DropReason::NoRoute));
    assert_eq!(lab.drops(DropReason::NoRoute), 1);
}

#[test]
fn no_error_for_icmp_error_or_multicast() {
    let mut lab = Lab::new();
    let err = FrameSpec {
        hop_limit: 1,
        l4: L4Spec::Icmp { ty: 3, code: 0 },
        ..FrameSpec::udp()
    }
    .build();
    assert_eq!(
        lab.one(err).0,
        Verdict::Drop(DropReason::IcmpErrorForIcmpError)
    );
    // A Redirect, informational, is never answered either (e.2).
    let redirect = FrameSpec {
        hop_limit: 1,
        l4: L4Spec::Icmp { ty: 137, code: 0 },
        ..FrameSpec::udp()
    }
    .build();
    assert_eq!(
        lab.one(redirect).0,
        Verdict::Drop(DropReason::IcmpErrorForIcmpError)
    );
    // An error behind more extension headers than the walk follows: its
    // type cannot be seen, so no error either.
    let deep = FrameSpec {
        hop_limit: 1,
        ext: vec![Ext::DestOpts; MAX_EXT_HEADERS + 1],
        l4: L4Spec::Icmp { ty: 3, code: 0 },
        ..FrameSpec::udp()
    }
    .build();
    assert_eq!(
        lab.one(deep).0,
        Verdict::Drop(DropReason::IcmpErrorForIcmpError)
    );
    // An error behind as many extension headers as the walk follows, a
    // first fragment's among them: the walk reaches it (it stopped one
    // header short and took the packet for a non-first fragment).
    let first_fragment = FrameSpec {
        hop_limit: 1,
        ext: vec![
            Ext::HopByHop,
            Ext::DestOpts,
            Ext::Routing,
            Ext::Fragment {
                offset: 0,
                more: true,
                id: 1,
            },
            Ext::DestOpts,
            Ext::DestOpts,
        ],
        l4: L4Spec::Icmp { ty: 1, code: 4 },
        ..FrameSpec::udp()
    }
    .build();
    assert_eq!(
        lab.one(first_fragment).0,
        Verdict::Drop(DropReason::IcmpErrorForIcmpError)
    );
    // An echo request (informational) behind as many headers as the walk
    // follows is answered: the walk reaches it.
    let echo = FrameSpec {
        hop_limit: 1,
        ext: vec![Ext::DestOpts; MAX_EXT_HEADERS],
        l4: L4Spec::Icmp { ty: 128, code: 0 },
        ..FrameSpec::udp()
    }
    .build();
    assert_eq!(lab.one(echo).0, Verdict::IcmpError(IcmpKind::TimeExceeded));
    // Sent to a link-layer broadcast: not forwarded at all (as Linux),
    // so no error either (it would need our own MAC as its source).
    let l2_group = FrameSpec {
        hop_limit: 1,
        dst_mac: [0xff; 6],
        ..FrameSpec::udp()
    }
    .build();
    assert_eq!(
        lab.one(l2_group).0,
        Verdict::Drop(DropReason::LinkLayerMulticast)
    );
    // Sent to another host's MAC (flooded by a switch): that host
    // answers, not us.
    let l2_other = FrameSpec {
        hop_limit: 1,
        dst_mac: [2, 0, 0, 0, 0, 0x77],
        ..FrameSpec::udp()
    }
    .build();
    assert_eq!(lab.one(l2_other).0, Verdict::Drop(DropReason::OtherHost));
    // A multicast source never gets that far.
    let from_group = FrameSpec {
        hop_limit: 1,
        src: "ff05::2".parse().unwrap(),
        ..FrameSpec::udp()
    }
    .build();
    assert_eq!(
        lab.one(from_group).0,
        Verdict::Drop(DropReason::MulticastSource)
    );
    // Only the echo request got an error (a Time Exceeded).
    assert_eq!(lab.state.counters.icmp_sent, [1, 0, 0, 0]);
}

#[test]
fn every_drop_reason_is_reachable_and_counted() {
    use DropReason::*;
    let mut lab = Lab::new();
    let udp = FrameSpec::udp;
    let with = |f: &dyn Fn(&mut Vec<u8>)| {
        let mut b = udp().build();
        f(&mut b);
        b
    };
    let cases: Vec<(Vec<u8>, DropReason)> = vec![
        (vec![0; 10], TruncatedEthernet),
        (
            with(&|b| b[12..14].copy_from_slice(&[0x88, 0xa8])),
            VlanUnsupported,
        ),
        (with(&|b| b[12..14].copy_from_slice(&[0x08, 0x06])), NotIpv6),
        (with(&|b| b.truncate(40)), TruncatedIpv6),
        (with(&|b| b[14] = 0x40), BadVersion),
        (with(&|b| b[6] = 0xff), GroupSourceMac),
        (
            with(&|b| {
                b[OFF_PAYLOAD_LEN..OFF_PAYLOAD_LEN + 2].fill(0);
                b[OFF_NEXT_HEADER] = 0;
            }),
            JumboUnsupported,
        ),
        (
            FrameSpec {
                src: "::ffff:192.0.2.1".parse().unwrap(),
                ..udp()
            }
            .build(),
            MappedSource,
        ),
        (
            with(&|b| b[OFF_PAYLOAD_LEN] = 0xff),
            PayloadLengthExceedsFrame,
        ),
        (
            FrameSpec {
                src: "ff02::1".parse().unwrap(),
                ..udp()
            }
            .build(),
            MulticastSource,
        ),
        (
            FrameSpec {
                src: "::".parse().unwrap(),
                ..udp()
            }
            .build(),
            UnspecifiedSource,
        ),
        (
            FrameSpec {
                src: "::1".parse().unwrap(),
                ..udp()
            }
            .build(),
            LoopbackSource,
        ),
        (
            FrameSpec {
                dst: "fe80::1".parse().unwrap(),
                ..udp()
            }
            .build(),
            LinkLocalDestination,
        ),
        (
            FrameSpec {
                dst: "ff0e::1".parse().unwrap(),
                ..udp()
            }
            .build(),
            MulticastDestination,
        ),
        (
            FrameSpec {
                dst: "::1".parse().unwrap(),
                ..udp()
            }
            .build(),
            BadDestination,
        ),
        (
            FrameSpec {
                dst: "2001:db8:400::1".parse().unwrap(),
                ..udp()
            }
            .build(),
            NoLiveNexthop,
        ),
        (
            FrameSpec {
                dst: "2001:db8:300::1".parse().unwrap(),
                ..udp()
            }
            .build(),
            NexthopUnresolved,
        ),
        (
            FrameSpec {
                dst: "2001:db8:600::1".parse().unwrap(),
                ..udp()
            }
            .build(),
            NeighborMiss,
        ),
        (
            FrameSpec {
                hop_limit: 1,
                l4: L4Spec::Icmp { ty: 1, code: 0 },
                ..udp()
            }
            .build(),
            IcmpErrorForIcmpError,
        ),
        (
            FrameSpec {
                dst_mac: [0x33; 6],
                ..udp()
            }
            .build(),
            LinkLayerMulticast,
        ),
        (
            FrameSpec {
                dst_mac: [2, 0, 0, 0, 0, 0x77],
                ..udp()
            }
            .build(),
            OtherHost,
        ),
    ];
    for (frame, reason) in &cases {
        assert_eq!(
            lab.one(frame.clone()).0,
            Verdict::Drop(*reason),
            "{}",
            reason.name()
        );
    }
    // The rate-limited errors, the missing source address, no room.
    lab.state.limiter = TokenBucket::new(0, 0, 0);
    let no_route = FrameSpec {
        dst: "2001:db8:999::1".parse().unwrap(),
        ..udp()
    }
    .build();
    assert_eq!(lab.one(no_route.clone()).0, Verdict::Drop(NoRoute));
    let link_local_src = FrameSpec {
        src: "fe80::1".parse().unwrap(),
        ..udp()
    }
    .build();
    assert_eq!(lab.one(link_local_src).0, Verdict::Drop(LinkLocalSource));
    assert_eq!(
        lab.one(
            FrameSpec {
                hop_limit: 0,
                ..udp()
            }
            .build()
        )
        .0,
        Verdict::Drop(HopLimitExceeded)
    );
    lab.adj[1..4].iter_mut().for_each(|a| a.mtu = 60);
    assert_eq!(lab.one(udp().build()).0, Verdict::Drop(MtuExceeded));
    lab.ingress.addr = None;
    assert_eq!(
        lab.one(no_route.clone()).0,
        Verdict::Drop(IcmpNoSourceAddress)
    );
    lab.ingress.addr = Some(router());
    lab.state.limiter = TokenBucket::new(0, 10, 0);
    let mut tiny = no_route.clone();
    let mut pkts = [Packet {
        len: tiny.len(),
        buf: &mut tiny,
    }];
    let mut v = [Verdict::Continue];
    let snap = lab.fib.reader().load_full();
    process_batch(
        &mut pkts,
        &mut v,
        &lab.ingress,
        &snap,
        &lab.adj,
        &mut lab.state,
        0,
        &mut NoClock,
    );
    assert_eq!(v[0], Verdict::Drop(IcmpNoRoom));

    for r in DropReason::ALL {
        // ip6_input drops every packet this one would apply to before an
        // error is built (icmp6_error's own tests reach it).
        if *r == IcmpErrorForMulticast {
            continue;
        }
        // The worker counts these after the verdict: egress_down in the
        // xdp_forward tests; no_egress_port only on a bug.
        if matches!(r, EgressDown | NoEgressPort) {
            continue;
        }
        assert!(lab.drops(*r) >= 1, "{} never counted", r.name());
    }
}

#[test]
fn batches_longer_than_max_batch() {
    let mut lab = Lab::new();
    let frames: Vec<Vec<u8>> = (0..150u16)
        .map(|i| FrameSpec::udp_ports(i, 80).build())
        .collect();
    let out = lab.run(&frames);
    assert!(out
        .iter()
        .all(|(v, _)| matches!(v, Verdict::Forward { .. })));
    assert_eq!(lab.state.counters.forwarded, 150);
    assert_eq!(lab.state.counters.stages[0].calls, 3);
}

#[test]
fn ecmp_keeps_fragments_together() {
    let mut lab = Lab::new();
    let mut members = std::collections::HashSet::new();
    for (i, offset) in [0u16, 185, 370].into_iter().enumerate() {
        let f = FrameSpec {
            ext: vec![Ext::Fragment {
                offset,
                more: i < 2,
                id: 0xabc,
            }],
            l4: if i == 0 {
                L4Spec::Udp {
                    sport: 7,
                    dport: 8,
                    payload: 100,
                }
            } else {
                L4Spec::Raw(vec![i as u8; 100])
            },
            ..FrameSpec::udp()
        };
        let (v, _) = lab.one(f.build());
        let Verdict::Forward { adjacency, .. } = v else {
            panic!("{v:?}")
        };
        members.insert(adjacency);
    }
    assert_eq!(members.len(), 1);
}

/// Random bytes, mutations of valid frames and truncations: never a panic,
/// never a packet left in `Continue`, every packet counted once.
#[test]
fn random_frames_never_panic() {
    let mut lab = Lab::new();
    lab.state.limiter = TokenBucket::new(1_000_000, 1_000_000, 0);
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    let seeds = [
        FrameSpec::udp().build(),
        FrameSpec {
            hop_limit: 1,
            ..FrameSpec::tcp(1, 2)
        }
        .build(),
        FrameSpec {
            ext: vec![
                Ext::HopByHop,
                Ext::Fragment {
                    offset: 0,
                    more: true,
                    id: 1,
                },
            ],
            ..FrameSpec::udp()
        }
        .build(),
        FrameSpec {
            dst: "2001:db8:999::1".parse().unwrap(),
            l4: L4Spec::Icmp { ty: 128, code: 0 },
            ..FrameSpec::udp()
        }
        .build(),
    ];
    let mut total = 0u64;
    for round in 0..3000 {
        let mut frames = Vec::new();
        for _ in 0..(rng.next() % 64 + 1) {
            let r = rng.next();
            let mut f = if r % 4 == 0 {
                (0..(rng.next() % 200) as usize)
                    .map(|_| rng.next() as u8)
                    .collect()
            } else {
                let mut f = seeds[(r >> 8) as usize % seeds.len()].clone();
                for _ in 0..(r >> 16) % 6 {
                    let i = rng.next() as usize % f.len();
                    f[i] = rng.next() as u8;
                }
                f
            };
            if r & (1 << 40) != 0 && !f.is_empty() {
                f.truncate(rng.next() as usize % f.len());
            }
            frames.push(f);
        }
        // Sometimes the buffer is exactly the frame (no room to grow).
        let out = if round % 2 == 0 {
            lab.run(&frames)
        } else {
            let mut bufs = frames.clone();
            let mut pkts: Vec<Packet<'_>> = bufs
                .iter_mut()
                .map(|b| Packet {
                    len: b.len() + 3,
                    buf: b,
                })
                .collect();
            let mut v = vec![Verdict::Continue; pkts.len()];
            let snap = lab.fib.reader().load_full();
            process_batch(
                &mut pkts,
                &mut v,
                &lab.ingress,
                &snap,
                &lab.adj,
                &mut lab.state,
                round,
                &mut NoClock,
            );
            v.into_iter().map(|v| (v, Vec::new())).collect()
        };
        total += out.len() as u64;
        assert!(out.iter().all(|(v, _)| *v != Verdict::Continue));
    }
    let c = &lab.state.counters;
    let counted =
        c.drops.iter().sum::<u64>() + c.icmp_sent.iter().sum::<u64>() + c.forwarded + c.punted;
    assert_eq!(counted, total);
}
