//! Micro-benchmarks of the FIB on the real table (100,899 IPv6 prefixes):
//! lookups of addresses inside table prefixes, one at a time and in batches,
//! and updates with their publish.
//!
//! `cargo bench -p fib -- --quick` for a fast run; `cargo test -p fib
//! --benches` runs each benchmark once as a smoke test. The bench crate has
//! the full comparison against rte_lpm6 and prefix-trie.

use std::hint::black_box;
use std::path::PathBuf;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, SamplingMode, Throughput};
use fib::{Fib, FibReader, NextHop, Prefix};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Addresses cycled through by the lookup benchmarks (1 MiB of them: more
/// than L2, so lookups are not all cache hits).
const ADDRS: usize = 1 << 16;

/// The real table: (prefix, next-hop id) per line, tab-separated.
fn load_table() -> Vec<(Prefix, u32)> {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../bench/data/ipv6-bgp-2021-as199524.tsv");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (p, nh) = l
                .split_once('\t')
                .unwrap_or_else(|| panic!("no tab in {l:?}"));
            let p: Prefix = p.parse().unwrap_or_else(|e| panic!("{l:?}: {e}"));
            (
                p,
                nh.trim().parse().unwrap_or_else(|e| panic!("{l:?}: {e}")),
            )
        })
        .collect()
}

fn loaded(table: &[(Prefix, u32)]) -> (Fib, FibReader) {
    let mut fib = Fib::new();
    for &(p, nh) in table {
        fib.insert(p, &[NextHop::new(nh)]).unwrap();
    }
    fib.publish();
    let reader = fib.reader();
    (fib, reader)
}

/// Random addresses inside prefixes drawn uniformly from the table.
fn in_table(table: &[(Prefix, u32)], n: usize, seed: u64) -> Vec<u128> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..n)
        .map(|_| {
            let (p, _) = table[rng.gen_range(0..table.len())];
            let host = u128::MAX.checked_shr(u32::from(p.len())).unwrap_or(0);
            p.bits() | (rng.gen::<u128>() & host)
        })
        .collect()
}

/// `n` prefixes not in the table: /48s and /64s under 2001:db8::/32.
fn fresh_prefixes(fib: &Fib, n: usize, seed: u64) -> Vec<Prefix> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let len = if out.len() % 4 == 3 { 64 } else { 48 };
        let bits = (0x2001_0db8u128 << 96) | (rng.gen::<u128>() >> 32);
        let p = Prefix::new(bits, len).unwrap();
        if fib.get(p).is_none() && !out.contains(&p) {
            out.push(p);
        }
    }
    out
}

fn benches(c: &mut Criterion) {
    let table = load_table();
    let (mut fib, reader) = loaded(&table);
    let addrs = in_table(&table, ADDRS, 1);

    let mut g = c.benchmark_group("lookup");
    {
        let s = reader.load_full();
        g.throughput(Throughput::Elements(1));
        g.bench_function("single", |b| {
            let mut i = 0;
            b.iter(|| {
                let a = addrs[i & (ADDRS - 1)];
                i += 1;
                s.lookup(black_box(a))
            })
        });
        for n in [64usize, 256] {
            let mut out = vec![None; n];
            g.throughput(Throughput::Elements(n as u64));
            g.bench_function(format!("batch/{n}"), |b| {
                let mut i = 0;
                b.iter(|| {
                    let off = i & (ADDRS - 1);
                    i += n;
                    s.lookup_batch(black_box(&addrs[off..off + n]), &mut out);
                    black_box(&out);
                })
            });
        }
    }
    // As the dataplane does it: load the snapshot once per batch.
    {
        let n = 64;
        let mut out = vec![None; n];
        g.throughput(Throughput::Elements(n as u64));
        g.bench_function("load+batch/64", |b| {
            let mut i = 0;
            b.iter(|| {
                let off = i & (ADDRS - 1);
                i += n;
                reader
                    .load()
                    .lookup_batch(black_box(&addrs[off..off + n]), &mut out);
                black_box(&out);
            })
        });
    }
    g.finish();

    let mut g = c.benchmark_group("update");
    let fresh = fresh_prefixes(&fib, 1000, 2);
    g.throughput(Throughput::Elements(1));
    g.bench_function("insert+remove/48+publish", |b| {
        let p = fresh[0];
        b.iter(|| {
            fib.insert(black_box(p), &[NextHop::new(7)]).unwrap();
            assert!(fib.remove(black_box(p)));
            fib.publish();
        })
    });
    // 1000 inserts (750 /48s, 250 /64s) then publish, and the next
    // iteration removes them again.
    g.sampling_mode(SamplingMode::Flat);
    g.sample_size(20);
    g.throughput(Throughput::Elements(fresh.len() as u64));
    g.bench_function("batch/1000+publish", |b| {
        let mut present = false;
        b.iter(|| {
            for (i, &p) in fresh.iter().enumerate() {
                if present {
                    assert!(fib.remove(p));
                } else {
                    fib.insert(p, &[NextHop::new(1 + i as u32 % 8)]).unwrap();
                }
            }
            present = !present;
            fib.publish();
        })
    });
    // Loading the whole table into an empty FIB (a restart).
    g.sample_size(10);
    g.throughput(Throughput::Elements(table.len() as u64));
    g.bench_function("load-table+publish", |b| b.iter(|| loaded(&table)));
    g.finish();
}

criterion_group! {
    name = fib_benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = benches
}
criterion_main!(fib_benches);
