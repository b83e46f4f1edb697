//! Compiles the XDP program `bpf/flatedge_xdp.c` into a BPF object that
//! `src/xdp/bpf.rs` embeds with `include_bytes!`.
//!
//! Needs `clang` (Debian `clang`, see scripts/setup.sh; `CLANG` overrides the
//! binary) and the libbpf headers that libbpf-sys exports as
//! `DEP_BPF_INCLUDE`: that variable reaches only the build script of a crate
//! that depends on libbpf-sys directly, which is why router does.

use std::env;
use std::path::PathBuf;
use std::process::Command;

fn main() {
    let src = "bpf/flatedge_xdp.c";
    println!("cargo:rerun-if-changed={src}");
    println!("cargo:rerun-if-env-changed=CLANG");

    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let obj = out_dir.join("flatedge_xdp.o");
    let bpf_include = env::var("DEP_BPF_INCLUDE")
        .expect("DEP_BPF_INCLUDE not set: router must depend on libbpf-sys directly");
    // <linux/bpf.h> comes from the system's kernel headers (linux-libc-dev),
    // which include <asm/types.h> from the multiarch directory.
    let target = env::var("TARGET").expect("cargo sets TARGET");
    let arch = target.split('-').next().unwrap_or("x86_64");
    let multiarch = format!("/usr/include/{arch}-linux-gnu");
    let clang = env::var("CLANG").unwrap_or_else(|_| "clang".to_owned());

    let status = Command::new(&clang)
        .args(["-target", "bpf", "-O2", "-g", "-Wall", "-Werror"])
        .arg(format!("-I{bpf_include}"))
        .arg(format!("-idirafter{multiarch}"))
        .args(["-c", src, "-o"])
        .arg(&obj)
        .status()
        .unwrap_or_else(|e| {
            panic!("cannot run {clang} (install Debian clang: scripts/setup.sh): {e}")
        });
    assert!(status.success(), "{clang} failed to compile {src}");
}
