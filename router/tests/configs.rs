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

/// configs/README.md promises that every file here is loaded.
#[test]
fn every_toml_file_here_parses() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            Config::from_file(&path).unwrap_or_else(|e| panic!("{e}"));
            n += 1;
        }
    }
    assert!(n > 0, "no .toml file in {}", dir.display());
}
