//! Callback connections in stream mode, and streams over callback
//! sockets: unread bytes wait for the next call, a driver and a stream on
//! one socket do not wake each other.

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};

use streamish::{AsyncInputStream, AsyncOutputStream, AsyncOutputStreamExt, Event, ReadData, tcp_connect, tcp_server};

use common::{LIMIT, run_loop};

/// cl-async: "stream read/write sequence" ("can i have your coat?" /
/// "don't say that").
#[test]
fn stream_read_write_sequence() {
    let server_got = Arc::new(Mutex::new(Vec::new()));
    let client_got = Arc::new(Mutex::new(Vec::new()));
    let (sg, cg) = (server_got.clone(), client_got.clone());
    run_loop(move || {
        let server = tcp_server("127.0.0.1", 0)
            .stream(true)
            .read_cb(move |_sock, data| {
                let ReadData::Stream(stream) = data else { panic!() };
                let mut buf = [0u8; 64];
                let n = stream.read_sequence(&mut buf).unwrap();
                sg.lock().unwrap().extend_from_slice(&buf[..n]);
                if sg.lock().unwrap().as_slice() == b"can i have your coat?" {
                    stream.write_sequence(b"don't say that").unwrap();
                }
            })
            .spawn()
            .unwrap();
        let srv = server.clone();
        let mut stream = tcp_connect("127.0.0.1", server.local_addr().port())
            .stream(true)
            .read_cb(move |sock, data| {
                let ReadData::Stream(stream) = data else { panic!() };
                let mut buf = [0u8; 64];
                let n = stream.read_sequence(&mut buf).unwrap();
                cg.lock().unwrap().extend_from_slice(&buf[..n]);
                if cg.lock().unwrap().as_slice() == b"don't say that" {
                    sock.close();
                    srv.close();
                }
            })
            .spawn_stream()
            .unwrap();
        stream.write_sequence(b"can i have your coat?").unwrap();
    })
    .unwrap();
    assert_eq!(server_got.lock().unwrap().as_slice(), b"can i have your coat?");
    assert_eq!(client_got.lock().unwrap().as_slice(), b"don't say that");
}

#[test]
fn stream_mode_leaves_unread_bytes_for_the_next_call() {
    let got = Arc::new(Mutex::new(Vec::new()));
    let calls = Arc::new(AtomicUsize::new(0));
    let (g, c) = (got.clone(), calls.clone());
    run_loop(move || {
        let server = tcp_server("127.0.0.1", 0)
            .read_cb(|sock, data| {
                // Each "more" from the client gets the next part.
                let req = data.into_bytes();
                for _ in req.chunks(4) {
                    sock.write(b"next").unwrap();
                }
            })
            .connect_cb(|sock| sock.write(b"abcd").unwrap())
            .spawn()
            .unwrap();
        let srv = server.clone();
        tcp_connect("127.0.0.1", server.local_addr().port())
            .stream(true)
            .read_cb(move |sock, data| {
                let ReadData::Stream(stream) = data else { panic!() };
                let call = c.fetch_add(1, Ordering::SeqCst);
                // Read only two bytes per call: the rest must wait for us.
                let mut buf = [0u8; 2];
                let n = stream.read_sequence(&mut buf).unwrap();
                g.lock().unwrap().extend_from_slice(&buf[..n]);
                if call == 0 {
                    assert_eq!(stream.buffered(), 2, "the unread bytes stay buffered");
                    sock.write(b"more").unwrap();
                    return;
                }
                // Later calls: take everything there is.
                let mut rest = [0u8; 16];
                loop {
                    let n = stream.read_sequence(&mut rest).unwrap();
                    if n == 0 {
                        break;
                    }
                    g.lock().unwrap().extend_from_slice(&rest[..n]);
                }
                if g.lock().unwrap().len() == 8 {
                    sock.close();
                    srv.close();
                }
            })
            .spawn()
            .unwrap();
    })
    .unwrap();
    assert_eq!(got.lock().unwrap().as_slice(), b"abcdnext");
}

#[test]
fn dont_drain_without_stream_gives_read_cb_a_stream() {
    let got = Arc::new(Mutex::new(Vec::new()));
    let g = got.clone();
    run_loop(move || {
        let server = tcp_server("127.0.0.1", 0)
            .connect_cb(|sock| {
                sock.write(b"kept").unwrap();
                sock.close();
            })
            .spawn()
            .unwrap();
        let srv = server.clone();
        tcp_connect("127.0.0.1", server.local_addr().port())
            .dont_drain_read_buffer(true)
            .read_cb(move |_, data| {
                assert!(matches!(data, ReadData::Stream(_)));
                g.lock().unwrap().extend_from_slice(&data.into_bytes());
            })
            .event_cb(move |_| srv.close())
            .spawn()
            .unwrap();
    })
    .unwrap();
    assert_eq!(got.lock().unwrap().as_slice(), b"kept");
}

#[test]
fn bytes_stay_buffered_without_read_cb() {
    let buffered_at_eof = Arc::new(AtomicUsize::new(0));
    let b = buffered_at_eof.clone();
    run_loop(move || {
        let server = tcp_server("127.0.0.1", 0)
            .connect_cb(|sock| {
                sock.write(b"nobody reads this").unwrap();
                sock.close();
            })
            .spawn()
            .unwrap();
        let srv = server.clone();
        tcp_connect("127.0.0.1", server.local_addr().port())
            .event_cb(move |ev| {
                assert!(matches!(ev, Event::Eof { .. }));
                b.store(ev.socket().unwrap().buffered(), Ordering::SeqCst);
                srv.close();
            })
            .spawn()
            .unwrap();
    })
    .unwrap();
    assert_eq!(buffered_at_eof.load(Ordering::SeqCst), "nobody reads this".len());
}

/// Two tasks that wait on the same socket's output, the connection's
/// driver and a task writing through a stream over its socket (cl-async's
/// `make-instance 'async-io-stream :socket`), while the peer reads nothing:
/// each is polled again only when woken, not woken by the other's every
/// poll. A wait kept one waker per direction and woke the one it replaced,
/// so the two woke each other in turn for as long as the peer stalled.
#[test]
fn a_driver_and_a_stream_waiting_on_one_stalled_socket_do_not_wake_each_other() {
    const TOTAL: usize = 16 << 20;
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (go, went) = mpsc::channel::<()>();
    let reader = std::thread::spawn(move || {
        let (mut peer, _) = listener.accept().unwrap();
        peer.set_read_timeout(Some(LIMIT)).unwrap();
        // Reads nothing until the two tasks both wait.
        if went.recv().is_err() {
            return 0;
        }
        let mut buf = vec![0u8; 1 << 16];
        let mut got = 0;
        while got < TOTAL {
            match peer.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => got += n,
            }
        }
        got
    });

    let (socket, driver) = tcp_connect("127.0.0.1", port).stream(true).start().unwrap();
    let mut stream = streamish::TcpStream::new(socket.clone());
    let data = vec![0x5a; TOTAL];
    let writer = async {
        // cl-async's way: queue it all, then wait until the kernel has it.
        stream.write_sequence(&data)?;
        stream.finish_output().await
    };
    let (polls, idled, done) = common::two_tasks(driver, writer, 10_000, || go.send(()).unwrap());
    drop(go);
    // The kernel has it all: the peer reads it without the driver, then
    // the socket goes (a forced close now would drop what it still holds).
    let got = reader.join().unwrap();
    socket.close_force();
    assert!(
        idled,
        "the two tasks never both waited: polled {polls} times with the peer stalled"
    );
    match done {
        Some(Err(res)) => res.unwrap(),
        other => panic!("polled {polls} times, and the writer did not end first: {other:?}"),
    }
    assert_eq!(got, TOTAL);
}

/// The same on input: the driver of a stream-mode connection reads, and a
/// task awaits a read on a stream over its socket, while the peer is
/// silent; both get what they wait for once it speaks.
#[test]
fn a_driver_and_a_stream_waiting_to_read_do_not_wake_each_other() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (go, went) = mpsc::channel::<()>();
    let talker = std::thread::spawn(move || {
        let (mut peer, _) = listener.accept().unwrap();
        if went.recv().is_ok() {
            peer.write_all(b"hai").unwrap();
        }
        peer
    });

    let (socket, driver) = tcp_connect("127.0.0.1", port).stream(true).start().unwrap();
    // Up first, so that both then wait for bytes, not for the connection.
    let mut driver = Box::pin(driver);
    async_io::block_on(futures_lite::future::poll_fn(|cx| {
        assert!(driver.as_mut().poll(cx).is_pending());
        if socket.is_connected() {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    }));
    let mut stream = streamish::TcpStream::new(socket.clone());
    let mut buf = [0u8; 16];
    let read = futures_lite::AsyncReadExt::read(&mut stream, &mut buf);
    let (polls, idled, done) = common::two_tasks(driver, read, 10_000, || go.send(()).unwrap());
    drop(go);
    let _peer = talker.join().unwrap();
    assert!(
        idled,
        "the two tasks never both waited: polled {polls} times with the peer silent"
    );
    match done {
        Some(Err(res)) => assert_eq!(res.unwrap(), 3),
        other => panic!("polled {polls} times, and the read did not end first: {other:?}"),
    }
    assert_eq!(&buf[..3], b"hai");
    socket.close_force();
}
