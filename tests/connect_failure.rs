//! A failed callback-face connect tells the await side why: operations on
//! its stream or socket fail with the connect's event, not `Closed`.

mod common;

use std::io;
use std::net::TcpListener;

use futures_lite::AsyncReadExt;
use streamish::{AsyncInputStream, Event, TcpStream, tcp_connect};

use common::run_loop;

fn refused_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[test]
fn a_refused_connect_fails_the_streams_operations_with_refused() {
    let port = refused_port();
    let (stream, awaited) = run_loop(move || {
        let stream = tcp_connect("127.0.0.1", port).event_cb(drop).spawn_stream()?;
        // A read awaited while it connects learns why it failed.
        let mut reader = TcpStream::new(stream.socket().clone());
        let (tx, rx) = std::sync::mpsc::channel();
        streamish::spawn(async move {
            let mut buf = [0u8; 16];
            tx.send(reader.read(&mut buf).await.unwrap_err()).unwrap();
            Ok(())
        })?;
        Ok((stream, rx))
    })
    .unwrap();
    let awaited = awaited.recv().unwrap();
    assert!(matches!(Event::from(awaited), Event::Refused { .. }));
    let mut stream = stream;
    let err = stream.read_sequence(&mut [0u8; 16]).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused, "{err}");
    let err = stream.socket().write(b"late").unwrap_err();
    assert!(matches!(Event::from(err), Event::Refused { .. }));
    let err = stream.socket().peer_addr().unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused, "{err}");
}

#[test]
fn an_unresolvable_connect_fails_the_streams_operations_with_dns() {
    let stream = run_loop(|| tcp_connect("nonexistent.invalid", 80).event_cb(drop).spawn_stream()).unwrap();
    let mut stream = stream;
    let err = stream.read_sequence(&mut [0u8; 16]).unwrap_err();
    assert!(matches!(Event::from(err), Event::Dns { .. }));
}
