//! Sessions through a listen range, routes learned and filtered.

use crate::lab::{
    node_addr, nodes, speaker_config, Lab, NodeOptions, ROUTE_TIMEOUT, SESSION_TIMEOUT,
};

/// A Cilium-like gobgpd dials in from the listen range and becomes a
/// dynamic neighbour; its /64 and /128 are learned with its address as
/// next hop, a prefix outside the import list is rejected and counted,
/// and a withdrawal removes the route.
#[test]
fn listen_range_session_learns_routes_and_filters_imports() {
    let mut lab = Lab::new(1);
    lab.start_speaker(&speaker_config(
        r#"import = ["2001:db8:100::/40 le 64", "2001:db8:96::/112 le 128"]"#,
    ));
    lab.start_gobgpd(1, &NodeOptions::default(), false);
    lab.announce(1, "2001:db8:100:1::/64");
    lab.announce(1, "2001:db8:96::10/128");
    lab.announce(1, "2001:db8:200::/64");

    let n1 = node_addr(1);
    lab.wait_for("node1's session", SESSION_TIMEOUT, |s| {
        !s.events("up", n1).is_empty()
    });
    let up = lab.seen(|s| s.events("up", n1)[0].clone());
    assert!(
        up.contains("gr=true") && up.contains("n-bit=true"),
        "graceful restart with the N bit negotiated: {up}"
    );
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

    lab.withdraw(1, "2001:db8:100:1::/64");
    lab.wait_for("the /64 withdrawn", ROUTE_TIMEOUT, |s| {
        s.route("2001:db8:100:1::/64") == Some(vec![])
            && s.stat(n1, "accepted").as_deref() == Some("1")
    });
    lab.seen(|s| assert_eq!(s.route("2001:db8:96::10/128"), Some(nodes(&[1]))));
}
