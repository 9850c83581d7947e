//! Where bytes wait: the input buffer and the output queue.
//!
//! Neither does I/O; [`crate::conn`] moves bytes between them and the
//! socket. Both start without an allocation and give their memory back once
//! drained, so an idle connection costs no buffer space; the memory goes to
//! a small per-thread [`pool`] that the next busy connection takes from.

use std::collections::VecDeque;
use std::io::IoSlice;

use bytes::{Buf, Bytes, BytesMut};

use crate::pool;
use crate::tuning::{COPY_BELOW, MAX_HINT, MAX_READ, MIN_READ};

/// The input buffer: bytes read from the socket and not yet consumed.
///
/// A `BytesMut`, so a parser can leave a partial frame and read more behind
/// it, and drained reads leave as `Bytes` without a copy. Read sizes adapt
/// the way hyper's do: start at 8 KiB, double after a read that filled the
/// space, halve after two reads in a row that used less than half.
#[derive(Debug)]
pub(crate) struct InputBuf {
    buf: BytesMut,
    /// Bounded by `MAX_READ`: 32 bits keep an idle connection small.
    next: u32,
    short: u8,
}

impl InputBuf {
    pub(crate) fn new() -> InputBuf {
        InputBuf {
            buf: BytesMut::new(),
            next: MIN_READ as u32,
            short: 0,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.buf.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    pub(crate) fn as_slice(&self) -> &[u8] {
        &self.buf
    }

    /// Makes room for the next read and returns the buffer to read into
    /// (its spare capacity is the room: at least the adaptive read size).
    pub(crate) fn prepare(&mut self) -> &mut BytesMut {
        let next = self.next as usize;
        if self.buf.capacity() == 0 {
            // After a drained read that filled the buffer this is an empty
            // view of the allocation the application was handed: if it has
            // dropped those bytes already, the whole allocation is ours
            // again, without a `malloc` and a `free`.
            if !self.buf.try_reclaim(next) {
                self.buf = pool::take(next);
            }
        } else if self.buf.capacity() - self.buf.len() < next {
            self.buf.reserve(next);
        }
        &mut self.buf
    }

    /// The size the next read asks for at least.
    pub(crate) fn next_read(&self) -> usize {
        self.next as usize
    }

    /// Adapts the next read size to a read of `n` bytes.
    pub(crate) fn record(&mut self, n: usize) {
        let next = self.next as usize;
        if n >= next {
            self.next = (next * 2).min(MAX_READ) as u32;
            self.short = 0;
        } else if n < next / 2 {
            self.short += 1;
            if self.short >= 2 {
                self.next = (next / 2).max(MIN_READ) as u32;
                self.short = 0;
            }
        } else {
            self.short = 0;
        }
    }

    /// Copies up to `out.len()` buffered bytes into `out` and consumes them.
    pub(crate) fn copy_to(&mut self, out: &mut [u8]) -> usize {
        let n = out.len().min(self.buf.len());
        out[..n].copy_from_slice(&self.buf[..n]);
        self.consume(n);
        n
    }

    /// Takes every buffered byte, without copying. What is left may be an
    /// empty view of the allocation the bytes live in: the next read takes
    /// that allocation back if the application has let go of them
    /// ([`InputBuf::prepare`]), and going idle lets go of it
    /// ([`InputBuf::release_if_empty`]).
    pub(crate) fn take_all(&mut self) -> Bytes {
        self.buf.split().freeze()
    }

    pub(crate) fn consume(&mut self, n: usize) {
        if n == self.buf.len() {
            // Not `advance`: emptied this way the buffer keeps its whole
            // room, and goes back to the pool without being reclaimed.
            self.buf.clear();
        } else {
            self.buf.advance(n);
        }
    }

    /// Appends bytes (cl-async's `stream-append-bytes`).
    pub(crate) fn append(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// Drops every buffered byte and the allocation.
    pub(crate) fn clear(&mut self) {
        self.buf = BytesMut::new();
    }

    /// Gives the allocation back if nothing is buffered: called when the
    /// connection is about to wait, so idle connections hold no buffer.
    /// It goes to this thread's [`pool`], for the next connection to read.
    pub(crate) fn release_if_empty(&mut self) {
        if self.buf.is_empty() {
            // An empty view of a drained read's allocation comes back whole
            // if the application has dropped those bytes; if not, the pool
            // drops the view and the allocation goes with the bytes.
            pool::give(std::mem::take(&mut self.buf));
        }
    }
}

/// The output queue: bytes accepted from the user and not yet handed to the
/// kernel, in order.
///
/// Small writes are copied into one flat `tail`; large `Bytes` are queued as
/// chunks of their own without a copy. Chunks always precede the tail, so
/// order is the order of the calls. [`OutputQueue::io_slices`] hands out up
/// to [`MAX_IOV`](crate::tuning::MAX_IOV) slices for one vectored write.
#[derive(Debug, Default)]
pub(crate) struct OutputQueue {
    /// Boxed, and only while chunks are queued: most connections never
    /// queue one, and an idle connection then carries 8 bytes, not 32 (the
    /// extra allocation clippy warns of is made once per drain cycle that
    /// queues a chunk, beside the deque's own).
    #[allow(clippy::box_collection)]
    chunks: Option<Box<VecDeque<Bytes>>>,
    tail: BytesMut,
    len: usize,
    /// The most the tail held between two drains. A drained queue frees its
    /// memory (idle connections hold none) and the next first write
    /// reserves this much at once, so a steady writer does not pay for
    /// growing the tail by doubling on every cycle. Both are at most
    /// `MAX_HINT`: 32 bits keep an idle connection small.
    hint: u32,
    filled: u32,
}

impl OutputQueue {
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Queues a copy of `data`.
    #[inline]
    pub(crate) fn push_slice(&mut self, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        if self.tail.capacity() == 0 {
            self.tail = pool::take(data.len().max(self.hint as usize));
        }
        self.tail.extend_from_slice(data);
        self.len += data.len();
    }

    /// Queues `data`, without a copy unless it is small.
    pub(crate) fn push_bytes(&mut self, data: Bytes) {
        if data.len() < COPY_BELOW {
            return self.push_slice(&data);
        }
        let chunks = self.chunks.get_or_insert_with(Default::default);
        if !self.tail.is_empty() {
            chunks.push_back(self.tail.split().freeze());
        }
        self.len += data.len();
        chunks.push_back(data);
    }

    /// The queued bytes as one slice, when they are one: no chunk queued
    /// (the common case, which then needs no vectored write).
    pub(crate) fn as_single(&self) -> Option<&[u8]> {
        self.chunks
            .as_ref()
            .is_none_or(|c| c.is_empty())
            .then_some(&self.tail[..])
    }

    /// Fills `out` with the first queued bytes, in order, at most `limit`
    /// of them; returns how many slices.
    pub(crate) fn io_slices<'a>(&'a self, out: &mut [IoSlice<'a>], limit: usize) -> usize {
        let parts = self
            .chunks
            .iter()
            .flat_map(|c| c.iter())
            .map(|c| &c[..])
            .chain([&self.tail[..]]);
        let (mut n, mut room) = (0, limit);
        for part in parts.filter(|p| !p.is_empty()).take(out.len()) {
            if room == 0 {
                break;
            }
            let part = &part[..part.len().min(room)];
            room -= part.len();
            out[n] = IoSlice::new(part);
            n += 1;
        }
        n
    }

    /// Drops the first `n` bytes, which the kernel has taken.
    pub(crate) fn advance(&mut self, mut n: usize) {
        debug_assert!(n <= self.len);
        // The tail is at its fullest when the kernel takes from it (noted
        // here, not on every small write).
        self.filled = self.filled.max(self.tail.len().min(MAX_HINT) as u32);
        if n == self.len {
            // All of it (the usual case): nothing to walk, and the tail
            // goes back to the pool with its whole room.
            return self.clear();
        }
        self.len -= n;
        if let Some(chunks) = self.chunks.as_mut() {
            while let Some(front) = chunks.front_mut() {
                if front.len() > n {
                    front.advance(n);
                    return;
                }
                n -= front.len();
                chunks.pop_front();
            }
        }
        self.tail.advance(n);
    }

    /// Drops every queued byte (cl-async's `clear-output`) and gives the
    /// memory back: the tail to the pool (which empties it), the chunks
    /// with their deque.
    pub(crate) fn clear(&mut self) {
        self.len = 0;
        self.hint = self.filled;
        self.filled = 0;
        // Chunks first: one may share the tail's allocation, which the
        // pool can take back whole only once that chunk is gone.
        self.chunks = None;
        pool::give(std::mem::take(&mut self.tail));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tuning::MAX_IOV;

    fn drain(q: &mut OutputQueue) -> Vec<u8> {
        let mut out = Vec::new();
        while !q.is_empty() {
            let mut iov = [IoSlice::new(&[]); MAX_IOV];
            let n = q.io_slices(&mut iov, usize::MAX);
            // Take a prime-sized bite to exercise partial advances.
            let mut want = 7usize;
            let mut took = 0;
            for s in &iov[..n] {
                let k = s.len().min(want);
                out.extend_from_slice(&s[..k]);
                want -= k;
                took += k;
                if want == 0 {
                    break;
                }
            }
            q.advance(took);
        }
        out
    }

    /// Fills the input buffer as a read that used all its room would.
    fn fill(b: &mut InputBuf) -> *const u8 {
        let buf = b.prepare();
        let room = buf.capacity() - buf.len();
        buf.extend_from_slice(&vec![7; room]);
        buf.as_ptr()
    }

    #[test]
    fn a_drained_reads_allocation_comes_back_once_the_bytes_are_dropped() {
        let mut b = InputBuf::new();
        let at = fill(&mut b);
        let bytes = b.take_all();
        drop(bytes);
        assert_eq!(fill(&mut b), at, "the same allocation, taken back");
    }

    #[test]
    fn a_drained_reads_allocation_is_not_held_while_the_bytes_live() {
        let mut b = InputBuf::new();
        let at = fill(&mut b);
        let bytes = b.take_all();
        assert_ne!(fill(&mut b), at, "the application's bytes are left alone");
        assert!(bytes.is_unique(), "the next read let go of their allocation");
        assert!(bytes.iter().all(|&x| x == 7));
        // Going idle with the bytes still handed out lets go of them too.
        let mut idle = InputBuf::new();
        fill(&mut idle);
        let held = idle.take_all();
        idle.release_if_empty();
        assert!(held.is_unique(), "an idle connection holds no part of it");
    }

    #[test]
    fn queue_keeps_order_across_copies_and_chunks() {
        let mut q = OutputQueue::default();
        let big = Bytes::from(vec![b'B'; 5000]);
        q.push_slice(b"ab");
        q.push_bytes(big.clone());
        q.push_bytes(Bytes::from_static(b"cd"));
        q.push_bytes(big);
        q.push_slice(b"");
        q.push_slice(b"ef");
        assert_eq!(q.len(), 2 + 5000 + 2 + 5000 + 2);
        let mut want = b"ab".to_vec();
        want.extend(vec![b'B'; 5000]);
        want.extend(b"cd");
        want.extend(vec![b'B'; 5000]);
        want.extend(b"ef");
        assert_eq!(drain(&mut q), want);
        assert_eq!(q.len(), 0);
    }

    #[test]
    fn io_slices_stop_at_the_limit() {
        let mut q = OutputQueue::default();
        q.push_bytes(Bytes::from(vec![b'A'; 5000]));
        q.push_bytes(Bytes::from(vec![b'B'; 5000]));
        q.push_slice(b"tail");
        let lens = |limit| {
            let mut iov = [IoSlice::new(&[]); MAX_IOV];
            let n = q.io_slices(&mut iov, limit);
            iov[..n].iter().map(|s| s.len()).collect::<Vec<_>>()
        };
        assert_eq!(lens(usize::MAX), [5000, 5000, 4]);
        assert_eq!(lens(7000), [5000, 2000], "the last slice is cut to the limit");
        assert_eq!(lens(5000), [5000]);
        assert_eq!(lens(10_002), [5000, 5000, 2]);
        assert_eq!(lens(0), Vec::<usize>::new());
    }

    #[test]
    fn read_size_adapts() {
        let mut b = InputBuf::new();
        assert_eq!(b.next_read(), MIN_READ);
        b.record(MIN_READ);
        assert_eq!(b.next_read(), 2 * MIN_READ);
        for _ in 0..20 {
            b.record(MAX_READ);
        }
        assert_eq!(b.next_read(), MAX_READ);
        b.record(10);
        assert_eq!(b.next_read(), MAX_READ, "one short read does not shrink");
        b.record(10);
        assert_eq!(b.next_read(), MAX_READ / 2);
    }
}
