"""Many videos in one run: rows and a summary per video in one folder, a manifest so that a rerun skips what is
finished (same file, same settings) and redoes the rest, one bad video never stopping the batch, and a table of
every person of every video."""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from openfer.io.atomic import write_csv_atomic, write_text_atomic
from openfer.io.outputs import unique_stems

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"


@dataclass
class BatchResult:
    """What a batch did: per video ``done``, ``skipped`` (finished by an earlier run) or ``failed`` (with why)."""

    done: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    interrupted: bool = False


def video_key(path: Path) -> dict[str, Any]:
    """What identifies a video's content for the manifest: resolved path, size and modification time."""
    st = path.stat()
    return {"path": str(path.resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def settings_hash(settings: dict[str, Any]) -> str:
    """A short hash of the settings that change the results (model, prior, detector, sampling, smoothing...)."""
    return hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:16]


def output_names(videos: list[Path], rows_format: str = ".csv") -> dict[Path, tuple[str, str]]:
    """Rows and summary file names per video, unique even when two videos share a name (``a``, ``a-1``)."""
    return {v: (f"{stem}.rows{rows_format}", f"{stem}.summary.json") for v, stem in zip(videos, unique_stems(videos))}


def read_manifest(out_dir: Path, section: str | None = "videos") -> dict[str, Any]:
    """One section of ``out_dir/manifest.json`` (``videos``; ``photos``, which the Ray engine keeps too), or the
    whole manifest for ``section=None``; empty when there is none or it cannot be read."""
    path = out_dir / MANIFEST
    if not path.is_file():
        return {}
    try:
        whole = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        log.warning("%s is unreadable; every input is analysed again", path)
        return {}
    return whole if section is None else whole.get(section, {})


def write_manifest(out_dir: Path, settings: dict[str, Any], **sections: dict[str, Any]) -> None:
    """Write ``out_dir/manifest.json`` atomically: the settings, their hash and the given sections (per input:
    ``{key: entry}``), keeping the sections of the manifest already there that are not given."""
    whole = {**read_manifest(out_dir, None), "settings": settings, "settings_hash": settings_hash(settings),
             **sections}
    write_text_atomic(out_dir / MANIFEST, json.dumps(whole, indent=2, default=str))


def is_finished(entry: dict[str, Any], ident: dict[str, Any], digest: str, outputs: list[Path]) -> bool:
    """Whether a manifest ``entry`` says its input is done, for the same file (``ident``: ``video_key``) and
    settings hash, and its ``outputs`` are all there: then a rerun skips it."""
    return (entry.get("status") == "done" and entry.get("settings_hash") == digest
            and all(entry.get(k) == v for k, v in ident.items()) and all(p.is_file() for p in outputs))


def analyze_video_file(analyzer, video: Path, rows: Path, summary: Path, settings,
                       on_open: Callable[[Any], None] | None = None, on_frame: Callable[[Any], None] | None = None,
                       voice=None):
    """One video of a batch: rows to ``rows`` and the summary to ``summary``, sampled and run with the stages
    ``settings`` (``openfer.settings.AnalysisSettings``) asks for (a new tracker, smoother and re-identifier per
    video); with ``voice``, its ``VoiceTrack`` columns; ``on_open(source)`` is told the opened source. Returns the
    ``VideoRunResult``."""
    from openfer.video import open_source

    source = open_source(video, settings.sampling())
    if on_open:
        on_open(source)
    return settings.run_video(analyzer, source, out=rows, summary_path=summary, on_frame=on_frame, voice=voice)


def run_batch(videos: list[Path], out_dir: str | Path, run_one: Callable[[Path, Path, Path], Any],
              settings: dict[str, Any], rows_format: str = ".csv",
              on_video: Callable[[Path, str], None] | None = None) -> BatchResult:
    """Analyse ``videos`` into ``out_dir`` with ``run_one(video, rows_path, summary_path)`` (which returns a
    ``VideoRunResult``), keeping ``out_dir/manifest.json`` current after every video.

    A video whose manifest entry says done, with the same size, modification time and ``settings``, and whose
    outputs exist, is skipped. An exception from one video is recorded as its failure and the batch goes on;
    Ctrl-C (or SIGTERM through the CLI) stops it, the finished videos staying done. ``on_video(video, state)``
    is told ``done``, ``skipped`` or ``failed``.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    manifest = read_manifest(out_dir)
    names = output_names(videos, rows_format)
    digest = settings_hash(settings)
    result = BatchResult()

    def save() -> None:
        write_manifest(out_dir, settings, videos=manifest)

    for video in videos:
        rows_name, summary_name = names[video]
        key = str(video.resolve())
        try:
            ident = video_key(video)
        except OSError as e:
            result.failed[str(video)] = f"cannot read: {e.strerror or e}"
            if on_video:
                on_video(video, "failed")
            continue
        if is_finished(manifest.get(key, {}), ident, digest, [out_dir / rows_name, out_dir / summary_name]):
            result.skipped.append(str(video))
            if on_video:
                on_video(video, "skipped")
            continue
        manifest[key] = {**ident, "settings_hash": digest, "status": "running", "rows": rows_name,
                         "summary": summary_name}
        save()
        try:
            run = run_one(video, out_dir / rows_name, out_dir / summary_name)
        except KeyboardInterrupt:
            manifest[key]["status"] = "interrupted"
            result.interrupted = True
            save()
            break
        except Exception as e:  # noqa: BLE001 - one bad video must not end the batch; it is recorded
            log.debug("failed on %s", video, exc_info=True)
            manifest[key].update(status="failed", error=f"{type(e).__name__}: {e}")
            result.failed[str(video)] = manifest[key]["error"]
            save()
            if on_video:
                on_video(video, "failed")
            continue
        if getattr(run, "interrupted", False):
            manifest[key]["status"] = "interrupted"
            result.interrupted = True
            save()
            break
        manifest[key].update(status="done", frames=run.frames, tracks=run.tracks, problems=run.problems[:20])
        result.done.append(str(video))
        save()
        if on_video:
            on_video(video, "done")
    write_people_table(out_dir, manifest)
    return result


def write_people_table(out_dir: Path, manifest: dict[str, Any]) -> Path:
    """``out_dir/people.csv``: every tracked person of every finished video (video, face_id, time, dominant
    expression, time share of each expression), read from the summaries."""
    rows = []
    for entry in manifest.values():
        summary = out_dir / entry.get("summary", "")
        if entry.get("status") != "done" or not summary.is_file():
            continue
        data = json.loads(summary.read_text(encoding="utf-8"))
        for t in data.get("tracks", []):
            rows.append({"video": entry["path"], "face_id": t["face_id"], "frames": t["frames"],
                         "start_s": t["start_s"], "end_s": t["end_s"], "dominant": t["dominant_expression"],
                         **{f"share_{c}": v for c, v in t["expression_share"].items()}})
    write_csv_atomic(out_dir / "people.csv", rows)
    return out_dir / "people.csv"
