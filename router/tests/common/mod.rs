//! Helpers shared by the router's netns tests (run as root).

#![allow(dead_code)] // each test binary uses its own subset

use std::fs::File;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

pub fn mac_str(mac: [u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Runs a command, panicking with its output when it fails; returns its
/// standard output.
pub fn run(args: &[&str]) -> String {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {args:?}: {e}"));
    assert!(
        out.status.success(),
        "{args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs a command in a namespace; returns whether it succeeded, and its output.
pub fn ns_try(ns: &str, args: &[&str]) -> (bool, String) {
    let out = Command::new("ip")
        .args(["netns", "exec", ns])
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {args:?} in {ns}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

pub fn ns(ns: &str, args: &[&str]) {
    let (ok, text) = ns_try(ns, args);
    assert!(ok, "{args:?} in {ns} failed: {text}");
}

/// Fails (never skips) when not root or when a tool the tests drive is
/// missing.
pub fn require_root_and_tools(test: &str) {
    assert!(
        nix::unistd::geteuid().is_root(),
        "{test} needs root (network namespaces, XDP, AF_XDP): run it as root"
    );
    for (tool, arg) in [("ip", "-V"), ("ping", "-V"), ("ethtool", "--version")] {
        let ok = Command::new(tool)
            .arg(arg)
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
        assert!(ok, "`{tool}` is missing: install it (scripts/setup.sh)");
    }
}

/// Enters namespace `name` (this thread only).
pub fn enter(name: &str) -> Result<(), String> {
    let file =
        File::open(format!("/run/netns/{name}")).map_err(|e| format!("open netns {name}: {e}"))?;
    nix::sched::setns(file, nix::sched::CloneFlags::CLONE_NEWNET)
        .map_err(|e| format!("setns {name}: {e}"))
}

/// Waits until no address of each (namespace, device) is tentative (DAD
/// done): neighbour solicitations sent before that are lost.
pub fn wait_dad(links: &[(&str, &str)]) {
    let t0 = Instant::now();
    for &(ns, dev) in links {
        while !run(&[
            "ip",
            "-n",
            ns,
            "-6",
            "addr",
            "show",
            "dev",
            dev,
            "tentative",
        ])
        .trim()
        .is_empty()
        {
            assert!(
                t0.elapsed() < Duration::from_secs(4),
                "{dev}: DAD never ends"
            );
            thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Starts `f` on its own thread and waits (up to 10 s) for it to report
/// its set-up through the channel it is given; if set-up failed, stops it
/// (`stop`), joins it and panics with the reason.
pub fn spawn_ready<T: Send + 'static>(
    what: &str,
    stop: &Arc<AtomicBool>,
    f: impl FnOnce(mpsc::Sender<Result<(), String>>) -> T + Send + 'static,
) -> JoinHandle<T> {
    let (ready_tx, ready_rx) = mpsc::channel();
    let handle = thread::spawn(move || f(ready_tx));
    let setup = ready_rx
        .recv_timeout(Duration::from_secs(10))
        .unwrap_or_else(|_| panic!("{what} setup timed out"));
    if let Err(e) = setup {
        stop.store(true, Ordering::Relaxed);
        let _ = handle.join();
        panic!("{what} setup failed: {e}");
    }
    handle
}
