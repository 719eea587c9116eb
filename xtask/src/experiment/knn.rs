//! The k-NN phase: `folds`-fold stratified cross-validation over the grid of k for each
//! distance, with ONE exact neighbour search per fold and metric up to the largest k (the
//! neighbours sort by (distance, training index), so the first k of that list are exactly the
//! k nearest and every k is scored from it); the best (metric, k) by mean CV accuracy is then
//! scored once on the test set, and the same test search feeds the neighbour gallery.

use std::time::Instant;

use anyhow::Context;
use imgclass_core::{Label, Subset};
use imgclass_eval::{ClassReport, ConfusionMatrix, CvCurve, CvSeries, accuracy, stratified_kfold};
use imgclass_linalg::{Metric, Rows, TopK, knn_u8};
use imgclass_report::GalleryRow;
use serde::Serialize;

use super::config::{KnnConfig, parse_metric};
use super::progress::Progress;

/// Exact neighbours of `queries` among `train` (positions into `train`), up to `k`, sorted by
/// (distance, training position).
pub fn kneighbors(
    train: &Subset,
    queries: &Subset,
    k: usize,
    metric: Metric,
) -> anyhow::Result<TopK> {
    let dim = train.dim();
    let t = Rows::gather(train.dataset().pixels(), dim, train.indices())?;
    let q = Rows::gather(queries.dataset().pixels(), dim, queries.indices())?;
    Ok(knn_u8(q, t, k, metric)?)
}

/// Majority vote of the first `k` neighbours of each query (`k <= nb.k`); ties go to the
/// smaller label.
pub fn vote_from(train: &Subset, nb: &TopK, k: usize) -> Vec<Label> {
    let mut counts = vec![0u32; train.n_classes()];
    (0..nb.n_queries())
        .map(|q| {
            counts.iter_mut().for_each(|c| *c = 0);
            for &j in &nb.indices[q * nb.k..q * nb.k + k] {
                counts[train.label(j as usize) as usize] += 1;
            }
            let mut best = 0;
            for (c, &v) in counts.iter().enumerate() {
                if v > counts[best] {
                    best = c;
                }
            }
            best as Label
        })
        .collect()
}

/// The display name of a metric (`L1`, `L2`).
pub fn metric_label(m: Metric) -> &'static str {
    match m {
        Metric::L1 => "L1",
        Metric::L2 => "L2",
    }
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
    /// The chosen metric.
    pub best_metric: String,
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
}

/// Number of progress steps of [`run`].
pub fn steps(cfg: &KnnConfig) -> u64 {
    (cfg.metrics.len() * cfg.folds + 1) as u64
}

/// Runs the phase on `train` (CV) and `test` (once).
pub fn run(
    train: &Subset,
    test: &Subset,
    cfg: &KnnConfig,
    seed: u64,
    progress: &mut Progress,
) -> anyhow::Result<KnnResult> {
    let metrics: Vec<Metric> = cfg
        .metrics
        .iter()
        .map(|m| parse_metric(m).context("unknown metric"))
        .collect::<Result<_, _>>()?;
    let folds = stratified_kfold(&train.labels(), cfg.folds, seed)?;
    let min_fold_train = folds.iter().map(|f| f.train.len()).min().unwrap_or(0);
    let mut ks: Vec<usize> = cfg.ks.iter().copied().filter(|&k| k <= min_fold_train).collect();
    ks.sort_unstable();
    ks.dedup();
    anyhow::ensure!(
        !ks.is_empty(),
        "every k of the grid {:?} exceeds the {min_fold_train} training rows of a fold",
        cfg.ks
    );
    if ks.len() < cfg.ks.len() {
        tracing::warn!(?ks, min_fold_train, "k larger than a fold's training set dropped");
    }
    let k_max = ks[ks.len() - 1];
    let mut series = Vec::new();
    let mut fold_seconds = Vec::new();
    for &metric in &metrics {
        let mut per_fold = Vec::with_capacity(folds.len());
        let mut secs = Vec::with_capacity(folds.len());
        for (f, fold) in folds.iter().enumerate() {
            let t = Instant::now();
            let (tr, val) = fold.apply(train)?;
            let nb = kneighbors(&tr, &val, k_max, metric)?;
            let truth = val.labels();
            let accs = ks
                .iter()
                .map(|&k| accuracy(&truth, &vote_from(&tr, &nb, k)))
                .collect::<Result<Vec<_>, _>>()?;
            secs.push(t.elapsed().as_secs_f64());
            tracing::debug!(metric = metric_label(metric), fold = f, ?accs, "fold done");
            per_fold.push(accs);
            progress.step(&format!("{} fold {}/{}", metric_label(metric), f + 1, folds.len()));
        }
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
    let k_search = best_k.max(cfg.gallery_neighbours).min(train.len());
    let nb = kneighbors(train, test, k_search, metric)?;
    let pred = vote_from(train, &nb, best_k);
    let test_seconds = t.elapsed().as_secs_f64();
    let truth = test.labels();
    let test_accuracy = accuracy(&truth, &pred)?;
    series[bi].test_accuracy = Some(test_accuracy);
    progress.step(&format!("test pass {} k={best_k}", metric_label(metric)));
    let confusion = ConfusionMatrix::new(&truth, &pred, test.n_classes())?;
    let per_class = confusion.class_reports();

    let rows = cfg.gallery_rows.min(test.len());
    let gallery_rows: Vec<usize> = (0..rows).map(|i| i * test.len() / rows.max(1)).collect();
    let n_show = cfg.gallery_neighbours.min(nb.k);
    let gallery = gallery_rows
        .iter()
        .map(|&q| GalleryRow {
            query: test.row(q).to_vec(),
            label: test.label(q),
            predicted: Some(pred[q]),
            neighbours: nb.indices[q * nb.k..q * nb.k + n_show]
                .iter()
                .map(|&j| (train.row(j as usize).to_vec(), train.label(j as usize)))
                .collect(),
        })
        .collect();
    Ok(KnnResult {
        folds: folds.len(),
        ks,
        curve: CvCurve::new("k", series),
        best_metric: metric_label(metric).into(),
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
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use imgclass_core::{ClassNames, Dataset, ImageShape};

    #[test]
    fn vote_breaks_ties_toward_smaller_label_and_uses_first_k() {
        // train labels by position: 0 -> 2, 1 -> 1, 2 -> 1, 3 -> 0
        let ds = Dataset::new(
            vec![0, 1, 2, 3],
            vec![2, 1, 1, 0],
            ImageShape::new(1, 1, 1),
            ClassNames::new(["a", "b", "c"]),
        )
        .expect("valid");
        let train = ds.all();
        // one query whose neighbours in order are positions 0, 3, 1, 2
        let nb = TopK { k: 4, indices: vec![0, 3, 1, 2], distances: vec![0, 1, 2, 3] };
        assert_eq!(vote_from(&train, &nb, 1), vec![2]); // label of position 0
        assert_eq!(vote_from(&train, &nb, 2), vec![0]); // {2, 0} tie -> 0
        assert_eq!(vote_from(&train, &nb, 4), vec![1]); // {2, 0, 1, 1} -> 1
    }

    #[test]
    fn one_search_per_fold_scores_like_a_search_per_k() {
        // naive oracle: for each k, a separate search with exactly k neighbours
        let tt = super::super::demo::generate(5);
        let train = tt.train.subset((0..300).collect::<Vec<_>>()).expect("rows");
        let test = tt.test.subset((0..60).collect::<Vec<_>>()).expect("rows");
        let nb = kneighbors(&train, &test, 20, Metric::L1).expect("search");
        for k in [1, 3, 7, 20] {
            let single = kneighbors(&train, &test, k, Metric::L1).expect("search");
            assert_eq!(vote_from(&train, &nb, k), vote_from(&train, &single, k), "k = {k}");
        }
    }
}
