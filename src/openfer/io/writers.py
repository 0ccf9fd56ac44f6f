"""JSON Lines output: one JSON object per input (``ImageResult.to_dict``), flushed as it goes; tables of faces are
``openfer.io.rows.RowWriter``."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import IO, Any

from openfer.io.atomic import part_path, publish


class JsonlWriter:
    """Writes one JSON object per line to stdout for ``"-"``, else to a file written under a temporary name and
    renamed into place on ``close`` (which Ctrl-C and SIGTERM still reach), so a killed run never damages an
    existing file."""

    def __init__(self, target: str | Path) -> None:
        self._own = str(target) != "-"
        if self._own:
            self.target = Path(target)
            self.target.parent.mkdir(parents=True, exist_ok=True)
            self._part = part_path(self.target)
        self.f: IO[str] = open(self._part, "w", newline="", encoding="utf-8") if self._own else sys.stdout

    def write(self, record: dict[str, Any]) -> None:
        """Append ``record`` as one line and flush it."""
        self.f.write(json.dumps(record, ensure_ascii=False) + "\n")
        self.f.flush()

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
