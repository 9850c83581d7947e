//! The event loop: no busy task or connection starves the rest, an
//! unhandled error or a panicking callback ends it, `exit_event_loop`
//! stops it.

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use streamish::{Clock, Event, TcpSocket, tcp_connect, tcp_server, with_event_loop};

use common::run_loop;

/// A task that alone keeps the loop busy makes the loop poll the reactor
/// less often, never not at all: a timer and a round trip on the same loop
/// both complete while it spins. The spinner gives up after `LIMIT` turns,
/// so a loop that starved them fails the test rather than hanging it.
/// (It proves what a user sees, not who polled the reactor: async-io's
/// helper thread would also deliver the events of a loop that never
/// yielded, later.)
#[test]
fn a_lone_busy_task_does_not_starve_timers_or_io() {
    const LIMIT: usize = 20_000_000;
    let spins = Arc::new(AtomicUsize::new(0));
    let at_timer = Arc::new(AtomicUsize::new(usize::MAX));
    let at_pong = Arc::new(AtomicUsize::new(usize::MAX));
    let (s1, t1, p1) = (spins.clone(), at_timer.clone(), at_pong.clone());
    let (t2, p2) = (at_timer.clone(), at_pong.clone());
    run_loop(move || {
        let done = move || t1.load(Ordering::SeqCst) != usize::MAX && p1.load(Ordering::SeqCst) != usize::MAX;
        let spinner = {
            let (s, done) = (s1.clone(), done.clone());
            async move {
                while !done() && s.fetch_add(1, Ordering::SeqCst) < LIMIT {
                    futures_lite::future::yield_now().await;
                }
                Ok(())
            }
        };
        streamish::spawn(spinner).unwrap();
        let (s, t) = (s1.clone(), t2);
        streamish::spawn(async move {
            async_io::Timer::after(Duration::from_millis(5)).await;
            t.store(s.load(Ordering::SeqCst), Ordering::SeqCst);
            Ok(())
        })
        .unwrap();
        let server = tcp_server("127.0.0.1", 0)
            .read_cb(|sock, _| sock.write(b"pong").unwrap())
            .spawn()
            .unwrap();
        let (s, p, srv) = (s1.clone(), p2, server.clone());
        tcp_connect("127.0.0.1", server.local_addr().port())
            .connect_cb(|sock| sock.write(b"ping").unwrap())
            .read_cb(move |sock, _| {
                p.store(s.load(Ordering::SeqCst), Ordering::SeqCst);
                sock.close();
                srv.close();
            })
            .spawn()
            .unwrap();
    })
    .unwrap();
    assert!(
        at_timer.load(Ordering::SeqCst) < LIMIT,
        "the timer fired while the task spun"
    );
    assert!(
        at_pong.load(Ordering::SeqCst) < LIMIT,
        "the round trip completed while the task spun"
    );
    assert!(spins.load(Ordering::SeqCst) <= LIMIT + 1);
}

/// A connection that always has work must not keep the loop from its
/// reactor and timers: an idle connection's read clock fires while a bulk
/// transfer on the same loop runs flat out, and the transfer was moving
/// bytes all the while.
#[test]
fn a_busy_connection_does_not_starve_the_loop() {
    let sent = Arc::new(AtomicUsize::new(0));
    let at_timeout = Arc::new(AtomicUsize::new(usize::MAX));
    let (s2, t2, t3) = (sent.clone(), at_timeout.clone(), at_timeout.clone());
    run_loop(move || {
        let server = tcp_server("127.0.0.1", 0).read_cb(|_, _| {}).spawn().unwrap();
        let port = server.local_addr().port();
        let chunk = Bytes::from(vec![7u8; 64 * 1024]);
        let s3 = s2.clone();
        // Writes for as long as the idle connection's clock has not fired.
        let pump = move |sock: &TcpSocket| {
            if t2.load(Ordering::SeqCst) != usize::MAX {
                sock.close();
                return;
            }
            sock.write_bytes(chunk.clone()).unwrap();
            s3.fetch_add(chunk.len(), Ordering::SeqCst);
        };
        tcp_connect("127.0.0.1", port)
            .connect_cb(pump.clone())
            .write_cb(pump)
            .spawn()
            .unwrap();
        let s4 = s2.clone();
        tcp_connect("127.0.0.1", port)
            .read_timeout(Duration::from_millis(50))
            .event_cb(move |ev| {
                assert!(
                    matches!(ev, Event::Timeout { clock: Clock::Read, .. }),
                    "unexpected {ev:?}"
                );
                t3.store(s4.load(Ordering::SeqCst), Ordering::SeqCst);
                server.close();
            })
            .spawn()
            .unwrap();
    })
    .unwrap();
    let before = at_timeout.load(Ordering::SeqCst);
    assert_ne!(before, usize::MAX, "the read clock fired");
    assert!(
        before >= 4 << 16,
        "the bulk connection was busy when it fired ({before} bytes sent)"
    );
}

#[test]
fn unhandled_error_ends_the_event_loop_with_it() {
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let res = with_event_loop(|| tcp_connect("127.0.0.1", port).spawn().map(drop));
    let err = res.unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused);
}

#[test]
fn a_panicking_callback_aborts_its_connection_and_ends_the_loop() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let peer = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        s.write_all(b"boom").unwrap();
        let mut buf = Vec::new();
        // The connection is aborted: EOF or reset, never a hang.
        let _ = s.read_to_end(&mut buf);
    });
    let res = std::panic::catch_unwind(|| {
        with_event_loop(|| {
            tcp_connect("127.0.0.1", port)
                .read_cb(|_, _| panic!("callback bug"))
                .spawn()
                .unwrap();
        })
    });
    let payload = res.unwrap_err();
    assert_eq!(payload.downcast_ref::<&str>(), Some(&"callback bug"));
    peer.join().unwrap();
}
