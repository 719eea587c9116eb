//! [`Dataset`]: u8 images, one row per image, channel-major (`C x H x W`, as CIFAR stores
//! them), with labels and class names; and [`Subset`], a cheap view of some of its rows.

use std::sync::Arc;

/// A class label: an index into [`ClassNames`].
pub type Label = u32;

/// Why a [`Dataset`] or [`Subset`] could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
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
    /// Two datasets to be joined have different image shapes.
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

/// Images of one shape given where another was expected (compared by value: a 3x64x16 image
/// is not a 3x32x32 one although both have 3,072 bytes). The one shape error of every
/// classifier and dataset operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("image shape mismatch: expected {expected} images, got {found}")]
pub struct ShapeMismatch {
    /// The shape expected (the model's, the first dataset's).
    pub expected: ImageShape,
    /// The shape given.
    pub found: ImageShape,
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
    /// assert_eq!(e.to_string(), "image shape mismatch: expected 3x32x32 images, got 3x64x16");
    /// ```
    pub fn expect(self, found: ImageShape) -> Result<(), ShapeMismatch> {
        if self == found { Ok(()) } else { Err(ShapeMismatch { expected: self, found }) }
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

/// Images as u8 rows with labels and class names.
///
/// Invariants (checked by [`Dataset::new`]): `pixels.len() == labels.len() * shape.len()`
/// and every label is below `classes.len()`. Pixels are shared (`Arc`), so cloning a
/// dataset or taking a [`Subset`] never copies them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dataset {
    pixels: Arc<[u8]>,
    labels: Arc<[Label]>,
    shape: ImageShape,
    classes: ClassNames,
}

impl Dataset {
    /// Builds a dataset, checking the invariants.
    pub fn new(
        pixels: Vec<u8>,
        labels: Vec<Label>,
        shape: ImageShape,
        classes: ClassNames,
    ) -> Result<Self, DatasetError> {
        Self::check(&pixels, &labels, shape, &classes)?;
        Ok(Self { pixels: pixels.into(), labels: labels.into(), shape, classes })
    }

    /// Builds a dataset from storage that is already shared, without copying it (a reader
    /// that fills an `Arc<[u8]>` in place saves a copy of the whole pixel buffer). Checks the
    /// same invariants as [`Dataset::new`].
    pub fn from_shared(
        pixels: Arc<[u8]>,
        labels: Arc<[Label]>,
        shape: ImageShape,
        classes: ClassNames,
    ) -> Result<Self, DatasetError> {
        Self::check(&pixels, &labels, shape, &classes)?;
        Ok(Self { pixels, labels, shape, classes })
    }

    /// The invariants of a dataset: a non-empty shape, `labels.len() * shape.len()` pixel
    /// bytes, every label below the number of classes.
    fn check(
        pixels: &[u8],
        labels: &[Label],
        shape: ImageShape,
        classes: &ClassNames,
    ) -> Result<(), DatasetError> {
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
        if let Some((row, &label)) =
            labels.iter().enumerate().find(|&(_, &l)| l as usize >= classes.len())
        {
            return Err(DatasetError::LabelOutOfRange { label, row, n_classes: classes.len() });
        }
        Ok(())
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// True when there are no images.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Bytes per image (`shape().len()`).
    pub fn dim(&self) -> usize {
        self.shape.len()
    }

    /// The image shape.
    pub fn shape(&self) -> ImageShape {
        self.shape
    }

    /// The class names.
    pub fn classes(&self) -> &ClassNames {
        &self.classes
    }

    /// Number of classes.
    pub fn n_classes(&self) -> usize {
        self.classes.len()
    }

    /// All pixels, row after row (`len() * dim()` bytes).
    pub fn pixels(&self) -> &[u8] {
        &self.pixels
    }

    /// All labels in row order.
    pub fn labels(&self) -> &[Label] {
        &self.labels
    }

    /// The pixels of image `i`. Panics if `i >= len()`, like slice indexing.
    pub fn row(&self, i: usize) -> &[u8] {
        let d = self.dim();
        &self.pixels[i * d..(i + 1) * d]
    }

    /// The label of image `i`. Panics if `i >= len()`, like slice indexing.
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

    /// Appends the rows of `other` into a new dataset. Both must have the same image shape
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
        let mut pixels = Vec::with_capacity(self.pixels.len() + other.pixels.len());
        pixels.extend_from_slice(&self.pixels);
        pixels.extend_from_slice(&other.pixels);
        let mut labels = Vec::with_capacity(self.len() + other.len());
        labels.extend_from_slice(&self.labels);
        labels.extend_from_slice(&other.labels);
        Dataset::new(pixels, labels, self.shape, self.classes.clone())
    }
}

/// Some rows of a [`Dataset`], by index, sharing its storage: a cross-validation fold or a
/// validation split never copies pixels.
#[derive(Debug, Clone, PartialEq, Eq)]
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

    /// Bytes per image.
    pub fn dim(&self) -> usize {
        self.data.dim()
    }

    /// Number of classes of the underlying dataset.
    pub fn n_classes(&self) -> usize {
        self.data.n_classes()
    }

    /// The pixels of the `i`-th row of the view.
    pub fn row(&self, i: usize) -> &[u8] {
        self.data.row(self.indices[i])
    }

    /// The label of the `i`-th row of the view.
    pub fn label(&self, i: usize) -> Label {
        self.data.label(self.indices[i])
    }

    /// All labels of the view, in view order.
    pub fn labels(&self) -> Vec<Label> {
        self.indices.iter().map(|&i| self.data.label(i)).collect()
    }

    /// Iterates over the rows' pixels in view order.
    pub fn rows(&self) -> impl ExactSizeIterator<Item = &[u8]> + '_ {
        self.indices.iter().map(|&i| self.data.row(i))
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

    /// Copies the view's pixels into one contiguous buffer (`len() * dim()` bytes).
    pub fn to_contiguous(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.len() * self.dim());
        for r in self.rows() {
            out.extend_from_slice(r);
        }
        out
    }

    /// True when the view selects every row of the dataset in order, so
    /// `dataset().pixels()` can be used directly without copying.
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
        assert_eq!(ds.row(1), &[3, 4, 5]);
        assert!(std::ptr::eq(ds.pixels().as_ptr(), px.as_ptr()), "pixels were copied");
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
                expected: ImageShape::new(3, 1, 1),
                found: ImageShape::new(1, 3, 1)
            })
        );
        assert!(e.to_string().contains("expected 3x1x1 images, got 1x3x1"), "{e}");
        let joined = a.concat(&a).expect("same names and shape");
        assert_eq!(joined.len(), 8);
        assert_eq!(joined.row(7), a.row(3));
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
        assert_eq!(s.row(0), &[9, 10, 11]);
        assert_eq!(s.labels(), vec![0, 1]);
        let t = s.select(&[1]).expect("in range");
        assert_eq!(t.indices(), &[1]);
        assert!(ds.subset(vec![4]).is_err());
        assert!(ds.all().is_identity());
        assert!(!s.is_identity());
        assert_eq!(s.to_contiguous(), vec![9, 10, 11, 3, 4, 5]);
    }
}
