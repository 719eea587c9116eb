//! `cargo xtask bench solver`: the full-batch L-BFGS solver (`imgclass_linear::Solver::Lbfgs`)
//! on CIFAR-10, standardised raw pixels or HOG + hue-histogram features, for the softmax or
//! the one-vs-all L2-SVM, with the strength given as scikit-learn's `C` (our `λ = 1/(2 C N)`).
//!
//! Training rows: the first `--rows` of the 50,000 in file order; the 10,000 test images are
//! scored once. With `--export DIR` the standardised training and test matrices, their
//! labels and the fitted `W`, `b` and mean are written there as `.npy` files, so
//! `xtask/peers/solver.py` fits scikit-learn on exactly these rows and scores both sides'
//! weights with one numpy objective. One `RESULT {...}` JSON line for scripts.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context as _;
use imgclass_core::{Fit, Predict, Subset};
use imgclass_features::{StepSpec, apply, fit_steps};
use imgclass_linear::{Dcd, Lbfgs, Linear, Loss, Reg, Solver};

/// Which rows the classifier sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Features {
    /// The raw pixels, standardised per feature.
    Pixels,
    /// `union(hog, hue_histogram)` then standardised (CS231n's features).
    HogHsv,
}

/// Which loss to minimise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SolverLoss {
    /// Softmax cross-entropy (scikit-learn's multinomial `LogisticRegression`).
    Softmax,
    /// One-vs-all squared hinge by L-BFGS (scikit-learn's `LinearSVC`, primal).
    L2Svm,
    /// One-vs-all squared hinge by dual coordinate descent (`Solver::Dcd`; scikit-learn's
    /// `LinearSVC(dual=True)`, the same algorithm and the same penalised bias); `--tol` is
    /// then the projected-gradient spread, liblinear's rule.
    L2SvmDcd,
}

/// Arguments of `cargo xtask bench solver`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The representation.
    #[arg(long, value_enum, default_value = "pixels")]
    pub features: Features,
    /// The loss.
    #[arg(long, value_enum, default_value = "softmax")]
    pub loss: SolverLoss,
    /// Training rows (the first N of the 50,000).
    #[arg(long, default_value_t = 50_000)]
    pub rows: usize,
    /// scikit-learn's C; our λ = 1 / (2 C N).
    #[arg(long, default_value_t = 1.0)]
    pub c: f64,
    /// Gradient tolerance (max |∂F/∂θ|).
    #[arg(long, default_value_t = 1e-5)]
    pub tol: f64,
    /// Most L-BFGS iterations.
    #[arg(long, default_value_t = 1000)]
    pub max_iterations: usize,
    /// Write the standardised matrices, labels and the fitted weights here as `.npy`.
    #[arg(long)]
    pub export: Option<PathBuf>,
    /// Data directory holding `cifar-10/cifar-10-batches-bin/` (default: `$IMGCLASS_DATA_DIR`,
    /// else `<workspace>/datasets`).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// rayon threads (0 = rayon's default, all cores).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
}

/// The result line.
#[derive(Debug, serde::Serialize)]
struct RunResult {
    features: String,
    loss: &'static str,
    rows: usize,
    dim: usize,
    c: f64,
    lambda: f64,
    tol: f64,
    threads: usize,
    steps_seconds: f64,
    fit_seconds: f64,
    iterations: usize,
    evaluations: usize,
    stop: String,
    gradient_norm: f64,
    objective: f64,
    test_accuracy: f64,
}

/// Runs the command.
pub fn run(args: Args) -> anyhow::Result<()> {
    if args.threads > 0 {
        rayon::ThreadPoolBuilder::new().num_threads(args.threads).build_global().ok();
    }
    let dir = crate::paths::data_dir(args.data_dir.as_deref());
    let bin = crate::paths::cifar10_dir(&dir);
    let tt = imgclass_data::cifar::read_cifar10(&bin)
        .with_context(|| format!("reading CIFAR-10 from {}", bin.display()))?;
    let n = args.rows.min(tt.train.len());
    anyhow::ensure!(n >= 2, "need at least 2 training rows");
    let train = tt.train.subset((0..n).collect::<Vec<_>>())?;
    let test = tt.test.all();
    let specs = match args.features {
        Features::Pixels => vec![StepSpec::Standardize],
        Features::HogHsv => vec![
            StepSpec::Union {
                of: vec![
                    StepSpec::Hog { cell: 8, orientations: 9 },
                    StepSpec::HueHistogram { bins: 10 },
                ],
            },
            StepSpec::Standardize,
        ],
    };
    let t0 = Instant::now();
    let (steps, ftrain) = fit_steps(&specs, &train, 0)?;
    let ftest = apply(&steps, &test)?;
    let steps_seconds = t0.elapsed().as_secs_f64();
    let loss = match args.loss {
        SolverLoss::Softmax => Loss::Softmax,
        SolverLoss::L2Svm | SolverLoss::L2SvmDcd => Loss::OvaSquaredHinge { margin: 1.0 },
    };
    let reg = Reg::from_sklearn_c(args.c, n);
    let lbfgs =
        Lbfgs { max_iterations: args.max_iterations, tolerance: args.tol, ..Lbfgs::default() };
    let solver = match args.loss {
        SolverLoss::L2SvmDcd => Solver::Dcd(Dcd {
            max_epochs: args.max_iterations,
            tolerance: args.tol,
            ..Dcd::default()
        }),
        _ => Solver::Lbfgs(lbfgs),
    };
    let params = Linear::new(loss).regularization(reg).solver(solver);
    let t1 = Instant::now();
    let model = params.fit(&ftrain)?;
    let fit_seconds = t1.elapsed().as_secs_f64();
    let pred = model.predict(&ftest)?;
    let hits = pred.iter().zip(ftest.labels()).filter(|(a, b)| **a == *b).count();
    let r = model.report();
    let res = RunResult {
        features: specs.iter().map(ToString::to_string).collect::<Vec<_>>().join(" -> "),
        loss: loss.name(),
        rows: n,
        dim: ftrain.dim(),
        c: args.c,
        lambda: reg.coefficients().0,
        tol: args.tol,
        threads: rayon::current_num_threads(),
        steps_seconds,
        fit_seconds,
        iterations: r.iterations,
        evaluations: r.evaluations,
        stop: r.stop_reason.map_or_else(String::new, |s| format!("{s:?}")),
        gradient_norm: r.gradient_norm.unwrap_or(f64::NAN),
        objective: r.objective.unwrap_or(f64::NAN),
        test_accuracy: hits as f64 / ftest.len().max(1) as f64,
    };
    if let Some(out) = &args.export {
        std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
        let (c, d) = (model.n_classes(), model.n_features());
        if !out.join("train_x.npy").exists() {
            write_rows(&out.join("train_x.npy"), &ftrain)?;
            write_rows(&out.join("test_x.npy"), &ftest)?;
            let labels = |s: &Subset| s.labels().iter().map(|&l| l as f32).collect::<Vec<_>>();
            write_npy(&out.join("train_y.npy"), &labels(&ftrain), &[n])?;
            write_npy(&out.join("test_y.npy"), &labels(&ftest), &[ftest.len()])?;
        }
        write_npy(&out.join("W.npy"), model.weights(), &[c, d])?;
        write_npy(&out.join("b.npy"), model.bias(), &[c])?;
        write_npy(&out.join("mean.npy"), model.mean_image(), &[d])?;
    }
    println!(
        "{} {} n={} d={} C={} (λ={:e}): {} iterations ({} evaluations, {}), max|grad| {:.2e}, objective {:.12}, fit {:.2} s, test {:.2} %",
        res.features,
        res.loss,
        n,
        res.dim,
        args.c,
        res.lambda,
        res.iterations,
        res.evaluations,
        res.stop,
        res.gradient_norm,
        res.objective,
        fit_seconds,
        100.0 * res.test_accuracy
    );
    println!("RESULT {}", serde_json::to_string(&res)?);
    Ok(())
}

/// Feature rows as a `.npy` f32 matrix.
fn write_rows(path: &Path, x: &Subset) -> anyhow::Result<()> {
    let rows = x.values().features().context("feature rows")?;
    write_npy(path, &rows.to_contiguous(), &[x.len(), x.dim()])
}

/// A little-endian f32 array in NumPy's `.npy` format (version 1.0, C order).
pub(crate) fn write_npy(path: &Path, data: &[f32], shape: &[usize]) -> anyhow::Result<()> {
    let dims: Vec<String> = shape.iter().map(ToString::to_string).collect();
    let shape =
        if dims.len() == 1 { format!("({},)", dims[0]) } else { format!("({})", dims.join(", ")) };
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {shape}, }}");
    // magic (6) + version (2) + length (2) + header + '\n', padded to a multiple of 64
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut f = std::io::BufWriter::new(
        std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?,
    );
    f.write_all(b"\x93NUMPY\x01\x00")?;
    f.write_all(&u16::try_from(header.len())?.to_le_bytes())?;
    f.write_all(header.as_bytes())?;
    for v in data {
        f.write_all(&v.to_le_bytes())?;
    }
    f.flush()?;
    Ok(())
}
