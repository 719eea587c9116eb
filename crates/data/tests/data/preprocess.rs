//! Mean image and f32 conversion against naive loops.

use imgclass_core::{ClassNames, Dataset, ImageShape};
use imgclass_data::preprocess::{mean_image, to_f32};
use imgclass_testkit::fixtures::random_bytes;

fn dataset(n: usize, dim: usize) -> Dataset {
    Dataset::new(
        random_bytes(n * dim, 3),
        vec![0; n],
        ImageShape::new(1, 1, dim),
        ClassNames::new(["a"]),
    )
    .unwrap()
}

#[test]
fn mean_image_matches_a_naive_f64_mean_over_a_subset() {
    // more rows than one 4096-row block, and a subset with repeats in any order
    let ds = dataset(9000, 7);
    let idx: Vec<usize> = (0..9000).rev().step_by(2).chain([5, 5, 5]).collect();
    let sub = ds.subset(idx.clone()).unwrap();
    let mean = mean_image(&sub);
    assert_eq!(mean.len(), 7);
    for (j, &m) in mean.iter().enumerate() {
        let naive =
            idx.iter().map(|&i| f64::from(ds.pixels().expect("images").row(i)[j])).sum::<f64>()
                / idx.len() as f64;
        assert_eq!(m, naive as f32, "feature {j}");
    }
    // all 255: the exact mean is 255, no overflow of block sums
    let full = Dataset::new(
        vec![255; 5000 * 2],
        vec![0; 5000],
        ImageShape::new(1, 1, 2),
        ClassNames::new(["a"]),
    )
    .unwrap();
    assert_eq!(mean_image(&full.all()), vec![255.0, 255.0]);
    let empty = ds.subset(Vec::new()).unwrap();
    assert_eq!(mean_image(&empty), vec![0.0; 7]);
}

#[test]
fn to_f32_matches_a_naive_loop() {
    let ds = dataset(700, 5);
    let idx: Vec<usize> = (0..700).map(|i| (i * 37) % 700).collect();
    let sub = ds.subset(idx.clone()).unwrap();
    let mean = [1.5f32, 0.0, 100.0, 255.0, -3.0];
    let out = to_f32(&sub, Some(&mean), 0.25);
    let plain = to_f32(&sub, None, 2.0);
    assert_eq!(out.len(), 700 * 5);
    for (r, &i) in idx.iter().enumerate() {
        for j in 0..5 {
            let p = f32::from(ds.pixels().expect("images").row(i)[j]);
            assert_eq!(out[r * 5 + j], (p - mean[j]) * 0.25);
            assert_eq!(plain[r * 5 + j], p * 2.0);
        }
    }
}
