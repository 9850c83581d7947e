//! `streamish`: `TcpListener`/`TcpStream` with futures-lite's
//! `AsyncReadExt`/`AsyncWriteExt`, defaults only (it sets `TCP_NODELAY`).
//! `streamish-tokio` runs the same code on tokio's runtime (see
//! [`super::futures_io::on_tokio`]).

use std::io;
use std::net::SocketAddr;

use super::futures_io::Net;

pub struct Streamish;
impl Net for Streamish {
    type Listener = streamish::TcpListener;
    type Stream = streamish::TcpStream;
    async fn bind() -> io::Result<(Self::Listener, SocketAddr)> {
        let server = streamish::TcpListener::bind("127.0.0.1:0")?;
        let addr = server.local_addr();
        Ok((server, addr))
    }
    async fn accept(l: &Self::Listener) -> io::Result<Self::Stream> {
        Ok(l.accept().await?.0)
    }
    async fn connect(addr: SocketAddr) -> io::Result<Self::Stream> {
        streamish::TcpStream::connect(addr).await
    }
    fn nodelay(_: &Self::Stream) -> io::Result<()> {
        Ok(()) // on by default
    }
}
