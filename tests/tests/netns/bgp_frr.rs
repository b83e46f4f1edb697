//! FRR (`bgpd` alone, no zebra) as a peer: a session through the listen
//! range, routes learned, withdrawn on a neighbour shutdown and learned
//! again; and TCP MD5.

use crate::lab::{node_addr, nodes, speaker_config, Lab, PeerOptions, EDGE_ADDR, ROUTE_TIMEOUT};
use std::time::Duration;

/// bgpd connects within a few seconds (`timers connect 1`); slack for a
/// loaded machine.
const FRR_SESSION_TIMEOUT: Duration = Duration::from_secs(20);

fn options(password: Option<&str>) -> PeerOptions {
    PeerOptions {
        routes: vec!["2001:db8:100:1::/64".into(), "2001:db8:96::10/128".into()],
        password: password.map(Into::into),
        ..PeerOptions::default()
    }
}

/// FRR's bgpd (active, AS 65001) connects to the speaker's passive
/// listen range; its /64 and /128 (`network` statements) are learned
/// with its address as next hop; `neighbor X shutdown` (a Cease)
/// withdraws them, `no neighbor X shutdown` brings the session and the
/// routes back, and so does `clear bgp *`.
#[test]
fn frr_session_learns_routes_and_shutdown_withdraws_them() {
    let mut lab = Lab::new(1);
    lab.start_speaker(&speaker_config(
        r#"import = ["2001:db8:100::/40 le 64", "2001:db8:96::/112 le 128"]"#,
    ));
    lab.start_frr(1, &options(None));

    let n1 = node_addr(1);
    lab.wait_for("FRR's session", FRR_SESSION_TIMEOUT, |s| {
        !s.events("up", n1).is_empty()
    });
    lab.wait_for("the /64 and the /128", ROUTE_TIMEOUT, |s| {
        s.route("2001:db8:100:1::/64") == Some(nodes(&[1]))
            && s.route("2001:db8:96::10/128") == Some(nodes(&[1]))
            && s.stat(n1, "accepted").as_deref() == Some("2")
    });
    lab.seen(|s| assert_eq!(s.stat(n1, "dynamic").as_deref(), Some("true")));

    let mark = lab.mark();
    let neighbor = EDGE_ADDR;
    lab.vtysh(
        1,
        &[
            "configure terminal",
            "router bgp 65001",
            &format!("neighbor {neighbor} shutdown"),
        ],
    );
    lab.wait_for("both routes withdrawn", ROUTE_TIMEOUT, |s| {
        s.route("2001:db8:100:1::/64") == Some(vec![])
            && s.route("2001:db8:96::10/128") == Some(vec![])
    });
    lab.seen(|s| {
        let down = s.since(mark).events("down", n1);
        assert!(
            down.iter().any(|d| d.contains("notification-received")),
            "FRR's Cease ends the session: {down:?}"
        );
    });

    let mark = lab.mark();
    lab.vtysh(
        1,
        &[
            "configure terminal",
            "router bgp 65001",
            &format!("no neighbor {neighbor} shutdown"),
        ],
    );
    lab.wait_for(
        "the session back with both routes",
        FRR_SESSION_TIMEOUT,
        |s| {
            let s = s.since(mark);
            !s.events("up", n1).is_empty()
                && s.route("2001:db8:100:1::/64") == Some(nodes(&[1]))
                && s.route("2001:db8:96::10/128") == Some(nodes(&[1]))
        },
    );

    // `clear bgp *`: FRR resets the session (a Cease, a Hard Reset when
    // the N bit is negotiated), reconnects and announces again.
    let mark = lab.mark();
    lab.vtysh(1, &["clear bgp *"]);
    lab.wait_for(
        "the session reset and back with both routes",
        FRR_SESSION_TIMEOUT,
        |s| {
            let s = s.since(mark);
            !s.events("down", n1).is_empty()
                && !s.events("up", n1).is_empty()
                && s.route("2001:db8:100:1::/64") == Some(nodes(&[1]))
                && s.route("2001:db8:96::10/128") == Some(nodes(&[1]))
        },
    );
}

/// The range has a password and so does FRR's neighbour: the session
/// establishes over TCP MD5 and the routes are learned.
#[test]
fn frr_md5_session_establishes() {
    let mut lab = Lab::new(1);
    lab.start_speaker(&speaker_config(r#"password = "flatedge-secret""#));
    lab.start_frr(1, &options(Some("flatedge-secret")));

    let n1 = node_addr(1);
    lab.wait_for(
        "FRR's MD5 session and its routes",
        FRR_SESSION_TIMEOUT,
        |s| {
            !s.events("up", n1).is_empty()
                && s.route("2001:db8:100:1::/64") == Some(nodes(&[1]))
                && s.route("2001:db8:96::10/128") == Some(nodes(&[1]))
        },
    );
}
