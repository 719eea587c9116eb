//! Evaluation for imgclass: accuracy, confusion matrix, per-class metrics, hold-out and k-fold cross-validation, grid search over any Fit; JSON results
