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

/// A lab (see the module docs).
#[derive(Debug)]
pub struct Lab {
    prefix: String,
    edge: String,
    nodes: Vec<Node>,
    dir: PathBuf,
    speaker: Option<Child>,
    output: Arc<(Mutex<Output>, Condvar)>,
}

impl Lab {
    /// Builds the namespaces and links for `nodes` gobgpd nodes.
    pub fn new(nodes: usize) -> Lab {
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
            dir,
            speaker: None,
            output: Arc::default(),
        };
        // Registered before anything is created, so Drop cleans up
        // whatever a failing step left behind.
        run(&["ip", "netns", "add", &edge]);
        lab.ip(&edge, "link set lo up");
        lab.ip(&edge, "link add br0 type bridge");
        lab.ip(&edge, "link set br0 up");
        lab.ip(&edge, &format!("addr add {EDGE_ADDR}/64 dev br0 nodad"));
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
                &edge,
                &format!("link add v{i} type veth peer name eth0 netns {ns}"),
            );
            lab.ip(&edge, &format!("link set v{i} master br0 up"));
            lab.ip(&ns, &format!("addr add {}/64 dev eth0 nodad", node_addr(i)));
            lab.ip(&ns, "link set eth0 up");
        }
        lab
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
            .chain(self.speaker.take());
        for mut c in children {
            let _ = c.kill();
            let _ = c.wait();
        }
        for n in &self.nodes {
            let _ = try_run(&["ip", "netns", "del", &n.ns]);
        }
        let _ = try_run(&["ip", "netns", "del", &self.edge]);
        if !std::thread::panicking() {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

/// The router config for the speaker: AS 65000, the listen range with
/// `range_extra` lines added to its `[[bgp.listen]]` table.
pub fn speaker_config(range_extra: &str) -> String {
    format!(
        r#"[router]
asn = 65000
router-id = "192.0.2.1"

[[interface]]
name = "br0"

[[bgp.listen]]
range = "{RANGE}"
peer-asn = 65001
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
