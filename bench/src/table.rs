//! Route table files: one prefix per line, optionally followed by whitespace
//! and a next-hop id; lines starting with `#` and blank lines are ignored.

use anyhow::{bail, Context, Result};
use std::path::Path;

/// One route of a table file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    /// Network address, host bits zero.
    pub addr: u128,
    pub len: u8,
    pub nexthop: u32,
}

/// Next-hop ids assigned round-robin when a line carries none.
pub const ROUND_ROBIN_NEXTHOPS: u32 = 8;

/// Parses a table; `name` is used in error messages.
pub fn parse(text: &str, name: &str) -> Result<Vec<Route>> {
    let mut routes = Vec::new();
    let mut rr = 0u32;
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut fields = line.split_whitespace();
        let prefix = fields.next().unwrap_or_default();
        let net: ipnet::Ipv6Net = prefix
            .parse()
            .with_context(|| format!("{name}:{}: {prefix:?} is not an IPv6 prefix", i + 1))?;
        let nexthop = match fields.next() {
            Some(nh) => nh
                .parse()
                .with_context(|| format!("{name}:{}: next-hop id {nh:?} is not a number", i + 1))?,
            None => {
                rr = (rr + 1) % ROUND_ROBIN_NEXTHOPS;
                rr
            }
        };
        if let Some(extra) = fields.next() {
            bail!("{name}:{}: unexpected field {extra:?}", i + 1);
        }
        let net = net.trunc();
        routes.push(Route {
            addr: u128::from(net.network()),
            len: net.prefix_len(),
            nexthop,
        });
    }
    Ok(routes)
}

/// Reads and parses a table file.
pub fn load(path: &Path) -> Result<Vec<Route>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading route table {}", path.display()))?;
    parse(&text, &path.display().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ids_comments_and_round_robin() {
        let t = "# comment\n::/0\t29\n\n2001:db8::/32\n2001:db8::1/128 7\n";
        let r = parse(t, "t").unwrap();
        assert_eq!(r.len(), 3);
        assert_eq!((r[0].addr, r[0].len, r[0].nexthop), (0, 0, 29));
        assert_eq!(r[1].len, 32);
        assert_eq!(r[1].nexthop, 1);
        assert_eq!(r[2].addr, 0x2001_0db8_0000_0000_0000_0000_0000_0001);
        assert_eq!(r[2].nexthop, 7);
    }

    #[test]
    fn rejects_bad_lines_with_position() {
        let e = parse("::/0\nnot-a-prefix\n", "t.txt").unwrap_err();
        assert!(e.to_string().contains("t.txt:2"), "{e}");
        assert!(parse("::/0 x\n", "t").is_err());
        assert!(parse("::/0 1 2\n", "t").is_err());
        assert!(parse("::/129\n", "t").is_err());
    }

    #[test]
    fn bundled_tables_parse() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("data");
        let real = load(&dir.join("ipv6-bgp-2021-as199524.tsv")).unwrap();
        assert_eq!(real.len(), 100_899);
        let k8s = load(&dir.join("ipv6-k8s-edge.txt")).unwrap();
        assert_eq!(k8s.iter().filter(|r| r.len == 128).count(), 22_000);
    }
}
