//! [`LoopLocal`]: state for callbacks that all run on one event loop,
//! mutated without `Arc<Mutex<…>>`.

use std::any::Any;
use std::cell::RefCell;
use std::fmt;
use std::io;
use std::marker::PhantomData;

/// The values of one loop's [`LoopLocal`]s, dropped with the loop.
#[derive(Default)]
pub(crate) struct Locals(RefCell<Vec<Option<Box<dyn Any>>>>);

/// A value that lives on the current event loop, reached from its
/// callbacks by a key that is `Copy + Send + Sync`.
///
/// The callbacks are `Fn + Send + Sync` (a server's run at once on a
/// multi-threaded executor), so state shared between them usually needs
/// `Arc<Mutex<…>>`. On [`with_event_loop`](crate::with_event_loop) they
/// all run on the loop's thread: a `LoopLocal` keeps the value there, not
/// `Send`, not locked, and the key is all a callback captures. The value
/// is dropped when the loop ends.
///
/// # Examples
///
/// A room of clients, kept without a lock:
///
/// ```
/// use streamish::{LoopLocal, Socket, tcp_connect, tcp_server, with_event_loop};
///
/// with_event_loop(|| {
///     let room = LoopLocal::new(Vec::<Socket>::new())?;
///     let server = tcp_server("127.0.0.1", 0)
///         .connect_cb(move |sock| room.with(|r| r.push(sock.clone())))
///         .event_cb(move |ev| {
///             let sock = ev.socket().unwrap();
///             room.with(|r| r.retain(|s| !s.ptr_eq(sock)));
///             sock.server().unwrap().close();
///         })
///         .spawn()?;
///     tcp_connect("127.0.0.1", server.local_addr().port())
///         .connect_cb(|sock| sock.close())
///         .spawn()?;
///     Ok(())
/// })
/// .unwrap();
/// ```
pub struct LoopLocal<T> {
    loop_id: usize,
    slot: usize,
    _value: PhantomData<fn() -> T>,
}

impl<T> Clone for LoopLocal<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for LoopLocal<T> {}

impl<T: 'static> LoopLocal<T> {
    /// Puts `value` on the current event loop. Fails outside
    /// [`with_event_loop`](crate::with_event_loop).
    pub fn new(value: T) -> io::Result<LoopLocal<T>> {
        let lp = super::event_loop::require_loop()?;
        let mut slots = lp.locals.0.borrow_mut();
        slots.push(Some(Box::new(value)));
        Ok(LoopLocal {
            loop_id: super::event_loop::loop_id(&lp),
            slot: slots.len() - 1,
            _value: PhantomData,
        })
    }

    /// Runs `f` with the value and returns what it returns.
    ///
    /// # Panics
    ///
    /// Off the thread of the loop that made it (or after that loop ended),
    /// and when called again for the same value from inside `f`.
    pub fn with<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        let lp = super::event_loop::require_loop().expect("LoopLocal::with outside its event loop");
        assert_eq!(
            super::event_loop::loop_id(&lp),
            self.loop_id,
            "LoopLocal::with on another event loop than its own"
        );
        // Taken out while `f` runs, so that `f` may use other values.
        let mut value = lp.locals.0.borrow_mut()[self.slot]
            .take()
            .expect("LoopLocal::with called again from inside its own `with`");
        let res = f(value.downcast_mut::<T>().expect("a LoopLocal's value keeps its type"));
        lp.locals.0.borrow_mut()[self.slot] = Some(value);
        res
    }
}

impl<T> fmt::Debug for LoopLocal<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoopLocal").field("slot", &self.slot).finish()
    }
}
