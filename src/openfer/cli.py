"""The ``openfer`` command line: a thin shell over the library."""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Literal, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from openfer.errors import OpenferError, require_extra

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="openfer: facial expression analysis for images and video (offline, CPU).")
err = Console(stderr=True)
log = logging.getLogger("openfer")
def _n(count: int, noun: str, plural: str | None = None) -> str:
    """"1 face", "3 faces": a count with its noun in the right number."""
    return f"{count} {noun if count == 1 else plural or noun + 's'}"


def _version(value: bool) -> None:
    if value:
        from openfer import __version__

        print(f"openfer {__version__}")
        raise typer.Exit()


@app.callback()
def _options(version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                                   help="Print openfer's version and exit.")] = False) -> None:
    # Options that come before the command (openfer --version); the app's help text is Typer(help=...)'s.
    pass


def _e(text) -> str:
    """``text`` (an error message, a path) with Rich markup escaped, so "[serve]" in a hint is printed, not eaten."""
    return escape(str(text))


PRIOR_HELP = ("Decision prior: training (calibrated probabilities, best accuracy on everyday faces; the label "
              "leans a little towards rare classes in close calls) or balanced (every expression equally likely a "
              "priori: finds rare ones such as disgust, fear, contempt more often, at some accuracy).")

# The analysis options shared by the commands that analyse faces, declared once so their names, ranges and help
# cannot drift apart; each command turns them into one AnalysisSettings (``_settings``).
ModelOption = Annotated[str, typer.Option(help="Expression model (see 'openfer models').")]
PriorOption = Annotated[str, typer.Option(help=PRIOR_HELP)]

# The detection options, declared once for every command that finds faces (analyze, explain, embed, fit), so
# their names, ranges and help cannot drift apart; each command turns them into one DetectorSettings
# (``_detection``). Their defaults are DetectorSettings' (tests/test_errors.py checks that).
DetectorOption = Annotated[str, typer.Option(help="Face detector: centerface or haar.")]
ThresholdOption = Annotated[float, typer.Option(min=0.0, max=1.0, help="Minimum face detection score, 0-1 (lower: "
                                                                       "more small faces, more false alarms).")]
MaxSideOption = Annotated[int, typer.Option(min=0, help="Detect on a copy downscaled to this longer side (0 = full "
                                                        "size; photos above 2400 px are also searched finer).")]
UpscaleOption = Annotated[bool, typer.Option(help="Enlarge images smaller than --max-side before detection (finds "
                                                  "smaller faces, slower; e.g. --max-side 1280 --upscale).")]


def _detection(detector: str, threshold: float, max_side: int, upscale: bool = False):
    """The command's ``DetectorSettings`` from its detection options (``--max-side 0``: full size), or exit 2
    saying what is wrong (an unknown detector, an out-of-range value)."""
    from openfer.detect import DetectorSettings

    try:
        return DetectorSettings(name=detector, threshold=threshold, max_side=max_side or None, upscale=upscale)
    except OpenferError as e:
        _usage(str(e))


def _settings(**options):
    """The one ``AnalysisSettings`` of a command from its options, or exit 2 saying which value is wrong."""
    from openfer.settings import AnalysisSettings

    try:
        return AnalysisSettings(**options)
    except OpenferError as e:
        _usage(str(e))


def _analyzer(settings, kind: str = "photos"):
    """``settings.analyzer(kind)``, or exit 2 with a one-line message (a model name or file, a missing extra or
    model file the user can fix; anything else is a bug and ends in a traceback)."""
    try:
        return settings.analyzer(kind)
    except (OpenferError, OSError) as e:
        _usage(str(e))


def _check_reid(settings) -> None:
    """With ``--reid``, load the face describer now (once per run), or exit 2 saying how to get its files."""
    if settings.reid:
        try:
            settings.reidentifier()
        except (OpenferError, OSError, ValueError) as e:
            _usage(f"--reid: {e}")


@app.command()
def analyze(
    paths: Annotated[Optional[list[str]], typer.Argument(help="Image files, folders or glob patterns; or one video "
                                                              "file or stream URL.")] = None,
    demo: Annotated[bool, typer.Option(help="Analyze bundled sample photos (writes to ./openfer-demo).")] = False,
    jsonl: Annotated[Optional[str], typer.Option(help="JSON Lines output, one object per input ('-' = stdout).")] = None,
    csv: Annotated[Optional[str], typer.Option("--csv", help="CSV output, one row per face (Parquet for a .parquet "
                                                             "name).")] = None,
    annotate: Annotated[Optional[Path], typer.Option(help="Folder for annotated copies of the images (for a video: "
                                                          "the annotated video file, .mp4 or .avi).")] = None,
    style: Annotated[Literal["auto", "panel", "compact"], typer.Option(help="Annotated images: a probability panel "
                     "by each face where they all fit, else box and top label (auto); panels; or never.")] = "auto",
    model: ModelOption = "default",
    prior: PriorOption = "training",
    detector: DetectorOption = "centerface",
    threshold: ThresholdOption = 0.3,
    max_side: MaxSideOption = 640,
    upscale: UpscaleOption = False,
    recursive: Annotated[bool, typer.Option(help="Look inside sub-folders.")] = True,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar or summary.")] = False,
    camera: Annotated[Optional[int], typer.Option(help="Video: analyse this webcam (0 = the first).")] = None,
    sequence: Annotated[bool, typer.Option(help="Video: treat the image inputs as the frames of one video, "
                                                "in name order (see --fps).")] = False,
    out: Annotated[Optional[Path], typer.Option(help="Results file, format from its ending: videos .csv, .jsonl or "
                                                     ".parquet (a row per frame and face); photos .jsonl (a record "
                                                     "per photo), .csv or .parquet (a row per face).")] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace output files that already exist (never an input).")] = False,
    summary: Annotated[Optional[Path], typer.Option(help="Video: per-face summary JSON.")] = None,
    every: Annotated[int, typer.Option(min=1, help="Video: analyse every Nth frame.")] = 1,
    detect_every: Annotated[int, typer.Option(min=1, help="Video: run the face detector on every Nth analysed "
                                                          "frame (and when a face is lost), following faces with "
                                                          "optical flow between: faster; a new face is found within "
                                                          "N frames. 1 detects every frame.")] = 5,  # = DEFAULT_DETECT_EVERY
    classify_every: Annotated[int, typer.Option(min=1, help="Video: classify a followed face on at least every Nth "
                                                            "analysed frame, and at once when its face crop looks "
                                                            "different; frames between repeat its last "
                                                            "probabilities. 1 classifies every frame.")] = 5,  # = DEFAULT_CLASSIFY_EVERY
    reid: Annotated[bool, typer.Option(help="Video: re-identify people who leave and come back, are hidden for "
                                            "seconds or reappear after a cut, so they keep their face_id (faceres "
                                            "identity network: 'openfer models fetch faceres' or --model-dir; "
                                            "docs/sessions.md).")] = False,
    fps: Annotated[Optional[float], typer.Option(help="Video: analyse at most this many frames per second "
                                                      "(with --sequence: the frame rate of the images, default 30).")] = None,
    start: Annotated[float, typer.Option(min=0.0, help="Video: start at this time, seconds.")] = 0.0,
    end: Annotated[Optional[float], typer.Option(help="Video: stop at this time, seconds.")] = None,
    smooth: Annotated[float, typer.Option(min=0.0, max=1.0, help="Video: weight of the newest frame in each face's "
                                               "moving average of probabilities, 0-1 (1 = off; 0.3 steadies "
                                               "flickering labels).")] = 1.0,
    preview: Annotated[bool, typer.Option(help="Video: show annotated frames in a window (q stops).")] = False,
    audio: Annotated[bool, typer.Option(help="Video: add the voice (speech activity, pitch, loudness, vocal arousal, "
                                             "speech-emotion probabilities) to every row and the summary; empty "
                                             "columns when the video has no sound (\\[audio] extra). Audio files "
                                             "(.wav, .mp3, ...) always get a row per second.")] = False,
    geometry: Annotated[bool, typer.Option(help="Add 478 landmarks, head pose, gaze, blendshapes, AU proxies and "
                                                "quality flags (OpenFace-style columns; \\[geometry] extra and "
                                                "'openfer models fetch face-landmarker').")] = False,
    model_dir: Annotated[Optional[Path], typer.Option(help="Folder holding face_landmarker.task for --geometry "
                                                           "or faceres.json/.bin for --reid (default: "
                                                           "$OPENFER_MODEL_DIR, then the user cache).")] = None,
    threads: Annotated[int, typer.Option(min=0, help="ONNX Runtime threads per analyzer (0: one per core; with "
                                                     "--engine ray: the CPUs each worker gets).")] = 0,
    engine: Annotated[Literal["local", "ray"], typer.Option(help="ray: the same analysis on a Ray cluster (\\[scale] "
                                                                 "extra; --out FOLDER; docs/scale.md).")] = "local",
    address: Annotated[Optional[str], typer.Option(help="--engine ray: the cluster (auto, ray://host:10001); "
                                                        "default: a local Ray on this machine.")] = None,
    workers: Annotated[Optional[int], typer.Option(help="--engine ray: worker processes (default: one per CPU, "
                                                        "or per --threads CPUs).")] = None,
) -> None:
    """Find every face in images or videos and recognise its expression.

    A video file (by its ending), a stream URL (rtsp://, http://...), --camera N or --sequence runs the video
    pipeline: faces are tracked (face_id), rows go to --out, the per-face summary to --summary and an annotated
    video to --annotate FILE.mp4.

    Exit code: 0 when every input was read, 1 when any input failed (its error is in the JSONL output, or for a
    video in the summary's problems), 2 on usage errors, 130 after Ctrl-C.
    """
    from openfer.video.sources import is_video_input, split_video_inputs

    items = list(paths or [])
    if model_dir is not None and not geometry and not reid:
        err.print("[yellow]warning:[/yellow] --model-dir only applies with --geometry or --reid")
    settings = _settings(model=model, prior=prior, detection=_detection(detector, threshold, max_side, upscale),
                         threads=threads, every=every, fps=fps, start=start, end=end, smooth=smooth,
                         geometry=geometry, model_dir=model_dir, audio=audio, detect_every=detect_every,
                         classify_every=classify_every, reid=reid)
    from openfer.audio.reader import is_audio_file

    if items and camera is None and not sequence and all(is_audio_file(i) for i in items):
        from openfer.cli_audio import analyze_audio_files

        analyze_audio_files(items, out=out or (Path(csv) if csv else None), summary=summary, start=start, end=end,
                            quiet=quiet, overwrite=overwrite)
    if audio and (camera is not None or sequence):
        _usage("--audio needs a video file (a camera, stream or image sequence has no sound track to read)")
    if engine == "ray":
        from openfer.cli_scale import analyze_ray

        local_only = [name for name, given in (("--jsonl", jsonl), ("--csv", csv), ("--annotate", annotate),
                                               ("--summary", summary), ("--camera", camera is not None),
                                               ("--sequence", sequence), ("--preview", preview), ("--demo", demo))
                      if given]
        analyze_ray(items, out=out, settings=settings, address=address, workers=workers, recursive=recursive,
                    quiet=quiet, local_only=local_only)
    if address is not None or workers is not None:
        _usage("--address and --workers only apply with --engine ray")
    videos, photo_items = split_video_inputs(items, recursive) if camera is None and not sequence else ([], items)
    if len(videos) > 1 or (videos and len(items) == 1 and Path(items[0]).is_dir()):
        _analyze_batch(videos, photo_items, settings, out=out, recursive=recursive, quiet=quiet)
        return
    if camera is not None or sequence or any(is_video_input(i) for i in items):
        _analyze_video(items, settings, camera=camera, sequence=sequence, out=out or (Path(csv) if csv else None) or (
            Path(jsonl) if jsonl and jsonl != "-" else None), summary=summary, annotate=annotate, preview=preview,
            recursive=recursive, quiet=quiet, overwrite=overwrite)
        return
    video_only = [*(["--summary"] if summary is not None else []),
                  *(f"--{name.replace('_', '-')}" for name in settings.video_options()),
                  *(["--preview"] if preview else [])]
    if video_only:
        _usage(f"{', '.join(video_only)} only apply to videos (the inputs are photos); for photos use --out "
               "results.jsonl or faces.csv, --annotate FOLDER")
    if out is not None:
        kind = out.suffix.lower()
        if kind in (".jsonl", ".ndjson") and jsonl is None:
            jsonl = str(out)
        elif kind in (".csv", ".parquet") and csv is None:
            csv = str(out)
        else:
            _usage(f"--out {out}: for photos give a .jsonl (a record per photo), .csv or .parquet (a row per face) "
                   "file" + (" not already named by --jsonl/--csv" if kind in (".jsonl", ".ndjson", ".csv", ".parquet")
                             else ""))
    if annotate is not None and (annotate.is_file() or annotate.suffix.lower() in IMAGE_OR_VIDEO_ENDINGS):
        _usage(f"--annotate {annotate}: for photos give a folder for the annotated copies (a file is for videos)")
    if demo:
        from openfer.demo import write_demo_images

        base = Path("openfer-demo")
        items += [str(p) for p in write_demo_images(base / "inputs")]
        jsonl = jsonl or str(base / "results.jsonl")
        csv = csv or str(base / "faces.csv")
        annotate = annotate or base / "annotated"
    if not items:
        err.print("[red]error:[/red] no inputs: give image files, folders or globs, or --demo")
        raise typer.Exit(2)
    files = _image_inputs(items, recursive, quiet)
    if not files:
        err.print("[red]error:[/red] no image files found in the given folders")
        raise typer.Exit(2)
    if jsonl is None and csv is None and annotate is None:
        jsonl = "-"
    _check_outputs(files, {"--jsonl": jsonl, "--csv": csv}, overwrite or demo)
    analyzer = _analyzer(settings, "photos")

    progress = Progress(TextColumn("[progress.description]{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TimeElapsedColumn(), TimeRemainingColumn(), console=err, disable=quiet)
    try:
        with progress:
            task = progress.add_task("analyzing", total=len(files))
            from openfer.pipeline import run_images

            summary = run_images(analyzer, files, jsonl=jsonl, csv_path=csv, annotate_dir=annotate,
                                 on_done=lambda rec: progress.advance(task), style=style)
    except OSError as e:  # an output that cannot be created or written
        err.print(f"[red]error:[/red] cannot write results: {_e(e)}")
        raise typer.Exit(2)
    if not quiet:
        _print_summary(summary, jsonl, csv, annotate)
    if summary.interrupted:
        raise typer.Exit(130)
    raise typer.Exit(1 if summary.failed else 0)


def _image_inputs(items: list[str], recursive: bool, quiet: bool) -> list[Path]:
    """The photos of files, folders and globs, without openfer's own outputs (folders earlier runs marked),
    saying how many were left out."""
    from openfer.io.images import OUTPUT_MARKER, expand_inputs

    skipped: list[Path] = []
    files = expand_inputs(items, recursive=recursive, skipped=skipped)
    if skipped and not quiet:
        err.print(f"note: skipped {_n(len(skipped), 'image')} in openfer's own output folders (e.g. "
                  f"{_e(skipped[0].parent)}; marked by {OUTPUT_MARKER})")
    return files


#: File endings that make --annotate a file rather than the folder photos need.
IMAGE_OR_VIDEO_ENDINGS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".mp4", ".avi", ".mov", ".mkv",
                          ".m4v")


def _usage(msg: str) -> None:
    """A usage error: the message (unwrapped: the terminal wraps it, copies keep it whole), exit code 2."""
    err.print(f"[red]error:[/red] {_e(msg)}", soft_wrap=True)
    raise typer.Exit(2)


def _check_outputs(inputs, outputs: dict, overwrite: bool) -> None:
    """Exit 2 before any work when an output would be written over an input, another output or (without
    --overwrite) an existing file."""
    from openfer.io.outputs import output_problems

    problems = output_problems(inputs, outputs, overwrite)
    if problems:
        _usage("; ".join(problems))


def _check_prior(prior: str) -> None:
    """Exit 2 with a one-line message for a ``--prior`` that is not one of ``PRIORS``."""
    from openfer.classify.prior import check_prior

    try:
        check_prior(prior)
    except OpenferError as e:
        err.print(f"[red]error:[/red] --prior: {_e(e)}")
        raise typer.Exit(2)


def _need_torch(what: str) -> None:
    """Exit 2 with the install hint unless PyTorch (the [train] extra) is installed."""
    try:
        require_extra("torch", "train", f"{what} needs PyTorch")
    except OpenferError as e:
        _usage(str(e))


def _analyze_video(items: list[str], settings, *, camera, sequence, out, summary, annotate, preview, recursive,
                   quiet, overwrite: bool) -> None:
    """The video branch of ``analyze``: open one source, run the streaming pipeline, report."""
    from openfer.track.bytetrack import preload

    preload()  # the tracking library's imports overlap with loading the models and opening the video
    from openfer.io.images import expand_inputs
    from openfer.video import open_source

    if camera is not None and items:
        _usage("give either --camera N or input paths, not both")
    if not sequence and camera is None and len(items) != 1:
        _usage(f"give one video per run (got {len(items)} inputs); run openfer once per video")
    if out is None and summary is None and annotate is None and not preview:
        _usage("say where results go: --out rows.csv|.jsonl|.parquet, --summary summary.json, --annotate out.mp4 "
               "or --preview")
    _check_outputs(items if camera is None and not sequence else [],
                   {"--out": out, "--summary": summary, "--annotate": annotate}, overwrite)
    _check_reid(settings)
    try:
        if sequence:  # --fps is the images' frame rate, not a sampling rate
            files = expand_inputs(items, recursive=recursive)
            _check_outputs(files, {"--out": out, "--summary": summary, "--annotate": annotate}, overwrite)
            source = open_source(files, replace(settings, fps=None).sampling(), sequence_fps=settings.fps or 30.0)
        else:
            source = open_source(camera if camera is not None else items[0], settings.sampling())
        analyzer = settings.analyzer("video")
    except (OpenferError, OSError) as e:  # the source cannot be opened, a name, a model file or an extra
        _usage(str(e))
    voice = None
    if settings.audio:
        from openfer.cli_audio import voice_track
        from openfer.video.sources import STREAM_SCHEMES

        if str(items[0]).lower().startswith(STREAM_SCHEMES):
            _usage("--audio needs a video file (a live stream's sound is not read)")
        voice = voice_track(items[0], settings.start, settings.end, quiet)

    progress = Progress(TextColumn("[progress.description]{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TextColumn("{task.fields[fps]:.1f} frames/s"), TimeElapsedColumn(), TimeRemainingColumn(),
                        console=err, disable=quiet)
    try:
        with progress:
            task = progress.add_task(f"analyzing {source.name}", total=source.expected_frames, fps=0.0)
            result = settings.run_video(analyzer, source, out=out, summary_path=summary, annotate_path=annotate,
                                        preview=preview, voice=voice,
                                        on_frame=lambda r: progress.update(task, completed=r.frames, fps=r.fps))
    except OSError as e:  # an output that cannot be written
        _usage(f"cannot write results: {e}")
    except OpenferError as e:  # an output format, an extra it needs, --preview without a display
        _usage(str(e))
    if not quiet:
        err.print(f"{_n(result.frames, 'frame')}, {_n(result.faces, 'face')}, "
                  f"{_n(result.tracks, 'tracked person', 'tracked people')}, "
                  f"{result.fps:.1f} frames/s" + (" (interrupted)" if result.interrupted else ""))
        if result.frames == 0 and not result.interrupted:
            result.problems.append("no frame was analysed" + (f": the video may end before --start "
                                                              f"{settings.start:g} s" if settings.start else ""))
        for p in result.problems[:20]:
            err.print(f"[yellow]problem:[/yellow] {_e(p)}")
        for name, target in (("rows", out), ("summary", summary), ("annotated video", annotate)):
            if target:
                err.print(f"{name}: {_e(target)}")
    if result.interrupted:
        raise typer.Exit(130)
    raise typer.Exit(1 if result.problems else 0)


def _analyze_batch(videos: list[Path], photo_items: list[str], settings, *, out, recursive, quiet) -> None:
    """Several videos (a folder, a glob, a list): rows and summary per video in the --out folder, a manifest that
    lets a rerun skip finished videos, people.csv across them, and the photos of mixed folders beside them."""
    from openfer.io.images import mark_output_folder
    from openfer.io.rows import ROW_FORMATS
    from openfer.pipeline import run_images
    from openfer.video.batch import analyze_video_file, run_batch

    if out is None or out.suffix.lower() in ROW_FORMATS or out.is_file():
        _usage("several videos: give --out FOLDER (rows and a summary per video go there, with manifest.json "
               "and people.csv)")
    _check_reid(settings)
    analyzer = _analyzer(settings, "video")
    mark_output_folder(out)  # a later run over a folder holding it does not read its files as inputs

    progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                        TimeRemainingColumn(), console=err, disable=quiet)

    def run_one(video: Path, rows: Path, summary: Path):
        voice = None
        if settings.audio:
            from openfer.audio.voice import analyze_sound

            voice = analyze_sound(video, start=settings.start, end=settings.end)
        tasks = []  # the video's own progress bar, added once it is open (its frame count known)
        try:
            return analyze_video_file(
                analyzer, video, rows, summary, settings, voice=voice,
                on_open=lambda source: tasks.append(progress.add_task(f"  {video.name}", total=source.expected_frames)),
                on_frame=lambda r: progress.update(tasks[0], completed=r.frames))
        finally:
            for task in tasks:
                progress.remove_task(task)

    with progress:
        overall = progress.add_task("videos", total=len(videos))
        result = run_batch(videos, out, run_one, settings.manifest_settings(),
                           on_video=lambda v, state: progress.advance(overall))
    photos = [] if result.interrupted else _image_inputs(photo_items, recursive, True)
    photo_summary = None
    if photos:  # photos get the photo detector (finer passes for big ones), not the one-pass video detector
        photo_summary = run_images(_analyzer(settings, "photos"), photos, jsonl=str(out / "photos.jsonl"),
                                   csv_path=str(out / "photos.csv"))
    if not quiet:
        err.print(f"{_n(len(result.done), 'video')} analysed, {len(result.skipped)} skipped (finished before, same "
                  f"settings), {len(result.failed)} failed" + (f"; {_n(len(photos), 'photo')}" if photos else "")
                  + (" (interrupted)" if result.interrupted else "") + f": {_e(out)}", soft_wrap=True)
        for video, why in result.failed.items():
            err.print(f"[yellow]failed:[/yellow] {_e(video)}: {_e(why)}", soft_wrap=True)
    if result.interrupted or (photo_summary and photo_summary.interrupted):
        raise typer.Exit(130)
    raise typer.Exit(1 if result.failed or (photo_summary and photo_summary.failed) else 0)


def _said(face) -> str:
    """A face's label and its probability, with its damage when the model has a probe: "sadness 0.61 (mouth
    covered)"."""
    from openfer.classify.damage import damage_note

    note = damage_note(face.damage)
    return f"{face.expression} {face.probabilities[face.expression]:.2f}" + (f" ({note})" if note else "")


def _print_summary(summary, jsonl, csv, annotate) -> None:
    table = Table(title=f"{_n(summary.done, 'image')}, {_n(summary.faces, 'face')}, {summary.failed} failed",
                  title_justify="left")
    for col in ("input", "faces", "expressions / error"):
        table.add_column(col)
    for res in summary.results[:50]:
        what = res.error or ", ".join(_said(f) for f in res.faces) or "-"
        table.add_row(_e(res.source), str(len(res.faces)), _e(what), style=None if res.ok else "red")
    if len(summary.results) > 50:
        table.add_row(f"... {len(summary.results) - 50} more", "", "")
    err.print(table)
    for name, target in (("JSON Lines", jsonl), ("rows", csv), ("annotated images", annotate)):
        if target and target != "-":
            err.print(f"{name}: {_e(target)}")
    big = [r.detect_sides for r in summary.results if len(r.detect_sides or ()) > 1]
    if big:
        err.print(f"{_n(len(big), 'large image')} also searched for small faces at finer scales (e.g. "
                  f"{' + '.join(map(str, max(big, key=len)))} px; 'detect_sides' in the JSON Lines)", soft_wrap=True)


@app.command()
def explain(
    paths: Annotated[list[str], typer.Argument(help="Image files, folders or glob patterns; or one video file.")],
    out: Annotated[Path, typer.Option(help="Folder for the pictures (one PNG per image) and explanations.jsonl.")],
    method: Annotated[str, typer.Option(help="occlusion, rise, gradcam or gradcam++ (Grad-CAM needs the \\[train] "
                                             "extra: PyTorch).")] = "occlusion",
    model: Annotated[str, typer.Option(help="Expression model to explain (see 'openfer models').")] = "default",
    checkpoint: Annotated[Optional[Path], typer.Option(help="Explain this PyTorch checkpoint (best.pt of "
                                                            "'openfer train', or an ensemble.pt) instead of --model "
                                                            "(\\[train] extra).")] = None,
    target: Annotated[Optional[str], typer.Option(help="Class to explain on every face (default: its top class).")] = None,
    patch: Annotated[int, typer.Option(help="Occlusion: side of the covered square, pixels of the 48 px crop.")] = 8,
    stride: Annotated[int, typer.Option(help="Occlusion: step between squares (smaller: sharper, slower).")] = 4,
    masks: Annotated[int, typer.Option(help="RISE: random masks per face (more: steadier, slower).")] = 400,
    seed: Annotated[int, typer.Option(help="RISE: random seed.")] = 0,
    no_heatmap_json: Annotated[bool, typer.Option("--no-heatmap-json", help="Leave the heatmaps out of the "
                                                                             "JSON records.")] = False,
    detector: DetectorOption = "centerface",
    threshold: ThresholdOption = 0.3,
    max_side: MaxSideOption = 640,
    recursive: Annotated[bool, typer.Option(help="Look inside sub-folders.")] = True,
    every_track: Annotated[int, typer.Option(help="Video: explain each tracked person on every Nth analysed frame "
                                                  "they appear in.")] = 30,
    every: Annotated[int, typer.Option(min=1, help="Video: analyse every Nth frame.")] = 1,
    geometry: Annotated[bool, typer.Option(help="Place the regions on MediaPipe's 478-point face mesh instead of "
                                                "the 5 landmarks (\\[geometry] extra and its model file).")] = False,
    model_dir: Annotated[Optional[Path], typer.Option(help="Folder holding face_landmarker.task for --geometry.")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar or summary.")] = False,
) -> None:
    """Explain why the model gave each face its expression: heatmap, evidence per face region, one sentence.

    For a video file, faces are tracked and each person is explained on every --every-track'th frame they are
    seen in (OUT/frame_<n>.png and one record per explained frame).

    Writes OUT/<image>.png (heatmaps over the faces, region bars, the sentence per face) and OUT/explanations.jsonl
    (the 'analyze' record of every image, each face with its explanation). Exit code: 0 when every image was
    explained, 1 when any failed, 2 on usage errors, 130 after Ctrl-C.
    """
    from openfer.explain.core import check_request
    from openfer.explain.run import run_explain
    from openfer.video.sources import is_video_input

    params = {"occlusion": {"patch": patch, "stride": stride}, "rise": {"n_masks": masks, "seed": seed}}.get(method, {})
    settings = _settings(model=model, detection=_detection(detector, threshold, max_side), every=every,
                         geometry=geometry, model_dir=model_dir)
    try:
        if any(is_video_input(p) for p in paths):
            if len(paths) != 1:
                _usage("give one video per run")
            _explain_video(paths[0], out, method, settings, checkpoint, target, params, every_track, quiet)
        files = _image_inputs(paths, recursive, quiet)
        if not files:
            _usage("no image files found in the given inputs")
        analyzer = settings.analyzer("photos")
        clf = _explain_classifier(analyzer, method, checkpoint)
        check_request(clf or analyzer.classifier, method, target)
        progress = Progress(TextColumn("[progress.description]{task.description}"), BarColumn(),
                            MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn(), console=err,
                            disable=quiet)
        with progress:
            task = progress.add_task(f"explaining ({method})", total=len(files))
            summary = run_explain(analyzer, files, out, method, classifier=clf, target=target,
                                  heatmap_json=not no_heatmap_json, on_done=lambda rec: progress.advance(task),
                                  **params)
    except (OpenferError, FileNotFoundError) as e:  # a name, an input, a model or checkpoint file, an extra
        err.print(f"[red]error:[/red] {_e(e)}")
        raise typer.Exit(2)
    except OSError as e:
        err.print(f"[red]error:[/red] cannot write results: {_e(e)}")
        raise typer.Exit(2)
    _explain_exit(summary, out, quiet)


def _explain_classifier(analyzer, method: str, checkpoint: Optional[Path]):
    """The model ``openfer explain`` explains: a checkpoint, the ONNX model run in PyTorch (Grad-CAM), or None
    (the analyzer's own ONNX model)."""
    if checkpoint is None and not method.startswith("gradcam"):
        return None
    from openfer.explain import TorchClassifier

    return TorchClassifier.from_checkpoint(checkpoint) if checkpoint else TorchClassifier.from_onnx(analyzer.classifier)


def _explain_video(path, out, method, settings, checkpoint, target, params, every_track, quiet) -> None:
    """The video branch of ``explain``: raises typer.Exit with the exit code when done (``OpenferError`` for the
    caller to report as a usage error)."""
    from openfer.explain.video import explain_video
    from openfer.video import open_source

    analyzer = settings.analyzer("video")  # one detection pass per frame, as 'openfer analyze VIDEO'
    clf = _explain_classifier(analyzer, method, checkpoint)
    source = open_source(path, settings.sampling())
    progress = Progress(TextColumn("[progress.description]{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TextColumn("{task.fields[n]} faces explained"), TimeElapsedColumn(), console=err,
                        disable=quiet)
    with progress:
        task = progress.add_task(f"explaining {source.name} ({method})", total=source.expected_frames, n=0)
        result = explain_video(analyzer, source, out, every_track, method, classifier=clf, target=target,
                               on_frame=lambda r: progress.update(task, completed=r.frames, n=r.explained), **params)
    if not quiet:
        err.print(f"{_n(result.frames, 'frame')}, {_n(len(result.tracks), 'tracked person', 'tracked people')}, "
                  f"{_n(result.explained, 'face')} explained; "
                  f"pictures and explanations.jsonl in {out}")
        for p in result.problems[:20]:
            err.print(f"[yellow]problem:[/yellow] {_e(p)}")
    raise typer.Exit(130 if result.interrupted else 1 if result.problems else 0)


def _explain_exit(summary, out: Path, quiet: bool) -> None:
    if not quiet:
        for res in summary.results[:50]:
            if res.error:
                err.print(f"[red]{_e(res.source)}: {_e(res.error)}[/red]")
            for f in res.faces:
                if f.explanation is not None:
                    err.print(f"{_e(res.source)}: {_e(f.explanation.rationale)}")
        err.print(f"{_n(summary.done, 'image')}, {_n(summary.faces, 'face')}, {summary.failed} failed; pictures and "
                  f"explanations.jsonl in {out}")
    if summary.interrupted:
        raise typer.Exit(130)
    raise typer.Exit(1 if summary.failed else 0)


models_app = typer.Typer(help="List the expression models; 'openfer models fetch NAME' downloads an optional "
                               "model file.", invoke_without_command=True, no_args_is_help=False)
app.add_typer(models_app, name="models")


@models_app.command("fetch")
def models_fetch(
    name: Annotated[str, typer.Argument(help="Model file to download: face-landmarker (MediaPipe, Apache-2.0) "
                                                    "or faceres (face identity for --reid, MIT).")],
    model_dir: Annotated[Optional[Path], typer.Option(help="Save here instead of the user cache.")] = None,
    url: Annotated[Optional[str], typer.Option(help="Download from this URL (a mirror, or file:// a local copy) "
                                                    "instead of the official one; the SHA-256 is checked alike.")] = None,
) -> None:
    """Download an optional model file (only ever on this explicit command), verified by its pinned SHA-256."""
    from openfer.geometry.model_file import MODEL_FILES, fetch_model

    try:
        spec = MODEL_FILES.get(name)
    except OpenferError as e:
        _usage(str(e))
    progress = Progress(TextColumn(f"downloading {spec.name}"), BarColumn(), MofNCompleteColumn(),
                        TimeElapsedColumn(), console=err)
    try:
        with progress:
            task = progress.add_task("download", total=spec.size)
            path = fetch_model(spec, model_dir, url=url,
                               progress=lambda done, total: progress.update(task, completed=done, total=total))
    except (OSError, OpenferError) as e:  # no network, a wrong URL, a different file
        err.print(f"[red]error:[/red] could not fetch {spec.name} from {url or spec.url}: {escape(str(e))}",
                  soft_wrap=True)
        raise typer.Exit(1)
    err.print(f"{spec.name}: {path} (SHA-256 verified, licence {spec.licence})")


@models_app.callback()
def models(
    ctx: typer.Context,
    wide: Annotated[bool, typer.Option("--wide", help="Also show input size, parameters, MACs, FER2013-label "
                                                      "numbers and each model's description.")] = False,
    speed: Annotated[bool, typer.Option("--speed", help="Measure milliseconds per face on this machine (batch 1, "
                                                        "about 2 s per model) instead of showing ours.")] = False,
) -> None:
    """List the expression models with their measured accuracy, balanced accuracy (UAR), speed and size."""
    if ctx.invoked_subcommand is not None:
        return
    from openfer.zoo.registry import MODELS, model_path

    measured = _measure_speed(list(MODELS)) if speed else {}
    table = Table(title="openfer expression models (FER2013 PublicTest, evaluated once; UAR: mean per-class "
                        "recall; model cards in src/openfer/models)", title_justify="left")
    table.add_column("name", no_wrap=True, style="bold")
    for col in ("labels", "accuracy", "UAR", "ms/face here" if speed else "ms/face", "size"):
        table.add_column(col, justify="left" if col == "labels" else "right", no_wrap=True)
    if wide:
        for col in ("input", "params", "MACs", "FER2013 acc", "FER2013 UAR"):
            table.add_column(col, justify="right", no_wrap=True)
        table.add_column("description")
    for spec in MODELS.values():
        try:
            size = f"{model_path(spec).stat().st_size / 1e6:.1f} MB"
        except (OSError, OpenferError) as e:  # a missing or damaged model file is shown in its row
            size = f"[red]{_e(e)}[/red]"
        protocol = "ferplus" if "publictest_ferplus_acc" in spec.metrics else "fer2013"
        acc, uar = (spec.metrics.get(f"publictest_{protocol}_{m}") for m in ("acc", "uar"))
        ms = measured.get(spec.name, spec.ms_per_face)
        row = [spec.name, "FER+" if protocol == "ferplus" else "FER2013", _pct(acc), _pct(uar),
               f"{ms:.1f}" if ms else "-", size]
        if wide:
            row += [f"{spec.input_size}px", f"{spec.params / 1e6:.2f} M", f"{spec.macs / 1e6:.0f} M",
                    *(_pct(spec.metrics.get(f"publictest_fer2013_{m}")) for m in ("acc", "uar")),
                    _e(spec.description)]
        table.add_row(*row)
    Console().print(table)
    if not speed:
        Console().print("ms/face: batch 1, 2 threads, on our 2-core Xeon (2026-12-07); 'openfer models --speed' "
                        "measures it here.")
    _print_model_files()


def _print_model_files() -> None:
    """The optional model files (not shipped: fetched only on request) and whether this machine has them."""
    from openfer.geometry.model_file import MODEL_FILES, find_model

    for name, about in MODEL_FILES.rows():
        try:
            where = f"[green]here[/green]: {_e(find_model(MODEL_FILES[name]))}"
        except (OSError, OpenferError):
            where = f"not here ('openfer models fetch {name}', or --model-dir)"
        Console().print(f"optional model file [bold]{name}[/bold]: {_e(about)}; {where}")


def _pct(x: float | None) -> str:
    return f"{x:.2%}" if x is not None else "-"


def _measure_speed(names: list[str]) -> dict[str, float]:
    """Median milliseconds per face of each model at batch 1 on this machine, with a progress bar."""
    from openfer.classify import load_classifier
    from openfer.zoo.speed import ms_per_face

    out = {}
    progress = Progress(TextColumn("measuring {task.fields[name]}"), BarColumn(), MofNCompleteColumn(),
                        console=err)
    with progress:
        task = progress.add_task("speed", total=len(names), name="")
        for name in names:
            progress.update(task, name=name)
            out[name] = ms_per_face(load_classifier(name, threads=2))
            progress.advance(task)
    return out


def _evaluated_classifier(model: str, onnx: Optional[Path], prior: str):
    """The classifier ``openfer evaluate`` scores: ``--model``, or the ``--onnx`` file read with its own metadata
    (its input size, channels, classes and prior) when openfer wrote it, else with ``--model``'s."""
    from openfer.classify import load_classifier
    from openfer.errors import UnreadableInputError

    if onnx is not None:
        try:
            return load_classifier(str(onnx), prior=prior)
        except UnreadableInputError:  # a file without openfer's metadata: described by --model
            pass
    return load_classifier(model, path=onnx, prior=prior)


@app.command()
def evaluate(
    model: Annotated[str, typer.Option(help="Registered model name.")] = "default",
    onnx: Annotated[Optional[Path], typer.Option(help="Evaluate this ONNX file instead (its own input size, "
                                                      "classes and prior when openfer wrote it, else --model's).")] = None,
    prior: Annotated[str, typer.Option(help=PRIOR_HELP + " With --onnx: --model's prior and exponent.")] = "training",
    data: Annotated[Optional[Path], typer.Option(
        help="fer2013_dev.npz, fer2013.csv, a folder of class folders, or a photo folder with a labels.csv "
             "(muxspace, london: faces are detected and aligned first) (default: $OPENFER_DATA or ../shared/data).")] = None,
    protocol: Annotated[str, typer.Option(help="ferplus (8-class majority) or fer2013 (7 original labels).")] = "ferplus",
    split: Annotated[Optional[str], typer.Option(help="Usage value (or sub-folder) of the rows to evaluate "
                                                      "(default PublicTest); photo folders: all (default), or the "
                                                      "person-disjoint train / val / test part.")] = None,
    ferplus_csv: Annotated[Optional[Path], typer.Option(help="fer2013new.csv to join with a fer2013.csv.")] = None,
    layout: Annotated[Optional[str], typer.Option(help="Class-folder naming of a folder dataset: raf-db, affectnet.")] = None,
    detections: Annotated[Optional[Path], typer.Option(help="Photo folders: cache of the detected faces (.npz; "
                                                            "written on the first run, reused after).")] = None,
    min_images: Annotated[int, typer.Option(help="Photo folders: score only classes with at least this many "
                                                 "images in the whole set.")] = 50,
    confusion: Annotated[Optional[Path], typer.Option(help="Write the confusion matrix as a PNG here.")] = None,
    json_out: Annotated[Optional[str], typer.Option("--json", "--out", help="Write the full result as JSON to this "
                                                                         "file ('-' = stdout, instead of the tables).")] = None,
    corrupt: Annotated[Optional[str], typer.Option(help="Read every face through one corruption first: glasses, "
                                                        "sunglasses, headset, mask, blur, noise, jpeg, lowres, dim "
                                                        "(openfer.corrupt; how robust the model is).")] = None,
) -> None:
    """Accuracy, macro-F1, UAR (mean per-class recall), NLL, ECE, per-class recall and confusion of a model on a
    labelled dataset (no PyTorch needed).

    The model's argmax is restricted to the dataset's classes (e.g. 7 for FER2013 or RAF-DB). On a photo folder
    an image where no face is found counts as wrong; the metrics over detected faces are shown too.
    """
    from openfer.classify import load_classifier
    from openfer.crossdomain import is_photo_folder, load_photo_set
    from openfer.evaluate import evaluate_dataset
    from openfer.report.metrics import metrics_view

    _check_prior(prior)
    try:
        classifier = _evaluated_classifier(model, onnx, prior)
        if corrupt:
            from openfer.corrupt import Corrupted

            classifier = Corrupted(classifier, corrupt)
        if data is not None and is_photo_folder(data):
            total = len(load_photo_set(data, split or "all", min_images))
            progress = Progress(TextColumn("detecting faces"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                                TimeRemainingColumn(), console=err, disable=json_out == "-")
            with progress:
                task = progress.add_task("detect", total=total)
                result = evaluate_dataset(classifier, data, split=split, cache=detections,
                                          on_done=lambda: progress.advance(task), min_images=min_images)
        else:
            result = evaluate_dataset(classifier, data, protocol=protocol, split=split, ferplus_csv=ferplus_csv,
                                      mapping=layout)
    except (OpenferError, OSError) as e:  # a name, a data set or model file that is missing or unusable
        err.print(f"[red]error:[/red] {_e(e)}")
        raise typer.Exit(2)
    result["model"] = str(onnx) if onnx else model
    result["prior"] = prior
    result["corruption"] = corrupt
    from openfer.classify.prior import decision_of

    result["decision_tau"] = decision_of(classifier).tau  # the label rule (0: plain argmax)
    rule = f", label τ {result['decision_tau']:g}" if result["decision_tau"] else ""
    title = (f"{result['model']} ({prior} prior{rule}) on {Path(result['data']).name} {result['split']} "
             f"({result['protocol']}{', ' + corrupt if corrupt else ''})")
    if confusion:
        from openfer.report.confusion import save_confusion

        save_confusion(result["confusion"]["matrix"], result["confusion"]["classes"], confusion,
                       f"{title}: {result['accuracy']:.2%}")
    if json_out == "-":
        print(json.dumps(result, indent=2))
        return
    if json_out:
        Path(json_out).write_text(json.dumps(result, indent=2))
    Console().print(metrics_view(result, title))


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on; 127.0.0.1 keeps the service on this machine.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    model: ModelOption = None,
    prior: PriorOption = None,
    detector: DetectorOption = None,
    threshold: ThresholdOption = None,
    max_side: MaxSideOption = None,
    upscale: UpscaleOption = None,
    cors_origin: Annotated[Optional[list[str]], typer.Option(help="Allow browser apps on this origin to call the "
                                                                  "API (repeatable; '*' for any).")] = None,
    retention: Annotated[Optional[float], typer.Option(help="Seconds a finished video job and its files are kept "
                                                            "(default 900).")] = None,
    workers: Annotated[Optional[int], typer.Option(help="Images analysed at once (default 2).")] = None,
) -> None:
    """Run the web service and browser app (\\[serve] extra): open http://HOST:PORT/ in a browser.

    The API is at /v1 (OpenAPI document at /openapi.json). The analysis options are openfer analyze's (unset:
    OPENFER_MODEL, OPENFER_PRIOR, OPENFER_DETECTOR, OPENFER_THRESHOLD, OPENFER_MAX_SIDE, OPENFER_UPSCALE, then
    analyze's defaults). Set OPENFER_API_KEY to require a key; other limits are read from OPENFER_* variables
    (docs/service.md).
    """
    try:
        for module in ("uvicorn", "fastapi"):
            require_extra(module, "serve", "the web service needs the [serve] extra")
    except OpenferError as e:
        _usage(str(e))
    import uvicorn

    from openfer.service import ServiceConfig, create_app
    from openfer.zoo.registry import get_spec

    try:
        config = ServiceConfig.from_env(model=model, prior=prior, detector=detector, threshold=threshold,
                                        max_side=max_side, upscale=upscale, retention=retention, workers=workers,
                                        cors_origins=tuple(cors_origin) if cors_origin else None)
    except ValueError as e:  # ServiceConfig's check of an OPENFER_* variable or option
        _usage(str(e))
    try:
        get_spec(config.model)
    except OpenferError as e:
        _usage(str(e))
    config = replace(config, allowed_hosts=_serving_hosts(config.allowed_hosts, host))
    if host not in ("127.0.0.1", "localhost", "::1") and config.api_key is None:
        err.print(f"[yellow]warning:[/yellow] listening on {host} without an API key: anyone who can reach this "
                  "machine can use the service; set OPENFER_API_KEY")
    err.print(f"openfer service: open http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}/ "
              "(Ctrl-C stops)")
    uvicorn.run(create_app(config), host=host, port=port, log_level="info",
                ws_max_size=config.max_image_bytes, timeout_graceful_shutdown=5)


def _serving_hosts(allowed: tuple[str, ...], host: str) -> tuple[str, ...]:
    """The host names the service answers to when it listens on ``host``: the configured ones, the address itself,
    and for every interface (0.0.0.0, ::) this machine's name and addresses, so the LAN can reach it by those."""
    import socket

    extra = [host]
    if host in ("0.0.0.0", "::"):
        name = socket.gethostname()
        extra += [name, socket.getfqdn()]
        try:
            extra += socket.gethostbyname_ex(name)[2]
        except OSError:
            pass
    return tuple(dict.fromkeys([*allowed, *(h for h in extra if h and h not in ("0.0.0.0", "::"))]))


# The commands for a user's own data (embed, fit, adapt) and session reports live in their own modules and
# register on ``app``.
from openfer import cli_own, cli_report, cli_train  # noqa: E402, F401


def _reflow(doc: str) -> str:
    """A docstring as help text: paragraphs kept, the line breaks inside each removed, so the terminal wraps
    sentences at its own width instead of at the source's."""
    import inspect
    import re

    return "\n\n".join(re.sub(r"\s*\n\s*", " ", p.strip()) for p in inspect.cleandoc(doc).split("\n\n"))


for _command in [*app.registered_commands, *models_app.registered_commands]:
    if _command.help is None and _command.callback is not None and _command.callback.__doc__:
        _command.help = _reflow(_command.callback.__doc__)


def _terminate(signum, frame) -> None:
    """SIGTERM (a job scheduler, ``kill``, a closing terminal) takes the same path as Ctrl-C: every command then
    closes its outputs with the finished work in them."""
    raise KeyboardInterrupt


def main() -> None:
    """Console-script entry point."""
    import signal

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    signal.signal(signal.SIGTERM, _terminate)
    app()


if __name__ == "__main__":  # python -m openfer.cli: run the imported module, which the other command files extend
    from openfer.cli import main as _main

    _main()
