"""The voice parts of ``openfer analyze``: ``--audio`` on a video (the voice track, computed before the frames) and
plain audio files (a row per second and a summary). Kept out of cli.py so the main command only dispatches."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from openfer.cli import _e, _n, _usage, err
from openfer.errors import OpenferError


def voice_track(path: str | Path, start: float = 0.0, end: float | None = None, quiet: bool = False):
    """The ``VoiceTrack`` of a video's sound with a progress bar, or exit 2 saying why (no [audio] extra, an
    unreadable file). A video without sound gives an empty track: its voice columns stay empty."""
    from openfer.audio.voice import analyze_sound

    progress = Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed:.0f} s"),
                        TimeElapsedColumn(), console=err, disable=quiet)
    try:
        with progress:
            task = progress.add_task(f"voice {Path(path).name}", total=None)
            track = analyze_sound(path, start=start, end=end,
                                  on_progress=lambda s: progress.update(task, completed=s))
    except (OpenferError, OSError) as e:
        _usage(f"--audio: {e}")
    if not quiet:
        if track.sound:
            err.print(f"voice: {track.duration:.1f} s of sound, {_n(len(track.segments), 'speech segment')}, "
                      f"{track.duration / max(track.compute_seconds, 1e-9):.0f} s of sound per second")
        else:
            err.print(f"voice: {_e(path)} has no sound; the voice columns stay empty")
    return track


def analyze_audio_files(items: list[str], *, out: Path | None, summary: Path | None, start: float,
                        end: float | None, quiet: bool, overwrite: bool) -> None:
    """``openfer analyze talk.wav --out voice.csv --summary voice.json``: per-second voice rows and the summary."""
    from openfer.cli import _check_outputs
    from openfer.io.atomic import write_text_atomic

    if len(items) != 1:
        _usage(f"give one audio file per run (got {len(items)} inputs)")
    if out is None and summary is None:
        _usage("say where results go: --out voice.csv|.jsonl|.parquet (a row per second), --summary voice.json")
    _check_outputs(items, {"--out": out, "--summary": summary}, overwrite)
    if not Path(items[0]).is_file():
        _usage(f"not found: {items[0]}")
    track = voice_track(items[0], start, end, quiet)
    try:
        if out is not None:
            write_rows(out, track.second_rows(), track.row_columns())
        if summary is not None:
            write_text_atomic(summary, json.dumps({"voice": track.summary()}, indent=2))
    except OSError as e:
        _usage(f"cannot write results: {e}")
    except OpenferError as e:
        _usage(str(e))
    if not quiet:
        for name, target in (("rows", out), ("summary", summary)):
            if target:
                err.print(f"{name}: {_e(target)}")
        for p in track.problems:
            err.print(f"[yellow]problem:[/yellow] {_e(p)}")
    raise typer.Exit(1 if track.problems else 0)


def write_rows(path: Path, rows: list[dict], columns: list[str]) -> None:
    """Rows to .csv, .jsonl or .parquet (by the ending), written under a temporary name and renamed."""
    from openfer.errors import UnknownNameError
    from openfer.io.atomic import part_path, publish, write_csv_atomic, write_text_atomic

    kind = path.suffix.lower()
    rows = [{c: r.get(c) for c in columns} for r in rows]
    if kind == ".csv":
        write_csv_atomic(path, rows) if rows else write_text_atomic(path, ",".join(columns) + "\n")
    elif kind in (".jsonl", ".ndjson"):
        write_text_atomic(path, "".join(json.dumps(r) + "\n" for r in rows))
    elif kind == ".parquet":
        import pandas as pd

        part = part_path(path)
        pd.DataFrame(rows, columns=columns).to_parquet(part)
        publish(part, path)
    else:
        raise UnknownNameError(f"unknown row format {path.suffix!r} for {path}: use .csv, .jsonl or .parquet")
