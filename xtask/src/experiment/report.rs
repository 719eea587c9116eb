//! Everything the experiment writes: the figures (SVG/PNG files), results.json, report.html,
//! and the summary table printed at the end.
//!
//! results.json convention: every value that depends on the wall clock has `second` in its
//! key (`*_seconds`, `queries_per_second`, `speedup_seconds_ratio`) or sits under `timings`
//! or `run` (date, command line, thread count); everything else is a function of the data,
//! the config and the seed only, whatever the thread count.

use std::path::Path;

use anyhow::Context;
use imgclass_core::{ClassNames, ImageShape};
use imgclass_report::{
    Block, Heatmap, LinePlot, LineSeries, Section, Table, confusion_svg, cv_plot_svg, cv_table,
    heatmap_svg, html_page, line_plot_svg, neighbour_gallery_png, templates_png,
};
use serde::Serialize;

use super::ann::AnnResult;
use super::config::Config;
use super::knn::KnnResult;
use super::linear::LinearResult;

/// Version of the results.json layout.
pub const RESULTS_SCHEMA_VERSION: u32 = 1;

/// The dataset as used.
#[derive(Debug, Serialize)]
pub struct DatasetInfo {
    /// `--dataset` name.
    pub name: String,
    /// `C x H x W`.
    pub shape: ImageShape,
    /// Class names in label order.
    pub classes: ClassNames,
    /// Training images available.
    pub n_train_available: usize,
    /// Test images available.
    pub n_test_available: usize,
    /// Training images used.
    pub n_train: usize,
    /// Test images used.
    pub n_test: usize,
}

/// Seconds per phase (wall clock).
#[derive(Debug, Default, Serialize)]
pub struct Timings {
    /// Loading (and subsampling) the data.
    pub load_seconds: f64,
    /// The k-NN phase.
    pub knn_seconds: f64,
    /// The linear phase.
    pub linear_seconds: f64,
    /// The approximate-search phase.
    pub ann_seconds: f64,
    /// Rendering and writing the report.
    pub report_seconds: f64,
    /// Everything.
    pub total_seconds: f64,
}

/// The environment of the run (not reproducible by design).
#[derive(Debug, Serialize)]
pub struct RunInfo {
    /// Start time, UTC.
    pub started_utc: String,
    /// The command line.
    pub command: String,
    /// Rayon threads.
    pub threads: usize,
    /// xtask version.
    pub version: &'static str,
}

/// One written figure and where its data sits in results.json.
#[derive(Debug, Clone, Serialize)]
pub struct Figure {
    /// File name in the report directory.
    pub file: String,
    /// What it shows.
    pub caption: String,
    /// JSON path of the plotted data in results.json.
    pub data: String,
}

/// One row of the summary table.
#[derive(Debug, Clone, Serialize)]
pub struct SummaryRow {
    /// Model.
    pub model: String,
    /// Chosen hyperparameters.
    pub chosen: String,
    /// Validation score of the choice (CV mean ± std or hold-out accuracy).
    pub validation: String,
    /// Test accuracy (the test set's one use for this model), if scored.
    pub test_accuracy: Option<f64>,
    /// Approximate search only: exact search seconds / its search seconds (wall clock).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub speedup_seconds_ratio: Option<f64>,
}

/// The approximate-search phase's outcome.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum AnnOutcome {
    /// Measured.
    Ran(AnnResult),
    /// Not run, with the reason.
    Skipped {
        /// Why.
        skipped: String,
    },
}

/// results.json.
#[derive(Debug, Serialize)]
pub struct Results {
    /// [`RESULTS_SCHEMA_VERSION`].
    pub schema_version: u32,
    /// The dataset as used.
    pub dataset: DatasetInfo,
    /// Master seed.
    pub seed: u64,
    /// Whether `--quick` (or the demo's implied quick profile) applied.
    pub quick: bool,
    /// The effective configuration.
    pub config: Config,
    /// k-NN phase (`null` when disabled).
    pub knn: Option<KnnResult>,
    /// Linear phase (`null` when disabled).
    pub linear: Option<LinearResult>,
    /// Approximate-search phase.
    pub ann: AnnOutcome,
    /// The summary table.
    pub summary: Vec<SummaryRow>,
    /// Figures written beside this file.
    pub figures: Vec<Figure>,
    /// Seconds per phase.
    pub timings: Timings,
    /// Environment.
    pub run: RunInfo,
}

/// The summary rows of the results.
pub fn summary(
    knn: Option<&KnnResult>,
    linear: Option<&LinearResult>,
    ann: &AnnOutcome,
) -> Vec<SummaryRow> {
    let mut rows = Vec::new();
    if let Some(k) = knn {
        rows.push(SummaryRow {
            model: "k-NN".into(),
            chosen: format!("{}, k = {}", k.best_metric, k.best_k),
            validation: format!("{}-fold CV {:.4} ± {:.4}", k.folds, k.cv_mean, k.cv_std),
            test_accuracy: Some(k.test_accuracy),
            speedup_seconds_ratio: None,
        });
    }
    if let Some(l) = linear {
        for r in &l.losses {
            let p = &r.grid[r.best];
            rows.push(SummaryRow {
                model: format!("linear {}", r.loss),
                chosen: format!("lr {:e}, L2 {:e}", p.learning_rate, p.regularization),
                validation: format!("hold-out {:.4}", p.val_accuracy.unwrap_or(f64::NAN)),
                test_accuracy: Some(r.test_accuracy),
                speedup_seconds_ratio: None,
            });
        }
    }
    if let AnnOutcome::Ran(a) = ann {
        // deterministic choice: the first setting (config order) reaching recall 0.9, else the
        // most accurate (first on ties); its speed is reported beside, as a wall-clock field
        let first_good = a.points.iter().find(|p| p.recall.is_some_and(|r| r >= 0.9));
        let best = first_good.or_else(|| {
            a.points.iter().filter(|p| p.recall.is_some()).reduce(|b, p| {
                if p.recall.unwrap_or(0.0) > b.recall.unwrap_or(0.0) { p } else { b }
            })
        });
        if let Some(p) = best {
            rows.push(SummaryRow {
                model: format!("ann ({} of {})", a.metric, a.n_train),
                chosen: format!(
                    "{}{}",
                    p.spec,
                    p.pca.map_or(String::new(), |c| format!(" + pca {c}"))
                ),
                validation: format!("recall@{} {:.3}", a.k, p.recall.unwrap_or(f64::NAN)),
                test_accuracy: None,
                speedup_seconds_ratio: Some(p.speedup_seconds_ratio),
            });
        }
    }
    rows
}

/// The validation cell of a summary row, with the speedup when there is one.
fn validation_cell(r: &SummaryRow) -> String {
    match r.speedup_seconds_ratio {
        Some(x) => format!("{}, {x:.1}x faster than exact", r.validation),
        None => r.validation.clone(),
    }
}

/// The summary table as plain text.
pub fn summary_text(rows: &[SummaryRow], t: &Timings) -> String {
    let header = ["model", "chosen", "validation", "test accuracy"];
    let cells: Vec<[String; 4]> = rows
        .iter()
        .map(|r| {
            [
                r.model.clone(),
                r.chosen.clone(),
                validation_cell(r),
                r.test_accuracy.map_or("-".into(), |a| format!("{a:.4}")),
            ]
        })
        .collect();
    let mut w = header.map(|h| h.chars().count());
    for c in &cells {
        for (i, s) in c.iter().enumerate() {
            w[i] = w[i].max(s.chars().count());
        }
    }
    let line = |c: &[String]| {
        c.iter()
            .enumerate()
            .map(|(i, s)| format!("{s}{}", " ".repeat(w[i] - s.chars().count())))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_string()
    };
    let mut out = line(&header.map(String::from));
    out.push('\n');
    out.push_str(&w.iter().map(|&n| "-".repeat(n)).collect::<Vec<_>>().join("  "));
    out.push('\n');
    for c in &cells {
        out.push_str(&line(c));
        out.push('\n');
    }
    out.push_str(&format!("\ntime: {}\n", timing_line(t)));
    out
}

fn timing_line(t: &Timings) -> String {
    let share = |s: f64| 100.0 * s / t.total_seconds.max(1e-9);
    format!(
        "total {:.1} s = load {:.1} s ({:.0}%), k-NN {:.1} s ({:.0}%), linear {:.1} s ({:.0}%), \
         ann {:.1} s ({:.0}%), report {:.1} s ({:.0}%)",
        t.total_seconds,
        t.load_seconds,
        share(t.load_seconds),
        t.knn_seconds,
        share(t.knn_seconds),
        t.linear_seconds,
        share(t.linear_seconds),
        t.ann_seconds,
        share(t.ann_seconds),
        t.report_seconds,
        share(t.report_seconds)
    )
}

/// Sci notation that reads well in a table header (`1e-7`, `2.5e4`).
fn sci(v: f64) -> String {
    format!("{v:e}")
}

/// Files of the report, in memory: (name, bytes), and the figure list.
pub struct Rendered {
    /// Every file except results.json and report.html.
    pub files: Vec<(String, Vec<u8>)>,
    /// Their descriptions.
    pub figures: Vec<Figure>,
    /// The HTML sections, in order.
    pub sections: Vec<Section>,
}

/// Renders the figures and the HTML sections of the phases that ran.
pub fn render(
    knn: Option<&KnnResult>,
    linear: Option<&LinearResult>,
    ann: &AnnOutcome,
    names: &ClassNames,
    shape: ImageShape,
) -> anyhow::Result<Rendered> {
    let mut r = Rendered { files: Vec::new(), figures: Vec::new(), sections: Vec::new() };
    let mut add = |file: &str, caption: String, data: &str, bytes: Vec<u8>| {
        r.files.push((file.to_string(), bytes));
        r.figures.push(Figure { file: file.into(), caption, data: data.into() });
    };
    let mut sections = Vec::new();
    if let Some(k) = knn {
        let cv = cv_plot_svg(&k.curve);
        add(
            "cv.svg",
            format!("{}-fold cross-validation accuracy against k", k.folds),
            "knn.curve",
            cv.clone().into_bytes(),
        );
        let cm = confusion_svg(&k.confusion, names);
        add(
            "knn_confusion.svg",
            format!("k-NN test confusion matrix ({}, k = {})", k.best_metric, k.best_k),
            "knn.confusion",
            cm.clone().into_bytes(),
        );
        let mut blocks = vec![
            Block::Text(format!(
                "{}-fold stratified cross-validation over k for each distance; one exact \
                 neighbour search per fold and distance up to the largest k scores every k. The \
                 best configuration ({}, k = {}, CV {:.4} ± {:.4}) was scored once on the test \
                 set: {:.4}.",
                k.folds, k.best_metric, k.best_k, k.cv_mean, k.cv_std, k.test_accuracy
            )),
            Block::Svg(cv),
            Block::Table(cv_table(&k.curve)),
        ];
        sections
            .push(Section::new("k-NN: choosing k and the distance", std::mem::take(&mut blocks)));
        sections.push(Section::new(
            format!("k-NN: test confusion matrix ({}, k = {})", k.best_metric, k.best_k),
            vec![Block::Svg(cm)],
        ));
        if !k.gallery.is_empty() {
            let png = neighbour_gallery_png(&k.gallery, shape, names, 2)?;
            add(
                "gallery.png",
                "test images and their nearest training images".into(),
                "knn.gallery_rows",
                png.clone(),
            );
            sections.push(Section::new(
                format!("k-NN: nearest training images ({})", k.best_metric),
                vec![
                    Block::Text(
                        "Each row: a test image (true class, then the k-NN prediction), followed \
                         by its nearest training images, nearest first; green frame = same class \
                         as the test image, red = different."
                            .into(),
                    ),
                    Block::Png { bytes: png, alt: "nearest-neighbour gallery".into() },
                ],
            ));
        }
    }
    if let Some(l) = linear {
        let mut curves = Vec::new();
        for (li, res) in l.losses.iter().enumerate() {
            let lrs: Vec<f64> = dedup(res.grid.iter().map(|p| p.learning_rate));
            let regs: Vec<f64> = dedup(res.grid.iter().map(|p| p.regularization));
            let mut values = vec![f64::NAN; lrs.len() * regs.len()];
            for p in &res.grid {
                let i = lrs.iter().position(|&v| v == p.learning_rate).unwrap_or(0);
                let j = regs.iter().position(|&v| v == p.regularization).unwrap_or(0);
                values[i * regs.len() + j] = p.val_accuracy.unwrap_or(f64::NAN);
            }
            let title = match res.loss.as_str() {
                "svm" => "Linear SVM",
                _ => "Softmax",
            };
            let heat = heatmap_svg(&Heatmap {
                title: format!("{title}: validation accuracy"),
                row_title: "learning rate".into(),
                col_title: "L2 strength".into(),
                rows: lrs.iter().map(|&v| sci(v)).collect(),
                cols: regs.iter().map(|&v| sci(v)).collect(),
                values,
                decimals: 3,
            });
            let name = &res.loss;
            add(
                &format!("{name}_grid.svg"),
                format!("{title}: validation accuracy over learning rate x L2 strength"),
                &format!("linear.losses[{li}].grid"),
                heat.clone().into_bytes(),
            );
            let cm = confusion_svg(&res.confusion, names);
            add(
                &format!("{name}_confusion.svg"),
                format!("{title}: test confusion matrix"),
                &format!("linear.losses[{li}].confusion"),
                cm.clone().into_bytes(),
            );
            let tpl = templates_png(&res.model.templates(), res.model.shape(), names)?;
            add(
                &format!("{name}_templates.png"),
                format!("{title}: the rows of W as images"),
                &format!("linear.losses[{li}]"),
                tpl.clone(),
            );
            let p = &res.grid[res.best];
            sections.push(Section::new(
                format!("{title}: learning rate x regularisation"),
                vec![
                    Block::Text(format!(
                        "{} SGD iterations of {} images per run on {} training images; validation \
                         accuracy on a stratified hold-out of {} (grey = diverged). Chosen: \
                         learning rate {}, L2 strength {} (validation {:.4}); retrained on all \
                         training images, test accuracy {:.4}.",
                        l.iterations,
                        l.batch_size,
                        l.n_fit,
                        l.n_validation,
                        sci(p.learning_rate),
                        sci(p.regularization),
                        p.val_accuracy.unwrap_or(f64::NAN),
                        res.test_accuracy
                    )),
                    Block::Svg(heat),
                    Block::Text("The learned templates (each row of W rescaled to 0..255):".into()),
                    Block::Png { bytes: tpl, alt: format!("{title} templates") },
                    Block::Text(
                        "Test confusion matrix of the chosen model retrained on all training \
                         images (row = true class):"
                            .into(),
                    ),
                    Block::Svg(cm),
                ],
            ));
            let step = res.loss_curve.len().div_ceil(600).max(1);
            curves.push(LineSeries {
                name: title.into(),
                points: res
                    .loss_curve
                    .iter()
                    .enumerate()
                    .step_by(step)
                    .map(|(i, &v)| (i as f64, f64::from(v)))
                    .collect(),
            });
        }
        if !curves.is_empty() {
            let svg = line_plot_svg(&LinePlot {
                title: "Training loss of the retrained models".into(),
                x_label: "SGD iteration".into(),
                y_label: "minibatch loss (data + L2)".into(),
                series: curves,
                log_y: true,
            });
            add(
                "loss_curves.svg",
                "training loss per SGD iteration of the retrained models".into(),
                "linear.losses[*].loss_curve",
                svg.clone().into_bytes(),
            );
            sections.push(Section::new("Linear classifiers: loss curves", vec![Block::Svg(svg)]));
        }
    }
    match ann {
        AnnOutcome::Ran(a) => {
            let mut kinds: Vec<&str> = Vec::new();
            for p in &a.points {
                if !kinds.contains(&p.kind.as_str()) {
                    kinds.push(&p.kind);
                }
            }
            let series = kinds
                .iter()
                .map(|&kind| {
                    let mut pts: Vec<(f64, f64)> = a
                        .points
                        .iter()
                        .filter(|p| p.kind == kind)
                        .filter_map(|p| p.recall.map(|r| (p.speedup_seconds_ratio, r)))
                        .collect();
                    pts.sort_by(|x, y| x.0.total_cmp(&y.0));
                    LineSeries { name: kind.into(), points: pts }
                })
                .collect();
            let svg = line_plot_svg(&LinePlot {
                title: format!("Approximate search: recall@{} against speed", a.k),
                x_label: "speedup over exact search (x)".into(),
                y_label: format!("recall@{}", a.k),
                series,
                log_y: false,
            });
            add(
                "ann.svg",
                "recall against speedup of each approximate index setting".into(),
                "ann.points",
                svg.clone().into_bytes(),
            );
            let table = Table {
                header: [
                    "index",
                    "pca",
                    "recall",
                    "build (s)",
                    "search (s)",
                    "queries/s",
                    "speedup",
                ]
                .map(String::from)
                .into(),
                rows: std::iter::once(vec![
                    "exact (linalg)".into(),
                    "-".into(),
                    "1.000".into(),
                    "-".into(),
                    format!("{:.3}", a.exact_seconds),
                    format!("{:.0}", a.exact_queries_per_second),
                    "1.0x".into(),
                ])
                .chain(a.points.iter().map(|p| {
                    vec![
                        p.spec.clone(),
                        p.pca.map_or("-".into(), |c| c.to_string()),
                        p.recall.map_or_else(
                            || format!("failed: {}", p.failure.clone().unwrap_or_default()),
                            |r| format!("{r:.3}"),
                        ),
                        format!("{:.2}", p.build_seconds),
                        format!("{:.3}", p.search_seconds),
                        format!("{:.0}", p.queries_per_second),
                        format!("{:.1}x", p.speedup_seconds_ratio),
                    ]
                }))
                .collect(),
            };
            sections.push(Section::new(
                "Approximate nearest-neighbour search",
                vec![
                    Block::Text(format!(
                        "{} training images indexed ({} distance), {} test images as queries; \
                         recall@{} against exact search, speed against the exact SIMD search.",
                        a.n_train, a.metric, a.n_queries, a.k
                    )),
                    Block::Svg(svg),
                    Block::Table(table),
                ],
            ));
        }
        AnnOutcome::Skipped { skipped } => {
            sections.push(Section::new(
                "Approximate nearest-neighbour search",
                vec![Block::Text(format!("Skipped: {skipped}."))],
            ));
        }
    }
    r.sections = sections;
    Ok(r)
}

fn dedup(values: impl Iterator<Item = f64>) -> Vec<f64> {
    let mut out: Vec<f64> = Vec::new();
    for v in values {
        if !out.contains(&v) {
            out.push(v);
        }
    }
    out
}

/// The results table of the HTML page.
pub fn summary_table(rows: &[SummaryRow]) -> Table {
    Table {
        header: ["model", "chosen", "validation", "test accuracy"].map(String::from).into(),
        rows: rows
            .iter()
            .map(|r| {
                vec![
                    r.model.clone(),
                    r.chosen.clone(),
                    validation_cell(r),
                    r.test_accuracy.map_or("-".into(), |a| format!("{a:.4}")),
                ]
            })
            .collect(),
    }
}

/// The timings table of the HTML page.
pub fn timings_table(t: &Timings) -> Table {
    let share = |s: f64| format!("{:.0}%", 100.0 * s / t.total_seconds.max(1e-9));
    let row = |name: &str, s: f64| vec![name.to_string(), format!("{s:.1}"), share(s)];
    Table {
        header: ["phase", "seconds", "share"].map(String::from).into(),
        rows: vec![
            row("load data", t.load_seconds),
            row("k-NN", t.knn_seconds),
            row("linear", t.linear_seconds),
            row("approximate search", t.ann_seconds),
            row("report", t.report_seconds),
            row("total", t.total_seconds),
        ],
    }
}

/// Writes every file of the report into `dir` (which exists and is empty).
pub fn write_all(
    dir: &Path,
    results: &Results,
    rendered: &Rendered,
    html: &str,
) -> anyhow::Result<()> {
    for (name, bytes) in &rendered.files {
        std::fs::write(dir.join(name), bytes).with_context(|| format!("writing {name}"))?;
    }
    std::fs::write(dir.join("report.html"), html).context("writing report.html")?;
    let json = serde_json::to_string_pretty(results)?;
    std::fs::write(dir.join("results.json"), json + "\n").context("writing results.json")?;
    Ok(())
}

/// The full page: a summary (with the timings and the command) first, then each phase.
pub fn page(results: &Results, rendered: &Rendered, config_toml: &str) -> String {
    let d = &results.dataset;
    let mut sections = vec![Section::new(
        "Summary",
        vec![
            Block::Text(format!(
                "Dataset {} ({} images, {} classes): {} of {} training and {} of {} test images \
                 used{}; seed {}. Hyperparameters are chosen on the training images only; each \
                 model's test accuracy is measured once.",
                d.name,
                d.shape,
                d.classes.len(),
                d.n_train,
                d.n_train_available,
                d.n_test,
                d.n_test_available,
                if results.quick { " (quick run)" } else { "" },
                results.seed
            )),
            Block::Table(summary_table(&results.summary)),
            Block::Table(timings_table(&results.timings)),
            Block::Code(results.run.command.clone()),
        ],
    )];
    sections.extend(rendered.sections.iter().cloned());
    sections.push(Section::new("Configuration", vec![Block::Code(config_toml.to_string())]));
    html_page(&format!("imgclass experiment: {}", d.name), &sections)
}
