//! One HTTP/1.0 client and server, written once against the stream traits,
//! over every kind of stream streamish has: TCP, Unix-domain (a cl-async
//! pipe), TLS (with `--features tls`) and in memory.
//!
//! ```text
//! cargo run --example any_stream
//! cargo run --example any_stream --features tls
//! ```
//!
//! Each line it prints is one exchange: the transport and the status and
//! body the client got. It exits 1 with the error if an exchange fails.

use std::io;
use std::process::ExitCode;

use futures_lite::future::{block_on, zip};
use streamish::prelude::*;
use streamish::{AsyncIoStream, TcpListener, TcpStream};

/// The client: a GET written without a flush, then the whole response.
/// `S` may be `dyn AsyncIoStream`: generic code and trait objects alike.
async fn get<S: AsyncIoStream + ?Sized>(stream: &mut S, path: &str) -> io::Result<String> {
    stream
        .write_all(format!("GET {path} HTTP/1.0\r\n\r\n").as_bytes())
        .await?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await?;
    Ok(response.replace("\r\n", " "))
}

/// The server: reads the request head, answers, closes (HTTP/1.0's end of
/// body).
async fn serve<S: AsyncIoStream + ?Sized>(stream: &mut S) -> io::Result<()> {
    let mut line = String::new();
    stream.read_line(&mut line).await?;
    let path = line.split(' ').nth(1).unwrap_or("/").to_owned();
    while !matches!(line.as_str(), "\r\n" | "") {
        line.clear();
        stream.read_line(&mut line).await?;
    }
    stream.write_sequence(format!("HTTP/1.0 200 OK\r\n\r\nhello from {path}").as_bytes())?;
    stream.close_stream().await
}

/// One exchange over a connected pair: the client as a trait object.
async fn exchange(
    name: &str,
    mut client: Box<dyn AsyncIoStream + Send>,
    mut server: impl AsyncIoStream,
) -> io::Result<()> {
    let (got, served) = zip(get(&mut *client, &format!("/{name}")), serve(&mut server)).await;
    served?;
    println!("{name:>6}: {}", got?);
    Ok(())
}

async fn tcp() -> io::Result<()> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let (client, accepted) = zip(TcpStream::connect(listener.local_addr()), listener.accept()).await;
    exchange("tcp", Box::new(client?), accepted?.0).await
}

#[cfg(unix)]
async fn unix() -> io::Result<()> {
    let (client, server) = streamish::UnixStream::pair()?;
    exchange("unix", Box::new(client), server).await
}

#[cfg(feature = "tls")]
async fn tls() -> io::Result<()> {
    use streamish::tls::{self, TlsListener, TlsStream};
    // A self-signed certificate for "localhost", trusted by the client alone.
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).map_err(io::Error::other)?;
    let der = cert.cert.der().clone();
    let mut roots = tls::rustls::RootCertStore::empty();
    roots.add(der.clone()).map_err(io::Error::other)?;
    let key = tls::rustls::pki_types::PrivatePkcs8KeyDer::from(cert.key_pair.serialize_der()).into();
    let listener = TlsListener::bind("127.0.0.1:0", tls::server_config(vec![der], key)?)?;
    let connecting = TlsStream::connect_to(listener.local_addr(), "localhost", tls::client_config(roots));
    let (client, accepted) = zip(connecting, listener.accept()).await;
    exchange("tls", Box::new(client?), accepted?.0).await
}

async fn memory() -> io::Result<()> {
    let (client, server) = streamish::duplex(4096);
    exchange("memory", Box::new(client), server).await
}

fn main() -> ExitCode {
    let run = async {
        tcp().await?;
        #[cfg(unix)]
        unix().await?;
        #[cfg(feature = "tls")]
        tls().await?;
        memory().await
    };
    match block_on(run) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("any_stream: {e}");
            ExitCode::FAILURE
        }
    }
}
