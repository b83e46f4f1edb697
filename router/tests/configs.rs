//! The annotated example configs under `configs/` must stay valid.

use std::path::Path;

use router::Config;

fn load(name: &str) -> Config {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../configs")
        .join(name);
    Config::from_file(&path).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn edge_toml_parses_and_validates() {
    let c = load("edge.toml");
    // It documents every section, so every one of them is present.
    assert!(c.router.worker_cores.is_some());
    assert!(c.interfaces.len() >= 2);
    assert!(c.interfaces.iter().any(|i| i.mtu.is_some()));
    assert!(!c.bgp.listen.is_empty() && !c.bgp.neighbors.is_empty());
    assert!(!c.routes.is_empty());
    assert!(c.metrics.listen.is_some());
}
