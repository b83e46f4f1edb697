//! Edge cases of the FIB through its public API: the extreme prefixes, the
//! exact-match shortcut lengths, every stride boundary, deletes, re-adds and
//! replaces, what readers see before and after a publish, and the two
//! bundled tables against a naive model.
//!
//! Every published state is checked twice: by explicit expectations written
//! down in the test, and against a brute-force model on addresses at and
//! around every prefix (first, last, the neighbours just outside, the
//! sibling).

use std::collections::HashMap;
use std::net::Ipv6Addr;
use std::path::PathBuf;

use fib::{Fib, FibError, FibReader, NextHop, NextHopId, Prefix, Snapshot};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

/// The mask of the first `len` bits.
fn mask(len: u8) -> u128 {
    if len == 0 {
        0
    } else {
        u128::MAX << (128 - u32::from(len))
    }
}

fn at(s: &str) -> u128 {
    s.parse::<Ipv6Addr>().expect("an IPv6 address").into()
}

fn pfx(s: &str) -> Prefix {
    s.parse().expect("an IPv6 prefix")
}

/// Longest-prefix match by brute force: one map per length, probed from
/// /128 down to /0.
#[derive(Clone)]
struct Model {
    by_len: Vec<HashMap<u128, u32>>,
}

impl Model {
    fn new() -> Self {
        Model {
            by_len: vec![HashMap::new(); 129],
        }
    }

    fn insert(&mut self, p: Prefix, nh: u32) -> Option<u32> {
        self.by_len[usize::from(p.len())].insert(p.bits(), nh)
    }

    fn remove(&mut self, p: Prefix) -> Option<u32> {
        self.by_len[usize::from(p.len())].remove(&p.bits())
    }

    fn lookup(&self, a: u128) -> Option<u32> {
        (0..=128u8).rev().find_map(|len| {
            let m = &self.by_len[usize::from(len)];
            if m.is_empty() {
                None
            } else {
                m.get(&(a & mask(len))).copied()
            }
        })
    }

    fn len(&self) -> usize {
        self.by_len.iter().map(HashMap::len).sum()
    }

    fn prefixes(&self) -> Vec<Prefix> {
        let mut v: Vec<Prefix> = self
            .by_len
            .iter()
            .enumerate()
            .flat_map(|(len, m)| {
                m.keys()
                    .map(move |&bits| Prefix::new(bits, len as u8).unwrap())
            })
            .collect();
        v.sort();
        v
    }
}

/// The next hop a snapshot resolves `a` to (single-member groups only).
fn resolve(s: &Snapshot, a: u128) -> Option<u32> {
    let g = s.lookup(a)?;
    let view = s.group(g).expect("a route's group is in the snapshot");
    assert_eq!(view.members.len(), 1, "single next-hop routes only here");
    Some(view.members[0].id.0)
}

/// Addresses at and around every prefix of the model, plus `extra`.
fn probes(m: &Model, extra: &[u128]) -> Vec<u128> {
    let mut v = extra.to_vec();
    for p in m.prefixes() {
        let first = p.bits();
        let last = first | !mask(p.len());
        v.extend([
            first,
            last,
            first.wrapping_sub(1),
            last.wrapping_add(1),
            // The sibling: the same prefix with its last bit flipped.
            first ^ (1u128 << (128 - u32::from(p.len().max(1)))),
            // The first address just below the prefix's length.
            first | (1u128 << (127 - u32::from(p.len().min(127)))),
        ]);
    }
    v
}

/// Checks one snapshot against the model on `addrs`, through single and
/// batch lookups.
fn check(s: &Snapshot, m: &Model, addrs: &[u128]) {
    assert_eq!(s.routes(), m.len(), "route count");
    let mut batch = vec![None; addrs.len()];
    s.lookup_batch(addrs, &mut batch);
    for (i, &a) in addrs.iter().enumerate() {
        let want = m.lookup(a);
        assert_eq!(resolve(s, a), want, "lookup of {}", Ipv6Addr::from(a));
        assert_eq!(
            batch[i].map(|g| s.group(g).unwrap().members[0].id.0),
            want,
            "batch lookup of {}",
            Ipv6Addr::from(a)
        );
    }
}

/// A FIB, its reader and the model kept in step.
struct Lab {
    fib: Fib,
    reader: FibReader,
    model: Model,
}

impl Lab {
    fn new() -> Self {
        let fib = Fib::new();
        let reader = fib.reader();
        Lab {
            fib,
            reader,
            model: Model::new(),
        }
    }

    fn add(&mut self, p: &str, nh: u32) {
        self.add_prefix(pfx(p), nh);
    }

    fn add_prefix(&mut self, p: Prefix, nh: u32) {
        self.fib.insert(p, &[NextHop::new(nh)]).unwrap();
        self.model.insert(p, nh);
    }

    /// Removes `p` from both; the FIB must say whether it had it.
    fn del(&mut self, p: &str) -> bool {
        self.del_prefix(pfx(p))
    }

    fn del_prefix(&mut self, p: Prefix) -> bool {
        let had = self.model.remove(p).is_some();
        assert_eq!(self.fib.remove(p), had, "remove({p})");
        had
    }

    /// Publishes and checks the new snapshot against the model.
    fn publish(&mut self) {
        self.fib.publish();
        self.check(&[]);
    }

    fn check(&self, extra: &[u128]) {
        check(
            &self.reader.load(),
            &self.model,
            &probes(&self.model, extra),
        );
    }

    /// What the published snapshot resolves `a` to.
    fn nh(&self, a: u128) -> Option<u32> {
        resolve(&self.reader.load(), a)
    }
}

#[test]
fn default_route_alone_matches_every_address() {
    let mut lab = Lab::new();
    let mut rng = StdRng::seed_from_u64(1);
    let mut addrs = vec![
        0,
        1,
        u128::MAX,
        u128::MAX - 1,
        1 << 127,
        (1 << 127) - 1,
        1 << 112,
        (1 << 112) - 1,
        1 << 64,
        (1 << 64) - 1,
        at("2001:db8::1"),
        at("fe80::1"),
        at("ff02::1:ff00:1"),
    ];
    addrs.extend((0..2000).map(|_| rng.gen::<u128>()));
    assert!(addrs.iter().all(|&a| lab.nh(a).is_none()), "an empty FIB");
    lab.add("::/0", 7);
    lab.publish();
    for &a in &addrs {
        assert_eq!(lab.nh(a), Some(7), "{}", Ipv6Addr::from(a));
    }
    lab.check(&addrs);
    assert!(lab.del("::/0"));
    lab.publish();
    assert!(addrs.iter().all(|&a| lab.nh(a).is_none()), "::/0 removed");
}

#[test]
fn host_route_alone_matches_only_its_address() {
    let hosts = [
        "2001:db8::ff00",
        "::",
        "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
        "::1",
        // The last address of a /64 and of a /32, and the first after each.
        "2001:db8:0:1:ffff:ffff:ffff:ffff",
        "2001:db8:0:2::",
        "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff",
        "2001:db9::",
    ];
    for host in hosts {
        let mut lab = Lab::new();
        let a = at(host);
        lab.add(&format!("{host}/128"), 9);
        lab.publish();
        assert_eq!(lab.nh(a), Some(9), "{host} itself");
        for n in [a.checked_sub(1), a.checked_add(1)].into_iter().flatten() {
            assert_eq!(lab.nh(n), None, "{} next to {host}", Ipv6Addr::from(n));
        }
        for bit in 0..128 {
            assert_eq!(
                lab.nh(a ^ (1 << bit)),
                None,
                "{host} with bit {bit} flipped"
            );
        }
        lab.check(&[0, u128::MAX]);
        assert!(lab.del(&format!("{host}/128")));
        lab.publish();
        assert_eq!(lab.nh(a), None, "{host} removed");
    }
}

/// Routes at a shortcut length (/48, /64: exact-match tables) with longer
/// routes inside: the shortcut must never answer for an address under a
/// longer route, whatever the order of inserts and removes.
fn shortcut_scenario(routes: &[(&str, u32)], expect: &[(&str, Option<u32>)]) {
    let mut orders: Vec<Vec<usize>> = Vec::new();
    let n = routes.len();
    orders.push((0..n).collect());
    orders.push((0..n).rev().collect());
    let mut rng = StdRng::seed_from_u64(n as u64);
    for _ in 0..20 {
        let mut o: Vec<usize> = (0..n).collect();
        o.shuffle(&mut rng);
        orders.push(o);
    }
    for order in &orders {
        // One publish for everything.
        let mut lab = Lab::new();
        for &i in order {
            lab.add(routes[i].0, routes[i].1);
        }
        lab.publish();
        for &(a, want) in expect {
            assert_eq!(
                lab.nh(at(a)),
                want,
                "{a} after inserting in order {order:?}"
            );
        }
        // One publish per update, removing in the same order.
        let mut lab = Lab::new();
        for &i in order {
            lab.add(routes[i].0, routes[i].1);
            lab.publish();
        }
        for &(a, want) in expect {
            assert_eq!(
                lab.nh(at(a)),
                want,
                "{a} after inserting in order {order:?}"
            );
        }
        for &i in order {
            assert!(lab.del(routes[i].0));
            lab.publish();
        }
        assert_eq!(lab.fib.nodes(), 0, "an empty FIB keeps no node");
    }
}

#[test]
fn slash64_shortcut_never_shadows_longer_routes() {
    shortcut_scenario(
        &[
            ("2001:db8:1:2::/64", 64),
            ("2001:db8:1:2:8000::/65", 65),
            ("2001:db8:1:2::10/127", 127),
            ("2001:db8:1:2::11/128", 128),
            ("2001:db8:1:2:8000::5/128", 129),
            // A neighbouring /64 with nothing below it.
            ("2001:db8:1:3::/64", 3),
        ],
        &[
            ("2001:db8:1:2::", Some(64)),
            ("2001:db8:1:2::f", Some(64)),
            ("2001:db8:1:2::10", Some(127)),
            ("2001:db8:1:2::11", Some(128)),
            ("2001:db8:1:2::12", Some(64)),
            ("2001:db8:1:2:7fff:ffff:ffff:ffff", Some(64)),
            ("2001:db8:1:2:8000::", Some(65)),
            ("2001:db8:1:2:8000::4", Some(65)),
            ("2001:db8:1:2:8000::5", Some(129)),
            ("2001:db8:1:2:8000::6", Some(65)),
            ("2001:db8:1:2:ffff:ffff:ffff:ffff", Some(65)),
            ("2001:db8:1:3::11", Some(3)),
            ("2001:db8:1:3:8000::5", Some(3)),
            ("2001:db8:1:4::", None),
            ("2001:db8:1:1:ffff:ffff:ffff:ffff", None),
        ],
    );
}

#[test]
fn slash48_shortcut_never_shadows_longer_routes() {
    shortcut_scenario(
        &[
            ("2001:db8:1::/48", 48),
            ("2001:db8:1:8000::/49", 49),
            ("2001:db8:1:100::/56", 56),
            ("2001:db8:1:100::/64", 64),
            ("2001:db8:1:200::1/128", 128),
            ("2001:db8:2::/48", 2),
        ],
        &[
            ("2001:db8:1::", Some(48)),
            ("2001:db8:1:ff::", Some(48)),
            ("2001:db8:1:100::", Some(64)),
            ("2001:db8:1:100:ffff:ffff:ffff:ffff", Some(64)),
            ("2001:db8:1:101::", Some(56)),
            ("2001:db8:1:1ff::", Some(56)),
            ("2001:db8:1:200::", Some(48)),
            ("2001:db8:1:200::1", Some(128)),
            ("2001:db8:1:200::2", Some(48)),
            ("2001:db8:1:7fff:ffff:ffff:ffff:ffff", Some(48)),
            ("2001:db8:1:8000::", Some(49)),
            ("2001:db8:1:ffff:ffff:ffff:ffff:ffff", Some(49)),
            ("2001:db8:2:100::", Some(2)),
            ("2001:db8:2:200::1", Some(2)),
            ("2001:db8:3::", None),
            ("2001:db8::", None),
        ],
    );
}

#[test]
fn slash128_with_covering_routes_at_every_shortcut_length() {
    shortcut_scenario(
        &[
            ("2001:db8:1:2::1/128", 128),
            ("2001:db8:1:2::/64", 64),
            ("2001:db8:1::/48", 48),
            ("2001:db8::/32", 32),
            ("2001::/16", 16),
            ("::/0", 0),
        ],
        &[
            ("2001:db8:1:2::1", Some(128)),
            ("2001:db8:1:2::", Some(64)),
            ("2001:db8:1:2::2", Some(64)),
            ("2001:db8:1:3::1", Some(48)),
            ("2001:db8:2:2::1", Some(32)),
            ("2001:db9:1:2::1", Some(16)),
            ("2002:db8:1:2::1", Some(0)),
        ],
    );
}

/// Routes on one address path at and around every stride boundary: a bit
/// flipped at position `i` (counting from the most significant) leaves the
/// routes of length <= `i` matching.
#[test]
fn overlapping_routes_at_every_stride_boundary() {
    const LENS: [u8; 17] = [
        16, 17, 23, 24, 25, 31, 32, 33, 48, 56, 63, 64, 65, 120, 121, 127, 128,
    ];
    // Every byte differs, so each level indexes a different slot.
    let base: u128 = 0x2001_0db8_a5c3_5a3c_0f1e_2d3c_4b5a_6978;
    let expect = |lab: &Lab, present: &[u8]| {
        assert_eq!(
            lab.nh(base),
            present.iter().max().map(|&l| u32::from(l)),
            "the full path"
        );
        for i in 0..128u8 {
            let a = base ^ (1 << (127 - u32::from(i)));
            let want = present.iter().filter(|&&l| l <= i).max();
            assert_eq!(
                lab.nh(a),
                want.map(|&l| u32::from(l)),
                "bit {i} flipped, routes {present:?}"
            );
        }
        lab.check(&[base]);
    };
    let mut rng = StdRng::seed_from_u64(17);
    let mut orders = vec![LENS.to_vec(), LENS.iter().rev().copied().collect()];
    for _ in 0..8 {
        let mut o = LENS.to_vec();
        o.shuffle(&mut rng);
        orders.push(o);
    }
    for ins in &orders {
        let mut lab = Lab::new();
        let mut present = Vec::new();
        for &len in ins {
            lab.add_prefix(Prefix::new(base, len).unwrap(), u32::from(len));
            present.push(len);
            lab.publish();
            expect(&lab, &present);
        }
        let mut del = ins.clone();
        del.shuffle(&mut rng);
        for len in del {
            assert!(lab.del_prefix(Prefix::new(base, len).unwrap()));
            present.retain(|&l| l != len);
            lab.publish();
            expect(&lab, &present);
        }
        assert_eq!(lab.fib.nodes(), 0);
    }
}

#[test]
fn deleting_a_covering_route_keeps_its_more_specifics() {
    let mut lab = Lab::new();
    let specifics = [
        ("2001:db8:1::/48", 48),
        ("2001:db8:2:3::/64", 64),
        ("2001:db8::1/128", 128),
        ("2001:db8:8000::/33", 33),
        ("2001:db8:4:5:6::/80", 80),
    ];
    lab.add("::/0", 1);
    lab.add("2001::/16", 16);
    lab.add("2001:db8::/32", 32);
    for (p, nh) in specifics {
        lab.add(p, nh);
    }
    lab.publish();
    let inside = [
        ("2001:db8:1::5", Some(48)),
        ("2001:db8:2:3::5", Some(64)),
        ("2001:db8::1", Some(128)),
        ("2001:db8:8000::1", Some(33)),
        ("2001:db8:4:5:6::1", Some(80)),
    ];
    let uncovered = [
        "2001:db8::2",
        "2001:db8:2:4::",
        "2001:db8:4:5:7::",
        "2001:db8:7fff::",
    ];
    let check = |lab: &Lab, fallback: Option<u32>| {
        for (a, want) in inside {
            assert_eq!(lab.nh(at(a)), want, "{a} under a more-specific");
        }
        for a in uncovered {
            assert_eq!(lab.nh(at(a)), fallback, "{a} under the /32 only");
        }
    };
    check(&lab, Some(32));
    assert!(lab.del("2001:db8::/32"));
    lab.publish();
    check(&lab, Some(16));
    assert!(lab.del("2001::/16"));
    lab.publish();
    check(&lab, Some(1));
    assert!(lab.del("::/0"));
    lab.publish();
    check(&lab, None);
    assert_eq!(lab.nh(at("2002::")), None);
    // Re-adding brings each back.
    lab.add("2001::/16", 16);
    lab.publish();
    check(&lab, Some(16));
    lab.add("2001:db8::/32", 32);
    lab.publish();
    check(&lab, Some(32));
    // And the more-specifics can go while the /32 stays.
    for (p, _) in specifics {
        assert!(lab.del(p));
        lab.publish();
    }
    for (a, _) in inside {
        assert_eq!(lab.nh(at(a)), Some(32), "{a} after its more-specific left");
    }
}

#[test]
fn delete_and_readd_in_one_batch_and_across_batches() {
    let mut lab = Lab::new();
    let routes = [
        ("::/0", 1),
        ("2001::/16", 2),
        ("2001:db8::/32", 3),
        ("2001:db8:1::/48", 4),
        ("2001:db8:1:2::/64", 5),
        ("2001:db8:1:2::1/128", 6),
        ("2001:db8:1:2::/100", 7),
    ];
    for (p, nh) in routes {
        lab.add(p, nh);
    }
    lab.publish();
    for (p, nh) in routes {
        // Delete and re-add within one batch: readers never see a gap.
        assert!(lab.del(p));
        lab.add(p, nh + 10);
        lab.publish();
        // Delete, publish, re-add, publish.
        assert!(lab.del(p));
        lab.publish();
        lab.add(p, nh);
        lab.publish();
    }
}

#[test]
fn inserting_again_replaces_the_next_hop() {
    let prefixes = [
        "::/0",
        "2001::/16",
        "2001:db8::/20",
        "2001:db8::/32",
        "2001:db8:1::/47",
        "2001:db8:1::/48",
        "2001:db8:1:2::/64",
        "2001:db8:1:2::/100",
        "2001:db8::1/128",
    ];
    for p in prefixes {
        let mut lab = Lab::new();
        let host = pfx(p).len() == 128;
        let a = if host {
            pfx(p).bits()
        } else {
            pfx(p).bits() | 0x11
        };
        lab.add(p, 1);
        lab.publish();
        assert_eq!(lab.nh(a), Some(1), "{p}");
        let g1 = lab.fib.get(pfx(p));
        lab.add(p, 2);
        // Unpublished: readers still see the old next hop.
        assert_eq!(lab.nh(a), Some(1), "{p} before publish");
        assert_ne!(
            lab.fib.get(pfx(p)),
            g1,
            "the control side sees the new group"
        );
        lab.publish();
        assert_eq!(lab.nh(a), Some(2), "{p} replaced");
        assert_eq!(lab.reader.load().routes(), 1, "a replace adds no route");
        assert_eq!(lab.reader.load().groups(), 1, "the old group is freed");
        // The same next hop again changes nothing.
        lab.add(p, 2);
        lab.publish();
        assert_eq!(lab.nh(a), Some(2));
        if host {
            continue;
        }
        // Replacing while a more-specific sits below it (no shortcut).
        lab.add(&format!("{}/128", Ipv6Addr::from(pfx(p).bits() | 0x10)), 3);
        lab.add(p, 4);
        lab.publish();
        assert_eq!(lab.nh(a), Some(4), "{p} replaced above a /128");
        assert!(lab.del(&format!("{}/128", Ipv6Addr::from(pfx(p).bits() | 0x10))));
        lab.add(p, 5);
        lab.publish();
        assert_eq!(lab.nh(a), Some(5), "{p} replaced after its /128 left");
        assert_eq!(lab.nh(pfx(p).bits() | 0x10), Some(5));
    }
}

#[test]
fn removing_a_missing_route_returns_false() {
    let mut lab = Lab::new();
    for p in [
        "::/0",
        "2001::/16",
        "2001:db8::/48",
        "2001:db8::/64",
        "::1/128",
    ] {
        assert!(!lab.fib.remove(pfx(p)), "{p} from an empty FIB");
    }
    lab.add("2001:db8:1::/48", 1);
    lab.add("2001:db8:1:2::/64", 2);
    lab.add("2001:db8:1:2::1/128", 3);
    lab.add("2001::/16", 4);
    lab.publish();
    for p in [
        "::/0",
        "2001::/15",
        "2001::/17",
        "2000::/16",
        "2001:db8:1::/47",
        "2001:db8:1::/49",
        "2001:db8:2::/48",
        "2001:db8:1:3::/64",
        "2001:db8:1:2::/63",
        "2001:db8:1:2::/65",
        "2001:db8:1:2::/127",
        "2001:db8:1:2::/128",
        "2001:db8:1:2::2/128",
    ] {
        assert!(!lab.del(p), "{p} is not a route");
    }
    assert_eq!(lab.fib.routes(), 4, "failed removes change nothing");
    lab.publish();
    assert!(lab.del("2001:db8:1:2::/64"));
    assert!(!lab.del("2001:db8:1:2::/64"), "removed twice");
    lab.publish();
    assert_eq!(lab.nh(at("2001:db8:1:2::2")), Some(1));
}

#[test]
fn readers_see_nothing_until_publish() {
    let mut lab = Lab::new();
    lab.add("2001:db8::/32", 1);
    lab.add("2001:db8:1::/48", 2);
    lab.add("2001:db8:2::1/128", 3);
    lab.publish();
    let published = lab.model.clone();
    let before = lab.reader.load_full();
    let gen = before.generation();
    // A batch of every kind of change.
    lab.add("2001:db8:3::/48", 4);
    lab.add("2001:db8:1::/48", 5);
    assert!(lab.del("2001:db8:2::1/128"));
    lab.add("::/0", 6);
    lab.add("2001:db8:4:5::/64", 7);
    assert_eq!(
        lab.fib.routes(),
        5,
        "the control side counts unpublished routes"
    );
    let probe = probes(&lab.model, &probes(&published, &[]));
    for s in [&before, &lab.reader.load_full()] {
        assert_eq!(s.generation(), gen, "no publish yet");
        check(s, &published, &probe);
    }
    lab.fib.publish();
    // The snapshot loaded before publish stays as it was...
    assert_eq!(before.generation(), gen);
    check(&before, &published, &probe);
    drop(before);
    // ...and a new load sees the whole batch.
    let after = lab.reader.load_full();
    assert_eq!(after.generation(), gen + 1);
    check(&after, &lab.model, &probe);
    drop(after);
    // Publishing with no change is a new generation with the same content.
    lab.fib.publish();
    assert_eq!(lab.reader.load().generation(), gen + 2);
    lab.check(&probe);
}

fn data_file(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../bench/data")
        .join(name)
}

/// Parses a table: one prefix per line with an optional next-hop id (tab or
/// space separated); `#` starts a comment. Lines without a next hop get ids
/// 1..=8 in turn.
fn parse_table(name: &str) -> Vec<(Prefix, u32)> {
    let path = data_file(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let mut fields = line.split_whitespace();
        let p: Prefix = fields
            .next()
            .unwrap()
            .parse()
            .unwrap_or_else(|e| panic!("{name}:{}: {e}", i + 1));
        let nh = match fields.next() {
            Some(f) => f
                .parse()
                .unwrap_or_else(|e| panic!("{name}:{}: {e}", i + 1)),
            None => (out.len() % 8) as u32 + 1,
        };
        out.push((p, nh));
    }
    out
}

/// A random address inside `p`.
fn inside(p: Prefix, rng: &mut StdRng) -> u128 {
    p.bits() | (rng.gen::<u128>() & !mask(p.len()))
}

/// Loads a table, then checks ~20k addresses against the model; removes a
/// random half, re-checks, re-adds it with other next hops and re-checks.
fn table_agrees_with_model(name: &str, expect_routes: usize) {
    let table = parse_table(name);
    assert_eq!(table.len(), expect_routes, "{name}: lines");
    let mut rng = StdRng::seed_from_u64(0x5eed);
    let mut lab = Lab::new();
    for &(p, nh) in &table {
        lab.add_prefix(p, nh);
    }
    assert_eq!(lab.model.len(), table.len(), "{name} has no duplicates");
    lab.fib.publish();
    let mut addrs: Vec<u128> = Vec::with_capacity(24_000);
    for _ in 0..12_000 {
        let &(p, _) = table.choose(&mut rng).unwrap();
        addrs.push(inside(p, &mut rng));
    }
    for _ in 0..1_000 {
        let &(p, _) = table.choose(&mut rng).unwrap();
        addrs.extend([p.bits(), p.bits() | !mask(p.len())]);
    }
    for _ in 0..3_000 {
        addrs.push(rng.gen());
        // Global unicast, where the routes are.
        addrs.push((rng.gen::<u128>() >> 3) | (1 << 125));
    }
    let check_all = |lab: &Lab, what: &str| {
        let s = lab.reader.load();
        assert_eq!(s.routes(), lab.model.len(), "{name} {what}: routes");
        let mut batch = vec![None; addrs.len()];
        s.lookup_batch(&addrs, &mut batch);
        for (i, &a) in addrs.iter().enumerate() {
            let want = lab.model.lookup(a);
            assert_eq!(resolve(&s, a), want, "{name} {what}: {}", Ipv6Addr::from(a));
            assert_eq!(
                batch[i].map(|g| s.group(g).unwrap().members[0].id.0),
                want,
                "{name} {what}: batch lookup of {}",
                Ipv6Addr::from(a)
            );
        }
    };
    check_all(&lab, "loaded");
    let mut half: Vec<Prefix> = table.iter().map(|&(p, _)| p).collect();
    half.shuffle(&mut rng);
    half.truncate(table.len() / 2);
    for &p in &half {
        assert!(lab.del_prefix(p));
    }
    lab.fib.publish();
    check_all(&lab, "half removed");
    for (i, &p) in half.iter().enumerate() {
        lab.add_prefix(p, 100 + (i % 7) as u32);
    }
    lab.fib.publish();
    check_all(&lab, "re-added");
}

#[test]
fn k8s_table_agrees_with_model() {
    table_agrees_with_model("ipv6-k8s-edge.txt", 72_263);
}

#[test]
fn real_bgp_table_agrees_with_model() {
    table_agrees_with_model("ipv6-bgp-2021-as199524.tsv", 100_899);
}

#[test]
fn nexthops_of_a_route_follow_inserts_replacements_and_removals() {
    let mut fib = Fib::new();
    let p = pfx("2001:db8:100::/48");
    assert_eq!(fib.nexthops(p), None);
    fib.insert(p, &[NextHop::new(3), NextHop::new(1)]).unwrap();
    let mut got = fib.nexthops(p).unwrap();
    got.sort();
    assert_eq!(got, [NextHopId(1), NextHopId(3)]);
    // Replaced: the new set, before and after publication.
    fib.insert(p, &[NextHop::new(1), NextHop::new(7)]).unwrap();
    let mut got = fib.nexthops(p).unwrap();
    got.sort();
    assert_eq!(got, [NextHopId(1), NextHopId(7)]);
    fib.publish();
    assert_eq!(fib.nexthops(pfx("2001:db8:100::/47")), None);
    assert!(fib.remove(p));
    assert_eq!(fib.nexthops(p), None);
}

/// The nodes and leaves are one copy shared by every snapshot, changed
/// copy-on-write: a snapshot a reader keeps must answer the same through
/// any number of later publishes, and the blocks replaced meanwhile must be
/// reused once no snapshot reaches them, not pile up (while it is held,
/// only what it reaches may wait).
#[test]
fn held_snapshots_keep_their_answers_and_replaced_memory_is_reused() {
    let table = parse_table("ipv6-bgp-2021-as199524.tsv");
    let mut rng = StdRng::seed_from_u64(7);
    let mut fib = Fib::new();
    for &(p, nh) in &table {
        fib.insert(p, &[NextHop::new(nh)]).unwrap();
    }
    fib.publish();
    let reader = fib.reader();
    let addrs: Vec<u128> = (0..20_000)
        .map(|_| inside(table.choose(&mut rng).unwrap().0, &mut rng))
        .collect();
    let answers =
        |s: &Snapshot| -> Vec<Option<u32>> { addrs.iter().map(|&a| resolve(s, a)).collect() };
    let held = reader.load_full();
    let before = answers(&held);
    // Churn: every batch moves 1,000 routes to other next hops and back.
    let mut churn = |fib: &mut Fib, batches: usize| {
        for b in 0..batches {
            for _ in 0..500 {
                let &(p, nh) = table.choose(&mut rng).unwrap();
                fib.remove(p);
                fib.insert(p, &[NextHop::new(nh + 1 + (b % 3) as u32)])
                    .unwrap();
            }
            fib.publish();
        }
    };
    churn(&mut fib, 20);
    assert_eq!(
        answers(&held),
        before,
        "a held snapshot changed under its reader"
    );
    // While it is held, what it reaches waits, but nothing else: once the
    // blocks it reaches have all been replaced, the store stops growing.
    churn(&mut fib, 100);
    let held_settled = fib.memory().store;
    churn(&mut fib, 200);
    let held_after = fib.memory().store;
    assert!(
        held_after <= held_settled + held_settled / 10,
        "with a snapshot held, the store grew from {held_settled} to {held_after} bytes"
    );
    assert_eq!(
        answers(&held),
        before,
        "a held snapshot changed under its reader"
    );
    assert_ne!(answers(&reader.load()), before, "the churn changed nothing");
    drop(held);
    churn(&mut fib, 50);
    let settled = fib.memory();
    churn(&mut fib, 300);
    let after = fib.memory();
    for (what, settled, after) in [
        ("the store", settled.store, after.store),
        ("the FIB", settled.total, after.total),
    ] {
        assert!(
            after <= settled + settled / 10,
            "{what} grew from {settled} to {after} bytes under steady churn"
        );
    }
}

/// After a burst of changes the store spans the copies they made; compaction
/// moves the live blocks down and gives the end back: the store returns to
/// about its size once built, no answer changes (for the published snapshot
/// nor for one a reader holds through it), and the FIB takes changes
/// normally afterwards.
#[test]
fn compaction_gives_back_what_churn_left_and_changes_no_answer() {
    let table = parse_table("ipv6-bgp-2021-as199524.tsv");
    let mut rng = StdRng::seed_from_u64(11);
    let mut lab = Lab::new();
    for &(p, nh) in &table {
        lab.add_prefix(p, nh);
    }
    lab.fib.publish();
    lab.fib.publish();
    let built = lab.fib.memory().store;
    let addrs: Vec<u128> = (0..20_000)
        .map(|_| inside(table.choose(&mut rng).unwrap().0, &mut rng))
        .collect();
    let check = |lab: &Lab, s: &Snapshot, what: &str| {
        let mut batch = vec![None; addrs.len()];
        s.lookup_batch(&addrs, &mut batch);
        for (i, &a) in addrs.iter().enumerate() {
            let want = lab.model.lookup(a);
            assert_eq!(resolve(s, a), want, "{what}: {}", Ipv6Addr::from(a));
            assert_eq!(
                batch[i].map(|g| s.group(g).unwrap().members[0].id.0),
                want,
                "{what}: batch lookup of {}",
                Ipv6Addr::from(a)
            );
        }
    };
    let mut churn = |lab: &mut Lab, batches: usize| {
        for b in 0..batches {
            for _ in 0..500 {
                let &(p, nh) = table.choose(&mut rng).unwrap();
                lab.del_prefix(p);
                lab.add_prefix(p, nh + 1 + (b % 3) as u32);
            }
            lab.fib.publish();
        }
    };
    churn(&mut lab, 30);
    let churned = lab.fib.memory().store;
    assert!(
        churned > built + built / 5,
        "the churn left no slack to give back ({built} -> {churned} bytes)"
    );
    assert!(lab.fib.fragmented(1.2), "a churned store is not fragmented");
    // A reader holds the snapshot from before: compaction must not change
    // what it reads (the blocks it reaches wait for it).
    let held = lab.reader.load_full();
    check(&lab, &held, "held, before compaction");
    let c = lab.fib.compact();
    assert!(c.moved > 0, "{c:?}");
    check(&lab, &held, "held, through compaction");
    check(
        &lab,
        &lab.reader.load(),
        "after compaction with a snapshot held",
    );
    drop(held);
    let c = lab.fib.compact();
    let after = lab.fib.memory().store;
    assert!(
        after <= built + built / 20,
        "after compaction the store is {after} bytes, built it was {built} ({c:?})"
    );
    assert_eq!(c.store_after, after);
    assert!(!lab.fib.fragmented(1.2), "compacted store still fragmented");
    check(&lab, &lab.reader.load(), "after compaction");
    // Changes go on as before, into the room compaction left.
    churn(&mut lab, 10);
    check(&lab, &lab.reader.load(), "churn after compaction");
    for &(p, _) in table.iter().take(5_000) {
        lab.del_prefix(p);
    }
    lab.fib.publish();
    lab.fib.compact();
    check(&lab, &lab.reader.load(), "removals and compaction");
    assert!(
        lab.fib.memory().store < after,
        "removing routes gave nothing back"
    );
}

/// A full FIB refuses new routes with an error, never panics, keeps
/// answering for the routes it has, still takes changes to them and
/// removals, and takes new routes again once removals made room.
#[test]
fn a_full_fib_refuses_new_routes_and_keeps_the_rest() {
    let mut fib = Fib::with_capacity(4096, 1 << 16);
    let reader = fib.reader();
    // Each /48 in its own /32 needs a node at levels 24, 32 and 40.
    let route = |i: u32| Prefix::new((0x2a00u128 << 112) | (u128::from(i) << 96), 48).unwrap();
    let mut added = Vec::new();
    let err = loop {
        let i = added.len() as u32;
        assert!(i < 10_000, "4,096 nodes of room never filled");
        match fib.insert(route(i), &[NextHop::new(i + 1)]) {
            Ok(()) => added.push(i),
            Err(e) => break e,
        }
        if i % 100 == 0 {
            fib.publish();
        }
    };
    assert!(matches!(err, fib::FibError::Full { .. }), "{err}");
    assert!(err.to_string().starts_with("the FIB is full"), "{err}");
    assert!(added.len() > 100, "refused after {} routes", added.len());
    fib.publish();
    let last = *added.last().unwrap();
    // An existing route still changes its next hop.
    fib.insert(route(last), &[NextHop::new(99_999)]).unwrap();
    fib.publish();
    let s = reader.load();
    for &i in &added {
        let want = if i == last { 99_999 } else { i + 1 };
        let a = route(i).bits() | 1;
        assert_eq!(resolve(&s, a), Some(want), "{}", Ipv6Addr::from(a));
    }
    drop(s);
    // Removals make room again (once no snapshot reaches the blocks).
    for &i in &added[..added.len() / 2] {
        assert!(fib.remove(route(i)));
    }
    fib.publish();
    fib.publish();
    let next = added.len() as u32;
    fib.insert(route(next), &[NextHop::new(7)]).unwrap();
    fib.publish();
    assert_eq!(resolve(&reader.load(), route(next).bits()), Some(7));
}

/// The writer's store statistics count what copy-on-write writes: nothing
/// for a publish without changes; for a changed /48, its node rewritten
/// and its leaf runs written, and, once a snapshot reaches the node's
/// block, that block copied first.
#[test]
fn store_writes_count_what_copy_on_write_writes() {
    let mut fib = Fib::new();
    for i in 0..8u128 {
        let p = Prefix::new((0x2001_0db8_u128 << 96) | (i << 80), 48).unwrap();
        fib.insert(p, &[NextHop::new(1)]).unwrap();
    }
    fib.publish();
    let a = fib.store_writes();
    assert!(a.nodes_written > 0 && a.leaf_runs_written > 0, "{a:?}");
    fib.publish();
    assert_eq!(fib.store_writes(), a, "a publish without changes wrote");
    let p = Prefix::new((0x2001_0db8_u128 << 96) | (3 << 80), 48).unwrap();
    fib.insert(p, &[NextHop::new(2)]).unwrap();
    fib.publish();
    let b = fib.store_writes();
    assert!(
        b.nodes_copied > a.nodes_copied,
        "published blocks are copied first: {b:?}"
    );
    assert!(b.nodes_written > a.nodes_written, "{b:?}");
    assert!(b.leaf_runs_written > a.leaf_runs_written, "{b:?}");
}

/// The /32s of /24 number `x` under 2001::/16, next hops alternating so
/// that the /24's node holds `runs_per_node` leaf runs (at most 256).
fn alternating_32s(x: u128, runs_per_node: u32) -> Vec<(Prefix, u32)> {
    (0..256u128)
        .map(|s| {
            let p = Prefix::new((0x2001u128 << 112) | (x << 104) | (s << 96), 32).unwrap();
            // `runs_per_node` runs: change value every 256 / runs slots.
            let step = (256 / runs_per_node.max(1)) as u128;
            (p, 1 + ((s / step) % 2) as u32)
        })
        .collect()
}

/// One batch big enough to need more leaf runs than the store has: the
/// leaf runs are only counted when `publish` writes them, so every insert
/// was taken and `publish` overflowed the store and panicked. It must
/// refuse (`Full`) instead, and publish what it took.
#[test]
fn one_batch_larger_than_the_leaf_store_is_refused_not_a_panic() {
    let mut fib = Fib::with_capacity(64, 512);
    let reader = fib.reader();
    let mut taken = Vec::new();
    let mut refused = 0;
    for x in 0..3u128 {
        for (p, nh) in alternating_32s(x, 256) {
            match fib.insert(p, &[NextHop::new(nh)]) {
                Ok(()) => taken.push((p, nh)),
                Err(FibError::Full { .. }) => refused += 1,
                Err(e) => panic!("{e}"),
            }
        }
    }
    fib.publish();
    assert!(refused > 0, "768 runs fit a store of 512");
    let s = reader.load();
    for (p, nh) in &taken {
        assert_eq!(resolve(&s, p.bits() | 1), Some(*nh), "{p}");
    }
}

/// Changes to routes already in the FIB can split the leaf runs of their
/// nodes as new routes do: 1,280 /32s with one next hop take 5 runs, then
/// giving every other one another next hop asks for 1,280 runs of a store
/// of 1,024. Replacements were never refused, so a flush overflowed the
/// store and panicked; they are refused (`Full`) past the store's mark
/// now, and every route answers with what its last accepted change said.
#[test]
fn replacements_that_split_leaf_runs_are_refused_not_a_panic() {
    let mut fib = Fib::with_capacity(1024, 1024);
    let reader = fib.reader();
    let mut want = Vec::new();
    for x in 0..5u128 {
        for (p, _) in alternating_32s(x, 256) {
            fib.insert(p, &[NextHop::new(1)]).unwrap();
            want.push((p, 1));
        }
    }
    fib.publish();
    let mut refused = 0;
    for (i, (p, nh)) in want.iter_mut().enumerate() {
        if i % 2 == 1 {
            match fib.insert(*p, &[NextHop::new(2)]) {
                Ok(()) => *nh = 2,
                Err(FibError::Full { .. }) => refused += 1,
                Err(e) => panic!("{e}"),
            }
        }
    }
    fib.publish();
    assert!(refused > 0, "1,280 runs fit a store of 1,024");
    let s = reader.load();
    for (p, nh) in &want {
        assert_eq!(resolve(&s, p.bits() | 1), Some(*nh), "{p}");
    }
    // The same next hops again change nothing, and are never refused.
    for (p, nh) in &want {
        fib.insert(*p, &[NextHop::new(*nh)]).unwrap();
    }
}

/// Leaf blocks of ever smaller size classes, each phase freed before the
/// next: the free blocks of one class did not serve the next, so the
/// store's high-water mark grew phase after phase while the runs in use
/// stayed under a quarter of it, until `publish` overflowed the store
/// and panicked. Free space of a larger class now serves a smaller one.
#[test]
fn leaf_blocks_changing_size_class_do_not_overflow_the_store() {
    let mut fib = Fib::with_capacity(65536, 4096);
    let reader = fib.reader();
    for (runs, nodes) in [(256, 4), (128, 6), (64, 12), (32, 25), (16, 50)] {
        let mut all = Vec::new();
        for x in 0..nodes {
            let routes = alternating_32s(x, runs);
            for &(p, nh) in &routes {
                fib.insert(p, &[NextHop::new(nh)])
                    .unwrap_or_else(|e| panic!("{runs} runs x {nodes}: {p}: {e}"));
            }
            fib.publish();
            all.extend(routes);
        }
        let s = reader.load();
        for &(p, nh) in &all {
            assert_eq!(resolve(&s, p.bits() | 1), Some(nh), "{p}");
        }
        drop(s);
        for &(p, _) in &all {
            assert!(fib.remove(p));
        }
        fib.publish();
        fib.publish();
    }
}

/// A capacity no index or no mapping can hold is an error, not a panic
/// or (in a release build, where the size wrapped) a store smaller than
/// it says.
#[test]
fn an_impossible_capacity_is_an_error() {
    for (nodes, leaves) in [
        ((1usize << 57) + 1, 1024),
        (1 << 30, 1024),
        (1024, (1usize << 62) + 1),
        (1024, 1 << 33),
    ] {
        match Fib::try_with_capacity(nodes, leaves) {
            Err(FibError::Reserve { .. }) => {}
            Err(e) => panic!("{nodes} nodes, {leaves} leaf runs: {e}"),
            Ok(_) => panic!("{nodes} nodes, {leaves} leaf runs: a FIB"),
        }
    }
    assert!(Fib::try_with_capacity(1 << 20, 1 << 24).is_ok());
}

/// A FIB with room for few nodes refuses a route it could not later
/// copy on write, rather than panicking in `publish` when the route's
/// path is rewritten (a /121 takes 13 nodes, levels 24 to 120).
#[test]
fn a_small_store_refuses_what_it_could_not_rewrite() {
    let mut fib = Fib::try_with_capacity(16, 4096).unwrap();
    let p = pfx("2001:db8::/121");
    for nh in [1, 2, 3] {
        match fib.insert(p, &[NextHop::new(nh)]) {
            Ok(()) | Err(FibError::Full { .. }) => {}
            Err(e) => panic!("{e}"),
        }
        fib.publish();
    }
    // A store with room takes it.
    let mut fib = Fib::try_with_capacity(1024, 4096).unwrap();
    for nh in [1, 2, 3] {
        fib.insert(p, &[NextHop::new(nh)]).unwrap();
        fib.publish();
    }
    assert!(fib.reader().load().lookup(p.bits()).is_some());
}

/// A burst of /128 and /64 routes gone again gives its memory back: the
/// exact-match tables (in both copies) and the control side's maps only
/// ever grew, so 100,000 withdrawn host routes kept megabytes for good.
/// The routes left still answer from the rebuilt tables, in both copies.
#[test]
fn exact_tables_shrink_when_routes_go() {
    let mut fib = Fib::new();
    let reader = fib.reader();
    let host = |i: u128| Prefix::new((0x2001_0db8_0001u128 << 80) | i, 128).unwrap();
    let pod = |i: u128| Prefix::new((0x2001_0db8_0002u128 << 80) | (i << 64), 64).unwrap();
    fib.publish();
    let empty = fib.memory().total;
    for i in 0..100_000u128 {
        fib.insert(host(i), &[NextHop::new(1)]).unwrap();
        fib.insert(pod(i), &[NextHop::new(2)]).unwrap();
    }
    fib.publish();
    let full = fib.memory().total;
    for i in 3..100_000u128 {
        assert!(fib.remove(host(i)));
        assert!(fib.remove(pod(i)));
    }
    // Twice: both copies caught up with the rebuilt tables.
    fib.publish();
    fib.publish();
    let after = fib.memory().total;
    assert!(
        after - empty < (full - empty) / 10,
        "empty {empty} B, with 200,000 exact routes {full} B, after removing them {after} B"
    );
    for _ in 0..2 {
        let s = reader.load();
        for i in 0..3u128 {
            assert_eq!(resolve(&s, host(i).bits()), Some(1), "{i}");
            assert_eq!(resolve(&s, pod(i).bits() | 7), Some(2), "{i}");
        }
        assert_eq!(resolve(&s, host(5).bits()), None);
        assert_eq!(resolve(&s, pod(5).bits()), None);
        drop(s);
        fib.publish();
    }
}
