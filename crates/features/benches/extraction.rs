//! The Coates k-means feature extraction on one thread, per image, beside the one product
//! that bounds it (issue 14: "feature extraction within 2x of the machine's f32 GEMM bound").
//!
//! Each 32 x 32 x 3 image is 729 patches of 108 values (6 x 6 x 3, stride 1) against
//! K = 1,600 centroids: `product` is the bare `sgemm` of that shape (729 x 1,600 x 108,
//! `X·Cᵀ`), `packed_product` the same with `C` packed once (`PackedNt`, the extraction's
//! product), `extract` the whole per-image transform (patches, normalisation, whitening, the
//! product, triangle activations and pooling), with the paper's quadrant pooling
//! (`flip = false`) and the flip-invariant one (`flip = true`); `packed_product_i8` and
//! `extract_quadrants_i8` are the same with `Products::I8` (8-bit codes, exact integer sums,
//! `PackedI8Nt`). The dictionary is fitted on
//! synthetic images (its values do not change the work). `extract / product` is the
//! extraction's distance from the product bound.
//!
//! Run: `cargo bench -p imgclass-features --bench extraction`.

// criterion_group! generates an undocumented public function
#![allow(missing_docs)]

use criterion::{Criterion, criterion_group, criterion_main};
use imgclass_core::rng::SplitMix64;
use imgclass_core::{ClassNames, Dataset, ImageShape};
use imgclass_features::{KmeansFeatures, KmeansParams, Products};
use imgclass_linalg::gemm::{Op, PackedI8Nt, PackedNt, sgemm};

const K: usize = 1600;
const IMAGES: usize = 8;

fn images(n: usize) -> Dataset {
    let mut g = SplitMix64::new(3);
    let shape = ImageShape::new(3, 32, 32);
    let px: Vec<u8> = (0..n * shape.len()).map(|_| g.below(256) as u8).collect();
    Dataset::new(px, vec![0; n], shape, ClassNames::new(["a"])).expect("consistent sizes")
}

fn bench(c: &mut Criterion) {
    let pool = rayon::ThreadPoolBuilder::new().num_threads(1).build().expect("one thread");
    let train = images(64);
    let batch = images(IMAGES);
    let rows = batch.pixels().expect("images");
    let mut group = c.benchmark_group("extraction_per_image");
    group.sample_size(20);

    let mut g = SplitMix64::new(5);
    let x: Vec<f32> = (0..729 * 108).map(|_| g.next_f64() as f32 - 0.5).collect();
    let cen: Vec<f32> = (0..K * 108).map(|_| g.next_f64() as f32 - 0.5).collect();
    let mut out = vec![0f32; 729 * K];
    group.bench_function("product_729x1600x108", |b| {
        b.iter(|| {
            sgemm(729, K, 108, 1.0, &x, Op::N, &cen, Op::T, 0.0, &mut out).expect("sized");
        })
    });
    // the same product with the dictionary packed once, as the extraction runs it
    let packed = PackedNt::new(&cen, K, 108).expect("packs");
    group.bench_function("packed_product_729x1600x108", |b| {
        b.iter(|| packed.product(&x, 729, &mut out).expect("sized"))
    });

    // the 8-bit product: codes and centroids of the same shape
    let codes: Vec<u8> = (0..729 * 108).map(|_| g.below(256) as u8).collect();
    let qc: Vec<i8> = (0..K * 108).map(|_| g.below(256) as u8 as i8).collect();
    let packed_i8 = PackedI8Nt::new(&qc, K, 108).expect("packs");
    let mut sums = vec![0i32; 729 * K];
    group.bench_function("packed_product_i8_729x1600x108", |b| {
        b.iter(|| packed_i8.product(&codes, 729, &mut sums).expect("sized"))
    });
    // both packed products as the extraction runs them: by blocks of 48 patches, so that a
    // block's results stay in L2 (the whole 729 x 1,600 result, 4.7 MB, is bound by its
    // stores)
    group.bench_function("packed_product_by_48", |b| {
        b.iter(|| {
            for (a, c) in x.chunks(48 * 108).zip(out.chunks_mut(48 * K)) {
                packed.product(a, a.len() / 108, &mut c[..a.len() / 108 * K]).expect("sized");
            }
        })
    });
    group.bench_function("packed_product_i8_by_48", |b| {
        b.iter(|| {
            for (a, c) in codes.chunks(48 * 108).zip(sums.chunks_mut(48 * K)) {
                packed_i8.product(a, a.len() / 108, &mut c[..a.len() / 108 * K]).expect("sized");
            }
        })
    });

    for (flip, products, name) in [
        (false, Products::F32, "extract_quadrants"),
        (true, Products::F32, "extract_flip"),
        (false, Products::I8, "extract_quadrants_i8"),
    ] {
        let params = KmeansParams {
            centroids: K,
            patches: 20_000,
            iterations: 1,
            flip,
            products,
            ..Default::default()
        };
        let km = KmeansFeatures::fit(&train.all(), &params, 0).expect("fit");
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let t = std::time::Instant::now();
                for _ in 0..iters {
                    pool.install(|| {
                        std::hint::black_box(km.transform_rows(rows).expect("extracts"))
                    });
                }
                t.elapsed() / IMAGES as u32
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
