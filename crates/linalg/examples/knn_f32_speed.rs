//! Throughput probe of `knn_f32` on synthetic byte-valued f32 rows, per kernel, beside the
//! raw `sgemm` (matrixmultiply) product of the same shape: `cargo run --release -p
//! imgclass-linalg --example knn_f32_speed -- [n_queries] [n_train] [k]`.

use std::time::Instant;

use imgclass_linalg::gemm::{Op, sgemm};
use imgclass_linalg::{KernelKind, Metric, Rows, knn_f32_with};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<usize> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let nq = args.first().copied().unwrap_or(1000);
    let nt = args.get(1).copied().unwrap_or(20_000);
    let k = args.get(2).copied().unwrap_or(1);
    let dim = 3072;
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let mut val = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        f32::from((x >> 24) as u8)
    };
    let q: Vec<f32> = (0..nq * dim).map(|_| val()).collect();
    let t: Vec<f32> = (0..nt * dim).map(|_| val()).collect();
    let (qr, tr) = (Rows::new(&q, nq, dim)?, Rows::new(&t, nt, dim)?);
    let flops = 2.0 * (nq * nt * dim) as f64;
    for kernel in KernelKind::available().into_iter().rev() {
        if kernel == KernelKind::Scalar {
            break;
        }
        for metric in [Metric::L2, Metric::L1] {
            let start = Instant::now();
            let top = knn_f32_with(kernel, qr, tr, k, metric)?;
            let s = start.elapsed().as_secs_f64();
            println!(
                "{kernel:>6} {metric} k={k}: wall {s:.3} s, {:.1} GFLOP/s (first {:?})",
                flops / s / 1e9,
                top.indices.first()
            );
        }
    }
    // one thread of matrixmultiply on a 256-query block against 2,048 training rows
    let (m, n) = (256.min(nq), 2048.min(nt));
    let mut c = vec![0f32; m * n];
    let start = Instant::now();
    sgemm(m, n, dim, 1.0, &q[..m * dim], Op::N, &t[..n * dim], Op::T, 0.0, &mut c)?;
    let s = start.elapsed().as_secs_f64();
    println!(
        "matrixmultiply sgemm {m}x{n}x{dim}, 1 thread: {:.1} GFLOP/s",
        2.0 * (m * n * dim) as f64 / s / 1e9
    );
    Ok(())
}
