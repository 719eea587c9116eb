//! Fuzzes the model-file parser (`imgclass_model::parse`: JSON metadata + safetensors).
//!
//! Input: `json_len: u32 LE`, then `json_len` bytes of metadata, then the tensor file. The
//! first call parses the bytes as they are; when the metadata is a JSON object, a second call
//! first patches its `tensors_size` and `tensors_sha256` to match the tensor bytes, so the
//! fuzzer gets past the checksum into the safetensors parser and the dtype/shape checks.
//! A successful parse must give a model that predicts on a zero image without panicking.
#![no_main]

use std::path::Path;

use imgclass_core::{Dataset, Label, RowShape};
use libfuzzer_sys::fuzz_target;
use sha2::Digest;

fn check(json: &[u8], tensors: &[u8]) {
    let Ok((model, md)) =
        imgclass_model::parse(Path::new("m.json"), json, Path::new("m.safetensors"), tensors)
    else {
        return;
    };
    assert_eq!(model.classes(), &md.classes);
    let shape = model.shape();
    // keep the probe cheap: only models with small inputs
    if shape.dim() > 1 << 16 {
        return;
    }
    let x = match shape {
        RowShape::Image(s) => Dataset::new(vec![0; s.len()], vec![0 as Label], s, md.classes.clone()),
        RowShape::Features(d) => {
            Dataset::from_features(vec![0.0; d], d, vec![0 as Label], md.classes.clone())
        }
    };
    if let Ok(x) = x {
        // extreme but finite weights may overflow the scores: an error is fine, a panic not
        if let Ok(p) = model.predict_proba(&x.all()) {
            assert_eq!(p.len(), model.n_classes());
        }
    }
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 4 {
        return;
    }
    let n = u32::from_le_bytes([data[0], data[1], data[2], data[3]]) as usize;
    let rest = &data[4..];
    let (json, tensors) = rest.split_at(n.min(rest.len()));
    check(json, tensors);
    if let Ok(serde_json::Value::Object(mut obj)) = serde_json::from_slice(json) {
        let hex: String =
            sha2::Sha256::digest(tensors).iter().map(|b| format!("{b:02x}")).collect();
        obj.insert("tensors_sha256".into(), hex.into());
        obj.insert("tensors_size".into(), tensors.len().into());
        if let Ok(patched) = serde_json::to_vec(&obj) {
            check(&patched, tensors);
        }
    }
});
