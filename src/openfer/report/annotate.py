"""Draw faces on an image: box, 5 landmarks, top label and a probability bar per class."""

from __future__ import annotations

import cv2
import numpy as np

from openfer.types import Face

#: One BGR-free RGB colour per canonical class, chosen to stay distinct for common colour-vision deficiencies.
CLASS_COLOURS: dict[str, tuple[int, int, int]] = {
    "neutral": (200, 200, 200), "happiness": (240, 200, 40), "surprise": (86, 180, 233),
    "sadness": (0, 114, 178), "anger": (213, 94, 0), "disgust": (0, 158, 115),
    "fear": (204, 121, 167), "contempt": (150, 150, 60),
}


def annotate(image: np.ndarray, faces: list[Face], bars: bool = True) -> np.ndarray:
    """A copy of RGB ``image`` with every face drawn; the original is not changed."""
    out = image.copy()
    h, w = out.shape[:2]
    unit = max(1.0, min(h, w) / 640)  # line and text scale grow with the image
    thick = max(1, int(round(2 * unit)))
    font, fscale = cv2.FONT_HERSHEY_SIMPLEX, 0.5 * unit
    for f in faces:
        colour = CLASS_COLOURS.get(f.expression or "", (255, 255, 255))
        x1, y1, x2, y2 = (int(round(v)) for v in f.box)
        cv2.rectangle(out, (x1, y1), (x2, y2), colour, thick, cv2.LINE_AA)
        if f.geometry is not None:  # the face mesh, one faint dot per point, under the 5 landmarks
            for x, y in f.geometry.landmarks[:, :2]:
                cv2.circle(out, (int(round(x)), int(round(y))), max(1, thick // 2), (120, 220, 255), -1)
        if np.isfinite(f.landmarks).all():
            for x, y in f.landmarks:
                cv2.circle(out, (int(round(x)), int(round(y))), thick + 1, (0, 255, 0), -1, cv2.LINE_AA)
        label = f"{f.expression} {f.probabilities.get(f.expression, 0):.2f}" if f.expression else f"face {f.score:.2f}"
        if f.track_id is not None:  # video: the face's identity first, so it can be followed across frames
            label = f"#{f.track_id} {label}"
        (tw, th), base = cv2.getTextSize(label, font, fscale, thick)
        ty = y1 - base - 2 if y1 - th - base - 2 >= 0 else y2 + th + 2
        cv2.rectangle(out, (x1, ty - th - 2), (x1 + tw + 4, ty + base), colour, -1)
        cv2.putText(out, label, (x1 + 2, ty), font, fscale, (0, 0, 0), thick, cv2.LINE_AA)
        if bars and f.probabilities:
            _draw_bars(out, f, x2 + 4 * thick, y1, unit)
    return out


def _draw_bars(out: np.ndarray, f: Face, x0: int, y0: int, unit: float) -> None:
    """Horizontal bars, one per class, right of the box (left of it when there is no room)."""
    h, w = out.shape[:2]
    font, fscale, row = cv2.FONT_HERSHEY_SIMPLEX, 0.4 * unit, int(14 * unit)
    bar_w, text_w = int(60 * unit), int(70 * unit)
    if x0 + text_w + bar_w > w:
        x0 = max(0, int(f.box[0]) - text_w - bar_w - 4)
    for i, (name, p) in enumerate(sorted(f.probabilities.items(), key=lambda kv: -kv[1])):
        y = y0 + i * row
        if y + row > h:
            break
        overlay_bg = out[y : y + row, x0 : x0 + text_w + bar_w]
        overlay_bg[:] = (overlay_bg * 0.4).astype(out.dtype)
        cv2.putText(out, name[:9], (x0 + 2, y + row - 4), font, fscale, (255, 255, 255), 1, cv2.LINE_AA)
        cv2.rectangle(out, (x0 + text_w, y + 2), (x0 + text_w + int(bar_w * p), y + row - 2),
                      CLASS_COLOURS.get(name, (255, 255, 255)), -1)
