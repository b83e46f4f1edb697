use std::os::unix::net::UnixListener;
use std::sync::{mpsc, Mutex};
use std::thread;

use super::*;
use crate::{ErrorCode, FibSummary};

/// A directory of its own under the system's temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("ctl-socket-{}-{name}", std::process::id()));
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

const SUMMARY: Response = Response::FibSummary(FibSummary {
    routes: 3,
    groups: 1,
    memory_bytes: 4096,
});

/// Serves `doc` as a request document with `serve_one` over a socket
/// pair; returns what the handler was given and the bytes answered.
fn serve(doc: Vec<u8>) -> (Result<Request, String>, String) {
    let (mut client, server) = UnixStream::pair().unwrap();
    let writer = thread::spawn(move || {
        // A refused (too long) request may be cut short: the server stops
        // reading and closes.
        let _ = client
            .write_all(&doc)
            .and_then(|()| client.shutdown(Shutdown::Write));
        let mut answer = String::new();
        client.read_to_string(&mut answer).unwrap();
        answer
    });
    let mut given = None;
    serve_one(server, |req| {
        given = Some(req);
        SUMMARY
    })
    .unwrap();
    (given.unwrap(), writer.join().unwrap())
}

#[test]
fn serve_one_answers_one_compact_document() {
    let (given, answer) = serve(br#"{"command": "show_fib_summary"}"#.to_vec());
    assert_eq!(given, Ok(Request::ShowFibSummary));
    assert_eq!(
        answer,
        "{\"type\":\"fib_summary\",\"routes\":3,\"groups\":1,\"memory_bytes\":4096}\n"
    );
}

#[test]
fn serve_one_passes_bad_requests_as_messages() {
    for (doc, start) in [
        (
            &b"show fib summary"[..],
            "not a ctl request: expected value",
        ),
        (b"", "not a ctl request: EOF while parsing"),
        (
            br#"{"command":"show_all"}"#,
            "not a ctl request: unknown variant `show_all`",
        ),
        (
            b"{\"command\":\"reload\"} {}",
            "not a ctl request: trailing characters",
        ),
        (b"\xff\xfe", "not a ctl request: expected value"),
    ] {
        let (given, _) = serve(doc.to_vec());
        let message = given.unwrap_err();
        assert!(message.starts_with(start), "{doc:?}: {message}");
    }
}

#[test]
fn serve_one_reads_requests_up_to_64_kib() {
    let mut doc = br#"{"command":"reload"}"#.to_vec();
    doc.resize(MAX_REQUEST_BYTES, b' ');
    assert_eq!(serve(doc.clone()).0, Ok(Request::Reload));

    // A whole document is taken as soon as it is whole: what follows
    // (here, whitespace past 64 KiB) is not waited for.
    doc.push(b' ');
    assert_eq!(serve(doc).0, Ok(Request::Reload));
    // A whole document just under the limit, with whitespace after it
    // in the same write: taken, whatever the reads bring with it.
    let mut near = br#"{"command":"reload","pad":""#.to_vec();
    near.resize(MAX_REQUEST_BYTES - 200, b'x');
    near.extend_from_slice(br#""}"#);
    near.extend_from_slice(&[b' '; 400]);
    let (given, _) = serve(near);
    assert!(
        matches!(&given, Err(m) if m.contains("unknown field `pad`")),
        "{given:?}"
    );
    // A document that is itself longer is refused.
    let mut long = br#"{"command":"reload","pad":""#.to_vec();
    long.resize(MAX_REQUEST_BYTES, b'x');
    long.extend_from_slice(br#""}"#);
    assert_eq!(serve(long).0, Err("request longer than 64 KiB".to_string()));

    let (given, answer) = serve(vec![b' '; 1 << 20]);
    assert_eq!(given, Err("request longer than 64 KiB".to_string()));
    assert!(answer.starts_with("{\"type\":\"fib_summary\""), "{answer}");
}

/// Listens on `socket` and hands each of `n` connections to `serve`.
fn listen(
    socket: &Path,
    n: usize,
    serve: impl Fn(UnixStream) + Send + 'static,
) -> thread::JoinHandle<()> {
    let listener = UnixListener::bind(socket).unwrap();
    thread::spawn(move || {
        for stream in listener.incoming().take(n) {
            serve(stream.unwrap());
        }
    })
}

#[test]
fn request_and_serve_one_talk() {
    let dir = TempDir::new("talk");
    let server = listen(&dir.socket(), 2, |stream| {
        serve_one(stream, |req| match req {
            Ok(Request::ShowFibSummary) => SUMMARY,
            other => Response::error(ErrorCode::Unsupported, format!("{other:?}")),
        })
        .unwrap();
    });
    let timeout = Duration::from_secs(10);
    assert_eq!(
        request(&dir.socket(), &Request::ShowFibSummary, timeout).unwrap(),
        SUMMARY
    );
    let reply = exchange(&dir.socket(), &Request::Reload, timeout).unwrap();
    assert_eq!(
        reply.response,
        Response::error(ErrorCode::Unsupported, "Ok(Reload)")
    );
    assert_eq!(
        reply.document,
        "{\"type\":\"error\",\"code\":\"unsupported\",\"message\":\"Ok(Reload)\"}\n"
    );
    server.join().unwrap();
}

#[test]
fn a_missing_socket_says_so() {
    let dir = TempDir::new("missing");
    let err = request(&dir.socket(), &Request::Reload, Duration::from_secs(1)).unwrap_err();
    assert!(matches!(err, ClientError::Connect { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!(
            "cannot connect to {}: No such file or directory; is flatedge running?",
            dir.socket().display()
        )
    );
}

#[test]
fn a_stale_socket_says_so() {
    let dir = TempDir::new("stale");
    drop(UnixListener::bind(dir.socket()).unwrap());
    let err = request(&dir.socket(), &Request::Reload, Duration::from_secs(1)).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "cannot connect to {}: Connection refused; is flatedge running?",
            dir.socket().display()
        )
    );
}

#[test]
fn connect_error_messages() {
    // Tests may run as root, who is not refused: build the error instead.
    let err = ClientError::Connect {
        socket: "/run/flatedge/ctl.sock".into(),
        source: io::Error::from_raw_os_error(13),
    };
    assert_eq!(
        err.to_string(),
        "cannot connect to /run/flatedge/ctl.sock: Permission denied; \
         run flatedgectl as root or as a user allowed to use the socket"
    );
    let err = ClientError::Connect {
        socket: "/run/flatedge/ctl.sock".into(),
        source: io::Error::from_raw_os_error(2),
    };
    assert_eq!(
        err.to_string(),
        "cannot connect to /run/flatedge/ctl.sock: No such file or directory; is flatedge running?"
    );
}

#[test]
fn a_silent_daemon_times_out() {
    let dir = TempDir::new("silent");
    let (done, wait) = mpsc::channel::<()>();
    let wait = Mutex::new(wait);
    let server = listen(&dir.socket(), 1, move |mut stream| {
        let mut doc = Vec::new();
        stream.read_to_end(&mut doc).unwrap();
        // Hold the connection open, unanswered, until the client gave up.
        let _ = wait.lock().unwrap().recv();
    });
    let err = request(
        &dir.socket(),
        &Request::ShowDrops,
        Duration::from_millis(100),
    )
    .unwrap_err();
    done.send(()).unwrap();
    server.join().unwrap();
    assert!(matches!(err, ClientError::Timeout { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!(
            "flatedge did not answer on {} within 0.1 s",
            dir.socket().display()
        )
    );
}

#[test]
fn a_daemon_that_hangs_up_or_babbles_is_an_error() {
    let dir = TempDir::new("babble");
    let server = listen(&dir.socket(), 3, |mut stream| {
        let mut doc = Vec::new();
        stream.read_to_end(&mut doc).unwrap();
        let answer: &[u8] = match &doc[..] {
            br#"{"command":"reload"}"# => b"",
            br#"{"command":"show_drops"}"# => b"drops: none\n",
            _ => br#"{"type":"flow_table","flows":[]}"#,
        };
        stream.write_all(answer).unwrap();
    });
    let timeout = Duration::from_secs(10);
    let socket = dir.socket();

    let err = request(&socket, &Request::Reload, timeout).unwrap_err();
    assert!(matches!(err, ClientError::NoAnswer { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!(
            "flatedge closed the connection on {} without answering (see its log)",
            socket.display()
        )
    );

    let err = request(&socket, &Request::ShowDrops, timeout).unwrap_err();
    assert!(matches!(err, ClientError::BadResponse { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!(
            "the answer from {} is not a ctl response: expected value at line 1 column 1",
            socket.display()
        )
    );

    // A kind of response this client does not know.
    let err = request(&socket, &Request::ShowRuntime, timeout).unwrap_err();
    assert!(matches!(err, ClientError::BadResponse { .. }), "{err:?}");
    server.join().unwrap();
}

/// A client sending its request a byte at a time, each within the read
/// timeout, is cut off once the whole request has taken longer than it.
#[test]
fn serve_one_bounds_the_whole_request() {
    let (mut client, server) = UnixStream::pair().unwrap();
    server
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let trickle = thread::spawn(move || {
        for &b in br#"{"command":"show_drops"}"# {
            if client.write_all(&[b]).is_err() {
                return;
            }
            thread::sleep(Duration::from_millis(100));
        }
    });
    let t0 = Instant::now();
    let mut called = false;
    let r = serve_one(server, |_| {
        called = true;
        SUMMARY
    });
    let took = t0.elapsed();
    let e = r.expect_err("a trickled request was served");
    assert_eq!(e.kind(), io::ErrorKind::TimedOut, "{e}");
    assert!(
        e.to_string().contains("too long to send its request"),
        "{e}"
    );
    assert!(!called, "the handler ran on a partial request");
    // Well under the 2.4 s the trickle takes; the bound is the budget.
    assert!(took < Duration::from_millis(1500), "served for {took:?}");
    trickle.join().unwrap();
}

/// A client that reads its answer a few bytes at a time (each read
/// within the write timeout, so each write makes progress) is given up on
/// once the whole answer has taken longer than the write timeout.
#[test]
fn serve_one_bounds_the_whole_answer() {
    let (mut client, server) = UnixStream::pair().unwrap();
    server
        .set_write_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    client.write_all(br#"{"command":"show_drops"}"#).unwrap();
    client.shutdown(Shutdown::Write).unwrap();
    let reader = thread::spawn(move || {
        let mut buf = [0u8; 4096];
        let mut got = 0;
        while let Ok(n) = client.read(&mut buf) {
            if n == 0 {
                break;
            }
            got += n;
            thread::sleep(Duration::from_millis(20));
        }
        got
    });
    let big = Response::error(ErrorCode::Internal, "x".repeat(4 << 20));
    let t0 = Instant::now();
    let e = serve_one(server, |_| big).expect_err("a slowly read 4 MiB answer was written");
    assert!(e.to_string().contains("too long to read its answer"), "{e}");
    assert!(
        t0.elapsed() < Duration::from_millis(1500),
        "{:?}",
        t0.elapsed()
    );
    let got = reader.join().unwrap();
    assert!(got < 4 << 20, "the whole answer was read: {got}");
}

/// The request reader parses only where a value may end: back at depth 0
/// outside strings (a brace inside a string, or escaped quotes, end
/// nothing), at a control character in a string or a line's end (never
/// valid, or a person typing), and gives up at once on a document that is
/// not an object.
#[test]
fn a_document_is_parsed_only_where_a_value_may_end() {
    let doc = br#" {"a": "} \" ]", "b": [1, {"c": 2}]} "#;
    let mut scan = Scan::default();
    let ends: Vec<usize> = doc
        .iter()
        .enumerate()
        .filter(|&(_, &b)| scan.feed(&[b]))
        .map(|(i, _)| i)
        .collect();
    assert_eq!(ends, [doc.len() - 2], "{}", String::from_utf8_lossy(doc));
    // An unterminated string at a line's end, a line's end outside one.
    for doc in [&b"{\"command\": \"show\n"[..], b"{command: 1\n"] {
        let mut scan = Scan::default();
        let ends: Vec<bool> = doc.iter().map(|&b| scan.feed(&[b])).collect();
        assert_eq!(ends.iter().position(|&e| e), Some(doc.len() - 1), "{doc:?}");
    }
    // Anything but an object: at its first byte, for good.
    for doc in [&b"12345"[..], b"\"ab}c\"", b"  [1]"] {
        let mut scan = Scan::default();
        assert!(doc.iter().any(|&b| scan.feed(&[b])), "{doc:?}");
        assert!(scan.not_object, "{doc:?}");
    }
}
