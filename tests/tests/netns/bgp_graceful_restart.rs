//! Graceful restart helper (RFC 4724, RFC 8538) with a SIGKILLed gobgpd.

use crate::lab::{
    node_addr, nodes, speaker_config, Lab, NodeOptions, ROUTE_TIMEOUT, SESSION_TIMEOUT,
};

const SERVICE: &str = "2001:db8:96::10/128";
const KEPT: &str = "2001:db8:100:1::/64";
const DROPPED: &str = "2001:db8:100:11::/64";

/// node1 and node2 announce a service /128; node1 also two pod /64s.
/// node1's gobgpd is SIGKILLed (a FIN, no NOTIFICATION): its routes stay,
/// stale, and the /128 keeps both next hops. It restarts within its
/// restart time (with the R and F bits) and re-announces the /128 and
/// one /64: at its End-of-RIB the other /64, stale and not re-announced,
/// is purged; nothing else ever changed.
#[test]
fn sigkilled_gobgpd_keeps_stale_routes_and_recovers() {
    let mut lab = Lab::new(2);
    lab.start_speaker(&speaker_config(""));
    let opts = NodeOptions::default();
    lab.start_gobgpd(1, &opts, false);
    lab.start_gobgpd(2, &opts, false);
    for p in [SERVICE, KEPT, DROPPED] {
        lab.announce(1, p);
    }
    lab.announce(2, SERVICE);
    let n1 = node_addr(1);
    lab.wait_for("both sessions and all routes", SESSION_TIMEOUT, |s| {
        s.route(SERVICE) == Some(nodes(&[1, 2]))
            && s.route(KEPT) == Some(nodes(&[1]))
            && s.route(DROPPED) == Some(nodes(&[1]))
    });

    let mark = lab.mark();
    lab.kill_gobgpd(1);
    lab.wait_for(
        "node1's graceful down, 3 routes stale",
        ROUTE_TIMEOUT,
        |s| {
            let s = s.since(mark);
            s.events("down", n1)
                .iter()
                .any(|l| l.contains("graceful=true reason=tcp-closed"))
                && s.stat(n1, "stale").as_deref() == Some("3")
        },
    );
    lab.seen(|s| {
        assert_eq!(
            s.route(SERVICE),
            Some(nodes(&[1, 2])),
            "stale path stays in the ECMP set"
        );
        assert_eq!(s.route(KEPT), Some(nodes(&[1])));
        assert_eq!(s.route(DROPPED), Some(nodes(&[1])));
    });

    // Restart with node1 cut off (carrier down on the bridge side) until
    // its routes are configured, so that its first UPDATEs carry them
    // whatever its connect timing.
    let edge = lab.edge().to_string();
    lab.ip(&edge, "link set v1 down");
    lab.start_gobgpd(1, &opts, true);
    lab.announce(1, SERVICE);
    lab.announce(1, KEPT);
    lab.ip(&edge, "link set v1 up");

    lab.wait_for("node1 back with the F bit", SESSION_TIMEOUT, |s| {
        s.since(mark)
            .events("up", n1)
            .iter()
            .any(|l| l.contains("f-bit=true"))
    });
    lab.wait_for("the stale /64 purged at End-of-RIB", ROUTE_TIMEOUT, |s| {
        s.route(DROPPED) == Some(vec![])
            && s.stat(n1, "stale").as_deref() == Some("0")
            && s.stat(n1, "accepted").as_deref() == Some("2")
    });
    lab.seen(|s| {
        let s = s.since(mark);
        assert!(
            s.route_history(SERVICE).is_empty(),
            "the /128 never changed: {:?}",
            s.route_history(SERVICE)
        );
        assert!(
            s.route_history(KEPT).is_empty(),
            "the kept /64 never changed: {:?}",
            s.route_history(KEPT)
        );
    });
}
