//! cl-async's `(stats)`: how many connections are open.

use std::sync::atomic::{AtomicUsize, Ordering};

static INCOMING: AtomicUsize = AtomicUsize::new(0);
static OUTGOING: AtomicUsize = AtomicUsize::new(0);

/// Open connection counts, as cl-async's `(stats)` reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Stats {
    /// Connections accepted by a `tcp_server` and still open.
    pub incoming_tcp: usize,
    /// Connections made by `tcp_connect`, established and still open.
    pub outgoing_tcp: usize,
}

/// The open callback-face connections of this process (cl-async's
/// `stats`). A connection is counted once it is established (connected or
/// accepted) and uncounted the moment its driver ends, whether it closed,
/// failed, was aborted, or its driver was dropped.
///
/// # Examples
///
/// ```
/// let s = streamish::stats();
/// println!("{} in, {} out", s.incoming_tcp, s.outgoing_tcp);
/// ```
pub fn stats() -> Stats {
    Stats {
        incoming_tcp: INCOMING.load(Ordering::Acquire),
        outgoing_tcp: OUTGOING.load(Ordering::Acquire),
    }
}

/// Which way a connection was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dir {
    Incoming,
    Outgoing,
}

/// Counts one open connection for as long as it lives.
#[derive(Debug)]
pub(crate) struct Counted(Dir);

impl Counted {
    pub(crate) fn new(dir: Dir) -> Counted {
        counter(dir).fetch_add(1, Ordering::AcqRel);
        Counted(dir)
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        counter(self.0).fetch_sub(1, Ordering::AcqRel);
    }
}

fn counter(dir: Dir) -> &'static AtomicUsize {
    match dir {
        Dir::Incoming => &INCOMING,
        Dir::Outgoing => &OUTGOING,
    }
}
