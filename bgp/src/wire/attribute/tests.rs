//! Attribute encodings that depend on the context, and emission order.

use super::*;

const CTX2: Context = Context {
    four_octet_as: false,
    extended_messages: false,
    external: false,
};
const CTX4: Context = Context {
    four_octet_as: true,
    extended_messages: false,
    external: false,
};

fn emit(a: &PathAttributes, ctx: &Context) -> Vec<u8> {
    let mut buf = vec![0xff; a.buffer_len(ctx)];
    a.emit(&mut buf, ctx);
    buf
}

fn parse_ok(buf: &[u8], ctx: &Context) -> PathAttributes {
    let p = parse(buf, ctx).unwrap();
    assert!(
        p.discarded.is_empty() && p.treat_as_withdraw.is_none(),
        "{p:?}"
    );
    p.attrs
}

fn path() -> AsPath {
    AsPath {
        segments: vec![
            AsSegment {
                kind: SegmentType::Sequence,
                asns: vec![Asn(65001), Asn(4_200_000_000)],
            },
            AsSegment {
                kind: SegmentType::Set,
                asns: vec![Asn(64512)],
            },
        ],
    }
}

#[test]
fn as_path_four_octet() {
    let bytes = [
        0x40, 2, 16, 2, 2, 0, 0, 0xfd, 0xe9, 0xfa, 0x56, 0xea, 0x00, 1, 1, 0, 0, 0xfc, 0x00,
    ];
    let attrs = PathAttributes {
        as_path: Some(path()),
        ..PathAttributes::default()
    };
    assert_eq!(parse_ok(&bytes, &CTX4), attrs);
    assert_eq!(emit(&attrs, &CTX4), bytes);
    assert_eq!(path().path_len(), 3);
    assert_eq!(path().first_asn(), Some(Asn(65001)));
}

#[test]
fn as_path_two_octet() {
    // 4200000000 goes out as AS_TRANS.
    let bytes = [0x40, 2, 10, 2, 2, 0xfd, 0xe9, 0x5b, 0xa0, 1, 1, 0xfc, 0x00];
    let attrs = PathAttributes {
        as_path: Some(path()),
        ..PathAttributes::default()
    };
    assert_eq!(emit(&attrs, &CTX2), bytes);
    let back = parse_ok(&bytes, &CTX2);
    assert_eq!(
        back.as_path.unwrap().segments[0].asns,
        [Asn(65001), Asn::TRANS]
    );
}

#[test]
fn as_path_long_segment_split() {
    let attrs = PathAttributes {
        as_path: Some(AsPath::sequence((0..300).map(Asn))),
        ..PathAttributes::default()
    };
    let bytes = emit(&attrs, &CTX4);
    let back = parse_ok(&bytes, &CTX4).as_path.unwrap();
    assert_eq!(back.segments.len(), 2);
    assert_eq!(back.segments[0].asns.len(), 255);
    assert_eq!(back.path_len(), 300);
}

#[test]
fn empty_as_path() {
    let bytes = [0x40, 2, 0];
    assert_eq!(parse_ok(&bytes, &CTX4).as_path, Some(AsPath::default()));
}

#[test]
fn aggregator_both_widths() {
    let agg = Aggregator {
        asn: Asn(65001),
        address: [10, 0, 0, 2].into(),
    };
    let attrs = PathAttributes {
        aggregator: Some(agg),
        atomic_aggregate: true,
        ..PathAttributes::default()
    };
    let b4 = [0x40, 6, 0, 0xc0, 7, 8, 0, 0, 0xfd, 0xe9, 10, 0, 0, 2];
    let b2 = [0x40, 6, 0, 0xc0, 7, 6, 0xfd, 0xe9, 10, 0, 0, 2];
    assert_eq!(emit(&attrs, &CTX4), b4);
    assert_eq!(emit(&attrs, &CTX2), b2);
    assert_eq!(parse_ok(&b4, &CTX4), attrs);
    assert_eq!(parse_ok(&b2, &CTX2), attrs);
    // The 4-octet form on a 2-octet session is discarded.
    assert_eq!(parse(&b4, &CTX2).unwrap().discarded.len(), 1);
}

#[test]
fn med_local_pref_communities() {
    let attrs = PathAttributes {
        med: Some(10),
        local_pref: Some(200),
        communities: vec![Community::new(65001, 100), Community::NO_EXPORT],
        large_communities: vec![LargeCommunity {
            global: 65001,
            local1: 1,
            local2: 2,
        }],
        ..PathAttributes::default()
    };
    let bytes = [
        0x80, 4, 4, 0, 0, 0, 10, // MED
        0x40, 5, 4, 0, 0, 0, 200, // LOCAL_PREF
        0xc0, 8, 8, 0xfd, 0xe9, 0, 100, 0xff, 0xff, 0xff, 0x01, // COMMUNITIES
        0xc0, 32, 12, 0, 0, 0xfd, 0xe9, 0, 0, 0, 1, 0, 0, 0, 2, // LARGE_COMMUNITY
    ];
    assert_eq!(emit(&attrs, &CTX4), bytes);
    assert_eq!(parse_ok(&bytes, &CTX4), attrs);
}

#[test]
fn emitted_mp_first_then_in_type_order_with_unknowns() {
    let attrs = PathAttributes {
        origin: Some(Origin::Egp),
        large_communities: vec![LargeCommunity {
            global: 1,
            local1: 2,
            local2: 3,
        }],
        unknown: vec![UnknownAttribute {
            flags: AttributeFlags(0xc0),
            type_code: 16,
            value: vec![0; 8],
        }],
        mp_unreach: Some(MpUnreach::Ipv6Unicast {
            withdrawn: Vec::new(),
        }),
        ..PathAttributes::default()
    };
    let bytes = emit(&attrs, &CTX4);
    let mut codes = Vec::new();
    let mut rest = &bytes[..];
    while let Some(a) = AttributePacket::new_checked(rest) {
        codes.push(a.type_code());
        rest = &rest[a.total_len()..];
    }
    // RFC 7606 section 5.1: MP_UNREACH_NLRI first.
    assert_eq!(codes, [15, 1, 16, 32]);
    assert_eq!(parse_ok(&bytes, &CTX4), attrs);
}

#[test]
fn attribute_view() {
    let a = AttributePacket::new_checked(&[0x50, 8, 0, 4, 1, 2, 3, 4, 9][..]).unwrap();
    assert!(a.flags().extended_length());
    assert_eq!(a.header_len(), 4);
    assert_eq!(a.value(), [1, 2, 3, 4]);
    assert_eq!(a.raw().len(), 8);
    assert!(AttributePacket::new_checked(&[0x50, 8, 0][..]).is_none());
    assert!(AttributePacket::new_checked(&[0x40, 8, 5, 0][..]).is_none());
}
