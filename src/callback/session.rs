//! One callback-style connection once it is up: read, call back, flush,
//! watch the clocks, until it ends.

use std::future::Future;
use std::io;
use std::panic::{self, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use async_io::Timer;

use super::stats::{Counted, Dir};
use super::{Callbacks, ReadData, Settings};
use crate::conn::Conn;
use crate::tuning::MAX_READ;
use crate::tuning::{INPUT_CAP, READ_TURN, TURN_BYTES, TURNS};
use crate::wait::WaitId;
use crate::{AsyncInputStream, Clock, Event, Socket};

/// An idle connection's whole driver is this struct (spawned unboxed on the
/// event loop), so what is rarely used is boxed on first use: the stream of
/// stream mode, the timer of the clocks.
pub(crate) struct Session<S> {
    socket: Socket,
    /// The driver's key among the connection's waiting tasks; the session
    /// marks its connection driven while it lives (see [`DriverGuard`]).
    id: WaitId,
    /// The stream `read_cb` gets in stream mode.
    stream: Option<Box<S>>,
    /// Shared by every connection of a server.
    cbs: Arc<Callbacks<S>>,
    /// `connect_cb` is still to be called (an accepted connection calls it
    /// in its first poll, on its own task).
    greet: bool,
    /// Accepted by a server: an error no `event_cb` took closes this
    /// connection and ends here, never the server or the loop.
    accepted: bool,
    drain: bool,
    /// `allow_half_open`: end of file from the peer does not close.
    half_open: bool,
    eof: bool,
    /// Reading was paused at the last turn: on resume the read clock starts
    /// afresh, since no byte could arrive while paused.
    paused: bool,
    /// Made when a clock first needs it.
    timer: Option<Box<Timer>>,
    armed: Option<Instant>,
    /// A read or write timeout is set: only then are the times of the
    /// last read and write kept (reading the clock is not free).
    clocks: bool,
    last_read: Instant,
    last_write: Instant,
    written: u64,
    drains: u64,
    /// Bytes read and written in the current poll (see [`TURNS`]).
    moved: usize,
    _counted: Counted,
}

impl<S: AsyncInputStream + From<Socket>> Session<S> {
    /// Starts the session of a connection that is up, counting it open.
    pub(crate) fn new(
        socket: Socket,
        cbs: Arc<Callbacks<S>>,
        settings: &Settings,
        dir: Dir,
        guard: DriverGuard,
    ) -> Session<S> {
        let now = Instant::now();
        let (written, drains) = socket.conn.write_progress();
        Session {
            written,
            drains,
            moved: 0,
            stream: None,
            greet: false,
            accepted: false,
            drain: settings.drain(),
            half_open: settings.half_open,
            eof: false,
            paused: false,
            timer: None,
            armed: None,
            clocks: false,
            last_read: now,
            last_write: now,
            _counted: Counted::new(dir),
            cbs,
            socket,
            id: guard.into_session(),
        }
    }

    /// Runs `f` as a callback: writes it makes are flushed after it returns,
    /// in one go. A panic aborts the connection, then goes on unwinding.
    fn call<R>(socket: &Socket, f: impl FnOnce() -> R) -> R {
        socket.conn.set_in_callback(true);
        let res = panic::catch_unwind(AssertUnwindSafe(f));
        socket.conn.set_in_callback(false);
        match res {
            Ok(r) => r,
            Err(p) => {
                socket.conn.abort();
                panic::resume_unwind(p)
            }
        }
    }

    /// Calls `connect_cb`.
    pub(crate) fn connected(&mut self) {
        if let Some(cb) = &self.cbs.connect {
            Self::call(&self.socket, || cb(&self.socket));
        }
    }

    /// Delivers `ev` once, then closes the socket (without a reset: its
    /// queued output is dropped); the driver's result.
    pub(crate) fn deliver(socket: &Socket, cbs: &Callbacks<S>, ev: Event) -> io::Result<()> {
        let ev = match ev.socket() {
            Some(_) => ev,
            None => ev.with_socket(socket.clone()),
        };
        let res = match &cbs.event {
            Some(cb) => {
                Self::call(socket, || cb(ev));
                Ok(())
            }
            None => Err(ev.into()),
        };
        socket.conn.close_now();
        res
    }

    fn fail(&mut self, err: io::Error) -> Poll<io::Result<()>> {
        Poll::Ready(Self::deliver(&self.socket, &self.cbs, Event::from_io(err, None)))
    }

    /// One read; `Ready(Ok(true))` if bytes arrived, `Ready(Ok(false))` at
    /// end of file.
    fn poll_read(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<bool>> {
        let conn = &self.socket.conn;
        if let (true, Some(cb)) = (self.drain, &self.cbs.read) {
            // Reads that fill their buffer go on, up to `READ_TURN` bytes,
            // unless `read_cb` paused reading or closed. What stops the
            // reads after the first (end of file, an error, an empty
            // kernel) is reported by the next turn.
            let mut read = 0;
            loop {
                let bytes = match conn.poll_take(self.id, cx) {
                    Poll::Ready(Ok(Some(bytes))) => bytes,
                    Poll::Ready(Ok(None)) if read == 0 => return Poll::Ready(Ok(false)),
                    Poll::Ready(Err(e)) if read == 0 => return Poll::Ready(Err(e)),
                    Poll::Pending if read == 0 => return Poll::Pending,
                    _ => break,
                };
                let full = bytes.len() >= MAX_READ;
                read += bytes.len();
                Self::call(&self.socket, || cb(&self.socket, ReadData::Bytes(bytes)));
                if !full || read >= READ_TURN || conn.is_closing() || self.socket.is_reading_paused() {
                    break;
                }
            }
            if self.clocks {
                self.last_read = Instant::now();
            }
            self.moved += read;
            return Poll::Ready(Ok(true));
        }
        if conn.buffered() >= INPUT_CAP {
            // The application has not read what is here: stop reading until
            // it does (the kernel then pushes back on the peer).
            conn.set_input_full(true);
            if conn.buffered() >= INPUT_CAP {
                return Poll::Pending;
            }
        }
        let n = ready!(conn.poll_fill(self.id, cx))?;
        if n == 0 {
            return Poll::Ready(Ok(false));
        }
        self.moved += n;
        if self.clocks {
            self.last_read = Instant::now();
        }
        if let Some(cb) = &self.cbs.read {
            let socket = &self.socket;
            let stream = self.stream.get_or_insert_with(|| Box::new(S::from(socket.clone())));
            // What `read_cb` leaves is offered again while it makes progress
            // (cl-async's buffer); a call that takes nothing waits for more.
            loop {
                let before = AsyncInputStream::buffered(&**stream);
                Self::call(socket, || cb(socket, ReadData::Stream(stream)));
                let left = AsyncInputStream::buffered(&**stream);
                if left == 0 || left >= before || socket.conn.is_closing() || socket.is_reading_paused() {
                    break;
                }
            }
        }
        Poll::Ready(Ok(true))
    }

    /// Notes write progress (for the write clock) and calls `write_cb` once
    /// per drain. Returns whether `write_cb` ran.
    fn note_writes(&mut self) -> bool {
        let (written, drains) = self.socket.conn.write_progress();
        if written != self.written {
            self.moved += written.wrapping_sub(self.written) as usize;
            self.written = written;
            if self.clocks {
                self.last_write = Instant::now();
            }
        }
        if drains == self.drains {
            return false;
        }
        self.drains = drains;
        if let Some(cb) = &self.cbs.write {
            Self::call(&self.socket, || cb(&self.socket));
            return true;
        }
        false
    }

    /// Fires an expired clock, or arms the timer for the nearest deadline.
    /// The timer is moved only when a deadline comes nearer; one that moved
    /// later (every read moves the read clock) is found when the timer
    /// fires early, so a busy connection costs no timer update per read.
    fn poll_clocks(
        &mut self,
        cx: &mut Context<'_>,
        ctl: (Option<Duration>, Option<Duration>, bool),
    ) -> Poll<io::Result<()>> {
        let conn = &self.socket.conn;
        let (read_t, write_t, paused) = ctl;
        if read_t.is_none() && write_t.is_none() {
            return Poll::Pending;
        }
        loop {
            let now = Instant::now();
            if conn.queued() == 0 {
                // The write clock runs only while output waits.
                self.last_write = now;
            }
            let read_at = read_t
                .filter(|_| !paused && !self.eof)
                .and_then(|t| self.last_read.checked_add(t));
            let write_at = write_t
                .filter(|_| conn.queued() != 0)
                .and_then(|t| self.last_write.checked_add(t));
            for (at, clock) in [(read_at, Clock::Read), (write_at, Clock::Write)] {
                if at.is_some_and(|at| at <= now) {
                    return Poll::Ready(Self::deliver(
                        &self.socket,
                        &self.cbs,
                        Event::Timeout { socket: None, clock },
                    ));
                }
            }
            let Some(next) = [read_at, write_at].into_iter().flatten().min() else {
                return Poll::Pending;
            };
            let timer = self.timer.get_or_insert_with(|| Box::new(Timer::never()));
            if self.armed.is_none_or(|armed| next < armed) {
                timer.set_at(next);
                self.armed = Some(next);
            }
            match Pin::new(&mut **timer).poll(cx) {
                Poll::Ready(_) => self.armed = None,
                Poll::Pending => return Poll::Pending,
            }
        }
    }

    /// One turn: at most one read and one flush. `None` if it did some
    /// work (another turn may find more), else what the poll returns.
    fn turn(&mut self, cx: &mut Context<'_>) -> Option<Poll<io::Result<()>>> {
        let conn = self.socket.conn.clone();
        let ctl = conn.driver_turn(cx);
        if self.greet {
            self.greet = false;
            self.connected();
        }
        if conn.is_closed() {
            return Some(Poll::Ready(Ok(())));
        }
        let mut busy = false;
        let paused = ctl.2;
        let clocks = ctl.0.is_some() || ctl.1.is_some();
        if clocks && !self.clocks {
            // A clock starts when it is set.
            let now = Instant::now();
            self.last_read = now;
            self.last_write = now;
        } else if self.paused && !paused {
            // The read clock starts afresh when reading resumes: no byte
            // could arrive while paused.
            self.last_read = Instant::now();
        }
        self.clocks = clocks;
        self.paused = paused;
        if !self.eof && !paused {
            match self.poll_read(cx) {
                Poll::Ready(Ok(true)) => busy = true,
                Poll::Ready(Ok(false)) => {
                    // Every byte before it was delivered; now EOF, then
                    // a graceful close (writes made in event_cb still go)
                    // unless the connection may stay half open.
                    self.eof = true;
                    busy = true;
                    if let Some(cb) = &self.cbs.event {
                        let ev = Event::Eof {
                            socket: Some(self.socket.clone()),
                        };
                        Self::call(&self.socket, || cb(ev));
                    }
                    if !self.half_open {
                        conn.request_close();
                    }
                }
                Poll::Ready(Err(e)) => return Some(self.fail(e)),
                Poll::Pending => {}
            }
        }
        if conn.shutdown_pending() {
            if let Poll::Ready(Err(e)) = conn.poll_shutdown_write(self.id, cx) {
                return Some(self.fail(e));
            }
        }
        if self.eof && conn.is_write_shut() {
            // Both directions are done.
            conn.request_close();
        }
        if conn.is_closing() {
            match conn.poll_close(self.id, cx) {
                Poll::Ready(Ok(())) => {
                    self.note_writes();
                    return Some(Poll::Ready(Ok(())));
                }
                Poll::Ready(Err(e)) => return Some(self.fail(e)),
                Poll::Pending => {}
            }
        } else if conn.queued() != 0 {
            if let Poll::Ready(Err(e)) = conn.poll_flush(self.id, cx) {
                return Some(self.fail(e));
            }
        }
        busy |= self.note_writes();
        if !busy {
            return Some(self.poll_clocks(cx, ctl));
        }
        None
    }

    fn poll_turns(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.moved = 0;
        for _ in 0..TURNS {
            if let Some(res) = self.turn(cx) {
                return res;
            }
            if self.moved >= TURN_BYTES {
                break;
            }
        }
        // Busy: let other tasks run, then go on.
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

/// The session runs to its end: `Ok` after a close or an event
/// `event_cb` took, the error otherwise, unless the connection was
/// accepted: one client's error (already closed by [`Session::deliver`])
/// must not end its server.
impl<S: AsyncInputStream + From<Socket>> Future for Session<S> {
    type Output = io::Result<()>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match this.poll_turns(cx) {
            Poll::Ready(Err(_)) if this.accepted => Poll::Ready(Ok(())),
            other => other,
        }
    }
}

/// The session of a socket that was accepted, counted open now; its first
/// poll calls `connect_cb`.
pub(crate) fn incoming<S: AsyncInputStream + From<Socket>>(
    socket: Socket,
    cbs: Arc<Callbacks<S>>,
    settings: &Settings,
) -> Session<S> {
    init_ctl(&socket, settings);
    let guard = DriverGuard::new(&socket.conn);
    let mut session = Session::new(socket, cbs, settings, Dir::Incoming, guard);
    session.greet = true;
    session.accepted = true;
    session
}

/// Copies the timeout options onto the socket, where `set_timeouts` can
/// change them later.
pub(crate) fn init_ctl(socket: &Socket, settings: &Settings) {
    let _ = socket.conn.set_max_queued(settings.max_queued);
    socket
        .conn
        .ctl()
        .set_timeouts(settings.read_timeout, settings.write_timeout);
}

/// Marks a connection as polled by a callback driver for as long as the
/// driver lives: writes from elsewhere wake the driver instead of arming a
/// send behind. A driver dropped before its connection ended (its task
/// canceled, its loop exited) closes the connection gracefully, so that
/// later writes fail with `Closed` instead of queuing for nobody.
pub(crate) struct DriverGuard {
    /// `None` once a [`Session`] took the duty over.
    conn: Option<Arc<Conn>>,
    id: WaitId,
}

impl DriverGuard {
    pub(crate) fn new(conn: &Arc<Conn>) -> DriverGuard {
        conn.driver_made();
        DriverGuard {
            conn: Some(conn.clone()),
            id: conn.ids.next(),
        }
    }

    /// Hands the duty to the session being made (whose socket holds the
    /// connection already, so an idle session carries no second `Arc`).
    fn into_session(mut self) -> WaitId {
        self.conn = None;
        self.id
    }
}

impl Drop for DriverGuard {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            driver_gone(&conn, self.id);
        }
    }
}

impl<S> Drop for Session<S> {
    fn drop(&mut self) {
        driver_gone(&self.socket.conn, self.id);
    }
}

fn driver_gone(conn: &Arc<Conn>, id: WaitId) {
    conn.forget(id);
    conn.driver_dropped();
}
