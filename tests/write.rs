//! Writing: small writes keep their order, writes after close fail with
//! `Closed`, `force_output` sends without being awaited.

mod common;

use futures_lite::future::{poll_once, zip};
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use streamish::{AsyncInputStream, AsyncOutputStream, AsyncOutputStreamExt, AsyncStream, AsyncStreamExt, TcpStream};

use common::{assert_closed, pair, pattern_at, run};

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
