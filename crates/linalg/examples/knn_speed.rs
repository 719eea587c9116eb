//! Quick throughput probe of `knn_u8` on synthetic rows: `cargo run --release -p
//! imgclass-linalg --example knn_speed -- [n_queries] [n_train] [k]`, once per kernel.

use std::time::Instant;

use imgclass_linalg::{KernelKind, Metric, Rows, knn_u8_with};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<usize> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let nq = args.first().copied().unwrap_or(1000);
    let nt = args.get(1).copied().unwrap_or(50_000);
    let k = args.get(2).copied().unwrap_or(1);
    let dim = 3072;
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let mut byte = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        (x >> 24) as u8
    };
    let q: Vec<u8> = (0..nq * dim).map(|_| byte()).collect();
    let t: Vec<u8> = (0..nt * dim).map(|_| byte()).collect();
    let (qr, tr) = (Rows::new(&q, nq, dim)?, Rows::new(&t, nt, dim)?);
    for kernel in KernelKind::available().into_iter().rev() {
        for metric in [Metric::L1, Metric::L2] {
            let start = Instant::now();
            let cpu0 = cpu_seconds();
            let top = knn_u8_with(kernel, qr, tr, k, metric)?;
            let s = start.elapsed().as_secs_f64();
            let cpu = cpu_seconds() - cpu0;
            let pairs = (nq * nt * dim) as f64;
            println!(
                "{kernel:>6} {metric} k={k}: wall {s:.3} s, cpu {cpu:.3} s, {:.1} G byte-pairs per cpu-second (first {:?})",
                pairs / cpu / 1e9,
                top.indices.first()
            );
        }
        if kernel == KernelKind::Scalar {
            break;
        }
    }
    Ok(())
}

/// User + system CPU time of this process (Linux `/proc/self/stat`, 100 ticks per second).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let tick = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (tick(11) + tick(12)) / 100.0
}
