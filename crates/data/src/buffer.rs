//! A shared pixel buffer that readers fill in place, in parallel, without first zeroing it:
//! on this kind of machine the first touch of fresh memory (page faults) is a large part of
//! a load, so each page is touched once, by the thread that writes its pixels.

use std::mem::MaybeUninit;
use std::sync::Arc;

/// An `n`-byte shared buffer, not yet initialised.
pub(crate) fn uninit(n: usize) -> Arc<[MaybeUninit<u8>]> {
    Arc::<[u8]>::new_uninit_slice(n)
}

/// The unique mutable view of a fresh buffer from [`uninit`].
pub(crate) fn slots(buf: &mut Arc<[MaybeUninit<u8>]>) -> &mut [MaybeUninit<u8>] {
    Arc::get_mut(buf).expect("a fresh Arc is unique")
}

/// Copies `src` into the start of `dst`; returns the number of bytes written (`src.len()`).
/// Panics if `dst` is shorter, like `copy_from_slice`.
pub(crate) fn write(dst: &mut [MaybeUninit<u8>], src: &[u8]) -> usize {
    for (d, &s) in dst[..src.len()].iter_mut().zip(src) {
        d.write(s);
    }
    src.len()
}

/// The initialised buffer, after checking that `written` (the sum of the byte counts returned
/// by [`write`] over disjoint parts of the buffer) covers all of it.
pub(crate) fn finish(buf: Arc<[MaybeUninit<u8>]>, written: usize) -> Arc<[u8]> {
    assert_eq!(written, buf.len(), "every byte of the buffer must be written");
    // SAFETY: the writers filled disjoint parts of `buf` (each `&mut` sub-slice is written by
    // one `write` call per byte range) and their byte counts add up to its length, so every
    // element is initialised.
    unsafe { buf.assume_init() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filled_buffer_reads_back() {
        let mut b = uninit(5);
        let s = slots(&mut b);
        let (a, c) = s.split_at_mut(2);
        let n = write(a, &[1, 2]) + write(c, &[3, 4, 5]);
        assert_eq!(&*finish(b, n), &[1, 2, 3, 4, 5]);
    }

    #[test]
    #[should_panic(expected = "every byte")]
    fn a_short_fill_is_refused() {
        let mut b = uninit(3);
        let n = write(slots(&mut b), &[1, 2]);
        let _ = finish(b, n);
    }
}
