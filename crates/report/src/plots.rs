//! SVG plots written by hand: the lecture's cross-validation plot ([`cv_plot_svg`]), a
//! generic line plot ([`line_plot_svg`], e.g. loss curves), a heatmap ([`heatmap_svg`], e.g.
//! a learning-rate x regularisation grid) and a confusion matrix ([`confusion_svg`]).

use imgclass_core::ClassNames;
use imgclass_eval::{ConfusionMatrix, CvCurve};

use crate::svg::{Doc, Scale, colour, decimals_for, fmt_num, nice_ticks, viridis};

const AXIS: &str = "stroke=\"#333\" stroke-width=\"1\"";
const GRID: &str = "stroke=\"#e5e5e5\" stroke-width=\"1\"";

/// The plot frame: data area in pixels.
struct Frame {
    left: f64,
    top: f64,
    right: f64,
    bottom: f64,
}

/// Draws the axes box, y ticks with grid lines, and the axis titles.
fn draw_axes(doc: &mut Doc, f: &Frame, y: &Scale, y_ticks: &[f64], x_title: &str, y_title: &str) {
    let dec = decimals_for(y_ticks);
    for &t in y_ticks {
        let py = y.map(t);
        doc.line(f.left, py, f.right, py, GRID);
        doc.line(f.left - 5.0, py, f.left, py, AXIS);
        doc.text(f.left - 8.0, py + 4.0, "end", "", &fmt_num(t, dec));
    }
    doc.line(f.left, f.top, f.left, f.bottom, AXIS);
    doc.line(f.left, f.bottom, f.right, f.bottom, AXIS);
    let cx = (f.left + f.right) / 2.0;
    doc.text(cx, f.bottom + 40.0, "middle", "font-size=\"13\"", x_title);
    let cy = (f.top + f.bottom) / 2.0;
    doc.raw(&format!(
        "<text x=\"{:.1}\" y=\"{cy:.1}\" text-anchor=\"middle\" font-size=\"13\" \
         transform=\"rotate(-90 {:.1} {cy:.1})\">{}</text>",
        f.left - 50.0,
        f.left - 50.0,
        crate::svg::escape(y_title)
    ));
}

fn draw_x_ticks(doc: &mut Doc, f: &Frame, x: &Scale, ticks: &[f64]) {
    let dec = decimals_for(ticks);
    for &t in ticks {
        let px = x.map(t);
        doc.line(px, f.bottom, px, f.bottom + 5.0, AXIS);
        doc.text(px, f.bottom + 18.0, "middle", "", &fmt_num(t, dec));
    }
}

/// Min and max of the finite values, padded by `pad` of the span (or ±0.05 if flat).
fn padded_range(values: impl IntoIterator<Item = f64>, pad: f64) -> Option<(f64, f64)> {
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for v in values.into_iter().filter(|v| v.is_finite()) {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    if lo > hi {
        return None;
    }
    let span = if hi > lo { hi - lo } else { 0.1 };
    Some((lo - pad * span, hi + pad * span))
}

/// The lecture's cross-validation plot: accuracy against `k`, each fold's accuracy as a
/// point, the mean as a line, ±1 standard deviation as error bars, the chosen `k` marked
/// (dashed line and ring), one colour per series (metric), a legend on the right.
///
/// The x axis is logarithmic when the largest `k` is at least 20 times the smallest, with a
/// tick at every `k` of the grid. Series are shifted a few pixels sideways so points of
/// different metrics at the same `k` do not hide each other.
pub fn cv_plot_svg(curve: &CvCurve) -> String {
    let (w, h) = (860.0, 470.0);
    let f = Frame { left: 80.0, top: 50.0, right: w - 250.0, bottom: h - 70.0 };
    let mut doc = Doc::new(w, h);
    let n_folds = curve
        .series
        .iter()
        .flat_map(|s| s.points.first())
        .map(|p| p.scores.per_fold.len())
        .max()
        .unwrap_or(0);
    doc.text(
        w / 2.0 - 100.0,
        28.0,
        "middle",
        "font-size=\"16\" font-weight=\"bold\"",
        &format!("{n_folds}-fold cross-validation: accuracy against {}", curve.x_label),
    );
    let mut ks: Vec<usize> =
        curve.series.iter().flat_map(|s| s.points.iter().map(|p| p.k)).collect();
    ks.sort_unstable();
    ks.dedup();
    let ys = curve.series.iter().flat_map(|s| {
        s.points.iter().flat_map(|p| {
            let (m, sd) = (p.scores.mean, p.scores.std);
            p.scores.per_fold.iter().copied().chain([m - sd, m + sd])
        })
    });
    let Some((y_lo, y_hi)) = padded_range(ys, 0.08) else {
        doc.text((f.left + f.right) / 2.0, h / 2.0, "middle", "", "no data");
        return doc.finish();
    };
    let (k_min, k_max) = (ks[0].max(1) as f64, ks[ks.len() - 1].max(1) as f64);
    let log = k_max / k_min >= 20.0;
    let x = if log {
        let (a, b) = (k_min.ln(), k_max.ln());
        let pad = 0.06 * (b - a);
        Scale::new((a - pad).exp(), (b + pad).exp(), f.left, f.right, true)
    } else {
        let pad = 0.06 * (k_max - k_min).max(1.0);
        Scale::new(k_min - pad, k_max + pad, f.left, f.right, false)
    };
    let y_ticks = nice_ticks(y_lo, y_hi, 6);
    let y = Scale::new(y_lo, y_hi, f.bottom, f.top, false);
    draw_axes(&mut doc, &f, &y, &y_ticks, &curve.x_label, "validation accuracy");
    let k_ticks: Vec<f64> = ks.iter().map(|&k| k as f64).collect();
    draw_x_ticks(&mut doc, &f, &x, &k_ticks);
    if log {
        doc.text(f.right, f.bottom + 40.0, "end", "fill=\"#777\" font-size=\"11\"", "(log scale)");
    }

    let n = curve.series.len() as f64;
    for (si, s) in curve.series.iter().enumerate() {
        let c = colour(si);
        let dx = (si as f64 - (n - 1.0) / 2.0) * 7.0;
        doc.raw(&format!("<g class=\"series\" data-name=\"{}\">", crate::svg::escape(&s.name)));
        if let Some(p) = s.chosen() {
            let px = x.map(p.k as f64) + dx;
            doc.line(px, f.top, px, f.bottom, &format!("stroke=\"{c}\" stroke-dasharray=\"5,4\""));
            // label on the side of the dashed line that has room
            let (tx, anchor) =
                if px > (f.left + f.right) / 2.0 { (px - 4.0, "end") } else { (px + 4.0, "start") };
            doc.text(
                tx,
                f.top + 14.0 + 16.0 * si as f64,
                anchor,
                &format!("fill=\"{c}\" font-weight=\"bold\""),
                &format!("{} k={}", s.name, p.k),
            );
        }
        let mean_line: Vec<(f64, f64)> =
            s.points.iter().map(|p| (x.map(p.k as f64) + dx, y.map(p.scores.mean))).collect();
        doc.polyline(&mean_line, &format!("stroke=\"{c}\" stroke-width=\"2\""));
        for p in &s.points {
            let px = x.map(p.k as f64) + dx;
            let (m, sd) = (p.scores.mean, p.scores.std);
            let bar = format!("stroke=\"{c}\" stroke-width=\"1.5\"");
            doc.line(px, y.map(m - sd), px, y.map(m + sd), &bar);
            doc.line(px - 4.0, y.map(m - sd), px + 4.0, y.map(m - sd), &bar);
            doc.line(px - 4.0, y.map(m + sd), px + 4.0, y.map(m + sd), &bar);
            for &a in &p.scores.per_fold {
                doc.circle(px, y.map(a), 2.5, &format!("fill=\"{c}\" fill-opacity=\"0.55\""));
            }
        }
        if let Some(p) = s.chosen() {
            let style = format!("fill=\"none\" stroke=\"{c}\" stroke-width=\"2\"");
            doc.circle(x.map(p.k as f64) + dx, y.map(p.scores.mean), 7.0, &style);
        }
        doc.raw("</g>");
    }

    // legend: one block per series, then the key to the marks
    let lx = f.right + 25.0;
    let mut ly = f.top + 5.0;
    for (si, s) in curve.series.iter().enumerate() {
        let c = colour(si);
        doc.line(lx, ly, lx + 22.0, ly, &format!("stroke=\"{c}\" stroke-width=\"2\""));
        doc.circle(lx + 11.0, ly, 3.0, &format!("fill=\"{c}\""));
        doc.text(lx + 30.0, ly + 4.0, "start", "font-weight=\"bold\"", &s.name);
        ly += 18.0;
        if let Some(p) = s.chosen() {
            doc.text(lx + 30.0, ly, "start", "", &format!("chosen k = {}", p.k));
            ly += 16.0;
            let (m, sd) = (p.scores.mean, p.scores.std);
            doc.text(lx + 30.0, ly, "start", "", &format!("cv {m:.4} ± {sd:.4}"));
            ly += 16.0;
        }
        if let Some(t) = s.test_accuracy {
            doc.text(lx + 30.0, ly, "start", "", &format!("test {t:.4}"));
            ly += 16.0;
        }
        ly += 10.0;
    }
    ly += 6.0;
    let key = "fill=\"#555\" font-size=\"11\"";
    doc.circle(lx + 11.0, ly, 2.5, "fill=\"#555\" fill-opacity=\"0.55\"");
    doc.text(lx + 30.0, ly + 4.0, "start", key, "one fold");
    ly += 16.0;
    doc.line(lx, ly, lx + 22.0, ly, "stroke=\"#555\" stroke-width=\"2\"");
    doc.text(lx + 30.0, ly + 4.0, "start", key, "mean over folds");
    ly += 16.0;
    doc.line(lx + 11.0, ly - 6.0, lx + 11.0, ly + 6.0, "stroke=\"#555\" stroke-width=\"1.5\"");
    doc.text(lx + 30.0, ly + 4.0, "start", key, "±1 std");
    ly += 18.0;
    doc.circle(lx + 11.0, ly, 6.0, "fill=\"none\" stroke=\"#555\" stroke-width=\"2\"");
    doc.text(lx + 30.0, ly + 4.0, "start", key, "chosen k (best mean)");
    doc.finish()
}

/// One named series of (x, y) points for [`line_plot_svg`].
#[derive(Debug, Clone, PartialEq)]
pub struct LineSeries {
    /// Legend name.
    pub name: String,
    /// Points in drawing order; non-finite ones are skipped.
    pub points: Vec<(f64, f64)>,
}

/// A line plot: several series over shared axes (e.g. training loss against iteration).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LinePlot {
    /// Title above the plot.
    pub title: String,
    /// x axis title.
    pub x_label: String,
    /// y axis title.
    pub y_label: String,
    /// The series, one colour each.
    pub series: Vec<LineSeries>,
    /// Logarithmic y axis (non-positive values are skipped). Default false.
    pub log_y: bool,
}

/// Renders a [`LinePlot`] as SVG: axes with ticks, one polyline per series, a legend.
pub fn line_plot_svg(plot: &LinePlot) -> String {
    let (w, h) = (760.0, 420.0);
    let f = Frame { left: 80.0, top: 45.0, right: w - 170.0, bottom: h - 65.0 };
    let mut doc = Doc::new(w, h);
    doc.text(w / 2.0 - 60.0, 26.0, "middle", "font-size=\"16\" font-weight=\"bold\"", &plot.title);
    let keep = |&(x, y): &(f64, f64)| x.is_finite() && y.is_finite() && (!plot.log_y || y > 0.0);
    let pts = || plot.series.iter().flat_map(|s| s.points.iter().copied().filter(keep));
    let (Some((x_lo, x_hi)), Some((y_lo, y_hi))) = (
        padded_range(pts().map(|p| p.0), 0.02),
        padded_range(pts().map(|p| if plot.log_y { p.1.log10() } else { p.1 }), 0.05),
    ) else {
        doc.text((f.left + f.right) / 2.0, h / 2.0, "middle", "", "no data");
        return doc.finish();
    };
    let x = Scale::new(x_lo, x_hi, f.left, f.right, false);
    // a log axis is drawn as a linear axis over log10(y) with ticks labelled 10^e
    let y = Scale::new(y_lo, y_hi, f.bottom, f.top, false);
    let y_ticks = nice_ticks(y_lo, y_hi, 6);
    if plot.log_y {
        let ticks: Vec<f64> = y_ticks.iter().copied().filter(|t| t.fract() == 0.0).collect();
        draw_axes(&mut doc, &f, &y, &[], &plot.x_label, &plot.y_label);
        for t in ticks {
            let py = y.map(t);
            doc.line(f.left, py, f.right, py, GRID);
            doc.line(f.left - 5.0, py, f.left, py, AXIS);
            doc.text(f.left - 8.0, py + 4.0, "end", "", &format!("1e{t}"));
        }
    } else {
        draw_axes(&mut doc, &f, &y, &y_ticks, &plot.x_label, &plot.y_label);
    }
    draw_x_ticks(&mut doc, &f, &x, &nice_ticks(x_lo, x_hi, 8));
    for (si, s) in plot.series.iter().enumerate() {
        let c = colour(si);
        let line: Vec<(f64, f64)> = s
            .points
            .iter()
            .copied()
            .filter(keep)
            .map(|(px, py)| (x.map(px), y.map(if plot.log_y { py.log10() } else { py })))
            .collect();
        doc.polyline(&line, &format!("stroke=\"{c}\" stroke-width=\"1.5\""));
        let ly = f.top + 5.0 + 20.0 * si as f64;
        doc.line(
            f.right + 20.0,
            ly,
            f.right + 42.0,
            ly,
            &format!("stroke=\"{c}\" stroke-width=\"2\""),
        );
        doc.text(f.right + 50.0, ly + 4.0, "start", "", &s.name);
    }
    doc.finish()
}

/// A grid of values with row and column names (e.g. validation accuracy over learning rate x
/// regularisation strength), for [`heatmap_svg`].
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Heatmap {
    /// Title above the grid.
    pub title: String,
    /// What the rows are (shown on the left).
    pub row_title: String,
    /// What the columns are (shown below).
    pub col_title: String,
    /// Row names, top to bottom.
    pub rows: Vec<String>,
    /// Column names, left to right.
    pub cols: Vec<String>,
    /// Row-major values, `rows.len() * cols.len()` of them; NaN cells are grey.
    pub values: Vec<f64>,
    /// Decimals of the number printed in each cell.
    pub decimals: usize,
}

/// Cell colour from `t` in [0, 1], and the text colour readable on it.
fn cell_colours(t: f64) -> (String, &'static str) {
    let (r, g, b) = viridis(t);
    let ink = if t.is_nan() || t > 0.55 { "#000" } else { "#fff" };
    (format!("#{r:02x}{g:02x}{b:02x}"), ink)
}

/// The texts around a grid.
struct GridText<'a> {
    title: &'a str,
    row_title: &'a str,
    col_title: &'a str,
    rows: &'a [String],
    cols: &'a [String],
    scale_note: &'a str,
}

/// Shared grid renderer: `text(i, j)` is the cell's label, `t(i, j)` its colour in [0, 1].
fn grid_svg(
    g: &GridText<'_>,
    t: impl Fn(usize, usize) -> f64,
    text: impl Fn(usize, usize) -> String,
) -> String {
    let GridText { title, row_title, col_title, rows, cols, scale_note } = *g;
    let cell = 52.0;
    let label_w = 10.0 + 7.5 * rows.iter().map(|r| r.chars().count()).max().unwrap_or(1) as f64;
    let col_label_h = 10.0 + 6.0 * cols.iter().map(|c| c.chars().count()).max().unwrap_or(1) as f64;
    let left = 40.0 + label_w;
    let top = 50.0;
    let (gw, gh) = (cell * cols.len() as f64, cell * rows.len() as f64);
    let title_w = 9.5 * title.chars().count() as f64 + 40.0;
    let w = (left + gw + 30.0).max(360.0).max(title_w);
    let h = top + gh + col_label_h + 60.0;
    let mut doc = Doc::new(w, h);
    doc.text(w / 2.0, 28.0, "middle", "font-size=\"16\" font-weight=\"bold\"", title);
    for (i, r) in rows.iter().enumerate() {
        let cy = top + cell * (i as f64 + 0.5);
        doc.text(left - 6.0, cy + 4.0, "end", "", r);
        for j in 0..cols.len() {
            let (fill, ink) = cell_colours(t(i, j));
            let cx = left + cell * j as f64;
            doc.rect(
                cx,
                top + cell * i as f64,
                cell,
                cell,
                &format!("fill=\"{fill}\" stroke=\"#fff\""),
            );
            doc.text(cx + cell / 2.0, cy + 4.0, "middle", &format!("fill=\"{ink}\""), &text(i, j));
        }
    }
    for (j, c) in cols.iter().enumerate() {
        let cx = left + cell * (j as f64 + 0.5);
        let cy = top + gh + 8.0;
        doc.raw(&format!(
            "<text x=\"{cx:.1}\" y=\"{cy:.1}\" text-anchor=\"end\" transform=\"rotate(-45 {cx:.1} {cy:.1})\">{}</text>",
            crate::svg::escape(c)
        ));
    }
    doc.text(
        left + gw / 2.0,
        top + gh + col_label_h + 22.0,
        "middle",
        "font-size=\"13\"",
        col_title,
    );
    let cy = top + gh / 2.0;
    doc.raw(&format!(
        "<text x=\"16\" y=\"{cy:.1}\" text-anchor=\"middle\" font-size=\"13\" transform=\"rotate(-90 16 {cy:.1})\">{}</text>",
        crate::svg::escape(row_title)
    ));
    doc.text(
        left + gw / 2.0,
        top + gh + col_label_h + 42.0,
        "middle",
        "fill=\"#777\" font-size=\"11\"",
        scale_note,
    );
    doc.finish()
}

/// Renders a [`Heatmap`]: cells coloured from the smallest (dark) to the largest (yellow)
/// finite value, each with its number. Missing values (when `values` is shorter than the
/// grid) show as NaN.
pub fn heatmap_svg(map: &Heatmap) -> String {
    let nc = map.cols.len();
    let v = |i: usize, j: usize| map.values.get(i * nc + j).copied().unwrap_or(f64::NAN);
    let finite = map.values.iter().copied().filter(|x| x.is_finite());
    let (lo, hi) =
        finite.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), x| (a.min(x), b.max(x)));
    let t = |i, j| {
        let x = v(i, j);
        if !x.is_finite() {
            f64::NAN
        } else if hi > lo {
            (x - lo) / (hi - lo)
        } else {
            0.5
        }
    };
    let note = if lo <= hi {
        format!(
            "colour: {} (dark) to {} (yellow)",
            fmt_num(lo, map.decimals),
            fmt_num(hi, map.decimals)
        )
    } else {
        "no finite values".to_string()
    };
    let texts = GridText {
        title: &map.title,
        row_title: &map.row_title,
        col_title: &map.col_title,
        rows: &map.rows,
        cols: &map.cols,
        scale_note: &note,
    };
    grid_svg(&texts, t, |i, j| {
        let x = v(i, j);
        if x.is_finite() { format!("{x:.*}", map.decimals) } else { "–".to_string() }
    })
}

/// A confusion-matrix heatmap: rows are true classes, columns predicted classes, each cell
/// shows its count and is coloured by the count's share of its row (so the diagonal reads
/// as per-class recall). Classes without a name are shown by number.
pub fn confusion_svg(cm: &ConfusionMatrix, names: &ClassNames) -> String {
    let n = cm.n_classes();
    let label = |c: usize| names.name(c as u32).map_or_else(|| c.to_string(), str::to_string);
    let rows: Vec<String> = (0..n).map(label).collect();
    let title = format!("Confusion matrix (accuracy {:.4}, {} rows)", cm.accuracy(), cm.total());
    let texts = GridText {
        title: &title,
        row_title: "true class",
        col_title: "predicted class",
        rows: &rows,
        cols: &rows,
        scale_note: "colour: share of the true class's rows (0 dark, 1 yellow)",
    };
    grid_svg(
        &texts,
        |i, j| {
            let support = cm.support(i as u32);
            if support == 0 {
                f64::NAN
            } else {
                cm.count(i as u32, j as u32) as f64 / support as f64
            }
        },
        |i, j| cm.count(i as u32, j as u32).to_string(),
    )
}
