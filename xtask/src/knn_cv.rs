//! Exact k-NN cross-validation shared by `cargo xtask bench cv` and `cargo xtask experiment`.
//!
//! Per fold, ONE exact neighbour search up to the largest k of the grid; every k is scored
//! from it. Neighbours sort by (distance, training position), so the first k of the k_max
//! list are exactly the k nearest and the k-vote equals that of a separate search with k.
//! It lives in xtask because it joins imgclass-knn and imgclass-eval, which must not know
//! each other (docs/ARCHITECTURE.md).

use std::time::Instant;

use anyhow::Context;
use imgclass_core::{Fit, Subset};
use imgclass_eval::{Fold, accuracy};
use imgclass_knn::{Knn, KnnModel, Metric, Neighbors};

/// The display name of a metric in tables and plots (`L1`, `L2`, `cosine`).
pub fn metric_label(m: Metric) -> &'static str {
    match m {
        Metric::L1 => "L1",
        Metric::L2 => "L2",
        Metric::Cosine => "cosine",
    }
}

/// Serialises a metric as [`metric_label`] spells it (results.json's `"L1"`, `"L2"`).
pub fn serialize_metric_label<S: serde::Serializer>(m: &Metric, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(metric_label(*m))
}

/// A majority-vote k-NN model on `train` and the exact `k` nearest training positions of
/// every row of `queries`, sorted by (distance, position).
pub fn exact_neighbors(
    train: &Subset,
    queries: &Subset,
    k: usize,
    metric: Metric,
) -> anyhow::Result<(KnnModel, Neighbors<f64>)> {
    let model = Knn::new(k).metric(metric).fit(train)?;
    let nb = model.kneighbors(queries, k)?;
    Ok((model, nb))
}

/// Fold-major accuracies of every k (`out[f][i]` for fold `f` and `ks[i]`) from one neighbour
/// search per fold up to the largest k, and the seconds each fold took. `on_fold(f, accs)`
/// runs after fold `f` (for progress).
pub fn fast_knn_cv(
    data: &Subset,
    folds: &[Fold],
    metric: Metric,
    ks: &[usize],
    mut on_fold: impl FnMut(usize, &[f64]),
) -> anyhow::Result<(Vec<Vec<f64>>, Vec<f64>)> {
    let k_max = ks.iter().copied().max().context("empty grid of k")?;
    let mut per_fold = Vec::with_capacity(folds.len());
    let mut seconds = Vec::with_capacity(folds.len());
    for (f, fold) in folds.iter().enumerate() {
        let t = Instant::now();
        let (train, val) = fold.apply(data)?;
        let (model, neighbours) = exact_neighbors(&train, &val, k_max, metric)?;
        let truth = val.labels();
        let mut accs = Vec::with_capacity(ks.len());
        for &k in ks {
            let pred = model.vote_from(&neighbours, k)?;
            accs.push(accuracy(&truth, &pred)?);
        }
        let s = t.elapsed().as_secs_f64();
        let accs_3: Vec<String> = accs.iter().map(|a| format!("{a:.3}")).collect();
        tracing::debug!(
            metric = metric_label(metric),
            fold = f,
            seconds = format_args!("{s:.2}"),
            accs = %accs_3.join(" "),
            "fold done"
        );
        on_fold(f, &accs);
        per_fold.push(accs);
        seconds.push(s);
    }
    Ok((per_fold, seconds))
}

#[cfg(test)]
mod tests {
    use super::*;
    use imgclass_core::rng::SplitMix64;
    use imgclass_core::{ClassNames, Dataset, ImageShape, Label};
    use imgclass_eval::stratified_kfold;

    /// 3 classes of 12-pixel images: class means 60, 100, 140 plus uniform noise in 0..80,
    /// so neighbours overlap between classes and k matters.
    fn noisy() -> Dataset {
        let mut g = SplitMix64::new(5);
        let labels: Vec<Label> = (0..120).map(|i| i % 3).collect();
        let pixels = labels
            .iter()
            .flat_map(|&l| {
                (0..12).map(|_| 20 + 40 * l as u8 + g.below(80) as u8).collect::<Vec<_>>()
            })
            .collect();
        Dataset::new(pixels, labels, ImageShape::new(3, 2, 2), ClassNames::new(["a", "b", "c"]))
            .expect("valid")
    }

    #[test]
    fn one_search_per_fold_scores_every_k_like_separate_fits() {
        // independent path: imgclass_eval::cross_validate fits Knn::new(k) per k and predicts
        let data = noisy().all();
        let folds = stratified_kfold(&data.labels(), 4, 9).expect("folds");
        let ks = [1, 2, 5, 9, 30];
        for metric in [Metric::L1, Metric::L2] {
            let mut seen = Vec::new();
            let (per_fold, secs) =
                fast_knn_cv(&data, &folds, metric, &ks, |f, _| seen.push(f)).expect("runs");
            assert_eq!(secs.len(), 4);
            assert_eq!(seen, [0, 1, 2, 3]);
            for (i, &k) in ks.iter().enumerate() {
                let want =
                    imgclass_eval::cross_validate(&Knn::new(k).metric(metric), &data, &folds)
                        .expect("cv");
                let got: Vec<f64> = per_fold.iter().map(|f| f[i]).collect();
                assert_eq!(got, want.per_fold, "{metric} k={k}");
            }
        }
    }

    #[test]
    fn metric_names_parse_and_label() {
        for m in [Metric::L1, Metric::L2] {
            assert_eq!(metric_label(m).parse::<Metric>(), Ok(m));
        }
    }
}
