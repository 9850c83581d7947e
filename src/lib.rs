//! cl-async's TCP streams for Rust.
#![forbid(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs, missing_debug_implementations, rust_2018_idioms)]

mod addr;
mod buf;
mod callback;
mod conn;
mod event;
mod ext;
mod server;
mod socket;
mod stream;
mod sys;
mod traits;

pub use addr::ToAddrs;
pub use callback::{
    Driver, ReadData, Stats, TcpConnect, TcpServerBuilder, TcpServerHandle, exit_event_loop, spawn, stats, tcp_connect,
    tcp_server, with_event_loop,
};
pub use conn::{DEFAULT_HIGH_WATER, DEFAULT_LOW_WATER};
pub use event::{Clock, Event};
pub use ext::{AsyncInputStreamExt, AsyncOutputStreamExt, AsyncStreamExt, CloseStream, FinishOutput};
pub use server::{DEFAULT_BACKLOG, Incoming, TcpServer};
pub use socket::TcpSocket;
pub use stream::{ReuniteError, TcpInputStream, TcpOutputStream, TcpStream};
pub use traits::{AsyncInputStream, AsyncIoStream, AsyncOutputStream, AsyncStream};
