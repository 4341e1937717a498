//! The TCP congestion control a listening socket hands to the connections it accepts.
//!
//! Linux copies a listener's algorithm to each accepted socket when it was chosen with
//! `setsockopt(TCP_CONGESTION)` (an accepted socket otherwise gets the system default), so one
//! call per listener covers every connection at no cost per connection.
//!
//! Why an engine wants this: with `bbr` (or any algorithm that paces) and no `fq` qdisc, TCP
//! paces each socket with its own high-resolution timer. Into a loopback or same-host peer the
//! timers buy nothing and on a VM each one is an exit: measured here (BENCHMARKS.md, "TCP
//! congestion control") a 1 GiB download cost the server about three times the CPU under
//! `bbr` as under `cubic`.

use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

/// Longest algorithm name the kernel takes (`TCP_CA_NAME_MAX` is 16 with the NUL).
const NAME_MAX: usize = 15;

/// Sets `fd`'s congestion control to `name`. Errors as the kernel gives them: `ENOENT` (no such
/// algorithm, or its module is not loaded), `EPERM` (not in
/// `net.ipv4.tcp_allowed_congestion_control` and no `CAP_NET_ADMIN`).
pub fn set_tcp_congestion(fd: RawFd, name: &str) -> io::Result<()> {
    if name.is_empty() || name.len() > NAME_MAX {
        return Err(io::Error::from(io::ErrorKind::InvalidInput));
    }
    // SAFETY: the kernel reads `len` bytes from the live `&str`; it copies them during the call
    // and needs no NUL (it copies at most TCP_CA_NAME_MAX - 1 bytes and terminates them itself).
    let r = unsafe { libc::setsockopt(fd, libc::IPPROTO_TCP, libc::TCP_CONGESTION, name.as_ptr().cast(), name.len() as libc::socklen_t) };
    if r != 0 { Err(io::Error::last_os_error()) } else { Ok(()) }
}

/// `fd`'s congestion control algorithm.
pub fn tcp_congestion(fd: RawFd) -> io::Result<String> {
    let mut buf = [0u8; NAME_MAX + 1];
    Ok(String::from_utf8_lossy(read_name(fd, &mut buf)?).into_owned())
}

/// Whether TCP paces `fd` itself: its congestion control is `bbr` (or a later `bbr` version),
/// which asks for pacing; without the `fq` qdisc the socket then gets a timer per gap. Also true
/// when the algorithm cannot be read, which keeps the calls sized for a paced socket. No
/// allocation: it runs for every adopted connection.
pub fn paces(fd: RawFd) -> bool {
    let mut buf = [0u8; NAME_MAX + 1];
    read_name(fd, &mut buf).map_or(true, |name| name.starts_with(b"bbr"))
}

/// The algorithm's name as the kernel gives it, without the NUL.
fn read_name(fd: RawFd, buf: &mut [u8; NAME_MAX + 1]) -> io::Result<&[u8]> {
    let mut len = buf.len() as libc::socklen_t;
    // SAFETY: `buf` and `len` are live; the kernel writes at most `len` bytes into `buf` and the
    // written length into `len`.
    let r = unsafe { libc::getsockopt(fd, libc::IPPROTO_TCP, libc::TCP_CONGESTION, buf.as_mut_ptr().cast(), &mut len) };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    let written = &buf[..(len as usize).min(buf.len())];
    let end = written.iter().position(|&b| b == 0).unwrap_or(written.len());
    Ok(&written[..end])
}

/// Whether this process may give a socket `name`: tries it on a fresh, unbound TCP socket.
pub fn probe_tcp_congestion(name: &str) -> io::Result<()> {
    // SAFETY: plain socket(2) call with constant arguments; the result is checked below.
    let raw = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    let raw = if raw < 0 {
        // An IPv6-only host.
        // SAFETY: as above.
        unsafe { libc::socket(libc::AF_INET6, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) }
    } else {
        raw
    };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `raw` is a descriptor we just created and nothing else owns it; it closes on drop.
    let socket = unsafe { OwnedFd::from_raw_fd(raw) };
    set_tcp_congestion(std::os::fd::AsRawFd::as_raw_fd(&socket), name)
}

/// The algorithm new sockets get on this machine (`net.ipv4.tcp_congestion_control`).
pub fn system_default() -> io::Result<String> {
    Ok(std::fs::read_to_string("/proc/sys/net/ipv4/tcp_congestion_control")?.trim().to_string())
}

/// Algorithms this process may choose: all the kernel has when privileged, else the allowed ones.
pub fn choosable() -> io::Result<Vec<String>> {
    let list = |file: &str| -> io::Result<Vec<String>> {
        Ok(std::fs::read_to_string(format!("/proc/sys/net/ipv4/{file}"))?.split_whitespace().map(str::to_string).collect())
    };
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    list(if root { "tcp_available_congestion_control" } else { "tcp_allowed_congestion_control" })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::os::fd::AsRawFd;

    /// An algorithm other than the system default, so a test can tell "set" from "inherited
    /// the default".
    fn other_than_default() -> String {
        let default = system_default().unwrap();
        choosable()
            .unwrap()
            .into_iter()
            .find(|n| *n != default)
            .unwrap_or_else(|| panic!("this machine offers no congestion control but its default {default}"))
    }

    #[test]
    fn accepted_connections_inherit_the_listeners_algorithm() {
        let name = other_than_default();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        set_tcp_congestion(listener.as_raw_fd(), &name).unwrap();
        assert_eq!(tcp_congestion(listener.as_raw_fd()).unwrap(), name);
        let mut client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (mut accepted, _) = listener.accept().unwrap();
        assert_eq!(tcp_congestion(accepted.as_raw_fd()).unwrap(), name);
        assert_eq!(tcp_congestion(client.as_raw_fd()).unwrap(), system_default().unwrap());
        client.write_all(b"x").unwrap();
        let mut b = [0u8; 1];
        accepted.read_exact(&mut b).unwrap();
        assert_eq!(&b, b"x");
    }

    #[test]
    fn bbr_paces_and_reno_does_not() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        set_tcp_congestion(listener.as_raw_fd(), "reno").unwrap();
        assert!(!paces(listener.as_raw_fd()));
        if choosable().unwrap().iter().any(|n| n == "bbr") {
            set_tcp_congestion(listener.as_raw_fd(), "bbr").unwrap();
            assert!(paces(listener.as_raw_fd()));
        }
        assert!(paces(-1), "unknown: sized as paced");
    }

    #[test]
    fn unknown_and_malformed_names_are_refused() {
        assert_eq!(probe_tcp_congestion("no-such-cc").unwrap_err().raw_os_error(), Some(libc::ENOENT));
        assert_eq!(probe_tcp_congestion("").unwrap_err().kind(), io::ErrorKind::InvalidInput);
        assert_eq!(probe_tcp_congestion("a-name-of-16-bbb").unwrap_err().kind(), io::ErrorKind::InvalidInput);
        probe_tcp_congestion(&other_than_default()).unwrap();
        assert!(set_tcp_congestion(-1, "reno").is_err());
        assert!(tcp_congestion(-1).is_err());
    }
}
