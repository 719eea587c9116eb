//! Dataset readers for imgclass: CIFAR-10/100 binary, IDX (MNIST), image folders; checksums, safe archive extraction, splits and folds, preprocessing
