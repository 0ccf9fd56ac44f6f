"""How often `default-soft`'s damage probe names each kind of damage, on faces it never saw fitted.

Usage: python benchmarks/damage_flags.py --detections CACHE [--model default-soft] [--at 0.5]  # ~4 min

Every face of a model with a damage probe carries ``Face.damage`` (clean / eyes / mouth / detail), and a drawn label
says "eyes covered", "mouth covered" or "low detail" when that kind has probability ``--at`` or more
(``openfer.classify.damage.damage_note``). This counts those notes on the FER+ validation split, the photos of
muxspace's val people and the 204 London portraits (the probe was fitted on FER+ Training faces and muxspace's train
people only), each clean and under ``openfer.corrupt``'s nine corruptions (drawn occluders the probe never saw).
Writes ``benchmarks/results/damage_flags.json``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from openfer.classify import load_classifier
from openfer.classify.damage import DAMAGE_WORDS, damage_note
from openfer.corrupt import CORRUPTIONS
from openfer.crossdomain import detect_photos, load_photo_set, photo_crops, shared_data_path
from openfer.detect import load_detector
from openfer.train.combine import metadata, split_of, validation_faces
from openfer.zoo.registry import resolve_model

RESULTS = Path(__file__).parent / "results" / "damage_flags.json"
NOTES = ("none", *DAMAGE_WORDS.values())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="default-soft", help="a classifier with a damage probe")
    ap.add_argument("--data", default=None, help="FER2013 npz (default: ../shared/data/fer2013_dev.npz)")
    ap.add_argument("--detections", default=None, help="muxspace detection cache (openfer evaluate's)")
    ap.add_argument("--at", type=float, default=0.5, help="probability a kind needs to be named (damage_note)")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    clf = load_classifier(args.model, threads=2)
    if not clf.damage_kinds:
        raise SystemExit(f"{args.model} has no damage probe: try default-soft")
    spec, path = resolve_model(args.model)
    detector = load_detector("centerface")

    def photos(name: str, people: str, cache: str | None) -> np.ndarray:
        found_in = load_photo_set(shared_data_path(name), people)
        found = detect_photos(found_in, detector, cache)
        return photo_crops(found_in, found, clf.input_size, spec.channels)

    sets = {"fer_val": validation_faces(split_of(metadata(path)), args.data).pixels,
            "muxspace_val": photos("muxspace", "val", args.detections), "london": photos("london", "all", None)}
    out = {"model": args.model, "at": args.at, "notes": list(NOTES), "sets": {}}
    for name, crops in sets.items():
        rows = {}
        for cond in ("clean", *CORRUPTIONS):
            x = crops if cond == "clean" else CORRUPTIONS[cond](crops)
            damage = clf.predict_outputs(x).damage
            notes = [damage_note(dict(zip(clf.damage_kinds, d)), args.at) or "none" for d in damage]
            rows[cond] = {n: round(notes.count(n) / len(notes), 3) for n in NOTES}
            print(f"{name:>12} {cond:>10}: " + "  ".join(f"{n} {v:.3f}" for n, v in rows[cond].items()), flush=True)
        out["sets"][name] = {"n": len(crops), "rows": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
