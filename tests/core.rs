//! The stream core's semantics, over the public API only (issue 2, "Tests
//! that must exist"), plus cl-async's own stream acceptance tests.

mod common;

use std::fmt::Debug;
use std::io;

use futures_lite::future::{or, poll_once, yield_now, zip};
use futures_lite::io::{AsyncBufRead, AsyncRead, AsyncWrite};
use futures_lite::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
use streamish::{
    AsyncInputStream, AsyncInputStreamExt, AsyncIoStream, AsyncOutputStream, AsyncOutputStreamExt, AsyncStream,
    AsyncStreamExt, DEFAULT_HIGH_WATER, DEFAULT_LOW_WATER, Event, TcpInputStream, TcpListener, TcpOutputStream,
    TcpSocket, TcpStream,
};

use common::{Rng, is_pattern_at, pair, pattern_at, run};

/// Waits until input is buffered or EOF is reached, consuming nothing.
/// Returns whether it is EOF.
async fn wait_input<S: AsyncInputStream + Unpin + ?Sized>(s: &mut S) -> io::Result<bool> {
    Ok(s.fill_buf().await?.is_empty())
}

fn assert_closed(res: io::Result<impl Debug>, what: &str) {
    let err = res.expect_err(what);
    assert_eq!(err.kind(), io::ErrorKind::NotConnected, "{what}: {err}");
    assert!(
        matches!(Event::from(err), Event::Closed { .. }),
        "{what}: not Event::Closed"
    );
}

// ---------------------------------------------------------------------------
// Bytes are never lost, duplicated or reordered, under random chunk sizes.
// ---------------------------------------------------------------------------

/// Writes `data` in random chunks through every write path the output half
/// has, then half-closes.
async fn send_random(out: &mut TcpOutputStream, data: &[u8], rng: &mut Rng) -> io::Result<()> {
    let mut pos = 0;
    while pos < data.len() {
        let n = rng.range(1, 70_000).min(data.len() - pos);
        let chunk = &data[pos..pos + n];
        match rng.range(0, 4) {
            0 => out.write_all(chunk).await?,
            1 => out.write_sequence(chunk)?,
            2 => out.write_bytes(bytes::Bytes::copy_from_slice(chunk))?,
            3 => {
                let mut padded = vec![0xAA; 3];
                padded.extend_from_slice(chunk);
                padded.extend_from_slice(&[0xBB; 5]);
                out.write_subsequence(&padded, 3, Some(3 + n))?;
            }
            _ => {
                for &b in chunk.iter().take(3) {
                    out.write_byte(b)?;
                }
                out.write_all(&chunk[chunk.len().min(3)..]).await?;
            }
        }
        pos += n;
        // The cl-async writes never wait: keep what they queue bounded.
        if out.queued() > 256 * 1024 {
            out.finish_output().await?;
            assert_eq!(out.queued(), 0, "finish_output left bytes queued");
        } else if rng.range(0, 7) == 0 {
            out.force_output()?;
        }
    }
    out.close().await
}

/// Reads until EOF in random sizes through every read path the input half
/// has.
async fn recv_random(inp: &mut TcpInputStream, rng: &mut Rng) -> io::Result<Vec<u8>> {
    let mut got = Vec::new();
    let mut buf = vec![0u8; 70_000];
    for _ in 0..1_000_000 {
        match rng.range(0, 2) {
            0 => {
                let k = rng.range(1, buf.len());
                let n = inp.read(&mut buf[..k]).await?;
                if n == 0 {
                    break;
                }
                got.extend_from_slice(&buf[..n]);
            }
            1 => {
                let avail = inp.fill_buf().await?;
                if avail.is_empty() {
                    break;
                }
                let k = rng.range(1, avail.len());
                got.extend_from_slice(&avail[..k]);
                inp.consume(k);
            }
            _ => {
                let k = rng.range(1, buf.len());
                let n = inp.read_sequence(&mut buf[..k])?;
                if n > 0 {
                    got.extend_from_slice(&buf[..n]);
                } else if inp.at_eof() || wait_input(inp).await? {
                    break;
                }
            }
        }
    }
    assert!(inp.at_eof(), "stopped reading before EOF");
    Ok(got)
}

#[test]
fn random_chunks_arrive_intact_both_ways() {
    run(async {
        for seed in 1..=4u64 {
            let (client, peer) = pair().await;
            let (mut ci, mut co) = client.split();
            let (mut pi, mut po) = peer.split();
            let mut rng = Rng::new(seed);
            let (n_up, n_down) = (rng.range(100_000, 600_000), rng.range(100_000, 600_000));
            let up = rng.bytes(n_up);
            let down = rng.bytes(n_down);
            let (mut r1, mut r2, mut r3, mut r4) = (
                Rng::new(seed * 10),
                Rng::new(seed * 11),
                Rng::new(seed * 12),
                Rng::new(seed * 13),
            );
            let ((s1, got_up), (s2, got_down)) = zip(
                zip(send_random(&mut co, &up, &mut r1), recv_random(&mut pi, &mut r2)),
                zip(send_random(&mut po, &down, &mut r3), recv_random(&mut ci, &mut r4)),
            )
            .await;
            s1.unwrap();
            s2.unwrap();
            let (got_up, got_down) = (got_up.unwrap(), got_down.unwrap());
            assert_eq!(got_up.len(), up.len(), "seed {seed}: client to peer length");
            assert!(got_up == up, "seed {seed}: client to peer bytes differ");
            assert_eq!(got_down.len(), down.len(), "seed {seed}: peer to client length");
            assert!(got_down == down, "seed {seed}: peer to client bytes differ");
            // The counters saw every byte, once.
            assert_eq!(co.socket().bytes_written(), up.len() as u64);
            assert_eq!(pi.socket().bytes_read(), up.len() as u64);
            assert_eq!(po.socket().bytes_written(), down.len() as u64);
            assert_eq!(ci.socket().bytes_read(), down.len() as u64);
        }
    });
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 24, failure_persistence: None, ..Default::default() })]

    /// Any chunking of writes, read back with any sizes, through a joined
    /// stream with no flush call: the bytes come out as they went in.
    #[test]
    fn any_chunking_round_trips(
        chunks in proptest::collection::vec(proptest::collection::vec(proptest::prelude::any::<u8>(), 0..20_000), 0..24),
        reads in proptest::collection::vec(1usize..30_000, 1..16),
    ) {
        let sent: Vec<u8> = chunks.concat();
        let got = run(async {
            let (mut client, mut peer) = pair().await;
            let write = async {
                for c in &chunks {
                    client.write_all(c).await?;
                }
                client.close_stream().await
            };
            let read = async {
                let mut got = Vec::new();
                let mut buf = vec![0u8; 30_000];
                for i in 0.. {
                    let k = reads[i % reads.len()];
                    match peer.read(&mut buf[..k]).await? {
                        0 => break,
                        n => got.extend_from_slice(&buf[..n]),
                    }
                }
                io::Result::Ok(got)
            };
            let (w, r) = zip(write, read).await;
            w.unwrap();
            r.unwrap()
        });
        proptest::prop_assert_eq!(got, sent);
    }
}

// ---------------------------------------------------------------------------
// All bytes before EOF are readable after it.
// ---------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------
// read_sequence / read_byte never wait, and "nothing yet" is not EOF.
// ---------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------
// Writing after close fails with Closed.
// ---------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------
// A request/response exchange with no flush call, both directions.
// ---------------------------------------------------------------------------

#[test]
fn request_response_without_flush() {
    run(async {
        let (mut client, mut peer) = pair().await;
        const ROUNDS: u32 = 20;
        let serve = async {
            let mut req = [0u8; 8];
            let mut served = 0;
            loop {
                match peer.read_exact(&mut req).await {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => break,
                    Err(e) => return Err(e),
                }
                let n = u32::from_be_bytes(req[4..].try_into().unwrap());
                // The answer is only queued; the next read sends it.
                peer.write_all(&[b"resp".as_slice(), &(n * 2).to_be_bytes()].concat())
                    .await?;
                served += 1;
            }
            io::Result::Ok(served)
        };
        let ask = async {
            let mut resp = [0u8; 8];
            for n in 0..ROUNDS {
                // Queued; the read below sends it.
                client
                    .write_all(&[b"reqq".as_slice(), &n.to_be_bytes()].concat())
                    .await?;
                client.read_exact(&mut resp).await?;
                assert_eq!(&resp[..4], b"resp");
                assert_eq!(u32::from_be_bytes(resp[4..].try_into().unwrap()), n * 2);
            }
            client.close_stream().await
        };
        let (served, asked) = zip(serve, ask).await;
        asked.unwrap();
        assert_eq!(served.unwrap(), ROUNDS);
    });
}

#[test]
fn request_response_with_write_sequence_without_flush() {
    run(async {
        let (mut client, mut peer) = pair().await;
        const ROUNDS: usize = 10;
        /// Reads `want.len()` bytes with the non-waiting calls; waiting for
        /// input is what pushes this side's queued output.
        async fn expect(s: &mut TcpStream, want: &[u8]) -> io::Result<()> {
            let mut got = Vec::new();
            let mut buf = [0u8; 64];
            while got.len() < want.len() {
                if wait_input(s).await? {
                    return Err(io::ErrorKind::UnexpectedEof.into());
                }
                let n = s.read_sequence(&mut buf[..want.len() - got.len()])?;
                got.extend_from_slice(&buf[..n]);
            }
            assert_eq!(got, want);
            Ok(())
        }
        let serve = async {
            for round in 0..ROUNDS {
                expect(&mut peer, format!("can i have your coat? #{round}").as_bytes()).await?;
                peer.write_sequence(format!("don't say that #{round}").as_bytes())?;
            }
            // Waiting for the client's EOF sends the last answer.
            assert!(wait_input(&mut peer).await?);
            io::Result::Ok(())
        };
        let ask = async {
            for round in 0..ROUNDS {
                client.write_sequence(format!("can i have your coat? #{round}").as_bytes())?;
                expect(&mut client, format!("don't say that #{round}").as_bytes()).await?;
            }
            client.close_stream().await
        };
        let (s, a) = zip(serve, ask).await;
        s.unwrap();
        a.unwrap();
    });
}

// ---------------------------------------------------------------------------
// Backpressure holds memory bounded against a peer that does not read.
// ---------------------------------------------------------------------------

/// Hysteresis: a writer held back at the high-water mark stays held until
/// its queue is down to the low-water mark, even for small writes that
/// would fit under the high mark (the small-write fast path included). The
/// marks are far apart and the peer reads a little at a time, so the
/// kernel makes room in pieces smaller than the queue and flushes leave it
/// between the two marks.
///
/// Held means `Pending` without a wake-up (waiting for room in the kernel);
/// a `Pending` that wakes the task at once is a budget's yield, not
/// backpressure.
#[test]
fn a_held_writer_resumes_only_at_the_low_water_mark() {
    use std::pin::Pin;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::task::{Context, Poll, Wake, Waker};
    #[derive(Default)]
    struct Flag(AtomicBool);
    impl Wake for Flag {
        fn wake(self: Arc<Self>) {
            self.0.store(true, Ordering::SeqCst);
        }
    }
    run(async {
        let (mut client, mut peer) = pair().await;
        let (high, low) = (1 << 20, 256 << 10);
        client.socket().set_water_marks(high, low).unwrap();
        let small = [5u8; 100];
        let mut buf = vec![0u8; 4096];
        let (mut held, mut resumed) = (false, 0);
        for _ in 0..200_000 {
            let flag = Arc::new(Flag::default());
            let waker = Waker::from(flag.clone());
            match Pin::new(&mut client).poll_write(&mut Context::from_waker(&waker), &small) {
                Poll::Pending => held |= !flag.0.load(Ordering::SeqCst),
                Poll::Ready(res) => {
                    assert_eq!(res.unwrap(), small.len());
                    if held {
                        assert!(
                            client.queued() <= low + small.len(),
                            "resumed with {} bytes queued",
                            client.queued()
                        );
                        held = false;
                        resumed += 1;
                    }
                }
            }
            // The peer reads only while the writer is held: a write that is
            // accepted adds to the queue, one that is not pushes it out.
            if held {
                if let Some(n) = poll_once(peer.read(&mut buf)).await {
                    n.unwrap();
                }
            }
            if resumed == 5 {
                break;
            }
        }
        assert_eq!(resumed, 5, "the writer was held back and resumed five times");
    });
}

#[test]
fn backpressure_bounds_the_queue_against_a_peer_that_does_not_read() {
    run(async {
        const MAX_CHUNK: usize = 24 * 1024;
        for (high, low) in [(DEFAULT_HIGH_WATER, DEFAULT_LOW_WATER), (8 * 1024, 2 * 1024)] {
            let (mut client, mut peer) = pair().await;
            client.socket().set_water_marks(high, low).unwrap();
            assert_eq!(client.socket().water_marks(), (high, low));
            let mut rng = Rng::new(high as u64);
            let mut offset = 0u64;
            let mut held_back = false;
            // The peer reads nothing: write until the writer is held back.
            // The kernel's buffers are finite, so this is bounded.
            for _ in 0..100_000 {
                let len = rng.range(1, MAX_CHUNK);
                let chunk = pattern_at(offset, len);
                match poll_once(client.write(&chunk)).await {
                    Some(Ok(n)) => {
                        assert!(n > 0 && n <= len);
                        offset += n as u64;
                    }
                    Some(Err(e)) => panic!("write failed: {e}"),
                    None => {
                        held_back = true;
                        break;
                    }
                }
                assert!(
                    client.queued() <= high + len,
                    "queued {} > high-water {high} + write {len}",
                    client.queued()
                );
            }
            assert!(held_back, "the writer was never held back after {offset} bytes");
            assert!(client.queued() <= high + MAX_CHUNK);
            // Still bounded on further attempts while the peer does not read.
            for _ in 0..3 {
                let chunk = pattern_at(offset, MAX_CHUNK);
                if let Some(n) = poll_once(client.write(&chunk)).await {
                    offset += n.unwrap() as u64;
                }
                assert!(client.queued() <= high + MAX_CHUNK);
            }

            // Now the peer reads: the writer resumes, and every byte arrives
            // in order.
            let extra = 300_000u64;
            let total = offset + extra;
            let write = async {
                let mut off = offset;
                while off < total {
                    let len = rng.range(1, MAX_CHUNK).min((total - off) as usize);
                    client.write_all(&pattern_at(off, len)).await?;
                    assert!(client.queued() <= high + len);
                    off += len as u64;
                }
                client.close().await
            };
            let read = async {
                let mut buf = vec![0u8; 64 * 1024];
                let mut pos = 0u64;
                loop {
                    let n = peer.read(&mut buf).await?;
                    if n == 0 {
                        break;
                    }
                    assert!(is_pattern_at(pos, &buf[..n]), "bytes at {pos}..{} differ", pos + n as u64);
                    pos += n as u64;
                }
                io::Result::Ok(pos)
            };
            let (w, r) = zip(write, read).await;
            w.unwrap();
            assert_eq!(r.unwrap(), total);
            assert_eq!(client.bytes_written(), total);
        }
    });
}

// ---------------------------------------------------------------------------
// Close flushes and the peer sees EOF; abort sends nothing queued.
// ---------------------------------------------------------------------------

#[test]
fn close_flushes_queued_output_and_the_peer_sees_eof() {
    run(async {
        let (mut client, mut peer) = pair().await;
        let data = Rng::new(11).bytes(1 << 20);
        client.write_sequence(&data).unwrap();
        let mut got = Vec::new();
        let (closed, read) = zip(client.close_stream(), peer.read_to_end(&mut got)).await;
        closed.unwrap();
        read.unwrap();
        assert!(
            got == data,
            "the peer got {} of {} bytes, or other bytes",
            got.len(),
            data.len()
        );
        assert!(!client.is_open());
        assert_eq!(client.queued(), 0);
        assert_eq!(client.bytes_written(), data.len() as u64);
        assert!(peer.at_eof());
    });
}

#[test]
fn close_from_a_socket_handle_finishes_on_the_next_poll() {
    run(async {
        // TcpSocket::close returns at once; the next poll of a stream over
        // the socket (here: a read) sends what is queued, shuts down the
        // write side and releases the socket.
        let (mut client, mut peer) = pair().await;
        let socket: TcpSocket = client.socket().clone();
        socket.write(b"queued before close").unwrap();
        socket.close();
        assert!(socket.is_closed());
        assert!(!client.is_open());
        assert_closed(socket.write(b"x"), "TcpSocket::write after close");
        assert_closed(client.write_sequence(b"x"), "write_sequence after TcpSocket::close");
        let mut got = Vec::new();
        let mut buf = [0u8; 16];
        let (r, polled) = zip(peer.read_to_end(&mut got), client.read(&mut buf)).await;
        r.unwrap();
        assert_eq!(got, b"queued before close");
        assert_closed(polled, "a read on a stream whose socket was closed");
        assert!(!socket.is_connected());

        // With close_stream, the same.
        let (mut client, mut peer) = pair().await;
        client.socket().write(b"also queued").unwrap();
        client.socket().close();
        let mut got = Vec::new();
        let (c, r) = zip(client.close_stream(), peer.read_to_end(&mut got)).await;
        c.unwrap();
        r.unwrap();
        assert_eq!(got, b"also queued");
    });
}

#[test]
fn abort_does_not_send_queued_output() {
    run(async {
        let (mut client, mut peer) = pair().await;
        // Something the peer does receive first.
        client.write_sequence(b"sent").unwrap();
        client.finish_output().await.unwrap();
        let mut head = [0u8; 4];
        peer.read_exact(&mut head).await.unwrap();
        assert_eq!(&head, b"sent");

        let secret = vec![b'Q'; 100_000];
        client.write_sequence(&secret).unwrap();
        assert!(client.queued() <= secret.len());
        client.abort();
        assert!(!client.is_open());
        assert_eq!(client.queued(), 0);

        let mut got = Vec::new();
        match peer.read_to_end(&mut got).await {
            Ok(_) => {}
            Err(e) => assert_eq!(e.kind(), io::ErrorKind::ConnectionReset, "{e}"),
        }
        // What went straight to the kernel may arrive; nothing else does.
        assert!(
            got.iter().all(|&b| b == b'Q'),
            "the peer got {} other bytes after abort",
            got.len()
        );
    });
}

#[test]
fn abort_with_force_resets_the_peer() {
    run(async {
        let (client, mut peer) = pair().await;
        client.socket().write(&[b'Z'; 50_000]).unwrap();
        client.socket().close_force();
        assert!(client.socket().is_closed());
        let mut got = Vec::new();
        let res = peer.read_to_end(&mut got).await;
        assert!(
            matches!(&res, Err(e) if e.kind() == io::ErrorKind::ConnectionReset) || res.is_ok(),
            "{res:?}"
        );
        // A write may go straight to the kernel, and the send behind may
        // flush on async-io's thread before the abort: what arrives is
        // the written bytes, never anything else.
        assert!(got.iter().all(|&b| b == b'Z'), "the peer got other bytes");
    });
}

#[test]
fn abort_and_close_wake_pending_readers_and_writers() {
    run(async {
        // A reader waiting for input and a writer held back by a full
        // kernel, on two halves; aborting through a third handle ends both
        // with Closed rather than leaving them hanging.
        let (client, _peer) = pair().await;
        let socket = client.socket().clone();
        socket.set_water_marks(4096, 1024).unwrap();
        let (mut input, mut output) = client.split();
        let reader = async {
            let mut buf = [0u8; 64];
            input.read(&mut buf).await
        };
        let writer = async {
            let chunk = vec![0u8; 4096];
            for _ in 0..100_000 {
                output.write(&chunk).await?;
            }
            io::Result::<()>::Err(io::Error::other(
                "the peer never reads, yet the writer was never held back",
            ))
        };
        let abort = async {
            // Let the others reach their waits: the writer fills the kernel.
            for _ in 0..1000 {
                yield_now().await;
                if socket.queued() >= 1024 {
                    break;
                }
            }
            socket.close_force();
        };
        let ((r, w), ()) = zip(zip(reader, writer), abort).await;
        assert_closed(r, "pending read after abort");
        assert_closed(w, "held-back write after abort");

        // Graceful close from another handle also ends a pending read.
        let (client, mut peer) = pair().await;
        let (mut input, mut output) = client.split();
        let reader = async {
            let mut buf = [0u8; 64];
            input.read(&mut buf).await
        };
        let mut got = Vec::new();
        let (r, (c, p)) = zip(reader, zip(output.close_stream(), peer.read_to_end(&mut got))).await;
        c.unwrap();
        p.unwrap();
        assert_closed(r, "pending read after close_stream on the other half");
    });
}

#[test]
fn a_peer_reset_is_a_typed_error() {
    run(async {
        let (mut client, mut peer) = pair().await;
        peer.write_sequence(b"unread by the peer").unwrap();
        peer.finish_output().await.unwrap();
        peer.abort(); // RST
        let mut got = Vec::new();
        // Bytes sent before the reset may or may not be readable first; the
        // end is a reset, never a clean EOF.
        let err = client.read_to_end(&mut got).await.expect_err("a reset read as EOF");
        assert_eq!(err.kind(), io::ErrorKind::ConnectionReset, "{err}");
        assert!(matches!(Event::from(err), Event::Reset { .. }));
        // Writing to the reset connection fails too, with a typed error.
        client.write_sequence(b"anyone there?").ok();
        let err = client.finish_output().await.expect_err("the peer is gone");
        assert!(
            matches!(err.kind(), io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe),
            "{err}"
        );
        assert!(matches!(
            Event::from(err),
            Event::Reset { .. } | Event::BrokenPipe { .. }
        ));
        // And it stays failed; closing still works.
        assert!(client.write_sequence(b"x").is_err() || client.finish_output().await.is_err());
        client.close_stream().await.ok();
        assert!(!client.is_open());
    });
}

/// The descriptor is closed once a stream is closed, aborted or dropped.
#[cfg(target_os = "linux")]
#[test]
fn closing_releases_the_file_descriptor() {
    use std::os::fd::AsRawFd;
    run(async {
        for how in ["close_stream", "abort", "drop"] {
            let server = TcpListener::bind("127.0.0.1:0").unwrap();
            let std_stream = std::net::TcpStream::connect(server.local_addr()).unwrap();
            let fd = std_stream.as_raw_fd();
            let path = format!("/proc/self/fd/{fd}");
            // The socket's inode: a reused descriptor number names another.
            let before = std::fs::read_link(&path).unwrap();
            let mut stream = Some(TcpStream::try_from(std_stream).unwrap());
            let (mut peer, _) = server.accept().await.unwrap();
            match how {
                "close_stream" => stream.as_mut().unwrap().close_stream().await.unwrap(),
                "abort" => stream.as_mut().unwrap().abort(),
                _ => drop(stream.take()),
            }
            let after = std::fs::read_link(&path).ok();
            assert_ne!(after.as_ref(), Some(&before), "{how}: the descriptor is still open");
            let mut got = Vec::new();
            let res = peer.read_to_end(&mut got).await;
            assert!(got.is_empty());
            if how == "close_stream" {
                res.unwrap();
            }
        }
    });
}

// ---------------------------------------------------------------------------
// Half-close: shut down the write side, keep reading.
// ---------------------------------------------------------------------------

#[test]
fn half_close_then_read_the_reply() {
    run(async {
        for how in ["shutdown_write", "AsyncWrite::close", "output half"] {
            let (client, mut peer) = pair().await;
            let request = format!("request via {how}");
            let serve = async {
                let mut got = Vec::new();
                peer.read_to_end(&mut got).await?; // ends at the client's FIN
                assert_eq!(got, request.as_bytes());
                peer.write_sequence(b"reply after your EOF: ")?;
                peer.write_all(&got).await?;
                peer.close_stream().await
            };
            let ask = async {
                let mut client = client;
                client.write_sequence(request.as_bytes())?;
                let mut reply = Vec::new();
                match how {
                    "shutdown_write" => client.shutdown_write().await?,
                    "AsyncWrite::close" => client.close().await?,
                    _ => {
                        let (mut input, mut output) = client.split();
                        output.shutdown_write().await?;
                        assert!(output.write_sequence(b"x").is_err());
                        input.read_to_end(&mut reply).await?;
                        return io::Result::Ok(reply);
                    }
                }
                assert_closed(client.write_sequence(b"x"), "write after half-close");
                assert!(client.is_open(), "a half-closed stream is still open for reading");
                client.read_to_end(&mut reply).await?;
                assert!(client.at_eof());
                Ok(reply)
            };
            let (s, a) = zip(serve, ask).await;
            s.unwrap();
            assert_eq!(
                a.unwrap(),
                format!("reply after your EOF: {request}").as_bytes(),
                "{how}"
            );
        }
    });
}

// ---------------------------------------------------------------------------
// Split and reunite.
// ---------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------
// Dropping a read future mid-way loses nothing.
// ---------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------
// The traits from outside the crate: trait objects and generic code.
// ---------------------------------------------------------------------------

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
        assert_eq!(boxed.socket().peer_addr().unwrap(), peer.local_addr().unwrap());
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

#[test]
fn water_marks_must_be_ordered() {
    run(async {
        let (client, _peer) = pair().await;
        let socket = client.socket();
        assert_eq!(socket.water_marks(), (DEFAULT_HIGH_WATER, DEFAULT_LOW_WATER));
        let too_big = u32::MAX as usize + 1;
        for (high, low) in [(0, 0), (10, 20), (too_big, 0)] {
            let err = socket.set_water_marks(high, low).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        }
        assert_eq!(socket.water_marks(), (DEFAULT_HIGH_WATER, DEFAULT_LOW_WATER));
        socket.set_water_marks(1, 0).unwrap();
        socket.set_water_marks(100, 100).unwrap();
        assert_eq!(socket.water_marks(), (100, 100));
        socket.set_water_marks(too_big - 1, 1).unwrap();
        assert_eq!(socket.water_marks(), (too_big - 1, 1));
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

// ---------------------------------------------------------------------------
// cl-async's stream tests (test/async-stream.lisp, test/tcp.lisp).
// ---------------------------------------------------------------------------

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
