//! IDX readers (the MNIST / Fashion-MNIST file format), raw or gzip-compressed.
//!
//! An IDX file is a big-endian header then the data: the magic number `0x0000TTDD` (two zero
//! bytes, the element type `TT`, the number of dimensions `DD`), one `u32` size per dimension,
//! then the elements in row-major order. Only unsigned bytes (`TT = 0x08`) are read: images
//! have magic `0x00000803` (count, rows, cols) and labels `0x00000801` (count). A file is
//! gzip-compressed when it starts with the gzip magic `1f 8b` (the extension is not looked at);
//! offsets in errors then refer to the decompressed stream.
//!
//! ```
//! use imgclass_data::idx;
//!
//! // a 1x2x2 image file: magic 0x00000803, n = 1, rows = 2, cols = 2, then 4 pixels
//! let mut bytes = vec![0, 0, 8, 3, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 2];
//! bytes.extend([10, 20, 30, 40]);
//! let path = std::env::temp_dir().join(format!("imgclass-idx-doc-{}", std::process::id()));
//! std::fs::write(&path, &bytes).unwrap();
//! let (pixels, shape, n) = idx::read_idx_images(&path)?;
//! assert_eq!((pixels, shape.height, shape.width, n), (vec![10, 20, 30, 40], 2, 2, 1));
//! std::fs::remove_file(&path).unwrap();
//! # Ok::<(), imgclass_data::DataError>(())
//! ```

use std::io::Read;
use std::path::Path;

use byteorder::{BigEndian, ByteOrder, LittleEndian};
use imgclass_core::{ClassNames, Dataset, ImageShape, Label};

use crate::DataError;

/// Magic number of an IDX file of u8 images (3 dimensions).
pub const IDX_IMAGES_MAGIC: u32 = 0x0000_0803;
/// Magic number of an IDX file of u8 labels (1 dimension).
pub const IDX_LABELS_MAGIC: u32 = 0x0000_0801;

/// Reads an IDX image file: returns the pixels (`n * rows * cols` bytes, image after image),
/// the shape of one image (`1 x rows x cols`) and the number of images `n`.
pub fn read_idx_images(path: &Path) -> Result<(Vec<u8>, ImageShape, usize), DataError> {
    let bytes = read_maybe_gzip(path)?;
    let dims = parse_header(path, &bytes, IDX_IMAGES_MAGIC)?;
    let (n, rows, cols) = (dims[0], dims[1], dims[2]);
    let data = take_data(path, bytes, 16, [n, rows, cols])?;
    Ok((data, ImageShape::new(1, rows, cols), n))
}

/// Reads an IDX label file: one byte per label.
pub fn read_idx_labels(path: &Path) -> Result<Vec<u8>, DataError> {
    let bytes = read_maybe_gzip(path)?;
    let dims = parse_header(path, &bytes, IDX_LABELS_MAGIC)?;
    take_data(path, bytes, 8, [dims[0], 1, 1])
}

/// Reads an image file and a label file of the same count into a dataset with `classes`;
/// a count mismatch is [`DataError::CountMismatch`], a label not below `classes.len()` is
/// [`DataError::LabelOutOfRange`] with its offset in the (decompressed) label file.
pub fn read_idx_pair(
    images: &Path,
    labels: &Path,
    classes: ClassNames,
) -> Result<Dataset, DataError> {
    let (pixels, shape, n) = read_idx_images(images)?;
    let raw = read_idx_labels(labels)?;
    if raw.len() != n {
        return Err(DataError::CountMismatch {
            images: images.to_path_buf(),
            labels: labels.to_path_buf(),
            n_images: n,
            n_labels: raw.len(),
        });
    }
    let n_classes = classes.len();
    if let Some((i, &l)) = raw.iter().enumerate().find(|&(_, &l)| usize::from(l) >= n_classes) {
        return Err(DataError::LabelOutOfRange {
            path: labels.to_path_buf(),
            offset: 8 + i as u64,
            label: Label::from(l),
            n_classes,
        });
    }
    let labels = raw.into_iter().map(Label::from).collect();
    Ok(Dataset::new(pixels, labels, shape, classes)?)
}

/// The MNIST classes: the digits `"0"` .. `"9"`.
pub fn mnist_classes() -> ClassNames {
    ClassNames::new((0..10).map(|d| d.to_string()))
}

/// The Fashion-MNIST classes in label order.
pub fn fashion_mnist_classes() -> ClassNames {
    ClassNames::new([
        "T-shirt/top",
        "Trouser",
        "Pullover",
        "Dress",
        "Coat",
        "Sandal",
        "Shirt",
        "Sneaker",
        "Bag",
        "Ankle boot",
    ])
}

/// The file's bytes, decompressed when it starts with the gzip magic.
fn read_maybe_gzip(path: &Path) -> Result<Vec<u8>, DataError> {
    let raw = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
    if !raw.starts_with(&[0x1f, 0x8b]) {
        return Ok(raw);
    }
    // the gzip trailer's last four bytes hold the uncompressed size (mod 2^32): a capacity
    // hint only, so a corrupt trailer must not reserve much more than the stream can inflate
    // to (deflate expands at most ~1032:1)
    let hint = raw.len().checked_sub(4).map_or(0, |at| LittleEndian::read_u32(&raw[at..]));
    let ceiling = raw.len().saturating_mul(1032).min(1 << 30);
    let mut out = Vec::with_capacity((hint as usize).min(ceiling));
    flate2::read::GzDecoder::new(raw.as_slice())
        .read_to_end(&mut out)
        .map_err(|source| DataError::Gzip { path: path.to_path_buf(), source })?;
    Ok(out)
}

/// Checks the magic number and returns the header's dimension sizes (3 of them, unused ones 1).
fn parse_header(path: &Path, bytes: &[u8], expected: u32) -> Result<[usize; 3], DataError> {
    let n_dims = (expected & 0xff) as usize;
    let header = 4 + 4 * n_dims;
    if bytes.len() < 4 {
        return Err(DataError::Truncated {
            path: path.to_path_buf(),
            expected: header as u64,
            found: bytes.len() as u64,
        });
    }
    let magic = BigEndian::read_u32(bytes);
    if magic >> 16 != 0 || (magic & 0xff) as usize != n_dims {
        return Err(DataError::BadMagic { path: path.to_path_buf(), found: magic, expected });
    }
    let type_code = bytes[2];
    if type_code != 0x08 {
        return Err(DataError::UnsupportedType { path: path.to_path_buf(), type_code });
    }
    if bytes.len() < header {
        return Err(DataError::Truncated {
            path: path.to_path_buf(),
            expected: header as u64,
            found: bytes.len() as u64,
        });
    }
    let mut dims = [1usize; 3];
    for (d, chunk) in dims.iter_mut().zip(bytes[4..header].chunks_exact(4)) {
        *d = BigEndian::read_u32(chunk) as usize;
    }
    Ok(dims)
}

/// Strips the header and checks that exactly the promised data follows.
fn take_data(
    path: &Path,
    mut bytes: Vec<u8>,
    header: usize,
    dims: [usize; 3],
) -> Result<Vec<u8>, DataError> {
    let expected = dims
        .iter()
        .map(|&d| d as u64)
        .try_fold(1u64, u64::checked_mul)
        .and_then(|data| data.checked_add(header as u64))
        .unwrap_or(u64::MAX);
    let found = bytes.len() as u64;
    if found < expected {
        return Err(DataError::Truncated { path: path.to_path_buf(), expected, found });
    }
    if found > expected {
        return Err(DataError::TrailingData { path: path.to_path_buf(), expected, found });
    }
    bytes.drain(..header);
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_dims_are_big_endian() {
        let p = Path::new("x");
        // n = 258 (0x0102), rows = 28, cols = 1
        let h = [0, 0, 8, 3, 0, 0, 1, 2, 0, 0, 0, 28, 0, 0, 0, 1];
        assert_eq!(parse_header(p, &h, IDX_IMAGES_MAGIC).unwrap(), [258, 28, 1]);
        let l = [0, 0, 8, 1, 0, 1, 0, 0];
        assert_eq!(parse_header(p, &l, IDX_LABELS_MAGIC).unwrap(), [65536, 1, 1]);
    }

    #[test]
    fn data_size_overflow_is_truncated_not_a_panic() {
        let p = Path::new("x");
        let bytes = vec![0u8; 16];
        let dims = [usize::MAX, usize::MAX, 2];
        assert!(matches!(
            take_data(p, bytes, 16, dims),
            Err(DataError::Truncated { expected: u64::MAX, found: 16, .. })
        ));
    }
}
