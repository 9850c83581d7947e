//! Splitting a stream into halves and reuniting them.

mod common;

use futures_lite::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
use std::io;
use streamish::{AsyncInputStream, AsyncStreamExt, TcpStream};

use common::{Rng, pair, run, wait_input};

#[test]
fn split_halves_work_on_different_threads_and_reunite() {
    run(async {
        let (client, peer) = pair().await;
        let local_addr = client.local_addr().unwrap();
        let client_socket = client.socket().clone();
        // The peer echoes everything back, then half-closes.
        let echo = async {
            let (input, mut output) = peer.split();
            futures_lite::io::copy(input, &mut output).await?;
            output.close().await
        };
        let (mut input, mut output) = client.split();
        let data = Rng::new(21).bytes(300_000);
        let sent = data.clone();
        let writer = std::thread::spawn(move || {
            async_io::block_on(common::timeout(async {
                for chunk in sent.chunks(7_777) {
                    output.write_all(chunk).await?;
                }
                output.close().await?; // half-close: the echo ends
                io::Result::Ok(output)
            }))
        });
        let reader = std::thread::spawn(move || {
            async_io::block_on(common::timeout(async {
                let mut got = Vec::new();
                input.read_to_end(&mut got).await?;
                io::Result::Ok((input, got))
            }))
        });
        echo.await.unwrap();
        let output = writer.join().unwrap().unwrap();
        let (input, got) = reader.join().unwrap().unwrap();
        assert!(got == data, "echo differs ({} of {} bytes)", got.len(), data.len());

        assert!(input.socket().ptr_eq(output.socket()));
        let stream = TcpStream::reunite(input, output).expect("halves of one stream");
        // (Both sides have closed, so only the local address is left to ask.)
        assert_eq!(stream.local_addr().unwrap(), local_addr);
        assert!(stream.socket().ptr_eq(&client_socket));
        assert!(stream.eof_seen());
    });
}

#[test]
fn reunite_halves_of_different_streams_gives_them_back() {
    run(async {
        let (one, mut peer_one) = pair().await;
        let (two, mut peer_two) = pair().await;
        let (s1, s2) = (one.socket().clone(), two.socket().clone());
        let (in1, out1) = one.split();
        let (in2, out2) = two.split();

        let err = TcpStream::reunite(in1, out2).expect_err("halves of different streams");
        assert_eq!(err.to_string(), "the halves belong to different connections");
        let _: &dyn std::error::Error = &err;
        let streamish::ReuniteError(in1, out2) = err;
        assert!(in1.socket().ptr_eq(&s1));
        assert!(out2.socket().ptr_eq(&s2));

        // Given back intact: each pairs with its own partner.
        let mut one = TcpStream::reunite(in1, out1).expect("same stream");
        let mut two = TcpStream::reunite(in2, out2).expect("same stream");
        assert!(one.socket().ptr_eq(&s1) && two.socket().ptr_eq(&s2));
        one.write_all(b"one").await.unwrap();
        two.write_all(b"two").await.unwrap();
        one.close_stream().await.unwrap();
        two.close_stream().await.unwrap();
        let (mut a, mut b) = (Vec::new(), Vec::new());
        peer_one.read_to_end(&mut a).await.unwrap();
        peer_two.read_to_end(&mut b).await.unwrap();
        assert_eq!((a.as_slice(), b.as_slice()), (&b"one"[..], &b"two"[..]));
    });
}

#[test]
fn split_and_into_socket_keep_bytes_lent_by_fill_buf() {
    run(async {
        let (mut client, mut peer) = pair().await;
        peer.write_all(b"hello world, and more").await.unwrap();
        peer.close_stream().await.unwrap();

        assert!(!wait_input(&mut client).await.unwrap());
        client.consume(6); // "hello " consumed; the rest is lent out
        let (mut input, output) = client.split();
        let mut word = [0u8; 6];
        input.read_exact(&mut word).await.unwrap();
        assert_eq!(&word, b"world,");

        let client = TcpStream::reunite(input, output).unwrap();
        // Giving up the stream puts lent bytes back in the socket's buffer.
        let mut client = client;
        assert!(!wait_input(&mut client).await.unwrap());
        let socket = client.into_socket();
        let mut again = TcpStream::new(socket);
        let mut rest = Vec::new();
        again.read_to_end(&mut rest).await.unwrap();
        assert_eq!(rest, b" and more");
    });
}
