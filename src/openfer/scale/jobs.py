"""The units of work of a cluster run and what a worker does with each, without Ray: a ``Job`` is a fixed chunk
of photos or one video, planned by the driver; ``run_job`` analyses it with openfer's own readers and writers
(bad files become error records, outputs appear under their final names only when complete), so a job run twice
(a retry after a killed worker) writes the same files again, never a second copy."""

from __future__ import annotations

import csv
import json
import os
import resource
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Literal

PARTS = "parts"


@dataclass(frozen=True)
class Job:
    """One unit of work: ``kind`` ``photos`` (``inputs`` a chunk of photo paths, written to the part files
    ``parts/<name>.jsonl`` and ``.csv``) or ``video`` (``inputs`` one video, its rows and summary written to
    ``outputs``). Paths as the user gave them, relative to ``cwd`` (the driver's folder): records keep the
    names a single-machine run writes, and a worker on another machine with the same shared mount finds them."""

    kind: Literal["photos", "video"]
    name: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    cwd: str = ""


def photo_job(name: str, photos: list[str], out_dir: Path) -> Job:
    """The job of one chunk of photos, written to ``out_dir/parts/<name>.jsonl`` and ``.csv``."""
    parts = Path(out_dir) / PARTS
    return Job("photos", name, tuple(photos), (str(parts / f"{name}.jsonl"), str(parts / f"{name}.csv")),
               os.getcwd())


def run_job(job: Job, analyzer, settings) -> dict[str, Any]:
    """Analyse ``job`` with ``analyzer`` (photos: ``settings.analyzer("photos")``; video: ``("video")``) and say
    what happened: counts, ``interrupted``, and for a video that failed its ``error``; plus this process's id,
    CPU seconds, wall seconds and peak memory (MB), for the run's figures."""
    t0, c0 = time.perf_counter(), time.process_time()
    if job.cwd and os.path.isdir(job.cwd):  # an actor runs one job at a time: changing its folder is safe
        os.chdir(job.cwd)
    if job.kind == "photos":
        info = _photos(job, analyzer)
    else:
        info = _video(job, analyzer, settings)
    info.update(pid=os.getpid(), cpu_s=time.process_time() - c0, wall_s=time.perf_counter() - t0,
                max_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return info


def _photos(job: Job, analyzer) -> dict[str, Any]:
    from openfer.pipeline import run_images

    jsonl, csv_path = job.outputs
    summary = run_images(analyzer, [Path(p) for p in job.inputs], jsonl=jsonl, csv_path=csv_path)
    return {"photos": summary.done, "failed": summary.failed, "faces": summary.faces,
            "unreadable": [r.source for r in summary.results if r.error], "interrupted": summary.interrupted}


def _video(job: Job, analyzer, settings) -> dict[str, Any]:
    from openfer.video.batch import analyze_video_file

    rows, summary = (Path(p) for p in job.outputs)
    try:
        voice = None
        if settings.audio:
            from openfer.audio.voice import analyze_sound

            voice = analyze_sound(job.inputs[0], start=settings.start, end=settings.end)
        run = analyze_video_file(analyzer, Path(job.inputs[0]), rows, summary, settings, voice=voice)
    except Exception as e:  # noqa: BLE001 - one bad video must not end the run; it is recorded, as in run_batch
        return {"error": f"{type(e).__name__}: {e}", "interrupted": False}
    return {"frames": run.frames, "faces": run.faces, "tracks": run.tracks, "problems": run.problems[:20],
            "interrupted": run.interrupted}


class PartReader:
    """Reads a photo part back photo by photo, in its order: ``take(path)`` gives that photo's JSON Lines record
    and its CSV rows (one per face). Records of photos that are not ``keep`` (redone in a later part) are passed
    over."""

    def __init__(self, outputs: tuple[str, ...], keep: set[str]) -> None:
        jsonl, csv_path = outputs
        self._json = open(jsonl, encoding="utf-8")
        self._csv = open(csv_path, newline="", encoding="utf-8")
        self._rows = csv.reader(self._csv)
        self.header = next(self._rows, None)
        self._next_row = next(self._rows, None)
        self.keep, self.left = keep, len(keep)

    def take(self, path: str) -> tuple[str, list[list[str]]]:
        for line in self._json:
            if json.loads(line)["path"] == path:
                break
        else:
            raise ValueError(f"{path} is not in the part {self._json.name}")
        rows = []
        while self._next_row is not None and (self._next_row[0] not in self.keep or self._next_row[0] == path):
            if self._next_row[0] == path:
                rows.append(self._next_row)
            elif rows:  # a redone photo's row after this photo's rows: this photo's rows are complete
                break
            self._next_row = next(self._rows, None)
        self.left -= 1
        return line, rows

    def close(self) -> None:
        self._json.close()
        self._csv.close()
