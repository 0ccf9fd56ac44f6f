"""Test-time corruptions of aligned face crops: occluders (glasses, sunglasses, a headset, a face mask), blur, noise,
JPEG, low resolution and dim light, to measure how a model holds up on faces unlike its training crops.

Each corruption maps uint8 crops [N, S, S] (grey) or [N, S, S, 3] (RGB) aligned to ``FER_TEMPLATE`` to new crops of
the same shape; it is deterministic (noise is seeded) and sized in fractions of the crop side, so it means the same
at 48 px as at 112 px. The occluders are drawn as shapes placed on the template's landmarks (ellipses, a rounded
visor, a mask's outline), in light as well as dark colours, unlike the training augmentation's flat dark bands
(``openfer.train.augment.BANDS``), so a model cannot pass by having learnt that one drawing.
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

from openfer.align import FER_TEMPLATE
from openfer.errors import UnknownNameError

Corruption = Callable[[np.ndarray], np.ndarray]
_SUPER = 8  # shapes are drawn at 8x the crop side, then area-averaged into a soft-edged alpha mask

EYES = FER_TEMPLATE[:2]
NOSE = FER_TEMPLATE[2]
MOUTH = FER_TEMPLATE[3:]


def _shape_mask(side: int, draw: Callable[[np.ndarray, int], None]) -> np.ndarray:
    """Alpha in [0, 1], float32 [side, side]: ``draw(canvas, scale)`` paints 255 on a canvas ``scale`` px per unit."""
    big = side * _SUPER
    canvas = np.zeros((big, big), np.uint8)
    draw(canvas, big)
    return cv2.resize(canvas, (side, side), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0


def _paint(crops: np.ndarray, alpha: np.ndarray, colour: tuple[int, int, int]) -> np.ndarray:
    """Blend ``colour`` (RGB; its mean for grey crops) over every crop with the alpha mask."""
    x = crops.astype(np.float32)
    if x.ndim == 4:
        c = np.asarray(colour, np.float32)
        a = alpha[None, :, :, None]
    else:
        c = np.float32(np.mean(colour))
        a = alpha[None]
    return np.clip(np.rint(x * (1 - a) + c * a), 0, 255).astype(np.uint8)


def _ellipses(canvas: np.ndarray, scale: int, thickness: int) -> None:
    """Two lenses around the template's eyes and the bridge between them."""
    axes = (int(0.14 * scale), int(0.095 * scale))
    for x, y in EYES:
        cv2.ellipse(canvas, (int(x * scale), int(y * scale)), axes, 0, 0, 360, 255, thickness, cv2.LINE_AA)
    y = int((EYES[0, 1] - 0.03) * scale)
    cv2.line(canvas, (int((EYES[0, 0] + 0.14) * scale), y), (int((EYES[1, 0] - 0.14) * scale), y), 255,
             max(thickness, int(0.025 * scale)), cv2.LINE_AA)


def sunglasses(crops: np.ndarray) -> np.ndarray:
    """Dark, opaque lenses over both eyes."""
    alpha = _shape_mask(crops.shape[1], lambda c, s: _ellipses(c, s, -1))
    return _paint(crops, alpha, (25, 25, 30))


def glasses(crops: np.ndarray) -> np.ndarray:
    """Clear lenses in dark frames: only the rims and the bridge cover the face."""
    alpha = _shape_mask(crops.shape[1], lambda c, s: _ellipses(c, s, max(1, int(0.03 * s))))
    return _paint(crops, alpha, (35, 30, 30))


def headset(crops: np.ndarray) -> np.ndarray:
    """A light-grey VR visor with rounded ends from the brows to below the eyes, across the whole face."""
    def draw(c: np.ndarray, s: int) -> None:
        top, bottom, r = int(0.19 * s), int(0.56 * s), int(0.12 * s)
        cv2.rectangle(c, (int(0.02 * s) + r, top), (int(0.98 * s) - r, bottom), 255, -1)
        cv2.rectangle(c, (int(0.02 * s), top + r), (int(0.98 * s), bottom - r), 255, -1)
        for x in (int(0.02 * s) + r, int(0.98 * s) - r):
            for y in (top + r, bottom - r):
                cv2.circle(c, (x, y), r, 255, -1, cv2.LINE_AA)
    return _paint(crops, _shape_mask(crops.shape[1], draw), (175, 178, 182))


def mask(crops: np.ndarray) -> np.ndarray:
    """A pale-blue surgical mask from the bridge of the nose to under the chin."""
    def draw(c: np.ndarray, s: int) -> None:
        top = NOSE[1] - 0.08
        pts = [(0.10, top + 0.06), (0.30, top), (0.50, top - 0.02), (0.70, top), (0.90, top + 0.06),
               (0.86, 0.90), (0.66, 1.02), (0.34, 1.02), (0.14, 0.90)]
        cv2.fillPoly(c, [np.array([(int(x * s), int(y * s)) for x, y in pts], np.int32)], 255, cv2.LINE_AA)
    return _paint(crops, _shape_mask(crops.shape[1], draw), (170, 200, 225))


def blur(crops: np.ndarray) -> np.ndarray:
    """Defocus: a Gaussian of 1.5 px at 48 px (scaled with the crop side)."""
    sigma = 1.5 * crops.shape[1] / 48
    return np.stack([cv2.GaussianBlur(c, (0, 0), sigma) for c in crops])


def noise(crops: np.ndarray) -> np.ndarray:
    """Sensor noise: Gaussian, standard deviation 15 of 255, the same draw for every call."""
    rng = np.random.default_rng(0)
    return np.clip(crops + rng.normal(0, 15, crops.shape), 0, 255).astype(np.uint8)


def jpeg(crops: np.ndarray) -> np.ndarray:
    """Heavy compression: each crop encoded as JPEG at quality 10 and decoded."""
    out = np.empty_like(crops)
    for i, c in enumerate(crops):
        ok, buf = cv2.imencode(".jpg", c, [cv2.IMWRITE_JPEG_QUALITY, 10])
        if not ok:
            raise RuntimeError(f"OpenCV could not JPEG-encode a crop of shape {c.shape}")
        out[i] = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED).reshape(c.shape)
    return out


def lowres(crops: np.ndarray) -> np.ndarray:
    """A far-away face: the crop shrunk to a quarter of its side (12 px at 48) and scaled back up."""
    side = crops.shape[1]
    small = max(4, side // 4)
    return np.stack([cv2.resize(cv2.resize(c, (small, small), interpolation=cv2.INTER_AREA), (side, side),
                                interpolation=cv2.INTER_LINEAR).reshape(c.shape) for c in crops])


def dim(crops: np.ndarray) -> np.ndarray:
    """A dark room: the light cut to 35 % and the shadows crushed (gamma 1.5)."""
    x = crops.astype(np.float32) / 255.0
    return np.clip(np.rint(255 * 0.35 * x**1.5), 0, 255).astype(np.uint8)


CORRUPTIONS: dict[str, Corruption] = {
    "glasses": glasses, "sunglasses": sunglasses, "headset": headset, "mask": mask,
    "blur": blur, "noise": noise, "jpeg": jpeg, "lowres": lowres, "dim": dim,
}


class Corrupted:
    """A classifier that reads every crop through one corruption first (``openfer evaluate --corrupt``); every other
    attribute (classes, input size, decision rule) is the wrapped classifier's."""

    def __init__(self, classifier, name: str) -> None:
        if name not in CORRUPTIONS:
            raise UnknownNameError(f"unknown corruption {name!r}; use one of {', '.join(CORRUPTIONS)}", name=name,
                                   known=CORRUPTIONS)
        self.inner, self.corruption = classifier, name

    def predict_proba(self, crops: np.ndarray) -> np.ndarray:
        """The wrapped classifier's probabilities on the corrupted uint8 crops."""
        return self.inner.predict_proba(CORRUPTIONS[self.corruption](np.asarray(crops, np.uint8)))

    def __getattr__(self, name: str):
        return getattr(self.inner, name)
