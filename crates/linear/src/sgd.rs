//! The SGD iteration on raw u8 pixels, split by features into fixed parts that never share a
//! cache line.
//!
//! This is a specialisation: f32 features take the general path (`dense.rs`). It stays because
//! it buys a gain a user sees on `cargo xtask experiment`'s linear phase and on `cargo xtask
//! bench linear`: 1,500 iterations of batch 200 on CIFAR-10 take 0.24-0.59 s here against
//! 1.71-2.00 s on the general path for the same pixels as f32 features (`bench linear
//! --dtype f32`; same predictions; 2026-12-04, load about 1.4; docs/bench/linear.md).
//!
//! ```text
//! W = [W₀ W₁]   X̃ = [X̃₀ X̃₁]      part h owns the features F_h (a fixed split of 0..D)
//! P_h = X̃_h W_hᵀ                 partial scores of the minibatch over F_h   (part h)
//! S = (P₀ + P₁) + b               in part order                               (every thread)
//! L, dS = loss(S, y)                                                          (every thread)
//! dW_h = dSᵀ X̃_h + ∂R/∂W_h,  W_h ← W_h − η dW_h   (repacking W'_h for the next P_h)  (part h)
//! ```
//!
//! Only the `B x C` partial scores (8 KB for a CIFAR-10 minibatch) cross between threads, once
//! per iteration: each part keeps its `W_h`, its packed `W'_h`, its `dW_h` and its columns of
//! the minibatch in one core's cache, and the loss and `dS` (a few thousand values) are
//! computed by both threads rather than sent. `P_h` is the exact-integer product on `W'_h`
//! quantised per class to 24-bit fixed point where the CPU has AVX-512 VNNI
//! ([`imgclass_linalg::gemm::NtPackedI8`]), else the f32 packed product; `dW_h` is the SVM's
//! exact integer product when `N·dS` is integral, else f32. The split depends only on `D` (two parts when
//! `D >= 128`), so the bits of a fit do not depend on whether the parts run on one thread one
//! after the other or on two threads side by side.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use imgclass_core::Subset;
use imgclass_core::rng::SplitMix64;
use imgclass_linalg::gemm::{
    Affine, GemmError, I8Grad, I8U8_MAX_ROWS, KernelKind, NtPacked, NtPackedI8,
    gemm_nt_u8_i8_serial, gemm_nt_u8_packed_serial, gemm_tn_i8u8_cols_prepared,
    gemm_tn_u8_cols_with, i8u8_is_simd, i32_affine_to_f32, prefetch_rows,
};
use imgclass_loss::{Loss, LossError, Regularizer};

use crate::LinearError;
use crate::model::TrainingReport;

/// Features per block of the backward pass and update (a multiple of 32, so every column of
/// `dW` is computed as in one pass over all features: see
/// [`imgclass_linalg::gemm::gemm_tn_u8_cols_with`]). 256 features of 10 classes are a 10 KiB
/// slice of `W`; each block of `W'_h` is repacked while it is in cache.
pub(crate) const UPDATE_BLOCK: usize = 256;
const _: () = assert!(UPDATE_BLOCK == NtPacked::BLOCK);

/// Part boundaries are multiples of this (so a part's columns start on a 64-byte boundary
/// of every row and on a multiple of 32 for the backward kernels).
const PART_ALIGN: usize = 64;

/// The fixed feature split of a `d`-feature problem: two parts when `d >= 128` (the first
/// `floor(d/2)` rounded down to a multiple of 64 features), else one.
pub(crate) fn part_bounds(d: usize) -> Vec<(usize, usize)> {
    if d >= 2 * PART_ALIGN {
        let mid = d / 2 / PART_ALIGN * PART_ALIGN;
        vec![(0, mid), (mid, d)]
    } else {
        vec![(0, d)]
    }
}

/// What one gradient evaluation needs besides the batch and the parameters.
pub(crate) struct Problem<'a> {
    pub(crate) loss: Loss,
    pub(crate) reg: Regularizer,
    pub(crate) kernel: KernelKind,
    pub(crate) pre: Affine<'a>,
    pub(crate) n_classes: usize,
}

/// An SGD step: `v ← μ_m v − η g, W ← W + v` (or `W ← W − η g` without momentum).
#[derive(Clone, Copy)]
pub(crate) struct Step {
    pub(crate) lr: f32,
    pub(crate) momentum: f32,
}

/// The SVM's `dL/dscores` as exact integers: `N·dS` has entries in `[−(C−1), 1]`, so
/// `dSᵀ X̃ = ((N·dS)ᵀ X · diag(scale) + (Σ_i N·dS_i) offsetᵀ) / N` with the first product
/// exact in `i32` (AVX-512 VNNI, 4 rows per instruction).
pub(crate) struct IntGrad {
    /// `N·dS`, row-major `m x c`.
    g: Vec<i8>,
    /// `Σ_i N·dS_ij` per class.
    colsum: Vec<f64>,
    /// `1/N`.
    inv_n: f64,
}

/// [`IntGrad`] for this batch when it applies (the multiclass hinge loss, a VNNI kernel,
/// every `N·dS` within `1/4` of an integer in `[−127, 127]`), else `None` (the f32 product).
pub(crate) fn int_grad(p: &Problem<'_>, dscores: &[f32], m: usize) -> Option<IntGrad> {
    if !matches!(p.loss, Loss::Svm { .. }) || !i8u8_is_simd(p.kernel) || m > I8U8_MAX_ROWS {
        return None;
    }
    let c = p.n_classes;
    let nf = m as f32;
    // branch-free over the batch (it vectorises); whether every value qualified is checked once
    let mut ok = true;
    let g: Vec<i8> = dscores
        .iter()
        .map(|&v| {
            let t = v * nf;
            // rounds t to the nearest integer (a saturating cast; NaN gives 0 and fails the
            // check)
            let r = (t + 0.5f32.copysign(t)) as i32;
            ok &= (t - r as f32).abs() <= 0.25 && r.abs() <= 127;
            r.clamp(-127, 127) as i8
        })
        .collect();
    if !ok {
        return None;
    }
    let mut colsum = vec![0.0f64; c];
    let mut sums = vec![0i32; c];
    for row in g.chunks_exact(c) {
        sums.iter_mut().zip(row).for_each(|(a, &v)| *a += i32::from(v));
    }
    colsum.iter_mut().zip(&sums).for_each(|(a, &v)| *a = f64::from(v));
    Some(IntGrad { g, colsum, inv_n: 1.0 / m as f64 })
}

/// Where the backward pass takes `dW`'s data term from.
#[derive(Clone, Copy)]
pub(crate) enum Grad<'a> {
    /// The f32 product `dscoresᵀ X̃`, per feature block.
    F32,
    /// The exact integer product of [`IntGrad`], per feature block.
    Int(&'a IntGrad),
}

/// The gradient kind of this iteration: exact integers for the SVM when they apply.
pub(crate) fn grad_of(int: Option<&IntGrad>) -> Grad<'_> {
    int.map_or(Grad::F32, Grad::Int)
}

/// The forward product of a part: the exact-integer one where the CPU has AVX-512 VNNI
/// (`W'_h` quantised per class to 24-bit fixed point, repacked whole after each update: see
/// [`imgclass_linalg::gemm::NtPackedI8`]), else the f32 one (repacked block by block while
/// each block of the update is in cache).
enum Forward {
    I8(NtPackedI8),
    F32(NtPacked),
}

/// One fixed feature part `k0..k1` of the parameters and everything computed over it.
pub(crate) struct Part {
    /// First feature of the part.
    pub(crate) k0: usize,
    /// One past its last feature.
    pub(crate) k1: usize,
    /// `W_h`, row-major `c x (k1 − k0)`.
    pub(crate) w: Vec<f32>,
    /// The momentum velocity of `W_h` (empty without momentum).
    vw: Vec<f32>,
    /// `dW_h` of the last backward pass by block (block `i`: `c x len_i` row-major).
    pub(crate) dw: Vec<f32>,
    /// Scratch for a block's exact integer product.
    exact: Vec<i32>,
    /// `W'_h` packed for the forward pass (see [`Forward`]).
    fwd: Forward,
    /// `P_h`, the minibatch's partial scores over the part (`B x c`, with `β_h`).
    pub(crate) partial: Vec<f32>,
    /// `R(W_h)` before the last update.
    pub(crate) reg: f64,
}

impl Part {
    /// The part `k0..k1` of the `c x d` matrix `w`, packed for `p.kernel`, with room for
    /// minibatches of `bs` rows.
    pub(crate) fn new(
        p: &Problem<'_>,
        (k0, k1): (usize, usize),
        w: &[f32],
        bs: usize,
        momentum: bool,
    ) -> Result<Self, LinearError> {
        let (c, d, len) = (p.n_classes, p.pre.scale.len(), k1 - k0);
        let wh: Vec<f32> = if d == 0 {
            Vec::new()
        } else {
            w.chunks_exact(d).flat_map(|row| row[k0..k1].iter().copied()).collect()
        };
        let pre = sub_affine(p.pre, k0, k1);
        let i8 = NtPackedI8::new(p.kernel);
        let fwd = if i8.is_simd() {
            let mut i8 = i8;
            i8.pack(pre, &class_rows(&wh, c, len))?;
            Forward::I8(i8)
        } else {
            Forward::F32(NtPacked::new(p.kernel, pre, &wh, c)?)
        };
        Ok(Self {
            k0,
            k1,
            vw: vec![0.0; if momentum { c * len } else { 0 }],
            w: wh,
            dw: vec![0.0; c * len],
            exact: vec![0; c * UPDATE_BLOCK],
            fwd,
            partial: vec![0.0; bs * c],
            reg: 0.0,
        })
    }

    /// `P_h = X̃_h W_hᵀ + β_h` for the minibatch `rows` (whole rows; the part reads its
    /// columns), on the calling thread.
    pub(crate) fn forward(&mut self, p: &Problem<'_>, rows: &[&[u8]]) -> Result<(), LinearError> {
        let c = p.n_classes;
        let sub: Vec<&[u8]> = rows.iter().map(|r| &r[self.k0..self.k1]).collect();
        let pre = sub_affine(p.pre, self.k0, self.k1);
        let out = &mut self.partial[..rows.len() * c];
        match &self.fwd {
            Forward::I8(pk) => gemm_nt_u8_i8_serial(&sub, pre, pk, out)?,
            Forward::F32(pk) => gemm_nt_u8_packed_serial(&sub, pre, &self.w, c, pk, out)?,
        }
        Ok(())
    }

    /// The backward pass over the part fused with the update, one block of
    /// [`UPDATE_BLOCK`] features after the other on the calling thread: `dW` of the block
    /// (`dscoresᵀ X̃` or the exact integer product of `grad`, plus `∂R/∂W`), then, with a
    /// `step`, the update of the block of `W_h` (and of its velocity) and the repacking of
    /// its `W'_h`, while the block's bytes of the `next` minibatch are prefetched. Returns
    /// `R(W_h)` before the update, summed over the blocks in order.
    pub(crate) fn backward_update(
        &mut self,
        p: &Problem<'_>,
        rows: &[&[u8]],
        next: &[&[u8]],
        dscores: &[f32],
        grad: Grad<'_>,
        step: Option<Step>,
    ) -> Result<f64, LinearError> {
        let c = p.n_classes;
        let len = self.k1 - self.k0;
        let part_pre = sub_affine(p.pre, self.k0, self.k1);
        let prepared = match grad {
            Grad::Int(ig) => Some(I8Grad::new(p.kernel, &ig.g, c)?),
            Grad::F32 => None,
        };
        let wb = column_blocks(&mut self.w, c, len);
        let mut vb = column_blocks(&mut self.vw, c, len);
        vb.resize_with(wb.len(), Vec::new);
        let mut pblocks = match &mut self.fwd {
            Forward::F32(pk) if step.is_some() => pk.blocks_mut().into_iter(),
            _ => Vec::new().into_iter(),
        };
        let mut reg = 0.0f64;
        for (i, ((mut wsegs, mut vsegs), dwb)) in
            wb.into_iter().zip(vb).zip(self.dw.chunks_mut(c * UPDATE_BLOCK)).enumerate()
        {
            let f0 = i * UPDATE_BLOCK;
            let f1 = (f0 + UPDATE_BLOCK).min(len);
            let (g0, g1) = (self.k0 + f0, self.k0 + f1);
            prefetch_rows(next, g0, g1);
            match (grad, prepared.as_ref()) {
                (Grad::Int(ig), Some(prep)) => {
                    let exact = &mut self.exact[..c * (f1 - f0)];
                    gemm_tn_i8u8_cols_prepared(p.kernel, prep, rows, g0, g1, exact)?;
                    let (sc, of) = (&p.pre.scale[g0..g1], &p.pre.offset[g0..g1]);
                    i32_affine_to_f32(p.kernel, exact, sc, of, &ig.colsum, ig.inv_n, dwb)?;
                }
                _ => gemm_tn_u8_cols_with(p.kernel, dscores, c, rows, p.pre, g0, g1, dwb)?,
            }
            let blen = f1 - f0;
            for (j, wj) in wsegs.iter_mut().enumerate() {
                let gj = &mut dwb[j * blen..(j + 1) * blen];
                if let (Regularizer::L2(l2), Some(st), None) = (p.reg, step, vsegs.get_mut(j)) {
                    // the common case in one pass: g = dW + 2λw, w ← w − ηg
                    reg += l2_step(p.kernel, l2, st.lr, wj, gj)?;
                    continue;
                }
                reg += p.reg.add_grad(wj, gj)?;
                match (step, vsegs.get_mut(j)) {
                    (Some(st), Some(vj)) => {
                        for ((wi, vi), gi) in wj.iter_mut().zip(vj.iter_mut()).zip(gj.iter()) {
                            *vi = st.momentum * *vi - st.lr * gi;
                            *wi += *vi;
                        }
                    }
                    (Some(st), None) => {
                        for (wi, gi) in wj.iter_mut().zip(gj.iter()) {
                            *wi -= st.lr * gi;
                        }
                    }
                    (None, _) => {}
                }
            }
            if let Some(mut pb) = pblocks.next() {
                debug_assert_eq!(pb.index(), i);
                pb.pack(part_pre, &wsegs)?;
            }
        }
        drop(pblocks);
        match &mut self.fwd {
            Forward::F32(pk) if step.is_some() => pk.finish(),
            Forward::I8(pk) if step.is_some() => pk.pack(part_pre, &class_rows(&self.w, c, len))?,
            _ => {}
        }
        Ok(reg)
    }

    /// Writes `W_h` into its columns of the `c x d` matrix `w`.
    pub(crate) fn write_into(&self, w: &mut [f32], d: usize) {
        let len = self.k1 - self.k0;
        if len == 0 {
            return;
        }
        for (row, wh) in w.chunks_exact_mut(d).zip(self.w.chunks_exact(len)) {
            row[self.k0..self.k1].copy_from_slice(wh);
        }
    }

    /// `dW_h` (by block) into its columns of the `c x d` matrix `dw`.
    #[cfg(test)]
    pub(crate) fn grad_into(&self, dw: &mut [f32], d: usize) {
        let c = dw.len() / d.max(1);
        let len = self.k1 - self.k0;
        for (i, blk) in self.dw.chunks(c * UPDATE_BLOCK).enumerate() {
            let bl = blk.len() / c;
            let g0 = self.k0 + i * UPDATE_BLOCK;
            for j in 0..c {
                dw[j * d + g0..j * d + g0 + bl].copy_from_slice(&blk[j * bl..(j + 1) * bl]);
            }
        }
        debug_assert!(self.dw.len() == c * len);
    }
}

/// The `c` rows of the row-major `c x len` matrix `w` (empty rows when `len` is 0).
fn class_rows(w: &[f32], c: usize, len: usize) -> Vec<&[f32]> {
    if len == 0 { vec![&[]; c] } else { w.chunks_exact(len).collect() }
}

/// `pre` restricted to the features `k0..k1`.
fn sub_affine(pre: Affine<'_>, k0: usize, k1: usize) -> Affine<'_> {
    Affine { scale: &pre.scale[k0..k1], offset: &pre.offset[k0..k1] }
}

/// `S = (P₀ + P₁ + …) + b`, the parts' partial scores added in part order, then the bias.
pub(crate) fn combine(partials: &[&[f32]], b: &[f32], scores: &mut [f32]) {
    let c = b.len();
    match partials.split_first() {
        Some((first, rest)) => {
            scores.copy_from_slice(&first[..scores.len()]);
            for p in rest {
                scores.iter_mut().zip(&p[..]).for_each(|(s, v)| *s += v);
            }
        }
        None => scores.fill(0.0),
    }
    if c > 0 {
        for srow in scores.chunks_exact_mut(c) {
            srow.iter_mut().zip(b).for_each(|(s, bj)| *s += bj);
        }
    }
}

/// One pass of the L2-regularised plain SGD step over a segment: `g ← g + 2λw` (the
/// gradient [`Regularizer::add_grad`] adds, same `f32` arithmetic), `w ← w − η g`; returns
/// `λ Σ w²` of the weights before the step (squares summed in `f32` over 16 lanes, then in
/// `f64`), or [`LossError::NonFinite`] for a non-finite weight. With the AVX-512 kernel the
/// same code is compiled for AVX-512 (no reassociation, no FMA contraction: the same bits,
/// tested against the portable build).
pub(crate) fn l2_step(
    kernel: KernelKind,
    l2: f64,
    lr: f32,
    w: &mut [f32],
    g: &mut [f32],
) -> Result<f64, LinearError> {
    let two_l2 = (2.0 * l2) as f32;
    let total = match kernel {
        #[cfg(target_arch = "x86_64")]
        KernelKind::Avx512 if std::arch::is_x86_feature_detected!("avx512f") => {
            // SAFETY: avx512f detected just above.
            unsafe { l2_step_avx512(two_l2, lr, w, g) }
        }
        _ => l2_step_lanes(two_l2, lr, w, g),
    };
    if !total.is_finite() {
        let index = w.iter().position(|v| !v.is_finite()).unwrap_or(0);
        return Err(LossError::NonFinite { what: "weights", index }.into());
    }
    Ok(l2 * total)
}

/// The body of [`l2_step`]: returns `Σ w²` (16 `f32` lanes, then `f64`).
#[inline(always)]
fn l2_step_lanes(two_l2: f32, lr: f32, w: &mut [f32], g: &mut [f32]) -> f64 {
    const LANES: usize = 16;
    let mut sq = [0.0f32; LANES];
    let mut wc = w.chunks_exact_mut(LANES);
    let mut gc = g.chunks_exact_mut(LANES);
    for (wv, gv) in (&mut wc).zip(&mut gc) {
        for l in 0..LANES {
            let v = wv[l];
            sq[l] += v * v;
            gv[l] += two_l2 * v;
            wv[l] = v - lr * gv[l];
        }
    }
    let mut total: f64 = sq.iter().map(|&v| f64::from(v)).sum();
    for (v, gi) in wc.into_remainder().iter_mut().zip(gc.into_remainder()) {
        total += f64::from(*v) * f64::from(*v);
        *gi += two_l2 * *v;
        *v -= lr * *gi;
    }
    total
}

/// [`l2_step_lanes`] compiled for AVX-512.
///
/// # Safety
/// The CPU must support AVX-512F.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn l2_step_avx512(two_l2: f32, lr: f32, w: &mut [f32], g: &mut [f32]) -> f64 {
    l2_step_lanes(two_l2, lr, w, g)
}

/// Splits the row-major `c x d` matrix `m` (or an empty one) into its blocks of
/// [`UPDATE_BLOCK`] columns: block `i` holds the `c` row segments of those columns.
fn column_blocks(m: &mut [f32], c: usize, d: usize) -> Vec<Vec<&mut [f32]>> {
    let mut out: Vec<Vec<&mut [f32]>> =
        (0..d.div_ceil(UPDATE_BLOCK)).map(|_| Vec::with_capacity(c)).collect();
    if !m.is_empty() && d > 0 {
        for row in m.chunks_exact_mut(d) {
            for (i, seg) in row.chunks_mut(UPDATE_BLOCK).enumerate() {
                out[i].push(seg);
            }
        }
    }
    out
}

/// The seeded minibatch order: draws without replacement from a shuffle of the training rows,
/// reshuffling (and decaying the learning rate) at each epoch. The shuffle permutes the rows'
/// slices and labels themselves, so a draw reads them in order instead of looking each one up
/// through the subset's index (the same permutation as shuffling positions: the swaps depend
/// only on the generator). Cloned, it draws the same sequence: each thread of a split run
/// keeps its own copy.
#[derive(Clone)]
pub(crate) struct Batches<'a, R = &'a [u8]> {
    rng: SplitMix64,
    order: Vec<(R, u32)>,
    pub(crate) pos: usize,
    pub(crate) epochs_done: usize,
    lr: f64,
    decay: f64,
    _rows: std::marker::PhantomData<&'a ()>,
}

impl<'a> Batches<'a> {
    pub(crate) fn new(rng: SplitMix64, train: &'a Subset, lr: f64, decay: f64) -> Self {
        let order = match train.pixels() {
            Some(rows) => (0..train.len()).map(|p| (rows.row(p), train.label(p))).collect(),
            None => Vec::new(),
        };
        Self::over(rng, order, lr, decay)
    }
}

impl<'a> Batches<'a, usize> {
    /// Minibatches of training positions (the f32 path), in the same order as
    /// [`Batches::new`] draws rows: the shuffle's swaps depend only on the generator.
    pub(crate) fn positions(rng: SplitMix64, train: &'a Subset, lr: f64, decay: f64) -> Self {
        Self::over(rng, (0..train.len()).map(|p| (p, train.label(p))).collect(), lr, decay)
    }
}

impl<'a, R: Copy> Batches<'a, R> {
    fn over(mut rng: SplitMix64, mut order: Vec<(R, u32)>, lr: f64, decay: f64) -> Self {
        rng.shuffle(&mut order);
        Self { rng, order, pos: 0, epochs_done: 0, lr, decay, _rows: std::marker::PhantomData }
    }

    /// The current learning rate.
    pub(crate) fn lr(&self) -> f64 {
        self.lr
    }

    /// Fills `rows`/`labels` with the next `bs` rows; returns the learning rate for them.
    pub(crate) fn draw(&mut self, bs: usize, rows: &mut Vec<R>, labels: &mut Vec<u32>) -> f64 {
        rows.clear();
        labels.clear();
        while rows.len() < bs {
            if self.pos == self.order.len() {
                self.rng.shuffle(&mut self.order);
                self.pos = 0;
                self.epochs_done += 1;
                self.lr *= self.decay;
            }
            let take = (bs - rows.len()).min(self.order.len() - self.pos);
            for &(r, l) in &self.order[self.pos..self.pos + take] {
                rows.push(r);
                labels.push(l);
            }
            self.pos += take;
        }
        self.lr
    }
}

/// The settings of one SGD run that every thread reads.
pub(crate) struct Run<'a> {
    pub(crate) p: Problem<'a>,
    pub(crate) iterations: usize,
    pub(crate) batch_size: usize,
    pub(crate) momentum: f64,
    pub(crate) fit_bias: bool,
    pub(crate) divergence_factor: f64,
}

/// What a thread of a split run hands back.
pub(crate) struct Finished<'a> {
    pub(crate) b: Vec<f32>,
    pub(crate) batches: Batches<'a>,
    pub(crate) lr: f64,
}

/// Why a thread stopped early: its own error, or its partner's (which the partner reports).
enum Stop {
    Err(LinearError),
    Partner,
}

impl From<LinearError> for Stop {
    fn from(e: LinearError) -> Self {
        Stop::Err(e)
    }
}

/// The meeting point of two threads of a split run: per part, two slots (by iteration
/// parity) for its partial scores and the `R(W_h)` of its previous update; a counter of the
/// iterations each part has posted; a flag raised by a thread that stops early.
/// A part's post: its partial scores and the `R(W_h)` before its last update.
type Slot = Mutex<(Vec<f32>, f64)>;

struct Exchange {
    slots: [[Slot; 2]; 2],
    posted: [AtomicUsize; 2],
    abort: AtomicBool,
}

impl Exchange {
    fn new() -> Self {
        let slot = || Mutex::new((Vec::new(), 0.0));
        Self {
            slots: [[slot(), slot()], [slot(), slot()]],
            posted: [AtomicUsize::new(0), AtomicUsize::new(0)],
            abort: AtomicBool::new(false),
        }
    }

    /// Part `h` posts its partial scores of iteration `it` and the `R(W_h)` before its last
    /// update.
    fn post(&self, h: usize, it: usize, partial: &[f32], reg: f64) {
        {
            let mut slot = self.slots[h][it % 2].lock().unwrap_or_else(|e| e.into_inner());
            slot.0.clear();
            slot.0.extend_from_slice(partial);
            slot.1 = reg;
        }
        self.posted[h].store(it + 1, Ordering::Release);
    }

    /// Waits for part `h`'s post of iteration `it` and copies it into `partial`; returns its
    /// `R(W_h)`. A slot is rewritten only two posts later, which needs this thread's next
    /// post first, so the copy never races the writer.
    fn take(&self, h: usize, it: usize, partial: &mut Vec<f32>) -> Result<f64, Stop> {
        let mut spins = 0u32;
        while self.posted[h].load(Ordering::Acquire) <= it {
            if self.abort.load(Ordering::Acquire) {
                // the flag is raised after the partner's last post: look once more
                if self.posted[h].load(Ordering::Acquire) > it {
                    break;
                }
                return Err(Stop::Partner);
            }
            // the partner is normally a few microseconds away; past ~40 µs (a `pause` is
            // ~35 ns here) it has probably lost its core, so offer ours
            if spins < 1_000 {
                spins += 1;
                std::hint::spin_loop();
            } else {
                std::thread::yield_now();
            }
        }
        let slot = self.slots[h][it % 2].lock().unwrap_or_else(|e| e.into_inner());
        partial.clear();
        partial.extend_from_slice(&slot.0);
        Ok(slot.1)
    }
}

/// Raises the exchange's abort flag when its thread leaves early (an error or a panic), so
/// that the partner does not wait for a post that never comes; a thread that finishes
/// disarms it.
struct AbortOnDrop<'a>(Option<&'a Exchange>);

impl AbortOnDrop<'_> {
    fn disarm(mut self) {
        self.0 = None;
    }
}

impl Drop for AbortOnDrop<'_> {
    fn drop(&mut self) {
        if let Some(ex) = self.0 {
            ex.abort.store(true, Ordering::Release);
        }
    }
}

/// Runs `run.iterations` SGD steps on `parts` (the fixed split of `W`), starting from `b`
/// and the minibatch order `batches`: on the calling thread when `threads` is 1 or there is
/// one part, else with each part on its own thread (the calling thread and one scoped
/// thread). The results have the same bits either way. `report` receives one
/// `(data loss, R(W))` per iteration.
pub(crate) fn train<'a>(
    run: &Run<'a>,
    parts: &mut [Part],
    b: Vec<f32>,
    batches: Batches<'a>,
    threads: usize,
    report: &mut TrainingReport,
) -> Result<Finished<'a>, LinearError> {
    // a stop that names no error of its own: only a thread with a partner can get it, and
    // only when that partner stopped with an error, which is the one reported
    let lone = |s: Stop| match s {
        Stop::Err(e) => e,
        Stop::Partner => LinearError::Diverged { iteration: 0, loss: f64::NAN },
    };
    if threads < 2 || parts.len() < 2 {
        return worker(run, parts, None, b, batches, Some(report)).map_err(lone);
    }
    let ex = Exchange::new();
    let mut start = Some((b, batches));
    let pair = std::thread::scope(|s| {
        let (mine, theirs) = parts.split_at_mut(1);
        let (b, batches) = start.as_ref()?;
        let (b1, batches1, ex1) = (b.clone(), batches.clone(), &ex);
        let spawned = std::thread::Builder::new()
            .name("imgclass-sgd".into())
            .spawn_scoped(s, move || worker(run, theirs, Some((ex1, 1)), b1, batches1, None));
        let handle = match spawned {
            Ok(h) => h,
            Err(e) => {
                tracing::warn!(error = %e, "no second SGD thread; running both parts on one");
                return None;
            }
        };
        let (b, batches) = start.take()?;
        let ours = worker(run, mine, Some((&ex, 0)), b, batches, Some(&mut *report));
        let partner = match handle.join() {
            Ok(r) => r,
            Err(panic) => std::panic::resume_unwind(panic),
        };
        Some((ours, partner))
    });
    match (pair, start) {
        (Some((Ok(f), Ok(_))), _) => Ok(f),
        (Some((Err(Stop::Err(e)), _) | (_, Err(Stop::Err(e)))), _) => Err(e),
        (Some((ours, _)), _) => Err(lone(ours.err().unwrap_or(Stop::Partner))),
        (None, Some((b, batches))) => {
            worker(run, parts, None, b, batches, Some(report)).map_err(lone)
        }
        (None, None) => Err(lone(Stop::Partner)),
    }
}

/// The SGD loop of one thread over `mine` (all parts, or part `h` of a pair linked by
/// `link = (exchange, h)`). Every thread computes the whole loss, `dS` and bias update from
/// the combined scores, so the threads agree without sending more than partial scores.
fn worker<'a>(
    run: &Run<'a>,
    mine: &mut [Part],
    link: Option<(&Exchange, usize)>,
    mut b: Vec<f32>,
    mut batches: Batches<'a>,
    mut report: Option<&mut TrainingReport>,
) -> Result<Finished<'a>, Stop> {
    let guard = AbortOnDrop(link.map(|(ex, _)| ex));
    let p = &run.p;
    let (c, bs, iters) = (p.n_classes, run.batch_size, run.iterations);
    let mut rows: Vec<&'a [u8]> = Vec::with_capacity(bs);
    let mut labels: Vec<u32> = Vec::with_capacity(bs);
    let mut next_rows: Vec<&'a [u8]> = Vec::with_capacity(bs);
    let mut next_labels: Vec<u32> = Vec::with_capacity(bs);
    let mut scores = vec![0.0f32; bs * c];
    let mut dscores = vec![0.0f32; bs * c];
    let mut other = Vec::with_capacity(bs * c);
    let mut vb = vec![0.0f32; c];
    let mut lr = batches.lr;
    if iters > 0 {
        lr = batches.draw(bs, &mut rows, &mut labels);
    }
    // the data loss of the previous iteration, whose R(W) is known one exchange later
    let mut pending: Option<(usize, f32)> = None;
    let mut first_loss: Option<f64> = None;
    let mut check = |t: usize, data: f32, reg: f64, report: &mut Option<&mut TrainingReport>| {
        let total = f64::from(data) + reg;
        let limit = run.divergence_factor * first_loss.unwrap_or(total).max(1.0);
        if !total.is_finite() || total > limit {
            return Err(Stop::Err(LinearError::Diverged { iteration: t, loss: total }));
        }
        first_loss.get_or_insert(total);
        if let Some(r) = report.as_deref_mut() {
            r.push(data, reg as f32);
        }
        Ok(())
    };
    for it in 0..iters {
        let next_lr = if it + 1 < iters {
            Some(batches.draw(bs, &mut next_rows, &mut next_labels))
        } else {
            next_rows.clear();
            None
        };
        let m = rows.len();
        for part in mine.iter_mut() {
            part.forward(p, &rows)?;
        }
        // every part's partial scores of this iteration and R(W_h) of the last one
        let reg_prev = match link {
            None => {
                let partials: Vec<&[f32]> = mine.iter().map(|pt| &pt.partial[..m * c]).collect();
                combine(&partials, &b, &mut scores[..m * c]);
                mine.iter().fold(0.0f64, |a, pt| a + pt.reg)
            }
            Some((ex, h)) => {
                let own = &mine[0];
                ex.post(h, it, &own.partial[..m * c], own.reg);
                let reg_other = ex.take(1 - h, it, &mut other)?;
                let (p0, p1, r0, r1) = if h == 0 {
                    (&own.partial[..m * c], &other[..], own.reg, reg_other)
                } else {
                    (&other[..], &own.partial[..m * c], reg_other, own.reg)
                };
                combine(&[p0, p1], &b, &mut scores[..m * c]);
                r0 + r1
            }
        };
        if let Some((t, data)) = pending.take() {
            check(t, data, reg_prev, &mut report)?;
        }
        let data_loss =
            match p.loss.loss_grad_into(&scores[..m * c], c, &labels, &mut dscores[..m * c]) {
                Ok(v) => v,
                Err(LossError::NonFinite { what, .. }) => {
                    let loss = if what == "scores" { f64::NAN } else { f64::INFINITY };
                    return Err(Stop::Err(LinearError::Diverged { iteration: it, loss }));
                }
                Err(e) => return Err(Stop::Err(e.into())),
            };
        pending = Some((it, data_loss));
        let int = int_grad(p, &dscores[..m * c], m);
        let step = Step { lr: lr as f32, momentum: run.momentum as f32 };
        for part in mine.iter_mut() {
            part.reg = match part.backward_update(
                p,
                &rows,
                &next_rows,
                &dscores[..m * c],
                grad_of(int.as_ref()),
                Some(step),
            ) {
                Ok(v) => v,
                Err(
                    LinearError::Loss(LossError::NonFinite { .. })
                    | LinearError::Gemm(GemmError::NonFinite { .. }),
                ) => {
                    return Err(Stop::Err(LinearError::Diverged {
                        iteration: it,
                        loss: f64::INFINITY,
                    }));
                }
                Err(e) => return Err(Stop::Err(e)),
            };
        }
        if run.fit_bias {
            let lr32 = lr as f32;
            let mut db = vec![0.0f32; c];
            for grow in dscores[..m * c].chunks_exact(c) {
                db.iter_mut().zip(grow).for_each(|(a, g)| *a += g);
            }
            for ((bj, vj), &g) in b.iter_mut().zip(vb.iter_mut()).zip(&db) {
                if run.momentum > 0.0 {
                    *vj = run.momentum as f32 * *vj - lr32 * g;
                    *bj += *vj;
                } else {
                    *bj -= lr32 * g;
                }
            }
        }
        if let Some(next_lr) = next_lr {
            std::mem::swap(&mut rows, &mut next_rows);
            std::mem::swap(&mut labels, &mut next_labels);
            lr = next_lr;
        }
    }
    // the last iteration's R(W): one more exchange (no scores)
    if let Some((t, data)) = pending.take() {
        let reg = match link {
            None => mine.iter().fold(0.0f64, |a, pt| a + pt.reg),
            Some((ex, h)) => {
                let own = mine[0].reg;
                ex.post(h, iters, &[], own);
                let reg_other = ex.take(1 - h, iters, &mut other)?;
                // (f64 addition is commutative: both threads get the same bits)
                own + reg_other
            }
        };
        check(t, data, reg, &mut report)?;
    }
    guard.disarm();
    Ok(Finished { b, batches, lr })
}
