//! [`TcpListener`]: a listening socket that accepts [`TcpStream`]s, and
//! the accept machinery every listener shares ([`Acceptor`]; the
//! Unix-domain listener is its other user).

use std::fmt;
use std::io;
use std::net::{SocketAddr, TcpListener as StdListener, ToSocketAddrs};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};

use async_io::{Async, ReadableOwned};
use futures_lite::Stream;

use crate::tuning::DEFAULT_BACKLOG;
use crate::wait::{Ids, WaitId, Waiters, poll_ready};
use crate::{Event, TcpStream};

/// A TCP listener: the await face of cl-async's `tcp-server`, named as
/// std, tokio and async-net name theirs. [`tcp_server`](crate::tcp_server)
/// is the callback face over the same listening socket.
///
/// # Examples
///
/// ```
/// use futures_lite::{AsyncReadExt, AsyncWriteExt, StreamExt};
/// use streamish::{TcpListener, TcpStream};
///
/// # futures_lite::future::block_on(async {
/// let server = TcpListener::bind("127.0.0.1:0")?; // port 0: any free port
/// let addr = server.local_addr();
/// let mut client = TcpStream::connect(addr).await?;
/// client.write_all(b"hai").await?;
/// client.close().await?;
///
/// let mut incoming = server.incoming();
/// let mut peer = incoming.next().await.unwrap()?;
/// let mut got = Vec::new();
/// peer.read_to_end(&mut got).await?;
/// assert_eq!(got, b"hai");
/// # std::io::Result::Ok(()) }).unwrap();
/// ```
pub struct TcpListener {
    acceptor: Acceptor<StdListener>,
    local: SocketAddr,
}

/// A listening std socket: accepts one connection, without waiting.
pub(crate) trait Accept {
    /// The std stream accepted.
    type Stream;
    /// The peer's address.
    type Addr;

    /// Accepts one connection; `WouldBlock` when none waits.
    fn accept_one(&self) -> io::Result<(Self::Stream, Self::Addr)>;
}

impl Accept for StdListener {
    type Stream = std::net::TcpStream;
    type Addr = SocketAddr;

    fn accept_one(&self) -> io::Result<(std::net::TcpStream, SocketAddr)> {
        self.accept()
    }
}

/// Waiting for connections on a listening socket, shared by every task
/// that accepts: each waits under its own key, and one readiness wait
/// wakes them all (see `wait::poll_ready`: `Async::poll_readable` can
/// miss events, and makes tasks that poll it replace each other's waker).
pub(crate) struct Acceptor<L> {
    listener: Arc<Async<L>>,
    /// The wait for a connection in progress, and the tasks waiting.
    wait: Mutex<(Option<ReadableOwned<L>>, Waiters)>,
    /// Keys for the accept futures and streams that wait; the first one
    /// is `poll_accept`'s, whose callers replace each other's waker as
    /// `Async::poll_readable`'s do.
    ids: Ids,
}

impl<L: Accept> Acceptor<L> {
    pub(crate) fn new(listener: Async<L>) -> Acceptor<L> {
        let ids = Ids::default();
        // Reserved for `poll_accept` (`WaitId::FIRST`).
        ids.next();
        Acceptor {
            listener: Arc::new(listener),
            wait: Mutex::new((None, Waiters::None)),
            ids,
        }
    }

    /// The listening socket.
    pub(crate) fn get_ref(&self) -> &L {
        self.listener.get_ref()
    }

    /// A place among the waiters, for one accept future or stream.
    pub(crate) fn waiting(&self) -> Waiting<'_, L> {
        Waiting {
            acceptor: self,
            id: self.ids.next(),
        }
    }

    /// Polls for the next connection as the waiter `id`.
    pub(crate) fn poll_accept_as(&self, id: WaitId, cx: &mut Context<'_>) -> Poll<io::Result<(L::Stream, L::Addr)>> {
        loop {
            match self.listener.get_ref().accept_one() {
                Ok(accepted) => return Poll::Ready(Ok(accepted)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    let mut wait = self.wait.lock().unwrap_or_else(|e| e.into_inner());
                    let (slot, waiters) = &mut *wait;
                    ready!(poll_ready(
                        slot,
                        || self.listener.clone().readable_owned(),
                        waiters,
                        id,
                        cx
                    ))?
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

/// A waiter's place among a listener's, left when it is dropped (so a
/// canceled accept leaves no waker behind).
pub(crate) struct Waiting<'a, L> {
    acceptor: &'a Acceptor<L>,
    id: WaitId,
}

impl<L: Accept> Waiting<'_, L> {
    /// Polls for the next connection in this waiter's place.
    pub(crate) fn poll_accept(&self, cx: &mut Context<'_>) -> Poll<io::Result<(L::Stream, L::Addr)>> {
        self.acceptor.poll_accept_as(self.id, cx)
    }
}

impl<L> Drop for Waiting<'_, L> {
    fn drop(&mut self) {
        let mut wait = self.acceptor.wait.lock().unwrap_or_else(|e| e.into_inner());
        wait.1.remove(self.id);
    }
}

impl TcpListener {
    /// Binds to `addr` (an IP address and port; port 0 picks a free port)
    /// with the default backlog. An address in use fails at once with
    /// [`Event::AddressInUse`].
    pub fn bind(addr: impl ToSocketAddrs) -> io::Result<TcpListener> {
        TcpListener::bind_with_backlog(addr, DEFAULT_BACKLOG)
    }

    /// Binds with a listen backlog of `backlog` pending connections.
    pub fn bind_with_backlog(addr: impl ToSocketAddrs, backlog: u32) -> io::Result<TcpListener> {
        TcpListener::bind_opts(addr, backlog, false)
    }

    /// Binds with `SO_REUSEPORT` (Unix), so that several listeners, one per
    /// thread or process, share one address and the kernel spreads the
    /// connections among them.
    ///
    /// # Examples
    ///
    /// ```
    /// use streamish::TcpListener;
    ///
    /// let a = TcpListener::bind_reuse_port("127.0.0.1:0")?;
    /// let b = TcpListener::bind_reuse_port(a.local_addr())?; // same port
    /// assert_eq!(a.local_addr(), b.local_addr());
    /// # std::io::Result::Ok(())
    /// ```
    pub fn bind_reuse_port(addr: impl ToSocketAddrs) -> io::Result<TcpListener> {
        TcpListener::bind_opts(addr, DEFAULT_BACKLOG, true)
    }

    pub(crate) fn bind_opts(addr: impl ToSocketAddrs, backlog: u32, reuse_port: bool) -> io::Result<TcpListener> {
        let mut last = None;
        for addr in addr.to_socket_addrs()? {
            match listen(addr, backlog, reuse_port) {
                Ok(listener) => {
                    let local = listener.local_addr()?;
                    return Ok(TcpListener {
                        acceptor: Acceptor::new(Async::new(listener)?),
                        local,
                    });
                }
                Err(e) => {
                    let error = io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}"));
                    last = Some(Event::from(error));
                }
            }
        }
        Err(last
            .map(io::Error::from)
            .unwrap_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no address to bind to")))
    }

    /// The address the server listens on, with the real port when bound to
    /// port 0.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Waits for the next connection. `TCP_NODELAY` is turned on. Several
    /// tasks may wait at once; a canceled wait leaves nothing behind.
    pub async fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        let wait = self.acceptor.waiting();
        futures_lite::future::poll_fn(|cx| wait.poll_accept(cx).map(accepted)).await
    }

    /// Polls for the next connection. Tasks that poll this directly share
    /// one place among the waiters (the last to poll is woken), as with
    /// `Async::poll_readable`; [`accept`](TcpListener::accept) and
    /// [`incoming`](TcpListener::incoming) give each waiter its own.
    pub fn poll_accept(&self, cx: &mut Context<'_>) -> Poll<io::Result<(TcpStream, SocketAddr)>> {
        self.acceptor.poll_accept_as(WaitId::FIRST, cx).map(accepted)
    }

    /// Polls for the next connection as std's stream, before it is made a
    /// transport (a TLS server's handshake comes first).
    #[cfg(feature = "tls")]
    pub(crate) fn poll_accept_std(&self, cx: &mut Context<'_>) -> Poll<io::Result<(std::net::TcpStream, SocketAddr)>> {
        self.acceptor.poll_accept_as(WaitId::FIRST, cx)
    }

    /// Waits for the next connection as std's stream (see
    /// `poll_accept_std`).
    #[cfg(feature = "tls")]
    pub(crate) async fn accept_std(&self) -> io::Result<(std::net::TcpStream, SocketAddr)> {
        let wait = self.acceptor.waiting();
        futures_lite::future::poll_fn(|cx| wait.poll_accept(cx)).await
    }

    /// The accepted connections as a `Stream`. An error (for example, out
    /// of file descriptors) is yielded and the stream goes on.
    pub fn incoming(&self) -> Incoming<'_> {
        Incoming {
            wait: self.acceptor.waiting(),
            local: self.local,
        }
    }
}

/// A std stream just accepted, as a [`TcpStream`] with `TCP_NODELAY` on.
fn accepted(res: io::Result<(std::net::TcpStream, SocketAddr)>) -> io::Result<(TcpStream, SocketAddr)> {
    let (stream, addr) = res?;
    stream.set_nodelay(true)?;
    Ok((TcpStream::try_from(stream)?, addr))
}

impl fmt::Debug for TcpListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TcpListener").field("local", &self.local).finish()
    }
}

/// The stream of [`TcpListener::incoming`]: each accepted connection, for
/// `StreamExt`'s `next`, `for_each`, `take` and the rest. It never ends;
/// an accept error is yielded and it goes on.
///
/// # Examples
///
/// ```
/// use streamish::prelude::*;
/// use streamish::{TcpListener, TcpStream};
///
/// # futures_lite::future::block_on(async {
/// let server = TcpListener::bind("127.0.0.1:0")?;
/// let _a = TcpStream::connect(server.local_addr()).await?;
/// let _b = TcpStream::connect(server.local_addr()).await?;
/// let peers: Vec<_> = server.incoming().take(2).try_collect().await?;
/// assert_eq!(peers.len(), 2);
/// # std::io::Result::Ok(()) }).unwrap();
/// ```
#[must_use = "streams do nothing unless polled"]
pub struct Incoming<'a> {
    wait: Waiting<'a, StdListener>,
    local: SocketAddr,
}

impl Stream for Incoming<'_> {
    type Item = io::Result<TcpStream>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.wait.poll_accept(cx).map(|r| Some(accepted(r).map(|(s, _)| s)))
    }
}

impl fmt::Debug for Incoming<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Incoming").field("local", &self.local).finish()
    }
}

#[cfg(unix)]
fn listen(addr: SocketAddr, backlog: u32, reuse_port: bool) -> io::Result<StdListener> {
    use rustix::net::sockopt;
    let fd = crate::sys::stream_socket(addr)?;
    // As std does: a restarted server can bind while old connections linger
    // in TIME_WAIT. Two listeners still cannot share an address.
    sockopt::set_socket_reuseaddr(&fd, true)?;
    if reuse_port {
        sockopt::set_socket_reuseport(&fd, true)?;
    }
    rustix::net::bind(&fd, &addr)?;
    rustix::net::listen(&fd, backlog.min(i32::MAX as u32) as i32)?;
    Ok(StdListener::from(fd))
}

#[cfg(unix)]
impl std::os::fd::AsFd for TcpListener {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.acceptor.get_ref().as_fd()
    }
}

#[cfg(unix)]
impl std::os::fd::AsRawFd for TcpListener {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.acceptor.get_ref().as_raw_fd()
    }
}

#[cfg(windows)]
impl std::os::windows::io::AsSocket for TcpListener {
    fn as_socket(&self) -> std::os::windows::io::BorrowedSocket<'_> {
        self.acceptor.get_ref().as_socket()
    }
}

#[cfg(windows)]
impl std::os::windows::io::AsRawSocket for TcpListener {
    fn as_raw_socket(&self) -> std::os::windows::io::RawSocket {
        self.acceptor.get_ref().as_raw_socket()
    }
}

#[cfg(not(unix))]
fn listen(addr: SocketAddr, _backlog: u32, _reuse_port: bool) -> io::Result<StdListener> {
    StdListener::bind(addr)
}
