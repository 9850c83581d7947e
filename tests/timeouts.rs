//! Read, write and connect timeouts of callback connections: each fires
//! once on silence, never while bytes flow.

mod common;
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, mpsc};
use std::time::Duration;

use streamish::{Clock, Event, TcpServerHandle, tcp_connect, tcp_server};

use common::{Slot, events, log, push, run_loop};

#[test]
fn read_timeout_fires_once_on_silence() {
    let log = log();
    let l = log.clone();
    run_loop(move || {
        let server = tcp_server("127.0.0.1", 0).spawn().unwrap();
        let srv = server.clone();
        tcp_connect("127.0.0.1", server.local_addr().port())
            .read_timeout(Duration::from_millis(100))
            .event_cb(move |ev| {
                if let Event::Timeout { clock, socket } = &ev {
                    assert_eq!(*clock, Clock::Read);
                    assert!(socket.is_some());
                }
                push(&l, ev.name());
                srv.close();
            })
            .spawn()
            .unwrap();
    })
    .unwrap();
    assert_eq!(events(&log), ["tcp-timeout"]);
}

#[test]
fn read_timeout_does_not_fire_while_bytes_flow() {
    // 30 bytes 40 ms apart (1.2 s in all) against a 400 ms read clock: it
    // must restart on every read.
    let log = log();
    let l = log.clone();
    run_loop(move || {
        let server = tcp_server("127.0.0.1", 0)
            .connect_cb(|sock| {
                let sock = sock.clone();
                streamish::spawn(async move {
                    for _ in 0..30 {
                        async_io::Timer::after(Duration::from_millis(40)).await;
                        sock.write(b".")?;
                    }
                    sock.close();
                    Ok(())
                })
                .unwrap();
            })
            .spawn()
            .unwrap();
        let srv = server.clone();
        tcp_connect("127.0.0.1", server.local_addr().port())
            .read_timeout(Duration::from_millis(400))
            .event_cb(move |ev| {
                push(&l, ev.name());
                srv.close();
            })
            .spawn()
            .unwrap();
    })
    .unwrap();
    assert_eq!(events(&log), ["tcp-eof"]);
}

/// A read clock turned on after a long silence starts then, not at the
/// last read: set 200 ms into the silence with 100 ms, it must fire after a
/// 50 ms clock started at the same moment (a clock counted from the
/// connection's start would fire at once, first).
#[test]
fn a_clock_turned_on_later_starts_when_set() {
    let log = log();
    let (l1, l2) = (log.clone(), log.clone());
    run_loop(move || {
        let server = tcp_server("127.0.0.1", 0).spawn().unwrap();
        let port = server.local_addr().port();
        let fired = Arc::new(AtomicUsize::new(0));
        let close_after_two = move |srv: TcpServerHandle, fired: Arc<AtomicUsize>| {
            move || {
                if fired.fetch_add(1, Ordering::SeqCst) == 1 {
                    srv.close();
                }
            }
        };
        let done_late = close_after_two(server.clone(), fired.clone());
        let late = tcp_connect("127.0.0.1", port)
            .event_cb(move |ev| {
                push(&l1, format!("late:{}", ev.name()));
                done_late();
            })
            .spawn()
            .unwrap();
        let done_ref = close_after_two(server, fired);
        streamish::spawn(async move {
            async_io::Timer::after(Duration::from_millis(200)).await;
            late.set_timeouts(Some(Duration::from_millis(100)), None)?;
            tcp_connect("127.0.0.1", port)
                .read_timeout(Duration::from_millis(50))
                .event_cb(move |ev| {
                    push(&l2, format!("reference:{}", ev.name()));
                    done_ref();
                })
                .spawn()?;
            Ok(())
        })
        .unwrap();
    })
    .unwrap();
    assert_eq!(events(&log), ["reference:tcp-timeout", "late:tcp-timeout"]);
}

#[test]
fn set_timeouts_on_a_live_socket() {
    let log = log();
    let l = log.clone();
    run_loop(move || {
        let server = tcp_server("127.0.0.1", 0).spawn().unwrap();
        let srv = server.clone();
        tcp_connect("127.0.0.1", server.local_addr().port())
            .connect_cb(|sock| {
                assert_eq!(sock.timeouts(), (None, None));
                sock.set_timeouts(Some(Duration::from_millis(50)), None).unwrap();
            })
            .event_cb(move |ev| {
                push(&l, ev.to_string());
                srv.close();
            })
            .spawn()
            .unwrap();
    })
    .unwrap();
    assert_eq!(events(&log), ["tcp-timeout: read timeout"]);
}

#[test]
fn write_timeout_fires_when_output_stalls() {
    // A peer that accepts and never reads: the kernel buffers fill, then
    // nothing moves.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (keep_tx, keep_rx) = mpsc::channel();
    let peer = std::thread::spawn(move || {
        let (s, _) = listener.accept().unwrap();
        let _ = keep_rx.recv(); // hold the connection open, unread
        drop(s);
    });
    let log = log();
    let l = log.clone();
    run_loop(move || {
        tcp_connect("127.0.0.1", port)
            .write_timeout(Duration::from_millis(200))
            .connect_cb(|sock| sock.write_bytes(vec![0u8; 64 << 20]).unwrap())
            .event_cb(move |ev| {
                if let Event::Timeout { clock, .. } = &ev {
                    assert_eq!(*clock, Clock::Write);
                }
                push(&l, ev.name());
            })
            .spawn()
            .unwrap();
    })
    .unwrap();
    keep_tx.send(()).unwrap();
    peer.join().unwrap();
    assert_eq!(events(&log), ["tcp-timeout"]);
}

#[test]
fn write_timeout_does_not_fire_while_output_drains() {
    const TOTAL: usize = 32 << 20;
    let log = log();
    let got = Arc::new(AtomicUsize::new(0));
    let (l, g) = (log.clone(), got.clone());
    run_loop(move || {
        let slot = Slot::default();
        let server = tcp_server("127.0.0.1", 0)
            .read_cb(move |_, data| {
                g.fetch_add(data.into_bytes().len(), Ordering::SeqCst);
            })
            .event_cb(slot.close_on_eof())
            .spawn()
            .unwrap();
        slot.fill(&server);
        tcp_connect("127.0.0.1", server.local_addr().port())
            .write_timeout(Duration::from_secs(5))
            .connect_cb(|sock| {
                sock.write_bytes(vec![1u8; TOTAL]).unwrap();
                sock.close();
            })
            .event_cb(move |ev| push(&l, ev.name()))
            .spawn()
            .unwrap();
    })
    .unwrap();
    assert!(events(&log).is_empty(), "{:?}", events(&log));
    assert_eq!(got.load(Ordering::SeqCst), TOTAL);
}

#[test]
fn connect_timeout_fires_when_the_connection_cannot_complete() {
    // A listener that never accepts, with its backlog full: Linux drops
    // further SYNs, so a new connection can neither complete nor fail.
    let listener = streamish::TcpListener::bind_with_backlog("127.0.0.1:0", 0).unwrap();
    let addr = listener.local_addr();
    let mut fillers = Vec::new();
    for _ in 0..8 {
        if let Ok(s) = std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
            fillers.push(s);
        } else {
            break;
        }
    }
    let log = log();
    let l = log.clone();
    run_loop(move || {
        tcp_connect("127.0.0.1", addr.port())
            .connect_timeout(Duration::from_millis(200))
            .event_cb(move |ev| {
                if let Event::Timeout { clock, .. } = &ev {
                    assert_eq!(*clock, Clock::Connect);
                }
                push(&l, ev.name());
            })
            .spawn()
            .unwrap();
    })
    .unwrap();
    assert_eq!(events(&log), ["tcp-timeout"]);
    drop(fillers);
    drop(listener);
}
