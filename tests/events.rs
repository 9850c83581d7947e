//! How errors read and return: `Event`'s one-line forms, and the one
//! `io::Result` of `with_event_loop`.

mod common;

use std::io;
use std::net::TcpListener;

use streamish::{Event, TcpStream, tcp_connect, with_event_loop};

fn refused_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[test]
fn event_display_and_debug_are_one_line_with_the_condition_name() {
    let port = refused_port();
    let err = common::run(TcpStream::connect(("127.0.0.1", port))).unwrap_err();
    let shown = format!("{err:?}"); // what `main` returning this error prints
    assert!(!shown.contains('\n'), "{shown}");
    assert_eq!(shown.matches("Custom").count(), 1, "nested: {shown}");
    assert!(shown.contains("tcp-refused: "), "{shown}");
    let ev = Event::from(err);
    let line = ev.to_string();
    assert!(line.starts_with("tcp-refused: "), "{line}");
    assert!(line.contains(&format!("127.0.0.1:{port}")), "{line}");
    assert_eq!(format!("{ev:?}"), line);
    let closed = Event::Closed { socket: None };
    assert_eq!(format!("{closed:?}"), "streamish-closed: the stream is closed");
}

#[test]
fn with_event_loop_returns_one_result() {
    let seven: io::Result<u32> = with_event_loop(|| Ok(7));
    assert_eq!(seven.unwrap(), 7);
    let unit: io::Result<()> = with_event_loop(|| ());
    unit.unwrap();
    // The set-up's own error comes back as it is.
    let err = with_event_loop(|| -> io::Result<()> { Err(io::Error::other("set-up failed")) }).unwrap_err();
    assert_eq!(err.to_string(), "set-up failed");
    // An error no `event_cb` took, in the same `io::Result`.
    let port = refused_port();
    let err = with_event_loop(|| {
        tcp_connect("127.0.0.1", port).spawn()?;
        Ok(())
    })
    .unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused);
}
