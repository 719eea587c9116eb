//! A hold-out grid search that refines itself: when the best validation score sits on the
//! edge of a log-spaced axis, the axis is extended in that direction by the grid's own ratio
//! (at most [`Refine::max_extensions`] times per side), and then the best cell's neighbours
//! are bisected (geometric midpoints) once per axis. The grid a user writes is a starting
//! point, not a fence: the chosen cell is never on an edge unless a stated bound was hit.
//!
//! ```text
//! evaluate the grid (every combination of the axes' values)
//! while the best is the smallest (largest) value of a refinable axis and that side has been
//!       extended fewer than max_extensions times:
//!     evaluate  value / r  (value · r)  with the other coordinates of the best,
//!     r = the axis's ratio (its second-smallest value / its smallest)
//! refine: for each refinable axis, evaluate  sqrt(best · neighbour)  for both neighbours
//! ```
//!
//! Ties go to the first cell evaluated, so the search is deterministic for deterministic fits.
//!
//! ```
//! use imgclass_core::{ClassNames, Dataset, Fit, Label, Predict, Subset};
//! use imgclass_eval::{Axis, Refine, refining_grid_search};
//!
//! // a threshold classifier whose accuracy peaks at threshold 100: a grid of 1..8 is far
//! // below it, so the search extends upwards by the grid's ratio 2 until it brackets 100
//! #[derive(Clone)]
//! struct Threshold(f64);
//! struct Fitted(f64);
//! impl Fit for Threshold {
//!     type Model = Fitted;
//!     type Error = imgclass_eval::EvalError;
//!     fn fit(&self, _: &Subset) -> Result<Fitted, Self::Error> { Ok(Fitted(self.0)) }
//! }
//! impl Predict for Fitted {
//!     type Error = imgclass_eval::EvalError;
//!     fn n_classes(&self) -> usize { 2 }
//!     fn predict(&self, x: &Subset) -> Result<Vec<Label>, Self::Error> {
//!         let v = x.values();
//!         Ok((0..x.len()).map(|i| Label::from(f64::from(v.row_f32(i)[0]) > self.0)).collect())
//!     }
//! }
//! let pixels: Vec<u8> = (0..200).map(|i| i as u8).collect();
//! let labels: Vec<u32> = pixels.iter().map(|&p| u32::from(p > 100)).collect();
//! let ds = Dataset::new(pixels, labels, imgclass_core::ImageShape::new(1, 1, 1),
//!     ClassNames::new(["lo", "hi"]))?;
//! let axes = [Axis::log("threshold", vec![1.0, 2.0, 4.0, 8.0])];
//! let r = refining_grid_search(&axes, |v| Threshold(v[0]), &ds.all(), &ds.all(),
//!     |_| false, |_, _| {}, Refine { max_extensions: 10, refine: true })?;
//! let best = &r.points[r.best.expect("a best cell")];
//! assert!(best.values[0] > 64.0 && best.values[0] < 128.0);
//! assert!(r.bound_hit.is_empty());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use imgclass_core::{Fit, Subset};
use serde::{Deserialize, Serialize};

use crate::validate::holdout_point;
use crate::{EvalError, HoldoutPoint};

/// One axis of the grid: a named list of values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Axis {
    /// The parameter's name (for reports and the bound message).
    pub name: String,
    /// The starting values (any order; duplicates are evaluated once).
    pub values: Vec<f64>,
    /// Whether the search may extend and bisect this axis (log-spaced positive values such as
    /// a learning rate or a regularisation strength); `false` for sizes such as hidden units.
    pub refinable: bool,
}

impl Axis {
    /// A log-spaced axis the search may extend and refine.
    pub fn log(name: impl Into<String>, values: Vec<f64>) -> Self {
        Self { name: name.into(), values, refinable: true }
    }

    /// An axis searched only at the given values.
    pub fn fixed(name: impl Into<String>, values: Vec<f64>) -> Self {
        Self { name: name.into(), values, refinable: false }
    }
}

/// How far a [`refining_grid_search`] may go beyond the grid (in a config:
/// `{ max_extensions = 3, refine = true }`, every key optional).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Refine {
    /// Most extensions per side of each axis (0: never extend).
    pub max_extensions: usize,
    /// Bisect around the best cell once the extensions are done.
    pub refine: bool,
}

impl Default for Refine {
    /// Three extensions per side, then one refinement.
    fn default() -> Self {
        Self { max_extensions: 3, refine: true }
    }
}

impl Refine {
    /// The plain grid: no extension, no refinement.
    pub const OFF: Self = Self { max_extensions: 0, refine: false };
}

/// Why a cell was evaluated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    /// A cell of the grid as written.
    Grid,
    /// An extension beyond the grid's edge.
    Extended,
    /// A geometric midpoint next to the best cell.
    Refined,
}

/// One evaluated cell.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RefinedPoint {
    /// The parameter values, one per axis, in axis order.
    pub values: Vec<f64>,
    /// Why it was evaluated.
    pub origin: Origin,
    /// Its validation accuracy (or failure) and timings.
    #[serde(flatten)]
    pub point: HoldoutPoint,
}

/// The result of a [`refining_grid_search`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RefinedGrid {
    /// Every evaluated cell, in evaluation order.
    pub points: Vec<RefinedPoint>,
    /// Index into `points` of the highest validation accuracy (the first evaluated on ties);
    /// `None` when every fit failed.
    pub best: Option<usize>,
    /// One message per refinable axis whose best value is still on an edge because the bound
    /// ([`Refine::max_extensions`]) was reached, e.g. "L2 strength: best 1e-6 is the smallest
    /// value after 3 extensions (the bound)".
    pub bound_hit: Vec<String>,
}

impl RefinedGrid {
    /// The sorted distinct values evaluated on axis `a`.
    pub fn axis_values(&self, a: usize) -> Vec<f64> {
        let mut v: Vec<f64> = self.points.iter().map(|p| p.values[a]).collect();
        v.sort_by(f64::total_cmp);
        v.dedup();
        v
    }
}

/// Hold-out search over the grid of `axes` (every combination, axis 0 major), extended and
/// refined as the module docs say. `make` builds the parameters of a cell from its values
/// (one per axis); `tolerate` and `on_point` are as in
/// [`holdout_grid_search`](crate::holdout_grid_search) (`on_point` also gets the cell's
/// values and origin).
///
/// Errors: [`EvalError::Empty`] when there is no axis or an axis has no value,
/// [`EvalError::InvalidGrid`] when a refinable axis holds a value that is not positive and
/// finite (a ratio needs one); otherwise as [`holdout_grid_search`](crate::holdout_grid_search).
pub fn refining_grid_search<P: Fit>(
    axes: &[Axis],
    make: impl Fn(&[f64]) -> P,
    train: &Subset,
    validation: &Subset,
    tolerate: impl Fn(&P::Error) -> bool,
    mut on_point: impl FnMut(&RefinedPoint, usize),
    refine: Refine,
) -> Result<RefinedGrid, EvalError> {
    if axes.is_empty() || axes.iter().any(|a| a.values.is_empty()) {
        return Err(EvalError::Empty { what: "parameter grid" });
    }
    for a in axes.iter().filter(|a| a.refinable) {
        if let Some(&v) = a.values.iter().find(|v| !(v.is_finite() && **v > 0.0)) {
            return Err(EvalError::InvalidGrid {
                axis: a.name.clone(),
                reason: format!("{v} is not positive and finite (a log-spaced axis needs both)"),
            });
        }
    }
    let truth = validation.labels();
    let mut points: Vec<RefinedPoint> = Vec::new();
    let mut eval = |values: Vec<f64>, origin: Origin, points: &mut Vec<RefinedPoint>| {
        if points.iter().any(|p| p.values == values) {
            return Ok(());
        }
        let point = holdout_point(&make(&values), train, validation, &truth, &tolerate)?;
        let p = RefinedPoint { values, origin, point };
        on_point(&p, points.len());
        points.push(p);
        Ok::<(), EvalError>(())
    };
    // the grid as written, axis 0 major
    let dims: Vec<Vec<f64>> = axes.iter().map(|a| dedup_sorted_keep_order(&a.values)).collect();
    let total: usize = dims.iter().map(Vec::len).product();
    for flat in 0..total {
        let mut rem = flat;
        let mut values = vec![0.0; dims.len()];
        for (a, d) in dims.iter().enumerate().rev() {
            values[a] = d[rem % d.len()];
            rem /= d.len();
        }
        eval(values, Origin::Grid, &mut points)?;
    }
    // extend while the best is on an edge
    let mut extended = vec![[0usize; 2]; axes.len()];
    while let Some(b) = best(&points) {
        let mut grew = false;
        for (a, axis) in axes.iter().enumerate() {
            if !axis.refinable || dims[a].len() < 2 {
                continue;
            }
            let vals = axis_values(&points, a);
            let ratio = vals[1] / vals[0];
            let v = points[b].values[a];
            for (side, edge, next) in
                [(0, vals[0], v / ratio), (1, vals[vals.len() - 1], v * ratio)]
            {
                if v == edge && extended[a][side] < refine.max_extensions {
                    extended[a][side] += 1;
                    let mut values = points[b].values.clone();
                    values[a] = next;
                    eval(values, Origin::Extended, &mut points)?;
                    grew = true;
                }
            }
            if grew {
                break; // re-evaluate the best before extending another axis
            }
        }
        if !grew {
            break;
        }
    }
    // refine: geometric midpoints next to the best, once per axis
    if refine.refine {
        for (a, axis) in axes.iter().enumerate() {
            let Some(b) = best(&points) else { break };
            if !axis.refinable {
                continue;
            }
            let vals = axis_values(&points, a);
            let v = points[b].values[a];
            let i = vals.iter().position(|&x| x == v).unwrap_or(0);
            let mut mids = Vec::new();
            if i > 0 {
                mids.push((vals[i - 1] * v).sqrt());
            }
            if i + 1 < vals.len() {
                mids.push((vals[i + 1] * v).sqrt());
            }
            for m in mids {
                let mut values = points[b].values.clone();
                values[a] = m;
                eval(values, Origin::Refined, &mut points)?;
            }
        }
    }
    let best_i = best(&points);
    let mut bound_hit = Vec::new();
    if let Some(b) = best_i {
        for (a, axis) in axes.iter().enumerate() {
            if !axis.refinable || dims[a].len() < 2 {
                continue;
            }
            let vals = axis_values(&points, a);
            let v = points[b].values[a];
            for (side, edge, word) in
                [(0, vals[0], "smallest"), (1, vals[vals.len() - 1], "largest")]
            {
                if v == edge {
                    bound_hit.push(format!(
                        "{}: best {v:e} is the {word} value after {} extensions (the bound)",
                        axis.name, extended[a][side]
                    ));
                }
            }
        }
    }
    Ok(RefinedGrid { points, best: best_i, bound_hit })
}

/// The first cell with the highest accuracy.
fn best(points: &[RefinedPoint]) -> Option<usize> {
    let mut best: Option<(usize, f64)> = None;
    for (i, p) in points.iter().enumerate() {
        if let Some(acc) = p.point.accuracy
            && best.is_none_or(|(_, b)| acc > b)
        {
            best = Some((i, acc));
        }
    }
    best.map(|(i, _)| i)
}

/// Sorted distinct values of axis `a` among the evaluated cells.
fn axis_values(points: &[RefinedPoint], a: usize) -> Vec<f64> {
    let mut v: Vec<f64> = points.iter().map(|p| p.values[a]).collect();
    v.sort_by(f64::total_cmp);
    v.dedup();
    v
}

/// `values` without repeats, first occurrence kept, order kept.
fn dedup_sorted_keep_order(values: &[f64]) -> Vec<f64> {
    let mut out: Vec<f64> = Vec::with_capacity(values.len());
    for &v in values {
        if !out.contains(&v) {
            out.push(v);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use imgclass_core::{ClassNames, Dataset, Label, Predict};

    /// Predicts class 1 with "probability" given by a smooth score peaked at `peak` on every
    /// axis: accuracy is a known unimodal function of the parameters, so the search's answer
    /// can be checked against a brute-force scan.
    #[derive(Clone)]
    struct Peaked {
        values: Vec<f64>,
        peak: Vec<f64>,
    }
    struct Model(usize);
    #[derive(Debug, thiserror::Error)]
    #[error("diverged")]
    struct Diverged;
    impl Fit for Peaked {
        type Model = Model;
        type Error = Diverged;
        fn fit(&self, _: &Subset) -> Result<Model, Diverged> {
            if self.values[0] > 1e6 {
                return Err(Diverged);
            }
            // distance in log space from the peak -> number of correct rows out of 100
            let d: f64 =
                self.values.iter().zip(&self.peak).map(|(v, p)| (v.ln() - p.ln()).abs()).sum();
            Ok(Model(100 - (d * 10.0).round().min(100.0) as usize))
        }
    }
    impl Predict for Model {
        type Error = EvalError;
        fn n_classes(&self) -> usize {
            2
        }
        fn predict(&self, x: &Subset) -> Result<Vec<Label>, Self::Error> {
            Ok((0..x.len()).map(|i| u32::from(i < self.0)).collect())
        }
    }

    fn data() -> Dataset {
        // 100 rows, all of class 1: a model that gets n rows right scores n / 100
        Dataset::new(
            vec![0; 100],
            vec![1; 100],
            imgclass_core::ImageShape::new(1, 1, 1),
            ClassNames::new(["a", "b"]),
        )
        .expect("dataset")
    }

    fn search(axes: &[Axis], peak: &[f64], refine: Refine) -> RefinedGrid {
        let ds = data();
        let peak = peak.to_vec();
        refining_grid_search(
            axes,
            |v| Peaked { values: v.to_vec(), peak: peak.clone() },
            &ds.all(),
            &ds.all(),
            |_: &Diverged| true,
            |_, _| {},
            refine,
        )
        .expect("search")
    }

    #[test]
    fn an_edge_best_is_extended_until_interior_then_refined() {
        // peak at lr 1e-3, reg 30: the grid [1e-6, 1e-5] x [1, 10] has its best in a corner
        let axes = [Axis::log("lr", vec![1e-6, 1e-5]), Axis::log("reg", vec![1.0, 10.0])];
        let r = search(&axes, &[1e-3, 30.0], Refine { max_extensions: 5, refine: true });
        let b = &r.points[r.best.expect("best")];
        // the brute-force answer on the extended lattice: lr 1e-3 exactly, reg between 10
        // and 100 (refined to sqrt(10 * 100) = 31.6, nearest 30 in log space)
        assert!((b.values[0] / 1e-3 - 1.0).abs() < 1e-9, "{:?}", b.values);
        assert!((b.values[1] / 1000f64.sqrt() - 1.0).abs() < 1e-9, "{:?}", b.values);
        assert!(r.bound_hit.is_empty(), "{:?}", r.bound_hit);
        assert!(r.points.iter().any(|p| p.origin == Origin::Extended));
        assert!(r.points.iter().any(|p| p.origin == Origin::Refined));
        // the grid cells come first, axis 0 major
        let grid: Vec<_> = r.points.iter().take(4).map(|p| p.values.clone()).collect();
        assert_eq!(grid, [[1e-6, 1.0], [1e-6, 10.0], [1e-5, 1.0], [1e-5, 10.0]]);
        // never evaluated twice
        for (i, p) in r.points.iter().enumerate() {
            assert!(r.points[..i].iter().all(|q| q.values != p.values));
        }
    }

    #[test]
    fn the_bound_is_stated_when_reached() {
        let axes = [Axis::log("reg", vec![1.0, 2.0])];
        let r = search(&axes, &[100.0], Refine { max_extensions: 2, refine: true });
        let b = &r.points[r.best.expect("best")];
        assert_eq!(b.values, [8.0]); // 2 * 2 * 2
        assert_eq!(r.bound_hit.len(), 1);
        assert!(r.bound_hit[0].contains("reg") && r.bound_hit[0].contains("largest"));
        assert!(r.bound_hit[0].contains("2 extensions"), "{}", r.bound_hit[0]);
    }

    #[test]
    fn off_is_the_plain_grid_and_fixed_axes_never_move() {
        let axes = [Axis::fixed("hidden", vec![10.0, 20.0]), Axis::log("lr", vec![1.0, 10.0])];
        let r = search(&axes, &[1000.0, 1000.0], Refine::OFF);
        assert_eq!(r.points.len(), 4);
        assert!(r.points.iter().all(|p| p.origin == Origin::Grid));
        // the lr edge is reported as a bound (0 extensions), the fixed axis is not
        assert_eq!(r.bound_hit.len(), 1, "{:?}", r.bound_hit);
        assert!(r.bound_hit[0].starts_with("lr"));
        let r = search(&axes, &[1000.0, 1000.0], Refine::default());
        assert!(r.points.iter().all(|p| p.values[0] == 10.0 || p.values[0] == 20.0));
    }

    #[test]
    fn failures_are_cells_and_bad_axes_are_errors() {
        // extending lr upwards reaches 1e7, which "diverges": recorded, not fatal
        let axes = [Axis::log("lr", vec![1e4, 1e5])];
        let r = search(&axes, &[1e9], Refine { max_extensions: 3, refine: false });
        assert!(r.points.iter().any(|p| p.point.failure.as_deref() == Some("diverged")));
        assert_eq!(r.points[r.best.expect("best")].values, [1e6]);
        let ds = data();
        for bad in [vec![], vec![0.0, 1.0], vec![f64::NAN]] {
            let axes = [Axis::log("lr", bad.clone())];
            let e = refining_grid_search(
                &axes,
                |v| Peaked { values: v.to_vec(), peak: vec![1.0] },
                &ds.all(),
                &ds.all(),
                |_: &Diverged| false,
                |_, _| {},
                Refine::default(),
            );
            assert!(e.is_err(), "{bad:?}");
        }
    }
}
