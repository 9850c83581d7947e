//! Connect, accept and the server, over loopback only: connecting by name,
//! by IPv6 literal and to a refused port; the listener; conversions.

mod common;

use std::collections::BTreeSet;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_lite::future::zip;
use futures_lite::{AsyncReadExt, AsyncWriteExt, StreamExt};
use streamish::{
    AsyncInputStream, AsyncOutputStream, AsyncOutputStreamExt, AsyncStreamExt, DEFAULT_BACKLOG, Event, TcpInputStream,
    TcpListener, TcpOutputStream, TcpSocket, TcpStream, tcp_connect, tcp_server,
};

use common::{Slot, events, log, push, run, run_loop};

/// One byte each way between a fresh client and the connection the server
/// accepts for it; checks that the addresses on both ends agree.
async fn exchange(server: &TcpListener, client: io::Result<TcpStream>) -> TcpStream {
    let mut client = client.expect("connect");
    let (mut accepted, from) = server.accept().await.expect("accept");
    assert_eq!(client.peer_addr().unwrap(), server.local_addr());
    assert_eq!(client.local_addr().unwrap(), from);
    assert_eq!(accepted.peer_addr().unwrap(), from);
    assert_eq!(accepted.local_addr().unwrap(), server.local_addr());

    client.write_all(b"?").await.unwrap();
    client.flush().await.unwrap();
    let mut b = [0u8; 1];
    accepted.read_exact(&mut b).await.unwrap();
    assert_eq!(&b, b"?");
    accepted.write_all(b"!").await.unwrap();
    accepted.flush().await.unwrap();
    client.read_exact(&mut b).await.unwrap();
    assert_eq!(&b, b"!");
    client
}

/// A loopback port nobody listens on: bind one, note it, let it go.
fn refused_port() -> u16 {
    let server = TcpListener::bind("127.0.0.1:0").unwrap();
    server.local_addr().port()
}

fn kind_and_event(err: io::Error) -> (io::ErrorKind, String, Event) {
    (err.kind(), err.to_string(), Event::from(err))
}

#[test]
fn connect_by_name_localhost() {
    run(async {
        // localhost may resolve to ::1 first; nothing listens there, so the
        // connect must go on to 127.0.0.1.
        let server = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = server.local_addr().port();
        exchange(&server, TcpStream::connect(("localhost", port)).await).await;
        exchange(&server, TcpStream::connect(format!("localhost:{port}")).await).await;
        exchange(&server, TcpStream::connect(&format!("localhost:{port}")).await).await;
        exchange(&server, TcpStream::connect((String::from("localhost"), port)).await).await;
        exchange(&server, TcpStream::connect(format!("LocalHost:{port}").as_str()).await).await;
    });
}

#[test]
fn connect_by_ipv6_literal() {
    run(async {
        let server = match TcpListener::bind("[::1]:0") {
            Ok(s) => s,
            Err(e) => {
                println!("note: no IPv6 loopback on this machine ({e}); skipping the ::1 test");
                return;
            }
        };
        let addr = server.local_addr();
        assert_eq!(addr.ip(), IpAddr::V6(Ipv6Addr::LOCALHOST));
        let port = addr.port();
        exchange(&server, TcpStream::connect(("::1", port)).await).await;
        exchange(&server, TcpStream::connect(("[::1]", port)).await).await;
        exchange(&server, TcpStream::connect(format!("[::1]:{port}")).await).await;
        exchange(&server, TcpStream::connect(addr).await).await;
        exchange(&server, TcpStream::connect((Ipv6Addr::LOCALHOST, port)).await).await;
        exchange(
            &server,
            TcpStream::connect((IpAddr::V6(Ipv6Addr::LOCALHOST), port)).await,
        )
        .await;
    });
}

#[test]
fn connect_by_ipv4_literal_in_every_form() {
    run(async {
        let server = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = server.local_addr();
        let port = addr.port();
        let SocketAddr::V4(v4) = addr else {
            panic!("bound 127.0.0.1")
        };
        exchange(&server, TcpStream::connect(addr).await).await;
        exchange(&server, TcpStream::connect(v4).await).await;
        exchange(&server, TcpStream::connect(("127.0.0.1", port)).await).await;
        exchange(&server, TcpStream::connect((Ipv4Addr::LOCALHOST, port)).await).await;
        exchange(&server, TcpStream::connect(format!("127.0.0.1:{port}")).await).await;
        exchange(&server, TcpStream::connect(vec![addr]).await).await;
        exchange(&server, TcpStream::connect(&[addr][..]).await).await;
    });
}

#[test]
fn connect_to_a_refused_port() {
    run(async {
        let port = refused_port();
        let target = format!("127.0.0.1:{port}");
        let err = TcpStream::connect(target.as_str()).await.expect_err("nobody listens");
        let (kind, msg, event) = kind_and_event(err);
        assert_eq!(kind, io::ErrorKind::ConnectionRefused);
        assert!(msg.contains(&target), "the error does not name {target}: {msg}");
        assert!(matches!(event, Event::Refused { .. }), "{event:?}");
        assert_eq!(event.name(), "tcp-refused");
        assert!(event.is_error());

        // By name: the error names the host that failed.
        let err = TcpStream::connect(("localhost", port))
            .await
            .expect_err("nobody listens");
        let (kind, msg, event) = kind_and_event(err);
        assert_eq!(kind, io::ErrorKind::ConnectionRefused);
        assert!(
            msg.contains(&format!("localhost:{port}")),
            "the error does not name localhost: {msg}"
        );
        assert!(matches!(event, Event::Refused { .. }));
    });
}

#[test]
fn connect_tries_every_address_in_turn() {
    run(async {
        let server = TcpListener::bind("127.0.0.1:0").unwrap();
        let dead = SocketAddr::from(([127, 0, 0, 1], refused_port()));
        // The first address refuses; the second answers.
        exchange(&server, TcpStream::connect(vec![dead, server.local_addr()]).await).await;

        // When every address fails, the error names each of them.
        let dead2 = SocketAddr::from(([127, 0, 0, 1], refused_port()));
        let err = TcpStream::connect(vec![dead, dead2]).await.expect_err("all refuse");
        assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused);
        let msg = err.to_string();
        assert!(
            msg.contains(&dead.to_string()) && msg.contains(&dead2.to_string()),
            "{msg}"
        );

        // No address at all is an invalid input, not a hang.
        let err = TcpStream::connect(Vec::<SocketAddr>::new())
            .await
            .expect_err("no address");
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    });
}

#[test]
fn bad_targets_are_invalid_input() {
    run(async {
        let port = refused_port();
        let empty = String::new();
        let targets: Vec<(&str, io::Result<TcpStream>)> = vec![
            ("(\"\", port)", TcpStream::connect(("", port)).await),
            ("(\"  \", port)", TcpStream::connect(("  ", port)).await),
            ("(String::new(), port)", TcpStream::connect((empty, port)).await),
            ("\":port\"", TcpStream::connect(format!(":{port}")).await),
            ("\"[]:port\"", TcpStream::connect(format!("[]:{port}")).await),
            ("port 0, literal", TcpStream::connect(("127.0.0.1", 0)).await),
            ("port 0, string", TcpStream::connect("127.0.0.1:0").await),
            (
                "port 0, socket address",
                TcpStream::connect(SocketAddr::from(([127, 0, 0, 1], 0))).await,
            ),
            ("port 0, by name", TcpStream::connect(("localhost", 0)).await),
            ("port 0, v6", TcpStream::connect("[::1]:0").await),
            ("no port", TcpStream::connect("localhost").await),
            ("port not a number", TcpStream::connect("localhost:http").await),
            ("port too big", TcpStream::connect("127.0.0.1:65536").await),
        ];
        for (what, res) in targets {
            let err = res.expect_err(what);
            assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{what}: {err}");
        }
    });
}

#[test]
fn an_unresolvable_name_is_a_dns_event() {
    run(async {
        // `.invalid` never resolves (RFC 6761); nothing is ever connected to.
        let err = TcpStream::connect(("nonexistent.invalid", 80))
            .await
            .expect_err("must not resolve");
        let (kind, msg, event) = kind_and_event(err);
        assert_eq!(kind, io::ErrorKind::NotFound);
        assert!(
            msg.contains("nonexistent.invalid"),
            "the error does not name the host: {msg}"
        );
        match &event {
            Event::Dns { host, .. } => assert_eq!(host, "nonexistent.invalid"),
            other => panic!("expected Event::Dns, got {other:?}"),
        }
        assert_eq!(event.name(), "dns-error");
        let err = TcpStream::connect("nonexistent.invalid:80")
            .await
            .expect_err("must not resolve");
        assert!(matches!(Event::from(err), Event::Dns { .. }));
    });
}

// The server.

#[test]
fn server_on_port_zero_tells_its_address() {
    let server = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = server.local_addr();
    assert_eq!(addr.ip(), IpAddr::V4(Ipv4Addr::LOCALHOST));
    assert_ne!(addr.port(), 0);
    assert!(format!("{server:?}").contains(&addr.to_string()));

    let other = TcpListener::bind_with_backlog(("127.0.0.1", 0), 4).unwrap();
    assert_ne!(other.local_addr().port(), 0);
    assert_ne!(other.local_addr(), addr);
    let third = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).unwrap();
    assert_ne!(third.local_addr().port(), 0);
    assert_eq!(DEFAULT_BACKLOG, 128);
}

#[test]
fn binding_an_address_in_use_fails_at_once() {
    let server = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = server.local_addr();
    let err = TcpListener::bind(addr).expect_err("the address is in use");
    let (kind, msg, event) = kind_and_event(err);
    assert_eq!(kind, io::ErrorKind::AddrInUse);
    assert!(msg.contains(&addr.to_string()), "the error does not name {addr}: {msg}");
    assert!(matches!(event, Event::AddressInUse { .. }));
    assert_eq!(event.name(), "socket-address-in-use");
    // Once the first server is gone, the address is free again.
    drop(server);
    let again = TcpListener::bind(addr).unwrap();
    assert_eq!(again.local_addr(), addr);
}

#[test]
fn connect_from_binds_the_client_first() {
    run(async {
        let server = TcpListener::bind("127.0.0.1:0").unwrap();
        let any_port = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
        let client = exchange(&server, TcpStream::connect_from(any_port, server.local_addr()).await).await;
        assert_eq!(client.local_addr().unwrap().ip(), any_port.ip());
        assert_ne!(client.local_addr().unwrap().port(), 0);

        let local = SocketAddr::from((Ipv4Addr::LOCALHOST, refused_port()));
        let client = exchange(&server, TcpStream::connect_from(local, server.local_addr()).await).await;
        assert_eq!(client.local_addr().unwrap(), local);

        // localhost may resolve to ::1 first: an IPv4 client skips it.
        let port = server.local_addr().port();
        exchange(&server, TcpStream::connect_from(any_port, ("localhost", port)).await).await;
    });
}

#[test]
fn connect_from_an_address_in_use_is_address_in_use() {
    run(async {
        let server = TcpListener::bind("127.0.0.1:0").unwrap();
        let taken = server.local_addr();
        let err = TcpStream::connect_from(taken, taken)
            .await
            .expect_err("the address is in use");
        let (kind, msg, event) = kind_and_event(err);
        assert_eq!(kind, io::ErrorKind::AddrInUse);
        assert!(
            msg.contains(&taken.to_string()),
            "the error does not name {taken}: {msg}"
        );
        assert!(matches!(event, Event::AddressInUse { .. }), "{event:?}");
    });
}

#[test]
fn connect_from_another_family_is_invalid_input() {
    run(async {
        let server = TcpListener::bind("127.0.0.1:0").unwrap();
        let v6 = SocketAddr::from((Ipv6Addr::LOCALHOST, 0));
        let err = TcpStream::connect_from(v6, server.local_addr())
            .await
            .expect_err("no IPv6 address to try");
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{err}");
    });
}

#[test]
fn accept_reports_the_peer_address() {
    run(async {
        let server = TcpListener::bind("127.0.0.1:0").unwrap();
        let (client, accepted) = zip(TcpStream::connect(server.local_addr()), server.accept()).await;
        let client = client.unwrap();
        let (stream, from) = accepted.unwrap();
        assert_eq!(from, client.local_addr().unwrap());
        assert_eq!(stream.peer_addr().unwrap(), from);
        // A poll_accept with nothing waiting is Pending, not an error.
        let none = futures_lite::future::poll_once(futures_lite::future::poll_fn(|cx| server.poll_accept(cx))).await;
        assert!(none.is_none());
    });
}

/// Two tasks accepting on one server while nobody connects are polled
/// again only when woken (they used to wake each other in turn, the CPU
/// busy for as long as the server was idle), and a connection then
/// reaches one of them.
#[test]
fn two_tasks_accepting_on_one_server_do_not_wake_each_other() {
    let server = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = server.local_addr();
    let (go, went) = std::sync::mpsc::channel::<()>();
    let client = std::thread::spawn(move || {
        went.recv().ok()?;
        std::net::TcpStream::connect(addr).ok()
    });
    let (polls, idled, done) = common::two_tasks(server.accept(), server.accept(), 10_000, || go.send(()).unwrap());
    drop(go);
    let client = client.join().unwrap();
    assert!(
        idled,
        "the two accepts never both waited: polled {polls} times with nobody connecting"
    );
    let (stream, peer) = match done {
        Some(Ok(res) | Err(res)) => res.unwrap(),
        None => panic!("polled {polls} times and no accept ended"),
    };
    assert_eq!(peer, client.expect("connected").local_addr().unwrap());
    drop(stream);
}

#[test]
fn incoming_yields_connections() {
    run(async {
        let server = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = server.local_addr();
        const N: u8 = 5;
        let clients = async {
            let mut locals = BTreeSet::new();
            for i in 0..N {
                let mut c = TcpStream::connect(addr).await?;
                locals.insert(c.local_addr()?);
                c.write_sequence(&[i])?;
                c.close_stream().await?;
            }
            io::Result::Ok(locals)
        };
        let accepting = async {
            let mut incoming = server.incoming();
            let mut seen = BTreeSet::new();
            let mut froms = BTreeSet::new();
            for _ in 0..N {
                let mut s = incoming.next().await.expect("Incoming never ends")?;
                froms.insert(s.peer_addr()?);
                let mut got = Vec::new();
                s.read_to_end(&mut got).await?;
                assert_eq!(got.len(), 1);
                seen.insert(got[0]);
            }
            io::Result::Ok((seen, froms))
        };
        let (locals, accepted) = zip(clients, accepting).await;
        let (locals, (seen, froms)) = (locals.unwrap(), accepted.unwrap());
        assert_eq!(seen, (0..N).collect());
        assert_eq!(froms, locals);
    });
}

// Conversions and the socket's accessors.

async fn roundtrip(a: &mut (impl AsyncInputStream + AsyncOutputStream + Unpin), b: &mut TcpStream, tag: &[u8]) {
    a.write_sequence(tag).unwrap();
    a.finish_output().await.unwrap();
    let mut got = vec![0u8; tag.len()];
    b.read_exact(&mut got).await.unwrap();
    assert_eq!(got, tag);
    b.write_all(tag).await.unwrap();
    b.flush().await.unwrap();
    let mut back = vec![0u8; tag.len()];
    a.read_exact(&mut back).await.unwrap();
    assert_eq!(back, tag);
}

#[test]
fn conversions_from_std_and_async_streams() {
    run(async {
        let server = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = server.local_addr();

        // std::net::TcpStream → TcpStream (made non-blocking, registered).
        let std_stream = std::net::TcpStream::connect(addr).unwrap();
        let mut a = TcpStream::try_from(std_stream).unwrap();
        let (mut pa, _) = server.accept().await.unwrap();
        roundtrip(&mut a, &mut pa, b"from std").await;

        // Async<std::net::TcpStream> → TcpStream.
        let io = async_io::Async::<std::net::TcpStream>::connect(addr).await.unwrap();
        let mut b = TcpStream::try_from(io).unwrap();
        let (mut pb, _) = server.accept().await.unwrap();
        roundtrip(&mut b, &mut pb, b"from Async").await;

        // std → TcpSocket → TcpStream (cl-async's make-instance :socket).
        let socket = TcpSocket::try_from(std::net::TcpStream::connect(addr).unwrap()).unwrap();
        let mut c = TcpStream::from(socket.clone());
        assert!(c.socket().ptr_eq(&socket));
        let (mut pc, _) = server.accept().await.unwrap();
        roundtrip(&mut c, &mut pc, b"from TcpSocket").await;

        // Async → TcpSocket → the two one-way streams over one socket.
        let io = async_io::Async::<std::net::TcpStream>::connect(addr).await.unwrap();
        let socket = TcpSocket::try_from(io).unwrap();
        let mut input = TcpInputStream::new(socket.clone());
        let mut output = TcpOutputStream::new(socket.clone());
        let (mut pd, _) = server.accept().await.unwrap();
        output.write_sequence(b"one way").unwrap();
        output.finish_output().await.unwrap();
        let mut got = [0u8; 7];
        pd.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"one way");
        pd.write_all(b"other way").await.unwrap();
        pd.flush().await.unwrap();
        let mut got = [0u8; 9];
        input.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"other way");
        // The halves made apart from a split reunite, being one connection.
        let mut joined = TcpStream::reunite(input, output).expect("one socket");
        roundtrip(&mut joined, &mut pd, b"joined").await;
        assert!(joined.into_socket().ptr_eq(&socket));
    });
}

#[test]
fn addresses_nodelay_and_counters() {
    run(async {
        let server = TcpListener::bind("127.0.0.1:0").unwrap();
        let (client, accepted) = zip(TcpStream::connect(server.local_addr()), server.accept()).await;
        let (mut client, (mut peer, from)) = (client.unwrap(), accepted.unwrap());

        assert_eq!(client.peer_addr().unwrap(), server.local_addr());
        assert_eq!(client.local_addr().unwrap(), from);
        assert_eq!(client.socket().peer_addr().unwrap(), peer.local_addr().unwrap());
        assert_eq!(client.socket().local_addr().unwrap(), peer.peer_addr().unwrap());

        // streamish coalesces small writes itself, so it turns Nagle off.
        assert!(client.socket().nodelay().unwrap());
        assert!(peer.socket().nodelay().unwrap());
        client.set_nodelay(false).unwrap();
        assert!(!client.socket().nodelay().unwrap());
        client.socket().set_nodelay(true).unwrap();
        assert!(client.socket().nodelay().unwrap());

        assert_eq!((client.bytes_read(), client.bytes_written()), (0, 0));
        client.write_sequence(&[7u8; 10_000]).unwrap();
        client.write_all(&[8u8; 70_000]).await.unwrap();
        assert_eq!(client.bytes_written() + client.queued() as u64, 80_000);
        client.finish_output().await.unwrap();
        assert_eq!(client.bytes_written(), 80_000);
        assert_eq!(client.socket().bytes_written(), 80_000);
        assert_eq!(client.socket().queued(), 0);

        let mut got = vec![0u8; 80_000];
        peer.read_exact(&mut got).await.unwrap();
        assert_eq!(peer.bytes_read(), 80_000);
        assert_eq!(peer.socket().bytes_read(), 80_000);
        assert_eq!(peer.bytes_written(), 0);
        assert!(got[..10_000].iter().all(|&b| b == 7) && got[10_000..].iter().all(|&b| b == 8));

        // The socket handle is cheap, shared, and describes itself.
        let socket = client.socket().clone();
        assert!(socket.ptr_eq(client.socket()));
        assert!(!socket.ptr_eq(peer.socket()));
        assert!(socket.is_open() && socket.is_connected() && !socket.is_closed());
        let dbg = format!("{socket:?}");
        assert!(
            dbg.contains(&from.to_string()) && dbg.contains(&server.local_addr().to_string()),
            "{dbg}"
        );
        client.close_stream().await.unwrap();
        assert!(!socket.is_open() && !socket.is_connected() && socket.is_closed());
        let err = socket.peer_addr().unwrap_err();
        assert!(matches!(Event::from(err), Event::Closed { .. }));
    });
}

/// cl-async: "simple client/server" ("hai hai" / "thxlol thxlol").
fn simple_client_server(host: &'static str) {
    let server_got = Arc::new(Mutex::new(Vec::new()));
    let client_got = Arc::new(Mutex::new(Vec::new()));
    let (sg, cg) = (server_got.clone(), client_got.clone());
    run_loop(move || {
        let server = tcp_server("127.0.0.1", 0)
            .read_cb(move |sock, data| {
                sg.lock().unwrap().extend_from_slice(&data.into_bytes());
                if sg.lock().unwrap().as_slice() == b"hai hai" {
                    sock.write(b"thxlol thxlol").unwrap();
                }
            })
            .spawn()
            .unwrap();
        let srv = server.clone();
        tcp_connect(host, server.local_addr().port())
            .data("hai hai")
            .read_cb(move |sock, data| {
                cg.lock().unwrap().extend_from_slice(&data.into_bytes());
                if cg.lock().unwrap().as_slice() == b"thxlol thxlol" {
                    sock.close();
                    srv.close();
                }
            })
            .event_cb(|ev| assert!(!ev.is_error(), "unexpected {ev:?}"))
            .spawn()
            .unwrap();
    })
    .unwrap();
    assert_eq!(server_got.lock().unwrap().as_slice(), b"hai hai");
    assert_eq!(client_got.lock().unwrap().as_slice(), b"thxlol thxlol");
}

#[test]
fn simple_client_server_ip() {
    simple_client_server("127.0.0.1");
}

#[test]
fn simple_client_server_localhost() {
    simple_client_server("localhost");
}

/// cl-async: "connect fail": one `tcp-refused`, with the socket attached,
/// and pre-connect writes still visible as queued, not silently gone.
#[test]
fn connect_refused_is_one_event_with_queued_writes() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let log = log();
    let queued_at_event = Arc::new(AtomicUsize::new(0));
    let (l, q) = (log.clone(), queued_at_event.clone());
    run_loop(move || {
        let sock = tcp_connect("127.0.0.1", port)
            .data("first")
            .event_cb(move |ev| {
                assert!(ev.socket().is_some(), "the event carries its socket");
                q.store(ev.socket().unwrap().queued(), Ordering::SeqCst);
                push(&l, ev.name());
            })
            .spawn()
            .unwrap();
        sock.write(b"second").unwrap();
    })
    .unwrap();
    assert_eq!(events(&log), ["tcp-refused"]);
    assert_eq!(queued_at_event.load(Ordering::SeqCst), "firstsecond".len());
}

#[test]
fn connect_refused_without_event_cb_ends_the_driver_with_the_error() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (socket, driver) = tcp_connect("127.0.0.1", port).start().unwrap();
    let err = async_io::block_on(driver).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused);
    assert!(matches!(Event::from(err), Event::Refused { socket: Some(_), .. }));
    assert!(socket.is_closed());
}

#[test]
fn dns_failure_is_one_dns_event_with_its_socket() {
    let log = log();
    let l = log.clone();
    run_loop(move || {
        tcp_connect("nonexistent.invalid", 80)
            .event_cb(move |ev| {
                assert!(ev.socket().is_some());
                if let Event::Dns { host, .. } = &ev {
                    assert_eq!(host, "nonexistent.invalid");
                }
                push(&l, ev.name());
            })
            .spawn()
            .unwrap();
    })
    .unwrap();
    assert_eq!(events(&log), ["dns-error"]);
}

#[test]
fn tcp_connect_binds_the_client_first() {
    let local = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let seen = log();
    let (s1, s2) = (seen.clone(), seen.clone());
    run_loop(move || {
        let slot = Slot::default();
        let server = tcp_server("127.0.0.1", 0)
            .connect_cb(move |sock| push(&s1, sock.peer_addr().unwrap().to_string()))
            .read_cb(|sock, _| sock.close())
            .spawn()
            .unwrap();
        slot.fill(&server);
        tcp_connect("127.0.0.1", server.local_addr().port())
            .bind(local)
            .data("hai")
            .connect_cb(move |sock| push(&s2, sock.local_addr().unwrap().to_string()))
            .event_cb(slot.close_on_eof())
            .spawn()
            .unwrap();
    })
    .unwrap();
    let mut seen = events(&seen);
    seen.sort();
    assert_eq!(seen, [local.to_string(), local.to_string()]);
}

#[test]
fn tcp_connect_bound_to_an_address_in_use_is_an_address_in_use_event() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let log = log();
    let l = log.clone();
    let socket = run_loop(move || {
        tcp_connect("127.0.0.1", addr.port())
            .bind(addr)
            .event_cb(move |ev| push(&l, ev.name()))
            .spawn()
    })
    .unwrap();
    assert_eq!(events(&log), ["socket-address-in-use"]);
    let err = socket.write(b"late").unwrap_err();
    assert!(matches!(Event::from(err), Event::AddressInUse { .. }));
}

#[test]
fn bad_options_fail_at_once() {
    let err = tcp_connect("", 80).start().unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    let err = tcp_connect("127.0.0.1", 0).start().unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    let err = tcp_connect("127.0.0.1", 80)
        .read_timeout(Duration::ZERO)
        .start()
        .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    let err = tcp_server("", 0).start(drop).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput, "an empty bind host");
    let err = tcp_connect("127.0.0.1", 80).spawn().unwrap_err();
    assert!(err.to_string().contains("with_event_loop"), "{err}");
}

#[test]
fn socket_data_pairs_sockets() {
    #[derive(Debug)]
    struct Tag(&'static str);
    let seen = Arc::new(Mutex::new(None));
    let s = seen.clone();
    run_loop(move || {
        let server = tcp_server("127.0.0.1", 0)
            .connect_cb(|sock| sock.set_data(Tag("accepted")))
            .read_cb(move |sock, _| {
                *s.lock().unwrap() = sock.data::<Tag>().map(|t| t.0);
                sock.close();
            })
            .spawn()
            .unwrap();
        let srv = server.clone();
        tcp_connect("127.0.0.1", server.local_addr().port())
            .data("x")
            .event_cb(move |_| srv.close())
            .spawn()
            .unwrap();
    })
    .unwrap();
    assert_eq!(*seen.lock().unwrap(), Some("accepted"));
}
