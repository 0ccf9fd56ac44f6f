"""Pack what a GPU training run needs into the ignored folder ``gpu/`` so it fits the device machine's 64 MiB
working-tree limit beside the repository, and unpack it there.

FER2013's Training rows (28,709 faces, 66 MB of pixels) are stored as WebP at ``--quality`` (75: about 16 MB and a
mean absolute error of 3 grey levels; 92: 28 MB, 1.3 levels; both below the JPEG and noise the training's
augmentation adds; the repository's own files travel too, so the quality is what makes both fit), with every other
per-row array (labels, FER+ votes, usage) as it is; PublicTest is left out, so no test face travels. The faceres
backbone files are copied beside it. On the device, ``--unpack`` writes an ordinary ``fer2013_dev.npz`` that
``openfer train --data`` reads; the validation split is carved from the same rows in the same order as here.

    python scripts/gpu_pack.py --data ../shared/data/fer2013_dev.npz --faceres ../shared/models/faceres
    python scripts/gpu_pack.py --unpack gpu/fer_train.npz /tmp/fer2013_dev.npz      # on the device
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
from pathlib import Path

import cv2
import numpy as np

ROW_KEYS = ("emotion", "usage", "row", "lossless", "ferplus_votes", "ferplus_name")
LIMIT = 64 * 2**20  # what may travel to the device machine: tracked files plus the carried folder


def travelling_bytes(out: Path) -> int:
    """Bytes that travel with ``run(carry=[out])``: the repository's tracked files and everything under ``out``."""
    tracked = subprocess.run(["git", "ls-files", "-z"], capture_output=True, check=True).stdout.split(b"\0")
    files = [Path(f.decode()) for f in tracked if f] + [f for f in out.rglob("*") if f.is_file()]
    return sum(f.stat().st_size for f in files if f.is_file())


def pack(data: Path, out: Path, quality: int = 75, faceres: Path | None = None) -> dict:
    """Write ``out/fer_train.npz`` (and ``out/faceres/``); returns sizes and the round-trip error."""
    src = np.load(data)
    keep = np.flatnonzero(src["usage"] == "Training")
    blobs, errors = [], []
    for face in src["pixels"][keep]:
        ok, buf = cv2.imencode(".webp", face, [cv2.IMWRITE_WEBP_QUALITY, quality])
        if not ok:
            raise RuntimeError("OpenCV could not encode WebP")
        blobs.append(buf.ravel())
        errors.append(np.abs(cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE).astype(np.int16) - face).mean())
    out.mkdir(parents=True, exist_ok=True)
    arrays = {k: src[k][keep] for k in ROW_KEYS if k in src.files}
    arrays.update({k: src[k] for k in src.files if k not in ROW_KEYS and k != "pixels"})
    np.savez_compressed(out / "fer_train.npz", webp=np.concatenate(blobs),
             offsets=np.cumsum([0] + [len(b) for b in blobs]), shape=np.array(src["pixels"].shape[1:]), **arrays)
    if faceres is not None:
        shutil.copytree(faceres, out / "faceres", dirs_exist_ok=True)
    return {"faces": len(keep), "quality": quality, "mean_abs_error": float(np.mean(errors)),
            "mb": round((out / "fer_train.npz").stat().st_size / 1e6, 1)}


def unpack(packed: Path, target: Path) -> int:
    """Decode ``packed`` into an ordinary dataset file ``target``; returns the number of faces."""
    src = np.load(packed)
    offsets, blob = src["offsets"], src["webp"]
    pixels = np.stack([cv2.imdecode(blob[a:b], cv2.IMREAD_GRAYSCALE) for a, b in zip(offsets[:-1], offsets[1:])])
    rest = {k: src[k] for k in src.files if k not in ("webp", "offsets", "shape")}
    np.savez(target, pixels=pixels.reshape(-1, *src["shape"]), **rest)
    return len(pixels)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path("../shared/data/fer2013_dev.npz"))
    ap.add_argument("--out", type=Path, default=Path("gpu"))
    ap.add_argument("--quality", type=int, default=75)
    ap.add_argument("--faceres", type=Path, default=None, help="faceres folder (faceres.json + .bin) to copy")
    ap.add_argument("--unpack", nargs=2, type=Path, metavar=("PACKED", "TARGET"))
    args = ap.parse_args()
    if args.unpack:
        print(f"{unpack(*args.unpack)} faces -> {args.unpack[1]}")
    else:
        report = pack(args.data, args.out, args.quality, args.faceres)
        report["travelling_mb"] = round(travelling_bytes(args.out) / 1e6, 1)
        print(report)
        if report["travelling_mb"] * 1e6 > LIMIT:
            raise SystemExit(f"{report['travelling_mb']} MB would travel, over the device's {LIMIT / 1e6:.1f} MB: "
                             "lower --quality")


if __name__ == "__main__":
    main()
