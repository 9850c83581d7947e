//! cl-async's streams for Rust: buffered streams over TCP, Unix-domain
//! sockets and TLS that never block, driven by callbacks on an event loop
//! or awaited, on any executor.
//!
//! # The model
//!
//! A connection is a [`Socket`]: a cheap, cloneable, `Send + Sync`
//! handle over a transport (a socket registered with async-io's reactor,
//! and for TLS rustls over it) with an input buffer and an
//! output queue. cl-async's stream classes are traits over it —
//! [`AsyncStream`], [`AsyncInputStream`], [`AsyncOutputStream`] and the
//! blanket [`AsyncIoStream`] — that name no transport: [`TcpStream`] and
//! its halves [`TcpInputStream`] and [`TcpOutputStream`] implement them, as
//! do the Unix-domain and TLS streams below, and all are also futures-io
//! `AsyncRead`, `AsyncBufRead` and `AsyncWrite`. [`duplex`] makes a
//! connected pair of in-memory [`DuplexStream`]s with the same semantics,
//! for testing code written against the traits without sockets. Generic
//! code takes `&mut dyn AsyncIoStream` or `S: AsyncIoStream + ?Sized` and
//! runs over any of them.
//!
//! - **Reading never waits** with [`read_sequence`](AsyncInputStream::read_sequence)
//!   and [`read_byte`](AsyncInputStream::read_byte): they return what is
//!   buffered or already in the kernel, and "nothing yet" is not end of file
//!   ([`at_eof`](AsyncInputStream::at_eof)). To wait, await futures-io's
//!   `read` or `fill_buf`, or let a callback be called.
//! - **Writing never waits** with [`write_sequence`](AsyncOutputStream::write_sequence)
//!   and [`Socket::write`]: the bytes are queued, whole. Queued output goes
//!   out by itself, coalesced into vectored system calls, at the latest when
//!   the writing task next waits (or a callback returns);
//!   [`finish_output`](AsyncOutputStreamExt::finish_output) waits until the
//!   kernel has it all. `AsyncWrite` pushes back above a high-water mark.
//! - **Errors are [`Event`]s**, one per cl-async condition, carried inside
//!   every `io::Error` the streams return.
//!
//! On Unix the same engine runs over Unix-domain sockets, cl-async's pipes:
//! [`UnixStream`] and its halves, [`UnixListener`], and the callback face's
//! [`pipe_connect`] and [`pipe_server`] (the builders of TCP, less the TCP
//! options). With the `tls` feature it runs over TLS (rustls):
//! `TlsStream`, `TlsListener`, and cl-async-ssl's `tcp_ssl_connect` and
//! `tcp_ssl_server`; see the `tls` module.
//!
//! No task runs in the background on the await face: the task that polls a
//! stream does its I/O, and whoever turns the reactor sends what it left
//! queued. On the callback face, [`tcp_connect`] and
//! [`tcp_server`] make a [`Driver`] per connection — a future that reads,
//! calls `read_cb`, flushes what the callbacks wrote, and watches the
//! timeouts — which runs on [`with_event_loop`] or on any executor you
//! already run (smol, tokio, async-executor). I/O readiness comes from
//! async-io's reactor; name resolution runs on `blocking`'s thread pool.
//!
//! The reactor runs on the thread that parks in `async_io::block_on` (as
//! `smol::block_on` and [`with_event_loop`] do), and on async-io's own
//! thread otherwise. Under another runtime, tokio's for one, every
//! readiness event is therefore handed from that thread to the runtime's:
//! everything works, but a round trip pays two thread wake-ups. Where
//! round trips matter, give streamish a thread that parks in
//! `async_io::block_on`, and talk to the rest of the program over
//! channels (`design/performance.md` has the measurements).
//!
//! # Examples
//!
//! The await face: connect, write without flushing, read the reply.
//!
//! ```
//! use futures_lite::{AsyncReadExt, AsyncWriteExt};
//! use streamish::{AsyncInputStream, TcpListener, TcpStream};
//!
//! # futures_lite::future::block_on(async {
//! let server = TcpListener::bind("127.0.0.1:0")?;
//! let mut client = TcpStream::connect(server.local_addr()).await?;
//! let (mut peer, _) = server.accept().await?;
//!
//! client.write_all(b"ping").await?;  // goes out by itself: no flush
//! let mut buf = [0u8; 4];
//! peer.read_exact(&mut buf).await?;
//! peer.write_all(b"pong").await?;
//!
//! client.read_exact(&mut buf).await?;
//! assert_eq!(&buf, b"pong");
//! assert_eq!(client.read_sequence(&mut buf)?, 0); // nothing more yet...
//! assert!(!client.at_eof());                      // ...and that is not EOF
//! # std::io::Result::Ok(()) }).unwrap();
//! ```
//!
//! The callback face: cl-async's echo server and a client, on the event
//! loop.
//!
//! ```
//! use streamish::{ReadData, tcp_connect, tcp_server, with_event_loop};
//!
//! with_event_loop(|| -> std::io::Result<()> {
//!     let server = tcp_server("127.0.0.1", 0)
//!         .read_cb(|sock, data| {
//!             let _ = sock.write_bytes(data.into_bytes()); // echo, no copy
//!         })
//!         .spawn()?;
//!     tcp_connect("127.0.0.1", server.local_addr().port())
//!         .data("hai hai")
//!         .read_cb(move |sock, data| {
//!             assert_eq!(&data.into_bytes()[..], b"hai hai");
//!             sock.close();
//!             server.close();
//!         })
//!         .event_cb(|ev| eprintln!("ev: {ev}"))
//!         .spawn()?;
//!     Ok(())
//! })
//! .unwrap();
//! ```
#![deny(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations, rust_2018_idioms)]

mod addr;
mod buf;
mod callback;
mod conn;
mod ctl;
mod duplex;
mod event;
mod ext;
mod listener;
mod pool;
pub mod prelude;
mod socket;
mod sockopt;
mod stream;
mod sys;
#[cfg(feature = "tls")]
#[cfg_attr(docsrs, doc(cfg(feature = "tls")))]
pub mod tls;
mod traits;
mod transport;
mod tuning;
#[cfg(unix)]
mod unix;
mod wait;

pub use addr::ToAddrs;
pub use callback::{
    ConnectBuilder, Driver, LoopLocal, LoopOutput, ReadData, ServerBuilder, ServerHandle, Stats, TcpConnect,
    TcpServerBuilder, TcpServerHandle, exit_event_loop, process_stats, spawn, stats, tcp_connect, tcp_server,
    with_event_loop,
};
#[cfg(unix)]
pub use callback::{PipeConnect, PipeServerBuilder, pipe_connect, pipe_server};
#[cfg(feature = "tls")]
pub use callback::{TlsConnect, TlsServerBuilder, tcp_ssl_connect, tcp_ssl_server};
pub use duplex::{DuplexStream, duplex};
pub use event::{Clock, Event};
pub use ext::{AsyncInputStreamExt, AsyncOutputStreamExt, AsyncStreamExt, CloseStream, FinishOutput};
pub use listener::{Incoming, TcpListener};
pub use tuning::{DEFAULT_BACKLOG, DEFAULT_HIGH_WATER, DEFAULT_LOW_WATER, DEFAULT_MAX_QUEUED, DROP_LINGER};

/// The README's examples, compiled and run as doc tests.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;

/// The listener's former name.
#[deprecated(note = "renamed `TcpListener`, as std, tokio and async-net call it")]
pub type TcpServer = TcpListener;
pub use socket::{Socket, TcpSocket};
pub use stream::{ReuniteError, TcpInputStream, TcpOutputStream, TcpStream};
#[cfg(feature = "tls")]
pub use tls::{TlsInputStream, TlsListener, TlsOutputStream, TlsStream};
pub use traits::{AsyncInputStream, AsyncIoStream, AsyncOutputStream, AsyncStream};
#[cfg(unix)]
pub use unix::{UnixIncoming, UnixInputStream, UnixListener, UnixOutputStream, UnixStream};
