//! The two traits every classifier implements: hyperparameters [`Fit`] into a model, and a
//! model can [`Predict`]. `imgclass-eval` is generic over them and knows no concrete
//! classifier. Also [`argmax_label`], the one tie rule (first maximum) every classifier's
//! `predict` uses.

use crate::{Label, Subset};

/// Hyperparameters that can be fitted to training data, producing a model.
///
/// `Knn::new(5).fit(&train)` or `Linear::new(..).fit(&train)`. A parameter value is cheap to
/// clone, so a grid search is a `Vec` of them.
pub trait Fit {
    /// The fitted model.
    type Model: Predict;
    /// Why fitting failed (bad parameters for this data, non-finite values, ...).
    type Error: std::error::Error + Send + Sync + 'static;

    /// Fits the parameters to the rows of `train`.
    fn fit(&self, train: &Subset) -> Result<Self::Model, Self::Error>;
}

/// A fitted classifier.
pub trait Predict {
    /// Why prediction failed (shape mismatch, ...).
    type Error: std::error::Error + Send + Sync + 'static;

    /// Number of classes the model scores.
    fn n_classes(&self) -> usize;

    /// One predicted label for each row of `x`, in order.
    fn predict(&self, x: &Subset) -> Result<Vec<Label>, Self::Error>;
}

/// The label of the largest of a row of class scores; equal scores go to the smaller label
/// (the first maximum), and NaN never wins over a number it follows. An empty row gives 0.
///
/// ```
/// use imgclass_core::argmax_label;
/// assert_eq!(argmax_label(&[0.1f32, 0.7, 0.7, 0.2]), 1);
/// assert_eq!(argmax_label(&[3u32, 1, 3]), 0);
/// ```
pub fn argmax_label<T: PartialOrd>(row: &[T]) -> Label {
    let mut best = 0;
    for (j, v) in row.iter().enumerate() {
        if *v > row[best] {
            best = j;
        }
    }
    best as Label
}
