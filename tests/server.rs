//! Callback-face servers: what one client's trouble does to the server,
//! and what `tcp_server` binds to.

mod common;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use futures_lite::{AsyncReadExt, AsyncWriteExt};
use streamish::{AsyncInputStream, AsyncStream, Event, ReadData, TcpStream, tcp_connect, tcp_server};

use common::{events, log, push, run_loop};

/// Connects, checks one echo, then leaves: with a reset if `abort`.
async fn echo_once(port: u16, msg: &[u8], abort: bool) -> std::io::Result<()> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).await?;
    s.write_all(msg).await?;
    s.flush().await?;
    let mut got = vec![0u8; msg.len()];
    s.read_exact(&mut got).await?;
    assert_eq!(got, msg);
    if abort {
        s.abort(); // the server reads a reset
    }
    Ok(())
}

#[test]
fn a_reset_client_does_not_end_a_server_without_event_cb() {
    run_loop(|| {
        let server = tcp_server("127.0.0.1", 0)
            .read_cb(|sock, data| {
                let _ = sock.write_bytes(data.into_bytes());
            })
            .spawn()?;
        let port = server.local_addr().port();
        streamish::spawn(async move {
            echo_once(port, b"first", true).await?;
            // The server is still there for the next client.
            echo_once(port, b"second", false).await?;
            server.close();
            Ok(())
        })
    })
    .expect("one client's reset ended the loop");
}

#[test]
fn a_server_event_cb_sees_each_client_error_once() {
    let resets = Arc::new(AtomicUsize::new(0));
    let seen = resets.clone();
    run_loop(move || {
        let server = tcp_server("127.0.0.1", 0)
            .read_cb(|sock, data| {
                let _ = sock.write_bytes(data.into_bytes());
            })
            .event_cb(move |ev| {
                if matches!(ev, Event::Reset { .. }) {
                    seen.fetch_add(1, Ordering::SeqCst);
                }
            })
            .spawn()?;
        let port = server.local_addr().port();
        streamish::spawn(async move {
            echo_once(port, b"one", true).await?;
            echo_once(port, b"two", true).await?;
            echo_once(port, b"three", false).await?;
            server.close();
            Ok(())
        })
    })
    .unwrap();
    assert_eq!(resets.load(Ordering::SeqCst), 2);
}

#[test]
fn tcp_server_binds_host_names_as_tcp_listener_does() {
    run_loop(|| {
        let server = tcp_server("localhost", 0)
            .read_cb(|sock, data| {
                let _ = sock.write_bytes(data.into_bytes());
            })
            .spawn()?;
        let addr = server.local_addr();
        assert!(addr.ip().is_loopback(), "{addr}");
        assert_ne!(addr.port(), 0);
        let literal = tcp_server("[::1]", 0).spawn();
        if let Ok(v6) = &literal {
            v6.close(); // where IPv6 is on, a bracketed literal binds too
        }
        let port = addr.port();
        let host = if addr.is_ipv6() { "::1" } else { "127.0.0.1" };
        streamish::spawn(async move {
            let mut s = TcpStream::connect((host, port)).await?;
            s.write_all(b"hai").await?;
            let mut got = [0u8; 3];
            s.read_exact(&mut got).await?;
            assert_eq!(&got, b"hai");
            server.close();
            Ok(())
        })
    })
    .unwrap();
}

/// cl-async: "server close": a closed server accepts no more connections;
/// one already open goes on.
#[test]
fn server_close_stops_accepting_and_lets_open_connections_finish() {
    let got = Arc::new(Mutex::new(Vec::new()));
    let log = log();
    let (g, l) = (got.clone(), log.clone());
    run_loop(move || {
        let server = tcp_server("127.0.0.1", 0)
            .read_cb(|sock, data| {
                sock.write_bytes(data.into_bytes()).unwrap();
            })
            .spawn()
            .unwrap();
        let port = server.local_addr().port();
        let srv = server.clone();
        tcp_connect("127.0.0.1", port)
            .connect_cb(move |sock| {
                // Connected: close the server, then talk on this connection.
                srv.close();
                assert!(srv.is_closed());
                sock.write(b"still here").unwrap();
            })
            .read_cb(move |sock, data| {
                g.lock().unwrap().extend_from_slice(&data.into_bytes());
                if g.lock().unwrap().len() == 10 {
                    sock.close();
                    let l = l.clone();
                    tcp_connect("127.0.0.1", port)
                        .event_cb(move |ev| push(&l, ev.name()))
                        .spawn()
                        .unwrap();
                }
            })
            .spawn()
            .unwrap();
    })
    .unwrap();
    assert_eq!(got.lock().unwrap().as_slice(), b"still here");
    assert_eq!(events(&log), ["tcp-refused"]);
}

/// cl-async: "server stream" ("HELLO!"): accepted sockets in stream mode.
#[test]
fn server_in_stream_mode_reads_through_the_stream() {
    let got = Arc::new(Mutex::new(Vec::new()));
    let g = got.clone();
    run_loop(move || {
        let server = tcp_server("127.0.0.1", 0)
            .stream(true)
            .read_cb(move |sock, data| {
                let ReadData::Stream(stream) = data else {
                    panic!("stream mode gives the stream")
                };
                let mut buf = [0u8; 64];
                let n = stream.read_sequence(&mut buf).unwrap();
                g.lock().unwrap().extend_from_slice(&buf[..n]);
                if g.lock().unwrap().as_slice() == b"HELLO!" {
                    sock.close();
                }
            })
            .spawn()
            .unwrap();
        let srv = server.clone();
        tcp_connect("127.0.0.1", server.local_addr().port())
            .data("HELLO!")
            .event_cb(move |ev| {
                assert!(matches!(ev, Event::Eof { .. }), "{ev:?}");
                srv.close();
            })
            .spawn()
            .unwrap();
    })
    .unwrap();
    assert_eq!(got.lock().unwrap().as_slice(), b"HELLO!");
}

/// cl-async: "address in use": an error at once, not an event.
#[test]
fn server_address_in_use_fails_at_once() {
    run_loop(move || {
        let first = tcp_server("127.0.0.1", 0).spawn().unwrap();
        let err = tcp_server("127.0.0.1", first.local_addr().port()).spawn().unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::AddrInUse);
        assert!(matches!(Event::from(err), Event::AddressInUse { .. }));
        first.close();
    })
    .unwrap();
}
