//! [`CvCurve`]: cross-validation accuracy against a hyperparameter `k`, one series per
//! variant (e.g. per distance metric): "metric name -> k -> per-fold accuracies". The fast
//! k-NN cross-validation writes it and the report plots it.
//!
//! ```
//! use imgclass_eval::CvSeries;
//! // two folds, three values of k; fold-major input, as a CV loop produces it
//! let s = CvSeries::from_fold_major("L1", &[1, 3, 5], &[vec![0.5, 0.7, 0.6], vec![0.7, 0.7, 0.4]])?;
//! assert_eq!(s.points[1].scores.per_fold, vec![0.7, 0.7]);
//! assert_eq!(s.best().map(|p| p.k), Some(3)); // means 0.6, 0.7, 0.5
//! # Ok::<(), imgclass_eval::EvalError>(())
//! ```

use serde::{Deserialize, Serialize};

use crate::{CvScores, EvalError, SCHEMA_VERSION, validate::argmax_mean};

/// The scores of one value of `k`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CvPoint {
    /// The hyperparameter value.
    pub k: usize,
    /// Per-fold accuracies, mean and std.
    pub scores: CvScores,
}

/// One variant's curve (e.g. one distance metric), with the chosen `k` and, once the test set
/// has been touched, the chosen model's test accuracy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CvSeries {
    /// The variant's name (e.g. `"L1"`).
    pub name: String,
    /// One point per `k`, in grid order.
    pub points: Vec<CvPoint>,
    /// The chosen `k` (see [`CvSeries::best`]), if chosen.
    pub chosen_k: Option<usize>,
    /// Test accuracy of the chosen `k`, if measured.
    pub test_accuracy: Option<f64>,
}

impl CvSeries {
    /// A series from per-`k` lists of per-fold accuracies (`per_k[i]` belongs to `ks[i]`).
    /// Sets `chosen_k` to [`CvSeries::best`].
    ///
    /// Errors: [`EvalError::LengthMismatch`] when `ks` and `per_k` differ in length or the
    /// fold counts differ; [`EvalError::Empty`] when there are no `k` or no folds.
    pub fn new(
        name: impl Into<String>,
        ks: &[usize],
        per_k: Vec<Vec<f64>>,
    ) -> Result<Self, EvalError> {
        if ks.len() != per_k.len() {
            return Err(EvalError::LengthMismatch { truth: ks.len(), pred: per_k.len() });
        }
        if ks.is_empty() {
            return Err(EvalError::Empty { what: "list of k" });
        }
        let n_folds = per_k[0].len();
        let mut points = Vec::with_capacity(ks.len());
        for (&k, folds) in ks.iter().zip(per_k) {
            if folds.len() != n_folds {
                return Err(EvalError::LengthMismatch { truth: n_folds, pred: folds.len() });
            }
            points.push(CvPoint { k, scores: CvScores::from_folds(folds)? });
        }
        let mut s = Self { name: name.into(), points, chosen_k: None, test_accuracy: None };
        s.chosen_k = s.best().map(|p| p.k);
        Ok(s)
    }

    /// A series from fold-major accuracies: `per_fold[f][i]` is fold `f`'s accuracy at `ks[i]`.
    pub fn from_fold_major(
        name: impl Into<String>,
        ks: &[usize],
        per_fold: &[Vec<f64>],
    ) -> Result<Self, EvalError> {
        let mut per_k = vec![Vec::with_capacity(per_fold.len()); ks.len()];
        for fold in per_fold {
            if fold.len() != ks.len() {
                return Err(EvalError::LengthMismatch { truth: ks.len(), pred: fold.len() });
            }
            for (i, &a) in fold.iter().enumerate() {
                per_k[i].push(a);
            }
        }
        Self::new(name, ks, per_k)
    }

    /// The point with the highest mean accuracy; on ties the first in grid order (with the
    /// grid sorted ascending, the smallest `k`).
    pub fn best(&self) -> Option<&CvPoint> {
        argmax_mean(self.points.iter().map(|p| &p.scores)).map(|i| &self.points[i])
    }

    /// The point for the chosen `k`, if any.
    pub fn chosen(&self) -> Option<&CvPoint> {
        let k = self.chosen_k?;
        self.points.iter().find(|p| p.k == k)
    }
}

/// Accuracy against `k` for several variants, with a schema version for the JSON file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CvCurve {
    /// Version of this JSON layout ([`SCHEMA_VERSION`]).
    pub schema_version: u32,
    /// What the x axis is (e.g. `"k"`).
    pub x_label: String,
    /// One series per variant.
    pub series: Vec<CvSeries>,
}

impl CvCurve {
    /// A curve over `x_label` holding `series`.
    pub fn new(x_label: impl Into<String>, series: Vec<CvSeries>) -> Self {
        Self { schema_version: SCHEMA_VERSION, x_label: x_label.into(), series }
    }

    /// Pretty-printed JSON.
    pub fn to_json(&self) -> Result<String, EvalError> {
        Ok(serde_json::to_string_pretty(self)?)
    }

    /// Reads JSON written by [`CvCurve::to_json`], checking the schema version.
    pub fn from_json(text: &str) -> Result<Self, EvalError> {
        let c: Self = serde_json::from_str(text)?;
        crate::check_schema(c.schema_version)?;
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_shape_errors_and_json_round_trip() {
        assert!(matches!(
            CvSeries::new("x", &[1, 2], vec![vec![0.5]]),
            Err(EvalError::LengthMismatch { truth: 2, pred: 1 })
        ));
        assert!(matches!(
            CvSeries::new("x", &[1, 2], vec![vec![0.5], vec![0.5, 0.6]]),
            Err(EvalError::LengthMismatch { truth: 1, pred: 2 })
        ));
        // ties on the mean: the first k wins
        let s =
            CvSeries::new("L2", &[1, 3, 5], vec![vec![0.4, 0.6], vec![0.5, 0.5], vec![0.1, 0.2]])
                .expect("valid");
        assert_eq!(s.chosen_k, Some(1));
        assert!(s.chosen().is_some_and(|p| (p.scores.std - 0.1).abs() < 1e-12));
        let c = CvCurve::new("k", vec![s]);
        let text = c.to_json().expect("serialises");
        assert!(text.contains("\"schema_version\": 1"));
        assert_eq!(CvCurve::from_json(&text).expect("reads back"), c);
        let future = text.replace("\"schema_version\": 1", "\"schema_version\": 99");
        assert!(matches!(
            CvCurve::from_json(&future),
            Err(EvalError::SchemaVersion { expected: 1, found: 99 })
        ));
    }
}
