"""Loads a linear model (or a pipeline of feature steps and a linear model) saved by
imgclass-model with numpy + safetensors only and prints its class scores for raw u8 rows, as
JSON on stdout:

    python3 roundtrip.py MODEL.json ROWS.bin   ->   {"scores": [[s_0, ..., s_C-1], ...]}

ROWS.bin holds N rows of D = C*H*W bytes (channel-major pixels), back to back. The scores
are s = W ((x - mean) * input_scale) + b, computed in float64 (the reference the Rust f32
scores are compared against). A pipeline's steps are applied first, in order, from their
tensors `steps.<i>.<name>`: standardize `(x - mean) / scale`; pca `(x - mean) @ components.T`,
whitened by `1 / sqrt(max(variance, 1e-6 * largest variance))`. The tensor file's size and
SHA-256 are checked against the metadata, and every tensor's dtype and shape against the
shapes and class count.
Used by xtask/tests/predict.rs; needs `python3 -m pip install numpy safetensors`.
"""
import hashlib
import json
import os
import sys

import numpy as np
from safetensors.numpy import load


def main(meta_path, rows_path):
    with open(meta_path) as f:
        meta = json.load(f)
    assert meta["format_version"] == 2, meta["format_version"]
    assert meta["kind"] == "linear", meta["kind"]
    st_path = os.path.join(os.path.dirname(meta_path), meta["tensors"])
    with open(st_path, "rb") as f:
        raw = f.read()
    assert len(raw) == meta["tensors_size"], "tensor file size differs from the metadata"
    assert hashlib.sha256(raw).hexdigest() == meta["tensors_sha256"], "sha256 differs"
    t = load(raw)
    shape = meta["input"]["image"]
    d = shape["channels"] * shape["height"] * shape["width"]
    x = np.fromfile(rows_path, dtype=np.uint8).reshape(-1, d).astype(np.float64)
    for i, step in enumerate(meta.get("steps", [])):
        spec = step["spec"]
        get = lambda name: t[f"steps.{i}.{name}"].astype(np.float64)
        if spec["kind"] == "standardize":
            x = (x - get("mean")) / get("scale")
        elif spec["kind"] == "pca":
            comps = get("components")
            assert comps.shape == (spec["components"], x.shape[1]), comps.shape
            x = (x - get("mean")) @ comps.T
            if spec["whiten"]:
                var = get("variances")
                x = x / np.sqrt(np.maximum(var, var[0] * 1e-6))
        else:
            raise SystemExit(f"unknown step kind {spec['kind']!r}")
        assert x.shape[1] == step["output"], (x.shape, step["output"])
    d = x.shape[1]
    c = len(meta["classes"])
    W, b, mean = t["W"], t["b"], t["mean"]
    assert W.dtype == np.float32 and W.shape == (c, d), (W.dtype, W.shape)
    assert b.dtype == np.float32 and b.shape == (c,), (b.dtype, b.shape)
    assert mean.dtype == np.float32 and mean.shape == (d,), (mean.dtype, mean.shape)
    scale = float(meta["params"]["input_scale"])
    xt = (x - mean.astype(np.float64)) * scale
    scores = xt @ W.astype(np.float64).T + b.astype(np.float64)
    json.dump({"scores": scores.tolist()}, sys.stdout)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
