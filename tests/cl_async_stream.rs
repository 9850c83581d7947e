//! cl-async's own stream tests (test/async-stream.lisp, test/tcp.lisp),
//! translated to the await face.

mod common;

use std::io;

use futures_lite::future::zip;
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use streamish::{
    AsyncInputStream, AsyncInputStreamExt, AsyncOutputStream, AsyncOutputStreamExt, AsyncStreamExt, TcpListener,
    TcpStream,
};

use common::{assert_closed, pair, run, wait_input};

/// cl-async's `stream-read-write-sequence`: the client writes through its
/// stream; the server answers through a new stream made over the accepted
/// socket (`make-instance 'async-io-stream :socket sock`); the client reads
/// the answer with `read-sequence` when input is there.
#[test]
fn cl_async_stream_read_write_sequence() {
    run(async {
        let server = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut client = TcpStream::connect(server.local_addr()).await.unwrap();
        let (mut conn, _) = server.accept().await.unwrap();

        client.write_sequence(b"can i have your coat?").unwrap();
        let serve = async {
            let mut server_data = vec![0u8; 21];
            conn.read_exact(&mut server_data).await?;
            // For good measure, write through a new stream over the socket.
            let mut fresh = TcpStream::new(conn.socket().clone());
            fresh.write_sequence(b"don't say that")?;
            drop(fresh);
            // The connection's next poll (waiting for the client's close)
            // sends it.
            let mut rest = Vec::new();
            conn.read_to_end(&mut rest).await?;
            io::Result::Ok(String::from_utf8(server_data).unwrap())
        };
        let ask = async {
            let mut stream_buffer = [0u8; 8096];
            let mut client_data = Vec::new();
            while client_data.len() < 14 {
                if wait_input(&mut client).await? {
                    break;
                }
                let n = client.read_sequence(&mut stream_buffer)?;
                client_data.extend_from_slice(&stream_buffer[..n]);
            }
            client.close_stream().await?;
            io::Result::Ok(String::from_utf8(client_data).unwrap())
        };
        let (server_data, client_data) = zip(serve, ask).await;
        assert_eq!(server_data.unwrap(), "can i have your coat?");
        assert_eq!(client_data.unwrap(), "don't say that");
    });
}

/// cl-async's `write-seq-with-offset`: "qqqabcddd" with :start 3 :end 6,
/// then "def": the server sees "abcdef". Connected by name, as there.
#[test]
fn cl_async_write_sequence_with_offsets() {
    run(async {
        let server = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut client = TcpStream::connect(("localhost", server.local_addr().port()))
            .await
            .unwrap();
        let (mut conn, _) = server.accept().await.unwrap();
        client.write_subsequence(b"qqqabcddd", 3, Some(6)).unwrap();
        client.socket().write(b"de").unwrap();
        client.write_subsequence(b"xf", 1, None).unwrap();
        // Bounds that do not fit fail and queue nothing.
        for (start, end) in [(4, Some(2)), (0, Some(10)), (10, None)] {
            let err = client.write_subsequence(b"qqqabcddd", start, end).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        }
        assert!(client.queued() <= 6);
        client.close_stream().await.unwrap();
        let mut server_data = String::new();
        conn.read_to_string(&mut server_data).await.unwrap();
        assert_eq!(server_data, "abcdef");

        // And read-sequence with :start / :end.
        conn.append_bytes(b"xyz").unwrap();
        let mut buf = *b"ab....";
        assert_eq!(conn.read_subsequence(&mut buf, 2, Some(4)).unwrap(), 4);
        assert_eq!(&buf, b"abxy..");
        assert_eq!(conn.read_subsequence(&mut buf, 4, None).unwrap(), 5);
        assert_eq!(&buf, b"abxyz.");
        assert_eq!(
            conn.read_subsequence(&mut buf, 5, Some(3)).unwrap_err().kind(),
            io::ErrorKind::InvalidInput
        );
    });
}

/// cl-async's "TODO: read/write-byte", done.
#[test]
fn cl_async_read_byte_and_write_byte() {
    run(async {
        let (mut client, mut peer) = pair().await;
        for &b in b"hai" {
            client.write_byte(b).unwrap();
        }
        assert!(client.queued() <= 3);
        client.close_stream().await.unwrap();
        let mut got = Vec::new();
        for _ in 0..1000 {
            match peer.read_byte() {
                Ok(Some(b)) => got.push(b),
                Ok(None) => {
                    wait_input(&mut peer).await.unwrap();
                }
                Err(e) => {
                    assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
                    break;
                }
            }
        }
        assert_eq!(got, b"hai");
    });
}

/// `stream-append-bytes`, `clear-input` and `clear-output`.
#[test]
fn cl_async_append_bytes_clear_input_clear_output() {
    run(async {
        let (mut client, mut peer) = pair().await;
        let mut buf = [0u8; 32];

        // Appended bytes are read like received ones.
        client.append_bytes(b"abc").unwrap();
        assert_eq!(client.buffered(), 3);
        assert_eq!(client.read_byte().unwrap(), Some(b'a'));
        assert_eq!(client.read_sequence(&mut buf).unwrap(), 2);
        assert_eq!(&buf[..2], b"bc");

        // ...and after what was already received.
        peer.write_all(b"net").await.unwrap();
        peer.flush().await.unwrap();
        let mut got = Vec::new();
        while got.len() < 3 {
            assert!(!wait_input(&mut client).await.unwrap());
            let n = client.read_sequence(&mut buf[..3 - got.len()]).unwrap();
            got.extend_from_slice(&buf[..n]);
        }
        assert_eq!(got, b"net");
        peer.write_all(b"work").await.unwrap();
        peer.flush().await.unwrap();
        assert!(!wait_input(&mut client).await.unwrap());
        let received = client.buffered();
        assert!((1..=4).contains(&received));
        client.append_bytes(b"+app").unwrap();
        assert_eq!(client.buffered(), received + 4);
        let mut all = Vec::new();
        for _ in 0..1000 {
            let n = client.read_sequence(&mut buf[..8 - all.len()]).unwrap();
            all.extend_from_slice(&buf[..n]);
            if all.len() == 8 {
                break;
            }
            if n == 0 {
                assert!(!wait_input(&mut client).await.unwrap());
            }
        }
        // Received bytes, then the appended ones, then whatever was still
        // in the kernel when they were appended.
        assert_eq!(&all[..received], &b"work"[..received]);
        assert_eq!(&all[received..received + 4], b"+app");
        assert_eq!(&all[received + 4..], &b"work"[received..]);

        // clear-input drops what is buffered, nothing else.
        peer.write_all(b"junk").await.unwrap();
        peer.flush().await.unwrap();
        assert!(!wait_input(&mut client).await.unwrap());
        client.append_bytes(b"more junk").unwrap();
        let junk = client.buffered();
        assert!(junk >= 9);
        client.clear_input();
        assert_eq!(client.buffered(), 0);
        assert_eq!(client.read_byte().unwrap(), None);
        assert!(!client.at_eof());

        // clear-output drops what is queued, nothing else.
        // (What went out before the clear is gone already: the first write
        // of a burst goes straight to the kernel, and the send behind may
        // run at once on async-io's thread.)
        client.write_sequence(b"drop me").unwrap();
        assert!(client.queued() <= 7);
        client.clear_output();
        assert_eq!(client.queued(), 0);
        client.write_sequence(b"keep").unwrap();
        client.close_stream().await.unwrap();
        let mut got = Vec::new();
        peer.read_to_end(&mut got).await.unwrap();
        assert!(
            got.ends_with(b"keep") && b"drop me".starts_with(&got[..got.len() - 4]),
            "{got:?}"
        );

        // Appending to a closed stream is refused.
        assert_closed(client.append_bytes(b"x"), "append_bytes after close");
    });
}
