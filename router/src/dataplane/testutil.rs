//! Frames for the tests, built with `smoltcp::wire` views.

use std::net::Ipv6Addr;

use smoltcp::wire::{
    Icmpv6Message, Icmpv6Packet, IpAddress, IpProtocol, Ipv6Packet, TcpPacket, UdpPacket,
};

use super::ip6_input::{ETH_HLEN, IP6_HLEN};

pub const CLIENT_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0x01];
pub const ROUTER_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0xfe];

pub fn router() -> Ipv6Addr {
    "2001:db8:ffff::1".parse().unwrap()
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ext {
    HopByHop,
    Routing,
    DestOpts,
    /// Shim6 (RFC 5533): an extension header of the uniform format.
    Shim6,
    Fragment {
        offset: u16,
        more: bool,
        id: u32,
    },
}

impl Ext {
    fn proto(&self) -> u8 {
        match self {
            Ext::HopByHop => 0,
            Ext::Routing => 43,
            Ext::DestOpts => 60,
            Ext::Shim6 => 140,
            Ext::Fragment { .. } => 44,
        }
    }

    fn bytes(&self, next: u8) -> [u8; 8] {
        match self {
            // PadN of 4 bytes after the 2-byte header and a Pad1 pair.
            Ext::HopByHop | Ext::DestOpts => [next, 0, 1, 4, 0, 0, 0, 0],
            // A payload extension header (P bit 0) with no options.
            Ext::Shim6 => [next, 0, 0, 0, 0, 0, 0, 0],
            // Type 253 (experimental), segments left 0.
            Ext::Routing => [next, 0, 253, 0, 0, 0, 0, 0],
            Ext::Fragment { offset, more, id } => {
                let o = (offset << 3) | u16::from(*more);
                let [a, b] = o.to_be_bytes();
                let [c, d, e, f] = id.to_be_bytes();
                [next, 0, a, b, c, d, e, f]
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum L4Spec {
    Udp {
        sport: u16,
        dport: u16,
        payload: usize,
    },
    Tcp {
        sport: u16,
        dport: u16,
    },
    Icmp {
        ty: u8,
        code: u8,
    },
    Raw(Vec<u8>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameSpec {
    pub src_mac: [u8; 6],
    pub dst_mac: [u8; 6],
    pub src: Ipv6Addr,
    pub dst: Ipv6Addr,
    pub hop_limit: u8,
    pub flow_label: u32,
    pub traffic_class: u8,
    pub ext: Vec<Ext>,
    pub l4: L4Spec,
}

impl FrameSpec {
    pub fn udp_ports(sport: u16, dport: u16) -> Self {
        FrameSpec {
            src_mac: CLIENT_MAC,
            dst_mac: ROUTER_MAC,
            src: "2001:db8:1::10".parse().unwrap(),
            dst: "2001:db8:100::20".parse().unwrap(),
            hop_limit: 64,
            flow_label: 0,
            traffic_class: 0,
            ext: Vec::new(),
            l4: L4Spec::Udp {
                sport,
                dport,
                payload: 18,
            },
        }
    }

    pub fn udp() -> Self {
        Self::udp_ports(40000, 53)
    }

    pub fn tcp(sport: u16, dport: u16) -> Self {
        FrameSpec {
            l4: L4Spec::Tcp { sport, dport },
            ..Self::udp()
        }
    }

    pub fn l4_len(&self) -> usize {
        match &self.l4 {
            L4Spec::Udp { payload, .. } => 8 + payload,
            L4Spec::Tcp { .. } => 20,
            L4Spec::Icmp { .. } => 8 + 40,
            L4Spec::Raw(b) => b.len(),
        }
    }

    pub fn build(&self) -> Vec<u8> {
        let l4_len = self.l4_len();
        let ip_payload = self.ext.len() * 8 + l4_len;
        let mut f = vec![0u8; ETH_HLEN + IP6_HLEN + ip_payload];
        f[0..6].copy_from_slice(&self.dst_mac);
        f[6..12].copy_from_slice(&self.src_mac);
        f[12..14].copy_from_slice(&[0x86, 0xdd]);
        let l4_proto = match self.l4 {
            L4Spec::Udp { .. } => 17,
            L4Spec::Tcp { .. } => 6,
            L4Spec::Icmp { .. } => 58,
            L4Spec::Raw(_) => 17,
        };
        let first = self.ext.first().map_or(l4_proto, Ext::proto);
        {
            let mut ip = Ipv6Packet::new_unchecked(&mut f[ETH_HLEN..]);
            ip.set_version(6);
            ip.set_traffic_class(self.traffic_class);
            ip.set_flow_label(self.flow_label);
            ip.set_payload_len(ip_payload as u16);
            ip.set_next_header(IpProtocol::from(first));
            ip.set_hop_limit(self.hop_limit);
            ip.set_src_addr(self.src);
            ip.set_dst_addr(self.dst);
        }
        let mut off = ETH_HLEN + IP6_HLEN;
        for (i, e) in self.ext.iter().enumerate() {
            let next = self.ext.get(i + 1).map_or(l4_proto, Ext::proto);
            f[off..off + 8].copy_from_slice(&e.bytes(next));
            off += 8;
        }
        let (s, d) = (IpAddress::Ipv6(self.src), IpAddress::Ipv6(self.dst));
        let l4 = &mut f[off..];
        match &self.l4 {
            L4Spec::Udp {
                sport,
                dport,
                payload,
            } => {
                let mut u = UdpPacket::new_unchecked(l4);
                u.set_src_port(*sport);
                u.set_dst_port(*dport);
                u.set_len((8 + payload) as u16);
                for (i, b) in u.payload_mut().iter_mut().enumerate() {
                    *b = i as u8;
                }
                u.fill_checksum(&s, &d);
            }
            L4Spec::Tcp { sport, dport } => {
                let mut t = TcpPacket::new_unchecked(l4);
                t.set_src_port(*sport);
                t.set_dst_port(*dport);
                t.set_header_len(20);
                t.set_syn(true);
                t.set_window_len(1000);
                t.fill_checksum(&s, &d);
            }
            L4Spec::Icmp { ty, code } => {
                let mut c = Icmpv6Packet::new_unchecked(l4);
                c.set_msg_type(Icmpv6Message::from(*ty));
                c.set_msg_code(*code);
                c.fill_checksum(&self.src, &self.dst);
            }
            L4Spec::Raw(b) => l4.copy_from_slice(b),
        }
        f
    }
}

/// Checks an ICMPv6 error frame `e` built for `orig`: Ethernet addresses
/// swapped, IPv6 from the router to the source, checksum valid, type.
pub fn check_error<'a>(e: &'a [u8], orig: &[u8], msg: Icmpv6Message) -> Icmpv6Packet<&'a [u8]> {
    assert_eq!(&e[0..6], &orig[6..12], "to the neighbour it came from");
    assert_eq!(&e[6..12], &orig[0..6]);
    assert_eq!(&e[12..14], &[0x86, 0xdd]);
    assert!(e.len() - ETH_HLEN <= 1280);
    let ip = Ipv6Packet::new_checked(&e[ETH_HLEN..]).unwrap();
    assert_eq!(ip.version(), 6);
    assert_eq!(ip.next_header(), IpProtocol::Icmpv6);
    assert_eq!(ip.payload_len() as usize, e.len() - ETH_HLEN - IP6_HLEN);
    assert_eq!(ip.src_addr(), router());
    let orig_ip = Ipv6Packet::new_checked(&orig[ETH_HLEN..]).unwrap();
    assert_eq!(ip.dst_addr(), orig_ip.src_addr());
    let icmp = Icmpv6Packet::new_checked(&e[ETH_HLEN + IP6_HLEN..]).unwrap();
    assert!(icmp.verify_checksum(&router(), &orig_ip.src_addr()));
    assert_eq!(icmp.msg_type(), msg);
    icmp
}

/// xorshift64*: reproducible randomness without a dependency.
#[derive(Debug, Clone)]
pub struct XorShift(pub u64);

impl XorShift {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}
