//! `bench fib`: flatedge's FIB against DPDK rte_lpm6 and prefix-trie on one
//! table, the same address sets and the same update sequence for all.

use std::net::Ipv6Addr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use fib::{Fib, FibReader, GroupId, NextHop, Prefix, Snapshot};
use serde::Serialize;

use crate::addrs;
use crate::alloc_count::live_bytes;
use crate::table::{self, Route};

/// Updates per published batch.
pub const UPDATE_BATCH: usize = 1000;
/// Lookups per snapshot load in the reader under churn (a packet batch).
pub const READER_BATCH: usize = 256;

#[derive(Debug, Clone)]
pub struct Options {
    pub addresses: usize,
    pub passes: usize,
    /// Batches of [`UPDATE_BATCH`] updates for the update rate.
    pub update_batches: usize,
    /// How long the reader runs alone and under churn.
    pub churn: Duration,
    pub impls: Vec<String>,
}

/// One line of `--json` output.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub table: String,
    pub prefixes: usize,
    #[serde(rename = "impl")]
    pub implementation: String,
    pub mlps_random: f64,
    pub mlps_in_table: f64,
    pub mlps_zipf: f64,
    pub memory_bytes: u64,
    pub build_ms: f64,
    pub updates_per_s: Option<f64>,
    pub mlps_in_table_under_updates: Option<f64>,
    /// Not in the JSON contract: extra detail for the human report.
    #[serde(skip)]
    pub notes: Vec<String>,
}

/// The address sets and the update sequence, shared by every implementation.
struct Workload {
    random: Vec<u128>,
    in_table: Vec<u128>,
    zipf: Vec<u128>,
    /// Per batch: indices of routes deleted (the next batch re-inserts them).
    deletes: Vec<Vec<usize>>,
}

impl Workload {
    fn new(routes: &[Route], o: &Options) -> Self {
        let mut r = addrs::rng(42);
        let mut order: Vec<usize> = (0..routes.len()).collect();
        let mut deletes = Vec::new();
        for _ in 0..o.update_batches {
            // Distinct prefixes within a batch and between neighbours.
            if order.len() < UPDATE_BATCH {
                break;
            }
            // The previous batch lies at the end after the rotation: draw
            // from before it.
            for i in 0..UPDATE_BATCH / 2 {
                let j = rand::Rng::gen_range(&mut r, i..order.len() - UPDATE_BATCH / 2);
                order.swap(i, j);
            }
            deletes.push(order[..UPDATE_BATCH / 2].to_vec());
            order.rotate_left(UPDATE_BATCH / 2);
        }
        Workload {
            random: addrs::random(o.addresses, 1),
            in_table: addrs::in_table(routes, o.addresses, 2),
            zipf: addrs::zipf(routes, o.addresses, 0.9, 3),
            deletes,
        }
    }
}

fn best_mlps(passes: usize, n: usize, mut f: impl FnMut()) -> f64 {
    let best = (0..passes.max(1))
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .min()
        .unwrap_or_default();
    n as f64 / best.as_secs_f64().max(1e-12) / 1e6
}

/// Runs the update sequence through `insert`/`delete` with `publish` after
/// each batch; returns updates per second.
enum Update<'a> {
    Insert(&'a Route),
    Delete(&'a Route),
    Publish,
}

/// `None` when the table is too small for one batch (or
/// `--update-batches 0`).
fn update_rate(routes: &[Route], w: &Workload, mut apply: impl FnMut(Update)) -> Option<f64> {
    if w.deletes.is_empty() {
        return None;
    }
    let t = Instant::now();
    let mut updates = 0;
    let mut prev: &[usize] = &[];
    for batch in &w.deletes {
        for &i in prev {
            apply(Update::Insert(&routes[i]));
        }
        for &i in batch {
            apply(Update::Delete(&routes[i]));
        }
        apply(Update::Publish);
        updates += prev.len() + batch.len();
        prev = batch;
    }
    let rate = updates as f64 / t.elapsed().as_secs_f64();
    for &i in prev {
        apply(Update::Insert(&routes[i]));
    }
    apply(Update::Publish);
    Some(rate)
}

fn prefix(r: &Route) -> Prefix {
    Prefix::new(r.addr, r.len).unwrap_or(Prefix::DEFAULT)
}

fn resolve(s: &Snapshot, g: Option<GroupId>) -> u32 {
    g.and_then(|g| s.group(g))
        .map_or(u32::MAX, |v| v.members[0].id.0)
}

/// Lookups per second of one reader thread that loads a snapshot per
/// [`READER_BATCH`] addresses, for `dur`, as a dataplane worker does it
/// (through a `SnapshotCache`, kept between batches).
fn reader_mlps(reader: &FibReader, addrs: &[u128], dur: Duration) -> f64 {
    let mut out = vec![None; READER_BATCH];
    let mut snapshots = reader.cache();
    let t = Instant::now();
    let mut done = 0usize;
    while t.elapsed() < dur {
        for chunk in addrs.chunks(READER_BATCH) {
            let snap = snapshots.load();
            snap.lookup_batch(chunk, &mut out[..chunk.len()]);
        }
        done += addrs.len();
    }
    std::hint::black_box(&out);
    done as f64 / t.elapsed().as_secs_f64() / 1e6
}

/// The cores this process may run on, read once before any thread is
/// pinned (a pinned thread's own affinity mask, which is what
/// `get_core_ids` reads, and its children's, name only its core).
fn machine_cores() -> &'static [core_affinity::CoreId] {
    static CORES: std::sync::OnceLock<Vec<core_affinity::CoreId>> = std::sync::OnceLock::new();
    CORES.get_or_init(|| core_affinity::get_core_ids().unwrap_or_default())
}

/// Pins the calling thread to the `core`-th core of [`machine_cores`].
fn pin(core: usize) {
    if let Some(&id) = machine_cores().get(core) {
        core_affinity::set_for_current(id);
    }
}

/// The core the single-thread measurements run on, and the writer's.
fn cores() -> (usize, usize) {
    let n = machine_cores().len().max(1);
    (n - 1, 0)
}

fn flatedge(name: &str, routes: &[Route], w: &Workload, o: &Options) -> Result<(Row, Vec<u32>)> {
    let before = live_bytes();
    let t = Instant::now();
    let mut fib = Fib::new();
    for r in routes {
        fib.insert(prefix(r), &[NextHop::new(r.nexthop)])?;
    }
    fib.publish();
    let build_ms = t.elapsed().as_secs_f64() * 1e3;
    // A second publish brings the standby copy of the structure's top (the
    // direct and exact-match tables) up to date (it is caught up before it
    // takes the next changes): from then on the FIB holds both, its steady
    // state, which is what counts.
    fib.publish();
    // The heap (counted), plus the shared node and leaf store, which is
    // mapped memory the allocator does not see.
    let memory = ((live_bytes() - before).max(0) as usize + fib.memory().store) as u64;
    let reader = fib.reader();
    let snap = reader.load_full();
    let mut out = vec![None; o.addresses];
    let mut row = Row {
        table: name.to_string(),
        prefixes: routes.len(),
        implementation: "flatedge".into(),
        mlps_random: best_mlps(o.passes, o.addresses, || {
            snap.lookup_batch(&w.random, &mut out)
        }),
        mlps_in_table: best_mlps(o.passes, o.addresses, || {
            snap.lookup_batch(&w.in_table, &mut out)
        }),
        mlps_zipf: best_mlps(o.passes, o.addresses, || {
            snap.lookup_batch(&w.zipf, &mut out)
        }),
        memory_bytes: memory,
        build_ms,
        updates_per_s: None,
        mlps_in_table_under_updates: None,
        notes: Vec::new(),
    };
    // The answers to every set, for the cross-check.
    let mut check = Vec::with_capacity(3 * o.addresses);
    for set in [&w.random, &w.in_table, &w.zipf] {
        snap.lookup_batch(set, &mut out);
        check.extend(out.iter().map(|&g| resolve(&snap, g)));
    }
    let m = fib.memory();
    drop(snap);
    let nodes = fib.nodes();
    let groups = reader.load().groups();

    let before_updates = live_bytes();
    let writes_before = fib.store_writes();
    let mut publishes = 0u64;
    let mut failed = 0u64;
    row.updates_per_s = update_rate(routes, w, |u| match u {
        Update::Insert(r) => {
            failed += u64::from(fib.insert(prefix(r), &[NextHop::new(r.nexthop)]).is_err());
        }
        Update::Delete(r) => {
            fib.remove(prefix(r));
        }
        Update::Publish => {
            publishes += 1;
            fib.publish();
        }
    });
    // A failed update would count without its work.
    anyhow::ensure!(failed == 0, "flatedge: {failed} updates failed");
    let writes = {
        let (a, b) = (writes_before, fib.store_writes());
        let per = |x: u64, y: u64| (y - x) as f64 / publishes.max(1) as f64;
        (
            per(a.nodes_copied, b.nodes_copied),
            per(a.nodes_written, b.nodes_written),
            per(a.leaf_runs_written, b.leaf_runs_written),
        )
    };
    // What the FIB grew (or shrank) by during the update run; the lookup
    // buffers above are the benchmark's, not the FIB's.
    let now = |fib: &Fib| {
        let store_growth = fib.memory().store as isize - m.store as isize;
        (memory as isize + live_bytes() - before_updates + store_growth).max(0) as f64 / 1048576.0
    };
    let after_updates = now(&fib);
    // Once the changes stop, compaction gives back what the copies left.
    let t = Instant::now();
    let c = fib.compact();
    let compact_ms = t.elapsed().as_secs_f64() * 1e3;
    let after_compaction = now(&fib);
    row.notes.push(format!(
        "one snapshot {:.2} MiB (what lookups touch); everything (shared store, both copies of the top, control state) {:.2} MiB, {after_updates:.2} MiB after the update run, {after_compaction:.2} MiB after compaction ({} blocks moved in {compact_ms:.1} ms); {nodes} trie nodes, {groups} groups",
        m.snapshot as f64 / 1048576.0,
        memory as f64 / 1048576.0,
        c.moved,
    ));
    row.notes.push(format!(
        "per batch of {UPDATE_BATCH} updates the writer copied {:.0} nodes to new blocks (with their siblings), rewrote {:.0} and wrote {:.0} leaf runs: {:.0} KiB of the shared store readers find moved",
        writes.0,
        writes.1,
        writes.2,
        (writes.0 * 128.0 + writes.1 * 128.0 + writes.2 * 4.0) / 1024.0
    ));

    if w.deletes.is_empty() {
        row.notes.push(format!(
            "fewer than {UPDATE_BATCH} prefixes (or --update-batches 0): no update runs"
        ));
        return Ok((row, check));
    }
    if machine_cores().len() < 2 {
        // A reader and a writer on one core measure the scheduler.
        row.notes
            .push("one CPU: no reader beside a writer (it needs two)".into());
        return Ok((row, check));
    }
    // One reader alone, then the same reader while a writer churns.
    let (reader_core, writer_core) = cores();
    let alone = reader_mlps(&reader, &w.in_table, o.churn);
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let stop = Arc::clone(&stop);
        let routes = routes.to_vec();
        let deletes = w.deletes.clone();
        std::thread::spawn(move || {
            pin(writer_core);
            let (mut batches, mut updates, mut failed) = (0usize, 0usize, 0usize);
            let mut prev: Vec<usize> = Vec::new();
            'outer: loop {
                for batch in &deletes {
                    if stop.load(Ordering::Relaxed) {
                        break 'outer;
                    }
                    for &i in &prev {
                        let r = &routes[i];
                        let ok = fib.insert(prefix(r), &[NextHop::new(r.nexthop)]).is_ok();
                        failed += usize::from(!ok);
                    }
                    for &i in batch {
                        fib.remove(prefix(&routes[i]));
                    }
                    fib.publish();
                    batches += 1;
                    // The first batch only deletes.
                    updates += prev.len() + batch.len();
                    prev.clone_from(batch);
                }
            }
            (batches, updates, failed, fib)
        })
    };
    pin(reader_core);
    let t = Instant::now();
    let churned = reader_mlps(&reader, &w.in_table, o.churn);
    stop.store(true, Ordering::Relaxed);
    let (batches, updates, failed, mut fib) = writer
        .join()
        .map_err(|_| anyhow::anyhow!("the churn writer panicked"))?;
    let writer_rate = updates as f64 / t.elapsed().as_secs_f64();
    anyhow::ensure!(failed == 0, "flatedge: {failed} updates failed under churn");
    row.mlps_in_table_under_updates = Some(churned);
    // The store as `alone` found it (compacted), for the copier's run.
    for _ in 0..8 {
        if fib.compact().moved == 0 {
            break;
        }
    }
    // The machine's own limit: the same reader while the other core only
    // copies memory (no FIB work at all).
    let beside_copy = {
        let stop = Arc::new(AtomicBool::new(false));
        let copier = {
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                pin(writer_core);
                let src = vec![1u8; 16 << 20];
                let mut dst = vec![0u8; 16 << 20];
                while !stop.load(Ordering::Relaxed) {
                    dst.copy_from_slice(&src);
                    std::hint::black_box(&mut dst);
                }
            })
        };
        pin(reader_core);
        let m = reader_mlps(&reader, &w.in_table, o.churn);
        stop.store(true, Ordering::Relaxed);
        let _ = copier.join();
        m
    };
    row.notes.push(format!(
        "reader alone {alone:.1} Mlps, under churn {churned:.1} Mlps ({:.0}%) while the writer published {batches} batches ({writer_rate:.0} updates/s); beside a core that only copies 16 MiB buffers {beside_copy:.1} Mlps ({:.0}%)",
        100.0 * churned / alone,
        100.0 * beside_copy / alone
    ));
    Ok((row, check))
}

fn prefix_trie(name: &str, routes: &[Route], w: &Workload, o: &Options) -> Result<(Row, Vec<u32>)> {
    use ipnet::Ipv6Net;
    use prefix_trie::PrefixMap;
    let net = |r: &Route| Ipv6Net::new(Ipv6Addr::from(r.addr), r.len).unwrap_or_default();
    let before = live_bytes();
    let t = Instant::now();
    let mut map: PrefixMap<Ipv6Net, u32> = PrefixMap::new();
    for r in routes {
        map.insert(net(r), r.nexthop);
    }
    let build_ms = t.elapsed().as_secs_f64() * 1e3;
    let memory = (live_bytes() - before).max(0) as u64;
    let lookup = |map: &PrefixMap<Ipv6Net, u32>, a: &[u128], out: &mut [u32]| {
        for (x, o) in a.iter().zip(out.iter_mut()) {
            let host = Ipv6Net::new(Ipv6Addr::from(*x), 128).unwrap_or_default();
            *o = map.get_lpm(&host).map_or(u32::MAX, |(_, v)| *v);
        }
    };
    let mut out = vec![0u32; o.addresses];
    let mut row = Row {
        table: name.to_string(),
        prefixes: routes.len(),
        implementation: "prefix-trie".into(),
        mlps_random: best_mlps(o.passes, o.addresses, || lookup(&map, &w.random, &mut out)),
        mlps_in_table: best_mlps(o.passes, o.addresses, || {
            lookup(&map, &w.in_table, &mut out)
        }),
        mlps_zipf: best_mlps(o.passes, o.addresses, || lookup(&map, &w.zipf, &mut out)),
        memory_bytes: memory,
        build_ms,
        updates_per_s: None,
        mlps_in_table_under_updates: None,
        notes: Vec::new(),
    };
    let mut check = Vec::with_capacity(3 * o.addresses);
    for set in [&w.random, &w.in_table, &w.zipf] {
        lookup(&map, set, &mut out);
        check.extend_from_slice(&out);
    }
    row.updates_per_s = update_rate(routes, w, |u| match u {
        Update::Insert(r) => {
            map.insert(net(r), r.nexthop);
        }
        Update::Delete(r) => {
            map.remove(&net(r));
        }
        Update::Publish => {}
    });
    row.notes
        .push("no snapshots: a reader cannot run beside a writer".into());
    Ok((row, check))
}

#[cfg(feature = "dpdk")]
fn rte_lpm6(name: &str, routes: &[Route], w: &Workload, o: &Options) -> Result<(Row, Vec<u32>)> {
    use crate::dpdk::RteLpm6;
    let rules: Vec<(u128, u8, u32)> = routes.iter().map(|r| (r.addr, r.len, r.nexthop)).collect();
    // EAL's start (it maps its whole memory) is not the table's build.
    RteLpm6::start_eal(&rules)?;
    // Sizing and checking the routes are the benchmark's work, not the
    // table's build (flatedge's build is its inserts and publish alone).
    let (needed, tbl8s) = RteLpm6::tbl8s_for(&rules)?;
    RteLpm6::check_routes(&rules)?;
    let t = Instant::now();
    let mut lpm = RteLpm6::build(&rules, tbl8s, needed)?;
    let build_ms = t.elapsed().as_secs_f64() * 1e3;
    let bytes = |a: &[u128]| -> Vec<[u8; 16]> { a.iter().map(|x| x.to_be_bytes()).collect() };
    let (random, in_table, zipf) = (bytes(&w.random), bytes(&w.in_table), bytes(&w.zipf));
    let mut out = vec![0u32; o.addresses];
    let mut row = Row {
        table: name.to_string(),
        prefixes: routes.len(),
        implementation: "rte_lpm6".into(),
        mlps_random: best_mlps(o.passes, o.addresses, || lpm.lookup_bulk(&random, &mut out)),
        mlps_in_table: best_mlps(o.passes, o.addresses, || {
            lpm.lookup_bulk(&in_table, &mut out)
        }),
        mlps_zipf: best_mlps(o.passes, o.addresses, || lpm.lookup_bulk(&zipf, &mut out)),
        memory_bytes: lpm.memory_bytes() as u64,
        build_ms,
        updates_per_s: None,
        mlps_in_table_under_updates: None,
        notes: vec![format!(
            "DPDK heap {:.1} MiB, {} tbl8 groups, bulk lookups in bursts of {}",
            lpm.memory_bytes() as f64 / 1048576.0,
            lpm.number_tbl8s(),
            crate::dpdk::BURST
        )],
    };
    let mut check = Vec::with_capacity(3 * o.addresses);
    for set in [&random, &in_table, &zipf] {
        lpm.lookup_bulk(set, &mut out);
        check.extend_from_slice(&out);
    }
    let mut failed = 0usize;
    let rate = update_rate(routes, w, |u| {
        let ok = match u {
            Update::Insert(r) => lpm.add(r.addr, r.len, r.nexthop).is_ok(),
            Update::Delete(r) => lpm.delete(r.addr, r.len).is_ok(),
            Update::Publish => true,
        };
        failed += usize::from(!ok);
    });
    anyhow::ensure!(failed == 0, "rte_lpm6: {failed} updates failed");
    row.updates_per_s = rate;
    Ok((row, check))
}

/// Runs the benchmark on one table; rows in the order of `o.impls`.
pub fn run(path: &Path, o: &Options) -> Result<Vec<Row>> {
    let routes = table::load(path)?;
    let name = path.file_name().map_or_else(
        || path.display().to_string(),
        |f| f.to_string_lossy().into_owned(),
    );
    let w = Workload::new(&routes, o);
    let (single_core, _) = cores();
    pin(single_core);
    let mut rows = Vec::new();
    let mut reference: Option<(String, Vec<u32>)> = None;
    for imp in &o.impls {
        let (row, check) = match imp.as_str() {
            "flatedge" => flatedge(&name, &routes, &w, o)?,
            "prefix-trie" => prefix_trie(&name, &routes, &w, o)?,
            #[cfg(feature = "dpdk")]
            "rte_lpm6" => rte_lpm6(&name, &routes, &w, o)?,
            #[cfg(not(feature = "dpdk"))]
            "rte_lpm6" => anyhow::bail!(
                "rte_lpm6 needs the `dpdk` feature: cargo run --release -p bench --features dpdk -- fib ..."
            ),
            other => anyhow::bail!("unknown implementation {other:?} (flatedge, rte_lpm6, prefix-trie)"),
        };
        pin(single_core);
        // Every implementation must agree on every lookup of every set.
        match &reference {
            None => reference = Some((imp.clone(), check)),
            Some((first, want)) => {
                let bad = want.iter().zip(&check).filter(|(a, b)| a != b).count();
                anyhow::ensure!(
                    bad == 0,
                    "{imp} disagrees with {first} on {bad} of {} lookups (random, in-table and Zipf sets)",
                    want.len()
                );
            }
        }
        rows.push(row);
    }
    Ok(rows)
}

/// The human report.
pub fn print_table(rows: &[Row], o: &Options) {
    let Some(first) = rows.first() else { return };
    println!(
        "table {}: {} prefixes; {} addresses per set; best of {} passes; updates in batches of {UPDATE_BATCH} with one publish each",
        first.table, first.prefixes, o.addresses, o.passes
    );
    println!(
        "{:<12} {:>9} {:>9} {:>9} {:>11} {:>9} {:>11} {:>14}",
        "impl", "random", "in-table", "zipf 0.9", "memory", "build", "updates/s", "in-table under"
    );
    println!(
        "{:<12} {:>9} {:>9} {:>9} {:>11} {:>9} {:>11} {:>14}",
        "", "Mlps", "Mlps", "Mlps", "MiB", "ms", "", "updates, Mlps"
    );
    let opt = |x: Option<f64>, prec: usize| x.map_or("-".to_string(), |v| format!("{v:.prec$}"));
    for r in rows {
        println!(
            "{:<12} {:>9.1} {:>9.1} {:>9.1} {:>11.2} {:>9.1} {:>11} {:>14}",
            r.implementation,
            r.mlps_random,
            r.mlps_in_table,
            r.mlps_zipf,
            r.memory_bytes as f64 / 1048576.0,
            r.build_ms,
            opt(r.updates_per_s, 0),
            opt(r.mlps_in_table_under_updates, 1)
        );
    }
    for r in rows {
        for n in &r.notes {
            println!("  {}: {n}", r.implementation);
        }
    }
    let by = |name: &str| rows.iter().find(|r| r.implementation == name);
    if let (Some(f), Some(d)) = (by("flatedge"), by("rte_lpm6")) {
        println!(
            "flatedge / rte_lpm6: in-table {:.2}x, random {:.2}x, zipf {:.2}x, memory 1/{:.1}",
            f.mlps_in_table / d.mlps_in_table,
            f.mlps_random / d.mlps_random,
            f.mlps_zipf / d.mlps_zipf,
            d.memory_bytes as f64 / f.memory_bytes.max(1) as f64
        );
    }
}

/// Writes one JSON object per line.
pub fn print_json(rows: &[Row]) -> Result<()> {
    for r in rows {
        println!(
            "{}",
            serde_json::to_string(r).context("serialising a result")?
        );
    }
    Ok(())
}
