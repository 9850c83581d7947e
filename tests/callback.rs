//! The callback face: cl-async's own tests translated, and every point of
//! `tcp_connect` / `tcp_server` behaviour, over loopback.

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use streamish::{
    AsyncInputStream, AsyncOutputStream, AsyncOutputStreamExt, Clock, Event, ReadData, TcpServerHandle, TcpSocket,
    exit_event_loop, tcp_connect, tcp_server, with_event_loop,
};

use common::{LIMIT, run_loop};

/// `clear_output` (here through a stream over a callback connection's
/// socket) empties the queue, and a write made after it from outside a
/// callback (a task on the loop) still goes out, even when the driver ran
/// in between and found nothing to send: the small-write fast path must
/// not take it for a write joining a queue whose flush is coming.
#[test]
fn a_write_after_clear_output_still_goes_out() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let peer = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        // A deadline, not a wait: the bytes come at once or not at all.
        s.set_read_timeout(Some(LIMIT)).unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 64];
        while !got.ends_with(b"tail") {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
        got // dropped here: the client reads end of file and its loop ends
    });
    run_loop(move || {
        tcp_connect("127.0.0.1", port)
            .connect_cb(|sock| {
                let sock = sock.clone();
                // A stream over the socket, for `clear_output`.
                let mut stream = streamish::TcpStream::from(sock.clone());
                streamish::spawn(async move {
                    sock.write(b"x")?; // wakes the driver; small writes may now join
                    stream.clear_output(); // gone before the driver runs
                    for _ in 0..4 {
                        // The driver runs and finds nothing to send.
                        futures_lite::future::yield_now().await;
                    }
                    sock.write(b"tail")
                })
                .unwrap();
            })
            .read_cb(|_, _| {})
            .spawn()
            .unwrap();
    })
    .unwrap();
    assert_eq!(
        peer.join().unwrap(),
        b"tail",
        "the cleared byte is gone, the later write arrives"
    );
}

/// A server's handle, for callbacks made before the server exists.
#[derive(Clone, Default)]
struct Slot(Arc<std::sync::OnceLock<TcpServerHandle>>);

impl Slot {
    fn fill(&self, server: &TcpServerHandle) {
        self.0.set(server.clone()).unwrap();
    }

    /// An `event_cb` that closes the server when a connection ends.
    fn close_on_eof(&self) -> impl Fn(Event) + Send + Sync + 'static {
        let slot = self.clone();
        move |ev| {
            assert!(matches!(ev, Event::Eof { .. }), "unexpected {ev:?}");
            slot.0.get().unwrap().close();
        }
    }
}

type Log = Arc<Mutex<Vec<String>>>;

fn log() -> Log {
    Arc::new(Mutex::new(Vec::new()))
}

fn push(log: &Log, s: impl Into<String>) {
    log.lock().unwrap().push(s.into());
}

fn events(log: &Log) -> Vec<String> {
    log.lock().unwrap().clone()
}

/// cl-async: "simple client/server" ("hai hai" / "thxlol thxlol").
fn simple_client_server(host: &'static str) {
    let server_got = Arc::new(Mutex::new(Vec::new()));
    let client_got = Arc::new(Mutex::new(Vec::new()));
    let (sg, cg) = (server_got.clone(), client_got.clone());
    run_loop(move || {
        let server = tcp_server("127.0.0.1", 0)
            .read_cb(move |sock, data| {
                sg.lock().unwrap().extend_from_slice(&data.into_bytes());
                if sg.lock().unwrap().as_slice() == b"hai hai" {
                    sock.write(b"thxlol thxlol").unwrap();
                }
            })
            .spawn()
            .unwrap();
        let srv = server.clone();
        tcp_connect(host, server.local_addr().port())
            .data("hai hai")
            .read_cb(move |sock, data| {
                cg.lock().unwrap().extend_from_slice(&data.into_bytes());
                if cg.lock().unwrap().as_slice() == b"thxlol thxlol" {
                    sock.close();
                    srv.close();
                }
            })
            .event_cb(|ev| assert!(!ev.is_error(), "unexpected {ev:?}"))
            .spawn()
            .unwrap();
    })
    .unwrap();
    assert_eq!(server_got.lock().unwrap().as_slice(), b"hai hai");
    assert_eq!(client_got.lock().unwrap().as_slice(), b"thxlol thxlol");
}

#[test]
fn simple_client_server_ip() {
    simple_client_server("127.0.0.1");
}

#[test]
fn simple_client_server_localhost() {
    simple_client_server("localhost");
}

/// cl-async: "connect fail": one `tcp-refused`, with the socket attached,
/// and pre-connect writes still visible as queued, not silently gone.
#[test]
fn connect_refused_is_one_event_with_queued_writes() {
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let log = log();
    let queued_at_event = Arc::new(AtomicUsize::new(0));
    let (l, q) = (log.clone(), queued_at_event.clone());
    run_loop(move || {
        let sock = tcp_connect("127.0.0.1", port)
            .data("first")
            .event_cb(move |ev| {
                assert!(ev.socket().is_some(), "the event carries its socket");
                q.store(ev.socket().unwrap().queued(), Ordering::SeqCst);
                push(&l, ev.name());
            })
            .spawn()
            .unwrap();
        sock.write(b"second").unwrap();
    })
    .unwrap();
    assert_eq!(events(&log), ["tcp-refused"]);
    assert_eq!(queued_at_event.load(Ordering::SeqCst), "firstsecond".len());
}

#[test]
fn connect_refused_without_event_cb_ends_the_driver_with_the_error() {
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let (socket, driver) = tcp_connect("127.0.0.1", port).start().unwrap();
    let err = async_io::block_on(driver).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused);
    assert!(matches!(Event::from(err), Event::Refused { socket: Some(_), .. }));
    assert!(socket.is_closed());
}

#[test]
fn unhandled_error_ends_the_event_loop_with_it() {
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let res = with_event_loop(|| tcp_connect("127.0.0.1", port).spawn().map(drop));
    let err = res.unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused);
}

#[test]
fn dns_failure_is_one_dns_event_with_its_socket() {
    let log = log();
    let l = log.clone();
    run_loop(move || {
        tcp_connect("nonexistent.invalid", 80)
            .event_cb(move |ev| {
                assert!(ev.socket().is_some());
                if let Event::Dns { host, .. } = &ev {
                    assert_eq!(host, "nonexistent.invalid");
                }
                push(&l, ev.name());
            })
            .spawn()
            .unwrap();
    })
    .unwrap();
    assert_eq!(events(&log), ["dns-error"]);
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

#[test]
fn tcp_connect_binds_the_client_first() {
    let local = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let seen = log();
    let (s1, s2) = (seen.clone(), seen.clone());
    run_loop(move || {
        let slot = Slot::default();
        let server = tcp_server("127.0.0.1", 0)
            .connect_cb(move |sock| push(&s1, sock.peer_addr().unwrap().to_string()))
            .read_cb(|sock, _| sock.close())
            .spawn()
            .unwrap();
        slot.fill(&server);
        tcp_connect("127.0.0.1", server.local_addr().port())
            .bind(local)
            .data("hai")
            .connect_cb(move |sock| push(&s2, sock.local_addr().unwrap().to_string()))
            .event_cb(slot.close_on_eof())
            .spawn()
            .unwrap();
    })
    .unwrap();
    let mut seen = events(&seen);
    seen.sort();
    assert_eq!(seen, [local.to_string(), local.to_string()]);
}

#[test]
fn tcp_connect_bound_to_an_address_in_use_is_an_address_in_use_event() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let log = log();
    let l = log.clone();
    let socket = run_loop(move || {
        tcp_connect("127.0.0.1", addr.port())
            .bind(addr)
            .event_cb(move |ev| push(&l, ev.name()))
            .spawn()
    })
    .unwrap();
    assert_eq!(events(&log), ["socket-address-in-use"]);
    let err = socket.write(b"late").unwrap_err();
    assert!(matches!(Event::from(err), Event::AddressInUse { .. }));
}

/// cl-async: "write sequence with start/end" ("abcdef").
#[test]
fn write_sequence_with_start_and_end() {
    let got = Arc::new(Mutex::new(Vec::new()));
    let g = got.clone();
    run_loop(move || {
        let slot = Slot::default();
        let server = tcp_server("127.0.0.1", 0)
            .read_cb(move |_, data| g.lock().unwrap().extend_from_slice(&data.into_bytes()))
            .event_cb(slot.close_on_eof())
            .spawn()
            .unwrap();
        slot.fill(&server);
        let mut stream = tcp_connect("127.0.0.1", server.local_addr().port())
            .spawn_stream()
            .unwrap();
        stream.write_subsequence(b"abcdef", 1, Some(3)).unwrap(); // "bc"
        stream.write_subsequence(b"abcdef", 4, None).unwrap(); // "ef"
        assert!(stream.write_subsequence(b"abcdef", 5, Some(2)).is_err());
        stream.write_sequence(b"").unwrap();
        stream.socket().close();
    })
    .unwrap();
    assert_eq!(got.lock().unwrap().as_slice(), b"bcef");
}

/// cl-async: "stream read/write sequence" ("can i have your coat?" /
/// "don't say that").
#[test]
fn stream_read_write_sequence() {
    let server_got = Arc::new(Mutex::new(Vec::new()));
    let client_got = Arc::new(Mutex::new(Vec::new()));
    let (sg, cg) = (server_got.clone(), client_got.clone());
    run_loop(move || {
        let server = tcp_server("127.0.0.1", 0)
            .stream(true)
            .read_cb(move |_sock, data| {
                let ReadData::Stream(stream) = data else { panic!() };
                let mut buf = [0u8; 64];
                let n = stream.read_sequence(&mut buf).unwrap();
                sg.lock().unwrap().extend_from_slice(&buf[..n]);
                if sg.lock().unwrap().as_slice() == b"can i have your coat?" {
                    stream.write_sequence(b"don't say that").unwrap();
                }
            })
            .spawn()
            .unwrap();
        let srv = server.clone();
        let mut stream = tcp_connect("127.0.0.1", server.local_addr().port())
            .stream(true)
            .read_cb(move |sock, data| {
                let ReadData::Stream(stream) = data else { panic!() };
                let mut buf = [0u8; 64];
                let n = stream.read_sequence(&mut buf).unwrap();
                cg.lock().unwrap().extend_from_slice(&buf[..n]);
                if cg.lock().unwrap().as_slice() == b"don't say that" {
                    sock.close();
                    srv.close();
                }
            })
            .spawn_stream()
            .unwrap();
        stream.write_sequence(b"can i have your coat?").unwrap();
    })
    .unwrap();
    assert_eq!(server_got.lock().unwrap().as_slice(), b"can i have your coat?");
    assert_eq!(client_got.lock().unwrap().as_slice(), b"don't say that");
}

#[test]
fn writes_before_connect_go_out_after_data_in_order() {
    let got = Arc::new(Mutex::new(Vec::new()));
    let g = got.clone();
    run_loop(move || {
        let slot = Slot::default();
        let server = tcp_server("127.0.0.1", 0)
            .read_cb(move |_, data| g.lock().unwrap().extend_from_slice(&data.into_bytes()))
            .event_cb(slot.close_on_eof())
            .spawn()
            .unwrap();
        slot.fill(&server);
        let sock = tcp_connect("localhost", server.local_addr().port())
            .data("1-data ")
            .data(Bytes::from(vec![b'x'; 10_000]))
            .spawn()
            .unwrap();
        assert!(!sock.is_connected(), "tcp_connect returns before the connection is up");
        sock.write(b" 2-write").unwrap();
        sock.write_bytes(Bytes::from_static(b" 3-bytes")).unwrap();
        sock.close(); // graceful: everything queued still goes out
        assert!(sock.write(b"late").is_err(), "writes after close are refused");
    })
    .unwrap();
    let mut want = b"1-data ".to_vec();
    want.extend(vec![b'x'; 10_000]);
    want.extend(b" 2-write 3-bytes");
    assert_eq!(*got.lock().unwrap(), want);
}

#[test]
fn stream_mode_leaves_unread_bytes_for_the_next_call() {
    let got = Arc::new(Mutex::new(Vec::new()));
    let calls = Arc::new(AtomicUsize::new(0));
    let (g, c) = (got.clone(), calls.clone());
    run_loop(move || {
        let server = tcp_server("127.0.0.1", 0)
            .read_cb(|sock, data| {
                // Each "more" from the client gets the next part.
                let req = data.into_bytes();
                for _ in req.chunks(4) {
                    sock.write(b"next").unwrap();
                }
            })
            .connect_cb(|sock| sock.write(b"abcd").unwrap())
            .spawn()
            .unwrap();
        let srv = server.clone();
        tcp_connect("127.0.0.1", server.local_addr().port())
            .stream(true)
            .read_cb(move |sock, data| {
                let ReadData::Stream(stream) = data else { panic!() };
                let call = c.fetch_add(1, Ordering::SeqCst);
                // Read only two bytes per call: the rest must wait for us.
                let mut buf = [0u8; 2];
                let n = stream.read_sequence(&mut buf).unwrap();
                g.lock().unwrap().extend_from_slice(&buf[..n]);
                if call == 0 {
                    assert_eq!(stream.buffered(), 2, "the unread bytes stay buffered");
                    sock.write(b"more").unwrap();
                    return;
                }
                // Later calls: take everything there is.
                let mut rest = [0u8; 16];
                loop {
                    let n = stream.read_sequence(&mut rest).unwrap();
                    if n == 0 {
                        break;
                    }
                    g.lock().unwrap().extend_from_slice(&rest[..n]);
                }
                if g.lock().unwrap().len() == 8 {
                    sock.close();
                    srv.close();
                }
            })
            .spawn()
            .unwrap();
    })
    .unwrap();
    assert_eq!(got.lock().unwrap().as_slice(), b"abcdnext");
}

#[test]
fn dont_drain_without_stream_gives_read_cb_a_stream() {
    let got = Arc::new(Mutex::new(Vec::new()));
    let g = got.clone();
    run_loop(move || {
        let server = tcp_server("127.0.0.1", 0)
            .connect_cb(|sock| {
                sock.write(b"kept").unwrap();
                sock.close();
            })
            .spawn()
            .unwrap();
        let srv = server.clone();
        tcp_connect("127.0.0.1", server.local_addr().port())
            .dont_drain_read_buffer(true)
            .read_cb(move |_, data| {
                assert!(matches!(data, ReadData::Stream(_)));
                g.lock().unwrap().extend_from_slice(&data.into_bytes());
            })
            .event_cb(move |_| srv.close())
            .spawn()
            .unwrap();
    })
    .unwrap();
    assert_eq!(got.lock().unwrap().as_slice(), b"kept");
}

#[test]
fn bytes_stay_buffered_without_read_cb() {
    let buffered_at_eof = Arc::new(AtomicUsize::new(0));
    let b = buffered_at_eof.clone();
    run_loop(move || {
        let server = tcp_server("127.0.0.1", 0)
            .connect_cb(|sock| {
                sock.write(b"nobody reads this").unwrap();
                sock.close();
            })
            .spawn()
            .unwrap();
        let srv = server.clone();
        tcp_connect("127.0.0.1", server.local_addr().port())
            .event_cb(move |ev| {
                assert!(matches!(ev, Event::Eof { .. }));
                b.store(ev.socket().unwrap().buffered(), Ordering::SeqCst);
                srv.close();
            })
            .spawn()
            .unwrap();
    })
    .unwrap();
    assert_eq!(buffered_at_eof.load(Ordering::SeqCst), "nobody reads this".len());
}

#[test]
fn eof_comes_after_every_byte_before_it() {
    const TOTAL: usize = 4 << 20;
    let counted_at_eof = Arc::new(AtomicUsize::new(0));
    let eofs = Arc::new(AtomicUsize::new(0));
    let (c, e) = (counted_at_eof.clone(), eofs.clone());
    run_loop(move || {
        let server = tcp_server("127.0.0.1", 0)
            .connect_cb(|sock| {
                sock.write_bytes(vec![7u8; TOTAL]).unwrap();
                sock.close();
            })
            .spawn()
            .unwrap();
        let srv = server.clone();
        let seen = Arc::new(AtomicUsize::new(0));
        let s2 = seen.clone();
        tcp_connect("127.0.0.1", server.local_addr().port())
            .read_cb(move |_, data| {
                let b = data.into_bytes();
                assert!(b.iter().all(|&x| x == 7));
                s2.fetch_add(b.len(), Ordering::SeqCst);
            })
            .event_cb(move |ev| {
                assert!(matches!(ev, Event::Eof { .. }), "{ev:?}");
                e.fetch_add(1, Ordering::SeqCst);
                c.store(seen.load(Ordering::SeqCst), Ordering::SeqCst);
                srv.close();
            })
            .spawn()
            .unwrap();
    })
    .unwrap();
    assert_eq!(eofs.load(Ordering::SeqCst), 1);
    assert_eq!(counted_at_eof.load(Ordering::SeqCst), TOTAL);
}

#[test]
fn pause_and_resume_reading() {
    // The server sends to the paused client; then a second connection does
    // a whole round trip through the reactor. The client's bytes were in
    // its kernel buffer before that probe even connected, so a client that
    // did not honour the pause would have read them by the time the probe's
    // answer arrives. Only then is the client resumed.
    let reads_while_paused = Arc::new(AtomicUsize::new(usize::MAX));
    let buffered_while_paused = Arc::new(AtomicUsize::new(usize::MAX));
    let got = Arc::new(Mutex::new(Vec::new()));
    let (rwp, bwp, g) = (reads_while_paused.clone(), buffered_while_paused.clone(), got.clone());
    run_loop(move || {
        let reads = Arc::new(AtomicUsize::new(0));
        let client: Arc<Mutex<Option<TcpSocket>>> = Arc::default();
        let probe_started = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (r1, r2, c1) = (reads.clone(), reads.clone(), client.clone());
        let server = tcp_server("127.0.0.1", 0)
            .read_cb(move |sock, data| match &data.into_bytes()[..] {
                b"go" => sock.write(b"while paused").unwrap(),
                _ => sock.write(b"ack").unwrap(),
            })
            .write_cb(move |sock| {
                // Once "while paused" is with the kernel: start the probe.
                if probe_started.swap(true, Ordering::SeqCst) {
                    return;
                }
                let (c1, r1, rwp, bwp) = (c1.clone(), r1.clone(), rwp.clone(), bwp.clone());
                tcp_connect("127.0.0.1", sock.local_addr().unwrap().port())
                    .data("probe")
                    .read_cb(move |probe, _| {
                        let client = c1.lock().unwrap().clone().unwrap();
                        assert!(client.is_reading_paused());
                        rwp.store(r1.load(Ordering::SeqCst), Ordering::SeqCst);
                        bwp.store(client.bytes_read() as usize, Ordering::SeqCst);
                        client.resume_reading();
                        probe.close();
                    })
                    .spawn()
                    .unwrap();
            })
            .spawn()
            .unwrap();
        let srv = server.clone();
        let sock = tcp_connect("127.0.0.1", server.local_addr().port())
            .connect_cb(|sock| {
                sock.pause_reading();
                sock.write(b"go").unwrap();
            })
            .read_cb(move |sock, data| {
                r2.fetch_add(1, Ordering::SeqCst);
                g.lock().unwrap().extend_from_slice(&data.into_bytes());
                if g.lock().unwrap().len() == 12 {
                    sock.close();
                    srv.close();
                }
            })
            .spawn()
            .unwrap();
        *client.lock().unwrap() = Some(sock);
    })
    .unwrap();
    assert_eq!(reads_while_paused.load(Ordering::SeqCst), 0, "no read_cb while paused");
    assert_eq!(
        buffered_while_paused.load(Ordering::SeqCst),
        0,
        "nothing read from the kernel while paused"
    );
    assert_eq!(got.lock().unwrap().as_slice(), b"while paused");
}

/// A drained read that fills its 64 KiB buffer is followed by more reads in
/// the same turn; pausing in `read_cb` stops them at once. The client
/// pauses on its first full read, while most of a megabyte is still in its
/// kernel buffer; a probe connection's round trip through the reactor then
/// comes after anything the paused turn could have read, and finds no new
/// `read_cb` call. Every byte arrives, in order, after the resume.
#[test]
fn pausing_in_read_cb_stops_the_reads_of_its_turn() {
    const TOTAL: usize = 1024 * 1024;
    const FULL: usize = 64 * 1024;
    let byte = |i: usize| (i % 251) as u8;
    let calls_while_paused = Arc::new(AtomicUsize::new(usize::MAX));
    let got = Arc::new(AtomicUsize::new(0));
    let (cwp, g) = (calls_while_paused.clone(), got.clone());
    run_loop(move || {
        let first = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let server = tcp_server("127.0.0.1", 0)
            .connect_cb(move |sock| {
                if first.swap(false, Ordering::SeqCst) {
                    let data: Vec<u8> = (0..TOTAL).map(byte).collect();
                    sock.write_bytes(data).unwrap();
                    sock.close();
                }
            })
            .read_cb(|sock, _| sock.write(b"pong").unwrap())
            .spawn()
            .unwrap();
        let port = server.local_addr().port();
        let calls = Arc::new(AtomicUsize::new(0));
        let paused_once = std::sync::atomic::AtomicBool::new(false);
        tcp_connect("127.0.0.1", port)
            .read_cb(move |sock, data| {
                let calls_now = calls.fetch_add(1, Ordering::SeqCst) + 1;
                let data = data.into_bytes();
                let at = g.fetch_add(data.len(), Ordering::SeqCst);
                assert!(
                    data.iter().enumerate().all(|(k, b)| *b == byte(at + k)),
                    "bytes out of order"
                );
                if data.len() >= FULL && !paused_once.swap(true, Ordering::SeqCst) {
                    sock.pause_reading();
                    let (client, calls, cwp) = (sock.clone(), calls.clone(), cwp.clone());
                    tcp_connect("127.0.0.1", port)
                        .connect_cb(|probe| probe.write(b"ping").unwrap())
                        .read_cb(move |probe, _| {
                            cwp.store(calls.load(Ordering::SeqCst) - calls_now, Ordering::SeqCst);
                            client.resume_reading();
                            probe.close();
                        })
                        .spawn()
                        .unwrap();
                }
            })
            .event_cb({
                let server = server.clone();
                move |_| server.close()
            })
            .spawn()
            .unwrap();
    })
    .unwrap();
    assert_eq!(
        calls_while_paused.load(Ordering::SeqCst),
        0,
        "no read_cb after the one that paused, until the resume"
    );
    assert_eq!(got.load(Ordering::SeqCst), TOTAL);
}

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
fn write_cb_fires_once_per_drain_and_writes_in_a_callback_coalesce() {
    let drains = Arc::new(AtomicUsize::new(0));
    let got = Arc::new(Mutex::new(Vec::new()));
    let (d, g) = (drains.clone(), got.clone());
    run_loop(move || {
        let slot = Slot::default();
        let server = tcp_server("127.0.0.1", 0)
            .read_cb(move |_, data| g.lock().unwrap().extend_from_slice(&data.into_bytes()))
            .event_cb(slot.close_on_eof())
            .spawn()
            .unwrap();
        slot.fill(&server);
        tcp_connect("127.0.0.1", server.local_addr().port())
            .connect_cb(|sock| {
                // Ten writes in one callback: one flush, one drain.
                for i in 0..10u8 {
                    sock.write(&[b'0' + i]).unwrap();
                }
            })
            .write_cb(move |sock| {
                if d.fetch_add(1, Ordering::SeqCst) == 0 {
                    sock.write(b"!").unwrap();
                } else {
                    sock.close();
                }
            })
            .spawn()
            .unwrap();
    })
    .unwrap();
    assert_eq!(drains.load(Ordering::SeqCst), 2);
    assert_eq!(got.lock().unwrap().as_slice(), b"0123456789!");
}

#[test]
fn socket_data_pairs_sockets() {
    #[derive(Debug)]
    struct Tag(&'static str);
    let seen = Arc::new(Mutex::new(None));
    let s = seen.clone();
    run_loop(move || {
        let server = tcp_server("127.0.0.1", 0)
            .connect_cb(|sock| sock.set_data(Tag("accepted")))
            .read_cb(move |sock, _| {
                *s.lock().unwrap() = sock.data::<Tag>().map(|t| t.0);
                sock.close();
            })
            .spawn()
            .unwrap();
        let srv = server.clone();
        tcp_connect("127.0.0.1", server.local_addr().port())
            .data("x")
            .event_cb(move |_| srv.close())
            .spawn()
            .unwrap();
    })
    .unwrap();
    assert_eq!(*seen.lock().unwrap(), Some("accepted"));
}

#[test]
fn exit_event_loop_ends_the_loop_with_connections_open() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    run_loop(move || {
        tcp_connect("127.0.0.1", port)
            .connect_cb(|_| exit_event_loop())
            .spawn()
            .unwrap();
    })
    .unwrap();
    // The loop dropped the connection: the peer sees it closed.
    let (mut s, _) = listener.accept().unwrap();
    let mut buf = [0u8; 8];
    assert_eq!(s.read(&mut buf).unwrap_or(0), 0);
}

/// `exit_event_loop` ends the loop when the callback (here, the task's
/// poll) that called it returns, even while tasks are ready to run: none
/// is polled again, however long the loop's busy spell still had to go.
/// The spinners give up after `LIMIT` polls, so a loop that ignored the
/// exit fails the test rather than hanging it.
#[test]
fn exit_event_loop_stops_a_busy_loop_at_once() {
    const LIMIT: usize = 1_000_000;
    let exited = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let after_exit = Arc::new(AtomicUsize::new(0));
    let (e1, a1) = (exited.clone(), after_exit.clone());
    run_loop(move || {
        for who in 0..2 {
            let (exited, after_exit) = (e1.clone(), a1.clone());
            streamish::spawn(async move {
                for i in 0..LIMIT {
                    if exited.load(Ordering::SeqCst) {
                        after_exit.fetch_add(1, Ordering::SeqCst);
                    } else if who == 0 && i == 1_000 {
                        exited.store(true, Ordering::SeqCst);
                        exit_event_loop();
                    }
                    futures_lite::future::yield_now().await;
                }
                Ok(())
            })
            .unwrap();
        }
    })
    .unwrap();
    assert!(exited.load(Ordering::SeqCst));
    assert_eq!(
        after_exit.load(Ordering::SeqCst),
        0,
        "tasks were polled after exit_event_loop"
    );
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

#[test]
fn bad_options_fail_at_once() {
    let err = tcp_connect("", 80).start().unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    let err = tcp_connect("127.0.0.1", 0).start().unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    let err = tcp_connect("127.0.0.1", 80)
        .read_timeout(Duration::ZERO)
        .start()
        .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    let err = tcp_server("", 0).start(drop).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput, "an empty bind host");
    let err = tcp_connect("127.0.0.1", 80).spawn().unwrap_err();
    assert!(err.to_string().contains("with_event_loop"), "{err}");
}

// ---- the same connections on executors the user already runs ----

/// Starts an echo server with `spawner`, sends 1 MiB through a client
/// driven the same way, and returns what came back.
fn echo_exchange(spawner: impl Fn(streamish::Driver) + Send + Sync + Clone + 'static) -> (Vec<u8>, Vec<u8>) {
    let payload: Vec<u8> = (0..1 << 20).map(|i| (i * 7 % 251) as u8).collect();
    let got = Arc::new(Mutex::new(Vec::new()));
    let (done_tx, done_rx) = mpsc::channel();
    let server = tcp_server("127.0.0.1", 0)
        .read_cb(|sock, data| {
            sock.write_bytes(data.into_bytes()).unwrap();
        })
        .start(spawner.clone())
        .unwrap();
    let g = got.clone();
    let n = payload.len();
    let (_, driver) = tcp_connect("127.0.0.1", server.local_addr().port())
        .data(payload.clone())
        .read_cb(move |sock, data| {
            let mut g = g.lock().unwrap();
            g.extend_from_slice(&data.into_bytes());
            if g.len() == n {
                sock.close();
            }
        })
        .start()
        .unwrap();
    spawner(streamish::Driver::new(async move {
        let res = driver.await;
        done_tx.send(res.is_ok()).unwrap();
        Ok(())
    }));
    assert!(done_rx.recv_timeout(LIMIT).unwrap(), "the client driver failed");
    server.close();
    let got = got.lock().unwrap().clone();
    (payload, got)
}

#[test]
fn runs_on_smol() {
    let (sent, got) = echo_exchange(|d| smol::spawn(d).detach());
    assert_eq!(sent, got);
}

#[test]
fn runs_on_async_executor_with_two_threads() {
    let ex = Arc::new(async_executor::Executor::new());
    let (stop_tx, stop_rx) = async_channel_like();
    let threads: Vec<_> = (0..2)
        .map(|_| {
            let ex = ex.clone();
            let stop = stop_rx.clone();
            std::thread::spawn(move || async_io::block_on(ex.run(stop.wait())))
        })
        .collect();
    let spawn_ex = ex.clone();
    let (sent, got) = echo_exchange(move |d| spawn_ex.spawn(d).detach());
    stop_tx.fire();
    threads.into_iter().for_each(|t| t.join().unwrap());
    assert_eq!(sent, got);
}

#[test]
fn runs_on_tokio_current_thread() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let handle = rt.handle().clone();
    // A current-thread runtime runs tasks only while something blocks on it.
    let (stop_tx, stop_rx) = async_channel_like();
    let runner = std::thread::spawn(move || rt.block_on(stop_rx.wait()));
    let (sent, got) = echo_exchange(move |d| {
        handle.spawn(d);
    });
    stop_tx.fire();
    runner.join().unwrap();
    assert_eq!(sent, got);
}

#[test]
fn runs_on_tokio_multi_thread() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let handle = rt.handle().clone();
    let (sent, got) = echo_exchange(move |d| {
        handle.spawn(d);
    });
    assert_eq!(sent, got);
}

/// A one-shot "stop" signal any executor can await.
fn async_channel_like() -> (Stop, Stop) {
    let s = Stop(Arc::new(event_flag::Flag::default()));
    (s.clone(), s)
}

#[derive(Clone)]
struct Stop(Arc<event_flag::Flag>);

impl Stop {
    fn fire(&self) {
        self.0.set();
    }
    async fn wait(self) {
        self.0.wait().await
    }
}

mod event_flag {
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::task::{Poll, Waker};

    #[derive(Default)]
    pub struct Flag {
        set: AtomicBool,
        wakers: Mutex<Vec<Waker>>,
    }

    impl Flag {
        pub fn set(&self) {
            self.set.store(true, Ordering::SeqCst);
            for w in self.wakers.lock().unwrap().drain(..) {
                w.wake();
            }
        }

        pub async fn wait(&self) {
            futures_lite::future::poll_fn(|cx| {
                if self.set.load(Ordering::SeqCst) {
                    return Poll::Ready(());
                }
                self.wakers.lock().unwrap().push(cx.waker().clone());
                if self.set.load(Ordering::SeqCst) {
                    Poll::Ready(())
                } else {
                    Poll::Pending
                }
            })
            .await
        }
    }
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

/// Two tasks that wait on the same socket's output, the connection's
/// driver and a task writing through a stream over its socket (cl-async's
/// `make-instance 'async-io-stream :socket`), while the peer reads nothing:
/// each is polled again only when woken, not woken by the other's every
/// poll. A wait kept one waker per direction and woke the one it replaced,
/// so the two woke each other in turn for as long as the peer stalled.
#[test]
fn a_driver_and_a_stream_waiting_on_one_stalled_socket_do_not_wake_each_other() {
    const TOTAL: usize = 16 << 20;
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (go, went) = mpsc::channel::<()>();
    let reader = std::thread::spawn(move || {
        let (mut peer, _) = listener.accept().unwrap();
        peer.set_read_timeout(Some(LIMIT)).unwrap();
        // Reads nothing until the two tasks both wait.
        if went.recv().is_err() {
            return 0;
        }
        let mut buf = vec![0u8; 1 << 16];
        let mut got = 0;
        while got < TOTAL {
            match peer.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => got += n,
            }
        }
        got
    });

    let (socket, driver) = tcp_connect("127.0.0.1", port).stream(true).start().unwrap();
    let mut stream = streamish::TcpStream::new(socket.clone());
    let data = vec![0x5a; TOTAL];
    let writer = async {
        // cl-async's way: queue it all, then wait until the kernel has it.
        stream.write_sequence(&data)?;
        stream.finish_output().await
    };
    let (polls, idled, done) = common::two_tasks(driver, writer, 10_000, || go.send(()).unwrap());
    drop(go);
    // The kernel has it all: the peer reads it without the driver, then
    // the socket goes (a forced close now would drop what it still holds).
    let got = reader.join().unwrap();
    socket.close_force();
    assert!(
        idled,
        "the two tasks never both waited: polled {polls} times with the peer stalled"
    );
    match done {
        Some(Err(res)) => res.unwrap(),
        other => panic!("polled {polls} times, and the writer did not end first: {other:?}"),
    }
    assert_eq!(got, TOTAL);
}

/// The same on input: the driver of a stream-mode connection reads, and a
/// task awaits a read on a stream over its socket, while the peer is
/// silent; both get what they wait for once it speaks.
#[test]
fn a_driver_and_a_stream_waiting_to_read_do_not_wake_each_other() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (go, went) = mpsc::channel::<()>();
    let talker = std::thread::spawn(move || {
        let (mut peer, _) = listener.accept().unwrap();
        if went.recv().is_ok() {
            peer.write_all(b"hai").unwrap();
        }
        peer
    });

    let (socket, driver) = tcp_connect("127.0.0.1", port).stream(true).start().unwrap();
    // Up first, so that both then wait for bytes, not for the connection.
    let mut driver = Box::pin(driver);
    async_io::block_on(futures_lite::future::poll_fn(|cx| {
        assert!(driver.as_mut().poll(cx).is_pending());
        if socket.is_connected() {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    }));
    let mut stream = streamish::TcpStream::new(socket.clone());
    let mut buf = [0u8; 16];
    let read = futures_lite::AsyncReadExt::read(&mut stream, &mut buf);
    let (polls, idled, done) = common::two_tasks(driver, read, 10_000, || go.send(()).unwrap());
    drop(go);
    let _peer = talker.join().unwrap();
    assert!(
        idled,
        "the two tasks never both waited: polled {polls} times with the peer silent"
    );
    match done {
        Some(Err(res)) => assert_eq!(res.unwrap(), 3),
        other => panic!("polled {polls} times, and the read did not end first: {other:?}"),
    }
    assert_eq!(&buf[..3], b"hai");
    socket.close_force();
}
