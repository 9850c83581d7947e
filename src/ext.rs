//! Extension traits: the named futures for the trait methods that wait, and
//! conveniences built on the traits (cl-async's `:start`/`:end` bounds).
//!
//! Each is implemented for every type of its trait, `dyn` ones included, in
//! the way futures-lite's `AsyncReadExt` is.

use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use crate::{AsyncInputStream, AsyncOutputStream, AsyncStream};

fn bounds(len: usize, start: usize, end: Option<usize>) -> io::Result<(usize, usize)> {
    let end = end.unwrap_or(len);
    if start > end || end > len {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("bounds :start {start} :end {end} do not fit a sequence of length {len}"),
        ));
    }
    Ok((start, end))
}

/// Futures for [`AsyncStream`].
pub trait AsyncStreamExt: AsyncStream {
    /// Closes the stream gracefully and waits until it is closed: queued
    /// output goes out, the write side is shut down, the socket released.
    ///
    /// # Examples
    ///
    /// ```
    /// use futures_lite::AsyncReadExt;
    /// use streamish::{AsyncOutputStream, AsyncStreamExt, TcpListener, TcpStream};
    ///
    /// # futures_lite::future::block_on(async {
    /// let server = TcpListener::bind("127.0.0.1:0")?;
    /// let mut client = TcpStream::connect(server.local_addr()).await?;
    /// let (mut peer, _) = server.accept().await?;
    /// client.write_sequence(b"bye")?;
    /// client.close_stream().await?; // "bye" goes out first
    /// let mut got = Vec::new();
    /// peer.read_to_end(&mut got).await?;
    /// assert_eq!(got, b"bye");
    /// # std::io::Result::Ok(()) }).unwrap();
    /// ```
    fn close_stream(&mut self) -> CloseStream<'_, Self> {
        CloseStream { stream: self }
    }
}

impl<T: AsyncStream + ?Sized> AsyncStreamExt for T {}

/// Conveniences for [`AsyncInputStream`].
pub trait AsyncInputStreamExt: AsyncInputStream {
    /// cl-async's `read-sequence` with `:start` and `:end`: fills
    /// `buf[start..end]` (`end` defaults to the length) with what is
    /// available now and returns the index after the last byte written.
    /// Bounds that do not fit fail with `InvalidInput`.
    ///
    /// # Examples
    ///
    /// ```
    /// use streamish::{AsyncInputStream, AsyncInputStreamExt, TcpListener, TcpStream};
    ///
    /// # futures_lite::future::block_on(async {
    /// let server = TcpListener::bind("127.0.0.1:0")?;
    /// let mut stream = TcpStream::connect(server.local_addr()).await?;
    /// stream.append_bytes(b"xyz")?;
    /// let mut buf = *b"ab....";
    /// assert_eq!(stream.read_subsequence(&mut buf, 2, None)?, 5);
    /// assert_eq!(&buf, b"abxyz.");
    /// assert!(stream.read_subsequence(&mut buf, 4, Some(2)).is_err());
    /// # std::io::Result::Ok(()) }).unwrap();
    /// ```
    fn read_subsequence(&mut self, buf: &mut [u8], start: usize, end: Option<usize>) -> io::Result<usize> {
        let (start, end) = bounds(buf.len(), start, end)?;
        Ok(start + self.read_sequence(&mut buf[start..end])?)
    }
}

impl<T: AsyncInputStream + ?Sized> AsyncInputStreamExt for T {}

/// Futures and conveniences for [`AsyncOutputStream`].
pub trait AsyncOutputStreamExt: AsyncOutputStream {
    /// Waits until every queued byte has been handed to the kernel
    /// (cl-async's `finish-output`).
    ///
    /// # Examples
    ///
    /// ```
    /// use streamish::{AsyncOutputStream, AsyncOutputStreamExt, TcpListener, TcpStream};
    ///
    /// # futures_lite::future::block_on(async {
    /// let server = TcpListener::bind("127.0.0.1:0")?;
    /// let mut stream = TcpStream::connect(server.local_addr()).await?;
    /// stream.write_sequence(b"data")?;
    /// stream.finish_output().await?;
    /// assert_eq!(stream.queued(), 0);
    /// # std::io::Result::Ok(()) }).unwrap();
    /// ```
    fn finish_output(&mut self) -> FinishOutput<'_, Self> {
        FinishOutput { stream: self }
    }

    /// cl-async's `write-sequence` with `:start` and `:end`: queues
    /// `buf[start..end]` (`end` defaults to the length). Bounds that do not
    /// fit fail with `InvalidInput` and queue nothing.
    ///
    /// # Examples
    ///
    /// ```
    /// use streamish::{AsyncOutputStream, AsyncOutputStreamExt, TcpListener, TcpStream};
    ///
    /// # futures_lite::future::block_on(async {
    /// let server = TcpListener::bind("127.0.0.1:0")?;
    /// let mut stream = TcpStream::connect(server.local_addr()).await?;
    /// stream.write_subsequence(b"abcdef", 1, Some(4))?; // "bcd"
    /// assert!(stream.queued() <= 3); // the send behind may have taken some
    /// assert!(stream.write_subsequence(b"abc", 2, Some(9)).is_err());
    /// # std::io::Result::Ok(()) }).unwrap();
    /// ```
    fn write_subsequence(&mut self, buf: &[u8], start: usize, end: Option<usize>) -> io::Result<()> {
        let (start, end) = bounds(buf.len(), start, end)?;
        self.write_sequence(&buf[start..end])
    }
}

impl<T: AsyncOutputStream + ?Sized> AsyncOutputStreamExt for T {}

/// Future for [`AsyncStreamExt::close_stream`].
#[must_use = "futures do nothing unless you `.await` or poll them"]
pub struct CloseStream<'a, S: ?Sized> {
    stream: &'a mut S,
}

impl<S: ?Sized> Unpin for CloseStream<'_, S> {}

impl<S: AsyncStream + ?Sized> Future for CloseStream<'_, S> {
    type Output = io::Result<()>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut *self.stream).poll_close_stream(cx)
    }
}

impl<S: ?Sized> fmt::Debug for CloseStream<'_, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CloseStream").finish()
    }
}

/// Future for [`AsyncOutputStreamExt::finish_output`].
#[must_use = "futures do nothing unless you `.await` or poll them"]
pub struct FinishOutput<'a, S: ?Sized> {
    stream: &'a mut S,
}

impl<S: ?Sized> Unpin for FinishOutput<'_, S> {}

impl<S: AsyncOutputStream + ?Sized> Future for FinishOutput<'_, S> {
    type Output = io::Result<()>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut *self.stream).poll_finish_output(cx)
    }
}

impl<S: ?Sized> fmt::Debug for FinishOutput<'_, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FinishOutput").finish()
    }
}
