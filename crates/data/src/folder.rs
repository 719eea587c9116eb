//! Image-folder reader (feature `images`): `root/{train,test}/<class>/*.{png,jpg,jpeg}`, the
//! layout of ImageNet-style folders and of `../shared/datasets/cifar10-jpeg`.
//!
//! - The class of an image is its folder's name. The training folders define the classes: in
//!   the official CIFAR-10 order when the set of names is exactly the CIFAR-10 classes, else
//!   sorted by name (the official CIFAR-10 order happens to be alphabetical too, so the two
//!   rules agree there). A test folder naming another class is [`DataError::UnknownClass`].
//! - Files are images when their extension is `png`, `jpg` or `jpeg` in any case; other files
//!   and names starting with `.` are ignored. Images come out in (label, file name) order.
//! - Images are decoded in parallel with rayon (the global pool, or a local pool of
//!   [`FolderOptions::threads`] threads) straight into the output rows, channel-major (CHW).
//! - Every image must have the same size, unless [`FolderOptions::resize`] asks for a fixed
//!   size (then images of another size are resized with a triangle filter). When some differ,
//!   the dataset's size is the one most images have, and one [`DataError::ImageSize`] lists
//!   every other image (up to [`MAX_LISTED`]), so a wrong image that sorts first does not get
//!   the correct ones blamed. Images are read as one grey channel only if all of them (train
//!   and test) are grey; otherwise every image is RGB (grey ones replicated, alpha dropped).
//!
//! ```
//! use imgclass_data::folder::{FolderOptions, read_image_folder};
//!
//! let root = std::env::temp_dir().join(format!("imgclass-folder-doc-{}", std::process::id()));
//! for (split, class, value) in [("train", "dark", 10u8), ("train", "light", 200), ("test", "dark", 20)] {
//!     let dir = root.join(split).join(class);
//!     std::fs::create_dir_all(&dir).unwrap();
//!     image::GrayImage::from_pixel(2, 1, image::Luma([value])).save(dir.join("a.png")).unwrap();
//! }
//! let data = read_image_folder(&root, &FolderOptions::default())?;
//! assert_eq!(data.train.classes().names(), ["dark", "light"]);
//! let shape = data.train.image_shape().expect("images");
//! assert_eq!((shape.channels, shape.width), (1, 2));
//! assert_eq!(data.train.pixels().map(|r| r.to_contiguous()), Some(vec![10, 10, 200, 200]));
//! assert_eq!(data.test.labels(), &[0]);
//! std::fs::remove_dir_all(&root).unwrap();
//! # Ok::<(), imgclass_data::DataError>(())
//! ```

use std::collections::BTreeSet;
use std::mem::MaybeUninit;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use image::{ColorType, DynamicImage, imageops::FilterType};
use imgclass_core::{ClassNames, Dataset, ImageShape, Label};
use rayon::prelude::*;

use crate::{DataError, TrainTest, buffer};

/// How to read an image folder.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FolderOptions {
    /// `Some((height, width))`: resize every image of another size to this size. Default
    /// `None`: every image must have the same size (else [`DataError::ImageSize`]).
    pub resize: Option<(usize, usize)>,
    /// `Some(n)`: decode on a local rayon pool of `n` threads (`0` = one per core). Default
    /// `None`: rayon's global pool.
    pub threads: Option<usize>,
}

/// Most images of another size named in one [`DataError::ImageSize`] (the count names the
/// rest).
pub const MAX_LISTED: usize = 20;

/// Reads `root/train/<class>/*` and `root/test/<class>/*` (see the module docs).
pub fn read_image_folder(root: &Path, opts: &FolderOptions) -> Result<TrainTest, DataError> {
    in_pool(opts.threads, || {
        let start = std::time::Instant::now();
        let train_dir = root.join("train");
        let test_dir = root.join("test");
        let train_classes = class_dirs(&train_dir)?;
        if train_classes.is_empty() {
            return Err(DataError::EmptyFolder { path: train_dir });
        }
        let classes = class_order(train_classes.iter().map(|(n, _)| n.as_str()));
        let train_files = image_files(&train_dir, &train_classes, &classes)?;
        let test_files = image_files(&test_dir, &class_dirs(&test_dir)?, &classes)?;
        let size = match opts.resize {
            Some(s) => s,
            None => first_size(&train_files)?,
        };
        let splits: [&[(Label, PathBuf)]; 2] = [&train_files, &test_files];
        let mut decoded = decode_all(&splits, size, opts.resize.is_some())
            .map_err(|e| size_report(e, &splits))?
            .into_iter();
        let (Some(train), Some(test)) = (decoded.next(), decoded.next()) else {
            unreachable!("decode_all returns one result per split");
        };
        let grey = train.all_grey && test.all_grey;
        let data = TrainTest {
            train: train.into_dataset(size, grey, classes.clone())?,
            test: test.into_dataset(size, grey, classes)?,
        };
        tracing::debug!(
            root = %root.display(),
            train = data.train.len(),
            test = data.test.len(),
            shape = %data.train.shape(),
            seconds = format_args!("{:.2}", start.elapsed().as_secs_f64()),
            "read image folder"
        );
        Ok(data)
    })
}

/// Reads one split folder `dir/<class>/*` whose class folders all name one of `classes`
/// (labels follow `classes`). The image size rule is that of [`read_image_folder`] within this
/// split; the result has one channel if all its images are grey.
pub fn read_split_folder(
    dir: &Path,
    classes: &ClassNames,
    opts: &FolderOptions,
) -> Result<Dataset, DataError> {
    in_pool(opts.threads, || {
        let files = image_files(dir, &class_dirs(dir)?, classes)?;
        let size = match opts.resize {
            Some(s) => s,
            None => first_size(&files)?,
        };
        let Some(decoded) = decode_all(&[&files], size, opts.resize.is_some())
            .map_err(|e| size_report(e, &[&files]))?
            .pop()
        else {
            unreachable!("decode_all returns one result per split");
        };
        let grey = decoded.all_grey;
        decoded.into_dataset(size, grey, classes.clone())
    })
}

/// Runs `f` on rayon's global pool, or on a local pool of `threads` threads.
fn in_pool<T: Send>(
    threads: Option<usize>,
    f: impl FnOnce() -> Result<T, DataError> + Send,
) -> Result<T, DataError> {
    match threads {
        None => f(),
        Some(n) => rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build()
            .map_err(|e| DataError::ThreadPool { threads: n, message: e.to_string() })?
            .install(f),
    }
}

/// The class order: official CIFAR-10 order for exactly the CIFAR-10 names, else sorted.
fn class_order<'a>(names: impl Iterator<Item = &'a str>) -> ClassNames {
    let set: BTreeSet<&str> = names.collect();
    let cifar10 = ClassNames::cifar10();
    if set == cifar10.names().iter().map(String::as_str).collect() {
        cifar10
    } else {
        ClassNames::new(set)
    }
}

/// True for names the reader skips (hidden files, `.DS_Store`, `._x.jpg`, ...).
fn hidden(name: &std::ffi::OsStr) -> bool {
    name.as_encoded_bytes().first() == Some(&b'.')
}

/// Whether a directory entry is a directory (`dir`) or a regular file (`!dir`), following
/// symbolic links; uses the type `read_dir` already knows, so plain entries cost no `stat`.
fn is_kind(entry: &std::fs::DirEntry, path: &Path, dir: bool) -> bool {
    match entry.file_type() {
        Ok(t) if !t.is_symlink() => {
            if dir {
                t.is_dir()
            } else {
                t.is_file()
            }
        }
        _ => {
            if dir {
                path.is_dir()
            } else {
                path.is_file()
            }
        }
    }
}

/// The visible sub-folders of `dir`: (name, path), sorted by name.
fn class_dirs(dir: &Path) -> Result<Vec<(String, PathBuf)>, DataError> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| DataError::io(dir, e))? {
        let entry = entry.map_err(|e| DataError::io(dir, e))?;
        let path = entry.path();
        if hidden(&entry.file_name()) || !is_kind(&entry, &path, true) {
            continue;
        }
        let name = entry
            .file_name()
            .into_string()
            .map_err(|_| DataError::NonUtf8Name { path: path.clone() })?;
        out.push((name, path));
    }
    out.sort();
    Ok(out)
}

/// The image files of the class folders, as (label, path) in (label, file name) order; a
/// folder naming no class of `classes` is [`DataError::UnknownClass`], no image at all is
/// [`DataError::EmptyFolder`] for `dir`.
fn image_files(
    dir: &Path,
    class_dirs: &[(String, PathBuf)],
    classes: &ClassNames,
) -> Result<Vec<(Label, PathBuf)>, DataError> {
    // the class folders are listed (and each sorted by file name) in parallel
    let per_class: Vec<Result<(Label, Vec<PathBuf>), DataError>> =
        class_dirs.par_iter().map(|(name, path)| list_class(name, path, classes)).collect();
    let mut groups = per_class.into_iter().collect::<Result<Vec<_>, _>>()?;
    groups.sort_by_key(|(label, _)| *label);
    let files: Vec<(Label, PathBuf)> = groups
        .into_iter()
        .flat_map(|(label, paths)| paths.into_iter().map(move |p| (label, p)))
        .collect();
    if files.is_empty() {
        return Err(DataError::EmptyFolder { path: dir.to_path_buf() });
    }
    Ok(files)
}

/// The label of class folder `path` (named `name`) and its image files sorted by file name.
fn list_class(
    name: &str,
    path: &Path,
    classes: &ClassNames,
) -> Result<(Label, Vec<PathBuf>), DataError> {
    let label = classes
        .label_of(name)
        .ok_or_else(|| DataError::UnknownClass { path: path.to_path_buf(), name: name.into() })?;
    let mut files = Vec::new();
    for entry in std::fs::read_dir(path).map_err(|e| DataError::io(path, e))? {
        let entry = entry.map_err(|e| DataError::io(path, e))?;
        let file = entry.path();
        let is_image = file
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| ["png", "jpg", "jpeg"].iter().any(|x| e.eq_ignore_ascii_case(x)));
        if is_image && !hidden(&entry.file_name()) && is_kind(&entry, &file, false) {
            files.push(file);
        }
    }
    files.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
    Ok((label, files))
}

/// Turns the first size error of a decode (which judged by the first image) into the full
/// report: the size most images have, by their headers, and every image of another size.
/// Other errors pass through.
fn size_report(e: DataError, splits: &[&[(Label, PathBuf)]]) -> DataError {
    if !matches!(e, DataError::ImageSize { .. }) {
        return e;
    }
    let files: Vec<&Path> =
        splits.iter().flat_map(|s| s.iter().map(|(_, p)| p.as_path())).collect();
    let sizes: Vec<Result<(usize, usize), DataError>> = files
        .par_iter()
        .map(|p| {
            image::image_dimensions(p)
                .map(|(w, h)| (h as usize, w as usize))
                .map_err(|err| DataError::Image { path: p.to_path_buf(), message: err.to_string() })
        })
        .collect();
    let mut known = Vec::with_capacity(sizes.len());
    for s in sizes {
        match s {
            Ok(s) => known.push(s),
            Err(err) => return err,
        }
    }
    // the most common size; ties go to the size seen first
    let mut counts: Vec<((usize, usize), usize)> = Vec::new();
    for s in &known {
        match counts.iter_mut().find(|(k, _)| k == s) {
            Some((_, n)) => *n += 1,
            None => counts.push((*s, 1)),
        }
    }
    let mut expected = known.first().copied().unwrap_or((0, 0));
    let mut best = 0;
    for (s, n) in counts {
        if n > best {
            (expected, best) = (s, n);
        }
    }
    let odd: Vec<(PathBuf, (usize, usize))> = files
        .iter()
        .zip(&known)
        .filter(|(_, s)| **s != expected)
        .map(|(p, s)| (p.to_path_buf(), *s))
        .collect();
    let n_wrong = odd.len();
    DataError::ImageSize { expected, wrong: odd.into_iter().take(MAX_LISTED).collect(), n_wrong }
}

/// (height, width) of the first image, from its header.
fn first_size(files: &[(Label, PathBuf)]) -> Result<(usize, usize), DataError> {
    let Some((_, path)) = files.first() else {
        return Err(DataError::EmptyFolder { path: PathBuf::new() });
    };
    let (w, h) = image::image_dimensions(path)
        .map_err(|e| DataError::Image { path: path.clone(), message: e.to_string() })?;
    Ok((h as usize, w as usize))
}

/// Decoded images, always 3 channels, CHW rows; `all_grey` when every source was grey.
struct Decoded {
    pixels: Arc<[u8]>,
    labels: Vec<Label>,
    all_grey: bool,
}

impl Decoded {
    /// The dataset, keeping only the first channel plane of each row when `grey`.
    fn into_dataset(
        self,
        (h, w): (usize, usize),
        grey: bool,
        classes: ClassNames,
    ) -> Result<Dataset, DataError> {
        let plane = h * w;
        if grey {
            let mut p = Vec::with_capacity(self.labels.len() * plane);
            for row in self.pixels.chunks_exact(3 * plane) {
                p.extend_from_slice(&row[..plane]);
            }
            Ok(Dataset::new(p, self.labels, ImageShape::new(1, h, w), classes)?)
        } else {
            let shape = ImageShape::new(3, h, w);
            Ok(Dataset::from_shared(self.pixels, self.labels.into(), shape, classes)?)
        }
    }
}

/// Decodes the files of every split in one parallel pass (one join, so the threads stay busy
/// across the split boundary) into 3-channel CHW rows of `h x w`, one buffer per split.
fn decode_all(
    splits: &[&[(Label, PathBuf)]],
    (h, w): (usize, usize),
    resize: bool,
) -> Result<Vec<Decoded>, DataError> {
    let row = 3 * h * w;
    if row == 0 {
        return Err(DataError::Dataset(imgclass_core::DatasetError::EmptyShape(ImageShape::new(
            3, h, w,
        ))));
    }
    // each page of the output is first touched by the thread that decodes into it
    let mut buffers: Vec<_> = splits.iter().map(|f| buffer::uninit(f.len() * row)).collect();
    let jobs: Vec<(&mut [MaybeUninit<u8>], &Path)> = buffers
        .iter_mut()
        .zip(splits)
        .flat_map(|(buf, files)| {
            buffer::slots(buf).chunks_mut(row).zip(files.iter().map(|(_, p)| p.as_path()))
        })
        .collect();
    let results: Vec<Result<bool, DataError>> =
        jobs.into_par_iter().map(|(out, path)| decode_into(path, (h, w), resize, out)).collect();
    let mut results = results.into_iter();
    let mut out = Vec::with_capacity(splits.len());
    for (buf, files) in buffers.into_iter().zip(splits) {
        let mut all_grey = true;
        for r in results.by_ref().take(files.len()) {
            all_grey &= r?; // the first error in file order
        }
        // every call returned Ok, so every row (all `row` bytes of it) was written
        let pixels = buffer::finish(buf, files.len() * row);
        out.push(Decoded { pixels, labels: files.iter().map(|(l, _)| *l).collect(), all_grey });
    }
    Ok(out)
}

/// Decodes one image into `out` (3 x h x w, CHW), writing every byte of it; returns whether
/// the source was grey.
fn decode_into(
    path: &Path,
    (h, w): (usize, usize),
    resize: bool,
    out: &mut [MaybeUninit<u8>],
) -> Result<bool, DataError> {
    let image_err = |message: String| DataError::Image { path: path.to_path_buf(), message };
    let bytes = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
    let img = image::load_from_memory(&bytes).map_err(|e| image_err(e.to_string()))?;
    let grey =
        matches!(img.color(), ColorType::L8 | ColorType::La8 | ColorType::L16 | ColorType::La16);
    let (iw, ih) = (img.width() as usize, img.height() as usize);
    let img = if (ih, iw) == (h, w) {
        img
    } else if resize {
        let (tw, th) = (
            u32::try_from(w).map_err(|e| image_err(e.to_string()))?,
            u32::try_from(h).map_err(|e| image_err(e.to_string()))?,
        );
        if grey {
            DynamicImage::ImageLuma8(image::imageops::resize(
                &img.to_luma8(),
                tw,
                th,
                FilterType::Triangle,
            ))
        } else {
            DynamicImage::ImageRgb8(image::imageops::resize(
                &img.to_rgb8(),
                tw,
                th,
                FilterType::Triangle,
            ))
        }
    } else {
        // judged against the first image here; `size_report` makes the full report
        return Err(DataError::ImageSize {
            expected: (h, w),
            wrong: vec![(path.to_path_buf(), (ih, iw))],
            n_wrong: 1,
        });
    };
    let plane = h * w;
    let pixels = if grey { img.into_luma8().into_raw() } else { img.into_rgb8().into_raw() };
    let channels = if grey { 1 } else { 3 };
    if pixels.len() != channels * plane || out.len() != 3 * plane {
        return Err(image_err(format!(
            "decoded {} bytes, expected {} for {h}x{w}",
            pixels.len(),
            channels * plane
        )));
    }
    let (r, gb) = out.split_at_mut(plane);
    let (g, b) = gb.split_at_mut(plane);
    if grey {
        for plane in [r, g, b] {
            buffer::write(plane, &pixels);
        }
    } else {
        for (((px, r), g), b) in pixels.chunks_exact(3).zip(r).zip(g).zip(b) {
            r.write(px[0]);
            g.write(px[1]);
            b.write(px[2]);
        }
    }
    Ok(grey)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn class_order_is_official_for_the_cifar10_set_else_sorted() {
        let cifar10 = ClassNames::cifar10();
        // listed in reverse order: still the official order
        assert_eq!(class_order(cifar10.names().iter().rev().map(String::as_str)), cifar10);
        assert_eq!(class_order(["b", "a", "c"].into_iter()), ClassNames::new(["a", "b", "c"]));
        // (the official CIFAR-10 order happens to be alphabetical, so sorting agrees with it)
        let mut sorted = cifar10.names().to_vec();
        sorted.sort();
        assert_eq!(sorted, cifar10.names());
    }

    #[test]
    fn hidden_names_start_with_a_dot() {
        assert!(hidden(std::ffi::OsStr::new(".DS_Store")));
        assert!(hidden(std::ffi::OsStr::new("._img.jpg")));
        assert!(!hidden(std::ffi::OsStr::new("img.jpg")));
    }
}
