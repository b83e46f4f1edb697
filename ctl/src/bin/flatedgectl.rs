//! `flatedgectl`: query and control a running flatedge over its ctl
//! socket. See the `ctl` crate's documentation for the commands.

use std::io::{self, Write};
use std::process::ExitCode;

use ctl::cli::Cli;
use ctl::{human, ErrorCode, Response};

fn main() -> ExitCode {
    // A bad command line exits 2 with the usage.
    let cli = Cli::try_parse_with_usage(std::env::args_os()).unwrap_or_else(|e| e.exit());
    let reply = match ctl::exchange(&cli.socket, &cli.request(), cli.timeout()) {
        Ok(reply) => reply,
        Err(e) => {
            if cli.json {
                // One JSON document whatever happens, as promised.
                let doc = Response::error(ErrorCode::Unavailable, e.to_string());
                if let Ok(text) = serde_json::to_string(&doc) {
                    let _ = writeln!(io::stdout().lock(), "{text}");
                }
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
