"""Make the example pictures of docs/explain.md from the bundled astronaut photo with the current code.

Usage: python scripts/explain_examples.py [--out docs/explain] [--model default]

Writes ``astronaut-occlusion.jpg`` (the picture ``openfer explain`` writes for one image), ``methods.png`` (the face panel
of each of the four methods, stacked), ``mesh-regions.png`` (occlusion with the regions on the 478-point face mesh,
when the [geometry] extra and face_landmarker.task are available) and ``examples.json`` (the explanations, without
heatmaps).
Grad-CAM needs the [train] extra (PyTorch); without it those panels are left out and the script says so.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import skimage.data
from PIL import Image

import openfer
from openfer.explain import METHODS
from openfer.explain.overlay import face_panel, render_explanations


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="docs/explain")
    ap.add_argument("--model", default="default")
    ap.add_argument("--model-dir", default="../shared/models",
                    help="folder with face_landmarker.task for the mesh-region picture (skipped without it)")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    img = skimage.data.astronaut()
    analyzer = openfer.Analyzer(classifier=args.model)
    panels, record = [], {}
    for method in METHODS:
        try:
            faces = analyzer.explain(img, method)
        except ImportError as e:
            print(f"{method}: skipped ({e})")
            continue
        if method == "occlusion":
            # what `openfer explain` writes (as PNG there; JPEG here to keep the repository small)
            Image.fromarray(render_explanations(img, faces)).save(out / "astronaut-occlusion.jpg", quality=88)
        panels.append(face_panel(img, faces[0], 0, 720))
        record[method] = faces[0].explanation.to_dict(heatmap=False)
        print(faces[0].explanation.rationale)
    Image.fromarray(np.concatenate(panels)).save(out / "methods.png", optimize=True)
    try:  # regions on MediaPipe's face mesh, when the [geometry] extra and its model file are here
        from openfer.geometry import GeometryEstimator

        meshed = openfer.Analyzer(classifier=analyzer.classifier, geometry=GeometryEstimator(model_dir=args.model_dir))
        face = meshed.explain(img, "occlusion")[0]
        Image.fromarray(face_panel(img, face, 0, 720)).save(out / "mesh-regions.png", optimize=True)
        record["occlusion, mesh regions"] = face.explanation.to_dict(heatmap=False)
        print(face.explanation.rationale, "(mesh regions)")
    except (ImportError, FileNotFoundError) as e:
        print(f"mesh regions: skipped ({e})")
    (out / "examples.json").write_text(json.dumps({"model": args.model, "image": "skimage.data.astronaut()",
                                                   "explanations": record}, indent=2) + "\n")
    print(f"wrote {out}/astronaut-occlusion.jpg, methods.png, examples.json")


if __name__ == "__main__":
    main()
