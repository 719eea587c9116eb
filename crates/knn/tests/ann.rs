//! Approximate nearest-neighbour indices against exact search (the oracle) on seeded data:
//! recall, the `1 + eps` guarantee, eps = 0 equals exact, determinism across thread counts,
//! save/load round trips, typed errors on corrupt files, and autotune on held-out queries.

use imgclass_core::rng::SplitMix64;
use imgclass_core::{ClassNames, Dataset, ImageShape, ShapeMismatch, Subset};
use imgclass_knn::ann::{
    AnnError, AnnIndex, Autotune, BuiltIndex, Metric, Neighbors, distance_u8, recall_at,
};

/// `n` rows of `dim` bytes around `clusters` seeded centers (Gaussian, sd 20).
fn clustered(n: usize, dim: usize, clusters: usize, seed: u64) -> Dataset {
    let mut g = SplitMix64::new(seed);
    let centers: Vec<Vec<f64>> =
        (0..clusters).map(|_| (0..dim).map(|_| 40.0 + 175.0 * g.next_f64()).collect()).collect();
    let mut px = Vec::with_capacity(n * dim);
    let mut labels = Vec::with_capacity(n);
    for _ in 0..n {
        let c = g.below(clusters as u64) as usize;
        labels.push(c as u32);
        for &m in &centers[c] {
            px.push((m + 20.0 * g.next_normal()).round().clamp(0.0, 255.0) as u8);
        }
    }
    let names: Vec<String> = (0..clusters).map(|c| format!("c{c}")).collect();
    Dataset::new(px, labels, ImageShape::new(1, 1, dim), ClassNames::new(names)).expect("valid")
}

/// Uniform random bytes in `0..=max`.
fn uniform(n: usize, dim: usize, max: u64, seed: u64) -> Dataset {
    let mut g = SplitMix64::new(seed);
    let px = (0..n * dim).map(|_| g.below(max + 1) as u8).collect();
    Dataset::new(px, vec![0; n], ImageShape::new(1, 1, dim), ClassNames::new(["a"])).expect("valid")
}

/// Train on the first `n_train` rows, query with the rest.
fn split(ds: &Dataset, n_train: usize) -> (Subset, Subset) {
    let train = ds.subset((0..n_train).collect::<Vec<_>>()).expect("in range");
    let test = ds.subset((n_train..ds.len()).collect::<Vec<_>>()).expect("in range");
    (train, test)
}

/// Naive k-NN: every distance, sorted by (distance, index).
fn naive(train: &Subset, queries: &Subset, k: usize, metric: Metric) -> Neighbors<f64> {
    let mut idx = Vec::new();
    let mut dist = Vec::new();
    for q in queries.pixels().expect("images").iter() {
        let mut all: Vec<(u32, u32)> = train
            .pixels()
            .expect("images")
            .iter()
            .enumerate()
            .map(|(i, r)| (u32::try_from(distance_u8(metric, q, r)).unwrap(), i as u32))
            .collect();
        all.sort_unstable();
        idx.extend(all[..k].iter().map(|p| p.1));
        dist.extend(all[..k].iter().map(|p| f64::from(p.0)));
    }
    Neighbors { k, indices: idx, distances: dist }
}

fn sorted_by_distance_then_index(idx: &[u32], dist: &[f64], k: usize) -> bool {
    idx.chunks(k)
        .zip(dist.chunks(k))
        .all(|(i, d)| (1..k).all(|j| (d[j - 1], i[j - 1]) < (d[j], i[j])))
}

#[test]
fn exact_index_matches_the_naive_loop() {
    let ds = clustered(600, 32, 5, 1);
    let (train, test) = split(&ds, 500);
    for metric in [Metric::L1, Metric::L2] {
        let ix = AnnIndex::Exact.build(&train, metric, None, 0).expect("build");
        assert_eq!(ix.search(&test, 7).expect("search"), naive(&train, &test, 7, metric));
    }
}

#[test]
fn every_index_reaches_high_recall_on_clustered_data() {
    let ds = clustered(2200, 64, 10, 2);
    let (train, test) = split(&ds, 2000);
    let k = 10;
    let truth = naive(&train, &test, k, Metric::L2).indices;
    let truth1: Vec<u32> = truth.chunks(k).map(|c| c[0]).collect();
    // small budgets, so the indices are really approximate; with PCA (32 of 64 dims) the
    // projection loses the within-cluster noise, so the re-rank depth is raised to 100
    let cases: Vec<(AnnIndex, Option<usize>, f64)> = vec![
        (AnnIndex::KdTree { leaf_size: 8, eps: 0.0 }, None, 1.0),
        (AnnIndex::KdTree { leaf_size: 8, eps: 0.0 }, Some(32), 0.95),
        (AnnIndex::KdForest { trees: 4, checks: 256 }, None, 0.955),
        (AnnIndex::KdForest { trees: 4, checks: 128 }, Some(32), 0.85),
        (AnnIndex::KMeansTree { branching: 16, iterations: 5, checks: 256 }, None, 0.95),
        (AnnIndex::KMeansTree { branching: 16, iterations: 5, checks: 128 }, Some(32), 0.9),
        (AnnIndex::Hnsw { m: 8, ef_construction: 50, ef_search: 10 }, None, 0.9),
        (AnnIndex::Hnsw { m: 8, ef_construction: 50, ef_search: 100 }, Some(32), 0.95),
    ];
    for (kind, pca, min_recall) in cases {
        let mut ix = kind.build(&train, Metric::L2, pca, 7).expect("build");
        ix.set_rerank(100);
        let Neighbors { indices: idx, distances: dist, .. } = ix.search(&test, k).expect("search");
        assert!(sorted_by_distance_then_index(&idx, &dist, k));
        // reported distances are the exact distances of the reported rows
        for (q, (i, d)) in idx.chunks(k).zip(dist.chunks(k)).enumerate() {
            for (&ii, &dd) in i.iter().zip(d) {
                assert_eq!(
                    dd as u64,
                    distance_u8(
                        Metric::L2,
                        test.pixels().expect("images").row(q),
                        train.pixels().expect("images").row(ii as usize)
                    )
                );
            }
        }
        let found1: Vec<u32> = idx.chunks(k).map(|c| c[0]).collect();
        let r1 = recall_at(&found1, &truth1, 1);
        let r10 = recall_at(&idx, &truth, k);
        assert!(r1 >= min_recall, "{} pca {pca:?}: recall@1 {r1}", kind.spec());
        assert!(r10 >= min_recall - 0.1, "{} pca {pca:?}: recall@10 {r10}", kind.spec());
    }
}

#[test]
fn kd_tree_eps_guarantee_holds_for_every_query_and_rank() {
    let ds = uniform(3000, 4, 255, 3);
    let (train, test) = split(&ds, 2500);
    let k = 5;
    for metric in [Metric::L2, Metric::L1] {
        let truth = naive(&train, &test, k, metric).distances;
        for eps in [0.25f32, 1.0, 3.0] {
            let ix = AnnIndex::KdTree { leaf_size: 2, eps }
                .build(&train, metric, None, 0)
                .expect("build");
            let dist = ix.search(&test, k).expect("search").distances;
            // squared L2 scales by (1 + eps)^2
            let fac = match metric {
                Metric::L2 => (1.0 + eps as f64).powi(2),
                Metric::L1 => 1.0 + eps as f64,
                Metric::Cosine => unreachable!("not in this test"),
            };
            for (j, (&d, &t)) in dist.iter().zip(&truth).enumerate() {
                assert!(d <= fac * t + 1e-9, "{metric:?} eps {eps} entry {j}: {d} > {fac} x {t}");
            }
        }
    }
}

#[test]
fn kd_tree_with_eps_zero_equals_exact_even_with_many_ties() {
    // values 0..=3 in 3 dims: most distances tie, so the index tie-break is exercised
    for (ds, n_train) in [(uniform(900, 3, 3, 4), 800), (clustered(700, 16, 4, 5), 600)] {
        let (train, test) = split(&ds, n_train);
        for metric in [Metric::L2, Metric::L1] {
            for leaf in [1, 5, 32] {
                let ix = AnnIndex::KdTree { leaf_size: leaf, eps: 0.0 }
                    .build(&train, metric, None, 0)
                    .expect("build");
                assert_eq!(ix.search(&test, 6).expect("search"), naive(&train, &test, 6, metric));
            }
        }
    }
}

#[test]
fn builds_and_answers_are_identical_across_thread_counts() {
    let ds = clustered(2100, 48, 8, 6);
    let (train, test) = split(&ds, 2000);
    let kinds = [
        (AnnIndex::KdForest { trees: 3, checks: 128 }, None),
        (AnnIndex::KMeansTree { branching: 8, iterations: 4, checks: 128 }, Some(16)),
        (AnnIndex::Hnsw { m: 8, ef_construction: 64, ef_search: 32 }, None),
        (AnnIndex::Hnsw { m: 8, ef_construction: 64, ef_search: 32 }, Some(16)),
    ];
    for (kind, pca) in kinds {
        let run = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().expect("pool");
            pool.install(|| {
                let ix = kind.build(&train, Metric::L2, pca, 11).expect("build");
                (ix.to_bytes(), ix.search(&test, 5).expect("search"))
            })
        };
        let (b1, r1) = run(1);
        let (b3, r3) = run(3);
        assert!(b1 == b3, "{} built differently on 1 and 3 threads", kind.spec());
        assert_eq!(r1, r3, "{}", kind.spec());
        // a different seed gives a different randomised structure
        let other = kind.build(&train, Metric::L2, pca, 12).expect("build");
        assert!(other.to_bytes() != b1, "{} ignores its seed", kind.spec());
    }
}

#[test]
fn save_and_load_round_trip_every_index() {
    let ds = clustered(1100, 32, 6, 7);
    let (train, test) = split(&ds, 1000);
    let dir = std::env::temp_dir().join(format!("imgclass-ann-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let kinds = [
        (AnnIndex::Exact, None),
        (AnnIndex::KdTree { leaf_size: 4, eps: 0.5 }, None),
        (AnnIndex::KdTree { leaf_size: 4, eps: 0.0 }, Some(8)),
        (AnnIndex::KdForest { trees: 2, checks: 64 }, Some(8)),
        (AnnIndex::KMeansTree { branching: 8, iterations: 3, checks: 64 }, None),
        (AnnIndex::Hnsw { m: 6, ef_construction: 40, ef_search: 16 }, Some(8)),
    ];
    for (i, (kind, pca)) in kinds.into_iter().enumerate() {
        let mut ix = kind.build(&train, Metric::L1, pca, 3).expect("build");
        ix.set_rerank(20);
        let path = dir.join(format!("{i}.ann"));
        ix.save(&path).expect("save");
        let back = BuiltIndex::load(&path, &train).expect("load");
        assert_eq!(back.kind(), kind);
        assert_eq!(back.metric(), Metric::L1);
        assert_eq!(back.rerank(), 20);
        assert_eq!(back.pca(), ix.pca());
        assert_eq!(back.search(&test, 4).expect("search"), ix.search(&test, 4).expect("search"));
        assert!(back.to_bytes() == ix.to_bytes());
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn truncated_corrupt_and_mismatched_files_give_typed_errors() {
    let ds = clustered(500, 16, 4, 8);
    let (train, _) = split(&ds, 400);
    let ix = AnnIndex::Hnsw { m: 6, ef_construction: 30, ef_search: 10 }
        .build(&train, Metric::L2, Some(4), 1)
        .expect("build");
    let bytes = ix.to_bytes();
    for cut in [0, 7, 15, 16, 40, bytes.len() / 2, bytes.len() - 9, bytes.len() - 1] {
        match BuiltIndex::from_bytes(&bytes[..cut], &train) {
            Err(AnnError::Truncated { found, .. }) => assert_eq!(found, cut as u64),
            // a cut inside the JSON header cannot be told from a corrupt header
            Err(AnnError::Corrupt { .. }) if cut > 16 => {}
            other => panic!("cut {cut}: expected a truncation error, got {other:?}"),
        }
    }
    // flip one byte in the binary part: the checksum catches it
    let mut flipped = bytes.clone();
    let at = bytes.len() - 100;
    flipped[at] ^= 0x40;
    assert!(matches!(
        BuiltIndex::from_bytes(&flipped, &train),
        Err(AnnError::ChecksumMismatch { .. })
    ));
    let mut magic = bytes.clone();
    magic[0] = b'X';
    assert!(matches!(BuiltIndex::from_bytes(&magic, &train), Err(AnnError::Corrupt { .. })));
    let mut longer = bytes.clone();
    longer.push(0);
    assert!(matches!(BuiltIndex::from_bytes(&longer, &train), Err(AnnError::Corrupt { .. })));
    // other training rows (same shape) are refused
    let other = ds.subset((100..500).collect::<Vec<_>>()).expect("in range");
    assert!(matches!(BuiltIndex::from_bytes(&bytes, &other), Err(AnnError::DataMismatch { .. })));
    let missing = BuiltIndex::load("/nonexistent/dir/x.ann", &train);
    assert!(matches!(missing, Err(AnnError::Io { .. })));
}

#[test]
fn bad_parameters_and_queries_give_typed_errors() {
    let ds = clustered(120, 8, 2, 9);
    let (train, test) = split(&ds, 100);
    let ix = AnnIndex::KdTree { leaf_size: 4, eps: 0.0 }
        .build(&train, Metric::L2, None, 0)
        .expect("build");
    assert!(matches!(ix.search(&test, 0), Err(AnnError::ZeroK)));
    assert!(matches!(ix.search(&test, 101), Err(AnnError::KTooLarge { k: 101, n_train: 100 })));
    let wide = uniform(3, 9, 255, 1).all();
    let want = |found: ImageShape| ShapeMismatch {
        expected: ImageShape::new(1, 1, 8).into(),
        found: found.into(),
    };
    assert!(
        matches!(ix.search(&wide, 1), Err(AnnError::Shape(e)) if e == want(ImageShape::new(1, 1, 9)))
    );
    // issue 17 item 3: eight bytes in another layout are another shape
    let other =
        Dataset::new(vec![0; 16], vec![0, 0], ImageShape::new(2, 2, 2), ClassNames::new(["a"]))
            .expect("valid");
    assert!(
        matches!(ix.search(&other.all(), 1), Err(AnnError::Shape(e)) if e == want(ImageShape::new(2, 2, 2)))
    );
    for bad in [
        AnnIndex::KdTree { leaf_size: 0, eps: 0.0 },
        AnnIndex::KdTree { leaf_size: 1, eps: -1.0 },
        AnnIndex::KdTree { leaf_size: 1, eps: f32::NAN },
        AnnIndex::KdForest { trees: 0, checks: 1 },
        AnnIndex::KMeansTree { branching: 1, iterations: 1, checks: 1 },
        AnnIndex::Hnsw { m: 1, ef_construction: 1, ef_search: 1 },
        // issue 17 item 6: sizes that allocate per unit are bounded
        AnnIndex::KdForest { trees: 1_000_000_000, checks: 1 },
        AnnIndex::Hnsw { m: 1 << 40, ef_construction: 1, ef_search: 1 },
    ] {
        assert!(matches!(
            bad.build(&train, Metric::L2, None, 0),
            Err(AnnError::InvalidParam { .. })
        ));
    }
    let hnsw = AnnIndex::default_of("hnsw").expect("known");
    assert!(matches!(
        hnsw.build(&train, Metric::L2, Some(9), 0),
        Err(AnnError::InvalidParam { .. })
    ));
    let empty = ds.subset(Vec::<usize>::new()).expect("empty");
    assert!(matches!(hnsw.build(&empty, Metric::L2, None, 0), Err(AnnError::EmptyTrain)));
    assert!(
        AnnIndex::parse("hnsw:m=32,ef=10")
            .is_ok_and(|x| x == AnnIndex::Hnsw { m: 32, ef_construction: 200, ef_search: 10 })
    );
    assert!(AnnIndex::parse("hnsw:q=3").is_err());
    assert!(AnnIndex::parse("ball").is_err());
}

#[test]
fn autotune_meets_its_target_on_held_out_queries() {
    let ds = clustered(3000, 32, 8, 10);
    let train = ds.all();
    let mut tune = Autotune::new(0.9);
    tune.sample = 2000;
    tune.queries = 200;
    tune.seed = 5;
    let report = tune.run(&train).expect("autotune");
    assert!(report.met_target);
    assert!(!report.trials.is_empty());
    // the choice is the cheapest qualifying trial
    let chosen = report.trials.iter().find(|t| t.index == report.chosen).expect("tried");
    assert!(chosen.recall_at_1 >= 0.9);
    assert!(report.trials.iter().all(|t| t.cost >= chosen.cost));
    // held-out queries took no part in the choice; allow their sampling noise (200 queries)
    assert!(report.held_out_recall_at_1 >= 0.85, "held-out {}", report.held_out_recall_at_1);
}

/// Issue 17 item 6: a search budget far beyond the data (`ef` of 2^60) is not an allocation
/// of that size (it overflowed `4 * ef` in a capacity): it answers like an exhaustive search.
#[test]
fn a_huge_search_budget_does_not_allocate_it() {
    let ds = clustered(60, 8, 2, 4);
    let (train, test) = split(&ds, 50);
    let ix = AnnIndex::Hnsw { m: 4, ef_construction: 16, ef_search: 1 << 60 }
        .build(&train, Metric::L2, None, 0)
        .expect("build");
    let Neighbors { indices: idx, distances: dist, .. } = ix.search(&test, 3).expect("search");
    let Neighbors { indices: nidx, distances: ndist, .. } = naive(&train, &test, 3, Metric::L2);
    assert_eq!(dist, ndist);
    assert_eq!(idx, nidx);
}

/// Issue 17 item 1: the indices' u8 re-rank sums in u32 like the exact search: rows of the
/// longest accepted length give exact distances, one element more is refused at build.
#[test]
fn rows_at_the_length_limit_are_exact_and_longer_ones_are_refused() {
    use imgclass_knn::ann::MAX_DIM;
    assert_eq!(MAX_DIM, imgclass_linalg::max_u8_dim(imgclass_linalg::Metric::L2));
    assert_eq!(MAX_DIM as u64, u64::from(u32::MAX) / (255 * 255));
    let rows = |dim: usize| {
        let px = [vec![0u8; dim], vec![255u8; dim], vec![1u8; dim]].concat();
        Dataset::new(px, vec![0, 0, 0], ImageShape::new(1, 1, dim), ClassNames::new(["a"]))
            .expect("valid")
    };
    let ds = rows(MAX_DIM);
    let train = ds.subset(vec![1, 2]).expect("rows");
    let query = ds.subset(vec![0]).expect("row");
    for kind in [AnnIndex::Exact, AnnIndex::KdTree { leaf_size: 1, eps: 0.0 }] {
        let ix = kind.build(&train, Metric::L2, None, 0).expect("the longest rows build");
        let Neighbors { indices: idx, distances: dist, .. } = ix.search(&query, 2).expect("search");
        // all-0 query: the all-1 row (position 1) first, then the all-255 row, exact
        assert_eq!(idx, vec![1, 0], "{kind:?}");
        let far = distance_u8(
            Metric::L2,
            ds.pixels().expect("images").row(0),
            ds.pixels().expect("images").row(1),
        );
        assert_eq!(far, 255 * 255 * MAX_DIM as u64);
        assert_eq!(dist, vec![MAX_DIM as f64, far as f64], "{kind:?}");
    }
    let long = rows(MAX_DIM + 1);
    let e = AnnIndex::Exact.build(&long.all(), Metric::L2, None, 0).unwrap_err();
    assert!(
        matches!(e, AnnError::DimTooLarge { dim, max } if dim == MAX_DIM + 1 && max == MAX_DIM)
    );
}

/// Index files spell the metric as files written before the metric types were merged did
/// (`"L1"`, `"L2"`), and load back to the same metric.
#[test]
fn index_files_keep_the_metric_spelling() {
    let ds = uniform(40, 6, 255, 3);
    let (train, _) = split(&ds, 30);
    for (metric, spelled) in
        [(Metric::L1, &b"\"metric\":\"L1\""[..]), (Metric::L2, b"\"metric\":\"L2\"")]
    {
        let ix = AnnIndex::KdTree { leaf_size: 4, eps: 0.0 }
            .build(&train, metric, None, 1)
            .expect("build");
        let bytes = ix.to_bytes();
        assert!(bytes.windows(spelled.len()).any(|w| w == spelled), "{metric:?}");
        let back = BuiltIndex::from_bytes(&bytes, &train).expect("load");
        assert!(back.to_bytes() == bytes, "{metric:?}");
    }
}
