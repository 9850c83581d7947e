//! What a connection moves bytes through: a stream socket registered with
//! async-io's reactor (TCP, or a Unix-domain socket), and, for TLS, the
//! rustls connection over it.
//!
//! The engine ([`Conn`](crate::conn::Conn)) is written once over [`Io`]:
//! it reads into its input buffer, writes from its output queue and waits
//! for readiness, and never asks which transport it has. Readiness is the
//! socket's in every case: rustls reads and writes records only
//! when its socket does.

use std::io::{self, IoSlice};
use std::net::Shutdown;
use std::sync::Arc;

use async_io::{Async, ReadableOwned, WritableOwned};
use bytes::BytesMut;

use crate::sys;

/// A connected stream socket.
#[derive(Debug)]
pub(crate) enum Sock {
    Tcp(std::net::TcpStream),
    #[cfg(unix)]
    Unix(std::os::unix::net::UnixStream),
    /// TLS over one of the others (boxed: rarer and larger). rustls's state
    /// lives here, once, rather than beside the socket in both of the
    /// connection's sides.
    #[cfg(feature = "tls")]
    Tls(Box<TlsSock>),
}

/// rustls's state and the socket its records cross.
#[cfg(feature = "tls")]
#[derive(Debug)]
pub(crate) struct TlsSock {
    pub(crate) wire: Sock,
    pub(crate) tls: crate::tls::TlsConn,
}

#[cfg(unix)]
impl std::os::fd::AsFd for Sock {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        match self {
            Sock::Tcp(s) => s.as_fd(),
            Sock::Unix(s) => s.as_fd(),
            #[cfg(feature = "tls")]
            Sock::Tls(t) => t.wire.as_fd(),
        }
    }
}

#[cfg(windows)]
impl std::os::windows::io::AsSocket for Sock {
    fn as_socket(&self) -> std::os::windows::io::BorrowedSocket<'_> {
        match self {
            Sock::Tcp(s) => s.as_socket(),
            #[cfg(feature = "tls")]
            Sock::Tls(t) => t.wire.as_socket(),
        }
    }
}

/// std's reads, for the systems where streamish does not make the system
/// calls itself (see `sys`).
impl io::Read for &Sock {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Sock::Tcp(s) => io::Read::read(&mut &*s, buf),
            #[cfg(unix)]
            Sock::Unix(s) => io::Read::read(&mut &*s, buf),
            #[cfg(feature = "tls")]
            Sock::Tls(t) => io::Read::read(&mut &t.wire, buf),
        }
    }
}

/// std's writes, as for reads.
impl io::Write for &Sock {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Sock::Tcp(s) => io::Write::write(&mut &*s, buf),
            #[cfg(unix)]
            Sock::Unix(s) => io::Write::write(&mut &*s, buf),
            #[cfg(feature = "tls")]
            Sock::Tls(t) => io::Write::write(&mut &t.wire, buf),
        }
    }
    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        match self {
            Sock::Tcp(s) => io::Write::write_vectored(&mut &*s, bufs),
            #[cfg(unix)]
            Sock::Unix(s) => io::Write::write_vectored(&mut &*s, bufs),
            #[cfg(feature = "tls")]
            Sock::Tls(t) => io::Write::write_vectored(&mut &t.wire, bufs),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Sock {
    /// The TCP socket, or `Unsupported` for another transport.
    pub(crate) fn tcp(&self) -> io::Result<&std::net::TcpStream> {
        match self {
            Sock::Tcp(s) => Ok(s),
            #[cfg(feature = "tls")]
            Sock::Tls(t) => t.wire.tcp(),
            #[allow(unreachable_patterns)]
            _ => Err(io::Error::new(io::ErrorKind::Unsupported, "not a TCP socket")),
        }
    }

    /// The Unix-domain socket, or `Unsupported` for another transport.
    #[cfg(unix)]
    pub(crate) fn unix(&self) -> io::Result<&std::os::unix::net::UnixStream> {
        match self {
            Sock::Unix(s) => Ok(s),
            #[cfg(feature = "tls")]
            Sock::Tls(t) => t.wire.unix(),
            _ => Err(io::Error::new(io::ErrorKind::Unsupported, "not a Unix-domain socket")),
        }
    }

    pub(crate) fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        match self {
            Sock::Tcp(s) => s.shutdown(how),
            #[cfg(unix)]
            Sock::Unix(s) => s.shutdown(how),
            #[cfg(feature = "tls")]
            Sock::Tls(t) => t.wire.shutdown(how),
        }
    }
}

/// The transport of one connection, shared by its input and output sides
/// (each reaches it under its own lock).
#[derive(Clone)]
pub(crate) struct Io {
    sock: Arc<Async<Sock>>,
}

impl Io {
    pub(crate) fn new(sock: Async<Sock>) -> Io {
        Io { sock: Arc::new(sock) }
    }

    /// rustls's state and the socket under it, if this is TLS.
    #[cfg(feature = "tls")]
    #[inline]
    fn tls_parts(&self) -> Option<(&Sock, &crate::tls::TlsConn)> {
        match self.sock.get_ref() {
            Sock::Tls(t) => Some((&t.wire, &t.tls)),
            _ => None,
        }
    }

    /// The socket under the transport.
    pub(crate) fn get_ref(&self) -> &Sock {
        self.sock.get_ref()
    }

    pub(crate) fn readable(&self) -> ReadableOwned<Sock> {
        self.sock.clone().readable_owned()
    }

    pub(crate) fn writable(&self) -> WritableOwned<Sock> {
        self.sock.clone().writable_owned()
    }

    /// Reads once into the spare capacity of `buf`. `Ok(0)` is end of file;
    /// a short read means the socket is drained. `WouldBlock` is passed on.
    #[inline]
    pub(crate) fn read_into(&self, buf: &mut BytesMut) -> io::Result<usize> {
        #[cfg(feature = "tls")]
        if let Some((wire, tls)) = self.tls_parts() {
            return tls.read_into(wire, buf);
        }
        sys::read_into(self.get_ref(), buf)
    }

    /// Reads once into `out`, as [`read_into`](Io::read_into).
    #[inline]
    pub(crate) fn read_slice(&self, out: &mut [u8]) -> io::Result<usize> {
        #[cfg(feature = "tls")]
        if let Some((wire, tls)) = self.tls_parts() {
            return tls.read_slice(wire, out);
        }
        sys::read_slice(self.get_ref(), out)
    }

    /// Writes `bufs` in one go; how many of their bytes the transport
    /// took. Bytes rustls took may wait in it as sealed records: see
    /// [`flush_pending`](Io::flush_pending).
    #[inline]
    pub(crate) fn write_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        #[cfg(feature = "tls")]
        if let Some((wire, tls)) = self.tls_parts() {
            return tls.write_vectored(wire, bufs);
        }
        sys::write_vectored(self.get_ref(), bufs)
    }

    /// Sends what the transport holds itself (rustls's sealed
    /// records); `WouldBlock` while some is left.
    #[inline]
    pub(crate) fn flush_pending(&self) -> io::Result<()> {
        #[cfg(feature = "tls")]
        if let Some((wire, tls)) = self.tls_parts() {
            return tls.flush(wire);
        }
        Ok(())
    }

    /// Ends the write side: TLS's `close_notify`, sent, then the
    /// socket's `shutdown(Write)`. `WouldBlock` until the alert is out.
    pub(crate) fn shutdown_write(&self) -> io::Result<()> {
        #[cfg(feature = "tls")]
        if let Some((wire, tls)) = self.tls_parts() {
            tls.close_notify(wire)?;
        }
        self.get_ref().shutdown(Shutdown::Write)
    }

    /// Makes closing send a reset and drop unsent data.
    pub(crate) fn set_zero_linger(&self) -> io::Result<()> {
        sys::set_zero_linger(self.get_ref())
    }

    /// rustls's state, if this transport is TLS.
    #[cfg(feature = "tls")]
    pub(crate) fn tls(&self) -> Option<&crate::tls::TlsConn> {
        self.tls_parts().map(|(_, s)| s)
    }

    /// Whether sealed TLS records wait in the transport.
    #[inline]
    pub(crate) fn has_pending(&self) -> bool {
        #[cfg(feature = "tls")]
        if let Some((_, tls)) = self.tls_parts() {
            return tls.has_pending();
        }
        false
    }

    /// Whether a read of `n` bytes into room for `want` left the socket
    /// drained, so the next read should wait for readiness rather than
    /// spend a system call on `EAGAIN`: a short read for a socket; for TLS,
    /// rustls's own answer, since it may stop short of the room for a
    /// reason of its own (a record's end, `close_notify`).
    #[inline]
    pub(crate) fn drained_after(&self, n: usize, want: usize) -> bool {
        #[cfg(feature = "tls")]
        if let Some((_, tls)) = self.tls_parts() {
            return tls.drained();
        }
        n < want
    }

    /// Whether this transport is TLS.
    #[inline]
    pub(crate) fn is_tls(&self) -> bool {
        #[cfg(feature = "tls")]
        return self.tls_parts().is_some();
        #[cfg(not(feature = "tls"))]
        false
    }
}
