//! cl-async's face: [`tcp_connect`], [`tcp_server`] (and, on Unix, the
//! pipes' `pipe_connect` and `pipe_server`), callbacks, events and the
//! event loop.
//!
//! A callback-style connection is a [`Driver`]: a future that connects (for
//! `tcp_connect`), then reads, calls the callbacks, flushes what they wrote
//! and watches the clocks until the connection ends. Run it on the event
//! loop ([`with_event_loop`] and the builders' `spawn`) or hand it to an
//! executor you already run (the builders' `start`). Nothing runs behind
//! your back: no global runtime, no hidden thread beyond async-io's reactor
//! and `blocking`'s DNS pool.

mod connect;
mod event_loop;
mod local;
mod server;
mod session;
mod stats;

use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;

use crate::{AsyncInputStream, Event, Socket, TcpStream};

pub use connect::{ConnectBuilder, TcpConnect, tcp_connect};
#[cfg(unix)]
pub use connect::{PipeConnect, pipe_connect};
#[cfg(feature = "tls")]
pub use connect::{TlsConnect, tcp_ssl_connect};
pub use event_loop::{LoopOutput, exit_event_loop, spawn, with_event_loop};
pub use local::LoopLocal;
#[cfg(unix)]
pub use server::{PipeServerBuilder, pipe_server};
pub use server::{ServerBuilder, ServerHandle, TcpServerBuilder, TcpServerHandle, tcp_server};
#[cfg(feature = "tls")]
pub use server::{TlsServerBuilder, tcp_ssl_server};
pub use stats::{Stats, process_stats, stats};

/// What `read_cb` receives besides the socket.
///
/// In drained mode (the default) the bytes that arrived, taken out of the
/// input buffer without a copy. In stream mode (`stream`, or
/// `dont_drain_read_buffer`) the stream whose input buffer holds them (`S`
/// is the connection's stream type: [`TcpStream`], or a pipe's
/// `UnixStream`): read
/// what you want with `read_sequence` or a line with
/// [`take_line`](crate::AsyncInputStream::take_line); what you leave stays
/// buffered, and is offered again while your calls consume some.
///
/// # Examples
///
/// Both modes in one `read_cb`:
///
/// ```
/// use streamish::{AsyncInputStream, ReadData, Socket};
///
/// fn on_read(sock: &Socket, data: ReadData<'_>) {
///     match data {
///         // Drained: the bytes are yours, without a copy.
///         ReadData::Bytes(bytes) => {
///             let _ = sock.write_bytes(bytes);
///         }
///         // Stream mode: take what you need, leave the rest buffered.
///         ReadData::Stream(stream) => {
///             let mut header = [0u8; 4];
///             if stream.buffered() >= 4 {
///                 stream.read_sequence(&mut header).unwrap();
///             }
///         }
///     }
/// }
/// # let _ = streamish::tcp_server("127.0.0.1", 0).read_cb(on_read);
/// ```
#[derive(Debug)]
pub enum ReadData<'a, S = TcpStream> {
    /// Drained mode: the bytes that arrived.
    Bytes(Bytes),
    /// Stream mode: the stream to read them from.
    Stream(&'a mut S),
}

impl<S: AsyncInputStream> ReadData<'_, S> {
    /// The bytes in drained mode; in stream mode, everything buffered,
    /// consumed from the stream.
    pub fn into_bytes(self) -> Bytes {
        match self {
            ReadData::Bytes(b) => b,
            ReadData::Stream(s) => {
                let mut v = vec![0u8; s.buffered()];
                // Exactly what is buffered: this copies and never waits.
                let n = s.read_sequence(&mut v).unwrap_or(0);
                v.truncate(n);
                Bytes::from(v)
            }
        }
    }
}

/// `read_cb`: called with the socket and what arrived.
pub(crate) type ReadCb<S> = Arc<dyn Fn(&Socket, ReadData<'_, S>) + Send + Sync>;
/// `event_cb`: called with each event, once.
pub(crate) type EventCb = Arc<dyn Fn(Event) + Send + Sync>;
/// `connect_cb` and `write_cb`: called with the socket.
pub(crate) type SocketCb = Arc<dyn Fn(&Socket) + Send + Sync>;

/// The callbacks of a connection (shared by every connection of a server);
/// `S` is the stream type `read_cb` gets in stream mode.
pub(crate) struct Callbacks<S> {
    pub(crate) read: Option<ReadCb<S>>,
    pub(crate) event: Option<EventCb>,
    pub(crate) connect: Option<SocketCb>,
    pub(crate) write: Option<SocketCb>,
}

impl<S> Default for Callbacks<S> {
    fn default() -> Callbacks<S> {
        Callbacks {
            read: None,
            event: None,
            connect: None,
            write: None,
        }
    }
}

/// The keyword options shared by the connect and server builders (`nodelay`
/// is set on TCP only).
#[derive(Clone)]
pub(crate) struct Settings {
    pub(crate) stream: bool,
    pub(crate) dont_drain: Option<bool>,
    pub(crate) read_timeout: Option<Duration>,
    pub(crate) write_timeout: Option<Duration>,
    pub(crate) nodelay: bool,
    pub(crate) half_open: bool,
    pub(crate) max_queued: usize,
    pub(crate) error: Option<String>,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            stream: false,
            dont_drain: None,
            read_timeout: None,
            write_timeout: None,
            nodelay: true,
            half_open: false,
            max_queued: crate::DEFAULT_MAX_QUEUED,
            error: None,
        }
    }
}

impl Settings {
    /// cl-async: `stream` implies `dont_drain_read_buffer` unless given.
    pub(crate) fn drain(&self) -> bool {
        !self.dont_drain.unwrap_or(self.stream)
    }

    pub(crate) fn check(&self) -> io::Result<()> {
        match &self.error {
            Some(msg) => Err(io::Error::new(io::ErrorKind::InvalidInput, msg.clone())),
            None => Ok(()),
        }
    }
}

/// Checks a timeout option: `None` is no timeout; zero is refused (it would
/// fire at once); anything too far to represent never fires.
pub(crate) fn check_timeout(name: &str, t: Option<Duration>) -> Result<Option<Duration>, String> {
    match t {
        Some(d) if d.is_zero() => Err(format!("{name} of zero would fire at once; use None for no timeout")),
        other => Ok(other),
    }
}

/// A callback-style connection or server, as a future.
///
/// It completes when the connection (or server) is done: `Ok(())` after a
/// close or an event delivered to `event_cb`, `Err` with the error when an
/// error happened on a `tcp_connect` connection and there was no
/// `event_cb` to take it (a server's connections and the server itself end
/// with `Ok`). Spawn it on any executor; it is `Send` and needs no
/// particular runtime.
///
/// # Examples
///
/// A connection's driver, run by hand on `async_io::block_on`:
///
/// ```
/// use streamish::{ReadData, tcp_connect, tcp_server};
///
/// # fn main() -> std::io::Result<()> {
/// let server = tcp_server("127.0.0.1", 0)
///     .read_cb(|sock, data| {
///         let _ = sock.write_bytes(data.into_bytes()); // echo
///     })
///     .start(|driver| {
///         std::thread::spawn(|| async_io::block_on(driver));
///     })?;
/// let (socket, driver) = tcp_connect("127.0.0.1", server.local_addr().port())
///     .data("hai")
///     .read_cb(|sock, data| {
///         assert_eq!(&data.into_bytes()[..], b"hai");
///         sock.close();
///     })
///     .start()?;
/// async_io::block_on(driver)?; // runs until the socket closes
/// assert!(socket.is_closed());
/// server.close();
/// # Ok(()) }
/// ```
///
/// # Panics
///
/// A panic in a callback aborts the connection (its socket is closed with a
/// reset and its buffers dropped, so nothing is left half-alive) and then
/// resumes unwinding out of this future, so the executor sees it as it sees
/// any task's panic. On the event loop, it ends the loop and
/// [`with_event_loop`] panics with it.
#[must_use = "a driver does nothing unless spawned or awaited"]
pub struct Driver {
    fut: Pin<Box<dyn Future<Output = io::Result<()>> + Send + 'static>>,
}

impl Driver {
    /// Wraps any future of the same output, so that a spawner given to
    /// [`TcpServerBuilder::start`] can run the application's own work too.
    pub fn new(fut: impl Future<Output = io::Result<()>> + Send + 'static) -> Driver {
        Driver { fut: Box::pin(fut) }
    }
}

impl Future for Driver {
    type Output = io::Result<()>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.fut.as_mut().poll(cx)
    }
}

impl fmt::Debug for Driver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Driver").finish()
    }
}

/// The keyword options both builders share, written once; `$s` is the
/// builder's stream type.
macro_rules! common_options {
    ($s:ident) => {
        /// `read-cb`: called with the socket and what arrived
        /// ([`ReadData::Bytes`] in drained mode, [`ReadData::Stream`] in
        /// stream mode). Without it, arriving bytes stay buffered on the
        /// socket: nothing is dropped.
        pub fn read_cb(mut self, f: impl Fn(&Socket, ReadData<'_, $s>) + Send + Sync + 'static) -> Self {
            self.cbs.read = Some(std::sync::Arc::new(f));
            self
        }

        /// `event-cb`: called once with each [`Event`], its socket attached,
        /// before the connection is torn down. After an error event the
        /// socket is closed (without a reset; queued output is dropped).
        ///
        /// Without it, end of file closes the connection gracefully, and an
        /// error closes it and then:
        /// - on a connection a server accepted, is dropped: one client's
        ///   reset or timeout never ends the server or the event loop;
        /// - on a connection `tcp_connect` made, ends its [`Driver`] with
        ///   that error, so on the event loop
        ///   [`with_event_loop`](crate::with_event_loop) returns it (as
        ///   cl-async lets an unhandled condition out of its loop): the
        ///   program that made the connection learns it failed.
        pub fn event_cb(mut self, f: impl Fn(Event) + Send + Sync + 'static) -> Self {
            self.cbs.event = Some(std::sync::Arc::new(f));
            self
        }

        /// `connect-cb`: called once the connection is up, before any
        /// `read_cb`.
        pub fn connect_cb(mut self, f: impl Fn(&Socket) + Send + Sync + 'static) -> Self {
            self.cbs.connect = Some(std::sync::Arc::new(f));
            self
        }

        /// `write-cb`: called each time the queued output has all been handed
        /// to the kernel (once per drain), so a writer can wait for it
        /// before writing more.
        ///
        /// Each call follows the `send` that emptied the queue, so a writer
        /// that streams should queue a good amount per call: up to the
        /// high-water mark ([`Socket::queued`] against
        /// [`Socket::water_marks`]), which keeps the kernel busy at
        /// full speed with 64 KiB in memory. One small write per call is
        /// one `send` per write, and with `TCP_NODELAY` one TCP segment per
        /// write: an order of magnitude slower than topping up.
        ///
        /// # Examples
        ///
        /// A writer that sends 1 MiB in 1 KiB writes, paced by `write_cb`:
        ///
        /// ```
        /// use std::sync::Arc;
        /// use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
        /// use streamish::{ReadData, Socket, tcp_connect, tcp_server, with_event_loop};
        ///
        /// const WRITES: usize = 1024;
        /// let got = Arc::new(AtomicUsize::new(0));
        /// let counted = got.clone();
        /// with_event_loop(move || -> std::io::Result<()> {
        ///     let server = tcp_server("127.0.0.1", 0)
        ///         .read_cb(move |_, data| {
        ///             if let ReadData::Bytes(b) = data {
        ///                 counted.fetch_add(b.len(), Relaxed);
        ///             }
        ///         })
        ///         .spawn()?;
        ///     let port = server.local_addr().port();
        ///     let left = Arc::new(AtomicUsize::new(WRITES));
        ///     let pump = move |sock: &Socket| {
        ///         // Top the queue up to the high-water mark.
        ///         let (high, _) = sock.water_marks();
        ///         let mut n = left.load(Relaxed);
        ///         while n > 0 && sock.queued() < high {
        ///             sock.write(&[7; 1024]).unwrap();
        ///             n -= 1;
        ///         }
        ///         left.store(n, Relaxed);
        ///         if n == 0 && sock.is_open() {
        ///             sock.close(); // what is queued still goes out
        ///             server.close();
        ///         }
        ///     };
        ///     tcp_connect("127.0.0.1", port)
        ///         .connect_cb(pump.clone())
        ///         .write_cb(pump)
        ///         .spawn()?;
        ///     Ok(())
        /// })
        /// .unwrap();
        /// assert_eq!(got.load(Relaxed), WRITES * 1024);
        /// ```
        pub fn write_cb(mut self, f: impl Fn(&Socket) + Send + Sync + 'static) -> Self {
            self.cbs.write = Some(std::sync::Arc::new(f));
            self
        }

        /// `stream`: read through the connection's stream
        /// ([`TcpStream`](crate::TcpStream), or a pipe's `UnixStream`):
        /// `read_cb` gets [`ReadData::Stream`]. Implies `dont_drain_read_buffer` unless that
        /// is given. What `read_cb` leaves unread stays buffered (cl-async's
        /// stream buffer): it is offered again at once while each call
        /// consumes some, and otherwise with the next bytes to arrive. What
        /// is unread at end of file stays readable in `event_cb` and from
        /// the stream afterwards, until it is dropped, closed or aborted.
        /// Once 1 MiB is left unread, reading pauses (the kernel then pushes back
        /// on the peer) until the application consumes some of it.
        pub fn stream(mut self, on: bool) -> Self {
            self.settings.stream = on;
            self
        }

        /// `dont-drain-read-buffer`: keep arriving bytes in the socket's
        /// input buffer and give `read_cb` a stream over it, with or without
        /// `stream`.
        pub fn dont_drain_read_buffer(mut self, on: bool) -> Self {
            self.settings.dont_drain = Some(on);
            self
        }

        /// `read-timeout`: no byte received for this long, once connected,
        /// is [`Event::Timeout`] with [`Clock::Read`](crate::Clock::Read).
        /// The clock restarts on every read. `None` (the default) is no
        /// timeout; zero is refused.
        pub fn read_timeout(mut self, t: impl Into<Option<std::time::Duration>>) -> Self {
            match $crate::callback::check_timeout("read_timeout", t.into()) {
                Ok(t) => self.settings.read_timeout = t,
                Err(e) => self.settings.error = Some(e),
            }
            self
        }

        /// `write-timeout`: queued output making no progress for this long
        /// is [`Event::Timeout`] with [`Clock::Write`](crate::Clock::Write).
        /// Armed only while output waits; restarted by every write that
        /// makes progress. `None` (the default) is no timeout; zero is
        /// refused.
        pub fn write_timeout(mut self, t: impl Into<Option<std::time::Duration>>) -> Self {
            match $crate::callback::check_timeout("write_timeout", t.into()) {
                Ok(t) => self.settings.write_timeout = t,
                Err(e) => self.settings.error = Some(e),
            }
            self
        }

        /// Keeps the connection open after the peer's end of file, for
        /// writing (off by default, as in cl-async, which closes on
        /// `tcp-eof`). It then closes once its own write side is shut down
        /// too ([`Socket::shutdown_write`]) or on [`Socket::close`]:
        /// what a proxy needs to pass a half-close through.
        pub fn allow_half_open(mut self, on: bool) -> Self {
            self.settings.half_open = on;
            self
        }

        /// The most output a connection may queue (cl-async has no bound):
        /// a write past it fails the connection with
        /// [`Event::QueueFull`](crate::Event::QueueFull), reported to
        /// `event_cb`, instead of letting a peer that never reads grow the
        /// process. Default [`DEFAULT_MAX_QUEUED`](crate::DEFAULT_MAX_QUEUED);
        /// see [`Socket::set_max_queued`]. Zero is refused.
        pub fn max_queued(mut self, bytes: usize) -> Self {
            if bytes == 0 {
                self.settings.error = Some("max_queued must be above 0".into());
            }
            self.settings.max_queued = bytes.max(1);
            self
        }
    };
}

pub(crate) use common_options;

/// The callback face's controls on a live socket.
impl Socket {
    /// Stops reading (cl-async's `disable-socket`, which it never
    /// implemented): no `read_cb` and no read clock until
    /// [`resume_reading`](Socket::resume_reading); the kernel buffers,
    /// then pushes back on the peer.
    pub fn pause_reading(&self) {
        self.conn.set_paused(true);
    }

    /// Reads again after [`pause_reading`](Socket::pause_reading)
    /// (cl-async's `enable-socket`).
    pub fn resume_reading(&self) {
        self.conn.set_paused(false);
    }

    /// Half-close: refuses further writes; what is queued still goes out,
    /// then the write side is shut down and the peer sees end of file, while
    /// reading goes on. Returns at once: the connection's driver (or the next
    /// flush of a stream over it) finishes it. cl-async has no such call.
    pub fn shutdown_write(&self) {
        self.conn.request_shutdown_write();
    }

    /// Whether reading is paused.
    pub fn is_reading_paused(&self) -> bool {
        self.conn.is_paused()
    }

    /// Changes the read and write clocks of a live connection (cl-async's
    /// `set-socket-timeouts`); `None` turns a clock off. Zero is refused
    /// with `InvalidInput`. A clock turned on starts now, however long the
    /// connection was silent before (as libevent's `bufferevent_set_timeouts`
    /// does). The clocks are kept by the callback face's driver; on the
    /// await face, race an `async_io::Timer` instead.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// # use streamish::{TcpListener, TcpStream};
    /// # futures_lite::future::block_on(async {
    /// # let server = TcpListener::bind("127.0.0.1:0")?;
    /// # let socket = TcpStream::connect(server.local_addr()).await?.into_socket();
    /// socket.set_timeouts(Some(Duration::from_secs(30)), None)?;
    /// assert_eq!(socket.timeouts(), (Some(Duration::from_secs(30)), None));
    /// assert!(socket.set_timeouts(Some(Duration::ZERO), None).is_err());
    /// # std::io::Result::Ok(()) }).unwrap();
    /// ```
    pub fn set_timeouts(&self, read: Option<Duration>, write: Option<Duration>) -> io::Result<()> {
        let invalid = |e: String| io::Error::new(io::ErrorKind::InvalidInput, e);
        let read = check_timeout("read_timeout", read).map_err(invalid)?;
        let write = check_timeout("write_timeout", write).map_err(invalid)?;
        self.set_ctl(|ctl| ctl.set_timeouts(read, write));
        Ok(())
    }

    /// The `(read, write)` timeouts.
    pub fn timeouts(&self) -> (Option<Duration>, Option<Duration>) {
        self.conn.ctl().timeouts()
    }

    fn set_ctl(&self, f: impl FnOnce(&mut crate::ctl::Ctl)) {
        f(&mut self.conn.ctl());
        self.conn.wake_driver();
    }
}
