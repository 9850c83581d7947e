//! `smol`: `smol::net` (async-net).

use std::io;
use std::net::SocketAddr;

use super::futures_io::Net;

pub struct Smol;
impl Net for Smol {
    type Listener = smol::net::TcpListener;
    type Stream = smol::net::TcpStream;
    async fn bind() -> io::Result<(Self::Listener, SocketAddr)> {
        let l = smol::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = l.local_addr()?;
        Ok((l, addr))
    }
    async fn accept(l: &Self::Listener) -> io::Result<Self::Stream> {
        Ok(l.accept().await?.0)
    }
    async fn connect(addr: SocketAddr) -> io::Result<Self::Stream> {
        smol::net::TcpStream::connect(addr).await
    }
    fn nodelay(s: &Self::Stream) -> io::Result<()> {
        s.set_nodelay(true)
    }
}
