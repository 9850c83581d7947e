//! The same exchange under every executor: streamish's futures are
//! runtime-agnostic, so they run under `async_io::block_on`,
//! `futures_lite::future::block_on`, smol and tokio (both runtimes),
//! spawned as tasks where the executor can spawn, and they talk to peers
//! written with tokio's and async-net's own sockets.

mod common;

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, mpsc};

use futures_lite::{AsyncReadExt, AsyncWriteExt};
use streamish::{
    AsyncOutputStream, AsyncOutputStreamExt, AsyncStreamExt, TcpListener, TcpStream, tcp_connect, tcp_server,
};

use common::{LIMIT, Rng, timeout};

const ROUNDS: u32 = 16;

const BULK: usize = 300 * 1024;

/// The server side: on its first connection, answers requests with no
/// flush call; on its second, echoes everything back until EOF.
async fn serve(server: TcpListener) -> io::Result<()> {
    let (mut s, _) = server.accept().await?;
    let mut answered = 0;
    loop {
        let mut req = [0u8; 8];
        match s.read_exact(&mut req).await {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => break,
            Err(e) => return Err(e),
        }
        req.reverse();
        // Queued only: the next read sends it.
        s.write_all(&req).await?;
        answered += 1;
    }
    assert_eq!(answered, ROUNDS);
    s.close_stream().await?;

    let (stream, _) = server.accept().await?;
    let (input, mut output) = stream.split();
    futures_lite::io::copy(input, &mut output).await?;
    output.close_stream().await
}

/// The client side of [`serve`]: request/response rounds with no flush,
/// then a bulk transfer sent and echoed at once.
async fn client(addr: SocketAddr, seed: u64) -> io::Result<()> {
    let mut s = TcpStream::connect(addr).await?;
    for n in 0..ROUNDS {
        let req = u64::from(n).wrapping_mul(0x0101_0101_0101_0101).to_be_bytes();
        s.write_all(&req).await?;
        let mut resp = [0u8; 8];
        s.read_exact(&mut resp).await?;
        resp.reverse();
        assert_eq!(resp, req, "round {n}");
    }
    s.close_stream().await?;

    let data = Rng::new(seed).bytes(BULK);
    let (mut input, mut output) = TcpStream::connect(addr).await?.split();
    let send = async {
        for (i, chunk) in data.chunks(9_000).enumerate() {
            if i % 2 == 0 {
                output.write_all(chunk).await?;
            } else {
                output.write_sequence(chunk)?;
                output.force_output()?;
            }
        }
        output.finish_output().await?;
        output.close().await
    };
    let mut got = Vec::new();
    let (sent, read) = futures_lite::future::zip(send, input.read_to_end(&mut got)).await;
    sent?;
    read?;
    assert!(got == data, "echo differs: {} of {} bytes", got.len(), data.len());
    Ok(())
}

fn bind() -> (TcpListener, SocketAddr) {
    let server = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = server.local_addr();
    (server, addr)
}

#[test]
fn under_async_io_block_on() {
    let (server, addr) = bind();
    async_io::block_on(timeout(async {
        let (s, c) = futures_lite::future::zip(serve(server), client(addr, 1)).await;
        s.unwrap();
        c.unwrap();
    }));
}

#[test]
fn under_futures_lite_block_on() {
    // No reactor on this thread: async-io drives itself from its own.
    let (server, addr) = bind();
    futures_lite::future::block_on(timeout(async {
        let (s, c) = futures_lite::future::zip(serve(server), client(addr, 2)).await;
        s.unwrap();
        c.unwrap();
    }));
}

#[test]
fn under_smol_with_spawned_tasks() {
    let (server, addr) = bind();
    smol::block_on(timeout(async {
        let server_task = smol::spawn(serve(server));
        let client_task = smol::spawn(client(addr, 3));
        client_task.await.unwrap();
        server_task.await.unwrap();
    }));
}

#[test]
fn under_an_async_executor() {
    let (server, addr) = bind();
    let ex = smol::Executor::new();
    futures_lite::future::block_on(ex.run(timeout(async {
        let server_task = ex.spawn(serve(server));
        client(addr, 4).await.unwrap();
        server_task.await.unwrap();
    })));
}

#[tokio::test(flavor = "current_thread")]
async fn under_tokio_current_thread() {
    timeout(async {
        let (server, addr) = bind();
        let server_task = tokio::spawn(serve(server));
        client(addr, 5).await.unwrap();
        server_task.await.unwrap().unwrap();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_tokio_multi_thread() {
    timeout(async {
        let (server, addr) = bind();
        let server_task = tokio::spawn(serve(server));
        let client_task = tokio::spawn(client(addr, 6));
        client_task.await.unwrap().unwrap();
        server_task.await.unwrap().unwrap();
    })
    .await;
}

/// An executor whose waker's clones never `will_wake` the waker they were
/// cloned from, as tokio's `block_on` polls the body of `#[tokio::main]`
/// (in release builds: the clone carries another copy of the vtable). A
/// waiting read took each new poll's waker for another task's and woke the
/// old one to hand over, which polled it again: it spun for as long as it
/// waited, a CPU busy on an idle connection.
///
/// Building such a waker takes `RawWaker`, hence the `unsafe` here: both
/// vtables are the same `Arc` functions, and the data is the `Arc`'s.
mod split_waker {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::task::{RawWaker, RawWakerVTable, Waker};
    use std::thread::Thread;

    pub struct Signal {
        pub woken: AtomicBool,
        pub thread: Thread,
    }

    // Two identical vtables: the borrowed waker's and its clones'.
    static BORROWED: RawWakerVTable = RawWakerVTable::new(clone, wake, wake_by_ref, drop);
    static CLONED: RawWakerVTable = RawWakerVTable::new(clone, wake, wake_by_ref, drop);

    unsafe fn clone(data: *const ()) -> RawWaker {
        // SAFETY: `data` came from `Arc::into_raw` (see `borrowed`) and
        // every waker made from it holds one count.
        unsafe { Arc::increment_strong_count(data.cast::<Signal>()) };
        RawWaker::new(data, &CLONED)
    }

    unsafe fn wake(data: *const ()) {
        unsafe { wake_by_ref(data) };
        unsafe { drop(data) };
    }

    unsafe fn wake_by_ref(data: *const ()) {
        // SAFETY: the waker holds a count, so the `Signal` is alive.
        let s = unsafe { &*data.cast::<Signal>() };
        s.woken.store(true, Ordering::Release);
        s.thread.unpark();
    }

    unsafe fn drop(data: *const ()) {
        // SAFETY: gives back the count this waker held.
        unsafe { Arc::decrement_strong_count(data.cast::<Signal>()) };
    }

    /// The waker a poll gets; its clones carry the other vtable.
    pub fn borrowed(signal: &Arc<Signal>) -> Waker {
        let data = Arc::into_raw(signal.clone()).cast::<()>();
        // SAFETY: the vtable's functions keep `Arc`'s counting contract.
        unsafe { Waker::from_raw(RawWaker::new(data, &BORROWED)) }
    }
}

#[test]
fn a_waiting_read_does_not_wake_itself_when_its_wakers_clones_look_foreign() {
    use std::io::Write;
    use std::pin::pin;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::task::{Context, Poll};

    const MAX_POLLS: usize = 1_000;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let mut client = async_io::block_on(TcpStream::connect(addr)).unwrap();
    let (mut peer, _) = listener.accept().unwrap();
    // The peer writes once the executor has nothing to poll: a read that
    // keeps waking itself never lets it.
    let (go, went) = std::sync::mpsc::channel::<()>();
    let writer = std::thread::spawn(move || {
        if went.recv().is_ok() {
            peer.write_all(b"x").unwrap();
        }
    });

    let mut buf = [0u8; 1];
    let read = client.read(&mut buf);
    // A second branch wakes the future once, so the waiting read is polled
    // a second time, as under `select!` or `join!`.
    let mut nudged = false;
    let nudge = std::future::poll_fn(|cx| {
        if !std::mem::replace(&mut nudged, true) {
            cx.waker().wake_by_ref();
        }
        Poll::<io::Result<usize>>::Pending
    });
    let mut fut = pin!(futures_lite::future::or(read, nudge));
    let signal = Arc::new(split_waker::Signal {
        woken: AtomicBool::new(false),
        thread: std::thread::current(),
    });
    let waker = split_waker::borrowed(&signal);
    let mut cx = Context::from_waker(&waker);
    let (mut polls, mut told) = (0, false);
    let got = loop {
        polls += 1;
        if let Poll::Ready(res) = fut.as_mut().poll(&mut cx) {
            break Some(res);
        }
        if polls >= MAX_POLLS {
            break None;
        }
        if !signal.woken.swap(false, Ordering::AcqRel) {
            if !told {
                told = true;
                go.send(()).unwrap();
            }
            // Bounded by `LIMIT` in case the wake-up never comes.
            let deadline = std::time::Instant::now() + common::LIMIT;
            while !signal.woken.swap(false, Ordering::AcqRel) && std::time::Instant::now() < deadline {
                std::thread::park_timeout(common::LIMIT);
            }
        }
    };
    drop(go);
    writer.join().unwrap();
    assert!(
        got.is_some(),
        "the waiting read was polled {polls} times with nothing new to read"
    );
    assert_eq!(got.unwrap().unwrap(), 1);
    assert_eq!(buf, *b"x");
    assert!(polls <= 4, "polled {polls} times: twice waiting, once ready");
}

/// A streamish client against a peer written with tokio's own sockets, and
/// a streamish stream driven through tokio's io traits (tokio-util compat).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_tokio_peers_and_tokio_io_traits() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    use tokio_util::compat::FuturesAsyncReadCompatExt;

    timeout(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let echo = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await?;
            let (mut r, mut w) = s.split();
            tokio::io::copy(&mut r, &mut w).await?;
            w.shutdown().await?;
            io::Result::Ok(())
        });
        let data = Rng::new(7).bytes(BULK);
        let (mut input, mut output) = TcpStream::connect(addr).await.unwrap().split();
        let send = async {
            output.write_all(&data).await?;
            output.close().await
        };
        let mut got = Vec::new();
        let (sent, read) = futures_lite::future::zip(send, input.read_to_end(&mut got)).await;
        sent.unwrap();
        read.unwrap();
        assert!(got == data);
        echo.await.unwrap().unwrap();

        // streamish server, tokio client; the accepted stream used through
        // tokio's AsyncRead/AsyncWrite.
        let (server, addr) = bind();
        let peer = tokio::spawn(async move {
            let mut c = tokio::net::TcpStream::connect(addr).await?;
            c.write_all(b"from tokio").await?;
            c.shutdown().await?;
            let mut back = Vec::new();
            c.read_to_end(&mut back).await?;
            io::Result::Ok(back)
        });
        let (accepted, _) = server.accept().await.unwrap();
        let mut compat = accepted.compat();
        let mut got = Vec::new();
        compat.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"from tokio");
        compat.write_all(b"from streamish via tokio traits").await.unwrap();
        compat.shutdown().await.unwrap();
        assert_eq!(peer.await.unwrap().unwrap(), b"from streamish via tokio traits");
    })
    .await;
}

/// Under smol, against a peer written with async-net.
#[test]
fn with_an_async_net_peer_under_smol() {
    smol::block_on(timeout(async {
        let listener = async_net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let echo = smol::spawn(async move {
            let (s, _) = listener.accept().await?;
            futures_lite::io::copy(s.clone(), &mut s.clone()).await?;
            s.shutdown(std::net::Shutdown::Write)
        });
        let data = Rng::new(8).bytes(BULK);
        let (mut input, mut output) = TcpStream::connect(addr).await.unwrap().split();
        let send = smol::spawn(async move {
            output.write_all(&data).await?;
            output.close().await?;
            io::Result::Ok(data)
        });
        let mut got = Vec::new();
        input.read_to_end(&mut got).await.unwrap();
        let data = send.await.unwrap();
        assert!(got == data);
        echo.await.unwrap();
    }));
}

// ---- the same connections on executors the user already runs ----

/// Starts an echo server with `spawner`, sends 1 MiB through a client
/// driven the same way, and returns what came back.
fn echo_exchange(spawner: impl Fn(streamish::Driver) + Send + Sync + Clone + 'static) -> (Vec<u8>, Vec<u8>) {
    let payload: Vec<u8> = (0..1 << 20).map(|i| (i * 7 % 251) as u8).collect();
    let got = Arc::new(Mutex::new(Vec::new()));
    let (done_tx, done_rx) = mpsc::channel();
    let server = tcp_server("127.0.0.1", 0)
        .read_cb(|sock, data| {
            sock.write_bytes(data.into_bytes()).unwrap();
        })
        .start(spawner.clone())
        .unwrap();
    let g = got.clone();
    let n = payload.len();
    let (_, driver) = tcp_connect("127.0.0.1", server.local_addr().port())
        .data(payload.clone())
        .read_cb(move |sock, data| {
            let mut g = g.lock().unwrap();
            g.extend_from_slice(&data.into_bytes());
            if g.len() == n {
                sock.close();
            }
        })
        .start()
        .unwrap();
    spawner(streamish::Driver::new(async move {
        let res = driver.await;
        done_tx.send(res.is_ok()).unwrap();
        Ok(())
    }));
    assert!(done_rx.recv_timeout(LIMIT).unwrap(), "the client driver failed");
    server.close();
    let got = got.lock().unwrap().clone();
    (payload, got)
}

#[test]
fn runs_on_smol() {
    let (sent, got) = echo_exchange(|d| smol::spawn(d).detach());
    assert_eq!(sent, got);
}

#[test]
fn runs_on_async_executor_with_two_threads() {
    let ex = Arc::new(async_executor::Executor::new());
    let (stop_tx, stop_rx) = async_channel_like();
    let threads: Vec<_> = (0..2)
        .map(|_| {
            let ex = ex.clone();
            let stop = stop_rx.clone();
            std::thread::spawn(move || async_io::block_on(ex.run(stop.wait())))
        })
        .collect();
    let spawn_ex = ex.clone();
    let (sent, got) = echo_exchange(move |d| spawn_ex.spawn(d).detach());
    stop_tx.fire();
    threads.into_iter().for_each(|t| t.join().unwrap());
    assert_eq!(sent, got);
}

#[test]
fn runs_on_tokio_current_thread() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let handle = rt.handle().clone();
    // A current-thread runtime runs tasks only while something blocks on it.
    let (stop_tx, stop_rx) = async_channel_like();
    let runner = std::thread::spawn(move || rt.block_on(stop_rx.wait()));
    let (sent, got) = echo_exchange(move |d| {
        handle.spawn(d);
    });
    stop_tx.fire();
    runner.join().unwrap();
    assert_eq!(sent, got);
}

#[test]
fn runs_on_tokio_multi_thread() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let handle = rt.handle().clone();
    let (sent, got) = echo_exchange(move |d| {
        handle.spawn(d);
    });
    assert_eq!(sent, got);
}

/// A one-shot "stop" signal any executor can await.
fn async_channel_like() -> (Stop, Stop) {
    let s = Stop(Arc::new(event_flag::Flag::default()));
    (s.clone(), s)
}

#[derive(Clone)]
struct Stop(Arc<event_flag::Flag>);

impl Stop {
    fn fire(&self) {
        self.0.set();
    }
    async fn wait(self) {
        self.0.wait().await
    }
}

mod event_flag {
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::task::{Poll, Waker};

    #[derive(Default)]
    pub struct Flag {
        set: AtomicBool,
        wakers: Mutex<Vec<Waker>>,
    }

    impl Flag {
        pub fn set(&self) {
            self.set.store(true, Ordering::SeqCst);
            for w in self.wakers.lock().unwrap().drain(..) {
                w.wake();
            }
        }

        pub async fn wait(&self) {
            futures_lite::future::poll_fn(|cx| {
                if self.set.load(Ordering::SeqCst) {
                    return Poll::Ready(());
                }
                self.wakers.lock().unwrap().push(cx.waker().clone());
                if self.set.load(Ordering::SeqCst) {
                    Poll::Ready(())
                } else {
                    Poll::Pending
                }
            })
            .await
        }
    }
}
