//! Per-worker counters: plain integers in a cache-line-aligned block owned
//! by one worker (no atomics, nothing shared while a batch runs). The
//! control plane gets a [`CountersSnapshot`] from each worker and sums them.

use std::ops::AddAssign;

use super::verdict::{DropReason, IcmpKind, Verdict};

/// The stages timed for `show runtime`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// `ip6_input`.
    Input,
    /// `ip6_lookup`.
    Lookup,
    /// `ip6_rewrite`.
    Rewrite,
    /// `icmp6_error`.
    IcmpError,
}

impl Stage {
    /// Every stage, in counter order.
    pub const ALL: [Stage; 4] = [
        Stage::Input,
        Stage::Lookup,
        Stage::Rewrite,
        Stage::IcmpError,
    ];
    /// Number of stages.
    pub const COUNT: usize = Self::ALL.len();

    /// snake_case name, as the stage's file.
    pub fn name(self) -> &'static str {
        match self {
            Stage::Input => "ip6_input",
            Stage::Lookup => "ip6_lookup",
            Stage::Rewrite => "ip6_rewrite",
            Stage::IcmpError => "icmp6_error",
        }
    }
}

/// Calls, packets and clock ticks of one stage (VPP's `show runtime`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StageStats {
    /// Times the stage ran (once per batch that had work for it).
    pub calls: u64,
    /// Packets it was given.
    pub packets: u64,
    /// Ticks of the worker's [`StageClock`](super::StageClock) spent in it
    /// (0 with [`NoClock`](super::NoClock)).
    pub ticks: u64,
}

impl AddAssign for StageStats {
    fn add_assign(&mut self, o: Self) {
        self.calls += o.calls;
        self.packets += o.packets;
        self.ticks += o.ticks;
    }
}

/// One worker's counters. Aligned to a cache line so two workers' blocks
/// never share one.
#[derive(Debug, Clone, PartialEq, Eq)]
#[repr(C, align(64))]
pub struct Counters {
    /// Drops, indexed by [`DropReason::index`].
    pub drops: [u64; DropReason::COUNT],
    /// ICMPv6 errors built, indexed by [`IcmpKind::index`].
    pub icmp_sent: [u64; IcmpKind::COUNT],
    /// Packets forwarded.
    pub forwarded: u64,
    /// Packets punted.
    pub punted: u64,
    /// Per-stage runtime, indexed like [`Stage::ALL`].
    pub stages: [StageStats; Stage::COUNT],
}

impl Default for Counters {
    fn default() -> Self {
        Counters {
            drops: [0; DropReason::COUNT],
            icmp_sent: [0; IcmpKind::COUNT],
            forwarded: 0,
            punted: 0,
            stages: [StageStats::default(); Stage::COUNT],
        }
    }
}

impl Counters {
    /// Zeroed counters.
    pub fn new() -> Self {
        Self::default()
    }

    /// Counts one drop.
    #[inline]
    pub fn drop(&mut self, reason: DropReason) {
        self.drops[reason.index()] += 1;
    }

    /// The count of one drop reason.
    pub fn drops_of(&self, reason: DropReason) -> u64 {
        self.drops[reason.index()]
    }

    /// Counts the final verdict of one packet.
    #[inline]
    pub fn count_verdict(&mut self, v: Verdict) {
        match v {
            Verdict::Forward { .. } => self.forwarded += 1,
            Verdict::Punt => self.punted += 1,
            Verdict::IcmpError(k) => self.icmp_sent[k.index()] += 1,
            Verdict::Drop(r) => self.drop(r),
            Verdict::Continue => {}
        }
    }

    /// Adds one stage run.
    #[inline]
    pub fn stage(&mut self, stage: Stage, packets: usize, ticks: u64) {
        let s = &mut self.stages[stage as usize];
        s.calls += 1;
        s.packets += packets as u64;
        s.ticks += ticks;
    }

    /// A copy to hand to the control plane (sum several with `+=`).
    pub fn snapshot(&self) -> CountersSnapshot {
        CountersSnapshot(self.clone())
    }
}

/// A copy of a worker's counters; several add up with `+=`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CountersSnapshot(pub Counters);

impl CountersSnapshot {
    /// `(name, count)` for every drop reason, in order (for `show drops`).
    pub fn drops(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        DropReason::ALL
            .iter()
            .map(|r| (r.name(), self.0.drops[r.index()]))
    }

    /// `(name, stats)` per stage (for `show runtime`).
    pub fn stages(&self) -> impl Iterator<Item = (&'static str, StageStats)> + '_ {
        Stage::ALL
            .iter()
            .map(|s| (s.name(), self.0.stages[*s as usize]))
    }
}

impl AddAssign<&CountersSnapshot> for CountersSnapshot {
    fn add_assign(&mut self, o: &CountersSnapshot) {
        let (a, b) = (&mut self.0, &o.0);
        for (x, y) in a.drops.iter_mut().zip(b.drops.iter()) {
            *x += y;
        }
        for (x, y) in a.icmp_sent.iter_mut().zip(b.icmp_sent.iter()) {
            *x += y;
        }
        a.forwarded += b.forwarded;
        a.punted += b.punted;
        for (x, y) in a.stages.iter_mut().zip(b.stages.iter()) {
            *x += *y;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligned_and_summable() {
        assert_eq!(std::mem::align_of::<Counters>(), 64);
        let mut a = Counters::new();
        a.drop(DropReason::BadVersion);
        a.count_verdict(Verdict::IcmpError(IcmpKind::NoRoute));
        let mut s = a.snapshot();
        s += &a.snapshot();
        assert_eq!(s.0.drops_of(DropReason::BadVersion), 2);
        assert_eq!(s.0.icmp_sent[IcmpKind::NoRoute.index()], 2);
        assert_eq!(s.drops().count(), DropReason::COUNT);
    }

    #[test]
    fn names_are_unique_snake_case() {
        let mut names: Vec<_> = DropReason::ALL.iter().map(|r| r.name()).collect();
        for n in &names {
            assert!(
                n.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
                "{n}"
            );
        }
        names.sort();
        names.dedup();
        assert_eq!(names.len(), DropReason::COUNT);
    }
}
