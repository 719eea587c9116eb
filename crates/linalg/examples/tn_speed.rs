//! One-thread timing of the backward product `gemm_tn_u8_cols_with` at the shape softmax SGD
//! gives each of its two threads: `m` rows (default 200, env `M`) x 10 classes x one half of
//! the 3,072 features, either in one call (`0..1,536`, `1,536..3,072`) or in six calls of 256
//! features. Rows are random rows of a 150 MB dataset (49,000 x 3,072 bytes) that are read
//! in full just before the timed call, as the forward pass of the same SGD iteration does
//! (env `ROWS`: rows in the dataset; env `TOUCH=split`: half of them by another thread, as a forward pass split by rows
//! over two threads leaves them; `TOUCH=cold`: not read; `CACHED=1` reuses one batch). Beside the library's kernel it times a copy of
//! the AVX-512 backward kernel as it was before the affine map was folded out of its inner
//! loop (commit 3e74975), alternating the variants on the same batches so both see the same
//! load. Prints the minimum and median µs per half and GFMA/s (`m · 10 · 1,536` multiply-adds
//! per half).
//!
//! `cargo run --release -p imgclass-linalg --example tn_speed [reps]`

use imgclass_linalg::gemm::{Affine, KernelKind, gemm_tn_u8_cols_with};
use std::hint::black_box;
use std::time::Instant;

/// The AVX-512 backward kernel of commit 3e74975 (10 classes x 32 features per register
/// block, affine map applied to every pixel), for `n = 10` only: the "before" of the figures.
#[cfg(target_arch = "x86_64")]
#[allow(clippy::incompatible_msrv, clippy::needless_range_loop)]
mod old {
    use imgclass_linalg::gemm::Affine;
    use std::arch::x86_64::*;

    const NR: usize = 10;

    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn load_x(r: &[u8], kk: usize, sc: __m512, of: __m512) -> __m512 {
        // SAFETY: the caller guarantees `kk + 16 <= r.len()`.
        let b = unsafe { _mm_loadu_si128(r.as_ptr().add(kk).cast()) };
        _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(b)), sc, of)
    }

    /// `out` (10 x (k1 − k0)) = columns `k0..k1` of `Gᵀ X̃`; `k1 − k0` a multiple of 32.
    ///
    /// # Safety
    /// AVX-512F; `g` holds `rows.len() x 10` floats, rows and `pre` have `k >= k1` entries.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn tn(
        g: &[f32],
        rows: &[&[u8]],
        pre: Affine<'_>,
        k0: usize,
        k1: usize,
        out: &mut [f32],
    ) {
        assert!(
            (k1 - k0).is_multiple_of(32)
                && out.len() == NR * (k1 - k0)
                && g.len() == rows.len() * NR
        );
        assert!(
            rows.iter().all(|r| r.len() >= k1) && pre.scale.len() >= k1 && pre.offset.len() >= k1
        );
        let (m, ld, n, j0) = (rows.len(), k1 - k0, NR, 0);
        let mut kk = k0;
        while kk + 32 <= k1 {
            let mut a0 = [_mm512_setzero_ps(); NR];
            let mut a1 = [_mm512_setzero_ps(); NR];
            // SAFETY: kk + 32 <= k1 <= every length (asserted above).
            unsafe {
                let sc0 = _mm512_loadu_ps(pre.scale.as_ptr().add(kk));
                let of0 = _mm512_loadu_ps(pre.offset.as_ptr().add(kk));
                let sc1 = _mm512_loadu_ps(pre.scale.as_ptr().add(kk + 16));
                let of1 = _mm512_loadu_ps(pre.offset.as_ptr().add(kk + 16));
                for (i, r) in rows.iter().enumerate() {
                    if kk.is_multiple_of(64) {
                        _mm_prefetch::<_MM_HINT_T0>(
                            rows[(i + 6).min(m - 1)].as_ptr().add(kk).cast(),
                        );
                    }
                    let x0 = load_x(r, kk, sc0, of0);
                    let x1 = load_x(r, kk + 16, sc1, of1);
                    let gi = g.as_ptr().add(i * n + j0);
                    for c in 0..NR {
                        let gv = _mm512_set1_ps(*gi.add(c));
                        a0[c] = _mm512_fmadd_ps(gv, x0, a0[c]);
                        a1[c] = _mm512_fmadd_ps(gv, x1, a1[c]);
                    }
                }
                for c in 0..NR {
                    let o = out.as_mut_ptr().add(c * ld + kk - k0);
                    _mm512_storeu_ps(o, a0[c]);
                    _mm512_storeu_ps(o.add(16), a1[c]);
                }
            }
            kk += 32;
        }
    }
}

/// xorshift64*: fast deterministic bytes for the 150 MB dataset.
struct Gen(u64);
impl Gen {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Variant {
    OldWhole,
    OldBlocks,
    NewWhole,
    NewBlocks,
}

impl Variant {
    fn name(self) -> &'static str {
        match self {
            Self::OldWhole => "before, one call per half",
            Self::OldBlocks => "before, 6 calls of 256",
            Self::NewWhole => "after,  one call per half",
            Self::NewBlocks => "after,  6 calls of 256",
        }
    }
}

/// Where the batch's bytes were last read before the timed call.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Touch {
    /// Every row by this thread (its forward pass read them): L1/L2.
    Own,
    /// Half the rows by this thread, half by another (a forward pass split by rows over two
    /// threads): the other half sits in the other core's caches or L3.
    Split,
    /// Not read at all: random rows of the 150 MB set, mostly in DRAM.
    Cold,
}

/// Reads every byte of the rows (as a forward pass does); returns a value to keep.
fn read_all(rows: &[&[u8]]) -> u64 {
    let mut s = 0u64;
    for row in rows {
        s = s.wrapping_add(
            row.chunks_exact(8)
                .fold(0u64, |a, c| a ^ u64::from_le_bytes(c.try_into().unwrap_or_default())),
        );
    }
    s
}

/// Register-only loop of 20 independent zmm FMA chains: multiply-adds per second one core
/// sustains (the peak the kernels are measured against).
#[cfg(target_arch = "x86_64")]
#[allow(clippy::incompatible_msrv)]
#[target_feature(enable = "avx512f")]
fn fma_peak() -> f64 {
    use std::arch::x86_64::*;
    let iters = 2_000_000usize;
    let mut best = f64::MAX;
    for _ in 0..5 {
        let a = black_box(_mm512_set1_ps(0.999));
        let b = black_box(_mm512_set1_ps(1e-3));
        let mut acc = [_mm512_setzero_ps(); 20];
        let t = Instant::now();
        for _ in 0..iters {
            for x in acc.iter_mut() {
                *x = _mm512_fmadd_ps(*x, a, b);
            }
        }
        let dt = t.elapsed().as_secs_f64();
        black_box(acc);
        best = best.min(dt);
    }
    (iters * 20 * 16) as f64 / best
}

fn main() {
    let reps: usize = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(2000);
    let m: usize = std::env::var("M").ok().and_then(|s| s.parse().ok()).unwrap_or(200);
    let cached = std::env::var("CACHED").is_ok_and(|v| v == "1");
    let touch = match std::env::var("TOUCH").as_deref() {
        Ok("split") => Touch::Split,
        Ok("cold") => Touch::Cold,
        _ => Touch::Own,
    };
    let n_rows: usize = std::env::var("ROWS").ok().and_then(|s| s.parse().ok()).unwrap_or(49_000);
    let (n, k, half) = (10usize, 3072usize, 1536usize);
    let mut r = Gen(0x9E37_79B9_7F4A_7C15);
    let mut data = vec![0u8; n_rows * k];
    for c in data.chunks_mut(8) {
        let v = r.next().to_le_bytes();
        c.copy_from_slice(&v[..c.len()]);
    }
    // softmax-like gradient rows: mixed signs, magnitudes around 1/m
    let g: Vec<f32> = (0..m * n)
        .map(|_| ((r.next() >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 2.0 / m as f32)
        .collect();
    let scale = vec![1.0f32; k];
    let offset: Vec<f32> = (0..k).map(|kk| -120.0 - (kk % 16) as f32).collect();
    let pre = Affine { scale: &scale, offset: &offset };
    let kernel = KernelKind::Avx512;
    if !kernel.is_available() {
        eprintln!("this example needs AVX-512F");
        return;
    }
    // env `HALF=0|1`: time only the first or the second half (default: alternate)
    let only_half: Option<usize> = std::env::var("HALF").ok().and_then(|s| s.parse().ok());
    let variants = [Variant::OldWhole, Variant::NewWhole, Variant::OldBlocks, Variant::NewBlocks];
    let mut times: Vec<Vec<f64>> = vec![Vec::with_capacity(reps); variants.len()];
    let mut out = vec![0.0f32; n * half];
    let mut block_out = vec![0.0f32; n * 256];
    let pick = |r: &mut Gen| -> Vec<&[u8]> {
        (0..m)
            .map(|_| (r.next() % n_rows as u64) as usize)
            .map(|i| &data[i * k..(i + 1) * k])
            .collect()
    };
    let mut rows = pick(&mut r);
    for rep in 0..reps {
        for (vi, &v) in variants.iter().enumerate() {
            if !cached {
                rows = pick(&mut r);
            }
            match touch {
                Touch::Own => black_box(read_all(&rows)),
                Touch::Split => std::thread::scope(|sc| {
                    let (mine, theirs) = rows.split_at(m / 2);
                    let other = sc.spawn(|| black_box(read_all(theirs)));
                    black_box(read_all(mine));
                    other.join().unwrap_or_default()
                }),
                Touch::Cold => 0,
            };
            let second = match only_half {
                Some(h) => h == 1,
                None => rep % 2 == 1,
            };
            let (k0, k1) = if second { (half, k) } else { (0, half) };
            let t = Instant::now();
            match v {
                // SAFETY: AVX-512F checked above; lengths asserted inside.
                Variant::OldWhole => unsafe { old::tn(&g, &rows, pre, k0, k1, &mut out) },
                Variant::OldBlocks => {
                    for b in (k0..k1).step_by(256) {
                        // SAFETY: as above.
                        unsafe { old::tn(&g, &rows, pre, b, b + 256, &mut block_out) };
                        black_box(&block_out);
                    }
                }
                Variant::NewWhole => {
                    gemm_tn_u8_cols_with(kernel, &g, n, &rows, pre, k0, k1, &mut out)
                        .expect("shapes")
                }
                Variant::NewBlocks => {
                    for b in (k0..k1).step_by(256) {
                        gemm_tn_u8_cols_with(kernel, &g, n, &rows, pre, b, b + 256, &mut block_out)
                            .expect("shapes");
                        black_box(&block_out);
                    }
                }
            }
            times[vi].push(t.elapsed().as_secs_f64());
            black_box(&out);
        }
    }
    let fma = (m * n * half) as f64;
    println!(
        "m = {m}, n = {n}, 1,536 features per half, {reps} reps, rows {}, touch {touch:?}",
        if cached { "cached (one batch)" } else { "random" }
    );
    // SAFETY: AVX-512F checked above.
    let peak = unsafe { fma_peak() };
    println!("register-only FMA peak: {:.1} GFMA/s", peak / 1e9);
    for (vi, v) in variants.iter().enumerate() {
        let t = &mut times[vi];
        t.sort_by(f64::total_cmp);
        let (min, med) = (t[0], t[t.len() / 2]);
        println!(
            "{:27} min {:6.1} us ({:4.1} GFMA/s, {:3.0} %)  median {:6.1} us ({:4.1} GFMA/s)",
            v.name(),
            min * 1e6,
            fma / min / 1e9,
            100.0 * fma / min / peak,
            med * 1e6,
            fma / med / 1e9
        );
    }
    // the "before" and "after" kernels compute the same product (up to rounding)
    let rows = pick(&mut r);
    let mut a = vec![0.0f32; n * half];
    // SAFETY: as above.
    unsafe { old::tn(&g, &rows, pre, 0, half, &mut a) };
    gemm_tn_u8_cols_with(kernel, &g, n, &rows, pre, 0, half, &mut out).expect("shapes");
    let diff = a.iter().zip(&out).map(|(x, y)| (x - y).abs()).fold(0.0f32, f32::max);
    let mag = a.iter().map(|x| x.abs()).fold(0.0f32, f32::max);
    println!("max |before − after| = {diff:.3e} (max |out| = {mag:.3e})");
}
