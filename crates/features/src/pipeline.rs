//! [`Pipeline`]: feature steps then a classifier, itself [`Fit`]; fitted, a
//! [`PipelineModel`] is [`Predict`] on the rows the first step takes (raw images, say), so a
//! cross-validation or a grid search over a pipeline refits the steps on every training fold.
//!
//! Generic over the classifier (like `imgclass-eval`, this crate knows no concrete one).
//!
//! ```
//! use imgclass_core::{ClassNames, Dataset, Fit, ImageShape, Label, Predict, Subset};
//! use imgclass_features::{FeatureError, Pipeline, StepSpec};
//!
//! /// Predicts class 1 when the first feature is positive.
//! #[derive(Clone)]
//! struct Sign;
//! impl Fit for Sign {
//!     type Model = Sign;
//!     type Error = FeatureError;
//!     fn fit(&self, _: &Subset) -> Result<Sign, FeatureError> { Ok(Sign) }
//! }
//! impl Predict for Sign {
//!     type Error = FeatureError;
//!     fn n_classes(&self) -> usize { 2 }
//!     fn predict(&self, x: &Subset) -> Result<Vec<Label>, FeatureError> {
//!         let rows = x.features().expect("steps make features");
//!         Ok(rows.iter().map(|r| Label::from(r[0] > 0.0)).collect())
//!     }
//! }
//!
//! // pixels 10, 20, 30, 40: standardised, the two above the mean are positive
//! let ds = Dataset::new(vec![10, 20, 30, 40], vec![0, 0, 1, 1], ImageShape::new(1, 1, 1),
//!     ClassNames::new(["low", "high"]))?;
//! let model = Pipeline::new(vec![StepSpec::Standardize], Sign).fit(&ds.all())?;
//! assert_eq!(model.predict(&ds.all())?, vec![0, 0, 1, 1]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use imgclass_core::rng::SplitMix64;
use imgclass_core::{Fit, Label, Predict, RowShape, Subset};

use crate::{FeatureError, PipelineError, Step, StepSpec};

/// Feature steps then a classifier: `Pipeline::new(vec![StepSpec::Standardize], Knn::new(5))`.
#[derive(Debug, Clone, PartialEq)]
pub struct Pipeline<P> {
    steps: Vec<StepSpec>,
    classifier: P,
    seed: u64,
}

impl<P> Pipeline<P> {
    /// `steps` applied in order, then `classifier` on their output. Seed 0.
    pub fn new(steps: Vec<StepSpec>, classifier: P) -> Self {
        Self { steps, classifier, seed: 0 }
    }

    /// The seed of the steps that draw random numbers (step `i` gets its own stream).
    pub fn seed(self, seed: u64) -> Self {
        Self { seed, ..self }
    }

    /// The steps.
    pub fn steps(&self) -> &[StepSpec] {
        &self.steps
    }

    /// The classifier's parameters.
    pub fn classifier(&self) -> &P {
        &self.classifier
    }
}

impl<P> Fit for Pipeline<P>
where
    P: Fit,
    P::Error: Send + Sync + 'static,
{
    type Model = PipelineModel<P::Model>;
    type Error = PipelineError;

    /// Fits each step on the output of the previous ones, then the classifier.
    fn fit(&self, train: &Subset) -> Result<Self::Model, PipelineError> {
        let (steps, cur) = fit_steps(&self.steps, train, self.seed)?;
        let model =
            self.classifier.fit(&cur).map_err(|e| PipelineError::Classifier(Box::new(e)))?;
        Ok(PipelineModel { steps, model })
    }
}

/// The shape of what `specs` make, in order, from rows of `input`: every step's parameters
/// checked against its input without fitting anything ([`StepSpec::check`]), so a mistake
/// in any step is found before the first one runs. [`fit_steps`] does this first.
pub fn check_steps(specs: &[StepSpec], input: RowShape) -> Result<RowShape, PipelineError> {
    let mut cur = input;
    for (index, spec) in specs.iter().enumerate() {
        cur = spec.check(cur).map_err(|source| PipelineError::Step {
            index,
            step: spec.to_string(),
            source,
        })?;
    }
    Ok(cur)
}

/// Fits `specs` in order on `train` (each on the previous one's output; step `i` seeded by
/// fork `i` of `seed`, as [`Pipeline::fit`] does) and returns the fitted steps with the
/// transformed training rows. Every step is checked against its input first
/// ([`check_steps`]).
pub fn fit_steps(
    specs: &[StepSpec],
    train: &Subset,
    seed: u64,
) -> Result<(Vec<Step>, Subset), PipelineError> {
    check_steps(specs, train.shape())?;
    let root = SplitMix64::new(seed);
    let mut steps = Vec::with_capacity(specs.len());
    let mut cur = train.clone();
    for (index, spec) in specs.iter().enumerate() {
        let wrap = |source| PipelineError::Step { index, step: spec.to_string(), source };
        let t = std::time::Instant::now();
        let step = spec.fit(&cur, root.fork(index as u64).next_u64()).map_err(wrap)?;
        cur = step.transform(&cur).map_err(wrap)?.all();
        let secs = t.elapsed().as_secs_f64();
        tracing::debug!(index, step = %spec, dim = cur.dim(), secs, "feature step fitted");
        steps.push(step);
    }
    Ok((steps, cur))
}

/// Fitted steps and a fitted classifier; [`Predict`] on rows the first step takes.
#[derive(Debug, Clone)]
pub struct PipelineModel<M> {
    steps: Vec<Step>,
    model: M,
}

impl<M> PipelineModel<M> {
    /// A pipeline from fitted parts (a loaded model): each step must take what the previous
    /// one makes ([`PipelineError::Chain`]).
    pub fn new(steps: Vec<Step>, model: M) -> Result<Self, PipelineError> {
        for (index, pair) in steps.windows(2).enumerate() {
            let made = RowShape::Features(pair[0].output_dim());
            if pair[1].input() != made {
                return Err(PipelineError::Chain {
                    index: index + 1,
                    expected: pair[1].input(),
                    found: made,
                });
            }
        }
        Ok(Self { steps, model })
    }

    /// The fitted steps.
    pub fn steps(&self) -> &[Step] {
        &self.steps
    }

    /// The fitted classifier.
    pub fn model(&self) -> &M {
        &self.model
    }

    /// What the pipeline takes (the first step's input), or `None` without steps.
    pub fn input(&self) -> Option<RowShape> {
        self.steps.first().map(Step::input)
    }

    /// The rows the classifier sees: `x` through every step.
    pub fn transform(&self, x: &Subset) -> Result<Subset, PipelineError> {
        apply(&self.steps, x)
    }
}

/// `x` through `steps` in order (a clone of `x` when there are none).
pub fn apply(steps: &[Step], x: &Subset) -> Result<Subset, PipelineError> {
    let mut cur = x.clone();
    for (index, step) in steps.iter().enumerate() {
        cur = step
            .transform(&cur)
            .map_err(|source: FeatureError| PipelineError::Step {
                index,
                step: step.spec().to_string(),
                source,
            })?
            .all();
    }
    Ok(cur)
}

impl<M> Predict for PipelineModel<M>
where
    M: Predict,
    M::Error: Send + Sync + 'static,
{
    type Error = PipelineError;

    fn n_classes(&self) -> usize {
        self.model.n_classes()
    }

    fn predict(&self, x: &Subset) -> Result<Vec<Label>, PipelineError> {
        let f = self.transform(x)?;
        self.model.predict(&f).map_err(|e| PipelineError::Classifier(Box::new(e)))
    }
}
