//! Hold-out validation, k-fold cross-validation and grid search over any [`Fit`].
//!
//! Nothing here knows a concrete classifier. Folds run in parallel (rayon) and their results
//! are gathered in fold order, so scores, the chosen grid point and any reported error are the
//! same whatever the thread count.
//!
//! ```text
//! mean = (1/F) Σ_f a_f        std = sqrt((1/F) Σ_f (a_f − mean)²)   (population std, ddof = 0,
//!                                                                    as numpy.std and scikit-learn's
//!                                                                    GridSearchCV report)
//! ```
//!
//! ```
//! use imgclass_eval::CvScores;
//! let s = CvScores::from_folds(vec![0.2, 0.4, 0.6])?;
//! assert!((s.mean - 0.4).abs() < 1e-12);
//! assert!((s.std - (0.08f64 / 3.0).sqrt()).abs() < 1e-12); // (0.04 + 0 + 0.04) / 3
//! # Ok::<(), imgclass_eval::EvalError>(())
//! ```

use std::time::Instant;

use imgclass_core::{Fit, Predict, Subset};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::{ConfusionMatrix, EvalError, Fold, SCHEMA_VERSION, accuracy, stratified_kfold};

/// Per-fold accuracies with their mean and (population) standard deviation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CvScores {
    /// Accuracy on each fold's validation side, in fold order.
    pub per_fold: Vec<f64>,
    /// Mean of `per_fold`.
    pub mean: f64,
    /// Population standard deviation of `per_fold` (ddof = 0).
    pub std: f64,
}

impl CvScores {
    /// Scores from per-fold accuracies. Errors with [`EvalError::Empty`] when there are none.
    pub fn from_folds(per_fold: Vec<f64>) -> Result<Self, EvalError> {
        if per_fold.is_empty() {
            return Err(EvalError::Empty { what: "fold list" });
        }
        let n = per_fold.len() as f64;
        let mean = per_fold.iter().sum::<f64>() / n;
        let var = per_fold.iter().map(|a| (a - mean) * (a - mean)).sum::<f64>() / n;
        Ok(Self { per_fold, mean, std: var.sqrt() })
    }
}

/// The outcome of one hold-out evaluation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Holdout {
    /// Accuracy on the validation rows.
    pub accuracy: f64,
    /// Confusion matrix on the validation rows.
    pub confusion: ConfusionMatrix,
    /// Seconds spent fitting.
    pub fit_seconds: f64,
    /// Seconds spent predicting.
    pub predict_seconds: f64,
}

/// One fold's accuracy and timings.
struct FoldOutcome {
    accuracy: f64,
    fit_seconds: f64,
    predict_seconds: f64,
}

fn run_fold<P: Fit>(
    params: &P,
    train: &Subset,
    validation: &Subset,
    fold: usize,
) -> Result<(FoldOutcome, Vec<imgclass_core::Label>), EvalError> {
    let t0 = Instant::now();
    let model = params.fit(train).map_err(|e| EvalError::Fit { fold, source: Box::new(e) })?;
    let fit_seconds = t0.elapsed().as_secs_f64();
    let t1 = Instant::now();
    let pred =
        model.predict(validation).map_err(|e| EvalError::Predict { fold, source: Box::new(e) })?;
    let predict_seconds = t1.elapsed().as_secs_f64();
    let accuracy = accuracy(&validation.labels(), &pred)?;
    tracing::debug!(fold, accuracy, fit_seconds, predict_seconds, "fold scored");
    Ok((FoldOutcome { accuracy, fit_seconds, predict_seconds }, pred))
}

/// Fits `params` on `train`, predicts `validation` and scores it.
pub fn holdout<P: Fit>(
    params: &P,
    train: &Subset,
    validation: &Subset,
) -> Result<Holdout, EvalError> {
    let (o, pred) = run_fold(params, train, validation, 0)?;
    let confusion = ConfusionMatrix::new(&validation.labels(), &pred, validation.n_classes())?;
    Ok(Holdout {
        accuracy: o.accuracy,
        confusion,
        fit_seconds: o.fit_seconds,
        predict_seconds: o.predict_seconds,
    })
}

fn check_folds(data: &Subset, folds: &[Fold]) -> Result<(), EvalError> {
    if folds.is_empty() {
        return Err(EvalError::Empty { what: "fold list" });
    }
    for (i, f) in folds.iter().enumerate() {
        crate::check_fold(f, data.len(), i)?;
    }
    Ok(())
}

/// Cross-validates `params` on `data` over the given folds (positions into `data`): fits on
/// each fold's training side, scores its validation side. Folds run in parallel.
pub fn cross_validate<P: Fit + Sync>(
    params: &P,
    data: &Subset,
    folds: &[Fold],
) -> Result<CvScores, EvalError> {
    check_folds(data, folds)?;
    let outcomes: Vec<Result<FoldOutcome, EvalError>> = folds
        .par_iter()
        .enumerate()
        .map(|(i, f)| {
            let (train, val) = f.apply(data)?;
            run_fold(params, &train, &val, i).map(|(o, _)| o)
        })
        .collect();
    let per_fold = outcomes.into_iter().map(|o| o.map(|o| o.accuracy)).collect::<Result<_, _>>()?;
    CvScores::from_folds(per_fold)
}

/// [`cross_validate`] over `k` stratified folds of `data` drawn with `seed`
/// (see [`stratified_kfold`]).
pub fn cross_validate_k<P: Fit + Sync>(
    params: &P,
    data: &Subset,
    k: usize,
    seed: u64,
) -> Result<CvScores, EvalError> {
    let folds = stratified_kfold(&data.labels(), k, seed)?;
    cross_validate(params, data, &folds)
}

/// One grid point's cross-validation result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GridPoint {
    /// The parameters, as described by the caller's label function.
    pub params: String,
    /// Per-fold accuracies, mean and std.
    pub scores: CvScores,
    /// Seconds spent fitting, summed over folds.
    pub fit_seconds: f64,
    /// Seconds spent predicting, summed over folds.
    pub predict_seconds: f64,
}

/// The result of a grid search: one [`GridPoint`] per parameter value, in grid order, and
/// the best one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GridResult {
    /// Version of this JSON layout ([`SCHEMA_VERSION`]).
    pub schema_version: u32,
    /// One entry per grid value, in grid order.
    pub points: Vec<GridPoint>,
    /// Index into `points` of the highest mean accuracy (the first one on ties).
    pub best: usize,
    /// Number of folds.
    pub n_folds: usize,
    /// Wall-clock seconds for the whole search.
    pub wall_seconds: f64,
}

impl GridResult {
    /// The best grid point.
    pub fn best_point(&self) -> &GridPoint {
        &self.points[self.best]
    }

    /// Pretty-printed JSON.
    pub fn to_json(&self) -> Result<String, EvalError> {
        Ok(serde_json::to_string_pretty(self)?)
    }

    /// Reads JSON written by [`GridResult::to_json`], checking the schema version.
    pub fn from_json(text: &str) -> Result<Self, EvalError> {
        let r: Self = serde_json::from_str(text)?;
        crate::check_schema(r.schema_version)?;
        Ok(r)
    }
}

/// Index of the highest mean (the first on ties); `None` when empty or all means are NaN.
pub(crate) fn argmax_mean<'a>(means: impl IntoIterator<Item = &'a CvScores>) -> Option<usize> {
    let mut best: Option<(usize, f64)> = None;
    for (i, s) in means.into_iter().enumerate() {
        if s.mean.is_nan() {
            continue;
        }
        if best.is_none_or(|(_, m)| s.mean > m) {
            best = Some((i, s.mean));
        }
    }
    best.map(|(i, _)| i)
}

/// Cross-validates every value of `grid` on the same folds and picks the best mean accuracy
/// (the first in grid order on ties). `label` describes a grid value for the result (e.g.
/// `|p| format!("{p:?}")`). All (value, fold) pairs run in parallel; results are gathered in
/// order, so the outcome does not depend on scheduling.
pub fn grid_search<P: Fit + Sync>(
    grid: &[P],
    data: &Subset,
    folds: &[Fold],
    label: impl Fn(&P) -> String,
) -> Result<GridResult, EvalError> {
    if grid.is_empty() {
        return Err(EvalError::Empty { what: "parameter grid" });
    }
    check_folds(data, folds)?;
    let start = Instant::now();
    let views: Vec<(Subset, Subset)> =
        folds.iter().map(|f| f.apply(data)).collect::<Result<_, _>>()?;
    let n_folds = folds.len();
    let outcomes: Vec<Result<FoldOutcome, EvalError>> = (0..grid.len() * n_folds)
        .into_par_iter()
        .map(|task| {
            let (p, f) = (task / n_folds, task % n_folds);
            let (train, val) = &views[f];
            run_fold(&grid[p], train, val, f).map(|(o, _)| o)
        })
        .collect();
    let mut outcomes = outcomes.into_iter();
    let mut points = Vec::with_capacity(grid.len());
    for p in grid {
        let mut per_fold = Vec::with_capacity(n_folds);
        let (mut fit_seconds, mut predict_seconds) = (0.0, 0.0);
        for o in outcomes.by_ref().take(n_folds) {
            let o = o?;
            per_fold.push(o.accuracy);
            fit_seconds += o.fit_seconds;
            predict_seconds += o.predict_seconds;
        }
        let scores = CvScores::from_folds(per_fold)?;
        tracing::debug!(params = %label(p), mean = scores.mean, std = scores.std, "grid point");
        points.push(GridPoint { params: label(p), scores, fit_seconds, predict_seconds });
    }
    let best = argmax_mean(points.iter().map(|p| &p.scores))
        .ok_or(EvalError::Empty { what: "set of finite scores" })?;
    Ok(GridResult {
        schema_version: SCHEMA_VERSION,
        points,
        best,
        n_folds,
        wall_seconds: start.elapsed().as_secs_f64(),
    })
}

/// One cell of a [`holdout_grid_search`]: the validation accuracy, or why the fit failed
/// (a failure the caller chose to tolerate, e.g. divergence), and the timings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HoldoutPoint {
    /// Validation accuracy; `None` when the fit failed.
    pub accuracy: Option<f64>,
    /// The tolerated fit error's message, when it failed.
    pub failure: Option<String>,
    /// Seconds spent fitting.
    pub fit_seconds: f64,
    /// Seconds spent predicting (0 when the fit failed).
    pub predict_seconds: f64,
}

/// The result of a [`holdout_grid_search`]: one [`HoldoutPoint`] per grid value, in grid order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HoldoutGrid {
    /// One entry per grid value, in grid order.
    pub points: Vec<HoldoutPoint>,
    /// Index of the highest validation accuracy (the first on ties); `None` when every fit
    /// failed.
    pub best: Option<usize>,
}

/// Hold-out grid search: fits every value of `grid` on `train` in grid order (one at a time,
/// so a fit may use every core) and scores it on `validation`; picks the highest accuracy,
/// the first in grid order on ties. A fit error for which `tolerate` is true is recorded in
/// its cell (the search goes on); any other error ends the search. `on_point` sees each
/// cell as soon as it is scored (progress display, logging).
pub fn holdout_grid_search<P: Fit>(
    grid: &[P],
    train: &Subset,
    validation: &Subset,
    tolerate: impl Fn(&P::Error) -> bool,
    mut on_point: impl FnMut(usize, &HoldoutPoint),
) -> Result<HoldoutGrid, EvalError> {
    if grid.is_empty() {
        return Err(EvalError::Empty { what: "parameter grid" });
    }
    let truth = validation.labels();
    let mut points = Vec::with_capacity(grid.len());
    let mut best: Option<(usize, f64)> = None;
    for (i, params) in grid.iter().enumerate() {
        let point = holdout_point(params, train, validation, &truth, &tolerate)?;
        if let Some(acc) = point.accuracy
            && best.is_none_or(|(_, b)| acc > b)
        {
            best = Some((i, acc));
        }
        on_point(i, &point);
        points.push(point);
    }
    Ok(HoldoutGrid { points, best: best.map(|(i, _)| i) })
}

/// Fits `params` on `train` and scores it on `validation` (whose labels are `truth`); a fit
/// error for which `tolerate` is true becomes a failed cell.
pub(crate) fn holdout_point<P: Fit>(
    params: &P,
    train: &Subset,
    validation: &Subset,
    truth: &[imgclass_core::Label],
    tolerate: impl Fn(&P::Error) -> bool,
) -> Result<HoldoutPoint, EvalError> {
    let t0 = Instant::now();
    let fitted = params.fit(train);
    let fit_seconds = t0.elapsed().as_secs_f64();
    Ok(match fitted {
        Ok(model) => {
            let t1 = Instant::now();
            let pred = model
                .predict(validation)
                .map_err(|e| EvalError::Predict { fold: 0, source: Box::new(e) })?;
            HoldoutPoint {
                accuracy: Some(accuracy(truth, &pred)?),
                failure: None,
                fit_seconds,
                predict_seconds: t1.elapsed().as_secs_f64(),
            }
        }
        Err(e) if tolerate(&e) => HoldoutPoint {
            accuracy: None,
            failure: Some(e.to_string()),
            fit_seconds,
            predict_seconds: 0.0,
        },
        Err(e) => return Err(EvalError::Fit { fold: 0, source: Box::new(e) }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_mean_and_population_std() {
        // per-fold 0.5, 0.7, 0.9, 0.7: mean 0.7, squared deviations .04 0 .04 0 -> var .02
        let s = CvScores::from_folds(vec![0.5, 0.7, 0.9, 0.7]).expect("non-empty");
        assert!((s.mean - 0.7).abs() < 1e-12);
        assert!((s.std - 0.02f64.sqrt()).abs() < 1e-12);
        assert!(matches!(CvScores::from_folds(vec![]), Err(EvalError::Empty { .. })));
    }

    #[test]
    fn argmax_takes_first_of_ties_and_skips_nan() {
        let s = |m: f64| CvScores { per_fold: vec![m], mean: m, std: 0.0 };
        let v = [s(0.1), s(f64::NAN), s(0.3), s(0.3), s(0.2)];
        assert_eq!(argmax_mean(v.iter()), Some(2));
        assert_eq!(argmax_mean([s(f64::NAN)].iter()), None);
    }
}
