//! One-way latency through the router: a paced UDP sender in the
//! generator namespace and a receiver in the sink namespace, both pinned
//! to the generator's core (on two cores the other one is the router's:
//! a receiver there waits for the busy-polling worker's time slice).
//!
//! The sender sends each probe when it is due, one `send` each (in
//! `sendmmsg` batches the later probes waited in the kernel for the
//! earlier ones' whole path through the lab, on this core: batches of 16
//! put 50-60 us on every p50, and reached no higher rate, the cost per
//! probe being that path, not the syscall), sleeping through long waits (1 us timer slack)
//! and yielding the core through short ones, so that the softirqs and the
//! receiver sharing its core run. A sender that falls behind skips the
//! probes it missed rather than sending them in a burst, and reports the
//! rate it reached: the run measures at that rate (the whole path of a
//! probe through the lab runs on the sender's core, in its syscall or in
//! the softirqs it raises: 100-200 kpps here).
//!
//! Each 128-byte frame (66 bytes of UDP payload) carries its sequence
//! number and the CLOCK_REALTIME nanoseconds read just before its
//! `send`.
//! The receiver takes the kernel's receive timestamp (`SO_TIMESTAMPNS`,
//! CLOCK_REALTIME, taken when the sink's veth handed the packet to the
//! stack), so the receiving thread's scheduling is not part of the number.
//! Both namespaces share the host's clock. Probes of the first half second
//! are warm-up and not recorded.

use std::io::IoSliceMut;
use std::net::{SocketAddr, SocketAddrV6, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use hdrhistogram::Histogram;
use nix::sys::socket::{recvmsg, setsockopt, sockopt, ControlMessageOwned, MsgFlags, SockaddrIn6};
use nix::time::{clock_gettime, ClockId};

use super::lab::{enter, GEN_ADDR, LATENCY_PORT, SERVICE};

/// Frame bytes of a probe (Ethernet + IPv6 + UDP + payload).
pub const PROBE_FRAME_BYTES: usize = 128;
const PAYLOAD: usize = PROBE_FRAME_BYTES - 14 - 40 - 8;
const WARMUP: Duration = Duration::from_millis(500);

/// What a latency run measured.
#[derive(Debug, Clone, Copy)]
pub struct Latency {
    /// The rate asked for.
    pub target_pps: f64,
    /// The rate the sender reached.
    pub sent_pps: f64,
    pub sent: u64,
    pub received: u64,
    pub p50_us: f64,
    pub p90_us: f64,
    pub p99_us: f64,
    pub p999_us: f64,
    pub max_us: f64,
}

fn realtime_ns() -> u64 {
    clock_gettime(ClockId::CLOCK_REALTIME)
        .map(|t| t.tv_sec() as u64 * 1_000_000_000 + t.tv_nsec() as u64)
        .unwrap_or(0)
}

/// Sends probes at `rate` pps for `duration` (plus the warm-up) from
/// `gen` to the sink in `sink`, the sender pinned to `core`.
pub fn measure(
    gen: &str,
    sink: &str,
    core: usize,
    rate: f64,
    duration: Duration,
) -> Result<Latency> {
    let rate = rate.max(1.0);
    let warm = (rate * WARMUP.as_secs_f64()) as u64;
    let stop = Arc::new(AtomicBool::new(false));
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<()>>();
    let sink_ns = sink.to_owned();
    let stop2 = stop.clone();
    let receiver = thread::spawn(move || -> Result<(Histogram<u64>, u64)> {
        let setup = || -> Result<UdpSocket> {
            enter(&sink_ns)?;
            core_affinity::set_for_current(core_affinity::CoreId { id: core });
            let sock = UdpSocket::bind(SocketAddrV6::new(SERVICE, LATENCY_PORT, 0, 0))
                .context("binding the latency receiver")?;
            setsockopt(&sock, sockopt::ReceiveTimestampns, &true).context("SO_TIMESTAMPNS")?;
            let _ = setsockopt(&sock, sockopt::RcvBuf, &(4 << 20));
            sock.set_read_timeout(Some(Duration::from_millis(100)))
                .context("receive timeout")?;
            Ok(sock)
        };
        let sock = match setup() {
            Ok(s) => {
                let _ = ready_tx.send(Ok(()));
                s
            }
            Err(e) => {
                let _ = ready_tx.send(Err(anyhow!("{e:#}")));
                return Err(e);
            }
        };
        let mut hist = Histogram::<u64>::new_with_bounds(1, 10_000_000_000, 3)
            .context("creating the histogram")?;
        let mut received = 0u64;
        let mut buf = [0u8; 2048];
        let mut cmsg = nix::cmsg_space!(nix::sys::time::TimeSpec);
        while !stop2.load(Ordering::Relaxed) {
            let mut iov = [IoSliceMut::new(&mut buf)];
            let Ok(msg) = recvmsg::<SockaddrIn6>(
                sock.as_raw_fd(),
                &mut iov,
                Some(&mut cmsg),
                MsgFlags::empty(),
            ) else {
                continue;
            };
            let mut rx_ns = None;
            if let Ok(cmsgs) = msg.cmsgs() {
                for c in cmsgs {
                    if let ControlMessageOwned::ScmTimestampns(ts) = c {
                        rx_ns = Some(ts.tv_sec() as u64 * 1_000_000_000 + ts.tv_nsec() as u64);
                    }
                }
            }
            let len = msg.bytes;
            if len < 16 {
                continue;
            }
            let seq = u64::from_be_bytes(buf[0..8].try_into().unwrap_or_default());
            let tx_ns = u64::from_be_bytes(buf[8..16].try_into().unwrap_or_default());
            if seq < warm {
                continue;
            }
            received += 1;
            let rx_ns = rx_ns.unwrap_or_else(realtime_ns);
            let _ = hist.record(rx_ns.saturating_sub(tx_ns).max(1));
        }
        Ok((hist, received))
    });
    ready_rx
        .recv()
        .context("the latency receiver died")?
        .context("setting up the latency receiver")?;

    let gen_ns = gen.to_owned();
    let sender = thread::spawn(move || -> Result<(u64, f64)> {
        enter(&gen_ns)?;
        core_affinity::set_for_current(core_affinity::CoreId { id: core });
        let sock = UdpSocket::bind(SocketAddrV6::new(GEN_ADDR, 0, 0, 0))
            .context("binding the latency sender")?;
        sock.connect(SocketAddr::V6(SocketAddrV6::new(
            SERVICE,
            LATENCY_PORT,
            0,
            0,
        )))
        .context("connecting the latency sender")?;
        // Sleeps end within 1 us of their time, not the default 50.
        let _ = nix::sys::prctl::set_timerslack(1000);
        let period = 1e9 / rate;
        let total = warm + (rate * duration.as_secs_f64()) as u64;
        let mut buf = [0u8; PAYLOAD];
        let start = Instant::now();
        let mut measured_start = None;
        let mut sent = 0u64;
        let mut seq = 0u64;
        while seq < total {
            if seq >= warm && measured_start.is_none() {
                measured_start = Some(Instant::now());
            }
            let due = Duration::from_nanos((seq as f64 * period) as u64);
            let now = start.elapsed();
            if now < due {
                // Long waits sleep (to within the timer's reach); the rest
                // yields the core, so that the softirq work and the
                // receiver sharing it run on time, and is exact.
                let wait = due - now;
                if wait > Duration::from_micros(60) {
                    thread::sleep(wait - Duration::from_micros(40));
                }
                while start.elapsed() < due {
                    thread::yield_now();
                }
            } else {
                // Behind by more than a probe: skip the missed slots.
                let at = (now.as_nanos() as f64 / period) as u64;
                if at > seq + 1 {
                    seq = at;
                    continue;
                }
            }
            if super::lab::INTERRUPTED.load(Ordering::Relaxed) {
                return Err(anyhow!("interrupted"));
            }
            buf[0..8].copy_from_slice(&seq.to_be_bytes());
            buf[8..16].copy_from_slice(&realtime_ns().to_be_bytes());
            // Past the warm-up, as the receiver counts them.
            if sock.send(&buf).is_ok() && seq >= warm {
                sent += 1;
            }
            seq += 1;
        }
        let secs = measured_start.map_or(0.0, |t| t.elapsed().as_secs_f64());
        Ok((sent, if secs > 0.0 { sent as f64 / secs } else { 0.0 }))
    });
    let sent = sender
        .join()
        .map_err(|_| anyhow!("the latency sender panicked"));
    // Let the last probes arrive.
    thread::sleep(Duration::from_millis(200));
    stop.store(true, Ordering::Relaxed);
    let (hist, received) = receiver
        .join()
        .map_err(|_| anyhow!("the latency receiver panicked"))??;
    let (sent, sent_pps) = sent??;
    let us = |q: f64| hist.value_at_quantile(q) as f64 / 1000.0;
    Ok(Latency {
        target_pps: rate,
        sent_pps,
        sent,
        received,
        p50_us: us(0.5),
        p90_us: us(0.9),
        p99_us: us(0.99),
        p999_us: us(0.999),
        max_us: hist.max() as f64 / 1000.0,
    })
}
