//! `bench`: flatedge's benchmarks. Each prints numbers next to the baseline
//! measured in the same run; none asserts a time.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use bench::{bgpconv, fibbench, forward, pipeline};
use clap::{Parser, Subcommand};

#[global_allocator]
static ALLOC: bench::alloc_count::Counting = bench::alloc_count::Counting;

#[derive(Parser, Debug)]
#[command(name = "bench", about = "flatedge benchmarks")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// FIB lookups, memory, build and update rates against rte_lpm6 and prefix-trie.
    Fib {
        /// Route table: one prefix per line, optionally a next-hop id.
        #[arg(long)]
        table: PathBuf,
        /// Addresses in each address set.
        #[arg(long, default_value_t = 1_000_000)]
        addresses: usize,
        /// Passes over each set; the best counts.
        #[arg(long, default_value_t = 5)]
        passes: usize,
        /// Batches of 1,000 updates for the update rate.
        #[arg(long, default_value_t = 200)]
        update_batches: usize,
        /// Seconds the reader runs alone and under churn.
        #[arg(long, default_value_t = 2.0)]
        churn_seconds: f64,
        /// Implementations, comma separated (rte_lpm6 needs --features dpdk).
        #[arg(long, value_delimiter = ',', default_values_t = default_impls())]
        r#impl: Vec<String>,
        /// One JSON object per implementation and line.
        #[arg(long)]
        json: bool,
    },
    /// BGP convergence in network namespaces: a BIRD 2 sender announces N
    /// IPv6 prefixes to a BIRD receiver (kernel FIB) and to flatedge's
    /// speaker (RIB only), one after the other. Needs root and bird2
    /// (scripts/setup.sh).
    BgpConvergence {
        /// Prefixes announced (distinct /48s under 2a00::/12).
        #[arg(long, default_value_t = 100_000)]
        prefixes: usize,
        /// Receivers, comma separated, run in this order.
        #[arg(long, value_delimiter = ',', default_values_t = ["bird".to_string(), "flatedge-rib".to_string(), "flatedge".to_string()])]
        r#impl: Vec<String>,
        /// Bound on each phase in seconds (default: 120 + 200 per million prefixes).
        #[arg(long)]
        timeout: Option<f64>,
        /// One JSON object per receiver and line.
        #[arg(long)]
        json: bool,
    },
    /// Forwarding in network namespaces (gen - router - sink): trafgen on
    /// CPU 0 against XDP drop (the ceiling), Linux, a bare AF_XDP
    /// forwarder and flatedge's worker on CPU 1, with the table and a
    /// 3-way ECMP /128; then latency at half the ceiling. Needs root, two
    /// CPUs and trafgen (netsniff-ng, scripts/setup.sh).
    Forward {
        /// Seconds measured per implementation and frame size (after 1 s of warm-up).
        #[arg(long, default_value_t = 5.0)]
        seconds: f64,
        /// Frame sizes in bytes without FCS (62..=1514), comma separated.
        #[arg(long, value_delimiter = ',', default_values_t = [64usize, 1514])]
        frame_sizes: Vec<usize>,
        /// Implementations, comma separated (the ceiling is measured
        /// anyway): ceiling, linux, linux-rps (Linux forwarding on the
        /// forwarder's core), bare-xdp, flatedge.
        #[arg(long, value_delimiter = ',', default_values_t = ["ceiling".to_string(), "linux".to_string(), "linux-rps".to_string(), "bare-xdp".to_string(), "flatedge".to_string()])]
        r#impl: Vec<String>,
        /// Route table (default: the bundled 2021 BGP table).
        #[arg(long)]
        table: Option<PathBuf>,
        /// Send to N addresses inside random prefixes of the table (one
        /// trafgen packet each, sent in turn) instead of all to the ECMP
        /// /128: every lookup then walks the table (0: the ECMP /128 only).
        #[arg(long, default_value_t = 0)]
        table_destinations: usize,
        /// Skip the latency runs.
        #[arg(long)]
        no_latency: bool,
        /// Probe rate of the latency runs in packets per second (default:
        /// half the ceiling of the smallest frame size).
        #[arg(long)]
        latency_pps: Option<f64>,
        /// flatedge's receive coalescing: the longest a frame waits for a
        /// fuller batch under load, in microseconds (the daemon's
        /// `router.rx-usecs`; 0 takes frames as they come).
        #[arg(long, default_value_t = router::config::DEFAULT_RX_USECS)]
        rx_usecs: u32,
        /// flatedge's receive coalescing: the batch a loaded port waits
        /// for (the daemon's `router.rx-frames`, 1..=64).
        #[arg(long, default_value_t = router::config::DEFAULT_RX_FRAMES)]
        rx_frames: u32,
        /// One JSON object per implementation and frame size and line.
        #[arg(long)]
        json: bool,
    },
    /// The dataplane stages alone with warm caches: flatedge's
    /// process_batch over batches of the forwarding benchmark's frames,
    /// against the same FIB, on one thread (no rings, no syscalls, no
    /// namespaces).
    Pipeline {
        /// Route table (default: the bundled 2021 BGP table).
        #[arg(long)]
        table: Option<PathBuf>,
        /// Batch sizes, comma separated (1..=64).
        #[arg(long, value_delimiter = ',', default_values_t = [8usize, 32, 64])]
        batch_sizes: Vec<usize>,
        /// Batches per pass.
        #[arg(long, default_value_t = 200_000)]
        batches: usize,
        /// Passes per batch size; the best counts.
        #[arg(long, default_value_t = 3)]
        passes: usize,
        /// One JSON object per batch size and line.
        #[arg(long)]
        json: bool,
    },
    /// Internal: flatedge's receiver, run by bgp-convergence inside its namespace.
    #[command(hide = true)]
    BgpConvergenceReceiver {
        /// Prefixes to expect.
        #[arg(long)]
        prefixes: usize,
    },
}

fn default_impls() -> Vec<String> {
    let mut v = vec!["flatedge".to_string()];
    if cfg!(feature = "dpdk") {
        v.push("rte_lpm6".into());
    }
    v.push("prefix-trie".into());
    v
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Command::Fib {
            table,
            addresses,
            passes,
            update_batches,
            churn_seconds,
            r#impl,
            json,
        } => {
            anyhow::ensure!(addresses > 0, "--addresses must be at least 1");
            let o = fibbench::Options {
                addresses,
                passes,
                update_batches,
                churn: Duration::from_secs_f64(churn_seconds.max(0.01)),
                impls: r#impl,
            };
            let rows = fibbench::run(&table, &o)?;
            if json {
                fibbench::print_json(&rows)?;
            } else {
                fibbench::print_table(&rows, &o);
            }
        }
        Command::BgpConvergence {
            prefixes,
            r#impl,
            timeout,
            json,
        } => {
            let receivers = r#impl
                .iter()
                .map(|s| bgpconv::Receiver::parse(s))
                .collect::<Result<Vec<_>>>()?;
            let timeout = timeout
                .unwrap_or(120.0 + 200.0 * prefixes as f64 / 1e6)
                .max(1.0);
            let o = bgpconv::Options {
                prefixes,
                receivers,
                timeout: Duration::from_secs_f64(timeout),
            };
            let rows = bgpconv::run(&o)?;
            if json {
                bgpconv::print_json(&rows)?;
            } else {
                bgpconv::print_table(&rows, &o);
            }
        }
        Command::Forward {
            seconds,
            frame_sizes,
            r#impl,
            table,
            table_destinations,
            no_latency,
            latency_pps,
            rx_usecs,
            rx_frames,
            json,
        } => {
            anyhow::ensure!(
                rx_usecs <= router::config::MAX_RX_USECS,
                "--rx-usecs must be at most {}",
                router::config::MAX_RX_USECS
            );
            anyhow::ensure!(
                (1..=router::dataplane::MAX_BATCH as u32).contains(&rx_frames),
                "--rx-frames must be 1 to {}",
                router::dataplane::MAX_BATCH
            );
            anyhow::ensure!(seconds > 0.0, "--seconds must be positive");
            anyhow::ensure!(
                latency_pps.is_none_or(|r| r > 0.0),
                "--latency-pps must be positive"
            );
            let o = forward::Options {
                seconds,
                frame_sizes,
                impls: r#impl
                    .iter()
                    .map(|s| forward::Impl::parse(s))
                    .collect::<Result<Vec<_>>>()?,
                table: table.unwrap_or_else(forward::default_table),
                table_destinations,
                latency: !no_latency,
                latency_pps,
                coalesce: router::worker::Coalesce {
                    usecs: rx_usecs,
                    frames: rx_frames,
                },
            };
            let rep = forward::run(&o)?;
            if json {
                forward::print_json(&rep)?;
            } else {
                forward::print_table(&rep, &o);
            }
        }
        Command::Pipeline {
            table,
            batch_sizes,
            batches,
            passes,
            json,
        } => {
            anyhow::ensure!(
                batches > 0 && passes > 0,
                "--batches and --passes must be positive"
            );
            let table = table.unwrap_or_else(forward::default_table);
            let rows = pipeline::run(&table, &batch_sizes, batches, passes)?;
            if json {
                pipeline::print_json(&rows)?;
            } else {
                pipeline::print_table(&rows, &table);
            }
        }
        Command::BgpConvergenceReceiver { prefixes } => bgpconv::receiver_main(prefixes)?,
    }
    Ok(())
}
