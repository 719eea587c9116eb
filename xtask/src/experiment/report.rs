//! Everything the experiment writes: the figures (SVG/PNG files), results.json, report.html,
//! and the summary table printed at the end.
//!
//! results.json convention: every value that depends on the wall clock has `second` in its
//! key (`*_seconds`, `queries_per_second`, `speedup_seconds_ratio`) or sits under `timings`
//! or `run` (date, command line, thread count); everything else is a function of the data,
//! the config and the seed only, whatever the thread count.

use std::path::Path;

use anyhow::Context;
use imgclass_core::{ClassNames, ImageShape, Label, Subset};
use imgclass_eval::ConfusionMatrix;
use imgclass_report::{
    Block, Heatmap, LinePlot, LineSeries, Section, Table, confusion_svg, cv_plot_svg, cv_table,
    edge_warning, heatmap_svg, html_report, line_plot_svg, misclassified_html,
    neighbour_gallery_html, neighbour_gallery_png, templates_html, templates_png,
};
use serde::Serialize;

use super::ann::AnnResult;
use super::config::Config;
use super::knn::KnnResult;
use super::linear::LinearResult;
use super::representations::RepresentationResult;

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
    /// The representations stage (feature steps and their classifiers).
    pub representations_seconds: f64,
    /// The approximate-search phase.
    pub ann_seconds: f64,
    /// Rendering and writing the report.
    pub report_seconds: f64,
    /// Everything.
    pub total_seconds: f64,
    /// The process's peak resident memory (Linux `VmHWM`), in bytes; `null` elsewhere.
    pub peak_rss_bytes: Option<u64>,
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
    /// `git rev-parse HEAD` of the checkout (with `-dirty` when it has uncommitted changes),
    /// `null` outside a git checkout.
    pub git_commit: Option<String>,
}

/// The commit of the checkout at `root`: `git rev-parse HEAD`, with `-dirty` when `git status
/// --porcelain` lists changes; `None` without git or outside a checkout.
pub fn git_commit(root: &Path) -> Option<String> {
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .arg("-C")
            .arg(root)
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let head = git(&["rev-parse", "HEAD"]).filter(|h| !h.is_empty())?;
    let dirty =
        git(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty());
    Some(if dirty { format!("{head}-dirty") } else { head })
}

/// A misclassified test image: (pixels, true label, predicted label).
pub type Mistake = (Vec<u8>, Label, Label);

/// Misclassified test images shown per model (at most).
const MISTAKES_SHOWN: usize = 20;

/// Misclassified test rows, spread over the true classes: the first
/// `MISTAKES_SHOWN / n_classes` (at least one) of each class in test order, in class order,
/// at most [`MISTAKES_SHOWN`].
pub fn mistakes(test: &Subset, truth: &[Label], pred: &[Label]) -> Vec<Mistake> {
    let n_classes = test.n_classes().max(1);
    let per_class = (MISTAKES_SHOWN / n_classes).max(1);
    let mut taken = vec![0usize; n_classes];
    let mut out: Vec<(Label, usize)> = Vec::new();
    for (i, (&t, &p)) in truth.iter().zip(pred).enumerate() {
        if t != p && (t as usize) < n_classes && taken[t as usize] < per_class {
            taken[t as usize] += 1;
            out.push((t, i));
        }
    }
    out.sort_by_key(|&(t, i)| (t, i));
    out.truncate(MISTAKES_SHOWN);
    let Some(px) = test.pixels() else { return Vec::new() };
    out.into_iter().map(|(t, i)| (px.row(i).to_vec(), t, pred[i])).collect()
}

fn class_name(names: &ClassNames, l: Label) -> String {
    names.name(l).map_or_else(|| l.to_string(), str::to_string)
}

/// The per-class table of a test confusion matrix: support, precision, recall (the class's
/// accuracy), F1.
pub fn per_class_table(cm: &ConfusionMatrix, names: &ClassNames) -> Table {
    let mut rows: Vec<Vec<String>> = cm
        .class_reports()
        .iter()
        .map(|r| {
            vec![
                class_name(names, r.label),
                r.support.to_string(),
                format!("{:.3}", r.precision),
                format!("{:.3}", r.recall),
                format!("{:.3}", r.f1),
            ]
        })
        .collect();
    let reports = cm.class_reports();
    let n = reports.len().max(1) as f64;
    let mean = |f: fn(&imgclass_eval::ClassReport) -> f64| reports.iter().map(f).sum::<f64>() / n;
    rows.push(vec![
        "mean over classes".into(),
        cm.total().to_string(),
        format!("{:.3}", mean(|r| r.precision)),
        format!("{:.3}", mean(|r| r.recall)),
        format!("{:.3}", mean(|r| r.f1)),
    ]);
    Table {
        header: ["class", "test images", "precision", "recall (= class accuracy)", "F1"]
            .map(String::from)
            .into(),
        rows,
    }
}

/// The `n` most frequent confusions (true class, predicted class) of a confusion matrix,
/// most frequent first (ties in label order), with their share of the true class's rows.
pub fn confused_pairs_table(cm: &ConfusionMatrix, names: &ClassNames, n: usize) -> Table {
    let c = cm.n_classes() as Label;
    let mut pairs: Vec<(u64, Label, Label)> = (0..c)
        .flat_map(|t| (0..c).filter(move |&p| p != t).map(move |p| (t, p)))
        .map(|(t, p)| (cm.count(t, p), t, p))
        .filter(|&(k, _, _)| k > 0)
        .collect();
    pairs.sort_by(|a, b| b.0.cmp(&a.0).then((a.1, a.2).cmp(&(b.1, b.2))));
    Table {
        header: ["true class", "predicted as", "test images", "share of the true class"]
            .map(String::from)
            .into(),
        rows: pairs
            .iter()
            .take(n)
            .map(|&(k, t, p)| {
                vec![
                    class_name(names, t),
                    class_name(names, p),
                    k.to_string(),
                    format!("{:.1}%", 100.0 * k as f64 / cm.support(t).max(1) as f64),
                ]
            })
            .collect(),
    }
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
    /// What the model saw: `raw` pixels or the feature steps' labels.
    pub representation: String,
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

impl SummaryRow {
    /// The model's name, with what it saw when that is not raw pixels.
    pub fn label(&self) -> String {
        if self.representation == "raw" {
            self.model.clone()
        } else {
            format!("{} on {}", self.model, self.representation)
        }
    }
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
    /// The representations stage, one entry per `[[representations]]`.
    pub representations: Vec<RepresentationResult>,
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
    reps: &[RepresentationResult],
    ann: &AnnOutcome,
) -> Vec<SummaryRow> {
    let mut rows = Vec::new();
    if let Some(k) = knn {
        rows.push(SummaryRow {
            representation: k.representation.clone(),
            model: "k-NN".into(),
            chosen: format!("{}, k = {}", crate::knn_cv::metric_label(k.best_metric), k.best_k),
            validation: format!("{}-fold CV {:.4} ± {:.4}", k.folds, k.cv_mean, k.cv_std),
            test_accuracy: Some(k.test_accuracy),
            speedup_seconds_ratio: None,
        });
    }
    if let Some(l) = linear {
        for r in &l.losses {
            let p = &r.grid[r.best];
            rows.push(SummaryRow {
                representation: l.representation.clone(),
                model: format!("linear {}", r.loss),
                chosen: format!("lr {}, L2 {}", sci(p.learning_rate), sci(p.regularization)),
                validation: format!("hold-out {:.4}", p.val_accuracy.unwrap_or(f64::NAN)),
                test_accuracy: Some(r.test_accuracy),
                speedup_seconds_ratio: None,
            });
        }
    }
    for r in reps {
        for c in &r.classifiers {
            rows.push(SummaryRow {
                representation: r.name.clone(),
                model: c.model.clone(),
                chosen: c.chosen.clone(),
                validation: c.validation.clone(),
                test_accuracy: Some(c.test_accuracy),
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
                representation: "raw".into(),
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

/// A speed ratio `exact seconds / these seconds` in words that read right both ways:
/// `5.0x faster than exact` for 5.0, `5.0x slower than exact` for 0.2.
pub fn speed_words(ratio: f64) -> String {
    if !ratio.is_finite() || ratio <= 0.0 {
        "speed not measured".into()
    } else if ratio >= 1.0 {
        format!("{ratio:.1}x faster than exact")
    } else {
        format!("{:.1}x slower than exact", 1.0 / ratio)
    }
}

/// The validation cell of a summary row, with the speed against exact search when there is one.
fn validation_cell(r: &SummaryRow) -> String {
    match r.speedup_seconds_ratio {
        Some(x) => format!("{}, {}", r.validation, speed_words(x)),
        None => r.validation.clone(),
    }
}

/// The width the printed summary table keeps within (a classic terminal).
pub const SUMMARY_WIDTH: usize = 80;

/// The pieces of `s` a line may break between: words, and the parts of a word after each
/// comma (`kmeans:branching=16,checks=512`); each with whether a space precedes it.
fn pieces(s: &str) -> Vec<(bool, &str)> {
    let mut out = Vec::new();
    for word in s.split_whitespace() {
        let mut rest = word;
        let mut spaced = true;
        while let Some(i) = rest.find(',').filter(|&i| i + 1 < rest.len()) {
            out.push((spaced, &rest[..=i]));
            rest = &rest[i + 1..];
            spaced = false;
        }
        out.push((spaced, rest));
    }
    out
}

/// `s` packed into lines of at most `width` characters, broken at spaces or after commas (a
/// longer piece stands alone).
pub fn wrap_words(s: &str, width: usize) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    let mut cur = String::new();
    for (spaced, word) in pieces(s) {
        let n = cur.chars().count();
        let sep = usize::from(spaced && n > 0);
        if n > 0 && n + sep + word.chars().count() > width {
            lines.push(std::mem::take(&mut cur));
        } else if sep == 1 {
            cur.push(' ');
        }
        cur.push_str(word);
    }
    if !cur.is_empty() || lines.is_empty() {
        lines.push(cur);
    }
    lines
}

/// A text table within `max_width` columns: columns two spaces apart; when the natural widths
/// do not fit, the widest column is narrowed (its cells wrapped at spaces) until they do;
/// `right` columns (numbers) are right-aligned.
pub fn text_table(
    header: &[&str],
    rows: &[Vec<String>],
    right: &[bool],
    max_width: usize,
) -> String {
    let n = header.len();
    let natural = |i: usize| {
        rows.iter()
            .map(|r| r[i].chars().count())
            .chain([header[i].chars().count()])
            .max()
            .unwrap_or(0)
    };
    let mut w: Vec<usize> = (0..n).map(natural).collect();
    let longest_word = |i: usize| {
        rows.iter()
            .flat_map(|r| pieces(&r[i]).into_iter().map(|x| x.1.chars().count()))
            .chain(pieces(header[i]).into_iter().map(|x| x.1.chars().count()))
            .max()
            .unwrap_or(1)
    };
    let total = |w: &[usize]| w.iter().sum::<usize>() + 2 * n.saturating_sub(1);
    while total(&w) > max_width {
        // the widest column that can still shrink
        let Some(i) = (0..n).filter(|&i| w[i] > longest_word(i)).max_by_key(|&i| w[i]) else {
            break;
        };
        w[i] -= 1;
        // the widths the wrapped cells really take
        w[i] = rows
            .iter()
            .map(|r| &r[i])
            .chain([&header[i].to_string()])
            .flat_map(|c| wrap_words(c, w[i]))
            .map(|l| l.chars().count())
            .max()
            .unwrap_or(w[i]);
    }
    let mut out = String::new();
    let mut put = |cells: &[String]| {
        let wrapped: Vec<Vec<String>> =
            cells.iter().enumerate().map(|(i, c)| wrap_words(c, w[i])).collect();
        let height = wrapped.iter().map(Vec::len).max().unwrap_or(1);
        for line in 0..height {
            let parts: Vec<String> = (0..n)
                .map(|i| {
                    let s = wrapped[i].get(line).map_or("", String::as_str);
                    let pad = " ".repeat(w[i] - s.chars().count());
                    if right[i] { format!("{pad}{s}") } else { format!("{s}{pad}") }
                })
                .collect();
            out.push_str(parts.join("  ").trim_end());
            out.push('\n');
        }
    };
    put(&header.iter().map(|h| h.to_string()).collect::<Vec<_>>());
    put(&w.iter().map(|&k| "-".repeat(k)).collect::<Vec<_>>());
    for r in rows {
        put(r);
    }
    out
}

/// The summary table as plain text, at most [`SUMMARY_WIDTH`] columns wide.
pub fn summary_text(rows: &[SummaryRow], t: &Timings) -> String {
    let header = ["model", "chosen", "validation", "test accuracy"];
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r.label(),
                r.chosen.clone(),
                validation_cell(r),
                r.test_accuracy.map_or("-".into(), |a| format!("{a:.4}")),
            ]
        })
        .collect();
    let mut out = text_table(&header, &cells, &[false, false, false, true], SUMMARY_WIDTH);
    out.push('\n');
    let memory = t.peak_rss_bytes.map_or(String::new(), |b| {
        format!("; peak memory {:.2} GiB", b as f64 / (1u64 << 30) as f64)
    });
    for line in wrap_words(&format!("time: {}{memory}", timing_line(t)), SUMMARY_WIDTH) {
        out.push_str(&line);
        out.push('\n');
    }
    out
}

fn timing_line(t: &Timings) -> String {
    let share = |s: f64| 100.0 * s / t.total_seconds.max(1e-9);
    format!(
        "total {:.1} s = load {:.1} s ({:.0}%), k-NN {:.1} s ({:.0}%), linear {:.1} s ({:.0}%), \
         features {:.1} s ({:.0}%), ann {:.1} s ({:.0}%), report {:.1} s ({:.0}%)",
        t.total_seconds,
        t.load_seconds,
        share(t.load_seconds),
        t.knn_seconds,
        share(t.knn_seconds),
        t.linear_seconds,
        share(t.linear_seconds),
        t.representations_seconds,
        share(t.representations_seconds),
        t.ann_seconds,
        share(t.ann_seconds),
        t.report_seconds,
        share(t.report_seconds)
    )
}

/// Three significant digits, trailing zeros dropped: `1e-7`, `2.5e4`, `1.73e-6` (a refined
/// grid's geometric midpoints have long expansions).
pub fn sci(v: f64) -> String {
    let s = format!("{v:.2e}");
    match s.split_once('e') {
        Some((m, e)) if m.contains('.') => {
            format!("{}e{e}", m.trim_end_matches('0').trim_end_matches('.'))
        }
        _ => s,
    }
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
    reps: &[RepresentationResult],
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
            format!(
                "k-NN test confusion matrix ({}, k = {})",
                crate::knn_cv::metric_label(k.best_metric),
                k.best_k
            ),
            "knn.confusion",
            cm.clone().into_bytes(),
        );
        let mut blocks = vec![
            Block::Text(format!(
                "{}-fold stratified cross-validation over k for each distance; one exact \
                 neighbour search per fold and distance up to the largest k scores every k. The \
                 best configuration ({}, k = {}, CV {:.4} ± {:.4}) was scored once on the test \
                 set: {:.4}.",
                k.folds,
                crate::knn_cv::metric_label(k.best_metric),
                k.best_k,
                k.cv_mean,
                k.cv_std,
                k.test_accuracy
            )),
            Block::Svg(cv),
            Block::Table(cv_table(&k.curve)),
        ];
        sections
            .push(Section::new("k-NN: choosing k and the distance", std::mem::take(&mut blocks)));
        sections.push(Section::new(
            format!(
                "k-NN: test confusion matrix ({}, k = {})",
                crate::knn_cv::metric_label(k.best_metric),
                k.best_k
            ),
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
                format!(
                    "k-NN: nearest training images ({})",
                    crate::knn_cv::metric_label(k.best_metric)
                ),
                vec![
                    Block::Text(
                        "Each row: a test image (true class, then the k-NN prediction), followed \
                         by its nearest training images, nearest first; green frame = same class \
                         as the test image, red = different."
                            .into(),
                    ),
                    Block::Html(neighbour_gallery_html(&k.gallery, shape, names)?),
                ],
            ));
        }
    }
    if let Some(l) = linear {
        let mut curves = Vec::new();
        for (li, res) in l.losses.iter().enumerate() {
            // sorted: extensions and refinements join the config's grid in place
            let lrs: Vec<f64> = sorted_distinct(res.grid.iter().map(|p| p.learning_rate));
            let regs: Vec<f64> = sorted_distinct(res.grid.iter().map(|p| p.regularization));
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
            let best_p = &res.grid[res.best];
            let chosen = (
                lrs.iter().position(|&v| v == best_p.learning_rate).unwrap_or(0),
                regs.iter().position(|&v| v == best_p.regularization).unwrap_or(0),
            );
            let warning =
                edge_warning(lrs.len(), regs.len(), chosen, "learning rate", "L2 strength");
            let heat = heatmap_svg(&Heatmap {
                title: format!("{title}: validation accuracy"),
                row_title: "learning rate".into(),
                col_title: "L2 strength".into(),
                rows: lrs.iter().map(|&v| sci(v)).collect(),
                cols: regs.iter().map(|&v| sci(v)).collect(),
                values,
                decimals: 3,
                chosen: Some(chosen),
                value_title: "validation accuracy".into(),
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
            // the rows of W are images only when the model saw pixels
            let on_images = res.model.shape().image().is_some();
            if on_images {
                let tpl = templates_png(&res.model.templates(), shape, names)?;
                add(
                    &format!("{name}_templates.png"),
                    format!("{title}: the rows of W as images"),
                    &format!("linear.losses[{li}]"),
                    tpl.clone(),
                );
            }
            let p = &res.grid[res.best];
            let mut blocks = Vec::new();
            if let Some(w) = &warning {
                blocks.push(Block::Html(format!(
                    "<p class=\"warn\">{}</p>",
                    imgclass_report::svg::escape(w)
                )));
            }
            sections.push(Section::new(
                format!("{title}: learning rate x regularisation"),
                blocks.into_iter().chain([
                    Block::Text(format!(
                        "{} SGD iterations of {} images per run on {} training images; validation \
                         accuracy on a stratified hold-out of {} (grey = diverged). Chosen: \
                         learning rate {}, L2 strength {} (validation {:.4}); retrained on all \
                         training images, test accuracy {:.4}.{}",
                        l.iterations,
                        l.batch_size,
                        l.n_fit,
                        l.n_validation,
                        sci(p.learning_rate),
                        sci(p.regularization),
                        p.val_accuracy.unwrap_or(f64::NAN),
                        res.test_accuracy,
                        search_words(res.grid.iter().map(|p| p.origin))
                    )),
                    Block::Svg(heat),
                ])
                .chain(if on_images {
                    vec![
                        Block::Text(
                            "The learned templates (each row of W rescaled to 0..255):".into(),
                        ),
                        Block::Html(templates_html(&res.model.templates(), shape, names)?),
                    ]
                } else {
                    vec![Block::Text(format!(
                        "The models saw features ({}), not pixels: W has no image form.",
                        l.representation
                    ))]
                })
                .chain([
                    Block::Text(
                        "Test confusion matrix of the chosen model retrained on all training \
                         images (row = true class):"
                            .into(),
                    ),
                    Block::Svg(cm),
                ])
                .collect(),
            ));
            curves.push(LineSeries {
                name: title.into(),
                points: res
                    .loss_curve
                    .iter()
                    .enumerate()
                    .map(|(i, &v)| (i as f64, f64::from(v)))
                    .collect(),
            });
        }
        if !curves.is_empty() {
            let longest = curves.iter().map(|c| c.points.len()).max().unwrap_or(0);
            let svg = line_plot_svg(&LinePlot {
                title: "Training loss of the retrained models".into(),
                x_label: "SGD iteration".into(),
                y_label: "minibatch loss (data + L2)".into(),
                series: curves,
                log_y: true,
                smooth: (longest / 50).clamp(1, 101) | 1,
                ..LinePlot::default()
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
    // per model: per-class figures, most-confused pairs, misclassified test images
    let mut models: Vec<(String, &ConfusionMatrix, &[Mistake])> = Vec::new();
    if let Some(k) = knn {
        models.push((
            format!("k-NN ({}, k = {})", crate::knn_cv::metric_label(k.best_metric), k.best_k),
            &k.confusion,
            &k.misclassified,
        ));
    }
    if let Some(l) = linear {
        for res in &l.losses {
            let name = if res.loss == "svm" { "Linear SVM" } else { "Softmax" };
            models.push((name.to_string(), &res.confusion, &res.misclassified));
        }
    }
    if !models.is_empty() {
        let mut per_class = vec![Block::Text(
            "Test-set figures per class: precision = correct among the images predicted as the \
             class, recall = correct among the images of the class (the class's accuracy), F1 = \
             their harmonic mean."
                .into(),
        )];
        let mut pairs = vec![Block::Text(
            "The five most frequent mistakes of each model on the test set (true class -> \
             predicted class)."
                .into(),
        )];
        let per = (MISTAKES_SHOWN / names.len().max(1)).max(1);
        let mut gallery = vec![Block::Text(format!(
            "Misclassified test images of each model (the first {per} of each true class), with \
             the true and the predicted class."
        ))];
        for (name, cm, wrong) in &models {
            per_class.push(Block::Html(format!("<h3>{}</h3>", imgclass_report::svg::escape(name))));
            per_class.push(Block::Table(per_class_table(cm, names)));
            pairs.push(Block::Html(format!("<h3>{}</h3>", imgclass_report::svg::escape(name))));
            pairs.push(Block::Table(confused_pairs_table(cm, names, 5)));
            gallery.push(Block::Html(format!("<h3>{}</h3>", imgclass_report::svg::escape(name))));
            if wrong.is_empty() {
                gallery.push(Block::Text("No test image misclassified.".into()));
            } else {
                gallery.push(Block::Html(misclassified_html(wrong, shape, names)?));
            }
        }
        sections.push(Section::new("Per-class test results (precision, recall, F1)", per_class));
        sections.push(Section::new("Most-confused class pairs", pairs));
        sections.push(Section::new("Misclassified test images", gallery));
    }
    let part = super::report_reps::render(reps, names, shape)?;
    for ((file, bytes), fig) in part.files.into_iter().zip(part.figures) {
        add(&file, fig.caption, &fig.data, bytes);
    }
    sections.extend(part.sections);
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
            // each marker labelled with the setting that varies within its index kind
            let labels = a
                .points
                .iter()
                .filter_map(|p| {
                    p.recall.map(|r| (p.speedup_seconds_ratio, r, short_setting(&p.spec)))
                })
                .collect();
            let svg = line_plot_svg(&LinePlot {
                title: format!("Approximate search: recall@{} against speed", a.k),
                x_label: "speed relative to exact search (x, log scale; > 1 is faster)".into(),
                y_label: format!("recall@{}", a.k),
                series,
                log_x: true,
                markers: true,
                labels,
                reference: Some((1.0, 1.0, "exact search".into())),
                ..LinePlot::default()
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
                    "speed vs exact",
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
                    "-".into(),
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
                        speed_words(p.speedup_seconds_ratio).replace(" than exact", ""),
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

/// The last `key=value` of an index spec (`hnsw:m=16,efc=200,ef=20` -> `ef=20`): the setting
/// a sweep varies, as a marker label.
fn short_setting(spec: &str) -> String {
    spec.rsplit([',', ':']).next().unwrap_or(spec).to_string()
}

fn sorted_distinct(values: impl Iterator<Item = f64>) -> Vec<f64> {
    let mut out: Vec<f64> = values.collect();
    out.sort_by(f64::total_cmp);
    out.dedup();
    out
}

/// "" for a plain grid, else how many cells the search added beyond it and around the best.
fn search_words(origins: impl Iterator<Item = imgclass_eval::Origin>) -> String {
    use imgclass_eval::Origin;
    let (mut ext, mut refd) = (0, 0);
    for o in origins {
        match o {
            Origin::Extended => ext += 1,
            Origin::Refined => refd += 1,
            Origin::Grid => {}
        }
    }
    if ext + refd == 0 {
        return String::new();
    }
    format!(
        " The search added {ext} cell{} past the grid's edge and {refd} refinement{} next to \
         the best (cells the search did not evaluate are grey too).",
        if ext == 1 { "" } else { "s" },
        if refd == 1 { "" } else { "s" }
    )
}

/// The results table of the HTML page.
pub fn summary_table(rows: &[SummaryRow]) -> Table {
    Table {
        header: ["model", "chosen", "validation", "test accuracy"].map(String::from).into(),
        rows: rows
            .iter()
            .map(|r| {
                vec![
                    r.label(),
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
            row("representations (features and their classifiers)", t.representations_seconds),
            row("approximate search", t.ann_seconds),
            row("report", t.report_seconds),
            row("total", t.total_seconds),
        ]
        .into_iter()
        .chain(t.peak_rss_bytes.map(|b| {
            vec![
                "peak resident memory".into(),
                format!("{:.2} GiB", b as f64 / (1u64 << 30) as f64),
                String::new(),
            ]
        }))
        .collect(),
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
        ],
    )];
    sections.extend(rendered.sections.iter().cloned());
    sections.push(Section::new("Configuration", vec![Block::Code(config_toml.to_string())]));
    let header = vec![
        ("date (UTC)".to_string(), results.run.started_utc.clone()),
        (
            "git commit".to_string(),
            results.run.git_commit.clone().unwrap_or_else(|| "unknown (not a git checkout)".into()),
        ),
        ("command".to_string(), results.run.command.clone()),
        (
            "machine".to_string(),
            format!("{} threads, imgclass {}", results.run.threads, results.run.version),
        ),
    ];
    html_report(&format!("imgclass experiment: {}", d.name), &header, &sections)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(model: &str, chosen: &str, validation: &str, test: Option<f64>) -> SummaryRow {
        SummaryRow {
            representation: "raw".into(),
            model: model.into(),
            chosen: chosen.into(),
            validation: validation.into(),
            test_accuracy: test,
            speedup_seconds_ratio: None,
        }
    }

    #[test]
    fn speed_ratios_read_right_both_ways() {
        assert_eq!(speed_words(5.0), "5.0x faster than exact");
        assert_eq!(speed_words(0.2), "5.0x slower than exact");
        assert_eq!(speed_words(1.0), "1.0x faster than exact");
    }

    #[test]
    fn the_summary_fits_80_columns_and_keeps_every_word() {
        let mut ann = row(
            "ann (L2 of 50000)",
            "kmeans:branching=16,iterations=5,checks=512 + pca 64",
            "recall@10 0.912",
            None,
        );
        ann.speedup_seconds_ratio = Some(0.2);
        let rows = vec![
            row("k-NN", "L1, k = 7", "5-fold CV 0.2712 ± 0.0042", Some(0.2849)),
            row("linear svm", "lr 1e-7, L2 2.5e4", "hold-out 0.3820", Some(0.3771)),
            ann,
        ];
        let t = Timings { total_seconds: 61.234, knn_seconds: 20.0, ..Timings::default() };
        let text = summary_text(&rows, &t);
        // the unconstrained table is wider than 80 columns (so wrapping is exercised)
        let natural: usize = rows.iter().map(|r| r.model.len() + r.chosen.len()).max().unwrap_or(0)
            + validation_cell(&rows[2]).len();
        assert!(natural > SUMMARY_WIDTH, "{natural}");
        for line in text.lines() {
            assert!(line.chars().count() <= SUMMARY_WIDTH, "{} columns: {line:?}", line.len());
        }
        for r in &rows {
            for word in [&r.model, &r.chosen, &validation_cell(r)]
                .iter()
                .flat_map(|c| pieces(c))
                .map(|p| p.1)
            {
                assert!(text.contains(word), "{word:?} lost from\n{text}");
            }
        }
        assert!(text.contains("5.0x slower than exact") || text.contains("slower"), "{text}");
        assert!(!text.contains("faster"), "{text}");
        // numbers right-aligned: the test accuracies end at the same column
        let ends: Vec<usize> = text
            .lines()
            .filter(|l| l.ends_with("0.2849") || l.ends_with("0.3771"))
            .map(|l| l.chars().count())
            .collect();
        assert_eq!(ends.len(), 2);
        assert_eq!(ends[0], ends[1]);
    }

    #[test]
    fn a_narrow_table_is_laid_out_unwrapped() {
        let rows = vec![vec!["a".to_string(), "12.5".to_string()], vec!["bcd".into(), "3".into()]];
        let t = text_table(&["name", "value"], &rows, &[false, true], 80);
        assert_eq!(t, "name  value\n----  -----\na      12.5\nbcd       3\n");
    }
}
