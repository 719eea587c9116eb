//! Fixture writers: CIFAR/IDX files, truncated and corrupt variants, image folders of tiny
//! PNG/JPEG files (owned by the data work).
//!
//! Every writer builds its bytes by hand from the published format (not through the readers
//! under test), so a reader test compares against an independent encoding. Pixel data comes
//! from a seeded [`SplitMix64`], so fixtures are the same on every run.

use std::io;
use std::path::{Path, PathBuf};

use imgclass_core::rng::SplitMix64;

/// Pixel bytes of one CIFAR image (3 x 32 x 32).
pub const CIFAR_DIM: usize = 3072;

/// `n` seeded random bytes.
pub fn random_bytes(n: usize, seed: u64) -> Vec<u8> {
    let mut g = SplitMix64::new(seed);
    (0..n).map(|_| g.next_u64() as u8).collect()
}

/// Labels and channel-major pixel rows of some CIFAR-shaped images.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CifarImages {
    /// One label per image.
    pub labels: Vec<u8>,
    /// `labels.len() * 3072` bytes, image after image, each R plane, G plane, B plane.
    pub pixels: Vec<u8>,
}

impl CifarImages {
    /// `n` images with seeded random pixels and labels cycling `0, 1, .., n_classes - 1`
    /// from a seeded start (so every class appears when `n >= n_classes`).
    pub fn random(n: usize, n_classes: u8, seed: u64) -> Self {
        let mut g = SplitMix64::new(seed);
        let start = g.below(u64::from(n_classes.max(1))) as usize;
        let labels = (0..n).map(|i| ((start + i) % usize::from(n_classes.max(1))) as u8).collect();
        Self { labels, pixels: random_bytes(n * CIFAR_DIM, g.next_u64()) }
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// True when there are no images.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Pixels of image `i`.
    pub fn row(&self, i: usize) -> &[u8] {
        &self.pixels[i * CIFAR_DIM..(i + 1) * CIFAR_DIM]
    }

    /// Images `range` as a new set.
    pub fn slice(&self, range: std::ops::Range<usize>) -> Self {
        Self {
            labels: self.labels[range.clone()].to_vec(),
            pixels: self.pixels[range.start * CIFAR_DIM..range.end * CIFAR_DIM].to_vec(),
        }
    }

    /// Sets the pixel at channel `c`, row `y`, column `x` of image `i` (CIFAR's layout puts it
    /// at byte `c * 1024 + y * 32 + x` of the row).
    pub fn set_pixel(&mut self, i: usize, c: usize, y: usize, x: usize, value: u8) {
        self.pixels[i * CIFAR_DIM + c * 1024 + y * 32 + x] = value;
    }
}

/// CIFAR-10 records: for each image, its label byte then its 3,072 pixel bytes.
pub fn cifar10_records(images: &CifarImages) -> Vec<u8> {
    let mut out = Vec::with_capacity(images.len() * (1 + CIFAR_DIM));
    for i in 0..images.len() {
        out.push(images.labels[i]);
        out.extend_from_slice(images.row(i));
    }
    out
}

/// CIFAR-100 records: coarse label byte, fine label byte, then 3,072 pixel bytes.
pub fn cifar100_records(coarse: &[u8], fine: &[u8], pixels: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(coarse.len() * (2 + CIFAR_DIM));
    for (i, (&c, &f)) in coarse.iter().zip(fine).enumerate() {
        out.push(c);
        out.push(f);
        out.extend_from_slice(&pixels[i * CIFAR_DIM..(i + 1) * CIFAR_DIM]);
    }
    out
}

/// A `cifar-10-batches-bin` folder written by [`write_cifar10_dir`].
#[derive(Debug, Clone)]
pub struct Cifar10Fixture {
    /// The folder.
    pub dir: PathBuf,
    /// All training images, in batch order (batch 1 first).
    pub train: CifarImages,
    /// The test images.
    pub test: CifarImages,
    /// The class names written to `batches.meta.txt`.
    pub classes: Vec<String>,
}

/// The official CIFAR-10 class names, in label order.
pub const CIFAR10_NAMES: [&str; 10] =
    ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"];

/// Writes a `cifar-10-batches-bin` folder into `dir` (created if needed): five training batches
/// of `batch_sizes` random images, a test batch of `n_test`, and `batches.meta.txt` with the
/// CIFAR-10 names followed by a blank line (as the official file ends).
pub fn write_cifar10_dir(
    dir: &Path,
    batch_sizes: [usize; 5],
    n_test: usize,
    seed: u64,
) -> io::Result<Cifar10Fixture> {
    std::fs::create_dir_all(dir)?;
    let n_train: usize = batch_sizes.iter().sum();
    let train = CifarImages::random(n_train, 10, seed);
    let test = CifarImages::random(n_test, 10, seed ^ 0x5eed);
    let mut start = 0;
    for (b, &size) in batch_sizes.iter().enumerate() {
        let part = train.slice(start..start + size);
        std::fs::write(dir.join(format!("data_batch_{}.bin", b + 1)), cifar10_records(&part))?;
        start += size;
    }
    std::fs::write(dir.join("test_batch.bin"), cifar10_records(&test))?;
    let mut meta = CIFAR10_NAMES.join("\n");
    meta.push_str("\n\n");
    std::fs::write(dir.join("batches.meta.txt"), meta)?;
    let classes = CIFAR10_NAMES.iter().map(|s| s.to_string()).collect();
    Ok(Cifar10Fixture { dir: dir.to_path_buf(), train, test, classes })
}

/// A `cifar-100-binary` folder written by [`write_cifar100_dir`].
#[derive(Debug, Clone)]
pub struct Cifar100Fixture {
    /// The folder.
    pub dir: PathBuf,
    /// Training images with their fine labels.
    pub train_fine: CifarImages,
    /// Coarse labels of the training images.
    pub train_coarse: Vec<u8>,
    /// Test images with their fine labels.
    pub test_fine: CifarImages,
    /// Coarse labels of the test images.
    pub test_coarse: Vec<u8>,
    /// The 100 fine names written (`fine_00` .. `fine_99`).
    pub fine_names: Vec<String>,
    /// The 20 coarse names written (`coarse_00` .. `coarse_19`).
    pub coarse_names: Vec<String>,
}

/// Writes a `cifar-100-binary` folder: `train.bin`, `test.bin` (fine label `f`, coarse label
/// `f / 5`), `fine_label_names.txt` and `coarse_label_names.txt`.
pub fn write_cifar100_dir(
    dir: &Path,
    n_train: usize,
    n_test: usize,
    seed: u64,
) -> io::Result<Cifar100Fixture> {
    std::fs::create_dir_all(dir)?;
    let train_fine = CifarImages::random(n_train, 100, seed);
    let test_fine = CifarImages::random(n_test, 100, seed ^ 0x5eed);
    let coarse = |l: &[u8]| l.iter().map(|&f| f / 5).collect::<Vec<u8>>();
    let (train_coarse, test_coarse) = (coarse(&train_fine.labels), coarse(&test_fine.labels));
    std::fs::write(
        dir.join("train.bin"),
        cifar100_records(&train_coarse, &train_fine.labels, &train_fine.pixels),
    )?;
    std::fs::write(
        dir.join("test.bin"),
        cifar100_records(&test_coarse, &test_fine.labels, &test_fine.pixels),
    )?;
    let fine_names: Vec<String> = (0..100).map(|i| format!("fine_{i:02}")).collect();
    let coarse_names: Vec<String> = (0..20).map(|i| format!("coarse_{i:02}")).collect();
    std::fs::write(dir.join("fine_label_names.txt"), fine_names.join("\n") + "\n")?;
    std::fs::write(dir.join("coarse_label_names.txt"), coarse_names.join("\n") + "\n")?;
    Ok(Cifar100Fixture {
        dir: dir.to_path_buf(),
        train_fine,
        train_coarse,
        test_fine,
        test_coarse,
        fine_names,
        coarse_names,
    })
}

/// An IDX u8 image file: magic `00 00 08 03`, then `n`, `rows`, `cols` as big-endian u32,
/// then `pixels` (which should be `n * rows * cols` bytes; pass fewer to make a truncated file).
pub fn idx_images_bytes(n: u32, rows: u32, cols: u32, pixels: &[u8]) -> Vec<u8> {
    let mut out = vec![0, 0, 0x08, 0x03];
    for v in [n, rows, cols] {
        out.extend_from_slice(&v.to_be_bytes());
    }
    out.extend_from_slice(pixels);
    out
}

/// An IDX u8 label file: magic `00 00 08 01`, the count as big-endian u32, then the labels.
pub fn idx_labels_bytes(labels: &[u8]) -> Vec<u8> {
    let mut out = vec![0, 0, 0x08, 0x01];
    out.extend_from_slice(&(labels.len() as u32).to_be_bytes());
    out.extend_from_slice(labels);
    out
}

/// `bytes` gzip-compressed (one member).
pub fn gzip_bytes(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    // writing into a Vec cannot fail
    enc.write_all(bytes).expect("write to Vec");
    enc.finish().expect("finish into Vec")
}

/// The first `keep` bytes of `bytes` (all of them when shorter): a truncated file.
pub fn truncated(bytes: &[u8], keep: usize) -> Vec<u8> {
    bytes[..keep.min(bytes.len())].to_vec()
}

/// Writes an RGB PNG of `width x height` from interleaved (HWC) `rgb` bytes.
pub fn write_png_rgb(path: &Path, width: u32, height: u32, rgb: &[u8]) -> io::Result<()> {
    let img = image::RgbImage::from_raw(width, height, rgb.to_vec())
        .ok_or_else(|| io::Error::other("rgb buffer does not match the size"))?;
    img.save_with_format(path, image::ImageFormat::Png).map_err(io::Error::other)
}

/// Writes a greyscale PNG of `width x height` from row-major `luma` bytes.
pub fn write_png_grey(path: &Path, width: u32, height: u32, luma: &[u8]) -> io::Result<()> {
    let img = image::GrayImage::from_raw(width, height, luma.to_vec())
        .ok_or_else(|| io::Error::other("luma buffer does not match the size"))?;
    img.save_with_format(path, image::ImageFormat::Png).map_err(io::Error::other)
}

/// Writes an RGB baseline JPEG (quality 95) of `width x height` from interleaved `rgb` bytes.
pub fn write_jpeg_rgb(path: &Path, width: u32, height: u32, rgb: &[u8]) -> io::Result<()> {
    let file = std::io::BufWriter::new(std::fs::File::create(path)?);
    image::codecs::jpeg::JpegEncoder::new_with_quality(file, 95)
        .encode(rgb, width, height, image::ExtendedColorType::Rgb8)
        .map_err(io::Error::other)
}

/// Channel-major (CHW) bytes of interleaved (HWC) RGB bytes: how a reader must store them.
pub fn hwc_to_chw(rgb: &[u8], width: usize, height: usize) -> Vec<u8> {
    let plane = width * height;
    let mut out = vec![0u8; 3 * plane];
    for p in 0..plane {
        for c in 0..3 {
            out[c * plane + p] = rgb[3 * p + c];
        }
    }
    out
}

/// One image written by [`write_png_folder`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FolderImage {
    /// `"train"` or `"test"`.
    pub split: String,
    /// The class folder name.
    pub class: String,
    /// The file name.
    pub file: String,
    /// The pixels, channel-major (CHW), as a reader must return them.
    pub chw: Vec<u8>,
}

/// Writes `root/<split>/<class>/<i>.png` RGB images of `width x height` with seeded random
/// pixels: `count` images for each `(split, class, count)`, named `img_000.png`, ... .
/// Returns what was written, in the order given.
pub fn write_png_folder(
    root: &Path,
    spec: &[(&str, &str, usize)],
    width: u32,
    height: u32,
    seed: u64,
) -> io::Result<Vec<FolderImage>> {
    let mut g = SplitMix64::new(seed);
    let mut out = Vec::new();
    for &(split, class, count) in spec {
        let dir = root.join(split).join(class);
        std::fs::create_dir_all(&dir)?;
        for i in 0..count {
            let rgb = random_bytes(3 * (width * height) as usize, g.next_u64());
            let file = format!("img_{i:03}.png");
            write_png_rgb(&dir.join(&file), width, height, &rgb)?;
            out.push(FolderImage {
                split: split.to_string(),
                class: class.to_string(),
                file,
                chw: hwc_to_chw(&rgb, width as usize, height as usize),
            });
        }
    }
    Ok(out)
}
