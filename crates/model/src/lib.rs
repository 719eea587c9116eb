//! Model files for imgclass: save a fitted linear or k-NN classifier (with its approximate
//! index, if any) and load it back in another process, from Rust or from Python.
//!
//! A model is two files side by side (three with an approximate index):
//!
//! ```text
//! <name>.safetensors   the tensors, little-endian, readable by numpy and PyTorch:
//!                        linear: W f32 [C, D], b f32 [C], mean f32 [D]
//!                        k-NN:   train_pixels u8 [N, D], train_labels u32 [N]
//!                      header __metadata__ (keys sorted, so equal models give equal bytes):
//!                        format, format_version, image_shape ("CxHxW"), kind
//! <name>.json          format_version, kind, params, classes, image_shape, the tensor file's
//!                      name, size and SHA-256, provenance (dataset, seed, accuracies, ...)
//! <name>.ann           k-NN only, optional: the approximate index (imgclass-knn's format)
//!
//! linear scores:  s = W ((x − mean) · input_scale) + b,   x the u8 pixels as f32, D = C·H·W
//! ensemble:       s = Σ_i weight_i · s_i over members saved as their own files beside it;
//!                 its JSON lists each member's JSON file, SHA-256 and weight (no tensors)
//! ```
//!
//! Pixels are channel-major (`C x H x W`, as CIFAR stores them). Every write is atomic (a temp
//! file in the same directory, fsync, rename; the JSON last). Loading checks the version; that
//! the tensor file is a regular file of the size the JSON records, no larger than the model's
//! tensors need (before reading it: a FIFO, a device or a huge file is refused unread); its
//! SHA-256; the JSON's `image_shape` against the one the tensor file records; and every
//! tensor's dtype and shape against the JSON, so a truncated, corrupt, edited, wrong-version
//! or wrong-shape file is a typed [`ModelError`] naming the file, never a panic.
//!
//! ```
//! use imgclass_core::{ClassNames, Dataset, ImageShape};
//! use imgclass_linear::{LinearModel, Loss};
//! use imgclass_model::{Provenance, SavedModel, load_linear, save_linear};
//!
//! // D = 2, C = 2: scores are (x0 − 100, x1 − 100)
//! let m = LinearModel::from_parts(vec![1.0, 0.0, 0.0, 1.0], vec![0.0, 0.0],
//!     vec![100.0, 100.0], 1.0, ImageShape::new(2, 1, 1), Loss::Softmax)?;
//! let classes = ClassNames::new(["red", "green"]);
//! let dir = std::env::temp_dir().join(format!("imgclass-model-doc-{}", std::process::id()));
//! std::fs::create_dir_all(&dir)?;
//! let meta = Provenance { dataset: "toy".into(), ..Provenance::default() };
//! save_linear(&m, &classes, &meta, dir.join("toy"))?;
//! let (back, md) = load_linear(dir.join("toy.json"))?;
//! assert_eq!(back, m);
//! assert_eq!(md.classes, classes);
//! // the generic loader gives softmax probabilities: scores (50, −80)
//! let model = SavedModel::load(dir.join("toy"))?.0;
//! let x = Dataset::new(vec![150, 20], vec![0], ImageShape::new(2, 1, 1), classes)?;
//! let p = model.predict_proba(&x.all())?;
//! assert!((p[0] - 1.0 / (1.0 + (-130f32).exp())).abs() < 1e-6);
//! std::fs::remove_dir_all(&dir)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod error;
mod files;
mod meta;
mod saved;

pub use error::ModelError;
pub use meta::{
    AnnFile, FORMAT_VERSION, MemberRef, Metadata, Params, Provenance, StepMeta, VoteSpec,
};
pub use saved::{
    Ensemble, Member, SavedModel, load_knn, load_linear, parse, save_knn, save_knn_with_index,
    save_linear, save_pipeline,
};
