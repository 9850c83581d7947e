//! Written bytes go out by themselves: no flush is needed, a drop
//! delivers, and a half dropped shuts down its side.

mod common;

use std::io::Read;

use common::{Rng, pair, run};
use futures_lite::future::zip;
use futures_lite::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
use streamish::{AsyncOutputStream, TcpListener, TcpStream};

/// A std peer on another thread: reads until end of file.
fn std_reader() -> (std::net::SocketAddr, std::thread::JoinHandle<Vec<u8>>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let peer = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        s.set_read_timeout(Some(common::LIMIT)).unwrap();
        let mut got = Vec::new();
        s.read_to_end(&mut got).unwrap();
        got
    });
    (addr, peer)
}

#[test]
fn write_all_then_a_timer_the_peer_has_the_bytes_before_it_ends() {
    run(async {
        let (mut client, mut peer) = pair().await;
        let mut got = [0u8; 5];
        let read_first = futures_lite::future::or(
            async {
                peer.read_exact(&mut got).await.unwrap();
                true
            },
            async {
                // A burst: the first write goes straight out, the second
                // only by the send behind.
                client.write_all(b"hel").await.unwrap();
                client.write_all(b"lo").await.unwrap();
                // The writer now awaits only a timer.
                async_io::Timer::after(common::LIMIT / 2).await;
                false
            },
        )
        .await;
        assert!(read_first, "the bytes never left while the writer awaited a timer");
        assert_eq!(&got, b"hello");
    });
}

#[test]
fn split_write_all_then_read_line_against_an_echo_peer_without_flush() {
    run(async {
        let (client, mut peer) = pair().await;
        let echo = async move {
            let mut buf = [0u8; 64];
            let n = peer.read(&mut buf).await?;
            peer.write_all(&buf[..n]).await?;
            peer.flush().await?;
            std::io::Result::Ok(peer)
        };
        let (input, mut output) = client.split();
        let talk = async move {
            output.write_all(b"line ").await?;
            output.write_all(b"one\n").await?;
            let mut input = futures_lite::io::BufReader::new(input);
            let mut line = String::new();
            input.read_line(&mut line).await?;
            std::io::Result::Ok((line, output))
        };
        let (e, t) = zip(echo, talk).await;
        e.unwrap();
        assert_eq!(t.unwrap().0, "line one\n");
    });
}

#[test]
fn socket_write_from_another_thread_while_a_task_awaits_a_read() {
    run(async {
        let (mut client, mut peer) = pair().await;
        let socket = client.socket().clone();
        let writer = std::thread::spawn(move || {
            socket.write(b"from ").unwrap();
            socket.write(b"afar").unwrap();
        });
        let mut got = [0u8; 9];
        let mut one = [0u8; 1];
        let reading = client.read(&mut one);
        let _ = zip(reading, async {
            peer.read_exact(&mut got).await.unwrap();
            peer.write_all(b"!").await.unwrap();
            peer.flush().await.unwrap();
        })
        .await;
        writer.join().unwrap();
        assert_eq!(&got, b"from afar");
    });
}

/// Writes `len` bytes in two writes (the second queued behind the first),
/// drops the stream, and lets the peer read, at once or only after the
/// drop (`late`: the kernel then holds a socket buffer at most, and the
/// rest must go by the send behind after the drop).
fn drop_delivers(len: usize, late: bool) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (dropped, drop_seen) = std::sync::mpsc::channel::<()>();
    let peer = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        if late {
            drop_seen.recv().unwrap();
        }
        s.set_read_timeout(Some(common::LIMIT)).unwrap();
        let mut got = Vec::new();
        s.read_to_end(&mut got).unwrap();
        got
    });
    let data = Rng::new(len as u64).bytes(len);
    let sent = data.clone();
    run(async move {
        let mut s = TcpStream::connect(addr).await.unwrap();
        let (a, b) = sent.split_at(len / 2);
        s.write_sequence(a).unwrap();
        s.write_sequence(b).unwrap();
        drop(s);
    });
    // An early reader may be done already.
    let _ = dropped.send(());
    let got = peer.join().unwrap();
    assert_eq!(got.len(), data.len());
    assert!(got == data, "the peer got other bytes");
}

#[test]
fn drop_after_6_bytes_delivers_them_then_eof() {
    drop_delivers(6, false);
}

#[test]
fn drop_after_1000_bytes_delivers_them_then_eof() {
    drop_delivers(1000, false);
}

#[test]
fn drop_after_100_kib_delivers_them_then_eof() {
    drop_delivers(100 * 1024, false);
}

#[test]
fn drop_after_16_mib_delivers_them_to_a_peer_that_reads_only_later() {
    drop_delivers(16 << 20, true);
}

#[test]
fn drop_of_a_socket_clone_after_its_stream_delivers() {
    let (addr, peer) = std_reader();
    run(async move {
        let s = TcpStream::connect(addr).await.unwrap();
        let socket = s.socket().clone();
        drop(s);
        socket.write(b"last ").unwrap();
        socket.write(b"words").unwrap();
        drop(socket);
    });
    assert_eq!(peer.join().unwrap(), b"last words");
}

#[test]
fn dropping_the_output_half_shuts_down_the_write_side() {
    run(async {
        let (client, mut peer) = pair().await;
        let (input, mut output) = client.split();
        output.write_all(b"bye").await.unwrap();
        drop(output);
        let mut got = Vec::new();
        peer.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"bye");
        drop(input);
    });
}

#[test]
fn reunited_halves_do_not_shut_down() {
    run(async {
        let (client, mut peer) = pair().await;
        let (input, output) = client.split();
        let mut client = TcpStream::reunite(input, output).unwrap();
        client.write_all(b"still ").await.unwrap();
        client.write_all(b"open").await.unwrap();
        let mut got = [0u8; 10];
        peer.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"still open");
        assert!(client.write_sequence(b"more").is_ok());
    });
}

/// A proxy made of two `copy` calls carries request/reply exchanges with
/// no end of file between them.
async fn proxied_exchanges<F>(copy: impl Fn(TcpStream, TcpStream) -> F)
where
    F: std::future::Future<Output = ()> + Send + 'static,
{
    let front = TcpListener::bind("127.0.0.1:0").unwrap();
    let back = TcpListener::bind("127.0.0.1:0").unwrap();
    let (client, accepted) = zip(TcpStream::connect(front.local_addr()), front.accept()).await;
    let (mut client, inbound) = (client.unwrap(), accepted.unwrap().0);
    let (outbound, accepted) = zip(TcpStream::connect(back.local_addr()), back.accept()).await;
    let (outbound, mut server) = (outbound.unwrap(), accepted.unwrap().0);
    let proxy = copy(inbound, outbound);
    let talk = async move {
        for round in 0..2u8 {
            client.write_all(&[b'q', round]).await.unwrap();
            let mut q = [0u8; 2];
            server.read_exact(&mut q).await.unwrap();
            assert_eq!(q, [b'q', round]);
            server.write_all(&[b'a', round]).await.unwrap();
            let mut a = [0u8; 2];
            client.read_exact(&mut a).await.unwrap();
            assert_eq!(a, [b'a', round]);
        }
    };
    futures_lite::future::or(talk, async {
        proxy.await;
        panic!("the proxy ended first")
    })
    .await;
}

#[test]
fn futures_lite_copy_proxy_carries_two_exchanges() {
    run(proxied_exchanges(|a, b| async move {
        let (ar, aw) = a.split();
        let (br, bw) = b.split();
        let _ = zip(futures_lite::io::copy(ar, bw), futures_lite::io::copy(br, aw)).await;
    }));
}

#[test]
fn futures_copy_proxy_carries_two_exchanges() {
    run(proxied_exchanges(|a, b| async move {
        let (ar, mut aw) = a.split();
        let (br, mut bw) = b.split();
        let _ = zip(futures::io::copy(ar, &mut bw), futures::io::copy(br, &mut aw)).await;
    }));
}

#[test]
fn abort_after_a_write_in_the_same_turn_queues_nothing_more() {
    run(async {
        let (mut client, _peer) = pair().await;
        client.write_sequence(&[1u8; 1 << 20]).unwrap();
        streamish::AsyncStream::abort(&mut client);
        assert_eq!(client.queued(), 0);
        assert!(client.write_sequence(b"x").is_err());
    });
}

const EXIT_CHILD: &str = "STREAMISH_WRITE_PATH_EXIT_CHILD";

/// A process that drops its last handle and exits at once still delivers
/// what it queued: the drop hands the kernel all it takes before it
/// returns, rather than leave it to a reactor turn that never comes.
#[test]
fn a_process_that_exits_right_after_the_drop_still_delivers() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut child = std::process::Command::new(exe)
        .args(["--exact", "exit_child", "--ignored", "--test-threads=1"])
        .env(EXIT_CHILD, addr.to_string())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let (mut s, _) = listener.accept().unwrap();
    s.set_read_timeout(Some(common::LIMIT)).unwrap();
    let mut got = Vec::new();
    s.read_to_end(&mut got).unwrap();
    assert!(child.wait().unwrap().success());
    assert_eq!(got, b"one\ntwo\n");
}

/// The child of `a_process_that_exits_right_after_the_drop_still_delivers`.
#[test]
#[ignore = "helper: run in a child process"]
fn exit_child() {
    let Ok(addr) = std::env::var(EXIT_CHILD) else { return };
    let sock = streamish::TcpSocket::try_from(std::net::TcpStream::connect(addr).unwrap()).unwrap();
    sock.write(b"one\n").unwrap();
    sock.write(b"two\n").unwrap();
    drop(sock);
    std::process::exit(0);
}
