"""Measure where CenterFace puts the 5 landmarks in FER2013 crops: the alignment template that makes our aligned
crops look like the classifier's training data.

Usage: python scripts/fer_template.py [path/to/fer2013_dev.npz] [n_images]
"""

import sys

import cv2
import numpy as np

from openfer.detect import CenterFaceDetector
from openfer.datasets import default_npz_path

path = sys.argv[1] if len(sys.argv) > 1 else default_npz_path()
n = int(sys.argv[2]) if len(sys.argv) > 2 else 2000
with np.load(path) as d:
    sel = np.flatnonzero(d["usage"] == "Training")[:n]
    pixels = d["pixels"][sel]
det = CenterFaceDetector(threshold=0.3, max_side=None)
up, pad = 4, 48  # upscale 48 -> 192, then pad so the face is not cut by the frame edge
pts = []
for p in pixels:
    img = cv2.resize(p, (48 * up, 48 * up), interpolation=cv2.INTER_CUBIC)
    img = cv2.copyMakeBorder(img, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
    faces = det.detect(cv2.cvtColor(img, cv2.COLOR_GRAY2RGB))
    if faces:
        pts.append((faces[0].landmarks - pad) / up)
pts = np.array(pts)
print(f"landmarks found in {len(pts)}/{len(pixels)} crops")
print("median template (48x48 px):", np.round(np.median(pts, 0), 2).tolist())
print("IQR:", np.round(np.percentile(pts, 75, 0) - np.percentile(pts, 25, 0), 2).tolist())
