//! PNG images: the nearest-neighbour gallery of the lecture's slide
//! ([`neighbour_gallery_png`]) and the linear classifier's class templates
//! ([`templates_png`]). Images are `C x H x W` u8 rows (channel-major, as CIFAR stores them),
//! scaled up by pixel repetition; labels are drawn with a small built-in bitmap font.

use imgclass_core::{ClassNames, ImageShape, Label};

use crate::{ReportError, font};

const GREEN: [u8; 3] = [30, 170, 60];
const RED: [u8; 3] = [215, 40, 40];
const GREY: [u8; 3] = [120, 120, 120];
const INK: [u8; 3] = [20, 20, 20];

/// An RGB canvas on a white background.
struct Canvas {
    w: usize,
    h: usize,
    buf: Vec<u8>,
}

impl Canvas {
    fn new(w: usize, h: usize) -> Self {
        Self { w, h, buf: vec![255; w * h * 3] }
    }

    fn put(&mut self, x: usize, y: usize, c: [u8; 3]) {
        if x < self.w && y < self.h {
            let i = (y * self.w + x) * 3;
            self.buf[i..i + 3].copy_from_slice(&c);
        }
    }

    fn fill(&mut self, x: usize, y: usize, w: usize, h: usize, c: [u8; 3]) {
        for yy in y..y + h {
            for xx in x..x + w {
                self.put(xx, yy, c);
            }
        }
    }

    /// Draws a CHW u8 image scaled by `scale` with its top-left at (x, y).
    fn image(&mut self, x: usize, y: usize, img: &[u8], shape: ImageShape, scale: usize) {
        let (c, h, w) = (shape.channels, shape.height, shape.width);
        for yy in 0..h {
            for xx in 0..w {
                let at = |ch: usize| img[ch.min(c - 1) * h * w + yy * w + xx];
                let rgb = if c >= 3 { [at(0), at(1), at(2)] } else { [at(0); 3] };
                self.fill(x + xx * scale, y + yy * scale, scale, scale, rgb);
            }
        }
    }

    /// A frame `t` pixels thick just outside the box (x, y, w, h).
    fn border(&mut self, x: usize, y: usize, w: usize, h: usize, t: usize, c: [u8; 3]) {
        let (x0, y0) = (x.saturating_sub(t), y.saturating_sub(t));
        let (fw, fh) = (w + 2 * t, h + 2 * t);
        self.fill(x0, y0, fw, t, c);
        self.fill(x0, y + h, fw, t, c);
        self.fill(x0, y0, t, fh, c);
        self.fill(x + w, y0, t, fh, c);
    }

    /// Text centred on `cx`, cut to `max_w` pixels, top at `y`.
    fn text_centred(
        &mut self,
        cx: usize,
        y: usize,
        text: &str,
        scale: usize,
        max_w: usize,
        c: [u8; 3],
    ) {
        let max_chars = (max_w / (font::ADVANCE * scale)).max(1);
        let text: String = text.chars().take(max_chars).collect();
        let x0 = cx.saturating_sub(font::text_width(&text, scale) / 2);
        font::render(&text, scale, |x, yy| self.put(x0 + x, y + yy, c));
    }

    fn encode(self) -> Result<Vec<u8>, ReportError> {
        use image::ImageEncoder;
        let mut out = Vec::new();
        let (w, h) = (self.w as u32, self.h as u32);
        image::codecs::png::PngEncoder::new(&mut out)
            .write_image(&self.buf, w, h, image::ExtendedColorType::Rgb8)
            .map_err(|e| ReportError::Encode { reason: e.to_string() })?;
        Ok(out)
    }
}

/// One image as PNG bytes, scaled up `scale` times by pixel repetition (no labels).
pub(crate) fn single_png(
    img: &[u8],
    shape: ImageShape,
    scale: usize,
) -> Result<Vec<u8>, ReportError> {
    check_image(img, shape)?;
    let scale = scale.max(1);
    let mut c = Canvas::new(shape.width * scale, shape.height * scale);
    c.image(0, 0, img, shape, scale);
    c.encode()
}

pub(crate) fn check_image(img: &[u8], shape: ImageShape) -> Result<(), ReportError> {
    if shape.is_empty() {
        return Err(ReportError::Empty { what: "image shape" });
    }
    if img.len() != shape.len() {
        return Err(ReportError::ShapeMismatch { expected: shape.len(), found: img.len() });
    }
    Ok(())
}

/// One row of the gallery: a test image with its true label (and optionally the predicted
/// one), followed by its nearest training images with their labels, nearest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GalleryRow {
    /// The test image, `shape.len()` bytes, channel-major.
    pub query: Vec<u8>,
    /// Its true label.
    pub label: Label,
    /// The classifier's prediction for it, if known (drawn under the image).
    pub predicted: Option<Label>,
    /// Nearest training images with their labels, nearest first.
    pub neighbours: Vec<(Vec<u8>, Label)>,
}

/// Renders the nearest-neighbour gallery as PNG bytes: one row per test image, the test image
/// on the left (grey frame, true class under it, and `pred <class>` in green or red if a
/// prediction is given), then its neighbours, each framed green when its label equals the
/// test image's true label and red otherwise, with its class name under it. Images are
/// scaled up `scale` times (at least 1).
///
/// Errors: [`ReportError::Empty`] with no rows or an empty shape, [`ReportError::ShapeMismatch`]
/// when an image is not `shape.len()` bytes.
pub fn neighbour_gallery_png(
    rows: &[GalleryRow],
    shape: ImageShape,
    names: &ClassNames,
    scale: usize,
) -> Result<Vec<u8>, ReportError> {
    if rows.is_empty() {
        return Err(ReportError::Empty { what: "gallery" });
    }
    for r in rows {
        check_image(&r.query, shape)?;
        for (n, _) in &r.neighbours {
            check_image(n, shape)?;
        }
    }
    let scale = scale.max(1);
    let (iw, ih) = (shape.width * scale, shape.height * scale);
    let pad = 8;
    let ts = 2; // label text scale
    let cell_w = iw.max(10 * font::ADVANCE * ts) + 2 * pad;
    // the test column also holds "pred <class name>"
    let query_w = iw.max(15 * font::ADVANCE * ts) + 2 * pad;
    let text_h = 2 * (font::HEIGHT * ts + 4);
    let cell_h = ih + 2 * pad + text_h;
    let gap = 24; // between the test image and its neighbours
    let header = font::HEIGHT * 2 + 16;
    let n_cols = rows.iter().map(|r| r.neighbours.len()).max().unwrap_or(0);
    let w = query_w + cell_w * n_cols + gap + pad;
    let h = header + cell_h * rows.len();
    let mut c = Canvas::new(w, h);
    let name = |l: Label| names.name(l).map_or_else(|| l.to_string(), str::to_string);
    c.text_centred(query_w / 2, 6, "test", 2, query_w, INK);
    let nx = query_w + gap;
    let title = "nearest training images";
    c.text_centred(nx + (cell_w * n_cols) / 2, 6, title, 2, cell_w * n_cols.max(1), INK);
    for (ri, r) in rows.iter().enumerate() {
        let y = header + ri * cell_h + pad;
        let x = (query_w - iw) / 2;
        c.image(x, y, &r.query, shape, scale);
        c.border(x, y, iw, ih, 3, GREY);
        c.text_centred(x + iw / 2, y + ih + 6, &name(r.label), ts, query_w, INK);
        if let Some(p) = r.predicted {
            let colour = if p == r.label { GREEN } else { RED };
            let text = format!("pred {}", name(p));
            c.text_centred(x + iw / 2, y + ih + 8 + font::HEIGHT * ts, &text, ts, query_w, colour);
        }
        for (j, (img, l)) in r.neighbours.iter().enumerate() {
            let x = nx + j * cell_w + (cell_w - iw) / 2;
            c.image(x, y, img, shape, scale);
            let colour = if *l == r.label { GREEN } else { RED };
            c.border(x, y, iw, ih, 3, colour);
            c.text_centred(x + iw / 2, y + ih + 6, &name(*l), ts, cell_w, colour);
        }
    }
    c.encode()
}

/// Renders class templates (e.g. the rows of a linear classifier's `W`, already mapped to
/// 0..=255) side by side as PNG bytes, each scaled 4x with its class name under it, at most
/// ten per line. `names` may be shorter than `images` (missing names show the index).
///
/// Errors: [`ReportError::Empty`] with no images, [`ReportError::ShapeMismatch`] when an
/// image is not `shape.len()` bytes.
pub fn templates_png(
    images: &[Vec<u8>],
    shape: ImageShape,
    names: &ClassNames,
) -> Result<Vec<u8>, ReportError> {
    if images.is_empty() {
        return Err(ReportError::Empty { what: "template list" });
    }
    for img in images {
        check_image(img, shape)?;
    }
    let scale = 4;
    let (iw, ih) = (shape.width * scale, shape.height * scale);
    let cell_w = iw.max(10 * font::ADVANCE) + 16;
    let cell_h = ih + 16 + font::HEIGHT + 6;
    let per_line = images.len().min(10);
    let lines = images.len().div_ceil(per_line);
    let mut c = Canvas::new(cell_w * per_line, cell_h * lines);
    for (i, img) in images.iter().enumerate() {
        let (x, y) = ((i % per_line) * cell_w + (cell_w - iw) / 2, (i / per_line) * cell_h + 8);
        c.image(x, y, img, shape, scale);
        let name = names.name(i as Label).map_or_else(|| i.to_string(), str::to_string);
        c.text_centred(x + iw / 2, y + ih + 6, &name, 1, cell_w, INK);
    }
    c.encode()
}

/// Renders many small images (a learned dictionary's filters, a network's first-layer
/// weights, each already mapped to 0..=255) as one mosaic: `per_line` tiles a line, each
/// scaled `scale` times (at least 1) with a one-pixel-per-scale white gap, no captions.
///
/// Errors: [`ReportError::Empty`] with no images, [`ReportError::ShapeMismatch`] when an
/// image is not `shape.len()` bytes.
pub fn mosaic_png(
    images: &[Vec<u8>],
    shape: ImageShape,
    scale: usize,
    per_line: usize,
) -> Result<Vec<u8>, ReportError> {
    if images.is_empty() {
        return Err(ReportError::Empty { what: "image list" });
    }
    for img in images {
        check_image(img, shape)?;
    }
    let scale = scale.max(1);
    let per_line = per_line.clamp(1, images.len());
    let (cw, ch) = ((shape.width + 1) * scale, (shape.height + 1) * scale);
    let lines = images.len().div_ceil(per_line);
    let mut c = Canvas::new(cw * per_line + scale, ch * lines + scale);
    for (i, img) in images.iter().enumerate() {
        c.image(scale + (i % per_line) * cw, scale + (i / per_line) * ch, img, shape, scale);
    }
    c.encode()
}
