//! `async-io`: raw `Async<std::net::TcpStream>` with futures-lite;
//! `async-io-buf` wraps the writer in futures-lite's `BufWriter` where a
//! user would (bulk-1k and small-writes).

use std::io;
use std::net::SocketAddr;

use async_io::Async;

use super::futures_io::Net;

pub struct AsyncIo;
impl Net for AsyncIo {
    type Listener = Async<std::net::TcpListener>;
    type Stream = Async<std::net::TcpStream>;
    async fn bind() -> io::Result<(Self::Listener, SocketAddr)> {
        let l = Async::<std::net::TcpListener>::bind(([127, 0, 0, 1], 0))?;
        let addr = l.get_ref().local_addr()?;
        Ok((l, addr))
    }
    async fn accept(l: &Self::Listener) -> io::Result<Self::Stream> {
        Ok(l.accept().await?.0)
    }
    async fn connect(addr: SocketAddr) -> io::Result<Self::Stream> {
        Async::<std::net::TcpStream>::connect(addr).await
    }
    fn nodelay(s: &Self::Stream) -> io::Result<()> {
        s.get_ref().set_nodelay(true)
    }
}
