//! Drained buffers kept per thread for the next connection that needs one.
//!
//! A connection gives its input buffer back when it goes idle and its
//! output tail back when the kernel has taken it (so an idle connection
//! holds no buffer, [`crate::buf`]). With many connections that each move a
//! small message and wait, that would be an allocation and a free of
//! several kilobytes per read and per write (glibc keeps no per-thread
//! cache for blocks this size); with one connection moving bulk data,
//! freeing a large buffer at the top of the heap lets glibc give the memory
//! back, and the next allocation faults it in page by page. The few
//! buffers in flight at any moment are therefore passed from connection to
//! connection through a small per-thread stash instead (decision 27).
//!
//! The stash is bounded: at most [`POOL_KEEP`] buffers and [`POOL_BUDGET`] bytes of
//! capacity per thread, whatever the number of connections; buffers
//! smaller than [`POOL_SMALLEST`] or larger than [`POOL_LARGEST`] go back to the
//! allocator. A kept buffer may be the free end of an allocation whose
//! front a `Bytes` handed to the application still holds (the callback
//! face's drained reads): it never touches those bytes, and the allocation
//! is freed once both are gone.

use std::cell::RefCell;

use crate::tuning::{POOL_BUDGET, POOL_KEEP, POOL_LARGEST, POOL_SMALLEST};
use bytes::BytesMut;

thread_local! {
    static SPARE: RefCell<Vec<BytesMut>> = const { RefCell::new(Vec::new()) };
}

/// An empty buffer with room for at least `min` bytes: a kept one if this
/// thread has one large enough, a new one (of at least [`POOL_SMALLEST`] bytes)
/// otherwise.
pub(crate) fn take(min: usize) -> BytesMut {
    if min <= POOL_LARGEST {
        // `try_with`: a connection used from another thread-local's
        // destructor finds the stash gone, and allocates.
        let kept = SPARE.try_with(|s| {
            let mut s = s.borrow_mut();
            let i = s.iter().rposition(|b| b.capacity() >= min)?;
            Some(s.swap_remove(i))
        });
        if let Ok(Some(buf)) = kept {
            return buf;
        }
    }
    // Small requests (an output tail for a short message) get a buffer
    // worth keeping, so that they can be served from the stash next time.
    BytesMut::with_capacity(min.max(POOL_SMALLEST))
}

/// Gives an emptied buffer back: kept if it is of a size worth keeping and
/// the stash has room; freed otherwise.
pub(crate) fn give(mut buf: BytesMut) {
    buf.clear();
    if buf.capacity() < POOL_SMALLEST {
        // Emptied past most of its room (the room before the read position
        // is not counted), or an empty view left by a drained read that
        // filled its buffer: take that room back, which works only when no
        // `Bytes` split from it is alive. A buffer emptied with `clear`
        // (the usual case) never needs it.
        let _ = buf.try_reclaim(POOL_SMALLEST);
    }
    let cap = buf.capacity();
    if !(POOL_SMALLEST..=POOL_LARGEST).contains(&cap) {
        return;
    }
    let _ = SPARE.try_with(|s| {
        let mut s = s.borrow_mut();
        // A kept buffer's capacity does not change, so the sum over the
        // few kept is the stash's size.
        if s.len() < POOL_KEEP && s.iter().map(BytesMut::capacity).sum::<usize>() + cap <= POOL_BUDGET {
            s.push(buf);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_given_buffer_is_taken_again_whole() {
        let mut buf = BytesMut::with_capacity(POOL_SMALLEST);
        buf.extend_from_slice(&[7; 100]);
        let _ = buf.split_to(60);
        let at = buf.as_ptr();
        give(buf);
        let again = take(128);
        assert!(again.is_empty());
        assert_eq!(again.capacity(), POOL_SMALLEST);
        assert_eq!(
            again.as_ptr(),
            at.wrapping_sub(60),
            "the room before the read position is reclaimed"
        );
    }

    fn drain_stash() {
        SPARE.with(|s| s.borrow_mut().clear());
    }

    fn kept() -> usize {
        SPARE.with(|s| s.borrow().len())
    }

    #[test]
    fn small_and_large_buffers_are_not_kept() {
        drain_stash();
        give(BytesMut::with_capacity(16));
        give(BytesMut::with_capacity(POOL_LARGEST + 1));
        assert_eq!(kept(), 0);
    }

    #[test]
    fn a_kept_buffer_never_touches_bytes_split_from_it() {
        drain_stash();
        let mut buf = BytesMut::with_capacity(4 * POOL_SMALLEST);
        buf.extend_from_slice(b"abc");
        let frozen = buf.split().freeze();
        give(buf);
        let mut again = take(POOL_SMALLEST);
        again.extend_from_slice(&[0xff; POOL_SMALLEST]);
        assert_eq!(&frozen[..], b"abc");
        drain_stash();
    }

    #[test]
    fn the_stash_is_bounded_in_count_and_bytes() {
        drain_stash();
        for _ in 0..POOL_KEEP * 2 {
            give(BytesMut::with_capacity(POOL_SMALLEST));
        }
        assert_eq!(kept(), POOL_KEEP);
        drain_stash();
        for _ in 0..POOL_KEEP {
            give(BytesMut::with_capacity(POOL_LARGEST));
        }
        assert_eq!(kept(), POOL_BUDGET / POOL_LARGEST);
        drain_stash();
    }
}
