//! cl-async's `tcp-connect` and `pipe-connect`: one builder, whose target
//! is a host and port or a socket file.

use std::fmt;
use std::io;
use std::net::SocketAddr;
#[cfg(unix)]
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use async_io::Timer;
use bytes::Bytes;
use futures_lite::FutureExt;

use super::session::{self, DriverGuard, Session};
use super::stats::Dir;
use super::{Callbacks, Driver, ReadData, Settings, common_options};
use crate::addr::{self, ToAddrs};
use crate::conn::Conn;
use crate::transport::Io;
use crate::{AsyncInputStream, Clock, Event, Socket, TcpStream};

/// Starts building a connection to `host:port` (cl-async's `tcp-connect`).
/// `host` is a name or an IP literal; names resolve off the executor, IPv6
/// and IPv4 alike, and every address found is tried in turn.
///
/// Set cl-async's keywords on the builder, then `spawn` it on the event
/// loop, or `start` it to get a [`Driver`] for your own executor. Either
/// way it returns at once with the [`Socket`]: writes made before the
/// connection is up are queued after `data` and go out in order once it is.
///
/// # Examples
///
/// The seed's example, against a local server:
///
/// ```
/// use std::io::Write;
/// use std::time::Duration;
/// use streamish::{AsyncInputStream, ReadData, tcp_connect, tcp_server, with_event_loop};
///
/// with_event_loop(|| -> std::io::Result<()> {
///     let server = tcp_server("127.0.0.1", 0)
///         .read_cb(|sock, _req| {
///             sock.write(b"HTTP/1.0 200 OK\r\n\r\nhello").unwrap();
///             sock.close();
///         })
///         .spawn()?;
///     tcp_connect("127.0.0.1", server.local_addr().port())
///         .data("GET / HTTP/1.0\r\n\r\n")
///         .stream(true)
///         .read_timeout(Duration::from_secs(5))
///         .read_cb(|_sock, data| {
///             if let ReadData::Stream(stream) = data {
///                 let mut buf = [0u8; 4096];
///                 let n = stream.read_sequence(&mut buf).unwrap();
///                 std::io::stdout().write_all(&buf[..n]).unwrap();
///             }
///         })
///         .event_cb(move |ev| {
///             println!("ev: {ev}");
///             server.close();
///         })
///         .spawn()?;
///     Ok(())
/// })
/// .unwrap();
/// ```
pub fn tcp_connect(host: impl Into<String>, port: u16) -> TcpConnect {
    ConnectBuilder::new(Dest::Tcp {
        host: host.into(),
        port,
        local: None,
    })
}

/// Starts building a connection to the Unix-domain socket file at `path`
/// (cl-async's `pipe-connect`). Everything else is as [`tcp_connect`]:
/// the same callbacks, options and events (a pipe's end of file is
/// [`Event::Eof`], cl-async's `tcp-eof`, as there). The TCP options
/// (`nodelay`, `bind`) do not exist on it. A missing path is an event of
/// kind `NotFound` (cl-async's `filesystem-enoent`); a path where nobody
/// listens, [`Event::Refused`].
///
/// # Examples
///
/// cl-async's pipe test, "simple client server":
///
/// ```
/// use streamish::{pipe_connect, pipe_server, with_event_loop};
///
/// # let dir = std::env::temp_dir().join(format!("streamish-doc-pipe-connect-{}", std::process::id()));
/// # std::fs::create_dir_all(&dir).unwrap();
/// let path = dir.join("blabla.sock");
/// let p = path.clone();
/// with_event_loop(move || -> std::io::Result<()> {
///     let server = pipe_server(&p)
///         .read_cb(|sock, _data| {
///             let _ = sock.write(b"thxlol ");
///         })
///         .spawn()?;
///     let socket = pipe_connect(&p)
///         .data("ha")
///         .read_cb(move |sock, data| {
///             assert_eq!(&data.into_bytes()[..], b"thxlol ");
///             sock.close();
///             server.close();
///         })
///         .event_cb(|ev| panic!("{ev}"))
///         .spawn()?;
///     socket.write(b"i ")?; // queued until the connection is up
///     Ok(())
/// })
/// .unwrap();
/// assert!(!path.exists()); // the closed server removed its socket file
/// # std::fs::remove_dir(&dir).unwrap();
/// ```
///
/// The TCP options are not there to be set by mistake:
///
/// ```compile_fail
/// let _ = streamish::pipe_connect("/run/app.sock").nodelay(false);
/// ```
#[cfg(unix)]
pub fn pipe_connect(path: impl AsRef<Path>) -> PipeConnect {
    ConnectBuilder::new(Dest::Pipe(path.as_ref().to_path_buf()))
}

/// What a connection connects to.
enum Dest {
    /// A host and port, from `local` if given.
    Tcp {
        host: String,
        port: u16,
        local: Option<SocketAddr>,
    },
    /// A Unix-domain socket file.
    #[cfg(unix)]
    Pipe(PathBuf),
}

/// The builder of [`tcp_connect`] and `pipe_connect`: one method per
/// cl-async keyword. `S` is the connection's stream type: [`TcpStream`]
/// ([`TcpConnect`]) or `UnixStream` (`PipeConnect`); it is what stream
/// mode's `read_cb` and [`spawn_stream`](ConnectBuilder::spawn_stream)
/// give. The TCP options are on `ConnectBuilder<TcpStream>` only.
#[must_use = "a connection does nothing until it is spawned or started"]
pub struct ConnectBuilder<S> {
    dest: Dest,
    /// The TLS client config of `tcp_ssl_connect`.
    #[cfg(feature = "tls")]
    tls: Option<Arc<crate::tls::rustls::ClientConfig>>,
    data: Vec<Bytes>,
    connect_timeout: Option<Duration>,
    cbs: Callbacks<S>,
    settings: Settings,
}

/// The builder of [`tcp_connect`] (its name before pipes shared it).
pub type TcpConnect = ConnectBuilder<TcpStream>;

/// The builder of [`pipe_connect`].
#[cfg(unix)]
pub type PipeConnect = ConnectBuilder<crate::UnixStream>;

/// The builder of [`tcp_ssl_connect`].
#[cfg(feature = "tls")]
pub type TlsConnect = ConnectBuilder<crate::TlsStream>;

/// Starts building a TLS connection to `host:port` (cl-async-ssl's
/// `tcp-ssl-connect`): [`tcp_connect`] with a handshake between the
/// connection and `connect_cb`, verifying that the server's certificate is
/// valid for `host` (also sent as SNI) under `config`. Handshake and
/// certificate failures are events ([`Event::Tls`],
/// [`Event::Certificate`]); stream mode's `read_cb` gets a
/// [`TlsStream`](crate::TlsStream).
#[cfg(feature = "tls")]
pub fn tcp_ssl_connect(
    host: impl Into<String>,
    port: u16,
    config: Arc<crate::tls::rustls::ClientConfig>,
) -> TlsConnect {
    let mut builder = ConnectBuilder::new(Dest::Tcp {
        host: host.into(),
        port,
        local: None,
    });
    builder.tls = Some(config);
    builder
}

impl<S> ConnectBuilder<S> {
    fn new(dest: Dest) -> ConnectBuilder<S> {
        ConnectBuilder {
            dest,
            #[cfg(feature = "tls")]
            tls: None,
            data: Vec::new(),
            connect_timeout: None,
            cbs: Callbacks::default(),
            settings: Settings::default(),
        }
    }
}

impl<S> ConnectBuilder<S>
where
    S: AsyncInputStream + From<Socket> + Send + 'static,
{
    common_options!(S);

    /// `data`: bytes to send first, as soon as the connection is up. May be
    /// given more than once; they go out in order.
    pub fn data(mut self, data: impl Into<Bytes>) -> Self {
        self.data.push(data.into());
        self
    }

    /// Gives up with [`Event::Timeout`] ([`Clock::Connect`]) if resolution
    /// and connection together take longer than this. `None` (the default)
    /// waits as long as the system does; zero is refused.
    pub fn connect_timeout(mut self, t: impl Into<Option<Duration>>) -> Self {
        match super::check_timeout("connect_timeout", t.into()) {
            Ok(t) => self.connect_timeout = t,
            Err(e) => self.settings.error = Some(e),
        }
        self
    }

    /// Makes the socket and the [`Driver`] that connects and runs it; spawn
    /// the driver on any executor. Fails at once, with `InvalidInput`, only
    /// for bad options: an empty host or path, port 0, a zero timeout.
    /// Everything that happens on the network is an event.
    ///
    /// # Examples
    ///
    /// ```
    /// use streamish::{tcp_connect, tcp_server};
    ///
    /// use std::sync::Arc;
    ///
    /// let ex = Arc::new(async_executor::Executor::new());
    /// let spawner = ex.clone();
    /// let server = tcp_server("127.0.0.1", 0)
    ///     .read_cb(|sock, _| sock.close())
    ///     .start(move |driver| spawner.spawn(driver).detach())?;
    /// let (socket, driver) = tcp_connect("127.0.0.1", server.local_addr().port())
    ///     .data("hai")
    ///     .event_cb(|ev| println!("ev: {ev}"))
    ///     .start()?;
    /// futures_lite::future::block_on(ex.run(driver))?;
    /// assert!(socket.is_closed());
    /// # std::io::Result::Ok(())
    /// ```
    pub fn start(self) -> io::Result<(Socket, Driver)> {
        self.settings.check()?;
        let invalid = |msg| io::Error::new(io::ErrorKind::InvalidInput, msg);
        let target = match self.dest {
            Dest::Tcp { port: 0, .. } => return Err(invalid("cannot connect to port 0")),
            Dest::Tcp { host, port, local } => {
                #[cfg(feature = "tls")]
                let tls = self.tls.map(|config| (config, host.clone()));
                #[cfg(not(feature = "tls"))]
                let tls = None;
                Target::Tcp((host.as_str(), port).to_target()?, local, tls)
            }
            #[cfg(unix)]
            Dest::Pipe(path) if path.as_os_str().is_empty() => return Err(invalid("empty socket path")),
            #[cfg(unix)]
            Dest::Pipe(path) => Target::Pipe(path),
        };
        let socket = Socket::from_conn(Conn::new(None));
        session::init_ctl(&socket, &self.settings);
        for d in self.data {
            socket.write_bytes(d)?;
        }
        // Marked driven now: a close before the driver's first poll waits
        // for the connection, as one after it does.
        let guard = DriverGuard::new(&socket.conn);
        let driver = Driver::new(run(
            socket.clone(),
            guard,
            target,
            self.connect_timeout,
            self.cbs,
            self.settings,
        ));
        Ok((socket, driver))
    }

    /// Starts the connection on the current event loop and returns its
    /// socket at once. Fails outside [`with_event_loop`](crate::with_event_loop),
    /// and for the bad options [`start`](ConnectBuilder::start) refuses.
    pub fn spawn(self) -> io::Result<Socket> {
        let (socket, driver) = self.start()?;
        super::spawn(driver)?;
        Ok(socket)
    }

    /// `:stream t`: starts the connection on the current event loop in
    /// stream mode and returns the stream over its socket (a [`TcpStream`]
    /// or a `UnixStream`).
    pub fn spawn_stream(self) -> io::Result<S> {
        self.stream(true).spawn().map(S::from)
    }
}

/// The TCP options.
/// The TCP options, on the builders whose stream runs over TCP.
macro_rules! tcp_options {
    ($ty:ty) => {
        impl ConnectBuilder<$ty> {
            /// Binds the socket to `local` before it connects (see
            /// [`TcpStream::connect_from`]): port 0 lets the system pick the port,
            /// an IP address picks the interface. Only the addresses of `local`'s
            /// family are tried; an address in use is
            /// [`Event::AddressInUse`].
            ///
            /// # Examples
            ///
            /// ```
            /// use std::net::Ipv4Addr;
            /// use streamish::{tcp_connect, tcp_server, with_event_loop};
            ///
            /// with_event_loop(|| -> std::io::Result<()> {
            ///     let server = tcp_server("127.0.0.1", 0)
            ///         .connect_cb(|sock| println!("from {}", sock.peer_addr().unwrap()))
            ///         .read_cb(|sock, _| sock.close())
            ///         .spawn()?;
            ///     tcp_connect("127.0.0.1", server.local_addr().port())
            ///         .bind((Ipv4Addr::LOCALHOST, 0))
            ///         .data("hai")
            ///         .event_cb(move |_| server.close())
            ///         .spawn()?;
            ///     Ok(())
            /// })
            /// .unwrap();
            /// ```
            pub fn bind(mut self, local: impl Into<SocketAddr>) -> Self {
                #[allow(irrefutable_let_patterns)] // off Unix, TCP is the only target
                if let Dest::Tcp { local: l, .. } = &mut self.dest {
                    *l = Some(local.into());
                }
                self
            }

            /// `TCP_NODELAY`, on by default: streamish coalesces small writes
            /// itself, so Nagle's algorithm would only add latency.
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

impl<S> fmt::Debug for ConnectBuilder<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("ConnectBuilder");
        match &self.dest {
            Dest::Tcp { host, port, .. } => d.field("host", host).field("port", port),
            #[cfg(unix)]
            Dest::Pipe(path) => d.field("path", path),
        };
        d.finish_non_exhaustive()
    }
}

/// A TLS client's config and the name its server must prove.
#[cfg(feature = "tls")]
type TlsClient = (Arc<crate::tls::rustls::ClientConfig>, String);
#[cfg(not(feature = "tls"))]
type TlsClient = std::convert::Infallible;

/// What `run` connects to, checked.
enum Target {
    /// The address, the local address, and for TLS the config and the
    /// server's name.
    Tcp(addr::Target, Option<SocketAddr>, Option<TlsClient>),
    #[cfg(unix)]
    Pipe(PathBuf),
}

/// Resolves and connects, racing the connect clock and a close, then runs
/// the connection's driver.
async fn run<S>(
    socket: Socket,
    guard: DriverGuard,
    target: Target,
    connect_timeout: Option<Duration>,
    cbs: Callbacks<S>,
    settings: Settings,
) -> io::Result<()>
where
    S: AsyncInputStream + From<Socket> + Send + 'static,
{
    let conn = socket.conn.clone();
    let nodelay = settings.nodelay;
    let mut connecting = async move {
        match target {
            Target::Tcp(target, local, tls) => {
                let (label, addrs) = addr::resolve(target).await?;
                let io = addr::connect_any(&label, &addrs, local).await?;
                io.get_ref().tcp()?.set_nodelay(nodelay)?;
                match tls {
                    // The handshake is part of connecting: `connect_timeout`
                    // covers it, and `connect_cb` sees TLS established.
                    #[cfg(feature = "tls")]
                    Some((config, host)) => crate::tls::handshake(io, crate::tls::client_conn(config, &host)?).await,
                    _ => Ok(Io::new(io)),
                }
            }
            #[cfg(unix)]
            Target::Pipe(path) => crate::unix::connect(&path).await.map(Io::new),
        }
    }
    .boxed();
    let mut clock = connect_timeout.map(Timer::after);
    let res = futures_lite::future::poll_fn(|cx| {
        conn.driver_turn(cx);
        // A graceful close waits for the connection, so queued writes still
        // go out; only a forced close cancels it.
        if conn.is_closed() {
            return Poll::Ready(Err(Event::Canceled { socket: None }.into()));
        }
        if let Poll::Ready(res) = connecting.as_mut().poll(cx) {
            return Poll::Ready(res);
        }
        if let Some(Poll::Ready(_)) = clock.as_mut().map(|t| Pin::new(t).poll(cx)) {
            return Poll::Ready(Err(Event::Timeout {
                socket: None,
                clock: Clock::Connect,
            }
            .into()));
        }
        Poll::Pending
    })
    .await;
    let io = match res {
        Ok(io) => io,
        Err(e) => {
            let ev = Event::from_io(e, None);
            if matches!(ev, Event::Canceled { .. }) && cbs.event.is_none() {
                // The application closed it itself: not an error to report.
                socket.conn.abort();
                return Ok(());
            }
            if !matches!(ev, Event::Canceled { .. }) {
                // Operations on the socket now fail with this, not `Closed`.
                socket.conn.ctl().set_failure(&ev);
            }
            return Session::deliver(&socket, &cbs, ev);
        }
    };
    socket.conn.attach(io);
    if socket.conn.is_closed() {
        return Ok(());
    }
    let mut session = Session::new(socket, Arc::new(cbs), &settings, Dir::Outgoing, guard);
    session.connected();
    session.await
}
