//! `bench`: flatedge's benchmarks. Each prints numbers next to the baseline
//! measured in the same run; none asserts a time.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use bench::fibbench;
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
    }
    Ok(())
}
