"""Draw faces on an image: box, 5 landmarks and a label with the top class, or a panel with a bar per class.

Labels and panels are laid out before anything is drawn (``layout``): inside the image, clear of the other faces
and of each other where there is room, with text and lines sized from the face and the image.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from openfer.classify.damage import damage_note
from openfer.errors import UnknownNameError
from openfer.types import Face

#: One BGR-free RGB colour per canonical class, chosen to stay distinct for common colour-vision deficiencies.
CLASS_COLOURS: dict[str, tuple[int, int, int]] = {
    "neutral": (200, 200, 200), "happiness": (240, 200, 40), "surprise": (86, 180, 233),
    "sadness": (0, 114, 178), "anger": (213, 94, 0), "disgust": (0, 158, 115),
    "fear": (204, 121, 167), "contempt": (150, 150, 60),
}
#: ``auto``: panels when every face's panel fits clear of the others, else compact labels; ``panel``: always
#: panels (placed as clear as the image allows); ``compact``: box and top label only.
STYLES = ("auto", "panel", "compact")
#: ``auto`` draws panels for at most this many faces: more make a picture hard to read even when they fit.
AUTO_MAX_PANELS = 3

_FONT = cv2.FONT_HERSHEY_SIMPLEX
_FONT_PX = 22.0  # height in pixels of FONT_HERSHEY_SIMPLEX capitals plus baseline at scale 1

Rect = tuple[int, int, int, int]  # x1, y1, x2, y2 (x2, y2 exclusive), pixels


@dataclass(frozen=True)
class Placement:
    """Where one face's annotation goes: its label (text, box, font scale, stroke px) and panel box (or None)."""

    text: str
    label: Rect
    scale: float
    stroke: int
    panel: Rect | None = None
    clear: bool = True  # False when no place inside the image kept it off the other faces and annotations


def annotate(image: np.ndarray, faces: list[Face], style: str = "auto") -> np.ndarray:
    """A copy of RGB ``image`` with every face drawn in ``style`` (``STYLES``); the original is not changed."""
    out = image.copy()
    places = layout(out.shape, faces, style)
    for face, place in zip(faces, places):
        _draw_face(out, face, place)
    for face, place in zip(faces, places):  # labels last: no box or forced panel covers one
        _draw_label(out, face, place)
    return out


def layout(shape: tuple[int, ...], faces: list[Face], style: str = "auto") -> list[Placement]:
    """Where each face's label (and panel) goes in an image of ``shape`` (H, W, ...), in ``faces`` order."""
    if style not in STYLES:
        raise UnknownNameError(f"unknown annotation style {style!r}; choose one of {', '.join(STYLES)}")
    h, w = shape[:2]
    if style == "panel" or (style == "auto" and len(faces) <= AUTO_MAX_PANELS):
        placed = _place_all(faces, h, w, panels=True)
        if style == "panel" or all(p.clear for p in placed):
            return placed
    return _place_all(faces, h, w, panels=False)


def text_size(face: Face, h: int, w: int) -> float:
    """Text height in pixels for ``face`` in an H x W image: a sixth of the face, kept between 1.5 % and 4 % of
    the image's shorter side (at least 10 px), so labels read alike on small and huge pictures."""
    x1, y1, x2, y2 = face.box
    side = min(h, w)
    return float(np.clip(0.16 * min(x2 - x1, y2 - y1), max(10.0, 0.015 * side), max(12.0, 0.04 * side)))


def _label_text(face: Face) -> str:
    text = f"{face.expression} {face.probabilities.get(face.expression, 0):.2f}" if face.expression \
        else f"face {face.score:.2f}"
    note = damage_note(face.damage)
    text = f"{text} ({note})" if note else text  # why a model with a damage probe answered more softly
    return f"#{face.track_id} {text}" if face.track_id is not None else text  # video: identity first


def _place_all(faces: list[Face], h: int, w: int, panels: bool) -> list[Placement]:
    """Labels first (each clear of the faces and earlier labels), then panels clear of all of those."""
    boxes = [tuple(int(round(v)) for v in f.box) for f in faces]
    taken: list[Rect] = []
    out = []
    for i, face in enumerate(faces):
        px = text_size(face, h, w)
        text, scale = _label_text(face), px / _FONT_PX
        stroke = max(1, round(px / 12))
        (tw, th), base = cv2.getTextSize(text, _FONT, scale, stroke)
        pad = max(2, round(px / 6))
        if tw + 2 * pad > w:  # a label wider than the image: smaller type
            scale *= (w - 2 * pad) / tw
            (tw, th), base = cv2.getTextSize(text, _FONT, scale, stroke)
        size = (tw + 2 * pad, th + base + 2 * pad)
        rect, clear = _best(_around(boxes[i], size, inside=True), h, w, [b for j, b in enumerate(boxes) if j != i]
                            + taken)
        taken.append(rect)
        out.append(Placement(text, rect, scale, stroke, clear=clear))
    if not panels:
        return out
    for i, face in enumerate(faces):
        if not face.probabilities:
            continue
        size = _panel_size(face, out[i].scale, h)
        rect, clear = _best(_around(boxes[i], size, inside=False, gap=out[i].stroke * 2), h, w, boxes + taken)
        taken.append(rect)
        out[i] = Placement(out[i].text, out[i].label, out[i].scale, out[i].stroke, rect, out[i].clear and clear)
    return out


def _around(box: Rect, size: tuple[int, int], inside: bool, gap: int = 0) -> list[Rect]:
    """Candidate places of a ``size`` (w, h) rectangle by ``box``: for a label above, below or (``inside``)
    within its top edge, left- then right-aligned; for a panel right or left of it, top- then bottom-aligned."""
    x1, y1, x2, y2 = box
    w, h = size
    if inside:
        corners = [(x1, y1 - h), (x1, y2), (x1, y1), (x2 - w, y1 - h), (x2 - w, y2), (x2 - w, y1)]
    else:
        corners = [(x2 + gap, y1), (x1 - gap - w, y1), (x2 + gap, y2 - h), (x1 - gap - w, y2 - h)]
    return [(x, y, x + w, y + h) for x, y in corners]


def _best(candidates: list[Rect], h: int, w: int, obstacles: list[Rect]) -> tuple[Rect, bool]:
    """The first candidate, moved inside the image, that overlaps no obstacle (and True); else the one that
    overlaps least (and False)."""
    best, best_cover = None, None
    for x1, y1, x2, y2 in candidates:
        dx = max(0, -x1) - max(0, x2 - w)
        dy = max(0, -y1) - max(0, y2 - h)
        r = (max(0, x1 + dx), max(0, y1 + dy), min(w, x2 + dx), min(h, y2 + dy))
        cover = sum(_overlap(r, o) for o in obstacles)
        if cover == 0:
            return r, True
        if best_cover is None or cover < best_cover:
            best, best_cover = r, cover
    return best, False


def _overlap(a: Rect, b: Rect) -> int:
    """Area (px) shared by two rectangles."""
    return max(0, min(a[2], b[2]) - max(a[0], b[0])) * max(0, min(a[3], b[3]) - max(a[1], b[1]))


def _panel_size(face: Face, scale: float, h: int) -> tuple[int, int]:
    """(width, height) of a face's panel: one row per class (as many as fit in the image's height)."""
    row, names = _panel_row(scale), [n[:9] for n in face.probabilities]
    text_w = max(cv2.getTextSize(n, _FONT, 0.8 * scale, 1)[0][0] for n in names) + row // 2
    rows = min(len(names), max(1, h // row))
    return text_w + 4 * row, rows * row


def _panel_row(scale: float) -> int:
    return max(8, round(0.8 * scale * _FONT_PX * 1.3))


def _draw_face(out: np.ndarray, f: Face, p: Placement) -> None:
    """Box, mesh and landmarks and (when placed) panel of one face."""
    colour = CLASS_COLOURS.get(f.expression or "", (255, 255, 255))
    x1, y1, x2, y2 = (int(round(v)) for v in f.box)
    cv2.rectangle(out, (x1, y1), (x2, y2), colour, p.stroke + 1, cv2.LINE_AA)
    if f.geometry is not None:  # the face mesh, one faint dot per point, under the 5 landmarks
        for x, y in f.geometry.landmarks[:, :2]:
            cv2.circle(out, (int(round(x)), int(round(y))), max(1, p.stroke // 2), (120, 220, 255), -1)
    if np.isfinite(f.landmarks).all():
        for x, y in f.landmarks:
            cv2.circle(out, (int(round(x)), int(round(y))), p.stroke + 1, (0, 255, 0), -1, cv2.LINE_AA)
    if p.panel is not None:
        _draw_panel(out, f, p.panel, p.scale)


def _draw_label(out: np.ndarray, f: Face, p: Placement) -> None:
    """The face's label: black text on its class colour, in ``p.label``."""
    lx1, ly1, lx2, ly2 = p.label
    cv2.rectangle(out, (lx1, ly1), (lx2 - 1, ly2 - 1), CLASS_COLOURS.get(f.expression or "", (255, 255, 255)), -1)
    (_, th), base = cv2.getTextSize(p.text, _FONT, p.scale, p.stroke)
    pad = (ly2 - ly1 - th - base) // 2
    cv2.putText(out, p.text, (lx1 + pad, ly2 - pad - base), _FONT, p.scale, (0, 0, 0), p.stroke, cv2.LINE_AA)


def _draw_panel(out: np.ndarray, f: Face, rect: Rect, scale: float) -> None:
    """A darkened panel in ``rect`` with one row per class, most probable first: name and a bar of its colour."""
    x1, y1, x2, y2 = rect
    row = _panel_row(scale)
    bar_w = 4 * row
    region = out[y1:y2, x1:x2]
    region[:] = (region * 0.35).astype(out.dtype)
    for i, (name, p) in enumerate(sorted(f.probabilities.items(), key=lambda kv: -kv[1])):
        y = y1 + i * row
        if y + row > y2:
            break
        cv2.putText(out, name[:9], (x1 + row // 4, y + row - row // 4), _FONT, 0.8 * scale, (255, 255, 255), 1,
                    cv2.LINE_AA)
        cv2.rectangle(out, (x2 - bar_w, y + row // 5), (x2 - bar_w + int((bar_w - row // 4) * p), y + row - row // 5),
                      CLASS_COLOURS.get(name, (255, 255, 255)), -1)
