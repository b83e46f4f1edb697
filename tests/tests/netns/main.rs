//! netns integration tests (root): real peers in network namespaces.
//! One test binary, a module per topic; `.config/nextest.toml` runs them
//! one at a time. Each test builds its own [`lab::Lab`] and tears it down
//! even when it fails. Missing tools (gobgpd) fail the test: run
//! `scripts/setup.sh`.

mod lab;

mod bgp_bird;
mod bgp_ecmp;
mod bgp_frr;
mod bgp_graceful_restart;
mod bgp_gtsm;
mod bgp_max_prefix;
mod bgp_md5;
mod bgp_sessions;
mod bgp_uplink;
mod daemon_bgp;
