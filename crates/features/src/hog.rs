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
        let mut out = vec![0f32; x.len() * dim];
        out.par_chunks_mut(dim).enumerate().for_each_init(
            || Scratch::new(shape),
            |sc, (i, o)| self.one(rows.row(i), shape, sc, o),
        );
        Ok(x.with_features(out, dim)?)
    }

    fn one(&self, px: &[u8], s: ImageShape, sc: &mut Scratch, out: &mut [f32]) {
        let (h, w) = (s.height, s.width);
        let plane = h * w;
        // grey, in f64 as numpy computes it
        for (j, g) in sc.grey.iter_mut().enumerate() {
            *g = if s.channels == 3 {
                0.299 * f64::from(px[j])
                    + 0.587 * f64::from(px[plane + j])
                    + 0.144 * f64::from(px[2 * plane + j])
            } else {
                f64::from(px[j])
            };
        }
        let (b, cell) = (self.orientations, self.cell);
        let (ncr, ncc) = (h / cell, w / cell);
        sc.acc.clear();
        sc.acc.resize(ncr * ncc * b, 0.0);
        let width = 180.0 / b as f64;
        for r in 0..ncr * cell {
            for c in 0..ncc * cell {
                let g = sc.grey[r * w + c];
                let gx = if c + 1 < w { sc.grey[r * w + c + 1] - g } else { 0.0 };
                let gy = if r + 1 < h { sc.grey[(r + 1) * w + c] - g } else { 0.0 };
                let mag = (gx * gx + gy * gy).sqrt();
                let ori = gy.atan2(gx + 1e-15) * (180.0 / std::f64::consts::PI) + 90.0;
                if !(ori > 0.0 && ori < 180.0) {
                    continue;
                }
                // the course's test is `180/B·i <= θ < 180/B·(i+1)`: find i the same way
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
                sc.acc[(cc * ncr + cr) * b + bin] += mag;
            }
        }
        let area = (cell * cell) as f64;
        for (o, a) in out.iter_mut().zip(sc.acc.iter_mut()) {
            *o = (*a / area) as f32;
            *a = 0.0;
        }
    }
}

struct Scratch {
    grey: Vec<f64>,
    acc: Vec<f64>,
}

impl Scratch {
    fn new(s: ImageShape) -> Self {
        Self { grey: vec![0.0; s.height * s.width], acc: Vec::new() }
    }
}
