//! cl-async's `tcp-server` and `close-tcp-server`.

use std::fmt;
use std::io;
use std::net::{Ipv4Addr, SocketAddr, ToSocketAddrs};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Poll, Waker};

use async_io::Timer;

use super::session;
use super::{Callbacks, Driver, ReadData, Settings, common_options};
use crate::tuning::{ACCEPT_BACKOFF, ACCEPT_BUDGET};
use crate::{DEFAULT_BACKLOG, Event, Socket, TcpListener};

/// Starts building a server on `bind:port` (cl-async's `tcp-server`).
/// `bind` is an IP address or a host name (resolved as
/// [`TcpListener::bind`] resolves it: IP literals skip the resolver, and
/// the first address that binds is used), or `None` for all IPv4
/// interfaces (`0.0.0.0`); port 0 picks a free port
/// ([`TcpServerHandle::local_addr`] tells which).
///
/// Accepted connections get the same callbacks and options; `connect_cb`
/// runs for each before its first `read_cb`.
///
/// # Examples
///
/// cl-async's echo server:
///
/// ```no_run
/// use streamish::{ReadData, tcp_server, with_event_loop};
///
/// with_event_loop(|| -> std::io::Result<()> {
///     let server = tcp_server(None, 9003)
///         .read_cb(|sock, data| {
///             if let ReadData::Bytes(bytes) = data {
///                 let _ = sock.write_bytes(bytes);
///             }
///         })
///         .event_cb(|ev| eprintln!("ev: {ev}"))
///         .spawn()?;
///     println!("listening on {}", server.local_addr());
///     Ok(())
/// })
/// .unwrap();
/// ```
pub fn tcp_server<'a>(bind: impl Into<Option<&'a str>>, port: u16) -> TcpServerBuilder {
    TcpServerBuilder {
        bind: bind.into().map(str::to_owned),
        port,
        backlog: DEFAULT_BACKLOG,
        reuse_port: false,
        cbs: Callbacks::default(),
        settings: Settings::default(),
    }
}

/// The builder of [`tcp_server`]: one method per cl-async keyword.
#[must_use = "a server does nothing until it is spawned or started"]
pub struct TcpServerBuilder {
    bind: Option<String>,
    port: u16,
    backlog: u32,
    reuse_port: bool,
    cbs: Callbacks,
    settings: Settings,
}

impl TcpServerBuilder {
    common_options!();

    /// `backlog`: how many connections may wait to be accepted (default
    /// 128). Zero lets the system pick its minimum.
    pub fn backlog(mut self, backlog: u32) -> Self {
        self.backlog = backlog;
        self
    }

    /// `SO_REUSEPORT` (Unix): several servers, one per thread or event
    /// loop, may share the address, and the kernel spreads the connections
    /// among them.
    pub fn reuse_port(mut self, on: bool) -> Self {
        self.reuse_port = on;
        self
    }

    /// Binds and listens now (an address in use fails at once with
    /// [`Event::AddressInUse`]), then hands the server's accept loop, and
    /// later each accepted connection, to `spawner` as a [`Driver`] to run
    /// on your executor.
    ///
    /// # Examples
    ///
    /// ```
    /// use streamish::tcp_server;
    ///
    /// # smol::block_on(async {
    /// let server = tcp_server("127.0.0.1", 0)
    ///     .read_cb(|sock, data| {
    ///         let _ = sock.write_bytes(data.into_bytes());
    ///     })
    ///     .start(|driver| smol::spawn(driver).detach())?;
    /// println!("listening on {}", server.local_addr());
    /// server.close();
    /// # std::io::Result::Ok(()) }).unwrap();
    /// ```
    pub fn start(self, spawner: impl Fn(Driver) + Send + Sync + 'static) -> io::Result<TcpServerHandle> {
        self.start_on(Spawner::Driver(Arc::new(spawner)))
    }

    /// Starts the server on the current event loop. Fails outside
    /// [`with_event_loop`](crate::with_event_loop), and when binding fails.
    pub fn spawn(self) -> io::Result<TcpServerHandle> {
        // Fail before binding if there is no loop to run on.
        super::event_loop::require_loop()?;
        self.start_on(Spawner::Loop)
    }

    fn start_on(self, spawner: Spawner) -> io::Result<TcpServerHandle> {
        self.settings.check()?;
        // As `TcpListener::bind`: IP literals directly, names through the
        // system resolver, each address in turn.
        let server = match self.bind.as_deref() {
            None => TcpListener::bind_opts((Ipv4Addr::UNSPECIFIED, self.port), self.backlog, self.reuse_port)?,
            Some(host) => {
                let host = host.trim();
                let bare = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
                if bare.is_empty() {
                    return Err(io::Error::new(io::ErrorKind::InvalidInput, "empty host name to bind"));
                }
                let addrs: Vec<SocketAddr> = (bare, self.port)
                    .to_socket_addrs()
                    .map_err(|error| Event::Dns {
                        socket: None,
                        host: bare.to_string(),
                        error,
                    })?
                    .collect();
                TcpListener::bind_opts(&addrs[..], self.backlog, self.reuse_port)?
            }
        };
        let shared = Arc::new(Shared {
            local: server.local_addr(),
            closed: AtomicBool::new(false),
            waker: Mutex::new(None),
        });
        let handle = TcpServerHandle { shared: shared.clone() };
        let own = handle.clone();
        let settings = self.settings;
        let cbs = Arc::new(self.cbs);
        let spawn_conn = spawner.clone();
        let mut backoff: Option<Timer> = None;
        let accept_loop = futures_lite::future::poll_fn(move |cx| {
            *shared.waker.lock().unwrap_or_else(|e| e.into_inner()) = Some(cx.waker().clone());
            for _ in 0..ACCEPT_BUDGET {
                if shared.closed.load(Ordering::Acquire) {
                    return Poll::Ready(Ok(()));
                }
                if let Some(t) = &mut backoff {
                    if Pin::new(t).poll(cx).is_pending() {
                        return Poll::Pending;
                    }
                    backoff = None;
                }
                match server.poll_accept(cx) {
                    Poll::Ready(Ok((stream, _))) => {
                        let socket = stream.into_socket();
                        socket.conn.ctl().set_server(own.clone());
                        if !settings.nodelay {
                            let _ = socket.set_nodelay(false);
                        }
                        spawn_conn.spawn(session::incoming(socket, cbs.clone(), &settings));
                    }
                    Poll::Ready(Err(e)) => {
                        if out_of_resources(&e) {
                            backoff = Some(Timer::after(ACCEPT_BACKOFF));
                        }
                        // The server goes on; the application hears of it.
                        if let Some(cb) = &cbs.event {
                            cb(Event::from(e));
                        }
                    }
                    Poll::Pending => return Poll::Pending,
                }
            }
            cx.waker().wake_by_ref();
            Poll::Pending
        });
        // The accept loop is itself a driver: it runs on the same executor.
        spawner.spawn(accept_loop);
        Ok(handle)
    }
}

/// Where a server's accept loop and connections run.
#[derive(Clone)]
enum Spawner {
    /// The current event loop, each future as it is: an idle connection's
    /// task is then its session and no more (no `Driver` box).
    Loop,
    /// The application's spawner, given [`Driver`]s.
    Driver(Arc<dyn Fn(Driver) + Send + Sync>),
}

impl Spawner {
    fn spawn(&self, fut: impl std::future::Future<Output = io::Result<()>> + Send + Unpin + 'static) {
        match self {
            // The accept loop runs on the loop's thread, so the loop is
            // there to take it; `spawn` fails only outside one.
            Spawner::Loop => {
                let _ = super::event_loop::spawn(fut);
            }
            Spawner::Driver(f) => f(Driver::new(fut)),
        }
    }
}

/// Whether an accept error is the process or system running out of
/// something that frees up later (descriptors, memory, buffers).
fn out_of_resources(e: &io::Error) -> bool {
    #[cfg(unix)]
    {
        matches!(
            e.raw_os_error(),
            Some(code) if [
                rustix::io::Errno::MFILE.raw_os_error(),
                rustix::io::Errno::NFILE.raw_os_error(),
                rustix::io::Errno::NOBUFS.raw_os_error(),
                rustix::io::Errno::NOMEM.raw_os_error(),
            ]
            .contains(&code)
        )
    }
    #[cfg(not(unix))]
    {
        let _ = e;
        false
    }
}

impl fmt::Debug for TcpServerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TcpServerBuilder")
            .field("bind", &self.bind)
            .field("port", &self.port)
            .finish_non_exhaustive()
    }
}

struct Shared {
    local: SocketAddr,
    closed: AtomicBool,
    waker: Mutex<Option<Waker>>,
}

/// A running callback-style server: its address, and `close`. Cheap to
/// clone; every connection it accepts reaches it through
/// [`Socket::server`].
///
/// # Examples
///
/// A server that serves one client, then closes itself from its callback:
///
/// ```
/// use streamish::{tcp_connect, tcp_server, with_event_loop};
///
/// with_event_loop(|| {
///     let server = tcp_server("127.0.0.1", 0)
///         .read_cb(|sock, data| {
///             let _ = sock.write_bytes(data.into_bytes());
///             sock.close();
///             sock.server().unwrap().close(); // no more clients
///         })
///         .spawn()?;
///     assert!(!server.is_closed());
///     tcp_connect("127.0.0.1", server.local_addr().port())
///         .data("one")
///         .spawn()?;
///     Ok(())
/// })
/// .unwrap(); // returns once the server and both ends are closed
/// ```
#[derive(Clone)]
pub struct TcpServerHandle {
    shared: Arc<Shared>,
}

impl TcpServerHandle {
    /// The address the server listens on, with the real port when bound to
    /// port 0.
    pub fn local_addr(&self) -> SocketAddr {
        self.shared.local
    }

    /// Stops accepting (cl-async's `close-tcp-server`): the listening socket
    /// is closed; connections already accepted go on until they end.
    /// Harmless to repeat.
    pub fn close(&self) {
        self.shared.closed.store(true, Ordering::Release);
        // Woken after the lock is released: a waker may poll the accept
        // loop at once, and its poll takes this lock.
        let w = self.shared.waker.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(w) = w {
            w.wake();
        }
    }

    /// Whether [`close`](TcpServerHandle::close) was called
    /// (cl-async's `tcp-server-closed`).
    pub fn is_closed(&self) -> bool {
        self.shared.closed.load(Ordering::Acquire)
    }
}

impl fmt::Debug for TcpServerHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TcpServerHandle")
            .field("local", &self.shared.local)
            .field("closed", &self.is_closed())
            .finish()
    }
}

impl Socket {
    /// The server that accepted this connection, for its callbacks to
    /// reach (to close it, say); `None` for connections made by
    /// `tcp_connect` or on the await face.
    pub fn server(&self) -> Option<TcpServerHandle> {
        self.conn.ctl().server()
    }
}
