//! NLRI prefixes (RFC 4271 section 4.3, RFC 4760 section 5): a length in
//! bits and the fewest octets that hold it.
//!
//! ```text
//! +---------------------------+
//! |   Length (1 octet)        |
//! +---------------------------+
//! |   Prefix (variable)       |   ceil(Length / 8) octets
//! +---------------------------+
//! ```
//!
//! Host bits: RFC 4271 section 4.3 says "the value of trailing bits is
//! irrelevant", so a prefix with bits set past its length is *accepted and
//! masked*: decoded prefixes are always canonical (host bits zero), and such
//! input does not re-encode byte for byte. A length above 32 (IPv4) or 128
//! (IPv6), or a prefix that runs past its field, is a syntax error.
//!
//! ADD-PATH (RFC 7911) path identifiers are not supported: the codec does
//! not negotiate ADD-PATH, and GoBGP as Cilium runs it does not send it.

use std::net::{Ipv4Addr, Ipv6Addr};

use ipnet::{Ipv4Net, Ipv6Net};

use super::{Reader, Writer};

fn parse_bits<const N: usize>(r: &mut Reader<'_>) -> Option<(u8, [u8; N])> {
    let len = r.u8()?;
    if usize::from(len) > N * 8 {
        return None;
    }
    let octets = r.take(usize::from(len).div_ceil(8))?;
    let mut addr = [0u8; N];
    addr[..octets.len()].copy_from_slice(octets);
    Some((len, addr))
}

/// Parses one IPv6 prefix.
pub(crate) fn parse_ipv6(r: &mut Reader<'_>) -> Option<Ipv6Net> {
    let (len, addr) = parse_bits::<16>(r)?;
    Ipv6Net::new(Ipv6Addr::from(addr), len)
        .ok()
        .map(|n| n.trunc())
}

/// Parses one IPv4 prefix.
pub(crate) fn parse_ipv4(r: &mut Reader<'_>) -> Option<Ipv4Net> {
    let (len, addr) = parse_bits::<4>(r)?;
    Ipv4Net::new(Ipv4Addr::from(addr), len)
        .ok()
        .map(|n| n.trunc())
}

/// Parses a whole field of IPv6 prefixes.
pub(crate) fn parse_ipv6_list(buf: &[u8]) -> Option<Vec<Ipv6Net>> {
    let mut r = Reader::new(buf);
    let mut out = Vec::new();
    while !r.is_empty() {
        out.push(parse_ipv6(&mut r)?);
    }
    Some(out)
}

/// Parses a whole field of IPv4 prefixes.
pub(crate) fn parse_ipv4_list(buf: &[u8]) -> Option<Vec<Ipv4Net>> {
    let mut r = Reader::new(buf);
    let mut out = Vec::new();
    while !r.is_empty() {
        out.push(parse_ipv4(&mut r)?);
    }
    Some(out)
}

/// Encoded length of an IPv6 prefix.
pub(crate) fn ipv6_len(p: &Ipv6Net) -> usize {
    1 + usize::from(p.prefix_len()).div_ceil(8)
}

/// Encoded length of an IPv4 prefix.
pub(crate) fn ipv4_len(p: &Ipv4Net) -> usize {
    1 + usize::from(p.prefix_len()).div_ceil(8)
}

/// Emits an IPv6 prefix; host bits are written as zero.
pub(crate) fn emit_ipv6(w: &mut Writer<'_>, p: &Ipv6Net) {
    let n = ipv6_len(p) - 1;
    w.u8(p.prefix_len());
    w.put(&p.trunc().addr().octets()[..n]);
}

/// Emits an IPv4 prefix; host bits are written as zero.
pub(crate) fn emit_ipv4(w: &mut Writer<'_>, p: &Ipv4Net) {
    let n = ipv4_len(p) - 1;
    w.u8(p.prefix_len());
    w.put(&p.trunc().addr().octets()[..n]);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn emit6(p: &Ipv6Net) -> Vec<u8> {
        let mut buf = vec![0xff; ipv6_len(p)];
        emit_ipv6(&mut Writer::new(&mut buf), p);
        buf
    }

    #[test]
    fn ipv6_every_length_round_trips() {
        let addr: Ipv6Addr = "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff".parse().unwrap();
        for len in 0..=128u8 {
            let p = Ipv6Net::new(addr, len).unwrap().trunc();
            let bytes = emit6(&p);
            assert_eq!(bytes.len(), 1 + usize::from(len).div_ceil(8), "/{len}");
            assert_eq!(parse_ipv6_list(&bytes), Some(vec![p]), "/{len}");
        }
    }

    #[test]
    fn ipv6_vectors() {
        assert_eq!(emit6(&"::/0".parse().unwrap()), [0]);
        assert_eq!(
            emit6(&"2001:db8:100::/64".parse().unwrap()),
            [64, 0x20, 0x01, 0x0d, 0xb8, 0x01, 0x00, 0, 0]
        );
        assert_eq!(
            emit6(&"2001:db8::/33".parse().unwrap()),
            [33, 0x20, 0x01, 0x0d, 0xb8, 0]
        );
    }

    #[test]
    fn host_bits_are_masked() {
        // /33 with the 34th bit and a whole trailing byte of junk.
        let got = parse_ipv6_list(&[33, 0x20, 0x01, 0x0d, 0xb8, 0xff]).unwrap();
        assert_eq!(got, vec!["2001:db8:8000::/33".parse::<Ipv6Net>().unwrap()]);
        let got = parse_ipv4_list(&[23, 10, 1, 255]).unwrap();
        assert_eq!(got, vec!["10.1.254.0/23".parse::<Ipv4Net>().unwrap()]);
    }

    #[test]
    fn reject_length_too_long() {
        assert_eq!(parse_ipv6_list(&[129; 18]), None);
        assert_eq!(parse_ipv4_list(&[33, 1, 2, 3, 4, 5]), None);
    }

    #[test]
    fn reject_truncated() {
        assert_eq!(parse_ipv6_list(&[64, 0x20, 0x01]), None);
        assert_eq!(parse_ipv4_list(&[24, 10, 0]), None);
    }

    #[test]
    fn ipv4_vectors() {
        let p: Ipv4Net = "10.0.0.0/8".parse().unwrap();
        let mut buf = [0xff; 2];
        emit_ipv4(&mut Writer::new(&mut buf), &p);
        assert_eq!(buf, [8, 10]);
        assert_eq!(parse_ipv4_list(&[0, 32, 1, 2, 3, 4]).unwrap().len(), 2);
    }
}
