//! Kernel throughput at d = 3072 (one CIFAR image): exact 1-NN of 128 queries over 2,048
//! training rows, scalar vs AVX2 vs AVX-512, L1 and squared L2, on one thread.
//! Run: `cargo bench -p imgclass-linalg --bench distances`.

// criterion_group! generates an undocumented public function
#![allow(missing_docs)]

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use imgclass_linalg::{KernelKind, Metric, Rows, knn_u8_with};

fn rows(seed: u64, n: usize, dim: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n * dim)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

fn kernels(c: &mut Criterion) {
    let (dim, nq, nt) = (3072, 128, 2048);
    let q = rows(1, nq, dim);
    let t = rows(2, nt, dim);
    let (qr, tr) = (Rows::new(&q, nq, dim).unwrap(), Rows::new(&t, nt, dim).unwrap());
    let pool = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
    for metric in [Metric::L1, Metric::L2] {
        let mut g = c.benchmark_group(format!("knn_u8_{metric}_d3072"));
        g.throughput(Throughput::Elements((nq * nt * dim) as u64));
        g.sample_size(10);
        for kernel in KernelKind::available() {
            g.bench_function(kernel.name(), |b| {
                b.iter(|| pool.install(|| knn_u8_with(kernel, qr, tr, 1, metric).unwrap()))
            });
        }
        g.finish();
    }
}

criterion_group!(benches, kernels);
criterion_main!(benches);
