//! A chat server: every line a client sends goes to every other client.
//!
//! ```text
//! chat_server [--bind HOST] [--port N]
//! ```
//!
//! It listens on HOST (default 127.0.0.1; a name such as `localhost` or an
//! IPv6 address works too) and port N (default 9004; 0 picks a free
//! port). Its first line on stdout is `listening on IP:PORT`. Each client
//! is named by its address: its lines reach the others as `IP:PORT: line`,
//! and they hear `* IP:PORT joined` and `* IP:PORT left` (after its end of
//! file or a reset). It runs until SIGINT or SIGTERM, then exits 0; bad
//! arguments print the usage line and exit 2; failing to start exits 1.
//!
//! ```text
//! cargo run --example chat_server -- --port 9004
//! nc 127.0.0.1 9004    # in two terminals
//! ```

use std::io::{self, Write};
use std::process::ExitCode;

use async_signal::{Signal, Signals};
use futures_lite::StreamExt;
use streamish::prelude::*;
use streamish::{LoopLocal, ReadData, TcpSocket, exit_event_loop, tcp_server, with_event_loop};

const USAGE: &str = "usage: chat_server [--bind HOST] [--port N]";

struct Args {
    bind: String,
    port: u16,
}

fn parse_args(args: impl IntoIterator<Item = String>) -> Result<Option<Args>, String> {
    let mut parsed = Args {
        bind: "127.0.0.1".to_owned(),
        port: 9004,
    };
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
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
            eprintln!("chat_server: {msg} ({USAGE})");
            return ExitCode::from(2);
        }
    };
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("chat_server: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The clients in the room, kept on the event loop: the callbacks all run
/// on its thread, so they share it by a `Copy` key, without a lock.
#[derive(Clone, Copy)]
struct Room(LoopLocal<Vec<TcpSocket>>);

impl Room {
    fn new() -> io::Result<Room> {
        LoopLocal::new(Vec::new()).map(Room)
    }

    /// Sends `line` to everyone but `from`.
    fn broadcast(&self, from: &TcpSocket, line: &[u8]) {
        self.0.with(|clients| {
            for sock in clients.iter().filter(|s| !s.ptr_eq(from)) {
                // A client that is leaving refuses writes: it is dropped below.
                let _ = sock.write(line);
            }
        });
    }

    fn join(&self, sock: &TcpSocket) {
        self.0.with(|clients| clients.push(sock.clone()));
        self.broadcast(sock, format!("* {} joined\n", name(sock)).as_bytes());
    }

    /// Removes `sock` (after its end of file, reset or timeout) and tells
    /// the others, once.
    fn leave(&self, sock: &TcpSocket) {
        let was_in = self.0.with(|clients| {
            let before = clients.len();
            clients.retain(|s| !s.ptr_eq(sock));
            clients.len() != before
        });
        if was_in {
            self.broadcast(sock, format!("* {} left\n", name(sock)).as_bytes());
        }
    }
}

/// A client's name: its address, as `connect_cb` noted it.
fn name(sock: &TcpSocket) -> String {
    sock.data::<String>().map_or_else(|| "?".to_owned(), |n| (*n).clone())
}

fn run(args: Args) -> io::Result<()> {
    with_event_loop(|| -> io::Result<()> {
        let mut signals = Signals::new([Signal::Int, Signal::Term])?;
        let room = Room::new()?;
        let server = tcp_server(args.bind.as_str(), args.port)
            // Stream mode: the bytes stay in the stream's buffer, so a line
            // split across reads waits there for its end.
            .stream(true)
            .connect_cb(move |sock| {
                // Kept as socket data: after a reset the address is gone.
                sock.set_data(sock.peer_addr().map_or_else(|_| "?".to_owned(), |a| a.to_string()));
                room.join(sock);
            })
            .read_cb(move |sock, data| {
                let ReadData::Stream(stream) = data else { return };
                // Every whole line buffered; a partial one stays for later.
                while let Ok(Some(line)) = stream.take_line() {
                    let mut msg = format!("{}: ", name(sock)).into_bytes();
                    msg.extend_from_slice(&line);
                    room.broadcast(sock, &msg);
                }
            })
            // End of file, reset or any error: the client is gone.
            .event_cb(move |ev| {
                if let Some(sock) = ev.socket() {
                    room.leave(sock);
                }
            })
            .spawn()?;
        let mut stdout = io::stdout().lock();
        writeln!(stdout, "listening on {}", server.local_addr())?;
        stdout.flush()?;
        drop(stdout);
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
