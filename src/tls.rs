//! TLS streams on rustls: cl-async-ssl's `tcp-ssl-connect` and
//! `tcp-ssl-server` (the `tls` feature).
//!
//! A TLS connection is the same engine as a TCP one, over a transport that
//! seals what it writes into records and opens what it reads: the input
//! buffer holds plaintext, the output queue holds plaintext, and the
//! rustls connection in between is driven by whoever moves bytes, under the
//! connection's own locks. So a [`TlsStream`] keeps every promise a
//! [`TcpStream`](crate::TcpStream) makes: reads never wait, writes queue
//! and go out by themselves, a drop delivers, [`buffered`] counts
//! plaintext, and [`clear_output`] drops only plaintext not yet sealed, so
//! it never cuts a record.
//!
//! The handshake is finished before a stream exists ([`TlsStream::connect`],
//! [`TlsListener::accept`]; on the callback face before `connect_cb`), and
//! its failures are [`Event::Tls`] or, when a certificate is refused,
//! [`Event::Certificate`]. Certificates are always verified: against the
//! roots you give ([`client_config`]), the platform's ([`platform_roots`]),
//! or whatever verifier your own rustls `ClientConfig` names. Closing sends
//! `close_notify`; a peer that closes without one is reported as
//! [`Event::Tls`] (a truncated stream), not as end of file.
//!
//! The configs are rustls's, re-exported as [`rustls`] at the version
//! streamish uses (futures-rustls's), so a config built for futures-rustls
//! works here too.
//!
//! [`buffered`]: crate::AsyncInputStream::buffered
//! [`clear_output`]: crate::AsyncOutputStream::clear_output
//!
//! # Examples
//!
//! ```
//! use futures_lite::{AsyncReadExt, AsyncWriteExt};
//! use streamish::tls::{self, TlsListener, TlsStream};
//! # use streamish::tls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
//! # fn certs() -> (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>, streamish::tls::rustls::RootCertStore) {
//! #     let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
//! #     let der = cert.cert.der().clone();
//! #     let mut roots = streamish::tls::rustls::RootCertStore::empty();
//! #     roots.add(der.clone()).unwrap();
//! #     let key = PrivatePkcs8KeyDer::from(cert.key_pair.serialize_der()).into();
//! #     (vec![der], key, roots)
//! # }
//!
//! # futures_lite::future::block_on(async {
//! let (chain, key, roots) = certs(); // a certificate for "localhost"
//! let server = TlsListener::bind("127.0.0.1:0", tls::server_config(chain, key)?)?;
//! let addr = server.local_addr();
//! let accepting = async { server.accept().await };
//! let connecting = TlsStream::connect_to(addr, "localhost", tls::client_config(roots));
//! let (accepted, connected) = futures_lite::future::zip(accepting, connecting).await;
//! let ((mut peer, _), mut client) = (accepted?, connected?);
//!
//! client.write_all(b"hello").await?; // sealed and sent: no flush
//! let mut buf = [0u8; 5];
//! peer.read_exact(&mut buf).await?;
//! assert_eq!(&buf, b"hello");
//! # std::io::Result::Ok(()) }).unwrap();
//! ```

use std::fmt;
use std::io::{self, IoSlice, Read, Write};
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_io::Async;
use bytes::BytesMut;

pub use futures_rustls::rustls;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore, ServerConfig};

use crate::addr;
use crate::stream::stream_types;
use crate::transport::{Io, Sock};
pub use crate::tuning::TLS_HANDSHAKE_TIMEOUT;
use crate::{Event, Socket};

// ---- configs ----

/// The crypto provider streamish builds configs with (aws-lc-rs's).
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// A client config that verifies servers against `roots`, with rustls's
/// safe defaults (TLS 1.2 and 1.3) and no client certificate.
pub fn client_config(roots: RootCertStore) -> Arc<ClientConfig> {
    let config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("aws-lc-rs supports the default protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    Arc::new(config)
}

/// The platform's trusted root certificates (the system's store, read by
/// rustls-native-certs). Fails with `NotFound` when none can be read;
/// certificates it cannot parse are skipped.
pub fn platform_roots() -> io::Result<RootCertStore> {
    let found = rustls_native_certs::load_native_certs();
    let mut roots = RootCertStore::empty();
    let (added, _) = roots.add_parsable_certificates(found.certs);
    if added == 0 {
        let why = found.errors.first().map(|e| e.to_string()).unwrap_or_default();
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("no platform root certificates could be loaded {why}"),
        ));
    }
    Ok(roots)
}

/// A server config presenting `chain` (the server's certificate first)
/// with its private `key`, with rustls's safe defaults and no client
/// certificates asked for. A key that does not fit the certificate fails
/// with `InvalidInput`.
pub fn server_config(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> io::Result<Arc<ServerConfig>> {
    let config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("aws-lc-rs supports the default protocol versions")
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    Ok(Arc::new(config))
}

/// Every certificate in PEM text (`-----BEGIN CERTIFICATE-----` blocks).
/// Fails with `InvalidData` if there is none or one is malformed.
pub fn certs_from_pem(pem: &[u8]) -> io::Result<Vec<CertificateDer<'static>>> {
    use rustls::pki_types::pem::PemObject;
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("bad PEM certificate: {e}")))?;
    if certs.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "no certificate in the PEM text",
        ));
    }
    Ok(certs)
}

/// The first private key in PEM text (PKCS#8, PKCS#1 or SEC1). Fails with
/// `InvalidData` if there is none.
pub fn key_from_pem(pem: &[u8]) -> io::Result<PrivateKeyDer<'static>> {
    use rustls::pki_types::pem::PemObject;
    PrivateKeyDer::from_pem_slice(pem).map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("no usable private key in the PEM text: {e}"),
        )
    })
}

// ---- errors ----

/// A rustls error as the `Event` it is: a refused certificate, or any
/// other failure of the handshake or of a record.
pub(crate) fn tls_error(e: rustls::Error) -> io::Error {
    use rustls::AlertDescription as A;
    let certificate = match &e {
        rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented => true,
        rustls::Error::AlertReceived(a) => matches!(
            a,
            A::BadCertificate
                | A::UnsupportedCertificate
                | A::CertificateRevoked
                | A::CertificateExpired
                | A::CertificateUnknown
                | A::UnknownCA
                | A::CertificateRequired
        ),
        _ => false,
    };
    let error = io::Error::new(io::ErrorKind::InvalidData, e);
    match certificate {
        true => Event::Certificate { socket: None, error }.into(),
        false => Event::Tls { socket: None, error }.into(),
    }
}

/// The peer closed the connection without `close_notify`: what was read
/// may be cut short.
fn truncated() -> io::Error {
    let error = io::Error::new(
        io::ErrorKind::UnexpectedEof,
        "the peer closed the connection without close_notify: the stream may be truncated",
    );
    Event::Tls { socket: None, error }.into()
}

// ---- rustls, as the engine's transport ----

/// The socket, as rustls reads and writes records through it.
struct Wire<'a>(&'a Sock);

impl Read for Wire<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        crate::sys::read_slice(self.0, buf)
    }
}

impl Write for Wire<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        crate::sys::write_vectored(self.0, &[IoSlice::new(buf)])
    }
    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        crate::sys::write_vectored(self.0, bufs)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// rustls's side of a TLS connection, over the connection's socket. Its lock is the
/// innermost: taken under the connection's input or output lock, for one
/// read or write, and never around another.
#[derive(Debug)]
pub(crate) struct TlsConn {
    conn: Mutex<rustls::Connection>,
    /// `close_notify` was queued: rustls seals nothing after it.
    notified: AtomicBool,
    /// The last read found the socket empty (see [`TlsConn::drained`]).
    drained: AtomicBool,
}

impl TlsConn {
    fn lock(&self) -> MutexGuard<'_, rustls::Connection> {
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Reads plaintext into `buf`'s spare capacity (zeroed first: rustls
    /// reads into initialised memory).
    pub(crate) fn read_into(&self, sock: &Sock, buf: &mut BytesMut) -> io::Result<usize> {
        let len = buf.len();
        buf.resize(buf.capacity(), 0);
        let res = self.read_slice(sock, &mut buf[len..]);
        buf.truncate(len + *res.as_ref().unwrap_or(&0));
        res
    }

    /// Reads plaintext into `out`: what rustls holds, then records
    /// from the socket until `out` is full or the socket has no more.
    /// `Ok(0)` is the peer's `close_notify`.
    pub(crate) fn read_slice(&self, sock: &Sock, out: &mut [u8]) -> io::Result<usize> {
        let mut drained = false;
        let res = self.read_records(sock, out, &mut drained);
        self.drained.store(drained, Ordering::Relaxed);
        res
    }

    /// Whether the last read stopped because the socket had nothing more:
    /// only then is a wait for readiness due. A read cut short by
    /// `close_notify` or an error is not, and the next one answers at once.
    pub(crate) fn drained(&self) -> bool {
        self.drained.load(Ordering::Relaxed)
    }

    fn read_records(&self, sock: &Sock, out: &mut [u8], drained: &mut bool) -> io::Result<usize> {
        let mut c = self.lock();
        let mut n = 0;
        let mut wire_eof = false;
        while n < out.len() {
            match c.reader().read(&mut out[n..]) {
                Ok(0) => break, // close_notify: end of file after these bytes
                Ok(k) => {
                    n += k;
                    continue;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                    return if n > 0 { Ok(n) } else { Err(truncated()) };
                }
                Err(e) => return if n > 0 { Ok(n) } else { Err(e) },
            }
            if wire_eof {
                // rustls saw the socket's end and still wants more.
                return if n > 0 { Ok(n) } else { Err(truncated()) };
            }
            match c.read_tls(&mut Wire(sock)) {
                Ok(0) => wire_eof = true,
                Ok(_) => {}
                Err(e) => {
                    *drained = e.kind() == io::ErrorKind::WouldBlock;
                    return if n > 0 { Ok(n) } else { Err(e) };
                }
            }
            if let Err(e) = c.process_new_packets() {
                // Send the alert rustls queued, as far as the socket takes it.
                let _ = flush_records(&mut c, sock);
                return if n > 0 { Ok(n) } else { Err(tls_error(e)) };
            }
            if c.wants_write() {
                // A post-handshake reply (a key update): best effort now,
                // the next flush sends the rest.
                let _ = flush_records(&mut c, sock);
            }
        }
        Ok(n)
    }

    /// Seals `bufs` into records and sends what the socket takes. Records
    /// still waiting from before go first: until they are out, nothing new
    /// is taken (`WouldBlock`), which bounds what rustls holds.
    pub(crate) fn write_vectored(&self, sock: &Sock, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        let mut c = self.lock();
        flush_records(&mut c, sock)?;
        let n = c.writer().write_vectored(bufs)?;
        match flush_records(&mut c, sock) {
            Err(e) if e.kind() != io::ErrorKind::WouldBlock => Err(e),
            _ => Ok(n),
        }
    }

    /// Sends the sealed records rustls holds; `WouldBlock` while some wait.
    pub(crate) fn flush(&self, sock: &Sock) -> io::Result<()> {
        flush_records(&mut self.lock(), sock)
    }

    /// Whether sealed records wait to be sent.
    pub(crate) fn has_pending(&self) -> bool {
        self.lock().wants_write()
    }

    /// Queues `close_notify` (once) and sends it.
    pub(crate) fn close_notify(&self, sock: &Sock) -> io::Result<()> {
        let mut c = self.lock();
        if !self.notified.swap(true, Ordering::Relaxed) {
            c.send_close_notify();
        }
        flush_records(&mut c, sock)
    }

    fn with<R>(&self, f: impl FnOnce(&rustls::Connection) -> R) -> R {
        f(&self.lock())
    }
}

/// Writes rustls's sealed records to the socket until none is left.
fn flush_records(c: &mut rustls::Connection, sock: &Sock) -> io::Result<()> {
    while c.wants_write() {
        if c.write_tls(&mut Wire(sock))? == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
    }
    Ok(())
}

/// Runs the handshake on a connected socket, then hands the socket and the
/// rustls's state over as the connection's transport.
pub(crate) async fn handshake(sock: Async<Sock>, mut c: rustls::Connection) -> io::Result<Io> {
    loop {
        loop {
            match flush_records(&mut c, sock.get_ref()) {
                Ok(()) => break,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => sock.writable().await?,
                Err(e) => return Err(e),
            }
        }
        if !c.is_handshaking() {
            break;
        }
        match c.read_tls(&mut Wire(sock.get_ref())) {
            Ok(0) => {
                let error = io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the peer closed the connection during the TLS handshake",
                );
                return Err(Event::Tls { socket: None, error }.into());
            }
            Ok(_) => {
                if let Err(e) = c.process_new_packets() {
                    let _ = flush_records(&mut c, sock.get_ref());
                    return Err(tls_error(e));
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => sock.readable().await?,
            Err(e) => return Err(e),
        }
    }
    let tls = TlsConn {
        conn: Mutex::new(c),
        notified: AtomicBool::new(false),
        drained: AtomicBool::new(false),
    };
    // Registered again as the TLS transport: rustls's state then lives once,
    // in the socket, not in both of the connection's sides.
    let wire = sock.into_inner()?;
    let tls = Sock::Tls(Box::new(crate::transport::TlsSock { wire, tls }));
    Ok(Io::new(Async::new(tls)?))
}

/// [`handshake`], given up after `limit` as [`Event::Timeout`] of `clock`:
/// a peer that never sends its part must not hold its task (or an
/// `accept`) for good.
pub(crate) async fn handshake_within(
    sock: Async<Sock>,
    conn: rustls::Connection,
    limit: Option<Duration>,
    clock: crate::Clock,
) -> io::Result<Io> {
    let Some(limit) = limit else {
        return handshake(sock, conn).await;
    };
    let timeout = async move {
        async_io::Timer::after(limit).await;
        Err(Event::Timeout { socket: None, clock }.into())
    };
    futures_lite::future::or(handshake(sock, conn), timeout).await
}

/// The client's rustls connection for `server_name` (its SNI and the name the
/// certificate must carry).
pub(crate) fn client_conn(config: Arc<ClientConfig>, server_name: &str) -> io::Result<rustls::Connection> {
    let name = ServerName::try_from(server_name.to_owned()).map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{server_name:?} is not a valid TLS server name: {e}"),
        )
    })?;
    let c = rustls::ClientConnection::new(config, name).map_err(tls_error)?;
    Ok(rustls::Connection::Client(c))
}

/// A server's rustls connection.
pub(crate) fn server_conn(config: Arc<ServerConfig>) -> io::Result<rustls::Connection> {
    let c = rustls::ServerConnection::new(config).map_err(tls_error)?;
    Ok(rustls::Connection::Server(c))
}

// ---- the await face ----

stream_types! {
    /// A TLS stream over TCP in both directions: cl-async-ssl's
    /// `ssl-socket` wrapped in an `async-io-stream`.
    ///
    /// It behaves as [`TcpStream`](crate::TcpStream) does (reads never
    /// wait, writes go out by themselves, a drop delivers) with plaintext
    /// in its buffers; see [the module](crate::tls) for what TLS adds.
    TlsStream,
    /// The input half of a [`TlsStream`].
    TlsInputStream,
    /// The output half of a [`TlsStream`]. Dropping the half made by
    /// `split` sends `close_notify` once its queued bytes are out.
    TlsOutputStream,
}

impl TlsStream {
    /// Connects to `host:port` and runs the handshake, verifying that the
    /// server's certificate is valid for `host` (also sent as SNI).
    /// Failures: as [`TcpStream::connect`](crate::TcpStream::connect)'s,
    /// then [`Event::Tls`] or [`Event::Certificate`].
    pub async fn connect(host: &str, port: u16, config: Arc<ClientConfig>) -> io::Result<TlsStream> {
        TlsStream::connect_to((host, port), host, config).await
    }

    /// Connects to `addr` and runs the handshake for `server_name`, for
    /// when the address does not carry the name (an IP address, a
    /// proxy).
    pub async fn connect_to(
        addr: impl crate::ToAddrs,
        server_name: &str,
        config: Arc<ClientConfig>,
    ) -> io::Result<TlsStream> {
        let conn = client_conn(config, server_name)?;
        let sock = addr::connect(addr, None).await?;
        sock.get_ref().tcp()?.set_nodelay(true)?;
        let io = handshake(sock, conn).await?;
        Ok(TlsStream::new(Socket::from_io(io)))
    }

    /// The peer's address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.socket().peer_addr()
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket().local_addr()
    }

    /// The protocol the handshake chose by ALPN, if any.
    pub fn alpn_protocol(&self) -> Option<Vec<u8>> {
        self.with_tls(|c| c.alpn_protocol().map(<[u8]>::to_vec)).flatten()
    }

    /// The TLS version agreed on.
    pub fn protocol_version(&self) -> Option<rustls::ProtocolVersion> {
        self.with_tls(|c| c.protocol_version()).flatten()
    }

    /// The name the client asked for (SNI), on a server's stream.
    pub fn server_name(&self) -> Option<String> {
        self.with_tls(|c| match c {
            rustls::Connection::Server(s) => s.server_name().map(str::to_owned),
            rustls::Connection::Client(_) => None,
        })
        .flatten()
    }

    fn with_tls<R>(&self, f: impl FnOnce(&rustls::Connection) -> R) -> Option<R> {
        let io = self.socket().conn.io()?;
        io.tls().map(|s| s.with(f))
    }
}

/// A TLS listener: accepts TCP connections and runs the server's side of
/// the handshake (cl-async-ssl's `tcp-ssl-server`, the await face).
pub struct TlsListener {
    tcp: crate::TcpListener,
    config: Arc<ServerConfig>,
    /// How long a handshake may take (see [`TLS_HANDSHAKE_TIMEOUT`]).
    handshake_timeout: Option<Duration>,
}

impl TlsListener {
    /// Binds to `addr` (port 0 picks a free port) and serves `config`'s
    /// certificate.
    pub fn bind(addr: impl ToSocketAddrs, config: Arc<ServerConfig>) -> io::Result<TlsListener> {
        let tcp = crate::TcpListener::bind(addr)?;
        Ok(TlsListener {
            tcp,
            config,
            handshake_timeout: Some(TLS_HANDSHAKE_TIMEOUT),
        })
    }

    /// Bounds each handshake: a client that has not finished its part by
    /// then fails with [`Event::Timeout`] ([`Clock::Connect`](crate::Clock::Connect)).
    /// `None` waits as long as the client does. The default is
    /// [`TLS_HANDSHAKE_TIMEOUT`]; zero is refused with `InvalidInput`.
    pub fn set_handshake_timeout(&mut self, limit: Option<Duration>) -> io::Result<()> {
        if limit.is_some_and(|d| d.is_zero()) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a handshake timeout of zero would fire at once; use None for no timeout",
            ));
        }
        self.handshake_timeout = limit;
        Ok(())
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.tcp.local_addr()
    }

    /// Accepts the next connection and runs its handshake. A client whose
    /// handshake fails or times out is an error of this call
    /// ([`Event::Tls`], [`Event::Certificate`], [`Event::Timeout`]); call
    /// it again for the next client. The handshakes run one at a time, so
    /// a client that handshakes slowly holds up the next for as long as
    /// the handshake timeout; to serve clients side by side, accept with
    /// [`accept_tcp`](TlsListener::accept_tcp) and finish each with
    /// [`handshake`](TlsListener::handshake) in its own task.
    pub async fn accept(&self) -> io::Result<(TlsStream, SocketAddr)> {
        let (pending, addr) = self.accept_tcp().await?;
        Ok((self.handshake(pending).await?, addr))
    }

    /// Accepts the next TCP connection, before its handshake.
    pub async fn accept_tcp(&self) -> io::Result<(PendingTls, SocketAddr)> {
        let (stream, addr) = self.tcp.accept_std().await?;
        stream.set_nodelay(true)?;
        let sock = Async::new(Sock::Tcp(stream))?;
        Ok((PendingTls { sock }, addr))
    }

    /// Runs the server's side of the handshake on a connection
    /// [`accept_tcp`](TlsListener::accept_tcp) took.
    pub async fn handshake(&self, pending: PendingTls) -> io::Result<TlsStream> {
        let conn = server_conn(self.config.clone())?;
        let io = handshake_within(pending.sock, conn, self.handshake_timeout, crate::Clock::Connect).await?;
        Ok(TlsStream::new(Socket::from_io(io)))
    }
}

impl fmt::Debug for TlsListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsListener")
            .field("local", &self.local_addr())
            .finish()
    }
}

/// An accepted TCP connection whose TLS handshake has not run yet (see
/// [`TlsListener::accept_tcp`]).
pub struct PendingTls {
    sock: Async<Sock>,
}

impl fmt::Debug for PendingTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PendingTls").finish_non_exhaustive()
    }
}
