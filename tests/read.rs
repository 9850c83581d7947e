//! Reading: bytes before EOF stay readable after it, `read_sequence` and
//! `read_byte` never wait, a dropped read future loses nothing.

mod common;

use std::io;

use futures_lite::future::{or, poll_once, yield_now, zip};
use futures_lite::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
use streamish::{
    AsyncInputStream, AsyncOutputStream, AsyncOutputStreamExt, AsyncStream, AsyncStreamExt, Event, TcpInputStream,
    TcpListener, TcpStream,
};

use common::{Rng, pair, run, wait_input};

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
        let mut early = TcpStream::from(async_io::Async::new(io.get_ref().try_clone().unwrap()).unwrap());
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
        let mut client = TcpStream::from(io);
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
