//! Shared handles: a close from any handle, a dropped driver, operations
//! after a close, and the bound on queued output.

mod common;

use std::io::{self, Read, Write};
use std::sync::{Arc, Mutex};

use common::{Events, fd_checked, join, run, run_loop, std_listener};
use std::future::Future;

use futures_lite::future::zip;
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use streamish::{Event, TcpListener, TcpStream, tcp_connect, tcp_server};

/// A std peer that reads to end of file.
fn reading_peer(listener: std::net::TcpListener) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let mut got = Vec::new();
        let _ = s.read_to_end(&mut got);
        got
    })
}

#[test]
fn close_from_another_thread_sends_queued_bytes_and_wakes_a_reader() {
    fd_checked(|| {
        let (listener, addr) = std_listener();
        let peer = reading_peer(listener);
        let s = run(TcpStream::connect(addr)).unwrap();
        let socket = s.socket().clone();
        let (waiting, wait) = std::sync::mpsc::channel();
        // The reader runs on an executor that leaves the reactor to
        // async-io's thread, as tokio's or smol's multi-threaded ones do.
        let reader = std::thread::spawn(move || {
            let mut s = s;
            futures_lite::future::block_on(async move {
                let mut buf = [0u8; 8];
                // The peer never writes: only the close can end this read.
                let mut read = s.read(&mut buf);
                assert!(futures_lite::future::poll_once(&mut read).await.is_none());
                waiting.send(()).unwrap();
                read.await.map_err(Event::from)
            })
        });
        wait.recv().unwrap();
        socket.write(b"bye").unwrap();
        socket.close();
        let res = join(reader);
        assert!(
            matches!(res, Err(Event::Closed { .. }) | Ok(0)),
            "the read ended with {res:?}"
        );
        assert_eq!(join(peer), b"bye");
    })
}

#[test]
fn a_dropped_driver_closes_its_connection_and_later_writes_fail() {
    fd_checked(|| {
        let (listener, addr) = std_listener();
        let peer = reading_peer(listener);
        let (socket, driver) = tcp_connect("127.0.0.1", addr.port()).data("first").start().unwrap();
        run(async {
            let mut driver = Box::pin(driver);
            // Drive it until connected, then drop it (its task canceled).
            futures_lite::future::poll_fn(|cx| {
                assert!(driver.as_mut().poll(cx).is_pending());
                match socket.is_connected() {
                    true => std::task::Poll::Ready(()),
                    false => std::task::Poll::Pending,
                }
            })
            .await;
        });
        let err = socket.write(b"after").unwrap_err();
        assert!(matches!(Event::from(err), Event::Closed { .. }));
        assert!(!socket.is_open());
        drop(socket);
        assert_eq!(join(peer), b"first");
    })
}

#[test]
fn after_a_close_async_write_close_and_shutdown_write_fail_with_closed() {
    let _fds = common::fd_lock();
    run(async {
        let server = TcpListener::bind("127.0.0.1:0").unwrap();
        let (client, _peer) = zip(TcpStream::connect(server.local_addr()), server.accept()).await;
        let mut client = client.unwrap();
        streamish::AsyncStreamExt::close_stream(&mut client).await.unwrap();
        let closed = |r: io::Result<()>| matches!(r.map_err(Event::from), Err(Event::Closed { .. }));
        assert!(closed(client.close().await), "AsyncWrite::close after a close");
        assert!(closed(client.shutdown_write().await), "shutdown_write after a close");
        assert!(closed(client.flush().await), "flush after a close");
        // Closing again is harmless.
        streamish::AsyncStreamExt::close_stream(&mut client).await.unwrap();
    })
}

#[test]
fn an_echo_server_against_a_client_that_never_reads_fails_with_queue_full() {
    const BOUND: usize = 1 << 20;
    let _fds = common::fd_lock();
    let events = Events::default();
    let most = Arc::new(Mutex::new(0usize));
    let (ev, m) = (events.cb(), most.clone());
    let (tx, rx) = std::sync::mpsc::channel();
    let server_loop = std::thread::spawn(move || {
        run_loop(move || {
            let server = tcp_server("127.0.0.1", 0)
                .max_queued(BOUND)
                .read_cb(move |sock, data| {
                    let _ = sock.write_bytes(data.into_bytes());
                    let mut most = m.lock().unwrap();
                    *most = (*most).max(sock.queued());
                })
                .event_cb(move |e| {
                    ev(e);
                    streamish::exit_event_loop();
                })
                .spawn()
                .unwrap();
            tx.send(server.local_addr()).unwrap();
        })
    });
    let addr = rx.recv().unwrap();
    let mut client = std::net::TcpStream::connect(addr).unwrap();
    // Sends far more than the bound and never reads; stops when the server
    // gives up on it.
    let chunk = vec![5u8; 64 * 1024];
    for _ in 0..(64 * BOUND / chunk.len()) {
        if client.write_all(&chunk).is_err() {
            break;
        }
        if events.len() > 0 {
            break;
        }
    }
    drop(client);
    join(server_loop).unwrap();
    assert!(
        events.names().contains(&"streamish-queue-full"),
        "events: {:?}",
        events.names()
    );
    assert!(*most.lock().unwrap() <= BOUND, "queued {} bytes", most.lock().unwrap());
}

#[test]
fn write_past_the_bound_fails_and_a_zero_bound_is_refused() {
    let _fds = common::fd_lock();
    run(async {
        let server = TcpListener::bind("127.0.0.1:0").unwrap();
        let (client, _peer) = zip(TcpStream::connect(server.local_addr()), server.accept()).await;
        let socket = client.unwrap().into_socket();
        assert!(socket.set_max_queued(0).is_err());
        socket.set_max_queued(10).unwrap();
        let err = socket.write(&[0u8; 11]).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::OutOfMemory);
        assert!(matches!(
            Event::from(socket.write(b"x").unwrap_err()),
            Event::QueueFull { .. }
        ));
    })
}

/// Drops a connection with 32 MiB queued and a write timeout of 50 ms,
/// its peer reading `then_read` bytes after the drop and nothing more:
/// the descriptor must be released once the linger runs out. Linux only:
/// the release is seen in the descriptor count (`/proc`).
#[cfg(target_os = "linux")]
fn gives_up_after_the_linger(then_read: usize) {
    let _fds = common::fd_lock();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (accepted, accept) = std::sync::mpsc::channel();
    let (dropped, drop_seen) = std::sync::mpsc::channel::<()>();
    let (release, released) = std::sync::mpsc::channel::<()>();
    let peer = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        accepted.send(()).unwrap();
        drop_seen.recv().unwrap();
        let mut buf = vec![0u8; then_read];
        s.read_exact(&mut buf).unwrap();
        let _ = released.recv();
        drop(s);
    });
    let open = run(async move {
        let s = TcpStream::connect(addr).await.unwrap();
        accept.recv().unwrap();
        let open = common::open_fds();
        s.socket()
            .set_timeouts(None, Some(std::time::Duration::from_millis(50)))
            .unwrap();
        s.socket().write(&vec![9u8; 32 << 20]).unwrap(); // far more than the kernel holds
        drop(s);
        open
    });
    dropped.send(()).unwrap();
    // The descriptor is released once the linger (the write timeout) runs
    // out; nothing can be awaited for that, so look, boundedly.
    let mut left = open;
    for _ in 0..2_000 {
        left = common::open_fds();
        if left < open {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    release.send(()).unwrap();
    peer.join().unwrap();
    assert!(left < open, "the dropped connection still holds its descriptor");
}

#[cfg(target_os = "linux")]
#[test]
fn a_dropped_connection_whose_peer_never_reads_gives_up_after_the_write_timeout() {
    gives_up_after_the_linger(0);
}

/// The peer's read makes room, so the send behind runs again after the
/// drop; the linger still bounds the delivery.
#[cfg(target_os = "linux")]
#[test]
fn a_dropped_connection_whose_peer_stops_reading_gives_up_after_the_write_timeout() {
    gives_up_after_the_linger(4 << 20);
}
