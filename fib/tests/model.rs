//! The FIB against a naive model: random add/remove sequences with short,
//! overlapping prefixes, every published snapshot checked on addresses at
//! and around every prefix.

use std::collections::BTreeMap;

use fib::{Fib, NextHop, Prefix, Snapshot};
use proptest::prelude::*;

/// Longest-prefix match by brute force.
#[derive(Default, Clone)]
struct Model {
    routes: BTreeMap<(u8, u128), u32>,
}

impl Model {
    fn lookup(&self, a: u128) -> Option<u32> {
        (0..=128u8).rev().find_map(|len| {
            let p = Prefix::new(a, len).unwrap();
            self.routes.get(&(len, p.bits())).copied()
        })
    }
}

/// The next hop a snapshot resolves `a` to (single-member groups here).
fn resolve(s: &Snapshot, a: u128) -> Option<u32> {
    let g = s.lookup(a)?;
    Some(s.group(g).expect("a route's group exists").members[0].id.0)
}

fn check(s: &Snapshot, m: &Model, probes: &[u128]) -> Result<(), TestCaseError> {
    let mut batch = vec![None; probes.len()];
    s.lookup_batch(probes, &mut batch);
    for (i, &a) in probes.iter().enumerate() {
        let want = m.lookup(a);
        prop_assert_eq!(resolve(s, a), want, "single lookup of {:x}", a);
        let got = batch[i].map(|g| s.group(g).unwrap().members[0].id.0);
        prop_assert_eq!(got, want, "batch lookup of {:x}", a);
    }
    prop_assert_eq!(s.routes(), m.routes.len());
    Ok(())
}

#[derive(Debug, Clone)]
enum Op {
    Add(Prefix, u32),
    Remove(Prefix),
    Publish,
    /// Compaction (which publishes pending changes too), with or without
    /// a snapshot held through it.
    Compact(bool),
}

/// Prefixes that overlap a lot: few bases, lengths around every stride
/// boundary, the shortcut lengths (/64, /128) and the short ones.
fn prefix() -> impl Strategy<Value = Prefix> {
    let bases = [
        0x2001_0db8_0000_0000_0000_0000_0000_0000u128,
        0x2001_0db8_0100_0000_0000_0000_0000_0000,
        0x2001_0db8_0100_0000_0000_0000_0000_00db,
        0xfd00_0010_02c1_8201_0000_0000_0000_0000,
        0x2a02_0000_0000_0000_0000_0000_0000_0000,
        0,
        u128::MAX,
    ];
    let lens = prop_oneof![
        0u8..=20,
        prop::sample::select(vec![23u8, 24, 25, 31, 32, 33, 40, 47, 48, 49, 56]),
        prop::sample::select(vec![63u8, 64, 65, 72, 100, 119, 120, 121, 127, 128]),
    ];
    (
        prop::sample::select(bases.to_vec()),
        lens,
        any::<u128>(),
        0u8..3,
    )
        .prop_map(|(base, len, noise, spread)| {
            // Flip a few random bits near the end of the prefix so siblings
            // and cousins appear.
            let bits = match spread {
                0 => base,
                1 => base ^ (noise & (u128::MAX >> len.saturating_sub(3).min(127))),
                _ => base ^ (noise & (u128::MAX >> len.saturating_sub(10).min(127))),
            };
            Prefix::new(bits, len).unwrap()
        })
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (prefix(), 1u32..6).prop_map(|(p, nh)| Op::Add(p, nh)),
        3 => prefix().prop_map(Op::Remove),
        1 => Just(Op::Publish),
        1 => any::<bool>().prop_map(Op::Compact),
    ]
}

fn probes(m: &Model, extra: &[u128]) -> Vec<u128> {
    let mut v: Vec<u128> = extra.to_vec();
    for &(len, bits) in m.routes.keys() {
        let p = Prefix::new(bits, len).unwrap();
        let last = bits
            | !(if len == 0 {
                0
            } else {
                u128::MAX << (128 - len)
            });
        v.extend([bits, last, bits.wrapping_sub(1), last.wrapping_add(1)]);
        v.push(bits ^ (1 << (127 - u32::from(len.min(127)))));
        let _ = p;
    }
    v
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn matches_naive_model(ops in prop::collection::vec(op(), 1..200),
                           randoms in prop::collection::vec(any::<u128>(), 32)) {
        let mut fib = Fib::new();
        let reader = fib.reader();
        let mut model = Model::default();
        let mut published = Model::default();
        for op in ops {
            match op {
                Op::Add(p, nh) => {
                    fib.insert(p, &[NextHop::new(nh)]).unwrap();
                    model.routes.insert((p.len(), p.bits()), nh);
                }
                Op::Remove(p) => {
                    let had = model.routes.remove(&(p.len(), p.bits())).is_some();
                    prop_assert_eq!(fib.remove(p), had);
                }
                Op::Publish => {
                    // Readers still see the previous snapshot until publish.
                    let before = reader.load();
                    check(&before, &published, &probes(&published, &randoms))?;
                    drop(before);
                    fib.publish();
                    published = model.clone();
                    check(&reader.load(), &published, &probes(&published, &randoms))?;
                }
                Op::Compact(hold) => {
                    let held = hold.then(|| reader.load_full());
                    fib.compact();
                    if let Some(held) = held {
                        check(&held, &published, &probes(&published, &randoms))?;
                    }
                    published = model.clone();
                    check(&reader.load(), &published, &probes(&published, &randoms))?;
                }
            }
        }
        fib.publish();
        check(&reader.load(), &model, &probes(&model, &randoms))?;
        // Remove everything: the FIB must come back empty.
        for &(len, bits) in model.routes.keys() {
            prop_assert!(fib.remove(Prefix::new(bits, len).unwrap()));
        }
        fib.publish();
        let empty = Model::default();
        check(&reader.load(), &empty, &probes(&model, &randoms))?;
        prop_assert_eq!(fib.nodes(), 0);
    }
}
