"""``openfer analyze PATHS --engine ray``: the shell's side of ``openfer.scale.analyze`` (checks, one progress
bar, the dashboard address and the final summary)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from openfer.cli import _e, _n, _usage, err
from openfer.errors import OpenferError


def analyze_ray(items: list[str], *, out: Path | None, settings, address: str | None, workers: int | None,
                recursive: bool, quiet: bool, local_only: list[str]) -> None:
    """Run ``openfer.scale.analyze`` on ``items`` into the folder ``out`` and exit with analyze's codes (0 all
    read, 1 some failed, 2 usage, 130 interrupted). ``local_only``: options given that the Ray engine does not
    take (a usage error)."""
    from openfer.io.rows import ROW_FORMATS

    if local_only:
        _usage(f"{', '.join(local_only)} do not apply with --engine ray: it writes rows and a summary per video, "
               "photos.jsonl and photos.csv into --out FOLDER")
    if out is None or out.suffix.lower() in ROW_FORMATS or out.is_file():
        _usage("--engine ray: give --out FOLDER (rows and a summary per video, photos.jsonl, photos.csv, "
               "people.csv and manifest.json go there)")
    if not items:
        _usage("no inputs: give photos, videos, folders or glob patterns")
    if workers is not None and workers < 1:
        _usage(f"--workers must be at least 1, got {workers}")
    from openfer.scale import analyze

    progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                        TimeRemainingColumn(), console=err, disable=quiet)
    task = None

    def started(result, jobs: int) -> None:
        nonlocal task
        if not quiet and result.dashboard_url:
            err.print(f"Ray dashboard: http://{_e(result.dashboard_url)}")
        task = progress.add_task("jobs (photo chunks, videos)", total=jobs)

    def advance(done: int, total: int, what: str) -> None:
        if task is not None:
            progress.update(task, completed=done)

    try:
        with progress:
            if not quiet:
                err.print("starting Ray workers ..." if address is None else f"connecting to Ray at {_e(address)} ...")
            result = analyze(items, out, settings, address=address, workers=workers, recursive=recursive,
                             on_start=started, on_progress=advance)
    except (OpenferError, ConnectionError) as e:  # no [scale] extra, no inputs, a cluster that cannot be reached
        _usage(str(e))
    if not quiet:
        err.print(f"{_n(len(result.videos_done), 'video')} analysed, {len(result.videos_skipped)} skipped, "
                  f"{len(result.videos_failed)} failed; {_n(result.photos_done, 'photo')} analysed, "
                  f"{result.photos_skipped} skipped, {result.photos_failed} unreadable; {_n(result.faces, 'face')}; "
                  f"{_n(len(result.workers), 'worker')}, {result.wall_s:.1f} s"
                  + (" (interrupted)" if result.interrupted else "") + f": {_e(out)}", soft_wrap=True)
        for video, why in result.videos_failed.items():
            err.print(f"[yellow]failed:[/yellow] {_e(video)}: {_e(why)}", soft_wrap=True)
    if result.interrupted:
        raise typer.Exit(130)
    raise typer.Exit(1 if result.failed else 0)
