//! Helpers shared by the integration tests. Keep it small.
#![allow(dead_code)]

use std::future::Future;
use std::time::Duration;

use streamish::{TcpServer, TcpStream};

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
    let server = TcpServer::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
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
