//! hyper's HTTP/1 client and server over streamish's streams, through
//! smol-hyper's futures-io adapter: a consumer nobody here wrote, on TCP,
//! Unix-domain and TLS streams alike.

mod common;

use std::convert::Infallible;

use futures_lite::future::zip;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use smol_hyper::rt::FuturesIo;
use streamish::{AsyncIoStream, TcpListener, TcpStream};

use common::run;

async fn hello(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    Ok(Response::new(Full::new(Bytes::from(format!(
        "hello from {}",
        req.uri().path()
    )))))
}

/// One request from hyper's client to hyper's server over a connected
/// pair; returns the response body.
async fn get<C, S>(client: C, server: S, path: &str) -> String
where
    C: AsyncIoStream + Send + 'static,
    S: AsyncIoStream + Send + 'static,
{
    let serving = hyper::server::conn::http1::Builder::new()
        .serve_connection(FuturesIo::new(server), hyper::service::service_fn(hello));
    let (mut sender, conn) = hyper::client::conn::http1::handshake(FuturesIo::new(client))
        .await
        .unwrap();
    let req = Request::get(path)
        .header("host", "x")
        .body(Empty::<Bytes>::new())
        .unwrap();
    let asking = async {
        let res = sender.send_request(req).await.unwrap();
        assert_eq!(res.status(), 200);
        let body = res.into_body().collect().await.unwrap().to_bytes();
        drop(sender); // the client is done: its connection ends
        String::from_utf8(body.to_vec()).unwrap()
    };
    let (body, (served, conn)) = zip(asking, zip(serving, conn)).await;
    served.unwrap();
    conn.unwrap();
    body
}

#[test]
fn over_tcp() {
    run(async {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let (client, accepted) = zip(TcpStream::connect(listener.local_addr()), listener.accept()).await;
        assert_eq!(
            get(client.unwrap(), accepted.unwrap().0, "/tcp").await,
            "hello from /tcp"
        );
    });
}

#[cfg(unix)]
#[test]
fn over_a_unix_socket() {
    run(async {
        let (client, server) = streamish::UnixStream::pair().unwrap();
        assert_eq!(get(client, server, "/unix").await, "hello from /unix");
    });
}

#[test]
fn in_memory() {
    run(async {
        let (client, server) = streamish::duplex(1024);
        assert_eq!(get(client, server, "/duplex").await, "hello from /duplex");
    });
}

#[cfg(feature = "tls")]
#[test]
fn over_tls() {
    run(async {
        let (client, server) = common::tls_pair().await;
        assert_eq!(get(client, server, "/tls").await, "hello from /tls");
    });
}
