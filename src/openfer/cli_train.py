"""``openfer train``, ``ensemble``, ``export`` and ``quantize``: the workbench commands (registered on the main
``openfer`` app; thin shells over ``openfer.train``)."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Annotated, Optional

import typer

from openfer.cli import _e, _need_torch, app, err
from openfer.errors import OpenferError


@app.command()
def train(
    config: Annotated[Path, typer.Argument(help="Training config (TOML), e.g. configs/default.toml.")],
    out_dir: Annotated[Path, typer.Argument(help="Run folder: checkpoints, metrics.csv, summary.json.")],
    data: Annotated[Optional[Path], typer.Option(help="fer2013_dev.npz (default: $OPENFER_DATA or ../shared/data).")] = None,
    epochs: Annotated[Optional[int], typer.Option(help="Override the config's epochs.")] = None,
    seed: Annotated[Optional[int], typer.Option(help="Override the config's seed (init, order, augmentation; "
                                                     "the validation split stays: split_seed).")] = None,
    device: Annotated[Optional[str], typer.Option(help="Override the config's device: auto, cpu or cuda.")] = None,
) -> None:
    """Train a classifier (\\[train] extra); resumes from OUT_DIR/last.pt when present."""
    _need_torch("training")
    from openfer.train.loop import TrainConfig
    from openfer.train.loop import train as run_train

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    try:
        summary = run_train(TrainConfig.from_toml(config, epochs=epochs, seed=seed, device=device), out_dir, data)
    except (OpenferError, FileNotFoundError) as e:  # a config key or value, a missing data or config file
        err.print(f"[red]error:[/red] {_e(e)}")
        raise typer.Exit(2)
    print(summary)


@app.command()
def ensemble(
    out: Annotated[Path, typer.Argument(help="What to write: an ensemble checkpoint (runs/x/ensemble.pt, from runs) "
                                            "or an ONNX file (x.onnx, from exported .onnx members).")],
    runs: Annotated[list[Path], typer.Argument(help="Run folders (their best.pt) or checkpoints; or exported .onnx "
                                                    "classifiers when OUT is .onnx.")],
    data: Annotated[Optional[Path], typer.Option(help="fer2013_dev.npz (default: $OPENFER_DATA or ../shared/data).")] = None,
    split_seed: Annotated[Optional[int], typer.Option(help=".onnx members: validation split seed (default: from "
                                                           "their metadata, else 0).")] = None,
    val_fraction: Annotated[Optional[float], typer.Option(help=".onnx members: validation fraction (default: from "
                                                               "their metadata, else 0.1).")] = None,
    half_weights: Annotated[bool, typer.Option(help=".onnx members: store the weights as float16 (half the file, "
                                                    "float32 arithmetic).")] = False,
) -> None:
    """Average several models into one, calibrated on their shared validation split.

    Checkpoints need the \\[train] extra; .onnx members (e.g. a shipped model plus a new run's export) do not."""
    if out.suffix == ".onnx":
        _ensemble_onnx(out, runs, data, split_seed, val_fraction, half_weights)
        return
    if any(p.suffix == ".onnx" for p in runs):
        err.print("[red]error:[/red] .onnx members make an .onnx ensemble: give OUT a .onnx name")
        raise typer.Exit(2)
    _need_torch("ensembles")
    from openfer.nn import load_checkpoint
    from openfer.train.ensemble import make_ensemble
    from openfer.train.loop import TrainConfig, validation_set

    paths = [r / "best.pt" if r.is_dir() else r for r in runs]
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        err.print(f"[red]error:[/red] no checkpoint at {', '.join(missing)}")
        raise typer.Exit(2)
    try:
        cfg = TrainConfig(**load_checkpoint(paths[0]).config)
        report = make_ensemble(paths, validation_set(cfg, data), out)
    except (OpenferError, FileNotFoundError) as e:
        err.print(f"[red]error:[/red] {_e(e)}")
        raise typer.Exit(2)
    print(json.dumps(report, indent=2))


def _ensemble_onnx(out: Path, members: list[Path], data: Optional[Path], split_seed: Optional[int],
                   val_fraction: Optional[float], half: bool = False) -> None:
    """``openfer ensemble x.onnx a.onnx b.onnx``: merge exported classifiers (openfer.train.combine)."""
    from openfer.train.combine import combine_onnx, metadata, split_of, validation_faces
    from openfer.zoo.registry import sha256_file

    bad = [str(p) for p in members if p.suffix != ".onnx" or not p.is_file()]
    if bad:
        err.print(f"[red]error:[/red] an .onnx ensemble needs exported .onnx members; not found or not .onnx: "
                  f"{', '.join(bad)} (export runs first with openfer export)")
        raise typer.Exit(2)
    try:
        split = split_of(metadata(members[0]), split_seed, val_fraction)
        report = combine_onnx(members, validation_faces(split, data), out, split, half=half)
    except (OpenferError, FileNotFoundError) as e:
        err.print(f"[red]error:[/red] {_e(e)}")
        raise typer.Exit(2)
    for w in report["warnings"]:
        err.print(f"[yellow]warning:[/yellow] {_e(w)}")
    report["sha256"] = sha256_file(out)
    print(json.dumps(report, indent=2))


@app.command()
def export(
    checkpoint: Annotated[Path, typer.Argument(help="best.pt of a training run, or an ensemble.pt.")],
    out: Annotated[Path, typer.Argument(help="ONNX file to write.")],
    input_size: Annotated[Optional[int], typer.Option(min=8, help="Face size the file takes, resized in the graph "
                                                      "to the network's (default: the training size).")] = None,
    half_weights: Annotated[bool, typer.Option(help="Store the weights as float16 (half the file, float32 "
                                                    "arithmetic).")] = False,
) -> None:
    """Export a checkpoint to ONNX and check it against PyTorch (\\[train] extra)."""
    _need_torch("export")
    from openfer.train.export import export_onnx
    from openfer.zoo.registry import sha256_file

    report = export_onnx(checkpoint, out, input_size=input_size, half=half_weights)
    report["sha256"] = sha256_file(out)
    print(report)
    if report["max_abs_diff"] > 1e-4:
        err.print("[red]ONNX output differs from PyTorch by more than 1e-4[/red]")
        raise typer.Exit(1)


@app.command()
def quantize(
    onnx_in: Annotated[Path, typer.Argument(metavar="IN.onnx", help="float32 classifier (openfer export).")],
    onnx_out: Annotated[Path, typer.Argument(metavar="OUT.onnx", help="int8 classifier to write.")],
    data: Annotated[Optional[Path], typer.Option(help="fer2013_dev.npz for calibration images (default: "
                                                      "$OPENFER_DATA or ../shared/data).")] = None,
    protocol: Annotated[str, typer.Option(help="Which Training rows: ferplus (as the 8-class models) or fer2013.")] = "ferplus",
    samples: Annotated[int, typer.Option(help="Calibration images (memory grows with this).")] = 256,
    method: Annotated[str, typer.Option(help="minmax, percentile or entropy (see openfer.train.quantize).")] = "percentile",
    seed: Annotated[int, typer.Option(help="Which calibration images are drawn.")] = 0,
) -> None:
    """Write an int8 copy of a classifier, calibrated on Training images outside the validation split (no PyTorch)."""
    from openfer.datasets import load_dataset
    from openfer.train.quantize import calibration_images, quantize_classifier
    from openfer.zoo.registry import sha256_file

    if not onnx_in.is_file():
        err.print(f"[red]error:[/red] {onnx_in}: file not found")
        raise typer.Exit(2)
    try:
        full = load_dataset(data, "Training", protocol)
    except (OpenferError, OSError) as e:
        err.print(f"[red]error:[/red] {_e(e)}")
        raise typer.Exit(2)
    images = calibration_images(full, samples, seed)
    with err.status(f"calibrating on {len(images)} Training images ({method})"):
        report = quantize_classifier(onnx_in, onnx_out, images, method=method)
    report["sha256"] = sha256_file(onnx_out)
    print(json.dumps(report))
