//! Seeded, index-only splits: shuffles, stratified train/validation splits, stratified
//! k-fold and stratified subsampling. Nothing here touches pixels; the results index rows of
//! a [`imgclass_core::Dataset`] (build views with `Dataset::subset`).
//!
//! Every function takes a `seed` and draws from `imgclass_core::rng::SplitMix64` only, so the
//! same seed gives the same result on any machine and thread count. Each class's rows are
//! shuffled by its own generator, `SplitMix64::new(seed).fork(class)`. Every returned index
//! list except [`shuffled_indices`] is sorted ascending, so ties broken by training index
//! (k-NN) stay deterministic.
//!
//! Stratified allocation (largest remainder): taking `m` of `n` rows, class `c` with `n_c`
//! rows gets `floor(m * n_c / n)` rows, and the `m - Σ floor(...)` rows left over go one each
//! to the classes with the largest remainders `(m * n_c) mod n` (ties: smaller class first).
//! So every class gets its exact share rounded up or down: within one row.
//!
//! ```text
//! m = 3 of n = 6 rows, classes of 3, 2, 1 rows: shares 1.5, 1.0, 0.5
//! floors 1, 1, 0 (sum 2); remainders 3, 0, 3 -> the one row left goes to class 0
//! allocation 2, 1, 0
//! ```
//!
//! ```
//! use imgclass_data::split::stratified_split;
//!
//! let labels = [0, 0, 0, 1, 1, 2];
//! let (train, validation) = stratified_split(&labels, 3, 3, 1)?;
//! let per_class = |rows: &[usize], c| rows.iter().filter(|&&i| labels[i] == c).count();
//! assert_eq!([0, 1, 2].map(|c| per_class(&validation, c)), [2, 1, 0]);
//! assert_eq!(train.len() + validation.len(), 6);
//! # Ok::<(), imgclass_data::DataError>(())
//! ```

use imgclass_core::rng::SplitMix64;
use imgclass_core::{DatasetError, Label, Subset};

use crate::DataError;

/// One train/validation split, the one fold type of the workspace (imgclass-eval re-exports
/// it): the rows to train on and the rows to validate on, each sorted ascending, the two
/// sides disjoint (for a k-fold split, together every row exactly once). Rows are positions
/// into whatever the labels came from: dataset rows, or positions into a [`Subset`] view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fold {
    /// Rows to train on.
    pub train: Vec<usize>,
    /// Rows held out for validation.
    pub validation: Vec<usize>,
}

impl Fold {
    /// The training and validation views of `data` (the fold's rows are positions into
    /// `data`); never copies pixels.
    pub fn apply(&self, data: &Subset) -> Result<(Subset, Subset), DatasetError> {
        Ok((data.select(&self.train)?, data.select(&self.validation)?))
    }
}

/// `0..n` in a seeded random order (Fisher-Yates with `SplitMix64::new(seed)`).
pub fn shuffled_indices(n: usize, seed: u64) -> Vec<usize> {
    let mut v: Vec<usize> = (0..n).collect();
    SplitMix64::new(seed).shuffle(&mut v);
    v
}

/// Splits the rows into `(train, validation)` with `validation` rows held out, keeping each
/// class's share of the validation rows within one row of its share of all rows
/// (largest-remainder allocation; which rows of a class are held out is seeded).
pub fn stratified_split(
    labels: &[Label],
    n_classes: usize,
    validation: usize,
    seed: u64,
) -> Result<(Vec<usize>, Vec<usize>), DataError> {
    let by_class = shuffled_by_class(labels, n_classes, seed)?;
    let quota = allocate(&by_class, labels.len(), validation)?;
    let mut train = Vec::with_capacity(labels.len() - validation);
    let mut held = Vec::with_capacity(validation);
    for (rows, q) in by_class.iter().zip(quota) {
        held.extend_from_slice(&rows[..q]);
        train.extend_from_slice(&rows[q..]);
    }
    train.sort_unstable();
    held.sort_unstable();
    Ok((train, held))
}

/// Stratified k-fold: the folds' validation parts partition `0..labels.len()` exactly.
///
/// Each class's rows are shuffled (seeded) and dealt round-robin over the folds, the deal
/// continuing from class to class, so fold sizes differ by at most one row and each class's
/// count in a fold differs by at most one across folds. Needs `2 <= k <= labels.len()`.
pub fn stratified_kfold(
    labels: &[Label],
    n_classes: usize,
    k: usize,
    seed: u64,
) -> Result<Vec<Fold>, DataError> {
    let n = labels.len();
    if k < 2 || k > n {
        return Err(DataError::BadFoldCount { k, n });
    }
    let by_class = shuffled_by_class(labels, n_classes, seed)?;
    let mut fold_of = vec![0usize; n];
    let mut next = 0;
    for rows in &by_class {
        for &i in rows {
            fold_of[i] = next;
            next = (next + 1) % k;
        }
    }
    let mut folds = vec![Fold { train: Vec::new(), validation: Vec::new() }; k];
    for (i, &f) in fold_of.iter().enumerate() {
        for (g, fold) in folds.iter_mut().enumerate() {
            if g == f {
                fold.validation.push(i);
            } else {
                fold.train.push(i);
            }
        }
    }
    Ok(folds)
}

/// A stratified sample of `n` rows (sorted ascending): the validation part of
/// [`stratified_split`] with the same seed.
pub fn subsample(
    labels: &[Label],
    n_classes: usize,
    n: usize,
    seed: u64,
) -> Result<Vec<usize>, DataError> {
    stratified_split(labels, n_classes, n, seed).map(|(_, sample)| sample)
}

/// Each class's row indices, shuffled by the class's own forked generator.
fn shuffled_by_class(
    labels: &[Label],
    n_classes: usize,
    seed: u64,
) -> Result<Vec<Vec<usize>>, DataError> {
    let mut by_class = vec![Vec::new(); n_classes];
    for (index, &label) in labels.iter().enumerate() {
        by_class
            .get_mut(label as usize)
            .ok_or(DataError::BadLabel { index, label, n_classes })?
            .push(index);
    }
    let root = SplitMix64::new(seed);
    for (c, rows) in by_class.iter_mut().enumerate() {
        root.fork(c as u64).shuffle(rows);
    }
    Ok(by_class)
}

/// Largest-remainder allocation of `m` rows over the classes (see the module docs).
fn allocate(by_class: &[Vec<usize>], n: usize, m: usize) -> Result<Vec<usize>, DataError> {
    if m > n {
        return Err(DataError::TooFewRows { requested: m, available: n });
    }
    if n == 0 {
        return Ok(vec![0; by_class.len()]);
    }
    let (n128, m128) = (n as u128, m as u128);
    let mut quota: Vec<usize> =
        by_class.iter().map(|r| (m128 * r.len() as u128 / n128) as usize).collect();
    let left = m - quota.iter().sum::<usize>();
    let mut order: Vec<usize> = (0..by_class.len()).collect();
    // largest remainder first; ties to the smaller class (sort is stable)
    order.sort_by_key(|&c| std::cmp::Reverse(m128 * by_class[c].len() as u128 % n128));
    for &c in order.iter().take(left) {
        quota[c] += 1;
    }
    Ok(quota)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sizes(sizes: &[usize]) -> Vec<Vec<usize>> {
        let mut start = 0;
        sizes
            .iter()
            .map(|&s| {
                let v = (start..start + s).collect();
                start += s;
                v
            })
            .collect()
    }

    #[test]
    fn largest_remainder_worked_examples() {
        // the module-doc example: 3 of 6 rows over classes of 3, 2, 1 -> 2, 1, 0
        assert_eq!(allocate(&sizes(&[3, 2, 1]), 6, 3).unwrap(), vec![2, 1, 0]);
        // 2 of 3 rows over three classes of 1: equal remainders 2, 2, 2 -> smaller classes first
        assert_eq!(allocate(&sizes(&[1, 1, 1]), 3, 2).unwrap(), vec![1, 1, 0]);
        // 10 of 100 rows over 50, 30, 20 -> exact shares 5, 3, 2
        assert_eq!(allocate(&sizes(&[50, 30, 20]), 100, 10).unwrap(), vec![5, 3, 2]);
        // 7 of 10 rows over 5, 4, 1: shares 3.5, 2.8, 0.7 -> floors 3, 2, 0, remainders
        // 5, 8, 7 (x 1/10) -> the 2 rows left go to classes 1 and 2
        assert_eq!(allocate(&sizes(&[5, 4, 1]), 10, 7).unwrap(), vec![3, 3, 1]);
        assert_eq!(allocate(&sizes(&[0, 0]), 0, 0).unwrap(), vec![0, 0]);
    }

    #[test]
    fn kfold_deal_continues_across_classes() {
        // 3 rows of class 0 and 3 of class 1 into 2 folds: 0 deals 0,1,0 and 1 deals 1,0,1,
        // so both folds get 3 rows (a restart at fold 0 per class would give 4 and 2)
        let folds = stratified_kfold(&[0, 0, 0, 1, 1, 1], 2, 2, 5).unwrap();
        assert_eq!(folds[0].validation.len(), 3);
        assert_eq!(folds[1].validation.len(), 3);
    }
}
