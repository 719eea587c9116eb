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
        let mut out = vec![0f32; x.len() * nb];
        out.par_chunks_mut(nb).enumerate().for_each(|(i, o)| {
            let px = rows.row(i);
            let mut counts = vec![0u32; nb];
            for j in 0..plane {
                let h = hue(px[j], px[plane + j], px[2 * plane + j]) * 255.0;
                let mut b = (h / 255.0 * nb as f64) as usize;
                // np.histogram: edges linspace(0, 255, nb + 1), the last bin closed
                let edges = |k: usize| 255.0 * k as f64 / nb as f64;
                while b > 0 && h < edges(b) {
                    b -= 1;
                }
                while b + 1 < nb && h >= edges(b + 1) {
                    b += 1;
                }
                counts[b.min(nb - 1)] += 1;
            }
            for (o, &c) in o.iter_mut().zip(&counts) {
                *o = (f64::from(c) / plane as f64) as f32;
            }
        });
        Ok(x.with_features(out, nb)?)
    }
}

/// matplotlib's `rgb_to_hsv` hue in `[0, 1)` of one pixel.
pub(crate) fn hue(r: u8, g: u8, b: u8) -> f64 {
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
