//! Reports for imgclass: SVG plots, PNG galleries and self-contained HTML pages from
//! evaluation results. No plotting crate: SVG is written by hand (text escaped), PNG through
//! the `image` crate's encoder, labels in PNGs with a built-in bitmap font.
//!
//! - [`cv_plot_svg`]: the lecture's cross-validation plot (accuracy against k, one point per
//!   fold, mean line, ±1 std bars, chosen k marked, one colour per metric);
//! - [`confusion_svg`], [`heatmap_svg`], [`line_plot_svg`]: confusion matrix, any value grid,
//!   loss curves;
//! - [`neighbour_gallery_png`], [`templates_png`]: test images with their nearest training
//!   images (as on the lecture's slide), linear-classifier templates;
//! - [`templates_html`], [`neighbour_gallery_html`], [`misclassified_html`]: the same images
//!   as HTML grids with real-text captions, each image at an integer scale near 64 px;
//! - [`html_page`], [`html_report`]: one self-contained page holding them, with tables, a
//!   header (date, commit, command) and a table of contents.
//!
//! ```
//! use imgclass_eval::{CvCurve, CvSeries};
//! use imgclass_report::{cv_plot_svg, html_page, cv_table, Block, Section};
//! let l1 = CvSeries::new("L1", &[1, 3, 5], vec![vec![0.2, 0.3], vec![0.3, 0.3], vec![0.25, 0.2]])?;
//! let curve = CvCurve::new("k", vec![l1]);
//! let svg = cv_plot_svg(&curve);
//! assert!(svg.starts_with("<svg") && svg.contains("chosen k = 3"));
//! let page = html_page("CV", &[Section::new("Plot", vec![Block::Svg(svg), Block::Table(cv_table(&curve))])]);
//! assert!(page.contains("<td class=\"num\">0.3000 ± 0.0000</td>"));
//! # Ok::<(), imgclass_eval::EvalError>(())
//! ```

mod error;
mod font;
mod gallery;
pub mod html;
mod plots;
mod png;
pub mod svg;

pub use error::ReportError;
pub use gallery::{
    TARGET_PX, Tile, Tone, image_grid_html, misclassified_html, neighbour_gallery_html, scale_for,
    templates_html,
};
pub use html::{Block, Section, Table, cv_table, html_page, html_report};
pub use plots::{
    Heatmap, LinePlot, LineSeries, confusion_svg, cv_plot_svg, edge_warning, heatmap_svg,
    line_plot_svg, log_ticks,
};
pub use png::{GalleryRow, mosaic_png, neighbour_gallery_png, templates_png};
