"""``openfer report``: readable session reports from videos or earlier rows (a thin shell over
``openfer.report.build``; registered on the main ``openfer`` app)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from openfer.cli import PRIOR_HELP, _analyzer, _check_reid, _e, _n, _settings, _usage, app, err


def _sources(items: list[str]) -> list[Path]:
    """Videos and rows files named, or found in folders (videos only; not recursive into outputs)."""
    from openfer.report.build import is_rows_file
    from openfer.video.sources import VIDEO_SUFFIXES, find_videos

    out: list[Path] = []
    for item in items:
        p = Path(item)
        if p.is_dir():
            out += find_videos(p, recursive=False)
        elif p.suffix.lower() in VIDEO_SUFFIXES or is_rows_file(p):
            out.append(p)
        else:
            _usage(f"{item}: give videos, folders of videos, or rows files (.csv, .jsonl, .parquet) written by "
                   "'openfer analyze VIDEO --out'")
    missing = [str(p) for p in out if not p.is_file()]
    if missing:
        _usage(f"not found: {', '.join(missing)}")
    if not out:
        _usage("no videos found in the given folders")
    return out


@app.command()
def report(
    inputs: Annotated[list[str], typer.Argument(help="Videos (analysed first), folders of videos, or rows files "
                                                     "from 'openfer analyze VIDEO --out rows.csv'.")],
    out: Annotated[Path, typer.Option(help="Folder for the reports: NAME.html and NAME.people.csv per session, "
                                           "index.html and people.csv across them.")],
    video: Annotated[Optional[Path], typer.Option(help="With one rows file: its video, for face thumbnails.")] = None,
    groups: Annotated[Optional[Path], typer.Option(help="CSV video,group (or video,face_id,group): compare the groups "
                                                        "(means, 95 % intervals, rank tests) in groups.html.")] = None,
    model: Annotated[str, typer.Option(help="Expression model for videos (see 'openfer models').")] = "default",
    prior: Annotated[str, typer.Option(help=PRIOR_HELP)] = "training",
    geometry: Annotated[bool, typer.Option(help="For videos: also estimate head pose and gaze, and report the time "
                                                "each person faced and looked at the camera (\\[geometry] extra).")
                        ] = False,
    reid: Annotated[bool, typer.Option(help="For videos: a person who leaves and comes back, is hidden or "
                                            "reappears after a cut keeps one face_id, so one section ('openfer "
                                            "models fetch faceres' or --model-dir).")] = False,
    model_dir: Annotated[Optional[Path], typer.Option(help="Folder holding face_landmarker.task for --geometry "
                                                           "or faceres.json/.bin for --reid.")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")] = False,
    audio: Annotated[bool, typer.Option(help="Videos: add the voice track (speech, vocal arousal) under the faces "
                                             "(\\[audio] extra; rows files show theirs when they have it).")] = False,
) -> None:
    """Readable reports of recorded sessions: per person the time in each expression, a timeline, episodes,
    notable moments with face thumbnails, derived valence/arousal and coverage, in one self-contained HTML file per
    video (opens from disk, prints to PDF) with the numbers as CSV, and an index across videos.

    One video that cannot be read is reported in the index and the others go on. Exit code: 0 all reported, 1 some
    failed, 2 usage error, 130 Ctrl-C (finished reports and the index are kept).
    """
    from openfer.errors import OpenferError, require_extra
    from openfer.io.outputs import unique_stems
    from openfer.report.build import is_rows_file, report_session, write_groups, write_index
    from openfer.report.groups import GroupsFileError, read_groups

    try:
        for module in ("matplotlib", "pandas"):
            require_extra(module, "video", "reports need matplotlib and pandas")
    except OpenferError as e:
        _usage(str(e))
    sources = _sources(inputs)
    if video is not None and (len(sources) != 1 or not is_rows_file(sources[0])):
        _usage("--video goes with exactly one rows file (a video input is its own video)")
    if groups is not None:
        try:
            read_groups(groups)  # before hours of analysis: a broken groups file is a usage error now
        except GroupsFileError as e:
            _usage(str(e))
    if out.exists() and not out.is_dir():
        _usage(f"--out {out} is a file; give a folder")
    if any(out.resolve() == s.resolve() for s in sources):
        _usage("--out must not be one of the inputs")
    analyzer = None
    settings = _settings(model=model, prior=prior, geometry=geometry, model_dir=model_dir, reid=reid)
    if any(not is_rows_file(s) for s in sources):
        _check_reid(settings)
        analyzer = _analyzer(settings, "video")  # one detection pass per frame, as 'openfer analyze VIDEO'
    elif geometry:
        err.print("[yellow]warning:[/yellow] --geometry only applies to videos; rows files keep the geometry "
                  "columns they were written with")
    about = f"Model: {model}, prior: {prior}{', with geometry' if geometry else ''}." if analyzer else ""
    entries: list = []
    failed = interrupted = False
    progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                        console=err, disable=quiet)
    try:
        with progress:
            overall = progress.add_task("sessions", total=len(sources))
            for source, stem in zip(sources, unique_stems(sources)):
                frames = progress.add_task(f"  {source.name}", total=None)
                try:
                    files = report_session(source, out, stem, analyzer=analyzer, video=video, about=about,
                                           on_frame=lambda r: progress.update(frames, completed=r.frames),
                                           audio=audio, reid=settings.reidentifier())
                    entries.append((files.html.name, files.summary, ""))
                except KeyboardInterrupt:
                    raise
                except Exception as e:  # noqa: BLE001 - one bad video must not end the batch; it is listed
                    failed = True
                    entries.append((source.name, None, f"{type(e).__name__}: {e}"))
                progress.remove_task(frames)
                progress.advance(overall)
    except KeyboardInterrupt:
        interrupted = True
    index = write_index(out, entries)
    if groups is not None and not interrupted:
        try:
            err.print(f"groups: {_e(write_groups(out, [s for _, s, _ in entries if s is not None], groups))}")
        except GroupsFileError as e:
            err.print(f"[red]error:[/red] {_e(e)}")
            failed = True
    if not quiet:
        for name, summary, note in entries:
            if summary is None:
                err.print(f"[yellow]failed:[/yellow] {_e(name)}: {_e(note)}")
        err.print(f"{_n(sum(s is not None for _, s, _ in entries), 'report')} in {_e(out)}; open {_e(index)}")
    raise typer.Exit(130 if interrupted else 1 if failed else 0)
