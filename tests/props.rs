//! Property tests: random sequences of writes (0 to 1 MiB each), flushes,
//! reads with random buffer sizes, half-closes and closes, over a loopback
//! pair, through both faces: the bytes that arrive are exactly the bytes
//! sent. Reads, writes and flushes are also canceled at random (polled
//! once, then dropped), which must lose or duplicate nothing.
//!
//! Each case sends at most 8 MiB; the case counts are modest so the file
//! runs in seconds.

mod common;

use std::collections::VecDeque;
use std::io;
use std::sync::{Arc, Mutex};

use async_executor::Executor;
use futures_lite::future::{poll_once, yield_now, zip};
use futures_lite::{AsyncBufRead, AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
use proptest::prelude::*;
use streamish::{
    AsyncInputStream, AsyncOutputStream, AsyncOutputStreamExt, AsyncStreamExt, Event, ReadData, TcpListener, TcpSocket,
    TcpStream, tcp_connect, tcp_server,
};

use common::*;

const MAX_TOTAL: u64 = 8 * 1024 * 1024;

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 32,
        failure_persistence: None,
        max_shrink_iters: 64,
        ..ProptestConfig::default()
    }
}

/// A write size: mostly small, sometimes up to 1 MiB.
fn size() -> impl Strategy<Value = usize> {
    prop_oneof![4 => 0usize..=64, 3 => 0usize..=16 * 1024, 2 => 0usize..=1024 * 1024]
}

/// A read buffer size (never zero: a zero-length read answers 0, which is
/// not end of file).
fn read_size() -> impl Strategy<Value = usize> {
    prop_oneof![2 => 1usize..=16, 2 => 1usize..=8 * 1024, 1 => 1usize..=256 * 1024]
}

// ---------------------------------------------------------------- the await-face writer

#[derive(Debug, Clone)]
enum WOp {
    /// `AsyncWriteExt::write_all` (with backpressure).
    WriteAll(usize),
    /// `write_sequence` (queues, never waits).
    Sequence(usize),
    /// `write_bytes` (queues without a copy).
    Bytes(usize),
    Flush,
    ForceOutput,
    FinishOutput,
    /// One `write` polled once, then dropped.
    CancelWrite(usize),
    /// One `flush` polled once, then dropped.
    CancelFlush,
    Yield,
}

fn wop() -> impl Strategy<Value = WOp> {
    prop_oneof![
        4 => size().prop_map(WOp::WriteAll),
        2 => size().prop_map(WOp::Sequence),
        1 => size().prop_map(WOp::Bytes),
        1 => Just(WOp::Flush),
        1 => Just(WOp::ForceOutput),
        1 => Just(WOp::FinishOutput),
        2 => size().prop_map(WOp::CancelWrite),
        1 => Just(WOp::CancelFlush),
        1 => Just(WOp::Yield),
    ]
}

/// How the writer ends.
#[derive(Debug, Clone, Copy)]
enum End {
    /// `TcpStream::shutdown_write`, then read the peer's reply.
    ShutdownWrite,
    /// futures-io `close` (a half-close), then read the peer's reply.
    AsyncClose,
    /// cl-async's close: flush, shut down, release.
    CloseStream,
}

fn end() -> impl Strategy<Value = End> {
    prop_oneof![Just(End::ShutdownWrite), Just(End::AsyncClose), Just(End::CloseStream)]
}

/// Runs `ops` on `c`; returns how many bytes were accepted, in order.
async fn run_writer(c: &mut TcpStream, ops: &[WOp]) -> io::Result<u64> {
    let mut sent = 0u64;
    for op in ops {
        let room = |n: usize| if sent + n as u64 > MAX_TOTAL { 0 } else { n };
        match *op {
            WOp::WriteAll(n) => {
                let n = room(n);
                c.write_all(&pattern_at(sent, n)).await?;
                sent += n as u64;
            }
            WOp::Sequence(n) => {
                let n = room(n);
                c.write_sequence(&pattern_at(sent, n))?;
                sent += n as u64;
            }
            WOp::Bytes(n) => {
                let n = room(n);
                c.write_bytes(pattern_at(sent, n))?;
                sent += n as u64;
            }
            WOp::Flush => c.flush().await?,
            WOp::ForceOutput => c.force_output()?,
            WOp::FinishOutput => c.finish_output().await?,
            WOp::CancelWrite(n) => {
                let data = pattern_at(sent, room(n));
                match poll_once(c.write(&data)).await {
                    Some(Ok(k)) => sent += k as u64,
                    Some(Err(e)) => return Err(e),
                    None => {} // canceled: accepted nothing
                }
                yield_now().await;
            }
            WOp::CancelFlush => {
                if let Some(res) = poll_once(c.flush()).await {
                    res?;
                }
                yield_now().await;
            }
            WOp::Yield => yield_now().await,
        }
    }
    Ok(sent)
}

// ---------------------------------------------------------------- the await-face reader

#[derive(Debug, Clone)]
enum ROp {
    /// futures-io `read` into a buffer of this size.
    Read(usize),
    /// `fill_buf`, then `consume` at most this much.
    FillBuf(usize),
    /// `read_sequence` (never waits); waits with `fill_buf` when empty.
    Sequence(usize),
    /// `read_byte` (never waits).
    Byte,
    /// One `read` polled once, then dropped.
    CancelRead(usize),
    /// One `fill_buf` polled once, then dropped (nothing consumed).
    CancelFill,
}

fn rop() -> impl Strategy<Value = ROp> {
    prop_oneof![
        3 => read_size().prop_map(ROp::Read),
        2 => read_size().prop_map(ROp::FillBuf),
        2 => read_size().prop_map(ROp::Sequence),
        1 => Just(ROp::Byte),
        2 => read_size().prop_map(ROp::CancelRead),
        1 => Just(ROp::CancelFill),
    ]
}

/// Read plans end with a plain read, so each round of the plan waits at
/// least once and a reader of only non-waiting operations cannot spin.
fn rops() -> impl Strategy<Value = Vec<ROp>> {
    (prop::collection::vec(rop(), 0..8), read_size()).prop_map(|(mut v, n)| {
        v.push(ROp::Read(n));
        v
    })
}

/// Reads `p` to end of file, cycling through `ops`.
async fn run_reader(p: &mut TcpStream, ops: &[ROp]) -> io::Result<Vec<u8>> {
    let mut got = Vec::new();
    for op in ops.iter().cycle() {
        match *op {
            ROp::Read(n) => {
                let mut b = vec![0u8; n];
                match p.read(&mut b).await? {
                    0 => break,
                    k => got.extend_from_slice(&b[..k]),
                }
            }
            ROp::FillBuf(m) => {
                let buf = p.fill_buf().await?;
                if buf.is_empty() {
                    break;
                }
                let k = buf.len().min(m);
                got.extend_from_slice(&buf[..k]);
                std::pin::Pin::new(&mut *p).consume(k);
            }
            ROp::Sequence(n) => {
                let mut b = vec![0u8; n];
                let k = p.read_sequence(&mut b)?;
                got.extend_from_slice(&b[..k]);
                if k == 0 && (p.at_eof() || p.fill_buf().await?.is_empty()) {
                    break;
                }
            }
            ROp::Byte => match p.read_byte() {
                Ok(Some(b)) => got.push(b),
                Ok(None) => {
                    if p.fill_buf().await?.is_empty() {
                        break;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => break,
                Err(e) => return Err(e),
            },
            ROp::CancelRead(n) => {
                let mut b = vec![0u8; n];
                match poll_once(p.read(&mut b)).await {
                    Some(Ok(0)) => break,
                    Some(Ok(k)) => got.extend_from_slice(&b[..k]),
                    Some(Err(e)) => return Err(e),
                    None => {} // canceled: took nothing
                }
                yield_now().await;
            }
            ROp::CancelFill => {
                let _ = poll_once(p.fill_buf()).await;
                yield_now().await;
            }
        }
    }
    Ok(got)
}

fn check(got: &[u8], sent: u64) -> Result<(), TestCaseError> {
    prop_assert_eq!(got.len() as u64, sent, "byte count");
    prop_assert!(is_pattern_at(0, got), "the bytes differ from those sent");
    Ok(())
}

// ---------------------------------------------------------------- await → await

/// The await face on both ends, with random cancellation, ending in a
/// half-close (the peer then replies, proving the writer still reads) or
/// a full close.
fn await_to_await(ops: Vec<WOp>, end: End, reads: Vec<ROp>) -> Result<(), TestCaseError> {
    let (sent, got, reply) = run(async {
        let server = TcpListener::bind("127.0.0.1:0")?;
        let mut c = TcpStream::connect(server.local_addr()).await?;
        let (mut p, _) = server.accept().await?;
        let writer = async {
            let sent = run_writer(&mut c, &ops).await?;
            let mut reply = Vec::new();
            match end {
                End::ShutdownWrite => {
                    c.shutdown_write().await?;
                    c.read_to_end(&mut reply).await?;
                }
                End::AsyncClose => {
                    c.close().await?;
                    c.read_to_end(&mut reply).await?;
                }
                End::CloseStream => {}
            }
            c.close_stream().await?;
            io::Result::Ok((sent, reply))
        };
        let reader = async {
            let got = run_reader(&mut p, &reads).await?;
            if !matches!(end, End::CloseStream) {
                p.write_all(&(got.len() as u64).to_le_bytes()).await?;
            }
            p.close_stream().await?;
            io::Result::Ok(got)
        };
        let (w, r) = zip(writer, reader).await;
        let (sent, reply) = w?;
        io::Result::Ok((sent, r?, reply))
    })
    .map_err(|e| TestCaseError::fail(format!("I/O error: {e}")))?;
    check(&got, sent)?;
    if !matches!(end, End::CloseStream) {
        prop_assert_eq!(reply, sent.to_le_bytes().to_vec(), "the reply after a half-close");
    }
    Ok(())
}

// ---------------------------------------------------------------- callback writer → await reader

/// One callback's writes (several writes in one callback are coalesced),
/// through `write` or `write_bytes`.
#[derive(Debug, Clone)]
struct Batch {
    sizes: Vec<usize>,
    bytes: bool,
}

fn batch() -> impl Strategy<Value = Batch> {
    (prop::collection::vec(size(), 1..4), any::<bool>()).prop_map(|(sizes, bytes)| Batch { sizes, bytes })
}

struct Plan {
    batches: VecDeque<Batch>,
    sent: u64,
}

impl Plan {
    /// Writes batches until one queues something (a drain, hence the next
    /// `write_cb`, follows) or none is left; then closes gracefully.
    fn step(&mut self, s: &TcpSocket) {
        while let Some(b) = self.batches.pop_front() {
            let mut wrote = 0;
            for n in b.sizes {
                let n = if self.sent + n as u64 > MAX_TOTAL { 0 } else { n };
                let data = pattern_at(self.sent, n);
                if b.bytes {
                    s.write_bytes(data).unwrap();
                } else {
                    s.write(&data).unwrap();
                }
                self.sent += n as u64;
                wrote += n;
            }
            if wrote > 0 {
                return;
            }
        }
        s.close();
    }
}

fn callback_to_await(data: Vec<usize>, batches: Vec<Batch>, reads: Vec<ROp>) -> Result<(), TestCaseError> {
    let mut sent = 0u64;
    let data: Vec<Vec<u8>> = data
        .into_iter()
        .map(|n| {
            let d = pattern_at(sent, n);
            sent += n as u64;
            d
        })
        .collect();
    let plan = Arc::new(Mutex::new(Plan {
        batches: batches.into(),
        sent,
    }));
    let events = Events::default();
    let server = TcpListener::bind("127.0.0.1:0").map_err(|e| TestCaseError::fail(e.to_string()))?;
    let mut b = tcp_connect("127.0.0.1", server.local_addr().port());
    for d in data {
        b = b.data(d);
    }
    let (p1, p2) = (plan.clone(), plan.clone());
    let (_socket, driver) = b
        .connect_cb(move |s| p1.lock().unwrap().step(s))
        .write_cb(move |s| p2.lock().unwrap().step(s))
        .event_cb(events.cb())
        .start()
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    let got = run(async {
        let reader = async {
            let (mut p, _) = server.accept().await?;
            let got = run_reader(&mut p, &reads).await?;
            p.close_stream().await?;
            io::Result::Ok(got)
        };
        let (d, r) = zip(driver, reader).await;
        d?;
        r
    })
    .map_err(|e| TestCaseError::fail(format!("I/O error: {e}")))?;
    prop_assert_eq!(events.names(), Vec::<&str>::new());
    check(&got, plan.lock().unwrap().sent)
}

// ---------------------------------------------------------------- await writer → callback reader

fn await_to_callback(ops: Vec<WOp>, half: bool, stream: bool, takes: Vec<(usize, usize)>) -> Result<(), TestCaseError> {
    let got = Arc::new(Mutex::new(Vec::new()));
    let events = Events::default();
    let (done_tx, done_rx) = smol::channel::bounded::<()>(1);
    let takes = Arc::new(Mutex::new(takes.into_iter().cycle()));
    let ex = Arc::new(Executor::new());
    let spawner = ex.clone();
    let (g1, g2, ev) = (got.clone(), got.clone(), events.clone());
    let server = tcp_server("127.0.0.1", 0)
        .stream(stream)
        .read_cb(move |_, d| match d {
            ReadData::Bytes(b) => g1.lock().unwrap().extend_from_slice(&b),
            ReadData::Stream(s) => {
                // Read a random amount, leaving a little behind (less than
                // 64 KiB, far below the point where reading stops).
                let mut g = g1.lock().unwrap();
                let (take, leave) = takes.lock().unwrap().next().unwrap();
                while s.buffered() > leave {
                    let mut b = vec![0u8; take.min(s.buffered() - leave).max(1)];
                    let k = s.read_sequence(&mut b).unwrap();
                    g.extend_from_slice(&b[..k]);
                }
            }
        })
        .event_cb(move |e| {
            if let Event::Eof { socket: Some(s) } = &e {
                // What the last read_cb left is still buffered.
                let mut rest = TcpStream::new(s.clone());
                let mut b = vec![0u8; rest.buffered()];
                let k = rest.read_sequence(&mut b).unwrap();
                g2.lock().unwrap().extend_from_slice(&b[..k]);
                let _ = done_tx.try_send(());
            }
            ev.push(e);
        })
        .start(move |d| spawner.spawn(d).detach())
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    let addr = server.local_addr();
    let sent = run(ex.run(async {
        let mut c = TcpStream::connect(addr).await?;
        let sent = run_writer(&mut c, &ops).await?;
        if half {
            c.close().await?;
            let mut rest = Vec::new();
            c.read_to_end(&mut rest).await?; // the server closes after EOF
            assert!(rest.is_empty());
        }
        c.close_stream().await?;
        let _ = done_rx.recv().await;
        server.close();
        io::Result::Ok(sent)
    }))
    .map_err(|e| TestCaseError::fail(format!("I/O error: {e}")))?;
    prop_assert_eq!(events.names(), vec!["tcp-eof"]);
    check(&got.lock().unwrap(), sent)
}

fn takes() -> impl Strategy<Value = Vec<(usize, usize)>> {
    prop::collection::vec((read_size(), 0usize..64 * 1024), 1..6)
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn await_face_delivers_exactly_what_was_sent(
        ops in prop::collection::vec(wop(), 0..24),
        end in end(),
        reads in rops(),
    ) {
        await_to_await(ops, end, reads)?;
    }

    #[test]
    fn callback_writer_delivers_exactly_what_was_sent(
        data in prop::collection::vec(size(), 0..3),
        batches in prop::collection::vec(batch(), 0..16),
        reads in rops(),
    ) {
        callback_to_await(data, batches, reads)?;
    }

    #[test]
    fn callback_reader_gets_exactly_what_was_sent(
        ops in prop::collection::vec(wop(), 0..24),
        half in any::<bool>(),
        stream in any::<bool>(),
        takes in takes(),
    ) {
        await_to_callback(ops, half, stream, takes)?;
    }
}
