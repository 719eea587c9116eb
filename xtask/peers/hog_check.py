#!/usr/bin/env python3
"""Checks that imgclass's HOG + hue-histogram features are the course's (CS231n assignment 1,
features.py: hog_feature and color_histogram_hsv, verbatim in cs231n_features.py): per-column correlation of
the course's features of the first 2,000 training images with our standardised rows of the
same images. Run (from the workspace root, after `cargo build --release -p xtask`):

    target/release/xtask bench solver --features hog-hsv --loss softmax --export /tmp/hh
    /work/venv-peers/bin/python xtask/peers/hog_check.py datasets /tmp/hh

(needs numpy, scipy and matplotlib). Identical features correlate at 1 (standardisation is
affine per column).
"""
import numpy as np, os, sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cs231n_features import hog_feature, color_histogram_hsv
d=os.path.join(sys.argv[1], 'cifar-10', 'cifar-10-batches-bin')
raw=np.fromfile(os.path.join(d,'data_batch_1.bin'),dtype=np.uint8).reshape(-1,3073)[:2000]
X=raw[:,1:].reshape(-1,3,32,32).transpose(0,2,3,1).astype(np.float64)
F=np.array([np.concatenate([hog_feature(x),color_histogram_hsv(x)]) for x in X])

ours=np.load(os.path.join(sys.argv[2], 'train_x.npy'))[:2000].astype(np.float64)
# ours is standardised over 50000 rows: compare per column by correlation
for j in list(range(0,5))+[144,150,153]:
    a=F[:,j]; b=ours[:,j]
    print(j, np.corrcoef(a,b)[0,1] if a.std()>0 and b.std()>0 else (a.std(),b.std()))
cors=[np.corrcoef(F[:,j],ours[:,j])[0,1] for j in range(154) if F[:,j].std()>0 and ours[:,j].std()>0]
print('min corr', np.min(cors), 'n', len(cors))
