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
    /// Logarithmic x axis (non-positive values are skipped). Default false.
    pub log_x: bool,
    /// A marker at every point. Default false.
    pub markers: bool,
    /// Window (in points) of a centred moving average drawn over each series, the raw series
    /// then drawn faint behind it; 0 or 1 draws the raw series only. Default 0.
    pub smooth: usize,
    /// Text labels next to data points: (x, y, text). Default none.
    pub labels: Vec<(f64, f64, String)>,
    /// A reference point drawn as a black diamond with its label, e.g. exact search. Default
    /// none.
    pub reference: Option<(f64, f64, String)>,
}

/// Ticks of a logarithmic axis over `[lo, hi]` (data units, both positive): the 1-2-5 values
/// of each decade inside the range, or 1..9 of each decade when those would be fewer than
/// four.
///
/// ```
/// use imgclass_report::log_ticks;
/// assert_eq!(log_ticks(0.3, 30.0), vec![0.5, 1.0, 2.0, 5.0, 10.0, 20.0]);
/// assert_eq!(log_ticks(1.1, 2.9), vec![2.0]);
/// assert_eq!(log_ticks(1.5, 3.5), vec![2.0, 3.0]);
/// ```
pub fn log_ticks(lo: f64, hi: f64) -> Vec<f64> {
    if !(lo > 0.0 && hi > lo && hi.is_finite()) {
        return Vec::new();
    }
    let collect = |mantissas: &[f64]| {
        let mut out = Vec::new();
        for e in (lo.log10().floor() as i32)..=(hi.log10().ceil() as i32) {
            for &m in mantissas {
                // round so 0.1 * 3 prints as 0.3
                let v = m * 10f64.powi(e);
                let v = (v * 1e12).round() / 1e12;
                if v >= lo * (1.0 - 1e-12) && v <= hi * (1.0 + 1e-12) {
                    out.push(v);
                }
            }
        }
        out
    };
    let ticks = collect(&[1.0, 2.0, 5.0]);
    if ticks.len() >= 4 { ticks } else { collect(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0]) }
}

/// A tick label for a value of any magnitude: `0.002`, `0.5`, `20`, `1e6`.
fn fmt_tick(v: f64) -> String {
    let a = v.abs();
    if a != 0.0 && !(1e-3..1e5).contains(&a) {
        format!("{v:e}")
    } else {
        let dec = if a == 0.0 || a >= 1.0 { 0 } else { (-a.log10().floor()) as usize + 1 };
        fmt_num(v, dec.max(if a.fract() == 0.0 { 0 } else { 2 }))
    }
}

/// Centred moving average over `window` points (the ends average what they have).
fn moving_average(points: &[(f64, f64)], window: usize) -> Vec<(f64, f64)> {
    let half = window / 2;
    let mut prefix = vec![0.0; points.len() + 1];
    for (i, p) in points.iter().enumerate() {
        prefix[i + 1] = prefix[i] + p.1;
    }
    (0..points.len())
        .map(|i| {
            let (a, b) = (i.saturating_sub(half), (i + half + 1).min(points.len()));
            (points[i].0, (prefix[b] - prefix[a]) / (b - a) as f64)
        })
        .collect()
}

/// At most `n` points of `points`, evenly spaced (the last one kept).
fn thin(points: &[(f64, f64)], n: usize) -> Vec<(f64, f64)> {
    if points.len() <= n || n < 2 {
        return points.to_vec();
    }
    let step = points.len().div_ceil(n - 1);
    let mut out: Vec<(f64, f64)> = points.iter().copied().step_by(step).collect();
    if let Some(&last) = points.last()
        && out.last() != Some(&last)
    {
        out.push(last);
    }
    out
}

/// Renders a [`LinePlot`] as SVG: axes with ticks (logarithmic axes with several labelled
/// values), one polyline per series (faint under its moving average when `smooth` is set),
/// optional markers, point labels and a reference point, a legend.
pub fn line_plot_svg(plot: &LinePlot) -> String {
    let (w, h) = (760.0, 420.0);
    let f = Frame { left: 80.0, top: 45.0, right: w - 170.0, bottom: h - 65.0 };
    let mut doc = Doc::new(w, h);
    doc.text(w / 2.0 - 60.0, 26.0, "middle", "font-size=\"16\" font-weight=\"bold\"", &plot.title);
    let keep = |&(x, y): &(f64, f64)| {
        x.is_finite() && y.is_finite() && (!plot.log_y || y > 0.0) && (!plot.log_x || x > 0.0)
    };
    // both axes are drawn as linear axes over the (log10 of the) data
    let tx = |v: f64| if plot.log_x { v.log10() } else { v };
    let ty = |v: f64| if plot.log_y { v.log10() } else { v };
    let extra: Vec<(f64, f64)> =
        plot.reference.iter().map(|r| (r.0, r.1)).filter(|p| keep(p)).collect();
    let pts = || {
        plot.series.iter().flat_map(|s| s.points.iter().copied().filter(keep)).chain(extra.clone())
    };
    let (Some((x_lo, x_hi)), Some((y_lo, y_hi))) = (
        padded_range(pts().map(|p| tx(p.0)), if plot.log_x { 0.06 } else { 0.02 }),
        padded_range(pts().map(|p| ty(p.1)), 0.05),
    ) else {
        doc.text((f.left + f.right) / 2.0, h / 2.0, "middle", "", "no data");
        return doc.finish();
    };
    let x = Scale::new(x_lo, x_hi, f.left, f.right, false);
    let y = Scale::new(y_lo, y_hi, f.bottom, f.top, false);
    if plot.log_y {
        draw_axes(&mut doc, &f, &y, &[], &plot.x_label, &plot.y_label);
        for t in log_ticks(10f64.powf(y_lo), 10f64.powf(y_hi)) {
            let py = y.map(t.log10());
            doc.line(f.left, py, f.right, py, GRID);
            doc.line(f.left - 5.0, py, f.left, py, AXIS);
            doc.text(f.left - 8.0, py + 4.0, "end", "", &fmt_tick(t));
        }
        doc.text(f.left, f.top - 8.0, "end", "fill=\"#777\" font-size=\"11\"", "(log scale)");
    } else {
        draw_axes(&mut doc, &f, &y, &nice_ticks(y_lo, y_hi, 6), &plot.x_label, &plot.y_label);
    }
    if plot.log_x {
        for t in log_ticks(10f64.powf(x_lo), 10f64.powf(x_hi)) {
            let px = x.map(t.log10());
            doc.line(px, f.top, px, f.bottom, GRID);
            doc.line(px, f.bottom, px, f.bottom + 5.0, AXIS);
            doc.text(px, f.bottom + 18.0, "middle", "", &fmt_tick(t));
        }
        doc.text(f.right, f.bottom + 40.0, "end", "fill=\"#777\" font-size=\"11\"", "(log scale)");
    } else {
        draw_x_ticks(&mut doc, &f, &x, &nice_ticks(x_lo, x_hi, 8));
    }
    let to_px = |(px, py): (f64, f64)| (x.map(tx(px)), y.map(ty(py)));
    for (si, s) in plot.series.iter().enumerate() {
        let c = colour(si);
        let data: Vec<(f64, f64)> = s.points.iter().copied().filter(keep).collect();
        let raw: Vec<(f64, f64)> = thin(&data, 800).into_iter().map(to_px).collect();
        if plot.smooth > 1 {
            doc.polyline(
                &raw,
                &format!("stroke=\"{c}\" stroke-width=\"1\" stroke-opacity=\"0.3\""),
            );
            let smooth: Vec<(f64, f64)> =
                thin(&moving_average(&data, plot.smooth), 800).into_iter().map(to_px).collect();
            doc.polyline(
                &smooth,
                &format!("stroke=\"{c}\" stroke-width=\"2.2\" class=\"smoothed\""),
            );
        } else {
            doc.polyline(&raw, &format!("stroke=\"{c}\" stroke-width=\"1.5\""));
        }
        if plot.markers {
            for &(px, py) in &raw {
                doc.circle(px, py, 4.0, &format!("fill=\"{c}\" class=\"marker\""));
            }
        }
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
    let mut ly = f.top + 5.0 + 20.0 * plot.series.len() as f64;
    if plot.smooth > 1 {
        let key = "fill=\"#555\" font-size=\"11\"";
        doc.text(f.right + 20.0, ly + 4.0, "start", key, "faint: per minibatch");
        doc.text(
            f.right + 20.0,
            ly + 18.0,
            "start",
            key,
            &format!("bold: mean of {}", plot.smooth),
        );
        ly += 34.0;
    }
    for (lx, lyv, text) in plot.labels.iter().filter(|l| keep(&(l.0, l.1))) {
        let (px, py) = to_px((*lx, *lyv));
        doc.text(
            px + 6.0,
            py - 6.0,
            "start",
            "font-size=\"10\" fill=\"#333\" class=\"point-label\"",
            text,
        );
    }
    if let Some((rx, ry, text)) = plot.reference.as_ref().filter(|r| keep(&(r.0, r.1))) {
        let (px, py) = to_px((*rx, *ry));
        doc.raw(&format!(
            "<path d=\"M {:.1} {:.1} l 7 7 l -7 7 l -7 -7 z\" fill=\"#000\" class=\"reference\"/>",
            px,
            py - 7.0
        ));
        doc.text(px, py + 22.0, "start", "font-weight=\"bold\"", text);
        doc.raw(&format!(
            "<path d=\"M {:.1} {:.1} l 6 6 l -6 6 l -6 -6 z\" fill=\"#000\"/>",
            f.right + 31.0,
            ly - 6.0
        ));
        doc.text(f.right + 50.0, ly + 4.0, "start", "", text);
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
    /// The chosen cell (row, column), outlined; `None` outlines nothing. Default `None`.
    pub chosen: Option<(usize, usize)>,
    /// What the values are, beside the colour bar (e.g. "validation accuracy"); empty gives
    /// "value". Default empty.
    pub value_title: String,
}

/// A warning when the chosen cell of a `n_rows x n_cols` grid sits on its edge (so the best
/// value may lie outside the grid), naming the axis: e.g. "the chosen learning rate is the
/// grid's largest: the best value may lie beyond it". `None` inside the grid.
pub fn edge_warning(
    n_rows: usize,
    n_cols: usize,
    chosen: (usize, usize),
    row_title: &str,
    col_title: &str,
) -> Option<String> {
    let side = |i: usize, n: usize| match (i, n) {
        (_, 0..=1) => None,
        (0, _) => Some("smallest"),
        (i, n) if i + 1 == n => Some("largest"),
        _ => None,
    };
    let parts: Vec<String> =
        [(side(chosen.0, n_rows), row_title), (side(chosen.1, n_cols), col_title)]
            .into_iter()
            .filter_map(|(s, title)| s.map(|s| format!("the chosen {title} is the grid's {s}")))
            .collect();
    (!parts.is_empty()).then(|| {
        format!("Warning: {}: the best value may lie beyond the grid.", parts.join(" and "))
    })
}

/// Cell colour from `t` in [0, 1], and the text colour readable on it.
fn cell_colours(t: f64) -> (String, &'static str) {
    let (r, g, b) = viridis(t);
    let ink = if t.is_nan() || t > 0.55 { "#000" } else { "#fff" };
    (format!("#{r:02x}{g:02x}{b:02x}"), ink)
}

/// The texts around a grid, its colour bar and its chosen cell.
struct GridText<'a> {
    title: &'a str,
    row_title: &'a str,
    col_title: &'a str,
    rows: &'a [String],
    cols: &'a [String],
    scale_note: &'a str,
    /// The values at colour 0 and 1, with the decimals of the bar's tick labels.
    bar: Option<(f64, f64, usize)>,
    /// The bar's title.
    bar_title: &'a str,
    chosen: Option<(usize, usize)>,
    warning: Option<String>,
}

/// Shared grid renderer: `text(i, j)` is the cell's label, `t(i, j)` its colour in [0, 1].
fn grid_svg(
    g: &GridText<'_>,
    t: impl Fn(usize, usize) -> f64,
    text: impl Fn(usize, usize) -> String,
) -> String {
    let GridText {
        title,
        row_title,
        col_title,
        rows,
        cols,
        scale_note,
        bar,
        bar_title,
        chosen,
        ..
    } = *g;
    let cell = 52.0;
    let label_w = 10.0 + 7.5 * rows.iter().map(|r| r.chars().count()).max().unwrap_or(1) as f64;
    let col_label_h = 10.0 + 6.0 * cols.iter().map(|c| c.chars().count()).max().unwrap_or(1) as f64;
    let left = 40.0 + label_w;
    let top = 50.0;
    let (gw, gh) = (cell * cols.len() as f64, cell * rows.len() as f64);
    let title_w = 9.5 * title.chars().count() as f64 + 40.0;
    let bar_w = if bar.is_some() { 110.0 } else { 0.0 };
    // bold 12 px text is about 7.6 px a character, 11 px text about 6.2
    let warn_w = g.warning.as_ref().map_or(0.0, |s| 7.6 * s.chars().count() as f64 + 20.0);
    let note_w = 6.2 * scale_note.chars().count() as f64 + 20.0;
    let w = (left + gw + 30.0 + bar_w).max(360.0).max(title_w).max(warn_w).max(note_w);
    let h = top + gh + col_label_h + 60.0 + if g.warning.is_some() { 20.0 } else { 0.0 };
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
        10.0,
        top + gh + col_label_h + 42.0,
        "start",
        "fill=\"#777\" font-size=\"11\"",
        scale_note,
    );
    if let Some((i, j)) = chosen.filter(|&(i, j)| i < rows.len() && j < cols.len()) {
        doc.rect(
            left + cell * j as f64 + 1.5,
            top + cell * i as f64 + 1.5,
            cell - 3.0,
            cell - 3.0,
            "fill=\"none\" stroke=\"#e8175d\" stroke-width=\"3\" class=\"chosen\"",
        );
    }
    if let Some(warning) = &g.warning {
        doc.text(
            10.0,
            top + gh + col_label_h + 62.0,
            "start",
            "fill=\"#a04000\" font-weight=\"bold\" class=\"warning\"",
            warning,
        );
    }
    if let Some((lo, hi, dec)) = bar {
        // the colour bar: viridis from the bottom (lo) to the top (hi), with labelled ticks
        let (bx, bw) = (left + gw + 24.0, 16.0);
        let steps = 40;
        for s in 0..steps {
            let t = 1.0 - (s as f64 + 0.5) / steps as f64;
            let (r, gg, b) = viridis(t);
            doc.rect(
                bx,
                top + gh * s as f64 / steps as f64,
                bw,
                gh / steps as f64 + 0.5,
                &format!("fill=\"#{r:02x}{gg:02x}{b:02x}\" class=\"colourbar\""),
            );
        }
        doc.rect(bx, top, bw, gh, "fill=\"none\" stroke=\"#333\"");
        let ticks = if hi > lo { nice_ticks(lo, hi, 6) } else { vec![lo] };
        for v in ticks {
            let frac = if hi > lo { (v - lo) / (hi - lo) } else { 0.5 };
            let y = top + gh * (1.0 - frac);
            doc.line(bx + bw, y, bx + bw + 4.0, y, AXIS);
            doc.text(bx + bw + 7.0, y + 4.0, "start", "class=\"bar-tick\"", &fmt_num(v, dec));
        }
        let cy = top + gh / 2.0;
        let tx = bx + bw + 62.0;
        doc.raw(&format!(
            "<text x=\"{tx:.1}\" y=\"{cy:.1}\" text-anchor=\"middle\" font-size=\"12\" \
             transform=\"rotate(-90 {tx:.1} {cy:.1})\">{}</text>",
            crate::svg::escape(bar_title)
        ));
    }
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
            "colour: {} (dark) to {} (yellow); grey: no value{}",
            fmt_num(lo, map.decimals),
            fmt_num(hi, map.decimals),
            if map.chosen.is_some() { "; outlined: chosen" } else { "" }
        )
    } else {
        "no finite values".to_string()
    };
    let warning = map
        .chosen
        .and_then(|c| edge_warning(map.rows.len(), nc, c, &map.row_title, &map.col_title));
    let texts = GridText {
        title: &map.title,
        row_title: &map.row_title,
        col_title: &map.col_title,
        rows: &map.rows,
        cols: &map.cols,
        scale_note: &note,
        bar: (lo <= hi).then_some((lo, hi, map.decimals)),
        bar_title: if map.value_title.is_empty() { "value" } else { &map.value_title },
        chosen: map.chosen,
        warning,
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
        bar: Some((0.0, 1.0, 2)),
        bar_title: "share of the true class",
        chosen: None,
        warning: None,
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
