"""Geometry stage: time per face, head-pose sanity (mirror, in-plane rotation, 3D-warped yaw and pitch, FER2013
mirror pairs), blink and smile proxies on crafted faces, and the classifier with mesh-based alignment.

Usage:
    python benchmarks/geometry.py speed   [--model-dir DIR]
    python benchmarks/geometry.py small   [--model-dir DIR]
    python benchmarks/geometry.py pose    [--model-dir DIR] [--data fer2013_dev.npz] [--limit N]
    python benchmarks/geometry.py crafted [--model-dir DIR]
    python benchmarks/geometry.py align   [--model-dir DIR] [--data fer2013_dev.npz] [--template-n N]

Needs the [geometry] extra and face_landmarker.task (``--model-dir``, default ``$OPENFER_MODEL_DIR`` or
../shared/models). Each writes ``benchmarks/results/geometry-<what>.json``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import skimage.data
from scipy.spatial import Delaunay
from tqdm import tqdm

from openfer.geometry import GeometryEstimator
from openfer.types import Face, Geometry

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from test_geometry import close_eyes, view_pose  # noqa: E402 - the tests' crafted closed eyes and view pose

RESULTS = Path(__file__).parent / "results"
ASTRO_BOX = (181.5, 58.6, 269.9, 177.4)
#: Mesh points that play CenterFace's five landmarks: iris centres, nose tip, mouth corners.
MESH_FIVE = (468, 473, 1, 61, 291)


def default_model_dir() -> str:
    return os.environ.get("OPENFER_MODEL_DIR") or str(Path(__file__).resolve().parents[1] / ".." / "shared" / "models")


def write(name: str, res: dict) -> None:
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"geometry-{name}.json").write_text(json.dumps(res, indent=2))
    print(json.dumps(res, indent=2))


def measure(est: GeometryEstimator, img: np.ndarray, box=ASTRO_BOX) -> Geometry | None:
    return est.measure(img, Face(box=box, score=1.0))


# ---- speed ------------------------------------------------------------------------------------------------------

def breakdown(est: GeometryEstimator, rgb: np.ndarray, face: Face, repeats: int) -> dict:
    """Median ms of the stage's three steps for one face: crop (warp to 256 px), MediaPipe, and the rest (pose,
    gaze, proxies, sharpness, flags)."""
    from openfer.geometry.quality import sharpness
    from openfer.geometry.stage import face_crop

    t = {"crop": [], "mediapipe": [], "maths": []}
    for _ in range(repeats):
        t0 = time.perf_counter()
        crop, to_frame = face_crop(rgb, face.box, est.crop_size, est.context)
        t1 = time.perf_counter()
        res = est.mesh(crop)
        t2 = time.perf_counter()
        if res is not None:
            est._geometry(res, to_frame, (rgb.shape[1], rgb.shape[0]), face, sharpness(rgb, face.box))
        t3 = time.perf_counter()
        for k, a, b in (("crop", t0, t1), ("mediapipe", t1, t2), ("maths", t2, t3)):
            t[k].append(b - a)
    return {k: round(1000 * float(np.median(v)), 2) for k, v in t.items()}


def speed(est: GeometryEstimator, repeats: int) -> dict:
    """Median ms per face of the geometry stage (crop + mesh + maths) for faces of several sizes, and of
    ``Analyzer.analyze`` with and without it on a 640x480 frame with one face."""
    import openfer

    det = openfer.load_detector("centerface")
    head = skimage.data.astronaut()[30:210, 150:300]
    out = {"repeats": repeats, "per_face_ms": {}}
    for h in (48, 96, 192, 384):
        canvas = np.full((max(480, h + 20), max(640, h + 20), 3), 128, np.uint8)
        w = round(head.shape[1] * h / head.shape[0])
        canvas[10:10 + h, 10:10 + w] = cv2.resize(head, (w, h), interpolation=cv2.INTER_AREA)
        faces = det.detect(canvas)
        if not faces:
            out["per_face_ms"][f"head_{h}px"] = None
            continue
        est.estimate(canvas, faces[:1])
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            est.estimate(canvas, faces[:1])
            times.append(time.perf_counter() - t0)
        out["per_face_ms"][f"head_{h}px"] = round(1000 * float(np.median(times)), 2)
        out.setdefault("breakdown_ms", {})[f"head_{h}px"] = breakdown(est, canvas, faces[0], repeats)
    frame = np.full((480, 640, 3), 128, np.uint8)
    frame[100:280, 200:350] = head
    analyzers = {"analyze_ms": openfer.Analyzer(), "analyze_geometry_ms": openfer.Analyzer(geometry=est)}
    times: dict[str, list[float]] = {name: [] for name in analyzers}
    for i in range(repeats + 1):  # interleaved, so a change in the machine's load hits both alike
        for name, an in analyzers.items():
            t0 = time.perf_counter()
            an.analyze(frame)
            if i:  # the first round warms up
                times[name].append(time.perf_counter() - t0)
    out.update((name, round(1000 * float(np.median(t)), 2)) for name, t in times.items())
    return out


def small_faces(est: GeometryEstimator) -> dict:
    """How small a face still gets a mesh: the astronaut's head pasted at decreasing heights on a grey 640x480
    frame, boxed by CenterFace (``--max-side 1280 --upscale`` settings, so the box exists); per size whether
    a mesh is found, and the median landmark distance to the full-size mesh scaled down, as % of the box width."""
    import openfer

    det = openfer.load_detector("centerface", max_side=1280, upscale=True)
    img = skimage.data.astronaut()
    ref = measure(est, img)
    hx1, hy1, hx2, hy2 = 150, 30, 300, 210
    out = {}
    for h in (24, 32, 40, 48, 64, 96, 128):
        s = h / (hy2 - hy1)
        canvas = np.full((480, 640, 3), 128, np.uint8)
        w = round((hx2 - hx1) * s)
        canvas[200:200 + h, 300:300 + w] = cv2.resize(img[hy1:hy2, hx1:hx2], (w, h), interpolation=cv2.INTER_AREA)
        faces = det.detect(canvas)
        if not faces:
            out[h] = {"detected": False}
            continue
        g = est.measure(canvas, faces[0])
        row = {"detected": True, "box_width_px": round(faces[0].width, 1), "mesh": g is not None}
        if g is not None:
            want = (ref.landmarks[:, :2] - [hx1, hy1]) * s + [300, 200]
            err = np.linalg.norm(g.landmarks[:, :2] - want, axis=1)
            row["median_error_pct_of_box"] = round(float(100 * np.median(err) / faces[0].width), 2)
            row["AU12"] = round(g.au_proxies["AU12"], 3)
            row["flags"] = [k for k, v in g.quality.items() if v]
        out[h] = row
    return {"head_height_px": out}


# ---- pose -------------------------------------------------------------------------------------------------------

def rotate_face(img: np.ndarray, g: Geometry, yaw: float = 0.0, pitch: float = 0.0) -> np.ndarray:
    """``img`` with its face turned in 3D by ``yaw``/``pitch`` degrees (OpenFace's signs), by warping each
    triangle of the face mesh to its rotated, orthographically projected place (far triangles first); the old
    face area is inpainted first. Hair, ears and neck do not turn: a synthetic, not photographic, view."""
    from openfer.geometry.pose import rotation_xyz

    p = g.landmarks.astype(np.float64)
    centre = p.mean(0)
    rot = rotation_xyz(math.radians(pitch), math.radians(yaw), 0.0)
    q = (p - centre) @ rot.T + centre
    tri = Delaunay(p[:, :2]).simplices
    hull = cv2.convexHull(p[:, :2].astype(np.float32)).astype(np.int32)
    mask = np.zeros(img.shape[:2], np.uint8)
    cv2.fillConvexPoly(mask, hull, 255)
    out = cv2.inpaint(img, cv2.dilate(mask, np.ones((5, 5), np.uint8)), 5, cv2.INPAINT_TELEA)
    for t in sorted(tri, key=lambda t: -q[t, 2].mean()):  # farthest first
        src, dst = p[t, :2].astype(np.float32), q[t, :2].astype(np.float32)
        if abs(np.cross(dst[1] - dst[0], dst[2] - dst[0])) < 1e-3:
            continue
        x, y, w, h = cv2.boundingRect(dst)
        m = cv2.getAffineTransform(src, dst - np.float32([x, y]))
        patch = cv2.warpAffine(img, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        tmask = np.zeros((h, w), np.uint8)
        cv2.fillConvexPoly(tmask, np.round(dst - [x, y]).astype(np.int32), 1)
        ys, xs = slice(max(y, 0), min(y + h, img.shape[0])), slice(max(x, 0), min(x + w, img.shape[1]))
        sub = tmask[ys.start - y:ys.stop - y, xs.start - x:xs.stop - x].astype(bool)
        out[ys, xs][sub] = patch[ys.start - y:ys.stop - y, xs.start - x:xs.stop - x][sub]
    return out


def expected_after_in_plane(pose: tuple[float, float, float], ccw_deg: float) -> tuple[float, float, float]:
    """(pitch, yaw, roll) degrees of a head with view ``pose`` (relative to the line of sight) after the image is
    turned ``ccw_deg`` counter-clockwise (OpenCV's sign) about the face: the turn about the line of sight is
    composed with the head's rotation, then read as Euler angles again; with the head pitched, part of the turn
    shows in yaw too."""
    from openfer.geometry.pose import euler_xyz, rotation_xyz

    rot = rotation_xyz(0.0, 0.0, math.radians(-ccw_deg)) @ rotation_xyz(*(math.radians(v) for v in pose))
    return tuple(math.degrees(v) for v in euler_xyz(rot))


def pose_checks(est: GeometryEstimator, data: str | None, limit: int | None) -> dict:
    img = skimage.data.astronaut()
    g = measure(est, img)
    res: dict = {"astronaut": {"pose_deg": [round(v, 2) for v in g.pose],
                               "view_pose_deg": [round(float(v), 2) for v in view_pose(g)]}}
    m = measure(est, img[:, ::-1].copy(), (512 - ASTRO_BOX[2], ASTRO_BOX[1], 512 - ASTRO_BOX[0], ASTRO_BOX[3]))
    res["astronaut"]["mirror_pose_deg"] = [round(v, 2) for v in m.pose]
    centre = ((ASTRO_BOX[0] + ASTRO_BOX[2]) / 2, (ASTRO_BOX[1] + ASTRO_BOX[3]) / 2)
    rolls = {}
    for angle in (-45, -30, -15, 15, 30, 45):
        r = measure(est, cv2.warpAffine(img, cv2.getRotationMatrix2D(centre, angle, 1.0), (512, 512),
                                        borderMode=cv2.BORDER_REFLECT))
        want = expected_after_in_plane(tuple(view_pose(g)), angle)
        rolls[angle] = None if r is None else {
            "measured_pitch_yaw_roll": [round(float(v), 2) for v in view_pose(r)],
            "expected_pitch_yaw_roll": [round(v, 2) for v in want],
            "abs_error": [round(float(abs(a - b)), 2) for a, b in zip(view_pose(r), want)]}
    res["in_plane_rotation_ccw_deg_view_pose"] = rolls
    for axis, idx in (("yaw", 1), ("pitch", 0)):
        sweep, gaze = {}, {}
        for angle in (-30, -20, -10, 10, 20, 30):
            warped = rotate_face(img, g, **{axis: angle})
            r = measure(est, warped)
            sweep[angle] = None if r is None else round(r.pose[idx] - g.pose[idx], 2)
            # the irises turn with the head, so the gaze should turn with it: gaze x ~ -yaw, gaze y ~ +pitch
            gi = 0 if axis == "yaw" else 1
            gaze[angle] = None if r is None else round(math.degrees(r.gaze_angle[gi] - g.gaze_angle[gi]), 2)
            if angle in (-30, 30):
                cv2.imwrite(str(RESULTS / f"geometry-{axis}{angle:+d}.jpg"), cv2.cvtColor(warped[30:210, 130:320],
                                                                                         cv2.COLOR_RGB2BGR))
        res[f"warped_{axis}_change_deg"] = sweep
        res[f"warped_{axis}_gaze_angle_{'x' if axis == 'yaw' else 'y'}_change_deg"] = gaze
    if data is not None or Path(default_npz()).is_file():
        res["fer2013_publictest_mirror"] = fer_mirror(est, data or default_npz(), limit)
    return res


def default_npz() -> str:
    from openfer.datasets import default_npz_path

    return str(default_npz_path())


def fer_faces(path: str, usage: str, limit: int | None) -> np.ndarray:
    with np.load(path, allow_pickle=False) as d:
        px = d["pixels"][d["usage"] == usage]
    return px[:limit] if limit else px


def upscaled(px48: np.ndarray, side: int = 192) -> tuple[np.ndarray, tuple[float, float, float, float]]:
    """A FER2013 crop as RGB ``side`` px, and the box our detector would roughly give (the central 80 %)."""
    big = cv2.resize(px48, (side, side), interpolation=cv2.INTER_CUBIC)
    m = 0.1 * side
    return cv2.cvtColor(big, cv2.COLOR_GRAY2RGB), (m, m, side - m, side - m)


def fer_mirror(est: GeometryEstimator, path: str, limit: int | None) -> dict:
    """Yaw/pitch/roll of each PublicTest face and of its mirror image: yaw and roll should flip, pitch hold."""
    a, b = [], []
    faces = fer_faces(path, "PublicTest", limit)
    for px in tqdm(faces, desc="FER2013 mirror pairs"):
        rgb, box = upscaled(px)
        g, m = measure(est, rgb, box), measure(est, rgb[:, ::-1].copy(), box)
        if g is not None and m is not None:
            a.append(g.pose)
            b.append(m.pose)
    a, b = np.array(a), np.array(b)
    yaw, yaw_m = a[:, 1], b[:, 1]
    big = np.abs(yaw) > 10
    return {
        "faces": int(len(faces)), "both_meshed": int(len(a)),
        "yaw_abs_median_deg": round(float(np.median(np.abs(yaw))), 2),
        "yaw_abs_p90_deg": round(float(np.percentile(np.abs(yaw), 90)), 2),
        "yaw_sum_abs_median_deg": round(float(np.median(np.abs(yaw + yaw_m))), 2),
        "yaw_sum_abs_p90_deg": round(float(np.percentile(np.abs(yaw + yaw_m), 90)), 2),
        "yaw_corr_with_minus_mirror": round(float(np.corrcoef(yaw, -yaw_m)[0, 1]), 4),
        "yaw_over_10deg": int(big.sum()),
        "yaw_over_10deg_sign_flips": round(float((np.sign(yaw[big]) != np.sign(yaw_m[big])).mean()), 4),
        "yaw_over_10deg_magnitude_ratio_median": round(float(np.median(np.abs(yaw_m[big]) / np.abs(yaw[big]))), 3),
        "roll_sum_abs_median_deg": round(float(np.median(np.abs(a[:, 2] + b[:, 2]))), 2),
        "pitch_diff_abs_median_deg": round(float(np.median(np.abs(a[:, 0] - b[:, 0]))), 2),
    }


# ---- crafted blink / smile --------------------------------------------------------------------------------------

def crafted(est: GeometryEstimator) -> dict:
    img = skimage.data.astronaut()
    g = measure(est, img)
    skin = tuple(float(c) for c in img[128:134, 215:231].reshape(-1, 3).mean(0))
    lip = tuple(float(c) * 0.6 for c in img[150:153, 215:231].reshape(-1, 3).mean(0))
    painted = img.copy()
    for i in (468, 473):
        cv2.ellipse(painted, tuple(int(v) for v in g.landmarks[i, :2]), (13, 7), 0, 0, 360, skin, -1)
    flat = img.copy()
    cv2.rectangle(flat, (195, 133), (250, 160), skin, -1)
    cv2.line(flat, (205, 146), (240, 146), lip, 2)
    cases = {"original": img, "eyes_drawn_shut": close_eyes(img, g), "eyes_painted_over": painted,
             "mouth_flattened": flat, "blurred_sigma4": cv2.GaussianBlur(img, (0, 0), 4)}
    out = {}
    for name, im in cases.items():
        r = measure(est, im)
        out[name] = None if r is None else {
            "AU45_blink": round(r.au_proxies["AU45"], 3), "AU12_smile": round(r.au_proxies["AU12"], 3),
            "AU06_cheek": round(r.au_proxies["AU06"], 3), "AU26_jaw": round(r.au_proxies["AU26"], 3),
            "flags": [k for k, v in r.quality.items() if v], "sharpness": round(r.sharpness, 1)}
        cv2.imwrite(str(RESULTS / f"geometry-{name}.jpg"), cv2.cvtColor(im[30:210, 130:320], cv2.COLOR_RGB2BGR))
    return out


# ---- alignment for the classifier -------------------------------------------------------------------------------

def mesh_points(g: Geometry, variant: str) -> np.ndarray:
    """The points a mesh-based alignment uses: ``irises`` (MESH_FIVE), ``corners`` (eye centres as the mean of
    each eye's corners, which do not move with gaze, then nose tip and mouth corners) or ``all`` 478 points."""
    lm = g.landmarks[:, :2]
    if variant == "irises":
        return lm[list(MESH_FIVE)]
    if variant == "corners":
        return np.stack([lm[[33, 133]].mean(0), lm[[362, 263]].mean(0), lm[1], lm[61], lm[291]])
    return lm


def symmetric(t: np.ndarray, variant: str) -> np.ndarray:
    """Average a five-point template with its mirror image (the all-points one is used as measured)."""
    if variant == "all":
        return t.astype(np.float32)
    mirrored = t[[1, 0, 2, 4, 3]] * [-1, 1] + [1, 0]  # swap left/right, mirror x
    return ((t + mirrored) / 2).astype(np.float32)


VARIANTS = ("irises", "corners", "all")


def align(est: GeometryEstimator, path: str, template_n: int, limit: int | None) -> dict:
    """PublicTest (FER+ majority) accuracy of the default classifier on (a) the crops as given, (b) crops
    re-aligned from CenterFace's five landmarks (what ``Analyzer`` does on photos), (c) crops re-aligned from
    mesh points onto templates measured the same way as ``FER_TEMPLATE`` (median over Training crops, made
    symmetric), for each of ``VARIANTS``. All on the faces where both CenterFace and the mesh found a face."""
    import openfer
    from openfer.align.similarity import FER_TEMPLATE, warp_face
    from openfer.datasets import load_npz

    det = openfer.load_detector("centerface", threshold=0.3, max_side=None)
    clf = openfer.load_classifier("default")
    pts: dict[str, list] = {v: [] for v in VARIANTS}
    for px in tqdm(fer_faces(path, "Training", template_n), desc="mesh templates (Training)"):
        rgb, box = upscaled(px)
        g = measure(est, rgb, box)
        if g is not None:
            for v in VARIANTS:
                pts[v].append(mesh_points(g, v) / rgb.shape[0])
    templates = {v: symmetric(np.median(np.array(p), 0), v) for v, p in pts.items()}
    test = load_npz(path, "PublicTest", "ferplus")
    idx = np.arange(len(test))[:limit] if limit else np.arange(len(test))
    crops: dict[str, list] = {"as_given": [], "centerface_5pt": [], **{f"mesh_{v}": [] for v in VARIANTS}}
    keep = []
    for i in tqdm(idx, desc="PublicTest alignments"):
        rgb, box = upscaled(test.pixels[i])
        grey = rgb[:, :, 0]
        faces = det.detect(rgb)
        g = measure(est, rgb, box)
        if not faces or g is None:
            continue
        keep.append(i)
        crops["as_given"].append(test.pixels[i])
        crops["centerface_5pt"].append(warp_face(grey, faces[0].landmarks, 48, FER_TEMPLATE)[0])
        for v in VARIANTS:
            crops[f"mesh_{v}"].append(warp_face(grey, mesh_points(g, v), 48, templates[v])[0])
    labels = test.labels[keep]
    out = {"publictest_ferplus": int(len(idx)), "both_found": int(len(keep)),
           "template_from_training_crops": len(pts["irises"]),
           "mesh_templates": {v: np.round(t, 4).tolist() for v, t in templates.items() if v != "all"}}
    for name, c in crops.items():
        pred = clf.predict_proba(np.stack(c)).argmax(1)
        out[f"accuracy_{name}"] = round(float((pred == labels).mean()), 4)
    full = clf.predict_proba(test.pixels[idx]).argmax(1)
    out["accuracy_as_given_all"] = round(float((full == test.labels[idx]).mean()), 4)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("what", choices=["speed", "small", "pose", "crafted", "align"])
    ap.add_argument("--model-dir", default=default_model_dir())
    ap.add_argument("--data", default=None, help="fer2013_dev.npz (default: $OPENFER_DATA or ../shared/data)")
    ap.add_argument("--limit", type=int, default=None, help="only the first N PublicTest faces")
    ap.add_argument("--template-n", type=int, default=3000, help="Training crops for the mesh template")
    ap.add_argument("--repeats", type=int, default=30)
    ap.add_argument("--note", default="", help="what else ran on the machine (stored with the results)")
    args = ap.parse_args()
    est = GeometryEstimator(model_dir=args.model_dir)
    RESULTS.mkdir(exist_ok=True)
    threads = os.environ.get("OMP_NUM_THREADS", "unset")
    cond = {"omp_num_threads": threads, "cpu_count": os.cpu_count(),
            "load_note": args.note, "load_avg_1m_at_start": os.getloadavg()[0]}
    if args.what == "speed":
        write("speed", {**cond, **speed(est, args.repeats)})
    elif args.what == "small":
        write("small", {**cond, **small_faces(est)})
    elif args.what == "pose":
        write("pose", {**cond, **pose_checks(est, args.data, args.limit)})
    elif args.what == "crafted":
        write("crafted", {**cond, **crafted(est)})
    else:
        write("align", {**cond, **align(est, args.data or default_npz(), args.template_n, args.limit)})


if __name__ == "__main__":
    main()
