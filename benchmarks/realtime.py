"""Real-time video benchmarks: where the time goes, speed against the `fer` package, and what following faces
between detections costs in quality.

    python benchmarks/realtime.py profile                 # per-stage ms/frame on a 300-frame 640x480 one-face clip
    python benchmarks/realtime.py cli [--rounds 5]        # `openfer analyze clip.mp4 --out rows.csv`, start-up included
    python benchmarks/realtime.py fer [--rounds 5]        # frames/s against fer==25.10.3 (its own venv), 1 and 3 faces
    python benchmarks/realtime.py quality                 # recall, expression agreement, box IoU, id switches vs
                                                          # the every-frame pipeline, for several --detect-every
                                                          # and --classify-every

``fer`` needs a separate virtual environment with fer (installed with --no-deps) and tensorflow-cpu; it is never a
dependency of openfer (docs/video.md says how to make it); give its Python with --fer-python (default
/work/venv-fer/bin/python, or $FER_PYTHON). Timings alternate the contenders round by round and report medians,
because other work on the machine slows every number; the load average is written with each result. Results go to
benchmarks/results/realtime-<what>.json. Not part of the test run.

Clips are generated: faces (the London face set's photos when ../shared/data/london is there, else the astronaut)
moving over a textured background; in multi-face clips faces enter and leave at frames that are not detection
frames.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from conftest import iou  # noqa: E402 - the tests' box overlap, shared on purpose
RESULTS = Path(__file__).parent / "results"
LONDON = ROOT.parent / "shared" / "data" / "london" / "images"
SIZE = (640, 480)


def environment(note: str = "") -> dict:
    """Machine facts and the 1-minute load average now (other work on the machine slows every number)."""
    return {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
            "load_avg_1m": round(os.getloadavg()[0], 2), "note": note}


# ---- generated clips ---------------------------------------------------------------------------------------------

def _london_face(f: Path) -> np.ndarray:
    im = cv2.cvtColor(cv2.imread(str(f)), cv2.COLOR_BGR2RGB)
    h, w = im.shape[:2]
    return im[int(h * 0.1):int(h * 0.95), int(w * 0.15):int(w * 0.85)]


def face_images(n: int) -> list[np.ndarray]:
    """``n`` face photos (RGB, the face filling most of it): London set's when present (different people and
    expressions), else the astronaut's head."""
    if LONDON.is_dir():
        files = sorted(LONDON.glob("*.jpg"))
        step = max(1, len(files) // max(n, 1))
        return [_london_face(files[(k * step + k * 7) % len(files)]) for k in range(n)]
    import skimage.data

    head = skimage.data.astronaut()[20:230, 120:300]
    return [head.copy() for _ in range(n)]


def expression_pairs(n: int) -> list[tuple[np.ndarray, np.ndarray]] | None:
    """``n`` people's (neutral, smiling) photos from the London set, or None without it."""
    if not LONDON.is_dir():
        return None
    people = sorted(f.name.split("_")[1] for f in LONDON.glob("neutral_*.jpg"))[::7][:n]
    return [(_london_face(next(LONDON.glob(f"neutral_{p}_*.jpg"))), _london_face(next(LONDON.glob(f"happiness_{p}_*.jpg"))))
            for p in people]


def background(seed: int = 0) -> np.ndarray:
    """A textured 640x480 background (smooth noise), so optical flow also sees still texture around faces."""
    rng = np.random.default_rng(seed)
    noise = rng.random((SIZE[1] // 16, SIZE[0] // 16, 3)).astype(np.float32)
    return (cv2.resize(noise, SIZE, interpolation=cv2.INTER_CUBIC) * 90 + 80).clip(0, 255).astype(np.uint8)


def scene(n_frames: int, people: int, seed: int = 0, enter_leave: bool = True) -> list[list]:
    """Per person, per frame ``(cx, cy, height)`` of the pasted photo or None when absent. People move on smooth
    paths (up to ~4 px per frame) and change size a little; with ``enter_leave`` every person but the first
    enters after the start and some leave before the end, at frames that are not multiples of small N."""
    rng = np.random.default_rng(seed)
    lanes = np.linspace(0, SIZE[0], people + 1)
    out = []
    for p in range(people):
        x0 = (lanes[p] + lanes[p + 1]) / 2
        y0 = SIZE[1] / 2 + rng.uniform(-60, 60)
        height = rng.uniform(120, 170) if people > 1 else 170.0
        ax, ay = (lanes[p + 1] - lanes[p]) / 2 - height * 0.45, 60
        fx, fy, ph = rng.uniform(0.01, 0.025), rng.uniform(0.01, 0.03), rng.uniform(0, 6.28)
        enter = 0 if (p == 0 or not enter_leave) else int(rng.integers(7, n_frames // 2)) | 1
        leave = n_frames if (not enter_leave or p % 2 == 0) else int(rng.integers(n_frames * 2 // 3, n_frames - 5))
        track = []
        for i in range(n_frames):
            if not (enter <= i < leave):
                track.append(None)
                continue
            s = 1 + 0.1 * np.sin(0.02 * i + ph)
            track.append((x0 + ax * np.sin(fx * i + ph), y0 + ay * np.sin(fy * i), height * s))
        out.append(track)
    return out


#: Frames a change of expression takes in ``write_clip(changing=True)`` (about 0.2 s at 30 frames/s).
CHANGE_FRAMES = 6


def write_clip(path: Path, tracks: list[list], seed: int = 0, fps: float = 30.0, plain: bool = False,
               changing: bool = False) -> list[list]:
    """Render ``tracks`` (``scene``) with the face photos over ``background`` (``plain``: flat grey) to ``path``
    (.mp4: mp4v); returns per person, per frame the pasted photo's rectangle (x1, y1, x2, y2) or None.
    ``changing`` (needs the London set): every person turns from neutral to smiling and back, each change a
    cross-fade over ``CHANGE_FRAMES`` frames, at frames that differ between people and are not multiples of small N
    (so classifying followed faces less often is tested on faces whose expression changes)."""
    pairs = expression_pairs(len(tracks)) if changing else None
    faces = face_images(len(tracks)) if pairs is None else [a for a, _ in pairs]
    bg = np.full((SIZE[1], SIZE[0], 3), 128, np.uint8) if plain else background(seed)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*("mp4v" if path.suffix == ".mp4" else "MJPG")),
                             fps, SIZE)
    rects: list[list] = [[] for _ in tracks]
    for i in range(len(tracks[0])):
        frame = bg.copy()
        for p, (face, track, rect) in enumerate(zip(faces, tracks, rects)):
            if track[i] is None:
                rect.append(None)
                continue
            cx, cy, h = track[i]
            if pairs is not None:
                face = _expression_at(*pairs[p], i, p)
            w = h * face.shape[1] / face.shape[0]
            x1, y1 = int(round(cx - w / 2)), int(round(cy - h / 2))
            x1, y1 = max(0, min(SIZE[0] - int(w) - 1, x1)), max(0, min(SIZE[1] - int(h) - 1, y1))
            frame[y1:y1 + int(h), x1:x1 + int(w)] = cv2.resize(face, (int(w), int(h)), interpolation=cv2.INTER_AREA)
            rect.append((x1, y1, x1 + int(w), y1 + int(h)))
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()
    return rects


def _expression_at(neutral: np.ndarray, smiling: np.ndarray, frame: int, person: int) -> np.ndarray:
    """The photo of a ``changing`` person at ``frame``: neutral, then smiling from a person-dependent odd frame
    on for about 40 frames, then neutral again, repeating every 90 frames; cross-fades of ``CHANGE_FRAMES``."""
    if smiling.shape != neutral.shape:
        smiling = cv2.resize(smiling, neutral.shape[1::-1], interpolation=cv2.INTER_AREA)
    t = (frame - 23 - 11 * person) % 90
    w = min(1.0, t / CHANGE_FRAMES) if t < 40 else max(0.0, 1 - (t - 40) / CHANGE_FRAMES)
    return cv2.addWeighted(smiling, w, neutral, 1 - w, 0)


# ---- profile -----------------------------------------------------------------------------------------------------

def profile(args) -> dict:
    """Per-stage time on one clip, each stage run alone over all frames (one thread), plus the whole pipeline."""
    from openfer import Analyzer
    from openfer.analyzer import face_crops
    from openfer.detect import load_detector
    from openfer.io.rows import RowWriter
    from openfer.types import ImageResult
    from openfer.track import FaceTracker
    from openfer.track.flow import FlowCarrier
    from openfer.video import open_source, run_video

    res: dict = {"environment": environment(args.note), "frames": args.frames, "stages_ms_per_frame": {}}
    with tempfile.TemporaryDirectory() as tmp:
        clip = Path(tmp) / "clip.mp4"
        write_clip(clip, scene(args.frames, 1, enter_leave=False))
        t0 = time.perf_counter()
        out = subprocess.run([sys.executable, "-c", "import time; t=time.perf_counter(); import openfer; "
                              "from openfer.detect import load_detector; "
                              "a=openfer.Analyzer(detector=load_detector('centerface', max_shrink=None)); "
                              "print(time.perf_counter()-t)"], capture_output=True, text=True, check=True)
        res["startup_s"] = {"import_and_load_models": round(float(out.stdout.split()[-1]), 3),
                            "python_process_total": round(time.perf_counter() - t0, 3)}
        stages = res["stages_ms_per_frame"]

        def timed(name, fn):
            t = time.perf_counter()
            value = fn()
            stages[name] = round((time.perf_counter() - t) * 1000 / args.frames, 2)
            return value

        frames = timed("decode", lambda: [f.image for f in open_source(clip)])
        an = Analyzer(detector=load_detector("centerface", max_shrink=None))
        dets = timed("detect_every_frame", lambda: [an.detector.detect(f) for f in frames])
        carrier = FlowCarrier()

        def follow():
            for i, (f, d) in enumerate(zip(frames, dets)):
                if i % 5 == 0:
                    carrier.start(f, d)
                else:
                    carrier.carry(f)
        timed("flow_carry_4_of_5_frames", follow)
        tracker = FaceTracker()
        tracked = timed("track_bytetrack", lambda: [tracker.update(d, i / 30) for i, d in enumerate(dets)])
        clf = an.classifier
        crops = timed("align_crops", lambda: [face_crops(f, d, clf.input_size, clf.spec.channels)
                                              for f, d in zip(frames, tracked)])

        def classify():
            probs = []
            for k in range(0, len(crops), 8):
                batch = [c for c in crops[k:k + 8] if len(c)]
                if batch:
                    probs.append(clf.predict_proba(np.concatenate(batch)))
            return probs
        timed("classify_batch8", classify)
        classified = an.classify_frames(list(zip(frames, tracked)))

        def write():
            w = RowWriter(Path(tmp) / "rows.csv", clf.classes)
            for i, faces in enumerate(classified):
                w.write(ImageResult(faces, frame=i, timestamp=i / 30).to_rows(clf.classes))
            w.close()
        timed("write_csv", write)
        for every in (1, args.detect_every):
            t = time.perf_counter()
            r = run_video(an, open_source(clip), out=Path(tmp) / "rows2.csv", detect_every=every)
            res[f"run_video_detect_every_{every}_frames_per_s"] = round(r.frames / (time.perf_counter() - t), 1)
    res["environment"]["load_avg_1m_at_end"] = round(os.getloadavg()[0], 2)
    print(json.dumps(res, indent=2), flush=True)
    return res


# ---- speed against fer, and the CLI ------------------------------------------------------------------------------

#: Runs in fer's own environment: decode the clip and run fer's detect+classify on every frame (fer's defaults: the
#: OpenCV Haar cascade and its TFLite expression model). Start-up (imports, model load) is timed apart.
FER_WORKER = """
import json, os, sys, time
t0 = time.perf_counter()
import cv2
from fer.fer import FER
det = FER()
startup = time.perf_counter() - t0
cap = cv2.VideoCapture(sys.argv[1])
ok, frame = cap.read()
det.detect_emotions(frame)  # warm-up on the first frame, not timed
cap.release()
cap = cv2.VideoCapture(sys.argv[1])
t, cpu0 = time.perf_counter(), sum(os.times()[:2])
frames = faces = 0
while True:
    ok, frame = cap.read()
    if not ok:
        break
    faces += len(det.detect_emotions(frame))
    frames += 1
secs = time.perf_counter() - t
cpu = sum(os.times()[:2]) - cpu0
print(json.dumps({"frames": frames, "faces": faces, "seconds": secs, "cpu_s": cpu, "startup_s": startup}))
"""

#: Runs in openfer's environment: the same clip through ``run_video`` (decode, detect or follow, track, classify,
#: write rows), models loaded first and timed apart, warmed up on the first frame as fer is.
OURS_WORKER = """
import json, os, sys, time, tempfile
from pathlib import Path
t0 = time.perf_counter()
import openfer
from openfer.detect import load_detector
from openfer.video import open_source, run_video
from openfer.track.bytetrack import preload
thread = preload()  # the tracking library's imports (about 1 s) overlap with loading the models, as in the CLI
an = openfer.Analyzer(detector=load_detector("centerface", max_shrink=None), classifier=sys.argv[3])
if thread is not None:
    thread.join()  # start-up ends when the tracker is ready, as it must be before the first frame
startup = time.perf_counter() - t0
first = next(iter(open_source(sys.argv[1]))).image
an.classify(first, an.detector.detect(first))
with tempfile.TemporaryDirectory() as tmp:
    t, cpu0 = time.perf_counter(), sum(os.times()[:2])
    r = run_video(an, open_source(sys.argv[1]), out=Path(tmp) / "rows.csv", detect_every=int(sys.argv[2]),
                  classify_every=int(sys.argv[4]))
    secs = time.perf_counter() - t
    cpu = sum(os.times()[:2]) - cpu0
print(json.dumps({"frames": r.frames, "faces": r.faces, "seconds": secs, "cpu_s": cpu, "startup_s": startup}))
"""


def _worker(python: str, code: str, *argv) -> dict:
    out = subprocess.run([python, "-c", code, *map(str, argv)], capture_output=True, text=True,
                         env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    if out.returncode != 0:
        raise RuntimeError(f"{python} failed: {out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def fer(args) -> dict:
    """frames/s of fer's pipeline and ours (the default fast path, the every-frame path; default model unless
    --models) on 640x480 clips with 1 and 3 faces, alternating round by round; medians over rounds."""
    if not Path(args.fer_python).exists():
        raise SystemExit(f"fer's Python {args.fer_python} is missing: make the venv as docs/video.md says")
    res: dict = {"environment": environment(args.note), "frames": args.frames, "rounds": args.rounds, "clips": {}}
    # ours: the defaults (detect and classify on some frames), and the exact every-frame path
    contenders = [("fer", None, None, None)] + [
        (f"openfer {m} " + (f"detect_every={n}" if n == 1 else f"detect_every={n} classify_every={k}"), m, n, k)
        for m in args.models.split(",") for n, k in ((args.detect_every, args.classify_every), (1, 1))]
    with tempfile.TemporaryDirectory() as tmp:
        for people in (1, 3):
            clip = Path(tmp) / f"{people}.mp4"
            # flat grey around the faces: fer's Haar cascade finds no false faces there (textured backgrounds gave it
            # extra faces to classify and slowed it further), so the comparison is the kindest to fer
            write_clip(clip, scene(args.frames, people, seed=people, enter_leave=False), seed=people, plain=True)
            runs: dict[str, list[dict]] = {name: [] for name, _, _, _ in contenders}
            for k in range(args.rounds):
                for name, model, every, classify in contenders if k % 2 == 0 else contenders[::-1]:
                    if model is None:
                        runs[name].append(_worker(args.fer_python, FER_WORKER, clip))
                    else:
                        runs[name].append(_worker(sys.executable, OURS_WORKER, clip, every, model, classify))
                    r = runs[name][-1]
                    print(f"{people} face(s) round {k}: {name}: {r['frames'] / r['seconds']:.1f} frames/s "
                          f"({r['faces']} faces, load {os.getloadavg()[0]:.1f})", flush=True)
            out = {}
            for name, rs in runs.items():
                fps = [r["frames"] / r["seconds"] for r in rs]
                out[name] = {"frames_per_s_median": round(statistics.median(fps), 1),
                             # CPU time (all threads) per frame: less swayed by other work on the machine
                             "cpu_ms_per_frame_median": round(statistics.median(
                                 1000 * r["cpu_s"] / r["frames"] for r in rs), 1),
                             "frames_per_s_rounds": [round(v, 1) for v in fps],
                             "faces_per_frame": round(rs[0]["faces"] / max(1, rs[0]["frames"]), 2),
                             "startup_s_median": round(statistics.median(r["startup_s"] for r in rs), 2)}
            base = out["fer"]["frames_per_s_median"]
            base_cpu = out["fer"]["cpu_ms_per_frame_median"]
            for name in out:
                out[name]["x_fer"] = round(out[name]["frames_per_s_median"] / base, 2)
                out[name]["x_fer_cpu"] = round(base_cpu / out[name]["cpu_ms_per_frame_median"], 2)
            res["clips"][f"640x480 {people} face(s)"] = out
            print(json.dumps(out, indent=2), flush=True)
    res["environment"]["load_avg_1m_at_end"] = round(os.getloadavg()[0], 2)
    return res


def cli(args) -> dict:
    """Wall time of ``openfer analyze clip.mp4 --out rows.csv`` (a new process: start-up included) on a 300-frame
    640x480 one-face clip, the default against ``--detect-every 1 --classify-every 1`` (the exact every-frame
    path), alternating; medians."""
    exe = Path(sys.executable).with_name("openfer")
    res: dict = {"environment": environment(args.note), "frames": args.frames, "rounds": args.rounds, "runs": {}}
    with tempfile.TemporaryDirectory() as tmp:
        clip = Path(tmp) / "clip.mp4"
        write_clip(clip, scene(args.frames, 1, enter_leave=False))
        variants = {"default": [], "--detect-every 1 --classify-every 1": []}
        for k in range(args.rounds):
            for name in (list(variants) if k % 2 == 0 else list(variants)[::-1]):
                extra = name.split() if name != "default" else []
                t = time.perf_counter()
                subprocess.run([str(exe), "analyze", str(clip), "--out", str(Path(tmp) / "rows.csv"), "--overwrite",
                                "--quiet", *extra], check=True)
                variants[name].append(args.frames / (time.perf_counter() - t))
                print(f"round {k}: {name}: {variants[name][-1]:.1f} frames/s (load {os.getloadavg()[0]:.1f})",
                      flush=True)
        for name, fps in variants.items():
            res["runs"][name] = {"frames_per_s_median": round(statistics.median(fps), 1),
                                 "frames_per_s_rounds": [round(v, 1) for v in fps]}
    res["environment"]["load_avg_1m_at_end"] = round(os.getloadavg()[0], 2)
    print(json.dumps(res["runs"], indent=2), flush=True)
    return res


# ---- quality -----------------------------------------------------------------------------------------------------

def _match(a: list, b: list, min_iou: float = 0.5) -> list[tuple[int, int, float]]:
    """Greedy best-IoU pairs (index in a, index in b, IoU) with IoU >= ``min_iou``."""
    pairs = sorted(((iou(x, y), i, j) for i, x in enumerate(a) for j, y in enumerate(b)), reverse=True)
    used_a, used_b, out = set(), set(), []
    for v, i, j in pairs:
        if v >= min_iou and i not in used_a and j not in used_b:
            out.append((i, j, v))
            used_a.add(i)
            used_b.add(j)
    return out


def _faces_by_frame(rows: list[dict]) -> dict[int, list[dict]]:
    out: dict[int, list[dict]] = {}
    for r in rows:
        if r["success"]:
            out.setdefault(int(r["frame"]) - 1, []).append(r)
    return out


def _box(r: dict) -> tuple:
    return (r["x1"], r["y1"], r["x2"], r["y2"])


def _person_of(box, rects_now: list) -> int | None:
    """The person whose pasted photo holds the centre of ``box``."""
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    for p, r in enumerate(rects_now):
        if r is not None and r[0] <= cx <= r[2] and r[1] <= cy <= r[3]:
            return p
    return None


def compare(ref_rows: list[dict], rows: list[dict], rects: list[list], n_frames: int) -> dict:
    """``rows`` against the every-frame pipeline's ``ref_rows`` (recall, expression agreement, box IoU) and
    against the clip's people (frames until a new person is found, id switches)."""
    ref, got = _faces_by_frame(ref_rows), _faces_by_frame(rows)
    n_ref = matched = agree = 0
    ious = []
    for i in range(n_frames):
        a, b = ref.get(i, []), got.get(i, [])
        n_ref += len(a)
        for ia, ib, v in _match([_box(r) for r in a], [_box(r) for r in b]):
            matched += 1
            ious.append(v)
            agree += a[ia]["expression"] == b[ib]["expression"]
    delays, switches, last_id = [], 0, {}
    for p, rect in enumerate(rects):
        first = next((i for i, r in enumerate(rect) if r is not None), None)
        if first is None:
            continue
        seen = next((i for i in range(first, n_frames) if any(
            _person_of(_box(r), [x[i] for x in rects]) == p for r in got.get(i, []))), None)
        if first > 0:
            delays.append(None if seen is None else seen - first)
    for i in range(n_frames):
        for r in got.get(i, []):
            p = _person_of(_box(r), [x[i] for x in rects])
            if p is None or r["face_id"] < 0:
                continue
            if p in last_id and last_id[p] != r["face_id"]:
                switches += 1
            last_id[p] = r["face_id"]
    return {"reference_faces": n_ref, "recall": matched / max(1, n_ref),
            "expression_agreement": agree / max(1, matched),
            "box_iou_mean": float(np.mean(ious)) if ious else 0.0,
            "box_iou_p05": float(np.percentile(ious, 5)) if ious else 0.0,
            "new_face_delays_frames": delays, "id_switches": switches}


def quality(args) -> dict:
    """The every-frame pipeline (detect and classify every face on every frame) against the fast path's settings on
    generated multi-face clips: ``--detect-every`` N (classifying every frame), and the default N with
    ``--classify-every`` k. Clips: people moving, entering and leaving; with the London set also people whose
    expression changes (``write_clip(changing=True)``), where reusing classifications could miss a change.
    Speeds of each on the same clips."""
    from openfer import Analyzer
    from openfer.detect import load_detector
    from openfer.track import FaceTracker
    from openfer.track.follow import FaceFollower
    from openfer.video import open_source, run_video

    an = Analyzer(detector=load_detector("centerface", max_shrink=None))
    variants = [(int(n), 1) for n in args.everies.split(",")] + \
        [(args.detect_every, int(k)) for k in args.classify_everies.split(",")]
    variants = list(dict.fromkeys(v for v in variants if v != (1, 1)))
    res: dict = {"environment": environment(args.note), "frames": args.frames, "full_every": args.full_every,
                 "clips": {}, "totals": {}}
    clips = [(people, seed, False) for people, seed in [(1, 0), (2, 1), (3, 2), (3, 3), (4, 4)]]
    if LONDON.is_dir():
        clips += [(people, seed, True) for people, seed in [(1, 5), (2, 6), (3, 7)]]
    totals: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for people, seed, changing in clips:
            name = f"{people}faces-seed{seed}" + ("-changing" if changing else "")
            clip = Path(tmp) / f"{name}.avi"
            rects = write_clip(clip, scene(args.frames, people, seed=seed), seed=seed, changing=changing)
            runs = {}
            for n, k in [(1, 1), *variants]:
                rows: list[dict] = []
                t = time.perf_counter()
                follower = FaceFollower(an.detector, FaceTracker(), n, full_every=args.full_every) \
                    if args.full_every else None
                r = run_video(an, open_source(clip), on_rows=rows.extend, detect_every=n, classify_every=k,
                              follower=follower)
                runs[n, k] = (rows, r.frames / (time.perf_counter() - t), r.summary)
            res["clips"][name] = {"every_frame_frames_per_s": round(runs[1, 1][1], 1)}
            for n, k in variants:
                c = compare(runs[1, 1][0], runs[n, k][0], rects, args.frames)
                c.update(frames_per_s=round(runs[n, k][1], 1), detected_frames=runs[n, k][2].get("detected_frames"),
                         classified_faces=runs[n, k][2].get("classified_faces"))
                key = f"detect_every_{n}" + (f"_classify_every_{k}" if k != 1 else "")
                res["clips"][name][key] = {a: round(v, 4) if isinstance(v, float) else v for a, v in c.items()}
                for group in ("all", "changing" if changing else "moving"):
                    t = totals.setdefault(group, {}).setdefault(key, {
                        "ref": 0, "matched": 0, "agree": 0, "delays": [], "switches": 0, "fps": [], "classified": 0})
                    t["ref"] += c["reference_faces"]
                    t["matched"] += round(c["recall"] * c["reference_faces"])
                    t["agree"] += round(c["expression_agreement"] * round(c["recall"] * c["reference_faces"]))
                    t["delays"] += c["new_face_delays_frames"]
                    t["switches"] += c["id_switches"]
                    t["fps"].append(runs[n, k][1] / runs[1, 1][1])
                    t["classified"] += c["classified_faces"] or 0
            print(name, json.dumps(res["clips"][name]), flush=True)
    for group, by_key in totals.items():
        res["totals"][group] = {}
        for key, t in by_key.items():
            found = [d for d in t["delays"] if d is not None]
            res["totals"][group][key] = {
                "recall": round(t["matched"] / max(1, t["ref"]), 4),
                "expression_agreement": round(t["agree"] / max(1, t["matched"]), 4),
                "classified_share": round(t["classified"] / max(1, t["matched"]), 3),
                "new_faces": len(t["delays"]), "new_faces_missed": len(t["delays"]) - len(found),
                "new_face_delay_max_frames": max(found, default=None), "id_switches": t["switches"],
                "speedup_median": round(float(np.median(t["fps"])), 2)}
    res["environment"]["load_avg_1m_at_end"] = round(os.getloadavg()[0], 2)
    print(json.dumps(res["totals"], indent=2), flush=True)
    return res


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("what", choices=["profile", "cli", "fer", "quality"])
    p.add_argument("--frames", type=int, default=300)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--detect-every", type=int, default=5)
    p.add_argument("--classify-every", type=int, default=5, help="fer: ours besides the every-frame path")
    p.add_argument("--models", default="default", help="fer: openfer models to run, comma-separated")
    p.add_argument("--everies", default="2,3,5,8,10", help="quality: the --detect-every values to compare")
    p.add_argument("--classify-everies", default="1,3,5,10",
                   help="quality: the --classify-every values to compare at --detect-every")
    p.add_argument("--full-every", type=int, default=None,
                   help="quality: FaceFollower(full_every=) for the fast path (default: the library's)")
    p.add_argument("--fer-python", default=os.environ.get("FER_PYTHON", "/work/venv-fer/bin/python"))
    p.add_argument("--note", default="")
    args = p.parse_args()
    res = globals()[args.what](args)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"realtime-{args.what}.json").write_text(json.dumps(res, indent=2) + "\n")


if __name__ == "__main__":
    main()
