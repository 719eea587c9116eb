"""CS231n assignment 1's feature functions (`features.py`: `hog_feature`, `color_histogram_hsv`),
verbatim, shared by hog_check.py (value check) and hog_speed.py (timing)."""
import numpy as np
from scipy.ndimage import uniform_filter
from matplotlib.colors import rgb_to_hsv


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
