//! Helpers shared by the integration tests. Keep it small.
#![allow(dead_code)]

use std::future::Future;
use std::time::Duration;

use streamish::{TcpListener, TcpStream};

/// How long any one test may take before it is declared hung.
pub const LIMIT: Duration = Duration::from_secs(30);

/// Races `fut` against a generous timer, so a hang fails the test instead
/// of blocking the suite. The timer is async-io's, so this works under any
/// executor (async-io drives its reactor from its own thread when needed).
pub async fn timeout<T>(fut: impl Future<Output = T>) -> T {
    futures_lite::future::or(fut, async {
        async_io::Timer::after(LIMIT).await;
        panic!("test timed out after {LIMIT:?}")
    })
    .await
}

/// Runs an async test body under `async_io::block_on`, guarded by [`timeout`].
pub fn run<T>(fut: impl Future<Output = T>) -> T {
    async_io::block_on(timeout(fut))
}

/// A connected pair over loopback: `(client, accepted peer)`.
pub async fn pair() -> (TcpStream, TcpStream) {
    let server = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    let (client, accepted) = futures_lite::future::zip(TcpStream::connect(server.local_addr()), server.accept()).await;
    (client.expect("connect"), accepted.expect("accept").0)
}

/// A small seeded PRNG (xorshift64*), so random tests are reproducible.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `lo..=hi`.
    pub fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + (self.next_u64() % (hi - lo + 1) as u64) as usize
    }

    /// `len` pseudo-random bytes.
    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next_u64() as u8).collect()
    }
}

/// What [`two_tasks`] returns: polls made, whether `idle` ran, and the
/// output of the future that ended (`Ok` for the first, `Err` for the
/// second).
pub type TwoTasks<A, B> = (usize, bool, Option<Result<A, B>>);

/// Polls two futures by hand, each as a task of its own with its own
/// waker, on this thread, until one of them ends or `max_polls` polls were
/// made. The first time neither has been woken since it was last polled
/// (both wait), `idle` runs, to make what they wait for happen. Returns the
/// polls made, whether `idle` ran, and the output of the one that ended
/// (`Ok` for `a`, `Err` for `b`).
///
/// A task polled only when woken shows whether waiting tasks wake each
/// other: they then keep being polled with nothing new, and run out of
/// polls before `idle` ever runs.
pub fn two_tasks<A: Future, B: Future>(
    a: A,
    b: B,
    max_polls: usize,
    idle: impl FnOnce(),
) -> TwoTasks<A::Output, B::Output> {
    use std::pin::pin;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::task::{Context, Poll, Wake, Waker};

    struct Task {
        woken: AtomicBool,
        thread: std::thread::Thread,
    }
    impl Wake for Task {
        fn wake(self: Arc<Self>) {
            self.wake_by_ref();
        }
        fn wake_by_ref(self: &Arc<Self>) {
            self.woken.store(true, Ordering::Release);
            self.thread.unpark();
        }
    }
    let task = || {
        Arc::new(Task {
            woken: AtomicBool::new(true),
            thread: std::thread::current(),
        })
    };
    let (ta, tb) = (task(), task());
    let (wa, wb) = (Waker::from(ta.clone()), Waker::from(tb.clone()));
    let (mut a, mut b) = (pin!(a), pin!(b));
    let (mut polls, mut idle) = (0, Some(idle));
    while polls < max_polls {
        if ta.woken.swap(false, Ordering::AcqRel) {
            polls += 1;
            if let Poll::Ready(out) = a.as_mut().poll(&mut Context::from_waker(&wa)) {
                return (polls, idle.is_none(), Some(Ok(out)));
            }
        }
        if tb.woken.swap(false, Ordering::AcqRel) {
            polls += 1;
            if let Poll::Ready(out) = b.as_mut().poll(&mut Context::from_waker(&wb)) {
                return (polls, idle.is_none(), Some(Err(out)));
            }
        }
        let waiting = || !ta.woken.load(Ordering::Acquire) && !tb.woken.load(Ordering::Acquire);
        if waiting() {
            if let Some(f) = idle.take() {
                f();
            }
            let deadline = std::time::Instant::now() + LIMIT;
            while waiting() && std::time::Instant::now() < deadline {
                std::thread::park_timeout(LIMIT);
            }
        }
    }
    (polls, idle.is_none(), None)
}
