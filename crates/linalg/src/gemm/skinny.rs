//! Skinny products in f32 or f64 on rows under an affine map, without packing: the forward
//! pass `S = X̃ Wᵀ` and the backward pass `D += Gᵀ X̃` of a full-batch linear fit with few
//! classes (`n` of about 10), on f32 feature rows or u8 pixels, in the precision `T` of the
//! weights.
//!
//! ```text
//! x̃_ik = T(f32(x_ik · scale_k + offset_k))     (rounded as f32, then widened: the rows a
//!                                                linear model forms in f32)
//! forward:  S_ij  = Σ_k x̃_ik · W_jk            (S: m x n, W: n x k, row-major)
//! backward: D_jk += Σ_i G_ij · x̃_ik            (G: m x n, D: n x k, row-major, accumulated)
//! ```
//!
//! A general GEMM (`matrixmultiply`, [`gemm`](super::gemm)) packs both operands into
//! panels, which for `n = 10` costs about as much as the product: a profile of an L-BFGS
//! softmax fit on 10,000 x 3,072 standardised pixels spent 30 % of its time packing and 22 %
//! forming the rows `x̃` before the products, against 37 % in the kernels. Here each row is
//! read where it lies and `x̃` is formed in registers, one 64-byte vector at a time:
//!
//! - forward: 4 rows x up to 5 classes per register block, one accumulator vector each (16
//!   f32 or 8 f64 lanes), one fused multiply-add per vector, the last partial vector
//!   zero-padded (masked loads), then a pairwise tree over the lanes: the error grows as
//!   `√(k/lanes)·ε`, not `k·ε`; a row's scores do not depend on the rows beside it;
//! - backward: up to 5 classes x 32 f32 (16 f64) columns of `D` stay in registers while the
//!   rows go past; each output is one fused chain over the rows in order.
//!
//! Every multiply-add is fused (`mul_add`, a correctly rounded software `fma` in the portable
//! twin where the CPU has none), so the portable twin, the AVX2 instances (both products
//! with intrinsics, one row's scores or 5 classes x 2 half-vectors of `D` in registers) and
//! the AVX-512 instance (the forward product with intrinsics, since the compiler spilled the
//! generic body's 20 accumulators; the backward one the generic body) give the same bits
//! (tested). The generic body compiled for AVX2 had stayed largely scalar, with spilled
//! accumulators: 9x slower in the forward product. The kernel is an argument
//! ([`KernelKind::detect`] chooses one). The functions are serial: callers split rows
//! (forward) or blocks of rows (backward) over their own tasks.
//!
//! Measured with `cargo run --release -p imgclass-linalg --example skinny_speed` (one thread,
//! the same products through rows formed in `T` and [`gemm`](super::gemm)): see
//! docs/bench/solver.md.
//!
//! ```
//! use imgclass_linalg::KernelKind;
//! use imgclass_linalg::gemm::{Affine, gemm_nt_affine_with, gemm_tn_affine_add_with};
//!
//! // two rows of 3 f32 features, mean [1, 2, 3] subtracted (scale 1, offset −mean)
//! let rows: [&[f32]; 2] = [&[2.0, 2.0, 5.0], &[0.0, 4.0, 3.0]];
//! let (scale, offset) = ([1.0f32; 3], [-1.0f32, -2.0, -3.0]);
//! let pre = Affine { scale: &scale, offset: &offset };
//! let w = [1.0f64, 1.0, 1.0, /* class 1 */ 0.5, -1.0, 2.0];
//! let mut s = [0.0f64; 4];
//! gemm_nt_affine_with(KernelKind::Scalar, &rows, pre, &w, 2, &mut s)?;
//! assert_eq!(s, [3.0, 4.5, 1.0, -2.5]); // centred rows [1, 0, 2] and [-1, 2, 0]
//!
//! let g = [1.0f64, 0.0, 2.0, 1.0]; // D += Gᵀ X̃
//! let mut d = [0.0f64; 6];
//! gemm_tn_affine_add_with(KernelKind::Scalar, &g, 2, &rows, pre, &mut d)?;
//! assert_eq!(d, [-1.0, 4.0, 2.0, -1.0, 2.0, 0.0]);
//! # Ok::<(), imgclass_linalg::gemm::GemmError>(())
//! ```

// index loops over compile-time bounds unroll into registers (iterators and `from_fn` did not)
#![allow(clippy::needless_range_loop)]

use std::ops::{Add, Mul};

use super::{Affine, GemmError, KernelError, KernelKind, check};

/// The precision of a skinny product's weights, accumulators and outputs: f32 or f64, each
/// with its vector widths (64-byte vectors; see the [module docs](self)).
pub trait SkinnyScalar:
    Copy + Default + Add<Output = Self> + Mul<Output = Self> + From<f32> + Send + Sync + 'static
{
    /// `self · a + b` with one rounding (`mul_add`): fused in every kernel, so the portable
    /// twin (a correctly rounded software `fma` where the CPU has none) gives the same bits.
    fn fma(self, a: Self, b: Self) -> Self;

    /// The forward body at this precision's widths.
    #[doc(hidden)]
    fn nt<X: AffineInput>(rows: &[&[X]], pre: Affine<'_>, w: &[Self], n: usize, out: &mut [Self]);

    /// The backward body at this precision's widths.
    #[doc(hidden)]
    fn tn<X: AffineInput>(g: &[Self], n: usize, rows: &[&[X]], pre: Affine<'_>, out: &mut [Self]);

    /// The SIMD instances on rows of `X` at this precision.
    #[doc(hidden)]
    #[cfg(target_arch = "x86_64")]
    fn simd<X: AffineInput>() -> Instances<X, Self>;
}

/// The two precisions: forward lanes `$nt`, backward lanes `$tn` (64-byte vectors: one of
/// f32 or of f64 forward, two backward), and their SIMD instances.
macro_rules! skinny_scalar {
    ($t:ty, $nt:literal, $tn:literal, $simd:ident) => {
        impl SkinnyScalar for $t {
            #[inline(always)]
            fn fma(self, a: Self, b: Self) -> Self {
                self.mul_add(a, b)
            }
            #[inline(always)]
            fn nt<X: AffineInput>(
                rows: &[&[X]],
                pre: Affine<'_>,
                w: &[Self],
                n: usize,
                out: &mut [Self],
            ) {
                nt_body::<X, Self, $nt>(rows, pre, w, n, out)
            }
            #[inline(always)]
            fn tn<X: AffineInput>(
                g: &[Self],
                n: usize,
                rows: &[&[X]],
                pre: Affine<'_>,
                out: &mut [Self],
            ) {
                tn_body::<X, Self, $tn>(g, n, rows, pre, out)
            }
            #[cfg(target_arch = "x86_64")]
            fn simd<X: AffineInput>() -> Instances<X, Self> {
                X::$simd()
            }
        }
    };
}
skinny_scalar!(f32, 16, 32, simd_f32);
skinny_scalar!(f64, 8, 16, simd_f64);

/// A forward instance: `(rows, pre, w, n, out)`.
#[cfg(target_arch = "x86_64")]
type NtFn<X, T> = unsafe fn(&[&[X]], Affine<'_>, &[T], usize, &mut [T]);
/// A backward instance: `(g, n, rows, pre, out)`.
#[cfg(target_arch = "x86_64")]
type TnFn<X, T> = unsafe fn(&[T], usize, &[&[X]], Affine<'_>, &mut [T]);

/// The SIMD instances of the two products on rows of `X` with weights of `T`, chosen by the
/// two types: one table per pair, so that a new instance is one field here and one entry in
/// `affine_input!`. Each is `unsafe`: the CPU must have its features (checked by the
/// products through [`KernelKind::is_available`]) and the shapes must be checked.
#[doc(hidden)]
#[cfg(target_arch = "x86_64")]
#[derive(Clone, Copy)]
pub struct Instances<X: 'static, T: 'static> {
    /// The AVX-512 forward product (AVX-512F/BW/VL).
    nt512: NtFn<X, T>,
    /// The AVX2 forward product (AVX2 + FMA).
    nt256: NtFn<X, T>,
    /// The AVX2 backward product (AVX2 + FMA).
    tn256: TnFn<X, T>,
}

/// The element of a skinny product's rows: u8 pixels or f32 features.
pub trait AffineInput: Copy + Default + Send + Sync + 'static {
    /// The value as f32 (exact for both).
    fn value(self) -> f32;

    /// The SIMD instances on these rows in f32.
    #[doc(hidden)]
    #[cfg(target_arch = "x86_64")]
    fn simd_f32() -> Instances<Self, f32>;

    /// The SIMD instances on these rows in f64.
    #[doc(hidden)]
    #[cfg(target_arch = "x86_64")]
    fn simd_f64() -> Instances<Self, f64>;
}

/// The two row types, each with its instance table per precision (the function names of
/// the `avx512` and `avx2` modules: forward f32, forward f64, backward f32, backward f64).
macro_rules! affine_input {
    ($x:ty, $value:expr, $nt32:ident, $nt64:ident, $tn32:ident, $tn64:ident) => {
        impl AffineInput for $x {
            #[inline(always)]
            fn value(self) -> f32 {
                $value(self)
            }
            #[cfg(target_arch = "x86_64")]
            fn simd_f32() -> Instances<Self, f32> {
                Instances { nt512: avx512::$nt32, nt256: avx2::$nt32, tn256: avx2::$tn32 }
            }
            #[cfg(target_arch = "x86_64")]
            fn simd_f64() -> Instances<Self, f64> {
                Instances { nt512: avx512::$nt64, nt256: avx2::$nt64, tn256: avx2::$tn64 }
            }
        }
    };
}
affine_input!(u8, f32::from, nt_u8_f32, nt_u8_f64, tn_u8_f32, tn_u8_f64);
affine_input!(f32, std::convert::identity, nt_f32_f32, nt_f32_f64, tn_f32_f32, tn_f32_f64);

/// Classes per pass over the rows (their accumulators stay in registers).
const G: usize = 5;
/// Rows per pass of the forward product over `W` (each `W` load serves 4 rows).
const R: usize = 4;

/// Runs `$call` for the classes in groups of [`G`] (then one group of the rest): `$j0` is the
/// group's first class and `$c` a `const` of its size, for the group kernels' `C`; `$call`
/// returns the size. Every product, portable or SIMD, walks its classes this way.
macro_rules! by_groups {
    ($n:expr, |$j0:ident, $c:ident| $call:expr) => {{
        let mut $j0 = 0;
        while $j0 < $n {
            $j0 += match $n - $j0 {
                1 => {
                    const $c: usize = 1;
                    $call
                }
                2 => {
                    const $c: usize = 2;
                    $call
                }
                3 => {
                    const $c: usize = 3;
                    $call
                }
                4 => {
                    const $c: usize = 4;
                    $call
                }
                _ => {
                    const $c: usize = G;
                    $call
                }
            };
        }
    }};
}

fn check_args<X>(rows: &[&[X]], pre: Affine<'_>) -> Result<usize, GemmError> {
    let k = pre.scale.len();
    check("offset", k, pre.offset.len())?;
    for r in rows {
        check("row", k, r.len())?;
    }
    Ok(k)
}

fn check_kernel(kernel: KernelKind) -> Result<(), GemmError> {
    if kernel.is_available() {
        Ok(())
    } else {
        Err(GemmError::Kernel(KernelError::Unavailable { name: kernel.name() }))
    }
}

/// Forward product `out = X̃ Wᵀ` (`out`: `rows.len() x n`, `w`: `n x k` with
/// `k = pre.scale.len()`), serially, with `kernel` (see the [module docs](self)).
pub fn gemm_nt_affine_with<X: AffineInput, T: SkinnyScalar>(
    kernel: KernelKind,
    rows: &[&[X]],
    pre: Affine<'_>,
    w: &[T],
    n: usize,
    out: &mut [T],
) -> Result<(), GemmError> {
    let k = check_args(rows, pre)?;
    check("w", n * k, w.len())?;
    check("out", rows.len() * n, out.len())?;
    check_kernel(kernel)?;
    if n == 0 {
        return Ok(());
    }
    match kernel {
        #[cfg(target_arch = "x86_64")]
        KernelKind::Avx512 => {
            // SAFETY: check_kernel found avx512f/bw/vl on this CPU
            unsafe { (T::simd::<X>().nt512)(rows, pre, w, n, out) }
        }
        #[cfg(target_arch = "x86_64")]
        KernelKind::Avx2 => {
            // SAFETY: check_kernel found avx2 and fma on this CPU
            unsafe { (T::simd::<X>().nt256)(rows, pre, w, n, out) }
        }
        _ => T::nt(rows, pre, w, n, out),
    }
    Ok(())
}

/// Backward product accumulated: `out += Gᵀ X̃` (`g`: `rows.len() x n`, `out`: `n x k`),
/// serially, with `kernel` (see the [module docs](self)).
pub fn gemm_tn_affine_add_with<X: AffineInput, T: SkinnyScalar>(
    kernel: KernelKind,
    g: &[T],
    n: usize,
    rows: &[&[X]],
    pre: Affine<'_>,
    out: &mut [T],
) -> Result<(), GemmError> {
    let k = check_args(rows, pre)?;
    check("g", rows.len() * n, g.len())?;
    check("out", n * k, out.len())?;
    check_kernel(kernel)?;
    if n == 0 {
        return Ok(());
    }
    match kernel {
        #[cfg(target_arch = "x86_64")]
        KernelKind::Avx512 => {
            // SAFETY: as in gemm_nt_affine_with
            unsafe { tn_avx512(g, n, rows, pre, out) }
        }
        #[cfg(target_arch = "x86_64")]
        KernelKind::Avx2 => {
            // SAFETY: as in gemm_nt_affine_with
            unsafe { (T::simd::<X>().tn256)(g, n, rows, pre, out) }
        }
        _ => T::tn(g, n, rows, pre, out),
    }
    Ok(())
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
fn tn_avx512<X: AffineInput, T: SkinnyScalar>(
    g: &[T],
    n: usize,
    rows: &[&[X]],
    pre: Affine<'_>,
    out: &mut [T],
) {
    T::tn(g, n, rows, pre, out)
}

/// `x̃` of one value: the affine map in f32, then widened.
#[inline(always)]
fn tilde<X: AffineInput, T: SkinnyScalar>(x: X, s: f32, o: f32) -> T {
    T::from(x.value() * s + o)
}

/// `L` values of `x̃` from `L` inputs.
#[inline(always)]
fn tilde_v<X: AffineInput, T: SkinnyScalar, const L: usize>(
    x: &[X; L],
    s: &[f32; L],
    o: &[f32; L],
) -> [T; L] {
    let mut v = [T::default(); L];
    for l in 0..L {
        v[l] = tilde(x[l], s[l], o[l]);
    }
    v
}

#[inline(always)]
fn lanes<U, const L: usize>(a: &[U], c: usize) -> &[U; L] {
    a[c..c + L].try_into().expect("a whole vector")
}

#[inline(always)]
fn nt_body<X: AffineInput, T: SkinnyScalar, const L: usize>(
    rows: &[&[X]],
    pre: Affine<'_>,
    w: &[T],
    n: usize,
    out: &mut [T],
) {
    let k = pre.scale.len();
    let mut blocks = rows.chunks_exact(R);
    let mut outs = out.chunks_exact_mut(R * n);
    for (rb, ob) in (&mut blocks).zip(&mut outs) {
        nt_rows::<X, T, L, R>(rb.try_into().expect("R rows"), pre, w, n, k, ob);
    }
    for (r, o) in blocks.remainder().iter().zip(outs.into_remainder().chunks_exact_mut(n)) {
        nt_rows::<X, T, L, 1>(&[r], pre, w, n, k, o);
    }
}

/// Scores of `RR` rows for every class, `G` classes per pass.
#[inline(always)]
fn nt_rows<X: AffineInput, T: SkinnyScalar, const L: usize, const RR: usize>(
    rows: &[&[X]; RR],
    pre: Affine<'_>,
    w: &[T],
    n: usize,
    k: usize,
    out: &mut [T],
) {
    by_groups!(n, |j0, C| nt_group::<X, T, L, RR, C>(rows, pre, &w[j0 * k..], n, j0, out));
}

/// Scores of `RR` rows for the `C` classes from `j0` (whose weight rows start `w`); writes
/// `out[r·n + j0 + j]`, returns `C`. Each score's lanes, tree and tail are the same whatever
/// `RR`, so a row's scores do not depend on the rows beside it.
#[inline(always)]
fn nt_group<X: AffineInput, T: SkinnyScalar, const L: usize, const RR: usize, const C: usize>(
    rows: &[&[X]; RR],
    pre: Affine<'_>,
    w: &[T],
    n: usize,
    j0: usize,
    out: &mut [T],
) -> usize {
    let k = pre.scale.len();
    let mut wr: [&[T]; C] = [&[]; C];
    for (j, wj) in wr.iter_mut().enumerate() {
        *wj = &w[j * k..(j + 1) * k];
    }
    let mut acc = [[[T::default(); L]; C]; RR];
    let kv = k / L * L;
    for c in (0..kv).step_by(L) {
        let (s, o) = (lanes::<f32, L>(pre.scale, c), lanes::<f32, L>(pre.offset, c));
        let mut xv = [[T::default(); L]; RR];
        for r in 0..RR {
            xv[r] = tilde_v(lanes(rows[r], c), s, o);
        }
        for j in 0..C {
            let wv = lanes::<T, L>(wr[j], c);
            for r in 0..RR {
                for l in 0..L {
                    acc[r][j][l] = xv[r][l].fma(wv[l], acc[r][j][l]);
                }
            }
        }
    }
    if kv < k {
        // the last partial vector, zero-padded as a masked load pads it: x̃ = 0·0 + 0 and
        // w = 0 in the lanes past `k`, so those lanes take `fma(0, 0, a)` as the SIMD ones do
        let pad = |v: &[f32]| -> [f32; L] {
            let mut a = [0.0f32; L];
            a[..k - kv].copy_from_slice(&v[kv..]);
            a
        };
        let (s, o) = (pad(pre.scale), pad(pre.offset));
        for r in 0..RR {
            let mut x = [X::default(); L];
            x[..k - kv].copy_from_slice(&rows[r][kv..]);
            let xv: [T; L] = tilde_v(&x, &s, &o);
            for j in 0..C {
                let mut wv = [T::default(); L];
                wv[..k - kv].copy_from_slice(&wr[j][kv..]);
                for l in 0..L {
                    acc[r][j][l] = xv[l].fma(wv[l], acc[r][j][l]);
                }
            }
        }
    }
    for (r, ar) in acc.iter_mut().enumerate() {
        for (j, a) in ar.iter_mut().enumerate() {
            out[r * n + j0 + j] = finish(a);
        }
    }
    C
}

/// A score from its lane sums: the pairwise tree over the lanes (every instance ends its
/// scores here).
#[inline(always)]
fn finish<T: SkinnyScalar, const L: usize>(a: &mut [T; L]) -> T {
    let mut width = L;
    while width > 1 {
        width /= 2;
        for l in 0..width {
            a[l] = a[l] + a[l + width];
        }
    }
    a[0]
}

#[inline(always)]
fn tn_body<X: AffineInput, T: SkinnyScalar, const L: usize>(
    g: &[T],
    n: usize,
    rows: &[&[X]],
    pre: Affine<'_>,
    out: &mut [T],
) {
    let k = pre.scale.len();
    by_groups!(n, |j0, C| tn_group::<X, T, L, C>(g, n, j0, rows, pre, &mut out[j0 * k..]));
}

/// `D += Gᵀ X̃` for the `C` classes from `j0` (`out` starts at class `j0`'s row); returns `C`.
/// Each output is one fused chain over the rows in order, whether in a vector or the tail.
#[inline(always)]
fn tn_group<X: AffineInput, T: SkinnyScalar, const L: usize, const C: usize>(
    g: &[T],
    n: usize,
    j0: usize,
    rows: &[&[X]],
    pre: Affine<'_>,
    out: &mut [T],
) -> usize {
    let k = pre.scale.len();
    let kv = k / L * L;
    let coef = |i: usize| -> [T; C] {
        let mut v = [T::default(); C];
        v.copy_from_slice(&g[i * n + j0..i * n + j0 + C]);
        v
    };
    for c in (0..kv).step_by(L) {
        let mut acc = [[T::default(); L]; C];
        for (j, a) in acc.iter_mut().enumerate() {
            *a = *lanes::<T, L>(&out[j * k..(j + 1) * k], c);
        }
        let (s, o) = (lanes::<f32, L>(pre.scale, c), lanes::<f32, L>(pre.offset, c));
        for (i, r) in rows.iter().enumerate() {
            let xv: [T; L] = tilde_v(lanes(r, c), s, o);
            let gi = coef(i);
            for (a, &gj) in acc.iter_mut().zip(&gi) {
                for l in 0..L {
                    a[l] = gj.fma(xv[l], a[l]);
                }
            }
        }
        for (j, a) in acc.iter().enumerate() {
            out[j * k + c..j * k + c + L].copy_from_slice(a);
        }
    }
    if kv < k {
        // the last partial vector, zero-padded; only its `k − kv` real lanes are stored, and
        // each of them is the same fused chain over the rows as in a whole vector
        let rem = k - kv;
        let pad = |v: &[f32]| -> [f32; L] {
            let mut a = [0.0f32; L];
            a[..rem].copy_from_slice(&v[kv..]);
            a
        };
        let (s, o) = (pad(pre.scale), pad(pre.offset));
        let mut acc = [[T::default(); L]; C];
        for (j, a) in acc.iter_mut().enumerate() {
            a[..rem].copy_from_slice(&out[j * k + kv..(j + 1) * k]);
        }
        for (i, r) in rows.iter().enumerate() {
            let mut x = [X::default(); L];
            x[..rem].copy_from_slice(&r[kv..]);
            let xv: [T; L] = tilde_v(&x, &s, &o);
            let gi = coef(i);
            for (a, &gj) in acc.iter_mut().zip(&gi) {
                for l in 0..L {
                    a[l] = gj.fma(xv[l], a[l]);
                }
            }
        }
        for (j, a) in acc.iter().enumerate() {
            out[j * k + kv..(j + 1) * k].copy_from_slice(&a[..rem]);
        }
    }
    C
}

/// The forward product with AVX-512 intrinsics: the portable body's arithmetic (the same
/// lanes, fused steps, tree and tail through [`finish`]), with its accumulators held in
/// registers, which the compiler did not manage for the generic body's 4 x 5 blocks.
#[cfg(target_arch = "x86_64")]
#[allow(clippy::needless_range_loop)]
mod avx512 {
    use std::arch::x86_64::*;

    use super::{Affine, G, R};

    /// [`super::finish`]'s pairwise tree on 16 f32 lanes, a vector add per level: lanes
    /// `l` and `l + 8`, then `l + 4`, `l + 2`, `l + 1` (the same additions, the same bits).
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    fn tree_ps(v: __m512) -> f32 {
        let hi = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1));
        let a8 = _mm256_add_ps(_mm512_castps512_ps256(v), hi);
        let a4 = _mm_add_ps(_mm256_castps256_ps128(a8), _mm256_extractf128_ps(a8, 1));
        let a2 = _mm_add_ps(a4, _mm_movehl_ps(a4, a4));
        _mm_cvtss_f32(_mm_add_ss(a2, _mm_shuffle_ps(a2, a2, 1)))
    }

    /// The same tree on 8 f64 lanes.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    fn tree_pd(v: __m512d) -> f64 {
        let a4 = _mm256_add_pd(_mm512_castpd512_pd256(v), _mm512_extractf64x4_pd(v, 1));
        let a2 = _mm_add_pd(_mm256_castpd256_pd128(a4), _mm256_extractf128_pd(a4, 1));
        _mm_cvtsd_f64(_mm_add_sd(a2, _mm_unpackhi_pd(a2, a2)))
    }

    macro_rules! nt_kernel {
        ($name:ident, $rows:ident, $group:ident, $x:ty, $t:ty, $l:literal, $v:ty,
         $zero:ident, $loadw:ident, $loadwm:ident, $fma:ident, $reduce:ident,
         |$p:ident, $s:ident, $o:ident| $xt:expr, |$m:ident| $xtail:expr) => {
            /// # Safety
            /// AVX-512F/BW/VL; shapes checked by the caller.
            #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
            pub(super) unsafe fn $name(
                rows: &[&[$x]],
                pre: Affine<'_>,
                w: &[$t],
                n: usize,
                out: &mut [$t],
            ) {
                let mut blocks = rows.chunks_exact(R);
                let mut outs = out.chunks_exact_mut(R * n);
                for (rb, ob) in (&mut blocks).zip(&mut outs) {
                    // SAFETY: forwarded
                    unsafe { $rows::<R>(rb.try_into().expect("R rows"), pre, w, n, ob) };
                }
                let rest = outs.into_remainder().chunks_exact_mut(n);
                for (r, o) in blocks.remainder().iter().zip(rest) {
                    // SAFETY: forwarded
                    unsafe { $rows::<1>(&[r], pre, w, n, o) };
                }
            }

            #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
            unsafe fn $rows<const RR: usize>(
                rows: &[&[$x]; RR],
                pre: Affine<'_>,
                w: &[$t],
                n: usize,
                out: &mut [$t],
            ) {
                let k = pre.scale.len();
                // SAFETY: forwarded
                by_groups!(n, |j0, C| unsafe {
                    $group::<RR, C>(rows, pre, &w[j0 * k..], n, j0, out)
                });
            }

            #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
            unsafe fn $group<const RR: usize, const C: usize>(
                rows: &[&[$x]; RR],
                pre: Affine<'_>,
                w: &[$t],
                n: usize,
                j0: usize,
                out: &mut [$t],
            ) -> usize {
                let k = pre.scale.len();
                let kv = k / $l * $l;
                let wr: [&[$t]; C] = core::array::from_fn(|j| &w[j * k..(j + 1) * k]);
                let mut acc: [[$v; C]; RR] = [[$zero(); C]; RR];
                let mut c = 0;
                while c < kv {
                    // SAFETY: c + L <= kv <= k, the length of every row, of scale and offset
                    // and of every weight row
                    unsafe {
                        let $s = pre.scale.as_ptr().add(c);
                        let $o = pre.offset.as_ptr().add(c);
                        let mut xv: [$v; RR] = [$zero(); RR];
                        for r in 0..RR {
                            let $p = rows[r].as_ptr().add(c);
                            xv[r] = $xt;
                        }
                        for j in 0..C {
                            let wv = $loadw(wr[j].as_ptr().add(c));
                            for r in 0..RR {
                                acc[r][j] = $fma(xv[r], wv, acc[r][j]);
                            }
                        }
                    }
                    c += $l;
                }
                if kv < k {
                    // the last partial vector, zero-padded by masked loads
                    let $m = (1u32 << (k - kv)) - 1;
                    // SAFETY: masked loads read lanes kv..k only, inside every slice
                    unsafe {
                        let $s = pre.scale.as_ptr().add(kv);
                        let $o = pre.offset.as_ptr().add(kv);
                        for r in 0..RR {
                            let $p = rows[r].as_ptr().add(kv);
                            let xv = $xtail;
                            for j in 0..C {
                                let wv = $loadwm($m as _, wr[j].as_ptr().add(kv));
                                acc[r][j] = $fma(xv, wv, acc[r][j]);
                            }
                        }
                    }
                }
                for r in 0..RR {
                    for j in 0..C {
                        out[r * n + j0 + j] = $reduce(acc[r][j]);
                    }
                }
                C
            }
        };
    }

    nt_kernel!(
        nt_f32_f32,
        rows_f32_f32,
        group_f32_f32,
        f32,
        f32,
        16,
        __m512,
        _mm512_setzero_ps,
        _mm512_loadu_ps,
        _mm512_maskz_loadu_ps,
        _mm512_fmadd_ps,
        tree_ps,
        |p, s, o| _mm512_add_ps(
            _mm512_mul_ps(_mm512_loadu_ps(p), _mm512_loadu_ps(s)),
            _mm512_loadu_ps(o)
        ),
        |m| _mm512_add_ps(
            _mm512_mul_ps(_mm512_maskz_loadu_ps(m as u16, p), _mm512_maskz_loadu_ps(m as u16, s)),
            _mm512_maskz_loadu_ps(m as u16, o)
        )
    );
    nt_kernel!(
        nt_u8_f32,
        rows_u8_f32,
        group_u8_f32,
        u8,
        f32,
        16,
        __m512,
        _mm512_setzero_ps,
        _mm512_loadu_ps,
        _mm512_maskz_loadu_ps,
        _mm512_fmadd_ps,
        tree_ps,
        |p, s, o| _mm512_add_ps(
            _mm512_mul_ps(
                _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_loadu_si128(p.cast()))),
                _mm512_loadu_ps(s)
            ),
            _mm512_loadu_ps(o)
        ),
        |m| _mm512_add_ps(
            _mm512_mul_ps(
                _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(m as u16, p.cast()))),
                _mm512_maskz_loadu_ps(m as u16, s)
            ),
            _mm512_maskz_loadu_ps(m as u16, o)
        )
    );
    nt_kernel!(
        nt_f32_f64,
        rows_f32_f64,
        group_f32_f64,
        f32,
        f64,
        8,
        __m512d,
        _mm512_setzero_pd,
        _mm512_loadu_pd,
        _mm512_maskz_loadu_pd,
        _mm512_fmadd_pd,
        tree_pd,
        |p, s, o| _mm512_cvtps_pd(_mm256_add_ps(
            _mm256_mul_ps(_mm256_loadu_ps(p), _mm256_loadu_ps(s)),
            _mm256_loadu_ps(o)
        )),
        |m| _mm512_cvtps_pd(_mm256_add_ps(
            _mm256_mul_ps(_mm256_maskz_loadu_ps(m as u8, p), _mm256_maskz_loadu_ps(m as u8, s)),
            _mm256_maskz_loadu_ps(m as u8, o)
        ))
    );
    nt_kernel!(
        nt_u8_f64,
        rows_u8_f64,
        group_u8_f64,
        u8,
        f64,
        8,
        __m512d,
        _mm512_setzero_pd,
        _mm512_loadu_pd,
        _mm512_maskz_loadu_pd,
        _mm512_fmadd_pd,
        tree_pd,
        |p, s, o| _mm512_cvtps_pd(_mm256_add_ps(
            _mm256_mul_ps(
                _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_loadl_epi64(p.cast()))),
                _mm256_loadu_ps(s)
            ),
            _mm256_loadu_ps(o)
        )),
        |m| _mm512_cvtps_pd(_mm256_add_ps(
            _mm256_mul_ps(
                _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_maskz_loadu_epi8(m as u16, p.cast()))),
                _mm256_maskz_loadu_ps(m as u8, s)
            ),
            _mm256_maskz_loadu_ps(m as u8, o)
        ))
    );
}

/// Both products with AVX2 + FMA intrinsics: the portable bodies' arithmetic (the same
/// lanes, fused steps, trees and tails) with the accumulators in registers. A 64-byte vector
/// of the portable body is two 32-byte halves here; 16 registers hold one row's scores for
/// up to 5 classes (10 accumulators) in the forward product and 5 classes x 2 halves of `D`
/// in the backward one. The blocking differs from the portable body's, the bits do not: a
/// score depends only on its row, and each output of `D` is one fused chain over the rows.
#[cfg(target_arch = "x86_64")]
#[allow(clippy::needless_range_loop)]
mod avx2 {
    use std::arch::x86_64::*;

    use super::{Affine, G};

    /// [`super::finish`]'s tree on 16 f32 lanes held as two halves: lanes `l` and `l + 8`
    /// (`lo + hi`), then `l + 4`, `l + 2`, `l + 1`.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn tree_ps(lo: __m256, hi: __m256) -> f32 {
        let a8 = _mm256_add_ps(lo, hi);
        let a4 = _mm_add_ps(_mm256_castps256_ps128(a8), _mm256_extractf128_ps(a8, 1));
        let a2 = _mm_add_ps(a4, _mm_movehl_ps(a4, a4));
        _mm_cvtss_f32(_mm_add_ss(a2, _mm_shuffle_ps(a2, a2, 1)))
    }

    /// The same tree on 8 f64 lanes: `l + 4` (`lo + hi`), `l + 2`, `l + 1`.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn tree_pd(lo: __m256d, hi: __m256d) -> f64 {
        let a4 = _mm256_add_pd(lo, hi);
        let a2 = _mm_add_pd(_mm256_castpd256_pd128(a4), _mm256_extractf128_pd(a4, 1));
        _mm_cvtsd_f64(_mm_add_sd(a2, _mm_unpackhi_pd(a2, a2)))
    }

    /// `x̃` of 8 f32 lanes: the affine map in f32, a multiply then an add (not fused), as
    /// the portable [`super::tilde`].
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn affine8(x: __m256, s: *const f32, o: *const f32) -> __m256 {
        // SAFETY: the caller's pointers have 8 lanes
        unsafe { _mm256_add_ps(_mm256_mul_ps(x, _mm256_loadu_ps(s)), _mm256_loadu_ps(o)) }
    }

    /// 8 bytes widened to 8 f32 lanes.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn widen8(b: __m128i) -> __m256 {
        _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(b))
    }

    /// f32 lanes widened to two halves of f64.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn to_pd(x: __m256) -> (__m256d, __m256d) {
        (_mm256_cvtps_pd(_mm256_castps256_ps128(x)), _mm256_cvtps_pd(_mm256_extractf128_ps(x, 1)))
    }

    macro_rules! kernels {
        ($nt:ident, $nt_group:ident, $tn:ident, $tn_group:ident, $x:ty, $t:ty, $l:literal,
         $v:ty, $zero:ident, $load:ident, $store:ident, $set1:ident, $fma:ident, $reduce:ident,
         |$p:ident, $s:ident, $o:ident| $xt:expr) => {
            /// `x̃` of one whole 64-byte vector's lanes from `p`, `s`, `o`, as two halves.
            #[inline]
            #[target_feature(enable = "avx2,fma")]
            unsafe fn load_x($p: *const $x, $s: *const f32, $o: *const f32) -> ($v, $v) {
                // SAFETY: the caller's pointers have `$l` lanes
                unsafe { $xt }
            }

            /// The lanes `kv..k` of a row, scale, offset or weight row, zero-padded to a
            /// whole vector as the portable body pads them.
            #[inline(always)]
            fn pad<U: Copy + Default>(v: &[U], kv: usize) -> [U; $l] {
                let mut a = [U::default(); $l];
                a[..v.len() - kv].copy_from_slice(&v[kv..]);
                a
            }

            /// # Safety
            /// AVX2 and FMA; shapes checked by the caller.
            #[target_feature(enable = "avx2,fma")]
            pub(crate) unsafe fn $nt(
                rows: &[&[$x]],
                pre: Affine<'_>,
                w: &[$t],
                n: usize,
                out: &mut [$t],
            ) {
                let k = pre.scale.len();
                // SAFETY: forwarded
                by_groups!(n, |j0, C| unsafe {
                    $nt_group::<C>(rows, pre, &w[j0 * k..], n, j0, out)
                });
            }

            /// Every row's scores for the `C` classes from `j0`, one row at a time.
            #[target_feature(enable = "avx2,fma")]
            unsafe fn $nt_group<const C: usize>(
                rows: &[&[$x]],
                pre: Affine<'_>,
                w: &[$t],
                n: usize,
                j0: usize,
                out: &mut [$t],
            ) -> usize {
                const H: usize = $l / 2;
                let k = pre.scale.len();
                let kv = k / $l * $l;
                let wr: [&[$t]; C] = core::array::from_fn(|j| &w[j * k..(j + 1) * k]);
                let (sp, op) = (pad::<f32>(pre.scale, kv), pad::<f32>(pre.offset, kv));
                let wp: [[$t; $l]; C] = core::array::from_fn(|j| pad::<$t>(wr[j], kv));
                for (i, row) in rows.iter().enumerate() {
                    let mut acc: [[$v; 2]; C] = [[$zero(); 2]; C];
                    let mut c = 0;
                    while c < kv {
                        // SAFETY: c + L <= kv <= k, the length of the row, of scale and
                        // offset and of every weight row
                        unsafe {
                            let (lo, hi) = load_x(
                                row.as_ptr().add(c),
                                pre.scale.as_ptr().add(c),
                                pre.offset.as_ptr().add(c),
                            );
                            for j in 0..C {
                                let wj = wr[j].as_ptr().add(c);
                                acc[j][0] = $fma(lo, $load(wj), acc[j][0]);
                                acc[j][1] = $fma(hi, $load(wj.add(H)), acc[j][1]);
                            }
                        }
                        c += $l;
                    }
                    if kv < k {
                        let xp = pad::<$x>(row, kv);
                        // SAFETY: the padded copies have whole vectors
                        unsafe {
                            let (lo, hi) = load_x(xp.as_ptr(), sp.as_ptr(), op.as_ptr());
                            for j in 0..C {
                                let wj = wp[j].as_ptr();
                                acc[j][0] = $fma(lo, $load(wj), acc[j][0]);
                                acc[j][1] = $fma(hi, $load(wj.add(H)), acc[j][1]);
                            }
                        }
                    }
                    for j in 0..C {
                        out[i * n + j0 + j] = $reduce(acc[j][0], acc[j][1]);
                    }
                }
                C
            }

            /// # Safety
            /// AVX2 and FMA; shapes checked by the caller.
            #[target_feature(enable = "avx2,fma")]
            pub(crate) unsafe fn $tn(
                g: &[$t],
                n: usize,
                rows: &[&[$x]],
                pre: Affine<'_>,
                out: &mut [$t],
            ) {
                let k = pre.scale.len();
                // SAFETY: forwarded
                by_groups!(n, |j0, C| unsafe {
                    $tn_group::<C>(g, n, j0, rows, pre, &mut out[j0 * k..])
                });
            }

            /// `D += Gᵀ X̃` for the `C` classes from `j0`, one vector of columns at a time;
            /// each output is one fused chain over the rows in order.
            #[target_feature(enable = "avx2,fma")]
            unsafe fn $tn_group<const C: usize>(
                g: &[$t],
                n: usize,
                j0: usize,
                rows: &[&[$x]],
                pre: Affine<'_>,
                out: &mut [$t],
            ) -> usize {
                const H: usize = $l / 2;
                let k = pre.scale.len();
                let kv = k / $l * $l;
                let mut c = 0;
                while c < kv {
                    // SAFETY: c + L <= kv <= k, the length of every row, of scale and offset
                    // and of each of the C rows of `out` from class j0; g has rows.len() x n
                    unsafe {
                        let mut acc: [[$v; 2]; C] = [[$zero(); 2]; C];
                        for j in 0..C {
                            let d = out.as_ptr().add(j * k + c);
                            acc[j] = [$load(d), $load(d.add(H))];
                        }
                        for (i, row) in rows.iter().enumerate() {
                            let (lo, hi) = load_x(
                                row.as_ptr().add(c),
                                pre.scale.as_ptr().add(c),
                                pre.offset.as_ptr().add(c),
                            );
                            for j in 0..C {
                                let gj = $set1(*g.get_unchecked(i * n + j0 + j));
                                acc[j][0] = $fma(gj, lo, acc[j][0]);
                                acc[j][1] = $fma(gj, hi, acc[j][1]);
                            }
                        }
                        for j in 0..C {
                            let d = out.as_mut_ptr().add(j * k + c);
                            $store(d, acc[j][0]);
                            $store(d.add(H), acc[j][1]);
                        }
                    }
                    c += $l;
                }
                if kv < k {
                    let rem = k - kv;
                    let (sp, op) = (pad::<f32>(pre.scale, kv), pad::<f32>(pre.offset, kv));
                    let mut dp: [[$t; $l]; C] =
                        core::array::from_fn(|j| pad::<$t>(&out[j * k..(j + 1) * k], kv));
                    // SAFETY: the padded copies have whole vectors; g as above
                    unsafe {
                        let mut acc: [[$v; 2]; C] = [[$zero(); 2]; C];
                        for j in 0..C {
                            let d = dp[j].as_ptr();
                            acc[j] = [$load(d), $load(d.add(H))];
                        }
                        for (i, row) in rows.iter().enumerate() {
                            let xp = pad::<$x>(row, kv);
                            let (lo, hi) = load_x(xp.as_ptr(), sp.as_ptr(), op.as_ptr());
                            for j in 0..C {
                                let gj = $set1(*g.get_unchecked(i * n + j0 + j));
                                acc[j][0] = $fma(gj, lo, acc[j][0]);
                                acc[j][1] = $fma(gj, hi, acc[j][1]);
                            }
                        }
                        for j in 0..C {
                            let d = dp[j].as_mut_ptr();
                            $store(d, acc[j][0]);
                            $store(d.add(H), acc[j][1]);
                        }
                    }
                    for j in 0..C {
                        out[j * k + kv..(j + 1) * k].copy_from_slice(&dp[j][..rem]);
                    }
                }
                C
            }
        };
    }

    mod f32_f32 {
        use super::*;
        kernels!(
            nt_f32_f32,
            nt_group,
            tn_f32_f32,
            tn_group,
            f32,
            f32,
            16,
            __m256,
            _mm256_setzero_ps,
            _mm256_loadu_ps,
            _mm256_storeu_ps,
            _mm256_set1_ps,
            _mm256_fmadd_ps,
            tree_ps,
            |p, s, o| (
                affine8(_mm256_loadu_ps(p), s, o),
                affine8(_mm256_loadu_ps(p.add(8)), s.add(8), o.add(8))
            )
        );
    }
    mod u8_f32 {
        use super::*;
        kernels!(
            nt_u8_f32,
            nt_group,
            tn_u8_f32,
            tn_group,
            u8,
            f32,
            16,
            __m256,
            _mm256_setzero_ps,
            _mm256_loadu_ps,
            _mm256_storeu_ps,
            _mm256_set1_ps,
            _mm256_fmadd_ps,
            tree_ps,
            |p, s, o| {
                let b = _mm_loadu_si128(p.cast());
                (
                    affine8(widen8(b), s, o),
                    affine8(widen8(_mm_srli_si128::<8>(b)), s.add(8), o.add(8)),
                )
            }
        );
    }
    mod f32_f64 {
        use super::*;
        kernels!(
            nt_f32_f64,
            nt_group,
            tn_f32_f64,
            tn_group,
            f32,
            f64,
            8,
            __m256d,
            _mm256_setzero_pd,
            _mm256_loadu_pd,
            _mm256_storeu_pd,
            _mm256_set1_pd,
            _mm256_fmadd_pd,
            tree_pd,
            |p, s, o| to_pd(affine8(_mm256_loadu_ps(p), s, o))
        );
    }
    mod u8_f64 {
        use super::*;
        kernels!(
            nt_u8_f64,
            nt_group,
            tn_u8_f64,
            tn_group,
            u8,
            f64,
            8,
            __m256d,
            _mm256_setzero_pd,
            _mm256_loadu_pd,
            _mm256_storeu_pd,
            _mm256_set1_pd,
            _mm256_fmadd_pd,
            tree_pd,
            |p, s, o| to_pd(affine8(widen8(_mm_loadl_epi64(p.cast())), s, o))
        );
    }
    pub(super) use f32_f32::{nt_f32_f32, tn_f32_f32};
    pub(super) use f32_f64::{nt_f32_f64, tn_f32_f64};
    pub(super) use u8_f32::{nt_u8_f32, tn_u8_f32};
    pub(super) use u8_f64::{nt_u8_f64, tn_u8_f64};
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Gen(u64);
    impl Gen {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }
        fn unit(&mut self) -> f32 {
            (self.next() >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
        }
    }

    /// Random rows (u8 and f32 of the same values), affine map, weights and gradients; the
    /// adversarial case mixes huge and tiny magnitudes and makes the first two terms of
    /// every row's product cancel.
    struct Case {
        px: Vec<Vec<u8>>,
        fx: Vec<Vec<f32>>,
        scale: Vec<f32>,
        offset: Vec<f32>,
        w: Vec<f64>,
        g: Vec<f64>,
    }

    fn case(m: usize, n: usize, k: usize, seed: u64, adversarial: bool) -> Case {
        let mut r = Gen(seed | 1);
        let px: Vec<Vec<u8>> =
            (0..m).map(|_| (0..k).map(|_| (r.next() >> 56) as u8).collect()).collect();
        let mut fx: Vec<Vec<f32>> = px
            .iter()
            .map(|row| row.iter().map(|&v| f32::from(v) * 0.37 - 20.0).collect())
            .collect();
        let scale: Vec<f32> = (0..k).map(|_| 0.5 + r.unit().abs()).collect();
        let offset: Vec<f32> = (0..k).map(|_| r.unit() * 50.0).collect();
        let mut w: Vec<f64> = (0..n * k).map(|_| f64::from(r.unit())).collect();
        let g: Vec<f64> = (0..m * n).map(|_| f64::from(r.unit())).collect();
        if adversarial {
            for (i, row) in fx.iter_mut().enumerate() {
                for (c, v) in row.iter_mut().enumerate() {
                    *v *= [1e-30f32, 1.0, 1e20, 3.0][(i + c) % 4];
                }
            }
            for (j, wj) in w.chunks_mut(k.max(1)).enumerate() {
                if k >= 2 {
                    wj[1] = -wj[0] * (j as f64 + 1.0);
                }
            }
        }
        Case { px, fx, scale, offset, w, g }
    }

    fn kernels() -> Vec<KernelKind> {
        KernelKind::available()
    }

    /// Every kernel gives the scalar twin's bits, in f32 and f64, on u8 and f32 rows (all four
    /// pairs), for every class count (full groups of 5 and each remainder) and lengths around
    /// the 8-, 16- and 32-lane vectors (tails of every kind, whole vectors only, none at all).
    #[test]
    fn every_kernel_gives_the_scalar_twins_bits() {
        for (m, n, k) in [
            (3, 10, 3072),
            (9, 10, 154),
            (2, 1, 17),
            (4, 7, 33),
            (1, 12, 16),
            (5, 3, 0),
            (2, 4, 15),
            (3, 6, 7),
        ] {
            for adversarial in [false, true] {
                let cs = case(m, n, k, (m * 131 + n * 7 + k) as u64, adversarial);
                let pre = Affine { scale: &cs.scale, offset: &cs.offset };
                let px: Vec<&[u8]> = cs.px.iter().map(Vec::as_slice).collect();
                let fx: Vec<&[f32]> = cs.fx.iter().map(Vec::as_slice).collect();
                let w32: Vec<f32> = cs.w.iter().map(|&v| v as f32).collect();
                let g32: Vec<f32> = cs.g.iter().map(|&v| v as f32).collect();
                // both products in both precisions on both row types
                fn both<X: AffineInput, T: SkinnyScalar>(
                    kernel: KernelKind,
                    rows: &[&[X]],
                    pre: Affine<'_>,
                    w: &[T],
                    g: &[T],
                    n: usize,
                ) -> Vec<T> {
                    let mut s = vec![T::default(); rows.len() * n];
                    gemm_nt_affine_with(kernel, rows, pre, w, n, &mut s).unwrap();
                    let mut d = w.to_vec();
                    gemm_tn_affine_add_with(kernel, g, n, rows, pre, &mut d).unwrap();
                    s.extend(d);
                    s
                }
                let run = |kernel| {
                    let b64 = |v: Vec<f64>| v.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
                    let b32 = |v: Vec<f32>| v.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
                    (
                        b64(both(kernel, &fx, pre, &cs.w, &cs.g, n)),
                        b64(both(kernel, &px, pre, &cs.w, &cs.g, n)),
                        b32(both(kernel, &fx, pre, &w32, &g32, n)),
                        b32(both(kernel, &px, pre, &w32, &g32, n)),
                    )
                };
                let want = run(KernelKind::Scalar);
                for kernel in kernels() {
                    assert_eq!(run(kernel), want, "{kernel:?} m={m} n={n} k={k} {adversarial}");
                }
            }
        }
    }

    /// The products equal a naive f64 loop over the f32-rounded `x̃` (to summation rounding),
    /// and accumulate into `out`.
    #[test]
    fn products_match_a_naive_loop() {
        let (m, n, k) = (6, 11, 203);
        let cs = case(m, n, k, 9, false);
        let pre = Affine { scale: &cs.scale, offset: &cs.offset };
        let fx: Vec<&[f32]> = cs.fx.iter().map(Vec::as_slice).collect();
        let xt = |i: usize, c: usize| f64::from(cs.fx[i][c] * cs.scale[c] + cs.offset[c]);
        for kernel in kernels() {
            let mut s = vec![0.0f64; m * n];
            gemm_nt_affine_with(kernel, &fx, pre, &cs.w, n, &mut s).unwrap();
            for i in 0..m {
                for j in 0..n {
                    let (mut want, mut mag) = (0.0, 0.0);
                    for c in 0..k {
                        want += xt(i, c) * cs.w[j * k + c];
                        mag += (xt(i, c) * cs.w[j * k + c]).abs();
                    }
                    assert!((s[i * n + j] - want).abs() <= 1e-13 * mag, "nt {kernel:?} {i} {j}");
                }
            }
            let start: Vec<f64> = (0..n * k).map(|v| v as f64).collect();
            let mut d = start.clone();
            gemm_tn_affine_add_with(kernel, &cs.g, n, &fx, pre, &mut d).unwrap();
            for j in 0..n {
                for c in 0..k {
                    let (mut want, mut mag) = (start[j * k + c], start[j * k + c].abs());
                    for i in 0..m {
                        want += cs.g[i * n + j] * xt(i, c);
                        mag += (cs.g[i * n + j] * xt(i, c)).abs();
                    }
                    assert!((d[j * k + c] - want).abs() <= 1e-13 * mag, "tn {kernel:?} {j} {c}");
                }
            }
        }
    }

    /// Wrong shapes are errors naming the operand, not panics.
    #[test]
    fn wrong_shapes_are_errors() {
        let rows: [&[f32]; 1] = [&[1.0, 2.0]];
        let (s, o) = ([1.0f32; 2], [0.0f32; 2]);
        let pre = Affine { scale: &s, offset: &o };
        let mut out = [0.0f64; 2];
        let e = gemm_nt_affine_with(KernelKind::Scalar, &rows, pre, &[0.0f64; 3], 2, &mut out);
        assert!(matches!(e, Err(GemmError::ShapeMismatch { what: "w", .. })));
        let short: [&[f32]; 1] = [&[1.0]];
        let e = gemm_tn_affine_add_with(
            KernelKind::Scalar,
            &[0.0f64; 2],
            2,
            &short,
            pre,
            &mut [0.0; 4],
        );
        assert!(matches!(e, Err(GemmError::ShapeMismatch { what: "row", .. })));
    }
}
