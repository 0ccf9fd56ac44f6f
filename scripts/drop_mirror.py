"""Write a classifier file without its networks' mirror passes (issue 14): half the cost per face.

Every exported network averages its logits over the face and its mirror image (``tta = "flip"``);
`openfer.classify.mirror.drop_mirror` prunes the mirror branch, and this records it in the metadata (``tta`` and
each member's ``arch:tta`` become ``none``) so speed tables and merges count the passes that are left:

    python scripts/drop_mirror.py runs/default_mux_nets_five/int8.onnx runs/default_mux_nets_five/int8_nm.onnx
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import onnx

from openfer.classify.features import metadata_of, write_metadata
from openfer.classify.mirror import drop_mirror


def mirrorless(model: onnx.ModelProto) -> onnx.ModelProto:
    """``model`` without mirror passes, its metadata saying so."""
    meta = metadata_of(model)
    update = {"tta": "none"}
    if "members" in meta:
        update["members"] = json.dumps([m.split(":")[0] + ":none" for m in json.loads(meta["members"])])
    return write_metadata(drop_mirror(model), {**meta, **update})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("src", type=Path)
    ap.add_argument("out", type=Path)
    args = ap.parse_args()
    if args.out.resolve() == args.src.resolve():
        raise SystemExit("refusing to overwrite the input: give another output path")
    model = mirrorless(onnx.load(str(args.src)))
    onnx.checker.check_model(model)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(args.out))
    print(f"{args.out}: {args.out.stat().st_size} bytes, members {metadata_of(model).get('members', 'one network')}")


if __name__ == "__main__":
    main()
