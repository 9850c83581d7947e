//! The connection state every handle shares.
//!
//! A [`Conn`] owns the socket (an `Arc<Async<TcpStream>>`, kept in both
//! sides so each direction reaches it under its own lock), the input buffer
//! and the output queue. [`Socket`](crate::Socket) and the stream
//! types are thin handles around an `Arc<Conn>`; whichever task polls a
//! handle moves bytes between the kernel and the buffers. No background task
//! exists on the await face; on the callback face the connection's driver
//! is the task that polls.
//!
//! Locking: the input and the output side each have a `Mutex`, so a reader
//! and a writer on different tasks never contend. Neither lock is held
//! across an `.await`; a lock is held across one system call at most. The
//! order, where two are held at once: input, then output, then `ctl`.
//!
//! Sending behind: bytes a write queues go out without another call. A
//! write that makes the queue non-empty, on a connection no callback driver
//! polls, arms a writability wait whose waker is the connection itself
//! ([`Conn`]'s `Wake`): whoever runs async-io's reactor (the task's own
//! `block_on` as it goes to sleep, or async-io's thread) finds the socket
//! writable and flushes. Writes made before that coalesce.

use std::any::Any;
use std::future::Future;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Wake, Waker, ready};
use std::time::Duration;

use async_io::{ReadableOwned, Timer, WritableOwned};
use bytes::Bytes;

use crate::buf::{InputBuf, OutputQueue};
use crate::event::Event;
use crate::transport::{Io, Sock};
use crate::tuning::{
    BEHIND_LOOKS, BEHIND_TICK, DEFAULT_HIGH_WATER, DEFAULT_LOW_WATER, DEFAULT_MAX_QUEUED, DIRECT_WRITE, DROP_LINGER,
    FLUSH_BUDGET, FLUSH_BYTES, WRITE_BUDGET,
};
use crate::tuning::{MAX_IOV, MIN_READ};
use crate::wait::{Ids, WaitId, Waiters, poll_ready};

pub(crate) struct Conn {
    /// Keys for the handles that wait on this connection.
    pub(crate) ids: Ids,
    /// Live [`Socket`](crate::Socket) values (every handle holds
    /// one): when the last goes, queued output is delivered and the
    /// connection closed.
    handles: AtomicU32,
    input: Mutex<InputSide>,
    output: Mutex<OutputSide>,
    /// Bytes queued for output, readable without the output lock, so the
    /// read path can tell cheaply whether it has output to push.
    out_len: AtomicUsize,
    /// Graceful close requested: no new writes, queued output still goes.
    closing: AtomicBool,
    /// Closed or aborted: every operation fails with `Closed`.
    closed: AtomicBool,
    /// The callback driver stopped reading because the input buffer is
    /// full; consuming input wakes it.
    input_full: AtomicBool,
    /// Set while a callback of this connection runs: writes then need not
    /// wake the driver, which flushes when the callback returns.
    in_callback: AtomicBool,
    /// A write went straight to the kernel since the task last waited (or
    /// read): the next writes queue and arm a send behind, so a burst
    /// costs one direct `send` and one vectored flush, while a lone write
    /// (a request before its reply is read) costs one `send`.
    direct: AtomicBool,
    /// Reading is paused (`Socket::pause_reading`).
    paused: AtomicBool,
    /// A callback driver polls this connection (set when it is made,
    /// cleared when it is dropped): it flushes, so writes wake it instead
    /// of arming a send behind.
    has_driver: AtomicBool,
    /// Callback-face settings, the driver's waker and the socket data: one
    /// lock for what changes rarely, so an idle connection stays small.
    pub(crate) ctl: Mutex<crate::ctl::Ctl>,
}

struct InputSide {
    io: Option<Io>,
    buf: InputBuf,
    eof: bool,
    /// The last read was short: the kernel is drained, so wait for
    /// readiness before reading again rather than spend a system call on
    /// `EAGAIN` (tokio's short-read rule).
    drained: bool,
    error: Option<io::ErrorKind>,
    /// The tasks waiting to read (or for the connection, before it is up).
    waiters: Waiters,
    total: u64,
    /// The wait for readability in progress (see [`poll_ready`]).
    readable: Option<ReadableOwned<Sock>>,
}

struct OutputSide {
    io: Option<Io>,
    queue: OutputQueue,
    /// The water marks: at most `u32::MAX` (checked when set), so that an
    /// idle connection stays small.
    high: u32,
    low: u32,
    /// Passed the high-water mark; writers wait until below the low one.
    held: bool,
    /// The write side is shut down (half-close done).
    shut: bool,
    /// A half-close was asked for without waiting (`Socket::shutdown_write`):
    /// writes are refused, and the next flush shuts down once drained.
    shut_requested: bool,
    /// Bytes handed to the kernel since `poll_write` last yielded (see
    /// [`WRITE_BUDGET`]).
    run: u32,
    error: Option<io::ErrorKind>,
    /// The tasks waiting to write or flush (for room in the kernel, below
    /// the low-water mark, or for the connection).
    waiters: Waiters,
    total: u64,
    /// The wait for writability in progress (see [`poll_ready`]). Boxed,
    /// unlike the read wait: a writer waits only when the kernel's buffer
    /// is full, and an idle connection then carries 8 bytes, not 56.
    writable: Option<Box<WritableOwned<Sock>>>,
    /// Drains completed since the connection opened (the callback face's
    /// `write_cb` fires once per drain).
    drains: u64,
    /// A send behind is armed: the writability wait is polled with the
    /// connection's own waker, which flushes (see the module doc).
    armed: bool,
    /// Bytes accepted into the queue (sent plus queued, truncated) when the
    /// send behind last looked, and how many looks found it grown.
    seen: u32,
    looks: u8,
    /// Every handle is gone, or a close was asked for with no task or
    /// driver to finish it: the send behind delivers what is queued, then
    /// closes.
    orphan: bool,
    /// The orphan's delivery gives up when this fires (see [`DROP_LINGER`]);
    /// otherwise the send behind's next look ([`BEHIND_TICK`]).
    timer: Option<Box<Timer>>,
    /// Past this many queued bytes a write that never waits fails the
    /// connection (see [`DEFAULT_MAX_QUEUED`]); at most `u32::MAX`, so an
    /// idle connection stays small.
    max_queued: u32,
    /// The small-write fast path: a write may join the queue without
    /// further checks while the queue stays shorter than this (0: it may
    /// not). Set to the high-water mark by a write the slow path accepted
    /// into a queue that then holds output (so a flush is coming), and to 0
    /// by everything that must refuse a write or see it: holding back at
    /// the high-water mark, a drained queue, an error, a half-close, a
    /// close, new water marks. What relaxes a refusal leaves it at 0; the
    /// next write takes the slow path and sets it again.
    fast_until: u32,
}

impl OutputSide {
    /// Bytes ever accepted into the queue, truncated: changes only when a
    /// write joins it (a flush moves bytes from the queue to the total).
    fn accepted(&self) -> u32 {
        (self.total + self.queue.len() as u64) as u32
    }

    /// Counts `n` bytes the kernel took: in the total, and against
    /// [`WRITE_BUDGET`].
    fn sent(&mut self, n: usize) {
        self.total += n as u64;
        self.run = self.run.saturating_add(n.try_into().unwrap_or(u32::MAX));
    }

    /// The small-write fast path applies: a write of `len` bytes joins a
    /// queue that already holds output and stays below the high-water mark,
    /// and nothing refuses it (see [`OutputSide::fast_until`]).
    #[inline]
    fn joins_queue(&self, len: usize) -> bool {
        self.queue.len() + len < self.fast_until as usize
    }

    /// Stops the fast path until the slow path has looked at a write again.
    fn refuse_fast(&mut self) {
        self.fast_until = 0;
    }

    /// Opens the fast path after the slow path accepted a write (so
    /// nothing refuses one): if the queue holds output, a flush is coming,
    /// and unless the writers are held back, small writes may join it.
    fn arm_fast(&mut self) {
        if !self.queue.is_empty() && !self.held {
            self.fast_until = self.high;
        }
    }
}

fn store_waker(slot: &mut Option<Waker>, cx: &Context<'_>) {
    match slot {
        Some(w) => w.clone_from(cx.waker()),
        None => *slot = Some(cx.waker().clone()),
    }
}

fn sticky(kind: io::ErrorKind) -> io::Error {
    match kind {
        io::ErrorKind::UnexpectedEof => Event::Eof { socket: None }.into(),
        io::ErrorKind::OutOfMemory => Event::QueueFull { socket: None }.into(),
        kind => io::Error::new(kind, "the connection failed earlier"),
    }
}

/// The connection is its writability waits' waker: the reactor found the
/// socket writable (or the drop linger ran out) while a send behind was
/// armed, or a task waits for room.
impl Wake for Conn {
    fn wake(self: Arc<Self>) {
        self.on_writable();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.on_writable();
    }
}

impl Conn {
    pub(crate) fn new(io: Option<Io>) -> Arc<Conn> {
        Arc::new(Conn {
            ids: Ids::default(),
            handles: AtomicU32::new(0),
            input: Mutex::new(InputSide {
                io: io.clone(),
                buf: InputBuf::new(),
                eof: false,
                drained: false,
                error: None,
                waiters: Waiters::None,
                total: 0,
                readable: None,
            }),
            output: Mutex::new(OutputSide {
                io,
                queue: OutputQueue::default(),
                high: DEFAULT_HIGH_WATER as u32,
                low: DEFAULT_LOW_WATER as u32,
                held: false,
                shut: false,
                shut_requested: false,
                error: None,
                waiters: Waiters::None,
                total: 0,
                writable: None,
                drains: 0,
                run: 0,
                fast_until: 0,
                armed: false,
                seen: 0,
                looks: 0,
                orphan: false,
                timer: None,
                max_queued: DEFAULT_MAX_QUEUED as u32,
            }),
            out_len: AtomicUsize::new(0),
            closing: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            in_callback: AtomicBool::new(false),
            has_driver: AtomicBool::new(false),
            direct: AtomicBool::new(false),
            paused: AtomicBool::new(false),
            input_full: AtomicBool::new(false),
            ctl: Mutex::new(Default::default()),
        })
    }

    fn input(&self) -> MutexGuard<'_, InputSide> {
        // A panic while a side is locked cannot leave its buffers torn (no
        // user code runs under these locks), so poisoning is ignored.
        self.input.lock().unwrap_or_else(|e| e.into_inner())
    }

    #[inline]
    fn output(&self) -> MutexGuard<'_, OutputSide> {
        self.output.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Attaches the connected socket (the callback face connects after the
    /// handle exists) and wakes whoever waits on either side.
    pub(crate) fn attach(self: &Arc<Self>, io: Io) {
        let (w1, w2) = {
            let mut i = self.input();
            let mut o = self.output();
            if self.closed.load(Ordering::Acquire) {
                return;
            }
            i.io = Some(io.clone());
            o.io = Some(io);
            if !o.queue.is_empty() || self.closing.load(Ordering::Acquire) {
                self.arm(&mut o);
            }
            (i.waiters.take(), o.waiters.take())
        };
        w1.wake();
        w2.wake();
        self.wake_driver();
    }

    /// The socket, if connected. Both sides hold the same one.
    pub(crate) fn io(&self) -> Option<Io> {
        self.output().io.clone()
    }

    // ----- handles -----

    /// A new [`Socket`](crate::Socket) value exists.
    pub(crate) fn handle_made(&self) {
        self.handles.fetch_add(1, Ordering::Relaxed);
    }

    /// A [`Socket`](crate::Socket) value is gone; the last one
    /// delivers what is queued and closes.
    pub(crate) fn handle_dropped(self: &Arc<Self>) {
        if self.handles.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.orphaned();
        }
    }

    /// Handle `id` is gone: its tasks no longer wait.
    pub(crate) fn forget(&self, id: WaitId) {
        let mut inp = self.input();
        inp.waiters.remove(id);
        if inp.waiters.is_empty() {
            // Nobody waits to read: let go of the last task's waker, which
            // the readiness wait holds (the output side's holds only the
            // connection's own).
            inp.readable = None;
        }
        drop(inp);
        self.output().waiters.remove(id);
    }

    /// Every handle is gone: nothing queued is lost, and the descriptor is
    /// released once it is out (or after the linger), without blocking.
    fn orphaned(self: &Arc<Self>) {
        if self.is_closed() {
            return;
        }
        let mut out = self.output();
        if out.io.is_none() {
            // Never connected: nothing can go out.
            drop(out);
            self.close_now();
            return;
        }
        out.orphan = true;
        self.deliver_then_close(out);
    }

    /// Releases the socket: the end of a graceful close whose output is all
    /// out. Closing the descriptor sends the FIN, so a peer that sees end of
    /// file knows the descriptor is gone.
    fn finish_close(self: &Arc<Self>) {
        self.release(false);
    }

    /// Arms a send behind: the reactor calls [`Conn::on_writable`] once the
    /// socket is writable (at once, unless the kernel's buffer is full).
    /// Nothing to do while a driver polls (it flushes) or before the socket
    /// is attached (`attach` arms).
    fn arm(self: &Arc<Self>, out: &mut OutputSide) {
        if out.armed || (self.has_driver.load(Ordering::Acquire) && !out.orphan) {
            return;
        }
        let Some(io) = out.io.clone() else { return };
        out.armed = true;
        out.seen = out.accepted();
        out.looks = 0;
        // A wait that fired already is taken as it is: `on_writable` runs
        // at the reactor's next turn either way.
        let _ = self.poll_writable(out, &io);
    }

    /// Polls the writability wait with the connection's waker.
    fn poll_writable(self: &Arc<Self>, out: &mut OutputSide, io: &Io) -> Poll<io::Result<()>> {
        let waker = Waker::from(self.clone());
        let wait = out.writable.get_or_insert_with(|| Box::new(io.writable()));
        let res = Pin::new(&mut **wait).poll(&mut Context::from_waker(&waker));
        if res.is_ready() {
            out.writable = None;
        }
        res
    }

    /// Polls one of the connection's timers with its waker: whether it fired.
    fn poll_timer(self: &Arc<Self>, timer: &mut Timer) -> bool {
        let waker = Waker::from(self.clone());
        Pin::new(timer).poll(&mut Context::from_waker(&waker)).is_ready()
    }

    /// The socket is writable (or the linger timer fired): an armed send
    /// behind flushes, a graceful close or an orphan finishes once the
    /// queue is out, and the tasks waiting for room are woken.
    fn on_writable(self: &Arc<Self>) {
        let mut out = self.output();
        let mut finish = false;
        let mut give_up = false;
        if out.writable.is_some() {
            if let Some(io) = out.io.clone() {
                // Consumes the event, or keeps waiting (a timer woke us).
                let _ = self.poll_writable(&mut out, &io);
            }
        }
        let mut ticking = !out.orphan && out.timer.as_mut().is_some_and(|t| !self.poll_timer(t));
        if out.armed && out.writable.is_none() && !ticking && !out.orphan && out.looks < BEHIND_LOOKS {
            let accepted = out.accepted();
            if accepted != out.seen {
                // The writer is mid-burst: look again later.
                out.seen = accepted;
                out.looks += 1;
                if out.looks == 1 {
                    if let Some(io) = out.io.clone() {
                        let _ = self.poll_writable(&mut out, &io);
                    }
                } else {
                    let mut timer = Box::new(Timer::after(BEHIND_TICK));
                    ticking = !self.poll_timer(&mut timer);
                    out.timer = Some(timer);
                }
            }
        }
        if out.armed && out.writable.is_none() && !ticking {
            if !out.orphan {
                // The look's tick, if any; an orphan's timer is its linger.
                out.timer = None;
            }
            out.armed = false;
            // A reactor turn: the writers' burst is over.
            self.end_burst();
            let closing = out.orphan;
            loop {
                match self.flush_locked(&mut out, None) {
                    Poll::Ready(Ok(())) => {
                        // TLS says `close_notify` before the connection closes.
                        let notify = closing && out.io.as_ref().is_some_and(Io::is_tls);
                        if (out.shut_requested || notify)
                            && !out.shut
                            && self.poll_shutdown_locked(&mut out, None).is_pending()
                        {
                            out.armed = true;
                            break;
                        }
                        finish = closing;
                        break;
                    }
                    Poll::Ready(Err(_)) => {
                        // Sticky: the next operation reports it.
                        finish = closing;
                        break;
                    }
                    Poll::Pending => {
                        let Some(io) = out.io.clone() else { break };
                        if self.poll_writable(&mut out, &io).is_pending() {
                            out.armed = true;
                            break;
                        }
                    }
                }
            }
        }
        if out.orphan && !finish {
            give_up = out.timer.as_mut().is_some_and(|t| self.poll_timer(t));
        }
        let waiters = out.waiters.take();
        drop(out);
        waiters.wake();
        if finish {
            if !self.is_closed() {
                self.finish_close();
            }
        } else if give_up {
            self.close_now();
        }
    }

    pub(crate) fn is_connected(&self) -> bool {
        self.output().io.is_some()
    }

    #[inline]
    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    #[inline]
    pub(crate) fn is_closing(&self) -> bool {
        self.closing.load(Ordering::Acquire) || self.is_closed()
    }

    // ----- the callback driver's hooks -----

    pub(crate) fn ctl(&self) -> MutexGuard<'_, crate::ctl::Ctl> {
        self.ctl.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The driver's turn begins: records its waker (for [`Conn::wake_driver`])
    /// and returns the settings, under one lock.
    pub(crate) fn driver_turn(&self, cx: &Context<'_>) -> (Option<Duration>, Option<Duration>, bool) {
        let mut ctl = self.ctl();
        if !ctl.driver.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            store_waker(&mut ctl.driver, cx);
        }
        let (read, write) = ctl.timeouts();
        (read, write, self.paused.load(Ordering::Acquire))
    }

    /// A callback driver polls this connection from now on.
    pub(crate) fn driver_made(&self) {
        // SeqCst with `queued_more`: a writer that does not see the flag
        // arms a send behind, one that does wakes the driver.
        self.has_driver.store(true, Ordering::SeqCst);
    }

    /// The callback driver is gone (it ended, or was dropped with its
    /// task): nobody reads any more, so the connection closes gracefully,
    /// delivering what is queued.
    pub(crate) fn driver_dropped(self: &Arc<Self>) {
        self.has_driver.store(false, Ordering::SeqCst);
        self.ctl().driver = None;
        if self.is_closed() {
            return;
        }
        if !self.is_connected() {
            self.close_now();
            return;
        }
        self.closing.store(true, Ordering::Release);
        let mut out = self.output();
        out.refuse_fast();
        out.orphan = true;
        self.deliver_then_close(out);
    }

    /// The end of a connection nobody drives any more (every handle gone, or
    /// its driver dropped): what the kernel takes now goes at once (the
    /// process may be about to exit), and if that was all, the descriptor
    /// is released now, breaking any cycle through the socket data; else
    /// the send behind delivers the rest, bounded by the linger.
    fn deliver_then_close(self: &Arc<Self>, mut out: MutexGuard<'_, OutputSide>) {
        if let Poll::Ready(res) = self.flush_locked(&mut out, None) {
            // TLS says `close_notify` before the socket goes, or
            // the peer sees a truncated stream; if it does not fit yet, the
            // send behind below finishes it.
            let notify = res.is_ok() && !out.shut && out.io.as_ref().is_some_and(Io::is_tls);
            if !notify || self.poll_shutdown_locked(&mut out, None).is_ready() {
                drop(out);
                self.finish_close();
                return;
            }
        }
        let linger = self.ctl().timeouts().1.unwrap_or(DROP_LINGER);
        out.timer = Some(Box::new(Timer::after(linger)));
        out.armed = false;
        self.arm(&mut out);
        drop(out);
        // The linger timer needs the connection's waker too.
        self.on_writable();
    }

    /// Wakes the callback driver: another task queued output, asked to
    /// close, or changed the connection's settings.
    pub(crate) fn wake_driver(&self) {
        let w = self.ctl().driver.clone();
        if let Some(w) = w {
            w.wake();
        }
    }

    /// Pauses or resumes reading, and wakes the driver to see it.
    pub(crate) fn set_paused(&self, on: bool) {
        self.paused.store(on, Ordering::Release);
        self.wake_driver();
    }

    pub(crate) fn is_paused(&self) -> bool {
        self.paused.load(Ordering::Acquire)
    }

    pub(crate) fn set_input_full(&self, on: bool) {
        self.input_full.store(on, Ordering::Release);
    }

    /// Input was consumed: a driver that stopped reading on a full buffer
    /// may read again.
    fn input_consumed(&self) {
        if self.input_full.load(Ordering::Acquire) && self.input_full.swap(false, Ordering::AcqRel) {
            self.wake_driver();
        }
    }

    pub(crate) fn set_in_callback(&self, on: bool) {
        // SeqCst with `queued_more` and `queued`: a writer on another thread
        // either sees the callback still running (and the driver, after
        // clearing the flag, sees its bytes queued) or sees it over and
        // wakes the driver. Weaker orderings allow both to miss.
        self.in_callback.store(on, Ordering::SeqCst);
    }

    // ----- socket data -----

    pub(crate) fn data(&self) -> Option<Arc<dyn Any + Send + Sync>> {
        self.ctl().data.clone()
    }

    pub(crate) fn set_data(&self, data: Option<Arc<dyn Any + Send + Sync>>) {
        // The old value is dropped after the lock is released: its drop may
        // reach this connection again (a proxy's pair refers to each other).
        let old = std::mem::replace(&mut self.ctl().data, data);
        drop(old);
    }

    // ----- input -----

    pub(crate) fn buffered(&self) -> usize {
        self.input().buf.len()
    }

    pub(crate) fn at_eof(&self) -> bool {
        self.input().eof
    }

    pub(crate) fn bytes_read(&self) -> u64 {
        self.input().total
    }

    pub(crate) fn append_input(&self, data: &[u8]) -> io::Result<()> {
        if self.is_closed() {
            return Err(self.closed_error());
        }
        self.input().buf.append(data);
        Ok(())
    }

    pub(crate) fn clear_input(&self) {
        self.input().buf.clear();
        self.input_consumed();
    }

    /// cl-async's `read-sequence`: buffered bytes plus one non-blocking read
    /// from the kernel. Never waits; `Ok(0)` when nothing is there (see
    /// [`Conn::at_eof`] to tell end of file apart).
    pub(crate) fn read_now(&self, out: &mut [u8]) -> io::Result<usize> {
        if self.is_closed() {
            return self.read_left(out);
        }
        let mut inp = self.input();
        let mut n = inp.buf.copy_to(out);
        if n > 0 {
            // Woken only once the bytes are out of the buffer, or a driver
            // that stopped on a full buffer could look, find it still full,
            // and stop for good.
            drop(inp);
            self.input_consumed();
            inp = self.input();
        }
        if n == out.len() || inp.eof {
            return Ok(n);
        }
        if let Some(kind) = inp.error {
            return if n > 0 { Ok(n) } else { Err(sticky(kind)) };
        }
        let Some(io) = inp.io.clone() else {
            return Ok(n);
        };
        match io.read_slice(&mut out[n..]) {
            Ok(0) => inp.eof = true,
            Ok(k) => {
                inp.total += k as u64;
                inp.drained = false;
                n += k;
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => {
                inp.error = Some(e.kind());
                if n == 0 {
                    return Err(e);
                }
            }
        }
        Ok(n)
    }

    /// A read from a closed connection: what was buffered before it
    /// closed, then `Closed`.
    fn read_left(&self, out: &mut [u8]) -> io::Result<usize> {
        let mut inp = self.input();
        if !inp.buf.is_empty() || out.is_empty() {
            return Ok(inp.buf.copy_to(out));
        }
        drop(inp);
        Err(self.closed_error())
    }

    /// The error of an operation on a closed connection: the event that
    /// failed its connect if one did (the await side learns why), else
    /// `Closed`. Takes the `ctl` lock: call it holding no lock but the
    /// output side's.
    pub(crate) fn closed_error(&self) -> io::Error {
        match self.ctl().failure() {
            Some(ev) => ev.into(),
            None => Event::closed(),
        }
    }

    /// One read from the kernel into the input buffer, waiting for
    /// readiness with `cx` when the kernel has nothing. Ready(Ok(0)) is end
    /// of file.
    fn poll_fill_locked(&self, inp: &mut InputSide, id: WaitId, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        if let Some(kind) = inp.error {
            return Poll::Ready(Err(sticky(kind)));
        }
        if inp.eof {
            return Poll::Ready(Ok(0));
        }
        let Some(io) = inp.io.clone() else {
            if self.is_closed() {
                return Poll::Ready(Err(Event::closed()));
            }
            // Not connected yet: `attach` wakes us.
            inp.waiters.register(id, cx);
            return Poll::Pending;
        };
        loop {
            if inp.drained {
                match readable(inp, &io, id, cx) {
                    Poll::Ready(Ok(())) => inp.drained = false,
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                    Poll::Pending => {
                        // Going idle: an empty buffer gives its memory back.
                        inp.buf.release_if_empty();
                        return Poll::Pending;
                    }
                }
            }
            let want = inp.buf.next_read();
            match io.read_into(inp.buf.prepare()) {
                Ok(0) => {
                    inp.eof = true;
                    return Poll::Ready(Ok(0));
                }
                Ok(n) => {
                    inp.buf.record(n);
                    inp.total += n as u64;
                    inp.drained = io.drained_after(n, want);
                    return Poll::Ready(Ok(n));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => inp.drained = true,
                Err(e) => {
                    inp.error = Some(e.kind());
                    return Poll::Ready(Err(e));
                }
            }
        }
    }

    /// futures-io `poll_read`: buffered bytes first; a large enough `out`
    /// with nothing buffered is read into directly, skipping the copy.
    pub(crate) fn poll_read(&self, id: WaitId, cx: &mut Context<'_>, out: &mut [u8]) -> Poll<io::Result<usize>> {
        if self.is_closed() {
            return Poll::Ready(self.read_left(out));
        }
        let mut inp = self.input();
        if !inp.buf.is_empty() || out.is_empty() {
            let n = inp.buf.copy_to(out);
            drop(inp);
            self.input_consumed();
            return Poll::Ready(Ok(n));
        }
        if out.len() >= MIN_READ && inp.error.is_none() && !inp.eof {
            if let Some(io) = inp.io.clone() {
                loop {
                    if inp.drained {
                        ready!(readable(&mut inp, &io, id, cx))?;
                        inp.drained = false;
                    }
                    match io.read_slice(out) {
                        Ok(n) => {
                            inp.eof = n == 0;
                            inp.total += n as u64;
                            inp.drained = io.drained_after(n, out.len());
                            return Poll::Ready(Ok(n));
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => inp.drained = true,
                        Err(e) => {
                            inp.error = Some(e.kind());
                            return Poll::Ready(Err(e));
                        }
                    }
                }
            }
        }
        match self.poll_fill_locked(&mut inp, id, cx) {
            Poll::Ready(Ok(_)) => Poll::Ready(Ok(inp.buf.copy_to(out))),
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        }
    }

    /// Takes everything buffered, reading first if nothing is. `Ok(None)`
    /// is end of file. Used by `poll_fill_buf` and the drained callback mode.
    pub(crate) fn poll_take(&self, id: WaitId, cx: &mut Context<'_>) -> Poll<io::Result<Option<Bytes>>> {
        if self.is_closed() {
            let left = self.input().buf.take_all();
            return Poll::Ready(match left.is_empty() {
                true => Err(self.closed_error()),
                false => Ok(Some(left)),
            });
        }
        let mut inp = self.input();
        if inp.buf.is_empty() {
            match self.poll_fill_locked(&mut inp, id, cx) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Ok(None)),
                Poll::Ready(Ok(_)) => {}
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
        let bytes = inp.buf.take_all();
        drop(inp);
        self.input_consumed();
        Poll::Ready(Ok(Some(bytes)))
    }

    /// Reads into the input buffer without taking anything out (the stream
    /// mode of the callback face). Ready(Ok(0)) is end of file.
    pub(crate) fn poll_fill(&self, id: WaitId, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        if self.is_closed() {
            return Poll::Ready(Err(self.closed_error()));
        }
        let mut inp = self.input();
        self.poll_fill_locked(&mut inp, id, cx)
    }

    /// Peeks at the buffered bytes without consuming them.
    pub(crate) fn with_buffered<R>(&self, f: impl FnOnce(&[u8]) -> R) -> R {
        f(self.input().buf.as_slice())
    }

    // ----- output -----

    pub(crate) fn queued(&self) -> usize {
        self.out_len.load(Ordering::SeqCst)
    }

    pub(crate) fn bytes_written(&self) -> u64 {
        self.output().total
    }

    /// `(bytes_written, drains)` under one lock: what the callback driver
    /// checks after every turn.
    pub(crate) fn write_progress(&self) -> (u64, u64) {
        let out = self.output();
        (out.total, out.drains)
    }

    pub(crate) fn set_water_marks(&self, high: usize, low: usize) -> io::Result<()> {
        let bad = |why: &str| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{why} (got high {high}, low {low})"),
            )
        };
        if high == 0 || low > high {
            return Err(bad("water marks need 0 < high and low <= high"));
        }
        let (Ok(high), Ok(low)) = (u32::try_from(high), u32::try_from(low)) else {
            return Err(bad("water marks are at most 4 GiB"));
        };
        let mut out = self.output();
        out.high = high;
        out.low = low;
        out.refuse_fast();
        Ok(())
    }

    pub(crate) fn water_marks(&self) -> (usize, usize) {
        let out = self.output();
        (out.high as usize, out.low as usize)
    }

    fn check_writable(&self, out: &OutputSide) -> io::Result<()> {
        if self.is_closing() || out.shut || out.shut_requested {
            return Err(self.closed_error());
        }
        if let Some(kind) = out.error {
            return Err(sticky(kind));
        }
        Ok(())
    }

    /// Bytes joined the queue: the write that made it non-empty makes sure
    /// they go out by themselves, by waking the driver (unless its callback
    /// is running: it flushes when that returns) or, with no driver, by
    /// arming a send behind.
    fn queued_more(self: &Arc<Self>, out: &mut OutputSide, was_empty: bool) {
        if !was_empty {
            // The write that made the queue non-empty already did; this
            // skips the `xchg` of a SeqCst store on all but the first write.
            self.out_len.store(out.queue.len(), Ordering::Release);
            return;
        }
        self.out_len.store(out.queue.len(), Ordering::SeqCst);
        if self.has_driver.load(Ordering::SeqCst) {
            if !self.in_callback.load(Ordering::SeqCst) {
                self.wake_driver();
            }
        } else {
            self.arm(out);
        }
    }

    /// Sends `data` at once when it would start a burst: nothing is queued,
    /// no driver flushes for us, and no write went straight out since the
    /// task last waited. Returns how much the kernel took (0: queue it all).
    fn send_direct(self: &Arc<Self>, out: &mut OutputSide, data: &[u8]) -> io::Result<usize> {
        if !out.queue.is_empty()
            || data.is_empty()
            || self.direct.load(Ordering::Relaxed)
            || self.has_driver.load(Ordering::Relaxed)
        {
            return Ok(0);
        }
        let Some(io) = out.io.as_ref() else { return Ok(0) };
        match io.write_vectored(&[IoSlice::new(data)]) {
            Ok(n) => {
                // rustls may hold some of it as sealed records.
                let pending = io.has_pending();
                out.sent(n);
                self.direct.store(true, Ordering::Relaxed);
                if pending {
                    self.arm(out);
                }
                Ok(n)
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(0),
            Err(e) => {
                out.error = Some(e.kind());
                out.refuse_fast();
                Err(e)
            }
        }
    }

    /// The task waited, read or flushed: its next write may go straight
    /// out. Stores only when needed, so a read does not dirty the line.
    #[inline]
    fn end_burst(&self) {
        if self.direct.load(Ordering::Relaxed) {
            self.direct.store(false, Ordering::Relaxed);
        }
    }

    /// Fails the connection if `len` more bytes would pass the bound on
    /// what it may queue.
    fn check_bound(self: &Arc<Self>, out: &mut OutputSide, len: usize) -> io::Result<()> {
        if out.queue.len().saturating_add(len) <= out.max_queued as usize {
            return Ok(());
        }
        out.error = Some(io::ErrorKind::OutOfMemory);
        out.refuse_fast();
        // The driver (if any) reports it to `event_cb` and closes.
        self.wake_driver();
        Err(sticky(io::ErrorKind::OutOfMemory))
    }

    pub(crate) fn set_max_queued(self: &Arc<Self>, max: usize) -> io::Result<()> {
        if max == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "max_queued must be above 0",
            ));
        }
        let Ok(max) = u32::try_from(max) else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "max_queued is at most 4 GiB",
            ));
        };
        let mut out = self.output();
        out.max_queued = max;
        out.refuse_fast();
        Ok(())
    }

    pub(crate) fn max_queued(&self) -> usize {
        self.output().max_queued as usize
    }

    /// cl-async's `write-sequence`: queues all of `data`, never waits.
    ///
    /// It never holds back, so the high-water mark does not matter here:
    /// while [`OutputSide::fast_until`] is set, nothing refuses a write and
    /// the queue holds output (whoever made it so told the driver), and
    /// the bytes just join it.
    pub(crate) fn write_now(self: &Arc<Self>, data: &[u8]) -> io::Result<()> {
        let mut out = self.output();
        if out.fast_until != 0 && out.queue.len() + data.len() <= out.max_queued as usize {
            out.queue.push_slice(data);
            self.out_len.store(out.queue.len(), Ordering::Release);
            return Ok(());
        }
        self.check_writable(&out)?;
        self.check_bound(&mut out, data.len())?;
        let n = self.send_direct(&mut out, data)?;
        if n == data.len() {
            return Ok(());
        }
        let data = &data[n..];
        let was_empty = out.queue.is_empty();
        out.queue.push_slice(data);
        self.queued_more(&mut out, was_empty && !data.is_empty());
        out.arm_fast();
        Ok(())
    }

    /// Queues `data` without copying it (unless it is small).
    pub(crate) fn write_bytes_now(self: &Arc<Self>, data: Bytes) -> io::Result<()> {
        let mut out = self.output();
        self.check_writable(&out)?;
        self.check_bound(&mut out, data.len())?;
        let mut data = data;
        let n = self.send_direct(&mut out, &data)?;
        if n == data.len() {
            return Ok(());
        }
        bytes::Buf::advance(&mut data, n);
        let was_empty = out.queue.is_empty();
        let nonempty = !data.is_empty();
        out.queue.push_bytes(data);
        self.queued_more(&mut out, was_empty && nonempty);
        Ok(())
    }

    pub(crate) fn clear_output(&self) {
        let mut out = self.output();
        out.queue.clear();
        out.held = false;
        out.refuse_fast();
        self.out_len.store(0, Ordering::Release);
        out.waiters.take().wake();
    }

    /// Writes queued output until it is all out (Ready(Ok)), the kernel is
    /// full (Pending, woken when writable if a task is given), or the
    /// budget is spent ([`FLUSH_BUDGET`] writes, or [`FLUSH_BYTES`] bytes
    /// for a task; Pending after waking it, to let other tasks run).
    fn flush_locked(
        self: &Arc<Self>,
        out: &mut OutputSide,
        task: Option<(WaitId, &mut Context<'_>)>,
    ) -> Poll<io::Result<()>> {
        // A write that failed (straight to the kernel, or in a flush) is
        // reported by every later flush: not all the bytes made it.
        if let Some(kind) = out.error {
            return Poll::Ready(Err(sticky(kind)));
        }
        if out.queue.is_empty() && !out.io.as_ref().is_some_and(Io::has_pending) {
            return Poll::Ready(Ok(()));
        }
        let Some(io) = out.io.clone() else {
            if self.is_closed() {
                return Poll::Ready(Err(Event::closed()));
            }
            if let Some((id, cx)) = task {
                out.waiters.register(id, cx);
            }
            return Poll::Pending;
        };
        let (id, cx) = match task {
            Some((id, cx)) => (Some(id), Some(cx)),
            None => (None, None),
        };
        // `force_output` (no context) pushes all the kernel takes, as it
        // promises; the flushes of a task yield after `FLUSH_BYTES`.
        let mut budget = if cx.is_some() { FLUSH_BYTES } else { usize::MAX };
        let mut cx = cx;
        for _ in 0..FLUSH_BUDGET {
            let res = match out.queue.as_single() {
                _ if out.queue.is_empty() => match io.flush_pending() {
                    // Only rustls's sealed records were left.
                    Ok(()) => {
                        self.drained(out, id);
                        return Poll::Ready(Ok(()));
                    }
                    Err(e) => Err(e),
                },
                Some(one) => io.write_vectored(&[IoSlice::new(&one[..one.len().min(budget)])]),
                None => {
                    let mut iov = [IoSlice::new(&[]); MAX_IOV];
                    let n = out.queue.io_slices(&mut iov, budget);
                    io.write_vectored(&iov[..n])
                }
            };
            match res {
                Ok(0) => {
                    out.error = Some(io::ErrorKind::WriteZero);
                    out.refuse_fast();
                    return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
                }
                Ok(n) => {
                    out.queue.advance(n);
                    out.sent(n);
                    self.out_len.store(out.queue.len(), Ordering::Release);
                    if out.queue.is_empty() {
                        out.drains += 1;
                        out.refuse_fast();
                        if io.has_pending() {
                            // The next turn sends rustls's sealed records.
                            continue;
                        }
                        self.drained(out, id);
                        return Poll::Ready(Ok(()));
                    }
                    budget -= n.min(budget);
                    if budget == 0 {
                        break;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => match (id, cx.as_deref_mut()) {
                    (Some(id), Some(cx)) => {
                        out.waiters.register(id, cx);
                        ready!(self.poll_writable(out, &io))?
                    }
                    _ => return Poll::Pending,
                },
                Err(e) => {
                    out.error = Some(e.kind());
                    out.refuse_fast();
                    return Poll::Ready(Err(e));
                }
            }
        }
        if let Some(cx) = cx {
            cx.waker().wake_by_ref();
        }
        Poll::Pending
    }

    /// The queue is empty: tasks waiting for that are woken (but `me`, which
    /// is going on), and a send behind no longer needed is dropped.
    fn drained(self: &Arc<Self>, out: &mut OutputSide, me: Option<WaitId>) {
        match me {
            Some(id) => out.waiters.ready(id),
            None => out.waiters.take().wake(),
        }
        if out.armed && !out.orphan {
            out.armed = false;
            out.writable = None;
            out.timer = None;
        }
    }

    /// Pushes queued output to the kernel without waiting (cl-async's
    /// `force-output`).
    pub(crate) fn force_output(self: &Arc<Self>) -> io::Result<()> {
        let mut out = self.output();
        match self.flush_locked(&mut out, None) {
            Poll::Ready(Err(e)) => Err(e),
            _ => Ok(()),
        }
    }

    /// Shuts down the write side, waiting for room while TLS's
    /// `close_notify` does not fit (with the task's waker if there is a
    /// task, else as a send behind).
    fn poll_shutdown_locked(
        self: &Arc<Self>,
        out: &mut OutputSide,
        mut task: Option<(WaitId, &mut Context<'_>)>,
    ) -> Poll<io::Result<()>> {
        loop {
            match shutdown_locked(out) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    let Some(io) = out.io.clone() else {
                        return Poll::Ready(Ok(()));
                    };
                    if let Some((id, cx)) = task.as_mut() {
                        out.waiters.register(*id, cx);
                    }
                    ready!(self.poll_writable(out, &io))?;
                }
                res => return Poll::Ready(res),
            }
        }
    }

    pub(crate) fn poll_flush(self: &Arc<Self>, id: WaitId, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.is_closed() {
            return Poll::Ready(Err(self.closed_error()));
        }
        let mut out = self.output();
        let res = self.flush_locked(&mut out, Some((id, cx)));
        if res.is_ready() {
            out.held = false;
            // A flush ends a burst: the next write may go straight out.
            self.end_burst();
        }
        if let Poll::Ready(Ok(())) = res {
            if out.shut_requested && !out.shut {
                return self.poll_shutdown_locked(&mut out, Some((id, cx)));
            }
        }
        res
    }

    /// Asks for a half-close without waiting: writes are refused from now
    /// on; queued output still goes, then the write side is shut down by the
    /// driver or the next flush.
    pub(crate) fn request_shutdown_write(self: &Arc<Self>) {
        let w = {
            let mut out = self.output();
            out.shut_requested = true;
            out.refuse_fast();
            self.arm(&mut out);
            out.waiters.take()
        };
        w.wake();
        self.wake_driver();
    }

    /// Records a write-side shutdown made directly on the socket, so later
    /// writes fail with `Closed` at once rather than at the next flush.
    pub(crate) fn mark_write_shut(&self) {
        let mut out = self.output();
        out.shut = true;
        out.refuse_fast();
    }

    /// Whether a half-close was asked for and is not done yet.
    pub(crate) fn shutdown_pending(&self) -> bool {
        let out = self.output();
        out.shut_requested && !out.shut
    }

    /// Whether the write side is shut down.
    pub(crate) fn is_write_shut(&self) -> bool {
        self.output().shut
    }

    /// Pushes output from the read path: queued bytes go out whenever the
    /// stream is polled. Errors stay sticky for the next write to report.
    /// A graceful close asked for through a `Socket` handle is finished
    /// here, as `Socket::close` promises (the callback face's driver
    /// finishes it otherwise).
    pub(crate) fn push_output(self: &Arc<Self>, id: WaitId, cx: &mut Context<'_>) {
        if self.is_closed() {
            return;
        }
        // Reading ends a burst of writes: the next may go straight out.
        self.end_burst();
        if self.closing.load(Ordering::Acquire) && self.is_connected() {
            let _ = self.poll_close(id, cx);
        } else if self.queued() != 0 {
            let _ = self.poll_flush(id, cx);
        }
    }

    /// futures-io `poll_write`, with the high/low-water backpressure.
    ///
    /// The common case comes first: a small write joining a queue that
    /// already holds output (so a flush is coming) and stays below the
    /// high-water mark is copied in, and that is all. Everything else is
    /// [`Conn::poll_write_slow`]. Always inlined: the fast path is a few
    /// instructions, and left to itself the compiler may call it instead.
    #[inline(always)]
    pub(crate) fn poll_write(
        self: &Arc<Self>,
        id: WaitId,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let mut out = self.output();
        if out.joins_queue(buf.len()) {
            out.queue.push_slice(buf);
            self.out_len.store(out.queue.len(), Ordering::Release);
            return Poll::Ready(Ok(buf.len()));
        }
        self.poll_write_slow(out, id, cx, buf)
    }

    #[inline(never)]
    fn poll_write_slow(
        self: &Arc<Self>,
        mut out: MutexGuard<'_, OutputSide>,
        id: WaitId,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.check_writable(&out)?;
        if out.run as usize >= WRITE_BUDGET {
            out.run = 0;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        if out.held || out.queue.len() >= out.high as usize {
            out.held = true;
            out.refuse_fast();
            match self.flush_locked(&mut out, Some((id, cx))) {
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                _ if out.queue.len() > out.low as usize => return Poll::Pending,
                _ => out.held = false,
            }
        }
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        if out.queue.is_empty() && buf.len() >= DIRECT_WRITE {
            if let Some(io) = out.io.clone() {
                loop {
                    match io.write_vectored(&[IoSlice::new(buf)]) {
                        Ok(n) => {
                            out.sent(n);
                            if io.has_pending() {
                                // rustls holds some of it as sealed records.
                                self.arm(&mut out);
                            }
                            return Poll::Ready(Ok(n));
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                            out.waiters.register(id, cx);
                            ready!(self.poll_writable(&mut out, &io))?
                        }
                        Err(e) => {
                            out.error = Some(e.kind());
                            out.refuse_fast();
                            return Poll::Ready(Err(e));
                        }
                    }
                }
            }
        }
        let sent = self.send_direct(&mut out, buf)?;
        if sent > 0 {
            return Poll::Ready(Ok(sent));
        }
        let room = (out.high as usize).saturating_sub(out.queue.len()).max(1);
        let n = buf.len().min(room.max(DIRECT_WRITE));
        let was_empty = out.queue.is_empty();
        out.queue.push_slice(&buf[..n]);
        self.queued_more(&mut out, was_empty);
        // Accepted: the next small writes may take the fast path (a drain
        // below turns it off again).
        out.arm_fast();
        if out.queue.len() >= out.high as usize {
            // Start sending now; a full kernel buffer is reported by the
            // next call, which then holds back.
            // The bytes were accepted either way: an error is sticky and
            // the next call reports it.
            let _ = self.flush_locked(&mut out, Some((id, cx)));
        }
        Poll::Ready(Ok(n))
    }

    /// Flushes, then shuts down the write side (half-close). Harmless to
    /// repeat while the connection is open; `Closed` once it is closed.
    pub(crate) fn poll_shutdown_write(self: &Arc<Self>, id: WaitId, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.is_closed() {
            return Poll::Ready(Err(Event::closed()));
        }
        let mut out = self.output();
        // A close in progress (`poll_close` set `closing` first) must reach
        // the next small write; a half-close alone lets writes in until it
        // is done, and the slow path that sees them opens the way again.
        out.refuse_fast();
        if out.shut {
            return Poll::Ready(Ok(()));
        }
        match self.flush_locked(&mut out, Some((id, cx))) {
            Poll::Ready(Ok(())) => {}
            other => return other,
        }
        if out.io.is_none() {
            out.waiters.register(id, cx);
            return Poll::Pending;
        }
        self.poll_shutdown_locked(&mut out, Some((id, cx)))
    }

    /// Marks the connection closing: writes are refused from now on, queued
    /// output still goes. The driver finishes the close, or with no driver
    /// a send behind does (so a task awaiting a read sees `Closed`).
    pub(crate) fn request_close(self: &Arc<Self>) {
        if !self.closing.swap(true, Ordering::AcqRel) {
            if !self.has_driver.load(Ordering::SeqCst) && !self.is_connected() {
                // Nobody will connect it: nothing queued can go out.
                self.close_now();
                return;
            }
            let w = {
                let mut out = self.output();
                out.refuse_fast();
                if !self.has_driver.load(Ordering::SeqCst) {
                    out.orphan = true;
                    self.arm(&mut out);
                }
                out.waiters.take()
            };
            w.wake();
            self.wake_driver();
        }
    }

    /// Graceful close: refuse new writes, flush, shut down the write side,
    /// then release the socket. Harmless to repeat.
    pub(crate) fn poll_close(self: &Arc<Self>, id: WaitId, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.is_closed() {
            return Poll::Ready(Ok(()));
        }
        self.closing.store(true, Ordering::Release);
        let res = match self.poll_shutdown_write(id, cx) {
            Poll::Pending if self.is_connected() => return Poll::Pending,
            // A send behind finished it meanwhile.
            _ if self.is_closed() => return Poll::Ready(Ok(())),
            // Closed before it connected: nothing queued can go out.
            Poll::Pending => Err(Event::Canceled { socket: None }.into()),
            Poll::Ready(res) => res,
        };
        self.release(false);
        Poll::Ready(res)
    }

    /// cl-async's `close :abort t`: drop both buffers and close now, with
    /// RST if connected.
    pub(crate) fn abort(&self) {
        if self.is_closed() {
            return;
        }
        if let Some(io) = self.io() {
            let _ = io.set_zero_linger();
        }
        self.closing.store(true, Ordering::Release);
        self.release(true);
    }

    /// Closes now without a reset: queued output is dropped, the peer sees
    /// end of file. What the callback face does after an error event.
    pub(crate) fn close_now(&self) {
        if !self.is_closed() {
            self.closing.store(true, Ordering::Release);
            self.release(false);
        }
    }

    /// Closes the descriptor now and wakes every waiter, who will see
    /// `Closed`. Socket data is dropped so that sockets which refer to each
    /// other through it (a proxy's pair) do not keep each other alive.
    fn release(&self, abort: bool) {
        let (io_in, io_out, w1, w2) = {
            let mut i = self.input();
            let mut o = self.output();
            self.closed.store(true, Ordering::Release);
            i.readable = None;
            o.writable = None;
            o.armed = false;
            o.timer = None;
            // What was read stays readable after a close (cl-async's buffer
            // lives in the stream); only an abort drops it.
            if abort {
                i.buf.clear();
            }
            o.queue.clear();
            o.refuse_fast();
            self.out_len.store(0, Ordering::Release);
            (i.io.take(), o.io.take(), i.waiters.take(), o.waiters.take())
        };
        if !abort {
            if let Some(io) = &io_in {
                drain_kernel(io);
            }
        }
        drop(io_in);
        drop(io_out);
        w1.wake();
        w2.wake();
        self.wake_driver();
        self.set_data(None);
    }
}

/// Shuts down the write side of a connected socket whose queue is empty.
/// `WouldBlock` while TLS's `close_notify` waits for room.
fn shutdown_locked(out: &mut OutputSide) -> io::Result<()> {
    out.refuse_fast();
    let res = match out.io.as_ref().map(|io| io.shutdown_write()) {
        Some(Err(e)) if e.kind() != io::ErrorKind::NotConnected => Err(e),
        _ => Ok(()),
    };
    if !matches!(&res, Err(e) if e.kind() == io::ErrorKind::WouldBlock) {
        out.shut = true;
    }
    res
}

fn readable(inp: &mut InputSide, io: &Io, id: WaitId, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
    poll_ready(&mut inp.readable, || io.readable(), &mut inp.waiters, id, cx)
}

/// Reads and discards what the kernel holds, bounded, so that closing the
/// descriptor sends FIN rather than the RST Linux sends when unread data is
/// left.
fn drain_kernel(io: &Io) {
    let mut scratch = [0u8; 4096];
    for _ in 0..64 {
        match io.read_slice(&mut scratch) {
            Ok(n) if n > 0 => {}
            _ => break,
        }
    }
}
