//! Classification metrics: accuracy, the confusion matrix, per-class precision, recall and
//! F1, and their macro averages.
//!
//! With `C[t][p]` the number of rows of true class `t` predicted as `p`:
//!
//! ```text
//! accuracy     = Σ_c C[c][c] / Σ_t Σ_p C[t][p]
//! precision_c  = C[c][c] / Σ_t C[t][c]        (0 when class c is never predicted)
//! recall_c     = C[c][c] / Σ_p C[c][p]        (0 when class c never occurs)
//! F1_c         = 2 · precision_c · recall_c / (precision_c + recall_c)   (0 when both are 0)
//! macro_m      = (1 / |K|) Σ_{c ∈ K} m_c      K = classes that occur in truth or prediction
//! ```
//!
//! The zero conventions and the choice of `K` are scikit-learn's (`zero_division=0`,
//! `labels=None`), so the numbers can be compared with `classification_report`.
//!
//! Worked example: truth `[0, 0, 1, 1, 2]`, prediction `[0, 1, 1, 1, 0]`. Class 0 has one hit
//! of two predicted (precision 1/2) and of two true (recall 1/2); class 1 is predicted three
//! times with two hits (precision 2/3, recall 1); class 2 is never hit (0, 0).
//!
//! ```
//! use imgclass_eval::{accuracy, ConfusionMatrix};
//! let truth = [0, 0, 1, 1, 2];
//! let pred = [0, 1, 1, 1, 0];
//! assert_eq!(accuracy(&truth, &pred)?, 0.6);
//! let cm = ConfusionMatrix::new(&truth, &pred, 3)?;
//! assert_eq!(cm.count(0, 1), 1);
//! assert_eq!(cm.precision(1), 2.0 / 3.0);
//! assert_eq!(cm.recall(1), 1.0);
//! assert_eq!(cm.f1(1), 0.8); // 2 * (2/3) * 1 / (2/3 + 1)
//! assert!((cm.macro_f1() - (0.5 + 0.8 + 0.0) / 3.0).abs() < 1e-12);
//! # Ok::<(), imgclass_eval::EvalError>(())
//! ```

use imgclass_core::Label;
use serde::{Deserialize, Serialize};

use crate::EvalError;

/// The fraction of rows where `pred` equals `truth`.
///
/// Errors: [`EvalError::LengthMismatch`] when the lengths differ, [`EvalError::Empty`] when
/// there are no rows.
pub fn accuracy(truth: &[Label], pred: &[Label]) -> Result<f64, EvalError> {
    check_lengths(truth, pred)?;
    let hits = truth.iter().zip(pred).filter(|(t, p)| t == p).count();
    Ok(hits as f64 / truth.len() as f64)
}

fn check_lengths(truth: &[Label], pred: &[Label]) -> Result<(), EvalError> {
    if truth.len() != pred.len() {
        return Err(EvalError::LengthMismatch { truth: truth.len(), pred: pred.len() });
    }
    if truth.is_empty() {
        return Err(EvalError::Empty { what: "label list" });
    }
    Ok(())
}

/// Counts of (true class, predicted class) pairs: row = truth, column = prediction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfusionMatrix {
    n_classes: usize,
    /// Row-major `n_classes x n_classes` counts, `counts[t * n_classes + p]`.
    counts: Vec<u64>,
}

/// Precision, recall, F1 and support of one class.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ClassReport {
    /// The class.
    pub label: Label,
    /// Hits over rows predicted as this class (0 if never predicted).
    pub precision: f64,
    /// Hits over rows of this class (0 if the class never occurs).
    pub recall: f64,
    /// Harmonic mean of precision and recall (0 if both are 0).
    pub f1: f64,
    /// Number of rows whose true class is this one.
    pub support: u64,
}

impl ConfusionMatrix {
    /// Counts the pairs of `truth` and `pred`; labels must be below `n_classes`.
    ///
    /// Errors: [`EvalError::LengthMismatch`], [`EvalError::Empty`] (no rows or no classes),
    /// [`EvalError::LabelOutOfRange`].
    pub fn new(truth: &[Label], pred: &[Label], n_classes: usize) -> Result<Self, EvalError> {
        check_lengths(truth, pred)?;
        if n_classes == 0 {
            return Err(EvalError::Empty { what: "class list" });
        }
        let mut counts = vec![0u64; n_classes * n_classes];
        for (&t, &p) in truth.iter().zip(pred) {
            for label in [t, p] {
                if label as usize >= n_classes {
                    return Err(EvalError::LabelOutOfRange { label, n_classes });
                }
            }
            counts[t as usize * n_classes + p as usize] += 1;
        }
        Ok(Self { n_classes, counts })
    }

    /// Number of classes (rows and columns).
    pub fn n_classes(&self) -> usize {
        self.n_classes
    }

    /// Row-major counts, `counts()[truth * n_classes + pred]`.
    pub fn counts(&self) -> &[u64] {
        &self.counts
    }

    /// Number of rows of true class `truth` predicted as `pred` (0 when out of range).
    pub fn count(&self, truth: Label, pred: Label) -> u64 {
        let (t, p) = (truth as usize, pred as usize);
        if t >= self.n_classes || p >= self.n_classes {
            return 0;
        }
        self.counts[t * self.n_classes + p]
    }

    /// Total number of rows counted.
    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// Number of correctly predicted rows (the diagonal).
    pub fn correct(&self) -> u64 {
        (0..self.n_classes).map(|c| self.counts[c * self.n_classes + c]).sum()
    }

    /// Correct over total.
    pub fn accuracy(&self) -> f64 {
        self.correct() as f64 / self.total() as f64
    }

    /// Rows whose true class is `class` (the row sum).
    pub fn support(&self, class: Label) -> u64 {
        (0..self.n_classes as Label).map(|p| self.count(class, p)).sum()
    }

    /// Rows predicted as `class` (the column sum).
    pub fn predicted(&self, class: Label) -> u64 {
        (0..self.n_classes as Label).map(|t| self.count(t, class)).sum()
    }

    /// Precision of `class`: hits over rows predicted as it, 0 if it is never predicted.
    pub fn precision(&self, class: Label) -> f64 {
        ratio(self.count(class, class), self.predicted(class))
    }

    /// Recall of `class`: hits over rows of it, 0 if it never occurs.
    pub fn recall(&self, class: Label) -> f64 {
        ratio(self.count(class, class), self.support(class))
    }

    /// F1 of `class`: the harmonic mean of precision and recall, 0 if both are 0.
    pub fn f1(&self, class: Label) -> f64 {
        let (p, r) = (self.precision(class), self.recall(class));
        if p + r == 0.0 { 0.0 } else { 2.0 * p * r / (p + r) }
    }

    /// One [`ClassReport`] per class, in label order.
    pub fn class_reports(&self) -> Vec<ClassReport> {
        (0..self.n_classes as Label)
            .map(|c| ClassReport {
                label: c,
                precision: self.precision(c),
                recall: self.recall(c),
                f1: self.f1(c),
                support: self.support(c),
            })
            .collect()
    }

    /// Classes that occur in the truth or the prediction (the set `K` of the module doc).
    fn present(&self) -> Vec<Label> {
        (0..self.n_classes as Label)
            .filter(|&c| self.support(c) > 0 || self.predicted(c) > 0)
            .collect()
    }

    fn macro_of(&self, m: impl Fn(Label) -> f64) -> f64 {
        let present = self.present();
        if present.is_empty() {
            return 0.0;
        }
        present.iter().map(|&c| m(c)).sum::<f64>() / present.len() as f64
    }

    /// Mean precision over the classes that occur in truth or prediction.
    pub fn macro_precision(&self) -> f64 {
        self.macro_of(|c| self.precision(c))
    }

    /// Mean recall over the classes that occur in truth or prediction.
    pub fn macro_recall(&self) -> f64 {
        self.macro_of(|c| self.recall(c))
    }

    /// Mean of the per-class F1 over the classes that occur in truth or prediction.
    pub fn macro_f1(&self) -> f64 {
        self.macro_of(|c| self.f1(c))
    }
}

fn ratio(num: u64, den: u64) -> f64 {
    if den == 0 { 0.0 } else { num as f64 / den as f64 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accuracy_counts_matches_and_rejects_bad_input() {
        assert_eq!(accuracy(&[1, 2, 3, 4], &[1, 0, 3, 0]).ok(), Some(0.5));
        assert!(matches!(
            accuracy(&[1, 2], &[1]),
            Err(EvalError::LengthMismatch { truth: 2, pred: 1 })
        ));
        assert!(matches!(accuracy(&[], &[]), Err(EvalError::Empty { .. })));
    }

    #[test]
    fn confusion_matrix_by_hand() {
        // truth 0 0 0 1 1 2 2 2 2
        // pred  0 0 1 1 2 2 2 0 2
        // C = [[2,1,0],[0,1,1],[1,0,3]]
        let truth = [0, 0, 0, 1, 1, 2, 2, 2, 2];
        let pred = [0, 0, 1, 1, 2, 2, 2, 0, 2];
        let cm = ConfusionMatrix::new(&truth, &pred, 3).expect("valid");
        assert_eq!(cm.counts(), &[2, 1, 0, 0, 1, 1, 1, 0, 3]);
        assert_eq!(cm.total(), 9);
        assert_eq!(cm.correct(), 6);
        assert_eq!(cm.accuracy(), 6.0 / 9.0);
        // class 0: precision 2/3, recall 2/3; class 1: 1/2, 1/2; class 2: 3/4, 3/4
        let r = cm.class_reports();
        assert_eq!(r[0].precision, 2.0 / 3.0);
        assert_eq!(r[1].recall, 0.5);
        assert_eq!(r[2].support, 4);
        assert!((r[2].f1 - 0.75).abs() < 1e-15);
        let want = (2.0 / 3.0 + 0.5 + 0.75) / 3.0;
        assert!((cm.macro_precision() - want).abs() < 1e-15);
        assert!((cm.macro_recall() - want).abs() < 1e-15);
        assert!((cm.macro_f1() - want).abs() < 1e-15);
    }

    #[test]
    fn absent_classes_are_left_out_of_macro_averages() {
        // class 3 of 4 never occurs: it must not drag the macro average down
        let cm = ConfusionMatrix::new(&[0, 1, 2], &[0, 1, 2], 4).expect("valid");
        assert_eq!(cm.macro_f1(), 1.0);
        assert_eq!(cm.precision(3), 0.0);
        assert!(matches!(
            ConfusionMatrix::new(&[0, 4], &[0, 0], 4),
            Err(EvalError::LabelOutOfRange { label: 4, n_classes: 4 })
        ));
        assert!(matches!(ConfusionMatrix::new(&[0], &[0], 0), Err(EvalError::Empty { .. })));
    }
}
