//! The stream types. Every transport has three, declared by
//! `stream_types!`: the whole stream ([`TcpStream`]) and its halves
//! ([`TcpInputStream`], [`TcpOutputStream`]).
//!
//! Each is a [`Socket`] plus, for the input side, the front of the input
//! buffer that `AsyncBufRead::poll_fill_buf` lent out. All the work is in
//! [`crate::conn`]; this module maps the traits onto it.

use std::fmt;
use std::io;
use std::net::{Shutdown, SocketAddr};
use std::task::{Context, Poll, ready};

use async_io::Async;
use bytes::{Buf, Bytes};

use crate::Socket;
use crate::addr::{self, ToAddrs};
use crate::transport::Io;
use crate::wait::WaitId;

/// The input half's state: the socket and the bytes `poll_fill_buf` took out
/// of the shared buffer and lent to the caller (they precede everything
/// still in the shared buffer). Crate-visible, as its methods are, because
/// `stream_types!` expands in each transport's module.
pub(crate) struct Reader {
    pub(crate) socket: Socket,
    pub(crate) front: Bytes,
    /// This handle's key among the connection's waiting tasks (a whole
    /// stream writes under it too).
    pub(crate) id: WaitId,
}

impl Drop for Reader {
    fn drop(&mut self) {
        self.socket.conn.forget(self.id);
    }
}

impl Reader {
    pub(crate) fn new(socket: Socket) -> Reader {
        Reader {
            id: socket.conn.ids.next(),
            socket,
            front: Bytes::new(),
        }
    }

    pub(crate) fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        if !self.front.is_empty() {
            let n = buf.len().min(self.front.len());
            buf[..n].copy_from_slice(&self.front[..n]);
            self.front.advance(n);
            return Poll::Ready(Ok(n));
        }
        self.socket.conn.poll_read(self.id, cx, buf)
    }

    pub(crate) fn poll_fill_buf(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<&[u8]>> {
        if self.front.is_empty() {
            if let Some(bytes) = ready!(self.socket.conn.poll_take(self.id, cx))? {
                self.front = bytes;
            }
        }
        Poll::Ready(Ok(&self.front))
    }

    pub(crate) fn consume(&mut self, amt: usize) {
        self.front.advance(amt.min(self.front.len()));
    }

    pub(crate) fn read_sequence(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        // On a closed connection `read_now` gives what is still buffered.
        let n = buf.len().min(self.front.len());
        buf[..n].copy_from_slice(&self.front[..n]);
        self.front.advance(n);
        if n == buf.len() {
            return Ok(n);
        }
        match self.socket.conn.read_now(&mut buf[n..]) {
            Ok(k) => Ok(n + k),
            Err(_) if n > 0 => Ok(n),
            Err(e) => Err(e),
        }
    }

    pub(crate) fn buffered(&self) -> usize {
        self.front.len() + self.socket.conn.buffered()
    }

    /// Up to and including `delim`, from the lent front and the shared
    /// buffer, if it is buffered.
    pub(crate) fn take_until(&mut self, delim: u8) -> io::Result<Option<Bytes>> {
        if let Some(i) = self.front.iter().position(|&b| b == delim) {
            return Ok(Some(self.front.split_to(i + 1)));
        }
        let conn = &self.socket.conn;
        let Some(i) = conn.with_buffered(|b| b.iter().position(|&b| b == delim)) else {
            if self.front.is_empty() && conn.is_closed() && conn.buffered() == 0 {
                return Err(conn.closed_error());
            }
            return Ok(None);
        };
        let mut line = Vec::with_capacity(self.front.len() + i + 1);
        line.extend_from_slice(&std::mem::take(&mut self.front));
        let start = line.len();
        line.resize(start + i + 1, 0);
        // Every byte asked for is buffered: this copies and never reads.
        let n = conn.read_now(&mut line[start..])?;
        line.truncate(start + n);
        Ok(Some(Bytes::from(line)))
    }

    pub(crate) fn peek(&self, buf: &mut [u8]) -> usize {
        let n = buf.len().min(self.front.len());
        buf[..n].copy_from_slice(&self.front[..n]);
        let rest = &mut buf[n..];
        n + self.socket.conn.with_buffered(|b| {
            let k = rest.len().min(b.len());
            rest[..k].copy_from_slice(&b[..k]);
            k
        })
    }

    pub(crate) fn clear(&mut self) {
        self.front = Bytes::new();
        self.socket.conn.clear_input();
    }
}

/// Declares a transport's three stream types over [`Socket`]: the whole
/// stream and its input and output halves, with every trait and the
/// methods they share. The transport's own methods (connecting, addresses)
/// are written beside it.
macro_rules! stream_types {
    (
        $(#[$sm:meta])* $stream:ident,
        $(#[$im:meta])* $input:ident,
        $(#[$om:meta])* $output:ident $(,)?
    ) => {
        $(#[$sm])*
        pub struct $stream {
            reader: $crate::stream::Reader,
        }

        $(#[$im])*
        pub struct $input {
            reader: $crate::stream::Reader,
        }

        $(#[$om])*
        pub struct $output {
            socket: $crate::Socket,
            id: $crate::wait::WaitId,
            /// Made by `split`: dropping it half-closes.
            half: bool,
        }

        impl Drop for $output {
            fn drop(&mut self) {
                self.socket.conn.forget(self.id);
                if self.half {
                    self.socket.conn.request_shutdown_write();
                }
            }
        }

        impl $stream {
            /// Wraps a socket in a stream (cl-async's
            /// `make-instance 'async-io-stream :socket sock`). Several
            /// streams over one socket share its buffers.
            pub fn new(socket: $crate::Socket) -> $stream {
                $stream {
                    reader: $crate::stream::Reader::new(socket),
                }
            }

            /// The socket this stream wraps.
            pub fn socket(&self) -> &$crate::Socket {
                &self.reader.socket
            }

            /// Gives up the stream, keeping the socket. Bytes lent out by
            /// `fill_buf` and not consumed go back to the front of the
            /// socket's input buffer.
            pub fn into_socket(self) -> $crate::Socket {
                $crate::stream::restore_front(self.reader)
            }

            /// Splits the stream into its input and output halves, which
            /// can be used from different tasks.
            ///
            /// Unlike the whole stream, the input half does not push queued
            /// output when it reads (that would make the reading task wait
            /// on the writer's readiness): the output half's bytes go out
            /// by themselves, and `finish_output` waits for them.
            pub fn split(self) -> ($input, $output) {
                let mut output = $output::new(self.reader.socket.clone());
                output.half = true;
                ($input { reader: self.reader }, output)
            }

            /// Puts halves made by `split` back together; halves of
            /// different connections are given back in the error.
            pub fn reunite(
                input: $input,
                output: $output,
            ) -> Result<$stream, $crate::ReuniteError<$input, $output>> {
                if input.reader.socket.ptr_eq(&output.socket) {
                    let mut output = output;
                    output.half = false;
                    Ok($stream { reader: input.reader })
                } else {
                    Err($crate::ReuniteError(input, output))
                }
            }

            /// Half-close: sends what is queued, then shuts down the write
            /// side. Reading goes on until the peer's end of file.
            /// `AsyncWrite::close` does the same.
            pub async fn shutdown_write(&mut self) -> std::io::Result<()> {
                let id = self.reader.id;
                futures_lite::future::poll_fn(|cx| self.reader.socket.conn.poll_shutdown_write(id, cx)).await
            }

            /// Bytes read from the transport so far.
            pub fn bytes_read(&self) -> u64 {
                self.reader.socket.bytes_read()
            }

            /// Bytes handed to the transport so far.
            pub fn bytes_written(&self) -> u64 {
                self.reader.socket.bytes_written()
            }

            /// Queues `data` without copying it (unless it is small); never
            /// waits.
            pub fn write_bytes(&mut self, data: impl Into<bytes::Bytes>) -> std::io::Result<()> {
                self.reader.socket.write_bytes(data)
            }
        }

        impl $input {
            /// Wraps a socket in an input stream (cl-async's
            /// `make-instance 'async-input-stream :socket sock`).
            pub fn new(socket: $crate::Socket) -> $input {
                $input {
                    reader: $crate::stream::Reader::new(socket),
                }
            }

            /// The socket this stream wraps.
            pub fn socket(&self) -> &$crate::Socket {
                &self.reader.socket
            }

            /// Gives up the stream, keeping the socket.
            pub fn into_socket(self) -> $crate::Socket {
                $crate::stream::restore_front(self.reader)
            }
        }

        impl $output {
            /// Wraps a socket in an output stream (cl-async's
            /// `make-instance 'async-output-stream :socket sock`).
            pub fn new(socket: $crate::Socket) -> $output {
                $output {
                    id: socket.conn.ids.next(),
                    socket,
                    half: false,
                }
            }

            /// The socket this stream wraps.
            pub fn socket(&self) -> &$crate::Socket {
                &self.socket
            }

            /// Gives up the stream, keeping the socket (a half made by
            /// `split` is then not shut down).
            pub fn into_socket(mut self) -> $crate::Socket {
                self.half = false;
                self.socket.clone()
            }

            /// Half-close: sends what is queued, then shuts down the write
            /// side.
            pub async fn shutdown_write(&mut self) -> std::io::Result<()> {
                let id = self.id;
                futures_lite::future::poll_fn(|cx| self.socket.conn.poll_shutdown_write(id, cx)).await
            }

            /// Queues `data` without copying it (unless it is small); never
            /// waits.
            pub fn write_bytes(&mut self, data: impl Into<bytes::Bytes>) -> std::io::Result<()> {
                self.socket.write_bytes(data)
            }
        }

        impl From<$crate::Socket> for $stream {
            fn from(socket: $crate::Socket) -> $stream {
                $stream::new(socket)
            }
        }

        // The trait impls, with the names they use in scope wherever the
        // transport's module declares its types.
        const _: () = {
            use std::fmt;
            use std::io;
            use std::pin::Pin;
            use std::task::{Context, Poll, ready};

            use bytes::Bytes;
            use futures_lite::io::{AsyncBufRead, AsyncRead, AsyncWrite};

            use $crate::{AsyncInputStream, AsyncOutputStream, AsyncStream, Socket};

            $crate::stream::impl_debug!($stream, $input, $output);
            $crate::stream::impl_input!($stream, push_output: true);
            $crate::stream::impl_input!($input, push_output: false);
            $crate::stream::impl_output!($stream, reader.socket, reader.id);
            $crate::stream::impl_output!($output, socket, id);
        };

        impl $crate::AsyncStream for $output {
            fn stream_socket(&self) -> Option<&$crate::Socket> {
                Some(&self.socket)
            }
            fn is_open(&self) -> bool {
                self.socket.is_open()
            }
            fn poll_close_stream(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                self.socket.conn.poll_close(self.id, cx)
            }
            fn abort(&mut self) {
                self.socket.conn.abort();
            }
        }

        #[cfg(unix)]
        impl std::os::fd::AsRawFd for $stream {
            fn as_raw_fd(&self) -> std::os::fd::RawFd {
                self.reader.socket.as_raw_fd()
            }
        }
        #[cfg(unix)]
        impl std::os::fd::AsRawFd for $input {
            fn as_raw_fd(&self) -> std::os::fd::RawFd {
                self.reader.socket.as_raw_fd()
            }
        }
        #[cfg(unix)]
        impl std::os::fd::AsRawFd for $output {
            fn as_raw_fd(&self) -> std::os::fd::RawFd {
                self.socket.as_raw_fd()
            }
        }
        #[cfg(windows)]
        impl std::os::windows::io::AsRawSocket for $stream {
            fn as_raw_socket(&self) -> std::os::windows::io::RawSocket {
                self.reader.socket.as_raw_socket()
            }
        }
        #[cfg(windows)]
        impl std::os::windows::io::AsRawSocket for $input {
            fn as_raw_socket(&self) -> std::os::windows::io::RawSocket {
                self.reader.socket.as_raw_socket()
            }
        }
        #[cfg(windows)]
        impl std::os::windows::io::AsRawSocket for $output {
            fn as_raw_socket(&self) -> std::os::windows::io::RawSocket {
                self.socket.as_raw_socket()
            }
        }
    };
}
#[allow(unused_imports)] // used by the other transports' modules
pub(crate) use stream_types;

/// The error of `reunite`: the halves came from different streams. It
/// gives them back.
#[derive(Debug)]
pub struct ReuniteError<I = TcpInputStream, O = TcpOutputStream>(pub I, pub O);

impl<I, O> fmt::Display for ReuniteError<I, O> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the halves belong to different connections")
    }
}

impl<I: fmt::Debug, O: fmt::Debug> std::error::Error for ReuniteError<I, O> {}

stream_types! {
/// A TCP stream in both directions: cl-async's `async-io-stream`.
///
/// Reads come from an input buffer the stream fills from the socket;
/// writes go to an output queue that is sent, coalesced into vectored
/// writes, whenever the stream is polled. It implements the cl-async traits
/// ([`AsyncInputStream`](crate::AsyncInputStream), [`AsyncOutputStream`](crate::AsyncOutputStream), hence
/// [`AsyncIoStream`](crate::AsyncIoStream)) and futures-io's `AsyncRead`,
/// `AsyncBufRead` and `AsyncWrite`, so futures-lite's whole toolbox works.
///
/// # Examples
///
/// A request and its response, with no explicit flush: written bytes go
/// out by themselves.
///
/// ```
/// use futures_lite::{AsyncReadExt, AsyncWriteExt};
/// use streamish::{TcpListener, TcpStream};
///
/// # futures_lite::future::block_on(async {
/// let server = TcpListener::bind("127.0.0.1:0")?;
/// let mut client = TcpStream::connect(server.local_addr()).await?;
/// let (mut peer, _) = server.accept().await?;
///
/// client.write_all(b"ping").await?;      // sent, no flush needed
/// let mut buf = [0u8; 4];
/// let reply = async {
///     peer.read_exact(&mut buf).await?;
///     peer.write_all(b"pong").await?;
///     peer.flush().await
/// };
/// let mut got = [0u8; 4];
/// let (r1, r2) = futures_lite::future::zip(reply, client.read_exact(&mut got)).await;
/// r1?; r2?;
/// assert_eq!(&got, b"pong");
/// # std::io::Result::Ok(()) }).unwrap();
/// ```
///
/// # Sending
///
/// Written bytes go out by themselves, at the latest when the writing task
/// next waits; no flush is needed (`flush` waits until the kernel has them
/// all). The first write of a burst is sent at once, the rest coalesce.
/// Dropping the last handle of a connection sends what is still queued,
/// then closes; other [`Socket`] handles keep the connection open.
    TcpStream,
    /// The input half of a [`TcpStream`]: cl-async's `async-input-stream`.
    ///
    /// Made by [`TcpStream::split`] or by wrapping a socket with
    /// [`TcpInputStream::new`].
    TcpInputStream,
    /// The output half of a [`TcpStream`]: cl-async's `async-output-stream`.
    ///
    /// Made by [`TcpStream::split`] or by wrapping a socket with
    /// [`TcpOutputStream::new`]. Dropping the half made by `split` shuts down
    /// the write side once its queued bytes are out (the peer sees end of
    /// file), as tokio's write half does; one made by `new` leaves the socket
    /// as it is.
    TcpOutputStream,
}

impl TcpStream {
    /// Connects to `addr`: a socket address, `"host:port"`, or
    /// `(host, port)`. IP literals connect at once; names are resolved off
    /// the executor, and every address found, IPv6 and IPv4, is tried in
    /// turn. Errors say which host failed and why:
    /// [`Event::Dns`](crate::Event::Dns) when the name does not resolve,
    /// [`Event::Refused`](crate::Event::Refused) when nobody listens.
    /// `TCP_NODELAY` is turned on (streamish coalesces small writes itself).
    ///
    /// # Examples
    ///
    /// ```
    /// use streamish::{TcpListener, TcpStream};
    ///
    /// # futures_lite::future::block_on(async {
    /// let server = TcpListener::bind("127.0.0.1:0")?;
    /// let port = server.local_addr().port();
    /// let a = TcpStream::connect(server.local_addr()).await?;
    /// let b = TcpStream::connect(("127.0.0.1", port)).await?;
    /// let c = TcpStream::connect(format!("127.0.0.1:{port}")).await?;
    /// assert_eq!(a.peer_addr()?, c.peer_addr()?);
    /// # drop(b);
    /// # std::io::Result::Ok(()) }).unwrap();
    /// ```
    pub async fn connect<A: ToAddrs>(addr: A) -> io::Result<TcpStream> {
        let io = addr::connect(addr, None).await?;
        io.get_ref().tcp()?.set_nodelay(true)?;
        Ok(TcpStream::new(Socket::from_io(Io::new(io))))
    }

    /// Connects to `addr` from `local`: the socket is bound to `local`
    /// before it connects, as tokio's `Socket::bind` then `connect`.
    /// Port 0 lets the system pick the port; an IP address picks the
    /// interface (and the source address the peer sees). Only the addresses
    /// of `local`'s family are tried. An address in use fails with
    /// [`Event::AddressInUse`](crate::Event::AddressInUse); the rest is as
    /// [`connect`](TcpStream::connect). Unix only (elsewhere it fails with
    /// `Unsupported`).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::net::SocketAddr;
    /// use streamish::{TcpListener, TcpStream};
    ///
    /// # futures_lite::future::block_on(async {
    /// let server = TcpListener::bind("127.0.0.1:0")?;
    /// let local: SocketAddr = "127.0.0.1:0".parse().unwrap();
    /// let client = TcpStream::connect_from(local, server.local_addr()).await?;
    /// let (_peer, seen) = server.accept().await?;
    /// assert_eq!(client.local_addr()?, seen);
    /// # std::io::Result::Ok(()) }).unwrap();
    /// ```
    pub async fn connect_from<A: ToAddrs>(local: impl Into<SocketAddr>, addr: A) -> io::Result<TcpStream> {
        let io = addr::connect(addr, Some(local.into())).await?;
        io.get_ref().tcp()?.set_nodelay(true)?;
        Ok(TcpStream::new(Socket::from_io(Io::new(io))))
    }

    /// Shuts down the read side, the write side or both at once, without
    /// flushing (as `std::net::TcpStream::shutdown`).
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        let conn = &self.socket().conn;
        let io = conn.io().ok_or_else(|| conn.closed_error())?;
        io.get_ref().shutdown(how)?;
        if how != Shutdown::Read {
            conn.mark_write_shut();
        }
        Ok(())
    }

    /// The peer's address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.socket().peer_addr()
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket().local_addr()
    }

    /// Sets `TCP_NODELAY` (on by default).
    pub fn set_nodelay(&self, on: bool) -> io::Result<()> {
        self.socket().set_nodelay(on)
    }
}

/// Puts bytes lent by `fill_buf` back in front of the shared buffer.
pub(crate) fn restore_front(reader: Reader) -> Socket {
    if !reader.front.is_empty() {
        let rest = reader.socket.conn.with_buffered(|b| b.to_vec());
        reader.socket.conn.clear_input();
        let _ = reader.socket.conn.append_input(&reader.front);
        let _ = reader.socket.conn.append_input(&rest);
    }
    reader.socket.clone()
}

impl TryFrom<Async<std::net::TcpStream>> for TcpStream {
    type Error = io::Error;

    /// Takes over a stream already registered with the reactor (see
    /// [`Socket`]'s `TryFrom`).
    fn try_from(io: Async<std::net::TcpStream>) -> io::Result<TcpStream> {
        Ok(TcpStream::new(Socket::try_from(io)?))
    }
}

impl TryFrom<std::net::TcpStream> for TcpStream {
    type Error = io::Error;

    /// Registers a connected std stream with the reactor (it is made
    /// non-blocking).
    fn try_from(s: std::net::TcpStream) -> io::Result<TcpStream> {
        Ok(TcpStream::new(Socket::try_from(s)?))
    }
}

macro_rules! impl_debug {
    ($($ty:ident),*) => {$(
        impl fmt::Debug for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($ty)).field("socket", &AsyncStream::stream_socket(self)).finish()
            }
        }
    )*};
}

pub(crate) use impl_debug;

// ---- the traits, for the types that read ----

macro_rules! impl_input {
    ($ty:ident, push_output: $push:expr) => {
        impl AsyncStream for $ty {
            fn stream_socket(&self) -> Option<&Socket> {
                Some(&self.reader.socket)
            }
            fn is_open(&self) -> bool {
                self.reader.socket.is_open()
            }
            fn poll_close_stream(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                let this = self.get_mut();
                this.reader.front = Bytes::new();
                let res = ready!(this.reader.socket.conn.poll_close(this.reader.id, cx));
                // Closing the stream itself drops what it left unread.
                this.reader.socket.conn.clear_input();
                Poll::Ready(res)
            }
            fn abort(&mut self) {
                self.reader.front = Bytes::new();
                self.reader.socket.conn.abort();
            }
        }

        impl AsyncRead for $ty {
            fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
                let this = self.get_mut();
                if $push {
                    this.reader.socket.conn.push_output(this.reader.id, cx);
                }
                this.reader.poll_read(cx, buf)
            }
        }

        impl AsyncBufRead for $ty {
            fn poll_fill_buf(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<&[u8]>> {
                let this = self.get_mut();
                if $push {
                    this.reader.socket.conn.push_output(this.reader.id, cx);
                }
                this.reader.poll_fill_buf(cx)
            }
            fn consume(self: Pin<&mut Self>, amt: usize) {
                self.get_mut().reader.consume(amt)
            }
        }

        impl AsyncInputStream for $ty {
            fn read_sequence(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                self.reader.read_sequence(buf)
            }
            fn eof_seen(&self) -> bool {
                self.reader.socket.conn.at_eof()
            }
            fn buffered(&self) -> usize {
                self.reader.buffered()
            }
            fn clear_input(&mut self) {
                self.reader.clear()
            }
            fn append_bytes(&mut self, data: &[u8]) -> io::Result<()> {
                self.reader.socket.conn.append_input(data)
            }
            fn take_until(&mut self, delim: u8) -> io::Result<Option<Bytes>> {
                self.reader.take_until(delim)
            }
            fn peek_sequence(&self, buf: &mut [u8]) -> usize {
                self.reader.peek(buf)
            }
        }
    };
}

pub(crate) use impl_input;

// ---- the traits, for the types that write ----

macro_rules! impl_output {
    ($ty:ident, $($sock:ident).+, $($id:ident).+) => {
        impl AsyncWrite for $ty {
            #[inline]
            fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
                self.$($sock).+.conn.poll_write(self.$($id).+, cx, buf)
            }
            fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                self.$($sock).+.conn.poll_flush(self.$($id).+, cx)
            }
            /// Half-close: flushes, then shuts down the write side; reading
            /// goes on. [`AsyncStream::poll_close_stream`] closes entirely.
            fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                self.$($sock).+.conn.poll_shutdown_write(self.$($id).+, cx)
            }
        }

        impl AsyncOutputStream for $ty {
            fn write_sequence(&mut self, buf: &[u8]) -> io::Result<()> {
                self.$($sock).+.conn.write_now(buf)
            }
            fn force_output(&mut self) -> io::Result<()> {
                self.$($sock).+.conn.force_output()
            }
            fn poll_finish_output(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                self.$($sock).+.conn.poll_flush(self.$($id).+, cx)
            }
            fn clear_output(&mut self) {
                self.$($sock).+.conn.clear_output()
            }
            fn queued(&self) -> usize {
                self.$($sock).+.conn.queued()
            }
        }
    };
}

pub(crate) use impl_output;
