//! Warnings about kernel work bound to the workers' cores.
//!
//! A poll-mode worker never yields its core. Softirq work queued there (a
//! NIC queue's interrupt, receive steered there by RPS, and with them the
//! transmit completions of copy-mode AF_XDP) waits in `ksoftirqd` until
//! the scheduler takes the core from the worker: frames stay uncompleted
//! and the transmit ring backs up (`tx_overflow`). The daemon does not
//! move interrupts itself (that is the operator's, or irqbalance's, to
//! decide); it says at start which ones sit on a worker core.

use std::path::Path;

/// CPUs of a list such as `0-3,6` (`smp_affinity_list`).
pub fn parse_cpu_list(s: &str) -> Option<Vec<usize>> {
    let mut cpus = Vec::new();
    for part in s.trim().split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b): (usize, usize) = (a.parse().ok()?, b.parse().ok()?);
                if b < a || b - a > 4096 {
                    return None;
                }
                cpus.extend(a..=b);
            }
            None => cpus.push(part.parse().ok()?),
        }
    }
    Some(cpus)
}

/// CPUs of a hexadecimal mask such as `00000000,00000003` (`rps_cpus`:
/// 32-bit groups, most significant first).
pub fn parse_cpu_mask(s: &str) -> Option<Vec<usize>> {
    let mut cpus = Vec::new();
    let groups: Vec<&str> = s.trim().split(',').collect();
    for (i, g) in groups.iter().rev().enumerate() {
        let bits = u32::from_str_radix(g, 16).ok()?;
        cpus.extend((0..32).filter(|b| bits >> b & 1 == 1).map(|b| i * 32 + b));
    }
    Some(cpus)
}

/// The interrupt numbers of `/proc/interrupts` (text in `interrupts`)
/// whose name is `ifname` or starts with `ifname-` (`eth0-TxRx-3`).
pub fn irqs_of(interrupts: &str, ifname: &str) -> Vec<u32> {
    let prefix = format!("{ifname}-");
    interrupts
        .lines()
        .filter_map(|l| {
            let (n, rest) = l.trim_start().split_once(':')?;
            let n: u32 = n.parse().ok()?;
            let name = rest.split_whitespace().last()?;
            (name == ifname || name.starts_with(&prefix)).then_some(n)
        })
        .collect()
}

/// The warnings for the interfaces `ifnames` and the worker `cores`.
pub fn notes(ifnames: &[String], cores: &[usize]) -> Vec<String> {
    notes_in(Path::new("/"), ifnames, cores)
}

/// [`notes`] with `/proc` and `/sys` under `root`.
fn notes_in(root: &Path, ifnames: &[String], cores: &[usize]) -> Vec<String> {
    let read = |p: &str| std::fs::read_to_string(root.join(p)).ok();
    let on_worker = |cpus: &[usize]| cpus.iter().copied().find(|c| cores.contains(c));
    let interrupts = read("proc/interrupts").unwrap_or_default();
    let mut out = Vec::new();
    for ifname in ifnames {
        for irq in irqs_of(&interrupts, ifname) {
            // Where it is delivered (one CPU of its affinity), when the
            // kernel says.
            let cpus = read(&format!("proc/irq/{irq}/effective_affinity_list"))
                .or_else(|| read(&format!("proc/irq/{irq}/smp_affinity_list")))
                .and_then(|s| parse_cpu_list(&s));
            if let Some(c) = cpus.as_deref().and_then(on_worker) {
                out.push(format!(
                    "{ifname}: interrupt {irq} is handled on CPU {c}, a worker's: its softirq \
                     work waits behind the worker (move it: echo CPUS > \
                     /proc/irq/{irq}/smp_affinity_list)"
                ));
            }
        }
        let queues = root.join(format!("sys/class/net/{ifname}/queues"));
        for q in super::rx_queue_names(&queues) {
            let path = format!("sys/class/net/{ifname}/queues/{q}/rps_cpus");
            let cpus = read(&path).and_then(|s| parse_cpu_mask(&s));
            if let Some(c) = cpus.as_deref().and_then(on_worker) {
                out.push(format!(
                    "{ifname} {q}: RPS steers receive work to CPU {c}, a worker's: it waits \
                     behind the worker (clear it: echo 0 > /{path})"
                ));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists_and_masks() {
        assert_eq!(parse_cpu_list("0-3,6\n"), Some(vec![0, 1, 2, 3, 6]));
        assert_eq!(parse_cpu_list("5"), Some(vec![5]));
        assert_eq!(parse_cpu_list(""), Some(vec![]));
        assert_eq!(parse_cpu_list("3-1"), None);
        assert_eq!(parse_cpu_list("x"), None);
        assert_eq!(parse_cpu_mask("00000000,00000003\n"), Some(vec![0, 1]));
        assert_eq!(parse_cpu_mask("1,00000000"), Some(vec![32]));
        assert_eq!(parse_cpu_mask("0"), Some(vec![]));
        assert_eq!(parse_cpu_mask("zz"), None);
    }

    #[test]
    fn interrupts_are_found_by_their_interface_name() {
        let text = "           CPU0       CPU1\n\
                    \x20 24:          0          0   PCI-MSI 1-edge      eth0\n\
                    \x20 25:     123456          7   PCI-MSI 2-edge      eth0-TxRx-0\n\
                    \x20 26:          9          1   PCI-MSI 3-edge      eth0-TxRx-1\n\
                    \x20 27:          1          1   PCI-MSI 4-edge      eth01-TxRx-0\n\
                    NMI:          0          0   Non-maskable interrupts\n";
        assert_eq!(irqs_of(text, "eth0"), [24, 25, 26]);
        assert_eq!(irqs_of(text, "eth1"), Vec::<u32>::new());
    }

    #[test]
    fn warns_for_what_sits_on_a_worker_core_only() {
        let root = std::env::temp_dir().join(format!("flatedge-softirq-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let w = |p: &str, s: &str| {
            let f = root.join(p);
            std::fs::create_dir_all(f.parent().unwrap()).unwrap();
            std::fs::write(f, s).unwrap();
        };
        w(
            "proc/interrupts",
            " 30: 1 2 PCI-MSI eth0-TxRx-0\n 31: 1 2 PCI-MSI eth0-TxRx-1\n",
        );
        // 30 may go anywhere but is delivered to CPU 0; 31 to CPU 1.
        w("proc/irq/30/smp_affinity_list", "0-1");
        w("proc/irq/30/effective_affinity_list", "0");
        w("proc/irq/31/smp_affinity_list", "1");
        w("sys/class/net/eth0/queues/rx-0/rps_cpus", "00000002");
        w("sys/class/net/eth0/queues/rx-1/rps_cpus", "00000000");
        w("sys/class/net/eth0/queues/tx-0/xps_cpus", "00000002");
        let notes = notes_in(&root, &["eth0".to_string()], &[1]);
        let _ = std::fs::remove_dir_all(&root);
        assert_eq!(notes.len(), 2, "{notes:?}");
        assert!(notes[0].contains("interrupt 31") && notes[0].contains("CPU 1"));
        assert!(notes[1].contains("rx-0") && notes[1].contains("RPS"));
    }
}
