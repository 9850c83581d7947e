//! The tasks waiting on one side of a connection (or on a listener), and
//! waking them.
//!
//! A task waits through a handle (a stream, a driver, an accept future), and
//! the handle's [`WaitId`] is its key here: a task that polls again replaces
//! its own waker, and a handle that goes removes its entry, so a canceled
//! wait leaves at most one waker behind per live handle, as
//! `Async::poll_readable` does per direction. No guess about whether two
//! wakers belong to one task is needed.
//!
//! Usually one task waits per side, kept inline. When several do (the
//! driver reading while a task awaits a read on a stream of the same
//! socket, two tasks sharing a server's accept), the readiness wait is
//! polled with a [`FanOut`] waker that wakes them all, so none wakes
//! another merely by polling.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};

/// A handle's key among the waiters of its connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct WaitId(u32);

impl WaitId {
    /// The first key an [`Ids`] hands out.
    pub(crate) const FIRST: WaitId = WaitId(0);
}

/// Hands out [`WaitId`]s, unique per connection (or listener).
#[derive(Default)]
pub(crate) struct Ids(AtomicU32);

impl Ids {
    pub(crate) fn next(&self) -> WaitId {
        WaitId(self.0.fetch_add(1, Ordering::Relaxed))
    }
}

/// The tasks waiting on one side.
#[derive(Default)]
pub(crate) enum Waiters {
    #[default]
    None,
    One(WaitId, Waker),
    /// Two handles or more; also the waker a readiness wait is polled with.
    Many(Arc<FanOut>),
}

/// Wakes every task it holds, once: they are forgotten as they are woken,
/// and a task still waiting registers again when it is next polled.
#[derive(Default)]
pub(crate) struct FanOut(Mutex<Vec<(WaitId, Waker)>>);

impl FanOut {
    fn list(&self) -> std::sync::MutexGuard<'_, Vec<(WaitId, Waker)>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Wake for FanOut {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        let all = std::mem::take(&mut *self.list());
        all.into_iter().for_each(|(_, w)| w.wake());
    }
}

/// Stores `new` in `slot` unless the waker there already wakes its task.
fn replace(slot: &mut Waker, new: &Waker) {
    if !slot.will_wake(new) {
        slot.clone_from(new);
    }
}

impl Waiters {
    /// Registers the task polling through handle `id`, replacing the waker
    /// that handle left before.
    #[inline]
    pub(crate) fn register(&mut self, id: WaitId, cx: &Context<'_>) {
        match self {
            Waiters::One(old, w) if *old == id => replace(w, cx.waker()),
            Waiters::None => *self = Waiters::One(id, cx.waker().clone()),
            _ => self.add(id, cx.waker()),
        }
    }

    #[cold]
    fn add(&mut self, id: WaitId, new: &Waker) {
        match std::mem::take(self) {
            Waiters::None => *self = Waiters::One(id, new.clone()),
            Waiters::One(old, w) => {
                *self = Waiters::Many(Arc::new(FanOut(Mutex::new(vec![(old, w), (id, new.clone())]))));
            }
            Waiters::Many(fan) => {
                let mut list = fan.list();
                match list.iter_mut().find(|(k, _)| *k == id) {
                    Some((_, w)) => replace(w, new),
                    None => list.push((id, new.clone())),
                }
                drop(list);
                *self = Waiters::Many(fan);
            }
        }
    }

    /// Removes handle `id`'s waker: the handle is gone, or its wait is over.
    pub(crate) fn remove(&mut self, id: WaitId) {
        match self {
            Waiters::One(k, _) if *k == id => *self = Waiters::None,
            Waiters::Many(fan) => fan.list().retain(|(k, _)| *k != id),
            _ => {}
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
            Waiters::One(_, w) => w.wake(),
            Waiters::Many(fan) => fan.wake_by_ref(),
        }
    }

    /// Whether no handle waits.
    pub(crate) fn is_empty(&self) -> bool {
        match self {
            Waiters::None => true,
            Waiters::One(..) => false,
            Waiters::Many(fan) => fan.list().is_empty(),
        }
    }

    /// How many handles wait (for tests).
    #[cfg(test)]
    fn len(&self) -> usize {
        match self {
            Waiters::None => 0,
            Waiters::One(..) => 1,
            Waiters::Many(fan) => fan.list().len(),
        }
    }

    /// Polls a readiness wait so that its wake-up reaches every task here
    /// (handle `id`'s task is registered first).
    #[inline]
    pub(crate) fn poll<F: Future + Unpin>(&mut self, id: WaitId, fut: &mut F, cx: &mut Context<'_>) -> Poll<F::Output> {
        self.register(id, cx);
        match self {
            Waiters::Many(fan) => Pin::new(fut).poll(&mut Context::from_waker(&Waker::from(fan.clone()))),
            _ => Pin::new(fut).poll(cx),
        }
    }

    /// The wait handle `id` polled is over: the other tasks are woken to
    /// try again (the bytes or the room may be theirs to take), and `id`
    /// stays registered only if it was alone.
    #[inline]
    pub(crate) fn ready(&mut self, id: WaitId) {
        match self {
            Waiters::One(k, _) if *k == id => {}
            _ => self.wake_others(id),
        }
    }

    #[cold]
    fn wake_others(&mut self, me: WaitId) {
        match self.take() {
            Waiters::Many(fan) => {
                let all = std::mem::take(&mut *fan.list());
                all.into_iter().filter(|(k, _)| *k != me).for_each(|(_, w)| w.wake());
            }
            other => other.wake(),
        }
    }
}

/// Polls the readiness wait kept in `slot` (`make` starts one) for handle
/// `id`'s task, among the others in `waiters`.
///
/// Not `Async::poll_readable` / `poll_writable`: they record the reactor's
/// tick anew at every registration, and ignore an event of the tick they
/// recorded, so a task that polls again after the reactor began its next
/// tick can take each event as stale and hang (smol-rs/async-io#156). The
/// owned futures record the tick once, when the wait starts.
pub(crate) fn poll_ready<F>(
    slot: &mut Option<F>,
    make: impl FnOnce() -> F,
    waiters: &mut Waiters,
    id: WaitId,
    cx: &mut Context<'_>,
) -> Poll<std::io::Result<()>>
where
    F: Future<Output = std::io::Result<()>> + Unpin,
{
    let res = waiters.poll(id, slot.get_or_insert_with(make), cx);
    if res.is_ready() {
        *slot = None;
        waiters.ready(id);
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

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

    const A: WaitId = WaitId(1);
    const B: WaitId = WaitId(2);

    #[test]
    fn registering_wakes_nobody_and_wake_reaches_every_task_once() {
        let ((a, wa), (b, wb)) = (task(), task());
        let mut w = Waiters::None;
        for _ in 0..3 {
            w.register(A, &Context::from_waker(&wa));
            w.register(B, &Context::from_waker(&wb));
        }
        assert_eq!(w.len(), 2, "one entry per handle");
        assert_eq!((woken(&a), woken(&b)), (0, 0), "polling again wakes nobody");
        w.take().wake();
        assert_eq!((woken(&a), woken(&b)), (1, 1));
        w.take().wake();
        assert_eq!((woken(&a), woken(&b)), (1, 1), "taken once");
    }

    #[test]
    fn a_handle_polled_with_new_wakers_keeps_one_entry_and_removes_it() {
        let mut w = Waiters::None;
        let tasks: Vec<_> = (0..1000).map(|_| task()).collect();
        for (_, waker) in &tasks {
            w.register(A, &Context::from_waker(waker));
        }
        w.register(B, &Context::from_waker(&tasks[0].1));
        assert_eq!(w.len(), 2);
        // Only the last waker of A and B's are held.
        assert_eq!(tasks.iter().filter(|(c, _)| Arc::strong_count(c) > 2).count(), 2);
        w.remove(A);
        w.remove(B);
        assert_eq!(w.len(), 0);
        assert!(tasks.iter().all(|(c, _)| Arc::strong_count(c) == 2));
    }

    #[test]
    fn a_wait_polled_by_two_tasks_wakes_both_and_its_end_wakes_the_other() {
        let ((a, wa), (b, wb)) = (task(), task());
        let mut w = Waiters::None;
        let mut pending = futures_lite::future::pending::<()>();
        assert!(w.poll(A, &mut pending, &mut Context::from_waker(&wa)).is_pending());
        assert!(w.poll(B, &mut pending, &mut Context::from_waker(&wb)).is_pending());
        let Waiters::Many(fan) = &w else {
            panic!("two tasks, one fan-out")
        };
        // The reactor would wake the fan-out it was polled with.
        Waker::from(fan.clone()).wake();
        assert_eq!((woken(&a), woken(&b)), (1, 1));
        // Both poll again; A finds the wait over: B is woken, not A.
        w.register(A, &Context::from_waker(&wa));
        w.register(B, &Context::from_waker(&wb));
        w.ready(A);
        assert_eq!((woken(&a), woken(&b)), (1, 2));
    }

    #[test]
    fn a_lone_task_stays_registered_across_waits() {
        let (a, wa) = task();
        let mut w = Waiters::None;
        w.register(A, &Context::from_waker(&wa));
        w.ready(A);
        assert!(matches!(w, Waiters::One(..)));
        assert_eq!(woken(&a), 0);
    }
}
