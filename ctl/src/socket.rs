//! The exchange over the ctl socket, both sides: [`request`] (and
//! [`exchange`], which also keeps the document as received) for clients,
//! [`serve_one`] for the daemon.
//!
//! One exchange per connection on a UNIX stream socket: the client writes
//! one JSON [`Request`] document and shuts down its writing half; the
//! server reads to the end (at most [`MAX_REQUEST_BYTES`]), writes one
//! JSON [`Response`] document and closes. Plain blocking `std` I/O: the
//! daemon serves each connection on a thread of its choosing.

use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::{Request, Response};

/// The largest request document [`serve_one`] reads, bytes. Requests are
/// a few dozen bytes; anything longer than this is not one.
pub const MAX_REQUEST_BYTES: usize = 64 * 1024;

/// How long [`serve_one`] waits on a silent or stalled client, unless the
/// caller set its own timeouts on the stream.
pub const SERVE_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a [`request`] got no [`Response`].
///
/// The messages are sentences for the user of `flatedgectl`: they name
/// the socket and suggest the likely cause.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The socket could not be connected to: missing (the daemon is not
    /// running or uses another path), refused (a stale socket file), or
    /// not permitted.
    #[error("cannot connect to {}: {}{}", socket.display(), os_message(source), connect_hint(source))]
    Connect {
        /// The socket's path.
        socket: PathBuf,
        /// What `connect(2)` said.
        #[source]
        source: io::Error,
    },
    /// The daemon did not take the request or answer it in time.
    #[error("flatedge did not answer on {} within {}", socket.display(), seconds(*timeout))]
    Timeout {
        /// The socket's path.
        socket: PathBuf,
        /// The time allowed for the whole exchange.
        timeout: Duration,
    },
    /// Sending the request or reading the answer failed.
    #[error("lost the connection to {}: {}", socket.display(), os_message(source))]
    Io {
        /// The socket's path.
        socket: PathBuf,
        /// The failure.
        #[source]
        source: io::Error,
    },
    /// The daemon closed the connection without answering.
    #[error("flatedge closed the connection on {} without answering (see its log)", socket.display())]
    NoAnswer {
        /// The socket's path.
        socket: PathBuf,
    },
    /// The answer is not a [`Response`] document (not JSON, not UTF-8, or
    /// a kind of response this client does not know).
    #[error("the answer from {} is not a ctl response: {source}", socket.display())]
    BadResponse {
        /// The socket's path.
        socket: PathBuf,
        /// What the JSON parser said.
        #[source]
        source: serde_json::Error,
    },
}

/// A [`Response`] together with the document it was parsed from.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    /// The parsed response.
    pub response: Response,
    /// The response document exactly as the daemon sent it.
    pub document: String,
}

/// Sends `req` to the daemon listening on `socket` and returns its answer.
///
/// `timeout` bounds the whole exchange once connected (writing the
/// request, waiting for and reading the answer). An error response from
/// the daemon is an `Ok(Response::Error(..))`: the exchange worked.
pub fn request(socket: &Path, req: &Request, timeout: Duration) -> Result<Response, ClientError> {
    exchange(socket, req, timeout).map(|reply| reply.response)
}

/// Like [`request`], and keeps the response document as received (what
/// `flatedgectl --json` prints).
pub fn exchange(socket: &Path, req: &Request, timeout: Duration) -> Result<Reply, ClientError> {
    let deadline = Instant::now() + timeout;
    let timed_out = || ClientError::Timeout {
        socket: socket.to_path_buf(),
        timeout,
    };
    let failed = |e: io::Error| {
        if is_timeout(&e) {
            timed_out()
        } else {
            ClientError::Io {
                socket: socket.to_path_buf(),
                source: e,
            }
        }
    };

    let mut stream = UnixStream::connect(socket).map_err(|e| ClientError::Connect {
        socket: socket.to_path_buf(),
        source: e,
    })?;

    let doc = serde_json::to_vec(req).expect("a Request always serialises");
    let left = time_left(deadline).ok_or_else(timed_out)?;
    stream.set_write_timeout(Some(left)).map_err(failed)?;
    // A daemon that refuses the request (too long) may close before taking
    // all of it; it may still have answered, so read before reporting a
    // failed write.
    let sent = stream
        .write_all(&doc)
        .and_then(|()| stream.shutdown(Shutdown::Write));
    if let Err(e) = &sent {
        if is_timeout(e) {
            return Err(timed_out());
        }
    }

    let mut answer = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        let left = time_left(deadline).ok_or_else(timed_out)?;
        stream.set_read_timeout(Some(left)).map_err(failed)?;
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) if answer.is_empty() && sent.is_err() => break,
            // A daemon that answered without reading the request (see
            // [`answer_unread`]) resets the connection after the answer.
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset && !answer.is_empty() => {
                return parse_reply(&answer).map_err(|_| failed(e));
            }
            Err(e) => return Err(failed(e)),
        }
    }
    if answer.iter().all(u8::is_ascii_whitespace) {
        return Err(match sent {
            Err(e) => failed(e),
            Ok(()) => ClientError::NoAnswer {
                socket: socket.to_path_buf(),
            },
        });
    }
    parse_reply(&answer).map_err(|e| ClientError::BadResponse {
        socket: socket.to_path_buf(),
        source: e,
    })
}

/// The [`Reply`] in an answer document.
fn parse_reply(answer: &[u8]) -> Result<Reply, serde_json::Error> {
    let response: Response = serde_json::from_slice(answer)?;
    // serde_json accepts UTF-8 only: nothing is replaced.
    let document = String::from_utf8_lossy(answer).into_owned();
    Ok(Reply { response, document })
}

/// Serves one connection of the ctl socket: reads the request document to
/// the end, parses it, asks `handler` for the response and writes it.
///
/// `handler` gets `Err(message)` when the request is not a valid
/// [`Request`] (not JSON, unknown command, longer than
/// [`MAX_REQUEST_BYTES`]); it should answer
/// `Response::error(ErrorCode::BadRequest, message)`. The response is
/// written as one compact JSON document and a newline, then the connection
/// is closed.
///
/// The stream's read timeout (if the caller set none, [`SERVE_TIMEOUT`])
/// bounds the whole request, and its write timeout the whole response: a
/// client that sends or reads a byte at a time cannot hold the connection
/// longer. Errors are I/O errors of this connection only (the client went
/// away or stalled); the daemon logs them and goes on serving.
pub fn serve_one(
    mut stream: UnixStream,
    handler: impl FnOnce(Result<Request, String>) -> Response,
) -> io::Result<()> {
    let read_budget = stream.read_timeout()?.unwrap_or(SERVE_TIMEOUT);
    let write_budget = stream.write_timeout()?.unwrap_or(SERVE_TIMEOUT);

    let mut doc = Vec::new();
    let (eof, doc_len) = read_request(
        &mut stream,
        &mut doc,
        MAX_REQUEST_BYTES + 1,
        Instant::now() + read_budget,
    )?;
    // The document's own length: what a read brought after it does not
    // count.
    let req = if doc_len > MAX_REQUEST_BYTES {
        Err(format!(
            "request longer than {} KiB",
            MAX_REQUEST_BYTES / 1024
        ))
    } else {
        Request::from_json(&doc)
    };

    write_response(&mut stream, &handler(req), Instant::now() + write_budget)?;
    if !eof {
        // Closing a UNIX socket with unread input resets the connection,
        // and the client would lose the answer: read the rest first (up
        // to 16 MiB more, within the read budget again), keeping none.
        // (A client that keeps its writing half open gets our EOF now.)
        stream.shutdown(std::net::Shutdown::Write)?;
        let _ = read_within(
            &mut stream,
            &mut io::sink(),
            16 << 20,
            Instant::now() + read_budget,
        );
    }
    Ok(())
    // Dropping the stream closes the connection: the client reads EOF.
}

/// Answers a connection with `response` without reading its request: for
/// a server that cannot serve it (too many clients at once), instead of
/// closing on it. Writes within `timeout`, then takes whatever of the
/// request has arrived without waiting for more. The client
/// ([`exchange`]) reads the answer even if its own write failed, and
/// even if the connection is reset after the answer (closing with an
/// unread request does that).
pub fn answer_unread(stream: UnixStream, response: &Response, timeout: Duration) -> io::Result<()> {
    let mut stream = stream;
    stream.set_nonblocking(false)?;
    write_response(&mut stream, response, Instant::now() + timeout)?;
    stream.shutdown(Shutdown::Write)?;
    stream.set_nonblocking(true)?;
    let mut buf = [0u8; 4096];
    for _ in 0..(MAX_REQUEST_BYTES / buf.len()) {
        match stream.read(&mut buf) {
            Ok(n) if n > 0 => {}
            _ => break,
        }
    }
    Ok(())
}

/// Writes `response` as one compact JSON document and a newline, before
/// `deadline`.
fn write_response(
    stream: &mut UnixStream,
    response: &Response,
    deadline: Instant,
) -> io::Result<()> {
    let mut out = serde_json::to_vec(response).map_err(io::Error::other)?;
    out.push(b'\n');
    write_within(stream, &out, deadline)
}

/// The most one write call hands the socket (see [`write_within`]).
const WRITE_CHUNK: usize = 16 * 1024;

/// A stream whose write timeout can be set (UNIX and TCP sockets).
pub trait TimedWrite: Write {
    /// `set_write_timeout` of the socket.
    fn set_write_timeout(&self, timeout: Option<Duration>) -> io::Result<()>;
}

impl TimedWrite for UnixStream {
    fn set_write_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        UnixStream::set_write_timeout(self, timeout)
    }
}

impl TimedWrite for std::net::TcpStream {
    fn set_write_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        std::net::TcpStream::set_write_timeout(self, timeout)
    }
}

/// Writes all of `buf` to `stream` before `deadline`, else fails with
/// `TimedOut` ("the client took too long to read its answer"): a client
/// reading a little at a time cannot hold a server's thread longer.
pub fn write_within(stream: &mut impl TimedWrite, buf: &[u8], deadline: Instant) -> io::Result<()> {
    let mut sent = buf;
    while !sent.is_empty() {
        let left = time_left(deadline).ok_or_else(|| stalled("read its answer"))?;
        stream.set_write_timeout(Some(left))?;
        // A UNIX socket's timeout bounds each wait for room, not a whole
        // write: a reader freeing a little at a time keeps one long write
        // going. Short writes keep the deadline checked between them.
        match stream.write(&sent[..sent.len().min(WRITE_CHUNK)]) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => sent = &sent[n..],
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if is_timeout(&e) => return Err(stalled("read its answer")),
            Err(e) => return Err(e),
        }
    }
    stream.flush()
}

/// Reads a request from `stream` into `doc` until EOF, `max` bytes, or a
/// whole JSON value (or one that cannot become valid): a client that
/// sends its document and waits for the answer without shutting down
/// its writing half (`nc -U` without `-N`) is answered too. All before
/// `deadline`. Returns whether the client's EOF was read, and the
/// document's length (up to the end of its value when it is whole, else
/// all that was read).
fn read_request(
    stream: &mut UnixStream,
    doc: &mut Vec<u8>,
    max: usize,
    deadline: Instant,
) -> io::Result<(bool, usize)> {
    let mut end = None;
    let mut scan = Scan::default();
    let eof = read_chunks(stream, max, deadline, |chunk| {
        doc.extend_from_slice(chunk);
        // Parsed only when a value may have ended: parsing the whole
        // document again at every chunk made a client trickling 64 KiB a
        // byte at a time cost a few billion bytes parsed.
        if !scan.feed(chunk) {
            return Ok(false);
        }
        if scan.not_object {
            // Never a request: answered at once (parsing says why).
            end = Some(doc.len());
            return Ok(true);
        }
        let mut values =
            serde_json::Deserializer::from_slice(doc).into_iter::<serde::de::IgnoredAny>();
        end = match values.next() {
            // Only whitespace so far, or a value cut short.
            None => None,
            Some(Err(e)) if e.is_eof() => None,
            // Whole: its end.
            Some(Ok(_)) => Some(values.byte_offset()),
            // Never valid: parsing says why.
            Some(Err(_)) => Some(doc.len()),
        };
        Ok(end.is_some())
    })?;
    Ok((eof, end.unwrap_or(doc.len())))
}

/// Follows a JSON document's nesting as it arrives, to tell when a value
/// may have ended or can no longer become valid: back at depth 0 outside
/// strings, a control character in a string, a line's end (a person
/// typing into `nc -U`), or anything but an object at the start (never a
/// request).
#[derive(Debug, Default)]
struct Scan {
    depth: usize,
    started: bool,
    /// The document does not start with an object.
    not_object: bool,
    in_string: bool,
    escaped: bool,
}

impl Scan {
    /// Takes `chunk`; whether the document may hold a whole value now.
    fn feed(&mut self, chunk: &[u8]) -> bool {
        let mut maybe = false;
        for &b in chunk {
            if self.in_string {
                match (self.escaped, b) {
                    (true, _) => self.escaped = false,
                    (false, b'\\') => self.escaped = true,
                    (false, b'"') => self.in_string = false,
                    // Not allowed in a JSON string: the parse says so.
                    (false, c) if c < 0x20 => maybe = true,
                    _ => {}
                }
                continue;
            }
            let space = matches!(b, b' ' | b'\t' | b'\r' | b'\n');
            if !self.started && !space && b != b'{' {
                self.not_object = true;
                return true;
            }
            match b {
                b'\n' => maybe |= self.started,
                _ if space => {}
                b'{' | b'[' => {
                    self.started = true;
                    self.depth += 1;
                }
                b'}' | b']' => {
                    self.depth = self.depth.saturating_sub(1);
                    maybe |= self.depth == 0;
                }
                b'"' => self.in_string = true,
                _ => {}
            }
        }
        maybe
    }
}

/// Reads from `stream` into `out` until EOF or `max` bytes, all before
/// `deadline`.
fn read_within(
    stream: &mut UnixStream,
    out: &mut impl Write,
    max: usize,
    deadline: Instant,
) -> io::Result<()> {
    read_chunks(stream, max, deadline, |chunk| {
        out.write_all(chunk)?;
        Ok(false)
    })
    .map(|_| ())
}

/// Reads `stream` a chunk at a time, handing each to `take`, until EOF,
/// `max` bytes, or `take` says it has enough, all before `deadline`;
/// returns whether EOF was read.
fn read_chunks(
    stream: &mut UnixStream,
    max: usize,
    deadline: Instant,
    mut take: impl FnMut(&[u8]) -> io::Result<bool>,
) -> io::Result<bool> {
    let mut chunk = [0u8; 4096];
    let mut got = 0;
    while got < max {
        let left = time_left(deadline).ok_or_else(|| stalled("send its request"))?;
        stream.set_read_timeout(Some(left))?;
        let want = chunk.len().min(max - got);
        match stream.read(&mut chunk[..want]) {
            Ok(0) => return Ok(true),
            Ok(n) => {
                got += n;
                if take(&chunk[..n])? {
                    return Ok(false);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if is_timeout(&e) => return Err(stalled("send its request")),
            Err(e) => return Err(e),
        }
    }
    Ok(false)
}

fn stalled(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::TimedOut,
        format!("the client took too long to {what}"),
    )
}

fn time_left(deadline: Instant) -> Option<Duration> {
    let left = deadline.saturating_duration_since(Instant::now());
    (!left.is_zero()).then_some(left)
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// An OS error as `strerror` says it, without std's " (os error N)".
fn os_message(e: &io::Error) -> String {
    let text = e.to_string();
    match e.raw_os_error() {
        Some(code) => text
            .strip_suffix(&format!(" (os error {code})"))
            .map(str::to_string)
            .unwrap_or(text),
        None => text,
    }
}

fn connect_hint(e: &io::Error) -> &'static str {
    match e.kind() {
        io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused => "; is flatedge running?",
        io::ErrorKind::PermissionDenied => {
            "; run flatedgectl as root or as a user allowed to use the socket"
        }
        _ => "",
    }
}

fn seconds(d: Duration) -> String {
    format!("{} s", d.as_secs_f64())
}

#[cfg(test)]
mod tests;
