//! Hand-written SVG helpers: text escaping, number formatting, "nice" axis ticks, colours.
//!
//! Ticks follow the 1-2-5 rule: the step is the smallest of `{1, 2, 5} · 10^e` that gives at
//! most `n` intervals over the range.
//!
//! ```text
//! raw = (max − min) / n,   e = ⌊log10 raw⌋,   step = min{ m · 10^e : m ∈ {1, 2, 5, 10}, m · 10^e ≥ raw }
//! ```
//!
//! ```
//! use imgclass_report::svg::{escape, nice_ticks};
//! assert_eq!(nice_ticks(0.0, 1.0, 5), vec![0.0, 0.2, 0.4, 0.6, 0.8, 1.0]);
//! assert_eq!(nice_ticks(0.23, 0.31, 4), vec![0.24, 0.26, 0.28, 0.3]);
//! assert_eq!(escape("a<b & \"c\""), "a&lt;b &amp; &quot;c&quot;");
//! ```

use std::fmt::Write;

/// Escapes `&`, `<`, `>`, `"` and `'` for SVG/HTML text and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for ch in text.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Tick values in `[min, max]` on a 1-2-5 step giving at most `n` intervals (see the module
/// doc). Returns `[min]` when the range is empty or not finite.
pub fn nice_ticks(min: f64, max: f64, n: usize) -> Vec<f64> {
    if !(min.is_finite() && max.is_finite()) || max <= min || n == 0 {
        return vec![min];
    }
    let raw = (max - min) / n as f64;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0].iter().map(|m| m * mag).find(|&s| s >= raw * (1.0 - 1e-9));
    let step = step.unwrap_or(10.0 * mag);
    let first = (min / step - 1e-9).ceil() as i64;
    let last = (max / step + 1e-9).floor() as i64;
    // round to the step's decimals so 0.30000000000000004 prints and compares as 0.3
    let decimals = (-step.log10().floor()).max(0.0) as i32;
    let scale = 10f64.powi(decimals);
    (first..=last).map(|i| (i as f64 * step * scale).round() / scale).collect()
}

/// A number for a tick label: up to `decimals` decimals, trailing zeros dropped.
pub fn fmt_num(v: f64, decimals: usize) -> String {
    let s = format!("{v:.decimals$}");
    if s.contains('.') { s.trim_end_matches('0').trim_end_matches('.').to_string() } else { s }
}

/// Decimals needed to tell ticks of this step apart.
pub(crate) fn decimals_for(ticks: &[f64]) -> usize {
    match ticks {
        [a, b, ..] => ((-(b - a).abs().log10()).ceil().max(0.0) as usize).min(6),
        _ => 2,
    }
}

/// Ten distinguishable colours (matplotlib's "tab10"), one per series.
pub const PALETTE: [&str; 10] = [
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
    "#bcbd22", "#17becf",
];

/// The colour of series `i` (the palette repeats).
pub fn colour(i: usize) -> &'static str {
    PALETTE[i % PALETTE.len()]
}

/// A perceptually ordered colour for `t` in `[0, 1]` (viridis, piecewise linear through five
/// stops); NaN gives light grey.
pub fn viridis(t: f64) -> (u8, u8, u8) {
    const STOPS: [(f64, f64, f64); 5] = [
        (68.0, 1.0, 84.0),
        (59.0, 82.0, 139.0),
        (33.0, 145.0, 140.0),
        (94.0, 201.0, 98.0),
        (253.0, 231.0, 37.0),
    ];
    if t.is_nan() {
        return (220, 220, 220);
    }
    let x = t.clamp(0.0, 1.0) * 4.0;
    let i = (x.floor() as usize).min(3);
    let f = x - i as f64;
    let (a, b) = (STOPS[i], STOPS[i + 1]);
    let lerp = |p: f64, q: f64| (p + (q - p) * f).round() as u8;
    (lerp(a.0, b.0), lerp(a.1, b.1), lerp(a.2, b.2))
}

/// A growing SVG document with a fixed canvas size.
pub(crate) struct Doc {
    out: String,
}

impl Doc {
    pub(crate) fn new(width: f64, height: f64) -> Self {
        let mut out = String::new();
        let _ = write!(
            out,
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" \
             viewBox=\"0 0 {width} {height}\" font-family=\"DejaVu Sans, Arial, sans-serif\" \
             font-size=\"12\">\n<rect width=\"{width}\" height=\"{height}\" fill=\"white\"/>\n"
        );
        Self { out }
    }

    /// Appends a raw element line (already escaped by the caller).
    pub(crate) fn raw(&mut self, element: &str) {
        self.out.push_str(element);
        self.out.push('\n');
    }

    pub(crate) fn line(&mut self, x1: f64, y1: f64, x2: f64, y2: f64, style: &str) {
        let _ = writeln!(
            self.out,
            "<line x1=\"{x1:.1}\" y1=\"{y1:.1}\" x2=\"{x2:.1}\" y2=\"{y2:.1}\" {style}/>"
        );
    }

    pub(crate) fn circle(&mut self, cx: f64, cy: f64, r: f64, style: &str) {
        let _ = writeln!(self.out, "<circle cx=\"{cx:.1}\" cy=\"{cy:.1}\" r=\"{r}\" {style}/>");
    }

    pub(crate) fn rect(&mut self, x: f64, y: f64, w: f64, h: f64, style: &str) {
        let _ = writeln!(
            self.out,
            "<rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{w:.1}\" height=\"{h:.1}\" {style}/>"
        );
    }

    pub(crate) fn polyline(&mut self, points: &[(f64, f64)], style: &str) {
        let pts: Vec<String> = points.iter().map(|(x, y)| format!("{x:.1},{y:.1}")).collect();
        let _ =
            writeln!(self.out, "<polyline points=\"{}\" fill=\"none\" {style}/>", pts.join(" "));
    }

    /// Text at (x, y); `anchor` is start, middle or end; the text is escaped here.
    pub(crate) fn text(&mut self, x: f64, y: f64, anchor: &str, style: &str, text: &str) {
        let _ = writeln!(
            self.out,
            "<text x=\"{x:.1}\" y=\"{y:.1}\" text-anchor=\"{anchor}\" {style}>{}</text>",
            escape(text)
        );
    }

    pub(crate) fn finish(mut self) -> String {
        self.out.push_str("</svg>\n");
        self.out
    }
}

/// A linear or log mapping from data to pixels.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Scale {
    d0: f64,
    d1: f64,
    p0: f64,
    p1: f64,
    log: bool,
}

impl Scale {
    pub(crate) fn new(d0: f64, d1: f64, p0: f64, p1: f64, log: bool) -> Self {
        let (d0, d1) = if log { (d0.ln(), d1.ln()) } else { (d0, d1) };
        let (d0, d1) = if d1 > d0 { (d0, d1) } else { (d0 - 0.5, d0 + 0.5) };
        Self { d0, d1, p0, p1, log }
    }

    pub(crate) fn map(&self, v: f64) -> f64 {
        let v = if self.log { v.ln() } else { v };
        self.p0 + (v - self.d0) / (self.d1 - self.d0) * (self.p1 - self.p0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_by_hand() {
        assert_eq!(nice_ticks(1.0, 100.0, 5), vec![20.0, 40.0, 60.0, 80.0, 100.0]);
        assert_eq!(nice_ticks(-3.0, 3.0, 3), vec![-2.0, 0.0, 2.0]);
        assert_eq!(nice_ticks(0.0, 0.05, 5), vec![0.0, 0.01, 0.02, 0.03, 0.04, 0.05]);
        assert_eq!(nice_ticks(2.0, 2.0, 5), vec![2.0]);
        assert_eq!(nice_ticks(f64::NAN, 2.0, 5).len(), 1);
    }

    #[test]
    fn formats_and_colours() {
        assert_eq!(fmt_num(0.30000000000000004, 2), "0.3");
        assert_eq!(fmt_num(20.0, 0), "20");
        assert_eq!(decimals_for(&[0.24, 0.26]), 2);
        assert_eq!(viridis(0.0), (68, 1, 84));
        assert_eq!(viridis(1.0), (253, 231, 37));
        assert_eq!(viridis(0.125), (64, 42, 112)); // halfway between the first two stops
        assert_eq!(escape("it's"), "it&#39;s");
        let s = Scale::new(1.0, 100.0, 0.0, 200.0, true);
        assert!((s.map(10.0) - 100.0).abs() < 1e-9);
    }
}
