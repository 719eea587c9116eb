//! Exact k-NN cross-validation shared by `cargo xtask bench cv` and `cargo xtask experiment`.
//!
//! Every k of the grid is scored from ONE neighbour list per query, searched up to the
//! largest k. Neighbours sort by (distance, training position), so the first k of the k_max
//! list are exactly the k nearest and the k-vote equals that of a separate search with k.
//!
//! Two searches give the same lists. On pixels whose folds partition the rows (each fold's
//! training side the others' rows in increasing order, as `stratified_kfold` makes them),
//! [`fast_knn_cv`] runs one search over all folds at once
//! (`imgclass_linalg::knn_u8_across_groups` with the folds as groups), which computes each
//! distance between rows of two folds once instead of once per fold: half the distance work.
//! Its neighbours are row indices of `data`; a fold's training side is those rows in
//! increasing order, so (distance, row) and (distance, training position) sort alike and
//! mapping a row to its position gives the per-fold lists exactly. Otherwise (features, or
//! folds of another shape) it runs [`per_fold_knn_cv`]: one search per fold, the reference
//! the tests compare against.
//!
//! It lives in xtask because it joins imgclass-knn and imgclass-eval, which must not know
//! each other (docs/ARCHITECTURE.md).

use std::time::Instant;

use anyhow::Context;
use imgclass_core::{Fit, Subset, Values};
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

/// Fold-major accuracies of every k (`out[f][i]` for fold `f` and `ks[i]`), and the seconds
/// each fold took; `on_fold(f, accs)` runs after fold `f` is scored (for progress). The same
/// accuracies as [`per_fold_knn_cv`], bit for bit; on pixels with partitioning folds (see the
/// module doc) from one search over all folds, whose seconds are shared equally among the
/// folds (each fold adds its own votes), and whose `on_fold` calls all come after it.
pub fn fast_knn_cv(
    data: &Subset,
    folds: &[Fold],
    metric: Metric,
    ks: &[usize],
    mut on_fold: impl FnMut(usize, &[f64]),
) -> anyhow::Result<(Vec<Vec<f64>>, Vec<f64>)> {
    let k_max = ks.iter().copied().max().context("empty grid of k")?;
    let t = Instant::now();
    let Some(per_fold_nb) = two_sided_neighbors(data, folds, k_max, metric)? else {
        tracing::debug!(metric = metric_label(metric), "k-NN CV: one search per fold");
        return per_fold_knn_cv(data, folds, metric, ks, on_fold);
    };
    let shared = t.elapsed().as_secs_f64() / folds.len().max(1) as f64;
    tracing::debug!(
        metric = metric_label(metric),
        seconds = format_args!("{:.2}", t.elapsed().as_secs_f64()),
        "k-NN CV: one search over all folds"
    );
    let mut per_fold = Vec::with_capacity(folds.len());
    let mut seconds = Vec::with_capacity(folds.len());
    for (f, (model, val, neighbours)) in per_fold_nb.into_iter().enumerate() {
        let t = Instant::now();
        let accs = score_ks(&model, &val, &neighbours, ks)?;
        let s = shared + t.elapsed().as_secs_f64();
        log_fold(metric, f, s, &accs);
        on_fold(f, &accs);
        per_fold.push(accs);
        seconds.push(s);
    }
    Ok((per_fold, seconds))
}

/// [`fast_knn_cv`] by one exact neighbour search per fold (the fold's validation rows against
/// its training rows, through `KnnModel::kneighbors`): the reference, and the path for
/// features and for folds that do not partition the rows.
pub fn per_fold_knn_cv(
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
        let accs = score_ks(&model, &val, &neighbours, ks)?;
        let s = t.elapsed().as_secs_f64();
        log_fold(metric, f, s, &accs);
        on_fold(f, &accs);
        per_fold.push(accs);
        seconds.push(s);
    }
    Ok((per_fold, seconds))
}

/// The accuracy on `val` of every k of `ks` voted from `neighbours` (positions in `model`'s
/// training rows).
fn score_ks(
    model: &KnnModel,
    val: &Subset,
    neighbours: &Neighbors<f64>,
    ks: &[usize],
) -> anyhow::Result<Vec<f64>> {
    let truth = val.labels();
    let mut accs = Vec::with_capacity(ks.len());
    for &k in ks {
        let pred = model.vote_from(neighbours, k)?;
        accs.push(accuracy(&truth, &pred)?);
    }
    Ok(accs)
}

fn log_fold(metric: Metric, fold: usize, s: f64, accs: &[f64]) {
    let accs_3: Vec<String> = accs.iter().map(|a| format!("{a:.3}")).collect();
    tracing::debug!(
        metric = metric_label(metric),
        fold,
        seconds = format_args!("{s:.2}"),
        accs = %accs_3.join(" "),
        "fold done"
    );
}

/// The fold of every row of `0..n` when the folds partition them as the two-sided search
/// needs: every row in exactly one validation side, and each fold's training side exactly the
/// other rows in increasing order (so a training position ranks like its row). `None` for
/// any other shape (then the per-fold search is the one that applies).
fn fold_groups(folds: &[Fold], n: usize) -> Option<Vec<usize>> {
    let mut group = vec![usize::MAX; n];
    for (f, fold) in folds.iter().enumerate() {
        if fold.validation.is_empty() {
            return None;
        }
        for &r in &fold.validation {
            let g = group.get_mut(r)?;
            if *g != usize::MAX {
                return None;
            }
            *g = f;
        }
    }
    if group.contains(&usize::MAX) {
        return None;
    }
    for (f, fold) in folds.iter().enumerate() {
        let mut others = (0..n).filter(|&r| group[r] != f);
        if !fold.train.iter().all(|&r| others.next() == Some(r)) || others.next().is_some() {
            return None;
        }
    }
    Some(group)
}

/// One fold's model (k_max, on its training side), validation side and the validation rows'
/// neighbours as positions in the training side.
type FoldNeighbors = (KnnModel, Subset, Neighbors<f64>);

/// Per fold: the fitted model (k_max, on the fold's training side), the validation side and
/// its neighbours as positions in the training side, exactly as `exact_neighbors(train, val,
/// k_max, metric)` gives them, from ONE search over all folds; `None` when that search does
/// not apply (features, or folds that do not partition the rows: [`fold_groups`]).
fn two_sided_neighbors(
    data: &Subset,
    folds: &[Fold],
    k_max: usize,
    metric: Metric,
) -> anyhow::Result<Option<Vec<FoldNeighbors>>> {
    let Values::Pixels(rows) = data.values() else { return Ok(None) };
    let Some(groups) = fold_groups(folds, data.len()) else { return Ok(None) };
    // fit first: the per-fold path's checks (k against each fold, metric, row length) and
    // errors, before any search
    let mut fitted = Vec::with_capacity(folds.len());
    for fold in folds {
        let (train, val) = fold.apply(data)?;
        fitted.push((Knn::new(k_max).metric(metric).fit(&train)?, val));
    }
    let all = imgclass_linalg::knn_u8_across_groups(rows, &groups, k_max, metric)?;
    let mut position = vec![u32::MAX; data.len()];
    let mut out = Vec::with_capacity(folds.len());
    for (fold, (model, val)) in folds.iter().zip(fitted) {
        for (p, &r) in fold.train.iter().enumerate() {
            position[r] = u32::try_from(p)?;
        }
        let mut indices = Vec::with_capacity(fold.validation.len() * k_max);
        let mut distances = Vec::with_capacity(fold.validation.len() * k_max);
        for &v in &fold.validation {
            let (idx, dst) = all.query(v);
            // every neighbour of v is in another fold, i.e. in this fold's training side
            indices.extend(idx.iter().map(|&r| position[r as usize]));
            distances.extend(dst.iter().map(|&d| f64::from(d)));
        }
        out.push((model, val, Neighbors { k: k_max, indices, distances }));
    }
    Ok(Some(out))
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

    /// 3 classes of 6-pixel images with pixel values 0..4 whatever the class: distances tie
    /// all the time, so which of two equally near rows comes first decides many votes.
    fn ties(n: usize) -> Dataset {
        let mut g = SplitMix64::new(17);
        let labels: Vec<Label> = (0..n).map(|_| g.below(3) as Label).collect();
        let pixels = (0..n * 6).map(|_| g.below(4) as u8).collect();
        Dataset::new(pixels, labels, ImageShape::new(1, 2, 3), ClassNames::new(["a", "b", "c"]))
            .expect("valid")
    }

    #[test]
    fn one_search_over_all_folds_gives_each_folds_own_neighbours() {
        // reference: one exact search per fold (validation rows against training rows)
        let data = ties(157).all();
        let mut unequal: Vec<usize> = (0..157).map(|i| (i * 7) % 4).collect();
        unequal[3] = 4; // a fold of one row
        unequal[10..40].iter_mut().for_each(|a| *a = 1); // and one much larger
        let layouts = [
            stratified_kfold(&data.labels(), 5, 3).expect("folds"),
            imgclass_eval::folds_from_assignment(&unequal).expect("folds"),
        ];
        for folds in &layouts {
            let smallest = folds.iter().map(|f| f.train.len()).min().expect("folds");
            for metric in [Metric::L1, Metric::L2] {
                for k_max in [1, 7, 60, smallest] {
                    let two = two_sided_neighbors(&data, folds, k_max, metric)
                        .expect("search")
                        .expect("these folds partition the rows");
                    for (f, (fold, (_, val, got))) in folds.iter().zip(&two).enumerate() {
                        let (train, want_val) = fold.apply(&data).expect("fold");
                        assert_eq!(val.labels(), want_val.labels());
                        let (_, want) = exact_neighbors(&train, &want_val, k_max, metric)
                            .expect("per-fold search");
                        assert_eq!(got, &want, "{metric} k_max {k_max} fold {f}");
                    }
                }
                let ks = [1, 2, 3, 4, 7, 15, 60];
                let two = fast_knn_cv(&data, folds, metric, &ks, |_, _| {}).expect("two-sided");
                let one = per_fold_knn_cv(&data, folds, metric, &ks, |_, _| {}).expect("per fold");
                assert_eq!(two.0, one.0, "{metric}");
                assert_eq!(two.1.len(), folds.len());
            }
        }
    }

    #[test]
    fn folds_of_another_shape_take_the_per_fold_search() {
        let data = ties(40).all();
        let folds = stratified_kfold(&data.labels(), 4, 1).expect("folds");
        assert_eq!(fold_groups(&folds, 40).map(|g| g.len()), Some(40));
        let mut shapes = Vec::new();
        // training side out of order
        let mut f = folds.clone();
        f[1].train.reverse();
        shapes.push(f);
        // a row in no validation side (trained on by every fold)
        let mut f = folds.clone();
        let r = f[0].validation.remove(0);
        f[0].train.push(r);
        f[0].train.sort_unstable();
        shapes.push(f);
        // a row held out twice
        let mut f = folds.clone();
        let r = f[2].validation[0];
        f[3].train.retain(|&t| t != r);
        f[3].validation.push(r);
        shapes.push(f);
        // a training side missing a row of the others
        let mut f = folds.clone();
        f[0].train.pop();
        shapes.push(f);
        for (i, f) in shapes.iter().enumerate() {
            assert_eq!(fold_groups(f, 40), None, "shape {i}");
            assert!(two_sided_neighbors(&data, f, 3, Metric::L1).expect("runs").is_none());
            let ks = [1, 3, 5];
            let got = fast_knn_cv(&data, f, Metric::L1, &ks, |_, _| {}).expect("runs");
            let want = per_fold_knn_cv(&data, f, Metric::L1, &ks, |_, _| {}).expect("runs");
            assert_eq!(got.0, want.0, "shape {i}");
        }
    }

    #[test]
    fn k_above_a_folds_training_rows_is_an_error_on_both_paths() {
        let data = ties(20).all();
        let folds = stratified_kfold(&data.labels(), 4, 1).expect("folds");
        let ks = [1, 16];
        let errs = [
            fast_knn_cv(&data, &folds, Metric::L2, &ks, |_, _| {}).expect_err("k too large"),
            per_fold_knn_cv(&data, &folds, Metric::L2, &ks, |_, _| {}).expect_err("k too large"),
        ];
        for err in errs {
            assert!(err.to_string().contains("k = 16 exceeds the 15 training rows"), "{err}");
        }
    }

    #[test]
    fn metric_names_parse_and_label() {
        for m in [Metric::L1, Metric::L2] {
            assert_eq!(metric_label(m).parse::<Metric>(), Ok(m));
        }
    }
}
