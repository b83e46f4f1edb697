//! No input makes the decoder panic: random bodies behind valid headers,
//! every truncation and every single-octet mutation of real messages, and
//! random UPDATEs that must round-trip.

use std::net::Ipv6Addr;

use bgp::wire::{
    AsPath, Asn, Community, Context, Header, Ipv6NextHop, LargeCommunity, Message, MpReach,
    MpUnreach, Origin, PathAttributes, UpdateRepr,
};
use ipnet::Ipv6Net;
use proptest::prelude::*;

const FIXTURES: &[&[u8]] = &[
    include_bytes!("fixtures/gobgp-open.bin"),
    include_bytes!("fixtures/gobgp-keepalive.bin"),
    include_bytes!("fixtures/gobgp-eor-ipv6.bin"),
    include_bytes!("fixtures/gobgp-update-pod.bin"),
    include_bytes!("fixtures/gobgp-update-svc.bin"),
    include_bytes!("fixtures/gobgp-update-pod2.bin"),
    include_bytes!("fixtures/gobgp-withdraw.bin"),
    include_bytes!("fixtures/gobgp-notification-reset.bin"),
];

const CONTEXTS: [Context; 3] = [
    Context {
        four_octet_as: false,
        extended_messages: false,
        external: false,
    },
    Context {
        four_octet_as: true,
        extended_messages: false,
        external: false,
    },
    Context {
        four_octet_as: true,
        extended_messages: true,
        external: true,
    },
];

/// Parses with every context; whatever parses must also emit.
fn exercise(bytes: &[u8]) {
    for ctx in &CONTEXTS {
        let _ = Header::frame_len(bytes, ctx);
        if let Ok(m) = Message::parse(bytes, ctx) {
            let mut buf = vec![0; m.buffer_len(ctx)];
            m.emit(&mut buf, ctx);
        }
    }
}

/// Fixes up the header length after a body-length change.
fn with_len(mut bytes: Vec<u8>) -> Vec<u8> {
    let len = bytes.len() as u16;
    bytes[16..18].copy_from_slice(&len.to_be_bytes());
    bytes
}

#[test]
fn truncations_and_mutations_of_real_messages() {
    for fixture in FIXTURES {
        for cut in 0..fixture.len() {
            exercise(&fixture[..cut]);
            if cut >= 19 {
                exercise(&with_len(fixture[..cut].to_vec()));
            }
        }
        for i in 0..fixture.len() {
            for v in [0u8, 1, 2, 3, 0x0f, 0x10, 0x40, 0x7f, 0x80, 0x90, 0xc0, 0xff] {
                let mut m = fixture.to_vec();
                m[i] = v;
                exercise(&m);
                exercise(&with_len(m));
            }
        }
    }
}

proptest! {
    #[test]
    fn random_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        exercise(&bytes);
    }

    #[test]
    fn random_bodies(kind in 0u8..7, body in proptest::collection::vec(any::<u8>(), 0..300)) {
        let mut m = vec![0xff; 16];
        m.extend(((19 + body.len()) as u16).to_be_bytes());
        m.push(kind);
        m.extend(body);
        exercise(&m);
    }

    #[test]
    fn random_attribute_lists(attrs in proptest::collection::vec(
        (any::<u8>(), 0u8..40, proptest::collection::vec(any::<u8>(), 0..40)), 0..6),
        nlri in proptest::collection::vec(any::<u8>(), 0..10),
    ) {
        // Plausible attribute headers with random values.
        let mut list = Vec::new();
        for (flags, code, value) in attrs {
            list.push(flags & !0x10);
            list.push(code);
            list.push(value.len() as u8);
            list.extend(value);
        }
        let mut m = vec![0xff; 16];
        m.extend([0, 0, 2, 0, 0]);
        m.extend((list.len() as u16).to_be_bytes());
        m.extend(list);
        m.extend(nlri);
        exercise(&with_len(m));
    }

    #[test]
    fn updates_round_trip(
        prefixes in proptest::collection::vec((any::<u128>(), 0u8..=128), 0..20),
        withdrawn in proptest::collection::vec((any::<u128>(), 0u8..=128), 0..20),
        path in proptest::collection::vec(1u32.., 0..10),
        med in proptest::option::of(any::<u32>()),
        communities in proptest::collection::vec(any::<u32>(), 0..5),
        large in proptest::collection::vec(any::<(u32, u32, u32)>(), 0..3),
        link_local in any::<bool>(),
    ) {
        let net = |(a, l): (u128, u8)| Ipv6Net::new(Ipv6Addr::from(a), l).unwrap().trunc();
        let ctx = CONTEXTS[1];
        let u = UpdateRepr {
            attributes: PathAttributes {
                origin: Some(Origin::Igp),
                as_path: Some(AsPath::sequence(path.into_iter().map(Asn))),
                med,
                communities: communities.into_iter().map(Community).collect(),
                large_communities: large
                    .into_iter()
                    .map(|(global, local1, local2)| LargeCommunity { global, local1, local2 })
                    .collect(),
                mp_reach: Some(MpReach::Ipv6Unicast {
                    next_hop: Ipv6NextHop {
                        global: "2001:db8::1".parse().unwrap(),
                        link_local: link_local.then(|| "fe80::1".parse().unwrap()),
                    },
                    nlri: prefixes.into_iter().map(net).collect(),
                }),
                mp_unreach: Some(MpUnreach::Ipv6Unicast {
                    withdrawn: withdrawn.into_iter().map(net).collect(),
                }),
                ..PathAttributes::default()
            },
            ..UpdateRepr::default()
        };
        let m = Message::Update(u.clone().into());
        let bytes = m.to_bytes(&ctx).unwrap();
        prop_assert_eq!(Message::parse(&bytes, &ctx), Ok(m));
    }
}
