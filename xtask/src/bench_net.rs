//! `cargo xtask bench net`: trains the two-layer network on CIFAR-10 (raw pixels, the last
//! 1,000 training images held out for validation) and prints validation and test accuracy,
//! the training time and one `RESULT {...}` JSON line for scripts.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context as _;
use imgclass_core::{Fit, Predict, Subset};
use imgclass_net::{Net, NetModel, NetSgd};

use crate::paths::data_dir;

/// Arguments of `cargo xtask bench net`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Directory holding `cifar-10-batches-bin` (default: the workspace's `datasets/`).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Hidden units.
    #[arg(long, default_value_t = 500)]
    hidden: usize,
    /// Learning rate.
    #[arg(long, default_value_t = 1e-3)]
    lr: f64,
    /// L2 strength on both weight matrices.
    #[arg(long, default_value_t = 1e-3)]
    reg: f64,
    /// Epochs.
    #[arg(long, default_value_t = 10)]
    epochs: usize,
    /// Minibatch size.
    #[arg(long, default_value_t = 200)]
    batch: usize,
    /// Momentum.
    #[arg(long, default_value_t = 0.9)]
    momentum: f64,
    /// Learning-rate factor per epoch.
    #[arg(long, default_value_t = 0.95)]
    decay: f64,
    /// Dropout probability of a hidden unit.
    #[arg(long, default_value_t = 0.0)]
    dropout: f64,
    /// Input scale after mean subtraction.
    #[arg(long, default_value_t = 1.0 / 64.0)]
    input_scale: f32,
    /// Training images used (the first N; 0 = all 49,000).
    #[arg(long, default_value_t = 0)]
    n_train: usize,
    /// Seed.
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

fn accuracy(m: &NetModel, x: &Subset) -> anyhow::Result<f64> {
    let p = m.predict(x)?;
    Ok(p.iter().zip(x.labels()).filter(|(a, b)| **a == *b).count() as f64 / x.len().max(1) as f64)
}

/// Runs the command.
pub fn run(args: Args) -> anyhow::Result<()> {
    let bin = crate::paths::cifar10_dir(&data_dir(args.data_dir.as_deref()));
    let tt = imgclass_data::cifar::read_cifar10(&bin)
        .with_context(|| format!("reading CIFAR-10 from {}", bin.display()))?;
    let n = tt.train.len();
    anyhow::ensure!(n > 1000, "need more than 1000 training images, found {n}");
    let n_fit = if args.n_train == 0 { n - 1000 } else { args.n_train.min(n - 1000) };
    let train = tt.train.subset((0..n_fit).collect::<Vec<_>>())?;
    let val = tt.train.subset((n - 1000..n).collect::<Vec<_>>())?;
    let test = tt.test.all();
    let params = Net::new(args.hidden)
        .regularization(args.reg)
        .dropout(args.dropout)
        .input_scale(args.input_scale)
        .sgd(NetSgd {
            batch_size: args.batch,
            learning_rate: args.lr,
            momentum: args.momentum,
            decay: args.decay,
            epochs: args.epochs,
            seed: args.seed,
            ..NetSgd::default()
        });
    let t = Instant::now();
    let model = params.fit(&train)?;
    let fit_seconds = t.elapsed().as_secs_f64();
    let (va, te) = (accuracy(&model, &val)?, accuracy(&model, &test)?);
    let r = model.report();
    eprintln!(
        "net h={} lr={} reg={} epochs={} batch={}: val {:.2} %, test {:.2} %, fit {:.1} s ({:.1} ms per iteration), final loss {:.3}",
        args.hidden,
        args.lr,
        args.reg,
        args.epochs,
        args.batch,
        100.0 * va,
        100.0 * te,
        fit_seconds,
        1e3 * fit_seconds / r.loss.len().max(1) as f64,
        r.loss.last().copied().unwrap_or(f32::NAN)
    );
    println!(
        "RESULT {}",
        serde_json::json!({
            "hidden": args.hidden, "lr": args.lr, "reg": args.reg, "epochs": args.epochs,
            "batch": args.batch, "momentum": args.momentum, "decay": args.decay,
            "dropout": args.dropout, "input_scale": args.input_scale, "n_train": n_fit,
            "seed": args.seed, "fit_seconds": fit_seconds, "iterations": r.loss.len(),
            "val_accuracy": va, "test_accuracy": te, "train_accuracy": r.train_accuracy,
        })
    );
    Ok(())
}
