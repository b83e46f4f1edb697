//! With the `dpdk` feature: compiles csrc/lpm6_shim.c against DPDK 22.11
//! (flags from `pkg-config libdpdk`) and links librte_lpm, librte_eal and
//! their dependencies (shared libraries). Without the feature: nothing.

use std::env;
use std::process::Command;

const INSTALL_HINT: &str = "the `dpdk` feature needs DPDK's development files: \
     apt-get install libdpdk-dev pkg-config";

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    if env::var_os("CARGO_FEATURE_DPDK").is_none() {
        return;
    }
    println!("cargo:rerun-if-changed=csrc/lpm6_shim.c");
    println!("cargo:rerun-if-changed=csrc/lpm6_shim.h");
    println!("cargo:rerun-if-env-changed=PKG_CONFIG");
    println!("cargo:rerun-if-env-changed=PKG_CONFIG_PATH");
    println!("cargo:rerun-if-env-changed=PKG_CONFIG_LIBDIR");
    println!("cargo:rerun-if-env-changed=PKG_CONFIG_SYSROOT_DIR");

    let version = pkg_config(&["--modversion"]);
    let major: u32 = version
        .split('.')
        .next()
        .and_then(|m| m.parse().ok())
        .unwrap_or(0);
    if major < 20 {
        // rte_lpm6's 21-bit next hops and lookup_bulk_func's int32_t
        // signature (used by the shim) date from DPDK 17.05; 22.11 is
        // what the shim is written and tested against.
        panic!("libdpdk {version} is too old (want 22.11); {INSTALL_HINT}");
    }
    let cflags = pkg_config(&["--cflags"]);
    let libs = pkg_config(&["--libs"]);

    let mut build = cc::Build::new();
    build.file("csrc/lpm6_shim.c").include("csrc").opt_level(2);
    // Keep the order: `-include rte_config.h` is two arguments.
    for flag in cflags.split_whitespace() {
        build.flag(flag);
    }
    build.compile("lpm6_shim");

    // After the shim (link order): librte_lpm and librte_eal are what the
    // shim calls; the rest of pkg-config's list (rte_hash, rte_rcu,
    // rte_ring, ... which librte_lpm uses) is harmless, rustc links
    // shared libraries with --as-needed.
    for arg in libs.split_whitespace() {
        if let Some(dir) = arg.strip_prefix("-L") {
            println!("cargo:rustc-link-search=native={dir}");
        } else if let Some(lib) = arg.strip_prefix("-l") {
            println!("cargo:rustc-link-lib={lib}");
        }
    }
}

/// Runs `pkg-config <args> libdpdk` and returns its trimmed stdout.
fn pkg_config(args: &[&str]) -> String {
    let exe = env::var("PKG_CONFIG").unwrap_or_else(|_| "pkg-config".to_string());
    let out = Command::new(&exe)
        .args(args)
        .arg("libdpdk")
        .output()
        .unwrap_or_else(|e| panic!("cannot run `{exe}`: {e}; {INSTALL_HINT}"));
    if !out.status.success() {
        panic!(
            "`{exe} {} libdpdk` failed: {}; {INSTALL_HINT}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    String::from_utf8(out.stdout)
        .expect("pkg-config output is not UTF-8")
        .trim()
        .to_string()
}
