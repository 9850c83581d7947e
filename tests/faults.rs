//! Faults, through both faces: each failure is reported once, as the right
//! kind, with no panic, and every descriptor is given back.
//!
//! Descriptor accounting: every test here runs inside `fd_checked`, which
//! holds one process-wide lock for the whole test (tests of one binary run
//! on parallel threads and share the descriptor table), counts
//! `/proc/self/fd` before and after (on Linux), and fails on any
//! difference. The tests of this file therefore run one after the other;
//! each is short.
//!
//! Timeouts under test are short (100 ms) and only *that* they fire, and
//! which clock, is asserted, never how long they took.

mod common;

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::sync::{Arc, Mutex, mpsc};
use std::thread;
use std::time::Duration;

use async_io::Timer;
use futures_lite::future::poll_once;
use futures_lite::{AsyncReadExt, AsyncWriteExt, FutureExt};
use streamish::{
    AsyncInputStream, AsyncOutputStream, AsyncStream, AsyncStreamExt, Clock, Event, ReadData, TcpConnect, TcpListener,
    TcpSocket, TcpStream, tcp_connect, tcp_server,
};

use common::*;

const MIB: usize = 1024 * 1024;
const SHORT: Duration = Duration::from_millis(100);

/// Reads `s` until end of file or an error; returns what it read and the
/// error's kind.
fn read_all(mut s: std::net::TcpStream) -> (Vec<u8>, Option<io::ErrorKind>) {
    let mut got = Vec::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return (got, None),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return (got, Some(e.kind())),
        }
    }
}

/// What a peer read, and the error that ended it (none for end of file).
type PeerRead = thread::JoinHandle<(Vec<u8>, Option<io::ErrorKind>)>;

/// A std peer that accepts one connection and reads it to its end.
fn reading_peer(listener: std::net::TcpListener) -> PeerRead {
    thread::spawn(move || read_all(listener.accept().unwrap().0))
}

/// A std peer that accepts one connection, holds it without reading until
/// told to go, then reads it to its end.
fn held_peer(listener: std::net::TcpListener) -> (mpsc::Sender<()>, PeerRead) {
    let (go, rx) = mpsc::channel::<()>();
    let h = thread::spawn(move || {
        let (s, _) = listener.accept().unwrap();
        let _ = rx.recv_timeout(LIMIT);
        read_all(s)
    });
    (go, h)
}

/// A peer that sends `len` pattern bytes, then resets the connection
/// (SO_LINGER 0): whatever is still in its send buffer is dropped, and the
/// receiver sees RST, not FIN, while the transfer is still arriving.
fn resetting_peer(listener: std::net::TcpListener, len: usize) -> thread::JoinHandle<()> {
    thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let _ = s.write_all(&pattern_at(0, len));
        set_linger_zero(&s);
        drop(s);
    })
}

/// A peer that sends `len` pattern bytes and closes gracefully.
fn sending_peer(listener: std::net::TcpListener, len: usize) -> thread::JoinHandle<()> {
    thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        s.write_all(&pattern_at(0, len)).unwrap();
        s.shutdown(Shutdown::Write).unwrap();
        // Wait for the other side to finish, so closing never resets.
        let _ = s.read(&mut [0u8; 64]);
    })
}

fn one_event(events: &Events) -> Event {
    let mut evs = events.take();
    assert_eq!(
        evs.len(),
        1,
        "expected exactly one event, got {:?}",
        evs.iter().map(Event::name).collect::<Vec<_>>()
    );
    evs.pop().unwrap()
}

fn assert_closed(res: io::Result<impl std::fmt::Debug>) {
    let err = res.expect_err("operation on a closed stream must fail");
    assert_eq!(err.kind(), io::ErrorKind::NotConnected, "{err}");
    assert!(matches!(Event::from(err), Event::Closed { .. }));
}

/// The two faces a failure is checked on.
#[derive(Clone, Copy, Debug)]
enum Face {
    Await,
    Callback,
}

/// Two tests from one scenario: `$on_await` runs `$scenario(Face::Await)`,
/// `$on_callback` runs `$scenario(Face::Callback)`.
macro_rules! twins {
    ($scenario:ident: $on_await:ident, $on_callback:ident) => {
        #[test]
        fn $on_await() {
            $scenario(Face::Await);
        }

        #[test]
        fn $on_callback() {
            $scenario(Face::Callback);
        }
    };
}

/// Connects to `addr` on an event loop, set up by `with`, and returns the
/// events reported once the loop has ended; its socket is closed by then.
fn on_loop(addr: SocketAddr, with: impl FnOnce(TcpConnect) -> TcpConnect + Send + 'static) -> Events {
    let events = Events::default();
    let ev = events.clone();
    let socket = run_loop(move || with(tcp_connect("127.0.0.1", addr.port())).event_cb(ev.cb()).spawn()).unwrap();
    assert!(socket.is_closed(), "the socket is closed once its loop has ended");
    events
}

/// Races `fut` with a `SHORT` timer that fails it with `TimedOut`.
async fn or_timeout<T>(fut: impl std::future::Future<Output = io::Result<T>>) -> io::Result<T> {
    fut.or(async {
        Timer::after(SHORT).await;
        Err(io::ErrorKind::TimedOut.into())
    })
    .await
}

/// Connects to `host:port`, which must fail, on `face`, and returns what
/// the failure reports. The await face checks the error's kind; the
/// callback face that exactly one event came, that its socket is closed
/// and that `connect_cb` never ran.
fn failed_connect(face: Face, host: &'static str, port: u16, kind: io::ErrorKind) -> Event {
    match face {
        Face::Await => {
            let err = run(TcpStream::connect((host, port))).unwrap_err();
            assert_eq!(err.kind(), kind, "{err}");
            Event::from(err)
        }
        Face::Callback => {
            let events = Events::default();
            let connected = Counter::default();
            let (ev, c) = (events.clone(), connected.clone());
            run_loop(move || {
                tcp_connect(host, port)
                    .data("never sent")
                    .connect_cb(c.socket_cb())
                    .event_cb(ev.cb())
                    .spawn()
                    .map(drop)
            })
            .unwrap();
            let ev = one_event(&events);
            let socket = ev.socket().expect("the event carries the socket");
            assert!(socket.is_closed(), "after an error event the socket is closed");
            assert_eq!(connected.get(), 0);
            ev
        }
    }
}

fn refused(face: Face) {
    fd_checked(|| {
        let port = refused_port();
        let ev = failed_connect(face, "127.0.0.1", port, io::ErrorKind::ConnectionRefused);
        assert!(matches!(ev, Event::Refused { .. }), "{ev:?}");
        assert!(
            ev.to_string().contains(&port.to_string()),
            "the error names the address: {ev}"
        );
    })
}

twins!(refused: refused_await, refused_callback);

/// As a Driver on the caller's executor, with no event_cb: the driver's
/// result is the error.
#[test]
fn refused_driver_without_event_cb() {
    fd_checked(|| {
        let (socket, driver) = tcp_connect("127.0.0.1", refused_port()).start().unwrap();
        let err = run(driver).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused, "{err}");
        assert!(socket.is_closed());
    })
}

const NO_SUCH_HOST: &str = "nonexistent.invalid";

fn dns_failure(face: Face) {
    fd_checked(
        || match failed_connect(face, NO_SUCH_HOST, 80, io::ErrorKind::NotFound) {
            Event::Dns { host, .. } => assert_eq!(host, NO_SUCH_HOST),
            other => panic!("expected a DNS error, got {other:?}"),
        },
    )
}

twins!(dns_failure: dns_failure_await, dns_failure_callback);

/// The peer resets while 8 MiB are arriving: one `Reset`
/// (`ConnectionReset` on the await face), and what arrived is a prefix.
fn reset_mid_transfer(face: Face) {
    fd_checked(|| {
        let (listener, addr) = std_listener();
        let peer = resetting_peer(listener, 8 * MIB);
        let (ev, got) = match face {
            Face::Await => {
                let mut got = Vec::new();
                let err = run(async {
                    let mut s = TcpStream::connect(addr).await?;
                    s.read_to_end(&mut got).await
                })
                .unwrap_err();
                assert_eq!(err.kind(), io::ErrorKind::ConnectionReset, "{err}");
                (Event::from(err), got)
            }
            Face::Callback => {
                let got = Arc::new(Mutex::new(Vec::new()));
                let g = got.clone();
                let events = on_loop(addr, move |c| {
                    c.read_cb(move |_, data| g.lock().unwrap().extend_from_slice(&data.into_bytes()))
                });
                (one_event(&events), std::mem::take(&mut *got.lock().unwrap()))
            }
        };
        join(peer);
        assert!(matches!(ev, Event::Reset { .. }), "{ev:?}");
        assert!(
            got.len() <= 8 * MIB && is_pattern_at(0, &got),
            "what arrived is a prefix"
        );
    })
}

twins!(reset_mid_transfer: reset_mid_transfer_await, reset_mid_transfer_callback);

/// What a callback saw: bytes (`Ok`) or an event (`Err`).
type Seen = Result<Vec<u8>, Event>;

/// The peer sends 4 MiB + 7 and closes: every byte arrives, then end of
/// file. On the await face that is no error (reads go on answering 0); on
/// the callback face, in both read modes, it is one `Eof`, after every
/// byte.
fn peer_eof_with_data_in_flight(face: Face) {
    let len = 4 * MIB + 7;
    let stream_modes: &[bool] = match face {
        Face::Await => &[false],
        Face::Callback => &[false, true],
    };
    for &stream_mode in stream_modes {
        fd_checked(|| {
            let (listener, addr) = std_listener();
            let peer = sending_peer(listener, len);
            let got = match face {
                Face::Await => run(async {
                    let mut s = TcpStream::connect(addr).await.unwrap();
                    let mut got = Vec::new();
                    s.read_to_end(&mut got).await.unwrap();
                    assert!(s.at_eof());
                    assert_eq!(s.read(&mut [0u8; 16]).await.unwrap(), 0);
                    s.close_stream().await.unwrap();
                    got
                }),
                Face::Callback => {
                    // One log of everything the callbacks saw, in order.
                    let log: Arc<Mutex<Vec<Seen>>> = Arc::default();
                    let (l1, l2) = (log.clone(), log.clone());
                    let socket = run_loop(move || {
                        tcp_connect("127.0.0.1", addr.port())
                            .stream(stream_mode)
                            .read_cb(move |_, data| {
                                let bytes = match data {
                                    ReadData::Bytes(b) => b.to_vec(),
                                    ReadData::Stream(s) => {
                                        let mut v = vec![0u8; s.buffered()];
                                        let n = s.read_sequence(&mut v).unwrap();
                                        v.truncate(n);
                                        v
                                    }
                                };
                                l1.lock().unwrap().push(Ok(bytes));
                            })
                            .event_cb(move |ev| l2.lock().unwrap().push(Err(ev)))
                            .spawn()
                    })
                    .unwrap();
                    assert!(socket.is_closed(), "stream {stream_mode}");
                    let log = std::mem::take(&mut *log.lock().unwrap());
                    let events: Vec<&Event> = log.iter().filter_map(|e| e.as_ref().err()).collect();
                    assert_eq!(events.len(), 1, "stream {stream_mode}: {events:?}");
                    assert!(matches!(events[0], Event::Eof { .. }), "{:?}", events[0]);
                    assert!(log.last().unwrap().is_err(), "Eof comes after every byte");
                    log.iter().filter_map(|e| e.as_ref().ok()).flatten().copied().collect()
                }
            };
            join(peer);
            assert_eq!(got.len(), len, "{face:?}, stream {stream_mode}");
            assert!(is_pattern_at(0, &got));
        })
    }
}

twins!(peer_eof_with_data_in_flight: peer_eof_with_data_in_flight_await, peer_eof_with_data_in_flight_callback);

/// No byte comes for `SHORT`: the callback face's read clock fires one
/// `Timeout`. The await face has no read clock of its own: a read raced
/// with a timer is the idiom, and the canceled read must lose nothing that
/// arrives later.
fn read_timeout(face: Face) {
    fd_checked(|| {
        let (listener, addr) = std_listener();
        let ev = match face {
            Face::Await => run(async {
                let mut s = TcpStream::connect(addr).await.unwrap();
                let (mut peer, _) = listener.accept().unwrap();
                let err = or_timeout(s.read(&mut [0u8; 64])).await.unwrap_err();
                assert_eq!(err.kind(), io::ErrorKind::TimedOut);
                peer.write_all(b"late but whole").unwrap();
                peer.shutdown(Shutdown::Write).unwrap();
                let mut got = Vec::new();
                s.read_to_end(&mut got).await.unwrap();
                assert_eq!(got, b"late but whole");
                s.close_stream().await.unwrap();
                Event::from(err)
            }),
            Face::Callback => {
                let (go, peer) = held_peer(listener);
                let events = on_loop(addr, |c| c.read_timeout(SHORT));
                go.send(()).unwrap();
                join(peer);
                one_event(&events)
            }
        };
        assert!(
            matches!(ev, Event::Timeout { clock: Clock::Read, .. }),
            "expected a read timeout, got {ev:?}"
        );
    })
}

twins!(read_timeout: read_timeout_await, read_timeout_callback);

/// The peer never reads: the callback face's write clock fires one
/// `Timeout`. On the await face a stalled write is seen by racing `write`
/// with a timer; the writes canceled that way accepted nothing, so the
/// peer gets exactly the bytes the writes reported.
fn write_stall(face: Face) {
    fd_checked(|| {
        let (listener, addr) = std_listener();
        let (go, peer) = held_peer(listener);
        match face {
            Face::Await => {
                let sent = run(async {
                    let mut s = TcpStream::connect(addr).await.unwrap();
                    let (high, _) = s.socket().water_marks();
                    let chunk = 64 * 1024;
                    let mut sent = 0u64;
                    let mut stalled = false;
                    for _ in 0..4096 {
                        match or_timeout(s.write(&pattern_at(sent, chunk))).await {
                            Ok(n) => sent += n as u64,
                            Err(e) => {
                                assert_eq!(e.kind(), io::ErrorKind::TimedOut);
                                stalled = true;
                                break;
                            }
                        }
                        assert!(
                            s.queued() <= high + chunk,
                            "queued {} > high {high} + {chunk}",
                            s.queued()
                        );
                    }
                    assert!(stalled, "a peer that never reads must stall the writer");
                    go.send(()).unwrap();
                    s.close_stream().await.unwrap();
                    sent
                });
                let (got, err) = join(peer);
                assert_eq!(err, None);
                assert_eq!(got.len() as u64, sent, "exactly the accepted bytes arrive");
                assert!(is_pattern_at(0, &got));
            }
            Face::Callback => {
                let events = on_loop(addr, |c| {
                    c.write_timeout(SHORT)
                        // More than loopback's socket buffers hold: the
                        // peer never reads, so progress stops.
                        .connect_cb(|s| s.write(&vec![7u8; 32 * MIB]).unwrap())
                });
                go.send(()).unwrap();
                join(peer);
                let ev = one_event(&events);
                assert!(
                    matches!(
                        ev,
                        Event::Timeout {
                            clock: Clock::Write,
                            ..
                        }
                    ),
                    "expected a write timeout, got {ev:?}"
                );
            }
        }
    })
}

twins!(write_stall: write_stall_await, write_stall_callback);

/// A forced close of a `tcp_connect` socket before its connection is up
/// cancels it: one `Canceled` event, no `connect_cb`, nothing sent (the
/// queued `data` is reported lost with the event), the half-made socket
/// released.
///
/// Deterministic on loopback: (a) the socket is closed before the driver is
/// first polled; (b) the driver is polled once, which issues the
/// non-blocking `connect()` (a descriptor exists and the handshake is in
/// flight), then the socket is closed. The driver checks for the close
/// before it looks at the connect's progress, so the outcome is `Canceled`
/// whether or not the kernel finished the handshake in between.
#[test]
fn close_force_while_connecting_callback() {
    fd_checked(|| {
        let (listener, addr) = std_listener();
        listener.set_nonblocking(true).unwrap();
        for poll_first in [false, true] {
            let events = Events::default();
            let connected = Counter::default();
            let (socket, mut driver) = tcp_connect("127.0.0.1", addr.port())
                .data("queued before connect")
                .connect_cb(connected.socket_cb())
                .event_cb(events.cb())
                .start()
                .unwrap();
            if poll_first {
                assert!(run(poll_once(&mut driver)).is_none(), "still connecting");
            }
            socket.close_force();
            assert!(socket.write(b"more").is_err(), "writes are refused once closed");
            run(driver).unwrap();
            let ev = one_event(&events);
            assert!(matches!(ev, Event::Canceled { .. }), "{ev:?}");
            assert_eq!(connected.get(), 0);
            assert!(socket.is_closed() && !socket.is_connected());
        }
        // Whatever reached the listener's queue carries no byte.
        while let Ok((mut s, _)) = listener.accept() {
            s.set_nonblocking(false).unwrap();
            let mut got = Vec::new();
            let _ = s.read_to_end(&mut got);
            assert!(got.is_empty(), "a canceled connection sends nothing");
        }
        // On the event loop: closed in the same turn that spawned it.
        let events = Events::default();
        let ev = events.clone();
        run_loop(move || -> io::Result<()> {
            let socket = tcp_connect("127.0.0.1", addr.port()).event_cb(ev.cb()).spawn()?;
            socket.close_force();
            Ok(())
        })
        .unwrap();
        assert!(matches!(one_event(&events), Event::Canceled { .. }));
        drop(listener);
    })
}

/// A graceful close while connecting waits for the connection: the writes
/// queued before it still go out, in order, then the socket closes; no
/// event. Same two deterministic points as above.
#[test]
fn close_graceful_while_connecting_callback() {
    fd_checked(|| {
        for poll_first in [false, true] {
            let (listener, addr) = std_listener();
            let peer = reading_peer(listener);
            let events = Events::default();
            let (socket, mut driver) = tcp_connect("127.0.0.1", addr.port())
                .data(pattern_at(0, 100))
                .event_cb(events.cb())
                .start()
                .unwrap();
            socket.write(&pattern_at(100, 64 * 1024)).unwrap();
            if poll_first {
                assert!(run(poll_once(&mut driver)).is_none(), "still connecting");
            }
            socket.close();
            assert_closed(socket.write(b"after close"));
            run(driver).unwrap();
            let (got, err) = join(peer);
            assert_eq!(err, None);
            assert_eq!(got.len(), 100 + 64 * 1024, "poll_first {poll_first}");
            assert!(is_pattern_at(0, &got));
            assert_eq!(events.names(), Vec::<&str>::new());
            assert!(socket.is_closed());
        }
    })
}

/// The await face: dropping a connect future mid-way releases its socket.
#[test]
fn close_while_connecting_await() {
    fd_checked(|| {
        let server = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut fut = Box::pin(TcpStream::connect(server.local_addr()));
        let first = run(poll_once(&mut fut));
        drop(fut);
        if let Some(res) = first {
            res.unwrap(); // connected at once: dropped like any stream
        }
        drop(server);
    })
}

/// Queued output, then a graceful close: every byte goes out, in order,
/// then FIN; on the callback face the close is not an event.
fn close_graceful_delivers_queued(face: Face) {
    fd_checked(|| {
        let (listener, addr) = std_listener();
        let peer = reading_peer(listener);
        let len = match face {
            Face::Await => run(async {
                let mut s = TcpStream::connect(addr).await.unwrap();
                s.write_sequence(&pattern_at(0, 4 * MIB)).unwrap();
                s.write_sequence(&pattern_at(4 * MIB as u64, 5)).unwrap();
                assert!(s.queued() <= 4 * MIB + 5);
                s.close_stream().await.unwrap();
                assert!(!s.is_open());
                4 * MIB + 5
            }),
            Face::Callback => {
                let events = on_loop(addr, |c| {
                    c.data(pattern_at(0, 1000)).connect_cb(|s| {
                        s.write(&pattern_at(1000, 4 * MIB)).unwrap();
                        s.close();
                    })
                });
                assert_eq!(events.names(), Vec::<&str>::new(), "a close is not an event");
                4 * MIB + 1000
            }
        };
        let (got, err) = join(peer);
        assert_eq!(err, None, "a graceful close ends with FIN");
        assert_eq!(got.len(), len);
        assert!(is_pattern_at(0, &got));
    })
}

twins!(close_graceful_delivers_queued: close_graceful_delivers_queued_await, close_graceful_delivers_queued_callback);

/// Queued output, then a forced close (`abort`, `close_force`): what was
/// queued is dropped and the peer sees a reset; on the callback face the
/// close is not an event.
fn close_force_drops_queued(face: Face) {
    fd_checked(|| {
        let (listener, addr) = std_listener();
        let (got, err) = match face {
            Face::Await => {
                // The peer reads only after the abort, so the kernel's
                // buffers hold what the send behind handed over, far less
                // than was queued.
                let (aborted, peer) = held_peer(listener);
                run(async {
                    let mut s = TcpStream::connect(addr).await.unwrap();
                    s.write_sequence(&pattern_at(0, 64 * MIB)).unwrap();
                    s.abort();
                    assert!(!s.is_open());
                    assert_eq!(s.queued(), 0);
                });
                aborted.send(()).unwrap();
                let (got, err) = join(peer);
                assert!(got.len() < 64 * MIB, "queued bytes went out after an abort");
                (got, err)
            }
            Face::Callback => {
                let peer = reading_peer(listener);
                let events = on_loop(addr, |c| {
                    c.connect_cb(|s| {
                        s.write(&pattern_at(0, 4 * MIB)).unwrap();
                        s.close_force();
                        assert!(s.write(b"x").is_err());
                    })
                });
                let (got, err) = join(peer);
                assert_eq!(events.names(), Vec::<&str>::new(), "a forced close is not an event");
                assert_eq!(got.len(), 0, "nothing queued goes out after close_force");
                (got, err)
            }
        };
        assert!(is_pattern_at(0, &got));
        assert_eq!(err, Some(io::ErrorKind::ConnectionReset), "the peer sees a reset");
    })
}

twins!(close_force_drops_queued: close_force_drops_queued_await, close_force_drops_queued_callback);

/// After a graceful close every write (and, on the await face, every read
/// and flush) fails with `NotConnected` (`Closed`), closing again is
/// harmless, and the peer gets exactly what was written before. On the
/// callback face a refused write is an error, not also an event.
fn write_after_close(face: Face) {
    fd_checked(|| {
        let (listener, addr) = std_listener();
        let peer = reading_peer(listener);
        match face {
            Face::Await => run(async {
                let mut s = TcpStream::connect(addr).await.unwrap();
                s.write_sequence(b"before").unwrap();
                s.close_stream().await.unwrap();
                assert_closed(s.write_sequence(b"after"));
                assert_closed(s.write(b"after").await);
                assert_closed(s.write_all(b"after").await);
                assert_closed(s.flush().await);
                assert_closed(s.socket().write(b"after"));
                assert_closed(s.read(&mut [0u8; 8]).await);
                s.close_stream().await.unwrap(); // closing twice is harmless
            }),
            Face::Callback => {
                let kept: Arc<Mutex<Option<TcpSocket>>> = Arc::default();
                let k = kept.clone();
                let events = on_loop(addr, move |c| {
                    c.connect_cb(move |s| {
                        s.write(b"before").unwrap();
                        s.close();
                        assert_closed(s.write(b"after"));
                        assert_closed(s.write_bytes(&b"after"[..]));
                        *k.lock().unwrap() = Some(s.clone());
                    })
                });
                let socket = kept.lock().unwrap().take().unwrap();
                assert_closed(socket.write(b"after the driver ended"));
                assert!(socket.is_closed());
                socket.close(); // closing twice is harmless
                assert_eq!(
                    events.names(),
                    Vec::<&str>::new(),
                    "a refused write is an error, not also an event"
                );
            }
        }
        let (got, err) = join(peer);
        assert_eq!(err, None);
        assert_eq!(got, b"before");
    })
}

twins!(write_after_close: write_after_close_await, write_after_close_callback);

/// Binding a port in use fails at once with `AddrInUse` (`AddressInUse`),
/// naming the address: a `TcpListener` on the await face; on the callback
/// face a server made with `start` outside a loop or with `spawn` inside
/// one, an error and not an event.
fn address_in_use(face: Face) {
    fd_checked(|| {
        let (listener, addr) = std_listener();
        let err = match face {
            Face::Await => TcpListener::bind(addr).map(drop).unwrap_err(),
            Face::Callback => {
                let events = Events::default();
                let ev = events.clone();
                let err = tcp_server("127.0.0.1", addr.port())
                    .event_cb(events.cb())
                    .start(drop)
                    .map(drop)
                    .unwrap_err();
                assert_eq!(err.kind(), io::ErrorKind::AddrInUse, "{err}");
                let err = run_loop(move || tcp_server("127.0.0.1", addr.port()).event_cb(ev.cb()).spawn().map(drop))
                    .unwrap_err();
                assert_eq!(events.len(), 0);
                err
            }
        };
        assert_eq!(err.kind(), io::ErrorKind::AddrInUse, "{err}");
        assert!(err.to_string().contains(&addr.to_string()), "{err}");
        assert!(matches!(Event::from(err), Event::AddressInUse { .. }));
        drop(listener);
    })
}

twins!(address_in_use: address_in_use_await, address_in_use_callback);

// The EMFILE tests lower `RLIMIT_NOFILE` to what is open plus a few, so
// they need the descriptor count, which only Linux gives (`/proc`).

#[cfg(target_os = "linux")]
const EMFILE_CHILD: &str = "STREAMISH_FAULTS_EMFILE_CHILD";

/// The server runs out of descriptors on accept (in a child process with a
/// lowered `RLIMIT_NOFILE`), reports it, and keeps serving once
/// descriptors are free again. See `emfile_child`.
#[cfg(target_os = "linux")]
#[test]
fn accept_out_of_fds() {
    fd_checked(|| {
        run_child("emfile_child", EMFILE_CHILD);
    })
}

#[cfg(target_os = "linux")]
fn is_emfile(ev: &Event) -> bool {
    matches!(ev, Event::Io { error, .. } if error.raw_os_error() == Some(libc::EMFILE))
}

/// The child half of `accept_out_of_fds`: does nothing unless run by it.
#[cfg(target_os = "linux")]
#[test]
#[ignore = "helper: run in a child process by accept_out_of_fds"]
fn emfile_child() {
    use async_io::Async;

    if std::env::var_os(EMFILE_CHILD).is_none() {
        return;
    }
    warm_up();
    let start = open_fds();

    // The await face: accept fails with EMFILE, then succeeds.
    {
        let server = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = server.local_addr();
        let (old, _) = set_nofile(open_fds() as u64 + 16);
        let mut fillers = fill_fds();
        fillers.pop(); // one descriptor for the client
        let mut client = std::net::TcpStream::connect(addr).unwrap();
        let err = run(server.accept()).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EMFILE), "{err}");
        assert!(is_emfile(&Event::from(err)));
        drop(fillers);
        let (mut peer, _) = run(server.accept()).unwrap();
        client.write_all(b"ping").unwrap();
        run(async {
            let mut buf = [0u8; 4];
            peer.read_exact(&mut buf).await.unwrap();
            assert_eq!(&buf, b"ping");
            peer.close_stream().await.unwrap();
        });
        drop(client);
        set_nofile(old);
    }
    assert_eq!(open_fds(), start, "await face leaked descriptors");

    // The callback face: one event, then the server goes on serving.
    let events = Events::default();
    let fillers: Arc<Mutex<Vec<std::fs::File>>> = Arc::default();
    let (ev, f) = (events.clone(), fillers.clone());
    let old = Arc::new(Mutex::new(0u64));
    let old2 = old.clone();
    run_loop(move || -> io::Result<()> {
        let server = tcp_server("127.0.0.1", 0)
            .read_cb(|s, data| s.write_bytes(data.into_bytes()).unwrap())
            .event_cb(move |e| {
                if is_emfile(&e) {
                    // Free the descriptors: the server must pick up the
                    // waiting connection on its own.
                    f.lock().unwrap().clear();
                }
                ev.push(e);
            })
            .spawn()?;
        let addr: SocketAddr = server.local_addr();
        *old2.lock().unwrap() = set_nofile(open_fds() as u64 + 16).0;
        let mut files = fill_fds();
        files.pop(); // one descriptor for the client
        *fillers.lock().unwrap() = files;
        streamish::spawn(async move {
            for msg in [&b"ping"[..], b"pong"] {
                let mut c = Async::<std::net::TcpStream>::connect(addr).await?;
                c.write_all(msg).await?;
                let mut buf = [0u8; 4];
                c.read_exact(&mut buf).await?;
                assert_eq!(&buf, msg);
            }
            server.close();
            Ok(())
        })
    })
    .unwrap();
    set_nofile(*old.lock().unwrap());
    let evs = events.take();
    let emfile = evs.iter().filter(|e| is_emfile(e)).count();
    assert_eq!(emfile, 1, "exactly one out-of-descriptors event: {evs:?}");
    assert!(
        evs.iter().all(|e| is_emfile(e) || matches!(e, Event::Eof { .. })),
        "only EMFILE and the clients' EOFs: {evs:?}"
    );
    drop(evs);
    assert_eq!(open_fds(), start, "callback face leaked descriptors");
}
