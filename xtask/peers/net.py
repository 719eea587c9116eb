#!/usr/bin/env python3
"""Peer benchmark for `cargo xtask bench net`: the course's numpy TwoLayerNet (CS231n
assignment 1, neural_net.py: affine - ReLU - affine - softmax, L2 on both weight matrices,
minibatch SGD with learning-rate decay per epoch) and scikit-learn's MLPClassifier (the same
sizes, sgd with momentum), timed side by side with imgclass's binary in this one process run,
on the same CIFAR-10 files and the same split (first 49,000 training images train, the last
1,000 validate, 10,000 test).

Run (from the workspace root, after `cargo build --release -p xtask`):

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE /work/venv-peers/bin/python xtask/peers/net.py \
        --ours target/release/xtask --data-dir datasets --iterations 1000

Sides:
- ours: `xtask bench net` with the given sizes (momentum 0.9 as its default; the course's
  TwoLayerNet.train is plain SGD, so ours is timed with --momentum 0 too: same updates);
- numpy: the course's code, float64 as the course runs it, and float32;
- scikit-learn: MLPClassifier(hidden_layer_sizes=(H,), solver="sgd", momentum=0.9,
  nesterovs_momentum=False, batch_size=B, learning_rate_init=lr, alpha=2*reg*B... see below),
  trained epoch by epoch (partial_fit) until its validation accuracy reaches ours, or
  --sk-max-epochs; ours is then timed to the same validation accuracy the same way (runs of
  1, 2, ... epochs until one reaches it).
Every figure comes from this one process, so all sides see the same machine load.
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


# ---- CS231n assignment 1, neural_net.py (TwoLayerNet), as the course writes it ----


class TwoLayerNet:
    def __init__(self, input_size, hidden_size, output_size, std=1e-4, dtype=np.float64, seed=0):
        rng = np.random.RandomState(seed)
        self.params = {
            "W1": (std * rng.randn(input_size, hidden_size)).astype(dtype),
            "b1": np.zeros(hidden_size, dtype=dtype),
            "W2": (std * rng.randn(hidden_size, output_size)).astype(dtype),
            "b2": np.zeros(output_size, dtype=dtype),
        }

    def loss(self, X, y=None, reg=0.0):
        W1, b1 = self.params["W1"], self.params["b1"]
        W2, b2 = self.params["W2"], self.params["b2"]
        N = X.shape[0]
        h = np.maximum(0, X.dot(W1) + b1)
        scores = h.dot(W2) + b2
        if y is None:
            return scores
        shifted = scores - scores.max(axis=1, keepdims=True)
        exp = np.exp(shifted)
        probs = exp / exp.sum(axis=1, keepdims=True)
        loss = -np.log(probs[np.arange(N), y]).sum() / N
        loss += reg * (np.sum(W1 * W1) + np.sum(W2 * W2))
        dscores = probs
        dscores[np.arange(N), y] -= 1
        dscores /= N
        grads = {}
        grads["W2"] = h.T.dot(dscores) + 2 * reg * W2
        grads["b2"] = dscores.sum(axis=0)
        dh = dscores.dot(W2.T)
        dh[h <= 0] = 0
        grads["W1"] = X.T.dot(dh) + 2 * reg * W1
        grads["b1"] = dh.sum(axis=0)
        return loss, grads

    def train(self, X, y, learning_rate, learning_rate_decay, reg, num_iters, batch_size, seed=0):
        rng = np.random.RandomState(seed)
        num_train = X.shape[0]
        iterations_per_epoch = max(num_train // batch_size, 1)
        for it in range(num_iters):
            idx = rng.choice(num_train, batch_size)
            loss, grads = self.loss(X[idx], y=y[idx], reg=reg)
            for k in self.params:
                self.params[k] -= learning_rate * grads[k]
            if it % iterations_per_epoch == 0:
                learning_rate *= learning_rate_decay

    def predict(self, X):
        return np.argmax(self.loss(X), axis=1)


def ours(binary, data_dir, a, momentum, epochs=None):
    if epochs is None:
        epochs = max(1, round(a.iterations * a.batch / 49_000))
    cmd = [
        binary, "bench", "net", "--data-dir", data_dir, "--hidden", str(a.hidden),
        "--lr", str(a.lr), "--reg", str(a.reg), "--epochs", str(epochs), "--batch", str(a.batch),
        "--momentum", str(momentum), "--decay", str(a.decay),
    ]
    t = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    wall = time.perf_counter() - t
    line = next(l for l in out.stdout.splitlines() if l.startswith("RESULT "))
    r = json.loads(line[len("RESULT "):])
    r["wall_seconds"] = wall
    return r


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--ours", required=True)
    p.add_argument("--data-dir", default="datasets")
    p.add_argument("--hidden", type=int, default=500)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--reg", type=float, default=1e-3)
    p.add_argument("--batch", type=int, default=200)
    p.add_argument("--decay", type=float, default=0.95)
    p.add_argument("--iterations", type=int, default=1000)
    p.add_argument("--sk-max-epochs", type=int, default=10)
    a = p.parse_args()
    d = os.path.join(a.data_dir, "cifar-10", "cifar-10-batches-bin")
    xtr, ytr, xte, yte = load_cifar10(d)
    x_fit, y_fit = xtr[:49_000], ytr[:49_000]
    x_val, y_val = xtr[49_000:], ytr[49_000:]
    res = {"machine_load": os.getloadavg(), "iterations": a.iterations}

    # ours first: momentum 0.9 (its default) and plain SGD (the course's update)
    for m in (0.9, 0.0):
        r = ours(a.ours, a.data_dir, a, m)
        res[f"ours_momentum_{m}"] = {
            k: r[k] for k in ("fit_seconds", "iterations", "val_accuracy", "test_accuracy")
        }
        print(f"ours momentum {m}: {r['iterations']} iterations in {r['fit_seconds']:.1f} s, "
              f"val {r['val_accuracy']:.4f}, test {r['test_accuracy']:.4f}", file=sys.stderr)
    n_iter = res["ours_momentum_0.0"]["iterations"]

    # the course's numpy TwoLayerNet: same sizes, iterations and batch; pixels minus the mean
    # image, scaled as ours (1/64)
    mean = x_fit.mean(axis=0)
    for dtype in (np.float64, np.float32):
        xf = ((x_fit - mean) / 64.0).astype(dtype)
        xv = ((x_val - mean) / 64.0).astype(dtype)
        xt = ((xte - mean) / 64.0).astype(dtype)
        net = TwoLayerNet(3072, a.hidden, 10, std=np.sqrt(2.0 / 3072), dtype=dtype)
        t = time.perf_counter()
        net.train(xf, y_fit, a.lr, a.decay, a.reg, n_iter, a.batch)
        secs = time.perf_counter() - t
        va = float((net.predict(xv) == y_val).mean())
        te = float((net.predict(xt) == yte).mean())
        name = np.dtype(dtype).name
        res[f"numpy_{name}"] = {"fit_seconds": secs, "iterations": n_iter, "val_accuracy": va,
                                "test_accuracy": te}
        print(f"numpy TwoLayerNet {name}: {n_iter} iterations in {secs:.1f} s, val {va:.4f}, "
              f"test {te:.4f}", file=sys.stderr)

    # scikit-learn's MLPClassifier until it reaches our validation accuracy
    from sklearn.neural_network import MLPClassifier

    target = res["ours_momentum_0.9"]["val_accuracy"]
    xf = ((x_fit - mean) / 64.0).astype(np.float32)
    xv = ((x_val - mean) / 64.0).astype(np.float32)
    # sklearn's alpha multiplies 0.5 * ||W||^2 / n_samples_in_batch: alpha = 2 * reg * batch
    mlp = MLPClassifier(hidden_layer_sizes=(a.hidden,), solver="sgd", momentum=0.9,
                        nesterovs_momentum=False, batch_size=a.batch, learning_rate_init=a.lr,
                        alpha=2 * a.reg * a.batch, random_state=0, shuffle=True)
    secs, reached, epochs, va = 0.0, None, 0, 0.0
    classes = np.arange(10)
    for e in range(a.sk_max_epochs):
        t = time.perf_counter()
        mlp.partial_fit(xf, y_fit, classes=classes)
        secs += time.perf_counter() - t
        epochs = e + 1
        va = float((mlp.predict(xv) == y_val).mean())
        print(f"sklearn MLPClassifier epoch {epochs}: val {va:.4f} ({secs:.1f} s)", file=sys.stderr)
        if va >= target:
            reached = secs
            break
    res["sklearn_mlp"] = {"fit_seconds": secs, "epochs": epochs, "val_accuracy": va,
                          "target_val_accuracy": target, "seconds_to_target": reached}

    # ours to the same target, as sklearn is timed: the first epoch count whose run reaches
    # it (a run of e epochs is the first e epochs of a longer one: same seed, same bits)
    full = res["ours_momentum_0.9"]
    mine = {"epochs": None, "seconds_to_target": full["fit_seconds"]}
    for e in range(1, full["iterations"] * a.batch // 49_000 + 1):
        r = ours(a.ours, a.data_dir, a, 0.9, epochs=e)
        print(f"ours momentum 0.9, {e} epochs: val {r['val_accuracy']:.4f} "
              f"({r['fit_seconds']:.1f} s)", file=sys.stderr)
        if r["val_accuracy"] >= target:
            mine = {"epochs": e, "seconds_to_target": r["fit_seconds"]}
            break
    res["ours_to_target"] = mine
    if reached is not None:
        print(f"to validation {target:.4f}: ours {mine['seconds_to_target']:.1f} s, "
              f"MLPClassifier {reached:.1f} s ({reached / mine['seconds_to_target']:.2f}x)",
              file=sys.stderr)
    print("RESULT " + json.dumps(res))


if __name__ == "__main__":
    main()
