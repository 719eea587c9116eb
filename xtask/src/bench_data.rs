//! `cargo xtask bench data`: time and peak memory of the image-folder import (2 threads vs 1
//! thread, same decoder) and of loading CIFAR-10 from the imported binary layout vs reading
//! the same files' bytes (like `cat` to /dev/null, warm cache), side by side in one run.
//!
//! Peak memory is `VmHWM` from `/proc/self/status`, reset before each phase by writing `5` to
//! `/proc/self/clear_refs` (Linux); it is the whole process's peak resident set, so it includes
//! what the process already held when the phase started (printed as "base").

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use imgclass_data::cifar;
use imgclass_data::folder::{FolderOptions, read_image_folder};

use crate::fetch::IMPORT_SEED;
use crate::procstat::{cpu_seconds, status_bytes};

/// Arguments.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The CIFAR-10 image folder (`train/<class>/*.jpg`, `test/<class>/*.jpg`); default
    /// `IMGCLASS_CIFAR10_JPEG`, else `../shared/datasets/cifar10-jpeg`.
    #[arg(long)]
    pub jpeg_dir: Option<PathBuf>,
    /// Where to write the imported `cifar-10-batches-bin/` (default: a temporary directory,
    /// removed afterwards).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Repetitions of the load-vs-read comparison (minimum and median are reported).
    #[arg(long, default_value_t = 7)]
    pub repeats: usize,
    /// Repetitions of each import (1 thread and 2 threads alternate).
    #[arg(long, default_value_t = 1)]
    pub import_repeats: usize,
    /// Where to write the Markdown results (text below a `<!-- notes -->` line is kept).
    #[arg(long, default_value = "docs/bench/data.md")]
    pub out: PathBuf,
    /// Print only; do not write `--out`.
    #[arg(long)]
    pub no_write: bool,
}

/// One measured phase.
struct Phase {
    name: String,
    times: Vec<Duration>,
    /// Peak resident set during the phase (max over repetitions), bytes.
    peak: Option<u64>,
    /// Resident set when the phase started, bytes.
    base: Option<u64>,
    /// Process CPU time (user + system) of each run.
    cpu: Vec<Duration>,
}

impl Phase {
    fn min(&self) -> Duration {
        self.times.iter().copied().min().unwrap_or_default()
    }
    fn median(&self) -> Duration {
        median(&self.times)
    }
}

fn median(times: &[Duration]) -> Duration {
    let mut t = times.to_vec();
    t.sort();
    t.get(t.len() / 2).copied().unwrap_or_default()
}

/// Runs the command.
pub fn run(args: Args) -> anyhow::Result<()> {
    let jpeg_dir = args
        .jpeg_dir
        .clone()
        .or_else(|| std::env::var_os("IMGCLASS_CIFAR10_JPEG").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("../shared/datasets/cifar10-jpeg"));
    anyhow::ensure!(
        jpeg_dir.join("train").is_dir(),
        "{} has no train/ folder: pass --jpeg-dir (the CIFAR-10 image folder)",
        jpeg_dir.display()
    );
    let tmp;
    let data_root = match &args.data_dir {
        Some(d) => d.clone(),
        None => {
            tmp = tempfile::tempdir().context("create a temporary directory")?;
            tmp.path().to_path_buf()
        }
    };
    let bin_dir = crate::paths::cifar10_dir(&data_root);
    std::fs::create_dir_all(&bin_dir).with_context(|| format!("create {}", bin_dir.display()))?;
    let repeats = args.repeats.max(1);
    let load_start = loadavg();

    // warm the page cache for the image files, and time reading their bytes
    let jpeg_files = list_files(&jpeg_dir)?;
    let jpeg_bytes: u64 =
        jpeg_files.iter().map(|f| std::fs::metadata(f).map(|m| m.len()).unwrap_or(0)).sum();
    read_bytes(&jpeg_files)?;
    let mut phases = Vec::new();
    let mut jpeg_read =
        new_phase(format!("read bytes of the {} image files (warm)", jpeg_files.len()));
    timed(&mut jpeg_read, || read_bytes(&jpeg_files).map(|_| ()))?;
    phases.push(jpeg_read);

    // import: 2 threads and 1 thread, alternating, same decoder
    let mut import2 = new_phase("import image folder, 2 threads".into());
    let mut import1 = new_phase("import image folder, 1 thread".into());
    let mut n_images = 0;
    for r in 0..args.import_repeats.max(1) {
        for (threads, phase) in [(2, &mut import2), (1, &mut import1)] {
            let opts = FolderOptions { resize: None, threads: Some(threads) };
            let data = timed(phase, || Ok(read_image_folder(&jpeg_dir, &opts)?))?;
            n_images = data.train.len() + data.test.len();
            if r == 0 && threads == 2 {
                let mut data = data;
                data.shuffle_train(IMPORT_SEED)?;
                cifar::write_cifar10(&bin_dir, &data)?;
            }
        }
    }
    let speedup = import1.min().as_secs_f64() / import2.min().as_secs_f64();

    // load vs raw read of the same files, alternating, warm cache
    let bin_files: Vec<PathBuf> = cifar::CIFAR10_TRAIN_FILES
        .iter()
        .chain([&cifar::CIFAR10_TEST_FILE, &cifar::CIFAR10_META_FILE])
        .map(|f| bin_dir.join(f))
        .collect();
    let bin_bytes = read_bytes(&bin_files)?;
    cifar::read_cifar10(&bin_dir)?; // warm
    let mut raw = new_phase("read the same bytes (128 KiB buffer, like cat)".into());
    let mut cat = new_phase("`cat` the same files > /dev/null (subprocess)".into());
    let mut load = new_phase("load CIFAR-10 binary layout (read_cifar10)".into());
    let mut touch = new_phase(format!(
        "baseline: allocate and fill {:.0} MB of fresh memory (page faults)",
        (bin_bytes - bin_bytes / 3073) as f64 / 1e6
    ));
    let mut touch2 =
        new_phase("baseline: the same, filled by 2 threads (rayon, 1 MiB chunks)".into());
    let mut slurp =
        new_phase("read the same files into memory (std::fs::read each, all kept)".into());
    for _ in 0..repeats {
        timed(&mut slurp, || {
            let all = bin_files
                .iter()
                .map(|f| std::fs::read(f).with_context(|| format!("read {}", f.display())))
                .collect::<anyhow::Result<Vec<Vec<u8>>>>()?;
            Ok(std::hint::black_box(all).len())
        })?;
        timed(&mut raw, || read_bytes(&bin_files).map(|_| ()))?;
        timed(&mut load, || Ok(cifar::read_cifar10(&bin_dir).map(|d| d.train.len())?))?;
        timed(&mut cat, || {
            let status = std::process::Command::new("cat")
                .args(&bin_files)
                .stdout(std::process::Stdio::null())
                .status()
                .context("run cat")?;
            anyhow::ensure!(status.success(), "cat failed");
            Ok(())
        })?;
        timed(&mut touch, || {
            let v = vec![1u8; (bin_bytes - bin_bytes / 3073) as usize];
            Ok(std::hint::black_box(v).len())
        })?;
        timed(&mut touch2, || {
            use rayon::prelude::*;
            // calloc'd pages are not touched until the parallel fill
            let mut v = vec![0u8; (bin_bytes - bin_bytes / 3073) as usize];
            v.par_chunks_mut(1 << 20).for_each(|c| c.fill(1));
            Ok(std::hint::black_box(v).len())
        })?;
    }
    let load_ratio = load.min().as_secs_f64() / raw.min().as_secs_f64();
    let load_vs_cat = load.min().as_secs_f64() / cat.min().as_secs_f64();
    let load_vs_touch = load.min().as_secs_f64() / touch2.min().as_secs_f64();
    let load_vs_slurp = load.min().as_secs_f64() / slurp.min().as_secs_f64();
    phases.extend([import2, import1, raw, cat, load, slurp, touch, touch2]);

    let command = std::env::args().collect::<Vec<_>>()[1..].join(" ");
    let command = format!("cargo xtask {command}");
    let load_end = loadavg();
    let mut md = String::new();
    md.push_str("# Data loading benchmarks (`cargo xtask bench data`)\n\n");
    md.push_str(&format!("Command: `{command}` (from the repository root).\n\n"));
    md.push_str(&format!("Date: {}. Machine: {}.\n\n", now_utc(), machine()));
    md.push_str(&format!(
        "Load average (1 min) at start / end: {load_start} / {load_end} (other work shares the machine).\n\n"
    ));
    md.push_str(&format!(
        "Image folder: {} ({} images, {:.1} MB of JPEG); binary layout: {} ({:.1} MB).\n\n",
        jpeg_dir.display(),
        n_images,
        jpeg_bytes as f64 / 1e6,
        bin_dir.display(),
        bin_bytes as f64 / 1e6
    ));
    md.push_str(
        "| phase | runs | min | median | median CPU (user+sys) | peak RSS | RSS at start |\n",
    );
    md.push_str("| --- | ---: | ---: | ---: | ---: | ---: | ---: |\n");
    for p in &phases {
        md.push_str(&format!(
            "| {} | {} | {:.3} s | {:.3} s | {:.2} s | {} | {} |\n",
            p.name,
            p.times.len(),
            p.min().as_secs_f64(),
            p.median().as_secs_f64(),
            median(&p.cpu).as_secs_f64(),
            mib(p.peak),
            mib(p.base)
        ));
    }
    md.push_str("\n| target | measured (ratio of minimums) | verdict |\n| --- | ---: | --- |\n");
    md.push_str(&format!(
        "| load within 2x of reading the bytes | {load_ratio:.2}x (vs `cat` subprocess: {load_vs_cat:.2}x) | {} |\n",
        if load_ratio <= 2.0 { "met" } else { "NOT met" }
    ));
    md.push_str(&format!(
        "| (context) load vs `std::fs::read` of the files into memory | {load_vs_slurp:.2}x | |\n"
    ));
    md.push_str(&format!(
        "| (context) load vs filling fresh memory of the pixels' size with 2 threads | {load_vs_touch:.2}x | |\n"
    ));
    md.push_str(&format!(
        "| 2-thread import >= 1.8x faster than 1 thread | {speedup:.2}x | {} |\n",
        if speedup >= 1.8 { "met" } else { "NOT met" }
    ));
    println!("{md}");
    if !args.no_write {
        let notes = std::fs::read_to_string(&args.out)
            .ok()
            .and_then(|old| old.find("<!-- notes -->").map(|i| old[i..].to_string()))
            .unwrap_or_else(|| "<!-- notes -->\n".to_string());
        if let Some(parent) = args.out.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&args.out, format!("{md}\n{notes}"))
            .with_context(|| format!("write {}", args.out.display()))?;
        eprintln!("wrote {}", args.out.display());
    }
    Ok(())
}

fn new_phase(name: String) -> Phase {
    Phase { name, times: Vec::new(), peak: None, base: None, cpu: Vec::new() }
}

/// Runs `f` once, adding its time and peak resident set to `phase`.
fn timed<T>(phase: &mut Phase, f: impl FnOnce() -> anyhow::Result<T>) -> anyhow::Result<T> {
    let base = reset_peak();
    let cpu0 = cpu_time();
    let start = Instant::now();
    let out = f()?;
    let (wall, cpu) = (start.elapsed(), cpu_time().saturating_sub(cpu0));
    tracing::debug!(phase = %phase.name, wall_ms = wall.as_secs_f64() * 1e3, cpu_ms = cpu.as_secs_f64() * 1e3, "run");
    phase.times.push(wall);
    phase.cpu.push(cpu);
    let peak = status_bytes("VmHWM:");
    phase.peak = phase.peak.max(peak);
    phase.base = phase.base.max(base);
    Ok(out)
}

/// Resets the peak resident set (`VmHWM`) to the current one; returns the current one, bytes.
fn reset_peak() -> Option<u64> {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    status_bytes("VmRSS:")
}

/// CPU time (user + system) of this process so far; zero when unavailable. A `cat`
/// subprocess is not counted.
fn cpu_time() -> Duration {
    Duration::from_secs_f64(cpu_seconds().unwrap_or(0.0))
}

fn mib(bytes: Option<u64>) -> String {
    bytes.map_or_else(|| "n/a".into(), |b| format!("{:.0} MiB", b as f64 / (1 << 20) as f64))
}

/// Reads every file through one 128 KiB buffer (what `cat` does); returns the byte count.
fn read_bytes(files: &[PathBuf]) -> anyhow::Result<u64> {
    let mut buf = vec![0u8; 128 * 1024];
    let mut total = 0u64;
    for f in files {
        let mut file = std::fs::File::open(f).with_context(|| format!("open {}", f.display()))?;
        loop {
            let n = file.read(&mut buf).with_context(|| format!("read {}", f.display()))?;
            if n == 0 {
                break;
            }
            total += n as u64;
        }
    }
    std::hint::black_box(&buf);
    Ok(total)
}

/// Every file under `dir`, recursively, sorted.
fn list_files(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).with_context(|| format!("list {}", d.display()))? {
            let p = e?.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// The 1-minute load average from `/proc/loadavg`.
fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "?".into())
}

fn now_utc() -> String {
    std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|| "unknown".into())
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem = status_mem_total().map_or_else(|| "?".into(), |g| format!("{g:.0} GiB"));
    format!("{cpu}, {cores} cores, {mem} RAM, Linux")
}

fn status_mem_total() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = s.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: f64 = line["MemTotal:".len()..].trim().trim_end_matches("kB").trim().parse().ok()?;
    Some(kib / (1024.0 * 1024.0))
}
