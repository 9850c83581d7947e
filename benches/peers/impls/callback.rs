//! `streamish-cb`: the callback face, as a cl-async program would use it:
//! `tcp_server`/`tcp_connect` with callbacks, on `with_event_loop` (one loop
//! for both ends in `1t`, one loop per thread in `2t`). Writers pace
//! themselves with `write_cb` (top the queue up to the high-water mark on
//! every drain); readers take drained `Bytes` (the default mode).

use std::io;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex, OnceLock, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use async_io::Timer;
use bytes::Bytes;
use streamish::{
    DEFAULT_HIGH_WATER, Event, ReadData, TcpConnect, TcpServerBuilder, TcpServerHandle, TcpSocket, tcp_connect,
    tcp_server, with_event_loop,
};

use crate::harness::{DONE, Sizes, expired, heap_live, print_idle_result, start_timed};
use crate::workloads::{ACCEPTED, Work, corrupt, fill_msg, idle_clients, join};

/// When the timed part started and ended, or why it failed.
#[derive(Default)]
struct Clock {
    t0: Mutex<Option<Instant>>,
    end: Mutex<Option<Instant>>,
    error: Mutex<Option<String>>,
}

impl Clock {
    fn start(&self) {
        self.t0.lock().unwrap().get_or_insert_with(start_timed);
    }
    fn stop(&self) {
        self.end.lock().unwrap().get_or_insert_with(Instant::now);
    }
    fn fail(&self, why: String) {
        self.error.lock().unwrap().get_or_insert(why);
    }
    fn result(&self, ran: io::Result<()>) -> io::Result<Duration> {
        ran?;
        if let Some(e) = self.error.lock().unwrap().take() {
            return Err(io::Error::other(e));
        }
        match (*self.t0.lock().unwrap(), *self.end.lock().unwrap()) {
            (Some(a), Some(b)) => Ok(b - a),
            _ => Err(io::Error::other("the callback program ended before the workload did")),
        }
    }
}

/// `event_cb`: end of file is the normal end; anything else fails the run.
fn events(clock: &Arc<Clock>) -> impl Fn(Event) + Send + Sync + 'static {
    let clock = clock.clone();
    move |ev| {
        if !matches!(ev, Event::Eof { .. }) {
            clock.fail(ev.to_string());
        }
    }
}

/// Runs `server` and `client` on one event loop (`1t`) or on one loop
/// each, on two threads (`2t`). `client` gets the server's port.
fn run_pair(
    two: bool,
    server: impl FnOnce() -> io::Result<TcpServerHandle> + Send + 'static,
    client: impl FnOnce(u16) -> io::Result<()> + Send + 'static,
) -> io::Result<()> {
    if !two {
        return with_event_loop(|| client(server()?.local_addr().port()));
    }
    let (tx, rx) = mpsc::channel();
    let srv = thread::spawn(move || {
        with_event_loop(|| {
            let h = server()?;
            tx.send(h.local_addr().port()).map_err(io::Error::other)
        })
    });
    let cli = thread::spawn(move || with_event_loop(|| client(rx.recv().map_err(io::Error::other)?)));
    let (c, s) = join(cli, srv)?;
    s.and(c)
}

/// A server for one connection: stops accepting once it has it.
fn one_conn_server(builder: TcpServerBuilder) -> io::Result<TcpServerHandle> {
    let handle: Arc<OnceLock<TcpServerHandle>> = Arc::default();
    let h2 = handle.clone();
    let server = builder
        .connect_cb(move |_| {
            if let Some(h) = h2.get() {
                h.close();
            }
        })
        .spawn()?;
    let _ = handle.set(server.clone());
    Ok(server)
}

fn client(port: u16) -> TcpConnect {
    tcp_connect("127.0.0.1", port)
}

pub fn run(w: &str, two: bool, sz: &Sizes) -> io::Result<Duration> {
    let clock = Arc::new(Clock::default());
    let ran = match Work::of(w, sz) {
        Ok(Work::Stream { chunk, count, .. }) => stream(two, &clock, chunk, count, sz),
        Ok(Work::Pingpong { rounds }) => pingpong(two, &clock, rounds),
        Ok(Work::EchoMany { conns, msgs }) => echo_many(two, &clock, conns, msgs),
        Err(e) => Err(e),
    };
    clock.result(ran)
}

/// bulk and small-writes: `count` writes of `chunk` bytes, one
/// `write` call each (`write_bytes`, which does not copy, for chunks
/// of 4 KiB and more), topped up to the high-water mark on every drain;
/// with `upfront`, all made at once in `connect_cb`.
fn stream(two: bool, clock: &Arc<Clock>, chunk: usize, count: u64, sz: &Sizes) -> io::Result<()> {
    let (upfront, batch) = (sz.cb_upfront, sz.cb_batch);
    let total = chunk as u64 * count;
    let (c1, c2, c3) = (clock.clone(), clock.clone(), clock.clone());
    let server = move || {
        let got = AtomicU64::new(0);
        one_conn_server(
            tcp_server("127.0.0.1", 0)
                .read_cb(move |sock, data| {
                    if let ReadData::Bytes(b) = data {
                        if got.fetch_add(b.len() as u64, Relaxed) + b.len() as u64 >= total {
                            c1.stop();
                            sock.close();
                        }
                    }
                })
                .event_cb(events(&c2)),
        )
    };
    let client = move |port| {
        let left = Arc::new(AtomicU64::new(count));
        let data = Bytes::from(vec![0xa5u8; chunk]);
        let write = move |sock: &TcpSocket| {
            if chunk >= 4096 {
                sock.write_bytes(data.clone())
            } else {
                sock.write(&data)
            }
        };
        let left2 = left.clone();
        let write2 = write.clone();
        let pump = move |sock: &TcpSocket| {
            // Only this connection's callbacks run it, one at a time:
            // the count is read once and stored once per call.
            let mut n = left.load(Relaxed);
            let stop = n.saturating_sub(batch);
            while n > stop && sock.queued() < DEFAULT_HIGH_WATER {
                if write2(sock).is_err() {
                    break;
                }
                n -= 1;
            }
            left.store(n, Relaxed);
        };
        let pump2 = pump.clone();
        let c4 = c3.clone();
        client(port)
            .connect_cb(move |sock| {
                c4.start();
                if upfront {
                    // Every write at once; write_cb then finds none left.
                    left2.store(0, Relaxed);
                    for _ in 0..count {
                        if write(sock).is_err() {
                            break;
                        }
                    }
                    return;
                }
                pump(sock)
            })
            .write_cb(pump2)
            .event_cb(events(&c3))
            .spawn()
            .map(drop)
    };
    run_pair(two, server, client)
}

fn pingpong(two: bool, clock: &Arc<Clock>, rounds: u64) -> io::Result<()> {
    let (c1, c2) = (clock.clone(), clock.clone());
    let server = move || {
        one_conn_server(
            tcp_server("127.0.0.1", 0)
                .read_cb(|sock, data| {
                    if let ReadData::Bytes(b) = data {
                        let _ = sock.write(&b);
                    }
                })
                .event_cb(events(&c1)),
        )
    };
    let client = move |port| {
        let msg = [0x42u8; 64];
        let got = AtomicU64::new(0);
        let c3 = c2.clone();
        let c4 = c2.clone();
        client(port)
            .connect_cb(move |sock| {
                c3.start();
                let _ = sock.write(&msg);
            })
            .read_cb(move |sock, data| {
                let ReadData::Bytes(b) = data else { return };
                if b.iter().any(|&x| x != 0x42) {
                    c4.fail(corrupt().to_string());
                }
                let n = got.fetch_add(b.len() as u64, Relaxed) + b.len() as u64;
                if n % 64 == 0 {
                    if n / 64 >= rounds || expired() {
                        DONE.fetch_add(n / 64, Relaxed);
                        c4.stop();
                        sock.close();
                    } else {
                        let _ = sock.write(&msg);
                    }
                }
            })
            .event_cb(events(&c2))
            .spawn()
            .map(drop)
    };
    run_pair(two, server, client)
}

/// One echo client's progress: the message it waits for, and the
/// bytes of it received so far.
struct Echo {
    msg: usize,
    have: Vec<u8>,
    /// The message in flight, kept to check the echo against (as the
    /// other clients keep theirs): made once per message.
    sent: [u8; 128],
}

fn echo_many(two: bool, clock: &Arc<Clock>, n: usize, msgs: usize) -> io::Result<()> {
    let accepted = Arc::new(AtomicUsize::new(0));
    let handle: Arc<OnceLock<TcpServerHandle>> = Arc::default();
    let (acc, h1, c1) = (accepted.clone(), handle.clone(), clock.clone());
    let server = move || {
        let h2 = h1.clone();
        // cl-async's `backlog` keyword: a thousand clients connect at once.
        let server = tcp_server("127.0.0.1", 0)
            .backlog(1024)
            .connect_cb(move |_| {
                // Stop accepting once every client is in (2t); in 1t the
                // last client to finish closes the server.
                if acc.fetch_add(1, Relaxed) + 1 == n && two {
                    if let Some(h) = h2.get() {
                        h.close();
                    }
                }
            })
            .read_cb(|sock, data| {
                if let ReadData::Bytes(b) = data {
                    let _ = sock.write(&b);
                }
            })
            .event_cb(events(&c1))
            .spawn()?;
        let _ = h1.set(server.clone());
        Ok(server)
    };
    let c2 = clock.clone();
    let client = move |port| -> io::Result<()> {
        let sockets: Arc<Mutex<Vec<(usize, TcpSocket)>>> = Arc::default();
        let connected = Arc::new(AtomicUsize::new(0));
        let finished = Arc::new(AtomicUsize::new(0));
        for i in 0..n {
            let mut sent = [0u8; 128];
            fill_msg(&mut sent, i, 0);
            let state = Mutex::new(Echo {
                msg: 0,
                have: Vec::with_capacity(128),
                sent,
            });
            let (sk, cn, fin, c3, h3) = (
                sockets.clone(),
                connected.clone(),
                finished.clone(),
                c2.clone(),
                handle.clone(),
            );
            client(port)
                .connect_cb(move |sock| {
                    sk.lock().unwrap().push((i, sock.clone()));
                    cn.fetch_add(1, Relaxed);
                })
                .read_cb(move |sock, data| {
                    let ReadData::Bytes(b) = data else { return };
                    let mut st = state.lock().unwrap();
                    let mut rest = &b[..];
                    while !rest.is_empty() {
                        let k = rest.len().min(128 - st.have.len());
                        st.have.extend_from_slice(&rest[..k]);
                        rest = &rest[k..];
                        if st.have.len() < 128 {
                            break;
                        }
                        if st.have[..] != st.sent[..] {
                            c3.fail(corrupt().to_string());
                        }
                        st.have.clear();
                        st.msg += 1;
                        if st.msg == msgs || expired() {
                            DONE.fetch_add(st.msg as u64, Relaxed);
                            sock.close();
                            if fin.fetch_add(1, Relaxed) + 1 == n {
                                c3.stop();
                                if let Some(h) = h3.get() {
                                    h.close();
                                }
                            }
                            return;
                        }
                        let Echo { msg, sent, .. } = &mut *st;
                        fill_msg(sent, i, *msg);
                        let _ = sock.write(&sent[..]);
                    }
                })
                .event_cb(events(&c2))
                .spawn()?;
        }
        // Start once every client is connected and the server has
        // accepted them all (as the other implementations do).
        let (acc, c4) = (accepted.clone(), c2.clone());
        streamish::spawn(async move {
            while connected.load(Relaxed) < n || acc.load(Relaxed) < n {
                Timer::after(Duration::from_millis(1)).await;
            }
            c4.start();
            let sockets = std::mem::take(&mut *sockets.lock().unwrap());
            let mut first = [0u8; 128];
            for (i, sock) in sockets {
                fill_msg(&mut first, i, 0);
                sock.write(&first)?;
            }
            Ok(())
        })
    };
    run_pair(two, server, client)
}

/// `n` accepted callback connections, each waiting to read.
pub fn idle(n: usize) -> io::Result<f64> {
    with_event_loop(|| -> io::Result<()> {
        let server = tcp_server("127.0.0.1", 0)
            .connect_cb(|_| {
                ACCEPTED.fetch_add(1, Relaxed);
            })
            .read_cb(|_, _| {})
            .spawn()?;
        let base = heap_live();
        let done = idle_clients(server.local_addr(), n);
        streamish::spawn(async move {
            while ACCEPTED.load(Relaxed) < n {
                Timer::after(Duration::from_millis(10)).await;
            }
            done.recv().map_err(io::Error::other)??;
            Timer::after(Duration::from_millis(200)).await;
            print_idle_result((heap_live() - base) as f64 / n as f64)
        })
    })?;
    Err(io::Error::other("the idle server ended early"))
}
