//! Image grids as HTML: each image a small PNG (scaled up by an integer factor, so pixels stay
//! square and sharp) with its class names as real text beside it, readable at any zoom,
//! unlike labels drawn into a bitmap. Used for the templates of a linear classifier, the
//! nearest-neighbour gallery and the misclassified test images.

use std::fmt::Write;

use imgclass_core::{ClassNames, ImageShape, Label};

use crate::html::base64;
use crate::png::{check_image, single_png};
use crate::svg::escape;
use crate::{GalleryRow, ReportError};

/// The on-screen size images are scaled towards (in CSS pixels, e.g. 32 x 32 shown at 64).
pub const TARGET_PX: usize = 64;

/// The integer scale showing an image of `shape` at about [`TARGET_PX`] (at least 1).
pub fn scale_for(shape: ImageShape) -> usize {
    (TARGET_PX / shape.width.max(shape.height).max(1)).max(1)
}

/// How a tile's frame and caption line are coloured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tone {
    /// No frame, black text.
    Plain,
    /// Green: agrees with the truth.
    Good,
    /// Red: disagrees with the truth.
    Bad,
    /// Grey frame: the query (test) image.
    Query,
}

impl Tone {
    fn frame(self) -> &'static str {
        match self {
            Self::Plain => "",
            Self::Good => " class=\"frame-ok\"",
            Self::Bad => " class=\"frame-bad\"",
            Self::Query => " class=\"frame-query\"",
        }
    }

    fn text(self) -> &'static str {
        match self {
            Self::Good => " class=\"ok\"",
            Self::Bad => " class=\"bad\"",
            Self::Plain | Self::Query => "",
        }
    }
}

/// One image of a grid with its caption lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tile {
    /// `shape.len()` bytes, channel-major.
    pub image: Vec<u8>,
    /// The frame around the image.
    pub frame: Tone,
    /// Caption lines (escaped when written), each with its colour.
    pub caption: Vec<(String, Tone)>,
}

fn figure(out: &mut String, t: &Tile, shape: ImageShape, scale: usize) -> Result<(), ReportError> {
    check_image(&t.image, shape)?;
    let png = single_png(&t.image, shape, scale)?;
    let (w, h) = (shape.width * scale, shape.height * scale);
    let alt = t.caption.iter().map(|(s, _)| s.as_str()).collect::<Vec<_>>().join(", ");
    let _ = write!(
        out,
        "<figure><img{} width=\"{w}\" height=\"{h}\" alt=\"{}\" src=\"data:image/png;base64,{}\">\
         <figcaption>",
        t.frame.frame(),
        escape(&alt),
        base64(&png)
    );
    for (i, (line, tone)) in t.caption.iter().enumerate() {
        if i > 0 {
            out.push_str("<br>");
        }
        let _ = write!(out, "<span{}>{}</span>", tone.text(), escape(line));
    }
    out.push_str("</figcaption></figure>");
    Ok(())
}

/// A wrapping grid of tiles, each image shown `scale` times its size (at least 1).
///
/// Errors: [`ReportError::ShapeMismatch`] when an image is not `shape.len()` bytes,
/// [`ReportError::Empty`] for an empty shape.
pub fn image_grid_html(
    tiles: &[Tile],
    shape: ImageShape,
    scale: usize,
) -> Result<String, ReportError> {
    let mut out = String::from("<div class=\"grid\">");
    for t in tiles {
        figure(&mut out, t, shape, scale.max(1))?;
    }
    out.push_str("</div>\n");
    Ok(out)
}

fn class_name(names: &ClassNames, l: Label) -> String {
    names.name(l).map_or_else(|| l.to_string(), str::to_string)
}

/// Class templates (e.g. the rows of a linear classifier's `W` mapped to 0..=255) as a grid,
/// each at [`scale_for`] with its class name under it.
pub fn templates_html(
    images: &[Vec<u8>],
    shape: ImageShape,
    names: &ClassNames,
) -> Result<String, ReportError> {
    let tiles: Vec<Tile> = images
        .iter()
        .enumerate()
        .map(|(i, img)| Tile {
            image: img.clone(),
            frame: Tone::Plain,
            caption: vec![(class_name(names, i as Label), Tone::Plain)],
        })
        .collect();
    image_grid_html(&tiles, shape, scale_for(shape))
}

/// The nearest-neighbour gallery: one line per test image, the test image first (grey frame,
/// its true class and, when known, the prediction in green or red), then its nearest training
/// images, each framed and captioned green when of the test image's class, red otherwise.
pub fn neighbour_gallery_html(
    rows: &[GalleryRow],
    shape: ImageShape,
    names: &ClassNames,
) -> Result<String, ReportError> {
    let scale = scale_for(shape);
    let mut out = String::new();
    for r in rows {
        out.push_str("<div class=\"row\">");
        let mut caption = vec![(format!("true: {}", class_name(names, r.label)), Tone::Plain)];
        if let Some(p) = r.predicted {
            let tone = if p == r.label { Tone::Good } else { Tone::Bad };
            caption.push((format!("predicted: {}", class_name(names, p)), tone));
        }
        let query = Tile { image: r.query.clone(), frame: Tone::Query, caption };
        out.push_str(&image_grid_html(&[query], shape, scale)?);
        let tiles: Vec<Tile> = r
            .neighbours
            .iter()
            .map(|(img, l)| {
                let tone = if *l == r.label { Tone::Good } else { Tone::Bad };
                Tile {
                    image: img.clone(),
                    frame: tone,
                    caption: vec![(class_name(names, *l), tone)],
                }
            })
            .collect();
        out.push_str(&image_grid_html(&tiles, shape, scale)?);
        out.push_str("</div>\n");
    }
    Ok(out)
}

/// Misclassified test images: (pixels, true label, predicted label), each with both class
/// names under it (the prediction in red).
pub fn misclassified_html(
    items: &[(Vec<u8>, Label, Label)],
    shape: ImageShape,
    names: &ClassNames,
) -> Result<String, ReportError> {
    let tiles: Vec<Tile> = items
        .iter()
        .map(|(img, truth, pred)| Tile {
            image: img.clone(),
            frame: Tone::Bad,
            caption: vec![
                (format!("true: {}", class_name(names, *truth)), Tone::Plain),
                (format!("predicted: {}", class_name(names, *pred)), Tone::Bad),
            ],
        })
        .collect();
    image_grid_html(&tiles, shape, scale_for(shape))
}
