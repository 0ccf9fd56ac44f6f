"""Shared helpers for the openfer test suite.

Every test image is built in code from the public-domain photos that ship with scikit-image:
``astronaut()`` (one face, roughly box x 181-270, y 58-178) and ``chelsea()`` (a cat, no human face).
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

# The test machine is small and shared: keep ONNX Runtime / OpenCV to one thread unless told otherwise.
os.environ.setdefault("OMP_NUM_THREADS", "1")
cv2.setNumThreads(1)

#: Where the astronaut's face is in ``skimage.data.astronaut()`` (x1, y1, x2, y2).
ASTRONAUT_FACE = (181.0, 58.0, 270.0, 178.0)
#: CenterFace's 5 landmarks on the astronaut (left eye, right eye, nose, mouth left, mouth right), +-1 px.
ASTRONAUT_LANDMARKS = ((203.2, 101.7), (247.0, 104.5), (223.3, 125.1), (203.4, 142.3), (241.3, 144.4))
#: The head region we cut out to paste faces elsewhere (x1, y1, x2, y2); contains ASTRONAUT_FACE.
HEAD_REGION = (150, 30, 300, 210)

CLASSES = ("neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt")


def label_of(probs, model: str = "default") -> str | list[str]:
    """The label a registered model gives these probabilities ([K] or [N, K], ``CLASSES`` order) under its training
    prior: its decision rule (``openfer.classify.prior``), not always the plain argmax."""
    from openfer.classify.prior import model_decision
    from openfer.zoo.registry import get_spec

    idx = model_decision(get_spec(model)).index(np.asarray(probs, np.float64))
    return CLASSES[int(idx)] if np.ndim(idx) == 0 else [CLASSES[int(i)] for i in idx]


@functools.lru_cache(maxsize=None)
def _astronaut() -> np.ndarray:
    import skimage.data

    return skimage.data.astronaut()


@functools.lru_cache(maxsize=None)
def _chelsea() -> np.ndarray:
    import skimage.data

    return skimage.data.chelsea()


def astronaut() -> np.ndarray:
    """A fresh copy of the astronaut photo, RGB uint8 [512, 512, 3]."""
    return _astronaut().copy()


def mouth_covered_astronaut() -> np.ndarray:
    """The astronaut with a flat grey band over the lower 38 % of the face (mouth and jaw), as a mask would cover."""
    x1, y1, x2, y2 = (int(v) for v in ASTRONAUT_FACE)
    out = astronaut()
    out[y1 + int(0.62 * (y2 - y1)): y2, x1:x2] = 128
    return out


def chelsea() -> np.ndarray:
    """A fresh copy of the cat photo, RGB uint8 [300, 451, 3]."""
    return _chelsea().copy()


def iou(a, b) -> float:
    """Intersection over union of two (x1, y1, x2, y2) boxes."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def paste_head(canvas: np.ndarray, height: int, x: int, y: int) -> tuple[float, float, float, float]:
    """Paste the astronaut's head region, resized to ``height`` px tall, with its top-left at (x, y).

    Returns the expected face box in ``canvas`` coordinates (ASTRONAUT_FACE mapped through the paste).
    """
    hx1, hy1, hx2, hy2 = HEAD_REGION
    head = _astronaut()[hy1:hy2, hx1:hx2]
    s = height / (hy2 - hy1)
    width = round((hx2 - hx1) * s)
    canvas[y : y + height, x : x + width] = cv2.resize(head, (width, height), interpolation=cv2.INTER_AREA)
    fx1, fy1, fx2, fy2 = ASTRONAUT_FACE
    return (x + (fx1 - hx1) * s, y + (fy1 - hy1) * s, x + (fx2 - hx1) * s, y + (fy2 - hy1) * s)


def scattered_heads(width: int, height: int, n: int, seed: int = 0, lo: int = 150, hi: int = 220,
                    background: np.ndarray | None = None) -> tuple[np.ndarray, list[tuple[float, ...]]]:
    """``n`` astronaut heads ``lo``-``hi`` px tall (``paste_head``), one per cell of a grid, at random places in
    their cells, on ``background`` resized to ``width`` x ``height`` (default grey); with their face boxes."""
    rng = np.random.default_rng(seed)
    canvas = grey_canvas(width, height) if background is None else cv2.resize(
        background, (width, height), interpolation=cv2.INTER_CUBIC)
    cols = int(np.ceil(np.sqrt(n * width / height)))
    cw, ch = width // cols, height // int(np.ceil(n / cols))
    boxes = []
    for k in range(n):
        r, c = divmod(k, cols)
        head = int(rng.uniform(lo, hi))
        boxes.append(paste_head(canvas, head, c * cw + int(rng.uniform(0, cw - head)),
                                r * ch + int(rng.uniform(0, ch - head))))
    return canvas, boxes


def grey_canvas(width: int = 640, height: int = 480, value: int = 128) -> np.ndarray:
    """A flat grey RGB uint8 frame."""
    return np.full((height, width, 3), value, np.uint8)


def save(path: Path, array: np.ndarray, mode: str | None = None, **kwargs) -> Path:
    """Write ``array`` with PIL (format from the suffix), creating parent folders; returns ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    img = Image.fromarray(array)
    if mode is not None:
        img = img.convert(mode)
    img.save(path, **kwargs)
    return path


def write_bytes(path: Path, data: bytes) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


@pytest.fixture(scope="module")
def analyzer():
    """One default Analyzer (CenterFace + default classifier) per test module: sessions are slow to build."""
    import openfer

    return openfer.Analyzer()


@pytest.fixture(scope="module")
def classifier():
    """The shipped default classifier, loaded once per module."""
    import openfer

    return openfer.load_classifier("default")


def moving_faces_video(path: Path, tracks: dict[int, list], size: tuple[int, int] = (320, 240), fps: float = 30.0,
                       codec: str = "MJPG") -> dict[int, list]:
    """Write a video of astronaut heads moving over a grey background; returns the true face box per person.

    Args:
        tracks: person -> one ``(x, y, head_height)`` per frame, or None where that person is absent. All lists
            have the video's length.
        codec: FourCC; "MJPG" in .avi decodes everywhere OpenCV does and cuts cleanly for truncation tests.

    Returns:
        person -> per frame the expected face box (x1, y1, x2, y2), or None where absent.
    """
    n = len(next(iter(tracks.values())))
    w, h = size
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*codec), fps, size)
    truth: dict[int, list] = {p: [] for p in tracks}
    for i in range(n):
        canvas = grey_canvas(w, h)
        for person, steps in tracks.items():
            truth[person].append(paste_head(canvas, steps[i][2], *steps[i][:2]) if steps[i] else None)
        writer.write(cv2.cvtColor(canvas, cv2.COLOR_RGB2BGR))
    writer.release()
    return truth


def video_with_sound(path: Path, sound: np.ndarray | None, seconds: float = 4.0, fps: int = 10) -> None:
    """An H.264 MP4 of the astronaut photo with ``sound`` (16 kHz mono) as AAC, or silent."""
    import av

    img = astronaut()[::2, ::2].copy()
    with av.open(str(path), "w") as c:
        v = c.add_stream("libx264", rate=fps)
        v.width, v.height, v.pix_fmt = img.shape[1], img.shape[0], "yuv420p"
        a = None
        if sound is not None:
            a = c.add_stream("aac", rate=16000)
            a.layout = "mono"
        for _ in range(int(seconds * fps)):
            c.mux(v.encode(av.VideoFrame.from_ndarray(img, format="rgb24")))
        c.mux(v.encode())
        if a is not None:
            fr = av.AudioFrame.from_ndarray((sound * 32767).astype(np.int16).reshape(1, -1), format="s16",
                                            layout="mono")
            fr.sample_rate = 16000
            c.mux(a.encode(fr))
            c.mux(a.encode())
