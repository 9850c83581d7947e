//! What changes rarely on a connection, under one lock (`Conn::ctl`):
//! the callback driver's waker, the socket's data, the clocks' settings,
//! why a connect failed, and what accepted the connection. Kept apart from
//! the two sides so that an idle connection stays small (decision 25); it
//! names nothing of the callback face, which reaches its own types
//! through [`Ctl::accepted_by`].

use std::any::Any;
use std::sync::Arc;
use std::task::Waker;
use std::time::Duration;

use crate::Event;

/// Something the connection carries for whoever accepted it (a callback
/// server's handle), shared by every connection it accepted: one thin
/// pointer per connection.
pub(crate) type Link = Arc<Box<dyn Any + Send + Sync>>;

#[derive(Default)]
pub(crate) struct Ctl {
    /// The callback driver's waker.
    pub(crate) driver: Option<Waker>,
    /// cl-async's `socket-data`.
    pub(crate) data: Option<Arc<dyn Any + Send + Sync>>,
    /// What accepted this connection (see [`Link`]).
    pub(crate) accepted_by: Option<Link>,
    /// What most connections never set, boxed on first use so that an
    /// idle connection carries 8 bytes for it.
    rare: Option<Box<Rare>>,
}

#[derive(Default)]
struct Rare {
    /// `(read, write)`.
    timeouts: (Option<Duration>, Option<Duration>),
    /// Why the connect failed, for the await side's errors.
    failure: Option<Event>,
}

impl Ctl {
    fn rare(&mut self) -> &mut Rare {
        self.rare.get_or_insert_with(Default::default)
    }

    /// The `(read, write)` timeouts.
    pub(crate) fn timeouts(&self) -> (Option<Duration>, Option<Duration>) {
        self.rare.as_ref().map(|r| r.timeouts).unwrap_or_default()
    }

    /// A copy of the event that failed the connect, if one did.
    pub(crate) fn failure(&self) -> Option<Event> {
        self.rare.as_ref()?.failure.as_ref().map(Event::duplicate)
    }

    /// Records why the connect failed (without its socket: no cycle).
    pub(crate) fn set_failure(&mut self, ev: &Event) {
        self.rare().failure = Some(ev.duplicate());
    }

    pub(crate) fn set_timeouts(&mut self, read: Option<Duration>, write: Option<Duration>) {
        if read.is_some() || write.is_some() || self.rare.is_some() {
            self.rare().timeouts = (read, write);
        }
    }
}
