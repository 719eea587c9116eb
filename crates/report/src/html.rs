//! A self-contained HTML report page: SVG inline, PNG as base64 `data:` URIs, tables; no
//! external files, scripts or fonts, so the page can be mailed or archived as one file.
//!
//! Base64 (RFC 4648, with `=` padding) maps every 3 bytes to 4 characters of
//! `A–Z a–z 0–9 + /`:
//!
//! ```
//! use imgclass_report::html::base64;
//! assert_eq!(base64(b"Man"), "TWFu");
//! assert_eq!(base64(b"Ma"), "TWE=");
//! assert_eq!(base64(b"M"), "TQ==");
//! ```

use std::fmt::Write;

use imgclass_eval::CvCurve;

use crate::svg::escape;

/// A table: a header row and body rows of already formatted cells (escaped when written).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Table {
    /// Column titles.
    pub header: Vec<String>,
    /// Body rows.
    pub rows: Vec<Vec<String>>,
}

/// One piece of a section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Block {
    /// A paragraph of plain text (escaped).
    Text(String),
    /// Preformatted text, e.g. a command line (escaped).
    Code(String),
    /// An SVG document inlined as is: pass only SVG made by this crate or otherwise trusted.
    Svg(String),
    /// PNG bytes, embedded as a base64 data URI, with alternative text.
    Png {
        /// The encoded PNG.
        bytes: Vec<u8>,
        /// Alternative text (escaped).
        alt: String,
    },
    /// A table.
    Table(Table),
    /// An HTML fragment inlined as is: pass only HTML made by this crate (e.g.
    /// [`crate::image_grid_html`]) or otherwise trusted.
    Html(String),
}

/// A titled section of the page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    /// Section heading (escaped).
    pub heading: String,
    /// Its content, in order.
    pub blocks: Vec<Block>,
}

impl Section {
    /// A section with `heading` and `blocks`.
    pub fn new(heading: impl Into<String>, blocks: Vec<Block>) -> Self {
        Self { heading: heading.into(), blocks }
    }
}

/// Standard base64 with padding (see the module doc).
pub fn base64(bytes: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ABC[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

const STYLE: &str = "body{font-family:DejaVu Sans,Arial,sans-serif;margin:24px auto;max-width:1000px;\
color:#222}h1{font-size:24px}h2{font-size:18px;border-bottom:1px solid #ddd;padding-bottom:4px;\
margin-top:32px}table{border-collapse:collapse;margin:8px 0}th,td{border:1px solid #ccc;\
padding:4px 10px;text-align:left}th{background:#f3f3f3}.num{text-align:right}\
pre{background:#f6f6f6;padding:8px;white-space:pre-wrap;overflow-wrap:anywhere}\
img{image-rendering:pixelated;max-width:100%}.figure{margin:8px 0}\
.meta{color:#444;margin:0 0 12px}.meta td{border:none;padding:1px 12px 1px 0}\
.meta td:first-child{color:#777}nav ol{margin:4px 0 0 0}.warn{color:#a04000;font-weight:bold}\
.grid{display:flex;flex-wrap:wrap;gap:10px 14px;margin:8px 0}\
.grid figure{margin:0;text-align:center;font-size:13px}\
.grid figcaption{margin-top:3px;line-height:1.3}.ok{color:#1a7f37}.bad{color:#c62828}\
.frame-ok{outline:3px solid #1e9e3c}.frame-bad{outline:3px solid #d62828}\
.frame-query{outline:3px solid #777}.row{display:flex;gap:14px;align-items:flex-start;margin:6px 0}";

/// A complete, self-contained HTML page with `title` and the `sections` in order (a table of
/// contents first when there are three sections or more).
pub fn html_page(title: &str, sections: &[Section]) -> String {
    html_report(title, &[], sections)
}

/// [`html_page`] with a header of (name, value) lines under the title, e.g. the date, the
/// git commit and the command that made the report.
pub fn html_report(title: &str, header: &[(String, String)], sections: &[Section]) -> String {
    let mut out = String::new();
    let t = escape(title);
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <title>{t}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<h1>{t}</h1>\n"
    );
    if !header.is_empty() {
        out.push_str("<table class=\"meta\">\n");
        for (k, v) in header {
            let _ = writeln!(out, "<tr><td>{}</td><td>{}</td></tr>", escape(k), escape(v));
        }
        out.push_str("</table>\n");
    }
    if sections.len() >= 3 {
        out.push_str("<nav>\n<strong>Contents</strong>\n<ol>\n");
        for (i, s) in sections.iter().enumerate() {
            let _ = writeln!(out, "<li><a href=\"#s{}\">{}</a></li>", i + 1, escape(&s.heading));
        }
        out.push_str("</ol>\n</nav>\n");
    }
    for (i, s) in sections.iter().enumerate() {
        let _ = writeln!(out, "<section id=\"s{}\">\n<h2>{}</h2>", i + 1, escape(&s.heading));
        for b in &s.blocks {
            match b {
                Block::Text(text) => {
                    let _ = writeln!(out, "<p>{}</p>", escape(text));
                }
                Block::Code(text) => {
                    let _ = writeln!(out, "<pre>{}</pre>", escape(text));
                }
                Block::Svg(svg) => {
                    let _ = writeln!(out, "<div class=\"figure\">\n{}</div>", svg.trim_end());
                }
                Block::Png { bytes, alt } => {
                    let _ = writeln!(
                        out,
                        "<div class=\"figure\"><img alt=\"{}\" src=\"data:image/png;base64,{}\"></div>",
                        escape(alt),
                        base64(bytes)
                    );
                }
                Block::Table(table) => write_table(&mut out, table),
                Block::Html(html) => {
                    let _ = writeln!(out, "{}", html.trim_end());
                }
            }
        }
        out.push_str("</section>\n");
    }
    out.push_str("</body>\n</html>\n");
    out
}

/// Whether a cell reads as a number (`0.2871`, `-3`, `1e-7`, `12.5x`, `0.3000 ± 0.0100`,
/// `95%`); `-` and `–` (no value) are neutral.
fn is_number(cell: &str) -> Option<bool> {
    let c = cell.trim();
    if c.is_empty() || c == "-" || c == "–" {
        return None;
    }
    let first = c.split(' ').next().unwrap_or(c).trim_end_matches(['x', '%']);
    Some(first.parse::<f64>().is_ok())
}

/// Which columns hold numbers: every cell a number or empty, at least one number.
pub fn numeric_columns(table: &Table) -> Vec<bool> {
    (0..table.header.len())
        .map(|j| {
            let kinds: Vec<bool> =
                table.rows.iter().filter_map(|r| r.get(j).and_then(|c| is_number(c))).collect();
            !kinds.is_empty() && kinds.iter().all(|&k| k)
        })
        .collect()
}

/// Writes a table: text columns left-aligned, number columns (see [`numeric_columns`])
/// right-aligned.
fn write_table(out: &mut String, table: &Table) {
    let num = numeric_columns(table);
    let class = |j: usize| if num.get(j).copied().unwrap_or(false) { " class=\"num\"" } else { "" };
    out.push_str("<table>\n<tr>");
    for (j, h) in table.header.iter().enumerate() {
        let _ = write!(out, "<th{}>{}</th>", class(j), escape(h));
    }
    out.push_str("</tr>\n");
    for row in &table.rows {
        out.push_str("<tr>");
        for (j, cell) in row.iter().enumerate() {
            let _ = write!(out, "<td{}>{}</td>", class(j), escape(cell));
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</table>\n");
}

/// The results table of a cross-validation curve: per series the chosen `k`, its CV
/// accuracy as mean ± std over folds, and its test accuracy when measured.
pub fn cv_table(curve: &CvCurve) -> Table {
    let header = ["series", "chosen k", "cv accuracy (mean ± std)", "folds", "test accuracy"];
    let rows = curve
        .series
        .iter()
        .map(|s| {
            let chosen = s.chosen();
            vec![
                s.name.clone(),
                chosen.map_or("-".into(), |p| p.k.to_string()),
                chosen
                    .map_or("-".into(), |p| format!("{:.4} ± {:.4}", p.scores.mean, p.scores.std)),
                chosen.map_or("-".into(), |p| p.scores.per_fold.len().to_string()),
                s.test_accuracy.map_or("-".into(), |t| format!("{t:.4}")),
            ]
        })
        .collect();
    Table { header: header.map(String::from).into(), rows }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc4648_vectors() {
        // RFC 4648 section 10 test vectors
        for (i, o) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(i.as_bytes()), o);
        }
        assert_eq!(base64(&[0xff, 0xfe, 0xfd]), "//79");
    }

    #[test]
    fn number_columns_are_told_from_text_columns() {
        let t = Table {
            header: ["model", "k", "accuracy", "speed", "note"].map(String::from).into(),
            rows: vec![
                ["k-NN", "7", "0.2871 ± 0.0040", "5.0x", "L1, k = 7"].map(String::from).into(),
                ["svm", "-", "0.3771", "1e-7", "lr 1e-7"].map(String::from).into(),
            ],
        };
        assert_eq!(numeric_columns(&t), vec![false, true, true, true, false]);
        let page = html_page("t", &[Section::new("s", vec![Block::Table(t)])]);
        assert!(page.contains("<td>k-NN</td><td class=\"num\">7</td>"));
        assert!(page.contains("<th>model</th><th class=\"num\">k</th>"));
    }

    #[test]
    fn a_report_has_a_header_and_a_table_of_contents() {
        let s: Vec<Section> =
            ["One", "Two & co", "Three"].iter().map(|h| Section::new(*h, vec![])).collect();
        let header = vec![("git commit".to_string(), "abc123".to_string())];
        let page = html_report("r", &header, &s);
        assert!(page.contains("<td>git commit</td><td>abc123</td>"));
        assert!(page.contains("<li><a href=\"#s2\">Two &amp; co</a></li>"));
        assert!(page.contains("<section id=\"s3\">\n<h2>Three</h2>"));
        // two sections: no table of contents
        assert!(!html_page("r", &s[..2]).contains("<nav>"));
    }
}
