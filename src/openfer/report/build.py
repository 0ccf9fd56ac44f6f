"""Build session reports from videos (analysed first) or from rows files written earlier: the files of
``openfer report``, one HTML page, one per-person CSV and the analysed rows per session, and an index."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from openfer.io.atomic import write_csv_atomic, write_text_atomic
from openfer.io.rows import ROW_FORMATS, read_rows
from openfer.report.html import index_html, people_table, session_html
from openfer.report.session import SessionSummary, summarize_rows

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReportFiles:
    """What one session's report wrote."""

    html: Path
    people_csv: Path
    rows: Path  #: the rows it was made from (written here for a video, the given file otherwise)
    summary: SessionSummary


def is_rows_file(path: str | Path) -> bool:
    """Whether ``path`` names a rows file (``.csv``, ``.jsonl``, ``.parquet``) rather than a video."""
    return Path(path).suffix.lower() in ROW_FORMATS


def report_session(source: str | Path, out_dir: str | Path, stem: str | None = None, *, analyzer=None,
                   video: str | Path | None = None, about: str = "", name: str | None = None,
                   on_frame: Callable | None = None, audio: bool = False, reid=None) -> ReportFiles:
    """Report one session: ``source`` is a video (analysed with ``analyzer``, default as ``analyze_video``; its
    rows are kept as ``<stem>.rows.csv``) or a rows file (``video``, when given, supplies face thumbnails).

    Writes ``<stem>.html`` and ``<stem>.people.csv`` in ``out_dir`` (each complete or not at all); ``name`` is
    what the report calls the session (default: the source's file name). ``audio`` adds a video's voice
    (``openfer.audio``) to its rows and a "Voice" section to the page; rows files show theirs when they have it.
    ``reid`` (a new ``openfer.track.reid.Reidentifier``) keeps a returning person's ``face_id`` in a video.
    """
    source, out_dir = Path(source), Path(out_dir)
    stem = stem or source.stem
    out_dir.mkdir(parents=True, exist_ok=True)
    if is_rows_file(source):
        rows, rows_path = read_rows(source), source
    else:
        from openfer.video import analyze_video

        rows_path, video = out_dir / f"{stem}.rows.csv", source
        voice = None
        if audio:
            from openfer.audio.voice import analyze_sound

            voice = analyze_sound(source)
        rows = analyze_video(source, analyzer, out=rows_path, on_frame=on_frame, voice=voice, reid=reid)
        result = rows.attrs.get("result")
        if result is not None and result.interrupted:
            raise KeyboardInterrupt
    summary = summarize_rows(rows, name=name or source.name)
    page = out_dir / f"{stem}.html"
    write_text_atomic(page, session_html(summary, rows, video=video, about=about))
    people = out_dir / f"{stem}.people.csv"
    write_csv_atomic(people, people_table(summary))
    return ReportFiles(page, people, rows_path, summary)


def write_groups(out_dir: str | Path, summaries: list[SessionSummary], groups_file: str | Path) -> Path:
    """``groups.html`` and ``groups.csv``: the people of ``summaries`` compared by the groups of ``groups_file``
    (``openfer.report.groups``) on their time shares and derived valence/arousal (and head pose / gaze shares
    when every session has geometry)."""
    from openfer.report.groups import compare_groups, groups_html, groups_table, read_groups

    out_dir = Path(out_dir)
    rules = read_groups(groups_file)
    people = [row for s in summaries for row in people_table(s)]
    classes = summaries[0].classes if summaries else ()
    measures = [f"share_{c}" for c in classes] + ["valence_derived", "arousal_derived"]
    if people and all("facing_camera_share" in r for r in people):  # every session ran with --geometry
        measures += ["facing_camera_share", "gaze_camera_share"]
    result = compare_groups(people, rules, measures)
    if not result["groups"]:
        from openfer.report.groups import GroupsFileError

        raise GroupsFileError(f"{groups_file}: no tracked person matched a line (video names: "
                              f"{', '.join(sorted({s.name for s in summaries}))})")
    write_text_atomic(out_dir / "groups.html", groups_html(result, measures))
    write_csv_atomic(out_dir / "groups.csv", groups_table(result, measures))
    return out_dir / "groups.html"


def write_index(out_dir: str | Path, entries: list[tuple[str, SessionSummary | None, str]]) -> Path:
    """``index.html`` across the sessions (name of each report, its summary or None if it failed, a note), and
    ``people.csv``: every person of every session in one table."""
    out_dir = Path(out_dir)
    write_text_atomic(out_dir / "index.html", index_html(entries))
    write_csv_atomic(out_dir / "people.csv", [row for _, s, _ in entries if s is not None for row in people_table(s)])
    return out_dir / "index.html"
