//! Behaviour of the linear classifier: it separates separable data, starts at the lecture's
//! initial losses, rejects bad input with typed errors, and is deterministic per seed; the
//! full-batch L-BFGS solver reaches a plain f64 gradient descent's minimum, says why it
//! stopped, refuses what it cannot solve, and has the same bits on any thread count.

use imgclass_core::Subset;
use imgclass_core::rng::SplitMix64;
use imgclass_core::{ClassNames, Dataset, Fit, ImageShape, Predict, ShapeMismatch};
use imgclass_linear::{Lbfgs, Linear, LinearError, Loss, Reg, Sgd, Solver, Stop, StopReason};

/// A generated linearly separable problem: class `c` lights up its own block of four
/// features (200..=255) and the other blocks stay dark (0..=60), so `w_c` = the block's
/// indicator separates the classes with a margin of at least 4·140 in raw pixels.
fn separable(n_per_class: usize, seed: u64) -> Dataset {
    let (c, block) = (3usize, 4usize);
    let shape = ImageShape::new(3, 2, 2); // 12 features: one block of 4 per class
    let mut g = SplitMix64::new(seed);
    let (mut px, mut labels) = (vec![], vec![]);
    for i in 0..n_per_class * c {
        let y = i % c;
        for f in 0..shape.len() {
            let v = if f / block == y { 200 + g.below(56) } else { g.below(61) };
            px.push(v as u8);
        }
        labels.push(y as u32);
    }
    Dataset::new(px, labels, shape, ClassNames::new(["a", "b", "c"])).expect("valid")
}

fn accuracy(pred: &[u32], truth: &[u32]) -> f64 {
    pred.iter().zip(truth).filter(|(a, b)| a == b).count() as f64 / truth.len() as f64
}

#[test]
fn sgd_reaches_full_training_accuracy_on_separable_data() {
    let ds = separable(40, 7);
    let train = ds.all();
    for loss in [
        Loss::Svm { margin: 1.0 },
        Loss::SquaredHinge { margin: 1.0 },
        Loss::Softmax,
        Loss::OvaSquaredHinge { margin: 1.0 },
    ] {
        for reg in [Reg::None, Reg::L2(1e-3), Reg::L1(1e-3)] {
            let model = Linear::new(loss)
                .regularization(reg)
                .sgd(Sgd {
                    batch_size: 16,
                    learning_rate: 1e-4,
                    stop: Stop::Epochs(30),
                    seed: 3,
                    ..Sgd::default()
                })
                .fit(&train)
                .expect("fits");
            let pred = model.predict(&train).expect("predicts");
            assert_eq!(accuracy(&pred, &train.labels()), 1.0, "{loss:?} {reg:?}");
            let r = model.report();
            assert_eq!(r.iterations, 30 * 120usize.div_ceil(16));
            assert_eq!((r.solver, r.stop_reason), ("sgd", Some(StopReason::MaxIterations)));
            assert!(r.loss.last() < r.loss.first(), "{loss:?} {reg:?}: loss did not fall");
            assert_eq!(r.loss.len(), r.iterations);
            for ((t, d), g) in r.loss.iter().zip(&r.data_loss).zip(&r.reg_loss) {
                assert!((t - (d + g)).abs() <= 1e-6 * t.abs().max(1.0));
            }
        }
    }
}

#[test]
fn momentum_and_decay_also_separate() {
    let ds = separable(30, 11);
    let model = Linear::new(Loss::Softmax)
        .sgd(Sgd {
            batch_size: 10,
            learning_rate: 1e-4,
            momentum: 0.9,
            decay: 0.9,
            stop: Stop::Epochs(10),
            seed: 1,
        })
        .fit(&ds.all())
        .expect("fits");
    assert_eq!(accuracy(&model.predict(&ds.all()).expect("ok"), ds.labels()), 1.0);
    // 10 epochs → 9 decays completed at the start of epochs 2..10
    let lr = model.report().final_learning_rate;
    assert!((lr - 1e-4 * 0.9f64.powi(9)).abs() < 1e-12, "{lr}");
}

#[test]
fn first_loss_with_zero_weights_is_c_minus_one_and_ln_c() {
    // all scores equal at initialisation: SVM loss = C − 1 (Δ = 1), softmax loss = ln C
    let ds = separable(5, 2);
    let one = Sgd { batch_size: 15, stop: Stop::Iterations(1), ..Sgd::default() };
    let svm = Linear::new(Loss::Svm { margin: 1.0 }).init_std(0.0).sgd(one).fit(&ds.all());
    assert_eq!(svm.expect("fits").report().data_loss[0], 2.0);
    let sm = Linear::new(Loss::Softmax).init_std(0.0).sgd(one).fit(&ds.all()).expect("fits");
    assert!((f64::from(sm.report().data_loss[0]) - 3f64.ln()).abs() < 1e-6);
}

#[test]
fn non_finite_parameters_are_typed_errors() {
    let train = separable(5, 3).all();
    let base = Linear::new(Loss::Softmax);
    let cases = [
        (base.clone().sgd(Sgd { learning_rate: f64::NAN, ..Sgd::default() }), "learning_rate"),
        (base.clone().sgd(Sgd { learning_rate: f64::INFINITY, ..Sgd::default() }), "learning_rate"),
        (base.clone().regularization(Reg::L2(f64::NAN)), "regularization"),
        (base.clone().regularization(Reg::L1(f64::INFINITY)), "regularization"),
        (base.clone().input_scale(f32::NAN), "input_scale"),
        (base.clone().init_std(f64::INFINITY), "init_std"),
        (base.clone().sgd(Sgd { momentum: f64::NAN, ..Sgd::default() }), "momentum"),
        (base.clone().sgd(Sgd { batch_size: 0, ..Sgd::default() }), "batch_size"),
        (Linear::new(Loss::Svm { margin: f64::NAN }), "margin"),
    ];
    for (params, want) in cases {
        match params.fit(&train) {
            Err(LinearError::InvalidParameter { name, .. }) => assert_eq!(name, want),
            other => panic!("{want}: expected InvalidParameter, got {other:?}"),
        }
    }
}

#[test]
fn a_diverging_learning_rate_is_a_typed_error_not_nan_weights() {
    let train = separable(20, 5).all();
    for loss in [Loss::Svm { margin: 1.0 }, Loss::Softmax, Loss::SquaredHinge { margin: 1.0 }] {
        let r = Linear::new(loss)
            .regularization(Reg::L2(10.0))
            .sgd(Sgd { learning_rate: 1e3, batch_size: 10, ..Sgd::default() })
            .fit(&train);
        assert!(matches!(r, Err(LinearError::Diverged { .. })), "{loss:?}: {r:?}");
        // the message counts iterations from 1, the field from 0
        if let Err(e @ LinearError::Diverged { iteration, .. }) = r {
            let want = format!("training diverged at iteration {} (loss ", iteration + 1);
            assert!(e.to_string().starts_with(&want), "{e}");
        }
    }
}

#[test]
fn empty_and_single_class_training_sets_are_errors() {
    let ds = separable(3, 1);
    let empty = ds.subset(Vec::<usize>::new()).expect("ok");
    assert_eq!(Linear::new(Loss::Softmax).fit(&empty), Err(LinearError::EmptyTrainingSet));
    let one = Dataset::new(
        vec![1, 2, 3, 4],
        vec![0, 0],
        ImageShape::new(1, 1, 2),
        ClassNames::new(["x"]),
    )
    .expect("ok");
    assert_eq!(
        Linear::new(Loss::Softmax).fit(&one.all()),
        Err(LinearError::TooFewClasses { n_classes: 1 })
    );
}

#[test]
fn predicting_other_shapes_is_a_shape_error() {
    let model = Linear::new(Loss::Softmax).fit(&separable(3, 1).all()).expect("fits");
    let other =
        Dataset::new(vec![0; 8], vec![0, 1], ImageShape::new(1, 2, 2), ClassNames::new(["a", "b"]))
            .expect("ok");
    assert_eq!(
        model.predict(&other.all()),
        Err(LinearError::ImageShape(ShapeMismatch {
            expected: ImageShape::new(3, 2, 2).into(),
            found: ImageShape::new(1, 2, 2).into()
        }))
    );
    // issue 17 item 3: the model's byte count in another layout is refused too
    let transposed = Dataset::new(
        vec![0; 24],
        vec![0, 1],
        ImageShape::new(3, 4, 1),
        ClassNames::new(["a", "b"]),
    )
    .expect("ok");
    let e = model.predict(&transposed.all()).unwrap_err();
    assert_eq!(
        e,
        LinearError::ImageShape(ShapeMismatch {
            expected: ImageShape::new(3, 2, 2).into(),
            found: ImageShape::new(3, 4, 1).into()
        })
    );
    assert!(e.to_string().contains("expected 3x2x2 images, got 3x4x1"), "{e}");
}

#[test]
fn scores_probabilities_and_templates_are_consistent() {
    let ds = separable(10, 9);
    let model = Linear::new(Loss::Softmax)
        .sgd(Sgd { batch_size: 10, learning_rate: 1e-4, stop: Stop::Epochs(5), ..Sgd::default() })
        .fit(&ds.all())
        .expect("fits");
    let s = model.scores(&ds.all()).expect("ok");
    let p = model.predict_proba(&ds.all()).expect("ok");
    // independent oracle for the scores: W((x − μ)s) + b written out in f64
    let d = model.n_features();
    for i in 0..ds.len() {
        for j in 0..3 {
            let mut want = f64::from(model.bias()[j]);
            for k in 0..d {
                want += (f64::from(ds.pixels().expect("images").row(i)[k])
                    - f64::from(model.mean_image()[k]))
                    * f64::from(model.weights()[j * d + k]);
            }
            assert!((f64::from(s[i * 3 + j]) - want).abs() < 1e-4 * want.abs().max(1.0));
        }
        let row = &p[i * 3..i * 3 + 3];
        assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-5);
    }
    // the mean image is the per-feature average of the training rows
    let m0: f64 =
        (0..ds.len()).map(|i| f64::from(ds.pixels().expect("images").row(i)[0])).sum::<f64>()
            / ds.len() as f64;
    assert!((f64::from(model.mean_image()[0]) - m0).abs() < 1e-4);
    // templates: one per class, the image's size, W's extremes mapped to 0 and 255, and
    // class c's template brightest on its own block of features
    let t = model.templates();
    assert_eq!(t.len(), 3);
    assert!(t.iter().all(|img| img.len() == 12));
    assert!(t.iter().flatten().any(|&v| v == 0) && t.iter().flatten().any(|&v| v == 255));
    for (c, img) in t.iter().enumerate() {
        let own: u32 = img[c * 4..c * 4 + 4].iter().map(|&v| u32::from(v)).sum();
        let other: u32 = img.iter().map(|&v| u32::from(v)).sum::<u32>() - own;
        assert!(own * 2 > other, "class {c}: {img:?}");
    }
}

#[test]
fn same_seed_same_model_whatever_the_thread_count() {
    // big enough (200 x 10 x 3,072) that the products take their parallel path
    let (n, d, c) = (600, 3072, 10);
    let mut g = SplitMix64::new(42);
    let px: Vec<u8> = (0..n * d).map(|_| g.below(256) as u8).collect();
    let labels: Vec<u32> = (0..n as u32).map(|i| i % c as u32).collect();
    let names: Vec<String> = (0..c).map(|i| format!("c{i}")).collect();
    let ds =
        Dataset::new(px, labels, ImageShape::new(3, 32, 32), ClassNames::new(names)).expect("ok");
    let fit_with = |loss, reg, momentum, threads| {
        let params = Linear::new(loss).regularization(reg).sgd(Sgd {
            stop: Stop::Iterations(20),
            seed: 9,
            momentum,
            ..Sgd::default()
        });
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().expect("pool");
        pool.install(|| params.fit(&ds.all()).expect("fits"))
    };
    // each iteration is split into two fixed halves of the 3,072 features: one thread runs
    // both in turn, two or more run one each (the SVM's backward in exact integers with
    // AVX-512 VNNI, the others in f32)
    for (loss, reg, momentum) in [
        (Loss::Softmax, Reg::L2(1e3), 0.0),
        (Loss::Svm { margin: 1.0 }, Reg::L2(1e3), 0.0),
        (Loss::SquaredHinge { margin: 1.0 }, Reg::ElasticNet { lambda: 10.0, beta: 0.5 }, 0.9),
        (Loss::Softmax, Reg::L1(5.0), 0.5),
    ] {
        let a = fit_with(loss, reg, momentum, 1);
        for threads in [2, 3] {
            let b = fit_with(loss, reg, momentum, threads);
            assert_eq!(a.weights(), b.weights(), "{loss:?} {reg:?} {threads} threads");
            assert_eq!(a.bias(), b.bias(), "{loss:?} {reg:?} {threads} threads");
            assert_eq!(a.report().loss, b.report().loss, "{loss:?} {reg:?} {threads} threads");
        }
    }
    // the explicit setting: two threads from a one-thread pool, one from a three-thread pool
    let explicit = |threads, pool_threads| {
        let params = Linear::new(Loss::Softmax)
            .regularization(Reg::L2(1e3))
            .sgd(Sgd { stop: Stop::Iterations(20), seed: 9, ..Sgd::default() })
            .threads(threads);
        let pool = rayon::ThreadPoolBuilder::new().num_threads(pool_threads).build().expect("pool");
        pool.install(|| params.fit(&ds.all()).expect("fits"))
    };
    let a = fit_with(Loss::Softmax, Reg::L2(1e3), 0.0, 1);
    assert_eq!(explicit(2, 1).weights(), a.weights());
    assert_eq!(explicit(1, 3).weights(), a.weights());
    let a = fit_with(Loss::Svm { margin: 1.0 }, Reg::L2(1e3), 0.0, 1);
    let other = Linear::new(Loss::Svm { margin: 1.0 })
        .regularization(Reg::L2(1e3))
        .sgd(Sgd { stop: Stop::Iterations(20), seed: 10, ..Sgd::default() })
        .fit(&ds.all())
        .expect("fits");
    assert_ne!(a.weights(), other.weights());
}

#[test]
fn divergence_on_two_threads_stops_both_with_the_one_thread_error() {
    // 256 features: two feature halves, so threads(2) runs the pair; a learning rate that
    // blows up must end both threads (no hang) with the error a single thread reports
    let (n, d, c) = (60, 256, 3);
    let mut g = SplitMix64::new(8);
    let px: Vec<u8> = (0..n * d).map(|_| g.below(256) as u8).collect();
    let labels: Vec<u32> = (0..n as u32).map(|i| i % c as u32).collect();
    let ds = Dataset::new(px, labels, ImageShape::new(1, 16, 16), ClassNames::new(["a", "b", "c"]))
        .expect("valid");
    for (loss, reg) in [
        (Loss::Svm { margin: 1.0 }, Reg::L2(10.0)),
        (Loss::Softmax, Reg::L2(10.0)),
        (Loss::SquaredHinge { margin: 1.0 }, Reg::L1(1.0)),
    ] {
        let fit = |threads| {
            Linear::new(loss)
                .regularization(reg)
                .sgd(Sgd { learning_rate: 1e3, batch_size: 20, ..Sgd::default() })
                .threads(threads)
                .fit(&ds.all())
        };
        let (one, two) = (fit(1), fit(2));
        assert!(matches!(one, Err(LinearError::Diverged { .. })), "{loss:?}: {one:?}");
        assert_eq!(format!("{one:?}"), format!("{two:?}"), "{loss:?}");
    }
}

/// Issue 17 item 6: a stop rule of billions of iterations or epochs used to allocate its
/// loss curve up front (`capacity overflow` panic, or an abort on a failed 40 GB allocation);
/// it is a typed error naming the bound, before any allocation.
#[test]
fn stop_rules_beyond_the_iteration_bound_are_typed_errors() {
    use imgclass_linear::MAX_ITERATIONS;
    let ds = separable(3, 1);
    let fit = |stop| {
        Linear::new(Loss::Softmax).sgd(Sgd { batch_size: 2, stop, ..Sgd::default() }).fit(&ds.all())
    };
    for stop in [
        Stop::Iterations(10_000_000_000),
        Stop::Iterations(usize::MAX),
        Stop::Iterations(MAX_ITERATIONS + 1),
        Stop::Epochs(usize::MAX),
        // 9 rows in batches of 2: 5 iterations per epoch
        Stop::Epochs(MAX_ITERATIONS / 5 + 1),
    ] {
        let e = fit(stop).expect_err("beyond the bound");
        assert_eq!(
            e,
            LinearError::TooManyIterations { stop, n_train: 9, max: MAX_ITERATIONS },
            "{stop}"
        );
        assert!(e.to_string().contains("more than the 10000000 sgd iterations allowed"), "{e}");
    }
    // the bound itself in epochs is accepted up to the check (a short run proves the path)
    assert!(fit(Stop::Epochs(2)).is_ok());
    assert_eq!(fit(Stop::Epochs(2)).expect("fits").report().iterations, 10);
}

/// The same rows as f32 features: the general path (f32 rows, `sgemm`) must train the same
/// model as the u8 path (fused integer kernels), which the gradient checks cover: same
/// initialisation, minibatch order, schedule, momentum and regularisation, so the weights
/// agree to rounding (the u8 forward pass quantises `W'` to 24 bits where VNNI exists).
#[test]
fn features_train_the_same_model_as_the_same_pixels() {
    let ds = separable(40, 11);
    let px = ds.pixels().expect("images");
    let feats =
        Dataset::from_features(px.to_f32(), ds.dim(), ds.labels().to_vec(), ds.classes().clone())
            .expect("valid features");
    for (loss, reg, momentum) in [
        (Loss::Svm { margin: 1.0 }, Reg::L2(1e-3), 0.0),
        (Loss::Softmax, Reg::ElasticNet { lambda: 1e-3, beta: 0.3 }, 0.9),
        (Loss::SquaredHinge { margin: 1.0 }, Reg::None, 0.5),
    ] {
        let params = Linear::new(loss).regularization(reg).input_scale(0.01).sgd(Sgd {
            batch_size: 16,
            learning_rate: 1e-2,
            momentum,
            decay: 0.9,
            stop: Stop::Iterations(60),
            seed: 5,
        });
        let a = params.fit(&ds.all()).expect("pixels fit");
        let b = params.fit(&feats.all()).expect("features fit");
        let scale = a.weights().iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-6);
        for (i, (x, y)) in a.weights().iter().zip(b.weights()).enumerate() {
            assert!((x - y).abs() <= 1e-3 * scale, "{loss:?} w[{i}]: {x} vs {y}");
        }
        for (x, y) in a.bias().iter().zip(b.bias()) {
            assert!((x - y).abs() <= 1e-3 * scale.max(1.0), "{loss:?} b: {x} vs {y}");
        }
        assert_eq!(a.mean_image(), b.mean_image());
        for (x, y) in a.report().loss.iter().zip(&b.report().loss) {
            assert!((x - y).abs() <= 1e-3 * x.abs().max(1.0), "{loss:?} loss {x} vs {y}");
        }
        assert_eq!(b.report().iterations, 60);
        let sa = a.scores(&ds.all()).expect("scores");
        let sb = b.scores(&feats.all()).expect("scores");
        for (x, y) in sa.iter().zip(&sb) {
            assert!((x - y).abs() <= 1e-2 * x.abs().max(1.0), "{loss:?} score {x} vs {y}");
        }
        assert_eq!(a.predict(&ds.all()).expect("p"), b.predict(&feats.all()).expect("p"));
        // a model trained on features refuses images of the same length, and vice versa
        let e = b.predict(&ds.all()).unwrap_err();
        assert!(e.to_string().contains("expected 12 features, got 3x2x2 images"), "{e}");
        assert!(a.predict(&feats.all()).is_err());
    }
}

/// Features need not look like pixels: negative, fractional and large values separate too,
/// and a diverging run on features is the same typed error as on pixels.
#[test]
fn arbitrary_feature_values_separate_and_divergence_is_typed() {
    let mut g = SplitMix64::new(2);
    let (n, d) = (90usize, 5usize);
    let mut v = Vec::with_capacity(n * d);
    let mut labels = Vec::with_capacity(n);
    for i in 0..n {
        let y = i % 3;
        for f in 0..d {
            let centre = if f == y { 1e3 } else { -250.5 };
            v.push(centre + 40.0 * g.next_normal() as f32);
        }
        labels.push(y as u32);
    }
    let ds = Dataset::from_features(v, d, labels, ClassNames::new(["a", "b", "c"])).expect("valid");
    let fit = |lr, l2| {
        Linear::new(Loss::Softmax)
            .regularization(Reg::L2(l2))
            .input_scale(1e-3)
            .sgd(Sgd {
                batch_size: 10,
                learning_rate: lr,
                stop: Stop::Epochs(20),
                seed: 1,
                ..Sgd::default()
            })
            .fit(&ds.all())
    };
    let model = fit(0.5, 0.0).expect("fits");
    let pred = model.predict(&ds.all()).expect("predicts");
    assert_eq!(accuracy(&pred, ds.labels()), 1.0);
    assert!(matches!(fit(1e12, 1.0), Err(LinearError::Diverged { .. })));
}

// ---- the full-batch solver ----

const SMOOTH: [Loss; 3] =
    [Loss::Softmax, Loss::SquaredHinge { margin: 1.0 }, Loss::OvaSquaredHinge { margin: 1.0 }];

/// Overlapping Gaussian classes in `d` f32 features (class `y` shifted by 1.5 along feature
/// `y`), so no loss reaches zero and the minimum is interior.
fn gaussian(n: usize, d: usize, c: usize, seed: u64) -> Dataset {
    let mut g = SplitMix64::new(seed);
    let (mut x, mut labels) = (vec![], vec![]);
    for i in 0..n {
        let y = (i * 7 + 1) % c;
        for k in 0..d {
            let shift = if k % c == y { 1.5 } else { 0.0 };
            x.push((g.next_normal() + shift + 3.0) as f32);
        }
        labels.push(y as u32);
    }
    let names: Vec<String> = (0..c).map(|j| format!("c{j}")).collect();
    Dataset::from_features(x, d, labels, ClassNames::new(names)).expect("valid")
}

/// The objective `mean_i L_i(W x̃_i + b) + λ Σ W²` and its gradient, naively in f64 with the
/// mean computed here: the oracle of the solver tests.
struct Naive {
    x: Vec<f64>,
    labels: Vec<u32>,
    n: usize,
    d: usize,
    c: usize,
    loss: Loss,
    lambda: f64,
}

impl Naive {
    fn new(train: &Subset, loss: Loss, lambda: f64) -> Self {
        let (n, d, c) = (train.len(), train.dim(), train.n_classes());
        let raw: Vec<f64> = match train.values() {
            imgclass_core::Values::Features(f) => {
                f.iter().flat_map(|r| r.iter().map(|&v| f64::from(v))).collect()
            }
            imgclass_core::Values::Pixels(p) => {
                p.iter().flat_map(|r| r.iter().map(|&v| f64::from(v))).collect()
            }
        };
        let mut mean = vec![0.0; d];
        for r in raw.chunks_exact(d) {
            mean.iter_mut().zip(r).for_each(|(m, v)| *m += v / n as f64);
        }
        let x = raw.chunks_exact(d).flat_map(|r| r.iter().zip(&mean).map(|(v, m)| v - m)).collect();
        Self { x, labels: train.labels(), n, d, c, loss, lambda }
    }

    fn value_grad(&self, theta: &[f64]) -> (f64, Vec<f64>) {
        let (n, d, c) = (self.n, self.d, self.c);
        let (w, b) = theta.split_at(c * d);
        let mut s = vec![0.0; n * c];
        for i in 0..n {
            for j in 0..c {
                s[i * c + j] = b[j] + (0..d).map(|k| w[j * d + k] * self.x[i * d + k]).sum::<f64>();
            }
        }
        let out = self.loss.loss_grad(&s, c, &self.labels).expect("finite");
        let mut g = vec![0.0; theta.len()];
        for i in 0..n {
            for j in 0..c {
                let ds = out.grad[i * c + j];
                for k in 0..d {
                    g[j * d + k] += ds * self.x[i * d + k];
                }
                g[c * d + j] += ds;
            }
        }
        let mut reg = 0.0;
        for (gk, &wk) in g[..c * d].iter_mut().zip(w) {
            reg += self.lambda * wk * wk;
            *gk += 2.0 * self.lambda * wk;
        }
        (out.loss + reg, g)
    }

    /// Plain gradient descent with Armijo backtracking from zero, until the largest gradient
    /// component is below 1e-8: the reference minimum.
    fn descend(&self) -> f64 {
        let mut theta = vec![0.0; self.c * (self.d + 1)];
        let (mut f, mut g) = self.value_grad(&theta);
        let mut step = 1.0;
        for _ in 0..2_000_000 {
            let gmax = g.iter().fold(0.0f64, |m, v| m.max(v.abs()));
            if gmax < 1e-8 {
                return f;
            }
            let gg: f64 = g.iter().map(|v| v * v).sum();
            step *= 2.0;
            loop {
                let t: Vec<f64> = theta.iter().zip(&g).map(|(x, gi)| x - step * gi).collect();
                let (ft, gt) = self.value_grad(&t);
                if ft <= f - 0.5 * step * gg {
                    (theta, f, g) = (t, ft, gt);
                    break;
                }
                step *= 0.5;
            }
        }
        panic!("gradient descent did not converge");
    }
}

fn lbfgs(tolerance: f64) -> Solver {
    Solver::Lbfgs(Lbfgs { tolerance, ..Lbfgs::default() })
}

#[test]
fn lbfgs_reaches_the_minimum_of_plain_f64_gradient_descent() {
    let ds = gaussian(150, 6, 3, 11);
    let train = ds.all();
    for loss in SMOOTH {
        for lambda in [1e-2, 1e-4] {
            let naive = Naive::new(&train, loss, lambda);
            let want = naive.descend();
            let m = Linear::new(loss)
                .regularization(Reg::L2(lambda))
                .solver(lbfgs(1e-7))
                .fit(&train)
                .expect("fits");
            let r = m.report();
            assert_eq!(r.solver, "lbfgs");
            assert_eq!(r.stop_reason, Some(StopReason::GradientTolerance), "{loss:?} {lambda}");
            assert!(r.gradient_norm.expect("lbfgs") <= 1e-7);
            // the returned weights scored by the oracle, not by the solver
            let theta: Vec<f64> =
                m.weights().iter().chain(m.bias()).map(|&v| f64::from(v)).collect();
            let (got, _) = naive.value_grad(&theta);
            assert!((got - want).abs() <= 1e-6 * want, "{loss:?} {lambda}: {got} vs {want}");
            let own = r.objective.expect("lbfgs");
            assert!((own - want).abs() <= 1e-6 * want, "{loss:?} {lambda}: {own} vs {want}");
            // f64 from the start reaches the same minimum (the default starts on f32 products)
            let f64_only = Lbfgs { tolerance: 1e-7, mixed_precision: false, ..Lbfgs::default() };
            let d = Linear::new(loss)
                .regularization(Reg::L2(lambda))
                .solver(Solver::Lbfgs(f64_only))
                .fit(&train)
                .expect("fits");
            let own64 = d.report().objective.expect("lbfgs");
            assert!((own64 - want).abs() <= 1e-6 * want, "{loss:?} {lambda}: {own64} vs {want}");
            // one entry per iteration, decreasing, data + reg = total
            assert_eq!(r.loss.len(), r.iterations);
            assert!(r.iterations >= 3 && r.evaluations >= r.iterations);
            assert!(r.loss[r.iterations - 1] < r.loss[0], "{loss:?} {lambda}");
            for ((t, d), g) in r.loss.iter().zip(&r.data_loss).zip(&r.reg_loss) {
                assert!((t - (d + g)).abs() <= 1e-6 * t.abs().max(1.0));
            }
        }
    }
}

#[test]
fn lbfgs_without_regularisation_or_bias_matches_the_oracle_too() {
    // no penalty: the minimum is finite because the classes overlap; gradient descent is too
    // slow to serve as the reference here, so the oracle checks first-order optimality
    let ds = gaussian(120, 4, 3, 5);
    let train = ds.all();
    for loss in SMOOTH {
        let naive = Naive::new(&train, loss, 0.0);
        let tight = Lbfgs { tolerance: 1e-8, objective_tolerance: 0.0, ..Lbfgs::default() };
        let m = Linear::new(loss).solver(Solver::Lbfgs(tight)).fit(&train).expect("fits");
        assert_eq!(m.report().stop_reason, Some(StopReason::GradientTolerance), "{loss:?}");
        let theta: Vec<f64> = m.weights().iter().chain(m.bias()).map(|&v| f64::from(v)).collect();
        let (_, g) = naive.value_grad(&theta);
        // the oracle's gradient at the f32-rounded weights: zero up to that rounding
        let gmax = g.iter().fold(0.0f64, |a, v| a.max(v.abs()));
        assert!(gmax < 1e-5, "{loss:?}: {gmax}");
        // fit_bias(false): b stays 0
        let nb = Linear::new(loss).fit_bias(false).solver(lbfgs(1e-6)).fit(&train).expect("fits");
        assert!(nb.bias().iter().all(|&b| b == 0.0));
        assert!(nb.report().objective >= m.report().objective);
    }
}

#[test]
fn lbfgs_stop_reasons() {
    let train = gaussian(90, 5, 3, 2).all();
    let fit = |l: Lbfgs| {
        Linear::new(Loss::Softmax)
            .regularization(Reg::L2(1e-3))
            .solver(Solver::Lbfgs(l))
            .fit(&train)
    };
    // a budget of 2 iterations: two points on the curve
    let m = fit(Lbfgs { max_iterations: 2, tolerance: 0.0, ..Lbfgs::default() }).expect("fits");
    assert_eq!(m.report().stop_reason, Some(StopReason::MaxIterations));
    assert_eq!((m.report().iterations, m.report().loss.len()), (2, 2));
    // at W = 0 the softmax gradient is below 10: no iteration at all, zero weights
    let m = fit(Lbfgs { tolerance: 10.0, ..Lbfgs::default() }).expect("fits");
    assert_eq!(m.report().stop_reason, Some(StopReason::GradientTolerance));
    assert_eq!(m.report().iterations, 0);
    assert!(m.weights().iter().all(|&w| w == 0.0));
    assert!((m.report().objective.expect("lbfgs") - 3f64.ln()).abs() < 1e-12);
    // a loose objective tolerance stops before the gradient one
    let l = Lbfgs { tolerance: 0.0, objective_tolerance: 1e-3, ..Lbfgs::default() };
    let m = fit(l).expect("fits");
    assert_eq!(m.report().stop_reason, Some(StopReason::ObjectiveTolerance));
    let k = m.report().loss.len();
    let (a, b) = (f64::from(m.report().loss[k - 2]), f64::from(m.report().loss[k - 1]));
    assert!(a - b <= 1.001e-3 * a, "{a} -> {b}");
    // no tolerance at all: it runs until the objective is flat to rounding, far short of
    // the budget
    let l = Lbfgs {
        tolerance: 0.0,
        objective_tolerance: 0.0,
        max_iterations: 5000,
        memory: 5,
        ..Lbfgs::default()
    };
    let m = fit(l).expect("fits");
    let r = m.report();
    assert!(
        matches!(
            r.stop_reason,
            Some(StopReason::LineSearchFailed | StopReason::ObjectiveTolerance)
        ),
        "{r:?}"
    );
    assert!(r.iterations < 5000 && r.gradient_norm.expect("lbfgs") < 1e-6, "{r:?}");
}

#[test]
fn lbfgs_refuses_the_hinge_and_l1_and_bad_settings_with_typed_errors() {
    let train = gaussian(30, 3, 3, 1).all();
    let svm = Linear::new(Loss::Svm { margin: 1.0 }).solver(lbfgs(1e-5)).fit(&train);
    assert_eq!(svm, Err(LinearError::NonSmoothLoss { loss: "svm" }));
    let msg = svm.expect_err("refused").to_string();
    assert!(msg.contains("use sgd, squared_hinge or ova_squared_hinge"), "{msg}");
    for (reg, name) in
        [(Reg::L1(1e-3), "l1"), (Reg::ElasticNet { lambda: 1e-3, beta: 0.5 }, "elastic net")]
    {
        let r = Linear::new(Loss::Softmax).regularization(reg).solver(lbfgs(1e-5)).fit(&train);
        assert_eq!(r, Err(LinearError::UnsupportedRegularizer { reg: name }));
    }
    let base = Lbfgs::default();
    for (l, want) in [
        (Lbfgs { tolerance: f64::NAN, ..base }, "tolerance"),
        (Lbfgs { tolerance: -1.0, ..base }, "tolerance"),
        (Lbfgs { objective_tolerance: f64::INFINITY, ..base }, "objective_tolerance"),
        (Lbfgs { memory: 0, ..base }, "memory"),
        (Lbfgs { max_iterations: 0, ..base }, "max_iterations"),
    ] {
        match Linear::new(Loss::Softmax).solver(Solver::Lbfgs(l)).fit(&train) {
            Err(LinearError::InvalidParameter { name, .. }) => assert_eq!(name, want),
            other => panic!("{want}: expected InvalidParameter, got {other:?}"),
        }
    }
    let nan = Linear::new(Loss::Softmax).regularization(Reg::L2(f64::NAN)).solver(lbfgs(1e-5));
    assert!(matches!(
        nan.fit(&train),
        Err(LinearError::InvalidParameter { name: "regularization", .. })
    ));
    let margin = Linear::new(Loss::OvaSquaredHinge { margin: f64::NAN }).solver(lbfgs(1e-5));
    assert!(matches!(
        margin.fit(&train),
        Err(LinearError::InvalidParameter { name: "margin", .. })
    ));
}

#[test]
fn lbfgs_has_the_same_bits_on_one_and_two_threads() {
    // 1,000 rows: four blocks of 256, summed in block order whatever runs them
    let feats = gaussian(1000, 40, 4, 9);
    let pixels = separable(340, 4);
    for (ds, loss) in [
        (&feats, Loss::Softmax),
        (&feats, Loss::OvaSquaredHinge { margin: 1.0 }),
        (&pixels, Loss::SquaredHinge { margin: 1.0 }),
    ] {
        let fit = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().expect("pool");
            pool.install(|| {
                Linear::new(loss)
                    .regularization(Reg::L2(1e-3))
                    .input_scale(if ds.pixels().is_some() { 1.0 / 64.0 } else { 1.0 })
                    .solver(Solver::Lbfgs(Lbfgs { max_iterations: 40, ..Lbfgs::default() }))
                    .fit(&ds.all())
                    .expect("fits")
            })
        };
        let (a, b) = (fit(1), fit(2));
        assert!(a.report().iterations > 5, "{loss:?}");
        assert_eq!(a.weights(), b.weights(), "{loss:?}");
        assert_eq!(a.bias(), b.bias(), "{loss:?}");
        assert_eq!(a.report().loss, b.report().loss, "{loss:?}");
        assert_eq!(a.report().objective, b.report().objective, "{loss:?}");
    }
}

/// Pixels (whose f32 phase runs on linalg's u8 kernels) and the same values as f32 features
/// (the general product) reach the same optimum: every stop is judged in f64 on the same
/// `x̃`, so the objectives agree to the tolerance's order and the weights closely.
#[test]
fn lbfgs_on_pixels_and_on_the_same_values_as_features_reaches_the_same_optimum() {
    let px = separable(100, 8);
    let feats = Dataset::from_features(
        px.pixels().expect("pixels").to_f32(),
        px.dim(),
        px.labels().to_vec(),
        px.classes().clone(),
    )
    .expect("valid");
    for loss in SMOOTH {
        let p = Linear::new(loss)
            .regularization(Reg::L2(1e-2))
            .input_scale(1.0 / 255.0)
            .solver(lbfgs(1e-6));
        let (a, b) = (p.fit(&px.all()).expect("fits"), p.fit(&feats.all()).expect("fits"));
        let (fa, fb) = (a.report().objective.expect("F"), b.report().objective.expect("F"));
        assert!((fa - fb).abs() <= 1e-9 * fa.abs().max(1.0), "{loss:?}: {fa} vs {fb}");
        let top = b.weights().iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let worst =
            a.weights().iter().zip(b.weights()).fold(0.0f32, |m, (x, y)| m.max((x - y).abs()));
        assert!(worst <= 1e-3 * top, "{loss:?}: weights differ by {worst} of {top}");
        assert_eq!(a.predict(&px.all()).expect("predicts"), px.labels(), "{loss:?}");
        assert_eq!(b.predict(&feats.all()).expect("predicts"), px.labels(), "{loss:?}");
    }
}

/// Dual coordinate descent solves the one-vs-all L2-SVM: without a bias (where both solvers
/// minimise exactly the same objective) it reaches L-BFGS's optimum, objective within 1e-6
/// relative and weights within 1e-3 of the largest; a margin m gives m times the margin-1
/// weights; the same bits on one thread or two; anything else is a typed refusal.
#[test]
fn dcd_reaches_the_lbfgs_optimum_of_the_l2_svm() {
    use imgclass_linear::Dcd;
    let ds = gaussian(400, 12, 4, 21);
    let train = ds.all();
    let loss = Loss::OvaSquaredHinge { margin: 1.0 };
    let reg = Reg::L2(1e-2);
    let tight = Lbfgs { tolerance: 1e-9, objective_tolerance: 0.0, ..Lbfgs::default() };
    let reference = Linear::new(loss)
        .regularization(reg)
        .fit_bias(false)
        .solver(Solver::Lbfgs(tight))
        .fit(&train)
        .expect("fits");
    let dcd = Dcd { tolerance: 1e-6, max_epochs: 10_000, seed: 4 };
    let fit = |loss: Loss| {
        Linear::new(loss).regularization(reg).fit_bias(false).solver(Solver::Dcd(dcd)).fit(&train)
    };
    let m = fit(loss).expect("fits");
    assert_eq!(m.report().stop_reason, Some(StopReason::ProjectedGradient));
    let (a, b) = (
        reference.report().objective.expect("objective"),
        m.report().objective.expect("objective"),
    );
    assert!((a - b).abs() <= 1e-6 * a, "lbfgs {a}, dcd {b}");
    // the per-epoch record is the dual objective: it never falls and stays below the optimum
    let dual = &m.report().loss;
    assert!(dual.windows(2).all(|p| p[1] >= p[0] - 1e-6 * a as f32), "{dual:?}");
    assert!(f64::from(*dual.last().expect("epochs")) <= a * (1.0 + 1e-6));
    let wmax = reference.weights().iter().fold(0.0f32, |x, v| x.max(v.abs()));
    for (x, y) in reference.weights().iter().zip(m.weights()) {
        assert!((x - y).abs() <= 1e-3 * wmax, "{x} vs {y}");
    }
    // the margin scales the solution
    let m2 = fit(Loss::OvaSquaredHinge { margin: 2.0 }).expect("fits");
    for (x, y) in m.weights().iter().zip(m2.weights()) {
        assert!((2.0 * x - y).abs() <= 1e-5 * wmax.max(1.0), "{x} vs {y}");
    }
    // with a (penalised) bias: predicts as well as L-BFGS on this data
    let with_bias =
        Linear::new(loss).regularization(reg).solver(Solver::Dcd(Dcd::default())).fit(&train);
    let pb = with_bias.expect("fits").predict(&train).expect("p");
    let pr = reference.predict(&train).expect("p");
    let agree = pb.iter().zip(&pr).filter(|(x, y)| x == y).count();
    assert!(agree >= 390, "{agree} of 400");
    for threads in [1, 2] {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().expect("pool");
        let again = pool.install(|| fit(loss)).expect("fits");
        assert_eq!(again.weights(), m.weights(), "{threads} threads");
    }
    for (loss, reg) in [
        (Loss::Softmax, Reg::L2(1e-2)),
        (Loss::SquaredHinge { margin: 1.0 }, Reg::L2(1e-2)),
        (loss, Reg::None),
        (loss, Reg::L1(1e-2)),
    ] {
        let e = Linear::new(loss).regularization(reg).solver(Solver::Dcd(dcd)).fit(&train);
        let e = e.expect_err("refused").to_string();
        assert!(e.contains("dcd and newton solvers") && e.contains("use lbfgs or sgd"), "{e}");
    }
}

/// The finite Newton solver reaches the optimum of the one-vs-all L2-SVM: without a bias,
/// L-BFGS's (objective within 1e-9 relative, weights within 1e-6 of the largest), from `ŵ = 0`
/// or from a few dual CD epochs; with the penalised bias, tight dual CD's (the same problem);
/// the same bits on one thread or three; a gradient tolerance of its own; typed refusals.
#[test]
fn newton_reaches_the_optimum_of_the_l2_svm() {
    use imgclass_linear::{Dcd, Newton};
    let ds = gaussian(600, 15, 5, 33);
    let train = ds.all();
    let loss = Loss::OvaSquaredHinge { margin: 1.0 };
    let reg = Reg::L2(3e-3);
    let tight = Lbfgs { tolerance: 1e-10, objective_tolerance: 0.0, ..Lbfgs::default() };
    let fit = |solver: Solver, bias: bool| {
        Linear::new(loss).regularization(reg).fit_bias(bias).solver(solver).fit(&train)
    };
    let reference = fit(Solver::Lbfgs(tight), false).expect("fits");
    let f_ref = reference.report().objective.expect("F");
    let wmax = reference.weights().iter().fold(0.0f32, |x, v| x.max(v.abs()));
    for warm_epochs in [0, 3] {
        let nt = Newton { warm_epochs, tolerance: 1e-9, ..Newton::default() };
        let m = fit(Solver::Newton(nt), false).expect("fits");
        assert_eq!(m.report().solver, "newton");
        assert_eq!(
            m.report().stop_reason,
            Some(StopReason::GradientTolerance),
            "warm {warm_epochs}"
        );
        assert!(m.report().gradient_norm.expect("g") <= 1e-9);
        let f = m.report().objective.expect("F");
        assert!((f - f_ref).abs() <= 1e-9 * f_ref, "warm {warm_epochs}: newton {f}, lbfgs {f_ref}");
        for (x, y) in reference.weights().iter().zip(m.weights()) {
            assert!((x - y).abs() <= 1e-6 * wmax, "warm {warm_epochs}: {x} vs {y}");
        }
    }
    // with the bias penalised as a weight on a constant 1: dual CD's problem
    let dcd = Dcd { tolerance: 1e-7, max_epochs: 20_000, seed: 2 };
    let by_dcd = fit(Solver::Dcd(dcd), true).expect("fits");
    let nt = Newton { tolerance: 1e-9, ..Newton::default() };
    let by_newton = fit(Solver::Newton(nt), true).expect("fits");
    let (a, b) = (by_dcd.report().objective.expect("F"), by_newton.report().objective.expect("F"));
    assert!(b <= a * (1.0 + 1e-9) && (a - b).abs() <= 1e-6 * a, "dcd {a}, newton {b}");
    for (x, y) in by_dcd.bias().iter().zip(by_newton.bias()) {
        assert!((x - y).abs() <= 1e-3 * wmax, "bias {x} vs {y}");
    }
    for threads in [1, 3] {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().expect("pool");
        let again = pool.install(|| fit(Solver::Newton(nt), true)).expect("fits");
        assert_eq!(again.weights(), by_newton.weights(), "{threads} threads");
        assert_eq!(again.bias(), by_newton.bias(), "{threads} threads");
    }
    // a loose tolerance stops earlier, at a worse but still near-optimal point
    let loose = fit(Solver::Newton(Newton { tolerance: 1e-2, ..nt }), true).expect("fits");
    assert!(loose.report().gradient_norm.expect("g") <= 1e-2);
    for (loss, reg) in [(Loss::Softmax, reg), (loss, Reg::None), (loss, Reg::L1(1e-2))] {
        let e = Linear::new(loss).regularization(reg).solver(Solver::Newton(nt)).fit(&train);
        let e = e.expect_err("refused").to_string();
        assert!(e.contains("dcd and newton solvers") && e.contains("use lbfgs or sgd"), "{e}");
    }
    let zero = Newton { max_iterations: 0, ..nt };
    let e = Linear::new(loss).regularization(reg).solver(Solver::Newton(zero)).fit(&train);
    assert!(
        matches!(e, Err(LinearError::InvalidParameter { name: "max_iterations", .. })),
        "{e:?}"
    );
}
