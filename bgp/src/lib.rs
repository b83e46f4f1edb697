//! flatedge's BGP speaker (RFC 4271 and the extensions Cilium's GoBGP uses).
//!
//! Work in progress: so far only [`wire`], the message codec, exists. The
//! sans-IO session FSM, the tokio driver, the RIBs and the decision process
//! come next and build on it.

pub mod wire;
