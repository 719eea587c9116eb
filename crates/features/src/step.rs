//! [`StepSpec`] (a step as a config names it: kind and parameters) and [`Step`] (the step
//! fitted on training rows), the one list of every feature step. Adding an extractor is a
//! module of its own plus one variant here in each enum and one arm in each `match` below
//! (see "Adding a feature extractor" in docs/ARCHITECTURE.md).

use imgclass_core::{Dataset, RowShape, Subset};

use crate::{FeatureError, Pca, Standardizer};

/// A feature step as a config writes it (`{ kind = "pca", components = 64 }`): what to fit.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum StepSpec {
    /// Per-feature standardisation ([`Standardizer`]).
    Standardize,
    /// Projection on the leading principal components ([`Pca`], seeded randomised subspace
    /// iteration), optionally whitened (each component divided by its standard deviation).
    Pca {
        /// Number of components kept.
        components: usize,
        /// Divide each component by the square root of its variance.
        #[serde(default)]
        whiten: bool,
    },
}

impl StepSpec {
    /// Fits the step on `train` (`seed` for the steps that draw random numbers).
    pub fn fit(&self, train: &Subset, seed: u64) -> Result<Step, FeatureError> {
        Ok(match *self {
            Self::Standardize => Step::Standardize(Standardizer::fit(train)?),
            Self::Pca { components, whiten } => {
                let pca = Pca::fit(train, components, seed)?;
                Step::Pca { scale: whiten_scale(&pca, whiten), pca, whiten }
            }
        })
    }
}

impl std::fmt::Display for StepSpec {
    /// The spec as a short label: `standardize`, `pca(64)`, `pca(64, whiten)`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Standardize => f.write_str("standardize"),
            Self::Pca { components, whiten: false } => write!(f, "pca({components})"),
            Self::Pca { components, whiten: true } => write!(f, "pca({components}, whiten)"),
        }
    }
}

/// One saved array of a fitted step: name, shape (row-major) and f32 values.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    /// Its name within the step (`mean`, `components`, ...).
    pub name: &'static str,
    /// Its shape.
    pub shape: Vec<usize>,
    /// Its values, row-major.
    pub data: Vec<f32>,
}

/// A fitted feature step: maps rows of its input shape to f32 features.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// Per-feature standardisation.
    Standardize(Standardizer),
    /// PCA projection.
    Pca {
        /// The projection.
        pca: Pca,
        /// Whether components are whitened.
        whiten: bool,
        /// What each projected component is multiplied by (1, or `1 / sqrt(variance)`).
        scale: Vec<f32>,
    },
}

/// The relative floor of whitened variances: a component whose variance is below this
/// fraction of the largest is divided by the floor's square root instead (no blow-up).
pub const WHITEN_FLOOR: f32 = 1e-6;

fn whiten_scale(pca: &Pca, whiten: bool) -> Vec<f32> {
    let top = pca.variances().first().copied().unwrap_or(0.0);
    pca.variances()
        .iter()
        .map(|&v| {
            if whiten { 1.0 / v.max(top * WHITEN_FLOOR).max(f32::MIN_POSITIVE).sqrt() } else { 1.0 }
        })
        .collect()
}

impl Step {
    /// The spec this step was fitted from.
    pub fn spec(&self) -> StepSpec {
        match self {
            Self::Standardize(_) => StepSpec::Standardize,
            Self::Pca { pca, whiten, .. } => {
                StepSpec::Pca { components: pca.n_components(), whiten: *whiten }
            }
        }
    }

    /// What the step takes.
    pub fn input(&self) -> RowShape {
        match self {
            Self::Standardize(s) => s.input(),
            Self::Pca { pca, .. } => pca.input(),
        }
    }

    /// Features per output row.
    pub fn output_dim(&self) -> usize {
        match self {
            Self::Standardize(s) => s.mean().len(),
            Self::Pca { pca, .. } => pca.n_components(),
        }
    }

    /// Maps every row of `x` (of the fitted input shape) to features; labels and class
    /// names are kept, the description says which step made them.
    pub fn transform(&self, x: &Subset) -> Result<Dataset, FeatureError> {
        let out = match self {
            Self::Standardize(s) => s.transform(x)?,
            Self::Pca { pca, scale, .. } => {
                pca.input().expect(x.shape())?;
                let mut y = pca.project(x);
                for row in y.chunks_exact_mut(scale.len().max(1)) {
                    row.iter_mut().zip(scale).for_each(|(v, s)| *v *= s);
                }
                x.with_features(y, pca.n_components())?
            }
        };
        let made = match x.dataset().description() {
            Some(d) => format!("{} of {d}", self.spec()),
            None => format!("{} of {}", self.spec(), x.shape()),
        };
        Ok(out.with_description(made))
    }

    /// The step's arrays, for saving (see [`Step::from_tensors`]).
    pub fn tensors(&self) -> Vec<Tensor> {
        let d = self.input().dim();
        match self {
            Self::Standardize(s) => vec![
                Tensor { name: "mean", shape: vec![d], data: s.mean().to_vec() },
                Tensor { name: "scale", shape: vec![d], data: s.scale().to_vec() },
            ],
            Self::Pca { pca, .. } => {
                let p = pca.n_components();
                vec![
                    Tensor { name: "mean", shape: vec![d], data: pca.mean().to_vec() },
                    Tensor {
                        name: "components",
                        shape: vec![p, d],
                        data: pca.components().to_vec(),
                    },
                    Tensor { name: "variances", shape: vec![p], data: pca.variances().to_vec() },
                ]
            }
        }
    }

    /// The names and shapes of the arrays a step of `spec` on `input` saves, so a loader
    /// can check a file (and bound its size) before decoding it.
    pub fn tensor_shapes(spec: &StepSpec, input: RowShape) -> Vec<(&'static str, Vec<usize>)> {
        let d = input.dim();
        match *spec {
            StepSpec::Standardize => vec![("mean", vec![d]), ("scale", vec![d])],
            StepSpec::Pca { components: p, .. } => {
                vec![("mean", vec![d]), ("components", vec![p, d]), ("variances", vec![p])]
            }
        }
    }

    /// Rebuilds a fitted step from its spec, its input shape and its arrays (`get(name)`
    /// returns the array of [`Step::tensor_shapes`] of that name, already checked to have
    /// that shape). Every value is checked, so a rebuilt step cannot panic later.
    pub fn from_tensors(
        spec: &StepSpec,
        input: RowShape,
        mut get: impl FnMut(&'static str) -> Result<Vec<f32>, FeatureError>,
    ) -> Result<Self, FeatureError> {
        Ok(match *spec {
            StepSpec::Standardize => {
                Self::Standardize(Standardizer::from_parts(input, get("mean")?, get("scale")?)?)
            }
            StepSpec::Pca { whiten, .. } => {
                let pca = Pca::from_parts(get("mean")?, get("components")?, get("variances")?)?
                    .with_input(input)?;
                Self::Pca { scale: whiten_scale(&pca, whiten), pca, whiten }
            }
        })
    }
}
