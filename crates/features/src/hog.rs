//! [`Hog`]: histograms of oriented gradients exactly as CS231n's `hog_feature` computes them
//! (assignment 1, `features.py`), so figures compare with the course's and with a numpy run
//! of its code:
//!
//! ```text
//! g(r, c)  = 0.299 R + 0.587 G + 0.144 B             (the course's grey weights, 0.144 sic)
//! gx(r, c) = g(r, c+1) − g(r, c)   (0 in the last column)
//! gy(r, c) = g(r+1, c) − g(r, c)   (0 in the last row)
//! m = sqrt(gx² + gy²),   θ = atan2(gy, gx + 1e-15) · 180/π + 90      (degrees)
//! bin b (of B = 9) holds the pixels with 180·b/B <= θ < 180·(b+1)/B and θ > 0
//! h[cell, b] = (1 / cell²) Σ_{pixels of the cell in bin b} m     (cells of 8 x 8, whole cells only)
//! ```
//!
//! Features are ordered as the course's `ravel()` of its transposed histogram: cell column
//! major, then cell row, then bin (`((cell_col · n_cell_rows) + cell_row) · B + b`). θ can
//! fall outside `[0, 180)` when `gx < 0` (the course's `+ 90` does not wrap): such pixels
//! count in no bin, as in the course.
//!
//! ```
//! use imgclass_core::{ClassNames, Dataset, ImageShape};
//! use imgclass_features::Hog;
//! // one grey 8x8 image with a vertical edge: horizontal gradient, θ = 90°, bin 4 of 9
//! let mut px = vec![0u8; 64];
//! for r in 0..8 { for c in 4..8 { px[r * 8 + c] = 200; } }
//! let ds = Dataset::new(px, vec![0], ImageShape::new(1, 8, 8), ClassNames::new(["a"]))?;
//! let h = Hog::new(8, 9).transform(&ds.all())?;
//! let f = h.features().expect("features").to_contiguous();
//! assert_eq!(f.len(), 9);
//! assert!((f[4] - 200.0 * 8.0 / 64.0).abs() < 1e-4); // one edge pixel per row, magnitude 200
//! assert_eq!(f.iter().filter(|&&v| v != 0.0).count(), 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # The bin without `atan2`
//!
//! The features are bit for bit those of the direct computation (per pixel: `ori = atan2(gy,
//! x)·180/π + 90` with `x = gx + 1e-15` rounded as written, no bin unless `0 < ori < 180`, then
//! a search among the edges `fl(180/B)·k`; the tests keep it verbatim), but most pixels find
//! their bin from one division `t = gy / x` (vectorised with `m`) and `B − 1` comparisons:
//!
//! - for `x > 0`, θ = atan(t)·180/π + 90 increases with `t`, so the bin is the number of
//!   interior edges `k = 1, …, B − 1` whose `τ_k = tan(180·k/B − 90°)` (computed once per
//!   call) lies below `t`;
//! - for `x < 0`, θ lies beyond `[0, 180]`: no bin.
//!
//! This fast path is taken only where it cannot differ from the direct computation:
//!
//! - `|t| <= 1e6`: the exact angle is then at least atan(1e-6) ≈ 1e-6 rad (5.7e-5°) from
//!   ±90°, so θ is that far inside `(0, 180)` for `x > 0` and that far outside for `x < 0`
//!   (this also keeps clear of the direct search's quirk of dropping a θ within an ulp or two of
//!   180 when `⌊θ / width⌋ = B`);
//! - for `x > 0`, `t` outside the band `τ_k ± 1e-9·(1 + τ_k²)` of every edge: as
//!   d atan(t)/dt = 1/(1 + t²), the exact angle is then at least 1e-9·(1 − 2e-5) rad (5.7e-8°)
//!   from every edge (`|τ_k| <= 1e4`, below).
//!
//! The direct computation's errors are some 5 orders of magnitude smaller than that margin:
//! rounding `t` moves atan(t) by at most 2⁻⁵³·|t|/(1 + t²) < 1.2e-16 rad; `τ_k` is within a
//! few ulps (≈ 1e-15 rad); `atan2` is within an ulp or so of the exact angle (≈ 2.2e-16 rad,
//! 1.3e-14°; even 10⁵ ulps would stay inside the margin); the product by `180/π` and the `+ 90`
//! each round by half an ulp of a value `<= 180` (≈ 1.4e-14°, with `180/π` itself off by 2⁻⁵³
//! relative), and the edges `fl(180/B)·k` are within 2 ulps of `180·k/B` (≈ 6e-14°): about
//! 1e-13° in all.
//!
//! Every other pixel takes the direct computation: `x = 0` (`gx = −1e-15`), `|t| > 1e6` (which
//! includes `gx = 0` with `gy ≠ 0`, as `x = 1e-15`, and a NaN `t`), and `t` in a band. Two
//! of these are cheaper: `gy = 0` with `x > 0` gives θ = 90 exactly, whose bin is found once
//! per call (it is an edge for even `B`); and `gx = 0` (`x = 1e-15`, common in images: the
//! last column, flat runs) keeps its decisions by the bits of `gy` in a small direct-mapped
//! table per worker and call. A pixel with `m = 0` needs no bin, as adding `+0` to a sum (all
//! `>= +0`) changes no bit; the fast path adds `+0` for `x < 0` rather than branch. `B` above
//! about 31,000 (an edge's `|τ_k| > 1e4`) turns the fast path off.

use imgclass_core::{Dataset, ImageShape, RowShape, ShapeMismatch, Subset, Values};
use rayon::prelude::*;

use crate::FeatureError;

/// HOG parameters: square cells of `cell` pixels, `orientations` bins over 180°.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hog {
    cell: usize,
    orientations: usize,
}

impl Hog {
    /// Cells of `cell x cell` pixels, `orientations` bins (CS231n: 8 and 9).
    pub fn new(cell: usize, orientations: usize) -> Self {
        Self { cell, orientations }
    }

    /// The spec that makes this step.
    pub fn spec(&self) -> crate::StepSpec {
        crate::StepSpec::Hog { cell: self.cell, orientations: self.orientations }
    }

    /// Features per image of `shape`: whole cells times bins.
    pub fn output_dim(&self, shape: ImageShape) -> usize {
        (shape.height / self.cell.max(1)) * (shape.width / self.cell.max(1)) * self.orientations
    }

    /// Checks the parameters against the input: images (1 or 3 channels) with at least one
    /// whole cell.
    pub fn check(&self, input: RowShape) -> Result<ImageShape, FeatureError> {
        let RowShape::Image(shape) = input else {
            return Err(FeatureError::InvalidParam {
                name: "hog",
                reason: format!("HOG takes images, not {input}"),
            });
        };
        if self.cell == 0 || self.orientations == 0 {
            return Err(FeatureError::InvalidParam {
                name: "hog",
                reason: "cell and orientations must be at least 1".into(),
            });
        }
        if !matches!(shape.channels, 1 | 3) {
            return Err(FeatureError::InvalidParam {
                name: "hog",
                reason: format!("HOG takes grey or RGB images, not {} channels", shape.channels),
            });
        }
        if self.output_dim(shape) == 0 {
            return Err(FeatureError::InvalidParam {
                name: "hog",
                reason: format!("{shape} images hold no whole {0}x{0} cell", self.cell),
            });
        }
        Ok(shape)
    }

    /// The HOG features of every image of `x`.
    pub fn transform(&self, x: &Subset) -> Result<Dataset, FeatureError> {
        let shape = self.check(x.shape())?;
        let Values::Pixels(rows) = x.values() else {
            return Err(FeatureError::Shape(ShapeMismatch {
                expected: x.shape(),
                found: x.shape(),
            }));
        };
        let dim = self.output_dim(shape);
        let bins = Bins::new(self.orientations);
        let mut out = vec![0f32; x.len() * dim];
        out.par_chunks_mut(dim).enumerate().for_each_init(
            || Scratch::new(shape, dim),
            |sc, (i, o)| self.one(rows.row(i), shape, &bins, sc, o),
        );
        Ok(x.with_features(out, dim)?)
    }

    /// One image: grey, then a row at a time the gradients, magnitudes and `t = gy / x`
    /// (vectorisable), then each pixel's bin.
    fn one(&self, px: &[u8], s: ImageShape, bins: &Bins, sc: &mut Scratch, out: &mut [f32]) {
        let (h, w) = (s.height, s.width);
        let plane = h * w;
        // grey, in f64 as numpy computes it
        let grey = &mut sc.grey[..plane];
        if s.channels == 3 {
            let (red, rest) = px[..3 * plane].split_at(plane);
            let (green, blue) = rest.split_at(plane);
            for (((g, &r), &gr), &b) in grey.iter_mut().zip(red).zip(green).zip(blue) {
                *g = 0.299 * f64::from(r) + 0.587 * f64::from(gr) + 0.144 * f64::from(b);
            }
        } else {
            for (g, &p) in grey.iter_mut().zip(&px[..plane]) {
                *g = f64::from(p);
            }
        }
        let (b, cell) = (self.orientations, self.cell);
        let (ncr, ncc) = (h / cell, w / cell);
        let cw = ncc * cell;
        let Scratch { grey, row, acc, memo } = sc;
        let acc = &mut acc[..ncr * ncc * b];
        acc.fill(0.0);
        let (xs, rest) = row[..4 * cw].split_at_mut(cw);
        let (gys, rest) = rest.split_at_mut(cw);
        let (ts, ms) = rest.split_at_mut(cw);
        let grey = &grey[..plane];
        for r in 0..ncr * cell {
            let row = &grey[r * w..(r + 1) * w];
            // gx = g(r, c+1) − g(r, c), 0 in the last column
            let n = cw.min(w - 1);
            for (d, p) in xs[..n].iter_mut().zip(row.windows(2)) {
                *d = p[1] - p[0];
            }
            xs[n..].fill(0.0);
            // gy = g(r+1, c) − g(r, c), 0 in the last row
            if r + 1 < h {
                let below = &grey[(r + 1) * w..(r + 2) * w];
                for ((d, &u), &g) in gys.iter_mut().zip(below).zip(row) {
                    *d = u - g;
                }
            } else {
                gys.fill(0.0);
            }
            // m = sqrt(gx² + gy²), x = gx + 1e-15 (in place of gx), t = gy / x
            for (((x, &y), t), m) in
                xs.iter_mut().zip(gys.iter()).zip(ts.iter_mut()).zip(ms.iter_mut())
            {
                *m = (*x * *x + y * y).sqrt();
                *x += 1e-15;
                *t = y / *x;
            }
            let cr = r / cell;
            let cells = xs.chunks_exact(cell).zip(gys.chunks_exact(cell));
            let cells = cells.zip(ts.chunks_exact(cell).zip(ms.chunks_exact(cell)));
            for (cc, ((x, gy), (t, m))) in cells.enumerate() {
                let a = &mut acc[(cc * ncr + cr) * b..(cc * ncr + cr + 1) * b];
                for (((&x, &gy), &t), &m) in x.iter().zip(gy).zip(t).zip(m) {
                    bins.add(x, gy, t, m, a, memo);
                }
            }
        }
        let area = (cell * cell) as f64;
        for (o, a) in out.iter_mut().zip(acc.iter()) {
            *o = (*a / area) as f32;
        }
    }
}

/// The fast path only where `|t| <= T_MAX`: there θ is at least atan(1e-6) ≈ 1e-6 rad
/// (5.7e-5°) away from 0° and 180°, the ends of the course's `0 < θ < 180` test.
const T_MAX: f64 = 1e6;

/// Half-width of the band around each edge's `tan` in which the fast path defers to the exact
/// computation, in units of `1 + tan²` of the edge, i.e. about this many radians of angle.
const BAND: f64 = 1e-9;

/// The per-pixel bin decision of one [`Hog`] call: the bands around the `tan` of the interior
/// bin edges (ascending, disjoint), and the exact computation as the fallback.
struct Bins {
    b: usize,
    width: f64,
    /// `lo[k] = tan(e) − BAND·(1 + tan²(e))` for the edge `e = 180·(k+1)/B − 90` degrees
    lo: Vec<f64>,
    /// `hi[k] = tan(e) + BAND·(1 + tan²(e))`
    hi: Vec<f64>,
    /// [`T_MAX`], or −1 (no fast path at all) when an edge's `|tan|` exceeds 1e4, i.e.
    /// `B` above about 31,000
    t_max: f64,
    /// The exact bin of θ = 90° (what `x > 0, gy = 0` gives): on an edge when `B` is even
    at_90: Option<usize>,
}

impl Bins {
    fn new(b: usize) -> Self {
        let width = 180.0 / b as f64;
        let (mut lo, mut hi) = (Vec::with_capacity(b), Vec::with_capacity(b));
        let mut t_max = T_MAX;
        for k in 1..b {
            let t = ((180.0 * k as f64 / b as f64) - 90.0).to_radians().tan();
            if t.abs() > 1e4 {
                t_max = -1.0;
            }
            let half = BAND * (1.0 + t * t);
            lo.push(t - half);
            hi.push(t + half);
        }
        Self { b, width, lo, hi, t_max, at_90: bin_of_angle(90.0, b, width) }
    }

    /// Adds `m` to `acc[bin]` for the pixel with `x = gx + 1e-15`, `gy` and `t = gy / x`
    /// when the reference `θ = atan2(gy, x)·180/π + 90` falls in a bin. `acc` holds a cell's
    /// `B` sums, all `>= +0`, so adding `+0.0` to one of them leaves its bits alone.
    #[inline(always)]
    fn add(&self, x: f64, gy: f64, t: f64, m: f64, acc: &mut [f64], memo: &mut Memo) {
        if let Some(k) = self.fast_index(x, t) {
            // x < 0: θ beyond [0°, 180°] (by more than 5.7e-5°), no bin: add +0 instead
            acc[k] += if x > 0.0 { m } else { 0.0 };
        } else if m != 0.0 {
            let exact = || exact_bin(x, gy, self.b, self.width);
            let bin = if t == 0.0 && x > 0.0 {
                self.at_90
            } else if x == 1e-15 && self.b < MEMO_NONE as usize {
                memo.get(gy, exact)
            } else {
                exact()
            };
            if let Some(bin) = bin {
                acc[bin] += m;
            }
        }
    }

    /// The bin when `x > 0` (and an in-range index when `x < 0`, which has no bin), or `None`
    /// where only the exact computation can tell: `x = 0`, `|t| > T_MAX` (or NaN), or `x > 0`
    /// with `t` in an edge's band.
    #[inline(always)]
    fn fast_index(&self, x: f64, t: f64) -> Option<usize> {
        // the number of edges whose band starts at or below t
        let k = self.lo.iter().map(|&l| usize::from(l <= t)).sum::<usize>();
        let in_band = k > 0 && t <= self.hi[k - 1];
        // a NaN or infinite t (x = 0) fails `<=`
        (t.abs() <= self.t_max && !(in_band && x > 0.0)).then_some(k)
    }
}

/// Entries of a [`Memo`]: `2^MEMO_BITS`.
const MEMO_BITS: u32 = 10;

/// A [`Memo`] entry's "no bin".
const MEMO_NONE: u32 = u32::MAX;

/// The exact decisions already made for `x = 1e-15` (`gx = 0`, common in images: the last
/// column and flat runs), by the bits of `gy`: a direct-mapped table of `(bits, bin)` entries
/// ([`MEMO_NONE`] for no bin), each a true decision of the [`Bins`] of the call (the first
/// ones that of the NaN `gy` whose bits are all ones: no bin).
struct Memo(Vec<(u64, u32)>);

impl Memo {
    fn new() -> Self {
        Self(vec![(u64::MAX, MEMO_NONE); 1 << MEMO_BITS])
    }

    /// The decision for `gy`, from the table or else from `exact` (then kept).
    #[inline]
    fn get(&mut self, gy: f64, exact: impl FnOnce() -> Option<usize>) -> Option<usize> {
        let bits = gy.to_bits();
        let e =
            &mut self.0[(bits.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> (64 - MEMO_BITS)) as usize];
        if e.0 != bits {
            *e = (bits, exact().map_or(MEMO_NONE, |b| b as u32));
        }
        (e.1 != MEMO_NONE).then_some(e.1 as usize)
    }
}

/// The reference decision: `θ = atan2(gy, x)·180/π + 90` with `x = gx + 1e-15`, then its bin.
#[inline(never)]
fn exact_bin(x: f64, gy: f64, b: usize, width: f64) -> Option<usize> {
    bin_of_angle(gy.atan2(x) * (180.0 / std::f64::consts::PI) + 90.0, b, width)
}

/// The bin of θ (degrees) as the reference finds it: none unless `0 < θ < 180`, then the
/// course's `180/B·i <= θ < 180/B·(i+1)` by a search from `⌊θ / width⌋`.
fn bin_of_angle(ori: f64, b: usize, width: f64) -> Option<usize> {
    if !(ori > 0.0 && ori < 180.0) {
        return None;
    }
    let mut bin = (ori / width) as usize;
    while bin > 0 && ori < width * bin as f64 {
        bin -= 1;
    }
    while bin + 1 < b && ori >= width * (bin + 1) as f64 {
        bin += 1;
    }
    (bin < b).then_some(bin)
}

struct Scratch {
    grey: Vec<f64>,
    /// A row's `x = gx + 1e-15`, `gy`, `t = gy / x` and magnitude, one after the other
    row: Vec<f64>,
    acc: Vec<f64>,
    memo: Memo,
}

impl Scratch {
    fn new(s: ImageShape, dim: usize) -> Self {
        Self {
            grey: vec![0.0; s.height * s.width],
            row: vec![0.0; 4 * s.width],
            acc: vec![0.0; dim],
            memo: Memo::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use imgclass_core::ClassNames;
    use imgclass_core::rng::SplitMix64;

    const ORIENTATIONS: [usize; 9] = [1, 2, 3, 4, 6, 9, 12, 18, 7];

    /// The per-pixel rule before the atan2-free decision, verbatim: `Some(bin)` or no bin.
    fn naive_bin(gx: f64, gy: f64, b: usize) -> Option<usize> {
        let width = 180.0 / b as f64;
        let ori = gy.atan2(gx + 1e-15) * (180.0 / std::f64::consts::PI) + 90.0;
        if !(ori > 0.0 && ori < 180.0) {
            return None;
        }
        let mut bin = (ori / width) as usize;
        while bin > 0 && ori < width * bin as f64 {
            bin -= 1;
        }
        while bin + 1 < b && ori >= width * (bin + 1) as f64 {
            bin += 1;
        }
        if bin >= b {
            return None;
        }
        Some(bin)
    }

    /// The new decision for one pixel (through [`Bins::add`] with magnitude 1), and whether
    /// it took the fast path.
    fn new_bin(bins: &Bins, memo: &mut Memo, gx: f64, gy: f64) -> (Option<usize>, bool) {
        let x = gx + 1e-15;
        let t = gy / x;
        let mut acc = vec![0.0; bins.b];
        bins.add(x, gy, t, 1.0, &mut acc, memo);
        let hit: Vec<usize> = (0..bins.b).filter(|&i| acc[i] != 0.0).collect();
        assert!(hit.len() <= 1 && acc.iter().all(|&a| a == 0.0 || a == 1.0));
        (hit.first().copied(), bins.fast_index(x, t).is_some())
    }

    /// Asserts the new decision equals the naive rule on every pair; returns the fast share.
    fn check(pairs: impl IntoIterator<Item = (f64, f64)>, b: usize) -> f64 {
        let (bins, mut memo) = (Bins::new(b), Memo::new());
        let (mut n, mut fast) = (0usize, 0usize);
        for (gx, gy) in pairs {
            let (got, f) = new_bin(&bins, &mut memo, gx, gy);
            let want = naive_bin(gx, gy, b);
            assert_eq!(
                got,
                want,
                "B = {b}, gx = {gx:e} ({:#x}), gy = {gy:e} ({:#x})",
                gx.to_bits(),
                gy.to_bits()
            );
            n += 1;
            fast += usize::from(f);
        }
        fast as f64 / n.max(1) as f64
    }

    #[test]
    fn the_decision_equals_atan2_on_random_gradients() {
        let mut g = SplitMix64::new(7);
        for b in ORIENTATIONS {
            // image-like gradients: the fast path takes nearly all
            let pairs: Vec<(f64, f64)> = (0..100_000)
                .map(|_| (g.next_f64() * 510.0 - 255.0, g.next_f64() * 510.0 - 255.0))
                .collect();
            let fast = check(pairs, b);
            assert!(fast > 0.99, "B = {b}: fast path on {fast}");
            // any scales from 1e-20 to 1e20, independently
            let mut s = || g.next_normal() * 10f64.powf(g.next_f64() * 40.0 - 20.0);
            let pairs: Vec<(f64, f64)> = (0..100_000).map(|_| (s(), s())).collect();
            check(pairs, b);
        }
    }

    /// f64 values around v: v itself and its neighbours up to `d` steps away either way.
    fn around(v: f64, d: usize) -> impl Iterator<Item = f64> {
        let up = std::iter::successors(Some(v), |x| Some(x.next_up())).skip(1).take(d);
        let down = std::iter::successors(Some(v), |x| Some(x.next_down())).take(d + 1);
        down.chain(up)
    }

    #[test]
    fn the_decision_equals_atan2_on_adversarial_gradients() {
        let specials = [
            0.0,
            -0.0,
            1e-15,
            -1e-15,
            f64::from_bits((-1e-15f64).to_bits() + 1),
            f64::from_bits((-1e-15f64).to_bits() - 1),
            f64::from_bits(1e-15f64.to_bits() + 1),
            5e-324,
            -5e-324,
            1e-300,
            -1e-300,
            1e-30,
            -1e-30,
            1e-16,
            -1e-16,
            1e-3,
            -1e-3,
            1.0,
            -1.0,
            0.114,
            -0.299,
            255.0,
            -255.0,
            1e15,
            -1e15,
            1e300,
            -1e300,
            f64::MAX,
            -f64::MAX,
            f64::INFINITY,
            f64::NEG_INFINITY,
        ];
        for b in ORIENTATIONS {
            let mut pairs: Vec<(f64, f64)> = Vec::new();
            for &gx in &specials {
                for &gy in &specials {
                    pairs.push((gx, gy));
                }
            }
            // the directions of each edge and its neighbouring f64 values, from both sides
            // of the band; several x (including the ones gx = 0 and gx < 0 give)
            let bins = Bins::new(b);
            for k in 1..b {
                let tan = ((180.0 * k as f64 / b as f64) - 90.0).to_radians().tan();
                let edge_ts =
                    [tan, bins.lo[k - 1], bins.hi[k - 1], tan * (1.0 + 1e-12), tan * (1.0 - 1e-12)];
                for gx in
                    [0.0, -1e-15, 1e-3, 0.587, 1.0, 3.0, 97.3, 255.0, 1e-200, 1e200, -1.0, -255.0]
                {
                    let x = gx + 1e-15;
                    for &te in &edge_ts {
                        for gy in around(x * te, 3).chain(around(-x * te, 3)) {
                            pairs.push((gx, gy));
                        }
                    }
                    // atan2's own edge crossing: far enough either way to leave the band
                    for i in -400..=400 {
                        let gy = x * tan * (1.0 + f64::from(i) * 1e-11);
                        pairs.extend(around(gy, 1).map(|gy| (gx, gy)));
                    }
                }
            }
            // near-vertical directions (θ near 0° or 180°), around T_MAX
            for gx in [1e-15, 1e-3, 1.0, 255.0, -1e-3, -1.0] {
                let x: f64 = gx + 1e-15;
                for s in [1e5, T_MAX, 1e7, 1e15, 1e16, 1e17, 1e18] {
                    for gy in around(x * s, 2).chain(around(-x * s, 2)) {
                        pairs.push((gx, gy));
                    }
                }
            }
            check(pairs, b);
        }
    }

    fn grey(r: u8, g: u8, b: u8) -> f64 {
        0.299 * f64::from(r) + 0.587 * f64::from(g) + 0.144 * f64::from(b)
    }

    #[test]
    fn the_decision_equals_atan2_on_gradients_of_u8_rgb_images() {
        let mut g = SplitMix64::new(11);
        // about 4,000 distinct gradients (16 million pairs) in release, 1,000 in debug
        let n = if cfg!(debug_assertions) { 500 } else { 2000 };
        let mut triples: Vec<[u8; 3]> =
            (0..n).map(|_| [0; 3].map(|_| g.below(256) as u8)).collect();
        // grey triples, primaries and near neighbours
        for v in [0u8, 1, 2, 127, 128, 254, 255] {
            triples.extend([[v, v, v], [v, 0, 0], [0, v, 0], [0, 0, v], [v, 255, 0], [255, v, 1]]);
        }
        let greys: Vec<f64> = triples.iter().map(|&[r, g, b]| grey(r, g, b)).collect();
        // gradients as the image computes them: one grey minus another
        let mut diffs: Vec<f64> = (0..greys.len())
            .map(|i| greys[i] - greys[(i * 7 + 1) % greys.len()])
            .chain(greys.iter().map(|&g| g - greys[0]))
            .chain([0.0, 0.144, -0.144, 0.299, -0.299, 0.587, -0.587, 0.443 - 0.299])
            .collect();
        diffs.sort_by(f64::total_cmp);
        diffs.dedup();
        for b in [9, 2, 4, 12] {
            let pairs = diffs.iter().flat_map(|&gx| diffs.iter().map(move |&gy| (gx, gy)));
            // gx = 0 once more, now from the memo of the first pass (or a colliding entry)
            let pairs = pairs.chain(diffs.iter().map(|&gy| (0.0, gy)));
            let fast = check(pairs, b);
            assert!(fast > 0.99, "B = {b}: fast path on {fast}");
        }
    }

    /// `Hog::one` before the atan2-free decision, verbatim.
    fn one_reference(hog: &Hog, px: &[u8], s: ImageShape) -> Vec<f32> {
        let mut sc_grey = vec![0.0; s.height * s.width];
        let mut sc_acc: Vec<f64> = Vec::new();
        let mut out = vec![0f32; hog.output_dim(s)];
        let (h, w) = (s.height, s.width);
        let plane = h * w;
        for (j, g) in sc_grey.iter_mut().enumerate() {
            *g = if s.channels == 3 {
                0.299 * f64::from(px[j])
                    + 0.587 * f64::from(px[plane + j])
                    + 0.144 * f64::from(px[2 * plane + j])
            } else {
                f64::from(px[j])
            };
        }
        let (b, cell) = (hog.orientations, hog.cell);
        let (ncr, ncc) = (h / cell, w / cell);
        sc_acc.clear();
        sc_acc.resize(ncr * ncc * b, 0.0);
        let width = 180.0 / b as f64;
        for r in 0..ncr * cell {
            for c in 0..ncc * cell {
                let g = sc_grey[r * w + c];
                let gx = if c + 1 < w { sc_grey[r * w + c + 1] - g } else { 0.0 };
                let gy = if r + 1 < h { sc_grey[(r + 1) * w + c] - g } else { 0.0 };
                let mag = (gx * gx + gy * gy).sqrt();
                let ori = gy.atan2(gx + 1e-15) * (180.0 / std::f64::consts::PI) + 90.0;
                if !(ori > 0.0 && ori < 180.0) {
                    continue;
                }
                let mut bin = (ori / width) as usize;
                while bin > 0 && ori < width * bin as f64 {
                    bin -= 1;
                }
                while bin + 1 < b && ori >= width * (bin + 1) as f64 {
                    bin += 1;
                }
                if bin >= b {
                    continue;
                }
                let (cr, cc) = (r / cell, c / cell);
                sc_acc[(cc * ncr + cr) * b + bin] += mag;
            }
        }
        let area = (cell * cell) as f64;
        for (o, a) in out.iter_mut().zip(sc_acc.iter_mut()) {
            *o = (*a / area) as f32;
            *a = 0.0;
        }
        out
    }

    /// Random images of three kinds: uniform noise, flat blocks (gx = 0 and gy = 0 runs),
    /// and smooth ramps (equal gx and gy, directions on edges).
    fn images(n: usize, s: ImageShape, g: &mut SplitMix64) -> Vec<u8> {
        let mut px = Vec::with_capacity(n * s.len());
        for i in 0..n {
            let plane = s.height * s.width;
            let colours: Vec<u8> = (0..3 * 16).map(|_| g.below(256) as u8).collect();
            let (a, bb) = (g.below(5) as usize, g.below(5) as usize);
            for ch in 0..s.channels {
                for j in 0..plane {
                    let (r, c) = (j / s.width, j % s.width);
                    px.push(match i % 3 {
                        0 => g.below(256) as u8,
                        1 => colours[ch * 16 + (r / 5 % 4) * 4 + c / 7 % 4],
                        _ => ((a * r + bb * c + 13 * ch) % 256) as u8,
                    });
                }
            }
        }
        px
    }

    #[test]
    fn whole_image_features_equal_the_reference_bit_for_bit() {
        let mut g = SplitMix64::new(3);
        let shapes =
            [ImageShape::new(3, 32, 32), ImageShape::new(1, 32, 32), ImageShape::new(3, 13, 21)];
        for s in shapes {
            let n = 30;
            let px = images(n, s, &mut g);
            let ds =
                Dataset::new(px.clone(), vec![0; n], s, ClassNames::new(["a"])).expect("valid");
            for b in ORIENTATIONS {
                for cell in [8, 4, 5] {
                    let hog = Hog::new(cell, b);
                    let f = hog
                        .transform(&ds.all())
                        .expect("hog")
                        .features()
                        .expect("f")
                        .to_contiguous();
                    let dim = hog.output_dim(s);
                    for i in 0..n {
                        let want = one_reference(&hog, &px[i * s.len()..(i + 1) * s.len()], s);
                        let got = &f[i * dim..(i + 1) * dim];
                        let same = got.iter().zip(&want).all(|(a, b)| a.to_bits() == b.to_bits());
                        assert!(same, "{s}, cell {cell}, B = {b}, image {i}: {got:?} vs {want:?}");
                    }
                }
            }
        }
    }
}
