//! Times linalg's skinny products ([`gemm_nt_affine_with`], [`gemm_tn_affine_add_with`])
//! against the general `gemm` on rows formed first, for `n` classes, on one thread, the fastest
//! of 20 runs:
//! `cargo run --release -p imgclass-linalg --example skinny_speed [rows] [k] [n]`.
use std::time::Instant;

use imgclass_linalg::KernelKind;
use imgclass_linalg::gemm::{
    Affine, GemmScalar, Op, SkinnyScalar, gemm, gemm_nt_affine_with, gemm_tn_affine_add_with,
};

/// The fastest of `reps` runs of `f`, in seconds (the machine's noise only adds time).
fn fastest(reps: usize, mut f: impl FnMut()) -> f64 {
    (0..reps)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min)
}

fn run<T: SkinnyScalar + GemmScalar>(name: &str, m: usize, k: usize, n: usize, reps: usize) {
    let x: Vec<f32> = (0..m * k).map(|i| ((i * 7919) % 255) as f32 / 64.0 - 2.0).collect();
    let rows: Vec<&[f32]> = x.chunks_exact(k).collect();
    let (scale, offset) = (vec![1.0f32; k], vec![0.01f32; k]);
    let pre = Affine { scale: &scale, offset: &offset };
    let w: Vec<T> = (0..n * k).map(|i| T::from(((i * 31) % 17) as f32 / 17.0)).collect();
    let kernel = KernelKind::best();
    let sub = 32;
    let mut s = vec![T::default(); sub * n];
    let mut d = vec![T::default(); n * k];
    let nt = fastest(reps, || {
        for r in rows.chunks(sub) {
            gemm_nt_affine_with(kernel, r, pre, &w, n, &mut s[..r.len() * n]).unwrap();
        }
    });
    let tn = fastest(reps, || {
        for r in rows.chunks(sub) {
            gemm_tn_affine_add_with(kernel, &s[..r.len() * n], n, r, pre, &mut d).unwrap();
        }
    });
    // the general path: form the rows in T, then two products
    let mut xt = vec![T::default(); sub * k];
    let general = fastest(reps, || {
        for r in rows.chunks(sub) {
            for (o, row) in xt.chunks_exact_mut(k).zip(r) {
                for ((o, &v), (&sc, &of)) in o.iter_mut().zip(*row).zip(scale.iter().zip(&offset)) {
                    *o = T::from(v * sc + of);
                }
            }
            let mm = r.len();
            gemm(
                mm,
                n,
                k,
                T::from(1.0),
                &xt[..mm * k],
                Op::N,
                &w,
                Op::T,
                T::default(),
                &mut s[..mm * n],
            )
            .unwrap();
            gemm(
                n,
                k,
                mm,
                T::from(1.0),
                &s[..mm * n],
                Op::T,
                &xt[..mm * k],
                Op::N,
                T::from(1.0),
                &mut d,
            )
            .unwrap();
        }
    });
    let gmac = (m * k * n) as f64 / 1e9;
    println!(
        "{name} m={m} k={k} n={n} ({kernel:?}): nt {:.2} ms ({:.1} GMAC/s), tn {:.2} ms ({:.1}), both {:.2} ms; general (rows + 2 gemm) {:.2} ms",
        nt * 1e3,
        gmac / nt,
        tn * 1e3,
        gmac / tn,
        (nt + tn) * 1e3,
        general * 1e3
    );
}

fn main() {
    let a: Vec<usize> = std::env::args().skip(1).map(|s| s.parse().expect("a number")).collect();
    let (m, k, n) = (
        a.first().copied().unwrap_or(5000),
        a.get(1).copied().unwrap_or(3072),
        a.get(2).copied().unwrap_or(10),
    );
    let pool = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
    pool.install(|| {
        run::<f32>("f32", m, k, n, 20);
        run::<f64>("f64", m, k, n, 20);
    });
}
