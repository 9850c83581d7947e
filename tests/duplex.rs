//! The in-memory pair: the TCP stream's semantics with no socket, and the
//! wake-ups that let tasks on either end wait for each other.

mod common;

use std::fmt::Debug;
use std::io;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll, Wake, Waker};
use std::thread;

use futures_lite::future::{self, zip};
use futures_lite::io::{AsyncBufRead, AsyncRead, AsyncWrite};
use futures_lite::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
use streamish::{
    AsyncInputStream, AsyncIoStream, AsyncOutputStream, AsyncOutputStreamExt, AsyncStream, AsyncStreamExt,
    DEFAULT_MAX_QUEUED, DuplexStream, Event, duplex,
};

use common::{assert_closed, is_pattern_at, join, pattern_at, run};

fn assert_stream<T: AsyncIoStream + AsyncRead + AsyncBufRead + AsyncWrite + Send + Sync + Unpin + Debug + 'static>() {}

/// A waker that counts its wake-ups, to check who wakes whom.
#[derive(Default)]
struct Count(AtomicUsize);

impl Wake for Count {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

fn counting_waker() -> (Arc<Count>, Waker) {
    let count = Arc::new(Count::default());
    (count.clone(), Waker::from(count))
}

fn woken(count: &Count) -> usize {
    count.0.load(Ordering::SeqCst)
}

fn poll_read(s: &mut DuplexStream, waker: &Waker, buf: &mut [u8]) -> Poll<io::Result<usize>> {
    Pin::new(s).poll_read(&mut Context::from_waker(waker), buf)
}

fn poll_write(s: &mut DuplexStream, waker: &Waker, buf: &[u8]) -> Poll<io::Result<usize>> {
    Pin::new(s).poll_write(&mut Context::from_waker(waker), buf)
}

fn assert_event(res: io::Result<impl Debug>, kind: io::ErrorKind, what: &str) -> Event {
    let err = res.expect_err(what);
    assert_eq!(err.kind(), kind, "{what}: {err}");
    Event::from(err)
}

#[test]
fn duplex_stream_implements_the_traits() {
    assert_stream::<DuplexStream>();
    let (a, b) = duplex(8);
    assert!(format!("{a:?}").contains("DuplexStream"));
    assert!(a.stream_socket().is_none() && b.stream_socket().is_none());
    assert!(a.is_open() && b.is_open());
}

#[test]
fn write_all_and_read_exact_round_trip_both_ways() {
    run(async {
        let (mut a, mut b) = duplex(16);
        let mut buf = [0u8; 5];
        a.write_all(b"hello").await.unwrap();
        b.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"hello");
        b.write_all(b"world").await.unwrap();
        a.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"world");
    });
}

#[test]
fn read_sequence_on_an_empty_pipe_returns_0_and_is_not_eof() {
    let (_a, mut b) = duplex(16);
    let mut buf = [0u8; 8];
    assert_eq!(b.read_sequence(&mut buf).unwrap(), 0);
    assert_eq!(b.read_byte().unwrap(), None);
    assert!(!b.eof_seen());
    assert!(!b.at_eof());
    assert_eq!(b.buffered(), 0);
}

#[test]
fn read_byte_at_eof_fails_with_eof() {
    let (mut a, mut b) = duplex(16);
    a.write_byte(b'x').unwrap();
    drop(a);
    assert!(b.eof_seen());
    assert!(!b.at_eof()); // the byte comes first
    assert_eq!(b.read_byte().unwrap(), Some(b'x'));
    assert!(b.at_eof());
    let ev = assert_event(b.read_byte(), io::ErrorKind::UnexpectedEof, "read_byte at EOF");
    assert!(matches!(ev, Event::Eof { socket: None }));
}

#[test]
fn half_close_gives_the_peer_eof_while_the_other_direction_works() {
    run(async {
        let (mut a, mut b) = duplex(16);
        a.write_all(b"last words").await.unwrap();
        a.close().await.unwrap();
        a.close().await.unwrap(); // harmless to repeat
        let mut got = Vec::new();
        b.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"last words");
        assert!(b.at_eof());
        assert_closed(a.write_sequence(b"more"), "write after the half-close");

        b.write_all(b"reply").await.unwrap();
        let mut buf = [0u8; 5];
        a.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"reply");
        assert!(a.is_open());
    });
}

#[test]
fn poll_write_waits_at_capacity_and_the_reader_wakes_it() {
    let (mut a, mut b) = duplex(4);
    let (count, waker) = counting_waker();
    assert!(matches!(poll_write(&mut a, &waker, b"abcdef"), Poll::Ready(Ok(4))));
    assert!(poll_write(&mut a, &waker, b"ef").is_pending());
    assert_eq!(woken(&count), 0);
    let mut buf = [0u8; 3];
    assert_eq!(b.read_sequence(&mut buf).unwrap(), 3);
    assert_eq!(woken(&count), 1);
    assert!(matches!(poll_write(&mut a, &waker, b"ef"), Poll::Ready(Ok(2))));
    assert_eq!(b.buffered(), 3);
}

#[test]
fn a_writer_of_three_capacities_finishes_only_while_the_reader_reads() {
    const CAP: usize = 64;
    let (mut a, mut b) = duplex(CAP);
    let data = pattern_at(0, 3 * CAP);
    let mut got = Vec::new();
    let mut rounds = 0;
    {
        let mut write = pin!(a.write_all(&data));
        loop {
            rounds += 1;
            assert!(rounds <= 100, "the writer never finished");
            if let Some(res) = future::block_on(future::poll_once(write.as_mut())) {
                res.unwrap();
                break;
            }
            assert!(b.buffered() <= CAP, "the pipe passed its capacity");
            let mut buf = [0u8; CAP / 2];
            let n = b.read_sequence(&mut buf).unwrap();
            assert!(n > 0, "the writer waits although there is room");
            got.extend_from_slice(&buf[..n]);
        }
    }
    // 3 capacities, read half a capacity at a time: at least 4 reads before
    // the last capacity fits.
    assert!(rounds >= 5, "the writer did not wait for the reader ({rounds} rounds)");
    let mut buf = [0u8; 3 * CAP];
    let n = b.read_sequence(&mut buf).unwrap();
    got.extend_from_slice(&buf[..n]);
    assert_eq!(got, data);
}

#[test]
fn write_sequence_beyond_capacity_is_accepted_whole() {
    let (mut a, mut b) = duplex(4);
    let data = pattern_at(0, 1000);
    a.write_sequence(&data).unwrap();
    a.write_byte(b'!').unwrap();
    assert_eq!(a.queued(), 0); // handed to the peer at once
    a.force_output().unwrap();
    assert_eq!(b.buffered(), 1001);
    let (_, waker) = counting_waker();
    assert!(poll_write(&mut a, &waker, b"x").is_pending()); // the pipe is over capacity
    let mut buf = vec![0u8; 2000];
    assert_eq!(b.read_sequence(&mut buf).unwrap(), 1001);
    assert_eq!(&buf[..1000], &data[..]);
    assert_eq!(buf[1000], b'!');
}

#[test]
fn write_sequence_past_the_bound_fails_with_queue_full_and_stays_failed() {
    let (mut a, b) = duplex(4);
    let big = vec![0u8; DEFAULT_MAX_QUEUED + 1];
    let ev = assert_event(a.write_sequence(&big), io::ErrorKind::OutOfMemory, "too much");
    assert!(matches!(ev, Event::QueueFull { .. }));
    assert_eq!(b.buffered(), 0); // refused whole
    assert_event(a.write_byte(b'x'), io::ErrorKind::OutOfMemory, "a later write");
    assert_event(
        future::block_on(a.finish_output()),
        io::ErrorKind::OutOfMemory,
        "finish_output",
    );
}

#[test]
fn capacity_zero_behaves_as_one() {
    run(async {
        let (mut a, mut b) = duplex(0);
        let (_, waker) = counting_waker();
        assert!(matches!(poll_write(&mut a, &waker, b"ab"), Poll::Ready(Ok(1))));
        assert!(poll_write(&mut a, &waker, b"b").is_pending());
        let mut got = Vec::new();
        let (w, r) = zip(
            async {
                a.write_all(b"bc").await?;
                a.close().await
            },
            b.read_to_end(&mut got),
        )
        .await;
        w.unwrap();
        r.unwrap();
        assert_eq!(got, b"abc");
    });
}

#[test]
fn take_line_take_until_and_peek() {
    let (mut a, mut b) = duplex(64);
    a.write_sequence(b"key=value;hello\nwor").unwrap();
    let mut head = [0u8; 3];
    assert_eq!(b.peek_sequence(&mut head), 3);
    assert_eq!(&head, b"key");
    assert_eq!(b.take_until(b';').unwrap().as_deref(), Some(&b"key=value;"[..]));
    assert_eq!(b.take_line().unwrap().as_deref(), Some(&b"hello\n"[..]));
    assert_eq!(b.take_line().unwrap(), None); // "wor" waits for its end
    assert_eq!(b.buffered(), 3);
    a.write_sequence(b"ld\n").unwrap();
    assert_eq!(b.take_line().unwrap().as_deref(), Some(&b"world\n"[..]));
    assert_eq!(b.buffered(), 0);
}

#[test]
fn take_line_joins_bytes_lent_by_fill_buf_with_the_pipe() {
    run(async {
        let (mut a, mut b) = duplex(64);
        a.write_sequence(b"par").unwrap();
        assert_eq!(b.fill_buf().await.unwrap(), b"par");
        a.write_sequence(b"tial\nrest").unwrap();
        assert_eq!(b.buffered(), 12);
        let mut all = [0u8; 12];
        assert_eq!(b.peek_sequence(&mut all), 12);
        assert_eq!(&all, b"partial\nrest");
        assert_eq!(b.take_line().unwrap().as_deref(), Some(&b"partial\n"[..]));
        let mut buf = [0u8; 8];
        assert_eq!(b.read_sequence(&mut buf).unwrap(), 4);
        assert_eq!(&buf[..4], b"rest");
    });
}

#[test]
fn append_bytes_and_clear_input_act_on_this_ends_input() {
    let (mut a, mut b) = duplex(64);
    a.write_sequence(b"from a,").unwrap();
    b.append_bytes(b" appended").unwrap();
    assert_eq!(b.buffered(), 16);
    assert_eq!(a.buffered(), 0);
    let mut buf = [0u8; 32];
    assert_eq!(b.read_sequence(&mut buf).unwrap(), 16);
    assert_eq!(&buf[..16], b"from a, appended");

    a.write_sequence(b"dropped").unwrap();
    b.clear_input();
    assert_eq!(b.buffered(), 0);
    a.clear_output(); // nothing to drop: the peer already has it all
    a.write_sequence(b"kept").unwrap();
    a.clear_output();
    assert_eq!(b.read_sequence(&mut buf).unwrap(), 4);
    assert_eq!(&buf[..4], b"kept");
}

#[test]
fn a_waiting_reader_is_woken_by_bytes_eof_and_abort() {
    let (count, waker) = counting_waker();
    let mut buf = [0u8; 8];

    let (mut a, mut b) = duplex(8);
    assert!(poll_read(&mut b, &waker, &mut buf).is_pending());
    a.write_sequence(b"hi").unwrap();
    assert_eq!(woken(&count), 1);
    assert!(matches!(poll_read(&mut b, &waker, &mut buf), Poll::Ready(Ok(2))));

    assert!(poll_read(&mut b, &waker, &mut buf).is_pending());
    drop(a);
    assert_eq!(woken(&count), 2);
    assert!(matches!(poll_read(&mut b, &waker, &mut buf), Poll::Ready(Ok(0))));

    let (mut a, mut b) = duplex(8);
    assert!(poll_read(&mut b, &waker, &mut buf).is_pending());
    a.abort();
    assert_eq!(woken(&count), 3);
    assert!(matches!(poll_read(&mut b, &waker, &mut buf), Poll::Ready(Err(_))));
}

#[test]
fn abort_gives_the_peer_connection_reset() {
    let (mut a, mut b) = duplex(64);
    a.write_sequence(b"never read").unwrap();
    a.abort();
    assert!(!a.is_open());
    assert!(b.is_open());
    assert!(!b.eof_seen());
    let mut buf = [0u8; 16];
    let ev = assert_event(
        b.read_sequence(&mut buf),
        io::ErrorKind::ConnectionReset,
        "read after abort",
    );
    assert!(matches!(ev, Event::Reset { .. }));
    assert_event(
        b.write_sequence(b"x"),
        io::ErrorKind::ConnectionReset,
        "write after abort",
    );
    assert_closed(a.read_sequence(&mut buf), "read on the aborted end");
    assert_closed(a.write_sequence(b"x"), "write on the aborted end");
    a.abort(); // harmless to repeat
}

#[test]
fn a_waiting_writer_is_woken_by_the_peers_abort() {
    let (count, waker) = counting_waker();
    let (mut a, mut b) = duplex(2);
    assert!(matches!(poll_write(&mut a, &waker, b"ab"), Poll::Ready(Ok(2))));
    assert!(poll_write(&mut a, &waker, b"c").is_pending());
    b.abort();
    assert_eq!(woken(&count), 1);
    let res = match poll_write(&mut a, &waker, b"c") {
        Poll::Ready(res) => res,
        Poll::Pending => panic!("the writer still waits"),
    };
    assert_event(res, io::ErrorKind::ConnectionReset, "write to the aborted peer");
}

#[test]
fn drop_gives_the_peer_eof_after_the_data() {
    run(async {
        let (mut a, mut b) = duplex(4);
        a.write_sequence(b"everything I wrote").unwrap();
        drop(a);
        let mut got = String::new();
        b.read_to_string(&mut got).await.unwrap();
        assert_eq!(got, "everything I wrote");
        assert!(b.at_eof());
        let ev = assert_event(
            b.write_sequence(b"x"),
            io::ErrorKind::BrokenPipe,
            "write to a dropped peer",
        );
        assert!(matches!(ev, Event::BrokenPipe { .. }));
    });
}

#[test]
fn close_stream_then_write_fails_with_closed() {
    run(async {
        let (mut a, mut b) = duplex(16);
        a.write_sequence(b"bye").unwrap();
        b.write_sequence(b"unread").unwrap();
        a.close_stream().await.unwrap();
        a.close_stream().await.unwrap(); // harmless to repeat
        assert!(!a.is_open());
        assert_closed(a.write_sequence(b"x"), "write_sequence after close_stream");
        assert_closed(a.write_all(b"x").await, "write_all after close_stream");
        assert_closed(a.read_sequence(&mut [0u8; 4]), "read after close_stream");
        assert_closed(a.take_line(), "take_line after close_stream");
        assert_closed(a.finish_output().await, "finish_output after close_stream");

        let mut got = Vec::new();
        b.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"bye");
        assert_event(
            b.write_sequence(b"x"),
            io::ErrorKind::BrokenPipe,
            "write to a closed peer",
        );
    });
}

#[test]
fn flush_and_finish_output_are_ready_at_once() {
    run(async {
        let (mut a, b) = duplex(4);
        a.write_sequence(b"more than four").unwrap();
        a.flush().await.unwrap();
        a.finish_output().await.unwrap();
        assert_eq!(a.queued(), 0);
        assert_eq!(b.buffered(), 14);
    });
}

/// Echoes every line back until end of file, then half-closes.
async fn line_echo(stream: &mut dyn AsyncIoStream) -> io::Result<usize> {
    let mut lines = 0;
    let mut line = Vec::new();
    while stream.read_until(b'\n', &mut line).await? > 0 {
        stream.write_sequence(&line)?;
        line.clear();
        lines += 1;
    }
    stream.finish_output().await?;
    stream.close().await?;
    Ok(lines)
}

#[test]
fn a_generic_line_echo_runs_over_a_pair() {
    run(async {
        let (mut client, mut server) = duplex(8);
        let talk = async {
            let mut got = Vec::new();
            for line in ["one\n", "two two\n", "and a much longer third line\n"] {
                client.write_all(line.as_bytes()).await?;
                let mut back = String::new();
                (&mut client).take(line.len() as u64).read_to_string(&mut back).await?;
                got.push(back);
            }
            client.close().await?;
            let mut rest = Vec::new();
            client.read_to_end(&mut rest).await?;
            io::Result::Ok((got, rest))
        };
        let (echo, talk) = zip(line_echo(&mut server), talk).await;
        assert_eq!(echo.unwrap(), 3);
        let (got, rest) = talk.unwrap();
        assert_eq!(got, ["one\n", "two two\n", "and a much longer third line\n"]);
        assert!(rest.is_empty());
    });
}

/// Fowler–Noll–Vo: enough to tell two 1 MiB transfers apart.
fn checksum(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
    })
}

#[test]
fn a_reader_and_a_writer_on_two_threads_exchange_one_mib() {
    const LEN: usize = 1 << 20;
    let (mut a, mut b) = duplex(4096);
    let writer = thread::spawn(move || {
        future::block_on(async {
            let data = pattern_at(0, LEN);
            for chunk in data.chunks(10_000) {
                a.write_all(chunk).await?;
            }
            a.close().await?;
            io::Result::Ok(checksum(&data))
        })
    });
    let reader = thread::spawn(move || {
        future::block_on(async {
            let mut got = Vec::with_capacity(LEN);
            b.read_to_end(&mut got).await?;
            io::Result::Ok(got)
        })
    });
    let sent = join(writer).unwrap();
    let got = join(reader).unwrap();
    assert_eq!(got.len(), LEN);
    assert_eq!(checksum(&got), sent);
    assert!(is_pattern_at(0, &got));
}
