//! Rebuilding a [`LinearModel`] from its stored parts (`W`, `b`, the mean image, the input
//! scale, the input row shape and the loss), for model files written by `imgclass-model`.

use imgclass_core::RowShape;
use imgclass_loss::Loss;

use crate::{LinearError, LinearModel, TrainingReport};

impl LinearModel {
    /// A model from its parts: `w` row-major `n_classes x D`, `b` of `n_classes`, `mean` of
    /// `D = shape.dim()`, and the input scale `s` (finite, non-zero). The training report is
    /// empty. Every length is checked, so a model rebuilt from a file cannot panic later.
    ///
    /// ```
    /// use imgclass_core::{ClassNames, Dataset, ImageShape};
    /// use imgclass_linear::{LinearModel, Loss};
    ///
    /// // D = 2, C = 2: class 0 scores x0 - 100, class 1 scores x1 - 100 (mean 100, scale 1)
    /// let m = LinearModel::from_parts(
    ///     vec![1.0, 0.0, 0.0, 1.0], vec![0.0, 0.0], vec![100.0, 100.0], 1.0,
    ///     ImageShape::new(2, 1, 1), Loss::Softmax)?;
    /// let x = Dataset::new(vec![150, 20], vec![0], ImageShape::new(2, 1, 1),
    ///     ClassNames::new(["a", "b"]))?;
    /// assert_eq!(m.scores(&x.all())?, vec![50.0, -80.0]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn from_parts(
        w: Vec<f32>,
        b: Vec<f32>,
        mean: Vec<f32>,
        scale: f32,
        shape: impl Into<RowShape>,
        loss: Loss,
    ) -> Result<Self, LinearError> {
        let shape = shape.into();
        let d = shape.dim();
        let n_classes = b.len();
        if n_classes < 2 {
            return Err(LinearError::TooFewClasses { n_classes });
        }
        if mean.len() != d {
            return Err(LinearError::ShapeMismatch { expected: d, found: mean.len() });
        }
        if w.len() != n_classes.saturating_mul(d) {
            return Err(LinearError::ShapeMismatch {
                expected: n_classes.saturating_mul(d),
                found: w.len(),
            });
        }
        if !scale.is_finite() || scale == 0.0 {
            return Err(LinearError::InvalidParameter {
                name: "scale",
                value: f64::from(scale),
                reason: "must be finite and non-zero",
            });
        }
        Ok(Self::new(w, b, mean, scale, shape, n_classes, loss, TrainingReport::default()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use imgclass_core::{ImageShape, Predict};

    #[test]
    fn from_parts_checks_every_length() {
        let s = ImageShape::new(1, 1, 2);
        let ok = LinearModel::from_parts(
            vec![0.0; 4],
            vec![0.0; 2],
            vec![0.0; 2],
            1.0,
            s,
            Loss::Softmax,
        );
        assert_eq!(ok.map(|m| m.n_classes()), Ok(2));
        let bad_w = LinearModel::from_parts(
            vec![0.0; 3],
            vec![0.0; 2],
            vec![0.0; 2],
            1.0,
            s,
            Loss::Softmax,
        );
        assert_eq!(bad_w, Err(LinearError::ShapeMismatch { expected: 4, found: 3 }));
        let bad_mean = LinearModel::from_parts(
            vec![0.0; 4],
            vec![0.0; 2],
            vec![0.0; 3],
            1.0,
            s,
            Loss::Softmax,
        );
        assert_eq!(bad_mean, Err(LinearError::ShapeMismatch { expected: 2, found: 3 }));
        let one_class =
            LinearModel::from_parts(vec![0.0; 2], vec![0.0], vec![0.0; 2], 1.0, s, Loss::Softmax);
        assert_eq!(one_class, Err(LinearError::TooFewClasses { n_classes: 1 }));
        let nan = LinearModel::from_parts(
            vec![0.0; 4],
            vec![0.0; 2],
            vec![0.0; 2],
            f32::NAN,
            s,
            Loss::Softmax,
        );
        assert!(matches!(nan, Err(LinearError::InvalidParameter { name: "scale", .. })));
    }
}
