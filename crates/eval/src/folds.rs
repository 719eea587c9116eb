//! Splitting rows into training and validation sides for evaluation: stratified k-fold
//! cross-validation folds, a stratified hold-out split by fraction, and folds from a given
//! assignment (scikit-learn's `PredefinedSplit`).
//!
//! The seeded dealing itself is `imgclass_data::split` (one implementation; this module
//! adapts its signatures: the class count is taken from the labels, the hold-out size from a
//! fraction), and [`Fold`] is its fold type. A fold holds *positions* into the labels it was
//! built from (for a [`Subset`](imgclass_core::Subset), positions into the view: turn them into views with
//! [`Fold::apply`], which never copies pixels).
//!
//! Stratification: the positions of each class are shuffled with their own generator
//! (`SplitMix64::new(seed).fork(class)`), the shuffled classes are laid end to end in label
//! order, and position `j` of that sequence goes to fold `j mod k`. So every fold holds
//! `⌊n_c / k⌋` or `⌈n_c / k⌉` rows of each class `c`, and fold sizes differ by at most one.
//!
//! ```
//! use imgclass_eval::stratified_kfold;
//! let labels = [0, 0, 0, 0, 1, 1, 1, 1, 1, 1];
//! let folds = stratified_kfold(&labels, 2, 7)?;
//! for f in &folds {
//!     assert_eq!(f.validation.len(), 5);
//!     let ones = f.validation.iter().filter(|&&i| labels[i] == 1).count();
//!     assert_eq!(ones, 3); // 6 ones over 2 folds
//! }
//! # Ok::<(), imgclass_eval::EvalError>(())
//! ```

use imgclass_core::Label;
pub use imgclass_data::split::Fold;
use imgclass_data::{DataError, split};

use crate::EvalError;

/// Checks that both sides of `fold` are non-empty, in range of `n_rows`, without repeats and
/// disjoint; `index` names the fold in the error.
pub fn check_fold(fold: &Fold, n_rows: usize, index: usize) -> Result<(), EvalError> {
    let bad = |reason: String| EvalError::BadFold { fold: index, reason };
    if fold.train.is_empty() || fold.validation.is_empty() {
        return Err(bad("a side is empty".into()));
    }
    let mut seen = vec![false; n_rows];
    for &p in fold.train.iter().chain(&fold.validation) {
        match seen.get_mut(p) {
            None => return Err(bad(format!("position {p} is out of range for {n_rows} rows"))),
            Some(true) => return Err(bad(format!("position {p} is used twice"))),
            Some(s) => *s = true,
        }
    }
    Ok(())
}

/// The number of classes the labels imply (largest label plus one).
fn n_classes(labels: &[Label]) -> usize {
    labels.iter().map(|&l| l as usize + 1).max().unwrap_or(0)
}

/// `k` stratified folds of `labels` (see the module doc): each fold's validation side is
/// about `1/k` of the rows with the class proportions of the whole; its training side is the
/// rest. The validation sides partition `0..labels.len()`.
///
/// Errors: [`EvalError::BadFoldCount`] when `k < 2` or `k > labels.len()`.
pub fn stratified_kfold(labels: &[Label], k: usize, seed: u64) -> Result<Vec<Fold>, EvalError> {
    split::stratified_kfold(labels, n_classes(labels), k, seed).map_err(|e| match e {
        DataError::BadFoldCount { k, n } => EvalError::BadFoldCount { k, n_rows: n },
        other => EvalError::Split(other),
    })
}

/// Folds from a fold number per row: fold `f` validates on the rows assigned `f` and trains
/// on all others (scikit-learn's `PredefinedSplit`). The number of folds is the largest
/// assignment plus one.
///
/// Errors: [`EvalError::BadFoldCount`] with fewer than two folds; [`EvalError::BadFold`] when
/// some fold number below the largest is never used.
pub fn folds_from_assignment(assignment: &[usize]) -> Result<Vec<Fold>, EvalError> {
    let k = assignment.iter().max().map_or(0, |&m| m + 1);
    if k < 2 {
        return Err(EvalError::BadFoldCount { k, n_rows: assignment.len() });
    }
    let mut folds: Vec<Fold> =
        (0..k).map(|_| Fold { train: Vec::new(), validation: Vec::new() }).collect();
    for (p, &a) in assignment.iter().enumerate() {
        for (f, fold) in folds.iter_mut().enumerate() {
            if f == a { fold.validation.push(p) } else { fold.train.push(p) }
        }
    }
    if let Some(f) = folds.iter().position(|f| f.validation.is_empty()) {
        return Err(EvalError::BadFold { fold: f, reason: "no row is assigned to it".into() });
    }
    Ok(folds)
}

/// A stratified hold-out split: `⌊n · validation_fraction⌋` rows go to the validation side,
/// each class's share within one row of its share of all rows (`imgclass_data::split`'s
/// largest-remainder allocation), the rest to training.
///
/// Errors: [`EvalError::BadFraction`] unless both sides get at least one row.
pub fn stratified_split(
    labels: &[Label],
    validation_fraction: f64,
    seed: u64,
) -> Result<Fold, EvalError> {
    let n = labels.len();
    let n_val = (n as f64 * validation_fraction).floor();
    if !(validation_fraction > 0.0 && validation_fraction < 1.0) || n_val < 1.0 || n_val >= n as f64
    {
        return Err(EvalError::BadFraction { fraction: validation_fraction, n_rows: n });
    }
    let (train, validation) =
        split::stratified_split(labels, n_classes(labels), n_val as usize, seed)
            .map_err(EvalError::Split)?;
    Ok(Fold { train, validation })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 3 classes, interleaved: i % 10 in {0, 5} is class 2 (20 rows), {1, 2, 3} class 1
    /// (30 rows), the rest class 0 (50 rows).
    fn labels() -> Vec<Label> {
        (0..100u32)
            .map(|i| {
                if i % 5 == 0 {
                    2
                } else if i % 10 < 4 {
                    1
                } else {
                    0
                }
            })
            .collect()
    }

    fn class_counts(labels: &[Label], rows: &[usize]) -> Vec<usize> {
        let mut c = vec![0; 3];
        for &r in rows {
            c[labels[r] as usize] += 1;
        }
        c
    }

    #[test]
    fn kfold_partitions_rows_and_keeps_class_proportions() {
        let labels = labels();
        let total = class_counts(&labels, &(0..labels.len()).collect::<Vec<_>>());
        for k in [2, 3, 5, 7] {
            let folds = stratified_kfold(&labels, k, 11).expect("valid");
            assert_eq!(folds.len(), k);
            let mut all: Vec<usize> = folds.iter().flat_map(|f| f.validation.clone()).collect();
            all.sort_unstable();
            assert_eq!(all, (0..labels.len()).collect::<Vec<_>>(), "k={k}: not a partition");
            for (i, f) in folds.iter().enumerate() {
                check_fold(f, labels.len(), i).expect("valid fold");
                assert_eq!(f.train.len() + f.validation.len(), labels.len());
                let n = f.validation.len();
                assert!(n == labels.len() / k || n == labels.len().div_ceil(k), "k={k} n={n}");
                for (c, &got) in class_counts(&labels, &f.validation).iter().enumerate() {
                    let lo = total[c] / k;
                    assert!(got == lo || got == lo + 1, "k={k} class {c}: {got} of {}", total[c]);
                }
            }
        }
    }

    #[test]
    fn kfold_is_seeded() {
        let labels = labels();
        let a = stratified_kfold(&labels, 5, 1).expect("valid");
        assert_eq!(a, stratified_kfold(&labels, 5, 1).expect("valid"));
        assert_ne!(a, stratified_kfold(&labels, 5, 2).expect("valid"));
        assert!(matches!(stratified_kfold(&labels, 1, 0), Err(EvalError::BadFoldCount { .. })));
        assert!(matches!(stratified_kfold(&[0, 1], 3, 0), Err(EvalError::BadFoldCount { .. })));
    }

    #[test]
    fn split_takes_the_fraction_of_every_class() {
        let labels = labels();
        let total = class_counts(&labels, &(0..labels.len()).collect::<Vec<_>>());
        let f = stratified_split(&labels, 0.3, 5).expect("valid");
        check_fold(&f, labels.len(), 0).expect("valid fold");
        assert_eq!(f.validation.len(), 30);
        assert_eq!(f.train.len(), 70);
        for (c, &got) in class_counts(&labels, &f.validation).iter().enumerate() {
            let want = total[c] as f64 * 0.3;
            assert!((got as f64 - want).abs() <= 1.0, "class {c}: {got} vs {want}");
        }
        for bad in [0.0, 1.0, f64::NAN, 0.001] {
            assert!(matches!(
                stratified_split(&labels, bad, 0),
                Err(EvalError::BadFraction { .. })
            ));
        }
    }

    #[test]
    fn predefined_assignment_and_fold_checks() {
        let folds = folds_from_assignment(&[0, 1, 0, 1, 2]).expect("valid");
        assert_eq!(folds[0], Fold { train: vec![1, 3, 4], validation: vec![0, 2] });
        assert_eq!(folds[2].validation, vec![4]);
        assert!(matches!(folds_from_assignment(&[0, 2]), Err(EvalError::BadFold { fold: 1, .. })));
        let overlap = Fold { train: vec![0, 1], validation: vec![1] };
        assert!(matches!(check_fold(&overlap, 2, 3), Err(EvalError::BadFold { fold: 3, .. })));
        let outside = Fold { train: vec![0], validation: vec![2] };
        assert!(check_fold(&outside, 2, 0).is_err());
    }
}
