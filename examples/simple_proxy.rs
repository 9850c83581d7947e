//! cl-async's simple proxy: accept connections on a local port and relay
//! each one, both ways, to a remote host.
//!
//! ```text
//! simple_proxy LOCAL_PORT REMOTE_HOST REMOTE_PORT [--stats] [--debug]
//! ```
//!
//! It listens on 127.0.0.1:LOCAL_PORT (0 picks a free port) and prints
//! `listening on IP:PORT` as its first line on stdout. For every client it
//! accepts it connects to REMOTE_HOST:REMOTE_PORT and pairs the two sockets
//! through their socket data, so each callback finds the other side. When one
//! side ends (end of file), the end is passed on as a half-close: the other
//! side's write direction is shut down once what was sent towards it has gone
//! out, and replies still flow back until that side ends too. When one side
//! times out, the other is closed gracefully; when one fails (reset, refused,
//! ...), the other is closed at once.
//!
//! `--stats` prints the open connection counts (`streamish::stats()`) now
//! and every 2 seconds; `--debug` logs every connection, every event and
//! the size of every piece of data relayed to stderr. It runs until SIGINT
//! or SIGTERM, then exits 0; bad arguments print the usage line and exit 2;
//! failing to start prints one line and exits 1.
//!
//! ```text
//! cargo run --example echo_server -- --port 9003 &
//! cargo run --example simple_proxy -- 8080 127.0.0.1 9003 --stats
//! ```
//!
//! Unlike cl-async's proxy it needs no delay before closing the partner on
//! end of file: `close` is graceful. And it pushes back: when a side has
//! more than its high-water mark queued, the side feeding it stops reading
//! until `write_cb` says the queue has drained.
//!
//! Unlike cl-async's, it passes a half-close through (`allow_half_open` and
//! `shutdown_write`): a client that shuts down its write side and then reads
//! the rest of the response gets all of it.

use std::io::{self, Write};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use async_io::Timer;
use async_signal::{Signal, Signals};
use futures_lite::StreamExt;
use streamish::{
    Event, ReadData, TcpServerHandle, TcpSocket, exit_event_loop, tcp_connect, tcp_server, with_event_loop,
};

const USAGE: &str = "usage: simple_proxy LOCAL_PORT REMOTE_HOST REMOTE_PORT [--stats] [--debug]";

/// How long the remote side may take to resolve and connect.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How often `--stats` prints.
const STATS_EVERY: Duration = Duration::from_secs(2);

struct Args {
    local_port: u16,
    remote_host: String,
    remote_port: u16,
    stats: bool,
    debug: bool,
}

fn parse_args(args: impl IntoIterator<Item = String>) -> Result<Option<Args>, String> {
    let (mut stats, mut debug) = (false, false);
    let mut positional = Vec::new();
    for arg in args {
        match arg.as_str() {
            "-h" | "--help" => return Ok(None),
            "--stats" => stats = true,
            "--debug" => debug = true,
            a if a.starts_with('-') && a.len() > 1 => return Err(format!("unknown option {a:?}")),
            _ => positional.push(arg),
        }
    }
    let [local_port, remote_host, remote_port] =
        <[String; 3]>::try_from(positional).map_err(|p| format!("expected 3 arguments, got {}", p.len()))?;
    let port = |p: &str| p.parse::<u16>().map_err(|_| format!("{p:?} is not a port number"));
    let remote_port = port(&remote_port)?;
    if remote_port == 0 {
        return Err("REMOTE_PORT cannot be 0".to_owned());
    }
    Ok(Some(Args {
        local_port: port(&local_port)?,
        remote_host,
        remote_port,
        stats,
        debug,
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
            eprintln!("simple_proxy: {msg} ({USAGE})");
            return ExitCode::from(2);
        }
    };
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("simple_proxy: {e}");
            ExitCode::FAILURE
        }
    }
}

/// What every callback needs to know.
struct Proxy {
    remote_host: String,
    remote_port: u16,
    debug: bool,
}

/// Which side of a pair a socket is.
#[derive(Clone, Copy)]
enum Side {
    /// Accepted from a client.
    Client,
    /// Connected to the remote host for it.
    Remote,
}

impl Proxy {
    fn log(&self, msg: impl FnOnce() -> String) {
        if self.debug {
            eprintln!("simple_proxy: {}", msg());
        }
    }

    /// `client 127.0.0.1:40000` or `remote 127.0.0.1:9003`, for the logs.
    fn name(&self, side: Side, sock: &TcpSocket) -> String {
        match (side, sock.peer_addr()) {
            (Side::Client, Ok(addr)) => format!("client {addr}"),
            (Side::Client, Err(_)) => "client".to_owned(),
            (Side::Remote, Ok(addr)) => format!("remote {addr}"),
            (Side::Remote, Err(_)) => format!("remote {}:{}", self.remote_host, self.remote_port),
        }
    }

    /// A client came in (the server's `connect_cb`): connect to the remote
    /// host for it and pair the two sockets. The connection is made in the
    /// background; what the client sends meanwhile is queued on the remote
    /// socket and goes out once it is up.
    fn accept(self: &Arc<Self>, client: &TcpSocket) {
        self.log(|| format!("{} connected", self.name(Side::Client, client)));
        let (on_read, on_write, on_event, on_connect) = (self.clone(), self.clone(), self.clone(), self.clone());
        let remote = tcp_connect(self.remote_host.as_str(), self.remote_port)
            .connect_timeout(CONNECT_TIMEOUT)
            .allow_half_open(true)
            .connect_cb(move |remote| on_connect.log(|| format!("{} connected", on_connect.name(Side::Remote, remote))))
            .read_cb(move |remote, data| on_read.relay(Side::Remote, remote, data))
            .write_cb(move |remote| on_write.drained(remote))
            .event_cb(move |ev| on_event.event(Side::Remote, ev))
            .spawn();
        match remote {
            Ok(remote) => {
                // Pair them: each one's socket data is the other. streamish
                // drops socket data when a socket closes, so the pair does
                // not keep itself alive.
                remote.set_data(client.clone());
                client.set_data(remote);
            }
            Err(e) => {
                eprintln!(
                    "simple_proxy: cannot connect to {}:{}: {e}",
                    self.remote_host, self.remote_port
                );
                client.close_force();
            }
        }
    }

    /// `read_cb` of both sides: what one side sends goes to the other.
    fn relay(&self, side: Side, sock: &TcpSocket, data: ReadData<'_>) {
        let bytes = data.into_bytes();
        self.log(|| format!("{} sent {} bytes", self.name(side, sock), bytes.len()));
        let Some(partner) = sock.data::<TcpSocket>() else {
            return;
        };
        if partner.write_bytes(bytes).is_err() {
            // The other side is gone: nothing more can be relayed.
            sock.close();
            return;
        }
        // Backpressure: stop reading while the other side cannot keep up;
        // its write_cb resumes us once its queue has drained.
        if partner.queued() >= partner.water_marks().0 && !sock.is_reading_paused() {
            self.log(|| {
                format!(
                    "{} paused: {} bytes wait to go out",
                    self.name(side, sock),
                    partner.queued()
                )
            });
            sock.pause_reading();
        }
    }

    /// `write_cb` of both sides: this socket's output has all gone out, so
    /// the side feeding it may read again.
    fn drained(&self, sock: &TcpSocket) {
        if let Some(partner) = sock.data::<TcpSocket>() {
            if partner.is_reading_paused() {
                self.log(|| "resumed: the other side caught up".to_owned());
                partner.resume_reading();
            }
        }
    }

    /// `event_cb` of both sides. streamish closes the socket the event is
    /// about once this returns; here the partner is closed too.
    fn event(&self, side: Side, ev: Event) {
        let Some(sock) = ev.socket() else {
            return;
        };
        self.log(|| format!("{}: {ev}", self.name(side, sock)));
        if matches!(side, Side::Remote) && ev.is_error() && !sock.is_connected() {
            // The remote side never came up, and the client cannot be told
            // why: say it here, with or without --debug.
            eprintln!("simple_proxy: remote {}:{}: {ev}", self.remote_host, self.remote_port);
        }
        let Some(partner) = sock.data::<TcpSocket>() else {
            // Half open with nobody to pass the end to: close this side.
            sock.close();
            return;
        };
        match ev {
            // Pass the half-close on: what was already relayed to the partner
            // still goes out, then it sees end of file; it may still answer.
            // This side closes once the partner ends too.
            Event::Eof { .. } => partner.shutdown_write(),
            // Gracefully: what was already relayed still goes out.
            Event::Timeout { .. } => partner.close(),
            // At once: the partner sees a reset, as the failure deserves.
            _ => partner.close_force(),
        }
    }
}

fn run(args: Args) -> io::Result<()> {
    let proxy = Arc::new(Proxy {
        remote_host: args.remote_host,
        remote_port: args.remote_port,
        debug: args.debug,
    });
    with_event_loop(|| -> io::Result<()> {
        // Catch the signals before saying we listen, so that whoever starts
        // us and signals right after reading that line stops us cleanly.
        let mut signals = Signals::new([Signal::Int, Signal::Term])?;
        let (on_accept, on_read, on_write, on_event) = (proxy.clone(), proxy.clone(), proxy.clone(), proxy.clone());
        let server = tcp_server("127.0.0.1", args.local_port)
            .allow_half_open(true)
            .connect_cb(move |client| on_accept.accept(client))
            .read_cb(move |client, data| on_read.relay(Side::Client, client, data))
            .write_cb(move |client| on_write.drained(client))
            .event_cb(move |ev| on_event.event(Side::Client, ev))
            .spawn()?;
        let mut stdout = io::stdout().lock();
        writeln!(stdout, "listening on {}", server.local_addr())?;
        stdout.flush()?;
        drop(stdout);
        if args.stats {
            streamish::spawn(print_stats(server.clone()))?;
        }
        streamish::spawn(async move {
            if let Some(signal) = signals.next().await {
                signal?;
            }
            proxy.log(|| "closing".to_owned());
            server.close();
            exit_event_loop();
            Ok(())
        })?;
        Ok(())
    })
}

/// `--stats`: the open connection counts now and every 2 seconds, for as
/// long as the server runs.
async fn print_stats(server: TcpServerHandle) -> io::Result<()> {
    let mut ticks = Timer::interval(STATS_EVERY);
    while !server.is_closed() {
        let stats = streamish::stats();
        {
            let mut stdout = io::stdout().lock();
            writeln!(
                stdout,
                "incoming: {}, outgoing: {}",
                stats.incoming_tcp, stats.outgoing_tcp
            )?;
            stdout.flush()?;
        }
        ticks.next().await;
    }
    Ok(())
}
