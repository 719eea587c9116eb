//! The `--dataset demo` data: ten classes of 3x32x32 images generated in code from a seed, so
//! the whole pipeline runs offline in seconds.
//!
//! ```text
//! x = clamp(round(B + T_c + n), 0, 255),   n ~ N(0, NOISE²) per pixel
//! B   : a smooth background shared by all classes (128 + low-frequency waves)
//! T_c : the class template, low-frequency waves scaled to RMS AMPLITUDE per channel
//! ```
//!
//! Two templates differ by about `AMPLITUDE · √(2·3072)` ≈ 1,176 in Euclidean norm, so the
//! nearest-template rule errs with probability about `Φ(−1176 / (2·NOISE))` ≈ Φ(−10.7) ≈ 0
//! (clamping aside): the classes are learnable, by a linear model exactly (templates are
//! linear), by k-NN through the noise. The noise keeps it from being trivial for k-NN.

use imgclass_core::rng::SplitMix64;
use imgclass_core::{ClassNames, Dataset, ImageShape, Label};
use imgclass_data::TrainTest;

/// Classes of the demo set.
pub const N_CLASSES: usize = 10;
/// Image shape of the demo set.
pub const SHAPE: ImageShape = ImageShape::CIFAR;
/// RMS of each class template per channel (pixel units).
pub const AMPLITUDE: f64 = 15.0;
/// Standard deviation of the per-pixel noise.
pub const NOISE: f64 = 55.0;
/// Training images per class.
pub const TRAIN_PER_CLASS: usize = 200;
/// Test images per class.
pub const TEST_PER_CLASS: usize = 50;

/// Names of the demo classes.
pub fn class_names() -> ClassNames {
    ClassNames::new((0..N_CLASSES).map(|c| format!("pattern-{c}")))
}

/// `n_waves` random low-frequency waves over the image, one field per channel, scaled to
/// RMS `rms` per channel.
fn waves(rng: &mut SplitMix64, n_waves: usize, rms: f64) -> Vec<f64> {
    let (c, h, w) = (SHAPE.channels, SHAPE.height, SHAPE.width);
    let mut out = vec![0.0; SHAPE.len()];
    for ch in 0..c {
        let field = &mut out[ch * h * w..(ch + 1) * h * w];
        for _ in 0..n_waves {
            let fx = (rng.below(4)) as f64;
            let fy = (rng.below(4) + u64::from(fx == 0.0)) as f64;
            let phase = rng.next_f64() * std::f64::consts::TAU;
            let amp = 0.5 + rng.next_f64();
            for y in 0..h {
                for x in 0..w {
                    let t = std::f64::consts::TAU
                        * (fx * x as f64 / w as f64 + fy * y as f64 / h as f64);
                    field[y * w + x] += amp * (t + phase).sin();
                }
            }
        }
        let ms = field.iter().map(|v| v * v).sum::<f64>() / field.len() as f64;
        let scale = if ms > 0.0 { rms / ms.sqrt() } else { 0.0 };
        field.iter_mut().for_each(|v| *v *= scale);
    }
    out
}

/// The demo train/test sets for `seed`: [`TRAIN_PER_CLASS`] and [`TEST_PER_CLASS`] images per
/// class, classes interleaved (row `i` has label `i % 10`).
pub fn generate(seed: u64) -> TrainTest {
    let root = SplitMix64::new(seed ^ 0xDE30_5EED);
    let background: Vec<f64> =
        waves(&mut root.fork(0), 2, 20.0).into_iter().map(|v| v + 128.0).collect();
    let templates: Vec<Vec<f64>> = (0..N_CLASSES)
        .map(|c| {
            let t = waves(&mut root.fork(1 + c as u64), 3, AMPLITUDE);
            t.iter().zip(&background).map(|(a, b)| a + b).collect()
        })
        .collect();
    let make = |stream: u64, per_class: usize| {
        let n = per_class * N_CLASSES;
        let mut pixels = Vec::with_capacity(n * SHAPE.len());
        let mut labels = Vec::with_capacity(n);
        for i in 0..n {
            let c = i % N_CLASSES;
            let mut rng = root.fork(stream).fork(i as u64);
            for &t in &templates[c] {
                let v = t + NOISE * rng.next_normal();
                pixels.push(v.round().clamp(0.0, 255.0) as u8);
            }
            labels.push(c as Label);
        }
        Dataset::new(pixels, labels, SHAPE, class_names())
    };
    // the sizes and labels above satisfy Dataset's invariants by construction
    let train = make(100, TRAIN_PER_CLASS).expect("demo train set is well-formed");
    let test = make(101, TEST_PER_CLASS).expect("demo test set is well-formed");
    TrainTest { train, test }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_balanced_and_distinct_per_seed() {
        let a = generate(1);
        let b = generate(1);
        assert_eq!(a.train, b.train);
        assert_eq!(a.train.len(), TRAIN_PER_CLASS * N_CLASSES);
        assert_eq!(a.test.len(), TEST_PER_CLASS * N_CLASSES);
        for c in 0..N_CLASSES as Label {
            assert_eq!(a.train.labels().iter().filter(|&&l| l == c).count(), TRAIN_PER_CLASS);
        }
        assert_ne!(
            generate(2).train.pixels().map(|r| r.to_contiguous()),
            a.train.pixels().map(|r| r.to_contiguous())
        );
    }

    #[test]
    fn class_means_are_nearest_to_their_own_template() {
        // the mean of a class's training images estimates its template; a test image's
        // nearest class mean should be its own class almost always (see the module doc)
        let d = generate(3);
        let dim = d.train.dim();
        let mut means = vec![vec![0.0f64; dim]; N_CLASSES];
        for i in 0..d.train.len() {
            let row = d.train.pixels().expect("images").row(i);
            for (m, &p) in means[d.train.label(i) as usize].iter_mut().zip(row) {
                *m += f64::from(p) / TRAIN_PER_CLASS as f64;
            }
        }
        let correct = (0..d.test.len())
            .filter(|&i| {
                let x = d.test.pixels().expect("images").row(i);
                let dist = |m: &Vec<f64>| {
                    m.iter().zip(x).map(|(a, &b)| (a - f64::from(b)).powi(2)).sum::<f64>()
                };
                let best = (0..N_CLASSES)
                    .min_by(|&a, &b| dist(&means[a]).total_cmp(&dist(&means[b])))
                    .unwrap_or(0);
                best as Label == d.test.label(i)
            })
            .count();
        assert!(correct as f64 >= 0.98 * d.test.len() as f64, "{correct}");
    }
}
