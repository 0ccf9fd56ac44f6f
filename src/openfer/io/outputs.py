"""Where results may be written: never over an input, over an existing file only when the user says so."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable


def _identity(path: Path) -> tuple[int, int] | None:
    """Device and inode of an existing path (the same file under any name, link or hard link); None if absent."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def output_problems(inputs: Iterable[str | Path], outputs: dict[str, str | Path | None],
                    overwrite: bool = False) -> list[str]:
    """Why each of ``outputs`` (option name -> file path; None or '-' for none/stdout) may not be written: it is one
    of the ``inputs`` (refused always: a run must never destroy what it reads), another output's file, or an
    existing file (refused unless ``overwrite``). Empty when all may be written."""
    taken = {_identity(Path(p)) for p in inputs} - {None}
    problems, claimed = [], {}
    for name, out in outputs.items():
        if out is None or str(out) == "-":
            continue
        out = Path(out)
        ident = _identity(out)
        key = ident or out.resolve()
        if key in claimed:
            problems.append(f"{name} and {claimed[key]} name the same file {out}")
        claimed[key] = name
        if ident in taken:
            problems.append(f"{name} {out} is one of the inputs: openfer never writes over what it reads")
        elif out.is_dir():
            problems.append(f"{name} {out} is a folder; give a file name")
        elif ident is not None and not overwrite:
            problems.append(f"{name} {out} exists; pass --overwrite to replace it (it is replaced only once the new "
                            "file is complete)")
    return problems


def unique_stems(paths: list[Path]) -> list[str]:
    """A file stem per path, numbered where two share one (``a``, ``a-1``): output names that never collide."""
    seen: dict[str, int] = {}
    out = []
    for p in paths:
        n = seen.get(p.stem, 0)
        seen[p.stem] = n + 1
        out.append(p.stem if n == 0 else f"{p.stem}-{n}")
    return out
