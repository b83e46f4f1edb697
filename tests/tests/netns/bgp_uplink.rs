//! An uplink neighbour (`[[bgp.neighbor]]`) that listens: BIRD 2 with
//! `passive on`. The speaker dials it, learns its default route through
//! the neighbour's import list, and announces our aggregate through its
//! export list.

use std::time::Duration;

use crate::lab::{node_addr, nodes, Lab, PeerOptions};

const BIRD_SESSION_TIMEOUT: Duration = Duration::from_secs(20);

#[test]
fn the_speaker_dials_an_uplink_imports_its_default_and_exports_the_aggregate() {
    let mut lab = Lab::new(1);
    let uplink = node_addr(1);
    // The uplink listens first: the speaker's first attempt finds it.
    lab.start_bird(
        1,
        &PeerOptions {
            // The default route, and one the import list must refuse.
            routes: vec!["::/0".into(), "2001:db8:abc::/48".into()],
            uplink: true,
            ..PeerOptions::default()
        },
    );
    lab.start_speaker(&format!(
        r#"[router]
asn = 65000
router-id = "192.0.2.1"

[[interface]]
name = "br0"

[bgp]
aggregates = ["2001:db8:100::/40"]

[[bgp.neighbor]]
address = "{uplink}"
peer-asn = 65001
import = ["::/0"]
export = ["2001:db8:100::/40"]
"#
    ));
    lab.wait_for(
        "the uplink session and its default route",
        BIRD_SESSION_TIMEOUT,
        |s| !s.events("up", uplink).is_empty() && s.route("::/0") == Some(nodes(&[1])),
    );
    lab.poll(
        "the aggregate in BIRD's table",
        BIRD_SESSION_TIMEOUT,
        || {
            lab.birdc(1, "show route 2001:db8:100::/40")
                .contains("2001:db8:100::/40")
        },
    );
    lab.seen(|s| {
        assert_eq!(
            s.route("2001:db8:abc::/48"),
            None,
            "outside the import list"
        );
    });
    // Only the aggregate: nothing else of ours reaches the uplink.
    let table = lab.birdc(1, "show route protocol edge");
    let prefixes: Vec<&str> = table
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|w| w.contains('/'))
        .collect();
    assert_eq!(
        prefixes,
        ["2001:db8:100::/40"],
        "BIRD learned more than the aggregate from us:\n{table}"
    );
}
