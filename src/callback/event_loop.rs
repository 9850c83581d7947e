//! cl-async's `with-event-loop`: run callback-style programs to completion
//! on the current thread, on an `async-executor` driven by `async-io`.

use std::any::Any;
use std::cell::RefCell;
use std::future::Future;
use std::io;
use std::panic::{self, AssertUnwindSafe};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use crate::tuning::{ALONE_WINDOWS, REACT_EVERY, REACT_EVERY_ALONE};
use async_executor::Executor;
use futures_lite::FutureExt;

/// What ended the loop early.
enum Failure {
    Error(io::Error),
    Panic(Box<dyn Any + Send>),
}

/// What tasks share with the loop: how much work is left, and why it ended.
/// Tasks hold this, never the executor, so dropping the loop drops them.
#[derive(Default)]
struct State {
    active: AtomicUsize,
    exit: AtomicBool,
    waker: Mutex<Option<Waker>>,
    failure: Mutex<Option<Failure>>,
}

impl State {
    fn wake(&self) {
        let w = self.waker.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(w) = w {
            w.wake();
        }
    }

    fn fail(&self, f: Failure) {
        self.failure.lock().unwrap_or_else(|e| e.into_inner()).get_or_insert(f);
        self.exit.store(true, Ordering::Release);
        self.wake();
    }
}

pub(crate) struct Loop {
    ex: Executor<'static>,
    state: Arc<State>,
    /// The open connections made on this loop (`stats`).
    counts: Arc<super::stats::Counts>,
    /// The values of its `LoopLocal`s.
    pub(crate) locals: super::local::Locals,
}

/// Tells loops apart (a `LoopLocal` belongs to one).
pub(crate) fn loop_id(lp: &Rc<Loop>) -> usize {
    Rc::as_ptr(lp) as usize
}

thread_local! {
    static CURRENT: RefCell<Option<Rc<Loop>>> = const { RefCell::new(None) };
}

fn current() -> Option<Rc<Loop>> {
    CURRENT.with(|c| c.borrow().clone())
}

/// The connection counts of the current loop, if there is one.
pub(crate) fn current_counts() -> Option<Arc<super::stats::Counts>> {
    CURRENT.with(|c| c.borrow().as_ref().map(|lp| lp.counts.clone()))
}

/// The current loop, or the error that explains there is none.
pub(crate) fn require_loop() -> io::Result<Rc<Loop>> {
    current().ok_or_else(|| {
        io::Error::other("not inside with_event_loop: use `start` and spawn the driver on your executor")
    })
}

/// Runs `f`, then runs the event loop on this thread until no connection,
/// server or spawned task is left, or [`exit_event_loop`] is called
/// (cl-async's `with-event-loop`).
///
/// Inside it, the builders' `spawn` methods and [`spawn`] put their work on
/// this loop. `f` returns `()` or an `io::Result`; an error from it
/// returns at once, without running the loop. Otherwise the loop runs and
/// `with_event_loop` returns `f`'s value, or the first error that no
/// `event_cb` took (as cl-async lets an unhandled condition out of the
/// loop); what is still running then is dropped, closing its sockets.
/// Errors of a server's accepted connections are never such errors: they
/// close their connection and the server goes on.
///
/// # Panics
///
/// If a callback panics, the loop stops and the panic resumes here. Calling
/// it inside another event loop on the same thread fails with an error
/// rather than nesting.
///
/// # Examples
///
/// ```
/// use streamish::{ReadData, tcp_connect, tcp_server, with_event_loop};
///
/// with_event_loop(|| {
///     let server = tcp_server("127.0.0.1", 0)
///         .read_cb(|sock, data| {
///             if let ReadData::Bytes(b) = data {
///                 sock.write(&b).unwrap(); // echo
///             }
///         })
///         .spawn()?;
///     let addr = server.local_addr();
///     tcp_connect("127.0.0.1", addr.port())
///         .data("hai")
///         .read_cb(move |sock, data| {
///             assert_eq!(&data.into_bytes()[..], b"hai");
///             sock.close();
///             server.close();
///         })
///         .spawn()?;
///     Ok(())
/// })
/// .unwrap(); // one `io::Result`: the set-up's and the loop's
/// ```
pub fn with_event_loop<R: LoopOutput>(f: impl FnOnce() -> R) -> io::Result<R::Output> {
    if current().is_some() {
        return Err(io::Error::other(
            "with_event_loop: already inside an event loop on this thread",
        ));
    }
    let lp = Rc::new(Loop {
        ex: Executor::new(),
        state: Arc::new(State::default()),
        counts: Arc::default(),
        locals: Default::default(),
    });
    CURRENT.with(|c| *c.borrow_mut() = Some(lp.clone()));
    // Clear the thread's loop however we leave, panics included.
    struct Reset;
    impl Drop for Reset {
        fn drop(&mut self) {
            let lp = CURRENT.with(|c| c.borrow_mut().take());
            drop(lp);
        }
    }
    let reset = Reset;
    // The set-up failed: nothing it started is run.
    let out = f().into_result()?;
    let state = lp.state.clone();
    async_io::block_on(run(&lp.ex, &state));
    drop(lp);
    drop(reset); // drops the executor and whatever still runs on it
    let failure = state.failure.lock().unwrap_or_else(|e| e.into_inner()).take();
    match failure {
        None => Ok(out),
        Some(Failure::Error(e)) => Err(e),
        Some(Failure::Panic(p)) => panic::resume_unwind(p),
    }
}

thread_local! {
    /// How often the loop on this thread went from one task to another,
    /// and the last task it polled (its address: a task's future does
    /// not move while it is pinned).
    static SWITCHES: std::cell::Cell<(u64, usize)> = const { std::cell::Cell::new((0, 0)) };
}

/// Counts a poll of the task at `at` as a switch if another task ran last.
fn note_poll(at: usize) {
    SWITCHES.with(|s| {
        let (n, last) = s.get();
        if last != at {
            s.set((n + 1, at));
        }
    });
}

fn switches() -> u64 {
    SWITCHES.with(|s| s.get().0)
}

/// The loop itself: run ready tasks, yielding to `block_on` after every
/// [`REACT_EVERY`] of them, until no work is left
/// or `exit_event_loop` was called.
async fn run(ex: &Executor<'static>, state: &State) {
    let exiting = || state.exit.load(Ordering::Acquire);
    let done = || exiting() || state.active.load(Ordering::Acquire) == 0;
    let until_done = futures_lite::future::poll_fn(|cx| {
        *state.waker.lock().unwrap_or_else(|e| e.into_inner()) = Some(cx.waker().clone());
        if done() { Poll::Ready(()) } else { Poll::Pending }
    });
    let mut until_done = std::pin::pin!(until_done);
    let mut every = REACT_EVERY;
    let mut alone = 0;
    loop {
        let start = Instant::now();
        let before = switches();
        let mut busy = false;
        // `exit_event_loop` ends the loop once the task that called it
        // returns, not when this spell would have ended.
        while !exiting() && ex.try_tick() {
            if start.elapsed() >= every {
                busy = true;
                break;
            }
        }
        if done() {
            return;
        }
        if busy {
            if switches() - before > 1 {
                alone = 0;
                every = REACT_EVERY;
            } else {
                alone += 1;
                if alone >= ALONE_WINDOWS {
                    every = (every * 2).min(REACT_EVERY_ALONE);
                }
            }
            // Still busy: let block_on look at the reactor, then go on.
            futures_lite::future::yield_now().await;
        } else {
            // Idle: sleep until a task is woken or the loop is done. The
            // next busy spell keeps what this one learnt about lone tasks
            // (a lone writer waits for room in the kernel now and then).
            let tick = async {
                ex.tick().await;
                false
            };
            let finished = async {
                until_done.as_mut().await;
                true
            };
            if finished.or(tick).await {
                return;
            }
        }
    }
}

/// What the closure given to [`with_event_loop`] may return: `()`, or an
/// `io::Result`, which is flattened into the loop's own result.
pub trait LoopOutput {
    /// What [`with_event_loop`] returns inside its `io::Result`.
    type Output;
    /// The set-up's value, or its error.
    fn into_result(self) -> io::Result<Self::Output>;
}

impl LoopOutput for () {
    type Output = ();
    fn into_result(self) -> io::Result<()> {
        Ok(())
    }
}

impl<T> LoopOutput for io::Result<T> {
    type Output = T;
    fn into_result(self) -> io::Result<T> {
        self
    }
}

/// Stops the current event loop: [`with_event_loop`] returns once the
/// callback that called this returns; connections still open are dropped,
/// which closes them (cl-async's `exit-event-loop`). Does nothing outside an
/// event loop.
///
/// # Examples
///
/// A server that would run forever, stopped by its first client:
///
/// ```
/// use streamish::{exit_event_loop, tcp_connect, tcp_server, with_event_loop};
///
/// with_event_loop(|| {
///     let server = tcp_server("127.0.0.1", 0)
///         .connect_cb(|_sock| exit_event_loop()) // the server stays open
///         .spawn()?;
///     tcp_connect("127.0.0.1", server.local_addr().port()).spawn()?;
///     Ok(())
/// })
/// .unwrap(); // returns once `connect_cb` does
/// ```
pub fn exit_event_loop() {
    if let Some(lp) = current() {
        lp.state.exit.store(true, Ordering::Release);
        lp.state.wake();
    }
}

/// Runs `fut` on the current event loop, which waits for it before it
/// ends. An error it returns ends the loop with that error.
///
/// Fails with an error outside [`with_event_loop`]: on another executor,
/// spawn there instead.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
///
/// streamish::with_event_loop(|| {
///     streamish::spawn(async {
///         async_io::Timer::after(Duration::from_millis(1)).await; // cl-async's `delay`
///         Ok(())
///     })
/// })
/// .unwrap();
/// ```
pub fn spawn(fut: impl Future<Output = io::Result<()>> + Send + 'static) -> io::Result<()> {
    // A named task rather than an async block, which would store a
    // moved-in future twice (an idle connection's task is most of its
    // memory).
    let lp = require_loop()?;
    let state = lp.state.clone();
    state.active.fetch_add(1, Ordering::AcqRel);
    lp.ex.spawn(Guarded { fut, state }).detach();
    Ok(())
}

pin_project_lite::pin_project! {
    /// A task of the loop: its error or panic ends the loop, and its end is
    /// counted, so the loop knows when no work is left.
    struct Guarded<F> {
        #[pin]
        fut: F,
        state: Arc<State>,
    }
}

impl<F: Future<Output = io::Result<()>>> Future for Guarded<F> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        note_poll(std::ptr::from_ref(self.as_ref().get_ref()) as usize);
        let this = self.project();
        let fut = this.fut;
        let failure = match panic::catch_unwind(AssertUnwindSafe(|| fut.poll(cx))) {
            Ok(Poll::Pending) => return Poll::Pending,
            Ok(Poll::Ready(Ok(()))) => None,
            Ok(Poll::Ready(Err(e))) => Some(Failure::Error(e)),
            Err(p) => Some(Failure::Panic(p)),
        };
        if let Some(f) = failure {
            this.state.fail(f);
        }
        this.state.active.fetch_sub(1, Ordering::AcqRel);
        this.state.wake();
        Poll::Ready(())
    }
}
