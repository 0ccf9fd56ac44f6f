"""Cut one member out of an `openfer ensemble` ONNX file, as a classifier of its own (issue 14).

`large-v2` merges `default-int8-v1`'s networks (tag ``m0_``) with one faceres MobileNet (``m1_``), whose own file is
not kept. This writes that member with its calibrated probabilities (temperature and mirror averaging are inside
its part of the graph; `openfer.classify.merge.member_graph`) and openfer's metadata, so `openfer ensemble` can
merge it with other networks:

    python scripts/extract_member.py large-v2 m1_ runs/faceres_member.onnx \\
        --arch faceres_mobilenet --network-size 96 --prior-besides default-int8-v1

The source is a merged .onnx file or a registered model's name. The member's training prior comes back from the
merged file's: `openfer ensemble` declares the mean of its members' priors weighted by their network counts, so
with the other member's prior known (``--prior-besides``, a registered model) the rest is this member's.
`openfer ensemble src/openfer/models/default_int8.onnx OUT --half-weights` on the result rebuilds `large-v2`'s
answers exactly."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import onnx

from openfer.classify.features import write_metadata
from openfer.classify.merge import float_weights, member_graph
from openfer.classify.mirror import drop_mirror
from openfer.train.combine import metadata
from openfer.zoo.registry import resolve_model


def member_prior(meta: dict[str, str], other: str) -> list[float]:
    """The prior of the other member of a two-file merge whose one member is the registered model ``other``."""
    from openfer.zoo.registry import get_spec

    n_all = len(json.loads(meta["members"]))
    n_other = len(json.loads(metadata_of(other).get("members", '["one"]')))
    merged, rest = np.array(json.loads(meta["train_prior"])), np.array(get_spec(other).train_prior)
    prior = (n_all * merged - n_other * rest) / (n_all - n_other)
    if prior.min() < 0:
        raise ValueError(f"{other} is not the other member: its prior leaves negative shares")
    return [round(float(v), 6) for v in prior / prior.sum()]


def metadata_of(name: str) -> dict[str, str]:
    return metadata(resolve_model(name)[1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("src", help="a merged .onnx file or a registered model's name")
    ap.add_argument("tag", help="the member's tag in the merged graph, e.g. m1_")
    ap.add_argument("out", type=Path)
    ap.add_argument("--arch", required=True)
    ap.add_argument("--network-size", type=int, default=0, help="the network's input size when it differs")
    ap.add_argument("--tta", default="flip")
    ap.add_argument("--no-mirror", action="store_true", help="drop the member's mirror pass (tta none)")
    ap.add_argument("--prior-besides", default="", help="registered model that is the merged file's other member")
    args = ap.parse_args()

    src = resolve_model(args.src)[1]
    meta = metadata(src)
    part = float_weights(member_graph(onnx.load(str(src)), args.tag))  # float32, ready for openfer quantize
    if args.no_mirror:
        part, args.tta = drop_mirror(part), "none"
    keep = {k: meta[k] for k in ("classes", "input_size", "channels", "protocol", "split_seed", "val_fraction",
                                 "pretrained") if k in meta}
    keep.update({"arch": args.arch, "tta": args.tta, "producer": "openfer",
                 "extracted_from": json.dumps({"file": Path(args.src).name, "tag": args.tag})})
    if args.network_size:
        keep["network_input_size"] = str(args.network_size)
    if args.prior_besides:
        keep["class_prior"] = json.dumps(member_prior(meta, args.prior_besides))
    part = write_metadata(part, keep)
    onnx.checker.check_model(part)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(part, str(args.out))
    print(json.dumps({"out": str(args.out), "bytes": args.out.stat().st_size, **{k: keep[k][:80] for k in keep}},
                     indent=1))


if __name__ == "__main__":
    main()
