//! The representations stage (`[[representations]]`): for each representation, its feature
//! steps are fitted on the training images and applied to the training and test rows, then
//! every classifier it lists is chosen on a stratified hold-out (the refining search of
//! `[search]`), retrained on all training rows and scored once on the test set. One summary
//! row per (representation, classifier); the saved models are pipelines (steps, then
//! classifier) that `cargo xtask predict` applies to image files.

use std::time::Instant;

use anyhow::Context;
use imgclass_core::{Fit, Subset};
use imgclass_eval::{
    Axis, ConfusionMatrix, Origin, Refine, RefinedGrid, RefinedPoint, accuracy,
    refining_grid_search, stratified_split,
};
use imgclass_linear::{Dcd, Lbfgs, Linear, LinearError, Loss, Newton, Solver};
use imgclass_model::SavedModel;
use imgclass_net::{Net, NetError, NetSgd};
use serde::Serialize;

use super::config::{
    ClassifierKind, Config, EnsembleConfig, KnnConfig, NetConfig, RepresentationConfig,
    SolverConfig, SvmSolver,
};
use super::knn::KnnResult;
use super::progress::Progress;
use super::report::sci;

/// One representation's results (serialised into results.json).
#[derive(Debug, Serialize)]
pub struct RepresentationResult {
    /// Its name (`raw`, `hog+hsv`, `kmeans-1600`).
    pub name: String,
    /// The steps' labels joined by ` -> ` (`raw` without steps).
    pub steps_label: String,
    /// Values per row the classifiers saw.
    pub dim: usize,
    /// Seconds to fit the steps and apply them to the training and test rows.
    pub steps_seconds: f64,
    /// One entry per classifier, in the config's order.
    pub classifiers: Vec<ClassifierResult>,
    /// The fitted steps (saved with the models; the report draws a k-means dictionary).
    #[serde(skip)]
    pub steps: Vec<imgclass_features::Step>,
}

/// One classifier on one representation.
#[derive(Debug, Serialize)]
pub struct ClassifierResult {
    /// Which classifier.
    pub classifier: ClassifierKind,
    /// Its name in the summary (`l2-svm (l-bfgs)`, `net (500 hidden)`, ...).
    pub model: String,
    /// The chosen hyperparameters, in words.
    pub chosen: String,
    /// The validation score of the choice, in words.
    pub validation: String,
    /// The hold-out accuracy of the choice (the CV mean for k-NN), when there was a search.
    pub val_accuracy: Option<f64>,
    /// Test accuracy of the chosen model retrained on all training rows.
    pub test_accuracy: f64,
    /// The search's axes (names), in the order of each cell's `values`.
    pub axes: Vec<String>,
    /// Every evaluated cell, in evaluation order (empty when the grid has one cell).
    pub search: Vec<RefinedPoint>,
    /// Axes whose chosen value is on an edge because the search's bound was reached.
    pub bound_hit: Vec<String>,
    /// Training curves of the retrained model.
    pub curves: Curves,
    /// Seconds of the final training.
    pub fit_seconds: f64,
    /// Test confusion matrix.
    pub confusion: ConfusionMatrix,
    /// k-NN's cross-validation (k-NN only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub knn: Option<KnnResult>,
    /// The retrained model, as saved.
    #[serde(skip)]
    pub saved: Option<SavedModel>,
    /// Its scores on the test rows, row-major (linear scores, net logits; empty for k-NN):
    /// what an ensemble sums.
    #[serde(skip)]
    pub test_scores: Vec<f32>,
}

/// Training curves of a retrained model.
#[derive(Debug, Default, Serialize)]
pub struct Curves {
    /// Linear: the objective (data loss + regularisation) per solver iteration; net: the
    /// minibatch loss per iteration.
    pub objective: Vec<f32>,
    /// Net: training accuracy per epoch (on the rows seen, sampled as the net records it).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub train_accuracy: Vec<f64>,
    /// Net: accuracy on its held-out share per epoch.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub val_accuracy: Vec<f64>,
    /// Why the solver stopped (linear), or the epoch kept (net).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub stop: String,
}

/// Number of progress steps of [`run`] announced up front (a search that extends its grid
/// adds steps as it goes).
pub fn steps(rep: &RepresentationConfig, cfg: &Config) -> u64 {
    let net = rep.net.as_ref().unwrap_or(&cfg.net);
    let solver = rep.solver.as_ref().unwrap_or(&cfg.solver);
    1 + rep
        .classifiers
        .iter()
        .map(|c| match c {
            ClassifierKind::Knn => {
                super::knn::steps(&knn_config(rep.knn.as_ref().unwrap_or(&cfg.knn)))
            }
            ClassifierKind::Svm | ClassifierKind::Softmax => {
                let cells = solver.regularizations.len();
                if cells > 1 { cells as u64 + 1 } else { 1 }
            }
            ClassifierKind::Net => {
                let cells = net_cells(net);
                if cells > 1 { cells as u64 + 1 } else { 1 }
            }
            ClassifierKind::Ensemble => 0,
        })
        .sum::<u64>()
}

/// k-NN on a representation: the `[knn]` settings without the gallery (shown once, in the
/// k-NN phase on pixels).
fn knn_config(k: &KnnConfig) -> KnnConfig {
    KnnConfig { gallery_rows: 0, steps: Vec::new(), ..k.clone() }
}

fn net_cells(n: &NetConfig) -> usize {
    n.hidden.len() * n.learning_rates.len() * n.regularizations.len()
}

/// The linear classifier of `kind` with L2 strength `lambda`: softmax by L-BFGS from zero
/// weights; `svm` the one-vs-all squared hinge (L2-SVM, as Coates et al. and LinearSVC) by
/// dual coordinate descent, finite Newton or L-BFGS (`[solver] svm`; `"auto"` chooses between
/// the first two for `n` rows of `d` features).
fn linear_params(
    kind: ClassifierKind,
    lambda: f64,
    solver: &SolverConfig,
    (n, d): (usize, usize),
    seed: u64,
) -> Linear {
    let lbfgs = Solver::Lbfgs(Lbfgs {
        max_iterations: solver.max_iterations,
        tolerance: solver.tolerance,
        mixed_precision: solver.mixed_precision,
        ..Lbfgs::default()
    });
    let (loss, solver) = match (kind, solver.svm.for_rows(n, d, solver.dcd_max_epochs)) {
        (ClassifierKind::Svm, SvmSolver::Dcd) => (
            Loss::OvaSquaredHinge { margin: 1.0 },
            Solver::Dcd(Dcd {
                max_epochs: solver.dcd_max_epochs,
                tolerance: solver.dcd_tolerance,
                seed,
            }),
        ),
        (ClassifierKind::Svm, SvmSolver::Newton) => (
            Loss::OvaSquaredHinge { margin: 1.0 },
            Solver::Newton(Newton { tolerance: solver.tolerance, seed, ..Newton::default() }),
        ),
        // (`for_rows` never returns Auto)
        (ClassifierKind::Svm, SvmSolver::Lbfgs | SvmSolver::Auto) => {
            (Loss::OvaSquaredHinge { margin: 1.0 }, lbfgs)
        }
        _ => (Loss::Softmax, lbfgs),
    };
    Linear::new(loss).regularization(imgclass_linear::Reg::L2(lambda)).solver(solver)
}

fn net_params(n: &NetConfig, v: &[f64], epochs: usize, on_pixels: bool, seed: u64) -> Net {
    Net::new(v[0] as usize)
        .regularization(v[2])
        .input_scale(if on_pixels { n.pixel_scale } else { 1.0 })
        .dropout(n.dropout)
        .sgd(NetSgd {
            batch_size: n.batch_size,
            learning_rate: v[1],
            momentum: n.momentum,
            nesterov: false,
            decay: n.decay,
            epochs,
            seed,
        })
}

/// Runs one representation: fits its steps, then each classifier.
pub fn run(
    rep: &RepresentationConfig,
    cfg: &Config,
    (train, test): (&Subset, &Subset),
    seed: u64,
    progress: &mut Progress,
) -> anyhow::Result<RepresentationResult> {
    let prep = super::steps::prepare(&rep.steps, train, test, seed, &rep.name)?;
    progress.step(&format!(
        "{}: {} features per image ({:.1} s)",
        rep.name,
        prep.train.dim(),
        prep.seconds
    ));
    let names = train.dataset().classes().clone();
    let mut classifiers = Vec::new();
    for (ci, &kind) in rep.classifiers.iter().enumerate() {
        let cseed = imgclass_core::rng::SplitMix64::new(seed).fork(ci as u64 + 1).next_u64();
        let r = match kind {
            ClassifierKind::Knn => {
                let k = rep.knn.as_ref().unwrap_or(&cfg.knn);
                run_knn(&prep, (train, test), k, cseed, progress)?
            }
            ClassifierKind::Svm | ClassifierKind::Softmax => {
                let solver = rep.solver.as_ref().unwrap_or(&cfg.solver);
                run_linear(kind, &prep, solver, cfg.search, &names, cseed, &rep.name, progress)?
            }
            ClassifierKind::Net => {
                let n = rep.net.as_ref().unwrap_or(&cfg.net);
                run_net(n, &prep, cfg.search, &names, cseed, &rep.name, progress)?
            }
            ClassifierKind::Ensemble => {
                anyhow::bail!("{}: an ensemble is an [[ensembles]] entry", rep.name)
            }
        };
        tracing::info!(
            representation = %rep.name,
            model = %r.model,
            test_accuracy = r.test_accuracy,
            "classifier done"
        );
        classifiers.push(r);
    }
    Ok(RepresentationResult {
        name: rep.name.clone(),
        steps_label: prep.representation.clone(),
        dim: prep.train.dim(),
        steps_seconds: prep.seconds,
        classifiers,
        steps: prep.steps,
    })
}

/// Test accuracy and confusion matrix of the class scores `scores` (row-major, one row per
/// test row): the predictions are their argmax, as a linear model's and a net's `predict`.
fn score(scores: &[f32], test: &Subset) -> anyhow::Result<(f64, ConfusionMatrix)> {
    let (truth, c) = (test.labels(), test.n_classes());
    let pred: Vec<_> = scores.chunks_exact(c).map(imgclass_core::argmax_label).collect();
    Ok((accuracy(&truth, &pred)?, ConfusionMatrix::new(&truth, &pred, c)?))
}

fn on_point<'a>(
    progress: &'a mut Progress,
    label: String,
    axes: &'a [Axis],
    announced: usize,
) -> impl FnMut(&RefinedPoint, usize) + 'a {
    move |p, i| {
        if i >= announced {
            progress.grow(1);
        }
        let cell: Vec<String> =
            axes.iter().zip(&p.values).map(|(a, v)| format!("{}={}", a.name, sci(*v))).collect();
        progress.step(&format!(
            "{label} {}{}: {}",
            cell.join(" "),
            match p.origin {
                Origin::Grid => "",
                Origin::Extended => " (extended)",
                Origin::Refined => " (refined)",
            },
            p.point.accuracy.map_or("failed".into(), |a| format!("{a:.4}"))
        ));
    }
}

/// The refining search over `axes` on a stratified hold-out of `train` (`fraction` of it),
/// or `None` when the grid has one cell: that cell is the choice itself, no hold-out fit.
#[allow(clippy::too_many_arguments)]
fn choose<P: Fit>(
    axes: &[Axis],
    make: impl Fn(&[f64]) -> P,
    train: &Subset,
    fraction: f64,
    seed: u64,
    tolerate: impl Fn(&P::Error) -> bool,
    on_point: impl FnMut(&RefinedPoint, usize),
    search: Refine,
) -> anyhow::Result<Option<RefinedGrid>> {
    if axes.iter().map(|a| a.values.len()).product::<usize>() <= 1 {
        return Ok(None);
    }
    let split = stratified_split(&train.labels(), fraction, seed)?;
    let (fit_set, val_set) = split.apply(train)?;
    Ok(Some(refining_grid_search(axes, make, &fit_set, &val_set, tolerate, on_point, search)?))
}

/// The context of a grid search's failure: whose search, on how many rows.
fn held_out(label: &str, rows: usize) -> String {
    format!("{label}: choosing its settings on a held-out share of the {rows} training rows")
}

#[allow(clippy::too_many_arguments)]
fn run_linear(
    kind: ClassifierKind,
    prep: &super::steps::Prepared,
    solver: &SolverConfig,
    search: Refine,
    names: &imgclass_core::ClassNames,
    seed: u64,
    rep: &str,
    progress: &mut Progress,
) -> anyhow::Result<ClassifierResult> {
    let (train, test) = (&prep.train, &prep.test);
    let axes = [Axis::log("L2", solver.regularizations.clone())];
    let label = format!("{rep} {}", kind.label());
    let searched = SolverConfig { max_iterations: solver.search_max_iterations, ..solver.clone() };
    let grid = choose(
        &axes,
        |v| linear_params(kind, v[0], &searched, (train.len(), train.dim()), seed),
        train,
        solver.validation_fraction,
        seed,
        |e| matches!(e, LinearError::Diverged { .. }),
        on_point(progress, label.clone(), &axes, solver.regularizations.len()),
        search,
    )
    .with_context(|| held_out(&label, train.len()))?;
    let (lambda, val) = match &grid {
        Some(g) => {
            let best = g.best.with_context(|| format!("every {label} fit failed"))?;
            (g.points[best].values[0], g.points[best].point.accuracy)
        }
        None => (solver.regularizations[0], None),
    };
    let t = Instant::now();
    let model = linear_params(kind, lambda, solver, (train.len(), train.dim()), seed)
        .fit(train)
        .with_context(|| format!("retraining {label} on all training rows"))?;
    let fit_seconds = t.elapsed().as_secs_f64();
    let test_scores = model.scores(test)?;
    let (test_accuracy, confusion) = score(&test_scores, test)?;
    progress.step(&format!("{label} retrained: test {test_accuracy:.4}"));
    Ok(ClassifierResult {
        classifier: kind,
        model: format!("{} ({})", kind.label(), model.report().solver),
        chosen: format!("L2 {}", sci(lambda)),
        validation: val.map_or("- (one cell, not searched)".into(), |v| format!("hold-out {v:.4}")),
        val_accuracy: val,
        test_accuracy,
        axes: axes.iter().map(|a| a.name.clone()).collect(),
        bound_hit: grid.as_ref().map_or_else(Vec::new, |g| g.bound_hit.clone()),
        search: grid.map_or_else(Vec::new, |g| g.points),
        curves: Curves {
            objective: model.report().loss.clone(),
            stop: model.report().stop_reason.map_or(String::new(), |r| {
                let rep = model.report();
                let g = rep.gradient_norm.unwrap_or(f64::NAN);
                if rep.solver == "dcd" {
                    format!("{r} after {} epochs (spread {g:.1e})", rep.iterations)
                } else {
                    format!(
                        "{r} after {} iterations, largest gradient component {g:.1e}",
                        rep.iterations
                    )
                }
            }),
            ..Curves::default()
        },
        fit_seconds,
        confusion,
        knn: None,
        saved: Some(SavedModel::Linear { model, classes: names.clone() }),
        test_scores,
    })
}

fn run_net(
    n: &NetConfig,
    prep: &super::steps::Prepared,
    search: Refine,
    names: &imgclass_core::ClassNames,
    seed: u64,
    rep: &str,
    progress: &mut Progress,
) -> anyhow::Result<ClassifierResult> {
    let (train, test) = (&prep.train, &prep.test);
    let on_pixels = train.pixels().is_some();
    let axes = [
        Axis::fixed("hidden", n.hidden.iter().map(|&h| h as f64).collect()),
        Axis::log("lr", n.learning_rates.clone()),
        Axis::log("L2", n.regularizations.clone()),
    ];
    let label = format!("{rep} net");
    let grid = choose(
        &axes,
        |v| net_params(n, v, n.search_epochs, on_pixels, seed),
        train,
        n.validation_fraction.max(0.02),
        seed,
        |e| matches!(e, NetError::Diverged { .. }),
        on_point(progress, label.clone(), &axes, net_cells(n)),
        search,
    )
    .with_context(|| held_out(&label, train.len()))?;
    let chosen_values = match &grid {
        Some(g) => {
            let best = g.best.with_context(|| format!("every {label} fit diverged"))?;
            g.points[best].values.clone()
        }
        None => vec![n.hidden[0] as f64, n.learning_rates[0], n.regularizations[0]],
    };
    let t = Instant::now();
    let model = net_params(n, &chosen_values, n.epochs, on_pixels, seed)
        .validation(n.validation_fraction)
        .keep_best(n.keep_best_epoch)
        .fit(train)
        .with_context(|| format!("training {label} on all training rows"))?;
    let fit_seconds = t.elapsed().as_secs_f64();
    let test_scores = model.scores(test)?;
    let (test_accuracy, confusion) = score(&test_scores, test)?;
    progress.step(&format!("{label} trained: test {test_accuracy:.4}"));
    let r = model.report();
    let (val, validation) = match &grid {
        Some(g) => {
            let v = g.best.and_then(|b| g.points[b].point.accuracy);
            (v, format!("hold-out {:.4} ({} epochs)", v.unwrap_or(f64::NAN), n.search_epochs))
        }
        None => {
            let v = r.val_accuracy.get(r.best_epoch).copied();
            (v, v.map_or("-".into(), |v| format!("held-out share {v:.4}")))
        }
    };
    Ok(ClassifierResult {
        classifier: ClassifierKind::Net,
        model: format!("net ({} hidden)", chosen_values[0] as usize),
        chosen: format!(
            "lr {}, L2 {}, epoch {} of {}",
            sci(chosen_values[1]),
            sci(chosen_values[2]),
            r.best_epoch + 1,
            r.epochs
        ),
        validation,
        val_accuracy: val,
        test_accuracy,
        axes: axes.iter().map(|a| a.name.clone()).collect(),
        bound_hit: grid.as_ref().map_or_else(Vec::new, |g| g.bound_hit.clone()),
        search: grid.map_or_else(Vec::new, |g| g.points),
        curves: Curves {
            objective: r.loss.clone(),
            train_accuracy: r.train_accuracy.clone(),
            val_accuracy: r.val_accuracy.clone(),
            stop: format!("kept epoch {} of {}", r.best_epoch + 1, r.epochs),
        },
        fit_seconds,
        confusion,
        knn: None,
        saved: Some(SavedModel::Net { model, classes: names.clone() }),
        test_scores,
    })
}

fn run_knn(
    prep: &super::steps::Prepared,
    shown: (&Subset, &Subset),
    knn: &KnnConfig,
    seed: u64,
    progress: &mut Progress,
) -> anyhow::Result<ClassifierResult> {
    let kcfg = knn_config(knn);
    let k = super::knn::run(prep, shown, &kcfg, seed, progress)?;
    let metric = k.best_metric;
    let model = imgclass_knn::Knn::new(k.best_k).metric(metric).fit(&prep.train)?;
    Ok(ClassifierResult {
        classifier: ClassifierKind::Knn,
        model: "k-NN".into(),
        chosen: format!("{}, k = {}", crate::knn_cv::metric_label(metric), k.best_k),
        validation: format!("{}-fold CV {:.4} ± {:.4}", k.folds, k.cv_mean, k.cv_std),
        val_accuracy: Some(k.cv_mean),
        test_accuracy: k.test_accuracy,
        axes: Vec::new(),
        search: Vec::new(),
        bound_hit: Vec::new(),
        curves: Curves::default(),
        fit_seconds: k.test_seconds,
        confusion: k.confusion.clone(),
        saved: Some(SavedModel::Knn { model, index: None }),
        knn: Some(k),
        test_scores: Vec::new(),
    })
}

/// The file name (without extension) a representation's classifier is saved as.
pub fn model_file(representation: &str, kind: ClassifierKind) -> String {
    let tag = super::report_reps::file_tag;
    format!("model-{}-{}", tag(representation), tag(kind.label()))
}

/// An `[[ensembles]]` entry: its members' test scores (already computed by the
/// representations in `reps`) summed with their weights, in member order as
/// [`imgclass_model::Ensemble`] sums them, and scored on `test`. Nothing is trained.
pub fn run_ensemble(
    e: &EnsembleConfig,
    reps: &[RepresentationResult],
    test: &Subset,
) -> anyhow::Result<RepresentationResult> {
    let n_classes = test.n_classes();
    let mut sum = vec![0f32; test.len() * n_classes];
    let mut members = Vec::with_capacity(e.members.len());
    let mut used: Vec<&RepresentationResult> = Vec::new();
    let mut described = Vec::with_capacity(e.members.len());
    for m in &e.members {
        let (rep, c) = reps
            .iter()
            .find(|r| r.name == m.representation)
            .and_then(|r| {
                r.classifiers.iter().find(|c| c.classifier == m.classifier).map(|c| (r, c))
            })
            .with_context(|| {
                format!("{}: no {} on {} ran", e.name, m.classifier.label(), m.representation)
            })?;
        let model =
            c.saved.clone().with_context(|| format!("{}: {} kept no model", e.name, c.model))?;
        anyhow::ensure!(
            c.test_scores.len() == sum.len(),
            "{}: {} on {} has {} test scores, expected {}",
            e.name,
            c.model,
            rep.name,
            c.test_scores.len(),
            sum.len()
        );
        let w = m.weight as f32;
        for (a, b) in sum.iter_mut().zip(&c.test_scores) {
            *a += w * b;
        }
        let model = if rep.steps.is_empty() {
            model
        } else {
            SavedModel::Pipeline { steps: rep.steps.clone(), model: Box::new(model) }
        };
        members.push(imgclass_model::Member {
            model,
            weight: w,
            file: format!("{}.json", model_file(&rep.name, m.classifier)),
        });
        described.push(format!("{} x {} {}", m.weight, rep.name, m.classifier.label()));
        if !used.iter().any(|u| u.name == rep.name) {
            used.push(rep);
        }
    }
    let (test_accuracy, confusion) = score(&sum, test)?;
    let ensemble = imgclass_model::Ensemble::new(members)?;
    Ok(RepresentationResult {
        name: e.name.clone(),
        steps_label: format!(
            "the members' own: {}",
            used.iter().map(|r| r.steps_label.as_str()).collect::<Vec<_>>().join("; ")
        ),
        dim: used.iter().map(|r| r.dim).sum(),
        steps_seconds: used.iter().map(|r| r.steps_seconds).sum(),
        classifiers: vec![ClassifierResult {
            classifier: ClassifierKind::Ensemble,
            model: format!("ensemble of {}", e.members.len()),
            chosen: described.join(" + "),
            validation: "- (weights from the config)".into(),
            val_accuracy: None,
            test_accuracy,
            axes: Vec::new(),
            search: Vec::new(),
            bound_hit: Vec::new(),
            curves: Curves::default(),
            fit_seconds: 0.0,
            confusion,
            knn: None,
            saved: Some(SavedModel::Ensemble(ensemble)),
            test_scores: sum,
        }],
        steps: Vec::new(),
    })
}
