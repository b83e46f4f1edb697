//! Multipath: nodes announcing the same service /128 form one ECMP set.

use crate::lab::{nodes, speaker_config, Lab, NodeOptions, ROUTE_TIMEOUT, SESSION_TIMEOUT};

const SERVICE: &str = "2001:db8:96::10/128";

/// Three gobgpd nodes announce one /128: a 3-way ECMP set; one node
/// withdraws it: 2-way. Each node's pod /64 has that node alone.
#[test]
fn three_nodes_form_an_ecmp_set_that_shrinks_on_withdrawal() {
    let mut lab = Lab::new(3);
    lab.start_speaker(&speaker_config(""));
    for i in 1..=3 {
        lab.start_gobgpd(i, &NodeOptions::default(), false);
        lab.announce(i, SERVICE);
        lab.announce(i, &format!("2001:db8:100:{i}::/64"));
    }
    lab.wait_for("a 3-way ECMP set", SESSION_TIMEOUT, |s| {
        s.route(SERVICE) == Some(nodes(&[1, 2, 3]))
    });
    lab.wait_for("each pod /64 from its node", ROUTE_TIMEOUT, |s| {
        (1..=3).all(|i| s.route(&format!("2001:db8:100:{i}::/64")) == Some(nodes(&[i])))
    });

    lab.withdraw(2, SERVICE);
    lab.wait_for("a 2-way ECMP set", ROUTE_TIMEOUT, |s| {
        s.route(SERVICE) == Some(nodes(&[1, 3]))
    });
    lab.withdraw(1, SERVICE);
    lab.wait_for("node3 alone", ROUTE_TIMEOUT, |s| {
        s.route(SERVICE) == Some(nodes(&[3]))
    });
}
