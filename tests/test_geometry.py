"""Geometry stage: pose/gaze maths, AU proxies, quality flags, columns, model file handling, and (when MediaPipe
and the shared model file are present) the real Face Landmarker on crafted images.

The real-model tests use ``$OPENFER_TEST_MODEL_DIR`` or ``../shared/models`` next to the repository and skip
with the reason when the file or MediaPipe is missing.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import http.server
import importlib.util
import math
import os
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from conftest import CLASSES, astronaut
from openfer.cli import app
from openfer.geometry import AU_PROXY_TABLE, GeometryEstimator, MeshResult, au_proxies, face_crop
from openfer.geometry.gaze import EYE_INDICES, IRIS_RADIUS, eye_gaze, gaze_angles
from openfer.geometry.model_file import (FACE_LANDMARKER, MODEL_DIR_ENV, ModelFile, ModelNotFoundError, fetch_model,
                                         find_model)
from openfer.geometry.pose import (euler_xyz, head_translation, line_of_sight_rotation, openface_focal,
                                   rotation_to_openface, rotation_xyz)
from openfer.geometry.quality import QUALITY_FLAGS, QualityThresholds, quality_flags, sharpness
from openfer.io.openface import BLENDSHAPE_NAMES, GEOMETRY_COLUMNS, geometry_values
from openfer.io.rows import RowWriter, read_rows, row_columns
from openfer.types import Face, Geometry, ImageResult

ASTRO_BOX = (181.5, 58.6, 269.9, 177.4)  # CenterFace's box on skimage's astronaut


def model_dir() -> Path:
    return Path(os.environ.get("OPENFER_TEST_MODEL_DIR") or Path(__file__).resolve().parents[1] / ".." / "shared" /
                "models")


def _real_model_reason() -> str | None:
    if importlib.util.find_spec("mediapipe") is None:
        return "mediapipe is not installed (pip install 'openfer[geometry]')"
    if not (model_dir() / FACE_LANDMARKER.filename).is_file():
        return f"no {FACE_LANDMARKER.filename} in {model_dir()} (set OPENFER_TEST_MODEL_DIR)"
    return None


needs_model = pytest.mark.skipif(_real_model_reason() is not None, reason=str(_real_model_reason()))


@functools.lru_cache(maxsize=None)
def estimator() -> GeometryEstimator:
    return GeometryEstimator(model_dir=model_dir())


def blendshapes(**scores: float) -> dict[str, float]:
    return {**dict.fromkeys(BLENDSHAPE_NAMES, 0.0), **scores}


def make_geometry(pose=(0.0, 0.0, 0.0), **kw) -> Geometry:
    """A Geometry with recognisable values (landmark i at x = i, y = 1000 + i)."""
    bs = kw.pop("blendshapes", blendshapes(mouthSmileLeft=0.8, mouthSmileRight=0.6))
    i = np.arange(478, dtype=np.float32)
    args = dict(landmarks=np.stack([i, 1000 + i, np.zeros(478, np.float32)], 1), pose=pose,
                translation=(1.0, 2.0, 600.0), gaze=np.array([[0, 0, -1], [0.6, 0, -0.8]]), gaze_angle=(0.1, -0.2),
                blendshapes=bs, au_proxies=au_proxies(bs), quality=dict.fromkeys(QUALITY_FLAGS, False),
                sharpness=123.4)
    args.update(kw)
    return Geometry(**args)


# ---- pose -------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("angles", [(0, 0, 0), (0.3, 0, 0), (0, -0.5, 0), (0, 0, 1.0), (0.2, -0.4, 0.6),
                                    (-0.7, 0.9, -2.5)])
def test_euler_round_trip(angles):
    assert np.allclose(euler_xyz(rotation_xyz(*angles)), angles, atol=1e-9)


def test_mediapipe_matrix_to_openface_frame():
    """A head turned about the vertical axis in MediaPipe's y-up frame is the same yaw in OpenFace's y-down frame
    with the opposite sign convention of y and z; scale left in the matrix is removed."""
    a = math.radians(20)
    mp = np.eye(4)
    mp[:3, :3] = 1.7 * np.array([[math.cos(a), 0, math.sin(a)], [0, 1, 0], [-math.sin(a), 0, math.cos(a)]])
    rx, ry, rz = euler_xyz(rotation_to_openface(mp))
    assert (rx, rz) == pytest.approx((0, 0), abs=1e-9)
    assert ry == pytest.approx(-a)
    # nose direction (towards the camera, -z in OpenFace's frame) turns towards +x (image right) for yaw < 0
    nose = rotation_to_openface(mp) @ np.array([0, 0, -1.0])
    assert nose[0] > 0.3


def test_head_translation_is_independent_of_the_crop():
    """The same head seen through two crops (different scale and shift) gives the same position in the frame."""
    frame = (640, 480)
    f = openface_focal(*frame)
    head = np.array([50.0, -20.0, 700.0])  # mm, OpenFace camera frame
    u, v = frame[0] / 2 + f * head[0] / head[2], frame[1] / 2 + f * head[1] / head[2]
    for crop_size, scale in ((256, 2.0), (192, 0.7)):  # crop px per frame px
        to_frame = np.array([[1 / scale, 0, u - crop_size / 2 / scale], [0, 1 / scale, v - crop_size / 2 / scale]])
        f_crop = crop_size / 2 / math.tan(math.radians(63) / 2)
        z_cm = head[2] / 10 * f_crop / (f * scale)  # depth MediaPipe would report for that apparent size
        m = np.eye(4)
        m[:3, 3] = (0.0, 0.0, -z_cm)  # head centred in the crop
        assert head_translation(m, crop_size, to_frame, frame) == pytest.approx(tuple(head), rel=1e-6)


@pytest.mark.parametrize("pos", [(0, 0, 500), (100, 0, 500), (-80, 60, 400), (300, -200, 300)])
def test_line_of_sight_rotation_turns_the_axis_onto_the_ray(pos):
    rot = line_of_sight_rotation(pos)
    assert np.allclose(rot @ rot.T, np.eye(3)) and np.linalg.det(rot) == pytest.approx(1)
    assert rot @ [0, 0, 1.0] == pytest.approx(np.array(pos) / np.linalg.norm(pos))


def test_openface_default_focal():
    assert openface_focal(640, 480) == 500.0
    assert openface_focal(1280, 720) == pytest.approx((1000 + 750) / 2)


# ---- gaze -------------------------------------------------------------------------------------------------------

def eye_mesh(iris_dx: float = 0.0, iris_dy: float = 0.0) -> np.ndarray:
    """Both eyes 30 px wide, level, irises shifted by (iris_dx, iris_dy) px from the eye centres."""
    lm = np.zeros((478, 3), np.float32)
    for (c1, c2, iris), x0 in zip(EYE_INDICES, (100.0, 170.0)):
        lm[c1] = (x0, 100, 0)
        lm[c2] = (x0 + 30, 100, 0)
        lm[iris] = (x0 + 15 + iris_dx, 100 + iris_dy, -3)
    return lm


@pytest.mark.parametrize("dx, dy, sign_x, sign_y", [(0, 0, 0, 0), (5, 0, 1, 0), (-5, 0, -1, 0), (0, 4, 0, 1),
                                                    (0, -4, 0, -1)])
def test_gaze_follows_the_iris(dx, dy, sign_x, sign_y):
    lm = eye_mesh(dx, dy)
    g = [eye_gaze(lm, np.eye(3), e) for e in (0, 1)]
    for v in g:
        assert np.linalg.norm(v) == pytest.approx(1)
        assert v[2] < 0  # towards the camera
    ax, ay = gaze_angles(*g)
    assert np.sign(round(ax, 6)) == sign_x and np.sign(round(ay, 6)) == sign_y
    if dx:  # iris 5 px off centre on a sphere of IRIS_RADIUS x 30 px
        assert abs(ax) == pytest.approx(math.asin(5 / (IRIS_RADIUS * 30)), abs=1e-6)


def test_gaze_turns_with_the_head():
    """Eyes fixed in a head turned by 20° about the vertical axis: the gaze turns by the same 20°."""
    from openfer.geometry.gaze import CENTRE_DEPTH

    rot = rotation_xyz(0, math.radians(20), 0)
    lm = np.zeros((478, 3))
    for (c1, c2, iris), x0 in zip(EYE_INDICES, (-50.0, 20.0)):
        corners = np.array([[x0, 0, 0], [x0 + 30, 0, 0]])
        centre = corners.mean(0) + [0, 0, CENTRE_DEPTH * 30]  # head frame: z into the head
        pts = np.vstack([corners, centre + [0, 0, -IRIS_RADIUS * 30]]) @ rot.T
        lm[[c1, c2, iris]] = pts
    g = [eye_gaze(lm, rot, e) for e in (0, 1)]
    assert np.allclose(g, rot @ [0, 0, -1.0], atol=1e-9)
    assert gaze_angles(*g)[0] == pytest.approx(-math.radians(20))


def test_gaze_iris_outside_the_eye_is_clamped():
    g = eye_gaze(eye_mesh(50, 0), np.eye(3), 0)
    assert np.isfinite(g).all() and g[0] == pytest.approx(1, abs=1e-6)


# ---- AU proxies and quality -------------------------------------------------------------------------------------

def test_au_proxies_average_their_blendshapes():
    out = au_proxies(blendshapes(mouthSmileLeft=0.8, mouthSmileRight=0.6, eyeBlinkLeft=1.0, browInnerUp=0.3))
    assert set(out) == set(AU_PROXY_TABLE)
    assert out["AU12"] == pytest.approx(0.7) and out["AU45"] == pytest.approx(0.5) and out["AU01"] == 0.3
    assert out["AU04"] == 0 and all(0 <= v <= 1 for v in out.values())
    assert all(b in BLENDSHAPE_NAMES for _, names in AU_PROXY_TABLE.values() for b in names)
    with pytest.raises(KeyError):
        au_proxies({"mouthSmileLeft": 1.0})


@pytest.mark.parametrize("pose, bs, side, sharp, flagged", [
    ((0, 0, 0), {}, 100, 200, set()),
    ((0, 50, 0), {}, 100, 200, {"extreme_pose"}),
    ((-35, 0, 80), {}, 100, 200, {"extreme_pose"}),
    ((0, 0, 0), {"eyeBlinkLeft": 0.9, "eyeBlinkRight": 0.7}, 100, 200, {"eyes_closed"}),
    ((0, 0, 0), {"eyeBlinkLeft": 0.9, "eyeBlinkRight": 0.1}, 100, 200, set()),  # a wink is not closed eyes
    ((0, 0, 0), {}, 30, 200, {"too_small"}),
    ((0, 0, 0), {}, 100, 5, {"blurry"}),
])
def test_quality_flags(pose, bs, side, sharp, flagged):
    flags = quality_flags(pose, bs, side, sharp)
    assert tuple(flags) == QUALITY_FLAGS
    assert {k for k, v in flags.items() if v} == flagged
    assert not any(quality_flags(pose, bs, side, sharp, QualityThresholds(
        max_yaw=90, max_pitch=90, blink=1.1, min_face_px=0, min_sharpness=0)).values())


def test_sharpness_drops_with_blur():
    img = astronaut()
    sharp, blurred = sharpness(img, ASTRO_BOX), sharpness(cv2.GaussianBlur(img, (0, 0), 4), ASTRO_BOX)
    assert sharp > 100 > QualityThresholds().min_sharpness > blurred
    assert sharpness(img, (10, 10, 10.5, 10.5)) == 0.0


# ---- result type and columns ------------------------------------------------------------------------------------

def test_geometry_in_face_and_dict():
    g = make_geometry(pose=(10.0, -20.0, 5.0))
    face = Face(box=(0, 0, 10, 10), score=0.9)
    assert "geometry" not in face.to_dict()
    d = Face(box=(0, 0, 10, 10), score=0.9, geometry=g).to_dict()["geometry"]
    assert d["pose"] == {"pitch": 10.0, "yaw": -20.0, "roll": 5.0}
    assert len(d["landmarks"]) == 478 and d["landmarks"][5] == [5.0, 1005.0, 0.0]
    assert d["au_proxies"]["AU12"] == 0.7 and d["quality"] == dict.fromkeys(QUALITY_FLAGS, False)
    with pytest.raises(ValueError, match="478"):
        make_geometry(landmarks=np.zeros((68, 2)))


def test_geometry_columns_openface_names_and_units():
    v = geometry_values(make_geometry(pose=(10.0, -20.0, 5.0)))
    assert list(v) == list(GEOMETRY_COLUMNS)
    assert len(GEOMETRY_COLUMNS) == 1 + 8 + 6 + 2 * 478 + len(QUALITY_FLAGS) + 1 + len(AU_PROXY_TABLE) + 52
    assert v["mesh_ok"] == 1
    assert (v["pose_Rx"], v["pose_Ry"], v["pose_Rz"]) == pytest.approx(
        (math.radians(10), math.radians(-20), math.radians(5)), abs=1e-5)  # OpenFace: radians
    assert (v["pose_Tx"], v["pose_Ty"], v["pose_Tz"]) == (1.0, 2.0, 600.0)  # mm
    assert (v["gaze_1_x"], v["gaze_1_z"], v["gaze_angle_y"]) == (0.6, -0.8, -0.2)
    assert (v["x_0"], v["x_477"], v["y_0"], v["y_477"]) == (0.0, 477.0, 1000.0, 1477.0)
    assert v["proxy_AU12"] == 0.7 and v["bs_mouthSmileLeft"] == 0.8 and v["q_blurry"] == 0
    # nothing of ours is named like an OpenFace output it is not
    assert not any(c.startswith("AU") or c.endswith(("_r", "_c")) for c in GEOMETRY_COLUMNS)
    empty = geometry_values(None)
    assert empty["mesh_ok"] == 0 and all(empty[c] is None for c in GEOMETRY_COLUMNS[1:])


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet"])
def test_rows_with_geometry(tmp_path, suffix):
    faces = [Face(box=(0, 0, 50, 50), score=0.9, track_id=3, geometry=make_geometry()),
             Face(box=(60, 0, 90, 30), score=0.8, track_id=4)]  # no mesh found for this one
    rows = (ImageResult(faces, frame=0, timestamp=0.0).to_rows(CLASSES, geometry=True)
            + ImageResult([], frame=1, timestamp=0.04).to_rows(CLASSES, geometry=True))
    assert list(rows[0]) == row_columns(CLASSES, geometry=True)
    assert "pose_Rx" not in row_columns(CLASSES) and "pose_Rx" not in ImageResult(faces, frame=0, timestamp=0.0).to_rows(CLASSES)[0]
    with RowWriter(tmp_path / f"rows{suffix}", CLASSES, geometry=True) as w:
        w.write(rows)
    df = read_rows(tmp_path / f"rows{suffix}")
    assert list(df.columns) == row_columns(CLASSES, geometry=True)
    assert df["mesh_ok"].tolist()[:2] == [1, 0] and df["x_477"].iloc[0] == 477.0
    assert df["face_id"].tolist() == [3, 4, -1] and df["success"].tolist() == [1, 1, 0]


# ---- the stage, with an injected mesh ---------------------------------------------------------------------------

class FakeMesh:
    """Returns a flat mesh filling the crop's central half, or None for crops that are all black."""

    def __init__(self) -> None:
        self.crops: list[np.ndarray] = []

    def __call__(self, crop):
        self.crops.append(crop)
        if crop.max() == 0:
            return None
        s = crop.shape[0]
        lm = np.zeros((478, 3), np.float32)
        lm[:, 0] = np.linspace(s / 4, 3 * s / 4, 478)
        lm[:, 1] = s / 2
        m = np.eye(4)
        m[2, 3] = -30.0
        return MeshResult(landmarks=lm, blendshapes=blendshapes(eyeBlinkLeft=0.9, eyeBlinkRight=0.8), matrix=m)


def test_face_crop_maps_back_to_the_frame():
    img = astronaut()
    crop, to_frame = face_crop(img, ASTRO_BOX, 256, 1.8)
    assert crop.shape == (256, 256, 3)
    centre = to_frame @ np.array([128.0, 128.0, 1.0])
    assert centre == pytest.approx(((ASTRO_BOX[0] + ASTRO_BOX[2]) / 2, (ASTRO_BOX[1] + ASTRO_BOX[3]) / 2))
    assert to_frame[0, 0] == pytest.approx((ASTRO_BOX[3] - ASTRO_BOX[1]) * 1.8 / 256)  # longer side x context
    edge, _ = face_crop(img, (0, 0, 40, 40), 64, 2.0)  # covers x, y in [-20, 60): black where < 0 (crop px < 16)
    assert edge[:15, :15].max() == 0 and edge[17:, 17:].min(axis=(0, 1)).max() > 0


def test_estimator_with_injected_mesh():
    img = np.zeros((200, 400, 3), np.uint8)
    img[20:120, 20:120] = 200
    faces = [Face(box=(40, 40, 100, 100), score=0.9), Face(box=(300, 100, 340, 140), score=0.8)]
    mesh = FakeMesh()
    out = GeometryEstimator(mesh=mesh, crop_size=128, context=2.0).estimate(img, faces)
    assert len(mesh.crops) == 2 and all(c.shape == (128, 128, 3) for c in mesh.crops)
    assert faces[0].geometry is None  # inputs are not changed
    g = out[0].geometry
    assert out[1].geometry is None  # the second crop is all black: no mesh
    # the mesh spanned the crop's central half: the box's 60 px, centred on the box, in frame pixels
    assert g.landmarks[0, :2] == pytest.approx((40, 70), abs=0.01)
    assert g.landmarks[-1, :2] == pytest.approx((100, 70), abs=0.01)
    # the mesh faces straight along its crop's axis, i.e. looks into the lens from the image's upper left: in the
    # camera frame that head is turned towards the image right (yaw < 0) and down (pitch > 0), by the ray's angles
    assert g.pose == pytest.approx(np.degrees(euler_xyz(line_of_sight_rotation(g.translation))))
    ray = np.array(g.translation) / np.linalg.norm(g.translation)
    assert rotation_xyz(*np.radians(g.pose)) @ [0, 0, -1.0] == pytest.approx(-ray)  # the face points at the lens
    assert g.pose[1] < -20
    assert g.pose[0] > 5
    # gaze is measured in the crop's (view) frame and turned into the camera frame like the head
    to_camera = line_of_sight_rotation(g.translation)
    assert g.gaze[1] == pytest.approx(to_camera @ eye_gaze(g.landmarks, np.eye(3), 1), abs=1e-5)
    assert g.quality["eyes_closed"] and not g.quality["extreme_pose"]  # flags judge the view, not camera angles
    assert g.au_proxies["AU45"] == pytest.approx(0.85)


def test_cli_geometry_without_model_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv(MODEL_DIR_ENV, raising=False)
    res = CliRunner().invoke(app, ["analyze", "--geometry", str(tmp_path / "x.jpg"), "--jsonl", "-"])
    assert res.exit_code == 2
    if importlib.util.find_spec("mediapipe") is not None:
        assert "openfer models fetch face-landmarker" in res.output
    else:
        assert "openfer[geometry]" in res.output


# ---- model file -------------------------------------------------------------------------------------------------

def fake_spec(data: bytes) -> ModelFile:
    return ModelFile(name="fake", filename="fake.task", url="http://127.0.0.1:1/none",
                     sha256=hashlib.sha256(data).hexdigest(), size=len(data), licence="test")


@pytest.fixture
def http_server(tmp_path):
    """Serves tmp_path/www on 127.0.0.1; yields (base URL, list of requested paths)."""
    root = tmp_path / "www"
    root.mkdir()
    hits: list[str] = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a, **kw):
            super().__init__(*a, directory=str(root), **kw)

        def log_message(self, *a):
            hits.append(self.path)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", root, hits
    server.shutdown()
    server.server_close()


def test_fetch_from_local_http_server(tmp_path, http_server):
    base, root, hits = http_server
    data = os.urandom(300_000)
    (root / "good.task").write_bytes(data)
    spec = fake_spec(data)
    seen = []
    path = fetch_model(spec, tmp_path / "models", url=f"{base}/good.task", progress=lambda d, t: seen.append((d, t)))
    assert path == tmp_path / "models" / "fake.task" and path.read_bytes() == data
    assert seen[-1] == (len(data), len(data))
    assert find_model(spec, tmp_path / "models") == path
    n = len(hits)
    fetch_model(spec, tmp_path / "models", url=f"{base}/good.task")  # already there and valid: no download
    assert len(hits) == n


def test_fetch_hash_mismatch_keeps_nothing(tmp_path, http_server):
    base, root, _ = http_server
    (root / "bad.task").write_bytes(b"not the model")
    spec = fake_spec(b"the model")
    with pytest.raises(ValueError, match="SHA-256"):
        fetch_model(spec, tmp_path / "models", url=f"{base}/bad.task")
    assert list((tmp_path / "models").iterdir()) == []
    with pytest.raises(OSError):  # nothing served there
        fetch_model(spec, tmp_path / "models", url=f"{base}/missing.task")


def test_find_model_places_and_messages(tmp_path, monkeypatch):
    spec = fake_spec(b"model bytes")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv(MODEL_DIR_ENV, raising=False)
    with pytest.raises(ModelNotFoundError) as e:
        find_model(spec)
    msg = str(e.value)
    assert "\n" not in msg and "openfer models fetch fake" in msg and str(tmp_path / "cache") in msg
    cached = tmp_path / "cache" / "openfer" / "models" / "fake.task"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"model bytes")
    assert find_model(spec) == cached
    monkeypatch.setenv(MODEL_DIR_ENV, str(tmp_path / "offline"))  # the env var wins, no silent fall-back
    with pytest.raises(ModelNotFoundError, match="offline"):
        find_model(spec)
    (tmp_path / "offline").mkdir()
    (tmp_path / "offline" / "fake.task").write_bytes(b"other bytes")
    with pytest.raises(ValueError, match="SHA-256"):
        find_model(spec)
    assert find_model(spec, cached) == cached  # an explicit file path


def test_cli_models_fetch(tmp_path, http_server):
    base, root, _ = http_server
    (root / "face_landmarker.task").write_bytes(b"wrong bytes")
    runner = CliRunner()
    res = runner.invoke(app, ["models", "fetch", "face-landmarker", "--model-dir", str(tmp_path / "m"),
                              "--url", f"{base}/face_landmarker.task"])
    assert res.exit_code == 1 and "SHA-256" in res.output
    assert not (tmp_path / "m" / "face_landmarker.task").exists()
    res = runner.invoke(app, ["models", "fetch", "nope"])
    assert res.exit_code == 2 and "face-landmarker" in res.output


@needs_model
def test_cli_models_fetch_real_file(tmp_path):
    src = model_dir() / FACE_LANDMARKER.filename
    res = CliRunner().invoke(app, ["models", "fetch", "face-landmarker", "--model-dir", str(tmp_path),
                                   "--url", src.resolve().as_uri()])
    assert res.exit_code == 0, res.output
    assert find_model(FACE_LANDMARKER, tmp_path).read_bytes() == src.read_bytes()


# ---- the real Face Landmarker -----------------------------------------------------------------------------------

def measure(img: np.ndarray, box=ASTRO_BOX) -> Geometry:
    g = estimator().measure(img, Face(box=box, score=1.0))
    assert g is not None, "no face mesh found"
    return g


def view_pose(g: Geometry) -> np.ndarray:
    """(pitch, yaw, roll) degrees relative to the line of sight to the head (what the face looks like in the
    image), undoing the camera-frame conversion of ``g.pose``."""
    rot = line_of_sight_rotation(g.translation).T @ rotation_xyz(*np.radians(g.pose))
    return np.degrees(euler_xyz(rot))


def mirror_box(box, width):
    return (width - box[2], box[1], width - box[0], box[3])


@needs_model
def test_real_mesh_on_astronaut():
    g = measure(astronaut())
    x1, y1, x2, y2 = ASTRO_BOX
    inside = ((g.landmarks[:, 0] > x1 - 15) & (g.landmarks[:, 0] < x2 + 15) & (g.landmarks[:, 1] > y1 - 25)
              & (g.landmarks[:, 1] < y2 + 15))
    assert inside.mean() > 0.97
    assert g.landmarks[468, 0] < g.landmarks[473, 0]  # eye 0 is the image-left eye
    # irises where CenterFace puts the eyes (conftest.ASTRONAUT_LANDMARKS), within 3 px
    assert g.landmarks[468, :2] == pytest.approx((203.2, 101.7), abs=3)
    assert g.landmarks[473, :2] == pytest.approx((247.0, 104.5), abs=3)
    assert all(abs(a) < 15 for a in view_pose(g))  # a near-frontal portrait...
    assert g.pose[0] > 15  # ...high in the frame looking into the lens: in camera terms, turned down
    assert g.au_proxies["AU12"] > 0.6  # she smiles
    assert g.au_proxies["AU45"] < 0.2 and not any(g.quality.values())
    assert 400 < g.translation[2] < 1200  # mm: a face 90 px wide in a 512 px image
    assert all(abs(a) < math.radians(20) for a in g.gaze_angle)


@needs_model
def test_real_mirror_flips_yaw_roll_and_gaze():
    img = astronaut()
    g, m = measure(img), measure(img[:, ::-1].copy(), mirror_box(ASTRO_BOX, img.shape[1]))
    assert m.pose[0] == pytest.approx(g.pose[0], abs=1.5)  # pitch holds
    assert m.pose[1] == pytest.approx(-g.pose[1], abs=1.5)  # yaw flips sign
    assert m.pose[2] == pytest.approx(-g.pose[2], abs=1.5)  # roll flips sign
    assert m.translation[0] == pytest.approx(-g.translation[0], abs=10)
    assert m.gaze_angle[0] == pytest.approx(-g.gaze_angle[0], abs=math.radians(5))
    # the mesh itself is mirrored: the image-left iris of the flip is the image-right iris of the original
    assert m.landmarks[468, 0] == pytest.approx(img.shape[1] - g.landmarks[473, 0], abs=2)


@needs_model
@pytest.mark.parametrize("angle", [-30, -15, 15, 30])
def test_real_in_plane_rotation_is_roll(angle):
    img = astronaut()
    base = measure(img)
    centre = ((ASTRO_BOX[0] + ASTRO_BOX[2]) / 2, (ASTRO_BOX[1] + ASTRO_BOX[3]) / 2)
    rot = cv2.warpAffine(img, cv2.getRotationMatrix2D(centre, angle, 1.0), img.shape[1::-1],
                         borderMode=cv2.BORDER_REFLECT)
    g = measure(rot)
    # OpenCV's positive angle turns the image counter-clockwise; our roll > 0 is clockwise
    assert view_pose(g)[2] - view_pose(base)[2] == pytest.approx(-angle, abs=3)
    # exactly: the turn about the line of sight composed with the head's rotation seen along it (with the head
    # pitched ~8° to it, part of the turn shows as yaw); measured within about 1° of this
    want = euler_xyz(rotation_xyz(0, 0, math.radians(-angle)) @ rotation_xyz(*np.radians(view_pose(base))))
    assert view_pose(g) == pytest.approx(np.degrees(want), abs=2)


@needs_model
def test_real_scale_keeps_pose_and_depth():
    """Half the image size: the same pose and, with OpenFace's size-scaled default camera, the same depth."""
    img = astronaut()
    g = measure(img)
    h = measure(cv2.resize(img, (256, 256), interpolation=cv2.INTER_AREA), tuple(v / 2 for v in ASTRO_BOX))
    assert np.allclose(h.pose, g.pose, atol=2.5)
    assert h.translation[2] == pytest.approx(g.translation[2], rel=0.05)
    assert h.landmarks[:, :2] * 2 == pytest.approx(g.landmarks[:, :2], abs=4)


def close_eyes(img: np.ndarray, g: Geometry) -> np.ndarray:
    """The eyes of ``img`` drawn shut: each eye opening covered with the lid skin just above it, stretched down,
    and a thin dark lash line along the lower lid (mesh points of ``g``)."""
    out = img.copy()
    for c1, c2, upper, lower in ((33, 133, 159, 145), (362, 263, 386, 374)):
        x1, x2 = int(min(g.landmarks[[c1, c2], 0])) - 3, int(max(g.landmarks[[c1, c2], 0])) + 3
        y1, y2 = int(g.landmarks[upper, 1]) - 5, int(g.landmarks[lower, 1]) + 3
        out[y1:y2, x1:x2] = cv2.resize(out[y1 - 6:y1, x1:x2], (x2 - x1, y2 - y1), interpolation=cv2.INTER_LINEAR)
        corner_y = int(g.landmarks[[c1, c2], 1].mean())
        lash = np.array([[x1 + 3, corner_y], [(x1 + x2) // 2, int(g.landmarks[lower, 1]) - 1], [x2 - 3, corner_y]])
        cv2.polylines(out, [lash.astype(np.int32)], False, (60, 40, 40), 1)
    return out


@needs_model
def test_real_closed_eyes_blink():
    """Eyes drawn shut read as a blink: the AU45 proxy rises from near 0 and the eyes_closed flag is raised."""
    img = astronaut()
    g = measure(img)
    c = measure(close_eyes(img, g))
    assert g.au_proxies["AU45"] < 0.15 and c.au_proxies["AU45"] > g.au_proxies["AU45"] + 0.35
    assert c.quality["eyes_closed"] and not g.quality["eyes_closed"]


@needs_model
def test_real_blendshape_sides_are_the_subjects():
    """Closing only the image-left eye (the subject's right) raises eyeBlinkRight: MediaPipe's Left/Right are the
    subject's, as docs/geometry.md says."""
    img = astronaut()
    g = measure(img)
    shut = close_eyes(img, g)
    for cols, closed, other in ((slice(None, 225), "eyeBlinkRight", "eyeBlinkLeft"),
                                (slice(225, None), "eyeBlinkLeft", "eyeBlinkRight")):
        one = img.copy()
        one[:, cols] = shut[:, cols]
        b = measure(one).blendshapes
        assert b[closed] > b[other] + 0.2


@needs_model
def test_real_smile_proxy_lower_on_a_straightened_mouth():
    """Paint the mouth corners' upturn away (a flat grey bar over the lips): the smile proxy (AU12) drops."""
    img = astronaut()
    g = measure(img)
    flat = img.copy()
    lip = img[150:153, 215:231].reshape(-1, 3).mean(0)
    skin = img[128:134, 215:231].reshape(-1, 3).mean(0)
    cv2.rectangle(flat, (195, 133), (250, 160), tuple(float(c) for c in skin), -1)
    cv2.line(flat, (205, 146), (240, 146), tuple(float(c) for c in lip * 0.6), 2)
    f = measure(flat)
    assert f.au_proxies["AU12"] < g.au_proxies["AU12"] - 0.3


@needs_model
def test_real_analyzer_many_small_faces(tmp_path):
    """Three faces of different sizes in one frame each get their own mesh; rows and JSONL carry the columns."""
    import openfer

    from conftest import grey_canvas, paste_head

    canvas = grey_canvas(640, 480)
    boxes = [paste_head(canvas, h, x, 100) for h, x in ((180, 20), (110, 260), (70, 480))]
    analyzer = openfer.Analyzer(geometry=estimator())
    faces = sorted(analyzer.analyze(canvas), key=lambda f: f.box[0])
    assert len(faces) == 3
    for f, box in zip(faces, boxes):
        assert f.geometry is not None
        x = f.geometry.landmarks[:, 0]
        assert box[0] - 10 < np.median(x) < box[2] + 10
        assert f.geometry.au_proxies["AU12"] > 0.4  # the same smiling face at every size
    with RowWriter(tmp_path / "faces.csv", analyzer.classifier.classes, geometry=True, photos=True) as w:
        w.write(ImageResult(faces, "canvas").to_rows(analyzer.classifier.classes, geometry=True))
    import pandas as pd

    df = pd.read_csv(tmp_path / "faces.csv")
    assert df.shape[0] == 3 and df["mesh_ok"].tolist() == [1, 1, 1]
    assert df["pose_Rx"].abs().max() < 0.5 and {"x_0", "y_477", "proxy_AU12", "bs_jawOpen"} <= set(df.columns)


def test_docs_list_every_column_family_and_proxy():
    """docs/geometry.md documents the AU table exactly as the code has it, and every column family."""
    doc = (Path(__file__).resolve().parents[1] / "docs" / "geometry.md").read_text(encoding="utf-8")
    for au, (desc, names) in AU_PROXY_TABLE.items():
        assert f"| `{au}` | {desc} | {', '.join(names)} |" in doc
    for col in ("gaze_0_x", "gaze_angle_x", "pose_Tx", "pose_Rx", "x_0", "y_477", "mesh_ok", "sharpness",
                *(f"q_{q}" for q in QUALITY_FLAGS)):
        assert f"`{col}`" in doc


@needs_model
def test_real_cli_images_and_video(tmp_path):
    """`openfer analyze --geometry` on an image (JSONL + CSV) and on a video (rows) gives the documented columns."""
    import json

    import pandas as pd

    from conftest import moving_faces_video, save

    img = save(tmp_path / "astro.png", astronaut())
    runner = CliRunner()
    res = runner.invoke(app, ["analyze", str(img), "--geometry", "--model-dir", str(model_dir()), "-q",
                              "--jsonl", str(tmp_path / "out.jsonl"), "--csv", str(tmp_path / "out.csv")])
    assert res.exit_code == 0, res.output
    face = json.loads((tmp_path / "out.jsonl").read_text().splitlines()[0])["faces"][0]
    assert set(face["geometry"]) == {"pose", "translation", "gaze", "gaze_angle", "au_proxies", "blendshapes",
                                     "quality", "sharpness", "landmarks"}
    assert len(face["geometry"]["landmarks"]) == 478 and face["geometry"]["au_proxies"]["AU12"] > 0.6
    df = pd.read_csv(tmp_path / "out.csv")
    assert list(df.columns[-len(GEOMETRY_COLUMNS):]) == list(GEOMETRY_COLUMNS) and df["mesh_ok"].tolist() == [1]
    video = tmp_path / "v.avi"
    moving_faces_video(video, {0: [(40 + 4 * i, 30, 150) for i in range(6)] + [None, None]})
    res = runner.invoke(app, ["analyze", str(video), "--geometry", "--model-dir", str(model_dir()), "-q",
                              "--out", str(tmp_path / "rows.csv")])
    assert res.exit_code == 0, res.output
    rows = pd.read_csv(tmp_path / "rows.csv")
    assert rows["success"].tolist() == [1] * 6 + [0] * 2
    assert rows["mesh_ok"].tolist()[:6] == [1] * 6 and rows["mesh_ok"].isna().tolist()[6:] == [True, True]
    assert rows.loc[:5, "pose_Rz"].abs().max() < 0.3 and rows.loc[:5, "x_1"].is_monotonic_increasing  # moves right



@needs_model
def test_report_with_geometry_says_how_long_each_person_faced_the_camera(tmp_path):
    """`openfer report VIDEO --geometry`: the people CSV gets facing/gaze shares, the page says them."""
    import pandas as pd

    from conftest import moving_faces_video

    video = tmp_path / "v.avi"
    moving_faces_video(video, {0: [(40 + 4 * i, 30, 150) for i in range(10)]})
    res = CliRunner().invoke(app, ["report", str(video), "--geometry", "--model-dir", str(model_dir()), "-q",
                                   "--out", str(tmp_path / "r")])
    assert res.exit_code == 0, res.output
    people = pd.read_csv(tmp_path / "r" / "people.csv")
    assert len(people) == 1 and 0 <= people.facing_camera_share[0] <= 1 and 0 <= people.gaze_camera_share[0] <= 1
    assert people.head_angle_deg[0] < 45  # a frontal face
    assert "Head pointed at the camera" in (tmp_path / "r" / "v.html").read_text()

def test_summary_and_annotation_use_geometry():
    from openfer.report.annotate import annotate
    from openfer.report.summary import VideoSummary

    probs = dict.fromkeys(CLASSES, 1 / len(CLASSES))
    faces = [Face(box=(0, 0, 50, 50), score=0.9, track_id=0, expression="neutral", probabilities=probs,
                  geometry=make_geometry(pose=(p, 0.0, 0.0), quality={**dict.fromkeys(QUALITY_FLAGS, False),
                                                                       "blurry": p > 0}))
             for p in (0.0, 10.0)]
    summary = VideoSummary(CLASSES)
    for i, f in enumerate(faces):
        summary.add(i, i / 25, [f])
    stats = summary.to_dict()["tracks"][0]["stats"]
    assert stats["pose_Rx"]["max"] == pytest.approx(math.radians(10), abs=1e-5)
    assert stats["q_blurry"]["mean"] == 0.5 and stats["proxy_AU12"]["mean"] == pytest.approx(0.7)
    assert "x_0" not in stats and "bs_jawOpen" not in stats
    plain = VideoSummary(CLASSES)
    plain.add(0, 0.0, [Face(box=(0, 0, 50, 50), score=0.9, track_id=0, expression="neutral", probabilities=probs)])
    assert "pose_Rx" not in plain.to_dict()["tracks"][0]["stats"]
    img = np.zeros((1600, 600, 3), np.uint8)
    drawn = annotate(img, [faces[0]], "compact")
    assert drawn[1300:1400, 300:400].any()  # mesh point 350 is at (350, 1350)
    assert not annotate(img, [dataclasses.replace(faces[0], geometry=None)], "compact")[1300:1400, 300:400].any()


def test_analyzer_paths_carry_geometry(analyzer):
    """analyze, analyze_batch and classify_frames (the video path) all add geometry when the stage is set."""
    import openfer

    mesh = FakeMesh()
    an = openfer.Analyzer(detector=analyzer.detector, classifier=analyzer.classifier,
                          geometry=GeometryEstimator(mesh=mesh))
    img = astronaut()
    one = an.analyze(img)
    batch = an.analyze_batch([img, np.zeros((64, 64, 3), np.uint8)])
    frames = an.classify_frames([(img, analyzer.detector.detect(img)), (img, [])])
    for faces in (one, batch[0], frames[0]):
        assert len(faces) == 1 and faces[0].geometry is not None and faces[0].expression
    assert batch[1] == [] and frames[1] == [] and len(mesh.crops) == 3
    assert analyzer.analyze(img)[0].geometry is None  # no stage, no geometry
