//! [`Event`]: cl-async's conditions as one typed error.
//!
//! cl-async signals `tcp-eof`, `tcp-reset`, `tcp-timeout`, … to a socket's
//! `event-cb`. streamish gives each of them a variant of [`Event`], which is
//! both what `event_cb` receives and the payload of every `io::Error` the
//! streams return, so a caller can match on either.

use std::error::Error;
use std::fmt;
use std::io;

use crate::Socket;

/// Which clock fired for an [`Event::Timeout`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Clock {
    /// `read_timeout`: no byte arrived for that long.
    Read,
    /// `write_timeout`: queued output made no progress for that long.
    Write,
    /// `connect_timeout`: resolution and connection took too long.
    Connect,
}

impl fmt::Display for Clock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Clock::Read => "read",
            Clock::Write => "write",
            Clock::Connect => "connect",
        })
    }
}

/// One of cl-async's socket conditions, carrying the socket it happened on.
///
/// | cl-async condition       | variant                  | `io::ErrorKind`      |
/// |--------------------------|--------------------------|----------------------|
/// | `tcp-eof`                | [`Event::Eof`]           | `UnexpectedEof`      |
/// | `tcp-reset`              | [`Event::Reset`]         | `ConnectionReset`    |
/// | `tcp-timeout`            | [`Event::Timeout`]       | `TimedOut`           |
/// | `tcp-refused`            | [`Event::Refused`]       | `ConnectionRefused`  |
/// | `socket-aborted`         | [`Event::Aborted`]       | `ConnectionAborted`  |
/// | `socket-address-in-use`  | [`Event::AddressInUse`]  | `AddrInUse`          |
/// | `dns-error`              | [`Event::Dns`]           | `NotFound`           |
/// | `streamish-closed`       | [`Event::Closed`]        | `NotConnected`       |
/// | `streamish-broken-pipe`  | [`Event::BrokenPipe`]    | `BrokenPipe`         |
/// | `streamish-canceled`     | [`Event::Canceled`]      | `Other`              |
/// | `streamish-queue-full`   | [`Event::QueueFull`]     | `OutOfMemory`        |
/// | `tcp-ssl-error`          | [`Event::Tls`]           | the error's own      |
/// | `tcp-ssl-certificate-error` | [`Event::Certificate`] | `InvalidData`       |
/// | any other I/O error      | [`Event::Io`]            | the error's own      |
///
/// `Event` converts to and from [`io::Error`]: an `io::Error` made from an
/// `Event` keeps it as its payload and converts back losslessly, and any
/// other `io::Error` is classified by its kind.
///
/// # Examples
///
/// ```
/// use std::io;
/// use streamish::Event;
///
/// let err: io::Error = Event::Closed { socket: None }.into();
/// assert_eq!(err.kind(), io::ErrorKind::NotConnected);
/// assert!(matches!(Event::from(err), Event::Closed { .. }));
///
/// let reset = io::Error::from(io::ErrorKind::ConnectionReset);
/// assert!(matches!(Event::from(reset), Event::Reset { .. }));
/// ```
#[non_exhaustive]
pub enum Event {
    /// The peer closed its side (`tcp-eof`). Every byte that came before it
    /// has been delivered.
    Eof {
        /// The socket it happened on.
        socket: Option<Socket>,
    },
    /// The peer reset the connection (`tcp-reset`).
    Reset {
        /// The socket it happened on.
        socket: Option<Socket>,
        /// The system's error.
        error: io::Error,
    },
    /// A clock ran out (`tcp-timeout`).
    Timeout {
        /// The socket it happened on.
        socket: Option<Socket>,
        /// Which clock fired.
        clock: Clock,
    },
    /// Nobody listens at the address (`tcp-refused`).
    Refused {
        /// The socket it happened on.
        socket: Option<Socket>,
        /// The system's error, naming the addresses tried.
        error: io::Error,
    },
    /// The connection was aborted locally (`socket-aborted`).
    Aborted {
        /// The socket it happened on.
        socket: Option<Socket>,
        /// The system's error.
        error: io::Error,
    },
    /// The address to bind is in use (`socket-address-in-use`).
    AddressInUse {
        /// The socket it happened on, if any.
        socket: Option<Socket>,
        /// The system's error, naming the address.
        error: io::Error,
    },
    /// The host name could not be resolved (`dns-error`).
    Dns {
        /// The socket it happened on.
        socket: Option<Socket>,
        /// The name that failed.
        host: String,
        /// Why it failed.
        error: io::Error,
    },
    /// An operation on a closed stream or socket (`streamish-closed`).
    Closed {
        /// The socket it happened on.
        socket: Option<Socket>,
    },
    /// The peer is gone while output was still being written
    /// (`streamish-broken-pipe`).
    BrokenPipe {
        /// The socket it happened on.
        socket: Option<Socket>,
        /// The system's error.
        error: io::Error,
    },
    /// The operation was canceled before it completed, for example a
    /// connection closed while it was still connecting
    /// (`streamish-canceled`).
    Canceled {
        /// The socket it happened on.
        socket: Option<Socket>,
    },
    /// The connection queued more output than its bound allows
    /// (`streamish-queue-full`): the peer does not read what it is sent.
    /// The connection fails rather than grow without end; see
    /// [`Socket::set_max_queued`].
    QueueFull {
        /// The socket it happened on.
        socket: Option<Socket>,
    },
    /// A TLS handshake or record failed, or the peer closed without
    /// `close_notify` (a truncated stream, kind `UnexpectedEof`):
    /// cl-async-ssl's `tcp-ssl-error`. The error carries rustls's reason.
    Tls {
        /// The socket it happened on.
        socket: Option<Socket>,
        /// Why, with the `rustls::Error` inside where rustls gave one.
        error: io::Error,
    },
    /// A certificate was refused during the TLS handshake: the peer's
    /// (unknown issuer, wrong name, expired...) or ours, by the peer.
    Certificate {
        /// The socket it happened on.
        socket: Option<Socket>,
        /// Why, with the `rustls::Error` inside.
        error: io::Error,
    },
    /// Any other I/O error.
    Io {
        /// The socket it happened on.
        socket: Option<Socket>,
        /// The error.
        error: io::Error,
    },
}

/// Every variant's `socket` field, by reference (shared or mutable, as the
/// event is).
macro_rules! socket_field {
    ($ev:expr) => {
        match $ev {
            Event::Eof { socket }
            | Event::Reset { socket, .. }
            | Event::Timeout { socket, .. }
            | Event::Refused { socket, .. }
            | Event::Aborted { socket, .. }
            | Event::AddressInUse { socket, .. }
            | Event::Dns { socket, .. }
            | Event::Closed { socket }
            | Event::BrokenPipe { socket, .. }
            | Event::Canceled { socket }
            | Event::QueueFull { socket }
            | Event::Tls { socket, .. }
            | Event::Certificate { socket, .. }
            | Event::Io { socket, .. } => socket,
        }
    };
}

impl Event {
    /// The socket this event happened on, if there is one.
    pub fn socket(&self) -> Option<&Socket> {
        socket_field!(self).as_ref()
    }

    fn socket_mut(&mut self) -> &mut Option<Socket> {
        socket_field!(self)
    }

    /// Attaches `socket` to this event, replacing any socket it carried.
    pub fn with_socket(mut self, socket: Socket) -> Self {
        *self.socket_mut() = Some(socket);
        self
    }

    /// The `io::ErrorKind` this event converts to.
    pub fn kind(&self) -> io::ErrorKind {
        match self {
            Event::Eof { .. } => io::ErrorKind::UnexpectedEof,
            Event::Reset { .. } => io::ErrorKind::ConnectionReset,
            Event::Timeout { .. } => io::ErrorKind::TimedOut,
            Event::Refused { .. } => io::ErrorKind::ConnectionRefused,
            Event::Aborted { .. } => io::ErrorKind::ConnectionAborted,
            Event::AddressInUse { .. } => io::ErrorKind::AddrInUse,
            Event::Dns { .. } => io::ErrorKind::NotFound,
            Event::Closed { .. } => io::ErrorKind::NotConnected,
            Event::BrokenPipe { .. } => io::ErrorKind::BrokenPipe,
            Event::Canceled { .. } => io::ErrorKind::Other,
            Event::QueueFull { .. } => io::ErrorKind::OutOfMemory,
            Event::Tls { error, .. } => error.kind(),
            Event::Certificate { .. } => io::ErrorKind::InvalidData,
            Event::Io { error, .. } => error.kind(),
        }
    }

    /// The cl-async name of this condition, e.g. `"tcp-eof"`.
    pub fn name(&self) -> &'static str {
        match self {
            Event::Eof { .. } => "tcp-eof",
            Event::Reset { .. } => "tcp-reset",
            Event::Timeout { .. } => "tcp-timeout",
            Event::Refused { .. } => "tcp-refused",
            Event::Aborted { .. } => "socket-aborted",
            Event::AddressInUse { .. } => "socket-address-in-use",
            Event::Dns { .. } => "dns-error",
            Event::Closed { .. } => "streamish-closed",
            Event::BrokenPipe { .. } => "streamish-broken-pipe",
            Event::Canceled { .. } => "streamish-canceled",
            Event::QueueFull { .. } => "streamish-queue-full",
            Event::Tls { .. } => "tcp-ssl-error",
            Event::Certificate { .. } => "tcp-ssl-certificate-error",
            Event::Io { .. } => "streamish-error",
        }
    }

    /// Whether this event is an error. Only [`Event::Eof`] is not: after it
    /// the connection may still write (half-close).
    pub fn is_error(&self) -> bool {
        !matches!(self, Event::Eof { .. })
    }

    /// Classifies an `io::Error`, keeping the `Event` it carries if it was
    /// made from one.
    pub(crate) fn from_io(err: io::Error, socket: Option<Socket>) -> Event {
        let ev = Event::from(err);
        match socket {
            Some(s) if ev.socket().is_none() => ev.with_socket(s),
            _ => ev,
        }
    }

    /// A copy without the socket: system errors are copied as their kind
    /// and message (`io::Error` is not `Clone`).
    pub(crate) fn duplicate(&self) -> Event {
        let copy = |e: &io::Error| io::Error::new(e.kind(), e.to_string());
        let socket = None;
        match self {
            Event::Eof { .. } => Event::Eof { socket },
            Event::QueueFull { .. } => Event::QueueFull { socket },
            Event::Reset { error, .. } => Event::Reset {
                socket,
                error: copy(error),
            },
            Event::Timeout { clock, .. } => Event::Timeout { socket, clock: *clock },
            Event::Refused { error, .. } => Event::Refused {
                socket,
                error: copy(error),
            },
            Event::Aborted { error, .. } => Event::Aborted {
                socket,
                error: copy(error),
            },
            Event::AddressInUse { error, .. } => Event::AddressInUse {
                socket,
                error: copy(error),
            },
            Event::Dns { host, error, .. } => Event::Dns {
                socket,
                host: host.clone(),
                error: copy(error),
            },
            Event::Closed { .. } => Event::Closed { socket },
            Event::BrokenPipe { error, .. } => Event::BrokenPipe {
                socket,
                error: copy(error),
            },
            Event::Canceled { .. } => Event::Canceled { socket },
            Event::Tls { error, .. } => Event::Tls {
                socket,
                error: copy(error),
            },
            Event::Certificate { error, .. } => Event::Certificate {
                socket,
                error: copy(error),
            },
            Event::Io { error, .. } => Event::Io {
                socket,
                error: copy(error),
            },
        }
    }

    /// The `Closed` error as an `io::Error`.
    pub(crate) fn closed() -> io::Error {
        Event::Closed { socket: None }.into()
    }
}

/// One line, as `Display` prints it: an `Event` returned from `main`, or
/// inside the `io::Error` returned from it, reads as
/// `tcp-refused: 127.0.0.1:1: connection refused`, not as nested structs.
impl fmt::Debug for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// The cl-async name, then what happened, on one line:
/// `tcp-timeout: read timeout`, `dns-error: cannot resolve "x.invalid": …`.
impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.name())?;
        match self {
            Event::Eof { .. } => f.write_str("end of file: the peer closed the connection"),
            Event::Timeout { clock, .. } => write!(f, "{clock} timeout"),
            Event::Dns { host, error, .. } => write!(f, "cannot resolve {host:?}: {error}"),
            Event::Closed { .. } => f.write_str("the stream is closed"),
            Event::Canceled { .. } => f.write_str("the operation was canceled"),
            Event::QueueFull { .. } => f.write_str("too much output queued: the peer does not read"),
            Event::Reset { error, .. }
            | Event::Refused { error, .. }
            | Event::Aborted { error, .. }
            | Event::AddressInUse { error, .. }
            | Event::BrokenPipe { error, .. }
            | Event::Tls { error, .. }
            | Event::Certificate { error, .. }
            | Event::Io { error, .. } => fmt::Display::fmt(error, f),
        }
    }
}

impl Error for Event {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            Event::Reset { error, .. }
            | Event::Refused { error, .. }
            | Event::Aborted { error, .. }
            | Event::AddressInUse { error, .. }
            | Event::Dns { error, .. }
            | Event::BrokenPipe { error, .. }
            | Event::Tls { error, .. }
            | Event::Certificate { error, .. }
            | Event::Io { error, .. } => error.get_ref().map(|e| e as &(dyn Error + 'static)),
            _ => None,
        }
    }
}

impl From<Event> for io::Error {
    fn from(ev: Event) -> io::Error {
        io::Error::new(ev.kind(), ev)
    }
}

impl From<io::Error> for Event {
    fn from(err: io::Error) -> Event {
        // An io::Error made from an Event gives it back whole.
        let err = match err.get_ref().is_some_and(|e| e.is::<Event>()) {
            true => match err.into_inner().map(|inner| inner.downcast::<Event>()) {
                Some(Ok(ev)) => return *ev,
                // Not reached: the payload was just checked to be an Event.
                _ => io::Error::other("lost event"),
            },
            false => err,
        };
        let socket = None;
        match err.kind() {
            io::ErrorKind::UnexpectedEof => Event::Eof { socket },
            io::ErrorKind::ConnectionReset => Event::Reset { socket, error: err },
            io::ErrorKind::TimedOut => Event::Timeout {
                socket,
                clock: Clock::Read,
            },
            io::ErrorKind::ConnectionRefused => Event::Refused { socket, error: err },
            io::ErrorKind::ConnectionAborted => Event::Aborted { socket, error: err },
            io::ErrorKind::AddrInUse => Event::AddressInUse { socket, error: err },
            io::ErrorKind::NotConnected => Event::Closed { socket },
            io::ErrorKind::BrokenPipe => Event::BrokenPipe { socket, error: err },
            io::ErrorKind::OutOfMemory => Event::QueueFull { socket },
            _ => Event::Io { socket, error: err },
        }
    }
}
