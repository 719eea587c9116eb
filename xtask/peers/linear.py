#!/usr/bin/env python3
"""Peer benchmark for `cargo xtask bench linear`: the CS231n-style vectorised numpy linear
SVM and softmax (minibatch SGD, raw pixels minus the mean image, bias trick) and
scikit-learn's LogisticRegression (lbfgs, 100 iterations, standardised pixels), timed side by
side with imgclass's binary in the same process run, on the same CIFAR-10 files and the same
split (first 49,000 training images train, last 1,000 validate, 10,000 test).

Run (from the workspace root, after `cargo build --release -p xtask`):

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE .venv/bin/python xtask/peers/linear.py \
        --ours $CARGO_TARGET_DIR/release/xtask

Every figure comes from this one process, so both sides see the same machine load.
"""

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np


def load_cifar10(d):
    def read(name):
        raw = np.fromfile(os.path.join(d, name), dtype=np.uint8).reshape(-1, 3073)
        return raw[:, 1:], raw[:, 0].astype(np.int64)

    xs, ys = zip(*[read(f"data_batch_{i}.bin") for i in range(1, 6)])
    x_train, y_train = np.concatenate(xs), np.concatenate(ys)
    x_test, y_test = read("test_batch.bin")
    return x_train, y_train, x_test, y_test


# ---- CS231n assignment 1, vectorised (linear_svm.py, softmax.py, linear_classifier.py) ----


def svm_loss_vectorized(W, X, y, reg):
    num_train = X.shape[0]
    scores = X.dot(W)
    correct = scores[np.arange(num_train), y][:, None]
    margins = np.maximum(0, scores - correct + 1)
    margins[np.arange(num_train), y] = 0
    loss = margins.sum() / num_train + reg * np.sum(W * W)
    binary = (margins > 0).astype(X.dtype)
    binary[np.arange(num_train), y] = -binary.sum(axis=1)
    dW = X.T.dot(binary) / num_train + 2 * reg * W
    return loss, dW


def softmax_loss_vectorized(W, X, y, reg):
    num_train = X.shape[0]
    scores = X.dot(W)
    scores -= scores.max(axis=1, keepdims=True)
    exp = np.exp(scores)
    probs = exp / exp.sum(axis=1, keepdims=True)
    loss = -np.log(probs[np.arange(num_train), y]).sum() / num_train + reg * np.sum(W * W)
    probs[np.arange(num_train), y] -= 1
    dW = X.T.dot(probs) / num_train + 2 * reg * W
    return loss, dW


def train_sgd(loss_fn, X, y, lr, reg, num_iters, batch_size, seed):
    rng = np.random.default_rng(seed)
    num_train, dim = X.shape
    num_classes = int(y.max()) + 1
    W = 0.001 * rng.standard_normal((dim, num_classes))
    history = []
    for _ in range(num_iters):
        idx = rng.choice(num_train, batch_size, replace=True)
        loss, grad = loss_fn(W, X[idx], y[idx], reg)
        history.append(loss)
        W -= lr * grad
    return W, history


EXTRA = []


def ours(binary, data_dir, args):
    cmd = [binary, "bench", "linear", "--data-dir", data_dir, "--out-dir", "/tmp/bench-linear-peer"] + args + EXTRA
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    line = next(l for l in out.splitlines() if l.startswith("RESULT "))
    return json.loads(line[len("RESULT "):])


def main():
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", default=os.environ.get("IMGCLASS_DATA_DIR", os.path.join(root, "datasets")))
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(root, "target"))
    p.add_argument("--ours", default=os.path.join(target, "release", "xtask"))
    p.add_argument("--lr", type=float, default=1e-7, help="numpy and ours, speed comparison")
    p.add_argument("--reg", type=float, default=2.5e4, help="numpy and ours, speed comparison")
    p.add_argument("--iters", type=int, default=1500)
    p.add_argument("--batch", type=int, default=200)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--repeat", type=int, default=1, help="repeat each numpy/ours pair")
    p.add_argument("--skip-sklearn", action="store_true")
    p.add_argument("--threads", type=int, default=0,
                   help="BLAS threads for numpy/scikit-learn and rayon threads for ours (0 = defaults)")
    p.add_argument("--numpy-threads", type=int, default=0,
                   help="BLAS threads for numpy/scikit-learn only, overriding --threads for them "
                        "(each side at its faster setting: numpy's small products have a better "
                        "median on one OpenBLAS thread here)")
    p.add_argument("--json", default=None, help="write all figures here")
    a = p.parse_args()
    blas_threads = a.numpy_threads or a.threads
    if blas_threads > 0:
        from threadpoolctl import threadpool_limits
        threadpool_limits(blas_threads)
    EXTRA.extend(["--threads", str(a.threads)] if a.threads > 0 else [])

    bin_dir = os.path.join(a.data_dir, "cifar-10", "cifar-10-batches-bin")
    x_train_u8, y_train_all, x_test_u8, y_test = load_cifar10(bin_dir)
    n = x_train_u8.shape[0]
    tr, va = slice(0, n - 1000), slice(n - 1000, n)

    # CS231n preprocessing: float64, subtract the mean training image, append a bias column
    X_train = x_train_u8[tr].astype(np.float64)
    mean = X_train.mean(axis=0)
    X_train -= mean
    X_val = x_train_u8[va].astype(np.float64) - mean
    X_test = x_test_u8.astype(np.float64) - mean
    X_train, X_val, X_test = (np.hstack([X, np.ones((X.shape[0], 1))]) for X in (X_train, X_val, X_test))
    y_train, y_val = y_train_all[tr], y_train_all[va]

    rows = []
    common = ["--lr", str(a.lr), "--reg", str(a.reg), "--iters", str(a.iters), "--batch", str(a.batch),
              "--momentum", "0", "--decay", "1", "--seed", str(a.seed)]
    for loss, fn in (("svm", svm_loss_vectorized), ("softmax", softmax_loss_vectorized)):
        for rep in range(a.repeat):
            t0 = time.perf_counter()
            W, hist = train_sgd(fn, X_train, y_train, a.lr, a.reg, a.iters, a.batch, a.seed + rep)
            np_s = time.perf_counter() - t0
            np_val = float((X_val.dot(W).argmax(1) == y_val).mean())
            np_test = float((X_test.dot(W).argmax(1) == y_test).mean())
            r = ours(a.ours, a.data_dir, ["--loss", loss] + common)
            row = dict(loss=loss, rep=rep, numpy_seconds=np_s, numpy_val=np_val, numpy_test=np_test,
                       ours_fit_seconds=r["fit_seconds"], ours_sgd_seconds=r["sgd_seconds"],
                       ours_val=r["val_accuracy"], ours_test=r["test_accuracy"],
                       speedup=np_s / r["fit_seconds"])
            rows.append(row)
            print(f"{loss:8s} {a.iters} it x {a.batch}: numpy {np_s:7.3f} s test {100*np_test:5.2f} % | "
                  f"ours fit {r['fit_seconds']:6.3f} s (sgd {r['sgd_seconds']:.3f}) test {100*r['test_accuracy']:5.2f} % "
                  f"| speed-up {row['speedup']:5.1f}x", flush=True)

    result = dict(speed=rows, threads=a.threads, blas_threads=blas_threads)
    # our softmax with the validated defaults (accuracy target and the sklearn comparison)
    best = {}
    for loss in ("svm", "softmax"):
        best[loss] = ours(a.ours, a.data_dir, ["--loss", loss, "--seed", str(a.seed)])
        b = best[loss]
        print(f"ours {loss} validated defaults (lr {b['lr']:g}, reg {b['reg']:g}, {b['iters']} it, momentum {b['momentum']}, "
              f"decay {b['decay']}): val {100*b['val_accuracy']:.2f} % test {100*b['test_accuracy']:.2f} % "
              f"fit {b['fit_seconds']:.3f} s", flush=True)
    result["ours_validated"] = best

    if not a.skip_sklearn:
        from sklearn.linear_model import LogisticRegression
        from sklearn.preprocessing import StandardScaler
        import warnings
        warnings.filterwarnings("ignore")
        t0 = time.perf_counter()
        scaler = StandardScaler().fit(x_train_u8[tr].astype(np.float64))
        Xs_train = scaler.transform(x_train_u8[tr].astype(np.float64))
        clf = LogisticRegression(solver="lbfgs", max_iter=100).fit(Xs_train, y_train)
        sk_s = time.perf_counter() - t0
        sk_test = float((clf.predict(scaler.transform(x_test_u8.astype(np.float64))) == y_test).mean())
        sk_val = float((clf.predict(scaler.transform(x_train_u8[va].astype(np.float64))) == y_val).mean())
        r = ours(a.ours, a.data_dir, ["--loss", "softmax", "--seed", str(a.seed)])
        print(f"sklearn LogisticRegression lbfgs 100 it (standardised): {sk_s:.2f} s val {100*sk_val:.2f} % test {100*sk_test:.2f} % | "
              f"ours softmax {r['fit_seconds']:.3f} s test {100*r['test_accuracy']:.2f} % | time ratio {sk_s / r['fit_seconds']:.1f}x",
              flush=True)
        result["sklearn"] = dict(seconds=sk_s, val=sk_val, test=sk_test, ours_softmax=r,
                                 ratio=sk_s / r["fit_seconds"])
    if a.json:
        with open(a.json, "w") as f:
            json.dump(result, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
