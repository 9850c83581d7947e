//! Bad input: each gives a clear error (or a well-defined answer), never a
//! panic or a hang.

mod common;

use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::sync::{Arc, Mutex, mpsc};
use std::thread;
use std::time::Duration;

use futures_lite::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
use streamish::{
    AsyncInputStream, AsyncInputStreamExt, AsyncOutputStream, AsyncOutputStreamExt, AsyncStreamExt, Clock, Event,
    ReadData, TcpListener, TcpSocket, TcpStream, tcp_connect, tcp_server, with_event_loop,
};

use common::*;

fn invalid(res: io::Result<impl std::fmt::Debug>, says: &str) {
    let err = res.expect_err("bad input must be refused");
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{err}");
    assert!(
        err.to_string().contains(says),
        "the error should say {says:?}, it says {err:?}"
    );
}

// ---------------------------------------------------------------- addresses

#[test]
fn empty_host_is_invalid_input() {
    run(async {
        invalid(TcpStream::connect(("", 80)).await, "empty host");
        invalid(TcpStream::connect(("  ", 80)).await, "empty host");
        invalid(TcpStream::connect(("[]", 80)).await, "empty host");
        invalid(TcpStream::connect(":80").await, "empty host");
        invalid(TcpStream::connect("").await, "HOST:PORT");
        invalid(TcpStream::connect("localhost").await, "HOST:PORT");
        invalid(TcpStream::connect("localhost:http").await, "port");
        invalid(TcpStream::connect(Vec::new()).await, "no address");
    });
    invalid(tcp_connect("", 80).start().map(drop), "empty host");
    invalid(tcp_connect(" ", 80).start().map(drop), "empty host");
    // On the event loop, `spawn` refuses at once too: nothing is spawned.
    let res = with_event_loop(|| tcp_connect("", 80).spawn().map(drop));
    invalid(res, "empty host");
    let err = tcp_server("not an address", 0).start(drop).unwrap_err();
    assert!(matches!(Event::from(err), Event::Dns { .. }));
    invalid(tcp_server("", 0).start(drop).map(drop), "empty host");
}

#[test]
fn port_zero_connect_is_invalid_input() {
    run(async {
        invalid(TcpStream::connect("127.0.0.1:0").await, "port 0");
        invalid(TcpStream::connect(("::1", 0)).await, "port 0");
        invalid(TcpStream::connect(("localhost", 0)).await, "port 0");
    });
    invalid(tcp_connect("127.0.0.1", 0).start().map(drop), "port 0");
    invalid(tcp_connect("localhost", 0).start().map(drop), "port 0");
}

// ---------------------------------------------------------------- timeouts

#[test]
fn zero_timeouts_are_invalid_input() {
    let zero = Duration::ZERO;
    invalid(tcp_connect("127.0.0.1", 1).read_timeout(zero).start().map(drop), "zero");
    invalid(
        tcp_connect("127.0.0.1", 1).write_timeout(zero).start().map(drop),
        "zero",
    );
    invalid(
        tcp_connect("127.0.0.1", 1).connect_timeout(zero).start().map(drop),
        "zero",
    );
    invalid(
        tcp_server("127.0.0.1", 0).read_timeout(zero).start(drop).map(drop),
        "zero",
    );
    invalid(
        tcp_server("127.0.0.1", 0).write_timeout(zero).start(drop).map(drop),
        "zero",
    );
    // A later valid value does not hide the earlier mistake.
    invalid(
        tcp_connect("127.0.0.1", 1)
            .read_timeout(zero)
            .read_timeout(Duration::from_secs(1))
            .start()
            .map(drop),
        "zero",
    );
    // `None` is "no timeout", and is fine.
    assert!(tcp_connect("127.0.0.1", 1).read_timeout(None).start().is_ok());

    let server = TcpListener::bind("127.0.0.1:0").unwrap();
    let socket = run(TcpStream::connect(server.local_addr())).unwrap().into_socket();
    invalid(socket.set_timeouts(Some(zero), None), "zero");
    invalid(socket.set_timeouts(None, Some(zero)), "zero");
    assert_eq!(socket.timeouts(), (None, None), "a refused change changes nothing");
    invalid(socket.set_water_marks(0, 0), "water marks");
    invalid(socket.set_water_marks(10, 11), "water marks");
}

/// `Duration::MAX` is accepted and never fires: a reference connection
/// with a short read timeout fires first (awaited, not slept for), and by
/// then the connection whose clocks are all `Duration::MAX` has seen no
/// event; it then works normally.
#[test]
fn max_timeouts_accepted_never_fire() {
    let max = Duration::MAX;
    let server = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = server.local_addr().port();
    let events = Events::default();
    let reference = Events::default();
    let (ev, ev_check, rf) = (events.clone(), events.clone(), reference.clone());
    let accept = thread::spawn(move || {
        run(async {
            let mut peers = Vec::new();
            for _ in 0..2 {
                peers.push(server.accept().await.unwrap().0);
            }
            let mut got = Vec::new();
            for mut p in peers {
                let mut buf = Vec::new();
                p.read_to_end(&mut buf).await.unwrap();
                got.push(buf);
            }
            got.sort();
            got
        })
    });
    run_loop(move || -> io::Result<()> {
        let patient = tcp_connect("127.0.0.1", port)
            .read_timeout(max)
            .write_timeout(max)
            .connect_timeout(max)
            .event_cb(ev.cb())
            .spawn()?;
        patient.set_timeouts(Some(max), Some(max))?;
        assert_eq!(patient.timeouts(), (Some(max), Some(max)));
        tcp_connect("127.0.0.1", port)
            .read_timeout(Duration::from_millis(100))
            .event_cb(move |e| {
                assert!(matches!(e, Event::Timeout { clock: Clock::Read, .. }), "{e:?}");
                rf.push(e);
                // The short clock fired: the endless ones have not.
                assert_eq!(ev_check.len(), 0);
                patient.write(b"still fine").unwrap();
                patient.close();
            })
            .spawn()?;
        Ok(())
    })
    .unwrap();
    let got = join(accept);
    assert_eq!(got, vec![b"".to_vec(), b"still fine".to_vec()]);
    assert_eq!(reference.len(), 1);
    assert_eq!(events.names(), Vec::<&str>::new());
}

// ---------------------------------------------------------------- zero-length I/O

#[test]
fn zero_length_reads_and_writes() {
    let server = TcpListener::bind("127.0.0.1:0").unwrap();
    run(async {
        let mut s = TcpStream::connect(server.local_addr()).await.unwrap();
        let (mut peer, _) = server.accept().await.unwrap();
        // Reads into nothing answer 0 at once and are not end of file.
        assert_eq!(s.read(&mut []).await.unwrap(), 0);
        assert_eq!(s.read_sequence(&mut []).unwrap(), 0);
        assert_eq!(s.read_subsequence(&mut [0u8; 4], 2, Some(2)).unwrap(), 2);
        assert!(!s.at_eof() && !s.eof_seen());
        // Writes of nothing queue nothing and succeed.
        assert_eq!(s.write(&[]).await.unwrap(), 0);
        s.write_all(&[]).await.unwrap();
        s.write_sequence(&[]).unwrap();
        s.write_subsequence(b"abc", 1, Some(1)).unwrap();
        s.socket().write(b"").unwrap();
        s.socket().write_bytes(bytes::Bytes::new()).unwrap();
        s.write_bytes(Vec::new()).unwrap();
        assert_eq!(s.queued(), 0);
        s.flush().await.unwrap();
        s.finish_output().await.unwrap();
        assert_eq!(s.bytes_written(), 0);
        // Real data still flows, in order.
        s.write_all(b"after nothing").await.unwrap();
        s.close().await.unwrap();
        let mut got = Vec::new();
        peer.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"after nothing");
    });

    // The callback face: empty writes are no drain, so no write_cb.
    let server = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = server.local_addr().port();
    let drains = Counter::default();
    let (socket, driver) = tcp_connect("127.0.0.1", port)
        .data(Vec::new())
        .connect_cb(|s| {
            s.write(b"").unwrap();
            s.write_bytes(Vec::new()).unwrap();
            s.close();
        })
        .write_cb(drains.socket_cb())
        .start()
        .unwrap();
    socket.write(b"").unwrap();
    run(async {
        let peer = async {
            let (mut peer, _) = server.accept().await.unwrap();
            let mut got = Vec::new();
            peer.read_to_end(&mut got).await.unwrap();
            got
        };
        let (d, got) = futures_lite::future::zip(driver, peer).await;
        d.unwrap();
        assert!(got.is_empty());
    });
    assert_eq!(drains.get(), 0, "nothing was written, so nothing drained");
}

// ---------------------------------------------------------------- after end of file

#[test]
fn reading_after_eof() {
    let (listener, addr) = std_listener();
    let peer = thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        s.write_all(b"abc").unwrap();
        s.shutdown(Shutdown::Write).unwrap();
        let _ = s.read(&mut [0u8; 8]);
    });
    run(async {
        let mut s = TcpStream::connect(addr).await.unwrap();
        let mut got = Vec::new();
        s.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"abc");
        for _ in 0..3 {
            assert_eq!(s.read(&mut [0u8; 8]).await.unwrap(), 0, "EOF again, not an error");
            assert_eq!(s.read_sequence(&mut [0u8; 8]).unwrap(), 0);
            assert!(s.fill_buf().await.unwrap().is_empty());
            let err = s.read_byte().unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
            assert!(matches!(Event::from(err), Event::Eof { .. }));
            assert!(s.at_eof() && s.eof_seen());
        }
        // Half-closed: writing still works.
        s.write_all(b"bye").await.unwrap();
        s.close_stream().await.unwrap();
    });
    join(peer);
}

// ---------------------------------------------------------------- writing to a closed peer

// SIGPIPE is a Unix signal: Windows has none to raise.
#[cfg(unix)]
const SIGPIPE_CHILD: &str = "STREAMISH_BAD_INPUT_SIGPIPE_CHILD";

/// Writing after the peer closed is `BrokenPipe` or `ConnectionReset`, on
/// both faces, and never `SIGPIPE`. Rust programs ignore `SIGPIPE` before
/// `main`, which would hide a library that raises it, so the check runs in
/// a child process that restores the default action (death). See
/// `sigpipe_child`.
#[cfg(unix)]
#[test]
fn write_after_peer_closed_no_sigpipe() {
    run_child("sigpipe_child", SIGPIPE_CHILD);
}

#[cfg(unix)]
fn is_gone(kind: io::ErrorKind) -> bool {
    matches!(kind, io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset)
}

/// The child half of `write_after_peer_closed_no_sigpipe`: does nothing
/// unless run by it.
#[cfg(unix)]
#[test]
#[ignore = "helper: run in a child process by write_after_peer_closed_no_sigpipe"]
fn sigpipe_child() {
    if std::env::var_os(SIGPIPE_CHILD).is_none() {
        return;
    }
    // SAFETY: restoring a signal's default action at the start of the
    // process's only test.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };

    // The await face: every write path (queued, direct, flush, close).
    for direct in [false, true] {
        let server = TcpListener::bind("127.0.0.1:0").unwrap();
        run(async {
            let mut s = TcpStream::connect(server.local_addr()).await.unwrap();
            drop(server.accept().await.unwrap());
            let chunk = vec![1u8; if direct { 256 * 1024 } else { 100 }];
            let mut failed = None;
            for _ in 0..10_000 {
                let res = async {
                    s.write_all(&chunk).await?;
                    s.flush().await
                }
                .await;
                if let Err(e) = res {
                    failed = Some(e);
                    break;
                }
            }
            let err = failed.expect("writing to a closed peer must fail");
            assert!(is_gone(err.kind()), "{err:?}");
            assert!(matches!(
                Event::from(err),
                Event::BrokenPipe { .. } | Event::Reset { .. }
            ));
            // The failure is sticky, and reported again, not hidden.
            assert!(is_gone(s.write_sequence(b"x").unwrap_err().kind()));
            let _ = s.close_stream().await;
        });
    }

    // The callback face: reading paused (so the peer's EOF is not seen),
    // writing on each drain until the failure: exactly one event.
    let server = TcpListener::bind("127.0.0.1:0").unwrap();
    let events = Events::default();
    let writes = Counter::default();
    let write_more = {
        let writes = writes.clone();
        move |s: &TcpSocket| {
            if writes.bump() < 100_000 {
                let _ = s.write(&[2u8; 64 * 1024]);
            }
        }
    };
    let (socket, driver) = tcp_connect("127.0.0.1", server.local_addr().port())
        .connect_cb({
            let w = write_more.clone();
            move |s| {
                s.pause_reading();
                w(s)
            }
        })
        .write_cb(write_more)
        .event_cb(events.cb())
        .start()
        .unwrap();
    run(async {
        let closer = async {
            drop(server.accept().await.unwrap());
        };
        let (d, ()) = futures_lite::future::zip(driver, closer).await;
        d.unwrap();
    });
    let evs = events.take();
    assert_eq!(evs.len(), 1, "{evs:?}");
    assert!(is_gone(evs[0].kind()), "{:?}", evs[0]);
    assert!(socket.is_closed());
}

// ---------------------------------------------------------------- another thread

/// `TcpSocket` is `Send + Sync`: a plain thread writes to a socket whose
/// driver runs on an event loop on another thread, changes its settings
/// and closes it; every byte arrives in order.
#[test]
fn socket_used_from_another_thread() {
    const N: usize = 2000;
    const SIZE: usize = 1000;
    let (tx, rx) = mpsc::channel::<TcpSocket>();
    let echoed = Arc::new(Mutex::new(Vec::new()));
    let events = Events::default();
    let (ev, e2) = (events.clone(), echoed.clone());
    let writer = thread::spawn(move || {
        let socket = rx.recv_timeout(LIMIT).unwrap();
        socket.set_timeouts(Some(Duration::from_secs(30)), None).unwrap();
        socket.pause_reading();
        socket.resume_reading();
        for i in 0..N {
            socket.write(&pattern_at((i * SIZE) as u64, SIZE)).unwrap();
            if i % 100 == 0 {
                thread::yield_now();
            }
        }
    });
    run_loop(move || -> io::Result<()> {
        let server = tcp_server("127.0.0.1", 0)
            .read_cb(|s, d| s.write_bytes(d.into_bytes()).unwrap())
            .spawn()?;
        let socket = tcp_connect("127.0.0.1", server.local_addr().port())
            .stream(true)
            .read_cb(move |s, d| {
                let ReadData::Stream(stream) = d else { unreachable!() };
                let mut e = e2.lock().unwrap();
                let mut buf = vec![0u8; stream.buffered()];
                let n = stream.read_sequence(&mut buf).unwrap();
                e.extend_from_slice(&buf[..n]);
                if e.len() == N * SIZE {
                    s.close();
                    server.close();
                }
            })
            .event_cb(ev.cb())
            .spawn()?;
        tx.send(socket).unwrap();
        Ok(())
    })
    .unwrap();
    join(writer);
    let echoed = echoed.lock().unwrap();
    assert_eq!(echoed.len(), N * SIZE);
    assert!(is_pattern_at(0, &echoed));
    assert_eq!(events.names(), Vec::<&str>::new());
}

// ---------------------------------------------------------------- misuse of the loop

#[test]
fn loop_misuse_is_an_error() {
    // Outside a loop, `spawn` is an error, not a panic.
    assert!(tcp_connect("127.0.0.1", 1).spawn().is_err());
    assert!(tcp_server("127.0.0.1", 0).spawn().is_err());
    assert!(streamish::spawn(async { Ok(()) }).is_err());
    // Nested loops are refused.
    let inner = with_event_loop(|| io::Result::Ok(with_event_loop(|| ()).is_err())).unwrap();
    assert!(inner, "a nested with_event_loop must fail");
    // Exiting outside a loop does nothing.
    streamish::exit_event_loop();
}
