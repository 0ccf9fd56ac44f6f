"""Bundled sample inputs: public-domain photos that ship inside scikit-image (no download)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def demo_images() -> dict[str, np.ndarray]:
    """Name -> RGB image: NASA's astronaut portrait (one face) and a cat (no human face)."""
    import skimage.data

    return {"astronaut.png": skimage.data.astronaut(), "chelsea_the_cat.png": skimage.data.chelsea()}


def write_demo_images(folder: str | Path) -> list[Path]:
    """Write the demo images as PNG files into ``folder``; returns their paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, img in demo_images().items():
        p = folder / name
        Image.fromarray(img).save(p)
        paths.append(p)
    return paths
