//! cl-async's TCP stream example, in Rust: fetch a page over HTTP with
//! `tcp_connect` in stream mode, reading the response inside `read_cb`.
//!
//! ```text
//! tcp_client [HOST [PORT [PATH]]]
//! ```
//!
//! With no arguments it starts a small HTTP server on 127.0.0.1 (a
//! `tcp_server` on the same event loop) and fetches `/` from it, so it runs
//! without a network:
//!
//! ```text
//! cargo run --example tcp_client
//! cargo run --example tcp_client -- 127.0.0.1 8000 /index.html
//! ```
//!
//! With HOST it fetches PATH (default `/`) from HOST:PORT (default 80). The
//! response, headers and body, goes to stdout. It exits 0 once the server
//! closes the connection (`Event::Eof`), 1 with a one-line error on stderr
//! when anything fails (refused, reset, no byte for 5 s, ...), and 2 on bad
//! arguments.
//!
//! The seed's Lisp, for comparison:
//!
//! ```lisp
//! (tcp-connect "musio.com" 80
//!   (lambda (sock stream)
//!     (let* ((seq (make-array 4096 :element-type '(unsigned-byte 8)))
//!            (num-bytes (read-sequence seq stream :end 4096)))
//!       (format t "~a" (babel:octets-to-string (subseq seq 0 num-bytes)))))
//!   (lambda (ev) (format t "ev: ~a~%" ev))
//!   :data (format nil "GET /~C~C" #\return #\newline)
//!   :stream t
//!   :read-timeout 5)
//! ```

use std::io::{self, Write};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use streamish::{
    AsyncInputStream, Event, ReadData, TcpServerHandle, TcpSocket, tcp_connect, tcp_server, with_event_loop,
};

const USAGE: &str = "usage: tcp_client [HOST [PORT [PATH]]]";

/// What to fetch: `None` for the embedded server.
struct Args {
    target: Option<(String, u16)>,
    path: String,
}

fn parse_args(args: impl IntoIterator<Item = String>) -> Result<Option<Args>, String> {
    let args: Vec<String> = args.into_iter().collect();
    if args.iter().any(|a| a == "-h" || a == "--help") {
        return Ok(None);
    }
    if args.len() > 3 {
        return Err(format!("too many arguments ({})", args.len()));
    }
    if let Some(a) = args.iter().find(|a| a.starts_with('-')) {
        return Err(format!("unknown option {a:?}"));
    }
    let port = match args.get(1) {
        None => 80,
        Some(p) => p.parse().map_err(|_| format!("{p:?} is not a port number"))?,
    };
    let path = args.get(2).cloned().unwrap_or_else(|| "/".to_owned());
    if !path.starts_with('/') || path.bytes().any(|b| b.is_ascii_whitespace() || b.is_ascii_control()) {
        return Err(format!("{path:?} is not a path (it starts with / and has no spaces)"));
    }
    Ok(Some(Args {
        target: args.first().map(|host| (host.clone(), port)),
        path,
    }))
}

fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(Some(args)) => args,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(msg) => {
            eprintln!("tcp_client: {msg} ({USAGE})");
            return ExitCode::from(2);
        }
    };
    let res = run(args);
    let _ = io::stdout().flush();
    match res {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            eprintln!("tcp_client: {msg}");
            ExitCode::FAILURE
        }
    }
}

/// How the fetch ended (the first word wins), and the embedded server to
/// close when it does, so the event loop runs out of work and returns.
#[derive(Default)]
struct Outcome {
    result: Mutex<Option<Result<(), String>>>,
    server: Mutex<Option<TcpServerHandle>>,
}

impl Outcome {
    fn finish(&self, res: Result<(), String>) {
        self.result.lock().unwrap().get_or_insert(res);
        if let Some(server) = self.server.lock().unwrap().take() {
            server.close();
        }
    }
}

fn run(args: Args) -> Result<(), String> {
    let outcome = Arc::new(Outcome::default());
    let ran = with_event_loop(|| {
        if let Err(e) = start(args, &outcome) {
            outcome.finish(Err(e.to_string()));
        }
    });
    if let Err(e) = ran {
        // An error no callback took ended the loop.
        return Err(e.to_string());
    }
    let res = outcome.result.lock().unwrap().take();
    res.unwrap_or_else(|| Err("the connection ended before the server closed it".to_owned()))
}

/// Runs inside the event loop: starts the embedded server if there is no
/// HOST, then the fetch. Returns at once; the loop does the rest.
fn start(args: Args, outcome: &Arc<Outcome>) -> io::Result<()> {
    let (host, port) = match args.target {
        Some(target) => target,
        None => {
            let server = embedded_server()?;
            let port = server.local_addr().port();
            *outcome.server.lock().unwrap() = Some(server);
            ("127.0.0.1".to_owned(), port)
        }
    };
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n",
        path = args.path,
        host = host_header(&host, port),
    );
    let on_read = outcome.clone();
    let on_event = outcome.clone();
    tcp_connect(host, port)
        .stream(true)
        .data(request)
        .read_timeout(Duration::from_secs(5))
        .read_cb(move |sock, data| {
            if let Err(e) = copy_to_stdout(data) {
                on_read.finish(Err(e.to_string()));
                sock.close_force();
            }
        })
        .event_cb(move |ev| match ev {
            // The server closed: the response is complete.
            Event::Eof { .. } => on_event.finish(Ok(())),
            ev => on_event.finish(Err(ev.to_string())),
        })
        .spawn()?;
    Ok(())
}

/// The read callback's work: everything that arrived goes to stdout. The
/// stream never waits: `read_sequence` returns what is buffered, and 0 once
/// the buffer is empty (which is not end of file: that is `Event::Eof`).
fn copy_to_stdout(data: ReadData<'_>) -> io::Result<()> {
    let mut out = io::stdout().lock();
    match data {
        ReadData::Stream(stream) => {
            let mut buf = [0u8; 4096];
            loop {
                match stream.read_sequence(&mut buf)? {
                    0 => break,
                    n => out.write_all(&buf[..n])?,
                }
            }
        }
        ReadData::Bytes(bytes) => out.write_all(&bytes)?,
    }
    out.flush()
}

/// `Host:` header value: IPv6 literals in brackets, the port unless 80.
fn host_header(host: &str, port: u16) -> String {
    let host = if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host.to_owned()
    };
    if port == 80 { host } else { format!("{host}:{port}") }
}

/// The largest request head the embedded server reads before giving up.
const MAX_REQUEST: usize = 16 * 1024;

/// A minimal HTTP/1.1 server on 127.0.0.1, port 0: it answers any request
/// with a short text saying what was asked for, then closes the connection.
/// It runs until `close` (the fetch's end closes it).
fn embedded_server() -> io::Result<TcpServerHandle> {
    tcp_server("127.0.0.1", 0)
        .read_timeout(Duration::from_secs(5))
        .connect_cb(|sock| sock.set_data(Mutex::new(Vec::<u8>::new())))
        .read_cb(|sock, data| {
            let Some(head) = sock.data::<Mutex<Vec<u8>>>() else {
                return; // already answered
            };
            let mut head = head.lock().unwrap();
            head.extend_from_slice(&data.into_bytes());
            if let Some(end) = find(&head, b"\r\n\r\n") {
                let request_line = head[..end].split(|&b| b == b'\r').next().unwrap_or_default();
                let response = respond(&String::from_utf8_lossy(request_line));
                drop(head);
                answer(sock, response);
            } else if head.len() > MAX_REQUEST {
                drop(head);
                answer(
                    sock,
                    http_response("431 Request Header Fields Too Large", "request too large\n"),
                );
            }
        })
        // The client reports what went wrong; the server just lets the
        // connection go.
        .event_cb(|_ev| {})
        .spawn()
}

/// Sends the response, then closes gracefully: it still goes out.
fn answer(sock: &TcpSocket, response: String) {
    sock.clear_data();
    let _ = sock.write(response.as_bytes());
    sock.close();
}

fn respond(request_line: &str) -> String {
    let mut parts = request_line.split(' ');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(method), Some(path), Some(version)) if version.starts_with("HTTP/1.") => http_response(
            "200 OK",
            &format!("hello from streamish's embedded server: {method} {path}\n"),
        ),
        _ => http_response("400 Bad Request", "bad request\n"),
    }
}

fn http_response(status: &str, body: &str) -> String {
    format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n{body}",
        len = body.len(),
    )
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
