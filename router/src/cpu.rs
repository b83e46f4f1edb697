//! CPU helpers of the dataplane: the prefetch hint, and the time-stamp
//! counter.
//!
//! The time-stamp counter is for `show runtime`: reading it costs a
//! few nanoseconds where `Instant::now()` costs about 20 on this kind of
//! VM, and the worker reads a clock several times per batch.
//!
//! Ticks become nanoseconds at a rate measured against `Instant`: once
//! per process over 5 ms ([`tsc_ns_per_tick`], what the daemon's totals
//! and metrics use, so that its counters never fall), or over a worker's
//! whole life ([`TscClock::ns_per_tick`], which `bench forward` uses:
//! the estimate improves as the worker runs). The
//! kernel only uses the TSC as its clocksource when it is invariant
//! (constant rate, synchronised across CPUs), which is the case here
//! (`/sys/devices/system/clocksource/clocksource0/current_clocksource`);
//! elsewhere the per-stage numbers are only relative.
#![allow(unsafe_code)]

use std::time::Instant;

use crate::dataplane::StageClock;

/// Hints the CPU to start loading the cache line holding `p[0]` (a
/// packet's headers, written by the kernel on another core) so that the
/// stages find it there.
#[inline(always)]
pub fn prefetch(p: &[u8]) {
    #[cfg(target_arch = "x86_64")]
    if !p.is_empty() {
        // SAFETY: PREFETCHT0 never faults, even on an invalid address;
        // the pointer is in bounds anyway.
        unsafe {
            core::arch::x86_64::_mm_prefetch(p.as_ptr().cast(), core::arch::x86_64::_MM_HINT_T0)
        };
    }
}

/// [`prefetch`] of a raw address (a packet in the UMEM).
#[inline(always)]
pub fn prefetch_addr(at: usize) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: PREFETCHT0 never faults, whatever the address.
    unsafe {
        core::arch::x86_64::_mm_prefetch(at as *const i8, core::arch::x86_64::_MM_HINT_T0)
    };
}

/// Reads the time-stamp counter.
#[inline]
pub fn rdtsc() -> u64 {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: RDTSC has no preconditions on x86_64 (it only reads a
        // counter); the function is unsafe merely as an intrinsic.
        unsafe { core::arch::x86_64::_rdtsc() }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
        START.get_or_init(Instant::now).elapsed().as_nanos() as u64
    }
}

/// Nanoseconds per TSC tick, calibrated once per process against
/// `Instant` over 5 ms (the first call spins that long; open ports and
/// build workers, which call it, before traffic). For the timing of
/// syscalls and the worker's coarse clock, where `Instant::now()` costs
/// more than the TSC read itself.
pub fn tsc_ns_per_tick() -> f64 {
    static RATE: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *RATE.get_or_init(|| {
        let (t0, c0) = (Instant::now(), rdtsc());
        while t0.elapsed() < std::time::Duration::from_millis(5) {
            std::hint::spin_loop();
        }
        let ticks = rdtsc().wrapping_sub(c0) as f64;
        let ns = t0.elapsed().as_nanos() as f64;
        if ticks > 0.0 {
            ns / ticks
        } else {
            1.0
        }
    })
}

/// Nanoseconds since `start` (a [`rdtsc`] reading), at the calibrated rate.
#[inline]
pub fn tsc_ns_since(start: u64, ns_per_tick: f64) -> u64 {
    tsc_ns_between(start, rdtsc(), ns_per_tick)
}

/// Nanoseconds from TSC reading `start` to TSC reading `end`.
#[inline]
pub fn tsc_ns_between(start: u64, end: u64, ns_per_tick: f64) -> u64 {
    (end.wrapping_sub(start) as f64 * ns_per_tick) as u64
}

/// TSC ticks in `d` at the calibrated rate, at least 1.
pub fn tsc_ticks(d: std::time::Duration, ns_per_tick: f64) -> u64 {
    (d.as_nanos() as f64 / ns_per_tick).max(1.0) as u64
}

/// A [`StageClock`] over the TSC, with the reference point that converts
/// its ticks into nanoseconds.
#[derive(Debug, Clone, Copy)]
pub struct TscClock {
    tsc0: u64,
    t0: Instant,
}

impl TscClock {
    /// A clock whose conversion rate is measured from now.
    pub fn new() -> Self {
        TscClock {
            tsc0: rdtsc(),
            t0: Instant::now(),
        }
    }

    /// Nanoseconds per tick, measured since [`TscClock::new`] (1.0 until
    /// a millisecond has passed).
    pub fn ns_per_tick(&self) -> f64 {
        let ns = self.t0.elapsed().as_nanos() as f64;
        let ticks = rdtsc().wrapping_sub(self.tsc0) as f64;
        if ns < 1e6 || ticks <= 0.0 {
            1.0
        } else {
            ns / ticks
        }
    }
}

impl Default for TscClock {
    fn default() -> Self {
        Self::new()
    }
}

impl StageClock for TscClock {
    #[inline]
    fn now(&mut self) -> u64 {
        rdtsc()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_advance_and_convert_to_roughly_real_time() {
        let c = TscClock::new();
        let a = rdtsc();
        std::thread::sleep(std::time::Duration::from_millis(20));
        let b = rdtsc();
        assert!(b > a);
        let ns = (b - a) as f64 * c.ns_per_tick();
        // Slept at least 20 ms; scheduling may add some, never remove.
        assert!((19e6..2e9).contains(&ns), "{ns} ns");
    }

    #[test]
    fn calibrated_rate_agrees_with_sleeping() {
        let rate = tsc_ns_per_tick();
        let a = rdtsc();
        std::thread::sleep(std::time::Duration::from_millis(20));
        let ns = tsc_ns_since(a, rate) as f64;
        assert!((19e6..2e9).contains(&ns), "{ns} ns");
    }
}
