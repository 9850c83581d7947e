//! TLS on the callback face: cl-async-ssl's `tcp-ssl-connect` and
//! `tcp-ssl-server` on the event loop.
#![cfg(feature = "tls")]

mod common;

use std::sync::{Arc, Mutex};

use streamish::{Event, ReadData, tcp_ssl_connect, tcp_ssl_server, with_event_loop};

#[test]
fn an_echo_over_tls_on_the_event_loop() {
    let (server_config, client_config) = common::tls_configs(&["localhost"]);
    let got = Arc::new(Mutex::new(Vec::new()));
    let seen = got.clone();
    common::run_loop(move || {
        let server = tcp_ssl_server("127.0.0.1", 0, server_config)
            .read_cb(|sock, data| {
                let _ = sock.write_bytes(data.into_bytes());
            })
            .spawn()?;
        tcp_ssl_connect("localhost", server.local_addr().port(), client_config)
            .data("hai, ")
            .data("over tls")
            .read_cb(move |sock, data| {
                let mut got = seen.lock().unwrap();
                got.extend_from_slice(&data.into_bytes());
                if got.len() == 13 {
                    sock.close();
                    server.close();
                }
            })
            .event_cb(|ev| panic!("{ev}"))
            .spawn()?;
        Ok(())
    })
    .unwrap();
    assert_eq!(&got.lock().unwrap()[..], b"hai, over tls");
}

#[test]
fn a_refused_certificate_is_an_event_on_both_sides() {
    let (server_config, client_config) = common::tls_configs(&["localhost"]);
    let client_events = Arc::new(Mutex::new(Vec::new()));
    let server_events = Arc::new(Mutex::new(Vec::new()));
    let (c, s) = (client_events.clone(), server_events.clone());
    with_event_loop(move || -> std::io::Result<()> {
        let server = tcp_ssl_server("127.0.0.1", 0, server_config)
            .read_cb(|_, _| {})
            .event_cb(move |ev| s.lock().unwrap().push(ev.name()))
            .spawn()?;
        let port = server.local_addr().port();
        tcp_ssl_connect("127.0.0.1", port, client_config)
            .read_cb(|_, _| {})
            .event_cb(move |ev| {
                c.lock().unwrap().push(ev.name());
                server.close();
            })
            .spawn()?;
        Ok(())
    })
    .unwrap();
    // The certificate names "localhost", the client asked for 127.0.0.1.
    assert_eq!(*client_events.lock().unwrap(), ["tcp-ssl-certificate-error"]);
    assert_eq!(server_events.lock().unwrap().len(), 1);
}

#[test]
fn stream_mode_reads_a_tls_stream() {
    let (server_config, client_config) = common::tls_configs(&["localhost"]);
    let got = Arc::new(Mutex::new(String::new()));
    let seen = got.clone();
    common::run_loop(move || {
        let server = tcp_ssl_server("127.0.0.1", 0, server_config)
            .read_cb(|sock, _| {
                let _ = sock.write(b"hello from a tls server");
                sock.close();
            })
            .spawn()?;
        tcp_ssl_connect("localhost", server.local_addr().port(), client_config)
            .stream(true)
            .data("x")
            .read_cb(move |_sock, data| {
                if let ReadData::Stream(stream) = data {
                    let mut buf = [0u8; 64];
                    let n = streamish::AsyncInputStream::read_sequence(stream, &mut buf).unwrap();
                    seen.lock().unwrap().push_str(std::str::from_utf8(&buf[..n]).unwrap());
                }
            })
            .event_cb(move |ev| {
                assert!(matches!(ev, Event::Eof { .. }), "{ev}");
                server.close();
            })
            .spawn()?;
        Ok(())
    })
    .unwrap();
    assert_eq!(*got.lock().unwrap(), "hello from a tls server");
}

/// cl-async's `tcp-ssl-simple-client-server` (test/tcp-ssl.lisp): two
/// clients, one by address and one by name, each sending "hai " in two
/// parts (`:data`, then a write before the connection is up); the server
/// answers each read with "thxlol ".
#[test]
fn tcp_ssl_simple_client_server() {
    #[derive(Default)]
    struct Tally {
        server_reqs: usize,
        server_data: String,
        connect_num: usize,
        client_replies: usize,
        client_data: String,
    }
    let (server_config, client_config) = common::tls_configs(&["localhost", "127.0.0.1"]);
    let tally = Arc::new(Mutex::new(Tally::default()));
    let t = tally.clone();
    common::run_loop(move || {
        let (t1, t2) = (t.clone(), t.clone());
        let server = tcp_ssl_server("127.0.0.1", 0, server_config)
            .read_cb(move |sock, data| {
                let mut t = t1.lock().unwrap();
                t.server_reqs += 1;
                t.server_data.push_str(std::str::from_utf8(&data.into_bytes()).unwrap());
                let _ = sock.write(b"thxlol ");
            })
            .connect_cb(move |_| t2.lock().unwrap().connect_num += 1)
            .spawn()?;
        let port = server.local_addr().port();
        let done = Arc::new(Mutex::new(0));
        for host in ["127.0.0.1", "localhost"] {
            let (t, server, done) = (t.clone(), server.clone(), done.clone());
            let sock = tcp_ssl_connect(host, port, client_config.clone())
                .data("ha")
                .read_cb(move |sock, data| {
                    let mut t = t.lock().unwrap();
                    t.client_replies += 1;
                    t.client_data.push_str(std::str::from_utf8(&data.into_bytes()).unwrap());
                    sock.close();
                    let mut done = done.lock().unwrap();
                    *done += 1;
                    if *done == 2 {
                        server.close();
                    }
                })
                .event_cb(|ev| panic!("{ev}"))
                .spawn()?;
            sock.write(b"i ")?;
        }
        Ok(())
    })
    .unwrap();
    let t = tally.lock().unwrap();
    assert_eq!(t.server_reqs, 2);
    assert_eq!(t.server_data, "hai hai ");
    assert_eq!(t.connect_num, 2);
    assert_eq!(t.client_replies, 2);
    assert_eq!(t.client_data, "thxlol thxlol ");
}

/// A client that connects and never starts its handshake is timed out by
/// the server's `read_timeout`, not held forever.
#[test]
fn a_silent_client_s_handshake_times_out() {
    let (server_config, _) = common::tls_configs(&["localhost"]);
    let server_events = Arc::new(Mutex::new(Vec::new()));
    let seen = server_events.clone();
    common::run_loop(move || {
        let server = tcp_ssl_server("127.0.0.1", 0, server_config)
            .read_timeout(std::time::Duration::from_millis(50))
            .read_cb(|_, _| {})
            .event_cb(move |ev| seen.lock().unwrap().push(ev.name()))
            .spawn()?;
        // Plain TCP: connects, says nothing, and hears the server close.
        streamish::tcp_connect("127.0.0.1", server.local_addr().port())
            .read_cb(|_, _| {})
            .event_cb(move |ev| {
                assert!(matches!(ev, Event::Eof { .. }), "{ev}");
                server.close();
            })
            .spawn()?;
        Ok(())
    })
    .unwrap();
    assert_eq!(*server_events.lock().unwrap(), ["tcp-timeout"]);
}
