"""Peers for `cargo xtask bench ann`: hnswlib, faiss IVF-Flat (and faiss exact), and FLANN
through OpenCV's flann module, on the same CIFAR-10 batches and the same ground truth.

Reads the first --n-train training images (data_batch_1..5 in order) and the first
--n-test test images, L2 on raw pixels as float32. --truth is the exact top-10 from imgclass
(little-endian u32, n_test x 10, training indices in batch order). Prints one JSON object:
{"settings": [{"peer", "params", "build_secs", "search_secs", "recall1", "recall10",
"acc1", "memory_bytes"}...]}. Threads: --threads (2 by default) for hnswlib and faiss;
OpenCV's FLANN search runs on one thread.
"""

import argparse
import json
import os
import sys
import time

import numpy as np


def load(data_dir, n_train, n_test):
    d = os.path.join(data_dir, "cifar-10", "cifar-10-batches-bin")

    def read(name):
        raw = np.fromfile(os.path.join(d, name), dtype=np.uint8).reshape(-1, 3073)
        return raw[:, 1:], raw[:, 0].astype(np.int64)

    parts = [read(f"data_batch_{i}.bin") for i in range(1, 6)]
    xtr = np.concatenate([p[0] for p in parts])[:n_train]
    ytr = np.concatenate([p[1] for p in parts])[:n_train]
    xte, yte = read("test_batch.bin")
    return (np.ascontiguousarray(xtr, dtype=np.float32), ytr,
            np.ascontiguousarray(xte[:n_test], dtype=np.float32), yte[:n_test])


def score(found, truth, ytr, yte):
    found = np.asarray(found, dtype=np.int64)
    r1 = float(np.mean(found[:, 0] == truth[:, 0]))
    hits = sum(len(set(f[:10]) & set(t[:10])) for f, t in zip(found, truth))
    r10 = hits / (10.0 * len(truth))
    acc1 = float(np.mean(ytr[found[:, 0]] == yte))
    return r1, r10, acc1


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data-dir", required=True)
    ap.add_argument("--n-train", type=int, default=50000)
    ap.add_argument("--n-test", type=int, default=10000)
    ap.add_argument("--truth", required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--skip", default="", help="comma list of peers to skip: hnswlib,faiss,flann")
    a = ap.parse_args()
    skip = set(filter(None, a.skip.split(",")))
    xtr, ytr, xte, yte = load(a.data_dir, a.n_train, a.n_test)
    truth = np.fromfile(a.truth, dtype="<u4").reshape(len(xte), 10).astype(np.int64)
    out = []

    def emit(peer, params, build, secs, found, mem):
        r1, r10, acc1 = score(found, truth, ytr, yte)
        out.append(dict(peer=peer, params=params, build_secs=build, search_secs=secs,
                        recall1=r1, recall10=r10, acc1=acc1, memory_bytes=mem))
        print(f"{peer} {params}: build {build:.1f}s search {secs:.2f}s r1 {r1:.3f}",
              file=sys.stderr, flush=True)

    if "hnswlib" not in skip:
        import hnswlib
        for m, efc in [(16, 200)]:
            t = time.perf_counter()
            p = hnswlib.Index(space="l2", dim=xtr.shape[1])
            p.init_index(max_elements=len(xtr), ef_construction=efc, M=m, random_seed=100)
            p.set_num_threads(a.threads)
            p.add_items(xtr, np.arange(len(xtr)), num_threads=a.threads)
            build = time.perf_counter() - t
            # data (float32) + links: level-0 block of 2M links plus header per element
            mem = len(xtr) * (xtr.shape[1] * 4 + (2 * m + 1) * 4 + 8)
            for ef in [10, 20, 40, 80]:
                p.set_ef(ef)
                t = time.perf_counter()
                labels, _ = p.knn_query(xte, k=10, num_threads=a.threads)
                emit("hnswlib", f"M={m},efc={efc},ef={ef}", build, time.perf_counter() - t,
                     labels, mem)

    if "faiss" not in skip:
        import faiss
        faiss.omp_set_num_threads(a.threads)
        t = time.perf_counter()
        flat = faiss.IndexFlatL2(xtr.shape[1])
        flat.add(xtr)
        build = time.perf_counter() - t
        t = time.perf_counter()
        _, labels = flat.search(xte, 10)
        emit("faiss-exact", "IndexFlatL2", build, time.perf_counter() - t, labels, xtr.nbytes)
        nlist = 256 if len(xtr) >= 256 * 39 else max(1, len(xtr) // 39)
        t = time.perf_counter()
        q = faiss.IndexFlatL2(xtr.shape[1])
        ivf = faiss.IndexIVFFlat(q, xtr.shape[1], nlist)
        ivf.cp.seed = 1234
        ivf.train(xtr)
        ivf.add(xtr)
        build = time.perf_counter() - t
        for nprobe in [1, 4, 8, 16]:
            ivf.nprobe = nprobe
            t = time.perf_counter()
            _, labels = ivf.search(xte, 10)
            emit("faiss-ivfflat", f"nlist={nlist},nprobe={nprobe}", build,
                 time.perf_counter() - t, labels, xtr.nbytes + len(xtr) * 8)

    if "flann" not in skip:
        import cv2
        if hasattr(cv2, "flann_Index"):
            for name, params, checks in [
                ("flann-kdforest", dict(algorithm=1, trees=4), [32, 128, 512]),
                ("flann-kmeans", dict(algorithm=2, branching=32, iterations=5), [32, 128, 512]),
            ]:
                t = time.perf_counter()
                fi = cv2.flann_Index(xtr, params)
                build = time.perf_counter() - t
                for c in checks:
                    t = time.perf_counter()
                    labels, _ = fi.knnSearch(xte, 10, params=dict(checks=c))
                    ps = ",".join(f"{k}={v}" for k, v in params.items() if k != "algorithm")
                    emit(name, f"{ps},checks={c}", build, time.perf_counter() - t, labels,
                         xtr.nbytes)
        else:
            print("cv2.flann_Index is missing in this OpenCV build", file=sys.stderr)

    print(json.dumps(dict(settings=out)))


if __name__ == "__main__":
    main()
