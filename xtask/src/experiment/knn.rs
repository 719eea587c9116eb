//! The k-NN phase: `folds`-fold stratified cross-validation over the grid of k for each
//! distance, with ONE exact neighbour list per validation row and metric up to the largest k
//! (the neighbours sort by (distance, training index), so the first k of that list are exactly
//! the k nearest and every k is scored from it; on pixels one search serves all folds and
//! computes each distance between two folds' rows once: `crate::knn_cv::fast_knn_cv`); the best (metric, k) by mean CV accuracy is then
//! scored once on the test set, and the same test search feeds the neighbour gallery.

use std::time::Instant;

use anyhow::Context;
use imgclass_core::Subset;
use imgclass_eval::{ClassReport, ConfusionMatrix, CvCurve, CvSeries, accuracy, stratified_kfold};
use imgclass_knn::{Metric, Neighbors};
use imgclass_report::GalleryRow;
use serde::Serialize;

use super::config::KnnConfig;
use super::progress::Progress;
use crate::knn_cv::{exact_neighbors, fast_knn_cv};

pub use crate::knn_cv::metric_label;

/// Exact neighbours of `queries` among `train` (positions into `train`), up to `k`, sorted by
/// (distance, training position).
pub fn kneighbors(
    train: &Subset,
    queries: &Subset,
    k: usize,
    metric: Metric,
) -> anyhow::Result<Neighbors<f64>> {
    Ok(exact_neighbors(train, queries, k, metric)?.1)
}

/// What the k-NN phase found (serialised into results.json).
#[derive(Debug, Serialize)]
pub struct KnnResult {
    /// Number of CV folds.
    pub folds: usize,
    /// The grid of k actually used (sorted; k above a fold's training size dropped).
    pub ks: Vec<usize>,
    /// Accuracy against k per metric, per fold; the best series carries the test accuracy.
    pub curve: CvCurve,
    /// The chosen metric (results.json spells it as [`metric_label`] does: `"L1"`, `"L2"`).
    #[serde(serialize_with = "crate::knn_cv::serialize_metric_label")]
    pub best_metric: Metric,
    /// The chosen k.
    pub best_k: usize,
    /// Its mean CV accuracy.
    pub cv_mean: f64,
    /// Its CV standard deviation.
    pub cv_std: f64,
    /// Test accuracy of the chosen configuration (the test set's one use).
    pub test_accuracy: f64,
    /// Test confusion matrix (row = truth).
    pub confusion: ConfusionMatrix,
    /// Per-class precision, recall, F1 on the test set.
    pub per_class: Vec<ClassReport>,
    /// Test rows shown in the gallery (positions in the test subset).
    pub gallery_rows: Vec<usize>,
    /// Seconds of each fold's search, per metric (metric order of `curve`).
    pub fold_seconds: Vec<Vec<f64>>,
    /// Seconds of the test pass.
    pub test_seconds: f64,
    /// The gallery image (written as gallery.png).
    #[serde(skip)]
    pub gallery: Vec<GalleryRow>,
    /// The first misclassified test images: (pixels, true label, predicted label).
    #[serde(skip)]
    pub misclassified: Vec<super::report::Mistake>,
    /// What the rows searched were: `raw` pixels or the feature steps' labels.
    pub representation: String,
    /// The fitted feature steps (saved with the model as a pipeline).
    #[serde(skip)]
    pub steps: Vec<imgclass_features::Step>,
    /// Seconds to fit and apply the steps.
    pub steps_seconds: f64,
}

/// Number of progress steps of [`run`].
pub fn steps(cfg: &KnnConfig) -> u64 {
    (cfg.metrics.len() * cfg.folds + 1) as u64
}

/// The grid's distinct values of k, sorted: `(kept, dropped)`, where `dropped` holds those
/// larger than a fold's `min_fold_train` rows (a repeated k is merged, not dropped).
fn usable_ks(grid: &[usize], min_fold_train: usize) -> (Vec<usize>, Vec<usize>) {
    let mut all = grid.to_vec();
    all.sort_unstable();
    all.dedup();
    all.into_iter().partition(|&k| k <= min_fold_train)
}

/// Runs the phase on `train` (CV) and `test` (once).
pub fn run(
    prep: &super::steps::Prepared,
    (shown_train, shown_test): (&Subset, &Subset),
    cfg: &KnnConfig,
    seed: u64,
    progress: &mut Progress,
) -> anyhow::Result<KnnResult> {
    let (train, test) = (&prep.train, &prep.test);
    let metrics: Vec<Metric> = cfg.metrics.clone();
    let folds = stratified_kfold(&train.labels(), cfg.folds, seed)?;
    let min_fold_train = folds.iter().map(|f| f.train.len()).min().unwrap_or(0);
    let (ks, dropped) = usable_ks(&cfg.ks, min_fold_train);
    anyhow::ensure!(
        !ks.is_empty(),
        "every k of the grid {:?} exceeds the {min_fold_train} training rows of a fold",
        cfg.ks
    );
    if !dropped.is_empty() {
        tracing::warn!(?dropped, kept = ?ks, min_fold_train, "k larger than a fold's training set dropped");
    }
    let mut series = Vec::new();
    let mut fold_seconds = Vec::new();
    for &metric in &metrics {
        let n_folds = folds.len();
        let (per_fold, secs) = fast_knn_cv(train, &folds, metric, &ks, |f, _| {
            progress.step(&format!("{} fold {}/{n_folds}", metric_label(metric), f + 1));
        })?;
        series.push(CvSeries::from_fold_major(metric_label(metric), &ks, &per_fold)?);
        fold_seconds.push(secs);
    }
    // the best configuration over all metrics: highest mean CV accuracy, ties to the first
    // metric of the list (and, within a series, to the smaller k)
    let mut best: Option<(usize, usize, f64, f64)> = None;
    for (i, s) in series.iter().enumerate() {
        if let Some(p) = s.chosen()
            && best.is_none_or(|b| p.scores.mean > b.2)
        {
            best = Some((i, p.k, p.scores.mean, p.scores.std));
        }
    }
    let (bi, best_k, cv_mean, cv_std) = best.context("no finite cross-validation score")?;
    let metric = metrics[bi];

    // the test set, touched once: the chosen configuration's neighbours, also for the gallery
    let t = Instant::now();
    let k_search = best_k
        .max(cfg.gallery_neighbours.min(super::config::MAX_GALLERY_NEIGHBOURS))
        .min(train.len());
    let (model, nb) = exact_neighbors(train, test, k_search, metric)?;
    let pred = model.vote_from(&nb, best_k)?;
    let test_seconds = t.elapsed().as_secs_f64();
    let truth = test.labels();
    let test_accuracy = accuracy(&truth, &pred)?;
    series[bi].test_accuracy = Some(test_accuracy);
    progress.step(&format!("test pass {} k={best_k}", metric_label(metric)));
    let confusion = ConfusionMatrix::new(&truth, &pred, test.n_classes())?;
    let per_class = confusion.class_reports();

    // clamped to the data and to the stated maximum (the config refuses more; a clamp here
    // keeps the PNG's size bounded whoever builds the config)
    let rows = cfg.gallery_rows.min(test.len()).min(super::config::MAX_GALLERY_ROWS);
    let gallery_rows: Vec<usize> = (0..rows).map(|i| i * test.len() / rows.max(1)).collect();
    let n_show = cfg.gallery_neighbours.min(super::config::MAX_GALLERY_NEIGHBOURS).min(nb.k);
    // the gallery shows the images (same positions as the rows searched)
    let (Some(qpx), Some(tpx)) = (shown_test.pixels(), shown_train.pixels()) else {
        anyhow::bail!("the neighbour gallery shows images; the experiment's rows are features");
    };
    let gallery = gallery_rows
        .iter()
        .map(|&q| GalleryRow {
            query: qpx.row(q).to_vec(),
            label: test.label(q),
            predicted: Some(pred[q]),
            neighbours: nb.indices[q * nb.k..q * nb.k + n_show]
                .iter()
                .map(|&j| (tpx.row(j as usize).to_vec(), train.label(j as usize)))
                .collect(),
        })
        .collect();
    Ok(KnnResult {
        folds: folds.len(),
        ks,
        curve: CvCurve::new("k", series),
        best_metric: metric,
        best_k,
        cv_mean,
        cv_std,
        test_accuracy,
        confusion,
        per_class,
        gallery_rows,
        fold_seconds,
        test_seconds,
        gallery,
        misclassified: super::report::mistakes(shown_test, &truth, &pred),
        representation: prep.representation.clone(),
        steps: prep.steps.clone(),
        steps_seconds: prep.seconds,
    })
}

#[cfg(test)]
mod tests {
    use super::usable_ks;

    /// Issue 17 item 12: the dropped values are the ones too large (the warning listed the
    /// kept ones), and a mere duplicate is merged, not reported as dropped.
    #[test]
    fn usable_ks_reports_the_dropped_values_not_duplicates() {
        assert_eq!(usable_ks(&[5, 1, 1, 3], 4), (vec![1, 3], vec![5]));
        assert_eq!(usable_ks(&[1, 1], 10), (vec![1], vec![]));
        assert_eq!(usable_ks(&[100, 50, 100], 10), (vec![], vec![50, 100]));
    }
}
