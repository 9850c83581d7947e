//! Leaving the event loop closes every connection still open on it, even
//! when sockets keep each other alive through their data.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use streamish::{exit_event_loop, stats, tcp_connect, tcp_server};

use common::*;

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
