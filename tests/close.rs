//! Closing: close flushes and the peer sees EOF, abort sends nothing
//! queued, half-close keeps the read side, descriptors are released.

mod common;

use std::io;
use std::sync::{Arc, Mutex};

use futures_lite::future::{yield_now, zip};
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use streamish::{
    AsyncInputStream, AsyncOutputStream, AsyncOutputStreamExt, AsyncStream, AsyncStreamExt, Event, TcpSocket,
    tcp_connect, tcp_server,
};

use common::{Rng, Slot, assert_closed, events, log, pair, push, run, run_loop};

#[test]
fn close_flushes_queued_output_and_the_peer_sees_eof() {
    run(async {
        let (mut client, mut peer) = pair().await;
        let data = Rng::new(11).bytes(1 << 20);
        client.write_sequence(&data).unwrap();
        let mut got = Vec::new();
        let (closed, read) = zip(client.close_stream(), peer.read_to_end(&mut got)).await;
        closed.unwrap();
        read.unwrap();
        assert!(
            got == data,
            "the peer got {} of {} bytes, or other bytes",
            got.len(),
            data.len()
        );
        assert!(!client.is_open());
        assert_eq!(client.queued(), 0);
        assert_eq!(client.bytes_written(), data.len() as u64);
        assert!(peer.at_eof());
    });
}

#[test]
fn close_from_a_socket_handle_finishes_on_the_next_poll() {
    run(async {
        // TcpSocket::close returns at once; the next poll of a stream over
        // the socket (here: a read) sends what is queued, shuts down the
        // write side and releases the socket.
        let (mut client, mut peer) = pair().await;
        let socket: TcpSocket = client.socket().clone();
        socket.write(b"queued before close").unwrap();
        socket.close();
        assert!(socket.is_closed());
        assert!(!client.is_open());
        assert_closed(socket.write(b"x"), "TcpSocket::write after close");
        assert_closed(client.write_sequence(b"x"), "write_sequence after TcpSocket::close");
        let mut got = Vec::new();
        let mut buf = [0u8; 16];
        let (r, polled) = zip(peer.read_to_end(&mut got), client.read(&mut buf)).await;
        r.unwrap();
        assert_eq!(got, b"queued before close");
        assert_closed(polled, "a read on a stream whose socket was closed");
        assert!(!socket.is_connected());

        // With close_stream, the same.
        let (mut client, mut peer) = pair().await;
        client.socket().write(b"also queued").unwrap();
        client.socket().close();
        let mut got = Vec::new();
        let (c, r) = zip(client.close_stream(), peer.read_to_end(&mut got)).await;
        c.unwrap();
        r.unwrap();
        assert_eq!(got, b"also queued");
    });
}

#[test]
fn abort_does_not_send_queued_output() {
    run(async {
        let (mut client, mut peer) = pair().await;
        // Something the peer does receive first.
        client.write_sequence(b"sent").unwrap();
        client.finish_output().await.unwrap();
        let mut head = [0u8; 4];
        peer.read_exact(&mut head).await.unwrap();
        assert_eq!(&head, b"sent");

        let secret = vec![b'Q'; 100_000];
        client.write_sequence(&secret).unwrap();
        assert!(client.queued() <= secret.len());
        client.abort();
        assert!(!client.is_open());
        assert_eq!(client.queued(), 0);

        let mut got = Vec::new();
        match peer.read_to_end(&mut got).await {
            Ok(_) => {}
            Err(e) => assert_eq!(e.kind(), io::ErrorKind::ConnectionReset, "{e}"),
        }
        // What went straight to the kernel may arrive; nothing else does.
        assert!(
            got.iter().all(|&b| b == b'Q'),
            "the peer got {} other bytes after abort",
            got.len()
        );
    });
}

#[test]
fn abort_with_force_resets_the_peer() {
    run(async {
        let (client, mut peer) = pair().await;
        client.socket().write(&[b'Z'; 50_000]).unwrap();
        client.socket().close_force();
        assert!(client.socket().is_closed());
        let mut got = Vec::new();
        let res = peer.read_to_end(&mut got).await;
        assert!(
            matches!(&res, Err(e) if e.kind() == io::ErrorKind::ConnectionReset) || res.is_ok(),
            "{res:?}"
        );
        // A write may go straight to the kernel, and the send behind may
        // flush on async-io's thread before the abort: what arrives is
        // the written bytes, never anything else.
        assert!(got.iter().all(|&b| b == b'Z'), "the peer got other bytes");
    });
}

#[test]
fn abort_and_close_wake_pending_readers_and_writers() {
    run(async {
        // A reader waiting for input and a writer held back by a full
        // kernel, on two halves; aborting through a third handle ends both
        // with Closed rather than leaving them hanging.
        let (client, _peer) = pair().await;
        let socket = client.socket().clone();
        socket.set_water_marks(4096, 1024).unwrap();
        let (mut input, mut output) = client.split();
        let reader = async {
            let mut buf = [0u8; 64];
            input.read(&mut buf).await
        };
        let writer = async {
            let chunk = vec![0u8; 4096];
            for _ in 0..100_000 {
                output.write(&chunk).await?;
            }
            io::Result::<()>::Err(io::Error::other(
                "the peer never reads, yet the writer was never held back",
            ))
        };
        let abort = async {
            // Let the others reach their waits: the writer fills the kernel.
            for _ in 0..1000 {
                yield_now().await;
                if socket.queued() >= 1024 {
                    break;
                }
            }
            socket.close_force();
        };
        let ((r, w), ()) = zip(zip(reader, writer), abort).await;
        assert_closed(r, "pending read after abort");
        assert_closed(w, "held-back write after abort");

        // Graceful close from another handle also ends a pending read.
        let (client, mut peer) = pair().await;
        let (mut input, mut output) = client.split();
        let reader = async {
            let mut buf = [0u8; 64];
            input.read(&mut buf).await
        };
        let mut got = Vec::new();
        let (r, (c, p)) = zip(reader, zip(output.close_stream(), peer.read_to_end(&mut got))).await;
        c.unwrap();
        p.unwrap();
        assert_closed(r, "pending read after close_stream on the other half");
    });
}

#[test]
fn a_peer_reset_is_a_typed_error() {
    run(async {
        let (mut client, mut peer) = pair().await;
        peer.write_sequence(b"unread by the peer").unwrap();
        peer.finish_output().await.unwrap();
        peer.abort(); // RST
        let mut got = Vec::new();
        // Bytes sent before the reset may or may not be readable first; the
        // end is a reset, never a clean EOF.
        let err = client.read_to_end(&mut got).await.expect_err("a reset read as EOF");
        assert_eq!(err.kind(), io::ErrorKind::ConnectionReset, "{err}");
        assert!(matches!(Event::from(err), Event::Reset { .. }));
        // Writing to the reset connection fails too, with a typed error.
        client.write_sequence(b"anyone there?").ok();
        let err = client.finish_output().await.expect_err("the peer is gone");
        assert!(
            matches!(err.kind(), io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe),
            "{err}"
        );
        assert!(matches!(
            Event::from(err),
            Event::Reset { .. } | Event::BrokenPipe { .. }
        ));
        // And it stays failed; closing still works.
        assert!(client.write_sequence(b"x").is_err() || client.finish_output().await.is_err());
        client.close_stream().await.ok();
        assert!(!client.is_open());
    });
}

/// The descriptor is closed once a stream is closed, aborted or dropped.
#[cfg(target_os = "linux")]
#[test]
fn closing_releases_the_file_descriptor() {
    use std::os::fd::AsRawFd;
    use streamish::{TcpListener, TcpStream};
    run(async {
        for how in ["close_stream", "abort", "drop"] {
            let server = TcpListener::bind("127.0.0.1:0").unwrap();
            let std_stream = std::net::TcpStream::connect(server.local_addr()).unwrap();
            let fd = std_stream.as_raw_fd();
            let path = format!("/proc/self/fd/{fd}");
            // The socket's inode: a reused descriptor number names another.
            let before = std::fs::read_link(&path).unwrap();
            let mut stream = Some(TcpStream::try_from(std_stream).unwrap());
            let (mut peer, _) = server.accept().await.unwrap();
            match how {
                "close_stream" => stream.as_mut().unwrap().close_stream().await.unwrap(),
                "abort" => stream.as_mut().unwrap().abort(),
                _ => drop(stream.take()),
            }
            let after = std::fs::read_link(&path).ok();
            assert_ne!(after.as_ref(), Some(&before), "{how}: the descriptor is still open");
            let mut got = Vec::new();
            let res = peer.read_to_end(&mut got).await;
            assert!(got.is_empty());
            if how == "close_stream" {
                res.unwrap();
            }
        }
    });
}

#[test]
fn half_close_then_read_the_reply() {
    run(async {
        for how in ["shutdown_write", "AsyncWrite::close", "output half"] {
            let (client, mut peer) = pair().await;
            let request = format!("request via {how}");
            let serve = async {
                let mut got = Vec::new();
                peer.read_to_end(&mut got).await?; // ends at the client's FIN
                assert_eq!(got, request.as_bytes());
                peer.write_sequence(b"reply after your EOF: ")?;
                peer.write_all(&got).await?;
                peer.close_stream().await
            };
            let ask = async {
                let mut client = client;
                client.write_sequence(request.as_bytes())?;
                let mut reply = Vec::new();
                match how {
                    "shutdown_write" => client.shutdown_write().await?,
                    "AsyncWrite::close" => client.close().await?,
                    _ => {
                        let (mut input, mut output) = client.split();
                        output.shutdown_write().await?;
                        assert!(output.write_sequence(b"x").is_err());
                        input.read_to_end(&mut reply).await?;
                        return io::Result::Ok(reply);
                    }
                }
                assert_closed(client.write_sequence(b"x"), "write after half-close");
                assert!(client.is_open(), "a half-closed stream is still open for reading");
                client.read_to_end(&mut reply).await?;
                assert!(client.at_eof());
                Ok(reply)
            };
            let (s, a) = zip(serve, ask).await;
            s.unwrap();
            assert_eq!(
                a.unwrap(),
                format!("reply after your EOF: {request}").as_bytes(),
                "{how}"
            );
        }
    });
}

#[test]
fn half_open_connection_writes_after_eof_and_closes_once_shut() {
    // The client half-closes after its request; the server, half open,
    // answers after the client's end of file and then shuts down its write
    // side, which closes the connection (both directions done).
    let got = Arc::new(Mutex::new(Vec::new()));
    let log = log();
    let (g, l, l2) = (got.clone(), log.clone(), log.clone());
    run_loop(move || {
        let slot = Slot::default();
        let s2 = slot.clone();
        let server = tcp_server("127.0.0.1", 0)
            .allow_half_open(true)
            .event_cb(move |ev| {
                push(&l, format!("server {}", ev.name()));
                let sock = ev.socket().unwrap();
                assert!(sock.is_open(), "half open: still open after EOF");
                sock.write(b"late answer").unwrap();
                sock.shutdown_write();
                assert!(sock.write(b"x").is_err(), "writes after shutdown_write are refused");
                s2.0.get().unwrap().close();
            })
            .spawn()
            .unwrap();
        slot.fill(&server);
        let sock = tcp_connect("127.0.0.1", server.local_addr().port())
            .allow_half_open(true)
            .data("question")
            .read_cb(move |_, data| g.lock().unwrap().extend_from_slice(&data.into_bytes()))
            .event_cb(move |ev| push(&l2, format!("client {}", ev.name())))
            .spawn()
            .unwrap();
        sock.shutdown_write();
    })
    .unwrap();
    assert_eq!(got.lock().unwrap().as_slice(), b"late answer");
    assert_eq!(events(&log), ["server tcp-eof", "client tcp-eof"]);
}
