//! A phase's feature steps (`[knn] steps`, `[linear] steps`): fitted once on the phase's
//! training images, applied to its training and test rows; the phase then runs on the
//! features, and its saved models are pipelines (the fitted steps, then the classifier), so
//! `cargo xtask predict` applies the same steps to image files.

use std::time::Instant;

use anyhow::Context;
use imgclass_core::{RowShape, Subset};
use imgclass_features::{Step, StepSpec, apply, check_steps, fit_steps};

/// A phase's rows after its steps.
pub struct Prepared {
    /// Training rows the classifier sees.
    pub train: Subset,
    /// Test rows the classifier sees (same order as the test images).
    pub test: Subset,
    /// The fitted steps (empty: raw pixels).
    pub steps: Vec<Step>,
    /// How the rows were made: `raw`, or the steps joined by ` -> `.
    pub representation: String,
    /// Seconds to fit and apply the steps.
    pub seconds: f64,
}

/// Checks a phase's `specs` against its `input` rows without fitting anything, so a
/// mistake in any phase's steps stops the run before the first phase starts.
pub fn check(specs: &[StepSpec], input: RowShape, phase: &str) -> anyhow::Result<()> {
    check_steps(specs, input).with_context(|| format!("the [{phase}] feature steps"))?;
    Ok(())
}

/// Fits `specs` on `train` (seeded) and applies them to `train` and `test`.
pub fn prepare(
    specs: &[StepSpec],
    train: &Subset,
    test: &Subset,
    seed: u64,
    phase: &str,
) -> anyhow::Result<Prepared> {
    let t = Instant::now();
    if specs.is_empty() {
        return Ok(Prepared {
            train: train.clone(),
            test: test.clone(),
            steps: Vec::new(),
            representation: representation(specs),
            seconds: 0.0,
        });
    }
    let (steps, ftrain) = fit_steps(specs, train, seed)
        .with_context(|| format!("fitting the [{phase}] feature steps"))?;
    let ftest =
        apply(&steps, test).with_context(|| format!("applying the [{phase}] feature steps"))?;
    let representation = representation(specs);
    tracing::debug!(phase, %representation, dim = ftrain.dim(), "feature steps fitted");
    Ok(Prepared {
        train: ftrain,
        test: ftest,
        steps,
        representation,
        seconds: t.elapsed().as_secs_f64(),
    })
}

/// `raw` without steps, else the steps' labels joined by ` -> `.
pub fn representation(specs: &[StepSpec]) -> String {
    if specs.is_empty() {
        return "raw".into();
    }
    specs.iter().map(ToString::to_string).collect::<Vec<_>>().join(" -> ")
}
