#!/usr/bin/env python3
"""Peers of `cargo xtask bench knn`: 1-NN on the imported CIFAR-10 batches with numpy
(no-loop L2 in float32; the lecture's one-loop L1 on a subset, extrapolated), scikit-learn
brute force, faiss IndexFlatL2 and IndexFlat(METRIC_L1), and OpenCV batchDistance (NORM_L1
on uint8), each in its own process (so peak RSS is its own), then imgclass's own bench in
the same run. Compares the 1-NN predictions with faiss / scikit-learn / OpenCV and checks
whether every difference is an exact distance tie (recomputed in int64). Writes a markdown
table.

`--ours l2,l2_f32,l1_f32 --peers faiss_l2_f32` puts imgclass's f32 feature path (`bench knn
--dtype f32`: the pixels converted to f32 outside the timing), its u8 path and faiss
IndexFlatL2 on the same f32 vectors (converted before the clock starts, as ours) side by side.

Run with the project's virtualenv, after building the bench:

    CARGO_TARGET_DIR=/work/target-knn cargo build --release -p xtask
    /work/main/.venv/bin/python xtask/peers/knn.py --threads 2 \
        --xtask /work/target-knn/release/xtask --table /tmp/knn_table.md
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
RECORD = 3073
DIM = 3072


def data_dir(arg):
    base = arg or os.environ.get("IMGCLASS_DATA_DIR") or str(ROOT / "datasets")
    return Path(base) / "cifar-10" / "cifar-10-batches-bin"


def load(d, n_train, n_test):
    train = np.concatenate(
        [np.fromfile(d / f"data_batch_{i}.bin", dtype=np.uint8).reshape(-1, RECORD) for i in range(1, 6)]
    )
    test = np.fromfile(d / "test_batch.bin", dtype=np.uint8).reshape(-1, RECORD)
    if n_train:
        train = train[:n_train]
    if n_test:
        test = test[:n_test]
    return (
        np.ascontiguousarray(train[:, 1:]),
        train[:, 0].astype(np.int64),
        np.ascontiguousarray(test[:, 1:]),
        test[:, 0].astype(np.int64),
    )


# ---------------------------------------------------------------------------------------
# peers (each returns the 1-NN training index of every test row it ran on)

def peer_numpy_l2(xtr, xte, threads):
    """The lecture's no-loop L2: ||x||^2 + ||t||^2 - 2 x.t in float32 (one BLAS GEMM)."""
    a = xte.astype(np.float32)
    b = xtr.astype(np.float32)
    d = a @ b.T
    d *= -2.0
    d += (a * a).sum(1)[:, None]
    d += (b * b).sum(1)[None, :]
    return d.argmin(1)


NUMPY_L1_QUERIES = 100


def peer_numpy_l1(xtr, xte, threads):
    """The lecture's one-loop L1 (a no-loop L1 would need a 10,000 x 50,000 x 3,072 array),
    in int16 on the first NUMPY_L1_QUERIES test rows; the time is extrapolated."""
    b = xtr.astype(np.int16)
    out = []
    for x in xte[:NUMPY_L1_QUERIES].astype(np.int16):
        out.append(np.abs(b - x).sum(1, dtype=np.int64).argmin())
    return np.array(out)


def peer_sklearn_l2(xtr, xte, threads):
    from sklearn.neighbors import KNeighborsClassifier

    m = KNeighborsClassifier(n_neighbors=1, algorithm="brute", n_jobs=threads)
    m.fit(xtr.astype(np.float32), np.arange(len(xtr)))
    return m.kneighbors(xte.astype(np.float32), 1, return_distance=False)[:, 0]


def peer_faiss_l2(xtr, xte, threads):
    import faiss

    faiss.omp_set_num_threads(threads)
    index = faiss.IndexFlatL2(DIM)
    index.add(xtr.astype(np.float32))
    _, i = index.search(xte.astype(np.float32), 1)
    return i[:, 0]


def peer_faiss_l2_f32(xtr, xte, threads):
    """IndexFlatL2 on vectors already float32 (the conversion is outside the timing)."""
    import faiss

    faiss.omp_set_num_threads(threads)
    index = faiss.IndexFlatL2(DIM)
    index.add(xtr)
    _, i = index.search(xte, 1)
    return i[:, 0]


FAISS_L1_QUERIES = 1000


def peer_faiss_l1(xtr, xte, threads):
    """faiss's L1 has no GEMM path (about 0.1 s per query here): run on the first
    FAISS_L1_QUERIES test rows; the time is extrapolated."""
    import faiss

    faiss.omp_set_num_threads(threads)
    index = faiss.IndexFlat(DIM, faiss.METRIC_L1)
    index.add(xtr.astype(np.float32))
    _, i = index.search(xte[:FAISS_L1_QUERIES].astype(np.float32), 1)
    return i[:, 0]


def peer_opencv_l1(xtr, xte, threads):
    import cv2

    cv2.setNumThreads(threads)
    _, nidx = cv2.batchDistance(xte, xtr, cv2.CV_32S, normType=cv2.NORM_L1, K=1)
    return nidx[:, 0]


PEERS = {
    "numpy_l2": ("numpy no-loop L2 (float32 GEMM)", "l2", peer_numpy_l2),
    "numpy_l1": ("numpy one-loop L1 (int16)", "l1", peer_numpy_l1),
    "sklearn_l2": ("scikit-learn brute L2 (float32)", "l2", peer_sklearn_l2),
    "faiss_l2": ("faiss IndexFlatL2 (float32)", "l2", peer_faiss_l2),
    "faiss_l2_f32": ("faiss IndexFlatL2 (float32 input)", "l2", peer_faiss_l2_f32),
    "faiss_l1": ("faiss IndexFlat METRIC_L1 (float32)", "l1", peer_faiss_l1),
    "opencv_l1": ("OpenCV batchDistance NORM_L1 (uint8)", "l1", peer_opencv_l1),
}


# our runs: tag -> (metric, k, dtype)
OURS = {
    "l2": ("l2", 1, "u8"),
    "l1": ("l1", 1, "u8"),
    "l2_k100": ("l2", 100, "u8"),
    "l2_f32": ("l2", 1, "f32"),
    "l1_f32": ("l1", 1, "f32"),
}


def child(args):
    name = args.child
    label, metric, fn = PEERS[name]
    xtr, ytr, xte, yte = load(data_dir(args.data_dir), args.n_train, args.n_test)
    if args.threads:
        from threadpoolctl import threadpool_limits

        threadpool_limits(args.threads)
    if name.endswith("_f32"):
        xtr, xte = xtr.astype(np.float32), xte.astype(np.float32)
    t = time.perf_counter()
    nn = np.asarray(fn(xtr, xte, args.threads), dtype=np.int64)
    wall = time.perf_counter() - t
    n_run = len(nn)
    pred = ytr[nn]
    acc = float((pred == yte[:n_run]).mean())
    out = Path(args.out_dir)
    np.savetxt(out / f"{name}.pred", pred, fmt="%d")
    np.savetxt(out / f"{name}.nn", nn, fmt="%d")
    res = {
        "method": label,
        "metric": metric,
        "threads": args.threads,
        "n_test_run": n_run,
        "wall_s": wall,
        "wall_s_full": wall * len(xte) / n_run,
        "extrapolated": n_run < len(xte),
        "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "accuracy": acc,
    }
    (out / f"{name}.json").write_text(json.dumps(res, indent=2))
    print(json.dumps(res))


# ---------------------------------------------------------------------------------------
# orchestration and comparison

def run_peer(name, args):
    env = dict(os.environ)
    for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[v] = str(args.threads)
    # the machine may set these for other work; numpy's BLAS is measured without them
    env.pop("OPENBLAS_CORETYPE", None)
    env.pop("OPENBLAS_L2_SIZE", None)
    cmd = [sys.executable, __file__, "--child", name, "--threads", str(args.threads), "--out-dir", args.out_dir]
    cmd += common_flags(args)
    print("+", " ".join(cmd), file=sys.stderr, flush=True)
    subprocess.run(cmd, env=env, check=True)
    return json.loads((Path(args.out_dir) / f"{name}.json").read_text())


def common_flags(args):
    f = []
    if args.n_train:
        f += ["--n-train", str(args.n_train)]
    if args.n_test:
        f += ["--n-test", str(args.n_test)]
    if args.data_dir:
        f += ["--data-dir", args.data_dir]
    return f


def run_ours(tag, metric, k, args, dtype="u8"):
    out = Path(args.out_dir)
    cmd = [
        args.xtask, "bench", "knn", "--metric", metric, "--k", str(k), "--threads", str(args.threads),
        "--dtype", dtype,
        "--predictions", str(out / f"{tag}.pred"), "--json", str(out / f"{tag}.json"),
    ] + common_flags(args)
    print("+", " ".join(cmd), file=sys.stderr, flush=True)
    subprocess.run(cmd, check=True)
    res = json.loads((out / f"{tag}.json").read_text())
    res["method"] = f"imgclass {metric.upper()} k={k} ({dtype}, {res['kernel']})"
    res["n_test_run"] = res["n_test"]
    res["wall_s_full"] = res["wall_s"]
    res["extrapolated"] = False
    return res


def exact_row(x, xtr, metric):
    d = xtr.astype(np.int64) - x.astype(np.int64)
    return np.abs(d).sum(1) if metric == "l1" else (d * d).sum(1)


def compare(ours, peer, metric, xtr, ytr, xte):
    """Count differing predictions; a difference is a tie when both labels occur among the
    training rows at exactly the minimum distance."""
    n = min(len(ours), len(peer))
    diff = np.nonzero(ours[:n] != peer[:n])[0]
    ties = 0
    for q in diff:
        d = exact_row(xte[q], xtr, metric)
        at_min = set(ytr[d == d.min()].tolist())
        if ours[q] in at_min and peer[q] in at_min:
            ties += 1
    return len(diff), ties


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n-train", type=int, default=0)
    ap.add_argument("--n-test", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--data-dir")
    ap.add_argument("--out-dir", default="/tmp/imgclass-knn-peers")
    ap.add_argument("--xtask", default=str(Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target")) / "release" / "xtask"))
    ap.add_argument("--peers", default=",".join(PEERS), help="comma-separated subset of " + ",".join(PEERS))
    ap.add_argument("--ours", default="l2,l1,l2_k100", help="comma-separated subset of " + ",".join(OURS))
    ap.add_argument("--table", help="write the markdown table here too")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    Path(args.out_dir).mkdir(parents=True, exist_ok=True)
    if args.child:
        return child(args)

    results = {}
    for o in [o for o in args.ours.split(",") if o]:
        metric, k, dtype = OURS[o]
        results[f"ours_{o}"] = run_ours(f"ours_{o}", metric, k, args, dtype)
    for name in [p for p in args.peers.split(",") if p]:
        results[name] = run_peer(name, args)

    xtr, ytr, xte, yte = load(data_dir(args.data_dir), args.n_train, args.n_test)
    out = Path(args.out_dir)
    preds = {k: np.loadtxt(out / f"{k}.pred", dtype=np.int64, ndmin=1) for k in results}
    cmp_with = {
        "ours_l2": ["faiss_l2", "faiss_l2_f32", "sklearn_l2", "numpy_l2", "ours_l2_f32"],
        "ours_l2_f32": ["faiss_l2_f32", "faiss_l2"],
        "ours_l1": ["faiss_l1", "opencv_l1", "numpy_l1", "ours_l1_f32"],
        "ours_l1_f32": ["faiss_l1", "opencv_l1"],
    }
    notes = {}
    for ours, peers in cmp_with.items():
        if ours not in results:
            continue
        metric = results[ours]["metric"]
        for p in peers:
            if p in preds:
                n, t = compare(preds[ours], preds[p], metric, xtr, ytr, xte)
                notes.setdefault(p, f"{n} ({t} exact ties)")
                notes.setdefault(ours, "")
                notes[ours] += f"{'; ' if notes[ours] else ''}vs {p}: {n} ({t} ties)"

    lines = [
        f"CIFAR-10 1-NN, {len(xte)} test x {len(xtr)} train x 3072, {args.threads} threads, "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
        "",
        "| method | metric | wall time (s) | peak RSS (MiB) | threads | accuracy | predictions differing from ours (exact ties) |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    for k, r in results.items():
        wall = f"{r['wall_s_full']:.2f}" + (f" (extrapolated from {r['n_test_run']} queries)" if r["extrapolated"] else "")
        acc = f"{100 * r['accuracy']:.2f} %" + (f" (first {r['n_test_run']})" if r["extrapolated"] else "")
        lines.append(
            f"| {r['method']} | {r['metric']} | {wall} | {r['peak_rss_bytes'] / 2**20:.0f} | {r['threads']} | {acc} | {notes.get(k, '')} |"
        )
    ratio = []

    def rt(a, b, what):
        if a in results and b in results:
            ratio.append(f"- {what}: {results[a]['wall_s_full'] / results[b]['wall_s_full']:.2f}x")

    rt("faiss_l2", "ours_l2", "faiss IndexFlatL2 time / imgclass L2 time")
    rt("ours_l2_f32", "faiss_l2_f32", "imgclass f32 L2 time / faiss IndexFlatL2 (f32 input) time (target <= 1.3)")
    rt("faiss_l2_f32", "ours_l2", "faiss IndexFlatL2 (f32 input) time / imgclass u8 L2 time")
    rt("ours_l2_f32", "ours_l2", "imgclass f32 L2 time / imgclass u8 L2 time")
    rt("ours_l1_f32", "ours_l1", "imgclass f32 L1 time / imgclass u8 L1 time")
    rt("sklearn_l2", "ours_l2", "scikit-learn brute time / imgclass L2 time")
    rt("numpy_l2", "ours_l2", "numpy no-loop L2 time / imgclass L2 time")
    rt("opencv_l1", "ours_l1", "OpenCV batchDistance L1 time / imgclass L1 time")
    rt("faiss_l1", "ours_l1", "faiss L1 time / imgclass L1 time")
    rt("numpy_l1", "ours_l1", "numpy one-loop L1 time (extrapolated) / imgclass L1 time")
    rt("ours_l2_k100", "ours_l2", "imgclass L2 k=100 time / k=1 time")
    text = "\n".join(lines + [""] + ratio) + "\n"
    print(text)
    if args.table:
        Path(args.table).write_text(text)


if __name__ == "__main__":
    main()
