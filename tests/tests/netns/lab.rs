//! The test lab: namespaces, veths, gobgpd nodes and the speaker, torn
//! down by [`Lab`]'s `Drop` even when the test panics (processes killed
//! by their pid, namespaces deleted). On a panic the drop also prints the
//! speaker's output, each gobgpd's log tail and its neighbour table.
//!
//! Topology, one lab per test (names carry the test process's pid and a
//! counter, so tests never share anything):
//!
//! ```text
//!   edge ns: br0 2001:db8:1::1/64 ── v1 ─── eth0 2001:db8:1::2  node1 ns (gobgpd AS 65001)
//!                                  ├─ v2 ─── eth0 2001:db8:1::3  node2 ns
//!                                  └─ v3 ─── eth0 2001:db8:1::4  node3 ns
//! ```
//!
//! The speaker (`bgp-speaker`, AS 65000) runs in the edge namespace;
//! gobgpd is configured like Cilium: no listener (`port = -1`), IPv6
//! unicast, graceful restart with restart time 120 and the N bit.

use std::collections::HashMap;
use std::fs;
use std::io::{BufRead, BufReader};
use std::net::Ipv6Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// The speaker's binary, built by cargo for this package.
const SPEAKER: &str = env!("CARGO_BIN_EXE_bgp-speaker");

/// Our address on the bridge.
pub const EDGE_ADDR: &str = "2001:db8:1::1";
/// flatedge's address towards the client ([`Lab::new_routed`]).
pub const EDGE_UPLINK: &str = "2001:db8:c::1";
/// The client's address.
pub const CLIENT: &str = "2001:db8:c::2";
/// The listen range the nodes connect from.
pub const RANGE: &str = "2001:db8:1::/64";

/// How long a session may take to come up: gobgpd dials 5-10 s after it
/// starts (not configurable in 3.10), plus slack for a loaded machine.
pub const SESSION_TIMEOUT: Duration = Duration::from_secs(45);
/// How long routes may take to show up once sessions are up.
pub const ROUTE_TIMEOUT: Duration = Duration::from_secs(20);

static NEXT_LAB: AtomicU32 = AtomicU32::new(0);

/// Node `i`'s address (1-based).
pub fn node_addr(i: usize) -> Ipv6Addr {
    format!("2001:db8:1::{:x}", i + 1).parse().expect("valid")
}

/// Runs a command, panicking with its output if it fails.
pub fn run(args: &[&str]) -> String {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {args:?}: {e}"));
    if !out.status.success() {
        panic!(
            "{args:?} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs a command, returning whether it succeeded (output discarded).
fn try_run(args: &[&str]) -> bool {
    Command::new(args[0])
        .args(&args[1..])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Fails (never skips) when the lab cannot run here.
fn check_prerequisites() {
    let uid = run(&["id", "-u"]);
    assert_eq!(
        uid.trim(),
        "0",
        "the netns tests need root (network namespaces, port 179)"
    );
    for tool in ["ip", "gobgpd", "gobgp"] {
        assert!(
            try_run(&["sh", "-c", &format!("command -v {tool}")]),
            "{tool} not found: run scripts/setup.sh (Debian packages iproute2, gobgpd)"
        );
    }
}

/// Whether process `pid` still runs (not gone, not a zombie).
fn alive(pid: u32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        s.rsplit_once(") ")
            .is_some_and(|(_, rest)| !rest.starts_with('Z'))
    })
}

/// A binary of another workspace package (`flatedge`), next to this
/// test's directory: cargo builds every workspace binary when it builds
/// the workspace's tests (`scripts/test`).
pub fn workspace_bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    let p = dir.join(name);
    assert!(
        p.exists(),
        "{} is missing: build the workspace first (cargo build --workspace, as scripts/test does)",
        p.display()
    );
    p
}

/// Fails (never skips) when a peer's tools are missing.
fn check_tools(tools: &[&str], package: &str) {
    for tool in tools {
        assert!(
            try_run(&["sh", "-c", &format!("command -v {tool}")]),
            "{tool} not found: run scripts/setup.sh (Debian package {package})"
        );
    }
}

/// Removes namespaces left by test processes that died without cleaning
/// up (SIGKILL, power loss): `flatedge-PID-*` whose PID is gone.
fn remove_stale_namespaces() {
    let list = run(&["ip", "netns", "list"]);
    for line in list.lines() {
        let name = line.split_whitespace().next().unwrap_or("");
        let Some(rest) = name.strip_prefix("flatedge-") else {
            continue;
        };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        for p in run(&["ip", "netns", "pids", name]).split_whitespace() {
            let _ = try_run(&["kill", "-9", p]);
        }
        let _ = try_run(&["ip", "netns", "del", name]);
    }
}

/// What the speaker printed, shared with the thread reading its stdout.
#[derive(Debug, Default)]
struct Output {
    lines: Vec<String>,
    exited: bool,
}

/// A view of the speaker's output, for assertions.
#[derive(Debug)]
pub struct Seen<'a> {
    lines: &'a [String],
}

/// Splits `key=value` words (values end at the next space).
fn fields(line: &str) -> HashMap<&str, &str> {
    line.split_whitespace()
        .filter_map(|w| w.split_once('='))
        .collect()
}

impl Seen<'_> {
    /// Lines from `from` on (a mark taken with [`Lab::mark`]).
    pub fn since(&self, from: usize) -> Seen<'_> {
        Seen {
            lines: self.lines.get(from..).unwrap_or(&[]),
        }
    }

    /// The current ECMP set of `prefix` (sorted), `None` if never seen;
    /// empty once withdrawn.
    pub fn route(&self, prefix: &str) -> Option<Vec<Ipv6Addr>> {
        let line = self
            .lines
            .iter()
            .rev()
            .find(|l| l.starts_with("route ") && fields(l).get("prefix") == Some(&prefix))?;
        let hops = fields(line).get("nexthops").copied().unwrap_or("");
        let mut out: Vec<Ipv6Addr> = hops
            .split(',')
            .filter(|s| !s.is_empty())
            .map(|s| s.parse().expect("next hop"))
            .collect();
        out.sort();
        Some(out)
    }

    /// Every `route` line for `prefix`, in order.
    pub fn route_history(&self, prefix: &str) -> Vec<String> {
        self.lines
            .iter()
            .filter(|l| l.starts_with("route ") && fields(l).get("prefix") == Some(&prefix))
            .cloned()
            .collect()
    }

    /// The last `stats` line of the peer at `addr`, as key/values.
    pub fn stats(&self, addr: Ipv6Addr) -> Option<HashMap<String, String>> {
        let a = addr.to_string();
        let line = self
            .lines
            .iter()
            .rev()
            .find(|l| l.starts_with("stats ") && fields(l).get("addr") == Some(&a.as_str()))?;
        Some(
            fields(line)
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    /// One `stats` value of the peer at `addr`.
    pub fn stat(&self, addr: Ipv6Addr, key: &str) -> Option<String> {
        self.stats(addr)?.get(key).cloned()
    }

    /// Lines of `kind` (`up`, `down`, `state`) for the peer at `addr`.
    pub fn events(&self, kind: &str, addr: Ipv6Addr) -> Vec<String> {
        let a = addr.to_string();
        self.lines
            .iter()
            .filter(|l| {
                l.split_whitespace().next() == Some(kind)
                    && fields(l).get("addr") == Some(&a.as_str())
            })
            .cloned()
            .collect()
    }
}

/// One gobgpd node.
#[derive(Debug)]
struct Node {
    ns: String,
    index: usize,
    child: Option<Child>,
    log: PathBuf,
}

/// How a node's gobgpd is configured.
#[derive(Debug, Clone, Default)]
pub struct NodeOptions {
    /// TCP MD5 password.
    pub password: Option<String>,
}

/// Which routing daemon a [`Peer`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PeerKind {
    Bird,
    Frr,
}

/// A BIRD 2 or FRR `bgpd` peer on a node (instead of, or next to, its
/// gobgpd), with its own config, control socket, pid file and log under
/// the lab's directory.
#[derive(Debug)]
struct Peer {
    kind: PeerKind,
    index: usize,
    child: Option<Child>,
    log: PathBuf,
    /// BIRD: the control socket; FRR: the vty socket directory.
    ctl: PathBuf,
}

/// How a node's BIRD or FRR peer is configured: AS 65001, eBGP to the
/// speaker, active (the speaker's listen range is passive).
#[derive(Debug, Clone, Default)]
pub struct PeerOptions {
    /// Prefixes announced (BIRD: a static protocol's `unreachable`
    /// routes; FRR: `network` statements, import check off).
    pub routes: Vec<String>,
    /// TCP MD5 password.
    pub password: Option<String>,
    /// GTSM (RFC 5082; BIRD only: `ttl security on`): send with hop
    /// limit 255 and accept only 255.
    pub ttl_security: bool,
    /// BIRD only: wait for the speaker to connect (`passive on`) and
    /// import what it announces (an uplink), instead of dialling it and
    /// importing nothing (a Cilium node).
    pub uplink: bool,
}

/// A lab (see the module docs).
#[derive(Debug)]
pub struct Lab {
    prefix: String,
    edge: String,
    nodes: Vec<Node>,
    peers: Vec<Peer>,
    /// The pids of every bgpd started, for their `/var/tmp/frr` dirs.
    frr_pids: Vec<u32>,
    dir: PathBuf,
    speaker: Option<Child>,
    output: Arc<(Mutex<Output>, Condvar)>,
    /// [`Lab::new_routed`]: the switch (bridge) and client namespaces.
    switch: Option<String>,
    client: Option<String>,
    /// The `flatedge` daemon ([`Lab::start_daemon`]).
    daemon: Option<Child>,
}

impl Lab {
    /// Builds the namespaces and links for `nodes` gobgpd nodes.
    pub fn new(nodes: usize) -> Lab {
        Lab::build(nodes, false)
    }

    /// The lab of the daemon tests and the demo (DESIGN.md section 7):
    /// the bridge in its own `sw` namespace, so that flatedge's port
    /// towards the nodes is a veth (`k8s0` in edge, XDP-capable), and a
    /// client behind `up0`:
    ///
    /// ```text
    ///  client: c0 2001:db8:c::2 ── up0 2001:db8:c::1  edge  k8s0 2001:db8:1::1 ── sw: br0 ┬ eth0 node1 2001:db8:1::2
    ///                                                                                    ├ eth0 node2 2001:db8:1::3
    ///                                                                                    └ eth0 node3 2001:db8:1::4
    /// ```
    ///
    /// Each node routes everything via 2001:db8:1::1 and keeps its
    /// addresses when its link goes down; senders' checksum offload is off
    /// (DESIGN.md section 3).
    pub fn new_routed(nodes: usize) -> Lab {
        Lab::build(nodes, true)
    }

    fn build(nodes: usize, routed: bool) -> Lab {
        check_prerequisites();
        remove_stale_namespaces();
        let n = NEXT_LAB.fetch_add(1, Ordering::Relaxed);
        let prefix = format!("flatedge-{}-{n}", std::process::id());
        let dir = std::env::temp_dir().join(&prefix);
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("temp dir");
        let edge = format!("{prefix}-edge");
        let mut lab = Lab {
            prefix: prefix.clone(),
            edge: edge.clone(),
            nodes: Vec::new(),
            peers: Vec::new(),
            frr_pids: Vec::new(),
            dir,
            speaker: None,
            output: Arc::default(),
            switch: routed.then(|| format!("{prefix}-sw")),
            client: routed.then(|| format!("{prefix}-c")),
            daemon: None,
        };
        // Registered before anything is created, so Drop cleans up
        // whatever a failing step left behind.
        run(&["ip", "netns", "add", &edge]);
        lab.ip(&edge, "link set lo up");
        // The namespace holding the bridge the nodes hang off.
        let bridge_ns = match &lab.switch {
            Some(sw) => {
                run(&["ip", "netns", "add", sw]);
                lab.ip(sw, "link set lo up");
                lab.ip(sw, "link add br0 type bridge");
                lab.ip(sw, "link set br0 up");
                lab.ip(
                    &edge,
                    &format!("link add k8s0 type veth peer name e0 netns {sw}"),
                );
                lab.ip(sw, "link set e0 master br0 up");
                lab.ip(&edge, &format!("addr add {EDGE_ADDR}/64 dev k8s0 nodad"));
                lab.ip(&edge, "link set k8s0 up");
                sw.clone()
            }
            None => {
                lab.ip(&edge, "link add br0 type bridge");
                lab.ip(&edge, "link set br0 up");
                lab.ip(&edge, &format!("addr add {EDGE_ADDR}/64 dev br0 nodad"));
                edge.clone()
            }
        };
        if let Some(c) = lab.client.clone() {
            run(&["ip", "netns", "add", &c]);
            lab.ip(&c, "link set lo up");
            lab.ip(
                &edge,
                &format!("link add up0 type veth peer name c0 netns {c}"),
            );
            lab.ip(&edge, &format!("addr add {EDGE_UPLINK}/64 dev up0 nodad"));
            lab.ip(&edge, "link set up0 up");
            lab.ip(&c, &format!("addr add {CLIENT}/64 dev c0 nodad"));
            lab.ip(&c, "link set c0 up");
            lab.ip(&c, &format!("route add default via {EDGE_UPLINK}"));
            run(&[
                "ip", "netns", "exec", &c, "ethtool", "-K", "c0", "tx", "off",
            ]);
            // Only flatedge forwards.
            run(&[
                "ip",
                "netns",
                "exec",
                &edge,
                "sysctl",
                "-qw",
                "net.ipv6.conf.all.forwarding=0",
            ]);
        }
        for i in 1..=nodes {
            let ns = format!("{prefix}-n{i}");
            lab.nodes.push(Node {
                ns: ns.clone(),
                index: i,
                child: None,
                log: lab.dir.join(format!("gobgpd-{i}.log")),
            });
            run(&["ip", "netns", "add", &ns]);
            lab.ip(&ns, "link set lo up");
            lab.ip(
                &bridge_ns,
                &format!("link add v{i} type veth peer name eth0 netns {ns}"),
            );
            lab.ip(&bridge_ns, &format!("link set v{i} master br0 up"));
            if routed {
                run(&[
                    "ip",
                    "netns",
                    "exec",
                    &ns,
                    "sysctl",
                    "-qw",
                    "net.ipv6.conf.eth0.keep_addr_on_down=1",
                ]);
            }
            lab.ip(&ns, &format!("addr add {}/64 dev eth0 nodad", node_addr(i)));
            lab.ip(&ns, "link set eth0 up");
            if routed {
                lab.ip(&ns, &format!("route add default via {EDGE_ADDR}"));
                run(&[
                    "ip", "netns", "exec", &ns, "ethtool", "-K", "eth0", "tx", "off",
                ]);
            }
        }
        lab
    }

    /// The client namespace ([`Lab::new_routed`] only).
    pub fn client(&self) -> &str {
        self.client.as_deref().expect("a routed lab")
    }

    /// The ctl socket of [`Lab::start_daemon`].
    pub fn ctl_socket(&self) -> PathBuf {
        self.dir.join("ctl.sock")
    }

    /// Starts `flatedge --config` in the edge namespace with this config
    /// (its `[ctl]` is added here) and waits until its ctl socket answers.
    pub fn start_daemon(&mut self, config: &str) {
        let bin = workspace_bin("flatedge");
        let path = self.write_daemon_config(config);
        let log = fs::File::create(self.dir.join("flatedge.log")).expect("log file");
        let child = Command::new("ip")
            .args(["netns", "exec", &self.edge])
            .arg(&bin)
            .arg("--config")
            .arg(&path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start flatedge");
        let pid = child.id();
        self.daemon = Some(child);
        let socket = self.ctl_socket();
        self.poll("flatedge's ctl socket", Duration::from_secs(20), || {
            assert!(
                alive(pid),
                "flatedge exited at start:\n{}",
                self.daemon_log()
            );
            ctl::request(
                &socket,
                &ctl::Request::ShowInterfaces,
                Duration::from_secs(2),
            )
            .is_ok()
        });
    }

    /// Writes the daemon's config file (its `[ctl]` added), the one
    /// `start_daemon` starts it with and `reload` reads again.
    pub fn write_daemon_config(&self, config: &str) -> PathBuf {
        let path = self.dir.join("flatedge.toml");
        let config = format!(
            "{config}\n[ctl]\nsocket = \"{}\"\n",
            self.ctl_socket().display()
        );
        fs::write(&path, config).expect("write flatedge config");
        path
    }

    /// The daemon's log so far.
    pub fn daemon_log(&self) -> String {
        fs::read_to_string(self.dir.join("flatedge.log")).unwrap_or_default()
    }

    /// One ctl request to the daemon.
    pub fn ctl(&self, req: ctl::Request) -> ctl::Response {
        match ctl::request(&self.ctl_socket(), &req, Duration::from_secs(5)) {
            Ok(r) => r,
            Err(e) => panic!("ctl {req:?}: {e}\n{}", self.daemon_log()),
        }
    }

    /// `ip -n NS ARGS...`.
    pub fn ip(&self, ns: &str, args: &str) {
        let mut v = vec!["ip", "-n", ns];
        v.extend(args.split_whitespace());
        run(&v);
    }

    /// The edge namespace's name.
    pub fn edge(&self) -> &str {
        &self.edge
    }

    /// Starts the speaker with this router config (TOML) and waits until
    /// it listens.
    pub fn start_speaker(&mut self, config: &str) {
        let path = self.dir.join("flatedge.toml");
        fs::write(&path, config).expect("write speaker config");
        let stderr = fs::File::create(self.dir.join("speaker.stderr")).expect("stderr file");
        let mut child = Command::new("ip")
            .args(["netns", "exec", &self.edge, SPEAKER, "--config"])
            .arg(&path)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("start bgp-speaker");
        let stdout = child.stdout.take().expect("piped stdout");
        self.speaker = Some(child);
        let output = Arc::clone(&self.output);
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let (lock, cv) = &*output;
                lock.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .lines
                    .push(line);
                cv.notify_all();
            }
            let (lock, cv) = &*output;
            lock.lock().unwrap_or_else(|e| e.into_inner()).exited = true;
            cv.notify_all();
        });
        self.wait_for("the speaker to listen", Duration::from_secs(10), |s| {
            s.lines.iter().any(|l| l.starts_with("listening "))
        });
    }

    /// The number of lines printed so far, to look only at what comes
    /// after.
    pub fn mark(&self) -> usize {
        self.output
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .lines
            .len()
    }

    /// Runs `f` on the output seen so far.
    pub fn seen<T>(&self, f: impl FnOnce(&Seen<'_>) -> T) -> T {
        let out = self.output.0.lock().unwrap_or_else(|e| e.into_inner());
        f(&Seen { lines: &out.lines })
    }

    /// Waits until `cond` holds on the speaker's output; panics after
    /// `timeout` (or if the speaker exits) naming `what`.
    pub fn wait_for(&self, what: &str, timeout: Duration, cond: impl Fn(&Seen<'_>) -> bool) {
        let deadline = Instant::now() + timeout;
        let (lock, cv) = &*self.output;
        let mut out = lock.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if cond(&Seen { lines: &out.lines }) {
                return;
            }
            if out.exited {
                panic!("the speaker exited while waiting for {what}");
            }
            let now = Instant::now();
            if now >= deadline {
                panic!("timed out after {timeout:?} waiting for {what}");
            }
            // Also wakes up every 100 ms, for conditions on time.
            let wait = (deadline - now).min(Duration::from_millis(100));
            out = cv
                .wait_timeout(out, wait)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// Waits until `cond` holds for something outside the speaker
    /// (polled every 100 ms).
    pub fn poll(&self, what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
        let deadline = Instant::now() + timeout;
        while !cond() {
            if Instant::now() >= deadline {
                panic!("timed out after {timeout:?} waiting for {what}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn node(&self, i: usize) -> &Node {
        &self.nodes[i - 1]
    }

    /// Node `i`'s namespace.
    pub fn node_ns(&self, i: usize) -> &str {
        &self.node(i).ns
    }

    /// Writes node `i`'s gobgpd config, Cilium-like.
    fn gobgpd_config(&self, i: usize, opts: &NodeOptions) -> PathBuf {
        let password = opts
            .password
            .as_ref()
            .map(|p| format!("    auth-password = \"{p}\"\n"))
            .unwrap_or_default();
        let config = format!(
            r#"[global.config]
  as = 65001
  router-id = "10.0.0.{i}"
  port = -1

[[neighbors]]
  [neighbors.config]
    neighbor-address = "{EDGE_ADDR}"
    peer-as = 65000
{password}  [neighbors.timers.config]
    connect-retry = 5
    hold-time = 90
    keepalive-interval = 30
  [neighbors.transport.config]
    local-address = "{addr}"
  [neighbors.graceful-restart.config]
    enabled = true
    restart-time = 120
    notification-enabled = true
  [[neighbors.afi-safis]]
    [neighbors.afi-safis.config]
      afi-safi-name = "ipv6-unicast"
    [neighbors.afi-safis.mp-graceful-restart.config]
      enabled = true
"#,
            addr = node_addr(i),
        );
        let path = self.dir.join(format!("gobgpd-{i}.toml"));
        fs::write(&path, config).expect("write gobgpd config");
        path
    }

    /// Starts gobgpd on node `i` (`restarting`: with `-r`, the R and F
    /// bits of a restarting speaker) and waits until its API answers.
    pub fn start_gobgpd(&mut self, i: usize, opts: &NodeOptions, restarting: bool) {
        assert!(self.node(i).child.is_none(), "gobgpd {i} already runs");
        let config = self.gobgpd_config(i, opts);
        let node = self.node(i);
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&node.log)
            .expect("gobgpd log");
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &node.ns, "gobgpd", "-f"])
            .arg(&config)
            .args(["-p", "--pprof-disable", "--api-hosts", "127.0.0.1:50051"]);
        if restarting {
            cmd.arg("-r");
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start gobgpd");
        self.nodes[i - 1].child = Some(child);
        let ns = self.node(i).ns.clone();
        self.poll(
            &format!("gobgpd {i}'s API"),
            Duration::from_secs(15),
            || try_run(&["ip", "netns", "exec", &ns, "gobgp", "global"]),
        );
    }

    /// SIGKILLs node `i`'s gobgpd (no NOTIFICATION, the kernel closes its
    /// sockets) and reaps it.
    pub fn kill_gobgpd(&mut self, i: usize) {
        let mut child = self.nodes[i - 1].child.take().expect("gobgpd runs");
        child.kill().expect("SIGKILL gobgpd");
        child.wait().expect("reap gobgpd");
    }

    /// `gobgp ARGS` in node `i`'s namespace.
    pub fn gobgp(&self, i: usize, args: &str) -> String {
        let ns = self.node_ns(i).to_string();
        let mut v = vec!["ip", "netns", "exec", &ns, "gobgp"];
        v.extend(args.split_whitespace());
        run(&v)
    }

    /// Announces `prefix` from node `i`.
    pub fn announce(&self, i: usize, prefix: &str) {
        self.gobgp(i, &format!("global rib add -a ipv6 {prefix}"));
    }

    /// Withdraws `prefix` from node `i`.
    pub fn withdraw(&self, i: usize, prefix: &str) {
        self.gobgp(i, &format!("global rib del -a ipv6 {prefix}"));
    }

    /// A counter of the edge namespace's `/proc/net/netstat` (e.g.
    /// `TcpExt` `TCPMD5Failure`).
    pub fn netstat(&self, group: &str, name: &str) -> u64 {
        let text = run(&[
            "ip",
            "netns",
            "exec",
            &self.edge,
            "cat",
            "/proc/net/netstat",
        ]);
        let tag = format!("{group}:");
        let lines: Vec<&str> = text.lines().filter(|l| l.starts_with(&tag)).collect();
        let [names, values] = lines.as_slice() else {
            panic!("no {group} in /proc/net/netstat");
        };
        names
            .split_whitespace()
            .zip(values.split_whitespace())
            .find(|(n, _)| *n == name)
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or_else(|| panic!("no {group} {name} in /proc/net/netstat"))
    }

    fn peer(&self, kind: PeerKind, i: usize) -> &Peer {
        self.peers
            .iter()
            .find(|p| p.kind == kind && p.index == i)
            .unwrap_or_else(|| panic!("no {kind:?} peer on node {i}"))
    }

    /// Starts BIRD 2 on node `i` (`bird -f`, its own config, control
    /// socket and pid file): a static protocol `announced` with
    /// `opts.routes`, exported over an active eBGP protocol `edge` to the
    /// speaker; waits until `birdc` answers.
    pub fn start_bird(&mut self, i: usize, opts: &PeerOptions) {
        check_tools(&["bird", "birdc"], "bird2");
        assert!(
            !self.peers.iter().any(|p| p.index == i),
            "node {i} already has a BIRD or FRR peer"
        );
        let log = self.dir.join(format!("bird-{i}.log"));
        let ctl = self.dir.join(format!("bird-{i}.ctl"));
        let pid = self.dir.join(format!("bird-{i}.pid"));
        let statics: String = opts
            .routes
            .iter()
            .map(|r| format!("    route {r} unreachable;\n"))
            .collect();
        let mut password = opts
            .password
            .as_ref()
            .map(|p| format!("    password \"{p}\";\n"))
            .unwrap_or_default();
        if opts.ttl_security {
            password.push_str("    ttl security on;\n");
        }
        if opts.uplink {
            password.push_str("    passive on;\n");
        }
        let import = if opts.uplink { "all" } else { "none" };
        let config = format!(
            r#"log "{log}" all;
router id 10.0.0.{i};

protocol device {{
    scan time 10;
}}

protocol static announced {{
    ipv6;
{statics}}}

protocol bgp edge {{
    local {addr} as 65001;
    neighbor {EDGE_ADDR} as 65000;
    direct;
{password}    connect delay time 1;
    connect retry time 2;
    error wait time 1, 5;
    ipv6 {{
        import {import};
        export where source = RTS_STATIC;
    }};
}}
"#,
            log = log.display(),
            addr = node_addr(i),
        );
        let conf = self.dir.join(format!("bird-{i}.conf"));
        fs::write(&conf, config).expect("write bird config");
        let out = fs::File::create(self.dir.join(format!("bird-{i}.stderr"))).expect("stderr");
        let ns = self.node_ns(i).to_string();
        let child = Command::new("ip")
            .args(["netns", "exec", &ns, "bird", "-f", "-c"])
            .arg(&conf)
            .arg("-s")
            .arg(&ctl)
            .arg("-P")
            .arg(&pid)
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("stderr"))
            .stderr(out)
            .spawn()
            .expect("start bird");
        let child_pid = child.id();
        self.peers.push(Peer {
            kind: PeerKind::Bird,
            index: i,
            child: Some(child),
            log,
            ctl: ctl.clone(),
        });
        let ctl = ctl.to_string_lossy().into_owned();
        self.poll(
            &format!("BIRD {i}'s control socket"),
            Duration::from_secs(15),
            || {
                assert!(alive(child_pid), "BIRD {i} exited (see its stderr below)");
                try_run(&["birdc", "-s", &ctl, "show", "status"])
            },
        );
    }

    /// `birdc ARGS` against node `i`'s BIRD.
    pub fn birdc(&self, i: usize, args: &str) -> String {
        let ctl = self
            .peer(PeerKind::Bird, i)
            .ctl
            .to_string_lossy()
            .into_owned();
        let mut v = vec!["birdc", "-s", &ctl];
        v.extend(args.split_whitespace());
        run(&v)
    }

    /// Starts FRR's `bgpd` alone on node `i` (no zebra: `-Z -n`, no
    /// listener: `-p 0`, no TCP vty: `-P 0`; its own config, pid file,
    /// vty socket directory and log): an active eBGP neighbour to the
    /// speaker, IPv6 unicast only, `opts.routes` as `network` statements;
    /// waits until `vtysh` answers.
    pub fn start_frr(&mut self, i: usize, opts: &PeerOptions) {
        check_tools(&["/usr/lib/frr/bgpd", "vtysh"], "frr");
        assert!(
            !self.peers.iter().any(|p| p.index == i),
            "node {i} already has a BIRD or FRR peer"
        );
        let log = self.dir.join(format!("frr-{i}.log"));
        let vty = self.dir.join(format!("frr-{i}"));
        fs::create_dir_all(&vty).expect("vty dir");
        let pid = vty.join("bgpd.pid");
        let networks: String = opts
            .routes
            .iter()
            .map(|r| format!("  network {r}\n"))
            .collect();
        let password = opts
            .password
            .as_ref()
            .map(|p| format!(" neighbor {EDGE_ADDR} password {p}\n"))
            .unwrap_or_default();
        let config = format!(
            r#"frr defaults traditional
hostname node{i}
log file {log} debugging
!
router bgp 65001
 bgp router-id 10.0.0.{i}
 no bgp default ipv4-unicast
 no bgp ebgp-requires-policy
 no bgp network import-check
 neighbor {EDGE_ADDR} remote-as 65000
 neighbor {EDGE_ADDR} update-source {addr}
 neighbor {EDGE_ADDR} timers connect 1
{password} !
 address-family ipv6 unicast
{networks}  neighbor {EDGE_ADDR} activate
 exit-address-family
!
"#,
            log = log.display(),
            addr = node_addr(i),
        );
        let conf = vty.join("bgpd.conf");
        fs::write(&conf, config).expect("write bgpd config");
        let out = fs::File::create(self.dir.join(format!("frr-{i}.stderr"))).expect("stderr");
        let ns = self.node_ns(i).to_string();
        let child = Command::new("ip")
            .args(["netns", "exec", &ns, "/usr/lib/frr/bgpd", "-f"])
            .arg(&conf)
            .arg("-i")
            .arg(&pid)
            .arg("-z")
            .arg(vty.join("zserv.api"))
            .arg("--vty_socket")
            .arg(&vty)
            .args(["-Z", "-n", "-S", "-p", "0", "-P", "0"])
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("stderr"))
            .stderr(out)
            .spawn()
            .expect("start bgpd");
        let child_pid = child.id();
        self.frr_pids.push(child_pid);
        self.peers.push(Peer {
            kind: PeerKind::Frr,
            index: i,
            child: Some(child),
            log,
            ctl: vty,
        });
        self.poll(&format!("FRR {i}'s vty"), Duration::from_secs(15), || {
            assert!(alive(child_pid), "bgpd {i} exited (see its stderr below)");
            Command::new("ip")
                .args(["netns", "exec", &ns])
                .args(self.vtysh_args(i, &["show bgp summary"]))
                .output()
                .is_ok_and(|o| {
                    o.status.success() && String::from_utf8_lossy(&o.stdout).contains("65001")
                })
        });
    }

    fn vtysh_args(&self, i: usize, cmds: &[&str]) -> Vec<String> {
        let vty = self
            .peer(PeerKind::Frr, i)
            .ctl
            .to_string_lossy()
            .into_owned();
        let mut v = vec![
            "vtysh".to_string(),
            "--vty_socket".into(),
            vty,
            "-d".into(),
            "bgpd".into(),
        ];
        for c in cmds {
            v.push("-c".into());
            v.push(c.to_string());
        }
        v
    }

    /// `vtysh -c CMD...` against node `i`'s bgpd (e.g. `["configure
    /// terminal", "router bgp 65001", "neighbor X shutdown"]`).
    pub fn vtysh(&self, i: usize, cmds: &[&str]) -> String {
        let ns = self.node_ns(i).to_string();
        let mut v = vec!["ip".to_string(), "netns".into(), "exec".into(), ns];
        v.extend(self.vtysh_args(i, cmds));
        let v: Vec<&str> = v.iter().map(String::as_str).collect();
        run(&v)
    }

    fn dump_peers(&self) {
        for p in &self.peers {
            let ns = self.node_ns(p.index).to_string();
            let status = match p.kind {
                PeerKind::Bird => Command::new("birdc")
                    .arg("-s")
                    .arg(&p.ctl)
                    .args(["show", "protocols", "all", "edge"])
                    .output(),
                PeerKind::Frr => Command::new("ip")
                    .args(["netns", "exec", &ns])
                    .args(self.vtysh_args(p.index, &["show bgp summary", "show bgp ipv6 unicast"]))
                    .output(),
            };
            if let Ok(o) = status {
                eprintln!(
                    "==== node{}: {:?} status\n{}{}",
                    p.index,
                    p.kind,
                    String::from_utf8_lossy(&o.stdout),
                    String::from_utf8_lossy(&o.stderr)
                );
            }
            let stderr = match p.kind {
                PeerKind::Bird => self.dir.join(format!("bird-{}.stderr", p.index)),
                PeerKind::Frr => self.dir.join(format!("frr-{}.stderr", p.index)),
            };
            if let Ok(s) = fs::read_to_string(stderr) {
                if !s.trim().is_empty() {
                    eprintln!("==== node{}: {:?} stderr\n{s}", p.index, p.kind);
                }
            }
            if let Ok(s) = fs::read_to_string(&p.log) {
                let lines: Vec<&str> = s.lines().collect();
                eprintln!("==== node{}: {:?} log (last 40 lines)", p.index, p.kind);
                for l in &lines[lines.len().saturating_sub(40)..] {
                    eprintln!("  {l}");
                }
            }
        }
    }

    fn dump(&self) {
        let out = self.output.0.lock().unwrap_or_else(|e| e.into_inner());
        eprintln!("==== {}: speaker output (last 100 lines)", self.prefix);
        for l in out.lines.iter().rev().take(100).rev() {
            eprintln!("  {l}");
        }
        drop(out);
        if let Ok(s) = fs::read_to_string(self.dir.join("speaker.stderr")) {
            eprintln!("==== speaker stderr\n{s}");
        }
        if self.daemon.is_some() {
            eprintln!("==== flatedge log\n{}", self.daemon_log());
        }
        for n in &self.nodes {
            if n.child.is_some() {
                let out = Command::new("ip")
                    .args(["netns", "exec", &n.ns, "gobgp", "neighbor"])
                    .output();
                if let Ok(o) = out {
                    eprintln!(
                        "==== node{}: gobgp neighbor\n{}",
                        n.index,
                        String::from_utf8_lossy(&o.stdout)
                    );
                }
            }
            if let Ok(s) = fs::read_to_string(&n.log) {
                let lines: Vec<&str> = s.lines().collect();
                eprintln!("==== node{}: gobgpd log (last 30 lines)", n.index);
                for l in &lines[lines.len().saturating_sub(30)..] {
                    eprintln!("  {l}");
                }
            }
        }
        self.dump_peers();
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        // FLATEDGE_LAB_DUMP=1 dumps passing tests too.
        if std::thread::panicking() || std::env::var_os("FLATEDGE_LAB_DUMP").is_some() {
            self.dump();
        }
        let children = self
            .nodes
            .iter_mut()
            .filter_map(|n| n.child.take())
            .chain(self.peers.iter_mut().filter_map(|p| p.child.take()))
            .chain(self.speaker.take())
            .chain(self.daemon.take());
        for mut c in children {
            let _ = c.kill();
            let _ = c.wait();
        }
        // bgpd keeps a crash-log directory per process that only a clean
        // exit removes.
        for &pid in &self.frr_pids {
            let _ = fs::remove_dir_all(format!("/var/tmp/frr/bgpd.{pid}"));
        }
        for n in &self.nodes {
            let _ = try_run(&["ip", "netns", "del", &n.ns]);
        }
        let _ = try_run(&["ip", "netns", "del", &self.edge]);
        for ns in self.switch.iter().chain(&self.client) {
            let _ = try_run(&["ip", "netns", "del", ns]);
        }
        if !std::thread::panicking() {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

/// The router config for the speaker: AS 65000, the listen range with
/// `range_extra` lines added to its `[[bgp.listen]]` table, and an import
/// list that accepts every route unless they bring their own (the
/// sessions are external: without one they would accept nothing, RFC
/// 8212).
pub fn speaker_config(range_extra: &str) -> String {
    let import = if range_extra.contains("import") {
        ""
    } else {
        r#"import = ["::/0 le 128"]"#
    };
    format!(
        r#"[router]
asn = 65000
router-id = "192.0.2.1"

[[interface]]
name = "br0"

[[bgp.listen]]
range = "{RANGE}"
peer-asn = 65001
{import}
{range_extra}
"#
    )
}

/// Sorted addresses of nodes `ids`.
pub fn nodes(ids: &[usize]) -> Vec<Ipv6Addr> {
    let mut v: Vec<Ipv6Addr> = ids.iter().map(|&i| node_addr(i)).collect();
    v.sort();
    v
}
