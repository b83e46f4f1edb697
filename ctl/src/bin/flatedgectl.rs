//! `flatedgectl`: query and control a running flatedge over its ctl
//! socket. See the `ctl` crate's documentation for the commands.

use std::io::{self, Write};
use std::process::ExitCode;

use ctl::cli::Cli;
use ctl::{human, ErrorCode, Response};

/// With `--json`, one JSON document whatever happens, as promised: an
/// error of flatedgectl's own.
fn json_error(code: ErrorCode, message: String) {
    let doc = Response::error(code, message);
    if let Ok(text) = serde_json::to_string(&doc) {
        let _ = writeln!(io::stdout().lock(), "{text}");
    }
}

fn main() -> ExitCode {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    // A bad command line exits 2 with the usage (on stderr); with
    // `--json` stdout still gets an error document (`--help` and
    // `--version` print their text as asked).
    let cli = match Cli::try_parse_with_usage(&args) {
        Ok(cli) => cli,
        Err(e) => {
            if e.use_stderr() && args.iter().skip(1).any(|a| a == "--json") {
                let text = e.render().to_string();
                let first = text.lines().next().unwrap_or_default();
                let message = first.strip_prefix("error: ").unwrap_or(first);
                json_error(ErrorCode::Usage, message.to_string());
            }
            e.exit()
        }
    };
    let reply = match ctl::exchange(&cli.socket, &cli.request(), cli.timeout()) {
        Ok(reply) => reply,
        Err(e) => {
            if cli.json {
                json_error(ErrorCode::Unavailable, e.to_string());
            }
            eprintln!("flatedgectl: {e}");
            return ExitCode::from(1);
        }
    };
    let out = if cli.json {
        format!("{}\n", reply.document.trim_end())
    } else if let Response::Error(_) = reply.response {
        String::new()
    } else {
        human::render(&reply.response)
    };
    if let Err(e) = io::stdout().lock().write_all(out.as_bytes()) {
        // `flatedgectl ... | head` is not a failure.
        if e.kind() != io::ErrorKind::BrokenPipe {
            eprintln!("flatedgectl: cannot write the answer: {e}");
            return ExitCode::from(1);
        }
    }
    if let Response::Error(e) = &reply.response {
        eprintln!("flatedgectl: {}", e.message);
        return ExitCode::from(1);
    }
    ExitCode::SUCCESS
}
