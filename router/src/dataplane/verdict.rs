//! What a stage decides for one packet.

use fib::NextHopId;

/// The index of a port in the worker's port table (the egress of an
/// adjacency, or the ingress of a batch).
pub type PortIndex = u16;

/// The fate of one packet, decided by the stages in turn.
///
/// A packet starts as [`Verdict::Continue`]; each stage only looks at
/// packets still in `Continue` and may settle them. After
/// [`process_batch`](super::process_batch), no packet is left in `Continue`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Still in the pipeline: the next stage takes it.
    Continue,
    /// Send out of port `egress`: the frame was rewritten for `adjacency`.
    Forward {
        /// The next hop the ECMP selection picked.
        adjacency: NextHopId,
        /// Its egress port.
        egress: PortIndex,
    },
    /// Hand to the kernel. Not used on the AF_XDP path (the XDP program
    /// passes what the kernel must see before we get it), kept for a punt
    /// path (e.g. a TAP) later.
    Punt,
    /// An ICMPv6 error is owed to the source. Once `icmp6_error` has built
    /// it, the frame holds the error, to be sent out of the ingress port.
    IcmpError(IcmpKind),
    /// Dropped, for a counted reason.
    Drop(DropReason),
}

/// The ICMPv6 errors the router sends (RFC 4443).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IcmpKind {
    /// Time Exceeded, code 0: hop limit exceeded in transit.
    TimeExceeded,
    /// Packet Too Big, with the egress MTU.
    PacketTooBig {
        /// The MTU of the egress link.
        mtu: u32,
    },
    /// Destination Unreachable, code 0: no route to destination.
    NoRoute,
    /// Destination Unreachable, code 2: beyond scope of source address
    /// (a link-local source, never forwarded: RFC 4007 section 9, as
    /// Linux answers it).
    BeyondScope,
}

impl IcmpKind {
    /// Number of kinds (the size of per-kind counter arrays).
    pub const COUNT: usize = 4;

    /// Dense index for counter arrays.
    #[inline]
    pub fn index(self) -> usize {
        match self {
            IcmpKind::TimeExceeded => 0,
            IcmpKind::PacketTooBig { .. } => 1,
            IcmpKind::NoRoute => 2,
            IcmpKind::BeyondScope => 3,
        }
    }

    /// snake_case name (for `show drops` / `show runtime`).
    pub fn name_of_index(i: usize) -> &'static str {
        [
            "time_exceeded",
            "packet_too_big",
            "unreachable_no_route",
            "unreachable_beyond_scope",
        ][i]
    }

    /// The drop reason counted when this error is owed but the rate
    /// limiter says no.
    #[inline]
    pub fn rate_limited_reason(self) -> DropReason {
        match self {
            IcmpKind::TimeExceeded => DropReason::HopLimitExceeded,
            IcmpKind::PacketTooBig { .. } => DropReason::MtuExceeded,
            IcmpKind::NoRoute => DropReason::NoRoute,
            IcmpKind::BeyondScope => DropReason::LinkLocalSource,
        }
    }
}

macro_rules! drop_reasons {
    ($($(#[doc = $doc:literal])* $variant:ident => $name:literal,)*) => {
        /// Why a packet was dropped: every reason is its own counter.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[repr(u8)]
        pub enum DropReason {
            $($(#[doc = $doc])* $variant,)*
        }

        impl DropReason {
            /// Every reason, in counter order.
            pub const ALL: &'static [DropReason] = &[$(DropReason::$variant,)*];
            /// Number of reasons (the size of the counter array).
            pub const COUNT: usize = Self::ALL.len();

            /// The counter's name in `show drops` (snake_case).
            pub fn name(self) -> &'static str {
                match self {
                    $(DropReason::$variant => $name,)*
                }
            }

            /// Dense index for counter arrays.
            #[inline]
            pub fn index(self) -> usize {
                self as usize
            }
        }
    };
}

drop_reasons! {
    /// Shorter than an Ethernet header.
    TruncatedEthernet => "truncated_ethernet",
    /// 802.1Q / 802.1ad tagged: VLANs are not supported.
    VlanUnsupported => "vlan_unsupported",
    /// Ethertype other than IPv6 (0x86DD).
    NotIpv6 => "not_ipv6",
    /// Shorter than Ethernet + IPv6 headers.
    TruncatedIpv6 => "truncated_ipv6",
    /// Sent to a link-layer broadcast or multicast address: not for this
    /// router to forward (Linux drops these too; the XDP program passes
    /// IPv6 multicast to the kernel before they get here).
    LinkLayerMulticast => "link_layer_multicast",
    /// Sent to another host's unicast MAC (a frame a switch or bridge
    /// flooded, or one seen in promiscuous mode): not for this router to
    /// forward, or the packet would arrive twice (Linux's `OTHERHOST`).
    OtherHost => "other_host",
    /// The source MAC is a group (broadcast or multicast) address, which
    /// no station sends from: an error in reply would go to the whole
    /// segment.
    GroupSourceMac => "group_source_mac",
    /// IP version field is not 6.
    BadVersion => "bad_version",
    /// The payload length says more bytes than the frame carries.
    PayloadLengthExceedsFrame => "payload_length_exceeds_frame",
    /// Payload length 0 with a hop-by-hop header: a jumbogram (RFC
    /// 2675), longer than any frame a port takes, so malformed here.
    JumboUnsupported => "jumbo_unsupported",
    /// Source address is multicast (ff00::/8).
    MulticastSource => "multicast_source",
    /// Source address is `::`.
    UnspecifiedSource => "unspecified_source",
    /// Source address is `::1`.
    LoopbackSource => "loopback_source",
    /// Source address is IPv4-mapped (::ffff:0:0/96): not forwardable
    /// (RFC 6890's registry, RFC 4942 section 2.2).
    MappedSource => "mapped_source",
    /// Source address is link-local (fe80::/10): never forwarded. Counted
    /// here when the destination is not one to forward either, or when
    /// the Destination Unreachable (beyond scope) owed was rate-limited.
    LinkLocalSource => "link_local_source",
    /// Destination address is link-local (fe80::/10): never forwarded.
    LinkLocalDestination => "link_local_destination",
    /// Destination address is multicast (the XDP program passes these to
    /// the kernel; counted if one gets here).
    MulticastDestination => "multicast_destination",
    /// Destination address is `::`, `::1` or IPv4-mapped
    /// (::ffff:0:0/96).
    BadDestination => "bad_destination",
    /// No route, and the Destination Unreachable was rate-limited.
    NoRoute => "no_route",
    /// The route's next-hop group has no live member.
    NoLiveNexthop => "no_live_nexthop",
    /// The selected next hop has no resolved adjacency.
    NexthopUnresolved => "nexthop_unresolved",
    /// The destination is on a connected subnet and its neighbour is not
    /// resolved yet: the worker hands the address to the control side,
    /// which has the kernel resolve it and installs a host route (VPP's
    /// glean).
    NeighborMiss => "neighbor_miss",
    /// Larger than the egress MTU, and the Packet Too Big was rate-limited.
    MtuExceeded => "mtu_exceeded",
    /// Hop limit <= 1, and the Time Exceeded was rate-limited.
    HopLimitExceeded => "hop_limit_exceeded",
    /// An ICMPv6 error is owed to an ICMPv6 error or a Redirect, or to a
    /// packet whose upper-layer header cannot be found (it may be an
    /// error): never sent (RFC 4443 2.4 e.1, e.2).
    IcmpErrorForIcmpError => "icmp_error_for_icmp_error",
    /// An ICMPv6 error is owed to a multicast packet (destination address,
    /// link-layer destination) or a multicast/unspecified source: never sent
    /// (RFC 4443 2.4 e.3-e.6; Packet Too Big to a multicast destination is
    /// allowed).
    IcmpErrorForMulticast => "icmp_error_for_multicast",
    /// An ICMPv6 error is owed but the ingress port has no router address
    /// to send it from.
    IcmpNoSourceAddress => "icmp_no_source_address",
    /// The frame buffer is too small to hold the ICMPv6 error.
    IcmpNoRoom => "icmp_no_room",
    /// The egress link is down (the kernel refused the port's last
    /// transmit with `ENETDOWN`) or its interface is gone: the worker
    /// drops the frame after the verdict instead of holding it, so a
    /// down port never holds more frames than its tx ring (the UMEM is
    /// shared with the worker's other ports). Counted as Linux counts a
    /// device's `tx_dropped`: the packet was also counted as forwarded.
    EgressDown => "egress_down",
    /// The verdict named a port this worker does not have (a bug: the
    /// adjacencies only name the worker's ports); counted like
    /// `egress_down`.
    NoEgressPort => "no_egress_port",
}
