//! Everything a program using streamish calls methods through, in one
//! import: the four stream traits, their extension traits, and
//! futures-lite's extension traits for `AsyncRead`, `AsyncBufRead`,
//! `AsyncWrite` and `Stream` (`read_exact`, `read_line`, `write_all`,
//! `flush`, `next`, ...).
//!
//! # Examples
//!
//! ```
//! use streamish::prelude::*;
//! use streamish::{TcpListener, TcpStream};
//!
//! # futures_lite::future::block_on(async {
//! let server = TcpListener::bind("127.0.0.1:0")?;
//! let mut client = TcpStream::connect(server.local_addr()).await?;
//! let mut peer = server.incoming().next().await.unwrap()?; // StreamExt
//! client.write_all(b"hello\n").await?;                     // AsyncWriteExt
//! client.finish_output().await?;                           // AsyncOutputStreamExt
//! let mut line = String::new();
//! peer.read_line(&mut line).await?;                        // AsyncBufReadExt
//! assert_eq!(line, "hello\n");
//! client.close_stream().await?;                            // AsyncStreamExt
//! # std::io::Result::Ok(()) }).unwrap();
//! ```

pub use crate::{
    AsyncInputStream, AsyncInputStreamExt, AsyncIoStream, AsyncOutputStream, AsyncOutputStreamExt, AsyncStream,
    AsyncStreamExt,
};
pub use futures_lite::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, StreamExt};
