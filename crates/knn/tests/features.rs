//! k-NN on f32 features (the general path, `imgclass_linalg::knn_f32`) against a naive f64
//! brute-force reference: exact search through `Knn` and every approximate index.
//!
//! Integer-valued features keep every sum exact in f32 (so the GEMM form is exact and the
//! many exact ties must break by index exactly as the reference does); Gaussian features
//! check the distances against the documented error bound of the GEMM form.

use imgclass_core::rng::SplitMix64;
use imgclass_core::{ClassNames, Dataset, Fit, Predict, Subset};
use imgclass_knn::ann::{AnnIndex, Metric as AnnMetric, recall_at};
use imgclass_knn::{Knn, Metric};

/// `n` rows of `dim` features; `int_max: Some(m)` draws integers in `0..=m` (exact ties),
/// `None` draws clustered Gaussians. Labels cycle over 3 classes.
fn features(n: usize, dim: usize, int_max: Option<u64>, seed: u64) -> Dataset {
    let mut g = SplitMix64::new(seed);
    let centers: Vec<Vec<f64>> =
        (0..4).map(|_| (0..dim).map(|_| 10.0 * g.next_normal()).collect()).collect();
    let mut v = Vec::with_capacity(n * dim);
    for i in 0..n {
        for &c in &centers[i % 4] {
            v.push(match int_max {
                Some(m) => g.below(m + 1) as f32,
                None => (c + g.next_normal()) as f32,
            });
        }
    }
    let labels = (0..n).map(|i| (i % 3) as u32).collect();
    Dataset::from_features(v, dim, labels, ClassNames::new(["a", "b", "c"])).expect("finite")
}

fn split(ds: &Dataset, n_train: usize) -> (Subset, Subset) {
    let train = ds.subset((0..n_train).collect::<Vec<_>>()).expect("in range");
    let test = ds.subset((n_train..ds.len()).collect::<Vec<_>>()).expect("in range");
    (train, test)
}

#[derive(Clone, Copy, PartialEq)]
enum Naive {
    L1,
    L2,
    Cosine,
}

/// Naive f64 k-NN straight from the definition: every distance, sorted by (distance, index).
fn naive(train: &Subset, queries: &Subset, k: usize, m: Naive) -> (Vec<u32>, Vec<f64>) {
    let (t, q) = (train.features().expect("features"), queries.features().expect("features"));
    let mut idx = Vec::new();
    let mut dist = Vec::new();
    for qr in q.iter() {
        let mut all: Vec<(f64, u32)> =
            t.iter().enumerate().map(|(i, tr)| (naive_distance(qr, tr, m), i as u32)).collect();
        all.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        idx.extend(all[..k].iter().map(|p| p.1));
        dist.extend(all[..k].iter().map(|p| p.0));
    }
    (idx, dist)
}

/// One distance from its definition, in f64 (cosine: 1 when either row is zero).
fn naive_distance(a: &[f32], b: &[f32], m: Naive) -> f64 {
    let f = |x: f32| f64::from(x);
    match m {
        Naive::L1 => a.iter().zip(b).map(|(&x, &y)| (f(x) - f(y)).abs()).sum(),
        Naive::L2 => a.iter().zip(b).map(|(&x, &y)| (f(x) - f(y)).powi(2)).sum(),
        Naive::Cosine => {
            let dot: f64 = a.iter().zip(b).map(|(&x, &y)| f(x) * f(y)).sum();
            let n = |r: &[f32]| r.iter().map(|&x| f(x).powi(2)).sum::<f64>().sqrt();
            if n(a) == 0.0 || n(b) == 0.0 { 1.0 } else { 1.0 - dot / (n(a) * n(b)) }
        }
    }
}

fn metrics() -> [(Metric, AnnMetric, Naive); 2] {
    [(Metric::L1, AnnMetric::L1, Naive::L1), (Metric::L2, AnnMetric::L2, Naive::L2)]
}

#[test]
fn knn_on_integer_features_equals_the_naive_reference_ties_by_index() {
    // values 0..=3 over 6 dims: many rows at equal distances
    let ds = features(700, 6, Some(3), 1);
    let (train, test) = split(&ds, 600);
    for (metric, _, m) in metrics() {
        for k in [1, 4, 17] {
            let model = Knn::new(k).metric(metric).fit(&train).expect("fit");
            let nb = model.kneighbors(&test, k).expect("search");
            let (ei, ed) = naive(&train, &test, k, m);
            assert_eq!(nb.indices, ei, "{metric} k={k}");
            assert_eq!(nb.distances, ed, "{metric} k={k}: exact in f32 on integers");
        }
    }
}

#[test]
fn knn_on_gaussian_features_equals_the_naive_reference_within_the_bound() {
    let dim = 70;
    let ds = features(530, dim, None, 2);
    let (train, test) = split(&ds, 500);
    let u = 2f64.powi(-24);
    let sq = |r: &[f32]| r.iter().map(|&x| f64::from(x).powi(2)).sum::<f64>();
    for (metric, _, m) in metrics() {
        for k in [1, 5] {
            let model = Knn::new(k).metric(metric).fit(&train).expect("fit");
            let nb = model.kneighbors(&test, k).expect("search");
            let (ei, ed) = naive(&train, &test, k, m);
            assert_eq!(nb.indices, ei, "{metric} k={k}");
            for (j, (&got, &want)) in nb.distances.iter().zip(&ed).enumerate() {
                let (q, t) = (j / k, ei[j] as usize);
                let qr = test.features().expect("features").row(q);
                let tr = train.features().expect("features").row(t);
                // flat.rs: (dim + 2) 2^-24 (|q|² + |t|²) for L2, dim 2^-24 L1 for L1
                let bound = match m {
                    Naive::L2 => (dim as f64 + 2.0) * u * (sq(qr) + sq(tr)),
                    Naive::L1 => dim as f64 * u * want,
                    Naive::Cosine => (dim as f64 + 4.0) * u,
                };
                assert!((got - want).abs() <= bound, "{metric} k={k} #{j}: {got} vs {want}");
            }
            // predictions: the majority of the reference's neighbours' labels
            let labels = train.labels();
            let pred = model.predict(&test).expect("predict");
            for (q, &p) in pred.iter().enumerate() {
                let mut votes = [0usize; 3];
                for &i in &ei[q * k..(q + 1) * k] {
                    votes[labels[i as usize] as usize] += 1;
                }
                let best = (0..3).max_by_key(|&c| (votes[c], std::cmp::Reverse(c))).unwrap();
                assert_eq!(p, best as u32, "{metric} k={k} query {q}");
            }
        }
    }
}

#[test]
fn every_ann_index_on_features_matches_the_reference() {
    // exact and kd-tree eps = 0 are exact (integer features, so ties break identically);
    // the others reach a recall floor on clustered Gaussian features
    let ints = features(700, 6, Some(3), 3);
    let (itrain, itest) = split(&ints, 600);
    for (_, am, m) in metrics() {
        let (ei, ed) = naive(&itrain, &itest, 5, m);
        for kind in [AnnIndex::Exact, AnnIndex::KdTree { leaf_size: 4, eps: 0.0 }] {
            let ix = kind.build(&itrain, am, None, 0).expect("build");
            let nb = ix.search(&itest, 5).expect("search");
            assert_eq!(nb.indices, ei, "{}", kind.spec());
            assert_eq!(nb.distances, ed, "{}", kind.spec());
        }
    }
    let gauss = features(1100, 32, None, 4);
    let (gtrain, gtest) = split(&gauss, 1000);
    let k = 10;
    for (_, am, m) in metrics() {
        let (truth, _) = naive(&gtrain, &gtest, k, m);
        let cases = [
            AnnIndex::KdForest { trees: 4, checks: 256 },
            AnnIndex::KMeansTree { branching: 16, iterations: 5, checks: 256 },
            AnnIndex::Hnsw { m: 8, ef_construction: 50, ef_search: 64 },
        ];
        for kind in cases {
            let ix = kind.build(&gtrain, am, None, 7).expect("build");
            let nb = ix.search(&gtest, k).expect("search");
            let r = recall_at(&nb.indices, &truth, k);
            assert!(r >= 0.9, "{} {am:?}: recall@{k} {r}", kind.spec());
        }
    }
}

#[test]
fn cosine_knn_on_features_equals_the_naive_reference() {
    let dim = 40;
    let mut ds = features(430, dim, None, 5);
    // a zero training row (distance 1 to everything) and a scaled copy of a query
    let mut v = ds.all().values().to_f32();
    v[3 * dim..4 * dim].fill(0.0);
    for j in 0..dim {
        v[7 * dim + j] = 3.0 * v[(400 + 2) * dim + j];
    }
    ds = ds.all().with_features(v, dim).expect("finite");
    let (train, test) = split(&ds, 400);
    for k in [1, 6] {
        let model = Knn::new(k).metric(Metric::Cosine).fit(&train).expect("fit");
        let nb = model.kneighbors(&test, k).expect("search");
        let (ei, ed) = naive(&train, &test, k, Naive::Cosine);
        assert_eq!(nb.indices, ei, "k={k}");
        // flat.rs: |error| <= (dim + 4) 2^-24
        let tol = (dim as f64 + 4.0) * 2f64.powi(-24);
        for (&got, &want) in nb.distances.iter().zip(&ed) {
            assert!((got - want).abs() <= tol, "k={k}: {got} vs {want}");
        }
        assert_eq!(nb.indices[2 * k], 7, "the scaled copy is nearest to query 2");
    }
    // every training row at the zero vector's distance: 1
    let zero = ds.subset(vec![3]).expect("in range");
    let nb = Knn::new(1).metric(Metric::Cosine).fit(&train).expect("fit").kneighbors(&zero, 3);
    assert!(nb.expect("search").distances.iter().all(|&d| d == 1.0));
    // pixels: a typed error at fit
    let px = imgclass_core::Dataset::new(
        vec![1, 2, 3, 4],
        vec![0, 1],
        imgclass_core::ImageShape::new(1, 1, 2),
        ClassNames::new(["a", "b"]),
    )
    .expect("valid");
    let e = Knn::new(1).metric(Metric::Cosine).fit(&px.all()).unwrap_err();
    assert!(e.to_string().contains("cosine"), "{e}");
}

/// Cosine in every approximate index: the indices search unit rows by squared L2 (which ranks
/// as cosine does) and re-rank candidates by the exact cosine distance, so exact search equals
/// the naive reference, a kd-tree with eps = 0 finds the true neighbours, and the others reach
/// a recall floor, with and without PCA; an index saved and loaded searches the same.
#[test]
fn every_ann_index_takes_cosine_on_features() {
    let gauss = features(1100, 32, None, 9);
    let (train, test) = split(&gauss, 1000);
    let k = 10;
    let (truth, tdist) = naive(&train, &test, k, Naive::Cosine);
    let exact = AnnIndex::Exact.build(&train, Metric::Cosine, None, 0).expect("build");
    let nb = exact.search(&test, k).expect("search");
    assert_eq!(nb.indices, truth);
    for (d, t) in nb.distances.iter().zip(&tdist) {
        assert!((d - t).abs() <= 1e-5, "exact cosine {d} vs {t}");
    }
    let tf = train.features().expect("features");
    let qf = test.features().expect("features");
    let cases = [
        (AnnIndex::KdTree { leaf_size: 4, eps: 0.0 }, None, 0.99),
        (AnnIndex::KdForest { trees: 4, checks: 256 }, None, 0.9),
        (AnnIndex::KMeansTree { branching: 16, iterations: 5, checks: 256 }, None, 0.9),
        (AnnIndex::Hnsw { m: 8, ef_construction: 50, ef_search: 64 }, None, 0.9),
        (AnnIndex::Hnsw { m: 8, ef_construction: 50, ef_search: 64 }, Some(16), 0.9),
    ];
    for (kind, pca, floor) in cases {
        let mut ix = kind.build(&train, Metric::Cosine, pca, 7).expect("build");
        ix.set_rerank(64);
        let nb = ix.search(&test, k).expect("search");
        let r = recall_at(&nb.indices, &truth, k);
        assert!(r >= floor, "{} pca {pca:?}: recall@{k} {r}", kind.spec());
        // reported distances are the exact cosine distances of the reported rows
        for (q, (is, ds)) in nb.indices.chunks(k).zip(nb.distances.chunks(k)).enumerate() {
            for (&i, &d) in is.iter().zip(ds) {
                let want = naive_distance(qf.row(q), tf.row(i as usize), Naive::Cosine);
                assert!((d - want).abs() <= 1e-9, "{}: {d} vs {want}", kind.spec());
            }
        }
        let back =
            imgclass_knn::ann::BuiltIndex::from_bytes(&ix.to_bytes(), &train).expect("loads");
        assert_eq!(
            back.search(&test, k).expect("search"),
            nb,
            "{} after a round trip",
            kind.spec()
        );
    }
    // pixels have no cosine: refused by name, before any work
    let px = Dataset::new(
        vec![1, 2, 3, 4],
        vec![0, 1],
        imgclass_core::ImageShape::new(1, 1, 2),
        ClassNames::new(["a", "b"]),
    )
    .expect("valid");
    let e = AnnIndex::KdTree { leaf_size: 4, eps: 0.0 }
        .build(&px.all(), Metric::Cosine, None, 0)
        .unwrap_err();
    assert!(e.to_string().contains("cosine needs f32 features"), "{e}");
}
