//! f32 matrix products for the linear classifiers (owned by the linear-classifier work).
