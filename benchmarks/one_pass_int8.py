"""`default` quantized with one set of activation scales for the face and its mirror image, so that it runs in one
pass exactly: compared with the shipped `default` on validation data (docs/models.md, "One pass per network").

Usage: python benchmarks/one_pass_int8.py --float runs/default_mux_nets_robust2/float.onnx --detections CACHE
       [--two-passes --seed 1]  # the noise floor: the same networks, two passes, other calibration faces

``--float`` is `default`'s three networks before quantisation (``benchmarks/finetune_robust.sh`` writes it). They are
batched (``openfer.classify.mirror.batch_mirror``: exact in float), quantised as ``openfer quantize --method minmax``
does (the same 256 Training faces), given the shipped file's last layer and metadata, and scored against the shipped
`default` with ``benchmarks/one_pass.py``'s comparison and speed rounds. ``--two-passes --seed 1`` quantizes the
networks as they are, on other calibration faces: how far a fresh calibration alone moves the labels. Writes
``benchmarks/results/one_pass_int8[_two_passes][_seedN].json`` and the files under ``runs/one_pass_int8*/``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper
from onnx.utils import Extractor

from one_pass import compare, validation_sets
from openfer.classify import OnnxClassifier
from openfer.classify.features import attach_head, metadata_of, write_metadata
from openfer.classify.mirror import batch_mirror
from openfer.datasets import load_dataset
from openfer.detect import load_detector
from openfer.runtime import make_session
from openfer.train.quantize import calibration_images, quantize_classifier
from openfer.zoo.registry import get_spec, model_path
from openfer.zoo.speed import ms_per_face

RESULTS = Path(__file__).parent / "results" / "one_pass_int8.json"


def last_layer(shipped: onnx.ModelProto, width: int) -> onnx.ModelProto:
    """The shipped file's last layer alone: its pooled features (``base_features``) in, probabilities out."""
    copy = onnx.ModelProto()
    copy.CopyFrom(shipped)
    copy.graph.value_info.append(helper.make_tensor_value_info("base_features", TensorProto.FLOAT, ["N", width]))
    return Extractor(copy).extract_model(["base_features"], ["probabilities"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--float", dest="float_path", type=Path, required=True)
    ap.add_argument("--data", default=None, help="FER2013 npz (default: ../shared/data/fer2013_dev.npz)")
    ap.add_argument("--detections", default=None, help="muxspace detection cache (openfer evaluate's)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--two-passes", action="store_true", help="quantize the networks as they are (not batched)")
    ap.add_argument("--seed", type=int, default=0, help="which 256 Training faces calibrate (openfer quantize's)")
    ap.add_argument("--out", type=Path, default=None, help="default: benchmarks/results/one_pass_int8[_two_passes"
                    "_seedN].json")
    args = ap.parse_args()
    spec = get_spec("default")
    shipped = onnx.load(str(model_path(spec)))
    tag = ("_two_passes" if args.two_passes else "") + (f"_seed{args.seed}" if args.seed else "")
    folder = Path(f"runs/one_pass_int8{tag}")
    folder.mkdir(parents=True, exist_ok=True)
    networks = onnx.load(str(args.float_path))
    onnx.save(networks if args.two_passes else batch_mirror(networks), str(folder / "float.onnx"))
    images = calibration_images(load_dataset(args.data, "Training", "ferplus"), 256, args.seed)
    report = quantize_classifier(folder / "float.onnx", folder / "int8.onnx", images, method="minmax")
    networks = onnx.load(str(folder / "int8.onnx"))
    candidate = write_metadata(attach_head(networks, last_layer(shipped, 768), len(spec.classes)), metadata_of(shipped))
    onnx.save(candidate, str(folder / "default.onnx"))
    old = OnnxClassifier(spec, session=make_session(str(model_path(spec)), 2))
    new = OnnxClassifier(spec, session=make_session(str(folder / "default.onnx"), 2))
    sets = validation_sets(old, load_detector("centerface"), args.detections)
    out = {"quantize": report, "validation": {k: compare(old, new, x, y) for k, (x, y) in sets.items()},
           "speed_runs": {"shipped": [], "one_pass_int8": []}}
    for _ in range(args.rounds):
        out["speed_runs"]["shipped"].append(ms_per_face(old, 1, 2.0))
        out["speed_runs"]["one_pass_int8"].append(ms_per_face(new, 1, 2.0))
    out["ms_median"] = {k: float(np.median(v)) for k, v in out["speed_runs"].items()}
    print(json.dumps({k: v for k, v in out.items() if k != "speed_runs"}, indent=1))
    target = args.out or RESULTS.with_name(f"one_pass_int8{tag}.json")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
