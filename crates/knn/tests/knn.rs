//! k-NN classifier against the lecture's naive loop: compute every distance, sort by
//! (distance, index), vote with ties toward the smaller label.

use imgclass_core::rng::SplitMix64;
use imgclass_core::{ClassNames, Dataset, Fit, ImageShape, Label, Predict, ShapeMismatch, Subset};
use imgclass_knn::{DISTANCE_EPS, Knn, KnnError, Metric, Neighbors, Vote};
use imgclass_linalg::LinalgError;
use imgclass_testkit::random::{
    NaiveMetric, naive_knn, naive_majority, naive_pairwise_u8, u8_rows,
};

fn naive(m: Metric) -> NaiveMetric {
    match m {
        Metric::L1 => NaiveMetric::L1,
        Metric::L2 => NaiveMetric::L2,
        Metric::Cosine => unreachable!("the u8 reference has no cosine"),
    }
}

/// A dataset of `n` random images of shape `shape` with values in `0..=max` and labels in
/// `0..n_classes`.
fn dataset(seed: u64, n: usize, shape: ImageShape, max: u8, n_classes: usize) -> Dataset {
    let pixels = u8_rows(seed, n, shape.len(), max);
    let mut g = SplitMix64::new(seed ^ 0xABCD);
    let labels = (0..n).map(|_| g.below(n_classes as u64) as Label).collect();
    let names: Vec<String> = (0..n_classes).map(|c| format!("c{c}")).collect();
    Dataset::new(pixels, labels, shape, ClassNames::new(names)).unwrap()
}

/// A shuffled selection of some rows: positions differ from dataset rows.
fn fold(ds: &Dataset, seed: u64, n: usize) -> Subset {
    let mut idx: Vec<usize> = (0..ds.len()).collect();
    SplitMix64::new(seed).shuffle(&mut idx);
    idx.truncate(n);
    ds.subset(idx).unwrap()
}

/// The naive neighbours of `x` among `train`: (positions, distances), `x.len() * k`.
fn naive_neighbors(x: &Subset, train: &Subset, k: usize, m: Metric) -> (Vec<u32>, Vec<u64>) {
    let d = naive_pairwise_u8(
        &x.pixels().expect("images").to_contiguous(),
        x.len(),
        &train.pixels().expect("images").to_contiguous(),
        train.len(),
        x.dim(),
        naive(m),
    );
    naive_knn(&d, x.len(), train.len(), k)
}

#[test]
fn kneighbors_and_majority_predict_equal_the_naive_loop_with_many_ties() {
    // pixel values 0..=2 over 2x2x1 images: distances take few values, ties everywhere
    let ds = dataset(1, 600, ImageShape::new(1, 2, 2), 2, 4);
    let train = fold(&ds, 2, 400);
    let test = ds.subset((400..600).collect::<Vec<_>>()).unwrap();
    for metric in [Metric::L1, Metric::L2] {
        for k in [1, 2, 3, 8, 25] {
            let model = Knn::new(k).metric(metric).fit(&train).unwrap();
            let nb = model.kneighbors(&test, k).unwrap();
            let (ei, ed) = naive_neighbors(&test, &train, k, metric);
            assert_eq!(nb.indices, ei, "{metric} k={k}");
            assert_eq!(nb.distances.iter().map(|&d| d as u64).collect::<Vec<_>>(), ed);
            let expect: Vec<Label> = ei
                .chunks(k)
                .map(|c| {
                    let labels: Vec<Label> = c.iter().map(|&i| train.label(i as usize)).collect();
                    naive_majority(&labels)
                })
                .collect();
            assert_eq!(model.predict(&test).unwrap(), expect, "{metric} k={k}");
        }
    }
}

#[test]
fn distance_vote_equals_a_naive_weighted_vote() {
    let ds = dataset(3, 300, ImageShape::new(3, 2, 2), 255, 3);
    let train = fold(&ds, 4, 250);
    let test = ds.subset((250..300).collect::<Vec<_>>()).unwrap();
    let k = 7;
    let model = Knn::new(k).metric(Metric::L1).vote(Vote::Distance).fit(&train).unwrap();
    let (ei, ed) = naive_neighbors(&test, &train, k, Metric::L1);
    let got = model.predict(&test).unwrap();
    let proba = model.predict_proba(&test).unwrap();
    for q in 0..test.len() {
        let mut w = [0f64; 3];
        for j in 0..k {
            w[train.label(ei[q * k + j] as usize) as usize] +=
                1.0 / (ed[q * k + j] as f64 + DISTANCE_EPS);
        }
        let best = (0..3).fold(0, |b, c| if w[c] > w[b] { c } else { b });
        assert_eq!(got[q], best as Label, "query {q}");
        let total: f64 = w.iter().sum();
        for c in 0..3 {
            assert!((f64::from(proba[q * 3 + c]) - w[c] / total).abs() < 1e-5);
        }
    }
}

#[test]
fn vote_from_scores_every_k_of_a_grid_from_one_search() {
    let ds = dataset(5, 500, ImageShape::new(1, 3, 3), 3, 5);
    let train = fold(&ds, 6, 350);
    let test = ds.subset((350..500).collect::<Vec<_>>()).unwrap();
    let model = Knn::new(1).fit(&train).unwrap();
    let nb = model.kneighbors(&test, 20).unwrap();
    for k in [1, 3, 5, 10, 20] {
        let direct = Knn::new(k).fit(&train).unwrap().predict(&test).unwrap();
        assert_eq!(model.vote_from(&nb, k).unwrap(), direct, "k={k}");
    }
    assert_eq!(
        model.vote_from(&nb, 21).unwrap_err(),
        KnnError::NotEnoughNeighbors { k: 21, available: 20 }
    );
    assert_eq!(model.vote_from(&nb, 0).unwrap_err(), KnnError::ZeroK);
}

#[test]
fn predict_proba_is_the_share_of_votes() {
    let ds = dataset(7, 200, ImageShape::new(1, 2, 2), 3, 3);
    let train = ds.subset((0..150).collect::<Vec<_>>()).unwrap();
    let test = ds.subset((150..200).collect::<Vec<_>>()).unwrap();
    let k = 4;
    let model = Knn::new(k).fit(&train).unwrap();
    let proba = model.predict_proba(&test).unwrap();
    let (ei, _) = naive_neighbors(&test, &train, k, Metric::L2);
    for q in 0..test.len() {
        for c in 0..3u32 {
            let count =
                ei[q * k..(q + 1) * k].iter().filter(|&&i| train.label(i as usize) == c).count();
            assert_eq!(proba[q * 3 + c as usize], count as f32 / k as f32);
        }
    }
}

#[test]
fn class_ties_go_to_the_smaller_label() {
    // 1-D: train 10 (label 2), 12 (label 1), 30 (label 0); query 11: two nearest tie 1 vs 2
    let shape = ImageShape::new(1, 1, 1);
    let classes = ClassNames::new(["a", "b", "c"]);
    let train = Dataset::new(vec![10, 12, 30], vec![2, 1, 0], shape, classes.clone()).unwrap();
    let test = Dataset::new(vec![11], vec![0], shape, classes).unwrap();
    for vote in [Vote::Majority, Vote::Distance] {
        let model = Knn::new(2).metric(Metric::L1).vote(vote).fit(&train.all()).unwrap();
        assert_eq!(model.predict(&test.all()).unwrap(), vec![1], "{vote:?}");
    }
    // equal distances: the smaller training index is the nearer neighbour
    let model = Knn::new(1).fit(&train.all()).unwrap();
    let nb = model.kneighbors(&test.all(), 2).unwrap();
    assert_eq!(nb, Neighbors { k: 2, indices: vec![0, 1], distances: vec![1.0, 1.0] });
}

#[test]
fn bad_input_gives_typed_errors() {
    let ds = dataset(9, 10, ImageShape::new(1, 2, 2), 255, 2);
    let other = dataset(9, 3, ImageShape::new(1, 3, 1), 255, 2);
    let train = ds.all();
    assert_eq!(Knn::new(0).fit(&train).unwrap_err(), KnnError::ZeroK);
    assert_eq!(Knn::new(11).fit(&train).unwrap_err(), KnnError::KTooLarge { k: 11, n_train: 10 });
    let empty = ds.subset(Vec::new()).unwrap();
    assert_eq!(Knn::new(1).fit(&empty).unwrap_err(), KnnError::EmptyTrain);
    let model = Knn::new(3).fit(&train).unwrap();
    assert_eq!(model.predict(&empty).unwrap_err(), KnnError::EmptyQueries);
    assert_eq!(
        model.predict(&other.all()).unwrap_err(),
        KnnError::Shape(ShapeMismatch {
            expected: ImageShape::new(1, 2, 2).into(),
            found: ImageShape::new(1, 3, 1).into()
        })
    );
    // issue 17 item 3: the same byte count in another layout is another shape
    let transposed = dataset(9, 3, ImageShape::new(1, 4, 1), 255, 2);
    let e = model.predict(&transposed.all()).unwrap_err();
    assert_eq!(
        e,
        KnnError::Shape(ShapeMismatch {
            expected: ImageShape::new(1, 2, 2).into(),
            found: ImageShape::new(1, 4, 1).into()
        })
    );
    assert!(e.to_string().contains("expected 1x2x2 images, got 1x4x1"), "{e}");
    // issue 17 item 1: rows too long for exact u32 L2 are refused at fit, before any search
    let long = dataset(9, 2, ImageShape::new(3, 148, 149), 255, 2);
    assert_eq!(
        Knn::new(1).fit(&long.all()).unwrap_err(),
        KnnError::Linalg(LinalgError::RowTooLong { dim: 3 * 148 * 149, max: 66_051, metric: "l2" })
    );
    assert!(Knn::new(1).metric(Metric::L1).fit(&long.all()).is_ok(), "L1's bound is looser");
    assert_eq!(
        model.kneighbors(&train, 12).unwrap_err(),
        KnnError::KTooLarge { k: 12, n_train: 10 }
    );
    let bogus = Neighbors { k: 1, indices: vec![10], distances: vec![0.0] };
    assert_eq!(
        model.vote_from(&bogus, 1).unwrap_err(),
        KnnError::BadNeighbor { index: 10, n_train: 10 }
    );
}
