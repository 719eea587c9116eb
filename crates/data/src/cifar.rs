//! CIFAR-10 and CIFAR-100 binary readers, and a CIFAR-10 binary writer.
//!
//! A CIFAR-10 record is 3,073 bytes: one label byte, then 1,024 red, 1,024 green and 1,024
//! blue bytes, each plane 32x32 row-major. That is exactly a [`Dataset`] row (channel-major),
//! so reading is a copy: the files are read in blocks of records, in parallel (rayon), straight
//! into the final pixel buffer. A CIFAR-100 record is 3,074 bytes: coarse label, fine label,
//! then the same 3,072 pixel bytes.
//!
//! ```
//! use imgclass_core::{ClassNames, Dataset, ImageShape};
//! use imgclass_data::{TrainTest, cifar};
//!
//! let dir = std::env::temp_dir().join(format!("imgclass-cifar-doc-{}", std::process::id()));
//! std::fs::create_dir_all(&dir).unwrap();
//! // five red images (label 0) for training, one per batch file; one blue (label 1) for test
//! let mut red = vec![0u8; 3072];
//! red[..1024].fill(255);
//! let mut blue = vec![0u8; 3072];
//! blue[2048..].fill(255);
//! let classes = ClassNames::new(["red", "blue"]);
//! let data = TrainTest {
//!     train: Dataset::new(red.repeat(5), vec![0; 5], ImageShape::CIFAR, classes.clone())?,
//!     test: Dataset::new(blue, vec![1], ImageShape::CIFAR, classes)?,
//! };
//! cifar::write_cifar10(&dir, &data)?;
//! // five training batches "as evenly as possible": one record each
//! assert_eq!(std::fs::metadata(dir.join("data_batch_1.bin")).unwrap().len(), 3073);
//! assert_eq!(std::fs::metadata(dir.join("test_batch.bin")).unwrap().len(), 3073);
//! let test = cifar::read_cifar10_batch(&dir.join("test_batch.bin"), data.test.classes())?;
//! assert_eq!(test, data.test);
//! std::fs::remove_dir_all(&dir).unwrap();
//! # Ok::<(), imgclass_data::DataError>(())
//! ```

use std::fs::File;
use std::io::{ErrorKind, Read, Seek, SeekFrom};
use std::mem::MaybeUninit;
use std::path::{Path, PathBuf};

use imgclass_core::{ClassNames, Dataset, ImageShape, Label, Values};
use rayon::prelude::*;

use crate::{DataError, TrainTest, buffer};

/// Pixel bytes of one CIFAR image (3 x 32 x 32).
pub const CIFAR_DIM: usize = 3 * 32 * 32;
/// Bytes of one CIFAR-10 record (label + pixels).
pub const CIFAR10_RECORD: usize = 1 + CIFAR_DIM;
/// Bytes of one CIFAR-100 record (coarse label + fine label + pixels).
pub const CIFAR100_RECORD: usize = 2 + CIFAR_DIM;
/// The five CIFAR-10 training batch file names, in reading order.
pub const CIFAR10_TRAIN_FILES: [&str; 5] = [
    "data_batch_1.bin",
    "data_batch_2.bin",
    "data_batch_3.bin",
    "data_batch_4.bin",
    "data_batch_5.bin",
];
/// The CIFAR-10 test batch file name.
pub const CIFAR10_TEST_FILE: &str = "test_batch.bin";
/// The CIFAR-10 class-names file name.
pub const CIFAR10_META_FILE: &str = "batches.meta.txt";

/// Records in each official CIFAR-10 batch file (the five training batches and the test batch).
pub const CIFAR10_OFFICIAL_RECORDS: usize = 10_000;

/// Checks the record counts of a `cifar-10-batches-bin` folder from the file sizes, before
/// anything is read: every batch holds a whole number of records, none is empty, and
///
/// - with `official` set, every batch holds [`CIFAR10_OFFICIAL_RECORDS`];
/// - otherwise the five training batches hold the same count give or take one (the layout
///   [`write_cifar10`] produces, and the official one): a batch off by more than one from
///   the most common count is short or long.
///
/// A short batch is [`DataError::Truncated`], a long one [`DataError::TrailingData`], both
/// naming the file with the expected and found sizes. (The reader accepts any count: a batch
/// cut to half its records used to read as a smaller, valid dataset.)
pub fn check_cifar10_batches(dir: &Path, official: bool) -> Result<(), DataError> {
    let record = CIFAR10_RECORD as u64;
    let mut counts = Vec::with_capacity(6);
    for f in CIFAR10_TRAIN_FILES.iter().chain([&CIFAR10_TEST_FILE]) {
        let path = dir.join(f);
        let size = std::fs::metadata(&path).map_err(|e| DataError::io(&path, e))?.len();
        if size % record != 0 {
            return Err(DataError::BadSize { path, size, record: CIFAR10_RECORD });
        }
        if size == 0 {
            return Err(DataError::EmptyFile { path });
        }
        counts.push((path, size / record));
    }
    let (train, test) = counts.split_at(5);
    let reference = if official {
        CIFAR10_OFFICIAL_RECORDS as u64
    } else {
        // the most common training count (ties: the larger)
        let mut best = (0usize, 0u64);
        for (_, c) in train {
            let n = train.iter().filter(|(_, d)| d == c).count();
            if (n, *c) > best {
                best = (n, *c);
            }
        }
        best.1
    };
    let tolerance = if official { 0 } else { 1 };
    let mut checks: Vec<&(PathBuf, u64)> = train.iter().collect();
    if official {
        checks.extend(test);
    }
    for (path, c) in checks {
        let (expected, found) = (reference * record, c * record);
        if *c + tolerance < reference {
            return Err(DataError::Truncated { path: path.clone(), expected, found });
        }
        if *c > reference + tolerance {
            return Err(DataError::TrailingData { path: path.clone(), expected, found });
        }
    }
    Ok(())
}

/// Records handled by one parallel task (about 3 MB of CIFAR-10).
const BLOCK_RECORDS: usize = 1024;
/// Records read per `read` call inside a task (about 390 KB, stays in cache).
const CHUNK_RECORDS: usize = 128;

/// Which CIFAR-100 label a dataset is built on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Cifar100Labels {
    /// The 100 fine classes (`fine_label_names.txt`, second byte of a record).
    Fine,
    /// The 20 coarse superclasses (`coarse_label_names.txt`, first byte of a record).
    Coarse,
}

/// Where the label and the pixels sit in a fixed-size record.
#[derive(Debug, Clone, Copy)]
struct Layout {
    record: usize,
    label_at: usize,
    pixels_at: usize,
}

const CIFAR10_LAYOUT: Layout = Layout { record: CIFAR10_RECORD, label_at: 0, pixels_at: 1 };

/// Reads a `cifar-10-batches-bin` folder: `data_batch_1.bin` .. `data_batch_5.bin` (in that
/// order) as the training split, `test_batch.bin` as the test split, and the class names from
/// `batches.meta.txt` (one per line, blank lines ignored).
///
/// Each batch file must be a non-empty whole number of 3,073-byte records whose label bytes
/// are below the number of names; the official files hold 10,000 records each.
pub fn read_cifar10(dir: &Path) -> Result<TrainTest, DataError> {
    let classes = read_names(&dir.join(CIFAR10_META_FILE))?;
    let train_files: Vec<PathBuf> = CIFAR10_TRAIN_FILES.iter().map(|f| dir.join(f)).collect();
    let train = read_dataset(&train_files, CIFAR10_LAYOUT, classes.clone())?;
    let test = read_dataset(&[dir.join(CIFAR10_TEST_FILE)], CIFAR10_LAYOUT, classes)?;
    tracing::debug!(dir = %dir.display(), train = train.len(), test = test.len(), "read cifar-10");
    Ok(TrainTest { train, test })
}

/// Reads one CIFAR-10 batch file (3,073-byte records) with the given class names.
pub fn read_cifar10_batch(path: &Path, classes: &ClassNames) -> Result<Dataset, DataError> {
    read_dataset(&[path.to_path_buf()], CIFAR10_LAYOUT, classes.clone())
}

/// Reads a `cifar-100-binary` folder: `train.bin` and `test.bin` (3,074-byte records: coarse
/// label, fine label, pixels) with the names of the chosen labels from
/// `fine_label_names.txt` or `coarse_label_names.txt`.
pub fn read_cifar100(dir: &Path, labels: Cifar100Labels) -> Result<TrainTest, DataError> {
    let (names_file, label_at) = match labels {
        Cifar100Labels::Fine => ("fine_label_names.txt", 1),
        Cifar100Labels::Coarse => ("coarse_label_names.txt", 0),
    };
    let classes = read_names(&dir.join(names_file))?;
    let layout = Layout { record: CIFAR100_RECORD, label_at, pixels_at: 2 };
    let train = read_dataset(&[dir.join("train.bin")], layout, classes.clone())?;
    let test = read_dataset(&[dir.join("test.bin")], layout, classes)?;
    Ok(TrainTest { train, test })
}

/// Writes `data` in the official CIFAR-10 binary layout into the existing directory `dir`:
/// the training rows split in row order into five batch files as evenly as possible
/// (`data_batch_1.bin` gets the first `ceil` share; 10,000 each for 50,000 images),
/// `test_batch.bin`, and `batches.meta.txt` (one name per line, with a trailing newline).
///
/// Needs 3x32x32 images, train and test with the same class names, 1 to 256 classes, names
/// that are non-empty single lines without surrounding blanks (so they read back unchanged),
/// and at least five training images and one test image (no batch file may be empty:
/// [`DataError::TooFewForLayout`]). Existing files of those names are replaced.
pub fn write_cifar10(dir: &Path, data: &TrainTest) -> Result<(), DataError> {
    for ds in [&data.train, &data.test] {
        if ds.image_shape() != Some(ImageShape::CIFAR) {
            return Err(DataError::NotCifarShape { found: ds.shape() });
        }
    }
    if data.train.classes() != data.test.classes() {
        return Err(DataError::SplitMismatch { what: "class names".into() });
    }
    let classes = data.train.classes();
    if classes.len() > 256 {
        return Err(DataError::TooManyClasses { n_classes: classes.len() });
    }
    if classes.is_empty() {
        return Err(DataError::EmptyNames { path: dir.join(CIFAR10_META_FILE) });
    }
    for name in classes.names() {
        if name.is_empty() || name.contains(['\n', '\r']) || name.trim() != name {
            return Err(DataError::BadClassName { name: name.clone() });
        }
    }

    // an empty batch file would not read back (`EmptyFile`): refuse before writing
    let n_batches = CIFAR10_TRAIN_FILES.len();
    if data.train.len() < n_batches {
        return Err(DataError::TooFewForLayout {
            split: "training",
            found: data.train.len(),
            min: n_batches,
            rule: "one per batch file, data_batch_1.bin to data_batch_5.bin",
        });
    }
    if data.test.is_empty() {
        return Err(DataError::TooFewForLayout {
            split: "test",
            found: 0,
            min: 1,
            rule: "test_batch.bin cannot be empty",
        });
    }

    // (file, dataset, first row, row count)
    let n = data.train.len();
    let mut jobs: Vec<(PathBuf, &Dataset, usize, usize)> = Vec::with_capacity(6);
    let mut start = 0;
    for (i, f) in CIFAR10_TRAIN_FILES.iter().enumerate() {
        let count = n / 5 + usize::from(i < n % 5);
        jobs.push((dir.join(f), &data.train, start, count));
        start += count;
    }
    jobs.push((dir.join(CIFAR10_TEST_FILE), &data.test, 0, data.test.len()));
    jobs.par_iter().try_for_each(|(path, ds, first, count)| {
        let mut bytes = Vec::with_capacity(count * CIFAR10_RECORD);
        let Values::Pixels(rows) = ds.values() else {
            return Err(DataError::NotCifarShape { found: ds.shape() });
        };
        for i in *first..first + count {
            // labels are < n_classes <= 256 (Dataset invariant), so they fit in a byte
            bytes.push(ds.label(i) as u8);
            bytes.extend_from_slice(rows.row(i));
        }
        std::fs::write(path, &bytes).map_err(|e| DataError::io(path, e))
    })?;
    let meta = dir.join(CIFAR10_META_FILE);
    let mut text = classes.names().join("\n");
    text.push('\n');
    std::fs::write(&meta, text).map_err(|e| DataError::io(&meta, e))?;
    tracing::debug!(dir = %dir.display(), train = n, test = data.test.len(), "wrote cifar-10");
    Ok(())
}

/// Reads a names file: one class name per line, surrounding blanks trimmed, blank lines
/// ignored. A missing file is [`DataError::MissingNames`]; a file naming no class is
/// [`DataError::EmptyNames`].
pub fn read_names(path: &Path) -> Result<ClassNames, DataError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == ErrorKind::NotFound => {
            return Err(DataError::MissingNames { path: path.to_path_buf() });
        }
        Err(e) => return Err(DataError::io(path, e)),
    };
    let names: Vec<&str> = text.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    if names.is_empty() {
        return Err(DataError::EmptyNames { path: path.to_path_buf() });
    }
    Ok(ClassNames::new(names))
}

/// Number of records in `path`, checking that its size is a non-zero multiple of the record.
fn record_count(path: &Path, layout: Layout) -> Result<usize, DataError> {
    let size = std::fs::metadata(path).map_err(|e| DataError::io(path, e))?.len();
    if size == 0 {
        return Err(DataError::EmptyFile { path: path.to_path_buf() });
    }
    if size % layout.record as u64 != 0 {
        return Err(DataError::BadSize { path: path.to_path_buf(), size, record: layout.record });
    }
    usize::try_from(size / layout.record as u64).map_err(|_| DataError::BadSize {
        path: path.to_path_buf(),
        size,
        record: layout.record,
    })
}

/// Reads the records of `files` (in order) into one dataset.
fn read_dataset(
    files: &[PathBuf],
    layout: Layout,
    classes: ClassNames,
) -> Result<Dataset, DataError> {
    let counts = files.iter().map(|f| record_count(f, layout)).collect::<Result<Vec<_>, _>>()?;
    let total: usize = counts.iter().sum();
    // filled in place (each page first touched by the thread that writes it) and handed to
    // the dataset without a copy
    let mut pixels = buffer::uninit(total * CIFAR_DIM);
    let mut labels: Vec<Label> = vec![0; total];

    // one task per block of records, each owning its slice of the output
    let mut tasks = Vec::new();
    let (mut px_rest, mut lb_rest) = (buffer::slots(&mut pixels), labels.as_mut_slice());
    for (path, &count) in files.iter().zip(&counts) {
        let mut first = 0;
        while first < count {
            let len = BLOCK_RECORDS.min(count - first);
            let (px, px_tail) = px_rest.split_at_mut(len * CIFAR_DIM);
            let (lb, lb_tail) = lb_rest.split_at_mut(len);
            tasks.push(Block { path, count, first, pixels: px, labels: lb });
            (px_rest, lb_rest) = (px_tail, lb_tail);
            first += len;
        }
    }
    let n_classes = classes.len();
    let results: Vec<Result<usize, DataError>> =
        tasks.into_par_iter().map(|task| task.read(layout, n_classes)).collect();
    let mut written = 0;
    for r in results {
        written += r?; // the first error in file order
    }
    let pixels = buffer::finish(pixels, written);
    Ok(Dataset::from_shared(pixels, labels.into(), ImageShape::CIFAR, classes)?)
}

/// A run of records of one file and the output slices they go to.
struct Block<'a> {
    path: &'a Path,
    /// Records in the whole file (for error messages).
    count: usize,
    /// Index of the block's first record in the file.
    first: usize,
    pixels: &'a mut [MaybeUninit<u8>],
    labels: &'a mut [Label],
}

impl Block<'_> {
    /// Reads the block; returns the number of pixel bytes written (all of `pixels`).
    fn read(self, layout: Layout, n_classes: usize) -> Result<usize, DataError> {
        let path = self.path;
        let mut file = File::open(path).map_err(|e| DataError::io(path, e))?;
        let start = (self.first * layout.record) as u64;
        file.seek(SeekFrom::Start(start)).map_err(|e| DataError::io(path, e))?;
        let mut buf = vec![0u8; CHUNK_RECORDS.min(self.labels.len()) * layout.record];
        let chunks = self
            .pixels
            .chunks_mut(CHUNK_RECORDS * CIFAR_DIM)
            .zip(self.labels.chunks_mut(CHUNK_RECORDS));
        let mut record = self.first;
        let mut written = 0;
        for (px, lb) in chunks {
            let bytes = &mut buf[..lb.len() * layout.record];
            if let Err(e) = file.read_exact(bytes) {
                return Err(if e.kind() == ErrorKind::UnexpectedEof {
                    // the file shrank after its size was checked
                    let found = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
                    DataError::Truncated {
                        path: path.to_path_buf(),
                        expected: (self.count * layout.record) as u64,
                        found,
                    }
                } else {
                    DataError::io(path, e)
                });
            }
            for ((rec, out), label) in bytes
                .chunks_exact(layout.record)
                .zip(px.chunks_exact_mut(CIFAR_DIM))
                .zip(lb.iter_mut())
            {
                let l = rec[layout.label_at];
                if usize::from(l) >= n_classes {
                    return Err(DataError::LabelOutOfRange {
                        path: path.to_path_buf(),
                        offset: (record * layout.record + layout.label_at) as u64,
                        label: Label::from(l),
                        n_classes,
                    });
                }
                *label = Label::from(l);
                written += buffer::write(out, &rec[layout.pixels_at..layout.pixels_at + CIFAR_DIM]);
                record += 1;
            }
        }
        Ok(written)
    }
}
