//! [`HueHistogram`]: the histogram of the hue channel in HSV space exactly as CS231n's
//! `color_histogram_hsv` computes it (`matplotlib.colors.rgb_to_hsv`, then `np.histogram`
//! with `density=True` times the bin widths, i.e. the fraction of pixels per bin):
//!
//! ```text
//! v = max(r, g, b),  δ = v − min(r, g, b)     (r, g, b = pixel / 255)
//! hue = 0 when δ = 0; else, the last of these that applies (blue over green over red):
//!   r = v: (g − b)/δ,   g = v: 2 + (b − r)/δ,   b = v: 4 + (r − g)/δ
//! hue = ((hue / 6) mod 1) · 255
//! bins: `bins` equal intervals of [0, 255], the last one closed
//! ```
//!
//! ```
//! use imgclass_core::{ClassNames, Dataset, ImageShape};
//! use imgclass_features::HueHistogram;
//! // two RGB pixels: pure red (hue 0) and pure blue (hue 2/3 · 255 = 170)
//! let px = vec![255, 0, /* g */ 0, 0, /* b */ 0, 255];
//! let ds = Dataset::new(px, vec![0], ImageShape::new(3, 1, 2), ClassNames::new(["a"]))?;
//! let h = HueHistogram::new(10).transform(&ds.all())?;
//! let f = h.features().expect("features").to_contiguous();
//! assert_eq!(f, vec![0.5, 0.0, 0.0, 0.0, 0.0, 0.0, 0.5, 0.0, 0.0, 0.0]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use imgclass_core::{Dataset, RowShape, Subset, Values};
use rayon::prelude::*;

use crate::FeatureError;

/// A hue histogram of `bins` bins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HueHistogram {
    bins: usize,
}

impl HueHistogram {
    /// `bins` equal bins over the hue range (CS231n: 10).
    pub fn new(bins: usize) -> Self {
        Self { bins }
    }

    /// Features per image.
    pub fn output_dim(&self) -> usize {
        self.bins
    }

    /// Checks the input: RGB images, at least one bin.
    pub fn check(&self, input: RowShape) -> Result<(), FeatureError> {
        match input {
            RowShape::Image(s) if s.channels == 3 && self.bins > 0 => Ok(()),
            _ if self.bins == 0 => Err(FeatureError::InvalidParam {
                name: "hue_histogram",
                reason: "bins must be at least 1".into(),
            }),
            other => Err(FeatureError::InvalidParam {
                name: "hue_histogram",
                reason: format!("the hue histogram takes RGB images, not {other}"),
            }),
        }
    }

    /// The hue histogram of every image of `x`.
    pub fn transform(&self, x: &Subset) -> Result<Dataset, FeatureError> {
        self.check(x.shape())?;
        let Values::Pixels(rows) = x.values() else {
            return Err(FeatureError::InvalidParam {
                name: "hue_histogram",
                reason: "not images".into(),
            });
        };
        let plane = x.dim() / 3;
        let nb = self.bins;
        // np.histogram: edges linspace(0, 255, nb + 1), the last bin closed
        let edges: Vec<f64> = (0..=nb).map(|k| 255.0 * k as f64 / nb as f64).collect();
        let mut out = vec![0f32; x.len() * nb];
        out.par_chunks_mut(nb).enumerate().for_each_init(
            || (vec![0u32; nb], vec![0.0; plane], vec![0.0; plane]),
            |(counts, hs, qs), (i, o)| {
                let px = rows.row(i);
                counts.fill(0);
                let (red, rest) = px[..3 * plane].split_at(plane);
                let (green, blue) = rest.split_at(plane);
                hues(red, green, blue, hs);
                // the hue times 255 and its first guess of a bin, in a pass that vectorises
                for (h, q) in hs.iter_mut().zip(qs.iter_mut()) {
                    *h *= 255.0;
                    *q = *h / 255.0 * nb as f64;
                }
                for (&h, &q) in hs.iter().zip(qs.iter()) {
                    let mut b = q as usize;
                    while b > 0 && h < edges[b] {
                        b -= 1;
                    }
                    while b + 1 < nb && h >= edges[b + 1] {
                        b += 1;
                    }
                    counts[b.min(nb - 1)] += 1;
                }
                for (o, &c) in o.iter_mut().zip(counts.iter()) {
                    *o = (f64::from(c) / plane as f64) as f32;
                }
            },
        );
        Ok(x.with_features(out, nb)?)
    }
}

/// matplotlib's `rgb_to_hsv` hue in `[0, 1)` of each pixel (up to the sign of a zero hue,
/// which falls in the first bin either way), of the planes `red`, `green`, `blue` into `out`.
///
/// Written without branches (the case, blue over green over red as matplotlib assigns them in
/// turn, picked by selects; one division; no `fmod`) so that it vectorises.
pub(crate) fn hues(red: &[u8], green: &[u8], blue: &[u8], out: &mut [f64]) {
    for (((o, &r), &g), &b) in out.iter_mut().zip(red).zip(green).zip(blue) {
        let (r, g, b) = (f64::from(r) / 255.0, f64::from(g) / 255.0, f64::from(b) / 255.0);
        // `max` and `min` of values that are never NaN nor −0
        let (max, min) = (
            |p: f64, q: f64| if p > q { p } else { q },
            |p: f64, q: f64| if p < q { p } else { q },
        );
        let v = max(max(r, g), b);
        let delta = v - min(min(r, g), b);
        let off = if b == v {
            4.0
        } else if g == v {
            2.0
        } else {
            0.0
        };
        let num = if b == v {
            r - g
        } else if g == v {
            b - r
        } else {
            g - b
        };
        // |num| <= delta, so the hue over 6 is in [-1/6, 5/6]: `rem_euclid(1.0)` (an exact
        // fmod, then + 1 below zero) is the + 1 alone
        let h = (off + num / delta) / 6.0;
        let h = if h < 0.0 { h + 1.0 } else { h };
        // delta = 0: hue 0 (h is NaN then)
        *o = if delta > 0.0 { h } else { 0.0 };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use imgclass_core::rng::SplitMix64;
    use imgclass_core::{ClassNames, ImageShape};

    /// The hue before the table and the selects, verbatim.
    fn hue_reference(r: u8, g: u8, b: u8) -> f64 {
        let (r, g, b) = (f64::from(r) / 255.0, f64::from(g) / 255.0, f64::from(b) / 255.0);
        let v = r.max(g).max(b);
        let delta = v - r.min(g).min(b);
        if delta <= 0.0 {
            return 0.0;
        }
        let mut h = 0.0;
        if r == v {
            h = (g - b) / delta;
        }
        if g == v {
            h = 2.0 + (b - r) / delta;
        }
        if b == v {
            h = 4.0 + (r - g) / delta;
        }
        (h / 6.0).rem_euclid(1.0)
    }

    #[test]
    fn the_hue_equals_the_reference_on_every_rgb_triple() {
        // every triple in release, every third value of each channel in debug
        let step = if cfg!(debug_assertions) { 3 } else { 1 };
        let blue: Vec<u8> = (0..=255).collect();
        let mut hs = vec![0.0; 256];
        for r in (0..=255u8).step_by(step) {
            for g in (0..=255u8).step_by(step) {
                hues(&[r; 256], &[g; 256], &blue, &mut hs);
                for (b, &got) in (0..=255u8).zip(&hs) {
                    let want = hue_reference(r, g, b);
                    // equal bits but for the sign of a zero hue (bin 0 either way)
                    let same = got.to_bits() == want.to_bits() || (got == 0.0 && want == 0.0);
                    assert!(same, "({r}, {g}, {b}): {got:e} vs {want:e}");
                }
            }
        }
    }

    /// The histogram before, verbatim.
    fn histogram_reference(p: &[u8], plane: usize, nb: usize) -> Vec<f32> {
        let mut counts = vec![0u32; nb];
        for j in 0..plane {
            let h = hue_reference(p[j], p[plane + j], p[2 * plane + j]) * 255.0;
            let mut b = (h / 255.0 * nb as f64) as usize;
            let edges = |k: usize| 255.0 * k as f64 / nb as f64;
            while b > 0 && h < edges(b) {
                b -= 1;
            }
            while b + 1 < nb && h >= edges(b + 1) {
                b += 1;
            }
            counts[b.min(nb - 1)] += 1;
        }
        counts.iter().map(|&c| (f64::from(c) / plane as f64) as f32).collect()
    }

    fn images(n: usize, s: ImageShape, seed: u64) -> (Vec<u8>, Dataset) {
        let mut g = SplitMix64::new(seed);
        let px: Vec<u8> =
            (0..n * s.len()).map(|i| if i % 7 == 0 { 200 } else { g.below(256) as u8 }).collect();
        let ds = Dataset::new(px.clone(), vec![0; n], s, ClassNames::new(["a"])).expect("valid");
        (px, ds)
    }

    #[test]
    fn histograms_equal_the_reference_bit_for_bit() {
        let (n, s) = (40, ImageShape::new(3, 16, 16));
        let (px, ds) = images(n, s, 9);
        for nb in [1, 2, 3, 7, 10, 16, 255, 256] {
            let h = HueHistogram::new(nb).transform(&ds.all()).expect("hue");
            let f = h.features().expect("f").to_contiguous();
            for i in 0..n {
                let want = histogram_reference(&px[i * s.len()..(i + 1) * s.len()], 256, nb);
                for (k, w) in want.iter().enumerate() {
                    let got = f[i * nb + k];
                    assert_eq!(got.to_bits(), w.to_bits(), "nb {nb}, image {i}, bin {k}");
                }
            }
        }
    }
}
