//! Fixture writers: CIFAR/IDX files, truncated and corrupt variants (owned by the data work).
