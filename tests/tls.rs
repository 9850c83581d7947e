//! TLS streams against peers nobody here wrote: python's `ssl` module,
//! `openssl s_server` and `s_client`, futures-rustls over async-net, a
//! WebSocket library; refused certificates; truncation; and the promises a
//! `TcpStream` makes (reads never wait, writes go out by themselves, a drop
//! delivers, `clear_output` never cuts a record), kept over TLS.
#![cfg(feature = "tls")]

mod common;

use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;

use futures_lite::future::{or, zip};
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use futures_rustls::{TlsAcceptor, TlsConnector};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose, date_time_ymd,
};
use streamish::tls::rustls::pki_types::ServerName;
use streamish::tls::rustls::{ClientConfig, ProtocolVersion, RootCertStore, ServerConfig};
use streamish::tls::{self, TlsListener, TlsStream};
use streamish::{AsyncInputStream, AsyncOutputStream, AsyncOutputStreamExt, AsyncStreamExt, Event};

use common::{TempDir, is_pattern_at, join, pattern_at, run, tls_pair, wait_input};

// ---- certificates ----

/// A certificate authority of one test's own, and the server
/// certificates it signs. A CA (rather than self-signed leaves) so that
/// the peers' verifiers (OpenSSL's, webpki's) see an ordinary chain.
struct Pki {
    ca: rcgen::Certificate,
    key: KeyPair,
}

/// A server certificate and its key.
struct Leaf {
    cert: rcgen::Certificate,
    key: KeyPair,
}

impl Pki {
    fn new() -> Pki {
        // Each CA named apart: a verifier finds a leaf's issuer by name, so
        // two CAs of one name would make an unknown CA a bad signature.
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let name = format!("streamish test CA {}", NEXT.fetch_add(1, Ordering::Relaxed));
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let key = KeyPair::generate().unwrap();
        Pki {
            ca: params.self_signed(&key).unwrap(),
            key,
        }
    }

    fn roots(&self) -> RootCertStore {
        let mut roots = RootCertStore::empty();
        roots.add(self.ca.der().clone()).unwrap();
        roots
    }

    /// A client config trusting this CA only.
    fn client(&self) -> Arc<ClientConfig> {
        tls::client_config(self.roots())
    }

    /// A certificate for `names` (DNS names or IP addresses), valid now.
    fn leaf(&self, names: &[&str]) -> Leaf {
        self.sign(names, |_| {})
    }

    /// A certificate for `names` that expired long ago.
    fn expired_leaf(&self, names: &[&str]) -> Leaf {
        self.sign(names, |p| {
            p.not_before = date_time_ymd(2000, 1, 1);
            p.not_after = date_time_ymd(2001, 1, 1);
        })
    }

    fn sign(&self, names: &[&str], edit: impl FnOnce(&mut CertificateParams)) -> Leaf {
        let mut params = CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
        params.distinguished_name.push(DnType::CommonName, names[0]);
        // OpenSSL's strict verification (python's default from 3.13 on)
        // wants the issuer's key identifier in the leaf.
        params.use_authority_key_identifier_extension = true;
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        edit(&mut params);
        let key = KeyPair::generate().unwrap();
        Leaf {
            cert: params.signed_by(&key, &self.ca, &self.key).unwrap(),
            key,
        }
    }
}

impl Leaf {
    /// A server config presenting it, read back from PEM as a user's
    /// files would be (the same text the other peers load).
    fn server(&self) -> Arc<ServerConfig> {
        let chain = tls::certs_from_pem(self.cert.pem().as_bytes()).unwrap();
        let key = tls::key_from_pem(self.key.serialize_pem().as_bytes()).unwrap();
        tls::server_config(chain, key).unwrap()
    }

    /// Its certificate and key as PEM files in `dir`.
    fn files(&self, dir: &TempDir) -> (PathBuf, PathBuf) {
        let cert = dir.file("cert.pem", &self.cert.pem());
        let key = dir.file("key.pem", &self.key.serialize_pem());
        (cert, key)
    }
}

fn path(p: &Path) -> &str {
    p.to_str().expect("a UTF-8 temporary path")
}

// ---- peer programs ----

/// A program playing the peer: killed and reaped when dropped, so a test
/// that fails leaves no process behind. Its output lines arrive on a
/// channel, read by a thread so the program never stalls on a full pipe;
/// its error output is kept for failure messages.
struct Peer {
    name: String,
    child: Child,
    stdin: Option<ChildStdin>,
    lines: smol::channel::Receiver<String>,
    /// Closed (never sent on) when its output ends.
    ended: smol::channel::Receiver<()>,
    stderr: Option<thread::JoinHandle<Vec<u8>>>,
}

impl Peer {
    fn spawn(mut cmd: Command) -> Peer {
        let name = cmd.get_program().to_string_lossy().into_owned();
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {name}: {e}"));
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = smol::channel::unbounded();
        let (end, ended) = smol::channel::bounded::<()>(1);
        thread::spawn(move || {
            for line in BufReader::new(stdout).split(b'\n') {
                let Ok(line) = line else { break };
                let _ = tx.send_blocking(String::from_utf8_lossy(&line).trim_end().to_owned());
            }
            drop(end);
        });
        let mut stderr = child.stderr.take().unwrap();
        let stderr = thread::spawn(move || {
            let mut text = Vec::new();
            let _ = stderr.read_to_end(&mut text);
            text
        });
        Peer {
            name,
            stdin: child.stdin.take(),
            child,
            lines,
            ended,
            stderr: Some(stderr),
        }
    }

    /// `python3 -c script args...`.
    fn python(script: &str, args: &[&str]) -> Peer {
        let mut cmd = Command::new("python3");
        cmd.arg("-c").arg(script).args(args);
        Peer::spawn(cmd)
    }

    /// The next line it prints that starts with `prefix` (others skipped).
    async fn line(&mut self, prefix: &str) -> String {
        while let Ok(line) = self.lines.recv().await {
            if line.starts_with(prefix) {
                return line;
            }
        }
        self.fail(format_args!("ended without printing {prefix:?}"))
    }

    /// Runs `fut`, failing at once (with its errors) if the program ends
    /// first: what `fut` waits for would never come.
    async fn before_exit<T>(&mut self, fut: impl Future<Output = T>) -> T {
        let ended = self.ended.clone();
        let res = or(async { Some(fut.await) }, async {
            let _ = ended.recv().await;
            None
        })
        .await;
        match res {
            Some(v) => v,
            None => self.fail("ended first"),
        }
    }

    fn send(&mut self, data: &[u8]) {
        self.stdin.as_mut().unwrap().write_all(data).unwrap();
    }

    /// Waits for it to end (its output closes as it exits) and asserts
    /// that it succeeded.
    async fn success(mut self) {
        while self.lines.recv().await.is_ok() {}
        let status = self.child.wait().unwrap();
        if !status.success() {
            self.fail(format_args!("failed ({status})"));
        }
    }

    /// Fails the test, with what it wrote to its error output (all of
    /// it: it is ended first).
    fn fail(&mut self, what: impl std::fmt::Display) -> ! {
        let _ = self.child.kill();
        let text = self
            .stderr
            .take()
            .map(|t| t.join().unwrap_or_default())
            .unwrap_or_default();
        panic!("{} {what}:\n{}", self.name, String::from_utf8_lossy(&text))
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether `openssl` can be run; says so when a test skips for want of it.
fn have_openssl() -> bool {
    let ok = Command::new("openssl")
        .arg("version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        eprintln!("skipped: no openssl on PATH");
    }
    ok
}

/// A python `ssl` server for one client, on a port it picks and prints
/// first (`port N`). Modes: `echo` sends back what it reads until the
/// client's close_notify, answers with its own and says which end it saw;
/// `truncate` sends `partial` and closes the TCP connection under TLS,
/// without close_notify; `notify` sends `whole`, then close_notify, and
/// waits for the client's.
const PY_SERVER: &str = r#"
import socket, ssl, sys
cert, key, mode = sys.argv[1:4]
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
listener = socket.create_server(("127.0.0.1", 0))
print("port", listener.getsockname()[1], flush=True)
raw, _ = listener.accept()
conn = ctx.wrap_socket(raw, server_side=True, suppress_ragged_eofs=False)
if mode == "echo":
    total = 0
    try:
        while True:
            data = conn.recv(65536)
            if not data:
                break
            total += len(data)
            conn.sendall(data)
    except ssl.SSLEOFError:
        print("truncated after", total, flush=True)
        sys.exit(0)
    conn.unwrap()
    print("close_notify after", total, flush=True)
elif mode == "truncate":
    conn.sendall(b"partial")
    # SSLSocket.shutdown drops the TLS layer, sending nothing, and shuts
    # the socket down; then the client's leaving is awaited.
    conn.shutdown(socket.SHUT_WR)
    while conn.recv(4096):
        pass
    print("closed without close_notify", flush=True)
elif mode == "notify":
    conn.sendall(b"whole")
    conn.unwrap()
    print("close_notify both ways", flush=True)
"#;

/// A python `ssl` client: connects to `127.0.0.1:port`, verifying the
/// server as `name` against `ca`, sends `n` bytes (`i * 7 % 251`), reads
/// until the server's close_notify, says what it got, then sends its own.
const PY_CLIENT: &str = r#"
import socket, ssl, sys
port, ca, name, n = int(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
ctx = ssl.create_default_context(cafile=ca)
raw = socket.create_connection(("127.0.0.1", port))
conn = ctx.wrap_socket(raw, server_hostname=name, suppress_ragged_eofs=False)
data = bytes(i * 7 % 251 for i in range(n))
conn.sendall(data)
got = bytearray()
try:
    while True:
        chunk = conn.recv(65536)
        if not chunk:
            break
        got += chunk
except ssl.SSLEOFError:
    print("truncated after", len(got), flush=True)
    sys.exit(0)
print("close_notify after", len(got), "echo" if got == data else "garbled", flush=True)
conn.unwrap()
print("unwrapped", flush=True)
"#;

fn py_bytes(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 7 % 251) as u8).collect()
}

/// A python server in `mode` with `leaf`, and the port it listens on.
async fn python_server(mode: &str, dir: &TempDir, leaf: &Leaf) -> (Peer, u16) {
    let (cert, key) = leaf.files(dir);
    let mut peer = Peer::python(PY_SERVER, &[path(&cert), path(&key), mode]);
    let port = peer.line("port ").await[5..].parse().unwrap();
    (peer, port)
}

// ---- streamish and futures-rustls pairs ----

type RustlsServer = futures_rustls::server::TlsStream<async_net::TcpStream>;
type RustlsClient = futures_rustls::client::TlsStream<async_net::TcpStream>;

/// A streamish client and the futures-rustls server (over async-net) it
/// connected to.
async fn to_rustls_server(pki: &Pki, server: Arc<ServerConfig>) -> (TlsStream, RustlsServer) {
    let listener = async_net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let serve = async {
        let tcp = listener.accept().await.unwrap().0;
        TlsAcceptor::from(server).accept(tcp).await.unwrap()
    };
    let (client, peer) = zip(TlsStream::connect_to(addr, "localhost", pki.client()), serve).await;
    (client.unwrap(), peer)
}

/// A streamish server and the futures-rustls client (over async-net)
/// that connected to it asking for `name`.
async fn from_rustls_client(pki: &Pki, name: &'static str) -> (TlsStream, RustlsClient) {
    let server = TlsListener::bind("127.0.0.1:0", pki.leaf(&["localhost", "127.0.0.1"]).server()).unwrap();
    let connect = async {
        let tcp = async_net::TcpStream::connect(server.local_addr()).await.unwrap();
        let name = ServerName::try_from(name).unwrap();
        TlsConnector::from(pki.client()).connect(name, tcp).await.unwrap()
    };
    let (accepted, peer) = zip(server.accept(), connect).await;
    (accepted.unwrap().0, peer)
}

/// The failure of a handshake that must fail, on each side, as events:
/// `(client's, server's)`.
async fn refused(leaf: &Leaf, client: Arc<ClientConfig>, name: &str) -> (Event, Event) {
    let server = TlsListener::bind("127.0.0.1:0", leaf.server()).unwrap();
    let (a, c) = zip(
        server.accept(),
        TlsStream::connect_to(server.local_addr(), name, client),
    )
    .await;
    let client = Event::from(c.expect_err("the client took a bad certificate"));
    let server = Event::from(a.expect_err("the server finished a refused handshake"));
    (client, server)
}

/// The client refused the certificate saying `why`; the server's
/// handshake failed too (it hears the client's alert).
fn assert_refused((client, server): (Event, Event), why: &str) {
    assert!(matches!(client, Event::Certificate { .. }), "client: {client:?}");
    assert!(client.to_string().contains(why), "client: {client} (wanted {why:?})");
    assert!(
        matches!(server, Event::Certificate { .. } | Event::Tls { .. }),
        "server: {server:?}"
    );
}

/// A read failed because the peer closed without close_notify.
fn assert_truncated(err: io::Error) {
    assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof, "{err}");
    assert!(err.to_string().contains("close_notify"), "{err}");
    let ev = Event::from(err);
    assert!(matches!(ev, Event::Tls { .. }), "not Event::Tls: {ev:?}");
}

// ---- streamish on both sides ----

#[test]
fn a_round_trip_with_no_flush() {
    run(async {
        let (mut client, mut server) = tls_pair().await;
        client.write_all(b"ping").await.unwrap();
        let mut buf = [0u8; 4];
        server.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"ping");
        server.write_sequence(b"pong").unwrap();
        client.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"pong");
        assert_eq!(client.read_sequence(&mut buf).unwrap(), 0);
        assert!(!client.at_eof());
    });
}

#[test]
fn a_megabyte_each_way_and_close_notify() {
    run(async {
        let (mut client, mut server) = tls_pair().await;
        let data: Vec<u8> = (0..1 << 20).map(|i| (i * 7 % 251) as u8).collect();
        let sent = data.clone();
        let (_, got) = zip(
            async {
                client.write_all(&sent).await.unwrap();
                client.close_stream().await.unwrap();
            },
            async {
                let mut got = Vec::new();
                server.read_to_end(&mut got).await.unwrap();
                got
            },
        )
        .await;
        assert_eq!(got.len(), data.len());
        assert!(got == data);
    });
}

#[test]
fn finish_output_waits_for_the_records() {
    run(async {
        let (mut client, mut server) = tls_pair().await;
        client.write_sequence(&vec![7u8; 300_000]).unwrap();
        let reader = async {
            let mut got = vec![0u8; 300_000];
            server.read_exact(&mut got).await.unwrap();
            got
        };
        let (done, got) = zip(client.finish_output(), reader).await;
        done.unwrap();
        assert!(got.iter().all(|&b| b == 7));
        assert_eq!(client.queued(), 0);
    });
}

// ---- python's ssl module ----

#[test]
fn a_python_server_echoes_and_sees_close_notify() {
    run(async {
        let (pki, dir) = (Pki::new(), TempDir::new("tls"));
        let (mut peer, port) = python_server("echo", &dir, &pki.leaf(&["localhost"])).await;
        let mut client = TlsStream::connect_to(("127.0.0.1", port), "localhost", pki.client())
            .await
            .unwrap();
        let data = pattern_at(0, 20_000);
        client.write_all(&data).await.unwrap();
        let mut echo = vec![0u8; data.len()];
        client.read_exact(&mut echo).await.unwrap();
        assert!(echo == data);
        client.shutdown_write().await.unwrap();
        // Python answers our close_notify with its own: a clean end.
        let mut rest = Vec::new();
        client.read_to_end(&mut rest).await.unwrap();
        assert!(rest.is_empty() && client.at_eof());
        assert_eq!(peer.line("").await, "close_notify after 20000");
        peer.success().await;
    });
}

#[test]
fn a_python_client_echoes_and_sees_close_notify() {
    run(async {
        let (pki, dir) = (Pki::new(), TempDir::new("tls"));
        let server = TlsListener::bind("127.0.0.1:0", pki.leaf(&["localhost"]).server()).unwrap();
        let ca = dir.file("ca.pem", &pki.ca.pem());
        let port = server.local_addr().port().to_string();
        let mut peer = Peer::python(PY_CLIENT, &[&port, path(&ca), "localhost", "20000"]);
        let (mut conn, _) = peer.before_exit(server.accept()).await.unwrap();
        assert_eq!(conn.server_name().as_deref(), Some("localhost"));
        let mut got = vec![0u8; 20_000];
        conn.read_exact(&mut got).await.unwrap();
        assert!(got == py_bytes(20_000));
        conn.write_all(&got).await.unwrap();
        conn.shutdown_write().await.unwrap();
        // Python's unwrap() answers with its close_notify: a clean end.
        let mut rest = Vec::new();
        conn.read_to_end(&mut rest).await.unwrap();
        assert!(rest.is_empty() && conn.at_eof());
        assert_eq!(peer.line("close_notify").await, "close_notify after 20000 echo");
        assert_eq!(peer.line("").await, "unwrapped");
        peer.success().await;
    });
}

#[test]
fn a_python_server_closing_without_close_notify_is_a_truncation() {
    run(async {
        let (pki, dir) = (Pki::new(), TempDir::new("tls"));
        let (mut peer, port) = python_server("truncate", &dir, &pki.leaf(&["localhost"])).await;
        let mut client = TlsStream::connect_to(("127.0.0.1", port), "localhost", pki.client())
            .await
            .unwrap();
        let mut buf = [0u8; 7];
        client.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"partial");
        assert_truncated(client.read(&mut buf).await.unwrap_err());
        assert!(!client.at_eof());
        drop(client);
        assert_eq!(peer.line("").await, "closed without close_notify");
        peer.success().await;
    });
}

#[test]
fn a_python_server_close_notify_is_a_clean_eof() {
    run(async {
        let (pki, dir) = (Pki::new(), TempDir::new("tls"));
        let (mut peer, port) = python_server("notify", &dir, &pki.leaf(&["localhost"])).await;
        let mut client = TlsStream::connect_to(("127.0.0.1", port), "localhost", pki.client())
            .await
            .unwrap();
        let mut buf = [0u8; 5];
        client.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"whole");
        assert_eq!(client.read(&mut buf).await.unwrap(), 0);
        assert!(client.at_eof());
        // Dropping answers with close_notify, which python waits for.
        drop(client);
        assert_eq!(peer.line("").await, "close_notify both ways");
        peer.success().await;
    });
}

// ---- openssl s_server, s_client ----

#[test]
fn openssl_s_server_reverses_lines_and_closes_cleanly() {
    if !have_openssl() {
        return;
    }
    run(async {
        let (pki, dir) = (Pki::new(), TempDir::new("tls"));
        let (cert, key) = pki.leaf(&["localhost"]).files(&dir);
        let mut cmd = Command::new("openssl");
        // -rev: each line comes back reversed; the line CLOSE ends the
        // connection with close_notify.
        cmd.args(["s_server", "-accept", "127.0.0.1:0", "-naccept", "1", "-rev"])
            .args(["-cert", path(&cert), "-key", path(&key)]);
        let mut peer = Peer::spawn(cmd);
        // Printed once it listens: "ACCEPT 127.0.0.1:PORT".
        let accept = peer.line("ACCEPT").await;
        let port: u16 = accept.rsplit(':').next().unwrap().parse().unwrap();
        let mut client = TlsStream::connect_to(("127.0.0.1", port), "localhost", pki.client())
            .await
            .unwrap();
        let lines: Vec<String> = (0..4).map(|i| format!("{i}:{}", "streamish".repeat(100))).collect();
        for line in &lines {
            client.write_sequence(line.as_bytes()).unwrap();
            client.write_sequence(b"\n").unwrap();
        }
        client.write_sequence(b"CLOSE\n").unwrap();
        let mut got = Vec::new();
        client.read_to_end(&mut got).await.unwrap();
        let want: String = lines
            .iter()
            .map(|l| l.chars().rev().collect::<String>() + "\n")
            .collect();
        assert_eq!(String::from_utf8(got).unwrap(), want);
        assert!(client.at_eof());
        drop(client);
        peer.success().await;
    });
}

#[test]
fn openssl_s_client_talks_and_closes_cleanly() {
    if !have_openssl() {
        return;
    }
    run(async {
        let (pki, dir) = (Pki::new(), TempDir::new("tls"));
        let server = TlsListener::bind("127.0.0.1:0", pki.leaf(&["localhost"]).server()).unwrap();
        let ca = dir.file("ca.pem", &pki.ca.pem());
        let mut cmd = Command::new("openssl");
        // -quiet: only the data on its output; it ignores the end of its
        // input and quits when the server closes.
        cmd.args(["s_client", "-connect", &server.local_addr().to_string(), "-quiet"])
            .args(["-servername", "localhost", "-verify_hostname", "localhost"])
            .args(["-CAfile", path(&ca), "-verify_return_error"]);
        let mut peer = Peer::spawn(cmd);
        peer.send(b"hello from openssl\n");
        let (mut conn, _) = peer.before_exit(server.accept()).await.unwrap();
        assert_eq!(conn.server_name().as_deref(), Some("localhost"));
        let mut line = [0u8; 19];
        conn.read_exact(&mut line).await.unwrap();
        assert_eq!(&line, b"hello from openssl\n");
        conn.write_all(b"hello from streamish\n").await.unwrap();
        assert_eq!(peer.line("").await, "hello from streamish");
        conn.shutdown_write().await.unwrap();
        // s_client answers close_notify with its own and exits.
        let mut rest = Vec::new();
        conn.read_to_end(&mut rest).await.unwrap();
        assert!(rest.is_empty() && conn.at_eof());
        peer.success().await;
    });
}

// ---- futures-rustls over async-net ----

#[test]
fn a_rustls_server_and_a_streamish_client_talk_and_close() {
    run(async {
        let pki = Pki::new();
        let (mut client, mut peer) = to_rustls_server(&pki, pki.leaf(&["localhost"]).server()).await;
        let data = pattern_at(0, 200_000);
        let up = async {
            client.write_all(&data).await.unwrap();
            client.shutdown_write().await.unwrap();
            let mut back = Vec::new();
            client.read_to_end(&mut back).await.unwrap();
            assert!(client.at_eof());
            back
        };
        let down = async {
            // futures-rustls ends a read cleanly only at close_notify.
            let mut got = Vec::new();
            peer.read_to_end(&mut got).await.unwrap();
            peer.write_all(&got).await.unwrap();
            peer.close().await.unwrap();
            got
        };
        let (back, got) = zip(up, down).await;
        assert!(got == data);
        assert!(back == data);
    });
}

#[test]
fn a_rustls_client_and_a_streamish_server_talk_and_close() {
    run(async {
        let (mut server, mut peer) = from_rustls_client(&Pki::new(), "localhost").await;
        let data = pattern_at(0, 200_000);
        let up = async {
            peer.write_all(&data).await.unwrap();
            peer.close().await.unwrap();
        };
        let down = async {
            let mut got = Vec::new();
            server.read_to_end(&mut got).await.unwrap();
            assert!(server.at_eof());
            got
        };
        let (_, got) = zip(up, down).await;
        assert!(got == data);
    });
}

// ---- refused certificates ----

#[test]
fn a_wrong_name_is_a_certificate_event() {
    run(async {
        let pki = Pki::new();
        let leaf = pki.leaf(&["localhost"]);
        assert_refused(refused(&leaf, pki.client(), "example.com").await, "not valid for name");
    });
}

#[test]
fn an_expired_certificate_is_a_certificate_event() {
    run(async {
        let pki = Pki::new();
        let leaf = pki.expired_leaf(&["localhost"]);
        assert_refused(refused(&leaf, pki.client(), "localhost").await, "certificate expired");
    });
}

#[test]
fn an_unknown_ca_is_a_certificate_event() {
    run(async {
        let (trusted, other) = (Pki::new(), Pki::new());
        let leaf = other.leaf(&["localhost"]);
        assert_refused(refused(&leaf, trusted.client(), "localhost").await, "UnknownIssuer");
    });
}

// ---- the end of the stream ----

#[test]
fn a_rustls_peer_dropped_without_close_notify_is_a_truncation() {
    run(async {
        let pki = Pki::new();
        let (mut client, mut peer) = to_rustls_server(&pki, pki.leaf(&["localhost"]).server()).await;
        peer.write_all(b"partial").await.unwrap();
        peer.flush().await.unwrap();
        // Dropped unclosed: the TCP connection ends under TLS.
        drop(peer);
        let mut buf = [0u8; 7];
        client.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"partial");
        assert_truncated(client.read(&mut buf).await.unwrap_err());
    });
}

#[test]
fn a_rustls_peer_closing_is_a_clean_eof() {
    run(async {
        let pki = Pki::new();
        let (mut client, mut peer) = to_rustls_server(&pki, pki.leaf(&["localhost"]).server()).await;
        peer.write_all(b"whole").await.unwrap();
        peer.close().await.unwrap();
        let mut got = Vec::new();
        client.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"whole");
        assert!(client.at_eof());
        assert_eq!(client.read_sequence(&mut [0u8; 8]).unwrap(), 0);
    });
}

// ---- reads never wait; buffered() counts plaintext ----

#[test]
fn reads_never_wait_and_buffered_counts_plaintext() {
    run(async {
        let pki = Pki::new();
        let (mut client, mut peer) = to_rustls_server(&pki, pki.leaf(&["localhost"]).server()).await;
        let mut buf = [0u8; 4096];
        assert_eq!(client.read_sequence(&mut buf).unwrap(), 0);
        assert!(!client.at_eof());
        // One write is one record: its plaintext arrives whole.
        peer.write_all(&pattern_at(0, 1000)).await.unwrap();
        peer.flush().await.unwrap();
        assert!(!wait_input(&mut client).await.unwrap());
        assert_eq!(client.buffered(), 1000);
        assert_eq!(client.read_sequence(&mut buf).unwrap(), 1000);
        assert!(is_pattern_at(0, &buf[..1000]));
        assert_eq!(client.read_sequence(&mut buf).unwrap(), 0);
        assert_eq!(client.buffered(), 0);
        assert!(!client.at_eof());
    });
}

// ---- writes go out by themselves ----

#[test]
fn write_all_goes_out_without_flush() {
    run(async {
        let pki = Pki::new();
        let (mut client, mut peer) = to_rustls_server(&pki, pki.leaf(&["localhost"]).server()).await;
        client.write_all(b"no flush needed").await.unwrap();
        // From here only the peer is polled.
        let mut buf = [0u8; 15];
        peer.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"no flush needed");
    });
}

#[test]
fn a_dropped_stream_delivers_100_kib_then_close_notify() {
    run(async {
        let pki = Pki::new();
        let (mut client, mut peer) = to_rustls_server(&pki, pki.leaf(&["localhost"]).server()).await;
        let data = pattern_at(0, 100 * 1024);
        client.write_all(&data).await.unwrap();
        drop(client);
        // futures-rustls reports an end without close_notify as an error.
        let mut got = Vec::new();
        peer.read_to_end(&mut got).await.unwrap();
        assert_eq!(got.len(), data.len());
        assert!(got == data);
    });
}

#[test]
fn clear_output_never_cuts_a_record() {
    const LOTS: usize = 8 << 20;
    const MARKER: &[u8] = b"--marker--";
    run(async {
        let pki = Pki::new();
        let (mut client, mut peer) = to_rustls_server(&pki, pki.leaf(&["localhost"]).server()).await;
        client.write_sequence(&pattern_at(0, LOTS)).unwrap();
        // The peer reads nothing yet: push until the socket is full,
        // rustls holds sealed records, and the rest stays queued.
        for _ in 0..64 {
            let before = client.queued();
            client.force_output().unwrap();
            if client.queued() == before {
                break;
            }
        }
        let dropped = client.queued();
        assert!(dropped > 0, "nothing stayed queued");
        client.clear_output();
        assert_eq!(client.queued(), 0);
        client.write_sequence(MARKER).unwrap();
        let read = async {
            let mut got = Vec::new();
            peer.read_to_end(&mut got).await.map(|_| got)
        };
        let (closed, got) = zip(client.close_stream(), read).await;
        closed.unwrap();
        let got = got.expect("every record opens and close_notify ends the stream");
        assert!(got.ends_with(MARKER), "the marker is not last");
        let body = &got[..got.len() - MARKER.len()];
        // What was sealed before the clear arrives whole, then the marker.
        assert!(
            body.len() < LOTS && body.len() >= LOTS - dropped,
            "{} of {LOTS}",
            body.len()
        );
        assert!(is_pattern_at(0, body));
    });
}

// ---- split halves on two threads ----

#[test]
fn split_halves_on_two_threads_echo_a_mebibyte_each_way() {
    const MIB: usize = 1 << 20;
    let (input, output, peer) = run(async {
        let pki = Pki::new();
        let (client, peer) = to_rustls_server(&pki, pki.leaf(&["localhost"]).server()).await;
        let (input, output) = client.split();
        (input, output, peer)
    });
    let writer = thread::spawn(move || {
        let mut output = output;
        run(async move {
            output.write_all(&pattern_at(0, MIB)).await.unwrap();
            output.shutdown_write().await.unwrap();
        });
    });
    let reader = thread::spawn(move || {
        let mut input = input;
        run(async move {
            let mut got = Vec::new();
            input.read_to_end(&mut got).await.unwrap();
            got
        })
    });
    // The echo: until the writer's close_notify, then its own.
    let echoed = run(async move {
        let (mut from, mut to) = futures_lite::io::split(peer);
        let n = futures_lite::io::copy(&mut from, &mut to).await.unwrap();
        to.close().await.unwrap();
        n
    });
    assert_eq!(echoed, MIB as u64);
    join(writer);
    let got = join(reader);
    assert_eq!(got.len(), MIB);
    assert!(is_pattern_at(0, &got));
}

// ---- SNI and ALPN ----

#[test]
fn the_server_sees_the_name_the_client_asked_for() {
    run(async {
        let (server, _peer) = from_rustls_client(&Pki::new(), "localhost").await;
        assert_eq!(server.server_name().as_deref(), Some("localhost"));
        assert_eq!(server.protocol_version(), Some(ProtocolVersion::TLSv1_3));
    });
}

#[test]
fn a_client_asking_for_an_address_sends_no_name() {
    run(async {
        let (server, _peer) = from_rustls_client(&Pki::new(), "127.0.0.1").await;
        assert_eq!(server.server_name(), None);
    });
}

#[test]
fn alpn_picks_the_protocol_both_sides_know() {
    run(async {
        let pki = Pki::new();
        let mut server = (*pki.leaf(&["localhost"]).server()).clone();
        server.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let listener = TlsListener::bind("127.0.0.1:0", Arc::new(server)).unwrap();
        let mut client = (*pki.client()).clone();
        client.alpn_protocols = vec![b"x-unknown".to_vec(), b"http/1.1".to_vec()];
        let connect = TlsStream::connect_to(listener.local_addr(), "localhost", Arc::new(client));
        let (a, c) = zip(listener.accept(), connect).await;
        let (server, client) = (a.unwrap().0, c.unwrap());
        assert_eq!(client.alpn_protocol().as_deref(), Some(&b"http/1.1"[..]));
        assert_eq!(server.alpn_protocol(), client.alpn_protocol());
    });
}

// ---- cl-async's test/tcp-ssl.lisp ----

/// cl-async's `tcp-ssl-simple-client-server`: a TLS server answers each
/// request with `thxlol `; two clients, one connecting to `127.0.0.1` and
/// one to `localhost`, send `hai ` split between the connect (`:data`)
/// and a later write, and close when the answer comes.
#[test]
fn cl_async_tcp_ssl_simple_client_server() {
    run(async {
        let pki = Pki::new();
        let server = TlsListener::bind("127.0.0.1:0", pki.leaf(&["localhost", "127.0.0.1"]).server()).unwrap();
        let port = server.local_addr().port();
        let serve = async {
            let (mut server_reqs, mut server_data, mut connected) = (0, String::new(), Vec::new());
            for _ in 0..2 {
                let (mut sock, _) = server.accept().await.unwrap();
                let mut req = [0u8; 4];
                sock.read_exact(&mut req).await.unwrap();
                server_reqs += 1;
                server_data += std::str::from_utf8(&req).unwrap();
                sock.write_sequence(b"thxlol ").unwrap();
                // cl-async's server leaves its sockets open.
                connected.push(sock);
            }
            (server_reqs, server_data, connected.len())
        };
        let client = |addr: &'static str| {
            let config = pki.client();
            async move {
                let mut sock = TlsStream::connect(addr, port, config).await.unwrap();
                sock.write_sequence(b"ha").unwrap();
                sock.write_sequence(b"i ").unwrap();
                let mut reply = [0u8; 7];
                sock.read_exact(&mut reply).await.unwrap();
                sock.close_stream().await.unwrap();
                String::from_utf8(reply.to_vec()).unwrap()
            }
        };
        let ((server_reqs, server_data, connect_num), (a, b)) =
            zip(serve, zip(client("127.0.0.1"), client("localhost"))).await;
        assert_eq!(server_reqs, 2);
        assert_eq!(server_data, "hai hai ");
        assert_eq!(connect_num, 2);
        assert_eq!(a + &b, "thxlol thxlol ");
    });
}

// ---- generic consumers over TLS ----

#[test]
fn a_rustls_client_over_a_streamish_tcp_stream() {
    run(async {
        let pki = Pki::new();
        let server = TlsListener::bind("127.0.0.1:0", pki.leaf(&["localhost"]).server()).unwrap();
        let connect = async {
            let tcp = streamish::TcpStream::connect(server.local_addr()).await.unwrap();
            let name = ServerName::try_from("localhost").unwrap();
            TlsConnector::from(pki.client()).connect(name, tcp).await.unwrap()
        };
        let (accepted, mut client) = zip(server.accept(), connect).await;
        let (mut conn, _) = accepted.unwrap();
        let data = pattern_at(0, 300_000);
        let up = async {
            client.write_all(b"hello").await.unwrap();
            client.flush().await.unwrap();
            let mut got = Vec::new();
            client.read_to_end(&mut got).await.unwrap();
            client.close().await.unwrap();
            got
        };
        let down = async {
            let mut hello = [0u8; 5];
            conn.read_exact(&mut hello).await.unwrap();
            assert_eq!(&hello, b"hello");
            conn.write_all(&data).await.unwrap();
            conn.shutdown_write().await.unwrap();
            let mut rest = Vec::new();
            conn.read_to_end(&mut rest).await.unwrap();
            assert!(rest.is_empty() && conn.at_eof());
        };
        let (got, ()) = zip(up, down).await;
        assert!(got == data);
    });
}

/// The platform's roots load where the system has a store (Debian's
/// ca-certificates bundle), and their absence is an error, never a panic.
#[test]
fn platform_roots_load_or_say_why_not() {
    let store = Path::new("/etc/ssl/certs/ca-certificates.crt").exists();
    match tls::platform_roots() {
        Ok(roots) => assert!(!roots.is_empty()),
        Err(e) if store => panic!("the system has a store, yet: {e}"),
        Err(e) => assert_eq!(e.kind(), io::ErrorKind::NotFound, "{e}"),
    }
}

/// A client that connects and never starts its handshake costs `accept`
/// the handshake timeout, then the next client is served.
#[test]
fn a_silent_client_times_out_and_accept_goes_on() {
    run(async {
        let (server_config, client_config) = common::tls_configs(&["localhost"]);
        let mut listener = TlsListener::bind("127.0.0.1:0", server_config).unwrap();
        let zero = listener.set_handshake_timeout(Some(std::time::Duration::ZERO));
        assert_eq!(zero.unwrap_err().kind(), io::ErrorKind::InvalidInput);
        listener
            .set_handshake_timeout(Some(std::time::Duration::from_millis(50)))
            .unwrap();
        let _silent = std::net::TcpStream::connect(listener.local_addr()).unwrap();
        let err = listener.accept().await.unwrap_err();
        assert!(matches!(Event::from(err), Event::Timeout { .. }));
        let connecting = TlsStream::connect_to(listener.local_addr(), "localhost", client_config);
        let (client, accepted) = zip(connecting, listener.accept()).await;
        client.unwrap();
        accepted.unwrap();
    });
}
