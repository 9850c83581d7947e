//! Bounded memory: a large transfer to a slow reader never queues more than
//! the high-water mark plus one chunk, through `AsyncWrite` and through a
//! callback writer that waits for `write_cb`.
//!
//! The reader is slow by awaiting, not by sleeping: after each chunk it
//! yields to the executor a few times, so the writer runs far ahead of it
//! and must be held back by the queue's high-water mark.

mod common;

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use futures_lite::future::{yield_now, zip};
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use streamish::{AsyncOutputStream, TcpListener, TcpStream, tcp_connect};

use common::*;

const CHUNK: usize = 64 * 1024;
const TOTAL: usize = 256 * 1024 * 1024;
const CHUNKS: usize = TOTAL / CHUNK;
/// How many times the reader yields after each chunk.
const LAZINESS: usize = 3;

/// Chunk `i`: its index in the first 8 bytes, then the pattern.
fn chunk(i: usize) -> Vec<u8> {
    let mut c = pattern_at(0, CHUNK);
    c[..8].copy_from_slice(&(i as u64).to_le_bytes());
    c
}

/// Reads `CHUNKS` chunks slowly, checking each, then expects end of file.
async fn slow_reader(mut r: TcpStream) -> io::Result<()> {
    let want = pattern_at(0, CHUNK);
    let mut buf = vec![0u8; CHUNK];
    for i in 0..CHUNKS {
        r.read_exact(&mut buf).await?;
        assert_eq!(
            u64::from_le_bytes(buf[..8].try_into().unwrap()),
            i as u64,
            "chunk order"
        );
        assert!(buf[8..] == want[8..], "chunk {i} corrupted");
        for _ in 0..LAZINESS {
            yield_now().await;
        }
    }
    assert_eq!(r.read(&mut buf).await?, 0, "nothing after the last chunk");
    Ok(())
}

#[test]
fn async_write_queue_bounded_256mib() {
    run(async {
        let server = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut w = TcpStream::connect(server.local_addr()).await.unwrap();
        let (r, _) = server.accept().await.unwrap();
        let (high, _) = w.socket().water_marks();
        let writer = async {
            let mut max = 0;
            for i in 0..CHUNKS {
                let c = chunk(i);
                let mut off = 0;
                while off < c.len() {
                    off += w.write(&c[off..]).await?;
                    // Sampled after every write call, not only per chunk.
                    max = max.max(w.queued());
                }
            }
            w.close().await?; // flush, then half-close: the reader sees EOF
            io::Result::Ok(max)
        };
        let (max, read) = zip(writer, slow_reader(r)).await;
        read.unwrap();
        let max = max.unwrap();
        assert!(
            max <= high + CHUNK,
            "queued {max} bytes, more than the high-water mark {high} plus a chunk {CHUNK}"
        );
    });
}

#[test]
fn write_cb_writer_queue_bounded_256mib() {
    let server = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = server.local_addr().port();
    let next = Arc::new(AtomicUsize::new(0));
    let max = Arc::new(AtomicUsize::new(0));
    let drains = Counter::default();
    let events = Events::default();
    // Writes one chunk each time the queue has drained (and once on
    // connect); closes after the last.
    let write_next = {
        let (next, max) = (next.clone(), max.clone());
        move |s: &streamish::TcpSocket| {
            let i = next.fetch_add(1, Ordering::SeqCst);
            if i < CHUNKS {
                s.write(&chunk(i)).unwrap();
                max.fetch_max(s.queued(), Ordering::SeqCst);
            } else if i == CHUNKS {
                s.close();
            }
        }
    };
    let on_drain = {
        let (write_next, drains) = (write_next.clone(), drains.clone());
        move |s: &streamish::TcpSocket| {
            drains.bump();
            write_next(s)
        }
    };
    let (socket, driver) = tcp_connect("127.0.0.1", port)
        .connect_cb(write_next)
        .write_cb(on_drain)
        .event_cb(events.cb())
        .start()
        .unwrap();
    let (high, _) = socket.water_marks();
    run(async {
        let reader = async {
            let (r, _) = server.accept().await?;
            slow_reader(r).await
        };
        let (d, r) = zip(driver, reader).await;
        d.unwrap();
        r.unwrap();
    });
    assert_eq!(events.names(), Vec::<&str>::new());
    assert!(drains.get() >= CHUNKS, "write_cb fires once per drain");
    let max = max.load(Ordering::SeqCst);
    assert!(
        max <= high + CHUNK,
        "queued {max} bytes, more than the high-water mark {high} plus a chunk {CHUNK}"
    );
    assert!(
        max <= CHUNK,
        "a writer that waits for write_cb never has more than one chunk queued"
    );
}
