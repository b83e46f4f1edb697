//! Decision steps (one test each, with the loser's reason), multipath,
//! change coalescing, import, max-prefixes and the graceful restart helper.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use super::*;
use crate::fsm::{Input, Output, Session, SessionConfig, State};
use crate::policy::PrefixList;
use crate::wire::{
    Capability, GracefulRestart, GracefulRestartFamily, HoldTime, Ipv6NextHop, Message, MpUnreach,
    OpenRepr, PathAttributes, UpdateRepr,
};

const LOCAL: Asn = Asn(65000);

fn net(s: &str) -> Ipv6Net {
    s.parse().unwrap()
}

fn addr(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// What a Session negotiates with a peer: `gr` is (restart time, F bit).
fn negotiated(asn: u32, id: Ipv4Addr, gr: Option<(u16, bool)>) -> Negotiated {
    let mut caps = vec![Capability::Multiprotocol {
        afi: Afi::Ipv6,
        safi: Safi::Unicast,
    }];
    if let Some((time, f)) = gr {
        caps.push(Capability::GracefulRestart(GracefulRestart {
            restart_state: true,
            notification: true,
            restart_time: time,
            families: vec![GracefulRestartFamily {
                afi: Afi::Ipv6,
                safi: Safi::Unicast,
                forwarding_state: f,
            }],
        }));
    }
    let open = OpenRepr::new(Asn(asn), HoldTime::new(90).unwrap(), id, caps);
    let mut s = Session::new(SessionConfig::new(
        LOCAL,
        Ipv4Addr::new(192, 0, 2, 1),
        Asn(asn),
    ));
    s.handle(Input::ManualStartPassive);
    s.handle(Input::TcpConnected(crate::fsm::Direction::Inbound));
    s.handle(Input::Message(Message::Open(open)));
    s.handle(Input::Message(Message::Keepalive))
        .into_iter()
        .find_map(|o| match o {
            Output::Established(n) => Some(n),
            _ => None,
        })
        .expect("established")
}

struct Lab {
    rib: Rib,
}

impl Lab {
    fn new() -> Lab {
        Lab::with(RibConfig::new(LOCAL))
    }

    fn with(config: RibConfig) -> Lab {
        Lab {
            rib: Rib::new(config),
        }
    }

    /// An Established peer with GR (120 s, F bit set).
    fn peer(&mut self, address: &str, asn: u32, id: u8) -> PeerId {
        self.peer_with(PeerConfig::new(addr(address), Asn(asn)), id)
    }

    fn peer_with(&mut self, config: PeerConfig, id: u8) -> PeerId {
        let asn = config.asn.0;
        let p = self.rib.add_peer(config);
        let out = self.rib.peer_up(
            p,
            &negotiated(asn, Ipv4Addr::new(10, 0, 0, id), Some((120, true))),
        );
        assert!(out.is_empty());
        p
    }

    fn apply(&mut self, peer: PeerId, u: &ParsedUpdate) -> Vec<RibOutput> {
        self.rib.apply_update(peer, u)
    }

    fn changes(&mut self) -> Vec<RibChange> {
        self.rib.drain_changes()
    }

    fn status(&self, prefix: &str, peer: PeerId) -> PathStatus {
        let view = self.rib.route(&net(prefix)).expect("route");
        view.paths
            .iter()
            .find(|p| p.attrs.peer == peer)
            .expect("path")
            .status
    }
}

/// Builder for an IPv6 UPDATE.
#[derive(Clone)]
struct Ann {
    attrs: PathAttributes,
}

fn ann(next_hop: &str, path: &[u32]) -> Ann {
    Ann {
        attrs: PathAttributes {
            origin: Some(Origin::Igp),
            as_path: Some(AsPath::sequence(path.iter().map(|&a| Asn(a)))),
            mp_reach: Some(MpReach::Ipv6Unicast {
                next_hop: Ipv6NextHop {
                    global: addr(next_hop),
                    link_local: None,
                },
                nlri: Vec::new(),
            }),
            ..PathAttributes::default()
        },
    }
}

impl Ann {
    fn med(mut self, med: u32) -> Ann {
        self.attrs.med = Some(med);
        self
    }
    fn local_pref(mut self, lp: u32) -> Ann {
        self.attrs.local_pref = Some(lp);
        self
    }
    fn origin(mut self, o: Origin) -> Ann {
        self.attrs.origin = Some(o);
        self
    }
    fn link_local(mut self, ll: &str) -> Ann {
        if let Some(MpReach::Ipv6Unicast { next_hop, .. }) = &mut self.attrs.mp_reach {
            next_hop.link_local = Some(addr(ll));
        }
        self
    }
    fn of(&self, prefixes: &[&str]) -> ParsedUpdate {
        let mut attrs = self.attrs.clone();
        if let Some(MpReach::Ipv6Unicast { nlri, .. }) = &mut attrs.mp_reach {
            *nlri = prefixes.iter().map(|p| net(p)).collect();
        }
        UpdateRepr {
            attributes: attrs,
            ..UpdateRepr::default()
        }
        .into()
    }
}

fn withdraw(prefixes: &[&str]) -> ParsedUpdate {
    UpdateRepr {
        attributes: PathAttributes {
            mp_unreach: Some(MpUnreach::Ipv6Unicast {
                withdrawn: prefixes.iter().map(|p| net(p)).collect(),
            }),
            ..PathAttributes::default()
        },
        ..UpdateRepr::default()
    }
    .into()
}

fn eor() -> ParsedUpdate {
    UpdateRepr::end_of_rib(Afi::Ipv6, Safi::Unicast).into()
}

fn nh(a: &str, peer: PeerId) -> NextHop {
    NextHop {
        addr: addr(a),
        ifindex: None,
        peer,
    }
}

fn change(prefix: &str, nexthops: Vec<NextHop>) -> RibChange {
    RibChange {
        prefix: net(prefix),
        nexthops,
    }
}

// --- Changes and coalescing --------------------------------------------------

#[test]
fn announce_replace_and_withdraw() {
    let mut lab = Lab::new();
    let a = lab.peer("2001:db8:1::2", 65001, 2);
    let u = ann("2001:db8:1::2", &[65001]).of(&["2001:db8:100::/64"]);
    lab.apply(a, &u);
    assert_eq!(
        lab.changes(),
        [change("2001:db8:100::/64", vec![nh("2001:db8:1::2", a)])]
    );
    // The same route again, or with other attributes but the same next
    // hop: no change.
    lab.apply(a, &u);
    lab.apply(
        a,
        &ann("2001:db8:1::2", &[65001])
            .med(5)
            .of(&["2001:db8:100::/64"]),
    );
    assert_eq!(lab.changes(), []);
    // A new next hop is a change.
    lab.apply(
        a,
        &ann("2001:db8:1::9", &[65001]).of(&["2001:db8:100::/64"]),
    );
    assert_eq!(
        lab.changes(),
        [change("2001:db8:100::/64", vec![nh("2001:db8:1::9", a)])]
    );
    lab.apply(a, &withdraw(&["2001:db8:100::/64", "2001:db8:999::/64"]));
    assert_eq!(lab.changes(), [change("2001:db8:100::/64", vec![])]);
    assert!(lab.rib.is_empty());
    assert_eq!(lab.rib.peer_stats(a).unwrap().accepted, 0);
}

/// `selected` is what the RIB last emitted for a prefix, ECMP set in
/// order, less the paths withdrawn since (never one that is gone); the
/// change not drained yet follows in the drain.
#[test]
fn selected_is_what_was_last_emitted() {
    let mut cfg = RibConfig::new(LOCAL);
    cfg.decision.as_path_relax = true;
    let mut lab = Lab::with(cfg);
    let a = lab.peer("2001:db8:1::2", 65001, 2);
    let b = lab.peer("2001:db8:1::3", 65002, 3);
    let p = "2001:db8:100::/64";
    assert_eq!(lab.rib.selected(&net(p)), change(p, vec![]), "unknown");
    lab.apply(a, &ann("2001:db8:1::2", &[65001]).of(&[p]));
    lab.apply(b, &ann("2001:db8:1::3", &[65002]).of(&[p]));
    let emitted = lab.changes();
    assert_eq!(emitted.len(), 1);
    assert_eq!(emitted[0].nexthops.len(), 2, "an ECMP set: {emitted:?}");
    assert_eq!(lab.rib.selected(&net(p)), emitted[0]);
    // Withdrawn by one peer, not drained yet: that path is left out.
    lab.apply(a, &withdraw(&[p]));
    assert_eq!(
        lab.rib.selected(&net(p)),
        change(p, vec![nh("2001:db8:1::3", b)])
    );
    let next = lab.changes();
    assert_eq!(next, [change(p, vec![nh("2001:db8:1::3", b)])]);
    assert_eq!(lab.rib.selected(&net(p)), next[0]);
    lab.apply(b, &withdraw(&[p]));
    lab.changes();
    assert_eq!(lab.rib.selected(&net(p)), change(p, vec![]));
}

#[test]
fn changes_coalesce_within_a_batch() {
    let mut lab = Lab::new();
    let a = lab.peer("2001:db8:1::2", 65001, 2);
    // Announced then withdrawn before the drain: nothing.
    lab.apply(
        a,
        &ann("2001:db8:1::2", &[65001]).of(&["2001:db8:100::/64"]),
    );
    lab.apply(a, &withdraw(&["2001:db8:100::/64"]));
    assert_eq!(lab.changes(), []);
    // Next hop A -> B -> A: nothing.
    lab.apply(
        a,
        &ann("2001:db8:1::2", &[65001]).of(&["2001:db8:100::/64"]),
    );
    lab.changes();
    lab.apply(
        a,
        &ann("2001:db8:1::3", &[65001]).of(&["2001:db8:100::/64"]),
    );
    lab.apply(
        a,
        &ann("2001:db8:1::2", &[65001]).of(&["2001:db8:100::/64"]),
    );
    let got = lab.changes();
    // A next hop that changed and changed back is reported once (the set
    // may have changed under the FIB's feet in between), never twice.
    assert!(got.len() <= 1, "{got:?}");
    // Many prefixes in one UPDATE: one change each.
    let many: Vec<String> = (0..100)
        .map(|i| format!("2001:db8:200:{i:x}::/64"))
        .collect();
    let refs: Vec<&str> = many.iter().map(String::as_str).collect();
    lab.apply(a, &ann("2001:db8:1::2", &[65001]).of(&refs));
    lab.apply(a, &ann("2001:db8:1::2", &[65001]).of(&refs));
    assert_eq!(lab.changes().len(), 100);
}

#[test]
fn second_worse_path_is_no_change() {
    let mut lab = Lab::new();
    let a = lab.peer("2001:db8:1::2", 65001, 2);
    let b = lab.peer("2001:db8:1::3", 65002, 3);
    lab.apply(
        a,
        &ann("2001:db8:1::2", &[65001]).of(&["2001:db8:100::/64"]),
    );
    lab.changes();
    lab.apply(
        b,
        &ann("2001:db8:1::3", &[65002, 65009]).of(&["2001:db8:100::/64"]),
    );
    assert_eq!(lab.changes(), []);
    // The best goes: the backup takes over.
    lab.apply(a, &withdraw(&["2001:db8:100::/64"]));
    assert_eq!(
        lab.changes(),
        [change("2001:db8:100::/64", vec![nh("2001:db8:1::3", b)])]
    );
}

// --- Decision steps, one test each ---------------------------------------------

/// Two internal peers (LOCAL_PREF counts) with distinct identifiers.
fn two_ibgp(config: RibConfig) -> (Lab, PeerId, PeerId) {
    let mut lab = Lab::with(config);
    let a = lab.peer("2001:db8:1::2", 65000, 2);
    let b = lab.peer("2001:db8:1::3", 65000, 3);
    (lab, a, b)
}

fn single_path() -> RibConfig {
    let mut c = RibConfig::new(LOCAL);
    c.decision.max_paths = 1;
    c
}

const P: &str = "2001:db8:100::/64";

#[test]
fn step_local_pref() {
    let (mut lab, a, b) = two_ibgp(RibConfig::new(LOCAL));
    lab.apply(
        a,
        &ann("2001:db8:1::2", &[65010, 65011])
            .local_pref(200)
            .of(&[P]),
    );
    lab.apply(b, &ann("2001:db8:1::3", &[65010]).local_pref(100).of(&[P]));
    lab.changes();
    assert_eq!(lab.status(P, a), PathStatus::Best);
    assert_eq!(
        lab.status(P, b),
        PathStatus::NotSelected(LossReason::LocalPref)
    );
}

#[test]
fn step_local_pref_of_external_peer_comes_from_policy() {
    let mut lab = Lab::new();
    let mut cfg = PeerConfig::new(addr("2001:db8:1::2"), Asn(65001));
    cfg.import.local_pref = 50;
    let a = lab.peer_with(cfg, 2);
    let b = lab.peer("2001:db8:1::3", 65002, 3);
    // Its LOCAL_PREF attribute is ignored (external peer).
    lab.apply(a, &ann("2001:db8:1::2", &[65001]).local_pref(500).of(&[P]));
    lab.apply(b, &ann("2001:db8:1::3", &[65002, 65003]).of(&[P]));
    lab.changes();
    assert_eq!(lab.status(P, b), PathStatus::Best);
    assert_eq!(
        lab.status(P, a),
        PathStatus::NotSelected(LossReason::LocalPref)
    );
}

#[test]
fn step_as_path_length() {
    let (mut lab, a, b) = two_ibgp(RibConfig::new(LOCAL));
    lab.apply(a, &ann("2001:db8:1::2", &[65010, 65011]).of(&[P]));
    lab.apply(b, &ann("2001:db8:1::3", &[65010]).of(&[P]));
    lab.changes();
    assert_eq!(lab.status(P, b), PathStatus::Best);
    assert_eq!(
        lab.status(P, a),
        PathStatus::NotSelected(LossReason::AsPathLength)
    );
}

#[test]
fn step_origin() {
    let (mut lab, a, b) = two_ibgp(RibConfig::new(LOCAL));
    lab.apply(
        a,
        &ann("2001:db8:1::2", &[65010])
            .origin(Origin::Incomplete)
            .of(&[P]),
    );
    lab.apply(
        b,
        &ann("2001:db8:1::3", &[65010]).origin(Origin::Igp).of(&[P]),
    );
    lab.changes();
    assert_eq!(lab.status(P, b), PathStatus::Best);
    assert_eq!(
        lab.status(P, a),
        PathStatus::NotSelected(LossReason::Origin)
    );
}

#[test]
fn step_med_same_neighbour_as() {
    let (mut lab, a, b) = two_ibgp(RibConfig::new(LOCAL));
    lab.apply(a, &ann("2001:db8:1::2", &[65010]).med(10).of(&[P]));
    lab.apply(b, &ann("2001:db8:1::3", &[65010]).med(20).of(&[P]));
    lab.changes();
    assert_eq!(lab.status(P, a), PathStatus::Best);
    assert_eq!(lab.status(P, b), PathStatus::NotSelected(LossReason::Med));
}

#[test]
fn step_med_ignored_between_neighbour_ases_unless_always_compare() {
    let (mut lab, a, b) = two_ibgp(single_path());
    // b has the lower MED but a different neighbouring AS: MED does not
    // decide, the router id does (a is 10.0.0.2).
    lab.apply(a, &ann("2001:db8:1::2", &[65010]).med(20).of(&[P]));
    lab.apply(b, &ann("2001:db8:1::3", &[65020]).med(10).of(&[P]));
    lab.changes();
    assert_eq!(lab.status(P, a), PathStatus::Best);
    assert_eq!(
        lab.status(P, b),
        PathStatus::NotSelected(LossReason::RouterId)
    );

    let mut cfg = single_path();
    cfg.decision.always_compare_med = true;
    let (mut lab, a, b) = two_ibgp(cfg);
    lab.apply(a, &ann("2001:db8:1::2", &[65010]).med(20).of(&[P]));
    lab.apply(b, &ann("2001:db8:1::3", &[65020]).med(10).of(&[P]));
    lab.changes();
    assert_eq!(lab.status(P, b), PathStatus::Best);
    assert_eq!(lab.status(P, a), PathStatus::NotSelected(LossReason::Med));
}

#[test]
fn step_med_is_order_independent() {
    // The classic MED cycle: A(AS1, med 10), B(AS1, med 20), C(AS2): B
    // loses to A on MED whatever the arrival order, so C vs A decides.
    let mut results = Vec::new();
    for order in [[0, 1, 2], [2, 1, 0], [1, 2, 0], [1, 0, 2]] {
        let mut lab = Lab::with(single_path());
        let peers = [
            lab.peer("2001:db8:1::4", 65000, 4),
            lab.peer("2001:db8:1::2", 65000, 2),
            lab.peer("2001:db8:1::3", 65000, 3),
        ];
        let anns = [
            ann("2001:db8:1::4", &[65001]).med(10),
            ann("2001:db8:1::2", &[65001]).med(20),
            ann("2001:db8:1::3", &[65002]),
        ];
        for i in order {
            lab.apply(peers[i], &anns[i].of(&[P]));
        }
        let got = lab.changes();
        assert_eq!(
            lab.status(P, peers[1]),
            PathStatus::NotSelected(LossReason::Med)
        );
        results.push(got[0].nexthops[0].addr);
    }
    // C (10.0.0.3) beats A (10.0.0.4) on router id, every time.
    assert!(
        results.iter().all(|a| *a == addr("2001:db8:1::3")),
        "{results:?}"
    );
}

#[test]
fn step_ebgp_over_ibgp() {
    let mut lab = Lab::new();
    let a = lab.peer("2001:db8:1::2", 65000, 2);
    let b = lab.peer("2001:db8:1::3", 65010, 3);
    lab.apply(a, &ann("2001:db8:1::2", &[65010]).of(&[P]));
    lab.apply(b, &ann("2001:db8:1::3", &[65010]).of(&[P]));
    lab.changes();
    assert_eq!(lab.status(P, b), PathStatus::Best);
    assert_eq!(
        lab.status(P, a),
        PathStatus::NotSelected(LossReason::EbgpOverIbgp)
    );
}

#[test]
fn step_router_id() {
    let (mut lab, a, b) = two_ibgp(single_path());
    lab.apply(b, &ann("2001:db8:1::3", &[65010]).of(&[P]));
    lab.apply(a, &ann("2001:db8:1::2", &[65010]).of(&[P]));
    lab.changes();
    assert_eq!(lab.status(P, a), PathStatus::Best);
    assert_eq!(
        lab.status(P, b),
        PathStatus::NotSelected(LossReason::RouterId)
    );
}

#[test]
fn step_peer_address() {
    let mut lab = Lab::with(single_path());
    // Same router id (e.g. two sessions to one router).
    let a = lab.peer("2001:db8:1::9", 65000, 7);
    let b = lab.peer("2001:db8:1::3", 65000, 7);
    lab.apply(a, &ann("2001:db8:1::9", &[65010]).of(&[P]));
    lab.apply(b, &ann("2001:db8:1::3", &[65010]).of(&[P]));
    lab.changes();
    assert_eq!(lab.status(P, b), PathStatus::Best);
    assert_eq!(
        lab.status(P, a),
        PathStatus::NotSelected(LossReason::PeerAddress)
    );
}

#[test]
fn compare_chain_agrees_with_reported_steps() {
    // For every pair of the paths above, the chain's verdict is decided by
    // the first step that differs.
    let (mut lab, a, b) = two_ibgp(single_path());
    let variants = [
        ann("2001:db8:1::2", &[65010]).local_pref(200),
        ann("2001:db8:1::2", &[65010, 65011]),
        ann("2001:db8:1::2", &[65010]).origin(Origin::Egp),
        ann("2001:db8:1::2", &[65010]).med(5),
        ann("2001:db8:1::2", &[65020]).med(1),
    ];
    for x in &variants {
        for y in &variants {
            lab.apply(a, &x.of(&[P]));
            lab.apply(b, &y.of(&[P]));
            lab.changes();
            let view = lab.rib.route(&net(P)).unwrap();
            let med = decision::MedContext::new(
                lab.rib.table.get(&net(P)).unwrap().paths(),
                &lab.rib.config.decision,
            );
            let (best, other) = (&view.paths[0].attrs, &view.paths[1].attrs);
            assert_eq!(
                decision::compare(best, other, &med),
                core::cmp::Ordering::Less
            );
            let PathStatus::NotSelected(reason) = view.paths[1].status else {
                panic!()
            };
            assert_eq!(
                decision::step(reason, best, other, &med),
                core::cmp::Ordering::Less
            );
        }
    }
}

// --- Multipath ------------------------------------------------------------------

#[test]
fn three_nodes_announcing_one_service_form_a_3_way_ecmp_set() {
    let mut lab = Lab::new();
    let svc = "2001:db8:96::10/128";
    let peers: Vec<PeerId> = (1..=3)
        .map(|i| lab.peer(&format!("2001:db8:1::{i}"), 65001, i))
        .collect();
    for (i, &p) in peers.iter().enumerate() {
        lab.apply(
            p,
            &ann(&format!("2001:db8:1::{}", i + 1), &[65001]).of(&[svc]),
        );
    }
    let all = vec![
        nh("2001:db8:1::1", peers[0]),
        nh("2001:db8:1::2", peers[1]),
        nh("2001:db8:1::3", peers[2]),
    ];
    // One change for the batch, with all three, best (lowest id) first.
    assert_eq!(lab.changes(), [change(svc, all.clone())]);
    assert_eq!(lab.status(svc, peers[1]), PathStatus::Multipath);
    // Withdrawals shrink the set, one at a time.
    lab.apply(peers[1], &withdraw(&[svc]));
    assert_eq!(lab.changes(), [change(svc, vec![all[0], all[2]])]);
    lab.apply(peers[0], &withdraw(&[svc]));
    assert_eq!(lab.changes(), [change(svc, vec![all[2]])]);
    lab.apply(peers[2], &withdraw(&[svc]));
    assert_eq!(lab.changes(), [change(svc, vec![])]);
}

#[test]
fn multipath_needs_identical_as_path_unless_relaxed() {
    let svc = "2001:db8:96::10/128";
    for relax in [false, true] {
        let mut cfg = RibConfig::new(LOCAL);
        cfg.decision.as_path_relax = relax;
        let mut lab = Lab::with(cfg);
        let a = lab.peer("2001:db8:1::1", 65001, 1);
        let b = lab.peer("2001:db8:1::2", 65002, 2);
        lab.apply(a, &ann("2001:db8:1::1", &[65001]).of(&[svc]));
        lab.apply(b, &ann("2001:db8:1::2", &[65002]).of(&[svc]));
        let got = lab.changes();
        if relax {
            assert_eq!(got[0].nexthops.len(), 2);
            assert_eq!(lab.status(svc, b), PathStatus::Multipath);
        } else {
            assert_eq!(got[0].nexthops, [nh("2001:db8:1::1", a)]);
            assert_eq!(
                lab.status(svc, b),
                PathStatus::NotSelected(LossReason::MultipathAsPathDiffers)
            );
        }
        // Relax keeps the length: a longer path stays out.
        let c = lab.peer("2001:db8:1::3", 65003, 3);
        lab.apply(c, &ann("2001:db8:1::3", &[65003, 65004]).of(&[svc]));
        lab.changes();
        assert_eq!(
            lab.status(svc, c),
            PathStatus::NotSelected(LossReason::AsPathLength)
        );
    }
}

/// A path that ties with the best but has another AS path, sorted (by
/// router id) between the best and a path with the best's AS path, does
/// not keep that path out of the ECMP set: the set ended at the first
/// path that was not a member.
#[test]
fn a_non_member_between_members_does_not_end_the_ecmp_set() {
    let svc = "2001:db8:96::10/128";
    let mut lab = Lab::new();
    let a = lab.peer("2001:db8:1::1", 65001, 1);
    let b = lab.peer("2001:db8:1::2", 65002, 2);
    let c = lab.peer("2001:db8:1::3", 65001, 3);
    lab.apply(a, &ann("2001:db8:1::1", &[65001]).of(&[svc]));
    lab.apply(b, &ann("2001:db8:1::2", &[65002]).of(&[svc]));
    lab.apply(c, &ann("2001:db8:1::3", &[65001]).of(&[svc]));
    let got = lab.changes();
    let last = got.last().expect("a change");
    assert_eq!(
        last.nexthops,
        [nh("2001:db8:1::1", a), nh("2001:db8:1::3", c)]
    );
    assert_eq!(lab.status(svc, c), PathStatus::Multipath);
    assert_eq!(
        lab.status(svc, b),
        PathStatus::NotSelected(LossReason::MultipathAsPathDiffers)
    );
}

#[test]
fn a_next_hop_on_no_connected_subnet_takes_no_part() {
    // X (another AS, lowest router id) would win with a next hop the
    // router cannot reach; Y and Z (the same AS as each other, not X's)
    // lost to it as "AS path differs", and the prefix was black-holed.
    let svc = "2001:db8:96::10/128";
    let mut lab = Lab::new();
    lab.rib
        .set_next_hop_reach(NextHopReach::on(vec![net("2001:db8:1::/64")], vec![]));
    let x = lab.peer("2001:db8:1::1", 65002, 1);
    let y = lab.peer("2001:db8:1::2", 65001, 2);
    let z = lab.peer("2001:db8:1::3", 65001, 3);
    lab.apply(x, &ann("2001:db8:dead::1", &[65002]).of(&[svc]));
    lab.apply(y, &ann("2001:db8:1::2", &[65001]).of(&[svc]));
    lab.apply(z, &ann("2001:db8:1::3", &[65001]).of(&[svc]));
    assert_eq!(
        lab.changes(),
        [change(
            svc,
            vec![nh("2001:db8:1::2", y), nh("2001:db8:1::3", z)]
        )]
    );
    assert_eq!(
        lab.status(svc, x),
        PathStatus::NotSelected(LossReason::NextHopUnreachable)
    );
    // The subnet of X's next hop appears: X wins, alone (its AS path
    // differs); it goes again: Y and Z are back.
    lab.rib.set_next_hop_reach(NextHopReach::on(
        vec![net("2001:db8:1::/64"), net("2001:db8:dead::/64")],
        vec![],
    ));
    assert_eq!(
        lab.changes(),
        [change(svc, vec![nh("2001:db8:dead::1", x)])]
    );
    lab.rib
        .set_next_hop_reach(NextHopReach::on(vec![net("2001:db8:1::/64")], vec![]));
    assert_eq!(lab.changes()[0].nexthops.len(), 2);
    // No path resolves: the prefix has no best path (withdrawn).
    lab.rib
        .set_next_hop_reach(NextHopReach::on(vec![net("2001:db8:2::/64")], vec![]));
    assert_eq!(lab.changes(), [change(svc, vec![])]);
    assert_eq!(
        lab.status(svc, y),
        PathStatus::NotSelected(LossReason::NextHopUnreachable)
    );
}

/// One path: unreachable, reachable, unreachable again. Its flags must
/// follow, or the change is never emitted (the path kept BEST while no
/// next hop resolved, so becoming usable changed nothing).
#[test]
fn a_lone_path_follows_its_next_hop_in_and_out() {
    let svc = "2001:db8:100:1::/64";
    let mut lab = Lab::new();
    lab.rib
        .set_next_hop_reach(NextHopReach::on(vec![net("2001:db8:2::/64")], vec![]));
    let a = lab.peer("2001:db8:1::1", 65001, 1);
    lab.apply(a, &ann("2001:db8:1::1", &[65001]).of(&[svc]));
    assert_eq!(lab.changes(), []);
    lab.rib
        .set_next_hop_reach(NextHopReach::on(vec![net("2001:db8:1::/64")], vec![]));
    assert_eq!(lab.changes(), [change(svc, vec![nh("2001:db8:1::1", a)])]);
    lab.rib
        .set_next_hop_reach(NextHopReach::on(vec![net("2001:db8:2::/64")], vec![]));
    assert_eq!(lab.changes(), [change(svc, vec![])]);
}

#[test]
fn multipath_limit() {
    let mut cfg = RibConfig::new(LOCAL);
    cfg.decision.max_paths = 2;
    let mut lab = Lab::with(cfg);
    let peers: Vec<PeerId> = (1..=3)
        .map(|i| lab.peer(&format!("2001:db8:1::{i}"), 65001, i))
        .collect();
    for (i, &p) in peers.iter().enumerate() {
        lab.apply(
            p,
            &ann(&format!("2001:db8:1::{}", i + 1), &[65001]).of(&[P]),
        );
    }
    assert_eq!(lab.changes()[0].nexthops.len(), 2);
    assert_eq!(
        lab.status(P, peers[2]),
        PathStatus::NotSelected(LossReason::MultipathLimit)
    );
    // A member goes: the third joins, in the same change.
    lab.apply(peers[0], &withdraw(&[P]));
    assert_eq!(
        lab.changes(),
        [change(
            P,
            vec![nh("2001:db8:1::2", peers[1]), nh("2001:db8:1::3", peers[2])]
        )]
    );
}

#[test]
fn a_better_path_collapses_the_set() {
    let (mut lab, a, b) = two_ibgp(RibConfig::new(LOCAL));
    lab.apply(a, &ann("2001:db8:1::2", &[65010]).of(&[P]));
    lab.apply(b, &ann("2001:db8:1::3", &[65010]).of(&[P]));
    assert_eq!(lab.changes()[0].nexthops.len(), 2);
    lab.apply(b, &ann("2001:db8:1::3", &[65010]).local_pref(300).of(&[P]));
    assert_eq!(lab.changes(), [change(P, vec![nh("2001:db8:1::3", b)])]);
}

// --- Import ---------------------------------------------------------------------

#[test]
fn import_list_rejects_and_explains() {
    let mut lab = Lab::new();
    let mut cfg = PeerConfig::new(addr("2001:db8:1::2"), Asn(65001));
    cfg.import.allow =
        Some(PrefixList::parse(&["2001:db8:100::/40 le 64", "2001:db8:96::/112 le 128"]).unwrap());
    let a = lab.peer_with(cfg, 2);
    let u = ann("2001:db8:1::2", &[65001]).of(&[
        "2001:db8:100::/64",
        "2001:db8:96::10/128",
        "2001:db8:300::/64",
        "2001:db8:100::/80",
        "fe80::/64",
    ]);
    lab.apply(a, &u);
    assert_eq!(lab.changes().len(), 2);
    let stats = lab.rib.peer_stats(a).unwrap();
    assert_eq!(stats.accepted, 2);
    let count = |r| stats.rejected.iter().find(|(x, _)| *x == r).unwrap().1;
    assert_eq!(count(RejectReason::NotInImportList), 2);
    assert_eq!(count(RejectReason::Martian), 1);
    assert_eq!(
        lab.rib.rejections(a).copied().collect::<Vec<_>>(),
        [
            (net("2001:db8:300::/64"), RejectReason::NotInImportList),
            (net("2001:db8:100::/80"), RejectReason::NotInImportList),
            (net("fe80::/64"), RejectReason::Martian),
        ]
    );
}

#[test]
fn rejected_reannouncement_withdraws_the_earlier_route() {
    let mut lab = Lab::new();
    let a = lab.peer("2001:db8:1::2", 65001, 2);
    lab.apply(a, &ann("2001:db8:1::2", &[65001]).of(&[P]));
    lab.changes();
    lab.apply(a, &ann("::ffff:10.0.0.1", &[65001]).of(&[P]));
    assert_eq!(lab.changes(), [change(P, vec![])]);
    assert_eq!(lab.rib.peer_stats(a).unwrap().accepted, 0);
}

/// A link-local next hop resolves on the router's interfaces only: on
/// another (a management link the daemon does not forward on) it takes no
/// part, as a global one on no connected subnet.
#[test]
fn a_link_local_next_hop_resolves_only_on_a_forwarding_interface() {
    let svc = "2001:db8:100::/64";
    let mut lab = Lab::new();
    lab.rib
        .set_next_hop_reach(NextHopReach::on(vec![net("2001:db8:1::/64")], vec![7]));
    let mut cfg = PeerConfig::new(addr("2001:db8:9::2"), Asn(65001));
    cfg.ifindex = Some(5);
    let a = lab.peer_with(cfg, 2);
    lab.apply(a, &ann("fe80::2", &[65001]).of(&[svc]));
    assert_eq!(lab.changes(), []);
    assert_eq!(
        lab.status(svc, a),
        PathStatus::NotSelected(LossReason::NextHopUnreachable)
    );
    lab.rib
        .set_next_hop_reach(NextHopReach::on(vec![], vec![5, 7]));
    assert_eq!(lab.changes()[0].nexthops[0].ifindex, Some(5));
}

#[test]
fn next_hop_sanity() {
    let mut lab = Lab::new();
    let mut cfg = PeerConfig::new(addr("2001:db8:1::2"), Asn(65001));
    cfg.ifindex = Some(5);
    let a = lab.peer_with(cfg, 2);
    let b = lab.peer("2001:db8:2::2", 65002, 3);
    // Unspecified: the peer's address.
    lab.apply(a, &ann("::", &[65001]).of(&["2001:db8:100::/64"]));
    // Link-local only: with the session's interface.
    lab.apply(a, &ann("fe80::2", &[65001]).of(&["2001:db8:101::/64"]));
    // Global and link-local: the global one.
    lab.apply(
        a,
        &ann("2001:db8:1::7", &[65001])
            .link_local("fe80::7")
            .of(&["2001:db8:102::/64"]),
    );
    let mut got = lab.changes();
    got.sort_by_key(|c| c.prefix);
    let hops: Vec<NextHop> = got.iter().map(|c| c.nexthops[0]).collect();
    assert_eq!(
        hops,
        [
            nh("2001:db8:1::2", a),
            NextHop {
                addr: addr("fe80::2"),
                ifindex: Some(5),
                peer: a
            },
            nh("2001:db8:1::7", a),
        ]
    );
    // No interface for b's session: link-local rejected; IPv4-mapped
    // rejected; both counted.
    lab.apply(b, &ann("fe80::2", &[65002]).of(&["2001:db8:200::/64"]));
    lab.apply(
        b,
        &ann("::ffff:192.0.2.1", &[65002]).of(&["2001:db8:201::/64", "2001:db8:202::/64"]),
    );
    assert_eq!(lab.changes(), []);
    let stats = lab.rib.peer_stats(b).unwrap();
    let count = |r| stats.rejected.iter().find(|(x, _)| *x == r).unwrap().1;
    assert_eq!(count(RejectReason::NextHopLinkLocalWithoutInterface), 1);
    assert_eq!(count(RejectReason::NextHopIpv4Mapped), 2);
}

#[test]
fn as_path_checks() {
    let mut lab = Lab::new();
    let a = lab.peer("2001:db8:1::2", 65001, 2);
    lab.apply(a, &ann("2001:db8:1::2", &[65001, 65000, 65009]).of(&[P]));
    lab.apply(
        a,
        &ann("2001:db8:1::2", &[65009]).of(&["2001:db8:101::/64"]),
    );
    lab.apply(a, &ann("2001:db8:1::2", &[]).of(&["2001:db8:102::/64"]));
    assert_eq!(lab.changes(), []);
    let reasons: Vec<RejectReason> = lab.rib.rejections(a).map(|r| r.1).collect();
    assert_eq!(
        reasons,
        [
            RejectReason::AsPathLoop,
            RejectReason::FirstAsNotPeer,
            RejectReason::FirstAsNotPeer
        ]
    );
}

/// A peer without 4-octet AS numbers shows our AS (a 4-octet one) only in
/// AS4_PATH, its AS_PATH holding AS_TRANS: still a loop (RFC 6793 4.2.3).
#[test]
fn our_as_in_as4_path_is_a_loop() {
    use crate::wire::{AttributeFlags, UnknownAttribute};
    let mut lab = Lab::new();
    let a = lab.peer("2001:db8:1::2", 65001, 2);
    let as4 = |asns: &[u32]| {
        let mut value = vec![2, asns.len() as u8];
        for asn in asns {
            value.extend(asn.to_be_bytes());
        }
        UnknownAttribute {
            flags: AttributeFlags(0xc0),
            type_code: 17,
            value,
        }
    };
    let mut looped = ann("2001:db8:1::2", &[65001, 23456]).of(&[P]);
    looped
        .update
        .attributes
        .unknown
        .push(as4(&[65001, LOCAL.0]));
    lab.apply(a, &looped);
    let mut fine = ann("2001:db8:1::2", &[65001, 23456]).of(&["2001:db8:101::/64"]);
    fine.update
        .attributes
        .unknown
        .push(as4(&[65001, 4_200_000_001]));
    lab.apply(a, &fine);
    assert_eq!(lab.changes().len(), 1);
    let reasons: Vec<RejectReason> = lab.rib.rejections(a).map(|r| r.1).collect();
    assert_eq!(reasons, [RejectReason::AsPathLoop]);
}

#[test]
fn ipv4_routes_are_counted_not_installed() {
    let mut lab = Lab::new();
    let a = lab.peer("2001:db8:1::2", 65001, 2);
    let mut u = ann("2001:db8:1::2", &[65001]).of(&[]);
    u.update.attributes.mp_reach = None;
    u.update.attributes.next_hop = Some(Ipv4Addr::new(10, 0, 0, 2));
    u.update.nlri = vec!["10.1.0.0/24".parse().unwrap()];
    lab.apply(a, &u);
    assert_eq!(lab.changes(), []);
    let stats = lab.rib.peer_stats(a).unwrap();
    assert!(stats
        .rejected
        .contains(&(RejectReason::FamilyNotNegotiated, 1)));
    // GoBGP's IPv4 End-of-RIB is harmless.
    assert!(lab.apply(a, &UpdateRepr::default().into()).is_empty());
}

// --- Max-prefixes -------------------------------------------------------------------

#[test]
fn a_limit_lowered_below_what_the_peer_holds_tears_down_at_once() {
    let mut lab = Lab::new();
    let p = lab.peer("2001:db8:1::1", 65001, 1);
    let a = ann("2001:db8:1::1", &[65001]);
    let three = [
        "2001:db8:100::/48",
        "2001:db8:101::/48",
        "2001:db8:102::/48",
    ];
    lab.apply(p, &a.of(&three));
    let limit = |max| ImportPolicy {
        max_prefixes: Some(max),
        ..ImportPolicy::default()
    };
    // At the limit: nothing happens.
    assert!(lab.rib.set_import_policy(p, limit(3)).is_empty());
    // Below it: Cease / Maximum Number of Prefixes Reached, once.
    let out = lab.rib.set_import_policy(p, limit(2));
    assert!(
        matches!(&out[..], [RibOutput::Teardown(w, t)] if *w == p
            && t.notification.data.ends_with(&2u32.to_be_bytes())),
        "{out:?}"
    );
    assert!(lab.rib.set_import_policy(p, limit(1)).is_empty());
}

#[test]
fn max_prefixes_tears_down_with_hard_reset_and_purges() {
    let mut lab = Lab::new();
    let mut cfg = PeerConfig::new(addr("2001:db8:1::2"), Asn(65001));
    cfg.import.max_prefixes = Some(2);
    let peer = lab.rib.add_peer(cfg);
    // The peer's real session, so the teardown goes through the FSM.
    let mut s = Session::new(SessionConfig::new(
        LOCAL,
        Ipv4Addr::new(192, 0, 2, 1),
        Asn(65001),
    ));
    s.handle(Input::ManualStartPassive);
    s.handle(Input::TcpConnected(crate::fsm::Direction::Inbound));
    let open = OpenRepr::new(
        Asn(65001),
        HoldTime::new(90).unwrap(),
        Ipv4Addr::new(10, 0, 0, 2),
        vec![
            Capability::Multiprotocol {
                afi: Afi::Ipv6,
                safi: Safi::Unicast,
            },
            Capability::GracefulRestart(GracefulRestart {
                restart_state: false,
                notification: true,
                restart_time: 120,
                families: vec![GracefulRestartFamily {
                    afi: Afi::Ipv6,
                    safi: Safi::Unicast,
                    forwarding_state: false,
                }],
            }),
        ],
    );
    s.handle(Input::Message(Message::Open(open)));
    let n = s
        .handle(Input::Message(Message::Keepalive))
        .into_iter()
        .find_map(|o| match o {
            Output::Established(n) => Some(n),
            _ => None,
        })
        .unwrap();
    lab.rib.peer_up(peer, &n);

    let a = ann("2001:db8:1::2", &[65001]);
    assert!(lab
        .apply(peer, &a.of(&["2001:db8:100::/64", "2001:db8:101::/64"]))
        .is_empty());
    // Re-announcing at the limit is fine.
    assert!(lab.apply(peer, &a.of(&["2001:db8:100::/64"])).is_empty());
    let out = lab.apply(peer, &a.of(&["2001:db8:102::/64", "2001:db8:103::/64"]));
    assert_eq!(out.len(), 1, "one teardown: {out:?}");
    let RibOutput::Teardown(who, teardown) = out[0].clone() else {
        panic!("{out:?}")
    };
    assert_eq!(who, peer);
    assert!(teardown.hard_reset);
    assert_eq!(teardown.refuse_for, secs(30));
    assert_eq!(teardown.notification.data, [0, 2, 1, 0, 0, 0, 2]);
    let stats = lab.rib.peer_stats(peer).unwrap();
    assert!(stats.rejected.contains(&(RejectReason::MaxPrefixes, 2)));

    // The session sends the Hard Reset and reports a non-graceful Down.
    let out = s.handle(teardown.into_input());
    let sent = out
        .iter()
        .find_map(|o| match o {
            Output::SendMessage(Message::Notification(n)) => Some(n.clone()),
            _ => None,
        })
        .unwrap();
    assert!(sent.is_hard_reset());
    assert_eq!(
        sent.inner().map(|i| (u8::from(i.code), i.subcode)),
        Some((6, 1))
    );
    let graceful = out
        .iter()
        .find_map(|o| match o {
            Output::Down { graceful, .. } => Some(*graceful),
            _ => None,
        })
        .unwrap();
    assert!(!graceful);
    assert_eq!(s.state(), State::Idle);
    lab.changes();
    assert!(lab.rib.peer_down(peer, graceful).is_empty());
    assert_eq!(lab.changes().len(), 2);
    assert!(lab.rib.is_empty());
}

// --- Graceful restart helper -----------------------------------------------------------

fn gr_lab() -> (Lab, PeerId, PeerId) {
    let mut lab = Lab::new();
    let a = lab.peer("2001:db8:1::2", 65001, 2);
    let b = lab.peer("2001:db8:1::3", 65001, 3);
    lab.apply(
        a,
        &ann("2001:db8:1::2", &[65001]).of(&[
            "2001:db8:100::/64",
            "2001:db8:101::/64",
            "2001:db8:96::10/128",
        ]),
    );
    lab.apply(
        b,
        &ann("2001:db8:1::3", &[65001]).of(&["2001:db8:96::10/128"]),
    );
    lab.changes();
    (lab, a, b)
}

#[test]
fn gr_fin_stale_reestablish_end_of_rib_purges_unannounced() {
    let (mut lab, a, _) = gr_lab();
    // TCP FIN: routes stay (stale), no change, the restart timer runs.
    let out = lab.rib.peer_down(a, true);
    assert_eq!(out, [RibOutput::ArmTimer(RibTimer::Restart(a), secs(120))]);
    assert_eq!(lab.changes(), []);
    assert_eq!(lab.rib.peer_stats(a).unwrap().stale, 3);
    let view = lab.rib.route(&net("2001:db8:100::/64")).unwrap();
    assert!(view.paths[0].stale);
    assert_eq!(view.paths[0].status, PathStatus::Best);
    // Back in time, with GR and the F bit.
    let out = lab.rib.peer_up(
        a,
        &negotiated(65001, Ipv4Addr::new(10, 0, 0, 2), Some((120, true))),
    );
    assert_eq!(
        out,
        [
            RibOutput::CancelTimer(RibTimer::Restart(a)),
            RibOutput::ArmTimer(RibTimer::StalePath(a), secs(360)),
        ]
    );
    // It re-announces one pod prefix (no change) and the service.
    lab.apply(
        a,
        &ann("2001:db8:1::2", &[65001]).of(&["2001:db8:100::/64", "2001:db8:96::10/128"]),
    );
    assert_eq!(lab.changes(), []);
    assert_eq!(lab.rib.peer_stats(a).unwrap().stale, 1);
    // End-of-RIB: the unannounced one goes.
    let out = lab.apply(a, &eor());
    assert_eq!(out, [RibOutput::CancelTimer(RibTimer::StalePath(a))]);
    assert_eq!(lab.changes(), [change("2001:db8:101::/64", vec![])]);
    let stats = lab.rib.peer_stats(a).unwrap();
    assert_eq!((stats.accepted, stats.stale), (2, 0));
    assert!(!lab.rib.route(&net("2001:db8:100::/64")).unwrap().paths[0].stale);
}

#[test]
fn gr_open_without_gr_or_f_bit_purges_at_once() {
    for gr in [None, Some((120, false))] {
        let (mut lab, a, b) = gr_lab();
        lab.rib.peer_down(a, true);
        let out = lab
            .rib
            .peer_up(a, &negotiated(65001, Ipv4Addr::new(10, 0, 0, 2), gr));
        assert_eq!(out, [RibOutput::CancelTimer(RibTimer::Restart(a))]);
        let mut got = lab.changes();
        got.sort_by_key(|c| c.prefix);
        assert_eq!(
            got,
            [
                change("2001:db8:96::10/128", vec![nh("2001:db8:1::3", b)]),
                change("2001:db8:100::/64", vec![]),
                change("2001:db8:101::/64", vec![]),
            ],
            "{gr:?}"
        );
        assert_eq!(lab.rib.peer_stats(a).unwrap().accepted, 0);
    }
}

#[test]
fn gr_restart_timer_expiry_purges() {
    let (mut lab, a, b) = gr_lab();
    lab.rib.peer_down(a, true);
    assert!(lab.rib.timer_expired(RibTimer::Restart(a)).is_empty());
    let got = lab.changes();
    assert_eq!(got.len(), 3);
    assert!(got.contains(&change("2001:db8:96::10/128", vec![nh("2001:db8:1::3", b)])));
    // A late duplicate expiry does nothing.
    assert!(lab.rib.timer_expired(RibTimer::Restart(a)).is_empty());
    assert_eq!(lab.changes(), []);
}

#[test]
fn gr_stale_path_timer_expiry_purges() {
    let (mut lab, a, _) = gr_lab();
    lab.rib.peer_down(a, true);
    lab.rib.peer_up(
        a,
        &negotiated(65001, Ipv4Addr::new(10, 0, 0, 2), Some((120, true))),
    );
    lab.apply(
        a,
        &ann("2001:db8:1::2", &[65001]).of(&["2001:db8:100::/64"]),
    );
    lab.rib.timer_expired(RibTimer::StalePath(a));
    assert_eq!(lab.changes().len(), 2);
    assert_eq!(lab.rib.peer_stats(a).unwrap().accepted, 1);
}

#[test]
fn gr_hard_reset_purges_at_once() {
    let (mut lab, a, _) = gr_lab();
    assert!(lab.rib.peer_down(a, false).is_empty());
    assert_eq!(lab.changes().len(), 3);
    // Also while stale routes wait for the peer.
    let (mut lab, a, _) = gr_lab();
    lab.rib.peer_down(a, true);
    lab.rib.peer_up(
        a,
        &negotiated(65001, Ipv4Addr::new(10, 0, 0, 2), Some((120, true))),
    );
    let out = lab.rib.peer_down(a, false);
    assert_eq!(out, [RibOutput::CancelTimer(RibTimer::StalePath(a))]);
    assert_eq!(lab.changes().len(), 3);
}

#[test]
fn gr_consecutive_restarts_drop_routes_still_stale() {
    let (mut lab, a, _) = gr_lab();
    lab.rib.peer_down(a, true);
    lab.rib.peer_up(
        a,
        &negotiated(65001, Ipv4Addr::new(10, 0, 0, 2), Some((120, true))),
    );
    lab.apply(
        a,
        &ann("2001:db8:1::2", &[65001]).of(&["2001:db8:100::/64"]),
    );
    // Down again before End-of-RIB: the two never re-announced go now,
    // the re-announced one becomes stale.
    let out = lab.rib.peer_down(a, true);
    assert_eq!(
        out,
        [
            RibOutput::CancelTimer(RibTimer::StalePath(a)),
            RibOutput::ArmTimer(RibTimer::Restart(a), secs(120)),
        ]
    );
    assert_eq!(lab.changes().len(), 2);
    let stats = lab.rib.peer_stats(a).unwrap();
    assert_eq!((stats.accepted, stats.stale), (1, 1));
}

#[test]
fn gr_restart_time_zero_purges_at_once() {
    let mut lab = Lab::new();
    let a = lab
        .rib
        .add_peer(PeerConfig::new(addr("2001:db8:1::2"), Asn(65001)));
    lab.rib.peer_up(
        a,
        &negotiated(65001, Ipv4Addr::new(10, 0, 0, 2), Some((0, true))),
    );
    lab.apply(a, &ann("2001:db8:1::2", &[65001]).of(&[P]));
    lab.changes();
    assert!(lab.rib.peer_down(a, true).is_empty());
    assert_eq!(lab.changes(), [change(P, vec![])]);
}

#[test]
fn remove_peer_purges_and_forgets() {
    let (mut lab, a, _) = gr_lab();
    lab.rib.remove_peer(a);
    assert_eq!(lab.changes().len(), 3);
    assert!(lab.rib.peer_stats(a).is_none());
    assert_eq!(lab.rib.routes_from(a).count(), 0);
}

#[test]
fn table_slots_stay_small() {
    // One inline path per prefix: 16 bytes, plus an 8-byte key.
    assert_eq!(core::mem::size_of::<super::Entry>(), 16);
    for p in [
        "2a00::/48",
        "::/0",
        "2001:db8::/32",
        "2001:db8:0:2::/63",
        "8000::/1",
    ] {
        let p: Ipv6Net = p.parse().unwrap();
        assert_eq!(super::short_key(&p).map(super::short_prefix), Some(p));
    }
    for p in [
        "2001:db8::/64",
        "2001:db8::1/48",
        "2001:db8::/128",
        "2001:db8:0:1::/63",
    ] {
        let p: Ipv6Net = p.parse().unwrap();
        assert_eq!(super::short_key(&p), None);
    }
}

/// `n` prefixes: /48s, with every tenth a /64 or a /128 (the long table).
fn mixed_prefixes(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| match i % 10 {
            3 => format!("2a00:{:x}:{:x}::/64", i >> 16, i & 0xffff),
            7 => format!("2a01::{:x}:{:x}/128", i >> 16, i & 0xffff),
            _ => format!("2a00:{:x}:{:x}::/48", i >> 16, i & 0xffff),
        })
        .collect()
}

/// Drains in batches of at most `max`; checks each batch's size.
fn drain_in_batches(rib: &mut Rib, max: usize) -> Vec<RibChange> {
    let mut all = Vec::new();
    let mut batch = Vec::new();
    loop {
        let more = rib.drain_changes_upto(&mut batch, max);
        assert!(batch.len() <= max);
        assert!(more || rib.table.dirty.is_empty());
        all.append(&mut batch);
        if !more {
            return all;
        }
    }
}

#[test]
fn batched_drain_yields_the_same_changes_in_the_same_order() {
    let prefixes = mixed_prefixes(5000);
    let refs: Vec<&str> = prefixes.iter().map(String::as_str).collect();
    let mut whole = Lab::new();
    let mut batched = Lab::new();
    let mut ids = Vec::new();
    for lab in [&mut whole, &mut batched] {
        let a = lab.peer("2001:db8:1::2", 65001, 2);
        let b = lab.peer("2001:db8:2::2", 65002, 3);
        for chunk in refs.chunks(700) {
            lab.apply(a, &ann("2001:db8:1::2", &[65001]).of(chunk));
        }
        lab.apply(b, &ann("2001:db8:2::2", &[65002, 65003]).of(&refs[..1000]));
        ids.push((a, b));
    }
    let all = whole.changes();
    assert_eq!(all.len(), 5000);
    let got = drain_in_batches(&mut batched.rib, 64);
    assert_eq!(got, all);

    // A peer going down: its prefixes are withdrawn, batch by batch,
    // and an UPDATE between two batches is not lost.
    let (a, _) = ids[1];
    let (wa, _) = ids[0];
    whole.rib.peer_down(wa, false);
    batched.rib.peer_down(a, false);
    let mut first = Vec::new();
    assert!(batched.rib.drain_changes_upto(&mut first, 100));
    assert_eq!(first.len(), 100);
    // A prefix only `a` had whose withdrawal is still queued: the queue's
    // order follows the table's, whose hash is seeded per RIB, so a fixed
    // choice would already be withdrawn in some runs (2% of them).
    let drained: Vec<Ipv6Net> = first.iter().map(|c| c.prefix).collect();
    let queued = refs[1000..]
        .iter()
        .rev()
        .find(|p| !drained.contains(&p.parse::<Ipv6Net>().unwrap()))
        .expect("a prefix not drained yet");
    let again = ann("2001:db8:1::2", &[65001]).of(std::slice::from_ref(queued));
    batched.rib.peer_up(
        a,
        &negotiated(65001, Ipv4Addr::new(10, 0, 0, 2), Some((120, true))),
    );
    batched.apply(a, &again);
    first.extend(drain_in_batches(&mut batched.rib, 100));
    let gone = first.iter().filter(|c| c.nexthops.is_empty()).count();
    // 4000 prefixes only `a` had, less the one it announced again; the
    // 1000 that `b` has too change to `b` alone.
    assert_eq!(gone, 3999);
    assert_eq!(first.len() - gone, 1000 + 1);
    assert_eq!(batched.rib.len(), 1001);
    assert_eq!(whole.changes().len(), 5000);
    assert_eq!(whole.rib.len(), 1000);
}

#[test]
fn table_gives_memory_back_when_a_peer_goes() {
    let prefixes = mixed_prefixes(100_000);
    let refs: Vec<&str> = prefixes.iter().map(String::as_str).collect();
    let mut lab = Lab::new();
    let a = lab.peer("2001:db8:1::2", 65001, 2);
    for chunk in refs.chunks(500) {
        lab.apply(a, &ann("2001:db8:1::2", &[65001]).of(chunk));
    }
    assert_eq!(lab.changes().len(), 100_000);
    let slots = |rib: &Rib| {
        rib.table.short.iter().map(HashMap::capacity).sum::<usize>() + rib.table.long.capacity()
    };
    let full = slots(&lab.rib);
    assert!(full >= 100_000);
    lab.rib.peer_down(a, false);
    assert_eq!(lab.changes().len(), 100_000);
    assert!(lab.rib.is_empty());
    // Shards of at most SHRINK_MIN slots stay.
    assert!(
        slots(&lab.rib) <= SHARDS * SHRINK_MIN,
        "{} of {full} slots left",
        slots(&lab.rib)
    );
    assert!(lab.rib.table.dirty.capacity() <= DIRTY_KEEP);
}

/// `filtered` counts the rejected prefixes the peer still announces: a
/// re-announcement does not count twice, a withdrawal or an accepted
/// re-announcement takes it out, the session going down clears it.
#[test]
fn filtered_counts_rejected_prefixes_still_announced() {
    let mut lab = Lab::new();
    let mut cfg = PeerConfig::new(addr("2001:db8:1::2"), Asn(65001));
    cfg.import.allow = Some(PrefixList::parse(&["2001:db8:100::/40 le 64"]).unwrap());
    let a = lab.peer_with(cfg, 2);
    let filtered = |lab: &Lab| lab.rib.peer_stats(a).unwrap().filtered;
    for _ in 0..3 {
        lab.apply(
            a,
            &ann("2001:db8:1::2", &[65001]).of(&["2001:db8:300::/64", "2001:db8:301::/64"]),
        );
    }
    assert_eq!(filtered(&lab), 2);
    lab.apply(a, &withdraw(&["2001:db8:300::/64"]));
    assert_eq!(filtered(&lab), 1);
    // The policy now lets it in: announced again, it is accepted.
    lab.rib.set_import_policy(a, ImportPolicy::default());
    lab.apply(
        a,
        &ann("2001:db8:1::2", &[65001]).of(&["2001:db8:301::/64"]),
    );
    let s = lab.rib.peer_stats(a).unwrap();
    assert_eq!((s.accepted, s.filtered), (1, 0), "{s:?}");
    lab.rib.set_import_policy(
        a,
        ImportPolicy {
            allow: Some(PrefixList::parse(&["2001:db8:100::/40 le 64"]).unwrap()),
            ..ImportPolicy::default()
        },
    );
    lab.apply(
        a,
        &ann("2001:db8:1::2", &[65001]).of(&["2001:db8:302::/64"]),
    );
    assert_eq!(filtered(&lab), 1);
    lab.rib.peer_down(a, false);
    assert_eq!(filtered(&lab), 0);
}

/// A peer with max-prefixes 2 that announced 100::/64 and 101::/64, went
/// down gracefully (both stale now) and came back with the F bit.
fn restarted_at_its_limit_of_two() -> (Lab, PeerId) {
    let mut lab = Lab::new();
    let mut cfg = PeerConfig::new(addr("2001:db8:1::2"), Asn(65001));
    cfg.import.max_prefixes = Some(2);
    let a = lab.peer_with(cfg, 2);
    let ann = ann("2001:db8:1::2", &[65001]);
    assert!(lab
        .apply(a, &ann.of(&["2001:db8:100::/64", "2001:db8:101::/64"]))
        .is_empty());
    lab.rib.peer_down(a, true);
    lab.rib.peer_up(
        a,
        &negotiated(65001, Ipv4Addr::new(10, 0, 0, 2), Some((120, true))),
    );
    (lab, a)
}

/// A graceful-restart peer at its max-prefixes limit restarts and
/// announces as many prefixes, one of them new (a pod rescheduled): its
/// stale routes, which its End-of-RIB purges, do not count, so it is not
/// torn down; one prefix more than the limit still is.
#[test]
fn stale_routes_do_not_count_against_max_prefixes() {
    let (mut lab, a) = restarted_at_its_limit_of_two();
    let ann = ann("2001:db8:1::2", &[65001]);
    let out = lab.apply(a, &ann.of(&["2001:db8:100::/64", "2001:db8:102::/64"]));
    assert!(
        !out.iter().any(|o| matches!(o, RibOutput::Teardown(..))),
        "max-prefix teardown of a peer announcing 2 of 2: {out:?}"
    );
    let out = lab.apply(a, &ann.of(&["2001:db8:103::/64"]));
    assert!(
        out.iter().any(|o| matches!(o, RibOutput::Teardown(..))),
        "3 of 2 announced: {out:?}"
    );
}

/// A restarted peer at its limit re-announcing a prefix it had before
/// (still stale) announces a new one as far as the limit goes: torn down.
/// The stale path let it through, counting it as held, and the count
/// then went past the limit for good.
#[test]
fn stale_prefixes_announced_again_count_against_max_prefixes() {
    let (mut lab, a) = restarted_at_its_limit_of_two();
    let ann = ann("2001:db8:1::2", &[65001]);
    let out = lab.apply(a, &ann.of(&["2001:db8:102::/64", "2001:db8:103::/64"]));
    assert!(
        !out.iter().any(|o| matches!(o, RibOutput::Teardown(..))),
        "2 of 2: {out:?}"
    );
    let out = lab.apply(a, &ann.of(&["2001:db8:100::/64"]));
    assert!(
        out.iter().any(|o| matches!(o, RibOutput::Teardown(..))),
        "a third fresh prefix (stale before) of 2: {out:?}"
    );
    // The same fresh prefix again is no new one.
    let mut lab = Lab::new();
    let mut cfg = PeerConfig::new(addr("2001:db8:1::2"), Asn(65001));
    cfg.import.max_prefixes = Some(1);
    let b = lab.peer_with(cfg, 2);
    assert!(lab.apply(b, &ann.of(&["2001:db8:100::/64"])).is_empty());
    assert!(lab.apply(b, &ann.of(&["2001:db8:100::/64"])).is_empty());
}

/// A next hop that is our own address on the session points back at us
/// (RFC 4271 section 5.1.3): rejected; the same route with the peer's
/// address is accepted.
#[test]
fn our_own_address_as_next_hop_is_rejected() {
    let mut lab = Lab::new();
    let a = lab.peer("2001:db8:1::2", 65001, 2);
    lab.rib.set_local_address(a, Some(addr("2001:db8:1::1")));
    lab.apply(
        a,
        &ann("2001:db8:1::1", &[65001]).of(&["2001:db8:100::/64"]),
    );
    let s = lab.rib.peer_stats(a).unwrap();
    let invalid = s
        .rejected
        .iter()
        .find(|(r, _)| *r == RejectReason::NextHopInvalid)
        .map(|(_, n)| *n);
    assert_eq!((s.accepted, invalid), (0, Some(1)), "{s:?}");
    lab.apply(
        a,
        &ann("2001:db8:1::2", &[65001]).of(&["2001:db8:100::/64"]),
    );
    assert_eq!(lab.rib.peer_stats(a).unwrap().accepted, 1);
}

/// A peer with max-prefixes has at most that many rejected prefixes
/// counted (and held) as filtered.
#[test]
fn filtered_is_held_to_the_peers_max_prefixes() {
    let mut lab = Lab::new();
    let mut cfg = PeerConfig::new(addr("2001:db8:1::2"), Asn(65001));
    cfg.import.allow = Some(PrefixList::parse(&["2001:db8:100::/40 le 64"]).unwrap());
    cfg.import.max_prefixes = Some(2);
    let a = lab.peer_with(cfg, 2);
    let rejected: Vec<String> = (0..5).map(|i| format!("2001:db8:30{i}::/64")).collect();
    let rejected: Vec<&str> = rejected.iter().map(String::as_str).collect();
    lab.apply(a, &ann("2001:db8:1::2", &[65001]).of(&rejected));
    assert_eq!(lab.rib.peer_stats(a).unwrap().filtered, 2);
}

/// `show route` without a prefix, cut at `max`: the lowest prefixes, in
/// order (it took whichever the hash shards held first).
#[test]
fn route_views_are_the_lowest_prefixes_in_order() {
    let mut lab = Lab::new();
    let a = lab.peer("2001:db8:1::2", 65001, 2);
    let all: Vec<String> = (0..200u32)
        .map(|i| format!("2001:db8:{:x}::/64", (i * 7919) % 200 + 1))
        .collect();
    let refs: Vec<&str> = all.iter().map(String::as_str).collect();
    lab.apply(a, &ann("2001:db8:1::2", &[65001]).of(&refs));
    let mut want: Vec<Ipv6Net> = all.iter().map(|s| net(s)).collect();
    want.sort();
    want.dedup();
    let got: Vec<Ipv6Net> = lab.rib.route_views(10).iter().map(|v| v.prefix).collect();
    assert_eq!(got, want[..10]);
    let every: Vec<Ipv6Net> = lab.rib.route_views(1000).iter().map(|v| v.prefix).collect();
    assert_eq!(every, want);
    assert!(lab.rib.route_views(0).is_empty());
}
