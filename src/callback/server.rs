//! cl-async's `tcp-server`, `pipe-server` and `close-tcp-server`: one
//! builder, whose address is a host and port or a socket file.

use std::fmt;
use std::io;
use std::net::{Ipv4Addr, SocketAddr, ToSocketAddrs};
#[cfg(unix)]
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use async_io::Timer;

use super::session;
use super::{Callbacks, Driver, ReadData, Settings, common_options};
use crate::ctl::Link;
use crate::tuning::{ACCEPT_BACKOFF, ACCEPT_BUDGET};
use crate::{AsyncInputStream, DEFAULT_BACKLOG, Event, Socket, TcpListener, TcpStream};

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
    ServerBuilder::new(Bind::Tcp {
        host: bind.into().map(str::to_owned),
        port,
        reuse_port: false,
    })
}

/// Starts building a server on the Unix-domain socket file at `path`
/// (cl-async's `pipe-server`). Everything else is as [`tcp_server`]: the
/// same callbacks and options (the TCP ones, `nodelay` and `reuse_port`,
/// do not exist on it), and the same [`ServerHandle`] to close it, whose
/// [`path`](ServerHandle::path) is the socket file.
///
/// The socket file is made when the server starts and follows
/// [`UnixListener`](crate::UnixListener)'s policy: a file already there
/// fails the start with [`Event::AddressInUse`], saying whether it is a
/// live server's, a stale socket file or not a socket (nothing is
/// removed), and the file is removed once the closed server's accept loop
/// ends (or its driver is dropped).
///
/// # Examples
///
/// cl-async's pipe test, "server stream":
///
/// ```
/// use streamish::{AsyncInputStream, ReadData, pipe_connect, pipe_server, with_event_loop};
///
/// # let dir = std::env::temp_dir().join(format!("streamish-doc-pipe-server-{}", std::process::id()));
/// # std::fs::create_dir_all(&dir).unwrap();
/// let path = dir.join("server.sock");
/// let p = path.clone();
/// with_event_loop(move || -> std::io::Result<()> {
///     let server = pipe_server(&p)
///         .stream(true)
///         .read_cb(|sock, data| {
///             if let ReadData::Stream(stream) = data {
///                 // A UnixStream, with everything buffered so far.
///                 let mut buf = [0u8; 6];
///                 if stream.buffered() >= 6 {
///                     stream.read_sequence(&mut buf).unwrap();
///                     assert_eq!(&buf, b"HELLO!");
///                     sock.close();
///                     sock.server().unwrap().close();
///                 }
///             }
///         })
///         .spawn()?;
///     assert_eq!(server.path(), Some(p.as_path()));
///     pipe_connect(&p).data("HELLO!").spawn()?;
///     Ok(())
/// })
/// .unwrap();
/// # std::fs::remove_dir(&dir).unwrap();
/// ```
#[cfg(unix)]
pub fn pipe_server(path: impl AsRef<Path>) -> PipeServerBuilder {
    ServerBuilder::new(Bind::Pipe(path.as_ref().to_path_buf()))
}

/// Where a server listens.
enum Bind {
    /// An IP address or host name (all IPv4 interfaces if `None`) and a
    /// port.
    Tcp {
        host: Option<String>,
        port: u16,
        reuse_port: bool,
    },
    /// A Unix-domain socket file.
    #[cfg(unix)]
    Pipe(PathBuf),
}

/// The builder of [`tcp_server`] and `pipe_server`: one method per cl-async
/// keyword. `S` is the connections' stream type: [`TcpStream`]
/// ([`TcpServerBuilder`]) or `UnixStream` (`PipeServerBuilder`), which
/// stream mode's `read_cb` gets. The TCP options are on
/// `ServerBuilder<TcpStream>` only.
#[must_use = "a server does nothing until it is spawned or started"]
pub struct ServerBuilder<S> {
    bind: Bind,
    /// The TLS server config of `tcp_ssl_server`.
    #[cfg(feature = "tls")]
    tls: Option<Arc<crate::tls::rustls::ServerConfig>>,
    backlog: u32,
    cbs: Callbacks<S>,
    settings: Settings,
}

/// The builder of [`tcp_server`] (its name before pipes shared it).
pub type TcpServerBuilder = ServerBuilder<TcpStream>;

/// The builder of [`pipe_server`].
#[cfg(unix)]
pub type PipeServerBuilder = ServerBuilder<crate::UnixStream>;

/// The builder of [`tcp_ssl_server`].
#[cfg(feature = "tls")]
pub type TlsServerBuilder = ServerBuilder<crate::TlsStream>;

/// Starts building a TLS server on `bind:port` (cl-async-ssl's
/// `tcp-ssl-server`): [`tcp_server`] serving `config`'s certificate. Each
/// connection's handshake runs in its own task, so a slow client holds up
/// nobody; `connect_cb` runs once it is done. A failed handshake is an
/// event ([`Event::Tls`], [`Event::Certificate`]) for `event_cb`, and the
/// server goes on; `read_timeout` also bounds each handshake (a client
/// that never sends its part is [`Event::Timeout`]). Stream mode's `read_cb` gets a
/// [`TlsStream`](crate::TlsStream).
#[cfg(feature = "tls")]
pub fn tcp_ssl_server<'a>(
    bind: impl Into<Option<&'a str>>,
    port: u16,
    config: Arc<crate::tls::rustls::ServerConfig>,
) -> TlsServerBuilder {
    let mut builder = ServerBuilder::new(Bind::Tcp {
        host: bind.into().map(str::to_owned),
        port,
        reuse_port: false,
    });
    builder.tls = Some(config);
    builder
}

impl<S> ServerBuilder<S> {
    fn new(bind: Bind) -> ServerBuilder<S> {
        ServerBuilder {
            bind,
            #[cfg(feature = "tls")]
            tls: None,
            backlog: DEFAULT_BACKLOG,
            cbs: Callbacks::default(),
            settings: Settings::default(),
        }
    }
}

/// The TCP options, on the builders whose connections run over TCP.
macro_rules! tcp_options {
    ($ty:ty) => {
        impl ServerBuilder<$ty> {
            /// `SO_REUSEPORT` (Unix): several servers, one per thread or event
            /// loop, may share the address, and the kernel spreads the connections
            /// among them.
            pub fn reuse_port(mut self, on: bool) -> Self {
                #[allow(irrefutable_let_patterns)] // off Unix, TCP is the only target
                if let Bind::Tcp { reuse_port, .. } = &mut self.bind {
                    *reuse_port = on;
                }
                self
            }

            /// `TCP_NODELAY` on the accepted connections, on by default: streamish
            /// coalesces small writes itself, so Nagle's algorithm would only add
            /// latency.
            pub fn nodelay(mut self, on: bool) -> Self {
                self.settings.nodelay = on;
                self
            }
        }
    };
}

tcp_options!(TcpStream);
#[cfg(feature = "tls")]
tcp_options!(crate::TlsStream);

impl<S> ServerBuilder<S>
where
    S: AsyncInputStream + From<Socket> + Send + 'static,
{
    common_options!(S);

    /// `backlog`: how many connections may wait to be accepted (default
    /// 128). Zero lets the system pick its minimum.
    pub fn backlog(mut self, backlog: u32) -> Self {
        self.backlog = backlog;
        self
    }

    /// Binds and listens now (an address or socket file in use fails at
    /// once with [`Event::AddressInUse`]), then hands the server's accept loop, and
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
    pub fn start(self, spawner: impl Fn(Driver) + Send + Sync + 'static) -> io::Result<ServerHandle> {
        self.start_on(Spawner::Driver(Arc::new(spawner)))
    }

    /// Starts the server on the current event loop. Fails outside
    /// [`with_event_loop`](crate::with_event_loop), and when binding fails.
    pub fn spawn(self) -> io::Result<ServerHandle> {
        // Fail before binding if there is no loop to run on.
        super::event_loop::require_loop()?;
        self.start_on(Spawner::Loop)
    }

    fn start_on(self, spawner: Spawner) -> io::Result<ServerHandle> {
        self.settings.check()?;
        let server = match self.bind {
            Bind::Tcp { host, port, reuse_port } => {
                let listener = bind_tcp(host, port, self.backlog, reuse_port)?;
                #[cfg(feature = "tls")]
                if let Some(config) = self.tls.clone() {
                    Listening::Tls(listener, config)
                } else {
                    Listening::Tcp(listener)
                }
                #[cfg(not(feature = "tls"))]
                Listening::Tcp(listener)
            }
            #[cfg(unix)]
            Bind::Pipe(path) => {
                if path.as_os_str().is_empty() {
                    return Err(io::Error::new(io::ErrorKind::InvalidInput, "empty socket path"));
                }
                Listening::Pipe(crate::UnixListener::bind_with_backlog(path, self.backlog)?)
            }
        };
        let shared = Arc::new(Shared {
            addr: server.addr(),
            closed: AtomicBool::new(false),
            waker: Mutex::new(None),
        });
        let handle = ServerHandle { shared: shared.clone() };
        // Every accepted connection links back to its server through one
        // shared allocation.
        let own: Link = Arc::new(Box::new(handle.clone()));
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
                    Poll::Ready(Ok(Accepted::Socket(socket))) => {
                        socket.conn.ctl().accepted_by = Some(own.clone());
                        if !settings.nodelay {
                            let _ = socket.set_nodelay(false);
                        }
                        spawn_conn.spawn(session::incoming::<S>(socket, cbs.clone(), &settings));
                    }
                    #[cfg(feature = "tls")]
                    Poll::Ready(Ok(Accepted::Tls(stream, config))) => {
                        let _ = stream.set_nodelay(settings.nodelay);
                        let conn = tls_incoming::<S>(stream, config, cbs.clone(), settings.clone(), own.clone());
                        spawn_conn.spawn(Box::pin(conn));
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

/// Binds as `TcpListener::bind` does: IP literals directly, names through
/// the system resolver, each address in turn; no host is every IPv4
/// interface.
fn bind_tcp(host: Option<String>, port: u16, backlog: u32, reuse_port: bool) -> io::Result<TcpListener> {
    let Some(host) = host else {
        return TcpListener::bind_opts((Ipv4Addr::UNSPECIFIED, port), backlog, reuse_port);
    };
    let host = host.trim();
    let bare = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
    if bare.is_empty() {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "empty host name to bind"));
    }
    let addrs: Vec<SocketAddr> = (bare, port)
        .to_socket_addrs()
        .map_err(|error| Event::Dns {
            socket: None,
            host: bare.to_string(),
            error,
        })?
        .collect();
    TcpListener::bind_opts(&addrs[..], backlog, reuse_port)
}

/// A server's listening socket.
enum Listening {
    Tcp(TcpListener),
    /// TCP, each connection to be handshaken under the config.
    #[cfg(feature = "tls")]
    Tls(TcpListener, Arc<crate::tls::rustls::ServerConfig>),
    #[cfg(unix)]
    Pipe(crate::UnixListener),
}

impl Listening {
    fn addr(&self) -> Addr {
        match self {
            Listening::Tcp(l) => Addr::Tcp(l.local_addr()),
            #[cfg(feature = "tls")]
            Listening::Tls(l, _) => Addr::Tcp(l.local_addr()),
            #[cfg(unix)]
            Listening::Pipe(l) => Addr::Pipe(l.path().to_path_buf()),
        }
    }

    /// The next connection.
    fn poll_accept(&self, cx: &mut Context<'_>) -> Poll<io::Result<Accepted>> {
        match self {
            Listening::Tcp(l) => l.poll_accept(cx).map_ok(|(s, _)| Accepted::Socket(s.into_socket())),
            #[cfg(feature = "tls")]
            Listening::Tls(l, config) => l.poll_accept_std(cx).map_ok(|(s, _)| Accepted::Tls(s, config.clone())),
            #[cfg(unix)]
            Listening::Pipe(l) => l.poll_accept(cx).map_ok(|(s, _)| Accepted::Socket(s.into_socket())),
        }
    }
}

/// A connection the accept loop took.
enum Accepted {
    /// Ready for its driver.
    Socket(Socket),
    /// Its handshake is still to run.
    #[cfg(feature = "tls")]
    Tls(std::net::TcpStream, Arc<crate::tls::rustls::ServerConfig>),
}

/// A TLS server's connection: the handshake in the connection's own task,
/// then its driver. A failed handshake is an event, as a failed connect
/// is for a client.
#[cfg(feature = "tls")]
async fn tls_incoming<S: AsyncInputStream + From<Socket>>(
    stream: std::net::TcpStream,
    config: Arc<crate::tls::rustls::ServerConfig>,
    cbs: Arc<super::Callbacks<S>>,
    settings: Settings,
    server: Link,
) -> io::Result<()> {
    // A client that never finishes its handshake would hold its task and
    // descriptor for good: the read clock bounds the wait for its records.
    let handshake = async {
        let sock = async_io::Async::new(crate::transport::Sock::Tcp(stream))?;
        let conn = crate::tls::server_conn(config)?;
        crate::tls::handshake_within(sock, conn, settings.read_timeout, crate::Clock::Read).await
    };
    let res = handshake.await;
    match res {
        Ok(io) => {
            let socket = Socket::from_io(io);
            socket.conn.ctl().accepted_by = Some(server);
            session::incoming::<S>(socket, cbs, &settings).await
        }
        Err(e) => {
            if let Some(cb) = &cbs.event {
                cb(Event::from(e));
            }
            Ok(())
        }
    }
}

/// Where a server's accept loop and connections run.
#[derive(Clone)]
enum Spawner {
    /// The current event loop, each future as it is: an idle connection's
    /// task is then its driver and no more (no `Driver` box).
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

impl<S> fmt::Debug for ServerBuilder<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("ServerBuilder");
        match &self.bind {
            Bind::Tcp { host, port, .. } => d.field("bind", host).field("port", port),
            #[cfg(unix)]
            Bind::Pipe(path) => d.field("path", path),
        };
        d.finish_non_exhaustive()
    }
}

/// Where a running server listens.
#[derive(Debug)]
enum Addr {
    Tcp(SocketAddr),
    #[cfg(unix)]
    Pipe(PathBuf),
}

struct Shared {
    addr: Addr,
    closed: AtomicBool,
    waker: Mutex<Option<Waker>>,
}

/// A running callback-style server, TCP or pipe: its address, and
/// `close`. Cheap to clone; every connection it accepts reaches it through
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
pub struct ServerHandle {
    shared: Arc<Shared>,
}

/// The handle of a [`tcp_server`] (its name before pipes shared it).
pub type TcpServerHandle = ServerHandle;

impl ServerHandle {
    /// The address a TCP server listens on, with the real port when bound
    /// to port 0.
    ///
    /// # Panics
    ///
    /// On a pipe server, which has a socket file and no IP address: its
    /// [`path`](ServerHandle::path) is where it listens. (A made-up
    /// address would only fail later, further from the mistake.)
    pub fn local_addr(&self) -> SocketAddr {
        match &self.shared.addr {
            Addr::Tcp(a) => *a,
            #[cfg(unix)]
            Addr::Pipe(p) => panic!(
                "local_addr on the pipe server at {}: a pipe server has a path, not an IP address",
                p.display()
            ),
        }
    }

    /// The socket file a pipe server listens on; `None` for a TCP server.
    #[cfg(unix)]
    pub fn path(&self) -> Option<&Path> {
        match &self.shared.addr {
            Addr::Pipe(p) => Some(p),
            Addr::Tcp(_) => None,
        }
    }

    /// Stops accepting (cl-async's `close-tcp-server`): the listening socket
    /// is closed (a pipe server's socket file removed) once the accept loop
    /// sees it, at its next poll; connections already accepted go on until
    /// they end. Harmless to repeat.
    pub fn close(&self) {
        self.shared.closed.store(true, Ordering::Release);
        // Woken after the lock is released: a waker may poll the accept
        // loop at once, and its poll takes this lock.
        let w = self.shared.waker.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(w) = w {
            w.wake();
        }
    }

    /// Whether [`close`](ServerHandle::close) was called
    /// (cl-async's `tcp-server-closed`).
    pub fn is_closed(&self) -> bool {
        self.shared.closed.load(Ordering::Acquire)
    }
}

impl fmt::Debug for ServerHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("ServerHandle");
        match &self.shared.addr {
            Addr::Tcp(a) => d.field("local", a),
            #[cfg(unix)]
            Addr::Pipe(p) => d.field("path", p),
        };
        d.field("closed", &self.is_closed()).finish()
    }
}

impl Socket {
    /// The server that accepted this connection, for its callbacks to
    /// reach (to close it, say); `None` for connections made by
    /// `tcp_connect`, `pipe_connect` or on the await face.
    pub fn server(&self) -> Option<ServerHandle> {
        let ctl = self.conn.ctl();
        ctl.accepted_by.as_ref()?.downcast_ref::<ServerHandle>().cloned()
    }
}
