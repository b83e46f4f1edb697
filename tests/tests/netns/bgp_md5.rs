//! TCP MD5 (RFC 2385) on a listen range.

use crate::lab::{node_addr, speaker_config, Lab, NodeOptions, SESSION_TIMEOUT};

/// The range has a password: the node with the same password
/// establishes; the node with a wrong one is dropped by the kernel
/// (counted as an MD5 failure) and never becomes a peer.
#[test]
fn md5_session_establishes_and_a_wrong_password_never_does() {
    let mut lab = Lab::new(2);
    lab.start_speaker(&speaker_config(r#"password = "flatedge-secret""#));
    let before = lab.netstat("TcpExt", "TCPMD5Failure");
    let right = NodeOptions {
        password: Some("flatedge-secret".into()),
    };
    let wrong = NodeOptions {
        password: Some("not-the-secret".into()),
    };
    lab.start_gobgpd(1, &right, false);
    lab.start_gobgpd(2, &wrong, false);
    lab.announce(1, "2001:db8:100:1::/64");
    lab.announce(2, "2001:db8:100:2::/64");

    let (n1, n2) = (node_addr(1), node_addr(2));
    lab.wait_for("the MD5 session", SESSION_TIMEOUT, |s| {
        !s.events("up", n1).is_empty() && s.route("2001:db8:100:1::/64").is_some()
    });
    // Proof that node2 tried: its SYNs fail the signature check.
    lab.poll("node2's SYN rejected by TCP MD5", SESSION_TIMEOUT, || {
        lab.netstat("TcpExt", "TCPMD5Failure") > before
    });
    lab.seen(|s| {
        assert!(s.events("up", n2).is_empty(), "node2 must not establish");
        assert!(s.stats(n2).is_none(), "node2 must not even become a peer");
        assert_eq!(s.route("2001:db8:100:2::/64"), None);
    });
}
