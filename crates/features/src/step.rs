//! [`StepSpec`] (a step as a config names it: kind and parameters) and [`Step`] (the step
//! fitted on training rows), the one list of every feature step. Adding an extractor is a
//! module of its own plus one variant here in each enum and one arm in each `match` below
//! (see "Adding a feature extractor" in docs/ARCHITECTURE.md).

use imgclass_core::{Dataset, RowShape, Subset};

use crate::{
    Chi2Map, FeatureError, Hog, HueHistogram, KmeansFeatures, KmeansParams, Pca, Standardizer,
};

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
    /// Histograms of oriented gradients of the grey image ([`Hog`], CS231n's definition).
    Hog {
        /// Cell side in pixels (CS231n: 8).
        #[serde(default = "default_cell")]
        cell: usize,
        /// Orientation bins over 180° (CS231n: 9).
        #[serde(default = "default_orientations")]
        orientations: usize,
    },
    /// The histogram of the HSV hue of every pixel ([`HueHistogram`], CS231n's definition).
    HueHistogram {
        /// Bins (CS231n: 10).
        #[serde(default = "default_bins")]
        bins: usize,
    },
    /// The explicit feature map of the additive χ² kernel ([`Chi2Map`], scikit-learn's
    /// `AdditiveChi2Sampler`): `{ kind = "chi2_map", steps = 2 }`, for non-negative features
    /// such as histograms; `d · (2 steps − 1)` features out.
    Chi2Map {
        /// Samples of the kernel's spectrum (scikit-learn's `sample_steps`; default 2).
        #[serde(default = "default_chi2_steps")]
        steps: usize,
        /// Their spacing (`sample_interval`); by default 0.8, 0.5, 0.4 for 1, 2, 3 steps.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        interval: Option<f64>,
    },
    /// Coates, Lee & Ng's single-layer k-means features ([`KmeansFeatures`]): normalised,
    /// ZCA-whitened patches, a k-means dictionary, triangle encoding, four-quadrant sum
    /// pooling: `{ kind = "kmeans", receptive_field = 6, stride = 1, centroids = 1600,
    /// patches = 400000, iterations = 10, whitening_eps = 0.1, normalization_eps = 10.0,
    /// init = "gaussian", empty_cluster = "zero", flip = false, products = "f32" }` (every
    /// parameter optional, these are the defaults; `products = "i8"` for 8-bit distance
    /// products on AVX-512 VNNI).
    Kmeans(KmeansParams),
    /// Several steps fitted on the same input, their features side by side (scikit-learn's
    /// `FeatureUnion`): `{ kind = "union", of = [{ kind = "hog" }, { kind = "hue_histogram" }] }`.
    Union {
        /// The steps, in output order.
        of: Vec<StepSpec>,
    },
}

fn default_cell() -> usize {
    8
}
fn default_orientations() -> usize {
    9
}
fn default_bins() -> usize {
    10
}
fn default_chi2_steps() -> usize {
    2
}

impl StepSpec {
    /// The shape of what the step makes from rows of `input`, its parameters checked
    /// against that shape without fitting anything: a mistake in a late step of a config
    /// is found before the early steps run (k-means features take a minute). Every error
    /// [`StepSpec::fit`] gives for a parameter or a shape, this gives too.
    ///
    /// ```
    /// use imgclass_core::{ImageShape, RowShape};
    /// use imgclass_features::StepSpec;
    ///
    /// let cifar = RowShape::Image(ImageShape::new(3, 32, 32));
    /// // CS231n's HOG: 4 x 4 cells of 8 x 8 pixels, 9 orientations
    /// let hog = StepSpec::Hog { cell: 8, orientations: 9 };
    /// assert_eq!(hog.check(cifar)?, RowShape::Features(144));
    /// // more components than the 144 features is refused before any fit
    /// let pca = StepSpec::Pca { components: 200, whiten: false };
    /// assert!(pca.check(RowShape::Features(144)).is_err());
    /// # Ok::<(), imgclass_features::FeatureError>(())
    /// ```
    pub fn check(&self, input: RowShape) -> Result<RowShape, FeatureError> {
        let dim = match *self {
            Self::Standardize => input.dim(),
            Self::Pca { components, .. } => {
                if components == 0 || components > input.dim() {
                    return Err(FeatureError::InvalidParam {
                        name: "pca",
                        reason: format!("{components} components for {} features", input.dim()),
                    });
                }
                components
            }
            Self::Hog { cell, orientations } => {
                let hog = Hog::new(cell, orientations);
                hog.output_dim(hog.check(input)?)
            }
            Self::HueHistogram { bins } => {
                let hue = HueHistogram::new(bins);
                hue.check(input)?;
                hue.output_dim()
            }
            Self::Chi2Map { steps, interval } => {
                let map = Chi2Map::new(steps, interval)?;
                map.check(input)?;
                map.output_dim(input.dim())
            }
            Self::Kmeans(ref p) => {
                p.check(input)?;
                p.output_dim()
            }
            Self::Union { ref of } => {
                if of.is_empty() {
                    return Err(FeatureError::InvalidParam {
                        name: "union",
                        reason: "needs at least one step".into(),
                    });
                }
                let mut dim = 0;
                for spec in of {
                    dim += spec.check(input)?.dim();
                }
                dim
            }
        };
        Ok(RowShape::Features(dim))
    }

    /// Fits the step on `train` (`seed` for the steps that draw random numbers).
    pub fn fit(&self, train: &Subset, seed: u64) -> Result<Step, FeatureError> {
        Ok(match *self {
            Self::Standardize => Step::Standardize(Standardizer::fit(train)?),
            Self::Pca { components, whiten } => {
                let pca = Pca::fit(train, components, seed)?;
                Step::Pca { scale: whiten_scale(&pca, whiten), pca, whiten }
            }
            Self::Hog { cell, orientations } => {
                let hog = Hog::new(cell, orientations);
                hog.check(train.shape())?;
                Step::Hog { hog, input: train.shape() }
            }
            Self::HueHistogram { bins } => {
                let hue = HueHistogram::new(bins);
                hue.check(train.shape())?;
                Step::HueHistogram { hue, input: train.shape() }
            }
            Self::Chi2Map { steps, interval } => {
                let map = Chi2Map::new(steps, interval)?;
                map.check(train.shape())?;
                Step::Chi2Map { map, input: train.shape() }
            }
            Self::Kmeans(ref p) => Step::Kmeans(KmeansFeatures::fit(train, p, seed)?),
            Self::Union { ref of } => {
                if of.is_empty() {
                    return Err(FeatureError::InvalidParam {
                        name: "union",
                        reason: "needs at least one step".into(),
                    });
                }
                let root = imgclass_core::rng::SplitMix64::new(seed);
                let parts = of
                    .iter()
                    .enumerate()
                    .map(|(j, sp)| sp.fit(train, root.fork(j as u64).next_u64()))
                    .collect::<Result<Vec<_>, _>>()?;
                Step::Union { parts, input: train.shape() }
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
            Self::Hog { cell, orientations } => write!(f, "hog({cell}px, {orientations} bins)"),
            Self::HueHistogram { bins } => write!(f, "hue_histogram({bins})"),
            Self::Chi2Map { steps, interval: None } => write!(f, "chi2_map({steps} steps)"),
            Self::Chi2Map { steps, interval: Some(l) } => write!(f, "chi2_map({steps} steps, {l})"),
            Self::Kmeans(p) if p.flip => write!(f, "kmeans({}, flip)", p.centroids),
            Self::Kmeans(p) => write!(f, "kmeans({})", p.centroids),
            Self::Union { of } => {
                f.write_str("union(")?;
                for (i, s) in of.iter().enumerate() {
                    if i > 0 {
                        f.write_str(" + ")?;
                    }
                    write!(f, "{s}")?;
                }
                f.write_str(")")
            }
        }
    }
}

/// One saved array of a fitted step: name, shape (row-major) and f32 values.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    /// Its name within the step (`mean`, `components`, `0.mean` for a union's first part).
    pub name: String,
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
    /// HOG (no fitted state).
    Hog {
        /// The parameters.
        hog: Hog,
        /// What it takes.
        input: RowShape,
    },
    /// Hue histogram (no fitted state).
    HueHistogram {
        /// The parameters.
        hue: HueHistogram,
        /// What it takes.
        input: RowShape,
    },
    /// The additive χ² kernel map (no fitted state).
    Chi2Map {
        /// The parameters.
        map: Chi2Map,
        /// What it takes.
        input: RowShape,
    },
    /// Coates, Lee & Ng's k-means features (whitening and dictionary).
    Kmeans(KmeansFeatures),
    /// Steps on the same input, outputs side by side.
    Union {
        /// The fitted parts.
        parts: Vec<Step>,
        /// What they take.
        input: RowShape,
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
            Self::Hog { hog, .. } => hog.spec(),
            Self::HueHistogram { hue, .. } => StepSpec::HueHistogram { bins: hue.output_dim() },
            Self::Chi2Map { map, .. } => {
                StepSpec::Chi2Map { steps: map.steps(), interval: Some(map.interval()) }
            }
            Self::Kmeans(k) => StepSpec::Kmeans(*k.params()),
            Self::Union { parts, .. } => {
                StepSpec::Union { of: parts.iter().map(Step::spec).collect() }
            }
        }
    }

    /// What the step takes.
    pub fn input(&self) -> RowShape {
        match self {
            Self::Standardize(s) => s.input(),
            Self::Pca { pca, .. } => pca.input(),
            Self::Kmeans(k) => RowShape::Image(k.input()),
            Self::Hog { input, .. }
            | Self::HueHistogram { input, .. }
            | Self::Chi2Map { input, .. }
            | Self::Union { input, .. } => *input,
        }
    }

    /// Features per output row.
    pub fn output_dim(&self) -> usize {
        match self {
            Self::Standardize(s) => s.mean().len(),
            Self::Pca { pca, .. } => pca.n_components(),
            Self::Hog { hog, input } => input.image().map_or(0, |s| hog.output_dim(s)),
            Self::HueHistogram { hue, .. } => hue.output_dim(),
            Self::Chi2Map { map, input } => map.output_dim(input.dim()),
            Self::Kmeans(k) => k.output_dim(),
            Self::Union { parts, .. } => parts.iter().map(Step::output_dim).sum(),
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
            Self::Hog { hog, input } => {
                input.expect(x.shape())?;
                hog.transform(x)?
            }
            Self::HueHistogram { hue, input } => {
                input.expect(x.shape())?;
                hue.transform(x)?
            }
            Self::Chi2Map { map, input } => {
                input.expect(x.shape())?;
                map.transform(x)?
            }
            Self::Kmeans(k) => k.transform(x)?,
            Self::Union { parts, input } => {
                input.expect(x.shape())?;
                let outs = parts.iter().map(|p| p.transform(x)).collect::<Result<Vec<_>, _>>()?;
                let dim: usize = outs.iter().map(Dataset::dim).sum();
                let mut v = Vec::with_capacity(x.len() * dim);
                for i in 0..x.len() {
                    for o in &outs {
                        if let Some(rows) = o.features() {
                            v.extend_from_slice(rows.row(i));
                        }
                    }
                }
                x.with_features(v, dim)?
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
                Tensor { name: "mean".into(), shape: vec![d], data: s.mean().to_vec() },
                Tensor { name: "scale".into(), shape: vec![d], data: s.scale().to_vec() },
            ],
            Self::Pca { pca, .. } => {
                let p = pca.n_components();
                vec![
                    Tensor { name: "mean".into(), shape: vec![d], data: pca.mean().to_vec() },
                    Tensor {
                        name: "components".into(),
                        shape: vec![p, d],
                        data: pca.components().to_vec(),
                    },
                    Tensor {
                        name: "variances".into(),
                        shape: vec![p],
                        data: pca.variances().to_vec(),
                    },
                ]
            }
            Self::Kmeans(k) => {
                let (kk, dd) = (k.n_centroids(), k.patch_dim());
                vec![
                    Tensor {
                        name: "centroids".into(),
                        shape: vec![kk, dd],
                        data: k.centroids().to_vec(),
                    },
                    Tensor {
                        name: "whitening_mean".into(),
                        shape: vec![dd],
                        data: k.whitening_mean().to_vec(),
                    },
                    Tensor {
                        name: "whitening".into(),
                        shape: vec![dd, dd],
                        data: k.whitening().to_vec(),
                    },
                ]
            }
            Self::Hog { .. } | Self::HueHistogram { .. } | Self::Chi2Map { .. } => Vec::new(),
            Self::Union { parts, .. } => parts
                .iter()
                .enumerate()
                .flat_map(|(j, p)| {
                    p.tensors()
                        .into_iter()
                        .map(move |t| Tensor { name: format!("{j}.{}", t.name), ..t })
                })
                .collect(),
        }
    }

    /// The names and shapes of the arrays a step of `spec` on `input` saves, so a loader
    /// can check a file (and bound its size) before decoding it.
    pub fn tensor_shapes(spec: &StepSpec, input: RowShape) -> Vec<(String, Vec<usize>)> {
        let d = input.dim();
        match spec {
            StepSpec::Standardize => vec![("mean".into(), vec![d]), ("scale".into(), vec![d])],
            StepSpec::Pca { components: p, .. } => vec![
                ("mean".into(), vec![d]),
                ("components".into(), vec![*p, d]),
                ("variances".into(), vec![*p]),
            ],
            StepSpec::Kmeans(p) => {
                let dd = input.image().map_or(0, |s| p.patch_dim(s));
                vec![
                    ("centroids".into(), vec![p.centroids, dd]),
                    ("whitening_mean".into(), vec![dd]),
                    ("whitening".into(), vec![dd, dd]),
                ]
            }
            StepSpec::Hog { .. } | StepSpec::HueHistogram { .. } | StepSpec::Chi2Map { .. } => {
                Vec::new()
            }
            StepSpec::Union { of } => of
                .iter()
                .enumerate()
                .flat_map(|(j, sp)| {
                    Step::tensor_shapes(sp, input)
                        .into_iter()
                        .map(move |(n, s)| (format!("{j}.{n}"), s))
                })
                .collect(),
        }
    }

    /// Rebuilds a fitted step from its spec, its input shape and its arrays (`get(name)`
    /// returns the array of [`Step::tensor_shapes`] of that name, already checked to have
    /// that shape). Every value is checked, so a rebuilt step cannot panic later.
    pub fn from_tensors(
        spec: &StepSpec,
        input: RowShape,
        mut get: impl FnMut(&str) -> Result<Vec<f32>, FeatureError>,
    ) -> Result<Self, FeatureError> {
        Self::rebuild(spec, input, &mut get)
    }

    fn rebuild(
        spec: &StepSpec,
        input: RowShape,
        get: &mut dyn FnMut(&str) -> Result<Vec<f32>, FeatureError>,
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
            StepSpec::Hog { cell, orientations } => {
                let hog = Hog::new(cell, orientations);
                hog.check(input).map_err(|e| FeatureError::Corrupt { reason: e.to_string() })?;
                Self::Hog { hog, input }
            }
            StepSpec::HueHistogram { bins } => {
                let hue = HueHistogram::new(bins);
                hue.check(input).map_err(|e| FeatureError::Corrupt { reason: e.to_string() })?;
                Self::HueHistogram { hue, input }
            }
            StepSpec::Chi2Map { steps, interval } => {
                let map = Chi2Map::new(steps, interval)
                    .map_err(|e| FeatureError::Corrupt { reason: e.to_string() })?;
                map.check(input).map_err(|e| FeatureError::Corrupt { reason: e.to_string() })?;
                Self::Chi2Map { map, input }
            }
            StepSpec::Kmeans(ref p) => {
                let shape =
                    p.check(input).map_err(|e| FeatureError::Corrupt { reason: e.to_string() })?;
                Self::Kmeans(KmeansFeatures::from_parts(
                    *p,
                    shape,
                    get("centroids")?,
                    get("whitening_mean")?,
                    get("whitening")?,
                )?)
            }
            StepSpec::Union { ref of } => {
                let mut parts = Vec::with_capacity(of.len());
                for (j, sp) in of.iter().enumerate() {
                    let mut sub = |name: &str| get(&format!("{j}.{name}"));
                    parts.push(Self::rebuild(sp, input, &mut sub)?);
                }
                Self::Union { parts, input }
            }
        })
    }
}
