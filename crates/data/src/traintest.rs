//! [`TrainTest`]: the official training and test splits of a dataset, read together.

use imgclass_core::Dataset;
use imgclass_core::rng::SplitMix64;

use crate::DataError;

/// A dataset's official training and test splits (same image shape and class names).
#[derive(Debug, Clone, PartialEq)]
pub struct TrainTest {
    /// The training split.
    pub train: Dataset,
    /// The test split.
    pub test: Dataset,
}

impl TrainTest {
    /// Reorders the training rows (pixels and labels together) into a fixed seeded order;
    /// the test split is untouched.
    ///
    /// The order is `SplitMix64::new(seed).shuffle` (Fisher-Yates) applied to the row indices
    /// `0..n`: new row `i` is old row `perm[i]`. The importer (`cargo xtask fetch-data --from
    /// <image folder>`) uses it so that the five CIFAR-10 training batches each hold a fixed,
    /// class-mixed sample, as the official batches do; the same seed always gives the same
    /// batches, whatever the thread count.
    ///
    /// ```
    /// use imgclass_core::{ClassNames, Dataset, ImageShape};
    /// use imgclass_data::TrainTest;
    ///
    /// let ds = Dataset::new(vec![0, 1, 2, 3], vec![0, 1, 0, 1], ImageShape::new(1, 1, 1),
    ///     ClassNames::new(["a", "b"]))?;
    /// let mut tt = TrainTest { train: ds.clone(), test: ds };
    /// tt.shuffle_train(7)?;
    /// // each pixel value here equals its old row index, so labels follow the pixels
    /// let px = tt.train.pixels().expect("images").to_contiguous();
    /// for (p, l) in px.iter().zip(tt.train.labels()) {
    ///     assert_eq!(*l, u32::from(*p % 2));
    /// }
    /// # Ok::<(), imgclass_data::DataError>(())
    /// ```
    pub fn shuffle_train(&mut self, seed: u64) -> Result<(), DataError> {
        let n = self.train.len();
        let mut perm: Vec<usize> = (0..n).collect();
        SplitMix64::new(seed).shuffle(&mut perm);
        self.train = self.train.subset(perm)?.materialize();
        Ok(())
    }
}
