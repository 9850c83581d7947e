//! Backpressure: the water marks bound the output queue against a peer
//! that does not read.

mod common;

use std::io;

use futures_lite::future::{poll_once, zip};
use futures_lite::io::AsyncWrite;
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use streamish::{AsyncOutputStream, DEFAULT_HIGH_WATER, DEFAULT_LOW_WATER};

use common::{Rng, is_pattern_at, pair, pattern_at, run};

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
                    assert!(
                        is_pattern_at(pos, &buf[..n]),
                        "bytes at {pos}..{} differ",
                        pos + n as u64
                    );
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
