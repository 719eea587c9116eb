//! The linear phase: for each loss (multiclass SVM, softmax), minibatch SGD over the grid of
//! learning rate x L2 strength, each point scored on a stratified, seeded validation split of
//! the training images; the best point is retrained on all training images and scored once
//! on the test set. A run that diverges counts as a failed grid point (NaN), not an error.

use std::time::Instant;

use anyhow::Context;
use imgclass_core::{Fit, Predict, Subset};
use imgclass_eval::{
    Axis, ClassReport, ConfusionMatrix, Origin, Refine, accuracy, refining_grid_search,
    stratified_split,
};
use imgclass_linear::{Linear, LinearError, LinearModel, Loss, Reg, Sgd, Stop};
use serde::Serialize;

use super::config::{LinearConfig, LossGrid};
use super::progress::Progress;

/// One grid point.
#[derive(Debug, Clone, Serialize)]
pub struct GridPoint {
    /// Learning rate.
    pub learning_rate: f64,
    /// L2 strength.
    pub regularization: f64,
    /// Validation accuracy (`null` when training diverged).
    pub val_accuracy: Option<f64>,
    /// Why it has no accuracy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
    /// Training seconds.
    pub train_seconds: f64,
    /// Whether the cell was in the config's grid, an extension past its edge, or a refinement
    /// next to the best.
    pub origin: Origin,
}

/// One loss's results (serialised into results.json).
#[derive(Debug, Serialize)]
pub struct LossResult {
    /// `svm` or `softmax`.
    pub loss: String,
    /// Every grid point, learning rate major.
    pub grid: Vec<GridPoint>,
    /// Index of the chosen point in `grid`.
    pub best: usize,
    /// Axes whose chosen value is still on the grid's edge because the search's bound was
    /// reached (empty: the choice is inside the searched range).
    pub bound_hit: Vec<String>,
    /// Test accuracy of the chosen point retrained on all training images.
    pub test_accuracy: f64,
    /// Test confusion matrix.
    pub confusion: ConfusionMatrix,
    /// Per-class precision, recall, F1 on the test set.
    pub per_class: Vec<ClassReport>,
    /// Loss per SGD iteration of the retrained model (data + regularisation).
    pub loss_curve: Vec<f32>,
    /// Seconds of the retraining.
    pub retrain_seconds: f64,
    /// The retrained model (templates are drawn from it).
    #[serde(skip)]
    pub model: LinearModel,
    /// The first misclassified test images: (pixels, true label, predicted label).
    #[serde(skip)]
    pub misclassified: Vec<super::report::Mistake>,
}

/// What the linear phase found.
#[derive(Debug, Serialize)]
pub struct LinearResult {
    /// Training rows of the grid runs.
    pub n_fit: usize,
    /// Validation rows.
    pub n_validation: usize,
    /// SGD iterations per run.
    pub iterations: usize,
    /// Minibatch size.
    pub batch_size: usize,
    /// One entry per loss.
    pub losses: Vec<LossResult>,
    /// What the models saw: `raw` pixels or the feature steps' labels.
    pub representation: String,
    /// The fitted feature steps (saved with the models as pipelines).
    #[serde(skip)]
    pub steps: Vec<imgclass_features::Step>,
    /// Seconds to fit and apply the steps.
    pub steps_seconds: f64,
}

/// Number of progress steps of [`run`].
/// (Extensions and refinements of the search add steps as they happen.)
pub fn steps(cfg: &LinearConfig) -> u64 {
    grids(cfg).map(|(_, _, g)| g.learning_rates.len() * g.regularizations.len() + 1).sum::<usize>()
        as u64
}

/// The enabled losses with their names and grids, SVM first.
fn grids(cfg: &LinearConfig) -> impl Iterator<Item = (&'static str, Loss, &LossGrid)> {
    [("svm", Loss::Svm { margin: 1.0 }, &cfg.svm), ("softmax", Loss::Softmax, &cfg.softmax)]
        .into_iter()
        .filter(|(_, _, g)| g.enabled)
}

fn params(cfg: &LinearConfig, loss: Loss, lr: f64, reg: f64, seed: u64) -> Linear {
    Linear::new(loss).regularization(Reg::L2(reg)).sgd(Sgd {
        batch_size: cfg.batch_size,
        learning_rate: lr,
        decay: cfg.decay,
        momentum: cfg.momentum,
        stop: Stop::Iterations(cfg.iterations),
        seed,
    })
}

/// Runs the phase.
/// The error when every run of a loss's grid diverged: names the config keys of that loss's
/// grid, and both causes (an SGD step on `R = λ‖W‖²` multiplies `W` by `1 − 2ηλ`, which
/// diverges once `ηλ > 1` whatever the data).
fn all_diverged(name: &str, grid: &LossGrid) -> String {
    format!(
        "every {name} run diverged (learning rates {:?} x regularizations {:?}): lower \
         linear.{name}.learning_rates, or linear.{name}.regularizations when learning rate x \
         regularization is large",
        grid.learning_rates, grid.regularizations
    )
}

pub fn run(
    prep: &super::steps::Prepared,
    shown_test: &Subset,
    cfg: &LinearConfig,
    search: Refine,
    seed: u64,
    progress: &mut Progress,
) -> anyhow::Result<LinearResult> {
    let (train, test) = (&prep.train, &prep.test);
    let split = stratified_split(&train.labels(), cfg.validation_fraction, seed)?;
    let (fit_set, val_set) = split.apply(train)?;
    let sgd_seed = seed.wrapping_add(1);
    let mut losses = Vec::new();
    for (name, loss, lgrid) in grids(cfg) {
        let axes = [
            Axis::log("learning rate", lgrid.learning_rates.clone()),
            Axis::log("L2 strength", lgrid.regularizations.clone()),
        ];
        let n_grid = (lgrid.learning_rates.len() * lgrid.regularizations.len()) as u64;
        let result = refining_grid_search(
            &axes,
            |v| params(cfg, loss, v[0], v[1], sgd_seed),
            &fit_set,
            &val_set,
            |e| matches!(e, LinearError::Diverged { .. }),
            |p, i| {
                let (lr, reg) = (p.values[0], p.values[1]);
                let acc = p.point.accuracy;
                tracing::debug!(loss = name, lr, reg, val_accuracy = ?acc, origin = ?p.origin, "grid point");
                if i as u64 >= n_grid {
                    progress.grow(1);
                }
                progress.step(&format!(
                    "{name} lr={} reg={}{}: {}",
                    super::report::sci(lr),
                    super::report::sci(reg),
                    match p.origin {
                        Origin::Grid => "",
                        Origin::Extended => " (extended)",
                        Origin::Refined => " (refined)",
                    },
                    acc.map_or("diverged".into(), |a| format!("{a:.3}"))
                ));
            },
            search,
        )?;
        let grid: Vec<GridPoint> = result
            .points
            .iter()
            .map(|p| GridPoint {
                learning_rate: p.values[0],
                regularization: p.values[1],
                val_accuracy: p.point.accuracy,
                failure: p.point.failure.clone(),
                train_seconds: p.point.fit_seconds + p.point.predict_seconds,
                origin: p.origin,
            })
            .collect();
        for b in &result.bound_hit {
            tracing::warn!(loss = name, "{b}");
        }
        // best: highest validation accuracy, ties to the first in grid order
        let best = result.best;
        let best = best.with_context(|| all_diverged(name, lgrid))?;
        let (lr, reg) = (grid[best].learning_rate, grid[best].regularization);
        let t = Instant::now();
        let model = params(cfg, loss, lr, reg, sgd_seed)
            .fit(train)
            .with_context(|| format!("retraining {name} on all training images"))?;
        let retrain_seconds = t.elapsed().as_secs_f64();
        let truth = test.labels();
        let pred = model.predict(test)?;
        let test_accuracy = accuracy(&truth, &pred)?;
        let confusion = ConfusionMatrix::new(&truth, &pred, test.n_classes())?;
        progress.step(&format!("{name} retrained: test {test_accuracy:.3}"));
        losses.push(LossResult {
            loss: name.into(),
            best,
            test_accuracy,
            per_class: confusion.class_reports(),
            confusion,
            loss_curve: model.report().loss.clone(),
            retrain_seconds,
            grid,
            bound_hit: result.bound_hit,
            model,
            misclassified: super::report::mistakes(shown_test, &truth, &pred),
        });
    }
    Ok(LinearResult {
        n_fit: fit_set.len(),
        n_validation: val_set.len(),
        iterations: cfg.iterations,
        batch_size: cfg.batch_size,
        losses,
        representation: prep.representation.clone(),
        steps: prep.steps.clone(),
        steps_seconds: prep.seconds,
    })
}
