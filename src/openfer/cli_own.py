"""``openfer embed``, ``openfer fit`` and ``openfer adapt``: the commands for a user's own data and labels
(registered on the main ``openfer`` app; thin shells over ``openfer.embed``, ``openfer.heads``, ``openfer.adapt``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import numpy as np
import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from openfer.cli import (PRIOR_HELP, DetectorOption, MaxSideOption, ThresholdOption, _detection, _e, _n, _usage, app,
                         err)
from openfer.errors import OpenferError, require_extra


def _progress(quiet: bool) -> Progress:
    return Progress(TextColumn("[progress.description]{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), TimeRemainingColumn(), console=err, disable=quiet)


def _not_an_input(out: Path, inputs: list) -> None:
    """Usage error when ``out`` would overwrite one of the user's inputs (a model, labels, features, a photo)."""
    target = out.resolve()
    for item in inputs:
        if item is not None and Path(item).exists() and Path(item).resolve() == target:
            _usage(f"--out {out} is one of your inputs; choose another name (openfer never overwrites its input)")


def _analyzer(model, prior: str, detection):
    """An embedding ``Analyzer`` from CLI options; ``model`` a name or an already loaded classifier, ``detection``
    the command's ``DetectorSettings`` (usage errors exit 2)."""
    from openfer.analyzer import Analyzer

    try:
        return Analyzer(detector=detection.load(), classifier=model, prior=prior, embed=True)
    except (OpenferError, OSError) as e:  # a name, a model file, an extra; anything else is a bug
        _usage(str(e))


@app.command()
def embed(
    paths: Annotated[list[str], typer.Argument(help="Image files, folders, glob patterns and video files.")],
    out: Annotated[Path, typer.Option(help="Feature table to write: .npz (NumPy) or .parquet (pandas).")],
    model: Annotated[str, typer.Option(help="Expression model whose features are used: a name ('openfer models') "
                                            "or an .onnx file written by openfer.")] = "default",
    prior: Annotated[str, typer.Option(help=PRIOR_HELP)] = "training",
    detector: DetectorOption = "centerface",
    threshold: ThresholdOption = 0.3,
    max_side: MaxSideOption = 640,
    fps: Annotated[Optional[float], typer.Option(help="Videos: analyse at most this many frames per second.")] = None,
    every: Annotated[int, typer.Option(help="Videos: analyse every Nth frame.")] = 1,
    recursive: Annotated[bool, typer.Option(help="Look inside sub-folders.")] = True,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar or summary.")] = False,
) -> None:
    """Face features for photos and videos: one row per face (path, frame, face_id, box, probabilities) with the
    expression network's feature vector, for 'openfer fit', 'openfer adapt' or your own analysis.

    Exit code: 0 when every input was read, 1 when any failed (listed; the others are in the table), 2 on usage
    errors, 130 after Ctrl-C (the table then holds every finished file)."""
    from openfer.embed import embed_inputs, split_inputs
    from openfer.io.features import FEATURE_FORMATS

    detection = _detection(detector, threshold, max_side)
    if out.suffix.lower() not in FEATURE_FORMATS:
        _usage(f"--out must end in {' or '.join(FEATURE_FORMATS)}, got {out.name}")
    if out.suffix.lower() == ".parquet":
        try:
            require_extra("pyarrow", "video", "Parquet output needs pandas and pyarrow (or write .npz)")
        except OpenferError as e:
            _usage(str(e))
    images, videos = split_inputs(paths, recursive)
    _not_an_input(out, [*images, *videos, model])
    if not images and not videos:
        _usage("no image or video files found in the given inputs")
    analyzer = _analyzer(model, prior, detection)
    sampling = None
    if videos:
        from openfer.video import Sampling

        try:
            sampling = Sampling(every=every, fps=fps)
        except OpenferError as e:
            _usage(str(e))
    with _progress(quiet) as progress:
        task = progress.add_task("embedding", total=len(images) + len(videos))
        result = embed_inputs(analyzer, images, videos, sampling, model=model,
                              on_file=lambda _: progress.advance(task))
    try:
        result.table.save(out)
    except OSError as e:
        _usage(f"cannot write {out}: {e}")
    if not quiet:
        err.print(f"{_n(result.files, 'file')}, {_n(len(result.table), 'face')}, "
                  f"{result.table.features.shape[1]} features "
                  f"per face -> {out}" + (" (interrupted)" if result.interrupted else ""))
        for path, why in result.failed[:20]:
            err.print(f"[yellow]failed:[/yellow] {_e(path)}: {_e(why)}")
    raise typer.Exit(130 if result.interrupted else 1 if result.failed else 0)


def _embedded(paths: list[str], features: Optional[Path], model: str, analyzer_args: tuple, fps: float,
              quiet: bool, keep: Path, what: str = "labelled", classifier=None):
    """Features of the labelled files: read from ``features`` (``openfer embed``), else embedded now (by
    ``classifier`` when one is already loaded) and kept at ``keep`` so a rerun can pass ``--features``."""
    from openfer.embed import embed_inputs
    from openfer.io.features import load_features
    from openfer.video.sources import is_video_input

    if features is not None:
        try:
            table = load_features(features)
        except (OpenferError, OSError) as e:
            _usage(str(e))
        if table.model != model:
            _usage(f"{features} holds features of {table.model!r}, not of --model {model!r}")
        return table
    files = sorted(set(paths))
    videos = [p for p in files if is_video_input(p)]
    images = [Path(p) for p in files if not is_video_input(p)]
    analyzer = _analyzer(classifier or model, *analyzer_args)
    sampling = None
    if videos:
        from openfer.video import Sampling

        sampling = Sampling(fps=fps)
    with _progress(quiet) as progress:
        task = progress.add_task(f"embedding {what} files", total=len(files))
        result = embed_inputs(analyzer, images, videos, sampling, model=model,
                              on_file=lambda _: progress.advance(task))
    if result.interrupted:
        err.print("interrupted: nothing written")
        raise typer.Exit(130)
    result.table.save(keep)
    if not quiet:
        err.print(f"features of {len(result.table)} faces kept in {keep} (rerun with --features {keep})")
    for path, why in result.failed[:10]:
        err.print(f"[yellow]failed:[/yellow] {_e(path)}: {_e(why)}")
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
    detector: DetectorOption = "centerface",
    threshold: ThresholdOption = 0.3,
    max_side: MaxSideOption = 640,
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

    detection = _detection(detector, threshold, max_side)
    if out.suffix.lower() != ".onnx":
        _usage(f"--out must be an .onnx file, got {out.name}")
    if head not in HEADS or level not in ("frame", "clip") or c <= 0 or folds < 2:
        _usage(f"--head is one of {', '.join(HEADS)}, --level frame or clip, --C > 0, --folds >= 2")
    try:
        labelset = read_labels(labels)
    except (FileNotFoundError, LabelFileError) as e:
        _usage(str(e))
    _not_an_input(out, [labels, features, model, *labelset.path])
    table = _embedded(labelset.path, features, model, ("training", detection), fps, quiet,
                      out.with_suffix(".features.npz"))
    try:
        data = training_set(labelset, table, level)
        cv = cross_validate(data, head, c, balanced, folds)
    except OpenferError as e:
        _usage(str(e))
    if data.no_face:
        err.print(f"[yellow]warning:[/yellow] no face found in {len(data.no_face)} labelled file(s), left out: "
                  + _e(", ".join(data.no_face[:5])) + (" ..." if len(data.no_face) > 5 else ""))
    if not quiet:
        _print_cv(cv, data.classes)
    pipe = fit_head(data, head, c, balanced)
    from openfer.zoo.registry import resolve_model

    try:
        base_spec, base_file = resolve_model(model)
    except (OpenferError, OSError) as e:
        _usage(str(e))
    shares = np.bincount(data.y, minlength=len(data.classes)) / len(data.y)
    meta = {"arch": f"head:{head}", "base_model": model, "base_sha256": base_spec.sha256, "level": level,
            "train_prior": json.dumps([1.0 / len(data.classes)] * len(data.classes) if balanced else shares.tolist()),
            "cv": json.dumps({k: cv[k] for k in ("accuracy", "uar", "macro_f1", "folds", "groups")}),
            "description": f"{head} head on {model} features for {', '.join(data.classes)} ({level} level)"}
    try:
        if level == "frame":
            import onnx

            onnx_model = compose(onnx.load(str(base_file)), len(base_spec.classes), pipe, data.classes, meta)
        else:
            onnx_model = head_only(pipe, data.classes, meta)
        save_model(onnx_model, out)
        card = head_card(out.stem, "openfer fit " + shlex.join(sys.argv[2:]), model, base_spec.sha256, data,
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


@app.command()
def adapt(
    paths: Annotated[Optional[list[str]], typer.Argument(help="Unlabelled target photos, folders, globs and videos "
                                                              "(or give --features).")] = None,
    out: Annotated[Path, typer.Option(help="Adapted classifier to write (.onnx; card beside it as .md).")] = Path("adapted.onnx"),
    model: Annotated[str, typer.Option(help="Model to adapt (a name or an openfer .onnx that declares its "
                                            "training prior).")] = "default",
    features: Annotated[Optional[Path], typer.Option(help="Target features from 'openfer embed' (skips "
                                                          "detection).")] = None,
    method: Annotated[str, typer.Option(help="em (class shares only, cheap and safe), clusters (pseudo-labelled "
                                             "head) or both.")] = "both",
    keep: Annotated[float, typer.Option(help="clusters: share of each expression's target faces to pseudo-label, "
                                             "purest clusters first.")] = 0.8,
    source_val: Annotated[Optional[Path], typer.Option(help="clusters: the model's source data (e.g. "
                                                            "fer2013_dev.npz): its validation split bounds the "
                                                            "head's blend weight.")] = None,
    margin: Annotated[float, typer.Option(help="clusters: largest allowed drop of source validation accuracy "
                                               "(0.02 = 2 points).")] = 0.02,
    mixup: Annotated[float, typer.Option(help="clusters: mixup Beta parameter for the head (0 = off).")] = 0.0,
    eval_labels: Annotated[Optional[Path], typer.Option("--eval", help="CSV path,label of some target faces: "
                                                                       "scores before and after.")] = None,
    fps: Annotated[float, typer.Option(help="Videos: frames analysed per second.")] = 5.0,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar or tables.")] = False,
) -> None:
    """Adapt an expression model to your setting from unlabelled faces (source-free): re-estimate how common
    each expression is there (EM) and/or blend in a head trained on pseudo-labelled clusters of the faces. Writes a
    new ONNX model with a card saying what it adapted to; the original is untouched."""
    import datetime

    import onnx

    from openfer.adapt import METHODS, adapted_model
    from openfer.adapt import adapt as run_adapt
    from openfer.classify import load_classifier
    from openfer.detect import DetectorSettings
    from openfer.heads.export import save_model
    from openfer.zoo.registry import model_path

    if out.suffix.lower() != ".onnx" or method not in METHODS or not 0 < keep <= 1 or mixup < 0:
        _usage(f"--out must be .onnx, --method one of {', '.join(METHODS)}, --keep in (0, 1], --mixup >= 0")
    _not_an_input(out, [model, features, eval_labels, *(paths or [])])
    try:
        clf = load_classifier(model)
    except (OpenferError, OSError) as e:
        _usage(str(e))
    if len(clf.spec.train_prior) != len(clf.classes):
        _usage(f"{model} declares no training class prior: it cannot be adapted by prior re-estimation")
    base = onnx.load(str(clf.path or model_path(clf.spec)))
    if features is None and not paths:
        _usage("give target photos/videos or --features")
    files = []
    if paths and features is None:
        from openfer.embed import split_inputs

        images, videos = split_inputs(paths)
        files = [*map(str, images), *videos]
    table = _embedded(files, features, model, ("training", DetectorSettings()), fps, quiet,
                      out.with_suffix(".features.npz"), what="target", classifier=clf)
    if len(table) < 20:
        _usage(f"only {len(table)} target faces: adaptation needs at least 20 (better hundreds)")
    source = None
    if source_val is not None and method != "em":
        from openfer.train.combine import split_of, validation_faces

        meta = {p.key: p.value for p in base.metadata_props}
        try:
            val = validation_faces(split_of(meta), source_val)
        except (OpenferError, OSError) as e:
            _usage(f"--source-val: {e}")
        with _progress(quiet) as progress:
            progress.add_task(f"source validation faces ({len(val)})", total=None)
            sp, sf = clf.predict_features(val.pixels)
        source = (sp, sf, val.labels)
    try:
        result = run_adapt(table.probabilities, table.features, clf.spec.train_prior, method, keep, source, margin,
                           mixup)
    except OpenferError as e:
        _usage(str(e))
    note = {"base_model": model, "base_sha256": clf.spec.sha256, "method": method, "alpha": f"{result.alpha:g}",
            "adapted_to": f"{len(table)} faces of {len(set(table.path))} files",
            "description": f"{model} adapted ({method}) to {len(table)} unlabelled faces"}
    evaluation = _eval_adapted(eval_labels, table, result.probabilities) if eval_labels else None
    try:
        save_model(adapted_model(base, clf.classes, clf.spec.train_prior, result.target_prior, result.head,
                                 result.alpha, note), out)
        out.with_suffix(".md").write_text(_adapt_card(out.stem, model, clf, result, table, evaluation,
                                                      datetime.date.today().isoformat()), encoding="utf-8")
    except OSError as e:
        _usage(f"cannot write {out}: {e}")
    if not quiet:
        _print_adapt(result, clf.classes, evaluation)
        err.print(f"wrote {out} and its card {out.with_suffix('.md')}; use it with --model {out}")


def _eval_adapted(labels_csv: Path, table, adapted: np.ndarray) -> dict:
    """Accuracy / UAR before and after on the target photos named in a ``path,label`` CSV (largest face each)."""
    from openfer.embed import largest_face_rows, path_key
    from openfer.evaluate import classification_metrics
    from openfer.heads import LabelFileError, read_labels

    try:
        labels = read_labels(labels_csv, min_per_class=1)
    except (FileNotFoundError, LabelFileError) as e:
        _usage(f"--eval: {e}")
    unknown = sorted(set(labels.label) - set(table.classes))
    if unknown:
        _usage(f"--eval labels {unknown} are not classes of the model ({', '.join(table.classes)})")
    row_of = {path_key(table.path[i]): i for i in largest_face_rows(table)}
    pick = [(row_of[path_key(p)], table.classes.index(lab)) for p, lab in zip(labels.path, labels.label)
            if path_key(p) in row_of]
    if not pick:
        _usage("--eval: none of its files is among the target faces")
    rows, y = np.array([r for r, _ in pick]), np.array([c for _, c in pick])
    return {"n": len(y), "before": classification_metrics(y, table.probabilities[rows].argmax(1), table.classes),
            "after": classification_metrics(y, adapted[rows].argmax(1), table.classes)}


def _print_adapt(result, classes, evaluation) -> None:
    from rich.table import Table

    t = Table(title="class shares: training -> estimated for the target")
    for c in classes:
        t.add_column(c)
    t.add_row(*(f"{v:.1%}" for v in result.train_prior))
    t.add_row(*(f"{v:.1%}" for v in result.target_prior))
    err.print(t)
    if result.pseudo is not None:
        err.print(f"clusters: {result.pseudo.coverage:.0%} of target faces pseudo-labelled from "
                  f"{int(result.pseudo.kept.sum())} of {len(result.pseudo.kept)} clusters; head blend weight "
                  f"{result.alpha:g}" + ("" if result.source_checks else " (not checked on source data)"))
        for chk in result.source_checks:
            err.print(f"  weight {chk['alpha']:g}: source validation accuracy {chk['accuracy']:.2%} "
                      f"(unadapted {chk['source_accuracy']:.2%}), UAR {chk['uar']:.2%}")
    if evaluation:
        b, a = evaluation["before"], evaluation["after"]
        err.print(f"--eval ({evaluation['n']} faces): accuracy {b['accuracy']:.2%} -> {a['accuracy']:.2%}, "
                  f"UAR {b['uar']:.2%} -> {a['uar']:.2%}")


def _adapt_card(name: str, model: str, clf, result, table, evaluation, created: str) -> str:
    """Markdown card of an adapted model."""
    lines = [f"# {name}: `{model}` adapted with openfer adapt", "",
             f"Created {created}. Base model: `{model}` (SHA-256 `{clf.spec.sha256}`, see its card); weights of "
             "the base are unchanged.", "",
             "## Adapted to", "",
             f"{len(table)} unlabelled faces in {len(set(table.path))} files (labels never used). Method: "
             f"`{result.method}`.", "",
             "| class | training share | estimated target share |", "|---|---|---|",
             *(f"| {c} | {a:.2%} | {b:.2%} |" for c, a, b in zip(clf.classes, result.train_prior,
                                                                 result.target_prior))]
    if result.pseudo is not None:
        lines += ["", f"Cluster pseudo-labels: {result.pseudo.coverage:.0%} of faces from "
                      f"{int(result.pseudo.kept.sum())} of {len(result.pseudo.kept)} k-means clusters (purest first); "
                      f"a logistic-regression head on them is blended in log space with weight {result.alpha:g}."]
        if result.source_checks:
            lines += ["Stop rule on the source validation split (largest weight within the margin):", "",
                      "| weight | source accuracy | unadapted | source UAR |", "|---|---|---|---|",
                      *(f"| {c['alpha']:g} | {c['accuracy']:.2%} | {c['source_accuracy']:.2%} | {c['uar']:.2%} |"
                        for c in result.source_checks)]
        else:
            lines.append("The blend weight was not checked on source data (no --source-val).")
    if evaluation:
        b, a = evaluation["before"], evaluation["after"]
        lines += ["", f"## Scored on {evaluation['n']} labelled target faces (--eval)", "",
                  "| | accuracy | UAR | macro-F1 |", "|---|---|---|---|",
                  f"| before | {b['accuracy']:.2%} | {b['uar']:.2%} | {b['macro_f1']:.3f} |",
                  f"| after | {a['accuracy']:.2%} | {a['uar']:.2%} | {a['macro_f1']:.3f} |"]
    lines += ["", "The probabilities follow the estimated target shares; `prior=balanced` still removes them."]
    return "\n".join(lines) + "\n"
