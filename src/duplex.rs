//! In-memory streams: [`duplex`] makes two connected [`DuplexStream`]s, so
//! code written against the stream traits runs without sockets.
//!
//! The pair shares two pipes, one per direction, under one lock. A pipe
//! holds what one end wrote and the other has not read yet: there is no
//! kernel in between, so a write hands its bytes to the peer's input at
//! once and nothing is ever queued on the writing end. The capacity given
//! to [`duplex`] is each pipe's high-water mark: `AsyncWrite` waits above
//! it until the peer reads, while `write_sequence`, which never waits, lets
//! the pipe grow (up to [`DEFAULT_MAX_QUEUED`]), as a TCP stream's output
//! queue does. Closing, aborting and dropping an end reach the peer as
//! their TCP counterparts do: end of file, a reset, end of file.

use std::fmt;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};

use bytes::{Buf, Bytes, BytesMut};
use futures_lite::io::{AsyncBufRead, AsyncRead, AsyncWrite};

use crate::{AsyncInputStream, AsyncOutputStream, AsyncStream, DEFAULT_MAX_QUEUED, Event};

/// Makes two connected in-memory streams: what one writes, the other
/// reads. `capacity` is how many unread bytes each direction holds before
/// `AsyncWrite` waits for the reader; a capacity of 0 is taken as 1, since
/// a pipe that holds nothing could never move a byte.
///
/// Both ends behave as a [`TcpStream`](crate::TcpStream) does, with the
/// peer's kernel replaced by a buffer: reads and `write_sequence` never
/// wait, `AsyncWrite::close` half-closes, dropping an end closes it
/// gracefully (the peer reads what was written, then end of file), and
/// [`abort`](AsyncStream::abort) resets the peer.
///
/// # Examples
///
/// ```
/// use futures_lite::{AsyncReadExt, AsyncWriteExt};
/// use streamish::{AsyncInputStream, AsyncOutputStream};
///
/// # futures_lite::future::block_on(async {
/// let (mut client, mut server) = streamish::duplex(64);
///
/// client.write_all(b"ping").await?;
/// let mut buf = [0u8; 4];
/// server.read_exact(&mut buf).await?;
/// assert_eq!(&buf, b"ping");
///
/// server.write_sequence(b"pong")?; // never waits
/// client.read_exact(&mut buf).await?;
/// assert_eq!(&buf, b"pong");
///
/// assert_eq!(server.read_sequence(&mut buf)?, 0); // nothing yet...
/// assert!(!server.at_eof());                      // ...and that is not EOF
/// drop(client);
/// assert!(server.at_eof());
/// # std::io::Result::Ok(()) }).unwrap();
/// ```
pub fn duplex(capacity: usize) -> (DuplexStream, DuplexStream) {
    let shared = Arc::new(Shared {
        capacity: capacity.max(1),
        pipes: Mutex::new([Pipe::default(), Pipe::default()]),
    });
    (DuplexStream::new(shared.clone(), 0), DuplexStream::new(shared, 1))
}

/// What the two ends of a pair share.
struct Shared {
    /// Each pipe's high-water mark for `AsyncWrite`, at least 1.
    capacity: usize,
    /// End `i` writes into `pipes[i]` and reads from the other one.
    pipes: Mutex<[Pipe; 2]>,
}

/// One direction: the bytes written and not yet read, and how each end
/// left it.
#[derive(Default)]
struct Pipe {
    buf: BytesMut,
    /// The writer half-closed, closed or went: end of file after `buf`.
    shut: bool,
    /// The writer aborted: the reader's next read fails with a reset.
    reset: bool,
    /// The reader closed, aborted or went: writes fail.
    reader_gone: bool,
    /// A write that never waits would have passed the bound on unread
    /// bytes: the writer fails from then on, as a TCP stream does.
    full: bool,
    /// The task waiting in `poll_read`/`poll_fill_buf` for bytes or EOF.
    reader: Option<Waker>,
    /// The task waiting in `poll_write` for room.
    writer: Option<Waker>,
}

/// Locks the pipes. Nothing panics while they are locked (no foreign code
/// runs under the lock: wakers are woken after it is released), so a
/// poisoned lock still holds consistent state.
fn lock(shared: &Shared) -> MutexGuard<'_, [Pipe; 2]> {
    shared.pipes.lock().unwrap_or_else(PoisonError::into_inner)
}

/// End `side`'s pipes: `(input, output)`.
fn ends(pipes: &mut [Pipe; 2], side: usize) -> (&mut Pipe, &mut Pipe) {
    let [a, b] = pipes;
    match side {
        0 => (b, a),
        _ => (a, b),
    }
}

/// Stores the task's waker unless the slot already wakes it.
fn store(slot: &mut Option<Waker>, cx: &Context<'_>) {
    match slot {
        Some(w) if w.will_wake(cx.waker()) => {}
        _ => *slot = Some(cx.waker().clone()),
    }
}

fn wake(waker: Option<Waker>) {
    if let Some(w) = waker {
        w.wake();
    }
}

fn reset() -> io::Error {
    Event::Reset {
        socket: None,
        error: io::Error::new(io::ErrorKind::ConnectionReset, "the peer aborted the stream"),
    }
    .into()
}

fn broken_pipe() -> io::Error {
    Event::BrokenPipe {
        socket: None,
        error: io::Error::new(io::ErrorKind::BrokenPipe, "the peer closed the stream"),
    }
    .into()
}

fn queue_full() -> io::Error {
    Event::QueueFull { socket: None }.into()
}

/// One end of an in-memory pair made by [`duplex`]: cl-async's
/// `async-io-stream` with no socket under it.
///
/// It implements [`AsyncInputStream`], [`AsyncOutputStream`] (hence
/// [`AsyncIoStream`](crate::AsyncIoStream)) and futures-io's `AsyncRead`,
/// `AsyncBufRead` and `AsyncWrite`, with the semantics of a
/// [`TcpStream`](crate::TcpStream) whose kernel hands every written byte to
/// the peer at once:
///
/// - **Reads never wait**, and "nothing yet" (`Ok(0)`) is not end of file:
///   [`at_eof`](AsyncInputStream::at_eof) tells them apart.
/// - **Writes never wait** with `write_sequence`: the bytes go whole into
///   the peer's input, so [`queued`](AsyncOutputStream::queued) is always
///   0, `force_output` and `finish_output` have nothing to do, and
///   [`clear_output`](AsyncOutputStream::clear_output) drops nothing (as
///   on a socket whose kernel already took everything). A write that would
///   leave more than [`DEFAULT_MAX_QUEUED`] bytes unread (or the capacity,
///   if larger) fails with [`Event::QueueFull`], and so does every later
///   write. `AsyncWrite` takes what fits below the capacity and waits for
///   the peer to read when there is no room.
/// - **`AsyncWrite::close` half-closes**: the peer reads what came before,
///   then end of file, and can still write back.
///   [`close_stream`](crate::AsyncStreamExt::close_stream) and dropping
///   close entirely: the peer sees end of file, unread input is dropped,
///   and this end's later operations fail with [`Event::Closed`].
/// - **[`abort`](AsyncStream::abort)** drops what the peer has not read
///   yet, as a reset does; the peer's next read or write fails with
///   [`Event::Reset`] (`ConnectionReset`).
/// - **Writing to a peer that closed** fails with [`Event::BrokenPipe`]
///   at once (a socket may take one more write before it knows).
///
/// # Examples
///
/// Generic code over the traits, tested without a socket:
///
/// ```
/// use streamish::prelude::*;
///
/// /// Echoes every line back, upper-cased, until end of file.
/// async fn shout(stream: &mut dyn AsyncIoStream) -> std::io::Result<()> {
///     let mut line = String::new();
///     while stream.read_line(&mut line).await? > 0 {
///         stream.write_sequence(line.to_uppercase().as_bytes())?;
///         line.clear();
///     }
///     Ok(())
/// }
///
/// # futures_lite::future::block_on(async {
/// let (mut client, mut server) = streamish::duplex(1024);
/// client.write_sequence(b"hello\nworld\n")?;
/// client.close().await?; // half-close: the server sees EOF after the lines
/// shout(&mut server).await?;
/// drop(server); // the client sees EOF after the replies
/// let mut reply = String::new();
/// client.read_to_string(&mut reply).await?;
/// assert_eq!(reply, "HELLO\nWORLD\n");
/// # std::io::Result::Ok(()) }).unwrap();
/// ```
pub struct DuplexStream {
    shared: Arc<Shared>,
    /// Which end this is: it writes into `pipes[side]`.
    side: usize,
    /// The bytes `poll_fill_buf` took out of the input pipe and lent to the
    /// caller; they precede everything still in the pipe.
    front: Bytes,
    /// Closed or aborted: every operation fails with `Closed`.
    closed: bool,
}

impl DuplexStream {
    fn new(shared: Arc<Shared>, side: usize) -> DuplexStream {
        DuplexStream {
            shared,
            side,
            front: Bytes::new(),
            closed: false,
        }
    }

    /// Why this end cannot write now, if it cannot.
    fn check_writable(&self, input: &Pipe, output: &Pipe) -> io::Result<()> {
        if self.closed || output.shut {
            return Err(Event::closed());
        }
        if output.full {
            return Err(queue_full());
        }
        if input.reset {
            return Err(reset());
        }
        if output.reader_gone {
            return Err(broken_pipe());
        }
        Ok(())
    }

    /// Closes this end: the peer sees end of file (or a reset), and the
    /// waiting peer tasks are woken to find out. Returns whether a write
    /// had failed for passing the bound, for `poll_close_stream` to report.
    fn close(&mut self, abort: bool) -> bool {
        if self.closed {
            return false;
        }
        self.closed = true;
        self.front = Bytes::new();
        let (full, peer_reader, peer_writer) = {
            let mut pipes = lock(&self.shared);
            let (input, output) = ends(&mut pipes, self.side);
            output.shut = true;
            if abort {
                output.reset = true;
                output.buf = BytesMut::new();
            }
            input.reader_gone = true;
            input.buf = BytesMut::new();
            (output.full, output.reader.take(), input.writer.take())
        };
        wake(peer_reader);
        wake(peer_writer);
        full
    }

    /// What a flush reports: `Closed` on a closed end, the bound's failure
    /// once a write passed it, else success (there is nothing to send).
    fn flushed(&self) -> io::Result<()> {
        if self.closed {
            return Err(Event::closed());
        }
        let mut pipes = lock(&self.shared);
        let (_, output) = ends(&mut pipes, self.side);
        match output.full {
            true => Err(queue_full()),
            false => Ok(()),
        }
    }

    /// The peer aborted: whatever this end still holds of its bytes goes
    /// too, as the input a reset discards.
    fn take_reset(&mut self) -> io::Error {
        self.front = Bytes::new();
        reset()
    }
}

impl Drop for DuplexStream {
    /// A graceful close: the peer reads what was written, then end of file.
    fn drop(&mut self) {
        self.close(false);
    }
}

impl fmt::Debug for DuplexStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DuplexStream")
            .field("open", &!self.closed)
            .field("capacity", &self.shared.capacity)
            .field("buffered", &self.buffered())
            .finish()
    }
}

impl AsyncStream for DuplexStream {
    fn is_open(&self) -> bool {
        !self.closed
    }

    /// Closes entirely, at once (nothing is queued to wait for): the peer
    /// sees end of file after what was written, unread input is dropped,
    /// and later operations fail with [`Event::Closed`]. Harmless to
    /// repeat.
    fn poll_close_stream(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut().close(false) {
            true => Poll::Ready(Err(queue_full())),
            false => Poll::Ready(Ok(())),
        }
    }

    /// Closes at once, dropping this end's input and what the peer has not
    /// read yet; the peer's next read or write fails with
    /// [`Event::Reset`].
    fn abort(&mut self) {
        self.close(true);
    }
}

impl AsyncRead for DuplexStream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.closed {
            return Poll::Ready(Err(Event::closed()));
        }
        let mut pipes = lock(&this.shared);
        let (input, _) = ends(&mut pipes, this.side);
        if input.reset {
            drop(pipes);
            return Poll::Ready(Err(this.take_reset()));
        }
        if !this.front.is_empty() {
            let n = buf.len().min(this.front.len());
            buf[..n].copy_from_slice(&this.front[..n]);
            this.front.advance(n);
            return Poll::Ready(Ok(n));
        }
        if !input.buf.is_empty() {
            let n = buf.len().min(input.buf.len());
            buf[..n].copy_from_slice(&input.buf[..n]);
            input.buf.advance(n);
            let writer = input.writer.take();
            drop(pipes);
            wake(writer);
            return Poll::Ready(Ok(n));
        }
        if buf.is_empty() || input.shut {
            return Poll::Ready(Ok(0));
        }
        store(&mut input.reader, cx);
        Poll::Pending
    }
}

impl AsyncBufRead for DuplexStream {
    fn poll_fill_buf(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<&[u8]>> {
        let this = self.get_mut();
        if this.closed {
            return Poll::Ready(Err(Event::closed()));
        }
        let mut pipes = lock(&this.shared);
        let (input, _) = ends(&mut pipes, this.side);
        if input.reset {
            drop(pipes);
            return Poll::Ready(Err(this.take_reset()));
        }
        if this.front.is_empty() {
            if !input.buf.is_empty() {
                // Lent out whole, without a copy; the writer has room again.
                this.front = input.buf.split().freeze();
                let writer = input.writer.take();
                drop(pipes);
                wake(writer);
            } else if !input.shut {
                store(&mut input.reader, cx);
                return Poll::Pending;
            }
        }
        Poll::Ready(Ok(&this.front))
    }

    fn consume(self: Pin<&mut Self>, amt: usize) {
        let this = self.get_mut();
        this.front.advance(amt.min(this.front.len()));
    }
}

impl AsyncInputStream for DuplexStream {
    fn read_sequence(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.closed {
            return Err(Event::closed());
        }
        let mut pipes = lock(&self.shared);
        let (input, _) = ends(&mut pipes, self.side);
        if input.reset {
            drop(pipes);
            return Err(self.take_reset());
        }
        let n = buf.len().min(self.front.len());
        buf[..n].copy_from_slice(&self.front[..n]);
        self.front.advance(n);
        let k = (buf.len() - n).min(input.buf.len());
        if k == 0 {
            return Ok(n);
        }
        buf[n..n + k].copy_from_slice(&input.buf[..k]);
        input.buf.advance(k);
        let writer = input.writer.take();
        drop(pipes);
        wake(writer);
        Ok(n + k)
    }

    /// Whether the peer half-closed, closed or went (bytes may still be
    /// buffered before its end of file); not after a reset.
    fn eof_seen(&self) -> bool {
        let mut pipes = lock(&self.shared);
        let (input, _) = ends(&mut pipes, self.side);
        input.shut && !input.reset
    }

    fn buffered(&self) -> usize {
        let mut pipes = lock(&self.shared);
        let (input, _) = ends(&mut pipes, self.side);
        match self.closed || input.reset {
            true => 0,
            false => self.front.len() + input.buf.len(),
        }
    }

    fn clear_input(&mut self) {
        self.front = Bytes::new();
        let writer = {
            let mut pipes = lock(&self.shared);
            let (input, _) = ends(&mut pipes, self.side);
            input.buf = BytesMut::new();
            input.writer.take()
        };
        wake(writer);
    }

    /// Appends to this end's input, after what the peer wrote so far.
    fn append_bytes(&mut self, data: &[u8]) -> io::Result<()> {
        if self.closed {
            return Err(Event::closed());
        }
        let mut pipes = lock(&self.shared);
        let (input, _) = ends(&mut pipes, self.side);
        input.buf.extend_from_slice(data);
        Ok(())
    }

    fn take_until(&mut self, delim: u8) -> io::Result<Option<Bytes>> {
        if self.closed {
            return Err(Event::closed());
        }
        let mut pipes = lock(&self.shared);
        let (input, _) = ends(&mut pipes, self.side);
        if input.reset {
            drop(pipes);
            return Err(self.take_reset());
        }
        if let Some(i) = self.front.iter().position(|&b| b == delim) {
            return Ok(Some(self.front.split_to(i + 1)));
        }
        let Some(i) = input.buf.iter().position(|&b| b == delim) else {
            return Ok(None);
        };
        let tail = input.buf.split_to(i + 1);
        let writer = input.writer.take();
        drop(pipes);
        wake(writer);
        if self.front.is_empty() {
            return Ok(Some(tail.freeze()));
        }
        let mut record = BytesMut::with_capacity(self.front.len() + tail.len());
        record.extend_from_slice(&std::mem::take(&mut self.front));
        record.extend_from_slice(&tail);
        Ok(Some(record.freeze()))
    }

    fn peek_sequence(&self, buf: &mut [u8]) -> usize {
        let mut pipes = lock(&self.shared);
        let (input, _) = ends(&mut pipes, self.side);
        if self.closed || input.reset {
            return 0;
        }
        let n = buf.len().min(self.front.len());
        buf[..n].copy_from_slice(&self.front[..n]);
        let k = (buf.len() - n).min(input.buf.len());
        buf[n..n + k].copy_from_slice(&input.buf[..k]);
        n + k
    }
}

impl AsyncWrite for DuplexStream {
    /// Takes what fits below the capacity; with no room, waits until the
    /// peer reads.
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let mut pipes = lock(&this.shared);
        let (input, output) = ends(&mut pipes, this.side);
        this.check_writable(input, output)?;
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let room = this.shared.capacity.saturating_sub(output.buf.len());
        if room == 0 {
            store(&mut output.writer, cx);
            return Poll::Pending;
        }
        let n = buf.len().min(room);
        output.buf.extend_from_slice(&buf[..n]);
        let reader = output.reader.take();
        drop(pipes);
        wake(reader);
        Poll::Ready(Ok(n))
    }

    /// Ready at once: written bytes are already the peer's.
    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(self.get_mut().flushed())
    }

    /// Half-close: the peer reads what was written, then end of file;
    /// reading goes on. [`AsyncStream::poll_close_stream`] closes entirely.
    fn poll_close(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.flushed()?;
        let reader = {
            let mut pipes = lock(&this.shared);
            let (_, output) = ends(&mut pipes, this.side);
            output.shut = true;
            output.reader.take()
        };
        wake(reader);
        Poll::Ready(Ok(()))
    }
}

impl AsyncOutputStream for DuplexStream {
    /// Hands all of `buf` to the peer's input, beyond the capacity if need
    /// be; never waits.
    fn write_sequence(&mut self, buf: &[u8]) -> io::Result<()> {
        let reader = {
            let mut pipes = lock(&self.shared);
            let (input, output) = ends(&mut pipes, self.side);
            self.check_writable(input, output)?;
            if buf.is_empty() {
                return Ok(());
            }
            let bound = DEFAULT_MAX_QUEUED.max(self.shared.capacity);
            if output.buf.len().saturating_add(buf.len()) > bound {
                output.full = true;
                return Err(queue_full());
            }
            output.buf.extend_from_slice(buf);
            output.reader.take()
        };
        wake(reader);
        Ok(())
    }

    /// Nothing to do: written bytes are already the peer's. Fails only
    /// once a write passed the bound.
    fn force_output(&mut self) -> io::Result<()> {
        match self.closed {
            true => Ok(()),
            false => self.flushed(),
        }
    }

    /// Ready at once: written bytes are already the peer's.
    fn poll_finish_output(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(self.get_mut().flushed())
    }

    /// Drops nothing: written bytes are already in the peer's input, as a
    /// socket's are once the kernel took them.
    fn clear_output(&mut self) {}

    /// Always 0: written bytes are already in the peer's input.
    fn queued(&self) -> usize {
        0
    }
}
