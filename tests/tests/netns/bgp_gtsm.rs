//! GTSM (RFC 5082) on a listen range, against BIRD 2.

use std::time::Duration;

use crate::lab::{node_addr, nodes, speaker_config, Lab, PeerOptions};

const BIRD_SESSION_TIMEOUT: Duration = Duration::from_secs(20);

/// The range has `ttl-security = 1`: a BIRD with `ttl security on`
/// (hop limit 255 both ways) establishes and its route is learned; a
/// BIRD without it (direct eBGP: hop limit 1) has its SYNs dropped by the
/// kernel (counted as `TCPMinTTLDrop`) and never becomes a peer.
#[test]
fn gtsm_session_establishes_and_a_peer_without_it_never_does() {
    let mut lab = Lab::new(2);
    lab.start_speaker(&speaker_config("ttl-security = 1"));
    let before = lab.netstat("TcpExt", "TCPMinTTLDrop");
    lab.start_bird(
        1,
        &PeerOptions {
            routes: vec!["2001:db8:100:1::/64".into()],
            ttl_security: true,
            ..PeerOptions::default()
        },
    );
    lab.start_bird(
        2,
        &PeerOptions {
            routes: vec!["2001:db8:100:2::/64".into()],
            ..PeerOptions::default()
        },
    );

    let (n1, n2) = (node_addr(1), node_addr(2));
    lab.wait_for("the GTSM session", BIRD_SESSION_TIMEOUT, |s| {
        !s.events("up", n1).is_empty() && s.route("2001:db8:100:1::/64") == Some(nodes(&[1]))
    });
    lab.poll(
        "node2's SYN dropped for its hop limit",
        BIRD_SESSION_TIMEOUT,
        || lab.netstat("TcpExt", "TCPMinTTLDrop") > before,
    );
    lab.seen(|s| {
        assert!(s.events("up", n2).is_empty(), "node2 must not establish");
        assert!(s.stats(n2).is_none(), "node2 must not even become a peer");
        assert_eq!(s.route("2001:db8:100:2::/64"), None);
    });
}
