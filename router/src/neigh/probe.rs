//! Next-hop liveness by ICMPv6 echo: a [`Prober`] thread sends an echo
//! request to every next hop each [`ProbeConfig::interval`] and reports
//! [`Liveness::Down`] after [`ProbeConfig::misses`] unanswered probes in
//! a row, [`Liveness::Up`] again at the first answer. It catches a silent
//! neighbour on a shared segment (a bridge) where carrier never drops,
//! which the kernel's neighbour timers take 20 s or more to notice.
//!
//! One raw `IPPROTO_ICMPV6` socket per interface, bound to it with
//! `SO_BINDTODEVICE` (the kernel fills the ICMPv6 checksum of raw ICMPv6
//! sockets), opened **in the calling thread's network namespace**. This
//! module holds the unsafe code of the prober: plain libc socket calls.
#![allow(unsafe_code)]

use std::collections::BTreeMap;
use std::ffi::CStr;
use std::io;
use std::net::Ipv6Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::{Liveness, NextHopKey};

const ICMP6_ECHO_REQUEST: u8 = 128;
const ICMP6_ECHO_REPLY: u8 = 129;
/// `ICMPV6_FILTER` (linux/icmpv6.h): which ICMPv6 types a raw socket gets.
const ICMPV6_FILTER: libc::c_int = 1;

/// The `struct icmp6_filter` that passes echo replies only (Linux: a set
/// bit blocks its type).
fn echo_reply_filter() -> [u32; 8] {
    let mut f = [u32::MAX; 8];
    let t = usize::from(ICMP6_ECHO_REPLY);
    f[t >> 5] &= !(1 << (t & 31));
    f
}

/// How often to probe and how many misses make a next hop down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProbeConfig {
    /// Time between two probes of one next hop.
    pub interval: Duration,
    /// Unanswered probes in a row that make a next hop down.
    pub misses: u32,
}

/// Defaults: a silent next hop is down after at most (misses + 1) x
/// interval = 600 ms, inside the 1 s the dataplane issue asks for with room
/// for scheduling delays.
impl Default for ProbeConfig {
    fn default() -> Self {
        ProbeConfig {
            interval: Duration::from_millis(150),
            misses: 3,
        }
    }
}

/// A liveness change of one next hop.
pub type LivenessEvent = (NextHopKey, Liveness);

/// The prober thread; stopped and joined on drop.
#[derive(Debug)]
pub struct Prober {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    cmds: Sender<HopCmd>,
}

/// A change of the probed set.
#[derive(Debug)]
enum HopCmd {
    Add(NextHopKey),
    Remove(NextHopKey),
}

impl Prober {
    /// Opens the sockets (in the calling thread's network namespace) and
    /// starts probing `hops`. Changes come on the returned receiver: the
    /// first answer of a next hop gives `Up`, `config.misses` misses in a
    /// row give `Down` (also for a next hop that never answered).
    pub fn start(
        config: ProbeConfig,
        hops: &[NextHopKey],
    ) -> io::Result<(Prober, Receiver<LivenessEvent>)> {
        if config.misses == 0 || config.interval.is_zero() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "ProbeConfig needs misses >= 1 and a non-zero interval",
            ));
        }
        let mut socks = BTreeMap::new();
        for &(_, ifindex) in hops {
            if let std::collections::btree_map::Entry::Vacant(e) = socks.entry(ifindex) {
                e.insert(IcmpSocket::open(ifindex)?);
            }
        }
        let (cmds, cmd_rx) = mpsc::channel();
        let state = hops
            .iter()
            .map(|&k| {
                (
                    k,
                    HopState {
                        liveness: Liveness::Unknown,
                        misses: 0,
                        answered: true,
                    },
                )
            })
            .collect();
        // The echo identifier: the kernel does not demultiplex raw
        // sockets by it, so it tells our replies from other pingers'.
        let ident = (std::process::id() as u16) ^ 0x5a5a;
        let (tx, rx) = mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let worker = Worker {
            config,
            socks,
            state,
            ident,
            seq: 0,
            tx,
            cmds: cmd_rx,
        };
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("neigh-probe".into())
            .spawn(move || worker.run(&flag))?;
        Ok((
            Prober {
                stop,
                thread: Some(thread),
                cmds,
            },
            rx,
        ))
    }

    /// Starts probing one more next hop (its socket is opened in the
    /// prober thread's namespace, which is the one `start` ran in).
    pub fn add(&self, hop: NextHopKey) {
        let _ = self.cmds.send(HopCmd::Add(hop));
    }

    /// Stops probing a next hop.
    pub fn remove(&self, hop: NextHopKey) {
        let _ = self.cmds.send(HopCmd::Remove(hop));
    }
}

impl Drop for Prober {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[derive(Debug)]
struct HopState {
    liveness: Liveness,
    /// Unanswered probes in a row.
    misses: u32,
    /// Whether the last probe sent was answered.
    answered: bool,
}

struct Worker {
    config: ProbeConfig,
    socks: BTreeMap<u32, IcmpSocket>,
    state: BTreeMap<NextHopKey, HopState>,
    ident: u16,
    seq: u16,
    tx: Sender<LivenessEvent>,
    cmds: Receiver<HopCmd>,
}

impl Worker {
    fn run(mut self, stop: &AtomicBool) {
        let mut next = Instant::now();
        let mut buf = [0u8; 1500];
        while !stop.load(Ordering::Relaxed) {
            while let Ok(c) = self.cmds.try_recv() {
                self.apply(c);
            }
            let now = Instant::now();
            if now >= next {
                self.tick();
                next += self.config.interval;
                if next < now {
                    next = now + self.config.interval;
                }
            }
            // Wait for replies until the next tick, at most 50 ms so a
            // stop is seen quickly.
            let wait = next
                .saturating_duration_since(Instant::now())
                .min(Duration::from_millis(50));
            self.poll(wait, &mut buf);
        }
    }

    fn apply(&mut self, c: HopCmd) {
        match c {
            HopCmd::Add(key) => {
                if let std::collections::btree_map::Entry::Vacant(v) = self.socks.entry(key.1) {
                    match IcmpSocket::open(key.1) {
                        Ok(s) => {
                            v.insert(s);
                        }
                        // Tried again every round (`tick`); the hop waits
                        // unjudged meanwhile.
                        Err(e) => eprintln!(
                            "flatedge: cannot probe {} (ifindex {}) yet: {e}; trying again",
                            key.0, key.1
                        ),
                    }
                }
                self.state.entry(key).or_insert(HopState {
                    liveness: Liveness::Unknown,
                    misses: 0,
                    answered: true,
                });
            }
            HopCmd::Remove(key) => {
                self.state.remove(&key);
            }
        }
    }

    /// Counts the misses of the previous round, then probes every hop.
    fn tick(&mut self) {
        self.seq = self.seq.wrapping_add(1);
        // A socket that could not be opened (its interface not there yet,
        // out of descriptors) is tried again each round; until it opens,
        // its hops are not judged (no socket is no evidence).
        let missing: std::collections::BTreeSet<u32> = self
            .state
            .keys()
            .map(|k| k.1)
            .filter(|i| !self.socks.contains_key(i))
            .collect();
        for ifindex in missing {
            if let Ok(s) = IcmpSocket::open(ifindex) {
                self.socks.insert(ifindex, s);
            }
        }
        let mut changes = Vec::new();
        for (key, hop) in &mut self.state {
            let Some(sock) = self.socks.get(&key.1) else {
                continue;
            };
            if !hop.answered {
                hop.misses = hop.misses.saturating_add(1);
                if hop.misses >= self.config.misses && hop.liveness != Liveness::Down {
                    hop.liveness = Liveness::Down;
                    changes.push((*key, Liveness::Down));
                }
            }
            hop.answered = false;
            // A send error (no route, link down) is a miss like any.
            let _ = sock.send_echo(key.0, key.1, self.ident, self.seq);
        }
        for c in changes {
            let _ = self.tx.send(c);
        }
    }

    fn poll(&mut self, wait: Duration, buf: &mut [u8]) {
        let mut fds: Vec<libc::pollfd> = self
            .socks
            .values()
            .map(|s| libc::pollfd {
                fd: s.fd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        let ms = wait.as_millis().min(i32::MAX as u128) as libc::c_int;
        // SAFETY: `fds` is a valid array of `fds.len()` pollfds that
        // lives across the call.
        let r = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, ms) };
        if r <= 0 {
            return;
        }
        let ready: Vec<u32> = self
            .socks
            .keys()
            .zip(&fds)
            .filter(|(_, p)| p.revents != 0)
            .map(|(&i, _)| i)
            .collect();
        for ifindex in ready {
            while let Some((n, from)) = self.socks[&ifindex].recv_from(buf) {
                self.on_packet(&buf[..n], from, ifindex);
            }
        }
    }

    fn on_packet(&mut self, pkt: &[u8], from: Ipv6Addr, ifindex: u32) {
        // Raw IPv6 sockets deliver the ICMPv6 message without IP header.
        if pkt.len() < 8 || pkt[0] != ICMP6_ECHO_REPLY || pkt[1] != 0 {
            return;
        }
        if u16::from_be_bytes([pkt[4], pkt[5]]) != self.ident {
            return;
        }
        // A reply to one of the last `misses` probes only: a late answer
        // to an old probe says nothing about the node now.
        let seq = u16::from_be_bytes([pkt[6], pkt[7]]);
        if u32::from(self.seq.wrapping_sub(seq)) >= self.config.misses {
            return;
        }
        let Some(hop) = self.state.get_mut(&(from, ifindex)) else {
            return;
        };
        hop.answered = true;
        hop.misses = 0;
        if hop.liveness != Liveness::Up {
            hop.liveness = Liveness::Up;
            let _ = self.tx.send(((from, ifindex), Liveness::Up));
        }
    }
}

/// A raw ICMPv6 socket bound to one interface.
struct IcmpSocket {
    fd: OwnedFd,
}

impl IcmpSocket {
    fn open(ifindex: u32) -> io::Result<IcmpSocket> {
        let mut name = [0 as libc::c_char; libc::IF_NAMESIZE];
        // SAFETY: `name` has the IF_NAMESIZE bytes if_indextoname needs.
        let p = unsafe { libc::if_indextoname(ifindex, name.as_mut_ptr()) };
        if p.is_null() {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: on success if_indextoname wrote a NUL-terminated name.
        let name = unsafe { CStr::from_ptr(name.as_ptr()) };
        // SAFETY: plain syscall, no pointers.
        let raw = unsafe {
            libc::socket(
                libc::AF_INET6,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
                libc::IPPROTO_ICMPV6,
            )
        };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `raw` is a fresh descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let bytes = name.to_bytes();
        // SAFETY: `bytes` is valid for `bytes.len()` bytes across the call.
        let r = unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_BINDTODEVICE,
                bytes.as_ptr().cast(),
                bytes.len() as libc::socklen_t,
            )
        };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        // Echo replies only: the neighbour discovery, MLD and echo
        // requests the port receives would fill the socket's buffer and
        // crowd out the replies (every hop then missed).
        let filter = echo_reply_filter();
        // SAFETY: `filter` is a valid 32-byte icmp6_filter across the call.
        let r = unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::IPPROTO_ICMPV6,
                ICMPV6_FILTER,
                filter.as_ptr().cast(),
                std::mem::size_of_val(&filter) as libc::socklen_t,
            )
        };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(IcmpSocket { fd })
    }

    fn send_echo(&self, to: Ipv6Addr, ifindex: u32, ident: u16, seq: u16) -> io::Result<()> {
        let mut msg = [0u8; 16];
        msg[0] = ICMP6_ECHO_REQUEST;
        // Code 0, checksum 0: the kernel computes it.
        msg[4..6].copy_from_slice(&ident.to_be_bytes());
        msg[6..8].copy_from_slice(&seq.to_be_bytes());
        msg[8..16].copy_from_slice(b"flatedge");
        // SAFETY: sockaddr_in6 is plain old data; all-zero is valid.
        let mut sa: libc::sockaddr_in6 = unsafe { std::mem::zeroed() };
        sa.sin6_family = libc::AF_INET6 as libc::sa_family_t;
        sa.sin6_addr.s6_addr = to.octets();
        sa.sin6_scope_id = ifindex;
        // SAFETY: `msg` is valid for its length and `sa` is a valid
        // sockaddr_in6 whose size is passed.
        let r = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                msg.as_ptr().cast(),
                msg.len(),
                0,
                (&sa as *const libc::sockaddr_in6).cast(),
                std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t,
            )
        };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// One pending message and its source, `None` when none is left.
    fn recv_from(&self, buf: &mut [u8]) -> Option<(usize, Ipv6Addr)> {
        // SAFETY: sockaddr_in6 is plain old data; all-zero is valid.
        let mut sa: libc::sockaddr_in6 = unsafe { std::mem::zeroed() };
        let mut len = std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t;
        // SAFETY: `buf` is writable for its length, `sa`/`len` describe a
        // valid sockaddr_in6 buffer; all live across the call.
        let r = unsafe {
            libc::recvfrom(
                self.fd.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                libc::MSG_DONTWAIT,
                (&mut sa as *mut libc::sockaddr_in6).cast(),
                &mut len,
            )
        };
        if r < 0 {
            return None;
        }
        Some((r as usize, Ipv6Addr::from(sa.sin6_addr.s6_addr)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A prober with one hop and no sockets, at probe `seq`.
    fn worker(seq: u16, liveness: Liveness) -> (Worker, Receiver<LivenessEvent>, NextHopKey) {
        let (tx, rx) = mpsc::channel();
        let (_cmd_tx, cmds) = mpsc::channel();
        let key: NextHopKey = ("2001:db8::2".parse().unwrap(), 3);
        let mut state = BTreeMap::new();
        state.insert(
            key,
            HopState {
                liveness,
                misses: 5,
                answered: false,
            },
        );
        let w = Worker {
            config: ProbeConfig::default(),
            socks: BTreeMap::new(),
            state,
            ident: 0x1234,
            seq,
            tx,
            cmds,
        };
        (w, rx, key)
    }

    fn reply(ident: u16, seq: u16) -> [u8; 8] {
        let [i0, i1] = ident.to_be_bytes();
        let [s0, s1] = seq.to_be_bytes();
        [ICMP6_ECHO_REPLY, 0, 0, 0, i0, i1, s0, s1]
    }

    #[test]
    fn only_replies_to_recent_probes_bring_a_hop_up() {
        let misses = ProbeConfig::default().misses as u16;
        // The probe `misses` rounds back, answered only now: ignored.
        let (mut w, rx, key) = worker(misses, Liveness::Down);
        w.on_packet(&reply(0x1234, 0), key.0, key.1);
        assert_eq!(w.state[&key].liveness, Liveness::Down);
        // Another prober's identifier: ignored.
        w.on_packet(&reply(0x4321, w.seq), key.0, key.1);
        assert_eq!(w.state[&key].liveness, Liveness::Down);
        assert!(rx.try_recv().is_err());
        // The last probe's answer: up.
        w.on_packet(&reply(0x1234, w.seq.wrapping_sub(misses - 1)), key.0, key.1);
        assert_eq!(w.state[&key].liveness, Liveness::Up);
        assert_eq!(rx.try_recv().ok(), Some((key, Liveness::Up)));
        // Across the wrap of the sequence number.
        let (mut w, _rx, key) = worker(1, Liveness::Down);
        w.on_packet(&reply(0x1234, u16::MAX), key.0, key.1);
        assert_eq!(w.state[&key].liveness, Liveness::Up);
    }

    #[test]
    fn the_filter_passes_echo_replies_only() {
        let f = echo_reply_filter();
        let blocked = |t: usize| f[t >> 5] & (1 << (t & 31)) != 0;
        assert!(!blocked(129));
        assert!((0..=255).filter(|&t| t != 129).all(blocked));
    }
}
