//! Stream mode keeps cl-async's buffer: what `read_cb` leaves is offered
//! again, and what is unread at end of file stays readable.

mod common;

use std::sync::{Arc, Mutex};

use streamish::{AsyncInputStream, Event, ReadData, TcpStream, tcp_connect, tcp_server};

use common::run_loop;

const REPLY: usize = 10_000;

/// A server that sends `REPLY` bytes to each client, then closes.
fn reply_server() -> std::io::Result<streamish::TcpServerHandle> {
    tcp_server("127.0.0.1", 0)
        .connect_cb(|sock| {
            sock.write(&[7u8; REPLY]).unwrap();
            sock.close();
        })
        .spawn()
}

#[test]
fn seed_pattern_of_one_4096_byte_read_per_call_gets_every_byte() {
    let got = Arc::new(Mutex::new(0usize));
    let g = got.clone();
    run_loop(move || {
        let server = reply_server()?;
        tcp_connect("127.0.0.1", server.local_addr().port())
            .stream(true)
            .read_cb(move |_, data| {
                if let ReadData::Stream(stream) = data {
                    let mut buf = [0u8; 4096];
                    *g.lock().unwrap() += stream.read_sequence(&mut buf).unwrap();
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
    assert_eq!(*got.lock().unwrap(), REPLY);
}

#[test]
fn bytes_unread_at_eof_stay_readable_in_event_cb_and_after() {
    let in_event = Arc::new(Mutex::new(None));
    let seen = in_event.clone();
    let stream: TcpStream = run_loop(move || {
        let server = reply_server()?;
        // No read_cb: everything stays buffered.
        tcp_connect("127.0.0.1", server.local_addr().port())
            .event_cb(move |ev| {
                let sock = ev.socket().unwrap().clone();
                *seen.lock().unwrap() = Some(TcpStream::new(sock).buffered());
                server.close();
            })
            .spawn_stream()
    })
    .unwrap();
    assert_eq!(*in_event.lock().unwrap(), Some(REPLY));
    let mut stream = stream;
    assert!(!stream.socket().is_open());
    let mut buf = vec![0u8; REPLY + 1];
    assert_eq!(stream.read_sequence(&mut buf).unwrap(), REPLY);
    assert!(stream.at_eof());
    let err = stream.read_sequence(&mut buf).unwrap_err();
    assert!(matches!(Event::from(err), Event::Closed { .. }));
}

#[test]
fn a_read_cb_that_takes_nothing_is_not_called_again_for_the_same_bytes() {
    let calls = Arc::new(Mutex::new(0usize));
    let c = calls.clone();
    run_loop(move || {
        let server = reply_server()?;
        tcp_connect("127.0.0.1", server.local_addr().port())
            .stream(true)
            .read_cb(move |_, _| *c.lock().unwrap() += 1)
            .event_cb(move |_| server.close())
            .spawn()?;
        Ok(())
    })
    .unwrap();
    // One call per read from the kernel at most, never a spin.
    let calls = *calls.lock().unwrap();
    assert!((1..=REPLY / 1024).contains(&calls), "{calls} calls");
}
