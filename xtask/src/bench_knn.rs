//! `cargo xtask bench knn`: exact k-NN over CIFAR-10 with the SIMD kernels of
//! `imgclass-linalg`; prints wall time, peak RSS, threads and accuracy, and optionally writes
//! the predictions (one label per test image, in order) and a JSON summary that
//! `xtask/peers/knn.py` puts beside numpy, scikit-learn, faiss and OpenCV.
//!
//! `--dtype f32` converts the pixels to f32 features first (outside the timing) and runs the
//! same search through the public `Knn` API on an f32 `Dataset`: the general feature path
//! (`imgclass_linalg::knn_f32`), measured against faiss `IndexFlatL2` on the same vectors.

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use imgclass_core::{Dataset, Fit, Predict, Subset};
use imgclass_knn::{Knn, Metric};

/// The element type a benchmark runs on (`bench knn`, `bench linear`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Dtype {
    /// The raw u8 pixels (the integer kernels).
    U8,
    /// The same pixel values as an f32 feature matrix (the general path).
    F32,
}

impl std::fmt::Display for Dtype {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::U8 => "u8",
            Self::F32 => "f32",
        })
    }
}

/// Arguments of `cargo xtask bench knn`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Distance: l1, l2 (squared Euclidean) or cosine (with --dtype f32 only).
    #[arg(long, default_value = "l2", value_parser = parse_metric)]
    metric: Metric,
    /// Neighbours per query.
    #[arg(long, default_value_t = 1)]
    k: usize,
    /// Element type searched: u8 (the raw pixels, exact integer kernels) or f32 (the pixels
    /// converted to f32 features, the general feature path).
    #[arg(long, value_enum, default_value = "u8")]
    dtype: Dtype,
    /// Use the first N training images (default: all 50,000).
    #[arg(long)]
    n_train: Option<usize>,
    /// Use the first N test images (default: all 10,000).
    #[arg(long)]
    n_test: Option<usize>,
    /// Worker threads (default: 2).
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Write one predicted label per test image, in order, one per line.
    #[arg(long)]
    predictions: Option<PathBuf>,
    /// Write a JSON summary (wall time, peak RSS, threads, accuracy, kernel).
    #[arg(long)]
    json: Option<PathBuf>,
    /// Data directory holding `cifar-10/cifar-10-batches-bin/` (default: `$IMGCLASS_DATA_DIR`,
    /// else `<workspace>/datasets`).
    #[arg(long)]
    data_dir: Option<PathBuf>,
}

fn parse_metric(s: &str) -> Result<Metric, String> {
    s.parse().map_err(|e: imgclass_linalg::UnknownMetric| e.to_string())
}

use crate::paths::data_dir;
use crate::procstat::{cpu_seconds, status_bytes};

fn first_n(ds: &Dataset, n: Option<usize>) -> anyhow::Result<Subset> {
    match n {
        Some(n) if n < ds.len() => Ok(ds.subset((0..n).collect::<Vec<_>>())?),
        _ => Ok(ds.all()),
    }
}

/// Runs the command.
pub fn run(args: Args) -> anyhow::Result<()> {
    let dir = crate::paths::cifar10_dir(&data_dir(args.data_dir.as_deref()));
    let pool = rayon::ThreadPoolBuilder::new().num_threads(args.threads.max(1)).build()?;
    let kernel = imgclass_linalg::KernelKind::detect()?;
    let t = Instant::now();
    let tt = imgclass_data::cifar::read_cifar10(&dir)
        .with_context(|| format!("reading {}", dir.display()))?;
    let train = first_n(&tt.train, args.n_train)?;
    let test = first_n(&tt.test, args.n_test)?;
    let (train, test) = if args.dtype == Dtype::F32 {
        let to_f32 = |s: &Subset| -> anyhow::Result<Subset> {
            Ok(s.with_features(s.values().to_f32(), s.dim())?.all())
        };
        (to_f32(&train)?, to_f32(&test)?)
    } else {
        (train, test)
    };
    let load_s = t.elapsed().as_secs_f64();
    eprintln!(
        "loaded {} train / {} test images ({} {} values each) in {load_s:.2} s",
        train.len(),
        test.len(),
        train.dim(),
        args.dtype
    );
    let t = Instant::now();
    let cpu0 = cpu_seconds().unwrap_or(0.0);
    let predicted = pool.install(|| -> anyhow::Result<Vec<u32>> {
        let model = Knn::new(args.k).metric(args.metric).fit(&train)?;
        Ok(model.predict(&test)?)
    })?;
    let wall_s = t.elapsed().as_secs_f64();
    let cpu_s = cpu_seconds().unwrap_or(0.0) - cpu0;
    let correct = predicted.iter().zip(test.labels()).filter(|(p, y)| *p == y).count();
    let accuracy = correct as f64 / test.len().max(1) as f64;
    let peak = status_bytes("VmHWM:").unwrap_or(0);
    let pairs = (train.len() * test.len() * train.dim()) as f64;
    println!(
        "knn {} {} k={} kernel={kernel} threads={}: {} test x {} train: wall {wall_s:.3} s \
         ({:.1} G element-pairs/s), cpu {cpu_s:.2} s, peak RSS {:.0} MiB, accuracy {:.2} %",
        args.metric,
        args.dtype,
        args.k,
        args.threads,
        test.len(),
        train.len(),
        pairs / wall_s / 1e9,
        peak as f64 / (1024.0 * 1024.0),
        accuracy * 100.0
    );
    if let Some(path) = &args.predictions {
        let mut f = std::io::BufWriter::new(
            std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?,
        );
        for p in &predicted {
            writeln!(f, "{p}")?;
        }
        f.flush()?;
    }
    if let Some(path) = &args.json {
        let summary = serde_json::json!({
            "method": format!("imgclass {} ({}, {kernel})", args.metric, args.dtype),
            "dtype": args.dtype,
            "metric": args.metric.name(),
            "k": args.k,
            "kernel": kernel.name(),
            "threads": args.threads,
            "n_train": train.len(),
            "n_test": test.len(),
            "load_s": load_s,
            "wall_s": wall_s,
            "cpu_s": cpu_s,
            "peak_rss_bytes": peak,
            "accuracy": accuracy,
        });
        std::fs::write(path, serde_json::to_string_pretty(&summary)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}
