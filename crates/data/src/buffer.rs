//! A shared pixel buffer that readers fill in place, in parallel, without first zeroing it:
//! on this kind of machine the first touch of fresh memory (page faults) is a large part of
//! a load, so each page is touched once, by the thread that writes its pixels.

use std::mem::MaybeUninit;
use std::sync::Arc;

/// An `n`-byte shared buffer, not yet initialised.
pub(crate) fn uninit(n: usize) -> Arc<[MaybeUninit<u8>]> {
    let mut buf = Arc::<[u8]>::new_uninit_slice(n);
    advise_huge_pages(slots(&mut buf));
    buf
}

/// Size of an x86-64 / aarch64 transparent huge page.
const HUGE_PAGE: usize = 2 << 20;

/// The 2 MiB-aligned part `[start, end)` of the address range `[addr, addr + len)`, if it
/// holds at least one whole huge page.
fn huge_interior(addr: usize, len: usize) -> Option<(usize, usize)> {
    let start = addr.checked_next_multiple_of(HUGE_PAGE)?;
    let end = addr.checked_add(len)? / HUGE_PAGE * HUGE_PAGE;
    (end > start).then_some((start, end))
}

/// Asks the kernel to back the buffer's 2 MiB-aligned interior with huge pages (a hint; any
/// failure is logged and ignored). Buffers under 4 MiB are left alone.
#[cfg(target_os = "linux")]
fn advise_huge_pages(buf: &mut [MaybeUninit<u8>]) {
    if buf.len() < 2 * HUGE_PAGE {
        return;
    }
    let Some((start, end)) = huge_interior(buf.as_mut_ptr() as usize, buf.len()) else {
        return;
    };
    // SAFETY: `[start, end)` lies inside `buf`, which this thread holds uniquely and has not
    // yet written; MADV_HUGEPAGE changes only how the kernel backs these pages, never their
    // contents, their mapping or the allocator's bookkeeping, so no Rust invariant depends on
    // it. The pointer is page-aligned, as madvise requires.
    let rc = unsafe { libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE) };
    if rc != 0 {
        tracing::debug!(
            error = %std::io::Error::last_os_error(),
            "madvise(MADV_HUGEPAGE) refused; using small pages"
        );
    }
}

#[cfg(not(target_os = "linux"))]
fn advise_huge_pages(_buf: &mut [MaybeUninit<u8>]) {}

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
    fn huge_interior_is_the_aligned_inside() {
        const M: usize = HUGE_PAGE;
        assert_eq!(huge_interior(0, 3 * M), Some((0, 3 * M)));
        assert_eq!(huge_interior(16, 3 * M), Some((M, 3 * M)));
        assert_eq!(huge_interior(16, 2 * M), Some((M, 2 * M)));
        assert_eq!(huge_interior(16, 2 * M - 32), None);
        assert_eq!(huge_interior(M - 1, M + 1), Some((M, 2 * M)));
        assert_eq!(huge_interior(M + 1, M), None);
        assert_eq!(huge_interior(usize::MAX - 10, 5), None);
    }

    #[test]
    fn a_large_buffer_is_fully_writable_after_the_hint() {
        // 5 MiB + 3 bytes: the hint covers its aligned interior, every byte stays ours.
        let n = 5 * HUGE_PAGE / 2 + 3;
        let mut b = uninit(n);
        let src: Vec<u8> = (0..n).map(|i| (i % 251) as u8).collect();
        let written = write(slots(&mut b), &src);
        assert_eq!(&*finish(b, written), src.as_slice());
    }

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
