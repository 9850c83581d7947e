//! Leaving the event loop closes every connection still open on it, even
//! when sockets keep each other alive through their data.

mod common;

use std::io::Read;
use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use streamish::{exit_event_loop, stats, tcp_connect, tcp_server};

use common::{run_loop, *};

/// Accepted sockets hold themselves in their data, and the two clients
/// hold each other (a proxy's pair); the loop exits with all four open.
#[test]
fn exit_event_loop_closes_sockets_whose_data_forms_a_cycle() {
    fd_checked(|| {
        run_loop(|| {
            let accepted = Arc::new(AtomicUsize::new(0));
            let server = tcp_server("127.0.0.1", 0)
                .connect_cb(move |sock| {
                    sock.set_data(sock.clone());
                    if accepted.fetch_add(1, Ordering::SeqCst) + 1 == 2 {
                        exit_event_loop();
                    }
                })
                .spawn()
                .unwrap();
            let port = server.local_addr().port();
            let a = tcp_connect("127.0.0.1", port).spawn().unwrap();
            let b = tcp_connect("127.0.0.1", port).spawn().unwrap();
            a.set_data(b.clone());
            b.set_data(a);
        })
        .unwrap();
        assert_eq!(stats(), Default::default());
    });
}

/// The same on an executor of the application's: dropping a driver that
/// is still running closes its socket, whatever its data holds.
#[test]
fn a_dropped_driver_closes_a_socket_whose_data_holds_it() {
    fd_checked(|| {
        let server = async_io::Async::<std::net::TcpListener>::bind(([127, 0, 0, 1], 0)).unwrap();
        let port = server.get_ref().local_addr().unwrap().port();
        let (connected, up) = smol::channel::bounded(1);
        let (socket, driver) = tcp_connect("127.0.0.1", port)
            .connect_cb(move |_| {
                let _ = connected.try_send(());
            })
            .start()
            .unwrap();
        socket.set_data(socket.clone());
        let ex = async_executor::Executor::new();
        let task = ex.spawn(driver);
        let peer = run(ex.run(async {
            let (peer, _) = server.accept().await.unwrap();
            up.recv().await.unwrap();
            peer
        }));
        drop(task);
        drop(ex);
        assert!(socket.is_closed(), "the socket was closed with its driver");
        drop((socket, peer, server));
    });
}

#[test]
fn exit_event_loop_ends_the_loop_with_connections_open() {
    let _fds = fd_lock(); // its sockets would count in the other tests' checks
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    run_loop(move || {
        tcp_connect("127.0.0.1", port)
            .connect_cb(|_| exit_event_loop())
            .spawn()
            .unwrap();
    })
    .unwrap();
    // The loop dropped the connection: the peer sees it closed.
    let (mut s, _) = listener.accept().unwrap();
    let mut buf = [0u8; 8];
    assert_eq!(s.read(&mut buf).unwrap_or(0), 0);
}

/// `exit_event_loop` ends the loop when the callback (here, the task's
/// poll) that called it returns, even while tasks are ready to run: none
/// is polled again, however long the loop's busy spell still had to go.
/// The spinners give up after `LIMIT` polls, so a loop that ignored the
/// exit fails the test rather than hanging it.
#[test]
fn exit_event_loop_stops_a_busy_loop_at_once() {
    let _fds = fd_lock();
    const LIMIT: usize = 1_000_000;
    let exited = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let after_exit = Arc::new(AtomicUsize::new(0));
    let (e1, a1) = (exited.clone(), after_exit.clone());
    run_loop(move || {
        for who in 0..2 {
            let (exited, after_exit) = (e1.clone(), a1.clone());
            streamish::spawn(async move {
                for i in 0..LIMIT {
                    if exited.load(Ordering::SeqCst) {
                        after_exit.fetch_add(1, Ordering::SeqCst);
                    } else if who == 0 && i == 1_000 {
                        exited.store(true, Ordering::SeqCst);
                        exit_event_loop();
                    }
                    futures_lite::future::yield_now().await;
                }
                Ok(())
            })
            .unwrap();
        }
    })
    .unwrap();
    assert!(exited.load(Ordering::SeqCst));
    assert_eq!(
        after_exit.load(Ordering::SeqCst),
        0,
        "tasks were polled after exit_event_loop"
    );
}
