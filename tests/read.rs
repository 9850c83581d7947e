//! Reading: bytes before EOF stay readable after it, `read_sequence` and
//! `read_byte` never wait, a dropped read future loses nothing.

mod common;

use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use futures_lite::future::{or, poll_once, yield_now, zip};
use futures_lite::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
use streamish::{
    AsyncInputStream, AsyncOutputStream, AsyncOutputStreamExt, AsyncStream, AsyncStreamExt, Event, TcpInputStream,
    TcpListener, TcpSocket, TcpStream, tcp_connect, tcp_server,
};

use common::{Rng, pair, run, run_loop, wait_input};

#[test]
fn bytes_before_eof_are_readable_after_it() {
    run(async {
        let (mut client, mut peer) = pair().await;
        let data = Rng::new(3).bytes(32 * 1024);
        // The peer writes, then closes entirely: FIN follows the data.
        peer.write_sequence(&data).unwrap();
        peer.close_stream().await.unwrap();
        assert!(!peer.is_open());

        // Read in small non-waiting steps, waiting only when nothing is there.
        let mut got = Vec::new();
        let mut rng = Rng::new(4);
        let mut buf = [0u8; 700];
        for _ in 0..100_000 {
            let k = rng.range(1, buf.len());
            let n = client.read_sequence(&mut buf[..k]).unwrap();
            got.extend_from_slice(&buf[..n]);
            if n == 0 {
                if client.at_eof() {
                    break;
                }
                wait_input(&mut client).await.unwrap();
            }
        }
        assert!(
            got == data,
            "lost or changed bytes before EOF ({} of {})",
            got.len(),
            data.len()
        );
        assert!(client.eof_seen() && client.at_eof());
        // EOF is sticky and not an error for the await face...
        assert_eq!(client.read_sequence(&mut buf).unwrap(), 0);
        assert_eq!(client.read(&mut buf).await.unwrap(), 0);
        assert!(client.fill_buf().await.unwrap().is_empty());
        // ...while read_byte signals it, as cl-async's read-byte does.
        let err = client.read_byte().unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
        assert!(matches!(Event::from(err), Event::Eof { .. }));
        // Half-closed by the peer, we may still write.
        assert!(client.is_open());
    });
}

#[test]
fn eof_seen_with_bytes_still_buffered() {
    run(async {
        let (mut a, mut peer) = pair().await;
        let data = b"every byte before the end".to_vec();
        peer.write_all(&data).await.unwrap();
        peer.close_stream().await.unwrap();

        // `a` takes what arrived into its buffer without consuming it.
        assert!(!wait_input(&mut a).await.unwrap());
        let lent = a.buffered();
        assert!(lent > 0);
        // A second stream over the same socket reads on and meets EOF.
        let mut b = TcpInputStream::new(a.socket().clone());
        let mut rest = Vec::new();
        let mut buf = [0u8; 64];
        for _ in 0..10_000 {
            let n = b.read_sequence(&mut buf).unwrap();
            rest.extend_from_slice(&buf[..n]);
            if n == 0 && (b.at_eof() || wait_input(&mut b).await.unwrap()) {
                break;
            }
        }
        assert!(b.at_eof());
        // EOF was seen, yet `a` still holds bytes from before it.
        assert!(a.eof_seen());
        assert_eq!(a.buffered(), lent);
        assert!(!a.at_eof());
        let first = a.read_byte().unwrap().expect("a buffered byte");
        let mut front = vec![first];
        let n = a.read_sequence(&mut buf).unwrap();
        front.extend_from_slice(&buf[..n]);
        front.extend_from_slice(&rest);
        assert_eq!(front, data);
        assert!(a.at_eof());
        assert_eq!(a.read_byte().unwrap_err().kind(), io::ErrorKind::UnexpectedEof);

        // Bytes appended after EOF are readable before it too.
        a.append_bytes(b"late").unwrap();
        assert!(a.eof_seen() && !a.at_eof());
        assert_eq!(a.buffered(), 4);
        let n = a.read_sequence(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"late");
        assert!(a.at_eof());
    });
}

#[test]
fn read_sequence_and_read_byte_return_at_once_and_tell_nothing_yet_from_eof() {
    run(async {
        let server = TcpListener::bind("127.0.0.1:0").unwrap();
        let (io, accepted) = zip(
            async_io::Async::<std::net::TcpStream>::connect(server.local_addr()),
            server.accept(),
        )
        .await;
        let io = io.unwrap();
        let (mut peer, _) = accepted.unwrap();
        let mut buf = [0u8; 16];

        // Nothing sent: both return at once, and it is not EOF.
        let mut early = TcpStream::try_from(async_io::Async::new(io.get_ref().try_clone().unwrap()).unwrap()).unwrap();
        assert_eq!(early.read_sequence(&mut buf).unwrap(), 0);
        assert_eq!(early.read_byte().unwrap(), None);
        assert!(!early.eof_seen());
        assert!(!early.at_eof());
        assert_eq!(early.buffered(), 0);
        drop(early);

        // Data is in the kernel (awaited on the raw socket): read_sequence
        // takes it from there without waiting.
        peer.write_all(b"hello").await.unwrap();
        peer.flush().await.unwrap();
        io.readable().await.unwrap();
        let mut client = TcpStream::try_from(io).unwrap();
        assert_eq!(client.read_sequence(&mut buf).unwrap(), 5);
        assert_eq!(&buf[..5], b"hello");
        assert_eq!(client.read_sequence(&mut buf).unwrap(), 0);
        assert_eq!(client.read_byte().unwrap(), None);
        assert!(!client.at_eof());

        // read_byte takes one byte at a time, then says "nothing yet" again.
        peer.write_all(b"xy").await.unwrap();
        peer.flush().await.unwrap();
        let mut got = Vec::new();
        for _ in 0..1000 {
            match client.read_byte().unwrap() {
                Some(b) => got.push(b),
                None if got.len() == 2 => break,
                None => {
                    assert!(!wait_input(&mut client).await.unwrap());
                }
            }
        }
        assert_eq!(got, b"xy");
        assert_eq!(client.read_byte().unwrap(), None);
        assert!(!client.eof_seen());

        // Now the peer closes: EOF, told apart from "nothing yet".
        peer.close_stream().await.unwrap();
        assert!(wait_input(&mut client).await.unwrap());
        assert!(client.eof_seen() && client.at_eof());
        assert_eq!(client.read_sequence(&mut buf).unwrap(), 0);
        let err = client.read_byte().unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
        match Event::from(err) {
            Event::Eof { socket } => assert!(socket.expect("the socket").ptr_eq(client.socket())),
            other => panic!("expected Eof, got {other:?}"),
        }
    });
}

#[test]
fn dropping_a_read_future_loses_nothing() {
    run(async {
        let (mut client, mut peer) = pair().await;
        let mut rng = Rng::new(31);
        let data = rng.bytes(400_000);
        let mut got = Vec::new();
        let mut big = vec![0u8; 64 * 1024];
        let mut sent = 0;
        while sent < data.len() {
            // Nothing is in flight: a read future goes pending and is
            // dropped; whatever it set up must not swallow what comes next.
            assert!(
                poll_once(client.read_exact(&mut big[..rng.range(1, 60_000)]))
                    .await
                    .is_none()
            );
            assert!(poll_once(client.read(&mut big)).await.is_none());
            assert!(poll_once(client.fill_buf()).await.is_none());
            let mut sink = Vec::new();
            assert!(poll_once(client.read_to_end(&mut sink)).await.is_none());
            assert!(sink.is_empty());

            let n = rng.range(1, 50_000).min(data.len() - sent);
            peer.write_sequence(&data[sent..sent + n]).unwrap();
            peer.finish_output().await.unwrap();
            sent += n;
            // Take it back with reads that may be dropped before they finish.
            for _ in 0..100_000 {
                if got.len() == sent {
                    break;
                }
                let k = rng.range(1, 20_000);
                match rng.range(0, 3) {
                    // A read raced against a yield: the loser is dropped.
                    0 => {
                        let raced = or(async { Some(client.read(&mut big[..k]).await) }, async {
                            yield_now().await;
                            None
                        })
                        .await;
                        if let Some(n) = raced {
                            let n = n.unwrap();
                            got.extend_from_slice(&big[..n]);
                        }
                    }
                    // fill_buf polled once and dropped: what it took stays lent.
                    1 => {
                        let _ = poll_once(client.fill_buf()).await;
                    }
                    _ => {
                        let n = client.read(&mut big[..k]).await.unwrap();
                        got.extend_from_slice(&big[..n]);
                    }
                }
            }
            assert_eq!(got.len(), sent);
        }
        peer.close_stream().await.unwrap();
        client.read_to_end(&mut got).await.unwrap();
        assert!(
            got == data,
            "bytes lost or changed: got {} of {}",
            got.len(),
            data.len()
        );
    });
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
