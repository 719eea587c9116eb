//! Integration tests of imgclass-report: structure checks against independent counts, pixel
//! checks of decoded PNGs, and expect-test snapshots of the SVG/HTML (update them with
//! `UPDATE_EXPECT=1 cargo test -p imgclass-report` and look at the diff).

use expect_test::expect_file;
use imgclass_core::{ClassNames, ImageShape};
use imgclass_eval::{ConfusionMatrix, CvCurve, CvSeries};
use imgclass_report::{
    Block, GalleryRow, Heatmap, LinePlot, LineSeries, ReportError, Section, confusion_svg,
    cv_plot_svg, cv_table, heatmap_svg, html_page, line_plot_svg, mosaic_png,
    neighbour_gallery_png, templates_png,
};

/// Two metrics, five folds, six values of k; L2 is named with markup to test escaping.
fn curve() -> CvCurve {
    let ks = [1, 3, 5, 7, 10, 20];
    let l1: Vec<Vec<f64>> = (0..6)
        .map(|i| {
            (0..5)
                .map(|f| 0.25 + 0.01 * (3.0 - (i as f64 - 3.0).abs()) + 0.004 * f as f64)
                .collect()
        })
        .collect();
    let l2: Vec<Vec<f64>> = (0..6)
        .map(|i| (0..5).map(|f| 0.22 + 0.005 * i as f64 - 0.003 * f as f64).collect())
        .collect();
    let mut a = CvSeries::new("L1", &ks, l1).expect("valid");
    a.test_accuracy = Some(0.2871);
    let b = CvSeries::new("L2 <&>", &ks, l2).expect("valid");
    CvCurve::new("k", vec![a, b])
}

#[test]
fn cv_plot_has_a_point_per_fold_a_line_per_series_and_marks_the_chosen_k() {
    let c = curve();
    let svg = cv_plot_svg(&c);
    // 2 series x 6 k x 5 folds fold points (semi-transparent), plus 2 chosen rings
    assert_eq!(svg.matches("fill-opacity=\"0.55\"").count(), 2 * 6 * 5 + 1); // + legend key
    assert_eq!(svg.matches("<polyline").count(), 2);
    assert_eq!(svg.matches("stroke-dasharray").count(), 2);
    // L1 peaks at k = 7 (index 3), L2 grows with k so its best is the last, k = 20
    assert_eq!(c.series[0].chosen_k, Some(7));
    assert_eq!(c.series[1].chosen_k, Some(20));
    assert!(svg.contains(">L1 k=7</text>") && svg.contains(">L2 &lt;&amp;&gt; k=20</text>"));
    assert!(!svg.contains("<&>"), "unescaped text");
    assert!(svg.contains(">test 0.2871</text>"));
    assert!(svg.contains(">5-fold cross-validation: accuracy against k</text>"));
    for k in ["1", "3", "5", "7", "10", "20"] {
        assert!(svg.contains(&format!(">{k}</text>")), "tick {k}");
    }
    expect_file!["snapshots/cv_plot.svg"].assert_eq(&svg);
}

#[test]
fn confusion_heatmap_shows_every_count_and_name() {
    let cm = ConfusionMatrix::new(&[0, 0, 1, 1, 1, 2], &[0, 1, 1, 1, 2, 2], 3).expect("ok");
    let names = ClassNames::new(["cat", "dog", "b&w"]);
    let svg = confusion_svg(&cm, &names);
    assert_eq!(svg.matches("stroke=\"#fff\"/>").count(), 9, "one cell per pair");
    assert!(svg.contains("class=\"colourbar\"") && svg.contains(">share of the true class</text>"));
    assert!(svg.contains("b&amp;w") && !svg.contains("b&w"));
    assert!(svg.contains(">accuracy 0.6667, 6 rows") || svg.contains("(accuracy 0.6667, 6 rows)"));
    // diagonal cells: dog row has 2 of 3 on the diagonal
    assert!(svg.contains(">2</text>"));
    expect_file!["snapshots/confusion.svg"].assert_eq(&svg);
}

#[test]
fn heatmap_and_line_plot_snapshots() {
    let map = Heatmap {
        title: "validation accuracy".into(),
        row_title: "learning rate".into(),
        col_title: "regularisation".into(),
        rows: vec!["1e-7".into(), "5e-7".into()],
        cols: vec!["2.5e4".into(), "5e4".into(), "1e5".into()],
        values: vec![0.31, 0.35, f64::NAN, 0.28, 0.39, 0.33],
        decimals: 3,
        ..Heatmap::default()
    };
    let svg = heatmap_svg(&map);
    assert_eq!(svg.matches("stroke=\"#fff\"/>").count(), 6, "one cell per grid point");
    // a colour bar with its scale: ticks between the smallest (0.28) and largest (0.39) value
    assert!(svg.contains("class=\"colourbar\""));
    for tick in ["0.28", "0.3", "0.32", "0.34", "0.36", "0.38"] {
        assert!(svg.contains(&format!("class=\"bar-tick\">{tick}</text>")), "bar tick {tick}");
    }
    assert!(!svg.contains("class=\"chosen\""), "nothing chosen, nothing outlined");
    assert!(svg.contains(">0.390</text>") && svg.contains(">–</text>"));
    // the largest value gets viridis' last stop, the smallest its first
    assert!(svg.contains("fill=\"#fde725\"") && svg.contains("fill=\"#440154\""));
    expect_file!["snapshots/heatmap.svg"].assert_eq(&svg);

    let plot = LinePlot {
        title: "training loss".into(),
        x_label: "iteration".into(),
        y_label: "loss".into(),
        series: vec![
            LineSeries {
                name: "svm".into(),
                points: (0..50).map(|i| (i as f64, 9.0 / (1.0 + i as f64))).collect(),
            },
            LineSeries {
                name: "softmax".into(),
                points: vec![(0.0, 2.3), (25.0, 2.0), (49.0, f64::NAN)],
            },
        ],
        log_y: false,
        ..LinePlot::default()
    };
    let svg = line_plot_svg(&plot);
    assert_eq!(svg.matches("<polyline").count(), 2);
    // the NaN point is dropped: the softmax line has 2 points
    let softmax = svg.lines().filter(|l| l.starts_with("<polyline")).nth(1).expect("two lines");
    assert_eq!(softmax.matches(',').count(), 2);
    expect_file!["snapshots/line_plot.svg"].assert_eq(&svg);
}

fn solid(shape: ImageShape, rgb: [u8; 3]) -> Vec<u8> {
    let plane = shape.height * shape.width;
    rgb.iter().flat_map(|&c| std::iter::repeat_n(c, plane)).collect()
}

fn decode(png: &[u8]) -> image::RgbImage {
    image::load_from_memory_with_format(png, image::ImageFormat::Png).expect("valid png").to_rgb8()
}

fn count(img: &image::RgbImage, rgb: [u8; 3]) -> usize {
    img.pixels().filter(|p| p.0 == rgb).count()
}

const GREEN: [u8; 3] = [30, 170, 60];
const RED: [u8; 3] = [215, 40, 40];

#[test]
fn gallery_draws_scaled_images_and_marks_neighbours_by_label() {
    let shape = ImageShape::new(3, 4, 4);
    let names = ClassNames::new(["plane", "car"]);
    let blue = solid(shape, [0, 0, 250]);
    let yellow = solid(shape, [250, 250, 0]);
    let row = |neigh: Vec<(Vec<u8>, u32)>| GalleryRow {
        query: blue.clone(),
        label: 0,
        predicted: None,
        neighbours: neigh,
    };
    // all neighbours share the query's label: green frames only
    let png = neighbour_gallery_png(
        &[row(vec![(yellow.clone(), 0), (yellow.clone(), 0)])],
        shape,
        &names,
        5,
    )
    .expect("renders");
    let img = decode(&png);
    assert_eq!(count(&img, [0, 0, 250]), 4 * 4 * 25, "query scaled 5x by pixel repetition");
    assert_eq!(count(&img, [250, 250, 0]), 2 * 4 * 4 * 25);
    assert!(count(&img, GREEN) > 0);
    assert_eq!(count(&img, RED), 0);
    // a wrong neighbour gets red, and a wrong prediction shows in red too
    let mut r = row(vec![(yellow.clone(), 1)]);
    r.predicted = Some(1);
    let img = decode(&neighbour_gallery_png(&[r], shape, &names, 5).expect("renders"));
    assert_eq!(count(&img, GREEN), 0);
    assert!(count(&img, RED) > 4 * 20 * 3, "a 3-pixel red frame around a 20x20 image");

    assert_eq!(
        neighbour_gallery_png(&[row(vec![(vec![0; 5], 0)])], shape, &names, 2),
        Err(ReportError::ShapeMismatch { expected: 48, found: 5 })
    );
    assert!(matches!(neighbour_gallery_png(&[], shape, &names, 2), Err(ReportError::Empty { .. })));
}

#[test]
fn templates_are_tiled_at_four_times_their_size() {
    let shape = ImageShape::new(3, 8, 8);
    let imgs: Vec<Vec<u8>> = (0..12u8).map(|i| solid(shape, [i * 20, 1, 2])).collect();
    let img = decode(&templates_png(&imgs, shape, &ClassNames::cifar10()).expect("renders"));
    for i in 0..12u8 {
        assert_eq!(count(&img, [i * 20, 1, 2]), 8 * 8 * 16, "template {i}");
    }
    // 12 templates at most 10 per line: two lines
    let one = decode(&templates_png(&imgs[..1], shape, &ClassNames::cifar10()).expect("renders"));
    assert_eq!(img.height(), 2 * one.height());
    assert_eq!(img.width(), 10 * one.width());
}

#[test]
fn html_page_is_self_contained_and_escaped() {
    let c = curve();
    let png = templates_png(
        &[solid(ImageShape::new(1, 2, 2), [9, 9, 9])[..4].to_vec()],
        ImageShape::new(1, 2, 2),
        &ClassNames::new(["x"]),
    )
    .expect("renders");
    let page = html_page(
        "CV <report>",
        &[
            Section::new(
                "Results",
                vec![Block::Table(cv_table(&c)), Block::Code("cargo xtask bench cv".into())],
            ),
            Section::new(
                "Images",
                vec![Block::Png { bytes: png, alt: "a \"tiny\" template".into() }],
            ),
            Section::new("Notes", vec![Block::Text("k < 10 & fast".into())]),
        ],
    );
    assert!(page.starts_with("<!DOCTYPE html>"));
    assert!(page.contains("<title>CV &lt;report&gt;</title>"));
    assert!(page.contains("src=\"data:image/png;base64,iVBORw0KGgo"), "PNG signature in base64");
    assert!(page.contains("<p>k &lt; 10 &amp; fast</p>"));
    assert!(!page.contains("src=\"http") && !page.contains("<script"), "nothing external");
    // the table: header plus one row per series, chosen k and mean ± std
    assert!(page.contains("<td>L1</td><td class=\"num\">7</td>"));
    assert!(page.contains("<td class=\"num\">0.2871</td>"));
    // the PNG bytes vary with the encoder version, so the snapshot stops before them
    let cut = page.find("base64,").map_or(page.len(), |i| i + 7);
    expect_file!["snapshots/page.html"].assert_eq(&page[..cut]);
}

#[test]
fn a_chosen_cell_on_the_grid_edge_is_outlined_and_warned_about() {
    let map = |chosen| Heatmap {
        title: "t".into(),
        row_title: "learning rate".into(),
        col_title: "L2 strength".into(),
        rows: vec!["1e-7".into(), "5e-7".into(), "1e-6".into()],
        cols: vec!["1e3".into(), "1e4".into(), "1e5".into()],
        values: vec![0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9],
        decimals: 2,
        chosen: Some(chosen),
        value_title: "validation accuracy".into(),
    };
    let inside = heatmap_svg(&map((1, 1)));
    assert_eq!(inside.matches("class=\"chosen\"").count(), 1);
    assert!(!inside.contains("Warning"));
    let edge = heatmap_svg(&map((2, 0)));
    assert!(edge.contains(
        "Warning: the chosen learning rate is the grid&#39;s largest and the chosen L2 strength \
         is the grid&#39;s smallest: the best value may lie beyond the grid."
    ));
    assert!(edge.contains(">validation accuracy</text>"));
    assert_eq!(imgclass_report::edge_warning(1, 3, (0, 1), "a", "b"), None, "one row: no edge");
}

#[test]
fn a_log_axis_has_several_labelled_ticks_and_noise_gets_a_smoothed_line() {
    // a noisy decreasing loss from about 9 to 1.5
    let points: Vec<(f64, f64)> = (0..400)
        .map(|i| (i as f64, 9.0 / (1.0 + i as f64 / 80.0) * if i % 2 == 0 { 1.3 } else { 0.7 }))
        .collect();
    let plot = LinePlot {
        title: "loss".into(),
        x_label: "iteration".into(),
        y_label: "loss".into(),
        series: vec![LineSeries { name: "svm".into(), points }],
        log_y: true,
        smooth: 21,
        ..LinePlot::default()
    };
    let svg = line_plot_svg(&plot);
    // the 1-2-5 ticks inside the data's range (about 1.1 to 11.7) are labelled
    for t in ["2", "5", "10"] {
        assert!(svg.contains(&format!("text-anchor=\"end\" >{t}</text>")), "tick {t}:\n{svg}");
    }
    assert!(!svg.contains(">1e"), "plain numbers, not exponents");
    assert_eq!(svg.matches("class=\"smoothed\"").count(), 1);
    assert!(svg.contains("stroke-opacity=\"0.3\""), "the raw line stays, faint");
    assert_eq!(imgclass_report::log_ticks(0.3, 30.0), vec![0.5, 1.0, 2.0, 5.0, 10.0, 20.0]);
}

#[test]
fn the_speed_plot_has_labelled_markers_a_reference_and_a_log_axis() {
    let plot = LinePlot {
        title: "recall".into(),
        x_label: "speed".into(),
        y_label: "recall".into(),
        series: vec![LineSeries { name: "hnsw".into(), points: vec![(0.2, 0.9), (3.0, 0.99)] }],
        log_x: true,
        markers: true,
        labels: vec![(0.2, 0.9, "ef=20".into()), (3.0, 0.99, "ef=64".into())],
        reference: Some((1.0, 1.0, "exact search".into())),
        ..LinePlot::default()
    };
    let svg = line_plot_svg(&plot);
    assert_eq!(svg.matches("class=\"marker\"").count(), 2);
    assert!(svg.contains(">ef=20</text>") && svg.contains(">ef=64</text>"));
    assert!(svg.contains("class=\"reference\"") && svg.contains(">exact search</text>"));
    // log x ticks on both sides of 1
    for t in ["0.2", "0.5", "1", "2"] {
        assert!(svg.contains(&format!("text-anchor=\"middle\" >{t}</text>")), "x tick {t}");
    }
}

#[test]
fn html_galleries_caption_images_with_real_text_at_64_px() {
    let shape = ImageShape::new(3, 32, 32);
    let names = ClassNames::new(["plane", "car"]);
    let row = GalleryRow {
        query: solid(shape, [10, 10, 10]),
        label: 0,
        predicted: Some(1),
        neighbours: vec![(solid(shape, [1, 2, 3]), 1), (solid(shape, [4, 5, 6]), 0)],
    };
    let html = imgclass_report::neighbour_gallery_html(&[row], shape, &names).expect("html");
    assert_eq!(html.matches("width=\"64\" height=\"64\"").count(), 3);
    assert!(html.contains("<span>true: plane</span><br><span class=\"bad\">predicted: car</span>"));
    assert!(html.contains("class=\"frame-bad\"") && html.contains("class=\"frame-ok\""));
    let tpl =
        imgclass_report::templates_html(&[solid(shape, [9, 9, 9])], shape, &names).expect("html");
    assert!(tpl.contains("<figcaption><span>plane</span></figcaption>"));
    let wrong = vec![(solid(shape, [200, 0, 0]), 1, 0)];
    let m = imgclass_report::misclassified_html(&wrong, shape, &names).expect("html");
    assert!(m.contains("true: car") && m.contains("predicted: plane"));
    assert!(matches!(
        imgclass_report::templates_html(&[vec![0; 5]], shape, &names),
        Err(ReportError::ShapeMismatch { .. })
    ));
}

/// A mosaic places tile i at line i / per_line, column i % per_line, each pixel scaled, with
/// white gaps; bad input is an error, not a panic.
#[test]
fn mosaic_places_scaled_tiles_in_lines() {
    let shape = ImageShape::new(3, 2, 3); // 3 wide, 2 high
    let colours = [[200, 0, 0], [0, 200, 0], [0, 0, 200], [50, 50, 50], [9, 9, 9]];
    let imgs: Vec<Vec<u8>> = colours.iter().map(|&c| solid(shape, c)).collect();
    let img = decode(&mosaic_png(&imgs, shape, 2, 2).expect("renders"));
    // 2 per line, 3 lines; a tile is (3+1)*2 = 8 wide and (2+1)*2 = 6 high, plus a 2 margin
    assert_eq!((img.width(), img.height()), (8 * 2 + 2, 6 * 3 + 2));
    for (i, c) in colours.iter().enumerate() {
        assert_eq!(count(&img, *c), 3 * 2 * 4, "tile {i}: 6 pixels, each 2x2");
        let (x, y) = (2 + (i % 2) * 8, 2 + (i / 2) * 6);
        assert_eq!(img.get_pixel(x as u32, y as u32).0, *c, "tile {i} at its place");
    }
    assert!(mosaic_png(&[], shape, 2, 2).is_err());
    assert!(mosaic_png(&[vec![0; 5]], shape, 2, 2).is_err());
}
