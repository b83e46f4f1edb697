//! The VLAN receive offload of the interfaces the XDP program runs on.
//!
//! With it on (the default of most NICs, and of veth), the device strips
//! an 802.1Q tag before XDP sees the frame: a frame of any VLAN would
//! reach the program as an untagged IPv6 frame of the port, and be
//! routed as such, past the VLAN's isolation. With it off the tag stays
//! in the frame, the program passes the frame to the kernel (it is not
//! IPv6 at the Ethernet layer), and the kernel's VLAN devices handle it
//! as they would without flatedge. So attaching turns it off, and
//! detaching restores it (see [`super::XdpProgram::attach`]).
//!
//! Through the ethtool ioctl's legacy flags (`ETHTOOL_GFLAGS`,
//! `ETHTOOL_SFLAGS`, `ETH_FLAG_RXVLAN`), which every kernel has; the
//! 802.1ad (S-tag) offload has no such flag and is left alone.
//!
//! This covers NICs, which strip the tag in hardware. A veth does not
//! consult the flag: the tag of a frame its peer sent with the peer's
//! tx-vlan-offload on travels beside the frame (skb metadata), and XDP
//! sees the frame untagged whatever is set here (the peer needs
//! `txvlan off`). Reading the tag in the program instead
//! (`bpf_xdp_metadata_rx_vlan_tag`, Linux 6.8) needs one device-bound
//! program per interface; not done.
#![allow(unsafe_code)]

use std::io;

/// `SIOCETHTOOL`.
const SIOCETHTOOL: libc::c_ulong = 0x8946;
/// `ETHTOOL_GFLAGS` and `ETHTOOL_SFLAGS`.
const ETHTOOL_GFLAGS: u32 = 0x25;
const ETHTOOL_SFLAGS: u32 = 0x26;
/// `ETH_FLAG_RXVLAN`: `rx-vlan-offload` (`NETIF_F_HW_VLAN_CTAG_RX`).
const ETH_FLAG_RXVLAN: u32 = 1 << 8;

/// `struct ethtool_value`.
#[repr(C)]
struct EthtoolValue {
    cmd: u32,
    data: u32,
}

/// `struct ifreq` with its `ifr_data` member.
#[repr(C)]
struct IfreqData {
    name: [libc::c_char; libc::IF_NAMESIZE],
    data: *mut EthtoolValue,
    _pad: [u8; 16],
}

fn ethtool(ifname: &str, value: &mut EthtoolValue) -> io::Result<()> {
    let bytes = ifname.as_bytes();
    if bytes.is_empty() || bytes.len() >= libc::IF_NAMESIZE || bytes.contains(&0) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("bad interface name {ifname:?}"),
        ));
    }
    let mut req = IfreqData {
        name: [0; libc::IF_NAMESIZE],
        data: value,
        _pad: [0; 16],
    };
    for (d, &b) in req.name.iter_mut().zip(bytes) {
        *d = b as libc::c_char;
    }
    // SAFETY: a plain socket call; the fd is closed below.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `req` is a valid ifreq whose data points at `value`, both
    // alive across the call; the kernel reads and writes only those.
    let ret = unsafe { libc::ioctl(fd, SIOCETHTOOL as _, &mut req) };
    let err = io::Error::last_os_error();
    // SAFETY: our own fd, closed once.
    unsafe { libc::close(fd) };
    if ret < 0 {
        return Err(err);
    }
    Ok(())
}

/// Whether `ifname`'s VLAN receive offload (`rx-vlan-offload`) is on.
pub fn rx_vlan_offload(ifname: &str) -> io::Result<bool> {
    let mut v = EthtoolValue {
        cmd: ETHTOOL_GFLAGS,
        data: 0,
    };
    ethtool(ifname, &mut v)?;
    Ok(v.data & ETH_FLAG_RXVLAN != 0)
}

/// Turns `ifname`'s VLAN receive offload on or off (the other flags as
/// they are).
pub fn set_rx_vlan_offload(ifname: &str, on: bool) -> io::Result<()> {
    let mut v = EthtoolValue {
        cmd: ETHTOOL_GFLAGS,
        data: 0,
    };
    ethtool(ifname, &mut v)?;
    let data = if on {
        v.data | ETH_FLAG_RXVLAN
    } else {
        v.data & !ETH_FLAG_RXVLAN
    };
    if data == v.data {
        return Ok(());
    }
    let mut s = EthtoolValue {
        cmd: ETHTOOL_SFLAGS,
        data,
    };
    ethtool(ifname, &mut s)?;
    if rx_vlan_offload(ifname)? != on {
        // The kernel took the wish but the driver did not apply it: take
        // the wish back, or a later feature update might apply it.
        let mut back = EthtoolValue {
            cmd: ETHTOOL_SFLAGS,
            data: v.data,
        };
        let _ = ethtool(ifname, &mut back);
        return Err(io::Error::other("the driver kept its setting"));
    }
    Ok(())
}
