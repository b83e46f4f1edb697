//! A blocking `NETLINK_ROUTE` socket: the only unsafe code of the
//! neighbour client (socket, bind, setsockopt, send, recv).

#![allow(unsafe_code)]

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

const SOL_NETLINK: libc::c_int = 270;
const NETLINK_EXT_ACK: libc::c_int = 11;

/// One rtnetlink socket, bound to `groups` (an `RTMGRP_*` mask; 0 for a
/// request socket).
#[derive(Debug)]
pub(crate) struct NlSocket {
    fd: OwnedFd,
}

impl NlSocket {
    pub(crate) fn open(groups: u32) -> io::Result<NlSocket> {
        // SAFETY: plain syscall, no pointers.
        let raw = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                libc::NETLINK_ROUTE,
            )
        };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `raw` is a fresh descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let s = NlSocket { fd };
        // SAFETY: sockaddr_nl is plain old data; all-zero is valid.
        let mut sa: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        sa.nl_family = libc::AF_NETLINK as libc::sa_family_t;
        sa.nl_groups = groups;
        // SAFETY: `sa` is a valid sockaddr_nl and the length is its size.
        let r = unsafe {
            libc::bind(
                s.fd.as_raw_fd(),
                (&sa as *const libc::sockaddr_nl).cast(),
                std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
            )
        };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        // Past net.core.rmem_max when privileged (SO_RCVBUF is capped
        // there, 208 KiB by default): a burst of events must not be lost.
        if s.setsockopt_int(libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, 4 << 20)
            .is_err()
        {
            s.setsockopt_int(libc::SOL_SOCKET, libc::SO_RCVBUF, 4 << 20)?;
        }
        // Error messages (extack) in NLMSG_ERROR; best effort.
        let _ = s.setsockopt_int(SOL_NETLINK, NETLINK_EXT_ACK, 1);
        Ok(s)
    }

    pub(crate) fn setsockopt_int(
        &self,
        level: libc::c_int,
        name: libc::c_int,
        v: libc::c_int,
    ) -> io::Result<()> {
        // SAFETY: the option value is a c_int that lives across the call.
        let r = unsafe {
            libc::setsockopt(
                self.fd.as_raw_fd(),
                level,
                name,
                (&v as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if r < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(())
        }
    }

    /// Receive timeout: `recv` fails with `WouldBlock` after it.
    pub(crate) fn set_recv_timeout(&self, d: Duration) -> io::Result<()> {
        let tv = libc::timeval {
            tv_sec: d.as_secs() as libc::time_t,
            tv_usec: d.subsec_micros() as libc::suseconds_t,
        };
        // SAFETY: `tv` is a valid timeval that lives across the call.
        let r = unsafe {
            libc::setsockopt(
                self.fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&tv as *const libc::timeval).cast(),
                std::mem::size_of::<libc::timeval>() as libc::socklen_t,
            )
        };
        if r < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(())
        }
    }

    /// Sends one message to the kernel.
    pub(crate) fn send(&self, buf: &[u8]) -> io::Result<()> {
        // SAFETY: `buf` is valid for `buf.len()` bytes; an unconnected
        // netlink socket sends to the kernel (port 0).
        let r = unsafe { libc::send(self.fd.as_raw_fd(), buf.as_ptr().cast(), buf.len(), 0) };
        if r < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(())
        }
    }

    /// Waits up to `timeout` for a datagram on this socket or for
    /// `wake` to be woken (drained here); returns whether a datagram is
    /// waiting.
    pub(crate) fn wait(&self, wake: &Wake, timeout: Duration) -> io::Result<bool> {
        let mut fds = [
            libc::pollfd {
                fd: self.fd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: wake.0.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        let ms = timeout.as_millis().min(i32::MAX as u128) as libc::c_int;
        // SAFETY: `fds` is a valid array of two pollfds for the call.
        let r = unsafe { libc::poll(fds.as_mut_ptr(), 2, ms) };
        if r < 0 {
            let e = io::Error::last_os_error();
            return if e.kind() == io::ErrorKind::Interrupted {
                Ok(false)
            } else {
                Err(e)
            };
        }
        if fds[1].revents != 0 {
            wake.drain();
        }
        Ok(fds[0].revents != 0)
    }

    /// Receives one datagram (one or more messages).
    pub(crate) fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.recv_flags(buf, 0)
    }

    /// [`NlSocket::recv`] without waiting: `WouldBlock` when nothing is
    /// queued.
    pub(crate) fn recv_nowait(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.recv_flags(buf, libc::MSG_DONTWAIT)
    }

    fn recv_flags(&self, buf: &mut [u8], flags: libc::c_int) -> io::Result<usize> {
        loop {
            // SAFETY: `buf` is valid and writable for `buf.len()` bytes.
            let r = unsafe {
                libc::recv(
                    self.fd.as_raw_fd(),
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    flags,
                )
            };
            if r >= 0 {
                return Ok(r as usize);
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
    }
}

/// An eventfd that wakes the neighbour thread's [`NlSocket::wait`] when a
/// command is queued for it (non-blocking: waking never waits).
#[derive(Debug)]
pub(crate) struct Wake(OwnedFd);

impl Wake {
    pub(crate) fn new() -> io::Result<Wake> {
        // SAFETY: eventfd takes no pointers; the result is checked.
        let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` was just returned by eventfd and is owned here alone.
        Ok(Wake(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    /// Wakes the waiter (a full counter, which cannot happen in practice,
    /// is already a wake-up).
    pub(crate) fn wake(&self) {
        let one = 1u64.to_ne_bytes();
        // SAFETY: writes 8 bytes from a live array to our eventfd.
        let _ = unsafe { libc::write(self.0.as_raw_fd(), one.as_ptr().cast(), 8) };
    }

    fn drain(&self) {
        let mut buf = [0u8; 8];
        // SAFETY: reads at most 8 bytes into a live array from our eventfd
        // (non-blocking: nothing to read is EAGAIN).
        let _ = unsafe { libc::read(self.0.as_raw_fd(), buf.as_mut_ptr().cast(), 8) };
    }
}
