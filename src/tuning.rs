//! Every tuning constant, side by side, each with the reason for its value
//! in a line. How each was measured is in `design/performance.md`; what
//! it bounds is in `design/decisions.md`.

use std::time::Duration;

// ----- reading -----

/// The first read size, and the smallest the adaptive size shrinks to
/// (hyper's rule: a few pages, enough for most requests).
pub(crate) const MIN_READ: usize = 8 * 1024;
/// The largest single read: what the peers read in, and what a loopback
/// segment train delivers at once.
pub(crate) const MAX_READ: usize = 64 * 1024;
/// What one turn of the callback driver reads in drained mode (in reads of
/// [`MAX_READ`] while they fill): the socket's usual backlog, so a writer on
/// the same thread keeps few bytes in flight.
pub(crate) const READ_TURN: usize = 512 * 1024;
/// Stream mode stops reading while this much is unread (TCP then pushes
/// back on the peer): enough for any message a line or record reader waits
/// for.
pub(crate) const INPUT_CAP: usize = 1024 * 1024;

// ----- writing -----

/// Default high-water mark: `poll_write` holds back past it. A few socket
/// buffers' worth keeps the kernel busy between two flushes.
pub const DEFAULT_HIGH_WATER: usize = 64 * 1024;
/// Default low-water mark: a writer held back resumes below it, so it is
/// not woken for every segment the kernel takes.
pub const DEFAULT_LOW_WATER: usize = 16 * 1024;
/// Default bound on what a connection may queue through writes that never
/// wait: a thousand times the high-water mark, past anything a live peer
/// leaves unread.
pub const DEFAULT_MAX_QUEUED: usize = 64 * 1024 * 1024;
/// How long a dropped connection's queued output may take to go out (when
/// no write timeout is set): long enough for a live peer to take a socket
/// buffer, short enough that a peer that stopped reading does not hold the
/// descriptor for minutes.
pub const DROP_LINGER: Duration = Duration::from_secs(30);
/// Buffers at least this large go straight to the kernel when nothing is
/// queued: the copy into the queue would cost more than the call.
pub(crate) const DIRECT_WRITE: usize = 16 * 1024;
/// `Bytes` shorter than this are copied into the queue's tail: a copy of a
/// few hundred bytes is cheaper than an iovec entry of its own.
pub(crate) const COPY_BELOW: usize = 4 * 1024;
/// The largest tail allocation made up front after a drain.
pub(crate) const MAX_HINT: usize = 1024 * 1024;
/// Slices per vectored write (as hyper, tokio and tokio-util use).
pub(crate) const MAX_IOV: usize = 64;
/// Write calls one flush makes before it yields, so one busy connection
/// cannot starve the others on its executor.
pub(crate) const FLUSH_BUDGET: usize = 16;
/// Bytes one flush poll hands the kernel before it yields: twice the
/// high-water mark, so a queue that just crossed it goes in one call while a
/// reader on the same thread still runs before megabytes are in flight.
pub(crate) const FLUSH_BYTES: usize = 2 * DEFAULT_HIGH_WATER;
/// Bytes `poll_write` hands the kernel before it yields (as tokio's
/// co-operative budget makes its sockets do): a reader on the same thread
/// runs while the bytes in flight still fit in cache.
pub(crate) const WRITE_BUDGET: usize = 256 * 1024;
/// How many times the send behind looks again while the queue keeps
/// growing before it flushes anyway: a writer still producing after that
/// is streaming, and what it has goes.
pub(crate) const BEHIND_LOOKS: u8 = 4;
/// How long the send behind lets a writer that keeps producing go on before
/// looking again: a bound on how old its bytes get, far below Nagle's
/// delays, and long enough for a streaming writer to fill whole sends.
pub(crate) const BEHIND_TICK: Duration = Duration::from_micros(500);

// ----- buffer reuse -----

/// Buffers one thread keeps for the next busy connection.
pub(crate) const POOL_KEEP: usize = 8;
/// The smallest buffer kept: the first read size.
pub(crate) const POOL_SMALLEST: usize = MIN_READ;
/// The largest buffer kept: an output tail filled to the default high-water
/// mark has grown to half this.
pub(crate) const POOL_LARGEST: usize = 256 * 1024;
/// The most bytes one thread keeps over all its buffers.
pub(crate) const POOL_BUDGET: usize = 2 * POOL_LARGEST;

// ----- the callback driver and the event loop -----

/// Turns one poll of a callback driver may take while each finds work: two
/// let a request and its reply cost one poll; more only keep bytes in
/// flight and the loop from the reactor.
pub(crate) const TURNS: usize = 2;
/// A poll stops taking turns once this much moved (see [`TURNS`]).
pub(crate) const TURN_BYTES: usize = 16 * 1024;
/// How long the event loop runs ready tasks before it polls the reactor:
/// left longer, async-io's helper thread takes the reactor over and every
/// readiness event becomes a cross-thread wake-up.
pub(crate) const REACT_EVERY: Duration = Duration::from_micros(150);
/// The longest the loop runs between reactor polls while one task alone
/// keeps it busy: that task's thread would only find other threads'
/// events, which those threads take themselves.
pub(crate) const REACT_EVERY_ALONE: Duration = Duration::from_millis(100);
/// Windows in a row one task must fill alone before the loop polls the
/// reactor less often: one is common on one thread too (a reader waiting
/// while the writer runs).
pub(crate) const ALONE_WINDOWS: u32 = 8;
/// How long a server waits before accepting again after running out of
/// descriptors or memory: accepting at once would only fail again.
pub(crate) const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);
/// Connections one poll of the accept loop takes before it lets other tasks
/// run, so a flood of connects cannot starve the open connections.
pub(crate) const ACCEPT_BUDGET: usize = 64;
/// The listen backlog when none is given (cl-async's default).
pub const DEFAULT_BACKLOG: u32 = 128;

/// A Unix-domain connect to a listener whose backlog is full is retried
/// after this long at first, then twice as long each time up to
/// [`PIPE_RETRY_MAX`]: Linux refuses it with `EAGAIN` and gives no
/// readiness event for the backlog having room again.
#[cfg(unix)]
pub(crate) const PIPE_RETRY_MIN: Duration = Duration::from_millis(1);

/// The longest wait between two connect attempts to a full backlog.
#[cfg(unix)]
pub(crate) const PIPE_RETRY_MAX: Duration = Duration::from_millis(50);

/// How long [`TlsListener`](crate::TlsListener) lets a client take over
/// its handshake: one that never sends its part must not hold `accept`
/// for good, and a handshake is a few round trips, which even a lossy
/// path across the world finishes in well under this.
#[cfg(feature = "tls")]
pub const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
