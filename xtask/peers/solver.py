#!/usr/bin/env python3
"""Peer benchmark for `cargo xtask bench solver`: imgclass's full-batch L-BFGS against
scikit-learn's LogisticRegression (lbfgs, multinomial) and LinearSVC (squared hinge,
one-vs-rest, liblinear primal), same C, same tolerance, on the same rows, side by side in one
process run.

For each representation (standardised raw pixels, HOG + hue histogram standardised) our
binary fits first and exports the exact f32 matrices it trained on (`--export`); scikit-learn
then fits those rows (as f64) and both sides' weights are scored by ONE numpy function in f64,
`objective` below:

    F(W, b) = mean_i L_i(W x_i + b) + λ ‖W‖²,   λ = 1 / (2 C N)

which is scikit-learn's `C Σ L_i + ½‖W‖²` divided by C·N (LinearSVC also penalises its
intercept through intercept_scaling; F leaves the intercept unpenalised, as we do, so F
scores both sides by our objective).

Run (from the workspace root, after `cargo build --release -p xtask`):

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE /work/venv-peers/bin/python xtask/peers/solver.py \
        --ours $CARGO_TARGET_DIR/release/xtask --data-dir datasets --rows 10000
"""

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np


def objective(W, b, X, y, loss, lam):
    """Our objective in f64: mean loss + lam * ||W||^2 (bias unpenalised)."""
    W, b = W.astype(np.float64), b.astype(np.float64)
    S = X @ W.T + b
    n = len(y)
    rows = np.arange(n)
    if loss == "softmax":
        m = S.max(axis=1, keepdims=True)
        lse = m[:, 0] + np.log(np.exp(S - m).sum(axis=1))
        data = float((lse - S[rows, y]).mean())
    else:
        T = -np.ones_like(S)
        T[rows, y] = 1.0
        data = float((np.maximum(0.0, 1.0 - T * S) ** 2).sum(axis=1).mean())
    return data + lam * float((W * W).sum())


def ours(binary, data_dir, features, loss, rows, c, tol, max_iter, export):
    cmd = [binary, "bench", "solver", "--data-dir", data_dir, "--features", features, "--loss", loss,
           "--rows", str(rows), "--c", repr(c), "--tol", repr(tol), "--max-iterations", str(max_iter),
           "--export", export]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    line = next(l for l in out.splitlines() if l.startswith("RESULT "))
    return json.loads(line[len("RESULT "):])


def load(export):
    x = np.load(os.path.join(export, "train_x.npy")).astype(np.float64)
    y = np.load(os.path.join(export, "train_y.npy")).astype(np.int64)
    xt = np.load(os.path.join(export, "test_x.npy")).astype(np.float64)
    yt = np.load(os.path.join(export, "test_y.npy")).astype(np.int64)
    return x, y, xt, yt


def main():
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", default=os.environ.get("IMGCLASS_DATA_DIR", os.path.join(root, "datasets")))
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(root, "target"))
    p.add_argument("--ours", default=os.path.join(target, "release", "xtask"))
    p.add_argument("--rows", type=int, default=10000, help="training rows (first N of 50,000)")
    p.add_argument("--c", type=float, default=1.0)
    p.add_argument("--tol", type=float, default=1e-6, help="both sides' tolerance")
    p.add_argument("--svc-intercept-scaling", type=float, default=1.0,
                   help="LinearSVC's intercept_scaling (primal): it penalises the intercept as a weight on a "
                        "constant feature of this value, ours leaves the bias free; a large value (e.g. 30) makes "
                        "the penalty on b vanish (1/2 (b/s)^2), so both solve the same problem")
    p.add_argument("--svc-tol", type=float, default=None,
                   help="LinearSVC's tolerance (default: --tol; liblinear's own stopping rule, not max |grad|)")
    p.add_argument("--max-iter", type=int, default=5000)
    p.add_argument("--features", default="hog-hsv,pixels")
    p.add_argument("--losses", default="softmax,l2-svm")
    p.add_argument("--work", default="/tmp/imgclass-solver-peer")
    p.add_argument("--json", default=None, help="write all figures here")
    a = p.parse_args()
    from sklearn.linear_model import LogisticRegression
    from sklearn.svm import LinearSVC

    results = []
    for features in a.features.split(","):
        export = os.path.join(a.work, f"{features}-{a.rows}")
        for loss in a.losses.split(","):
            r = ours(a.ours, a.data_dir, features, loss, a.rows, a.c, a.tol, a.max_iter, export)
            x, y, xt, yt = load(export)
            n = len(y)
            lam = 1.0 / (2.0 * a.c * n)
            W = np.load(os.path.join(export, "W.npy")).astype(np.float64)
            b = np.load(os.path.join(export, "b.npy")).astype(np.float64)
            mean = np.load(os.path.join(export, "mean.npy")).astype(np.float64)
            # our scores are W (x - mean) + b: the same affine map as W x + (b - W mean)
            b_eff = b - W @ mean
            if loss == "softmax":
                clf = LogisticRegression(C=a.c, solver="lbfgs", tol=a.tol, max_iter=a.max_iter)
                obj_loss = "softmax"
            elif loss == "l2-svm-dcd":
                # liblinear's dual coordinate descent: the same algorithm, bias penalised as
                # ours, and the same stopping rule (projected-gradient spread <= tol)
                clf = LinearSVC(C=a.c, loss="squared_hinge", penalty="l2", dual=True, tol=a.tol,
                                max_iter=a.max_iter)
                obj_loss = "l2-svm"
            else:
                svc_tol = a.tol if a.svc_tol is None else a.svc_tol
                clf = LinearSVC(C=a.c, loss="squared_hinge", penalty="l2", dual=False, tol=svc_tol,
                                max_iter=a.max_iter, intercept_scaling=a.svc_intercept_scaling)
                obj_loss = "l2-svm"
            t0 = time.perf_counter()
            clf.fit(x, y)
            sk_s = time.perf_counter() - t0
            sk_iter = int(np.max(clf.n_iter_))
            sk_obj = objective(clf.coef_, clf.intercept_, x, y, obj_loss, lam)
            our_obj = objective(W, b_eff, x, y, obj_loss, lam)
            sk_acc = float((clf.predict(xt) == yt).mean())
            our_acc = float(((xt @ W.T + b_eff).argmax(axis=1) == yt).mean())
            rel = (our_obj - sk_obj) / abs(sk_obj)
            sk_tol = clf.get_params()["tol"]
            row = dict(features=features, loss=loss, rows=n, dim=x.shape[1], C=a.c, lam=lam, tol=a.tol, sklearn_tol=sk_tol,
                       sklearn_intercept_scaling=clf.get_params().get("intercept_scaling"),
                       ours_seconds=r["fit_seconds"], ours_iterations=r["iterations"],
                       ours_evaluations=r["evaluations"], ours_stop=r["stop"],
                       ours_gradient=r["gradient_norm"], ours_objective_own=r["objective"],
                       ours_objective=our_obj, ours_test=our_acc, ours_test_rust=r["test_accuracy"],
                       sklearn=type(clf).__name__, sklearn_seconds=sk_s, sklearn_iterations=sk_iter,
                       sklearn_objective=sk_obj, sklearn_test=sk_acc, objective_rel_diff=rel,
                       speedup=sk_s / r["fit_seconds"], load=os.getloadavg())
            results.append(row)
            print(f"{features:8s} {loss:8s} n={n} d={x.shape[1]} C={a.c:g} tol={a.tol:g}: "
                  f"ours {r['fit_seconds']:7.2f} s {r['iterations']:4d} it ({r['stop']}) F={our_obj:.10f} test {100*our_acc:5.2f} % | "
                  f"{type(clf).__name__} (tol {sk_tol:g}) {sk_s:7.2f} s {sk_iter:4d} it F={sk_obj:.10f} test {100*sk_acc:5.2f} % | "
                  f"(F_ours - F_sk)/F_sk {rel:+.2e}, speed-up {sk_s / r['fit_seconds']:.1f}x, load {os.getloadavg()[0]:.2f}",
                  flush=True)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(results, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
