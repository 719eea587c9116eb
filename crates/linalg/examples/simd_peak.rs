//! The machine's integer-SIMD peak for the two distance kernels, one thread, registers only:
//! `vpdpbusd` (64 u8 x s8 products per instruction, the L2 kernel's work) and `vpsadbw` +
//! `vpaddq` (64 |a - b| per pair, the L1 kernel's work), 24 independent accumulators.
//! `cargo run --release -p imgclass-linalg --example simd_peak`.

#[cfg(target_arch = "x86_64")]
#[allow(clippy::incompatible_msrv)]
mod peak {
    use std::arch::x86_64::*;
    use std::hint::black_box;

    /// Runs `iters` rounds of 24 `vpdpbusd`; returns a value so the work is kept.
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    pub unsafe fn dpbusd(iters: usize) -> i32 {
        let a = black_box(_mm512_set1_epi8(3));
        let b = black_box(_mm512_set1_epi8(-5));
        let mut acc = [_mm512_setzero_si512(); 24];
        for _ in 0..iters {
            for x in acc.iter_mut() {
                *x = _mm512_dpbusd_epi32(*x, a, b);
            }
        }
        let mut s = _mm512_setzero_si512();
        for x in acc {
            s = _mm512_add_epi32(s, x);
        }
        _mm512_reduce_add_epi32(s)
    }

    /// Runs `iters` rounds of 12 `vpsadbw` + `vpaddq` pairs.
    #[target_feature(enable = "avx512f,avx512bw")]
    pub unsafe fn sad(iters: usize) -> i64 {
        let a = black_box(_mm512_set1_epi8(3));
        let mut b = [_mm512_setzero_si512(); 12];
        for (i, x) in b.iter_mut().enumerate() {
            *x = black_box(_mm512_set1_epi8(i as i8));
        }
        let mut acc = [_mm512_setzero_si512(); 12];
        for _ in 0..iters {
            // re-read the input each round so the sums cannot be hoisted out of the loop
            let a = black_box(a);
            for (x, y) in acc.iter_mut().zip(&b) {
                *x = _mm512_add_epi64(*x, _mm512_sad_epu8(a, *y));
            }
        }
        let mut s = _mm512_setzero_si512();
        for x in acc {
            s = _mm512_add_epi64(s, x);
        }
        _mm512_reduce_add_epi64(s)
    }
}

fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let tick = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (tick(11) + tick(12)) / 100.0
}

fn main() {
    #[cfg(target_arch = "x86_64")]
    {
        if !imgclass_linalg::KernelKind::Avx512.is_available() {
            println!("no AVX-512 VNNI on this CPU");
            return;
        }
        let iters = 2_000_000_000 / 24;
        for (name, work) in [("vpdpbusd (L2)", 24 * 64), ("vpsadbw+vpaddq (L1)", 12 * 64)] {
            let (t, c) = (std::time::Instant::now(), cpu_seconds());
            // SAFETY: AVX-512 F/BW/VNNI availability was checked above.
            let v = unsafe {
                if work == 24 * 64 { peak::dpbusd(iters) as i64 } else { peak::sad(iters) }
            };
            let (wall, cpu) = (t.elapsed().as_secs_f64(), cpu_seconds() - c);
            let pairs = (iters * work) as f64;
            println!(
                "{name}: {:.1} G byte-pairs per cpu-second ({:.1} per wall second), checksum {v}",
                pairs / cpu / 1e9,
                pairs / wall / 1e9
            );
        }
    }
}
