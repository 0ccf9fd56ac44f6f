"""Table rows of results (a row per face of a photo, a row per face of a video frame) and their streaming writers
(CSV, JSON Lines, Parquet).

Column names follow OpenFace 2.x where they mean the same thing (``face``, ``frame``, ``face_id``, ``timestamp``,
``confidence``, ``success``, and with the geometry stage ``pose_*``, ``gaze_*``, ``x_*``/``y_*``); the schemas are
in docs/outputs.md (photos) and docs/video.md (videos), the geometry columns in docs/geometry.md.
"""

from __future__ import annotations

import csv
import json
import math
import sys
from pathlib import Path
from typing import Any

from openfer.errors import MissingExtraError, UnknownNameError
from openfer.io.atomic import part_path, publish
from openfer.io.openface import GEOMETRY_COLUMNS, INT_COLUMNS, geometry_values
from openfer.types import LANDMARK_NAMES, ImageResult

#: The box, landmark and label columns every row has, after the ones that place it.
FACE_COLUMNS: tuple[str, ...] = (
    "x1", "y1", "x2", "y2", *(f"{n}_{a}" for n in LANDMARK_NAMES for a in ("x", "y")), "expression",
)
#: Columns before the probabilities of a video's rows, in order.
BASE_COLUMNS: tuple[str, ...] = ("frame", "timestamp", "face_id", "confidence", "success", *FACE_COLUMNS)
#: Columns before the probabilities of photos' rows, in order.
PHOTO_COLUMNS: tuple[str, ...] = ("path", "face", "confidence", *FACE_COLUMNS)
#: Suffixes ``open_row_writer`` understands.
ROW_FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet"}


def row_columns(classes: tuple[str, ...], geometry: bool = False, voice: tuple[str, ...] | None = None,
                photos: bool = False, damage: tuple[str, ...] = ()) -> list[str]:
    """All columns: ``BASE_COLUMNS`` (``PHOTO_COLUMNS`` for ``photos``), ``p_<class>`` for each class,
    ``damage_<kind>`` for each kind of the model's damage probe (``OnnxClassifier.damage_kinds``; none without
    one), then (``geometry``) ``GEOMETRY_COLUMNS``, then (``voice``: the speech-emotion classes of ``--audio``)
    ``openfer.audio.voice.voice_columns``."""
    extra: list[str] = []
    if voice is not None:
        from openfer.audio.voice import voice_columns

        extra = voice_columns(voice)
    return [*(PHOTO_COLUMNS if photos else BASE_COLUMNS), *(f"p_{c}" for c in classes),
            *(f"damage_{k}" for k in damage), *(GEOMETRY_COLUMNS if geometry else ()), *extra]


def result_rows(result: ImageResult, classes: tuple[str, ...], geometry: bool = False,
                damage: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """The rows of one result (``ImageResult.to_rows``).

    A photo (``result.frame`` None): one row per face, ``path`` and the face's index ``face`` first; none without
    faces. A video frame: ``frame`` from 1 like OpenFace (source frame ``index + 1``), ``face_id`` the track id (-1 for
    a face not (yet) tracked), one row per face or a single ``success = 0`` row (box, landmarks and probabilities
    None, empty in CSV) when the frame has no face. ``damage``: the kinds of the model's damage probe, whose
    ``damage_<kind>`` columns hold each face's ``Face.damage`` (None where a face has none). With ``geometry`` the
    rows also hold ``openfer.io.openface.geometry_values`` of each face's ``geometry``.
    """
    photo = result.frame is None
    if photo:
        places = [{"path": result.source, "face": i} for i in range(len(result.faces))]
    else:
        base = {"frame": result.frame + 1, "timestamp": round(float(result.timestamp or 0.0), 4)}
        if not result.faces:
            row = dict.fromkeys(row_columns(classes, geometry, damage=damage))
            row.update(base, face_id=-1, confidence=0.0, success=0)
            return [row]
        places = [{**base, "face_id": -1 if f.track_id is None else int(f.track_id)} for f in result.faces]
    rows = []
    for place, f in zip(places, result.faces):
        row = {**place, "confidence": round(float(f.score), 4), **({} if photo else {"success": 1})}
        row.update(zip(("x1", "y1", "x2", "y2"), (round(v, 2) for v in f.box)))
        lm = f.landmarks.reshape(-1)
        row.update(zip(FACE_COLUMNS[4:14], (round(float(v), 2) if math.isfinite(v) else None for v in lm)))
        row["expression"] = f.expression
        row.update((f"p_{c}", round(float(f.probabilities[c]), 5) if c in f.probabilities else None) for c in classes)
        row.update((f"damage_{k}", round(float(f.damage[k]), 5) if k in f.damage else None) for k in damage)
        if geometry:
            row.update(geometry_values(f.geometry))
        rows.append(row)
    return rows


class RowWriter:
    """Streams rows to ``path`` in the format of its suffix (.csv, .jsonl/.ndjson, .parquet) or ``format``
    (``csv``, ``jsonl``, ``parquet``), or to standard output for ``"-"`` (CSV unless ``format`` says jsonl);
    ``photos``: the columns of photos' rows, ``damage``: the kinds of the model's damage probe (``row_columns``).

    The file is written under a temporary name (``openfer.io.atomic``) and renamed to ``path`` on ``close``
    (which Ctrl-C and SIGTERM still reach), so an existing file is only replaced by a complete one. CSV and JSON
    Lines are flushed after every ``write``. Parquet is columnar: rows are buffered and written as a row group every
    ``parquet_rows`` rows. Memory stays bounded by ``parquet_rows``.
    """

    def __init__(self, path: str | Path, classes: tuple[str, ...], parquet_rows: int = 4096,
                 geometry: bool = False, voice: tuple[str, ...] | None = None, photos: bool = False,
                 format: str | None = None, damage: tuple[str, ...] = ()) -> None:
        self.path, self._stdout = Path(path), str(path) == "-"
        fmt = format or ("csv" if self._stdout else ROW_FORMATS.get(self.path.suffix.lower()))
        if fmt is None:
            raise UnknownNameError(f"unknown row format {self.path.suffix!r} for {self.path}: use one of "
                                   f"{', '.join(sorted(ROW_FORMATS))}")
        if self._stdout and fmt == "parquet":
            raise UnknownNameError("Parquet cannot go to standard output ('-'): name a .parquet file")
        self.format, self.columns, self.rows_written = fmt, row_columns(classes, geometry, voice, photos, damage), 0
        if not self._stdout:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._part = part_path(self.path)
        self._buffer: list[dict[str, Any]] = []
        self._parquet_rows, self._pq = parquet_rows, None
        if fmt == "parquet":
            try:
                import pyarrow as pa
                import pyarrow.parquet as pq
            except ImportError as e:
                raise MissingExtraError("Parquet output needs pyarrow", "video", e) from None
            floats = {c: pa.float64() for c in self.columns}
            floats.update(frame=pa.int64(), face_id=pa.int64(), success=pa.int8(), expression=pa.string(),
                          path=pa.string(), face=pa.int64())
            if voice is not None:
                floats.update(voice_speech=pa.int8(), voice_expression=pa.string())
            floats.update((c, pa.int8()) for c in INT_COLUMNS if c in floats)
            self._schema = pa.schema([(c, floats[c]) for c in self.columns])
            self._pq = pq.ParquetWriter(str(self._part), self._schema)
            self.f = None
        else:
            self.f = sys.stdout if self._stdout else open(self._part, "w", newline="", encoding="utf-8")
            if fmt == "csv":
                self._csv = csv.DictWriter(self.f, fieldnames=self.columns)
                self._csv.writeheader()

    def write(self, rows: list[dict[str, Any]]) -> None:
        """Append ``rows`` (dicts with ``self.columns`` keys)."""
        self.rows_written += len(rows)
        if self.format == "parquet":
            self._buffer.extend(rows)
            if len(self._buffer) >= self._parquet_rows:
                self._flush_parquet()
            return
        if self.format == "csv":
            self._csv.writerows(rows)
        else:
            self.f.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
        self.f.flush()

    def _flush_parquet(self) -> None:
        import pyarrow as pa

        if self._buffer:
            self._pq.write_table(pa.Table.from_pylist(self._buffer, schema=self._schema))
            self._buffer = []

    def close(self) -> None:
        """Write what is buffered and finish the file (idempotent)."""
        if self._pq is not None:
            self._flush_parquet()
            self._pq.close()
            self._pq = None
        elif self._stdout and self.f is not None:
            self.f.flush()
            self.f = None
            return
        elif self.f is not None and not self.f.closed:
            self.f.close()
        else:
            return
        publish(self._part, self.path)

    def __enter__(self) -> RowWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def read_rows(path: str | Path):
    """A pandas DataFrame of a rows file written by ``RowWriter`` (any of its formats)."""
    import pandas as pd

    path = Path(path)
    fmt = ROW_FORMATS.get(path.suffix.lower())
    if fmt == "csv":
        return pd.read_csv(path)
    if fmt == "jsonl":
        return pd.read_json(path, lines=True)
    if fmt == "parquet":
        return pd.read_parquet(path)
    raise UnknownNameError(f"unknown row format {path.suffix!r}: use one of {', '.join(sorted(ROW_FORMATS))}")
