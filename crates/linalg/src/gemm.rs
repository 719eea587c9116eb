//! f32 matrix products for the linear classifiers: the forward pass `S = X̃ Wᵀ` and the
//! backward pass `dW = Gᵀ X̃`, where `X̃` is a batch of u8 rows converted on the fly by a
//! per-feature affine map (mean subtraction and scaling), never materialised as f32.
//!
//! ```text
//! x̃_ik     = x_ik · scale_k + offset_k                 (u8 → f32, e.g. offset = −mean·scale)
//! forward:  S_ij  = Σ_k x̃_ik · W_jk                     (S: m x n, W: n x k, row-major)
//! backward: D_jk  = Σ_i G_ij · x̃_ik                     (G: m x n, D: n x k, row-major)
//! ```
//!
//! With a linear classifier on CIFAR-10 these are skinny products (`n = 10` classes,
//! `k = 3,072` features, `m` = a minibatch of 200 or a test set). The SIMD kernels keep
//! every accumulator of a register block (2 rows x up to 10 classes for the forward pass
//! with AVX-512, 2 rows x 5 classes with AVX2; 10 classes x 16 features for the backward pass
//! with AVX-512) in registers, convert each
//! byte once per block, and accumulate in f32 with one partial sum per vector lane (16 or 8
//! independent partial sums over `k`, then a tree reduction), which keeps the summation error
//! near `√(k/16)·ε` relative instead of `k·ε` for one running sum. The scalar twin
//! accumulates in f64 and is the reference the conformance test compares against.
//!
//! The SIMD forward passes (AVX-512 and AVX2) do not apply the affine map per element: once
//! per call they
//! packs `W' = W · diag(scale)` by blocks of 256 features (so a block stays in L1 while 16
//! rows pass over it, and the 10 rows of `W`, 12 KiB apart, no longer share one L1 set) and
//! computes `β_j = Σ_k offset_k W_jk` in f64; the inner loop then only widens bytes to f32
//! (exact) and multiplies: `S_ij = Σ_k x_ik W'_jk + β_j`. On AVX2 this made SGD on raw
//! CIFAR-10 1.35x faster and prediction 2.4x (docs/bench/linear.md), against a kernel that
//! streamed `W` from L2 and mapped every element. The rounding error is bounded by
//! the uncentred magnitude `Σ_k (|x_ik W'_jk| + |offset_k W_jk|)` (at most about twice the
//! centred one on mean-subtracted pixels; tested against f64).
//!
//! The AVX-512 backward pass folds the affine map out of its inner loop too, but keeps the
//! pixels centred: with `c_k` the integer nearest `−o_k/s_k` (the mean pixel for mean
//! subtraction) and `o'_k = o_k + c_k s_k` (`|o'_k| <= s_k/2`),
//! `D_jk = s_k · Σ_i G_ij (x_ik − c_k) + o'_k · Σ_i G_ij`; `x − c` is an exact small integer,
//! the first sum an f32 FMA chain over the rows, `Σ_i G_ij` is summed in f64 once per call,
//! and each output is one `fma`. Error bound and comparison in [`gemm_tn_u8_with`].
//!
//! For integer gradients (the multiclass SVM's `N·dS`), [`gemm_tn_i8u8_cols_with`] computes
//! `(N·dS)ᵀ X` exactly in i32 with AVX-512 VNNI on a copy of the batch interleaved 4 rows by
//! 4; the caller applies the affine map and `1/N` in f64 with one rounding.
//!
//! The kernel is chosen once per call ([`KernelKind::detect`], overridable by
//! `IMGCLASS_KERNEL=scalar|avx2|avx512`). Large products are split over rayon tasks by output
//! rows (forward) or by 32-aligned feature blocks (backward); every output element is
//! computed by the same instruction sequence whatever the split, so results do not depend on
//! the thread count.
//!
//! ```
//! use imgclass_linalg::gemm::{Affine, gemm_nt_u8, gemm_tn_u8};
//!
//! // two 3-pixel images, mean [1, 2, 3] subtracted (scale 1, offset −mean)
//! let rows: [&[u8]; 2] = [&[2, 2, 5], &[0, 4, 3]];
//! let (scale, offset) = ([1.0f32; 3], [-1.0f32, -2.0, -3.0]);
//! let pre = Affine { scale: &scale, offset: &offset };
//! // centred rows: [1, 0, 2] and [-1, 2, 0]
//! let w = [1.0f32, 1.0, 1.0, /* class 1 */ 0.5, -1.0, 2.0];
//! let mut s = [0.0f32; 4];
//! gemm_nt_u8(&rows, pre, &w, 2, &mut s)?;
//! assert_eq!(s, [3.0, 4.5, 1.0, -2.5]);
//!
//! // backward: D = Gᵀ X̃ with G = [[1, 0], [2, 1]]
//! let g = [1.0f32, 0.0, 2.0, 1.0];
//! let mut d = [0.0f32; 6];
//! gemm_tn_u8(&g, 2, &rows, pre, &mut d)?;
//! assert_eq!(d, [-1.0, 4.0, 2.0, -1.0, 2.0, 0.0]);
//! # Ok::<(), imgclass_linalg::gemm::GemmError>(())
//! ```

use rayon::prelude::*;

pub use crate::kernel::{KernelError, KernelKind};

/// Products at least this large (`m·n·k` multiply-adds) are split over rayon tasks.
pub const PARALLEL_THRESHOLD: usize = 1 << 21;

/// Why a product could not be computed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GemmError {
    /// A buffer does not have the length the shapes imply.
    #[error("{what} has length {found}, expected {expected}")]
    ShapeMismatch {
        /// Which buffer (`w`, `out`, `row`, `scale`, `offset`, `g`).
        what: &'static str,
        /// Expected length.
        expected: usize,
        /// Actual length.
        found: usize,
    },
    /// No kernel could be selected, or the requested one cannot run on this CPU.
    #[error(transparent)]
    Kernel(#[from] KernelError),
    /// An input that must be finite holds a NaN or an infinity.
    #[error("{what}[{index}] is not finite")]
    NonFinite {
        /// Which input (`w`, `scale`, `offset`).
        what: &'static str,
        /// The flat index of the first such value.
        index: usize,
    },
    /// [`cholesky`]: the matrix is not (numerically) positive definite; `pivot` is the first
    /// column whose pivot was not positive and finite.
    #[error("the matrix is not positive definite (pivot {pivot})")]
    NotPositiveDefinite {
        /// The column of that pivot.
        pivot: usize,
    },
}

/// The per-feature affine map that turns a u8 feature into f32:
/// `x̃_k = x_k · scale[k] + offset[k]`. Mean subtraction is `scale = 1, offset = −mean`.
#[derive(Debug, Clone, Copy)]
pub struct Affine<'a> {
    /// Multiplier per feature (length `k`).
    pub scale: &'a [f32],
    /// Added after scaling, per feature (length `k`).
    pub offset: &'a [f32],
}

fn check(what: &'static str, expected: usize, found: usize) -> Result<(), GemmError> {
    if expected == found { Ok(()) } else { Err(GemmError::ShapeMismatch { what, expected, found }) }
}

fn check_rows(rows: &[&[u8]], pre: Affine<'_>) -> Result<usize, GemmError> {
    let k = pre.scale.len();
    check("offset", k, pre.offset.len())?;
    for r in rows {
        check("row", k, r.len())?;
    }
    Ok(k)
}

/// Forward product `out = X̃ Wᵀ` (`out`: `rows.len() x n`, `w`: `n x k`, `k = scale.len()`),
/// with the kernel from [`KernelKind::detect`].
pub fn gemm_nt_u8(
    rows: &[&[u8]],
    pre: Affine<'_>,
    w: &[f32],
    n: usize,
    out: &mut [f32],
) -> Result<(), GemmError> {
    gemm_nt_u8_with(KernelKind::detect()?, rows, pre, w, n, out)
}

/// [`gemm_nt_u8`] with an explicit kernel.
pub fn gemm_nt_u8_with(
    kernel: KernelKind,
    rows: &[&[u8]],
    pre: Affine<'_>,
    w: &[f32],
    n: usize,
    out: &mut [f32],
) -> Result<(), GemmError> {
    let k = check_rows(rows, pre)?;
    check("w", n * k, w.len())?;
    check("out", rows.len() * n, out.len())?;
    if !kernel.is_available() {
        return Err(GemmError::Kernel(KernelError::Unavailable { name: kernel.name() }));
    }
    if n == 0 || rows.is_empty() {
        return Ok(());
    }
    // packed once per call, as a caller of `gemm_nt_u8_packed` would: the same bits
    let packed = NtPacked::new(kernel, pre, w, n)?;
    nt_run(kernel, rows, &packed.prep, pre, w, n, out);
    Ok(())
}

/// The forward product on an already prepared `W` (shapes checked, `n > 0`, rows present).
fn nt_run(
    kernel: KernelKind,
    rows: &[&[u8]],
    prep: &NtPrep,
    pre: Affine<'_>,
    w: &[f32],
    n: usize,
    out: &mut [f32],
) {
    let k = pre.scale.len();
    let work = rows.len() * n * k;
    if work >= PARALLEL_THRESHOLD && rows.len() >= 4 {
        let tasks = rayon::current_num_threads().max(1) * 2;
        // whole 16-row super-blocks of the AVX-512 kernel per task where there are enough
        // rows (a short last super-block reloads every block of W' for a few rows), else an
        // even number; each score is the same whatever the split
        let per = rows.len().div_ceil(tasks);
        let per = if per >= 16 { per / 16 * 16 } else { per.next_multiple_of(2) };
        out.par_chunks_mut(per * n)
            .zip(rows.par_chunks(per))
            .for_each(|(o, r)| nt_serial(kernel, r, prep, pre, w, n, o));
    } else {
        nt_serial(kernel, rows, prep, pre, w, n, out);
    }
}

/// `W` packed for the forward pass of one kernel: with the AVX-512 and AVX2 kernels, the
/// scaled weights `W' = W · diag(scale)` by blocks of [`NtPacked::BLOCK`] features and
/// `β = W · offset` (see [`gemm_nt_u8_with`]); empty for the scalar twin, which reads `W`
/// directly.
///
/// A training loop that updates `W` one feature block at a time can repack each block with
/// [`NtPackBlock::pack`] while it is in cache, then [`NtPacked::finish`] and call
/// [`gemm_nt_u8_packed`], instead of a separate packing pass inside every forward call. The
/// scores have the same bits either way.
#[derive(Default)]
pub struct NtPacked {
    kernel: Option<KernelKind>,
    n: usize,
    k: usize,
    prep: NtPrep,
    /// `β` partial sums by block (`n` per block, f64), added in block order by `finish`.
    parts: Vec<f64>,
}

/// One feature block of an [`NtPacked`], to be repacked by one task.
pub struct NtPackBlock<'a> {
    kernel: KernelKind,
    index: usize,
    n: usize,
    wk: &'a mut [f32],
    beta: &'a mut [f64],
}

impl NtPacked {
    /// Features per packed block (block `i` covers features `i·BLOCK..(i + 1)·BLOCK`).
    pub const BLOCK: usize = 256;

    /// Packs all of `w` (`n x k`, `k = pre.scale.len()`) for `kernel`.
    pub fn new(
        kernel: KernelKind,
        pre: Affine<'_>,
        w: &[f32],
        n: usize,
    ) -> Result<Self, GemmError> {
        let k = pre.scale.len();
        check("offset", k, pre.offset.len())?;
        check("w", n * k, w.len())?;
        if !kernel.is_available() {
            return Err(GemmError::Kernel(KernelError::Unavailable { name: kernel.name() }));
        }
        let mut packed = Self { kernel: Some(kernel), n, k, ..Self::default() };
        if matches!(kernel, KernelKind::Avx512 | KernelKind::Avx2) && n > 0 {
            let nkb = (k / 16 * 16).div_ceil(Self::BLOCK);
            packed.prep.wk = vec![0.0; nkb * n * Self::BLOCK];
            packed.prep.beta = vec![0.0; n];
            packed.parts = vec![0.0; nkb * n];
            let rows: Vec<&[f32]> = if k == 0 { Vec::new() } else { w.chunks_exact(k).collect() };
            let k0s: Vec<usize> = (0..nkb).map(|b| b * Self::BLOCK).collect();
            packed.blocks_mut().into_par_iter().zip(k0s).try_for_each(|(mut blk, k0)| {
                let k1 = (k0 + Self::BLOCK).min(k);
                let segs: Vec<&[f32]> = rows.iter().map(|r| &r[k0..k1]).collect();
                blk.pack(pre, &segs)
            })?;
            packed.finish();
        }
        Ok(packed)
    }

    /// The blocks to repack, in order (none for kernels that do not pack).
    pub fn blocks_mut(&mut self) -> Vec<NtPackBlock<'_>> {
        let (n, Some(kernel)) = (self.n, self.kernel) else { return Vec::new() };
        if self.prep.wk.is_empty() {
            return Vec::new();
        }
        self.prep
            .wk
            .chunks_exact_mut(n * Self::BLOCK)
            .zip(self.parts.chunks_exact_mut(n))
            .enumerate()
            .map(|(index, (wk, beta))| NtPackBlock { kernel, index, n, wk, beta })
            .collect()
    }

    /// Sums the blocks' `β` partials in block order (so `β` does not depend on how the blocks
    /// were spread over threads); call after repacking, before the next product.
    pub fn finish(&mut self) {
        let n = self.n;
        for (c, b) in self.prep.beta.iter_mut().enumerate() {
            *b = self.parts.chunks_exact(n).map(|p| p[c]).sum::<f64>() as f32;
        }
    }
}

impl NtPackBlock<'_> {
    /// The block's index `i` (features `i·BLOCK..`).
    pub fn index(&self) -> usize {
        self.index
    }

    /// Repacks this block from `segs`: one slice per class holding that class's weights of
    /// features `i·BLOCK..min((i + 1)·BLOCK, k)` (at least the vectorised ones).
    pub fn pack<S: AsRef<[f32]>>(&mut self, pre: Affine<'_>, segs: &[S]) -> Result<(), GemmError> {
        check("segments", self.n, segs.len())?;
        let k = pre.scale.len();
        check("offset", k, pre.offset.len())?;
        let kv = k / 16 * 16;
        let f0 = self.index * NtPacked::BLOCK;
        let need = (f0 + NtPacked::BLOCK).min(kv).saturating_sub(f0);
        for s in segs {
            if s.as_ref().len() < need {
                return Err(GemmError::ShapeMismatch {
                    what: "segment",
                    expected: need,
                    found: s.as_ref().len(),
                });
            }
        }
        if self.wk.len() != self.n * NtPacked::BLOCK {
            return Err(GemmError::ShapeMismatch {
                what: "packed block",
                expected: self.n * NtPacked::BLOCK,
                found: self.wk.len(),
            });
        }
        match self.kernel {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `NtPacked::new` checked the kernel is available; segment and block
            // lengths checked above.
            KernelKind::Avx512 => unsafe {
                avx512::prepare_block(pre, segs, self.index, self.wk, self.beta)
            },
            KernelKind::Avx2 => prepare_block_portable(pre, segs, self.index, self.wk, self.beta),
            _ => {}
        }
        Ok(())
    }
}

/// The shape checks of the packed forward products; `None` when there is nothing to compute,
/// else the kernel `packed` was made for.
fn check_packed(
    rows: &[&[u8]],
    pre: Affine<'_>,
    w: &[f32],
    n: usize,
    packed: &NtPacked,
    out_len: usize,
) -> Result<Option<KernelKind>, GemmError> {
    let k = check_rows(rows, pre)?;
    check("w", n * k, w.len())?;
    check("out", rows.len() * n, out_len)?;
    let Some(kernel) = packed.kernel else {
        return Err(GemmError::ShapeMismatch { what: "packed", expected: n, found: 0 });
    };
    check("packed classes", n, packed.n)?;
    check("packed features", k, packed.k)?;
    Ok((n != 0 && !rows.is_empty()).then_some(kernel))
}

/// [`gemm_nt_u8_with`] on a `W` packed beforehand ([`NtPacked`], made from this `w` for
/// this kernel, `pre` and `n`): the same scores, bit for bit.
pub fn gemm_nt_u8_packed(
    rows: &[&[u8]],
    pre: Affine<'_>,
    w: &[f32],
    n: usize,
    packed: &NtPacked,
    out: &mut [f32],
) -> Result<(), GemmError> {
    let Some(kernel) = check_packed(rows, pre, w, n, packed, out.len())? else {
        return Ok(());
    };
    nt_run(kernel, rows, &packed.prep, pre, w, n, out);
    Ok(())
}

/// [`gemm_nt_u8_packed`] on the calling thread only (no rayon tasks, whatever the size):
/// for a caller that already splits its rows over threads. Each score has the same bits as
/// with [`gemm_nt_u8_packed`] and [`gemm_nt_u8_with`], whatever rows it is computed with.
pub fn gemm_nt_u8_packed_serial(
    rows: &[&[u8]],
    pre: Affine<'_>,
    w: &[f32],
    n: usize,
    packed: &NtPacked,
    out: &mut [f32],
) -> Result<(), GemmError> {
    let Some(kernel) = check_packed(rows, pre, w, n, packed, out.len())? else {
        return Ok(());
    };
    nt_serial(kernel, rows, &packed.prep, pre, w, n, out);
    Ok(())
}

/// Backward product `out = Gᵀ X̃` (`g`: `rows.len() x n`, `out`: `n x k`), with the kernel
/// from [`KernelKind::detect`].
///
/// Error bound of every kernel, per element (`m` rows, `u = 2⁻²⁴`; `c_k = clamp(round(−o_k /
/// s_k), 0, 255)` and `o'_k = fl(o_k + c_k s_k)`, so `x s + o = (x − c) s + o'` up to that one
/// rounding):
///
/// ```text
/// |out_jk − Σ_i g_ij (x_ik s_k + o_k)|
///     <=  (m + 2) · u · Σ_i |g_ij| (|(x_ik − c_k) s_k| + |o'_k|)
/// ```
///
/// `|(x − c) s| + |o'|` exceeds the centred `|x s + o|` by at most `2 |o'| <= s` (plus a
/// rounding), so the bound scales with the centred magnitude, as the f32 sum of the centred
/// terms would. The AVX-512 kernel computes `fma(Σ_i g_ij (x_ik − c_k), s_k, o'_k · G_j)` (the
/// sum an f32 FMA chain in row order on exact small integers, `G_j = Σ_i g_ij` in f64 rounded
/// once); AVX2 applies the affine map per element with an f32 FMA chain; the scalar twin
/// accumulates in f64 (one rounding).
pub fn gemm_tn_u8(
    g: &[f32],
    n: usize,
    rows: &[&[u8]],
    pre: Affine<'_>,
    out: &mut [f32],
) -> Result<(), GemmError> {
    gemm_tn_u8_with(KernelKind::detect()?, g, n, rows, pre, out)
}

/// [`gemm_tn_u8`] with an explicit kernel.
pub fn gemm_tn_u8_with(
    kernel: KernelKind,
    g: &[f32],
    n: usize,
    rows: &[&[u8]],
    pre: Affine<'_>,
    out: &mut [f32],
) -> Result<(), GemmError> {
    let k = check_rows(rows, pre)?;
    check("g", rows.len() * n, g.len())?;
    check("out", n * k, out.len())?;
    if !kernel.is_available() {
        return Err(GemmError::Kernel(KernelError::Unavailable { name: kernel.name() }));
    }
    if n == 0 || k == 0 {
        return Ok(());
    }
    let work = rows.len() * n * k;
    let block = if work >= PARALLEL_THRESHOLD {
        let tasks = rayon::current_num_threads().max(1) * 2;
        k.div_ceil(tasks).next_multiple_of(32).max(64)
    } else {
        k
    };
    if block >= k {
        tn_serial(kernel, g, n, rows, pre, 0, k, OutPtr { ptr: out.as_mut_ptr(), ld: k, base: 0 });
    } else {
        let ptr = OutPtr { ptr: out.as_mut_ptr(), ld: k, base: 0 };
        (0..k.div_ceil(block)).into_par_iter().for_each(|b| {
            let k0 = b * block;
            let k1 = (k0 + block).min(k);
            tn_serial(kernel, g, n, rows, pre, k0, k1, ptr);
        });
    }
    Ok(())
}

/// Columns `k0..k1` of the backward product, serially: `out = (Gᵀ X̃)[:, k0..k1]` with `out`
/// row-major `n x (k1 - k0)`. For callers that split the features over their own tasks (and
/// fuse work on each block). Every kernel computes each column with the same arithmetic
/// whether it falls in a vector block or in the tail, so any split of the features (not only
/// multiples of 32) gives the bits of [`gemm_tn_u8_with`]; error bound as there.
///
/// With AVX-512, one call for a thread's whole feature range is a few % faster than one call
/// per 256-feature block (each call sums `Σ_i g_ij` again and starts its prefetch afresh);
/// `crates/linalg/examples/tn_speed.rs` measures both.
#[allow(clippy::too_many_arguments)]
pub fn gemm_tn_u8_cols_with(
    kernel: KernelKind,
    g: &[f32],
    n: usize,
    rows: &[&[u8]],
    pre: Affine<'_>,
    k0: usize,
    k1: usize,
    out: &mut [f32],
) -> Result<(), GemmError> {
    let k = check_rows(rows, pre)?;
    check("g", rows.len() * n, g.len())?;
    if k0 > k1 || k1 > k {
        return Err(GemmError::ShapeMismatch { what: "columns", expected: k, found: k1 });
    }
    check("out", n * (k1 - k0), out.len())?;
    if !kernel.is_available() {
        return Err(GemmError::Kernel(KernelError::Unavailable { name: kernel.name() }));
    }
    if n == 0 || k0 == k1 {
        return Ok(());
    }
    let ptr = OutPtr { ptr: out.as_mut_ptr(), ld: k1 - k0, base: k0 };
    tn_serial(kernel, g, n, rows, pre, k0, k1, ptr);
    Ok(())
}

/// Asks the CPU to bring bytes `k0..k1` of each row towards its caches (a hint: no effect on
/// results, nothing on targets without a prefetch instruction). Minibatch rows are random
/// rows of a large dataset; fetching the next batch while the current one is computed hides
/// the memory latency of the first pass over it.
pub fn prefetch_rows(rows: &[&[u8]], k0: usize, k1: usize) {
    #[cfg(target_arch = "x86_64")]
    for r in rows {
        let end = k1.min(r.len());
        let mut kk = k0;
        while kk < end {
            // SAFETY: `kk < r.len()`, so the address lies inside the row; a prefetch never
            // faults and has no architectural effect.
            unsafe {
                std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T1 }>(
                    r.as_ptr().add(kk).cast(),
                )
            };
            kk += 64;
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (rows, k0, k1);
}

/// A raw pointer to the `n x ld` row-major output of the backward pass whose first column
/// is feature `base`, shared by tasks that write disjoint column ranges.
#[derive(Clone, Copy)]
struct OutPtr {
    ptr: *mut f32,
    ld: usize,
    base: usize,
}

impl OutPtr {
    /// The element of class `j` and feature `kk`.
    ///
    /// # Safety
    /// `j < n` and `base <= kk < base + ld`, so the element lies inside the `n x ld` output.
    #[inline(always)]
    unsafe fn at(self, j: usize, kk: usize) -> *mut f32 {
        // SAFETY: forwarded from the caller.
        unsafe { self.ptr.add(j * self.ld + kk - self.base) }
    }
}
// SAFETY: tasks holding an OutPtr write disjoint column ranges `k0..k1` of every output row
// (see `tn_serial`), and the owning `&mut [f32]` outlives the parallel loop.
unsafe impl Send for OutPtr {}
// SAFETY: as above; no two tasks touch the same element.
unsafe impl Sync for OutPtr {}

/// `W` prepared for the AVX-512 and AVX2 forward kernels (by [`NtPacked`], once per call of
/// [`gemm_nt_u8_with`]): the scaled weights `W' = W · diag(scale)` packed by feature block,
/// and `β = W · offset` over the vectorised features. Empty for the scalar twin.
#[derive(Default)]
struct NtPrep {
    wk: Vec<f32>,
    beta: Vec<f32>,
}

/// Block `blk` of an AVX2 [`NtPacked`] (portable code: the products `w · s` are exact per
/// element, so only `β`, an f64 sum in feature order, can differ from the AVX-512 packing's
/// bits, and the two kernels are not compared bit for bit): `W'` of its features (zero past `k / 16 · 16`) into
/// `piece`, and `Σ offset_k W_ck` over them per class into `beta` (exact products, summed in
/// f64 in feature order). `segs[c]` holds class `c`'s weights from feature `blk · BLOCK` on
/// (at least the vectorised ones; checked by the callers).
fn prepare_block_portable<S: AsRef<[f32]>>(
    pre: Affine<'_>,
    segs: &[S],
    blk: usize,
    piece: &mut [f32],
    beta: &mut [f64],
) {
    let k = pre.scale.len();
    let kv = k / 16 * 16;
    let (f0, f1) = (blk * NtPacked::BLOCK, ((blk + 1) * NtPacked::BLOCK).min(kv));
    let len = f1.saturating_sub(f0);
    for ((bc, dst), seg) in beta.iter_mut().zip(piece.chunks_exact_mut(NtPacked::BLOCK)).zip(segs) {
        let seg = &seg.as_ref()[..len];
        let (s, o) = (&pre.scale[f0..f0 + len], &pre.offset[f0..f0 + len]);
        let mut b = 0.0f64;
        for (((d, &wv), &sv), &ov) in dst.iter_mut().zip(seg).zip(s).zip(o) {
            *d = wv * sv;
            b += f64::from(wv) * f64::from(ov);
        }
        dst[len..].fill(0.0);
        *bc = b;
    }
}

fn nt_serial(
    kernel: KernelKind,
    rows: &[&[u8]],
    prep: &NtPrep,
    pre: Affine<'_>,
    w: &[f32],
    n: usize,
    out: &mut [f32],
) {
    match kernel {
        KernelKind::Scalar => scalar::nt(rows, pre, w, n, out),
        #[cfg(target_arch = "x86_64")]
        // SAFETY: callers checked `kernel.is_available()` (avx2 and fma detected).
        // `prep` was made by `NtPacked::new` for this kernel, `pre`, `w` and `n`.
        KernelKind::Avx2 => unsafe { avx2::nt(rows, prep, pre, w, n, out) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: callers checked `kernel.is_available()` (avx512f detected); `prep` was
        // made by `NtPacked::new` for this kernel, `pre`, `w` and `n`.
        KernelKind::Avx512 => unsafe { avx512::nt(rows, prep, pre, w, n, out) },
        #[cfg(not(target_arch = "x86_64"))]
        _ => scalar::nt(rows, pre, w, n, out),
    }
}

#[allow(clippy::too_many_arguments)]
fn tn_serial(
    kernel: KernelKind,
    g: &[f32],
    n: usize,
    rows: &[&[u8]],
    pre: Affine<'_>,
    k0: usize,
    k1: usize,
    out: OutPtr,
) {
    match kernel {
        KernelKind::Scalar => scalar::tn(g, n, rows, pre, k0, k1, out),
        #[cfg(target_arch = "x86_64")]
        // SAFETY: callers checked `kernel.is_available()` (avx2 and fma detected); `out`
        // points at `n * k` floats and this call writes only columns `k0..k1`.
        KernelKind::Avx2 => unsafe { avx2::tn(g, n, rows, pre, k0, k1, out) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: callers checked `kernel.is_available()` (avx512f detected); as above.
        KernelKind::Avx512 => unsafe { avx512::tn(g, n, rows, pre, k0, k1, out) },
        #[cfg(not(target_arch = "x86_64"))]
        _ => scalar::tn(g, n, rows, pre, k0, k1, out),
    }
}

/// The portable twin: plain loops with f64 accumulators (the reference).
mod scalar {
    use super::{Affine, OutPtr};

    pub(super) fn nt(rows: &[&[u8]], pre: Affine<'_>, w: &[f32], n: usize, out: &mut [f32]) {
        let k = pre.scale.len();
        for (r, o) in rows.iter().zip(out.chunks_exact_mut(n)) {
            for (j, oj) in o.iter_mut().enumerate() {
                let wj = &w[j * k..(j + 1) * k];
                let mut acc = 0.0f64;
                for kk in 0..k {
                    let x = f64::from(r[kk]) * f64::from(pre.scale[kk]) + f64::from(pre.offset[kk]);
                    acc += x * f64::from(wj[kk]);
                }
                *oj = acc as f32;
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn tn(
        g: &[f32],
        n: usize,
        rows: &[&[u8]],
        pre: Affine<'_>,
        k0: usize,
        k1: usize,
        out: OutPtr,
    ) {
        let mut acc = vec![0.0f64; n];
        for kk in k0..k1 {
            acc.fill(0.0);
            for (i, r) in rows.iter().enumerate() {
                let x = f64::from(r[kk]) * f64::from(pre.scale[kk]) + f64::from(pre.offset[kk]);
                for (j, a) in acc.iter_mut().enumerate() {
                    *a += f64::from(g[i * n + j]) * x;
                }
            }
            for (j, a) in acc.iter().enumerate() {
                // SAFETY: `out` holds `n * k` floats (checked by the public entry points),
                // `j < n`, `kk < k`, and this task owns column range `k0..k1`.
                unsafe { *out.at(j, kk) = *a as f32 };
            }
        }
    }
}

/// Shared tail code of the SIMD kernels: the features past the last full vector, in f32
/// with fused multiply-adds, in the same order whatever the split.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn tail_dot(r: &[u8], pre: Affine<'_>, wj: &[f32], from: usize) -> f32 {
    let mut acc = 0.0f32;
    for kk in from..wj.len() {
        let x = f32::from(r[kk]).mul_add(pre.scale[kk], pre.offset[kk]);
        acc = x.mul_add(wj[kk], acc);
    }
    acc
}

/// Macro for the class-count dispatch: calls `$f::<NR>` for the remaining classes
/// (`1..=10`) so every register block is a compile-time size.
#[cfg(target_arch = "x86_64")]
macro_rules! dispatch_nr {
    ($nr:expr, $f:ident ( $($arg:expr),* )) => {
        match $nr {
            1 => $f::<1>($($arg),*),
            2 => $f::<2>($($arg),*),
            3 => $f::<3>($($arg),*),
            4 => $f::<4>($($arg),*),
            5 => $f::<5>($($arg),*),
            6 => $f::<6>($($arg),*),
            7 => $f::<7>($($arg),*),
            8 => $f::<8>($($arg),*),
            9 => $f::<9>($($arg),*),
            _ => $f::<10>($($arg),*),
        }
    };
}

mod chol;
pub use chol::{cholesky, cholesky_solve};
mod dense;
pub use dense::{GemmScalar, Op, gemm, sgemm};
mod fwd_i8;
mod packed;
pub use packed::PackedNt;
mod packed_i8;
pub use packed_i8::{PACKED_I8_MAX_K, PackedI8Nt};
pub mod skinny;
pub use fwd_i8::{FWD_I8_MAX_K, FWD_I8_Q_MAX, NtPackedI8, gemm_nt_u8_i8_serial};
pub use skinny::{AffineInput, SkinnyScalar, gemm_nt_affine_with, gemm_tn_affine_add_with};
mod int;
pub use int::{
    I8Grad, I8U8_MAX_ROWS, gemm_tn_i8u8_cols_prepared, gemm_tn_i8u8_cols_with, i8u8_is_simd,
    i32_affine_to_f32,
};

/// AVX-512F kernels: 16 lanes, 32 registers.
///
/// The AVX-512 intrinsics are stable since Rust 1.89 (safe `#[target_feature]` functions
/// since 1.86); the workspace's declared `rust-version` (1.85) predates them, hence the
/// `incompatible_msrv` allowance: the toolchain in use is 1.95.
#[cfg(target_arch = "x86_64")]
#[allow(clippy::incompatible_msrv)]
// register blocks are indexed by class: index loops over compile-time bounds unroll cleanly
#[allow(clippy::needless_range_loop)]
mod avx512 {
    use super::{Affine, NtPrep, OutPtr, tail_dot};
    use std::arch::x86_64::*;

    /// Rows per super-block of the forward pass: their register blocks' accumulators are
    /// parked in a stack buffer (`NT_ROWS x NR` vectors, 10 KiB for 10 classes) between
    /// feature blocks.
    const NT_ROWS: usize = 16;
    /// Features per block of the forward pass: the `NR x NT_KB` slice of the packed `W'`
    /// (10 KiB for 10 classes) stays in L1 while every row pair of a super-block passes over
    /// it.
    pub(super) const NT_KB: usize = 256;

    /// Block `blk` of an AVX-512 [`super::NtPacked`]: writes `W'` for its features (zero past `kv`) into
    /// `piece` and `Σ offset_k W_ck` over them per class into `beta` (f64, 16 lanes then a
    /// tree). `segs[c]` holds class `c`'s weights from feature `blk · NT_KB` on.
    ///
    /// # Safety
    /// AVX-512F; `segs` has `n` slices of at least `min(NT_KB, kv − blk·NT_KB)` floats,
    /// `piece` holds `n · NT_KB` floats and `beta` `n`.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn prepare_block<S: AsRef<[f32]>>(
        pre: Affine<'_>,
        segs: &[S],
        blk: usize,
        piece: &mut [f32],
        beta: &mut [f64],
    ) {
        let k = pre.scale.len();
        let kv = k / 16 * 16;
        let (f0, f1) = (blk * NT_KB, ((blk + 1) * NT_KB).min(kv));
        for ((bc, dst), seg) in beta.iter_mut().zip(piece.chunks_exact_mut(NT_KB)).zip(segs) {
            let seg = seg.as_ref();
            let mut b = [_mm512_setzero_pd(); 2];
            let mut kk = f0;
            while kk < f1 {
                // SAFETY: kk + 16 <= kv <= k: inside scale and offset; kk − f0 + 16 <=
                // f1 − f0 <= seg.len() and <= NT_KB = dst.len().
                unsafe {
                    let wp = seg.as_ptr().add(kk - f0);
                    let sv = _mm512_loadu_ps(pre.scale.as_ptr().add(kk));
                    let v = _mm512_mul_ps(_mm512_loadu_ps(wp), sv);
                    _mm512_storeu_ps(dst.as_mut_ptr().add(kk - f0), v);
                    let op = pre.offset.as_ptr().add(kk);
                    for h in 0..2 {
                        let wd = _mm512_cvtps_pd(_mm256_loadu_ps(wp.add(8 * h)));
                        let od = _mm512_cvtps_pd(_mm256_loadu_ps(op.add(8 * h)));
                        b[h] = _mm512_fmadd_pd(wd, od, b[h]);
                    }
                }
                kk += 16;
            }
            dst[f1.saturating_sub(f0)..].fill(0.0);
            *bc = _mm512_reduce_add_pd(b[0]) + _mm512_reduce_add_pd(b[1]);
        }
    }

    /// Forward pass over all `rows` (see the module docs), 2 rows x up to 10 classes a
    /// register block, on `W'` and `β` from [`super::NtPacked`]: `s_ij = Σ_k x_ik W'_jk + β_j`
    /// (+ the tail features), so the inner loop converts each byte to `f32` (exact) without
    /// the per-feature affine map.
    ///
    /// The rows are taken `NT_ROWS` at a time and the features `NT_KB` at a time, so each
    /// block of `W'` is read from L2 once per super-block instead of once per row pair; the
    /// accumulators are saved and restored between feature blocks, which leaves every lane's
    /// sum in the same order, and a lone last row runs the same lane arithmetic: each score
    /// has the same bits whatever the split of the rows.
    ///
    /// # Safety
    /// The CPU must support AVX-512F; shapes checked by the caller; `prep` comes from
    /// [`super::NtPacked::new`] with the same `pre`, `w` and `n`.
    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn nt(
        rows: &[&[u8]],
        prep: &NtPrep,
        pre: Affine<'_>,
        w: &[f32],
        n: usize,
        out: &mut [f32],
    ) {
        let mut i = 0;
        while i < rows.len() {
            let mr = (rows.len() - i).min(NT_ROWS);
            let next = &rows[(i + mr).min(rows.len())..(i + 2 * mr).min(rows.len())];
            let mut j = 0;
            while j < n {
                let nr = (n - j).min(10);
                dispatch_nr!(nr, superblock(&rows[i..i + mr], next, prep, pre, w, n, j, i, out));
                j += nr;
            }
            i += mr;
        }
    }

    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn load_u8(r: &[u8], kk: usize) -> __m512 {
        // SAFETY: the caller guarantees `kk + 16 <= r.len()`.
        let b = unsafe { _mm_loadu_si128(r.as_ptr().add(kk).cast()) };
        _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(b))
    }

    /// One super-block of at most `NT_ROWS` rows (starting at output row `i0`) against
    /// classes `j0..j0 + NR`; `next` are the rows of the following super-block, prefetched.
    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx512f")]
    fn superblock<const NR: usize>(
        rows: &[&[u8]],
        next: &[&[u8]],
        prep: &NtPrep,
        pre: Affine<'_>,
        w: &[f32],
        n: usize,
        j0: usize,
        i0: usize,
        out: &mut [f32],
    ) {
        let k = pre.scale.len();
        let kv = k / 16 * 16;
        let pairs = rows.len() / 2;
        let mut acc = [[_mm512_setzero_ps(); NR]; NT_ROWS];
        let mut kb = 0;
        while kb < kv {
            let ke = (kb + NT_KB).min(kv);
            // this feature block of W', classes j0.. (contiguous, NT_KB floats per class)
            let wb =
                &prep.wk[((kb / NT_KB) * n + j0) * NT_KB..((kb / NT_KB) * n + j0 + NR) * NT_KB];
            for p in 0..pairs {
                let (r0, r1) = (rows[2 * p], rows[2 * p + 1]);
                let (mut a0, mut a1) = (acc[2 * p], acc[2 * p + 1]);
                // the next super-block's rows are random rows of a large dataset: fetch
                // their cache lines in this feature block while it is computed
                for r in next.iter().skip(2 * p).take(2) {
                    let mut kk = kb;
                    while kk < ke {
                        // SAFETY: kk < kv <= k = the row's length (prefetch never faults).
                        unsafe { _mm_prefetch::<_MM_HINT_T0>(r.as_ptr().add(kk).cast()) };
                        kk += 64;
                    }
                }
                let mut kk = kb;
                while kk < ke {
                    // SAFETY: kk + 16 <= kv <= k = the rows' length; (kk - kb) + 16 <= NT_KB
                    // and c < NR, so every W' load lies in `wb`.
                    unsafe {
                        let x0 = load_u8(r0, kk);
                        let x1 = load_u8(r1, kk);
                        for c in 0..NR {
                            let wv = _mm512_loadu_ps(wb.as_ptr().add(c * NT_KB + kk - kb));
                            a0[c] = _mm512_fmadd_ps(x0, wv, a0[c]);
                            a1[c] = _mm512_fmadd_ps(x1, wv, a1[c]);
                        }
                    }
                    kk += 16;
                }
                acc[2 * p] = a0;
                acc[2 * p + 1] = a1;
            }
            if rows.len() % 2 == 1 {
                let r0 = rows[rows.len() - 1];
                let mut a0 = acc[rows.len() - 1];
                let mut kk = kb;
                while kk < ke {
                    // SAFETY: as above.
                    unsafe {
                        let x0 = load_u8(r0, kk);
                        for c in 0..NR {
                            let wv = _mm512_loadu_ps(wb.as_ptr().add(c * NT_KB + kk - kb));
                            a0[c] = _mm512_fmadd_ps(x0, wv, a0[c]);
                        }
                    }
                    kk += 16;
                }
                acc[rows.len() - 1] = a0;
            }
            kb = ke;
        }
        for (p, r) in rows.iter().enumerate() {
            for c in 0..NR {
                let wj = &w[(j0 + c) * k..(j0 + c + 1) * k];
                out[(i0 + p) * n + j0 + c] =
                    _mm512_reduce_add_ps(acc[p][c]) + prep.beta[j0 + c] + tail_dot(r, pre, wj, kv);
            }
        }
    }

    /// Backward pass for columns `k0..k1` of the `n x k` output at `out`, with the affine map
    /// folded out of the inner loop: `D_jk = s_k · Σ_i g_ij (x_ik − c_k) + o'_k · Σ_i g_ij`
    /// (see [`super::gemm_tn_u8_with`]). The inner loop widens bytes to f32 and subtracts the
    /// integer centre `c_k` (both exact) and multiply-adds, 10 classes x 16 features per
    /// register block (10 accumulators kept in registers over all rows, each `g_ij` broadcast
    /// by the FMA's memory operand); `Σ_i g_ij` is summed in f64 once per call and rounded
    /// once.
    ///
    /// Every column, whichever block or tail computes it, gets the same lane arithmetic (an
    /// f32 FMA chain over the rows in order, then `fma(acc, s_k, o'_k · G_j)`), so the result
    /// does not depend on `k0`, `k1` or how the features are split.
    ///
    /// # Safety
    /// AVX-512F; `out` points at `n * k` floats of which this call owns columns `k0..k1`.
    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn tn(
        g: &[f32],
        n: usize,
        rows: &[&[u8]],
        pre: Affine<'_>,
        k0: usize,
        k1: usize,
        out: OutPtr,
    ) {
        let mut j = 0;
        while j < n {
            let nr = (n - j).min(10);
            // SAFETY: forwarded from the caller.
            unsafe { dispatch_nr!(nr, tn_block(g, n, rows, pre, k0, k1, out, j)) };
            j += nr;
        }
    }

    /// Rows between a row and the one whose bytes it prefetches (about 60 cycles ahead).
    const TN_PREFETCH_ROWS: usize = 6;

    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx512f")]
    unsafe fn tn_block<const NR: usize>(
        g: &[f32],
        n: usize,
        rows: &[&[u8]],
        pre: Affine<'_>,
        k0: usize,
        k1: usize,
        out: OutPtr,
        j0: usize,
    ) {
        let m = rows.len();
        // SAFETY: AVX-512F (this function's contract); g holds m x n floats, j0 + NR <= n.
        let gs = unsafe { tn_class_sums::<NR>(g, n, m, j0) };
        let mut kk = k0;
        // 16 features x NR classes per block. Not 32 (two vectors per class broadcast): the
        // compiler then loads each g_ij with one `vbroadcastss` shared by two FMAs, and that
        // broadcast, with the byte widening, costs ~10 % of the FMA rate on Zen 4; with one
        // FMA per broadcast it is folded into the FMA (`vfmadd231ps zmm, zmm, m32{1to16}`)
        // and the loop runs at the register-only FMA peak (tn_speed example).
        while kk + 16 <= k1 {
            // prefetch once per 64-byte line: in the first block that starts in it
            let pf = kk % 64 < 16;
            let mut a0 = [_mm512_setzero_ps(); NR];
            // SAFETY: kk + 16 <= k1 <= k; rows have length k; g has rows.len() * n floats;
            // out has n * k floats and this task owns columns k0..k1.
            unsafe {
                let (ci, ofc) = tn_centre(pre, kk);
                for (i, r) in rows.iter().enumerate() {
                    if pf {
                        // random rows: fetch a later row's bytes of this block (in case the
                        // forward pass left them in L2 or another core), and this row's next
                        // line (in case they are still in DRAM)
                        _mm_prefetch::<_MM_HINT_T0>(
                            rows[(i + TN_PREFETCH_ROWS).min(m - 1)].as_ptr().add(kk).cast(),
                        );
                        // (wrapping: past the row's end the address is only a hint, never read)
                        _mm_prefetch::<_MM_HINT_T0>(r.as_ptr().wrapping_add(kk + 64).cast());
                    }
                    // x − c_k: small integers, exact
                    let x0 = load_u8_centred(r, kk, ci);
                    let gi = g.as_ptr().add(i * n + j0);
                    for c in 0..NR {
                        let gv = _mm512_set1_ps(*gi.add(c));
                        a0[c] = _mm512_fmadd_ps(gv, x0, a0[c]);
                    }
                }
                tn_store(&a0, pre, ofc, &gs, kk, out, j0);
            }
            kk += 16;
        }
        // SAFETY: forwarded; columns kk..k1 belong to this task.
        unsafe { super::tn_tail_folded::<NR>(g, n, rows, pre, &gs, kk, k1, out, j0) };
    }

    /// `G_j = Σ_i g_ij` for classes `j0..j0 + NR` (`NR <= 10`), summed in f64, one lane per
    /// class: four partial sums over the rows `i mod 4`, added as `(s0 + s1) + (s2 + s3)` (the
    /// same order in every call), rounded once to f32.
    ///
    /// # Safety
    /// AVX-512F; `g` holds `m x n` floats and `j0 + NR <= n`.
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn tn_class_sums<const NR: usize>(
        g: &[f32],
        n: usize,
        m: usize,
        j0: usize,
    ) -> [f32; NR] {
        let mask: __mmask16 = (1u16 << NR) - 1;
        let mut lo = [_mm512_setzero_pd(); 4];
        let mut hi = [_mm512_setzero_pd(); 4];
        for i in 0..m {
            // SAFETY: row i's classes j0..j0 + NR lie in g (i < m, j0 + NR <= n); the lanes
            // past NR are masked off (never read, no fault).
            let v = unsafe { _mm512_maskz_loadu_ps(mask, g.as_ptr().add(i * n + j0)) };
            let q = i % 4;
            lo[q] = _mm512_add_pd(lo[q], _mm512_cvtps_pd(_mm512_castps512_ps256(v)));
            let h = _mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(v)));
            hi[q] = _mm512_add_pd(hi[q], _mm512_cvtps_pd(h));
        }
        let lo = _mm512_add_pd(_mm512_add_pd(lo[0], lo[1]), _mm512_add_pd(lo[2], lo[3]));
        let hi = _mm512_add_pd(_mm512_add_pd(hi[0], hi[1]), _mm512_add_pd(hi[2], hi[3]));
        let mut sums = [0.0f64; 16];
        // SAFETY: `sums` holds 16 f64.
        unsafe {
            _mm512_storeu_pd(sums.as_mut_ptr(), lo);
            _mm512_storeu_pd(sums.as_mut_ptr().add(8), hi);
        }
        std::array::from_fn(|c| sums[c] as f32)
    }

    /// `x_k − c_k` for the 16 bytes of `r` from `kk`, as f32 (exact): widened, subtracted in
    /// i32 (an integer subtraction measured ~2 % faster here than `vsubps` after the
    /// conversion), converted.
    ///
    /// # Safety
    /// AVX-512F; `kk + 16 <= r.len()`.
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn load_u8_centred(r: &[u8], kk: usize, ci: __m512i) -> __m512 {
        // SAFETY: the caller guarantees `kk + 16 <= r.len()`.
        let b = unsafe { _mm_loadu_si128(r.as_ptr().add(kk).cast()) };
        _mm512_cvtepi32_ps(_mm512_sub_epi32(_mm512_cvtepu8_epi32(b), ci))
    }

    /// The integer centre `c_k` of columns `kk..kk + 16` (as i32) and the offset left over,
    /// `o'_k = fl(o_k + c_k s_k)` (see [`super::tn_centre_scalar`], which computes the same bits).
    ///
    /// # Safety
    /// AVX-512F; `kk + 16 <= k`.
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn tn_centre(pre: Affine<'_>, kk: usize) -> (__m512i, __m512) {
        // SAFETY: kk + 16 <= k = the length of scale and offset.
        let (sc, of) = unsafe {
            (
                _mm512_loadu_ps(pre.scale.as_ptr().add(kk)),
                _mm512_loadu_ps(pre.offset.as_ptr().add(kk)),
            )
        };
        let q = _mm512_div_ps(_mm512_sub_ps(_mm512_setzero_ps(), of), sc);
        let q = _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(q);
        // max/min return their second operand when the first is NaN (s = o = 0): c = 0
        let c = _mm512_min_ps(_mm512_max_ps(q, _mm512_setzero_ps()), _mm512_set1_ps(255.0));
        // c is an integer in [0, 255]: converted exactly
        (_mm512_cvtps_epi32(c), _mm512_fmadd_ps(c, sc, of))
    }

    /// Stores 16 columns `kk..kk + 16` of classes `j0..j0 + NR`: `fma(acc, s, o' · G_j)`.
    ///
    /// # Safety
    /// AVX-512F; `kk + 16 <= k`; the caller owns these columns of `out`.
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn tn_store<const NR: usize>(
        acc: &[__m512; NR],
        pre: Affine<'_>,
        of: __m512,
        gs: &[f32; NR],
        kk: usize,
        out: OutPtr,
        j0: usize,
    ) {
        // SAFETY: kk + 16 <= k = the length of scale; (j0 + c, kk..kk + 16) lies in the
        // caller's columns of `out`.
        unsafe {
            let sc = _mm512_loadu_ps(pre.scale.as_ptr().add(kk));
            for c in 0..NR {
                let base = _mm512_mul_ps(of, _mm512_set1_ps(gs[c]));
                _mm512_storeu_ps(out.at(j0 + c, kk), _mm512_fmadd_ps(acc[c], sc, base));
            }
        }
    }
}

/// The integer centre of a feature, `c = clamp(round(−o / s), 0, 255)` (ties to even; 0 when
/// `−o / s` is NaN), and the offset left over, `o' = fl(c·s + o)` (`|o'| <= s/2` up to one
/// rounding unless clamped): `x s + o = (x − c) s + o'` with `x − c` an exact small integer.
/// The AVX-512 `tn_centre` computes the same bits lane by lane.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn tn_centre_scalar(s: f32, o: f32) -> (f32, f32) {
    let q = ((0.0 - o) / s).round_ties_even();
    // as `vmaxps` / `vminps`: the second operand unless the first compares greater / less
    let c = if q > 0.0 { q } else { 0.0 };
    let c = if c < 255.0 { c } else { 255.0 };
    (c, c.mul_add(s, o))
}

/// The folded AVX-512 backward pass's last `< 16` columns, one at a time with the lane
/// arithmetic of the vector blocks: an f32 FMA chain `acc = g_ij · (x_ik − c_k) + acc` over
/// the rows in order, then `fma(acc, s_k, o'_k · G_j)` (scalar `mul_add` rounds exactly as
/// `vfmadd`).
///
/// # Safety
/// `out` points at `n * k` floats and the caller owns columns `from..to`.
#[cfg(target_arch = "x86_64")]
#[allow(clippy::too_many_arguments)]
#[inline(always)]
unsafe fn tn_tail_folded<const NR: usize>(
    g: &[f32],
    n: usize,
    rows: &[&[u8]],
    pre: Affine<'_>,
    gs: &[f32; NR],
    from: usize,
    to: usize,
    out: OutPtr,
    j0: usize,
) {
    for kk in from..to {
        let (cf, ofc) = tn_centre_scalar(pre.scale[kk], pre.offset[kk]);
        let mut acc = [0.0f32; NR];
        for (i, r) in rows.iter().enumerate() {
            let x = f32::from(r[kk]) - cf;
            for (c, a) in acc.iter_mut().enumerate() {
                *a = g[i * n + j0 + c].mul_add(x, *a);
            }
        }
        for (c, a) in acc.iter().enumerate() {
            let v = a.mul_add(pre.scale[kk], ofc * gs[c]);
            // SAFETY: (j0 + c) < n, kk < k, column kk owned by the caller.
            unsafe { *out.at(j0 + c, kk) = v };
        }
    }
}

/// The backward pass's last `< 8` (or `< 16`) columns in f32 with fused multiply-adds over
/// the rows in order: the same lane arithmetic as the vector kernels, one lane at a time.
///
/// # Safety
/// `out` points at `n * k` floats and the caller owns columns `from..to`.
#[cfg(target_arch = "x86_64")]
#[allow(clippy::too_many_arguments)]
#[inline(always)]
unsafe fn tn_tail<const NR: usize>(
    g: &[f32],
    n: usize,
    rows: &[&[u8]],
    pre: Affine<'_>,
    from: usize,
    to: usize,
    out: OutPtr,
    j0: usize,
) {
    for kk in from..to {
        let mut acc = [0.0f32; NR];
        for (i, r) in rows.iter().enumerate() {
            let x = f32::from(r[kk]).mul_add(pre.scale[kk], pre.offset[kk]);
            for (c, a) in acc.iter_mut().enumerate() {
                *a = g[i * n + j0 + c].mul_add(x, *a);
            }
        }
        for (c, a) in acc.iter().enumerate() {
            // SAFETY: (j0 + c) < n, kk < k, column kk owned by the caller.
            unsafe { *out.at(j0 + c, kk) = *a };
        }
    }
}

/// AVX2 + FMA kernels: 8 lanes, 16 registers (2 rows x up to 5 classes forward on the
/// packed `W'`, 10 classes x 8 features backward).
#[cfg(target_arch = "x86_64")]
// register blocks are indexed by class: index loops over compile-time bounds unroll cleanly
#[allow(clippy::needless_range_loop)]
mod avx2 {
    use super::{Affine, NtPacked, NtPrep, OutPtr, tail_dot};
    use std::arch::x86_64::*;

    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn load_x(r: &[u8], kk: usize, sc: __m256, of: __m256) -> __m256 {
        // SAFETY: the caller guarantees `kk + 8 <= r.len()`.
        let b = unsafe { _mm_loadl_epi64(r.as_ptr().add(kk).cast()) };
        _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(b)), sc, of)
    }

    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn hsum(v: __m256) -> f32 {
        let lo = _mm256_castps256_ps128(v);
        let hi = _mm256_extractf128_ps(v, 1);
        let s = _mm_add_ps(lo, hi);
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        let s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
        _mm_cvtss_f32(s)
    }

    /// Rows per super-block of the forward pass (their accumulators wait in a stack buffer
    /// between feature blocks), as in the AVX-512 kernel.
    const NT_ROWS: usize = 16;
    /// Features per block of `W'` ([`NtPacked::BLOCK`]): 5 classes x 256 f32, 5 KiB, stay in
    /// L1 while the row pairs of a super-block pass over them.
    const NT_KB: usize = NtPacked::BLOCK;
    /// Classes per register block: 2 rows x 5 classes of 8-lane accumulators, two rows and
    /// one weight vector: 13 of the 16 registers.
    const NT_CLASSES: usize = 5;

    /// Forward pass on `W'` and `β` from [`super::NtPacked`], as the AVX-512 kernel:
    /// `s_ij = Σ_k x_ik W'_jk + β_j` (+ the tail features), so the inner loop only widens
    /// bytes to f32 (exact). Each weight vector, loaded from L1, serves two rows; the
    /// per-element affine map and the `W` stream from L2 of one row at a time made the
    /// previous kernel bound by loads (16 for 10 multiply-adds). Super-blocks of
    /// [`NT_ROWS`] rows and feature blocks of [`NT_KB`]: the accumulators are saved and
    /// restored between feature blocks, which leaves every lane's sum in the same order, and
    /// a lone last row runs the same lane arithmetic, so each score has the same bits
    /// whatever the split of the rows.
    ///
    /// # Safety
    /// The CPU must support AVX2 and FMA; shapes checked by the caller; `prep` comes from
    /// [`super::NtPacked::new`] with the same `pre`, `w` and `n`.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn nt(
        rows: &[&[u8]],
        prep: &NtPrep,
        pre: Affine<'_>,
        w: &[f32],
        n: usize,
        out: &mut [f32],
    ) {
        let mut i = 0;
        while i < rows.len() {
            let mr = (rows.len() - i).min(NT_ROWS);
            let next = &rows[(i + mr).min(rows.len())..(i + 2 * mr).min(rows.len())];
            let mut j = 0;
            while j < n {
                let nr = (n - j).min(NT_CLASSES);
                let sb = &rows[i..i + mr];
                match nr {
                    1 => superblock::<1>(sb, next, prep, pre, w, n, j, i, out),
                    2 => superblock::<2>(sb, next, prep, pre, w, n, j, i, out),
                    3 => superblock::<3>(sb, next, prep, pre, w, n, j, i, out),
                    4 => superblock::<4>(sb, next, prep, pre, w, n, j, i, out),
                    _ => superblock::<5>(sb, next, prep, pre, w, n, j, i, out),
                }
                j += nr;
            }
            i += mr;
        }
    }

    /// 8 bytes from `kk` widened to 8 f32 lanes (exact).
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn load_u8(r: &[u8], kk: usize) -> __m256 {
        // SAFETY: the caller guarantees `kk + 8 <= r.len()`.
        let b = unsafe { _mm_loadl_epi64(r.as_ptr().add(kk).cast()) };
        _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(b))
    }

    /// One super-block of at most [`NT_ROWS`] rows (from output row `i0`) against classes
    /// `j0..j0 + NR`; `next` are the following super-block's rows, prefetched.
    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx2,fma")]
    fn superblock<const NR: usize>(
        rows: &[&[u8]],
        next: &[&[u8]],
        prep: &NtPrep,
        pre: Affine<'_>,
        w: &[f32],
        n: usize,
        j0: usize,
        i0: usize,
        out: &mut [f32],
    ) {
        let k = pre.scale.len();
        let kv = k / 16 * 16;
        let pairs = rows.len() / 2;
        let mut acc = [[_mm256_setzero_ps(); NR]; NT_ROWS];
        let mut kb = 0;
        while kb < kv {
            let ke = (kb + NT_KB).min(kv);
            // this feature block of W', classes j0.. (contiguous, NT_KB floats per class)
            let base = (kb / NT_KB) * n + j0;
            let wb = &prep.wk[base * NT_KB..(base + NR) * NT_KB];
            for p in 0..pairs {
                let (r0, r1) = (rows[2 * p], rows[2 * p + 1]);
                let (mut a0, mut a1) = (acc[2 * p], acc[2 * p + 1]);
                if j0 == 0 {
                    // the next super-block's rows: fetch their lines in this feature block
                    for r in next.iter().skip(2 * p).take(2) {
                        let mut kk = kb;
                        while kk < ke {
                            // SAFETY: kk < kv <= k = the row's length (prefetch never faults).
                            unsafe { _mm_prefetch::<_MM_HINT_T0>(r.as_ptr().add(kk).cast()) };
                            kk += 64;
                        }
                    }
                }
                let mut kk = kb;
                while kk < ke {
                    // SAFETY: kk + 8 <= kv <= k = the rows' length; (kk - kb) + 8 <= NT_KB and
                    // c < NR, so every W' load lies in `wb`.
                    unsafe {
                        let x0 = load_u8(r0, kk);
                        let x1 = load_u8(r1, kk);
                        for c in 0..NR {
                            let wv = _mm256_loadu_ps(wb.as_ptr().add(c * NT_KB + kk - kb));
                            a0[c] = _mm256_fmadd_ps(x0, wv, a0[c]);
                            a1[c] = _mm256_fmadd_ps(x1, wv, a1[c]);
                        }
                    }
                    kk += 8;
                }
                acc[2 * p] = a0;
                acc[2 * p + 1] = a1;
            }
            if rows.len() % 2 == 1 {
                let r0 = rows[rows.len() - 1];
                let mut a0 = acc[rows.len() - 1];
                let mut kk = kb;
                while kk < ke {
                    // SAFETY: as above.
                    unsafe {
                        let x0 = load_u8(r0, kk);
                        for c in 0..NR {
                            let wv = _mm256_loadu_ps(wb.as_ptr().add(c * NT_KB + kk - kb));
                            a0[c] = _mm256_fmadd_ps(x0, wv, a0[c]);
                        }
                    }
                    kk += 8;
                }
                acc[rows.len() - 1] = a0;
            }
            kb = ke;
        }
        for (p, r) in rows.iter().enumerate() {
            for c in 0..NR {
                let wj = &w[(j0 + c) * k..(j0 + c + 1) * k];
                out[(i0 + p) * n + j0 + c] =
                    hsum(acc[p][c]) + prep.beta[j0 + c] + tail_dot(r, pre, wj, kv);
            }
        }
    }

    /// Backward pass for columns `k0..k1`.
    ///
    /// # Safety
    /// AVX2 + FMA; `out` points at `n * k` floats of which this call owns columns `k0..k1`.
    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn tn(
        g: &[f32],
        n: usize,
        rows: &[&[u8]],
        pre: Affine<'_>,
        k0: usize,
        k1: usize,
        out: OutPtr,
    ) {
        let mut j = 0;
        while j < n {
            let nr = (n - j).min(10);
            // SAFETY: forwarded from the caller.
            unsafe { dispatch_nr!(nr, tn_block(g, n, rows, pre, k0, k1, out, j)) };
            j += nr;
        }
    }

    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn tn_block<const NR: usize>(
        g: &[f32],
        n: usize,
        rows: &[&[u8]],
        pre: Affine<'_>,
        k0: usize,
        k1: usize,
        out: OutPtr,
        j0: usize,
    ) {
        let mut kk = k0;
        while kk + 8 <= k1 {
            let mut a0 = [_mm256_setzero_ps(); NR];
            // SAFETY: kk + 8 <= k1 <= k; rows have length k; g has rows.len() * n floats;
            // out has n * k floats and this task owns columns k0..k1.
            unsafe {
                let sc0 = _mm256_loadu_ps(pre.scale.as_ptr().add(kk));
                let of0 = _mm256_loadu_ps(pre.offset.as_ptr().add(kk));
                for (i, r) in rows.iter().enumerate() {
                    let x0 = load_x(r, kk, sc0, of0);
                    let gi = g.as_ptr().add(i * n + j0);
                    for c in 0..NR {
                        let gv = _mm256_broadcast_ss(&*gi.add(c));
                        a0[c] = _mm256_fmadd_ps(gv, x0, a0[c]);
                    }
                }
                for c in 0..NR {
                    _mm256_storeu_ps(out.at(j0 + c, kk), a0[c]);
                }
            }
            kk += 8;
        }
        // SAFETY: forwarded; columns kk..k1 belong to this task.
        unsafe { super::tn_tail::<NR>(g, n, rows, pre, kk, k1, out, j0) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic bytes and floats without a dependency (xorshift64*); also used by the
    /// tests of `gemm::int`.
    pub(super) struct Gen(pub(super) u64);
    impl Gen {
        pub(super) fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }
        fn f32(&mut self) -> f32 {
            (self.next() >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
        }
    }

    struct Case {
        rows: Vec<Vec<u8>>,
        scale: Vec<f32>,
        offset: Vec<f32>,
        w: Vec<f32>,
        g: Vec<f32>,
    }

    fn case(m: usize, n: usize, k: usize, seed: u64, adversarial: bool) -> Case {
        let mut r = Gen(seed | 1);
        let rows = (0..m)
            .map(|_| {
                (0..k)
                    .map(|_| {
                        if adversarial {
                            [0u8, 255][(r.next() & 1) as usize]
                        } else {
                            r.next() as u8
                        }
                    })
                    .collect()
            })
            .collect();
        let scale = (0..k).map(|_| if adversarial { 1.0 } else { 0.5 + r.f32().abs() }).collect();
        let offset = (0..k).map(|_| -127.5 + 20.0 * r.f32()).collect();
        let big = if adversarial { 1e3 } else { 1.0 };
        let w = (0..n * k).map(|_| big * r.f32()).collect();
        let g = (0..m * n).map(|_| r.f32()).collect();
        Case { rows, scale, offset, w, g }
    }

    /// Σ |x̃_k w_k| per output: the scale of f32 rounding error for a dot product.
    fn abs_dot_nt(c: &Case, n: usize) -> Vec<f64> {
        let k = c.scale.len();
        let mut out = vec![];
        for r in &c.rows {
            for j in 0..n {
                out.push(
                    (0..k)
                        .map(|kk| {
                            ((f64::from(r[kk]) * f64::from(c.scale[kk]) + f64::from(c.offset[kk]))
                                * f64::from(c.w[j * k + kk]))
                            .abs()
                        })
                        .sum::<f64>(),
                );
            }
        }
        out
    }

    #[test]
    fn every_kernel_agrees_with_the_scalar_twin_for_every_tail_length() {
        // tolerance: f32 with per-lane partial sums, relative to Σ|terms|
        let tol = 1e-5;
        for &k in &[0usize, 1, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65, 3072] {
            for &(m, n) in &[(1usize, 1usize), (3, 10), (5, 7), (2, 13), (37, 10)] {
                for adversarial in [false, true] {
                    let c = case(m, n, k, (k * 31 + m * 7 + n) as u64, adversarial);
                    let rows: Vec<&[u8]> = c.rows.iter().map(Vec::as_slice).collect();
                    let pre = Affine { scale: &c.scale, offset: &c.offset };
                    let mut want = vec![0.0f32; m * n];
                    gemm_nt_u8_with(KernelKind::Scalar, &rows, pre, &c.w, n, &mut want)
                        .expect("shapes");
                    let mut want_t = vec![0.0f32; n * k];
                    gemm_tn_u8_with(KernelKind::Scalar, &c.g, n, &rows, pre, &mut want_t)
                        .expect("shapes");
                    let scale_nt = abs_dot_nt(&c, n);
                    for kernel in KernelKind::available() {
                        let mut got = vec![f32::NAN; m * n];
                        gemm_nt_u8_with(kernel, &rows, pre, &c.w, n, &mut got).expect("shapes");
                        for (idx, (a, b)) in got.iter().zip(&want).enumerate() {
                            let bound = tol * scale_nt[idx] + 1e-30;
                            assert!(
                                (f64::from(*a) - f64::from(*b)).abs() <= bound,
                                "{kernel:?} nt k={k} m={m} n={n} idx={idx}: {a} vs {b}"
                            );
                        }
                        let mut got_t = vec![f32::NAN; n * k];
                        gemm_tn_u8_with(kernel, &c.g, n, &rows, pre, &mut got_t).expect("shapes");
                        for j in 0..n {
                            for kk in 0..k {
                                // the documented bound of the kernel plus the scalar twin's
                                // one rounding
                                let (_, bound) = tn_exact_and_bound(&c.g, n, &rows, pre, j, kk);
                                let (a, b) = (got_t[j * k + kk], want_t[j * k + kk]);
                                let bound = bound + U * f64::from(b).abs();
                                assert!(
                                    (f64::from(a) - f64::from(b)).abs() <= bound,
                                    "{kernel:?} tn k={k} m={m} n={n} j={j} kk={kk}: {a} vs {b}"
                                );
                            }
                        }
                    }
                }
            }
        }
    }

    /// f32 unit roundoff.
    const U: f64 = 1.0 / (1u64 << 24) as f64;

    /// The exact backward element `D_jk = Σ_i g_ij (x_ik s_k + o_k)` (in f64: every term is
    /// exact to 2^-53 relative) and the error bound documented on [`gemm_tn_u8_with`]:
    /// `(m + 2) · u · Σ_i |g_ij| (|(x_ik − c_k) s_k| + |o'_k|)`, u = 2^-24, with the integer
    /// centre `c_k` and `o'_k = o_k + c_k s_k` computed here in f64 from the definition.
    fn tn_exact_and_bound(
        g: &[f32],
        n: usize,
        rows: &[&[u8]],
        pre: Affine<'_>,
        j: usize,
        kk: usize,
    ) -> (f64, f64) {
        let (s, o) = (f64::from(pre.scale[kk]), f64::from(pre.offset[kk]));
        // c_k as documented (f32 division, ties to even), then exact in f64
        let c = f64::from((-pre.offset[kk] / pre.scale[kk]).round_ties_even().clamp(0.0, 255.0));
        let oc = o + c * s;
        let (mut exact, mut mag) = (0.0f64, 0.0f64);
        for (i, r) in rows.iter().enumerate() {
            let (gi, x) = (f64::from(g[i * n + j]), f64::from(r[kk]));
            exact += gi * (x * s + o);
            mag += gi.abs() * (((x - c) * s).abs() + oc.abs());
        }
        // + a few f64 roundings of the oracle itself
        (exact, (rows.len() as f64 + 2.0) * U * mag + 1e-12 * mag)
    }

    /// Rows, affine map and gradient for the backward tests: `kind` 0 random, 1 rows of 0 and
    /// 255 only (all-0 rows, all-255 rows, mixed), 2 every row equal to the mean (the exact
    /// product is 0: the fold's cancellation at its worst); `g` has mixed signs and magnitudes
    /// from 1e-6 to 1e2.
    fn tn_case(
        m: usize,
        n: usize,
        k: usize,
        seed: u64,
        kind: u32,
    ) -> (Vec<Vec<u8>>, Vec<f32>, Vec<f32>, Vec<f32>) {
        let mut r = Gen(seed | 1);
        let mean: Vec<u8> = (0..k).map(|_| r.next() as u8).collect();
        let rows: Vec<Vec<u8>> = (0..m)
            .map(|i| match kind {
                0 => (0..k).map(|_| r.next() as u8).collect(),
                1 => match i % 3 {
                    0 => vec![255; k],
                    1 => vec![0; k],
                    _ => (0..k).map(|_| [0u8, 255][(r.next() & 1) as usize]).collect(),
                },
                _ => mean.clone(),
            })
            .collect();
        let scale: Vec<f32> = (0..k).map(|_| 1.0 / 255.0 + r.f32().abs()).collect();
        let offset: Vec<f32> = match kind {
            2 => mean.iter().zip(&scale).map(|(&x, &s)| -(f32::from(x) * s)).collect(),
            _ => (0..k).map(|_| -127.5 + 20.0 * r.f32()).collect(),
        };
        let g = (0..m * n).map(|_| r.f32() * 10f32.powi((r.next() % 9) as i32 - 6)).collect();
        (rows, scale, offset, g)
    }

    #[test]
    fn backward_columns_match_an_f64_reference_within_the_documented_bound() {
        // every kernel, gemm_tn_u8_cols_with on column ranges of every tail length, starting
        // on and off a multiple of 16; oracle: the product in f64
        let k = 1600usize;
        for &(m, n) in &[(200usize, 10usize), (100, 10), (7, 13), (1, 3), (0, 2)] {
            for kind in 0..3 {
                let (rows, scale, offset, g) = tn_case(m, n, k, (m * 131 + n) as u64, kind);
                let refs: Vec<&[u8]> = rows.iter().map(Vec::as_slice).collect();
                let pre = Affine { scale: &scale, offset: &offset };
                for &len in &[1usize, 15, 16, 17, 31, 33, 255, 256, 1536] {
                    for &k0 in &[0usize, 5, 16, 48] {
                        let k1 = k0 + len;
                        for kernel in KernelKind::available() {
                            let mut out = vec![f32::NAN; n * len];
                            gemm_tn_u8_cols_with(kernel, &g, n, &refs, pre, k0, k1, &mut out)
                                .expect("shapes");
                            for j in 0..n {
                                for kk in k0..k1 {
                                    let (exact, bound) =
                                        tn_exact_and_bound(&g, n, &refs, pre, j, kk);
                                    let got = f64::from(out[j * len + kk - k0]);
                                    assert!(
                                        (got - exact).abs() <= bound,
                                        "{kernel:?} m={m} n={n} kind={kind} k0={k0} len={len} \
                                         j={j} kk={kk}: {got} vs {exact} (bound {bound:e})"
                                    );
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn backward_column_bits_do_not_depend_on_the_split() {
        // each kernel computes every column with the same lane arithmetic whether it lies in
        // a 32- or 16-column block or in the tail, so any split of 0..k (not only multiples
        // of 32) gives the bits of the whole call
        let (m, n, k) = (37usize, 12usize, 700usize);
        for kind in 0..3 {
            let (rows, scale, offset, g) = tn_case(m, n, k, 77 + u64::from(kind), kind);
            let refs: Vec<&[u8]> = rows.iter().map(Vec::as_slice).collect();
            let pre = Affine { scale: &scale, offset: &offset };
            for kernel in KernelKind::available() {
                let mut whole = vec![0.0f32; n * k];
                gemm_tn_u8_with(kernel, &g, n, &refs, pre, &mut whole).expect("shapes");
                for cuts in [&[1usize, 17, 33, 300, 511][..], &[5, 16, 256, 512], &[255, 699]] {
                    let mut bounds = vec![0];
                    bounds.extend_from_slice(cuts);
                    bounds.push(k);
                    for w in bounds.windows(2) {
                        let (k0, k1) = (w[0], w[1]);
                        let mut part = vec![f32::NAN; n * (k1 - k0)];
                        gemm_tn_u8_cols_with(kernel, &g, n, &refs, pre, k0, k1, &mut part)
                            .expect("shapes");
                        for j in 0..n {
                            for kk in k0..k1 {
                                assert_eq!(
                                    part[j * (k1 - k0) + kk - k0].to_bits(),
                                    whole[j * k + kk].to_bits(),
                                    "{kernel:?} kind={kind} {k0}..{k1} j={j} kk={kk}"
                                );
                            }
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn forward_error_is_f32_rounding_of_the_uncentred_sum() {
        // The AVX-512 forward sums x·(w·s) over the raw pixels and adds β = Σ_k o_k w_k once,
        // so its error scales with Σ_k (|x_k s_k w_k| + |o_k w_k|), not with the centred
        // Σ_k |x̃_k w_k|. Worst case for that cancellation: rows at the mean (x̃ ≈ 0) and W
        // with a large constant part. Oracle: the product in f64.
        let (m, n, k) = (6usize, 10usize, 3072usize);
        let mut r = Gen(4242);
        let mean: Vec<f32> = (0..k).map(|_| 100.0 + (r.next() % 50) as f32).collect();
        let rows: Vec<Vec<u8>> = (0..m)
            .map(|_| mean.iter().map(|&mu| (mu + (r.next() % 5) as f32 - 2.0) as u8).collect())
            .collect();
        let scale = vec![1.0f32; k];
        let offset: Vec<f32> = mean.iter().map(|v| -v).collect();
        let w: Vec<f32> = (0..n * k).map(|_| 1e-3 + 1e-4 * r.f32()).collect();
        let refs: Vec<&[u8]> = rows.iter().map(Vec::as_slice).collect();
        let pre = Affine { scale: &scale, offset: &offset };
        for kernel in KernelKind::available() {
            let mut s = vec![0.0f32; m * n];
            gemm_nt_u8_with(kernel, &refs, pre, &w, n, &mut s).expect("shapes");
            for i in 0..m {
                for j in 0..n {
                    let (mut exact, mut mag) = (0.0f64, 0.0f64);
                    for kk in 0..k {
                        let (x, wk) = (f64::from(rows[i][kk]), f64::from(w[j * k + kk]));
                        exact += (x + f64::from(offset[kk])) * wk;
                        mag += (x * wk).abs() + (f64::from(offset[kk]) * wk).abs();
                    }
                    let err = (f64::from(s[i * n + j]) - exact).abs();
                    assert!(err <= 1e-5 * mag, "{kernel:?} [{i},{j}]: {} vs {exact}", s[i * n + j]);
                }
            }
        }
    }

    #[test]
    fn packed_forward_matches_the_unpacked_one_bit_for_bit_after_block_repacks() {
        for &(m, n, k) in &[(37usize, 10usize, 3072usize), (9, 3, 300), (5, 4, 40), (3, 2, 7)] {
            for adversarial in [false, true] {
                let c = case(m, n, k, (m * k) as u64 + 3, adversarial);
                let refs: Vec<&[u8]> = c.rows.iter().map(Vec::as_slice).collect();
                let pre = Affine { scale: &c.scale, offset: &c.offset };
                for kernel in KernelKind::available() {
                    let mut w = c.w.clone();
                    let mut packed = NtPacked::new(kernel, pre, &w, n).expect("shapes");
                    for round in 0..2 {
                        let mut want = vec![0.0f32; m * n];
                        gemm_nt_u8_with(kernel, &refs, pre, &w, n, &mut want).expect("shapes");
                        let mut got = vec![f32::NAN; m * n];
                        gemm_nt_u8_packed(&refs, pre, &w, n, &packed, &mut got).expect("shapes");
                        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                        assert_eq!(bits(&got), bits(&want), "{kernel:?} {m}x{n}x{k} round {round}");
                        // the serial variant on any split of the rows: the same bits per row
                        for split in [1, 4, 16, 17] {
                            let mut part = vec![f32::NAN; m * n];
                            for (r, o) in refs.chunks(split).zip(part.chunks_mut(split * n)) {
                                gemm_nt_u8_packed_serial(r, pre, &w, n, &packed, o)
                                    .expect("shapes");
                            }
                            assert_eq!(bits(&part), bits(&want), "{kernel:?} split {split}");
                        }
                        // change W, then repack it block by block (as a training update does)
                        w.iter_mut().enumerate().for_each(|(i, v)| *v = *v * 0.75 + (i % 7) as f32);
                        for mut blk in packed.blocks_mut() {
                            let k0 = blk.index() * NtPacked::BLOCK;
                            let k1 = (k0 + NtPacked::BLOCK).min(k);
                            let segs: Vec<&[f32]> = w.chunks_exact(k).map(|r| &r[k0..k1]).collect();
                            blk.pack(pre, &segs).expect("shapes");
                        }
                        packed.finish();
                    }
                    // a packing for other shapes is refused
                    let mut out = vec![0.0f32; m * n];
                    let other =
                        NtPacked::new(kernel, pre, &w[..(n - 1) * k], n - 1).expect("shapes");
                    assert!(gemm_nt_u8_packed(&refs, pre, &w, n, &other, &mut out).is_err());
                }
            }
        }
    }

    #[test]
    fn scalar_matches_a_naive_product() {
        // independent oracle: materialise X̃ in f64 and multiply with plain loops
        let (m, n, k) = (4, 3, 5);
        let c = case(m, n, k, 99, false);
        let rows: Vec<&[u8]> = c.rows.iter().map(Vec::as_slice).collect();
        let xt: Vec<Vec<f64>> = c
            .rows
            .iter()
            .map(|r| {
                (0..k).map(|kk| r[kk] as f64 * c.scale[kk] as f64 + c.offset[kk] as f64).collect()
            })
            .collect();
        let mut s = vec![0.0f32; m * n];
        gemm_nt_u8_with(
            KernelKind::Scalar,
            &rows,
            Affine { scale: &c.scale, offset: &c.offset },
            &c.w,
            n,
            &mut s,
        )
        .expect("shapes");
        for i in 0..m {
            for j in 0..n {
                let want: f64 = (0..k).map(|kk| xt[i][kk] * c.w[j * k + kk] as f64).sum();
                assert!((s[i * n + j] as f64 - want).abs() < 1e-4 * want.abs().max(1.0));
            }
        }
    }

    #[test]
    fn parallel_split_gives_identical_bits_for_any_thread_count() {
        let (m, n, k) = (200, 10, 3072);
        let c = case(m, n, k, 5, false);
        let rows: Vec<&[u8]> = c.rows.iter().map(Vec::as_slice).collect();
        let pre = Affine { scale: &c.scale, offset: &c.offset };
        for kernel in KernelKind::available() {
            let mut results = vec![];
            for threads in [1, 2, 3] {
                let pool =
                    rayon::ThreadPoolBuilder::new().num_threads(threads).build().expect("pool");
                let (s, d) = pool.install(|| {
                    let mut s = vec![0.0f32; m * n];
                    gemm_nt_u8_with(kernel, &rows, pre, &c.w, n, &mut s).expect("shapes");
                    let mut d = vec![0.0f32; n * k];
                    gemm_tn_u8_with(kernel, &c.g, n, &rows, pre, &mut d).expect("shapes");
                    (s, d)
                });
                results.push((s, d));
            }
            assert!(results.windows(2).all(|p| p[0] == p[1]), "{kernel:?}");
        }
    }

    #[test]
    fn shape_errors_are_typed() {
        let rows: [&[u8]; 1] = [&[1, 2]];
        let (scale, offset) = ([1.0f32; 2], [0.0f32; 2]);
        let pre = Affine { scale: &scale, offset: &offset };
        let mut out = [0.0f32; 2];
        assert_eq!(
            gemm_nt_u8_with(KernelKind::Scalar, &rows, pre, &[0.0; 3], 2, &mut out),
            Err(GemmError::ShapeMismatch { what: "w", expected: 4, found: 3 })
        );
        let short: [&[u8]; 1] = [&[1]];
        assert_eq!(
            gemm_tn_u8_with(KernelKind::Scalar, &[1.0], 1, &short, pre, &mut out),
            Err(GemmError::ShapeMismatch { what: "row", expected: 2, found: 1 })
        );
        assert!(matches!(KernelKind::from_name("neon"), Err(KernelError::Unknown { .. })));
    }
}
