//! Rough per-call timing of the forward and backward products at the CIFAR-10 minibatch
//! shape (200 x 10 x 3,072), per kernel, on the current rayon pool: a development aid, not a
//! benchmark of record (those are `cargo xtask bench linear` and xtask/peers/linear.py).
//! Environment: `ROWS` rows in the random dataset (default 20,000), `M` rows per batch
//! (default 200; below about 68 the products run serially on the calling thread).

use imgclass_core::rng::SplitMix64;
use imgclass_linalg::gemm::{Affine, KernelKind, gemm_nt_u8_with, gemm_tn_u8_with};
use std::time::Instant;

fn main() {
    let m: usize = std::env::var("M").ok().and_then(|s| s.parse().ok()).unwrap_or(200);
    let (n, k) = (10usize, 3072usize);
    let mut g = SplitMix64::new(1);
    let args: Vec<String> = std::env::args().collect();
    let only_kernel = args.get(1).cloned();
    let phase = args.get(2).cloned().unwrap_or_else(|| "both".into());
    let reps: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(2000);
    let n_rows: usize = std::env::var("ROWS").ok().and_then(|s| s.parse().ok()).unwrap_or(20_000);
    let data: Vec<u8> = (0..n_rows * k).map(|_| (g.next_u64() >> 56) as u8).collect();
    let w: Vec<f32> = (0..n * k).map(|_| g.next_normal() as f32 * 1e-3).collect();
    let gs: Vec<f32> = (0..m * n).map(|_| g.next_normal() as f32 * 1e-3).collect();
    let scale = vec![1.0f32; k];
    let offset = vec![-120.0f32; k];
    let pre = Affine { scale: &scale, offset: &offset };
    for kernel in KernelKind::available() {
        if only_kernel.as_deref().is_some_and(|o| o != kernel.name()) {
            continue;
        }
        let mut s = vec![0.0f32; m * n];
        let mut d = vec![0.0f32; n * k];
        let (mut tf, mut tb) = (0.0, 0.0);
        for _ in 0..reps {
            let rows: Vec<&[u8]> = (0..m)
                .map(|_| g.below(n_rows as u64) as usize)
                .map(|r| &data[r * k..(r + 1) * k])
                .collect();
            let t = Instant::now();
            if phase != "backward" {
                gemm_nt_u8_with(kernel, &rows, pre, &w, n, &mut s).expect("ok");
            }
            tf += t.elapsed().as_secs_f64();
            let t = Instant::now();
            if phase != "forward" {
                gemm_tn_u8_with(kernel, &gs, n, &rows, pre, &mut d).expect("ok");
            }
            tb += t.elapsed().as_secs_f64();
        }
        let flops = (m * n * k) as f64;
        println!(
            "{:7} forward {:7.1} us ({:5.1} GFMA/s)  backward {:7.1} us ({:5.1} GFMA/s)",
            kernel.name(),
            1e6 * tf / reps as f64,
            flops * reps as f64 / tf / 1e9,
            1e6 * tb / reps as f64,
            flops * reps as f64 / tb / 1e9
        );
    }
}
