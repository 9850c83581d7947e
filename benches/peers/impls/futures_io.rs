//! streamish, async-io and smol: the futures-io family, on async-executor.
//! One set of workload bodies over [`Net`], which says how each listens,
//! accepts and connects.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Barrier, mpsc};
use std::task::{Context, Poll};
use std::thread;
use std::time::Duration;

use futures_lite::future;
use futures_lite::io::BufWriter;
use futures_lite::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use smol::LocalExecutor;

use crate::harness::{DONE, Sizes, expired, heap_live, start_timed};
use crate::impls::is_tls;
use crate::workloads::{ACCEPTED, Work, corrupt, early_eof, fill_msg, idle_clients, join};

/// `streamish-tokio`: the await face on tokio's `current_thread`
/// runtime, its tasks spawned with `spawn_local`, as a tokio
/// application runs it. The thread then parks in tokio's driver, and
/// async-io's reactor runs on async-io's own thread.
static ON_TOKIO: AtomicBool = AtomicBool::new(false);

pub fn on_tokio(on: bool) {
    ON_TOKIO.store(on, Relaxed);
}

/// Runs `f` to completion on this thread: in `async_io::block_on`, or
/// in a tokio `current_thread` runtime with a `LocalSet`.
fn block_on<T>(f: impl Future<Output = T>) -> T {
    if !ON_TOKIO.load(Relaxed) {
        return async_io::block_on(f);
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    tokio::task::LocalSet::new().block_on(&rt, f)
}

/// Runs `f` with the tasks of `ex` (which tokio leaves empty: its
/// tasks go to the runtime).
fn run_with<T>(ex: &LocalExecutor<'_>, f: impl Future<Output = T>) -> T {
    if ON_TOKIO.load(Relaxed) {
        block_on(f)
    } else {
        block_on(ex.run(f))
    }
}

/// A spawned task, on smol's executor or on tokio's.
enum Task<T> {
    Smol(smol::Task<T>),
    Tokio(tokio::task::JoinHandle<T>),
}

impl<T> Future for Task<T> {
    type Output = T;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        match self.get_mut() {
            Task::Smol(t) => Pin::new(t).poll(cx),
            Task::Tokio(t) => Pin::new(t).poll(cx).map(|r| r.expect("a tokio task panicked")),
        }
    }
}

fn spawn<T: 'static>(ex: &LocalExecutor<'_>, f: impl Future<Output = T> + 'static) -> Task<T> {
    if ON_TOKIO.load(Relaxed) {
        Task::Tokio(tokio::task::spawn_local(f))
    } else {
        Task::Smol(ex.spawn(f))
    }
}

/// What differs between the three: how to listen, accept and connect.
pub trait Net: 'static {
    type Listener;
    type Stream: AsyncRead + AsyncWrite + Unpin + 'static;
    async fn bind() -> io::Result<(Self::Listener, SocketAddr)>;
    async fn accept(l: &Self::Listener) -> io::Result<Self::Stream>;
    async fn connect(addr: SocketAddr) -> io::Result<Self::Stream>;
    /// Called in pingpong and echo-many.
    fn nodelay(s: &Self::Stream) -> io::Result<()>;
}

async fn sink<S: AsyncRead + Unpin>(mut s: S, total: u64) -> io::Result<()> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut got = 0u64;
    while got < total {
        match s.read(&mut buf).await? {
            0 => return Err(early_eof()),
            n => got += n as u64,
        }
    }
    Ok(())
}

async fn source<S: AsyncWrite + Unpin>(mut s: S, chunk: usize, count: u64) -> io::Result<()> {
    let data = vec![0xa5u8; chunk];
    for _ in 0..count {
        s.write_all(&data).await?;
    }
    s.flush().await
}

/// The TLS bulk client: the writes, then reading until the server's
/// `close_notify`. A TLS 1.3 server sends session tickets after the
/// handshake; a client that closed its socket with them unread would
/// reset the connection, and the server lose what it had not read yet.
async fn tls_source<S: AsyncRead + AsyncWrite + Unpin>(mut s: S, chunk: usize, count: u64) -> io::Result<()> {
    source(&mut s, chunk, count).await?;
    let mut buf = [0u8; 4096];
    while s.read(&mut buf).await? > 0 {}
    Ok(())
}

/// The TLS bulk server: reads it all, then closes (`close_notify`).
async fn tls_sink<S: AsyncRead + AsyncWrite + Unpin>(mut s: S, total: u64) -> io::Result<()> {
    sink(&mut s, total).await?;
    s.close().await
}

async fn ping<S: AsyncRead + AsyncWrite + Unpin>(mut s: S, rounds: u64) -> io::Result<()> {
    let msg = [0x42u8; 64];
    let mut back = [0u8; 64];
    let mut done = 0;
    while done < rounds && !expired() {
        s.write_all(&msg).await?;
        s.flush().await?;
        s.read_exact(&mut back).await?;
        done += 1;
    }
    DONE.fetch_add(done, Relaxed);
    if back != msg { Err(corrupt()) } else { Ok(()) }
}

/// Answers until the client closes.
async fn pong<S: AsyncRead + AsyncWrite + Unpin>(mut s: S) -> io::Result<()> {
    let mut buf = [0u8; 64];
    loop {
        match s.read_exact(&mut buf).await {
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(()),
            res => res?,
        }
        s.write_all(&buf).await?;
        s.flush().await?;
    }
}

async fn echo<S: AsyncRead + AsyncWrite + Unpin>(mut s: S) -> io::Result<()> {
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf).await? {
            0 => return Ok(()),
            n => {
                s.write_all(&buf[..n]).await?;
                s.flush().await?;
            }
        }
    }
}

async fn echo_client<S: AsyncRead + AsyncWrite + Unpin>(mut s: S, conn: usize, msgs: usize) -> io::Result<()> {
    let mut msg = [0u8; 128];
    let mut back = [0u8; 128];
    let mut done = 0;
    while done < msgs && !expired() {
        fill_msg(&mut msg, conn, done);
        s.write_all(&msg).await?;
        s.flush().await?;
        s.read_exact(&mut back).await?;
        if back != msg {
            return Err(corrupt());
        }
        done += 1;
    }
    DONE.fetch_add(done as u64, Relaxed);
    Ok(())
}

/// `buffered`: the writer of bulk-1k and small-writes in futures-lite's
/// `BufWriter`, as `async-io-buf` has it.
pub fn run<N: Net>(w: &str, two: bool, buffered: bool, sz: &Sizes) -> io::Result<Duration> {
    match Work::of(w, sz)? {
        Work::Stream { chunk, count, total } => {
            if is_tls(w) {
                pair::<N, _, _>(
                    two,
                    false,
                    move |s| tls_source(s, chunk, count),
                    move |s| tls_sink(s, total),
                )
            } else if buffered {
                pair::<N, _, _>(
                    two,
                    false,
                    move |s| source(BufWriter::new(s), chunk, count),
                    move |s| sink(s, total),
                )
            } else {
                pair::<N, _, _>(two, false, move |s| source(s, chunk, count), move |s| sink(s, total))
            }
        }
        Work::Pingpong { rounds } => pair::<N, _, _>(two, true, move |s| ping(s, rounds), pong),
        Work::EchoMany { conns, msgs } => echo_many::<N>(two, conns, msgs),
    }
}

/// One connection: `client` and `server` run on one executor (`1t`) or
/// on two threads (`2t`); the time is from connected to the server done.
fn pair<N: Net, C, S>(
    two: bool,
    nodelay: bool,
    client: impl FnOnce(N::Stream) -> C + Send + 'static,
    server: impl FnOnce(N::Stream) -> S + Send + 'static,
) -> io::Result<Duration>
where
    C: Future<Output = io::Result<()>>,
    S: Future<Output = io::Result<()>> + 'static,
{
    if !two {
        let ex = LocalExecutor::new();
        return run_with(&ex, async {
            let (l, addr) = N::bind().await?;
            let (c, s) = future::try_zip(N::connect(addr), N::accept(&l)).await?;
            if nodelay {
                N::nodelay(&c)?;
                N::nodelay(&s)?;
            }
            let t0 = start_timed();
            let srv = spawn(&ex, server(s));
            client(c).await?;
            srv.await?;
            Ok(t0.elapsed())
        });
    }
    let (tx, rx) = mpsc::channel();
    let go = Arc::new(Barrier::new(2));
    let go2 = go.clone();
    let srv = thread::spawn(move || {
        block_on(async {
            let (l, addr) = N::bind().await?;
            tx.send(addr).map_err(io::Error::other)?;
            let s = N::accept(&l).await?;
            if nodelay {
                N::nodelay(&s)?;
            }
            go2.wait();
            let t0 = start_timed();
            server(s).await?;
            Ok(t0.elapsed())
        })
    });
    let cli = thread::spawn(move || {
        block_on(async {
            let addr = rx.recv().map_err(io::Error::other)?;
            let c = N::connect(addr).await?;
            if nodelay {
                N::nodelay(&c)?;
            }
            go.wait();
            client(c).await
        })
    });
    let (c, s) = join(cli, srv)?;
    c?;
    s
}

async fn accept_all<'a, N: Net>(
    ex: &LocalExecutor<'a>,
    l: &N::Listener,
    n: usize,
) -> io::Result<Vec<Task<io::Result<()>>>> {
    let mut tasks = Vec::with_capacity(n);
    for _ in 0..n {
        let s = N::accept(l).await?;
        N::nodelay(&s)?;
        tasks.push(spawn(ex, echo(s)));
    }
    Ok(tasks)
}

async fn connect_all<N: Net>(addr: SocketAddr, n: usize) -> io::Result<Vec<N::Stream>> {
    let mut v = Vec::with_capacity(n);
    for _ in 0..n {
        let c = N::connect(addr).await?;
        N::nodelay(&c)?;
        v.push(c);
    }
    Ok(v)
}

async fn clients<'a, N: Net>(ex: &LocalExecutor<'a>, conns: Vec<N::Stream>, msgs: usize) -> io::Result<Duration> {
    let t0 = start_timed();
    let tasks: Vec<_> = conns
        .into_iter()
        .enumerate()
        .map(|(i, c)| spawn(ex, echo_client(c, i, msgs)))
        .collect();
    for t in tasks {
        t.await?;
    }
    Ok(t0.elapsed())
}

fn echo_many<N: Net>(two: bool, n: usize, msgs: usize) -> io::Result<Duration> {
    if !two {
        let ex = LocalExecutor::new();
        return run_with(&ex, async {
            let (l, addr) = N::bind().await?;
            let (_servers, conns) = future::try_zip(accept_all::<N>(&ex, &l, n), connect_all::<N>(addr, n)).await?;
            clients::<N>(&ex, conns, msgs).await
        });
    }
    let (tx, rx) = mpsc::channel();
    let (ready_tx, ready_rx) = mpsc::channel();
    let srv = thread::spawn(move || {
        let ex = LocalExecutor::new();
        run_with(&ex, async {
            let (l, addr) = N::bind().await?;
            tx.send(addr).map_err(io::Error::other)?;
            let tasks = accept_all::<N>(&ex, &l, n).await?;
            ready_tx.send(()).map_err(io::Error::other)?;
            for t in tasks {
                t.await?;
            }
            io::Result::Ok(())
        })
    });
    let cli = thread::spawn(move || {
        let ex = LocalExecutor::new();
        run_with(&ex, async {
            let addr = rx.recv().map_err(io::Error::other)?;
            let conns = connect_all::<N>(addr, n).await?;
            ready_rx.recv().map_err(io::Error::other)?;
            clients::<N>(&ex, conns, msgs).await
        })
    });
    let (c, s) = join(cli, srv)?;
    s?;
    c
}

/// `n` accepted connections, each with a task waiting to read: heap
/// bytes per connection once they all wait.
pub fn idle<N: Net>(n: usize) -> io::Result<f64> {
    let ex = LocalExecutor::new();
    let res = block_on(ex.run(async {
        let (l, addr) = N::bind().await?;
        let base = heap_live();
        let done = idle_clients(addr, n);
        for _ in 0..n {
            let mut s = N::accept(&l).await?;
            ACCEPTED.fetch_add(1, Relaxed);
            ex.spawn(async move {
                let mut b = [0u8; 64];
                let _ = s.read(&mut b).await;
                drop(s);
            })
            .detach();
        }
        done.recv().map_err(io::Error::other)??;
        async_io::Timer::after(Duration::from_millis(200)).await;
        Ok((heap_live() - base) as f64 / n as f64)
    }));
    // The process exits next: skip closing thousands of connections.
    std::mem::forget(ex);
    res
}
