//! Socket options the standard library does not expose. The only unsafe
//! code in the crate lives here.
#![allow(unsafe_code)]

use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};

/// Longest TCP MD5 key the kernel accepts (`TCP_MD5SIG_MAXKEYLEN`).
pub const TCP_MD5_MAX_KEY_LEN: usize = 80;

/// `struct tcp_md5sig` from `<linux/tcp.h>`.
#[repr(C)]
struct TcpMd5Sig {
    addr: libc::sockaddr_storage,
    flags: u8,
    prefix_len: u8,
    key_len: u16,
    ifindex: libc::c_int,
    key: [u8; TCP_MD5_MAX_KEY_LEN],
}

/// Enables TCP MD5 signatures (RFC 2385) on `socket` for segments to and
/// from `peer` (the port is ignored). Must be set before `connect`, or on a
/// listening socket before the peer connects.
pub fn set_tcp_md5(socket: &impl AsRawFd, peer: SocketAddr, key: &[u8]) -> io::Result<()> {
    set_tcp_md5_fd(socket.as_raw_fd(), peer, key)
}

fn set_tcp_md5_fd(fd: RawFd, peer: SocketAddr, key: &[u8]) -> io::Result<()> {
    if key.len() > TCP_MD5_MAX_KEY_LEN {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "TCP MD5 key longer than 80 octets",
        ));
    }
    // SAFETY: all-zero bytes are a valid value for this plain C struct.
    let mut sig: TcpMd5Sig = unsafe { std::mem::zeroed() };
    match peer {
        SocketAddr::V4(a) => {
            // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in.
            let sin = unsafe { &mut *(&mut sig.addr as *mut _ as *mut libc::sockaddr_in) };
            sin.sin_family = libc::AF_INET as libc::sa_family_t;
            sin.sin_addr.s_addr = u32::from_ne_bytes(a.ip().octets());
        }
        SocketAddr::V6(a) => {
            // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in6.
            let sin6 = unsafe { &mut *(&mut sig.addr as *mut _ as *mut libc::sockaddr_in6) };
            sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            sin6.sin6_addr.s6_addr = a.ip().octets();
        }
    }
    sig.key_len = key.len() as u16;
    sig.key[..key.len()].copy_from_slice(key);
    // SAFETY: `sig` is a valid tcp_md5sig living across the call and the
    // length passed is its size.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_MD5SIG,
            &sig as *const TcpMd5Sig as *const libc::c_void,
            std::mem::size_of::<TcpMd5Sig>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Sets the IP TTL (IPv4) or unicast hop limit (IPv6) of packets sent on
/// `socket`, e.g. 1 for directly connected eBGP or more for multihop.
pub fn set_ttl(socket: &impl AsRawFd, ipv6: bool, ttl: u8) -> io::Result<()> {
    let value = libc::c_int::from(ttl);
    let (level, name) = if ipv6 {
        (libc::IPPROTO_IPV6, libc::IPV6_UNICAST_HOPS)
    } else {
        (libc::IPPROTO_IP, libc::IP_TTL)
    };
    // SAFETY: `value` is a c_int living across the call and the length
    // passed is its size.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            level,
            name,
            &value as *const libc::c_int as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn md5_key_is_accepted_by_the_kernel_and_bad_input_refused() {
        let sock = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        set_tcp_md5(&sock, "127.0.0.2:179".parse().unwrap(), b"secret").unwrap();
        let err = set_tcp_md5(&sock, "127.0.0.2:179".parse().unwrap(), &[0; 81]).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        // Family mismatch: the kernel refuses an IPv6 peer on an IPv4 socket.
        assert!(set_tcp_md5(&sock, "[::1]:179".parse().unwrap(), b"x").is_err());
    }

    #[test]
    fn ttl_is_applied_to_the_socket() {
        let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        set_ttl(&sock, false, 7).unwrap();
        assert_eq!(sock.ttl().unwrap(), 7);
    }

    #[test]
    fn md5_signed_connection_works_end_to_end_on_loopback() {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        set_tcp_md5(&listener, "127.0.0.1:0".parse().unwrap(), b"s3cret").unwrap();
        let client = socket2_connect(addr, Some(b"s3cret"));
        let (mut server, _) = listener.accept().unwrap();
        let mut client = client.unwrap();
        client.write_all(b"hi").unwrap();
        let mut buf = [0u8; 2];
        server.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"hi");
    }

    /// Connects with MD5 set before connect, using tokio's socket builder in
    /// a small runtime.
    fn socket2_connect(addr: SocketAddr, key: Option<&[u8]>) -> io::Result<std::net::TcpStream> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        rt.block_on(async {
            let s = tokio::net::TcpSocket::new_v4()?;
            if let Some(k) = key {
                set_tcp_md5(&s, addr, k)?;
            }
            let stream = tokio::time::timeout(std::time::Duration::from_secs(10), s.connect(addr))
                .await
                .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connect"))??;
            stream.into_std()
        })
    }
}
