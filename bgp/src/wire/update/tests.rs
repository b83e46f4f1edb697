//! UPDATE decoding: one test per RFC 7606 outcome.

use std::net::Ipv6Addr;

use super::*;
use crate::wire::attribute::{AsPath, AttributeFlags, Ipv6NextHop, Origin, UnknownAttribute};
use crate::wire::{Action, Asn};

const CTX4: Context = Context {
    four_octet_as: true,
    extended_messages: false,
    external: false,
};

const ORIGIN: [u8; 4] = [0x40, 1, 1, 0];
/// AS_SEQUENCE [65001], 4-octet.
const AS_PATH: [u8; 9] = [0x40, 2, 6, 2, 1, 0, 0, 0xfd, 0xe9];
/// 2001:db8:100::/64.
const PFX: [u8; 9] = [64, 0x20, 0x01, 0x0d, 0xb8, 0x01, 0x00, 0, 0];
const NH: [u8; 16] = [
    0x20, 0x01, 0x0d, 0xb8, 0, 0x0f, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2,
];

fn body(withdrawn: &[u8], attrs: &[u8], nlri: &[u8]) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend((withdrawn.len() as u16).to_be_bytes());
    b.extend(withdrawn);
    b.extend((attrs.len() as u16).to_be_bytes());
    b.extend(attrs);
    b.extend(nlri);
    b
}

fn attr(flags: u8, code: u8, value: &[u8]) -> Vec<u8> {
    let mut a = vec![flags, code, value.len() as u8];
    a.extend(value);
    a
}

fn mp_reach(nlri: &[u8]) -> Vec<u8> {
    let mut v = vec![0, 2, 1, 16];
    v.extend(NH);
    v.push(0);
    v.extend(nlri);
    attr(0x80, 14, &v)
}

/// ORIGIN, AS_PATH and MP_REACH_NLRI for [`PFX`], in the order we send
/// them (MP_REACH_NLRI first, RFC 7606 section 5.1).
fn good_attrs() -> Vec<u8> {
    [&mp_reach(&PFX)[..], &ORIGIN, &AS_PATH].concat()
}

fn parse(b: &[u8]) -> Result<ParsedUpdate, Error> {
    UpdateRepr::parse(&UpdatePacket::new_unchecked(b), &CTX4)
}

/// Parses an UPDATE from an external peer (a session reset panics).
fn parse_external(b: &[u8]) -> ParsedUpdate {
    let ext = Context {
        external: true,
        ..CTX4
    };
    UpdateRepr::parse(&UpdatePacket::new_unchecked(b), &ext).unwrap()
}

fn pfx() -> Ipv6Net {
    "2001:db8:100::/64".parse().unwrap()
}

fn emit(u: &UpdateRepr) -> Vec<u8> {
    let mut buf = vec![0xff; u.buffer_len(&CTX4)];
    u.emit(&mut buf, &CTX4);
    buf
}

/// Parses attributes that must lead to treat-as-withdraw with `reason`.
fn assert_withdraw(attrs: &[u8], reason: Error) {
    let p = parse(&body(&[], attrs, &[])).expect("not a session reset");
    assert_eq!(p.treat_as_withdraw, Some(reason));
    assert!(p.ipv6_announced().is_empty());
    assert_eq!(p.ipv6_withdrawn().collect::<Vec<_>>(), [&pfx()]);
}

#[test]
fn announce_round_trip() {
    let bytes = body(&[], &good_attrs(), &[]);
    let p = parse(&bytes).unwrap();
    assert_eq!(p.treat_as_withdraw, None);
    assert!(p.discarded.is_empty());
    let a = &p.update.attributes;
    assert_eq!(a.origin, Some(Origin::Igp));
    assert_eq!(a.as_path, Some(AsPath::sequence([Asn(65001)])));
    assert_eq!(p.ipv6_announced(), [pfx()]);
    assert_eq!(p.ipv6_withdrawn().count(), 0);
    assert_eq!(p.update.end_of_rib_family(), None);
    assert_eq!(emit(&p.update), bytes);
    // Taken in any order (GoBGP sends type order).
    let type_order = [&ORIGIN[..], &AS_PATH, &mp_reach(&PFX)].concat();
    let q = parse(&body(&[], &type_order, &[])).unwrap();
    assert_eq!(q.update, p.update);
}

#[test]
fn ipv4_announce_and_withdraw_round_trip() {
    let attrs = [&ORIGIN[..], &AS_PATH, &attr(0x40, 3, &[192, 0, 2, 1])].concat();
    let bytes = body(&[24, 10, 0, 1], &attrs, &[8, 10, 32, 192, 0, 2, 7]);
    let p = parse(&bytes).unwrap();
    assert_eq!(p.treat_as_withdraw, None);
    assert_eq!(p.update.withdrawn, ["10.0.1.0/24".parse().unwrap()]);
    assert_eq!(p.ipv4_announced().len(), 2);
    assert_eq!(p.update.attributes.next_hop, Some([192, 0, 2, 1].into()));
    assert_eq!(emit(&p.update), bytes);
}

#[test]
fn link_local_next_hop_round_trip() {
    let mut v = vec![0, 2, 1, 32];
    v.extend(NH);
    v.extend([0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
    v.push(0);
    v.extend(PFX);
    let bytes = body(
        &[],
        &[&attr(0x80, 14, &v)[..], &ORIGIN, &AS_PATH].concat(),
        &[],
    );
    let p = parse(&bytes).unwrap();
    let Some(MpReach::Ipv6Unicast { next_hop, .. }) = &p.update.attributes.mp_reach else {
        panic!("{p:?}");
    };
    assert_eq!(
        *next_hop,
        Ipv6NextHop {
            global: Ipv6Addr::from(NH),
            link_local: Some("fe80::1".parse().unwrap()),
        }
    );
    assert_eq!(emit(&p.update), bytes);
}

#[test]
fn other_family_kept_raw() {
    // IPv4 unicast over MP with an IPv6 next hop (RFC 8950).
    let mut v = vec![0, 1, 1, 16];
    v.extend(NH);
    v.extend([0, 24, 10, 0, 0]);
    let bytes = body(
        &[],
        &[&attr(0x80, 14, &v)[..], &ORIGIN, &AS_PATH].concat(),
        &[],
    );
    let p = parse(&bytes).unwrap();
    assert!(matches!(
        &p.update.attributes.mp_reach,
        Some(MpReach::Other { afi: Afi::Ipv4, safi: Safi::Unicast, nlri, .. }) if nlri == &[24, 10, 0, 0]
    ));
    assert_eq!(emit(&p.update), bytes);
}

#[test]
fn host_bits_masked_in_mp_reach() {
    let mut p = PFX;
    p[8] = 0x01; // inside the /64: fine. Past it:
    let nlri = [
        &p[..],
        &[60, 0x20, 0x01, 0x0d, 0xb8, 0x01, 0x00, 0x00, 0x0f],
    ]
    .concat();
    let bytes = body(
        &[],
        &[&ORIGIN[..], &AS_PATH, &mp_reach(&nlri)].concat(),
        &[],
    );
    let got = parse(&bytes).unwrap();
    assert_eq!(
        got.ipv6_announced(),
        [
            "2001:db8:100:1::/64".parse().unwrap(),
            "2001:db8:100::/60".parse().unwrap()
        ]
    );
}

#[test]
fn end_of_rib_ipv4() {
    let bytes = [0, 0, 0, 0];
    let p = parse(&bytes).unwrap();
    assert_eq!(
        p.update.end_of_rib_family(),
        Some((Afi::Ipv4, Safi::Unicast))
    );
    assert_eq!(
        emit(&UpdateRepr::end_of_rib(Afi::Ipv4, Safi::Unicast)),
        bytes
    );
}

#[test]
fn end_of_rib_ipv6() {
    let bytes = body(&[], &[0x80, 15, 3, 0, 2, 1], &[]);
    let p = parse(&bytes).unwrap();
    assert_eq!(
        p.update.end_of_rib_family(),
        Some((Afi::Ipv6, Safi::Unicast))
    );
    assert_eq!(
        emit(&UpdateRepr::end_of_rib(Afi::Ipv6, Safi::Unicast)),
        bytes
    );
}

#[test]
fn not_end_of_rib() {
    // A withdrawal.
    let b = body(&[], &attr(0x80, 15, &[&[0, 2, 1][..], &PFX].concat()), &[]);
    assert_eq!(parse(&b).unwrap().update.end_of_rib_family(), None);
    // An empty MP_UNREACH_NLRI with another attribute.
    let b = body(&[], &[&ORIGIN[..], &[0x80, 15, 3, 0, 2, 1]].concat(), &[]);
    assert_eq!(parse(&b).unwrap().update.end_of_rib_family(), None);
}

// Session reset.

#[test]
fn reject_body_too_short() {
    assert_eq!(parse(&[0, 0, 0]), Err(Error::MalformedAttributeList));
}

#[test]
fn reject_withdrawn_length_overrun() {
    assert_eq!(parse(&[0, 5, 0, 0]), Err(Error::MalformedAttributeList));
    assert_eq!(parse(&[0, 2, 0, 0, 0]), Err(Error::MalformedAttributeList));
}

#[test]
fn reject_attribute_length_overrun() {
    assert_eq!(parse(&[0, 0, 0, 1]), Err(Error::MalformedAttributeList));
}

#[test]
fn reject_bad_withdrawn_prefix() {
    assert_eq!(
        parse(&body(&[33, 1, 2, 3, 4, 5], &[], &[])),
        Err(Error::InvalidNetworkField)
    );
}

#[test]
fn reject_bad_nlri_prefix() {
    let attrs = [&ORIGIN[..], &AS_PATH, &attr(0x40, 3, &[192, 0, 2, 1])].concat();
    assert_eq!(
        parse(&body(&[], &attrs, &[24, 10])),
        Err(Error::InvalidNetworkField)
    );
}

#[test]
fn reject_mp_reach_next_hop_length() {
    let mut v = vec![0, 2, 1, 4, 192, 0, 2, 1, 0];
    v.extend(PFX);
    let a = attr(0x80, 14, &v);
    assert_eq!(parse(&body(&[], &a, &[])), Err(Error::OptionalAttribute(a)));
}

#[test]
fn reject_mp_reach_bad_prefix() {
    let a = mp_reach(&[129, 0]);
    assert_eq!(parse(&body(&[], &a, &[])), Err(Error::OptionalAttribute(a)));
    let a = mp_reach(&PFX[..5]);
    assert_eq!(parse(&body(&[], &a, &[])), Err(Error::OptionalAttribute(a)));
}

#[test]
fn reject_mp_reach_truncated() {
    let a = attr(0x80, 14, &[0, 2, 1, 16, 0x20]);
    assert_eq!(parse(&body(&[], &a, &[])), Err(Error::OptionalAttribute(a)));
}

#[test]
fn reject_mp_unreach_bad_prefix() {
    let a = attr(0x80, 15, &[0, 2, 1, 200]);
    assert_eq!(parse(&body(&[], &a, &[])), Err(Error::OptionalAttribute(a)));
    let a = attr(0x80, 15, &[0, 2]);
    assert_eq!(parse(&body(&[], &a, &[])), Err(Error::OptionalAttribute(a)));
}

#[test]
fn reject_mp_reach_flags() {
    let mut a = mp_reach(&PFX);
    a[0] = 0x40;
    assert_eq!(parse(&body(&[], &a, &[])), Err(Error::AttributeFlags(a)));
}

#[test]
fn reject_duplicate_mp_attributes() {
    let reach = [good_attrs(), mp_reach(&PFX)].concat();
    assert_eq!(
        parse(&body(&[], &reach, &[])),
        Err(Error::MalformedAttributeList)
    );
    let eor = [0x80, 15, 3, 0, 2, 1];
    let unreach = [&eor[..], &eor].concat();
    assert_eq!(
        parse(&body(&[], &unreach, &[])),
        Err(Error::MalformedAttributeList)
    );
}

#[test]
fn reject_unrecognized_well_known() {
    let a = attr(0x40, 99, &[1, 2]);
    assert_eq!(
        parse(&body(&[], &[good_attrs(), a.clone()].concat(), &[])),
        Err(Error::UnrecognizedWellKnownAttribute(a))
    );
}

#[test]
fn reject_truncated_list_without_nlri() {
    // MP_REACH_NLRI would come after the broken attribute: unseen.
    let attrs = [&ORIGIN[..], &[0x40, 2, 200, 2, 1]].concat();
    assert_eq!(
        parse(&body(&[], &attrs, &[])),
        Err(Error::MalformedAttributeList)
    );
}

#[test]
fn reject_truncated_mp_attribute_behind_a_good_one() {
    // RFC 7606 section 3: an MP_UNREACH_NLRI that overruns the list hides
    // the prefixes it withdraws; the MP_REACH_NLRI before it does not make
    // treat-as-withdraw enough (2001:db8:2::/48 would stay installed).
    let unreach = [0x80, 15, 32, 0, 2, 1, 48, 0x20, 1, 0x0d, 0xb8, 0, 2];
    let attrs = [good_attrs(), unreach.to_vec()].concat();
    assert_eq!(
        parse(&body(&[], &attrs, &[])),
        Err(Error::MalformedAttributeList)
    );
    // An MP_REACH_NLRI cut short behind IPv4 NLRI: those do not cover it.
    let reach = [
        &ORIGIN[..],
        &AS_PATH,
        &[0x40, 3, 4, 10, 0, 0, 1],
        &[0x80, 14, 255, 0, 2, 1],
    ]
    .concat();
    assert_eq!(
        parse(&body(&[], &reach, &[8, 10])),
        Err(Error::MalformedAttributeList)
    );
    // A lone flags octet: the type is unknown, so it may be either.
    let attrs = [good_attrs(), vec![0x80]].concat();
    assert_eq!(
        parse(&body(&[], &attrs, &[])),
        Err(Error::MalformedAttributeList)
    );
}

// Treat-as-withdraw.

#[test]
fn withdraw_attribute_overrun() {
    let broken = [0xc0, 8, 9, 0, 0];
    let attrs = [mp_reach(&PFX), ORIGIN.to_vec(), broken.to_vec()].concat();
    assert_withdraw(&attrs, Error::AttributeLength(broken.to_vec()));
}

#[test]
fn withdraw_short_attribute_header() {
    let attrs = [
        mp_reach(&PFX),
        ORIGIN.to_vec(),
        AS_PATH.to_vec(),
        vec![0x40, 1],
    ]
    .concat();
    assert_withdraw(&attrs, Error::AttributeLength(vec![0x40, 1]));
    // Extended length bit set: 4 octets of header needed.
    let attrs = [
        mp_reach(&PFX),
        ORIGIN.to_vec(),
        AS_PATH.to_vec(),
        vec![0x50, 1, 0],
    ]
    .concat();
    assert_withdraw(&attrs, Error::AttributeLength(vec![0x50, 1, 0]));
}

#[test]
fn withdraw_origin_value() {
    let a = attr(0x40, 1, &[3]);
    assert_withdraw(
        &[&a[..], &AS_PATH, &mp_reach(&PFX)].concat(),
        Error::InvalidOrigin(a),
    );
}

#[test]
fn withdraw_origin_length() {
    let a = attr(0x40, 1, &[0, 0]);
    assert_withdraw(
        &[&a[..], &AS_PATH, &mp_reach(&PFX)].concat(),
        Error::AttributeLength(a),
    );
}

#[test]
fn withdraw_origin_flags() {
    let a = attr(0xc0, 1, &[0]);
    assert_withdraw(
        &[&a[..], &AS_PATH, &mp_reach(&PFX)].concat(),
        Error::AttributeFlags(a),
    );
}

#[test]
fn withdraw_as_path_malformed() {
    for value in [
        &[5u8, 1, 0, 0, 0xfd, 0xe9][..], // unknown segment type
        &[2, 0],                         // zero-length segment
        &[2, 2, 0, 0, 0xfd, 0xe9],       // overrun
        &[2, 1, 0, 0, 0xfd, 0xe9, 2],    // one octet left over
    ] {
        let a = attr(0x40, 2, value);
        assert_withdraw(
            &[&ORIGIN[..], &a, &mp_reach(&PFX)].concat(),
            Error::MalformedAsPath,
        );
    }
}

#[test]
fn withdraw_next_hop_length() {
    let nh = attr(0x40, 3, &[192, 0, 2]);
    assert_withdraw(
        &[good_attrs(), nh.clone()].concat(),
        Error::AttributeLength(nh),
    );
}

#[test]
fn withdraw_med_and_local_pref_length() {
    for code in [4u8, 5] {
        let flags = if code == 4 { 0x80 } else { 0x40 };
        let a = attr(flags, code, &[0, 0, 1]);
        assert_withdraw(
            &[good_attrs(), a.clone()].concat(),
            Error::AttributeLength(a),
        );
    }
}

#[test]
fn local_pref_from_an_external_peer_is_ignored() {
    // RFC 7606 section 7.5: discarded when malformed, not treat-as-withdraw;
    // RFC 4271 section 5.1.5: ignored when well formed.
    for a in [
        attr(0x40, 5, &[0, 0, 1]),
        attr(0x80, 5, &[0, 0, 0, 100]),
        attr(0x40, 5, &[0, 0, 0, 100]),
    ] {
        let bytes = body(&[], &[good_attrs(), a.clone()].concat(), &[]);
        let p = parse_external(&bytes);
        assert_eq!(p.treat_as_withdraw, None, "{a:?}");
        assert_eq!(p.ipv6_announced(), [pfx()], "{a:?}");
        assert_eq!(p.update.attributes.local_pref, None, "{a:?}");
        assert_eq!(
            p.discarded.len(),
            usize::from(a != attr(0x40, 5, &[0, 0, 0, 100]))
        );
    }
}

#[test]
fn known_optional_attributes_are_checked_not_fatal() {
    // AS4_PATH with the Optional bit clear: malformed (RFC 7606 section
    // 3 (c)), discarded (RFC 6793 section 6), not a session reset.
    let as4 = attr(0x40, 17, &[2, 1, 0, 0, 0xfd, 0xe9]);
    let p = parse(&body(&[], &[good_attrs(), as4].concat(), &[])).unwrap();
    assert_eq!(p.treat_as_withdraw, None);
    assert_eq!(p.discarded.len(), 1);
    assert_eq!(p.ipv6_announced(), [pfx()]);
    // Well formed: passed on from a 2-octet session, discarded between
    // two 4-octet speakers (RFC 6793 section 3).
    let as4 = attr(0xc0, 17, &[2, 1, 0, 0, 0xfd, 0xe9]);
    let bytes = body(&[], &[good_attrs(), as4].concat(), &[]);
    let p = parse(&bytes).unwrap();
    assert!(p.discarded.is_empty());
    assert!(p.update.attributes.unknown.is_empty());
    let two_octet = Context {
        four_octet_as: false,
        ..CTX4
    };
    let old_as_path = attr(0x40, 2, &[2, 1, 0xfd, 0xe9]);
    let as4 = attr(0xc0, 17, &[2, 1, 0, 0, 0xfd, 0xe9]);
    let attrs = [&ORIGIN[..], &old_as_path, &mp_reach(&PFX), &as4].concat();
    let bytes = body(&[], &attrs, &[]);
    let p = UpdateRepr::parse(&UpdatePacket::new_unchecked(&bytes[..]), &two_octet).unwrap();
    assert!(p.discarded.is_empty());
    assert_eq!(p.update.attributes.unknown.len(), 1);
    // Extended communities, ORIGINATOR_ID and CLUSTER_LIST of a wrong
    // length or with wrong flags: treat-as-withdraw (sections 7.9, 7.10,
    // 7.14).
    for a in [
        attr(0xc0, 16, &[0; 7]),
        attr(0x40, 16, &[0; 8]),
        attr(0x80, 9, &[0; 3]),
        attr(0x80, 10, &[0; 6]),
        attr(0x40, 10, &[0; 4]),
    ] {
        let p = parse(&body(&[], &[good_attrs(), a.clone()].concat(), &[])).unwrap();
        assert!(p.treat_as_withdraw.is_some(), "{a:?}");
        assert!(p.ipv6_announced().is_empty(), "{a:?}");
    }
}

#[test]
fn withdraw_communities_length() {
    for value in [&[0u8, 0, 0, 1, 2][..], &[]] {
        let a = attr(0xc0, 8, value);
        assert_withdraw(
            &[good_attrs(), a.clone()].concat(),
            Error::AttributeLength(a),
        );
    }
}

#[test]
fn withdraw_large_communities_length() {
    let a = attr(0xc0, 32, &[0; 13]);
    assert_withdraw(
        &[good_attrs(), a.clone()].concat(),
        Error::AttributeLength(a),
    );
}

#[test]
fn withdraw_missing_origin() {
    assert_withdraw(
        &[&AS_PATH[..], &mp_reach(&PFX)].concat(),
        Error::MissingWellKnownAttribute(1),
    );
}

#[test]
fn withdraw_missing_as_path() {
    assert_withdraw(
        &[&ORIGIN[..], &mp_reach(&PFX)].concat(),
        Error::MissingWellKnownAttribute(2),
    );
}

#[test]
fn withdraw_missing_next_hop_for_ipv4() {
    let p = parse(&body(&[], &[&ORIGIN[..], &AS_PATH].concat(), &[8, 10])).unwrap();
    assert_eq!(
        p.treat_as_withdraw,
        Some(Error::MissingWellKnownAttribute(3))
    );
    assert!(p.ipv4_announced().is_empty());
    assert_eq!(p.ipv4_withdrawn().count(), 1);
}

#[test]
fn no_mandatory_attributes_needed_without_nlri() {
    let a = attr(0x80, 15, &[&[0, 2, 1][..], &PFX].concat());
    let p = parse(&body(&[], &a, &[])).unwrap();
    assert_eq!(p.treat_as_withdraw, None);
    assert_eq!(p.ipv6_withdrawn().collect::<Vec<_>>(), [&pfx()]);
}

// Attribute discard.

#[test]
fn discard_atomic_aggregate_length() {
    let a = attr(0x40, 6, &[1]);
    let p = parse(&body(&[], &[good_attrs(), a.clone()].concat(), &[])).unwrap();
    assert_eq!(p.treat_as_withdraw, None);
    assert_eq!(p.discarded, [Error::AttributeLength(a)]);
    assert!(!p.update.attributes.atomic_aggregate);
    assert_eq!(p.ipv6_announced(), [pfx()]);
}

#[test]
fn discard_atomic_aggregate_flags() {
    let a = attr(0xc0, 6, &[]);
    let p = parse(&body(&[], &[good_attrs(), a.clone()].concat(), &[])).unwrap();
    assert_eq!(p.discarded, [Error::AttributeFlags(a)]);
}

#[test]
fn discard_aggregator_length() {
    let a = attr(0xc0, 7, &[0, 0, 0xfd, 0xe9, 10, 0, 0]);
    let p = parse(&body(&[], &[good_attrs(), a.clone()].concat(), &[])).unwrap();
    assert_eq!(p.treat_as_withdraw, None);
    assert_eq!(p.discarded, [Error::AttributeLength(a)]);
    assert_eq!(p.update.attributes.aggregator, None);
}

#[test]
fn discard_duplicate_attribute() {
    let second = attr(0x40, 1, &[2]);
    let p = parse(&body(&[], &[good_attrs(), second].concat(), &[])).unwrap();
    assert_eq!(p.update.attributes.origin, Some(Origin::Igp));
    assert_eq!(p.discarded, [Error::MalformedAttributeList]);
    assert_eq!(p.treat_as_withdraw, None);
}

#[test]
fn strongest_action_wins() {
    // Discard and treat-as-withdraw: both recorded, the UPDATE is withdrawn.
    let bad_agg = attr(0xc0, 7, &[0]);
    let bad_med = attr(0x80, 4, &[0]);
    let attrs = [good_attrs(), bad_agg.clone(), bad_med.clone()].concat();
    let p = parse(&body(&[], &attrs, &[])).unwrap();
    assert_eq!(p.discarded, [Error::AttributeLength(bad_agg)]);
    assert_eq!(
        p.treat_as_withdraw,
        Some(Error::AttributeLength(bad_med.clone()))
    );
    // Treat-as-withdraw then session reset: session reset.
    let bad_mp = attr(0x80, 15, &[0, 2, 1, 129]);
    let attrs = [good_attrs(), bad_med, bad_mp.clone()].concat();
    assert_eq!(
        parse(&body(&[], &attrs, &[])),
        Err(Error::OptionalAttribute(bad_mp))
    );
    assert!(Action::SessionReset > Action::TreatAsWithdraw);
}

// Unknown attributes.

#[test]
fn unknown_optional_transitive_kept() {
    let a = attr(0xe0, 99, &[1, 2, 3]);
    let bytes = body(&[], &[good_attrs(), a].concat(), &[]);
    let p = parse(&bytes).unwrap();
    assert_eq!(
        p.update.attributes.unknown,
        [UnknownAttribute {
            flags: AttributeFlags(0xe0),
            type_code: 99,
            value: vec![1, 2, 3],
        }]
    );
    assert_eq!(emit(&p.update), bytes);
}

#[test]
fn unknown_optional_non_transitive_ignored() {
    // ORIGINATOR_ID (9) from a route reflector: not decoded, not kept.
    let a = attr(0x80, 9, &[10, 0, 0, 1]);
    let p = parse(&body(&[], &[good_attrs(), a].concat(), &[])).unwrap();
    assert!(p.update.attributes.unknown.is_empty());
    assert!(p.discarded.is_empty());
    assert_eq!(p.treat_as_withdraw, None);
}

#[test]
fn extended_length_and_partial_bits_accepted() {
    // ORIGIN with the extended length bit, COMMUNITIES with the partial bit.
    let origin = [0x50, 1, 0, 1, 2];
    let comm = attr(0xe0, 8, &[0xfd, 0xe9, 0, 100]);
    let attrs = [&origin[..], &AS_PATH, &comm, &mp_reach(&PFX)].concat();
    let p = parse(&body(&[], &attrs, &[])).unwrap();
    assert_eq!(p.treat_as_withdraw, None);
    assert_eq!(p.update.attributes.origin, Some(Origin::Incomplete));
    assert_eq!(p.update.attributes.communities.len(), 1);
}

#[test]
fn long_attribute_uses_extended_length() {
    let nlri: Vec<Ipv6Net> = (0..40u16)
        .map(|i| Ipv6Net::new(Ipv6Addr::new(0x2001, 0xdb8, i, 0, 0, 0, 0, 0), 64).unwrap())
        .collect();
    let u = UpdateRepr {
        attributes: PathAttributes {
            origin: Some(Origin::Igp),
            as_path: Some(AsPath::sequence([Asn(65001)])),
            mp_reach: Some(MpReach::Ipv6Unicast {
                next_hop: Ipv6NextHop {
                    global: Ipv6Addr::from(NH),
                    link_local: None,
                },
                nlri: nlri.clone(),
            }),
            ..PathAttributes::default()
        },
        ..UpdateRepr::default()
    };
    let bytes = emit(&u);
    // MP_REACH_NLRI first, with flags 0x90 (extended length).
    assert_eq!(&bytes[4..6], &[0x90, 14]);
    let p = parse(&bytes).unwrap();
    assert_eq!(p.ipv6_announced(), nlri);
}

#[test]
fn originator_id_and_cluster_list_from_an_external_peer_are_discarded() {
    // RFC 7606 sections 7.9 and 7.10: from an external neighbour they are
    // discarded, malformed or not; the routes stay announced.
    for a in [
        attr(0x80, 9, &[10, 0, 0, 1, 0]),
        attr(0xc0, 10, &[10, 0, 0, 1]),
        attr(0x80, 10, &[0; 6]),
        attr(0x80, 9, &[10, 0, 0, 1]),
    ] {
        let bytes = body(&[], &[good_attrs(), a.clone()].concat(), &[]);
        let p = parse_external(&bytes);
        assert_eq!(p.treat_as_withdraw, None, "{a:?}");
        assert_eq!(p.ipv6_announced(), [pfx()], "{a:?}");
    }
}

#[test]
fn reject_an_attribute_error_without_reachable_nlri() {
    // RFC 7606 section 5.2: an UPDATE with attributes besides
    // MP_UNREACH_NLRI and no reachable NLRI resets the session on any
    // error that is not attribute discard. Here ORIGIN's length covers
    // the AS_PATH and the MP_REACH_NLRI after it: treat-as-withdraw would
    // withdraw nothing and lose the announcement.
    let hidden = [&AS_PATH[..], &mp_reach(&PFX)].concat();
    let mut origin = vec![0x40, 1, hidden.len() as u8 + 1, 0];
    origin.extend(&hidden);
    assert!(matches!(
        parse(&body(&[], &origin, &[])),
        Err(Error::AttributeLength(_))
    ));
    // A bad ORIGIN beside no NLRI at all, and beside an empty MP_UNREACH
    // (which would otherwise read as an IPv6 End-of-RIB).
    let bad_origin = attr(0x40, 1, &[7]);
    assert!(matches!(
        parse(&body(
            &[],
            &[bad_origin.clone(), AS_PATH.to_vec()].concat(),
            &[]
        )),
        Err(Error::InvalidOrigin(_))
    ));
    let eor = attr(0x80, 15, &[0, 2, 1]);
    assert!(matches!(
        parse(&body(&[], &[eor.clone(), bad_origin.clone()].concat(), &[])),
        Err(Error::InvalidOrigin(_))
    ));
    // An MP_REACH_NLRI without prefixes is no reachable NLRI either.
    let empty_reach = [bad_origin.clone(), AS_PATH.to_vec(), mp_reach(&[])].concat();
    assert!(parse(&body(&[], &empty_reach, &[])).is_err());
    // Attribute discard alone is no reason: the End-of-RIB with a
    // malformed ATOMIC_AGGREGATE beside it parses.
    let p = parse(&body(&[], &[eor, attr(0x40, 6, &[1])].concat(), &[])).unwrap();
    assert_eq!(p.treat_as_withdraw, None);
    assert_eq!(p.discarded.len(), 1);
    // With the NLRI present, the same bad ORIGIN is treat-as-withdraw.
    let p = parse(&body(
        &[],
        &[bad_origin, AS_PATH.to_vec(), mp_reach(&PFX)].concat(),
        &[],
    ))
    .unwrap();
    assert!(p.treat_as_withdraw.is_some());
    assert_eq!(p.ipv6_withdrawn().collect::<Vec<_>>(), [&pfx()]);
}
