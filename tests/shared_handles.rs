//! Handles shared between threads: every handle operation from eight
//! threads while drivers connect, are refused, close and are dropped on a
//! two-thread executor; and cancelled waits that leave nothing behind.

mod common;

use std::future::Future;
use std::io;
use std::net::{Shutdown, TcpListener};
use std::pin::pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::task::{Context, Wake, Waker};
use std::thread;

use async_executor::Task;
use futures_lite::future::{block_on, poll_once};
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use streamish::{AsyncOutputStream, AsyncOutputStreamExt, TcpSocket, TcpStream, tcp_connect, tcp_server};

use common::{Rng, join, pair, run, two_threads};

const THREADS: usize = 8;
const ITERATIONS: usize = 1_000;
const OPS_PER_ITERATION: usize = 6;

/// One operation of a handle on `s`, chosen by `op`; whatever it returns
/// is fine (the socket may be connecting, refused or closed), as long as
/// it returns.
fn poke(s: &TcpSocket, op: usize, i: usize) {
    let mut buf = [0u8; 64];
    match op % 20 {
        0 => drop(s.write(b"ping")),
        1 => drop(s.write_bytes(&b"pong"[..])),
        2 => drop(s.local_addr()),
        3 => drop(s.peer_addr()),
        4 => drop(s.set_nodelay(i % 2 == 0)),
        5 => drop(s.nodelay()),
        6 => drop(format!("{s:?}")),
        7 => drop((s.queued(), s.is_open(), s.is_connected(), s.is_closed())),
        8 => s.set_data(i),
        9 => drop(s.data::<usize>()),
        10 => s.clear_data(),
        11 => drop(s.clone()),
        12 => drop(TcpStream::new(s.clone()).shutdown(Shutdown::Write)),
        13 => {
            let mut st = TcpStream::new(s.clone());
            drop(block_on(poll_once(st.read(&mut buf))));
        }
        14 => {
            let mut st = TcpStream::new(s.clone());
            drop(block_on(poll_once(st.write(b"stream"))));
        }
        15 => {
            let mut st = TcpStream::new(s.clone());
            drop(block_on(poll_once(st.flush())));
        }
        16 => {
            let mut st = TcpStream::new(s.clone());
            drop(st.write_sequence(b"seq"));
            drop(block_on(poll_once(st.finish_output())));
        }
        17 => drop(TcpStream::new(s.clone()).shutdown(Shutdown::Both)),
        18 if i % 7 == 0 => s.close(),
        19 if i % 11 == 0 => s.close_force(),
        _ => drop(s.peer_addr()),
    }
}

/// Eight threads call every handle operation on each connection while its
/// driver, on two other threads, connects (or is refused), echoes, and is
/// closed, forced closed or dropped by the test thread.
///
/// Needs one lock order in the connection: it hangs (and fails by the
/// watchdog) while `Conn::io` takes the output lock then the input lock
/// and `attach` / `release` take them the other way.
#[test]
fn every_handle_operation_from_eight_threads_against_connects_refusals_closes_and_drops() {
    // A deadlocked thread cannot be stopped, but `join` fails the test
    // instead of hanging the suite.
    join(thread::spawn(|| {
        let (ex, threads, stop) = two_threads();
        let spawn = {
            let ex = ex.clone();
            move |d| ex.spawn(d).detach()
        };
        let server = tcp_server("127.0.0.1", 0)
            .backlog(1024)
            .read_cb(|s, d| drop(s.write_bytes(d.into_bytes())))
            .event_cb(|_| {})
            .start(spawn)
            .unwrap();
        let live = server.local_addr().port();
        let refused = {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        // This iteration's socket, and the last one's, which the test
        // thread ends while the workers poke both.
        let current: Arc<Mutex<Vec<TcpSocket>>> = Arc::default();
        let barrier = Arc::new(Barrier::new(THREADS + 1));
        let done = Arc::new(AtomicUsize::new(0));
        let workers: Vec<_> = (0..THREADS)
            .map(|t| {
                let (current, barrier, done) = (current.clone(), barrier.clone(), done.clone());
                thread::spawn(move || {
                    let mut rng = Rng::new(t as u64);
                    for i in 0..ITERATIONS {
                        barrier.wait();
                        let sockets = current.lock().unwrap().clone();
                        for _ in 0..OPS_PER_ITERATION {
                            let s = &sockets[rng.range(0, sockets.len() - 1)];
                            poke(s, rng.range(0, 19), i);
                        }
                        drop(sockets);
                        done.fetch_add(1, Ordering::Relaxed);
                        barrier.wait();
                    }
                })
            })
            .collect();
        let mut rng = Rng::new(99);
        let mut tasks: Vec<Task<io::Result<()>>> = Vec::new();
        let mut end = |socket: TcpSocket, task: Task<io::Result<()>>, tasks: &mut Vec<_>| match rng.range(0, 3) {
            0 => socket.close_force(),
            1 => drop(task),
            2 => drop(socket),
            _ => {
                socket.close();
                tasks.push(task);
            }
        };
        let mut last = None;
        for i in 0..ITERATIONS {
            let port = if i % 4 == 3 { refused } else { live };
            let (socket, driver) = tcp_connect("127.0.0.1", port)
                .data("hello")
                .event_cb(|_| {})
                .start()
                .unwrap();
            let task = ex.spawn(driver);
            *current.lock().unwrap() = std::iter::once(socket.clone())
                .chain(last.as_ref().map(|(s, _): &(TcpSocket, _)| s.clone()))
                .collect();
            barrier.wait();
            if let Some((s, t)) = last.take() {
                end(s, t, &mut tasks);
            }
            barrier.wait();
            current.lock().unwrap().clear();
            last = Some((socket, task));
        }
        if let Some((s, t)) = last.take() {
            s.close();
            drop(t);
        }
        server.close();
        for t in tasks {
            let _ = block_on(t);
        }
        for w in workers {
            w.join().unwrap();
        }
        drop(stop);
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(done.load(Ordering::Relaxed), THREADS * ITERATIONS);
    }));
}

/// A waker that counts how many of its clones are alive (its `Arc`'s
/// strong count).
struct Counted;

impl Wake for Counted {
    fn wake(self: Arc<Self>) {}
}

/// How many of the tasks behind `w`'s wakers are still held somewhere.
fn held(w: &[Arc<Counted>]) -> usize {
    w.iter().filter(|a| Arc::strong_count(a) > 1).count()
}

/// Cancelled waits leave no waker behind: 1,000 reads and 1,000
/// `finish_output`s, each polled once by a task of its own on a stalled
/// socket and then dropped. The handle's waits may keep the waker of the
/// last task that polled each direction (two tasks), no more.
///
/// Fails while a connection's waiter list keeps the wakers of dropped
/// futures (2,000 of them here); passes with self-removing waiters.
#[test]
fn cancelled_reads_and_finish_outputs_leave_no_waker_behind() {
    run(async {
        let (mut a, _b) = pair().await;
        // The peer never reads: fill the kernel's buffers, then queue more.
        let chunk = vec![7u8; 64 * 1024];
        for _ in 0..256 {
            a.write_sequence(&chunk).unwrap();
        }
        let _ = a.force_output();
        let wakers: Vec<Arc<Counted>> = (0..2_000).map(|_| Arc::new(Counted)).collect();
        let mut buf = [0u8; 16];
        for (n, w) in wakers.iter().enumerate() {
            let waker = Waker::from(w.clone());
            let mut cx = Context::from_waker(&waker);
            if n % 2 == 0 {
                let read = pin!(a.read(&mut buf));
                assert!(read.poll(&mut cx).is_pending(), "nothing to read");
            } else {
                let finish = pin!(a.finish_output());
                assert!(finish.poll(&mut cx).is_pending(), "the peer reads nothing");
            }
        }
        let left = held(&wakers);
        assert!(left <= 2, "the wakers of {left} dropped futures' tasks are still held");
        drop(a);
        assert_eq!(held(&wakers), 0, "a dropped handle leaves no waker");
    });
}
