//! `std`: blocking `std::net` with a thread per side (`2t` only), and a
//! thread per connection in echo-many and idle.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use crate::harness::{DONE, Sizes, expired, heap_live, start_timed};
use crate::workloads::{ACCEPTED, Work, corrupt, early_eof, fill_msg, idle_clients, join};

fn listen() -> io::Result<(TcpListener, SocketAddr)> {
    let l = TcpListener::bind("127.0.0.1:0")?;
    let addr = l.local_addr()?;
    Ok((l, addr))
}

fn sink(mut s: TcpStream, total: u64) -> io::Result<()> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut got = 0u64;
    while got < total {
        match s.read(&mut buf)? {
            0 => return Err(early_eof()),
            n => got += n as u64,
        }
    }
    Ok(())
}

fn source(mut s: TcpStream, chunk: usize, count: u64) -> io::Result<()> {
    let data = vec![0xa5u8; chunk];
    for _ in 0..count {
        s.write_all(&data)?;
    }
    s.flush()
}

fn ping(mut s: TcpStream, rounds: u64) -> io::Result<()> {
    let msg = [0x42u8; 64];
    let mut back = [0u8; 64];
    let mut done = 0;
    while done < rounds && !expired() {
        s.write_all(&msg)?;
        s.read_exact(&mut back)?;
        done += 1;
    }
    DONE.fetch_add(done, Relaxed);
    if back != msg { Err(corrupt()) } else { Ok(()) }
}

/// Answers until the client closes.
fn pong(mut s: TcpStream) -> io::Result<()> {
    let mut buf = [0u8; 64];
    loop {
        match s.read_exact(&mut buf) {
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(()),
            res => res?,
        }
        s.write_all(&buf)?;
    }
}

fn echo(mut s: TcpStream) -> io::Result<()> {
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf)? {
            0 => return Ok(()),
            n => s.write_all(&buf[..n])?,
        }
    }
}

fn echo_client(mut s: TcpStream, conn: usize, msgs: usize) -> io::Result<()> {
    let mut msg = [0u8; 128];
    let mut back = [0u8; 128];
    let mut done = 0;
    while done < msgs && !expired() {
        fill_msg(&mut msg, conn, done);
        s.write_all(&msg)?;
        s.read_exact(&mut back)?;
        if back != msg {
            return Err(corrupt());
        }
        done += 1;
    }
    DONE.fetch_add(done as u64, Relaxed);
    Ok(())
}

pub fn run(w: &str, sz: &Sizes) -> io::Result<Duration> {
    match Work::of(w, sz)? {
        Work::Stream { chunk, count, total } => pair(false, move |s| source(s, chunk, count), move |s| sink(s, total)),
        Work::Pingpong { rounds } => pair(true, move |s| ping(s, rounds), pong),
        Work::EchoMany { conns, msgs } => echo_many(conns, msgs),
    }
}

fn pair(
    nodelay: bool,
    client: impl FnOnce(TcpStream) -> io::Result<()> + Send + 'static,
    server: impl FnOnce(TcpStream) -> io::Result<()> + Send + 'static,
) -> io::Result<Duration> {
    let (l, addr) = listen()?;
    let go = Arc::new(Barrier::new(2));
    let go2 = go.clone();
    let srv = thread::spawn(move || {
        let (s, _) = l.accept()?;
        s.set_nodelay(nodelay)?;
        go2.wait();
        let t0 = start_timed();
        server(s)?;
        Ok(t0.elapsed())
    });
    let cli = thread::spawn(move || {
        let c = TcpStream::connect(addr)?;
        c.set_nodelay(nodelay)?;
        go.wait();
        client(c)
    });
    let (c, s) = join(cli, srv)?;
    c?;
    s
}

fn echo_many(n: usize, msgs: usize) -> io::Result<Duration> {
    let (l, addr) = listen()?;
    let srv = thread::spawn(move || -> io::Result<()> {
        let mut threads = Vec::with_capacity(n);
        for _ in 0..n {
            let (s, _) = l.accept()?;
            s.set_nodelay(true)?;
            threads.push(thread::Builder::new().stack_size(256 * 1024).spawn(move || echo(s))?);
        }
        for t in threads {
            t.join().map_err(|_| io::Error::other("echo panicked"))??;
        }
        Ok(())
    });
    let go = Arc::new(Barrier::new(n + 1));
    let mut threads = Vec::with_capacity(n);
    for i in 0..n {
        let c = TcpStream::connect(addr)?;
        c.set_nodelay(true)?;
        let go = go.clone();
        threads.push(thread::Builder::new().stack_size(256 * 1024).spawn(move || {
            go.wait();
            echo_client(c, i, msgs)
        })?);
    }
    go.wait();
    let t0 = start_timed();
    for t in threads {
        t.join().map_err(|_| io::Error::other("client panicked"))??;
    }
    let elapsed = t0.elapsed();
    srv.join().map_err(|_| io::Error::other("server panicked"))??;
    Ok(elapsed)
}

/// A thread per idle connection, blocked in `read` (stacks are
/// `mmap`ed, not heap; they are not counted).
pub fn idle(n: usize) -> io::Result<f64> {
    let (l, addr) = listen()?;
    let waiting = Arc::new(AtomicUsize::new(0));
    let base = heap_live();
    let done = idle_clients(addr, n);
    for _ in 0..n {
        let (mut s, _) = l.accept()?;
        ACCEPTED.fetch_add(1, Relaxed);
        let waiting = waiting.clone();
        thread::Builder::new().stack_size(64 * 1024).spawn(move || {
            waiting.fetch_add(1, Relaxed);
            let mut b = [0u8; 64];
            let _ = s.read(&mut b);
        })?;
    }
    done.recv().map_err(io::Error::other)??;
    let deadline = Instant::now() + Duration::from_secs(20);
    while waiting.load(Relaxed) < n && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(10));
    }
    thread::sleep(Duration::from_millis(200));
    Ok((heap_live() - base) as f64 / n as f64)
}
