//! Split invariants: folds partition, stratification within one row, seeding.

use imgclass_core::Label;
use imgclass_core::rng::SplitMix64;
use imgclass_data::DataError;
use imgclass_data::split::{shuffled_indices, stratified_kfold, stratified_split, subsample};

/// Unbalanced random labels: class c drawn with weight c + 1.
fn labels(n: usize, n_classes: u32, seed: u64) -> Vec<Label> {
    let mut g = SplitMix64::new(seed);
    let total = u64::from(n_classes * (n_classes + 1) / 2);
    (0..n)
        .map(|_| {
            let mut r = g.below(total);
            let mut c = 0;
            while r > u64::from(c) {
                r -= u64::from(c) + 1;
                c += 1;
            }
            c.min(n_classes - 1)
        })
        .collect()
}

fn count(rows: &[usize], labels: &[Label], c: u32) -> usize {
    rows.iter().filter(|&&i| labels[i] == c).count()
}

fn is_sorted_strictly(v: &[usize]) -> bool {
    v.windows(2).all(|w| w[0] < w[1])
}

#[test]
fn kfold_partitions_exactly_and_keeps_proportions() {
    for (n, classes, k, seed) in [(103, 7, 5, 1), (10, 3, 10, 2), (57, 2, 2, 3), (1000, 10, 7, 4)] {
        let y = labels(n, classes, seed);
        let folds = stratified_kfold(&y, classes as usize, k, seed).unwrap();
        assert_eq!(folds.len(), k);
        let mut seen = vec![0; n];
        for f in &folds {
            assert!(is_sorted_strictly(&f.train) && is_sorted_strictly(&f.validation));
            for &i in &f.validation {
                seen[i] += 1;
            }
            // train is exactly the complement of validation
            let mut all: Vec<usize> = f.train.iter().chain(&f.validation).copied().collect();
            all.sort_unstable();
            assert_eq!(all, (0..n).collect::<Vec<_>>());
            // sizes within one of n / k
            assert!(f.validation.len().abs_diff(n / k) <= 1, "fold size {}", f.validation.len());
            for c in 0..classes {
                let n_c = count(&(0..n).collect::<Vec<_>>(), &y, c) as f64;
                let got = count(&f.validation, &y, c) as f64;
                assert!(
                    (got - n_c / k as f64).abs() < 1.0,
                    "class {c}: {got} vs {}",
                    n_c / k as f64
                );
            }
        }
        assert!(seen.iter().all(|&s| s == 1), "every row in exactly one validation part");
    }
}

#[test]
fn stratified_split_keeps_proportions_within_one_row() {
    for (n, classes, m, seed) in [(1000, 10, 137, 1), (31, 4, 7, 2), (50, 3, 0, 3), (50, 3, 50, 4)]
    {
        let y = labels(n, classes, seed);
        let (train, val) = stratified_split(&y, classes as usize, m, seed).unwrap();
        assert_eq!(val.len(), m);
        assert_eq!(train.len(), n - m);
        assert!(is_sorted_strictly(&train) && is_sorted_strictly(&val));
        let mut all: Vec<usize> = train.iter().chain(&val).copied().collect();
        all.sort_unstable();
        assert_eq!(all, (0..n).collect::<Vec<_>>());
        for c in 0..classes {
            let n_c = y.iter().filter(|&&l| l == c).count() as f64;
            let share = m as f64 * n_c / n as f64;
            let got = count(&val, &y, c) as f64;
            assert!((got - share).abs() < 1.0, "class {c}: {got} vs share {share}");
        }
    }
}

#[test]
fn same_seed_same_result_other_seed_other_order() {
    let y = labels(500, 5, 9);
    assert_eq!(stratified_split(&y, 5, 100, 1).unwrap(), stratified_split(&y, 5, 100, 1).unwrap());
    assert_ne!(
        stratified_split(&y, 5, 100, 1).unwrap().1,
        stratified_split(&y, 5, 100, 2).unwrap().1
    );
    assert_eq!(stratified_kfold(&y, 5, 5, 1).unwrap(), stratified_kfold(&y, 5, 5, 1).unwrap());
    assert_ne!(stratified_kfold(&y, 5, 5, 1).unwrap(), stratified_kfold(&y, 5, 5, 2).unwrap());
    assert_eq!(subsample(&y, 5, 50, 3).unwrap(), subsample(&y, 5, 50, 3).unwrap());
    assert_ne!(subsample(&y, 5, 50, 3).unwrap(), subsample(&y, 5, 50, 4).unwrap());
    let a = shuffled_indices(100, 1);
    assert_eq!(a, shuffled_indices(100, 1));
    assert_ne!(a, shuffled_indices(100, 2));
    assert_ne!(a, (0..100).collect::<Vec<_>>());
    let mut sorted = a.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, (0..100).collect::<Vec<_>>());
}

#[test]
fn subsample_is_stratified_and_sorted() {
    // 60 rows of class 0, 30 of class 1, 10 of class 2: 20 rows -> 12, 6, 2 exactly
    let y: Vec<Label> = (0..100)
        .map(|i| {
            if i < 60 {
                0
            } else if i < 90 {
                1
            } else {
                2
            }
        })
        .collect();
    let s = subsample(&y, 3, 20, 5).unwrap();
    assert!(is_sorted_strictly(&s));
    assert_eq!([0, 1, 2].map(|c| count(&s, &y, c)), [12, 6, 2]);
}

#[test]
fn bad_arguments_are_typed_errors() {
    let y = [0, 1, 0, 1];
    assert!(matches!(stratified_kfold(&y, 2, 1, 0), Err(DataError::BadFoldCount { k: 1, n: 4 })));
    assert!(matches!(stratified_kfold(&y, 2, 5, 0), Err(DataError::BadFoldCount { k: 5, n: 4 })));
    assert!(matches!(stratified_kfold(&[], 2, 2, 0), Err(DataError::BadFoldCount { k: 2, n: 0 })));
    assert!(matches!(
        stratified_split(&y, 2, 5, 0),
        Err(DataError::TooFewRows { requested: 5, available: 4 })
    ));
    assert!(matches!(subsample(&y, 2, 9, 0), Err(DataError::TooFewRows { .. })));
    assert!(matches!(
        stratified_split(&[0, 3], 2, 1, 0),
        Err(DataError::BadLabel { index: 1, label: 3, n_classes: 2 })
    ));
    assert!(matches!(
        stratified_kfold(&[0, 0, 2], 2, 2, 0),
        Err(DataError::BadLabel { index: 2, .. })
    ));
}
