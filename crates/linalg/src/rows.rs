//! [`Rows`]: a read-only view of equal-length rows, either contiguous or gathered by index,
//! so a cross-validation fold is searched without copying its pixels.

use crate::LinalgError;

/// A view of `len()` rows of `dim()` elements each over a flat buffer: either every row in
/// order ([`Rows::new`]) or the rows named by an index list ([`Rows::gather`]).
///
/// ```
/// use imgclass_linalg::Rows;
/// let data = [1u8, 2, 3, 4, 5, 6];
/// let all = Rows::new(&data, 3, 2)?;
/// assert_eq!(all.row(2), &[5, 6]);
/// let some = Rows::gather(&data, 2, &[2, 0])?;
/// assert_eq!(some.len(), 2);
/// assert_eq!(some.row(0), &[5, 6]);
/// # Ok::<(), imgclass_linalg::LinalgError>(())
/// ```
#[derive(Debug)]
pub struct Rows<'a, T> {
    data: &'a [T],
    dim: usize,
    len: usize,
    index: Option<&'a [usize]>,
}

// a view is a few pointers: copyable whatever `T` is (a derive would ask `T: Copy`)
impl<T> Clone for Rows<'_, T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for Rows<'_, T> {}

/// Rows of raw `u8` pixels.
pub type RowsU8<'a> = Rows<'a, u8>;
/// Rows of `f32` features.
pub type RowsF32<'a> = Rows<'a, f32>;

impl<'a, T> Rows<'a, T> {
    /// All `n_rows` rows of `data`, which must hold exactly `n_rows * dim` elements.
    pub fn new(data: &'a [T], n_rows: usize, dim: usize) -> Result<Self, LinalgError> {
        let expected = n_rows.checked_mul(dim).ok_or(LinalgError::BufferLen {
            expected: usize::MAX,
            found: data.len(),
            n_rows,
            dim,
        })?;
        if data.len() != expected {
            return Err(LinalgError::BufferLen { expected, found: data.len(), n_rows, dim });
        }
        Ok(Self { data, dim, len: n_rows, index: None })
    }

    /// The rows of `data` (rows of `dim` elements) named by `index`, in that order (repeats
    /// allowed). Every index must be below `data.len() / dim` (any index is accepted when
    /// `dim == 0`).
    pub fn gather(data: &'a [T], dim: usize, index: &'a [usize]) -> Result<Self, LinalgError> {
        if let Some(n_rows) = data.len().checked_div(dim) {
            if data.len() != n_rows * dim {
                return Err(LinalgError::BufferLen {
                    expected: n_rows * dim,
                    found: data.len(),
                    n_rows,
                    dim,
                });
            }
            if let Some(&i) = index.iter().find(|&&i| i >= n_rows) {
                return Err(LinalgError::IndexOutOfRange { index: i, len: n_rows });
            }
        }
        Ok(Self { data, dim, len: index.len(), index: Some(index) })
    }

    /// Number of rows in the view.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when the view has no rows.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Elements per row.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Row `i` of the view. Panics if `i >= len()`, like slice indexing.
    #[inline]
    pub fn row(&self, i: usize) -> &'a [T] {
        let r = match self.index {
            Some(ix) => ix[i],
            None => {
                assert!(i < self.len, "row {i} out of range for {} rows", self.len);
                i
            }
        };
        &self.data[r * self.dim..(r + 1) * self.dim]
    }

    /// A view of rows `start..end` of this view (panics if out of range, like slicing).
    pub fn slice(&self, start: usize, end: usize) -> Self {
        assert!(start <= end && end <= self.len, "row range {start}..{end} out of 0..{}", self.len);
        match self.index {
            Some(ix) => Self { index: Some(&ix[start..end]), len: end - start, ..*self },
            None => Self {
                data: &self.data[start * self.dim..end * self.dim],
                len: end - start,
                index: None,
                dim: self.dim,
            },
        }
    }

    /// The rows in order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = &'a [T]> + 'a
    where
        T: 'a,
    {
        let this = *self;
        (0..this.len).map(move |i| this.row(i))
    }

    /// The storage the view reads (`storage.len() / dim` rows) and, for a gathered view,
    /// the storage row each view row reads.
    pub fn storage(&self) -> (&'a [T], Option<&'a [usize]>) {
        (self.data, self.index)
    }

    /// The rows as one contiguous slice, without copying, when the view is every storage
    /// row in order.
    pub fn as_contiguous(&self) -> Option<&'a [T]> {
        match self.index {
            None => Some(self.data),
            Some(ix)
                if ix.len() * self.dim == self.data.len()
                    && ix.iter().enumerate().all(|(a, &b)| a == b) =>
            {
                Some(self.data)
            }
            Some(_) => None,
        }
    }

    /// Copies the rows into one contiguous buffer (`len() * dim()` elements).
    pub fn to_contiguous(&self) -> Vec<T>
    where
        T: Copy,
    {
        if let Some(all) = self.as_contiguous() {
            return all.to_vec();
        }
        let mut out = Vec::with_capacity(self.len * self.dim);
        for i in 0..self.len {
            out.extend_from_slice(self.row(i));
        }
        out
    }

    /// The mean of every column, summed in f64 in row order (the same bits whatever the
    /// thread count); all zeros when there are no rows.
    pub fn column_means(&self) -> Vec<f64>
    where
        T: Element,
    {
        let mut acc = vec![0f64; self.dim];
        for i in 0..self.len {
            acc.iter_mut().zip(self.row(i)).for_each(|(a, &v)| *a += f64::from(v.to_f32()));
        }
        let n = self.len.max(1) as f64;
        acc.iter_mut().for_each(|a| *a /= n);
        acc
    }

    /// The rows as f32, contiguous (`len() * dim()` values; u8 converts exactly).
    pub fn to_f32(&self) -> Vec<f32>
    where
        T: Element,
    {
        let mut out = Vec::with_capacity(self.len * self.dim);
        for i in 0..self.len {
            out.extend(self.row(i).iter().map(|&v| v.to_f32()));
        }
        out
    }
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for u8 {}
    impl Sealed for f32 {}
}

/// A value type rows can hold: `u8` (pixels) or `f32` (features). Sealed.
pub trait Element: sealed::Sealed + Copy + Send + Sync + std::fmt::Debug + 'static {
    /// The value as f32 (exact for every u8).
    fn to_f32(self) -> f32;
}

impl Element for u8 {
    #[inline]
    fn to_f32(self) -> f32 {
        f32::from(self)
    }
}

impl Element for f32 {
    #[inline]
    fn to_f32(self) -> f32 {
        self
    }
}
