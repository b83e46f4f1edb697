//! Always: compiles bpf/fwd_xdp.c (the XDP drop and sink programs of
//! `bench forward`) with `clang -target bpf` into OUT_DIR/fwd_xdp.o, whose
//! path the crate gets as `BENCH_FWD_XDP_OBJ`.
//!
//! With the `dpdk` feature: compiles csrc/lpm6_shim.c against DPDK 22.11
//! (flags from `pkg-config libdpdk`) and links librte_lpm, librte_eal and
//! their dependencies (shared libraries).

use std::env;
use std::path::PathBuf;
use std::process::Command;

const INSTALL_HINT: &str = "the `dpdk` feature needs DPDK's development files: \
     apt-get install libdpdk-dev pkg-config";

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    build_xdp();
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

/// Compiles the XDP programs of `bench forward` (clang is needed anyway:
/// router, a dependency, builds its own XDP program the same way).
fn build_xdp() {
    let src = "bpf/fwd_xdp.c";
    println!("cargo:rerun-if-changed={src}");
    println!("cargo:rerun-if-env-changed=CLANG");
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let obj = out_dir.join("fwd_xdp.o");
    let target = env::var("TARGET").expect("cargo sets TARGET");
    let arch = target.split('-').next().unwrap_or("x86_64");
    let multiarch = format!("/usr/include/{arch}-linux-gnu");
    let clang = env::var("CLANG").unwrap_or_else(|_| "clang".to_owned());
    let status = Command::new(&clang)
        .args(["-target", "bpf", "-O2", "-Wall", "-Werror"])
        .arg(format!("-idirafter{multiarch}"))
        .args(["-c", src, "-o"])
        .arg(&obj)
        .status()
        .unwrap_or_else(|e| {
            panic!("cannot run {clang} (install Debian clang: scripts/setup.sh): {e}")
        });
    assert!(status.success(), "{clang} failed to compile {src}");
    println!("cargo:rustc-env=BENCH_FWD_XDP_OBJ={}", obj.display());
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
