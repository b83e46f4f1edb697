#![allow(unsafe_code)]
//! DPDK 22.11 `rte_lpm6` as a FIB baseline (cargo feature `dpdk`), through
//! the C shim in `csrc/lpm6_shim.c` (built by `build.rs`).
//!
//! * EAL is started once per process, on the first [`RteLpm6::new`], with
//!   `--no-huge --no-pci --no-shconf --no-telemetry -l <cpu> -m <MiB>`:
//!   ordinary anonymous memory, only touched as tables use it, so `-m` is
//!   generous (see [`eal_memory_mb`]; override with `FLATEDGE_DPDK_MEM_MB`).
//!   The calling thread's CPU affinity is restored afterwards.
//! * `rte_lpm6` rejects depth 0, so `::/0` is kept here and returned on a
//!   miss (or [`NO_ROUTE`] without a default route).
//! * `number_tbl8s` is computed, not guessed: [`tbl8_groups_needed`]
//!   replays rte_lpm6's allocation (one tbl8 group of 256 entries per
//!   distinct prefix of length 24 + 8k, k >= 0, that a longer rule extends
//!   past), which is exact for a table built by additions only (a test
//!   checks that `needed` groups suffice and `needed - 1` do not); 10% (at
//!   least 64 groups) is added for later [`RteLpm6::add`] calls.
//! * Memory is measured, not computed: the sum of DPDK malloc heaps'
//!   `heap_allocsz_bytes` (`rte_malloc_get_socket_stats`) after creating and
//!   populating the lpm minus before, so it covers the lpm struct with its
//!   64 MiB tbl24 and the tbl8 groups, the tbl8 pool and headers, and the
//!   rule hash (keys, buckets, free-slot ring), with malloc element headers.
//!   rte_lpm6 allocates everything at creation, so later adds do not change
//!   it. Creation, population and free hold one process-wide lock so
//!   concurrent tables do not disturb each other's measurement.

use anyhow::{bail, ensure, Context, Result};
use std::collections::HashSet;
use std::ffi::{c_int, c_void, CStr, CString};
use std::fmt;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};

/// Next-hop id returned on a miss when the table has no `::/0`.
pub const NO_ROUTE: u32 = u32::MAX;

/// Largest next hop rte_lpm6 22.11 stores (21 bits).
pub const MAX_NEXTHOP: u32 = (1 << 21) - 1;

/// rte_lpm6's limit on `number_tbl8s` (RTE_LPM6_TBL8_MAX_NUM_GROUPS).
const MAX_TBL8S: usize = 1 << 21;

/// Linux ENOMEM (what rte_malloc failures report through rte_errno).
const ENOMEM: c_int = 12;

/// Lookup burst handed to `rte_lpm6_lookup_bulk_func` (by the shim).
pub const BURST: usize = 64;

mod ffi {
    use std::ffi::{c_char, c_int, c_void};

    extern "C" {
        pub fn fe_eal_init(mem_mb: u32) -> c_int;
        pub fn fe_strerror(err: c_int) -> *const c_char;
        pub fn fe_lpm6_create(
            name: *const c_char,
            max_rules: u32,
            number_tbl8s: u32,
            err: *mut c_int,
        ) -> *mut c_void;
        pub fn fe_lpm6_free(lpm: *mut c_void);
        pub fn fe_lpm6_add(lpm: *mut c_void, ip: *const u8, depth: u8, next_hop: u32) -> c_int;
        pub fn fe_lpm6_delete(lpm: *mut c_void, ip: *const u8, depth: u8) -> c_int;
        pub fn fe_lpm6_lookup(lpm: *const c_void, ip: *const u8, next_hop: *mut u32) -> c_int;
        pub fn fe_lpm6_lookup_bulk(
            lpm: *const c_void,
            ips: *const [u8; 16],
            out: *mut u32,
            n: usize,
            miss: u32,
        );
        pub fn fe_heap_allocated_bytes() -> u64;
    }
}

/// DPDK's text for an error code (positive or negative).
fn strerror(err: c_int) -> String {
    // SAFETY: rte_strerror accepts any value and returns a pointer to a
    // NUL-terminated static (or thread-local) string.
    let s = unsafe { CStr::from_ptr(ffi::fe_strerror(err.abs())) };
    format!("{} (errno {})", s.to_string_lossy(), err.abs())
}

static EAL: OnceLock<std::result::Result<u32, String>> = OnceLock::new();

/// Serialises heap-changing calls (create + populate + measure, free).
static HEAP_LOCK: Mutex<()> = Mutex::new(());

/// Unique lpm names (rte_lpm6 and its rule hash are registered by name).
static NEXT_ID: AtomicU32 = AtomicU32::new(0);

/// Rough upper bound of the DPDK heap an lpm6 needs (for sizing `-m`).
fn estimate_bytes(max_rules: u32, tbl8s: u32) -> u64 {
    // struct + tbl24 (2^24 4-byte entries), 1 KiB per tbl8 group plus its
    // pool slot and header, a generous 256 B per rule-hash slot.
    (65 << 20) + u64::from(tbl8s) * 1100 + u64::from(max_rules) * 256
}

/// EAL memory (MiB) for `-m`: `FLATEDGE_DPDK_MEM_MB` if set, else the
/// larger of 8 GiB (capped at 3/4 of RAM) and four times what the first
/// table needs. With `--no-huge` this is an anonymous mapping that costs
/// nothing until used, so a 1M-prefix table fits later as well.
pub fn eal_memory_mb(first_table_bytes: u64) -> u32 {
    if let Some(mb) = std::env::var("FLATEDGE_DPDK_MEM_MB")
        .ok()
        .and_then(|v| v.trim().parse().ok())
    {
        return mb;
    }
    let ram_mb = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        })
        .map_or(16 << 10, |kib| kib >> 10);
    let default_mb = (8u64 << 10).min(ram_mb * 3 / 4).max(1 << 10);
    let need_mb = (first_table_bytes * 4) >> 20;
    u32::try_from(default_mb.max(need_mb)).unwrap_or(u32::MAX)
}

/// Starts EAL once per process (thread safe); returns its `-m` in MiB.
fn ensure_eal(first_table_bytes: u64) -> Result<u32> {
    let r = EAL.get_or_init(|| {
        let mb = eal_memory_mb(first_table_bytes);
        // SAFETY: called once per process (OnceLock); the shim builds a
        // static argv and only reads its argument.
        let ret = unsafe { ffi::fe_eal_init(mb) };
        if ret == 0 {
            Ok(mb)
        } else {
            Err(format!(
                "DPDK EAL init (--no-huge -m {mb}) failed: {}",
                strerror(ret)
            ))
        }
    });
    r.clone().map_err(anyhow::Error::msg)
}

/// Number of tbl8 groups rte_lpm6 (22.11) allocates when the routes are
/// added to an empty table: one per distinct prefix of length 24 + 8k
/// (k >= 0) under which some route is longer than that length.
pub fn tbl8_groups_needed(routes: impl IntoIterator<Item = (u128, u8)>) -> usize {
    let mut groups: HashSet<(u8, u128)> = HashSet::new();
    for (addr, len) in routes {
        let mut level = 24u8;
        while len > level {
            groups.insert((level, addr >> (128 - u32::from(level))));
            level += 8;
        }
    }
    groups.len()
}

fn mask(addr: u128, len: u8) -> u128 {
    if len == 0 {
        0
    } else {
        addr & (u128::MAX << (128 - u32::from(len)))
    }
}

fn check_route(addr: u128, len: u8, nexthop: u32) -> Result<()> {
    ensure!(len <= 128, "prefix length {len} > 128");
    ensure!(
        nexthop <= MAX_NEXTHOP,
        "next hop {nexthop} of {}/{len} does not fit rte_lpm6's 21 bits (max {MAX_NEXTHOP})",
        std::net::Ipv6Addr::from(addr)
    );
    Ok(())
}

/// An `rte_lpm6` table. Lookups are read-only and may run from any number
/// of threads; `add`/`delete` need `&mut`.
pub struct RteLpm6 {
    lpm: NonNull<c_void>,
    /// Next hop of `::/0`, or [`NO_ROUTE`].
    default: u32,
    memory: usize,
    max_rules: u32,
    number_tbl8s: u32,
    tbl8s_needed: u32,
}

// SAFETY: the rte_lpm6 object is heap memory owned by this value alone;
// DPDK's lookup functions only read it (safe to share), and mutation goes
// through `&mut self`. rte_lpm6_free/rte_lpm6_add may run on any thread
// (EAL or not) since the shim never relies on lcore-local state.
unsafe impl Send for RteLpm6 {}
// SAFETY: `&self` methods only call rte_lpm6_lookup / lookup_bulk_func,
// which do not write to the table.
unsafe impl Sync for RteLpm6 {}

impl fmt::Debug for RteLpm6 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RteLpm6")
            .field("default", &self.default)
            .field("memory", &self.memory)
            .field("max_rules", &self.max_rules)
            .field("number_tbl8s", &self.number_tbl8s)
            .finish_non_exhaustive()
    }
}

impl RteLpm6 {
    /// routes: (network address as u128 big-endian value, prefix length, next hop id)
    pub fn new(routes: &[(u128, u8, u32)]) -> Result<Self> {
        let (needed, tbl8s) = Self::tbl8s_for(routes)?;
        Self::create(routes, tbl8s, needed)
    }

    /// The tbl8 groups `routes` need, and those [`new`](Self::new) asks
    /// for (10% more).
    pub fn tbl8s_for(routes: &[(u128, u8, u32)]) -> Result<(usize, usize)> {
        let needed = tbl8_groups_needed(routes.iter().map(|&(a, l, _)| (a, l)));
        ensure!(
            needed <= MAX_TBL8S,
            "the table needs {needed} tbl8 groups, more than rte_lpm6's limit of {MAX_TBL8S}"
        );
        let tbl8s = needed + needed.div_ceil(10).max(64);
        Ok((needed, tbl8s.min(MAX_TBL8S)))
    }

    /// Starts EAL as [`new`](Self::new) of `routes` would, so that a
    /// timed `new` measures the table's build alone (EAL maps its whole
    /// `-m` at start).
    pub fn start_eal(routes: &[(u128, u8, u32)]) -> Result<()> {
        let (_, tbl8s) = Self::tbl8s_for(routes)?;
        let (max_rules, tbl8s) = Self::sizes(routes, tbl8s)?;
        ensure_eal(estimate_bytes(max_rules, tbl8s)).map(|_| ())
    }

    /// `max_rules` (the table's size, as the FIB issue asks) and
    /// `number_tbl8s` as rte_lpm6 takes them.
    fn sizes(routes: &[(u128, u8, u32)], number_tbl8s: usize) -> Result<(u32, u32)> {
        let max_rules = u32::try_from(routes.len().max(1)).context("too many routes")?;
        let number_tbl8s = u32::try_from(number_tbl8s).context("too many tbl8s")?;
        Ok((max_rules, number_tbl8s))
    }

    /// Like [`new`](Self::new) with an explicit `number_tbl8s`.
    pub fn with_tbl8s(routes: &[(u128, u8, u32)], number_tbl8s: usize) -> Result<Self> {
        let needed = tbl8_groups_needed(routes.iter().map(|&(a, l, _)| (a, l)));
        Self::create(routes, number_tbl8s, needed)
    }

    fn create(routes: &[(u128, u8, u32)], number_tbl8s: usize, needed: usize) -> Result<Self> {
        Self::check_routes(routes)?;
        Self::build(routes, number_tbl8s, needed)
    }

    /// Whether rte_lpm6 takes every route of `routes` (lengths, next hops).
    pub fn check_routes(routes: &[(u128, u8, u32)]) -> Result<()> {
        for &(addr, len, nh) in routes {
            check_route(addr, len, nh)?;
        }
        Ok(())
    }

    /// The table of `routes`, checked already ([`check_routes`](Self::check_routes))
    /// and sized by [`tbl8s_for`](Self::tbl8s_for): what a timed build
    /// measures (create and add, nothing of the benchmark's own).
    pub fn build(routes: &[(u128, u8, u32)], number_tbl8s: usize, needed: usize) -> Result<Self> {
        ensure!(
            number_tbl8s <= MAX_TBL8S,
            "{number_tbl8s} tbl8 groups exceed rte_lpm6's limit of {MAX_TBL8S} \
             (the table needs {needed})"
        );
        let (max_rules, number_tbl8s) = Self::sizes(routes, number_tbl8s)?;
        ensure_eal(estimate_bytes(max_rules, number_tbl8s))?;

        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        let name = CString::new(format!("fe{id}")).expect("no NUL in name");
        let _heap = HEAP_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        // SAFETY: EAL is initialised (ensure_eal); plain FFI call.
        let before = unsafe { ffi::fe_heap_allocated_bytes() };
        let mut err: c_int = 0;
        // SAFETY: `name` is a valid NUL-terminated string that outlives the
        // call (rte_lpm6 copies it); `err` is a valid out pointer.
        let raw = unsafe { ffi::fe_lpm6_create(name.as_ptr(), max_rules, number_tbl8s, &mut err) };
        let Some(lpm) = NonNull::new(raw) else {
            let hint = if err == ENOMEM {
                format!(
                    " (EAL has -m {} MiB in all; set FLATEDGE_DPDK_MEM_MB to raise it)",
                    ensure_eal(0)?
                )
            } else {
                String::new()
            };
            bail!(
                "rte_lpm6_create(max_rules {max_rules}, number_tbl8s {number_tbl8s}) failed: {}{hint}",
                strerror(err)
            );
        };
        let mut this = RteLpm6 {
            lpm,
            default: NO_ROUTE,
            memory: 0,
            max_rules,
            number_tbl8s,
            tbl8s_needed: u32::try_from(needed).unwrap_or(u32::MAX),
        };
        for &(addr, len, nh) in routes {
            // Drop would take the heap lock, which is held here: free the
            // lpm directly and forget `this`.
            if let Err(e) = this.add(addr, len, nh) {
                // SAFETY: `lpm` came from fe_lpm6_create and is freed once:
                // `forget` below stops Drop from freeing it again.
                unsafe { ffi::fe_lpm6_free(this.lpm.as_ptr()) };
                std::mem::forget(this);
                return Err(e);
            }
        }
        // SAFETY: plain FFI call, EAL is initialised.
        let after = unsafe { ffi::fe_heap_allocated_bytes() };
        this.memory = usize::try_from(after.saturating_sub(before)).unwrap_or(usize::MAX);
        Ok(this)
    }

    /// Looks up `addrs` (bursts of 64 to rte_lpm6_lookup_bulk_func), writes next-hop ids to `out` (same length); miss = default route's id or u32::MAX.
    pub fn lookup_bulk(&self, addrs: &[[u8; 16]], out: &mut [u32]) {
        assert_eq!(
            addrs.len(),
            out.len(),
            "lookup_bulk: addrs and out differ in length"
        );
        // SAFETY: `addrs` and `out` are valid for `addrs.len()` elements
        // (checked equal above); the lpm is alive and only read.
        unsafe {
            ffi::fe_lpm6_lookup_bulk(
                self.lpm.as_ptr(),
                addrs.as_ptr(),
                out.as_mut_ptr(),
                addrs.len(),
                self.default,
            );
        }
    }

    /// Longest-prefix match of one address (rte_lpm6_lookup).
    pub fn lookup(&self, addr: u128) -> u32 {
        let ip = addr.to_be_bytes();
        let mut nh = 0u32;
        // SAFETY: `ip` is 16 readable bytes, `nh` a valid out pointer, the
        // lpm is alive and only read.
        let ret = unsafe { ffi::fe_lpm6_lookup(self.lpm.as_ptr(), ip.as_ptr(), &mut nh) };
        if ret == 0 {
            nh
        } else {
            self.default
        }
    }

    /// Adds (or replaces) one rule; `len` 0 sets the default route.
    pub fn add(&mut self, addr: u128, len: u8, nexthop: u32) -> Result<()> {
        check_route(addr, len, nexthop)?;
        if len == 0 {
            self.default = nexthop;
            return Ok(());
        }
        let ip = mask(addr, len).to_be_bytes();
        // SAFETY: `ip` is 16 readable bytes; the lpm is alive and `&mut self`
        // guarantees no concurrent lookup or update.
        let ret = unsafe { ffi::fe_lpm6_add(self.lpm.as_ptr(), ip.as_ptr(), len, nexthop) };
        if ret < 0 {
            bail!(
                "rte_lpm6_add({}/{len}, {nexthop}) failed: {} (max_rules {}, number_tbl8s {})",
                std::net::Ipv6Addr::from(addr),
                strerror(ret),
                self.max_rules,
                self.number_tbl8s
            );
        }
        Ok(())
    }

    /// Deletes one rule; `len` 0 removes the default route.
    pub fn delete(&mut self, addr: u128, len: u8) -> Result<()> {
        ensure!(len <= 128, "prefix length {len} > 128");
        if len == 0 {
            ensure!(self.default != NO_ROUTE, "no default route to delete");
            self.default = NO_ROUTE;
            return Ok(());
        }
        let ip = mask(addr, len).to_be_bytes();
        // SAFETY: as in `add`.
        let ret = unsafe { ffi::fe_lpm6_delete(self.lpm.as_ptr(), ip.as_ptr(), len) };
        if ret < 0 {
            bail!(
                "rte_lpm6_delete({}/{len}) failed: {}",
                std::net::Ipv6Addr::from(addr),
                strerror(ret)
            );
        }
        Ok(())
    }

    /// DPDK heap bytes the lpm uses (measured at creation, see module doc).
    pub fn memory_bytes(&self) -> usize {
        self.memory
    }

    /// tbl8 groups allocated (`number_tbl8s` passed to rte_lpm6_create).
    pub fn number_tbl8s(&self) -> u32 {
        self.number_tbl8s
    }

    /// tbl8 groups the initial routes use ([`tbl8_groups_needed`]).
    pub fn tbl8s_needed(&self) -> u32 {
        self.tbl8s_needed
    }

    /// Rule capacity (`max_rules`): the initial routes plus headroom.
    pub fn max_rules(&self) -> u32 {
        self.max_rules
    }
}

impl Drop for RteLpm6 {
    fn drop(&mut self) {
        let _heap = HEAP_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        // SAFETY: `lpm` came from fe_lpm6_create and is freed exactly once.
        unsafe { ffi::fe_lpm6_free(self.lpm.as_ptr()) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};
    use std::collections::HashMap;
    use std::net::Ipv6Addr;
    use std::time::Instant;

    /// Naive longest-prefix match: one exact-match map per length.
    struct Naive {
        by_len: Vec<(u8, HashMap<u128, u32>)>,
    }

    impl Naive {
        fn new(routes: &[(u128, u8, u32)]) -> Self {
            let mut maps: HashMap<u8, HashMap<u128, u32>> = HashMap::new();
            for &(a, l, nh) in routes {
                maps.entry(l).or_default().insert(mask(a, l), nh);
            }
            let mut by_len: Vec<_> = maps.into_iter().collect();
            by_len.sort_by_key(|m| std::cmp::Reverse(m.0));
            Naive { by_len }
        }

        fn lookup(&self, addr: u128) -> u32 {
            self.by_len
                .iter()
                .find_map(|(l, m)| m.get(&mask(addr, *l)).copied())
                .unwrap_or(NO_ROUTE)
        }
    }

    /// Host bits of a /len.
    fn host_mask(len: u8) -> u128 {
        u128::MAX.checked_shr(u32::from(len)).unwrap_or(0)
    }

    fn p(s: &str, len: u8, nh: u32) -> (u128, u8, u32) {
        (u128::from(s.parse::<Ipv6Addr>().unwrap()), len, nh)
    }

    fn small_table() -> Vec<(u128, u8, u32)> {
        vec![
            p("::", 0, 1),
            p("2001::", 16, 2),
            p("2001:db8::", 32, 3),
            p("2001:db8:1::", 48, 4),
            p("2001:db8:1:2::", 64, 5),
            p("2001:db8:1:2::1", 128, 6),
            p("2001:db8:1:2:ffff::", 80, 7),
            p("2001:db8:1:2::", 127, 8),
            p("2001:db8:ff00::", 40, 9),
            p("2001:db8:1:100::", 56, 10),
            p("2001:db8:1:2:3:4:5:6", 128, 11),
            p("2001:db8:80::", 41, 12),
            p("2a00::", 12, 13),
            p("2a00:1450::", 25, 14),
            p("2a00:1450:4000::", 37, 15),
            p("8000::", 1, 16),
            p("fe80::", 10, 17),
            p("fd00::", 8, 18),
            p("fd00:abcd:ef01:2345::", 64, 19),
            p("fd00:abcd:ef01:2345::", 65, MAX_NEXTHOP),
            p("::1", 128, 20),
        ]
    }

    /// Addresses inside random routes (random host bits) and fully random.
    fn probes(routes: &[(u128, u8, u32)], n: usize, seed: u64) -> Vec<u128> {
        let mut rng = StdRng::seed_from_u64(seed);
        (0..n)
            .map(|i| {
                let r: u128 = rng.gen();
                if i % 4 == 3 || routes.is_empty() {
                    return r;
                }
                let (a, l, _) = routes[rng.gen_range(0..routes.len())];
                let host = r & host_mask(l);
                mask(a, l) | host
            })
            .collect()
    }

    fn check(lpm: &RteLpm6, model: &Naive, addrs: &[u128]) {
        for &a in addrs {
            assert_eq!(
                lpm.lookup(a),
                model.lookup(a),
                "lookup {}",
                Ipv6Addr::from(a)
            );
        }
        let bytes: Vec<[u8; 16]> = addrs.iter().map(|a| a.to_be_bytes()).collect();
        let mut out = vec![0u32; bytes.len()];
        lpm.lookup_bulk(&bytes, &mut out);
        for (&a, &nh) in addrs.iter().zip(&out) {
            assert_eq!(nh, model.lookup(a), "lookup_bulk {}", Ipv6Addr::from(a));
        }
    }

    #[test]
    fn dpdk_small_table_matches_naive_lpm() {
        let routes = small_table();
        let lpm = RteLpm6::new(&routes).unwrap();
        let model = Naive::new(&routes);
        // Bulk length not a multiple of the burst.
        check(&lpm, &model, &probes(&routes, 20_000 + 13, 1));
        // Edges of every prefix.
        let mut edges = Vec::new();
        for &(a, l, _) in &routes {
            let lo = mask(a, l);
            let hi = lo | host_mask(l);
            edges.extend([lo, hi, lo.wrapping_sub(1), hi.wrapping_add(1)]);
        }
        check(&lpm, &model, &edges);
        assert_eq!(lpm.lookup(0x2001_0db8_0001_0002_0000_0000_0000_0001), 6);
        assert_eq!(lpm.lookup(0x2001_0db8_0001_0002_0000_0000_0000_0000), 8);
        assert_eq!(lpm.lookup(0x2001_0db8_0001_0002_0000_0000_0000_0002), 5);
        assert_eq!(lpm.lookup(0x2001_0db8_0001_0003_0000_0000_0000_0000), 4);
        assert_eq!(lpm.lookup(0x3000 << 112), 1);
        assert_eq!(lpm.lookup(u128::MAX), 16);
        assert!(lpm.memory_bytes() >= 64 << 20, "{lpm:?}");
    }

    fn cpus_allowed() -> String {
        std::fs::read_to_string("/proc/thread-self/status")
            .unwrap()
            .lines()
            .find(|l| l.starts_with("Cpus_allowed_list:"))
            .unwrap()
            .to_string()
    }

    #[test]
    fn dpdk_eal_init_keeps_thread_affinity() {
        let before = cpus_allowed();
        let lpm = RteLpm6::new(&small_table()).unwrap();
        assert_eq!(cpus_allowed(), before);
        // Other threads can create, look up and free tables too.
        std::thread::scope(|s| {
            s.spawn(|| {
                let other = RteLpm6::new(&small_table()[1..]).unwrap();
                assert_eq!(
                    other.lookup(0x2001_0db8 << 96),
                    lpm.lookup(0x2001_0db8 << 96)
                );
            });
        });
    }

    #[test]
    fn dpdk_miss_without_default_is_no_route() {
        let routes: Vec<_> = small_table().into_iter().filter(|r| r.1 != 0).collect();
        let lpm = RteLpm6::new(&routes).unwrap();
        check(&lpm, &Naive::new(&routes), &probes(&routes, 5_000, 2));
        assert_eq!(lpm.lookup(0x3000 << 112), NO_ROUTE);
        let mut out = [0u32; 1];
        lpm.lookup_bulk(&[(0x3000u128 << 112).to_be_bytes()], &mut out);
        assert_eq!(out[0], NO_ROUTE);
    }

    #[test]
    fn dpdk_add_delete() {
        let mut routes = small_table();
        // rte_lpm6 holds at most `max_rules`, the table's size: room for
        // the new rules below, made by deleting placeholders first (a
        // full table refuses a new rule with ENOSPC).
        let spare: Vec<(u128, u8, u32)> = (0..8u128)
            .map(|i| ((0x3fff_u128 << 112) | i, 128, 90))
            .collect();
        let mut lpm = RteLpm6::new(&[routes.clone(), spare.clone()].concat()).unwrap();
        for &(a, l, _) in &spare {
            lpm.delete(a, l).unwrap();
        }
        let mut rng = StdRng::seed_from_u64(3);
        let steps: Vec<(bool, (u128, u8, u32))> = vec![
            (true, p("2001:db8:1:2:3::", 96, 100)),
            (true, p("2001:db8:1:2:3::", 112, 101)),
            (true, p("2001:db8:1:2:3::", 100, 102)),
            (true, p("2001:db8::", 32, 103)), // replace a next hop
            (false, p("2001:db8:1::", 48, 0)),
            (false, p("2001:db8:1:2::1", 128, 0)),
            (false, p("2001:db8:1:2:3::", 112, 0)),
            (false, p("::", 0, 0)),
            (true, p("3000::", 4, 104)),
            (false, p("2001:db8:1:2::", 64, 0)),
            (true, p("::", 0, 105)),
            (true, p("2001:db8:1::", 48, 106)),
            (false, p("2001:db8:1:2:3::", 96, 0)),
            (false, p("2001:db8:1:2:3::", 100, 0)),
        ];
        for (add, (a, l, nh)) in steps {
            if add {
                lpm.add(a, l, nh).unwrap();
                routes.retain(|r| (r.0, r.1) != (a, l));
                routes.push((a, l, nh));
            } else {
                lpm.delete(a, l).unwrap();
                let n = routes.len();
                routes.retain(|r| (r.0, r.1) != (a, l));
                assert_eq!(routes.len(), n - 1);
            }
            let model = Naive::new(&routes);
            check(&lpm, &model, &probes(&routes, 3_000, rng.gen()));
        }
        // Errors.
        assert!(lpm.delete(p("2001:db8:1:2:3::", 96, 0).0, 96).is_err());
        assert!(lpm.add(0, 129, 1).is_err());
        assert!(lpm.add(0x2001 << 112, 16, MAX_NEXTHOP + 1).is_err());
        assert!(RteLpm6::new(&[(0x2001 << 112, 16, MAX_NEXTHOP + 1)]).is_err());
        lpm.delete(0, 0).unwrap();
        assert!(lpm.delete(0, 0).is_err());
        // Delete everything: all misses.
        for &(a, l, _) in &routes {
            if l != 0 {
                lpm.delete(a, l).unwrap();
            }
        }
        check(&lpm, &Naive::new(&[]), &probes(&routes, 2_000, 4));
    }

    /// `tbl8_groups_needed` is exact: that many groups suffice, one fewer
    /// does not.
    fn check_tbl8_count_exact(routes: &[(u128, u8, u32)]) {
        let needed = tbl8_groups_needed(routes.iter().map(|&(a, l, _)| (a, l)));
        assert!(needed > 0);
        RteLpm6::with_tbl8s(routes, needed).unwrap();
        let e = RteLpm6::with_tbl8s(routes, needed - 1).unwrap_err();
        assert!(e.to_string().contains("rte_lpm6_add"), "{e:#}");
    }

    #[test]
    fn dpdk_tbl8_simulation_is_exact_small() {
        check_tbl8_count_exact(&small_table());
    }

    fn real_table() -> Vec<(u128, u8, u32)> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("data/ipv6-bgp-2021-as199524.tsv");
        crate::table::load(&path)
            .unwrap()
            .into_iter()
            .map(|r| (r.addr, r.len, r.nexthop))
            .collect()
    }

    #[test]
    fn dpdk_real_table_matches_naive_lpm() {
        let routes = real_table();
        assert!(routes.len() > 100_000);
        let lpm = RteLpm6::new(&routes).unwrap();
        let model = Naive::new(&routes);
        check(&lpm, &model, &probes(&routes, 8_000, 5));
        check_tbl8_count_exact(&routes);
    }

    /// A 1M-prefix table (the real table plus random /48, /56 and /64
    /// more-specifics of its prefixes) fits the EAL memory.
    #[test]
    #[ignore = "slow in debug builds; run explicitly"]
    fn dpdk_million_prefix_table() {
        let mut routes = real_table();
        let mut rng = StdRng::seed_from_u64(7);
        let base = routes.clone();
        let mut seen: HashSet<(u128, u8)> = routes.iter().map(|r| (r.0, r.1)).collect();
        while routes.len() < 1_000_000 {
            let (a, l, _) = base[rng.gen_range(0..base.len())];
            let len = [48u8, 56, 64][rng.gen_range(0..3)].max(l);
            let addr = mask(a | (rng.gen::<u128>() & host_mask(l)), len);
            if seen.insert((addr, len)) {
                routes.push((addr, len, rng.gen_range(0..1000)));
            }
        }
        let t = Instant::now();
        let lpm = RteLpm6::new(&routes).unwrap();
        println!(
            "rte_lpm6 1M table: build {:.2?}, memory {:.1} MiB, tbl8 groups needed {} allocated {}",
            t.elapsed(),
            lpm.memory_bytes() as f64 / f64::from(1 << 20),
            lpm.tbl8s_needed(),
            lpm.number_tbl8s()
        );
        check(&lpm, &Naive::new(&routes), &probes(&routes, 8_000, 8));
    }

    /// Numbers for the benchmark cross-check (release build):
    /// `cargo test -p bench --features dpdk --release dpdk_report -- --ignored --nocapture`
    #[test]
    #[ignore = "prints a report; run explicitly"]
    fn dpdk_report_real_table() {
        let routes = real_table();
        let t = Instant::now();
        let lpm = RteLpm6::new(&routes).unwrap();
        let build = t.elapsed();
        println!(
            "rte_lpm6 real table: {} routes, build {build:.2?}, memory {} bytes ({:.1} MiB), \
             tbl8 groups needed {} allocated {}, max_rules {}",
            routes.len(),
            lpm.memory_bytes(),
            lpm.memory_bytes() as f64 / f64::from(1 << 20),
            lpm.tbl8s_needed(),
            lpm.number_tbl8s(),
            lpm.max_rules(),
        );
        // 1M addresses inside random table prefixes (not ::/0).
        let inner: Vec<_> = routes.iter().copied().filter(|r| r.1 != 0).collect();
        let mut rng = StdRng::seed_from_u64(6);
        let addrs: Vec<[u8; 16]> = (0..1_000_000)
            .map(|_| {
                let (a, l, _) = inner[rng.gen_range(0..inner.len())];
                let host = rng.gen::<u128>() & host_mask(l);
                (mask(a, l) | host).to_be_bytes()
            })
            .collect();
        let random: Vec<[u8; 16]> = (0..1_000_000)
            .map(|_| rng.gen::<u128>().to_be_bytes())
            .collect();
        let mut out = vec![0u32; addrs.len()];
        for (name, set) in [("in-table", &addrs), ("random", &random)] {
            let mut best = f64::INFINITY;
            for _ in 0..7 {
                let t = Instant::now();
                lpm.lookup_bulk(set, &mut out);
                best = best.min(t.elapsed().as_secs_f64());
                std::hint::black_box(&out);
            }
            println!(
                "rte_lpm6 bulk lookup ({name}, 1M, best of 7): {:.1} Mlps",
                set.len() as f64 / best / 1e6
            );
        }
        let t = Instant::now();
        let mut lpm = lpm;
        let n = 10_000.min(inner.len());
        for &(a, l, _) in &inner[..n] {
            lpm.delete(a, l).unwrap();
        }
        for &(a, l, nh) in &inner[..n] {
            lpm.add(a, l, nh).unwrap();
        }
        println!(
            "rte_lpm6 update: {:.0} ns per delete+add ({n} prefixes)",
            t.elapsed().as_nanos() as f64 / n as f64
        );
    }
}
