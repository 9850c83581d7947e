//! cl-async's `tcp-connect`.

use std::fmt;
use std::io;
use std::net::SocketAddr;
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
use crate::{Clock, Event, Socket, TcpStream};

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
    TcpConnect {
        host: host.into(),
        port,
        data: Vec::new(),
        local: None,
        connect_timeout: None,
        cbs: Callbacks::default(),
        settings: Settings::default(),
    }
}

/// The builder of [`tcp_connect`]: one method per cl-async keyword.
#[must_use = "a connection does nothing until it is spawned or started"]
pub struct TcpConnect {
    host: String,
    port: u16,
    data: Vec<Bytes>,
    local: Option<SocketAddr>,
    connect_timeout: Option<Duration>,
    cbs: Callbacks,
    settings: Settings,
}

impl TcpConnect {
    common_options!();

    /// `data`: bytes to send first, as soon as the connection is up. May be
    /// given more than once; they go out in order.
    pub fn data(mut self, data: impl Into<Bytes>) -> Self {
        self.data.push(data.into());
        self
    }

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
        self.local = Some(local.into());
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
    /// for bad options: an empty host, port 0, a zero timeout. Everything
    /// that happens on the network is an event.
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
        if self.port == 0 {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "cannot connect to port 0"));
        }
        let target = (self.host.as_str(), self.port).to_target()?;
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
            self.local,
            self.connect_timeout,
            self.cbs,
            self.settings,
        ));
        Ok((socket, driver))
    }

    /// Starts the connection on the current event loop and returns its
    /// socket at once. Fails outside [`with_event_loop`](crate::with_event_loop),
    /// and for the bad options [`start`](TcpConnect::start) refuses.
    pub fn spawn(self) -> io::Result<Socket> {
        let (socket, driver) = self.start()?;
        super::spawn(driver)?;
        Ok(socket)
    }

    /// `:stream t`: starts the connection on the current event loop in
    /// stream mode and returns the stream over its socket.
    pub fn spawn_stream(self) -> io::Result<TcpStream> {
        self.stream(true).spawn().map(TcpStream::new)
    }
}

impl fmt::Debug for TcpConnect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TcpConnect")
            .field("host", &self.host)
            .field("port", &self.port)
            .finish_non_exhaustive()
    }
}

/// Resolves and connects, racing the connect clock and a close, then runs
/// the session.
async fn run(
    socket: Socket,
    guard: DriverGuard,
    target: addr::Target,
    local: Option<SocketAddr>,
    connect_timeout: Option<Duration>,
    cbs: Callbacks,
    settings: Settings,
) -> io::Result<()> {
    let conn = socket.conn.clone();
    let mut connecting = async move {
        let (label, addrs) = addr::resolve(target).await?;
        addr::connect_any(&label, &addrs, local).await
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
    if let Err(e) = io.get_ref().tcp().and_then(|s| s.set_nodelay(settings.nodelay)) {
        return Session::deliver(&socket, &cbs, Event::from_io(e, None));
    }
    socket.conn.attach(Io::new(io));
    if socket.conn.is_closed() {
        return Ok(());
    }
    let mut session = Session::new(socket, Arc::new(cbs), &settings, Dir::Outgoing, guard);
    session.connected();
    session.await
}
