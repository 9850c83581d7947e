//! Unix-domain streams: cl-async's pipes. [`UnixStream`] and its halves
//! are declared by `stream_types!` like the TCP ones, over the same
//! engine; [`UnixListener`] accepts them through the listener machinery
//! TCP uses. The policy on socket files is on [`UnixListener`].

use std::fmt;
use std::io;
use std::net::Shutdown;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::os::unix::net::{SocketAddr, UnixListener as StdListener, UnixStream as StdStream};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::task::{Context, Poll};

use async_io::{Async, Timer};
use futures_lite::Stream;
use rustix::net::{AddressFamily, SocketAddrUnix};

use crate::listener::{Accept, Acceptor, Waiting};
use crate::stream::stream_types;
use crate::transport::{Io, Sock};
use crate::tuning::{DEFAULT_BACKLOG, PIPE_RETRY_MAX, PIPE_RETRY_MIN};
use crate::wait::WaitId;
use crate::{Event, Socket};

stream_types! {
/// A Unix-domain stream in both directions: cl-async's `async-io-stream`
/// over a `pipe` (cl-async's name for a Unix-domain socket).
///
/// Everything [`TcpStream`](crate::TcpStream) does, it does the same way
/// (the same engine moves the bytes): reads come from an input buffer the
/// stream fills from the socket, writes go to an output queue that is sent
/// by itself, and it implements the cl-async traits and futures-io's
/// `AsyncRead`, `AsyncBufRead` and `AsyncWrite`. Only connecting and the
/// addresses differ. Its [`Socket`]'s `peer_addr` and `local_addr` are
/// TCP's and fail with `Unsupported` here: use the stream's.
///
/// # Examples
///
/// ```
/// use futures_lite::{AsyncReadExt, AsyncWriteExt};
/// use streamish::{UnixListener, UnixStream};
///
/// # futures_lite::future::block_on(async {
/// # let dir = std::env::temp_dir().join(format!("streamish-doc-stream-{}", std::process::id()));
/// # std::fs::create_dir_all(&dir)?;
/// let path = dir.join("echo.sock");
/// let server = UnixListener::bind(&path)?;
/// let mut client = UnixStream::connect(&path).await?;
/// let (mut peer, _) = server.accept().await?;
///
/// client.write_all(b"ping").await?; // sent, no flush needed
/// let mut buf = [0u8; 4];
/// peer.read_exact(&mut buf).await?;
/// assert_eq!(&buf, b"ping");
/// drop(server); // removes the socket file
/// assert!(!path.exists());
/// # std::fs::remove_dir(&dir)?;
/// # std::io::Result::Ok(()) }).unwrap();
/// ```
    UnixStream,
    /// The input half of a [`UnixStream`]: cl-async's `async-input-stream`.
    ///
    /// Made by [`UnixStream::split`] or by wrapping a socket with
    /// [`UnixInputStream::new`].
    UnixInputStream,
    /// The output half of a [`UnixStream`]: cl-async's
    /// `async-output-stream`.
    ///
    /// Made by [`UnixStream::split`] or by wrapping a socket with
    /// [`UnixOutputStream::new`]. Dropping the half made by `split` shuts
    /// down the write side once its queued bytes are out (the peer sees end
    /// of file); one made by `new` leaves the socket as it is.
    UnixOutputStream,
}

impl UnixStream {
    /// Connects to the socket file at `path` (cl-async's `pipe-connect`,
    /// awaited). The connect never blocks the executor: to a listener
    /// whose backlog is full it waits, retrying, until the server accepts
    /// (as a TCP connect waits on a full backlog); race a timer to bound
    /// it. A path where nobody listens fails with
    /// [`Event::Refused`]; a missing path with `NotFound`
    /// ([`Event::Io`]); both name the path.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::io::ErrorKind;
    /// use streamish::UnixStream;
    ///
    /// # futures_lite::future::block_on(async {
    /// let err = UnixStream::connect("/nonexistent/streamish.sock").await.unwrap_err();
    /// assert_eq!(err.kind(), ErrorKind::NotFound);
    /// assert!(err.to_string().contains("/nonexistent/streamish.sock"));
    /// # });
    /// ```
    pub async fn connect(path: impl AsRef<Path>) -> io::Result<UnixStream> {
        let io = connect(path.as_ref()).await?;
        Ok(UnixStream::new(Socket::from_io(Io::new(io))))
    }

    /// A connected pair of unnamed streams (`socketpair`), for talking
    /// between two tasks or threads, or to a child process.
    ///
    /// # Examples
    ///
    /// ```
    /// use futures_lite::{AsyncReadExt, AsyncWriteExt};
    /// use streamish::UnixStream;
    ///
    /// # futures_lite::future::block_on(async {
    /// let (mut a, mut b) = UnixStream::pair()?;
    /// a.write_all(b"hai").await?;
    /// a.close().await?; // half-close: b reads to the end
    /// let mut got = String::new();
    /// b.read_to_string(&mut got).await?;
    /// assert_eq!(got, "hai");
    /// # std::io::Result::Ok(()) }).unwrap();
    /// ```
    pub fn pair() -> io::Result<(UnixStream, UnixStream)> {
        let (a, b) = StdStream::pair()?;
        Ok((UnixStream::try_from(a)?, UnixStream::try_from(b)?))
    }

    /// The peer's address: its path if it is bound to one (a client made
    /// by [`connect`](UnixStream::connect) is not: its address is unnamed).
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        with_unix(self.socket(), |s| s.peer_addr())
    }

    /// The local address: the listener's path on an accepted stream,
    /// unnamed on a client.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        with_unix(self.socket(), |s| s.local_addr())
    }

    /// Shuts down the read side, the write side or both at once, without
    /// flushing (as `std::os::unix::net::UnixStream::shutdown`).
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        let conn = &self.socket().conn;
        let io = conn.io().ok_or_else(|| conn.closed_error())?;
        io.get_ref().shutdown(how)?;
        if how != Shutdown::Read {
            conn.mark_write_shut();
        }
        Ok(())
    }
}

/// Runs `f` on the socket's Unix-domain stream, with the errors of
/// `Socket`'s TCP accessors: closed, not connected yet, another transport.
fn with_unix<R>(socket: &Socket, f: impl FnOnce(&StdStream) -> io::Result<R>) -> io::Result<R> {
    match socket.conn.io() {
        Some(io) => f(io.get_ref().unix()?),
        None if socket.conn.is_closed() => Err(socket.conn.closed_error()),
        None => Err(io::Error::new(
            io::ErrorKind::NotConnected,
            "the socket is not connected yet",
        )),
    }
}

impl TryFrom<StdStream> for UnixStream {
    type Error = io::Error;

    /// Registers a connected std stream with the reactor (it is made
    /// non-blocking).
    fn try_from(s: StdStream) -> io::Result<UnixStream> {
        Ok(UnixStream::new(Socket::from_io(Io::new(Async::new(Sock::Unix(s))?))))
    }
}

impl TryFrom<Async<StdStream>> for UnixStream {
    type Error = io::Error;

    /// Takes over a stream already registered with the reactor (it is
    /// registered again, as the transport of the engine).
    fn try_from(io: Async<StdStream>) -> io::Result<UnixStream> {
        UnixStream::try_from(io.into_inner()?)
    }
}

/// The system's address for `path`; a path too long for it is
/// `InvalidInput`, naming it.
fn unix_addr(path: &Path) -> io::Result<SocketAddrUnix> {
    SocketAddrUnix::new(path).map_err(|e| {
        let e = io::Error::from(e);
        let why = match e.raw_os_error() {
            Some(code) if code == rustix::io::Errno::NAMETOOLONG.raw_os_error() => {
                "the path is too long for a socket address (about 100 bytes at most)".to_string()
            }
            _ => e.to_string(),
        };
        io::Error::new(io::ErrorKind::InvalidInput, format!("{}: {why}", path.display()))
    })
}

/// A new Unix-domain stream socket, non-blocking and closed on `exec`.
fn new_socket() -> io::Result<StdStream> {
    let stream = StdStream::from(crate::sys::socket_of(AddressFamily::UNIX)?);
    stream.set_nonblocking(true)?;
    Ok(stream)
}

/// Connects a new socket to `path` without blocking, registered once with
/// the reactor as the transport it stays. Errors name the path and are
/// classified as events (`Refused` when nobody listens).
pub(crate) async fn connect(path: &Path) -> io::Result<Async<Sock>> {
    let named = |e: io::Error| -> io::Error {
        let msg = match e.kind() {
            io::ErrorKind::ConnectionRefused => format!(
                "could not connect to {}: nobody listens on it (a stale socket file?): {e}",
                path.display()
            ),
            _ => format!("could not connect to {}: {e}", path.display()),
        };
        Event::from(io::Error::new(e.kind(), msg)).into()
    };
    let addr = unix_addr(path)?;
    let io = Async::new_nonblocking(Sock::Unix(new_socket()?))?;
    let mut delay = PIPE_RETRY_MIN;
    loop {
        match rustix::net::connect(io.get_ref(), &addr) {
            Ok(()) => return Ok(io),
            // The backlog is full (Linux). No event says when it has room
            // again, so try again later: the connect then waits, as a TCP
            // connect to a full backlog does, without blocking the executor.
            Err(rustix::io::Errno::AGAIN) => {
                Timer::after(delay).await;
                delay = (delay * 2).min(PIPE_RETRY_MAX);
            }
            // Under way (not seen on Linux, allowed elsewhere): the socket
            // turns writable once it is done.
            Err(rustix::io::Errno::INPROGRESS) | Err(rustix::io::Errno::INTR) => {
                io.writable().await?;
                let s = io.get_ref().unix()?;
                if let Some(e) = s.take_error()? {
                    return Err(named(e));
                }
                // Writable is not proof of a connection: a failed one is
                // writable too, with no peer.
                s.peer_addr().map_err(named)?;
                return Ok(io);
            }
            Err(e) => return Err(named(e.into())),
        }
    }
}

/// A Unix-domain listener: the await face of cl-async's `pipe-server`.
/// [`pipe_server`](crate::pipe_server) is the callback face over the same
/// listening socket.
///
/// # The socket file
///
/// Binding creates a socket file at the path. A file already there is
/// never replaced: binding fails with [`Event::AddressInUse`], and the
/// error says which case it is: a server listening, a stale socket file
/// (a connect to it is refused: a server that died left it behind), or a
/// file that is not a socket. Removing a stale file is the application's
/// call, since only it knows that no other server of its own is starting
/// on that path. Telling a live server from a stale file takes a connect,
/// which a live server sees as a connection that closes at once.
///
/// The listener removes the file it created when it is dropped, if the
/// path still names that file (the same device and inode as at bind): a
/// file put there since is someone else's and is left alone. A process
/// that dies leaves the file; the next bind reports it as stale.
///
/// Abstract socket addresses (Linux) are not supported.
///
/// # Examples
///
/// ```
/// use futures_lite::{AsyncReadExt, AsyncWriteExt, StreamExt};
/// use streamish::{UnixListener, UnixStream};
///
/// # futures_lite::future::block_on(async {
/// # let dir = std::env::temp_dir().join(format!("streamish-doc-listener-{}", std::process::id()));
/// # std::fs::create_dir_all(&dir)?;
/// let path = dir.join("server.sock");
/// let server = UnixListener::bind(&path)?;
/// let mut client = UnixStream::connect(&path).await?;
/// client.write_all(b"hai").await?;
/// client.close().await?;
///
/// let mut peer = server.incoming().next().await.unwrap()?;
/// let mut got = Vec::new();
/// peer.read_to_end(&mut got).await?;
/// assert_eq!(got, b"hai");
///
/// // The path is taken while the server lives.
/// let err = UnixListener::bind(&path).unwrap_err();
/// assert_eq!(err.kind(), std::io::ErrorKind::AddrInUse);
/// drop(server);
/// assert!(!path.exists());
/// # std::fs::remove_dir(&dir)?;
/// # std::io::Result::Ok(()) }).unwrap();
/// ```
pub struct UnixListener {
    acceptor: Acceptor<StdListener>,
    local: SocketAddr,
    path: PathBuf,
    /// The device and inode of the socket file made at bind: it is removed
    /// on drop only if the path still names it.
    file: Option<(u64, u64)>,
}

impl Accept for StdListener {
    type Stream = StdStream;
    type Addr = SocketAddr;

    fn accept_one(&self) -> io::Result<(StdStream, SocketAddr)> {
        self.accept()
    }
}

impl UnixListener {
    /// Creates a socket file at `path` and listens on it, with the default
    /// backlog. A file already at `path` fails with
    /// [`Event::AddressInUse`], which says whether a server listens there,
    /// the file is a stale socket (nobody listens: a server that died left
    /// it; it is not removed for you), or it is not a socket. A missing
    /// directory is `NotFound`; a path too long for a socket address,
    /// `InvalidInput`.
    pub fn bind(path: impl AsRef<Path>) -> io::Result<UnixListener> {
        UnixListener::bind_with_backlog(path, DEFAULT_BACKLOG)
    }

    /// Binds with a listen backlog of `backlog` pending connections.
    pub fn bind_with_backlog(path: impl AsRef<Path>, backlog: u32) -> io::Result<UnixListener> {
        let path = path.as_ref();
        let addr = unix_addr(path)?;
        let fd = crate::sys::socket_of(AddressFamily::UNIX)?;
        if let Err(e) = rustix::net::bind(&fd, &addr) {
            if e == rustix::io::Errno::ADDRINUSE {
                return Err(in_use(path));
            }
            let e = io::Error::from(e);
            return Err(Event::from(io::Error::new(
                e.kind(),
                format!("cannot listen on {}: {e}", path.display()),
            ))
            .into());
        }
        // From here on the file is ours: a failure removes it.
        let file = std::fs::symlink_metadata(path).ok().map(|m| (m.dev(), m.ino()));
        match listen_on(fd, backlog) {
            Ok((listener, local)) => Ok(UnixListener {
                acceptor: Acceptor::new(listener),
                local,
                path: path.to_path_buf(),
                file,
            }),
            Err(e) => {
                remove_if_same(path, file);
                Err(e)
            }
        }
    }

    /// The address the server listens on (its path).
    pub fn local_addr(&self) -> SocketAddr {
        self.local.clone()
    }

    /// The path of the socket file, as given to `bind`.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Waits for the next connection. Several tasks may wait at once; a
    /// canceled wait leaves nothing behind. The peer's address is usually
    /// unnamed (clients are not bound to a path).
    pub async fn accept(&self) -> io::Result<(UnixStream, SocketAddr)> {
        let wait = self.acceptor.waiting();
        futures_lite::future::poll_fn(|cx| wait.poll_accept(cx).map(accepted)).await
    }

    /// Polls for the next connection. Tasks that poll this directly share
    /// one place among the waiters (the last to poll is woken), as with
    /// `Async::poll_readable`; [`accept`](UnixListener::accept) and
    /// [`incoming`](UnixListener::incoming) give each waiter its own.
    pub fn poll_accept(&self, cx: &mut Context<'_>) -> Poll<io::Result<(UnixStream, SocketAddr)>> {
        self.acceptor.poll_accept_as(WaitId::FIRST, cx).map(accepted)
    }

    /// The accepted connections as a `Stream`. An error (for example, out
    /// of file descriptors) is yielded and the stream goes on.
    pub fn incoming(&self) -> UnixIncoming<'_> {
        UnixIncoming {
            wait: self.acceptor.waiting(),
            path: &self.path,
        }
    }
}

/// Listens on a bound socket.
fn listen_on(fd: std::os::fd::OwnedFd, backlog: u32) -> io::Result<(Async<StdListener>, SocketAddr)> {
    rustix::net::listen(&fd, backlog.min(i32::MAX as u32) as i32)?;
    let listener = StdListener::from(fd);
    let local = listener.local_addr()?;
    Ok((Async::new(listener)?, local))
}

/// A std stream just accepted, as a [`UnixStream`].
fn accepted(res: io::Result<(StdStream, SocketAddr)>) -> io::Result<(UnixStream, SocketAddr)> {
    let (stream, addr) = res?;
    Ok((UnixStream::try_from(stream)?, addr))
}

/// The error of a bind to a path where a file is: which kind of file.
fn in_use(path: &Path) -> io::Error {
    let what = match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_socket() => match probe(path) {
            Ok(true) => "a server is listening on it".to_string(),
            Ok(false) => "it is a stale socket file: nobody listens on it (a server that died left it \
                 behind); it is not removed for you: remove it if no server uses that path, then bind again"
                .to_string(),
            Err(e) => format!("a socket file is there ({e})"),
        },
        Ok(_) => "a file that is not a socket is in the way".to_string(),
        Err(e) => format!("the path is in use ({e})"),
    };
    let error = io::Error::new(
        io::ErrorKind::AddrInUse,
        format!("cannot listen on {}: {what}", path.display()),
    );
    Event::AddressInUse { socket: None, error }.into()
}

/// Whether a server listens on the socket file at `path`: a connect that
/// is not refused. The connect never waits (a full backlog is a server
/// there); a listening server sees a connection that closes at once.
fn probe(path: &Path) -> io::Result<bool> {
    let s = new_socket()?;
    match rustix::net::connect(&s, &unix_addr(path)?) {
        Ok(()) | Err(rustix::io::Errno::AGAIN) | Err(rustix::io::Errno::INPROGRESS) => Ok(true),
        Err(rustix::io::Errno::CONNREFUSED) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Removes the socket file at `path` if it is still `file` (device and
/// inode): one that replaced it is someone else's.
fn remove_if_same(path: &Path, file: Option<(u64, u64)>) {
    let Some((dev, ino)) = file else { return };
    if let Ok(m) = std::fs::symlink_metadata(path) {
        if m.file_type().is_socket() && m.dev() == dev && m.ino() == ino {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Closes the listening socket and removes its socket file (see
/// [`UnixListener`]).
impl Drop for UnixListener {
    fn drop(&mut self) {
        remove_if_same(&self.path, self.file);
    }
}

impl fmt::Debug for UnixListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UnixListener").field("path", &self.path).finish()
    }
}

impl std::os::fd::AsFd for UnixListener {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.acceptor.get_ref().as_fd()
    }
}

impl std::os::fd::AsRawFd for UnixListener {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.acceptor.get_ref().as_raw_fd()
    }
}

/// The stream of [`UnixListener::incoming`]: each accepted connection. It
/// never ends; an accept error is yielded and it goes on.
#[must_use = "streams do nothing unless polled"]
pub struct UnixIncoming<'a> {
    wait: Waiting<'a, StdListener>,
    path: &'a Path,
}

impl Stream for UnixIncoming<'_> {
    type Item = io::Result<UnixStream>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.wait.poll_accept(cx).map(|r| Some(accepted(r).map(|(s, _)| s)))
    }
}

impl fmt::Debug for UnixIncoming<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UnixIncoming").field("path", &self.path).finish()
    }
}
