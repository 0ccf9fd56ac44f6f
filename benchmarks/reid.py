"""Re-identification benchmark (issue 16 item 4): identity switches and wrong merges, before and after re-ID.

    python benchmarks/reid.py template   # LFW: identity-crop template, crop size, similarity threshold -> reid-lfw.json
    python benchmarks/reid.py london     # London portraits: same/different-person similarities -> reid-london.json
    python benchmarks/reid.py clips      # generated clips with cuts, exits/re-entries, occlusions -> reid.json

``template`` measures where CenterFace puts the 5 landmarks on muxspace's LFW photos (the framing faceres's
descriptors were checked on), then the same/different-person ROC AUC of faceres descriptors of aligned crops with
that template (and zoomed variants, and the expression models' tight FER template) at two crop sizes, and the
similarity that 1 % and 0.1 % of different-person pairs reach (the threshold candidates).

``clips`` builds videos from London portraits (read at run time from ../shared, never copied): several people
side by side who drift, leave and come back at another place, are hidden for seconds, a stranger who enters
where someone left, and cuts to a new background with everyone moved (and their other photo: neutral <-> smiling).
Every clip is analysed as ``openfer analyze`` does (detector every 5th frame, optical flow between, ByteTrack),
once with face_id = track id and once with re-identification; each row is matched to the person drawn there.
Identity switches: a person's face_id differing from the one they had last (MOT's IDSW), per 1,000 frames.
Wrong merges: a face_id that covers two people (each for at least 3 frames), counted once per extra person.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
RESULTS = ROOT / "benchmarks" / "results"


# --- clips ---------------------------------------------------------------------------------------------------------

def _portraits(london: Path) -> dict[str, dict[str, np.ndarray]]:
    """London portraits by person and emotion, RGB, the central face-and-hair part (300 x 340 of 400 x 400)."""
    import csv

    out: dict[str, dict[str, np.ndarray]] = {}
    with open(london / "labels.csv", newline="") as f:
        for r in csv.DictReader(f):
            img = cv2.cvtColor(cv2.imread(str(london / r["file"])), cv2.COLOR_BGR2RGB)
            out.setdefault(r["person"], {})[r["emotion"]] = img[30:370, 50:350]
    return out


def _background(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A scene: a two-colour gradient with a few furniture-like blocks and sensor noise."""
    a, b = rng.integers(40, 220, 3), rng.integers(40, 220, 3)
    ramp = np.linspace(0, 1, w)[None, :, None]
    img = (a * (1 - ramp) + b * ramp).repeat(h, 0)
    for _ in range(4):
        x, y = int(rng.integers(0, w - 60)), int(rng.integers(0, h - 60))
        img[y : y + int(rng.integers(30, 120)), x : x + int(rng.integers(30, 160))] = rng.integers(0, 255, 3)
    return np.clip(img + rng.normal(0, 4, img.shape), 0, 255).astype(np.uint8)


# A script: per scene, its length (s) and per person (index into the clip's cast) where they stand (x as a share of
# the width) and what happens: "stay", "exit@T" (walks out at T s, to the nearer edge), "enter@T" (walks in at T s),
# "hide@T-U" (hidden behind an object from T to U s). A person missing from a scene is absent.
SCRIPTS = {
    # the test's clip: A and B; A leaves and re-enters; a cut with both at swapped places
    "test": [
        (4.0, {0: (0.25, "exit@1.5"), 1: (0.72, "stay")}),
        (3.0, {0: (0.3, "enter@1.2"), 1: (0.72, "stay")}),
        (3.0, {0: (0.72, "stay"), 1: (0.28, "stay")}),
    ],
    "exits": [
        (6.0, {0: (0.2, "exit@2"), 1: (0.5, "stay"), 2: (0.8, "stay")}),
        (6.0, {0: (0.2, "enter@2"), 1: (0.5, "exit@3"), 2: (0.8, "stay")}),
        (6.0, {0: (0.2, "stay"), 1: (0.5, "enter@2.5"), 2: (0.8, "hide@1-4")}),
        (6.0, {1: (0.3, "stay"), 2: (0.7, "stay"), 3: (0.5, "enter@3")}),  # 0 gone; 3 a stranger enters
    ],
    "cuts": [
        (5.0, {0: (0.25, "stay"), 1: (0.75, "stay")}),
        (5.0, {0: (0.7, "stay"), 1: (0.3, "stay")}),
        (5.0, {1: (0.5, "stay")}),
        (5.0, {0: (0.3, "stay"), 2: (0.7, "stay")}),  # 2 a stranger
        (5.0, {0: (0.75, "hide@1-3.5"), 1: (0.25, "stay"), 2: (0.5, "stay")}),
    ],
}


def _position(x: float, event: str, t: float, w: int, size: int) -> tuple[float, bool]:
    """Centre x (pixels) of a person at scene time ``t``, and whether they are hidden."""
    centre, hidden = x * w, False
    kind, _, when = event.partition("@")
    edge = -size if x < 0.5 else w + size
    if kind == "exit":
        centre += np.clip((t - float(when)) / 1.0, 0, 1) * (edge - centre)  # 1 s to walk out
    elif kind == "enter":
        centre = edge + np.clip((t - float(when)) / 1.0, 0, 1) * (centre - edge)
    elif kind == "hide":
        a, b = (float(v) for v in when.split("-"))
        hidden = a <= t < b
    return centre + 8 * np.sin(1.3 * t + x * 7), hidden  # a little drift, as people sway


def make_clip(london: Path, people: int = 3, seed: int = 0, script: str = "exits", fps: float = 10.0,
              size: tuple[int, int] = (640, 360)):
    """Frames (RGB uint8 list) of a generated clip and its truth: per frame a list of (person, box) visible."""
    rng = np.random.default_rng(seed)
    portraits = _portraits(london)
    cast = [portraits[p] for p in rng.choice(sorted(portraits), max(people, 4), replace=False)]
    w, h = size
    frames, truth = [], []
    for scene_no, (length, roles) in enumerate(SCRIPTS[script]):
        bg = _background(rng, h, w)
        face_h = int(rng.integers(150, 200))
        occluder = rng.integers(0, 255, 3)
        for i in range(int(round(length * fps))):
            t = i / fps
            img = bg.copy()
            visible = []
            for who, (x, event) in roles.items():
                look = cast[who]["neutral" if (scene_no + who) % 2 == 0 else "happiness"]
                sh, sw = face_h, int(face_h * look.shape[1] / look.shape[0])
                sprite = cv2.resize(look, (sw, sh), interpolation=cv2.INTER_AREA)
                cx, hidden = _position(x, event, t, w, sw)
                x1, y1 = int(round(cx - sw / 2)), (h - sh) // 2 + int(10 * np.cos(0.9 * t + who))
                a, b = max(x1, 0), min(x1 + sw, w)
                if b - a < 4:
                    continue
                img[y1 : y1 + sh, a:b] = sprite[:, a - x1 : b - x1]
                if hidden:  # something in front of the face: a panel over the head
                    img[max(y1 - 10, 0) : y1 + int(sh * 0.8), max(a - 10, 0) : min(b + 10, w)] = occluder
                elif (b - a) > 0.6 * sw:  # at least most of the face inside the picture
                    visible.append((who, (a, y1, b, y1 + sh)))
            frames.append(img)
            truth.append(visible)
    return frames, truth


def score_rows(df, truth: list[list[tuple[int, tuple[int, int, int, int]]]]) -> dict:
    """Identity switches and wrong merges of a run's rows (DataFrame with frame, face_id, box) against ``truth``."""
    last: dict[int, int] = {}
    switches, matched = 0, 0
    cover: dict[int, dict[int, int]] = {}
    for frame, rows in df[df.success > 0].groupby("frame"):
        people = truth[int(frame) - 1]
        for _, r in rows.iterrows():
            cx, cy = (r.x1 + r.x2) / 2, (r.y1 + r.y2) / 2
            inside = [who for who, (a, b, c, d) in people if a <= cx <= c and b <= cy <= d]
            if len(inside) != 1:
                continue
            who, fid = inside[0], int(r.face_id)
            matched += 1
            if who in last and last[who] != fid:
                switches += 1
            last[who] = fid
            cover.setdefault(fid, {}).setdefault(who, 0)
            cover[fid][who] += 1
    merges = sum(max(0, sum(n >= 3 for n in c.values()) - 1) for c in cover.values())
    frames = len(truth)
    return {"frames": frames, "matched_faces": matched, "switches": switches,
            "switches_per_1000_frames": round(1000 * switches / frames, 2), "wrong_merges": merges,
            "face_ids": len(cover), "people": len({w for v in truth for w, _ in v})}


def clips(args) -> dict:
    from openfer.track.identity import load_describer
    from openfer.track.reid import Reidentifier, ReidSettings
    from openfer.video import ArraySource, analyze_video

    describer = load_describer(args.faceres)
    settings = ReidSettings(threshold=args.threshold)
    runs = []
    for seed in args.seeds:
        script, people = ("exits", 4) if seed % 6 < 3 else ("cuts", 3)
        frames, truth = make_clip(args.london, people, seed, script)
        row = {"script": script, "seed": seed}
        for name, reid in (("before", None), ("after", Reidentifier(describer, settings))):
            t0 = time.perf_counter()
            df = analyze_video(ArraySource(frames, fps=10), reid=reid)
            row[name] = {**score_rows(df, truth), "seconds": round(time.perf_counter() - t0, 2)}
            if reid is not None:
                s = reid.summary()
                row[name]["links"] = s["links"]
        print(json.dumps({k: row[k] if k in ("script", "seed") else {m: row[k][m] for m in
                          ("switches", "wrong_merges", "face_ids", "people")} for k in row}), flush=True)
        runs.append(row)
    total = {}
    for name in ("before", "after"):
        frames = sum(r[name]["frames"] for r in runs)
        sw = sum(r[name]["switches"] for r in runs)
        total[name] = {"frames": frames, "switches": sw, "switches_per_1000_frames": round(1000 * sw / frames, 2),
                       "wrong_merges": sum(r[name]["wrong_merges"] for r in runs),
                       "seconds": round(sum(r[name]["seconds"] for r in runs), 1)}
    return {"seeds": args.seeds, "settings": {"threshold": args.threshold, "fps": 10, "detect_every": 5, "size": [640, 360],
                         "faceres_size": describer.size},
            "ms_per_descriptor": round(1000 * describer.seconds / max(describer.count, 1), 2),
            "descriptors": describer.count, "total": total, "clips": runs}


# --- template, size and threshold on LFW ---------------------------------------------------------------------------

def template(args) -> dict:
    import onnxruntime as ort

    from openfer.align.similarity import FER_TEMPLATE
    from openfer.detect import load_detector
    from openfer.geometry.model_file import FACERES, find_model
    from openfer.track.identity import FaceDescriber
    from openfer.train.faceres import identity_pairs
    from openfer.zoo.faceres import build_onnx
    import csv

    with open(args.muxspace / "labels.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["source"] == "lfw"]
    by_person: dict[str, list[str]] = {}
    for r in rows:
        by_person.setdefault(r["person"], []).append(r["file"])
    same, diff = identity_pairs(by_person, args.pairs, seed=0)
    files = sorted({x for pair in same + diff for x in pair})
    detector = load_detector("centerface", max_shrink=None)
    faces, images = {}, {}
    for f in files:
        img = cv2.cvtColor(cv2.imread(str(args.muxspace / f)), cv2.COLOR_BGR2RGB)
        found = detector.detect(img)
        if found:  # the face nearest the centre (LFW photos are centred on their person)
            c = np.array(img.shape[1::-1]) / 2
            faces[f] = min(found, key=lambda x: np.hypot(*(np.array(x.box[:2]) + x.box[2:]) / 2 - c))
            images[f] = img
    side = next(iter(images.values())).shape[0]
    lm = np.median(np.stack([faces[f].landmarks for f in faces]), 0) / side
    lm = (lm + lm[[1, 0, 2, 4, 3]] * [-1, 1] + [1, 0]) / 2  # left-right symmetric
    centre = np.array([0.5, lm[:, 1].mean()])
    templates = {"lfw": lm, "lfw_zoom0.8": centre + (lm - centre) * 0.8, "lfw_zoom1.25": centre + (lm - centre) * 1.25,
                 "fer": FER_TEMPLATE}
    path = find_model(FACERES, args.faceres)
    pairs = [(a, b) for a, b in same if a in faces and b in faces], [(a, b) for a, b in diff if a in faces and b in faces]
    out = {"pairs_same": len(pairs[0]), "pairs_different": len(pairs[1]), "images": len(files),
           "detected": len(faces), "lfw_template": np.round(lm, 4).tolist(), "runs": []}
    for size in args.sizes:
        session = ort.InferenceSession(build_onnx(path, size), providers=["CPUExecutionProvider"])
        for name, tpl in templates.items():
            describer = FaceDescriber(session, size, np.asarray(tpl, np.float32))
            emb = {f: describer.describe(images[f], [faces[f]])[0] for f in faces}
            pos = np.array([emb[a] @ emb[b] for a, b in pairs[0]])
            neg = np.array([emb[a] @ emb[b] for a, b in pairs[1]])
            auc = float(((pos[:, None] > neg[None]).sum() + 0.5 * (pos[:, None] == neg[None]).sum())
                        / (len(pos) * len(neg)))
            run = {"size": size, "template": name, "auc": round(auc, 4),
                   "ms_per_descriptor": round(1000 * describer.seconds / describer.count, 2),
                   "same_median": round(float(np.median(pos)), 4), "different_median": round(float(np.median(neg)), 4)}
            for fmr in (0.01, 0.001):
                thr = float(np.quantile(neg, 1 - fmr))
                run[f"threshold_fmr{fmr}"] = round(thr, 4)
                run[f"tmr_at_fmr{fmr}"] = round(float((pos >= thr).mean()), 4)
            print(json.dumps(run), flush=True)
            out["runs"].append(run)
    return out


def london(args) -> dict:
    """Similarity of faceres descriptors between the two photos of each London person (neutral, smiling) and
    between different people, at the clips' face size: one studio, one camera, one light, as in a session video."""
    import csv

    from openfer.detect import load_detector
    from openfer.track.identity import load_describer

    detector = load_detector("centerface", max_shrink=None)
    describer = load_describer(args.faceres)
    emb = {}
    with open(args.london / "labels.csv", newline="") as f:
        for r in csv.DictReader(f):
            img = cv2.cvtColor(cv2.imread(str(args.london / r["file"])), cv2.COLOR_BGR2RGB)
            img = cv2.resize(img, (200, 200), interpolation=cv2.INTER_AREA)  # faces about the clips' size
            found = detector.detect(img)
            if found:
                emb[(r["person"], r["emotion"])] = describer.describe(img, found[:1])[0]
    times = []
    for _ in range(3):  # the cost of one descriptor (crop, warp, network), one ONNX thread, median of 3 x 20
        t0 = time.perf_counter()
        for _ in range(20):
            describer.describe(img, found[:1])
        times.append((time.perf_counter() - t0) / 20 * 1000)
    pos = np.array([emb[(p, "neutral")] @ emb[(p, "happiness")] for p in sorted({p for p, _ in emb})
                    if (p, "neutral") in emb and (p, "happiness") in emb])
    keys = list(emb)
    sims = np.stack([emb[k] for k in keys]) @ np.stack([emb[k] for k in keys]).T
    who = np.array([k[0] for k in keys])
    neg = sims[np.triu(who[:, None] != who[None], 1)]
    out = {"same_pairs": len(pos), "different_pairs": len(neg), "auc": round(float((pos[:, None] > neg[None]).mean()), 4),
           "same_median": round(float(np.median(pos)), 4), "same_min": round(float(pos.min()), 4),
           "different_median": round(float(np.median(neg)), 4), "ms_per_descriptor": round(float(np.median(times)), 2),
           "descriptor_size": describer.size,
           "at_threshold": {str(t): {"fmr": round(float((neg >= t).mean()), 5), "tmr": round(float((pos >= t).mean()), 4)}
                            for t in (0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8)}}
    print(json.dumps(out, indent=1))
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("what", choices=["template", "london", "clips"])
    p.add_argument("--faceres", type=Path, default=SHARED / "models" / "faceres")
    p.add_argument("--muxspace", type=Path, default=SHARED / "data" / "muxspace")
    p.add_argument("--london", type=Path, default=SHARED / "data" / "london")
    p.add_argument("--pairs", type=int, default=500)
    p.add_argument("--sizes", type=int, nargs="+", default=[112, 160])
    p.add_argument("--threshold", type=float, default=None, help="default: ReidSettings' threshold")
    p.add_argument("--seeds", type=int, nargs="+", default=list(range(6)),
                   help="clips: one per seed, 'exits' for seed %% 6 < 3, else 'cuts' (0-5 were used to choose "
                        "settings; 10-15 were kept for the final figures)")
    p.add_argument("--out", type=Path)
    args = p.parse_args()
    if args.what == "clips" and args.threshold is None:
        from openfer.track.reid import ReidSettings

        args.threshold = ReidSettings().threshold
    result = {"template": template, "london": london, "clips": clips}[args.what](args)
    result["machine"] = "shared 2-core CPU (other workers running); timings are indicative"
    out = args.out or RESULTS / {"template": "reid-lfw.json", "london": "reid-london.json", "clips": "reid.json"}[args.what]
    out.write_text(json.dumps(result, indent=2))
    print(f"wrote {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
