//! The report's representations part: the table of test accuracy per representation x
//! classifier, and per representation its classifiers' searches, training curves, a learned
//! dictionary or first layer drawn as images, and confusion matrices.

use imgclass_core::{ClassNames, ImageShape};
use imgclass_report::{
    Block, LinePlot, LineSeries, Section, Table, confusion_svg, line_plot_svg, mosaic_png,
};

use super::config::ClassifierKind;
use super::report::{Figure, sci};
use super::representations::{ClassifierResult, RepresentationResult};

/// Files, figure entries and sections of the representations part.
#[derive(Default)]
pub struct Part {
    /// (file name, bytes).
    pub files: Vec<(String, Vec<u8>)>,
    /// Their descriptions.
    pub figures: Vec<Figure>,
    /// HTML sections, in order.
    pub sections: Vec<Section>,
}

impl Part {
    fn add(&mut self, file: String, caption: String, data: String, bytes: Vec<u8>) {
        self.files.push((file.clone(), bytes));
        self.figures.push(Figure { file, caption, data });
    }
}

/// Most first-layer units drawn.
const UNITS_SHOWN: usize = 100;

/// The table of test accuracy: one row per representation, one column per classifier kind.
pub fn accuracy_table(reps: &[RepresentationResult]) -> Table {
    let mut kinds: Vec<ClassifierKind> = Vec::new();
    for r in reps {
        for c in &r.classifiers {
            if !kinds.contains(&c.classifier) {
                kinds.push(c.classifier);
            }
        }
    }
    let mut header = vec!["representation".to_string(), "features".to_string()];
    header.extend(kinds.iter().map(|k| k.label().to_string()));
    let rows = reps
        .iter()
        .map(|r| {
            let mut row = vec![r.name.clone(), r.dim.to_string()];
            row.extend(kinds.iter().map(|k| {
                r.classifiers
                    .iter()
                    .find(|c| c.classifier == *k)
                    .map_or("-".into(), |c| format!("{:.2} %", 100.0 * c.test_accuracy))
            }));
            row
        })
        .collect();
    Table { header, rows }
}

/// Renders the part (nothing when no representation ran).
pub fn render(
    reps: &[RepresentationResult],
    names: &ClassNames,
    shape: ImageShape,
) -> anyhow::Result<Part> {
    let mut part = Part::default();
    if reps.is_empty() {
        return Ok(part);
    }
    part.sections.push(Section::new(
        "Representations x classifiers: test accuracy",
        vec![
            Block::Text(
                "Each representation's feature steps were fitted on the training images only; \
                 each classifier was chosen on a hold-out of the training rows (k-NN: \
                 cross-validation), retrained on all of them and scored once on the test set."
                    .into(),
            ),
            Block::Table(accuracy_table(reps)),
        ],
    ));
    if let Some(svg) = centroid_plot(reps) {
        part.add(
            "kmeans_centroids.svg".into(),
            "test accuracy against the number of k-means centroids".into(),
            "representations".into(),
            svg.clone().into_bytes(),
        );
        if let Some(first) = part.sections.last_mut() {
            first.blocks.push(Block::Text(
                "Test accuracy against the size of the learned dictionary (the representations \
                 with a k-means step; one line per classifier):"
                    .into(),
            ));
            first.blocks.push(Block::Svg(svg));
        }
    }
    for (ri, r) in reps.iter().enumerate() {
        let tag = file_tag(&r.name);
        let mut blocks = vec![Block::Text(format!(
            "Steps: {} ({} values per image; fitted and applied in {:.1} s).",
            r.steps_label, r.dim, r.steps_seconds
        ))];
        if let Some((tiles, tshape, what)) = dictionary(&r.steps) {
            let png = mosaic_png(&tiles, tshape, 4, 40)?;
            part.add(
                format!("{tag}_dictionary.png"),
                format!("{}: {what}", r.name),
                format!("representations[{ri}]"),
                png.clone(),
            );
            blocks.push(Block::Text(format!("The learned dictionary: {what}.")));
            blocks.push(Block::Png { bytes: png, alt: format!("{} dictionary", r.name) });
        }
        blocks.push(Block::Table(classifier_table(r)));
        for (ci, c) in r.classifiers.iter().enumerate() {
            let data = format!("representations[{ri}].classifiers[{ci}]");
            let ctag = format!("{tag}_{}", file_tag(c.classifier.label()));
            blocks.push(Block::Html(format!(
                "<h3>{}</h3>",
                imgclass_report::svg::escape(&format!("{} on {}", c.model, r.name))
            )));
            for b in &c.bound_hit {
                blocks.push(Block::Html(format!(
                    "<p class=\"warn\">Search bound reached: {}</p>",
                    imgclass_report::svg::escape(b)
                )));
            }
            if let Some(svg) = search_plot(c, &r.name) {
                part.add(
                    format!("{ctag}_search.svg"),
                    format!("{} on {}: validation accuracy over the search", c.model, r.name),
                    format!("{data}.search"),
                    svg.clone().into_bytes(),
                );
                blocks.push(Block::Svg(svg));
            }
            if !c.curves.stop.is_empty() {
                blocks.push(Block::Text(format!("Training: {}.", c.curves.stop)));
            }
            for (i, svg) in curve_plots(c, &r.name).into_iter().enumerate() {
                part.add(
                    format!("{ctag}_curve{i}.svg"),
                    format!("{} on {}: training curve", c.model, r.name),
                    format!("{data}.curves"),
                    svg.clone().into_bytes(),
                );
                blocks.push(Block::Svg(svg));
            }
            if let Some(units) = first_layer(c, shape) {
                let png = mosaic_png(&units, shape, 2, 20)?;
                part.add(
                    format!("{ctag}_first_layer.png"),
                    format!("{} on {}: first-layer weights as images", c.model, r.name),
                    data.clone(),
                    png.clone(),
                );
                blocks.push(Block::Text(format!(
                    "The first {} hidden units' weights (rows of W1), each rescaled to 0..255:",
                    units.len()
                )));
                blocks.push(Block::Png { bytes: png, alt: "first-layer weights".into() });
            }
            let cm = confusion_svg(&c.confusion, names);
            part.add(
                format!("{ctag}_confusion.svg"),
                format!("{} on {}: test confusion matrix", c.model, r.name),
                format!("{data}.confusion"),
                cm.clone().into_bytes(),
            );
            blocks.push(Block::Svg(cm));
        }
        part.sections.push(Section::new(format!("Representation: {}", r.name), blocks));
    }
    Ok(part)
}

fn classifier_table(r: &RepresentationResult) -> Table {
    Table {
        header: ["model", "chosen", "validation", "test accuracy", "final fit (s)"]
            .map(String::from)
            .into(),
        rows: r
            .classifiers
            .iter()
            .map(|c| {
                vec![
                    c.model.clone(),
                    c.chosen.clone(),
                    c.validation.clone(),
                    format!("{:.4}", c.test_accuracy),
                    format!("{:.1}", c.fit_seconds),
                ]
            })
            .collect(),
    }
}

/// Validation accuracy against the searched axis (the last log axis), one series per value
/// of the other axes; `None` without a search.
fn search_plot(c: &ClassifierResult, rep: &str) -> Option<String> {
    if c.search.len() < 2 {
        return None;
    }
    let x_axis = c.axes.len() - 1;
    // (values of the other axes, points (x, accuracy))
    type Group = (Vec<f64>, Vec<(f64, f64)>);
    let mut groups: Vec<Group> = Vec::new();
    for p in &c.search {
        let Some(acc) = p.point.accuracy else { continue };
        let key: Vec<f64> =
            p.values.iter().enumerate().filter(|(i, _)| *i != x_axis).map(|(_, v)| *v).collect();
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, pts)) => pts.push((p.values[x_axis], acc)),
            None => groups.push((key, vec![(p.values[x_axis], acc)])),
        }
    }
    let series = groups
        .into_iter()
        .map(|(key, mut pts)| {
            pts.sort_by(|a, b| a.0.total_cmp(&b.0));
            let name = if key.is_empty() {
                "validation".to_string()
            } else {
                c.axes
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| *i != x_axis)
                    .zip(&key)
                    .map(|((_, a), v)| format!("{a} {}", sci(*v)))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            LineSeries { name, points: pts }
        })
        .collect();
    Some(line_plot_svg(&LinePlot {
        title: format!("{} on {rep}: validation accuracy", c.model),
        x_label: format!("{} (log scale)", c.axes[x_axis]),
        y_label: "validation accuracy".into(),
        series,
        log_x: true,
        markers: true,
        ..LinePlot::default()
    }))
}

/// The objective (loss) curve, and for a net its accuracies per epoch.
fn curve_plots(c: &ClassifierResult, rep: &str) -> Vec<String> {
    let mut out = Vec::new();
    let cu = &c.curves;
    if !cu.objective.is_empty() {
        let linear = matches!(c.classifier, ClassifierKind::Svm | ClassifierKind::Softmax);
        let dual = c.model.contains("dcd");
        out.push(line_plot_svg(&LinePlot {
            title: format!(
                "{} on {rep}: {}",
                c.model,
                if dual {
                    "dual objective per epoch"
                } else if linear {
                    "objective per iteration"
                } else {
                    "minibatch loss"
                }
            ),
            x_label: if c.model.contains("dcd") { "epoch" } else { "iteration" }.into(),
            y_label: if dual {
                "dual objective (a lower bound of the objective)"
            } else if linear {
                "objective (log scale)"
            } else {
                "loss"
            }
            .into(),
            series: vec![LineSeries {
                name: "loss".into(),
                points: cu
                    .objective
                    .iter()
                    .enumerate()
                    .map(|(i, &v)| (i as f64, f64::from(v)))
                    .collect(),
            }],
            log_y: linear,
            smooth: if linear { 0 } else { 50 },
            ..LinePlot::default()
        }));
    }
    if !cu.train_accuracy.is_empty() {
        let series = [("train", &cu.train_accuracy), ("validation", &cu.val_accuracy)]
            .into_iter()
            .filter(|(_, v)| !v.is_empty())
            .map(|(name, v)| LineSeries {
                name: name.into(),
                points: v.iter().enumerate().map(|(i, &a)| ((i + 1) as f64, a)).collect(),
            })
            .collect();
        out.push(line_plot_svg(&LinePlot {
            title: format!("{} on {rep}: accuracy per epoch", c.model),
            x_label: "epoch".into(),
            y_label: "accuracy".into(),
            series,
            markers: true,
            ..LinePlot::default()
        }));
    }
    out
}

/// A net's first-layer units as images, when it saw pixels of `shape`.
fn first_layer(c: &ClassifierResult, shape: ImageShape) -> Option<Vec<Vec<u8>>> {
    let Some(imgclass_model::SavedModel::Net { model, .. }) = &c.saved else { return None };
    if model.shape().image() != Some(shape) {
        return None;
    }
    let mut units = model.first_layer_images();
    units.truncate(UNITS_SHOWN);
    Some(units)
}

/// A learned dictionary among the steps, as images: (tiles, tile shape, caption). The
/// k-means centroids live in whitened patch space; each is rescaled to 0..255 by its own
/// minimum and maximum, as the paper's figure draws them.
fn dictionary(steps: &[imgclass_features::Step]) -> Option<(Vec<Vec<u8>>, ImageShape, String)> {
    let k = find_kmeans(steps)?;
    let rf = k.receptive_field();
    let shape = ImageShape::new(k.channels(), rf, rf);
    let tiles = k
        .centroids()
        .chunks_exact(k.patch_dim().max(1))
        .map(|c| {
            let (lo, hi) = c
                .iter()
                .fold((f32::INFINITY, f32::NEG_INFINITY), |(l, h), &v| (l.min(v), h.max(v)));
            let range = if hi > lo { hi - lo } else { 1.0 };
            c.iter().map(|&v| (255.0 * (v - lo) / range).round().clamp(0.0, 255.0) as u8).collect()
        })
        .collect();
    Some((
        tiles,
        shape,
        format!(
            "the {} k-means centroids ({rf}x{rf} whitened patches), each rescaled to 0..255{}",
            k.n_centroids(),
            if k.params().flip { "; the second half mirrors the first (flip)" } else { "" }
        ),
    ))
}

/// The k-means feature learner among `steps` (inside unions too), if any.
fn find_kmeans(steps: &[imgclass_features::Step]) -> Option<&imgclass_features::KmeansFeatures> {
    use imgclass_features::Step;
    steps.iter().find_map(|s| match s {
        Step::Kmeans(k) => Some(k),
        Step::Union { parts, .. } => find_kmeans(parts),
        _ => None,
    })
}

/// Test accuracy (%) against the dictionary size K, one series per classifier kind, over the
/// representations with a k-means step; `None` unless at least two sizes ran.
fn centroid_plot(reps: &[RepresentationResult]) -> Option<String> {
    let mut series: Vec<LineSeries> = Vec::new();
    let mut sizes: Vec<usize> = Vec::new();
    for r in reps {
        let Some(k) = find_kmeans(&r.steps) else { continue };
        let size = k.n_centroids();
        if !sizes.contains(&size) {
            sizes.push(size);
        }
        for c in &r.classifiers {
            let point = (size as f64, 100.0 * c.test_accuracy);
            let name = c.classifier.label();
            match series.iter_mut().find(|s| s.name == name) {
                Some(s) => s.points.push(point),
                None => series.push(LineSeries { name: name.to_string(), points: vec![point] }),
            }
        }
    }
    if sizes.len() < 2 {
        return None;
    }
    for s in &mut series {
        s.points.sort_by(|a, b| a.0.total_cmp(&b.0));
    }
    let labels = series
        .iter()
        .flat_map(|s| s.points.iter().map(|&(x, y)| (x, y, format!("{y:.1}"))))
        .collect();
    Some(line_plot_svg(&LinePlot {
        title: "Test accuracy against the number of k-means centroids".into(),
        x_label: "centroids K".into(),
        y_label: "test accuracy (%)".into(),
        series,
        log_x: true,
        markers: true,
        labels,
        ..LinePlot::default()
    }))
}

/// `name` as a file-name part: ASCII letters and digits kept (lowercased), anything else `-`.
pub fn file_tag(name: &str) -> String {
    name.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_tags_are_safe_names() {
        assert_eq!(file_tag("hog+hsv"), "hog-hsv");
        assert_eq!(file_tag("../K-means 1600"), "---k-means-1600");
    }
}
