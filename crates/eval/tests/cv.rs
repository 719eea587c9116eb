//! Integration tests of imgclass-eval with small classifiers written here (eval knows no
//! concrete classifier): cross-checks against scikit-learn, a problem whose best parameter is
//! known, determinism across thread counts, error propagation.

use imgclass_core::{ClassNames, Dataset, Fit, ImageShape, Label, Predict, Subset};
use imgclass_eval::{
    ConfusionMatrix, EvalError, cross_validate, cross_validate_k, folds_from_assignment,
    grid_search, holdout, holdout_grid_search, stratified_kfold, stratified_split,
};

#[derive(Debug, thiserror::Error)]
#[error("k {k} is larger than the {n_train} training rows")]
struct KTooLarge {
    k: usize,
    n_train: usize,
}

/// Nearest class mean under squared Euclidean distance (scikit-learn's `NearestCentroid`);
/// ties go to the smaller label.
struct Centroid;
struct CentroidModel {
    means: Vec<Vec<f64>>,
}
impl Fit for Centroid {
    type Model = CentroidModel;
    type Error = KTooLarge;
    fn fit(&self, train: &Subset) -> Result<CentroidModel, KTooLarge> {
        let (c, d) = (train.n_classes(), train.dim());
        let mut sums = vec![vec![0.0; d]; c];
        let mut counts = vec![0usize; c];
        for i in 0..train.len() {
            let l = train.label(i) as usize;
            counts[l] += 1;
            for (s, &x) in sums[l].iter_mut().zip(train.pixels().expect("images").row(i)) {
                *s += f64::from(x);
            }
        }
        for (s, &n) in sums.iter_mut().zip(&counts) {
            s.iter_mut().for_each(|v| *v /= n.max(1) as f64);
        }
        Ok(CentroidModel { means: sums })
    }
}
impl Predict for CentroidModel {
    type Error = KTooLarge;
    fn n_classes(&self) -> usize {
        self.means.len()
    }
    fn predict(&self, x: &Subset) -> Result<Vec<Label>, KTooLarge> {
        Ok(x.pixels()
            .expect("images")
            .iter()
            .map(|r| {
                let dist = |m: &Vec<f64>| {
                    m.iter().zip(r).map(|(a, &b)| (a - f64::from(b)).powi(2)).sum::<f64>()
                };
                let mut best = 0;
                for c in 1..self.means.len() {
                    if dist(&self.means[c]) < dist(&self.means[best]) {
                        best = c;
                    }
                }
                best as Label
            })
            .collect())
    }
}

/// Brute-force k-NN under squared Euclidean distance: neighbours by (distance, index), the
/// most frequent label wins, ties to the smaller label.
#[derive(Debug)]
struct BruteKnn {
    k: usize,
}
struct BruteKnnModel {
    k: usize,
    train: Subset,
}
impl Fit for BruteKnn {
    type Model = BruteKnnModel;
    type Error = KTooLarge;
    fn fit(&self, train: &Subset) -> Result<BruteKnnModel, KTooLarge> {
        if self.k == 0 || self.k > train.len() {
            return Err(KTooLarge { k: self.k, n_train: train.len() });
        }
        Ok(BruteKnnModel { k: self.k, train: train.clone() })
    }
}
impl Predict for BruteKnnModel {
    type Error = KTooLarge;
    fn n_classes(&self) -> usize {
        self.train.n_classes()
    }
    fn predict(&self, x: &Subset) -> Result<Vec<Label>, KTooLarge> {
        Ok(x.pixels()
            .expect("images")
            .iter()
            .map(|q| {
                let mut d: Vec<(i64, usize)> = (0..self.train.len())
                    .map(|j| {
                        let s = self.train.pixels().expect("images").row(j).iter().zip(q);
                        (s.map(|(&a, &b)| (i64::from(a) - i64::from(b)).pow(2)).sum(), j)
                    })
                    .collect();
                d.sort_unstable();
                let mut votes = vec![0usize; self.n_classes()];
                for &(_, j) in &d[..self.k] {
                    votes[self.train.label(j) as usize] += 1;
                }
                let mut best = 0;
                for (c, &v) in votes.iter().enumerate() {
                    if v > votes[best] {
                        best = c;
                    }
                }
                best as Label
            })
            .collect())
    }
}

/// The dataset of the scikit-learn cross-check: 90 rows of 8 features, 3 classes.
///
/// Both sides generate it with the same formula: an LCG `s <- (1103515245 s + 12345) mod 2^31`
/// from `s = 1`; row `i` has label `i mod 3` and features `(s >> 16) mod 160 + 30 * label`
/// drawn row by row.
fn lcg_dataset() -> Dataset {
    let mut s: u64 = 1;
    let mut pixels = Vec::new();
    let mut labels = Vec::new();
    for i in 0..90u32 {
        let y = i % 3;
        labels.push(y);
        for _ in 0..8 {
            s = (1_103_515_245 * s + 12_345) % (1 << 31);
            pixels.push(((s >> 16) % 160 + 30 * u64::from(y)) as u8);
        }
    }
    Dataset::new(pixels, labels, ImageShape::new(1, 1, 8), ClassNames::new(["a", "b", "c"]))
        .expect("valid dataset")
}

/// Golden per-fold hit counts (out of 18 validation rows per fold) from scikit-learn 1.9.1,
/// `cross_val_score(est, X, y, cv=PredefinedSplit([i % 5 for i in range(90)]))`, computed
/// with /work/main/.venv/bin/python on this script:
///
/// ```text
/// import numpy as np
/// from sklearn.model_selection import cross_val_score, PredefinedSplit
/// from sklearn.neighbors import KNeighborsClassifier, NearestCentroid
/// s = 1
/// def lcg():
///     global s
///     s = (1103515245 * s + 12345) % 2**31
///     return s
/// n, d = 90, 8
/// y = np.array([i % 3 for i in range(n)])
/// X = np.array([[(lcg() >> 16) % 160 + 30 * y[i] for _ in range(d)] for i in range(n)],
///              dtype=np.float64)
/// cv = PredefinedSplit([i % 5 for i in range(n)])
/// # no distance tie at the k-th neighbour (the neighbour order would be arbitrary there)
/// for tr, te in cv.split():
///     D = ((X[te, None, :] - X[None, tr, :]) ** 2).sum(-1)
///     for row in np.sort(D, axis=1):
///         for k in (1, 3, 5, 7, 9, 15, 25):
///             assert row[k - 1] != row[k]
/// for name, est in [("centroid", NearestCentroid())] + [(k, KNeighborsClassifier(
///         n_neighbors=k, algorithm="brute")) for k in (1, 3, 5, 7, 9, 15, 25)]:
///     print(name, [round(a * 18) for a in cross_val_score(est, X, y, cv=cv)])
/// ```
const SKLEARN_CENTROID: [u32; 5] = [14, 11, 8, 13, 13];
const SKLEARN_KNN: [(usize, [u32; 5]); 7] = [
    (1, [14, 12, 8, 7, 11]),
    (3, [9, 11, 7, 10, 9]),
    (5, [10, 12, 8, 9, 8]),
    (7, [12, 10, 8, 9, 8]),
    (9, [14, 11, 9, 8, 8]),
    (15, [14, 9, 9, 10, 12]),
    (25, [15, 11, 9, 13, 11]),
];

fn assert_close(got: &[f64], hits: &[u32], of: f64) {
    assert_eq!(got.len(), hits.len());
    for (g, &h) in got.iter().zip(hits) {
        assert!((g - f64::from(h) / of).abs() < 1e-12, "{got:?} vs {hits:?}/{of}");
    }
}

#[test]
fn cross_validate_matches_sklearn_cross_val_score() {
    let data = lcg_dataset().all();
    let folds = folds_from_assignment(&(0..90).map(|i| i % 5).collect::<Vec<_>>()).expect("ok");
    let s = cross_validate(&Centroid, &data, &folds).expect("cv runs");
    assert_close(&s.per_fold, &SKLEARN_CENTROID, 18.0);
    for (k, hits) in SKLEARN_KNN {
        let s = cross_validate(&BruteKnn { k }, &data, &folds).expect("cv runs");
        assert_close(&s.per_fold, &hits, 18.0);
    }
}

#[test]
fn grid_search_matches_sklearn_and_picks_the_best_mean() {
    let data = lcg_dataset().all();
    let folds = folds_from_assignment(&(0..90).map(|i| i % 5).collect::<Vec<_>>()).expect("ok");
    let grid: Vec<BruteKnn> = SKLEARN_KNN.iter().map(|&(k, _)| BruteKnn { k }).collect();
    let r = grid_search(&grid, &data, &folds, |p| format!("k={}", p.k)).expect("search runs");
    assert_eq!(r.points.len(), 7);
    for (p, (k, hits)) in r.points.iter().zip(SKLEARN_KNN) {
        assert_eq!(p.params, format!("k={k}"));
        assert_close(&p.scores.per_fold, &hits, 18.0);
    }
    // best mean by the golden sums: k = 25 with 59 / 90 hits
    let sums: Vec<u32> = SKLEARN_KNN.iter().map(|(_, h)| h.iter().sum()).collect();
    let best = (0..7).max_by_key(|&i| (sums[i], std::cmp::Reverse(i))).expect("non-empty");
    assert_eq!(r.best, best);
    assert_eq!(r.best_point().params, "k=25");
    let back = imgclass_eval::GridResult::from_json(&r.to_json().expect("json")).expect("reads");
    assert_eq!(back, r);
}

/// Predicts class 1 when the single pixel is at least `t`; learns nothing.
#[derive(Debug)]
struct Threshold(u8);
struct ThresholdModel(u8);
impl Fit for Threshold {
    type Model = ThresholdModel;
    type Error = EvalError;
    fn fit(&self, _train: &Subset) -> Result<ThresholdModel, EvalError> {
        Ok(ThresholdModel(self.0))
    }
}
impl Predict for ThresholdModel {
    type Error = EvalError;
    fn n_classes(&self) -> usize {
        2
    }
    fn predict(&self, x: &Subset) -> Result<Vec<Label>, EvalError> {
        Ok(x.pixels().expect("images").iter().map(|r| Label::from(r[0] >= self.0)).collect())
    }
}

#[test]
fn cv_finds_the_known_best_threshold() {
    // pixels 0..200, class 1 from 120 on: threshold t misclassifies |t - 120| rows, so with
    // five equal folds that partition the rows the mean accuracy is 1 - |t - 120| / 200.
    let ds = Dataset::new(
        (0..200).map(|i| i as u8).collect(),
        (0..200).map(|i| Label::from(i >= 120)).collect(),
        ImageShape::new(1, 1, 1),
        ClassNames::new(["lo", "hi"]),
    )
    .expect("valid");
    let data = ds.all();
    let folds = stratified_kfold(&data.labels(), 5, 3).expect("ok");
    let grid: Vec<Threshold> = [40u8, 80, 100, 120, 140, 199].map(Threshold).into();
    let r = grid_search(&grid, &data, &folds, |p| p.0.to_string()).expect("runs");
    assert_eq!(r.best_point().params, "120");
    assert_eq!(r.best_point().scores.per_fold, vec![1.0; 5]);
    for (p, t) in r.points.iter().zip(&grid) {
        let want = 1.0 - f64::from(t.0.abs_diff(120)) / 200.0;
        assert!((p.scores.mean - want).abs() < 1e-12, "t={} {} vs {want}", t.0, p.scores.mean);
    }
}

#[test]
fn results_do_not_depend_on_thread_count() {
    let data = lcg_dataset().all();
    let run = || cross_validate_k(&BruteKnn { k: 5 }, &data, 4, 99).expect("cv runs");
    let one = rayon::ThreadPoolBuilder::new().num_threads(1).build().expect("pool").install(run);
    let three = rayon::ThreadPoolBuilder::new().num_threads(3).build().expect("pool").install(run);
    assert_eq!(one, three);
    assert_eq!(one, run());
}

#[test]
fn holdout_scores_the_validation_side() {
    let ds = lcg_dataset();
    let data = ds.all();
    let split = stratified_split(&data.labels(), 0.2, 8).expect("ok");
    let (train, val) = split.apply(&data).expect("in range");
    assert_eq!(val.len(), 18);
    let h = holdout(&Centroid, &train, &val).expect("runs");
    // independent recount: predict with the model directly
    let pred = Centroid.fit(&train).expect("fits").predict(&val).expect("predicts");
    let hits = pred.iter().zip(val.labels()).filter(|(p, t)| **p == *t).count();
    assert_eq!(h.accuracy, hits as f64 / 18.0);
    assert_eq!(h.confusion, ConfusionMatrix::new(&val.labels(), &pred, 3).expect("ok"));
    assert_eq!(h.confusion.total(), 18);
}

#[test]
fn fit_errors_carry_the_fold() {
    let data = lcg_dataset().all();
    let folds = folds_from_assignment(&(0..90).map(|i| i % 5).collect::<Vec<_>>()).expect("ok");
    let err = cross_validate(&BruteKnn { k: 73 }, &data, &folds).expect_err("k > 72 rows");
    assert!(matches!(err, EvalError::Fit { fold: 0, .. }), "{err}");
    assert_eq!(
        err.to_string(),
        "fitting failed on fold 0: k 73 is larger than the 72 training rows"
    );
    let bad = vec![imgclass_eval::Fold { train: vec![0], validation: vec![90] }];
    assert!(matches!(
        cross_validate(&Centroid, &data, &bad),
        Err(EvalError::BadFold { fold: 0, .. })
    ));
    let empty: [BruteKnn; 0] = [];
    assert!(matches!(
        grid_search(&empty, &data, &folds, |_| String::new()),
        Err(EvalError::Empty { .. })
    ));
}

#[test]
fn holdout_grid_search_scores_each_cell_records_tolerated_failures_and_takes_the_first_best() {
    let data = lcg_dataset().all();
    let split = stratified_split(&data.labels(), 0.2, 8).expect("ok");
    let (train, val) = split.apply(&data).expect("in range");
    let grid = [BruteKnn { k: 1 }, BruteKnn { k: 500 }, BruteKnn { k: 5 }, BruteKnn { k: 1 }];
    let mut seen = Vec::new();
    let g = holdout_grid_search(&grid, &train, &val, |_| true, |i, p| seen.push((i, p.accuracy)))
        .expect("runs");
    assert_eq!(g.points.len(), 4);
    // independent path: the single hold-out of each value
    for i in [0, 2, 3] {
        let h = holdout(&grid[i], &train, &val).expect("fits");
        assert_eq!(g.points[i].accuracy, Some(h.accuracy), "cell {i}");
        assert_eq!(g.points[i].failure, None);
    }
    assert_eq!(g.points[1].accuracy, None);
    assert_eq!(g.points[1].failure.as_deref(), Some("k 500 is larger than the 72 training rows"));
    let acc = |i: usize| g.points[i].accuracy.expect("scored");
    let want = if acc(2) > acc(0) { 2 } else { 0 }; // cell 3 ties cell 0: the first wins
    assert_eq!(g.best, Some(want));
    assert_eq!(seen, g.points.iter().map(|p| p.accuracy).enumerate().collect::<Vec<_>>());
    // an error not tolerated ends the search
    let err = holdout_grid_search(&grid, &train, &val, |_| false, |_, _| {}).expect_err("k = 500");
    assert!(matches!(err, EvalError::Fit { fold: 0, .. }), "{err}");
    // every cell failing leaves no best
    let g = holdout_grid_search(&grid[1..2], &train, &val, |_| true, |_, _| {}).expect("runs");
    assert_eq!(g.best, None);
}
