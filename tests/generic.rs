//! One HTTP/1.0 exchange written once against the stream traits, run over
//! every kind of stream: TCP, Unix-domain, TLS and in memory, each as a
//! trait object and as a concrete type.

mod common;

use std::io;

use futures_lite::future::zip;
use streamish::prelude::*;
use streamish::{AsyncIoStream, TcpListener, TcpStream};

use common::run;

/// A client's GET: the request without a flush, then the whole response.
/// `S` may be `dyn AsyncIoStream` as well as a concrete stream.
async fn get<S: AsyncIoStream + ?Sized>(stream: &mut S, path: &str) -> io::Result<(String, String)> {
    stream
        .write_all(format!("GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").as_bytes())
        .await?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await?;
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let status = head.lines().next().unwrap_or_default().to_owned();
    Ok((status, body.to_owned()))
}

/// A server's answer to one request: the path, echoed in the body, then
/// a graceful close (HTTP/1.0 ends the body at end of file).
async fn serve<S: AsyncIoStream + ?Sized>(stream: &mut S) -> io::Result<()> {
    let mut line = String::new();
    stream.read_line(&mut line).await?;
    let path = line.split(' ').nth(1).unwrap_or("/").to_owned();
    loop {
        line.clear();
        if stream.read_line(&mut line).await? == 0 || line == "\r\n" {
            break;
        }
    }
    stream.write_sequence(format!("HTTP/1.0 200 OK\r\n\r\nyou asked for {path}").as_bytes())?;
    stream.close_stream().await
}

/// Runs the exchange over one connected pair, once with the client as a
/// trait object and the server concrete, so both forms are exercised.
async fn exchange<C, S>(mut client: C, mut server: S, path: &str)
where
    C: AsyncIoStream + Send + 'static,
    S: AsyncIoStream,
{
    let client: &mut (dyn AsyncIoStream + Send) = &mut client;
    let (got, served) = zip(get(client, path), serve(&mut server)).await;
    served.unwrap();
    let (status, body) = got.unwrap();
    assert_eq!(status, "HTTP/1.0 200 OK");
    assert_eq!(body, format!("you asked for {path}"));
}

async fn tcp() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let (client, accepted) = zip(TcpStream::connect(listener.local_addr()), listener.accept()).await;
    exchange(client.unwrap(), accepted.unwrap().0, "/tcp").await;
}

#[cfg(unix)]
async fn unix() {
    let dir = common::TempDir::new("generic");
    let path = dir.path().join("http.sock");
    let listener = streamish::UnixListener::bind(&path).unwrap();
    let (client, accepted) = zip(streamish::UnixStream::connect(&path), listener.accept()).await;
    exchange(client.unwrap(), accepted.unwrap().0, "/unix").await;
}

#[cfg(feature = "tls")]
async fn tls() {
    let (client, server) = common::tls_pair().await;
    exchange(client, server, "/tls").await;
}

async fn in_memory() {
    let (client, server) = streamish::duplex(64);
    exchange(client, server, "/duplex").await;
}

/// The same two functions over TCP, Unix-domain, TLS (with the `tls`
/// feature) and in-memory streams.
#[test]
fn the_same_code_over_every_stream() {
    run(async {
        tcp().await;
        #[cfg(unix)]
        unix().await;
        #[cfg(feature = "tls")]
        tls().await;
        in_memory().await;
    });
}
