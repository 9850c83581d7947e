//! What every implementation runs: the timed workloads and their sizes, the
//! checks on the bytes, and the idle clients.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::mpsc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use crate::harness::Sizes;

/// A timed workload, sized.
pub enum Work {
    /// bulk-64k, bulk-1k, tls-bulk-64k and small-writes: `count` writes of `chunk` bytes
    /// one way, `total` bytes in all.
    Stream { chunk: usize, count: u64, total: u64 },
    /// 64-byte round trips, one at a time.
    Pingpong { rounds: u64 },
    /// `conns` connections, each echoing `msgs` 128-byte messages.
    EchoMany { conns: usize, msgs: usize },
}

impl Work {
    pub fn of(w: &str, sz: &Sizes) -> io::Result<Work> {
        Ok(match w {
            "bulk-64k" | "bulk-1k" | "tls-bulk-64k" => {
                let chunk = bulk_chunk(w, sz);
                Work::Stream {
                    chunk,
                    count: sz.bulk_bytes / chunk as u64,
                    total: sz.bulk_bytes,
                }
            }
            "small-writes" => Work::Stream {
                chunk: 16,
                count: sz.small_writes,
                total: 16 * sz.small_writes,
            },
            "pingpong" => Work::Pingpong {
                rounds: sz.pingpong_rounds,
            },
            "echo-many" => Work::EchoMany {
                conns: sz.echo_conns,
                msgs: sz.echo_msgs,
            },
            _ => return Err(io::Error::other("unknown workload")),
        })
    }
}

/// The size of one write of a bulk workload.
pub fn bulk_chunk(w: &str, sizes: &Sizes) -> usize {
    match sizes.chunk {
        Some(chunk) => chunk,
        None if w.ends_with("bulk-64k") => 64 * 1024,
        None => 1024,
    }
}

/// Fills an echo-many message: every byte depends on connection, message
/// and position, so a lost, repeated or reordered byte is caught.
pub fn fill_msg(msg: &mut [u8; 128], conn: usize, i: usize) {
    let seed = (conn as u32).wrapping_mul(2_654_435_761) ^ (i as u32).wrapping_mul(40_503);
    for (k, b) in msg.iter_mut().enumerate() {
        *b = (seed >> (k % 4 * 8)) as u8 ^ k as u8;
    }
}

pub fn corrupt() -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, "echoed bytes differ from the bytes sent")
}

pub fn early_eof() -> io::Error {
    io::Error::new(io::ErrorKind::UnexpectedEof, "peer closed early")
}

/// Waits for both sides of a `2t` run: a panic on either is an error, and
/// each side's own result is left to the caller.
pub fn join<C, S>(client: JoinHandle<C>, server: JoinHandle<S>) -> io::Result<(C, S)> {
    let c = client.join().map_err(|_| io::Error::other("client panicked"))?;
    let s = server.join().map_err(|_| io::Error::other("server panicked"))?;
    Ok((c, s))
}

/// Connections the idle server accepted so far (paces [`idle_clients`]).
pub static ACCEPTED: AtomicUsize = AtomicUsize::new(0);

/// Connects `n` blocking std clients to `addr` from a helper thread and keeps
/// them open until the process exits. The vector is allocated up front so
/// the helper adds nothing to the heap count while it connects.
///
/// The helper keeps at most 64 connections waiting in the accept queue (the
/// server counts what it accepted in [`ACCEPTED`]): a full listen backlog
/// drops SYNs, and the retransmission a second later would dominate the
/// setup time.
pub fn idle_clients(addr: SocketAddr, n: usize) -> mpsc::Receiver<io::Result<()>> {
    let (tx, rx) = mpsc::channel();
    let mut held = Vec::with_capacity(n);
    thread::spawn(move || {
        for i in 0..n {
            while i >= ACCEPTED.load(Relaxed) + 64 {
                thread::sleep(Duration::from_micros(100));
            }
            match std::net::TcpStream::connect(addr) {
                Ok(s) => held.push(s),
                Err(e) => {
                    let _ = tx.send(Err(e));
                    return;
                }
            }
        }
        let _ = tx.send(Ok(()));
        thread::sleep(Duration::from_secs(3600));
        drop(held);
    });
    rx
}
