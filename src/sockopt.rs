//! What a tokio or std user reaches for on a socket: the common options,
//! the raw descriptor and the std socket, and readiness without reading.

use std::io;
#[cfg(unix)]
use std::time::Duration;

use crate::Socket;

/// Socket options, through rustix on Unix (no `unsafe` here).
#[cfg(unix)]
impl Socket {
    fn with_fd<R>(&self, f: impl FnOnce(&crate::transport::Sock) -> rustix::io::Result<R>) -> io::Result<R> {
        let io = self.conn.io().ok_or_else(|| self.conn.closed_error())?;
        Ok(f(io.get_ref())?)
    }

    /// Turns TCP keep-alive on, with `Some(idle)` before the first probe,
    /// or off with `None` (`SO_KEEPALIVE`, and `TCP_KEEPIDLE` where the
    /// system has it).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// # use streamish::{TcpListener, TcpStream};
    /// # futures_lite::future::block_on(async {
    /// # let server = TcpListener::bind("127.0.0.1:0")?;
    /// let stream = TcpStream::connect(server.local_addr()).await?;
    /// stream.socket().set_keepalive(Some(Duration::from_secs(60)))?;
    /// assert!(stream.socket().keepalive()?);
    /// stream.socket().set_recv_buffer_size(256 * 1024)?;
    /// stream.socket().set_linger(Some(Duration::ZERO))?; // close sends a reset
    /// # std::io::Result::Ok(()) }).unwrap();
    /// ```
    pub fn set_keepalive(&self, idle: Option<Duration>) -> io::Result<()> {
        use rustix::net::sockopt;
        self.with_fd(|s| sockopt::set_socket_keepalive(s, idle.is_some()))?;
        #[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))]
        if let Some(idle) = idle {
            self.with_fd(|s| sockopt::set_tcp_keepidle(s, idle.max(Duration::from_secs(1))))?;
        }
        Ok(())
    }

    /// Whether TCP keep-alive is on.
    pub fn keepalive(&self) -> io::Result<bool> {
        self.with_fd(|s| rustix::net::sockopt::socket_keepalive(s))
    }

    /// Sets the kernel's send buffer size (`SO_SNDBUF`; the system may
    /// round or double it).
    pub fn set_send_buffer_size(&self, size: usize) -> io::Result<()> {
        self.with_fd(|s| rustix::net::sockopt::set_socket_send_buffer_size(s, size))
    }

    /// The kernel's send buffer size (`SO_SNDBUF`).
    pub fn send_buffer_size(&self) -> io::Result<usize> {
        self.with_fd(|s| rustix::net::sockopt::socket_send_buffer_size(s))
    }

    /// Sets the kernel's receive buffer size (`SO_RCVBUF`; the system may
    /// round or double it).
    pub fn set_recv_buffer_size(&self, size: usize) -> io::Result<()> {
        self.with_fd(|s| rustix::net::sockopt::set_socket_recv_buffer_size(s, size))
    }

    /// The kernel's receive buffer size (`SO_RCVBUF`).
    pub fn recv_buffer_size(&self) -> io::Result<usize> {
        self.with_fd(|s| rustix::net::sockopt::socket_recv_buffer_size(s))
    }

    /// Sets `SO_LINGER`: `Some(Duration::ZERO)` makes closing send a reset,
    /// `None` restores the default.
    pub fn set_linger(&self, linger: Option<Duration>) -> io::Result<()> {
        self.with_fd(|s| rustix::net::sockopt::set_socket_linger(s, linger))
    }

    /// `SO_LINGER`.
    pub fn linger(&self) -> io::Result<Option<Duration>> {
        self.with_fd(|s| rustix::net::sockopt::socket_linger(s))
    }
}

impl Socket {
    /// A std socket for the same connection (a duplicated descriptor, left
    /// non-blocking), for APIs that take one. Bytes streamish has buffered
    /// are not in it; both close only once both are dropped or closed. On a
    /// TLS connection it is the TCP socket under TLS: what is
    /// written to it bypasses TLS. `Unsupported` on a Unix-domain socket.
    pub fn try_clone_std(&self) -> io::Result<std::net::TcpStream> {
        let io = self.conn.io().ok_or_else(|| self.conn.closed_error())?;
        io.get_ref().tcp()?.try_clone()
    }

    /// Waits until reading would not wait: bytes are buffered, or the
    /// kernel has some (or end of file, or an error). Consumes nothing.
    pub async fn readable(&self) -> io::Result<()> {
        if self.conn.buffered() > 0 {
            return Ok(());
        }
        let io = self.conn.io().ok_or_else(|| self.conn.closed_error())?;
        io.readable().await
    }

    /// Waits until the kernel would take a write.
    pub async fn writable(&self) -> io::Result<()> {
        let io = self.conn.io().ok_or_else(|| self.conn.closed_error())?;
        io.writable().await
    }
}

/// The raw descriptor, `-1` once the socket is closed (or, for a
/// `tcp_connect` socket, before it is connected). Not `AsFd`: another
/// handle may close the descriptor while a borrow of it lives; use
/// [`Socket::try_clone_std`] for an owned one.
#[cfg(unix)]
impl std::os::fd::AsRawFd for Socket {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.conn
            .io()
            .map_or(-1, |io| std::os::fd::AsFd::as_fd(io.get_ref()).as_raw_fd())
    }
}

/// The raw socket, `INVALID_SOCKET` once closed (see the Unix `AsRawFd`).
#[cfg(windows)]
impl std::os::windows::io::AsRawSocket for Socket {
    fn as_raw_socket(&self) -> std::os::windows::io::RawSocket {
        self.conn.io().map_or(!0, |io| {
            std::os::windows::io::AsSocket::as_socket(io.get_ref()).as_raw_socket()
        })
    }
}
