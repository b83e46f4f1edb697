//! The BPF loader: loads flatedge's XDP program (`bpf/flatedge_xdp.c`,
//! compiled by `build.rs` and embedded here), attaches it to ports in
//! native (driver) mode, and keeps its maps: the router's own addresses,
//! the ifindex -> port slot table and the XSKMAP.
//!
//! A program left attached by a killed flatedge is recognised by its name
//! and replaced; any other XDP program on the interface is an error (we do
//! not take an interface away from another tool). Whether a flatedge
//! program is stale is told by a lock: a loader holds an exclusive
//! `flock` on `/run/lock/flatedge/xdp-NETNS-IFINDEX.lock` for every interface
//! it attached to, which the kernel releases when the process dies, so a
//! second flatedge started beside a running one fails instead of taking
//! its interfaces (and detaching them on its way out). Every interface this
//! loader attached to is detached when [`XdpProgram`] drops, and only if
//! our program is still the one attached.
#![allow(unsafe_code)]

use std::ffi::{c_int, c_void, CStr};
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, Write};
use std::net::Ipv6Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::ptr::NonNull;

use libbpf_sys as sys;

use super::XdpError;

/// The BPF object built from `bpf/flatedge_xdp.c`.
static OBJECT: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/flatedge_xdp.o"));

/// The program's name: how a stale flatedge program is recognised (the
/// kernel keeps the first 15 bytes of it).
pub const PROG_NAME: &str = "flatedge_xdp";
/// Port slots the XSKMAP has room for (`FLATEDGE_MAX_PORTS` in the C).
pub const MAX_PORTS: u32 = 64;
/// Queues per port the XSKMAP has room for (`FLATEDGE_MAX_QUEUES` in the C).
pub const MAX_QUEUES: u32 = 64;

const MAP_XSKS: &CStr = c"flatedge_xsks";
const MAP_PORTS: &CStr = c"flatedge_ports";
const MAP_OWN: &CStr = c"flatedge_own";
const MAP_NO_SOCKET: &CStr = c"flatedge_no_socket";
const PROG_NAME_C: &CStr = c"flatedge_xdp";

/// The attach mode: native (driver) XDP, which veth supports.
const ATTACH_FLAGS: u32 = sys::XDP_FLAGS_DRV_MODE;

/// The loaded program and its maps, attached to zero or more interfaces.
#[derive(Debug)]
pub struct XdpProgram {
    obj: NonNull<sys::bpf_object>,
    prog_fd: RawFd,
    xsks_fd: RawFd,
    ports_fd: RawFd,
    own_fd: RawFd,
    no_socket_fd: RawFd,
    /// Each interface attached to, with its lock (released after the
    /// detach).
    attached: Vec<(u32, File)>,
    /// Interfaces whose VLAN receive offload `attach` turned off, by
    /// ifindex and name: detaching turns it back on.
    vlan_restore: Vec<(u32, String)>,
}

// SAFETY: the bpf_object is only touched through &mut self or in Drop;
// libbpf keeps no thread-local state for it.
unsafe impl Send for XdpProgram {}

fn last_os_error(what: &'static str) -> XdpError {
    XdpError::Bpf {
        what,
        source: io::Error::last_os_error(),
    }
}

/// libbpf returns `-errno` (and sets errno).
fn check(ret: c_int, what: &'static str) -> Result<(), XdpError> {
    if ret < 0 {
        Err(XdpError::Bpf {
            what,
            source: io::Error::from_raw_os_error(-ret),
        })
    } else {
        Ok(())
    }
}

/// What [`XdpProgram::attach`] did with the interface's VLAN receive
/// offload (see [`super::offload`]: with it on, a tagged frame reaches
/// the program untagged and would be routed past its VLAN).
#[derive(Debug)]
pub enum VlanOffload {
    /// It was off already.
    WasOff,
    /// It was on; it is off now, and goes back on at detach.
    TurnedOff,
    /// It is on and the driver refused to turn it off: tagged frames
    /// arrive untagged.
    StaysOn(io::Error),
    /// It could not be read (the driver has no ethtool flags).
    Unknown(io::Error),
}

impl XdpProgram {
    /// Loads the embedded program and creates its maps (not attached yet).
    pub fn load() -> Result<Self, XdpError> {
        let opts = sys::bpf_object_open_opts {
            sz: size_of::<sys::bpf_object_open_opts>() as sys::size_t,
            object_name: PROG_NAME_C.as_ptr(),
            // SAFETY: bpf_object_open_opts is plain old data; all-zero is its
            // documented "unset" value.
            ..unsafe { std::mem::zeroed() }
        };
        // SAFETY: OBJECT is a static buffer that outlives the call (libbpf
        // copies what it keeps); opts is a valid, sized options struct.
        let obj = unsafe {
            sys::bpf_object__open_mem(
                OBJECT.as_ptr().cast::<c_void>(),
                OBJECT.len() as sys::size_t,
                &opts,
            )
        };
        let obj = NonNull::new(obj).ok_or_else(|| last_os_error("open the BPF object"))?;
        let mut this = XdpProgram {
            obj,
            prog_fd: -1,
            xsks_fd: -1,
            ports_fd: -1,
            own_fd: -1,
            no_socket_fd: -1,
            attached: Vec::new(),
            vlan_restore: Vec::new(),
        };
        // SAFETY: obj is a valid, opened bpf_object owned by `this`.
        let ret = unsafe { sys::bpf_object__load(this.obj.as_ptr()) };
        check(ret, "load the XDP program (verifier)")?;
        // SAFETY: obj is loaded; the name is a NUL-terminated string.
        let prog = unsafe {
            sys::bpf_object__find_program_by_name(this.obj.as_ptr(), PROG_NAME_C.as_ptr())
        };
        if prog.is_null() {
            return Err(last_os_error("find the program in the object"));
        }
        // SAFETY: prog belongs to the loaded object, which outlives the fd use.
        this.prog_fd = unsafe { sys::bpf_program__fd(prog) };
        check(this.prog_fd, "get the program fd")?;
        this.xsks_fd = this.map_fd(MAP_XSKS)?;
        this.ports_fd = this.map_fd(MAP_PORTS)?;
        this.own_fd = this.map_fd(MAP_OWN)?;
        this.no_socket_fd = this.map_fd(MAP_NO_SOCKET)?;
        Ok(this)
    }

    fn map_fd(&self, name: &CStr) -> Result<RawFd, XdpError> {
        // SAFETY: obj is loaded; the name is a NUL-terminated string.
        let fd = unsafe { sys::bpf_object__find_map_fd_by_name(self.obj.as_ptr(), name.as_ptr()) };
        check(fd, "find a map in the object")?;
        Ok(fd)
    }

    /// Attaches the program to `ifindex` in native mode, replacing a stale
    /// flatedge program; fails if another XDP program is attached.
    pub fn attach(&mut self, ifindex: u32) -> Result<VlanOffload, XdpError> {
        let lock = match self.attached.iter().any(|(i, _)| *i == ifindex) {
            true => None,
            false => Some(lock_interface(ifindex)?),
        };
        // A program in generic mode: the kernel would refuse ours with a
        // bare EEXIST ("File exists").
        if let Some((name, mode)) = other_mode_prog(ifindex)? {
            return Err(XdpError::Foreign {
                ifname: if_indextoname(ifindex),
                name,
                mode,
            });
        }
        // Atomic with respect to other attachers: with nothing attached,
        // UPDATE_IF_NOEXIST; over a stale flatedge program, REPLACE naming
        // that very program. Either fails (EEXIST/EBUSY) if the interface
        // changed hands in between.
        let (flags, old) = match attached_prog(ifindex)? {
            None => (ATTACH_FLAGS | sys::XDP_FLAGS_UPDATE_IF_NOEXIST, None),
            Some((name, _)) if name != PROG_NAME => {
                return Err(XdpError::Foreign {
                    ifname: if_indextoname(ifindex),
                    name,
                    mode: "native",
                })
            }
            Some((_, fd)) => (ATTACH_FLAGS | sys::XDP_FLAGS_REPLACE, Some(fd)),
        };
        let opts = sys::bpf_xdp_attach_opts {
            sz: size_of::<sys::bpf_xdp_attach_opts>() as sys::size_t,
            old_prog_fd: old.as_ref().map_or(0, |fd| fd.as_raw_fd()),
            ..Default::default()
        };
        // SAFETY: prog_fd is our loaded program; opts is a valid, sized
        // options struct whose old_prog_fd (if any) is open until `old` drops.
        let ret = unsafe { sys::bpf_xdp_attach(ifindex as c_int, self.prog_fd, flags, &opts) };
        check(ret, "attach the XDP program (native mode)")?;
        if let Some(lock) = lock {
            self.attached.push((ifindex, lock));
        }
        // A note in the lock file is a killed flatedge's only if its
        // program was still there to replace.
        let replaced_stale = old.is_some();
        Ok(self.vlan_offload_off(ifindex, replaced_stale))
    }

    /// Turns the VLAN receive offload of `ifindex` off (see
    /// [`super::offload`]), remembering to turn it on again at detach. The
    /// interface's lock file keeps a note of it: a flatedge killed before
    /// its detach leaves the note, and the one that replaces its program
    /// restores the offload in its place (it finds it off, but not as the
    /// interface was). A note counts only when a stale flatedge program
    /// was there to replace.
    fn vlan_offload_off(&mut self, ifindex: u32, replaced_stale: bool) -> VlanOffload {
        if self.vlan_restore.iter().any(|(i, _)| *i == ifindex) {
            return VlanOffload::TurnedOff;
        }
        let name = if_indextoname(ifindex);
        let note = format!("rx-vlan-offload was on: {name}\n");
        let lock = self
            .attached
            .iter_mut()
            .find(|(i, _)| *i == ifindex)
            .map(|(_, f)| f);
        match super::offload::rx_vlan_offload(&name) {
            Ok(false) => {
                let Some(f) = lock else {
                    return VlanOffload::WasOff;
                };
                if replaced_stale && read_note(f).as_deref() == Some(note.as_str()) {
                    // The killed flatedge whose program this replaced
                    // turned it off.
                    self.vlan_restore.push((ifindex, name));
                    VlanOffload::TurnedOff
                } else {
                    // Anything else is stale (another namespace or
                    // interface that had this number): gone.
                    write_note(f, "");
                    VlanOffload::WasOff
                }
            }
            Ok(true) => match super::offload::set_rx_vlan_offload(&name, false) {
                Ok(()) => {
                    if let Some(f) = lock {
                        write_note(f, &note);
                    }
                    self.vlan_restore.push((ifindex, name));
                    VlanOffload::TurnedOff
                }
                Err(e) => VlanOffload::StaysOn(e),
            },
            Err(e) => VlanOffload::Unknown(e),
        }
    }

    /// Turns the VLAN receive offload of `ifindex` back on if `attach`
    /// turned it off (best effort: the interface may be gone), and clears
    /// the note in its lock file (held until after this).
    fn vlan_offload_restore(&mut self, ifindex: u32) {
        let Some(k) = self.vlan_restore.iter().position(|(i, _)| *i == ifindex) else {
            return;
        };
        let (_, name) = self.vlan_restore.swap_remove(k);
        // The name, not the index: only the interface it was still is.
        if super::ifindex(&name).ok() == Some(ifindex) {
            let _ = super::offload::set_rx_vlan_offload(&name, true);
        }
        if let Some((_, f)) = self.attached.iter_mut().find(|(i, _)| *i == ifindex) {
            write_note(f, "");
        }
    }

    /// Detaches the program from `ifindex` if it is still ours.
    pub fn detach(&mut self, ifindex: u32) -> Result<(), XdpError> {
        let ret = self.detach_program(ifindex);
        // Before the lock goes: the restore clears the note in it.
        self.vlan_offload_restore(ifindex);
        self.attached.retain(|(i, _)| *i != ifindex);
        ret
    }

    /// Leaves the program attached as a killed process would: the kernel
    /// keeps it (its fds are never closed), and the interface locks go as
    /// a dead process's do. For tests of the stale-program path.
    #[doc(hidden)]
    pub fn abandon(mut self) {
        self.attached.clear();
        self.vlan_restore.clear();
        std::mem::forget(self);
    }

    fn detach_program(&mut self, ifindex: u32) -> Result<(), XdpError> {
        let opts = sys::bpf_xdp_attach_opts {
            sz: size_of::<sys::bpf_xdp_attach_opts>() as sys::size_t,
            old_prog_fd: self.prog_fd,
            ..Default::default()
        };
        // SAFETY: opts is a valid, sized options struct; XDP_FLAGS_REPLACE
        // makes the kernel detach only if our program is the attached one.
        let ret = unsafe {
            sys::bpf_xdp_detach(
                ifindex as c_int,
                ATTACH_FLAGS | sys::XDP_FLAGS_REPLACE,
                &opts,
            )
        };
        check(ret, "detach the XDP program")
    }

    /// Maps `ifindex` to its port slot (< [`MAX_PORTS`]): the XSKMAP keys of
    /// this port are `slot * MAX_QUEUES + queue`.
    pub fn set_port_slot(&mut self, ifindex: u32, slot: u32) -> Result<(), XdpError> {
        if slot >= MAX_PORTS {
            return Err(XdpError::Range {
                what: "port slot",
                value: slot,
                max: MAX_PORTS,
            });
        }
        update(self.ports_fd, &ifindex, &slot, "set a port slot")
    }

    /// Adds one of the router's own addresses: packets to it go to the kernel.
    pub fn add_own_addr(&mut self, addr: Ipv6Addr) -> Result<(), XdpError> {
        update(self.own_fd, &addr.octets(), &1u8, "add an own address")
    }

    /// Removes one of the router's own addresses (absent is not an error).
    pub fn remove_own_addr(&mut self, addr: Ipv6Addr) -> Result<(), XdpError> {
        let key = addr.octets();
        // SAFETY: own_fd is a hash map with 16-byte keys; key lives across the call.
        let ret = unsafe { sys::bpf_map_delete_elem(self.own_fd, key.as_ptr().cast::<c_void>()) };
        if ret == -libc::ENOENT {
            return Ok(());
        }
        check(ret, "remove an own address")
    }

    /// Transit packets the program handed to the kernel because their
    /// (port, queue) has no socket (a queue added after start, or beyond
    /// [`MAX_QUEUES`]), summed over the CPUs since the program was loaded.
    pub fn no_socket_packets(&self) -> Result<u64, XdpError> {
        // SAFETY: a plain libbpf query with no arguments.
        let cpus = unsafe { sys::libbpf_num_possible_cpus() };
        check(cpus, "count the possible CPUs")?;
        // A per-CPU map's lookup writes one 8-byte value per possible CPU.
        let mut values = vec![0u64; cpus as usize];
        let key = 0u32;
        // SAFETY: the map has u32 keys and u64 values, per CPU; `values`
        // holds one per possible CPU; both live across the call.
        let ret = unsafe {
            sys::bpf_map_lookup_elem(
                self.no_socket_fd,
                (&raw const key).cast::<c_void>(),
                values.as_mut_ptr().cast::<c_void>(),
            )
        };
        check(ret, "read the no-socket counter")?;
        Ok(values.iter().sum())
    }

    /// Puts an AF_XDP socket in the XSKMAP at (slot, queue).
    pub fn insert_xsk(&mut self, slot: u32, queue: u32, xsk_fd: RawFd) -> Result<(), XdpError> {
        let key = xsk_key(slot, queue)?;
        let value = xsk_fd as u32;
        update(
            self.xsks_fd,
            &key,
            &value,
            "insert a socket into the XSKMAP",
        )
    }

    /// Removes the socket at (slot, queue): that queue's traffic goes back
    /// to the kernel.
    pub fn remove_xsk(&mut self, slot: u32, queue: u32) -> Result<(), XdpError> {
        let key = xsk_key(slot, queue)?;
        // SAFETY: xsks_fd is an XSKMAP with u32 keys; key lives across the call.
        let ret =
            unsafe { sys::bpf_map_delete_elem(self.xsks_fd, (&raw const key).cast::<c_void>()) };
        if ret == -libc::ENOENT {
            return Ok(());
        }
        check(ret, "remove a socket from the XSKMAP")
    }
}

/// The XSKMAP key of (slot, queue), as the C program computes it; a slot
/// or queue out of range would name another port's socket.
fn xsk_key(slot: u32, queue: u32) -> Result<u32, XdpError> {
    if slot >= MAX_PORTS {
        return Err(XdpError::Range {
            what: "port slot",
            value: slot,
            max: MAX_PORTS,
        });
    }
    if queue >= MAX_QUEUES {
        return Err(XdpError::Range {
            what: "queue",
            value: queue,
            max: MAX_QUEUES,
        });
    }
    Ok(slot * MAX_QUEUES + queue)
}

fn update<K, V>(fd: RawFd, key: &K, value: &V, what: &'static str) -> Result<(), XdpError> {
    // SAFETY: the map's key and value sizes match K and V (the C program
    // declares them; callers pass the matching Rust types); both references
    // live across the call.
    let ret = unsafe {
        sys::bpf_map_update_elem(
            fd,
            (key as *const K).cast::<c_void>(),
            (value as *const V).cast::<c_void>(),
            u64::from(sys::BPF_ANY),
        )
    };
    check(ret, what)
}

/// The name of the XDP program attached to `ifindex` in native mode, if any.
pub fn attached_prog_name(ifindex: u32) -> Result<Option<String>, XdpError> {
    Ok(attached_prog(ifindex)?.map(|(name, _)| name))
}

/// The name and an fd of the XDP program attached to `ifindex` in native
/// mode, if any.
fn attached_prog(ifindex: u32) -> Result<Option<(String, OwnedFd)>, XdpError> {
    let mut prog_id = 0u32;
    // SAFETY: prog_id is a valid out-pointer.
    let ret =
        unsafe { sys::bpf_xdp_query_id(ifindex as c_int, ATTACH_FLAGS as c_int, &mut prog_id) };
    check(ret, "query the attached XDP program")?;
    if prog_id == 0 {
        return Ok(None);
    }
    let fd = prog_by_id(prog_id)?;
    Ok(Some((prog_name(&fd)?, fd)))
}

/// An fd of the attached XDP program whose id is `id`.
fn prog_by_id(id: u32) -> Result<OwnedFd, XdpError> {
    // SAFETY: plain syscall wrapper; returns a new fd or -errno.
    let fd = unsafe { sys::bpf_prog_get_fd_by_id(id) };
    check(fd, "open the attached XDP program by id")?;
    // SAFETY: fd was just returned to us and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// The name and mode of a program attached to `ifindex` in generic mode,
/// if any: the kernel runs native and generic XDP one at a time (a
/// hardware-offloaded program may sit beside a native one).
fn other_mode_prog(ifindex: u32) -> Result<Option<(String, &'static str)>, XdpError> {
    let mut opts = sys::bpf_xdp_query_opts {
        sz: size_of::<sys::bpf_xdp_query_opts>() as sys::size_t,
        ..Default::default()
    };
    // SAFETY: opts is a valid, sized, writable options struct.
    let ret = unsafe { sys::bpf_xdp_query(ifindex as c_int, 0, &mut opts) };
    check(ret, "query the attached XDP programs")?;
    if opts.skb_prog_id == 0 {
        return Ok(None);
    }
    let name = prog_name(&prog_by_id(opts.skb_prog_id)?)?;
    Ok(Some((name, "generic")))
}

/// The name of the BPF program `fd`.
fn prog_name(fd: &OwnedFd) -> Result<String, XdpError> {
    let mut info = sys::bpf_prog_info::default();
    let mut len = size_of::<sys::bpf_prog_info>() as u32;
    // SAFETY: info/len describe a valid, writable bpf_prog_info.
    let ret = unsafe { sys::bpf_prog_get_info_by_fd(fd.as_raw_fd(), &mut info, &mut len) };
    check(ret, "read the attached XDP program's info")?;
    let name: Vec<u8> = info
        .name
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8)
        .collect();
    Ok(String::from_utf8_lossy(&name).into_owned())
}

impl Drop for XdpProgram {
    fn drop(&mut self) {
        let ifindexes: Vec<u32> = self.attached.iter().map(|(i, _)| *i).collect();
        for ifindex in ifindexes {
            // Best effort: the interface may be gone already.
            let _ = self.detach_program(ifindex);
            self.vlan_offload_restore(ifindex);
        }
        // The locks go after the detaches.
        self.attached.clear();
        // SAFETY: obj is ours and nothing uses its fds after this point
        // (closing the object closes the program and map fds).
        unsafe { sys::bpf_object__close(self.obj.as_ptr()) };
    }
}

/// Where the interface locks live.
const LOCK_DIR: &str = "/run/lock/flatedge";

/// Takes the lock of `ifindex` in the calling thread's network namespace
/// (interface numbers are per namespace): an exclusive, non-blocking
/// `flock` on its lock file, held while the file stays open.
fn lock_interface(ifindex: u32) -> Result<File, XdpError> {
    let io = |what| move |source| XdpError::Bpf { what, source };
    // thread-self: a thread may have entered another namespace than the
    // process's first one.
    let netns = std::fs::metadata("/proc/thread-self/ns/net")
        .map_err(io("read the network namespace"))?
        .ino();
    lock_dir(Path::new(LOCK_DIR)).map_err(io("make /run/lock/flatedge"))?;
    let path = PathBuf::from(format!("{LOCK_DIR}/xdp-{netns}-{ifindex}.lock"));
    // Never through a link: the file is truncated and written as root.
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&path)
        .map_err(io("open an interface lock in /run/lock/flatedge"))?;
    // SAFETY: flock on a descriptor this function owns.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        let e = io::Error::last_os_error();
        if e.kind() == io::ErrorKind::WouldBlock {
            return Err(XdpError::Busy { ifindex, path });
        }
        return Err(io("lock an interface")(e));
    }
    Ok(file)
}

/// Makes the lock directory (mode 0700) if it is not there, and checks
/// that it is a directory of our own user's that no one else may write:
/// `/run/lock` is world-writable, so another user could have made it
/// first, and then swap the lock files (a second flatedge replacing a
/// running one's program) or plant links to files root would write.
fn lock_dir(dir: &Path) -> io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    // /run/lock itself, on a system without it (a container).
    if let Some(parent) = dir.parent() {
        std::fs::create_dir_all(parent)?;
    }
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    let m = std::fs::symlink_metadata(dir)?;
    let uid = nix::unistd::geteuid().as_raw();
    if !m.file_type().is_dir() || m.uid() != uid || m.mode() & 0o022 != 0 {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "{} is not a directory of user {uid} that only it may write \
                 (owner {}, mode {:o}): remove it and start again",
                dir.display(),
                m.uid(),
                m.mode() & 0o7777
            ),
        ));
    }
    Ok(())
}

/// The note in an interface's lock file (see `vlan_offload_off`).
fn read_note(f: &mut File) -> Option<String> {
    let mut note = String::new();
    f.seek(io::SeekFrom::Start(0)).ok()?;
    f.take(256).read_to_string(&mut note).ok()?;
    Some(note)
}

/// Replaces the note in an interface's lock file (best effort: at worst a
/// killed flatedge's successor leaves the offload off).
fn write_note(f: &mut File, note: &str) {
    let _ = f
        .set_len(0)
        .and_then(|()| f.seek(io::SeekFrom::Start(0)))
        .and_then(|_| f.write_all(note.as_bytes()));
}

/// `if_nametoindex(3)`; `None` when there is no such interface.
pub(super) fn if_nametoindex(name: &CStr) -> Option<u32> {
    // SAFETY: name is a valid NUL-terminated string.
    let index = unsafe { libc::if_nametoindex(name.as_ptr()) };
    (index != 0).then_some(index)
}

/// The name of interface `ifindex` (its number when it has none).
fn if_indextoname(ifindex: u32) -> String {
    let mut buf = [0 as libc::c_char; libc::IF_NAMESIZE];
    // SAFETY: buf has the IF_NAMESIZE bytes the call may write.
    let p = unsafe { libc::if_indextoname(ifindex, buf.as_mut_ptr()) };
    if p.is_null() {
        return ifindex.to_string();
    }
    // SAFETY: on success the call wrote a NUL-terminated name into buf.
    unsafe { CStr::from_ptr(buf.as_ptr()) }
        .to_string_lossy()
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The lock directory is made 0700, and one that another user owns,
    /// that others may write, or that is a link, is refused.
    #[test]
    fn the_lock_directory_must_be_ours_alone() {
        use std::os::unix::fs::PermissionsExt;
        let base = std::env::temp_dir().join(format!("flatedge-lockdir-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        std::fs::create_dir(&base).unwrap();
        let fresh = base.join("fresh");
        lock_dir(&fresh).unwrap();
        let mode = std::fs::metadata(&fresh).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0o700);
        lock_dir(&fresh).unwrap();
        let open = base.join("open");
        std::fs::create_dir(&open).unwrap();
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
        assert!(lock_dir(&open).is_err());
        let theirs = base.join("theirs");
        std::fs::create_dir(&theirs).unwrap();
        std::os::unix::fs::chown(&theirs, Some(65534), None).unwrap();
        let e = lock_dir(&theirs).unwrap_err();
        assert!(e.to_string().contains("owner 65534"), "{e}");
        let link = base.join("link");
        std::os::unix::fs::symlink(&fresh, &link).unwrap();
        assert!(lock_dir(&link).is_err());
        std::fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn xsk_keys_stay_within_their_port() {
        assert_eq!(xsk_key(0, 0).unwrap(), 0);
        assert_eq!(xsk_key(2, 5).unwrap(), 2 * MAX_QUEUES + 5);
        assert_eq!(
            xsk_key(MAX_PORTS - 1, MAX_QUEUES - 1).unwrap(),
            MAX_PORTS * MAX_QUEUES - 1
        );
        // Slot 1, queue 64 would be slot 2's queue 0.
        assert!(matches!(
            xsk_key(1, MAX_QUEUES),
            Err(XdpError::Range { what: "queue", .. })
        ));
        assert!(matches!(
            xsk_key(MAX_PORTS, 0),
            Err(XdpError::Range {
                what: "port slot",
                ..
            })
        ));
    }
}
