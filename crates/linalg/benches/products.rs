//! f32 matrix-product throughput on one thread, on the shapes the workspace multiplies
//! (issue 16 item 3): the `matrixmultiply` crate (with its `avx512` feature, as every binary
//! of the workspace that links nalgebra builds it) against the `gemm` crate (AVX-512 kernels
//! with its `x86-v4` feature), both row-major with the callers' transposes, `C = A·B` with
//! `β = 0`. Throughput is in FLOP (2·m·n·k per product), so criterion's "elem/s" reads as
//! GFLOP/s. The `sgemm2t_*` groups run the net's two big products as the net does, one half
//! of a minibatch per thread on two threads at once (own `A` and `C`, shared `B`), and count
//! both products.
//!
//! Run: `cargo bench -p imgclass-linalg --bench products` (one shape: `-- fwd1_d3072`).

// criterion_group! generates an undocumented public function
#![allow(missing_docs)]

use criterion::{Criterion, Throughput, criterion_group, criterion_main};

/// Whether an operand is used as stored or transposed (as `imgclass_linalg::gemm::Op`).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Op {
    N,
    T,
}

/// One product: `C (m x n) = op(A) (m x k) · op(B) (k x n)`.
struct Shape {
    name: &'static str,
    m: usize,
    n: usize,
    k: usize,
    op_a: Op,
    op_b: Op,
}

const fn shape(name: &'static str, m: usize, n: usize, k: usize, op_a: Op, op_b: Op) -> Shape {
    Shape { name, m, n, k, op_a, op_b }
}

/// The net's half-minibatch of 100 rows, 500 hidden units, 10 classes; d = 3,072 (pixels),
/// 6,400 (k-means features) and 154 (HOG); the k-means learner and extractor (108-dim
/// whitened patches, 1,600 centroids); a square reference.
const SHAPES: &[Shape] = &[
    // forward: A = X W1ᵀ, S = H W2ᵀ
    shape("fwd1_d3072", 100, 500, 3072, Op::N, Op::T),
    shape("fwd1_d6400", 100, 500, 6400, Op::N, Op::T),
    shape("fwd1_d154", 100, 500, 154, Op::N, Op::T),
    shape("fwd2", 100, 10, 500, Op::N, Op::T),
    // backward: dW1 = dHᵀ X, dW2 = dSᵀ H, dH = dS W2
    shape("bwd_dw1_d3072", 500, 3072, 100, Op::T, Op::N),
    shape("bwd_dw1_d6400", 500, 6400, 100, Op::T, Op::N),
    shape("bwd_dw1_d154", 500, 154, 100, Op::T, Op::N),
    shape("bwd_dw2", 10, 500, 100, Op::T, Op::N),
    shape("bwd_dh", 100, 500, 10, Op::N, Op::N),
    // k-means: X_b Cᵀ (learner block of 256, extractor image of 729 patches); whitening
    shape("kmeans_256x1600x108", 256, 1600, 108, Op::N, Op::T),
    shape("extract_729x1600x108", 729, 1600, 108, Op::N, Op::T),
    shape("whiten_5832x108x108", 729 * 8, 108, 108, Op::N, Op::N),
    shape("square_1024", 1024, 1024, 1024, Op::N, Op::N),
];

fn values(seed: u64, len: usize) -> Vec<f32> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            ((x >> 40) as f32 / (1u64 << 24) as f32) - 0.5
        })
        .collect()
}

/// The `gemm` crate's call for row-major `c = op(a)·op(b)` (its column/row strides).
fn gemm_crate(s: &Shape, a: &[f32], b: &[f32], c: &mut [f32]) {
    let (m, n, k) = (s.m, s.n, s.k);
    let (a_cs, a_rs) = match s.op_a {
        Op::N => (1, k as isize),
        Op::T => (m as isize, 1),
    };
    let (b_cs, b_rs) = match s.op_b {
        Op::N => (1, n as isize),
        Op::T => (k as isize, 1),
    };
    assert!(a.len() == m * k && b.len() == k * n && c.len() == m * n);
    // SAFETY: the strides address `a` (m x k), `b` (k x n) and `c` (m x n, row stride n)
    // inside their slices (lengths asserted above); `c` is a unique borrow.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            1,
            n as isize,
            false,
            a.as_ptr(),
            a_cs,
            a_rs,
            b.as_ptr(),
            b_cs,
            b_rs,
            0.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        )
    }
}

/// `matrixmultiply::sgemm` directly (what `imgclass_linalg::gemm::sgemm` wrapped before).
fn matrixmultiply(s: &Shape, a: &[f32], b: &[f32], c: &mut [f32]) {
    let (m, n, k) = (s.m, s.n, s.k);
    let (rsa, csa) = match s.op_a {
        Op::N => (k as isize, 1),
        Op::T => (1, m as isize),
    };
    let (rsb, csb) = match s.op_b {
        Op::N => (n as isize, 1),
        Op::T => (1, k as isize),
    };
    assert!(a.len() == m * k && b.len() == k * n && c.len() == m * n);
    // SAFETY: as above.
    unsafe {
        matrixmultiply::sgemm(
            m,
            k,
            n,
            1.0,
            a.as_ptr(),
            rsa,
            csa,
            b.as_ptr(),
            rsb,
            csb,
            0.0,
            c.as_mut_ptr(),
            n as isize,
            1,
        )
    }
}

/// `imgclass_linalg::gemm::sgemm`, whatever it wraps today.
fn ours(s: &Shape, a: &[f32], b: &[f32], c: &mut [f32]) {
    use imgclass_linalg::gemm::{Op as LOp, sgemm};
    let op = |o: Op| if o == Op::N { LOp::N } else { LOp::T };
    sgemm(s.m, s.n, s.k, 1.0, a, op(s.op_a), b, op(s.op_b), 0.0, c).unwrap();
}

fn products(c: &mut Criterion) {
    for s in SHAPES {
        let a = values(1, s.m * s.k);
        let b = values(2, s.k * s.n);
        let mut out = vec![0f32; s.m * s.n];
        let mut g = c.benchmark_group(format!("sgemm_{}", s.name));
        g.throughput(Throughput::Elements(2 * (s.m * s.n * s.k) as u64));
        g.sample_size(20);
        g.warm_up_time(std::time::Duration::from_millis(500));
        g.measurement_time(std::time::Duration::from_secs(2));
        g.bench_function("matrixmultiply", |bch| bch.iter(|| matrixmultiply(s, &a, &b, &mut out)));
        g.bench_function("gemm", |bch| bch.iter(|| gemm_crate(s, &a, &b, &mut out)));
        g.bench_function("linalg_sgemm", |bch| bch.iter(|| ours(s, &a, &b, &mut out)));
        g.finish();
    }
}

/// The net's two halves at once: `f` on (a0, c0) and (a1, c1) on two threads, `b` shared.
fn two_threads(
    s: &Shape,
    f: fn(&Shape, &[f32], &[f32], &mut [f32]),
    (a0, a1): (&[f32], &[f32]),
    b: &[f32],
    (c0, c1): (&mut [f32], &mut [f32]),
) {
    std::thread::scope(|scope| {
        scope.spawn(|| f(s, a1, b, c1));
        f(s, a0, b, c0);
    });
}

fn products_two_threads(c: &mut Criterion) {
    for s in SHAPES.iter().filter(|s| s.name.ends_with("d3072")) {
        let (a0, a1) = (values(1, s.m * s.k), values(3, s.m * s.k));
        let b = values(2, s.k * s.n);
        let (mut c0, mut c1) = (vec![0f32; s.m * s.n], vec![0f32; s.m * s.n]);
        let mut g = c.benchmark_group(format!("sgemm2t_{}", s.name));
        g.throughput(Throughput::Elements(4 * (s.m * s.n * s.k) as u64));
        g.sample_size(20);
        g.warm_up_time(std::time::Duration::from_millis(500));
        g.measurement_time(std::time::Duration::from_secs(2));
        for (name, f) in
            [("matrixmultiply", matrixmultiply as fn(&_, &_, &_, &mut _)), ("gemm", gemm_crate)]
        {
            g.bench_function(name, |bch| {
                bch.iter(|| two_threads(s, f, (&a0, &a1), &b, (&mut c0, &mut c1)))
            });
        }
        g.finish();
    }
}

criterion_group!(benches, products, products_two_threads);
criterion_main!(benches);
