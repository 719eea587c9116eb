#!/usr/bin/env python3
"""The numpy/scipy peer of imgclass's k-means feature pipeline: Coates, Lee & Ng, "An Analysis
of Single-Layer Networks in Unsupervised Feature Learning" (AISTATS 2011), ported line by line
from their public MATLAB code (kmeans_demo.m, run_kmeans.m, extract_features.m, train_svm.m)
to numpy/scipy, on the CIFAR-10 binary batches. `cargo xtask bench features` runs it beside
ours on the same configuration and reads its `--json` line.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE /work/venv-peers/bin/python \
        xtask/peers/coates.py --data-dir datasets --images 3000 --patches 30000 \
        --centroids 100 --iterations 5

Phases, timed separately (seconds in the JSON):

  patches      random 6x6x3 patches, patch i from training image i mod n at a uniformly random
               position, then per-patch contrast normalisation (x - mean) / sqrt(var + 10)
               with var the UNBIASED variance (ddof = 1): MATLAB's var(), and what imgclass's
               coates.rs `normalize_patch` does too.
  whitening    ZCA as kmeans_demo.m: C = cov(patches) (unbiased), M = mean(patches),
               [V, D] = eig(C) (numpy.linalg.eigh: C is symmetric), P = V diag(1/sqrt(D + 0.1)) Vᵀ,
               patches = (patches - M) P. (Ours clamps eigenvalues below 0 to 0 before adding
               eps; MATLAB does not and neither does this: it differs only for eigenvalues
               that are rounding noise around 0, well below eps.)
  kmeans       run_kmeans.m: centroids = randn(K, D) * 0.1, Lloyd iterations over batches of
               1,000 rows (labels = argmax(X cᵀ - ||c||²/2), sums by a sparse indicator
               product), empty clusters set to 0 ("just zap empty centroids"), as ours with
               empty_cluster = "zero".
  extract_*    extract_features.m: every 6x6 patch of each image at stride 1 (27 x 27), normalised,
               whitened, triangle code f_k = max(0, mean(z) - z_k) with z the distances to the
               centroids, sum-pooled over the four quadrants (split at round(27/2) = 14) ->
               4K features; one image at a time as the MATLAB loop (--chunk for blocks of images:
               at K = 1,600 blocks of 10 and 50 were 2.5x and 5x slower per image here, single
               BLAS thread, their 729·chunk x 1,600 float64 temporaries out of cache). MATLAB takes
               sqrt of xx + cc - 2xc directly (a tiny negative gives a complex number); here,
               as in ours, it is clamped at 0 first. Quadrant order [top-left, bottom-left,
               top-right, bottom-right] and patch layout (channel, row, column) as ours, so the
               features can be compared value by value (--check).
  standardize  the training mean and standard deviation of every feature. Default (`ours`):
               the population sd (ddof = 0), 1 where it is 0, as imgclass's `standardize`
               step (scikit-learn's StandardScaler). kmeans_demo.m divides by
               sqrt(var + 0.01) with the unbiased var instead: --standardize matlab.
  svm          train_svm.m: one L-BFGS (scipy.optimize.fmin_l_bfgs_b) over all classes' weights
               of  sum_k [ 0.5 ||theta_k||² + C mean_i max(0, 1 - y_ik theta_k·x_i)² ],
               y_ik = +-1, C = 100, theta_k including the bias (kmeans_demo.m appends a column
               of ones, so the bias IS regularised); minFunc's MaxIter = MaxFunEvals = 1000
               (--max-iter). Divided by C this is  mean_i sum_k max(0, 1 - ...)² + (1/(2C)) ||theta||²,
               imgclass's OvaSquaredHinge with Reg::L2(lambda = 1/(2C) = 5e-3), whose dual
               coordinate descent also penalises the bias as a weight on a constant feature 1.
  predict      test accuracy of argmax_k theta_k·x.

Arithmetic: float64 throughout (MATLAB's double, what a faithful port does; --dtype float32 to
try single precision). The reference time of issue 14 (1,212 s on 50,000 + 10,000 images,
1,600 centroids, 400,000 patches) is for such a run.

--check DIR: DIR holds centroids.npy (K x D), mean.npy (D), whitening.npy (D x D) and
features.npy (n x 4K), imgclass's dictionary and its features of the first n training images;
this script extracts the same images with that dictionary (float64) and reports the largest
difference (max |ours - numpy| / max(1, max |numpy|)). With --check-only nothing else runs.
"""
import argparse
import json
import os
import sys
import time

import numpy as np
import scipy.sparse
from numpy.lib.stride_tricks import sliding_window_view
from scipy.optimize import fmin_l_bfgs_b


def load_cifar10(root):
    """Training and test images (n x 3 x 32 x 32 uint8) and labels of the binary batches."""
    d = os.path.join(root, "cifar-10", "cifar-10-batches-bin")
    if not os.path.isdir(d):
        d = root  # given the batches directory itself

    def read(name):
        raw = np.fromfile(os.path.join(d, name), dtype=np.uint8).reshape(-1, 3073)
        return raw[:, 1:].reshape(-1, 3, 32, 32), raw[:, 0].astype(np.int64)

    xs, ys = zip(*[read(f"data_batch_{i}.bin") for i in range(1, 6)])
    x_test, y_test = read("test_batch.bin")
    return np.concatenate(xs), np.concatenate(ys), x_test, y_test


def normalize(p, eps):
    """Per-row contrast normalisation, var unbiased (MATLAB's var, ours)."""
    return (p - p.mean(axis=1, keepdims=True)) / np.sqrt(p.var(axis=1, ddof=1, keepdims=True) + eps)


def sample_patches(x, n, rf, rng, dtype):
    """n random rf x rf patches, patch i from image i mod len(x), rows in (channel, row, column)
    order (kmeans_demo.m's loop, vectorised by fancy indexing)."""
    _, ch, h, w = x.shape
    r = rng.randint(0, h - rf + 1, n)
    c = rng.randint(0, w - rf + 1, n)
    img = np.arange(n) % x.shape[0]
    o = np.arange(rf)
    p = x[img[:, None, None, None], np.arange(ch)[None, :, None, None],
          (r[:, None] + o)[:, None, :, None], (c[:, None] + o)[:, None, None, :]]
    return p.reshape(n, ch * rf * rf).astype(dtype)


def zca(p, eps):
    """kmeans_demo.m's whitening: M, P with P = V diag(1/sqrt(D + eps)) Vᵀ."""
    c = np.cov(p, rowvar=False)
    m = p.mean(axis=0)
    d, v = np.linalg.eigh(c)
    pm = v @ np.diag(np.sqrt(1.0 / (d + eps))) @ v.T
    return m.astype(p.dtype), pm.astype(p.dtype)


def run_kmeans(x, k, iterations, rng, batch=1000, log=None):
    """run_kmeans.m."""
    x2 = np.sum(x ** 2, axis=1)
    centroids = (rng.randn(k, x.shape[1]) * 0.1).astype(x.dtype)
    for itr in range(iterations):
        c2 = 0.5 * np.sum(centroids ** 2, axis=1)
        summation = np.zeros((k, x.shape[1]), dtype=np.float64)
        counts = np.zeros(k)
        loss = 0.0
        for i in range(0, x.shape[0], batch):
            xb = x[i:i + batch]
            m = xb.shape[0]
            s = xb @ centroids.T - c2
            labels = np.argmax(s, axis=1)
            val = s[np.arange(m), labels]
            loss += np.sum(0.5 * x2[i:i + batch] - val)
            ind = scipy.sparse.csr_matrix((np.ones(m), (labels, np.arange(m))), shape=(k, m))
            summation += ind @ xb
            counts += np.bincount(labels, minlength=k)
        with np.errstate(invalid="ignore", divide="ignore"):
            centroids = (summation / counts[:, None]).astype(x.dtype)
        centroids[counts == 0] = 0  # just zap empty centroids so they don't introduce NaNs
        if log:
            log(f"  k-means iteration {itr + 1}/{iterations}: inertia {2 * loss:.4e}, "
                f"empty {int(np.sum(counts == 0))}")
    return centroids


def extract_features(x, centroids, rf, m, p, eps_norm=10.0, chunk=1, dtype=np.float64, log=None):
    """extract_features.m on images x (n x ch x h x w), `chunk` images per block."""
    n, ch, h, w = x.shape
    k = centroids.shape[0]
    pr, pc = h - rf + 1, w - rf + 1
    hr, hc = int(np.floor(pr / 2 + 0.5)), int(np.floor(pc / 2 + 0.5))  # MATLAB round
    cc = np.sum(centroids.astype(np.float64) ** 2, axis=1).astype(dtype)
    ct = np.ascontiguousarray(centroids.T.astype(dtype))
    m, p = m.astype(dtype), p.astype(dtype)
    out = np.zeros((n, 4 * k), dtype=dtype)
    for s in range(0, n, chunk):
        xb = x[s:s + chunk]
        b = xb.shape[0]
        # (b, ch, pr, pc, rf, rf) -> (b, pr, pc, ch, rf, rf): rows (channel, row, column)
        win = sliding_window_view(xb, (rf, rf), axis=(2, 3)).transpose(0, 2, 3, 1, 4, 5)
        patches = win.reshape(b * pr * pc, ch * rf * rf).astype(dtype)
        patches = normalize(patches, eps_norm)
        patches = (patches - m) @ p
        xx = np.sum(patches ** 2, axis=1, keepdims=True)
        z = np.sqrt(np.maximum(cc - 2 * (patches @ ct) + xx, 0))
        mu = z.mean(axis=1, keepdims=True)
        f = np.maximum(mu - z, 0).reshape(b, pr, pc, k)
        out[s:s + b, 0 * k:1 * k] = f[:, :hr, :hc].sum(axis=(1, 2))
        out[s:s + b, 1 * k:2 * k] = f[:, hr:, :hc].sum(axis=(1, 2))
        out[s:s + b, 2 * k:3 * k] = f[:, :hr, hc:].sum(axis=(1, 2))
        out[s:s + b, 3 * k:4 * k] = f[:, hr:, hc:].sum(axis=(1, 2))
        if log and (s + b) // 10000 > s // 10000:
            log(f"  extracting features: {s + b} / {n}")
    return out


def l2svm_loss(w, x, yy, c):
    """train_svm.m's my_l2svmloss, the bias as the last row of theta (regularised, as the
    column of ones of kmeans_demo.m)."""
    d, k = x.shape[1], yy.shape[1]
    theta = w.reshape(d + 1, k).astype(x.dtype, copy=False)  # float32 products for float32 rows
    margin = np.maximum(0, 1 - yy * (x @ theta[:d] + theta[d]))
    loss = 0.5 * np.sum(theta ** 2) + c * np.sum(np.mean(margin ** 2, axis=0))
    my = margin * yy
    g = theta.copy()
    g[:d] -= (2 * c / x.shape[0]) * (x.T @ my)
    g[d] -= (2 * c / x.shape[0]) * my.sum(axis=0)
    return loss, g.ravel().astype(np.float64)


def train_svm(x, y, c, max_iter, n_classes=10):
    """train_svm.m: one L-BFGS from zero over every class's weights (MaxIter = MaxFunEvals)."""
    yy = np.where(y[:, None] == np.arange(n_classes)[None, :], 1.0, -1.0).astype(x.dtype)
    w0 = np.zeros((x.shape[1] + 1) * n_classes)
    w, f, info = fmin_l_bfgs_b(l2svm_loss, w0, args=(x, yy, c), maxiter=max_iter, maxfun=max_iter)
    return w.reshape(x.shape[1] + 1, n_classes), f, info


def standardize_fit(x, mode):
    mean = x.mean(axis=0)
    if mode == "matlab":
        sd = np.sqrt(x.var(axis=0, ddof=1) + 0.01)
    else:
        sd = x.std(axis=0)
        sd[sd == 0] = 1.0
    return mean, sd


def blas_threads():
    try:
        from threadpoolctl import threadpool_info
        info = [i for i in threadpool_info() if i.get("user_api") == "blas"]
        return ",".join(f"{i.get('internal_api')}:{i.get('num_threads')}" for i in info) or "?"
    except Exception:  # noqa: BLE001 - informational only
        return os.environ.get("OMP_NUM_THREADS", "?")


def check(args, x_train, log):
    """Our dictionary on the first n training images: the largest difference of features."""
    ld = lambda name: np.load(os.path.join(args.check, name))  # noqa: E731
    cen, m, p, ours = ld("centroids.npy"), ld("mean.npy"), ld("whitening.npy"), ld("features.npy")
    rf = int(round(np.sqrt(cen.shape[1] / x_train.shape[1])))
    n = ours.shape[0]
    t = time.time()
    theirs = extract_features(x_train[:n], cen.astype(np.float64), rf, m.astype(np.float64),
                              p.astype(np.float64), args.normalization_eps, args.chunk, np.float64)
    diff = np.abs(ours.astype(np.float64) - theirs)
    scale = max(1.0, float(np.abs(theirs).max()))
    res = {"images": n, "max_abs_diff": float(diff.max()), "max_rel_diff": float(diff.max()) / scale,
           "max_abs_value": float(np.abs(theirs).max()), "seconds": time.time() - t}
    log(f"check on {n} images with our dictionary: max |ours - numpy| = {res['max_abs_diff']:.3e}"
        f" (relative to max |numpy| {res['max_rel_diff']:.3e})")
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data-dir", default="datasets",
                    help="holds cifar-10/cifar-10-batches-bin/ (or is that directory)")
    ap.add_argument("--images", type=int, default=50000, help="training images (the first ones)")
    ap.add_argument("--test-images", type=int, default=10000, help="test images (the first ones)")
    ap.add_argument("--centroids", type=int, default=1600)
    ap.add_argument("--patches", type=int, default=400000)
    ap.add_argument("--iterations", type=int, default=10, help="k-means iterations (paper: 50)")
    ap.add_argument("--rf", type=int, default=6, help="receptive field")
    ap.add_argument("--whitening-eps", type=float, default=0.1)
    ap.add_argument("--normalization-eps", type=float, default=10.0)
    ap.add_argument("--C", type=float, default=100.0, dest="c")
    ap.add_argument("--max-iter", type=int, default=1000, help="L-BFGS iterations and evaluations")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--chunk", type=int, default=1,
                    help="images per extraction block (1: extract_features.m's per-image loop; "
                         "larger blocks were slower here, their temporaries leave the cache)")
    ap.add_argument("--dtype", choices=["float64", "float32"], default="float64")
    ap.add_argument("--standardize", choices=["ours", "matlab"], default="ours")
    ap.add_argument("--check", help="directory of our dictionary and features to compare")
    ap.add_argument("--check-only", action="store_true")
    ap.add_argument("--json", action="store_true", help="last stdout line: the results as JSON")
    args = ap.parse_args()
    log = lambda s: print(s, file=sys.stderr, flush=True)  # noqa: E731
    dtype = np.dtype(args.dtype)

    x_train, y_train, x_test, y_test = load_cifar10(args.data_dir)
    out = {"numpy": np.__version__, "blas_threads": blas_threads(), "dtype": args.dtype,
           "standardize": args.standardize}
    if args.check:
        out["check"] = check(args, x_train, log)
    if not args.check_only:
        n, nt = min(args.images, len(x_train)), min(args.test_images, len(x_test))
        xtr, ytr, xte, yte = x_train[:n], y_train[:n], x_test[:nt], y_test[:nt]
        rng = np.random.RandomState(args.seed)
        ph = {}
        t = time.time()
        patches = normalize(sample_patches(xtr, args.patches, args.rf, rng, dtype),
                            args.normalization_eps)
        ph["patches_s"] = time.time() - t
        t = time.time()
        m, p = zca(patches, args.whitening_eps)
        patches = (patches - m) @ p
        ph["whitening_s"] = time.time() - t
        t = time.time()
        centroids = run_kmeans(patches, args.centroids, args.iterations, rng, log=log)
        ph["kmeans_s"] = time.time() - t
        del patches
        t = time.time()
        ftr = extract_features(xtr, centroids, args.rf, m, p, args.normalization_eps,
                               args.chunk, dtype, log)
        ph["extract_train_s"] = time.time() - t
        t = time.time()
        fte = extract_features(xte, centroids, args.rf, m, p, args.normalization_eps,
                               args.chunk, dtype, log)
        ph["extract_test_s"] = time.time() - t
        t = time.time()
        mean, sd = standardize_fit(ftr, args.standardize)
        ftr -= mean
        ftr /= sd
        fte -= mean
        fte /= sd
        ph["standardize_s"] = time.time() - t
        t = time.time()
        theta, f, info = train_svm(ftr, ytr, args.c, args.max_iter)
        ph["svm_s"] = time.time() - t
        t = time.time()
        theta = theta.astype(dtype)
        pred = np.argmax(fte @ theta[:-1] + theta[-1], axis=1)
        ph["predict_s"] = time.time() - t
        train_acc = float(np.mean(np.argmax(ftr @ theta[:-1] + theta[-1], axis=1) == ytr))
        ph["total_s"] = sum(ph.values())
        # the objective on ours' scale: mean_i sum_k hinge² + (1/(2C)) ||W||² (bias left out,
        # as our report leaves it out)
        yy = np.where(ytr[:, None] == np.arange(10)[None, :], 1.0, -1.0)
        margin = np.maximum(0, 1 - yy * (ftr @ theta[:-1] + theta[-1]))
        ours_scale = float(np.mean(np.sum(margin ** 2, axis=1))
                           + np.sum(theta[:-1].astype(np.float64) ** 2) / (2 * args.c))
        out.update({
            "images": n, "test_images": nt, "patches": args.patches, "centroids": args.centroids,
            "iterations": args.iterations, "c": args.c, "seed": args.seed, "phases": ph,
            "test_accuracy": float(np.mean(pred == yte)), "train_accuracy": train_acc,
            "svm_objective_matlab": float(f), "svm_objective_ours_scale": ours_scale,
            "svm_iterations": int(info["nit"]), "svm_evaluations": int(info["funcalls"]),
            "svm_stop": str(info["task"]),
        })
        log("numpy ({}, {}): {}; test {:.2f} %, train {:.2f} %; L-BFGS {} iterations ({})".format(
            args.dtype, out["blas_threads"],
            ", ".join(f"{k} {v:.2f}" for k, v in ph.items()),
            100 * out["test_accuracy"], 100 * train_acc, out["svm_iterations"], out["svm_stop"]))
    if args.json:
        print(json.dumps(out))


if __name__ == "__main__":
    main()
