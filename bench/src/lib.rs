//! Benchmarks for flatedge: shared helpers (route tables, address sets) and
//! the baselines flatedge is compared with.

pub mod addrs;
pub mod alloc_count;
pub mod bgpconv;
pub mod fibbench;
pub mod forward;
pub mod pipeline;
pub mod table;

#[cfg(feature = "dpdk")]
pub mod dpdk;
