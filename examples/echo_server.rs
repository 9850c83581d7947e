//! cl-async's echo server: every byte a client sends comes back to it.
//!
//! ```text
//! echo_server [--bind ADDR] [--port N]
//! ```
//!
//! It listens on ADDR (default 127.0.0.1; an IPv6 address such as `::1`
//! works too) and port N (default 9003; 0 picks a free port). Its first
//! line on stdout is `listening on IP:PORT`, with the real port. It runs
//! until SIGINT (Ctrl-C) or SIGTERM, then exits 0. Errors on a connection
//! are printed to stderr, one line each, and the server keeps going; bad
//! arguments print the usage line and exit 2; failing to start (the address
//! is in use, say) prints one line and exits 1.
//!
//! ```text
//! cargo run --example echo_server -- --port 9003
//! nc 127.0.0.1 9003
//! ```

use std::io::{self, Write};
use std::process::ExitCode;

use async_signal::{Signal, Signals};
use futures_lite::StreamExt;
use streamish::{Event, ReadData, exit_event_loop, tcp_server, with_event_loop};

const USAGE: &str = "usage: echo_server [--bind ADDR] [--port N]";

struct Args {
    bind: String,
    port: u16,
}

fn parse_args(args: impl IntoIterator<Item = String>) -> Result<Option<Args>, String> {
    let mut parsed = Args {
        bind: "127.0.0.1".to_owned(),
        port: 9003,
    };
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        // `--port N` and `--port=N` alike.
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => (flag.to_owned(), Some(value.to_owned())),
            _ => (arg.clone(), None),
        };
        let mut value = || {
            inline
                .clone()
                .or_else(|| args.next())
                .ok_or(format!("{flag} needs a value"))
        };
        match flag.as_str() {
            "-h" | "--help" => return Ok(None),
            "--bind" => parsed.bind = value()?,
            "--port" => {
                let v = value()?;
                parsed.port = v.parse().map_err(|_| format!("{v:?} is not a port number"))?;
            }
            _ => return Err(format!("unexpected argument {arg:?}")),
        }
    }
    Ok(Some(parsed))
}

fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(Some(args)) => args,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(msg) => {
            eprintln!("echo_server: {msg} ({USAGE})");
            return ExitCode::from(2);
        }
    };
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("echo_server: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> io::Result<()> {
    with_event_loop(|| -> io::Result<()> {
        // Catch the signals before saying we listen, so that whoever starts
        // us and signals right after reading that line stops us cleanly.
        let mut signals = Signals::new([Signal::Int, Signal::Term])?;
        let server = tcp_server(args.bind.as_str(), args.port)
            // Drained mode: the bytes that arrived, handed back as they are
            // (no copy), to go out when this callback returns.
            .read_cb(|sock, data| {
                if let ReadData::Bytes(bytes) = data {
                    let _ = sock.write_bytes(bytes);
                }
            })
            .event_cb(|ev| match ev {
                // The client is done: streamish closes the socket after what
                // was written to it has gone out.
                Event::Eof { .. } => {}
                ev => eprintln!("echo_server: {ev}{}", peer(&ev)),
            })
            .spawn()?;
        let mut stdout = io::stdout().lock();
        writeln!(stdout, "listening on {}", server.local_addr())?;
        stdout.flush()?;
        drop(stdout);
        // The signal watcher is one more task on the same loop.
        streamish::spawn(async move {
            if let Some(signal) = signals.next().await {
                signal?;
            }
            server.close();
            exit_event_loop();
            Ok(())
        })?;
        Ok(())
    })
}

/// ` (from IP:PORT)` for an event's socket, when it is still known.
fn peer(ev: &Event) -> String {
    match ev.socket().and_then(|s| s.peer_addr().ok()) {
        Some(addr) => format!(" (from {addr})"),
        None => String::new(),
    }
}
