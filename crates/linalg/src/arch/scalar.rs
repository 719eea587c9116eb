//! The portable scalar twin of every distance kernel, and the reference the SIMD kernels are
//! tested against: plain loops with exact integer (u8 -> u32) or sequential f32 accumulation.

use super::{U8Kernel, check_tile};
use crate::Metric;

/// Scalar L1 on u8 rows.
#[derive(Debug, Clone, Copy)]
pub(crate) struct L1;
/// Scalar L2 (dot product) on u8 rows.
#[derive(Debug, Clone, Copy)]
pub(crate) struct L2;

const QP: usize = 4;
const TR: usize = 4;

fn pack_rows(rows: &[&[u8]], dim_main: usize, out: &mut [u8]) {
    out.fill(0);
    for (q, r) in rows.iter().enumerate().take(QP) {
        out[q * dim_main..(q + 1) * dim_main].copy_from_slice(&r[..dim_main]);
    }
}

/// Sum of |a_i - b_i| in u32.
#[inline]
pub(crate) fn l1_u8(a: &[u8], b: &[u8]) -> u32 {
    a.iter().zip(b).map(|(&x, &y)| u32::from(x.abs_diff(y))).sum()
}

/// Sum of a_i * b_i in u32 (at most 255^2 * len: exact for len <= 66,052).
#[inline]
pub(crate) fn dot_u8(a: &[u8], b: &[u8]) -> u32 {
    a.iter().zip(b).map(|(&x, &y)| u32::from(x) * u32::from(y)).sum()
}

impl U8Kernel for L1 {
    const METRIC: Metric = Metric::L1;
    const QP: usize = QP;
    const TR: usize = TR;
    const STEP: usize = 1;
    const DOT_BIAS: i32 = 0;

    fn panel_len(dim_main: usize) -> usize {
        QP * dim_main
    }

    fn pack(rows: &[&[u8]], dim_main: usize, out: &mut [u8]) {
        pack_rows(rows, dim_main, out);
    }

    fn tile(&self, panel: &[u8], dim_main: usize, train: &[&[u8]], out: &mut [i32]) {
        check_tile::<Self>(panel, dim_main, train, out);
        for (r, t) in train.iter().enumerate() {
            for q in 0..QP {
                let qr = &panel[q * dim_main..(q + 1) * dim_main];
                out[r * QP + q] = l1_u8(qr, &t[..dim_main]) as i32;
            }
        }
    }
}

impl U8Kernel for L2 {
    const METRIC: Metric = Metric::L2;
    const QP: usize = QP;
    const TR: usize = TR;
    const STEP: usize = 1;
    const DOT_BIAS: i32 = 0;

    fn panel_len(dim_main: usize) -> usize {
        QP * dim_main
    }

    fn pack(rows: &[&[u8]], dim_main: usize, out: &mut [u8]) {
        pack_rows(rows, dim_main, out);
    }

    fn tile(&self, panel: &[u8], dim_main: usize, train: &[&[u8]], out: &mut [i32]) {
        check_tile::<Self>(panel, dim_main, train, out);
        for (r, t) in train.iter().enumerate() {
            for q in 0..QP {
                let qr = &panel[q * dim_main..(q + 1) * dim_main];
                out[r * QP + q] = dot_u8(qr, &t[..dim_main]) as i32;
            }
        }
    }
}

/// The scalar twin of the f32 micro-kernels ([`F32Tile`](super::F32Tile)): one sequential
/// accumulation per `(training row, query)`, `fma` for the dot product (`f32::mul_add`, one
/// rounding, as the SIMD kernels' `vfmadd`), `c + |a − b|` for L1.
pub(crate) fn tile_f32<const L1: bool>(panel: &[f32], bpack: &[f32], c: &mut [f32], ldc: usize) {
    use super::{F32_QP, F32_TR};
    let kc = super::check_f32_tile(panel, bpack, c, ldc);
    for r in 0..F32_TR {
        for q in 0..F32_QP {
            let mut s = c[r * ldc + q];
            for k in 0..kc {
                let (a, b) = (panel[k * F32_QP + q], bpack[k * F32_TR + r]);
                s = if L1 { s + (a - b).abs() } else { a.mul_add(b, s) };
            }
            c[r * ldc + q] = s;
        }
    }
}
