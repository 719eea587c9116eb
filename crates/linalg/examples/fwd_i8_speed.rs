//! Times the exact-integer forward product (`NtPackedI8::pack` + `gemm_nt_u8_i8_serial`)
//! against the f32 packed one (`gemm_nt_u8_packed_serial`, packed once outside the loop) on
//! one thread, side by side: batches of 200 random rows x 10 classes over 1,536 or 3,072
//! features, rows drawn from a 150 MB dataset (cold, as in SGD) or from a 256-row set that
//! stays in L2. Every call gets its own fresh batch and the two products alternate call by
//! call, so both see the same machine load.
//! `cargo run --release -p imgclass-linalg --example fwd_i8_speed -- [calls]`.

use std::time::Instant;

use imgclass_linalg::gemm::{
    Affine, KernelKind, NtPacked, NtPackedI8, gemm_nt_u8_i8_serial, gemm_nt_u8_packed_serial,
};

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// Minimum and median of per-call times, in µs.
fn stats(v: &mut [f64]) -> (f64, f64) {
    v.sort_by(f64::total_cmp);
    (v[0] * 1e6, v[v.len() / 2] * 1e6)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let calls: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(400);
    let kernel = KernelKind::Avx512;
    if !kernel.is_available() {
        println!("no AVX-512 on this CPU: nothing to compare");
        return Ok(());
    }
    let (d, m, n, big_rows, small_rows) = (3072usize, 200usize, 10usize, 50_000usize, 256usize);
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let big: Vec<u8> = (0..big_rows * d).map(|_| (rng.next() >> 24) as u8).collect();
    let small: Vec<u8> = (0..small_rows * d).map(|_| (rng.next() >> 24) as u8).collect();
    let w_full: Vec<f32> = (0..n * d)
        .map(|_| ((rng.next() >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 2e-3)
        .collect();
    let scale = vec![1.0f32; d];
    let offset: Vec<f32> = (0..d).map(|_| -100.0 - (rng.next() % 50) as f32).collect();
    let probe = NtPackedI8::new(kernel);
    println!(
        "fwd_i8 on {} (VNNI: {}), {calls} calls per case, {m} rows x {n} classes, one thread",
        kernel.name(),
        probe.is_simd()
    );
    println!(
        "{:>6} {:>6} | {:>17} | {:>17} | {:>15} | {:>13} | {:>6}",
        "k", "rows", "f32 min/med µs", "i8 min/med µs", "pack min/med", "f32 repack", "ratio"
    );
    for &(k0, k1) in &[(1536usize, 3072usize), (0, 3072)] {
        let k = k1 - k0;
        let pre = Affine { scale: &scale[k0..k1], offset: &offset[k0..k1] };
        let segs: Vec<&[f32]> = w_full.chunks_exact(d).map(|r| &r[k0..k1]).collect();
        let w: Vec<f32> = segs.concat();
        for (name, data, rows_in) in [("150MB", &big, big_rows), ("L2", &small, small_rows)] {
            let mut f32_packed = NtPacked::new(kernel, pre, &w, n)?;
            let mut i8_packed = NtPackedI8::new(kernel);
            let (mut tf, mut ti, mut tp, mut tr) = (vec![], vec![], vec![], vec![]);
            let mut out_f = vec![0.0f32; m * n];
            let mut out_i = vec![0.0f32; m * n];
            let mut worst = 0.0f32;
            for _ in 0..calls {
                let mut batch = || -> Vec<&[u8]> {
                    (0..m)
                        .map(|_| {
                            let i = (rng.next() % rows_in as u64) as usize;
                            &data[i * d + k0..i * d + k1]
                        })
                        .collect()
                };
                let (a, b) = (batch(), batch());
                let t = Instant::now();
                gemm_nt_u8_packed_serial(&a, pre, &w, n, &f32_packed, &mut out_f)?;
                tf.push(t.elapsed().as_secs_f64());
                let t = Instant::now();
                i8_packed.pack(pre, &segs)?;
                tp.push(t.elapsed().as_secs_f64());
                let t = Instant::now();
                gemm_nt_u8_i8_serial(&b, pre, &i8_packed, &mut out_i)?;
                ti.push(t.elapsed().as_secs_f64());
                // the f32 repack a training loop would do instead (every block), for reference
                let t = Instant::now();
                for mut blk in f32_packed.blocks_mut() {
                    let b0 = blk.index() * NtPacked::BLOCK;
                    let b1 = (b0 + NtPacked::BLOCK).min(k);
                    let bs: Vec<&[f32]> = segs.iter().map(|s| &s[b0..b1]).collect();
                    blk.pack(pre, &bs)?;
                }
                f32_packed.finish();
                tr.push(t.elapsed().as_secs_f64());
                // sanity: the same batch through both agrees to f32-ish precision
                gemm_nt_u8_i8_serial(&a, pre, &i8_packed, &mut out_i)?;
                for (x, y) in out_f.iter().zip(&out_i) {
                    worst = worst.max((x - y).abs() / x.abs().max(1.0));
                }
            }
            let ((fmin, fmed), (imin, imed)) = (stats(&mut tf), stats(&mut ti));
            let ((pmin, pmed), (rmin, rmed)) = (stats(&mut tp), stats(&mut tr));
            println!(
                "{k:>6} {name:>6} | {fmin:>7.1} / {fmed:>7.1} | {imin:>7.1} / {imed:>7.1} | {pmin:>6.2} / {pmed:>6.2} | {rmin:>5.2} / {rmed:>5.2} | {:>5.2}x  (max rel diff {worst:.1e})",
                fmed / imed
            );
        }
    }
    Ok(())
}
