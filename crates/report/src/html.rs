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
padding:4px 10px;text-align:right}th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}\
pre{background:#f6f6f6;padding:8px;overflow-x:auto}img{image-rendering:pixelated;max-width:100%}\
.figure{margin:8px 0}";

/// A complete, self-contained HTML page with `title` and the `sections` in order.
pub fn html_page(title: &str, sections: &[Section]) -> String {
    let mut out = String::new();
    let t = escape(title);
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <title>{t}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<h1>{t}</h1>\n"
    );
    for s in sections {
        let _ = writeln!(out, "<section>\n<h2>{}</h2>", escape(&s.heading));
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
            }
        }
        out.push_str("</section>\n");
    }
    out.push_str("</body>\n</html>\n");
    out
}

fn write_table(out: &mut String, table: &Table) {
    out.push_str("<table>\n<tr>");
    for h in &table.header {
        let _ = write!(out, "<th>{}</th>", escape(h));
    }
    out.push_str("</tr>\n");
    for row in &table.rows {
        out.push_str("<tr>");
        for cell in row {
            let _ = write!(out, "<td>{}</td>", escape(cell));
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
}
