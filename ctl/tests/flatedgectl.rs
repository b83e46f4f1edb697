//! `flatedgectl` end to end against a stand-in daemon: a UNIX listener in a
//! temp dir answering canned responses through `ctl::serve_one`. No root
//! needed.

use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use ctl::{
    Drops, ErrorCode, FibEntry, FibNextHop, FibSummary, NeighborAction, NextHopState, Request,
    Response,
};

/// A directory of its own under the system's temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "flatedgectl-test-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn socket(&self) -> PathBuf {
        self.0.join("ctl.sock")
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A stand-in daemon serving one connection on `socket()`.
struct Daemon {
    dir: TempDir,
    requests: mpsc::Receiver<Result<Request, String>>,
}

impl Daemon {
    /// Answers with `serve_one` and `handler`; the request it got is kept
    /// for [`Daemon::request`].
    fn new(handler: fn(&Request) -> Response) -> Daemon {
        let (tx, requests) = mpsc::channel();
        let dir = Daemon::spawn(move |stream| {
            ctl::serve_one(stream, |req| {
                let resp = match &req {
                    Ok(r) => handler(r),
                    Err(m) => Response::error(ErrorCode::BadRequest, m.clone()),
                };
                tx.send(req).unwrap();
                resp
            })
            .unwrap();
        });
        Daemon { dir, requests }
    }

    /// Reads the request, answers `bytes` as they are.
    fn raw(bytes: &'static [u8]) -> Daemon {
        let (_, requests) = mpsc::channel();
        let dir = Daemon::spawn(move |mut stream| {
            let mut doc = Vec::new();
            stream.read_to_end(&mut doc).unwrap();
            stream.write_all(bytes).unwrap();
        });
        Daemon { dir, requests }
    }

    fn spawn(serve: impl FnOnce(UnixStream) + Send + 'static) -> TempDir {
        let dir = TempDir::new();
        let listener = UnixListener::bind(dir.socket()).unwrap();
        // Not a timing test: the deadline only keeps a client that never
        // connects from hanging the test run.
        listener.set_nonblocking(true).unwrap();
        thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(60);
            loop {
                match listener.accept() {
                    Ok((stream, _)) => {
                        stream.set_nonblocking(false).unwrap();
                        return serve(stream);
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        if Instant::now() > deadline {
                            return;
                        }
                        thread::sleep(Duration::from_millis(5));
                    }
                    Err(e) => panic!("accept: {e}"),
                }
            }
        });
        dir
    }

    fn socket(&self) -> PathBuf {
        self.dir.socket()
    }

    /// Runs `flatedgectl --socket SOCKET args...`.
    fn run(&self, args: &[&str]) -> Output {
        flatedgectl(&["--socket", self.socket().to_str().unwrap()], args)
    }

    /// The request the daemon was sent.
    fn request(&self) -> Request {
        self.requests
            .recv_timeout(Duration::from_secs(60))
            .expect("the daemon got no request")
            .expect("the daemon got a bad request")
    }
}

fn flatedgectl(options: &[&str], args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_flatedgectl"))
        .env_remove("FLATEDGE_CTL_SOCKET")
        .args(options)
        .args(args)
        .output()
        .unwrap()
}

fn stdout(out: &Output) -> &str {
    std::str::from_utf8(&out.stdout).unwrap()
}

fn stderr(out: &Output) -> &str {
    std::str::from_utf8(&out.stderr).unwrap()
}

fn summary(_: &Request) -> Response {
    Response::FibSummary(FibSummary {
        routes: 3,
        groups: 1,
        memory_bytes: 4096,
    })
}

fn fib(_: &Request) -> Response {
    Response::Fib(FibEntry {
        address: "2001:db8:100::1".parse().unwrap(),
        prefix: Some("2001:db8:100::/56".parse().unwrap()),
        nexthops: vec![
            FibNextHop {
                address: "2001:db8:1::11".parse().unwrap(),
                interface: "k8s0".into(),
                mac: Some("02:00:00:00:00:11".parse().unwrap()),
                state: NextHopState::Up,
            },
            FibNextHop {
                address: "2001:db8:1::12".parse().unwrap(),
                interface: "k8s0".into(),
                mac: None,
                state: NextHopState::Unresolved,
            },
        ],
    })
}

fn unknown_neighbor(_: &Request) -> Response {
    Response::error(ErrorCode::UnknownNeighbor, "no BGP peer 2001:db8::9")
}

#[test]
fn json_prints_the_document() {
    let daemon = Daemon::new(summary);
    let out = daemon.run(&["--json", "show", "fib", "summary"]);
    assert_eq!(daemon.request(), Request::ShowFibSummary);
    assert_eq!(stderr(&out), "");
    assert_eq!(
        stdout(&out),
        "{\"type\":\"fib_summary\",\"routes\":3,\"groups\":1,\"memory_bytes\":4096}\n"
    );
    assert_eq!(out.status.code(), Some(0));
}

#[test]
fn json_prints_the_document_as_received() {
    let daemon = Daemon::raw(b"{\n  \"type\": \"drops\",\n  \"drops\": {\"no_route\": 0}\n}");
    let out = daemon.run(&["show", "drops", "--json"]);
    assert_eq!(
        stdout(&out),
        "{\n  \"type\": \"drops\",\n  \"drops\": {\"no_route\": 0}\n}\n"
    );
    assert_eq!(out.status.code(), Some(0));
}

#[test]
fn tables_without_json() {
    let daemon = Daemon::new(fib);
    let out = daemon.run(&["show", "fib", "2001:db8:100::1"]);
    assert_eq!(
        daemon.request(),
        Request::ShowFib {
            address: "2001:db8:100::1".parse().unwrap()
        }
    );
    assert_eq!(stderr(&out), "");
    assert_eq!(
        stdout(&out),
        "\
2001:db8:100::1 via prefix 2001:db8:100::/56
  2001:db8:1::11  k8s0  02:00:00:00:00:11  up
  2001:db8:1::12  k8s0  -                  unresolved
"
    );
    assert_eq!(out.status.code(), Some(0));

    let daemon = Daemon::new(|_| {
        Response::Drops(Drops {
            drops: BTreeMap::from([("no_route".into(), 0), ("hop_limit_exceeded".into(), 7)]),
        })
    });
    let out = daemon.run(&["sh", "dr"]);
    assert_eq!(daemon.request(), Request::ShowDrops);
    assert_eq!(
        stdout(&out),
        "Reason              Packets\nhop_limit_exceeded        7\n"
    );
    assert_eq!(out.status.code(), Some(0));
}

/// A client that sends its request and waits without shutting down its
/// writing half (`nc -U` without `-N`) gets its answer, then the daemon's
/// EOF, long before the daemon's 5 s read budget.
#[test]
fn a_client_that_keeps_its_writing_half_open_is_answered() {
    let daemon = Daemon::new(|_| {
        Response::Drops(Drops {
            drops: BTreeMap::from([("no_route".into(), 3)]),
        })
    });
    let mut s = UnixStream::connect(daemon.socket()).unwrap();
    // In two writes, the document cut in its middle.
    s.write_all(br#"{"command":"#).unwrap();
    thread::sleep(Duration::from_millis(50));
    s.write_all(b"\"show_drops\"}\n").unwrap();
    s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer)
        .expect("no answer and EOF within 3 s");
    let r: Response = serde_json::from_str(&answer).unwrap();
    assert!(matches!(r, Response::Drops(_)), "{answer}");
    assert_eq!(daemon.request(), Request::ShowDrops);
}

#[test]
fn an_error_response_exits_1() {
    let daemon = Daemon::new(unknown_neighbor);
    let out = daemon.run(&["neighbor", "2001:db8::9", "reset"]);
    assert_eq!(
        daemon.request(),
        Request::Neighbor {
            address: "2001:db8::9".parse().unwrap(),
            action: NeighborAction::Reset,
        }
    );
    assert_eq!(stdout(&out), "");
    assert_eq!(stderr(&out), "flatedgectl: no BGP peer 2001:db8::9\n");
    assert_eq!(out.status.code(), Some(1));

    // --json prints the error document too, for scripts.
    let daemon = Daemon::new(unknown_neighbor);
    let out = daemon.run(&["--json", "neighbor", "2001:db8::9", "disable"]);
    assert_eq!(
        stdout(&out),
        "{\"type\":\"error\",\"code\":\"unknown_neighbor\",\"message\":\"no BGP peer 2001:db8::9\"}\n"
    );
    assert_eq!(stderr(&out), "flatedgectl: no BGP peer 2001:db8::9\n");
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn a_missing_socket_exits_1() {
    let dir = TempDir::new();
    let socket = dir.socket();
    let out = flatedgectl(
        &["--socket", socket.to_str().unwrap()],
        &["show", "interfaces"],
    );
    assert_eq!(stdout(&out), "");
    assert_eq!(
        stderr(&out),
        format!(
            "flatedgectl: cannot connect to {}: No such file or directory; is flatedge running?\n",
            socket.display()
        )
    );
    assert_eq!(out.status.code(), Some(1));
    // With --json, stdout still holds one JSON document: the error.
    let out = flatedgectl(
        &["--socket", socket.to_str().unwrap(), "--json"],
        &["show", "interfaces"],
    );
    let doc: serde_json::Value = serde_json::from_str(stdout(&out)).expect("a JSON document");
    assert_eq!(doc["type"], "error");
    assert_eq!(doc["code"], "unavailable");
    assert!(
        doc["message"].as_str().unwrap().contains("cannot connect"),
        "{doc}"
    );
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn a_bad_answer_exits_1() {
    let daemon = Daemon::raw(b"<html>nope</html>");
    let out = daemon.run(&["show", "runtime"]);
    assert_eq!(stdout(&out), "");
    assert_eq!(
        stderr(&out),
        format!(
            "flatedgectl: the answer from {} is not a ctl response: expected value at line 1 column 1\n",
            daemon.socket().display()
        )
    );
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn the_socket_comes_from_the_environment_unless_given() {
    let daemon = Daemon::new(summary);
    let out = Command::new(env!("CARGO_BIN_EXE_flatedgectl"))
        .env("FLATEDGE_CTL_SOCKET", daemon.socket())
        .args(["show", "fib", "summary"])
        .output()
        .unwrap();
    assert_eq!(daemon.request(), Request::ShowFibSummary);
    assert_eq!(
        stdout(&out),
        "Routes           3\nNext-hop groups  1\nMemory           4096 bytes\n"
    );
    assert_eq!(out.status.code(), Some(0));

    let daemon = Daemon::new(summary);
    let out = Command::new(env!("CARGO_BIN_EXE_flatedgectl"))
        .env("FLATEDGE_CTL_SOCKET", "/nonexistent/ctl.sock")
        .args(["--socket", daemon.socket().to_str().unwrap()])
        .args(["show", "fib", "summary"])
        .output()
        .unwrap();
    assert_eq!(daemon.request(), Request::ShowFibSummary);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

#[test]
fn the_default_socket() {
    let out = Command::new(env!("CARGO_BIN_EXE_flatedgectl"))
        .env_remove("FLATEDGE_CTL_SOCKET")
        .arg("--help")
        .output()
        .unwrap();
    assert!(
        stdout(&out).contains("[default: /run/flatedge/ctl.sock]"),
        "{}",
        stdout(&out)
    );
    assert_eq!(out.status.code(), Some(0));
}

#[test]
fn a_bad_command_line_exits_2_with_the_usage() {
    let dir = TempDir::new();
    let socket = dir.socket();
    let socket = socket.to_str().unwrap();
    for (args, usage) in [
        (
            &["show", "fib", "192.0.2.1"][..],
            "Usage: flatedgectl show fib [OPTIONS] <ADDRESS|summary>",
        ),
        (
            &["neighbor", "2001:db8::1", "bounce"],
            "Usage: flatedgectl neighbor [OPTIONS] <ADDRESS> <ACTION>",
        ),
        (&["frobnicate"], "Usage: flatedgectl [OPTIONS] <COMMAND>"),
        (
            &["show", "everything"],
            "Usage: flatedgectl show [OPTIONS] <COMMAND>",
        ),
    ] {
        let out = flatedgectl(&["--socket", socket], args);
        assert_eq!(stdout(&out), "", "{args:?}");
        assert!(
            stderr(&out).starts_with("error: "),
            "{args:?}: {}",
            stderr(&out)
        );
        assert!(stderr(&out).contains(usage), "{args:?}: {}", stderr(&out));
        assert_eq!(out.status.code(), Some(2), "{args:?}");
    }
}

/// With `--json`, a bad command line still prints one JSON document (an
/// error with code `usage`) besides the usage on stderr; `--help` prints
/// its text.
#[test]
fn a_bad_command_line_with_json_prints_an_error_document() {
    let dir = TempDir::new();
    let socket = dir.socket();
    let socket = socket.to_str().unwrap();
    for args in [
        &["--json", "show", "fib", "192.0.2.1"][..],
        &["frobnicate", "--json"],
    ] {
        let out = flatedgectl(&["--socket", socket], args);
        let doc: serde_json::Value = serde_json::from_str(stdout(&out))
            .unwrap_or_else(|e| panic!("{args:?}: {e}: {:?}", stdout(&out)));
        assert_eq!(doc["type"], "error", "{doc}");
        assert_eq!(doc["code"], "usage", "{doc}");
        assert!(!doc["message"].as_str().unwrap().is_empty(), "{doc}");
        assert!(
            stderr(&out).contains("Usage: flatedgectl"),
            "{}",
            stderr(&out)
        );
        assert_eq!(out.status.code(), Some(2), "{args:?}");
    }
    let out = flatedgectl(&["--socket", socket], &["--json", "--help"]);
    assert!(
        stdout(&out).starts_with("Query and control"),
        "{}",
        stdout(&out)
    );
    assert_eq!(out.status.code(), Some(0));
}
