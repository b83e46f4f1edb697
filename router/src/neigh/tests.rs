//! The neighbour thread's event handling against the kernel, each test in
//! a network namespace of its own (root, as the whole suite).

use std::io::Write;
use std::process::{Command, Stdio};

use super::*;

/// Runs `f` on a thread of its own in a new network namespace (a thread's
/// namespace is its own; the `ip` it starts inherits it).
fn in_new_netns<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::spawn(move || {
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET)
            .expect("unshare(CLONE_NEWNET): the tests run as root");
        f()
    })
    .join()
    .expect("test thread")
}

/// Runs `ip -batch -` with `lines`.
fn ip_batch(lines: &str) {
    let mut child = Command::new("ip")
        .args(["-batch", "-"])
        .stdin(Stdio::piped())
        .spawn()
        .expect("ip (iproute2, installed by scripts/setup.sh)");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(lines.as_bytes())
        .expect("write to ip");
    assert!(child.wait().expect("ip").success(), "ip -batch failed");
}

#[test]
fn an_overrun_throws_away_the_events_queued_before_the_re_dump() {
    in_new_netns(|| {
        ip_batch("link add fa type veth peer name fb\n");
        let ev = NlSocket::open(msg::GROUPS).expect("event socket");
        // A small buffer, so that the burst below overruns it.
        ev.setsockopt_int(libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, 8192)
            .expect("SO_RCVBUFFORCE");
        let req = NlSocket::open(0).expect("request socket");
        let mut w = Worker::new(ev, req, Arc::new(ArcSwap::default()));
        w.resync().expect("dump");
        // Queued first (and kept: an overrun drops the newest): fa up,
        // then down. Then a burst on fb that overruns the socket, and
        // fa's last word, up (its event lost or not).
        let mut lines = String::from("link set fa up\nlink set fa down\n");
        for _ in 0..200 {
            lines.push_str("link set fb up\nlink set fb down\n");
        }
        lines.push_str("link set fa up\n");
        ip_batch(&lines);

        let mut ebuf = vec![0u8; 1 << 16];
        let mut events = Vec::new();
        assert!(
            w.read_events(&mut ebuf, &mut events),
            "the burst did not overrun the event socket"
        );
        w.resync().expect("re-dump");
        assert!(w.state.link_by_name("fa").expect("fa").admin_up);
        // What is still queued is newer than the dump.
        while w.read_events(&mut ebuf, &mut events) {}
        assert!(
            w.state.link_by_name("fa").expect("fa").admin_up,
            "an event queued before the overrun undid the re-dump"
        );
    });
}

#[test]
fn a_device_without_ipv6_does_not_turn_managed_entries_off() {
    in_new_netns(|| {
        // fa's MTU is below IPv6's minimum: the kernel takes IPv6 off it
        // and refuses both kinds of neighbour request there.
        ip_batch(
            "link add fa type veth peer name fb\n\
             link add ga type veth peer name gb\n\
             link set fa mtu 1200\n\
             link set fa up\n\
             link set fb up\n\
             link set ga up\n\
             link set gb up\n",
        );
        let ev = NlSocket::open(msg::GROUPS).expect("event socket");
        let req = NlSocket::open(0).expect("request socket");
        let mut w = Worker::new(ev, req, Arc::new(ArcSwap::default()));
        w.resync().expect("dump");
        let index = |w: &Worker, name: &str| w.state.link_by_name(name).expect(name).ifindex;
        let (fa, ga) = (index(&w, "fa"), index(&w, "ga"));
        let peer: Ipv6Addr = "fe80::1".parse().unwrap();
        assert!(w.request_resolve((peer, fa)).is_err(), "fa has no IPv6");
        assert_eq!(
            w.request_resolve((peer, ga)).expect("ga resolves"),
            ResolveMode::Managed
        );
    });
}

/// `gave_up` holds from a `FAILED` report through the new attempt a
/// re-kick starts (`INCOMPLETE`) until the neighbour resolves: the
/// daemon, looking later than the kernel's report, still sees that the
/// kernel gave up (it used to see FAILED only in the milliseconds before
/// the next kick).
#[test]
fn gave_up_lasts_until_resolved() {
    let report = |state: u16| msg::NeighMsg {
        addr: "2001:db8::2".parse().unwrap(),
        ifindex: 3,
        state,
        mac: None,
        managed: true,
    };
    // NUD_INCOMPLETE 0x01, NUD_REACHABLE 0x02, NUD_FAILED 0x20.
    let first = neighbor_of(&report(0x01), None);
    assert!(!first.gave_up);
    let failed = neighbor_of(&report(0x20), Some(&first));
    assert!(failed.gave_up);
    let again = neighbor_of(&report(0x01), Some(&failed));
    assert!(again.gave_up && again.state == NeighState::Incomplete);
    let resolved = neighbor_of(&report(0x02), Some(&again));
    assert!(!resolved.gave_up);
    assert!(!neighbor_of(&report(0x01), Some(&resolved)).gave_up);
}
