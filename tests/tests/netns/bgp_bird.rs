//! BIRD 2 as a peer: a session through the listen range, routes learned
//! and filtered, and withdrawn when BIRD disables the protocol; TCP MD5.

use crate::lab::{node_addr, nodes, speaker_config, Lab, PeerOptions, ROUTE_TIMEOUT};
use std::time::Duration;

/// BIRD connects within a second or two (`connect delay time 1`); slack for a
/// loaded machine.
const BIRD_SESSION_TIMEOUT: Duration = Duration::from_secs(20);

/// BIRD (active, AS 65001) connects to the speaker's passive listen
/// range and becomes a dynamic neighbour; its static /64 and /128 are
/// learned with its address as next hop, a prefix outside the import
/// list is rejected and counted, and `birdc disable edge` (a Cease)
/// withdraws both routes.
#[test]
fn bird_session_learns_routes_and_disable_withdraws_them() {
    let mut lab = Lab::new(1);
    lab.start_speaker(&speaker_config(
        r#"import = ["2001:db8:100::/40 le 64", "2001:db8:96::/112 le 128"]"#,
    ));
    lab.start_bird(
        1,
        &PeerOptions {
            routes: vec![
                "2001:db8:100:1::/64".into(),
                "2001:db8:96::10/128".into(),
                "2001:db8:200::/64".into(),
            ],
            password: None,
            ..PeerOptions::default()
        },
    );

    let n1 = node_addr(1);
    lab.wait_for("BIRD's session", BIRD_SESSION_TIMEOUT, |s| {
        !s.events("up", n1).is_empty()
    });
    lab.wait_for("the /64 and the /128", ROUTE_TIMEOUT, |s| {
        s.route("2001:db8:100:1::/64") == Some(nodes(&[1]))
            && s.route("2001:db8:96::10/128") == Some(nodes(&[1]))
    });
    lab.wait_for("the rejected prefix counted", ROUTE_TIMEOUT, |s| {
        s.stat(n1, "accepted").as_deref() == Some("2")
            && s.stat(n1, "rejected")
                .is_some_and(|r| r.contains("not_in_import_list:1"))
    });
    lab.seen(|s| {
        assert_eq!(s.stat(n1, "dynamic").as_deref(), Some("true"));
        assert_eq!(
            s.route("2001:db8:200::/64"),
            None,
            "outside the import list"
        );
    });
    let bird = lab.birdc(1, "show protocols edge");
    assert!(bird.contains("Established"), "BIRD's view: {bird}");

    let mark = lab.mark();
    lab.birdc(1, "disable edge");
    lab.wait_for("both routes withdrawn", ROUTE_TIMEOUT, |s| {
        s.route("2001:db8:100:1::/64") == Some(vec![])
            && s.route("2001:db8:96::10/128") == Some(vec![])
    });
    lab.seen(|s| {
        let down = s.since(mark).events("down", n1);
        assert!(
            down.iter().any(|d| d.contains("notification-received")),
            "BIRD's Cease ends the session: {down:?}"
        );
    });
}

/// The range has a password and so does BIRD's protocol: the session
/// establishes over TCP MD5 and the routes are learned.
#[test]
fn bird_md5_session_establishes() {
    let mut lab = Lab::new(1);
    lab.start_speaker(&speaker_config(r#"password = "flatedge-secret""#));
    lab.start_bird(
        1,
        &PeerOptions {
            routes: vec!["2001:db8:100:1::/64".into(), "2001:db8:96::10/128".into()],
            password: Some("flatedge-secret".into()),
            ..PeerOptions::default()
        },
    );

    let n1 = node_addr(1);
    lab.wait_for(
        "BIRD's MD5 session and its routes",
        BIRD_SESSION_TIMEOUT,
        |s| {
            !s.events("up", n1).is_empty()
                && s.route("2001:db8:100:1::/64") == Some(nodes(&[1]))
                && s.route("2001:db8:96::10/128") == Some(nodes(&[1]))
        },
    );
}
