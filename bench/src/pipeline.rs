//! `bench pipeline`: the dataplane stages alone, with warm caches.
//!
//! [`process_batch`] (the worker's real stages: `ip6_input`, `ip6_lookup`
//! with the ECMP hash, `ip6_rewrite`) over batches of the forwarding
//! benchmark's frames (64-byte UDP to the 3-way ECMP /128 with random
//! source ports, from the generator's address) against the same FIB (a
//! route table plus that /128), on one pinned thread. No rings, no
//! syscalls, no frame written by another core: what `bench forward`'s
//! stage figures would be if every frame were already in the cache, so
//! the two side by side say what the cache misses of copy-mode AF_XDP
//! cost. Each pass restores the hop limit that `ip6_rewrite` decrements.

use std::path::Path;

use anyhow::{ensure, Context, Result};
use router::cpu::{tsc_ns_per_tick, TscClock};
use router::dataplane::{process_batch, Ingress, Packet, Stage, Verdict, WorkerState, MAX_BATCH};
use serde::Serialize;

use crate::forward::lab::{GEN_ADDR, MAC_G0, MAC_RG, SERVICE};
use crate::forward::xdpfwd::{adjacencies, build_fib};

/// The 64-byte frame of the forwarding benchmark: Ethernet, IPv6 (hop
/// limit 64) from the generator to the service, UDP from `sport` to port
/// 4096 with 2 bytes of payload.
fn frame(sport: u16) -> [u8; 64] {
    let mut f = [0u8; 64];
    f[0..6].copy_from_slice(&MAC_RG);
    f[6..12].copy_from_slice(&MAC_G0);
    f[12..14].copy_from_slice(&[0x86, 0xdd]);
    f[14] = 0x60;
    f[18..20].copy_from_slice(&10u16.to_be_bytes()); // payload length
    f[20] = 17; // UDP
    f[21] = 64; // hop limit
    f[22..38].copy_from_slice(&GEN_ADDR.octets());
    f[38..54].copy_from_slice(&SERVICE.octets());
    f[54..56].copy_from_slice(&sport.to_be_bytes());
    f[56..58].copy_from_slice(&4096u16.to_be_bytes());
    f[58..60].copy_from_slice(&10u16.to_be_bytes()); // UDP length
    f
}

/// One batch size's result; one JSON line.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub batch: usize,
    pub packets: u64,
    /// The whole `process_batch` call per packet (the stages, the
    /// verdict counters and the prefetch of the headers).
    pub ns_per_pkt: f64,
    pub ip6_input_ns: f64,
    pub ip6_lookup_ns: f64,
    pub ip6_rewrite_ns: f64,
}

/// Runs `passes` passes of `batches` batches at each size of `sizes`
/// with the table at `table`; the best pass of each counts.
pub fn run(table: &Path, sizes: &[usize], batches: usize, passes: usize) -> Result<Vec<Row>> {
    ensure!(
        sizes.iter().all(|&n| (1..=MAX_BATCH).contains(&n)),
        "batch sizes must be 1 to {MAX_BATCH}"
    );
    // One pinned thread: the last CPU this process may use (as `bench
    // fib`'s single-thread measurements).
    if let Some(&core) = core_affinity::get_core_ids().unwrap_or_default().last() {
        core_affinity::set_for_current(core);
    }
    let routes =
        crate::table::load(table).with_context(|| format!("reading {}", table.display()))?;
    let fib = build_fib(&routes)?;
    let mut snapshots = fib.reader().cache();
    let adj = adjacencies();
    let ingress = Ingress {
        port: 0,
        addr: Some(GEN_ADDR),
        mac: router::dataplane::ip6_input::mac_key(MAC_RG),
    };
    let ns_per_tick = tsc_ns_per_tick();
    let mut rows = Vec::new();
    for &n in sizes {
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let mut bufs: Vec<[u8; 2048]> = (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let mut b = [0u8; 2048];
                b[..64].copy_from_slice(&frame(x as u16 | 1024));
                b
            })
            .collect();
        let mut verdicts = vec![Verdict::Continue; n];
        let mut best: Option<Row> = None;
        for _ in 0..passes {
            let mut state = WorkerState::new(1000, 100, 0x5eed, 0);
            let mut clock = TscClock::new();
            let t0 = router::cpu::rdtsc();
            for _ in 0..batches {
                // What the last pass's rewrite changed, as received.
                for b in bufs.iter_mut() {
                    b[..6].copy_from_slice(&MAC_RG);
                    b[21] = 64;
                }
                let snap = snapshots.load();
                // On the stack, as the worker builds them: no allocation
                // in the timed loop.
                let mut pkts: [Packet<'_>; MAX_BATCH] = std::array::from_fn(|_| Packet {
                    buf: &mut [],
                    len: 0,
                });
                for (p, b) in pkts.iter_mut().zip(bufs.iter_mut()) {
                    *p = Packet {
                        buf: &mut b[..],
                        len: 64,
                    };
                }
                process_batch(
                    &mut pkts[..n],
                    &mut verdicts,
                    &ingress,
                    snap,
                    &adj,
                    &mut state,
                    0,
                    &mut clock,
                );
            }
            let ticks = router::cpu::rdtsc().wrapping_sub(t0);
            ensure!(
                verdicts
                    .iter()
                    .all(|v| matches!(v, Verdict::Forward { .. })),
                "a benchmark frame was not forwarded: {verdicts:?}"
            );
            let packets = (batches * n) as u64;
            let stage = |s: Stage| {
                let st = state.counters.stages[s as usize];
                st.ticks as f64 * ns_per_tick / st.packets.max(1) as f64
            };
            let row = Row {
                batch: n,
                packets,
                ns_per_pkt: ticks as f64 * ns_per_tick / packets as f64,
                ip6_input_ns: stage(Stage::Input),
                ip6_lookup_ns: stage(Stage::Lookup),
                ip6_rewrite_ns: stage(Stage::Rewrite),
            };
            if best.as_ref().is_none_or(|b| row.ns_per_pkt < b.ns_per_pkt) {
                best = Some(row);
            }
        }
        rows.extend(best);
    }
    Ok(rows)
}

/// The human table.
pub fn print_table(rows: &[Row], table: &Path) {
    println!(
        "dataplane stages with warm caches: {} plus the 3-way ECMP /128; 64-byte UDP frames to it, random source ports; best pass",
        table.display()
    );
    println!(
        "{:>5} {:>12} {:>10} {:>10} {:>10} {:>11}",
        "batch", "packets", "ns/pkt", "ip6_input", "ip6_lookup", "ip6_rewrite"
    );
    for r in rows {
        println!(
            "{:>5} {:>12} {:>10.1} {:>10.1} {:>10.1} {:>11.1}",
            r.batch, r.packets, r.ns_per_pkt, r.ip6_input_ns, r.ip6_lookup_ns, r.ip6_rewrite_ns
        );
    }
}

/// One JSON object per batch size and line.
pub fn print_json(rows: &[Row]) -> Result<()> {
    for r in rows {
        println!("{}", serde_json::to_string(r)?);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The frames are forwarded (run refuses a pass where one is not)
    /// and every stage saw them.
    #[test]
    fn the_benchmark_frames_go_through_every_stage() {
        let table = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/ipv6-k8s-edge.txt");
        let rows = run(&table, &[8, 64], 50, 1).unwrap();
        assert_eq!(rows.len(), 2);
        for r in &rows {
            assert_eq!(r.packets, 50 * r.batch as u64);
            assert!(r.ns_per_pkt > 0.0, "{r:?}");
            assert!(
                r.ip6_input_ns > 0.0 && r.ip6_lookup_ns > 0.0 && r.ip6_rewrite_ns > 0.0,
                "{r:?}"
            );
        }
        assert!(
            run(&table, &[65], 1, 1).is_err(),
            "a batch larger than the worker's"
        );
    }
}
