#!/usr/bin/env python3
"""Checks that imgclass's HOG + hue-histogram features are the course's (CS231n assignment 1,
features.py: hog_feature and color_histogram_hsv, verbatim below): per-column correlation of
the course's features of the first 2,000 training images with our standardised rows of the
same images. Run (from the workspace root, after `cargo build --release -p xtask`):

    target/release/xtask bench solver --features hog-hsv --loss softmax --export /tmp/hh
    /work/venv-peers/bin/python xtask/peers/hog_check.py datasets /tmp/hh

(needs numpy, scipy and matplotlib). Identical features correlate at 1 (standardisation is
affine per column).
"""
import numpy as np, os, sys
from scipy.ndimage import uniform_filter
from matplotlib.colors import rgb_to_hsv
d=os.path.join(sys.argv[1], 'cifar-10', 'cifar-10-batches-bin')
raw=np.fromfile(os.path.join(d,'data_batch_1.bin'),dtype=np.uint8).reshape(-1,3073)[:2000]
X=raw[:,1:].reshape(-1,3,32,32).transpose(0,2,3,1).astype(np.float64)
def rgb2gray(rgb): return np.dot(rgb[...,:3],[0.299,0.587,0.144])
def hog_feature(im):
    image=rgb2gray(im); sx,sy=image.shape; orientations=9; cx,cy=(8,8)
    gx=np.zeros(image.shape); gy=np.zeros(image.shape)
    gx[:,:-1]=np.diff(image,n=1,axis=1); gy[:-1,:]=np.diff(image,n=1,axis=0)
    grad_mag=np.sqrt(gx**2+gy**2); grad_ori=np.arctan2(gy,(gx+1e-15))*(180/np.pi)+90
    n_cellsx=int(np.floor(sx/cx)); n_cellsy=int(np.floor(sy/cy))
    oh=np.zeros((n_cellsx,n_cellsy,orientations))
    for i in range(orientations):
        t=np.where(grad_ori<180/orientations*(i+1),grad_ori,0)
        t=np.where(grad_ori>=180/orientations*i,t,0)
        cond2=t>0; tm=np.where(cond2,grad_mag,0)
        oh[:,:,i]=uniform_filter(tm,size=(cx,cy))[round(cx/2)::cx,round(cy/2)::cy].T
    return oh.ravel()
def color_histogram_hsv(im,nbin=10,xmin=0,xmax=255,normalized=True):
    bins=np.linspace(xmin,xmax,nbin+1); hsv=rgb_to_hsv(im/xmax)*xmax
    imhist,bin_edges=np.histogram(hsv[:,:,0],bins=bins,density=normalized)
    return imhist*np.diff(bin_edges)
F=np.array([np.concatenate([hog_feature(x),color_histogram_hsv(x)]) for x in X])

ours=np.load(os.path.join(sys.argv[2], 'train_x.npy'))[:2000].astype(np.float64)
# ours is standardised over 50000 rows: compare per column by correlation
for j in list(range(0,5))+[144,150,153]:
    a=F[:,j]; b=ours[:,j]
    print(j, np.corrcoef(a,b)[0,1] if a.std()>0 and b.std()>0 else (a.std(),b.std()))
cors=[np.corrcoef(F[:,j],ours[:,j])[0,1] for j in range(154) if F[:,j].std()>0 and ours[:,j].std()>0]
print('min corr', np.min(cors), 'n', len(cors))
