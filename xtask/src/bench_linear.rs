//! `cargo xtask bench linear`: a linear SVM or softmax classifier trained by minibatch SGD on
//! CIFAR-10 raw pixels (mean-subtracted), with validation and test accuracy, training time,
//! learned templates as a PNG, and an optional 5 x 5 learning-rate x regularisation grid.
//!
//! Split: the 50,000 training images are read in file order; the first 49,000 train and the
//! last 1,000 (the end of `data_batch_5.bin`) validate, as in the CS231n notebooks; the
//! 10,000 test images are only scored at the end.
//!
//! Without `--lr`/`--reg`/`--iters` the values chosen by the validation search are used (see
//! [`chosen`] and docs/bench/linear.md for the grid that chose them).

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context as _;
use imgclass_core::{Dataset, Fit, Predict, Subset};
use imgclass_linear::{Linear, LinearError, LinearModel, Loss, Reg, Sgd, Stop};

/// Which loss to train.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LossArg {
    /// Multiclass SVM hinge loss, margin 1.
    Svm,
    /// Softmax cross-entropy.
    Softmax,
}

impl LossArg {
    fn loss(self) -> Loss {
        match self {
            LossArg::Svm => Loss::Svm { margin: 1.0 },
            LossArg::Softmax => Loss::Softmax,
        }
    }
    fn name(self) -> &'static str {
        match self {
            LossArg::Svm => "svm",
            LossArg::Softmax => "softmax",
        }
    }
}

/// Arguments of `cargo xtask bench linear`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The loss to train (ignored by --grid, which runs both).
    #[arg(long, value_enum, default_value = "svm")]
    pub loss: LossArg,
    /// Learning rate [default: the validated value for the loss].
    #[arg(long)]
    pub lr: Option<f64>,
    /// L2 regularisation strength λ in λΣW² [default: the validated value for the loss].
    #[arg(long)]
    pub reg: Option<f64>,
    /// SGD iterations [default: the validated value for the loss].
    #[arg(long)]
    pub iters: Option<usize>,
    /// Minibatch size.
    #[arg(long, default_value_t = 200)]
    pub batch: usize,
    /// Seed of the initial weights and the minibatch order.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Momentum (0 = plain SGD) [default: the validated value for the loss].
    #[arg(long)]
    pub momentum: Option<f64>,
    /// Learning-rate decay factor per epoch [default: the validated value for the loss].
    #[arg(long)]
    pub decay: Option<f64>,
    /// Write one predicted test label per line, in test-set order, to this file.
    #[arg(long)]
    pub predictions: Option<PathBuf>,
    /// Data directory holding `cifar-10/cifar-10-batches-bin/` (default: `$IMGCLASS_DATA_DIR`,
    /// else `<workspace>/datasets`).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Run the 5 x 5 learning-rate x regularisation grid for both losses on validation and
    /// write JSON + SVG heatmaps to the output directory.
    #[arg(long)]
    pub grid: bool,
    /// Output directory for templates, grids and the result JSON.
    #[arg(long, default_value = "target/bench-linear")]
    pub out_dir: PathBuf,
    /// rayon threads (0 = rayon's default, all cores).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// `u8`: the raw pixels (the integer-kernel path); `f32`: the same pixel values as an f32
    /// feature matrix (the general path every feature step feeds), to measure what the u8
    /// specialisation buys.
    #[arg(long, value_enum, default_value = "u8")]
    pub dtype: crate::bench_knn::Dtype,
}

/// Hyperparameters chosen on the 1,000-image validation split (docs/bench/linear.md).
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Chosen {
    /// Learning rate.
    pub lr: f64,
    /// L2 strength.
    pub reg: f64,
    /// Iterations of batch 200.
    pub iters: usize,
    /// Momentum.
    pub momentum: f64,
    /// Learning-rate decay per epoch.
    pub decay: f64,
}

/// The validated defaults per loss.
pub fn chosen(loss: LossArg) -> Chosen {
    match loss {
        // `cargo xtask bench linear --grid` (5,000 iterations of batch 200, decay 0.9 per
        // epoch, seed 0): the best validation cell of each 5 x 5 grid, 40.4 % and 41.2 %
        // (docs/bench/linear.md has both grids)
        LossArg::Svm => Chosen { lr: 3e-7, reg: 5e3, iters: 5000, momentum: 0.0, decay: 0.9 },
        LossArg::Softmax => Chosen { lr: 1e-5, reg: 1e2, iters: 5000, momentum: 0.0, decay: 0.9 },
    }
}

/// The grid axes (5 x 5), per loss.
fn grid_axes(loss: LossArg) -> (Vec<f64>, Vec<f64>) {
    match loss {
        LossArg::Svm => (vec![3e-8, 1e-7, 3e-7, 1e-6, 3e-6], vec![1e2, 5e2, 1e3, 5e3, 2.5e4]),
        LossArg::Softmax => (vec![1e-7, 3e-7, 1e-6, 3e-6, 1e-5], vec![1e2, 5e2, 1e3, 5e3, 2.5e4]),
    }
}

use crate::paths::data_dir;

struct Splits {
    train: Subset,
    val: Subset,
    test: Subset,
}

fn load(dir: &Path) -> anyhow::Result<Splits> {
    let bin = crate::paths::cifar10_dir(dir);
    let t0 = Instant::now();
    let tt = imgclass_data::cifar::read_cifar10(&bin)
        .with_context(|| format!("reading CIFAR-10 from {}", bin.display()))?;
    let n = tt.train.len();
    anyhow::ensure!(n > 1000, "need more than 1000 training images, found {n}");
    let train = tt.train.subset((0..n - 1000).collect::<Vec<_>>())?;
    let val = tt.train.subset((n - 1000..n).collect::<Vec<_>>())?;
    let test = tt.test.all();
    tracing::info!(
        train = train.len(),
        val = val.len(),
        test = test.len(),
        seconds = t0.elapsed().as_secs_f64(),
        "loaded cifar-10"
    );
    Ok(Splits { train, val, test })
}

fn accuracy(model: &LinearModel, x: &Subset) -> anyhow::Result<f64> {
    let pred = model.predict(x)?;
    let hit = pred.iter().zip(x.labels()).filter(|(a, b)| **a == *b).count();
    Ok(hit as f64 / x.len().max(1) as f64)
}

fn params(loss: LossArg, c: Chosen, batch: usize, seed: u64) -> Linear {
    Linear::new(loss.loss()).regularization(Reg::L2(c.reg)).sgd(Sgd {
        batch_size: batch,
        learning_rate: c.lr,
        decay: c.decay,
        momentum: c.momentum,
        stop: Stop::Iterations(c.iters),
        seed,
    })
}

/// The result of one run, printed as one `RESULT {...}` JSON line for scripts.
#[derive(Debug, serde::Serialize)]
struct RunResult {
    loss: &'static str,
    lr: f64,
    reg: f64,
    iters: usize,
    batch: usize,
    momentum: f64,
    decay: f64,
    seed: u64,
    threads: usize,
    kernel: &'static str,
    /// Seconds of `fit` (mean image + SGD loop).
    fit_seconds: f64,
    /// Seconds of the SGD loop alone.
    sgd_seconds: f64,
    val_accuracy: f64,
    test_accuracy: f64,
    predict_seconds: f64,
    final_loss: f32,
}

/// Runs the command.
pub fn run(args: Args) -> anyhow::Result<()> {
    if args.threads > 0 {
        rayon::ThreadPoolBuilder::new().num_threads(args.threads).build_global().ok();
    }
    let dir = data_dir(args.data_dir.as_deref());
    let mut splits = load(&dir)?;
    if args.dtype == crate::bench_knn::Dtype::F32 {
        let as_f32 = |s: &Subset| -> anyhow::Result<Subset> {
            let own = s.materialize();
            let px = own.pixels().context("pixels")?.to_f32();
            Ok(Dataset::from_features(px, own.dim(), own.labels().to_vec(), own.classes().clone())?
                .all())
        };
        splits = Splits {
            train: as_f32(&splits.train)?,
            val: as_f32(&splits.val)?,
            test: as_f32(&splits.test)?,
        };
    }
    std::fs::create_dir_all(&args.out_dir)
        .with_context(|| format!("creating {}", args.out_dir.display()))?;
    if args.grid {
        for loss in [LossArg::Svm, LossArg::Softmax] {
            run_grid(&args, loss, &splits)?;
        }
        return Ok(());
    }
    let base = chosen(args.loss);
    let c = Chosen {
        lr: args.lr.unwrap_or(base.lr),
        reg: args.reg.unwrap_or(base.reg),
        iters: args.iters.unwrap_or(base.iters),
        momentum: args.momentum.unwrap_or(base.momentum),
        decay: args.decay.unwrap_or(base.decay),
    };
    let p = params(args.loss, c, args.batch, args.seed);
    let t0 = Instant::now();
    let model = p.fit(&splits.train)?;
    let fit_seconds = t0.elapsed().as_secs_f64();
    let val_accuracy = accuracy(&model, &splits.val)?;
    let t1 = Instant::now();
    let pred = model.predict(&splits.test)?;
    let predict_seconds = t1.elapsed().as_secs_f64();
    let hit = pred.iter().zip(splits.test.labels()).filter(|(a, b)| **a == *b).count();
    let test_accuracy = hit as f64 / splits.test.len() as f64;
    if let Some(path) = &args.predictions {
        let mut s = String::with_capacity(pred.len() * 2);
        for l in &pred {
            s.push_str(&l.to_string());
            s.push('\n');
        }
        std::fs::write(path, s).with_context(|| format!("writing {}", path.display()))?;
    }
    let r = model.report();
    let res = RunResult {
        loss: args.loss.name(),
        lr: c.lr,
        reg: c.reg,
        iters: c.iters,
        batch: args.batch,
        momentum: c.momentum,
        decay: c.decay,
        seed: args.seed,
        threads: rayon::current_num_threads(),
        kernel: r.kernel,
        fit_seconds,
        sgd_seconds: r.train_seconds,
        val_accuracy,
        test_accuracy,
        predict_seconds,
        final_loss: r.loss.last().copied().unwrap_or(f32::NAN),
    };
    let png = args.out_dir.join(format!("templates-{}.png", args.loss.name()));
    if args.dtype == crate::bench_knn::Dtype::U8 {
        write_templates(&model, splits.train.dataset(), &png)?;
    }
    let curve = args.out_dir.join(format!("loss-{}.json", args.loss.name()));
    std::fs::write(&curve, serde_json::to_string(r)?)?;
    println!(
        "{} lr={:e} reg={:e} iters={} batch={}: val {:.2} %, test {:.2} %, fit {:.3} s (sgd {:.3} s, {} threads, {}), predict 10k {:.3} s",
        res.loss,
        res.lr,
        res.reg,
        res.iters,
        res.batch,
        100.0 * val_accuracy,
        100.0 * test_accuracy,
        fit_seconds,
        res.sgd_seconds,
        res.threads,
        res.kernel,
        predict_seconds
    );
    println!("templates: {}, loss curve: {}", png.display(), curve.display());
    println!("RESULT {}", serde_json::to_string(&res)?);
    Ok(())
}

/// One cell of the grid.
#[derive(Debug, serde::Serialize)]
struct Cell {
    lr: f64,
    reg: f64,
    /// Validation accuracy, `None` when training diverged.
    val_accuracy: Option<f64>,
    train_accuracy: Option<f64>,
    seconds: f64,
}

fn run_grid(args: &Args, loss: LossArg, s: &Splits) -> anyhow::Result<()> {
    let (lrs, regs) = grid_axes(loss);
    let base = chosen(loss);
    let iters = args.iters.unwrap_or(base.iters);
    let mut cells = vec![];
    // a fixed 5,000-image sample of the training split for the training accuracy
    let train_probe =
        s.train.select(&(0..s.train.len()).step_by(9).take(5000).collect::<Vec<_>>())?;
    for &lr in &lrs {
        for &reg in &regs {
            let c = Chosen { lr, reg, iters, momentum: base.momentum, decay: base.decay };
            let t0 = Instant::now();
            let fitted = params(loss, c, args.batch, args.seed).fit(&s.train);
            let seconds = t0.elapsed().as_secs_f64();
            let (val_accuracy, train_accuracy) = match fitted {
                Ok(m) => (Some(accuracy(&m, &s.val)?), Some(accuracy(&m, &train_probe)?)),
                Err(LinearError::Diverged { .. }) => (None, None),
                Err(e) => return Err(e.into()),
            };
            println!(
                "{} lr={lr:e} reg={reg:e}: val {} train {} ({seconds:.2} s)",
                loss.name(),
                val_accuracy.map_or("diverged".into(), |a| format!("{:.2} %", 100.0 * a)),
                train_accuracy.map_or("-".into(), |a| format!("{:.2} %", 100.0 * a)),
            );
            cells.push(Cell { lr, reg, val_accuracy, train_accuracy, seconds });
        }
    }
    let best = cells
        .iter()
        .filter_map(|c| c.val_accuracy.map(|a| (a, c)))
        .max_by(|a, b| a.0.total_cmp(&b.0));
    if let Some((a, c)) = best {
        println!("{}: best lr={:e} reg={:e} val {:.2} %", loss.name(), c.lr, c.reg, 100.0 * a);
    }
    let json = serde_json::json!({
        "loss": loss.name(), "iters": iters, "batch": args.batch, "seed": args.seed,
        "split": "first 49,000 training images train, last 1,000 validate",
        "learning_rates": lrs, "regularizations": regs, "cells": cells,
    });
    let jp = args.out_dir.join(format!("grid-{}.json", loss.name()));
    std::fs::write(&jp, serde_json::to_string_pretty(&json)?)?;
    let sp = args.out_dir.join(format!("grid-{}.svg", loss.name()));
    std::fs::write(&sp, heatmap_svg(loss.name(), &lrs, &regs, &cells))?;
    println!("grid: {} and {}", jp.display(), sp.display());
    Ok(())
}

/// A plain SVG heatmap: rows = learning rates, columns = regularisation strengths, colour =
/// validation accuracy (white → blue), diverged cells grey with an ✗.
fn heatmap_svg(name: &str, lrs: &[f64], regs: &[f64], cells: &[Cell]) -> String {
    let (cw, ch, left, top) = (110.0, 50.0, 110.0, 60.0);
    let w = left + cw * regs.len() as f64 + 20.0;
    let h = top + ch * lrs.len() as f64 + 50.0;
    let accs: Vec<f64> = cells.iter().filter_map(|c| c.val_accuracy).collect();
    let lo = accs.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = accs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" font-family=\"sans-serif\" font-size=\"13\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"{}\" y=\"22\" text-anchor=\"middle\" font-size=\"15\">{name}: validation accuracy (1,000 images), learning rate x L2 strength</text>\n",
        w / 2.0
    );
    for (j, r) in regs.iter().enumerate() {
        s += &format!(
            "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">reg {r:e}</text>\n",
            left + cw * (j as f64 + 0.5),
            top - 8.0
        );
    }
    for (i, lr) in lrs.iter().enumerate() {
        s += &format!(
            "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">lr {lr:e}</text>\n",
            left - 8.0,
            top + ch * (i as f64 + 0.5) + 4.0
        );
        for (j, _) in regs.iter().enumerate() {
            let cell = &cells[i * regs.len() + j];
            let (x, y) = (left + cw * j as f64, top + ch * i as f64);
            let (fill, label) = match cell.val_accuracy {
                Some(a) => {
                    let t = if hi > lo { (a - lo) / (hi - lo) } else { 1.0 };
                    let r = (255.0 * (1.0 - 0.8 * t)) as u8;
                    let g = (255.0 * (1.0 - 0.55 * t)) as u8;
                    (format!("rgb({r},{g},255)"), format!("{:.1} %", 100.0 * a))
                }
                None => ("rgb(200,200,200)".to_string(), "✗ diverged".to_string()),
            };
            s += &format!(
                "<rect x=\"{x}\" y=\"{y}\" width=\"{cw}\" height=\"{ch}\" fill=\"{fill}\" stroke=\"#333\"/>\n\
                 <text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{label}</text>\n",
                x + cw / 2.0,
                y + ch / 2.0 + 4.0
            );
        }
    }
    s += &format!(
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\" fill=\"#555\">colour: white = {:.1} %, blue = {:.1} %</text>\n</svg>\n",
        w / 2.0,
        h - 18.0,
        100.0 * lo,
        100.0 * hi
    );
    s
}

/// Writes the learned templates side by side (upscaled 4x), with the class names' order
/// left to right, as an RGB PNG.
fn write_templates(model: &LinearModel, ds: &Dataset, path: &Path) -> anyhow::Result<()> {
    let shape = ds.image_shape().context("templates are images; these rows are features")?;
    let (h, w, ch) = (shape.height, shape.width, shape.channels);
    let (zoom, gap) = (4usize, 4usize);
    let t = model.templates();
    let tw = w * zoom;
    let total_w = t.len() * (tw + gap) + gap;
    let total_h = h * zoom + 2 * gap;
    let mut img =
        image::RgbImage::from_pixel(total_w as u32, total_h as u32, image::Rgb([255, 255, 255]));
    for (c, tpl) in t.iter().enumerate() {
        let x0 = gap + c * (tw + gap);
        for y in 0..h * zoom {
            for x in 0..tw {
                let (sy, sx) = (y / zoom, x / zoom);
                let px = |k: usize| tpl[(k.min(ch - 1)) * h * w + sy * w + sx];
                img.put_pixel((x0 + x) as u32, (gap + y) as u32, image::Rgb([px(0), px(1), px(2)]));
            }
        }
    }
    img.save(path).with_context(|| format!("writing {}", path.display()))?;
    tracing::info!(path = %path.display(), classes = ?ds.classes().names(), "templates written");
    Ok(())
}
