"""Writes seed inputs for the fuzz targets into corpus/<target>/ (run from fuzz/ with numpy
and safetensors installed, e.g. ../.venv/bin/python seeds.py). Each seed is a small valid
file of the format, so the fuzzer starts deep inside each parser."""
import gzip, hashlib, io, json, os, struct, tarfile

import numpy as np
from safetensors.numpy import save


def put(target, name, data):
    os.makedirs(f"corpus/{target}", exist_ok=True)
    with open(f"corpus/{target}/{name}", "wb") as f:
        f.write(data)


rng = np.random.default_rng(0)
# CIFAR-10: two records (label byte + 3072 pixels); CIFAR-100: coarse, fine, 3072 pixels
put("cifar10", "two", bytes([3]) + rng.integers(0, 256, 3072, dtype=np.uint8).tobytes()
    + bytes([9]) + rng.integers(0, 256, 3072, dtype=np.uint8).tobytes())
put("cifar10", "names", b"airplane\nautomobile\n\nbird\n")
put("cifar100", "one", bytes([4, 77]) + rng.integers(0, 256, 3072, dtype=np.uint8).tobytes())
# IDX: images (magic 0x803, n=2, 3x3) and labels (magic 0x801, n=2)
images = struct.pack(">IIII", 0x803, 2, 3, 3) + bytes(range(18))
labels = struct.pack(">II", 0x801, 2) + bytes([1, 7])
put("idx", "images", images)
put("idx", "labels", labels)
put("idx_gzip", "images", b"\x00" + images)
put("idx_gzip", "labels_gz", b"\x01" + gzip.compress(labels)[2:])
# tar.gz: a directory and a file; mode 0 gzips the tar, mode 1 passes a .tar.gz through
buf = io.BytesIO()
with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as t:
    d = tarfile.TarInfo("dir")
    d.type = tarfile.DIRTYPE
    t.addfile(d)
    f = tarfile.TarInfo("dir/a.txt")
    f.size = 5
    t.addfile(f, io.BytesIO(b"hello"))
put("archive", "tar", b"\x00" + buf.getvalue())
put("archive", "targz", b"\x01" + gzip.compress(buf.getvalue()))


def model(name, kind, params, tensors, shape, classes, steps=()):
    # the tensor file records the input shape, cross-checked against the JSON's
    if isinstance(shape, int):
        record, inp = f"{shape} features", {"features": shape}
    else:
        record = "x".join(str(n) for n in shape) + " images"
        inp = {"image": {"channels": shape[0], "height": shape[1], "width": shape[2]}}
    st = save(tensors, metadata={"input": record})
    meta = {
        "format_version": 2, "kind": kind, "params": params, "classes": classes,
        "input": inp, "steps": list(steps),
        "tensors": "m.safetensors", "tensors_size": len(st),
        "tensors_sha256": hashlib.sha256(st).hexdigest(),
        "provenance": {"dataset": "seed", "seed": 1, "validation_accuracy": 0.5,
                       "test_accuracy": None, "created_by": "seeds.py", "hyperparameters": {}},
    }
    js = json.dumps(meta).encode()
    put("model", name, struct.pack("<I", len(js)) + js + st)


d = 2 * 2 * 3
model("linear", "linear", {"loss": {"name": "svm", "margin": 1.0}, "input_scale": 1.0},
      {"W": rng.standard_normal((3, d)).astype(np.float32),
       "b": np.zeros(3, np.float32), "mean": np.full(d, 100, np.float32)},
      (3, 2, 2), ["a", "b", "c"])
model("softmax", "linear", {"loss": {"name": "softmax"}, "input_scale": 0.5},
      {"W": rng.standard_normal((2, 4)).astype(np.float32),
       "b": np.ones(2, np.float32), "mean": np.zeros(4, np.float32)},
      (1, 2, 2), ["x", "y"])
model("knn", "knn", {"k": 2, "metric": "l1", "vote": "distance", "n_train": 4, "ann": None},
      {"train_pixels": rng.integers(0, 256, (4, d), dtype=np.uint8),
       "train_labels": np.array([0, 1, 2, 1], np.uint32)},
      (3, 2, 2), ["a", "b", "c"])
# a pipeline: standardize the 12 pixels, then the linear model on the 12 features
model("pipeline", "linear", {"loss": {"name": "softmax"}, "input_scale": 1.0},
      {"W": rng.standard_normal((3, d)).astype(np.float32),
       "b": np.zeros(3, np.float32), "mean": np.zeros(d, np.float32),
       "steps.0.mean": np.full(d, 100, np.float32), "steps.0.scale": np.full(d, 50, np.float32)},
      (3, 2, 2), ["a", "b", "c"],
      steps=[{"spec": {"kind": "standardize"},
              "input": {"image": {"channels": 3, "height": 2, "width": 2}}, "output": d}])
# a two-layer network on 5 features
model("net", "net", {"loss": {"name": "softmax"}, "input_scale": 1.0, "hidden": 4},
      {"W1": rng.standard_normal((4, 5)).astype(np.float32), "b1": np.zeros(4, np.float32),
       "W2": rng.standard_normal((2, 4)).astype(np.float32), "b2": np.zeros(2, np.float32),
       "mean": np.zeros(5, np.float32)},
      5, ["x", "y"])
