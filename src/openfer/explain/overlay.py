"""Pictures of explanations: the heatmap over each face in the frame, and a panel per face with the aligned crop,
the region outlines, one bar per region and the sentence."""

from __future__ import annotations

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from openfer.explain.core import face_regions
from openfer.explain.rationale import REGION_LABELS
from openfer.explain.regions import REGION_NAMES, draw_region_outlines
from openfer.types import Face

#: Colour of each region's bar (RGB), distinct for common colour-vision deficiencies.
REGION_COLOURS = {"brows_eyes": (86, 180, 233), "nose": (230, 159, 0), "mouth_jaw": (213, 94, 0),
                  "other": (160, 160, 160)}
THUMB = 160  # side of the crop thumbnail in the panel, pixels
ALPHA = 0.5  # opacity of the heatmap where it is strongest
#: Colour map of the evidence: perceptually uniform with brightness rising with the value (readable in grey and
#: by colour-blind people), unlike the rainbow "jet" whose bright middle reads as the strongest part.
COLORMAP = cv2.COLORMAP_INFERNO
SCALE_H = 26  # height of the colour scale under the thumbnail, pixels


def colour_heatmap(heatmap: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(RGB uint8 [S, S, 3] colour map of the positive evidence, float [S, S] opacity in [0, ALPHA]).

    The positive part is divided by its maximum; weak evidence is drawn faint, so the picture shows where the
    evidence is without painting the whole face."""
    pos = np.clip(np.asarray(heatmap, np.float32), 0, None)
    norm = pos / pos.max() if pos.max() > 0 else pos
    return _colours(norm), ALPHA * np.sqrt(norm)


def _colours(norm: np.ndarray) -> np.ndarray:
    """RGB uint8 colours of values in [0, 1] (``COLORMAP``)."""
    return cv2.cvtColor(cv2.applyColorMap((norm * 255).astype(np.uint8), COLORMAP), cv2.COLOR_BGR2RGB)


def colour_scale(width: int, height: int = 10) -> np.ndarray:
    """RGB uint8 [height, width, 3]: the heatmap's colours from no evidence (left) to the face's strongest (right),
    fading into the panel's background where weak, as they fade into the face."""
    norm = np.linspace(0, 1, width, dtype=np.float32)[None].repeat(height, 0)
    return _blend(np.full((height, width, 3), 24, np.uint8), _colours(norm), np.sqrt(norm))


def _blend(base: np.ndarray, colour: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    a = alpha[..., None]
    return (base.astype(np.float32) * (1 - a) + colour.astype(np.float32) * a).astype(np.uint8)


def heatmap_on_image(image: np.ndarray, faces: list[Face]) -> np.ndarray:
    """A copy of RGB ``image`` with every explained face's heatmap warped back onto it and its box drawn."""
    out = image.copy()
    h, w = out.shape[:2]
    for f in faces:
        e = f.explanation
        if e is None:
            continue
        colour, alpha = colour_heatmap(e.heatmap)
        colour = cv2.warpAffine(colour, e.crop_to_image, (w, h), flags=cv2.INTER_LINEAR)
        alpha = cv2.warpAffine(alpha, e.crop_to_image, (w, h), flags=cv2.INTER_LINEAR)
        out = _blend(out, colour, alpha)
        x1, y1, x2, y2 = (int(round(v)) for v in f.box)
        cv2.rectangle(out, (x1, y1), (x2, y2), (255, 255, 255), max(1, round(min(h, w) / 320)), cv2.LINE_AA)
    return out


def _font(size: int):
    return ImageFont.load_default(size=size)


def _wrap(draw: ImageDraw.ImageDraw, text: str, font, width: int) -> list[str]:
    lines, line = [], ""
    for word in text.split():
        trial = f"{line} {word}".strip()
        if draw.textlength(trial, font=font) <= width or not line:
            line = trial
        else:
            lines.append(line)
            line = word
    return lines + ([line] if line else [])


def face_panel(image: np.ndarray, face: Face, index: int, width: int) -> np.ndarray:
    """RGB panel [THUMB + 20 + SCALE_H, width, 3] for one explained face (``index``: its place in the image's
    face list, the number drawn on the image): crop with heatmap, region outlines and the colour scale, region
    bars, the sentence."""
    e = face.explanation
    size = e.heatmap.shape[0]
    crop = cv2.warpAffine(image, cv2.invertAffineTransform(e.crop_to_image), (size, size), flags=cv2.INTER_AREA)
    colour, alpha = colour_heatmap(e.heatmap)
    thumb = _blend(crop, colour, alpha)
    thumb = cv2.resize(thumb, (THUMB, THUMB), interpolation=cv2.INTER_CUBIC)
    thumb_to_image = e.crop_to_image.copy()
    thumb_to_image[:, :2] *= size / THUMB
    masks, _ = face_regions(face, thumb_to_image, THUMB)  # the regions at thumbnail scale
    thumb = draw_region_outlines(thumb, masks)
    panel = Image.new("RGB", (width, THUMB + 20 + SCALE_H), (24, 24, 24))
    panel.paste(Image.fromarray(thumb), (10, 10))
    panel.paste(Image.fromarray(colour_scale(THUMB)), (10, THUMB + 14))
    draw = ImageDraw.Draw(panel)
    small, big = _font(13), _font(15)
    draw.text((10, THUMB + 26), "no evidence", font=_font(11), fill=(200, 200, 200))
    draw.text((10 + THUMB, THUMB + 26), "strongest", font=_font(11), fill=(200, 200, 200), anchor="ra")
    x0 = THUMB + 24
    draw.text((x0, 10), f"face {index}: {e.target} {e.probability:.2f}  ({e.method})", font=big,
              fill=(255, 255, 255))
    bar_x, bar_w = x0 + 150, max(60, min(220, width - x0 - 230))
    for i, name in enumerate(REGION_NAMES):
        y = 36 + i * 20
        label = "elsewhere" if name == "other" else REGION_LABELS[name]
        draw.text((x0, y), label, font=small, fill=(220, 220, 220))
        draw.rectangle((bar_x, y + 2, bar_x + bar_w, y + 14), outline=(90, 90, 90))
        draw.rectangle((bar_x, y + 2, bar_x + int(bar_w * e.regions[name]), y + 14), fill=REGION_COLOURS[name])
        draw.text((bar_x + bar_w + 8, y), f"{round(100 * e.regions[name])} % (area {round(100 * e.region_areas[name])} %)",
                  font=small, fill=(220, 220, 220))
    text = e.rationale.replace("\u2014", "-")  # the bundled font has no em dash
    for j, line in enumerate(_wrap(draw, text, small, width - x0 - 10)[:4]):
        draw.text((x0, 122 + j * 16), line, font=small, fill=(255, 255, 160))
    return np.asarray(panel)


def render_explanations(image: np.ndarray, faces: list[Face], min_width: int = 720) -> np.ndarray:
    """One RGB picture: ``image`` with heatmaps over the faces on top, one ``face_panel`` per explained face below
    (the image is centred on a dark strip when it is narrower than ``min_width``)."""
    top = heatmap_on_image(image, faces)
    width = max(min_width, top.shape[1])
    if top.shape[1] < width:
        pad = np.full((top.shape[0], width, 3), 24, np.uint8)
        x = (width - top.shape[1]) // 2
        pad[:, x : x + top.shape[1]] = top
        top = pad
    for i, f in enumerate(faces):
        if f.explanation is not None:
            x1, y1 = int(f.box[0]), int(f.box[1])
            cv2.putText(top, str(i), (x1 + 3 + (width - image.shape[1]) // 2, y1 + 18),
                        cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 255), 2, cv2.LINE_AA)
    panels = [face_panel(image, f, i, width) for i, f in enumerate(faces) if f.explanation is not None]
    return np.concatenate([top, *panels]) if panels else top
