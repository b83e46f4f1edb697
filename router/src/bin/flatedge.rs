//! `flatedge --config FILE`: the IPv6 edge router daemon.
//!
//! Reads and checks the configuration (every problem reported at once as
//! `FILE:LINE: KEY: why`), starts the dataplane and the ctl socket, and
//! runs until SIGTERM or SIGINT, then detaches its XDP program. `--check`
//! only checks the configuration.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use clap::Parser;
use router::daemon::Daemon;
use router::Config;

#[derive(Parser, Debug)]
#[command(
    name = "flatedge",
    version,
    about = "flatedge: IPv6 edge router (AF_XDP dataplane)"
)]
struct Cli {
    /// The TOML configuration (see configs/edge.toml).
    #[arg(long, short = 'c', value_name = "FILE")]
    config: PathBuf,
    /// Check the configuration and exit.
    #[arg(long)]
    check: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match Config::from_file(&cli.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            eprintln!(
                "flatedge: {} is not a valid configuration",
                cli.config.display()
            );
            return ExitCode::from(2);
        }
    };
    if cli.check {
        println!("{}: configuration OK", cli.config.display());
        return ExitCode::SUCCESS;
    }
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        if let Err(e) = signal_hook::flag::register(sig, stop.clone()) {
            eprintln!("flatedge: cannot handle signal {sig}: {e}");
            return ExitCode::FAILURE;
        }
    }
    let daemon = match Daemon::start(config) {
        Ok(d) => d.with_config_file(cli.config.clone()),
        Err(e) => {
            eprintln!("flatedge: {e}");
            return ExitCode::FAILURE;
        }
    };
    eprintln!(
        "flatedge: forwarding; ctl socket {}",
        daemon.ctl_socket().display()
    );
    daemon.run(&stop);
    eprintln!("flatedge: stopped");
    ExitCode::SUCCESS
}
