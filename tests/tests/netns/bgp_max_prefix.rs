//! max-prefixes: a breach tears the session down for good.

use crate::lab::{node_addr, speaker_config, Lab, NodeOptions, ROUTE_TIMEOUT, SESSION_TIMEOUT};

/// With `max-prefixes = 2`, a node announcing three prefixes gets Cease /
/// Maximum Number of Prefixes Reached wrapped in a Hard Reset (RFC 8538:
/// the N bit was negotiated), its routes are dropped (not kept stale),
/// the rejection is counted, and the peer is held in Idle (refused for
/// the idle time).
#[test]
fn max_prefix_breach_tears_down_with_a_hard_reset() {
    let mut lab = Lab::new(1);
    lab.start_speaker(&speaker_config(
        "max-prefixes = 2\nmax-prefixes-idle-time = 600",
    ));
    lab.start_gobgpd(1, &NodeOptions::default(), false);
    for i in 1..=3 {
        lab.announce(1, &format!("2001:db8:100:{i}::/64"));
    }
    let n1 = node_addr(1);
    lab.wait_for("the teardown", SESSION_TIMEOUT, |s| {
        !s.events("down", n1).is_empty()
    });
    let down = lab.seen(|s| s.events("down", n1)[0].clone());
    assert!(
        down.contains("graceful=false")
            && down.contains("reason=notification-sent code=6 subcode=9 inner=6/1"),
        "Cease/Hard Reset wrapping Cease/Max Prefixes, routes not kept: {down}"
    );
    lab.wait_for(
        "routes gone, breach counted, peer held",
        ROUTE_TIMEOUT,
        |s| {
            s.stat(n1, "accepted").as_deref() == Some("0")
                && s.stat(n1, "stale").as_deref() == Some("0")
                && s.stat(n1, "state").as_deref() == Some("Idle")
                && s.stat(n1, "rejected")
                    .is_some_and(|r| r.contains("max_prefixes:"))
        },
    );
    // gobgpd dials again 10-15 s after the teardown (its idle hold, then
    // its connect retry): 20 s on, the peer must still be held, its
    // session never up again.
    std::thread::sleep(std::time::Duration::from_secs(20));
    lab.seen(|s| {
        assert_eq!(
            s.events("up", n1).len(),
            1,
            "the session came back within the idle time"
        );
        assert_eq!(s.stat(n1, "state").as_deref(), Some("Idle"));
        for i in 1..=3 {
            let p = format!("2001:db8:100:{i}::/64");
            assert!(
                s.route(&p).is_none_or(|v| v.is_empty()),
                "{p} must not stay in the RIB"
            );
        }
    });
}
