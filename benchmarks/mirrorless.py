"""Issue 14: `large` at `default`'s cost? Its networks without their mirror passes (validation and speed).

`default` must cost at most 4 ms per face at batch 1 on the 2-core CPU; `large` (three int8 `fer_resnet` networks
and a faceres MobileNet, each run on the face and on its mirror image) takes about twice that. This builds, from the
shipped `large.onnx` alone (`openfer.classify.merge`: `member_graph`, `drop_mirror`, `merge_graph`):

- `nomirror`: both members without their mirror passes, the merge's temperature refitted on FER+ validation;
- `nomirror_int8`: the same with the MobileNet quantised to int8 (`openfer quantize`'s percentile calibration,
  256 Training faces outside the validation split);

then scores them with `scripts/fit_decision.py` (FER+ validation, muxspace's val people) and times them
interleaved with `default` and `large` (`openfer.zoo.speed.ms_per_face`, batch 1, 2 threads).

    python benchmarks/mirrorless.py --detections benchmarks/results/cache/detections-muxspace.npz   # ~5 min
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import onnx

from openfer.classify import load_classifier
from openfer.classify.features import metadata_of, write_metadata
from openfer.classify.merge import float_weights, half_weights, member_graph, merge_graph
from openfer.classify.mirror import drop_mirror
from openfer.datasets import load_dataset
from openfer.train.combine import fit_temperature, member_log_probs, split_of, validation_faces
from openfer.train.quantize import calibration_images, quantize_classifier
from openfer.zoo.registry import get_spec, model_path
from openfer.zoo.speed import ms_per_face

RESULTS = Path(__file__).parent / "results" / "mirrorless.json"


def build(out: Path, data: str | None) -> dict[str, Path]:
    """Write the two candidates into ``out``; return their paths."""
    large = onnx.load(str(model_path(get_spec("large"))))
    meta = metadata_of(large)
    keep = {k: meta[k] for k in ("classes", "input_size", "channels", "protocol", "split_seed", "val_fraction")}
    nets = drop_mirror(member_graph(large, "m0_"))
    mobilenet = write_metadata(drop_mirror(float_weights(member_graph(large, "m1_"))),
                               {**keep, "producer": "openfer", "arch": "faceres_mobilenet", "tta": "none"})
    out.mkdir(parents=True, exist_ok=True)
    onnx.save(mobilenet, str(out / "mobilenet.onnx"))
    calibration = calibration_images(load_dataset(data, "Training", "ferplus"), 256)
    quantize_classifier(out / "mobilenet.onnx", out / "mobilenet_int8.onnx", calibration, method="percentile")
    val = validation_faces(split_of(meta), data)
    paths = {}
    for name, second in (("nomirror", mobilenet), ("nomirror_int8", onnx.load(str(out / "mobilenet_int8.onnx")))):
        path = out / f"{name}.onnx"
        onnx.save(half_weights(merge_graph([nets, second], [3.0, 1.0], 1.0)), str(path))
        t = fit_temperature(member_log_probs(path, val.pixels), val.labels)
        model = half_weights(merge_graph([nets, second], [3.0, 1.0], t))
        onnx.save(write_metadata(model, {**meta, "temperature": str(t), "tta": "none"}), str(path))
        paths[name] = path
    return paths


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("runs/mirrorless"))
    ap.add_argument("--data", default=None)
    ap.add_argument("--detections", default=None)
    ap.add_argument("--rounds", type=int, default=7)
    args = ap.parse_args()
    paths = build(args.out, args.data)
    fd = args.out / "fit_decision.json"
    subprocess.run([sys.executable, str(Path(__file__).parents[1] / "scripts" / "fit_decision.py"),
                    *map(str, paths.values()), "default", "large", "--json", str(fd)]
                   + (["--detections", args.detections] if args.detections else []) + (["--data", args.data]
                                                                                       if args.data else []),
                   check=True)
    clfs = {"default": load_classifier("default", threads=2), "large": load_classifier("large", threads=2),
            **{n: load_classifier(str(p), threads=2) for n, p in paths.items()}}
    times: dict[str, list[float]] = {n: [] for n in clfs}
    for r in range(args.rounds):
        for n, clf in clfs.items():
            times[n].append(ms_per_face(clf, 1, 3.0))
        print(f"round {r + 1}: " + ", ".join(f"{n} {v[-1]:.2f}" for n, v in times.items()), flush=True)
    previous = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}
    result = {"what": __doc__.splitlines()[0], "when": time.strftime("%Y-%m-%d %H:%M"),
              "command": "python benchmarks/mirrorless.py " + " ".join(sys.argv[1:]),
              "validation": json.loads(fd.read_text()),
              "ms_per_face_batch1": {n: {"median": float(np.median(v)), "runs": v} for n, v in times.items()},
              **{k: v for k, v in previous.items() if k.startswith("publictest_once")}}
    RESULTS.write_text(json.dumps(result, indent=1) + "\n")
    print({n: round(float(np.median(v)), 2) for n, v in times.items()})


if __name__ == "__main__":
    main()
