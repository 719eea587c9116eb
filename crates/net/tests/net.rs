//! The lecture's sanity checks and the network's contracts: initial loss near ln(10) with
//! small weights, a net that overfits 100 images, the same bits on one thread or two, on
//! pixels or on the same values as features, typed errors, early stopping.

use imgclass_core::rng::SplitMix64;
use imgclass_core::{ClassNames, Dataset, Fit, ImageShape, Predict};
use imgclass_net::{Init, Loss, Net, NetError, NetSgd};

/// `n` random 3x8x8 images with random labels among 10 classes (nothing to learn but the
/// images themselves).
fn noise(n: usize, seed: u64) -> Dataset {
    let mut g = SplitMix64::new(seed);
    let shape = ImageShape::new(3, 8, 8);
    let px = (0..n * shape.len()).map(|_| g.below(256) as u8).collect();
    let labels = (0..n).map(|_| g.below(10) as u32).collect();
    Dataset::new(px, labels, shape, ClassNames::new((0..10).map(|i| format!("c{i}"))))
        .expect("valid")
}

fn accuracy(m: &imgclass_net::NetModel, ds: &Dataset) -> f64 {
    let p = m.predict(&ds.all()).expect("predicts");
    p.iter().zip(ds.labels()).filter(|(a, b)| a == b).count() as f64 / ds.len() as f64
}

#[test]
fn initial_loss_is_near_ln_10_with_small_weights() {
    let ds = noise(200, 1);
    let m = Net::new(50)
        .init(Init::Gaussian(1e-4))
        .input_scale(1.0 / 255.0)
        .sgd(NetSgd { batch_size: 200, epochs: 1, ..NetSgd::default() })
        .fit(&ds.all())
        .expect("fits");
    let first = f64::from(m.report().loss[0]);
    assert!((first - 10f64.ln()).abs() < 1e-3, "first loss {first}");
    // with the SVM loss and tiny weights every margin is violated by 1: loss c - 1 = 9
    let m = Net::new(50)
        .loss(Loss::Svm { margin: 1.0 })
        .init(Init::Gaussian(1e-4))
        .input_scale(1.0 / 255.0)
        .sgd(NetSgd { batch_size: 200, epochs: 1, ..NetSgd::default() })
        .fit(&ds.all())
        .expect("fits");
    assert!((f64::from(m.report().loss[0]) - 9.0).abs() < 1e-2);
}

#[test]
fn a_net_overfits_100_images() {
    let ds = noise(100, 2);
    let m = Net::new(200)
        .input_scale(1.0 / 64.0)
        .sgd(NetSgd {
            batch_size: 50,
            learning_rate: 5e-3,
            epochs: 150,
            decay: 1.0,
            ..NetSgd::default()
        })
        .fit(&ds.all())
        .expect("fits");
    assert_eq!(
        accuracy(&m, &ds),
        1.0,
        "loss went {} -> {:?}",
        m.report().loss[0],
        m.report().loss.last()
    );
    assert_eq!(m.report().train_accuracy.last(), Some(&1.0));
    // a linear model cannot fit random labels of 100 points in 192 dimensions? it can; but a
    // net of 1 hidden unit cannot: the hidden layer is what carries it
    let tiny = Net::new(1)
        .input_scale(1.0 / 64.0)
        .sgd(NetSgd {
            batch_size: 50,
            learning_rate: 5e-3,
            epochs: 150,
            decay: 1.0,
            ..NetSgd::default()
        })
        .fit(&ds.all())
        .expect("fits");
    assert!(accuracy(&tiny, &ds) < 0.6);
}

#[test]
fn same_bits_on_one_thread_or_two_and_on_pixels_or_features() {
    let ds = noise(150, 3);
    let feats = Dataset::from_features(
        ds.pixels().expect("images").to_f32(),
        ds.dim(),
        ds.labels().to_vec(),
        ds.classes().clone(),
    )
    .expect("valid");
    let params = Net::new(32)
        .regularization(1e-3)
        .dropout(0.3)
        .validation(0.2)
        .input_scale(1.0 / 128.0)
        .sgd(NetSgd {
            batch_size: 33,
            learning_rate: 1e-2,
            nesterov: true,
            epochs: 4,
            seed: 9,
            ..NetSgd::default()
        });
    let run = |threads: usize, ds: &Dataset| {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().expect("pool");
        pool.install(|| params.fit(&ds.all())).expect("fits")
    };
    let one = run(1, &ds);
    let two = run(2, &ds);
    assert_eq!(one.w1(), two.w1());
    assert_eq!(one.w2(), two.w2());
    assert_eq!(one.report().loss, two.report().loss);
    let f = run(2, &feats);
    assert_eq!(f.w1(), two.w1(), "pixels and the same values as features train the same bits");
    assert_eq!(f.report().val_accuracy, two.report().val_accuracy);
    assert_eq!(f.predict(&feats.all()).expect("p"), two.predict(&ds.all()).expect("p"));
    // a network on images refuses features of the same length
    assert!(matches!(two.predict(&feats.all()), Err(NetError::Shape(_))));
}

#[test]
fn divergence_and_bad_parameters_are_typed_errors() {
    let ds = noise(60, 4);
    let e = Net::new(20)
        .input_scale(1.0)
        .sgd(NetSgd { learning_rate: 1e8, batch_size: 20, epochs: 5, ..NetSgd::default() })
        .fit(&ds.all())
        .unwrap_err();
    assert!(matches!(e, NetError::Diverged { epoch: 0, .. }), "{e}");
    // the message counts from 1: the first epoch is "epoch 1"
    let NetError::Diverged { iteration, .. } = e else { unreachable!() };
    assert!(e.to_string().starts_with("training diverged in epoch 1 ("), "{e}");
    assert!(e.to_string().contains(&format!("(iteration {} overall)", iteration + 1)), "{e}");
    for (net, name) in [
        (Net::new(0), "hidden"),
        (Net::new(4).dropout(1.0), "dropout"),
        (Net::new(4).regularization(f64::NAN), "regularization"),
        (Net::new(4).validation(0.95), "validation"),
        (Net::new(4).sgd(NetSgd { epochs: 0, ..NetSgd::default() }), "epochs"),
        (Net::new(4).sgd(NetSgd { momentum: 1.0, ..NetSgd::default() }), "momentum"),
    ] {
        let e = net.fit(&ds.all()).unwrap_err();
        assert!(matches!(e, NetError::InvalidParameter { name: n, .. } if n == name), "{e}");
    }
}

#[test]
fn early_stopping_keeps_the_best_validation_epoch() {
    // two separable blobs: validation accuracy peaks early, then the run stops
    let mut g = SplitMix64::new(5);
    let (n, d) = (200usize, 6usize);
    let mut v = Vec::new();
    let mut labels = Vec::new();
    for i in 0..n {
        let y = i % 2;
        for j in 0..d {
            v.push(if j == y { 3.0 } else { 0.0 } + g.next_normal() as f32);
        }
        labels.push(y as u32);
    }
    let ds = Dataset::from_features(v, d, labels, ClassNames::new(["a", "b"])).expect("valid");
    let m = Net::new(16)
        .validation(0.25)
        .patience(3)
        .sgd(NetSgd { batch_size: 20, learning_rate: 1e-2, epochs: 200, ..NetSgd::default() })
        .fit(&ds.all())
        .expect("fits");
    let r = m.report();
    assert!(r.epochs < 200, "stopped early after {} epochs", r.epochs);
    assert_eq!(r.val_accuracy.len(), r.epochs);
    let best = r.val_accuracy.iter().copied().fold(0.0, f64::max);
    assert_eq!(r.val_accuracy[r.best_epoch], best);
    assert_eq!(r.epochs - 1 - r.best_epoch, 3, "stopped 3 epochs after the best");
    assert!(best > 0.95);
}

/// `keep_best(false)` records the validation curve but keeps the last epoch's weights: the
/// same run with the best epoch kept differs exactly when the best epoch is not the last.
#[test]
fn keep_best_false_keeps_the_last_epoch() {
    let mut g = SplitMix64::new(9);
    let (n, d) = (120usize, 5usize);
    let mut v = Vec::new();
    let mut labels = Vec::new();
    for i in 0..n {
        let y = i % 3;
        for j in 0..d {
            v.push(if j == y { 1.0 } else { 0.0 } + 1.5 * g.next_normal() as f32);
        }
        labels.push(y as u32);
    }
    let ds = Dataset::from_features(v, d, labels, ClassNames::new(["a", "b", "c"])).expect("ok");
    let net = Net::new(8).validation(0.3).sgd(NetSgd {
        batch_size: 10,
        learning_rate: 5e-2,
        epochs: 30,
        ..NetSgd::default()
    });
    let best = net.clone().fit(&ds.all()).expect("fits");
    let last = net.clone().keep_best(false).fit(&ds.all()).expect("fits");
    assert_eq!(last.report().val_accuracy, best.report().val_accuracy, "same curve");
    assert_eq!(last.report().best_epoch, 29, "the last epoch is the one kept");
    let b = best.report().best_epoch;
    assert!(b < 29, "this noisy problem peaks before the end (epoch {b})");
    assert_ne!(last.w1(), best.w1());
    // deterministic
    let again = net.keep_best(false).fit(&ds.all()).expect("fits");
    assert_eq!(again.w1(), last.w1());
}
