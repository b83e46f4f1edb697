//! Runs flatedge's BGP speaker alone (no dataplane) from a router config
//! file and prints what happens, one line per event:
//!
//! ```text
//! listening addr=[::]:179
//! state peer=0 addr=2001:db8:1::2 state=Established
//! up peer=0 addr=2001:db8:1::2 remote-id=10.0.0.2 hold=90 gr=true n-bit=true f-bit=false
//! down peer=0 addr=2001:db8:1::2 graceful=true reason=tcp-closed
//! route prefix=2001:db8:100::/64 nexthops=2001:db8:1::2,2001:db8:1::3
//! stats peer=0 addr=2001:db8:1::2 dynamic=true state=Established accepted=2 stale=0 rejected=not_in_import_list:1
//! ```
//!
//! `route` lines carry the ECMP set, best path first; `nexthops=` empty is
//! a withdrawal. `stats` lines come when a peer's counters change (polled
//! every 100 ms). `down` reasons: `tcp-closed`, `hold-timer-expired`,
//! `manual-stop`, `notification-sent` / `notification-received` with
//! `code=` `subcode=` and, for a Hard Reset, `inner=CODE/SUBCODE`.
//!
//! Usage: `bgp-speaker --config FILE` (the netns tests run it under
//! `ip netns exec`); SIGTERM or Ctrl-C stops the sessions with a Cease.
//! The mapping from the router's configuration to the speaker's is the
//! daemon's (`router::daemon::bgp::speaker_config`).

use std::collections::HashMap;
use std::io::Write;
use std::time::Duration;

use anyhow::{bail, Context as _};
use bgp::driver::{Event, Speaker, SpeakerConfig};
use bgp::fsm::DownReason;
use bgp::wire::NotificationRepr;
use router::Config;

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let mut path = None;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--config" => path = args.next(),
            "-h" | "--help" => {
                println!("usage: bgp-speaker --config FILE");
                return Ok(());
            }
            other => bail!("unknown argument {other:?}; usage: bgp-speaker --config FILE"),
        }
    }
    let Some(path) = path else {
        bail!("usage: bgp-speaker --config FILE");
    };
    let config = Config::from_file(&path).map_err(|e| anyhow::anyhow!("{e}"))?;
    let speaker = router::daemon::bgp::speaker_config(&config);
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?
        .block_on(run(speaker))
}

fn notification(n: &NotificationRepr) -> String {
    let mut s = format!("code={} subcode={}", u8::from(n.code), n.subcode);
    if let Some(inner) = n.inner() {
        s.push_str(&format!(
            " inner={}/{}",
            u8::from(inner.code),
            inner.subcode
        ));
    }
    s
}

fn reason(r: &DownReason) -> String {
    match r {
        DownReason::ManualStop => "manual-stop".into(),
        DownReason::NotificationSent(n) => format!("notification-sent {}", notification(n)),
        DownReason::NotificationReceived(n) => {
            format!("notification-received {}", notification(n))
        }
        DownReason::HoldTimerExpired => "hold-timer-expired".into(),
        DownReason::TcpClosed => "tcp-closed".into(),
    }
}

fn print(line: String) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

fn event_line(e: &Event) -> Vec<String> {
    match e {
        Event::State {
            peer,
            address,
            state,
        } => vec![format!(
            "state peer={} addr={address} state={state:?}",
            peer.get()
        )],
        Event::Established {
            peer,
            address,
            negotiated: n,
        } => vec![format!(
            "up peer={} addr={address} remote-id={} hold={} gr={} n-bit={} f-bit={}",
            peer.get(),
            n.remote_id,
            n.hold_time.seconds(),
            n.graceful_restart_helper(),
            n.notification_bit,
            n.ipv6_forwarding_preserved(),
        )],
        Event::Down {
            peer,
            address,
            reason: r,
            graceful,
        } => vec![format!(
            "down peer={} addr={address} graceful={graceful} reason={}",
            peer.get(),
            reason(r)
        )],
        Event::Changes(changes) => changes
            .iter()
            .map(|c| {
                let hops: Vec<String> = c.nexthops.iter().map(|h| h.addr.to_string()).collect();
                format!("route prefix={} nexthops={}", c.prefix, hops.join(","))
            })
            .collect(),
        _ => Vec::new(),
    }
}

async fn run(config: SpeakerConfig) -> anyhow::Result<()> {
    let (speaker, mut events) = Speaker::start(config)
        .await
        .context("starting the BGP speaker")?;
    print(format!("listening addr={}", speaker.local_addr()));
    let mut last: HashMap<u32, String> = HashMap::new();
    let mut poll = tokio::time::interval(Duration::from_millis(100));
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    loop {
        tokio::select! {
            e = events.recv() => match e {
                Some(e) => event_line(&e).into_iter().for_each(print),
                None => break,
            },
            _ = poll.tick() => {
                for p in speaker.peers().await {
                    let rejected: Vec<String> = p
                        .stats
                        .rejected
                        .iter()
                        .filter(|(_, n)| *n > 0)
                        .map(|(r, n)| format!("{}:{n}", r.name()))
                        .collect();
                    let line = format!(
                        "stats peer={} addr={} dynamic={} state={:?} accepted={} stale={} rejected={}",
                        p.id.get(),
                        p.address,
                        p.dynamic,
                        p.state,
                        p.stats.accepted,
                        p.stats.stale,
                        rejected.join(","),
                    );
                    if last.get(&p.id.get()) != Some(&line) {
                        print(line.clone());
                        last.insert(p.id.get(), line);
                    }
                }
            }
            _ = tokio::signal::ctrl_c() => break,
            _ = term.recv() => break,
        }
    }
    speaker.shutdown().await;
    Ok(())
}
