"""The result types that cross every stage: one ``Face`` per detected face, one ``ImageResult`` per photo or video
frame, and their one serializer (``to_dict`` for JSON, ``to_rows`` for tables).

Serialized names are the same in every output (JSON Lines, CSV/Parquet rows, the service's answers, the WebSocket
messages, explanations): ``confidence`` (``Face.score``), ``face`` (a face's index in its image, from 0),
``face_id`` (``Face.track_id``, the person followed through a video, from 0), ``frame`` (from 1, as OpenFace) and
``timestamp`` (seconds).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

#: Names of the five landmarks, in the order of ``Face.landmarks`` rows.
LANDMARK_NAMES: tuple[str, ...] = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")


@dataclass(frozen=True)
class Explanation:
    """Why a classifier gave its probability for one class to one face (``openfer.explain``).

    Attributes:
        method: ``occlusion``, ``rise``, ``gradcam`` or ``gradcam++``.
        target: the class explained (by default the face's top class).
        probability: the explained model's probability of ``target`` for this face, in [0, 1].
        heatmap: float32 [S, S] over the aligned S x S crop the classifier read; larger = more evidence for
            ``target``. Units depend on the method: occlusion and RISE give the change in probability when the
            pixel is visible rather than covered (may be negative: covering there raised the probability);
            Grad-CAM gives a non-negative map scaled to a maximum of 1.
        crop_to_image: float64 [2, 3] affine matrix mapping crop pixels (x, y, 1) to image pixels, so the heatmap
            can be drawn over the frame (``cv2.warpAffine(heatmap, crop_to_image, (W, H))``).
        regions: share of the positive evidence (sum of the positive heatmap) per face region: ``brows_eyes``,
            ``nose``, ``mouth_jaw`` and ``other`` (forehead, cheeks, hair, background); sums to 1, or all 0 when
            the heatmap has no positive evidence.
        region_areas: share of the crop's pixels in each region (same keys), to compare ``regions`` against.
        rationale: one plain sentence built only from ``regions`` and ``probability``.
        regions_from: what placed the regions: ``mesh`` (the geometry stage's 478 points), ``landmarks`` (the
            5 detector landmarks) or ``template`` (a face without landmarks).
    """

    method: str
    target: str
    probability: float
    heatmap: np.ndarray
    crop_to_image: np.ndarray
    regions: dict[str, float]
    region_areas: dict[str, float]
    rationale: str
    regions_from: str = "landmarks"

    def __post_init__(self) -> None:
        hm = np.asarray(self.heatmap, dtype=np.float32)
        if hm.ndim != 2 or hm.shape[0] != hm.shape[1]:
            raise ValueError(f"heatmap must be square [S, S], got shape {hm.shape}")
        m = np.asarray(self.crop_to_image, dtype=np.float64)
        if m.shape != (2, 3):
            raise ValueError(f"crop_to_image must have shape (2, 3), got {m.shape}")
        object.__setattr__(self, "heatmap", hm)
        object.__setattr__(self, "crop_to_image", m)

    def to_dict(self, decimals: int = 4, heatmap: bool = True) -> dict[str, Any]:
        """JSON-ready dict; ``heatmap`` (rows of the S x S map, 4 significant decimals) can be left out."""
        r = lambda v: round(float(v), decimals)  # noqa: E731 - local shorthand
        out: dict[str, Any] = {
            "method": self.method, "target": self.target, "probability": r(self.probability),
            "regions": {k: r(v) for k, v in self.regions.items()},
            "region_areas": {k: r(v) for k, v in self.region_areas.items()},
            "rationale": self.rationale,
            "regions_from": self.regions_from,
            "crop_to_image": [[r(v) for v in row] for row in self.crop_to_image],
        }
        if heatmap:
            out["heatmap"] = [[r(v) for v in row] for row in self.heatmap]
        return out


@dataclass(frozen=True)
class Geometry:
    """What the geometry stage (``openfer.geometry``, ``[geometry]`` extra) measures on one face.

    Coordinates follow OpenFace 2.x's camera frame: x to the image right, y down, z away from the camera.
    Column by column reference (units, conventions, how each value is derived): docs/geometry.md.

    Attributes:
        landmarks: float32 [478, 3], MediaPipe's face mesh with irises (468-472 and 473-477 are the iris centre
            and edge of the image-left and image-right eye): x, y in pixels of the analysed image, z relative depth
            in the same pixel scale (larger = farther from the camera; 0 near the head's centre).
        pose: (pitch, yaw, roll) in degrees, OpenFace's ``pose_Rx, pose_Ry, pose_Rz`` (R = Rx Ry Rz), of the head
            in the camera frame (OpenFace's default camera). Pitch > 0: face turned down, yaw > 0: face turned
            towards the image left (the subject's right), roll > 0: head tilted clockwise in the image. A face off
            the image centre that looks into the lens is turned towards the centre in these terms.
        translation: (x, y, z) of the head centre in millimetres from the camera, OpenFace's ``pose_T*``: an
            estimate that assumes an average head size and OpenFace's default camera (focal length from the image
            size, see ``openfer.geometry.pose.openface_focal``).
        gaze: float32 [2, 3] unit gaze vectors (camera frame, z < 0 looks at the camera) of eye 0 (leftmost in
            the image) and eye 1, as OpenFace's ``gaze_0_*`` and ``gaze_1_*``.
        gaze_angle: (x, y) radians, OpenFace's ``gaze_angle_x, gaze_angle_y`` of the mean gaze vector: (0, 0)
            looks at the camera, x > 0 towards the image right, y > 0 down.
        blendshapes: MediaPipe's 52 blendshape scores in [0, 1], by name (``mouthSmileLeft`` ...).
        au_proxies: ``AU01`` ... ``AU45`` -> score in [0, 1] derived from blendshapes by the table in
            ``openfer.geometry.au``. Proxies, not FACS-coded action units or OpenFace's AU intensities.
        quality: flag name -> True where the problem is present (``extreme_pose``, ``eyes_closed``,
            ``too_small``, ``blurry``); thresholds in ``openfer.geometry.quality.QualityThresholds``.
        sharpness: variance of the Laplacian of the face, grey, resized to 112 px (higher = sharper).
    """

    landmarks: np.ndarray
    pose: tuple[float, float, float]
    translation: tuple[float, float, float]
    gaze: np.ndarray
    gaze_angle: tuple[float, float]
    blendshapes: dict[str, float]
    au_proxies: dict[str, float]
    quality: dict[str, bool]
    sharpness: float

    def __post_init__(self) -> None:
        lm = np.asarray(self.landmarks, dtype=np.float32)
        gz = np.asarray(self.gaze, dtype=np.float32)
        if lm.shape != (478, 3):
            raise ValueError(f"geometry landmarks must have shape (478, 3), got {lm.shape}")
        if gz.shape != (2, 3):
            raise ValueError(f"gaze must have shape (2, 3), got {gz.shape}")
        object.__setattr__(self, "landmarks", lm)
        object.__setattr__(self, "gaze", gz)

    def to_dict(self, decimals: int = 4) -> dict[str, Any]:
        """JSON-ready dict with the same keys as the attributes (landmarks rounded to 0.01 px)."""
        r = lambda v: round(float(v), decimals)  # noqa: E731 - local shorthand
        return {
            "pose": {"pitch": r(self.pose[0]), "yaw": r(self.pose[1]), "roll": r(self.pose[2])},
            "translation": [r(v) for v in self.translation],
            "gaze": [[r(v) for v in g] for g in self.gaze],
            "gaze_angle": [r(v) for v in self.gaze_angle],
            "au_proxies": {k: r(v) for k, v in self.au_proxies.items()},
            "blendshapes": {k: r(v) for k, v in self.blendshapes.items()},
            "quality": {k: bool(v) for k, v in self.quality.items()},
            "sharpness": round(float(self.sharpness), 2),
            "landmarks": np.round(self.landmarks.astype(np.float64), 2).tolist(),
        }


@dataclass(frozen=True)
class Face:
    """One face in one image, filled in stage by stage (stages return new ``Face`` objects, never mutate).

    Attributes:
        box: (x1, y1, x2, y2) in pixels of the analysed image (float, x2/y2 exclusive edges).
        score: detector confidence in [0, 1].
        landmarks: float32 [5, 2] (x, y) pixels, rows in ``LANDMARK_NAMES`` order (image left/right as seen,
            i.e. "left_eye" is the eye with the smaller x in an upright frontal face).
        expression: the label: the top class after the classifier's decision rule (``openfer.classify.prior``), or
            None before classification.
        probabilities: class name -> probability (sums to 1), empty before classification.
        track_id: identity of this face across the frames of a video (``openfer.track``), an int >= 0 that stays
            the same for one person through motion and short gaps; None for still images and for faces the
            tracker has not (yet) confirmed.
        explanation: why the classifier said what it said (``openfer.explain``), or None when not asked for.
        geometry: landmarks, head pose, gaze, blendshapes, AU proxies and quality flags from the geometry stage
            (``openfer.geometry``); None when that stage did not run or found no face mesh in the box.
        damage: how likely the face is clean, covered over the eyes, covered over the mouth, or low in detail
            (kind -> probability, summing to 1), from the damage probe of models that have one (``default-soft``;
            ``openfer.classify.damage``): why such a model's answer is softer. Empty for other models.
        embedding: float32 [D] features of the face from the expression network (``Analyzer.embed``,
            ``openfer embed``; ``openfer.classify.features``), None unless asked for. Not part of ``to_dict``:
            ``openfer embed`` writes them to NPZ/Parquet tables instead.
    """

    box: tuple[float, float, float, float]
    score: float
    landmarks: np.ndarray = field(default_factory=lambda: np.full((5, 2), np.nan, np.float32))
    expression: str | None = None
    probabilities: dict[str, float] = field(default_factory=dict)
    track_id: int | None = None
    explanation: Explanation | None = None
    geometry: Geometry | None = None
    damage: dict[str, float] = field(default_factory=dict)
    embedding: np.ndarray | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if len(self.box) != 4:
            raise ValueError(f"box must have 4 numbers (x1, y1, x2, y2), got {self.box!r}")
        lm = np.asarray(self.landmarks, dtype=np.float32)
        if lm.shape != (5, 2):
            raise ValueError(f"landmarks must have shape (5, 2), got {lm.shape}")
        object.__setattr__(self, "landmarks", lm)
        object.__setattr__(self, "box", tuple(float(v) for v in self.box))

    @property
    def width(self) -> float:
        """Box width in pixels."""
        return self.box[2] - self.box[0]

    @property
    def height(self) -> float:
        """Box height in pixels."""
        return self.box[3] - self.box[1]

    def scaled(self, sx: float, sy: float | None = None) -> Face:
        """This face in a copy of its image resized ``sx`` times in x and ``sy`` (default ``sx``) in y, e.g. from a
        reduced copy back to the original: the box, the landmarks and the explanation's crop-to-image transform."""
        sy = sx if sy is None else sy
        x1, y1, x2, y2 = self.box
        expl = self.explanation and replace(self.explanation,
                                            crop_to_image=self.explanation.crop_to_image * np.array([[sx], [sy]]))
        return replace(self, box=(x1 * sx, y1 * sy, x2 * sx, y2 * sy),
                       landmarks=self.landmarks * np.array([sx, sy], np.float32), explanation=expl)

    def to_dict(self, decimals: int = 4, index: int | None = None, heatmap: bool = True) -> dict[str, Any]:
        """JSON-ready dict: ``face`` (``index``, when given), box, confidence, landmarks ([[x, y] x5]), expression,
        probabilities; ``face_id`` when tracked, ``damage``, ``geometry`` and ``explanation`` (its ``heatmap``
        unless ``heatmap`` is False) when set, so a photo's faces keep their short schema."""
        r = lambda v: round(float(v), decimals)  # noqa: E731 - local shorthand
        out: dict[str, Any] = {} if index is None else {"face": int(index)}
        out.update({
            "box": [r(v) for v in self.box],
            "confidence": r(self.score),
            "landmarks": [[r(x), r(y)] for x, y in self.landmarks] if np.isfinite(self.landmarks).all() else None,
            "expression": self.expression,
            "probabilities": {k: r(v) for k, v in self.probabilities.items()},
        })
        if self.track_id is not None:
            out["face_id"] = int(self.track_id)
        if self.damage:
            out["damage"] = {k: r(v) for k, v in self.damage.items()}
        if self.explanation is not None:
            out["explanation"] = self.explanation.to_dict(decimals, heatmap=heatmap)
        if self.geometry is not None:
            out["geometry"] = self.geometry.to_dict(decimals)
        return out


@dataclass(frozen=True)
class ImageResult:
    """What openfer found in one photo or one video frame: the value every output is written from.

    Attributes:
        faces: the faces found, highest detection score first (a tuple; empty when there is none).
        source: the input as the user named it (a path), or None (an upload, a live stream).
        width, height: size of the analysed image in pixels (after EXIF rotation), None when it could not be read.
        frame: the frame's index in its video, counted from 0 as decoders do (serialized from 1, as OpenFace);
            None for a photo.
        timestamp: the frame's time in seconds from the start of the video; None for a photo.
        error: why the input could not be read or analysed (then ``faces`` holds what was found before), or None.
        annotated: the path of the picture drawn for this input (``--annotate``, explanations), or None.
        detect_sides: the longer side in pixels of each pass the face detector made, when it says.
    """

    faces: tuple[Face, ...] = ()
    source: str | None = None
    width: int | None = None
    height: int | None = None
    frame: int | None = None
    timestamp: float | None = None
    error: str | None = None
    annotated: str | None = None
    detect_sides: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "faces", tuple(self.faces))
        if self.detect_sides is not None:
            object.__setattr__(self, "detect_sides", tuple(int(v) for v in self.detect_sides))

    @property
    def ok(self) -> bool:
        """False when the input could not be read or analysed."""
        return self.error is None

    def to_dict(self, decimals: int = 4, heatmap: bool = True) -> dict[str, Any]:
        """The JSON record (docs/outputs.md): ``path``, then ``frame`` (from 1) and ``timestamp`` for a video frame,
        ``ok``, ``error``, ``width``, ``height``, ``num_faces``, ``faces`` (each ``Face.to_dict`` with its index as
        ``face``; explanations without ``heatmap`` when it is False), ``annotated`` and ``detect_sides``."""
        out: dict[str, Any] = {"path": self.source}
        if self.frame is not None:
            out["frame"] = int(self.frame) + 1
            out["timestamp"] = None if self.timestamp is None else round(float(self.timestamp), 4)
        out.update(ok=self.ok, error=self.error, width=self.width, height=self.height, num_faces=len(self.faces),
                   faces=[f.to_dict(decimals, index=i, heatmap=heatmap) for i, f in enumerate(self.faces)],
                   annotated=self.annotated,
                   detect_sides=None if self.detect_sides is None else list(self.detect_sides))
        return out

    def to_rows(self, classes: tuple[str, ...], geometry: bool = False, damage: tuple[str, ...] = ()
                ) -> list[dict[str, Any]]:
        """Table rows (``openfer.io.rows.row_columns``), one per face: a photo's rows start with ``path`` and
        ``face`` and a photo without faces has none; a frame's start with ``frame``, ``timestamp`` and ``face_id``,
        and a frame without faces has one ``success = 0`` row, as OpenFace writes them; ``damage``: the kinds of
        the model's damage probe, one ``damage_<kind>`` column each."""
        from openfer.io.rows import result_rows

        return result_rows(self, classes, geometry, damage)
