"""Streaming result writers: one JSON object per input image, one CSV row per face; flushed as they go."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path
from typing import IO, Any

from openfer.io.atomic import part_path, publish
from openfer.io.openface import GEOMETRY_COLUMNS, geometry_values
from openfer.types import LANDMARK_NAMES, Face


def image_record(path: str, faces: list[Face] | None, size: tuple[int, int] | None = None,
                 error: str | None = None, annotated: str | None = None,
                 detect_sides: list[int] | None = None) -> dict[str, Any]:
    """The JSON Lines record of one input (schema in docs/outputs.md); ``detect_sides``: the longer side (px) of
    each detection pass, when the detector says (several for a big photo)."""
    return {
        "path": path,
        "ok": error is None,
        "error": error,
        "width": size[0] if size else None,
        "height": size[1] if size else None,
        "num_faces": len(faces) if faces is not None else 0,
        "faces": [f.to_dict() for f in faces] if faces else [],
        "annotated": annotated,
        "detect_sides": detect_sides,
    }


def csv_columns(classes: tuple[str, ...], geometry: bool = False) -> list[str]:
    """CSV header: input, face index, box, score, landmarks, top class, one probability column per class, and
    with ``geometry`` the geometry columns (``openfer.io.openface.GEOMETRY_COLUMNS``)."""
    lm = [f"{n}_{a}" for n in LANDMARK_NAMES for a in ("x", "y")]
    return ["path", "face", "x1", "y1", "x2", "y2", "score", *lm, "expression", *[f"p_{c}" for c in classes],
            *(GEOMETRY_COLUMNS if geometry else ())]


class _Sink:
    """A text output: stdout for ``"-"``, else a file written under a temporary name and renamed into place on
    ``close`` (which Ctrl-C and SIGTERM still reach), so a killed run never damages an existing file."""

    def __init__(self, target: str | Path) -> None:
        self._own = str(target) != "-"
        if self._own:
            self.target = Path(target)
            self.target.parent.mkdir(parents=True, exist_ok=True)
            self._part = part_path(self.target)
        self.f: IO[str] = open(self._part, "w", newline="", encoding="utf-8") if self._own else sys.stdout

    def close(self) -> None:
        if self.f.closed:
            return
        self.f.flush()
        if self._own:
            self.f.close()
            publish(self._part, self.target)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class JsonlWriter(_Sink):
    """Writes one JSON object per line to a file, or to stdout for ``"-"``."""

    def write(self, record: dict[str, Any]) -> None:
        self.f.write(json.dumps(record, ensure_ascii=False) + "\n")
        self.f.flush()


class CsvWriter(_Sink):
    """Writes one row per face, columns from ``csv_columns(classes, geometry)``."""

    def __init__(self, target: str | Path, classes: tuple[str, ...], geometry: bool = False) -> None:
        super().__init__(target)
        self.classes, self.geometry = classes, geometry
        self.w = csv.writer(self.f)
        self.w.writerow(csv_columns(classes, geometry))

    def write(self, path: str, faces: list[Face]) -> None:
        for i, f in enumerate(faces):
            lm = [round(float(v), 2) for v in f.landmarks.reshape(-1)]
            probs = [round(f.probabilities.get(c, float("nan")), 5) for c in self.classes]
            geo = list(geometry_values(f.geometry).values()) if self.geometry else []
            self.w.writerow([path, i, *(round(v, 2) for v in f.box), round(f.score, 4), *lm, f.expression, *probs,
                             *geo])
        self.f.flush()
