"""Run an ``Analyzer`` over many image files, streaming results to writers; a bad file never stops the batch."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
from PIL import Image

from openfer.analyzer import Analyzer
from openfer.classify.damage import damage_kinds
from openfer.detect.base import detection_passes
from openfer.errors import UnknownNameError
from openfer.io.images import ImageReadError, mark_output_folder, read_image
from openfer.io.rows import RowWriter
from openfer.io.writers import JsonlWriter
from openfer.report.annotate import STYLES, annotate
from openfer.types import ImageResult

log = logging.getLogger(__name__)


@dataclass
class BatchSummary:
    """What a batch run did: counts, the result of every image, and whether Ctrl-C stopped it early."""

    done: int = 0
    failed: int = 0
    faces: int = 0
    interrupted: bool = False
    results: list[ImageResult] = field(default_factory=list)

    def add(self, result: ImageResult) -> None:
        """Count one image's result and keep it."""
        self.results.append(result)
        self.done += 1
        self.failed += not result.ok
        self.faces += len(result.faces)


def each_image(files: list[Path], find: Callable[[np.ndarray], list],
               draw: Callable[[Path, np.ndarray, list], str] | None,
               summary: BatchSummary, detector: object = None) -> Iterator[ImageResult]:
    """Read every file, ``find(rgb)`` its faces and ``draw(path, rgb, faces)`` a picture (its path) when asked;
    yield the file's ``ImageResult``, counted in ``summary``. A file that cannot be read or processed yields a
    result with ``error`` (and the faces found before a drawing failed), and the batch goes on. A ``detector``
    that tells its detection passes (``sides(width, height)``, as CenterFace) has them recorded. The shared loop
    of ``run_images`` and ``openfer.explain.run_explain``."""
    for path in files:
        faces, size, error, picture = None, None, None, None
        try:
            rgb = read_image(path)
            size = (rgb.shape[1], rgb.shape[0])
            faces = find(rgb)
            picture = draw(Path(path), rgb, faces) if draw else None
        except ImageReadError as e:
            error = str(e)
        except Exception as e:  # noqa: BLE001 - one bad file must not end the batch; the error is reported
            log.debug("failed on %s", path, exc_info=True)
            error = f"{type(e).__name__}: {e}"
        result = ImageResult(faces or (), str(path), *(size or (None, None)), error=error, annotated=picture,
                             detect_sides=detection_passes(detector, *size) if size else None)
        summary.add(result)
        yield result


def _annotated_name(path: Path, taken: set[str], ext: str = ".jpg") -> str:
    stem, n = path.stem or "image", 0
    name = f"{stem}{ext}"
    while name in taken:
        n += 1
        name = f"{stem}-{n}{ext}"
    taken.add(name)
    return name


def inputs_in(folder: Path, files: list[Path]) -> set[str]:
    """Names of the input ``files`` that live in the output ``folder``: names an output must never take, so
    pointing the output at the photos' own folder cannot overwrite a photo."""
    folder = Path(folder).resolve()
    return {f.name for f in files if f.parent.resolve() == folder}


def run_images(analyzer: Analyzer, files: list[Path], jsonl: str | None = None, csv_path: str | None = None,
               annotate_dir: Path | None = None,
               on_done: Callable[[ImageResult], None] | None = None, style: str = "auto") -> BatchSummary:
    """Analyze ``files`` one by one, writing each result as soon as it is ready.

    Every file gets one JSONL record (``ImageResult.to_dict``, with ``error`` set when it could not be read or
    analyzed); faces go to ``csv_path``, a table of ``ImageResult.to_rows`` (Parquet for a .parquet ending, else
    CSV); annotated copies go to ``annotate_dir``, drawn in ``style`` (``openfer.report.annotate.STYLES``).
    Ctrl-C stops after closing the outputs, which then hold every finished image.
    """
    if style not in STYLES:  # before any output: a typo must not turn every image into an error record
        raise UnknownNameError(f"unknown annotation style {style!r}; choose one of {', '.join(STYLES)}")
    summary = BatchSummary()
    jw = JsonlWriter(jsonl) if jsonl else None
    geometry = analyzer.geometry is not None
    classes, damage = analyzer.classifier.classes, damage_kinds(analyzer.classifier)
    cw = RowWriter(csv_path, classes, geometry=geometry, photos=True, damage=damage,
                   format=None if Path(csv_path).suffix.lower() == ".parquet" else "csv") if csv_path else None
    taken = inputs_in(annotate_dir, files) if annotate_dir else set()
    if annotate_dir:
        mark_output_folder(annotate_dir)

    def draw(path: Path, rgb: np.ndarray, faces: list) -> str:
        target = Path(annotate_dir) / _annotated_name(path, taken)
        Image.fromarray(annotate(rgb, faces, style)).save(target, quality=90)
        return str(target)

    def find(rgb: np.ndarray) -> list:
        return analyzer.classify(rgb, analyzer.detector.detect(rgb))

    try:
        for result in each_image(files, find, draw if annotate_dir else None, summary, analyzer.detector):
            if jw:
                jw.write(result.to_dict())
            if cw:
                cw.write(result.to_rows(classes, geometry, damage))
            if on_done:
                on_done(result)
    except KeyboardInterrupt:
        summary.interrupted = True
    finally:
        for w in (jw, cw):
            if w:
                w.close()
    return summary
