//! Unix-domain streams, cl-async's pipes: cl-async's own pipe tests
//! (`test/pipe.lisp`), translated, then the await face, the socket file
//! policy and the stream's behaviour under the same engine as TCP.
#![cfg(unix)]

mod common;

use std::io;
use std::net::Shutdown;
use std::os::unix::fs::FileTypeExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use futures_lite::future::zip;
use futures_lite::{AsyncReadExt, AsyncWriteExt, StreamExt};
use streamish::{
    AsyncInputStream, AsyncIoStream, AsyncOutputStreamExt, Clock, Event, ReadData, Socket, UnixListener, UnixStream,
    exit_event_loop, pipe_connect, pipe_server, tcp_server,
};

use common::{Counter, Events, TempDir, is_pattern_at, join, pattern_at, run, run_loop};

/// A string shared by callbacks.
type Text = Arc<Mutex<String>>;

fn append(text: &Text, data: ReadData<'_, UnixStream>) {
    text.lock()
        .unwrap()
        .push_str(&String::from_utf8_lossy(&data.into_bytes()));
}

// ---- cl-async's test/pipe.lisp ----

/// cl-async: `pipe-simple-client-server`. Two clients, each sending "hai "
/// split between `:data` and a write made before the connection is up; the
/// server answers each read with "thxlol ".
#[test]
fn pipe_simple_client_server() {
    let dir = TempDir::new("pipe");
    let path = dir.join("blabla");
    let (server_reqs, connect_num, client_replies) = (Counter::default(), Counter::default(), Counter::default());
    let (server_data, client_data): (Text, Text) = Default::default();
    let (reqs, connects, replies, sdata, cdata) = (
        server_reqs.clone(),
        connect_num.clone(),
        client_replies.clone(),
        server_data.clone(),
        client_data.clone(),
    );
    let p = path.clone();
    run_loop(move || -> io::Result<()> {
        let server = pipe_server(&p)
            .read_cb(move |sock, data| {
                reqs.bump();
                append(&sdata, data);
                sock.write(b"thxlol ").unwrap();
            })
            .connect_cb(connects.socket_cb())
            .spawn()?;
        for _ in 0..2 {
            let (server, replies, cdata) = (server.clone(), replies.clone(), cdata.clone());
            let sock = pipe_connect(&p)
                .data("ha")
                .read_cb(move |sock, data| {
                    let n = replies.bump();
                    if sock.is_open() {
                        sock.close();
                    }
                    append(&cdata, data);
                    if n == 2 {
                        server.close(); // cl-async exits the loop after a delay instead
                    }
                })
                .event_cb(|ev| panic!("unexpected event: {ev}"))
                .spawn()?;
            sock.write(b"i ")?;
        }
        Ok(())
    })
    .unwrap();
    assert_eq!(server_reqs.get(), 2, "number of server requests");
    assert_eq!(*server_data.lock().unwrap(), "hai hai ", "received server data");
    assert_eq!(connect_num.get(), 2, "number of connections (from connect_cb)");
    assert_eq!(client_replies.get(), 2, "number of replies sent to client");
    assert_eq!(*client_data.lock().unwrap(), "thxlol thxlol ", "received client data");
    assert!(!path.exists(), "the closed server removed its socket file");
}

/// cl-async: `pipe-connect-fail`. A connect to a missing path is one
/// event, cl-async's `filesystem-enoent` (`NotFound` here, naming the
/// path); with no `event_cb` it is the loop's error.
#[test]
fn pipe_connect_fail() {
    let dir = TempDir::new("pipe");
    let path = dir.join("nosuchpipe");
    let events = Events::default();
    let cb = events.cb();
    let p = path.clone();
    run_loop(move || -> io::Result<()> {
        pipe_connect(&p)
            .data("hai")
            .read_timeout(Duration::from_secs(1))
            .read_cb(|_, _| {})
            .event_cb(cb)
            .spawn()?;
        Ok(())
    })
    .unwrap();
    let evs = events.take();
    assert_eq!(evs.len(), 1, "{evs:?}");
    assert_eq!(evs[0].kind(), io::ErrorKind::NotFound, "{}", evs[0]);
    assert!(evs[0].to_string().contains("nosuchpipe"), "{}", evs[0]);

    let p = path.clone();
    let err = run_loop(move || pipe_connect(&p).data("hai").spawn().map(drop)).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::NotFound, "{err}");
}

/// cl-async: `pipe-server-close`. A server closed while one of its
/// connections is open stays closed, and the connection goes on.
/// (cl-async closes the server after a delay; here the server closes
/// itself once it accepted, which needs no clock.)
#[test]
fn pipe_server_close() {
    let dir = TempDir::new("pipe");
    let path = dir.join("blabla");
    let closedp = Arc::new(AtomicBool::new(false));
    let (flag, p) = (closedp.clone(), path.clone());
    run_loop(move || -> io::Result<()> {
        let server = pipe_server(&p)
            .connect_cb(|sock| {
                sock.server().unwrap().close();
                sock.write(b"closed ").unwrap();
            })
            .read_cb(|sock, data| {
                let _ = sock.write_bytes(data.into_bytes());
            })
            .event_cb(|_| {})
            .spawn()?;
        let got: Text = Default::default();
        pipe_connect(&p)
            .read_cb(move |sock, data| {
                append(&got, data);
                let got = got.lock().unwrap();
                if *got == "closed " {
                    // The server is closed; its connection still echoes.
                    sock.write(b"ping").unwrap();
                } else if *got == "closed ping" {
                    let closed_pre = server.is_closed();
                    sock.close();
                    flag.store(closed_pre && server.is_closed(), Ordering::SeqCst);
                }
            })
            .event_cb(|ev| panic!("unexpected event: {ev}"))
            .spawn()?;
        Ok(())
    })
    .unwrap();
    assert!(closedp.load(Ordering::SeqCst));
    assert!(!path.exists(), "the closed server removed its socket file");
}

/// cl-async: `pipe-server-stream`. In stream mode the server's `read_cb`
/// reads what arrived from the stream (a `UnixStream`) with
/// `read_sequence`, then exits the loop.
#[test]
fn pipe_server_stream() {
    let dir = TempDir::new("pipe");
    let path = dir.join("blabla");
    let server_data: Arc<Mutex<Vec<u8>>> = Default::default();
    let (sdata, p) = (server_data.clone(), path.clone());
    run_loop(move || -> io::Result<()> {
        pipe_server(&p)
            .stream(true)
            .read_cb(move |sock, data| {
                let ReadData::Stream(stream) = data else {
                    panic!("stream mode gives the stream")
                };
                let stream: &mut UnixStream = stream;
                let mut buf = [0u8; 1024];
                let mut sdata = sdata.lock().unwrap();
                for _ in 0..16 {
                    let n = stream.read_sequence(&mut buf).unwrap();
                    if n == 0 {
                        break;
                    }
                    sdata.extend_from_slice(&buf[..n]);
                }
                if sdata.len() >= b"HELLO!".len() {
                    sock.close();
                    exit_event_loop();
                }
            })
            .event_cb(|_| {})
            .spawn()?;
        pipe_connect(&p)
            .read_cb(|_, _| {})
            .event_cb(|_| {})
            .data("HELLO!")
            .spawn()?;
        Ok(())
    })
    .unwrap();
    assert_eq!(&server_data.lock().unwrap()[..], b"HELLO!");
    assert!(
        !path.exists(),
        "the server's dropped accept loop removed its socket file"
    );
}

// ---- the callback face, beyond cl-async's tests ----

/// `spawn_stream` gives a `UnixStream`, awaited on the loop against a
/// pipe server.
#[test]
fn spawn_stream_gives_a_unix_stream() {
    let dir = TempDir::new("pipe");
    let p = dir.join("echo");
    run_loop(move || -> io::Result<()> {
        let server = pipe_server(&p)
            .read_cb(|sock, data| {
                let _ = sock.write_bytes(data.into_bytes());
            })
            .spawn()?;
        assert_eq!(server.path(), Some(p.as_path()));
        let mut stream: UnixStream = pipe_connect(&p).spawn_stream()?;
        streamish::spawn(async move {
            stream.write_all(b"echo me").await?;
            let mut got = [0u8; 7];
            stream.read_exact(&mut got).await?;
            assert_eq!(&got, b"echo me");
            stream.socket().close();
            server.close();
            Ok(())
        })
    })
    .unwrap();
}

/// The clocks work on pipes as on TCP: a silent server is a read timeout.
#[test]
fn a_silent_pipe_server_is_a_read_timeout() {
    let dir = TempDir::new("pipe");
    let p = dir.join("silent");
    let events = Events::default();
    let cb = events.cb();
    run_loop(move || -> io::Result<()> {
        let server = pipe_server(&p).spawn()?;
        pipe_connect(&p)
            .read_timeout(Duration::from_millis(50))
            .event_cb(move |ev| {
                cb(ev);
                server.close();
            })
            .spawn()?;
        Ok(())
    })
    .unwrap();
    let evs = events.take();
    assert_eq!(evs.len(), 1, "{evs:?}");
    assert!(
        matches!(evs[0], Event::Timeout { clock: Clock::Read, .. }),
        "{}",
        evs[0]
    );
}

/// A pipe server on a path that is in use fails at once, as a TCP server
/// on a port in use does.
#[test]
fn a_pipe_server_on_a_path_in_use_fails_with_address_in_use() {
    let dir = TempDir::new("pipe");
    let p = dir.join("taken");
    let _first = UnixListener::bind(&p).unwrap();
    let err = pipe_server(&p).start(drop).unwrap_err();
    assert!(matches!(Event::from(err), Event::AddressInUse { .. }));
}

/// The handle of a pipe server has its path; a TCP server's has none.
#[test]
fn a_server_handle_has_a_path_only_for_a_pipe() {
    let dir = TempDir::new("pipe");
    let p = dir.join("handle");
    let pipe = pipe_server(&p).start(drop).unwrap();
    assert_eq!(pipe.path(), Some(p.as_path()));
    assert!(format!("{pipe:?}").contains("handle"));
    let tcp = tcp_server("127.0.0.1", 0).start(drop).unwrap();
    assert_eq!(tcp.path(), None);
    assert_ne!(tcp.local_addr().port(), 0);
    // The spawner dropped both accept loops: the listeners are closed, and
    // the pipe's socket file with its listener.
    assert!(!p.exists());
}

#[test]
#[should_panic(expected = "a pipe server has a path, not an IP address")]
fn local_addr_of_a_pipe_server_panics() {
    let dir = TempDir::new("pipe");
    let server = pipe_server(dir.join("no-ip")).start(drop).unwrap();
    let _ = server.local_addr();
}

/// `Socket`'s addresses are TCP's: on a pipe they are `Unsupported`, and
/// the stream has the Unix-domain ones.
#[test]
fn socket_tcp_accessors_are_unsupported_on_a_pipe() {
    let (a, _b) = UnixStream::pair().unwrap();
    let socket: &Socket = a.socket();
    assert_eq!(socket.peer_addr().unwrap_err().kind(), io::ErrorKind::Unsupported);
    assert_eq!(socket.local_addr().unwrap_err().kind(), io::ErrorKind::Unsupported);
    assert_eq!(socket.set_nodelay(true).unwrap_err().kind(), io::ErrorKind::Unsupported);
    assert!(a.peer_addr().unwrap().is_unnamed());
    assert!(format!("{socket:?}").contains("open: true"));
}

// ---- the await face ----

#[test]
fn round_trip_with_addresses() {
    let dir = TempDir::new("pipe");
    let path = dir.join("rt");
    run(async {
        let server = UnixListener::bind(&path)?;
        assert_eq!(server.local_addr().as_pathname(), Some(path.as_path()));
        assert_eq!(server.path(), path);
        let (client, accepted) = zip(UnixStream::connect(&path), server.accept()).await;
        let (mut client, (mut peer, peer_addr)) = (client?, accepted?);
        assert!(peer_addr.is_unnamed(), "a client is not bound to a path");
        assert_eq!(client.peer_addr()?.as_pathname(), Some(path.as_path()));
        assert_eq!(peer.local_addr()?.as_pathname(), Some(path.as_path()));

        client.write_all(b"ping").await?;
        let mut buf = [0u8; 4];
        peer.read_exact(&mut buf).await?;
        assert_eq!(&buf, b"ping");
        peer.write_all(b"pong").await?;
        client.read_exact(&mut buf).await?;
        assert_eq!(&buf, b"pong");
        assert_eq!(client.read_sequence(&mut buf)?, 0, "nothing more yet");
        assert!(!client.at_eof(), "and that is not end of file");
        io::Result::Ok(())
    })
    .unwrap();
}

/// A half-close: the client's `close` (futures-io's) shuts its write side
/// down after what it wrote; it still reads the reply.
#[test]
fn half_close() {
    let (mut client, mut server) = UnixStream::pair().unwrap();
    run(async {
        client.write_all(b"request").await?;
        client.close().await?;
        let mut req = Vec::new();
        server.read_to_end(&mut req).await?;
        assert_eq!(req, b"request");
        server.write_all(b"reply").await?;
        server.shutdown(Shutdown::Write)?;
        let mut reply = Vec::new();
        client.read_to_end(&mut reply).await?;
        assert_eq!(reply, b"reply");
        assert!(client.at_eof());
        io::Result::Ok(())
    })
    .unwrap();
}

/// Dropping a stream with output still queued delivers it all, then
/// closes: the peer reads every byte, then end of file.
#[test]
fn drop_delivers_queued_bytes() {
    const LEN: usize = 4 << 20;
    let (client, mut server) = UnixStream::pair().unwrap();
    for off in (0..LEN).step_by(64 * 1024) {
        client.socket().write(&pattern_at(off as u64, 64 * 1024)).unwrap();
    }
    assert!(client.socket().queued() > 0, "some output waits for the reader");
    drop(client);
    let got = run(async {
        let mut got = Vec::new();
        server.read_to_end(&mut got).await?;
        io::Result::Ok(got)
    })
    .unwrap();
    assert_eq!(got.len(), LEN);
    assert!(is_pattern_at(0, &got));
}

/// Many clients at once, accepted through `incoming`: every one arrives,
/// with what it sent.
#[test]
fn listener_accepts_many() {
    const N: usize = 64;
    let dir = TempDir::new("pipe");
    let path = dir.join("many");
    run(async {
        let server = UnixListener::bind(&path)?;
        let clients = async {
            let mut clients = Vec::new();
            for i in 0..N {
                let mut c = UnixStream::connect(&path).await?;
                c.write_all(&[i as u8]).await?;
                clients.push(c);
            }
            io::Result::Ok(clients)
        };
        let accepted = async {
            let mut seen = Vec::new();
            let mut incoming = server.incoming().take(N);
            while let Some(peer) = incoming.next().await {
                let mut b = [0u8; 1];
                peer?.read_exact(&mut b).await?;
                seen.push(b[0] as usize);
            }
            io::Result::Ok(seen)
        };
        let (clients, seen) = zip(clients, accepted).await;
        let (clients, mut seen) = (clients?, seen?);
        seen.sort_unstable();
        assert_eq!(seen, (0..N).collect::<Vec<_>>());
        drop(clients);
        io::Result::Ok(())
    })
    .unwrap();
}

/// Linux refuses a connect to a full backlog with `EAGAIN`: the connect
/// waits (without blocking the executor) until the server accepts.
#[cfg(target_os = "linux")]
#[test]
fn connect_to_a_full_backlog_waits_for_the_server() {
    let dir = TempDir::new("pipe");
    let path = dir.join("backlog");
    run(async {
        let server = UnixListener::bind_with_backlog(&path, 0)?;
        let _first = UnixStream::connect(&path).await?; // fills the backlog
        let mut second = Box::pin(UnixStream::connect(&path));
        let waiting = futures_lite::future::poll_once(&mut second).await;
        assert!(waiting.is_none(), "the backlog is full: it waits");
        let (_a, _) = server.accept().await?; // room again
        let _second = second.await?;
        let (_b, _) = server.accept().await?;
        io::Result::Ok(())
    })
    .unwrap();
}

#[test]
fn pair_round_trip() {
    let (mut a, mut b) = UnixStream::pair().unwrap();
    run(async {
        a.write_all(b"to b").await?;
        b.write_all(b"to a").await?;
        let mut buf = [0u8; 4];
        b.read_exact(&mut buf).await?;
        assert_eq!(&buf, b"to b");
        a.read_exact(&mut buf).await?;
        assert_eq!(&buf, b"to a");
        // Split and put back together, as TCP's.
        let (input, output) = a.split();
        let a = UnixStream::reunite(input, output).unwrap();
        assert!(a.socket().is_open());
        io::Result::Ok(())
    })
    .unwrap();
}

/// Code written against the cl-async traits takes a `UnixStream` as it
/// takes a `TcpStream`.
async fn ping_pong(stream: &mut dyn AsyncIoStream) -> io::Result<Vec<u8>> {
    stream.write_sequence(b"ping")?;
    stream.finish_output().await?;
    let mut reply = vec![0u8; 4];
    stream.read_exact(&mut reply).await?;
    Ok(reply)
}

#[test]
fn generic_code_over_dyn_async_io_stream_takes_a_unix_stream() {
    let (mut a, mut b) = UnixStream::pair().unwrap();
    run(async {
        let peer = async {
            let mut buf = [0u8; 4];
            b.read_exact(&mut buf).await?;
            b.write_all(b"pong").await?;
            io::Result::Ok(buf)
        };
        let (reply, got) = zip(ping_pong(&mut a), peer).await;
        assert_eq!(reply?, b"pong");
        assert_eq!(&got?, b"ping");
        io::Result::Ok(())
    })
    .unwrap();
}

/// Two threads write through one stream's socket while a third reads: each
/// record arrives whole, and each writer's records in order.
#[test]
fn two_threads_write_while_a_third_reads() {
    const RECORDS: u32 = 10_000;
    let (a, mut b) = UnixStream::pair().unwrap();
    let socket = a.into_socket();
    let writers: Vec<_> = (0..2u32)
        .map(|w| {
            let socket = socket.clone();
            thread::spawn(move || {
                for i in 0..RECORDS {
                    let mut rec = [0u8; 12];
                    rec[..4].copy_from_slice(&w.to_le_bytes());
                    rec[4..8].copy_from_slice(&i.to_le_bytes());
                    rec[8..].copy_from_slice(&(w ^ i).to_le_bytes());
                    socket.write(&rec).unwrap();
                }
            })
        })
        .collect();
    drop(socket);
    let reader = thread::spawn(move || {
        run(async {
            let mut next = [0u32; 2];
            let mut rec = [0u8; 12];
            for _ in 0..2 * RECORDS {
                b.read_exact(&mut rec).await?;
                let field = |k: usize| u32::from_le_bytes(rec[k..k + 4].try_into().unwrap());
                let (w, i) = (field(0), field(4));
                assert!(w < 2, "a torn record: {rec:?}");
                assert_eq!(field(8), w ^ i, "a torn record: {rec:?}");
                assert_eq!(i, next[w as usize], "writer {w}'s records out of order");
                next[w as usize] += 1;
            }
            // Every handle is gone once the writers are: end of file.
            let mut rest = Vec::new();
            b.read_to_end(&mut rest).await?;
            assert!(rest.is_empty());
            io::Result::Ok(next)
        })
    });
    for w in writers {
        join(w);
    }
    assert_eq!(join(reader).unwrap(), [RECORDS; 2]);
}

#[test]
fn shutdown_write_is_end_of_file_for_the_peer() {
    let (a, mut b) = UnixStream::pair().unwrap();
    a.shutdown(Shutdown::Write).unwrap();
    let n = run(async { b.read(&mut [0u8; 8]).await }).unwrap();
    assert_eq!(n, 0);
}

#[test]
fn try_from_std_stream() {
    let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
    let mut a = UnixStream::try_from(a).unwrap();
    let mut b = UnixStream::try_from(async_io::Async::new(b).unwrap()).unwrap();
    run(async {
        a.write_all(b"std").await?;
        let mut buf = [0u8; 3];
        b.read_exact(&mut buf).await?;
        assert_eq!(&buf, b"std");
        io::Result::Ok(())
    })
    .unwrap();
}

// ---- the socket file ----

/// A socket file nobody listens on (its server died without removing it)
/// is reported as stale, and left where it is.
#[test]
fn a_stale_socket_file_is_reported_and_kept() {
    let dir = TempDir::new("pipe");
    let path = dir.join("stale");
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap()); // std leaves the file
    assert!(path.exists());
    let err = UnixListener::bind(&path).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
    assert!(err.to_string().contains("stale"), "{err}");
    assert!(matches!(Event::from(err), Event::AddressInUse { .. }));
    let meta = std::fs::symlink_metadata(&path).unwrap();
    assert!(meta.file_type().is_socket(), "the stale file is not removed");
    // Connecting to it is refused, with the path named.
    let err = run(UnixStream::connect(&path)).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused);
    assert!(err.to_string().contains("stale"), "{err}");
    // Removed by the application, the path is free.
    std::fs::remove_file(&path).unwrap();
    UnixListener::bind(&path).unwrap();
}

/// A path where a server listens is in use, and says so.
#[test]
fn a_live_server_path_is_in_use() {
    let dir = TempDir::new("pipe");
    let path = dir.join("live");
    let _server = UnixListener::bind(&path).unwrap();
    let err = UnixListener::bind(&path).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
    assert!(err.to_string().contains("listening"), "{err}");
}

#[test]
fn the_listener_removes_its_own_file_on_drop() {
    let dir = TempDir::new("pipe");
    let path = dir.join("own");
    let server = UnixListener::bind(&path).unwrap();
    assert!(std::fs::symlink_metadata(&path).unwrap().file_type().is_socket());
    drop(server);
    assert!(!path.exists());
}

/// A file put at the path since the bind is someone else's: the listener's
/// drop leaves it.
#[test]
fn the_listener_leaves_a_file_that_replaced_its_own() {
    let dir = TempDir::new("pipe");
    let path = dir.join("replaced");
    let server = UnixListener::bind(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    let other = std::os::unix::net::UnixListener::bind(&path).unwrap();
    drop(server);
    assert!(path.exists(), "another listener's socket file was removed");
    drop(other);
}

#[test]
fn a_file_that_is_not_a_socket_is_in_use_and_untouched() {
    let dir = TempDir::new("pipe");
    let path = dir.join("plain");
    std::fs::write(&path, b"precious").unwrap();
    let err = UnixListener::bind(&path).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
    assert!(err.to_string().contains("not a socket"), "{err}");
    assert!(matches!(Event::from(err), Event::AddressInUse { .. }));
    assert_eq!(std::fs::read(&path).unwrap(), b"precious");
}

#[test]
fn connect_to_a_missing_path_is_not_found() {
    let dir = TempDir::new("pipe");
    let path = dir.join("missing");
    let err = run(UnixStream::connect(&path)).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::NotFound);
    assert!(err.to_string().contains(&*path.to_string_lossy()), "{err}");
}

#[test]
fn a_path_too_long_is_invalid_input() {
    let dir = TempDir::new("pipe");
    let path = dir.join(&"x".repeat(200));
    let err = UnixListener::bind(&path).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{err}");
    let err = run(UnixStream::connect(&path)).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{err}");
}
