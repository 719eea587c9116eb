//! `cargo xtask predict --model PATH [--json] [--top N] IMAGE...`: classifies PNG/JPEG files
//! with a saved model (`imgclass-model`), printing the most probable classes.
//!
//! Each image is decoded (`image` crate), converted to RGB8 (or 8-bit grey for a one-channel
//! model), resized to the model's input `H x W` with `image::imageops::FilterType::Triangle`
//! (bilinear; the same filter imgclass-data's image-folder import uses) when its size differs,
//! and stored channel-major (`C x H x W`, as CIFAR). Probabilities are the softmax of the
//! scores for a linear model and the vote shares of the `k` neighbours for k-NN.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use image::imageops::FilterType;
use imgclass_core::{Dataset, ImageShape};
use imgclass_model::SavedModel;

/// Arguments of `cargo xtask predict`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The saved model: `<name>.json`, `<name>.safetensors` or `<name>`.
    #[arg(long)]
    model: PathBuf,
    /// Print one JSON document instead of text.
    #[arg(long)]
    json: bool,
    /// How many classes to print per image.
    #[arg(long, default_value_t = 3)]
    top: usize,
    /// PNG or JPEG files of any size.
    #[arg(required = true)]
    images: Vec<PathBuf>,
}

/// One class of an image's ranking.
#[derive(Debug, serde::Serialize)]
struct Ranked {
    label: u32,
    class: String,
    probability: f32,
}

/// The ranking of one image.
#[derive(Debug, serde::Serialize)]
struct Prediction {
    image: String,
    top: Vec<Ranked>,
}

/// Decodes `path` into one channel-major row of `shape` (see the module docs).
pub fn load_image(path: &Path, shape: ImageShape) -> Result<Vec<u8>> {
    let img = image::open(path).with_context(|| format!("cannot decode {}", path.display()))?;
    let (w, h) = (
        u32::try_from(shape.width).context("model width")?,
        u32::try_from(shape.height).context("model height")?,
    );
    let plane = shape.height * shape.width;
    let resize = (img.width(), img.height()) != (w, h);
    match shape.channels {
        3 => {
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
            Ok(out)
        }
        1 => {
            let mut grey = img.to_luma8();
            if resize {
                grey = image::imageops::resize(&grey, w, h, FilterType::Triangle);
            }
            Ok(grey.into_raw())
        }
        c => bail!("the model expects {c} channels; only 1 (grey) and 3 (RGB) are supported"),
    }
}

/// The `top` most probable classes of one probability row (ties toward the smaller label).
fn rank(p: &[f32], model: &SavedModel, top: usize) -> Vec<Ranked> {
    let mut order: Vec<usize> = (0..p.len()).collect();
    order.sort_by(|&a, &b| p[b].total_cmp(&p[a]).then(a.cmp(&b)));
    order
        .into_iter()
        .take(top)
        .map(|j| Ranked {
            label: j as u32,
            class: model.classes().name(j as u32).unwrap_or("?").to_string(),
            probability: p[j],
        })
        .collect()
}

/// Runs the command.
pub fn run(args: Args) -> Result<()> {
    let (model, md) = SavedModel::load(&args.model)
        .with_context(|| format!("cannot load model {}", args.model.display()))?;
    let shape = model.shape();
    tracing::info!(kind = model.kind(), %shape, classes = model.n_classes(), dataset = %md.provenance.dataset, "loaded model");
    let mut pixels = Vec::with_capacity(args.images.len() * shape.len());
    for path in &args.images {
        pixels.extend(load_image(path, shape)?);
    }
    let n = args.images.len();
    let queries = Dataset::new(pixels, vec![0; n], shape, model.classes().clone())
        .context("building the query rows")?;
    let p = model.predict_proba(&queries.all()).context("prediction failed")?;
    let c = model.n_classes();
    let out: Vec<Prediction> = args
        .images
        .iter()
        .zip(p.chunks_exact(c))
        .map(|(path, row)| Prediction {
            image: path.display().to_string(),
            top: rank(row, &model, args.top.max(1)),
        })
        .collect();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        for pred in &out {
            let parts: Vec<String> = pred
                .top
                .iter()
                .map(|r| format!("{} {:.1}%", r.class, 100.0 * r.probability))
                .collect();
            println!("{}: {}", pred.image, parts.join(", "));
        }
    }
    Ok(())
}
