//! Losses with their gradients (multiclass SVM hinge, softmax cross-entropy) and regularisers (L2, L1, elastic net), plus a gradient checker
