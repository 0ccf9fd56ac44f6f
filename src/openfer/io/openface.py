"""Geometry columns of rows and CSVs: OpenFace 2.x names and units where the quantity matches, prefixed extras.

OpenFace-named columns (same name, unit and sign convention as OpenFace 2.x's FeatureExtraction CSV):
``gaze_0_x..z``, ``gaze_1_x..z``, ``gaze_angle_x/y`` (radians), ``pose_Tx/Ty/Tz`` (mm), ``pose_Rx/Ry/Rz``
(radians), ``x_0..x_477``, ``y_0..y_477`` (pixels). The landmark indices are MediaPipe's 478-point mesh, not
OpenFace's 68 points. Our extras carry a prefix OpenFace never uses: ``mesh_ok``, ``q_*`` (quality flags),
``sharpness``, ``proxy_AU*`` (AU proxies, not OpenFace's ``AU*_r``/``AU*_c``) and ``bs_*`` (blendshapes).
Column by column: docs/geometry.md.
"""

from __future__ import annotations

import math
from typing import Any

from openfer.geometry.au import AU_PROXY_TABLE
from openfer.geometry.quality import QUALITY_FLAGS
from openfer.types import Geometry

#: MediaPipe's 52 blendshape names, in the model's output order.
BLENDSHAPE_NAMES: tuple[str, ...] = (
    "_neutral", "browDownLeft", "browDownRight", "browInnerUp", "browOuterUpLeft", "browOuterUpRight", "cheekPuff",
    "cheekSquintLeft", "cheekSquintRight", "eyeBlinkLeft", "eyeBlinkRight", "eyeLookDownLeft", "eyeLookDownRight",
    "eyeLookInLeft", "eyeLookInRight", "eyeLookOutLeft", "eyeLookOutRight", "eyeLookUpLeft", "eyeLookUpRight",
    "eyeSquintLeft", "eyeSquintRight", "eyeWideLeft", "eyeWideRight", "jawForward", "jawLeft", "jawOpen", "jawRight",
    "mouthClose", "mouthDimpleLeft", "mouthDimpleRight", "mouthFrownLeft", "mouthFrownRight", "mouthFunnel",
    "mouthLeft", "mouthLowerDownLeft", "mouthLowerDownRight", "mouthPressLeft", "mouthPressRight", "mouthPucker",
    "mouthRight", "mouthRollLower", "mouthRollUpper", "mouthShrugLower", "mouthShrugUpper", "mouthSmileLeft",
    "mouthSmileRight", "mouthStretchLeft", "mouthStretchRight", "mouthUpperUpLeft", "mouthUpperUpRight",
    "noseSneerLeft", "noseSneerRight",
)
NUM_MESH_POINTS = 478

GAZE_COLUMNS = (*(f"gaze_{e}_{a}" for e in (0, 1) for a in "xyz"), "gaze_angle_x", "gaze_angle_y")
POSE_COLUMNS = ("pose_Tx", "pose_Ty", "pose_Tz", "pose_Rx", "pose_Ry", "pose_Rz")
LANDMARK_COLUMNS = (*(f"x_{i}" for i in range(NUM_MESH_POINTS)), *(f"y_{i}" for i in range(NUM_MESH_POINTS)))
#: Every geometry column, in order: OpenFace-named ones first, then our prefixed extras.
GEOMETRY_COLUMNS: tuple[str, ...] = (
    "mesh_ok", *GAZE_COLUMNS, *POSE_COLUMNS, *LANDMARK_COLUMNS, *(f"q_{q}" for q in QUALITY_FLAGS), "sharpness",
    *(f"proxy_{au}" for au in AU_PROXY_TABLE), *(f"bs_{b}" for b in BLENDSHAPE_NAMES),
)
#: Geometry columns that the video summary (``--summary``) gives per-person statistics for: pose, gaze angles,
#: quality flags (their mean is the share of frames flagged), sharpness and AU proxies.
SUMMARY_COLUMNS: tuple[str, ...] = (
    "gaze_angle_x", "gaze_angle_y", *POSE_COLUMNS, *(f"q_{q}" for q in QUALITY_FLAGS), "sharpness",
    *(f"proxy_{au}" for au in AU_PROXY_TABLE),
)
#: Geometry columns holding integers (0/1); the rest are floats.
INT_COLUMNS: frozenset[str] = frozenset({"mesh_ok", *(f"q_{q}" for q in QUALITY_FLAGS)})


def geometry_values(g: Geometry | None) -> dict[str, Any]:
    """The geometry columns of one face: ``mesh_ok=0`` and None elsewhere when ``g`` is None."""
    if g is None:
        out: dict[str, Any] = dict.fromkeys(GEOMETRY_COLUMNS)
        out["mesh_ok"] = 0
        return out
    r = lambda v, n=5: round(float(v), n) if math.isfinite(v) else None  # noqa: E731 - local shorthand
    out = {"mesh_ok": 1}
    out.update(zip(GAZE_COLUMNS, (r(v) for v in (*g.gaze.reshape(-1), *g.gaze_angle))))
    out.update(zip(POSE_COLUMNS, (*(r(v, 1) for v in g.translation), *(r(math.radians(v)) for v in g.pose))))
    out.update(zip(LANDMARK_COLUMNS, (r(v, 2) for v in (*g.landmarks[:, 0], *g.landmarks[:, 1]))))
    out.update((f"q_{q}", int(bool(g.quality.get(q)))) for q in QUALITY_FLAGS)
    out["sharpness"] = r(g.sharpness, 2)
    out.update((f"proxy_{au}", r(g.au_proxies[au], 4) if au in g.au_proxies else None) for au in AU_PROXY_TABLE)
    out.update((f"bs_{b}", r(g.blendshapes[b], 4) if b in g.blendshapes else None) for b in BLENDSHAPE_NAMES)
    return out


def summary_values(g: Geometry | None) -> dict[str, float]:
    """The ``SUMMARY_COLUMNS`` of one face's geometry (empty when it has none)."""
    if g is None:
        return {}
    v = geometry_values(g)
    return {c: float(v[c]) for c in SUMMARY_COLUMNS if v[c] is not None}
