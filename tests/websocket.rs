//! WebSocket over streamish with async-tungstenite: a server that returns
//! (drops its stream) right after its last write still delivers it.

mod common;

use async_tungstenite::tungstenite::{Error, Message};
use async_tungstenite::{WebSocketStream, accept_async, client_async};
use futures_lite::StreamExt;
use futures_lite::future::zip;
use streamish::{TcpListener, TcpStream};

use common::run;

/// A server's WebSocket (over a streamish stream) and a client's (over
/// async-net), handshakes done.
async fn pair() -> (WebSocketStream<TcpStream>, WebSocketStream<async_net::TcpStream>) {
    let server = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("ws://{}/", server.local_addr());
    let client = async_net::TcpStream::connect(server.local_addr()).await.unwrap();
    let accept = async { accept_async(server.accept().await.unwrap().0).await.unwrap() };
    let connect = async { client_async(url, client).await.unwrap().0 };
    zip(accept, connect).await
}

/// Echoes text and binary messages until the client closes; tungstenite
/// answers the close by itself. The stream is then dropped: no flush, no
/// close.
async fn echo<S: futures_lite::AsyncRead + futures_lite::AsyncWrite + Unpin>(mut server: WebSocketStream<S>) {
    while let Some(msg) = server.next().await {
        match msg.unwrap() {
            msg @ (Message::Text(_) | Message::Binary(_)) => server.send(msg).await.unwrap(),
            Message::Close(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
}

/// Sends `messages`, expects each echoed, closes, and expects exactly the
/// server's close frame, then a clean end.
async fn talk<S: futures_lite::AsyncRead + futures_lite::AsyncWrite + Unpin>(
    mut client: WebSocketStream<S>,
    messages: Vec<Message>,
) {
    for msg in messages {
        client.send(msg.clone()).await.unwrap();
        assert_eq!(client.next().await.unwrap().unwrap(), msg);
    }
    client.close(None).await.unwrap();
    let mut closes = 0;
    while let Some(msg) = client.next().await {
        match msg {
            Ok(Message::Close(_)) => closes += 1,
            other => panic!("not a clean close: {other:?}"),
        }
    }
    assert_eq!(closes, 1, "the server's close frame");
}

#[test]
fn a_server_that_drops_after_the_close_handshake_closes_cleanly() {
    run(async {
        let (server, client) = pair().await;
        zip(echo(server), talk(client, vec![Message::text("hai")])).await;
    });
}

/// The same over TLS, streamish on both ends: a dropped TLS stream says
/// `close_notify`, so the client's end is clean too.
#[cfg(feature = "tls")]
#[test]
fn an_echo_over_tls_closes_cleanly() {
    run(async {
        let (client, server) = common::tls_pair().await;
        let accept = async { accept_async(server).await.unwrap() };
        let connect = async { client_async("wss://localhost/", client).await.unwrap().0 };
        let (server, client) = zip(accept, connect).await;
        let big = Message::binary(common::pattern_at(0, 300_000));
        zip(echo(server), talk(client, vec![Message::text("hai"), big])).await;
    });
}

#[test]
fn a_message_sent_just_before_the_server_drops_arrives() {
    run(async {
        let (mut server, mut client) = pair().await;
        let serve = async move {
            server.send(Message::text("bye")).await.unwrap();
            // Dropped here, right after the send.
        };
        let listen = async move {
            let msg = client.next().await.unwrap().unwrap();
            assert_eq!(msg, Message::text("bye"));
            // No close frame followed: the end is reported, not hidden.
            match client.next().await {
                None | Some(Err(Error::Protocol(_))) | Some(Err(Error::ConnectionClosed)) => {}
                other => panic!("after the message: {other:?}"),
            }
        };
        zip(serve, listen).await;
    });
}
