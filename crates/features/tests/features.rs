//! Feature steps against independent references: standardisation against a naive f64
//! computation, PCA against a full eigendecomposition of the covariance, whitening against
//! the sample variance, and pipelines against the same steps applied by hand.

use imgclass_core::rng::SplitMix64;
use imgclass_core::{ClassNames, Dataset, Fit, ImageShape, Predict, RowShape, ShapeMismatch};
use imgclass_features::{
    FeatureError, KmeansFeatures, KmeansParams, Pipeline, PipelineError, Step, StepSpec,
    check_steps, fit_steps,
};
use imgclass_knn::Knn;

fn features(n: usize, d: usize, seed: u64) -> Dataset {
    let mut g = SplitMix64::new(seed);
    // correlated columns of very different scales, one constant column
    let mut v = Vec::with_capacity(n * d);
    for _ in 0..n {
        let z = g.next_normal();
        for j in 0..d {
            let x = if j == 1 {
                3.5
            } else {
                (j as f64 + 1.0) * (z + 0.3 * g.next_normal()) * 10f64.powi(j as i32 % 3)
            };
            v.push(x as f32);
        }
    }
    let labels = (0..n).map(|i| (i % 3) as u32).collect();
    Dataset::from_features(v, d, labels, ClassNames::new(["a", "b", "c"])).expect("valid")
}

fn pixels(n: usize, seed: u64) -> Dataset {
    let mut g = SplitMix64::new(seed);
    let shape = ImageShape::new(3, 2, 2);
    let mut px = Vec::with_capacity(n * shape.len());
    let mut labels = Vec::with_capacity(n);
    for i in 0..n {
        let y = i % 2;
        for f in 0..shape.len() {
            let base = if (f < 6) == (y == 0) { 180.0 } else { 60.0 };
            px.push((base + 25.0 * g.next_normal()).clamp(0.0, 255.0) as u8);
        }
        labels.push(y as u32);
    }
    Dataset::new(px, labels, shape, ClassNames::new(["x", "y"])).expect("valid")
}

fn rows_f64(ds: &Dataset) -> Vec<Vec<f64>> {
    let v = ds.values();
    (0..ds.len()).map(|i| v.row_f32(i).iter().map(|&x| f64::from(x)).collect()).collect()
}

#[test]
fn standardize_matches_a_naive_f64_computation_on_features_and_pixels() {
    for ds in [features(200, 5, 1), pixels(50, 2)] {
        let rows = rows_f64(&ds);
        let (n, d) = (rows.len() as f64, ds.dim());
        let step = StepSpec::Standardize.fit(&ds.all(), 0).expect("fit");
        let y = step.transform(&ds.all()).expect("transform");
        assert_eq!(y.shape(), RowShape::Features(d));
        let out = y.features().expect("features");
        for j in 0..d {
            let mean = rows.iter().map(|r| r[j]).sum::<f64>() / n;
            let sd = (rows.iter().map(|r| (r[j] - mean).powi(2)).sum::<f64>() / n).sqrt();
            let sd = if sd > 0.0 { sd } else { 1.0 };
            for (i, r) in rows.iter().enumerate() {
                let want = (r[j] - mean) / sd;
                let got = f64::from(out.row(i)[j]);
                assert!(
                    (got - want).abs() <= 1e-4 * want.abs().max(1.0),
                    "col {j} row {i}: {got} vs {want}"
                );
            }
        }
        assert_eq!(y.labels(), ds.labels());
    }
    // the constant column maps to 0, not NaN
    let ds = features(30, 3, 4);
    let y = StepSpec::Standardize.fit(&ds.all(), 0).expect("fit").transform(&ds.all()).expect("t");
    assert!(y.features().expect("f").iter().all(|r| r[1] == 0.0));
}

#[test]
fn pca_matches_the_eigendecomposition_of_the_covariance_and_whitens_to_unit_variance() {
    let ds = features(400, 6, 7);
    let rows = rows_f64(&ds);
    let (n, d) = (rows.len(), ds.dim());
    let mean: Vec<f64> =
        (0..d).map(|j| rows.iter().map(|r| r[j]).sum::<f64>() / n as f64).collect();
    let mut cov = nalgebra::DMatrix::<f64>::zeros(d, d);
    for r in &rows {
        let c = nalgebra::DVector::from_iterator(d, r.iter().zip(&mean).map(|(x, m)| x - m));
        cov += &c * c.transpose();
    }
    cov /= n as f64;
    let eig = nalgebra::SymmetricEigen::new(cov);
    let mut order: Vec<usize> = (0..d).collect();
    order.sort_by(|&a, &b| eig.eigenvalues[b].total_cmp(&eig.eigenvalues[a]));
    let p = 3;
    let step = StepSpec::Pca { components: p, whiten: false }.fit(&ds.all(), 3).expect("fit");
    let Step::Pca { pca, .. } = &step else { panic!("a pca step") };
    for (k, &e) in order.iter().take(p).enumerate() {
        let want = eig.eigenvectors.column(e);
        let got = pca.component(k);
        let dot: f64 = got.iter().zip(want.iter()).map(|(a, b)| f64::from(*a) * b).sum();
        assert!(dot.abs() > 0.999, "component {k}: |cos| = {}", dot.abs());
        let var = f64::from(pca.variances()[k]);
        assert!((var - eig.eigenvalues[e]).abs() <= 1e-3 * eig.eigenvalues[e], "variance {k}");
    }
    // projections are (x - mean) . component, row by row
    let y = step.transform(&ds.all()).expect("transform");
    let out = y.features().expect("features");
    for (i, r) in rows.iter().enumerate().step_by(37) {
        for k in 0..p {
            let want: f64 = r
                .iter()
                .zip(&mean)
                .zip(pca.component(k))
                .map(|((x, m), c)| (x - m) * f64::from(*c))
                .sum();
            assert!((f64::from(out.row(i)[k]) - want).abs() <= 1e-3 * want.abs().max(1.0));
        }
    }
    // whitened: every component has unit variance over the training rows
    let white = StepSpec::Pca { components: p, whiten: true }.fit(&ds.all(), 3).expect("fit");
    let w = white.transform(&ds.all()).expect("transform");
    let wr = w.features().expect("features");
    for k in 0..p {
        let m = wr.iter().map(|r| f64::from(r[k])).sum::<f64>() / n as f64;
        let v = wr.iter().map(|r| (f64::from(r[k]) - m).powi(2)).sum::<f64>() / n as f64;
        assert!((v - 1.0).abs() < 1e-3, "whitened component {k} has variance {v}");
    }
}

#[test]
fn steps_rebuild_from_their_tensors_and_refuse_other_shapes() {
    let ds = pixels(60, 5);
    for spec in [StepSpec::Standardize, StepSpec::Pca { components: 4, whiten: true }] {
        let step = spec.fit(&ds.all(), 9).expect("fit");
        let tensors = step.tensors();
        let shapes = Step::tensor_shapes(&spec, step.input());
        assert_eq!(
            tensors.iter().map(|t| (t.name.clone(), t.shape.clone())).collect::<Vec<_>>(),
            shapes
        );
        let back = Step::from_tensors(&spec, step.input(), |name| {
            Ok(tensors.iter().find(|t| t.name == name).expect("named").data.clone())
        })
        .expect("rebuilds");
        assert_eq!(back, step);
        assert_eq!(
            back.transform(&ds.all()).expect("t").features().map(|r| r.to_contiguous()),
            step.transform(&ds.all()).expect("t").features().map(|r| r.to_contiguous())
        );
        // images of another shape, and features of the same length, are refused
        let other = Dataset::new(
            vec![0; 12],
            vec![0],
            ImageShape::new(1, 3, 4),
            ClassNames::new(["x", "y"]),
        )
        .expect("valid");
        let e = step.transform(&other.all()).unwrap_err();
        assert_eq!(
            e,
            FeatureError::Shape(ShapeMismatch {
                expected: ImageShape::new(3, 2, 2).into(),
                found: ImageShape::new(1, 3, 4).into()
            })
        );
        // damaged parts are refused, not turned into NaN features
        let bad = Step::from_tensors(&spec, step.input(), |name| {
            let mut v = tensors.iter().find(|t| t.name == name).expect("named").data.clone();
            v[0] = f32::NAN;
            Ok(v)
        });
        assert!(matches!(bad, Err(FeatureError::Corrupt { .. })), "{bad:?}");
    }
    let e = StepSpec::Pca { components: 13, whiten: false }.fit(&ds.all(), 0).unwrap_err();
    assert_eq!(e.to_string(), "invalid pca: 13 components for 12 features");
}

/// A pipeline predicts what its classifier predicts on the steps' output applied by hand,
/// refits its steps per training set (so it can be cross-validated), and is seeded.
#[test]
fn a_pipeline_is_its_steps_then_its_classifier() {
    let ds = pixels(120, 11);
    let train = ds.subset((0..90).collect::<Vec<_>>()).expect("rows");
    let test = ds.subset((90..120).collect::<Vec<_>>()).expect("rows");
    let specs = vec![StepSpec::Standardize, StepSpec::Pca { components: 5, whiten: false }];
    let pipe = Pipeline::new(specs.clone(), Knn::new(3)).seed(21);
    let model = pipe.fit(&train).expect("fits");
    assert_eq!(model.input(), Some(RowShape::Image(ImageShape::new(3, 2, 2))));
    assert_eq!(model.steps().len(), 2);
    // by hand: the same seeds (the pipeline gives step i the fork i of its seed)
    let root = SplitMix64::new(21);
    let s0 = specs[0].fit(&train, root.fork(0).next_u64()).expect("fit");
    let t0 = s0.transform(&train).expect("t").all();
    let s1 = specs[1].fit(&t0, root.fork(1).next_u64()).expect("fit");
    let t1 = s1.transform(&t0).expect("t").all();
    let knn = Knn::new(3).fit(&t1).expect("fit");
    let q = s1.transform(&s0.transform(&test).expect("t").all()).expect("t").all();
    assert_eq!(model.predict(&test).expect("predicts"), knn.predict(&q).expect("predicts"));
    let right = model
        .predict(&test)
        .expect("p")
        .iter()
        .zip(test.labels())
        .filter(|(a, b)| **a == *b)
        .count();
    assert!(right >= 27, "{right} of 30: the two classes are far apart");
    // deterministic; another seed may project differently but still fits
    assert_eq!(pipe.fit(&train).expect("fit").steps(), model.steps());
    // a classifier failure is reported as the classifier's, a step failure names the step
    let e = Pipeline::new(specs.clone(), Knn::new(500)).fit(&train).unwrap_err();
    assert!(matches!(e, PipelineError::Classifier(_)), "{e}");
    let e = Pipeline::new(vec![StepSpec::Pca { components: 99, whiten: false }], Knn::new(1))
        .fit(&train)
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "pipeline step 0 (pca(99)): invalid pca: 99 components for 12 features"
    );
    // fitted steps that do not chain are refused
    let e = imgclass_features::PipelineModel::new(vec![s1, s0], knn).unwrap_err();
    assert!(matches!(e, PipelineError::Chain { index: 1, .. }), "{e}");
}

/// CS231n's `hog_feature`, translated line by line (whole gradient images, one pass per
/// orientation bin, `uniform_filter(size=8)` sampled at `[4::8, 4::8]`, transposed, raveled):
/// the reference the one-pass implementation must equal.
fn hog_reference(px: &[u8], h: usize, w: usize) -> Vec<f64> {
    let plane = h * w;
    let img: Vec<f64> = (0..plane)
        .map(|j| {
            0.299 * f64::from(px[j])
                + 0.587 * f64::from(px[plane + j])
                + 0.144 * f64::from(px[2 * plane + j])
        })
        .collect();
    let mut gx = vec![0.0; plane];
    let mut gy = vec![0.0; plane];
    for r in 0..h {
        for c in 0..w - 1 {
            gx[r * w + c] = img[r * w + c + 1] - img[r * w + c];
        }
    }
    for r in 0..h - 1 {
        for c in 0..w {
            gy[r * w + c] = img[(r + 1) * w + c] - img[r * w + c];
        }
    }
    let mag: Vec<f64> = (0..plane).map(|j| (gx[j] * gx[j] + gy[j] * gy[j]).sqrt()).collect();
    let ori: Vec<f64> = (0..plane)
        .map(|j| gy[j].atan2(gx[j] + 1e-15) * (180.0 / std::f64::consts::PI) + 90.0)
        .collect();
    let (cx, cy, nb) = (8usize, 8usize, 9usize);
    let (ncx, ncy) = (h / cx, w / cy); // numpy: sx, sy = image.shape (rows, cols)
    let mut hist = vec![0.0; ncx * ncy * nb]; // [n_cellsx][n_cellsy][nb]
    for i in 0..nb {
        let lo = 180.0 / nb as f64 * i as f64;
        let hi = 180.0 / nb as f64 * (i + 1) as f64;
        let temp_mag: Vec<f64> = (0..plane)
            .map(|j| {
                let t = if ori[j] < hi { ori[j] } else { 0.0 };
                let t = if ori[j] >= lo { t } else { 0.0 };
                if t > 0.0 { mag[j] } else { 0.0 }
            })
            .collect();
        // uniform_filter(size=(8, 8)) at (4 + 8a, 4 + 8b): mean over rows/cols centre-4 .. centre+3
        let filt = |r: usize, c: usize| {
            let mut s = 0.0;
            for rr in r - 4..r + 4 {
                for cc in c - 4..c + 4 {
                    s += temp_mag[rr * w + cc];
                }
            }
            s / 64.0
        };
        // sampled[a][b] = filt(4 + 8a, 4 + 8b) over rows a < ncx, cols b < ncy; then .T
        for a in 0..ncx {
            for b in 0..ncy {
                let v = filt(4 + 8 * a, 4 + 8 * b);
                // transposed: hist[b][a][i] (first index over the n_cellsx axis after .T)
                hist[(b * ncx + a) * nb + i] = v;
            }
        }
    }
    hist
}

/// matplotlib's rgb_to_hsv hue and numpy's histogram, written out for one image.
fn hue_reference(px: &[u8], plane: usize, bins: usize) -> Vec<f64> {
    let mut counts = vec![0usize; bins];
    for j in 0..plane {
        let (r, g, b) =
            (px[j] as f64 / 255.0, px[plane + j] as f64 / 255.0, px[2 * plane + j] as f64 / 255.0);
        let v = r.max(g).max(b);
        let delta = v - r.min(g).min(b);
        let mut hh = 0.0;
        if delta > 0.0 {
            if r == v {
                hh = (g - b) / delta;
            }
            if g == v {
                hh = 2.0 + (b - r) / delta;
            }
            if b == v {
                hh = 4.0 + (r - g) / delta;
            }
        }
        let hue = (hh / 6.0).rem_euclid(1.0) * 255.0;
        let edges: Vec<f64> = (0..=bins).map(|k| 255.0 * k as f64 / bins as f64).collect();
        let k = (0..bins)
            .find(|&k| hue >= edges[k] && (hue < edges[k + 1] || k == bins - 1))
            .expect("in range");
        counts[k] += 1;
    }
    counts.iter().map(|&c| c as f64 / plane as f64).collect()
}

#[test]
fn hog_and_hue_histogram_equal_the_course_formulas() {
    let mut g = SplitMix64::new(8);
    let shape = ImageShape::new(3, 32, 32);
    // random images, smooth ramps with edges (every orientation), flat colours (hue 0)
    let mut px: Vec<u8> = Vec::new();
    for k in 0..12 {
        for ch in 0..3 {
            for r in 0..32usize {
                for c in 0..32usize {
                    let v = match k % 3 {
                        0 => g.below(256) as u8,
                        1 => {
                            ((r * (ch + 1) * 7 + c * (3 - ch) * 5 + if c > 16 { 90 } else { 0 })
                                % 256) as u8
                        }
                        _ => (60 * ch) as u8,
                    };
                    px.push(v);
                }
            }
        }
    }
    let ds = Dataset::new(px, vec![0; 12], shape, ClassNames::new(["a"])).expect("valid");
    let hog = StepSpec::Hog { cell: 8, orientations: 9 }.fit(&ds.all(), 0).expect("fit");
    let hue = StepSpec::HueHistogram { bins: 10 }.fit(&ds.all(), 0).expect("fit");
    let hf = hog.transform(&ds.all()).expect("hog");
    let uf = hue.transform(&ds.all()).expect("hue");
    assert_eq!((hf.dim(), uf.dim()), (144, 10));
    let rows = ds.pixels().expect("images");
    for i in 0..ds.len() {
        let want = hog_reference(rows.row(i), 32, 32);
        let got = hf.features().expect("f").row(i);
        for (j, (&a, &b)) in got.iter().zip(&want).enumerate() {
            assert!(
                (f64::from(a) - b).abs() <= 1e-4 * b.abs().max(1.0),
                "image {i} hog {j}: {a} vs {b}"
            );
        }
        assert!(want.iter().any(|&v| v > 0.0) || i % 3 == 2);
        let want = hue_reference(rows.row(i), 1024, 10);
        let got = uf.features().expect("f").row(i);
        for (&a, &b) in got.iter().zip(&want) {
            assert!((f64::from(a) - b).abs() < 1e-6);
        }
    }
    // the union puts them side by side: CS231n's 154 features
    let both = StepSpec::Union {
        of: vec![StepSpec::Hog { cell: 8, orientations: 9 }, StepSpec::HueHistogram { bins: 10 }],
    }
    .fit(&ds.all(), 0)
    .expect("fit");
    assert_eq!(both.spec().to_string(), "union(hog(8px, 9 bins) + hue_histogram(10))");
    let bf = both.transform(&ds.all()).expect("union");
    assert_eq!(bf.dim(), 154);
    assert_eq!(&bf.features().expect("f").row(5)[..144], hf.features().expect("f").row(5));
    assert_eq!(&bf.features().expect("f").row(5)[144..], uf.features().expect("f").row(5));
    // rebuilt from (no) tensors, the same
    let back = Step::from_tensors(&both.spec(), both.input(), |_| unreachable!("no tensors"))
        .expect("rebuilds");
    assert_eq!(back, both);
    // configs spell them as the course does
    let spec: StepSpec =
        serde_json::from_str(r#"{"kind":"union","of":[{"kind":"hog"},{"kind":"hue_histogram"}]}"#)
            .expect("parses");
    assert_eq!(spec, both.spec());
    // features are not images: refused with a clear message
    let feats = features(10, 4, 1);
    let e = StepSpec::Hog { cell: 8, orientations: 9 }.fit(&feats.all(), 0).unwrap_err();
    assert_eq!(e.to_string(), "invalid hog: HOG takes images, not 4 features");
}

/// Random 3 x 12 x 12 images with some smooth structure.
fn small_images(n: usize, seed: u64) -> Dataset {
    let mut g = SplitMix64::new(seed);
    let shape = ImageShape::new(3, 12, 12);
    let mut px = Vec::with_capacity(n * shape.len());
    for _ in 0..n {
        let (a, b) = (g.next_f64() * 15.0, g.next_f64() * 15.0);
        for ch in 0..3 {
            for y in 0..12 {
                for x in 0..12 {
                    let v = 40.0
                        + a * y as f64
                        + b * x as f64
                        + 20.0 * ch as f64
                        + 25.0 * g.next_normal();
                    px.push(v.clamp(0.0, 255.0) as u8);
                }
            }
        }
    }
    let labels = (0..n).map(|i| (i % 2) as u32).collect();
    Dataset::new(px, labels, shape, ClassNames::new(["x", "y"])).expect("valid")
}

fn small_kmeans() -> KmeansParams {
    KmeansParams { receptive_field: 4, centroids: 16, patches: 2000, ..KmeansParams::default() }
}

#[test]
fn kmeans_step_rebuilds_from_its_tensors_with_the_same_features() {
    let ds = small_images(40, 2);
    let spec = StepSpec::Kmeans(small_kmeans());
    assert_eq!(spec.to_string(), "kmeans(16)");
    let step = spec.fit(&ds.all(), 5).expect("fit");
    assert_eq!(step.output_dim(), 64);
    let tensors = step.tensors();
    let shapes = Step::tensor_shapes(&spec, step.input());
    assert_eq!(
        tensors.iter().map(|t| (t.name.clone(), t.shape.clone())).collect::<Vec<_>>(),
        vec![
            ("centroids".to_string(), vec![16, 48]),
            ("whitening_mean".to_string(), vec![48]),
            ("whitening".to_string(), vec![48, 48])
        ]
    );
    assert_eq!(shapes.len(), 3);
    let back = Step::from_tensors(&spec, step.input(), |name| {
        Ok(tensors.iter().find(|t| t.name == name).expect("named").data.clone())
    })
    .expect("rebuilds");
    assert_eq!(back, step);
    let f = |s: &Step| s.transform(&ds.all()).expect("t").features().map(|r| r.to_contiguous());
    assert_eq!(f(&back), f(&step));
    assert_eq!(
        step.transform(&ds.all()).expect("t").description(),
        Some("kmeans(16) of 3x12x12 images")
    );
    let bad = Step::from_tensors(&spec, step.input(), |name| {
        let mut v = tensors.iter().find(|t| t.name == name).expect("named").data.clone();
        v[0] = f32::INFINITY;
        Ok(v)
    });
    assert!(matches!(bad, Err(FeatureError::Corrupt { .. })), "{bad:?}");
    // the dictionary is public, for drawing
    let Step::Kmeans(km) = &step else { panic!("a kmeans step") };
    assert_eq!((km.centroids().len(), km.receptive_field(), km.channels()), (16 * 48, 4, 3));
    assert_eq!(km.whitening().len(), 48 * 48);
}

#[test]
fn flip_kmeans_step_rebuilds_from_its_tensors_and_says_flip() {
    let ds = small_images(40, 4);
    let spec = StepSpec::Kmeans(KmeansParams { flip: true, ..small_kmeans() });
    assert_eq!(spec.to_string(), "kmeans(16, flip)");
    let step = spec.fit(&ds.all(), 5).expect("fit");
    assert_eq!(step.output_dim(), 32);
    let tensors = step.tensors();
    let get = |name: &str| tensors.iter().find(|t| t.name == name).expect("named").data.clone();
    let back = Step::from_tensors(&spec, step.input(), |name| Ok(get(name))).expect("rebuilds");
    assert_eq!(back, step);
    let f = |s: &Step| s.transform(&ds.all()).expect("t").features().map(|r| r.to_contiguous());
    assert_eq!(f(&back), f(&step));
    // the same tensors under a spec without flip give other features; a dictionary whose
    // halves do not mirror each other is refused under flip
    let plain = StepSpec::Kmeans(small_kmeans());
    let other = Step::from_tensors(&plain, step.input(), |name| Ok(get(name))).expect("plain");
    assert_eq!(other.output_dim(), 64);
    let bad = Step::from_tensors(&spec, step.input(), |name| {
        let mut v = get(name);
        if name == "centroids" {
            v.swap(0, 1);
        }
        Ok(v)
    });
    assert!(matches!(bad, Err(FeatureError::Corrupt { .. })), "{bad:?}");
    let json = serde_json::to_string(&spec).expect("json");
    assert!(json.contains("\"flip\":true"), "{json}");
    assert_eq!(serde_json::from_str::<StepSpec>(&json).expect("parses"), spec);
}

#[test]
fn kmeans_step_has_the_same_bits_at_any_thread_count_and_seed_matters() {
    let ds = small_images(50, 3);
    let spec = StepSpec::Kmeans(small_kmeans());
    let run = |threads: usize, seed: u64| {
        rayon::ThreadPoolBuilder::new().num_threads(threads).build().expect("pool").install(|| {
            let step = spec.fit(&ds.all(), seed).expect("fit");
            let y = step.transform(&ds.all()).expect("t");
            let bits: Vec<u32> =
                y.features().expect("f").to_contiguous().iter().map(|v| v.to_bits()).collect();
            (step, bits)
        })
    };
    let one = run(1, 7);
    assert_eq!(one, run(2, 7));
    assert_eq!(one, run(3, 7));
    assert_ne!(one.0, run(2, 8).0);
    let spec = StepSpec::Kmeans(KmeansParams { flip: true, ..small_kmeans() });
    let run = |threads: usize| {
        rayon::ThreadPoolBuilder::new().num_threads(threads).build().expect("pool").install(|| {
            let step = spec.fit(&ds.all(), 7).expect("fit");
            let y = step.transform(&ds.all()).expect("t");
            let bits: Vec<u32> =
                y.features().expect("f").to_contiguous().iter().map(|v| v.to_bits()).collect();
            (step, bits)
        })
    };
    assert_eq!(run(1), run(2));
}

#[test]
fn kmeans_step_refuses_bad_parameters_with_typed_errors() {
    let ds = small_images(5, 1);
    let base = small_kmeans();
    let err = |p: KmeansParams| KmeansFeatures::fit(&ds.all(), &p, 0).unwrap_err();
    let name = |e: FeatureError| match e {
        FeatureError::InvalidParam { name, .. } => name,
        other => panic!("{other:?}"),
    };
    let e = err(KmeansParams { receptive_field: 13, ..base });
    assert_eq!(
        e.to_string(),
        "invalid receptive_field: 13x13 patches do not fit in 3x12x12 images"
    );
    assert_eq!(name(err(KmeansParams { receptive_field: 0, ..base })), "receptive_field");
    assert_eq!(name(err(KmeansParams { stride: 0, ..base })), "receptive_field");
    assert_eq!(name(err(KmeansParams { centroids: 0, ..base })), "centroids");
    let e = err(KmeansParams { centroids: 2001, ..base });
    assert_eq!(
        e.to_string(),
        "invalid centroids: 2001 centroids for 2000 patches (need 1 to patches)"
    );
    assert_eq!(name(err(KmeansParams { patches: 0, ..base })), "patches");
    assert_eq!(name(err(KmeansParams { whitening_eps: f64::NAN, ..base })), "whitening_eps");
    assert_eq!(name(err(KmeansParams { normalization_eps: -1.0, ..base })), "normalization_eps");
    let feats = features(10, 4, 1);
    let e = StepSpec::Kmeans(base).fit(&feats.all(), 0).unwrap_err();
    assert_eq!(e.to_string(), "invalid kmeans: k-means features take images, not 4 features");
    let empty = ds.subset(Vec::<usize>::new()).expect("empty view");
    assert_eq!(KmeansFeatures::fit(&empty, &base, 0).unwrap_err(), FeatureError::EmptyTrain);
    // fitted on one shape, refuses another
    let step = StepSpec::Kmeans(base).fit(&ds.all(), 0).expect("fit");
    let other = pixels(3, 1);
    assert!(matches!(step.transform(&other.all()), Err(FeatureError::Shape(_))));
}

#[test]
fn kmeans_spec_parses_with_the_papers_defaults() {
    let spec: StepSpec = serde_json::from_str(r#"{"kind":"kmeans"}"#).expect("parses");
    assert_eq!(spec, StepSpec::Kmeans(KmeansParams::default()));
    let StepSpec::Kmeans(p) = spec else { panic!("kmeans") };
    assert_eq!(
        (p.receptive_field, p.stride, p.centroids, p.patches, p.whitening_eps, p.normalization_eps),
        (6, 1, 1600, 400_000, 0.1, 10.0)
    );
    let spec: StepSpec = serde_json::from_str(
        r#"{"kind":"kmeans","centroids":400,"receptive_field":5,"init":"rows","empty_cluster":"keep"}"#,
    )
    .expect("parses");
    assert_eq!(spec.to_string(), "kmeans(400)");
    let e = serde_json::from_str::<StepSpec>(r#"{"kind":"kmeans","centriods":400}"#).unwrap_err();
    assert!(e.to_string().contains("unknown field"), "{e}");
    let back: StepSpec =
        serde_json::from_str(&serde_json::to_string(&spec).expect("json")).expect("p");
    assert_eq!(back, spec);
}

/// Non-negative "histograms" spanning six orders of magnitude, with exact zeros.
fn histograms(n: usize, d: usize, seed: u64) -> Dataset {
    let mut g = SplitMix64::new(seed);
    let v = (0..n * d)
        .map(
            |k| if k % 7 == 3 { 0.0 } else { (g.next_f64() * 10f64.powi(k as i32 % 6 - 3)) as f32 },
        )
        .collect();
    Dataset::from_features(v, d, vec![0; n], ClassNames::new(["a"])).expect("valid")
}

/// `Σ_j sqrt(x_j y_j) L [1 + 2 Σ_s sech(π s L) cos(s L ln(x_j / y_j))]` (0 where either is 0):
/// the kernel whose spectrum the map samples, from its definition, not from the map.
fn sampled_chi2(x: &[f64], y: &[f64], steps: usize, l: f64) -> f64 {
    x.iter()
        .zip(y)
        .filter(|&(&a, &b)| a > 0.0 && b > 0.0)
        .map(|(&a, &b)| {
            let sum: f64 = (1..steps)
                .map(|s| {
                    let s = s as f64;
                    (s * l * (a / b).ln()).cos() / (std::f64::consts::PI * s * l).cosh()
                })
                .sum();
            (a * b).sqrt() * l * (1.0 + 2.0 * sum)
        })
        .sum()
}

#[test]
fn chi2_map_dot_products_are_the_sampled_chi2_kernel_and_tend_to_chi2() {
    let ds = histograms(12, 9, 21);
    let x = rows_f64(&ds);
    for (steps, interval, l) in
        [(1, None, 0.8), (2, None, 0.5), (3, None, 0.4), (8, Some(0.3), 0.3)]
    {
        let step = StepSpec::Chi2Map { steps, interval }.fit(&ds.all(), 0).expect("fit");
        assert_eq!(step.output_dim(), 9 * (2 * steps - 1));
        let y = rows_f64(&step.transform(&ds.all()).expect("map"));
        for i in 0..12 {
            for k in 0..12 {
                let dot: f64 = y[i].iter().zip(&y[k]).map(|(a, b)| a * b).sum();
                let want = sampled_chi2(&x[i], &x[k], steps, l);
                assert!(
                    (dot - want).abs() <= 1e-5 * want.abs().max(1e-3),
                    "{steps}: {dot} vs {want}"
                );
            }
        }
        // each value, in scikit-learn's layout (block 0: every sqrt(x L); then per step s the
        // block of cosines and the block of sines), against the formulas in f64; zeros map to
        // zeros in every block
        for (xr, yr) in x.iter().zip(&y) {
            for (j, &v) in xr.iter().enumerate() {
                let mut want = vec![(v * l).sqrt()];
                for s in 1..steps {
                    let s = s as f64;
                    let amp = (2.0 * v * l / (std::f64::consts::PI * s * l).cosh()).sqrt();
                    let (sin, cos) = if v > 0.0 { (s * l * v.ln()).sin_cos() } else { (0.0, 0.0) };
                    want.extend([amp * cos, amp * sin]);
                }
                for (b, w) in want.iter().enumerate() {
                    let got = yr[b * 9 + j];
                    assert!((got - w).abs() <= 1e-6 * w.abs().max(1e-3), "block {b}: {got} vs {w}");
                }
            }
        }
        // no state: rebuilt from the spec alone, the same step
        let back = Step::from_tensors(&step.spec(), step.input(), |_| unreachable!("no tensors"))
            .expect("rebuilds");
        assert_eq!(back, step);
    }
    // with a fine, long sampling, the χ² kernel itself, Σ 2 x y / (x + y), within 0.5 % (on
    // values within a factor 100 of each other: the kernel is a small difference of large
    // terms where the ratio is extreme)
    let mut g = SplitMix64::new(5);
    let v = (0..8 * 9).map(|_| (0.01 + g.next_f64()) as f32).collect();
    let ds = Dataset::from_features(v, 9, vec![0; 8], ClassNames::new(["a"])).expect("valid");
    let x = rows_f64(&ds);
    let step = StepSpec::Chi2Map { steps: 20, interval: Some(0.1) }.fit(&ds.all(), 0).expect("fit");
    let y = rows_f64(&step.transform(&ds.all()).expect("map"));
    for i in 0..8 {
        for k in 0..8 {
            let dot: f64 = y[i].iter().zip(&y[k]).map(|(a, b)| a * b).sum();
            let chi2: f64 = x[i].iter().zip(&x[k]).map(|(&a, &b)| 2.0 * a * b / (a + b)).sum();
            assert!((dot - chi2).abs() <= 5e-3 * chi2, "{dot} vs χ² {chi2}");
        }
    }
    // the config spelling with scikit-learn's defaults
    let spec: StepSpec = serde_json::from_str(r#"{"kind":"chi2_map"}"#).expect("parses");
    assert_eq!(spec, StepSpec::Chi2Map { steps: 2, interval: None });
    assert_eq!(spec.to_string(), "chi2_map(2 steps)");
}

#[test]
fn chi2_map_refuses_negative_features_and_bad_parameters() {
    // standardised features have negative values: the error names one and says what to do
    let ds = features(10, 4, 1);
    let e = StepSpec::Chi2Map { steps: 2, interval: None }
        .fit(&ds.all(), 0)
        .expect("fits: no state")
        .transform(&ds.all())
        .unwrap_err();
    let msg = e.to_string();
    assert!(msg.starts_with("invalid chi2_map: the χ² map takes non-negative features"), "{msg}");
    let (i, j) = (0..10)
        .flat_map(|i| (0..4).map(move |j| (i, j)))
        .find(|&(i, j)| ds.features().expect("f").row(i)[j] < 0.0)
        .expect("a negative value");
    assert!(msg.contains(&format!("feature {j} of row {i} is")), "{msg}");
    for (steps, interval, why) in [
        (0, None, "steps must be at least 1"),
        (65, Some(0.1), "steps must be at most 64, not 65"),
        (4, None, "4 steps have no default interval (1-3 steps do); give `interval`"),
        (2, Some(0.0), "interval must be positive, not 0"),
        (2, Some(f64::NAN), "interval must be positive, not NaN"),
    ] {
        let e = StepSpec::Chi2Map { steps, interval }.fit(&histograms(3, 2, 0).all(), 0);
        assert_eq!(e.unwrap_err().to_string(), format!("invalid chi2_map: {why}"));
    }
}

#[test]
fn a_spec_checks_to_the_shape_its_fitted_step_makes_and_refuses_as_its_fit_does() {
    let img = small_images(30, 4);
    let feats = features(30, 5, 4);
    let hist = histograms(30, 6, 4);
    let hog = StepSpec::Hog { cell: 4, orientations: 9 };
    let hue = StepSpec::HueHistogram { bins: 7 };
    let km = StepSpec::Kmeans(small_kmeans());
    let flip =
        |centroids| StepSpec::Kmeans(KmeansParams { flip: true, centroids, ..small_kmeans() });
    let pca = |components| StepSpec::Pca { components, whiten: true };
    let chi2 = |steps| StepSpec::Chi2Map { steps, interval: None };
    let union = |of| StepSpec::Union { of };
    let good: Vec<(StepSpec, &Dataset)> = vec![
        (StepSpec::Standardize, &img),
        (StepSpec::Standardize, &feats),
        (pca(3), &feats),
        (pca(5), &feats),
        (pca(4), &img),
        (hog.clone(), &img),
        (hue.clone(), &img),
        (chi2(2), &hist),
        (chi2(3), &hist),
        (km.clone(), &img),
        (flip(16), &img),
        (union(vec![hog.clone(), hue.clone()]), &img),
        (union(vec![StepSpec::Standardize, chi2(1)]), &hist),
    ];
    for (spec, ds) in good {
        let shape = spec.check(ds.shape()).expect("checks");
        let step = spec.fit(&ds.all(), 1).expect("fits");
        let made = step.transform(&ds.all()).expect("transforms");
        assert_eq!(shape, made.shape(), "{spec}");
        assert_eq!(shape, RowShape::Features(step.output_dim()), "{spec}");
    }
    let bad: Vec<(StepSpec, &Dataset)> = vec![
        (pca(0), &feats),
        (pca(6), &feats),
        (hog.clone(), &feats),
        (StepSpec::Hog { cell: 0, orientations: 9 }, &img),
        (StepSpec::Hog { cell: 13, orientations: 9 }, &img),
        (StepSpec::HueHistogram { bins: 0 }, &img),
        (hue.clone(), &feats),
        (chi2(0), &hist),
        (chi2(4), &hist),
        (StepSpec::Kmeans(KmeansParams { receptive_field: 13, ..small_kmeans() }), &img),
        (flip(15), &img),
        (km.clone(), &feats),
        (union(vec![]), &img),
        (union(vec![hue.clone(), StepSpec::Hog { cell: 0, orientations: 9 }]), &img),
    ];
    for (spec, ds) in bad {
        let want = spec.fit(&ds.all(), 1).expect_err("the fit refuses");
        assert_eq!(spec.check(ds.shape()), Err(want), "{spec}");
    }
}

#[test]
fn steps_are_checked_before_the_first_one_is_fitted() {
    let img = small_images(30, 4);
    // k-means-16 makes 64 features; 65 components of them are refused at step 2
    let specs = [
        StepSpec::Kmeans(small_kmeans()),
        StepSpec::Standardize,
        StepSpec::Pca { components: 65, whiten: false },
    ];
    let want = "pipeline step 2 (pca(65)): invalid pca: 65 components for 64 features";
    assert_eq!(check_steps(&specs, img.shape()).expect_err("refused").to_string(), want);
    assert_eq!(fit_steps(&specs, &img.all(), 0).expect_err("refused").to_string(), want);
    // the first step would refuse these rows only when fitted (negative values for the χ²
    // map): the second step's mistake is what is reported, so nothing was fitted
    let negative = features(30, 5, 4);
    let late = [
        StepSpec::Chi2Map { steps: 2, interval: None },
        StepSpec::Pca { components: 16, whiten: false },
    ];
    let e = fit_steps(&late, &negative.all(), 0).expect_err("refused");
    assert_eq!(
        e.to_string(),
        "pipeline step 1 (pca(16)): invalid pca: 16 components for 15 features"
    );
    let e = fit_steps(&late[..1], &negative.all(), 0).expect_err("refused when fitted");
    assert!(e.to_string().starts_with("pipeline step 0 (chi2_map"), "{e}");
    assert_eq!(check_steps(&specs[..2], img.shape()).expect("checks"), RowShape::Features(64));
    assert_eq!(check_steps(&[], img.shape()).expect("checks"), img.shape());
}
