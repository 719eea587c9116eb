//! `cargo xtask predict --model PATH [--json] [--top N] IMAGE...`: classifies PNG/JPEG files
//! with a saved model (`imgclass-model`: a classifier, or a pipeline of feature steps and a
//! classifier, which takes raw images the same way), printing the most likely classes.
//!
//! Each image is decoded (`image` crate), converted to RGB8 (or 8-bit grey for a one-channel
//! model), resized to the model's input `H x W` with `image::imageops::FilterType::Triangle`
//! (bilinear; the same filter imgclass-data's image-folder import uses) when its size differs,
//! and stored channel-major (`C x H x W`, as CIFAR); a converted or resized image is named in
//! one `note:` line on stderr. What is printed per class depends on the model: the softmax
//! probability for a softmax classifier, the raw class score (not a probability) for a linear
//! SVM, and the share of the `k` neighbours' votes for k-NN (only classes that received
//! votes). An unreadable file (or a directory) is reported by name on stderr, every other
//! image is still classified, and the command then exits non-zero.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use image::imageops::FilterType;
use imgclass_core::{Dataset, ImageShape};
use imgclass_model::{Metadata, Params, SavedModel};

/// Arguments of `cargo xtask predict`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The saved model: `<name>.json`, `<name>.safetensors` or `<name>`, or a k-NN reference
    /// (`model-knn-ref.json`, whose training data is read again and checked).
    #[arg(long)]
    model: PathBuf,
    /// Print one JSON document instead of text.
    #[arg(long)]
    json: bool,
    /// How many classes to print per image (at most; at least 1).
    #[arg(long, default_value_t = 3, value_parser = parse_top)]
    top: usize,
    /// PNG or JPEG files of any size.
    #[arg(required = true)]
    images: Vec<PathBuf>,
}

/// `--top`: a whole number of classes, at least 1 (0 used to print one class silently).
fn parse_top(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(0) => Err("must be at least 1 (the classes printed per image)".into()),
        Ok(n) => Ok(n),
        Err(e) => Err(e.to_string()),
    }
}

/// What the numbers printed for a class are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Measure {
    /// Softmax probabilities (linear softmax classifier).
    Probability,
    /// Raw class scores `Wx + b` (linear SVM): not probabilities.
    Score,
    /// The share of the `k` neighbours' votes (k-NN); classes without votes are left out.
    Votes {
        /// Neighbours voting.
        k: usize,
    },
    /// The softmax of an ensemble's weighted sum of its members' scores.
    Combined,
}

impl Measure {
    fn of(md: &Metadata) -> Self {
        match md.params {
            Params::Linear { loss: imgclass_linear::Loss::Softmax, .. }
            | Params::Net { loss: imgclass_linear::Loss::Softmax, .. } => Self::Probability,
            Params::Linear { .. } => Self::Score,
            // an SVM-trained network's scores are printed as the softmax of its scores
            Params::Net { .. } => Self::Probability,
            Params::Knn { k, .. } => Self::Votes { k },
            Params::Ensemble { .. } => Self::Combined,
        }
    }

    /// One line saying what the printed numbers mean.
    fn legend(self) -> String {
        match self {
            Self::Probability => "softmax classifier: percentages are class probabilities".into(),
            Self::Score => "linear SVM: numbers are raw class scores (Wx + b), not probabilities; \
                 the highest score wins"
                .into(),
            Self::Votes { k } => format!(
                "k-NN, k = {k}: percentages are the shares of the {k} nearest training images' \
                 votes; only classes with votes are shown"
            ),
            Self::Combined => "ensemble: percentages are the softmax of the members' summed \
                 weighted scores (not calibrated probabilities); the highest wins"
                .into(),
        }
    }
}

/// One class of an image's ranking.
#[derive(Debug, serde::Serialize)]
struct Ranked {
    label: u32,
    class: String,
    /// Softmax probability or vote share (absent for an SVM).
    #[serde(skip_serializing_if = "Option::is_none")]
    probability: Option<f32>,
    /// Raw class score (SVM only).
    #[serde(skip_serializing_if = "Option::is_none")]
    score: Option<f32>,
}

/// The ranking of one image.
#[derive(Debug, serde::Serialize)]
struct Prediction {
    image: String,
    top: Vec<Ranked>,
}

/// A decoded image: one channel-major row, and what was done to fit the model, if anything.
pub struct Loaded {
    /// `C x H x W` u8 pixels.
    pub row: Vec<u8>,
    /// E.g. `converted RGBA to RGB, resized 200x150 to 32x32`; `None` when it already fit.
    pub adapted: Option<String>,
}

/// A colour type as a person names it.
fn mode_name(c: image::ColorType) -> String {
    use image::ColorType as C;
    match c {
        C::L8 | C::L16 => "grey".into(),
        C::La8 | C::La16 => "grey + alpha".into(),
        C::Rgb8 | C::Rgb16 | C::Rgb32F => "RGB".into(),
        C::Rgba8 | C::Rgba16 | C::Rgba32F => "RGBA".into(),
        other => format!("{other:?}"),
    }
}

/// Decodes `path` into one channel-major row of `shape` (see the module docs).
pub fn load_image(path: &Path, shape: ImageShape) -> Result<Loaded> {
    if path.is_dir() {
        bail!(
            "{} is a directory, not an image file; pass the files (e.g. {}/*.jpg)",
            path.display(),
            path.display()
        );
    }
    let img = image::open(path).with_context(|| format!("cannot decode {}", path.display()))?;
    let (w, h) = (
        u32::try_from(shape.width).context("model width")?,
        u32::try_from(shape.height).context("model height")?,
    );
    let plane = shape.height * shape.width;
    let resize = (img.width(), img.height()) != (w, h);
    let (want, is_want) = match shape.channels {
        3 => ("RGB", matches!(img.color(), image::ColorType::Rgb8)),
        1 => ("grey", matches!(img.color(), image::ColorType::L8)),
        c => bail!("the model expects {c} channels; only 1 (grey) and 3 (RGB) are supported"),
    };
    let mut changes = Vec::new();
    if !is_want {
        changes.push(format!("converted {} to {want}", mode_name(img.color())));
    }
    if resize {
        changes.push(format!("resized {}x{} to {w}x{h}", img.width(), img.height()));
    }
    let adapted = (!changes.is_empty()).then(|| changes.join(", "));
    let row = if shape.channels == 3 {
        let mut rgb = img.to_rgb8();
        if resize {
            rgb = image::imageops::resize(&rgb, w, h, FilterType::Triangle);
        }
        let raw = rgb.into_raw();
        let mut out = vec![0u8; 3 * plane];
        for (i, px) in raw.chunks_exact(3).enumerate() {
            for c in 0..3 {
                out[c * plane + i] = px[c];
            }
        }
        out
    } else {
        let mut grey = img.to_luma8();
        if resize {
            grey = image::imageops::resize(&grey, w, h, FilterType::Triangle);
        }
        grey.into_raw()
    };
    Ok(Loaded { row, adapted })
}

/// The `top` highest classes of one row of values (ties toward the smaller label); for
/// votes, only classes with a positive share.
fn rank(v: &[f32], model: &SavedModel, top: usize, measure: Measure) -> Vec<Ranked> {
    let mut order: Vec<usize> = (0..v.len()).collect();
    order.sort_by(|&a, &b| v[b].total_cmp(&v[a]).then(a.cmp(&b)));
    order
        .into_iter()
        .filter(|&j| !matches!(measure, Measure::Votes { .. }) || v[j] > 0.0)
        .take(top)
        .map(|j| Ranked {
            label: j as u32,
            class: model.classes().name(j as u32).unwrap_or("?").to_string(),
            probability: (measure != Measure::Score).then_some(v[j]),
            score: (measure == Measure::Score).then_some(v[j]),
        })
        .collect()
}

/// One image's line of text output.
fn text_line(pred: &Prediction) -> String {
    let parts: Vec<String> = pred
        .top
        .iter()
        .map(|r| match (r.probability, r.score) {
            (_, Some(s)) => format!("{} (score {s:.3})", r.class),
            (Some(p), None) => format!("{} {:.1}%", r.class, 100.0 * p),
            (None, None) => r.class.clone(),
        })
        .collect();
    format!("{}: {}", pred.image, parts.join(", "))
}

/// Runs the command.
pub fn run(args: Args) -> Result<()> {
    let (model, measure) = match crate::knn_ref::read(&args.model)? {
        Some(r) => {
            let model = r.load().with_context(|| {
                format!("cannot load the k-NN model referenced by {}", args.model.display())
            })?;
            (model, Measure::Votes { k: r.k })
        }
        None => {
            let (model, md) = SavedModel::load(&args.model)
                .with_context(|| format!("cannot load model {}", args.model.display()))?;
            (model, Measure::of(&md))
        }
    };
    let Some(shape) = model.shape().image() else {
        anyhow::bail!(
            "{} takes {}, not images: save the transforms with it as a pipeline to classify image files",
            args.model.display(),
            model.shape()
        );
    };
    tracing::debug!(kind = model.kind(), %shape, classes = model.n_classes(), "loaded model");
    let mut pixels = Vec::with_capacity(args.images.len() * shape.len());
    let mut good: Vec<&PathBuf> = Vec::with_capacity(args.images.len());
    let mut failed = 0usize;
    for path in &args.images {
        match load_image(path, shape) {
            Ok(loaded) => {
                if let Some(what) = &loaded.adapted {
                    eprintln!("note: {}: {what} (the model takes {shape})", path.display());
                }
                pixels.extend(loaded.row);
                good.push(path);
            }
            Err(e) => {
                eprintln!("error: {}", crate::error_chain(&e));
                failed += 1;
            }
        }
    }
    let n = good.len();
    let out: Vec<Prediction> = if n == 0 {
        Vec::new()
    } else {
        let queries = Dataset::new(pixels, vec![0; n], shape, model.classes().clone())
            .context("building the query rows")?;
        let values = match (model.classifier(), measure) {
            (SavedModel::Linear { model: linear, .. }, Measure::Score) => {
                // a pipeline's feature steps first, then the raw scores
                let x = model.transform(&queries.all()).context("prediction failed")?;
                linear.scores(&x).context("prediction failed")?
            }
            _ => model.predict_proba(&queries.all()).context("prediction failed")?,
        };
        let c = model.n_classes();
        good.iter()
            .zip(values.chunks_exact(c))
            .map(|(path, row)| Prediction {
                image: path.display().to_string(),
                top: rank(row, &model, args.top, measure),
            })
            .collect()
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        if n > 0 {
            eprintln!("{}", measure.legend());
        }
        for pred in &out {
            println!("{}", text_line(pred));
        }
    }
    if failed > 0 {
        bail!(
            "{failed} of {} images could not be read (named above); {n} classified",
            args.images.len()
        );
    }
    Ok(())
}
