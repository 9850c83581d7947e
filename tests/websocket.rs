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

#[test]
fn a_server_that_drops_after_the_close_handshake_closes_cleanly() {
    run(async {
        let (mut server, mut client) = pair().await;
        let serve = async move {
            while let Some(msg) = server.next().await {
                match msg.unwrap() {
                    msg @ Message::Text(_) => server.send(msg).await.unwrap(),
                    // tungstenite answers the close by itself; the next read
                    // ends the stream.
                    Message::Close(_) => {}
                    other => panic!("unexpected {other:?}"),
                }
            }
            // Dropped here: no flush, no close.
        };
        let talk = async move {
            client.send(Message::text("hai")).await.unwrap();
            let echo = client.next().await.unwrap().unwrap();
            assert_eq!(echo, Message::text("hai"));
            client.close(None).await.unwrap();
            let mut closes = 0;
            while let Some(msg) = client.next().await {
                match msg {
                    Ok(Message::Close(_)) => closes += 1,
                    other => panic!("not a clean close: {other:?}"),
                }
            }
            assert_eq!(closes, 1, "the server's close frame");
        };
        zip(serve, talk).await;
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
