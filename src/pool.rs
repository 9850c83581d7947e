//! Drained buffers kept per thread for the next connection that needs one.
//!
//! A connection gives its input buffer back when it goes idle and its
//! output tail back when the kernel has taken it (so an idle connection
//! holds no buffer, [`crate::buf`]). With many connections that each move a
//! small message and wait, that is an allocation and a free of several
//! kilobytes per read and per write: in an echo server, two fifths of
//! streamish's own instructions went to `malloc` and `free` (glibc keeps no
//! per-thread cache for blocks this size). The few buffers in flight at any
//! moment are therefore passed from connection to connection through a
//! small per-thread stash instead.
//!
//! The stash is bounded in count and in buffer size, so it holds at most
//! [`KEEP`] × [`LARGEST`] bytes per thread, whatever the number of
//! connections; buffers of other sizes (a bulk transfer's 256 KiB reads)
//! go back to the allocator as before. A buffer is kept only when nothing
//! else refers to its memory (no `Bytes` split from it is alive).

use std::cell::RefCell;

use bytes::BytesMut;

/// How many buffers one thread keeps.
const KEEP: usize = 8;
/// The smallest buffer kept: the input buffer's first read size.
const SMALLEST: usize = crate::buf::MIN_READ;
/// The largest buffer kept: larger ones are rare enough that the allocator
/// is cheap next to the bytes they carry.
const LARGEST: usize = 64 * 1024;

thread_local! {
    static SPARE: RefCell<Vec<BytesMut>> = const { RefCell::new(Vec::new()) };
}

/// An empty buffer with room for at least `min` bytes: a kept one if this
/// thread has one large enough, a new one (of at least [`SMALLEST`] bytes)
/// otherwise.
pub(crate) fn take(min: usize) -> BytesMut {
    if min <= LARGEST {
        // `try_with`: a connection used from another thread-local's
        // destructor finds the stash gone, and allocates.
        let kept = SPARE.try_with(|s| {
            let mut s = s.borrow_mut();
            match s.last() {
                Some(b) if b.capacity() >= min => s.pop(),
                _ => None,
            }
        });
        if let Ok(Some(buf)) = kept {
            return buf;
        }
        // Small requests (an output tail for a short message) get a buffer
        // worth keeping, so that they can be served from the stash next time.
        return BytesMut::with_capacity(min.max(SMALLEST));
    }
    BytesMut::with_capacity(min)
}

/// Gives an emptied buffer back: kept if its whole allocation is free to
/// reuse, of a size worth keeping, and the stash has room; freed otherwise.
pub(crate) fn give(mut buf: BytesMut) {
    if buf.capacity() == 0 {
        return;
    }
    buf.clear();
    // Reclaims the room before the read position; fails (and the buffer is
    // freed) if a `Bytes` split from it still shares the allocation.
    if !buf.try_reclaim(SMALLEST) || buf.capacity() > LARGEST {
        return;
    }
    let _ = SPARE.try_with(|s| {
        let mut s = s.borrow_mut();
        if s.len() < KEEP {
            s.push(buf);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_given_buffer_is_taken_again_whole() {
        let mut buf = BytesMut::with_capacity(SMALLEST);
        buf.extend_from_slice(&[7; 100]);
        let _ = buf.split_to(60);
        let at = buf.as_ptr();
        give(buf);
        let again = take(128);
        assert!(again.is_empty());
        assert!(
            again.capacity() >= SMALLEST,
            "the room before the read position is reclaimed"
        );
        assert_ne!(again.as_ptr(), at);
    }

    #[test]
    fn shared_small_and_large_buffers_are_not_kept() {
        // Drain this thread's stash first.
        while SPARE.with(|s| s.borrow_mut().pop()).is_some() {}
        let mut shared = BytesMut::with_capacity(SMALLEST);
        shared.extend_from_slice(b"abc");
        let frozen = shared.split().freeze();
        give(shared);
        give(BytesMut::with_capacity(16));
        give(BytesMut::with_capacity(LARGEST + 1));
        assert_eq!(SPARE.with(|s| s.borrow().len()), 0);
        assert_eq!(&frozen[..], b"abc", "a split-off `Bytes` keeps its bytes");
    }

    #[test]
    fn the_stash_is_bounded() {
        for _ in 0..KEEP * 2 {
            give(BytesMut::with_capacity(SMALLEST));
        }
        assert_eq!(SPARE.with(|s| s.borrow().len()), KEEP);
        while SPARE.with(|s| s.borrow_mut().pop()).is_some() {}
    }
}
