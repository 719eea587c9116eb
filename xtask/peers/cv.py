#!/usr/bin/env python3
"""Peer for `cargo xtask bench cv`: the same k-fold k-NN cross-validation with OpenCV (L1,
cv2.batchDistance with K nearest) and faiss (L2, IndexFlatL2), on the same folds.

Run the Rust bench first (it writes <out>/folds.json, the fold number of every training row),
then:

    .venv/bin/python xtask/peers/cv.py --out target/bench-cv [--metrics l1,l2] [--n-train N]

Per fold and metric the neighbours are computed once up to the largest k and every k is scored
from them (votes: most frequent label, ties to the smaller label), as the Rust side does. Then
the test set is searched once with the chosen k. Writes <out>/cv_peer.json and prints a table.
Neighbour order among equal distances may differ from the Rust side (faiss works in float32),
so accuracies can differ in the last digit; the timings are the point.
"""
import argparse
import json
import os
import time

import numpy as np


def read_cifar10(d, n_train=None, n_test=None):
    def batch(name):
        raw = np.fromfile(os.path.join(d, name), dtype=np.uint8).reshape(-1, 3073)
        return raw[:, 1:], raw[:, 0].astype(np.int64)
    parts = [batch(f"data_batch_{i}.bin") for i in range(1, 6)]
    xtr = np.concatenate([p[0] for p in parts])
    ytr = np.concatenate([p[1] for p in parts])
    xte, yte = batch("test_batch.bin")
    # n evenly spaced rows (i * len // n), as the Rust side picks them
    tr = np.arange(n_train or len(ytr)) * len(ytr) // (n_train or len(ytr))
    te = np.arange(n_test or len(yte)) * len(yte) // (n_test or len(yte))
    return xtr[tr], ytr[tr], xte[te], yte[te]


def search(metric, train, query, k):
    """Indices (n_query x k) of the k nearest training rows, nearest first."""
    if metric == "l2":
        import faiss
        index = faiss.IndexFlatL2(train.shape[1])
        index.add(np.ascontiguousarray(train, dtype=np.float32))
        _, idx = index.search(np.ascontiguousarray(query, dtype=np.float32), k)
        return idx
    import cv2
    _, idx = cv2.batchDistance(np.ascontiguousarray(query, dtype=np.float32),
                               np.ascontiguousarray(train, dtype=np.float32),
                               cv2.CV_32F, normType=cv2.NORM_L1, K=k)
    return idx


def vote(labels_of_neighbours, k, n_classes=10):
    counts = np.zeros((labels_of_neighbours.shape[0], n_classes), dtype=np.int64)
    for j in range(k):
        np.add.at(counts, (np.arange(counts.shape[0]), labels_of_neighbours[:, j]), 1)
    return counts.argmax(axis=1)  # first maximum: ties go to the smaller label


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="target/bench-cv")
    ap.add_argument("--data-dir", default=os.environ.get("IMGCLASS_DATA_DIR", "datasets"))
    ap.add_argument("--metrics", default="l1,l2")
    ap.add_argument("--ks", default="1,3,5,7,10,15,20,50,100")
    ap.add_argument("--n-train", type=int, default=None)
    ap.add_argument("--n-test", type=int, default=None)
    a = ap.parse_args()
    ks = sorted({int(k) for k in a.ks.split(",")})
    d = os.path.join(a.data_dir, "cifar-10", "cifar-10-batches-bin")
    xtr, ytr, xte, yte = read_cifar10(d, a.n_train, a.n_test)
    assign = np.array(json.load(open(os.path.join(a.out, "folds.json"))))
    assert len(assign) == len(ytr), "folds.json is for a different --n-train"
    n_folds = assign.max() + 1
    result = {"n_train": len(ytr), "n_test": len(yte), "ks": ks, "runs": []}
    for metric in a.metrics.split(","):
        t0 = time.perf_counter()
        per_fold, fold_seconds = [], []
        for f in range(n_folds):
            t = time.perf_counter()
            tr, va = assign != f, assign == f
            idx = search(metric, xtr[tr], xtr[va], max(ks))
            nl = ytr[tr][idx]
            per_fold.append([float((vote(nl, k) == ytr[va]).mean()) for k in ks])
            fold_seconds.append(time.perf_counter() - t)
            print(f"{metric} fold {f}: {fold_seconds[-1]:.1f} s", flush=True)
        cv_seconds = time.perf_counter() - t0
        means = np.mean(per_fold, axis=0)
        best = int(np.argmax(means))
        k = ks[best]
        t = time.perf_counter()
        idx = search(metric, xtr, xte, k)
        test_acc = float((vote(ytr[idx], k) == yte).mean())
        test_seconds = time.perf_counter() - t
        run = {"metric": metric, "chosen_k": k, "cv_mean": float(means[best]),
               "cv_std": float(np.std(np.array(per_fold)[:, best])), "test_accuracy": test_acc,
               "per_fold": per_fold, "fold_seconds": fold_seconds, "cv_seconds": cv_seconds,
               "test_pass_seconds": test_seconds}
        result["runs"].append(run)
        print(f"{metric}: chosen k = {k}, cv {run['cv_mean']:.4f} ± {run['cv_std']:.4f}, "
              f"test {test_acc:.4f}; cv {cv_seconds:.1f} s, test pass {test_seconds:.1f} s",
              flush=True)
    json.dump(result, open(os.path.join(a.out, "cv_peer.json"), "w"), indent=1)


if __name__ == "__main__":
    main()
