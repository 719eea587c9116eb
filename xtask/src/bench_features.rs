//! `cargo xtask bench features`: the Coates, Lee & Ng (AISTATS 2011) k-means feature
//! pipeline on CIFAR-10, ours beside `xtask/peers/coates.py` (numpy/scipy, a port of their
//! MATLAB code) on the same configuration in the same run, plus the machine's f32 GEMM
//! throughput as the bound of the extraction.
//!
//! The side-by-side covers the whole pipeline, phase by phase on both sides: random patches
//! and their normalisation, ZCA whitening, k-means, extraction of the training and the test
//! images, standardisation, the one-vs-all L2-SVM (C = `--c`; ours `Reg::L2(1 / (2C))` by
//! dual coordinate descent as the experiment trains it, theirs L-BFGS as `train_svm.m`), and
//! the test accuracy. Ours runs through the library's public API, the calls
//! `KmeansFeatures::fit` makes (same seeds, so the same dictionary), then
//! `KmeansFeatures::transform`, `Standardizer` and `Linear`, as the experiment's `kmeans` and
//! `standardize` steps and its `svm` classifier do. The configuration is `--peer-images`
//! training images (the first ones), `--peer-test-images` test images, `--peer-patches`
//! patches, `--centroids`, `--iterations`, `--c`.
//!
//! The peer also extracts the first `--check` training images with our dictionary, whitening
//! and mean (written as `.npy`), and the two implementations' features are compared value by
//! value. An optional ours-only configuration (`--full`: fit on `--train` images with
//! `--patches` patches, extract `--extract` images) times the extraction against the GEMM
//! bound. One table (phase | ours | numpy | ratio) and `<out-dir>/features.json`.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context as _, bail};
use imgclass_core::rng::SplitMix64;
use imgclass_core::{Fit as _, ImageShape, Predict as _, RowShape, Subset};
use imgclass_eval::accuracy;
use imgclass_features::{KmeansFeatures, KmeansParams, Products, Standardizer};
use imgclass_linalg::gemm::{Op, sgemm};
use imgclass_linear::{Dcd, Linear, Loss, Reg, Solver};
use rayon::prelude::*;

use crate::bench_solver::write_npy;

/// Arguments of `cargo xtask bench features`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Data directory holding `cifar-10/cifar-10-batches-bin/` (default: `$IMGCLASS_DATA_DIR`,
    /// else `<workspace>/datasets`).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Training images of the side-by-side (the first ones, file order): patches are sampled
    /// from them, they are extracted and the SVM is trained on them.
    #[arg(long, default_value_t = 10_000)]
    pub peer_images: usize,
    /// Test images of the side-by-side (the first ones), extracted and scored.
    #[arg(long, default_value_t = 10_000)]
    pub peer_test_images: usize,
    /// Patches of the side-by-side (whitening and k-means are fitted on them).
    #[arg(long, default_value_t = 100_000)]
    pub peer_patches: usize,
    /// Dictionary size K (both configurations).
    #[arg(long, default_value_t = 1600)]
    pub centroids: usize,
    /// k-means iterations (both configurations).
    #[arg(long, default_value_t = KmeansParams::default().iterations)]
    pub iterations: usize,
    /// The SVM's C of Coates' `train_svm.m` (0.5‖θ‖² + C·mean hinge²); ours λ = 1 / (2C).
    #[arg(long, default_value_t = 100.0)]
    pub c: f64,
    /// Our dual coordinate descent: most epochs (the experiment's `dcd_max_epochs`).
    #[arg(long, default_value_t = 200)]
    pub dcd_max_epochs: usize,
    /// Our dual coordinate descent: projected-gradient spread it stops at (the experiment's
    /// `dcd_tolerance`).
    #[arg(long, default_value_t = 0.1)]
    pub dcd_tolerance: f64,
    /// The peer's L-BFGS iterations and evaluations (`train_svm.m`'s minFunc: 1,000).
    #[arg(long, default_value_t = 1000)]
    pub peer_max_iter: usize,
    /// The peer's arithmetic (`float64`, MATLAB's double, or `float32`).
    #[arg(long, value_enum, default_value_t = PeerDtype::Float64)]
    pub peer_dtype: PeerDtype,
    /// The peer's images per extraction block (1: `extract_features.m`'s per-image loop).
    #[arg(long, default_value_t = 1)]
    pub peer_chunk: usize,
    /// The peer's BLAS threads (`OPENBLAS_NUM_THREADS`, `OMP_NUM_THREADS`, `MKL_NUM_THREADS`;
    /// 0: the library's default, every core).
    #[arg(long, default_value_t = 0)]
    pub peer_threads: usize,
    /// Seed (ours and the peer's; the two draw different random numbers).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Images whose features the peer recomputes with our dictionary (compared; 0: none).
    #[arg(long, default_value_t = 50)]
    pub check: usize,
    /// The arithmetic of our extraction's distance products: `f32` (sgemm's bits) or `i8`
    /// (patches and centroids quantised to 8 bits, exact integer sums on AVX-512 VNNI).
    #[arg(long, default_value = "f32", value_parser = parse_products)]
    pub products: Products,
    /// Skip the Python peer (ours only).
    #[arg(long)]
    pub no_peers: bool,
    /// Skip the GEMM throughput measurement.
    #[arg(long)]
    pub no_gemm: bool,
    /// Also run the ours-only fit + extraction configuration below (`--train`, `--patches`,
    /// `--extract`) and compare its extraction with the GEMM bound.
    #[arg(long)]
    pub full: bool,
    /// `--full`: training images the fit samples patches from.
    #[arg(long, default_value_t = 50_000)]
    pub train: usize,
    /// `--full`: patches sampled.
    #[arg(long, default_value_t = 400_000)]
    pub patches: usize,
    /// `--full`: images extracted (the training images, then the test images).
    #[arg(long, default_value_t = 60_000)]
    pub extract: usize,
    /// Python interpreter for the peer (numpy, scipy).
    #[arg(long, default_value = ".venv/bin/python")]
    pub python: PathBuf,
    /// Output directory: `features.json`, and `check/` (our dictionary, whitening, mean and
    /// features of the `--check` images as `.npy`, the peer's `--check` input).
    #[arg(long, default_value = "target/bench-features")]
    pub out_dir: PathBuf,
    /// rayon threads (0 = rayon's default, all cores).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
}

/// The numpy peer's arithmetic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PeerDtype {
    /// `float64`, as MATLAB's double in the paper's code.
    Float64,
    /// `float32`.
    Float32,
}

impl PeerDtype {
    /// numpy's name.
    fn name(self) -> &'static str {
        match self {
            Self::Float64 => "float64",
            Self::Float32 => "float32",
        }
    }
}

/// Measured f32 GEMM throughput.
#[derive(Debug, Clone, Copy, serde::Serialize)]
struct GemmBound {
    /// GFLOP/s of one 2048³ product on one thread.
    square_1t: f64,
    /// GFLOP/s of independent 2048³ products, one per thread, on every thread.
    square_all: f64,
    /// GFLOP/s of independent 729 x 108 x 1600 products (one image's distances), one per
    /// thread, on every thread.
    shaped_all: f64,
}

/// Per-phase seconds of one side's run, named as the peer names them.
#[derive(Debug, Clone, Copy, Default, serde::Serialize, serde::Deserialize)]
struct Phases {
    /// Sampling the patches and normalising them.
    patches_s: f64,
    /// Fitting the whitening and whitening the patches.
    whitening_s: f64,
    /// k-means.
    kmeans_s: f64,
    /// Extracting the training images.
    extract_train_s: f64,
    /// Extracting the test images.
    extract_test_s: f64,
    /// Fitting the standardisation and applying it to both sets.
    standardize_s: f64,
    /// Training the L2-SVM.
    svm_s: f64,
    /// Scoring the test set.
    predict_s: f64,
    /// The sum.
    total_s: f64,
}

impl Phases {
    /// `(label, seconds)` of every phase, in pipeline order, then the total.
    fn rows(&self) -> [(&'static str, f64); 9] {
        [
            ("patches + normalisation", self.patches_s),
            ("whitening (fit + apply)", self.whitening_s),
            ("k-means", self.kmeans_s),
            ("extraction, training images", self.extract_train_s),
            ("extraction, test images", self.extract_test_s),
            ("standardisation", self.standardize_s),
            ("L2-SVM training", self.svm_s),
            ("test prediction", self.predict_s),
            ("total", self.total_s),
        ]
    }
}

/// Our side of the side-by-side.
#[derive(Debug, serde::Serialize)]
struct OursResult {
    phases: Phases,
    test_accuracy: f64,
    train_accuracy: f64,
    /// `mean_i Σ_k hinge² + λ‖W‖²` (bias penalty left out).
    svm_objective: Option<f64>,
    svm_epochs: usize,
    svm_stop: String,
    kmeans_inertia: Vec<f64>,
    kmeans_empty: usize,
}

/// The peer's check of its features against ours.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Check {
    images: usize,
    max_abs_diff: f64,
    max_rel_diff: f64,
    max_abs_value: f64,
}

/// What the peer prints as its last line.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct PeerOut {
    numpy: String,
    blas_threads: String,
    dtype: String,
    standardize: String,
    phases: Phases,
    test_accuracy: f64,
    train_accuracy: f64,
    svm_objective_ours_scale: f64,
    svm_iterations: usize,
    svm_evaluations: usize,
    svm_stop: String,
    check: Option<Check>,
}

fn gflops(m: usize, n: usize, k: usize, reps: usize, secs: f64) -> f64 {
    2.0 * (m * n * k * reps) as f64 / secs / 1e9
}

/// Times `reps` products `m x k` by `(n x k)ᵀ` per thread, one independent product per
/// rayon thread at a time.
fn time_gemm(m: usize, n: usize, k: usize, reps: usize, threads: usize) -> anyhow::Result<f64> {
    let mut g = SplitMix64::new(1);
    let a: Vec<f32> = (0..m * k).map(|_| g.next_f32() - 0.5).collect();
    let b: Vec<f32> = (0..n * k).map(|_| g.next_f32() - 0.5).collect();
    let run = || -> anyhow::Result<f32> {
        let mut c = vec![0f32; m * n];
        for _ in 0..reps {
            sgemm(m, n, k, 1.0, &a, Op::N, &b, Op::T, 0.0, &mut c)?;
        }
        Ok(c[0])
    };
    run()?; // warm up
    let t = Instant::now();
    let s: Vec<f32> = (0..threads).into_par_iter().map(|_| run()).collect::<Result<_, _>>()?;
    std::hint::black_box(s);
    Ok(gflops(m, n, k, reps * threads, t.elapsed().as_secs_f64()))
}

fn gemm_bound() -> anyhow::Result<GemmBound> {
    let threads = rayon::current_num_threads();
    Ok(GemmBound {
        square_1t: time_gemm(2048, 2048, 2048, 2, 1)?,
        square_all: time_gemm(2048, 2048, 2048, 2, threads)?,
        shaped_all: time_gemm(729, 1600, 108, 40, threads)?,
    })
}

/// The f32 FLOP count of one image's extraction: its two products (whitening `D x D` and
/// distances `K x D` per patch), multiply-adds times 2.
fn extraction_flops(km: &KmeansFeatures) -> f64 {
    let (pr, pc) = km.grid();
    let d = km.patch_dim() as f64;
    2.0 * (pr * pc) as f64 * d * (d + km.n_centroids() as f64)
}

/// The whole pipeline on our side; also hands back the learner (for the check).
fn run_ours(
    train: &Subset,
    test: &Subset,
    params: &KmeansParams,
    args: &Args,
) -> anyhow::Result<(OursResult, KmeansFeatures)> {
    let (km, fit) = KmeansFeatures::fit_report(train, params, args.seed)?;
    eprintln!(
        "  ours: k-means inertia per iteration {:?}, {} empty clusters",
        fit.inertia.iter().map(|v| format!("{v:.4e}")).collect::<Vec<_>>(),
        fit.empty
    );
    let t = Instant::now();
    let ftrain = km.transform(train)?;
    let extract_train_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let ftest = km.transform(test)?;
    let extract_test_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let st = Standardizer::fit(&ftrain.all())?;
    let strain = st.transform(&ftrain.all())?;
    drop(ftrain);
    let stest = st.transform(&ftest.all())?;
    drop(ftest);
    let standardize_s = t.elapsed().as_secs_f64();
    let svm = Linear::new(Loss::OvaSquaredHinge { margin: 1.0 })
        .regularization(Reg::L2(0.5 / args.c))
        .solver(Solver::Dcd(Dcd {
            max_epochs: args.dcd_max_epochs,
            tolerance: args.dcd_tolerance,
            seed: args.seed,
        }));
    let t = Instant::now();
    let model = svm.fit(&strain.all())?;
    let svm_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let pred = model.predict(&stest.all())?;
    let predict_s = t.elapsed().as_secs_f64();
    let test_accuracy = accuracy(stest.labels(), &pred)?;
    let train_accuracy = accuracy(strain.labels(), &model.predict(&strain.all())?)?;
    let mut phases = Phases {
        patches_s: fit.patches_seconds,
        whitening_s: fit.whitening_seconds,
        kmeans_s: fit.kmeans_seconds,
        extract_train_s,
        extract_test_s,
        standardize_s,
        svm_s,
        predict_s,
        total_s: 0.0,
    };
    phases.total_s = phases.rows()[..8].iter().map(|r| r.1).sum();
    let r = model.report();
    Ok((
        OursResult {
            phases,
            test_accuracy,
            train_accuracy,
            svm_objective: r.objective,
            svm_epochs: r.iterations,
            svm_stop: r.stop_reason.map_or_else(String::new, |s| s.to_string()),
            kmeans_inertia: fit.inertia,
            kmeans_empty: fit.empty,
        },
        km,
    ))
}

/// Runs the peer on the same configuration (and the check on `check_dir`).
fn run_peer(
    args: &Args,
    bin: &std::path::Path,
    side: (usize, usize, &KmeansParams),
    check_dir: Option<&std::path::Path>,
) -> anyhow::Result<PeerOut> {
    let root = crate::paths::workspace_root();
    let py = if args.python.is_relative() { root.join(&args.python) } else { args.python.clone() };
    let script = root.join("xtask/peers/coates.py");
    let (n, nt, p) = side;
    let mut cmd = std::process::Command::new(&py);
    cmd.arg(&script)
        .arg("--data-dir")
        .arg(bin)
        .args(["--images", &n.to_string()])
        .args(["--test-images", &nt.to_string()])
        .args(["--patches", &p.patches.to_string()])
        .args(["--centroids", &p.centroids.to_string()])
        .args(["--iterations", &p.iterations.to_string()])
        .args(["--rf", &p.receptive_field.to_string()])
        .args(["--whitening-eps", &p.whitening_eps.to_string()])
        .args(["--normalization-eps", &p.normalization_eps.to_string()])
        .args(["--C", &args.c.to_string()])
        .args(["--max-iter", &args.peer_max_iter.to_string()])
        .args(["--dtype", args.peer_dtype.name()])
        .args(["--chunk", &args.peer_chunk.max(1).to_string()])
        .args(["--seed", &args.seed.to_string()])
        .arg("--json")
        // OpenBLAS overrides this machine's environment may set for our own builds; numpy's
        // bundled OpenBLAS detects the CPU itself.
        .env_remove("OPENBLAS_CORETYPE")
        .env_remove("OPENBLAS_L2_SIZE")
        .stderr(std::process::Stdio::inherit());
    if let Some(dir) = check_dir {
        cmd.arg("--check").arg(dir);
    }
    if args.peer_threads > 0 {
        let t = args.peer_threads.to_string();
        for var in ["OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"] {
            cmd.env(var, &t);
        }
    }
    eprintln!("running the peer: {} {}", py.display(), script.display());
    let out = cmd.output().with_context(|| format!("running {}", py.display()))?;
    if !out.status.success() {
        bail!("the peer {} failed with {}", script.display(), out.status);
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let last = text.lines().last().unwrap_or("");
    serde_json::from_str(last).with_context(|| format!("parsing the peer's JSON line {last:?}"))
}

/// Writes our dictionary, whitening, mean and the features of the first `n` images of
/// `train` as `.npy` under `dir` (the peer's `--check` input).
fn write_check(
    dir: &std::path::Path,
    km: &KmeansFeatures,
    train: &Subset,
    n: usize,
) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let (k, d) = (km.n_centroids(), km.patch_dim());
    write_npy(&dir.join("centroids.npy"), km.centroids(), &[k, d])?;
    write_npy(&dir.join("mean.npy"), km.whitening_mean(), &[d])?;
    write_npy(&dir.join("whitening.npy"), km.whitening(), &[d, d])?;
    let first = train.select(&(0..n).collect::<Vec<_>>())?;
    let f = km.transform(&first)?;
    let rows = f.features().context("feature rows")?.to_contiguous();
    write_npy(&dir.join("features.npy"), &rows, &[n, km.output_dim()])
}

/// `ratio` column: numpy / ours.
fn ratio(theirs: f64, ours: f64) -> String {
    if ours > 0.0 { format!("{:.1}x", theirs / ours) } else { "-".into() }
}

/// Runs the benchmark.
pub fn run(args: Args) -> anyhow::Result<()> {
    if args.threads > 0 {
        rayon::ThreadPoolBuilder::new().num_threads(args.threads).build_global()?;
    }
    anyhow::ensure!(args.c.is_finite() && args.c > 0.0, "--c must be a positive number");
    // the sizes before a minute of measuring
    anyhow::ensure!(
        args.peer_images >= 2 && args.peer_test_images >= 1,
        "--peer-images must be at least 2 and --peer-test-images at least 1"
    );
    let base = KmeansParams {
        centroids: args.centroids,
        iterations: args.iterations,
        products: args.products,
        ..KmeansParams::default()
    };
    let params = KmeansParams { patches: args.peer_patches, ..base };
    params
        .check(RowShape::Image(ImageShape::new(3, 32, 32)))
        .context("the side-by-side's k-means parameters (--centroids, --peer-patches)")?;
    let threads = rayon::current_num_threads();
    let dir = crate::paths::data_dir(args.data_dir.as_deref());
    let bin = crate::paths::cifar10_dir(&dir);
    let tt = imgclass_data::cifar::read_cifar10(&bin)
        .with_context(|| format!("reading CIFAR-10 from {}", bin.display()))?;
    std::fs::create_dir_all(&args.out_dir)
        .with_context(|| format!("creating {}", args.out_dir.display()))?;
    let load_start = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    eprintln!("load at start: {}", load_start.trim());

    let bound = if args.no_gemm { None } else { Some(gemm_bound()?) };
    if let Some(b) = bound {
        println!(
            "f32 GEMM (imgclass_linalg::gemm::sgemm): 2048³ on 1 thread {:.1} GFLOP/s; on {threads} \
             threads {:.1}; 729x108x1600 (one image's distances) on {threads} threads {:.1}",
            b.square_1t, b.square_all, b.shaped_all
        );
    }
    // the ours-only fit + extraction, against the GEMM bound
    let mut full = None;
    if args.full {
        let params = KmeansParams { patches: args.patches, ..base };
        let n_train = args.train.min(tt.train.len());
        let fit_on = tt.train.subset((0..n_train).collect::<Vec<_>>())?;
        let n_ext_train = args.extract.min(tt.train.len());
        let n_ext_test = args.extract.saturating_sub(n_ext_train).min(tt.test.len());
        let ext_train = tt.train.subset((0..n_ext_train).collect::<Vec<_>>())?;
        let ext_test = tt.test.subset((0..n_ext_test).collect::<Vec<_>>())?;
        eprintln!(
            "full (ours only): fit on {n_train} images, {} patches, K = {}, {} iterations; \
             extract {} images",
            params.patches,
            params.centroids,
            params.iterations,
            n_ext_train + n_ext_test
        );
        let (km, fit) = KmeansFeatures::fit_report(&fit_on, &params, args.seed)?;
        let t = Instant::now();
        for x in [&ext_train, &ext_test] {
            std::hint::black_box(km.transform(x)?);
        }
        let extract_s = t.elapsed().as_secs_f64();
        let flops = extraction_flops(&km) * (n_ext_train + n_ext_test) as f64;
        let bound_s = bound.map(|b| flops / (b.shaped_all * 1e9));
        println!(
            "full (ours): patches {:.2} s, whitening {:.2} s, k-means {:.2} s, extraction of {} \
             images {:.1} s = {:.0} GFLOP/s{}",
            fit.patches_seconds,
            fit.whitening_seconds,
            fit.kmeans_seconds,
            n_ext_train + n_ext_test,
            extract_s,
            flops / extract_s / 1e9,
            bound_s.map_or_else(String::new, |b| format!(
                "; GEMM bound {b:.1} s (ratio {:.2})",
                extract_s / b
            ))
        );
        full = Some(serde_json::json!({
            "train": n_train, "patches": params.patches, "centroids": params.centroids,
            "iterations": params.iterations, "images_extracted": n_ext_train + n_ext_test,
            "patches_s": fit.patches_seconds, "whitening_s": fit.whitening_seconds,
            "kmeans_s": fit.kmeans_seconds,
            "extract_s": extract_s, "gemm_bound_s": bound_s,
        }));
    }

    // the side-by-side: the whole pipeline, the same configuration on both sides
    let n = args.peer_images.min(tt.train.len());
    let nt = args.peer_test_images.min(tt.test.len());
    anyhow::ensure!(n >= 2 && nt >= 1, "need at least 2 training and 1 test image");
    let train = tt.train.subset((0..n).collect::<Vec<_>>())?;
    let test = tt.test.subset((0..nt).collect::<Vec<_>>())?;
    println!(
        "side by side: {n} training images, {nt} test images, {} patches, K = {}, {} k-means \
         iterations, C = {} (ours λ = {:e}), our distance products {:?}, {threads} threads",
        params.patches,
        params.centroids,
        params.iterations,
        args.c,
        0.5 / args.c,
        params.products,
    );
    let (ours, km) = run_ours(&train, &test, &params, &args)?;
    let check_dir = args.out_dir.join("check");
    let n_check = args.check.min(n);
    let peer = if args.no_peers {
        None
    } else {
        let check = if n_check > 0 {
            write_check(&check_dir, &km, &train, n_check)?;
            Some(check_dir.as_path())
        } else {
            None
        };
        drop(km);
        Some(run_peer(&args, &bin, (n, nt, &params), check)?)
    };
    let load_end = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();

    println!("| phase | ours (s) | numpy (s) | numpy / ours |");
    println!("|---|---:|---:|---:|");
    for (i, (label, s)) in ours.phases.rows().iter().enumerate() {
        let theirs = peer.as_ref().map(|p| p.phases.rows()[i].1);
        println!(
            "| {label} | {s:.2} | {} | {} |",
            theirs.map_or_else(|| "-".into(), |t| format!("{t:.2}")),
            theirs.map_or_else(|| "-".into(), |t| ratio(t, *s))
        );
    }
    println!(
        "ours: test {:.2} %, train {:.2} %; dual coordinate descent {} epochs ({}), objective {}",
        100.0 * ours.test_accuracy,
        100.0 * ours.train_accuracy,
        ours.svm_epochs,
        ours.svm_stop,
        ours.svm_objective.map_or_else(|| "-".into(), |o| format!("{o:.6}"))
    );
    if let Some(p) = &peer {
        println!(
            "numpy {} ({}, BLAS threads {}, standardisation {}): test {:.2} %, train {:.2} %; \
             L-BFGS {} iterations, {} evaluations ({}), objective {:.6} (ours' scale)",
            p.numpy,
            p.dtype,
            p.blas_threads,
            p.standardize,
            100.0 * p.test_accuracy,
            100.0 * p.train_accuracy,
            p.svm_iterations,
            p.svm_evaluations,
            p.svm_stop,
            p.svm_objective_ours_scale
        );
        if let Some(c) = &p.check {
            println!(
                "check: numpy's features of the first {} training images with our dictionary: \
                 max |ours − numpy| {:.3e}, {:.3e} of the largest value ({:.1})",
                c.images, c.max_abs_diff, c.max_rel_diff, c.max_abs_value
            );
        }
    }
    println!("load at start {}; at end {}", load_start.trim(), load_end.trim());

    let json = serde_json::json!({
        "threads": threads,
        "load_at_start": load_start.trim(),
        "load_at_end": load_end.trim(),
        "gemm_gflops": bound,
        "full": full,
        "side_by_side": {
            "images": n, "test_images": nt, "patches": params.patches,
            "centroids": params.centroids, "iterations": params.iterations, "c": args.c,
            "lambda": 0.5 / args.c, "seed": args.seed, "products": params.products,
            "ours": ours,
            "numpy": peer,
            "total_ratio": peer.as_ref().map(|p| p.phases.total_s / ours.phases.total_s),
        },
    });
    let path = args.out_dir.join("features.json");
    std::fs::write(&path, serde_json::to_string_pretty(&json)?)
        .with_context(|| format!("writing {}", path.display()))?;
    eprintln!("wrote {}", path.display());
    Ok(())
}

/// `--products`: `f32` or `i8`.
fn parse_products(s: &str) -> Result<Products, String> {
    match s {
        "f32" => Ok(Products::F32),
        "i8" => Ok(Products::I8),
        _ => Err(format!("unknown products `{s}` (expected f32 or i8)")),
    }
}
