//! Conformance of the distance kernels: every available kernel equals the scalar twin
//! exactly on u8 (random, all-0 / all-255 / alternating rows, every tail length), f32 kernels
//! agree within a stated tolerance, and top-k equals the lecture's naive loop (sort all
//! distances by (distance, index)) on data full of exact ties.

use imgclass_linalg::{
    KERNEL_ENV, KernelKind, LinalgError, Metric, Rows, knn_f32_with, knn_u8, knn_u8_with,
    max_u8_dim, pairwise_f32_with, pairwise_u8_with,
};
use imgclass_testkit::random::{
    adversarial_u8_rows, f32_rows, naive_distance_f32, naive_knn, naive_pairwise_u8, u8_rows,
};

const DIMS: [usize; 9] = [0, 1, 7, 8, 9, 63, 64, 65, 3072];

/// Queries mixing adversarial and random rows, training rows likewise, for one dimension.
fn data(dim: usize, nq: usize, nt: usize, seed: u64) -> (Vec<u8>, Vec<u8>) {
    let mut q = adversarial_u8_rows(seed, nq / 2, dim);
    q.extend(u8_rows(seed + 1, nq - nq / 2, dim, 255));
    let mut t = u8_rows(seed + 2, nt - nt / 2, dim, 255);
    t.extend(adversarial_u8_rows(seed + 3, nt / 2, dim));
    (q, t)
}

#[test]
fn every_u8_kernel_equals_scalar_and_naive_at_every_tail_length() {
    for dim in DIMS {
        // 70 queries cross the 64- and 32-query panels; 13 training rows leave a partial tile
        let (nq, nt) = (70, 13);
        let (q, t) = data(dim, nq, nt, dim as u64);
        let qr = Rows::new(&q, nq, dim).unwrap();
        let tr = Rows::new(&t, nt, dim).unwrap();
        for metric in [Metric::L1, Metric::L2] {
            let expect: Vec<u32> = naive_pairwise_u8(&q, nq, &t, nt, dim, metric)
                .into_iter()
                .map(|d| u32::try_from(d).unwrap())
                .collect();
            let mut scalar = vec![0u32; nq * nt];
            pairwise_u8_with(KernelKind::Scalar, qr, tr, metric, &mut scalar).unwrap();
            assert_eq!(scalar, expect, "scalar vs naive, dim {dim}, {metric}");
            for kernel in KernelKind::available() {
                let mut got = vec![u32::MAX; nq * nt];
                pairwise_u8_with(kernel, qr, tr, metric, &mut got).unwrap();
                assert_eq!(got, scalar, "{kernel} vs scalar, dim {dim}, {metric}");
            }
        }
    }
}

#[test]
fn extreme_rows_reach_the_largest_distances_exactly() {
    let dim = 3072;
    let zeros = vec![0u8; dim];
    let full = vec![255u8; dim];
    let mut t = zeros.clone();
    t.extend(&full);
    for kernel in KernelKind::available() {
        let mut out = [0u32; 4];
        let mut q = full.clone();
        q.extend(&zeros);
        let (qr, tr) = (Rows::new(&q, 2, dim).unwrap(), Rows::new(&t, 2, dim).unwrap());
        pairwise_u8_with(kernel, qr, tr, Metric::L2, &mut out).unwrap();
        // 3,072 * 255^2 = 199,756,800 (the issue text says 199,749,600: an arithmetic slip)
        assert_eq!(out, [199_756_800, 0, 0, 199_756_800], "{kernel}");
        pairwise_u8_with(kernel, qr, tr, Metric::L1, &mut out).unwrap();
        assert_eq!(out, [783_360, 0, 0, 783_360], "{kernel}");
    }
}

/// Issue 17 item 1: at the longest accepted L2 row every kernel is exact (even where the
/// expanded form's partial sums `||q||² + ||t||²` exceed `u32`), and one element more is
/// refused with a typed error instead of a wrapped, tiny distance to a far row.
#[test]
fn u8_rows_at_the_length_limit_are_exact_and_longer_rows_are_refused() {
    let max = max_u8_dim(Metric::L2);
    assert_eq!(max as u64, u64::from(u32::MAX) / (255 * 255), "independent bound");
    let dim = max;
    // queries: all-255 and all-0; training rows: all-255, all-0, and all-1
    let q: Vec<u8> = [vec![255u8; dim], vec![0u8; dim]].concat();
    let t: Vec<u8> = [vec![255u8; dim], vec![0u8; dim], vec![1u8; dim]].concat();
    let expect: Vec<u32> = naive_pairwise_u8(&q, 2, &t, 3, dim, Metric::L2)
        .into_iter()
        .map(|d| u32::try_from(d).unwrap())
        .collect();
    for kernel in KernelKind::available() {
        let mut got = vec![0u32; 6];
        pairwise_u8_with(
            kernel,
            Rows::new(&q, 2, dim).unwrap(),
            Rows::new(&t, 3, dim).unwrap(),
            Metric::L2,
            &mut got,
        )
        .unwrap();
        assert_eq!(got, expect, "{kernel}, dim {dim}");
        let top = knn_u8_with(
            kernel,
            Rows::new(&q, 2, dim).unwrap(),
            Rows::new(&t, 3, dim).unwrap(),
            3,
            Metric::L2,
        )
        .unwrap();
        // query 1 (all 0): all-0, then all-1, then all-255 (the farthest, not wrapped to near)
        assert_eq!(top.query(1).0, &[1, 2, 0], "{kernel}");
    }
    // one element more: the farthest row's true distance (255² · 66,052) exceeds u32
    let dim = max + 1;
    let q = vec![0u8; dim];
    let t: Vec<u8> = [vec![255u8; dim], vec![1u8; dim]].concat();
    for kernel in KernelKind::available() {
        let qr = Rows::new(&q, 1, dim).unwrap();
        let tr = Rows::new(&t, 2, dim).unwrap();
        let want = LinalgError::RowTooLong { dim, max, metric: "l2" };
        assert_eq!(knn_u8_with(kernel, qr, tr, 1, Metric::L2).unwrap_err(), want, "{kernel}");
        let mut out = vec![0u32; 2];
        assert_eq!(pairwise_u8_with(kernel, qr, tr, Metric::L2, &mut out).unwrap_err(), want);
        let msg = want.to_string();
        assert!(
            msg.contains("66052") && msg.contains("66051") && msg.contains("too long"),
            "{msg}"
        );
        // L1 has a looser bound: the same rows are exact
        let top = knn_u8_with(kernel, qr, tr, 2, Metric::L1).unwrap();
        assert_eq!(top.query(0), (&[1u32, 0][..], &[dim as u32, 255 * dim as u32][..]));
    }
    let l1 = max_u8_dim(Metric::L1);
    assert_eq!(l1 as u64, u64::from(u32::MAX) / 255);
}

#[test]
fn chunked_and_gathered_training_rows_match_scalar() {
    // 300 training rows of 3072 bytes span several L2 chunks; gathered in a shuffled order
    let (dim, nq, nt) = (3072, 40, 300);
    let (q, t) = data(dim, nq, nt, 99);
    let order: Vec<usize> = (0..nt).map(|i| (i * 7919) % nt).collect();
    let qr = Rows::new(&q, nq, dim).unwrap();
    let gathered = Rows::gather(&t, dim, &order).unwrap();
    let copied: Vec<u8> = order.iter().flat_map(|&i| t[i * dim..(i + 1) * dim].to_vec()).collect();
    let contiguous = Rows::new(&copied, nt, dim).unwrap();
    for metric in [Metric::L1, Metric::L2] {
        let mut scalar = vec![0u32; nq * nt];
        pairwise_u8_with(KernelKind::Scalar, qr, contiguous, metric, &mut scalar).unwrap();
        let (ei, ed) = naive_knn(&scalar, nq, nt, 10);
        for kernel in KernelKind::available() {
            let mut got = vec![0u32; nq * nt];
            pairwise_u8_with(kernel, qr, gathered, metric, &mut got).unwrap();
            assert_eq!(got, scalar, "{kernel} {metric}");
            let top = knn_u8_with(kernel, qr, gathered, 10, metric).unwrap();
            assert_eq!(top.indices, ei, "{kernel} {metric}");
            assert_eq!(top.distances, ed, "{kernel} {metric}");
        }
    }
}

#[test]
fn top_k_equals_the_naive_loop_on_data_full_of_ties() {
    // values in 0..3 over 5 dims: only a few distinct distances, so most neighbours tie
    let (dim, nq, nt) = (5, 150, 400);
    let q = u8_rows(7, nq, dim, 2);
    let t = u8_rows(8, nt, dim, 2);
    let qr = Rows::new(&q, nq, dim).unwrap();
    let tr = Rows::new(&t, nt, dim).unwrap();
    for metric in [Metric::L1, Metric::L2] {
        let dists: Vec<u64> = naive_pairwise_u8(&q, nq, &t, nt, dim, metric);
        for k in [1, 2, 7, 100, nt] {
            let (ei, ed) = naive_knn(&dists, nq, nt, k);
            let ed: Vec<u32> = ed.into_iter().map(|d| d as u32).collect();
            for kernel in KernelKind::available() {
                let top = knn_u8_with(kernel, qr, tr, k, metric).unwrap();
                assert_eq!(top.k, k);
                assert_eq!(top.indices, ei, "{kernel} {metric} k={k}");
                assert_eq!(top.distances, ed, "{kernel} {metric} k={k}");
            }
        }
    }
}

#[test]
fn results_do_not_depend_on_the_thread_count() {
    let (dim, nq, nt) = (65, 300, 500);
    let q = u8_rows(1, nq, dim, 3);
    let t = u8_rows(2, nt, dim, 3);
    let (qr, tr) = (Rows::new(&q, nq, dim).unwrap(), Rows::new(&t, nt, dim).unwrap());
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        pool.install(|| knn_u8(qr, tr, 5, Metric::L2).unwrap())
    };
    assert_eq!(run(1), run(3));
}

/// The documented absolute bound of the f32 GEMM form (`flat.rs`), with a 2x margin; L1 is
/// one sequential f32 chain, bounded by `dim · 2⁻²⁴ · L1`. Both plus the underflow term
/// `(dim + 2) · 2⁻¹⁴⁹` (squares of subnormal values vanish).
fn f32_bound(metric: Metric, a: &[f32], b: &[f32], exact: f64) -> f64 {
    let u = 2f64.powi(-24);
    let dim = a.len() as f64;
    let n2 = |r: &[f32]| r.iter().map(|&x| f64::from(x).powi(2)).sum::<f64>();
    let underflow = (dim + 2.0) * 2f64.powi(-149);
    underflow
        + match metric {
            Metric::L1 => 2.0 * dim * u * exact,
            Metric::L2 => 2.0 * (dim + 2.0) * u * (n2(a) + n2(b)),
            Metric::Cosine => 2.0 * (dim + 4.0) * u,
        }
}

/// f32 rows: standard normal, plus adversarial rows (all zero, huge 1e15, tiny subnormal
/// 1e-40, alternating sign, a duplicate of another row).
fn f32_data(seed: u64, n: usize, dim: usize) -> Vec<f32> {
    let mut v = f32_rows(seed, n, dim);
    let fills: [&dyn Fn(usize) -> f32; 4] =
        [&|_| 0.0, &|_| 1e15, &|_| 1e-40, &|i| if i % 2 == 0 { 3.5 } else { -3.5 }];
    for (r, f) in fills.iter().enumerate().take(n) {
        for i in 0..dim {
            v[r * dim + i] = f(i);
        }
    }
    if n > 6 {
        let (a, b) = v.split_at_mut(6 * dim);
        b[..dim].copy_from_slice(&a[5 * dim..6 * dim]);
    }
    v
}

#[test]
fn f32_kernels_equal_scalar_bitwise_and_naive_within_the_bound() {
    // dims cross the 256-dimension slices; 70 queries cross the 32-query panels; 205
    // training rows cross the 12-row tiles and the 192-row chunks
    for dim in [0, 1, 7, 9, 65, 255, 256, 257, 3072] {
        let (nq, nt) = (70, if dim > 300 { 30 } else { 205 });
        let q = f32_data(dim as u64, nq, dim);
        let mut t = f32_data(dim as u64 + 1, nt, dim);
        t[7 * dim..8 * dim].copy_from_slice(&q[9 * dim..10 * dim]); // an exact duplicate
        let (qr, tr) = (Rows::new(&q, nq, dim).unwrap(), Rows::new(&t, nt, dim).unwrap());
        for metric in [Metric::L1, Metric::L2] {
            let mut scalar = vec![0f32; nq * nt];
            pairwise_f32_with(KernelKind::Scalar, qr, tr, metric, &mut scalar).unwrap();
            for i in 0..nq {
                for j in 0..nt {
                    let (a, b) = (&q[i * dim..(i + 1) * dim], &t[j * dim..(j + 1) * dim]);
                    let exact = naive_distance_f32(a, b, metric);
                    let err = (f64::from(scalar[i * nt + j]) - exact).abs();
                    let bound = f32_bound(metric, a, b, exact);
                    assert!(err <= bound, "{metric} dim {dim} ({i}, {j}): {err} > {bound}");
                }
            }
            for kernel in KernelKind::available() {
                let mut got = vec![f32::NAN; nq * nt];
                pairwise_f32_with(kernel, qr, tr, metric, &mut got).unwrap();
                let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&got), bits(&scalar), "{kernel} vs scalar, {metric} dim {dim}");
                // top-k ranks by these distances, ties by index
                let top = knn_f32_with(kernel, qr, tr, 4, metric).unwrap();
                let (ei, ed) = naive_knn(&scalar, nq, nt, 4);
                assert_eq!(top.indices, ei, "{kernel} {metric} dim {dim}");
                assert_eq!(bits(&top.distances), bits(&ed), "{kernel} {metric} dim {dim}");
            }
        }
    }
}

/// Cosine distance from the definition in f64 (1 when either row is zero).
fn naive_cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(&x, &y)| f64::from(x) * f64::from(y)).sum();
    let n = |r: &[f32]| r.iter().map(|&x| f64::from(x).powi(2)).sum::<f64>().sqrt();
    if n(a) == 0.0 || n(b) == 0.0 { 1.0 } else { 1.0 - dot / (n(a) * n(b)) }
}

#[test]
fn cosine_equals_the_naive_reference_on_every_kernel_and_is_refused_on_u8() {
    for dim in [0, 1, 7, 65, 257, 3072] {
        let (nq, nt) = (40, if dim > 300 { 30 } else { 205 });
        let q = f32_data(dim as u64 + 10, nq, dim);
        let mut t = f32_data(dim as u64 + 11, nt, dim);
        if dim > 0 {
            // a positive multiple of a query: distance 0 up to rounding
            for i in 0..dim {
                t[8 * dim + i] = 2.5 * q[12 * dim + i];
            }
        }
        let (qr, tr) = (Rows::new(&q, nq, dim).unwrap(), Rows::new(&t, nt, dim).unwrap());
        let mut scalar = vec![0f32; nq * nt];
        pairwise_f32_with(KernelKind::Scalar, qr, tr, Metric::Cosine, &mut scalar).unwrap();
        for i in 0..nq {
            for j in 0..nt {
                let (a, b) = (&q[i * dim..(i + 1) * dim], &t[j * dim..(j + 1) * dim]);
                if i == 2 || j == 2 {
                    continue; // the subnormal row: its f32 dot products underflow (flat.rs)
                }
                let want = naive_cosine(a, b);
                let got = f64::from(scalar[i * nt + j]);
                // flat.rs: (dim + 4) 2^-24, with a 2x margin
                let bound = 2.0 * (dim as f64 + 4.0) * 2f64.powi(-24);
                assert!((got - want).abs() <= bound, "dim {dim} ({i}, {j}): {got} vs {want}");
            }
        }
        for kernel in KernelKind::available() {
            let mut got = vec![f32::NAN; nq * nt];
            pairwise_f32_with(kernel, qr, tr, Metric::Cosine, &mut got).unwrap();
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&got), bits(&scalar), "{kernel} vs scalar, dim {dim}");
            let top = knn_f32_with(kernel, qr, tr, 3, Metric::Cosine).unwrap();
            let (ei, ed) = naive_knn(&scalar, nq, nt, 3);
            assert_eq!(top.indices, ei, "{kernel} dim {dim}");
            assert_eq!(bits(&top.distances), bits(&ed), "{kernel} dim {dim}");
        }
    }
    let b = [1u8, 2, 3, 4];
    let r = Rows::new(&b, 2, 2).unwrap();
    let e = LinalgError::UnsupportedMetric { metric: "cosine", dtype: "u8" };
    assert_eq!(knn_u8(r, r, 1, Metric::Cosine).unwrap_err(), e);
    let mut out = [0u32; 4];
    assert_eq!(pairwise_u8_with(KernelKind::Scalar, r, r, Metric::Cosine, &mut out), Err(e));
}

#[test]
fn f32_nan_and_overflow_rank_last_on_every_kernel() {
    let dim = 5;
    // train: a NaN row, a row of 1e38 (its dot products overflow f32), then two finite rows
    let mut t = vec![f32::NAN; dim];
    t.extend(vec![1e38f32; dim]);
    t.extend([1.0, 2.0, 3.0, 4.0, 5.0]);
    t.extend([1.0, 2.0, 3.0, 4.0, 6.0]);
    let q = vec![1.0f32, 2.0, 3.0, 4.0, 5.0];
    let (qr, tr) = (Rows::new(&q, 1, dim).unwrap(), Rows::new(&t, 4, dim).unwrap());
    for kernel in KernelKind::available() {
        let top = knn_f32_with(kernel, qr, tr, 4, Metric::L2).unwrap();
        assert_eq!(top.indices, vec![2, 3, 0, 1], "{kernel}");
        assert_eq!(&top.distances[..2], &[0.0, 1.0], "{kernel}");
        assert!(top.distances[2..].iter().all(|d| d.is_nan() && d.is_sign_positive()));
        let top = knn_f32_with(kernel, qr, tr, 4, Metric::L1).unwrap();
        // L1 has no GEMM form: the 1e38 row is +inf away, before NaN
        assert_eq!(top.indices, vec![2, 3, 1, 0], "{kernel}");
        assert!(top.distances[3].is_nan());
    }
}

#[test]
fn f32_results_do_not_depend_on_the_thread_count() {
    let (dim, nq, nt) = (300, 200, 400);
    let q = f32_rows(1, nq, dim);
    let t = f32_rows(2, nt, dim);
    let (qr, tr) = (Rows::new(&q, nq, dim).unwrap(), Rows::new(&t, nt, dim).unwrap());
    for metric in [Metric::L1, Metric::L2] {
        let run = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            pool.install(|| imgclass_linalg::knn_f32(qr, tr, 5, metric).unwrap())
        };
        assert_eq!(run(1), run(3));
    }
}

#[test]
fn bad_input_gives_typed_errors() {
    let q = [0u8; 6];
    let t = [0u8; 8];
    let q3 = Rows::new(&q, 2, 3).unwrap();
    let t4 = Rows::new(&t, 2, 4).unwrap();
    let t2 = Rows::new(&t, 4, 2).unwrap();
    let q2 = Rows::new(&q, 3, 2).unwrap();
    assert_eq!(
        Rows::new(&q, 4, 2).unwrap_err(),
        LinalgError::BufferLen { expected: 8, found: 6, n_rows: 4, dim: 2 }
    );
    assert_eq!(
        Rows::gather(&t, 2, &[0, 4]).unwrap_err(),
        LinalgError::IndexOutOfRange { index: 4, len: 4 }
    );
    assert_eq!(
        knn_u8(q3, t4, 1, Metric::L1).unwrap_err(),
        LinalgError::ShapeMismatch { expected: 4, found: 3 }
    );
    assert_eq!(knn_u8(q2, t2, 0, Metric::L1).unwrap_err(), LinalgError::ZeroK);
    assert_eq!(
        knn_u8(q2, t2, 5, Metric::L2).unwrap_err(),
        LinalgError::KTooLarge { k: 5, n_train: 4 }
    );
    let mut out = [0u32; 5];
    assert_eq!(
        pairwise_u8_with(KernelKind::Scalar, q2, t2, Metric::L1, &mut out).unwrap_err(),
        LinalgError::OutputLen { expected: 12, found: 5 }
    );
}

/// Run by `kernels_forced_through_the_environment` in a child process with `IMGCLASS_KERNEL`
/// set; on its own (no variable) it checks the default kernel the same way.
#[test]
fn env_forced_kernel_probe() {
    let forced = std::env::var(KERNEL_ENV).ok();
    let kind = KernelKind::detect().unwrap();
    if let Some(name) = &forced {
        assert_eq!(kind.name(), name.as_str());
    }
    let (dim, nq, nt) = (67, 70, 50);
    let (q, t) = data(dim, nq, nt, 5);
    let (qr, tr) = (Rows::new(&q, nq, dim).unwrap(), Rows::new(&t, nt, dim).unwrap());
    for metric in [Metric::L1, Metric::L2] {
        let dists = naive_pairwise_u8(&q, nq, &t, nt, dim, metric);
        let (ei, _) = naive_knn(&dists, nq, nt, 3);
        let top = knn_u8(qr, tr, 3, metric).unwrap();
        assert_eq!(top.indices, ei, "{kind} {metric}");
    }
}

#[test]
fn kernels_forced_through_the_environment() {
    let exe = std::env::current_exe().unwrap();
    for kernel in KernelKind::available() {
        let status = std::process::Command::new(&exe)
            .args(["env_forced_kernel_probe", "--exact", "--test-threads=1"])
            .env(KERNEL_ENV, kernel.name())
            .status()
            .unwrap();
        assert!(status.success(), "forced {kernel} failed");
    }
    // an unknown name is an error, not a silent fallback
    let status = std::process::Command::new(&exe)
        .args(["env_forced_kernel_probe", "--exact", "--test-threads=1"])
        .env(KERNEL_ENV, "sse9")
        .stderr(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(!status.success());
}
