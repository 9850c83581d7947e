//! The implementations, each written the way its own documentation shows,
//! and which of them take part in what.

use std::io;
use std::time::Duration;

use crate::harness::Sizes;

mod async_io;
mod callback;
mod futures_io;
mod smol;
mod std_net;
mod streamish;
#[cfg(feature = "tls")]
mod tls;
mod tokio;

pub const IMPLS: &[&str] = &[
    "streamish",
    "streamish-cb",
    "streamish-tokio",
    "async-io",
    "async-io-buf",
    "smol",
    "tokio",
    "tokio-buf",
    "std",
    "futures-rustls",
];

/// Whether a workload runs over TLS (built with `--features tls` only).
pub fn is_tls(workload: &str) -> bool {
    workload.starts_with("tls-")
}

/// Which implementations take part in a workload and model.
pub fn takes_part(workload: &str, model: &str, imp: &str) -> bool {
    // TLS: streamish's `TlsStream` against futures-rustls, and only them.
    if is_tls(workload) || imp == "futures-rustls" {
        return is_tls(workload) && matches!(imp, "streamish" | "futures-rustls");
    }
    match imp {
        "streamish-tokio" => workload != "idle",
        "async-io-buf" | "tokio-buf" => matches!(workload, "bulk-1k" | "small-writes"),
        // std has no one-thread model (blocking sockets need a thread per
        // side); idle is measured once, under `1t`, with a thread per
        // connection.
        "std" => model == "2t" || workload == "idle",
        _ => true,
    }
}

/// Runs timed workload `w` once with `imp`, on one thread or two: the time
/// of the timed part.
pub fn run(w: &str, m: &str, imp: &str, sizes: &Sizes) -> io::Result<Duration> {
    let two = m == "2t";
    if is_tls(w) {
        return run_tls(w, two, imp, sizes);
    }
    match imp {
        "streamish" => futures_io::run::<streamish::Streamish>(w, two, false, sizes),
        "streamish-tokio" => {
            futures_io::on_tokio(true);
            futures_io::run::<streamish::Streamish>(w, two, false, sizes)
        }
        "async-io" => futures_io::run::<async_io::AsyncIo>(w, two, false, sizes),
        "async-io-buf" => futures_io::run::<async_io::AsyncIo>(w, two, true, sizes),
        "smol" => futures_io::run::<smol::Smol>(w, two, false, sizes),
        "tokio" => tokio::run(w, two, false, sizes),
        "tokio-buf" => tokio::run(w, two, true, sizes),
        "std" => std_net::run(w, sizes),
        "streamish-cb" => callback::run(w, two, sizes),
        _ => Err(io::Error::other("unknown implementation")),
    }
}

#[cfg(feature = "tls")]
fn run_tls(w: &str, two: bool, imp: &str, sizes: &Sizes) -> io::Result<Duration> {
    match imp {
        "streamish" => futures_io::run::<tls::StreamishTls>(w, two, false, sizes),
        "futures-rustls" => futures_io::run::<tls::FuturesRustls>(w, two, false, sizes),
        _ => Err(io::Error::other("unknown TLS implementation")),
    }
}

#[cfg(not(feature = "tls"))]
fn run_tls(w: &str, _: bool, _: &str, _: &Sizes) -> io::Result<Duration> {
    Err(io::Error::other(format!("{w} needs --features tls")))
}

/// `n` idle connections served by `imp`: heap bytes per connection.
pub fn idle(imp: &str, n: usize) -> io::Result<f64> {
    match imp {
        "streamish" => futures_io::idle::<streamish::Streamish>(n),
        "async-io" => futures_io::idle::<async_io::AsyncIo>(n),
        "smol" => futures_io::idle::<smol::Smol>(n),
        "tokio" => tokio::idle(n),
        "std" => std_net::idle(n),
        "streamish-cb" => callback::idle(n),
        _ => Err(io::Error::other("no idle variant")),
    }
}
