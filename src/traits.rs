//! The four stream traits, mirroring cl-async's stream classes.
//!
//! Every method that might wait is a `poll_*` method here, with a named
//! future in [`crate::ext`]; every other method returns at once.
//!
//! Nothing here names a transport: TCP, Unix-domain and TLS streams, the
//! in-memory [`duplex`](crate::duplex) pair and any type of yours implement
//! the same four traits. They are object-safe and `Unpin` is a supertrait,
//! so `&mut dyn AsyncIoStream` and `Box<dyn AsyncIoStream + Send>` reach
//! every helper (`write_all`, `finish_output`, `close_stream`) with no
//! further bound.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_lite::io::{AsyncBufRead, AsyncWrite};

use crate::Socket;

/// cl-async's `async-stream`: a stream over a socket, open until closed.
///
/// # Examples
///
/// ```
/// use streamish::{AsyncStream, AsyncStreamExt, TcpListener, TcpStream};
///
/// # futures_lite::future::block_on(async {
/// let server = TcpListener::bind("127.0.0.1:0")?;
/// let mut stream = TcpStream::connect(server.local_addr()).await?;
/// assert!(stream.is_open());
/// stream.close_stream().await?;
/// assert!(!stream.is_open());
/// stream.close_stream().await?; // closing twice is harmless
/// # std::io::Result::Ok(()) }).unwrap();
/// ```
pub trait AsyncStream: Unpin {
    /// The streamish [`Socket`] under this stream (cl-async's
    /// `stream-socket`), for its callbacks' settings, data and timeouts;
    /// `None` for a stream that has none (an in-memory one, or yours).
    fn stream_socket(&self) -> Option<&Socket> {
        None
    }

    /// Whether the stream is still open: not closed, not aborted.
    fn is_open(&self) -> bool;

    /// Closes gracefully (cl-async's `close`): refuses new writes, sends
    /// everything queued, shuts down the write side, then releases the
    /// socket. Harmless to call again once closed.
    ///
    /// This is the poll form of [`AsyncStreamExt::close_stream`](crate::AsyncStreamExt::close_stream).
    fn poll_close_stream(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>>;

    /// Closes at once, dropping both buffers (cl-async's `close :abort t`).
    /// The peer sees a reset if the connection was up.
    fn abort(&mut self);
}

/// cl-async's `async-input-stream`: reads that never wait, over an input
/// buffer, plus futures-io's `AsyncBufRead` for code that wants to await.
///
/// `read_sequence` and `read_byte` return what is available *now*: the
/// buffered bytes, then whatever the kernel already holds. When there is
/// nothing they return at once (`0`, `None`), which is not end of file:
/// [`at_eof`](AsyncInputStream::at_eof) tells the two apart.
///
/// # Examples
///
/// ```
/// use streamish::{AsyncInputStream, TcpListener, TcpStream};
///
/// # futures_lite::future::block_on(async {
/// let server = TcpListener::bind("127.0.0.1:0")?;
/// let mut stream = TcpStream::connect(server.local_addr()).await?;
/// let mut buf = [0u8; 16];
/// // Nothing has been sent: the read returns at once, and it is not EOF.
/// assert_eq!(stream.read_sequence(&mut buf)?, 0);
/// assert_eq!(stream.read_byte()?, None);
/// assert!(!stream.at_eof());
/// # std::io::Result::Ok(()) }).unwrap();
/// ```
pub trait AsyncInputStream: AsyncStream + AsyncBufRead {
    /// Fills `buf` with what is available now and returns how many bytes it
    /// wrote; never waits. `Ok(0)` means nothing is available (see
    /// [`at_eof`](AsyncInputStream::at_eof)). Fails with
    /// [`Event::Closed`](crate::Event::Closed) once the stream is closed.
    fn read_sequence(&mut self, buf: &mut [u8]) -> io::Result<usize>;

    /// Reads one byte if one is available now; never waits. `Ok(None)` means
    /// nothing yet; at end of file it fails with
    /// [`Event::Eof`](crate::Event::Eof) (kind `UnexpectedEof`), as
    /// cl-async's `read-byte` signals `end-of-file`.
    fn read_byte(&mut self) -> io::Result<Option<u8>> {
        let mut b = [0u8; 1];
        match self.read_sequence(&mut b)? {
            1 => Ok(Some(b[0])),
            _ if self.at_eof() => Err(crate::Event::Eof {
                socket: self.stream_socket().cloned(),
            }
            .into()),
            _ => Ok(None),
        }
    }

    /// Whether the peer's end of file has been seen (bytes may still be
    /// buffered before it).
    fn eof_seen(&self) -> bool;

    /// How many bytes are buffered and readable without the kernel.
    fn buffered(&self) -> usize;

    /// Whether the stream is at end of file: EOF was seen and every byte
    /// before it has been read.
    fn at_eof(&self) -> bool {
        self.eof_seen() && self.buffered() == 0
    }

    /// Drops every buffered input byte (cl-async's `clear-input`).
    fn clear_input(&mut self);

    /// Appends bytes to the input buffer, to be read after what is already
    /// there (cl-async's `stream-append-bytes`).
    fn append_bytes(&mut self, data: &[u8]) -> io::Result<()>;

    /// Takes the buffered bytes up to and including the first `delim`, if
    /// one is buffered; `Ok(None)` otherwise, leaving a partial record
    /// buffered. Never waits and never reads from the kernel: it looks at
    /// what the callback driver (or an awaited `fill_buf`) buffered. Fails
    /// with the stream's error once it is closed and nothing is left.
    ///
    /// # Examples
    ///
    /// ```
    /// use streamish::{AsyncInputStream, TcpListener, TcpStream};
    ///
    /// # futures_lite::future::block_on(async {
    /// let server = TcpListener::bind("127.0.0.1:0")?;
    /// let mut stream = TcpStream::connect(server.local_addr()).await?;
    /// stream.append_bytes(b"key=value;rest")?;
    /// assert_eq!(stream.take_until(b';')?.as_deref(), Some(&b"key=value;"[..]));
    /// assert_eq!(stream.take_until(b';')?, None); // "rest" stays buffered
    /// assert_eq!(stream.buffered(), 4);
    /// # std::io::Result::Ok(()) }).unwrap();
    /// ```
    fn take_until(&mut self, delim: u8) -> io::Result<Option<Bytes>>;

    /// Takes one whole line, its `\n` included, if one is buffered;
    /// `Ok(None)` otherwise, leaving a partial line buffered (see
    /// [`take_until`](AsyncInputStream::take_until)). The non-waiting
    /// counterpart of futures-lite's `read_line`.
    ///
    /// # Examples
    ///
    /// ```
    /// use streamish::{AsyncInputStream, TcpListener, TcpStream};
    ///
    /// # futures_lite::future::block_on(async {
    /// let server = TcpListener::bind("127.0.0.1:0")?;
    /// let mut stream = TcpStream::connect(server.local_addr()).await?;
    /// stream.append_bytes(b"hello\nwor")?;
    /// assert_eq!(stream.take_line()?.as_deref(), Some(&b"hello\n"[..]));
    /// assert_eq!(stream.take_line()?, None); // "wor" waits for its end
    /// stream.append_bytes(b"ld\n")?;
    /// assert_eq!(stream.take_line()?.as_deref(), Some(&b"world\n"[..]));
    /// # std::io::Result::Ok(()) }).unwrap();
    /// ```
    fn take_line(&mut self) -> io::Result<Option<Bytes>> {
        self.take_until(b'\n')
    }

    /// Copies buffered bytes into `buf` without consuming them, and returns
    /// how many; never waits and never reads from the kernel.
    ///
    /// # Examples
    ///
    /// ```
    /// use streamish::{AsyncInputStream, TcpListener, TcpStream};
    ///
    /// # futures_lite::future::block_on(async {
    /// let server = TcpListener::bind("127.0.0.1:0")?;
    /// let mut stream = TcpStream::connect(server.local_addr()).await?;
    /// stream.append_bytes(b"GET /")?;
    /// let mut head = [0u8; 3];
    /// assert_eq!(stream.peek_sequence(&mut head), 3);
    /// assert_eq!(&head, b"GET");
    /// assert_eq!(stream.buffered(), 5); // still there
    /// # std::io::Result::Ok(()) }).unwrap();
    /// ```
    fn peek_sequence(&self, buf: &mut [u8]) -> usize;
}

/// cl-async's `async-output-stream`: writes that never wait, into an output
/// queue, plus futures-io's `AsyncWrite` (with backpressure) for code that
/// wants to await.
///
/// Queued output goes out without an explicit flush whenever the stream is
/// next polled for reading, writing, flushing or closing; `force_output`
/// starts it now and [`finish_output`](crate::AsyncOutputStreamExt::finish_output)
/// waits until the kernel has it all.
///
/// # Examples
///
/// ```
/// use streamish::{AsyncOutputStream, AsyncOutputStreamExt, TcpListener, TcpStream};
///
/// # futures_lite::future::block_on(async {
/// let server = TcpListener::bind("127.0.0.1:0")?;
/// let mut stream = TcpStream::connect(server.local_addr()).await?;
/// stream.write_sequence(b"hello, ")?; // queued, never waits
/// stream.write_byte(b'w')?;
/// assert!(stream.queued() <= 8); // goes out by itself, soon
/// stream.finish_output().await?; // now the kernel has it
/// assert_eq!(stream.queued(), 0);
/// # std::io::Result::Ok(()) }).unwrap();
/// ```
pub trait AsyncOutputStream: AsyncStream + AsyncWrite {
    /// Queues all of `buf`; never waits and never takes only part of it.
    /// Fails with [`Event::Closed`](crate::Event::Closed) once the stream is
    /// closing or closed, and with the connection's error once it failed.
    fn write_sequence(&mut self, buf: &[u8]) -> io::Result<()>;

    /// Queues one byte (cl-async's `write-byte`).
    fn write_byte(&mut self, byte: u8) -> io::Result<()> {
        self.write_sequence(&[byte])
    }

    /// Starts sending queued output now, as far as the kernel takes it
    /// without waiting (cl-async's `force-output`).
    fn force_output(&mut self) -> io::Result<()>;

    /// Sends queued output until the kernel has all of it (cl-async's
    /// `finish-output`); the poll form of
    /// [`AsyncOutputStreamExt::finish_output`](crate::AsyncOutputStreamExt::finish_output).
    fn poll_finish_output(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>>;

    /// Drops queued output that has not reached the kernel (cl-async's
    /// `clear-output`).
    fn clear_output(&mut self);

    /// How many bytes are queued and not yet handed to the kernel.
    fn queued(&self) -> usize;
}

/// cl-async's `async-io-stream`: both directions. Implemented for every type
/// that is both an input and an output stream.
///
/// # Examples
///
/// ```
/// use streamish::{AsyncIoStream, AsyncOutputStreamExt, TcpListener, TcpStream};
///
/// # futures_lite::future::block_on(async {
/// let server = TcpListener::bind("127.0.0.1:0")?;
/// let stream = TcpStream::connect(server.local_addr()).await?;
/// let mut boxed: Box<dyn AsyncIoStream + Send> = Box::new(stream);
/// boxed.write_sequence(b"ping")?;
/// boxed.finish_output().await?; // no `Unpin` bound needed
/// assert_eq!(boxed.queued(), 0);
/// # std::io::Result::Ok(()) }).unwrap();
/// ```
pub trait AsyncIoStream: AsyncInputStream + AsyncOutputStream {}

impl<T: AsyncInputStream + AsyncOutputStream + ?Sized> AsyncIoStream for T {}

macro_rules! deref_stream {
    ($($ptr:ty),*) => {$(
        impl<T: AsyncStream + ?Sized> AsyncStream for $ptr {
            fn stream_socket(&self) -> Option<&Socket> {
                (**self).stream_socket()
            }
            fn is_open(&self) -> bool {
                (**self).is_open()
            }
            fn poll_close_stream(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                Pin::new(&mut **self.get_mut()).poll_close_stream(cx)
            }
            fn abort(&mut self) {
                (**self).abort()
            }
        }

        impl<T: AsyncInputStream + ?Sized> AsyncInputStream for $ptr {
            fn read_sequence(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                (**self).read_sequence(buf)
            }
            fn read_byte(&mut self) -> io::Result<Option<u8>> {
                (**self).read_byte()
            }
            fn eof_seen(&self) -> bool {
                (**self).eof_seen()
            }
            fn buffered(&self) -> usize {
                (**self).buffered()
            }
            fn at_eof(&self) -> bool {
                (**self).at_eof()
            }
            fn clear_input(&mut self) {
                (**self).clear_input()
            }
            fn append_bytes(&mut self, data: &[u8]) -> io::Result<()> {
                (**self).append_bytes(data)
            }
            fn take_until(&mut self, delim: u8) -> io::Result<Option<Bytes>> {
                (**self).take_until(delim)
            }
            fn take_line(&mut self) -> io::Result<Option<Bytes>> {
                (**self).take_line()
            }
            fn peek_sequence(&self, buf: &mut [u8]) -> usize {
                (**self).peek_sequence(buf)
            }
        }

        impl<T: AsyncOutputStream + ?Sized> AsyncOutputStream for $ptr {
            fn write_sequence(&mut self, buf: &[u8]) -> io::Result<()> {
                (**self).write_sequence(buf)
            }
            fn write_byte(&mut self, byte: u8) -> io::Result<()> {
                (**self).write_byte(byte)
            }
            fn force_output(&mut self) -> io::Result<()> {
                (**self).force_output()
            }
            fn poll_finish_output(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                Pin::new(&mut **self.get_mut()).poll_finish_output(cx)
            }
            fn clear_output(&mut self) {
                (**self).clear_output()
            }
            fn queued(&self) -> usize {
                (**self).queued()
            }
        }
    )*};
}

deref_stream!(Box<T>, &mut T);
