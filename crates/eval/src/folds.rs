//! Splitting rows into training and validation sides: a stratified hold-out split, stratified
//! k-fold cross-validation folds, and folds from a given assignment (scikit-learn's
//! `PredefinedSplit`).
//!
//! A [`Fold`] holds *positions* into the labels it was built from (for a [`Subset`], positions
//! into the view: turn them into views with [`Fold::apply`], which never copies pixels).
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

use imgclass_core::{Label, Subset, rng::SplitMix64};
use serde::{Deserialize, Serialize};

use crate::EvalError;

/// One train/validation split: positions into the rows it was built from, each side sorted
/// ascending, the two sides disjoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fold {
    /// Positions of the training rows.
    pub train: Vec<usize>,
    /// Positions of the validation rows.
    pub validation: Vec<usize>,
}

impl Fold {
    /// The training and validation views of `data` (positions index into `data`).
    pub fn apply(&self, data: &Subset) -> Result<(Subset, Subset), EvalError> {
        Ok((data.select(&self.train)?, data.select(&self.validation)?))
    }

    /// Checks that both sides are non-empty, in range of `n_rows`, without repeats and
    /// disjoint; `index` names the fold in the error.
    pub fn check(&self, n_rows: usize, index: usize) -> Result<(), EvalError> {
        let bad = |reason: String| EvalError::BadFold { fold: index, reason };
        if self.train.is_empty() || self.validation.is_empty() {
            return Err(bad("a side is empty".into()));
        }
        let mut seen = vec![false; n_rows];
        for &p in self.train.iter().chain(&self.validation) {
            match seen.get_mut(p) {
                None => return Err(bad(format!("position {p} is out of range for {n_rows} rows"))),
                Some(true) => return Err(bad(format!("position {p} is used twice"))),
                Some(s) => *s = true,
            }
        }
        Ok(())
    }
}

/// Positions grouped by class, each group shuffled with its own forked generator, the groups
/// laid end to end in label order.
fn shuffled_by_class(labels: &[Label], seed: u64) -> Vec<usize> {
    let n_classes = labels.iter().map(|&l| l as usize + 1).max().unwrap_or(0);
    let mut groups: Vec<Vec<usize>> = vec![Vec::new(); n_classes];
    for (i, &l) in labels.iter().enumerate() {
        groups[l as usize].push(i);
    }
    let root = SplitMix64::new(seed);
    let mut order = Vec::with_capacity(labels.len());
    for (c, mut g) in groups.into_iter().enumerate() {
        root.fork(c as u64).shuffle(&mut g);
        order.extend(g);
    }
    order
}

/// `k` stratified folds of `labels` (see the module doc): each fold's validation side is
/// about `1/k` of the rows with the class proportions of the whole; its training side is the
/// rest. The validation sides partition `0..labels.len()`.
///
/// Errors: [`EvalError::BadFoldCount`] when `k < 2` or `k > labels.len()`.
pub fn stratified_kfold(labels: &[Label], k: usize, seed: u64) -> Result<Vec<Fold>, EvalError> {
    if k < 2 || k > labels.len() {
        return Err(EvalError::BadFoldCount { k, n_rows: labels.len() });
    }
    let order = shuffled_by_class(labels, seed);
    let mut assignment = vec![0usize; labels.len()];
    for (j, &p) in order.iter().enumerate() {
        assignment[p] = j % k;
    }
    folds_from_assignment(&assignment)
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

/// A stratified hold-out split: about `validation_fraction` of each class goes to the
/// validation side (exactly `⌊n · fraction⌋` rows in all), the rest to training.
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
    let order = shuffled_by_class(labels, seed);
    let mut fold = Fold { train: Vec::new(), validation: Vec::new() };
    // Bresenham: position j of the class-ordered sequence is a validation row when
    // floor((j + 1) f) > floor(j f); that picks floor(n f) rows, spread evenly over classes.
    for (j, &p) in order.iter().enumerate() {
        let before = (j as f64 * validation_fraction).floor();
        let after = ((j + 1) as f64 * validation_fraction).floor();
        if after > before { fold.validation.push(p) } else { fold.train.push(p) }
    }
    fold.train.sort_unstable();
    fold.validation.sort_unstable();
    Ok(fold)
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
                f.check(labels.len(), i).expect("valid fold");
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
        f.check(labels.len(), 0).expect("valid fold");
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
        assert!(matches!(overlap.check(2, 3), Err(EvalError::BadFold { fold: 3, .. })));
        let outside = Fold { train: vec![0], validation: vec![2] };
        assert!(outside.check(2, 0).is_err());
    }
}
