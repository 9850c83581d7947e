//! The stream traits from outside the crate: trait objects, generic code,
//! the futures-lite toolbox.

mod common;

use std::fmt::Debug;
use std::io;

use futures_lite::future::zip;
use futures_lite::io::{AsyncBufRead, AsyncRead, AsyncWrite};
use futures_lite::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
use streamish::{
    AsyncInputStream, AsyncIoStream, AsyncOutputStream, AsyncOutputStreamExt, AsyncStream, AsyncStreamExt, Event,
    TcpInputStream, TcpOutputStream, TcpSocket, TcpStream,
};

use common::{Rng, assert_closed, pair, run, wait_input};

fn assert_io_stream<T: AsyncIoStream + AsyncRead + AsyncBufRead + AsyncWrite + Send + Sync + Unpin + 'static>() {}

fn assert_debug<T: Debug>() {}

fn assert_input_stream<T: AsyncInputStream + AsyncRead + AsyncBufRead + Send + Sync + Unpin + Debug + 'static>() {}

fn assert_output_stream<T: AsyncOutputStream + AsyncWrite + Send + Sync + Unpin + Debug + 'static>() {}

fn assert_handle<T: Clone + Send + Sync + Debug + 'static>() {}

fn assert_error<T: std::error::Error + Send + Sync + 'static>() {}

#[test]
fn public_types_implement_the_traits() {
    assert_io_stream::<TcpStream>();
    assert_debug::<TcpStream>();
    assert_io_stream::<Box<TcpStream>>();
    assert_io_stream::<Box<dyn AsyncIoStream + Send + Sync + Unpin>>();
    assert_input_stream::<TcpInputStream>();
    assert_output_stream::<TcpOutputStream>();
    assert_handle::<TcpSocket>();
    assert_error::<Event>();
    assert_error::<streamish::ReuniteError>();
}

#[test]
fn dyn_trait_object_is_usable() {
    run(async {
        let (client, mut peer) = pair().await;
        let mut boxed: Box<dyn AsyncIoStream + Send + Unpin> = Box::new(client);
        assert!(boxed.is_open());
        boxed.write_sequence(b"can i have ").unwrap();
        boxed.write_subsequence(b"--your coat?--", 2, Some(12)).unwrap();
        boxed.write_byte(b'!').unwrap();
        assert!(boxed.queued() <= 22);
        boxed.finish_output().await.unwrap();
        assert_eq!(boxed.queued(), 0);

        let mut req = [0u8; 22];
        peer.read_exact(&mut req).await.unwrap();
        assert_eq!(&req, b"can i have your coat?!");
        peer.write_all(b"don't say that").await.unwrap();
        peer.flush().await.unwrap();

        let mut resp = [0u8; 14];
        boxed.read_exact(&mut resp).await.unwrap();
        assert_eq!(&resp, b"don't say that");
        assert_eq!(boxed.read_byte().unwrap(), None);
        assert!(!boxed.at_eof());
        boxed.append_bytes(b"xy").unwrap();
        assert_eq!(boxed.buffered(), 2);
        boxed.clear_input();
        assert_eq!(boxed.buffered(), 0);
        assert_eq!(
            boxed.stream_socket().unwrap().peer_addr().unwrap(),
            peer.local_addr().unwrap()
        );
        boxed.close_stream().await.unwrap();
        assert!(!boxed.is_open());
        assert_closed(boxed.write_sequence(b"x"), "write through dyn after close");

        // A collection of different stream types behind one trait object.
        let (a, _pa) = pair().await;
        let (b, _pb) = pair().await;
        let mut b = b;
        let mut streams: Vec<Box<dyn AsyncIoStream + Send + Unpin + '_>> = vec![
            Box::new(a),
            Box::new(Box::new(TcpStream::new(b.socket().clone()))),
            Box::new(&mut b),
        ];
        for s in &mut streams {
            s.write_sequence(b"x").unwrap();
            s.finish_output().await.unwrap();
            s.force_output().unwrap();
            s.clear_output();
        }
        // `&mut dyn` works too.
        let s: &mut (dyn AsyncIoStream + Unpin) = &mut *streams[0];
        assert_eq!(s.read_sequence(&mut [0u8; 1]).unwrap(), 0);
        s.abort();
    });
}

/// Generic code over the input trait: reads everything until EOF with the
/// non-waiting calls, awaiting only when nothing is there.
async fn drain_input(input: &mut (impl AsyncInputStream + Unpin)) -> io::Result<Vec<u8>> {
    let mut got = Vec::new();
    let mut buf = [0u8; 1000];
    loop {
        let n = input.read_sequence(&mut buf)?;
        got.extend_from_slice(&buf[..n]);
        if n == 0 && (input.at_eof() || wait_input(input).await?) {
            return Ok(got);
        }
    }
}

/// Generic code over the output trait.
async fn send_output(output: &mut (impl AsyncOutputStream + Unpin), parts: &[&[u8]]) -> io::Result<()> {
    for p in parts {
        output.write_sequence(p)?;
    }
    output.finish_output().await?;
    output.close().await
}

/// A proxy written against the traits only: input of one connection to
/// output of another.
async fn pump(
    input: &mut (impl AsyncInputStream + Unpin),
    output: &mut (impl AsyncOutputStream + Unpin),
) -> io::Result<u64> {
    let mut total = 0;
    loop {
        let chunk = input.fill_buf().await?;
        if chunk.is_empty() {
            break;
        }
        let n = chunk.len();
        output.write_sequence(chunk)?;
        input.consume(n);
        total += n as u64;
        if output.queued() > 64 * 1024 {
            output.finish_output().await?;
        }
    }
    output.close().await?;
    Ok(total)
}

#[test]
fn generic_functions_take_the_halves() {
    run(async {
        let (client, peer) = pair().await;
        let (mut ci, mut co) = client.split();
        let (mut pi, mut po) = peer.split();
        let (sent, got) = zip(send_output(&mut co, &[b"abc", b"def", b""]), drain_input(&mut pi)).await;
        sent.unwrap();
        assert_eq!(got.unwrap(), b"abcdef");
        let (sent, got) = zip(send_output(&mut po, &[b"ghi"]), drain_input(&mut ci)).await;
        sent.unwrap();
        assert_eq!(got.unwrap(), b"ghi");

        // A proxy between two connections, through the trait halves.
        let (left, mut left_peer) = pair().await;
        let (right, mut right_peer) = pair().await;
        let (mut left_in, _left_out) = left.split();
        let (_right_in, mut right_out) = right.split();
        let data = Rng::new(41).bytes(500_000);
        let feed = async {
            left_peer.write_all(&data).await?;
            left_peer.close().await
        };
        let mut out = Vec::new();
        let (f, (p, r)) = zip(
            feed,
            zip(pump(&mut left_in, &mut right_out), right_peer.read_to_end(&mut out)),
        )
        .await;
        f.unwrap();
        assert_eq!(p.unwrap(), data.len() as u64);
        r.unwrap();
        assert!(out == data);
    });
}

/// The futures-lite toolbox works on the streams (AsyncBufRead lines,
/// copy, read_to_string), with the cl-async calls mixed in.
#[test]
fn futures_lite_toolbox_works() {
    use futures_lite::StreamExt;
    run(async {
        let (client, mut peer) = pair().await;
        peer.write_sequence(b"GET / HTTP/1.0\r\nHost: localhost\r\n\r\nbody")
            .unwrap();
        peer.close_stream().await.unwrap();
        let mut client = client;
        let mut line = String::new();
        client.read_line(&mut line).await.unwrap();
        assert_eq!(line, "GET / HTTP/1.0\r\n");
        let mut until = Vec::new();
        client.read_until(b'\n', &mut until).await.unwrap();
        assert_eq!(until, b"Host: localhost\r\n");
        assert_eq!(client.read_byte().unwrap(), Some(b'\r'));
        let lines: Vec<String> = client.lines().try_collect().await.unwrap();
        assert_eq!(lines, ["", "body"]);

        let (client, mut peer) = pair().await;
        let (input, _output) = client.split();
        peer.write_all(b"copied").await.unwrap();
        peer.close_stream().await.unwrap();
        let mut sink = futures_lite::io::Cursor::new(Vec::new());
        assert_eq!(futures_lite::io::copy(input, &mut sink).await.unwrap(), 6);
        assert_eq!(sink.into_inner(), b"copied");
    });
}

/// Generic code over a trait object, with no `Unpin` or `Send` bound at
/// the call site: every helper is reachable.
async fn ping_then_close(stream: &mut dyn AsyncIoStream) -> io::Result<()> {
    stream.write_all(b"ping").await?;
    stream.finish_output().await?;
    stream.close_stream().await
}

#[test]
fn helpers_reach_a_bare_trait_object() {
    run(async {
        let (client, mut peer) = pair().await;
        let mut boxed: Box<dyn AsyncIoStream + Send> = Box::new(client);
        ping_then_close(&mut *boxed).await.unwrap();
        assert!(!boxed.is_open());
        let mut got = Vec::new();
        peer.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"ping");
    });
}
