//! The TLS workloads (feature `tls`): streamish's `TlsStream` against
//! futures-rustls over async-net, as its documentation shows it
//! (`TlsConnector::connect`, `TlsAcceptor::accept`). Both use the same
//! rustls configs, made once per child by streamish's
//! `tls::client_config`/`tls::server_config` (aws-lc-rs) for a certificate
//! from rcgen, so only the stream layer differs. The handshake is done
//! before the timed part starts.

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use futures_rustls::{TlsAcceptor, TlsConnector};
use streamish::tls::rustls::pki_types::{PrivatePkcs8KeyDer, ServerName};
use streamish::tls::rustls::{ClientConfig, RootCertStore, ServerConfig};
use streamish::tls::{self, TlsListener, TlsStream};

use super::futures_io::Net;

/// The server's and the client's configs for a self-signed certificate
/// for "localhost".
fn configs() -> &'static (Arc<ServerConfig>, Arc<ClientConfig>) {
    static CONFIGS: OnceLock<(Arc<ServerConfig>, Arc<ClientConfig>)> = OnceLock::new();
    CONFIGS.get_or_init(|| {
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).expect("a certificate");
        let der = cert.cert.der().clone();
        let mut roots = RootCertStore::empty();
        roots.add(der.clone()).expect("the certificate as a root");
        let key = PrivatePkcs8KeyDer::from(cert.key_pair.serialize_der()).into();
        let server = tls::server_config(vec![der], key).expect("a server config");
        (server, tls::client_config(roots))
    })
}

/// `streamish` in the TLS workloads: `TlsListener` and `TlsStream`,
/// defaults only.
pub struct StreamishTls;
impl Net for StreamishTls {
    type Listener = TlsListener;
    type Stream = TlsStream;
    async fn bind() -> io::Result<(Self::Listener, SocketAddr)> {
        let l = TlsListener::bind("127.0.0.1:0", configs().0.clone())?;
        let addr = l.local_addr();
        Ok((l, addr))
    }
    async fn accept(l: &Self::Listener) -> io::Result<Self::Stream> {
        Ok(l.accept().await?.0)
    }
    async fn connect(addr: SocketAddr) -> io::Result<Self::Stream> {
        TlsStream::connect_to(addr, "localhost", configs().1.clone()).await
    }
    fn nodelay(_: &Self::Stream) -> io::Result<()> {
        Ok(()) // on by default
    }
}

/// `futures-rustls`: `TlsConnector`/`TlsAcceptor` over async-net's
/// `TcpStream`; both ends as `futures_rustls::TlsStream`, the crate's
/// own either-side stream.
pub struct FuturesRustls;
impl Net for FuturesRustls {
    type Listener = (async_net::TcpListener, TlsAcceptor);
    type Stream = futures_rustls::TlsStream<async_net::TcpStream>;
    async fn bind() -> io::Result<(Self::Listener, SocketAddr)> {
        let l = async_net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = l.local_addr()?;
        Ok(((l, TlsAcceptor::from(configs().0.clone())), addr))
    }
    async fn accept((l, acceptor): &Self::Listener) -> io::Result<Self::Stream> {
        let (tcp, _) = l.accept().await?;
        Ok(acceptor.accept(tcp).await?.into())
    }
    async fn connect(addr: SocketAddr) -> io::Result<Self::Stream> {
        let tcp = async_net::TcpStream::connect(addr).await?;
        let name = ServerName::try_from("localhost").map_err(io::Error::other)?;
        let connector = TlsConnector::from(configs().1.clone());
        Ok(connector.connect(name, tcp).await?.into())
    }
    fn nodelay(s: &Self::Stream) -> io::Result<()> {
        s.get_ref().0.set_nodelay(true)
    }
}
