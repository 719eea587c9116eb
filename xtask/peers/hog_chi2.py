#!/usr/bin/env python3
"""scikit-learn on CS231n's HOG + hue features (assignment 1, features.py: hog_feature and
color_histogram_hsv, verbatim in cs231n_features.py), plain and through the additive χ²
kernel's explicit feature map (sklearn.kernel_approximation.AdditiveChi2Sampler, Vedaldi &
Zisserman), each standardised, under LogisticRegression (softmax) and LinearSVC (one-vs-rest
squared hinge): the peer of the default experiment's `hog+hsv` and `hog+hsv-chi2` rows.

    /work/venv-peers/bin/python xtask/peers/hog_chi2.py datasets [--cache F] [--seed S] [--test] \
        [--maps plain,chi2]

The features of the 50,000 training and 10,000 test images of
`datasets/cifar-10/cifar-10-batches-bin` take about two minutes in numpy and are cached
(`--cache`, default /tmp/hog_chi2_features.npz). Without `--test`, every (map, C) cell is
trained on 45,000 training images and scored on the other 5,000 (a seeded permutation): a
choice made on training data only. With `--test`, each map's best cell of that hold-out is
retrained on all 50,000 and scored once on the test set. Needs numpy, scipy, matplotlib and
scikit-learn.
"""
import argparse, os, sys, time, warnings
import numpy as np

warnings.filterwarnings('ignore')
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cs231n_features import hog_feature, color_histogram_hsv
from sklearn.kernel_approximation import AdditiveChi2Sampler
from sklearn.linear_model import LogisticRegression
from sklearn.svm import LinearSVC

ap = argparse.ArgumentParser()
ap.add_argument('data_dir')
ap.add_argument('--cache', default='/tmp/hog_chi2_features.npz')
ap.add_argument('--seed', type=int, default=0)
ap.add_argument('--test', action='store_true')
ap.add_argument('--maps', default='plain,chi2', help='comma-separated: plain, chi2')
a = ap.parse_args()

if not os.path.exists(a.cache):
    d = os.path.join(a.data_dir, 'cifar-10', 'cifar-10-batches-bin')
    def load(names):
        raw = np.concatenate([np.fromfile(os.path.join(d, n), dtype=np.uint8).reshape(-1, 3073)
                              for n in names])
        return raw[:, 1:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1).astype(np.float64), raw[:, 0]
    Xtr, ytr = load([f'data_batch_{i}.bin' for i in range(1, 6)])
    Xte, yte = load(['test_batch.bin'])
    feats = lambda X: np.array([np.concatenate([hog_feature(x), color_histogram_hsv(x)]) for x in X])
    t = time.time()
    np.savez(a.cache, Ftr=feats(Xtr), Fte=feats(Xte), ytr=ytr, yte=yte)
    print(f'features: {time.time() - t:.1f} s', flush=True)
z = np.load(a.cache)
Ftr, Fte, ytr, yte = z['Ftr'], z['Fte'], z['ytr'], z['yte']

# np.maximum: scipy's uniform_filter in hog_feature leaves rounding negatives (~ -1e-17), which
# the sampler refuses
maps = {'plain': lambda X: X,
        'chi2': lambda X: AdditiveChi2Sampler(sample_steps=2).fit_transform(np.maximum(X, 0))}
Cs = [1e-2, 1e-1, 1.0]

def standardised(A, B):
    m, s = A.mean(0), A.std(0)
    s[s == 0] = 1
    return (A - m) / s, (B - m) / s

def models(C):
    # LinearSVC's C is a tenth of LogisticRegression's at the same cell: its loss is a sum of
    # ten one-vs-rest squared hinges
    return {'softmax': LogisticRegression(C=C, max_iter=300),
            'l2-svm': LinearSVC(C=C / 10, dual=False)}

perm = np.random.default_rng(a.seed).permutation(len(ytr))
ho, tr = perm[:5000], perm[5000:]
for name in a.maps.split(','):
    f = maps[name]
    A, B = standardised(f(Ftr[tr]), f(Ftr[ho]))
    best = {}
    for C in Cs:
        for kind, m in models(C).items():
            t = time.time()
            acc = (m.fit(A, ytr[tr]).predict(B) == ytr[ho]).mean()
            print(f'{name:15} {kind:8} C={m.C:g}: hold-out {100 * acc:.2f} % ({time.time() - t:.1f} s)',
                  flush=True)
            if acc > best.get(kind, (0, 0))[0]:
                best[kind] = (acc, C)
    if a.test:
        A, B = standardised(f(Ftr), f(Fte))
        for kind, (acc, C) in best.items():
            t = time.time()
            m = models(C)[kind].fit(A, ytr)
            print(f'{name:15} {kind:8} C={m.C:g} (best held out): test {100 * (m.predict(B) == yte).mean():.2f} %'
                  f' ({time.time() - t:.1f} s)', flush=True)
