"""Action-unit proxies: FACS action-unit names mapped onto MediaPipe blendshape scores by a fixed table.

These are **proxies**: MediaPipe's blendshapes were trained to drive 3D avatars (ARKit-style names), not on
FACS-coded data, and nobody has validated this table against human AU coding. Use them for within-person
changes (a smile getting stronger, blinks over time), not as AU intensities comparable with OpenFace's
``AU12_r`` or a FACS coder's A-E scores.
"""

from __future__ import annotations

#: AU name -> (description, blendshapes averaged). Bilateral AUs average the left and right blendshape.
AU_PROXY_TABLE: dict[str, tuple[str, tuple[str, ...]]] = {
    "AU01": ("inner brow raiser", ("browInnerUp",)),
    "AU02": ("outer brow raiser", ("browOuterUpLeft", "browOuterUpRight")),
    "AU04": ("brow lowerer", ("browDownLeft", "browDownRight")),
    "AU05": ("upper lid raiser", ("eyeWideLeft", "eyeWideRight")),
    "AU06": ("cheek raiser", ("cheekSquintLeft", "cheekSquintRight")),
    "AU07": ("lid tightener", ("eyeSquintLeft", "eyeSquintRight")),
    "AU09": ("nose wrinkler", ("noseSneerLeft", "noseSneerRight")),
    "AU10": ("upper lip raiser", ("mouthUpperUpLeft", "mouthUpperUpRight")),
    "AU12": ("lip corner puller", ("mouthSmileLeft", "mouthSmileRight")),
    "AU14": ("dimpler", ("mouthDimpleLeft", "mouthDimpleRight")),
    "AU15": ("lip corner depressor", ("mouthFrownLeft", "mouthFrownRight")),
    "AU17": ("chin raiser", ("mouthShrugLower",)),
    "AU18": ("lip pucker", ("mouthPucker",)),
    "AU20": ("lip stretcher", ("mouthStretchLeft", "mouthStretchRight")),
    "AU22": ("lip funneler", ("mouthFunnel",)),
    "AU24": ("lip pressor", ("mouthPressLeft", "mouthPressRight")),
    "AU26": ("jaw drop", ("jawOpen",)),
    "AU28": ("lip suck", ("mouthRollLower", "mouthRollUpper")),
    "AU34": ("cheek puff", ("cheekPuff",)),
    "AU45": ("blink", ("eyeBlinkLeft", "eyeBlinkRight")),
}


def au_proxies(blendshapes: dict[str, float]) -> dict[str, float]:
    """AU name -> mean of its blendshapes' scores (in [0, 1]), for every AU in ``AU_PROXY_TABLE``.

    Raises:
        KeyError: a blendshape the table needs is missing (not MediaPipe's 52-blendshape set).
    """
    return {au: sum(blendshapes[b] for b in names) / len(names) for au, (_, names) in AU_PROXY_TABLE.items()}
