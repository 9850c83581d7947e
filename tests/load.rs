//! Load: many concurrent connections through the echo path, every byte
//! verified, on one event loop and on a two-thread executor; and a soak run
//! that holds memory flat and leaks no descriptor.
//!
//! - The normal suite runs the full 5,000 connections on each (a few
//!   seconds in a debug build on two cores), fewer if the hard
//!   `RLIMIT_NOFILE` does not allow as many descriptors (it says so).
//! - `cargo test --release -- --ignored soak` echoes continuously for
//!   `STREAMISH_SOAK_SECS` seconds (default 30).
//!
//! All connections of a run are open at the same time: each client stays
//! open until every client has had its echo verified. Connects are paced
//! (at most `CONNECTING` in flight) so a burst does not overflow the
//! listen queue, which would only add the kernel's SYN retry delays.
//!
//! The tests of this file hold the descriptor lock (`fd_checked`): they
//! run one at a time, so one run's descriptors never count against
//! another's limit or its leak check.

mod common;

use std::io;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;

use async_executor::{Executor, Task};
use bytes::Bytes;
use streamish::{Driver, TcpServerHandle, TcpSocket, process_stats, tcp_connect, tcp_server};

use common::*;

const FULL: usize = 5_000;
const CONNECTING: usize = 256;

/// Raises the soft descriptor limit to the hard one and returns how many
/// echo connections (two descriptors each, both ends in this process) fit.
#[cfg(unix)]
fn connections_that_fit(want: usize) -> usize {
    let (_, hard) = set_nofile(u64::MAX);
    let spare = 128;
    // Only Linux counts what is open (`/proc`); elsewhere the spare covers
    // the few descriptors a test process holds.
    #[cfg(target_os = "linux")]
    let open = open_fds();
    #[cfg(not(target_os = "linux"))]
    let open = 0;
    let fit = (hard as usize).saturating_sub(open + spare) / 2;
    if fit < want {
        println!("RLIMIT_NOFILE hard limit {hard} allows {fit} echo connections, not {want}: scaled down");
    }
    want.min(fit)
}

/// Windows has no per-process descriptor limit on sockets: all fit.
#[cfg(not(unix))]
fn connections_that_fit(want: usize) -> usize {
    want
}

/// Connection `i`'s payload: 1 to 4096 bytes of the pattern at its own
/// offset, so no two connections send the same bytes.
fn payload(i: usize) -> Bytes {
    let len = 1 + (i * 7919) % 4096;
    Bytes::from(pattern_at(i as u64 * 4099, len))
}

/// Echoes in drained mode (no copy); records every event but EOF.
fn echo_server(errors: &Events) -> streamish::TcpServerBuilder {
    let errors = errors.clone();
    tcp_server("127.0.0.1", 0)
        .backlog(4096)
        .read_cb(|s, d| {
            let _ = s.write_bytes(d.into_bytes());
        })
        .event_cb(move |e| {
            if e.is_error() {
                errors.push(e);
            }
        })
}

/// What the clients of one run share.
struct Run {
    n: usize,
    done: AtomicUsize,
    bytes: AtomicU64,
    peak_outgoing: AtomicUsize,
    sockets: Mutex<Vec<TcpSocket>>,
    server: Mutex<Option<TcpServerHandle>>,
    errors: Events,
    finished: smol::channel::Sender<()>,
}

impl Run {
    /// A client's echo was verified; the last one closes everything.
    fn verified(&self, len: usize) {
        self.bytes.fetch_add(len as u64, Ordering::SeqCst);
        if self.done.fetch_add(1, Ordering::SeqCst) + 1 == self.n {
            self.peak_outgoing.store(process_stats().outgoing_tcp, Ordering::SeqCst);
            for s in self.sockets.lock().unwrap().drain(..) {
                s.close();
            }
            if let Some(server) = self.server.lock().unwrap().take() {
                server.close();
            }
            let _ = self.finished.try_send(());
        }
    }
}

/// One client: sends its payload as `data`, checks the echo, then waits for
/// the others. Releases its connect permit once connected (or failed).
fn client(run: &Arc<Run>, port: u16, i: usize, permit: smol::lock::SemaphoreGuardArc) -> streamish::TcpConnect {
    let want = payload(i);
    let got = Mutex::new(Vec::with_capacity(want.len()));
    let permit = Arc::new(Mutex::new(Some(permit)));
    let (r1, r2, p2) = (run.clone(), run.clone(), permit.clone());
    tcp_connect("127.0.0.1", port)
        .data(want.clone())
        .connect_cb(move |_| drop(permit.lock().unwrap().take()))
        .read_cb(move |_, d| {
            let mut g = got.lock().unwrap();
            g.extend_from_slice(&d.into_bytes());
            assert!(g.len() <= want.len(), "client {i}: more bytes than it sent");
            if g.len() == want.len() {
                assert!(g[..] == want[..], "client {i}: the echo differs");
                r1.verified(want.len());
            }
        })
        .event_cb(move |e| {
            drop(p2.lock().unwrap().take());
            r2.errors.push(e);
        })
}

fn new_run(n: usize) -> (Arc<Run>, smol::channel::Receiver<()>) {
    let (tx, rx) = smol::channel::bounded(1);
    let run = Arc::new(Run {
        n,
        done: AtomicUsize::new(0),
        bytes: AtomicU64::new(0),
        peak_outgoing: AtomicUsize::new(0),
        sockets: Mutex::new(Vec::new()),
        server: Mutex::new(None),
        errors: Events::default(),
        finished: tx,
    });
    (run, rx)
}

fn check_run(run: &Run) {
    let errors = run.errors.take();
    assert!(errors.is_empty(), "{} errors, first {:?}", errors.len(), errors.first());
    assert_eq!(run.done.load(Ordering::SeqCst), run.n);
    let want: u64 = (0..run.n).map(|i| payload(i).len() as u64).sum();
    assert_eq!(run.bytes.load(Ordering::SeqCst), want);
    assert!(
        run.peak_outgoing.load(Ordering::SeqCst) >= run.n,
        "all {} connections were open at once (stats saw {})",
        run.n,
        run.peak_outgoing.load(Ordering::SeqCst)
    );
}

// ---------------------------------------------------------------- one event loop

fn echo_on_event_loop(want: usize) {
    fd_checked(|| {
        let n = connections_that_fit(want);
        let (run, _rx) = new_run(n);
        let r = run.clone();
        run_loop(move || -> io::Result<()> {
            let server = echo_server(&r.errors).spawn()?;
            let port = server.local_addr().port();
            *r.server.lock().unwrap() = Some(server);
            let sem = Arc::new(smol::lock::Semaphore::new(CONNECTING));
            streamish::spawn(async move {
                for i in 0..n {
                    let permit = sem.acquire_arc().await;
                    let socket = client(&r, port, i, permit).spawn()?;
                    r.sockets.lock().unwrap().push(socket);
                }
                Ok(())
            })
        })
        .unwrap();
        check_run(&run);
        assert_eq!(process_stats(), Default::default(), "every connection counted closed");
    })
}

#[test]
fn load_5000_on_event_loop() {
    echo_on_event_loop(FULL);
}

// ---------------------------------------------------------------- two executor threads

/// A two-thread `async-executor`; every driver it runs is kept as a task so
/// the test can wait for all of them to end. Finished tasks are let go of
/// as new ones come (their errors kept), so a long run keeps only the
/// tasks still running.
struct Pool {
    ex: Arc<Executor<'static>>,
    tasks: Arc<Mutex<Vec<Task<io::Result<()>>>>>,
    failed: Arc<Mutex<Vec<io::Error>>>,
    stop: Option<smol::channel::Sender<()>>,
    threads: Vec<thread::JoinHandle<()>>,
}

impl Pool {
    fn new() -> Pool {
        let (ex, threads, stop) = two_threads();
        Pool {
            ex,
            tasks: Arc::default(),
            failed: Arc::default(),
            stop: Some(stop),
            threads,
        }
    }

    fn spawner(&self) -> impl Fn(Driver) + Send + Sync + 'static {
        let (ex, tasks, failed) = (self.ex.clone(), self.tasks.clone(), self.failed.clone());
        move |d| {
            let mut tasks = tasks.lock().unwrap();
            tasks.push(ex.spawn(d));
            // Pruned when the list has doubled since the last time, so the
            // cost per spawn stays constant.
            if tasks.len().is_power_of_two() && tasks.len() >= 64 {
                let (done, running): (Vec<_>, Vec<_>) = tasks.drain(..).partition(|t| t.is_finished());
                *tasks = running;
                let errors = done.into_iter().filter_map(|t| futures_lite::future::block_on(t).err());
                failed.lock().unwrap().extend(errors);
            }
        }
    }

    /// Waits for every task spawned so far (and any they spawn meanwhile).
    fn join_tasks(&self) {
        if let Some(e) = self.failed.lock().unwrap().first() {
            panic!("a driver failed: {e}");
        }
        loop {
            let tasks = std::mem::take(&mut *self.tasks.lock().unwrap());
            if tasks.is_empty() {
                return;
            }
            for t in tasks {
                run(t).unwrap();
            }
        }
    }

    fn shut_down(mut self) {
        self.join_tasks();
        drop(self.stop.take());
        for t in self.threads.drain(..) {
            t.join().unwrap();
        }
    }
}

fn echo_on_two_threads(want: usize) {
    fd_checked(|| {
        let n = connections_that_fit(want);
        let (run, finished) = new_run(n);
        let pool = Pool::new();
        let spawn = pool.spawner();
        let server = echo_server(&run.errors).start(pool.spawner()).unwrap();
        let port = server.local_addr().port();
        *run.server.lock().unwrap() = Some(server);
        let r = run.clone();
        let sem = Arc::new(smol::lock::Semaphore::new(CONNECTING));
        let clients = pool.ex.spawn(async move {
            for i in 0..n {
                let permit = sem.acquire_arc().await;
                let (socket, driver) = client(&r, port, i, permit).start()?;
                r.sockets.lock().unwrap().push(socket);
                spawn(driver);
            }
            io::Result::Ok(())
        });
        common::run(clients).unwrap();
        common::run(finished.recv()).unwrap();
        pool.shut_down();
        check_run(&run);
        assert_eq!(process_stats(), Default::default(), "every connection counted closed");
    })
}

#[test]
fn load_5000_on_two_threads() {
    echo_on_two_threads(FULL);
}

// ---------------------------------------------------------------- soak

#[cfg(target_os = "linux")]
fn vm_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).expect("VmRSS");
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// The mean of `(seconds, KiB)` samples: `(mean time, mean KiB)`.
fn mean_sample(s: &[(f64, u64)]) -> (f64, f64) {
    let n = s.len().max(1) as f64;
    (
        s.iter().map(|x| x.0).sum::<f64>() / n,
        s.iter().map(|x| x.1 as f64).sum::<f64>() / n,
    )
}

/// Whether RSS samples show growth: after a warm-up (a quarter of the
/// run, at most a minute), the last quarter's mean against the first
/// quarter's. Growth counts only past an absolute floor, so allocator
/// noise in a short run is not a failure, and past a slope, so a slow leak
/// in a long run is: 1 MiB a minute fails a 10-minute run.
fn rss_growth(samples: &[(f64, u64)], secs: f64) -> Option<String> {
    const FLOOR_KIB: f64 = 4.0 * 1024.0;
    const SLOPE_KIB_PER_MIN: f64 = 512.0;
    let warm = (secs / 4.0).min(60.0);
    let after: Vec<_> = samples.iter().copied().filter(|s| s.0 >= warm).collect();
    let q = (after.len() / 4).max(1);
    let ((t0, m0), (t1, m1)) = (mean_sample(&after[..q]), mean_sample(&after[after.len() - q..]));
    let grew = m1 - m0;
    let slope = grew / ((t1 - t0).max(1.0) / 60.0);
    println!("soak: VmRSS {m0:.0} KiB at {t0:.0} s, {m1:.0} KiB at {t1:.0} s: {slope:.0} KiB/min");
    (grew > FLOOR_KIB && slope > SLOPE_KIB_PER_MIN)
        .then(|| format!("memory grew: VmRSS {m0:.0} KiB at {t0:.0} s, {m1:.0} KiB at {t1:.0} s ({slope:.0} KiB/min)"))
}

#[test]
fn rss_growth_fails_a_megabyte_a_minute_over_ten_minutes() {
    let secs = 600.0;
    let samples = |mib_per_min: f64| -> Vec<(f64, u64)> {
        (0..2400)
            .map(|i| {
                let t = i as f64 / 4.0;
                // A wobble of a few MiB, as the allocator shows.
                let noise = ((i * 7919) % 13) as f64 * 300.0;
                (t, (40_000.0 + noise + t / 60.0 * mib_per_min * 1024.0) as u64)
            })
            .collect()
    };
    assert!(rss_growth(&samples(1.0), secs).is_some());
    assert!(rss_growth(&samples(0.0), secs).is_none());
}

/// Echoes continuously over many connections for `STREAMISH_SOAK_SECS`
/// seconds (default 30): await-face clients write chunks of random size,
/// read each back and check it, and reconnect every few rounds; the server
/// is the callback echo server on a two-thread executor. Memory (VmRSS)
/// must stay flat after a warm-up (see [`rss_growth`]), and no descriptor
/// may leak. Linux only: memory and descriptors are read from `/proc`.
#[cfg(target_os = "linux")]
#[test]
#[ignore = "soak: runs for STREAMISH_SOAK_SECS (default 30); cargo test --release -- --ignored soak"]
fn soak_echo_memory_flat() {
    use async_io::Timer;
    use futures_lite::{AsyncReadExt, AsyncWriteExt, FutureExt};
    use std::sync::atomic::AtomicBool;
    use std::time::{Duration, Instant};
    use streamish::{AsyncStreamExt, TcpStream};

    const CLIENTS: usize = 200;
    const ROUNDS_PER_CONNECTION: usize = 50;
    let secs: u64 = std::env::var("STREAMISH_SOAK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(30);
    // The run is timed; the watchdog only catches a hang after it.
    let limit = Duration::from_secs(secs) + LIMIT;
    let watchdog = async move {
        Timer::after(limit).await;
        panic!("timed out: the soak did not finish within {limit:?}")
    };
    let _guard = fd_lock();
    warm_up();
    connections_that_fit(CLIENTS);
    let fds_before = open_fds();
    let errors = Events::default();
    let pool = Pool::new();
    let server = echo_server(&errors).start(pool.spawner()).unwrap();
    let addr = server.local_addr();
    let stop = Arc::new(AtomicBool::new(false));
    let bytes = Arc::new(AtomicU64::new(0));
    let clients: Vec<Task<io::Result<()>>> = (0..CLIENTS)
        .map(|c| {
            let (stop, bytes) = (stop.clone(), bytes.clone());
            pool.ex.spawn(async move {
                let mut off = c as u64 * 1_000_003;
                let mut buf = vec![0u8; 64 * 1024];
                while !stop.load(Ordering::Relaxed) {
                    let mut s = TcpStream::connect(addr).await?;
                    for round in 0..ROUNDS_PER_CONNECTION {
                        if stop.load(Ordering::Relaxed) {
                            break;
                        }
                        let len = 1 + ((off as usize ^ (round * 7_919)) % (64 * 1024));
                        let data = pattern_at(off, len);
                        s.write_all(&data).await?;
                        s.read_exact(&mut buf[..len]).await?;
                        assert!(buf[..len] == data[..], "client {c}: the echo differs");
                        off += len as u64;
                        bytes.fetch_add(len as u64, Ordering::Relaxed);
                    }
                    s.close_stream().await?;
                }
                Ok(())
            })
        })
        .collect();
    let start = Instant::now();
    let mut samples = Vec::new();
    let run = async {
        let mut next_print = 0;
        while start.elapsed() < Duration::from_secs(secs) {
            // Sampling, not waiting for anything: the run is timed.
            Timer::after(Duration::from_millis(250)).await;
            let t = start.elapsed().as_secs_f64();
            let rss = vm_rss_kib();
            samples.push((t, rss));
            if t as u64 >= next_print {
                println!(
                    "soak: {t:.0} s, VmRSS {rss} KiB, {} MiB echoed, {} servers' tasks kept",
                    bytes.load(Ordering::Relaxed) >> 20,
                    pool.tasks.lock().unwrap().len()
                );
                next_print += 30;
            }
        }
        stop.store(true, Ordering::Relaxed);
        for c in clients {
            c.await.unwrap();
        }
    };
    async_io::block_on(run.or(watchdog));
    server.close();
    pool.shut_down();
    let errors = errors.take();
    assert!(errors.is_empty(), "{} errors, first {:?}", errors.len(), errors.first());
    println!("soak: {secs} s, {} MiB echoed", bytes.load(Ordering::Relaxed) >> 20);
    if let Some(why) = rss_growth(&samples, secs as f64) {
        panic!("{why}");
    }
    assert_eq!(process_stats(), Default::default(), "every connection counted closed");
    assert_eq!(open_fds(), fds_before, "descriptors leaked");
}
