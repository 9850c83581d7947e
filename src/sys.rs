//! The few system calls streamish makes itself rather than through `std`.
//!
//! * Reads go straight into a `BytesMut`'s spare capacity. futures-io's
//!   `&mut [u8]` would force zeroing that memory before every read (or
//!   handing the kernel uninitialised memory as a `&mut [u8]`, which is
//!   undefined behaviour); rustix reads into `&mut [MaybeUninit<u8>]` safely
//!   and tells how much it initialised. This is the crate's one `unsafe`
//!   block; see `design/decisions.md`.
//! * Writes use `sendmsg(MSG_NOSIGNAL)` (or `send`, for one slice) on
//!   Linux, so writing to a peer that has gone away is `EPIPE`, never a
//!   `SIGPIPE` that kills a process which did not ignore it (std's
//!   `write_vectored` is a plain `writev`).
//! * Reads and one-slice writes use `recv` and `send` rather than `read`
//!   and `sendmsg`: the socket calls skip the VFS layer and the message
//!   header copy, a few percent of a small message's cost.
//! * Abort sets `SO_LINGER` to zero, so closing the descriptor sends RST.

use std::io::{self, IoSlice};

use crate::transport::Sock;

use bytes::BytesMut;

/// Reads once from `stream` into the spare capacity of `buf` and extends
/// `buf` by what was read. `Ok(0)` is end of file; `WouldBlock` is passed on.
#[cfg(unix)]
#[allow(unsafe_code)] // the crate's one `unsafe` block (decision 3)
pub(crate) fn read_into(stream: &Sock, buf: &mut BytesMut) -> io::Result<usize> {
    loop {
        let len = buf.len();
        match rustix::net::recv(stream, buf.spare_capacity_mut(), rustix::net::RecvFlags::empty()) {
            Ok(((filled, _), _)) => {
                let n = filled.len();
                // SAFETY: `rustix::net::recv` initialised the first `n` bytes
                // of the spare capacity (it returned them as `filled`), so
                // the first `len + n` bytes of `buf` are initialised.
                unsafe { buf.set_len(len + n) };
                return Ok(n);
            }
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// Portable fallback: zero the spare capacity, then read through `std`.
#[cfg(not(unix))]
pub(crate) fn read_into(mut stream: &Sock, buf: &mut BytesMut) -> io::Result<usize> {
    use std::io::Read;
    let len = buf.len();
    buf.resize(buf.capacity(), 0);
    let res = loop {
        match stream.read(&mut buf[len..]) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            res => break res,
        }
    };
    buf.truncate(len + *res.as_ref().unwrap_or(&0));
    res
}

/// Reads once from `stream` into `out`. `Ok(0)` is end of file.
#[cfg(unix)]
pub(crate) fn read_slice(stream: &Sock, out: &mut [u8]) -> io::Result<usize> {
    loop {
        match rustix::net::recv(stream, &mut *out, rustix::net::RecvFlags::empty()) {
            Err(rustix::io::Errno::INTR) => continue,
            res => return res.map(|(n, _)| n).map_err(Into::into),
        }
    }
}

/// Reads once from `stream` into `out`. `Ok(0)` is end of file.
#[cfg(not(unix))]
pub(crate) fn read_slice(mut stream: &Sock, out: &mut [u8]) -> io::Result<usize> {
    use std::io::Read;
    loop {
        match stream.read(out) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            res => return res,
        }
    }
}

/// Writes `bufs` in one system call, without raising `SIGPIPE`.
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) fn write_vectored(stream: &Sock, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
    use rustix::net::{SendAncillaryBuffer, SendFlags, send, sendmsg};
    loop {
        let res = match bufs {
            [one] => send(stream, one, SendFlags::NOSIGNAL),
            _ => sendmsg(stream, bufs, &mut SendAncillaryBuffer::default(), SendFlags::NOSIGNAL),
        };
        match res {
            Err(rustix::io::Errno::INTR) => continue,
            res => return res.map_err(Into::into),
        }
    }
}

/// Writes `bufs` in one system call.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub(crate) fn write_vectored(mut stream: &Sock, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
    use std::io::Write;
    loop {
        match stream.write_vectored(bufs) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            res => return res,
        }
    }
}

/// Makes closing `stream` send RST and drop unsent data (cl-async's
/// `close :abort t`).
pub(crate) fn set_zero_linger(stream: &Sock) -> io::Result<()> {
    #[cfg(unix)]
    {
        rustix::net::sockopt::set_socket_linger(stream, Some(std::time::Duration::ZERO)).map_err(Into::into)
    }
    #[cfg(not(unix))]
    {
        let _ = stream;
        Ok(())
    }
}

/// A new TCP socket for `addr`'s family, closed on `exec` (see
/// [`socket_of`]).
#[cfg(unix)]
pub(crate) fn stream_socket(addr: std::net::SocketAddr) -> io::Result<std::os::fd::OwnedFd> {
    use rustix::net::AddressFamily;
    socket_of(if addr.is_ipv6() {
        AddressFamily::INET6
    } else {
        AddressFamily::INET
    })
}

/// A new stream socket of `family`, closed on `exec`: in one call where
/// the system can (Linux, the BSDs), else set right after (Apple's systems
/// have no `SOCK_CLOEXEC`).
#[cfg(unix)]
pub(crate) fn socket_of(family: rustix::net::AddressFamily) -> io::Result<std::os::fd::OwnedFd> {
    use rustix::net::SocketType;
    #[cfg(not(target_vendor = "apple"))]
    let fd = rustix::net::socket_with(family, SocketType::STREAM, rustix::net::SocketFlags::CLOEXEC, None)?;
    #[cfg(target_vendor = "apple")]
    let fd = {
        let fd = rustix::net::socket(family, SocketType::STREAM, None)?;
        rustix::io::fcntl_setfd(&fd, rustix::io::FdFlags::CLOEXEC)?;
        fd
    };
    Ok(fd)
}
