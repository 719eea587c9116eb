//! `cargo xtask bench cv`: fast k-fold cross-validation of k-NN over a grid of k, per
//! distance metric, then one test pass with the chosen k; writes `cv.json`, the plots and a
//! self-contained `report.html`.
//!
//! Per metric the neighbours of every validation row are computed once, up to the largest k
//! of the grid, and every k is scored from that single list (neighbours sort by (distance,
//! training index), so the first k of the k_max list are exactly the k nearest); on pixels
//! one search covers all folds, computing each distance between two folds' rows once
//! (`crate::knn_cv::fast_knn_cv`). The test set is touched once per
//! metric, at the end, with that metric's chosen k; that pass is also the time unit of the
//! target (CV total within 5x one full exact test pass per metric).

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use imgclass_core::{Dataset, Fit, Label, Subset};
use imgclass_eval::{ConfusionMatrix, CvCurve, CvSeries, accuracy, stratified_kfold};
use imgclass_knn::{Knn, Metric};
use imgclass_report::{
    Block, GalleryRow, Section, Table, confusion_svg, cv_plot_svg, cv_table, html_page,
    neighbour_gallery_png,
};
use serde::Serialize;

use crate::knn_cv::{fast_knn_cv, metric_label};
use crate::procstat::cpu_seconds;

/// Arguments.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Distance metrics to cross-validate, comma-separated (`l1`, `l2`).
    #[arg(long, value_delimiter = ',', default_value = "l1,l2")]
    pub metrics: Vec<String>,
    /// Number of cross-validation folds.
    #[arg(long, default_value_t = 5)]
    pub folds: usize,
    /// The grid of k, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,3,5,7,10,15,20,50,100")]
    pub ks: Vec<usize>,
    /// Use N evenly spaced training images (default: all 50,000).
    #[arg(long)]
    pub n_train: Option<usize>,
    /// Use N evenly spaced test images (default: all 10,000).
    #[arg(long)]
    pub n_test: Option<usize>,
    /// Seed of the stratified folds.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Data directory holding `cifar-10/cifar-10-batches-bin/` (default: `IMGCLASS_DATA_DIR`,
    /// else `<workspace>/datasets`).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Output directory for cv.json, folds.json, cv.svg, confusion.svg, gallery.png,
    /// report.html.
    #[arg(long, default_value = "target/bench-cv")]
    pub out: PathBuf,
    /// Test images shown in the neighbour gallery (evenly spaced over the test set).
    #[arg(long, default_value_t = 10)]
    pub gallery_rows: usize,
    /// Training neighbours shown per gallery row.
    #[arg(long, default_value_t = 10)]
    pub gallery_neighbours: usize,
}

/// Wall and CPU seconds since `t0` / `c0`.
fn lap(t0: Instant, c0: Option<f64>) -> (f64, Option<f64>) {
    (t0.elapsed().as_secs_f64(), c0.zip(cpu_seconds()).map(|(a, b)| b - a))
}

/// Timings and results of one metric, as written to cv.json.
#[derive(Debug, Serialize)]
struct MetricRun {
    metric: String,
    chosen_k: usize,
    cv_mean: f64,
    cv_std: f64,
    test_accuracy: f64,
    fold_seconds: Vec<f64>,
    cv_seconds: f64,
    test_pass_seconds: f64,
    /// cv_seconds / test_pass_seconds (the target is at most 5).
    cv_over_test_pass: f64,
    /// CPU seconds (all threads) of the cross-validation, if known.
    cv_cpu_seconds: Option<f64>,
    /// CPU seconds (all threads) of the test pass, if known.
    test_pass_cpu_seconds: Option<f64>,
}

/// The cv.json document.
#[derive(Debug, Serialize)]
struct CvReport<'a> {
    schema_version: u32,
    command: String,
    n_train: usize,
    n_test: usize,
    n_folds: usize,
    seed: u64,
    ks: &'a [usize],
    threads: usize,
    /// For each metric, for each k, the per-fold accuracies, the chosen k and its test accuracy.
    curve: &'a CvCurve,
    runs: &'a [MetricRun],
    total_seconds: f64,
}

use crate::paths::data_dir;

/// `n` evenly spaced rows (`i * len / n`), all rows by default. Evenly spaced rather than
/// the first `n`: a test batch written in class order (as an import from an image folder
/// is) would otherwise give a one-class sample.
fn spaced_rows(ds: &Dataset, n: Option<usize>) -> anyhow::Result<Subset> {
    let len = ds.len();
    let n = n.unwrap_or(len).min(len);
    anyhow::ensure!(n > 0, "no rows selected");
    Ok(ds.subset((0..n).map(|i| i * len / n).collect::<Vec<_>>())?)
}

/// Runs the command.
pub fn run(args: Args) -> anyhow::Result<()> {
    let start = Instant::now();
    let metrics: Vec<Metric> = args.metrics.iter().map(|m| m.parse()).collect::<Result<_, _>>()?;
    anyhow::ensure!(!metrics.is_empty(), "no metric given");
    let mut ks = args.ks.clone();
    ks.sort_unstable();
    ks.dedup();
    anyhow::ensure!(ks.first().is_some_and(|&k| k > 0), "the grid of k must be positive");
    let dir = crate::paths::cifar10_dir(&data_dir(args.data_dir.as_deref()));
    let t = Instant::now();
    let tt = imgclass_data::cifar::read_cifar10(&dir).with_context(|| {
        format!("reading CIFAR-10 from {} (run cargo xtask fetch-data)", dir.display())
    })?;
    tracing::info!(seconds = t.elapsed().as_secs_f64(), "data loaded");
    let train = spaced_rows(&tt.train, args.n_train)?;
    let test = spaced_rows(&tt.test, args.n_test)?;
    let folds = stratified_kfold(&train.labels(), args.folds, args.seed)?;
    std::fs::create_dir_all(&args.out)?;
    let mut assignment = vec![0usize; train.len()];
    for (f, fold) in folds.iter().enumerate() {
        for &p in &fold.validation {
            assignment[p] = f;
        }
    }
    std::fs::write(args.out.join("folds.json"), serde_json::to_string(&assignment)?)?;
    eprintln!(
        "cv: {} train x {} folds, {} test, ks {:?}, metrics {:?}, {} threads",
        train.len(),
        folds.len(),
        test.len(),
        ks,
        args.metrics,
        rayon::current_num_threads()
    );

    let mut series = Vec::new();
    let mut runs = Vec::new();
    let mut test_preds = Vec::new();
    for &metric in &metrics {
        let (t, c) = (Instant::now(), cpu_seconds());
        let (per_fold, fold_seconds) = fast_knn_cv(&train, &folds, metric, &ks, |_, _| {})?;
        let (cv_seconds, cv_cpu_seconds) = lap(t, c);
        let mut s = CvSeries::from_fold_major(metric_label(metric), &ks, &per_fold)?;
        let chosen = s.chosen().context("no finite cv score")?.clone();
        // the test set, touched once with the chosen k: this is the full exact test pass
        let (t, c) = (Instant::now(), cpu_seconds());
        let model = Knn::new(chosen.k).metric(metric).fit(&train)?;
        let nb = model.kneighbors(&test, chosen.k)?;
        let pred = model.vote_from(&nb, chosen.k)?;
        let (test_pass_seconds, test_pass_cpu_seconds) = lap(t, c);
        let test_accuracy = accuracy(&test.labels(), &pred)?;
        s.test_accuracy = Some(test_accuracy);
        let cpu = match (cv_cpu_seconds, test_pass_cpu_seconds) {
            (Some(a), Some(b)) => format!("; cpu {a:.1} s vs {b:.1} s, ratio {:.2}", a / b),
            _ => String::new(),
        };
        eprintln!(
            "{}: chosen k = {}, cv {:.4} ± {:.4}, test {:.4}; wall: cv {:.1} s, test pass {:.1} s, ratio {:.2}{cpu}",
            metric_label(metric),
            chosen.k,
            chosen.scores.mean,
            chosen.scores.std,
            test_accuracy,
            cv_seconds,
            test_pass_seconds,
            cv_seconds / test_pass_seconds
        );
        runs.push(MetricRun {
            metric: metric_label(metric).into(),
            chosen_k: chosen.k,
            cv_mean: chosen.scores.mean,
            cv_std: chosen.scores.std,
            test_accuracy,
            fold_seconds,
            cv_seconds,
            test_pass_seconds,
            cv_over_test_pass: cv_seconds / test_pass_seconds,
            cv_cpu_seconds,
            test_pass_cpu_seconds,
        });
        series.push(s);
        test_preds.push((metric, chosen.k, pred));
    }
    let curve = CvCurve::new("k", series);
    let command = std::env::args().collect::<Vec<_>>().join(" ");
    let report = CvReport {
        schema_version: imgclass_eval::SCHEMA_VERSION,
        command: command.clone(),
        n_train: train.len(),
        n_test: test.len(),
        n_folds: folds.len(),
        seed: args.seed,
        ks: &ks,
        threads: rayon::current_num_threads(),
        curve: &curve,
        runs: &runs,
        total_seconds: start.elapsed().as_secs_f64(),
    };
    std::fs::write(args.out.join("cv.json"), serde_json::to_string_pretty(&report)?)?;

    // report: the metric with the best test-free choice (highest CV mean) is shown in detail
    let best = (0..runs.len())
        .max_by(|&a, &b| runs[a].cv_mean.total_cmp(&runs[b].cv_mean).then(b.cmp(&a)))
        .context("no metric ran")?;
    let (metric, k, pred) = &test_preds[best];
    let names = tt.test.classes().clone();
    let cm = ConfusionMatrix::new(&test.labels(), pred, test.n_classes())?;
    let cv_svg = cv_plot_svg(&curve);
    let cm_svg = confusion_svg(&cm, &names);
    let gallery =
        gallery(&train, &test, *metric, pred, args.gallery_rows, args.gallery_neighbours)?;
    std::fs::write(args.out.join("cv.svg"), &cv_svg)?;
    std::fs::write(args.out.join("confusion.svg"), &cm_svg)?;
    std::fs::write(args.out.join("gallery.png"), &gallery)?;
    let timing = Table {
        header: [
            "metric",
            "cv wall (s)",
            "per fold (s)",
            "test pass wall (s)",
            "cv / test pass (wall)",
            "cv / test pass (cpu)",
        ]
        .map(String::from)
        .into(),
        rows: runs
            .iter()
            .map(|r| {
                let folds: Vec<String> = r.fold_seconds.iter().map(|s| format!("{s:.1}")).collect();
                vec![
                    r.metric.clone(),
                    format!("{:.1}", r.cv_seconds),
                    folds.join(", "),
                    format!("{:.1}", r.test_pass_seconds),
                    format!("{:.2}", r.cv_over_test_pass),
                    r.cv_cpu_seconds
                        .zip(r.test_pass_cpu_seconds)
                        .map_or("-".into(), |(a, b)| format!("{:.2} ({a:.1} s / {b:.1} s)", a / b)),
                ]
            })
            .collect(),
    };
    let mname = metric_label(*metric);
    let page = html_page(
        "k-NN on CIFAR-10: choosing k and the distance by cross-validation",
        &[
            Section::new(
                "Results",
                vec![
                    Block::Text(format!(
                        "{}-fold stratified cross-validation (seed {}) on {} training images; \
                         the test set ({} images) is used once per metric, with that metric's \
                         chosen k.",
                        folds.len(),
                        args.seed,
                        train.len(),
                        test.len()
                    )),
                    Block::Table(cv_table(&curve)),
                    Block::Svg(cv_svg),
                ],
            ),
            Section::new(
                format!("Test confusion matrix ({mname}, k = {k})"),
                vec![Block::Svg(cm_svg)],
            ),
            Section::new(
                format!("Nearest training images ({mname})"),
                vec![
                    Block::Text(
                        "Each row: a test image (its true class below, then the k-NN \
                         prediction), followed by its nearest training images, nearest first; \
                         green frame = same class as the test image, red = different."
                            .into(),
                    ),
                    Block::Png { bytes: gallery, alt: "nearest-neighbour gallery".into() },
                ],
            ),
            Section::new("Timings", vec![Block::Table(timing), Block::Code(command)]),
        ],
    );
    std::fs::write(args.out.join("report.html"), page)?;
    eprintln!(
        "wrote {}/{{cv.json,folds.json,cv.svg,confusion.svg,gallery.png,report.html}} in {:.1} s",
        args.out.display(),
        start.elapsed().as_secs_f64()
    );
    Ok(())
}

/// `rows` evenly spaced test images with their nearest training images under `metric`;
/// `pred` holds the predictions for all of `test`.
fn gallery(
    train: &Subset,
    test: &Subset,
    metric: Metric,
    pred: &[Label],
    rows: usize,
    n_neighbours: usize,
) -> anyhow::Result<Vec<u8>> {
    let rows = rows.min(test.len()).max(1);
    let n_neighbours = n_neighbours.clamp(1, train.len());
    let picks: Vec<usize> = (0..rows).map(|i| i * test.len() / rows).collect();
    let queries = test.select(&picks)?;
    let model = Knn::new(n_neighbours).metric(metric).fit(train)?;
    let nb = model.kneighbors(&queries, n_neighbours)?;
    let (Some(qpx), Some(tpx), Some(shape)) =
        (queries.pixels(), train.pixels(), test.dataset().image_shape())
    else {
        anyhow::bail!("the neighbour gallery shows images; these rows are features");
    };
    let mut out = Vec::with_capacity(rows);
    for (q, &pick) in picks.iter().enumerate() {
        let idx = &nb.indices[q * nb.k..(q + 1) * nb.k];
        out.push(GalleryRow {
            query: qpx.row(q).to_vec(),
            label: queries.label(q),
            predicted: pred.get(pick).copied(),
            neighbours: idx
                .iter()
                .map(|&j| (tpx.row(j as usize).to_vec(), train.label(j as usize)))
                .collect(),
        });
    }
    Ok(neighbour_gallery_png(&out, shape, test.dataset().classes(), 3)?)
}
