//! `tokio`: `tokio::net` on `current_thread` runtimes; `tokio-buf` wraps
//! the writer in a `BufWriter` where a tokio user would (bulk-1k and
//! small-writes).

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Barrier, mpsc};
use std::thread;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufWriter};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::{Builder, Runtime};

use crate::harness::{DONE, Sizes, expired, heap_live, start_timed};
use crate::workloads::{ACCEPTED, Work, corrupt, early_eof, fill_msg, idle_clients, join};

fn runtime() -> io::Result<Runtime> {
    Builder::new_current_thread().enable_all().build()
}

async fn bind() -> io::Result<(TcpListener, SocketAddr)> {
    let l = TcpListener::bind("127.0.0.1:0").await?;
    let addr = l.local_addr()?;
    Ok((l, addr))
}

async fn sink(mut s: TcpStream, total: u64) -> io::Result<()> {
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

async fn source<W: AsyncWrite + Unpin>(mut s: W, chunk: usize, count: u64) -> io::Result<()> {
    let data = vec![0xa5u8; chunk];
    for _ in 0..count {
        s.write_all(&data).await?;
    }
    s.flush().await
}

async fn ping(mut s: TcpStream, rounds: u64) -> io::Result<()> {
    let msg = [0x42u8; 64];
    let mut back = [0u8; 64];
    let mut done = 0;
    while done < rounds && !expired() {
        s.write_all(&msg).await?;
        s.read_exact(&mut back).await?;
        done += 1;
    }
    DONE.fetch_add(done, Relaxed);
    if back != msg { Err(corrupt()) } else { Ok(()) }
}

/// Answers until the client closes.
async fn pong(mut s: TcpStream) -> io::Result<()> {
    let mut buf = [0u8; 64];
    loop {
        match s.read_exact(&mut buf).await {
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(()),
            res => res?,
        };
        s.write_all(&buf).await?;
    }
}

async fn echo(mut s: TcpStream) -> io::Result<()> {
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf).await? {
            0 => return Ok(()),
            n => s.write_all(&buf[..n]).await?,
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
        s.read_exact(&mut back).await?;
        if back != msg {
            return Err(corrupt());
        }
        done += 1;
    }
    DONE.fetch_add(done as u64, Relaxed);
    Ok(())
}

pub fn run(w: &str, two: bool, buffered: bool, sz: &Sizes) -> io::Result<Duration> {
    match Work::of(w, sz)? {
        Work::Stream { chunk, count, total } => {
            if buffered {
                pair(
                    two,
                    false,
                    move |s| source(BufWriter::new(s), chunk, count),
                    move |s| sink(s, total),
                )
            } else {
                pair(two, false, move |s| source(s, chunk, count), move |s| sink(s, total))
            }
        }
        Work::Pingpong { rounds } => pair(two, true, move |s| ping(s, rounds), pong),
        Work::EchoMany { conns, msgs } => echo_many(two, conns, msgs),
    }
}

fn pair<C, S>(
    two: bool,
    nodelay: bool,
    client: impl FnOnce(TcpStream) -> C + Send + 'static,
    server: impl FnOnce(TcpStream) -> S + Send + 'static,
) -> io::Result<Duration>
where
    C: Future<Output = io::Result<()>> + Send + 'static,
    S: Future<Output = io::Result<()>> + Send + 'static,
{
    if !two {
        return runtime()?.block_on(async {
            let (l, addr) = bind().await?;
            let (c, (s, _)) = tokio::try_join!(TcpStream::connect(addr), l.accept())?;
            if nodelay {
                c.set_nodelay(true)?;
                s.set_nodelay(true)?;
            }
            let t0 = start_timed();
            let srv = tokio::spawn(server(s));
            client(c).await?;
            srv.await??;
            Ok(t0.elapsed())
        });
    }
    let (tx, rx) = mpsc::channel();
    let go = Arc::new(Barrier::new(2));
    let go2 = go.clone();
    let srv = thread::spawn(move || {
        runtime()?.block_on(async {
            let (l, addr) = bind().await?;
            tx.send(addr).map_err(io::Error::other)?;
            let (s, _) = l.accept().await?;
            if nodelay {
                s.set_nodelay(true)?;
            }
            go2.wait();
            let t0 = start_timed();
            server(s).await?;
            Ok(t0.elapsed())
        })
    });
    let cli = thread::spawn(move || {
        runtime()?.block_on(async {
            let addr = rx.recv().map_err(io::Error::other)?;
            let c = TcpStream::connect(addr).await?;
            if nodelay {
                c.set_nodelay(true)?;
            }
            go.wait();
            client(c).await
        })
    });
    let (c, s) = join(cli, srv)?;
    c?;
    s
}

async fn accept_all(l: TcpListener, n: usize) -> io::Result<Vec<tokio::task::JoinHandle<io::Result<()>>>> {
    let mut tasks = Vec::with_capacity(n);
    for _ in 0..n {
        let (s, _) = l.accept().await?;
        s.set_nodelay(true)?;
        tasks.push(tokio::spawn(echo(s)));
    }
    Ok(tasks)
}

async fn connect_all(addr: SocketAddr, n: usize) -> io::Result<Vec<TcpStream>> {
    let mut v = Vec::with_capacity(n);
    for _ in 0..n {
        let c = TcpStream::connect(addr).await?;
        c.set_nodelay(true)?;
        v.push(c);
    }
    Ok(v)
}

async fn clients(conns: Vec<TcpStream>, msgs: usize) -> io::Result<Duration> {
    let t0 = start_timed();
    let tasks: Vec<_> = conns
        .into_iter()
        .enumerate()
        .map(|(i, c)| tokio::spawn(echo_client(c, i, msgs)))
        .collect();
    for t in tasks {
        t.await??;
    }
    Ok(t0.elapsed())
}

fn echo_many(two: bool, n: usize, msgs: usize) -> io::Result<Duration> {
    if !two {
        return runtime()?.block_on(async {
            let (l, addr) = bind().await?;
            let (_servers, conns) = tokio::try_join!(accept_all(l, n), connect_all(addr, n))?;
            clients(conns, msgs).await
        });
    }
    let (tx, rx) = mpsc::channel();
    let (ready_tx, ready_rx) = mpsc::channel();
    let srv = thread::spawn(move || {
        runtime()?.block_on(async {
            let (l, addr) = bind().await?;
            tx.send(addr).map_err(io::Error::other)?;
            let tasks = accept_all(l, n).await?;
            ready_tx.send(()).map_err(io::Error::other)?;
            for t in tasks {
                t.await??;
            }
            io::Result::Ok(())
        })
    });
    let cli = thread::spawn(move || {
        runtime()?.block_on(async {
            let addr = rx.recv().map_err(io::Error::other)?;
            let conns = connect_all(addr, n).await?;
            ready_rx.recv().map_err(io::Error::other)?;
            clients(conns, msgs).await
        })
    });
    let (c, s) = join(cli, srv)?;
    s?;
    c
}

pub fn idle(n: usize) -> io::Result<f64> {
    let rt = runtime()?;
    let res = rt.block_on(async {
        let (l, addr) = bind().await?;
        let base = heap_live();
        let done = idle_clients(addr, n);
        for _ in 0..n {
            let (mut s, _) = l.accept().await?;
            ACCEPTED.fetch_add(1, Relaxed);
            tokio::spawn(async move {
                let mut b = [0u8; 64];
                let _ = s.read(&mut b).await;
                drop(s);
            });
        }
        done.recv().map_err(io::Error::other)??;
        tokio::time::sleep(Duration::from_millis(200)).await;
        Ok((heap_live() - base) as f64 / n as f64)
    });
    // The process exits next: skip closing thousands of connections.
    std::mem::forget(rt);
    res
}
