//! Writing: small writes keep their order, writes after close fail with
//! `Closed`, `force_output` sends without being awaited.

mod common;

use std::io::Read;
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures_lite::future::{poll_once, zip};
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use streamish::{
    AsyncInputStream, AsyncOutputStream, AsyncOutputStreamExt, AsyncStream, AsyncStreamExt, TcpStream, tcp_connect,
    tcp_server,
};

use common::{LIMIT, Slot, assert_closed, pair, pattern_at, run, run_loop};

#[test]
fn write_sequence_after_close_fails_with_closed() {
    run(async {
        let (mut client, mut peer) = pair().await;
        client.write_sequence(b"last words").unwrap();
        client.close_stream().await.unwrap();
        assert!(!client.is_open());
        assert!(client.socket().is_closed());

        assert_closed(client.write_sequence(b"x"), "write_sequence");
        assert_closed(client.write_byte(b'x'), "write_byte");
        assert_closed(client.write_subsequence(b"abc", 1, None), "write_subsequence");
        assert_closed(client.write_bytes(&b"x"[..]), "write_bytes");
        assert_closed(client.socket().write(b"x"), "TcpSocket::write");
        assert_closed(client.write_all(b"x").await, "AsyncWrite::write_all");
        assert_closed(client.flush().await, "AsyncWrite::flush");
        assert_closed(client.finish_output().await, "finish_output");
        assert_closed(client.read_sequence(&mut [0u8; 4]), "read_sequence");
        assert_closed(client.read(&mut [0u8; 4]).await, "AsyncRead::read");
        assert_closed(client.append_bytes(b"x"), "append_bytes");
        assert_eq!(client.queued(), 0);
        // Closing again is harmless.
        client.close_stream().await.unwrap();
        client.abort();
        client.close_stream().await.unwrap();

        let mut got = Vec::new();
        peer.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"last words");
    });
}

/// A stream that is its connection's only handle appends small writes
/// without the output lock; order and the closed state must hold all the
/// same, with a socket clone coming and going in between.
#[test]
fn small_writes_keep_order_across_handles_and_fail_while_closing() {
    run(async {
        let (mut client, mut peer) = pair().await;
        client.write_all(b"a").await.unwrap();
        client.write_all(b"b").await.unwrap(); // joins the queue, the stream alone
        let clone = client.socket().clone();
        clone.write(b"c").unwrap();
        client.write_all(b"d").await.unwrap(); // a clone exists: the locked path
        drop(clone);
        client.write_all(b"e").await.unwrap(); // alone again
        client.flush().await.unwrap();
        let mut got = [0u8; 5];
        peer.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"abcde");

        // More than the kernel takes, so a close stays in progress with
        // output queued (below a raised high-water mark, where small writes
        // would join it); a small write must then fail.
        client.socket().set_water_marks(32 << 20, 16 << 20).unwrap();
        let big = pattern_at(0, 8 << 20);
        client.write_sequence(&big).unwrap();
        assert!(
            poll_once(client.close_stream()).await.is_none(),
            "the close waits for the peer"
        );
        assert!(client.queued() > 0);
        assert_closed(client.write_all(b"late").await, "write_all while closing");
        let (closed, rest) = zip(client.close_stream(), async {
            let mut rest = Vec::new();
            peer.read_to_end(&mut rest).await.map(|_| rest)
        })
        .await;
        closed.unwrap();
        assert!(
            rest.unwrap() == big,
            "the peer gets the queued bytes, then end of file, and nothing late"
        );
    });
}

/// Once a small write has joined a non-empty queue, the next ones join
/// without testing the connection's state again, until something resets
/// that. A close, a half-close asked for through a socket handle, new
/// water marks and a `shutdown(Write)` made directly on the socket must
/// each reach the next write (`write_all`, and
/// `write_sequence` / `TcpSocket::write`, which never wait), whether the
/// stream is the only handle (no lock taken) or a clone exists.
#[test]
fn small_writes_after_a_queued_one_see_close_half_close_new_marks_and_shutdown() {
    run(async {
        for keep_clone in [false, true] {
            let hold = |c: &TcpStream| keep_clone.then(|| c.socket().clone());

            let (mut client, mut peer) = pair().await;
            let _clone = hold(&client);
            client.write_all(b"a").await.unwrap(); // queued, not sent
            client.write_sequence(b"b").unwrap(); // joins it
            client.socket().close();
            assert_closed(client.write_all(b"late").await, "write_all after TcpSocket::close");
            assert_closed(client.write_sequence(b"late"), "write_sequence after TcpSocket::close");
            client.close_stream().await.unwrap();
            let mut got = Vec::new();
            peer.read_to_end(&mut got).await.unwrap();
            assert_eq!(
                got, b"ab",
                "queued bytes go out, the refused ones do not (clone: {keep_clone})"
            );

            let (mut client, mut peer) = pair().await;
            let _clone = hold(&client);
            client.write_all(b"a").await.unwrap();
            client.write_all(b"b").await.unwrap();
            client.socket().shutdown_write();
            assert_closed(client.write_all(b"late").await, "write_all after shutdown_write");
            assert_closed(client.socket().write(b"late"), "TcpSocket::write after shutdown_write");
            client.flush().await.unwrap();
            let mut got = Vec::new();
            peer.read_to_end(&mut got).await.unwrap();
            assert_eq!(
                got, b"ab",
                "half-close: queued bytes, then end of file (clone: {keep_clone})"
            );

            let (mut client, mut peer) = pair().await;
            let _clone = hold(&client);
            client.write_all(b"a").await.unwrap();
            client.socket().set_water_marks(2, 1).unwrap();
            client.write_all(b"bc").await.unwrap(); // reaches the new mark: sent at once
            assert_eq!(
                client.queued(),
                0,
                "a write reaching the new high-water mark starts sending"
            );
            let mut got = [0u8; 3];
            peer.read_exact(&mut got).await.unwrap();
            assert_eq!(&got, b"abc");

            // `shutdown(Write)` shuts the socket at once, without a flush:
            // the queued bytes cannot go, and later writes fail at once.
            let (mut client, mut peer) = pair().await;
            let _clone = hold(&client);
            client.write_all(b"a").await.unwrap();
            client.write_all(b"b").await.unwrap();
            client.shutdown(std::net::Shutdown::Write).unwrap();
            assert_closed(client.write_all(b"late").await, "write_all after shutdown(Write)");
            assert_closed(client.write_sequence(b"late"), "write_sequence after shutdown(Write)");
            let mut got = Vec::new();
            peer.read_to_end(&mut got).await.unwrap();
            // Only what went out before the shutdown (the first write goes
            // straight to the kernel; the send behind may have run).
            assert!(
                b"ab".starts_with(&got),
                "shutdown(Write) sends no queued byte (clone: {keep_clone})"
            );
        }
    });
}

#[test]
fn write_sequence_after_abort_or_half_close_fails_with_closed() {
    run(async {
        let (mut client, _peer) = pair().await;
        client.abort();
        assert!(!client.is_open());
        assert_closed(client.write_sequence(b"x"), "write_sequence after abort");
        assert_closed(client.read_sequence(&mut [0u8; 4]), "read_sequence after abort");
        client.abort(); // twice is harmless
        client.close_stream().await.unwrap();

        let (mut client, _peer) = pair().await;
        client.shutdown_write().await.unwrap();
        assert_closed(client.write_sequence(b"x"), "write_sequence after shutdown_write");
        client.shutdown_write().await.unwrap(); // twice is harmless

        let (client, _peer) = pair().await;
        let (_input, mut output) = client.split();
        output.close().await.unwrap();
        assert_closed(output.write_sequence(b"x"), "write_sequence after AsyncWrite::close");
        assert_closed(output.write_all(b"x").await, "write_all after AsyncWrite::close");
    });
}

#[test]
fn force_output_sends_without_being_awaited() {
    run(async {
        let (mut client, mut peer) = pair().await;
        client.write_sequence(b"forced ").unwrap();
        client.write_bytes(vec![b'!'; 5_000]).unwrap();
        client.force_output().unwrap(); // never waits
        assert_eq!(client.queued(), 0, "the kernel had room for all of it");
        // The client is not polled again; the peer still gets everything.
        let mut got = vec![0u8; 5_007];
        peer.read_exact(&mut got).await.unwrap();
        assert_eq!(&got[..7], b"forced ");
        assert!(got[7..].iter().all(|&b| b == b'!'));
        assert_eq!(client.bytes_written(), 5_007);
    });
}

/// `force_output` is not held to a flush poll's 128 KiB budget: it pushes
/// all the kernel takes. Both sides get large socket buffers, so the kernel
/// takes far more than the budget.
#[cfg(target_os = "linux")]
#[test]
fn force_output_sends_all_the_kernel_takes() {
    use rustix::net::sockopt::{set_socket_recv_buffer_size, set_socket_send_buffer_size};
    use std::os::fd::AsFd;
    fn big_buffers(fd: impl AsFd) {
        set_socket_send_buffer_size(&fd, 4 << 20).unwrap();
        set_socket_recv_buffer_size(&fd, 4 << 20).unwrap();
    }
    run(async {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        big_buffers(&listener); // inherited by the accepted socket
        let std_client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        big_buffers(&std_client);
        let (_peer, _) = listener.accept().unwrap(); // never reads
        let mut client = TcpStream::try_from(std_client).unwrap();
        const QUEUED: usize = 4 << 20;
        client.write_sequence(&vec![7u8; QUEUED]).unwrap();
        client.force_output().unwrap();
        let sent = QUEUED - client.queued();
        assert!(sent > 128 * 1024, "force_output sent only {sent} bytes");
    });
}

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
