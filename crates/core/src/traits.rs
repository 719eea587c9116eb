//! The two traits every classifier implements: hyperparameters [`Fit`] into a model, and a
//! model can [`Predict`]. `imgclass-eval` is generic over them and knows no concrete
//! classifier.

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
