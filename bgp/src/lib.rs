//! flatedge's BGP speaker (RFC 4271 and the extensions Cilium's GoBGP uses).
//!
//! Everything but [`driver`] is sans-IO and synchronous; the tokio driver
//! owns the sockets and the sleeps and only moves values between these
//! pieces:
//!
//! - [`wire`]: the message codec (views and validated representations).
//! - [`fsm`]: one peer's session state machine (RFC 4271 section 8):
//!   `Session::handle(Input) -> Vec<Output>`, timers as outputs, collision
//!   resolution, graceful-restart classification of a session's end.
//! - [`rib`]: Adj-RIB-In, the decision process with multipath, change
//!   coalescing into `RibChange`s, max-prefixes, and the graceful restart
//!   helper; its timers are outputs too.
//! - [`policy`]: import allow-lists (`"2001:db8:100::/40 le 64"`),
//!   martians, next-hop sanity and the reasons a route is rejected.
//! - [`export`]: the UPDATEs announcing our aggregates and static routes
//!   to the peers configured to receive them.
//!
//! A driver's loop, per peer: decode bytes with
//! `Session::codec_context()`, feed the message to the `Session`; on
//! `Output::Established` call `Rib::peer_up` and send the `export`
//! UPDATEs; on `Output::Update` call `Rib::apply_update`; on `Output::Down`
//! call `Rib::peer_down` with its `graceful`; turn a `RibOutput::Teardown`
//! into a session input; arm and cancel both kinds of timers; drain
//! `Rib::drain_changes` and hand the changes to the FIB.
//!
//! [`driver`] (feature `driver`, on by default) is that loop on tokio: a
//! `Speaker` with a listener, active connects, collision handling, the
//! timers, TCP MD5 and GTSM, delivering `RibChange`s on a channel.
//!
//! This crate knows nothing of the FIB.

#[cfg(feature = "driver")]
pub mod driver;
pub mod export;
pub mod fsm;
pub mod policy;
pub mod rib;
pub mod wire;
