//! cl-async's `(stats)`: how many connections are open, per event loop
//! and in the whole process.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Open connections of one scope: an event loop, or the process.
#[derive(Debug, Default)]
pub(crate) struct Counts {
    incoming: AtomicUsize,
    outgoing: AtomicUsize,
}

impl Counts {
    fn get(&self) -> Stats {
        Stats {
            incoming_tcp: self.incoming.load(Ordering::Acquire),
            outgoing_tcp: self.outgoing.load(Ordering::Acquire),
        }
    }

    fn counter(&self, dir: Dir) -> &AtomicUsize {
        match dir {
            Dir::Incoming => &self.incoming,
            Dir::Outgoing => &self.outgoing,
        }
    }
}

static PROCESS: Counts = Counts {
    incoming: AtomicUsize::new(0),
    outgoing: AtomicUsize::new(0),
};

/// Open connection counts, as cl-async's `(stats)` reports them.
///
/// # Examples
///
/// ```
/// use streamish::{Stats, stats, tcp_connect, tcp_server, with_event_loop};
///
/// with_event_loop(|| {
///     let server = tcp_server("127.0.0.1", 0).spawn()?;
///     tcp_connect("127.0.0.1", server.local_addr().port())
///         .connect_cb(move |sock| {
///             // This loop's client is up (its server side may not be yet).
///             assert_eq!(stats().outgoing_tcp, 1);
///             sock.close();
///             server.close();
///         })
///         .spawn()?;
///     Ok(())
/// })
/// .unwrap();
/// assert_eq!(stats(), Stats::default()); // outside a loop: nothing
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Stats {
    /// Connections accepted by a `tcp_server` (or a `pipe_server`: cl-async
    /// counts pipes with TCP too) and still open.
    pub incoming_tcp: usize,
    /// Connections made by `tcp_connect` (or `pipe_connect`), established
    /// and still open.
    pub outgoing_tcp: usize,
}

/// The open connections of the current event loop (cl-async's `stats`);
/// all zero outside [`with_event_loop`](crate::with_event_loop). A
/// connection is counted once it is established (connected or accepted)
/// and uncounted the moment its driver ends, whether it closed, failed,
/// was aborted, or its driver was dropped. Drivers run on another
/// executor belong to no loop: [`process_stats`] counts them.
///
/// # Examples
///
/// ```
/// let s = streamish::stats();
/// println!("{} in, {} out", s.incoming_tcp, s.outgoing_tcp);
/// ```
pub fn stats() -> Stats {
    super::event_loop::current_counts().map_or_else(Stats::default, |c| c.get())
}

/// The open callback-face connections of the whole process: every event
/// loop's, and those of drivers run on other executors.
///
/// # Examples
///
/// ```
/// let all = streamish::process_stats();
/// assert!(all.incoming_tcp >= streamish::stats().incoming_tcp);
/// ```
pub fn process_stats() -> Stats {
    PROCESS.get()
}

/// Which way a connection was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dir {
    Incoming,
    Outgoing,
}

/// Counts one open connection for as long as it lives: in the process, and
/// in the event loop it was made on, if any.
#[derive(Debug)]
pub(crate) struct Counted(Dir, Option<Arc<Counts>>);

impl Counted {
    pub(crate) fn new(dir: Dir) -> Counted {
        PROCESS.counter(dir).fetch_add(1, Ordering::AcqRel);
        let lp = super::event_loop::current_counts();
        if let Some(c) = &lp {
            c.counter(dir).fetch_add(1, Ordering::AcqRel);
        }
        Counted(dir, lp)
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        PROCESS.counter(self.0).fetch_sub(1, Ordering::AcqRel);
        if let Some(c) = &self.1 {
            c.counter(self.0).fetch_sub(1, Ordering::AcqRel);
        }
    }
}
