//! `stats()` counts open connections; it is process-wide, so this file holds
//! one test and nothing else runs beside it.

use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use streamish::{Event, Stats, TcpServerHandle, TcpSocket, stats, tcp_connect, tcp_server, with_event_loop};

#[test]
fn stats_count_open_connections_and_return_to_zero() {
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
}
