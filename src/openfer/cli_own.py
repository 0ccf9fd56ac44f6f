"""``openfer embed``, ``openfer fit`` and ``openfer adapt``: the commands for a user's own data and labels
(registered on the main ``openfer`` app; thin shells over ``openfer.embed``, ``openfer.heads``, ``openfer.adapt``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import numpy as np
import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from openfer.cli import PRIOR_HELP, app, err


def _usage(msg: str) -> None:
    err.print(f"[red]error:[/red] {msg}")
    raise typer.Exit(2)


def _progress(quiet: bool) -> Progress:
    return Progress(TextColumn("[progress.description]{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), TimeRemainingColumn(), console=err, disable=quiet)


def _analyzer(model: str, prior: str, detector: str, threshold: float, max_side: int):
    """An embedding ``Analyzer`` from CLI options (usage errors exit 2)."""
    from openfer.analyzer import Analyzer
    from openfer.detect import load_detector

    kwargs = {"threshold": threshold, "max_side": max_side or None} if detector == "centerface" else {}
    try:
        return Analyzer(detector=load_detector(detector, **kwargs), classifier=model, prior=prior, embed=True)
    except (KeyError, ImportError, FileNotFoundError, ValueError) as e:
        _usage(str(e.args[0] if isinstance(e, KeyError) and e.args else e))


@app.command()
def embed(
    paths: Annotated[list[str], typer.Argument(help="Image files, folders, glob patterns and video files.")],
    out: Annotated[Path, typer.Option(help="Feature table to write: .npz (NumPy) or .parquet (pandas).")],
    model: Annotated[str, typer.Option(help="Expression model whose features are used: a name ('openfer models') "
                                            "or an .onnx file written by openfer.")] = "default",
    prior: Annotated[str, typer.Option(help=PRIOR_HELP)] = "training",
    detector: Annotated[str, typer.Option(help="Face detector: centerface or haar.")] = "centerface",
    threshold: Annotated[float, typer.Option(help="Minimum face detection score.")] = 0.3,
    max_side: Annotated[int, typer.Option(help="Detect on a copy downscaled to this longer side (0 = full size).")] = 640,
    fps: Annotated[Optional[float], typer.Option(help="Videos: analyse at most this many frames per second.")] = None,
    every: Annotated[int, typer.Option(help="Videos: analyse every Nth frame.")] = 1,
    recursive: Annotated[bool, typer.Option(help="Look inside sub-folders.")] = True,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar or summary.")] = False,
) -> None:
    """Face features for photos and videos: one row per face (path, frame, face_id, box, probabilities) with the
    expression network's feature vector, for 'openfer fit', 'openfer adapt' or your own analysis.

    Exit code: 0 when every input was read, 1 when any failed (listed; the others are in the table), 2 on usage
    errors, 130 after Ctrl-C (the table then holds every finished file)."""
    from openfer.embed import embed_inputs
    from openfer.io.features import FEATURE_FORMATS
    from openfer.io.images import expand_inputs
    from openfer.video.sources import is_video_input

    if out.suffix.lower() not in FEATURE_FORMATS:
        _usage(f"--out must end in {' or '.join(FEATURE_FORMATS)}, got {out.name}")
    if out.suffix.lower() == ".parquet":
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            _usage("Parquet output needs pandas and pyarrow: pip install 'openfer[video]', or write .npz")
    videos = [p for p in paths if is_video_input(p)]
    images = expand_inputs([p for p in paths if not is_video_input(p)], recursive=recursive)
    if not images and not videos:
        _usage("no image or video files found in the given inputs")
    analyzer = _analyzer(model, prior, detector, threshold, max_side)
    sampling = None
    if videos:
        try:
            from openfer.video import Sampling
        except ImportError as e:
            _usage(f"videos need the [video] extra (pip install 'openfer[video]'): {e}")
        sampling = Sampling(every=every, fps=fps)
    with _progress(quiet) as progress:
        task = progress.add_task("embedding", total=len(images) + len(videos))
        result = embed_inputs(analyzer, images, videos, sampling, model=model,
                              on_file=lambda _: progress.advance(task))
    try:
        result.table.save(out)
    except OSError as e:
        _usage(f"cannot write {out}: {e}")
    if not quiet:
        err.print(f"{result.files} files, {len(result.table)} faces, {result.table.features.shape[1]} features "
                  f"per face -> {out}" + (" (interrupted)" if result.interrupted else ""))
        for path, why in result.failed[:20]:
            err.print(f"[yellow]failed:[/yellow] {path}: {why}")
    raise typer.Exit(130 if result.interrupted else 1 if result.failed else 0)


def _embedded(paths: list[str], features: Optional[Path], model: str, analyzer_args: tuple, fps: float,
              quiet: bool, keep: Path):
    """Features of the labelled files: read from ``features`` (``openfer embed``), else embedded now and kept
    at ``keep`` so a rerun can pass ``--features``."""
    from openfer.embed import embed_inputs
    from openfer.io.features import load_features
    from openfer.video.sources import is_video_input

    if features is not None:
        try:
            table = load_features(features)
        except (OSError, ValueError) as e:
            _usage(str(e))
        if table.model != model:
            _usage(f"{features} holds features of {table.model!r}, not of --model {model!r}")
        return table
    files = sorted(set(paths))
    videos = [p for p in files if is_video_input(p)]
    images = [Path(p) for p in files if not is_video_input(p)]
    analyzer = _analyzer(model, *analyzer_args)
    sampling = None
    if videos:
        from openfer.video import Sampling

        sampling = Sampling(fps=fps)
    with _progress(quiet) as progress:
        task = progress.add_task("embedding labelled files", total=len(files))
        result = embed_inputs(analyzer, images, videos, sampling, model=model,
                              on_file=lambda _: progress.advance(task))
    if result.interrupted:
        err.print("interrupted: nothing fitted")
        raise typer.Exit(130)
    result.table.save(keep)
    if not quiet:
        err.print(f"features of {len(result.table)} faces kept in {keep} (rerun with --features {keep})")
    for path, why in result.failed[:10]:
        err.print(f"[yellow]failed:[/yellow] {path}: {why}")
    return result.table


@app.command()
def fit(
    labels: Annotated[Path, typer.Argument(help="CSV with columns path,label[,group][,start,end]: images or video "
                                                "clips (seconds), any label set; group = person/session.")],
    out: Annotated[Path, typer.Option(help="Classifier to write (.onnx; its model card goes beside it as .md).")],
    model: Annotated[str, typer.Option(help="Expression model whose features are used (name or openfer .onnx).")] = "default",
    features: Annotated[Optional[Path], typer.Option(help="Features from 'openfer embed' of the labelled files "
                                                          "(skips detection).")] = None,
    level: Annotated[str, typer.Option(help="frame: one example per photo / video frame; clip: one per labelled "
                                            "clip (mean, std, min, max of its frames).")] = "frame",
    head: Annotated[str, typer.Option(help="linear (logistic regression) or mlp (one hidden layer).")] = "linear",
    c: Annotated[float, typer.Option("--C", help="Inverse regularisation strength (smaller for few examples).")] = 1.0,
    balanced: Annotated[bool, typer.Option(help="Weigh every class equally (else by its number of examples).")] = True,
    folds: Annotated[int, typer.Option(help="Cross-validation folds (groups never split).")] = 5,
    fps: Annotated[float, typer.Option(help="Videos: frames analysed per second.")] = 5.0,
    detector: Annotated[str, typer.Option(help="Face detector: centerface or haar.")] = "centerface",
    threshold: Annotated[float, typer.Option(help="Minimum face detection score.")] = 0.3,
    max_side: Annotated[int, typer.Option(help="Detect on a copy downscaled to this longer side.")] = 640,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar or tables.")] = False,
) -> None:
    """Train a classifier for your own labels on openfer's frozen face features, score it by person-aware
    cross-validation (accuracy, UAR, macro-F1, confusion) and write it as one ONNX file with a model card.

    A frame-level head is composed with its network: use it like any model (openfer analyze --model OUT.onnx).
    A clip-level head takes clip statistics (openfer.heads.clip_statistics) of 'openfer embed' features."""
    import datetime
    import shlex
    import sys

    from openfer.heads import HEADS, LabelFileError, compose, cross_validate, fit_head, read_labels, save_model, \
        training_set
    from openfer.heads.card import head_card
    from openfer.heads.export import head_only

    if out.suffix.lower() != ".onnx":
        _usage(f"--out must be an .onnx file, got {out.name}")
    if head not in HEADS or level not in ("frame", "clip") or c <= 0 or folds < 2:
        _usage(f"--head is one of {', '.join(HEADS)}, --level frame or clip, --C > 0, --folds >= 2")
    try:
        labelset = read_labels(labels)
    except (FileNotFoundError, LabelFileError) as e:
        _usage(str(e))
    table = _embedded(labelset.path, features, model, ("training", detector, threshold, max_side), fps, quiet,
                      out.with_suffix(".features.npz"))
    try:
        data = training_set(labelset, table, level)
        cv = cross_validate(data, head, c, balanced, folds)
    except ValueError as e:
        _usage(str(e))
    if data.no_face:
        err.print(f"[yellow]warning:[/yellow] no face found in {len(data.no_face)} labelled file(s), left out: "
                  + ", ".join(data.no_face[:5]) + (" ..." if len(data.no_face) > 5 else ""))
    if not quiet:
        _print_cv(cv, data.classes)
    pipe = fit_head(data, head, c, balanced)
    from openfer.classify import load_classifier

    from openfer.zoo.registry import model_path

    base = load_classifier(model)
    base_file = base.path or model_path(base.spec)
    shares = np.bincount(data.y, minlength=len(data.classes)) / len(data.y)
    meta = {"arch": f"head:{head}", "base_model": model, "base_sha256": base.spec.sha256, "level": level,
            "train_prior": json.dumps([1.0 / len(data.classes)] * len(data.classes) if balanced else shares.tolist()),
            "cv": json.dumps({k: cv[k] for k in ("accuracy", "uar", "macro_f1", "folds", "groups")}),
            "description": f"{head} head on {model} features for {', '.join(data.classes)} ({level} level)"}
    try:
        if level == "frame":
            import onnx

            onnx_model = compose(onnx.load(str(base_file)), len(base.classes), pipe, data.classes, meta)
        else:
            onnx_model = head_only(pipe, data.classes, meta)
        save_model(onnx_model, out)
        card = head_card(out.stem, "openfer fit " + shlex.join(sys.argv[2:]), model, base.spec.sha256, data,
                         str(labels), cv, datetime.date.today().isoformat())
        out.with_suffix(".md").write_text(card, encoding="utf-8")
    except OSError as e:
        _usage(f"cannot write {out}: {e}")
    if not quiet:
        err.print(f"wrote {out} and its card {out.with_suffix('.md')}"
                  + (f"; use it with: openfer analyze PHOTOS --model {out}" if level == "frame" else ""))


def _print_cv(cv: dict, classes: tuple[str, ...]) -> None:
    from rich.table import Table

    table = Table(title=f"{cv['folds']}-fold cross-validation ({cv['level']} level, {cv['n']} examples, "
                        f"{cv['groups']} groups)")
    for col in ("accuracy", "UAR", "macro-F1", *(f"recall {c}" for c in cv["per_class_recall"])):
        table.add_column(col)
    table.add_row(f"{cv['accuracy']:.2%}", f"{cv['uar']:.2%}", f"{cv['macro_f1']:.3f}",
                  *(f"{r:.2%}" for r in cv["per_class_recall"].values()))
    err.print(table)
    cm = Table(title="confusion (rows: true, columns: predicted)")
    cm.add_column("")
    for c in classes:
        cm.add_column(c)
    for c, row in zip(classes, cv["confusion"]["matrix"]):
        cm.add_row(c, *(str(v) for v in row))
    err.print(cm)
