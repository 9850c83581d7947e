//! [`Socket`]: the cheap, shareable handle to one connection.

use std::any::Any;
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use async_io::Async;
use bytes::Bytes;

use crate::conn::Conn;
use crate::transport::{Io, Sock};

/// A handle to one connection, over TCP, a Unix-domain socket or TLS:
/// cl-async's `socket`.
///
/// Cheap to clone (`Arc`), `Send + Sync`, and usable from any task or
/// thread: the callback face hands it to callbacks, and a proxy writes to
/// its partner's socket from its own callbacks. Writes never wait; they go
/// out by themselves (the callback driver flushes, or with no driver the
/// reactor does, at the latest when the writing task next waits). When the
/// last handle of a connection is dropped, what is queued is still sent,
/// then the connection closes. Wrap it in a
/// [`TcpStream`](crate::TcpStream) (cl-async's
/// `make-instance 'async-io-stream :socket sock`) to read and await.
///
/// # Examples
///
/// ```
/// use futures_lite::{AsyncReadExt, AsyncWriteExt};
/// use streamish::{TcpListener, Socket, TcpStream};
///
/// # futures_lite::future::block_on(async {
/// let server = TcpListener::bind("127.0.0.1:0")?;
/// let client = TcpStream::connect(server.local_addr()).await?;
/// let (mut peer, _) = server.accept().await?;
///
/// let socket: Socket = client.socket().clone();
/// socket.write(b"hai")?; // never waits
/// let mut stream = TcpStream::new(socket); // the same connection
/// stream.close().await?; // flushes, then shuts down the write side
///
/// let mut got = String::new();
/// peer.read_to_string(&mut got).await?;
/// assert_eq!(got, "hai");
/// # std::io::Result::Ok(()) }).unwrap();
/// ```
pub struct Socket {
    pub(crate) conn: Arc<Conn>,
}

/// A [`Socket`] over TCP: cl-async's `tcp-socket`. The callback face's
/// `tcp_connect` and `tcp_server` hand these to callbacks.
pub type TcpSocket = Socket;

impl Clone for Socket {
    fn clone(&self) -> Socket {
        Socket::from_conn(self.conn.clone())
    }
}

/// The last handle of a connection delivers what is queued, then closes
/// gracefully, without blocking (see [`DROP_LINGER`](crate::DROP_LINGER)).
impl Drop for Socket {
    fn drop(&mut self) {
        self.conn.handle_dropped();
    }
}

impl Socket {
    pub(crate) fn from_conn(conn: Arc<Conn>) -> Socket {
        conn.handle_made();
        Socket { conn }
    }

    /// A socket over a connected transport.
    pub(crate) fn from_io(io: Io) -> Socket {
        Socket::from_conn(Conn::new(Some(io)))
    }

    /// Queues `data` to be sent (cl-async's `write-socket-data`). Never
    /// waits and never takes part of it. Fails with
    /// [`Event::Closed`](crate::Event::Closed) once the socket is closing.
    pub fn write(&self, data: &[u8]) -> io::Result<()> {
        self.conn.write_now(data)
    }

    /// Queues `data` without copying it (unless it is small).
    pub fn write_bytes(&self, data: impl Into<Bytes>) -> io::Result<()> {
        self.conn.write_bytes_now(data.into())
    }

    /// Closes gracefully (cl-async's `close-socket`): refuses new writes;
    /// what is queued still goes out, then the write side is shut down and
    /// the socket released. Returns at once; the connection's driver (or
    /// the next poll of a stream over it) finishes the close.
    pub fn close(&self) {
        self.conn.request_close();
    }

    /// Closes now, dropping queued output (cl-async's
    /// `close-socket :force t`); the peer sees a reset.
    pub fn close_force(&self) {
        self.conn.abort();
    }

    /// Whether the socket is closed (cl-async's `socket-closed-p`): closed,
    /// aborted, or closing gracefully.
    pub fn is_closed(&self) -> bool {
        self.conn.is_closing()
    }

    /// Whether the socket is open: not closed, not closing.
    pub fn is_open(&self) -> bool {
        !self.conn.is_closing()
    }

    /// Whether the connection is established (the callback face's
    /// `tcp_connect` returns before it is).
    pub fn is_connected(&self) -> bool {
        self.conn.is_connected() && !self.conn.is_closed()
    }

    fn with_io<R>(&self, f: impl FnOnce(&std::net::TcpStream) -> io::Result<R>) -> io::Result<R> {
        match self.conn.io() {
            Some(io) => f(io.get_ref().tcp()?),
            None if self.conn.is_closed() => Err(self.conn.closed_error()),
            None => Err(io::Error::new(
                io::ErrorKind::NotConnected,
                "the socket is not connected yet",
            )),
        }
    }

    /// The peer's address, over TCP. A Unix-domain socket has no IP
    /// address: this fails with `Unsupported` there (wrap the socket in a
    /// `UnixStream` and ask it).
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.with_io(|s| s.peer_addr())
    }

    /// The local address, over TCP; `Unsupported` on a Unix-domain socket,
    /// as [`peer_addr`](Socket::peer_addr).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.with_io(|s| s.local_addr())
    }

    /// Sets `TCP_NODELAY`. streamish turns it on for the TCP connections
    /// it makes and accepts, because it coalesces small writes itself.
    /// `Unsupported` on a Unix-domain socket.
    pub fn set_nodelay(&self, on: bool) -> io::Result<()> {
        self.with_io(|s| s.set_nodelay(on))
    }

    /// Whether `TCP_NODELAY` is set.
    pub fn nodelay(&self) -> io::Result<bool> {
        self.with_io(|s| s.nodelay())
    }

    /// Bytes read from the kernel so far.
    pub fn bytes_read(&self) -> u64 {
        self.conn.bytes_read()
    }

    /// Bytes handed to the kernel so far.
    pub fn bytes_written(&self) -> u64 {
        self.conn.bytes_written()
    }

    /// Bytes queued and not yet handed to the kernel.
    pub fn queued(&self) -> usize {
        self.conn.queued()
    }

    /// Bytes read and buffered, not yet consumed.
    pub fn buffered(&self) -> usize {
        self.conn.buffered()
    }

    /// Sets the output queue's water marks: `AsyncWrite::poll_write` holds
    /// back once `high` bytes are queued and resumes below `low`. Fails with
    /// `InvalidInput` unless `0 < high`, `low <= high` and `high` is at most
    /// 4 GiB (`u32::MAX`). The defaults are
    /// [`DEFAULT_HIGH_WATER`](crate::DEFAULT_HIGH_WATER) and
    /// [`DEFAULT_LOW_WATER`](crate::DEFAULT_LOW_WATER).
    pub fn set_water_marks(&self, high: usize, low: usize) -> io::Result<()> {
        self.conn.set_water_marks(high, low)
    }

    /// The output queue's `(high, low)` water marks.
    pub fn water_marks(&self) -> (usize, usize) {
        self.conn.water_marks()
    }

    /// Attaches application data (cl-async's `(setf socket-data)`),
    /// replacing any. It is dropped when the socket closes, so two sockets
    /// that refer to each other through it do not leak.
    ///
    /// # Examples
    ///
    /// ```
    /// use streamish::{TcpListener, TcpStream};
    ///
    /// # futures_lite::future::block_on(async {
    /// let server = TcpListener::bind("127.0.0.1:0")?;
    /// let stream = TcpStream::connect(server.local_addr()).await?;
    /// let socket = stream.socket();
    /// socket.set_data(42u32);
    /// assert_eq!(socket.data::<u32>().as_deref(), Some(&42));
    /// assert!(socket.data::<String>().is_none());
    /// # std::io::Result::Ok(()) }).unwrap();
    /// ```
    pub fn set_data<T: Any + Send + Sync>(&self, data: T) {
        self.conn.set_data(Some(Arc::new(data)));
    }

    /// The application data, if there is some of type `T` (cl-async's
    /// `socket-data`).
    pub fn data<T: Any + Send + Sync>(&self) -> Option<Arc<T>> {
        self.conn.data()?.downcast::<T>().ok()
    }

    /// Removes the application data.
    pub fn clear_data(&self) {
        self.conn.set_data(None);
    }

    /// Bounds what this connection may queue through writes that never
    /// wait (`write`, `write_bytes`, `write_sequence`): a write that would
    /// pass `max` bytes fails, and the connection with it, with
    /// [`Event::QueueFull`](crate::Event::QueueFull) (the callback face
    /// reports it to `event_cb`). `AsyncWrite` never gets there: it holds
    /// back at the high-water mark. The default is
    /// [`DEFAULT_MAX_QUEUED`](crate::DEFAULT_MAX_QUEUED); zero and more
    /// than 4 GiB (`u32::MAX`) are refused with `InvalidInput`.
    ///
    /// # Examples
    ///
    /// ```
    /// use streamish::{Event, TcpListener, TcpStream};
    ///
    /// # futures_lite::future::block_on(async {
    /// let server = TcpListener::bind("127.0.0.1:0")?;
    /// let socket = TcpStream::connect(server.local_addr()).await?.into_socket();
    /// socket.set_max_queued(4)?;
    /// let err = socket.write(b"12345").unwrap_err();
    /// assert!(matches!(Event::from(err), Event::QueueFull { .. }));
    /// # std::io::Result::Ok(()) }).unwrap();
    /// ```
    pub fn set_max_queued(&self, max: usize) -> io::Result<()> {
        self.conn.set_max_queued(max)
    }

    /// The bound on queued output (see [`set_max_queued`](Socket::set_max_queued)).
    pub fn max_queued(&self) -> usize {
        self.conn.max_queued()
    }

    /// Whether two handles refer to the same connection.
    pub fn ptr_eq(&self, other: &Socket) -> bool {
        Arc::ptr_eq(&self.conn, &other.conn)
    }
}

impl fmt::Debug for Socket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Socket");
        let io = self.conn.io();
        let sock = io.as_ref().map(Io::get_ref);
        #[cfg(feature = "tls")]
        let sock = match sock {
            Some(Sock::Tls(t)) => {
                d.field("tls", &true);
                Some(&t.wire)
            }
            other => other,
        };
        match sock {
            Some(Sock::Tcp(s)) => {
                if let Ok(a) = s.local_addr() {
                    d.field("local", &a);
                }
                if let Ok(a) = s.peer_addr() {
                    d.field("peer", &a);
                }
            }
            #[cfg(unix)]
            Some(Sock::Unix(s)) => {
                if let Ok(a) = s.local_addr() {
                    d.field("local", &a);
                }
                if let Ok(a) = s.peer_addr() {
                    d.field("peer", &a);
                }
            }
            _ => {}
        }
        d.field("open", &self.is_open()).finish()
    }
}

impl TryFrom<Async<std::net::TcpStream>> for Socket {
    type Error = io::Error;

    /// Takes over a stream already registered with the reactor (it is
    /// registered again, as a transport streamish can also serve over
    /// Unix-domain sockets and TLS).
    fn try_from(io: Async<std::net::TcpStream>) -> io::Result<Socket> {
        Socket::try_from(io.into_inner()?)
    }
}

impl TryFrom<std::net::TcpStream> for Socket {
    type Error = io::Error;

    /// Registers a connected std stream with the reactor (it is made
    /// non-blocking).
    fn try_from(s: std::net::TcpStream) -> io::Result<Socket> {
        Ok(Socket::from_io(Io::new(Async::new(Sock::Tcp(s))?)))
    }
}
