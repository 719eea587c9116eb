#!/usr/bin/env python3
"""HOG + hue-histogram features, ours beside the course's numpy code, in one run (issue 14:
"the features at least 20x faster than the numpy reference").

The numpy side is CS231n assignment 1's `hog_feature` and `color_histogram_hsv` (verbatim,
from hog_check.py) with its `extract_features` loop, over the 50,000 training and 10,000 test
images of the binary batches, timed (one process, numpy's own threads). Our side is
`xtask bench solver --features hog-hsv`, whose `steps_seconds` is fitting and applying
`union(hog(8, 9), hue_histogram(10)) -> standardize` to the same 60,000 images (the
standardisation is extra work only on our side). Run from the workspace root after
`cargo build --release -p xtask`:

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE /work/venv-peers/bin/python \
        xtask/peers/hog_speed.py --ours target/release/xtask --data-dir datasets
"""
import argparse, json, os, subprocess, sys, time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cs231n_features import color_histogram_hsv, hog_feature  # noqa: E402


def load(d, name):
    raw = np.fromfile(os.path.join(d, name), dtype=np.uint8).reshape(-1, 3073)
    return raw[:, 1:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1).astype(np.float64)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--ours", required=True)
    p.add_argument("--data-dir", required=True)
    p.add_argument("--images", type=int, default=60000, help="numpy side: first N of train+test")
    a = p.parse_args()
    d = os.path.join(a.data_dir, "cifar-10", "cifar-10-batches-bin")
    names = [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]
    X = np.concatenate([load(d, n) for n in names])[: a.images]
    t = time.perf_counter()
    F = np.array([np.concatenate([hog_feature(x), color_histogram_hsv(x)]) for x in X])
    numpy_s = time.perf_counter() - t
    out = subprocess.run(
        [a.ours, "bench", "solver", "--data-dir", a.data_dir, "--features", "hog-hsv",
         "--rows", "50000", "--loss", "softmax"],
        check=True, capture_output=True, text=True).stdout
    res = json.loads(next(l for l in out.splitlines() if l.startswith("RESULT "))[7:])
    ours_s = res["steps_seconds"]
    per = lambda s, n: 1e6 * s / n
    print(f"numpy (course's functions): {len(X)} images, {F.shape[1]} features, {numpy_s:.2f} s "
          f"({per(numpy_s, len(X)):.0f} us per image)")
    print(f"ours (fit + apply union(hog, hue) -> standardize, {res['threads']} threads): 60000 "
          f"images, {res['dim']} features, {ours_s:.2f} s ({per(ours_s, 60000):.1f} us per image)")
    print(f"ratio: {numpy_s / len(X) / (ours_s / 60000):.1f}x per image; load "
          f"{' '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
