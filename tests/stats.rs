//! `stats()` counts the open connections of the current event loop;
//! `process_stats()` those of the whole process.

mod common;

use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use std::sync::mpsc;

use streamish::{Event, Stats, TcpServerHandle, TcpSocket, stats, tcp_connect, tcp_server, with_event_loop};

#[test]
fn stats_count_open_connections_and_return_to_zero() {
    // On a thread of its own, so that a hang fails the test.
    common::join(std::thread::spawn(|| {
        assert_eq!(stats(), Stats::default());
        let at_peak = Arc::new(Mutex::new(None));
        let peak = at_peak.clone();
        with_event_loop(move || {
            // A failed connection is never counted.
            let refused = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
            tcp_connect("127.0.0.1", refused)
                .event_cb(|ev| assert!(matches!(ev, Event::Refused { .. })))
                .spawn()
                .unwrap();

            // Both ends of three connections report in; the sixth takes the
            // count, then closes the clients and the server.
            let up = Arc::new(AtomicUsize::new(0));
            let clients: Arc<Mutex<Vec<TcpSocket>>> = Arc::default();
            let server_slot: Arc<OnceLock<TcpServerHandle>> = Arc::default();
            let report = {
                let (up, clients, server_slot) = (up.clone(), clients.clone(), server_slot.clone());
                move || {
                    if up.fetch_add(1, Ordering::SeqCst) + 1 == 6 {
                        *peak.lock().unwrap() = Some(stats());
                        clients.lock().unwrap().iter().for_each(TcpSocket::close);
                        server_slot.get().unwrap().close();
                    }
                }
            };
            let report = Arc::new(report);
            let r = report.clone();
            let server = tcp_server("127.0.0.1", 0)
                .connect_cb(move |_| r())
                .event_cb(|ev| assert!(matches!(ev, Event::Eof { .. }), "{ev:?}"))
                .spawn()
                .unwrap();
            server_slot.set(server.clone()).unwrap();
            for _ in 0..3 {
                let r = report.clone();
                let sock = tcp_connect("127.0.0.1", server.local_addr().port())
                    .connect_cb(move |_| r())
                    .spawn()
                    .unwrap();
                clients.lock().unwrap().push(sock);
            }
        })
        .unwrap();
        assert_eq!(
            *at_peak.lock().unwrap(),
            Some(Stats {
                incoming_tcp: 3,
                outgoing_tcp: 3
            })
        );
        assert_eq!(stats(), Stats::default(), "all connections closed");
    }));
}

/// Opens one connection to itself on a loop of its own thread, says so on
/// `up`, and keeps it open until `done` is sent.
fn busy_loop_elsewhere(up: mpsc::Sender<()>, done: mpsc::Receiver<()>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        with_event_loop(move || {
            let server = tcp_server("127.0.0.1", 0).spawn()?;
            let port = server.local_addr().port();
            let sock = tcp_connect("127.0.0.1", port)
                .connect_cb(move |_| up.send(()).unwrap())
                .spawn()?;
            streamish::spawn(async move {
                blocking::unblock(move || done.recv()).await.ok();
                sock.close();
                server.close();
                Ok(())
            })
        })
        .unwrap();
    })
}

#[test]
fn stats_count_only_the_current_loops_connections() {
    // On a thread of its own, so that a hang fails the test.
    common::join(std::thread::spawn(|| {
        let (up_tx, up) = mpsc::channel();
        let (done, done_rx) = mpsc::channel();
        let other = busy_loop_elsewhere(up_tx, done_rx);
        up.recv_timeout(common::LIMIT).unwrap();
        assert!(streamish::process_stats().outgoing_tcp >= 1);
        let seen = Arc::new(Mutex::new(None));
        let s = seen.clone();
        with_event_loop(move || {
            assert_eq!(stats(), Stats::default(), "another loop's connection counted here");
            let server = tcp_server("127.0.0.1", 0).spawn()?;
            tcp_connect("127.0.0.1", server.local_addr().port())
                .connect_cb(move |sock| {
                    *s.lock().unwrap() = Some(stats().outgoing_tcp);
                    sock.close();
                    server.close();
                })
                .spawn()?;
            Ok(())
        })
        .unwrap();
        done.send(()).unwrap();
        common::join(other);
        assert_eq!(*seen.lock().unwrap(), Some(1));
    }));
}
