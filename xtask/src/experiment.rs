//! `cargo xtask experiment`: the project's main job, the whole pipeline end to end. It loads
//! a dataset (CIFAR-10 by default, fetched when absent), cross-validates k-NN over k and the
//! distance, tunes a linear SVM and a softmax classifier on a validation split, measures the
//! approximate-search indices, and writes `reports/<date-time>/` (report.html, results.json
//! and every plot as a file), printing a summary table at the end.
//!
//! Reproducible: everything random derives from one seed, so the same seed gives the same
//! results.json (wall-clock fields aside, see [`report`]) whatever the thread count.
//! Atomic: the report is written into a temporary directory beside the output, created only
//! once every phase has finished, and renamed into place at the end; an error, Ctrl-C or
//! SIGTERM leaves no report directory behind (the temporary one is removed by the interrupt
//! handler, or, if the process was killed outright, by the next run's sweep of temporaries
//! whose PID is dead). Whether `--out` can be written is checked before any phase runs.

mod ann;
mod config;
mod demo;
mod knn;
mod linear;
mod load;
mod progress;
mod report;
mod report_reps;
mod representations;
mod steps;

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use imgclass_core::rng::SplitMix64;

pub use config::Config;
pub use load::DatasetName;
use progress::Progress;
use report::{AnnOutcome, DatasetInfo, Results, RunInfo, Timings};

/// Arguments of `cargo xtask experiment`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// TOML config choosing experiments, grids, seed and sizes (see experiment.example.toml).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Subsampled run (about a minute on CIFAR-10): the sizes of the config's `quick` table.
    #[arg(long)]
    pub quick: bool,
    /// Dataset: cifar-10, cifar-100, mnist, fashion-mnist, folder (--data-dir is the image
    /// folder), demo (generated, offline, seconds; implies --quick).
    #[arg(long, value_enum, default_value_t = DatasetName::Cifar10)]
    pub dataset: DatasetName,
    /// Data directory (default: `$IMGCLASS_DATA_DIR`, else `<workspace>/datasets`); for
    /// `--dataset folder`, the folder holding train/ and test/.
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Master seed (overrides the config's).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Output directory (must not exist) (default: `<workspace>/reports/<date-time>`).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

/// Seed streams of the phases (forks of the master seed).
mod stream {
    pub const SUBSAMPLE_TRAIN: u64 = 1;
    pub const SUBSAMPLE_TEST: u64 = 2;
    pub const KNN_FOLDS: u64 = 3;
    pub const LINEAR: u64 = 4;
    pub const ANN: u64 = 5;
    pub const KNN_STEPS: u64 = 6;
    pub const LINEAR_STEPS: u64 = 7;
    pub const REPRESENTATIONS: u64 = 8;
}

/// Runs the experiment.
pub fn run(args: Args) -> anyhow::Result<()> {
    let start = Instant::now();
    let started_utc = utc_stamp(std::time::SystemTime::now(), true);
    let mut cfg = match &args.config {
        Some(path) => Config::from_file(path)?,
        None => Config::default(),
    };
    if let Some(seed) = args.seed {
        cfg.seed = seed;
    }
    let quick = args.quick || args.dataset == DatasetName::Demo;
    if quick {
        cfg = cfg.quick();
    }
    if args.dataset == DatasetName::Demo && args.config.is_none() {
        // the demo's per-pixel noise is independent, so no low-dimensional projection keeps
        // the neighbours: index the raw pixels
        cfg.ann.pca = 0;
    }
    let out = match &args.out {
        Some(o) => o.clone(),
        None => {
            workspace_root().join("reports").join(utc_stamp(std::time::SystemTime::now(), false))
        }
    };
    anyhow::ensure!(
        !out.exists(),
        "the output directory {} already exists; choose another --out",
        out.display()
    );
    // before any computation: the report can be written there, and temporaries of killed
    // runs beside it are removed
    check_writable(&out)?;
    if let Some(parent) = out.parent().filter(|p| p.is_dir()) {
        crate::cleanup::sweep_stale_marked(parent, TMP_MARKER);
    }
    let root = SplitMix64::new(cfg.seed);
    let seed_of = |s: u64| root.fork(s).next_u64();

    // load
    let t = Instant::now();
    let data_dir = load::data_dir(args.data_dir.as_deref());
    let tt = load::load(args.dataset, &data_dir, cfg.seed)?;
    let train = load::subsample(&tt.train, cfg.n_train, seed_of(stream::SUBSAMPLE_TRAIN))?;
    let test = load::subsample(&tt.test, cfg.n_test, seed_of(stream::SUBSAMPLE_TEST))?;
    anyhow::ensure!(train.len() >= 2 && !test.is_empty(), "too few images to experiment on");
    let image_shape = tt
        .train
        .image_shape()
        .context("the experiment reads images; this dataset holds features")?;
    // every phase's feature steps against the images, before the first phase runs
    if cfg.knn.enabled {
        steps::check(&cfg.knn.steps, train.shape(), "knn")?;
    }
    if cfg.linear.enabled {
        steps::check(&cfg.linear.steps, train.shape(), "linear")?;
    }
    for rep in &cfg.representations {
        steps::check(&rep.steps, train.shape(), &rep.name)?;
    }
    let mut timings = Timings { load_seconds: t.elapsed().as_secs_f64(), ..Timings::default() };
    eprintln!(
        "experiment: {} {} ({} train, {} test of {} x {}), seed {}, {} threads{}",
        args.dataset.name(),
        tt.train.shape(),
        train.len(),
        test.len(),
        tt.train.len(),
        tt.test.len(),
        cfg.seed,
        rayon::current_num_threads(),
        if quick { ", quick" } else { "" }
    );

    let knn = if cfg.knn.enabled {
        let mut p = Progress::new("k-NN", knn::steps(&cfg.knn));
        let prep =
            steps::prepare(&cfg.knn.steps, &train, &test, seed_of(stream::KNN_STEPS), "knn")?;
        let shown = (&train, &test);
        let r = knn::run(&prep, shown, &cfg.knn, seed_of(stream::KNN_FOLDS), &mut p)?;
        timings.knn_seconds = p.finish();
        Some(r)
    } else {
        None
    };
    let linear = if cfg.linear.enabled {
        let mut p = Progress::new("linear", linear::steps(&cfg.linear));
        let prep = steps::prepare(
            &cfg.linear.steps,
            &train,
            &test,
            seed_of(stream::LINEAR_STEPS),
            "linear",
        )?;
        let r =
            linear::run(&prep, &test, &cfg.linear, cfg.search, seed_of(stream::LINEAR), &mut p)?;
        timings.linear_seconds = p.finish();
        Some(r)
    } else {
        None
    };
    let mut reps = Vec::new();
    if !cfg.representations.is_empty() {
        let total =
            cfg.representations.iter().map(|r| representations::steps(r, &cfg)).sum::<u64>()
                + cfg.ensembles.len() as u64;
        let mut p = Progress::new("features", total);
        let rseed = SplitMix64::new(seed_of(stream::REPRESENTATIONS));
        for (i, rep) in cfg.representations.iter().enumerate() {
            let seed = rseed.fork(i as u64).next_u64();
            reps.push(representations::run(rep, &cfg, (&train, &test), seed, &mut p)?);
        }
        for e in &cfg.ensembles {
            let r = representations::run_ensemble(e, &reps, &test)?;
            p.step(&format!("{}: test {:.4}", e.name, r.classifiers[0].test_accuracy));
            reps.push(r);
        }
        timings.representations_seconds = p.finish();
    }
    let ann = if cfg.ann.enabled {
        let mut p = Progress::new("ann", ann::steps(&cfg.ann));
        let r = ann::run(&train, &test, &cfg.ann, seed_of(stream::ANN), &mut p)?;
        timings.ann_seconds = p.finish();
        AnnOutcome::Ran(r)
    } else {
        AnnOutcome::Skipped { skipped: "disabled in the config ([ann] enabled = false)".into() }
    };

    // report: rendered in memory, then written into a temporary directory and renamed
    let t = Instant::now();
    let names = tt.train.classes().clone();
    let rendered = report::render(knn.as_ref(), linear.as_ref(), &reps, &ann, &names, image_shape)?;
    let summary = report::summary(knn.as_ref(), linear.as_ref(), &reps, &ann);
    let config_toml = toml::to_string(&cfg).context("serialising the config")?;
    let mut results = Results {
        schema_version: report::RESULTS_SCHEMA_VERSION,
        dataset: DatasetInfo {
            name: args.dataset.name().into(),
            shape: image_shape,
            classes: names,
            n_train_available: tt.train.len(),
            n_test_available: tt.test.len(),
            n_train: train.len(),
            n_test: test.len(),
        },
        seed: cfg.seed,
        quick,
        config: cfg,
        knn,
        linear,
        representations: reps,
        ann,
        summary,
        figures: rendered.figures.clone(),
        timings,
        run: RunInfo {
            started_utc,
            command: std::env::args().collect::<Vec<_>>().join(" "),
            threads: rayon::current_num_threads(),
            version: env!("CARGO_PKG_VERSION"),
            git_commit: report::git_commit(&workspace_root()),
        },
    };
    results.timings.report_seconds = t.elapsed().as_secs_f64();
    results.timings.total_seconds = start.elapsed().as_secs_f64();
    results.timings.peak_rss_bytes = crate::procstat::status_bytes("VmHWM:");
    let html = report::page(&results, &rendered, &config_toml);
    write_atomically(&out, |dir| {
        report::write_all(dir, &results, &rendered, &html)?;
        save_models(dir, &results, &train, args.dataset, &data_dir)
    })?;
    println!("{}", report::summary_text(&results.summary, &results.timings));
    println!("report: {}", out.join("report.html").display());
    let mut models: Vec<String> = std::fs::read_dir(&out)
        .with_context(|| format!("cannot list {}", out.display()))?
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .filter(|n| n.starts_with("model-") && n.ends_with(".json"))
        .collect();
    models.sort();
    if !models.is_empty() {
        let line = format!("models: {} in {}", models.join(", "), out.display());
        for l in report::wrap_words(&line, report::SUMMARY_WIDTH) {
            println!("{l}");
        }
    }
    if args.out.is_none() {
        let link = point_latest(&out)?;
        let name = out.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        println!("latest: {} -> {name}", link.display());
    }
    Ok(())
}

/// Points `latest` beside `out` at `out` (a relative symbolic link, replaced atomically by a
/// rename), so `reports/latest/...` names the newest report; returns the link's path.
#[cfg(unix)]
fn point_latest(out: &Path) -> anyhow::Result<PathBuf> {
    let parent = out.parent().context("the report directory has a parent")?;
    let name = out.file_name().context("the report directory has a name")?;
    let link = parent.join("latest");
    let tmp = parent.join(format!(".latest.tmp-{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(name, &tmp)
        .with_context(|| format!("cannot create the link {}", tmp.display()))?;
    std::fs::rename(&tmp, &link).with_context(|| {
        let _ = std::fs::remove_file(&tmp);
        format!("cannot point {} at {}", link.display(), out.display())
    })?;
    Ok(link)
}

/// Without symbolic links, `latest` is a one-line file holding the newest report's name.
#[cfg(not(unix))]
fn point_latest(out: &Path) -> anyhow::Result<PathBuf> {
    let parent = out.parent().context("the report directory has a parent")?;
    let name = out.file_name().context("the report directory has a name")?;
    let link = parent.join("latest");
    std::fs::write(&link, format!("{}\n", name.to_string_lossy()))?;
    Ok(link)
}

/// Saves the chosen models beside the report (imgclass-model's format): `model-svm` and
/// `model-softmax` (`.json` + `.safetensors`, the retrained linear models) and, when the
/// config's `[knn] save_model` is set, the chosen k and distance (majority vote as in the CV)
/// either as `model-knn-ref.json` (a reference to this run's CIFAR-10 training rows, see
/// [`crate::knn_ref`]) or as `model-knn` (a copy of them), per `[knn] model_data`.
/// `cargo xtask predict --model <dir>/model-softmax.json IMAGE...` classifies with them.
fn save_models(
    dir: &Path,
    results: &Results,
    train: &imgclass_core::Subset,
    dataset: DatasetName,
    data_dir: &Path,
) -> anyhow::Result<()> {
    use imgclass_core::Fit;
    use imgclass_model::{Provenance, save_knn, save_linear};
    let prov = |validation: Option<f64>, test: f64| Provenance {
        dataset: results.dataset.name.clone(),
        seed: Some(results.seed),
        validation_accuracy: validation,
        test_accuracy: Some(test),
        created_by: format!("cargo xtask experiment {}", env!("CARGO_PKG_VERSION")),
        hyperparameters: Default::default(),
    };
    if let Some(lin) = &results.linear {
        for l in &lin.losses {
            let g = &l.grid[l.best];
            let mut p = prov(g.val_accuracy, l.test_accuracy);
            p.hyperparameters.insert("learning_rate".into(), g.learning_rate.into());
            p.hyperparameters.insert("regularization".into(), g.regularization.into());
            p.hyperparameters.insert("iterations".into(), lin.iterations.into());
            let path = dir.join(format!("model-{}", l.loss));
            if lin.steps.is_empty() {
                save_linear(&l.model, &results.dataset.classes, &p, path)?;
            } else {
                // a pipeline: the fitted feature steps, then the model
                let model = imgclass_model::SavedModel::Linear {
                    model: l.model.clone(),
                    classes: results.dataset.classes.clone(),
                };
                imgclass_model::save_pipeline(&lin.steps, &model, &p, path)?;
            }
        }
    }
    for rep in &results.representations {
        for c in &rep.classifiers {
            // a k-NN model is its training rows: saved only when [knn] save_model asks
            let wanted =
                c.classifier != config::ClassifierKind::Knn || results.config.knn.save_model;
            let Some(model) = c.saved.as_ref().filter(|_| wanted) else { continue };
            let mut p = prov(c.val_accuracy, c.test_accuracy);
            p.hyperparameters.insert("representation".into(), rep.name.clone().into());
            p.hyperparameters.insert("chosen".into(), c.chosen.clone().into());
            let file = dir.join(representations::model_file(&rep.name, c.classifier));
            if let imgclass_model::SavedModel::Ensemble(_) = model {
                // after its members, which the loop saved first (ensembles come last)
                model.save(&p, file)?;
            } else {
                imgclass_model::save_pipeline(&rep.steps, model, &p, file)?;
            }
        }
    }
    if let Some(k) = results.knn.as_ref().filter(|_| results.config.knn.save_model) {
        if results.config.knn.model_data == config::ModelData::Reference && k.steps.is_empty() {
            if dataset == DatasetName::Cifar10 {
                let path = dir.join("model-knn-ref.json");
                let cifar = crate::paths::cifar10_dir(data_dir);
                return crate::knn_ref::save(
                    &path,
                    k.best_k,
                    crate::knn_cv::metric_label(k.best_metric),
                    &cifar,
                    train,
                    Some(k.test_accuracy),
                );
            }
            tracing::warn!(
                dataset = dataset.name(),
                "a k-NN reference needs CIFAR-10 files; saving a copy of the training rows"
            );
        }
        let metric = k.best_metric;
        let p = prov(Some(k.cv_mean), k.test_accuracy);
        if k.steps.is_empty() {
            let model = imgclass_knn::Knn::new(k.best_k).metric(metric).fit(train)?;
            save_knn(&model, &p, dir.join("model-knn"))?;
        } else {
            // a pipeline: the fitted steps, then k-NN over the training rows' features (a
            // reference to the image files cannot hold the steps, so this is a copy)
            let rows = imgclass_features::apply(&k.steps, train)?;
            let model = imgclass_knn::Knn::new(k.best_k).metric(metric).fit(&rows)?;
            let saved = imgclass_model::SavedModel::Knn { model, index: None };
            imgclass_model::save_pipeline(&k.steps, &saved, &p, dir.join("model-knn"))?;
        }
    }
    Ok(())
}

/// The workspace root (the parent of the xtask crate).
use crate::paths::workspace_root;

/// The marker of a temporary report directory's name: `.<out name>.tmp-<pid>-<random>`.
const TMP_MARKER: &str = ".tmp-";

/// Fails unless a report can be created at `out`: its nearest existing ancestor is a
/// directory where this user can create files (probed with a temporary file, removed at
/// once; no directory is created). Checked before the phases run, so a read-only `--out`
/// fails in a second instead of after all the computation.
fn check_writable(out: &Path) -> anyhow::Result<()> {
    let mut dir = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    while !dir.exists() {
        match dir.parent() {
            Some(p) if !p.as_os_str().is_empty() => dir = p.to_path_buf(),
            _ => {
                dir = PathBuf::from(".");
                break;
            }
        }
    }
    let hint = "hint: choose an --out in a directory you can write to";
    anyhow::ensure!(
        dir.is_dir(),
        "cannot write the report to {}: {} is not a directory\n{hint}",
        out.display(),
        dir.display()
    );
    let probe = tempfile::Builder::new()
        .prefix(&crate::cleanup::owned_prefix(".imgclass-probe.tmp-"))
        .tempfile_in(&dir);
    if let Err(e) = probe {
        anyhow::bail!(
            "cannot write the report to {}: cannot create files in {} ({e})\n{hint}",
            out.display(),
            dir.display()
        );
    }
    Ok(())
}

/// Calls `write` on a fresh temporary directory beside `out`, then renames it to `out`. On
/// any error, and on Ctrl-C or SIGTERM, the temporary directory is removed and `out` is not
/// created; its name carries this process's PID, so a later run removes it if this process
/// is killed outright.
fn write_atomically(
    out: &Path,
    write: impl FnOnce(&Path) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let parent = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&parent)
        .with_context(|| format!("cannot create {}", parent.display()))?;
    let name = out.file_name().map_or("report".into(), |n| n.to_string_lossy().into_owned());
    let tmp = tempfile::Builder::new()
        .prefix(&crate::cleanup::owned_prefix(&format!(".{name}{TMP_MARKER}")))
        .tempdir_in(&parent)
        .with_context(|| format!("cannot create a temporary directory in {}", parent.display()))?;
    let _on_interrupt = crate::cleanup::remove_tree_on_interrupt(tmp.path());
    write(tmp.path())?;
    anyhow::ensure!(!out.exists(), "{} appeared while the experiment ran", out.display());
    let path = tmp.keep();
    if let Err(e) = std::fs::rename(&path, out) {
        std::fs::remove_dir_all(&path).ok();
        return Err(e).with_context(|| format!("cannot rename the report to {}", out.display()));
    }
    Ok(())
}

/// `time` in UTC as `2026-11-29T02:30:00Z` (`iso`) or `2026-11-29_02-30-00` (a file name).
fn utc_stamp(time: std::time::SystemTime, iso: bool) -> String {
    let secs = time.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    let (hh, mm, ss) = (rem / 3600, rem % 3600 / 60, rem % 60);
    if iso {
        format!("{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}Z")
    } else {
        format!("{y:04}-{m:02}-{d:02}_{hh:02}-{mm:02}-{ss:02}")
    }
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar (Howard
/// Hinnant's `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates_match_known_days() {
        // 1970-01-01 is day 0; 2000-03-01 is day 11,017; 2026-11-29 is day 20,786
        // (Python: (date(2026,11,29) - date(1970,1,1)).days)
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(11_017), (2000, 3, 1));
        assert_eq!(civil_from_days(20_786), (2026, 11, 29));
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(20_786 * 86_400 + 3723);
        assert_eq!(utc_stamp(t, true), "2026-11-29T01:02:03Z");
        assert_eq!(utc_stamp(t, false), "2026-11-29_01-02-03");
    }

    #[cfg(unix)]
    #[test]
    fn latest_points_at_the_newest_report() {
        let reports = tempfile::tempdir().expect("tempdir");
        for stamp in ["2026-01-01_00-00-00", "2026-01-02_00-00-00"] {
            let out = reports.path().join(stamp);
            std::fs::create_dir(&out).expect("mkdir");
            std::fs::write(out.join("model-softmax.json"), stamp).expect("write");
            let link = point_latest(&out).expect("link");
            assert_eq!(link, reports.path().join("latest"));
            assert_eq!(std::fs::read_link(&link).expect("a link"), Path::new(stamp));
            assert_eq!(
                std::fs::read_to_string(link.join("model-softmax.json")).expect("read"),
                stamp
            );
        }
        // nothing else left beside the reports
        assert_eq!(std::fs::read_dir(reports.path()).expect("ls").count(), 3);
    }

    #[test]
    fn failed_write_leaves_nothing() {
        let parent = tempfile::tempdir().expect("tempdir");
        let out = parent.path().join("report");
        let err = write_atomically(&out, |dir| {
            std::fs::write(dir.join("half.txt"), "x")?;
            anyhow::bail!("phase failed")
        });
        assert!(err.is_err());
        assert!(!out.exists());
        assert_eq!(std::fs::read_dir(parent.path()).expect("read").count(), 0);
        write_atomically(&out, |dir| Ok(std::fs::write(dir.join("a.txt"), "y")?)).expect("ok");
        assert_eq!(std::fs::read_to_string(out.join("a.txt")).expect("read"), "y");
    }
}
