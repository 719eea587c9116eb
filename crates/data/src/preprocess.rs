//! Preprocessing for classifiers that need floats: the mean row, and conversion of rows (u8
//! pixels or f32 features) to centred, scaled `f32` rows.
//!
//! ```text
//! mean[j] = (1 / n) Σ_i x[i][j]                 (per feature j, summed exactly in integers)
//! out[i][j] = (x[i][j] - mean[j]) * scale       (mean[j] = 0 when no mean is given)
//! ```
//!
//! ```
//! use imgclass_core::{ClassNames, Dataset, ImageShape};
//! use imgclass_data::preprocess::{mean_image, to_f32};
//!
//! // two 1x1x2 images: (1, 10) and (3, 20)
//! let ds = Dataset::new(vec![1, 10, 3, 20], vec![0, 0], ImageShape::new(1, 1, 2),
//!     ClassNames::new(["a"]))?;
//! let mean = mean_image(&ds.all());
//! assert_eq!(mean, vec![2.0, 15.0]);
//! let x = to_f32(&ds.all(), Some(&mean), 0.5);
//! assert_eq!(x, vec![-0.5, -2.5, 0.5, 2.5]);
//! # Ok::<(), imgclass_core::DatasetError>(())
//! ```

use imgclass_core::{Element, Rows, Subset, Values};
use rayon::prelude::*;

/// Rows summed per parallel task (u32 partial sums cannot overflow: 4096 * 255 < 2^32).
const SUM_ROWS: usize = 4096;
/// Rows converted per parallel task.
const CONVERT_ROWS: usize = 256;

/// The per-feature mean of the rows of `x` (`x.dim()` values). Sums are exact (u32 partial
/// sums per block of rows, then u64), so the result does not depend on the thread count.
/// An empty subset gives all zeros.
pub fn mean_image(x: &Subset) -> Vec<f32> {
    let d = x.dim();
    let n = x.len();
    if n == 0 {
        return vec![0.0; d];
    }
    let indices = x.indices();
    let data = match x.dataset().values() {
        Values::Pixels(rows) => rows,
        Values::Features(_) => {
            // f64 sums in row order (deterministic)
            let view = x.values();
            return view.column_means().into_iter().map(|s| s as f32).collect();
        }
    };
    let total = indices
        .par_chunks(SUM_ROWS)
        .map(|block| {
            let mut acc = vec![0u32; d];
            for &i in block {
                for (a, &p) in acc.iter_mut().zip(data.row(i)) {
                    *a += u32::from(p);
                }
            }
            acc
        })
        .fold(
            || vec![0u64; d],
            |mut sum, part| {
                for (s, p) in sum.iter_mut().zip(part) {
                    *s += u64::from(p);
                }
                sum
            },
        )
        .reduce(
            || vec![0u64; d],
            |mut a, b| {
                for (x, y) in a.iter_mut().zip(b) {
                    *x += y;
                }
                a
            },
        );
    total.into_iter().map(|s| (s as f64 / n as f64) as f32).collect()
}

/// The rows of `x` as `f32`, row-major (`x.len() * x.dim()` values): `(pixel - mean) * scale`,
/// or `pixel * scale` when `mean` is `None`.
///
/// # Panics
/// When `mean` is given and its length is not `x.dim()` (a programming error: the mean comes
/// from [`mean_image`] of data of the same shape).
pub fn to_f32(x: &Subset, mean: Option<&[f32]>, scale: f32) -> Vec<f32> {
    let d = x.dim();
    if let Some(m) = mean {
        assert_eq!(m.len(), d, "mean has {} values, rows have {d}", m.len());
    }
    let mut out = vec![0f32; x.len() * d];
    if d == 0 {
        return out;
    }
    match x.dataset().values() {
        Values::Pixels(rows) => convert(rows, x.indices(), mean, scale, d, &mut out),
        Values::Features(rows) => convert(rows, x.indices(), mean, scale, d, &mut out),
    }
    out
}

fn convert<T: Element>(
    data: Rows<'_, T>,
    indices: &[usize],
    mean: Option<&[f32]>,
    scale: f32,
    d: usize,
    out: &mut [f32],
) {
    out.par_chunks_mut(CONVERT_ROWS * d).zip(indices.par_chunks(CONVERT_ROWS)).for_each(
        |(block, rows)| {
            for (o, &i) in block.chunks_exact_mut(d).zip(rows) {
                let row = data.row(i);
                match mean {
                    Some(m) => {
                        for ((o, &p), &mu) in o.iter_mut().zip(row).zip(m) {
                            *o = (p.to_f32() - mu) * scale;
                        }
                    }
                    None => {
                        for (o, &p) in o.iter_mut().zip(row) {
                            *o = p.to_f32() * scale;
                        }
                    }
                }
            }
        },
    );
}
