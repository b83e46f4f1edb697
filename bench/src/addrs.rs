//! The address sets every implementation is measured on.

use crate::table::Route;
use rand::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;

/// Seeded, so every run and every implementation sees the same addresses.
pub fn rng(seed: u64) -> Xoshiro256PlusPlus {
    Xoshiro256PlusPlus::seed_from_u64(seed)
}

/// Uniformly random 128-bit addresses (mostly the miss/default path).
pub fn random(n: usize, seed: u64) -> Vec<u128> {
    let mut r = rng(seed);
    (0..n).map(|_| r.gen()).collect()
}

/// A random address inside `route`.
fn inside(r: &mut Xoshiro256PlusPlus, route: &Route) -> u128 {
    let host = if route.len == 0 {
        u128::MAX
    } else if route.len == 128 {
        0
    } else {
        u128::MAX >> route.len
    };
    route.addr | (r.gen::<u128>() & host)
}

/// Random addresses inside prefixes drawn uniformly from the table.
pub fn in_table(routes: &[Route], n: usize, seed: u64) -> Vec<u128> {
    let mut r = rng(seed);
    (0..n)
        .map(|_| {
            let route = &routes[r.gen_range(0..routes.len())];
            inside(&mut r, route)
        })
        .collect()
}

/// Random addresses inside prefixes drawn with a Zipf(s) law over a random
/// ranking of the table (a few prefixes carry most of the traffic).
pub fn zipf(routes: &[Route], n: usize, s: f64, seed: u64) -> Vec<u128> {
    let mut r = rng(seed);
    let mut order: Vec<usize> = (0..routes.len()).collect();
    for i in (1..order.len()).rev() {
        order.swap(i, r.gen_range(0..=i));
    }
    let mut cdf = Vec::with_capacity(routes.len());
    let mut total = 0.0;
    for k in 1..=routes.len() {
        total += 1.0 / (k as f64).powf(s);
        cdf.push(total);
    }
    (0..n)
        .map(|_| {
            let x = r.gen::<f64>() * total;
            let rank = cdf.partition_point(|&c| c < x).min(routes.len() - 1);
            inside(&mut r, &routes[order[rank]])
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_table_addresses_fall_inside_table_prefixes() {
        let routes =
            crate::table::parse("2001:db8::/32 1\n2001:db8:1::1/128 2\n::/0 3\n", "t").unwrap();
        for a in in_table(&routes, 1000, 1)
            .into_iter()
            .chain(zipf(&routes, 1000, 0.9, 2))
        {
            assert!(routes
                .iter()
                .any(|r| a & !(u128::MAX.checked_shr(u32::from(r.len)).unwrap_or(0)) == r.addr));
        }
        assert_eq!(random(10, 7), random(10, 7));
        assert_ne!(random(10, 7), random(10, 8));
    }

    #[test]
    fn zipf_concentrates_on_few_prefixes() {
        let text: String = (0..1000)
            .map(|i| format!("2001:db8:{i:x}::/48\n"))
            .collect();
        let routes = crate::table::parse(&text, "t").unwrap();
        let a = zipf(&routes, 10_000, 0.9, 3);
        let mut counts = std::collections::HashMap::new();
        for x in a {
            *counts.entry(x >> 80).or_insert(0usize) += 1;
        }
        let mut c: Vec<usize> = counts.into_values().collect();
        c.sort_unstable_by(|a, b| b.cmp(a));
        // The top 10 of 1000 prefixes draw far more than 1% of the traffic.
        assert!(c[..10].iter().sum::<usize>() > 1000, "{:?}", &c[..10]);
    }
}
