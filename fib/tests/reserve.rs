//! The store's address space refused (a limit on address space, or strict
//! overcommit accounting): the FIB comes up smaller or says why, never
//! panics. Its own test binary, since it limits the whole process's
//! address space.

use fib::{Fib, FibError, NextHop, Prefix};

/// Bytes of address space the process maps now.
fn mapped() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmSize:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmSize in /proc/self/status");
    kb * 1024
}

#[allow(unsafe_code)]
fn limit_address_space(bytes: u64) {
    let lim = libc::rlimit {
        rlim_cur: bytes,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: setrlimit reads the struct we pass; it changes only limits.
    let r = unsafe { libc::setrlimit(libc::RLIMIT_AS, &lim) };
    assert_eq!(r, 0, "setrlimit: {}", std::io::Error::last_os_error());
}

#[test]
fn a_refused_reservation_shrinks_the_store_or_is_an_error() {
    let full = Fib::new().capacity();
    assert_eq!(full.0, fib::MAX_NODES);
    // Room for about 400 MiB more: the full store (1.25 GiB) is refused.
    limit_address_space(mapped() + (400 << 20));
    let mut small = Fib::try_new().expect("a smaller store fits");
    let (nodes, leaves) = small.capacity();
    assert!(nodes < full.0 && leaves < full.1, "{nodes} {leaves}");
    assert!(nodes >= full.0 >> 6, "shrank too far: {nodes}");
    // It works as any FIB.
    let p: Prefix = "2001:db8::/32".parse().unwrap();
    small.insert(p, &[NextHop::new(7)]).unwrap();
    small.publish();
    let r = small.reader();
    let s = r.load();
    let g = s.lookup(0x2001_0db8_u128 << 96).expect("routed");
    assert_eq!(s.group(g).unwrap().members[0].id.0, 7);
    drop(s);
    // No room at all: an error that says what failed, no panic.
    limit_address_space(mapped() + (1 << 20));
    match Fib::try_new() {
        Err(e @ FibError::Reserve { .. }) => {
            let msg = e.to_string();
            assert!(msg.contains("address space"), "{msg}");
        }
        Err(e) => panic!("unexpected error {e}"),
        Ok(f) => panic!("a FIB with {:?} fit in 1 MiB", f.capacity()),
    }
}
