//! [`Dataset`]: labelled rows, either u8 images (one row per image, channel-major
//! `C x H x W`, as CIFAR stores them) or f32 feature vectors, with class names; [`Subset`], a
//! cheap view of some of its rows; [`Values`] / [`Rows`], the typed views classifiers read.

use std::sync::Arc;

use imgclass_linalg::{Element, Rows};

/// A class label: an index into [`ClassNames`].
pub type Label = u32;

/// Why a [`Dataset`] or [`Subset`] could not be built.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DatasetError {
    /// The pixel buffer is not `n_images x shape.len()` bytes.
    #[error(
        "pixel buffer has {found} bytes, expected {expected} ({n_images} images of {dim} bytes)"
    )]
    PixelCount {
        /// Expected byte count.
        expected: usize,
        /// Actual byte count.
        found: usize,
        /// Number of labels (images).
        n_images: usize,
        /// Bytes per image.
        dim: usize,
    },
    /// A label is not below the number of classes.
    #[error("label {label} at row {row} is out of range for {n_classes} classes")]
    LabelOutOfRange {
        /// The offending label.
        label: Label,
        /// Its row.
        row: usize,
        /// Number of classes.
        n_classes: usize,
    },
    /// A subset index is not a row of the dataset.
    #[error("row index {index} is out of range for a dataset of {len} rows")]
    IndexOutOfRange {
        /// The offending index.
        index: usize,
        /// Number of rows in the dataset.
        len: usize,
    },
    /// The image shape has a zero dimension.
    #[error("image shape {0} has a zero dimension")]
    EmptyShape(ImageShape),
    /// The image shape's byte count (or the whole pixel buffer's) does not fit in `usize`.
    #[error("image shape {shape} is too large: {n_images} images of it overflow the address space")]
    ShapeTooLarge {
        /// The shape.
        shape: ImageShape,
        /// Number of images.
        n_images: usize,
    },
    /// A feature buffer is not `n_rows x dim` values.
    #[error("feature buffer has {found} values, expected {expected} ({n_rows} rows of {dim})")]
    FeatureCount {
        /// Expected value count.
        expected: usize,
        /// Actual value count.
        found: usize,
        /// Number of labels (rows).
        n_rows: usize,
        /// Values per row.
        dim: usize,
    },
    /// Features of dimension 0.
    #[error("features must have at least one dimension")]
    ZeroDim,
    /// `n_rows x dim` overflows the address space.
    #[error("{n_rows} rows of {dim} features overflow the address space")]
    FeaturesTooLarge {
        /// Values per row.
        dim: usize,
        /// Number of rows.
        n_rows: usize,
    },
    /// A feature value is NaN or infinite.
    #[error("feature {column} of row {row} is {value}, not a finite number")]
    NonFinite {
        /// Its row.
        row: usize,
        /// Its column.
        column: usize,
        /// The value.
        value: f32,
    },
    /// Two datasets to be joined have different row shapes.
    #[error(transparent)]
    Shape(#[from] ShapeMismatch),
    /// Two datasets to be joined have different class names (their labels would be
    /// reinterpreted).
    #[error("class names differ: {expected:?} against {found:?}")]
    ClassMismatch {
        /// The first dataset's class names.
        expected: Vec<String>,
        /// The second's.
        found: Vec<String>,
    },
}

/// Rows of one shape given where another was expected (compared by value: a 3x64x16 image
/// is not a 3x32x32 one although both have 3,072 bytes, and 3,072 features are not an
/// image). The one shape error of every classifier, transform and dataset operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("shape mismatch: expected {expected}, got {found}")]
pub struct ShapeMismatch {
    /// The shape expected (the model's, the first dataset's).
    pub expected: RowShape,
    /// The shape given.
    pub found: RowShape,
}

/// The shape of one image: channels, height, width. Pixels are stored channel-major
/// (all of channel 0 row by row, then channel 1, ...), as in the CIFAR binary format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct ImageShape {
    /// Number of channels (3 for RGB, 1 for grey).
    pub channels: usize,
    /// Height in pixels.
    pub height: usize,
    /// Width in pixels.
    pub width: usize,
}

impl ImageShape {
    /// A shape of `channels x height x width`.
    pub const fn new(channels: usize, height: usize, width: usize) -> Self {
        Self { channels, height, width }
    }

    /// CIFAR's 3 x 32 x 32.
    pub const CIFAR: Self = Self::new(3, 32, 32);

    /// Bytes per image: `channels * height * width`, saturating at `usize::MAX` (never
    /// wrapping: a shape that large is refused by [`Dataset::new`] with
    /// [`DatasetError::ShapeTooLarge`]; see [`ImageShape::checked_len`]).
    pub const fn len(&self) -> usize {
        match self.checked_len() {
            Some(n) => n,
            None => usize::MAX,
        }
    }

    /// Bytes per image, or `None` when the product overflows `usize`.
    ///
    /// ```
    /// use imgclass_core::ImageShape;
    /// assert_eq!(ImageShape::CIFAR.checked_len(), Some(3072));
    /// assert_eq!(ImageShape::new(usize::MAX, 2, 1).checked_len(), None);
    /// ```
    pub const fn checked_len(&self) -> Option<usize> {
        match self.channels.checked_mul(self.height) {
            Some(ch) => ch.checked_mul(self.width),
            None => None,
        }
    }

    /// True when any dimension is zero.
    pub const fn is_empty(&self) -> bool {
        self.channels == 0 || self.height == 0 || self.width == 0
    }

    /// `Ok` when `found` is this shape, else the [`ShapeMismatch`] naming both.
    ///
    /// ```
    /// use imgclass_core::ImageShape;
    /// let e = ImageShape::CIFAR.expect(ImageShape::new(3, 64, 16)).unwrap_err();
    /// assert_eq!(e.to_string(), "shape mismatch: expected 3x32x32 images, got 3x64x16 images");
    /// ```
    pub fn expect(self, found: ImageShape) -> Result<(), ShapeMismatch> {
        RowShape::Image(self).expect(RowShape::Image(found))
    }
}

impl std::fmt::Display for ImageShape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}x{}x{}", self.channels, self.height, self.width)
    }
}

/// Class names in label order: `names()[label]` is the name of `label`.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct ClassNames(Vec<String>);

impl ClassNames {
    /// Class names from anything iterable of strings, in label order.
    pub fn new<I, S>(names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self(names.into_iter().map(Into::into).collect())
    }

    /// The ten CIFAR-10 classes in the official label order.
    pub fn cifar10() -> Self {
        Self::new(CIFAR10_CLASSES)
    }

    /// Number of classes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when there are no classes.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The name of `label`, if it is in range.
    pub fn name(&self, label: Label) -> Option<&str> {
        self.0.get(label as usize).map(String::as_str)
    }

    /// The label of `name`, if it is one of the classes.
    pub fn label_of(&self, name: &str) -> Option<Label> {
        self.0.iter().position(|n| n == name).map(|i| i as Label)
    }

    /// All names in label order.
    pub fn names(&self) -> &[String] {
        &self.0
    }
}

/// The ten CIFAR-10 class names in the official label order (0..9).
pub const CIFAR10_CLASSES: [&str; 10] =
    ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"];

/// What one row of a [`Dataset`] is: a u8 image of a shape, or a vector of f32 features.
///
/// Two datasets (or a model and a dataset) fit together when their row shapes are equal:
/// a 3x64x16 image is not a 3x32x32 one although both have 3,072 values, and 3,072 features
/// are not an image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RowShape {
    /// u8 pixels of one image, channel-major.
    Image(ImageShape),
    /// f32 features of this dimension.
    Features(usize),
}

impl RowShape {
    /// Values per row.
    pub const fn dim(self) -> usize {
        match self {
            Self::Image(s) => s.len(),
            Self::Features(d) => d,
        }
    }

    /// The image shape, when rows are images.
    pub const fn image(self) -> Option<ImageShape> {
        match self {
            Self::Image(s) => Some(s),
            Self::Features(_) => None,
        }
    }

    /// `Ok` when `found` is this shape, else the [`ShapeMismatch`] naming both.
    ///
    /// ```
    /// use imgclass_core::{ImageShape, RowShape};
    /// let e = RowShape::Features(154).expect(RowShape::Image(ImageShape::CIFAR)).unwrap_err();
    /// assert_eq!(e.to_string(), "shape mismatch: expected 154 features, got 3x32x32 images");
    /// ```
    pub fn expect(self, found: RowShape) -> Result<(), ShapeMismatch> {
        if self == found { Ok(()) } else { Err(ShapeMismatch { expected: self, found }) }
    }
}

impl std::fmt::Display for RowShape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Image(s) => write!(f, "{s} images"),
            Self::Features(d) => write!(f, "{d} features"),
        }
    }
}

impl From<ImageShape> for RowShape {
    fn from(s: ImageShape) -> Self {
        Self::Image(s)
    }
}

/// The rows of a dataset or subset, by value type: match once, then work on typed [`Rows`].
#[derive(Debug, Clone, Copy)]
pub enum Values<'a> {
    /// u8 pixels of images.
    Pixels(Rows<'a, u8>),
    /// f32 features.
    Features(Rows<'a, f32>),
}

impl<'a> Values<'a> {
    /// Number of rows.
    pub fn len(&self) -> usize {
        match self {
            Self::Pixels(r) => r.len(),
            Self::Features(r) => r.len(),
        }
    }

    /// True when there are no rows.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Values per row.
    pub fn dim(&self) -> usize {
        match self {
            Self::Pixels(r) => r.dim(),
            Self::Features(r) => r.dim(),
        }
    }

    /// The rows as f32, contiguous (pixels converted exactly).
    pub fn to_f32(&self) -> Vec<f32> {
        match self {
            Self::Pixels(r) => r.to_f32(),
            Self::Features(r) => r.to_f32(),
        }
    }

    /// The pixel rows, when these are images.
    pub fn pixels(self) -> Option<Rows<'a, u8>> {
        match self {
            Self::Pixels(r) => Some(r),
            Self::Features(_) => None,
        }
    }

    /// The feature rows, when these are features.
    pub fn features(self) -> Option<Rows<'a, f32>> {
        match self {
            Self::Pixels(_) => None,
            Self::Features(r) => Some(r),
        }
    }

    /// The mean of every column, in f64 (see [`Rows::column_means`]).
    pub fn column_means(&self) -> Vec<f64> {
        match self {
            Self::Pixels(r) => r.column_means(),
            Self::Features(r) => r.column_means(),
        }
    }

    /// Row `i` as f32 (copied). Panics if `i >= len()`.
    pub fn row_f32(&self, i: usize) -> Vec<f32> {
        match self {
            Self::Pixels(r) => r.row(i).iter().map(|&v| f32::from(v)).collect(),
            Self::Features(r) => r.row(i).to_vec(),
        }
    }
}

/// The shared storage of a dataset.
#[derive(Debug, Clone, PartialEq)]
enum Storage {
    Pixels(Arc<[u8]>),
    /// A vector behind the `Arc` (not `Arc<[f32]>`): a transform's output becomes storage
    /// without a copy of its values.
    Features(Arc<Vec<f32>>),
}

/// Labelled rows with class names: u8 images (one row per image, channel-major, as CIFAR
/// stores them) or f32 feature vectors of any dimension (what a transform or a feature
/// extractor makes of images). One type for both, so subsets, folds, splits and every
/// classifier's `fit`/`predict` work the same on either.
///
/// Invariants (checked by the constructors): `values.len() == labels.len() * dim`, every
/// label is below `classes.len()`, and features are finite. Storage is shared (`Arc`), so
/// cloning a dataset or taking a [`Subset`] never copies it.
///
/// ```
/// use imgclass_core::{ClassNames, Dataset, RowShape, Values};
///
/// // three 2-dimensional feature vectors
/// let ds = Dataset::from_features(
///     vec![0.5, 1.0, -2.0, 0.0, 3.5, 1.5],
///     2,
///     vec![0, 1, 1],
///     ClassNames::new(["a", "b"]),
/// )?
/// .with_description("two hand-made features");
/// assert_eq!(ds.shape(), RowShape::Features(2));
/// let view = ds.subset(vec![2, 0])?;
/// let Values::Features(rows) = view.values() else { unreachable!() };
/// assert_eq!(rows.row(0), &[3.5, 1.5]);
/// assert_eq!(ds.description(), Some("two hand-made features"));
/// # Ok::<(), imgclass_core::DatasetError>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    values: Storage,
    labels: Arc<[Label]>,
    shape: RowShape,
    classes: ClassNames,
    description: Option<Arc<str>>,
}

impl Dataset {
    /// Builds an image dataset, checking the invariants.
    pub fn new(
        pixels: Vec<u8>,
        labels: Vec<Label>,
        shape: ImageShape,
        classes: ClassNames,
    ) -> Result<Self, DatasetError> {
        Self::from_shared(pixels.into(), labels.into(), shape, classes)
    }

    /// Builds an image dataset from storage that is already shared, without copying it (a
    /// reader that fills an `Arc<[u8]>` in place saves a copy of the whole pixel buffer).
    /// Checks the same invariants as [`Dataset::new`].
    pub fn from_shared(
        pixels: Arc<[u8]>,
        labels: Arc<[Label]>,
        shape: ImageShape,
        classes: ClassNames,
    ) -> Result<Self, DatasetError> {
        if shape.is_empty() {
            return Err(DatasetError::EmptyShape(shape));
        }
        let too_large = || DatasetError::ShapeTooLarge { shape, n_images: labels.len() };
        let dim = shape.checked_len().ok_or_else(too_large)?;
        let expected = labels.len().checked_mul(dim).ok_or_else(too_large)?;
        if pixels.len() != expected {
            return Err(DatasetError::PixelCount {
                expected,
                found: pixels.len(),
                n_images: labels.len(),
                dim,
            });
        }
        check_labels(&labels, &classes)?;
        Ok(Self {
            values: Storage::Pixels(pixels),
            labels,
            shape: RowShape::Image(shape),
            classes,
            description: None,
        })
    }

    /// Builds a feature dataset: `labels.len()` rows of `dim` f32 values, row after row.
    /// Every value must be finite ([`DatasetError::NonFinite`] names the first that is not).
    pub fn from_features(
        values: Vec<f32>,
        dim: usize,
        labels: Vec<Label>,
        classes: ClassNames,
    ) -> Result<Self, DatasetError> {
        Self::from_shared_features(Arc::new(values), dim, labels.into(), classes)
    }

    /// [`Dataset::from_features`] over storage that is already shared. Neither copies the
    /// values: the vector is kept as it is.
    pub fn from_shared_features(
        values: Arc<Vec<f32>>,
        dim: usize,
        labels: Arc<[Label]>,
        classes: ClassNames,
    ) -> Result<Self, DatasetError> {
        if dim == 0 {
            return Err(DatasetError::ZeroDim);
        }
        let expected = labels
            .len()
            .checked_mul(dim)
            .ok_or(DatasetError::FeaturesTooLarge { dim, n_rows: labels.len() })?;
        if values.len() != expected {
            return Err(DatasetError::FeatureCount {
                expected,
                found: values.len(),
                n_rows: labels.len(),
                dim,
            });
        }
        if let Some(at) = values.iter().position(|v| !v.is_finite()) {
            return Err(DatasetError::NonFinite {
                row: at / dim,
                column: at % dim,
                value: values[at],
            });
        }
        check_labels(&labels, &classes)?;
        Ok(Self {
            values: Storage::Features(values),
            labels,
            shape: RowShape::Features(dim),
            classes,
            description: None,
        })
    }

    /// The same rows with a description of how they were made (for features: the
    /// extractor and its parameters), shown in reports and saved with models.
    pub fn with_description(mut self, description: impl Into<Arc<str>>) -> Self {
        self.description = Some(description.into());
        self
    }

    /// How the rows were made, if described.
    pub fn description(&self) -> Option<&str> {
        self.description.as_deref()
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// True when there are no rows.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Values per row (bytes per image, or the feature dimension).
    pub fn dim(&self) -> usize {
        self.shape.dim()
    }

    /// What a row is: an image of a shape, or features of a dimension.
    pub fn shape(&self) -> RowShape {
        self.shape
    }

    /// The image shape, when rows are images.
    pub fn image_shape(&self) -> Option<ImageShape> {
        self.shape.image()
    }

    /// The class names.
    pub fn classes(&self) -> &ClassNames {
        &self.classes
    }

    /// Number of classes.
    pub fn n_classes(&self) -> usize {
        self.classes.len()
    }

    /// Every row, typed: match once, then read [`Rows`].
    pub fn values(&self) -> Values<'_> {
        let dim = self.dim();
        match &self.values {
            Storage::Pixels(p) => Values::Pixels(whole(p, dim, self.len())),
            Storage::Features(f) => Values::Features(whole(f, dim, self.len())),
        }
    }

    /// Every pixel row, when rows are images (`.storage().0` is the flat buffer).
    pub fn pixels(&self) -> Option<Rows<'_, u8>> {
        self.values().pixels()
    }

    /// Every feature row, when rows are features (`.storage().0` is the flat buffer).
    pub fn features(&self) -> Option<Rows<'_, f32>> {
        self.values().features()
    }

    /// All labels in row order.
    pub fn labels(&self) -> &[Label] {
        &self.labels
    }

    /// The label of row `i`. Panics if `i >= len()`, like slice indexing.
    pub fn label(&self, i: usize) -> Label {
        self.labels[i]
    }

    /// A view of every row, in order.
    pub fn all(&self) -> Subset {
        Subset { data: self.clone(), indices: (0..self.len()).collect::<Vec<_>>().into() }
    }

    /// A view of the rows at `indices` (in that order; repeats allowed).
    pub fn subset(&self, indices: impl Into<Arc<[usize]>>) -> Result<Subset, DatasetError> {
        let indices = indices.into();
        if let Some(&index) = indices.iter().find(|&&i| i >= self.len()) {
            return Err(DatasetError::IndexOutOfRange { index, len: self.len() });
        }
        Ok(Subset { data: self.clone(), indices })
    }

    /// Appends the rows of `other` into a new dataset. Both must have the same row shape
    /// ([`DatasetError::Shape`]) and the same class names in the same order
    /// ([`DatasetError::ClassMismatch`]): a label means a class name, so joining datasets
    /// whose names differ would silently relabel rows.
    pub fn concat(&self, other: &Dataset) -> Result<Dataset, DatasetError> {
        self.shape.expect(other.shape)?;
        if self.classes != other.classes {
            return Err(DatasetError::ClassMismatch {
                expected: self.classes.names().to_vec(),
                found: other.classes.names().to_vec(),
            });
        }
        let mut labels = Vec::with_capacity(self.len() + other.len());
        labels.extend_from_slice(&self.labels);
        labels.extend_from_slice(&other.labels);
        let out = match (&self.values, &other.values, self.shape) {
            (Storage::Pixels(a), Storage::Pixels(b), RowShape::Image(shape)) => {
                Dataset::new([&a[..], &b[..]].concat(), labels, shape, self.classes.clone())?
            }
            (Storage::Features(a), Storage::Features(b), RowShape::Features(dim)) => {
                Dataset::from_features(
                    [&a[..], &b[..]].concat(),
                    dim,
                    labels,
                    self.classes.clone(),
                )?
            }
            // equal shapes imply equal storage kinds (the constructors pair them)
            _ => {
                return Err(DatasetError::Shape(ShapeMismatch {
                    expected: self.shape,
                    found: other.shape,
                }));
            }
        };
        Ok(match &self.description {
            Some(d) => out.with_description(d.clone()),
            None => out,
        })
    }
}

/// Every row of checked storage (the constructors guarantee `data.len() == n * dim`, `dim > 0`).
fn whole<T: Element>(data: &[T], dim: usize, n: usize) -> Rows<'_, T> {
    Rows::new(data, n, dim).unwrap_or_else(|e| unreachable!("dataset invariant: {e}"))
}

/// The rows `indices` of checked storage (a subset's indices are checked when it is made).
fn picked<'a, T: Element>(data: &'a [T], dim: usize, indices: &'a [usize]) -> Rows<'a, T> {
    Rows::gather(data, dim, indices).unwrap_or_else(|e| unreachable!("subset invariant: {e}"))
}

fn check_labels(labels: &[Label], classes: &ClassNames) -> Result<(), DatasetError> {
    if let Some((row, &label)) =
        labels.iter().enumerate().find(|&(_, &l)| l as usize >= classes.len())
    {
        return Err(DatasetError::LabelOutOfRange { label, row, n_classes: classes.len() });
    }
    Ok(())
}

/// Some rows of a [`Dataset`], by index, sharing its storage: a cross-validation fold or a
/// validation split never copies pixels or features.
#[derive(Debug, Clone, PartialEq)]
pub struct Subset {
    data: Dataset,
    indices: Arc<[usize]>,
}

impl Subset {
    /// Number of rows in the view.
    pub fn len(&self) -> usize {
        self.indices.len()
    }

    /// True when the view has no rows.
    pub fn is_empty(&self) -> bool {
        self.indices.is_empty()
    }

    /// The underlying dataset.
    pub fn dataset(&self) -> &Dataset {
        &self.data
    }

    /// The dataset rows this view selects, in view order.
    pub fn indices(&self) -> &[usize] {
        &self.indices
    }

    /// Values per row.
    pub fn dim(&self) -> usize {
        self.data.dim()
    }

    /// What a row is (the dataset's [`RowShape`]).
    pub fn shape(&self) -> RowShape {
        self.data.shape()
    }

    /// Number of classes of the underlying dataset.
    pub fn n_classes(&self) -> usize {
        self.data.n_classes()
    }

    /// The view's rows, typed: match once, then read [`Rows`].
    pub fn values(&self) -> Values<'_> {
        let dim = self.dim();
        match &self.data.values {
            Storage::Pixels(p) => Values::Pixels(picked(p, dim, &self.indices)),
            Storage::Features(f) => Values::Features(picked(f, dim, &self.indices)),
        }
    }

    /// The view's pixel rows, when the dataset holds images.
    pub fn pixels(&self) -> Option<Rows<'_, u8>> {
        self.values().pixels()
    }

    /// The view's feature rows, when the dataset holds features.
    pub fn features(&self) -> Option<Rows<'_, f32>> {
        self.values().features()
    }

    /// The label of the `i`-th row of the view.
    pub fn label(&self, i: usize) -> Label {
        self.data.label(self.indices[i])
    }

    /// All labels of the view, in view order.
    pub fn labels(&self) -> Vec<Label> {
        self.indices.iter().map(|&i| self.data.label(i)).collect()
    }

    /// A view of some rows of this view: `positions` index into this view.
    pub fn select(&self, positions: &[usize]) -> Result<Subset, DatasetError> {
        let mut indices = Vec::with_capacity(positions.len());
        for &p in positions {
            let &i = self
                .indices
                .get(p)
                .ok_or(DatasetError::IndexOutOfRange { index: p, len: self.len() })?;
            indices.push(i);
        }
        Ok(Subset { data: self.data.clone(), indices: indices.into() })
    }

    /// A new feature dataset with this view's labels and class names, one row of
    /// `dim` values per view row (what a transform returns): `values.len()` must be
    /// `len() * dim`, and every value finite.
    pub fn with_features(&self, values: Vec<f32>, dim: usize) -> Result<Dataset, DatasetError> {
        Dataset::from_features(values, dim, self.labels(), self.data.classes.clone())
    }

    /// Copies the view's rows, labels, class names and description into a new dataset of
    /// its own (row `i` of the result is row `i` of the view).
    pub fn materialize(&self) -> Dataset {
        let labels: Arc<[Label]> = self.labels().into();
        let classes = self.data.classes.clone();
        let made = match (self.values(), self.data.shape) {
            (Values::Pixels(r), RowShape::Image(shape)) => {
                Dataset::from_shared(r.to_contiguous().into(), labels, shape, classes)
            }
            (Values::Features(r), _) => {
                Dataset::from_shared_features(r.to_contiguous().into(), r.dim(), labels, classes)
            }
            (Values::Pixels(_), RowShape::Features(_)) => {
                unreachable!("constructors pair pixels with image shapes")
            }
        };
        // the rows of a valid dataset make a valid dataset
        let made = made.unwrap_or_else(|e| unreachable!("rows of a valid dataset: {e}"));
        match &self.data.description {
            Some(d) => made.with_description(d.clone()),
            None => made,
        }
    }

    /// True when the view selects every row of the dataset in order, so the dataset's
    /// storage can be used directly without copying.
    pub fn is_identity(&self) -> bool {
        self.indices.len() == self.data.len()
            && self.indices.iter().enumerate().all(|(a, &b)| a == b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny() -> Dataset {
        Dataset::new(
            (0..12).collect(),
            vec![0, 1, 1, 0],
            ImageShape::new(3, 1, 1),
            ClassNames::new(["a", "b"]),
        )
        .expect("valid")
    }

    #[test]
    fn rejects_wrong_pixel_count_and_labels() {
        let e =
            Dataset::new(vec![0; 5], vec![0, 0], ImageShape::new(1, 1, 3), ClassNames::new(["a"]));
        assert_eq!(e, Err(DatasetError::PixelCount { expected: 6, found: 5, n_images: 2, dim: 3 }));
        let e = Dataset::new(
            vec![0; 2],
            vec![0, 2],
            ImageShape::new(1, 1, 1),
            ClassNames::new(["a", "b"]),
        );
        assert_eq!(e, Err(DatasetError::LabelOutOfRange { label: 2, row: 1, n_classes: 2 }));
    }

    #[test]
    fn from_shared_checks_like_new_and_does_not_copy() {
        let px: Arc<[u8]> = (0..6).collect();
        let ds = Dataset::from_shared(
            px.clone(),
            vec![1, 0].into(),
            ImageShape::new(1, 1, 3),
            ClassNames::new(["a", "b"]),
        )
        .expect("valid");
        assert_eq!(ds.all().pixels().expect("images").row(1), &[3, 4, 5]);
        assert!(
            std::ptr::eq(ds.pixels().expect("images").storage().0.as_ptr(), px.as_ptr()),
            "pixels were copied"
        );
        let e = Dataset::from_shared(
            px.clone(),
            vec![0].into(),
            ImageShape::new(1, 1, 3),
            ClassNames::new(["a"]),
        );
        assert_eq!(e, Err(DatasetError::PixelCount { expected: 3, found: 6, n_images: 1, dim: 3 }));
        let e = Dataset::from_shared(
            px.clone(),
            vec![0, 2].into(),
            ImageShape::new(1, 1, 3),
            ClassNames::new(["a", "b"]),
        );
        assert_eq!(e, Err(DatasetError::LabelOutOfRange { label: 2, row: 1, n_classes: 2 }));
        let e = Dataset::from_shared(
            px,
            vec![].into(),
            ImageShape::new(0, 1, 3),
            ClassNames::new(["a"]),
        );
        assert_eq!(e, Err(DatasetError::EmptyShape(ImageShape::new(0, 1, 3))));
    }

    /// Issue 17 item 4: joining datasets whose class names differ would relabel rows; it is
    /// refused, and so is a shape of the same byte count but another layout.
    #[test]
    fn concat_refuses_other_class_names_and_other_shapes() {
        let a = tiny();
        let renamed = Dataset::new(
            (0..6).collect(),
            vec![0, 1],
            ImageShape::new(3, 1, 1),
            ClassNames::new(["b", "a"]),
        )
        .expect("valid");
        assert_eq!(
            a.concat(&renamed),
            Err(DatasetError::ClassMismatch {
                expected: vec!["a".into(), "b".into()],
                found: vec!["b".into(), "a".into()],
            })
        );
        let fewer =
            Dataset::new(vec![0; 3], vec![0], ImageShape::new(3, 1, 1), ClassNames::new(["a"]))
                .expect("valid");
        assert!(matches!(a.concat(&fewer), Err(DatasetError::ClassMismatch { .. })));
        let other_shape = Dataset::new(
            vec![0; 3],
            vec![0],
            ImageShape::new(1, 3, 1),
            ClassNames::new(["a", "b"]),
        )
        .expect("valid");
        let e = a.concat(&other_shape).unwrap_err();
        assert_eq!(
            e,
            DatasetError::Shape(ShapeMismatch {
                expected: RowShape::Image(ImageShape::new(3, 1, 1)),
                found: RowShape::Image(ImageShape::new(1, 3, 1))
            })
        );
        assert!(e.to_string().contains("expected 3x1x1 images, got 1x3x1 images"), "{e}");
        let joined = a.concat(&a).expect("same names and shape");
        assert_eq!(joined.len(), 8);
        let (j, a) = (joined.all(), a.all());
        assert_eq!(j.pixels().expect("images").row(7), a.pixels().expect("images").row(3));
    }

    /// Issue 17 item 4: a huge shape's size saturates instead of wrapping, and a dataset of
    /// it is a typed error (a wrapped size of 0 or 2 used to pass the pixel-count check).
    #[test]
    fn huge_shapes_never_wrap() {
        // 2^33 * 2^31 = 2^64 wraps to 0; 2^63 * 2 + ... likewise
        let wraps_to_zero = ImageShape::new(1 << 33, 1 << 31, 1);
        assert_eq!(wraps_to_zero.checked_len(), None);
        assert_eq!(wraps_to_zero.len(), usize::MAX);
        assert!(!wraps_to_zero.is_empty());
        let e = Dataset::new(vec![], vec![0], wraps_to_zero, ClassNames::new(["a"]));
        assert_eq!(e, Err(DatasetError::ShapeTooLarge { shape: wraps_to_zero, n_images: 1 }));
        // (2^63 + 1) * 2 wraps to 2: two bytes for one image used to pass
        let wraps_to_two = ImageShape::new((1 << 63) + 1, 2, 1);
        let e = Dataset::new(vec![0, 0], vec![0], wraps_to_two, ClassNames::new(["a"]));
        assert_eq!(e, Err(DatasetError::ShapeTooLarge { shape: wraps_to_two, n_images: 1 }));
        // the shape fits but the buffer of n images does not
        let big = ImageShape::new(1 << 62, 1, 1);
        let e = Dataset::new(vec![], vec![0; 8], big, ClassNames::new(["a"]));
        assert_eq!(e, Err(DatasetError::ShapeTooLarge { shape: big, n_images: 8 }));
    }

    #[test]
    fn subset_views_share_rows() {
        let ds = tiny();
        let s = ds.subset(vec![3, 1]).expect("in range");
        assert_eq!(s.pixels().expect("images").row(0), &[9, 10, 11]);
        assert_eq!(s.labels(), vec![0, 1]);
        let t = s.select(&[1]).expect("in range");
        assert_eq!(t.indices(), &[1]);
        assert!(ds.subset(vec![4]).is_err());
        assert!(ds.all().is_identity());
        assert!(!s.is_identity());
        assert_eq!(s.pixels().expect("images").to_contiguous(), vec![9, 10, 11, 3, 4, 5]);
        assert_eq!(s.values().to_f32(), vec![9.0, 10.0, 11.0, 3.0, 4.0, 5.0]);
        assert!(s.features().is_none());
    }

    fn feats() -> Dataset {
        Dataset::from_features(
            vec![0.5, -1.0, 2.0, 3.0, 4.25, 5.0],
            2,
            vec![1, 0, 1],
            ClassNames::new(["a", "b"]),
        )
        .expect("valid")
    }

    /// Features are rows like images: subsets, selections and joins share or copy them by
    /// the same rules, and shapes of the other kind never fit.
    #[test]
    fn feature_datasets_view_join_and_refuse_like_images() {
        let ds = feats();
        assert_eq!(ds.shape(), RowShape::Features(2));
        assert_eq!(ds.image_shape(), None);
        assert!(ds.pixels().is_none());
        let s = ds.subset(vec![2, 0]).expect("in range");
        let rows = s.features().expect("features");
        assert_eq!(rows.row(0), &[4.25, 5.0]);
        assert_eq!(rows.iter().collect::<Vec<_>>(), vec![&[4.25, 5.0][..], &[0.5, -1.0][..]]);
        assert_eq!(rows.as_contiguous(), None);
        assert_eq!(
            ds.all().features().and_then(|r| r.as_contiguous()),
            ds.features().map(|r| r.storage().0)
        );
        let t = s.select(&[1]).expect("in range");
        assert_eq!(t.features().expect("features").to_contiguous(), vec![0.5, -1.0]);
        assert_eq!(t.labels(), vec![1]);
        let own = s.materialize();
        assert_eq!(own.features().map(|r| r.to_contiguous()), Some(vec![4.25, 5.0, 0.5, -1.0]));
        assert_eq!(own.labels(), &[1, 1]);
        let joined = ds.concat(&ds).expect("same shape");
        assert_eq!(joined.len(), 6);
        assert_eq!(joined.features().map(|f| f.row(5)[0]), Some(4.25));
        let e = ds.concat(&tiny()).unwrap_err();
        assert_eq!(e.to_string(), "shape mismatch: expected 2 features, got 3x1x1 images");
        let made = s.with_features(vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0], 3).expect("valid");
        assert_eq!((made.len(), made.dim(), made.labels()), (2, 3, &[1, 1][..]));
    }

    #[test]
    fn feature_datasets_refuse_bad_counts_zero_dim_and_non_finite_values() {
        let c = || ClassNames::new(["a", "b"]);
        assert_eq!(
            Dataset::from_features(vec![0.0; 5], 2, vec![0, 1, 0], c()),
            Err(DatasetError::FeatureCount { expected: 6, found: 5, n_rows: 3, dim: 2 })
        );
        assert_eq!(Dataset::from_features(vec![], 0, vec![], c()), Err(DatasetError::ZeroDim));
        let e =
            Dataset::from_features(vec![0.0, 1.0, f32::NAN, 2.0], 2, vec![0, 1], c()).unwrap_err();
        assert!(matches!(e, DatasetError::NonFinite { row: 1, column: 0, .. }), "{e:?}");
        assert_eq!(e.to_string(), "feature 0 of row 1 is NaN, not a finite number");
        let e = Dataset::from_features(vec![f32::INFINITY], 1, vec![0], c()).unwrap_err();
        assert!(matches!(e, DatasetError::NonFinite { row: 0, column: 0, .. }));
        assert_eq!(
            Dataset::from_features(vec![0.0; 2], 1, vec![0, 2], c()),
            Err(DatasetError::LabelOutOfRange { label: 2, row: 1, n_classes: 2 })
        );
        let e = Dataset::from_features(vec![], usize::MAX, vec![0, 0], c()).unwrap_err();
        assert!(matches!(e, DatasetError::FeaturesTooLarge { .. }));
    }
}
