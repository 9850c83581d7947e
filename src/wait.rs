//! The tasks waiting on one side of a connection (or on a listener), and
//! waking them.
//!
//! Usually one task waits per side: a reader, a writer, the callback
//! driver. Sometimes several do: the driver flushing while a task awaits
//! `finish_output` on a stream over the same socket, the driver reading
//! while a task awaits a read on its stream, tasks sharing a server's
//! accept. Every one of them must be woken when what it waits for happens,
//! and none may be woken merely because another polled: two tasks that
//! each woke the one they replaced would wake each other in turn, two CPUs
//! busy for as long as the wait lasts. So [`Waiters`] keeps them all, and a
//! readiness wait polled for several wakes them all through one waker.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};

/// The tasks waiting on one side.
#[derive(Default)]
pub(crate) enum Waiters {
    #[default]
    None,
    One(Waker),
    /// Two tasks or more; also the waker a readiness wait is polled with.
    Many(Arc<FanOut>),
}

/// Wakes every task it holds, once: they are forgotten as they are woken,
/// and a task still waiting registers again when it is next polled.
pub(crate) struct FanOut(Mutex<Vec<Waker>>);

impl FanOut {
    fn take(&self) -> Vec<Waker> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

impl Wake for FanOut {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.take().into_iter().for_each(Waker::wake);
    }
}

impl Waiters {
    /// Adds the task of `cx`, unless it is already here.
    #[inline]
    pub(crate) fn register(&mut self, cx: &Context<'_>) {
        // The one task polling again: the usual case, and nothing to do.
        if let Waiters::One(w) = self {
            if same_task(w, cx.waker()) {
                return;
            }
        }
        self.add(cx.waker());
    }

    #[cold]
    fn add(&mut self, new: &Waker) {
        match std::mem::take(self) {
            Waiters::None => *self = Waiters::One(new.clone()),
            Waiters::One(old) => {
                *self = Waiters::Many(Arc::new(FanOut(Mutex::new(vec![old, new.clone()]))));
            }
            Waiters::Many(fan) => {
                let mut list = fan.0.lock().unwrap_or_else(|e| e.into_inner());
                if list.is_empty() {
                    // Everyone was woken: start over with this one task.
                    drop(list);
                    *self = Waiters::One(new.clone());
                } else {
                    if !list.iter().any(|w| same_task(w, new)) {
                        list.push(new.clone());
                    }
                    drop(list);
                    *self = Waiters::Many(fan);
                }
            }
        }
    }

    /// Takes them all, to wake once the lock they live under is released.
    #[inline]
    pub(crate) fn take(&mut self) -> Waiters {
        std::mem::take(self)
    }

    /// Wakes every task taken.
    #[inline]
    pub(crate) fn wake(self) {
        match self {
            Waiters::None => {}
            Waiters::One(w) => w.wake(),
            Waiters::Many(fan) => fan.wake_by_ref(),
        }
    }

    /// Polls a readiness wait so that its wake-up reaches every task here
    /// (`cx` is registered first).
    #[inline]
    pub(crate) fn poll<F: Future + Unpin>(&mut self, fut: &mut F, cx: &mut Context<'_>) -> Poll<F::Output> {
        self.register(cx);
        match self {
            Waiters::Many(fan) => Pin::new(fut).poll(&mut Context::from_waker(&Waker::from(fan.clone()))),
            _ => Pin::new(fut).poll(cx),
        }
    }

    /// The wait `cx`'s task polled is over: the other tasks are woken to
    /// try again (the bytes or the room may be theirs to take), and `cx`'s
    /// task, which goes on now, stays registered only if it was alone.
    #[inline]
    pub(crate) fn ready(&mut self, cx: &Context<'_>) {
        match self {
            Waiters::One(w) if same_task(w, cx.waker()) => {}
            _ => self.wake_others(cx.waker()),
        }
    }

    #[cold]
    fn wake_others(&mut self, me: &Waker) {
        match self.take() {
            Waiters::Many(fan) => {
                for w in fan.take() {
                    if !same_task(&w, me) {
                        w.wake();
                    }
                }
            }
            other => other.wake(),
        }
    }
}

/// Whether two wakers wake the same task: `will_wake`, or the same data
/// pointer. tokio's `block_on` polls its future (the body of
/// `#[tokio::main]`) with a borrowed waker whose clones carry another copy
/// of its vtable (tokio 1.54, release builds), so a clone never
/// `will_wake`s the waker it came from; the data pointer, the task's own
/// address for every executor we know, is the same. Taken for two tasks,
/// each poll of a waiting read woke the previous "task" (itself), and the
/// read spun for as long as it waited (`tests/executors.rs`).
#[inline]
pub(crate) fn same_task(a: &Waker, b: &Waker) -> bool {
    a.will_wake(b) || a.data() == b.data()
}

/// Polls the readiness wait kept in `slot` (`make` starts one) for the
/// task of `cx`, among the others in `waiters`.
///
/// Not `Async::poll_readable` / `poll_writable`: they record the reactor's
/// tick anew at every registration, and ignore an event of the tick they
/// recorded. A task that is woken and polls again after the reactor thread
/// has begun its next tick therefore takes each event as stale, and can go
/// on doing so: a read then hangs with its bytes or its end of file in the
/// kernel (seen in `tests/faults.rs`; smol-rs/async-io#156). The owned
/// futures record the tick once, when the wait starts.
pub(crate) fn poll_ready<F>(
    slot: &mut Option<F>,
    make: impl FnOnce() -> F,
    waiters: &mut Waiters,
    cx: &mut Context<'_>,
) -> Poll<std::io::Result<()>>
where
    F: Future<Output = std::io::Result<()>> + Unpin,
{
    let res = waiters.poll(slot.get_or_insert_with(make), cx);
    if res.is_ready() {
        *slot = None;
        waiters.ready(cx);
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[derive(Default)]
    struct Count(AtomicUsize);

    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn task() -> (Arc<Count>, Waker) {
        let c = Arc::new(Count::default());
        (c.clone(), Waker::from(c))
    }

    fn woken(c: &Count) -> usize {
        c.0.load(Ordering::Relaxed)
    }

    #[test]
    fn registering_wakes_nobody_and_wake_reaches_every_task_once() {
        let ((a, wa), (b, wb)) = (task(), task());
        let mut w = Waiters::None;
        for _ in 0..3 {
            w.register(&Context::from_waker(&wa));
            w.register(&Context::from_waker(&wb));
        }
        assert_eq!((woken(&a), woken(&b)), (0, 0), "polling again wakes nobody");
        w.take().wake();
        assert_eq!((woken(&a), woken(&b)), (1, 1));
        w.take().wake();
        assert_eq!((woken(&a), woken(&b)), (1, 1), "taken once");
    }

    #[test]
    fn a_wait_polled_by_two_tasks_wakes_both_and_its_end_wakes_the_other() {
        let ((a, wa), (b, wb)) = (task(), task());
        let mut w = Waiters::None;
        let mut pending = futures_lite::future::pending::<()>();
        assert!(w.poll(&mut pending, &mut Context::from_waker(&wa)).is_pending());
        assert!(w.poll(&mut pending, &mut Context::from_waker(&wb)).is_pending());
        // The reactor would wake the fan-out it was polled with.
        let Waiters::Many(fan) = &w else {
            panic!("two tasks, one fan-out")
        };
        Waker::from(fan.clone()).wake();
        assert_eq!((woken(&a), woken(&b)), (1, 1));
        // Both poll again; `a` finds the wait over: `b` is woken, not `a`.
        w.register(&Context::from_waker(&wa));
        w.register(&Context::from_waker(&wb));
        w.ready(&Context::from_waker(&wa));
        assert_eq!((woken(&a), woken(&b)), (1, 2));
    }

    #[test]
    fn a_lone_task_stays_registered_across_waits() {
        let (a, wa) = task();
        let mut w = Waiters::None;
        w.register(&Context::from_waker(&wa));
        w.ready(&Context::from_waker(&wa));
        assert!(matches!(w, Waiters::One(_)));
        assert_eq!(woken(&a), 0);
    }
}
